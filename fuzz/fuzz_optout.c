/*
 * optout-set --batch lines (eng_optout_parse_json), held to an independent
 * reading of the contract as fuzz_event is: an object with exactly one of
 * "user_id" and "phone", "opt_out" (a boolean) and "source" (whatsapp, web,
 * cli or api), optionally "at", "id" and "reason" (a string of at most 500
 * bytes), nothing else. What it accepts is carried over faithfully; the
 * item is released after every parse, accepted or not (ASan's leak check
 * holds eng_optout_item_release to freeing what parsing allocated).
 */
#include "fuzz.h"

#include "batch_ref.h"
#include "eng_optout.h"

static bool reference(const json_t *o, eng_time *at)
{
	const char *key;
	const json_t *v;
	int who = 0;
	bool value = false, source = false;
	*at = ENG_TIME_NONE;
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
		} else if (strcmp(key, "opt_out") == 0) {
			value = true;
			if (!json_is_boolean(v))
				return false;
		} else if (strcmp(key, "source") == 0) {
			source = true;
			const char *s = json_string_value(v);
			if (!s || !(strcmp(s, "whatsapp") == 0 || strcmp(s, "web") == 0 ||
				    strcmp(s, "cli") == 0 || strcmp(s, "api") == 0))
				return false;
		} else if (strcmp(key, "reason") == 0) {
			if (!json_is_string(v) || json_string_length(v) > 500)
				return false;
		} else {
			return false;
		}
	}
	return who == 1 && value && source;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_optout_item it;
	struct eng_err err = ENG_ERR_INIT;
	memset(&it, 0, sizeof(it)); /* as optout-set's batch reader does */
	it.line = 42;
	enum eng_status st = eng_optout_parse_json((const char *)data, size, &it, &err);

	json_error_t je;
	json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	eng_time at;
	bool valid = o && reference(o, &at);
	CHECK((st == ENG_OK) == valid);
	CHECK(it.line == 42);
	if (st == ENG_OK) {
		CHECK(err.status == ENG_OK);
		CHECK(ref_same_who(o, it.who.user_id, it.who.phone));
		CHECK(it.at == at);
		CHECK(it.opt_out == json_is_true(json_object_get(o, "opt_out")));
		CHECK(strcmp(it.source, json_string_value(json_object_get(o, "source"))) == 0);
		CHECK(eng_optout_source_valid(it.source));
		const json_t *v = json_object_get(o, "id");
		CHECK(strcmp(it.id, v ? json_string_value(v) : "") == 0);
		v = json_object_get(o, "reason");
		if (v)
			CHECK(it.reason && strcmp(it.reason, json_string_value(v)) == 0);
		else
			CHECK(it.reason == NULL);
	} else {
		CHECK(st == ENG_EDATA && err.status == ENG_EDATA);
		CHECK(err.msg[0] != '\0');
	}
	eng_optout_item_release(&it);
	CHECK(it.reason == NULL);
	json_decref(o);
	return 0;
}
