/*
 * Instants as microseconds since the Unix epoch, UTC. Programs read "now"
 * once per run (from --now or the database's clock) and do all date
 * arithmetic against it.
 */
#ifndef ENG_TIME_H
#define ENG_TIME_H

#include <stdbool.h>
#include <stdint.h>

typedef int64_t eng_time;

/* No instant given (e.g. no "at": the database's now() will do). Not 0,
 * which is a real instant (1970-01-01T00:00:00Z). */
#define ENG_TIME_NONE INT64_MIN

#define ENG_USEC_PER_SEC INT64_C(1000000)

/* How far ahead of the database's clock an inbound change or event may be
 * dated: ordinary clock skew between channels. Further ahead is refused (a
 * wrong clock would otherwise freeze last-write-wins until then). */
#define ENG_FUTURE_SKEW_S 300
#define ENG_USEC_PER_DAY (INT64_C(86400) * ENG_USEC_PER_SEC)

/* Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t eng_days_from_civil(int64_t y, unsigned m, unsigned d);
void eng_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 'T' may be 't' or
 * a space, 'Z' may be 'z'. Years 0001-9999, real calendar dates, hour
 * 00-23, seconds 00-59. Returns 0, or -1 when the text is not one. */
int eng_time_parse(const char *s, eng_time *out);

/* "2026-11-22T06:00:00.000000Z": exact, and what PostgreSQL parses. */
void eng_time_format(eng_time t, char out[32]);
/* "2026-11-22T06:00:00.000Z": for people and logs. */
void eng_time_format_ms(eng_time t, char out[32]);
/* "2026-11-22": the UTC date. */
void eng_time_format_date(eng_time t, char out[16]);

/* ISO 8601 week-numbering year and week (1..53) of the UTC date of t. */
void eng_iso_week(eng_time t, int *iso_year, int *iso_week);

eng_time eng_time_now(void);
/* Monotonic clock in microseconds, for durations. It counts from boot, so
 * 0 is not "long ago": nothing may be dated from it (struct eng_every). */
int64_t eng_mono_us(void);

/* Something done every every_us on the monotonic clock: due at the first
 * call, then every_us after the last time it was done. */
struct eng_every {
	int64_t every_us;
	int64_t last;  /* when it was last done (monotonic) */
	bool done;     /* it was done once */
};

#define ENG_EVERY(us) {(us), 0, false}

/* Whether it is due at now (eng_mono_us()); if so, it counts as done now. */
bool eng_every_due(struct eng_every *e, int64_t now);
/* Make it due at the next call (e.g. after a reconnect). */
void eng_every_soon(struct eng_every *e);

#endif
