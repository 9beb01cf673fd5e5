/*
 * queue-send: deliver due queued messages through the WhatsApp Cloud API
 * (DESIGN.md §2.3). Claims with FOR UPDATE SKIP LOCKED and a lease, checks
 * each message in order (expired, opted out, quiet hours, hourly cap,
 * template), sends up to `concurrency` requests at once on reused
 * connections at no more than `rate` per second in all (a token bucket in
 * the database shared by every queue-send of the same number), and writes
 * outcomes back in batches. Built for many concurrent copies.
 */
#ifndef ENG_SEND_H
#define ENG_SEND_H

#include <stdbool.h>

#include "eng_job.h"
#include "eng_wa.h"

struct eng_send_opts {
	int batch;               /* messages per claim */
	int concurrency;         /* requests in flight */
	double rate;             /* messages per second in all; 0: no limit */
	long long max_messages;  /* 0: no limit */
	double max_seconds;      /* 0: no limit */
	char worker_id[128];
	int per_user_hourly;
	int retain_days;
	int lease_seconds;
	long timeout_ms;
	long connect_timeout_ms;
	long pair_ms;            /* at least this between two requests to one person */
	/* filled by eng_send_check */
	struct eng_wa_config wa;
	bool wa_loaded, curl_ready;
};

/* Before the run: a worker id when none was given, the Cloud API's
 * configuration from the environment (ENG_ECONFIG, event
 * bad_configuration) and libcurl. Released by eng_send_opts_release. */
enum eng_status eng_send_check(struct eng_send_opts *o, struct eng_err *err);
void eng_send_opts_release(struct eng_send_opts *o);

/* Counts into job->summary. ENG_OK; ENG_EUNAVAIL (event run_refused) when
 * the API refused the whole run; ENG_ETEMP when a signal stopped it
 * (interrupted), the API was unreachable (run_stopped) or the database
 * stayed unreachable past the claims' leases; other errors: the database
 * failed. */
enum eng_status eng_send_run(const struct eng_job *job, const struct eng_send_opts *o,
			     struct eng_err *err);

#endif
