/*
 * engagement-weekly: a weekly_review message, params {"activity_count": N},
 * for every user with at least one activity event in [now - lookback, now)
 * who has not opted out; idempotency key {user_id}:weekly_review:{ISO year}-W{ww}.
 */
#ifndef ENG_WEEKLY_H
#define ENG_WEEKLY_H

#include "eng_job.h"

struct eng_weekly_opts {
	int lookback_days;
	int batch_size;
	int expire_hours; /* the review is stale after this long */
};

/* "2026-W47" for the UTC date of t (ISO 8601 week-numbering year). */
void eng_weekly_key(eng_time t, char out[16]);

/* Counts into job->summary. ENG_OK; ENG_PARTIAL when some users failed;
 * an error when the run stopped. */
enum eng_status eng_weekly_run(const struct eng_job *job,
			       const struct eng_weekly_opts *o, struct eng_err *err);

#endif
