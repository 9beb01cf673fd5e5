/*
 * A pool of HTTP requests in flight on reused connections (libcurl multi),
 * and the libcurl defaults every client of ours sets (TLS verification,
 * no proxy for loopback, no redirects, timeouts).
 *
 * A request may carry a gate: a function asked immediately before its bytes
 * go on the wire (after its connection is up), which can still refuse; a
 * refused request finishes with CURLE_ABORTED_BY_CALLBACK and on_wire
 * false. queue-send opens the gate only while its pre-send fence holds the
 * messages' rows.
 */
#ifndef ENG_POOL_H
#define ENG_POOL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_buf.h"
#include "eng_err.h"

/* Timeouts, TLS verification on, http(s) only, no redirects, no proxy for
 * loopback, keepalive, no signals, the user agent. */
void eng_curl_defaults(CURL *e, long timeout_ms, long connect_timeout_ms,
		       const char *user_agent);

struct eng_pool_cfg {
	const char *url;
	const struct curl_slist *headers; /* borrowed for the pool's life */
	int size;                         /* requests in flight at most */
	long timeout_ms, connect_timeout_ms;
	const char *user_agent;
	size_t max_answer;                /* longer answers are cut */
	bool (*gate)(void *tag, void *ctx);
	void *gate_ctx;
};

struct eng_pool_slot {
	CURL *easy;
	void *tag;                        /* NULL: free */
	struct eng_buf answer;
	int64_t t0;
	bool on_wire;
	char errbuf[CURL_ERROR_SIZE];
	struct eng_pool *pool;
};

struct eng_pool {
	struct eng_pool_cfg cfg;
	CURLM *multi;
	struct eng_pool_slot *slots;
	int in_flight;
};

/* A finished request. answer and errbuf stay valid until the next
 * eng_pool_start or eng_pool_next. */
struct eng_pool_done {
	void *tag;
	CURLcode rc;
	long http_status;
	const char *answer;
	size_t answer_len;
	const char *errbuf;
	double ms;
	bool on_wire;   /* passed its gate (a request refused there did not) */
};

enum eng_status eng_pool_init(struct eng_pool *p, const struct eng_pool_cfg *cfg,
			      struct eng_err *err);
/* Requests still in flight are abandoned (their tags are not told). */
void eng_pool_release(struct eng_pool *p);

static inline int eng_pool_free_slots(const struct eng_pool *p)
{
	return p->cfg.size - p->in_flight;
}

/* POST body (borrowed until the request finishes) for tag (not NULL). */
enum eng_status eng_pool_start(struct eng_pool *p, const char *body, size_t len,
			       void *tag, struct eng_err *err);

/* Move every request forward, waiting at most timeout_ms for one of them
 * or for one of the extra descriptors (may be NULL) to be ready. */
enum eng_status eng_pool_wait(struct eng_pool *p, struct curl_waitfd *extra,
			      unsigned nextra, int timeout_ms, struct eng_err *err);
/* Move every request forward without waiting. */
enum eng_status eng_pool_perform(struct eng_pool *p, struct eng_err *err);

/* The next finished request, if any. */
bool eng_pool_next(struct eng_pool *p, struct eng_pool_done *d);

/* Whether the request of tag has passed its gate. */
bool eng_pool_on_wire(const struct eng_pool *p, const void *tag);

#endif
