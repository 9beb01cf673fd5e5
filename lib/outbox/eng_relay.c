#include "eng_relay.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "eng_buf.h"
#include "eng_crypto.h"
#include "eng_http.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_pool.h"
#include "eng_stats.h"
#include "eng_version.h"

static const char fetch_sql[] =
	"SELECT id, aggregate_type, aggregate_id, event_type, event_version,"
	"  payload::text, correlation_id::text,"
	"  (extract(epoch FROM created_at) * 1000000)::bigint"
	" FROM engagement.outbox_events WHERE published_at IS NULL"
	" ORDER BY id LIMIT $1::int";

/* engagement.mark_published and engagement.purge_published (migration
 * 0014): the relay's role writes the outbox through them only. */
static const char mark_sql[] = "SELECT engagement.mark_published($1::bigint[])";

static const char purge_sql[] = "SELECT engagement.purge_published($1::int)";

#define CHANNEL "engagement_outbox"
#define LAG_SAMPLE 65536 /* bounded memory however long --follow runs */

struct relay {
	const struct eng_job *job;
	const struct eng_relay_opts *o;
	CURL *curl;
	struct curl_slist *headers;
	struct eng_buf answer;
	long long published, batches, retries, purged, reconnects, last_id;
	struct eng_sample lag;  /* publication lags, ms */
	struct eng_every purge_every; /* at start, then hourly with --follow */
	struct eng_rng rng;
};

void eng_relay_signature(const char *secret, const char *body, size_t len,
			 char out[72])
{
	char hex[65];
	eng_hmac_sha256_hex(secret, strlen(secret), body, len, hex);
	snprintf(out, 72, "sha256=%s", hex);
}

static void wipe_bytes(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

void eng_relay_keys_release(struct eng_relay_keys *k)
{
	for (size_t i = 0; i < k->n; i++) {
		wipe_bytes(k->key[i], k->len[i]);
		free(k->key[i]);
	}
	eng_http_wipe(k->legacy);
	memset(k, 0, sizeof(*k));
}

enum eng_status eng_relay_keys_parse(const char *text, struct eng_relay_keys *k,
				     struct eng_err *err)
{
	memset(k, 0, sizeof(*k));
	int lineno = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		char *line = eng_xmalloc(n + 1);
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (nl ? 1 : 0);
		/* surrounding white space is not part of a secret */
		char *b = line, *e = line + n;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (b == e) {
			eng_http_wipe(line);
			continue;
		}
		if (k->n == ENG_RELAY_MAX_KEYS) {
			eng_http_wipe(line);
			eng_relay_keys_release(k);
			return eng_err_set(err, ENG_ECONFIG,
					   "--secret-file holds more than %d secrets",
					   ENG_RELAY_MAX_KEYS);
		}
		if (strncmp(b, "whsec_", 6) == 0) {
			k->key[k->n] = eng_unbase64(b + 6, &k->len[k->n]);
			if (!k->key[k->n] || k->len[k->n] == 0) {
				free(k->key[k->n]);
				eng_http_wipe(line);
				eng_relay_keys_release(k);
				return eng_err_set(err, ENG_ECONFIG,
						   "--secret-file line %d: a whsec_ secret must be "
						   "followed by the key in base64",
						   lineno);
			}
		} else {
			k->len[k->n] = strlen(b);
			k->key[k->n] = eng_xmalloc(k->len[k->n]);
			memcpy(k->key[k->n], b, k->len[k->n]);
		}
		if (!k->legacy)
			k->legacy = eng_xstrdup(b);
		k->n++;
		eng_http_wipe(line);
	}
	if (k->n == 0)
		return eng_err_set(err, ENG_ECONFIG, "--secret-file holds no secret");
	return ENG_OK;
}

char *eng_relay_sign(const struct eng_relay_keys *k, const char *id, long long timestamp,
		     const char *body, size_t len)
{
	struct eng_buf signed_text = ENG_BUF_INIT(SIZE_MAX / 2), out = ENG_BUF_INIT(SIZE_MAX / 2);
	eng_buf_addf(&signed_text, "%s.%lld.", id, timestamp);
	eng_buf_add(&signed_text, body, len);
	for (size_t i = 0; i < k->n; i++) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned ml = eng_hmac_sha256(k->key[i], k->len[i], signed_text.data,
					      signed_text.len, mac);
		char *b64 = eng_base64(mac, ml);
		if (i)
			eng_buf_add(&out, " ", 1);
		eng_buf_add(&out, "v1,", 3);
		eng_buf_add(&out, b64, strlen(b64));
		free(b64);
	}
	eng_buf_release(&signed_text);
	return eng_buf_detach(&out);
}

/* Sleep up to us microseconds, waking early on a signal. */
static void nap(int64_t us)
{
	int64_t end = eng_mono_us() + us;
	while (!eng_interrupted && eng_mono_us() < end) {
		int64_t left = end - eng_mono_us();
		struct timespec ts = {0, (long)(left < 100000 ? left : 100000) * 1000};
		nanosleep(&ts, NULL);
	}
}

static double jitter(struct relay *r)
{
	return 0.5 + 0.5 * eng_rng01(&r->rng);
}

/* Wait us microseconds, renewing the run lease on the way (the webhook may
 * be down for longer than the lease lasts). */
static enum eng_status wait_renewing(struct relay *r, int64_t us,
				     struct eng_err *err)
{
	int64_t end = eng_mono_us() + us;
	for (;;) {
		if (eng_job_keep_lease(r->job, err))
			return err->status;
		int64_t left = end - eng_mono_us();
		if (left <= 0 || eng_interrupted)
			return ENG_OK;
		nap(left < 5000000 ? left : 5000000);
	}
}

/* ---- sinks ------------------------------------------------------------------ */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	eng_buf_add(userdata, ptr, size * nmemb);
	return size * nmemb;
}

enum post_result { POST_OK, POST_RETRY, POST_REFUSED };

/* One attempt, signed now: the timestamp is the attempt's, the id the
 * batch's. */
static enum post_result post(struct relay *r, const char *id, const char *body,
			     char *why, size_t whysz)
{
	size_t len = strlen(body);
	long long now = (long long)time(NULL);
	char *sw = eng_relay_sign(&r->o->keys, id, now, body, len);
	char sig[72], hdr[128];
	struct curl_slist *h = NULL;
	snprintf(hdr, sizeof(hdr), "webhook-id: %s", id);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof(hdr), "webhook-timestamp: %lld", now);
	h = curl_slist_append(h, hdr);
	char *swh = eng_xmalloc(strlen(sw) + sizeof("webhook-signature: "));
	sprintf(swh, "webhook-signature: %s", sw);
	h = curl_slist_append(h, swh);
	free(swh);
	free(sw);
	eng_relay_signature(r->o->keys.legacy, body, len, sig);
	snprintf(hdr, sizeof(hdr), "X-Engagement-Signature: %s", sig);
	h = curl_slist_append(h, hdr);
	for (struct curl_slist *x = r->headers; x; x = x->next)
		h = curl_slist_append(h, x->data);
	eng_buf_reset(&r->answer);
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE, (long)len);
	CURLcode rc = curl_easy_perform(r->curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		snprintf(why, whysz, "%s", curl_easy_strerror(rc));
		return POST_RETRY;
	}
	long status = 0;
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return POST_OK;
	snprintf(why, whysz, "the receiver answered HTTP %ld", status);
	if (status >= 400 && status < 500 && status != 408 && status != 429)
		return POST_REFUSED;
	return POST_RETRY;
}

/* Deliver one batch to the webhook, retrying. ENG_OK when accepted;
 * ENG_ETEMP (unavailable) or ENG_EUNAVAIL (refused) otherwise. */
static enum eng_status deliver_webhook(struct relay *r, const char *id, const char *body,
				       size_t nevents, struct eng_err *err)
{
	char why[256];
	for (int attempt = 1;; attempt++) {
		enum post_result pr = post(r, id, body, why, sizeof(why));
		if (pr == POST_OK)
			return ENG_OK;
		r->retries++;
		eng_log(ENG_WARN, "delivery_failed", ENG_S("error", why),
			ENG_I("attempt", attempt), ENG_I("events", nevents));
		if (!r->o->follow) {
			if (pr == POST_REFUSED)
				return eng_err_set(err, ENG_EUNAVAIL,
						   "the webhook refused the events (%s); "
						   "they stay unpublished",
						   why);
			if (attempt >= r->o->max_attempts)
				return eng_err_set(err, ENG_ETEMP,
						   "the webhook is unavailable (%s) after "
						   "%d attempts; events stay unpublished",
						   why, attempt);
		}
		/* exponential backoff, capped (5 min for a refusal), jittered;
		 * the lease is renewed while waiting */
		double cap = pr == POST_REFUSED ? 300.0 : 60.0;
		double wait = fmin(cap, pow(2.0, fmin(attempt - 1, 10)));
		if (wait_renewing(r, (int64_t)(wait * jitter(r) * 1e6), err))
			return eng_err_prefix(err, "while the webhook was failing");
		if (eng_interrupted)
			return eng_err_set(err, ENG_ETEMP,
					   "interrupted while the webhook was failing");
	}
}

/* ---- one batch ---------------------------------------------------------------- */

/* The event as one JSON line, its payload spliced in as PostgreSQL wrote it
 * (jsonb text is valid JSON; parsing it could lose what jansson cannot
 * hold, such as integers beyond 64 bits). */
static char *with_payload(const json_t *e, const char *payload)
{
	char *head = eng_json_dump(e); /* "{...}" */
	size_t hl = strlen(head), pl = strlen(payload);
	char *line = eng_xmalloc(hl + pl + 16);
	memcpy(line, head, hl - 1);
	memcpy(line + hl - 1, ",\"payload\":", 11);
	memcpy(line + hl + 10, payload, pl);
	memcpy(line + hl + 10 + pl, "}", 2);
	free(head);
	return line;
}

/* {"events":[line,line,...]} */
static char *webhook_body(const char *const *lines, size_t n)
{
	size_t total = sizeof("{\"events\":[]}");
	for (size_t i = 0; i < n; i++)
		total += strlen(lines[i]) + 1;
	char *body = eng_xmalloc(total), *p = body;
	p += sprintf(p, "{\"events\":[");
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(lines[i]);
		if (i)
			*p++ = ',';
		memcpy(p, lines[i], len);
		p += len;
	}
	memcpy(p, "]}", 3);
	return body;
}

/* Publish up to a batch. *n: how many there were. */
static enum eng_status publish_batch(struct relay *r, size_t *n,
				     struct eng_err *err)
{
	struct eng_db *db = r->job->db;
	char limit[16];
	snprintf(limit, sizeof(limit), "%d", r->o->batch);
	const char *p[] = {limit};
	PGresult *res = eng_db_query(db, fetch_sql, 1, p, err);
	if (!res)
		return eng_err_prefix(err, "could not read the outbox");
	int rows = PQntuples(res);
	*n = (size_t)rows;
	if (rows == 0) {
		PQclear(res);
		return ENG_OK;
	}

	char **lines = eng_xcalloc((size_t)rows, sizeof(*lines));
	const char **ids = eng_xcalloc((size_t)rows, sizeof(*ids));
	eng_time *created = eng_xcalloc((size_t)rows, sizeof(*created));
	for (int i = 0; i < rows; i++) {
		char ts[32];
		created[i] = eng_db_epoch_us(PQgetvalue(res, i, 7));
		eng_time_format_ms(created[i], ts);
		json_t *e = json_pack("{s:I, s:s, s:i, s:s, s:s, s:o, s:s}",
				      "event_id", (json_int_t)atoll(PQgetvalue(res, i, 0)),
				      "event_type", PQgetvalue(res, i, 3),
				      "event_version", atoi(PQgetvalue(res, i, 4)),
				      "aggregate_type", PQgetvalue(res, i, 1),
				      "aggregate_id", PQgetvalue(res, i, 2),
				      "correlation_id",
				      PQgetisnull(res, i, 6) ? json_null()
							     : json_string(PQgetvalue(res, i, 6)),
				      "created_at", ts);
		lines[i] = with_payload(e, PQgetvalue(res, i, 5));
		json_decref(e);
		ids[i] = PQgetvalue(res, i, 0);
	}

	enum eng_status st;
	if (r->o->sink) {
		st = r->o->sink->publish(r->o->sink->ctx, (const char *const *)lines,
					 (size_t)rows, err);
	} else {
		/* the same for every retry of these events, in this run or the next */
		char id[96];
		snprintf(id, sizeof(id), "evt_%s_%s", ids[0], ids[rows - 1]);
		char *body = webhook_body((const char *const *)lines, (size_t)rows);
		st = deliver_webhook(r, id, body, (size_t)rows, err);
		free(body);
	}
	if (st == ENG_OK) {
		char *arr = eng_db_text_array(ids, (size_t)rows);
		const char *mp[] = {arr};
		st = eng_db_exec(db, mark_sql, 1, mp, err);
		free(arr);
		if (st)
			eng_err_prefix(err, "published but could not mark %d events "
					    "(they will be published again)", rows);
	}
	if (st == ENG_OK) {
		eng_time now = eng_time_now();
		for (int i = 0; i < rows; i++)
			eng_sample_add(&r->lag, &r->rng, (double)(now - created[i]) / 1000.0);
		r->published += rows;
		r->batches++;
		r->last_id = atoll(ids[rows - 1]);
		eng_log(ENG_DEBUG, "published", ENG_I("events", rows),
			ENG_I("last_id", r->last_id));
	}
	for (int i = 0; i < rows; i++)
		free(lines[i]);
	free(lines);
	free(ids);
	free(created);
	PQclear(res);
	return st;
}

static enum eng_status purge(struct relay *r, struct eng_err *err)
{
	char days[16];
	snprintf(days, sizeof(days), "%d", r->o->purge_days);
	const char *p[] = {days};
	long long n;
	if (eng_db_purge(r->job->db, purge_sql, 1, p, 1000, &n, err))
		return eng_err_prefix(err, "could not purge published events");
	r->purged += n;
	return ENG_OK;
}

/* ---- follow ----------------------------------------------------------------------- */

static enum eng_status listen_(struct relay *r, struct eng_err *err)
{
	return eng_db_exec(r->job->db, "LISTEN " CHANNEL, 0, NULL, err);
}

static int drain_notifies(PGconn *c)
{
	int k = 0;
	PGnotify *n;
	while ((n = PQnotifies(c)) != NULL) {
		PQfreemem(n);
		k++;
	}
	return k;
}

/* Wait for a notification, at most a second. ENG_ETEMP when the
 * connection is gone. */
static enum eng_status wait_notify(struct relay *r, struct eng_err *err)
{
	PGconn *c = r->job->db->conn;
	int sock = PQsocket(c);
	if (sock < 0)
		return eng_err_set(err, ENG_ETEMP, "lost the database connection");
	/* A notification that came with the last fetch is already buffered:
	 * select() would not see it. */
	if (!eng_db_consume(r->job->db))
		return eng_err_set(err, ENG_ETEMP, "lost the database connection");
	if (drain_notifies(c))
		return ENG_OK;
	fd_set rfds;
	FD_ZERO(&rfds);
	FD_SET(sock, &rfds);
	struct timeval tv = {1, 0};
	int rc = select(sock + 1, &rfds, NULL, NULL, &tv);
	if (rc < 0 && errno != EINTR)
		return eng_err_set(err, ENG_EINTERNAL, "select: %s", strerror(errno));
	if (!eng_db_consume(r->job->db))
		return eng_err_set(err, ENG_ETEMP, "lost the database connection");
	drain_notifies(c);
	return ENG_OK;
}

/* After a lost connection: reconnect with backoff and LISTEN again. */
static enum eng_status reconnect(struct relay *r, struct eng_err *err)
{
	for (int attempt = 1; !eng_interrupted; attempt++) {
		double wait = fmin(30.0, pow(2.0, fmin(attempt - 1, 5)));
		eng_log(ENG_WARN, "reconnecting", ENG_I("attempt", attempt),
			ENG_D("wait_s", wait));
		nap((int64_t)(wait * jitter(r) * 1e6));
		if (eng_interrupted)
			break;
		/* through the whole list of hosts (after a failover, to
		 * whichever is the primary now); LISTEN again there (a LISTEN
		 * is the session's: the new server knows nothing of it), and
		 * renew the lease at once: the outage may have lasted most of
		 * it (a lost lease ends the run). */
		struct eng_err e = ENG_ERR_INIT;
		if (eng_db_reconnect(r->job->db, &e) == ENG_OK && listen_(r, err) == ENG_OK) {
			if (eng_job_renew_lease(r->job, err))
				return err->status;
			r->reconnects++;
			eng_log(ENG_INFO, "reconnected", ENG_I("attempt", attempt));
			return ENG_OK;
		}
	}
	return eng_err_set(err, ENG_ETEMP, "interrupted while reconnecting");
}

/* ---- the run ---------------------------------------------------------------------- */

static void summarize(struct relay *r)
{
	json_t *s = r->job->summary;
	json_object_set_new(s, "sink", json_string(r->o->sink ? r->o->sink->name : "webhook"));
	json_object_set_new(s, "published", json_integer(r->published));
	json_object_set_new(s, "batches", json_integer(r->batches));
	json_object_set_new(s, "retries", json_integer(r->retries));
	json_object_set_new(s, "purged", json_integer(r->purged));
	json_object_set_new(s, "reconnects", json_integer(r->reconnects));
	json_object_set_new(s, "last_id", json_integer(r->last_id));
	json_object_set_new(s, "lag_ms", eng_sample_json(&r->lag));
}

/* The webhook's handle. */
static enum eng_status setup_webhook(struct relay *r, struct eng_err *err)
{
	r->curl = curl_easy_init();
	if (!r->curl)
		return eng_err_set(err, ENG_EINTERNAL, "curl_easy_init failed");
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	r->headers = curl_slist_append(r->headers, "Expect:");
	curl_easy_setopt(r->curl, CURLOPT_URL, r->o->webhook);
	curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &r->answer);
	eng_curl_defaults(r->curl, r->o->timeout_ms, 5000L,
			  "engagement-outbox-relay/" ENG_VERSION);
	return ENG_OK;
}

/* Stopped by a signal: a service told to stop (--follow), or a run cut
 * short. */
static enum eng_status stopped(struct relay *r, struct eng_err *err)
{
	if (!r->o->follow)
		return eng_err_set(err, ENG_ETEMP, "interrupted by signal %d",
				   (int)eng_interrupted);
	eng_err_set(err, ENG_ETEMP, "stopped by a signal");
	return eng_err_event(err, "stopped");
}

/* Publish until nothing is left (or, with --follow, until stopped). */
static enum eng_status relay_loop(struct relay *r, struct eng_err *err)
{
	for (;;) {
		if (eng_interrupted)
			return stopped(r, err);
		size_t n = 0;
		enum eng_status st = eng_job_keep_lease(r->job, err);
		if (st == ENG_OK)
			st = publish_batch(r, &n, err);
		if (st == ENG_OK && n == 0) {
			if (!r->o->follow)
				return ENG_OK;
			if (eng_every_due(&r->purge_every, eng_mono_us()))
				st = purge(r, err);
			if (st == ENG_OK)
				st = wait_notify(r, err);
		}
		if (st == ENG_OK)
			continue;
		if (st == ENG_ETEMP && eng_interrupted && r->o->follow &&
		    eng_db_alive(r->job->db))
			return stopped(r, err); /* while the webhook was failing */
		/* Sink trouble ends the run (events stay unpublished); with
		 * --follow a lost database connection is reconnected. */
		if (r->o->follow && !eng_db_alive(r->job->db) &&
		    (st = reconnect(r, err)) == ENG_OK)
			continue;
		return st;
	}
}

enum eng_status eng_relay_run(const struct eng_job *job, const struct eng_relay_opts *o,
			      struct eng_err *err)
{
	struct relay r;
	memset(&r, 0, sizeof(r));
	r.job = job;
	r.o = o;
	eng_rng_seed(&r.rng);
	eng_buf_init(&r.answer, 64 * 1024);
	eng_sample_init(&r.lag, LAG_SAMPLE);
	json_object_set_new(job->summary, "follow", json_boolean(o->follow));

	enum eng_status st = o->sink ? ENG_OK : setup_webhook(&r, err);
	r.purge_every = (struct eng_every)ENG_EVERY(3600 * ENG_USEC_PER_SEC);
	if (st == ENG_OK && eng_every_due(&r.purge_every, eng_mono_us()))
		st = purge(&r, err);
	if (st == ENG_OK && o->follow)
		st = listen_(&r, err);
	if (st == ENG_OK)
		st = relay_loop(&r, err);
	summarize(&r);
	eng_log(ENG_INFO, "relay_finished", ENG_I("published", r.published),
		ENG_I("last_id", r.last_id));
	if (r.curl)
		curl_easy_cleanup(r.curl);
	curl_slist_free_all(r.headers);
	eng_buf_release(&r.answer);
	eng_sample_release(&r.lag);
	return st;
}

enum eng_status eng_relay_check(struct eng_relay_opts *o, const char *url,
				const char *secret_file, struct eng_err *err)
{
	char *text = NULL;
	if (eng_http_check_url(url, "--webhook", o->webhook, sizeof(o->webhook), err) ||
	    eng_http_read_secret(secret_file, "--secret-file", &text, err))
		return eng_err_event(err, "bad_configuration");
	enum eng_status st = eng_relay_keys_parse(text, &o->keys, err);
	eng_http_wipe(text);
	if (st)
		return eng_err_event(err, "bad_configuration");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return eng_err_set(err, ENG_EINTERNAL, "curl_global_init failed");
	o->curl_ready = true;
	return ENG_OK;
}

void eng_relay_opts_release(struct eng_relay_opts *o)
{
	eng_relay_keys_release(&o->keys);
	if (o->curl_ready)
		curl_global_cleanup();
	o->curl_ready = false;
}
