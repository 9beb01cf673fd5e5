/* Opt-out phrases and the relay's webhook signature. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "eng_phrase.h"
#include "eng_relay.h"

static void norm_is(const char *in, const char *want)
{
	char out[256];
	eng_phrase_normalize(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
	(void)state;
	norm_is("Parar Lembretes", "parar lembretes");
	norm_is("  parar \t  lembretes \n", "parar lembretes");
	norm_is("PARAR RECORDATÓRIOS", "parar recordatorios"); /* Ó folds */
	norm_is("ação à çé ñ ü", "acao a ce n u");
	norm_is("¡Activar recordatorios!", "activar recordatorios");
	norm_is("¿stop reminders?", "stop reminders");
	norm_is("parar\xc2\xa0lembretes\xc2\xa0", "parar lembretes"); /* no-break spaces */
	norm_is("stop reminders...", "stop reminders");
	norm_is("", "");
	norm_is("   ", "");
	norm_is("!!!", "");
	/* invalid UTF-8 and other scripts pass through, never crash */
	norm_is("stop\xff reminders", "stop\xff reminders");
	norm_is("стоп", "стоп");
}

static void test_match(void **state)
{
	(void)state;
	bool out;
	const char *loc;
	assert_int_equal(eng_phrase_match("stop reminders", &out, &loc), 1);
	assert_true(out);
	assert_string_equal(loc, "en");
	assert_int_equal(eng_phrase_match("START REMINDERS", &out, &loc), 1);
	assert_false(out);
	assert_int_equal(eng_phrase_match("parar lembretes", &out, &loc), 1);
	assert_true(out);
	assert_string_equal(loc, "pt-BR");
	assert_int_equal(eng_phrase_match("Ativar  Lembretes!", &out, &loc), 1);
	assert_false(out);
	assert_int_equal(eng_phrase_match("parar recordatorios", &out, &loc), 1);
	assert_string_equal(loc, "es");
	assert_int_equal(eng_phrase_match("activar recordatórios", &out, &loc), 1);
	assert_false(out);
	assert_int_equal(eng_phrase_match("stop", &out, &loc), 0);
	assert_int_equal(eng_phrase_match("stop reminders now", &out, &loc), 0);
	assert_int_equal(eng_phrase_match("pararlembretes", &out, &loc), 0);
	assert_int_equal(eng_phrase_match("", &out, &loc), 0);
}

static void test_signature(void **state)
{
	(void)state;
	char sig[72];
	/* RFC 4231 test case 2 */
	const char *data = "what do ya want for nothing?";
	eng_relay_signature("Jefe", data, strlen(data), sig);
	assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	char other[72];
	eng_relay_signature("jefe", data, strlen(data), other);
	assert_string_not_equal(sig, other);
}

/* The Standard Webhooks specification's own example. */
static void test_standard_webhooks(void **state)
{
	(void)state;
	struct eng_relay_keys k;
	struct eng_err err = {0};
	assert_int_equal(eng_relay_keys_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", &k, &err),
			 ENG_OK);
	assert_int_equal(k.n, 1);
	assert_int_equal(k.len[0], 24);
	const char *body = "{\"test\": 2432232314}";
	char *sig = eng_relay_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
				   strlen(body));
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(sig);
	/* the deprecated header signs with the line as written */
	assert_string_equal(k.legacy, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	eng_relay_keys_release(&k);

	/* rotation: every line signs, in order; blank lines and white space
	 * around a secret do not count; a line without whsec_ is a raw key */
	assert_int_equal(eng_relay_keys_parse("\n  old-raw-key \n\r\n"
					      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\r\n",
					      &k, &err),
			 ENG_OK);
	assert_int_equal(k.n, 2);
	assert_int_equal(k.len[0], strlen("old-raw-key"));
	assert_memory_equal(k.key[0], "old-raw-key", k.len[0]);
	assert_string_equal(k.legacy, "old-raw-key");
	sig = eng_relay_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
			     strlen(body));
	char *space = strchr(sig, ' ');
	assert_non_null(space);
	assert_string_equal(space + 1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	assert_memory_equal(sig, "v1,", 3);
	free(sig);
	eng_relay_keys_release(&k);

	/* bad secrets: named by line, never shown */
	const char *bad[] = {"whsec_\n", "ok\nwhsec_not base64!\n", "whsec_abc\n", " \n\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(eng_relay_keys_parse(bad[i], &k, &err), ENG_ECONFIG);
		assert_null(strstr(err.msg, "base64!"));
		assert_int_equal(k.n, 0);
	}
	memset(&err, 0, sizeof(err));
	eng_relay_keys_parse("ok\nwhsec_not base64!\n", &k, &err);
	assert_non_null(strstr(err.msg, "line 2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_signature),
		cmocka_unit_test(test_standard_webhooks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
