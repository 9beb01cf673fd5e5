/*
 * Inbound events (engagement-event): user activity and goodbye replies.
 *
 * An activity records an activity_events row, moves last_activity_at
 * forward, and makes the user_message transition where one is valid (an
 * activity older than the current state's start is recorded only). A
 * goodbye reply or a named trigger makes that transition; where it is not
 * valid, nothing changes and the event fails with the user's state.
 *
 * Events are applied in order. Set-based: users are resolved in bulk, and
 * each run of events for distinct users is one transaction of a few
 * statements; an SQL failure there is retried event by event.
 */
#ifndef ENG_EVENT_H
#define ENG_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_job.h"
#include "eng_state.h"
#include "eng_time.h"
#include "eng_users.h"

enum eng_ev_outcome {
	ENG_EV_PENDING = 0,
	ENG_EV_TRANSITIONED, /* the state changed */
	ENG_EV_RECORDED,     /* activity recorded, no transition needed */
	ENG_EV_FAILED,       /* err says why */
	ENG_EV_DUPLICATE,    /* its id was applied before: nothing changed */
};

struct eng_event {
	/* input */
	long line;             /* batch line number (0 on the command line) */
	struct eng_user_ref who; /* by id or phone */
	bool activity;         /* else a transition by trigger */
	enum eng_trigger trigger;
	eng_time at;           /* ENG_TIME_NONE on the command line: the run's now */
	char id[ENG_EVENT_ID_MAX + 1]; /* "" when it has none */
	/* outcome */
	enum eng_ev_outcome outcome;
	enum eng_state from, to;
	struct eng_err err;
};

struct eng_ev_counts {
	long long applied, failed, transitions, activities, duplicates;
};

/* Parse one JSON line of a batch into ev (line number set by the caller).
 * ENG_EDATA with a message on a malformed line, or one dated after latest.
 * default_at is used when the line has no "at". */
enum eng_status eng_event_parse_json(const char *text, size_t len,
				     eng_time default_at, eng_time latest,
				     struct eng_event *ev, struct eng_err *err);

/* Apply n events in order. Each gets an outcome. If dry_run, the caller
 * holds one transaction around everything; otherwise each chunk commits.
 * Returns an error only when the whole run must stop. */
enum eng_status eng_events_apply(struct eng_db *db, struct eng_event *ev,
				 size_t n, const char *run_id, bool dry_run,
				 struct eng_ev_counts *counts,
				 struct eng_err *err);

const char *eng_ev_outcome_name(enum eng_ev_outcome o);

/* engagement-event with one event named on the command line. */
struct eng_event_args {
	const char *user, *phone, *at, *id;
	bool activity;
	int trigger;         /* without activity */
};
/* The arguments' data into ev: ENG_EDATA (event invalid_input) when the
 * UUID, phone or timestamp is malformed. */
enum eng_status eng_event_from_args(const struct eng_event_args *a, struct eng_event *ev,
				    struct eng_err *err);
/* Apply ev (at the job's now when it has no instant) and report it in the
 * summary; an event that fails is the run's error (unknown_user,
 * event_rejected). */
enum eng_status eng_event_one(const struct eng_job *job, struct eng_event *ev,
			      struct eng_err *err);
/* engagement-event --batch PATH. */
enum eng_status eng_event_batch(const struct eng_job *job, const char *path,
				struct eng_err *err);

#endif
