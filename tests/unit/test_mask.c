/* eng_mask: phone numbers never reach a log in the clear, and nothing else
 * (ids, timestamps, counts) is mangled on the way. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "eng_mask.h"

static size_t cc(const char *digits)
{
	return eng_country_code_len(digits, strlen(digits));
}

static void check_phone(const char *in, const char *want)
{
	char out[64];
	eng_mask_phone(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static char *scrub(const char *s)
{
	struct eng_buf b = ENG_BUF_INIT(1 << 16);
	eng_mask_scrub(&b, s, strlen(s));
	assert_false(b.overflow);
	return eng_buf_detach(&b);
}

static void check_scrub(const char *in, const char *want)
{
	char *got = scrub(in);
	assert_string_equal(got, want);
	free(got);
}

/* Text that holds no phone number comes out byte for byte. */
static void check_untouched(const char *in)
{
	check_scrub(in, in);
}

static void test_country_code_len(void **state)
{
	(void)state;
	assert_int_equal(cc("14155550123"), 1);   /* NANP */
	assert_int_equal(cc("74951234567"), 1);   /* Russia */
	assert_int_equal(cc("447911123456"), 2);  /* UK */
	assert_int_equal(cc("5511987654321"), 2); /* Brazil */
	assert_int_equal(cc("351912345678"), 3);  /* Portugal */
	assert_int_equal(cc("8801712345678"), 3); /* Bangladesh */
	assert_int_equal(cc("4915123456789"), 2); /* Germany */
	assert_int_equal(cc("8613800138000"), 2); /* China */
	assert_int_equal(cc("2348012345678"), 3); /* Nigeria */
	assert_int_equal(cc("212612345678"), 3);  /* Morocco */
	assert_int_equal(cc("20"), 2);            /* Egypt */
	/* never longer than what there is */
	assert_int_equal(eng_country_code_len("35", 2), 2);
	assert_int_equal(eng_country_code_len("3", 1), 1);
	assert_int_equal(eng_country_code_len("", 0), 0);
}

static void test_mask_phone_e164(void **state)
{
	(void)state;
	check_phone("+5511987654321", "+55*********21");
	check_phone("+14155550123", "+1********23");
	check_phone("+447911123456", "+44********56");
	check_phone("+351912345678", "+351*******78");
	check_phone("+8801712345678", "+880********78");
	/* without '+' the same digits are kept */
	check_phone("5511987654321", "55*********21");
}

static void test_mask_phone_keeps_length_hides_middle(void **state)
{
	(void)state;
	char out[64];
	eng_mask_phone("+5511987654321", out, sizeof(out));
	assert_int_equal(strlen(out), strlen("+5511987654321"));
	assert_null(strstr(out, "98765"));
	assert_null(strstr(out, "987"));
}

static void test_mask_phone_garbage(void **state)
{
	(void)state;
	char out[64];
	const char *bad[] = {"", "+", "hello", "+55 11 98765-4321",
			     "+5511987654321x", "(11) 98765-4321",
			     "+123456789012345678901234"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		eng_mask_phone(bad[i], out, sizeof(out));
		/* no digit of the input survives */
		for (const char *p = out; *p; p++)
			if (*p >= '0' && *p <= '9')
				fail_msg("digit kept masking \"%s\": \"%s\"",
					 bad[i], out);
		assert_true(strlen(out) > 0);
	}
	check_phone("hello", "***");
	check_phone("+55 11 98765-4321", "+***");
	/* too short to show any digit safely */
	check_phone("+1415", "+****");
}

static void test_mask_phone_small_output(void **state)
{
	(void)state;
	char out[6];
	memset(out, 'X', sizeof(out));
	eng_mask_phone("+5511987654321", out, sizeof(out));
	assert_string_equal(out, "+55**");
	char one[1] = {'X'};
	eng_mask_phone("+5511987654321", one, sizeof(one));
	assert_int_equal(one[0], '\0');
}

static void test_scrub_plus_number_in_text(void **state)
{
	(void)state;
	check_scrub("Key (phone_e164)=(+5511987654321) already exists",
		    "Key (phone_e164)=(+55*********21) already exists");
	check_scrub("+5511987654321", "+55*********21");
	check_scrub("to +14155550123, +447911123456.",
		    "to +1********23, +44********56.");
	check_scrub("phone=+5511987654321", "phone=+55*********21");
	check_scrub("\"+5511987654321\"", "\"+55*********21\"");
	/* 8 and 15 digits after '+' are both numbers */
	check_scrub("+12345678", "+1*****78");
	check_scrub("+123456789012345", "+1************45");
}

static void test_scrub_bare_run(void **state)
{
	(void)state;
	check_scrub("5511987654321", "55*********21");
	check_scrub("user 5511987654321 failed", "user 55*********21 failed");
	check_scrub("(5511987654321)", "(55*********21)");
	check_scrub("a\n5511987654321\n", "a\n55*********21\n");
	check_scrub("1415555012", "1*******12"); /* 10 digits */
}

static void test_scrub_leaves_uuids(void **state)
{
	(void)state;
	check_untouched("1b4e28ba-2fa1-11d2-883f-012345678901");
	check_untouched("user 1b4e28ba-2fa1-11d2-883f-012345678901 done");
	check_untouched("12345678-1234-1234-1234-123456789012");
	check_untouched("(00000000-0000-0000-0000-000000000000)");
}

static void test_scrub_leaves_timestamps(void **state)
{
	(void)state;
	check_untouched("2026-11-22T06:00:00Z");
	check_untouched("2026-11-22T06:00:00.123456Z");
	check_untouched("2026-11-22 06:00:00.123456789+05:30");
	check_untouched("at 2026-11-22T06:00:00.000Z the job started");
}

static void test_scrub_leaves_short_numbers_and_words(void **state)
{
	(void)state;
	check_untouched("attempt 3");
	check_untouched("code 131026");
	check_untouched("took 123456789 us"); /* 9 digits */
	check_untouched("sha256 abc5511987654321");
	check_untouched("id5511987654321");
	check_untouched("5511987654321abc");
	check_untouched("v1.2.3 build 42");
	check_untouched("+1234567");            /* 7 digits after '+' */
	check_untouched("+1234567890123456");   /* 16 digits after '+' */
	check_untouched("1234567890123456");    /* 16-digit bare run */
	check_untouched("");
	check_untouched("no digits at all");
}

static void test_scrub_respects_n(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(256);
	const char *s = "abc+5511987654321";
	eng_mask_scrub(&b, s, 3);
	assert_string_equal(eng_buf_str(&b), "abc");
	eng_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_country_code_len),
		cmocka_unit_test(test_mask_phone_e164),
		cmocka_unit_test(test_mask_phone_keeps_length_hides_middle),
		cmocka_unit_test(test_mask_phone_garbage),
		cmocka_unit_test(test_mask_phone_small_output),
		cmocka_unit_test(test_scrub_plus_number_in_text),
		cmocka_unit_test(test_scrub_bare_run),
		cmocka_unit_test(test_scrub_leaves_uuids),
		cmocka_unit_test(test_scrub_leaves_timestamps),
		cmocka_unit_test(test_scrub_leaves_short_numbers_and_words),
		cmocka_unit_test(test_scrub_respects_n),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
