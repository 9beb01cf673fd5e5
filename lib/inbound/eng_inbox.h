/*
 * The webhook's inbox (engagement.webhook_inbox): every signed delivery is
 * stored, committed, and only then acknowledged; afterwards it is applied,
 * by whichever receiver gets to it first:
 *
 * - statuses (value.statuses[]) update the sent message's delivery_status,
 *   forward only (sent -> delivered -> read; failed), publish
 *   message.delivered / message.read / message.undelivered, and a failure
 *   with 131050 records the person's opt-out as queue-send does;
 * - messages (value.messages[]) of known people are activity, or a goodbye
 *   reply from someone in goodbye_sent, through engagement-event's path
 *   (eng_events_apply), with the wamid as the event's identity; an opt-out
 *   or opt-in phrase also changes the preference through optout-set's
 *   last-write-wins path, with the same identity (what a message means
 *   is the domain's rule: eng_inbound.h).
 *
 * - the account's changes (templates' status and quality, the messaging
 *   limit) are applied in order of their time, at most once
 *   (engagement.apply_account_changes), and statuses' pricing is recorded
 *   on the message (engagement.record_pricing), in the same transaction.
 *
 * Meta repeats deliveries and does not keep order: a message is applied at
 * most once (its wamid), a status at most once (it only moves forward).
 */
#ifndef ENG_INBOX_H
#define ENG_INBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_time.h"

/* Store n delivery bodies (valid JSON) in one statement. */
enum eng_status eng_inbox_store(struct eng_db *db, const char *const *bodies, size_t n,
				struct eng_err *err);

struct eng_inbox_counts {
	long long deliveries;      /* applied */
	long long messages, activities, replies, preferences, duplicates;
	long long unknown_users;   /* messages from numbers we do not know */
	long long statuses, delivered, read, failed, unmatched;
	long long priced;          /* messages whose pricing was recorded */
	long long account, account_stale; /* account changes applied, stale */
	long long ignored;         /* other fields, unknown types or statuses */
	long long malformed;       /* items without what they need, or future-dated */
	long long rejected;        /* events refused (an invalid transition) */
	long long broken;          /* deliveries that could not be applied at all */
};

/* Apply up to limit pending deliveries, oldest first, in one transaction
 * (rows another receiver holds are skipped). *n: how many were applied
 * (fewer than limit: nothing more is pending now). A delivery that fails
 * on its own is marked applied with its error, so that it cannot block the
 * rest. */
enum eng_status eng_inbox_apply(struct eng_db *db, const char *run_id, int limit,
				struct eng_inbox_counts *k, size_t *n, struct eng_err *err);

/* Delete deliveries applied, and inbound event ids recorded, more than
 * days ago (bounded batches). */
enum eng_status eng_inbox_purge(struct eng_db *db, int days, long long *n,
				struct eng_err *err);

#endif
