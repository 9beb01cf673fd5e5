#include "eng_inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_event.h"
#include "eng_inbound.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_meta.h"
#include "eng_optout.h"
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

/* One call of a database function taking (rows jsonb, run id). */
static PGresult *call_rows(struct eng_db *db, const char *sql, const json_t *rows,
			   const char *run_id, struct eng_err *err)
{
	char *text = eng_json_dump(rows);
	const char *p[] = {text, run_id};
	PGresult *r = eng_db_query(db, sql, 2, p, err);
	free(text);
	return r;
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
			if (x->category) {
				json_object_set_new(o, "category", json_string(x->category));
				json_object_set_new(o, "billable", json_boolean(x->billable));
			}
			json_array_append_new(rows, o);
		}
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return ENG_OK;
	}
	/* engagement.apply_delivery_statuses (migrations 0014, 0021): matched
	 * to sent messages only, forward only, published, counted; a 131050
	 * records the person's opt-out; the price moves with the status */
	PGresult *r = call_rows(db,
				"SELECT * FROM engagement.apply_delivery_statuses($1::jsonb, $2::uuid)",
				rows, run_id, err);
	json_decref(rows);
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
	k->priced += NUM("priced");
#undef NUM
	PQclear(r);
	return ENG_OK;
}

/* ---- the account's changes ---------------------------------------------------- */

static enum eng_status apply_account(struct eng_db *db, const struct eng_meta_delivery *d,
				     size_t nd, const char *run_id, struct eng_inbox_counts *k,
				     struct eng_err *err)
{
	json_t *changes = json_array();
	for (size_t i = 0; i < nd; i++)
		json_array_extend(changes, d[i].account);
	enum eng_status st = ENG_OK;
	if (json_array_size(changes)) {
		/* in order of their time, each at most once (migration 0016) */
		PGresult *r = call_rows(db,
					"SELECT outcome, count(*) FROM "
					"engagement.apply_account_changes($1::jsonb, $2::uuid) "
					"GROUP BY outcome",
					changes, run_id, err);
		for (int i = 0; r && i < PQntuples(r); i++) {
			const char *o = PQgetvalue(r, i, 0);
			long long n = atoll(PQgetvalue(r, i, 1));
			if (strcmp(o, "applied") == 0)
				k->account += n;
			else if (strcmp(o, "stale") == 0)
				k->account_stale += n;
			else if (strcmp(o, "future") == 0)
				k->malformed += n;
			else
				k->ignored += n;
		}
		if (!r)
			st = eng_err_prefix(err, "could not apply the account's changes");
		PQclear(r);
	}
	json_decref(changes);
	return st;
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

/* Meta's message as the domain reads any inbound message (eng_inbound.h):
 * its sender by phone, resolved later. */
static void to_inbound(const struct eng_meta_message *m, struct eng_inbound_msg *out)
{
	snprintf(out->who.phone, sizeof(out->who.phone), "%s", m->phone);
	out->at = m->at;
	out->id = m->wamid;
	out->text = m->text;
	out->payload = m->payload;
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

	struct eng_inbound_msg *im = eng_xcalloc(n, sizeof(*im));
	struct eng_user_ref **rp = eng_xcalloc(n, sizeof(*rp));
	for (size_t i = 0; i < n; i++) {
		to_inbound(msgs[i], &im[i]);
		rp[i] = &im[i].who;
	}
	struct eng_inbound in = {0};
	enum eng_status st = eng_users_resolve(db, rp, n, err);
	if (st == ENG_OK)
		st = eng_inbound_read(db, im, n, &in, err);
	if (st == ENG_OK) {
		for (size_t i = 0; i < n; i++)
			k->unknown_users += !im[i].who.found;
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
	eng_inbound_release(&in);
	free(im);
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
		json_object_set_new(result, "account_changes",
				    json_integer((json_int_t)json_array_size(d->account)));
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
		st = apply_account(db, c->d + from, to - from, run_id, k, err);
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
