/*
 * The engagement state machine (DESIGN.md §1): the ten valid transitions,
 * and the one function through which every transition goes.
 *
 * eng_transition_batch() applies one trigger to a set of users in a single
 * statement: it locks their state rows in user_id order, re-checks the
 * trigger's guard under the lock, updates the state, writes one
 * state_transitions row (metadata: days_inactive always, response_type for
 * goodbye triggers, unprompted_return for returns from dormant) and one
 * outbox event per user, and for inactivity_14d queues the goodbye message;
 * a user_message out of goodbye_sent cancels the goodbye still queued.
 * A user whose state does not allow the trigger is left unchanged and simply
 * not reported as moved. Callers own the transaction.
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

/* The state trigger t leads to from state from, or -1 when the pair is not
 * one of the ten valid transitions. */
int eng_transition_target(enum eng_state from, enum eng_trigger t);
/* "goodbye_sent" or "goodbye_sent, help_flow, remind_later or dormant". */
void eng_trigger_sources(enum eng_trigger t, char *out, size_t outsz);

/* Defaults of DESIGN.md §1. */
#define ENG_GOODBYE_HOURS 48
#define ENG_REMIND_DAYS 14
#define ENG_INACTIVITY_DAYS 14

struct eng_tr_batch {
	enum eng_trigger trigger;
	size_t n;
	const char *const *user_ids; /* n validated, distinct UUIDs */
	const eng_time *at;          /* n instants, one per user */
	const char *run_id;          /* correlation id of this run */
	/* Guards re-checked under the row lock; 0 means none. */
	eng_time activity_before;    /* last_activity_at < this */
	eng_time due_before;         /* goodbye_expires_at / remind_at < this */
	bool skip_opted_out;         /* leave opted-out users alone */
	bool after_state_change;     /* an activity: not older than a state
	                                the user entered by a goodbye reply */
	int goodbye_hours;           /* 0 means ENG_GOODBYE_HOURS */
	int remind_days;             /* 0 means ENG_REMIND_DAYS */
};

struct eng_tr_moved {
	size_t index; /* position in the batch's user_ids */
	enum eng_state from;
	bool message_queued;
};

struct eng_tr_result {
	size_t n;
	struct eng_tr_moved *moved; /* caller frees with eng_tr_result_release */
};

enum eng_status eng_transition_batch(struct eng_db *db,
				     const struct eng_tr_batch *b,
				     struct eng_tr_result *res,
				     struct eng_err *err);
void eng_tr_result_release(struct eng_tr_result *res);

/* The daily checks, each a trigger applied to the users its index finds
 * due: inactive (and not opted out), goodbye window over, reminder due. */
enum eng_due_check {
	ENG_DUE_INACTIVITY,
	ENG_DUE_GOODBYE_TIMEOUT,
	ENG_DUE_REMINDER,
};

struct eng_due_batch {
	enum eng_due_check check;
	eng_time cutoff;   /* due when the check's time column < cutoff */
	eng_time now;      /* the transitions' instant */
	const char *run_id;
	char after_k[32];  /* keyset: continue after (after_k, after_id); "" */
	char after_id[37]; /*   to start from the beginning */
	int limit;
	int goodbye_hours, remind_days;
};

struct eng_due_result {
	size_t picked;     /* users selected (< limit: the check is done) */
	size_t moved;      /* users transitioned (picked, less any changed
			    * meanwhile) */
	size_t queued;     /* goodbye messages queued */
	char last_k[32];   /* keyset of the last user picked */
	char last_id[37];
};

enum eng_trigger eng_due_trigger(enum eng_due_check c);

/* Select, lock and transition the next batch of a daily check in one
 * statement, through the same SQL body as eng_transition_batch. */
enum eng_status eng_transition_due(struct eng_db *db,
				   const struct eng_due_batch *b,
				   struct eng_due_result *res,
				   struct eng_err *err);

/* The same batch's users (user_id, keyset time), untouched: what a failed
 * eng_transition_due is retried with, through eng_transition_batch. */
enum eng_status eng_due_candidates(struct eng_db *db,
				   const struct eng_due_batch *b,
				   PGresult **out, struct eng_err *err);

#endif
