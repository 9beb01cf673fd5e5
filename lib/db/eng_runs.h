/*
 * Job runs and their lease: the one home of engagement.job_runs and
 * engagement.job_locks (what every program writes about its runs, and what
 * engagement-status reads), and of the rule that says a run died.
 *
 * A run records itself in job_runs (started, running, its heartbeat, how it
 * ended). The single-run guard of a job is a lease row in job_locks.
 *
 * Not an advisory lock: those are session state, which PgBouncer's
 * transaction pooling does not keep. The lease is taken with one
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at < now, renewed by the
 * holder while it works, and deleted when it ends. A holder that crashes
 * stops renewing, and the lease lapses after ttl seconds; sooner when the
 * server process it last renewed from is gone (migration 0013: the server
 * notices a dead client's connection at once; through PgBouncer that
 * process is a pooled one, which lives on, and the ttl applies). Taking or
 * renewing the lease also touches the run's job_runs heartbeat.
 */
#ifndef ENG_RUNS_H
#define ENG_RUNS_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"

#define ENG_LEASE_TTL_S 60
/* A run still "running" whose heartbeat (job_runs.heartbeat_at, touched by
 * every lease or claim renewal) is older than this has died. */
#define ENG_RUN_DEAD_AFTER_S (2 * ENG_LEASE_TTL_S)

/* The rule, as SQL over a job_runs row r: it says "running" but its
 * heartbeat (or its start, before the first) is at least secs old. secs is
 * a placeholder of the statement ("$2"); engagement-status reports such a
 * run as died, and the program's next run marks it so. */
#define ENG_RUN_DIED_SQL(r, secs)                                              \
	"(" r ".status = 'running' AND coalesce(" r ".heartbeat_at, " r          \
	".started_at) <= clock_timestamp() - make_interval(secs => " secs "::int))"

/* A run starts: its row, running, heartbeat now. */
enum eng_status eng_runs_start(struct eng_db *db, const char *run_id,
			       const char *program, struct eng_err *err);
/* ... and ends: status (ok, partial, failed, ...), exit code and summary. */
enum eng_status eng_runs_end(struct eng_db *db, const char *run_id,
			     const char *status, int exit_code,
			     const char *summary, struct eng_err *err);
/* Mark died the program's other runs still "running": those whose
 * heartbeat stopped ENG_RUN_DEAD_AFTER_S ago, or all of them when the
 * caller holds the job's lease (none other can be alive). *n: how many. */
enum eng_status eng_runs_mark_dead(struct eng_db *db, const char *program,
				   const char *run_id, bool all_others,
				   long long *n, struct eng_err *err);

/* *acquired false (and ENG_OK) when another live run holds it; holder then
 * describes that run ("run <uuid> on <host> pid <n>, lease until <ts>"). */
enum eng_status eng_lease_take(struct eng_db *db, const char *job,
				  const char *run_id, int ttl_s,
				  bool *acquired, char *holder, size_t holdersz,
				  struct eng_err *err);
/* ENG_ETEMP with *lost true when the lease was lost (it lapsed and another
 * run took it); any other error (a dropped connection) leaves *lost false:
 * the lease may still be ours, and a renewal after reconnecting keeps it. */
enum eng_status eng_lease_renew(struct eng_db *db, const char *job,
				const char *run_id, int ttl_s, bool *lost,
				struct eng_err *err);
void eng_lease_release(struct eng_db *db, const char *job,
		       const char *run_id);

#endif
