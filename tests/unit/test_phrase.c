/* Opt-out phrases and the relay's webhook signature. */
#include "unit.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_signature),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
