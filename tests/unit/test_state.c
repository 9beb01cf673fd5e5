/* The engagement state machine's table (eng_state.h): the ten valid
 * transitions of DESIGN.md §1 checked exhaustively against a copy written
 * out here from the design (not read from the code), the names and their
 * parsers, and the "applies only from" text of eng_trigger_sources. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "eng_state.h"

/* DESIGN.md §1, by name, so that the test does not share the code's
 * enum-to-name mapping either. */
static const char *const design_states[] = {
	"active", "goodbye_sent", "help_flow", "remind_later", "dormant",
};

static const char *const design_triggers[] = {
	"inactivity_14d",     "user_message",       "goodbye_response_1",
	"goodbye_response_2", "goodbye_response_3", "goodbye_timeout",
	"reminder_due",
};

/* The ten valid transitions (from, trigger, to), as the design's table
 * lists them. */
static const struct {
	const char *from, *trigger, *to;
} design_transitions[] = {
	{"active", "inactivity_14d", "goodbye_sent"},
	{"goodbye_sent", "user_message", "active"},
	{"goodbye_sent", "goodbye_response_1", "help_flow"},
	{"goodbye_sent", "goodbye_response_2", "remind_later"},
	{"goodbye_sent", "goodbye_response_3", "dormant"},
	{"goodbye_sent", "goodbye_timeout", "dormant"},
	{"help_flow", "user_message", "active"},
	{"remind_later", "user_message", "active"},
	{"remind_later", "reminder_due", "dormant"},
	{"dormant", "user_message", "active"},
};

/* The design's target of (from, trigger), or NULL when the pair is not one
 * of the ten. */
static const char *design_target(const char *from, const char *trigger)
{
	for (size_t i = 0; i < ARRAY_LEN(design_transitions); i++)
		if (strcmp(design_transitions[i].from, from) == 0 &&
		    strcmp(design_transitions[i].trigger, trigger) == 0)
			return design_transitions[i].to;
	return NULL;
}

/* The enums and the design name the same states and triggers, in the
 * header's order, and nothing else. */
static void test_counts(void **state)
{
	(void)state;
	assert_int_equal(ENG_ST_COUNT, ARRAY_LEN(design_states));
	assert_int_equal(ENG_TR_COUNT, ARRAY_LEN(design_triggers));
	assert_int_equal(ARRAY_LEN(design_transitions), 10);
}

static void test_names(void **state)
{
	(void)state;
	/* each enum value by its own name */
	assert_string_equal(eng_state_name(ENG_ST_ACTIVE), "active");
	assert_string_equal(eng_state_name(ENG_ST_GOODBYE_SENT), "goodbye_sent");
	assert_string_equal(eng_state_name(ENG_ST_HELP_FLOW), "help_flow");
	assert_string_equal(eng_state_name(ENG_ST_REMIND_LATER), "remind_later");
	assert_string_equal(eng_state_name(ENG_ST_DORMANT), "dormant");
	assert_string_equal(eng_trigger_name(ENG_TR_INACTIVITY_14D), "inactivity_14d");
	assert_string_equal(eng_trigger_name(ENG_TR_USER_MESSAGE), "user_message");
	assert_string_equal(eng_trigger_name(ENG_TR_GOODBYE_RESPONSE_1), "goodbye_response_1");
	assert_string_equal(eng_trigger_name(ENG_TR_GOODBYE_RESPONSE_2), "goodbye_response_2");
	assert_string_equal(eng_trigger_name(ENG_TR_GOODBYE_RESPONSE_3), "goodbye_response_3");
	assert_string_equal(eng_trigger_name(ENG_TR_GOODBYE_TIMEOUT), "goodbye_timeout");
	assert_string_equal(eng_trigger_name(ENG_TR_REMINDER_DUE), "reminder_due");
	/* out of range: a name, never a crash */
	assert_string_equal(eng_state_name(ENG_ST_COUNT), "unknown");
	assert_string_equal(eng_state_name((enum eng_state)-1), "unknown");
	assert_string_equal(eng_trigger_name(ENG_TR_COUNT), "unknown");
	assert_string_equal(eng_trigger_name((enum eng_trigger)-1), "unknown");
}

static void test_names_round_trip(void **state)
{
	(void)state;
	for (int s = 0; s < ENG_ST_COUNT; s++) {
		assert_string_equal(eng_state_name((enum eng_state)s), design_states[s]);
		assert_int_equal(eng_state_parse(design_states[s]), s);
		assert_int_equal(eng_state_parse(eng_state_name((enum eng_state)s)), s);
		/* a state is not a trigger */
		assert_int_equal(eng_trigger_parse(design_states[s]), -1);
	}
	for (int t = 0; t < ENG_TR_COUNT; t++) {
		assert_string_equal(eng_trigger_name((enum eng_trigger)t), design_triggers[t]);
		assert_int_equal(eng_trigger_parse(design_triggers[t]), t);
		assert_int_equal(eng_trigger_parse(eng_trigger_name((enum eng_trigger)t)), t);
		assert_int_equal(eng_state_parse(design_triggers[t]), -1);
	}
}

static void test_parse_unknown(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "unknown", "Active", "ACTIVE", " active", "active ", "activ",
		"actives", "goodbye-sent", "goodbye sent", "helpflow", "dormant\n",
		"inactivity_14", "inactivity_14d ", "User_Message", "user-message",
		"goodbye_response_0", "goodbye_response_4", "goodbye_response_",
		"goodbye_response", "goodbye_response_1x", "reminder", "timeout",
		"activity", "goodbye_reply",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(eng_state_parse(bad[i]), -1);
		assert_int_equal(eng_trigger_parse(bad[i]), -1);
	}
	assert_int_equal(eng_state_parse(NULL), -1);
	assert_int_equal(eng_trigger_parse(NULL), -1);
}

/* All 35 (state, trigger) pairs: the ten give the design's target, the
 * 25 others -1. */
static void test_transition_table_exhaustive(void **state)
{
	(void)state;
	int valid = 0, invalid = 0;
	for (int s = 0; s < ENG_ST_COUNT; s++)
		for (int t = 0; t < ENG_TR_COUNT; t++) {
			const char *want = design_target(design_states[s], design_triggers[t]);
			int got = eng_transition_target((enum eng_state)s, (enum eng_trigger)t);
			if (!want) {
				if (got != -1)
					fail_msg("%s --%s--> should be invalid, got %d",
						 design_states[s], design_triggers[t], got);
				invalid++;
				continue;
			}
			if (got < 0 || got >= ENG_ST_COUNT)
				fail_msg("%s --%s--> should be %s, got %d", design_states[s],
					 design_triggers[t], want, got);
			assert_string_equal(eng_state_name((enum eng_state)got), want);
			assert_int_equal(got, eng_state_parse(want));
			valid++;
		}
	assert_int_equal(valid, 10);
	assert_int_equal(invalid, 25);
}

/* The same table spelled out with the enums, row by row, so that a failure
 * names the row. */
static void test_transition_rows(void **state)
{
	(void)state;
	/* the ten */
	assert_int_equal(eng_transition_target(ENG_ST_ACTIVE, ENG_TR_INACTIVITY_14D),
			 ENG_ST_GOODBYE_SENT);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_USER_MESSAGE),
			 ENG_ST_ACTIVE);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_1),
			 ENG_ST_HELP_FLOW);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_2),
			 ENG_ST_REMIND_LATER);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_3),
			 ENG_ST_DORMANT);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_TIMEOUT),
			 ENG_ST_DORMANT);
	assert_int_equal(eng_transition_target(ENG_ST_HELP_FLOW, ENG_TR_USER_MESSAGE),
			 ENG_ST_ACTIVE);
	assert_int_equal(eng_transition_target(ENG_ST_REMIND_LATER, ENG_TR_USER_MESSAGE),
			 ENG_ST_ACTIVE);
	assert_int_equal(eng_transition_target(ENG_ST_REMIND_LATER, ENG_TR_REMINDER_DUE),
			 ENG_ST_DORMANT);
	assert_int_equal(eng_transition_target(ENG_ST_DORMANT, ENG_TR_USER_MESSAGE),
			 ENG_ST_ACTIVE);
	/* some of the 25 that matter most: no self-loops, no goodbye twice,
	 * an active user's message is no transition, replies only to a
	 * goodbye, nothing leaves help_flow but a message */
	assert_int_equal(eng_transition_target(ENG_ST_ACTIVE, ENG_TR_USER_MESSAGE), -1);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_INACTIVITY_14D), -1);
	assert_int_equal(eng_transition_target(ENG_ST_DORMANT, ENG_TR_INACTIVITY_14D), -1);
	assert_int_equal(eng_transition_target(ENG_ST_ACTIVE, ENG_TR_GOODBYE_RESPONSE_1), -1);
	assert_int_equal(eng_transition_target(ENG_ST_DORMANT, ENG_TR_GOODBYE_RESPONSE_2), -1);
	assert_int_equal(eng_transition_target(ENG_ST_REMIND_LATER, ENG_TR_GOODBYE_RESPONSE_3), -1);
	assert_int_equal(eng_transition_target(ENG_ST_HELP_FLOW, ENG_TR_GOODBYE_TIMEOUT), -1);
	assert_int_equal(eng_transition_target(ENG_ST_HELP_FLOW, ENG_TR_REMINDER_DUE), -1);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT, ENG_TR_REMINDER_DUE), -1);
	assert_int_equal(eng_transition_target(ENG_ST_REMIND_LATER, ENG_TR_GOODBYE_TIMEOUT), -1);
	assert_int_equal(eng_transition_target(ENG_ST_DORMANT, ENG_TR_REMINDER_DUE), -1);
}

static void test_transition_out_of_range(void **state)
{
	(void)state;
	for (int t = 0; t < ENG_TR_COUNT; t++) {
		assert_int_equal(eng_transition_target(ENG_ST_COUNT, (enum eng_trigger)t), -1);
		assert_int_equal(eng_transition_target((enum eng_state)-1, (enum eng_trigger)t),
				 -1);
	}
	for (int s = 0; s < ENG_ST_COUNT; s++) {
		assert_int_equal(eng_transition_target((enum eng_state)s, ENG_TR_COUNT), -1);
		assert_int_equal(eng_transition_target((enum eng_state)s, (enum eng_trigger)-1),
				 -1);
	}
}

/* eng_transition_batch takes one to-state per trigger: every valid source
 * of a trigger must lead to the same state (true of the design's table). */
static void test_one_target_per_trigger(void **state)
{
	(void)state;
	for (int t = 0; t < ENG_TR_COUNT; t++) {
		int target = -1, sources = 0;
		for (int s = 0; s < ENG_ST_COUNT; s++) {
			int to = eng_transition_target((enum eng_state)s, (enum eng_trigger)t);
			if (to < 0)
				continue;
			sources++;
			if (target >= 0)
				assert_int_equal(to, target);
			target = to;
		}
		/* every trigger applies from somewhere */
		assert_true(sources > 0);
	}
}

static void sources_are(enum eng_trigger t, const char *want)
{
	char out[128];
	memset(out, 'x', sizeof(out));
	eng_trigger_sources(t, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_trigger_sources(void **state)
{
	(void)state;
	sources_are(ENG_TR_INACTIVITY_14D, "active");
	sources_are(ENG_TR_USER_MESSAGE, "goodbye_sent, help_flow, remind_later or dormant");
	sources_are(ENG_TR_GOODBYE_RESPONSE_1, "goodbye_sent");
	sources_are(ENG_TR_GOODBYE_RESPONSE_2, "goodbye_sent");
	sources_are(ENG_TR_GOODBYE_RESPONSE_3, "goodbye_sent");
	sources_are(ENG_TR_GOODBYE_TIMEOUT, "goodbye_sent");
	sources_are(ENG_TR_REMINDER_DUE, "remind_later");
	/* a trigger out of range applies from nowhere */
	sources_are(ENG_TR_COUNT, "");
}

/* The text names exactly the states the table accepts the trigger from,
 * whatever the trigger. */
static void test_trigger_sources_match_table(void **state)
{
	(void)state;
	for (int t = 0; t < ENG_TR_COUNT; t++) {
		char want[128] = "";
		const char *names[ENG_ST_COUNT];
		size_t k = 0;
		for (int s = 0; s < ENG_ST_COUNT; s++)
			if (design_target(design_states[s], design_triggers[t]))
				names[k++] = design_states[s];
		for (size_t i = 0; i < k; i++) {
			size_t len = strlen(want);
			snprintf(want + len, sizeof(want) - len, "%s%s",
				 i == 0 ? "" : i + 1 == k ? " or " : ", ", names[i]);
		}
		sources_are((enum eng_trigger)t, want);
	}
}

/* A short buffer is cut, terminated, and never overrun. */
static void test_trigger_sources_short_buffer(void **state)
{
	(void)state;
	char out[16];
	memset(out, 'x', sizeof(out));
	eng_trigger_sources(ENG_TR_USER_MESSAGE, out, 10);
	assert_string_equal(out, "goodbye_s");
	for (size_t i = 10; i < sizeof(out); i++)
		assert_int_equal(out[i], 'x');
	eng_trigger_sources(ENG_TR_USER_MESSAGE, out, 1);
	assert_string_equal(out, "");
	/* exactly enough room */
	char exact[sizeof("goodbye_sent, help_flow, remind_later or dormant")];
	eng_trigger_sources(ENG_TR_USER_MESSAGE, exact, sizeof(exact));
	assert_string_equal(exact, "goodbye_sent, help_flow, remind_later or dormant");
}

/* The daily job's three checks are the design's three timing triggers. */
static void test_due_triggers(void **state)
{
	(void)state;
	assert_int_equal(eng_due_trigger(ENG_DUE_INACTIVITY), ENG_TR_INACTIVITY_14D);
	assert_int_equal(eng_due_trigger(ENG_DUE_GOODBYE_TIMEOUT), ENG_TR_GOODBYE_TIMEOUT);
	assert_int_equal(eng_due_trigger(ENG_DUE_REMINDER), ENG_TR_REMINDER_DUE);
	/* and each leaves the state its check selects on */
	assert_int_equal(eng_transition_target(ENG_ST_ACTIVE, eng_due_trigger(ENG_DUE_INACTIVITY)),
			 ENG_ST_GOODBYE_SENT);
	assert_int_equal(eng_transition_target(ENG_ST_GOODBYE_SENT,
					       eng_due_trigger(ENG_DUE_GOODBYE_TIMEOUT)),
			 ENG_ST_DORMANT);
	assert_int_equal(eng_transition_target(ENG_ST_REMIND_LATER,
					       eng_due_trigger(ENG_DUE_REMINDER)),
			 ENG_ST_DORMANT);
}

/* The defaults of DESIGN.md §1 and §2.3. */
static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(ENG_GOODBYE_HOURS, 48);
	assert_int_equal(ENG_REMIND_DAYS, 14);
	assert_int_equal(ENG_INACTIVITY_DAYS, 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_parse_unknown),
		cmocka_unit_test(test_transition_table_exhaustive),
		cmocka_unit_test(test_transition_rows),
		cmocka_unit_test(test_transition_out_of_range),
		cmocka_unit_test(test_one_target_per_trigger),
		cmocka_unit_test(test_trigger_sources),
		cmocka_unit_test(test_trigger_sources_match_table),
		cmocka_unit_test(test_trigger_sources_short_buffer),
		cmocka_unit_test(test_due_triggers),
		cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
