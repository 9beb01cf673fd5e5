/*
 * queue-send's insides, shared by the sender's files and by nothing else
 * (only lib/outbound/eng_send*.c include it): the run's state, and the
 * functions that cross from one of its files to another (prefixed snd_;
 * what one file uses alone stays static there).
 *
 *   eng_send.c          the loop, setup, dry run, summary, the public API
 *   eng_send_claims.c   messages, the hourly cap, outcomes, claims and the
 *                       database's answers (leases, nothing sent twice)
 *   eng_send_fence.c    the front connection (rate tokens, the pre-send
 *                       fence and its gate) and the requests' outcomes
 *   eng_send_outage.c   outages, and driving the back and feed connections
 */
#ifndef ENG_SEND_INT_H
#define ENG_SEND_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_db.h"
#include "eng_decide.h"
#include "eng_pool.h"
#include "eng_queue.h"
#include "eng_send.h"
#include "eng_stats.h"
#include "eng_time.h"

/* ---- state ---------------------------------------------------------------- */

struct msg {
	long long id;
	char user_id[37];
	char *template_key;
	int attempts, max_attempts;
	char *to, *body;
	size_t body_len;
	eng_time claimed_at;   /* the decision instant of its claim */
	int64_t claimed_mono;  /* when its claim's answer was taken in */
	int64_t lease_until;   /* monotonic: its lease as last taken or renewed */
	int64_t gate_until;    /* monotonic: it may go on the wire before this */
	int busy;              /* fences that found its row held by a writer */
	bool reserved;         /* counted against the user's hourly cap */
	bool in_group;         /* in the open fence's group */
	bool on_wire;
	bool lost;             /* the claim is not ours any more */
};

/* Outcomes waiting to be written back, and their messages. */
struct batch {
	json_t *rows;
	struct msg **msgs;
	size_t n, cap;
	int64_t oldest;        /* monotonic time of its first outcome */
};

/* A FIFO of claimed messages not yet fenced. */
struct msgq {
	struct msg **v;
	size_t head, n, cap;
};

struct user_sends { /* this run's sends per user: the hourly cap, the pair rate */
	char user_id[37];
	struct eng_reservation *r;
	size_t n, cap;
	int64_t last_request;  /* monotonic: this run's latest request to them */
};

struct counts {
	long long claimed, sent, retried, deferred, failed, blocked, cancelled,
		handed_back, paused, requests, recovered, purged, lease_lost, would_send,
		reconnects, unrecorded;
};

enum back_op { B_IDLE, B_WRITE, B_RENEW };
enum feed_op { C_IDLE, C_CLAIM, C_RECOVER };
enum front_op { F_IDLE, F_TOKENS, F_BEGIN, F_FENCE, F_OPEN, F_COMMIT };

struct sender {
	const struct eng_job *job;
	const struct eng_send_opts *o;
	const struct eng_wa_config *wa;
	struct eng_db *back;        /* the run's connection: write-back, renewals */
	struct eng_db feed;         /* claims, recovery of dead workers' claims */
	struct eng_db front;        /* fences and rate tokens */
	enum back_op bop;
	enum feed_op cop;
	int64_t claim_sent;
	int claim_want;
	int64_t recovered_at;
	enum front_op fop;
	struct eng_pool pool;
	struct curl_slist *headers;
	struct msgq pending;
	struct msg **group;         /* the fence's messages (NULL once done) */
	size_t ngroup;
	int64_t group_opened;
	struct batch filling, writing;
	struct user_sends *users;
	size_t users_cap, nusers;
	struct counts k;
	json_t *errors;             /* code -> count */
	json_t *paused_templates;   /* template keys answered 132015 in this run */
	struct eng_sample lat;
	struct eng_rng rng;
	double tokens;              /* rate tokens in hand */
	int64_t rate_wait_until;
	bool fatal, unreachable, stop, drained, interrupted;
	bool db_down;
	int64_t down_since, reconnect_at;
	int reconnect_attempt;
	int trouble;                /* outages since the last write or claim */
	char fatal_error[256];
	const char *stop_reason;    /* why unsent claims are handed back */
	char owner[192];            /* locked_by: worker id and run */
	int64_t renewed_at;         /* monotonic: the last renewal was sent */
	bool renew_due;             /* renew at the next chance (after an outage) */
	bool must_renew;            /* after an outage: fence nothing before */
	int transport_streak;       /* transport failures since the last answer */
};

/* ---- eng_send_claims.c: messages, queues, batches, the cap, claims ---------- */

void snd_msg_free(struct msg *m);
void snd_q_push(struct msgq *q, struct msg *m);
struct msg *snd_q_pop(struct msgq *q);
void snd_batch_init(struct batch *b);
void snd_batch_clear(struct batch *b);
void snd_batch_release(struct batch *b);
void snd_batch_swap(struct batch *a, struct batch *b);
eng_time snd_now_for(const struct sender *s, const struct msg *m);
void snd_record(struct sender *s, struct msg *m, const struct eng_outcome *o);
void snd_hand_back(struct sender *s, struct msg *m, const char *reason);
void snd_drop_lost(struct sender *s, struct msg *m);
int64_t snd_pair_wait(struct sender *s, const struct msg *m, int64_t now);
void snd_pair_mark(struct sender *s, const struct msg *m, int64_t now);
void snd_take_claim(struct sender *s, const PGresult *r, int64_t claim_sent);
struct eng_claim_args snd_claim_args(struct sender *s, int want);
void snd_for_each_held(struct sender *s, void (*fn)(struct sender *, struct msg *, void *),
		       void *arg);
void snd_take_renewal(struct sender *s, const PGresult *r);
void snd_take_write_back(struct sender *s, const PGresult *r);

/* ---- eng_send_outage.c: outages, the back and feed connections ------------- */

void snd_outage(struct sender *s, const struct eng_err *cause);
void snd_give_up(struct sender *s, const struct batch *b);
enum eng_status snd_reconnect(struct sender *s, struct eng_err *err);
bool snd_may_claim(const struct sender *s);
int snd_claim_size(const struct sender *s);
enum eng_status snd_drive_back(struct sender *s, struct eng_err *err);
enum eng_status snd_drive_feed(struct sender *s, struct eng_err *err);
enum eng_status snd_back_done(struct sender *s, PGresult *r, struct eng_err *err);
enum eng_status snd_feed_done(struct sender *s, PGresult *r, struct eng_err *err);

/* ---- eng_send_fence.c: the front connection, requests ---------------------- */

bool snd_gate(void *tag, void *ctx);
void snd_group_abandon(struct sender *s);
enum eng_status snd_drive_front(struct sender *s, struct eng_err *err);
enum eng_status snd_front_done(struct sender *s, PGresult *r, struct eng_err *err);
void snd_finished(struct sender *s, const struct eng_pool_done *d);

#endif
