/* The figures of the report page that the summary lacks (eng_page.h): each
 * one query that builds its JSON, read as it is into the summary. The
 * caller's transaction runs in UTC: hours and days are UTC's. */
#include "eng_page.h"

#include <stdio.h>
#include <stdlib.h>

#include "eng_runs.h"

/* The funnel of the messages queued in the last $1 days, by message type
 * (every type with a template, and any other queued then): how many were
 * sent, delivered and read (a read implies delivered), failed to send or
 * were not delivered (each by error code, '' for none), and how many were
 * blocked, cancelled or are still waiting. One pass over those days'
 * messages: the page's one scan (there is no index on created_at, and the
 * queue keeps --retain-days of messages). */
static const char funnel_sql[] =
	"WITH g AS ("
	"  SELECT message_type AS type,"
	"    CASE WHEN status = 'failed' THEN coalesce(last_error_code, '') END AS fcode,"
	"    CASE WHEN delivery_status = 'failed' THEN coalesce(delivery_error_code, '') END"
	"      AS ucode,"
	"    count(*) AS queued, count(sent_at) AS sent, count(delivered_at) AS delivered,"
	"    count(read_at) AS read,"
	"    count(*) FILTER (WHERE status = 'blocked') AS blocked,"
	"    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
	"    count(*) FILTER (WHERE status IN ('queued', 'sending')) AS waiting"
	"  FROM engagement.message_queue"
	"  WHERE created_at >= now() - make_interval(days => $1::int)"
	"  GROUP BY 1, 2, 3),"
	" t AS (SELECT template_key AS type FROM engagement.message_templates"
	"       UNION SELECT type FROM g),"
	" s AS (SELECT type, sum(queued) AS queued, sum(sent) AS sent,"
	"         sum(delivered) AS delivered, sum(read) AS read,"
	"         sum(queued) FILTER (WHERE fcode IS NOT NULL) AS failed,"
	"         sum(queued) FILTER (WHERE ucode IS NOT NULL) AS undelivered,"
	"         sum(blocked) AS blocked, sum(cancelled) AS cancelled, sum(waiting) AS waiting"
	"       FROM g GROUP BY 1),"
	" c AS (SELECT type, stage, json_agg(json_build_object('code', code, 'messages', n)"
	"         ORDER BY n DESC, code) AS codes"
	"       FROM (SELECT type, 'failed' AS stage, fcode AS code, sum(queued)::bigint AS n"
	"             FROM g WHERE fcode IS NOT NULL GROUP BY 1, 3"
	"             UNION ALL"
	"             SELECT type, 'undelivered', ucode, sum(queued)::bigint"
	"             FROM g WHERE ucode IS NOT NULL GROUP BY 1, 3) x"
	"       GROUP BY 1, 2)"
	"SELECT coalesce(json_agg(json_build_object('message_type', t.type,"
	"    'queued', coalesce(s.queued, 0)::bigint, 'sent', coalesce(s.sent, 0)::bigint,"
	"    'delivered', coalesce(s.delivered, 0)::bigint, 'read', coalesce(s.read, 0)::bigint,"
	"    'failed', coalesce(s.failed, 0)::bigint,"
	"    'undelivered', coalesce(s.undelivered, 0)::bigint,"
	"    'blocked', coalesce(s.blocked, 0)::bigint,"
	"    'cancelled', coalesce(s.cancelled, 0)::bigint,"
	"    'waiting', coalesce(s.waiting, 0)::bigint,"
	"    'failed_by_code', coalesce(f.codes, '[]'),"
	"    'undelivered_by_code', coalesce(u.codes, '[]')) ORDER BY t.type), '[]')"
	" FROM t LEFT JOIN s ON s.type = t.type"
	" LEFT JOIN c f ON f.type = t.type AND f.stage = 'failed'"
	" LEFT JOIN c u ON u.type = t.type AND u.stage = 'undelivered'";

/* Sent and failed per hour, the last $1 hours (this one so far included),
 * from the per-minute counts (their primary key starts with the minute). */
static const char hourly_sql[] =
	"SELECT coalesce(json_agg(json_build_object("
	"    'hour', to_char(h.hour, 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"'),"
	"    'sent', coalesce(c.sent, 0), 'failed', coalesce(c.failed, 0)) ORDER BY h.hour), '[]')"
	" FROM generate_series(date_trunc('hour', now()) - make_interval(hours => $1::int - 1),"
	"                      date_trunc('hour', now()), interval '1 hour') AS h(hour)"
	" LEFT JOIN (SELECT date_trunc('hour', minute) AS hour,"
	"              sum(n) FILTER (WHERE kind = 'sent')::bigint AS sent,"
	"              sum(n) FILTER (WHERE kind = 'failed')::bigint AS failed"
	"            FROM engagement.message_counts"
	"            WHERE minute >= date_trunc('hour', now()) - make_interval(hours => $1::int - 1)"
	"              AND kind IN ('sent', 'failed')"
	"            GROUP BY 1) c ON c.hour = h.hour";

/* Opt-outs and opt-ins applied per day, every channel, the last $1 days
 * (today so far included). */
static const char preferences_sql[] =
	"SELECT coalesce(json_agg(json_build_object("
	"    'day', to_char(d.day, 'YYYY-MM-DD'),"
	"    'opt_out', coalesce(c.opt_out, 0), 'opt_in', coalesce(c.opt_in, 0)) ORDER BY d.day),"
	"  '[]')"
	" FROM generate_series(date_trunc('day', now()) - make_interval(days => $1::int - 1),"
	"                      date_trunc('day', now()), interval '1 day') AS d(day)"
	" LEFT JOIN (SELECT date_trunc('day', minute) AS day,"
	"              sum(n) FILTER (WHERE kind = 'opt_out')::bigint AS opt_out,"
	"              sum(n) FILTER (WHERE kind = 'opt_in')::bigint AS opt_in"
	"            FROM engagement.message_counts"
	"            WHERE minute >= date_trunc('day', now()) - make_interval(days => $1::int - 1)"
	"              AND kind IN ('opt_out', 'opt_in')"
	"            GROUP BY 1) c ON c.day = d.day";

/* The last $3 runs of each program of $1, newest first: when each started,
 * how long it took (so far, while it runs; until its last heartbeat, when
 * it died), how it ended and its exit code (null while running or died). */
static const char runs_sql[] =
	"SELECT coalesce(json_agg(json_build_object('program', j.program,"
	"    'runs', coalesce(r.runs, '[]')) ORDER BY j.ord), '[]')"
	" FROM unnest($1::text[]) WITH ORDINALITY AS j(program, ord)"
	" LEFT JOIN LATERAL ("
	"   SELECT json_agg(json_build_object("
	"       'started', to_char(l.started_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"       'duration_seconds', round(extract(epoch FROM l.ended - l.started_at)::numeric, 3),"
	"       'status', l.status, 'exit_code', l.exit_code) ORDER BY l.started_at DESC) AS runs"
	"   FROM (SELECT x.started_at,"
	"           CASE WHEN d.died THEN 'died' ELSE x.status END AS status,"
	"           CASE WHEN d.died OR x.status = 'running' THEN NULL ELSE x.exit_code END"
	"             AS exit_code,"
	"           CASE WHEN d.died THEN coalesce(x.heartbeat_at, x.started_at)"
	"             ELSE coalesce(x.finished_at, now()) END AS ended"
	"         FROM (SELECT * FROM engagement.job_runs y WHERE y.program = j.program"
	"               ORDER BY y.started_at DESC LIMIT $3::int) x"
	"         CROSS JOIN LATERAL (SELECT " ENG_RUN_DIED_SQL("x", "$2") " AS died) d) l"
	" ) r ON true";

/* Run sql (its one row and column a JSON document) and set it as key. */
static enum eng_status figure(const struct eng_job *job, json_t *sum, const char *key,
			      const char *sql, int n, const char *const *p, struct eng_err *err)
{
	PGresult *r = eng_db_query(job->db, sql, n, p, err);
	if (!r)
		return eng_err_prefix(err, "could not read the page's figures (%s)", key);
	json_error_t je;
	json_t *v = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
	PQclear(r);
	if (!v)
		return eng_err_set(err, ENG_EINTERNAL, "the page's figures (%s) are not JSON: %s",
				   key, je.text);
	json_object_set_new(sum, key, v);
	return ENG_OK;
}

enum eng_status eng_page_figures(const struct eng_job *job, const char *const *programs,
				 size_t nprograms, json_t *summary, struct eng_err *err)
{
	char days[16], hours[16], pdays[16], dead[16], nruns[16];
	snprintf(days, sizeof(days), "%d", ENG_PAGE_FUNNEL_DAYS);
	snprintf(hours, sizeof(hours), "%d", ENG_PAGE_HOURS);
	snprintf(pdays, sizeof(pdays), "%d", ENG_PAGE_PREF_DAYS);
	snprintf(dead, sizeof(dead), "%d", ENG_RUN_DEAD_AFTER_S);
	snprintf(nruns, sizeof(nruns), "%d", ENG_PAGE_RUNS);
	const char *fp[] = {days}, *hp[] = {hours}, *pp[] = {pdays};
	enum eng_status st = figure(job, summary, "funnel_7d", funnel_sql, 1, fp, err);
	if (st == ENG_OK)
		st = figure(job, summary, "hourly_48h", hourly_sql, 1, hp, err);
	if (st == ENG_OK)
		st = figure(job, summary, "preference_changes_14d", preferences_sql, 1, pp, err);
	if (st != ENG_OK)
		return st;
	char *names = eng_db_text_array(programs, nprograms);
	const char *rp[] = {names, dead, nruns};
	st = figure(job, summary, "recent_runs", runs_sql, 3, rp, err);
	free(names);
	return st;
}
