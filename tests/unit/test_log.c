/* eng_log: one JSON object per line, whatever the values hold. The log goes
 * to a temporary file whose contents each test reads back. */
#include "unit.h"

#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_json.h"
#include "eng_log.h"

#define PROGRAM "testprog"
#define RUN_ID "0b0e7f6a-0f1f-4a57-9f53-6e3c4f1c2d3e"

static FILE *g_file;
static char *g_out; /* the last output read back, freed by the next read */

static int setup(void **state)
{
	(void)state;
	g_file = tmpfile();
	if (!g_file)
		return -1;
	eng_log_init(PROGRAM, RUN_ID, fileno(g_file));
	eng_log_set_level(ENG_INFO);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	eng_log_init("engagement", "", 2);
	fclose(g_file);
	g_file = NULL;
	free(g_out);
	g_out = NULL;
	return 0;
}

/* Everything logged since the last call; *n gets its size. The buffer
 * stays valid until the next call (teardown frees the last one), so a
 * failing assertion leaks nothing. */
static const char *take_output(size_t *n)
{
	free(g_out);
	g_out = NULL;
	int fd = fileno(g_file);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	assert_non_null(buf);
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	buf[size] = '\0';
	g_out = buf;
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	*n = size;
	return buf;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			k++;
	return k;
}

/* Parse one complete log line (with its '\n'); fails the test unless it is
 * exactly one line holding one JSON object. */
static json_t *parse_line(const char *line, size_t n)
{
	if (n == 0 || line[n - 1] != '\n')
		fail_msg("log line does not end in a newline (%zu bytes): %.200s",
			 n, line);
	if (count_lines(line, n) != 1)
		fail_msg("log output is %zu lines", count_lines(line, n));
	assert_true(memchr(line, '\0', n) == NULL);
	assert_true(eng_utf8_valid(line, n));
	json_error_t jerr;
	json_t *v = json_loadb(line, n, 0, &jerr);
	if (!v)
		fail_msg("log line is not JSON (%s at %d): %.300s", jerr.text,
			 jerr.position, line);
	assert_true(json_is_object(v));
	return v;
}

/* The one line logged since the last call, parsed. */
static json_t *take_line(void)
{
	size_t n;
	const char *s = take_output(&n);
	json_t *v = parse_line(s, n);
	return v;
}

static void assert_nothing_logged(void)
{
	size_t n;
	const char *s = take_output(&n);
	if (n)
		fail_msg("unexpected log output: %s", s);
}

static const char *str_field(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("field %s is not a string", key);
	return json_string_value(v);
}

static bool matches(const char *re, const char *s)
{
	regex_t rx;
	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return ok;
}

#define TS_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"

static void test_common_fields(void **state)
{
	(void)state;
	eng_log(ENG_INFO, "job_started", ENG_I("batch_size", 1000));
	json_t *v = take_line();
	const char *ts = str_field(v, "ts");
	if (!matches(TS_RE, ts))
		fail_msg("ts \"%s\" is not RFC 3339 UTC with milliseconds", ts);
	assert_string_equal(str_field(v, "level"), "info");
	assert_string_equal(str_field(v, "program"), PROGRAM);
	assert_string_equal(str_field(v, "run_id"), RUN_ID);
	assert_string_equal(str_field(v, "event"), "job_started");
	assert_true(json_is_integer(json_object_get(v, "batch_size")));
	assert_int_equal(json_integer_value(json_object_get(v, "batch_size")),
			 1000);
	assert_int_equal(json_object_size(v), 6);
	json_decref(v);
}

static void test_ts_is_now(void **state)
{
	(void)state;
	char before[32], after[32];
	eng_log_timestamp(before);
	eng_log(ENG_INFO, "tick");
	eng_log_timestamp(after);
	json_t *v = take_line();
	const char *ts = str_field(v, "ts");
	assert_true(matches(TS_RE, before));
	/* same format, so text order is time order */
	assert_true(strcmp(before, ts) <= 0);
	assert_true(strcmp(ts, after) <= 0);
	json_decref(v);
}

static void test_field_types(void **state)
{
	(void)state;
	eng_log(ENG_WARN, "types", ENG_S("s", "text"), ENG_I("i", -42),
		ENG_I("big", INT64_MAX), ENG_B("yes", true), ENG_B("no", false),
		ENG_D("half", 0.5), ENG_D("huge", 1e300), ENG_D("nan", NAN),
		ENG_D("inf", INFINITY), ENG_J("obj", "{\"a\":[1,2]}"),
		ENG_J("arr", "[true,null]"), ENG_PHONE("phone", "+5511987654321"),
		ENG_S("nul", NULL), ENG_PHONE("nophone", NULL), ENG_J("nj", NULL));
	json_t *v = take_line();
	assert_string_equal(str_field(v, "level"), "warn");
	assert_string_equal(str_field(v, "s"), "text");
	json_t *x = json_object_get(v, "i");
	assert_true(json_is_integer(x));
	assert_int_equal(json_integer_value(x), -42);
	x = json_object_get(v, "big");
	assert_true(json_is_integer(x));
	assert_true(json_integer_value(x) == INT64_MAX);
	assert_true(json_is_true(json_object_get(v, "yes")));
	assert_true(json_is_false(json_object_get(v, "no")));
	x = json_object_get(v, "half");
	assert_true(json_is_number(x));
	assert_true(json_number_value(x) == 0.5);
	x = json_object_get(v, "huge");
	assert_true(json_is_number(x));
	assert_true(fabs(json_number_value(x) / 1e300 - 1) < 1e-5);
	assert_true(json_is_null(json_object_get(v, "nan")));
	assert_true(json_is_null(json_object_get(v, "inf")));
	x = json_object_get(v, "obj");
	assert_true(json_is_object(x));
	json_t *want = json_loads("{\"a\":[1,2]}", 0, NULL);
	assert_true(json_equal(x, want));
	json_decref(want);
	x = json_object_get(v, "arr");
	assert_true(json_is_array(x));
	assert_int_equal(json_array_size(x), 2);
	assert_string_equal(str_field(v, "phone"), "+55*********21");
	assert_true(json_is_null(json_object_get(v, "nul")));
	assert_true(json_is_null(json_object_get(v, "nophone")));
	assert_true(json_is_null(json_object_get(v, "nj")));
	json_decref(v);
}

static void test_no_fields(void **state)
{
	(void)state;
	eng_log(ENG_ERROR, "bare");
	json_t *v = take_line();
	assert_string_equal(str_field(v, "level"), "error");
	assert_string_equal(str_field(v, "event"), "bare");
	assert_int_equal(json_object_size(v), 5);
	json_decref(v);
}

static void test_placeholder_fields_skipped(void **state)
{
	(void)state;
	const struct eng_field f[] = {
		{.key = "a", .type = ENG_FT_INT, .i = 1},
		{.key = "none", .type = ENG_FT_NONE},
		{.key = NULL, .type = ENG_FT_STR, .s = "x"},
		{.key = "b", .type = ENG_FT_BOOL, .b = true},
	};
	eng_log_fields(ENG_INFO, "partial", f, ARRAY_LEN(f));
	json_t *v = take_line();
	assert_int_equal(json_object_size(v), 7);
	assert_null(json_object_get(v, "none"));
	assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
	assert_true(json_is_true(json_object_get(v, "b")));
	json_decref(v);
}

static void test_one_line_per_call(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++)
		eng_log(ENG_INFO, "step", ENG_I("i", i), ENG_S("msg", "a\nb"));
	size_t n;
	const char *s = take_output(&n);
	assert_int_equal(count_lines(s, n), 5);
	const char *p = s;
	for (int i = 0; i < 5; i++) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		json_t *v = parse_line(p, (size_t)(nl - p + 1));
		assert_int_equal(json_integer_value(json_object_get(v, "i")), i);
		assert_string_equal(str_field(v, "msg"), "a\nb");
		json_decref(v);
		p = nl + 1;
	}
}

static void test_level_filter(void **state)
{
	(void)state;
	eng_log_set_level(ENG_WARN);
	assert_int_equal(eng_log_get_level(), ENG_WARN);
	assert_false(eng_log_enabled(ENG_DEBUG));
	assert_false(eng_log_enabled(ENG_INFO));
	assert_true(eng_log_enabled(ENG_WARN));
	assert_true(eng_log_enabled(ENG_ERROR));
	eng_log(ENG_DEBUG, "dropped");
	eng_log(ENG_INFO, "dropped", ENG_S("x", "y"));
	assert_nothing_logged();
	eng_log(ENG_WARN, "kept");
	json_t *v = take_line();
	assert_string_equal(str_field(v, "event"), "kept");
	json_decref(v);
	eng_log(ENG_ERROR, "kept");
	v = take_line();
	assert_string_equal(str_field(v, "level"), "error");
	json_decref(v);

	eng_log_set_level(ENG_DEBUG);
	eng_log(ENG_DEBUG, "now_kept");
	v = take_line();
	assert_string_equal(str_field(v, "level"), "debug");
	json_decref(v);

	eng_log_set_level(ENG_ERROR);
	eng_log(ENG_WARN, "dropped");
	assert_nothing_logged();
	eng_log_set_level(ENG_INFO);
}

static void test_parse_level(void **state)
{
	(void)state;
	assert_int_equal(eng_log_parse_level("debug"), ENG_DEBUG);
	assert_int_equal(eng_log_parse_level("info"), ENG_INFO);
	assert_int_equal(eng_log_parse_level("warn"), ENG_WARN);
	assert_int_equal(eng_log_parse_level("error"), ENG_ERROR);
	assert_int_equal(eng_log_parse_level("warning"), -1);
	assert_int_equal(eng_log_parse_level("INFO"), -1);
	assert_int_equal(eng_log_parse_level(""), -1);
	assert_int_equal(eng_log_parse_level("info "), -1);
	assert_string_equal(eng_log_level_name(ENG_DEBUG), "debug");
	assert_string_equal(eng_log_level_name(ENG_WARN), "warn");
	/* names and parsing agree */
	for (int l = ENG_DEBUG; l <= ENG_ERROR; l++)
		assert_int_equal(
			eng_log_parse_level(eng_log_level_name((enum eng_level)l)),
			l);
}

static void test_string_phone_masked(void **state)
{
	(void)state;
	eng_log(ENG_WARN, "user_failed",
		ENG_S("error", "duplicate key value violates unique constraint: "
			       "Key (phone_e164)=(+5511987654321) already exists"),
		ENG_S("bare", "5511987654321"),
		ENG_S("user_id", "1b4e28ba-2fa1-11d2-883f-012345678901"));
	size_t n;
	const char *s = take_output(&n);
	assert_null(strstr(s, "987654"));
	json_t *v = parse_line(s, n);
	assert_string_equal(str_field(v, "error"),
			    "duplicate key value violates unique constraint: "
			    "Key (phone_e164)=(+55*********21) already exists");
	assert_string_equal(str_field(v, "bare"), "55*********21");
	assert_string_equal(str_field(v, "user_id"),
			    "1b4e28ba-2fa1-11d2-883f-012345678901");
	json_decref(v);
}

static void test_phone_field_garbage(void **state)
{
	(void)state;
	eng_log(ENG_INFO, "x", ENG_PHONE("phone", "not a \"phone\" 12345678"));
	size_t n;
	const char *s = take_output(&n);
	assert_null(strstr(s, "12345678"));
	json_t *v = parse_line(s, n);
	assert_true(json_is_string(json_object_get(v, "phone")));
	json_decref(v);
}

static void test_invalid_utf8_and_controls(void **state)
{
	(void)state;
	eng_log(ENG_INFO, "weird",
		ENG_S("v", "a\xff\x01\"\\\n\r\tb\xc0\xaf\x7f\xed\xa0\x80"
			   "ação\xf0\x9f\x98\x80"));
	json_t *v = take_line();
	assert_string_equal(str_field(v, "v"),
			    "a\xef\xbf\xbd\x01\"\\\n\r\tb\xef\xbf\xbd\xef\xbf\xbd\x7f"
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			    "ação\xf0\x9f\x98\x80");
	json_decref(v);
}

static void test_escaped_identity(void **state)
{
	(void)state;
	/* program, run_id, event and keys are text too */
	char prog[] = "pro\"g\nram";
	eng_log_init(prog, "run\x01id", fileno(g_file));
	prog[0] = 'X'; /* copied, not borrowed */
	eng_log(ENG_INFO, "ev\"ent\\", ENG_I("k\"e\ny", 1));
	json_t *v = take_line();
	assert_string_equal(str_field(v, "program"), "pro\"g\nram");
	assert_string_equal(str_field(v, "run_id"), "run\x01id");
	assert_string_equal(str_field(v, "event"), "ev\"ent\\");
	assert_int_equal(json_integer_value(json_object_get(v, "k\"e\ny")), 1);
	json_decref(v);
	eng_log_init(PROGRAM, RUN_ID, fileno(g_file));
}

static void fill(char *p, size_t n, char c)
{
	memset(p, c, n);
	p[n] = '\0';
}

static void test_long_value(void **state)
{
	(void)state;
	size_t big = 100 * 1024;
	char *s = malloc(big + 1);
	fill(s, big, 'x');
	eng_log(ENG_INFO, "long", ENG_S("v", s), ENG_I("after", 7));
	free(s);
	size_t n;
	const char *out = take_output(&n);
	json_t *v = parse_line(out, n);
	const char *val = str_field(v, "v");
	size_t len = strlen(val);
	assert_true(len > 100 && len < big);
	assert_string_equal(val + len - 3, "...");
	assert_int_equal(strspn(val, "x"), len - 3);
	/* the fields after the long one are still there */
	assert_int_equal(json_integer_value(json_object_get(v, "after")), 7);
	json_decref(v);
}

static void test_long_value_controls_and_utf8(void **state)
{
	(void)state;
	size_t big = 100 * 1024;
	char *s = malloc(big + 1);
	/* control bytes expand six times when escaped; multibyte characters
	 * must not be split by the cut */
	for (size_t i = 0; i < big; i++)
		s[i] = "\x01\xc3\xa7\xff"[i % 4];
	s[big] = '\0';
	eng_log(ENG_INFO, "long", ENG_S("v", s));
	free(s);
	json_t *v = take_line();
	assert_true(json_is_string(json_object_get(v, "v")));
	json_decref(v);
}

static void test_many_long_values(void **state)
{
	(void)state;
	/* more than a line may hold: still one line of valid JSON, marked */
	size_t big = 100 * 1024;
	char *s = malloc(big + 1);
	fill(s, big, '\x02');
	eng_log(ENG_ERROR, "huge", ENG_S("a", s), ENG_S("b", s), ENG_S("c", s),
		ENG_S("d", s), ENG_S("e", s), ENG_S("f", s), ENG_S("g", s),
		ENG_S("h", s), ENG_S("i", s), ENG_S("j", s), ENG_S("k", s),
		ENG_S("l", s));
	free(s);
	json_t *v = take_line();
	assert_string_equal(str_field(v, "event"), "huge");
	assert_string_equal(str_field(v, "level"), "error");
	assert_true(matches(TS_RE, str_field(v, "ts")));
	assert_string_equal(str_field(v, "program"), PROGRAM);
	/* 12 values of 1500 bytes escaped as \u0002 cannot fit in 64 KiB */
	assert_true(json_is_true(json_object_get(v, "truncated")));
	assert_null(json_object_get(v, "a"));
	json_decref(v);
}

/* Log one ENG_J field whose raw text is vlen bytes long. */
static void log_json_of_len(size_t vlen)
{
	char *j = malloc(vlen + 1);
	assert_true(vlen >= 2);
	fill(j, vlen, 'a');
	j[0] = '"';
	j[vlen - 1] = '"';
	eng_log(ENG_INFO, "edge", ENG_J("k", j));
	free(j);
}

static void test_line_at_size_limit(void **state)
{
	(void)state;
	/* The line is bounded (64 KiB). Whatever the fields, the line that
	 * comes out must end in "}\n", right up to and past the bound. */
	const size_t limit = 64 * 1024;
	log_json_of_len(2);
	size_t n0;
	take_output(&n0);
	size_t prefix = n0 - 2 - 2; /* everything before the value */
	char bad[256] = "";
	for (size_t total = limit - 4; total <= limit + 2; total++) {
		log_json_of_len(total - prefix);
		size_t n;
		const char *s = take_output(&n);
		if (n < 2 || s[n - 1] != '\n' || s[n - 2] != '}') {
			/* note it and carry on: report every size that fails */
			size_t k = strlen(bad);
			snprintf(bad + k, sizeof(bad) - k, " %zu (output %zu bytes)",
				 total, n);
			continue;
		}
		json_t *v = parse_line(s, n);
		json_t *k = json_object_get(v, "k");
		assert_true(json_is_true(json_object_get(v, "truncated")) ||
			    (json_is_string(k) &&
			     json_string_length(k) == total - prefix - 2));
		json_decref(v);
	}
	if (bad[0])
		fail_msg("no closing \"}\\n\" when the line before it was:%s",
			 bad);
}

/* ---- text lines, for a person at a terminal ------------------------------- */

static void test_text_line(void **state)
{
	(void)state;
	eng_log_set_format(ENG_LOG_TEXT, false);
	eng_log(ENG_WARN, "message_not_sent", ENG_S("error", "rate limit hit"),
		ENG_I("message_id", 42), ENG_S("code", "130429"),
		ENG_S("hint", "try later"), ENG_B("retry", true), ENG_S("empty", ""));
	size_t n;
	const char *out = take_output(&n);
	eng_log_set_format(ENG_LOG_JSON, false);
	assert_int_equal(count_lines(out, n), 1);
	/* YYYY-MM-DD HH:MM:SS, local */
	assert_true(n > 20 && out[4] == '-' && out[10] == ' ' && out[13] == ':');
	assert_null(strchr(out, '{'));
	assert_non_null(strstr(out, " WARN  message_not_sent: rate limit hit message_id=42 "
				    "code=130429 hint=\"try later\" retry=true empty=\"\"\n"));
	assert_null(strstr(out, "\033[")); /* no colour asked */
}

static void test_text_colour(void **state)
{
	(void)state;
	eng_log_set_format(ENG_LOG_TEXT, true);
	eng_log(ENG_ERROR, "run_failed", ENG_S("error", "boom"));
	size_t n;
	const char *out = take_output(&n);
	eng_log_set_format(ENG_LOG_JSON, false);
	assert_non_null(strstr(out, "\033[1;31mERROR\033[0m run_failed: boom\n"));
}

/* No value can start a line of its own: newlines, carriage returns and
 * other control bytes are escaped, in the message and in fields; quotes
 * inside a quoted value are escaped too. */
static void test_text_cannot_forge_a_line(void **state)
{
	(void)state;
	eng_log_set_format(ENG_LOG_TEXT, false);
	eng_log(ENG_INFO, "line_failed",
		ENG_S("error", "bad\n2026-01-01 00:00:00 ERROR forged: yes\r\x1b[2J"),
		ENG_S("field", "a\nb \"c\" d\\e\x01"), ENG_S("key\nX", "v"));
	size_t n;
	const char *out = take_output(&n);
	eng_log_set_format(ENG_LOG_JSON, false);
	assert_int_equal(count_lines(out, n), 1);
	assert_non_null(strstr(out, "line_failed: bad\\n2026-01-01 00:00:00 ERROR forged: "
				    "yes\\r\\x1b[2J "));
	assert_non_null(strstr(out, " field=\"a\\nb \\\"c\\\" d\\\\e\\x01\""));
	assert_non_null(strstr(out, " \"key\\nX\"=v\n"));
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
}

static void test_text_masks_phones(void **state)
{
	(void)state;
	eng_log_set_format(ENG_LOG_TEXT, false);
	eng_log(ENG_INFO, "message_sent", ENG_PHONE("to", "+5511987654321"),
		ENG_S("error", "no user with phone +5511987654321"));
	size_t n;
	const char *out = take_output(&n);
	eng_log_set_format(ENG_LOG_JSON, false);
	assert_null(strstr(out, "987654"));
	assert_non_null(strstr(out, "message_sent: no user with phone +55*********21 "
				    "to=+55*********21\n"));
}

static void test_choose_format(void **state)
{
	(void)state;
	bool colour = true;
	int fd = fileno(g_file); /* a file, not a terminal */
	assert_int_equal(eng_log_choose_format("auto", fd, &colour), ENG_LOG_JSON);
	assert_false(colour);
	assert_int_equal(eng_log_choose_format(NULL, fd, &colour), ENG_LOG_JSON);
	assert_int_equal(eng_log_choose_format("text", fd, &colour), ENG_LOG_TEXT);
	assert_false(colour); /* forced text, but no terminal: no colour */
	assert_int_equal(eng_log_choose_format("json", fd, &colour), ENG_LOG_JSON);
	assert_int_equal(eng_log_choose_format("xml", fd, &colour), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_common_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_is_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_field_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholder_fields_skipped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_line_per_call, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_phone_masked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_phone_field_garbage, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_and_controls,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaped_identity, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_value_controls_and_utf8,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_long_values, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_colour, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_cannot_forge_a_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_masks_phones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_choose_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_at_size_limit, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
