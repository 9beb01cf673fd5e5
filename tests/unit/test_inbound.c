/* What an inbound message means (eng_inbound.h): goodbye replies, activity,
 * opt-out phrases, and the message's identity. */
#include "unit.h"

#include <string.h>

#include "eng_inbound.h"

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"

/* nobody in goodbye_sent (bsearch wants an array, even an empty one) */
static const char *const nobody[1];

/* A text "1".."3" as people type it, or a button's payload goodbye_1..3;
 * a payload decides alone (the text beside it does not count). */
static void test_goodbye_reply(void **state)
{
	(void)state;
	static const struct {
		const char *text, *payload;
		int want;
	} cases[] = {
		{"1", NULL, 1},
		{"2", NULL, 2},
		{"3", NULL, 3},
		{" 2 ", NULL, 2},
		{"2.", NULL, 2},
		{"3)", NULL, 3},
		{"\t1 .\n", NULL, 1},
		{"0", NULL, 0},
		{"4", NULL, 0},
		{"12", NULL, 0},
		{"2 please", NULL, 0},
		{"two", NULL, 0},
		{".2", NULL, 0},
		{"", NULL, 0},
		{"   ", NULL, 0},
		{NULL, NULL, 0},
		{NULL, "goodbye_1", 1},
		{NULL, "goodbye_2", 2},
		{NULL, "goodbye_3", 3},
		{NULL, "goodbye_0", 0},
		{NULL, "goodbye_4", 0},
		{NULL, "goodbye_10", 0},
		{NULL, "goodbye_", 0},
		{NULL, "Goodbye_1", 0},
		{NULL, "2", 0},
		{NULL, "", 0},
		{"2", "other", 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct eng_inbound_msg m = {.text = cases[i].text,
						  .payload = cases[i].payload};
		assert_int_equal(eng_inbound_goodbye_reply(&m), cases[i].want);
	}
}

static struct eng_inbound_msg msg(const char *user_id, eng_time at, const char *id,
				  const char *text, const char *payload)
{
	struct eng_inbound_msg m = {.at = at, .id = id, .text = text, .payload = payload};
	if (user_id) {
		strcpy(m.who.user_id, user_id);
		m.who.found = true;
	}
	return m;
}

/* From someone in goodbye_sent, the first message that is "1".."3" is the
 * reply; everything else, and everyone else's, is activity. */
static void test_reply_or_activity(void **state)
{
	(void)state;
	const struct eng_inbound_msg m[] = {
		msg(U2, 100, "wamid.A", "2", NULL),         /* U2 not in goodbye_sent */
		msg(U1, 200, "wamid.B", " 3. ", NULL),      /* U1's first: the reply */
		msg(NULL, 250, "wamid.X", "1", NULL),       /* an unknown number */
		msg(U1, 300, "wamid.C", "1", NULL),         /* U1's second: activity */
		msg(U3, 400, "wamid.D", "hello", NULL),     /* U3's first, no reply */
		msg(U3, 500, "wamid.E", NULL, "goodbye_1"), /* U3's second: activity */
	};
	const char *const gs[] = {U1, U3}; /* sorted */
	struct eng_inbound in;
	eng_inbound_interpret(m, ARRAY_LEN(m), gs, ARRAY_LEN(gs), &in);
	assert_int_equal(in.nev, 5);
	assert_int_equal(in.npref, 0);

	assert_string_equal(in.ev[0].who.user_id, U2);
	assert_true(in.ev[0].activity);
	assert_int_equal(in.ev[0].trigger, ENG_TR_USER_MESSAGE);
	assert_string_equal(in.ev[0].id, "wamid.A");
	assert_int_equal(in.ev[0].at, 100);

	assert_string_equal(in.ev[1].who.user_id, U1);
	assert_false(in.ev[1].activity);
	assert_int_equal(in.ev[1].trigger, ENG_TR_GOODBYE_RESPONSE_3);
	assert_string_equal(in.ev[1].id, "wamid.B");
	assert_int_equal(in.ev[1].at, 200);

	assert_string_equal(in.ev[2].who.user_id, U1);
	assert_true(in.ev[2].activity);
	assert_int_equal(in.ev[2].trigger, ENG_TR_USER_MESSAGE);
	assert_string_equal(in.ev[2].id, "wamid.C");

	assert_string_equal(in.ev[3].who.user_id, U3);
	assert_true(in.ev[3].activity);
	assert_string_equal(in.ev[4].who.user_id, U3);
	assert_true(in.ev[4].activity);
	assert_int_equal(in.ev[4].trigger, ENG_TR_USER_MESSAGE);
	eng_inbound_release(&in);
	assert_null(in.ev);
	assert_int_equal(in.nev, 0);

	/* a button reply as the first message */
	const struct eng_inbound_msg b[] = {msg(U3, 10, "wamid.F", NULL, "goodbye_2")};
	eng_inbound_interpret(b, ARRAY_LEN(b), gs, ARRAY_LEN(gs), &in);
	assert_int_equal(in.nev, 1);
	assert_false(in.ev[0].activity);
	assert_int_equal(in.ev[0].trigger, ENG_TR_GOODBYE_RESPONSE_2);
	eng_inbound_release(&in);

	/* nobody in goodbye_sent: all activity */
	eng_inbound_interpret(m, ARRAY_LEN(m), nobody, 0, &in);
	assert_int_equal(in.nev, 5);
	for (size_t i = 0; i < in.nev; i++)
		assert_true(in.ev[i].activity);
	eng_inbound_release(&in);
}

/* A preference change from WhatsApp, as the phrase's message carries it. */
static void pref_is(const struct eng_optout_item *it, const char *user_id, bool opt_out,
		    eng_time at, const char *id, const char *locale)
{
	assert_string_equal(it->who.user_id, user_id);
	assert_int_equal(it->opt_out, opt_out);
	assert_string_equal(it->source, "whatsapp");
	assert_int_equal(it->at, at);
	assert_string_equal(it->id, id);
	assert_string_equal(it->phrase_locale, locale);
	assert_null(it->reason);
}

/* An opt-out or opt-in phrase is activity and a preference change, with the
 * message's instant and identity. */
static void test_phrases(void **state)
{
	(void)state;
	const struct eng_inbound_msg m[] = {
		msg(U1, 100, "wamid.A", "Parar lembretes!", NULL),
		msg(NULL, 150, "wamid.X", "stop reminders", NULL), /* unknown: nothing */
		msg(U2, 200, "wamid.B", "start reminders", NULL),
		msg(U3, 300, "wamid.C", "stop", NULL),             /* not a phrase */
		msg(U3, 400, "wamid.D", NULL, "parar lembretes"),  /* a payload, not text */
	};
	const char *const gs[] = {U1};
	struct eng_inbound in;
	eng_inbound_interpret(m, ARRAY_LEN(m), gs, ARRAY_LEN(gs), &in);
	assert_int_equal(in.nev, 4);
	for (size_t i = 0; i < in.nev; i++)
		assert_true(in.ev[i].activity);
	assert_int_equal(in.npref, 2);

	pref_is(&in.pref[0], U1, true, 100, "wamid.A", "pt-BR");
	pref_is(&in.pref[1], U2, false, 200, "wamid.B", "en");
	eng_inbound_release(&in);
	assert_null(in.pref);
	assert_int_equal(in.npref, 0);
}

/* A message's id is the event's identity; a longer one than an event id
 * holds becomes its hash, so that two sharing a prefix stay two. */
static void test_identity(void **state)
{
	(void)state;
	char exact[ENG_EVENT_ID_MAX + 1], long1[ENG_EVENT_ID_MAX + 2],
		long2[ENG_EVENT_ID_MAX + 2];
	memset(exact, 'a', ENG_EVENT_ID_MAX);
	exact[ENG_EVENT_ID_MAX] = '\0';
	memset(long1, 'a', ENG_EVENT_ID_MAX + 1);
	long1[ENG_EVENT_ID_MAX + 1] = '\0';
	memcpy(long2, long1, sizeof(long2));
	long2[ENG_EVENT_ID_MAX] = 'b';
	const struct eng_inbound_msg m[] = {
		msg(U1, 1, exact, "stop reminders", NULL),
		msg(U1, 2, long1, "stop reminders", NULL),
		msg(U1, 3, long2, NULL, NULL),
	};
	struct eng_inbound in;
	eng_inbound_interpret(m, ARRAY_LEN(m), nobody, 0, &in);
	assert_int_equal(in.nev, 3);
	assert_string_equal(in.ev[0].id, exact);
	assert_memory_equal(in.ev[1].id, "wamid-sha256:", 13);
	assert_int_equal(strlen(in.ev[1].id), 13 + 64);
	assert_memory_equal(in.ev[2].id, "wamid-sha256:", 13);
	assert_string_not_equal(in.ev[1].id, in.ev[2].id);
	assert_int_equal(in.npref, 2);
	assert_string_equal(in.pref[0].id, in.ev[0].id);
	assert_string_equal(in.pref[1].id, in.ev[1].id);
	eng_inbound_release(&in);
}

/* Nothing in, nothing out. */
static void test_empty(void **state)
{
	(void)state;
	struct eng_inbound in;
	eng_inbound_interpret(NULL, 0, nobody, 0, &in);
	assert_int_equal(in.nev, 0);
	assert_int_equal(in.npref, 0);
	eng_inbound_release(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_goodbye_reply),
		cmocka_unit_test(test_reply_or_activity),
		cmocka_unit_test(test_phrases),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
