/*
 * Meta's webhook payload for the WhatsApp Business Account (WHATSAPP.md,
 * "Webhooks"): the inbound messages and the delivery statuses (with their
 * pricing) of the `messages` field, and the account's changes (templates'
 * status and quality, the messaging limit) one delivery carries. Pure: no
 * I/O. What it does not understand
 * (another field, an unknown message type or status, an item without the
 * parts it needs) is counted, not an error: answering Meta with an error
 * would only make it retry for days.
 */
#ifndef ENG_META_H
#define ENG_META_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "eng_err.h"
#include "eng_time.h"

/* A person wrote (value.messages[]). Strings are borrowed from the
 * delivery's parsed body. What it means (a goodbye reply, activity, an
 * opt-out phrase) is the domain's: lib/engagement/eng_inbound.h. */
struct eng_meta_message {
	const char *wamid;
	char phone[24];        /* "+" and the sender's digits (from) */
	eng_time at;           /* its own timestamp */
	const char *type;      /* text, button, interactive, image, ... */
	const char *text;      /* text.body, or NULL */
	const char *payload;   /* a quick-reply button's payload, or an
				* interactive reply's id; NULL otherwise */
};

enum eng_meta_status_kind {
	ENG_MS_SENT = 0,
	ENG_MS_DELIVERED,
	ENG_MS_READ,
	ENG_MS_FAILED,
};

/* What became of a message we sent (value.statuses[]). */
struct eng_meta_status {
	const char *wamid;
	enum eng_meta_status_kind status;
	eng_time at;
	long error_code;       /* failed: errors[0].code, else 0 */
	long long queue_id;    /* from biz_opaque_callback_data "mq:ID", or 0 */
	const char *category;  /* pricing.category, or NULL */
	bool billable;         /* pricing.billable */
};

struct eng_meta_delivery {
	json_t *root;                       /* owns the strings above */
	struct eng_meta_message *messages;
	size_t nmessages, messages_cap;
	struct eng_meta_status *statuses;
	size_t nstatuses, statuses_cap;
	/* the account's changes, as engagement.apply_account_changes takes
	 * them: [{field, time (the entry's Unix seconds), value}] */
	json_t *account;
	/* not understood: counted, ignored */
	long long other_fields;             /* changes of another field */
	long long unknown_types;            /* messages of a type we do not know */
	long long unknown_statuses;         /* statuses other than the four */
	long long malformed;                /* items missing what they need, or
					     * dated over skew_s in the future */
};

const char *eng_meta_status_name(enum eng_meta_status_kind k);

/* Parse one delivery's body. ENG_EDATA when it is not a JSON object (the
 * only thing that is the sender's error); everything else is read or
 * counted. now and skew_s: items dated more than skew_s seconds after now
 * are malformed (as future-dated opt-outs are refused). Release with
 * eng_meta_release, also after an error. */
enum eng_status eng_meta_parse(const char *body, size_t len, eng_time now, int skew_s,
			       struct eng_meta_delivery *d, struct eng_err *err);
void eng_meta_release(struct eng_meta_delivery *d);

#endif
