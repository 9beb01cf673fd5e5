#include "eng_runs.h"

/* This connection's server process and when it started. */
#define BACKEND                                                                \
	"pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity"          \
	"  WHERE pid = pg_backend_pid())"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum eng_status eng_lease_take(struct eng_db *db, const char *job,
				  const char *run_id, int ttl_s,
				  bool *acquired, char *holder, size_t holdersz,
				  struct eng_err *err)
{
	char host[256] = "unknown";
	char who[320];
	char ttl[16];
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(who, sizeof(who), "%s pid %ld", host, (long)getpid());
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);

	const char *p[] = {job, run_id, who, ttl};
	PGresult *r = eng_db_query(
		db,
		"INSERT INTO engagement.job_locks AS l "
		"  (job, run_id, holder, acquired_at, expires_at, holder_pid, holder_started) "
		"VALUES ($1, $2, $3, clock_timestamp(), "
		"        clock_timestamp() + make_interval(secs => $4::int), " BACKEND ") "
		"ON CONFLICT (job) DO UPDATE SET run_id = EXCLUDED.run_id, "
		"  holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at, "
		"  expires_at = EXCLUDED.expires_at, holder_pid = EXCLUDED.holder_pid, "
		"  holder_started = EXCLUDED.holder_started "
		"WHERE l.expires_at < clock_timestamp() OR l.holder_pid IS NOT NULL AND NOT EXISTS ("
		/* the holder's server process, if this role may see when it
		 * started (its own sessions), else by pid alone */
		"  SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.holder_pid"
		"    AND (a.backend_start IS NULL OR l.holder_started IS NULL"
		"         OR a.backend_start = l.holder_started)) "
		"RETURNING run_id",
		4, p, err);
	if (!r)
		return err->status;
	*acquired = PQntuples(r) == 1;
	PQclear(r);
	if (*acquired)
		return ENG_OK;

	const char *q[] = {job};
	r = eng_db_query(db,
			 "SELECT run_id, holder, to_char(expires_at AT TIME ZONE "
			 "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
			 "FROM engagement.job_locks WHERE job = $1",
			 1, q, err);
	if (!r)
		return err->status;
	if (PQntuples(r) == 1)
		snprintf(holder, holdersz, "run %s on %s, lease until %s",
			 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
			 PQgetvalue(r, 0, 2));
	else
		snprintf(holder, holdersz, "another run (just finished)");
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_lease_renew(struct eng_db *db, const char *job,
				const char *run_id, int ttl_s, bool *lost,
				struct eng_err *err)
{
	char ttl[16];
	long long n = 0;
	*lost = false;
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	const char *p[] = {job, run_id, ttl};
	if (eng_db_exec_count(db,
			      "WITH l AS (UPDATE engagement.job_locks SET expires_at = "
			      "  clock_timestamp() + make_interval(secs => $3::int), "
			      "  (holder_pid, holder_started) = (SELECT " BACKEND ") "
			      "  WHERE job = $1 AND run_id = $2 RETURNING run_id), "
			      "hb AS (UPDATE engagement.job_runs SET heartbeat_at = clock_timestamp() "
			      "  WHERE run_id = (SELECT run_id FROM l)) "
			      "SELECT 1 FROM l",
			      3, p, &n, err))
		return err->status;
	*lost = n != 1;
	if (*lost)
		return eng_err_set(err, ENG_ETEMP,
				   "lost the %s run lease (this run stalled past "
				   "its lease and another run took over)",
				   job);
	return ENG_OK;
}

void eng_lease_release(struct eng_db *db, const char *job, const char *run_id)
{
	struct eng_err err = ENG_ERR_INIT;
	const char *p[] = {job, run_id};
	eng_db_exec(db,
		    "DELETE FROM engagement.job_locks WHERE job = $1 AND run_id = $2",
		    2, p, &err);
}

enum eng_status eng_runs_start(struct eng_db *db, const char *run_id,
			       const char *program, struct eng_err *err)
{
	const char *p[] = {run_id, program};
	return eng_db_exec(db,
			   "INSERT INTO engagement.job_runs "
			   "(run_id, program, started_at, status, heartbeat_at) "
			   "VALUES ($1, $2, clock_timestamp(), 'running', clock_timestamp())",
			   2, p, err);
}

enum eng_status eng_runs_end(struct eng_db *db, const char *run_id,
			     const char *status, int exit_code,
			     const char *summary, struct eng_err *err)
{
	char code[16];
	snprintf(code, sizeof(code), "%d", exit_code);
	const char *p[] = {run_id, status, code, summary};
	return eng_db_exec(db,
			   "UPDATE engagement.job_runs SET "
			   "finished_at = clock_timestamp(), status = $2, "
			   "exit_code = $3::int, summary = $4::jsonb "
			   "WHERE run_id = $1",
			   4, p, err);
}

enum eng_status eng_runs_mark_dead(struct eng_db *db, const char *program,
				   const char *run_id, bool all_others,
				   long long *n, struct eng_err *err)
{
	char secs[16];
	snprintf(secs, sizeof(secs), "%d", all_others ? 0 : ENG_RUN_DEAD_AFTER_S);
	const char *p[] = {program, run_id, secs};
	return eng_db_exec_count(db,
				 "UPDATE engagement.job_runs AS r"
				 " SET status = 'died', finished_at = coalesce(heartbeat_at, started_at)"
				 " WHERE program = $1 AND run_id <> $2::uuid AND "
				 ENG_RUN_DIED_SQL("r", "$3"),
				 3, p, n, err);
}
