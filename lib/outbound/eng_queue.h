/*
 * The message queue as queue-send works it: every statement it runs, with
 * its parameters and the reading of its result by column name. Nothing
 * here decides anything (eng_decide.h) or talks HTTP (eng_pool.h).
 *
 * Each statement function takes `res`: given, the statement runs and *res
 * is its result (the caller PQclear()s); NULL, it is only sent (eng_db_send)
 * and the caller collects the result with eng_db_ready, so that requests
 * keep moving while the database works.
 */
#ifndef ENG_QUEUE_H
#define ENG_QUEUE_H

#include <jansson.h>
#include <stdbool.h>

#include "eng_db.h"
#include "eng_decide.h"
#include "eng_err.h"
#include "eng_time.h"

/* Claims whose lease ran out (their sender died or stalled), other than
 * owner's own: back to the queue with an attempt charged, failed when the
 * attempts are used up; an audit row each. now: their next_attempt_at.
 * Result: one row, "recovered". */
enum eng_status eng_queue_recover(struct eng_db *db, eng_time now,
				  const char *owner, const char *run_id,
				  PGresult **res, struct eng_err *err);
long long eng_queue_recovered(const PGresult *r);

struct eng_claim_args {
	const char *owner;   /* locked_by: worker id and run */
	bool have_now;
	eng_time now;        /* with have_now; else the database's now() */
	int lease_s;
	int limit;
	int hourly_cap;      /* how many recent sends to read per user */
};

/* Claim up to limit due messages (oldest next_attempt_at first) with a
 * lease, and read everything their checks need. */
enum eng_status eng_queue_claim(struct eng_db *db, const struct eng_claim_args *a,
				PGresult **res, struct eng_err *err);

/* Reading the claim's rows by column name. */
struct eng_claim_reader {
	const PGresult *r;
	int col[20];
};
void eng_claim_reader_init(struct eng_claim_reader *rd, const PGresult *r);
void eng_claim_read(const struct eng_claim_reader *rd, int i,
		    struct eng_claim_row *row);

/* The pre-send fence (engagement.send_fence) for ids: one row per id with
 * its verdict. Run inside the transaction that stays open until the
 * requests are on the wire. now: decide expiry as of then (NULL: the
 * database's clock). */
enum eng_status eng_queue_fence(struct eng_db *db, const long long *ids,
				size_t n, const char *owner, const eng_time *now, long pair_ms,
				PGresult **res, struct eng_err *err);
/* Row i of the fence's result. */
void eng_queue_fence_row(const PGresult *r, int i, long long *id,
			 const char **verdict);

/* Move the lease of every claim of owner forward, and touch run_id's
 * job_runs heartbeat; the result lists the ids renewed (a claim missing
 * from it is not ours any more). */
enum eng_status eng_queue_renew(struct eng_db *db, const char *owner, const char *run_id,
				int lease_s, PGresult **res, struct eng_err *err);

/* Add the row of message id's outcome to rows (a JSON array). */
void eng_queue_row(json_t *rows, long long id, int attempts_before,
		   const struct eng_outcome *o);
/* Write back rows for owner, run run_id: each message (while owner still
 * holds its claim; the outcome of a request also when another worker
 * recovered it, and a send whoever holds it now), its audit row, and an
 * outbox event for sent and failed ones. The result lists the ids written
 * (or found already written). */
enum eng_status eng_queue_write_back(struct eng_db *db, const char *rows,
				     const char *owner, const char *run_id,
				     PGresult **res, struct eng_err *err);

/* The ids in column "id" of a result, ascending, into *ids (caller frees). */
size_t eng_queue_ids(const PGresult *r, long long **ids);

/* The shared token bucket for --rate: make sure the number's row exists;
 * then take up to want tokens at rate per second, burst at most. Result:
 * "granted" (whole tokens) and "available" (before taking). */
enum eng_status eng_queue_rate_init(struct eng_db *db, const char *phone_number_id,
				    struct eng_err *err);
enum eng_status eng_queue_rate_take(struct eng_db *db, const char *phone_number_id,
				    double rate, double burst, int want,
				    PGresult **res, struct eng_err *err);

/* The rate statement's result: whole tokens granted, tokens there were. */
void eng_queue_rate_read(const PGresult *r, int *granted, double *available);

/* Delete finished messages older than days, in bounded batches for at most
 * about two seconds; *n: how many. */
enum eng_status eng_queue_purge(struct eng_db *db, int days, long long *n,
				struct eng_err *err);

#endif
