#include "eng_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Howard Hinnant's civil-date algorithms (public domain). */
int64_t eng_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void eng_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dim[] = {31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Read exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

int eng_time_parse(const char *s, eng_time *out)
{
	const char *p = s;
	int Y, M, D, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0;

	if (!digits(&p, 4, &Y) || !expect(&p, '-') || !digits(&p, 2, &M) ||
	    !expect(&p, '-') || !digits(&p, 2, &D))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) ||
	    !expect(&p, ':') || !digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		int n = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (n < 6)
				frac = frac * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0 || n > 9)
			return -1;
		for (int i = n; i < 6; i++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (!digits(&p, 2, &oh) || !expect(&p, ':') ||
		    !digits(&p, 2, &om))
			return -1;
		if (oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	if (Y < 1 || M < 1 || M > 12 || D < 1 ||
	    (unsigned)D > days_in_month(Y, (unsigned)M))
		return -1;
	if (h > 23 || mi > 59 || sec > 59)
		return -1;

	int64_t days = eng_days_from_civil(Y, (unsigned)M, (unsigned)D);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec;
	secs -= (int64_t)sign * (oh * 3600 + om * 60);
	/* years 1 to 9999 in UTC too (an offset may push an edge out) */
	if (secs < eng_days_from_civil(1, 1, 1) * 86400 ||
	    secs >= eng_days_from_civil(10000, 1, 1) * 86400)
		return -1;
	*out = secs * ENG_USEC_PER_SEC + frac;
	return 0;
}

static void split(eng_time t, int64_t *y, unsigned *m, unsigned *d,
		  unsigned *hh, unsigned *mm, unsigned *ss, unsigned *us)
{
	int64_t secs = t / ENG_USEC_PER_SEC;
	int64_t rem = t % ENG_USEC_PER_SEC;
	if (rem < 0) {
		rem += ENG_USEC_PER_SEC;
		secs--;
	}
	int64_t days = secs / 86400;
	int64_t sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	eng_civil_from_days(days, y, m, d);
	*hh = (unsigned)(sod / 3600);
	*mm = (unsigned)(sod / 60 % 60);
	*ss = (unsigned)(sod % 60);
	*us = (unsigned)rem;
}

void eng_time_format(eng_time t, char out[32])
{
	int64_t y;
	unsigned m, d, hh, mm, ss, us;
	split(t, &y, &m, &d, &hh, &mm, &ss, &us);
	snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ", (long long)y,
		 m % 100, d % 100, hh % 100, mm % 100, ss % 100, us % 1000000);
}

void eng_time_format_ms(eng_time t, char out[32])
{
	int64_t y;
	unsigned m, d, hh, mm, ss, us;
	split(t, &y, &m, &d, &hh, &mm, &ss, &us);
	snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y,
		 m % 100, d % 100, hh % 100, mm % 100, ss % 100,
		 (us / 1000) % 1000);
}

void eng_time_format_date(eng_time t, char out[16])
{
	int64_t y;
	unsigned m, d, hh, mm, ss, us;
	split(t, &y, &m, &d, &hh, &mm, &ss, &us);
	snprintf(out, 16, "%04lld-%02u-%02u", (long long)(y % 10000), m % 100,
		 d % 100);
}

void eng_iso_week(eng_time t, int *iso_year, int *iso_week)
{
	int64_t secs = t / ENG_USEC_PER_SEC - (t % ENG_USEC_PER_SEC < 0);
	int64_t days = secs / 86400 - (secs % 86400 < 0);
	/* 1970-01-01 was a Thursday: weekday 1 = Monday ... 7 = Sunday. */
	int64_t wd = ((days % 7) + 7 + 3) % 7 + 1;
	int64_t thursday = days + (4 - wd);
	int64_t y;
	unsigned m, d;
	eng_civil_from_days(thursday, &y, &m, &d);
	int64_t jan1 = eng_days_from_civil(y, 1, 1);
	*iso_year = (int)y;
	*iso_week = (int)((thursday - jan1) / 7 + 1);
}

eng_time eng_time_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (eng_time)ts.tv_sec * ENG_USEC_PER_SEC + ts.tv_nsec / 1000;
}

int64_t eng_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool eng_every_due(struct eng_every *e, int64_t now)
{
	if (e->done && now - e->last < e->every_us)
		return false;
	e->done = true;
	e->last = now;
	return true;
}

void eng_every_soon(struct eng_every *e)
{
	e->done = false;
}
