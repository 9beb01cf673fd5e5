#include "eng_wa.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_http.h"
#include "eng_json.h"

/* ---- configuration ----------------------------------------------------- */

/* v<digits>.<digits> */
static bool version_ok(const char *v)
{
	size_t major = 0, minor = 0;
	if (*v++ != 'v')
		return false;
	while (isdigit((unsigned char)*v)) {
		v++;
		major++;
	}
	if (*v++ != '.')
		return false;
	while (isdigit((unsigned char)*v)) {
		v++;
		minor++;
	}
	return major && minor && *v == '\0';
}

static bool token_ok(const char *t)
{
	if (!*t)
		return false;
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f) /* no spaces, controls: header-safe */
			return false;
	return true;
}

enum eng_status eng_wa_config_load(struct eng_wa_config *c, struct eng_err *err)
{
	memset(c, 0, sizeof(*c));
	const char *url = getenv("WHATSAPP_API_URL");
	const char *version = getenv("WHATSAPP_API_VERSION");
	const char *id = getenv("WHATSAPP_PHONE_NUMBER_ID");
	const char *file = getenv("WHATSAPP_ACCESS_TOKEN_FILE");
	const char *token = getenv("WHATSAPP_ACCESS_TOKEN");

	if (eng_http_check_url(url && *url ? url : ENG_WA_DEFAULT_URL,
			       "WHATSAPP_API_URL", c->url, sizeof(c->url), err))
		return err->status;
	if (!version || !*version)
		version = ENG_WA_DEFAULT_VERSION;
	if (!version_ok(version) || strlen(version) >= sizeof(c->version))
		return eng_err_set(err, ENG_ECONFIG,
				   "WHATSAPP_API_VERSION must look like v23.0, not "
				   "\"%.40s\"",
				   version);
	snprintf(c->version, sizeof(c->version), "%s", version);

	if (!id || !*id)
		return eng_err_set(err, ENG_ECONFIG,
				   "WHATSAPP_PHONE_NUMBER_ID is not set: the id of "
				   "the sending number, from the WhatsApp Manager");
	size_t idlen = strlen(id);
	for (size_t i = 0; i < idlen; i++)
		if (!isdigit((unsigned char)id[i]))
			idlen = 0;
	if (idlen == 0 || idlen >= sizeof(c->phone_number_id))
		return eng_err_set(err, ENG_ECONFIG,
				   "WHATSAPP_PHONE_NUMBER_ID must be digits");
	snprintf(c->phone_number_id, sizeof(c->phone_number_id), "%s", id);

	if (file && *file) {
		if (eng_http_read_secret(file, "WHATSAPP_ACCESS_TOKEN_FILE",
					 &c->token, err))
			return err->status;
		c->token_origin = "WHATSAPP_ACCESS_TOKEN_FILE";
	} else if (token && *token) {
		c->token = eng_xstrdup(token);
		c->token_origin = "WHATSAPP_ACCESS_TOKEN";
	} else {
		return eng_err_set(err, ENG_ECONFIG,
				   "no access token: set WHATSAPP_ACCESS_TOKEN_FILE "
				   "(preferred) or WHATSAPP_ACCESS_TOKEN");
	}
	if (!token_ok(c->token)) {
		enum eng_status st = eng_err_set(
			err, ENG_ECONFIG,
			"the access token from %s is empty or has spaces or "
			"control characters",
			c->token_origin);
		eng_wa_config_release(c);
		return st;
	}
	snprintf(c->endpoint, sizeof(c->endpoint), "%s/%s/%s/messages", c->url,
		 c->version, c->phone_number_id);
	return ENG_OK;
}

void eng_wa_config_release(struct eng_wa_config *c)
{
	eng_http_wipe(c->token);
	c->token = NULL;
}

/* ---- classification ------------------------------------------------------ */

const char *eng_wa_class_name(enum eng_wa_class c)
{
	switch (c) {
	case ENG_WA_SENT: return "sent";
	case ENG_WA_RETRY: return "retry";
	case ENG_WA_DEFER: return "defer";
	case ENG_WA_FAIL: return "fail";
	case ENG_WA_FATAL: return "fatal";
	}
	return "retry";
}

enum eng_wa_class eng_wa_classify_code(long code)
{
	static const long defer[] = {4, 80007, 130429, 131056, 131049, 132015, 132069};
	static const long fail[] = {100, 130403, 130472, 130497, 131008, 131009,
				    131021, 131026, 131047, 131050, 131051, 131053,
				    132000, 132001, 132005, 132007, 132012, 132016,
				    132068, 135000};
	static const long fatal[] = {0, 3, 10, 33, 190, 368, 131031, 131042,
				     131045, 131048, 133000, 133010, 131064};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(*fatal); i++)
		if (code == fatal[i])
			return ENG_WA_FATAL;
	if (code >= 200 && code <= 299) /* permission errors */
		return ENG_WA_FATAL;
	for (size_t i = 0; i < sizeof(defer) / sizeof(*defer); i++)
		if (code == defer[i])
			return ENG_WA_DEFER;
	for (size_t i = 0; i < sizeof(fail) / sizeof(*fail); i++)
		if (code == fail[i])
			return ENG_WA_FAIL;
	/* 1, 2, 131000, 131016, 133004, 131057 and anything unknown */
	return ENG_WA_RETRY;
}

static void one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r' || *s == '\t')
			*s = ' ';
}

void eng_wa_parse_answer(long http_status, const char *body, size_t len,
			 struct eng_wa_result *r)
{
	memset(r, 0, sizeof(*r));
	r->http_status = http_status;
	json_error_t je;
	json_t *root = body && len ? json_loadb(body, len, 0, &je) : NULL;
	json_t *err = root ? json_object_get(root, "error") : NULL;
	json_t *code = err ? json_object_get(err, "code") : NULL;

	if (http_status >= 200 && http_status < 300 && root && !err) {
		json_t *msgs = json_object_get(root, "messages");
		json_t *id = json_object_get(json_array_get(msgs, 0), "id");
		if (json_is_string(id) && json_string_length(id) > 0 &&
		    json_string_length(id) < sizeof(r->wamid)) {
			r->cls = ENG_WA_SENT;
			snprintf(r->wamid, sizeof(r->wamid), "%s", json_string_value(id));
			json_decref(root);
			return;
		}
	}
	if (json_is_integer(code)) {
		r->code = (long)json_integer_value(code);
		r->cls = eng_wa_classify_code(r->code);
		snprintf(r->code_text, sizeof(r->code_text), "%ld", r->code);
		const char *msg = json_string_value(json_object_get(err, "message"));
		json_t *data = json_object_get(err, "error_data");
		const char *details = json_string_value(json_object_get(data, "details"));
		snprintf(r->error, sizeof(r->error), "HTTP %ld: %s%s%s", http_status,
			 msg ? msg : "error", details ? ": " : "", details ? details : "");
	} else if (http_status >= 500) {
		r->cls = ENG_WA_RETRY;
		snprintf(r->code_text, sizeof(r->code_text), "http_%ld", http_status);
		snprintf(r->error, sizeof(r->error), "HTTP %ld without an error code",
			 http_status);
	} else {
		/* Neither messages[0].id nor error.code: transient, says WHATSAPP.md */
		r->cls = ENG_WA_RETRY;
		snprintf(r->code_text, sizeof(r->code_text), "malformed");
		snprintf(r->error, sizeof(r->error),
			 "HTTP %ld with an answer that has neither a message id "
			 "nor an error code%s",
			 http_status, root ? "" : " (not JSON)");
	}
	one_line(r->error);
	json_decref(root);
}

void eng_wa_transport_error(CURLcode rc, const char *detail,
			    struct eng_wa_result *r)
{
	memset(r, 0, sizeof(*r));
	r->cls = ENG_WA_RETRY;
	snprintf(r->code_text, sizeof(r->code_text), "%s",
		 rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network");
	snprintf(r->error, sizeof(r->error), "%s%s%s", curl_easy_strerror(rc),
		 detail && *detail ? ": " : "", detail ? detail : "");
	one_line(r->error);
}

/* ---- request body -------------------------------------------------------- */

char *eng_wa_template_body(const char *to, bool group, const char *name,
			   const char *language, const char *const *values,
			   size_t nvalues, long long message_id)
{
	char cb[32];
	snprintf(cb, sizeof(cb), "mq:%lld", message_id);
	json_t *tpl = json_pack("{s:s, s:{s:s}}", "name", name, "language",
				"code", language);
	if (nvalues) {
		json_t *params = json_array();
		for (size_t i = 0; i < nvalues; i++)
			json_array_append_new(params,
					      json_pack("{s:s, s:o}", "type", "text",
							"text", eng_json_str(values[i])));
		json_t *comps = json_array();
		json_array_append_new(comps, json_pack("{s:s, s:o}", "type", "body",
						       "parameters", params));
		json_object_set_new(tpl, "components", comps);
	}
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}",
				 "messaging_product", "whatsapp",
				 "recipient_type", group ? "group" : "individual",
				 "to", to, "type", "template",
				 "biz_opaque_callback_data", cb, "template", tpl);
	char *s = eng_json_dump(body);
	json_decref(body);
	return s;
}

/* ---- backoff ----------------------------------------------------------------- */

eng_time eng_wa_backoff(enum eng_wa_class cls, long code, int attempt,
			double r01)
{
	const eng_time s = ENG_USEC_PER_SEC;
	eng_time base = 30 * s, cap = 15 * 60 * s, floor_ = 0;
	if (cls == ENG_WA_DEFER) {
		base = 5 * 60 * s;
		cap = 60 * 60 * s;
	}
	if (code == 131049) { /* per-user marketing limit: a day at least */
		floor_ = 24 * 3600 * s;
		base = cap = 3600 * s;
	} else if (code == 131057) { /* maintenance, about a minute */
		floor_ = 60 * s;
		base = cap = 30 * s;
	}
	if (attempt < 1)
		attempt = 1;
	eng_time ceiling = cap;
	if (attempt < 31) {
		eng_time grow = base << (attempt - 1);
		if (grow > 0 && grow < cap)
			ceiling = grow;
	}
	if (r01 < 0)
		r01 = 0;
	if (r01 >= 1)
		r01 = 0.999999;
	return floor_ + (eng_time)((double)ceiling * r01);
}
