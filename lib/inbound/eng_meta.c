#include "eng_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_parse.h"

static const char *const status_names[] = {"sent", "delivered", "read", "failed"};

const char *eng_meta_status_name(enum eng_meta_status_kind k)
{
	return (unsigned)k < 4 ? status_names[k] : "unknown";
}

/* Message types that are a person writing: WHATSAPP.md lists these; a
 * type Meta adds later is counted and ignored until we know it. */
static bool known_type(const char *t)
{
	static const char *const types[] = {
		"text", "button", "interactive", "image", "audio", "video", "document",
		"sticker", "location", "contacts", "reaction", "order", "unsupported",
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
		if (strcmp(t, types[i]) == 0)
			return true;
	return false;
}

static const char *str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A Unix-seconds timestamp, as Meta writes it (a string of digits). */
static bool seconds(const json_t *o, const char *key, eng_time *at)
{
	const char *s = str(o, key);
	long long v;
	if (!s || eng_parse_int(s, 0, 253402300799LL, &v)) /* up to 9999-12-31 */
		return false;
	*at = v * ENG_USEC_PER_SEC;
	return true;
}

static void take_message(struct eng_meta_delivery *d, const json_t *m, eng_time limit)
{
	struct eng_meta_message x = {0};
	const char *from = str(m, "from");
	x.wamid = str(m, "id");
	x.type = str(m, "type");
	if (!x.wamid || !*x.wamid || !x.type || !from || !seconds(m, "timestamp", &x.at) ||
	    x.at > limit) {
		d->malformed++;
		return;
	}
	snprintf(x.phone, sizeof(x.phone), "+%s", from);
	if (!eng_is_e164(x.phone)) {
		d->malformed++;
		return;
	}
	if (!known_type(x.type)) {
		d->unknown_types++;
		return;
	}
	if (strcmp(x.type, "text") == 0)
		x.text = str(json_object_get(m, "text"), "body");
	else if (strcmp(x.type, "button") == 0)
		x.payload = str(json_object_get(m, "button"), "payload");
	else if (strcmp(x.type, "interactive") == 0)
		x.payload = str(json_object_get(json_object_get(m, "interactive"), "button_reply"),
				"id");
	ENG_GROW(d->messages, d->nmessages, d->messages_cap);
	d->messages[d->nmessages++] = x;
}

static void take_status(struct eng_meta_delivery *d, const json_t *s, eng_time limit)
{
	struct eng_meta_status x = {0};
	const char *st = str(s, "status");
	x.wamid = str(s, "id");
	if (!x.wamid || !*x.wamid || !st || !seconds(s, "timestamp", &x.at) || x.at > limit) {
		d->malformed++;
		return;
	}
	size_t k = 0;
	while (k < 4 && strcmp(st, status_names[k]) != 0)
		k++;
	if (k == 4) {
		d->unknown_statuses++;
		return;
	}
	x.status = (enum eng_meta_status_kind)k;
	const json_t *code = json_object_get(json_array_get(json_object_get(s, "errors"), 0),
					     "code");
	if (json_is_integer(code))
		x.error_code = (long)json_integer_value(code);
	const char *cb = str(s, "biz_opaque_callback_data");
	long long id;
	if (cb && strncmp(cb, "mq:", 3) == 0 && eng_parse_int(cb + 3, 1, INT64_MAX, &id) == 0)
		x.queue_id = id;
	const json_t *pricing = json_object_get(s, "pricing");
	x.category = str(pricing, "category");
	x.billable = json_is_true(json_object_get(pricing, "billable"));
	if (x.category && (!*x.category || strlen(x.category) > 40))
		x.category = NULL;
	ENG_GROW(d->statuses, d->nstatuses, d->statuses_cap);
	d->statuses[d->nstatuses++] = x;
}

/* The fields of the account's changes (WHATSAPP.md, "Webhooks: the
 * account's templates and limits"). */
static bool account_field(const char *field)
{
	return strcmp(field, "message_template_status_update") == 0 ||
	       strcmp(field, "message_template_quality_update") == 0 ||
	       strcmp(field, "phone_number_quality_update") == 0;
}

/* entry.time: Unix seconds, a number (or, leniently, a string of digits). */
static bool entry_time(const json_t *entry, long long *t)
{
	const json_t *v = json_object_get(entry, "time");
	if (json_is_integer(v)) {
		*t = (long long)json_integer_value(v);
		return *t >= 0 && *t <= 253402300799LL;
	}
	eng_time at;
	if (!seconds(entry, "time", &at))
		return false;
	*t = at / ENG_USEC_PER_SEC;
	return true;
}

static void take_account(struct eng_meta_delivery *d, const json_t *entry, const char *field,
			 json_t *value)
{
	long long t;
	if (!entry_time(entry, &t)) {
		d->malformed++;
		return;
	}
	json_array_append_new(d->account, json_pack("{s:s, s:I, s:O}", "field", field, "time",
						    (json_int_t)t, "value", value));
}

enum eng_status eng_meta_parse(const char *body, size_t len, eng_time now, int skew_s,
			       struct eng_meta_delivery *d, struct eng_err *err)
{
	memset(d, 0, sizeof(*d));
	d->account = json_array();
	json_error_t je;
	d->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!d->root)
		return eng_err_set(err, ENG_EDATA, "not valid JSON: %s (at byte %d)", je.text,
				   je.position);
	if (!json_is_object(d->root))
		return eng_err_set(err, ENG_EDATA, "not a JSON object");
	eng_time limit = now + (eng_time)skew_s * ENG_USEC_PER_SEC;
	size_t i, j, k;
	json_t *entry, *change, *item;
	json_array_foreach(json_object_get(d->root, "entry"), i, entry) {
		json_array_foreach(json_object_get(entry, "changes"), j, change) {
			const char *field = str(change, "field");
			json_t *value = json_object_get(change, "value");
			if (field && json_is_object(value) && account_field(field)) {
				take_account(d, entry, field, value);
				continue;
			}
			if (!field || strcmp(field, "messages") != 0 || !json_is_object(value)) {
				d->other_fields++;
				continue;
			}
			json_array_foreach(json_object_get(value, "messages"), k, item)
				take_message(d, item, limit);
			json_array_foreach(json_object_get(value, "statuses"), k, item)
				take_status(d, item, limit);
		}
	}
	return ENG_OK;
}

void eng_meta_release(struct eng_meta_delivery *d)
{
	json_decref(d->root);
	json_decref(d->account);
	free(d->messages);
	free(d->statuses);
	memset(d, 0, sizeof(*d));
}
