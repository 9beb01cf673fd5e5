#include "eng_event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"
#include "eng_parse.h"


/* ---- parsing ----------------------------------------------------------- */

enum eng_status eng_event_parse_json(const char *text, size_t len,
				     eng_time default_at, struct eng_event *ev,
				     struct eng_err *err)
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
		if (e->outcome == ENG_EV_FAILED || !want(e, arg))
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

static enum eng_status apply(struct chunk *c, struct eng_db *db, size_t off,
			     size_t n, struct eng_err *err)
{
	const char **ids = eng_xcalloc(n, sizeof(*ids));
	eng_time *ats = eng_xcalloc(n, sizeof(*ats));
	struct eng_event **sel = eng_xcalloc(n, sizeof(*sel));
	const char **late = eng_xcalloc(n, sizeof(*late));
	eng_time *late_at = eng_xcalloc(n, sizeof(*late_at));
	size_t nlate = 0;
	struct locked *states = NULL;
	PGresult *r = NULL;
	char *aids = NULL, *aats = NULL;
	enum eng_status st = ENG_OK;

	/* 1. activities: make sure the user has a state row */
	size_t na = collect(c, off, n, is_activity, NULL, ids, ats, sel);
	if (na) {
		aids = eng_pg_array(ids, na);
		aats = eng_pg_time_array(ats, na);
		const char *p[] = {aids, aats};
		if ((st = eng_db_exec(db,
				      "INSERT INTO engagement.engagement_states "
				      "(user_id, state, last_activity_at, state_changed_at) "
				      "SELECT i.user_id, 'active', i.at, i.at "
				      "FROM unnest($1::uuid[], $2::timestamptz[]) AS i(user_id, at) "
				      "ON CONFLICT (user_id) DO NOTHING",
				      2, p, err)))
			goto out;
	}

	/* 2. lock every user of the chunk, in user_id order */
	size_t nall = collect(c, off, n, any_event, NULL, ids, ats, sel);
	char *all = eng_pg_array(ids, nall);
	const char *lp[] = {all};
	r = eng_db_query(db,
			 "SELECT user_id::text, state FROM engagement.engagement_states "
			 "WHERE user_id = ANY ($1::uuid[]) ORDER BY user_id FOR UPDATE",
			 1, lp, err);
	free(all);
	if (!r) {
		st = err->status;
		goto out;
	}
	size_t nst = (size_t)PQntuples(r);
	states = eng_xcalloc(nst + 1, sizeof(*states));
	for (size_t i = 0; i < nst; i++) {
		states[i].id = PQgetvalue(r, (int)i, 0);
		int s = eng_state_parse(PQgetvalue(r, (int)i, 1));
		states[i].state = s < 0 ? ENG_ST_ACTIVE : (enum eng_state)s;
	}
	qsort(states, nst, sizeof(*states), cmp_locked);

	/* 3. activities: the event row, and last_activity_at moves forward */
	if (na) {
		const char *p[] = {aids, aats};
		if ((st = eng_db_exec(db,
				      "WITH i AS (SELECT * FROM unnest($1::uuid[], "
				      "  $2::timestamptz[]) AS i(user_id, at)), "
				      "ins AS (INSERT INTO engagement.activity_events "
				      "  (user_id, occurred_at, kind) "
				      "  SELECT user_id, at, 'message' FROM i) "
				      "UPDATE engagement.engagement_states s "
				      "SET last_activity_at = i.at FROM i "
				      "WHERE s.user_id = i.user_id AND s.state = 'active' "
				      "AND s.last_activity_at < i.at",
				      2, p, err)))
			goto out;
	}

	/* 4. transitions, one statement per trigger present */
	for (int t = 0; t < ENG_TR_COUNT; t++) {
		struct group_key g = {(enum eng_trigger)t, states, nst};
		size_t k = collect(c, off, n, in_group, &g, ids, ats, sel);
		if (k == 0)
			continue;
		struct eng_tr_batch tb = {0};
		tb.trigger = (enum eng_trigger)t;
		tb.n = k;
		tb.user_ids = ids;
		tb.at = ats;
		tb.run_id = c->run_id;
		/* an activity older than the state it would undo is history */
		tb.after_state_change = t == ENG_TR_USER_MESSAGE;
		struct eng_tr_result res;
		if ((st = eng_transition_batch(db, &tb, &res, err)))
			goto out;
		for (size_t m = 0; m < res.n; m++) {
			struct eng_event *e = sel[res.moved[m].index];
			e->outcome = ENG_EV_TRANSITIONED;
			e->from = res.moved[m].from;
			e->to = (enum eng_state)eng_transition_target(e->from, tb.trigger);
		}
		eng_tr_result_release(&res);
		for (size_t m = 0; m < k; m++) {
			struct eng_event *e = sel[m];
			if (e->outcome == ENG_EV_TRANSITIONED)
				continue;
			int s = state_of(&g, e->who.user_id);
			if (e->activity) {
				/* older than the state it would undo: history */
				e->outcome = ENG_EV_RECORDED;
				e->from = e->to = (enum eng_state)s;
				late[nlate] = e->who.user_id;
				late_at[nlate++] = e->at;
				continue;
			}
			if (s < 0) {
				fail(e, ENG_EDATA,
				     "invalid transition: user %s has no engagement "
				     "state yet (no activity recorded), and %s needs one",
				     e->who.user_id, eng_trigger_name(tb.trigger));
				continue;
			}
			if (eng_transition_target((enum eng_state)s, tb.trigger) >= 0) {
				/* a valid source: refused by the guard that keeps
				 * a state the user chose by a newer reply */
				char at[32];
				eng_time_format(e->at, at);
				fail(e, ENG_EDATA,
				     "invalid transition: user %s chose state %s by a "
				     "goodbye reply made after this %s (at %s)",
				     e->who.user_id, eng_state_name((enum eng_state)s),
				     eng_trigger_name(tb.trigger), at);
				e->from = e->to = (enum eng_state)s;
				continue;
			}
			char srcs[128];
			eng_trigger_sources(tb.trigger, srcs, sizeof(srcs));
			fail(e, ENG_EDATA,
			     "invalid transition: user %s is in state %s, and %s "
			     "applies only from %s",
			     e->who.user_id, eng_state_name((enum eng_state)s),
			     eng_trigger_name(tb.trigger), srcs);
			e->from = e->to = (enum eng_state)s;
		}
	}
	/* late activities still move last_activity_at forward; done after
	 * the transitions, whose days_inactive reads the previous value */
	if (nlate) {
		char *lids = eng_pg_array(late, nlate);
		char *lats = eng_pg_time_array(late_at, nlate);
		const char *p[] = {lids, lats};
		st = eng_db_exec(db,
				 "UPDATE engagement.engagement_states s "
				 "SET last_activity_at = i.at "
				 "FROM unnest($1::uuid[], $2::timestamptz[]) AS i(user_id, at) "
				 "WHERE s.user_id = i.user_id AND s.last_activity_at < i.at",
				 2, p, err);
		free(lids);
		free(lats);
		if (st)
			goto out;
	}
	/* activities of active users: recorded, no transition */
	for (size_t i = off; i < off + n; i++) {
		struct eng_event *e = c->ev[i];
		if (e->activity && e->outcome == ENG_EV_PENDING) {
			e->outcome = ENG_EV_RECORDED;
			e->from = e->to = ENG_ST_ACTIVE;
		}
	}
out:
	PQclear(r);
	free(states);
	free(aids);
	free(aats);
	free(ids);
	free(ats);
	free(sel);
	free(late);
	free(late_at);
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
		case ENG_EV_PENDING:
			break;
		}
	}
	return st;
}
