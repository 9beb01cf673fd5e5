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

#include "eng_run.h"
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
};

/* Fills run->summary. *exit_code: 0, 69 when the API refused the whole run
 * (FATAL), 75 when a signal stopped it. An error return means the run
 * stopped on a database error. */
enum eng_status eng_send_run(struct eng_run *run, const struct eng_send_opts *o,
			     const struct eng_wa_config *wa, int *exit_code,
			     struct eng_err *err);

#endif
