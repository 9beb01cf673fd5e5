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

#include "eng_run.h"

struct eng_daily_opts {
	int batch_size;
	int inactivity_days;
	int goodbye_hours;
};

/* Fills run->summary; *exit_code is 0, or 1 when some users failed. An
 * error return means the run stopped (connection lost, interrupted). */
enum eng_status eng_daily_run(struct eng_run *run,
			      const struct eng_daily_opts *o, int *exit_code,
			      struct eng_err *err);

#endif
