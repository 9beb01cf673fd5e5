/* No password fragment in a message about connecting (eng_db.h): the
 * words of a connection string that may be a password, and their
 * redaction from libpq's own messages, whatever form the string has. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "eng_db.h"

static void redacted(const char *conninfo, const char *msg, const char *want)
{
	char *w[ENG_DB_SECRETS];
	size_t n = eng_db_secret_words(conninfo, w, ENG_DB_SECRETS);
	char buf[400];
	snprintf(buf, sizeof(buf), "%s", msg);
	eng_db_redact(buf, sizeof(buf), w, n);
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	assert_string_equal(buf, want);
}

/* A '/' in a URI's password ends the user part: libpq reads the rest of
 * the password's start as the port and quotes it. */
static void test_uri_slash(void **state)
{
	(void)state;
	redacted("postgresql://app:Pa55/word@db:5432/eng",
		 "invalid integer value \"Pa55\" for connection option \"port\"",
		 "invalid integer value \"***\" for connection option \"port\"");
}

/* An '@' in it: libpq takes the tail for the host. */
static void test_uri_at(void **state)
{
	(void)state;
	redacted("postgresql://app:Pa55@word@127.0.0.1:1/eng",
		 "could not translate host name \"word@127.0.0.1\" to address",
		 "could not translate host name \"***@127.0.0.1\" to address");
}

/* A well-formed URI and a keyword/value string: the password itself. */
static void test_plain(void **state)
{
	(void)state;
	redacted("postgresql://app:s3cr3t@db/eng", "password s3cr3t refused",
		 "password *** refused");
	redacted("host=db password='hunter22' dbname=eng", "hunter22 and more",
		 "*** and more");
	/* nothing to redact without a password; the user name stays */
	redacted("postgresql://app@db/eng", "role \"app\" does not exist",
		 "role \"app\" does not exist");
	redacted("dbname=eng", "connection refused", "connection refused");
}

/* Words are at least 3 bytes (shorter ones would garble every message)
 * and the longest are cut first. */
static void test_words(void **state)
{
	(void)state;
	char *w[ENG_DB_SECRETS];
	size_t n = eng_db_secret_words("postgres://u:ab/cdef@h/d", w, ENG_DB_SECRETS);
	assert_int_equal(n, 2);
	assert_string_equal(w[0], "ab/cdef");
	assert_string_equal(w[1], "cdef");
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	assert_int_equal(eng_db_secret_words(NULL, w, ENG_DB_SECRETS), 0);
}

/* The lists of a multi-host connection string (eng_db_hosts.c): one item
 * serves every host; items are cut at commas. */
static void test_hosts(void **state)
{
	(void)state;
	assert_int_equal(eng_db_host_count("/a,/b", NULL), 2);
	assert_int_equal(eng_db_host_count("db1", "10.0.0.1,10.0.0.2,10.0.0.3"), 3);
	assert_int_equal(eng_db_host_count(NULL, ""), 0);
	assert_int_equal(eng_db_host_count("one", NULL), 1);
	char *s = eng_db_host_item("5432,5433", 1);
	assert_string_equal(s, "5433");
	free(s);
	s = eng_db_host_item("5432", 1); /* one port for every host */
	assert_string_equal(s, "5432");
	free(s);
	s = eng_db_host_item("/a,,/c", 1); /* an empty item: libpq's default */
	assert_string_equal(s, "");
	free(s);
	assert_null(eng_db_host_item("a,b", 2));
	assert_null(eng_db_host_item("", 0));
	assert_null(eng_db_host_item(NULL, 0));
	/* nothing to walk: no connection, or no refusal from a server */
	assert_null(eng_db_each_host(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_slash),
		cmocka_unit_test(test_uri_at),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_hosts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
