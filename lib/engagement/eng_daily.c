#include "eng_daily.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_batch.h"
#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_state.h"

static const struct check {
	const char *name;
	enum eng_due_check due;
} checks[] = {
	{"inactivity", ENG_DUE_INACTIVITY},
	{"goodbye_timeout", ENG_DUE_GOODBYE_TIMEOUT},
	{"reminder_due", ENG_DUE_REMINDER},
};

struct counts {
	long long processed, succeeded, failed, skipped, messages;
};

/* A failed batch, retried in halves down to the users that fail. */
struct batch {
	const struct check *check;
	const struct eng_due_batch *due;
	const char **ids;
	size_t n;
	bool *moved, *queued, *failed;
};

static enum eng_status do_range(void *ctx, struct eng_db *db, size_t off,
				size_t n, struct eng_err *err)
{
	struct batch *b = ctx;
	for (size_t i = off; i < off + n; i++)
		b->moved[i] = b->queued[i] = false; /* a failed range is done again */
	return eng_transition_due_users(db, b->due, b->ids + off, n, b->moved + off,
					b->queued + off, err);
}

static void on_failed(void *ctx, size_t i, const struct eng_err *e)
{
	struct batch *b = ctx;
	b->failed[i] = true;
	eng_log(ENG_ERROR, "user_failed", ENG_S("user_id", b->ids[i]),
		ENG_S("check", b->check->name), ENG_S("error", e->msg),
		ENG_S("sqlstate", e->sqlstate[0] ? e->sqlstate : NULL));
}

static const struct eng_batch_ops ops = {do_range, on_failed};

/* The batch the one-statement path failed on: fetch its users and do them
 * in halves, isolating the ones that fail. Advances the keyset. */
static enum eng_status retry_batch(const struct eng_job *job, const struct check *c,
				   struct eng_due_batch *db_batch,
				   struct counts *k, bool *more,
				   struct eng_err *err)
{
	PGresult *r;
	if (eng_due_candidates(job->db, db_batch, &r, err))
		return err->status;
	int rows = PQntuples(r);
	struct batch b = {0};
	b.check = c;
	b.due = db_batch;
	b.n = (size_t)rows;
	b.ids = eng_xcalloc(b.n + 1, sizeof(*b.ids));
	b.moved = eng_xcalloc(b.n + 1, sizeof(bool));
	b.queued = eng_xcalloc(b.n + 1, sizeof(bool));
	b.failed = eng_xcalloc(b.n + 1, sizeof(bool));
	for (int i = 0; i < rows; i++)
		b.ids[i] = PQgetvalue(r, i, 0);

	size_t nfailed = 0;
	enum eng_status st = eng_batch_apply(job->db, b.n, &ops, &b, &nfailed, err);
	for (size_t i = 0; st == ENG_OK && i < b.n; i++) {
		if (b.failed[i]) {
			k->failed++;
		} else if (b.moved[i]) {
			k->succeeded++;
			k->messages += b.queued[i];
		} else { /* changed by someone else meanwhile: no longer due */
			k->skipped++;
		}
	}
	if (rows) {
		snprintf(db_batch->after_id, sizeof(db_batch->after_id), "%s",
			 PQgetvalue(r, rows - 1, 0));
		snprintf(db_batch->after_k, sizeof(db_batch->after_k), "%s",
			 PQgetvalue(r, rows - 1, 1));
	}
	*more = rows == db_batch->limit;
	free(b.ids);
	free(b.moved);
	free(b.queued);
	free(b.failed);
	PQclear(r);
	return st;
}

/* Opted-out users the inactivity check leaves alone: counted once. */
static enum eng_status count_opted_out(struct eng_db *db, eng_time cutoff,
				       long long *n, struct eng_err *err)
{
	char ts[32];
	eng_time_format(cutoff, ts);
	const char *p[] = {ts};
	PGresult *r = eng_db_query(
		db,
		"SELECT count(*) FROM engagement.engagement_states s "
		"WHERE s.state = 'active' AND s.last_activity_at < $1::timestamptz "
		"AND EXISTS (SELECT 1 FROM engagement.opted_out_users o "
		"            WHERE o.user_id = s.user_id)",
		1, p, err);
	if (!r)
		return err->status;
	*n = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return ENG_OK;
}

static enum eng_status run_check(const struct eng_job *job,
				 const struct eng_daily_opts *o,
				 const struct check *c, struct counts *k,
				 struct eng_err *err)
{
	struct eng_db *db = job->db;
	bool dry = job->dry_run;
	struct eng_due_batch b = {0};
	b.check = c->due;
	b.now = job->now;
	b.inactivity_days = o->inactivity_days;
	b.run_id = job->run_id;
	b.limit = o->batch_size;
	b.goodbye_hours = o->goodbye_hours;

	if (c->due == ENG_DUE_INACTIVITY &&
	    count_opted_out(db, job->now - (eng_time)o->inactivity_days * ENG_USEC_PER_DAY,
			    &k->skipped, err))
		return eng_err_prefix(err, "could not count opted-out users");

	bool more = true;
	while (more) {
		if (eng_interrupted)
			return eng_err_set(err, ENG_ETEMP,
					   "interrupted by signal %d during the %s check",
					   (int)eng_interrupted, c->name);
		if (eng_job_keep_lease(job, err))
			return err->status;
		if (!dry && eng_db_begin(db, err))
			return err->status;

		struct eng_err e = ENG_ERR_INIT;
		struct eng_due_result res;
		enum eng_status st = eng_db_exec(db, "SAVEPOINT eng_due", 0, NULL, err);
		if (st == ENG_OK && eng_transition_due(db, &b, &res, &e) == ENG_OK) {
			st = eng_db_exec(db, "RELEASE SAVEPOINT eng_due", 0, NULL, err);
			k->succeeded += (long long)res.moved;
			k->skipped += (long long)(res.picked - res.moved); /* changed meanwhile */
			k->messages += (long long)res.queued;
			if (res.picked) {
				memcpy(b.after_k, res.last_k, sizeof(b.after_k));
				memcpy(b.after_id, res.last_id, sizeof(b.after_id));
			}
			more = res.picked == (size_t)b.limit;
		} else if (st == ENG_OK) {
			if (!eng_db_alive(db))
				return eng_err_set(err, ENG_ETEMP,
						   "lost the database connection: %s", e.msg);
			eng_log(ENG_DEBUG, "batch_retried", ENG_S("check", c->name),
				ENG_S("error", e.msg));
			st = eng_db_exec(db, "ROLLBACK TO SAVEPOINT eng_due", 0, NULL, err);
			if (st == ENG_OK)
				st = retry_batch(job, c, &b, k, &more, err);
		}
		if (st == ENG_OK && !dry)
			st = eng_db_commit(db, err);
		if (st)
			return st;
	}
	return ENG_OK;
}

static json_t *counts_json(const struct counts *k)
{
	json_t *o = json_object();
	json_object_set_new(o, "processed", json_integer(k->processed));
	json_object_set_new(o, "succeeded", json_integer(k->succeeded));
	json_object_set_new(o, "failed", json_integer(k->failed));
	json_object_set_new(o, "skipped", json_integer(k->skipped));
	return o;
}

enum eng_status eng_daily_run(const struct eng_job *job,
			      const struct eng_daily_opts *o, struct eng_err *err)
{
	struct counts total = {0};
	json_t *per = json_object();
	enum eng_status st = ENG_OK;
	long long messages = 0;

	json_object_set_new(job->summary, "checks", per);
	if (job->dry_run && (st = eng_db_begin(job->db, err)))
		return st;
	for (size_t i = 0; i < sizeof(checks) / sizeof(*checks) && !st; i++) {
		struct counts k = {0};
		int64_t t0 = eng_mono_us();
		st = run_check(job, o, &checks[i], &k, err);
		/* also when the check stopped early: what it did so far */
		k.processed = k.succeeded + k.failed + k.skipped;
		json_t *cj = counts_json(&k);
		json_object_set_new(cj, "duration_ms",
				    json_integer((eng_mono_us() - t0) / 1000));
		json_object_set_new(per, checks[i].name, cj);
		total.processed += k.processed;
		total.succeeded += k.succeeded;
		total.failed += k.failed;
		total.skipped += k.skipped;
		messages += k.messages;
		eng_log(ENG_INFO, "check_finished", ENG_S("check", checks[i].name),
			ENG_I("processed", k.processed), ENG_I("succeeded", k.succeeded),
			ENG_I("failed", k.failed), ENG_I("skipped", k.skipped));
	}
	if (job->dry_run)
		eng_db_rollback(job->db);
	json_object_set_new(job->summary, "processed", json_integer(total.processed));
	json_object_set_new(job->summary, "succeeded", json_integer(total.succeeded));
	json_object_set_new(job->summary, "failed", json_integer(total.failed));
	json_object_set_new(job->summary, "skipped", json_integer(total.skipped));
	json_object_set_new(job->summary, "messages_queued", json_integer(messages));
	if (st == ENG_OK && total.failed)
		return eng_err_set(err, ENG_PARTIAL, "%lld users failed (user_failed in the log)",
				   total.failed);
	return st;
}
