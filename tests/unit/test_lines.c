/* The batch-line and command-line parsers of engagement-event and
 * optout-set (DESIGN.md §2.3): eng_event_parse_json, eng_optout_parse_json,
 * eng_optout_source_valid, eng_optout_from_args, eng_event_from_args and
 * eng_user_ref_from_args, every branch, with the status and the gist of
 * each error message. No database. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_event.h"
#include "eng_optout.h"
#include "eng_state.h"
#include "eng_time.h"
#include "eng_users.h"

#define UID "0f8fad5b-d9cb-469f-a165-70867728950e"
#define UID_UPPER "0F8FAD5B-D9CB-469F-A165-70867728950E"
#define PHONE "+5511987654321"

#define MSG_WHO "give exactly one of \"user_id\" and \"phone\""
#define MSG_WHAT "give exactly one of \"activity\", \"goodbye_reply\" and \"trigger\""
#define MSG_UUID "\"user_id\" is not a UUID"
#define MSG_PHONE "\"phone\" is not an E.164 number (+ and 8 to 15 digits)"
#define MSG_AT "\"at\" is not an RFC 3339 timestamp"
#define MSG_ACTIVITY "\"activity\" must be true"
#define MSG_REPLY "\"goodbye_reply\" must be 1, 2 or 3"
#define MSG_TRIGGER                                                            \
	"\"trigger\" is not one of inactivity_14d, user_message, "             \
	"goodbye_response_1..3, goodbye_timeout, reminder_due"
#define MSG_OPT_OUT "\"opt_out\" must be true or false"
#define MSG_OPT_OUT_MISSING "\"opt_out\" (true or false) is missing"
#define MSG_SOURCE "\"source\" must be whatsapp, web, cli or api"
#define MSG_SOURCE_MISSING "\"source\" is missing"
#define MSG_REASON "\"reason\" must be a string of at most 500 bytes"
#define MSG_NOT_OBJECT "expected a JSON object"
#define MSG_NOT_JSON "not valid JSON: "
#define MSG_PHRASE                                                             \
	"unknown phrase: expected stop reminders, start reminders, "           \
	"parar lembretes, ativar lembretes, parar recordatorios or "           \
	"activar recordatorios"

static eng_time at_of(const char *s)
{
	eng_time t = 0;
	if (eng_time_parse(s, &t) != 0)
		fail_msg("test bug: \"%s\" does not parse", s);
	return t;
}

/* The instant a batch line without "at" gets (the run's now). */
#define DEFAULT_AT_TEXT "2026-11-22T06:00:00Z"

static void msg_has(const struct eng_err *err, const char *input, const char *want)
{
	if (!strstr(err->msg, want))
		fail_msg("input %s: message \"%s\" lacks \"%s\"", input, err->msg, want);
}

/* ---- eng_event_parse_json -------------------------------------------------- */

/* Parse text into *ev (its line preset, everything else garbage). */
static enum eng_status ev_parse(const char *text, struct eng_event *ev,
				struct eng_err *err)
{
	memset(ev, 0x5a, sizeof(*ev));
	ev->line = 7;
	eng_err_clear(err);
	return eng_event_parse_json(text, strlen(text), at_of(DEFAULT_AT_TEXT), INT64_MAX, ev, err);
}

static struct eng_event ev_ok(const char *text)
{
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = ev_parse(text, &ev, &err);
	if (st != ENG_OK)
		fail_msg("input %s: status %d, message \"%s\"", text, (int)st, err.msg);
	assert_int_equal(ev.line, 7); /* kept */
	assert_int_equal(ev.outcome, ENG_EV_PENDING);
	assert_int_equal(ev.err.status, ENG_OK);
	assert_false(ev.who.found);
	return ev;
}

/* The line fails with ENG_EDATA and a message that is exactly want (or,
 * with prefix, starts with want). */
static void ev_fails_with(const char *text, size_t len, const char *want, bool prefix)
{
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	memset(&ev, 0, sizeof(ev));
	enum eng_status st =
		eng_event_parse_json(text, len, at_of(DEFAULT_AT_TEXT), INT64_MAX, &ev, &err);
	if (st != ENG_EDATA)
		fail_msg("input %s: status %d (want ENG_EDATA), message \"%s\"", text, (int)st,
			 err.msg);
	assert_int_equal(err.status, ENG_EDATA);
	assert_string_equal(err.event, ""); /* reported as line_failed */
	if (prefix ? strncmp(err.msg, want, strlen(want)) != 0 : strcmp(err.msg, want) != 0)
		fail_msg("input %s: message \"%s\", want %s\"%s\"", text, err.msg,
			 prefix ? "a prefix " : "", want);
}

static void ev_fails(const char *text, const char *want)
{
	ev_fails_with(text, strlen(text), want, false);
}

static void ev_fails_prefix(const char *text, const char *want)
{
	ev_fails_with(text, strlen(text), want, true);
}

static void test_event_activity(void **state)
{
	(void)state;
	struct eng_event ev = ev_ok("{\"user_id\": \"" UID "\", \"activity\": true}");
	assert_true(ev.activity);
	assert_string_equal(ev.who.user_id, UID);
	assert_string_equal(ev.who.phone, "");
	assert_int_equal(ev.at, at_of(DEFAULT_AT_TEXT));
	/* the order of the fields does not matter */
	ev = ev_ok("{\"activity\": true, \"user_id\": \"" UID "\"}");
	assert_true(ev.activity);
	assert_string_equal(ev.who.user_id, UID);

	/* only true */
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": false}", MSG_ACTIVITY);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": 1}", MSG_ACTIVITY);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": \"true\"}", MSG_ACTIVITY);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": null}", MSG_ACTIVITY);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": {}}", MSG_ACTIVITY);
}

static void test_event_goodbye_reply(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		enum eng_trigger want;
	} ok[] = {
		{"{\"user_id\": \"" UID "\", \"goodbye_reply\": 1}", ENG_TR_GOODBYE_RESPONSE_1},
		{"{\"user_id\": \"" UID "\", \"goodbye_reply\": 2}", ENG_TR_GOODBYE_RESPONSE_2},
		{"{\"user_id\": \"" UID "\", \"goodbye_reply\": 3}", ENG_TR_GOODBYE_RESPONSE_3},
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		struct eng_event ev = ev_ok(ok[i].line);
		assert_false(ev.activity);
		assert_int_equal(ev.trigger, ok[i].want);
		assert_string_equal(ev.who.user_id, UID);
	}

	static const char *const bad[] = {
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 0}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 4}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": -1}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": \"2\"}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 2.0}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 1e0}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": true}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": null}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": [2]}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 9223372036854775807}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": -9223372036854775808}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 4294967298}", /* 2 mod 2^32 */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		ev_fails(bad[i], MSG_REPLY);
	/* beyond a 64-bit integer: the JSON parser refuses it */
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"goodbye_reply\": 99999999999999999999}",
			MSG_NOT_JSON);
}

static void test_event_trigger(void **state)
{
	(void)state;
	static const char *const names[] = {
		"inactivity_14d",     "user_message",       "goodbye_response_1",
		"goodbye_response_2", "goodbye_response_3", "goodbye_timeout",
		"reminder_due",
	};
	assert_int_equal(ARRAY_LEN(names), ENG_TR_COUNT);
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		char line[160];
		snprintf(line, sizeof(line), "{\"phone\": \"" PHONE "\", \"trigger\": \"%s\"}",
			 names[i]);
		struct eng_event ev = ev_ok(line);
		assert_false(ev.activity); /* even for user_message */
		assert_string_equal(eng_trigger_name(ev.trigger), names[i]);
		assert_string_equal(ev.who.phone, PHONE);
		assert_string_equal(ev.who.user_id, "");
	}

	static const char *const bad[] = {
		"{\"user_id\": \"" UID "\", \"trigger\": \"unknown\"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"\"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"Reminder_Due\"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"goodbye_response_4\"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"user_message \"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"activity\"}",
		"{\"user_id\": \"" UID "\", \"trigger\": \"dormant\"}",
		/* not a string */
		"{\"user_id\": \"" UID "\", \"trigger\": 1}",
		"{\"user_id\": \"" UID "\", \"trigger\": null}",
		"{\"user_id\": \"" UID "\", \"trigger\": true}",
		"{\"user_id\": \"" UID "\", \"trigger\": [\"reminder_due\"]}",
		"{\"user_id\": \"" UID "\", \"trigger\": {\"name\": \"reminder_due\"}}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		ev_fails(bad[i], MSG_TRIGGER);
}

static void test_event_user_id(void **state)
{
	(void)state;
	/* uppercase accepted, stored lowercase */
	struct eng_event ev = ev_ok("{\"user_id\": \"" UID_UPPER "\", \"activity\": true}");
	assert_string_equal(ev.who.user_id, UID);
	ev = ev_ok("{\"user_id\": \"0F8fAd5B-d9cb-469F-a165-70867728950E\", \"activity\": true}");
	assert_string_equal(ev.who.user_id, UID);

	static const char *const bad[] = {
		"{\"user_id\": \"\", \"activity\": true}",
		"{\"user_id\": \"not-a-uuid\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5bd9cb469fa16570867728950e\", \"activity\": true}",
		"{\"user_id\": \"{0f8fad5b-d9cb-469f-a165-70867728950e}\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5b-d9cb-469f-a165-70867728950\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5b-d9cb-469f-a165-70867728950e0\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5g-d9cb-469f-a165-70867728950e\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5bd-9cb-469f-a165-70867728950e\", \"activity\": true}",
		"{\"user_id\": \" 0f8fad5b-d9cb-469f-a165-70867728950\", \"activity\": true}",
		"{\"user_id\": \"0f8fad5b-d9cb-469f-a165-70867728950e \", \"activity\": true}",
		"{\"user_id\": \"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e\", \"activity\": true}",
		"{\"user_id\": 12345, \"activity\": true}",
		"{\"user_id\": null, \"activity\": true}",
		"{\"user_id\": [\"" UID "\"], \"activity\": true}",
		/* a bad id fails as such even when a phone is given too */
		"{\"user_id\": \"nope\", \"phone\": \"" PHONE "\", \"activity\": true}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		ev_fails(bad[i], MSG_UUID);
}

static void test_event_phone(void **state)
{
	(void)state;
	struct eng_event ev = ev_ok("{\"phone\": \"" PHONE "\", \"activity\": true}");
	assert_string_equal(ev.who.phone, PHONE);
	assert_string_equal(ev.who.user_id, "");
	/* 8 and 15 digits: the bounds */
	ev = ev_ok("{\"phone\": \"+12345678\", \"goodbye_reply\": 2}");
	assert_string_equal(ev.who.phone, "+12345678");
	ev = ev_ok("{\"phone\": \"+123456789012345\", \"goodbye_reply\": 2}");
	assert_string_equal(ev.who.phone, "+123456789012345");

	static const char *const bad[] = {
		"{\"phone\": \"5511987654321\", \"activity\": true}",     /* no + */
		"{\"phone\": \"+0511987654321\", \"activity\": true}",    /* leading 0 */
		"{\"phone\": \"+1234567\", \"activity\": true}",          /* 7 digits */
		"{\"phone\": \"+1234567890123456\", \"activity\": true}", /* 16 digits */
		"{\"phone\": \"+55 11 98765 4321\", \"activity\": true}",
		"{\"phone\": \"+55-11-98765-4321\", \"activity\": true}",
		"{\"phone\": \"+5511987654321 \", \"activity\": true}",
		"{\"phone\": \"++5511987654321\", \"activity\": true}",
		"{\"phone\": \"+\", \"activity\": true}",
		"{\"phone\": \"\", \"activity\": true}",
		"{\"phone\": 5511987654321, \"activity\": true}",
		"{\"phone\": null, \"activity\": true}",
		"{\"user_id\": \"" UID "\", \"phone\": \"123\", \"activity\": true}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		ev_fails(bad[i], MSG_PHONE);
}

static void test_event_who(void **state)
{
	(void)state;
	/* both, neither */
	ev_fails("{\"user_id\": \"" UID "\", \"phone\": \"" PHONE "\", \"activity\": true}",
		 MSG_WHO);
	ev_fails("{\"activity\": true}", MSG_WHO);
	ev_fails("{\"goodbye_reply\": 1, \"at\": \"2026-11-22T06:00:00Z\"}", MSG_WHO);
	/* the user is checked before the action */
	ev_fails("{}", MSG_WHO);
	ev_fails("{\"activity\": true, \"goodbye_reply\": 1}", MSG_WHO);
}

static void test_event_at(void **state)
{
	(void)state;
	/* absent: the default */
	struct eng_event ev = ev_ok("{\"user_id\": \"" UID "\", \"activity\": true}");
	assert_int_equal(ev.at, at_of(DEFAULT_AT_TEXT));
	/* given: its instant, whatever the offset or precision */
	ev = ev_ok("{\"user_id\": \"" UID "\", \"activity\": true, "
		   "\"at\": \"2026-11-20T10:15:30Z\"}");
	assert_int_equal(ev.at, at_of("2026-11-20T10:15:30Z"));
	ev = ev_ok("{\"at\": \"2026-11-20T07:15:30-03:00\", \"user_id\": \"" UID "\", "
		   "\"goodbye_reply\": 3}");
	assert_int_equal(ev.at, at_of("2026-11-20T10:15:30Z"));
	ev = ev_ok("{\"user_id\": \"" UID "\", \"trigger\": \"reminder_due\", "
		   "\"at\": \"2026-11-20T10:15:30.123456Z\"}");
	assert_int_equal(ev.at, at_of("2026-11-20T10:15:30Z") + 123456);
	assert_int_equal(ev.trigger, ENG_TR_REMINDER_DUE);

	static const char *const bad[] = {
		"\"\"",
		"\"yesterday\"",
		"\"2026-11-20\"",
		"\"2026-11-20T10:15:30\"",       /* no offset */
		"\"2026-02-30T10:15:30Z\"",      /* no such day */
		"\"2026-11-20T24:00:00Z\"",
		"\"2026-11-20T10:15:30+0300\"",
		"\"2026-11-20T10:15:30Z \"",
		"\"20261120T101530Z\"",
		"1763633730",
		"null",
		"true",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char line[200];
		snprintf(line, sizeof(line),
			 "{\"user_id\": \"" UID "\", \"activity\": true, \"at\": %s}", bad[i]);
		ev_fails(line, MSG_AT);
	}
}

static void test_event_unknown_fields(void **state)
{
	(void)state;
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": true, \"foo\": 1}",
		 "unknown field \"foo\"");
	/* names are case-sensitive */
	ev_fails("{\"User_Id\": \"" UID "\", \"activity\": true}", "unknown field \"User_Id\"");
	ev_fails("{\"user_id\": \"" UID "\", \"Activity\": true}", "unknown field \"Activity\"");
	/* optout-set's fields are not engagement-event's */
	ev_fails("{\"user_id\": \"" UID "\", \"opt_out\": true}", "unknown field \"opt_out\"");
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": true, \"\": 1}", "unknown field \"\"");
	/* a long name is cut at 40 bytes */
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": true, "
		 "\"abcdefghijabcdefghijabcdefghijabcdefghijXYZXYZXYZ\": 1}",
		 "unknown field \"abcdefghijabcdefghijabcdefghijabcdefghij\"");
	/* the first bad field in the line is the one reported */
	ev_fails("{\"user_id\": \"" UID "\", \"bar\": 1, \"activity\": false}",
		 "unknown field \"bar\"");
}

static void test_event_one_action(void **state)
{
	(void)state;
	ev_fails("{\"user_id\": \"" UID "\"}", MSG_WHAT);
	ev_fails("{\"user_id\": \"" UID "\", \"at\": \"2026-11-20T10:15:30Z\"}", MSG_WHAT);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": true, \"goodbye_reply\": 1}", MSG_WHAT);
	ev_fails("{\"user_id\": \"" UID "\", \"activity\": true, \"trigger\": \"user_message\"}",
		 MSG_WHAT);
	ev_fails("{\"user_id\": \"" UID "\", \"goodbye_reply\": 2, "
		 "\"trigger\": \"goodbye_response_2\"}",
		 MSG_WHAT);
	ev_fails("{\"phone\": \"" PHONE "\", \"activity\": true, \"goodbye_reply\": 3, "
		 "\"trigger\": \"goodbye_timeout\"}",
		 MSG_WHAT);
}

static void test_event_not_an_object(void **state)
{
	(void)state;
	ev_fails("[]", MSG_NOT_OBJECT);
	ev_fails("[{\"user_id\": \"" UID "\", \"activity\": true}]", MSG_NOT_OBJECT);
	/* a scalar at the top is refused by the JSON parser itself (jansson
	 * reads only an object or array there): still ENG_EDATA, and the
	 * message says an object or array was expected */
	static const char *const scalars[] = {"42", "\"activity\"", "null", "true"};
	for (size_t i = 0; i < ARRAY_LEN(scalars); i++) {
		struct eng_event ev;
		struct eng_err err = ENG_ERR_INIT;
		assert_int_equal(ev_parse(scalars[i], &ev, &err), ENG_EDATA);
		msg_has(&err, scalars[i], "'[' or '{' expected");
	}
}

static void test_event_not_json(void **state)
{
	(void)state;
	ev_fails_prefix("", MSG_NOT_JSON);
	ev_fails_prefix("   ", MSG_NOT_JSON);
	ev_fails_prefix("{", MSG_NOT_JSON);
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"activity\": true", MSG_NOT_JSON);
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"activity\": true,}", MSG_NOT_JSON);
	ev_fails_prefix("{'user_id': '" UID "', 'activity': true}", MSG_NOT_JSON);
	ev_fails_prefix("{user_id: \"" UID "\", activity: true}", MSG_NOT_JSON);
	ev_fails_prefix("user_id=" UID " activity=true", MSG_NOT_JSON);
	/* trailing text after the object */
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"activity\": true} x", MSG_NOT_JSON);
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"activity\": true}"
			"{\"user_id\": \"" UID "\", \"activity\": true}",
			MSG_NOT_JSON);
	/* NUL inside a string */
	ev_fails_prefix("{\"user_id\": \"" UID "\", \"trigger\": \"user_message\\u0000\"}",
			MSG_NOT_JSON);
	/* a NUL byte inside the line */
	static const char nul[] = "{\"user_id\": \"" UID "\", \"activity\": true}\0 ";
	ev_fails_with(nul, sizeof(nul) - 1, MSG_NOT_JSON, true);
	/* the message says why */
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	assert_int_equal(ev_parse("{\"user_id\": \"" UID "\", \"activity\": true} x", &ev, &err),
			 ENG_EDATA);
	msg_has(&err, "trailing x", "end of file expected");
}

static void test_event_duplicate_keys(void **state)
{
	(void)state;
	static const char *const dup[] = {
		"{\"user_id\": \"" UID "\", \"user_id\": \"" UID "\", \"activity\": true}",
		"{\"user_id\": \"" UID "\", \"activity\": true, \"activity\": true}",
		"{\"user_id\": \"" UID "\", \"goodbye_reply\": 1, \"goodbye_reply\": 3}",
		"{\"phone\": \"" PHONE "\", \"activity\": true, \"at\": \"2026-11-20T10:15:30Z\", "
		"\"at\": \"2026-11-21T10:15:30Z\"}",
		/* the same key spelled with an escape */
		"{\"user_id\": \"" UID "\", \"activity\": true, \"\\u0061ctivity\": true}",
	};
	for (size_t i = 0; i < ARRAY_LEN(dup); i++) {
		struct eng_event ev;
		struct eng_err err = ENG_ERR_INIT;
		ev_fails_prefix(dup[i], MSG_NOT_JSON);
		assert_int_equal(ev_parse(dup[i], &ev, &err), ENG_EDATA);
		msg_has(&err, dup[i], "duplicate object key");
	}
}

static void test_event_invalid_utf8(void **state)
{
	(void)state;
	static const char *const bad[] = {
		/* in a value */
		"{\"user_id\": \"" UID "\", \"trigger\": \"user_message\xff\"}",
		/* in a key */
		"{\"user_id\": \"" UID "\", \"activity\": true, \"k\xc3\": 1}",
		/* overlong "/" */
		"{\"user_id\": \"" UID "\", \"trigger\": \"\xc0\xaf\"}",
		/* a lone continuation byte */
		"{\"user_id\": \"" UID "\", \"trigger\": \"\x80\"}",
		/* a UTF-16 surrogate encoded in UTF-8 */
		"{\"user_id\": \"" UID "\", \"trigger\": \"\xed\xa0\x80\"}",
		/* truncated sequence at the end of a string */
		"{\"user_id\": \"" UID "\", \"trigger\": \"reminder_due\xe2\x82\"}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct eng_event ev;
		struct eng_err err = ENG_ERR_INIT;
		ev_fails_prefix(bad[i], MSG_NOT_JSON);
		assert_int_equal(ev_parse(bad[i], &ev, &err), ENG_EDATA);
		msg_has(&err, "invalid UTF-8", "unable to decode byte");
	}
	/* valid UTF-8 elsewhere is only an unknown trigger */
	ev_fails("{\"user_id\": \"" UID "\", \"trigger\": \"lembrete_\xc3\xa9\"}", MSG_TRIGGER);
}

/* The line is text[0, len): what follows is not read; trailing whitespace
 * (a CR of a CRLF file) is fine. */
static void test_event_length_and_whitespace(void **state)
{
	(void)state;
	static const char buf[] = "{\"user_id\": \"" UID "\", \"activity\": true}GARBAGE";
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(eng_event_parse_json(buf, sizeof(buf) - 1 - strlen("GARBAGE"),
					      at_of(DEFAULT_AT_TEXT), INT64_MAX, &ev, &err),
			 ENG_OK);
	assert_true(ev.activity);
	/* one byte short: cut */
	ev_fails_with(buf, sizeof(buf) - 2 - strlen("GARBAGE"), MSG_NOT_JSON, true);

	ev = ev_ok("  {\"user_id\": \"" UID "\", \"activity\": true}\r");
	assert_true(ev.activity);
	ev = ev_ok("\t{ \"user_id\" : \"" UID "\" ,\n \"goodbye_reply\" : 2 } ");
	assert_int_equal(ev.trigger, ENG_TR_GOODBYE_RESPONSE_2);
}

/* A line dated after the latest instant allowed (the database's clock and
 * five minutes) is refused: it would freeze last_activity_at. */
static void test_event_future_refused(void **state)
{
	(void)state;
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	memset(&ev, 0, sizeof(ev));
	const char *a = "{\"phone\": \"" PHONE "\", \"activity\": true, "
			"\"at\": \"9999-12-31T00:00:00Z\"}";
	eng_time latest = at_of("2026-11-30T00:05:00Z");
	assert_int_equal(eng_event_parse_json(a, strlen(a), 0, latest, &ev, &err), ENG_EDATA);
	assert_non_null(strstr(err.msg, "ahead of the database clock"));
	const char *b = "{\"phone\": \"" PHONE "\", \"activity\": true, "
			"\"at\": \"2026-11-30T00:05:00Z\"}";
	assert_int_equal(eng_event_parse_json(b, strlen(b), 0, latest, &ev, &err), ENG_OK);
}

/* A parse starts from nothing but the line number: nothing of an earlier
 * line survives into the next. */
static void test_event_starts_afresh(void **state)
{
	(void)state;
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	memset(&ev, 0, sizeof(ev));
	const char *a = "{\"phone\": \"" PHONE "\", \"activity\": true, "
			"\"at\": \"2026-01-01T00:00:00Z\"}";
	assert_int_equal(eng_event_parse_json(a, strlen(a), 1, INT64_MAX, &ev, &err), ENG_OK);
	ev.line = 12;
	ev.outcome = ENG_EV_FAILED;
	ev.from = ENG_ST_DORMANT;
	ev.to = ENG_ST_ACTIVE;
	eng_err_set(&ev.err, ENG_ENOUSER, "earlier");
	ev.who.found = true;
	const char *b = "{\"user_id\": \"" UID "\", \"goodbye_reply\": 1}";
	assert_int_equal(eng_event_parse_json(b, strlen(b), 99, INT64_MAX, &ev, &err), ENG_OK);
	assert_int_equal(ev.line, 12);
	assert_false(ev.activity);
	assert_int_equal(ev.trigger, ENG_TR_GOODBYE_RESPONSE_1);
	assert_string_equal(ev.who.phone, "");
	assert_string_equal(ev.who.user_id, UID);
	assert_false(ev.who.found);
	assert_int_equal(ev.at, 99);
	assert_int_equal(ev.outcome, ENG_EV_PENDING);
	assert_int_equal(ev.from, 0);
	assert_int_equal(ev.to, 0);
	assert_int_equal(ev.err.status, ENG_OK);
	assert_string_equal(ev.err.msg, "");
}

/* ---- eng_optout_parse_json ------------------------------------------------- */

static enum eng_status op_parse(const char *text, struct eng_optout_item *it,
				struct eng_err *err)
{
	memset(it, 0, sizeof(*it)); /* as the batch reader does */
	eng_err_clear(err);
	return eng_optout_parse_json(text, strlen(text), it, err);
}

/* it is released by the caller. */
static void op_ok(const char *text, struct eng_optout_item *it)
{
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = op_parse(text, it, &err);
	if (st != ENG_OK)
		fail_msg("input %s: status %d, message \"%s\"", text, (int)st, err.msg);
	assert_false(it->failed);
}

static void op_fails_with(const char *text, const char *want, bool prefix)
{
	struct eng_optout_item it;
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = op_parse(text, &it, &err);
	eng_optout_item_release(&it);
	if (st != ENG_EDATA)
		fail_msg("input %s: status %d (want ENG_EDATA), message \"%s\"", text, (int)st,
			 err.msg);
	assert_int_equal(err.status, ENG_EDATA);
	assert_string_equal(err.event, "");
	if (prefix ? strncmp(err.msg, want, strlen(want)) != 0 : strcmp(err.msg, want) != 0)
		fail_msg("input %s: message \"%s\", want %s\"%s\"", text, err.msg,
			 prefix ? "a prefix " : "", want);
}

static void op_fails(const char *text, const char *want)
{
	op_fails_with(text, want, false);
}

static void test_optout_ok(void **state)
{
	(void)state;
	struct eng_optout_item it;
	op_ok("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\"}", &it);
	assert_string_equal(it.who.user_id, UID);
	assert_string_equal(it.who.phone, "");
	assert_true(it.opt_out);
	assert_string_equal(it.source, "web");
	assert_true(it.at == ENG_TIME_NONE); /* no "at": the database's now */
	assert_null(it.reason);
	eng_optout_item_release(&it);

	op_ok("{\"source\": \"whatsapp\", \"opt_out\": false, \"phone\": \"" PHONE "\", "
	      "\"at\": \"2026-11-20T07:15:30-03:00\", \"reason\": \"parar lembretes\"}",
	      &it);
	assert_string_equal(it.who.phone, PHONE);
	assert_string_equal(it.who.user_id, "");
	assert_false(it.opt_out);
	assert_string_equal(it.source, "whatsapp");
	assert_int_equal(it.at, at_of("2026-11-20T10:15:30Z"));
	assert_string_equal(it.reason, "parar lembretes");
	eng_optout_item_release(&it);
	assert_null(it.reason);
	eng_optout_item_release(&it); /* twice is harmless */

	op_ok("{\"user_id\": \"" UID_UPPER "\", \"opt_out\": true, \"source\": \"api\"}", &it);
	assert_string_equal(it.who.user_id, UID);
	eng_optout_item_release(&it);
}

static void test_optout_opt_out(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"\"true\"", "1", "0", "null", "[]", "{}", "\"yes\"",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char line[200];
		snprintf(line, sizeof(line),
			 "{\"user_id\": \"" UID "\", \"opt_out\": %s, \"source\": \"cli\"}", bad[i]);
		op_fails(line, MSG_OPT_OUT);
	}
	op_fails("{\"user_id\": \"" UID "\", \"source\": \"cli\"}", MSG_OPT_OUT_MISSING);
	/* who before the value, the value before the source */
	op_fails("{\"source\": \"cli\", \"opt_out\": true}", MSG_WHO);
	op_fails("{\"user_id\": \"" UID "\"}", MSG_OPT_OUT_MISSING);
	op_fails("{}", MSG_WHO);
}

static void test_optout_source(void **state)
{
	(void)state;
	static const char *const good[] = {"whatsapp", "web", "cli", "api"};
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		char line[200];
		struct eng_optout_item it;
		snprintf(line, sizeof(line),
			 "{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"%s\"}",
			 good[i]);
		op_ok(line, &it);
		assert_string_equal(it.source, good[i]);
		eng_optout_item_release(&it);
	}
	static const char *const bad[] = {
		"\"WEB\"", "\"Web\"", "\"sms\"", "\"\"", "\" web\"", "\"web \"", "\"whatsapp-cloud\"",
		"\"webhook\"", "1", "null", "true", "[\"web\"]",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char line[200];
		snprintf(line, sizeof(line),
			 "{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": %s}", bad[i]);
		op_fails(line, MSG_SOURCE);
	}
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true}", MSG_SOURCE_MISSING);
	op_fails("{\"phone\": \"" PHONE "\", \"opt_out\": false, \"at\": \"2026-11-20T10:15:30Z\"}",
		 MSG_SOURCE_MISSING);
}

static void test_optout_source_valid(void **state)
{
	(void)state;
	assert_true(eng_optout_source_valid("whatsapp"));
	assert_true(eng_optout_source_valid("web"));
	assert_true(eng_optout_source_valid("cli"));
	assert_true(eng_optout_source_valid("api"));
	assert_false(eng_optout_source_valid(NULL));
	assert_false(eng_optout_source_valid(""));
	assert_false(eng_optout_source_valid("WhatsApp"));
	assert_false(eng_optout_source_valid("CLI"));
	assert_false(eng_optout_source_valid("we"));
	assert_false(eng_optout_source_valid("webs"));
	assert_false(eng_optout_source_valid("web "));
	assert_false(eng_optout_source_valid("sms"));
	assert_false(eng_optout_source_valid("whatsapp\n"));
}

/* A line of a reason of n copies of unit. */
static char *reason_line(const char *unit, size_t n)
{
	size_t ul = strlen(unit);
	size_t cap = 128 + ul * n;
	char *line = malloc(cap);
	assert_non_null(line);
	int k = snprintf(line, cap,
			 "{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
			 "\"reason\": \"");
	for (size_t i = 0; i < n; i++) {
		memcpy(line + k, unit, ul);
		k += (int)ul;
	}
	memcpy(line + k, "\"}", 3);
	return line;
}

static void test_optout_reason(void **state)
{
	(void)state;
	struct eng_optout_item it;
	/* 500 bytes: the limit */
	char *line = reason_line("a", 500);
	op_ok(line, &it);
	assert_int_equal(strlen(it.reason), 500);
	eng_optout_item_release(&it);
	free(line);
	line = reason_line("a", 501);
	op_fails(line, MSG_REASON);
	free(line);
	/* bytes, not characters: 250 é are 500 bytes, 251 are 502 */
	line = reason_line("\xc3\xa9", 250);
	op_ok(line, &it);
	assert_int_equal(strlen(it.reason), 500);
	eng_optout_item_release(&it);
	free(line);
	line = reason_line("\xc3\xa9", 251);
	op_fails(line, MSG_REASON);
	free(line);
	/* bytes after decoding the JSON escapes: \u00e9 is 2 bytes, not 6 */
	line = reason_line("\\u00e9", 250);
	op_ok(line, &it);
	assert_int_equal(strlen(it.reason), 500);
	eng_optout_item_release(&it);
	free(line);
	/* empty is a reason */
	op_ok("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", \"reason\": \"\"}",
	      &it);
	assert_non_null(it.reason);
	assert_string_equal(it.reason, "");
	eng_optout_item_release(&it);
	/* not a string */
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", \"reason\": null}",
		 MSG_REASON);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", \"reason\": 5}",
		 MSG_REASON);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		 "\"reason\": [\"x\"]}",
		 MSG_REASON);
	/* a reason read before a later error is freed by the release (valgrind
	 * checks) */
	op_fails("{\"user_id\": \"" UID "\", \"reason\": \"x\", \"source\": \"nope\", "
		 "\"opt_out\": true}",
		 MSG_SOURCE);
}

static void test_optout_at(void **state)
{
	(void)state;
	struct eng_optout_item it;
	op_ok("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
	      "\"at\": \"2026-11-20T10:15:30.5Z\"}",
	      &it);
	assert_int_equal(it.at, at_of("2026-11-20T10:15:30Z") + 500000);
	eng_optout_item_release(&it);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		 "\"at\": \"now\"}",
		 MSG_AT);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		 "\"at\": \"2026-11-20 10:15:30\"}",
		 MSG_AT);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		 "\"at\": 1763633730}",
		 MSG_AT);
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", \"at\": null}",
		 MSG_AT);
}

static void test_optout_who(void **state)
{
	(void)state;
	op_fails("{\"user_id\": \"" UID "\", \"phone\": \"" PHONE "\", \"opt_out\": true, "
		 "\"source\": \"web\"}",
		 MSG_WHO);
	op_fails("{\"opt_out\": true, \"source\": \"web\"}", MSG_WHO);
	op_fails("{\"user_id\": \"" UID "x\", \"opt_out\": true, \"source\": \"web\"}", MSG_UUID);
	op_fails("{\"user_id\": 7, \"opt_out\": true, \"source\": \"web\"}", MSG_UUID);
	op_fails("{\"phone\": \"011987654321\", \"opt_out\": true, \"source\": \"web\"}", MSG_PHONE);
	op_fails("{\"phone\": \"+55 (11) 98765-4321\", \"opt_out\": true, \"source\": \"web\"}",
		 MSG_PHONE);
}

static void test_optout_malformed(void **state)
{
	(void)state;
	/* (no case for "id": DESIGN.md §2.3 gives batch lines an optional
	 * "id", which the parsers do not know yet; see the report) */
	op_fails("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		 "\"activity\": true}",
		 "unknown field \"activity\"");
	op_fails("{\"user_id\": \"" UID "\", \"optout\": true, \"source\": \"web\"}",
		 "unknown field \"optout\"");
	op_fails("[]", MSG_NOT_OBJECT);
	op_fails_with("", MSG_NOT_JSON, true);
	op_fails_with("opt_out=true", MSG_NOT_JSON, true);
	op_fails_with("{\"user_id\": \"" UID "\", \"opt_out\": true, \"opt_out\": false, "
		      "\"source\": \"web\"}",
		      MSG_NOT_JSON "duplicate object key", true);
	op_fails_with("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		      "\"reason\": \"bad \xff byte\"}",
		      MSG_NOT_JSON "unable to decode byte 0xff", true);
	op_fails_with("{\"user_id\": \"" UID "\", \"opt_out\": true, \"source\": \"web\", "
		      "\"reason\": \"nul \\u0000 inside\"}",
		      MSG_NOT_JSON, true);
}

/* An explicit 1970-01-01T00:00:00Z is an instant like any other (older
 * than anything stored: stale), not "no instant" (the database's now). */
static void test_epoch_at_is_not_now(void **state)
{
	(void)state;
	struct eng_optout_item with, without;
	op_ok("{\"user_id\": \"" UID "\", \"opt_out\": false, \"source\": \"api\", "
	      "\"at\": \"1970-01-01T00:00:00Z\"}",
	      &with);
	op_ok("{\"user_id\": \"" UID "\", \"opt_out\": false, \"source\": \"api\"}", &without);
	assert_true(with.at == 0);
	assert_true(without.at == ENG_TIME_NONE);
	eng_optout_item_release(&with);
	eng_optout_item_release(&without);

	/* the same through --at, and without it */
	struct eng_optout_args a = {.user = UID, .opt_out = false, .source = "cli",
				    .at = "1970-01-01T00:00:00Z"};
	struct eng_optout_request rq;
	struct eng_err err = ENG_ERR_INIT;
	assert_int_equal(eng_optout_from_args(&a, &rq, &err), ENG_OK);
	assert_true(rq.at == 0);
	a.at = NULL;
	assert_int_equal(eng_optout_from_args(&a, &rq, &err), ENG_OK);
	assert_true(rq.at == ENG_TIME_NONE);

	/* and engagement-event's --at */
	struct eng_event_args ea = {.user = UID, .activity = true,
				    .at = "1970-01-01T00:00:00Z"};
	struct eng_event ev;
	assert_int_equal(eng_event_from_args(&ea, &ev, &err), ENG_OK);
	assert_true(ev.at == 0);
	ea.at = NULL;
	assert_int_equal(eng_event_from_args(&ea, &ev, &err), ENG_OK);
	assert_true(ev.at == ENG_TIME_NONE);
}

/* ---- eng_optout_from_args -------------------------------------------------- */

static struct eng_optout_args base_args(void)
{
	return (struct eng_optout_args){.user = UID, .source = "cli"};
}

static void from_args_ok(const struct eng_optout_args *a, struct eng_optout_request *rq)
{
	struct eng_err err = ENG_ERR_INIT;
	memset(rq, 0x5a, sizeof(*rq));
	enum eng_status st = eng_optout_from_args(a, rq, &err);
	if (st != ENG_OK)
		fail_msg("text %s: status %d, message \"%s\"", a->text ? a->text : "(none)",
			 (int)st, err.msg);
}

static void from_args_fails(const struct eng_optout_args *a, const char *event,
			    const char *want)
{
	struct eng_optout_request rq;
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = eng_optout_from_args(a, &rq, &err);
	if (st != ENG_EDATA)
		fail_msg("text %s at %s: status %d (want ENG_EDATA), message \"%s\"",
			 a->text ? a->text : "(none)", a->at ? a->at : "(none)", (int)st, err.msg);
	assert_int_equal(err.status, ENG_EDATA);
	assert_string_equal(err.event, event);
	assert_string_equal(err.msg, want);
}

static void test_from_args_values(void **state)
{
	(void)state;
	struct eng_optout_args a = base_args();
	struct eng_optout_request rq;
	a.opt_out = true;
	from_args_ok(&a, &rq);
	assert_true(rq.opt_out);
	assert_string_equal(rq.who.user_id, UID);
	assert_string_equal(rq.who.phone, "");
	assert_false(rq.who.found);
	assert_string_equal(rq.source, "cli");
	assert_true(rq.at == ENG_TIME_NONE);
	assert_string_equal(rq.reason, "");
	a.opt_out = false;
	a.user = NULL;
	a.phone = PHONE;
	a.source = "web";
	a.at = "2026-11-20T10:15:30Z";
	from_args_ok(&a, &rq);
	assert_false(rq.opt_out);
	assert_string_equal(rq.who.phone, PHONE);
	assert_string_equal(rq.who.user_id, "");
	assert_string_equal(rq.source, "web");
	assert_int_equal(rq.at, at_of("2026-11-20T10:15:30Z"));
	a.at = "2026-11-20T07:15:30.25-03:00";
	from_args_ok(&a, &rq);
	assert_int_equal(rq.at, at_of("2026-11-20T10:15:30Z") + 250000);
}

static void test_from_args_phrases(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool opt_out;
		const char *locale;
	} cases[] = {
		/* en */
		{"stop reminders", true, "en"},
		{"start reminders", false, "en"},
		{"STOP REMINDERS", true, "en"},
		{"Start Reminders", false, "en"},
		{"  stop    reminders  ", true, "en"},
		{"stop\treminders\n", true, "en"},
		{"Stop reminders!", true, "en"},
		{"stop reminders...", true, "en"},
		{"¿start reminders?", false, "en"},
		/* pt-BR */
		{"parar lembretes", true, "pt-BR"},
		{"ativar lembretes", false, "pt-BR"},
		{"Parar Lembretes", true, "pt-BR"},
		{"PARAR LEMBRETES", true, "pt-BR"},
		{"Párar lembrêtes", true, "pt-BR"},
		{"ÁTIVAR LEMBRETES", false, "pt-BR"},
		{"parar\xc2\xa0lembretes", true, "pt-BR"}, /* no-break space */
		{" ativar  lembretes. ", false, "pt-BR"},
		/* es */
		{"parar recordatorios", true, "es"},
		{"activar recordatorios", false, "es"},
		{"Parar Recordatorios", true, "es"},
		{"parar recordatórios", true, "es"},
		{"PARAR RECORDATÓRIOS", true, "es"},
		{"¡Activar recordatorios!", false, "es"},
		{"activar   recordatorios", false, "es"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		/* the phrase decides, whatever the flag says */
		for (int flag = 0; flag < 2; flag++) {
			struct eng_optout_args a = base_args();
			struct eng_optout_request rq;
			a.text = cases[i].text;
			a.opt_out = flag;
			from_args_ok(&a, &rq);
			if (rq.opt_out != cases[i].opt_out)
				fail_msg("\"%s\": opt_out %d, want %d", cases[i].text, rq.opt_out,
					 cases[i].opt_out);
			char want[256];
			snprintf(want, sizeof(want), "phrase \"%s\" (%s)", cases[i].text,
				 cases[i].locale);
			assert_string_equal(rq.reason, want);
			assert_string_equal(rq.source, "cli");
		}
	}
}

static void test_from_args_unknown_phrase(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "   ", "stop", "reminders", "stop reminders now", "please stop reminders",
		"stopreminders", "pararlembretes", "stop-reminders", "stop_reminders",
		"parar lembrete", "parar recordatorio", "stopp reminders", "parar", "unsubscribe",
		"STOP", "\"stop reminders\"", "stop reminders :)", "стоп",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct eng_optout_args a = base_args();
		a.text = bad[i];
		from_args_fails(&a, "unknown_phrase", MSG_PHRASE);
	}
	/* the phrase is checked before --at */
	struct eng_optout_args a = base_args();
	a.text = "stop";
	a.at = "yesterday";
	from_args_fails(&a, "unknown_phrase", MSG_PHRASE);
	/* and the user before the phrase */
	a.user = "nope";
	from_args_fails(&a, "invalid_input", "invalid --user \"nope\": not a UUID");
}

static void test_from_args_bad_at(void **state)
{
	(void)state;
	static const struct {
		const char *at, *msg;
	} bad[] = {
		{"yesterday", "invalid --at \"yesterday\": expected an RFC 3339 timestamp"},
		{"", "invalid --at \"\": expected an RFC 3339 timestamp"},
		{"2026-11-20", "invalid --at \"2026-11-20\": expected an RFC 3339 timestamp"},
		{"2026-11-20T10:15:30", "invalid --at \"2026-11-20T10:15:30\": expected an RFC "
					"3339 timestamp"},
		{"2026-13-01T00:00:00Z", "invalid --at \"2026-13-01T00:00:00Z\": expected an "
					 "RFC 3339 timestamp"},
		{"1763633730", "invalid --at \"1763633730\": expected an RFC 3339 timestamp"},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct eng_optout_args a = base_args();
		a.opt_out = true;
		a.at = bad[i].at;
		from_args_fails(&a, "invalid_input", bad[i].msg);
		/* with a phrase too */
		a.text = "stop reminders";
		from_args_fails(&a, "invalid_input", bad[i].msg);
	}
	/* a long value is cut at 60 bytes in the message */
	struct eng_optout_args a = base_args();
	a.at = "2026-11-20T10:15:30Z 0123456789012345678901234567890123456789 and more";
	from_args_fails(&a, "invalid_input",
			"invalid --at \"2026-11-20T10:15:30Z 0123456789012345678901234567890"
			"12345678\": expected an RFC 3339 timestamp");
}

static void test_from_args_reason(void **state)
{
	(void)state;
	static const struct {
		const char *reason, *text, *locale, *want;
	} cases[] = {
		{NULL, NULL, NULL, ""},
		{"ticket 42", NULL, NULL, "ticket 42"},
		{NULL, "Parar Lembretes", NULL, "phrase \"Parar Lembretes\" (pt-BR)"},
		{NULL, "Parar Lembretes", "pt-BR",
		 "phrase \"Parar Lembretes\" (pt-BR), user locale pt-BR"},
		/* the phrase's locale and the user's may differ */
		{NULL, "stop reminders", "es", "phrase \"stop reminders\" (en), user locale es"},
		{"ticket 42", "stop reminders", NULL, "ticket 42; phrase \"stop reminders\" (en)"},
		{"ticket 42", "¡Activar recordatorios!", "es-MX",
		 "ticket 42; phrase \"¡Activar recordatorios!\" (es), user locale es-MX"},
		/* --locale goes with --text only (the front end refuses it alone) */
		{"ticket 42", NULL, "pt-BR", "ticket 42"},
		{NULL, NULL, "pt-BR", ""},
		{"", "stop reminders", NULL, "; phrase \"stop reminders\" (en)"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct eng_optout_args a = base_args();
		struct eng_optout_request rq;
		a.opt_out = true;
		a.reason = cases[i].reason;
		a.text = cases[i].text;
		a.locale = cases[i].locale;
		from_args_ok(&a, &rq);
		assert_string_equal(rq.reason, cases[i].want);
	}
	/* the longest --reason the front end takes (500 bytes) fits whole */
	char reason[501];
	memset(reason, 'r', 500);
	reason[500] = '\0';
	struct eng_optout_args a = base_args();
	struct eng_optout_request rq;
	a.reason = reason;
	from_args_ok(&a, &rq);
	assert_string_equal(rq.reason, reason);
	/* ... and with a phrase and the longest --locale (35) */
	a.text = "parar recordatórios";
	a.locale = "abcdefghij-abcdefghij-abcdefghij-ab";
	from_args_ok(&a, &rq);
	char want[700];
	snprintf(want, sizeof(want), "%s; phrase \"%s\" (es), user locale %s", reason, a.text,
		 a.locale);
	assert_string_equal(rq.reason, want);
}

/* The consent record's reason is never cut: a --reason of 500 bytes, a
 * --text "stop reminders" + 200 "!" (still the phrase) and --locale pt-BR
 * fit whole (or, were they longer, would be refused). */
static void test_from_args_reason_not_cut(void **state)
{
	(void)state;
	char reason[501], text[215];
	memset(reason, 'r', 500);
	reason[500] = '\0';
	memcpy(text, "stop reminders", 14);
	memset(text + 14, '!', 200);
	text[214] = '\0';
	struct eng_optout_args a = base_args();
	struct eng_optout_request rq;
	struct eng_err err = ENG_ERR_INIT;
	a.reason = reason;
	a.text = text;
	a.locale = "pt-BR";
	assert_int_equal(eng_optout_from_args(&a, &rq, &err), ENG_OK);
	const char *tail = ", user locale pt-BR";
	size_t n = strlen(rq.reason), tn = strlen(tail);
	assert_true(n > tn);
	assert_string_equal(rq.reason + n - tn, tail);
}

/* ---- eng_user_ref_from_args (and eng_event_from_args) ----------------------- */

static void test_user_ref_from_args(void **state)
{
	(void)state;
	struct eng_user_ref ref;
	struct eng_err err = ENG_ERR_INIT;

	memset(&ref, 0x5a, sizeof(ref));
	assert_int_equal(eng_user_ref_from_args(UID, NULL, &ref, &err), ENG_OK);
	assert_string_equal(ref.user_id, UID);
	assert_string_equal(ref.phone, "");
	assert_false(ref.found);

	memset(&ref, 0x5a, sizeof(ref));
	assert_int_equal(eng_user_ref_from_args(UID_UPPER, NULL, &ref, &err), ENG_OK);
	assert_string_equal(ref.user_id, UID);

	memset(&ref, 0x5a, sizeof(ref));
	assert_int_equal(eng_user_ref_from_args(NULL, PHONE, &ref, &err), ENG_OK);
	assert_string_equal(ref.phone, PHONE);
	assert_string_equal(ref.user_id, "");
	assert_false(ref.found);

	memset(&ref, 0x5a, sizeof(ref));
	assert_int_equal(eng_user_ref_from_args(NULL, "+123456789012345", &ref, &err), ENG_OK);
	assert_string_equal(ref.phone, "+123456789012345");

	/* neither: nothing to check (the front end requires one) */
	memset(&ref, 0x5a, sizeof(ref));
	assert_int_equal(eng_user_ref_from_args(NULL, NULL, &ref, &err), ENG_OK);
	assert_string_equal(ref.user_id, "");
	assert_string_equal(ref.phone, "");
}

static void user_ref_fails(const char *user, const char *phone, const char *want)
{
	struct eng_user_ref ref;
	struct eng_err err = ENG_ERR_INIT;
	assert_int_equal(eng_user_ref_from_args(user, phone, &ref, &err), ENG_EDATA);
	assert_int_equal(err.status, ENG_EDATA);
	assert_string_equal(err.event, "invalid_input");
	assert_string_equal(err.msg, want);
}

#define MSG_ARG_PHONE                                                          \
	"invalid --phone: not an E.164 number (a + and 8 to 15 digits, the "   \
	"first not 0)"

static void test_user_ref_from_args_bad(void **state)
{
	(void)state;
	user_ref_fails("", NULL, "invalid --user \"\": not a UUID");
	user_ref_fails("nope", NULL, "invalid --user \"nope\": not a UUID");
	user_ref_fails("0f8fad5bd9cb469fa16570867728950e", NULL,
		       "invalid --user \"0f8fad5bd9cb469fa16570867728950e\": not a UUID");
	user_ref_fails(UID "0", NULL, "invalid --user \"" UID "0\": not a UUID");
	user_ref_fails(PHONE, NULL, "invalid --user \"" PHONE "\": not a UUID");
	/* cut at 60 bytes, kept on one line */
	user_ref_fails("0123456789012345678901234567890123456789012345678901234567890123456789",
		       NULL,
		       "invalid --user \"012345678901234567890123456789012345678901234567890123"
		       "456789\": not a UUID");
	user_ref_fails("bad\nid", NULL, "invalid --user \"bad id\": not a UUID");

	static const char *const phones[] = {
		"", "5511987654321", "+0511987654321", "+1234567", "+1234567890123456",
		"+55 11 98765 4321", "+55(11)987654321", UID,
	};
	for (size_t i = 0; i < ARRAY_LEN(phones); i++)
		user_ref_fails(NULL, phones[i], MSG_ARG_PHONE);
	/* the number is not echoed back */
	struct eng_user_ref ref;
	struct eng_err err = ENG_ERR_INIT;
	assert_int_equal(eng_user_ref_from_args(NULL, "+55119876543210000", &ref, &err),
			 ENG_EDATA);
	assert_null(strstr(err.msg, "98765"));
	/* the user is checked first */
	user_ref_fails("nope", "123", "invalid --user \"nope\": not a UUID");
	/* through eng_optout_from_args, unchanged */
	struct eng_optout_args a = {.phone = "123", .opt_out = true, .source = "cli"};
	from_args_fails(&a, "invalid_input", MSG_ARG_PHONE);
}

static void test_event_from_args(void **state)
{
	(void)state;
	struct eng_event ev;
	struct eng_err err = ENG_ERR_INIT;
	struct eng_event_args a = {.user = UID_UPPER, .activity = true};
	memset(&ev, 0x5a, sizeof(ev));
	assert_int_equal(eng_event_from_args(&a, &ev, &err), ENG_OK);
	assert_string_equal(ev.who.user_id, UID);
	assert_true(ev.activity);
	assert_int_equal(ev.trigger, ENG_TR_USER_MESSAGE);
	assert_true(ev.at == ENG_TIME_NONE); /* the job's now, later */
	assert_int_equal(ev.outcome, ENG_EV_PENDING);

	a = (struct eng_event_args){.phone = PHONE, .trigger = ENG_TR_GOODBYE_RESPONSE_2,
				    .at = "2026-11-20T10:15:30Z"};
	assert_int_equal(eng_event_from_args(&a, &ev, &err), ENG_OK);
	assert_string_equal(ev.who.phone, PHONE);
	assert_false(ev.activity);
	assert_int_equal(ev.trigger, ENG_TR_GOODBYE_RESPONSE_2);
	assert_int_equal(ev.at, at_of("2026-11-20T10:15:30Z"));

	a.at = "last tuesday";
	assert_int_equal(eng_event_from_args(&a, &ev, &err), ENG_EDATA);
	assert_string_equal(err.event, "invalid_input");
	assert_string_equal(err.msg, "invalid --at \"last tuesday\": expected an RFC 3339 "
				     "timestamp such as 2026-11-22T06:00:00Z");
	a.at = NULL;
	a.phone = "+55";
	assert_int_equal(eng_event_from_args(&a, &ev, &err), ENG_EDATA);
	assert_string_equal(err.event, "invalid_input");
	assert_string_equal(err.msg, MSG_ARG_PHONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* eng_event_parse_json */
		cmocka_unit_test(test_event_activity),
		cmocka_unit_test(test_event_goodbye_reply),
		cmocka_unit_test(test_event_trigger),
		cmocka_unit_test(test_event_user_id),
		cmocka_unit_test(test_event_phone),
		cmocka_unit_test(test_event_who),
		cmocka_unit_test(test_event_at),
		cmocka_unit_test(test_event_unknown_fields),
		cmocka_unit_test(test_event_one_action),
		cmocka_unit_test(test_event_not_an_object),
		cmocka_unit_test(test_event_not_json),
		cmocka_unit_test(test_event_duplicate_keys),
		cmocka_unit_test(test_event_invalid_utf8),
		cmocka_unit_test(test_event_length_and_whitespace),
		cmocka_unit_test(test_event_starts_afresh),
		cmocka_unit_test(test_event_future_refused),
		/* eng_optout_parse_json, eng_optout_source_valid */
		cmocka_unit_test(test_optout_ok),
		cmocka_unit_test(test_optout_opt_out),
		cmocka_unit_test(test_optout_source),
		cmocka_unit_test(test_optout_source_valid),
		cmocka_unit_test(test_optout_reason),
		cmocka_unit_test(test_optout_at),
		cmocka_unit_test(test_optout_who),
		cmocka_unit_test(test_optout_malformed),
		cmocka_unit_test(test_epoch_at_is_not_now),
		/* eng_optout_from_args */
		cmocka_unit_test(test_from_args_values),
		cmocka_unit_test(test_from_args_phrases),
		cmocka_unit_test(test_from_args_unknown_phrase),
		cmocka_unit_test(test_from_args_bad_at),
		cmocka_unit_test(test_from_args_reason),
		cmocka_unit_test(test_from_args_reason_not_cut),
		/* eng_user_ref_from_args, eng_event_from_args */
		cmocka_unit_test(test_user_ref_from_args),
		cmocka_unit_test(test_user_ref_from_args_bad),
		cmocka_unit_test(test_event_from_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
