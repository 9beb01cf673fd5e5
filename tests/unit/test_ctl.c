/* engagement-ctl's core without a database (eng_ctl.h, eng_history.h): how
 * a command line combines, show's masking and its timeline. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_ctl.h"
#include "eng_history.h"

/* eng_ctl_check on the command line "CMD [EXTRA]" (CMD NULL: none), with
 * options a */
static enum eng_status check(struct eng_ctl_args a, const char *cmd, const char *extra,
			     struct eng_err *err)
{
	char w0[32] = "", w1[32] = "";
	char *argv[] = {w0, w1};
	snprintf(w0, sizeof(w0), "%s", cmd ? cmd : "");
	snprintf(w1, sizeof(w1), "%s", extra ? extra : "");
	struct eng_ctl c = {.a = a};
	*err = (struct eng_err)ENG_ERR_INIT;
	enum eng_status st = eng_ctl_check(&c, cmd ? (extra ? 2 : 1) : 0, argv, err);
	eng_ctl_release(&c);
	return st;
}

static void test_commands(void **state)
{
	(void)state;
	struct eng_err err;
	assert_int_equal(check((struct eng_ctl_args){.reason = "r"}, "pause", NULL, &err), ENG_OK);
	assert_int_equal(check((struct eng_ctl_args){0}, "pause", NULL, &err), ENG_EUSAGE);
	assert_non_null(strstr(err.msg, "--reason"));
	assert_int_equal(check((struct eng_ctl_args){0}, NULL, NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){0}, "frobnicate", NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){0}, "pauses", "x", &err), ENG_EUSAGE);
	/* another command's options are named */
	assert_int_equal(check((struct eng_ctl_args){.key = "k", .status = "failed", .until = "x"},
			       "cancel", NULL, &err), ENG_EUSAGE);
	assert_string_equal(err.msg, "cancel does not take --until, --status");
	assert_int_equal(check((struct eng_ctl_args){0}, "cancel", NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){.dry_run = true}, "cancel", NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){0}, "limit", NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){.tier = "TIER_2K"}, "limit", NULL, &err), ENG_OK);
	assert_int_equal(check((struct eng_ctl_args){0}, "show", NULL, &err), ENG_EUSAGE);
	assert_int_equal(check((struct eng_ctl_args){.user = "00000000-0000-4000-8000-000000000001",
						    .phone = "+5511987654321"},
			       "show", NULL, &err), ENG_EUSAGE);
}

static void test_malformed_values_are_data_errors(void **state)
{
	(void)state;
	struct eng_err err;
	assert_int_equal(check((struct eng_ctl_args){.user = "nope"}, "show", NULL, &err), ENG_EDATA);
	assert_string_equal(err.event, "invalid_input");
	assert_int_equal(check((struct eng_ctl_args){.phone = "5511"}, "show", NULL, &err), ENG_EDATA);
	assert_int_equal(check((struct eng_ctl_args){.reason = "r", .until = "tomorrow"}, "pause", NULL,
			       &err), ENG_EDATA);
	assert_non_null(strstr(err.msg, "--until"));
	assert_int_equal(check((struct eng_ctl_args){.phone = "+5511987654321"}, "show", NULL, &err),
			 ENG_OK);
}

static void test_mask_param(void **state)
{
	(void)state;
	json_t *in[] = {json_string("Maria"), json_integer(42), json_string(""),
			json_string("\xc3\x89lodie"), json_true()};
	const char *want[] = {"M***", "4***", "***", "\xc3\x89***", NULL};
	for (size_t i = 0; i < ARRAY_LEN(in); i++) {
		json_t *m = eng_history_mask_param(in[i]);
		if (want[i])
			assert_string_equal(json_string_value(m), want[i]);
		else
			assert_null(m);
		json_decref(m);
		json_decref(in[i]);
	}
}

static const char doc_text[] =
	"{\"user\": {\"id\": \"u1\", \"phone\": \"+5511987654321\"},"
	" \"preferences\": {\"opt_out\": false},"
	" \"state\": {\"state\": \"active\"},"
	" \"transitions\": [{\"at\": \"2026-11-22T10:00:00Z\", \"from\": \"goodbye_sent\","
	"   \"to\": \"active\", \"trigger\": \"user_message\"}],"
	" \"messages\": [{\"id\": 7, \"type\": \"goodbye\", \"template_key\": \"goodbye\","
	"   \"params\": {\"name\": \"Maria\", \"n\": [12, \"ab\"]}, \"status\": \"sent\","
	"   \"attempts\": 1, \"max_attempts\": 5, \"created_at\": \"2026-11-22T08:00:00Z\","
	"   \"sent_at\": \"2026-11-22T08:00:01Z\", \"read_at\": \"2026-11-22T09:00:00Z\"}],"
	" \"consent\": [], \"audit\": [{\"at\": \"2026-11-22T11:00:00Z\", \"event\": \"x\","
	"   \"source\": \"cli\", \"login\": \"op\", \"details\": {\"reason\": \"call +5511987654321\"}}],"
	" \"inbound_events\": [{\"at\": \"2026-11-22T09:59:00Z\", \"kind\": \"event\","
	"   \"outcome\": \"transitioned\", \"event_id\": \"wamid.1\"}]}";

static void test_mask_document(void **state)
{
	(void)state;
	json_t *doc = json_loads(doc_text, 0, NULL);
	assert_non_null(doc);
	eng_history_mask(doc);
	char *text = json_dumps(doc, JSON_COMPACT);
	assert_null(strstr(text, "987654321"));
	assert_null(strstr(text, "Maria"));
	assert_non_null(strstr(text, "\"phone\":\"+55*********21\""));
	assert_non_null(strstr(text, "\"n\":[\"1***\",\"a***\"]"));
	free(text);
	json_decref(doc);
}

static void test_timeline_in_time_order(void **state)
{
	(void)state;
	json_t *doc = json_loads(doc_text, 0, NULL);
	char *t = eng_history_timeline(doc);
	const char *order[] = {"person u1 +5511987654321: active", "#7 goodbye (template goodbye) queued",
			       "#7 sent (attempt 1 of 5)", "#7 read", "inbound     event",
			       "goodbye_sent -> active", "x (cli, by op)"};
	const char *at = t;
	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		const char *p = strstr(at, order[i]);
		assert_non_null(p);
		at = p;
	}
	free(t);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_malformed_values_are_data_errors),
		cmocka_unit_test(test_mask_param),
		cmocka_unit_test(test_mask_document),
		cmocka_unit_test(test_timeline_in_time_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
