/* eng_json: the hand-written escaper behind log lines, UTF-8 validation and
 * eng_json_str and eng_json_masked. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_json.h"

/* Escape n bytes of s and hand back the result (caller frees). */
static char *esc_n(const char *s, size_t n, size_t max_in)
{
	struct eng_buf b = ENG_BUF_INIT(1 << 20);
	assert_int_equal(eng_json_escape(&b, s, n, max_in), 0);
	assert_false(b.overflow);
	return eng_buf_detach(&b);
}

static char *esc(const char *s)
{
	return esc_n(s, strlen(s), 0);
}

static void check_esc(const char *in, const char *want)
{
	char *got = esc(in);
	assert_string_equal(got, want);
	free(got);
}

/* The escaped text must be a JSON string jansson accepts; returns its
 * decoded value (caller frees). */
static char *decode(const char *json)
{
	json_error_t jerr;
	json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
	if (!v)
		fail_msg("not valid JSON: %s (%s)", json, jerr.text);
	assert_true(json_is_string(v));
	char *s = strdup(json_string_value(v));
	json_decref(v);
	return s;
}

/* Round trip: what jansson decodes equals the bytes we escaped. */
static void check_round_trip(const char *in, size_t n)
{
	char *e = esc_n(in, n, 0);
	json_error_t jerr;
	json_t *v = json_loadb(e, strlen(e), JSON_DECODE_ANY | JSON_ALLOW_NUL,
			       &jerr);
	if (!v)
		fail_msg("not valid JSON: %s (%s)", e, jerr.text);
	assert_true(json_is_string(v));
	assert_int_equal(json_string_length(v), n);
	assert_memory_equal(json_string_value(v), in, n);
	json_decref(v);
	free(e);
}

static void test_escape_plain(void **state)
{
	(void)state;
	check_esc("", "\"\"");
	check_esc("hello world", "\"hello world\"");
	check_esc("a/b", "\"a/b\"");
}

static void test_escape_quote_backslash(void **state)
{
	(void)state;
	check_esc("say \"hi\"", "\"say \\\"hi\\\"\"");
	check_esc("C:\\path\\", "\"C:\\\\path\\\\\"");
	check_esc("\\\"", "\"\\\\\\\"\"");
}

static void test_escape_short_controls(void **state)
{
	(void)state;
	check_esc("a\nb", "\"a\\nb\"");
	check_esc("a\rb", "\"a\\rb\"");
	check_esc("a\tb", "\"a\\tb\"");
	check_esc("a\bb", "\"a\\bb\"");
	check_esc("a\fb", "\"a\\fb\"");
	check_esc("\r\n", "\"\\r\\n\"");
}

static void test_escape_other_controls(void **state)
{
	(void)state;
	check_esc("\x01", "\"\\u0001\"");
	check_esc("\x1b[31m", "\"\\u001b[31m\"");
	check_esc("\x1f", "\"\\u001f\"");
	check_esc("\x0b", "\"\\u000b\"");
	check_esc("x\x7fy", "\"x\\u007fy\"");
	/* an embedded NUL is data too when a length is given */
	char *e = esc_n("a\0b", 3, 0);
	assert_string_equal(e, "\"a\\u0000b\"");
	free(e);
}

static void test_escape_every_ascii_byte_round_trips(void **state)
{
	(void)state;
	char all[128];
	for (int i = 0; i < 128; i++)
		all[i] = (char)i;
	check_round_trip(all, sizeof(all));
	/* and no raw control byte is left in the output */
	char *e = esc_n(all, sizeof(all), 0);
	for (const char *p = e; *p; p++)
		assert_true((unsigned char)*p >= 0x20 &&
			    (unsigned char)*p != 0x7f);
	free(e);
}

static void test_escape_utf8_passes_through(void **state)
{
	(void)state;
	check_esc("a\xc3\xa7\xc3\xa3o", "\"a\xc3\xa7\xc3\xa3o\""); /* ação */
	check_esc("\xe2\x82\xac", "\"\xe2\x82\xac\"");             /* € */
	check_esc("\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\"");   /* 😀 */
	check_esc("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");     /* U+10FFFF */
	check_esc("\xc2\x80", "\"\xc2\x80\"");                     /* U+0080 */
	const char *s = "ação \xf0\x9f\x98\x80 \xe2\x82\xac";
	check_round_trip(s, strlen(s));
}

static void test_escape_invalid_utf8_replaced(void **state)
{
	(void)state;
	/* a lone 0xff, a lone continuation byte */
	check_esc("a\xff" "b", "\"a\\ufffdb\"");
	check_esc("\x80", "\"\\ufffd\"");
	/* overlong encoding of '/' */
	check_esc("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	/* UTF-16 surrogate U+D800 */
	check_esc("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	/* U+110000, above the Unicode range */
	check_esc("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	/* 0xF5.. can never start a sequence */
	check_esc("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

static void test_escape_truncated_sequence(void **state)
{
	(void)state;
	/* "x" + the first two bytes of the euro sign + "y" */
	char *e = esc("x\xe2\x82y");
	assert_true(strncmp(e, "\"x\\ufffd", 8) == 0);
	size_t n = strlen(e);
	assert_true(n > 3 && strcmp(e + n - 2, "y\"") == 0);
	for (const char *p = e; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	free(decode(e));
	free(e);

	/* a multibyte sequence cut by the end of the input */
	e = esc("ab\xc3");
	assert_string_equal(e, "\"ab\\ufffd\"");
	free(e);
	e = esc("\xf0\x9f\x98");
	assert_true(strncmp(e, "\"\\ufffd", 7) == 0);
	for (const char *p = e; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	free(decode(e));
	free(e);
}

static void test_escape_invalid_is_valid_json(void **state)
{
	(void)state;
	const char *bad = "\xff\xfe\"\\\n\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"
			  "ok\x01";
	char *e = esc(bad);
	char *d = decode(e);
	/* bad bytes became U+FFFD, the rest survived as it was */
	const char *head = "\xef\xbf\xbd\xef\xbf\xbd\"\\\n\xef\xbf\xbd";
	assert_memory_equal(d, head, strlen(head));
	size_t n = strlen(d);
	assert_true(n > 3 && strcmp(d + n - 3, "ok\x01") == 0);
	assert_true(eng_utf8_valid(d, n));
	free(d);
	free(e);
}

static void test_escape_cut_ascii(void **state)
{
	(void)state;
	char *e = esc_n("abcdefgh", 8, 3);
	assert_string_equal(e, "\"abc...\"");
	free(e);
	/* exactly max_in bytes: nothing was cut, no ellipsis */
	e = esc_n("abc", 3, 3);
	assert_string_equal(e, "\"abc\"");
	free(e);
	/* max_in counts input bytes, not escaped output */
	e = esc_n("\n\n\n\n", 4, 2);
	assert_string_equal(e, "\"\\n\\n...\"");
	free(e);
	/* 0 means no limit */
	e = esc_n("abcdefgh", 8, 0);
	assert_string_equal(e, "\"abcdefgh\"");
	free(e);
}

static void test_escape_cut_on_char_boundary(void **state)
{
	(void)state;
	/* "ação": a(1) ç(2) ã(2) o(1). A cut at 3 bytes falls after ç. */
	char *e = esc_n("a\xc3\xa7\xc3\xa3o", 6, 3);
	assert_string_equal(e, "\"a\xc3\xa7...\"");
	free(decode(e));
	free(e);
	/* emoji never split: every cut gives valid UTF-8 */
	const char *s = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80";
	for (size_t max = 4; max <= 12; max += 4) {
		e = esc_n(s, strlen(s), max);
		assert_true(eng_utf8_valid(e, strlen(e)));
		free(decode(e));
		free(e);
	}
}

/* Escape into dst (freeing the heap copy first), so that a failing
 * comparison leaks nothing. */
static void esc_into(char *dst, size_t dstsz, const char *s, size_t n,
		     size_t max_in)
{
	char *e = esc_n(s, n, max_in);
	snprintf(dst, dstsz, "%s", e);
	free(e);
}

/* eng_json.h: "At most max_in input bytes are taken (cut on a character
 * boundary)". A character straddling the limit must be left out. */
static void test_escape_cut_takes_at_most_max_in(void **state)
{
	(void)state;
	char got[64];
	esc_into(got, sizeof(got), "a\xc3\xa7\xc3\xa3o", 6, 2); /* ç: bytes 1-2 */
	assert_string_equal(got, "\"a...\"");
	const char *s = "ab\xf0\x9f\x98\x80";
	for (size_t max = 3; max <= 5; max++) {
		esc_into(got, sizeof(got), s, strlen(s), max);
		assert_string_equal(got, "\"ab...\"");
	}
}

static void test_escape_refuses_past_max(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(8);
	assert_int_not_equal(eng_json_escape(&b, "0123456789", 10, 0), 0);
	assert_true(b.overflow);
	eng_buf_release(&b);
}

static void test_utf8_seq(void **state)
{
	(void)state;
	const unsigned char *u = (const unsigned char *)"A";
	assert_int_equal(eng_utf8_seq(u, 1), 1);
	assert_int_equal(eng_utf8_seq(u, 0), 0);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xc3\xa7", 2), 2);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xc3\xa7", 1), 0);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);
	assert_int_equal(
		eng_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xe0\x80\x80", 3), 0);
	assert_int_equal(
		eng_utf8_seq((const unsigned char *)"\xf0\x80\x80\x80", 4), 0);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xc1\xbf", 2), 0);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xc3\x28", 2), 0);
	/* U+FFFF and U+E000 (just past the surrogates) are fine */
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xef\xbf\xbf", 3), 3);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xee\x80\x80", 3), 3);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xed\x9f\xbf", 3), 3);
	assert_int_equal(eng_utf8_seq((const unsigned char *)"\xed\xbf\xbf", 3), 0);
}

static void test_utf8_valid(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{"", true},
		{"plain ascii", true},
		{"a\xc3\xa7\xc3\xa3o", true},
		{"\xf0\x9f\x98\x80", true},
		{"\xf4\x8f\xbf\xbf", true},
		{"\xff", false},
		{"abc\x80", false},
		{"\xc3", false},
		{"\xe2\x82", false},
		{"\xf0\x9f\x98", false},
		{"\xc0\xaf", false},
		{"\xe0\x80\xaf", false},
		{"\xed\xa0\x80", false},
		{"\xed\xbf\xbf", false},
		{"\xf4\x90\x80\x80", false},
		{"\xf8\x88\x80\x80\x80", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool got = eng_utf8_valid(cases[i].s, strlen(cases[i].s));
		if (got != cases[i].ok)
			fail_msg("eng_utf8_valid case %zu: got %d", i, got);
	}
	/* n bounds the check: the invalid byte after n is not looked at */
	assert_true(eng_utf8_valid("ab\xff", 2));
}

static void test_json_text_null(void **state)
{
	(void)state;
	json_t *v = eng_json_str(NULL);
	assert_non_null(v);
	assert_true(json_is_null(v));
	json_decref(v);
}

static void test_json_text_plain(void **state)
{
	(void)state;
	json_t *v = eng_json_str("ação \xf0\x9f\x98\x80 \"q\"\n");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v),
			    "ação \xf0\x9f\x98\x80 \"q\"\n");
	json_decref(v);
	v = eng_json_str("");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), "");
	json_decref(v);
}

static void test_json_text_invalid_utf8(void **state)
{
	(void)state;
	json_t *v = eng_json_str("a\xff" "b\xc0\xaf" "c");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v),
			    "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c");
	char *dump = eng_json_dump(v);
	assert_true(eng_utf8_valid(dump, strlen(dump)));
	free(dump);
	json_decref(v);
}

static void test_json_text_masks_phones(void **state)
{
	(void)state;
	json_t *v = eng_json_masked(
		"Key (phone_e164)=(+5511987654321) already exists");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v),
			    "Key (phone_e164)=(+55*********21) already exists");
	json_decref(v);
	v = eng_json_masked("call 14155550123 now");
	assert_string_equal(json_string_value(v), "call 1********23 now");
	json_decref(v);
}

/* What is sent or stored is never masked: digits and phone numbers in a
 * template parameter reach the API as they were queued. */
static void test_json_str_keeps_digits(void **state)
{
	(void)state;
	const char *in = "call +551130001234, ref 1234567890123";
	json_t *v = eng_json_str(in);
	assert_string_equal(json_string_value(v), in);
	json_decref(v);
}

static void test_json_dump(void **state)
{
	(void)state;
	json_t *o = json_pack("{s:i, s:s}", "a", 1, "b", "x");
	char *s = eng_json_dump(o);
	/* compact: no spaces after ':' or ',' */
	assert_null(strchr(s, ' '));
	assert_null(strchr(s, '\n'));
	json_t *back = json_loads(s, 0, NULL);
	assert_non_null(back);
	assert_true(json_equal(o, back));
	json_decref(back);
	free(s);
	json_decref(o);

	json_t *n = json_integer(42);
	s = eng_json_dump(n); /* scalars too */
	assert_string_equal(s, "42");
	free(s);
	json_decref(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_plain),
		cmocka_unit_test(test_escape_quote_backslash),
		cmocka_unit_test(test_escape_short_controls),
		cmocka_unit_test(test_escape_other_controls),
		cmocka_unit_test(test_escape_every_ascii_byte_round_trips),
		cmocka_unit_test(test_escape_utf8_passes_through),
		cmocka_unit_test(test_escape_invalid_utf8_replaced),
		cmocka_unit_test(test_escape_truncated_sequence),
		cmocka_unit_test(test_escape_invalid_is_valid_json),
		cmocka_unit_test(test_escape_cut_ascii),
		cmocka_unit_test(test_escape_cut_on_char_boundary),
		cmocka_unit_test(test_escape_cut_takes_at_most_max_in),
		cmocka_unit_test(test_escape_refuses_past_max),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_json_text_null),
		cmocka_unit_test(test_json_text_plain),
		cmocka_unit_test(test_json_text_invalid_utf8),
		cmocka_unit_test(test_json_text_masks_phones),
		cmocka_unit_test(test_json_str_keeps_digits),
		cmocka_unit_test(test_json_dump),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
