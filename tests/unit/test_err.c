/* eng_err: statuses, exit codes, SQLSTATE classes, one-line messages; and
 * the classification of failed connection attempts (eng_db). */
#include "unit.h"

#include <string.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_exit.h"

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(eng_exit_code(ENG_OK), 0);
	assert_int_equal(eng_exit_code(ENG_EUSAGE), 64);
	assert_int_equal(eng_exit_code(ENG_EDATA), 65);
	assert_int_equal(eng_exit_code(ENG_ENOUSER), 67);
	assert_int_equal(eng_exit_code(ENG_EUNAVAIL), 69);
	assert_int_equal(eng_exit_code(ENG_EINTERNAL), 70);
	assert_int_equal(eng_exit_code(ENG_ETEMP), 75);
	assert_int_equal(eng_exit_code(ENG_EPERM), 77);
	assert_int_equal(eng_exit_code(ENG_ECONFIG), 78);
	/* an out-of-range value is a bug, not success */
	assert_int_equal(eng_exit_code((enum eng_status)99), 70);
}

static void test_status_names(void **state)
{
	(void)state;
	const enum eng_status all[] = {ENG_OK, ENG_EUSAGE, ENG_EDATA,
				       ENG_ENOUSER, ENG_EUNAVAIL, ENG_EINTERNAL,
				       ENG_ETEMP, ENG_EPERM, ENG_ECONFIG};
	/* every status has its own non-empty name */
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		const char *a = eng_status_name(all[i]);
		assert_non_null(a);
		assert_true(strlen(a) > 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(a, eng_status_name(all[j]));
	}
	assert_string_equal(eng_status_name(ENG_OK), "ok");
	assert_string_equal(eng_status_name(ENG_ETEMP), "temporary");
}

static void check_sqlstate(const char *code, enum eng_status want)
{
	enum eng_status got = eng_status_from_sqlstate(code);
	if (got != want)
		fail_msg("SQLSTATE %s: %s, want %s", code ? code : "(null)",
			 eng_status_name(got), eng_status_name(want));
}

static void test_sqlstate(void **state)
{
	(void)state;
	check_sqlstate("08006", ENG_ETEMP);   /* connection_failure */
	check_sqlstate("08001", ENG_ETEMP);
	check_sqlstate("28P01", ENG_EPERM);   /* invalid_password */
	check_sqlstate("28000", ENG_EPERM);
	check_sqlstate("42501", ENG_EPERM);   /* insufficient_privilege */
	check_sqlstate("3D000", ENG_ECONFIG); /* invalid_catalog_name */
	check_sqlstate("42P01", ENG_ECONFIG); /* undefined_table */
	check_sqlstate("42703", ENG_ECONFIG); /* undefined_column */
	check_sqlstate("55P03", ENG_ETEMP);   /* lock_not_available */
	check_sqlstate("40001", ENG_ETEMP);   /* serialization_failure */
	check_sqlstate("40P01", ENG_ETEMP);   /* deadlock_detected */
	check_sqlstate("57014", ENG_ETEMP);   /* query_canceled */
	check_sqlstate("57P01", ENG_ETEMP);   /* admin_shutdown */
	check_sqlstate("53300", ENG_ETEMP);   /* too_many_connections */
	check_sqlstate("25006", ENG_EPERM);   /* read_only_sql_transaction */
	check_sqlstate("23505", ENG_EDATA);   /* unique_violation */
	check_sqlstate("23503", ENG_EDATA);   /* foreign_key_violation */
	check_sqlstate("22P02", ENG_EDATA);   /* invalid_text_representation */
	check_sqlstate("22001", ENG_EDATA);   /* string_data_right_truncation */
	check_sqlstate("42601", ENG_EINTERNAL); /* syntax_error: our bug */
	check_sqlstate("XX000", ENG_EINTERNAL);
	check_sqlstate("P0001", ENG_EINTERNAL);
	check_sqlstate(NULL, ENG_EINTERNAL);
	check_sqlstate("", ENG_EINTERNAL);
	check_sqlstate("08", ENG_EINTERNAL);      /* not five characters */
	check_sqlstate("080060", ENG_EINTERNAL);
}

static void test_err_set(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	assert_int_equal(e.status, ENG_OK);
	assert_string_equal(e.msg, "");
	strcpy(e.sqlstate, "23505");
	assert_int_equal(eng_err_set(&e, ENG_EDATA, "bad row %d: %s", 7, "x"),
			 ENG_EDATA);
	assert_int_equal(e.status, ENG_EDATA);
	assert_string_equal(e.msg, "bad row 7: x");
	assert_string_equal(e.sqlstate, ""); /* not from PostgreSQL */
}

static void test_err_set_one_line(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	eng_err_set(&e, ENG_ETEMP, "could not connect\nis the server up?\n");
	assert_string_equal(e.msg, "could not connect is the server up?");
	assert_null(strchr(e.msg, '\n'));
	eng_err_set(&e, ENG_ETEMP, "a\r\nb\tc");
	assert_null(strchr(e.msg, '\n'));
	assert_null(strchr(e.msg, '\r'));
	assert_null(strchr(e.msg, '\t'));
	assert_string_equal(e.msg, "a  b c");
	eng_err_set(&e, ENG_EDATA, "the row is bad.");
	assert_string_equal(e.msg, "the row is bad");
	eng_err_set(&e, ENG_EDATA, "the row is bad.\n");
	assert_string_equal(e.msg, "the row is bad");
	eng_err_set(&e, ENG_EDATA, "version 1.2 is old");
	assert_string_equal(e.msg, "version 1.2 is old");
}

static void test_err_set_long(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	eng_err_set(&e, ENG_EDATA, "%s", big);
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
}

static void test_err_prefix(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	eng_err_set(&e, ENG_ECONFIG, "relation \"x\" does not exist");
	strcpy(e.sqlstate, "42P01");
	assert_int_equal(eng_err_prefix(&e, "migration %d", 3), ENG_ECONFIG);
	assert_string_equal(e.msg, "migration 3: relation \"x\" does not exist");
	assert_int_equal(e.status, ENG_ECONFIG);
	assert_string_equal(e.sqlstate, "42P01"); /* kept */

	eng_err_prefix(&e, "file %s", "002_x.up.sql");
	assert_string_equal(
		e.msg,
		"file 002_x.up.sql: migration 3: relation \"x\" does not exist");
}

static void test_err_prefix_empty_and_newlines(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	eng_err_prefix(&e, "context only");
	assert_string_equal(e.msg, "context only");
	eng_err_clear(&e);
	eng_err_set(&e, ENG_ETEMP, "server closed the connection");
	eng_err_prefix(&e, "while\nreading.");
	assert_null(strchr(e.msg, '\n'));
	assert_string_equal(e.msg, "while reading.: server closed the connection");
	eng_err_set(&e, ENG_ETEMP, "x");
	eng_err_prefix(&e, "step");
	assert_string_equal(e.msg, "step: x");
}

static void test_err_clear(void **state)
{
	(void)state;
	struct eng_err e = ENG_ERR_INIT;
	eng_err_set(&e, ENG_EPERM, "no");
	strcpy(e.sqlstate, "42501");
	eng_err_clear(&e);
	assert_int_equal(e.status, ENG_OK);
	assert_string_equal(e.sqlstate, "");
	assert_string_equal(e.msg, "");
}

static void check_connect(const char *msg, bool needs_password,
			  enum eng_status want)
{
	enum eng_status got = eng_db_classify_connect_error(msg, needs_password);
	if (got != want)
		fail_msg("\"%s\" (needs_password=%d): %s, want %s",
			 msg ? msg : "(null)", needs_password,
			 eng_status_name(got), eng_status_name(want));
}

static void test_classify_connect(void **state)
{
	(void)state;
	check_connect("connection to server at \"db\" (10.0.0.5), port 5432 "
		      "failed: FATAL:  password authentication failed for user "
		      "\"app\"\n",
		      false, ENG_EPERM);
	check_connect("connection to server on socket \"/run/postgresql/"
		      ".s.PGSQL.5432\" failed: FATAL:  no pg_hba.conf entry for "
		      "host \"[local]\", user \"app\", database \"x\", no "
		      "encryption\n",
		      false, ENG_EPERM);
	check_connect("connection to server at \"localhost\" (::1), port 5432 "
		      "failed: FATAL:  database \"x\" does not exist\n",
		      false, ENG_ECONFIG);
	check_connect("connection to server at \"localhost\" (127.0.0.1), port "
		      "5432 failed: Connection refused\n\tIs the server running "
		      "on that host and accepting TCP/IP connections?\n",
		      false, ENG_ETEMP);
	check_connect("connection to server at \"db\" (10.0.0.5), port 5432 "
		      "failed: timeout expired\n",
		      false, ENG_ETEMP);
	check_connect("FATAL:  the database system is starting up\n", false,
		      ENG_ETEMP);
	check_connect("FATAL:  role \"nobody\" does not exist\n", false,
		      ENG_EPERM);
	check_connect("invalid sslmode value: \"sometimes\"\n", false,
		      ENG_ECONFIG);
	check_connect("missing \"=\" after \"nonsense\" in connection info "
		      "string\n",
		      false, ENG_ECONFIG);
	/* libpq asked for a password nobody gave: credentials */
	check_connect("connection to server failed: fe_sendauth: no password "
		      "supplied\n",
		      true, ENG_EPERM);
	check_connect("anything", true, ENG_EPERM);
	check_connect(NULL, false, ENG_ETEMP);
	check_connect("", false, ENG_ETEMP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_sqlstate),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_set_one_line),
		cmocka_unit_test(test_err_set_long),
		cmocka_unit_test(test_err_prefix),
		cmocka_unit_test(test_err_prefix_empty_and_newlines),
		cmocka_unit_test(test_err_clear),
		cmocka_unit_test(test_classify_connect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
