/*
 * engagement-status: how it all stands (DESIGN.md §2.3), cheap at scale:
 * every figure comes from an index, a small table or the planner's
 * statistics, never from a scan of a large table.
 *
 *   exact: the queue's queued and sending messages by type (the claim's
 *     index carries the type), the oldest due message, expired leases,
 *     each job's last run and last success (job_runs, by index), the
 *     outbox backlog and its oldest event, the webhook inbox's backlog, and
 *     every count of the last hour and day (engagement.message_counts,
 *     written with the changes themselves), the pauses in force
 *     (engagement.active_pauses: a small table);
 *   estimates (said so, as *_estimate metrics or estimated: true): the
 *     finished messages by status, and users by state on large tables
 *     (under 200,000 rows they are counted).
 *
 * The figures are metric families (Prometheus exposition, or JSON), and
 * the checks compare them with thresholds. With html, the report page
 * (eng_page.h) adds the figures it shows that the summary lacks, and is
 * written from the summary itself: the page and the summary cannot differ.
 */
#ifndef ENG_STATUS_H
#define ENG_STATUS_H

#include <jansson.h>
#include <stdbool.h>

#include "eng_job.h"

struct eng_status_opts {
	bool prometheus;       /* --format prometheus */
	bool page;             /* --format html: the report page on stdout */
	const char *textfile;  /* --textfile PATH, or NULL */
	const char *html;      /* --html PATH: the report page, or NULL */
	bool check;            /* --check */
	/* thresholds of --check, in ms where durations */
	long max_daily_age_ms, max_weekly_age_ms, max_due_age_ms, max_outbox_age_ms,
		max_inbox_age_ms, max_pause_age_ms;
	long long max_expired_leases;
	double max_failure_rate;  /* percent */
	long long min_sends;      /* the failure rate counts from this many */
	double max_limit_use;     /* percent of the messaging limit */
	/* what goes on stdout instead of the summary: the exposition when
	 * prometheus, the page when page (caller frees) */
	char *exposition;
};

/* Collect the figures into job->summary (and o->exposition), write the
 * textfile and the page (each atomically: PATH.PID, then rename; a failed
 * run leaves the previous file), and with check compare: ENG_PARTIAL when
 * a threshold is crossed (a log line each), ENG_ECANTCREAT when a file
 * cannot be written. */
enum eng_status eng_status_run(const struct eng_job *job, struct eng_status_opts *o,
			       struct eng_err *err);

/* Prometheus text exposition of metric families kept as JSON
 * ([{name, type, help, samples: [{labels: {...}, value}]}]); caller frees. */
char *eng_prometheus_text(const json_t *families);

#endif
