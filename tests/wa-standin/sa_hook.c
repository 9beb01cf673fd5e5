/*
 * Meta's webhook side: status webhooks after successful sends (queued,
 * posted by one thread, retried), inbound messages and raw bodies on
 * request (posted at once). Every POST is signed with the app secret
 * (X-Hub-Signature-256), counted and recorded.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "standin.h"

/* Deliveries waiting in the queue, at most; more are dropped (counted). */
#define SA_HOOK_QUEUE 10000
/* Receiver answers kept, at most (the rest is read and dropped). */
#define SA_HOOK_RESP_MAX (64 * 1024)
/* Most copies of one inbound message ("repeat"). */
#define SA_MAX_REPEAT 100
/* Defaults for the envelope when no option or field names them. */
#define SA_DEFAULT_PHONE_NUMBER_ID "106540352242922"
#define SA_DEFAULT_NAME "Stand-in User"

static const char *const status_names[] = {"sent", "delivered", "read", "failed"};

bool sa_parse_statuses(const char *list, bool allow_failed,
		       unsigned char out[SA_MAX_STATUSES], size_t *n)
{
	*n = 0;
	const char *p = list;
	if (!*p)
		return true;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int found = -1;
		for (int i = 0; i < SA_MAX_STATUSES; i++)
			if (strlen(status_names[i]) == len &&
			    memcmp(status_names[i], p, len) == 0)
				found = i;
		if (found < 0 || (found == SA_FAILED && !allow_failed))
			return false;
		for (size_t i = 0; i < *n; i++)
			if (out[i] == found)
				return false;
		out[(*n)++] = (unsigned char)found;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

/* ---- the chosen statuses, by the last three digits of `to` ---- */

enum plan {
	PLAN_EACH,     /* one POST per status, in order */
	PLAN_TWICE,    /* each POST made twice, same bytes */
	PLAN_REVERSED, /* one POST per status, last first */
	PLAN_BATCHED,  /* all statuses in one POST */
};

static const struct status_choice {
	const char *suffix;
	enum plan plan;
	const char *list; /* NULL: --statuses */
	long code;        /* of the failed status */
	const char *title;
	const char *details;
} status_choices[] = {
	{"930", PLAN_EACH, "sent,failed", 131026, "Message undeliverable",
	 "Message Undeliverable."},
	{"931", PLAN_EACH, "sent,failed", 131050,
	 "User has stopped marketing messages",
	 "Unable to deliver the message. This recipient has chosen to stop "
	 "receiving marketing messages on WhatsApp from your business."},
	{"932", PLAN_EACH, "sent,delivered", 0, NULL, NULL},
	{"933", PLAN_TWICE, NULL, 0, NULL, NULL},
	{"934", PLAN_REVERSED, NULL, 0, NULL, NULL},
	{"935", PLAN_EACH, "sent,failed", 131049,
	 "This message was not delivered to maintain healthy ecosystem engagement.",
	 "In order to maintain a healthy ecosystem engagement, the message "
	 "failed to be delivered."},
	{"936", PLAN_BATCHED, NULL, 0, NULL, NULL},
	{"937", PLAN_EACH, "failed", 131026, "Message undeliverable",
	 "Message Undeliverable."},
};

static const struct status_choice *choose_statuses(const char *to)
{
	size_t n = strlen(to);
	if (n < 3 || !sa_is_digits(to + n - 3, 3))
		return NULL;
	for (size_t i = 0; i < sizeof status_choices / sizeof status_choices[0]; i++)
		if (memcmp(to + n - 3, status_choices[i].suffix, 3) == 0)
			return &status_choices[i];
	return NULL;
}

/* ---- signing and posting ---- */

/* "sha256=" and 64 lowercase hex digits of HMAC-SHA256(secret, body). */
static void sign(const struct sa_config *cfg, const char *body, size_t len,
		 char out[7 + 64 + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	static const char hex[] = "0123456789abcdef";
	if (!HMAC(EVP_sha256(), cfg->app_secret, (int)cfg->app_secret_len,
		  (const unsigned char *)body, len, md, &mdlen) || mdlen != 32) {
		out[0] = '\0';
		return;
	}
	memcpy(out, "sha256=", 7);
	for (unsigned i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
	OPENSSL_cleanse(md, sizeof md);
}

struct post_result {
	long status; /* HTTP status received; 0 for none */
	char *resp;  /* the receiver's answer (malloc'd, NUL-terminated) */
	size_t resp_len;
	char error[CURL_ERROR_SIZE]; /* "" when an answer came */
	long long ms;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct post_result *res = ud;
	size_t len = size * n;
	size_t room = SA_HOOK_RESP_MAX - res->resp_len;
	size_t take = len < room ? len : room;
	if (take) {
		char *b = realloc(res->resp, res->resp_len + take + 1);
		if (!b)
			return 0;
		memcpy(b + res->resp_len, p, take);
		res->resp = b;
		res->resp_len += take;
		b[res->resp_len] = '\0';
	}
	return len;
}

/*
 * POST body to url, with X-Hub-Signature-256: sig unless sig is NULL.
 * Returns early (status 0, error "stopping") when the server stops.
 */
static void http_post(struct sa_server *srv, const char *url, const char *body,
		      size_t len, const char *sig, const char *ctype,
		      struct post_result *res)
{
	memset(res, 0, sizeof *res);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CURL *e = curl_easy_init();
	CURLM *m = curl_multi_init();
	struct curl_slist *hdr = NULL, *h;
	char line[256];
	snprintf(line, sizeof line, "Content-Type: %s", ctype);
	if ((h = curl_slist_append(hdr, line)))
		hdr = h;
	if (sig) {
		snprintf(line, sizeof line, "X-Hub-Signature-256: %s", sig);
		if ((h = curl_slist_append(hdr, line)))
			hdr = h;
	}
	if ((h = curl_slist_append(hdr, "Expect:")))
		hdr = h;
	if (!e || !m || !hdr) {
		snprintf(res->error, sizeof res->error, "out of memory");
		goto out;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "facebookexternalua");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, res);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, res->error);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)srv->cfg.webhook_timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)srv->cfg.webhook_timeout_ms);
	curl_multi_add_handle(m, e);

	int running = 1;
	bool stopped = false;
	CURLcode rc = CURLE_OK;
	for (;;) {
		CURLMcode mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK) {
			snprintf(res->error, sizeof res->error, "%s", curl_multi_strerror(mc));
			break;
		}
		if (!running)
			break;
		if (sa_stopping(srv)) {
			stopped = true;
			break;
		}
		/* At most 100 ms between looks at the stop flag. */
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	if (stopped) {
		snprintf(res->error, sizeof res->error, "stopping");
	} else if (!running) {
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE)
				rc = msg->data.result;
		if (rc == CURLE_OK) {
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res->status);
			res->error[0] = '\0';
		} else if (!res->error[0]) {
			snprintf(res->error, sizeof res->error, "%s", curl_easy_strerror(rc));
		}
	}
	curl_multi_remove_handle(m, e);
out:
	curl_multi_cleanup(m);
	curl_easy_cleanup(e);
	curl_slist_free_all(hdr);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->ms = sa_ms_between(&t0, &t1);
}

static bool is_2xx(long status)
{
	return status >= 200 && status < 300;
}

/*
 * Make one webhook POST: post, count, record. carried is the record's
 * statuses ([{"id","status"}]) or messages ([ids]) array, borrowed.
 */
static void post_counted(struct sa_server *srv, const char *source, const char *url,
			 const char *body, size_t len, const char *sig,
			 const char *ctype, unsigned attempt, const char *carried_key,
			 json_t *carried, struct post_result *res)
{
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	http_post(srv, url, body, len, sig, ctype, res);

	struct sa_hooks *h = &srv->hooks;
	pthread_mutex_lock(&h->mu);
	h->posted++;
	if (is_2xx(res->status))
		h->acked++;
	else
		h->failed++;
	pthread_mutex_unlock(&h->mu);

	if (srv->record_fd < 0)
		return;
	char ts[32];
	sa_rfc3339_ms(&wall, ts);
	json_t *rec = json_object();
	json_object_set_new(rec, "kind", json_string("webhook_out"));
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "source", json_string(source));
	json_object_set_new(rec, "url", sa_json_lossy_string(url, strlen(url)));
	json_object_set_new(rec, "status", json_integer(res->status));
	json_object_set_new(rec, "attempt", json_integer(attempt));
	json_object_set_new(rec, "error", res->error[0] ? json_string(res->error) : json_null());
	json_object_set_new(rec, "signature", sig ? sa_json_lossy_string(sig, strlen(sig))
						  : json_null());
	json_object_set_new(rec, "statuses", json_null());
	json_object_set_new(rec, "messages", json_null());
	if (carried_key && carried)
		json_object_set(rec, carried_key, carried);
	json_object_set_new(rec, "body_bytes", json_integer((json_int_t)len));
	json_object_set_new(rec, "duration_ms", json_integer(res->ms));
	sa_record(srv, rec);
}

/* ---- the queue ---- */

struct sa_delivery {
	uint64_t order;
	struct timespec due; /* CLOCK_MONOTONIC */
	unsigned attempt;    /* attempts made */
	char *body;
	size_t len;
	json_t *carried; /* [{"id","status"}] for the record */
};

static void free_delivery(struct sa_delivery *d)
{
	if (!d)
		return;
	free(d->body);
	json_decref(d->carried);
	free(d);
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static bool earlier(const struct sa_delivery *a, const struct sa_delivery *b)
{
	if (before(&a->due, &b->due))
		return true;
	if (before(&b->due, &a->due))
		return false;
	return a->order < b->order;
}

static void add_ms(struct timespec *t, long long ms)
{
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/* Caller holds h->mu and has made sure there is room. */
static void heap_push(struct sa_hooks *h, struct sa_delivery *d)
{
	size_t i = h->len++;
	h->heap[i] = d;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!earlier(h->heap[i], h->heap[p]))
			break;
		struct sa_delivery *t = h->heap[i];
		h->heap[i] = h->heap[p];
		h->heap[p] = t;
		i = p;
	}
}

static struct sa_delivery *heap_pop(struct sa_hooks *h)
{
	struct sa_delivery *top = h->heap[0];
	h->heap[0] = h->heap[--h->len];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->len && earlier(h->heap[l], h->heap[m]))
			m = l;
		if (r < h->len && earlier(h->heap[r], h->heap[m]))
			m = r;
		if (m == i)
			break;
		struct sa_delivery *t = h->heap[i];
		h->heap[i] = h->heap[m];
		h->heap[m] = t;
		i = m;
	}
	return top;
}

/* The wait before retry number k (1, 2, ...): 100 ms doubling, at most 2 s. */
static long long backoff_ms(unsigned k)
{
	long long ms = 100;
	for (unsigned i = 1; i < k && ms < 2000; i++)
		ms *= 2;
	return ms < 2000 ? ms : 2000;
}

static void *worker(void *arg)
{
	struct sa_server *srv = arg;
	struct sa_hooks *h = &srv->hooks;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		if (h->len == 0) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (before(&now, &h->heap[0]->due)) {
			pthread_cond_timedwait(&h->cv, &h->mu, &h->heap[0]->due);
			continue;
		}
		struct sa_delivery *d = heap_pop(h);
		pthread_mutex_unlock(&h->mu);

		char sig[72];
		sign(&srv->cfg, d->body, d->len, sig);
		struct post_result res;
		d->attempt++;
		post_counted(srv, "status", srv->cfg.status_webhook, d->body, d->len,
			     sig, "application/json", d->attempt, "statuses", d->carried,
			     &res);
		free(res.resp);

		pthread_mutex_lock(&h->mu);
		if (is_2xx(res.status)) {
			free_delivery(d);
		} else if (h->stop) {
			h->dropped++;
			free_delivery(d);
		} else if (d->attempt > srv->cfg.webhook_retries) {
			h->abandoned++;
			free_delivery(d);
		} else if (h->len >= h->cap) { /* filled up while it was out */
			h->dropped++;
			free_delivery(d);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &d->due);
			add_ms(&d->due, backoff_ms(d->attempt));
			heap_push(h, d);
		}
	}
	h->dropped += h->len;
	for (size_t i = 0; i < h->len; i++)
		free_delivery(h->heap[i]);
	h->len = 0;
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

bool sa_hooks_start(struct sa_server *srv)
{
	struct sa_hooks *h = &srv->hooks;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!srv->cfg.status_webhook)
		return true;
	h->cap = SA_HOOK_QUEUE;
	h->heap = calloc(h->cap, sizeof *h->heap);
	if (!h->heap)
		return false;
	if (pthread_create(&h->thread, NULL, worker, srv) != 0)
		return false;
	h->running = true;
	return true;
}

void sa_hooks_stop(struct sa_server *srv)
{
	struct sa_hooks *h = &srv->hooks;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->running)
		pthread_join(h->thread, NULL);
	h->running = false;
}

void sa_hooks_free(struct sa_server *srv)
{
	struct sa_hooks *h = &srv->hooks;
	for (size_t i = 0; i < h->len; i++)
		free_delivery(h->heap[i]);
	free(h->heap);
	h->heap = NULL;
	h->len = 0;
	sa_strmap_free(&h->last_wamid);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
}

/* ---- envelopes ---- */

/* Meta's envelope around value.{contacts (when not NULL), key}; takes both. */
static json_t *envelope(const struct sa_config *cfg, const char *number,
			json_t *contacts, const char *key, json_t *items)
{
	json_t *value = json_pack("{s:s, s:{s:s, s:s}}", "messaging_product", "whatsapp",
				  "metadata", "display_phone_number",
				  cfg->display_phone_number, "phone_number_id", number);
	if (!value) {
		json_decref(contacts);
		json_decref(items);
		return NULL;
	}
	if (contacts)
		json_object_set_new(value, "contacts", contacts);
	json_object_set_new(value, key, items);
	return json_pack("{s:s, s:[{s:s, s:[{s:s, s:o}]}]}", "object",
			 "whatsapp_business_account", "entry", "id", cfg->waba_id,
			 "changes", "field", "messages", "value", value);
}

static json_t *unix_string(long long secs)
{
	char b[24];
	snprintf(b, sizeof b, "%lld", secs);
	return json_string(b);
}

static json_t *failed_errors(long code, const char *title, const char *details)
{
	return json_pack("[{s:I, s:s, s:s, s:{s:s}}]", "code", (json_int_t)code, "title",
			 title, "message", title, "error_data", "details", details);
}

/* What a message costs, as its statuses say (the template's category). */
struct pricing {
	char category[33];
	bool billable;
};

static json_t *status_object(enum sa_status st, const char *wamid, long long ts,
			     const char *recipient, bool group, const char *opaque,
			     const char *conv, const struct status_choice *c,
			     const struct pricing *pr)
{
	json_t *s = json_pack("{s:s, s:s, s:o, s:s}", "id", wamid, "status",
			      status_names[st], "timestamp", unix_string(ts),
			      "recipient_id", recipient);
	if (!s)
		return NULL;
	if (group)
		json_object_set_new(s, "recipient_type", json_string("group"));
	if (opaque)
		json_object_set_new(s, "biz_opaque_callback_data", json_string(opaque));
	if (st == SA_FAILED) {
		json_object_set_new(s, "errors",
				    failed_errors(c ? c->code : 131026,
						  c && c->title ? c->title : "Message undeliverable",
						  c && c->details ? c->details
								  : "Message Undeliverable."));
		return s;
	}
	json_t *conversation = json_pack("{s:s, s:{s:s}}", "id", conv, "origin", "type",
					 pr->category);
	if (st == SA_SENT)
		json_object_set_new(conversation, "expiration_timestamp",
				    unix_string(ts + 24 * 3600));
	json_object_set_new(s, "conversation", conversation);
	json_object_set_new(s, "pricing",
			    json_pack("{s:b, s:s, s:s, s:s}", "billable", pr->billable,
				      "pricing_model", "PMP", "category", pr->category, "type",
				      pr->billable ? "regular" : "free_customer_service"));
	return s;
}

/* One queued delivery carrying statuses[idx[0..n-1]]. */
static struct sa_delivery *make_delivery(const struct sa_config *cfg, const char *number,
					 json_t *const *statuses, const size_t *idx,
					 size_t n)
{
	json_t *items = json_array(), *carried = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *s = statuses[idx[i]];
		json_array_append(items, s);
		json_array_append_new(carried,
				      json_pack("{s:O, s:O}", "id", json_object_get(s, "id"),
						"status", json_object_get(s, "status")));
	}
	json_t *env = envelope(cfg, number, NULL, "statuses", items);
	struct sa_delivery *d = calloc(1, sizeof *d);
	char *body = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	if (!d || !body) {
		free(d);
		free(body);
		json_decref(carried);
		return NULL;
	}
	d->body = body;
	d->len = strlen(body);
	d->carried = carried;
	return d;
}

static struct sa_delivery *copy_delivery(const struct sa_delivery *d)
{
	struct sa_delivery *c = calloc(1, sizeof *c);
	char *body = malloc(d->len + 1);
	if (!c || !body) {
		free(c);
		free(body);
		return NULL;
	}
	memcpy(body, d->body, d->len + 1);
	c->body = body;
	c->len = d->len;
	c->carried = json_deep_copy(d->carried);
	return c;
}

void sa_hooks_after_send(struct sa_server *srv, const json_t *body,
			 const char *wamid, const char *number, size_t number_len)
{
	const struct sa_config *cfg = &srv->cfg;
	struct sa_hooks *h = &srv->hooks;
	const char *to = json_string_value(json_object_get(body, "to"));
	if (!to || !wamid)
		return;
	bool group = json_is_string(json_object_get(body, "recipient_type")) &&
		     strcmp(json_string_value(json_object_get(body, "recipient_type")),
			    "group") == 0;
	const char *wa_id = to[0] == '+' ? to + 1 : to;

	char num[32];
	snprintf(num, sizeof num, "%.*s", (int)(number_len < 31 ? number_len : 31), number);
	if (cfg->app_secret) { /* for inbound messages: context, phone number id */
		pthread_mutex_lock(&h->mu);
		if (!h->stop) {
			sa_strmap_set(&h->last_wamid, wa_id, wamid);
			memcpy(h->last_number, num, sizeof num);
		}
		pthread_mutex_unlock(&h->mu);
	}
	if (!cfg->status_webhook)
		return;

	const struct status_choice *c = choose_statuses(to);
	unsigned char list[SA_MAX_STATUSES];
	size_t n = 0;
	if (c && c->list) {
		sa_parse_statuses(c->list, true, list, &n);
	} else {
		memcpy(list, cfg->statuses, cfg->n_statuses);
		n = cfg->n_statuses;
	}
	enum plan plan = c ? c->plan : PLAN_EACH;
	if (n == 0)
		return;

	const char *opaque =
		json_string_value(json_object_get(body, "biz_opaque_callback_data"));
	const json_t *tpl = json_object_get(body, "template");
	struct pricing pr;
	sa_account_pricing(srv, json_string_value(json_object_get(tpl, "name")),
			   json_string_value(json_object_get(json_object_get(tpl, "language"),
							     "code")),
			   pr.category, &pr.billable);
	char conv[33];
	sa_random_hex(conv, 32);
	struct timespec wall; /* the answer's time */
	clock_gettime(CLOCK_REALTIME, &wall);
	long long t_ms = (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;

	/* The statuses, in the order they happen: the i-th at answer + i x delay. */
	json_t *statuses[SA_MAX_STATUSES];
	for (size_t i = 0; i < n; i++)
		statuses[i] = status_object((enum sa_status)list[i], wamid,
					    (t_ms + (long long)(i + 1) * cfg->status_delay_ms) / 1000,
					    wa_id, group, opaque, conv, c, &pr);

	/* The POSTs, in the order they are made. */
	struct sa_delivery *posts[2 * SA_MAX_STATUSES] = {0};
	size_t np = 0;
	bool ok = true;
	for (size_t i = 0; i < n; i++)
		ok &= statuses[i] != NULL;
	if (ok && plan == PLAN_BATCHED) {
		size_t idx[SA_MAX_STATUSES];
		for (size_t i = 0; i < n; i++)
			idx[i] = i;
		posts[np++] = make_delivery(cfg, num, statuses, idx, n);
	} else if (ok) {
		for (size_t i = 0; i < n; i++) {
			size_t idx = plan == PLAN_REVERSED ? n - 1 - i : i;
			posts[np] = make_delivery(cfg, num, statuses, &idx, 1);
			np++;
			if (plan == PLAN_TWICE) {
				posts[np] = posts[np - 1] ? copy_delivery(posts[np - 1]) : NULL;
				np++;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		json_decref(statuses[i]);
	for (size_t i = 0; i < np; i++)
		ok &= posts[i] != NULL;

	struct timespec due;
	clock_gettime(CLOCK_MONOTONIC, &due);
	pthread_mutex_lock(&h->mu);
	if (!ok || h->stop || h->len + np > h->cap) {
		h->dropped += np;
		pthread_mutex_unlock(&h->mu);
		for (size_t i = 0; i < np; i++)
			free_delivery(posts[i]);
		return;
	}
	for (size_t i = 0; i < np; i++) {
		add_ms(&due, cfg->status_delay_ms);
		posts[i]->due = due;
		posts[i]->order = ++h->order;
		heap_push(h, posts[i]);
	}
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void sa_hooks_stats(struct sa_server *srv, json_t *obj)
{
	struct sa_hooks *h = &srv->hooks;
	pthread_mutex_lock(&h->mu);
	json_int_t posted = (json_int_t)h->posted, acked = (json_int_t)h->acked,
		   failed = (json_int_t)h->failed, abandoned = (json_int_t)h->abandoned,
		   dropped = (json_int_t)h->dropped, pending = (json_int_t)h->len;
	pthread_mutex_unlock(&h->mu);
	json_object_set_new(obj, "webhooks_posted", json_integer(posted));
	json_object_set_new(obj, "webhooks_acknowledged", json_integer(acked));
	json_object_set_new(obj, "webhooks_failed", json_integer(failed));
	json_object_set_new(obj, "webhooks_pending", json_integer(pending));
	json_object_set_new(obj, "webhooks_abandoned", json_integer(abandoned));
	json_object_set_new(obj, "webhooks_dropped", json_integer(dropped));
}

/* ---- control endpoints ---- */

static bool is_http_url(const char *u)
{
	return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

/* The target of a control request: its "url", else --status-webhook. */
static const char *target_url(struct sa_server *srv, const json_t *req, const char **why)
{
	const json_t *u = json_object_get(req, "url");
	if (u && !json_is_null(u)) {
		if (!json_is_string(u) || !is_http_url(json_string_value(u))) {
			*why = "\"url\" must be an http:// or https:// URL";
			return NULL;
		}
		return json_string_value(u);
	}
	if (!srv->cfg.status_webhook) {
		*why = "no URL: give \"url\" or start with --status-webhook";
		return NULL;
	}
	return srv->cfg.status_webhook;
}

/* An optional string member: true when absent (*out NULL) or a string. */
static bool opt_string(const json_t *req, const char *key, const char **out)
{
	const json_t *v = json_object_get(req, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	return true;
}

static bool is_type_name(const char *s)
{
	if (!*s || strlen(s) > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

static json_t *media(const char *mime)
{
	char sha[65], id[17];
	sa_random_hex(sha, 64);
	sa_random_hex(id, 16);
	for (size_t i = 0; i < 16; i++) /* media ids are digits */
		id[i] = (char)('0' + (id[i] % 10));
	return json_pack("{s:s, s:s, s:s}", "mime_type", mime, "sha256", sha, "id", id);
}

/* What a message of type t carries beyond from/id/timestamp/type. */
static void add_other_type(json_t *msg, const char *t, const char *context)
{
	json_t *v = NULL;
	if (strcmp(t, "image") == 0) {
		v = media("image/jpeg");
	} else if (strcmp(t, "sticker") == 0) {
		v = media("image/webp");
		json_object_set_new(v, "animated", json_false());
	} else if (strcmp(t, "audio") == 0) {
		v = media("audio/ogg; codecs=opus");
		json_object_set_new(v, "voice", json_true());
	} else if (strcmp(t, "video") == 0) {
		v = media("video/mp4");
	} else if (strcmp(t, "document") == 0) {
		v = media("application/pdf");
		json_object_set_new(v, "filename", json_string("document.pdf"));
	} else if (strcmp(t, "location") == 0) {
		v = json_pack("{s:f, s:f}", "latitude", -23.5505, "longitude", -46.6333);
	} else if (strcmp(t, "reaction") == 0) {
		v = json_pack("{s:s, s:s}", "message_id", context, "emoji",
			      "\xf0\x9f\x91\x8d");
	} else if (strcmp(t, "unsupported") == 0) {
		json_object_set_new(msg, "errors",
				    failed_errors(131051, "Message type unknown",
						  "Message type is currently not supported."));
		return;
	} else {
		v = json_object();
	}
	json_object_set_new(msg, t, v);
}

json_t *sa_hooks_inbound(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {
		"from", "text", "button", "button_text", "interactive", "title", "type",
		"timestamp", "id", "repeat", "name", "url", "phone_number_id", "context",
		NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);
	if (!srv->cfg.app_secret)
		return sa_refuse(status, 400, "no --app-secret-file: nothing to sign with");
	const char *why = NULL;
	const char *url = target_url(srv, req, &why);
	if (!url)
		return sa_refuse(status, 400, "%s", why);

	const char *from, *text, *button, *button_text, *interactive, *title, *type,
		*id, *name, *number, *context;
	if (!opt_string(req, "from", &from) || !from)
		return sa_refuse(status, 400, "\"from\" (the sender's number) is required");
	if (from[0] == '+')
		from++;
	if (!sa_is_digits(from, strlen(from)) || strlen(from) > 20)
		return sa_refuse(status, 400, "\"from\" must be a phone number (digits)");
	if (!opt_string(req, "text", &text) || !opt_string(req, "button", &button) ||
	    !opt_string(req, "button_text", &button_text) ||
	    !opt_string(req, "interactive", &interactive) ||
	    !opt_string(req, "title", &title) || !opt_string(req, "type", &type) ||
	    !opt_string(req, "id", &id) || !opt_string(req, "name", &name) ||
	    !opt_string(req, "phone_number_id", &number) ||
	    !opt_string(req, "context", &context))
		return sa_refuse(status, 400,
			      "text, button, button_text, interactive, title, type, id, "
			      "name, phone_number_id and context must be strings");
	int kinds = (text != NULL) + (button != NULL) + (interactive != NULL);
	if (kinds > 1)
		return sa_refuse(status, 400, "give one of \"text\", \"button\", \"interactive\"");
	const char *derived = text ? "text" : button ? "button" : interactive ? "interactive"
										   : NULL;
	if (type && derived && strcmp(type, derived) != 0)
		return sa_refuse(status, 400, "\"type\" \"%s\" does not go with \"%s\"", type,
			      derived);
	if (!type && !derived)
		return sa_refuse(status, 400,
			      "give \"text\", \"button\", \"interactive\" or \"type\"");
	if (!type)
		type = derived;
	if (!is_type_name(type))
		return sa_refuse(status, 400, "\"type\" must be a message type such as image");
	if (!derived && (strcmp(type, "text") == 0 || strcmp(type, "button") == 0 ||
			 strcmp(type, "interactive") == 0))
		return sa_refuse(status, 400, "type %s needs \"%s\" too", type, type);
	if (number && (!sa_is_digits(number, strlen(number)) || strlen(number) > 30))
		return sa_refuse(status, 400, "\"phone_number_id\" must be digits");
	char last_number[32];
	pthread_mutex_lock(&srv->hooks.mu);
	memcpy(last_number, srv->hooks.last_number, sizeof last_number);
	pthread_mutex_unlock(&srv->hooks.mu);
	if (!number)
		number = srv->cfg.phone_number_id ? srv->cfg.phone_number_id
			 : last_number[0]         ? last_number
						  : SA_DEFAULT_PHONE_NUMBER_ID;

	long long ts;
	const json_t *tj = json_object_get(req, "timestamp");
	if (!tj || json_is_null(tj)) {
		ts = (long long)time(NULL);
	} else if (json_is_integer(tj) && json_integer_value(tj) >= 0) {
		ts = (long long)json_integer_value(tj);
	} else if (json_is_string(tj) && sa_is_digits(json_string_value(tj),
						      json_string_length(tj)) &&
		   json_string_length(tj) <= 12) {
		ts = strtoll(json_string_value(tj), NULL, 10);
	} else {
		return sa_refuse(status, 400, "\"timestamp\" must be Unix seconds");
	}
	long long repeat = 1;
	const json_t *rj = json_object_get(req, "repeat");
	if (rj && !json_is_null(rj)) {
		if (!json_is_integer(rj) || json_integer_value(rj) < 1 ||
		    json_integer_value(rj) > SA_MAX_REPEAT)
			return sa_refuse(status, 400, "\"repeat\" must be a whole number from 1 to %d",
				      SA_MAX_REPEAT);
		repeat = (long long)json_integer_value(rj);
	}

	/* The context: the given id, else the last message sent to from. */
	char *ctx = NULL, *fresh_id = NULL;
	if (context) {
		ctx = strdup(context);
	} else {
		pthread_mutex_lock(&srv->hooks.mu);
		const char *last = sa_strmap_get(&srv->hooks.last_wamid, from);
		ctx = last ? strdup(last) : NULL;
		pthread_mutex_unlock(&srv->hooks.mu);
		if (!ctx)
			ctx = sa_wamid(srv->cfg.display_phone_number);
	}
	if (!id)
		id = fresh_id = sa_wamid(from);
	if (!ctx || !id) {
		free(ctx);
		free(fresh_id);
		return sa_refuse(status, 500, "out of memory");
	}

	json_t *msg = json_pack("{s:s, s:s, s:o, s:s}", "from", from, "id", id, "timestamp",
				unix_string(ts), "type", type);
	json_t *ctxobj = json_pack("{s:s, s:s}", "from", srv->cfg.display_phone_number,
				   "id", ctx);
	if (text) {
		json_object_set_new(msg, "text", json_pack("{s:s}", "body", text));
		json_decref(ctxobj);
	} else if (button) {
		json_object_set_new(msg, "button",
				    json_pack("{s:s, s:s}", "payload", button, "text",
					      button_text ? button_text
							  : title ? title : button));
		json_object_set_new(msg, "context", ctxobj);
	} else if (interactive) {
		json_object_set_new(msg, "interactive",
				    json_pack("{s:s, s:{s:s, s:s}}", "type", "button_reply",
					      "button_reply", "id", interactive, "title",
					      title ? title : button_text ? button_text
									  : interactive));
		json_object_set_new(msg, "context", ctxobj);
	} else {
		add_other_type(msg, type, ctx);
		json_decref(ctxobj);
	}
	json_t *contacts = json_pack("[{s:{s:s}, s:s}]", "profile", "name",
				     name ? name : SA_DEFAULT_NAME, "wa_id", from);
	json_t *env = envelope(&srv->cfg, number, contacts, "messages", json_pack("[o]", msg));
	char *body = env ? json_dumps(env, JSON_COMPACT) : NULL;
	free(ctx);
	if (!body) {
		json_decref(env);
		free(fresh_id);
		return sa_refuse(status, 500, "out of memory");
	}
	size_t len = strlen(body);
	char sig[72];
	sign(&srv->cfg, body, len, sig);

	json_t *carried = json_pack("[s]", id);
	json_t *statuses = json_array();
	struct post_result res = {0};
	for (long long i = 0; i < repeat; i++) {
		free(res.resp);
		post_counted(srv, "inbound", url, body, len, sig, "application/json",
			     (unsigned)(i + 1), "messages", carried, &res);
		json_array_append_new(statuses, json_integer(res.status));
		if (sa_stopping(srv))
			break;
	}
	json_t *ans = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o}", "status",
				(json_int_t)res.status, "id", id, "body", env, "statuses",
				statuses, "response",
				res.resp ? sa_json_lossy_string(res.resp, res.resp_len)
					 : json_string(""),
				"error", res.error[0] ? json_string(res.error) : json_null());
	free(res.resp);
	free(body);
	free(fresh_id);
	json_decref(carried);
	*status = 200;
	return ans;
}

json_t *sa_hooks_raw(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {"body", "signature", "url", "content_type",
					      NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);
	const json_t *b = json_object_get(req, "body");
	if (!json_is_string(b))
		return sa_refuse(status, 400, "\"body\" (the exact text to post) is required");
	const char *why = NULL;
	const char *url = target_url(srv, req, &why);
	if (!url)
		return sa_refuse(status, 400, "%s", why);
	const char *ctype;
	if (!opt_string(req, "content_type", &ctype))
		return sa_refuse(status, 400, "\"content_type\" must be a string");
	if (!ctype)
		ctype = "application/json";
	if (strpbrk(ctype, "\r\n"))
		return sa_refuse(status, 400, "\"content_type\" must be one line");

	const char *body = json_string_value(b);
	size_t len = json_string_length(b);
	char computed[72];
	const char *sig;
	const json_t *s = json_object_get(req, "signature");
	if (!s) {
		if (!srv->cfg.app_secret)
			return sa_refuse(status, 400,
				      "no --app-secret-file: give \"signature\" (or null)");
		sign(&srv->cfg, body, len, computed);
		sig = computed;
	} else if (json_is_null(s)) {
		sig = NULL;
	} else if (json_is_string(s) && !strpbrk(json_string_value(s), "\r\n") &&
		   json_string_length(s) < 200) {
		sig = json_string_value(s);
	} else {
		return sa_refuse(status, 400,
			      "\"signature\" must be a one-line string (under 200 "
			      "characters) or null");
	}

	struct post_result res;
	post_counted(srv, "raw", url, body, len, sig, ctype, 1, NULL, NULL, &res);
	json_t *ans = json_pack("{s:I, s:o, s:o, s:o}", "status", (json_int_t)res.status,
				"body",
				res.resp ? sa_json_lossy_string(res.resp, res.resp_len)
					 : json_string(""),
				"signature", sig ? sa_json_lossy_string(sig, strlen(sig)) : json_null(),
				"error",
				res.error[0] ? json_string(res.error) : json_null());
	free(res.resp);
	*status = 200;
	return ans;
}

/* ---- the account's webhooks: POST /_standin/account_webhook ---- */

static const char *const template_events[] = {
	"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "FLAGGED", "IN_APPEAL",
	"REINSTATED", "PENDING_DELETION", "DELETED", "LIMIT_EXCEEDED", "ARCHIVED",
	"LOCKED", NULL};
static const char *const quality_scores[] = {"GREEN", "YELLOW", "RED", "UNKNOWN", NULL};
static const char *const number_events[] = {"FLAGGED",	 "UNFLAGGED",  "UPGRADE",
					    "DOWNGRADE", "ONBOARDING", "THROUGHPUT_UPGRADE",
					    NULL};
static const char *const tiers[] = {"TIER_50",	"TIER_250",  "TIER_1K",	       "TIER_2K",
				    "TIER_10K", "TIER_100K", "TIER_UNLIMITED", "TIER_NOT_SET",
				    NULL};

static bool one_of(const json_t *v, const char *const *list)
{
	const char *s = json_string_value(v);
	for (size_t i = 0; s && list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Unix seconds: a whole number >= 0 or a string of at most 12 digits. */
static bool unix_seconds(const json_t *v, long long *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (long long)json_integer_value(v);
		return true;
	}
	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 12 &&
	    sa_is_digits(json_string_value(v), json_string_length(v))) {
		*out = strtoll(json_string_value(v), NULL, 10);
		return true;
	}
	return false;
}

static bool nonempty_string(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

/*
 * The value posted for field, from the given one: checked, defaults filled
 * in, Meta's members first. NULL with why (prefixed by where) when bad.
 */
static json_t *account_value(struct sa_server *srv, const char *field, const json_t *in,
			     const char *where, char *why, size_t n)
{
	if (!json_is_object(in)) {
		snprintf(why, n, "%s\"value\" must be a JSON object", where);
		return NULL;
	}
#define GIVEN(k) json_object_get(in, k)
#define BAD(...)                                        \
	do {                                            \
		int off_ = snprintf(why, n, "%s", where); \
		snprintf(why + off_, n - (size_t)off_, __VA_ARGS__); \
		json_decref(out);                       \
		return NULL;                            \
	} while (0)
	json_t *out = json_object();
	bool tpl_status = strcmp(field, "message_template_status_update") == 0;
	bool tpl_quality = strcmp(field, "message_template_quality_update") == 0;
	if (tpl_status || tpl_quality) {
		const json_t *name = GIVEN("message_template_name"),
			     *lang = GIVEN("message_template_language"),
			     *id = GIVEN("message_template_id");
		if (!nonempty_string(name))
			BAD("value.message_template_name (a non-empty string) is required");
		if (!nonempty_string(lang))
			BAD("value.message_template_language (e.g. pt-BR) is required");
		if (id && !(json_is_integer(id) && json_integer_value(id) >= 0))
			BAD("value.message_template_id must be a whole number");
		json_t *idv = id ? json_incref((json_t *)id)
				 : json_integer(sa_template_id(json_string_value(name),
							       json_string_value(lang)));
		if (tpl_status) {
			const json_t *ev = GIVEN("event"), *reason = GIVEN("reason");
			if (!one_of(ev, template_events)) {
				json_decref(idv);
				BAD("value.event must be one of APPROVED, PENDING, REJECTED, "
				    "PAUSED, DISABLED, FLAGGED, IN_APPEAL, REINSTATED, "
				    "PENDING_DELETION, DELETED, LIMIT_EXCEEDED, ARCHIVED, "
				    "LOCKED");
			}
			if (reason && !json_is_string(reason)) {
				json_decref(idv);
				BAD("value.reason must be a string");
			}
			static const char *const objs[] = {"other_info", "disable_info",
							   "rejection_info", NULL};
			for (size_t i = 0; objs[i]; i++)
				if (GIVEN(objs[i]) && !json_is_object(GIVEN(objs[i]))) {
					json_decref(idv);
					BAD("value.%s must be a JSON object", objs[i]);
				}
			json_object_set(out, "event", (json_t *)ev);
			json_object_set_new(out, "message_template_id", idv);
			json_object_set(out, "message_template_name", (json_t *)name);
			json_object_set(out, "message_template_language", (json_t *)lang);
			json_object_set_new(out, "reason", reason ? json_incref((json_t *)reason)
								  : json_string("NONE"));
		} else {
			const json_t *prev = GIVEN("previous_quality_score"),
				     *now = GIVEN("new_quality_score");
			if (!one_of(now, quality_scores) || (prev && !one_of(prev, quality_scores))) {
				json_decref(idv);
				BAD("value.new_quality_score (required) and "
				    "value.previous_quality_score must be GREEN, YELLOW, RED "
				    "or UNKNOWN");
			}
			json_object_set_new(out, "previous_quality_score",
					    prev ? json_incref((json_t *)prev)
						 : json_string("UNKNOWN"));
			json_object_set(out, "new_quality_score", (json_t *)now);
			json_object_set_new(out, "message_template_id", idv);
			json_object_set(out, "message_template_name", (json_t *)name);
			json_object_set(out, "message_template_language", (json_t *)lang);
		}
	} else if (strcmp(field, "phone_number_quality_update") == 0) {
		const json_t *disp = GIVEN("display_phone_number"), *ev = GIVEN("event"),
			     *old = GIVEN("old_limit"), *cur = GIVEN("current_limit"),
			     *mdc = GIVEN("max_daily_conversations_per_business");
		if (disp && !(nonempty_string(disp) &&
			      sa_is_digits(json_string_value(disp), json_string_length(disp))))
			BAD("value.display_phone_number must be a string of digits");
		if (!one_of(ev, number_events))
			BAD("value.event must be one of FLAGGED, UNFLAGGED, UPGRADE, "
			    "DOWNGRADE, ONBOARDING, THROUGHPUT_UPGRADE");
		if ((old && !one_of(old, tiers)) || (cur && !one_of(cur, tiers)))
			BAD("value.old_limit and value.current_limit must be TIER_50, "
			    "TIER_250, TIER_1K, TIER_2K, TIER_10K, TIER_100K, "
			    "TIER_UNLIMITED or TIER_NOT_SET");
		long long ignored;
		if (mdc && !(json_is_integer(mdc) && json_integer_value(mdc) >= 0) &&
		    !(json_is_string(mdc) && strcmp(json_string_value(mdc), "unlimited") == 0) &&
		    !(json_is_string(mdc) && unix_seconds(mdc, &ignored)))
			BAD("value.max_daily_conversations_per_business must be digits "
			    "or \"unlimited\" (a string), or a whole number");
		json_object_set_new(out, "display_phone_number",
				    disp ? json_incref((json_t *)disp)
					 : json_string(srv->cfg.display_phone_number));
		json_object_set(out, "event", (json_t *)ev);
		if (old)
			json_object_set(out, "old_limit", (json_t *)old);
		if (cur)
			json_object_set(out, "current_limit", (json_t *)cur);
		if (mdc)
			json_object_set(out, "max_daily_conversations_per_business", (json_t *)mdc);
	} else {
		BAD("\"field\" must be message_template_status_update, "
		    "message_template_quality_update or phone_number_quality_update");
	}
#undef GIVEN
#undef BAD
	/* Whatever else was given, as it was. */
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)in, k, v) {
		if (!json_object_get(out, k))
			json_object_set(out, k, v);
	}
	return out;
}

json_t *sa_hooks_account(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {"field", "value", "time", "changes",
					      "apply", "repeat", "url", NULL};
	static const char *const change_allowed[] = {"field", "value", "time", NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);

	long long now = (long long)time(NULL), t_default = now;
	const json_t *tj = json_object_get(req, "time");
	if (tj && !unix_seconds(tj, &t_default))
		return sa_refuse(status, 400, "\"time\" must be Unix seconds");
	const json_t *aj = json_object_get(req, "apply");
	if (aj && !json_is_boolean(aj))
		return sa_refuse(status, 400, "\"apply\" must be true or false");
	long long repeat = 1;
	const json_t *rj = json_object_get(req, "repeat");
	if (rj) {
		if (!json_is_integer(rj) || json_integer_value(rj) < 1 ||
		    json_integer_value(rj) > SA_MAX_REPEAT)
			return sa_refuse(status, 400,
					 "\"repeat\" must be a whole number from 1 to %d",
					 SA_MAX_REPEAT);
		repeat = (long long)json_integer_value(rj);
	}
	const json_t *changes = json_object_get(req, "changes");
	if (changes) {
		if (json_object_get(req, "field") || json_object_get(req, "value"))
			return sa_refuse(status, 400,
					 "give either \"changes\" or \"field\" and \"value\"");
		if (!json_is_array(changes) || json_array_size(changes) < 1 ||
		    json_array_size(changes) > 100)
			return sa_refuse(status, 400,
					 "\"changes\" must be an array of 1 to 100 "
					 "{\"field\",\"value\",\"time\"} objects");
	} else if (!json_object_get(req, "field") || !json_object_get(req, "value")) {
		return sa_refuse(status, 400,
				 "\"field\" and \"value\" are required (or \"changes\")");
	}

	/* One entry per change, in the order given. */
	json_t *entries = json_array(), *fields = json_array();
	size_t nchanges = changes ? json_array_size(changes) : 1;
	for (size_t i = 0; i < nchanges; i++) {
		const json_t *c = changes ? json_array_get(changes, i) : req;
		char where[40] = "", why[512];
		if (changes) {
			snprintf(where, sizeof where, "changes[%zu]: ", i);
			if (!json_is_object(c)) {
				json_decref(entries);
				json_decref(fields);
				return sa_refuse(status, 400, "%smust be a JSON object", where);
			}
			const char *cbad = sa_unknown_member(c, change_allowed);
			if (cbad) {
				json_decref(entries);
				json_decref(fields);
				return sa_refuse(status, 400, "%sunknown member \"%s\"", where,
						 cbad);
			}
		}
		long long t = t_default;
		const json_t *ct = json_object_get(c, "time");
		if (changes && ct && !unix_seconds(ct, &t)) {
			json_decref(entries);
			json_decref(fields);
			return sa_refuse(status, 400, "%s\"time\" must be Unix seconds", where);
		}
		const char *field = json_string_value(json_object_get(c, "field"));
		json_t *value = account_value(srv, field ? field : "",
					      json_object_get(c, "value"), where, why,
					      sizeof why);
		if (!value) {
			json_decref(entries);
			json_decref(fields);
			return sa_refuse(status, 400, "%s", why);
		}
		json_array_append_new(entries,
				      json_pack("{s:s, s:I, s:[{s:s, s:o}]}", "id",
						srv->cfg.waba_id, "time", (json_int_t)t,
						"changes", "field", field, "value", value));
		json_array_append_new(fields, json_string(field));
	}
	if (!srv->cfg.app_secret) {
		json_decref(entries);
		json_decref(fields);
		return sa_refuse(status, 400, "no --app-secret-file: nothing to sign with");
	}
	const char *why = NULL;
	const char *url = target_url(srv, req, &why);
	if (!url) {
		json_decref(entries);
		json_decref(fields);
		return sa_refuse(status, 400, "%s", why);
	}

	if (json_is_true(aj)) { /* the stand-in plays what it announces */
		size_t i;
		json_t *e;
		json_array_foreach(entries, i, e) {
			json_t *ch = json_array_get(json_object_get(e, "changes"), 0);
			sa_account_apply(srv, json_string_value(json_object_get(ch, "field")),
					 json_object_get(ch, "value"));
		}
	}

	json_t *env = json_pack("{s:s, s:o}", "object", "whatsapp_business_account", "entry",
				entries);
	char *body = env ? json_dumps(env, JSON_COMPACT) : NULL;
	if (!body) {
		json_decref(env);
		json_decref(fields);
		return sa_refuse(status, 500, "out of memory");
	}
	size_t len = strlen(body);
	char sig[72];
	sign(&srv->cfg, body, len, sig);
	json_t *statuses = json_array();
	struct post_result res = {0};
	for (long long i = 0; i < repeat; i++) {
		free(res.resp);
		post_counted(srv, "account", url, body, len, sig, "application/json",
			     (unsigned)(i + 1), "fields", fields, &res);
		json_array_append_new(statuses, json_integer(res.status));
		if (sa_stopping(srv))
			break;
	}
	json_t *ans = json_pack("{s:I, s:o, s:o, s:o, s:o}", "status", (json_int_t)res.status,
				"body", env, "statuses", statuses, "response",
				res.resp ? sa_json_lossy_string(res.resp, res.resp_len)
					 : json_string(""),
				"error", res.error[0] ? json_string(res.error) : json_null());
	free(res.resp);
	free(body);
	json_decref(fields);
	*status = 200;
	return ans;
}
