/* The WhatsApp client's pure parts: configuration, answers, backoff, the
 * request body; and the hourly-cap arithmetic of queue-send. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_wa.h"

static void clear_env(void)
{
	unsetenv("WHATSAPP_API_URL");
	unsetenv("WHATSAPP_API_VERSION");
	unsetenv("WHATSAPP_PHONE_NUMBER_ID");
	unsetenv("WHATSAPP_ACCESS_TOKEN_FILE");
	unsetenv("WHATSAPP_ACCESS_TOKEN");
}

static enum eng_status load(struct eng_wa_config *c, struct eng_err *e)
{
	eng_err_clear(e);
	enum eng_status st = eng_wa_config_load(c, e);
	if (st == ENG_OK)
		eng_wa_config_release(c);
	return st;
}

static void test_config(void **state)
{
	(void)state;
	struct eng_wa_config c;
	struct eng_err e;
	clear_env();
	setenv("WHATSAPP_ACCESS_TOKEN", "s3cr3t-token", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG); /* no phone number id */
	assert_non_null(strstr(e.msg, "WHATSAPP_PHONE_NUMBER_ID"));
	setenv("WHATSAPP_PHONE_NUMBER_ID", "12345x", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	setenv("WHATSAPP_PHONE_NUMBER_ID", "1234567890", 1);
	assert_int_equal(eng_wa_config_load(&c, &e), ENG_OK);
	assert_string_equal(c.endpoint, "https://graph.facebook.com/v23.0/1234567890/messages");
	eng_wa_config_release(&c);
	assert_null(c.token);

	setenv("WHATSAPP_API_URL", "http://127.0.0.1:8080/", 1);
	setenv("WHATSAPP_API_VERSION", "v24.0", 1);
	assert_int_equal(eng_wa_config_load(&c, &e), ENG_OK);
	assert_string_equal(c.endpoint, "http://127.0.0.1:8080/v24.0/1234567890/messages");
	eng_wa_config_release(&c);

	setenv("WHATSAPP_API_URL", "http://api.example.com", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG); /* token in clear */
	setenv("WHATSAPP_API_URL", "http://127.evil.example", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG); /* not a loopback address */
	setenv("WHATSAPP_API_URL", "http://127.1.2.3:9/", 1);
	assert_int_equal(load(&c, &e), ENG_OK);
	setenv("WHATSAPP_API_URL", "https://user:pw@graph.facebook.com", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	setenv("WHATSAPP_API_URL", "https://graph.facebook.com/#x", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	setenv("WHATSAPP_API_URL", "ftp://x", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	setenv("WHATSAPP_API_URL", "not a url", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	unsetenv("WHATSAPP_API_URL");
	setenv("WHATSAPP_API_VERSION", "23", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	setenv("WHATSAPP_API_VERSION", "v23.", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	unsetenv("WHATSAPP_API_VERSION");

	setenv("WHATSAPP_ACCESS_TOKEN", "tok en-Qz9", 1);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	assert_null(strstr(e.msg, "Qz9"));
	unsetenv("WHATSAPP_ACCESS_TOKEN");
	assert_int_equal(load(&c, &e), ENG_ECONFIG);

	/* the file wins, trailing newline stripped; unreadable file is 78 */
	char path[] = "/tmp/wa-token-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-file\n", 10), 10);
	close(fd);
	setenv("WHATSAPP_ACCESS_TOKEN", "from-env", 1);
	setenv("WHATSAPP_ACCESS_TOKEN_FILE", path, 1);
	assert_int_equal(eng_wa_config_load(&c, &e), ENG_OK);
	assert_string_equal(c.token, "from-file");
	eng_wa_config_release(&c);
	unlink(path);
	assert_int_equal(load(&c, &e), ENG_ECONFIG);
	assert_non_null(strstr(e.msg, "WHATSAPP_ACCESS_TOKEN_FILE"));
	assert_null(strstr(e.msg, "from-env"));
	clear_env();
}

static void test_classes(void **state)
{
	(void)state;
	static const long retry[] = {1, 2, 131000, 131016, 133004, 131057, 424242};
	static const long defer[] = {4, 80007, 130429, 131056, 131049, 132015, 132069};
	static const long fail[] = {100, 130403, 130472, 130497, 131008, 131009,
				    131021, 131026, 131047, 131050, 131051, 131053,
				    132000, 132001, 132005, 132007, 132012, 132016,
				    132068, 135000};
	static const long fatal[] = {0, 3, 10, 33, 190, 200, 250, 299, 368,
				     131031, 131042, 131045, 131048, 133000,
				     133010, 131064};
	for (size_t i = 0; i < sizeof(retry) / sizeof(*retry); i++)
		assert_int_equal(eng_wa_classify_code(retry[i]), ENG_WA_RETRY);
	for (size_t i = 0; i < sizeof(defer) / sizeof(*defer); i++)
		assert_int_equal(eng_wa_classify_code(defer[i]), ENG_WA_DEFER);
	for (size_t i = 0; i < sizeof(fail) / sizeof(*fail); i++)
		assert_int_equal(eng_wa_classify_code(fail[i]), ENG_WA_FAIL);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(*fatal); i++)
		assert_int_equal(eng_wa_classify_code(fatal[i]), ENG_WA_FATAL);
}

static void parse(long http, const char *body, struct eng_wa_result *r)
{
	eng_wa_parse_answer(http, body, body ? strlen(body) : 0, r);
}

static void test_answers(void **state)
{
	(void)state;
	struct eng_wa_result r;
	parse(200, "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"+5511987654321\","
		   "\"wa_id\":\"5511987654321\"}],\"messages\":[{\"id\":\"wamid.HBgL1\","
		   "\"message_status\":\"accepted\"}]}", &r);
	assert_int_equal(r.cls, ENG_WA_SENT);
	assert_string_equal(r.wamid, "wamid.HBgL1");

	parse(400, "{\"error\":{\"message\":\"(#131026) Message undeliverable\","
		   "\"type\":\"OAuthException\",\"code\":131026,\"error_data\":{"
		   "\"messaging_product\":\"whatsapp\",\"details\":\"not on WhatsApp\"}}}", &r);
	assert_int_equal(r.cls, ENG_WA_FAIL);
	assert_int_equal(r.code, 131026);
	assert_string_equal(r.code_text, "131026");
	assert_non_null(strstr(r.error, "not on WhatsApp"));

	/* decided on error.code, not on the HTTP status */
	parse(200, "{\"error\":{\"code\":130429,\"message\":\"rate\"}}", &r);
	assert_int_equal(r.cls, ENG_WA_DEFER);
	parse(401, "{\"error\":{\"code\":190,\"message\":\"Invalid OAuth access token\"}}", &r);
	assert_int_equal(r.cls, ENG_WA_FATAL);

	parse(500, "Internal Server Error", &r); /* 5xx without a code */
	assert_int_equal(r.cls, ENG_WA_RETRY);
	assert_string_equal(r.code_text, "http_500");
	parse(200, "<html>not json</html>", &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	assert_string_equal(r.code_text, "malformed");
	parse(200, "{\"messaging_product\":\"whatsapp\",\"contacts\":[]}", &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	parse(200, "{\"messages\":[{\"id\":\"\"}]}", &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	parse(200, NULL, &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	parse(400, "{\"error\":{\"code\":\"131026\"}}", &r); /* code not a number */
	assert_int_equal(r.cls, ENG_WA_RETRY);

	eng_wa_transport_error(CURLE_OPERATION_TIMEDOUT, "after 10000 ms", &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	assert_string_equal(r.code_text, "timeout");
	eng_wa_transport_error(CURLE_GOT_NOTHING, NULL, &r);
	assert_int_equal(r.cls, ENG_WA_RETRY);
	assert_string_equal(r.code_text, "network");
}

static void test_backoff(void **state)
{
	(void)state;
	const eng_time s = ENG_USEC_PER_SEC;
	/* full jitter: 0 .. min(cap, base * 2^(attempt-1)) */
	assert_int_equal(eng_wa_backoff(ENG_WA_RETRY, 0, 1, 0.0), 0);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 1, 0.999) <= 30 * s);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 3, 0.999) <= 120 * s);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 3, 0.999) > 110 * s);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 20, 0.999) <= 15 * 60 * s);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 20, 0.999) > 14 * 60 * s);
	assert_true(eng_wa_backoff(ENG_WA_DEFER, 130429, 1, 0.999) <= 5 * 60 * s);
	assert_true(eng_wa_backoff(ENG_WA_DEFER, 130429, 9, 0.999) <= 60 * 60 * s);
	assert_true(eng_wa_backoff(ENG_WA_DEFER, 130429, 9, 0.999) > 59 * 60 * s);
	assert_true(eng_wa_backoff(ENG_WA_DEFER, 131049, 1, 0.0) >= 24 * 3600 * s);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 131057, 1, 0.0) >= 60 * s);
	/* never negative, even for silly input */
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 0, -1.0) >= 0);
	assert_true(eng_wa_backoff(ENG_WA_RETRY, 0, 1000, 2.0) <= 15 * 60 * s);
}

static void test_body(void **state)
{
	(void)state;
	const char *vals[] = {"3", "Ana \"A\""};
	char *b = eng_wa_template_body("+5511987654321", false, "engagement_weekly_review",
				       "pt_BR", vals, 2, 42);
	json_error_t je;
	json_t *o = json_loads(b, 0, &je);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "messaging_product")), "whatsapp");
	assert_string_equal(json_string_value(json_object_get(o, "recipient_type")), "individual");
	assert_string_equal(json_string_value(json_object_get(o, "to")), "+5511987654321");
	assert_string_equal(json_string_value(json_object_get(o, "type")), "template");
	assert_string_equal(json_string_value(json_object_get(o, "biz_opaque_callback_data")), "mq:42");
	json_t *t = json_object_get(o, "template");
	assert_string_equal(json_string_value(json_object_get(t, "name")), "engagement_weekly_review");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "language"), "code")), "pt_BR");
	json_t *params = json_object_get(json_array_get(json_object_get(t, "components"), 0), "parameters");
	assert_int_equal(json_array_size(params), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(params, 1), "text")), "Ana \"A\"");
	json_decref(o);
	free(b);

	b = eng_wa_template_body("120363000000000000@g.us", true, "engagement_goodbye", "en", NULL, 0, 7);
	o = json_loads(b, 0, &je);
	assert_string_equal(json_string_value(json_object_get(o, "recipient_type")), "group");
	assert_null(json_object_get(json_object_get(o, "template"), "components"));
	json_decref(o);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
