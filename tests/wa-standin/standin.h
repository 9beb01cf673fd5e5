/*
 * wa-standin: a local stand-in for the WhatsApp Cloud API send endpoint.
 * Test and demo infrastructure only; see README.md in this folder.
 */
#ifndef STANDIN_H
#define STANDIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

/* Largest request body accepted (bigger ones get 413). */
#define SA_MAX_BODY (64 * 1024)
/* Longest biz_opaque_callback_data, in characters. */
#define SA_MAX_OPAQUE 512

/* Statuses a status webhook can carry. */
enum sa_status { SA_SENT, SA_DELIVERED, SA_READ, SA_FAILED };
#define SA_MAX_STATUSES 4
/*
 * Parse a comma-separated list of sent, delivered, read (and, when
 * allow_failed, failed), each at most once; "" is the empty list. False when
 * the list is bad.
 */
bool sa_parse_statuses(const char *list, bool allow_failed,
		       unsigned char out[SA_MAX_STATUSES], size_t *n);

/* Exit codes (sysexits). */
enum {
	SA_EXIT_OK = 0,
	SA_EXIT_USAGE = 64,
	SA_EXIT_UNAVAILABLE = 69,
	SA_EXIT_SOFTWARE = 70,
	SA_EXIT_CANTCREAT = 73,
	SA_EXIT_CONFIG = 78,
};

struct sa_config {
	char *token; /* never printed, never recorded */
	size_t token_len;
	const char *listen;
	unsigned port;
	const char *port_file;
	const char *phone_number_id; /* NULL: any digits */
	const char *record_path;     /* NULL: no record */
	unsigned slow_ms;
	unsigned latency_ms;
	unsigned webhook_status; /* what POST /_webhook answers */
	unsigned webhook_fail;   /* ... after this many 503s */
	bool verbose;

	/* Meta's webhook side (sa_hook.c). */
	const char *status_webhook; /* NULL: no status webhooks */
	char *app_secret;           /* never printed, never recorded */
	size_t app_secret_len;
	unsigned status_delay_ms;
	unsigned char statuses[SA_MAX_STATUSES]; /* enum sa_status, in order */
	size_t n_statuses;
	unsigned webhook_retries;
	unsigned webhook_timeout_ms;
	const char *waba_id;
	const char *display_phone_number;

	/* Meta's account rules at start (sa_account.c). */
	unsigned pair_interval_ms; /* 0: off */
	long long messaging_limit; /* -1: none */
};

/* Recipients that already had their first 920 failure. */
struct sa_strset {
	char **slot; /* open addressing, NULL = empty */
	size_t cap;  /* power of two */
	size_t len;
};

/* A string-to-string map (open addressing). */
struct sa_strmap {
	char **key; /* NULL = empty */
	char **val;
	size_t cap; /* power of two */
	size_t len;
};

struct sa_delivery; /* one webhook POST waiting to be made (sa_hook.c) */

/* The webhook poster: a queue ordered by due time, one thread. */
struct sa_hooks {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	pthread_t thread;
	bool running; /* the thread was started */
	bool stop;
	struct sa_delivery **heap; /* min-heap on (due, order) */
	size_t len, cap;
	uint64_t order;
	/* Counters (every POST made, status, inbound or raw). */
	uint64_t posted, acked, failed, abandoned, dropped;
	/* wa_id -> the last wamid sent to it (for inbound replies' context). */
	struct sa_strmap last_wamid;
	/* The phone number id of the last successful send's path. */
	char last_number[32];
};

struct sa_code_count {
	long code;
	uint64_t n;
};

/* Template states the stand-in plays. */
enum sa_tpl_status { SA_TPL_APPROVED, SA_TPL_PAUSED, SA_TPL_DISABLED };

/* What a test said about one template (or, lang NULL, all its languages). */
struct sa_rule {
	char *name;
	char *lang; /* underscore form; NULL: every language */
	bool has_status, has_category, has_billable;
	enum sa_tpl_status status;
	char category[33];
	bool billable;
};

/* Meta's account rules and what they counted (sa_account.c). */
struct sa_account {
	pthread_mutex_t mu; /* taken before srv->mu, never after */
	struct sa_rule *rules;
	size_t n_rules, cap_rules;
	unsigned pair_ms;     /* 0: off */
	long long limit;      /* -1: none */
	long limit_code;      /* 131049 or 130429 */
	long long window_ms;  /* the moving window of the limit */
	json_t *reached;      /* to -> ms (CLOCK_MONOTONIC) it was last reached */
	json_t *last;         /* to -> ms of its last accepted message */
	json_t *templates;    /* name -> language as sent -> counters */
	json_t *recipients;   /* to -> counters */
	json_t *refusals;     /* code -> n, by the rules only */
};

/* A refusal by the account rules. */
struct sa_refusal {
	unsigned status;
	long code, subcode;
	const char *title, *details;
};

#define SA_MAX_CODES 64
#define SA_MAX_STATUS 600

struct sa_server {
	struct sa_config cfg;
	int record_fd; /* -1 without --record */

	/* mu guards everything below up to the stop fields. */
	pthread_mutex_t mu;
	uint64_t seq;
	uint64_t begun;    /* requests that started (counted routes) */
	uint64_t requests; /* ... that were answered or went away: recorded */
	uint64_t by_status[SA_MAX_STATUS];
	struct sa_code_count by_code[SA_MAX_CODES];
	size_t n_codes;
	struct sa_strset failed_once;
	uint64_t webhook_seen;

	struct sa_hooks hooks;
	struct sa_account account;

	/* Naps (slow and latency) end early when stopping turns true. */
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv; /* CLOCK_MONOTONIC */
	bool stopping;
};

/* ---- sa_check.c: what a send request must look like ---- */

/*
 * Check a parsed send request against the rules of the real endpoint
 * (template messages only). True when valid; otherwise false with the
 * problem, one line, in detail.
 */
bool sa_check_message(const json_t *body, char *detail, size_t n);

/*
 * Copy what can be found of the send fields (to, recipient_type, template,
 * language, parameters, parameter_names, biz_opaque_callback_data) from any
 * parsed body into the record object rec; missing ones become null.
 */
void sa_extract(const json_t *body, json_t *rec);

/* ^v[0-9]+\.[0-9]+$ */
bool sa_is_version(const char *s, size_t n);
/* ^[0-9]+$ */
bool sa_is_digits(const char *s, size_t n);
/* ^\+[1-9][0-9]{7,14}$ */
bool sa_is_phone(const char *s);
/* ^[a-z]{2,3}(_[A-Za-z]{2,4})?$ */
bool sa_is_language(const char *s);

/* ---- sa_util.c ---- */

/* Seed the id generators (call once, before serving). */
void sa_ids_init(void);
/* fbtrace_id-like string: 23 characters of [A-Za-z0-9_-] and a NUL. */
void sa_fbtrace_id(char out[24]);
/* A unique wamid for a message to wa_id (malloc'd). */
char *sa_wamid(const char *wa_id);

/* "2026-01-02T03:04:05.678Z" from a CLOCK_REALTIME time. */
void sa_rfc3339_ms(const struct timespec *ts, char out[32]);
/* Milliseconds between two CLOCK_MONOTONIC times. */
long long sa_ms_between(const struct timespec *a, const struct timespec *b);

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
json_t *sa_json_lossy_string(const char *s, size_t n);
/* Characters (code points) in valid UTF-8. */
size_t sa_utf8_chars(const char *s, size_t n);

/* Constant-time equality of two byte strings (time depends on b's length). */
bool sa_secret_equal(const char *a, size_t an, const char *b, size_t bn);

/* Write all of buf, retrying on EINTR and short writes. */
bool sa_write_all(int fd, const char *buf, size_t n);

bool sa_strset_add(struct sa_strset *set, const char *s); /* false: had it */
void sa_strset_free(struct sa_strset *set);

/* Set key to a copy of val (false: out of memory). */
bool sa_strmap_set(struct sa_strmap *map, const char *key, const char *val);
/* The value for key, or NULL (owned by the map). */
const char *sa_strmap_get(const struct sa_strmap *map, const char *key);
void sa_strmap_free(struct sa_strmap *map);

/* n random lowercase hex digits and a NUL into out (n + 1 bytes). */
void sa_random_hex(char *out, size_t n);

/* True once the server is stopping. */
bool sa_stopping(struct sa_server *srv);

/*
 * Sleep ms milliseconds unless the server stops first. True when the whole
 * nap was taken.
 */
bool sa_nap(struct sa_server *srv, unsigned ms);

/* ---- sa_http.c ---- */

/* libmicrohttpd callbacks; cls is the struct sa_server. */
enum MHD_Result sa_handle(void *cls, struct MHD_Connection *conn,
			  const char *url, const char *method,
			  const char *version, const char *upload_data,
			  size_t *upload_data_size, void **req_cls);
void sa_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
		  enum MHD_RequestTerminationCode toe);

/* Append rec (taken) to the record as one line, "seq" spliced in front. */
void sa_record(struct sa_server *srv, json_t *rec);

/* ---- sa_account.c: Meta's account rules ---- */

void sa_account_init(struct sa_server *srv);
void sa_account_free(struct sa_server *srv);
void sa_account_lock(struct sa_server *srv);
void sa_account_unlock(struct sa_server *srv);
/*
 * With the lock held, for a valid send body: true (and *out) when the
 * account rules refuse it.
 */
bool sa_account_refuse(struct sa_server *srv, const json_t *body,
		       struct sa_refusal *out);
/*
 * With the lock held: count a valid send answered with error code (0: none);
 * accepted (200 with a wamid) marks its recipient reached now.
 */
void sa_account_count(struct sa_server *srv, const json_t *body, long code,
		      bool accepted);
/* The pricing category (at most 32 characters) and billable of a template. */
void sa_account_pricing(struct sa_server *srv, const char *name, const char *lang,
			char category[33], bool *billable);
/* A stable made-up 15-digit id of a template in a language (- or _). */
long long sa_template_id(const char *name, const char *lang);
/* Take on an account webhook's change (apply: true); value already checked. */
void sa_account_apply(struct sa_server *srv, const char *field, const json_t *value);

/* The control endpoints; req NULL when not JSON. */
json_t *sa_account_template(struct sa_server *srv, const json_t *req, unsigned *status);
json_t *sa_account_limits(struct sa_server *srv, const json_t *req, unsigned *status);
json_t *sa_account_reset(struct sa_server *srv, const json_t *req, unsigned *status);
json_t *sa_account_get(struct sa_server *srv);

/* Control answers: {"error": message} and *status = code. */
json_t *sa_refuse(unsigned *status, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The first member of obj not in allowed (NULL-terminated), or NULL. */
const char *sa_unknown_member(const json_t *obj, const char *const *allowed);

/* ---- sa_hook.c: Meta's webhook side ---- */

/* Set up the poster (always) and start its thread (with --status-webhook). */
bool sa_hooks_start(struct sa_server *srv);
/* Stop the thread, dropping what is queued (once stopping is set). */
void sa_hooks_stop(struct sa_server *srv);
/* Free what is left (once no connection thread runs). */
void sa_hooks_free(struct sa_server *srv);

/*
 * After a successful send (200 with a wamid): queue its status webhooks.
 * body is the validated request, number the phone number id of the path.
 * Never blocks for long.
 */
void sa_hooks_after_send(struct sa_server *srv, const json_t *body,
			 const char *wamid, const char *number, size_t number_len);

/* The webhook counters for GET /_standin/stats, added to obj. */
void sa_hooks_stats(struct sa_server *srv, json_t *obj);

/*
 * The control endpoints POST /_standin/inbound and POST /_standin/raw:
 * req is the parsed request body (NULL when not JSON). Sets *status and
 * returns the answer's JSON.
 */
json_t *sa_hooks_inbound(struct sa_server *srv, const json_t *req, unsigned *status);
json_t *sa_hooks_raw(struct sa_server *srv, const json_t *req, unsigned *status);
/* POST /_standin/account_webhook: the account fields, signed, posted at once. */
json_t *sa_hooks_account(struct sa_server *srv, const json_t *req, unsigned *status);

#endif
