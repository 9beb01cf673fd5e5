#include "eng_send.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_mask.h"
#include "eng_optout.h"
#include "eng_parse.h"

#define MAX_ANSWER (64 * 1024)     /* an API answer larger than this is cut */
#define FLUSH_ROWS 200             /* outcomes written back per statement */
#define FLUSH_US (250 * 1000)      /* ... or at least this often */
#define DRY_RUN_SHOWN 100          /* request bodies kept in a dry run's summary */

/* ---- SQL ------------------------------------------------------------------ */

/* Claims whose lease ran out (their sender died): back to the queue with
 * the attempt charged, failed when attempts are used up. $1 now. */
static const char recover_sql[] =
	"WITH r AS ("
	"  UPDATE engagement.message_queue m SET"
	"    status = CASE WHEN m.attempts + 1 >= m.max_attempts THEN 'failed' ELSE 'queued' END,"
	"    attempts = m.attempts + 1, next_attempt_at = $1::timestamptz,"
	"    last_error_code = 'lease_expired',"
	"    last_error = 'the sender ' || coalesce(m.locked_by, '?') ||"
	"                 ' stopped before recording an outcome',"
	"    locked_by = NULL, locked_until = NULL"
	"  WHERE m.id = ANY (ARRAY("
	"    SELECT q.id FROM engagement.message_queue q"
	"    WHERE q.status = 'sending' AND q.locked_until < clock_timestamp()"
	"    ORDER BY q.locked_until LIMIT 1000 FOR UPDATE SKIP LOCKED))"
	"  RETURNING m.id, m.user_id, m.status, m.message_type, m.attempts"
	"), audit AS ("
	"  INSERT INTO engagement.audit_log (user_id, message_id, event, source, details, run_id)"
	"  SELECT user_id, id, 'message_lease_recovered', 'queue-send',"
	"    jsonb_build_object('status', status, 'attempts', attempts), $2::uuid FROM r"
	"), ob AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'message', id::text, 'message.failed',"
	"    jsonb_build_object('message_id', id, 'user_id', user_id,"
	"      'message_type', message_type, 'status', 'failed',"
	"      'error_code', 'lease_expired'), $2::uuid, user_id"
	"  FROM r WHERE status = 'failed'"
	")"
	"SELECT count(*) FROM r";

/* Claim up to $4 due messages for worker $1 (lease $3 s) as of $2 (NULL:
 * now()), with everything the checks need. The ARRAY(...) fence keeps the
 * planner from updating more rows than the SKIP LOCKED select chose. The
 * user's newest $5 (the hourly cap) sends are found by sent_at alone (only
 * sent messages have one), which only message_queue_user_sent_idx serves:
 * planned from statistics taken before anything was sent, the retention
 * index was chosen and became a scan of every sent row per message. */
static const char claim_sql[] =
	"WITH claimed AS ("
	"  UPDATE engagement.message_queue m"
	"  SET status = 'sending', locked_by = $1,"
	"      locked_until = clock_timestamp() + make_interval(secs => $3::int)"
	"  WHERE m.id = ANY (ARRAY("
	"    SELECT q.id FROM engagement.message_queue q"
	"    WHERE q.status = 'queued'"
	"      AND q.next_attempt_at <= coalesce($2::timestamptz, now())"
	"    ORDER BY q.next_attempt_at LIMIT $4::int"
	"    FOR UPDATE SKIP LOCKED))"
	"  RETURNING m.*"
	"), t AS (SELECT coalesce($2::timestamptz, now()) AS now)"
	"SELECT c.id, c.user_id, c.message_type, c.params::text, c.attempts,"
	"  c.max_attempts,"
	"  c.expires_at IS NOT NULL AND c.expires_at <= t.now,"
	"  coalesce(p.reengagement_opt_out, false),"
	"  (extract(epoch FROM CASE WHEN c.quiet_hours_override THEN NULL ELSE"
	"     engagement.quiet_until(t.now, coalesce(p.timezone, 'UTC'),"
	"       p.quiet_hours_start, p.quiet_hours_end) END) * 1000000)::bigint,"
	"  (SELECT string_agg(y.id || ':' || y.us, ',' ORDER BY y.us) FROM ("
	"     SELECT s.id, (extract(epoch FROM s.sent_at) * 1000000)::bigint AS us"
	"     FROM engagement.message_queue s"
	"     WHERE s.user_id = c.user_id"
	"       AND s.sent_at > t.now - interval '1 hour' AND s.sent_at <= t.now"
	"     ORDER BY s.sent_at DESC LIMIT $5::int) y),"
	"  u.phone_e164, coalesce(p.preferred_destination, 'individual'), p.group_id,"
	"  tp.provider_name, tp.provider_language, tp.param_names::text,"
	"  (extract(epoch FROM t.now) * 1000000)::bigint,"
	"  coalesce(p.locale, 'en'), c.template_key, es.state"
	" FROM claimed c CROSS JOIN t"
	" LEFT JOIN engagement.engagement_states es ON es.user_id = c.user_id"
	" JOIN engagement.users u ON u.id = c.user_id"
	" LEFT JOIN engagement.user_preferences p ON p.user_id = c.user_id"
	" LEFT JOIN LATERAL ("
	"   SELECT x.provider_name, x.provider_language, x.param_names"
	"   FROM engagement.message_templates x"
	"   WHERE x.template_key = c.template_key AND x.is_active"
	"     AND x.locale IN (coalesce(p.locale, 'en'),"
	"                      split_part(coalesce(p.locale, 'en'), '-', 1), 'en')"
	"   ORDER BY CASE x.locale WHEN coalesce(p.locale, 'en') THEN 0"
	"     WHEN split_part(coalesce(p.locale, 'en'), '-', 1) THEN 1 ELSE 2 END"
	"   LIMIT 1) tp ON true"
	" ORDER BY c.next_attempt_at, c.id";

/* Write back a batch of outcomes ($1: JSON array of rows) for worker $2,
 * run $3: the row (while this worker still holds its lease), its audit row,
 * and for sent and failed messages an outbox event. */
static const char writeback_sql[] =
	"WITH x AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, status text,"
	"    charge int, next_attempt_at timestamptz, code text, error text,"
	"    wamid text, sent_at timestamptz, event text, details jsonb)"
	"), upd AS ("
	"  UPDATE engagement.message_queue m SET"
	"    status = x.status, attempts = m.attempts + x.charge,"
	"    next_attempt_at = coalesce(x.next_attempt_at, m.next_attempt_at),"
	"    last_error_code = coalesce(x.code, m.last_error_code),"
	"    last_error = coalesce(x.error, m.last_error),"
	"    provider_message_id = coalesce(x.wamid, m.provider_message_id),"
	"    sent_at = coalesce(x.sent_at, m.sent_at),"
	"    locked_by = NULL, locked_until = NULL"
	"  FROM x WHERE m.id = x.id AND m.status = 'sending' AND m.locked_by = $2"
	"  RETURNING m.id, m.user_id, m.message_type, x.status, x.event, x.details,"
	"            x.code, x.wamid"
	"), audit AS ("
	"  INSERT INTO engagement.audit_log (user_id, message_id, event, source, details, run_id)"
	"  SELECT user_id, id, event, 'queue-send', details, $3::uuid"
	"  FROM upd WHERE event IS NOT NULL"
	"), ob AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'message', id::text, 'message.' || status,"
	"    jsonb_strip_nulls(jsonb_build_object('message_id', id, 'user_id', user_id,"
	"      'message_type', message_type, 'status', status,"
	"      'provider_message_id', wamid, 'error_code', code)),"
	"    $3::uuid, user_id"
	"  FROM upd WHERE status IN ('sent', 'failed')"
	")"
	"SELECT id FROM upd";

/* Keep this worker's claims: move their lease forward. $1 owner, $2 s. */
static const char renew_sql[] =
	"UPDATE engagement.message_queue SET"
	"  locked_until = clock_timestamp() + make_interval(secs => $2::int)"
	" WHERE locked_by = $1 AND status = 'sending'";

/* The shared token bucket: take up to $4 tokens at $2 per second, burst $3. */
static const char rate_sql[] =
	"WITH cur AS ("
	"  SELECT least($3::float8, tokens + $2::float8 *"
	"               extract(epoch FROM clock_timestamp() - refreshed_at)) AS avail"
	"  FROM engagement.send_rate WHERE phone_number_id = $1 FOR UPDATE"
	")"
	"UPDATE engagement.send_rate r"
	"  SET tokens = cur.avail - floor(least(greatest(cur.avail, 0), $4::float8)),"
	"      refreshed_at = clock_timestamp()"
	"  FROM cur WHERE r.phone_number_id = $1"
	"  RETURNING floor(least(greatest(cur.avail, 0), $4::float8))::int, cur.avail";

static const char purge_sql[] =
	"DELETE FROM engagement.message_queue WHERE id = ANY (ARRAY("
	"  SELECT id FROM engagement.message_queue"
	"  WHERE status IN ('sent', 'failed', 'blocked', 'cancelled')"
	"    AND updated_at < clock_timestamp() - make_interval(days => $1::int)"
	"  ORDER BY updated_at LIMIT 1000))";

/* ---- state ---------------------------------------------------------------- */

struct msg {
	long long id;
	char user_id[37];
	char *to;
	char *body;
	int attempts, max_attempts;
	eng_time claimed_at;   /* the decision instant of its claim */
	int64_t claimed_mono;
};

struct slot {
	CURL *easy;
	struct msg *m;
	struct eng_buf answer;
	int64_t t0;
	char errbuf[CURL_ERROR_SIZE];
};

struct user_sends { /* this run's sends per user, for the hourly cap */
	char user_id[37];
	struct reservation {
		long long message_id;
		eng_time at;
	} *r;
	size_t n, cap;
};

struct counts {
	long long claimed, sent, retried, deferred, failed, blocked, cancelled,
		handed_back, requests, recovered, purged, lease_lost, would_send;
};

struct sender {
	struct eng_run *run;
	const struct eng_send_opts *o;
	const struct eng_wa_config *wa;
	struct eng_db *db;
	bool dry;
	CURLM *multi;
	struct curl_slist *headers;
	struct slot *slots;
	int in_flight;
	struct msg **pending;
	size_t npending, pending_cap, head;
	json_t *out;              /* outcome rows not yet written back */
	struct msg **out_msgs;    /* their messages (freed after the write) */
	size_t nout_msgs, out_msgs_cap;
	struct optout {           /* a 131050 to record as an opt-out */
		char user_id[37];
		long long message_id;
		eng_time at;
	} *optouts;
	size_t noptouts;
	int64_t last_flush;
	struct user_sends *users;
	size_t users_cap, nusers;
	struct counts k;
	json_t *errors;           /* code -> count */
	json_t *dry_requests;
	double *lat;              /* request latencies, ms */
	size_t nlat, lat_cap;
	double tokens;            /* rate tokens in hand */
	int64_t rate_wait_until;
	bool fatal, stop, drained, unreachable;
	char fatal_error[256];
	const char *stop_reason;  /* why unsent claims are handed back */
	char owner[192];          /* locked_by: worker id and run */
	int64_t lease_renewed;    /* monotonic time of the last renewal */
	int transport_streak;     /* transport failures since the last answer */
	unsigned long long rng;
};

/* ---- small helpers ----------------------------------------------------------- */

static double rnd(struct sender *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) / 9007199254740992.0;
}

static void msg_free(struct msg *m)
{
	if (!m)
		return;
	free(m->to);
	free(m->body);
	free(m);
}

/* The instant, as the database sees it, at which something happened to m:
 * its claim's instant plus the time since (fixed with --now). */
static eng_time now_for(struct sender *s, const struct msg *m)
{
	if (s->run->opt.have_now)
		return m->claimed_at;
	return m->claimed_at + (eng_mono_us() - m->claimed_mono);
}

static void count_error(struct sender *s, const char *code)
{
	json_t *v = json_object_get(s->errors, code);
	json_object_set_new(s->errors, code,
			    json_integer(v ? json_integer_value(v) + 1 : 1));
}

static struct user_sends *user_of(struct sender *s, const char *id)
{
	if (s->nusers * 2 >= s->users_cap) { /* grow and rehash */
		size_t cap = s->users_cap ? s->users_cap * 2 : 1024;
		struct user_sends *nu = eng_xcalloc(cap, sizeof(*nu));
		for (size_t i = 0; i < s->users_cap; i++) {
			if (!s->users[i].user_id[0])
				continue;
			size_t h = strtoull(s->users[i].user_id + 24, NULL, 16) % cap;
			while (nu[h].user_id[0])
				h = (h + 1) % cap;
			nu[h] = s->users[i];
		}
		free(s->users);
		s->users = nu;
		s->users_cap = cap;
	}
	size_t h = strtoull(id + 24, NULL, 16) % s->users_cap;
	while (s->users[h].user_id[0] && strcmp(s->users[h].user_id, id) != 0)
		h = (h + 1) % s->users_cap;
	if (!s->users[h].user_id[0]) {
		snprintf(s->users[h].user_id, sizeof(s->users[h].user_id), "%s", id);
		s->nusers++;
	}
	return &s->users[h];
}

/* A reserved send that did not happen stops counting for the cap. */
static void release_reservation(struct sender *s, const struct msg *m)
{
	struct user_sends *u = user_of(s, m->user_id);
	for (size_t k = 0; k < u->n; k++)
		if (u->r[k].message_id == m->id) {
			u->r[k] = u->r[--u->n];
			return;
		}
}

static int cmp_time(const void *a, const void *b)
{
	eng_time x = *(const eng_time *)a, y = *(const eng_time *)b;
	return (x > y) - (x < y);
}

eng_time eng_send_cap_until(const eng_time *sent, size_t n, int cap, eng_time now)
{
	if (cap <= 0 || n < (size_t)cap)
		return now;
	eng_time t = sent[n - (size_t)cap] + 3600 * ENG_USEC_PER_SEC;
	return t > now ? t : now;
}

/* ---- outcomes ---------------------------------------------------------------- */

struct outcome {
	const char *status;  /* queued, sent, failed, blocked, cancelled */
	int charge;          /* attempts to add */
	eng_time next;       /* next_attempt_at, or 0 */
	const char *code;
	const char *error;
	const char *wamid;
	eng_time sent_at;
	const char *event;   /* audit event, NULL for none */
	json_t *details;     /* stolen */
};

static json_t *ts_or_null(eng_time t)
{
	char b[32];
	if (!t)
		return json_null();
	eng_time_format(t, b);
	return json_string(b);
}

static enum eng_status flush(struct sender *s, struct eng_err *err);

static enum eng_status record(struct sender *s, struct msg *m,
			      const struct outcome *o, struct eng_err *err)
{
	json_t *row = json_object();
	json_object_set_new(row, "id", json_integer(m->id));
	json_object_set_new(row, "status", json_string(o->status));
	json_object_set_new(row, "charge", json_integer(o->charge));
	json_object_set_new(row, "next_attempt_at", ts_or_null(o->next));
	json_object_set_new(row, "code", o->code ? eng_json_text(o->code) : json_null());
	json_object_set_new(row, "error", o->error ? eng_json_text(o->error) : json_null());
	json_object_set_new(row, "wamid", o->wamid ? eng_json_text(o->wamid) : json_null());
	json_object_set_new(row, "sent_at", ts_or_null(o->sent_at));
	json_object_set_new(row, "event", o->event ? json_string(o->event) : json_null());
	json_object_set_new(row, "details", o->details ? o->details : json_object());
	json_array_append_new(s->out, row);
	if (s->nout_msgs == s->out_msgs_cap) {
		s->out_msgs_cap = s->out_msgs_cap ? 2 * s->out_msgs_cap : 256;
		s->out_msgs = eng_xrealloc(s->out_msgs, s->out_msgs_cap * sizeof(*s->out_msgs));
	}
	s->out_msgs[s->nout_msgs++] = m;
	if (json_array_size(s->out) >= FLUSH_ROWS)
		return flush(s, err);
	return ENG_OK;
}

static json_t *details(struct msg *m, const char *reason)
{
	json_t *d = json_object();
	json_object_set_new(d, "attempts", json_integer(m->attempts));
	if (reason)
		json_object_set_new(d, "reason", json_string(reason));
	return d;
}

/* Give a claimed, unsent message back without charging an attempt; reason
 * says why (fatal, signal, max_seconds, lease, unreachable). */
static enum eng_status hand_back(struct sender *s, struct msg *m,
				 const char *code, const char *error,
				 const char *reason, struct eng_err *err)
{
	struct outcome o = {"queued", 0, 0, code, error, NULL, 0,
			    "message_handed_back", details(m, reason)};
	s->k.handed_back++;
	release_reservation(s, m);
	return record(s, m, &o, err);
}

/* Back to the queue until `until` without charging an attempt: a check
 * said not now (reason: quiet_hours, hourly_cap). */
static enum eng_status defer(struct sender *s, struct msg *m, eng_time until,
			     const char *reason, struct eng_err *err)
{
	json_t *d = details(m, reason);
	json_object_set_new(d, "until", ts_or_null(until));
	struct outcome o = {"queued", 0, until, NULL, NULL, NULL, 0,
			    "message_deferred", d};
	s->k.deferred++;
	return record(s, m, &o, err);
}

/* One attempt at writing back rows (and the 131050 opt-outs): one
 * transaction, safe to repeat (rows are only updated while this worker
 * still holds their claim). */
static enum eng_status write_back(struct sender *s, const char *rows, size_t n,
				  struct eng_err *err)
{
	enum eng_status st;
	const char *p[] = {rows, s->owner, s->run->run_id};
	if ((st = eng_db_begin(s->db, err)))
		return st;
	PGresult *r = eng_db_query(s->db, writeback_sql, 3, p, err);
	if (!r) {
		st = eng_err_prefix(err, "could not record %zu outcomes", n);
		goto out;
	}
	if ((size_t)PQntuples(r) < n) {
		/* Someone recovered these claims after our lease ran out. */
		long long lost = (long long)n - PQntuples(r);
		s->k.lease_lost += lost;
		eng_log(ENG_WARN, "lease_lost", ENG_I("messages", lost),
			ENG_S("hint", "raise --lease-seconds or lower --batch"));
	}
	PQclear(r);
	if (s->noptouts) { /* the users who pressed stop, once each */
		struct eng_optout_change *c = eng_xcalloc(s->noptouts, sizeof(*c));
		struct eng_optout_result *res = eng_xcalloc(s->noptouts, sizeof(*res));
		char (*mids)[24] = eng_xcalloc(s->noptouts, sizeof(*mids));
		size_t nu = 0;
		for (size_t i = 0; i < s->noptouts; i++) {
			bool dup = false;
			for (size_t k = 0; k < nu && !dup; k++)
				dup = strcmp(c[k].user_id, s->optouts[i].user_id) == 0;
			if (dup)
				continue;
			snprintf(mids[nu], sizeof(mids[nu]), "%lld", s->optouts[i].message_id);
			c[nu] = (struct eng_optout_change){
				s->optouts[i].user_id, true, "whatsapp", s->optouts[i].at,
				"WhatsApp error 131050: the user stopped marketing messages",
				s->run->run_id, mids[nu],
			};
			nu++;
		}
		st = eng_optout_apply_many(s->db, c, nu, res, err);
		for (size_t i = 0; st == ENG_OK && i < nu; i++)
			eng_log(ENG_INFO, "opt_out_recorded", ENG_S("user_id", c[i].user_id),
				ENG_S("source", "whatsapp"),
				ENG_S("outcome", eng_optout_outcome_name(res[i].outcome)));
		free(c);
		free(res);
		free(mids);
		if (st)
			goto out;
	}
	st = eng_db_commit(s->db, err);
out:
	if (st)
		eng_db_rollback(s->db);
	return st;
}

/* Write back what is recorded. Outcomes of requests already made must not
 * be dropped (the messages would be sent again after their lease): a
 * transient failure is retried, reconnecting if the connection was lost. */
static enum eng_status flush(struct sender *s, struct eng_err *err)
{
	size_t n = json_array_size(s->out);
	s->last_flush = eng_mono_us();
	if (n == 0 && s->noptouts == 0)
		return ENG_OK;
	char *rows = eng_json_dump(s->out);
	enum eng_status st = ENG_OK;
	for (int attempt = 1; attempt <= 4; attempt++) {
		st = write_back(s, rows, n, err);
		if (st != ENG_ETEMP || attempt == 4)
			break;
		eng_log(ENG_WARN, "write_back_retried", ENG_I("attempt", attempt),
			ENG_S("error", err->msg));
		struct timespec ts = {0, attempt * 200L * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (!eng_db_alive(s->db))
			PQreset(s->db->conn);
	}
	free(rows);
	json_array_clear(s->out);
	for (size_t i = 0; i < s->nout_msgs; i++)
		msg_free(s->out_msgs[i]);
	s->nout_msgs = 0;
	s->noptouts = 0;
	return st;
}

/* ---- the checks after a claim ------------------------------------------------ */

static void push_pending(struct sender *s, struct msg *m)
{
	if (s->head > 0 && s->head == s->npending) {
		s->head = s->npending = 0;
	}
	if (s->npending == s->pending_cap) {
		if (s->head > 0) { /* compact */
			memmove(s->pending, s->pending + s->head,
				(s->npending - s->head) * sizeof(*s->pending));
			s->npending -= s->head;
			s->head = 0;
		}
		if (s->npending == s->pending_cap) {
			s->pending_cap = s->pending_cap ? 2 * s->pending_cap : 256;
			s->pending = eng_xrealloc(s->pending,
						  s->pending_cap * sizeof(*s->pending));
		}
	}
	s->pending[s->npending++] = m;
}

static size_t pending_count(const struct sender *s)
{
	return s->npending - s->head;
}

/* Parse the template's parameter names ("{a,b}") and fill values from the
 * message's params; a missing one is an error message. */
static bool fill_values(const char *names, const char *params, char ***values,
			size_t *n, char *why, size_t whysz)
{
	*values = NULL;
	*n = 0;
	json_error_t je;
	json_t *obj = json_loads(params ? params : "{}", 0, &je);
	bool ok = json_is_object(obj);
	if (!ok)
		snprintf(why, whysz, "params are not a JSON object");
	/* names: "{}" or "{activity_count,first_name}" (plain identifiers) */
	const char *p = names && *names == '{' ? names + 1 : "";
	while (ok && *p && *p != '}') {
		size_t len = strcspn(p, ",}");
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		json_t *v = json_object_get(obj, name);
		char buf[64];
		const char *text = NULL;
		if (json_is_string(v))
			text = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v)), text = buf;
		else if (json_is_real(v))
			snprintf(buf, sizeof(buf), "%g", json_real_value(v)), text = buf;
		if (!text) {
			snprintf(why, whysz, "the template needs parameter \"%s\", which "
				 "the message does not have", name);
			ok = false;
			break;
		}
		*values = eng_xrealloc(*values, (*n + 1) * sizeof(**values));
		(*values)[(*n)++] = eng_xstrdup(text);
	}
	json_decref(obj);
	if (!ok) {
		for (size_t i = 0; i < *n; i++)
			free((*values)[i]);
		free(*values);
		*values = NULL;
		*n = 0;
	}
	return ok;
}

/* Decide what to do with one claimed row: record an outcome now, or make
 * the request body and queue it for sending. */
static enum eng_status decide(struct sender *s, PGresult *r, int i,
			      struct eng_err *err)
{
	struct msg *m = eng_xcalloc(1, sizeof(*m));
	m->id = atoll(PQgetvalue(r, i, 0));
	snprintf(m->user_id, sizeof(m->user_id), "%s", PQgetvalue(r, i, 1));
	m->attempts = atoi(PQgetvalue(r, i, 4));
	m->max_attempts = atoi(PQgetvalue(r, i, 5));
	m->claimed_at = eng_db_epoch_us(PQgetvalue(r, i, 16));
	m->claimed_mono = eng_mono_us();
	eng_time now = m->claimed_at;
	bool expired = strcmp(PQgetvalue(r, i, 6), "t") == 0;
	bool opted_out = strcmp(PQgetvalue(r, i, 7), "t") == 0;
	bool quiet = !PQgetisnull(r, i, 8);
	bool group = strcmp(PQgetvalue(r, i, 11), "group") == 0;
	bool have_template = !PQgetisnull(r, i, 13);

	/* 0. a late re-engagement message is worse than none */
	if (expired) {
		struct outcome o = {"cancelled", 0, 0, "expired",
				    "expired before it could be sent", NULL, 0,
				    "message_cancelled", details(m, "expired")};
		s->k.cancelled++;
		return record(s, m, &o, err);
	}
	/* 0b. a goodbye to someone who came back (their activity raced the
	 * claim): worse than none too */
	if (strcmp(PQgetvalue(r, i, 2), "goodbye") == 0 && !PQgetisnull(r, i, 19) &&
	    strcmp(PQgetvalue(r, i, 19), "goodbye_sent") != 0) {
		struct outcome o = {"cancelled", 0, 0, "user_returned",
				    "the user wrote again before it was sent", NULL, 0,
				    "message_cancelled", details(m, "user_returned")};
		s->k.cancelled++;
		return record(s, m, &o, err);
	}
	/* 1. opted out now: never sent, even if queued before */
	if (opted_out) {
		struct outcome o = {"blocked", 0, 0, "opted_out",
				    "the user opted out of re-engagement messages",
				    NULL, 0, "message_blocked", details(m, "opted_out")};
		s->k.blocked++;
		return record(s, m, &o, err);
	}
	/* 2. quiet hours: back to the queue until the window ends */
	eng_time until = quiet ? eng_db_epoch_us(PQgetvalue(r, i, 8)) : 0;
	if (quiet && until > now)
		return defer(s, m, until, "quiet_hours", err);
	/* 3. the per-user hourly cap: the sends the database has, and this
	 * run's not written back yet (the same message counted once) */
	struct user_sends *u = user_of(s, m->user_id);
	size_t ndb = 0;
	const char *list = PQgetvalue(r, i, 9);
	for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
		ndb++;
	eng_time *all = eng_xcalloc(ndb + u->n + 1, sizeof(*all));
	long long *dbids = eng_xcalloc(ndb + 1, sizeof(*dbids));
	size_t nall = 0;
	for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		char *colon;
		dbids[nall] = strtoll(p, &colon, 10);
		all[nall++] = strtoll(*colon == ':' ? colon + 1 : colon, NULL, 10);
	}
	for (size_t k = 0; k < u->n; k++) {
		bool known = false;
		for (size_t d = 0; d < ndb && !known; d++)
			known = dbids[d] == u->r[k].message_id;
		if (!known && u->r[k].at > now - 3600 * ENG_USEC_PER_SEC &&
		    u->r[k].at <= now)
			all[nall++] = u->r[k].at;
	}
	free(dbids);
	qsort(all, nall, sizeof(*all), cmp_time);
	eng_time free_at = eng_send_cap_until(all, nall, s->o->per_user_hourly, now);
	free(all);
	if (free_at > now)
		return defer(s, m, free_at, "hourly_cap", err);
	/* 4. the template, in the user's language or the nearest one */
	char why[256];
	char **values = NULL;
	size_t nvalues = 0;
	if (!have_template)
		snprintf(why, sizeof(why),
			 "no active template \"%s\" for locale %s, its language or en",
			 PQgetvalue(r, i, 18), PQgetvalue(r, i, 17));
	if (!have_template ||
	    !fill_values(PQgetvalue(r, i, 15), PQgetvalue(r, i, 3), &values,
			 &nvalues, why, sizeof(why))) {
		struct outcome o = {"failed", 0, 0, "template", why, NULL, 0,
				    "message_failed", details(m, "template")};
		s->k.failed++;
		return record(s, m, &o, err);
	}
	if (group && PQgetisnull(r, i, 12)) {
		struct outcome o = {"failed", 0, 0, "no_group",
				    "the user prefers a group but has no group_id",
				    NULL, 0, "message_failed", details(m, "no_group")};
		s->k.failed++;
		for (size_t k = 0; k < nvalues; k++)
			free(values[k]);
		free(values);
		return record(s, m, &o, err);
	}
	m->to = eng_xstrdup(PQgetvalue(r, i, group ? 12 : 10));
	m->body = eng_wa_template_body(m->to, group, PQgetvalue(r, i, 13),
				       PQgetvalue(r, i, 14),
				       (const char *const *)values, nvalues, m->id);
	for (size_t k = 0; k < nvalues; k++)
		free(values[k]);
	free(values);

	/* count it against the hourly cap now, so one batch cannot pass it;
	 * released again if it is not sent */
	if (u->n == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 4;
		u->r = eng_xrealloc(u->r, u->cap * sizeof(*u->r));
	}
	u->r[u->n++] = (struct reservation){m->id, now};

	if (s->dry) {
		if (json_array_size(s->dry_requests) < DRY_RUN_SHOWN) {
			json_error_t je;
			json_t *b = json_loads(m->body, 0, &je);
			char masked[48];
			eng_mask_phone(m->to, masked, sizeof(masked));
			if (b && !group)
				json_object_set_new(b, "to", json_string(masked));
			json_array_append_new(s->dry_requests, b ? b : json_null());
		}
		s->k.would_send++; /* its reservation stays: the cap holds */
		msg_free(m);
		return ENG_OK;
	}
	push_pending(s, m);
	return ENG_OK;
}

static enum eng_status claim(struct sender *s, int want, struct eng_err *err)
{
	char lease[16], limit[16], now[32];
	snprintf(lease, sizeof(lease), "%d", s->o->lease_seconds);
	snprintf(limit, sizeof(limit), "%d", want);
	if (s->run->opt.have_now)
		eng_time_format(s->run->opt.now, now);
	char cap[16];
	snprintf(cap, sizeof(cap), "%d", s->o->per_user_hourly);
	const char *p[] = {s->owner, s->run->opt.have_now ? now : NULL,
			   lease, limit, cap};
	PGresult *r = eng_db_query(s->db, claim_sql, 5, p, err);
	if (!r)
		return eng_err_prefix(err, "could not claim messages");
	int rows = PQntuples(r);
	s->k.claimed += rows;
	if (rows < want)
		s->drained = true;
	enum eng_status st = ENG_OK;
	for (int i = 0; i < rows && st == ENG_OK; i++)
		st = decide(s, r, i, err);
	PQclear(r);
	if (rows)
		eng_log(ENG_DEBUG, "claimed", ENG_I("messages", rows));
	return st;
}

/* ---- rate ------------------------------------------------------------------- */

/* Take tokens from the shared bucket. Sets rate_wait_until when none. */
static enum eng_status take_tokens(struct sender *s, int want, struct eng_err *err)
{
	char rate[32], burst[32], w[16];
	double b = s->o->rate * 0.25 < 1 ? 1 : s->o->rate * 0.25;
	snprintf(rate, sizeof(rate), "%.6f", s->o->rate);
	snprintf(burst, sizeof(burst), "%.6f", b);
	snprintf(w, sizeof(w), "%d", want);
	const char *p[] = {s->wa->phone_number_id, rate, burst, w};
	PGresult *r = eng_db_query(s->db, rate_sql, 4, p, err);
	if (!r)
		return eng_err_prefix(err, "could not take send tokens");
	int granted = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
	double avail = PQntuples(r) ? atof(PQgetvalue(r, 0, 1)) : 0;
	PQclear(r);
	s->tokens += granted;
	if (granted == 0) {
		double wait = (1.0 - avail) / s->o->rate;
		if (wait < 0.001)
			wait = 0.001;
		s->rate_wait_until = eng_mono_us() + (int64_t)(wait * 1e6);
	}
	return ENG_OK;
}

/* ---- HTTP -------------------------------------------------------------------- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct slot *sl = userdata;
	size_t n = size * nmemb;
	eng_buf_add(&sl->answer, ptr, n); /* past MAX_ANSWER: cut, still parsed */
	return n;
}

static enum eng_status start(struct sender *s, struct slot *sl, struct msg *m,
			     struct eng_err *err)
{
	sl->m = m;
	eng_buf_reset(&sl->answer);
	sl->errbuf[0] = '\0';
	sl->t0 = eng_mono_us();
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, m->body);
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(m->body));
	if (curl_multi_add_handle(s->multi, sl->easy) != CURLM_OK)
		return eng_err_set(err, ENG_EINTERNAL, "curl_multi_add_handle failed");
	s->in_flight++;
	s->k.requests++;
	return ENG_OK;
}

/* Replace every occurrence of secret in text (a buffer of cap bytes). */
static void redact(char *text, size_t cap, const char *secret)
{
	size_t sl = strlen(secret);
	if (!sl || !strstr(text, secret))
		return;
	struct eng_buf b = ENG_BUF_INIT(cap - 1);
	for (const char *p = text; *p;) {
		const char *hit = strstr(p, secret);
		if (!hit) {
			eng_buf_adds(&b, p);
			break;
		}
		eng_buf_add(&b, p, (size_t)(hit - p));
		eng_buf_adds(&b, "[redacted]");
		p = hit + sl;
	}
	snprintf(text, cap, "%s", eng_buf_str(&b));
	eng_buf_release(&b);
}

static enum eng_status finish(struct sender *s, struct slot *sl, CURLcode rc,
			      struct eng_err *err)
{
	struct msg *m = sl->m;
	struct eng_wa_result res;
	long http = 0;
	sl->m = NULL;
	s->in_flight--;
	if (s->nlat == s->lat_cap) {
		s->lat_cap = s->lat_cap ? 2 * s->lat_cap : 1024;
		s->lat = eng_xrealloc(s->lat, s->lat_cap * sizeof(*s->lat));
	}
	s->lat[s->nlat++] = (double)(eng_mono_us() - sl->t0) / 1000.0;

	if (rc == CURLE_OK) {
		curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &http);
		eng_wa_parse_answer(http, eng_buf_str(&sl->answer), sl->answer.len, &res);
		s->transport_streak = 0;
	} else {
		eng_wa_transport_error(rc, sl->errbuf, &res);
		if (rc != CURLE_OPERATION_TIMEDOUT)
			s->transport_streak++;
	}
	/* whatever an answer echoes, the token goes no further */
	redact(res.error, sizeof(res.error), s->wa->token);
	/* The API unreachable for every request (DNS, TLS, refused): stop
	 * before every message's attempts are used up on it. */
	if (res.cls != ENG_WA_SENT && rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT &&
	    (s->unreachable ||
	     s->transport_streak >= (s->o->concurrency > 5 ? s->o->concurrency : 5))) {
		if (!s->unreachable)
			snprintf(s->fatal_error, sizeof(s->fatal_error),
				 "the API is unreachable: %s", res.error);
		s->unreachable = true;
		count_error(s, res.code_text);
		return hand_back(s, m, res.code_text, res.error, "unreachable", err);
	}
	eng_time now = now_for(s, m);
	json_t *d = details(m, NULL);
	json_object_set_new(d, "attempt", json_integer(m->attempts + 1));
	json_object_set_new(d, "http_status", json_integer(http));
	json_object_set_new(d, "latency_ms", json_real(s->lat[s->nlat - 1]));
	if (res.code)
		json_object_set_new(d, "error_code", json_integer(res.code));
	if (res.cls != ENG_WA_SENT)
		count_error(s, res.code_text);

	struct outcome o = {0};
	o.details = d;
	switch (res.cls) {
	case ENG_WA_SENT:
		o = (struct outcome){"sent", 1, 0, NULL, NULL, res.wamid, now,
				     "message_sent", d};
		s->k.sent++;
		eng_log(ENG_DEBUG, "message_sent", ENG_I("message_id", m->id),
			ENG_PHONE("to", m->to), ENG_S("provider_message_id", res.wamid));
		break;
	case ENG_WA_FATAL:
		/* The whole run is refused: give this one back uncharged too. */
		s->fatal = true;
		snprintf(s->fatal_error, sizeof(s->fatal_error), "%s", res.error);
		json_decref(d);
		return hand_back(s, m, res.code_text, res.error, "fatal", err);
	case ENG_WA_FAIL:
		o = (struct outcome){"failed", 1, 0, res.code_text, res.error, NULL, 0,
				     "message_failed", d};
		s->k.failed++;
		if (res.code == 131050) { /* the user said stop inside WhatsApp */
			s->optouts = eng_xrealloc(s->optouts, (s->noptouts + 1) * sizeof(*s->optouts));
			struct optout *oo = &s->optouts[s->noptouts++];
			snprintf(oo->user_id, sizeof(oo->user_id), "%s", m->user_id);
			oo->message_id = m->id;
			oo->at = now;
		}
		break;
	case ENG_WA_RETRY:
	case ENG_WA_DEFER:
		if (m->attempts + 1 >= m->max_attempts) {
			o = (struct outcome){"failed", 1, 0, res.code_text, res.error, NULL,
					     0, "message_failed", d};
			json_object_set_new(d, "reason", json_string("max_attempts"));
			s->k.failed++;
		} else {
			eng_time next = now + eng_wa_backoff(res.cls, res.code,
							     m->attempts + 1, rnd(s));
			o = (struct outcome){"queued", 1, next, res.code_text, res.error,
					     NULL, 0,
					     res.cls == ENG_WA_RETRY ? "message_retry"
								     : "message_deferred",
					     d};
			json_object_set_new(d, "next_attempt_at", ts_or_null(next));
			if (res.cls == ENG_WA_RETRY)
				s->k.retried++;
			else
				s->k.deferred++;
		}
		break;
	}
	if (res.cls != ENG_WA_SENT)
		release_reservation(s, m);
	if (res.cls != ENG_WA_SENT)
		eng_log(res.cls == ENG_WA_FAIL ? ENG_WARN : ENG_INFO, "message_not_sent",
			ENG_I("message_id", m->id), ENG_PHONE("to", m->to),
			ENG_S("class", eng_wa_class_name(res.cls)),
			ENG_S("code", res.code_text), ENG_S("error", res.error));
	return record(s, m, &o, err);
}

static enum eng_status harvest(struct sender *s, struct eng_err *err)
{
	CURLMsg *cm;
	int left;
	enum eng_status st = ENG_OK;
	while ((cm = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (cm->msg != CURLMSG_DONE)
			continue;
		struct slot *sl = NULL;
		curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
		CURLcode rc = cm->data.result;
		curl_multi_remove_handle(s->multi, cm->easy_handle);
		if (st == ENG_OK)
			st = finish(s, sl, rc, err);
	}
	return st;
}

static enum eng_status setup_http(struct sender *s, struct eng_err *err)
{
	char auth[16400];
	s->multi = curl_multi_init();
	if (!s->multi)
		return eng_err_set(err, ENG_EINTERNAL, "curl_multi_init failed");
	curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s->o->concurrency);
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s->o->concurrency);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->o->concurrency);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->wa->token);
	s->headers = curl_slist_append(NULL, auth);
	memset(auth, 0, sizeof(auth));
	s->headers = curl_slist_append(s->headers, "Content-Type: application/json");
	s->headers = curl_slist_append(s->headers, "Expect:");
	s->slots = eng_xcalloc((size_t)s->o->concurrency, sizeof(*s->slots));
	for (int i = 0; i < s->o->concurrency; i++) {
		struct slot *sl = &s->slots[i];
		eng_buf_init(&sl->answer, MAX_ANSWER);
		sl->easy = curl_easy_init();
		if (!sl->easy)
			return eng_err_set(err, ENG_EINTERNAL, "curl_easy_init failed");
		curl_easy_setopt(sl->easy, CURLOPT_URL, s->wa->endpoint);
		curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, s->headers);
		curl_easy_setopt(sl->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(sl->easy, CURLOPT_WRITEDATA, sl);
		curl_easy_setopt(sl->easy, CURLOPT_PRIVATE, (char *)sl);
		curl_easy_setopt(sl->easy, CURLOPT_ERRORBUFFER, sl->errbuf);
		curl_easy_setopt(sl->easy, CURLOPT_TIMEOUT_MS, s->o->timeout_ms);
		curl_easy_setopt(sl->easy, CURLOPT_CONNECTTIMEOUT_MS, s->o->connect_timeout_ms);
		curl_easy_setopt(sl->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(sl->easy, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(sl->easy, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(sl->easy, CURLOPT_PROTOCOLS_STR, "https,http");
		/* plain http only goes to loopback: never through a proxy */
		curl_easy_setopt(sl->easy, CURLOPT_NOPROXY, "localhost,127.0.0.0/8,::1");
		curl_easy_setopt(sl->easy, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(sl->easy, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(sl->easy, CURLOPT_USERAGENT, "engagement-queue-send/" ENG_VERSION);
	}
	return ENG_OK;
}

static void teardown_http(struct sender *s)
{
	for (int i = 0; s->slots && i < s->o->concurrency; i++) {
		if (s->slots[i].easy) {
			if (s->slots[i].m) { /* in flight when the run broke off */
				curl_multi_remove_handle(s->multi, s->slots[i].easy);
				msg_free(s->slots[i].m);
				s->slots[i].m = NULL;
			}
			curl_easy_cleanup(s->slots[i].easy);
		}
		eng_buf_release(&s->slots[i].answer);
	}
	free(s->slots);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	if (s->headers) { /* the token lives in the first header: wipe it */
		for (struct curl_slist *h = s->headers; h; h = h->next)
			memset(h->data, 0, strlen(h->data));
		curl_slist_free_all(s->headers);
	}
}

/* ---- the run ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)ceil(q * (double)n);
	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
}

static enum eng_status recover(struct sender *s, struct eng_err *err)
{
	char now[32];
	eng_time_format(s->run->opt.have_now ? s->run->opt.now : s->run->now, now);
	const char *p[] = {now, s->run->run_id};
	PGresult *r = eng_db_query(s->db, recover_sql, 2, p, err);
	if (!r)
		return eng_err_prefix(err, "could not recover expired leases");
	long long n = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	s->k.recovered += n;
	if (n)
		eng_log(ENG_WARN, "leases_recovered", ENG_I("messages", n));
	return ENG_OK;
}

/* Every third of a lease: keep our claims, and recover dead workers'. */
static enum eng_status renew(struct sender *s, struct eng_err *err)
{
	int64_t now = eng_mono_us();
	if (now - s->lease_renewed < (int64_t)s->o->lease_seconds * 1000000 / 3)
		return ENG_OK;
	char lease[16];
	snprintf(lease, sizeof(lease), "%d", s->o->lease_seconds);
	const char *p[] = {s->owner, lease};
	if (eng_db_exec(s->db, renew_sql, 2, p, err))
		return eng_err_prefix(err, "could not renew the claims' lease");
	s->lease_renewed = now;
	return recover(s, err);
}

/* May m still be sent? Its lease is renewed every third of a lease while
 * the request runs; what must not happen is starting on a claim whose
 * lease is about to lapse (the process stalled past its renewals): another
 * worker may be recovering it. */
static bool lease_ok(const struct sender *s, const struct msg *m)
{
	int64_t since = m->claimed_mono > s->lease_renewed ? m->claimed_mono
							    : s->lease_renewed;
	int64_t expiry = since + (int64_t)s->o->lease_seconds * 1000000;
	return eng_mono_us() + 2000000 < expiry;
}

static enum eng_status housekeeping(struct sender *s, struct eng_err *err)
{
	char days[16];
	if (recover(s, err))
		return err->status;
	snprintf(days, sizeof(days), "%d", s->o->retain_days);
	const char *q[] = {days};
	int64_t t0 = eng_mono_us();
	long long n;
	do { /* bounded batches, and bounded time */
		if (eng_db_exec_count(s->db, purge_sql, 1, q, &n, err))
			return eng_err_prefix(err, "could not purge old messages");
		s->k.purged += n;
	} while (n == 1000 && eng_mono_us() - t0 < 2000000);
	return ENG_OK;
}

static void summarize(struct sender *s, int64_t t0)
{
	json_t *sum = s->run->summary;
	double secs = (double)(eng_mono_us() - t0) / 1e6;
	json_object_set_new(sum, "worker_id", json_string(s->owner));
	json_object_set_new(sum, "claimed", json_integer(s->k.claimed));
	json_object_set_new(sum, "sent", json_integer(s->k.sent));
	json_object_set_new(sum, "retried", json_integer(s->k.retried));
	json_object_set_new(sum, "deferred", json_integer(s->k.deferred));
	json_object_set_new(sum, "failed", json_integer(s->k.failed));
	json_object_set_new(sum, "blocked", json_integer(s->k.blocked));
	json_object_set_new(sum, "cancelled", json_integer(s->k.cancelled));
	json_object_set_new(sum, "handed_back", json_integer(s->k.handed_back));
	json_object_set_new(sum, "requests", json_integer(s->k.requests));
	json_object_set_new(sum, "leases_recovered", json_integer(s->k.recovered));
	json_object_set_new(sum, "leases_lost", json_integer(s->k.lease_lost));
	json_object_set_new(sum, "purged", json_integer(s->k.purged));
	json_object_set_new(sum, "errors", json_incref(s->errors));
	if (s->nlat)
		qsort(s->lat, s->nlat, sizeof(*s->lat), cmp_double);
	json_t *lat = json_object();
	json_object_set_new(lat, "p50", json_real(round(percentile(s->lat, s->nlat, 0.50) * 10) / 10));
	json_object_set_new(lat, "p99", json_real(round(percentile(s->lat, s->nlat, 0.99) * 10) / 10));
	json_object_set_new(lat, "max", json_real(s->nlat ? round(s->lat[s->nlat - 1] * 10) / 10 : 0));
	json_object_set_new(sum, "latency_ms", lat);
	json_object_set_new(sum, "send_rate", json_real(secs > 0 ? round(s->k.sent / secs * 10) / 10 : 0));
	if (s->dry) {
		json_object_set_new(sum, "would_send", json_integer(s->k.would_send));
		json_object_set_new(sum, "requests_shown", json_incref(s->dry_requests));
	}
	if (s->fatal || s->unreachable)
		json_object_set_new(sum, "fatal_error", eng_json_text(s->fatal_error));
}

enum eng_status eng_send_run(struct eng_run *run, const struct eng_send_opts *o,
			     const struct eng_wa_config *wa, int *exit_code,
			     struct eng_err *err)
{
	struct sender s;
	memset(&s, 0, sizeof(s));
	s.run = run;
	s.o = o;
	s.wa = wa;
	s.db = &run->db;
	s.dry = run->opt.dry_run;
	s.out = json_array();
	s.errors = json_object();
	s.dry_requests = json_array();
	s.last_flush = eng_mono_us();
	s.lease_renewed = eng_mono_us();
	s.stop_reason = "stopped";
	snprintf(s.owner, sizeof(s.owner), "%s/%.8s", o->worker_id, run->run_id);
	if (getrandom(&s.rng, sizeof(s.rng), 0) != sizeof(s.rng) || !s.rng)
		s.rng = 0x9E3779B97F4A7C15ULL ^ (unsigned long long)eng_mono_us();
	int64_t t0 = eng_mono_us();
	enum eng_status st = ENG_OK;
	*exit_code = ENG_EXIT_OK;

	if (s.dry) {
		st = eng_db_begin(s.db, err);
	} else {
		st = housekeeping(&s, err);
		if (st == ENG_OK && o->rate > 0) {
			const char *p[] = {wa->phone_number_id};
			st = eng_db_exec(s.db,
					 "INSERT INTO engagement.send_rate (phone_number_id) "
					 "VALUES ($1) ON CONFLICT DO NOTHING",
					 1, p, err);
		}
		if (st == ENG_OK)
			st = setup_http(&s, err);
	}

	bool interrupted = false;
	while (st == ENG_OK) {
		int64_t now = eng_mono_us();
		if (!s.stop && eng_interrupted) {
			s.stop = interrupted = true;
			s.stop_reason = "signal";
			eng_log(ENG_WARN, "stopping", ENG_S("reason", "signal"),
				ENG_I("signal", eng_interrupted));
		}
		if (!s.stop && o->max_seconds > 0 &&
		    (double)(now - t0) / 1e6 >= o->max_seconds) {
			s.stop = true;
			s.stop_reason = "max_seconds";
			eng_log(ENG_INFO, "stopping", ENG_S("reason", "max_seconds"));
		}
		if (!s.stop && (s.fatal || s.unreachable)) {
			s.stop = true;
			s.stop_reason = s.fatal ? "fatal" : "unreachable";
		}
		if (!s.dry && (st = renew(&s, err)))
			break;

		/* claim more while the pipeline runs low */
		bool may_claim = !s.stop && !s.drained &&
				 (o->max_messages == 0 || s.k.claimed < o->max_messages);
		if (may_claim && (s.dry || pending_count(&s) < (size_t)o->concurrency * 2)) {
			long long want = o->batch;
			if (o->max_messages && want > o->max_messages - s.k.claimed)
				want = o->max_messages - s.k.claimed;
			if (o->rate > 0) { /* what can be sent well within a lease */
				double bound = o->rate * o->lease_seconds / 3.0;
				if (want > bound)
					want = bound < 1 ? 1 : (long long)bound;
			}
			if ((st = claim(&s, (int)want, err)))
				break;
			if (s.dry)
				continue;
		}
		if (s.dry)
			break;

		/* start requests */
		while (!s.stop && s.in_flight < o->concurrency && pending_count(&s) > 0) {
			struct msg *m = s.pending[s.head];
			if (!lease_ok(&s, m)) { /* could expire mid-request: not sent */
				s.head++;
				if ((st = hand_back(&s, m, "lease", "its claim was about to "
						    "expire before it could be sent",
						    "lease", err)))
					break;
				continue;
			}
			if (o->rate > 0 && s.tokens < 1) {
				if (eng_mono_us() < s.rate_wait_until)
					break;
				int want = (int)fmin((double)pending_count(&s),
						     fmax(1.0, o->rate * 0.25));
				if ((st = take_tokens(&s, want, err)) || s.tokens < 1)
					break;
			}
			struct slot *sl = NULL;
			for (int i = 0; i < o->concurrency && !sl; i++)
				if (!s.slots[i].m)
					sl = &s.slots[i];
			if (!sl) /* cannot happen: in_flight < concurrency */
				break;
			s.head++;
			if ((st = start(&s, sl, m, err))) {
				enum eng_status st2 = hand_back(&s, m, NULL, NULL, "internal", err);
				(void)st2;
				break;
			}
			if (o->rate > 0)
				s.tokens -= 1;
		}
		if (st)
			break;

		bool nothing_left = pending_count(&s) == 0 &&
				    (s.drained || (o->max_messages && s.k.claimed >= o->max_messages));
		if (s.in_flight == 0 && (s.stop || nothing_left))
			break;

		int still = 0;
		int timeout = 50;
		if (o->rate > 0 && s.tokens < 1 && pending_count(&s) > 0) {
			int64_t w = (s.rate_wait_until - eng_mono_us()) / 1000;
			timeout = w < 1 ? 1 : (w < 50 ? (int)w : 50);
		}
		CURLMcode mc = CURLM_OK;
		if (s.in_flight > 0 || pending_count(&s) > 0)
			mc = curl_multi_poll(s.multi, NULL, 0, timeout, NULL);
		if (mc == CURLM_OK)
			mc = curl_multi_perform(s.multi, &still);
		if (mc != CURLM_OK) {
			st = eng_err_set(err, ENG_EINTERNAL, "libcurl: %s",
					 curl_multi_strerror(mc));
			break;
		}
		if ((st = harvest(&s, err)))
			break;
		if (eng_mono_us() - s.last_flush >= FLUSH_US && (st = flush(&s, err)))
			break;
	}

	if (s.dry) {
		eng_db_rollback(s.db);
	} else {
		/* whatever was claimed and not sent goes back, uncharged */
		enum eng_status st2 = ENG_OK;
		while (pending_count(&s) > 0 && st2 == ENG_OK)
			st2 = hand_back(&s, s.pending[s.head++], NULL, NULL,
					s.stop_reason, err);
		if (st2 == ENG_OK && eng_db_alive(s.db))
			st2 = flush(&s, err);
		if (st == ENG_OK)
			st = st2;
	}
	if (s.fatal) {
		*exit_code = ENG_EXIT_UNAVAILABLE;
		eng_log(ENG_ERROR, "api_refused_run", ENG_S("error", s.fatal_error),
			ENG_I("handed_back", s.k.handed_back));
	} else if (s.unreachable) {
		*exit_code = ENG_EXIT_TEMPFAIL;
		eng_log(ENG_ERROR, "api_unreachable", ENG_S("error", s.fatal_error),
			ENG_I("handed_back", s.k.handed_back));
	} else if (interrupted) {
		*exit_code = ENG_EXIT_TEMPFAIL;
	}
	summarize(&s, t0);
	eng_log(ENG_INFO, "send_finished", ENG_I("claimed", s.k.claimed),
		ENG_I("sent", s.k.sent), ENG_I("failed", s.k.failed),
		ENG_I("handed_back", s.k.handed_back));

	teardown_http(&s);
	for (size_t i = s.head; i < s.npending; i++)
		msg_free(s.pending[i]);
	for (size_t i = 0; i < s.nout_msgs; i++)
		msg_free(s.out_msgs[i]);
	free(s.pending);
	free(s.out_msgs);
	for (size_t i = 0; i < s.users_cap; i++)
		free(s.users[i].r);
	free(s.users);
	free(s.lat);
	free(s.optouts);
	json_decref(s.out);
	json_decref(s.errors);
	json_decref(s.dry_requests);
	return st;
}
