#include "eng_event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_parse.h"


/* ---- parsing ----------------------------------------------------------- */

/* An event dated more than ENG_FUTURE_SKEW_S ahead of now is refused, as
 * opt-outs are: it would freeze last_activity_at (last write wins). */
static enum eng_status future(eng_time at, struct eng_err *err)
{
	char ts[32];
	eng_time_format_ms(at, ts);
	return eng_err_set(err, ENG_EDATA,
			   "the event is dated %s, more than %d minutes ahead of the "
			   "database clock: refused",
			   ts, ENG_FUTURE_SKEW_S / 60);
}

struct event_fields {
	struct eng_event *ev;
	int what; /* activity, goodbye_reply and trigger seen */
};

static int event_field(void *ctx, const char *key, const json_t *v, struct eng_err *err)
{
	struct event_fields *f = ctx;
	if (strcmp(key, "activity") == 0) {
		f->what++;
		if (!json_is_true(v)) {
			eng_err_set(err, ENG_EDATA, "\"activity\" must be true");
			return -1;
		}
		f->ev->activity = true;
	} else if (strcmp(key, "goodbye_reply") == 0) {
		f->what++;
		json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
		if (n < 1 || n > 3) {
			eng_err_set(err, ENG_EDATA, "\"goodbye_reply\" must be 1, 2 or 3");
			return -1;
		}
		f->ev->trigger = (enum eng_trigger)(ENG_TR_GOODBYE_RESPONSE_1 + n - 1);
	} else if (strcmp(key, "trigger") == 0) {
		f->what++;
		int t = json_is_string(v) ? eng_trigger_parse(json_string_value(v)) : -1;
		if (t < 0) {
			eng_err_set(err, ENG_EDATA,
				    "\"trigger\" is not one of inactivity_14d, "
				    "user_message, goodbye_response_1..3, "
				    "goodbye_timeout, reminder_due");
			return -1;
		}
		f->ev->trigger = (enum eng_trigger)t;
	} else {
		return 0;
	}
	return 1;
}

enum eng_status eng_event_parse_json(const char *text, size_t len,
				     eng_time default_at, eng_time latest,
				     struct eng_event *ev, struct eng_err *err)
{
	long line = ev->line;
	memset(ev, 0, sizeof(*ev));
	ev->line = line;
	ev->at = default_at;

	struct event_fields f = {ev, 0};
	if (eng_line_parse(text, len, &ev->who, &ev->at, ev->id, event_field, &f, err))
		return err->status;
	if (ev->at > latest)
		return future(ev->at, err);
	if (f.what != 1)
		return eng_err_set(err, ENG_EDATA,
				   "give exactly one of \"activity\", \"goodbye_reply\" "
				   "and \"trigger\"");
	return ENG_OK;
}

/* ---- applying events: engagement.apply_events --------------------------------- */

struct items_ctx {
	struct eng_event *ev;
	const char *run_id;
};

static struct eng_user_ref *ev_who(void *ctx, size_t i)
{
	return &((struct items_ctx *)ctx)->ev[i].who;
}

static bool ev_failed(void *ctx, size_t i)
{
	return ((struct items_ctx *)ctx)->ev[i].outcome == ENG_EV_FAILED;
}

static void ev_fail(void *ctx, size_t i, const struct eng_err *e)
{
	struct eng_event *ev = &((struct items_ctx *)ctx)->ev[i];
	ev->err = *e;
	ev->outcome = ENG_EV_FAILED;
}

static int state_or(const char *name)
{
	int s = eng_state_parse(name);
	return s < 0 ? ENG_ST_ACTIVE : s;
}

/* The outcome of event e as the function reported it. */
static void take_result(struct eng_event *e, const PGresult *r, int row)
{
	const char *outcome = PQgetvalue(r, row, 1);
	e->from = (enum eng_state)state_or(PQgetvalue(r, row, 2));
	e->to = (enum eng_state)state_or(PQgetvalue(r, row, 3));
	if (strcmp(outcome, "transitioned") == 0) {
		e->outcome = ENG_EV_TRANSITIONED;
	} else if (strcmp(outcome, "recorded") == 0) {
		e->outcome = ENG_EV_RECORDED;
	} else if (strcmp(outcome, "duplicate") == 0) {
		e->outcome = ENG_EV_DUPLICATE;
	} else {
		e->outcome = ENG_EV_FAILED;
		eng_err_set(&e->err, strcmp(outcome, "unknown_user") == 0 ? ENG_ENOUSER : ENG_EDATA,
			    "%s", PQgetvalue(r, row, 4));
	}
}

/* Items idx[0..k) in order (one person's several in order): one call. */
static enum eng_status ev_apply(void *ctx, struct eng_db *db, const size_t *idx,
				size_t k, struct eng_err *err)
{
	struct items_ctx *x = ctx;
	json_t *arr = json_array();
	for (size_t i = 0; i < k; i++) {
		struct eng_event *e = &x->ev[idx[i]];
		char at[32];
		e->outcome = ENG_EV_PENDING; /* a retried range starts afresh */
		eng_time_format(e->at, at);
		json_t *o = json_pack("{s:s, s:s}", "user_id", e->who.user_id, "at", at);
		if (e->activity)
			json_object_set_new(o, "activity", json_true());
		else
			json_object_set_new(o, "trigger", json_string(eng_trigger_name(e->trigger)));
		if (e->id[0])
			json_object_set_new(o, "event_id", json_string(e->id));
		json_array_append_new(arr, o);
	}
	char *events = eng_json_dump(arr);
	json_decref(arr);
	const char *p[] = {events, x->run_id};
	PGresult *r = eng_db_query(db,
				   "SELECT ord, outcome, from_state, to_state, error"
				   " FROM engagement.apply_events($1::jsonb, $2::uuid) ORDER BY ord",
				   2, p, err);
	free(events);
	if (!r)
		return err->status;
	for (int row = 0; row < PQntuples(r); row++) {
		size_t i = (size_t)atoll(PQgetvalue(r, row, 0)) - 1;
		if (i < k)
			take_result(&x->ev[idx[i]], r, row);
	}
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_events_apply(struct eng_db *db, struct eng_event *ev,
				 size_t n, const char *run_id, bool dry_run,
				 struct eng_ev_counts *counts,
				 struct eng_err *err)
{
	struct items_ctx x = {ev, run_id};
	/* one person's events in one call, in order: the function applies
	 * them round by round */
	struct eng_items it = {n, &x, ev_who, ev_failed, ev_fail, ev_apply, true};
	size_t done;
	enum eng_status st = eng_items_apply(db, &it, dry_run, &done, err);
	for (size_t i = done; i < n; i++)
		ev[i].outcome = ENG_EV_PENDING; /* rolled back or not reached */
	for (size_t i = 0; i < done; i++) {
		switch (ev[i].outcome) {
		case ENG_EV_TRANSITIONED:
			counts->transitions++;
			counts->applied++;
			counts->activities += ev[i].activity;
			break;
		case ENG_EV_RECORDED:
			counts->applied++;
			counts->activities += ev[i].activity;
			break;
		case ENG_EV_FAILED:
			counts->failed++;
			break;
		case ENG_EV_DUPLICATE:
			counts->duplicates++;
			break;
		case ENG_EV_PENDING:
			break;
		}
	}
	return st;
}

/* ---- engagement-event ------------------------------------------------------------ */

static const char *action_name(const struct eng_event *e)
{
	return e->activity ? "activity" : eng_trigger_name(e->trigger);
}

const char *eng_ev_outcome_name(enum eng_ev_outcome o)
{
	switch (o) {
	case ENG_EV_TRANSITIONED: return "transitioned";
	case ENG_EV_RECORDED: return "recorded";
	case ENG_EV_FAILED: return "failed";
	case ENG_EV_DUPLICATE: return "duplicate";
	case ENG_EV_PENDING: break;
	}
	return "pending";
}

enum eng_status eng_event_from_args(const struct eng_event_args *a, struct eng_event *ev,
				    struct eng_err *err)
{
	memset(ev, 0, sizeof(*ev));
	ev->at = ENG_TIME_NONE;
	if (eng_user_ref_from_args(a->user, a->phone, &ev->who, err))
		return err->status;
	if (a->at && eng_time_parse(a->at, &ev->at)) {
		eng_err_set(err, ENG_EDATA,
			    "invalid --at \"%.60s\": expected an RFC 3339 timestamp such "
			    "as 2026-11-22T06:00:00Z",
			    a->at);
		return eng_err_event(err, "invalid_input");
	}
	ev->activity = a->activity;
	ev->trigger = a->activity ? ENG_TR_USER_MESSAGE : (enum eng_trigger)a->trigger;
	if (a->id) {
		json_t *v = json_string(a->id);
		enum eng_status st = eng_event_id_parse(v, ev->id, err);
		json_decref(v);
		if (st) {
			eng_err_prefix(err, "invalid --id");
			return eng_err_event(err, "invalid_input");
		}
	}
	return ENG_OK;
}

enum eng_status eng_event_one(const struct eng_job *job, struct eng_event *ev,
			      struct eng_err *err)
{
	if (ev->at == ENG_TIME_NONE)
		ev->at = job->now;
	if (ev->at > eng_job_latest(job)) {
		future(ev->at, err);
		return eng_err_event(err, "invalid_input");
	}
	struct eng_ev_counts k = {0};
	if (job->dry_run && eng_db_begin(job->db, err))
		return err->status;
	enum eng_status st = eng_events_apply(job->db, ev, 1, job->run_id, job->dry_run,
					      &k, err);
	if (job->dry_run)
		eng_db_rollback(job->db);
	if (st)
		return st;

	char at[32];
	eng_time_format(ev->at, at);
	eng_job_set_str(job, "user_id", ev->who.user_id[0] ? ev->who.user_id : NULL);
	eng_job_set_str(job, "action", action_name(ev));
	eng_job_set_str(job, "at", at);
	eng_job_set_str(job, "outcome", eng_ev_outcome_name(ev->outcome));
	if (ev->id[0])
		eng_job_set_str(job, "id", ev->id);
	if (ev->outcome == ENG_EV_FAILED) {
		*err = ev->err;
		return eng_err_event(err, err->status == ENG_ENOUSER ? "unknown_user"
								    : "event_rejected");
	}
	if (ev->outcome == ENG_EV_DUPLICATE) {
		eng_log(ENG_INFO, "event_duplicate", ENG_S("id", ev->id),
			ENG_S("user_id", ev->who.user_id));
		return ENG_OK;
	}
	eng_job_set_str(job, "from_state", eng_state_name(ev->from));
	eng_job_set_str(job, "to_state", eng_state_name(ev->to));
	eng_log(ENG_INFO, "event_applied", ENG_S("user_id", ev->who.user_id),
		ENG_S("action", action_name(ev)),
		ENG_S("outcome", eng_ev_outcome_name(ev->outcome)),
		ENG_S("from_state", eng_state_name(ev->from)),
		ENG_S("to_state", eng_state_name(ev->to)));
	return ENG_OK;
}

#define BLOCK 10000

struct batch {
	struct eng_event *ev; /* the block */
	eng_time now, latest;
	struct eng_ev_counts k;
	long long malformed;
};

/* A malformed line stays in the block, failed, to be reported in order. */
static void take_line(void *ctx, size_t i, long lineno, const char *text, size_t len,
		      bool too_long)
{
	struct batch *b = ctx;
	struct eng_event *e = &b->ev[i];
	struct eng_err perr = ENG_ERR_INIT;
	e->line = lineno;
	if (too_long)
		eng_err_set(&perr, ENG_EDATA, "line longer than %d bytes", ENG_LINE_MAX);
	else
		eng_event_parse_json(text, len, b->now, b->latest, e, &perr);
	if (perr.status) {
		b->malformed++;
		memset(e, 0, sizeof(*e));
		e->line = lineno;
		e->err = perr;
		e->outcome = ENG_EV_FAILED;
	}
}

static enum eng_status apply_block(void *ctx, const struct eng_job *job, size_t n,
				   struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_ev_counts bk = {0};
	enum eng_status st = eng_events_apply(job->db, b->ev, n, job->run_id, job->dry_run,
					      &bk, err);
	for (size_t i = 0; i < n; i++)
		if (b->ev[i].outcome == ENG_EV_FAILED)
			eng_log_line_failed(b->ev[i].line, b->ev[i].who.user_id, &b->ev[i].err);
	b->k.applied += bk.applied;
	b->k.failed += bk.failed;
	b->k.transitions += bk.transitions;
	b->k.activities += bk.activities;
	b->k.duplicates += bk.duplicates;
	return st;
}

static bool summarize(void *ctx, const struct eng_job *job)
{
	struct batch *b = ctx;
	eng_job_set_int(job, "applied", b->k.applied);
	eng_job_set_int(job, "failed", b->k.failed);
	eng_job_set_int(job, "malformed", b->malformed);
	eng_job_set_int(job, "transitions", b->k.transitions);
	eng_job_set_int(job, "activities", b->k.activities);
	eng_job_set_int(job, "duplicates", b->k.duplicates);
	return b->k.failed > 0;
}

enum eng_status eng_event_batch(const struct eng_job *job, const char *path,
				struct eng_err *err)
{
	struct batch b = {.ev = eng_xcalloc(BLOCK, sizeof(*b.ev)), .now = job->now,
			  .latest = eng_job_latest(job)};
	struct eng_line_job lj = {path, BLOCK, take_line, apply_block, summarize, &b};
	enum eng_status st = eng_lines_run(job, &lj, err);
	free(b.ev);
	return st;
}
