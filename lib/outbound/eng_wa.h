/*
 * The WhatsApp Cloud API as queue-send needs it (see WHATSAPP.md):
 * configuration from the environment, the template message body, the
 * classification of answers into RETRY / DEFER / FAIL / FATAL, and backoff.
 * No I/O here except reading the token file.
 */
#ifndef ENG_WA_H
#define ENG_WA_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "eng_err.h"
#include "eng_time.h"

#define ENG_WA_DEFAULT_URL "https://graph.facebook.com"
#define ENG_WA_DEFAULT_VERSION "v23.0"
#define ENG_WA_TEMPLATE_PAUSED 132015L /* the error code of a paused template */

struct eng_wa_config {
	char url[512];             /* base, without a trailing slash */
	char version[16];
	char phone_number_id[64];
	char endpoint[640];        /* url/version/id/messages */
	char *token;               /* wiped and freed by release */
	const char *token_origin;  /* "WHATSAPP_ACCESS_TOKEN_FILE" or "..._TOKEN" */
};

/* From WHATSAPP_API_URL (default graph.facebook.com), WHATSAPP_API_VERSION
 * (default v23.0), WHATSAPP_PHONE_NUMBER_ID (required) and the token from
 * WHATSAPP_ACCESS_TOKEN_FILE or else WHATSAPP_ACCESS_TOKEN. ENG_ECONFIG with
 * a message that never contains the token. Plain http is refused except to
 * a loopback host (the token would travel in clear). */
enum eng_status eng_wa_config_load(struct eng_wa_config *c, struct eng_err *err);
void eng_wa_config_release(struct eng_wa_config *c);

enum eng_wa_class {
	ENG_WA_SENT = 0,
	ENG_WA_RETRY,  /* transient: back off briefly */
	ENG_WA_DEFER,  /* rate limited: back off longer */
	ENG_WA_FAIL,   /* this message can never succeed */
	ENG_WA_FATAL,  /* every message would fail: stop the run */
};

const char *eng_wa_class_name(enum eng_wa_class c);
/* The class of an error.code of the API (unknown codes: RETRY). */
enum eng_wa_class eng_wa_classify_code(long code);

struct eng_wa_result {
	enum eng_wa_class cls;
	long http_status;       /* 0 when no answer */
	long code;              /* error.code, or 0 */
	char code_text[24];     /* for last_error_code: "131026", "http_500",
	                           "timeout", "network", "malformed" */
	char error[256];        /* one line, for last_error */
	char wamid[160];        /* when sent */
};

/* Classify an HTTP answer. */
void eng_wa_parse_answer(long http_status, const char *body, size_t len,
			 struct eng_wa_result *r);
/* Classify a transport failure (no answer). */
void eng_wa_transport_error(CURLcode rc, const char *detail,
			    struct eng_wa_result *r);

/* The template message body. values are the body parameters, in order.
 * Returns a malloc'd JSON text. */
char *eng_wa_template_body(const char *to, bool group, const char *name,
			   const char *language, const char *const *values,
			   size_t nvalues, long long message_id);

/* How long to wait before the next attempt after an error of class cls
 * (code, the attempt number just made, 1-based), with full jitter:
 * RETRY 30 s base, 15 min cap; DEFER 5 min base, 60 min cap; 131049 at
 * least 24 h; 131057 about a minute. r01 is a random number in [0, 1).
 * (132015, a paused template, is not the message's to wait for: the
 * template is paused in the database, engagement.meta_pause_template.) */
eng_time eng_wa_backoff(enum eng_wa_class cls, long code, int attempt,
			double r01);

#endif
