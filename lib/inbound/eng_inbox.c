#include "eng_inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_crypto.h"
#include "eng_event.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_meta.h"
#include "eng_optout.h"
#include "eng_phrase.h"
#include "eng_users.h"

enum eng_status eng_inbox_store(struct eng_db *db, const char *const *bodies, size_t n,
				struct eng_err *err)
{
	char *arr = eng_db_text_array(bodies, n);
	const char *p[] = {arr};
	enum eng_status st = eng_db_exec(db,
					 "INSERT INTO engagement.webhook_inbox (body) "
					 "SELECT unnest($1::text[])",
					 1, p, err);
	free(arr);
	return st;
}

/* ---- statuses ------------------------------------------------------------------ */

static json_t *time_json(eng_time t)
{
	char ts[32];
	eng_time_format(t, ts);
	return json_string(ts);
}

static enum eng_status apply_statuses(struct eng_db *db, const struct eng_meta_delivery *d,
				      size_t nd, const char *run_id,
				      struct eng_inbox_counts *k, struct eng_err *err)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < nd; i++)
		for (size_t j = 0; j < d[i].nstatuses; j++) {
			const struct eng_meta_status *x = &d[i].statuses[j];
			json_t *o = json_pack("{s:s, s:s, s:o}", "wamid", x->wamid, "status",
					      eng_meta_status_name(x->status), "at",
					      time_json(x->at));
			if (x->queue_id)
				json_object_set_new(o, "queue_id", json_integer(x->queue_id));
			if (x->error_code) {
				char code[24];
				snprintf(code, sizeof(code), "%ld", x->error_code);
				json_object_set_new(o, "code", json_string(code));
			}
			json_array_append_new(rows, o);
		}
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return ENG_OK;
	}
	char *text = eng_json_dump(rows);
	json_decref(rows);
	const char *p[] = {text, run_id};
	/* engagement.apply_delivery_statuses (migration 0014): matched to sent
	 * messages only, forward only, published, counted; a 131050 records
	 * the person's opt-out */
	PGresult *r = eng_db_query(db,
				   "SELECT * FROM engagement.apply_delivery_statuses($1::jsonb, $2::uuid)",
				   2, p, err);
	free(text);
	if (!r)
		return eng_err_prefix(err, "could not apply delivery statuses");
#define NUM(name) atoll(PQgetvalue(r, 0, PQfnumber(r, name)))
	k->statuses += NUM("statuses");
	k->unmatched += NUM("unmatched");
	k->malformed += NUM("future");
	k->delivered += NUM("delivered");
	k->read += NUM("read");
	k->failed += NUM("failed");
	k->preferences += NUM("stops");
#undef NUM
	PQclear(r);
	return ENG_OK;
}

/* ---- messages ------------------------------------------------------------------ */

static int by_time(const void *a, const void *b)
{
	const struct eng_meta_message *x = *(const struct eng_meta_message *const *)a;
	const struct eng_meta_message *y = *(const struct eng_meta_message *const *)b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return strcmp(x->wamid, y->wamid);
}

/* The people's states, for telling a goodbye reply from activity. */
static PGresult *states_of(struct eng_db *db, struct eng_user_ref *refs, size_t n,
			   struct eng_err *err)
{
	const char **ids = eng_xcalloc(n + 1, sizeof(*ids));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (refs[i].found)
			ids[k++] = refs[i].user_id;
	char *arr = eng_db_text_array(ids, k);
	const char *p[] = {arr};
	PGresult *r = eng_db_query(db,
				   "SELECT user_id::text, state FROM engagement.engagement_states "
				   "WHERE user_id = ANY ($1::uuid[])",
				   1, p, err);
	free(arr);
	free(ids);
	return r;
}

/* The users of a result (column 0, sorted), for bsearch. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Who is in goodbye_sent now: their ids, sorted. */
static size_t goodbye_sent_ids(const PGresult *states, const char ***out)
{
	*out = eng_xcalloc((size_t)PQntuples(states) + 1, sizeof(**out));
	size_t n = 0;
	for (int i = 0; i < PQntuples(states); i++)
		if (strcmp(PQgetvalue(states, i, 1), "goodbye_sent") == 0)
			(*out)[n++] = PQgetvalue(states, i, 0);
	qsort(*out, n, sizeof(**out), cmp_str);
	return n;
}

/* first[i]: message i is its person's first here (in time order). */
struct by_user {
	const char *user_id;
	size_t i;
};

static int cmp_by_user(const void *a, const void *b)
{
	const struct by_user *x = a, *y = b;
	int c = strcmp(x->user_id, y->user_id);
	return c ? c : (x->i > y->i) - (x->i < y->i);
}

static bool *firsts(const struct eng_user_ref *refs, size_t n)
{
	struct by_user *v = eng_xcalloc(n + 1, sizeof(*v));
	bool *first = eng_xcalloc(n + 1, sizeof(*first));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (refs[i].found)
			v[k++] = (struct by_user){refs[i].user_id, i};
	qsort(v, k, sizeof(*v), cmp_by_user);
	for (size_t j = 0; j < k; j++)
		first[v[j].i] = j == 0 || strcmp(v[j - 1].user_id, v[j].user_id) != 0;
	free(v);
	return first;
}

/* Messages into events (and phrase changes into preference items). */
struct inbound {
	struct eng_event *ev;
	size_t nev;
	struct eng_optout_item *pref;
	size_t npref;
};

/* A message's identity as an inbound event id (at most 128 bytes): its
 * wamid, or, for a longer one, "wamid-sha256:" and the wamid's SHA-256, so
 * that two long ids sharing a prefix stay two messages. */
static void event_id_of(const char *wamid, char out[ENG_EVENT_ID_MAX + 1])
{
	if (strlen(wamid) <= ENG_EVENT_ID_MAX) {
		snprintf(out, ENG_EVENT_ID_MAX + 1, "%s", wamid);
		return;
	}
	char hex[65];
	eng_sha256_hex(wamid, strlen(wamid), hex);
	snprintf(out, ENG_EVENT_ID_MAX + 1, "wamid-sha256:%s", hex);
}

static void to_events(struct eng_meta_message **msgs, const struct eng_user_ref *refs,
		      size_t n, const PGresult *states, struct inbound *in)
{
	in->ev = eng_xcalloc(n + 1, sizeof(*in->ev));
	in->pref = eng_xcalloc(n + 1, sizeof(*in->pref));
	const char **gs;
	size_t ngs = goodbye_sent_ids(states, &gs);
	bool *first = firsts(refs, n);
	for (size_t i = 0; i < n; i++) {
		const struct eng_meta_message *m = msgs[i];
		if (!refs[i].found)
			continue;
		struct eng_event *e = &in->ev[in->nev++];
		e->who = refs[i];
		e->at = m->at;
		event_id_of(m->wamid, e->id);
		/* a reply to the goodbye only as the person's first message here:
		 * any message moves them out of goodbye_sent, so the next one is
		 * activity, whatever it says */
		const char *key = refs[i].user_id;
		int reply = first[i] && bsearch(&key, gs, ngs, sizeof(*gs), cmp_str)
				    ? eng_meta_goodbye_reply(m) : 0;
		e->activity = reply == 0;
		e->trigger = reply ? (enum eng_trigger)(ENG_TR_GOODBYE_RESPONSE_1 + reply - 1)
				   : ENG_TR_USER_MESSAGE;
		bool opt_out;
		const char *locale;
		if (m->text && eng_phrase_match(m->text, &opt_out, &locale)) {
			struct eng_optout_item *it = &in->pref[in->npref++];
			it->who = refs[i];
			it->opt_out = opt_out;
			snprintf(it->source, sizeof(it->source), "whatsapp");
			it->at = m->at;
			snprintf(it->id, sizeof(it->id), "%s", e->id);
			snprintf(it->phrase_locale, sizeof(it->phrase_locale), "%s", locale);
		}
	}
	free(gs);
	free(first);
}

static enum eng_status apply_messages(struct eng_db *db, const struct eng_meta_delivery *d,
				      size_t nd, const char *run_id,
				      struct eng_inbox_counts *k, struct eng_err *err)
{
	size_t n = 0;
	for (size_t i = 0; i < nd; i++)
		n += d[i].nmessages;
	if (n == 0)
		return ENG_OK;
	/* in the order they were written: Meta does not keep it */
	struct eng_meta_message **msgs = eng_xcalloc(n, sizeof(*msgs));
	n = 0;
	for (size_t i = 0; i < nd; i++)
		for (size_t j = 0; j < d[i].nmessages; j++)
			msgs[n++] = &d[i].messages[j];
	qsort(msgs, n, sizeof(*msgs), by_time);
	k->messages += (long long)n;

	struct eng_user_ref *refs = eng_xcalloc(n, sizeof(*refs));
	struct eng_user_ref **rp = eng_xcalloc(n, sizeof(*rp));
	for (size_t i = 0; i < n; i++) {
		snprintf(refs[i].phone, sizeof(refs[i].phone), "%s", msgs[i]->phone);
		rp[i] = &refs[i];
	}
	struct inbound in = {0};
	PGresult *states = NULL;
	enum eng_status st = eng_users_resolve(db, rp, n, err);
	if (st == ENG_OK && !(states = states_of(db, refs, n, err)))
		st = err->status;
	if (st == ENG_OK) {
		for (size_t i = 0; i < n; i++)
			k->unknown_users += !refs[i].found;
		to_events(msgs, refs, n, states, &in);
		struct eng_ev_counts ec = {0};
		st = eng_events_apply(db, in.ev, in.nev, run_id, true, &ec, err);
		k->activities += ec.activities;
		k->duplicates += ec.duplicates;
		for (size_t i = 0; i < in.nev; i++)
			k->replies += !in.ev[i].activity && in.ev[i].outcome == ENG_EV_TRANSITIONED;
		k->rejected += ec.failed;
		for (size_t i = 0; i < in.nev; i++)
			if (in.ev[i].outcome == ENG_EV_FAILED)
				eng_log(ENG_WARN, "message_rejected", ENG_S("id", in.ev[i].id),
					ENG_S("user_id", in.ev[i].who.user_id),
					ENG_S("error", in.ev[i].err.msg));
	}
	if (st == ENG_OK && in.npref) {
		size_t done;
		st = eng_optout_apply_items(db, ENG_VIA_WHATSAPP, in.pref, in.npref, run_id, true,
					    &done, err);
		for (size_t i = 0; st == ENG_OK && i < done; i++)
			if (!in.pref[i].failed && in.pref[i].res.outcome != ENG_OPTOUT_DUPLICATE)
				k->preferences++;
	}
	for (size_t i = 0; i < in.npref; i++)
		eng_optout_item_release(&in.pref[i]);
	PQclear(states);
	free(in.ev);
	free(in.pref);
	free(refs);
	free(rp);
	free(msgs);
	return st;
}

/* ---- deliveries ------------------------------------------------------------------ */

struct claimed {
	PGresult *rows;
	struct eng_meta_delivery *d;
	size_t n;
	eng_time now;
};

static enum eng_status claim(struct eng_db *db, int limit, struct claimed *c,
			     struct eng_err *err)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = {lim};
	c->rows = eng_db_query(db,
			       "SELECT id, body, (extract(epoch FROM clock_timestamp()) * 1000000)"
			       "::bigint AS now_us FROM engagement.webhook_inbox "
			       "WHERE applied_at IS NULL ORDER BY id LIMIT $1::int "
			       "FOR UPDATE SKIP LOCKED",
			       1, p, err);
	if (!c->rows)
		return err->status;
	c->n = (size_t)PQntuples(c->rows);
	c->d = eng_xcalloc(c->n + 1, sizeof(*c->d));
	if (c->n)
		c->now = eng_db_epoch_us(PQgetvalue(c->rows, 0, 2));
	return ENG_OK;
}

static void claimed_release(struct claimed *c)
{
	for (size_t i = 0; i < c->n; i++)
		eng_meta_release(&c->d[i]);
	free(c->d);
	PQclear(c->rows);
	memset(c, 0, sizeof(*c));
}

/* Deliveries [from, to) of c: parse, apply, mark applied with what each
 * carried (or the error that stopped it). */
static enum eng_status apply_range(struct eng_db *db, struct claimed *c, size_t from,
				   size_t to, const char *run_id, const char *failure,
				   struct eng_inbox_counts *k, struct eng_err *err)
{
	json_t *marks = json_array();
	enum eng_status st = ENG_OK;
	struct eng_inbox_counts before = *k;
	for (size_t i = from; i < to; i++) {
		struct eng_err perr = ENG_ERR_INIT;
		const char *body = PQgetvalue(c->rows, (int)i, 1);
		struct eng_meta_delivery *d = &c->d[i];
		eng_meta_release(d);
		json_t *result = json_object();
		if (!failure && eng_meta_parse(body, strlen(body), c->now, ENG_FUTURE_SKEW_S, d, &perr)) {
			json_object_set_new(result, "error", eng_json_str(perr.msg));
			k->broken++;
		}
		if (failure) {
			json_object_set_new(result, "error", eng_json_str(failure));
			k->broken++;
		}
		k->ignored += d->other_fields + d->unknown_types + d->unknown_statuses;
		k->malformed += d->malformed;
		json_object_set_new(result, "messages", json_integer((json_int_t)d->nmessages));
		json_object_set_new(result, "statuses", json_integer((json_int_t)d->nstatuses));
		json_object_set_new(result, "ignored",
				    json_integer(d->other_fields + d->unknown_types +
						 d->unknown_statuses));
		json_object_set_new(result, "malformed", json_integer(d->malformed));
		json_array_append_new(marks, json_pack("{s:s, s:o}", "id",
						       PQgetvalue(c->rows, (int)i, 0),
						       "result", result));
	}
	if (!failure)
		st = apply_statuses(db, c->d + from, to - from, run_id, k, err);
	if (st == ENG_OK && !failure)
		st = apply_messages(db, c->d + from, to - from, run_id, k, err);
	if (st == ENG_OK) {
		char *text = eng_json_dump(marks);
		const char *p[] = {text};
		st = eng_db_exec(db,
				 "UPDATE engagement.webhook_inbox i SET applied_at = clock_timestamp(),"
				 "  result = m.result "
				 "FROM jsonb_to_recordset($1::jsonb) AS m(id bigint, result jsonb) "
				 "WHERE i.id = m.id",
				 1, p, err);
		free(text);
	}
	json_decref(marks);
	if (st == ENG_OK)
		k->deliveries += (long long)(to - from);
	else
		*k = before;
	return st;
}

/* One transaction for [from, to): claimed again (the rows stay locked by
 * the savepoint's transaction), applied, committed. */
static enum eng_status apply_alone(struct eng_db *db, struct claimed *c, size_t i,
				   const char *run_id, struct eng_inbox_counts *k,
				   struct eng_err *err)
{
	enum eng_status st = eng_db_exec(db, "SAVEPOINT eng_delivery", 0, NULL, err);
	if (st)
		return st;
	struct eng_err e = ENG_ERR_INIT;
	if (apply_range(db, c, i, i + 1, run_id, NULL, k, &e) == ENG_OK)
		return eng_db_exec(db, "RELEASE SAVEPOINT eng_delivery", 0, NULL, err);
	if (!eng_db_alive(db))
		return eng_err_set(err, ENG_ETEMP, "lost the database connection: %s", e.msg);
	eng_log(ENG_ERROR, "delivery_failed", ENG_S("inbox_id", PQgetvalue(c->rows, (int)i, 0)),
		ENG_S("error", e.msg), ENG_S("sqlstate", e.sqlstate[0] ? e.sqlstate : NULL));
	if ((st = eng_db_exec(db, "ROLLBACK TO SAVEPOINT eng_delivery", 0, NULL, err)))
		return st;
	/* marked applied with its error, so that it blocks nothing */
	return apply_range(db, c, i, i + 1, run_id, e.msg, k, err);
}

enum eng_status eng_inbox_apply(struct eng_db *db, const char *run_id, int limit,
				struct eng_inbox_counts *k, size_t *n, struct eng_err *err)
{
	struct claimed c = {0};
	*n = 0;
	enum eng_status st = eng_db_begin(db, err);
	if (st == ENG_OK)
		st = claim(db, limit, &c, err);
	if (st == ENG_OK && c.n) {
		st = eng_db_exec(db, "SAVEPOINT eng_batch", 0, NULL, err);
		struct eng_err e = ENG_ERR_INIT;
		if (st == ENG_OK && apply_range(db, &c, 0, c.n, run_id, NULL, k, &e) == ENG_OK) {
			st = eng_db_exec(db, "RELEASE SAVEPOINT eng_batch", 0, NULL, err);
		} else if (st == ENG_OK) {
			/* one delivery spoils the batch: each on its own */
			st = eng_db_alive(db) ? eng_db_exec(db, "ROLLBACK TO SAVEPOINT eng_batch", 0,
							    NULL, err)
					      : eng_err_set(err, ENG_ETEMP, "%s", e.msg);
			for (size_t i = 0; st == ENG_OK && i < c.n; i++)
				st = apply_alone(db, &c, i, run_id, k, err);
		}
	}
	if (st == ENG_OK)
		st = eng_db_commit(db, err);
	if (st)
		eng_db_rollback(db);
	else
		*n = c.n;
	claimed_release(&c);
	return st;
}

enum eng_status eng_inbox_purge(struct eng_db *db, int days, long long *n,
				struct eng_err *err)
{
	char d[16];
	long long a = 0, b = 0;
	snprintf(d, sizeof(d), "%d", days);
	const char *p[] = {d};
	enum eng_status st = eng_db_purge(
		db,
		"DELETE FROM engagement.webhook_inbox WHERE id = ANY (ARRAY("
		"  SELECT id FROM engagement.webhook_inbox"
		"  WHERE applied_at < clock_timestamp() - make_interval(days => $1::int)"
		"  ORDER BY applied_at LIMIT 1000))",
		1, p, 1000, &a, err);
	if (st == ENG_OK)
		st = eng_db_purge(db, "SELECT engagement.purge_inbound_events($1::int)", 1, p,
				  1000, &b, err);
	*n = a + b;
	return st;
}
