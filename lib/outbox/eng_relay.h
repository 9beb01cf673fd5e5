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

#define ENG_RELAY_MAX_KEYS 16

/* The webhook's signing keys: one per line of the secret file. */
struct eng_relay_keys {
	size_t n;
	unsigned char *key[ENG_RELAY_MAX_KEYS]; /* whsec_ lines decoded; others raw */
	size_t len[ENG_RELAY_MAX_KEYS];
	char *legacy;            /* the first line as written: the deprecated header's key */
};

struct eng_relay_opts {
	const struct eng_relay_sink *sink; /* NULL: the webhook */
	char webhook[1024];      /* URL, when not to stdout */
	struct eng_relay_keys keys;
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

/* The secret file's text, one secret per line (blank lines skipped):
 * "whsec_" + base64 of the key (Standard Webhooks), or, for a secret from
 * before, the line's bytes themselves. ENG_ECONFIG naming the line, never
 * its content. Released (wiped) by eng_relay_keys_release. */
enum eng_status eng_relay_keys_parse(const char *text, struct eng_relay_keys *k,
				     struct eng_err *err);
void eng_relay_keys_release(struct eng_relay_keys *k);

/* The Standard Webhooks "webhook-signature" value: "v1," + base64
 * HMAC-SHA256(key, "{id}.{timestamp}.{body}") for each key, separated by
 * spaces. A new string. */
char *eng_relay_sign(const struct eng_relay_keys *k, const char *id, long long timestamp,
		     const char *body, size_t len);

/* Deprecated X-Engagement-Signature value: "sha256=" + lowercase hex
 * HMAC-SHA256(secret, body). */
void eng_relay_signature(const char *secret, const char *body, size_t len,
			 char out[72]);

#endif
