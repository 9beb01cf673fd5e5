#include "eng_daily.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_batch.h"
#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_state.h"

/* Candidates of a check, in (time, user_id) order after the keyset
 * ($2, $3); $1 is the cutoff, $4 the batch size. Columns: user_id, the
 * keyset time as exact UTC text, opted out. */
#define CANDIDATES(col, state)                                                 \
	"SELECT s.user_id, to_char(s." col " AT TIME ZONE 'UTC', "             \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                               \
	"coalesce(p.reengagement_opt_out, false) "                             \
	"FROM engagement.engagement_states s "                                 \
	"LEFT JOIN engagement.user_preferences p USING (user_id) "             \
	"WHERE s.state = '" state "' AND s." col " < $1::timestamptz "         \
	"AND ($2::timestamptz IS NULL OR (s." col ", s.user_id) > ($2, $3::uuid)) " \
	"ORDER BY s." col ", s.user_id LIMIT $4::int"

struct check {
	const char *name;
	enum eng_trigger trigger;
	const char *sql;
	bool respects_opt_out;
};

static const struct check checks[] = {
	{"inactivity", ENG_TR_INACTIVITY_14D,
	 CANDIDATES("last_activity_at", "active"), true},
	{"goodbye_timeout", ENG_TR_GOODBYE_TIMEOUT,
	 CANDIDATES("goodbye_expires_at", "goodbye_sent"), false},
	{"reminder_due", ENG_TR_REMINDER_DUE,
	 CANDIDATES("remind_at", "remind_later"), false},
};

struct counts {
	long long processed, succeeded, failed, skipped, messages;
};

/* One batch of one check, as the batch-apply callbacks see it. */
struct batch {
	struct eng_run *run;
	const struct check *check;
	struct eng_tr_batch tb;
	const char **ids;  /* eligible users */
	eng_time *ats;
	size_t n;
	bool *moved;       /* per eligible user */
	bool *queued;
	bool *failed;
};

/* Record who moved; offset is where the transition's batch starts. */
static void mark(struct batch *b, size_t offset, const struct eng_tr_result *res)
{
	for (size_t k = 0; k < res->n; k++) {
		size_t i = offset + res->moved[k].index;
		if (i < b->n) {
			b->moved[i] = true;
			b->queued[i] = res->moved[k].message_queued;
		}
	}
}

static enum eng_status do_all(void *ctx, struct eng_db *db, struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_tr_result res;
	b->tb.user_ids = b->ids;
	b->tb.at = b->ats;
	b->tb.n = b->n;
	if (eng_transition_batch(db, &b->tb, &res, err))
		return err->status;
	mark(b, 0, &res);
	eng_tr_result_release(&res);
	return ENG_OK;
}

static enum eng_status do_one(void *ctx, struct eng_db *db, size_t i,
			      struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_tr_result res;
	b->tb.user_ids = &b->ids[i];
	b->tb.at = &b->ats[i];
	b->tb.n = 1;
	if (eng_transition_batch(db, &b->tb, &res, err))
		return err->status;
	mark(b, i, &res);
	eng_tr_result_release(&res);
	return ENG_OK;
}

static void on_failed(void *ctx, size_t i, const struct eng_err *e)
{
	struct batch *b = ctx;
	b->failed[i] = true;
	eng_log(ENG_ERROR, "user_failed", ENG_S("user_id", b->ids[i]),
		ENG_S("check", b->check->name), ENG_S("error", e->msg),
		ENG_S("sqlstate", e->sqlstate[0] ? e->sqlstate : NULL));
}

static const struct eng_batch_ops ops = {do_all, do_one, on_failed};

static enum eng_status run_check(struct eng_run *run,
				 const struct eng_daily_opts *o,
				 const struct check *c, struct counts *k,
				 struct eng_err *err)
{
	struct eng_db *db = &run->db;
	bool dry = run->opt.dry_run;
	char cutoff[32], last_ts[32] = "", last_id[37] = "", limit[16];
	eng_time cut = c->trigger == ENG_TR_INACTIVITY_14D
			       ? run->now - (eng_time)o->inactivity_days * ENG_USEC_PER_DAY
			       : run->now;
	eng_time_format(cut, cutoff);
	snprintf(limit, sizeof(limit), "%d", o->batch_size);

	for (;;) {
		if (eng_interrupted)
			return eng_err_set(err, ENG_ETEMP,
					   "interrupted by signal %d during the %s check",
					   (int)eng_interrupted, c->name);
		if (eng_run_heartbeat(run, err))
			return err->status;

		const char *p[] = {cutoff, last_ts[0] ? last_ts : NULL,
				   last_id[0] ? last_id : NULL, limit};
		PGresult *r = eng_db_query(db, c->sql, 4, p, err);
		if (!r)
			return eng_err_prefix(err, "could not select the %s candidates",
					      c->name);
		int rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			return ENG_OK;
		}
		snprintf(last_id, sizeof(last_id), "%s", PQgetvalue(r, rows - 1, 0));
		snprintf(last_ts, sizeof(last_ts), "%s", PQgetvalue(r, rows - 1, 1));

		struct batch b = {0};
		b.run = run;
		b.check = c;
		b.ids = eng_xcalloc((size_t)rows, sizeof(*b.ids));
		b.ats = eng_xcalloc((size_t)rows, sizeof(*b.ats));
		b.moved = eng_xcalloc((size_t)rows, sizeof(bool));
		b.queued = eng_xcalloc((size_t)rows, sizeof(bool));
		b.failed = eng_xcalloc((size_t)rows, sizeof(bool));
		for (int i = 0; i < rows; i++) {
			const char *id = PQgetvalue(r, i, 0);
			if (c->respects_opt_out && strcmp(PQgetvalue(r, i, 2), "t") == 0) {
				k->skipped++;
				eng_log(ENG_DEBUG, "user_skipped", ENG_S("user_id", id),
					ENG_S("check", c->name), ENG_S("reason", "opted_out"));
				continue;
			}
			b.ids[b.n] = id;
			b.ats[b.n] = run->now;
			b.n++;
		}
		k->processed += rows;
		b.tb.trigger = c->trigger;
		b.tb.run_id = run->run_id;
		b.tb.skip_opted_out = c->respects_opt_out;
		b.tb.goodbye_hours = o->goodbye_hours;
		if (c->trigger == ENG_TR_INACTIVITY_14D)
			b.tb.activity_before = cut;
		else
			b.tb.due_before = run->now;

		size_t nfailed = 0;
		enum eng_status st = ENG_OK;
		if (!dry)
			st = eng_db_begin(db, err);
		if (st == ENG_OK)
			st = eng_batch_apply(db, b.n, &ops, &b, &nfailed, err);
		if (st == ENG_OK && !dry)
			st = eng_db_commit(db, err);
		if (st == ENG_OK) {
			for (size_t i = 0; i < b.n; i++) {
				if (b.failed[i]) {
					k->failed++;
				} else if (b.moved[i]) {
					k->succeeded++;
					k->messages += b.queued[i];
				} else {
					/* Changed by someone else since the
					 * select: no longer due. */
					k->skipped++;
					eng_log(ENG_DEBUG, "user_skipped",
						ENG_S("user_id", b.ids[i]),
						ENG_S("check", c->name),
						ENG_S("reason", "changed_concurrently"));
				}
			}
		}
		free(b.ids);
		free(b.ats);
		free(b.moved);
		free(b.queued);
		free(b.failed);
		PQclear(r);
		if (st)
			return st;
		if (rows < o->batch_size)
			return ENG_OK;
	}
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

enum eng_status eng_daily_run(struct eng_run *run,
			      const struct eng_daily_opts *o, int *exit_code,
			      struct eng_err *err)
{
	struct counts total = {0};
	json_t *per = json_object();
	enum eng_status st = ENG_OK;
	long long messages = 0;

	json_object_set_new(run->summary, "checks", per);
	if (run->opt.dry_run && (st = eng_db_begin(&run->db, err)))
		return st;
	for (size_t i = 0; i < sizeof(checks) / sizeof(*checks) && !st; i++) {
		struct counts k = {0};
		int64_t t0 = eng_mono_us();
		st = run_check(run, o, &checks[i], &k, err);
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
	if (run->opt.dry_run)
		eng_db_rollback(&run->db);
	json_object_set_new(run->summary, "processed", json_integer(total.processed));
	json_object_set_new(run->summary, "succeeded", json_integer(total.succeeded));
	json_object_set_new(run->summary, "failed", json_integer(total.failed));
	json_object_set_new(run->summary, "skipped", json_integer(total.skipped));
	json_object_set_new(run->summary, "messages_queued", json_integer(messages));
	*exit_code = total.failed ? ENG_EXIT_PARTIAL : ENG_EXIT_OK;
	return st;
}
