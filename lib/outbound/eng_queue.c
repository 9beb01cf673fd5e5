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

enum eng_status eng_queue_recover(struct eng_db *db, eng_time now,
				  const char *owner, const char *run_id,
				  PGresult **res, struct eng_err *err)
{
	char ts[32];
	eng_time_format(now, ts);
	const char *p[] = {owner, ts, run_id};
	return run(db,
		   "SELECT engagement.recover_claims($1, $2::timestamptz, $3::uuid) AS recovered",
		   3, p, res, err);
}

long long eng_queue_recovered(const PGresult *r)
{
	return PQntuples(r) ? num(r, 0, col(r, "recovered")) : 0;
}

/* ---- claim ------------------------------------------------------------------ */

/* engagement.claim_messages (migration 0014) says what it reads. */
static const char claim_sql[] =
	"SELECT * FROM engagement.claim_messages($1, $2::timestamptz, $3::int, $4::int, $5::int)";

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
				size_t n, const char *owner, const eng_time *now, long pair_ms,
				PGresult **res, struct eng_err *err)
{
	char ts[32], pair[24];
	char *arr = eng_db_int_array(ids, n);
	if (now)
		eng_time_format(*now, ts);
	snprintf(pair, sizeof(pair), "%ld", pair_ms);
	const char *p[] = {arr, owner, now ? ts : NULL, pair};
	enum eng_status st = run(db,
				 "SELECT id, verdict FROM engagement.send_fence"
				 "($1::bigint[], $2, $3::timestamptz, $4::int)",
				 4, p, res, err);
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
	return run(db, "SELECT id FROM engagement.renew_claims($1, $3::uuid, $2::int)", 3, p,
		   res, err);
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

/* engagement.record_send_outcomes (migration 0016): written while the claim is
 * ours; a request's outcome also when another worker recovered the
 * message, and a send whoever holds it now; a 131050 records the person's
 * opt-out. */
static const char writeback_sql[] =
	"SELECT id FROM engagement.record_send_outcomes($2, $3::uuid, $1::jsonb)";

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

static const char *const kind_names[] = {
	[ENG_OUT_SENT] = "sent", [ENG_OUT_RETRIED] = "retried",
	[ENG_OUT_DEFERRED] = "deferred", [ENG_OUT_FAILED] = "failed",
	[ENG_OUT_BLOCKED] = "blocked", [ENG_OUT_CANCELLED] = "cancelled",
	[ENG_OUT_HANDED_BACK] = "handed_back",
};

void eng_queue_row(json_t *rows, long long id, int attempts_before,
		   const struct eng_outcome *o)
{
	json_t *row = json_object();
	json_object_set_new(row, "id", json_integer(id));
	json_object_set_new(row, "kind", json_string(kind_names[o->kind]));
	json_object_set_new(row, "status", json_string(o->status)); /* for the log */
	json_object_set_new(row, "charge", json_integer(o->charge));
	json_object_set_new(row, "before", json_integer(attempts_before));
	json_object_set_new(row, "requested", json_boolean(o->attempt > 0));
	json_object_set_new(row, "next_attempt_at", ts_or_null(o->next));
	json_object_set_new(row, "code", str_or_null(o->code));
	json_object_set_new(row, "error", str_or_null(o->error));
	json_object_set_new(row, "wamid", str_or_null(o->wamid));
	json_object_set_new(row, "sent_at", ts_or_null(o->sent_at));
	json_object_set_new(row, "at", ts_or_null(o->at));
	json_object_set_new(row, "reason", o->reason ? json_string(o->reason) : json_null());
	json_object_set_new(row, "until", ts_or_null(o->until));
	if (o->attempt) {
		json_object_set_new(row, "attempt", json_integer(o->attempt));
		json_object_set_new(row, "http_status", json_integer(o->http_status));
		json_object_set_new(row, "latency_ms", json_real(o->latency_ms));
		if (o->error_code)
			json_object_set_new(row, "error_code", json_integer(o->error_code));
	}
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
	return eng_db_purge(db, "SELECT engagement.purge_messages($1::int)", 1, p, 1000, n, err);
}
