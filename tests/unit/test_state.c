/* The engagement state machine's names (eng_state.h): the states and
 * triggers of DESIGN.md §1 and their parsers, the daily checks' names, the
 * defaults. The transitions themselves live in the database
 * (engagement.state_machine, migration 0014), checked against the design
 * by tests/schema/schema.sql. */
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

/* The enums and the design name the same states and triggers, in the
 * header's order, and nothing else. */
static void test_counts(void **state)
{
	(void)state;
	assert_int_equal(ENG_ST_COUNT, ARRAY_LEN(design_states));
	assert_int_equal(ENG_TR_COUNT, ARRAY_LEN(design_triggers));
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

/* The daily checks by the names engagement.transition_due takes. */
static void test_due_check_names(void **state)
{
	(void)state;
	assert_string_equal(eng_due_check_name(ENG_DUE_INACTIVITY), "inactivity");
	assert_string_equal(eng_due_check_name(ENG_DUE_GOODBYE_TIMEOUT), "goodbye_timeout");
	assert_string_equal(eng_due_check_name(ENG_DUE_REMINDER), "reminder_due");
	assert_string_equal(eng_due_check_name((enum eng_due_check)3), "unknown");
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
		cmocka_unit_test(test_due_check_names),
		cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
