/*
 * queue-send's back and feed connections (eng_send.c tells the whole): the
 * home of "outcomes are kept until they are written". When the database
 * goes away the run starts nothing new, keeps every outcome and reconnects
 * with backoff for as long as its leases last (snd_outage(),
 * snd_reconnect()); what it can no longer write is logged for
 * reconciliation (snd_give_up()). Also what the back connection does next
 * (renewals, often enough that a lease always reaches nearly a full
 * --lease-seconds ahead, and write-backs) and the feed connection (claims,
 * recovery of dead workers' claims).
 */
#include "eng_send_int.h"

#include <math.h>
#include <stdlib.h>

#include "eng_json.h"
#include "eng_log.h"

#define FLUSH_ROWS 200                  /* outcomes written back per statement */
#define FLUSH_US (50 * 1000)            /* ... or at least this often */

/* ---- outages ------------------------------------------------------------------ */

/* The database went away (or refused for now): start nothing new, keep
 * every outcome, and reconnect (snd_reconnect()). The fence's connection is
 * dropped (its transaction with it: requests of its group not yet on the
 * wire never go); a statement still running on the back connection is
 * collected as usual. */
void snd_outage(struct sender *s, const struct eng_err *cause)
{
	int64_t now = eng_mono_us();
	if (!s->db_down) {
		eng_log(ENG_WARN, "database_unreachable", ENG_S("error", cause->msg),
			ENG_S("hint", "outcomes are kept and written when it is back"));
		s->db_down = true;
		s->down_since = now;
		s->reconnect_attempt = 0;
		/* an error that keeps coming back on a live connection is
		 * retried with growing pauses too */
		double wait = s->trouble ? fmin(2.0, 0.1 * pow(2.0, s->trouble)) : 0;
		s->reconnect_at = now + (int64_t)(wait * 1e6);
		s->trouble++;
	}
	if (!s->back->busy) {
		if (s->bop == B_RENEW)
			s->renew_due = true;
		s->bop = B_IDLE; /* a write-back not known to be written is kept */
	}
	if (!s->feed.busy)
		s->cop = C_IDLE;
	snd_group_abandon(s);
	s->fop = F_IDLE;
	eng_db_close(&s->front);
}

static void latest_lease(struct sender *s, struct msg *m, void *arg)
{
	(void)s;
	int64_t *t = arg;
	if (m->lease_until > *t)
		*t = m->lease_until;
}

/* Log what can no longer be written: the outcomes of requests made (for
 * reconciliation by message id and wamid). */
void snd_give_up(struct sender *s, const struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		json_t *row = json_array_get(b->rows, i);
		eng_log(ENG_ERROR, "outcome_not_recorded", ENG_I("message_id", b->msgs[i]->id),
			ENG_S("status", json_string_value(json_object_get(row, "status"))),
			ENG_S("provider_message_id",
			      json_string_value(json_object_get(row, "wamid"))),
			ENG_S("reason", "database_unreachable"));
		s->k.unrecorded++;
	}
}

enum eng_status snd_reconnect(struct sender *s, struct eng_err *err)
{
	int64_t now = eng_mono_us();
	if (now < s->reconnect_at)
		return ENG_OK;
	/* Until a full lease after the last one taken: a write-back only
	 * lands while the claim is still ours (nobody recovered it), so
	 * trying longer can only save outcomes. */
	int64_t deadline = 0;
	snd_for_each_held(s, latest_lease, &deadline);
	if (deadline)
		deadline += (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC;
	struct eng_err e = ENG_ERR_INIT;
	enum eng_status st = eng_db_alive(s->back) ? ENG_OK : eng_db_reconnect(s->back, &e);
	if (st == ENG_OK && !eng_db_alive(&s->feed))
		st = eng_db_reconnect(&s->feed, &e);
	if (st == ENG_OK && !s->front.conn)
		st = eng_db_connect(&s->front, s->job->conninfo, s->job->program, &e);
	else if (st == ENG_OK && !eng_db_alive(&s->front))
		st = eng_db_reconnect(&s->front, &e);
	if (st == ENG_OK) {
		eng_log(ENG_INFO, "database_reachable",
			ENG_I("down_ms", (now - s->down_since) / 1000),
			ENG_I("attempts", s->reconnect_attempt + 1));
		s->db_down = false;
		s->k.reconnects++;
		s->renew_due = true; /* renew first: what is still ours? */
		s->must_renew = true;
		s->drained = false; /* what was claimed and lost may be queued again */
		return ENG_OK;
	}
	if (st != ENG_ETEMP || now >= deadline)
		return eng_err_set(err, st == ENG_ETEMP ? ENG_ETEMP : st,
				   "the database stayed unreachable past the claims' "
				   "leases (%zu outcomes not recorded, see the log): %s",
				   s->writing.n + s->filling.n, e.msg);
	s->reconnect_attempt++;
	double wait = fmin(2.0, 0.1 * pow(2.0, s->reconnect_attempt));
	s->reconnect_at = now + (int64_t)(wait * (0.5 + 0.5 * eng_rng01(&s->rng)) * 1e6);
	if (deadline && s->reconnect_at > deadline) /* the last try when the leases end */
		s->reconnect_at = deadline;
	eng_log(ENG_DEBUG, "reconnect_failed", ENG_I("attempt", s->reconnect_attempt),
		ENG_S("error", e.msg));
	return ENG_OK;
}

/* ---- the back connection ------------------------------------------------------ */

static enum eng_status start_write(struct sender *s, struct eng_err *err)
{
	if (s->writing.n == 0)
		snd_batch_swap(&s->filling, &s->writing);
	char *rows = eng_json_dump(s->writing.rows);
	/* (a 131050 among them records the person's opt-out in the same
	 * statement: engagement.record_send_outcomes) */
	enum eng_status st = eng_queue_write_back(s->back, rows, s->owner, s->job->run_id,
						  NULL, err);
	if (st == ENG_OK)
		s->bop = B_WRITE;
	free(rows);
	return st;
}

static bool ending(const struct sender *s)
{
	return s->stop || (s->drained && s->pending.n == 0 && s->pool.in_flight == 0 &&
			   s->fop == F_IDLE);
}

bool snd_may_claim(const struct sender *s)
{
	if (s->stop || s->drained ||
	    (s->o->max_messages && s->k.claimed >= s->o->max_messages))
		return false;
	/* the next claim goes out while what is left still covers its
	 * round trip: a claim of N takes the database about as long as
	 * sending N does, so waiting for the queue to fall under two rounds
	 * of requests left the requests idle until it came back */
	return s->pending.n < (size_t)s->o->concurrency * 2 + (size_t)snd_claim_size(s);
}

int snd_claim_size(const struct sender *s)
{
	long long want = s->o->batch;
	if (s->o->max_messages && want > s->o->max_messages - s->k.claimed)
		want = s->o->max_messages - s->k.claimed;
	if (s->o->rate > 0) { /* what can be sent well within a lease */
		double bound = s->o->rate * s->o->lease_seconds / 3.0;
		if (want > bound)
			want = bound < 1 ? 1 : (long long)bound;
	}
	return (int)want;
}

/* How often the claims' leases are renewed: every second (a third of a
 * short lease), so that the lease held always reaches nearly a full
 * --lease-seconds into the future, whenever the database goes away. */
static int64_t renew_every(const struct sender *s)
{
	int64_t third = (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC / 3;
	return third < ENG_USEC_PER_SEC ? third : ENG_USEC_PER_SEC;
}

/* Start the back connection's next statement, most urgent first. */
enum eng_status snd_drive_back(struct sender *s, struct eng_err *err)
{
	if (s->bop != B_IDLE)
		return ENG_OK;
	int64_t now = eng_mono_us();
	if (s->renew_due || now - s->renewed_at >= renew_every(s)) {
		s->renew_due = false;
		s->renewed_at = now;
		s->bop = B_RENEW;
		return eng_queue_renew(s->back, s->owner, s->job->run_id, s->o->lease_seconds, NULL,
				       err);
	}
	if (s->writing.n > 0 ||
	    s->filling.n >= FLUSH_ROWS ||
	    (s->filling.n > 0 && (now - s->filling.oldest >= FLUSH_US || ending(s))))
		return start_write(s, err);
	return ENG_OK;
}

/* Start the feed connection's next statement. */
enum eng_status snd_drive_feed(struct sender *s, struct eng_err *err)
{
	if (s->cop != C_IDLE)
		return ENG_OK;
	int64_t now = eng_mono_us();
	if (!s->stop &&
	    now - s->recovered_at >= (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC / 3) {
		s->recovered_at = now;
		eng_time at = s->job->fixed_now ? s->job->now : s->job->now;
		s->cop = C_RECOVER;
		return eng_queue_recover(&s->feed, at, s->owner, s->job->run_id, NULL, err);
	}
	if (snd_may_claim(s)) {
		s->claim_want = snd_claim_size(s);
		struct eng_claim_args a = snd_claim_args(s, s->claim_want);
		s->cop = C_CLAIM;
		s->claim_sent = now;
		return eng_queue_claim(&s->feed, &a, NULL, err);
	}
	return ENG_OK;
}

enum eng_status snd_back_done(struct sender *s, PGresult *r, struct eng_err *err)
{
	(void)err;
	enum back_op op = s->bop;
	s->bop = B_IDLE;
	if (op == B_WRITE) {
		s->trouble = 0;
		snd_take_write_back(s, r);
	} else if (op == B_RENEW) {
		snd_take_renewal(s, r);
		s->must_renew = false;
	}
	return ENG_OK;
}

enum eng_status snd_feed_done(struct sender *s, PGresult *r, struct eng_err *err)
{
	(void)err;
	enum feed_op op = s->cop;
	s->cop = C_IDLE;
	if (op == C_CLAIM) {
		s->trouble = 0;
		if (PQntuples(r) < s->claim_want)
			s->drained = true;
		snd_take_claim(s, r, s->claim_sent);
	} else if (op == C_RECOVER) {
		long long n = eng_queue_recovered(r);
		s->k.recovered += n;
		if (n)
			eng_log(ENG_WARN, "leases_recovered", ENG_I("messages", n));
	}
	return ENG_OK;
}
