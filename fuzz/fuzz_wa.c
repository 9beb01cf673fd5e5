/*
 * The Cloud API's answers to a send (eng_wa_parse_answer). Input: two
 * bytes of HTTP status (0..699), one byte for the retry that follows
 * (attempt number and jitter for eng_wa_backoff), then the body. Checked
 * against WHATSAPP.md's rules, read independently with jansson: sent
 * exactly when a 2xx answer without "error" has a messages[0].id that fits;
 * otherwise classed by an integer error.code, else RETRY as http_NNN (5xx)
 * or malformed; the error text is one line; backoffs stay in bounds.
 */
#include "fuzz.h"

#include <jansson.h>

#include "eng_wa.h"

#define HOUR (INT64_C(3600) * ENG_USEC_PER_SEC)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	long status = ((long)data[0] << 8 | data[1]) % 700;
	int attempt = data[2] % 40;
	double r01 = (data[2] >> 5) / 8.0;
	const char *body = (const char *)data + 3;
	size_t len = size - 3;

	struct eng_wa_result r;
	memset(&r, 0x5A, sizeof(r));
	eng_wa_parse_answer(status, body, len, &r);

	CHECK(r.http_status == status);
	CHECK(r.cls >= ENG_WA_SENT && r.cls <= ENG_WA_FATAL);
	CHECK(eng_wa_class_name(r.cls) != NULL);
	CHECK(memchr(r.code_text, '\0', sizeof(r.code_text)) != NULL);
	CHECK(memchr(r.error, '\0', sizeof(r.error)) != NULL);
	CHECK(memchr(r.wamid, '\0', sizeof(r.wamid)) != NULL);

	json_error_t je;
	json_t *root = len ? json_loadb(body, len, 0, &je) : NULL;
	json_t *err = json_object_get(root, "error");
	json_t *code = json_object_get(err, "code");
	json_t *id = json_object_get(json_array_get(json_object_get(root, "messages"), 0),
				     "id");
	bool sent = status >= 200 && status < 300 && root && !err && json_is_string(id) &&
		    json_string_length(id) > 0 && json_string_length(id) < sizeof(r.wamid);
	CHECK((r.cls == ENG_WA_SENT) == sent);
	if (sent) {
		CHECK(strcmp(r.wamid, json_string_value(id)) == 0);
	} else {
		CHECK(r.wamid[0] == '\0');
		CHECK(r.error[0] != '\0' && r.code_text[0] != '\0');
		CHECK(strpbrk(r.error, "\r\n\t") == NULL);
		char want[32];
		if (json_is_integer(code)) {
			CHECK(r.code == (long)json_integer_value(code));
			CHECK(r.cls == eng_wa_classify_code(r.code));
			snprintf(want, sizeof(want), "%ld", r.code);
		} else {
			CHECK(r.cls == ENG_WA_RETRY && r.code == 0);
			if (status >= 500)
				snprintf(want, sizeof(want), "http_%ld", status);
			else
				snprintf(want, sizeof(want), "malformed");
		}
		CHECK(strcmp(r.code_text, want) == 0);

		eng_time wait = eng_wa_backoff(r.cls, r.code, attempt, r01);
		CHECK(wait >= 0 && wait <= 30 * HOUR);
	}
	json_decref(root);
	return 0;
}
