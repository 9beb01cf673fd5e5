/*
 * The small parsers of command lines and batch fields (eng_parse.h): UUIDs,
 * durations, integers and decimals, all fed the same text. Properties: an
 * accepted UUID comes back lowercase in 8-4-4-4-12 form and parses to
 * itself; an accepted duration is within a year and, written back in
 * milliseconds, parses to the same value; an accepted integer is within
 * its bounds and prints back as the text it came from (less a '+' and
 * leading zeros); an accepted decimal is finite and within its bounds.
 */
#include "fuzz.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>

#include "eng_parse.h"

static void uuid(const char *s)
{
	char out[37], again[37];
	if (eng_parse_uuid(s, out) != 0)
		return;
	CHECK(strlen(out) == 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			CHECK(out[i] == '-');
		else
			CHECK(isxdigit((unsigned char)out[i]) && !isupper((unsigned char)out[i]));
		CHECK(out[i] == tolower((unsigned char)s[i]));
	}
	CHECK(eng_parse_uuid(out, again) == 0);
	CHECK(strcmp(out, again) == 0);
}

static void duration(const char *s)
{
	long long ms, again;
	if (eng_parse_duration_ms(s, &ms) != 0)
		return;
	CHECK(ms >= 0 && ms <= 365LL * 24 * 3600 * 1000);
	char back[32];
	snprintf(back, sizeof(back), "%lldms", ms);
	CHECK(eng_parse_duration_ms(back, &again) == 0);
	CHECK(again == ms);
}

/* s without a leading '+' and without leading zeros (but one) */
static const char *canonical_int(const char *s, char *buf, size_t bufsz)
{
	const char *sign = "";
	if (*s == '+' || *s == '-') {
		if (*s == '-')
			sign = "-";
		s++;
	}
	while (s[0] == '0' && s[1])
		s++;
	if (*sign && strcmp(s, "0") == 0)
		sign = "";
	snprintf(buf, bufsz, "%s%s", sign, s);
	return buf;
}

static void integer(const char *s, long long min, long long max)
{
	long long v;
	if (eng_parse_int(s, min, max, &v) != 0)
		return;
	CHECK(v >= min && v <= max);
	char back[32], want[64];
	snprintf(back, sizeof(back), "%lld", v);
	if (strlen(s) < sizeof(want))
		CHECK(strcmp(back, canonical_int(s, want, sizeof(want))) == 0);
}

static void decimal(const char *s, double min, double max)
{
	double v;
	if (eng_parse_double(s, min, max, &v) != 0)
		return;
	CHECK(isfinite(v) && v >= min && v <= max);
	for (const char *p = s; *p; p++)
		CHECK(isdigit((unsigned char)*p) || *p == '.');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	uuid(s);
	duration(s);
	integer(s, LLONG_MIN, LLONG_MAX);
	integer(s, 1, 100000); /* e.g. --batch-size */
	decimal(s, 0, 1e9);
	decimal(s, 0.001, 10000); /* e.g. --rate */
	free(s);
	return 0;
}
