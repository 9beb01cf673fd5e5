/* queue-send's decisions about one message (eng_decide.h): every branch of
 * the claim's checks, the fence's verdicts and the answers' outcomes, and
 * the hourly-cap arithmetic. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_decide.h"

static const eng_time H = 3600 * ENG_USEC_PER_SEC;
static const eng_time NOW = 100 * 3600 * ENG_USEC_PER_SEC;

/* A message that passes every check. */
static struct eng_claim_row ok_row(void)
{
	return (struct eng_claim_row){
		.id = 42, .user_id = "00000000-0000-4000-8000-000000000001",
		.message_type = "weekly_review", .template_key = "weekly_review",
		.params = "{\"activity_count\": 4}", .attempts = 0, .max_attempts = 5,
		.phone = "+5511987654321", .tpl_name = "engagement_weekly_review",
		.tpl_language = "pt_BR", .tpl_params = "{activity_count}",
		.locale = "pt-BR", .state = "active", .now = NOW,
	};
}

static bool decide(const struct eng_claim_row *m, struct eng_outcome *o,
		   char ***values, size_t *n)
{
	return eng_decide_claim(m, NULL, 0, 20, o, values, n);
}

static void test_claim_sends(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_true(decide(&m, &o, &v, &n));
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "4");
	eng_decide_values_free(v, n);
}

static void test_claim_expired_first(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.expired = true;
	m.opted_out = true; /* expiry is checked first */
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_CANCELLED);
	assert_string_equal(o.status, "cancelled");
	assert_string_equal(o.code, "expired");
	assert_int_equal(o.charge, 0);
	assert_null(v);
}

static void test_claim_goodbye_user_returned(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.message_type = "goodbye";
	m.state = "active";
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_CANCELLED);
	assert_string_equal(o.code, "user_returned");
	/* still in goodbye_sent, or no state row: sent */
	m.state = "goodbye_sent";
	assert_true(decide(&m, &o, &v, &n));
	eng_decide_values_free(v, n);
	m.state = NULL;
	assert_true(decide(&m, &o, &v, &n));
	eng_decide_values_free(v, n);
	/* another type is not a goodbye */
	m.message_type = "weekly_review";
	m.state = "dormant";
	assert_true(decide(&m, &o, &v, &n));
	eng_decide_values_free(v, n);
}

static void test_claim_opted_out(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.opted_out = true;
	m.quiet_until = NOW + H; /* opt-out before quiet hours */
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_BLOCKED);
	assert_string_equal(o.status, "blocked");
	assert_string_equal(o.code, "opted_out");
	assert_string_equal(o.event, "message_blocked");
	assert_int_equal(o.charge, 0);
}

static void test_claim_quiet_hours(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.quiet_until = NOW + 2 * H;
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
	assert_string_equal(o.status, "queued");
	assert_int_equal(o.next, NOW + 2 * H);
	assert_int_equal(o.until, NOW + 2 * H);
	assert_string_equal(o.reason, "quiet_hours");
	assert_int_equal(o.charge, 0);
	/* a window that ends now is over */
	m.quiet_until = NOW;
	assert_true(decide(&m, &o, &v, &n));
	eng_decide_values_free(v, n);
}

static void test_claim_hourly_cap(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	char list[2048] = "";
	/* 20 sends a minute apart in the last hour */
	for (int i = 0; i < 20; i++) {
		size_t len = strlen(list);
		snprintf(list + len, sizeof(list) - len, "%s%d:%lld", i ? "," : "", i + 1,
			 (long long)(NOW - H + (i + 1) * 60 * ENG_USEC_PER_SEC));
	}
	m.recent_sends = list;
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
	assert_string_equal(o.reason, "hourly_cap");
	assert_int_equal(o.next, NOW + 60 * ENG_USEC_PER_SEC);
	/* a larger cap lets it through */
	assert_true(eng_decide_claim(&m, NULL, 0, 21, &o, &v, &n));
	eng_decide_values_free(v, n);
}

static void test_claim_no_template(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.tpl_name = NULL;
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_string_equal(o.code, "template");
	assert_int_equal(o.charge, 0);
	assert_non_null(strstr(o.error, "weekly_review"));
	assert_non_null(strstr(o.error, "pt-BR"));
}

static void test_claim_missing_param(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.params = "{}";
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_string_equal(o.code, "template");
	assert_non_null(strstr(o.error, "activity_count"));
	assert_null(v);
	m.params = "[1]";
	assert_false(decide(&m, &o, &v, &n));
	assert_non_null(strstr(o.error, "not a JSON object"));
}

static void test_claim_group_without_id(void **state)
{
	(void)state;
	struct eng_claim_row m = ok_row();
	m.to_group = true;
	struct eng_outcome o;
	char **v;
	size_t n;
	assert_false(decide(&m, &o, &v, &n));
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_string_equal(o.code, "no_group");
	assert_null(v);
	m.group_id = "120363040000000000@g.us";
	assert_true(decide(&m, &o, &v, &n));
	eng_decide_values_free(v, n);
}

static void test_params(void **state)
{
	(void)state;
	char **v;
	size_t n;
	char why[256];
	/* strings verbatim (nothing masked), integers and reals as text, in
	 * the template's order */
	assert_true(eng_decide_params("{note,count,ratio}",
				      "{\"ratio\": 0.5, \"count\": 12, \"note\": "
				      "\"call +551130001234, ref 1234567890123\"}",
				      &v, &n, why, sizeof(why)));
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "call +551130001234, ref 1234567890123");
	assert_string_equal(v[1], "12");
	assert_string_equal(v[2], "0.5");
	eng_decide_values_free(v, n);
	assert_true(eng_decide_params("{}", "{\"x\": 1}", &v, &n, why, sizeof(why)));
	assert_int_equal(n, 0);
	/* a boolean or null is not a text */
	assert_false(eng_decide_params("{x}", "{\"x\": true}", &v, &n, why, sizeof(why)));
	assert_false(eng_decide_params("{x}", "{\"x\": null}", &v, &n, why, sizeof(why)));
	assert_false(eng_decide_params("{x}", "not json", &v, &n, why, sizeof(why)));
}

static void test_cap(void **state)
{
	(void)state;
	char list[4096] = "", first20[4096] = "";
	eng_time sent[25];
	for (int i = 0; i < 25; i++) {
		sent[i] = NOW - H + (i + 1) * ENG_USEC_PER_SEC * 60; /* a minute apart */
		size_t len = strlen(list);
		snprintf(list + len, sizeof(list) - len, "%s%d:%lld", i ? "," : "", i + 1,
			 (long long)sent[i]);
		if (i == 19)
			snprintf(first20, sizeof(first20), "%s", list);
	}
	assert_int_equal(eng_decide_cap(NULL, NULL, 0, 20, NOW), NOW);
	assert_int_equal(eng_decide_cap("", NULL, 0, 20, NOW), NOW);
	/* 19 leave room; the 21st waits until the oldest leaves the hour */
	assert_int_equal(eng_decide_cap(first20, NULL, 0, 20, NOW), sent[0] + H);
	/* 25 already (sent elsewhere): wait for the 6th oldest */
	assert_int_equal(eng_decide_cap(list, NULL, 0, 20, NOW), sent[5] + H);
	/* this run's sends count too, once: one the database already has is
	 * not counted again, one outside the hour not at all */
	struct eng_reservation run[3] = {
		{1, sent[0]},                 /* known to the database */
		{100, NOW - 10 * ENG_USEC_PER_SEC},
		{101, NOW - 2 * H},           /* outside the window */
	};
	char one[64];
	snprintf(one, sizeof(one), "1:%lld", (long long)sent[0]);
	assert_int_equal(eng_decide_cap(one, run, 3, 2, NOW), sent[0] + H);
	assert_int_equal(eng_decide_cap(one, run, 3, 3, NOW), NOW);
	assert_int_equal(eng_decide_cap(NULL, run, 3, 1, NOW),
			 NOW - 10 * ENG_USEC_PER_SEC + H);
}

/* The fence's verdict at an instant, with the default pair interval. */
static enum eng_fence_action eng_decide_fence_t(const char *verdict, struct eng_outcome *o)
{
	return eng_decide_fence(verdict, 1000 * (eng_time)ENG_USEC_PER_SEC, 6000, o);
}

static void test_fence(void **state)
{
	(void)state;
	struct eng_outcome o;
	assert_int_equal(eng_decide_fence_t("send", &o), ENG_FENCE_SEND);
	assert_int_equal(eng_decide_fence_t("busy", &o), ENG_FENCE_RETRY);
	assert_int_equal(eng_decide_fence_t("lost", &o), ENG_FENCE_DROP);
	assert_int_equal(eng_decide_fence_t("something new", &o), ENG_FENCE_DROP);
	assert_int_equal(eng_decide_fence_t("opted_out", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_BLOCKED);
	assert_int_equal(eng_decide_fence_t("expired", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_CANCELLED);
	assert_string_equal(o.code, "expired");
	assert_int_equal(eng_decide_fence_t("user_returned", &o), ENG_FENCE_RECORD);
	assert_string_equal(o.code, "user_returned");
	/* paused: back to the queue, no attempt charged */
	assert_int_equal(eng_decide_fence_t("paused", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_HANDED_BACK);
	assert_int_equal(o.charge, 0);
	assert_string_equal(o.reason, "paused");
	/* the account's rules: failed uncharged, or waiting uncharged */
	assert_int_equal(eng_decide_fence_t("template_disabled", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_int_equal(o.charge, 0);
	assert_string_equal(o.code, "template_disabled");
	assert_int_equal(eng_decide_fence_t("pair", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
	assert_int_equal(o.charge, 0);
	assert_true(o.next == 1006 * (eng_time)ENG_USEC_PER_SEC);
	assert_int_equal(eng_decide_fence_t("limit", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
	assert_true(o.next > 1000 * (eng_time)ENG_USEC_PER_SEC);
	assert_int_equal(eng_decide_fence_t("template_held", &o), ENG_FENCE_RECORD);
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
}

static struct eng_wa_result answer(enum eng_wa_class cls, long code)
{
	struct eng_wa_result r;
	memset(&r, 0, sizeof(r));
	r.cls = cls;
	r.code = code;
	r.http_status = cls == ENG_WA_SENT ? 200 : 400;
	snprintf(r.code_text, sizeof(r.code_text), "%ld", code);
	snprintf(r.error, sizeof(r.error), "HTTP 400: error %ld", code);
	if (cls == ENG_WA_SENT)
		snprintf(r.wamid, sizeof(r.wamid), "wamid.ABC");
	return r;
}

static void test_answer_sent(void **state)
{
	(void)state;
	struct eng_wa_result r = answer(ENG_WA_SENT, 0);
	struct eng_outcome o;
	eng_decide_answer(&r, 2, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_SENT);
	assert_string_equal(o.status, "sent");
	assert_int_equal(o.charge, 1);
	assert_string_equal(o.wamid, "wamid.ABC");
	assert_int_equal(o.sent_at, NOW);
	assert_int_equal(o.attempt, 3);
	assert_int_equal(o.http_status, 200);
}

static void test_answer_fail(void **state)
{
	(void)state;
	struct eng_wa_result r = answer(ENG_WA_FAIL, 131026);
	struct eng_outcome o;
	eng_decide_answer(&r, 0, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_int_equal(o.charge, 1);
	assert_string_equal(o.code, "131026");
	assert_int_equal(o.error_code, 131026);
	assert_null(o.reason);
}

static void test_answer_retry_and_defer(void **state)
{
	(void)state;
	struct eng_wa_result r = answer(ENG_WA_RETRY, 131000);
	struct eng_outcome o;
	eng_decide_answer(&r, 0, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_RETRIED);
	assert_string_equal(o.status, "queued");
	assert_string_equal(o.event, "message_retry");
	assert_int_equal(o.charge, 1);
	assert_true(o.next > NOW && o.next <= NOW + 30 * ENG_USEC_PER_SEC);
	r = answer(ENG_WA_DEFER, 130429);
	eng_decide_answer(&r, 0, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_DEFERRED);
	assert_string_equal(o.event, "message_deferred");
	assert_true(o.next > NOW && o.next <= NOW + 5 * 60 * ENG_USEC_PER_SEC);
	/* the last attempt: failed, max_attempts */
	eng_decide_answer(&r, 4, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_FAILED);
	assert_string_equal(o.reason, "max_attempts");
	assert_int_equal(o.charge, 1);
}

/* A paused template (132015) is not the message's fault: back to the
 * queue uncharged, even on its last attempt, the request still recorded. */
static void test_answer_template_paused(void **state)
{
	(void)state;
	struct eng_wa_result r = answer(ENG_WA_DEFER, 132015);
	struct eng_outcome o;
	eng_decide_answer(&r, 4, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_HANDED_BACK);
	assert_string_equal(o.status, "queued");
	assert_int_equal(o.charge, 0);
	assert_int_equal(o.next, 0);
	assert_string_equal(o.reason, "template_paused");
	assert_string_equal(o.code, "132015");
	assert_int_equal(o.attempt, 5);
}

static void test_answer_fatal(void **state)
{
	(void)state;
	struct eng_wa_result r = answer(ENG_WA_FATAL, 190);
	struct eng_outcome o;
	eng_decide_answer(&r, 1, 5, NOW, 0.5, &o);
	assert_int_equal(o.kind, ENG_OUT_HANDED_BACK);
	assert_string_equal(o.status, "queued");
	assert_int_equal(o.charge, 0);
	assert_int_equal(o.next, 0);
	assert_string_equal(o.reason, "fatal");
	assert_int_equal(o.attempt, 0); /* no attempt was charged */
}

static void test_outcomes(void **state)
{
	(void)state;
	struct eng_outcome o;
	eng_outcome_handed_back(&o, "signal", NULL, NULL);
	assert_int_equal(o.kind, ENG_OUT_HANDED_BACK);
	assert_null(o.code);
	assert_string_equal(o.error, "");
	assert_string_equal(o.event, "message_handed_back");
	eng_outcome_failed(&o, 0, "no_group", "why", "no_group");
	assert_int_equal(o.charge, 0);
	assert_string_equal(o.error, "why");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claim_sends),
		cmocka_unit_test(test_claim_expired_first),
		cmocka_unit_test(test_claim_goodbye_user_returned),
		cmocka_unit_test(test_claim_opted_out),
		cmocka_unit_test(test_claim_quiet_hours),
		cmocka_unit_test(test_claim_hourly_cap),
		cmocka_unit_test(test_claim_no_template),
		cmocka_unit_test(test_claim_missing_param),
		cmocka_unit_test(test_claim_group_without_id),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_fence),
		cmocka_unit_test(test_answer_sent),
		cmocka_unit_test(test_answer_fail),
		cmocka_unit_test(test_answer_retry_and_defer),
		cmocka_unit_test(test_answer_template_paused),
		cmocka_unit_test(test_answer_fatal),
		cmocka_unit_test(test_outcomes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
