#include "eng_history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_mask.h"
#include "eng_time.h"

enum eng_status eng_history_fetch(struct eng_db *db, const struct eng_user_ref *who,
				  int limit, json_t **doc, struct eng_err *err)
{
	*doc = NULL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = {who->user_id[0] ? who->user_id : NULL,
			   who->user_id[0] ? NULL : who->phone, limit > 0 ? lim : NULL};
	bool own = !eng_db_in_transaction(db);
	if (own && eng_db_begin(db, err))
		return err->status;
	/* the document's instants in UTC, whatever the server's TimeZone (for
	 * this transaction only: nothing of the session is relied on) */
	PGresult *r = NULL;
	if (eng_db_exec(db, "SELECT set_config('TimeZone', 'UTC', true)", 0, NULL, err) == ENG_OK)
		r = eng_db_query(db, "SELECT engagement.person_history($1::uuid, $2, $3::integer)",
				 3, p, err);
	if (own)
		eng_db_rollback(db); /* it only read */
	if (!r)
		return err->status;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		eng_users_not_found(who, err);
		return err->status;
	}
	json_error_t je;
	*doc = json_loads(PQgetvalue(r, 0, 0), 0, &je);
	PQclear(r);
	if (!*doc)
		return eng_err_set(err, ENG_EINTERNAL, "the person's history did not parse: %s",
				   je.text);
	return ENG_OK;
}

/* ---- masking ------------------------------------------------------------------ */

json_t *eng_history_mask_param(const json_t *v)
{
	char num[64];
	const char *s;
	if (json_is_string(v)) {
		s = json_string_value(v);
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = num;
	} else if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		s = num;
	} else {
		return NULL;
	}
	size_t n = strlen(s), first = n ? eng_utf8_seq((const unsigned char *)s, n) : 0;
	char out[16];
	snprintf(out, sizeof(out), "%.*s***", (int)(first ? first : n ? 1 : 0), s);
	return json_string(out);
}

/* Every value under a message's params. */
static json_t *mask_params(json_t *v)
{
	size_t i;
	const char *k;
	json_t *x, *m;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			if ((m = mask_params(x)) != NULL)
				json_object_set_new(v, k, m);
		return NULL;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if ((m = mask_params(x)) != NULL)
				json_array_set_new(v, i, m);
		return NULL;
	}
	return eng_history_mask_param(v);
}

/* A string of the document masked: a phone number as a phone, any other
 * string scrubbed of the numbers in it; NULL for anything else. */
static json_t *scrub(json_t *v, const char *key)
{
	size_t i;
	const char *k;
	json_t *x, *m;
	if (json_is_string(v)) {
		if (key && strcmp(key, "phone") == 0) {
			char masked[64];
			eng_mask_phone(json_string_value(v), masked, sizeof(masked));
			return json_string(masked);
		}
		return eng_json_masked(json_string_value(v));
	}
	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			if ((m = scrub(x, k)) != NULL)
				json_object_set_new(v, k, m);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if ((m = scrub(x, NULL)) != NULL)
				json_array_set_new(v, i, m);
	}
	return NULL;
}

void eng_history_mask(json_t *doc)
{
	size_t i;
	json_t *msg, *m;
	json_array_foreach(json_object_get(doc, "messages"), i, msg)
		if ((m = mask_params(json_object_get(msg, "params"))) != NULL)
			json_object_set_new(msg, "params", m);
	if ((m = scrub(doc, NULL)) != NULL) /* a document that is one string */
		json_decref(m);
}

/* ---- the timeline ----------------------------------------------------------------- */

struct line {
	eng_time at;
	size_t seq;  /* the order it was found in: ties keep it */
	char *text;
};

struct timeline {
	struct line *v;
	size_t n, cap;
};

static const char *s_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long i_of(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* A line at the instant o[key] (none when it is null or not one). */
__attribute__((format(printf, 5, 6)))
static void add(struct timeline *t, const json_t *o, const char *key, const char *kind,
		const char *fmt, ...)
{
	eng_time at;
	if (eng_time_parse(s_of(o, key), &at))
		return;
	struct eng_buf b = ENG_BUF_INIT(4096);
	eng_buf_addf(&b, "%-10s  ", kind);
	va_list ap;
	va_start(ap, fmt);
	char text[2048];
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	eng_buf_adds(&b, text);
	ENG_GROW(t->v, t->n, t->cap);
	t->v[t->n] = (struct line){at, t->n, eng_buf_detach(&b)};
	t->n++;
}

static int by_time(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void messages(struct timeline *t, const json_t *list)
{
	size_t i;
	const json_t *m;
	json_array_foreach(list, i, m) {
		long long id = i_of(m, "id"), n = i_of(m, "attempts"), max = i_of(m, "max_attempts");
		const char *st = s_of(m, "status"), *code = s_of(m, "last_error_code");
		add(t, m, "created_at", "message", "#%lld %s (template %s) queued", id,
		    s_of(m, "type"), s_of(m, "template_key"));
		add(t, m, "sent_at", "message", "#%lld sent (attempt %lld of %lld)", id, n, max);
		add(t, m, "delivered_at", "message", "#%lld delivered", id);
		add(t, m, "read_at", "message", "#%lld read", id);
		if (strcmp(s_of(m, "delivery_status"), "failed") == 0)
			add(t, m, "updated_at", "message", "#%lld undelivered (%s)", id,
			    s_of(m, "delivery_error_code"));
		if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0 ||
		    strcmp(st, "blocked") == 0)
			add(t, m, "updated_at", "message", "#%lld %s: %s (attempts %lld of %lld)", id,
			    st, *code ? code : "-", n, max);
		else if ((strcmp(st, "queued") == 0 || strcmp(st, "sending") == 0) && n > 0)
			add(t, m, "updated_at", "message",
			    "#%lld %s after attempt %lld of %lld failed (%s), next at %s", id, st, n,
			    max, *code ? code : "-", s_of(m, "next_attempt_at"));
	}
}

static bool is_consent(const json_t *a)
{
	return strncmp(s_of(a, "event"), "reengagement_", 13) == 0;
}

/* Audit rows: the consent trail (consent), or the others (the consent
 * trail's rows are in both lists): the event, its message, source, login
 * and reason. */
static void audit(struct timeline *t, const json_t *list, bool consent)
{
	size_t i;
	const json_t *a;
	json_array_foreach(list, i, a) {
		if (!consent && is_consent(a))
			continue;
		const json_t *d = json_object_get(a, "details");
		const char *reason = s_of(d, "reason");
		long long msg = i_of(a, "message_id");
		char about[64] = "";
		if (msg)
			snprintf(about, sizeof(about), " message #%lld", msg);
		add(t, a, "at", consent ? "consent" : "audit", "%s%s (%s%s%s)%s%s%s",
		    s_of(a, "event"), about, s_of(a, "source"), consent ? "" : ", by ",
		    consent ? "" : s_of(a, "login"), *reason ? ": \"" : "", reason,
		    *reason ? "\"" : "");
	}
}

char *eng_history_timeline(const json_t *doc)
{
	struct timeline t = {0};
	size_t i;
	const json_t *x;
	json_array_foreach(json_object_get(doc, "transitions"), i, x)
		add(&t, x, "at", "transition", "%s -> %s (%s)", s_of(x, "from"), s_of(x, "to"),
		    s_of(x, "trigger"));
	messages(&t, json_object_get(doc, "messages"));
	audit(&t, json_object_get(doc, "consent"), true);
	audit(&t, json_object_get(doc, "audit"), false);
	json_array_foreach(json_object_get(doc, "inbound_events"), i, x)
		add(&t, x, "at", "inbound", "%s: %s (%s)", s_of(x, "kind"), s_of(x, "outcome"),
		    s_of(x, "event_id"));
	if (t.n)
		qsort(t.v, t.n, sizeof(*t.v), by_time);

	const json_t *u = json_object_get(doc, "user"), *p = json_object_get(doc, "preferences");
	const json_t *s = json_object_get(doc, "state");
	struct eng_buf b = ENG_BUF_INIT((size_t)1 << 30);
	eng_buf_addf(&b, "person %s %s: %s, re-engagement %s", s_of(u, "id"), s_of(u, "phone"),
		     s ? s_of(s, "state") : "no state",
		     json_is_true(json_object_get(p, "opt_out")) ? "off (opted out)" : "on");
	eng_time changed;
	char when[32];
	if (*s_of(p, "opt_out_source") && !eng_time_parse(s_of(p, "opt_out_updated_at"), &changed)) {
		eng_time_format_ms(changed, when);
		eng_buf_addf(&b, " (%s, %s)", s_of(p, "opt_out_source"), when);
	}
	eng_buf_addc(&b, '\n');
	for (i = 0; i < t.n; i++) {
		char at[32];
		eng_time_format_ms(t.v[i].at, at);
		eng_buf_addf(&b, "%s  %s\n", at, t.v[i].text);
		free(t.v[i].text);
	}
	free(t.v);
	return eng_buf_detach(&b);
}
