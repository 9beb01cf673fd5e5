/* Validators and parsers for what arrives on command lines and in batches. */
#ifndef ENG_PARSE_H
#define ENG_PARSE_H

#include <stdbool.h>

/* 8-4-4-4-12 hex digits (either case); out gets the lowercase form. */
int eng_parse_uuid(const char *s, char out[37]);

/* E.164 as stored: ^\+[1-9][0-9]{7,14}$ */
bool eng_is_e164(const char *s);

/* A whole decimal integer in [min, max]; 0 or -1. */
int eng_parse_int(const char *s, long long min, long long max, long long *out);

/* A non-negative decimal number (e.g. "80", "2.5"); 0 or -1. */
int eng_parse_double(const char *s, double min, double max, double *out);

/* "500ms", "5s", "5" (seconds), "2min", "1h", "8d" -> milliseconds (at
 * most a year); 0 or -1. */
int eng_parse_duration_ms(const char *s, long long *ms);

/* A fresh random (version 4) UUID. */
void eng_uuid_v4(char out[37]);

#endif
