/*
 * What a message a person wrote means (DESIGN.md §2.3 engagement-webhook,
 * "Inbound messages"), whichever adapter read it off the wire
 * (lib/inbound/eng_meta.c for WhatsApp's webhook):
 *
 * - from a person in goodbye_sent, their first message here that is a text
 *   "1", "2" or "3" (or a quick-reply button whose payload is goodbye_1..3)
 *   is the goodbye reply instead of activity, as engagement-event
 *   --goodbye-reply treats it;
 * - any other message is activity at its own instant, as engagement-event
 *   --activity applies it;
 * - a text that is an opt-out or opt-in phrase (eng_phrase.h) also changes
 *   the preference, source whatsapp, at the message's instant.
 *
 * The meaning is what the existing paths already apply: events for
 * eng_events_apply (eng_event.h) and preference items for
 * eng_optout_apply_items with ENG_VIA_WHATSAPP (eng_optout.h), both with
 * the message's id as their identity.
 */
#ifndef ENG_INBOUND_H
#define ENG_INBOUND_H

#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_event.h"
#include "eng_optout.h"
#include "eng_time.h"
#include "eng_users.h"

/* A message a person wrote, as its channel's adapter read it. Strings are
 * borrowed. */
struct eng_inbound_msg {
	struct eng_user_ref who; /* its sender, resolved (eng_users_resolve) */
	eng_time at;             /* its own instant */
	const char *id;          /* the provider's message id (a wamid) */
	const char *text;        /* what they typed, or NULL */
	const char *payload;     /* a quick-reply button's payload, or an
				  * interactive reply's id; NULL otherwise */
};

/* Messages into events (and phrase changes into preference items). */
struct eng_inbound {
	struct eng_event *ev;
	size_t nev;
	struct eng_optout_item *pref;
	size_t npref;
};

/* The goodbye reply a message is, for a user in goodbye_sent: 1, 2 or 3
 * (a text "1".."3", or a button payload / reply id goodbye_1..3), else 0. */
int eng_inbound_goodbye_reply(const struct eng_inbound_msg *m);

/* What n messages mean, in the order they were written (the caller sorts:
 * a provider need not keep it), given who is in goodbye_sent now
 * (goodbye_sent: their ids, sorted by strcmp). Messages from unknown
 * people (who.found false) mean nothing. in is filled; release it with
 * eng_inbound_release (also after eng_inbound_read's error). Pure. */
void eng_inbound_interpret(const struct eng_inbound_msg *m, size_t n,
			   const char *const *goodbye_sent, size_t ngs,
			   struct eng_inbound *in);

/* The same, with who is in goodbye_sent read from engagement_states (one
 * query, in the caller's transaction). */
enum eng_status eng_inbound_read(struct eng_db *db, const struct eng_inbound_msg *m,
				 size_t n, struct eng_inbound *in, struct eng_err *err);

void eng_inbound_release(struct eng_inbound *in);

#endif
