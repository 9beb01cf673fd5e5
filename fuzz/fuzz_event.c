/*
 * engagement-event --batch lines (eng_event_parse_json). The line is
 * parsed a second time with jansson and checked against an independent
 * reading of the contract: the parser accepts exactly the lines that are
 * an object with exactly one of "user_id" (a UUID) and "phone" (E.164),
 * exactly one of "activity": true, "goodbye_reply": 1..3 and "trigger"
 * (a trigger's name), optionally "at" (RFC 3339, not after latest) and
 * "id" (1..128 printable bytes), and nothing else; what it accepts it
 * carries over faithfully; what it refuses is ENG_EDATA with a message.
 */
#include "fuzz.h"

#include "batch_ref.h"
#include "eng_event.h"

/* 2026-11-22T06:00:00Z, the bats suites' usual now */
#define NOW (INT64_C(1795327200) * ENG_USEC_PER_SEC)
#define LATEST (NOW + ENG_FUTURE_SKEW_S * ENG_USEC_PER_SEC)

/* Whether o is a valid line, by the contract; *at gets its instant. */
static bool reference(const json_t *o, eng_time *at)
{
	const char *key;
	const json_t *v;
	int who = 0, what = 0;
	*at = NOW;
	if (!json_is_object(o))
		return false;
	json_object_foreach((json_t *)o, key, v) {
		if (strcmp(key, "user_id") == 0) {
			who++;
			if (!ref_user_id(v))
				return false;
		} else if (strcmp(key, "phone") == 0) {
			who++;
			if (!ref_phone(v))
				return false;
		} else if (strcmp(key, "at") == 0) {
			if (!ref_at(v, at))
				return false;
		} else if (strcmp(key, "id") == 0) {
			if (!ref_id(v))
				return false;
		} else if (strcmp(key, "activity") == 0) {
			what++;
			if (!json_is_true(v))
				return false;
		} else if (strcmp(key, "goodbye_reply") == 0) {
			what++;
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 3)
				return false;
		} else if (strcmp(key, "trigger") == 0) {
			what++;
			if (!json_is_string(v) || eng_trigger_parse(json_string_value(v)) < 0)
				return false;
		} else {
			return false;
		}
	}
	return who == 1 && what == 1 && *at <= LATEST;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	memset(&ev, 0xA5, sizeof(ev)); /* whatever the caller's memory held */
	ev.line = 42;
	enum eng_status st = eng_event_parse_json((const char *)data, size, NOW, LATEST,
						  &ev, &err);

	json_error_t je;
	json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	eng_time at;
	bool valid = o && reference(o, &at);
	CHECK((st == ENG_OK) == valid);
	CHECK(ev.line == 42);
	if (st == ENG_OK) {
		CHECK(err.status == ENG_OK);
		CHECK(ref_same_who(o, ev.who.user_id, ev.who.phone));
		CHECK(ev.at == at);
		const json_t *v;
		if ((v = json_object_get(o, "activity")) != NULL) {
			CHECK(ev.activity);
		} else if ((v = json_object_get(o, "goodbye_reply")) != NULL) {
			CHECK(!ev.activity);
			CHECK(ev.trigger == ENG_TR_GOODBYE_RESPONSE_1 + json_integer_value(v) - 1);
		} else {
			v = json_object_get(o, "trigger");
			CHECK(!ev.activity);
			CHECK(strcmp(eng_trigger_name(ev.trigger), json_string_value(v)) == 0);
		}
		v = json_object_get(o, "id");
		CHECK(strcmp(ev.id, v ? json_string_value(v) : "") == 0);
	} else {
		CHECK(st == ENG_EDATA && err.status == ENG_EDATA);
		CHECK(err.msg[0] != '\0');
		CHECK(strlen(err.msg) < sizeof(err.msg));
	}
	json_decref(o);
	return 0;
}
