/*
 * engagement-webhook: the receiver of the Cloud API's `messages` webhook
 * (DESIGN.md §2.3), a libmicrohttpd service behind a TLS-terminating proxy.
 *
 *   GET  {path}?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C
 *        200 with C when T is the verify token, else 403;
 *   POST {path}  X-Hub-Signature-256 over the raw body, checked in constant
 *        time (401 when missing or wrong); over max_body 413; a signed body
 *        that is not a JSON object 400; otherwise committed to the inbox
 *        and then 200 (503 when the database cannot take it: Meta retries).
 *
 * Bounded: at most max_per_ip connections from one address, and a
 * deadline for a whole request (headers and body, however slowly their
 * bytes come) or a stretch between requests, enforced by a watchdog that
 * shuts the connection's socket; a request whose body is in and waits for
 * the inbox writer is not cut.
 *
 * Requests are grouped: one writer thread stores whatever arrived while it
 * was storing the last group, in one statement, and only then are their
 * connections resumed and answered (group commit). The run's own thread
 * applies the inbox (eng_inbox.h) as deliveries commit, and purges it.
 * SIGTERM: stop accepting, answer what is in hand, apply what is pending,
 * exit 0.
 */
#ifndef ENG_WEBHOOK_H
#define ENG_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_job.h"

struct eng_webhook_opts {
	char listen[128];        /* ADDR:PORT as given */
	char path[256];
	long long max_body;
	int threads;             /* libmicrohttpd's pool */
	int connection_timeout_s;
	long request_timeout_ms; /* a request, or a stretch between requests */
	int max_per_ip;          /* connections from one address */
	int retain_days;
	int batch;               /* deliveries applied per transaction */
	bool drain;              /* apply what is pending and exit */
	/* filled by eng_webhook_check */
	char *app_secret, *verify_token;
};

/* Before the run: the listen address and the secret files (78, event
 * bad_configuration). Released by eng_webhook_opts_release. */
enum eng_status eng_webhook_check(struct eng_webhook_opts *o, const char *secret_file,
				  const char *token_file, struct eng_err *err);
void eng_webhook_opts_release(struct eng_webhook_opts *o);

/* Serve until a signal (ENG_OK: a service told to stop), or with drain
 * apply the pending inbox and return. Counts into job->summary. */
enum eng_status eng_webhook_run(const struct eng_job *job, const struct eng_webhook_opts *o,
				struct eng_err *err);

/* "sha256=" + lowercase hex HMAC-SHA256(secret, body) matches header, in
 * constant time (exposed for tests). */
bool eng_webhook_signature_ok(const char *secret, const char *body, size_t len,
			      const char *header);

#endif
