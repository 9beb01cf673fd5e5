/*
 * The engagement state machine (DESIGN.md §1). It lives in the database,
 * in one place: the table engagement.state_machine (the ten valid
 * transitions) and engagement.transition_users (their guards and side
 * effects: the state, the transition row, the outbox events, a goodbye
 * queued or cancelled), called by engagement.transition_due (the daily
 * checks) and engagement.apply_events (inbound events, a person's
 * messages) of migration 0014. Here: the names of states and triggers,
 * and the daily checks' calls.
 */
#ifndef ENG_STATE_H
#define ENG_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_time.h"

enum eng_state {
	ENG_ST_ACTIVE,
	ENG_ST_GOODBYE_SENT,
	ENG_ST_HELP_FLOW,
	ENG_ST_REMIND_LATER,
	ENG_ST_DORMANT,
	ENG_ST_COUNT,
};

enum eng_trigger {
	ENG_TR_INACTIVITY_14D,
	ENG_TR_USER_MESSAGE,
	ENG_TR_GOODBYE_RESPONSE_1,
	ENG_TR_GOODBYE_RESPONSE_2,
	ENG_TR_GOODBYE_RESPONSE_3,
	ENG_TR_GOODBYE_TIMEOUT,
	ENG_TR_REMINDER_DUE,
	ENG_TR_COUNT,
};

const char *eng_state_name(enum eng_state s);
const char *eng_trigger_name(enum eng_trigger t);
/* -1 when unknown. */
int eng_state_parse(const char *s);
int eng_trigger_parse(const char *s);

/* Defaults of DESIGN.md §1. */
#define ENG_GOODBYE_HOURS 48
#define ENG_REMIND_DAYS 14
#define ENG_INACTIVITY_DAYS 14

/* The daily checks, each a trigger applied to the users its index finds
 * due: inactive (and not opted out), goodbye window over, reminder due. */
enum eng_due_check {
	ENG_DUE_INACTIVITY,
	ENG_DUE_GOODBYE_TIMEOUT,
	ENG_DUE_REMINDER,
};

/* "inactivity", "goodbye_timeout", "reminder_due" */
const char *eng_due_check_name(enum eng_due_check c);

struct eng_due_batch {
	enum eng_due_check check;
	eng_time now;        /* the transitions' instant */
	int inactivity_days; /* 0 means ENG_INACTIVITY_DAYS */
	const char *run_id;
	char after_k[40];    /* keyset: continue after (after_k, after_id); "" */
	char after_id[37];   /*   to start from the beginning */
	int limit;
	int goodbye_hours, remind_days; /* 0 means the defaults */
};

struct eng_due_result {
	size_t picked;     /* users selected (< limit: the check is done) */
	size_t moved;      /* users transitioned (picked, less any changed
			    * meanwhile) */
	size_t queued;     /* goodbye messages queued */
	char last_k[40];   /* keyset of the last user picked */
	char last_id[37];
};

/* Select, lock and transition the next batch of a daily check
 * (engagement.transition_due: one statement). */
enum eng_status eng_transition_due(struct eng_db *db, const struct eng_due_batch *b,
				   struct eng_due_result *res, struct eng_err *err);

/* The same batch's users (user_id, keyset), untouched: what a failed
 * eng_transition_due is retried with (engagement.due_users). */
enum eng_status eng_due_candidates(struct eng_db *db, const struct eng_due_batch *b,
				   PGresult **out, struct eng_err *err);

/* The check for the n users named (still due ones move): moved[i] and
 * queued[i] (a goodbye queued) for ids[i]. */
enum eng_status eng_transition_due_users(struct eng_db *db, const struct eng_due_batch *b,
					 const char *const *ids, size_t n, bool *moved,
					 bool *queued, struct eng_err *err);

#endif
