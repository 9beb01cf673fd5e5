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
	"SELECT a.user_id, a.n, EXISTS (SELECT 1 FROM engagement.opted_out_users o "
	"    WHERE o.user_id = a.user_id) "
	"FROM (SELECT e.user_id, count(*) AS n "
	"      FROM engagement.activity_events e "
	"      WHERE e.occurred_at >= $1::timestamptz AND e.occurred_at < $2::timestamptz "
	"        AND ($3::uuid IS NULL OR e.user_id > $3::uuid) "
	"      GROUP BY e.user_id ORDER BY e.user_id LIMIT $4::int) a "
	"ORDER BY a.user_id";

/* engagement.queue_weekly_reviews (migration 0014) counts each user's
 * activity in the window itself and queues the reviews: $1 users, $2 now,
 * $3 lookback days, $4 expiry hours, $5 run id. The 0-based positions of
 * the users who got a new message. */
static const char queue_sql[] =
	"SELECT i.ord - 1 FROM engagement.queue_weekly_reviews($1::uuid[], $2::timestamptz,"
	"  $3::int, $4::int, $5::uuid) q"
	" JOIN unnest($1::uuid[]) WITH ORDINALITY AS i(user_id, ord) USING (user_id)";

/* The week being reviewed: its key and window, and when reviews expire. */
struct window {
	char week[16], from[32], to[32];
	char lookback_days[16], expire_hours[16];
};

struct counts {
	long long processed, queued, already, skipped, failed;
};

struct batch {
	const struct eng_job *job;
	const struct window *w;
	const char **ids;
	size_t n;
	bool *queued, *failed;
};

static enum eng_status queue(struct batch *b, struct eng_db *db, size_t off,
			     size_t n, struct eng_err *err)
{
	char *ids = eng_db_text_array(b->ids + off, n);
	const char *p[] = {ids, b->w->to, b->w->lookback_days, b->w->expire_hours,
			   b->job->run_id};
	PGresult *r = eng_db_query(db, queue_sql, 5, p, err);
	free(ids);
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

/* The reviews of the batch of active users after *last (its own
 * transaction, unless a dry run holds one). Moves *last on; *more false
 * after the last batch. */
static enum eng_status run_batch(const struct eng_job *job, const struct window *w,
				 int limit, char last[37], struct counts *k, bool *more,
				 struct eng_err *err)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = {w->from, w->to, last[0] ? last : NULL, lim};
	PGresult *r = eng_db_query(job->db, candidates_sql, 4, p, err);
	if (!r)
		return eng_err_prefix(err, "could not select active users");
	int rows = PQntuples(r);
	*more = rows == limit;
	if (rows == 0) {
		PQclear(r);
		return ENG_OK;
	}
	snprintf(last, 37, "%s", PQgetvalue(r, rows - 1, 0));

	struct batch b = {job, w, NULL, 0, NULL, NULL};
	b.ids = eng_xcalloc((size_t)rows, sizeof(*b.ids));
	b.queued = eng_xcalloc((size_t)rows, sizeof(bool));
	b.failed = eng_xcalloc((size_t)rows, sizeof(bool));
	for (int i = 0; i < rows; i++) {
		if (strcmp(PQgetvalue(r, i, 2), "t") == 0) {
			k->skipped++; /* opted out */
			continue;
		}
		b.ids[b.n++] = PQgetvalue(r, i, 0);
	}
	k->processed += rows;
	size_t nfailed = 0;
	enum eng_status st = job->dry_run ? ENG_OK : eng_db_begin(job->db, err);
	if (st == ENG_OK)
		st = eng_batch_apply(job->db, b.n, &ops, &b, &nfailed, err);
	if (st == ENG_OK && !job->dry_run)
		st = eng_db_commit(job->db, err);
	for (size_t i = 0; st == ENG_OK && i < b.n; i++) {
		if (b.failed[i])
			k->failed++;
		else if (b.queued[i])
			k->queued++;
		else
			k->already++; /* this week's review exists, or opted out since */
	}
	free(b.ids);
	free(b.queued);
	free(b.failed);
	PQclear(r);
	return st;
}

enum eng_status eng_weekly_run(const struct eng_job *job,
			       const struct eng_weekly_opts *o, struct eng_err *err)
{
	struct window w;
	struct counts k = {0};
	char last[37] = "";
	eng_weekly_key(job->now, w.week);
	eng_time_format(job->now - (eng_time)o->lookback_days * ENG_USEC_PER_DAY, w.from);
	eng_time_format(job->now, w.to);
	snprintf(w.lookback_days, sizeof(w.lookback_days), "%d", o->lookback_days);
	snprintf(w.expire_hours, sizeof(w.expire_hours), "%d", o->expire_hours);
	json_object_set_new(job->summary, "week", json_string(w.week));
	json_object_set_new(job->summary, "window_start", json_string(w.from));
	json_object_set_new(job->summary, "window_end", json_string(w.to));

	enum eng_status st = job->dry_run ? eng_db_begin(job->db, err) : ENG_OK;
	for (bool more = st == ENG_OK; more && st == ENG_OK;) {
		if (eng_interrupted)
			st = eng_err_set(err, ENG_ETEMP, "interrupted by signal %d",
					 (int)eng_interrupted);
		else if ((st = eng_job_keep_lease(job, err)) == ENG_OK)
			st = run_batch(job, &w, o->batch_size, last, &k, &more, err);
	}
	if (job->dry_run)
		eng_db_rollback(job->db);
	eng_job_set_int(job, "processed", k.processed);
	eng_job_set_int(job, "queued", k.queued);
	eng_job_set_int(job, "already_queued", k.already);
	eng_job_set_int(job, "skipped", k.skipped);
	eng_job_set_int(job, "failed", k.failed);
	eng_log(ENG_INFO, "weekly_finished", ENG_S("week", w.week),
		ENG_I("processed", k.processed), ENG_I("queued", k.queued),
		ENG_I("skipped", k.skipped), ENG_I("failed", k.failed));
	if (st == ENG_OK && k.failed)
		return eng_err_set(err, ENG_PARTIAL, "%lld users failed (user_failed in the log)",
				   k.failed);
	return st;
}
