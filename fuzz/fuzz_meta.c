/*
 * Meta's webhook deliveries (eng_meta_parse), the body as it came off the
 * network. Properties: only a body that is not a JSON object is an error;
 * every item of every messages change is accounted for exactly once (read,
 * malformed, or of an unknown type or status), every account change (the
 * three account fields) is taken or malformed (no entry time), and every
 * other change is counted; what is read is well-formed (an E.164 sender, a known type and
 * status, nothing dated past now + skew, a goodbye reply of 0..3); the
 * delivery is released without a leak, after an error too.
 */
#include "fuzz.h"

#include <jansson.h>

#include "eng_inbound.h"
#include "eng_meta.h"
#include "eng_parse.h"

#define NOW (INT64_C(1795327200) * ENG_USEC_PER_SEC)
#define SKEW 300

static bool account_field(const json_t *field)
{
	static const char *const names[] = {"message_template_status_update",
					    "message_template_quality_update",
					    "phone_number_quality_update"};
	for (size_t k = 0; json_is_string(field) && k < 3; k++)
		if (strcmp(json_string_value(field), names[k]) == 0)
			return true;
	return false;
}

/* The items a delivery holds, counted with jansson. */
static void reference(const json_t *root, long long *items, long long *accounts,
		      long long *others)
{
	size_t i, j;
	json_t *entry, *change;
	*items = *accounts = *others = 0;
	json_array_foreach(json_object_get(root, "entry"), i, entry) {
		json_array_foreach(json_object_get(entry, "changes"), j, change) {
			const json_t *field = json_object_get(change, "field");
			const json_t *value = json_object_get(change, "value");
			if (account_field(field) && json_is_object(value)) {
				(*accounts)++;
				continue;
			}
			if (!json_is_string(field) ||
			    strcmp(json_string_value(field), "messages") != 0 ||
			    !json_is_object(value)) {
				(*others)++;
				continue;
			}
			*items += (long long)json_array_size(json_object_get(value, "messages"));
			*items += (long long)json_array_size(json_object_get(value, "statuses"));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_meta_delivery d;
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = eng_meta_parse((const char *)data, size, NOW, SKEW, &d, &err);

	json_error_t je;
	json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	CHECK((st == ENG_OK) == json_is_object(o));
	if (st == ENG_OK) {
		long long items, accounts, others;
		reference(o, &items, &accounts, &others);
		CHECK(d.other_fields == others);
		long long taken = (long long)json_array_size(d.account);
		CHECK(taken <= accounts);
		CHECK((long long)(d.nmessages + d.nstatuses) + d.malformed + d.unknown_types +
			      d.unknown_statuses ==
		      items + (accounts - taken));
		size_t k;
		json_t *c;
		json_array_foreach(d.account, k, c) {
			CHECK(account_field(json_object_get(c, "field")));
			CHECK(json_integer_value(json_object_get(c, "time")) >= 0);
			CHECK(json_is_object(json_object_get(c, "value")));
		}
		for (size_t i = 0; i < d.nmessages; i++) {
			const struct eng_meta_message *m = &d.messages[i];
			CHECK(m->wamid && m->wamid[0] && m->type);
			CHECK(eng_is_e164(m->phone));
			CHECK(m->at >= 0 && m->at <= NOW + SKEW * ENG_USEC_PER_SEC);
			CHECK(!(m->text && m->payload));
			CHECK(!m->text || strcmp(m->type, "text") == 0);
			const struct eng_inbound_msg im = {.text = m->text, .payload = m->payload};
			int g = eng_inbound_goodbye_reply(&im);
			CHECK(g >= 0 && g <= 3);
			if (m->payload)
				CHECK(g == 0 || (strlen(m->payload) == 9 &&
						 m->payload[8] == '0' + g));
		}
		for (size_t i = 0; i < d.nstatuses; i++) {
			const struct eng_meta_status *s = &d.statuses[i];
			CHECK(s->wamid && s->wamid[0]);
			CHECK((unsigned)s->status < 4);
			CHECK(strcmp(eng_meta_status_name(s->status), "unknown") != 0);
			CHECK(s->at >= 0 && s->at <= NOW + SKEW * ENG_USEC_PER_SEC);
			CHECK(s->queue_id >= 0);
			CHECK(!s->category || (s->category[0] && strlen(s->category) <= 40));
		}
	} else {
		CHECK(st == ENG_EDATA && err.msg[0] != '\0');
	}
	eng_meta_release(&d);
	CHECK(d.root == NULL && d.messages == NULL && d.statuses == NULL);
	json_decref(o);
	return 0;
}
