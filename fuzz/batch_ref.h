/*
 * An independent reading of the batch-line contract (DESIGN.md §2.3,
 * engagement-event and optout-set --batch), for fuzz_event and fuzz_optout
 * to hold the library's parsers to: the fields every line may carry.
 */
#ifndef ENG_FUZZ_BATCH_REF_H
#define ENG_FUZZ_BATCH_REF_H

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "eng_parse.h"
#include "eng_time.h"

/* "user_id": a UUID string */
static inline bool ref_user_id(const json_t *v)
{
	char out[37];
	return json_is_string(v) && eng_parse_uuid(json_string_value(v), out) == 0;
}

/* "phone": an E.164 string */
static inline bool ref_phone(const json_t *v)
{
	return json_is_string(v) && eng_is_e164(json_string_value(v));
}

/* "at": an RFC 3339 string */
static inline bool ref_at(const json_t *v, eng_time *at)
{
	return json_is_string(v) && eng_time_parse(json_string_value(v), at) == 0;
}

/* "id": 1 to 128 bytes, none a control character */
static inline bool ref_id(const json_t *v)
{
	if (!json_is_string(v))
		return false;
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t n = json_string_length(v);
	if (n < 1 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The user a parsed line names, as the line gave it. */
static inline bool ref_same_who(const json_t *o, const char *user_id, const char *phone)
{
	const json_t *u = json_object_get(o, "user_id"), *p = json_object_get(o, "phone");
	if (u) {
		char want[37];
		return eng_parse_uuid(json_string_value(u), want) == 0 &&
		       strcmp(want, user_id) == 0 && phone[0] == '\0';
	}
	return p && strcmp(json_string_value(p), phone) == 0;
}

#endif
