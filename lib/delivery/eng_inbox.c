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

/* $1: statuses [{wamid, queue_id, status, at, code}], $2: run id. Each is
 * matched to its message by the provider's id (else by mq:ID while that
 * message has no other provider id); per message the newest evidence
 * wins, forward only: read > delivered > sent, failed only from sent (a
 * later delivered or read outweighs it); read sets delivered_at too. One
 * row back: counts, and the 131050 failures (people who said stop). */
static const char statuses_sql[] =
	"WITH s AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb)"
	"    AS s(wamid text, queue_id bigint, status text, at timestamptz, code text)"
	"), m AS ("
	"  SELECT q.id AS mid, s.* FROM s"
	"    JOIN engagement.message_queue q ON q.provider_message_id = s.wamid"
	"  UNION ALL"
	"  SELECT q.id, s.* FROM s JOIN engagement.message_queue q ON q.id = s.queue_id"
	"  WHERE q.provider_message_id IS NULL AND NOT EXISTS ("
	"    SELECT 1 FROM engagement.message_queue x WHERE x.provider_message_id = s.wamid)"
	"), agg AS ("
	"  SELECT mid,"
	"    max(CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3"
	"        ELSE 0 END) AS top,"
	"    bool_or(status = 'failed') AS failed,"
	"    min(at) FILTER (WHERE status IN ('delivered', 'read')) AS d_at,"
	"    min(at) FILTER (WHERE status = 'read') AS r_at,"
	"    min(at) FILTER (WHERE status = 'failed') AS f_at,"
	"    min(code) FILTER (WHERE status = 'failed') AS code"
	"  FROM m GROUP BY mid"
	"), cur AS ("
	"  SELECT q.id, q.user_id, q.message_type, q.delivery_status AS old, a.*"
	"  FROM agg a JOIN engagement.message_queue q ON q.id = a.mid"
	"  ORDER BY q.id FOR UPDATE OF q"
	"), nx AS ("
	"  SELECT c.*, CASE"
	"      WHEN c.top = 3 OR c.old = 'read' THEN 'read'"
	"      WHEN c.top = 2 OR c.old = 'delivered' THEN 'delivered'"
	"      WHEN c.old = 'failed' OR c.failed THEN 'failed'"
	"      ELSE 'sent' END AS next"
	"  FROM cur c"
	"), upd AS ("
	"  UPDATE engagement.message_queue q SET delivery_status = n.next,"
	"    delivered_at = CASE WHEN n.next IN ('delivered', 'read')"
	"      THEN coalesce(q.delivered_at, n.d_at, n.r_at) ELSE q.delivered_at END,"
	"    read_at = CASE WHEN n.next = 'read' THEN coalesce(q.read_at, n.r_at)"
	"      ELSE q.read_at END,"
	"    delivery_error_code = CASE WHEN n.next = 'failed'"
	"      THEN coalesce(q.delivery_error_code, n.code) ELSE q.delivery_error_code END,"
	"    delivery_failed_at = CASE WHEN n.next = 'failed'"
	"      THEN coalesce(q.delivery_failed_at, n.f_at) ELSE q.delivery_failed_at END"
	"  FROM nx n WHERE q.id = n.id AND (n.next IS DISTINCT FROM n.old"
	"    OR (n.next IN ('delivered', 'read') AND q.delivered_at IS NULL)"
	"    OR (n.next = 'read' AND q.read_at IS NULL))"
	"  RETURNING q.id, q.user_id, q.message_type, n.old, q.delivery_status AS next,"
	"    q.delivery_error_code AS code, n.f_at, q.delivered_at, q.read_at,"
	"    n.old IS DISTINCT FROM 'delivered' AND n.old IS DISTINCT FROM 'read'"
	"      AND q.delivery_status IN ('delivered', 'read') AS newly_delivered,"
	"    n.old IS DISTINCT FROM 'read' AND q.delivery_status = 'read' AS newly_read,"
	"    n.old IS DISTINCT FROM 'failed' AND q.delivery_status = 'failed' AS newly_failed"
	"), ob AS ("
	"  SELECT engagement.publish_message_events('message.delivered',"
	"      array_agg(id ORDER BY id) FILTER (WHERE newly_delivered), $2::uuid)"
	"    + engagement.publish_message_events('message.read',"
	"      array_agg(id ORDER BY id) FILTER (WHERE newly_read), $2::uuid)"
	"    + engagement.publish_message_events('message.undelivered',"
	"      array_agg(id ORDER BY id) FILTER (WHERE newly_failed), $2::uuid) AS n"
	"  FROM upd"
	"), audit AS ("
	"  SELECT engagement.write_audit(jsonb_agg(jsonb_build_object('user_id', u.user_id,"
	"    'message_id', u.id, 'event', 'message_undelivered', 'source', 'whatsapp',"
	"    'details', jsonb_build_object('error_code', u.code, 'at', u.f_at),"
	"    'run_id', $2::uuid) ORDER BY u.id) FILTER (WHERE u.newly_failed)) AS n"
	"  FROM upd u"
	"), counted AS ("
	"  INSERT INTO engagement.message_counts (minute, kind, code, n)"
	"  SELECT date_trunc('minute', clock_timestamp()), kind, code, count(*) FROM ("
	"    SELECT 'delivered' AS kind, '' AS code FROM upd WHERE newly_delivered"
	"    UNION ALL SELECT 'read', '' FROM upd WHERE newly_read"
	"    UNION ALL SELECT 'undelivered', coalesce(code, '') FROM upd WHERE newly_failed) k"
	"  GROUP BY kind, code ORDER BY kind, code"
	"  ON CONFLICT (minute, kind, code) DO UPDATE SET n = engagement.message_counts.n + excluded.n"
	")"
	"SELECT (SELECT count(*) FROM s) AS statuses,"
	"  (SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM m"
	"     WHERE m.wamid = s.wamid AND m.status = s.status)) AS unmatched,"
	"  (SELECT count(*) FROM upd WHERE newly_delivered) AS delivered,"
	"  (SELECT count(*) FROM upd WHERE newly_read) AS read,"
	"  (SELECT count(*) FROM upd WHERE newly_failed) AS failed,"
	"  (SELECT json_agg(json_build_object('user_id', user_id, 'message_id', id,"
	"     'at', (extract(epoch FROM f_at) * 1000000)::bigint))"
	"   FROM upd WHERE newly_failed AND code = '131050') AS stops,"
	/* (ob and audit only read: they run because they are read here) */
	"  (SELECT n FROM ob) + (SELECT n FROM audit) AS written";

static json_t *time_json(eng_time t)
{
	char ts[32];
	eng_time_format(t, ts);
	return json_string(ts);
}

/* 131050 in a delivery status: the person stopped marketing messages in
 * WhatsApp. Recorded as queue-send records it (last write wins, at the
 * status's instant, source whatsapp). */
static enum eng_status record_stops(struct eng_db *db, const char *stops, const char *run_id,
				    struct eng_inbox_counts *k, struct eng_err *err)
{
	json_t *arr = json_loads(stops, 0, NULL);
	size_t n = json_array_size(arr);
	struct eng_optout_item *it = eng_xcalloc(n + 1, sizeof(*it));
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(arr, i);
		snprintf(it[i].who.user_id, sizeof(it[i].who.user_id), "%s",
			 json_string_value(json_object_get(x, "user_id")));
		it[i].opt_out = true;
		snprintf(it[i].source, sizeof(it[i].source), "whatsapp");
		it[i].at = (eng_time)json_integer_value(json_object_get(x, "at"));
		it[i].reason = eng_xstrdup("WhatsApp delivery status 131050: the user "
					   "stopped marketing messages");
	}
	size_t done;
	enum eng_status st = eng_optout_apply_items(db, ENG_VIA_PROVIDER_STOP, it, n, run_id, true,
						    &done, err);
	for (size_t i = 0; i < n; i++) {
		if (i < done && !it[i].failed) {
			k->preferences++;
			eng_log(ENG_INFO, "opt_out_recorded", ENG_S("user_id", it[i].who.user_id),
				ENG_S("source", "whatsapp"),
				ENG_S("outcome", eng_optout_outcome_name(it[i].res.outcome)));
		}
		eng_optout_item_release(&it[i]);
	}
	free(it);
	json_decref(arr);
	return st;
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
	PGresult *r = eng_db_query(db, statuses_sql, 2, p, err);
	free(text);
	if (!r)
		return eng_err_prefix(err, "could not apply delivery statuses");
#define NUM(name) atoll(PQgetvalue(r, 0, PQfnumber(r, name)))
	k->statuses += NUM("statuses");
	k->unmatched += NUM("unmatched");
	k->delivered += NUM("delivered");
	k->read += NUM("read");
	k->failed += NUM("failed");
#undef NUM
	enum eng_status st = ENG_OK;
	if (!PQgetisnull(r, 0, PQfnumber(r, "stops")))
		st = record_stops(db, PQgetvalue(r, 0, PQfnumber(r, "stops")), run_id, k, err);
	PQclear(r);
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

static bool in_goodbye_sent(const PGresult *states, const char *user_id)
{
	for (int i = 0; i < PQntuples(states); i++)
		if (strcmp(PQgetvalue(states, i, 0), user_id) == 0)
			return strcmp(PQgetvalue(states, i, 1), "goodbye_sent") == 0;
	return false;
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
		bool first = true;
		for (size_t j = 0; j < i && first; j++)
			first = !refs[j].found || strcmp(refs[j].user_id, refs[i].user_id) != 0;
		int reply = first && in_goodbye_sent(states, refs[i].user_id)
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
			char reason[96];
			snprintf(reason, sizeof(reason), "WhatsApp message, phrase (%s)", locale);
			it->reason = eng_xstrdup(reason);
		}
	}
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
		st = eng_optout_apply_items(db, ENG_VIA_CHANGE, in.pref, in.npref, run_id, true,
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
		st = eng_db_purge(db,
				  "DELETE FROM engagement.inbound_events WHERE ctid = ANY (ARRAY("
				  "  SELECT ctid FROM engagement.inbound_events"
				  "  WHERE created_at < clock_timestamp() - make_interval(days => $1::int)"
				  "  ORDER BY created_at LIMIT 1000))",
				  1, p, 1000, &b, err);
	*n = a + b;
	return st;
}
