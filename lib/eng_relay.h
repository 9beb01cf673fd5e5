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

#include "eng_run.h"

struct eng_relay_opts {
	bool to_stdout;
	char webhook[1024];      /* URL, when not to stdout */
	char *secret;            /* HMAC key for the webhook (owned by caller) */
	bool follow;
	int batch;               /* events per fetch and per webhook request */
	int purge_days;          /* delete published events older than this */
	long timeout_ms;         /* per webhook request */
	int max_attempts;        /* webhook tries per batch without --follow */
};

/* Fills run->summary. *exit_code: 0; 75 when the sink stayed unavailable
 * (without follow) or a signal stopped a follow run; 69 when the webhook
 * refused the events (4xx). An error return: the database failed (without
 * follow; with follow it reconnects). */
enum eng_status eng_relay_run(struct eng_run *run, const struct eng_relay_opts *o,
			      int *exit_code, struct eng_err *err);

/* "sha256=" + lowercase hex HMAC-SHA256(secret, body). */
void eng_relay_signature(const char *secret, const char *body, size_t len,
			 char out[72]);

#endif
