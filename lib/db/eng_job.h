/*
 * What a job of the core gets from the program that runs it (the front end,
 * eng_run.h): the connection, the run's identity and instant, where its
 * counts go, and how to keep the run's single-run lease. A narrow context:
 * the core knows nothing of options, output or exit codes.
 *
 * A job returns ENG_OK (done), ENG_PARTIAL (done, but some items failed:
 * its summary and err say which) or an error (refused or stopped: err says
 * why, and may name the log event that reports it).
 */
#ifndef ENG_JOB_H
#define ENG_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_time.h"

struct eng_job {
	struct eng_db *db;       /* the run's connection */
	const char *program;     /* application_name of further connections */
	const char *conninfo;    /* for them: NULL means DATABASE_URL, libpq's defaults */
	const char *run_id;
	eng_time now;            /* --now, or the database's clock at the start */
	eng_time clock;          /* the database's clock at the start, --now or not */
	bool fixed_now;          /* now came from --now */
	bool dry_run;
	json_t *summary;         /* the job adds its counts here (data only) */
	/* The single-run lease, when the run holds one (else NULL). keep()
	 * renews it when due (call between batches); renew() at once (after
	 * a reconnect). ENG_ETEMP when it was lost or cannot be reached. */
	enum eng_status (*keep)(void *lease, struct eng_err *err);
	enum eng_status (*renew)(void *lease, struct eng_err *err);
	void *lease;
};

static inline enum eng_status eng_job_keep_lease(const struct eng_job *j,
						 struct eng_err *err)
{
	return j->keep ? j->keep(j->lease, err) : ENG_OK;
}

static inline enum eng_status eng_job_renew_lease(const struct eng_job *j,
						  struct eng_err *err)
{
	return j->renew ? j->renew(j->lease, err) : ENG_OK;
}

/* The latest instant an inbound event or change may carry: the database's
 * clock plus ENG_FUTURE_SKEW_S (not --now: a simulation may replay events
 * after its instant, but nothing is dated in the real future). */
static inline eng_time eng_job_latest(const struct eng_job *j)
{
	return j->clock + (eng_time)ENG_FUTURE_SKEW_S * ENG_USEC_PER_SEC;
}

/* Summary helpers. */
void eng_job_set_int(const struct eng_job *j, const char *key, long long v);
/* A string shown to people (masked like a log value). */
void eng_job_set_str(const struct eng_job *j, const char *key, const char *v);

#endif
