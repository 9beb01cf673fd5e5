/* eng_parse: validators for what arrives on command lines and in batches. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "eng_parse.h"

static void test_uuid_normalises(void **state)
{
	(void)state;
	char out[37];
	assert_int_equal(eng_parse_uuid("1B4E28BA-2FA1-11D2-883F-0016D3CCA427", out),
			 0);
	assert_string_equal(out, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	assert_int_equal(eng_parse_uuid("1b4e28ba-2fa1-11d2-883f-012345678901", out),
			 0);
	assert_string_equal(out, "1b4e28ba-2fa1-11d2-883f-012345678901");
	assert_int_equal(eng_parse_uuid("aBcDeF01-2345-6789-AbCd-Ef0123456789", out),
			 0);
	assert_string_equal(out, "abcdef01-2345-6789-abcd-ef0123456789");
}

static void test_uuid_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"1b4e28ba-2fa1-11d2-883f-0016d3cca42",   /* 35 */
		"1b4e28ba-2fa1-11d2-883f-0016d3cca4271", /* 37 */
		"1b4e28ba2fa111d2883f0016d3cca427",      /* no dashes */
		"1b4e28ba-2fa1-11d2-883f0-016d3cca427",  /* dash moved */
		"1b4e28ba_2fa1_11d2_883f_0016d3cca427",
		"1b4e28ba-2fa1-11d2-883f-0016d3cca42g",  /* non-hex */
		"1b4e28ba-2fa1-11d2-883f-0016d3cca42 ",
		" 1b4e28ba-2fa1-11d2-883f-0016d3cca42",
		"{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
		"1b4e28ba-2fa1-11d2-883f--016d3cca427",
		"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char out[37];
		if (eng_parse_uuid(bad[i], out) == 0)
			fail_msg("accepted uuid \"%s\"", bad[i]);
	}
	char out[37];
	assert_int_equal(eng_parse_uuid(NULL, out), -1);
}

static void test_uuid_v4(void **state)
{
	(void)state;
	char a[37], b[37], norm[37];
	eng_uuid_v4(a);
	eng_uuid_v4(b);
	assert_int_equal(strlen(a), 36);
	assert_int_equal(eng_parse_uuid(a, norm), 0);
	assert_string_equal(a, norm); /* already lowercase */
	assert_int_equal(a[14], '4'); /* version 4 */
	assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
	assert_string_not_equal(a, b);
}

static void test_e164_accepts(void **state)
{
	(void)state;
	assert_true(eng_is_e164("+5511987654321"));
	assert_true(eng_is_e164("+14155550123"));
	assert_true(eng_is_e164("+12345678"));        /* 8 digits */
	assert_true(eng_is_e164("+123456789012345")); /* 15 digits */
	assert_true(eng_is_e164("+8801712345678"));
}

static void test_e164_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"+",
		"5511987654321",     /* no plus */
		"+0511987654321",    /* leading 0 */
		"+1234567",          /* 7 digits */
		"+1234567890123456", /* 16 digits */
		"+55119876543a1",
		"+55 11987654321",
		"+5511987654321 ",
		" +5511987654321",
		"++5511987654321",
		"+55-11-98765-4321",
		"+(55)11987654321",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (eng_is_e164(bad[i]))
			fail_msg("accepted E.164 \"%s\"", bad[i]);
	assert_false(eng_is_e164(NULL));
}

static void test_int_ok(void **state)
{
	(void)state;
	long long v = -1;
	assert_int_equal(eng_parse_int("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(eng_parse_int("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(eng_parse_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(eng_parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(eng_parse_int("007", 0, 10, &v), 0);
	assert_int_equal(v, 7);
}

static void test_int_rejects(void **state)
{
	(void)state;
	long long v = 42;
	static const char *const bad[] = {
		"", " 1", "1 ", "12x", "x12", "1.5", "0x10", "--1",
		"9223372036854775808", "-9223372036854775809",
		"99999999999999999999",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (eng_parse_int(bad[i], INT64_MIN, INT64_MAX, &v) == 0)
			fail_msg("accepted int \"%s\"", bad[i]);
	assert_int_equal(v, 42);
	/* range */
	assert_int_equal(eng_parse_int("11", 0, 10, &v), -1);
	assert_int_equal(eng_parse_int("-1", 0, 10, &v), -1);
	assert_int_equal(eng_parse_int("0", 1, 10, &v), -1);
	assert_int_equal(eng_parse_int(NULL, 0, 10, &v), -1);
	assert_int_equal(v, 42);
}

static void test_double_ok(void **state)
{
	(void)state;
	double d = -1;
	assert_int_equal(eng_parse_double("80", 0, 100, &d), 0);
	assert_true(d == 80.0);
	assert_int_equal(eng_parse_double("2.5", 0, 100, &d), 0);
	assert_true(d == 2.5);
	assert_int_equal(eng_parse_double("0", 0, 100, &d), 0);
	assert_true(d == 0.0);
	assert_int_equal(eng_parse_double("100", 0, 100, &d), 0);
	assert_true(d == 100.0);
	assert_int_equal(eng_parse_double(".5", 0, 1, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(eng_parse_double("1.", 0, 1, &d), 0);
	assert_true(d == 1.0);
}

static void test_double_rejects(void **state)
{
	(void)state;
	double d = 7;
	static const char *const bad[] = {
		"", " 1", "1 ", "-1", "+1", "1e3", "0x10", "inf", "nan",
		"1.2.3", ".", "1,5", "abc", "2.5%",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (eng_parse_double(bad[i], -1e9, 1e9, &d) == 0)
			fail_msg("accepted double \"%s\"", bad[i]);
	assert_int_equal(eng_parse_double("100.01", 0, 100, &d), -1);
	assert_int_equal(eng_parse_double("0.5", 1, 100, &d), -1);
	assert_int_equal(eng_parse_double(NULL, 0, 100, &d), -1);
	assert_true(d == 7);
}

static void check_duration(const char *s, long long want)
{
	long long ms = -1;
	if (eng_parse_duration_ms(s, &ms) != 0)
		fail_msg("rejected duration \"%s\"", s);
	if (ms != want)
		fail_msg("duration \"%s\": %lld ms, want %lld", s, ms, want);
}

static void test_duration_ok(void **state)
{
	(void)state;
	check_duration("500ms", 500);
	check_duration("5s", 5000);
	check_duration("5", 5000);
	check_duration("2min", 120000);
	check_duration("1h", 3600000);
	check_duration("0", 0);
	check_duration("0ms", 0);
	check_duration("90s", 90000);
	check_duration("8760h", 8760LL * 3600000); /* a year is the ceiling */
}

static void test_duration_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"-1s", "5x", "", "s", "ms", "5 s", " 5s", "5S", "5m", "5sec",
		"1.5s", "5ms5", "+5s", "8761h", "99999999999999999999",
		"9223372036854775807ms0",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		long long ms = 123;
		if (eng_parse_duration_ms(bad[i], &ms) == 0)
			fail_msg("accepted duration \"%s\" = %lld", bad[i], ms);
		assert_int_equal(ms, 123);
	}
	long long ms;
	assert_int_equal(eng_parse_duration_ms(NULL, &ms), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_normalises),
		cmocka_unit_test(test_uuid_rejects),
		cmocka_unit_test(test_uuid_v4),
		cmocka_unit_test(test_e164_accepts),
		cmocka_unit_test(test_e164_rejects),
		cmocka_unit_test(test_int_ok),
		cmocka_unit_test(test_int_rejects),
		cmocka_unit_test(test_double_ok),
		cmocka_unit_test(test_double_rejects),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
