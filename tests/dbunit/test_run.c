/* The library against a real PostgreSQL: schema check, the single-run
 * lease (directly and through PgBouncer's transaction pooling), job_runs
 * recording, connection failure classes. Run by run.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_fe.h"
#include "eng_version.h"
#include "eng_runs.h"

static char conninfo[512];

static const char *db_conn(const char *envname)
{
	snprintf(conninfo, sizeof(conninfo), "dbname=%s", getenv(envname));
	return conninfo;
}

static void connect_or_fail(struct eng_db *db, const char *ci)
{
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = eng_db_connect(db, ci, "test_run", &err);
	if (st)
		fail_msg("connect %s: %s", ci, err.msg);
}

static void sql(struct eng_db *db, const char *q)
{
	struct eng_err err = ENG_ERR_INIT;
	if (eng_db_exec(db, q, 0, NULL, &err))
		fail_msg("%s: %s", q, err.msg);
}

static long long count(struct eng_db *db, const char *q, const char *arg)
{
	struct eng_err err = ENG_ERR_INIT;
	const char *p[] = {arg};
	PGresult *r = eng_db_query(db, q, arg ? 1 : 0, arg ? p : NULL, &err);
	if (!r)
		fail_msg("%s: %s", q, err.msg);
	long long n = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static void test_schema_not_installed(void **state)
{
	(void)state;
	struct eng_db db = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	connect_or_fail(&db, db_conn("ENG_TEST_DB_EMPTY"));
	assert_int_equal(eng_db_check_schema(&db, ENG_SCHEMA_VERSION, &err),
			 ENG_ECONFIG);
	assert_int_equal(eng_exit_code(err.status), 78);
	assert_non_null(strstr(err.msg, "not installed"));
	assert_non_null(strstr(err.msg, "migrate up"));
	eng_db_close(&db);
}

static void test_schema_too_old(void **state)
{
	(void)state;
	struct eng_db db = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	char want[128];
	connect_or_fail(&db, db_conn("ENG_TEST_DB_V2"));
	assert_int_equal(eng_db_check_schema(&db, ENG_SCHEMA_VERSION, &err),
			 ENG_ECONFIG);
	snprintf(want, sizeof(want),
		 "database schema is at 2, this program needs %d: run \"migrate up\"",
		 ENG_SCHEMA_VERSION);
	assert_string_equal(err.msg, want);
	eng_db_close(&db);
}

static void test_schema_current_or_newer(void **state)
{
	(void)state;
	struct eng_db db = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	connect_or_fail(&db, db_conn("ENG_TEST_DB"));
	assert_int_equal(eng_db_check_schema(&db, ENG_SCHEMA_VERSION, &err), ENG_OK);
	/* A newer schema (a later deploy's migrations) is fine. */
	sql(&db, "BEGIN");
	sql(&db, "INSERT INTO engagement.schema_migrations (version, name, checksum) "
		 "VALUES (9999, 'future', repeat('a', 64))");
	assert_int_equal(eng_db_check_schema(&db, ENG_SCHEMA_VERSION, &err), ENG_OK);
	sql(&db, "ROLLBACK");
	eng_db_close(&db);
}

static void guard_exclusive(const char *ci)
{
	struct eng_db a = ENG_DB_INIT, b = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	char holder[512];
	bool got, lost;
	char run_a[37], run_b[37];
	eng_uuid_v4(run_a);
	eng_uuid_v4(run_b);
	connect_or_fail(&a, ci);
	connect_or_fail(&b, ci);

	assert_int_equal(eng_lease_take(&a, "test-job", run_a, 60, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_true(got);
	assert_int_equal(eng_lease_take(&b, "test-job", run_b, 60, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_false(got);
	assert_non_null(strstr(holder, run_a));
	/* Another job is independent. */
	assert_int_equal(eng_lease_take(&b, "other-job", run_b, 60, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_true(got);
	eng_lease_release(&b, "other-job", run_b);
	/* Renewal by the holder works; release frees it for the next run. */
	assert_int_equal(eng_lease_renew(&a, "test-job", run_a, 60, &lost, &err), ENG_OK);
	assert_false(lost);
	eng_lease_release(&a, "test-job", run_a);
	assert_int_equal(eng_lease_take(&b, "test-job", run_b, 60, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_true(got);
	eng_lease_release(&b, "test-job", run_b);
	eng_db_close(&a);
	eng_db_close(&b);
}

static void test_guard_exclusive(void **state)
{
	(void)state;
	guard_exclusive(db_conn("ENG_TEST_DB"));
}

/* Through PgBouncer with one server connection per database, both clients
 * share one PostgreSQL session: a session advisory lock would let the
 * second "acquire" the first's lock. The lease row does not. */
static void test_guard_through_pgbouncer(void **state)
{
	(void)state;
	const char *port = getenv("ENG_PGBOUNCER_PORT");
	if (!port)
		skip();
	char ci[512];
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s dbname=%s", port,
		 getenv("ENG_TEST_DB"));
	guard_exclusive(ci);
}

static void test_guard_crashed_holder_lapses(void **state)
{
	(void)state;
	struct eng_db a = ENG_DB_INIT, b = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	char holder[512];
	bool got, lost;
	char run_a[37], run_b[37];
	eng_uuid_v4(run_a);
	eng_uuid_v4(run_b);
	connect_or_fail(&a, db_conn("ENG_TEST_DB"));
	connect_or_fail(&b, db_conn("ENG_TEST_DB"));
	assert_int_equal(eng_lease_take(&a, "crash-job", run_a, 1, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_true(got);
	/* "a" crashes: it never renews. After its TTL the next run proceeds. */
	usleep(1300 * 1000);
	assert_int_equal(eng_lease_take(&b, "crash-job", run_b, 60, &got, holder,
					   sizeof(holder), &err), ENG_OK);
	assert_true(got);
	/* If "a" wakes up, it learns it lost the lease. */
	assert_int_equal(eng_lease_renew(&a, "crash-job", run_a, 60, &lost, &err), ENG_ETEMP);
	assert_true(lost);
	assert_non_null(strstr(err.msg, "lost"));
	eng_lease_release(&a, "crash-job", run_a); /* must not free b's lease */
	/* A dropped connection is not a lost lease: renewal can be retried. */
	eng_db_close(&a);
	assert_int_equal(eng_lease_renew(&a, "crash-job", run_b, 60, &lost, &err), ENG_ETEMP);
	assert_false(lost);
	assert_int_equal(count(&b, "SELECT count(*) FROM engagement.job_locks "
				   "WHERE job = 'crash-job' AND run_id = $1::uuid", run_b), 1);
	eng_lease_release(&b, "crash-job", run_b);
	eng_db_close(&a);
	eng_db_close(&b);
}

static void test_run_records_job_and_skips_overlap(void **state)
{
	(void)state;
	struct eng_run a, b;
	struct eng_err err = ENG_ERR_INIT;
	struct eng_db check = ENG_DB_INIT;
	char ci[256];
	snprintf(ci, sizeof(ci), "%s", db_conn("ENG_TEST_DB"));
	connect_or_fail(&check, ci);

	eng_run_init(&a, "test-overlap");
	a.opt.db = ci;
	assert_int_equal(eng_run_start(&a, ENG_START_JOB, &err), ENG_OK);
	assert_true(a.now > 0);
	assert_int_equal(count(&check, "SELECT count(*) FROM engagement.job_runs "
				       "WHERE run_id = $1::uuid AND status = 'running'",
			       a.run_id), 1);

	eng_run_init(&b, "test-overlap");
	b.opt.db = ci;
	assert_int_equal(eng_run_start(&b, ENG_START_JOB, &err), ENG_ETEMP);
	assert_true(b.skipped);
	assert_non_null(strstr(err.msg, "already running"));
	assert_int_equal(eng_run_end(&b, err.status, &err), 75);
	assert_int_equal(count(&check, "SELECT count(*) FROM engagement.job_runs "
				       "WHERE run_id = $1::uuid AND status = 'skipped' "
				       "AND exit_code = 75 AND finished_at IS NOT NULL",
			       b.run_id), 1);

	struct eng_job job;
	eng_run_job(&a, &job);
	assert_non_null(job.keep); /* the lease is the job's to keep */
	eng_job_set_int(&job, "processed", 42);
	assert_int_equal(eng_run_finish(&a, ENG_EXIT_OK), 0);
	assert_int_equal(count(&check, "SELECT count(*) FROM engagement.job_runs "
				       "WHERE run_id = $1::uuid AND status = 'ok' AND exit_code = 0 "
				       "AND (summary->>'processed')::int = 42 "
				       "AND summary->>'program' = 'test-overlap'",
			       a.run_id), 1);
	assert_int_equal(count(&check, "SELECT count(*) FROM engagement.job_locks "
				       "WHERE job = $1", "test-overlap"), 0);
	eng_db_close(&check);
}

static void test_run_now_from_option_or_database(void **state)
{
	(void)state;
	struct eng_run r;
	struct eng_err err = ENG_ERR_INIT;
	char ci[256];
	snprintf(ci, sizeof(ci), "%s", db_conn("ENG_TEST_DB"));

	eng_run_init(&r, "test-now");
	r.opt.db = ci;
	assert_int_equal(eng_run_start(&r, ENG_START_TOOL, &err), ENG_OK);
	eng_time wall = eng_time_now();
	assert_true(r.now > wall - 60 * ENG_USEC_PER_SEC && r.now < wall + 60 * ENG_USEC_PER_SEC);
	eng_run_finish(&r, 0);

	eng_run_init(&r, "test-now");
	r.opt.db = ci;
	assert_int_equal(eng_time_parse("2026-12-31T06:00:00Z", &r.opt.now), 0);
	r.opt.have_now = true;
	assert_int_equal(eng_run_start(&r, ENG_START_TOOL, &err), ENG_OK);
	char ts[32];
	eng_time_format(r.now, ts);
	assert_string_equal(ts, "2026-12-31T06:00:00.000000Z");
	eng_run_finish(&r, 0);
}

static void test_errors_from_the_server(void **state)
{
	(void)state;
	struct eng_db db = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	char ci[256];
	snprintf(ci, sizeof(ci), "%s user=engagement_noperm", db_conn("ENG_TEST_DB"));
	connect_or_fail(&db, ci);
	assert_null(eng_db_query(&db, "SELECT count(*) FROM engagement.users", 0, NULL, &err));
	assert_int_equal(err.status, ENG_EPERM);
	assert_string_equal(err.sqlstate, "42501");
	eng_db_close(&db);

	connect_or_fail(&db, db_conn("ENG_TEST_DB"));
	const char *p[] = {"+5511987654321"};
	sql(&db, "BEGIN");
	assert_int_equal(eng_db_exec(&db, "INSERT INTO engagement.users (phone_e164) VALUES ($1)", 1, p, &err), ENG_OK);
	assert_int_equal(eng_db_exec(&db, "INSERT INTO engagement.users (phone_e164) VALUES ($1)", 1, p, &err), ENG_EDATA);
	assert_string_equal(err.sqlstate, "23505");
	sql(&db, "ROLLBACK");
	eng_db_close(&db);
}

static void test_connect_failures(void **state)
{
	(void)state;
	struct eng_db db = ENG_DB_INIT;
	struct eng_err err = ENG_ERR_INIT;
	char ci[256];
	assert_int_equal(eng_db_connect(&db, "host=127.0.0.1 port=1 connect_timeout=2",
					"t", &err), ENG_ETEMP);
	assert_int_equal(eng_db_connect(&db, "host='oops", "t", &err), ENG_ECONFIG);
	assert_int_equal(eng_db_connect(&db, "dbname=there_is_no_such_db", "t", &err), ENG_ECONFIG);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s dbname=postgres user=engagement_pw password=nope",
		 getenv("PGPORT"));
	assert_int_equal(eng_db_connect(&db, ci, "t", &err), ENG_EPERM);
	assert_null(strstr(err.msg, "nope"));
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s dbname=postgres user=engagement_pw password=",
		 getenv("PGPORT"));
	unsetenv("PGPASSWORD");
	assert_int_equal(eng_db_connect(&db, ci, "t", &err), ENG_EPERM);
	assert_null(db.conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_not_installed),
		cmocka_unit_test(test_schema_too_old),
		cmocka_unit_test(test_schema_current_or_newer),
		cmocka_unit_test(test_guard_exclusive),
		cmocka_unit_test(test_guard_through_pgbouncer),
		cmocka_unit_test(test_guard_crashed_holder_lapses),
		cmocka_unit_test(test_run_records_job_and_skips_overlap),
		cmocka_unit_test(test_run_now_from_option_or_database),
		cmocka_unit_test(test_errors_from_the_server),
		cmocka_unit_test(test_connect_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
