#include "eng_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_json.h"

/* Run the statement now (res given) or only send it (res NULL). */
static enum eng_status run(struct eng_db *db, const char *sql, int n,
			   const char *const *p, PGresult **res, struct eng_err *err)
{
	if (!res)
		return eng_db_send(db, sql, n, p, err);
	*res = eng_db_query(db, sql, n, p, err);
	return *res ? ENG_OK : err->status;
}

static int col(const PGresult *r, const char *name)
{
	return PQfnumber(r, name);
}

static const char *val(const PGresult *r, int i, int c)
{
	return c >= 0 && !PQgetisnull(r, i, c) ? PQgetvalue(r, i, c) : NULL;
}

static long long num(const PGresult *r, int i, int c)
{
	const char *v = val(r, i, c);
	return v ? atoll(v) : 0;
}

static bool flag(const PGresult *r, int i, int c)
{
	const char *v = val(r, i, c);
	return v && strcmp(v, "t") == 0;
}

/* ---- recover ---------------------------------------------------------------- */

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
	/* never this run's own: it still holds them (renews or hands them
	 * back), and may hold their outcome */
	"      AND q.locked_by <> $3"
	"    ORDER BY q.locked_until LIMIT 1000 FOR UPDATE SKIP LOCKED))"
	"  RETURNING m.id, m.user_id, m.status, m.message_type, m.attempts"
	"), audit AS ("
	"  SELECT engagement.write_audit(jsonb_agg(jsonb_build_object("
	"    'user_id', user_id, 'message_id', id, 'event', 'message_lease_recovered',"
	"    'source', 'queue-send', 'run_id', $2::uuid,"
	"    'details', jsonb_build_object('status', status, 'attempts', attempts))"
	"    ORDER BY id)) AS n FROM r"
	"), ob AS ("
	"  SELECT engagement.publish_message_events('message.failed',"
	"    array_agg(id ORDER BY id) FILTER (WHERE status = 'failed'), $2::uuid) AS n"
	"  FROM r"
	")"
	/* (audit and ob only read: they run because they are read here) */
	"SELECT count(*) AS recovered, (SELECT n FROM audit) + (SELECT n FROM ob) AS written"
	" FROM r";

enum eng_status eng_queue_recover(struct eng_db *db, eng_time now,
				  const char *owner, const char *run_id,
				  PGresult **res, struct eng_err *err)
{
	char ts[32];
	eng_time_format(now, ts);
	const char *p[] = {ts, run_id, owner};
	return run(db, recover_sql, 3, p, res, err);
}

long long eng_queue_recovered(const PGresult *r)
{
	return PQntuples(r) ? num(r, 0, col(r, "recovered")) : 0;
}

/* ---- claim ------------------------------------------------------------------ */

/* The ARRAY(...) fence keeps the planner from updating more rows than the
 * SKIP LOCKED select chose. The user's newest sends (the hourly cap) are
 * found by sent_at alone (only sent messages have one), which only
 * message_queue_user_sent_idx serves. */
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
	"SELECT c.id, c.user_id, c.message_type, c.template_key,"
	"  c.params::text AS params, c.attempts, c.max_attempts,"
	"  c.expires_at IS NOT NULL AND c.expires_at <= t.now AS expired,"
	"  EXISTS (SELECT 1 FROM engagement.opted_out_users o"
	"          WHERE o.user_id = c.user_id) AS opted_out,"
	"  (extract(epoch FROM CASE WHEN c.quiet_hours_override THEN NULL ELSE"
	"     engagement.quiet_until(t.now, coalesce(p.timezone, 'UTC'),"
	"       p.quiet_hours_start, p.quiet_hours_end) END) * 1000000)::bigint"
	"    AS quiet_until_us,"
	"  (SELECT string_agg(y.id || ':' || y.us, ',' ORDER BY y.us) FROM ("
	"     SELECT s.id, (extract(epoch FROM s.sent_at) * 1000000)::bigint AS us"
	"     FROM engagement.message_queue s"
	"     WHERE s.user_id = c.user_id"
	"       AND s.sent_at > t.now - interval '1 hour' AND s.sent_at <= t.now"
	"     ORDER BY s.sent_at DESC LIMIT $5::int) y) AS recent_sends,"
	"  u.phone_e164 AS phone,"
	"  coalesce(p.preferred_destination, 'individual') = 'group' AS to_group,"
	"  p.group_id, tp.provider_name AS tpl_name,"
	"  tp.provider_language AS tpl_language, tp.param_names::text AS tpl_params,"
	"  coalesce(p.locale, 'en') AS locale, es.state,"
	"  (extract(epoch FROM t.now) * 1000000)::bigint AS now_us"
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

enum eng_status eng_queue_claim(struct eng_db *db, const struct eng_claim_args *a,
				PGresult **res, struct eng_err *err)
{
	char now[32], lease[16], limit[16], cap[16];
	if (a->have_now)
		eng_time_format(a->now, now);
	snprintf(lease, sizeof(lease), "%d", a->lease_s);
	snprintf(limit, sizeof(limit), "%d", a->limit);
	snprintf(cap, sizeof(cap), "%d", a->hourly_cap);
	const char *p[] = {a->owner, a->have_now ? now : NULL, lease, limit, cap};
	return run(db, claim_sql, 5, p, res, err);
}

enum {
	C_ID, C_USER, C_TYPE, C_TKEY, C_PARAMS, C_ATTEMPTS, C_MAX, C_EXPIRED,
	C_OPTED, C_QUIET, C_RECENT, C_PHONE, C_GROUP, C_GROUP_ID, C_TNAME,
	C_TLANG, C_TPARAMS, C_LOCALE, C_STATE, C_NOW, C_COUNT,
};

void eng_claim_reader_init(struct eng_claim_reader *rd, const PGresult *r)
{
	static const char *const names[C_COUNT] = {
		"id", "user_id", "message_type", "template_key", "params",
		"attempts", "max_attempts", "expired", "opted_out",
		"quiet_until_us", "recent_sends", "phone", "to_group", "group_id",
		"tpl_name", "tpl_language", "tpl_params", "locale", "state", "now_us",
	};
	_Static_assert(C_COUNT <= sizeof(rd->col) / sizeof(rd->col[0]),
		       "claim reader columns");
	rd->r = r;
	for (int c = 0; c < C_COUNT; c++)
		rd->col[c] = col(r, names[c]);
}

void eng_claim_read(const struct eng_claim_reader *rd, int i,
		    struct eng_claim_row *row)
{
	const PGresult *r = rd->r;
	const int *c = rd->col;
	row->id = num(r, i, c[C_ID]);
	row->user_id = val(r, i, c[C_USER]);
	row->message_type = val(r, i, c[C_TYPE]);
	row->template_key = val(r, i, c[C_TKEY]);
	row->params = val(r, i, c[C_PARAMS]);
	row->attempts = (int)num(r, i, c[C_ATTEMPTS]);
	row->max_attempts = (int)num(r, i, c[C_MAX]);
	row->expired = flag(r, i, c[C_EXPIRED]);
	row->opted_out = flag(r, i, c[C_OPTED]);
	row->quiet_until = num(r, i, c[C_QUIET]);
	row->recent_sends = val(r, i, c[C_RECENT]);
	row->phone = val(r, i, c[C_PHONE]);
	row->to_group = flag(r, i, c[C_GROUP]);
	row->group_id = val(r, i, c[C_GROUP_ID]);
	row->tpl_name = val(r, i, c[C_TNAME]);
	row->tpl_language = val(r, i, c[C_TLANG]);
	row->tpl_params = val(r, i, c[C_TPARAMS]);
	row->locale = val(r, i, c[C_LOCALE]);
	row->state = val(r, i, c[C_STATE]);
	row->now = num(r, i, c[C_NOW]);
}

/* ---- fence ------------------------------------------------------------------ */

enum eng_status eng_queue_fence(struct eng_db *db, const long long *ids,
				size_t n, const char *owner, const eng_time *now,
				PGresult **res, struct eng_err *err)
{
	char ts[32];
	char *arr = eng_db_int_array(ids, n);
	if (now)
		eng_time_format(*now, ts);
	const char *p[] = {arr, owner, now ? ts : NULL};
	enum eng_status st = run(db,
				 "SELECT id, verdict FROM engagement.send_fence"
				 "($1::bigint[], $2, $3::timestamptz)",
				 3, p, res, err);
	free(arr);
	return st;
}

void eng_queue_fence_row(const PGresult *r, int i, long long *id,
			 const char **verdict)
{
	*id = num(r, i, col(r, "id"));
	*verdict = val(r, i, col(r, "verdict"));
	if (!*verdict)
		*verdict = "lost";
}

/* ---- renew ----------------------------------------------------------------- */

enum eng_status eng_queue_renew(struct eng_db *db, const char *owner, const char *run_id,
				int lease_s, PGresult **res, struct eng_err *err)
{
	char lease[16];
	snprintf(lease, sizeof(lease), "%d", lease_s);
	const char *p[] = {owner, lease, run_id};
	/* the run's heartbeat too: a run whose heartbeat stops has died */
	return run(db,
		   "WITH hb AS (UPDATE engagement.job_runs SET heartbeat_at = clock_timestamp()"
		   "  WHERE run_id = $3::uuid)"
		   "UPDATE engagement.message_queue SET"
		   "  locked_until = clock_timestamp() + make_interval(secs => $2::int)"
		   " WHERE locked_by = $1 AND status = 'sending'"
		   " RETURNING id",
		   3, p, res, err);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

size_t eng_queue_ids(const PGresult *r, long long **ids)
{
	int c = col(r, "id");
	size_t n = (size_t)PQntuples(r);
	*ids = eng_xcalloc(n + 1, sizeof(**ids));
	for (size_t i = 0; i < n; i++)
		(*ids)[i] = num(r, (int)i, c);
	qsort(*ids, n, sizeof(**ids), cmp_ll);
	return n;
}

/* ---- write-back ---------------------------------------------------------------- */

/* An outcome is written while the claim is still ours. The outcome of a
 * request (the API was asked) is also written when the claim is not ours
 * any more: a message another worker recovered after our lease ran out
 * (back to queued) gets what really happened to it, and a message we know
 * we sent is recorded sent whoever holds it now (its new holder's fence
 * then finds it gone: it is never sent twice for want of a record). Rows
 * already as an outcome would leave them (a write-back that committed but
 * whose answer was lost with the connection) count as written, unchanged. */
static const char writeback_sql[] =
	"WITH x AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, status text,"
	"    charge int, before int, requested bool, next_attempt_at timestamptz,"
	"    code text, error text, wamid text, sent_at timestamptz, event text,"
	"    details jsonb)"
	"), done AS ("
	"  SELECT x.id FROM x JOIN engagement.message_queue m ON m.id = x.id"
	"  WHERE m.status = x.status AND m.status <> 'sending' AND m.locked_by IS NULL"
	"    AND m.attempts = x.before + x.charge"
	"    AND m.provider_message_id IS NOT DISTINCT FROM coalesce(x.wamid, m.provider_message_id)"
	"    AND m.last_error_code IS NOT DISTINCT FROM coalesce(x.code, m.last_error_code)"
	"), upd AS ("
	"  UPDATE engagement.message_queue m SET"
	"    status = x.status, attempts = greatest(m.attempts, x.before + x.charge),"
	"    next_attempt_at = coalesce(x.next_attempt_at, m.next_attempt_at),"
	"    last_error_code = coalesce(x.code, m.last_error_code),"
	"    last_error = coalesce(x.error, m.last_error),"
	"    provider_message_id = coalesce(x.wamid, m.provider_message_id),"
	"    sent_at = coalesce(x.sent_at, m.sent_at),"
	"    locked_by = NULL, locked_until = NULL"
	"  FROM x WHERE m.id = x.id AND x.id NOT IN (SELECT id FROM done)"
	"    AND (m.status = 'sending' AND m.locked_by = $2"
	"         OR x.requested AND m.status = 'queued'"
	"         OR x.status = 'sent' AND m.status <> 'sent')"
	"  RETURNING m.id, m.user_id, m.message_type, x.status, x.event, x.details,"
	"            x.code, x.wamid"
	"), audit AS ("
	"  SELECT engagement.write_audit(jsonb_agg(jsonb_build_object("
	"    'user_id', user_id, 'message_id', id, 'event', event, 'source', 'queue-send',"
	"    'details', details, 'run_id', $3::uuid) ORDER BY id)"
	"    FILTER (WHERE event IS NOT NULL)) AS n FROM upd"
	"), ob AS ("
	"  SELECT engagement.publish_message_events('message.sent',"
	"      array_agg(id ORDER BY id) FILTER (WHERE status = 'sent'), $3::uuid)"
	"    + engagement.publish_message_events('message.failed',"
	"      array_agg(id ORDER BY id) FILTER (WHERE status = 'failed'), $3::uuid) AS n"
	"  FROM upd"
	/* the minute's counts (in key order: two senders never deadlock here) */
	"), counted AS ("
	"  INSERT INTO engagement.message_counts (minute, kind, code, n)"
	"  SELECT date_trunc('minute', clock_timestamp()), kind, code, count(*) FROM ("
	"    SELECT CASE event WHEN 'message_retry' THEN 'retried'"
	"      WHEN 'message_deferred' THEN 'deferred'"
	"      WHEN 'message_handed_back' THEN 'handed_back' ELSE status END AS kind,"
	"      coalesce(code, '') AS code FROM upd) k"
	"  GROUP BY kind, code ORDER BY kind, code"
	"  ON CONFLICT (minute, kind, code) DO UPDATE SET n = engagement.message_counts.n + excluded.n"
	")"
	/* (audit and ob only read: they run because they are read here) */
	"SELECT id, (SELECT n FROM audit) + (SELECT n FROM ob) AS written FROM upd"
	" UNION ALL SELECT id, 0 FROM done";

static json_t *ts_or_null(eng_time t)
{
	char b[32];
	if (!t)
		return json_null();
	eng_time_format(t, b);
	return json_string(b);
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? eng_json_str(s) : json_null();
}

void eng_queue_row(json_t *rows, long long id, int attempts_before,
		   const struct eng_outcome *o)
{
	json_t *d = json_object();
	json_object_set_new(d, "attempts", json_integer(attempts_before));
	if (o->reason)
		json_object_set_new(d, "reason", json_string(o->reason));
	if (o->until)
		json_object_set_new(d, "until", ts_or_null(o->until));
	if (o->attempt) {
		json_object_set_new(d, "attempt", json_integer(o->attempt));
		json_object_set_new(d, "http_status", json_integer(o->http_status));
		json_object_set_new(d, "latency_ms", json_real(o->latency_ms));
		if (o->error_code)
			json_object_set_new(d, "error_code", json_integer(o->error_code));
		if (o->next)
			json_object_set_new(d, "next_attempt_at", ts_or_null(o->next));
	}
	json_t *row = json_object();
	json_object_set_new(row, "id", json_integer(id));
	json_object_set_new(row, "status", json_string(o->status));
	json_object_set_new(row, "charge", json_integer(o->charge));
	json_object_set_new(row, "before", json_integer(attempts_before));
	json_object_set_new(row, "requested", json_boolean(o->attempt > 0));
	json_object_set_new(row, "next_attempt_at", ts_or_null(o->next));
	json_object_set_new(row, "code", str_or_null(o->code));
	json_object_set_new(row, "error", str_or_null(o->error));
	json_object_set_new(row, "wamid", str_or_null(o->wamid));
	json_object_set_new(row, "sent_at", ts_or_null(o->sent_at));
	json_object_set_new(row, "event", json_string(o->event));
	json_object_set_new(row, "details", d);
	json_array_append_new(rows, row);
}

enum eng_status eng_queue_write_back(struct eng_db *db, const char *rows,
				     const char *owner, const char *run_id,
				     PGresult **res, struct eng_err *err)
{
	const char *p[] = {rows, owner, run_id};
	return run(db, writeback_sql, 3, p, res, err);
}

/* ---- rate ------------------------------------------------------------------------ */

enum eng_status eng_queue_rate_init(struct eng_db *db, const char *phone_number_id,
				    struct eng_err *err)
{
	const char *p[] = {phone_number_id};
	return eng_db_exec(db,
			   "INSERT INTO engagement.send_rate (phone_number_id) "
			   "VALUES ($1) ON CONFLICT DO NOTHING",
			   1, p, err);
}

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
	"  RETURNING floor(least(greatest(cur.avail, 0), $4::float8))::int AS granted,"
	"    cur.avail AS available";

enum eng_status eng_queue_rate_take(struct eng_db *db, const char *phone_number_id,
				    double rate, double burst, int want,
				    PGresult **res, struct eng_err *err)
{
	char r[32], b[32], w[16];
	snprintf(r, sizeof(r), "%.6f", rate);
	snprintf(b, sizeof(b), "%.6f", burst);
	snprintf(w, sizeof(w), "%d", want);
	const char *p[] = {phone_number_id, r, b, w};
	return run(db, rate_sql, 4, p, res, err);
}

void eng_queue_rate_read(const PGresult *r, int *granted, double *available)
{
	*granted = PQntuples(r) ? (int)num(r, 0, col(r, "granted")) : 0;
	const char *a = PQntuples(r) ? val(r, 0, col(r, "available")) : NULL;
	*available = a ? atof(a) : 0;
}

/* ---- purge --------------------------------------------------------------------- */

enum eng_status eng_queue_purge(struct eng_db *db, int days, long long *n,
				struct eng_err *err)
{
	char d[16];
	snprintf(d, sizeof(d), "%d", days);
	const char *p[] = {d};
	return eng_db_purge(db,
			    "DELETE FROM engagement.message_queue WHERE id = ANY (ARRAY("
			    "  SELECT id FROM engagement.message_queue"
			    "  WHERE status IN ('sent', 'failed', 'blocked', 'cancelled')"
			    "    AND updated_at < clock_timestamp() - make_interval(days => $1::int)"
			    "  ORDER BY updated_at LIMIT 1000))",
			    1, p, 1000, n, err);
}
