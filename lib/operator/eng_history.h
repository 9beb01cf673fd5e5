/*
 * One person's history, as engagement-ctl show prints it: the document of
 * engagement.person_history (the person and preferences, the state and its
 * transitions, messages, the consent trail, every audit row, inbound
 * events), masked for a person's eyes unless asked otherwise, as JSON or
 * as a timeline.
 */
#ifndef ENG_HISTORY_H
#define ENG_HISTORY_H

#include <jansson.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_users.h"

/* The document of who (by user_id, else by phone), each list its latest
 * limit entries (0: the database's default, 200), its instants in UTC,
 * into *doc (json_decref it). ENG_ENOUSER ("no user with ...", the phone
 * masked) when there is no such person. Runs in a transaction of its own,
 * or in the caller's when one is open. */
enum eng_status eng_history_fetch(struct eng_db *db, const struct eng_user_ref *who,
				  int limit, json_t **doc, struct eng_err *err);

/* Mask in place: every "phone" value (eng_mask_phone), every value of a
 * message's "params" (its first character and "***"), and phone numbers
 * in every other string (eng_mask_scrub). */
void eng_history_mask(json_t *doc);

/* A template parameter's value masked: its first character (of a string,
 * or of a number's text) and "***"; NULL for anything else (kept). */
json_t *eng_history_mask_param(const json_t *v);

/* The timeline: a line about the person, then one line per event
 * (transitions, messages with their sending and delivery, consent
 * changes, other audit rows, inbound events), in time order. free() it. */
char *eng_history_timeline(const json_t *doc);

#endif
