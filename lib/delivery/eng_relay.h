/*
 * outbox-relay: publish unpublished outbox events in id order, at least
 * once, to stdout (JSON lines) or a webhook (signed batches), marking them
 * published only after the sink accepted them. With follow, LISTEN on
 * engagement_outbox and publish within a moment of each commit; reconnect
 * with backoff after losing the database and catch up.
 */
#ifndef ENG_RELAY_H
#define ENG_RELAY_H

#include <stdbool.h>

#include "eng_job.h"

/* Where events go when not to a webhook (the front end's stdout). */
struct eng_relay_sink {
	const char *name;
	/* Publish n events, one JSON line each: ENG_OK once accepted. */
	enum eng_status (*publish)(void *ctx, const char *const *lines, size_t n,
				   struct eng_err *err);
	void *ctx;
};

struct eng_relay_opts {
	const struct eng_relay_sink *sink; /* NULL: the webhook */
	char webhook[1024];      /* URL, when not to stdout */
	char *secret;            /* HMAC key for the webhook (owned by caller) */
	bool follow;
	int batch;               /* events per fetch and per webhook request */
	int purge_days;          /* delete published events older than this */
	long timeout_ms;         /* per webhook request */
	int max_attempts;        /* webhook tries per batch without --follow */
	bool curl_ready;         /* set by eng_relay_check */
};

/* Before the run, for a webhook: check its URL, read the secret file
 * (ENG_ECONFIG, event bad_configuration) and start libcurl. Released by
 * eng_relay_opts_release (the secret wiped). */
enum eng_status eng_relay_check(struct eng_relay_opts *o, const char *url,
				const char *secret_file, struct eng_err *err);
void eng_relay_opts_release(struct eng_relay_opts *o);

/* Counts into job->summary. ENG_OK when everything was published;
 * ENG_EUNAVAIL when the webhook refused the events (4xx); ENG_ETEMP when
 * the sink stayed unavailable (without follow), a signal stopped the run
 * (event "stopped" with follow), or the database failed (without follow;
 * with follow it reconnects). */
enum eng_status eng_relay_run(const struct eng_job *job, const struct eng_relay_opts *o,
			      struct eng_err *err);

/* "sha256=" + lowercase hex HMAC-SHA256(secret, body). */
void eng_relay_signature(const char *secret, const char *body, size_t len,
			 char out[72]);

#endif
