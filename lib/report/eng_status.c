#include "eng_status.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_runs.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_optout.h"
#include "eng_figures.h"
#include "eng_page.h"

#define EXACT_BELOW 200000 /* users counted exactly on smaller tables */

/* The jobs whose runs engagement-status reports. */
static const char *const jobs[] = {"engagement-daily", "engagement-weekly", "queue-send",
				   "outbox-relay"};
#define NJOBS (sizeof(jobs) / sizeof(*jobs))

/* Counted outcomes (engagement.message_counts kinds). */
static const char *const outcomes[] = {"sent",      "failed",      "retried",
				       "deferred",  "blocked",     "cancelled",
				       "handed_back", "delivered", "read",
				       "undelivered"};

/* ---- the queue ------------------------------------------------------------------ */

static enum eng_status queue(const struct eng_job *job, struct figures *f, json_t *sum,
			     struct eng_err *err)
{
	/* queued (the claim's index carries the type) and sending, exactly;
	 * every type that has a template appears, zero or not */
	PGresult *r = eng_fig_query(job,
			    "WITH t AS (SELECT DISTINCT template_key AS message_type"
			    "           FROM engagement.message_templates),"
			    " q AS (SELECT 'queued' AS status, message_type, count(*) AS n"
			    "       FROM engagement.message_queue WHERE status = 'queued' GROUP BY 2"
			    "       UNION ALL"
			    "       SELECT 'sending', message_type, count(*)"
			    "       FROM engagement.message_queue WHERE status = 'sending' GROUP BY 2)"
			    "SELECT s.status, t.message_type, coalesce(q.n, 0) AS n"
			    " FROM (SELECT message_type FROM t UNION SELECT message_type FROM q) t"
			    " CROSS JOIN (VALUES ('queued'), ('sending')) s(status)"
			    " LEFT JOIN q ON q.status = s.status AND q.message_type = t.message_type"
			    " ORDER BY 1, 2",
			    0, NULL, err);
	if (!r)
		return err->status;
	json_t *s = eng_fig_family(f, "engagement_queue_messages", "gauge",
			   "Messages queued or being sent, by status and message type");
	json_t *js = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		const char *st = eng_fig_txt(r, i, "status"), *type = eng_fig_txt(r, i, "message_type");
		eng_fig_sample(s, eng_fig_num(r, i, "n"), "status", st, "message_type", type, NULL);
		json_t *by = json_object_get(js, st);
		if (!by)
			json_object_set_new(js, st, by = json_object());
		json_object_set_new(by, type, json_integer((json_int_t)eng_fig_num(r, i, "n")));
	}
	PQclear(r);

	/* the finished ones: the planner's estimate (a count would scan) */
	r = eng_fig_query(job,
		  "SELECT v.status, greatest(c.reltuples, 0) * coalesce(m.f, 0) AS n"
		  " FROM (VALUES ('sent'), ('failed'), ('blocked'), ('cancelled')) v(status)"
		  " CROSS JOIN (SELECT reltuples FROM pg_class"
		  "             WHERE oid = 'engagement.message_queue'::regclass) c"
		  " LEFT JOIN (SELECT x.v, x.f FROM pg_stats s,"
		  "              unnest(s.most_common_vals::text::text[], s.most_common_freqs)"
		  "                AS x(v, f)"
		  "            WHERE s.schemaname = 'engagement' AND s.tablename = 'message_queue'"
		  "              AND s.attname = 'status') m ON m.v = v.status"
		  " ORDER BY 1",
		  0, NULL, err);
	if (!r)
		return err->status;
	s = eng_fig_family(f, "engagement_queue_finished_messages_estimate", "gauge",
		   "Finished messages kept in the queue, by status (the planner's estimate)");
	json_t *fin = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		double n = round(eng_fig_num(r, i, "n"));
		eng_fig_sample(s, n, "status", eng_fig_txt(r, i, "status"), NULL);
		json_object_set_new(fin, eng_fig_txt(r, i, "status"), json_integer((json_int_t)n));
	}
	PQclear(r);
	json_object_set_new(js, "finished_estimate", fin);

	r = eng_fig_query(job,
		  "SELECT coalesce(extract(epoch FROM now() - (SELECT min(next_attempt_at)"
		  "  FROM engagement.message_queue WHERE status = 'queued'"
		  "    AND next_attempt_at <= now())), 0) AS oldest_due,"
		  " (SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'"
		  "    AND locked_until < now()) AS expired",
		  0, NULL, err);
	if (!r)
		return err->status;
	double oldest = eng_fig_num(r, 0, "oldest_due"), expired = eng_fig_num(r, 0, "expired");
	PQclear(r);
	eng_fig_sample(eng_fig_family(f, "engagement_queue_oldest_due_seconds", "gauge",
		      "Age of the oldest message due for sending and not sent"),
	       oldest, NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_queue_expired_leases", "gauge",
		      "Claims whose sender stopped renewing them (it died or stalled)"),
	       expired, NULL);
	json_object_set_new(js, "oldest_due_seconds", json_real(round(oldest * 10) / 10));
	json_object_set_new(js, "expired_leases", json_integer((json_int_t)expired));
	json_object_set_new(sum, "queue", js);
	return ENG_OK;
}

/* ---- what happened: the last hour and day ------------------------------------------ */

struct rates {
	double sent_1h, failed_1h;
};

static enum eng_status happened(const struct eng_job *job, struct figures *f, json_t *sum,
				struct rates *rt, struct eng_err *err)
{
	PGresult *r = eng_fig_query(job,
			    "SELECT kind, code,"
			    "  sum(n) FILTER (WHERE minute >= now() - interval '1 hour') AS h,"
			    "  sum(n) AS d"
			    " FROM engagement.message_counts"
			    " WHERE minute >= now() - interval '24 hours'"
			    " GROUP BY 1, 2 ORDER BY 1, 2",
			    0, NULL, err);
	if (!r)
		return err->status;
	json_t *s = eng_fig_family(f, "engagement_messages", "gauge",
			   "What happened to messages in the last hour or day, by outcome");
	json_t *codes = eng_fig_family(f, "engagement_message_errors", "gauge",
			       "Messages failed, retried, deferred, handed back or undelivered in the last hour "
			       "or day, by the API's error code");
	json_t *funnel = eng_fig_family(f, "engagement_delivery_funnel", "gauge",
				"Messages sent, delivered, read and undelivered in the last day");
	json_t *prefs = eng_fig_family(f, "engagement_preference_changes", "gauge",
			       "Opt-outs and opt-ins applied in the last day, by channel");
	json_t *h = json_object(), *d = json_object(), *jp = json_object();
	double total[sizeof(outcomes) / sizeof(*outcomes)][2] = {{0}};
	double changes[2][ENG_OPTOUT_NSOURCES] = {{0}}; /* [opt_out?][source] */
	for (int i = 0; i < PQntuples(r); i++) {
		const char *kind = eng_fig_txt(r, i, "kind"), *code = eng_fig_txt(r, i, "code");
		double nh = eng_fig_num(r, i, "h"), nd = eng_fig_num(r, i, "d");
		if (strcmp(kind, "opt_out") == 0 || strcmp(kind, "opt_in") == 0) {
			for (size_t c = 0; c < ENG_OPTOUT_NSOURCES; c++)
				if (strcmp(code, eng_optout_sources[c]) == 0)
					changes[kind[4] == 'o'][c] += nd;
			continue;
		}
		for (size_t k = 0; k < sizeof(outcomes) / sizeof(*outcomes); k++)
			if (strcmp(kind, outcomes[k]) == 0) {
				total[k][0] += nh;
				total[k][1] += nd;
			}
		if (*code && strcmp(kind, "priced") != 0 && strcmp(kind, "billable") != 0) {
			/* by code; the totals follow below (pricing: eng_account.c) */
			eng_fig_sample(codes, nh, "outcome", kind, "code", code, "window", "1h", NULL);
			eng_fig_sample(codes, nd, "outcome", kind, "code", code, "window", "24h", NULL);
		}
	}
	PQclear(r);
	/* every change from every channel, zero or not */
	for (int o = 1; o >= 0; o--)
		for (size_t c = 0; c < ENG_OPTOUT_NSOURCES; c++) {
			const char *kind = o ? "opt_out" : "opt_in";
			char key[64];
			eng_fig_sample(prefs, changes[o][c], "change", kind, "source", eng_optout_sources[c], NULL);
			snprintf(key, sizeof(key), "%s_%s", kind, eng_optout_sources[c]);
			json_object_set_new(jp, key, json_integer((json_int_t)changes[o][c]));
		}
	for (size_t k = 0; k < sizeof(outcomes) / sizeof(*outcomes); k++) {
		eng_fig_sample(s, total[k][0], "outcome", outcomes[k], "window", "1h", NULL);
		eng_fig_sample(s, total[k][1], "outcome", outcomes[k], "window", "24h", NULL);
		json_object_set_new(h, outcomes[k], json_integer((json_int_t)total[k][0]));
		json_object_set_new(d, outcomes[k], json_integer((json_int_t)total[k][1]));
		if (strcmp(outcomes[k], "sent") == 0 || strcmp(outcomes[k], "delivered") == 0 ||
		    strcmp(outcomes[k], "read") == 0 || strcmp(outcomes[k], "undelivered") == 0)
			eng_fig_sample(funnel, total[k][1], "stage", outcomes[k], NULL);
		if (strcmp(outcomes[k], "sent") == 0)
			rt->sent_1h = total[k][0];
		if (strcmp(outcomes[k], "failed") == 0)
			rt->failed_1h = total[k][0];
	}
	double n = rt->sent_1h + rt->failed_1h;
	eng_fig_sample(eng_fig_family(f, "engagement_send_failure_ratio", "gauge",
		      "Failed sends among sent and failed in the last hour (0 when none)"),
	       n > 0 ? rt->failed_1h / n : 0, NULL);
	json_object_set_new(sum, "last_hour", h);
	json_object_set_new(sum, "last_day", d);
	json_object_set_new(sum, "preference_changes_last_day", jp);
	return ENG_OK;
}

/* ---- people ---------------------------------------------------------------------- */

static enum eng_status people(const struct eng_job *job, struct figures *f, json_t *sum,
			      struct eng_err *err)
{
	/* counted on small tables, the planner's statistics on large ones
	 * (one query or the other: planning both would cost more) */
	PGresult *r = eng_fig_query(job,
			    "SELECT greatest(reltuples, 0) FROM pg_class"
			    " WHERE oid = 'engagement.engagement_states'::regclass",
			    0, NULL, err);
	if (!r)
		return err->status;
	bool est = atof(PQgetvalue(r, 0, 0)) >= EXACT_BELOW;
	PQclear(r);
	r = eng_fig_query(job,
		  est ? "WITH est AS (SELECT x.v AS state, c.reltuples * x.f AS n"
			"  FROM pg_stats s CROSS JOIN (SELECT reltuples FROM pg_class"
			"    WHERE oid = 'engagement.engagement_states'::regclass) c,"
			"  unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS x(v, f)"
			"  WHERE s.schemaname = 'engagement' AND s.tablename = 'engagement_states'"
			"    AND s.attname = 'state')"
			"SELECT v.state, coalesce(t.n, 0) AS n"
			" FROM (VALUES ('active'), ('goodbye_sent'), ('help_flow'),"
			"   ('remind_later'), ('dormant')) v(state)"
			" LEFT JOIN est t ON t.state = v.state"
		      : "SELECT v.state, coalesce(e.n, 0) AS n"
			" FROM (VALUES ('active'), ('goodbye_sent'), ('help_flow'),"
			"   ('remind_later'), ('dormant')) v(state)"
			" LEFT JOIN (SELECT state, count(*) AS n FROM engagement.engagement_states"
			"   GROUP BY 1) e ON e.state = v.state",
		  0, NULL, err);
	if (!r)
		return err->status;
	json_t *s = eng_fig_family(f, "engagement_users", "gauge",
			   "People in each engagement state (an estimate on large tables: "
			   "see engagement_users_estimated)");
	json_t *ju = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		double n = round(eng_fig_num(r, i, "n"));
		eng_fig_sample(s, n, "state", eng_fig_txt(r, i, "state"), NULL);
		json_object_set_new(ju, eng_fig_txt(r, i, "state"), json_integer((json_int_t)n));
	}
	PQclear(r);
	eng_fig_sample(eng_fig_family(f, "engagement_users_estimated", "gauge",
		      "1 when engagement_users comes from the planner's statistics"),
	       est, NULL);
	json_object_set_new(ju, "estimated", json_boolean(est));
	json_object_set_new(sum, "users", ju);
	return ENG_OK;
}

/* ---- jobs ------------------------------------------------------------------------ */

/* A job's last success from the previous textfile, when the database has
 * none (its runs were purged): carried forward. */
static double carried(const char *textfile, const char *job)
{
	if (!textfile)
		return 0;
	FILE *in = fopen(textfile, "r");
	if (!in)
		return 0;
	char want[160], line[512];
	snprintf(want, sizeof(want),
		 "engagement_job_last_success_timestamp_seconds{program=\"%s\"} ", job);
	double v = 0;
	while (fgets(line, sizeof(line), in))
		if (strncmp(line, want, strlen(want)) == 0)
			v = atof(line + strlen(want));
	fclose(in);
	return v;
}

struct job_ages {
	double success_age[NJOBS]; /* seconds since the last success; -1: never */
};

static enum eng_status runs(const struct eng_job *job, struct figures *f, json_t *sum,
			    const char *textfile, struct job_ages *ages, struct eng_err *err)
{
	char *names = eng_db_text_array(jobs, NJOBS);
	char dead[16];
	snprintf(dead, sizeof(dead), "%d", ENG_RUN_DEAD_AFTER_S);
	const char *p[] = {names, dead};
	PGresult *r = eng_fig_query(
		job,
		"SELECT j.program, extract(epoch FROM l.started_at) AS started,"
		"  extract(epoch FROM l.finished_at) AS finished, l.exit_code,"
		"  CASE WHEN d.died THEN 'died' ELSE l.status END AS status,"
		"  extract(epoch FROM CASE WHEN d.died THEN h.seen"
		"    ELSE coalesce(l.finished_at, now()) END - l.started_at) AS duration,"
		"  extract(epoch FROM s.finished_at) AS success, extract(epoch FROM now()) AS now"
		" FROM unnest($1::text[]) WITH ORDINALITY AS j(program, ord)"
		" LEFT JOIN LATERAL (SELECT * FROM engagement.job_runs r WHERE r.program = j.program"
		"   ORDER BY r.started_at DESC LIMIT 1) l ON true"
		/* a run whose heartbeat stopped died (its next run marks it) */
		" CROSS JOIN LATERAL (SELECT coalesce(l.heartbeat_at, l.started_at) AS seen) h"
		" CROSS JOIN LATERAL (SELECT " ENG_RUN_DIED_SQL("l", "$2") " AS died) d"
		" LEFT JOIN LATERAL (SELECT r.finished_at FROM engagement.job_runs r"
		"   WHERE r.program = j.program AND r.status = 'ok'"
		"   ORDER BY r.started_at DESC LIMIT 1) s ON true"
		" ORDER BY j.ord",
		2, p, err);
	free(names);
	if (!r)
		return err->status;
	json_t *last = eng_fig_family(f, "engagement_job_last_run_timestamp_seconds", "gauge",
			      "When the job's last run started (0: never)");
	json_t *succ = eng_fig_family(f, "engagement_job_last_success_timestamp_seconds", "gauge",
			      "When the job's last successful run finished (0: never)");
	json_t *dur = eng_fig_family(f, "engagement_job_last_duration_seconds", "gauge",
			     "How long the job's last run took (so far, while it runs)");
	json_t *code = eng_fig_family(f, "engagement_job_last_exit_code", "gauge",
			      "The exit code of the job's last run (-1: none, still running, or it died)");
	json_t *running = eng_fig_family(f, "engagement_job_running", "gauge",
				 "1 while the job's last run is running (its heartbeat is fresh)");
	json_t *jj = json_object();
	for (int i = 0; i < PQntuples(r) && (size_t)i < NJOBS; i++) {
		const char *name = jobs[i];
		double success = eng_fig_num(r, i, "success");
		if (success == 0)
			success = carried(textfile, name);
		double now = eng_fig_num(r, i, "now");
		ages->success_age[i] = success > 0 ? now - success : -1;
		const char *status = eng_fig_txt(r, i, "status");
		eng_fig_sample(last, eng_fig_num(r, i, "started"), "program", name, NULL);
		eng_fig_sample(succ, success, "program", name, NULL);
		eng_fig_sample(dur, round(eng_fig_num(r, i, "duration") * 1000) / 1000, "program", name, NULL);
		bool ended = *status && strcmp(status, "running") != 0 && strcmp(status, "died") != 0;
		eng_fig_sample(code, ended ? eng_fig_num(r, i, "exit_code") : -1, "program", name, NULL);
		eng_fig_sample(running, strcmp(status, "running") == 0, "program", name, NULL);
		json_object_set_new(jj, name, json_pack("{s:s?, s:f, s:f}", "last_status",
						       *status ? status : NULL, "last_success",
						       success, "success_age_seconds",
						       round(ages->success_age[i])));
	}
	PQclear(r);
	json_object_set_new(sum, "jobs", jj);
	return ENG_OK;
}

/* ---- outbox and inbox ---------------------------------------------------------------- */

struct backlog {
	double outbox_age, inbox_age;
};

static enum eng_status backlogs(const struct eng_job *job, struct figures *f, json_t *sum,
				struct backlog *b, struct eng_err *err)
{
	PGresult *r = eng_fig_query(
		job,
		"SELECT (SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NULL)"
		"    AS outbox,"
		"  coalesce(extract(epoch FROM now() - (SELECT created_at FROM engagement.outbox_events"
		"    WHERE published_at IS NULL ORDER BY id LIMIT 1)), 0) AS outbox_age,"
		"  (SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL) AS inbox,"
		"  coalesce(extract(epoch FROM now() - (SELECT received_at FROM"
		"    engagement.webhook_inbox WHERE applied_at IS NULL ORDER BY id LIMIT 1)), 0)"
		"    AS inbox_age",
		0, NULL, err);
	if (!r)
		return err->status;
	b->outbox_age = eng_fig_num(r, 0, "outbox_age");
	b->inbox_age = eng_fig_num(r, 0, "inbox_age");
	eng_fig_sample(eng_fig_family(f, "engagement_outbox_unpublished_events", "gauge",
		      "Outbox events not published yet"),
	       eng_fig_num(r, 0, "outbox"), NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_outbox_oldest_unpublished_seconds", "gauge",
		      "Age of the oldest unpublished outbox event (0: none)"),
	       b->outbox_age, NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_webhook_inbox_pending", "gauge",
		      "Webhook deliveries stored and not applied yet"),
	       eng_fig_num(r, 0, "inbox"), NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_webhook_inbox_oldest_pending_seconds", "gauge",
		      "Age of the oldest webhook delivery not applied yet (0: none)"),
	       b->inbox_age, NULL);
	json_object_set_new(sum, "outbox",
			    json_pack("{s:I, s:f}", "unpublished", (json_int_t)eng_fig_num(r, 0, "outbox"),
				      "oldest_seconds", round(b->outbox_age * 10) / 10));
	json_object_set_new(sum, "webhook_inbox",
			    json_pack("{s:I, s:f}", "pending", (json_int_t)eng_fig_num(r, 0, "inbox"),
				      "oldest_seconds", round(b->inbox_age * 10) / 10));
	PQclear(r);
	return ENG_OK;
}

/* ---- checks ---------------------------------------------------------------------- */

struct check {
	const char *name;
	double value, threshold;
	bool crossed;
	const char *unit;
};

/* What the checks read, besides the summary. */
struct collected {
	struct job_ages ages;
	struct rates rt;
	struct backlog bl;
	struct eng_account acct;
};

static int checks(const struct eng_status_opts *o, const struct collected *got,
		  const json_t *sum, struct check *c)
{
	const struct job_ages *ages = &got->ages;
	const struct rates *rt = &got->rt;
	const struct backlog *b = &got->bl;
	const json_t *q = json_object_get(sum, "queue");
	double due = json_real_value(json_object_get(q, "oldest_due_seconds"));
	double expired = (double)json_integer_value(json_object_get(q, "expired_leases"));
	double n = rt->sent_1h + rt->failed_1h;
	double rate = n >= (double)o->min_sends && n > 0 ? 100.0 * rt->failed_1h / n : 0;
	int k = 0;
	/* a job that never succeeded has crossed its threshold */
	double daily = ages->success_age[0] < 0 ? INFINITY : ages->success_age[0];
	double weekly = ages->success_age[1] < 0 ? INFINITY : ages->success_age[1];
	c[k++] = (struct check){"daily_job_stale", daily, o->max_daily_age_ms / 1000.0,
				false, "seconds since the last success"};
	c[k++] = (struct check){"weekly_job_stale", weekly, o->max_weekly_age_ms / 1000.0,
				false, "seconds since the last success"};
	c[k++] = (struct check){"queue_due_too_old", due, o->max_due_age_ms / 1000.0, false,
				"seconds"};
	c[k++] = (struct check){"expired_leases", expired, (double)o->max_expired_leases, false,
				"claims"};
	c[k++] = (struct check){"outbox_behind", b->outbox_age, o->max_outbox_age_ms / 1000.0,
				false, "seconds"};
	c[k++] = (struct check){"send_failure_rate", rate, o->max_failure_rate, false,
				"percent of the last hour's sends"};
	c[k++] = (struct check){"webhook_inbox_behind", b->inbox_age,
				o->max_inbox_age_ms / 1000.0, false, "seconds"};
	c[k++] = (struct check){"pause_too_old", got->acct.pause_age,
				o->max_pause_age_ms / 1000.0, false, "seconds since the pause began"};
	c[k++] = (struct check){"template_paused", got->acct.paused_templates, 0, false,
				"templates Meta paused"};
	c[k++] = (struct check){"template_quality_red", got->acct.red_templates, 0, false,
				"templates of quality RED"};
	c[k++] = (struct check){"messaging_limit_used", got->acct.limit_used, o->max_limit_use,
				false, "percent of the messaging limit used in 24 hours"};
	for (int i = 0; i < k; i++)
		c[i].crossed = c[i].value > c[i].threshold;
	return k;
}

/* Every figure, in one read-only snapshot (so that they agree with each
 * other), in UTC (the page's hours and days), without JIT (which costs
 * more than these short queries gain from it). */
static enum eng_status collect(const struct eng_job *job, const struct eng_status_opts *o,
			       struct figures *f, struct collected *got, struct eng_err *err)
{
	json_t *sum = job->summary;
	enum eng_status st = eng_db_exec(job->db,
					 "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
					 0, NULL, err);
	if (st == ENG_OK)
		st = eng_db_exec(job->db,
				 "SELECT set_config('jit', 'off', true),"
				 " set_config('TimeZone', 'UTC', true)",
				 0, NULL, err);
	if (st == ENG_OK)
		st = queue(job, f, sum, err);
	if (st == ENG_OK)
		st = happened(job, f, sum, &got->rt, err);
	if (st == ENG_OK)
		st = people(job, f, sum, err);
	if (st == ENG_OK)
		st = runs(job, f, sum, o->textfile, &got->ages, err);
	if (st == ENG_OK)
		st = backlogs(job, f, sum, &got->bl, err);
	if (st == ENG_OK)
		st = eng_account_figures(job, f, sum, &got->acct, err);
	if (st == ENG_OK && (o->page || o->html))
		st = eng_page_figures(job, jobs, NJOBS, sum, err);
	eng_db_rollback(job->db); /* read only: nothing to keep */
	return st;
}

/* Compare with the thresholds: the checks in the summary and as metrics,
 * a check_failed line each with --check. How many crossed (with --check). */
static int compare(const struct eng_status_opts *o, const struct collected *got,
		   struct figures *f, json_t *sum)
{
	struct check c[16];
	int nc = checks(o, got, sum, c);
	json_t *cs = eng_fig_family(f, "engagement_check_failed", "gauge",
			    "1 when the figure has crossed engagement-status --check's threshold");
	json_t *jc = json_array();
	int crossed = 0;
	for (int i = 0; i < nc; i++) {
		eng_fig_sample(cs, c[i].crossed, "check", c[i].name, NULL);
		json_array_append_new(jc, json_pack("{s:s, s:b, s:o, s:f}", "check", c[i].name,
						    "crossed", c[i].crossed, "value",
						    isinf(c[i].value) ? json_null()
								      : json_real(round(c[i].value * 10) / 10),
						    "threshold", c[i].threshold));
		if (c[i].crossed && o->check) {
			crossed++;
			eng_log(ENG_WARN, "check_failed", ENG_S("check", c[i].name),
				isinf(c[i].value) ? (struct eng_field)ENG_S("value", "never")
						  : (struct eng_field)ENG_D("value", c[i].value),
				ENG_D("threshold", c[i].threshold), ENG_S("unit", c[i].unit));
		}
	}
	json_object_set_new(sum, "checks", jc);
	json_object_set_new(sum, "checks_failed", json_integer(crossed));
	return crossed;
}

/* The exposition (o->exposition with prometheus), the textfile, the page. */
static enum eng_status outputs(const struct eng_job *job, struct eng_status_opts *o,
			       json_t *families, struct eng_err *err)
{
	enum eng_status st = ENG_OK;
	char *text = eng_prometheus_text(families);
	if (o->textfile)
		st = eng_fig_write_file("--textfile", o->textfile, text, err);
	if (o->prometheus)
		o->exposition = text;
	else
		free(text);
	if (st == ENG_OK && (o->page || o->html)) {
		char *page = eng_page_html(job->summary);
		if (o->html)
			st = eng_fig_write_file("--html", o->html, page, err);
		if (o->page)
			o->exposition = page;
		else
			free(page);
	}
	return st;
}

enum eng_status eng_status_run(const struct eng_job *job, struct eng_status_opts *o,
			       struct eng_err *err)
{
	int64_t t0 = eng_mono_us();
	struct figures f = {json_array(), job->now};
	struct collected got = {0};
	enum eng_status st = collect(job, o, &f, &got, err);
	if (st) {
		json_decref(f.families);
		return st;
	}
	int crossed = compare(o, &got, &f, job->summary);
	double secs = (double)(eng_mono_us() - t0) / 1e6;
	eng_fig_sample(eng_fig_family(&f, "engagement_status_duration_seconds", "gauge",
		      "How long collecting these figures took"),
	       round(secs * 1000) / 1000, NULL);
	eng_fig_sample(eng_fig_family(&f, "engagement_status_last_success_timestamp_seconds", "gauge",
		      "When engagement-status last collected these figures"),
	       (double)(job->now / ENG_USEC_PER_SEC), NULL);
	st = outputs(job, o, f.families, err);
	json_decref(f.families);
	if (st == ENG_OK && crossed)
		return eng_err_set(err, ENG_PARTIAL, "%d checks failed (check_failed in the log)",
				   crossed);
	return st;
}
