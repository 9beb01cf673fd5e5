/*
 * Single-run guard for jobs: a lease row in engagement.job_locks.
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
#ifndef ENG_GUARD_H
#define ENG_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"

#define ENG_GUARD_TTL_S 60
/* A run still "running" whose heartbeat (job_runs.heartbeat_at, touched by
 * every lease or claim renewal) is older than this has died. */
#define ENG_RUN_DEAD_AFTER_S (2 * ENG_GUARD_TTL_S)

/* *acquired false (and ENG_OK) when another live run holds it; holder then
 * describes that run ("run <uuid> on <host> pid <n>, lease until <ts>"). */
enum eng_status eng_guard_acquire(struct eng_db *db, const char *job,
				  const char *run_id, int ttl_s,
				  bool *acquired, char *holder, size_t holdersz,
				  struct eng_err *err);
/* ENG_ETEMP with *lost true when the lease was lost (it lapsed and another
 * run took it); any other error (a dropped connection) leaves *lost false:
 * the lease may still be ours, and a renewal after reconnecting keeps it. */
enum eng_status eng_guard_renew(struct eng_db *db, const char *job,
				const char *run_id, int ttl_s, bool *lost,
				struct eng_err *err);
void eng_guard_release(struct eng_db *db, const char *job,
		       const char *run_id);

#endif
