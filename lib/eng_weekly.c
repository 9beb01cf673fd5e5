#include "eng_weekly.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_batch.h"
#include "eng_buf.h"
#include "eng_log.h"
#include "eng_state.h"

void eng_weekly_key(eng_time t, char out[16])
{
	int y, w;
	eng_iso_week(t, &y, &w);
	snprintf(out, 16, "%04d-W%02d", y % 10000, w % 100);
}

/* Users with activity in [$1, $2), after user $3, $4 at a time: user_id,
 * activity count, opted out. The inner query walks the (user_id,
 * occurred_at) index, so a batch reads only its own users' events; the
 * opt-out is a per-user lookup (a join here would hash the whole table). */
static const char candidates_sql[] =
	"SELECT a.user_id, a.n, coalesce((SELECT p.reengagement_opt_out "
	"    FROM engagement.user_preferences p WHERE p.user_id = a.user_id), false) "
	"FROM (SELECT e.user_id, count(*) AS n "
	"      FROM engagement.activity_events e "
	"      WHERE e.occurred_at >= $1::timestamptz AND e.occurred_at < $2::timestamptz "
	"        AND ($3::uuid IS NULL OR e.user_id > $3::uuid) "
	"      GROUP BY e.user_id ORDER BY e.user_id LIMIT $4::int) a "
	"ORDER BY a.user_id";

/* $1 users, $2 counts, $3 week key, $4 now, $5 expires, $6 run id. Returns
 * the 0-based positions of the users who got a new message. */
static const char queue_sql[] =
	"WITH input AS ("
	"  SELECT i.user_id, i.n, i.ord"
	"  FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS i(user_id, n, ord)"
	"  WHERE NOT EXISTS (SELECT 1 FROM engagement.user_preferences p"
	"                    WHERE p.user_id = i.user_id AND p.reengagement_opt_out)"
	"), ins AS ("
	"  INSERT INTO engagement.message_queue (user_id, message_type, template_key,"
	"    params, idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)"
	"  SELECT user_id, 'weekly_review', 'weekly_review',"
	"    jsonb_build_object('activity_count', n),"
	"    user_id::text || ':weekly_review:' || $3, $4::timestamptz,"
	"    $4::timestamptz, $5::timestamptz, $6::uuid"
	"  FROM input"
	"  ON CONFLICT (idempotency_key) DO NOTHING"
	"  RETURNING id, user_id"
	"), ob AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'message', id::text, 'message.queued',"
	"    jsonb_build_object('message_id', id, 'user_id', user_id,"
	"                       'message_type', 'weekly_review'),"
	"    $6::uuid, user_id"
	"  FROM ins"
	")"
	"SELECT i.ord - 1 FROM ins JOIN input i USING (user_id)";

struct batch {
	struct eng_run *run;
	const char *week, *now, *expires;
	const char **ids, **counts;
	size_t n;
	bool *queued, *failed;
};

static enum eng_status queue(struct batch *b, struct eng_db *db, size_t off,
			     size_t n, struct eng_err *err)
{
	char *ids = eng_pg_array(b->ids + off, n);
	char *counts = eng_pg_array(b->counts + off, n);
	const char *p[] = {ids, counts, b->week, b->now, b->expires,
			   b->run->run_id};
	PGresult *r = eng_db_query(db, queue_sql, 6, p, err);
	free(ids);
	free(counts);
	if (!r)
		return err->status;
	for (int i = 0; i < PQntuples(r); i++) {
		size_t k = off + (size_t)atoll(PQgetvalue(r, i, 0));
		if (k < b->n)
			b->queued[k] = true;
	}
	PQclear(r);
	return ENG_OK;
}

static enum eng_status do_range(void *ctx, struct eng_db *db, size_t off,
			       size_t n, struct eng_err *err)
{
	return queue(ctx, db, off, n, err);
}

static void on_failed(void *ctx, size_t i, const struct eng_err *e)
{
	struct batch *b = ctx;
	b->failed[i] = true;
	eng_log(ENG_ERROR, "user_failed", ENG_S("user_id", b->ids[i]),
		ENG_S("check", "weekly_review"), ENG_S("error", e->msg),
		ENG_S("sqlstate", e->sqlstate[0] ? e->sqlstate : NULL));
}

static const struct eng_batch_ops ops = {do_range, on_failed};

enum eng_status eng_weekly_run(struct eng_run *run,
			       const struct eng_weekly_opts *o, int *exit_code,
			       struct eng_err *err)
{
	struct eng_db *db = &run->db;
	bool dry = run->opt.dry_run;
	char week[16], from[32], to[32], expires[32], limit[16], last[37] = "";
	long long processed = 0, queued = 0, already = 0, skipped = 0, failed = 0;
	enum eng_status st = ENG_OK;

	eng_weekly_key(run->now, week);
	eng_time_format(run->now - (eng_time)o->lookback_days * ENG_USEC_PER_DAY, from);
	eng_time_format(run->now, to);
	eng_time_format(run->now + (eng_time)o->expire_hours * 3600 * ENG_USEC_PER_SEC,
			expires);
	snprintf(limit, sizeof(limit), "%d", o->batch_size);
	json_object_set_new(run->summary, "week", json_string(week));
	json_object_set_new(run->summary, "window_start", json_string(from));
	json_object_set_new(run->summary, "window_end", json_string(to));

	if (dry && (st = eng_db_begin(db, err)))
		return st;
	for (;;) {
		if (eng_interrupted) {
			st = eng_err_set(err, ENG_ETEMP, "interrupted by signal %d",
					 (int)eng_interrupted);
			break;
		}
		if ((st = eng_run_heartbeat(run, err)))
			break;
		const char *p[] = {from, to, last[0] ? last : NULL, limit};
		PGresult *r = eng_db_query(db, candidates_sql, 4, p, err);
		if (!r) {
			st = eng_err_prefix(err, "could not select active users");
			break;
		}
		int rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			break;
		}
		snprintf(last, sizeof(last), "%s", PQgetvalue(r, rows - 1, 0));

		struct batch b = {run, week, to, expires, NULL, NULL, 0, NULL, NULL};
		b.ids = eng_xcalloc((size_t)rows, sizeof(*b.ids));
		b.counts = eng_xcalloc((size_t)rows, sizeof(*b.counts));
		b.queued = eng_xcalloc((size_t)rows, sizeof(bool));
		b.failed = eng_xcalloc((size_t)rows, sizeof(bool));
		for (int i = 0; i < rows; i++) {
			if (strcmp(PQgetvalue(r, i, 2), "t") == 0) {
				skipped++;
				continue;
			}
			b.ids[b.n] = PQgetvalue(r, i, 0);
			b.counts[b.n] = PQgetvalue(r, i, 1);
			b.n++;
		}
		processed += rows;
		size_t nfailed = 0;
		if (!dry)
			st = eng_db_begin(db, err);
		if (st == ENG_OK)
			st = eng_batch_apply(db, b.n, &ops, &b, &nfailed, err);
		if (st == ENG_OK && !dry)
			st = eng_db_commit(db, err);
		for (size_t i = 0; st == ENG_OK && i < b.n; i++) {
			if (b.failed[i])
				failed++;
			else if (b.queued[i])
				queued++;
			else
				already++; /* this week's review exists, or opted out since */
		}
		free(b.ids);
		free(b.counts);
		free(b.queued);
		free(b.failed);
		PQclear(r);
		if (st || rows < o->batch_size)
			break;
	}
	if (dry)
		eng_db_rollback(db);
	json_object_set_new(run->summary, "processed", json_integer(processed));
	json_object_set_new(run->summary, "queued", json_integer(queued));
	json_object_set_new(run->summary, "already_queued", json_integer(already));
	json_object_set_new(run->summary, "skipped", json_integer(skipped));
	json_object_set_new(run->summary, "failed", json_integer(failed));
	eng_log(ENG_INFO, "weekly_finished", ENG_S("week", week),
		ENG_I("processed", processed), ENG_I("queued", queued),
		ENG_I("skipped", skipped), ENG_I("failed", failed));
	*exit_code = failed ? ENG_EXIT_PARTIAL : ENG_EXIT_OK;
	return st;
}
