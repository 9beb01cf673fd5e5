/* The HTTP side: routing, the imitation of the send endpoint, record, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "standin.h"

enum route {
	ROUTE_NOT_FOUND,
	ROUTE_MESSAGES,
	ROUTE_STATS,
	ROUTE_WEBHOOK,
	ROUTE_INBOUND, /* POST /_standin/inbound */
	ROUTE_RAW,     /* POST /_standin/raw */
	ROUTE_TEMPLATE,        /* POST /_standin/template */
	ROUTE_LIMITS,          /* POST /_standin/limits */
	ROUTE_RESET,           /* POST /_standin/reset */
	ROUTE_ACCOUNT_WEBHOOK, /* POST /_standin/account_webhook */
	ROUTE_ACCOUNT,         /* GET /_standin/account */
};

/* Control routes: neither counted nor recorded. */
static bool is_control(enum route r)
{
	return r == ROUTE_STATS || r == ROUTE_INBOUND || r == ROUTE_RAW ||
	       r == ROUTE_TEMPLATE || r == ROUTE_LIMITS || r == ROUTE_RESET ||
	       r == ROUTE_ACCOUNT_WEBHOOK || r == ROUTE_ACCOUNT;
}
enum auth { AUTH_OK, AUTH_MISSING, AUTH_INVALID };

static const char *const auth_names[] = {"ok", "missing", "invalid"};

/* One request, from its first callback to its completion. */
struct sa_req {
	enum route route;
	char *method;
	char *path;
	char version[16];   /* "v23.0" for ROUTE_MESSAGES */
	const char *number; /* the phone number id, inside path */
	size_t number_len;
	struct timespec wall; /* when it arrived (CLOCK_REALTIME) */
	struct timespec t0;   /* same, CLOCK_MONOTONIC */
	char *body;
	size_t len, cap;
	unsigned long long body_bytes; /* received, kept or not */
	bool too_large;
	bool answered; /* counted and recorded */
	enum auth auth;
	/* on the webhook route: X-Engagement-Signature and the Standard
	 * Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) */
	char *signature, *sw_id, *sw_timestamp, *sw_signature;
};

/* What to answer. */
struct answer {
	unsigned status; /* 0: close the connection without answering */
	const char *ctype;
	char *body; /* malloc'd */
	size_t len;
	long code; /* error.code, 0 for none */
	char *wamid;
	char fbtrace[24];
	const char *allow; /* Allow header for 405 */
	bool www_auth;     /* WWW-Authenticate header for 401 */
	unsigned nap_ms;   /* extra wait before answering (slow recipients) */
};

static const char json_ctype[] = "application/json; charset=UTF-8";

/* ---- routing ---- */

/* "/{version}/{digits}/messages" */
static bool parse_messages_path(const char *url, struct sa_req *r)
{
	if (url[0] != '/')
		return false;
	const char *v = url + 1;
	const char *s1 = strchr(v, '/');
	if (!s1)
		return false;
	const char *id = s1 + 1;
	const char *s2 = strchr(id, '/');
	if (!s2 || strcmp(s2, "/messages") != 0)
		return false;
	size_t vn = (size_t)(s1 - v), idn = (size_t)(s2 - id);
	if (vn >= sizeof r->version || !sa_is_version(v, vn) || !sa_is_digits(id, idn))
		return false;
	memcpy(r->version, v, vn);
	r->version[vn] = '\0';
	r->number = r->path + (id - url);
	r->number_len = idn;
	return true;
}

static enum auth check_auth(const struct sa_server *srv, struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h)
		return AUTH_MISSING;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return AUTH_INVALID;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strlen(h);
	while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	return sa_secret_equal(srv->cfg.token, srv->cfg.token_len, h, n) ? AUTH_OK
									 : AUTH_INVALID;
}

static bool is_json_ctype(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	static const char want[] = "application/json";
	size_t n = sizeof want - 1;
	if (strncasecmp(ct, want, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* ---- answers ---- */

static void set_json(struct answer *a, unsigned status, json_t *j)
{
	a->status = status;
	a->ctype = json_ctype;
	a->body = json_dumps(j, JSON_COMPACT);
	a->len = a->body ? strlen(a->body) : 0;
	json_decref(j);
}

static void set_text(struct answer *a, unsigned status, const char *ctype,
		     const char *text)
{
	a->status = status;
	a->ctype = ctype;
	a->body = strdup(text);
	a->len = a->body ? strlen(text) : 0;
}

/* A Graph error body; details NULL leaves out error_data. */
static void set_error(struct answer *a, unsigned status, const char *type,
		      long code, long subcode, const char *message,
		      const char *details)
{
	json_t *e = json_object();
	/* The message may quote the path: keep it valid UTF-8. */
	json_object_set_new(e, "message", sa_json_lossy_string(message, strlen(message)));
	json_object_set_new(e, "type", json_string(type));
	json_object_set_new(e, "code", json_integer(code));
	if (details)
		json_object_set_new(e, "error_data",
				    json_pack("{s:s, s:s}", "messaging_product",
					      "whatsapp", "details", details));
	json_object_set_new(e, "error_subcode", json_integer(subcode));
	json_object_set_new(e, "fbtrace_id", json_string(a->fbtrace));
	a->code = code;
	set_json(a, status, json_pack("{s:o}", "error", e));
}

static void set_invalid(struct answer *a, unsigned status, const char *details)
{
	set_error(a, status, "OAuthException", 100, 2494010,
		  "(#100) Invalid parameter", details);
}

static void set_no_object(struct answer *a, unsigned status,
			  const char *method, const char *object)
{
	char msg[512];
	char verb[16];
	size_t i = 0;
	for (; method[i] && i + 1 < sizeof verb; i++)
		verb[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32
								      : method[i]);
	verb[i] = '\0';
	snprintf(msg, sizeof msg,
		 "Unsupported %s request. Object with ID '%.200s' does not exist, "
		 "cannot be loaded due to missing permissions, or does not "
		 "support this operation. Please read the Graph API documentation "
		 "at https://developers.facebook.com/docs/graph-api",
		 verb, object);
	set_error(a, status, "GraphMethodException", 100, 33, msg, NULL);
}

static void set_success(struct answer *a, const char *to, bool with_messages)
{
	const char *wa_id = to[0] == '+' ? to + 1 : to;
	if (with_messages)
		a->wamid = sa_wamid(wa_id);
	json_t *j = json_pack("{s:s, s:[{s:s, s:s}]}", "messaging_product",
			      "whatsapp", "contacts", "input", to, "wa_id", wa_id);
	if (with_messages && a->wamid)
		json_object_set_new(j, "messages",
				    json_pack("[{s:s, s:s}]", "id", a->wamid,
					      "message_status", "accepted"));
	set_json(a, 200, j);
}

/* ---- the chosen behaviours, by the last three digits of `to` ---- */

enum act {
	ACT_ERROR,
	ACT_PLAIN_500,
	ACT_HTML_200,
	ACT_SLOW,
	ACT_DROP,
	ACT_NO_MESSAGES,
	ACT_FIRST_FAIL,
};

static const struct choice {
	const char *suffix;
	enum act act;
	unsigned status;
	long code;
	long subcode;
	const char *title;
	const char *details;
} choices[] = {
	{"901", ACT_ERROR, 400, 131026, 2494010, "Message undeliverable",
	 "Unable to deliver message. Reasons can include: the recipient phone "
	 "number is not a WhatsApp phone number; the recipient has not accepted "
	 "the new Terms of Service; the recipient uses an old WhatsApp version."},
	{"902", ACT_ERROR, 429, 130429, 2494055, "Rate limit hit",
	 "Cloud API message throughput has been reached."},
	{"903", ACT_ERROR, 400, 131056, 2494010,
	 "(Business Account, Consumer Account) pair rate limit hit",
	 "Too many messages sent from the sender phone number to the same "
	 "recipient phone number in a short period of time."},
	{"904", ACT_ERROR, 400, 131050, 2494010,
	 "User has stopped marketing messages",
	 "Unable to deliver the message. This recipient has chosen to stop "
	 "receiving marketing messages on WhatsApp from your business."},
	{"905", ACT_ERROR, 404, 132001, 2494010,
	 "Template name does not exist in the translation", NULL},
	{"906", ACT_PLAIN_500, 500, 0, 0, NULL, NULL},
	{"907", ACT_HTML_200, 200, 0, 0, NULL, NULL},
	{"908", ACT_SLOW, 200, 0, 0, NULL, NULL},
	{"909", ACT_DROP, 0, 0, 0, NULL, NULL},
	{"910", ACT_ERROR, 400, 131000, 2494010, "Something went wrong",
	 "Message failed to send due to an unknown error."},
	{"911", ACT_ERROR, 400, 131049, 2494010,
	 "This message was not delivered to maintain healthy ecosystem engagement.",
	 "In order to maintain a healthy ecosystem engagement, the message "
	 "failed to be delivered."},
	{"912", ACT_NO_MESSAGES, 200, 0, 0, NULL, NULL},
	{"913", ACT_ERROR, 403, 131031, 2494010, "Business Account locked",
	 "The WhatsApp Business Account associated with the app has been "
	 "restricted or disabled for violating a platform policy."},
	{"914", ACT_ERROR, 400, 987654, 2494010, "Stand-in error nobody knows",
	 "wa-standin: an error code no client should know (suffix 914)."},
	{"915", ACT_ERROR, 503, 2, 2494010, "Service temporarily unavailable",
	 "The service is temporarily unavailable; try again later."},
	{"916", ACT_ERROR, 400, 131057, 2494010,
	 "Business Account is in maintenance mode",
	 "The WhatsApp Business Account is in maintenance mode; try again in "
	 "about a minute."},
	{"917", ACT_ERROR, 400, 132015, 2494010, "Template is Paused",
	 "The template is paused due to low quality, so it cannot be sent in a "
	 "template message."},
	{"920", ACT_FIRST_FAIL, 500, 1, 2494010, "An unknown error occurred",
	 "Invalid request or possible server error (wa-standin: first attempt "
	 "for this recipient)."},
};

static const struct choice *choose(const char *to)
{
	size_t n = strlen(to);
	if (n < 3 || !sa_is_digits(to + n - 3, 3))
		return NULL;
	for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++)
		if (memcmp(to + n - 3, choices[i].suffix, 3) == 0)
			return &choices[i];
	return NULL;
}

static void set_choice_error(struct answer *a, const struct choice *c,
			     const json_t *body)
{
	char msg[256], details[256];
	snprintf(msg, sizeof msg, "(#%ld) %s", c->code, c->title);
	const char *d = c->details;
	if (!d) {
		const json_t *tpl = json_object_get(body, "template");
		snprintf(details, sizeof details,
			 "template name (%.100s) does not exist in %.20s",
			 json_string_value(json_object_get(tpl, "name")),
			 json_string_value(json_object_get(
				 json_object_get(tpl, "language"), "code")));
		d = details;
	}
	set_error(a, c->status, "OAuthException", c->code, c->subcode, msg, d);
}

/* The chosen misbehaviour c, or success. */
static void answer_choice(struct sa_server *srv, const json_t *body,
			  const char *to, const struct choice *c, struct answer *a)
{
	if (!c) {
		set_success(a, to, true);
		return;
	}
	switch (c->act) {
	case ACT_ERROR:
		set_choice_error(a, c, body);
		break;
	case ACT_PLAIN_500:
		set_text(a, 500, "text/plain; charset=UTF-8", "Internal Server Error");
		break;
	case ACT_HTML_200:
		set_text(a, 200, "text/html; charset=UTF-8", "<html>not json</html>");
		break;
	case ACT_SLOW:
		a->nap_ms = srv->cfg.slow_ms;
		set_success(a, to, true);
		break;
	case ACT_DROP:
		a->status = 0;
		break;
	case ACT_NO_MESSAGES:
		set_success(a, to, false);
		break;
	case ACT_FIRST_FAIL: {
		pthread_mutex_lock(&srv->mu);
		bool first = sa_strset_add(&srv->failed_once, to);
		pthread_mutex_unlock(&srv->mu);
		if (first)
			set_choice_error(a, c, body);
		else
			set_success(a, to, true);
		break;
	}
	}
}

/*
 * A valid send request: refused by Meta's account rules, else success or
 * the chosen misbehaviour. The rules' check and what an accepted message
 * leaves behind (reached, pair interval) happen under one lock.
 */
static void answer_send(struct sa_server *srv, const json_t *body,
			struct answer *a)
{
	const char *to = json_string_value(json_object_get(body, "to"));
	struct sa_refusal ref;
	sa_account_lock(srv);
	if (sa_account_refuse(srv, body, &ref)) {
		char msg[256];
		snprintf(msg, sizeof msg, "(#%ld) %s", ref.code, ref.title);
		set_error(a, ref.status, "OAuthException", ref.code, ref.subcode, msg,
			  ref.details);
	} else {
		answer_choice(srv, body, to, choose(to), a);
	}
	sa_account_count(srv, body, a->code, a->status == 200 && a->wamid);
	sa_account_unlock(srv);
}

static void answer_messages(struct sa_server *srv, struct MHD_Connection *conn,
			    struct sa_req *r, enum auth auth,
			    const json_t *body, const json_error_t *jerr,
			    struct answer *a)
{
	char details[512];
	if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
		a->allow = "POST";
		set_error(a, 405, "OAuthException", 100, 2494010,
			  "(#100) Unsupported request method", "only POST is allowed here");
		return;
	}
	if (auth != AUTH_OK) {
		a->www_auth = true;
		set_error(a, 401, "OAuthException", 190, 467,
			  "Invalid OAuth access token - Cannot parse access token",
			  NULL);
		return;
	}
	if (r->too_large) {
		snprintf(details, sizeof details,
			 "the request body is larger than %d bytes", SA_MAX_BODY);
		set_invalid(a, 413, details);
		return;
	}
	const char *want = srv->cfg.phone_number_id;
	if (want && (strlen(want) != r->number_len ||
		     memcmp(want, r->number, r->number_len) != 0)) {
		char id[64];
		snprintf(id, sizeof id, "%.*s", (int)r->number_len, r->number);
		set_no_object(a, 400, r->method, id);
		return;
	}
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!is_json_ctype(ct)) {
		set_invalid(a, 400, "Content-Type must be application/json");
		return;
	}
	if (r->len == 0) {
		set_invalid(a, 400, "the request body is empty");
		return;
	}
	if (!body) {
		snprintf(details, sizeof details,
			 "the request body is not valid JSON: %s (line %d, column %d)",
			 jerr->text, jerr->line, jerr->column);
		set_invalid(a, 400, details);
		return;
	}
	if (!sa_check_message(body, details, sizeof details)) {
		set_invalid(a, 400, details);
		return;
	}
	answer_send(srv, body, a);
}

static void answer_stats(struct sa_server *srv, struct answer *a)
{
	json_t *by_status = json_object(), *by_code = json_object();
	pthread_mutex_lock(&srv->mu);
	uint64_t requests = srv->requests, in_progress = srv->begun - srv->requests;
	for (unsigned s = 0; s < SA_MAX_STATUS; s++) {
		if (!srv->by_status[s])
			continue;
		char k[8];
		snprintf(k, sizeof k, "%u", s);
		json_object_set_new(by_status, k, json_integer((json_int_t)srv->by_status[s]));
	}
	for (size_t i = 0; i < srv->n_codes; i++) {
		char k[24];
		snprintf(k, sizeof k, "%ld", srv->by_code[i].code);
		json_object_set_new(by_code, k, json_integer((json_int_t)srv->by_code[i].n));
	}
	pthread_mutex_unlock(&srv->mu);
	json_t *j = json_pack("{s:I, s:I, s:o, s:o}", "requests", (json_int_t)requests,
			      "in_progress", (json_int_t)in_progress,
			      "by_status", by_status, "by_code", by_code);
	sa_hooks_stats(srv, j);
	set_json(a, 200, j);
}

/* ---- record and stats ---- */

static void count(struct sa_server *srv, const struct answer *a)
{
	srv->requests++;
	if (a->status < SA_MAX_STATUS)
		srv->by_status[a->status]++;
	if (!a->code)
		return;
	for (size_t i = 0; i < srv->n_codes; i++) {
		if (srv->by_code[i].code == a->code) {
			srv->by_code[i].n++;
			return;
		}
	}
	if (srv->n_codes < SA_MAX_CODES)
		srv->by_code[srv->n_codes++] = (struct sa_code_count){a->code, 1};
}

/* Write line ("{...}") with "seq" spliced in front; caller holds srv->mu. */
static void append_line(struct sa_server *srv, uint64_t seq, const char *line)
{
	char head[40];
	int hn = snprintf(head, sizeof head, "{\"seq\":%llu,", (unsigned long long)seq);
	size_t ln = strlen(line);
	if (ln < 2)
		return;
	if (strcmp(line, "{}") == 0) /* nothing to follow the seq */
		hn--;
	char *out = malloc((size_t)hn + ln + 1);
	if (!out)
		return;
	memcpy(out, head, (size_t)hn);
	memcpy(out + hn, line + 1, ln - 1);
	out[(size_t)hn + ln - 1] = '\n';
	if (!sa_write_all(srv->record_fd, out, (size_t)hn + ln))
		fprintf(stderr, "wa-standin: cannot append to the record file\n");
	free(out);
}

/*
 * Count the request and append its record line. Done before the answer
 * goes out, so a client that has its answer also finds it counted.
 */
static void account(struct sa_server *srv, struct sa_req *r, enum auth auth,
		    const json_t *body, const struct answer *a, bool aborted)
{
	r->answered = true;
	char *line = NULL;
	if (srv->record_fd >= 0) {
		char ts[32];
		sa_rfc3339_ms(&r->wall, ts);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* method and path may hold any bytes: keep them valid UTF-8. */
		json_t *rec = json_pack("{s:s, s:o, s:o, s:s, s:i, s:o}", "ts", ts,
					"method",
					sa_json_lossy_string(r->method, strlen(r->method)),
					"path", sa_json_lossy_string(r->path, strlen(r->path)),
					"auth", auth_names[auth], "status", (int)a->status,
					"error_code",
					a->code ? json_integer(a->code) : json_null());
		if (!rec)
			rec = json_object();
		sa_extract(body, rec);
		json_object_set_new(rec, "wamid",
				    a->wamid && a->status == 200 ? json_string(a->wamid)
								 : json_null());
		json_object_set_new(rec, "duration_ms",
				    json_integer(sa_ms_between(&r->t0, &now)));
		if (aborted)
			json_object_set_new(rec, "aborted", json_true());
		json_object_set_new(rec, "body_bytes", json_integer((json_int_t)r->body_bytes));
		if (r->route == ROUTE_WEBHOOK) { /* what was signed, byte for byte */
			json_object_set_new(rec, "signature", r->signature
					    ? json_string(r->signature) : json_null());
			json_object_set_new(rec, "webhook_id", r->sw_id
					    ? json_string(r->sw_id) : json_null());
			json_object_set_new(rec, "webhook_timestamp", r->sw_timestamp
					    ? json_string(r->sw_timestamp) : json_null());
			json_object_set_new(rec, "webhook_signature", r->sw_signature
					    ? json_string(r->sw_signature) : json_null());
			json_object_set_new(rec, "raw_body",
					    sa_json_lossy_string(r->body ? r->body : "", r->len));
		}
		json_t *b;
		if (body)
			b = json_copy((json_t *)body);
		else if (r->len > 0)
			b = sa_json_lossy_string(r->body, r->len);
		else
			b = json_null();
		json_object_set_new(rec, "body", b);
		line = json_dumps(rec, JSON_COMPACT);
		json_decref(rec);
	}

	pthread_mutex_lock(&srv->mu);
	count(srv, a);
	uint64_t seq = ++srv->seq;
	if (line)
		append_line(srv, seq, line);
	pthread_mutex_unlock(&srv->mu);
	free(line);
}

void sa_record(struct sa_server *srv, json_t *rec)
{
	if (srv->record_fd < 0 || !rec) {
		json_decref(rec);
		return;
	}
	char *line = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	if (!line)
		return;
	pthread_mutex_lock(&srv->mu);
	append_line(srv, ++srv->seq, line);
	pthread_mutex_unlock(&srv->mu);
	free(line);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result send_answer(struct MHD_Connection *conn,
				   const struct sa_req *r, const struct answer *a)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		a->len, a->body ? a->body : (char *)"", MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->ctype);
	if (r->route == ROUTE_MESSAGES) {
		MHD_add_response_header(resp, "facebook-api-version", r->version);
		MHD_add_response_header(resp, "x-fb-trace-id", a->fbtrace);
	}
	if (a->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, a->allow);
	if (a->www_auth)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"OAuth \"Facebook Platform\" \"invalid_token\" "
					"\"Invalid OAuth access token - Cannot parse access token\"");
	enum MHD_Result ret = MHD_queue_response(conn, a->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result finish(struct sa_server *srv, struct MHD_Connection *conn,
			      struct sa_req *r)
{
	struct answer a = {.ctype = json_ctype};
	sa_fbtrace_id(a.fbtrace);

	if (r->route == ROUTE_INBOUND || r->route == ROUTE_RAW ||
	    r->route == ROUTE_TEMPLATE || r->route == ROUTE_LIMITS ||
	    r->route == ROUTE_RESET || r->route == ROUTE_ACCOUNT_WEBHOOK) {
		r->answered = true; /* control requests are not counted */
		if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
			a.allow = "POST";
			set_json(&a, 405, json_pack("{s:s}", "error", "only POST is allowed here"));
		} else if (r->too_large) {
			set_json(&a, 413, json_pack("{s:s}", "error",
						    "the request is larger than 64 KiB"));
		} else {
			json_t *req = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
			unsigned st = 500;
			json_t *ans;
			switch (r->route) {
			case ROUTE_INBOUND:
				ans = sa_hooks_inbound(srv, req, &st);
				break;
			case ROUTE_RAW:
				ans = sa_hooks_raw(srv, req, &st);
				break;
			case ROUTE_TEMPLATE:
				ans = sa_account_template(srv, req, &st);
				break;
			case ROUTE_LIMITS:
				ans = sa_account_limits(srv, req, &st);
				break;
			case ROUTE_RESET:
				ans = sa_account_reset(srv, req, &st);
				break;
			default:
				ans = sa_hooks_account(srv, req, &st);
				break;
			}
			json_decref(req);
			if (!ans)
				ans = json_pack("{s:s}", "error", "out of memory");
			set_json(&a, st, ans);
		}
		enum MHD_Result ret = send_answer(conn, r, &a);
		free(a.body);
		return ret;
	}

	if (r->route == ROUTE_ACCOUNT) {
		r->answered = true; /* control requests are not counted */
		if (strcmp(r->method, MHD_HTTP_METHOD_GET) == 0) {
			set_json(&a, 200, sa_account_get(srv));
		} else {
			a.allow = "GET";
			set_json(&a, 405, json_pack("{s:s}", "error", "only GET is allowed here"));
		}
		enum MHD_Result ret = send_answer(conn, r, &a);
		free(a.body);
		return ret;
	}

	if (r->route == ROUTE_STATS) {
		r->answered = true; /* control requests are not counted */
		if (strcmp(r->method, MHD_HTTP_METHOD_GET) == 0) {
			answer_stats(srv, &a);
		} else {
			a.allow = "GET";
			set_error(&a, 405, "OAuthException", 100, 2494010,
				  "(#100) Unsupported request method",
				  "only GET is allowed here");
		}
		enum MHD_Result ret = send_answer(conn, r, &a);
		free(a.body);
		return ret;
	}

	enum auth auth = r->auth;
	json_error_t jerr = {0};
	json_t *body = NULL;
	if (r->len > 0 && !r->too_large)
		body = json_loadb(r->body, r->len, JSON_DECODE_ANY, &jerr);

	if (r->route == ROUTE_MESSAGES) {
		answer_messages(srv, conn, r, auth, body, &jerr, &a);
	} else if (r->route == ROUTE_WEBHOOK) {
		/* A receiver for outbox-relay: records, answers as configured. */
		if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
			a.allow = "POST";
			set_error(&a, 405, "OAuthException", 100, 2494010,
				  "(#100) Unsupported request method",
				  "only POST is allowed here");
		} else if (r->too_large) {
			set_error(&a, 413, "OAuthException", 100, 2494010,
				  "(#100) Request entity too large",
				  "the webhook body is larger than 64 KiB");
		} else if (!json_is_array(json_object_get(body, "events"))) {
			/* like any real receiver: a body it cannot read is refused */
			set_error(&a, 400, "OAuthException", 100, 2494010,
				  "(#100) Invalid parameter",
				  "the webhook body is not {\"events\": [...]}");
		} else {
			pthread_mutex_lock(&srv->mu);
			uint64_t nth = ++srv->webhook_seen;
			pthread_mutex_unlock(&srv->mu);
			unsigned st = nth <= srv->cfg.webhook_fail ? 503
								 : srv->cfg.webhook_status;
			set_json(&a, st, json_pack("{s:b}", "accepted", st >= 200 && st < 300));
		}
	} else {
		set_no_object(&a, 404, r->method, r->path);
	}

	bool whole = sa_nap(srv, srv->cfg.latency_ms) && sa_nap(srv, a.nap_ms);
	if (!whole)
		a.status = 0; /* stopping: hang up */

	account(srv, r, auth, body, &a, false);
	if (r->route == ROUTE_MESSAGES && a.status == 200 && a.wamid)
		sa_hooks_after_send(srv, body, a.wamid, r->number, r->number_len);
	json_decref(body);
	enum MHD_Result ret = a.status ? send_answer(conn, r, &a) : MHD_NO;
	free(a.body);
	free(a.wamid);
	return ret;
}

static void free_req(struct sa_req *r)
{
	free(r->method);
	free(r->path);
	free(r->body);
	free(r->signature);
	free(r->sw_id);
	free(r->sw_timestamp);
	free(r->sw_signature);
	free(r);
}

static bool append_body(struct sa_req *r, const char *data, size_t n)
{
	r->body_bytes += n;
	if (r->too_large)
		return true;
	if (r->len + n > SA_MAX_BODY) {
		r->too_large = true;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return true;
	}
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		while (cap < r->len + n)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return false;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return true;
}

/* A declared body too big, from a client that waits for 100 Continue. */
static bool refuse_early(struct MHD_Connection *conn, struct sa_req *r)
{
	const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_EXPECT);
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!expect || strcasecmp(expect, "100-continue") != 0 || !cl)
		return false;
	char *end;
	unsigned long long n = strtoull(cl, &end, 10);
	if (end == cl || n <= SA_MAX_BODY)
		return false;
	r->too_large = true;
	r->body_bytes = n;
	return true;
}

/* A request header's value as a new string, or NULL when absent. */
static char *header_copy(struct MHD_Connection *conn, const char *name)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
	return v ? strdup(v) : NULL;
}

enum MHD_Result sa_handle(void *cls, struct MHD_Connection *conn,
			  const char *url, const char *method,
			  const char *version, const char *upload_data,
			  size_t *upload_data_size, void **req_cls)
{
	struct sa_server *srv = cls;
	struct sa_req *r = *req_cls;
	(void)version;

	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->method = strdup(method);
		r->path = strdup(url);
		if (!r->method || !r->path) {
			free_req(r);
			return MHD_NO;
		}
		clock_gettime(CLOCK_REALTIME, &r->wall);
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		if (strcmp(url, "/_standin/stats") == 0)
			r->route = ROUTE_STATS;
		else if (strcmp(url, "/_standin/inbound") == 0)
			r->route = ROUTE_INBOUND;
		else if (strcmp(url, "/_standin/raw") == 0)
			r->route = ROUTE_RAW;
		else if (strcmp(url, "/_standin/template") == 0)
			r->route = ROUTE_TEMPLATE;
		else if (strcmp(url, "/_standin/limits") == 0)
			r->route = ROUTE_LIMITS;
		else if (strcmp(url, "/_standin/reset") == 0)
			r->route = ROUTE_RESET;
		else if (strcmp(url, "/_standin/account_webhook") == 0)
			r->route = ROUTE_ACCOUNT_WEBHOOK;
		else if (strcmp(url, "/_standin/account") == 0)
			r->route = ROUTE_ACCOUNT;
		else if (parse_messages_path(url, r))
			r->route = ROUTE_MESSAGES;
		else if (strncmp(url, "/_webhook", 9) == 0 &&
			 (url[9] == '\0' || url[9] == '/')) {
			r->route = ROUTE_WEBHOOK;
			r->signature = header_copy(conn, "X-Engagement-Signature");
			r->sw_id = header_copy(conn, "webhook-id");
			r->sw_timestamp = header_copy(conn, "webhook-timestamp");
			r->sw_signature = header_copy(conn, "webhook-signature");
		}
		r->auth = check_auth(srv, conn);
		if (!is_control(r->route)) { /* recorded once it is answered */
			pthread_mutex_lock(&srv->mu);
			srv->begun++;
			pthread_mutex_unlock(&srv->mu);
		}
		*req_cls = r;
		if (r->route == ROUTE_MESSAGES &&
		    strcmp(method, MHD_HTTP_METHOD_POST) == 0 && refuse_early(conn, r))
			return finish(srv, conn, r);
		return MHD_YES;
	}
	if (r->answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!append_body(r, upload_data, *upload_data_size))
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return finish(srv, conn, r);
}

void sa_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
		  enum MHD_RequestTerminationCode toe)
{
	struct sa_server *srv = cls;
	struct sa_req *r = *req_cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (!r->answered && !is_control(r->route)) {
		/* The client went away before the whole request arrived. */
		struct answer a = {.status = 0};
		account(srv, r, r->auth, NULL, &a, true);
	}
	free_req(r);
	*req_cls = NULL;
}
