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

enum eng_status eng_event_parse_json(const char *text, size_t len,
				     eng_time default_at, eng_time latest,
				     struct eng_event *ev, struct eng_err *err)
{
	long line = ev->line;
	memset(ev, 0, sizeof(*ev));
	ev->line = line;
	ev->at = default_at;

	json_t *o = eng_line_object(text, len, err);
	if (!o)
		return err->status;
	enum eng_status st = ENG_OK;
	int who = 0, what = 0;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		int ref = eng_line_field(key, v, &ev->who, &who, &ev->at, err);
		if (ref < 0) {
			st = err->status;
			goto out;
		}
		if (ref > 0)
			continue;
		if (strcmp(key, "activity") == 0) {
			what++;
			if (!json_is_true(v)) {
				st = eng_err_set(err, ENG_EDATA,
						 "\"activity\" must be true");
				goto out;
			}
			ev->activity = true;
		} else if (strcmp(key, "goodbye_reply") == 0) {
			what++;
			json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
			if (n < 1 || n > 3) {
				st = eng_err_set(err, ENG_EDATA,
						 "\"goodbye_reply\" must be 1, 2 or 3");
				goto out;
			}
			ev->trigger = (enum eng_trigger)(ENG_TR_GOODBYE_RESPONSE_1 + n - 1);
		} else if (strcmp(key, "id") == 0) {
			if (eng_event_id_parse(v, ev->id, err)) {
				st = err->status;
				goto out;
			}
		} else if (strcmp(key, "trigger") == 0) {
			what++;
			int t = json_is_string(v) ? eng_trigger_parse(json_string_value(v))
						  : -1;
			if (t < 0) {
				st = eng_err_set(err, ENG_EDATA,
						 "\"trigger\" is not one of inactivity_14d, "
						 "user_message, goodbye_response_1..3, "
						 "goodbye_timeout, reminder_due");
				goto out;
			}
			ev->trigger = (enum eng_trigger)t;
		} else {
			st = eng_err_set(err, ENG_EDATA, "unknown field \"%.40s\"", key);
			goto out;
		}
	}
	if (who != 1)
		st = eng_err_set(err, ENG_EDATA,
				 "give exactly one of \"user_id\" and \"phone\"");
	else if (ev->at > latest)
		st = future(ev->at, err);
	else if (what != 1)
		st = eng_err_set(err, ENG_EDATA,
				 "give exactly one of \"activity\", \"goodbye_reply\" "
				 "and \"trigger\"");
out:
	json_decref(o);
	return st;
}

/* ---- small helpers ------------------------------------------------------- */

static void fail(struct eng_event *e, enum eng_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct eng_event *e, enum eng_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	eng_err_vset(&e->err, st, fmt, ap);
	va_end(ap);
	e->outcome = ENG_EV_FAILED;
}

/* ---- applying a chunk of events for distinct users ----------------------- */

struct chunk {
	struct eng_event **ev;
	size_t n;
	const char *run_id;
};

struct locked {
	const char *id;
	enum eng_state state;
};

static int cmp_locked(const void *a, const void *b)
{
	return strcmp(((const struct locked *)a)->id, ((const struct locked *)b)->id);
}

/* Arrays of ids and instants for the events of c selected by want. */
static size_t collect(struct chunk *c, size_t off, size_t n,
		      bool (*want)(const struct eng_event *, void *), void *arg,
		      const char **ids, eng_time *ats, struct eng_event **sel)
{
	size_t k = 0;
	for (size_t i = off; i < off + n; i++) {
		struct eng_event *e = c->ev[i];
		if (e->outcome == ENG_EV_FAILED || e->outcome == ENG_EV_DUPLICATE ||
		    !want(e, arg))
			continue;
		ids[k] = e->who.user_id;
		ats[k] = e->at;
		sel[k] = e;
		k++;
	}
	return k;
}

static bool is_activity(const struct eng_event *e, void *arg)
{
	(void)arg;
	return e->activity;
}

static bool any_event(const struct eng_event *e, void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

struct group_key {
	enum eng_trigger trigger;
	const struct locked *states;
	size_t nstates;
};

/* The locked state of a user, or -1 when they have no state row yet. */
static int state_of(const struct group_key *g, const char *id)
{
	struct locked key = {id, ENG_ST_ACTIVE};
	const struct locked *hit = bsearch(&key, g->states, g->nstates,
					   sizeof(*g->states), cmp_locked);
	return hit ? (int)hit->state : -1;
}

/* Events that make trigger g->trigger: named triggers, and activities of
 * users not active (their user_message). */
static bool in_group(const struct eng_event *e, void *arg)
{
	const struct group_key *g = arg;
	if (e->activity) {
		int st = state_of(g, e->who.user_id);
		return g->trigger == ENG_TR_USER_MESSAGE && st >= 0 &&
		       st != ENG_ST_ACTIVE;
	}
	return e->trigger == g->trigger;
}

/* The work of applying events [off, off + n) of a chunk: scratch arrays
 * sized for them, and the users' states once locked. */
struct work {
	struct chunk *c;
	struct eng_db *db;
	size_t off, n;
	const char **ids;          /* of the events selected by collect() */
	eng_time *ats;
	struct eng_event **sel;
	const char **late;         /* activities older than a state change */
	eng_time *late_at;
	size_t nlate;
	struct locked *states;     /* sorted by id */
	size_t nstates;
	PGresult *locked;          /* owns the states' ids */
};

static size_t select_events(struct work *w, bool (*want)(const struct eng_event *, void *),
			    void *arg)
{
	return collect(w->c, w->off, w->n, want, arg, w->ids, w->ats, w->sel);
}

/* Run one statement with the selected users' ids and instants as $1, $2. */
static enum eng_status exec_pairs(struct work *w, const char **ids, const eng_time *ats,
				  size_t k, const char *sql, struct eng_err *err)
{
	char *aids = eng_db_text_array(ids, k);
	char *aats = eng_db_time_array(ats, k);
	const char *p[] = {aids, aats};
	enum eng_status st = eng_db_exec(w->db, sql, 2, p, err);
	free(aids);
	free(aats);
	return st;
}

/* 1. Activities: a state row for users who have none yet. */
static enum eng_status ensure_states(struct work *w, size_t na, struct eng_err *err)
{
	return exec_pairs(w, w->ids, w->ats, na,
			  "INSERT INTO engagement.engagement_states "
			  "(user_id, state, last_activity_at, state_changed_at) "
			  "SELECT i.user_id, 'active', i.at, i.at "
			  "FROM unnest($1::uuid[], $2::timestamptz[]) AS i(user_id, at) "
			  "ON CONFLICT (user_id) DO NOTHING",
			  err);
}

/* 2. Lock every user of the chunk, in user_id order (the order every
 * transition locks in), and keep their states. */
static enum eng_status lock_states(struct work *w, struct eng_err *err)
{
	size_t nall = select_events(w, any_event, NULL);
	char *all = eng_db_text_array(w->ids, nall);
	const char *lp[] = {all};
	w->locked = eng_db_query(w->db,
				 "SELECT user_id::text, state FROM engagement.engagement_states "
				 "WHERE user_id = ANY ($1::uuid[]) ORDER BY user_id FOR UPDATE",
				 1, lp, err);
	free(all);
	if (!w->locked)
		return err->status;
	w->nstates = (size_t)PQntuples(w->locked);
	w->states = eng_xcalloc(w->nstates + 1, sizeof(*w->states));
	for (size_t i = 0; i < w->nstates; i++) {
		w->states[i].id = PQgetvalue(w->locked, (int)i, 0);
		int s = eng_state_parse(PQgetvalue(w->locked, (int)i, 1));
		w->states[i].state = s < 0 ? ENG_ST_ACTIVE : (enum eng_state)s;
	}
	qsort(w->states, w->nstates, sizeof(*w->states), cmp_locked);
	return ENG_OK;
}

/* 3. Activities: the event row, and last_activity_at of the active moves
 * forward. */
static enum eng_status record_activities(struct work *w, struct eng_err *err)
{
	size_t na = select_events(w, is_activity, NULL);
	if (na == 0)
		return ENG_OK;
	return exec_pairs(w, w->ids, w->ats, na,
			  "WITH i AS (SELECT * FROM unnest($1::uuid[], "
			  "  $2::timestamptz[]) AS i(user_id, at)), "
			  "ins AS (INSERT INTO engagement.activity_events "
			  "  (user_id, occurred_at, kind) "
			  "  SELECT user_id, at, 'message' FROM i) "
			  "UPDATE engagement.engagement_states s "
			  "SET last_activity_at = i.at FROM i "
			  "WHERE s.user_id = i.user_id AND s.state = 'active' "
			  "AND s.last_activity_at < i.at",
			  err);
}

/* Why an event of trigger t did not move its user (state s, -1 for none):
 * an activity older than the state it would undo is history; anything
 * else fails with the reason. */
static void not_moved(struct work *w, struct eng_event *e, enum eng_trigger t, int s)
{
	if (e->activity) {
		e->outcome = ENG_EV_RECORDED;
		e->from = e->to = (enum eng_state)s;
		w->late[w->nlate] = e->who.user_id;
		w->late_at[w->nlate++] = e->at;
		return;
	}
	if (s < 0) {
		fail(e, ENG_EDATA,
		     "invalid transition: user %s has no engagement state yet (no "
		     "activity recorded), and %s needs one",
		     e->who.user_id, eng_trigger_name(t));
		return;
	}
	e->from = e->to = (enum eng_state)s;
	if (eng_transition_target((enum eng_state)s, t) >= 0) {
		/* a valid source: refused by the guard that keeps a state the
		 * user chose by a newer reply */
		char at[32];
		eng_time_format(e->at, at);
		fail(e, ENG_EDATA,
		     "invalid transition: user %s chose state %s by a goodbye reply "
		     "made after this %s (at %s)",
		     e->who.user_id, eng_state_name((enum eng_state)s), eng_trigger_name(t),
		     at);
		return;
	}
	char srcs[128];
	eng_trigger_sources(t, srcs, sizeof(srcs));
	fail(e, ENG_EDATA,
	     "invalid transition: user %s is in state %s, and %s applies only from %s",
	     e->who.user_id, eng_state_name((enum eng_state)s), eng_trigger_name(t), srcs);
	e->from = e->to = (enum eng_state)s;
}

/* 4. The transitions of one trigger, through the one transition function. */
static enum eng_status transition(struct work *w, enum eng_trigger t, struct eng_err *err)
{
	struct group_key g = {t, w->states, w->nstates};
	size_t k = select_events(w, in_group, &g);
	if (k == 0)
		return ENG_OK;
	struct eng_tr_batch tb = {0};
	tb.trigger = t;
	tb.n = k;
	tb.user_ids = w->ids;
	tb.at = w->ats;
	tb.run_id = w->c->run_id;
	/* an activity older than the state it would undo is history */
	tb.after_state_change = t == ENG_TR_USER_MESSAGE;
	struct eng_tr_result res;
	if (eng_transition_batch(w->db, &tb, &res, err))
		return err->status;
	for (size_t m = 0; m < res.n; m++) {
		struct eng_event *e = w->sel[res.moved[m].index];
		e->outcome = ENG_EV_TRANSITIONED;
		e->from = res.moved[m].from;
		e->to = (enum eng_state)eng_transition_target(e->from, t);
	}
	eng_tr_result_release(&res);
	for (size_t m = 0; m < k; m++)
		if (w->sel[m]->outcome != ENG_EV_TRANSITIONED)
			not_moved(w, w->sel[m], t, state_of(&g, w->sel[m]->who.user_id));
	return ENG_OK;
}

/* 5. Late activities still move last_activity_at forward: after the
 * transitions, whose days_inactive reads the previous value. */
static enum eng_status late_activities(struct work *w, struct eng_err *err)
{
	if (w->nlate == 0)
		return ENG_OK;
	return exec_pairs(w, w->late, w->late_at, w->nlate,
			  "UPDATE engagement.engagement_states s "
			  "SET last_activity_at = i.at "
			  "FROM unnest($1::uuid[], $2::timestamptz[]) AS i(user_id, at) "
			  "WHERE s.user_id = i.user_id AND s.last_activity_at < i.at",
			  err);
}

static bool has_id(const struct eng_event *e, void *arg)
{
	(void)arg;
	return e->id[0] != '\0';
}

/* 0. Events whose id was applied before are duplicates: they change
 * nothing. (Two runs applying the same id at once: the second's insert in
 * remember() violates the key, its chunk is retried, and then it sees the
 * first's.) */
static enum eng_status seen_before(struct work *w, struct eng_err *err)
{
	size_t k = 0;
	for (size_t i = w->off; i < w->off + w->n; i++)
		if (w->c->ev[i]->outcome == ENG_EV_PENDING && has_id(w->c->ev[i], NULL))
			w->ids[k++] = w->c->ev[i]->id;
	if (k == 0)
		return ENG_OK;
	char *arr = eng_db_text_array(w->ids, k);
	const char *p[] = {arr};
	PGresult *r = eng_db_query(w->db,
				   "SELECT event_id FROM engagement.inbound_events "
				   "WHERE kind = 'event' AND event_id = ANY ($1::text[])",
				   1, p, err);
	free(arr);
	if (!r)
		return err->status;
	for (int j = 0; j < PQntuples(r); j++)
		for (size_t i = w->off; i < w->off + w->n; i++) {
			struct eng_event *e = w->c->ev[i];
			if (e->outcome == ENG_EV_PENDING && strcmp(e->id, PQgetvalue(r, j, 0)) == 0)
				e->outcome = ENG_EV_DUPLICATE;
		}
	PQclear(r);
	return ENG_OK;
}

/* 6. The ids of what was applied, with what it produced. */
static enum eng_status remember(struct work *w, struct eng_err *err)
{
	json_t *rows = json_array();
	for (size_t i = w->off; i < w->off + w->n; i++) {
		struct eng_event *e = w->c->ev[i];
		if (!e->id[0] || (e->outcome != ENG_EV_TRANSITIONED && e->outcome != ENG_EV_RECORDED))
			continue;
		json_array_append_new(
			rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "event_id", e->id,
					"user_id", e->who.user_id, "outcome",
					eng_ev_outcome_name(e->outcome), "action",
					e->activity ? "activity" : eng_trigger_name(e->trigger),
					"from_state", eng_state_name(e->from), "to_state",
					eng_state_name(e->to)));
	}
	enum eng_status st = ENG_OK;
	if (json_array_size(rows)) {
		char *text = eng_json_dump(rows);
		const char *p[] = {text, w->c->run_id};
		st = eng_db_exec(w->db,
				 "INSERT INTO engagement.inbound_events "
				 "(event_id, kind, user_id, outcome, detail, run_id) "
				 "SELECT x.event_id, 'event', x.user_id, x.outcome,"
				 "  jsonb_build_object('action', x.action, 'from_state', x.from_state,"
				 "    'to_state', x.to_state), $2::uuid "
				 "FROM jsonb_to_recordset($1::jsonb) AS x(event_id text, user_id uuid,"
				 "  outcome text, action text, from_state text, to_state text)",
				 2, p, err);
		free(text);
	}
	json_decref(rows);
	return st;
}

static enum eng_status apply(struct chunk *c, struct eng_db *db, size_t off,
			     size_t n, struct eng_err *err)
{
	struct work w = {
		.c = c, .db = db, .off = off, .n = n,
		.ids = eng_xcalloc(n, sizeof(*w.ids)),
		.ats = eng_xcalloc(n, sizeof(*w.ats)),
		.sel = eng_xcalloc(n, sizeof(*w.sel)),
		.late = eng_xcalloc(n, sizeof(*w.late)),
		.late_at = eng_xcalloc(n, sizeof(*w.late_at)),
	};
	enum eng_status st = seen_before(&w, err);
	size_t na = st == ENG_OK ? select_events(&w, is_activity, NULL) : 0;
	if (st == ENG_OK && na)
		st = ensure_states(&w, na, err);
	if (st == ENG_OK)
		st = lock_states(&w, err);
	if (st == ENG_OK)
		st = record_activities(&w, err);
	for (int t = 0; st == ENG_OK && t < ENG_TR_COUNT; t++)
		st = transition(&w, (enum eng_trigger)t, err);
	if (st == ENG_OK)
		st = late_activities(&w, err);
	/* activities of active users: recorded, no transition */
	for (size_t i = off; st == ENG_OK && i < off + n; i++) {
		struct eng_event *e = c->ev[i];
		if (e->activity && e->outcome == ENG_EV_PENDING) {
			e->outcome = ENG_EV_RECORDED;
			e->from = e->to = ENG_ST_ACTIVE;
		}
	}
	if (st == ENG_OK)
		st = remember(&w, err);
	PQclear(w.locked);
	free(w.states);
	free(w.ids);
	free(w.ats);
	free(w.sel);
	free(w.late);
	free(w.late_at);
	return st;
}

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

static enum eng_status ev_apply(void *ctx, struct eng_db *db, const size_t *idx,
				size_t k, struct eng_err *err)
{
	struct items_ctx *x = ctx;
	struct eng_event **sel = eng_xcalloc(k + 1, sizeof(*sel));
	for (size_t i = 0; i < k; i++) {
		sel[i] = &x->ev[idx[i]];
		sel[i]->outcome = ENG_EV_PENDING; /* a retried run starts afresh */
	}
	struct chunk c = {sel, k, x->run_id};
	enum eng_status st = apply(&c, db, 0, k, err);
	free(sel);
	return st;
}

enum eng_status eng_events_apply(struct eng_db *db, struct eng_event *ev,
				 size_t n, const char *run_id, bool dry_run,
				 struct eng_ev_counts *counts,
				 struct eng_err *err)
{
	struct items_ctx x = {ev, run_id};
	struct eng_items it = {n, &x, ev_who, ev_failed, ev_fail, ev_apply};
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
