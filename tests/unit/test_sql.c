/* eng_sql: splitting migration files into statements. */
#include "unit.h"

#include <stdbool.h>
#include <string.h>

#include "eng_sql.h"

struct want {
	const char *text;
	int line;
	int text_line;
};

/* Split sql and compare every statement with want[0..n). */
static void check_split(const char *sql, const struct want *want, size_t n)
{
	struct eng_sql_list l = {(struct eng_sql_stmt *)1, 99, 99};
	int bad = -7;
	if (eng_sql_split(sql, &l, &bad) != 0)
		fail_msg("split failed at line %d for: %s", bad, sql);
	if (l.n != n) {
		for (size_t i = 0; i < l.n; i++)
			print_message("stmt %zu: [%s]\n", i, l.v[i].text);
		fail_msg("got %zu statements, want %zu, for: %s", l.n, n, sql);
	}
	for (size_t i = 0; i < n; i++) {
		if (want[i].text)
			assert_string_equal(l.v[i].text, want[i].text);
		if (l.v[i].line != want[i].line)
			fail_msg("stmt %zu [%s]: line %d, want %d", i, l.v[i].text,
				 l.v[i].line, want[i].line);
		if (want[i].text_line && l.v[i].text_line != want[i].text_line)
			fail_msg("stmt %zu [%s]: text_line %d, want %d", i,
				 l.v[i].text, l.v[i].text_line, want[i].text_line);
	}
	eng_sql_list_release(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
}

static void check_unterminated(const char *sql, int want_line)
{
	struct eng_sql_list l;
	int bad = -7;
	if (eng_sql_split(sql, &l, &bad) != -1)
		fail_msg("split accepted unterminated: %s", sql);
	if (bad != want_line)
		fail_msg("bad_line %d, want %d, for: %s", bad, want_line, sql);
	/* nothing left to free */
	assert_null(l.v);
	assert_int_equal(l.n, 0);
}

static void test_split_basic(void **state)
{
	(void)state;
	const struct want w[] = {
		{"SELECT 1", 1, 1},
		{"\nSELECT 2", 2, 1},
		{"\n\n  UPDATE t SET a = 1\n  WHERE b", 4, 2},
	};
	check_split("SELECT 1;\nSELECT 2;\n\n  UPDATE t SET a = 1\n  WHERE b;\n",
		    w, ARRAY_LEN(w));
}

static void test_split_no_final_semicolon(void **state)
{
	(void)state;
	const struct want w[] = {{"SELECT 1", 1, 1}, {"\nSELECT 2\n", 2, 1}};
	check_split("SELECT 1;\nSELECT 2\n", w, ARRAY_LEN(w));
}

static void test_split_empty_and_blank(void **state)
{
	(void)state;
	check_split("", NULL, 0);
	check_split("   \n\t\n", NULL, 0);
	check_split(";;\n;", NULL, 0);
	check_split("-- only a comment\n/* and\nanother */\n", NULL, 0);
}

static void test_split_tail_dropped(void **state)
{
	(void)state;
	const struct want w[] = {{"SELECT 1", 1, 1}};
	check_split("SELECT 1;\n-- the end\n/* really\n the end */\n  \n", w,
		    ARRAY_LEN(w));
	const struct want w2[] = {{"SELECT 1", 1, 1}, {"\nSELECT 2", 2, 1}};
	check_split("SELECT 1;\nSELECT 2;\n\n-- trailing note; with semicolon\n",
		    w2, ARRAY_LEN(w2));
}

static void test_split_leading_comment_lines(void **state)
{
	(void)state;
	/* line is the first token, text_line where the text starts */
	const struct want w[] = {
		{"-- header\n\nCREATE TABLE t (a int)", 3, 1},
		{"\n/* about\n   u */\nCREATE TABLE u (b int)", 6, 3},
	};
	check_split("-- header\n\nCREATE TABLE t (a int);\n/* about\n   u */\n"
		    "CREATE TABLE u (b int);\n",
		    w, ARRAY_LEN(w));
}

static void test_split_same_line(void **state)
{
	(void)state;
	const struct want w[] = {
		{"SELECT 1", 1, 1}, {" SELECT 2", 1, 1}, {"\n SELECT 3", 2, 1}};
	check_split("SELECT 1; SELECT 2;\n SELECT 3;", w, ARRAY_LEN(w));
}

static void test_split_string_semicolons(void **state)
{
	(void)state;
	const struct want w[] = {
		{"INSERT INTO t VALUES ('a;b')", 1, 1},
		{"SELECT 'it''s; fine'", 1, 1},
		{"\nSELECT 'multi\nline;'", 2, 1},
		{"\nSELECT 3", 4, 3},
	};
	check_split("INSERT INTO t VALUES ('a;b');SELECT 'it''s; fine';\n"
		    "SELECT 'multi\nline;';\nSELECT 3;",
		    w, ARRAY_LEN(w));
}

static void test_split_standard_string_backslash(void **state)
{
	(void)state;
	/* standard_conforming_strings: a backslash is just a character */
	const struct want w[] = {{"SELECT 'a\\'", 1, 1}, {"SELECT 2", 1, 1}};
	check_split("SELECT 'a\\';SELECT 2;", w, ARRAY_LEN(w));
	/* a word ending in e before a quote is not an E'' prefix */
	const struct want w2[] = {{"SELECT date'\\'", 1, 1}, {"SELECT 2", 1, 1}};
	check_split("SELECT date'\\';SELECT 2;", w2, ARRAY_LEN(w2));
}

static void test_split_escape_strings(void **state)
{
	(void)state;
	const struct want w[] = {
		{"SELECT E'\\';'", 1, 1},
		{" SELECT e'x\\\\'", 1, 1},
		{" SELECT e'\\';'", 1, 1},
		{"\nSELECT E'a\\\nb;'", 2, 1},
		{"\nSELECT 4", 4, 3},
	};
	/* E'\';' and e'\';' hold a quote and a semicolon; e'x\\' ends after
	 * the escaped backslash, so the ';' that follows ends the statement. */
	check_split("SELECT E'\\';'; SELECT e'x\\\\'; SELECT e'\\';';\n"
		    "SELECT E'a\\\nb;';\nSELECT 4;",
		    w, ARRAY_LEN(w));
}

static void test_split_quoted_identifiers(void **state)
{
	(void)state;
	const struct want w[] = {
		{"CREATE TABLE \"a;b\" (x int)", 1, 1},
		{"\nSELECT \"say \"\";\"\" ok\" FROM \"a;b\"", 2, 1},
		{"\nSELECT 3", 3, 2},
	};
	check_split("CREATE TABLE \"a;b\" (x int);\n"
		    "SELECT \"say \"\";\"\" ok\" FROM \"a;b\";\nSELECT 3;",
		    w, ARRAY_LEN(w));
}

static void test_split_line_comments(void **state)
{
	(void)state;
	const struct want w[] = {
		{"SELECT 1 -- not here; nor here\n  + 1", 1, 1},
		{" -- don't stop\nSELECT 2", 5, 4},
		{"\nSELECT '--not a comment;'", 6, 5},
	};
	check_split("SELECT 1 -- not here; nor here\n  + 1;\n\n"
		    "; -- don't stop\nSELECT 2;\nSELECT '--not a comment;';",
		    w, ARRAY_LEN(w));
}

static void test_split_block_comments(void **state)
{
	(void)state;
	const struct want w[] = {
		{"SELECT /* a /* b; */ c; */ 1", 1, 1},
		{" /* it's; $$ */ SELECT 2", 1, 1},
		{"\nSELECT /*\n;\n*/ 3", 2, 1},
		{"\nSELECT 4", 5, 4},
	};
	check_split("SELECT /* a /* b; */ c; */ 1; /* it's; $$ */ SELECT 2;\n"
		    "SELECT /*\n;\n*/ 3;\nSELECT 4;",
		    w, ARRAY_LEN(w));
}

static void test_split_dollar_quotes(void **state)
{
	(void)state;
	const char *sql =
		"CREATE FUNCTION f() RETURNS int AS $$\n"
		"  SELECT 1; -- body\n"
		"$$ LANGUAGE sql;\n"
		"DO $body$\n"
		"BEGIN\n"
		"  PERFORM 1; RAISE NOTICE '$$ ; $x$';\n"
		"END\n"
		"$body$;\n"
		"SELECT 3;\n";
	const struct want w[] = {
		{"CREATE FUNCTION f() RETURNS int AS $$\n  SELECT 1; -- body\n"
		 "$$ LANGUAGE sql",
		 1, 1},
		{"\nDO $body$\nBEGIN\n  PERFORM 1; RAISE NOTICE '$$ ; $x$';\nEND\n"
		 "$body$",
		 4, 3},
		{"\nSELECT 3", 9, 8},
	};
	check_split(sql, w, ARRAY_LEN(w));
}

static void test_split_dollar_tags_differ(void **state)
{
	(void)state;
	/* $a$ does not end at $ab$, and $$ inside $a$ is text */
	const struct want w[] = {
		{"SELECT $a$ x $ab$; $$; $a$", 1, 1}, {" SELECT 2", 1, 1}};
	check_split("SELECT $a$ x $ab$; $$; $a$; SELECT 2;", w, ARRAY_LEN(w));
}

static void test_split_parameters_not_quotes(void **state)
{
	(void)state;
	const struct want w[] = {
		{"PREPARE p AS SELECT $1, $2", 1, 1},
		{"\nSELECT a$b FROM t", 2, 1},
		{"\nSELECT $1::text", 3, 2},
		{"\nSELECT $$x;$$", 4, 3},
		{"\nSELECT 1 AS a$b$c", 5, 4},
		{"\nSELECT 2", 6, 5},
	};
	/* $ inside an identifier (a$b$c) does not open a dollar quote */
	check_split("PREPARE p AS SELECT $1, $2;\nSELECT a$b FROM t;\n"
		    "SELECT $1::text;\nSELECT $$x;$$;\nSELECT 1 AS a$b$c;\n"
		    "SELECT 2;",
		    w, ARRAY_LEN(w));
}

static void test_split_crlf(void **state)
{
	(void)state;
	const struct want w[] = {{"SELECT 1", 1, 1}, {"\r\n\r\nSELECT 2", 3, 1}};
	check_split("SELECT 1;\r\n\r\nSELECT 2;\r\n", w, ARRAY_LEN(w));
}

static void test_split_unterminated(void **state)
{
	(void)state;
	check_unterminated("SELECT 1;\nSELECT 'abc;\nmore\n", 2);
	check_unterminated("SELECT E'abc\\';\n", 1);
	check_unterminated("SELECT 1;\n\nSELECT \"ident;\n", 3);
	check_unterminated("SELECT 1;\n\n/* open\n;\n", 3);
	check_unterminated("SELECT 1; /* a /* b */ still open\n", 1);
	check_unterminated("SELECT 1;\nDO $x$ BEGIN\n; END $y$;\n", 2);
	check_unterminated("\n\n\nCREATE FUNCTION f() AS $$ SELECT 1;", 4);
	check_unterminated("'", 1);
}

static void test_split_null_bad_line(void **state)
{
	(void)state;
	struct eng_sql_list l;
	assert_int_equal(eng_sql_split("SELECT 'x", &l, NULL), -1);
	assert_int_equal(l.n, 0);
}

static void test_line_of(void **state)
{
	(void)state;
	const char *t = "SELECT 1\nFROM x\nWHERE y";
	assert_int_equal(eng_sql_line_of(t, 1), 1);
	assert_int_equal(eng_sql_line_of(t, 8), 1);
	assert_int_equal(eng_sql_line_of(t, 9), 1); /* the newline itself */
	assert_int_equal(eng_sql_line_of(t, 10), 2);
	assert_int_equal(eng_sql_line_of(t, 17), 3);
	assert_int_equal(eng_sql_line_of(t, 23), 3);
}

static void test_line_of_multibyte(void **state)
{
	(void)state;
	/* positions count characters: "ação" is 4, not 6 */
	const char *t = "SELECT 'ação',\n  bad";
	assert_int_equal(eng_sql_line_of(t, 14), 1); /* ',' */
	assert_int_equal(eng_sql_line_of(t, 15), 1); /* '\n' */
	assert_int_equal(eng_sql_line_of(t, 16), 2); /* ' ' */
	assert_int_equal(eng_sql_line_of(t, 18), 2); /* 'b' */
	const char *e = "\xf0\x9f\x98\x80\n\xf0\x9f\x98\x80\nx";
	assert_int_equal(eng_sql_line_of(e, 2), 1);
	assert_int_equal(eng_sql_line_of(e, 3), 2);
	assert_int_equal(eng_sql_line_of(e, 5), 3);
}

static void test_no_transaction(void **state)
{
	(void)state;
	assert_true(eng_sql_no_transaction(
		"-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n"));
	assert_true(eng_sql_no_transaction("-- migrate:no-transaction"));
	assert_true(eng_sql_no_transaction("-- migrate:no-transaction   \nx"));
	assert_true(eng_sql_no_transaction("-- migrate:no-transaction\t \r\nx"));
	assert_true(eng_sql_no_transaction("-- migrate:no-transaction\r\n"));

	assert_false(eng_sql_no_transaction(""));
	assert_false(eng_sql_no_transaction("CREATE TABLE t (a int);\n"));
	assert_false(eng_sql_no_transaction(
		"\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n"));
	assert_false(eng_sql_no_transaction(
		"-- first\n-- migrate:no-transaction\n"));
	assert_false(eng_sql_no_transaction("-- migrate:no-transactions\n"));
	assert_false(eng_sql_no_transaction("-- migrate:no-transaction x\n"));
	assert_false(eng_sql_no_transaction(" -- migrate:no-transaction\n"));
	assert_false(eng_sql_no_transaction("-- migrate:no-trans\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_basic),
		cmocka_unit_test(test_split_no_final_semicolon),
		cmocka_unit_test(test_split_empty_and_blank),
		cmocka_unit_test(test_split_tail_dropped),
		cmocka_unit_test(test_split_leading_comment_lines),
		cmocka_unit_test(test_split_same_line),
		cmocka_unit_test(test_split_string_semicolons),
		cmocka_unit_test(test_split_standard_string_backslash),
		cmocka_unit_test(test_split_escape_strings),
		cmocka_unit_test(test_split_quoted_identifiers),
		cmocka_unit_test(test_split_line_comments),
		cmocka_unit_test(test_split_block_comments),
		cmocka_unit_test(test_split_dollar_quotes),
		cmocka_unit_test(test_split_dollar_tags_differ),
		cmocka_unit_test(test_split_parameters_not_quotes),
		cmocka_unit_test(test_split_crlf),
		cmocka_unit_test(test_split_unterminated),
		cmocka_unit_test(test_split_null_bad_line),
		cmocka_unit_test(test_line_of),
		cmocka_unit_test(test_line_of_multibyte),
		cmocka_unit_test(test_no_transaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
