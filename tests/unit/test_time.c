/* eng_time: RFC 3339 parsing and formatting, civil dates, ISO weeks. */
#include "unit.h"

#include <stdbool.h>
#include <string.h>

#include "eng_time.h"

#define SEC ENG_USEC_PER_SEC

/* The instant of a UTC date and time, computed independently of the parser. */
static eng_time utc(int64_t y, unsigned m, unsigned d, int hh, int mi, int ss)
{
	return (eng_days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss) *
	       SEC;
}

static eng_time parse_ok(const char *s)
{
	eng_time t = INT64_MIN;
	if (eng_time_parse(s, &t) != 0)
		fail_msg("eng_time_parse rejected \"%s\"", s);
	return t;
}

static void check_rejected(const char *s)
{
	eng_time t = 12345;
	if (eng_time_parse(s, &t) == 0)
		fail_msg("eng_time_parse accepted \"%s\"", s);
}

static void test_civil_known_days(void **state)
{
	(void)state;
	assert_int_equal(eng_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(eng_days_from_civil(1970, 1, 2), 1);
	assert_int_equal(eng_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(eng_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(eng_days_from_civil(2026, 11, 22), 20779);
	assert_int_equal(eng_days_from_civil(1, 1, 1), -719162);
	/* 2024 is a leap year: Feb 29 sits between Feb 28 and Mar 1 */
	assert_int_equal(eng_days_from_civil(2024, 3, 1) -
				 eng_days_from_civil(2024, 2, 28),
			 2);
	assert_int_equal(eng_days_from_civil(1900, 3, 1) -
				 eng_days_from_civil(1900, 2, 28),
			 1);
}

static void test_civil_round_trip(void **state)
{
	(void)state;
	/* about 1500 BC to 2400 AD, crossing 0 and several 400-year eras */
	int64_t prev_y = 0;
	unsigned prev_m = 0, prev_d = 0;
	for (int64_t z = -1300000; z <= 160000; z++) {
		int64_t y;
		unsigned m, d;
		eng_civil_from_days(z, &y, &m, &d);
		if (m < 1 || m > 12 || d < 1 || d > 31)
			fail_msg("day %lld gave %lld-%u-%u", (long long)z,
				 (long long)y, m, d);
		if (eng_days_from_civil(y, m, d) != z)
			fail_msg("day %lld -> %lld-%u-%u -> %lld", (long long)z,
				 (long long)y, m, d,
				 (long long)eng_days_from_civil(y, m, d));
		/* consecutive days are consecutive dates */
		if (z > -1300000) {
			bool next_day = y == prev_y && m == prev_m && d == prev_d + 1;
			bool next_month = y == prev_y && m == prev_m + 1 && d == 1;
			bool next_year = y == prev_y + 1 && m == 1 && d == 1 &&
					 prev_m == 12 && prev_d == 31;
			if (!next_day && !next_month && !next_year)
				fail_msg("day %lld: %lld-%u-%u after %lld-%u-%u",
					 (long long)z, (long long)y, m, d,
					 (long long)prev_y, prev_m, prev_d);
		}
		prev_y = y;
		prev_m = m;
		prev_d = d;
	}
}

static void test_civil_negative(void **state)
{
	(void)state;
	int64_t y;
	unsigned m, d;
	eng_civil_from_days(-1, &y, &m, &d);
	assert_int_equal(y, 1969);
	assert_int_equal(m, 12);
	assert_int_equal(d, 31);
	eng_civil_from_days(-719162, &y, &m, &d);
	assert_int_equal(y, 1);
	assert_int_equal(m, 1);
	assert_int_equal(d, 1);
	eng_civil_from_days(eng_days_from_civil(-400, 2, 29), &y, &m, &d);
	assert_int_equal(y, -400);
	assert_int_equal(m, 2);
	assert_int_equal(d, 29);
}

static void test_parse_basic(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("2026-11-22T06:00:00Z"),
			 utc(2026, 11, 22, 6, 0, 0));
	assert_int_equal(parse_ok("2026-11-22T06:00:00Z"), 1795327200 * SEC);
	assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1 * SEC);
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), utc(1, 1, 1, 0, 0, 0));
	assert_int_equal(parse_ok("9999-12-31T23:59:59Z"),
			 utc(9999, 12, 31, 23, 59, 59));
}

static void test_parse_separators(void **state)
{
	(void)state;
	eng_time want = utc(2026, 11, 22, 6, 0, 0);
	assert_int_equal(parse_ok("2026-11-22t06:00:00z"), want);
	assert_int_equal(parse_ok("2026-11-22 06:00:00Z"), want);
	assert_int_equal(parse_ok("2026-11-22T06:00:00z"), want);
}

static void test_parse_fractions(void **state)
{
	(void)state;
	eng_time base = utc(2026, 11, 22, 6, 0, 0);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.5Z"), base + 500000);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.12Z"), base + 120000);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.123Z"), base + 123000);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.000001Z"), base + 1);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.123456Z"), base + 123456);
	/* beyond microseconds: truncated, not rounded */
	assert_int_equal(parse_ok("2026-11-22T06:00:00.1234567Z"), base + 123456);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.999999999Z"),
			 base + 999999);
	assert_int_equal(parse_ok("2026-11-22T06:00:00.0000009Z"), base);
	/* a fraction before an offset */
	assert_int_equal(parse_ok("2026-11-22T06:00:00.25+01:00"),
			 base - 3600 * SEC + 250000);
	check_rejected("2026-11-22T06:00:00.Z");
	check_rejected("2026-11-22T06:00:00.1234567890Z"); /* 10 digits */
	check_rejected("2026-11-22T06:00:00,5Z");
}

static void test_parse_offsets(void **state)
{
	(void)state;
	/* 06:00 at +05:30 is 00:30 UTC; at -03:00 it is 09:00 UTC */
	assert_int_equal(parse_ok("2026-11-22T06:00:00+05:30"),
			 utc(2026, 11, 22, 0, 30, 0));
	assert_int_equal(parse_ok("2026-11-22T06:00:00-03:00"),
			 utc(2026, 11, 22, 9, 0, 0));
	assert_int_equal(parse_ok("2026-11-22T06:00:00+00:00"),
			 utc(2026, 11, 22, 6, 0, 0));
	assert_int_equal(parse_ok("2026-11-22T06:00:00-00:00"),
			 utc(2026, 11, 22, 6, 0, 0));
	/* offsets move the instant across a date line */
	assert_int_equal(parse_ok("2026-01-01T01:00:00+02:00"),
			 utc(2025, 12, 31, 23, 0, 0));
	assert_int_equal(parse_ok("2026-12-31T23:00:00-02:00"),
			 utc(2027, 1, 1, 1, 0, 0));
	check_rejected("2026-11-22T06:00:00+0530");
	check_rejected("2026-11-22T06:00:00+05");
	check_rejected("2026-11-22T06:00:00+24:00");
	check_rejected("2026-11-22T06:00:00+05:60");
}

static void test_parse_calendar(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2024-02-29T12:00:00Z"),
			 utc(2024, 2, 29, 12, 0, 0));
	assert_int_equal(parse_ok("2000-02-29T00:00:00Z"),
			 utc(2000, 2, 29, 0, 0, 0));
	check_rejected("2026-02-29T00:00:00Z");
	check_rejected("1900-02-29T00:00:00Z");
	check_rejected("2026-02-30T00:00:00Z");
	check_rejected("2026-04-31T00:00:00Z");
	check_rejected("2026-13-01T00:00:00Z");
	check_rejected("2026-00-10T00:00:00Z");
	check_rejected("2026-01-00T00:00:00Z");
	check_rejected("2026-01-32T00:00:00Z");
	check_rejected("0000-01-01T00:00:00Z");
	/* years 1 to 9999, in UTC as written */
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), utc(1, 1, 1, 0, 0, 0));
	assert_int_equal(parse_ok("9999-12-31T23:59:59.999999Z"),
			 utc(9999, 12, 31, 23, 59, 59) + 999999);
	check_rejected("0001-01-01T00:30:00+01:00");
	check_rejected("9999-12-31T23:30:00-01:00");
	check_rejected("10000-01-01T00:00:00Z");
	assert_int_equal(parse_ok("2026-04-30T00:00:00Z"),
			 utc(2026, 4, 30, 0, 0, 0));
}

static void test_parse_clock(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2026-11-22T23:59:59Z"),
			 utc(2026, 11, 22, 23, 59, 59));
	check_rejected("2026-11-22T24:00:00Z");
	check_rejected("2026-11-22T23:60:00Z");
	check_rejected("2026-11-22T23:59:60Z"); /* no leap seconds */
	check_rejected("2026-11-22T6:00:00Z");
	check_rejected("2026-11-22T06:00Z");
}

static void test_parse_rejects_shapes(void **state)
{
	(void)state;
	check_rejected("");
	check_rejected("2026-11-22");
	check_rejected("2026-11-22T");
	check_rejected("2026-11-22T06:00:00");  /* no offset */
	check_rejected("2026-11-22T06:00:00Z "); /* trailing junk */
	check_rejected("2026-11-22T06:00:00Zx");
	check_rejected("2026-11-22T06:00:00+05:30x");
	check_rejected(" 2026-11-22T06:00:00Z");
	check_rejected("2026-11-22X06:00:00Z");
	check_rejected("2026/11/22T06:00:00Z");
	check_rejected("26-11-22T06:00:00Z");
	check_rejected("20261122T060000Z");
	check_rejected("now");
	check_rejected("2026-1a-22T06:00:00Z");
}

static void check_format(const char *in, const char *want)
{
	char out[32];
	eng_time_format(parse_ok(in), out);
	assert_string_equal(out, want);
}

static void test_format(void **state)
{
	(void)state;
	check_format("2026-11-22T06:00:00Z", "2026-11-22T06:00:00.000000Z");
	check_format("2026-11-22T06:00:00.5+05:30", "2026-11-22T00:30:00.500000Z");
	check_format("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z");
	check_format("1970-01-01T00:00:00.000001Z", "1970-01-01T00:00:00.000001Z");
	check_format("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z");
	check_format("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z");
	check_format("2024-02-29T12:34:56.789012Z", "2024-02-29T12:34:56.789012Z");

	char out[32];
	eng_time_format(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999999Z");
}

static void test_format_round_trip(void **state)
{
	(void)state;
	/* format(parse(format(t))) == format(t) and parse(format(t)) == t */
	static const eng_time samples[] = {
		0, 1, -1, 999999, -999999, 1000000, -1000001,
		INT64_C(1795327200123456), INT64_C(-62135596800000000),
		INT64_C(253402300799999999), INT64_C(951782400000000),
	};
	for (size_t i = 0; i < ARRAY_LEN(samples); i++) {
		char out[32];
		eng_time back;
		eng_time_format(samples[i], out);
		assert_int_equal(eng_time_parse(out, &back), 0);
		assert_int_equal(back, samples[i]);
	}
	for (eng_time t = -3 * ENG_USEC_PER_DAY; t < 3 * ENG_USEC_PER_DAY;
	     t += 7777777777) {
		char out[32];
		eng_time back;
		eng_time_format(t, out);
		assert_int_equal(eng_time_parse(out, &back), 0);
		assert_int_equal(back, t);
	}
}

static void test_format_ms(void **state)
{
	(void)state;
	char out[32];
	eng_time_format_ms(parse_ok("2026-11-22T06:00:00.123999Z"), out);
	assert_string_equal(out, "2026-11-22T06:00:00.123Z");
	eng_time_format_ms(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

static void test_format_date(void **state)
{
	(void)state;
	char out[16];
	eng_time_format_date(parse_ok("2026-11-22T06:00:00Z"), out);
	assert_string_equal(out, "2026-11-22");
	eng_time_format_date(parse_ok("2026-11-22T23:59:59.999999Z"), out);
	assert_string_equal(out, "2026-11-22");
	/* the UTC date, not the local one */
	eng_time_format_date(parse_ok("2026-11-22T23:00:00-03:00"), out);
	assert_string_equal(out, "2026-11-23");
	eng_time_format_date(-1, out);
	assert_string_equal(out, "1969-12-31");
	eng_time_format_date(0, out);
	assert_string_equal(out, "1970-01-01");
}

static void check_week(const char *ts, int want_year, int want_week)
{
	int y = 0, w = 0;
	eng_iso_week(parse_ok(ts), &y, &w);
	if (y != want_year || w != want_week)
		fail_msg("%s: got %d-W%02d, want %d-W%02d", ts, y, w, want_year,
			 want_week);
}

static void test_iso_week(void **state)
{
	(void)state;
	check_week("2026-12-31T12:00:00Z", 2026, 53);
	check_week("2027-01-01T12:00:00Z", 2026, 53);
	check_week("2027-01-03T23:59:59Z", 2026, 53);
	check_week("2027-01-04T00:00:00Z", 2027, 1);
	check_week("2024-12-30T00:00:00Z", 2025, 1);
	check_week("2021-01-03T12:00:00Z", 2020, 53);
	check_week("2021-01-04T12:00:00Z", 2021, 1);
	check_week("2026-11-22T06:00:00Z", 2026, 47);
	check_week("2026-11-23T00:00:00Z", 2026, 48);
	check_week("2026-01-01T00:00:00Z", 2026, 1);
	check_week("2025-12-29T00:00:00Z", 2026, 1);
	check_week("1970-01-01T00:00:00Z", 1970, 1);
	check_week("1969-12-31T23:59:59.999999Z", 1970, 1);
	check_week("1969-12-28T12:00:00Z", 1969, 52);
	check_week("1900-01-01T00:00:00Z", 1900, 1);
	/* the UTC date decides: Sunday 23:00 at -03:00 is Monday UTC */
	check_week("2026-11-22T23:00:00-03:00", 2026, 48);
}

static void test_iso_week_consistent(void **state)
{
	(void)state;
	/* every Monday starts a new week, other days keep the week */
	int py = 0, pw = 0;
	for (int64_t day = eng_days_from_civil(1999, 1, 1);
	     day <= eng_days_from_civil(2031, 12, 31); day++) {
		int y, w;
		eng_iso_week(day * ENG_USEC_PER_DAY + 1, &y, &w);
		assert_true(w >= 1 && w <= 53);
		int64_t wd = ((day % 7) + 7 + 3) % 7 + 1; /* 1 = Monday */
		if (py) {
			if (wd == 1)
				assert_true((y == py && w == pw + 1) ||
					    (y == py + 1 && w == 1));
			else
				assert_true(y == py && w == pw);
		}
		py = y;
		pw = w;
	}
}

/* Due at once, whenever the machine booted (the monotonic clock starts at
 * boot: a receiver started 5 s after boot must purge at start too). */
static void test_every(void **state)
{
	(void)state;
	const int64_t hour = 3600 * SEC;
	int64_t boots[] = {5 * SEC, 59 * 60 * SEC, 30 * 86400 * SEC};
	for (size_t i = 0; i < sizeof(boots) / sizeof(*boots); i++) {
		int64_t t = boots[i];
		struct eng_every e = ENG_EVERY(hour);
		assert_true(eng_every_due(&e, t));
		assert_false(eng_every_due(&e, t));
		assert_false(eng_every_due(&e, t + hour - 1));
		assert_true(eng_every_due(&e, t + hour));
		assert_false(eng_every_due(&e, t + hour + 1));
		eng_every_soon(&e);
		assert_true(eng_every_due(&e, t + hour + 2));
		assert_false(eng_every_due(&e, t + hour + 3));
	}
}

static void test_now_and_mono(void **state)
{
	(void)state;
	eng_time t = eng_time_now();
	assert_true(t > utc(2020, 1, 1, 0, 0, 0));
	int64_t a = eng_mono_us();
	int64_t b = eng_mono_us();
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_civil_known_days),
		cmocka_unit_test(test_civil_round_trip),
		cmocka_unit_test(test_civil_negative),
		cmocka_unit_test(test_parse_basic),
		cmocka_unit_test(test_parse_separators),
		cmocka_unit_test(test_parse_fractions),
		cmocka_unit_test(test_parse_offsets),
		cmocka_unit_test(test_parse_calendar),
		cmocka_unit_test(test_parse_clock),
		cmocka_unit_test(test_parse_rejects_shapes),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_ms),
		cmocka_unit_test(test_format_date),
		cmocka_unit_test(test_iso_week),
		cmocka_unit_test(test_iso_week_consistent),
		cmocka_unit_test(test_every),
		cmocka_unit_test(test_now_and_mono),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
