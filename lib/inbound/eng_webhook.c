#include "eng_webhook.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_crypto.h"
#include "eng_http.h"
#include "eng_inbox.h"
#include "eng_log.h"
#include "eng_parse.h"
#include "eng_stats.h"

#define GROUP_MAX 512          /* deliveries stored per statement at most */
#define APPLY_WAIT_US 1000000  /* the inbox is looked at least this often */
#define STOP_WAIT_US 10000000  /* requests in hand get this long on SIGTERM */
#define PURGE_EVERY_US (3600LL * 1000000)

bool eng_webhook_signature_ok(const char *secret, const char *body, size_t len,
			      const char *header)
{
	if (!header || strncmp(header, "sha256=", 7) != 0 || strlen(header + 7) != 64)
		return false;
	char want[65], got[65];
	eng_hmac_sha256_hex(secret, strlen(secret), body, len, want);
	for (int i = 0; i < 64; i++) {
		char c = header[7 + i];
		got[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
	}
	got[64] = '\0';
	return CRYPTO_memcmp(want, got, 64) == 0;
}

/* ---- state ------------------------------------------------------------------- */

enum req_state { R_NEW = 0, R_WAITING, R_ANSWERED };

struct request {
	struct eng_buf body;
	bool too_large;
	enum req_state state;
	unsigned answer;          /* decided early (404, 405), or by the writer */
	struct MHD_Connection *conn;
	int64_t t_complete;       /* the body was in */
	struct request *next;
};

struct counts {
	long long received, stored, unsigned_, too_large, malformed, unavailable,
		verified, verify_refused, not_found, not_allowed, timed_out;
};

/* A connection, for the request deadline (the watchdog). */
struct watched {
	MHD_socket fd;
	int64_t since;      /* its request, or the stretch before the next, began */
	bool waiting;       /* its body is in, waiting for the inbox writer */
	bool cut;
	struct watched *prev, *next;
};

struct hook {
	const struct eng_webhook_opts *o;
	const struct eng_job *job;
	struct MHD_Daemon *daemon;
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t mu;
	pthread_cond_t wake_writer, wake_applier;
	struct request *head, *tail;   /* waiting for the writer */
	bool stopping;                 /* the writer finishes its queue, then ends */
	bool stored;                   /* rows committed since the applier looked */
	int active;                    /* requests being handled */
	struct counts k;
	struct eng_sample ack;         /* ms from the body's end to the answer */
	struct eng_rng rng;
	struct eng_db wdb;             /* the writer's connection */
	struct watched *watched;       /* every open connection */
	pthread_t watchdog;
	bool watchdog_started;
	pthread_cond_t wake_watchdog;
};

static void lock(struct hook *h)
{
	pthread_mutex_lock(&h->mu);
}

static void unlock(struct hook *h)
{
	pthread_mutex_unlock(&h->mu);
}

/* ---- answers ------------------------------------------------------------------ */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *rsp = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
	if (!rsp)
		return MHD_NO;
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == 200 ? "text/plain" : "application/json");
	enum MHD_Result rc = MHD_queue_response(c, status, rsp);
	MHD_destroy_response(rsp);
	return rc;
}

static const char *status_body(unsigned status)
{
	switch (status) {
	case 200: return "ok";
	case 400: return "{\"error\":\"not a JSON object\"}";
	case 401: return "{\"error\":\"missing or wrong X-Hub-Signature-256\"}";
	case 403: return "{\"error\":\"wrong verify token\"}";
	case 404: return "{\"error\":\"not found\"}";
	case 405: return "{\"error\":\"method not allowed\"}";
	case 413: return "{\"error\":\"body too large\"}";
	default: return "{\"error\":\"try again later\"}";
	}
}

/* GET: Meta's subscription check. */
static enum MHD_Result verify(struct hook *h, struct MHD_Connection *c)
{
	const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "hub.mode");
	const char *token =
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "hub.verify_token");
	const char *challenge =
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "hub.challenge");
	size_t want = strlen(h->o->verify_token);
	bool ok = mode && strcmp(mode, "subscribe") == 0 && token && challenge &&
		  strlen(challenge) <= 256 && strlen(token) == want &&
		  CRYPTO_memcmp(token, h->o->verify_token, want) == 0;
	lock(h);
	if (ok)
		h->k.verified++;
	else
		h->k.verify_refused++;
	unlock(h);
	/* a GET without hub.mode is a probe (a health check, a scanner), not
	 * a failed subscription: not worth a warning */
	eng_log(ok ? ENG_INFO : mode ? ENG_WARN : ENG_DEBUG,
		ok ? "subscription_verified" : "verification_refused", ENG_S("mode", mode));
	return ok ? answer(c, 200, challenge) : answer(c, 403, status_body(403));
}

/* The watchdog's record of connection c (NULL before it started). */
static struct watched *watched_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void refuse(struct hook *h, long long *counter, const char *reason)
{
	lock(h);
	(*counter)++;
	unlock(h);
	eng_log(ENG_WARN, "delivery_refused", ENG_S("reason", reason));
}

/* A whole POST body is in: check it, then hand it to the writer. */
static enum MHD_Result take_body(struct hook *h, struct request *r, struct MHD_Connection *c)
{
	if (r->too_large) {
		refuse(h, &h->k.too_large, "body_too_large");
		return answer(c, 413, status_body(413));
	}
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hub-Signature-256");
	const char *body = eng_buf_str(&r->body);
	if (!eng_webhook_signature_ok(h->o->app_secret, body, r->body.len, sig)) {
		refuse(h, &h->k.unsigned_, sig ? "bad_signature" : "no_signature");
		return answer(c, 401, status_body(401));
	}
	json_error_t je;
	json_t *root = json_loadb(body, r->body.len, 0, &je);
	bool object = json_is_object(root);
	json_decref(root);
	if (!object) {
		refuse(h, &h->k.malformed, root ? "not_an_object" : "not_json");
		return answer(c, 400, status_body(400));
	}
	r->t_complete = eng_mono_us();
	r->state = R_WAITING;
	MHD_suspend_connection(c);
	lock(h);
	struct watched *w = watched_of(c);
	if (w)
		w->waiting = true;
	h->k.received++;
	if (h->tail)
		h->tail->next = r;
	else
		h->head = r;
	h->tail = r;
	pthread_cond_signal(&h->wake_writer);
	unlock(h);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **req_cls)
{
	(void)version;
	struct hook *h = cls;
	struct request *r = *req_cls;
	if (!r) { /* the headers are in */
		r = eng_xcalloc(1, sizeof(*r));
		eng_buf_init(&r->body, (size_t)h->o->max_body);
		r->conn = c;
		*req_cls = r;
		lock(h);
		h->active++;
		unlock(h);
		if (strcmp(url, h->o->path) != 0) {
			r->answer = 404;
		} else if (strcmp(method, "GET") == 0) {
			return verify(h, c);
		} else if (strcmp(method, "POST") != 0) {
			r->answer = 405;
		} else {
			const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								     MHD_HTTP_HEADER_CONTENT_LENGTH);
			long long n;
			if (cl && eng_parse_int(cl, 0, INT64_MAX, &n) == 0 && n > h->o->max_body) {
				refuse(h, &h->k.too_large, "body_too_large");
				return answer(c, 413, status_body(413));
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size) { /* more of the body */
		if (!r->answer && !r->too_large &&
		    eng_buf_add(&r->body, upload_data, *upload_data_size))
			r->too_large = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->state == R_ANSWERED) /* resumed by the writer */
		return answer(c, r->answer, status_body(r->answer));
	if (r->answer) {
		lock(h);
		if (r->answer == 404)
			h->k.not_found++;
		else
			h->k.not_allowed++;
		unlock(h);
		return answer(c, r->answer, status_body(r->answer));
	}
	return take_body(h, r, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)c;
	(void)toe;
	struct hook *h = cls;
	struct request *r = *req_cls;
	if (!r)
		return;
	eng_buf_release(&r->body);
	free(r);
	*req_cls = NULL;
	lock(h);
	h->active--;
	struct watched *w = watched_of(c);
	if (w) { /* the next request's time starts now */
		w->since = eng_mono_us();
		w->waiting = false;
	}
	unlock(h);
}

/* libmicrohttpd's own messages (a connection refused at a limit, one cut
 * off): log lines like every other, at debug (they come in floods under
 * the very attacks they are about). */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '.'))
		line[--n] = '\0';
	eng_log(ENG_DEBUG, "http_server", ENG_S("message", line));
}

/* ---- the request deadline ---------------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct hook *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct watched *w = eng_xcalloc(1, sizeof(*w));
		w->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
		w->since = eng_mono_us();
		lock(h);
		w->next = h->watched;
		if (h->watched)
			h->watched->prev = w;
		h->watched = w;
		unlock(h);
		*socket_context = w;
		return;
	}
	struct watched *w = *socket_context;
	if (!w)
		return;
	/* (the socket closes after this returns: the watchdog, which holds
	 * the lock while it cuts, never touches a closed descriptor) */
	lock(h);
	if (w->prev)
		w->prev->next = w->next;
	else
		h->watched = w->next;
	if (w->next)
		w->next->prev = w->prev;
	unlock(h);
	free(w);
	*socket_context = NULL;
}

/* Every second: a connection over its deadline (a request trickling in,
 * or idle too long between requests) has its socket shut; libmicrohttpd
 * then finds it closed and lets it go. */
static void *watchdog_main(void *arg)
{
	struct hook *h = arg;
	int64_t limit = (int64_t)h->o->request_timeout_ms * 1000;
	lock(h);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&h->wake_watchdog, &h->mu, &ts);
		int64_t now = eng_mono_us();
		long long cut = 0;
		for (struct watched *w = h->watched; w; w = w->next) {
			if (w->waiting || w->cut || now - w->since <= limit ||
			    w->fd == MHD_INVALID_SOCKET)
				continue;
			shutdown(w->fd, SHUT_RDWR);
			w->cut = true;
			cut++;
		}
		h->k.timed_out += cut;
		if (cut) {
			unlock(h);
			eng_log(ENG_WARN, "requests_timed_out", ENG_I("connections", cut),
				ENG_I("request_timeout_ms", h->o->request_timeout_ms));
			lock(h);
		}
	}
	unlock(h);
	return NULL;
}

/* ---- the writer ------------------------------------------------------------------ */

static enum eng_status store_group(struct hook *h, struct request *group, size_t n,
				   struct eng_err *err)
{
	const char **bodies = eng_xcalloc(n, sizeof(*bodies));
	size_t i = 0;
	for (struct request *r = group; r; r = r->next)
		bodies[i++] = eng_buf_str(&r->body);
	enum eng_status st = eng_db_alive(&h->wdb) ? ENG_OK : eng_db_reconnect(&h->wdb, err);
	if (st == ENG_OK)
		st = eng_inbox_store(&h->wdb, bodies, n, err);
	if (st && !eng_db_alive(&h->wdb) && eng_db_reconnect(&h->wdb, err) == ENG_OK)
		st = eng_inbox_store(&h->wdb, bodies, n, err); /* once more, reconnected */
	free(bodies);
	return st;
}

static void *writer_main(void *arg)
{
	struct hook *h = arg;
	for (;;) {
		lock(h);
		while (!h->head && !h->stopping)
			pthread_cond_wait(&h->wake_writer, &h->mu);
		if (!h->head) {
			unlock(h);
			break;
		}
		/* whatever arrived while the last group was stored */
		struct request *group = h->head, *last = group;
		size_t n = 1;
		while (last->next && n < GROUP_MAX) {
			last = last->next;
			n++;
		}
		h->head = last->next;
		if (!h->head)
			h->tail = NULL;
		last->next = NULL;
		unlock(h);

		struct eng_err err = ENG_ERR_INIT;
		enum eng_status st = store_group(h, group, n, &err);
		if (st)
			eng_log(ENG_ERROR, "deliveries_not_stored", ENG_I("deliveries", n),
				ENG_S("error", err.msg), ENG_S("hint", "answered 503: Meta retries"));
		int64_t now = eng_mono_us();
		lock(h);
		if (st)
			h->k.unavailable += (long long)n;
		else
			h->k.stored += (long long)n;
		h->stored = h->stored || st == ENG_OK;
		for (struct request *r = group; r; r = r->next)
			eng_sample_add(&h->ack, &h->rng, (double)(now - r->t_complete) / 1000.0);
		pthread_cond_signal(&h->wake_applier);
		unlock(h);
		for (struct request *r = group, *next; r; r = next) {
			next = r->next; /* r is the connection's once resumed */
			r->answer = st ? 503 : 200;
			r->state = R_ANSWERED;
			MHD_resume_connection(r->conn);
		}
	}
	return NULL;
}

/* ---- setup --------------------------------------------------------------------- */

/* ADDR:PORT, [ADDR6]:PORT or :PORT (every interface). */
static bool parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	long long port;
	if (!colon || eng_parse_int(colon + 1, 0, 65535, &port))
		return false;
	size_t hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		host[hl - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof(*a);
	if (hl == 0) {
		a->sin_addr.s_addr = htonl(INADDR_ANY);
		return true;
	}
	return inet_pton(AF_INET, host, &a->sin_addr) == 1;
}

enum eng_status eng_webhook_check(struct eng_webhook_opts *o, const char *secret_file,
				  const char *token_file, struct eng_err *err)
{
	if (o->drain)
		return ENG_OK;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!parse_listen(o->listen, &ss, &len))
		return eng_err_set(err, ENG_EUSAGE,
				   "invalid --listen \"%.100s\": use ADDR:PORT, such as "
				   "127.0.0.1:8090",
				   o->listen);
	if (o->path[0] != '/')
		return eng_err_set(err, ENG_EUSAGE, "invalid --path: it must start with /");
	if (eng_http_read_secret(secret_file, "--app-secret-file", &o->app_secret, err) ||
	    eng_http_read_secret(token_file, "--verify-token-file", &o->verify_token, err))
		return eng_err_event(err, "bad_configuration");
	return ENG_OK;
}

void eng_webhook_opts_release(struct eng_webhook_opts *o)
{
	eng_http_wipe(o->app_secret);
	eng_http_wipe(o->verify_token);
	o->app_secret = o->verify_token = NULL;
}

static enum eng_status start(struct hook *h, struct eng_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	parse_listen(h->o->listen, &ss, &len);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (eng_db_connect(&h->wdb, h->job->conninfo, h->job->program, err))
		return eng_err_prefix(err, "the inbox writer's connection");
	if (pthread_create(&h->writer, NULL, writer_main, h) != 0)
		return eng_err_set(err, ENG_EINTERNAL, "cannot start the inbox writer");
	h->writer_started = true;
	if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0)
		return eng_err_set(err, ENG_EINTERNAL, "cannot start the request watchdog");
	h->watchdog_started = true;
	h->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->o->threads,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->o->connection_timeout_s,
		MHD_OPTION_CONNECTION_LIMIT, 4096u,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)h->o->max_per_ip,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
	if (!h->daemon)
		return eng_err_set(err, ENG_ECONFIG, "cannot listen on %.100s (in use, or not "
				   "an address of this host)",
				   h->o->listen);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	eng_log(ENG_INFO, "listening", ENG_S("listen", h->o->listen),
		ENG_I("port", info ? info->port : 0), ENG_S("path", h->o->path));
	return ENG_OK;
}

/* SIGTERM: stop accepting, answer what is in hand, let the writer finish. */
static void stop(struct hook *h)
{
	if (h->daemon) {
		MHD_socket fd = MHD_quiesce_daemon(h->daemon);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		int64_t until = eng_mono_us() + STOP_WAIT_US;
		for (;;) {
			lock(h);
			int active = h->active;
			unlock(h);
			if (active == 0 || eng_mono_us() > until)
				break;
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	lock(h);
	h->stopping = true;
	pthread_cond_signal(&h->wake_writer);
	pthread_cond_signal(&h->wake_watchdog);
	unlock(h);
	if (h->writer_started) {
		pthread_join(h->writer, NULL);
		h->writer_started = false;
	}
	if (h->watchdog_started) {
		pthread_join(h->watchdog, NULL);
		h->watchdog_started = false;
	}
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	h->daemon = NULL;
}

/* ---- applying ------------------------------------------------------------------- */

/* The batch grows with the backlog: doubled after each full batch, up to
 * this many times --batch, and back to --batch once one is not full (fewer
 * statements per delivery when the receiver acknowledges faster than a
 * batch of --batch applies; small transactions when it does not). */
#define BATCH_GROWTH 16
#define BATCH_MAX 10000

/* Apply everything pending now. A lost connection is reconnected; an
 * error is logged (the service tries again later) and returned. */
static enum eng_status apply_pending(struct hook *h, struct eng_inbox_counts *k,
				     struct eng_err *err)
{
	const struct eng_job *job = h->job;
	int batch = h->o->batch;
	for (;;) {
		size_t n = 0;
		enum eng_status st = eng_db_alive(job->db) ? ENG_OK : eng_db_reconnect(job->db, err);
		if (st == ENG_OK)
			st = eng_inbox_apply(job->db, job->run_id, batch, k, &n, err);
		if (st) {
			eng_log(ENG_ERROR, "inbox_not_applied", ENG_S("error", err->msg),
				ENG_S("hint", "the deliveries are kept"));
			return st;
		}
		if (n)
			eng_log(ENG_DEBUG, "deliveries_applied", ENG_I("deliveries", n),
				ENG_I("batch", batch));
		if (n < (size_t)batch)
			return ENG_OK;
		if (batch < h->o->batch * BATCH_GROWTH && batch * 2 <= BATCH_MAX)
			batch *= 2;
	}
}

static void wait_for_deliveries(struct hook *h)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000 * 1000; /* signals are noticed this soon */
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	lock(h);
	if (!h->stored)
		pthread_cond_timedwait(&h->wake_applier, &h->mu, &ts);
	h->stored = false;
	unlock(h);
}

static void summarize(struct hook *h, const struct eng_inbox_counts *a, long long purged)
{
	const struct eng_job *j = h->job;
	const struct {
		const char *key;
		long long v;
	} c[] = {
		{"received", h->k.received}, {"stored", h->k.stored},
		{"refused_signature", h->k.unsigned_}, {"refused_too_large", h->k.too_large},
		{"refused_malformed", h->k.malformed}, {"unavailable", h->k.unavailable},
		{"verifications", h->k.verified}, {"verifications_refused", h->k.verify_refused},
		{"applied", a->deliveries}, {"messages", a->messages},
		{"activities", a->activities}, {"goodbye_replies", a->replies},
		{"preferences", a->preferences}, {"duplicates", a->duplicates},
		{"unknown_users", a->unknown_users}, {"statuses", a->statuses},
		{"delivered", a->delivered}, {"read", a->read},
		{"undelivered", a->failed}, {"unmatched_statuses", a->unmatched},
		{"priced", a->priced}, {"account_changes", a->account},
		{"account_changes_stale", a->account_stale},
		{"ignored", a->ignored}, {"malformed_items", a->malformed},
		{"rejected_events", a->rejected}, {"broken_deliveries", a->broken},
		{"purged", purged}, {"timed_out", h->k.timed_out},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(*c); i++)
		eng_job_set_int(j, c[i].key, c[i].v);
	json_object_set_new(j->summary, "ack_ms", eng_sample_json(&h->ack));
}

enum eng_status eng_webhook_run(const struct eng_job *job, const struct eng_webhook_opts *o,
				struct eng_err *err)
{
	struct hook h;
	memset(&h, 0, sizeof(h));
	h.o = o;
	h.job = job;
	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.wake_writer, NULL);
	pthread_cond_init(&h.wake_watchdog, NULL);
	pthread_cond_init(&h.wake_applier, NULL);
	eng_sample_init(&h.ack, 65536);
	eng_rng_seed(&h.rng);
	json_object_seed(0); /* before any thread parses JSON */
	struct eng_inbox_counts applied = {0};
	long long purged = 0;

	enum eng_status st = o->drain ? ENG_OK : start(&h, err);
	struct eng_every purge = ENG_EVERY(PURGE_EVERY_US); /* at start, then hourly */
	while (st == ENG_OK && !o->drain && !eng_interrupted) {
		struct eng_err e = ENG_ERR_INIT;
		apply_pending(&h, &applied, &e);
		if (eng_every_due(&purge, eng_mono_us())) {
			long long n = 0;
			if (eng_inbox_purge(job->db, o->retain_days, &n, &e))
				eng_log(ENG_WARN, "inbox_not_purged", ENG_S("error", e.msg));
			purged += n;
		}
		wait_for_deliveries(&h);
	}
	if (eng_interrupted)
		eng_log(ENG_INFO, "stopping", ENG_S("reason", "signal"),
			ENG_I("signal", eng_interrupted));
	stop(&h);
	if (st == ENG_OK) { /* what the writer committed last, and --drain */
		enum eng_status last = apply_pending(&h, &applied, err);
		/* --drain exists to apply: failing that is its failure. A service
		 * told to stop has answered and stored what it took; what it could
		 * not apply (logged) stays in the inbox for its next start, and the
		 * stop is still the clean one its supervisor asked for. */
		if (o->drain)
			st = last;
	}
	summarize(&h, &applied, purged);
	eng_log(ENG_INFO, "webhook_finished", ENG_I("received", h.k.received),
		ENG_I("applied", applied.deliveries));
	eng_db_close(&h.wdb);
	eng_sample_release(&h.ack);
	pthread_cond_destroy(&h.wake_writer);
	pthread_cond_destroy(&h.wake_watchdog);
	pthread_cond_destroy(&h.wake_applier);
	pthread_mutex_destroy(&h.mu);
	return st;
}
