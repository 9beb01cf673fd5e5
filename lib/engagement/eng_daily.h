/*
 * engagement-daily: the three timing checks, in order (DESIGN.md §2.3):
 *   1. inactivity  active, quiet for inactivity_days, not opted out
 *                  -> goodbye_sent + a goodbye message
 *   2. goodbye_timeout  goodbye_sent, goodbye_expires_at < now -> dormant
 *   3. reminder_due     remind_later, remind_at < now -> dormant
 * Each check walks its candidates in batches by keyset; each batch is one
 * transaction (one for the whole run with --dry-run, rolled back).
 */
#ifndef ENG_DAILY_H
#define ENG_DAILY_H

#include <stdbool.h>

#include "eng_job.h"

struct eng_daily_opts {
	int batch_size;
	int inactivity_days;
	int goodbye_hours;
};

/* Counts into job->summary. ENG_OK; ENG_PARTIAL when some users failed;
 * an error when the run stopped (connection lost, interrupted). */
enum eng_status eng_daily_run(const struct eng_job *job,
			      const struct eng_daily_opts *o, struct eng_err *err);

#endif
