/*
 * eng_time_parse: RFC 3339 timestamps from --now, --at and batch lines.
 * Beyond not crashing: an accepted timestamp, formatted back by the
 * library (eng_time_format, microseconds) and parsed again, is the same
 * instant; formatted to milliseconds it is the same instant cut to the
 * millisecond; its date and ISO week are in range.
 */
#include "fuzz.h"

#include "eng_time.h"

/* t rounded down to a multiple of unit (also for instants before 1970) */
static eng_time floor_to(eng_time t, eng_time unit)
{
	eng_time r = t % unit;
	return r < 0 ? t - r - unit : t - r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	eng_time t = 0;
	if (eng_time_parse(s, &t) == 0) {
		/* years 1 to 9999, in UTC too */
		CHECK(t >= eng_days_from_civil(1, 1, 1) * ENG_USEC_PER_DAY);
		CHECK(t < eng_days_from_civil(10000, 1, 1) * ENG_USEC_PER_DAY);

		char f[32];
		eng_time back = 0;
		eng_time_format(t, f);
		CHECK(strlen(f) == 27); /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
		CHECK(eng_time_parse(f, &back) == 0);
		CHECK(back == t);

		eng_time_format_ms(t, f);
		CHECK(strlen(f) == 24);
		CHECK(eng_time_parse(f, &back) == 0);
		CHECK(back == floor_to(t, 1000));

		char d[16];
		eng_time_format_date(t, d);
		CHECK(strlen(d) == 10);
		int64_t y;
		unsigned m, dd;
		eng_civil_from_days(floor_to(t, ENG_USEC_PER_DAY) / ENG_USEC_PER_DAY, &y, &m,
				    &dd);
		char want[16];
		snprintf(want, sizeof(want), "%04d-%02u-%02u", (int)y, m, dd);
		CHECK(strcmp(d, want) == 0);
		CHECK(eng_days_from_civil(y, m, dd) * ENG_USEC_PER_DAY ==
		      floor_to(t, ENG_USEC_PER_DAY));

		int iy, iw;
		eng_iso_week(t, &iy, &iw);
		CHECK(iw >= 1 && iw <= 53);
		CHECK(iy >= y - 1 && iy <= y + 1);
	}
	free(s);
	return 0;
}
