/*
 * queue-send's run: claims, decisions, the pre-send fence, requests and
 * write-back, kept moving together.
 *
 * Three connections work asynchronously beside the HTTP requests, so that
 * the database's work and the requests overlap. The back connection (the
 * run's own) writes outcomes back and renews leases; the feed connection
 * claims and recovers dead workers' claims; the front connection only
 * fences: for each
 * group of requests about to start it opens a transaction, runs
 * engagement.send_fence on exactly those messages (which locks their rows
 * and re-checks the claim, the opt-out, the goodbye's state and expiry),
 * starts the requests it allows, and commits once every one of them is on
 * the wire. A request may go on the wire only while its fence is open (the
 * pool's gate), so an opt-out or a transition, which must lock the same
 * rows, commits either before the fence looked (the request never starts)
 * or after the request started.
 *
 * Outcomes are kept until they are written. When the database goes away
 * the run starts nothing new, keeps every outcome, reconnects with backoff
 * and writes them once it is back, for as long as its leases last.
 */
#include "eng_send.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_decide.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_mask.h"
#include "eng_pool.h"
#include "eng_queue.h"
#include "eng_stats.h"
#include "eng_version.h"

#define MAX_ANSWER (64 * 1024)          /* an API answer larger than this is cut */
#define FLUSH_ROWS 200                  /* outcomes written back per statement */
#define FLUSH_US (50 * 1000)            /* ... or at least this often */
#define DRY_RUN_SHOWN 100               /* request bodies kept in a dry run's summary */
#define GATE_US (2 * ENG_USEC_PER_SEC)  /* a fenced request goes on the wire within this */
#define LEASE_MARGIN_US (2 * ENG_USEC_PER_SEC) /* not fenced with less lease left */
#define BUSY_MAX 50                     /* fences that found a row busy, then hand back */
#define LATENCY_SAMPLE 65536

/* The fence's transaction; the server ends it if this process stalls with
 * it open (longer than GATE_US, after which no request of it may start). */
static const char fence_begin_sql[] =
	"BEGIN; SET LOCAL idle_in_transaction_session_timeout = '5s'";

/* ---- state ---------------------------------------------------------------- */

struct msg {
	long long id;
	char user_id[37];
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

struct user_sends { /* this run's sends per user, for the hourly cap */
	char user_id[37];
	struct eng_reservation *r;
	size_t n, cap;
};

struct counts {
	long long claimed, sent, retried, deferred, failed, blocked, cancelled,
		handed_back, requests, recovered, purged, lease_lost, would_send,
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

/* ---- messages, queues, batches ------------------------------------------- */

static void msg_free(struct msg *m)
{
	if (!m)
		return;
	free(m->to);
	free(m->body);
	free(m);
}

static struct msg *msg_new(struct sender *s, const struct eng_claim_row *row,
			   int64_t claim_sent)
{
	struct msg *m = eng_xcalloc(1, sizeof(*m));
	m->id = row->id;
	snprintf(m->user_id, sizeof(m->user_id), "%s", row->user_id ? row->user_id : "");
	m->attempts = row->attempts;
	m->max_attempts = row->max_attempts;
	m->claimed_at = row->now;
	m->claimed_mono = eng_mono_us();
	m->lease_until = claim_sent + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC;
	return m;
}

static void q_push(struct msgq *q, struct msg *m)
{
	if (q->head > 0 && q->head + q->n == q->cap) { /* compact first */
		memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
		q->head = 0;
	}
	ENG_GROW(q->v, q->head + q->n, q->cap);
	q->v[q->head + q->n++] = m;
}

static struct msg *q_pop(struct msgq *q)
{
	if (q->n == 0)
		return NULL;
	q->n--;
	return q->v[q->head++];
}

static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	b->rows = json_array();
}

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		msg_free(b->msgs[i]);
	json_array_clear(b->rows);
	b->n = 0;
}

static void batch_release(struct batch *b)
{
	batch_clear(b);
	json_decref(b->rows);
	free(b->msgs);
}

static void batch_swap(struct batch *a, struct batch *b)
{
	struct batch t = *a;
	*a = *b;
	*b = t;
}

/* The instant, as the database sees it, at which something happened to m:
 * its claim's instant plus the time since (fixed with --now). */
static eng_time now_for(const struct sender *s, const struct msg *m)
{
	if (s->job->fixed_now)
		return m->claimed_at;
	return m->claimed_at + (eng_mono_us() - m->claimed_mono);
}

/* ---- the hourly cap's bookkeeping ------------------------------------------- */

static struct user_sends *user_of(struct sender *s, const char *id)
{
	if (s->nusers * 2 >= s->users_cap) { /* grow and rehash */
		size_t cap = s->users_cap ? s->users_cap * 2 : 1024;
		struct user_sends *nu = eng_xcalloc(cap, sizeof(*nu));
		for (size_t i = 0; i < s->users_cap; i++) {
			if (!s->users[i].user_id[0])
				continue;
			size_t h = strtoull(s->users[i].user_id + 24, NULL, 16) % cap;
			while (nu[h].user_id[0])
				h = (h + 1) % cap;
			nu[h] = s->users[i];
		}
		free(s->users);
		s->users = nu;
		s->users_cap = cap;
	}
	size_t h = strtoull(id + 24, NULL, 16) % s->users_cap;
	while (s->users[h].user_id[0] && strcmp(s->users[h].user_id, id) != 0)
		h = (h + 1) % s->users_cap;
	if (!s->users[h].user_id[0]) {
		snprintf(s->users[h].user_id, sizeof(s->users[h].user_id), "%s", id);
		s->nusers++;
	}
	return &s->users[h];
}

static void reserve(struct sender *s, struct msg *m, eng_time at)
{
	struct user_sends *u = user_of(s, m->user_id);
	ENG_GROW(u->r, u->n, u->cap);
	u->r[u->n++] = (struct eng_reservation){m->id, at};
	m->reserved = true;
}

/* A reserved send that did not happen stops counting for the cap. */
static void unreserve(struct sender *s, struct msg *m)
{
	if (!m->reserved)
		return;
	m->reserved = false;
	struct user_sends *u = user_of(s, m->user_id);
	for (size_t k = 0; k < u->n; k++)
		if (u->r[k].message_id == m->id) {
			u->r[k] = u->r[--u->n];
			return;
		}
}

/* ---- outcomes --------------------------------------------------------------- */

static void count(struct sender *s, const struct eng_outcome *o)
{
	switch (o->kind) {
	case ENG_OUT_SENT: s->k.sent++; break;
	case ENG_OUT_RETRIED: s->k.retried++; break;
	case ENG_OUT_DEFERRED: s->k.deferred++; break;
	case ENG_OUT_FAILED: s->k.failed++; break;
	case ENG_OUT_BLOCKED: s->k.blocked++; break;
	case ENG_OUT_CANCELLED: s->k.cancelled++; break;
	case ENG_OUT_HANDED_BACK: s->k.handed_back++; break;
	}
}

/* m's outcome joins the next write-back; m goes with it. */
static void record(struct sender *s, struct msg *m, const struct eng_outcome *o)
{
	struct batch *b = &s->filling;
	if (o->kind != ENG_OUT_SENT)
		unreserve(s, m);
	count(s, o);
	eng_queue_row(b->rows, m->id, m->attempts, o);
	ENG_GROW(b->msgs, b->n, b->cap);
	if (b->n == 0)
		b->oldest = eng_mono_us();
	b->msgs[b->n++] = m;
}

static void hand_back(struct sender *s, struct msg *m, const char *reason)
{
	struct eng_outcome o;
	eng_outcome_handed_back(&o, reason, NULL, NULL);
	record(s, m, &o);
}

/* A claim that is not ours any more: neither sent nor written back.
 * Another worker recovered it after our lease ran out: it may be in the
 * queue again, to be claimed anew. */
static void drop_lost(struct sender *s, struct msg *m)
{
	s->k.lease_lost++;
	s->drained = false;
	unreserve(s, m);
	eng_log(ENG_WARN, "claim_lost", ENG_I("message_id", m->id),
		ENG_S("hint", "its lease ran out and another worker took it over"));
	msg_free(m);
}

/* ---- claims ----------------------------------------------------------------- */

static void decided_send(struct sender *s, struct msg *m,
			 const struct eng_claim_row *row, char **values,
			 size_t nvalues)
{
	m->to = eng_xstrdup(row->to_group ? row->group_id : row->phone);
	m->body = eng_wa_template_body(m->to, row->to_group, row->tpl_name,
				       row->tpl_language, (const char *const *)values,
				       nvalues, m->id);
	m->body_len = strlen(m->body);
	/* counted against the hourly cap now, so that one claim cannot pass
	 * it; released again if it is not sent */
	reserve(s, m, row->now);
}

/* Show a dry run's request, the recipient masked (it is printed). */
static void show_request(struct sender *s, const struct msg *m, bool group)
{
	if (json_array_size(s->job->summary ? json_object_get(s->job->summary, "requests_shown")
					    : NULL) >= DRY_RUN_SHOWN)
		return;
	json_error_t je;
	json_t *b = json_loads(m->body, 0, &je);
	char masked[48];
	eng_mask_phone(m->to, masked, sizeof(masked));
	if (b && !group)
		json_object_set_new(b, "to", json_string(masked));
	json_array_append_new(json_object_get(s->job->summary, "requests_shown"),
			      b ? b : json_null());
}

/* This run's messages by id (sorted), to recognise one it claims again. */
struct held {
	struct msg **v;
	size_t n;
};
static void held_collect(struct sender *s, struct held *h);
static struct msg *held_find(const struct held *h, long long id);

static void take_claim(struct sender *s, const PGresult *r, int64_t claim_sent)
{
	struct eng_claim_reader rd;
	eng_claim_reader_init(&rd, r);
	int rows = PQntuples(r);
	s->k.claimed += rows;
	struct held h;
	held_collect(s, &h);
	for (int i = 0; i < rows; i++) {
		struct eng_claim_row row;
		eng_claim_read(&rd, i, &row);
		/* Claimed again after another worker recovered it (our lease ran
		 * out): this run still has it, waiting, on the wire, or with its
		 * outcome to write. It goes on as it was, under the new claim; a
		 * request already made is never made again. */
		struct msg *old = held_find(&h, row.id);
		if (old) {
			old->lease_until = claim_sent + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC;
			old->lost = false;
			s->k.claimed--;
			eng_log(ENG_INFO, "claimed_again", ENG_I("message_id", row.id),
				ENG_S("hint", "this run still holds it: nothing is sent twice"));
			continue;
		}
		struct msg *m = msg_new(s, &row, claim_sent);
		struct user_sends *u = user_of(s, m->user_id);
		struct eng_outcome o;
		char **values;
		size_t nvalues;
		if (!eng_decide_claim(&row, u->r, u->n, s->o->per_user_hourly, &o,
				      &values, &nvalues)) {
			record(s, m, &o);
			continue;
		}
		decided_send(s, m, &row, values, nvalues);
		eng_decide_values_free(values, nvalues);
		if (s->job->dry_run) {
			show_request(s, m, row.to_group);
			s->k.would_send++; /* its reservation stays: the cap holds */
			msg_free(m);
			continue;
		}
		q_push(&s->pending, m);
	}
	free(h.v);
	if (rows)
		eng_log(ENG_DEBUG, "claimed", ENG_I("messages", rows));
}

static struct eng_claim_args claim_args(struct sender *s, int want)
{
	return (struct eng_claim_args){s->owner, s->job->fixed_now, s->job->now,
				       s->o->lease_seconds, want,
				       s->o->per_user_hourly};
}

/* ---- the database's answers ---------------------------------------------------- */

/* Every claim this run holds, for renewals and the outage deadline. */
static void for_each_held(struct sender *s, void (*fn)(struct sender *, struct msg *, void *),
			  void *arg)
{
	for (size_t i = 0; i < s->pending.n; i++)
		fn(s, s->pending.v[s->pending.head + i], arg);
	if (s->fop == F_BEGIN || s->fop == F_FENCE) /* later they are in the pool */
		for (size_t i = 0; i < s->ngroup; i++)
			fn(s, s->group[i], arg);
	for (int i = 0; s->pool.slots && i < s->pool.cfg.size; i++)
		if (s->pool.slots[i].tag)
			fn(s, s->pool.slots[i].tag, arg);
	for (size_t i = 0; i < s->filling.n; i++)
		fn(s, s->filling.msgs[i], arg);
	for (size_t i = 0; i < s->writing.n; i++)
		fn(s, s->writing.msgs[i], arg);
}

struct renewal {
	const long long *ids;
	size_t n;
	int64_t sent;  /* monotonic: when the renewal was sent */
	int64_t until;
};

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static void renewed_one(struct sender *s, struct msg *m, void *arg)
{
	(void)s;
	const struct renewal *rn = arg;
	/* A claim taken in after the renewal was sent may have committed
	 * after the renewal's snapshot (the renewal can wait that long on a
	 * fence's row locks): its absence proves nothing, and its lease is
	 * as fresh as the renewal's. */
	if (m->claimed_mono >= rn->sent)
		return;
	if (bsearch(&m->id, rn->ids, rn->n, sizeof(*rn->ids), cmp_ll))
		m->lease_until = rn->until;
	else
		m->lost = true;
}

static void count_held(struct sender *s, struct msg *m, void *arg)
{
	(void)s;
	(void)m;
	(*(size_t *)arg)++;
}

static void add_held(struct sender *s, struct msg *m, void *arg)
{
	(void)s;
	struct held *h = arg;
	h->v[h->n++] = m;
}

static int cmp_msg_id(const void *a, const void *b)
{
	long long x = (*(struct msg *const *)a)->id, y = (*(struct msg *const *)b)->id;
	return (x > y) - (x < y);
}

static void held_collect(struct sender *s, struct held *h)
{
	size_t n = 0;
	for_each_held(s, count_held, &n);
	h->v = eng_xcalloc(n + 1, sizeof(*h->v));
	h->n = 0;
	for_each_held(s, add_held, h);
	qsort(h->v, h->n, sizeof(*h->v), cmp_msg_id);
}

static struct msg *held_find(const struct held *h, long long id)
{
	struct msg key = {.id = id}, *k = &key;
	struct msg **hit = bsearch(&k, h->v, h->n, sizeof(*h->v), cmp_msg_id);
	return hit ? *hit : NULL;
}

/* Claims of this run it knows nothing about: their claim committed but its
 * answer was lost with the connection. They go back to the queue
 * (uncharged) to be claimed again. Not while a claim is on its way, whose
 * rows the renewal may already see. */
static void release_orphans(struct sender *s, const long long *renewed, size_t n)
{
	if (s->cop == C_CLAIM || n == 0)
		return;
	struct held h;
	held_collect(s, &h);
	for (size_t i = 0; i < n; i++) {
		if (held_find(&h, renewed[i]))
			continue;
		struct msg *m = eng_xcalloc(1, sizeof(*m));
		m->id = renewed[i];
		m->lease_until = s->renewed_at + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC;
		eng_log(ENG_INFO, "claim_released", ENG_I("message_id", m->id),
			ENG_S("reason", "its claim's answer was lost with the connection"));
		hand_back(s, m, "orphaned");
		s->drained = false; /* it can be claimed again */
	}
	free(h.v);
}

static void take_renewal(struct sender *s, const PGresult *r)
{
	long long *ids;
	size_t n = eng_queue_ids(r, &ids);
	struct renewal rn = {ids, n, s->renewed_at,
			     s->renewed_at + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC};
	for_each_held(s, renewed_one, &rn);
	release_orphans(s, ids, n);
	free(ids);
	/* Lost claims waiting for their fence are never sent. */
	struct msgq keep = {0};
	struct msg *m;
	while ((m = q_pop(&s->pending)) != NULL) {
		if (m->lost)
			drop_lost(s, m);
		else
			q_push(&keep, m);
	}
	free(s->pending.v);
	s->pending = keep;
}

static void take_write_back(struct sender *s, const PGresult *r)
{
	long long *ids;
	size_t n = eng_queue_ids(r, &ids);
	if (n < s->writing.n) {
		/* Another worker took these claims over after our lease ran out
		 * and finished them (or holds them now, and we made no request). */
		for (size_t i = 0; i < s->writing.n; i++) {
			struct msg *m = s->writing.msgs[i];
			if (bsearch(&m->id, ids, n, sizeof(*ids), cmp_ll))
				continue;
			json_t *row = json_array_get(s->writing.rows, i);
			const char *status = json_string_value(json_object_get(row, "status"));
			if (json_is_true(json_object_get(row, "requested")))
				eng_log(ENG_WARN, "outcome_not_recorded", ENG_I("message_id", m->id),
					ENG_S("status", status),
					ENG_S("provider_message_id",
					      json_string_value(json_object_get(row, "wamid"))),
					ENG_S("reason", "lease_lost"),
					ENG_S("hint", "another worker finished it after this "
						      "run's lease ran out: raise --lease-seconds"));
			else
				eng_log(ENG_WARN, "claim_lost", ENG_I("message_id", m->id),
					ENG_S("status", status),
					ENG_S("hint", "its lease ran out and another worker took it over"));
		}
		s->k.lease_lost += (long long)(s->writing.n - n);
		s->drained = false; /* they may be in the queue again */
	}
	free(ids);
	batch_clear(&s->writing);
}

/* ---- outages ------------------------------------------------------------------ */

static void group_abandon(struct sender *s);

/* The database went away (or refused for now): start nothing new, keep
 * every outcome, and reconnect (reconnect()). The fence's connection is
 * dropped (its transaction with it: requests of its group not yet on the
 * wire never go); a statement still running on the back connection is
 * collected as usual. */
static void outage(struct sender *s, const struct eng_err *cause)
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
	group_abandon(s);
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
static void give_up(struct sender *s, const struct batch *b)
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

static enum eng_status reconnect(struct sender *s, struct eng_err *err)
{
	int64_t now = eng_mono_us();
	if (now < s->reconnect_at)
		return ENG_OK;
	/* Until a full lease after the last one taken: a write-back only
	 * lands while the claim is still ours (nobody recovered it), so
	 * trying longer can only save outcomes. */
	int64_t deadline = 0;
	for_each_held(s, latest_lease, &deadline);
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
		batch_swap(&s->filling, &s->writing);
	char *rows = eng_json_dump(s->writing.rows);
	/* (a 131050 among them records the person's opt-out in the same
	 * statement: engagement.record_outcomes) */
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

static bool may_claim(const struct sender *s)
{
	if (s->stop || s->drained ||
	    (s->o->max_messages && s->k.claimed >= s->o->max_messages))
		return false;
	return s->pending.n < (size_t)s->o->concurrency * 2;
}

static int claim_size(const struct sender *s)
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
static enum eng_status drive_back(struct sender *s, struct eng_err *err)
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
static enum eng_status drive_feed(struct sender *s, struct eng_err *err)
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
	if (may_claim(s)) {
		s->claim_want = claim_size(s);
		struct eng_claim_args a = claim_args(s, s->claim_want);
		s->cop = C_CLAIM;
		s->claim_sent = now;
		return eng_queue_claim(&s->feed, &a, NULL, err);
	}
	return ENG_OK;
}

static enum eng_status back_done(struct sender *s, PGresult *r, struct eng_err *err)
{
	(void)err;
	enum back_op op = s->bop;
	s->bop = B_IDLE;
	if (op == B_WRITE) {
		s->trouble = 0;
		take_write_back(s, r);
	} else if (op == B_RENEW) {
		take_renewal(s, r);
		s->must_renew = false;
	}
	return ENG_OK;
}

static enum eng_status feed_done(struct sender *s, PGresult *r, struct eng_err *err)
{
	(void)err;
	enum feed_op op = s->cop;
	s->cop = C_IDLE;
	if (op == C_CLAIM) {
		s->trouble = 0;
		if (PQntuples(r) < s->claim_want)
			s->drained = true;
		take_claim(s, r, s->claim_sent);
	} else if (op == C_RECOVER) {
		long long n = eng_queue_recovered(r);
		s->k.recovered += n;
		if (n)
			eng_log(ENG_WARN, "leases_recovered", ENG_I("messages", n));
	}
	return ENG_OK;
}

/* ---- the front connection: rate tokens and the fence ------------------------- */

static bool gate(void *tag, void *ctx)
{
	(void)ctx;
	struct msg *m = tag;
	if (eng_mono_us() >= m->gate_until)
		return false;
	m->on_wire = true;
	return true;
}

/* The group goes back to the queue (its fence did not finish). */
static void group_abandon(struct sender *s)
{
	if (s->fop == F_TOKENS || s->fop == F_IDLE)
		return;
	for (size_t i = 0; i < s->ngroup; i++) {
		struct msg *m = s->group[i];
		if (!m)
			continue;
		m->in_group = false;
		m->gate_until = 0; /* not started yet: never will be now */
		if (s->fop == F_BEGIN || s->fop == F_FENCE)
			q_push(&s->pending, m);
	}
	s->ngroup = 0;
}

static size_t group_size(const struct sender *s)
{
	size_t want = (size_t)eng_pool_free_slots(&s->pool);
	if (want > s->pending.n)
		want = s->pending.n;
	if (s->o->rate > 0 && want > (size_t)s->tokens)
		want = (size_t)s->tokens;
	return want;
}

/* Take the group and send its fence's BEGIN. */
static enum eng_status open_fence(struct sender *s, size_t want, struct eng_err *err)
{
	int64_t now = eng_mono_us();
	s->ngroup = 0;
	while (s->ngroup < want && s->pending.n > 0) {
		struct msg *m = q_pop(&s->pending);
		if (m->lease_until - now < LEASE_MARGIN_US) {
			/* its lease could lapse mid-request: not sent */
			hand_back(s, m, "lease");
			continue;
		}
		m->in_group = true;
		s->group[s->ngroup++] = m;
	}
	if (s->ngroup == 0)
		return ENG_OK;
	s->fop = F_BEGIN;
	return eng_db_send_simple(&s->front, fence_begin_sql, err);
}

static enum eng_status drive_front(struct sender *s, struct eng_err *err)
{
	if (s->fop == F_OPEN) {
		/* commit once every request is on the wire (or the window is
		 * over: those not started by then never will be) */
		bool all = true;
		for (size_t i = 0; i < s->ngroup && all; i++)
			all = !s->group[i] || s->group[i]->on_wire;
		if (!all && eng_mono_us() - s->group_opened < GATE_US)
			return ENG_OK;
		for (size_t i = 0; i < s->ngroup; i++)
			if (s->group[i]) {
				s->group[i]->gate_until = 0;
				s->group[i]->in_group = false;
			}
		s->ngroup = 0;
		s->fop = F_COMMIT;
		return eng_db_send(&s->front, "COMMIT", 0, NULL, err);
	}
	if (s->fop != F_IDLE || s->stop || s->pending.n == 0 || s->must_renew)
		return ENG_OK;
	int free_slots = eng_pool_free_slots(&s->pool);
	/* groups of a quarter of the pool at least, unless the pool is idle */
	size_t threshold = (size_t)(s->o->concurrency / 4 > 1 ? s->o->concurrency / 4 : 1);
	if (threshold > s->pending.n)
		threshold = s->pending.n;
	if (free_slots == 0 || ((size_t)free_slots < threshold && s->pool.in_flight > 0))
		return ENG_OK;
	if (s->o->rate > 0 && s->tokens < 1) {
		if (eng_mono_us() < s->rate_wait_until)
			return ENG_OK;
		double want = fmin((double)s->pending.n, fmax(1.0, s->o->rate * 0.25));
		double burst = s->o->rate * 0.25 < 1 ? 1 : s->o->rate * 0.25;
		s->fop = F_TOKENS;
		return eng_queue_rate_take(&s->front, s->wa->phone_number_id, s->o->rate,
					   burst, (int)want, NULL, err);
	}
	return open_fence(s, group_size(s), err);
}

static enum eng_status start_group(struct sender *s, const PGresult *r,
				   struct eng_err *err)
{
	int64_t now = eng_mono_us();
	struct msg **asked = eng_xcalloc(s->ngroup + 1, sizeof(*asked));
	size_t nasked = s->ngroup;
	memcpy(asked, s->group, s->ngroup * sizeof(*asked));
	s->ngroup = 0; /* from here: the requests started */
	enum eng_status st = ENG_OK;
	for (int i = 0; i < PQntuples(r); i++) {
		long long id;
		const char *verdict;
		eng_queue_fence_row(r, i, &id, &verdict);
		struct msg *m = NULL;
		for (size_t k = 0; k < nasked && !m; k++)
			if (asked[k] && asked[k]->id == id) {
				m = asked[k];
				asked[k] = NULL;
			}
		if (!m)
			continue;
		m->in_group = false;
		struct eng_outcome o;
		switch (st ? ENG_FENCE_RETRY : eng_decide_fence(verdict, &o)) {
		case ENG_FENCE_SEND:
			if (s->stop) {
				hand_back(s, m, s->stop_reason);
				break;
			}
			m->gate_until = now + GATE_US;
			if ((st = eng_pool_start(&s->pool, m->body, m->body_len, m, err))) {
				hand_back(s, m, "internal");
				break;
			}
			m->in_group = true;
			s->group[s->ngroup++] = m;
			if (s->o->rate > 0)
				s->tokens -= 1;
			break;
		case ENG_FENCE_RECORD:
			record(s, m, &o);
			break;
		case ENG_FENCE_RETRY:
			if (++m->busy > BUSY_MAX)
				hand_back(s, m, "busy");
			else
				q_push(&s->pending, m);
			break;
		case ENG_FENCE_DROP:
			drop_lost(s, m);
			break;
		}
	}
	/* anything the fence did not name is not ours to send */
	for (size_t k = 0; k < nasked; k++)
		if (asked[k])
			drop_lost(s, asked[k]);
	free(asked);
	s->group_opened = now;
	s->fop = F_OPEN;
	if (st == ENG_OK && s->ngroup)
		st = eng_pool_perform(&s->pool, err);
	return st;
}

static enum eng_status front_done(struct sender *s, PGresult *r, struct eng_err *err)
{
	switch (s->fop) {
	case F_TOKENS: {
		int granted;
		double avail;
		eng_queue_rate_read(r, &granted, &avail);
		s->tokens += granted;
		if (granted == 0) {
			double wait = fmax(0.001, (1.0 - avail) / s->o->rate);
			s->rate_wait_until = eng_mono_us() + (int64_t)(wait * 1e6);
		}
		s->fop = F_IDLE;
		return ENG_OK;
	}
	case F_BEGIN: {
		long long *ids = eng_xcalloc(s->ngroup, sizeof(*ids));
		for (size_t i = 0; i < s->ngroup; i++)
			ids[i] = s->group[i]->id;
		s->fop = F_FENCE;
		enum eng_status st = eng_queue_fence(&s->front, ids, s->ngroup, s->owner,
						     s->job->fixed_now ? &s->job->now : NULL,
						     NULL, err);
		free(ids);
		return st;
	}
	case F_FENCE:
		return start_group(s, r, err);
	case F_COMMIT:
		s->fop = F_IDLE;
		return ENG_OK;
	case F_OPEN:
	case F_IDLE:
		break;
	}
	return eng_err_set(err, ENG_EINTERNAL, "a result came for no statement");
}

/* ---- requests ------------------------------------------------------------------ */

static void count_error(struct sender *s, const char *code)
{
	json_t *v = json_object_get(s->errors, code);
	json_object_set_new(s->errors, code,
			    json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* Replace every occurrence of secret in text (a buffer of cap bytes). */
static void redact(char *text, size_t cap, const char *secret)
{
	size_t sl = strlen(secret);
	if (!sl || !strstr(text, secret))
		return;
	struct eng_buf b = ENG_BUF_INIT(cap - 1);
	for (const char *p = text; *p;) {
		const char *hit = strstr(p, secret);
		if (!hit) {
			eng_buf_adds(&b, p);
			break;
		}
		eng_buf_add(&b, p, (size_t)(hit - p));
		eng_buf_adds(&b, "[redacted]");
		p = hit + sl;
	}
	snprintf(text, cap, "%s", eng_buf_str(&b));
	eng_buf_release(&b);
}

static void finished(struct sender *s, const struct eng_pool_done *d)
{
	struct msg *m = d->tag;
	if (m->in_group) {
		for (size_t i = 0; i < s->ngroup; i++)
			if (s->group[i] == m)
				s->group[i] = NULL;
		m->in_group = false;
	}
	if (!d->on_wire && d->rc == CURLE_ABORTED_BY_CALLBACK) {
		/* refused at the gate (its fence was over): it never left */
		hand_back(s, m, "fence");
		return;
	}
	s->k.requests++;
	eng_sample_add(&s->lat, &s->rng, d->ms);

	struct eng_wa_result res;
	if (d->rc == CURLE_OK) {
		eng_wa_parse_answer(d->http_status, d->answer, d->answer_len, &res);
		s->transport_streak = 0;
	} else {
		eng_wa_transport_error(d->rc, d->errbuf, &res);
		if (d->rc != CURLE_OPERATION_TIMEDOUT)
			s->transport_streak++;
	}
	/* whatever an answer echoes, the token goes no further */
	redact(res.error, sizeof(res.error), s->wa->token);
	if (res.cls != ENG_WA_SENT)
		count_error(s, res.code_text);
	/* The API unreachable for every request (DNS, TLS, refused): stop
	 * before every message's attempts are used up on it. */
	if (res.cls != ENG_WA_SENT && d->rc != CURLE_OK && d->rc != CURLE_OPERATION_TIMEDOUT &&
	    (s->unreachable ||
	     s->transport_streak >= (s->o->concurrency > 5 ? s->o->concurrency : 5))) {
		if (!s->unreachable)
			snprintf(s->fatal_error, sizeof(s->fatal_error),
				 "the API is unreachable: %s", res.error);
		s->unreachable = true;
		struct eng_outcome o;
		eng_outcome_handed_back(&o, "unreachable", res.code_text, res.error);
		record(s, m, &o);
		return;
	}
	eng_time now = now_for(s, m);
	struct eng_outcome o;
	eng_decide_answer(&res, m->attempts, m->max_attempts, now, eng_rng01(&s->rng), &o);
	o.latency_ms = round(d->ms * 10) / 10;
	if (res.cls == ENG_WA_FATAL && !s->fatal) {
		s->fatal = true;
		snprintf(s->fatal_error, sizeof(s->fatal_error), "%s", res.error);
	}
	if (res.cls == ENG_WA_SENT) {
		eng_log(ENG_DEBUG, "message_sent", ENG_I("message_id", m->id),
			ENG_PHONE("to", m->to), ENG_S("provider_message_id", res.wamid));
	} else {
		eng_log(res.cls == ENG_WA_FAIL ? ENG_WARN : ENG_INFO, "message_not_sent",
			ENG_I("message_id", m->id), ENG_PHONE("to", m->to),
			ENG_S("class", eng_wa_class_name(res.cls)),
			ENG_S("code", res.code_text), ENG_S("error", res.error));
	}
	/* (131050, the user said stop inside WhatsApp: the write-back records
	 * it everywhere, dated o.at) */
	record(s, m, &o);
}

/* ---- the loop ------------------------------------------------------------------ */

static void check_stop(struct sender *s, int64_t t0)
{
	if (s->stop)
		goto hand_back_pending;
	if (eng_interrupted) {
		s->stop = s->interrupted = true;
		s->stop_reason = "signal";
		eng_log(ENG_WARN, "stopping", ENG_S("reason", "signal"),
			ENG_I("signal", eng_interrupted));
	} else if (s->o->max_seconds > 0 &&
		   (double)(eng_mono_us() - t0) / 1e6 >= s->o->max_seconds) {
		s->stop = true;
		s->stop_reason = "max_seconds";
		eng_log(ENG_INFO, "stopping", ENG_S("reason", "max_seconds"));
	} else if (s->fatal || s->unreachable) {
		s->stop = true;
		s->stop_reason = s->fatal ? "fatal" : "unreachable";
	}
	if (!s->stop)
		return;
hand_back_pending:
	/* whatever was claimed and not started goes back, uncharged: also a
	 * claim whose answer came after the stop (it was on its way) */
	for (struct msg *m; (m = q_pop(&s->pending)) != NULL;)
		hand_back(s, m, s->stop_reason);
}

static bool done(const struct sender *s)
{
	bool nothing_left = s->pending.n == 0 &&
			    (s->stop || s->drained ||
			     (s->o->max_messages && s->k.claimed >= s->o->max_messages));
	return nothing_left && !s->db_down && s->pool.in_flight == 0 &&
	       s->fop == F_IDLE && s->bop == B_IDLE && s->cop == C_IDLE &&
	       s->filling.n == 0 &&
	       s->writing.n == 0;
}

/* Wait for a request, a database answer or the next deadline. */
static enum eng_status wait(struct sender *s, struct eng_err *err)
{
	struct curl_waitfd fds[3];
	unsigned n = 0;
	if (s->bop != B_IDLE && eng_db_socket(s->back) >= 0)
		fds[n++] = (struct curl_waitfd){eng_db_socket(s->back), CURL_WAIT_POLLIN, 0};
	if (s->cop != C_IDLE && eng_db_socket(&s->feed) >= 0)
		fds[n++] = (struct curl_waitfd){eng_db_socket(&s->feed), CURL_WAIT_POLLIN, 0};
	if (s->fop != F_IDLE && s->fop != F_OPEN && eng_db_socket(&s->front) >= 0)
		fds[n++] = (struct curl_waitfd){eng_db_socket(&s->front), CURL_WAIT_POLLIN, 0};
	int timeout = 50;
	if (s->fop == F_OPEN)
		timeout = 1;
	else if (s->o->rate > 0 && s->tokens < 1 && s->pending.n > 0 && s->fop == F_IDLE) {
		int64_t w = (s->rate_wait_until - eng_mono_us()) / 1000;
		timeout = w < 1 ? 1 : (w < 50 ? (int)w : 50);
	}
	return eng_pool_wait(&s->pool, fds, n, timeout, err);
}

/* Collect a finished statement of a connection, if any. */
static enum eng_status collect(struct sender *s, struct eng_db *db, bool busy,
			       enum eng_status (*done_fn)(struct sender *, PGresult *,
							  struct eng_err *),
			       struct eng_err *err)
{
	if (!busy)
		return ENG_OK;
	bool finished_ = false;
	PGresult *r = NULL;
	enum eng_status st = eng_db_ready(db, &finished_, &r, err);
	if (st == ENG_OK && finished_)
		st = done_fn(s, r, err);
	PQclear(r);
	return st;
}

/* One turn of the loop. A database outage is handled here; any other
 * error ends the run. */
static enum eng_status turn(struct sender *s, int64_t t0, struct eng_err *err)
{
	enum eng_status st = ENG_OK;
	check_stop(s, t0);
	if (s->db_down && (st = reconnect(s, err)))
		return st;
	if (!s->db_down) {
		st = drive_back(s, err);
		if (st == ENG_OK)
			st = drive_feed(s, err);
		if (st == ENG_OK)
			st = drive_front(s, err);
	}
	if (st == ENG_OK)
		st = wait(s, err);
	struct eng_pool_done d;
	while (st == ENG_OK && eng_pool_next(&s->pool, &d))
		finished(s, &d);
	if (st == ENG_OK)
		st = collect(s, s->back, s->bop != B_IDLE, back_done, err);
	if (st == ENG_OK)
		st = collect(s, &s->feed, s->cop != C_IDLE, feed_done, err);
	if (st == ENG_OK)
		st = collect(s, &s->front, s->fop != F_IDLE && s->fop != F_OPEN, front_done,
			     err);
	if (st == ENG_ETEMP) {
		outage(s, err);
		eng_err_clear(err);
		st = ENG_OK;
	}
	return st;
}

/* ---- setup, dry run, summary ------------------------------------------------------ */

static enum eng_status setup(struct sender *s, struct eng_err *err)
{
	char auth[16400];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->wa->token);
	s->headers = curl_slist_append(NULL, auth);
	memset(auth, 0, sizeof(auth));
	s->headers = curl_slist_append(s->headers, "Content-Type: application/json");
	s->headers = curl_slist_append(s->headers, "Expect:");
	struct eng_pool_cfg cfg = {
		.url = s->wa->endpoint, .headers = s->headers, .size = s->o->concurrency,
		.timeout_ms = s->o->timeout_ms, .connect_timeout_ms = s->o->connect_timeout_ms,
		.user_agent = "engagement-queue-send/" ENG_VERSION,
		.max_answer = MAX_ANSWER, .gate = gate, .gate_ctx = s,
	};
	if (eng_pool_init(&s->pool, &cfg, err))
		return err->status;
	s->group = eng_xcalloc((size_t)s->o->concurrency, sizeof(*s->group));
	if (eng_db_connect(&s->front, s->job->conninfo, s->job->program, err) ||
	    eng_db_connect(&s->feed, s->job->conninfo, s->job->program, err))
		return err->status;

	/* dead workers' claims first, then the retention purge */
	eng_time now = s->job->fixed_now ? s->job->now : s->job->now;
	PGresult *r = NULL;
	if (eng_queue_recover(s->back, now, s->owner, s->job->run_id, &r, err))
		return eng_err_prefix(err, "could not recover expired leases");
	s->k.recovered += eng_queue_recovered(r);
	if (eng_queue_recovered(r))
		eng_log(ENG_WARN, "leases_recovered", ENG_I("messages", eng_queue_recovered(r)));
	PQclear(r);
	if (eng_queue_purge(s->back, s->o->retain_days, &s->k.purged, err))
		return eng_err_prefix(err, "could not purge old messages");
	if (s->o->rate > 0 && eng_queue_rate_init(s->back, s->wa->phone_number_id, err))
		return err->status;
	s->renewed_at = s->recovered_at = eng_mono_us();
	return ENG_OK;
}

/* Claim and decide as a real run would, in a transaction rolled back. */
static enum eng_status dry_run(struct sender *s, struct eng_err *err)
{
	json_object_set_new(s->job->summary, "requests_shown", json_array());
	enum eng_status st = eng_db_begin(s->back, err);
	while (st == ENG_OK && may_claim(s)) {
		int want = claim_size(s);
		struct eng_claim_args a = claim_args(s, want);
		PGresult *r = NULL;
		if ((st = eng_queue_claim(s->back, &a, &r, err)))
			break;
		if (PQntuples(r) < want)
			s->drained = true;
		take_claim(s, r, eng_mono_us());
		PQclear(r);
		batch_clear(&s->filling);
	}
	eng_db_rollback(s->back);
	return st;
}

static void summarize(struct sender *s, int64_t t0)
{
	json_t *sum = s->job->summary;
	double secs = (double)(eng_mono_us() - t0) / 1e6;
	const struct {
		const char *key;
		long long v;
	} counts[] = {
		{"claimed", s->k.claimed}, {"sent", s->k.sent}, {"retried", s->k.retried},
		{"deferred", s->k.deferred}, {"failed", s->k.failed},
		{"blocked", s->k.blocked}, {"cancelled", s->k.cancelled},
		{"handed_back", s->k.handed_back}, {"requests", s->k.requests},
		{"leases_recovered", s->k.recovered}, {"leases_lost", s->k.lease_lost},
		{"purged", s->k.purged}, {"reconnects", s->k.reconnects},
		{"outcomes_unrecorded", s->k.unrecorded},
	};
	json_object_set_new(sum, "worker_id", json_string(s->owner));
	for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++)
		json_object_set_new(sum, counts[i].key, json_integer(counts[i].v));
	json_object_set_new(sum, "errors", json_incref(s->errors));
	json_object_set_new(sum, "latency_ms", eng_sample_json(&s->lat));
	json_object_set_new(sum, "send_rate",
			    json_real(secs > 0 ? round((double)s->k.sent / secs * 10) / 10 : 0));
	if (s->job->dry_run)
		json_object_set_new(sum, "would_send", json_integer(s->k.would_send));
	if (s->fatal || s->unreachable)
		json_object_set_new(sum, "fatal_error", eng_json_masked(s->fatal_error));
}

static void teardown(struct sender *s)
{
	/* messages still held when the run broke off */
	for (int i = 0; s->pool.slots && i < s->pool.cfg.size; i++) {
		struct msg *m = s->pool.slots[i].tag;
		if (m && m->in_group)
			for (size_t k = 0; k < s->ngroup; k++)
				if (s->group[k] == m)
					s->group[k] = NULL;
		msg_free(m);
	}
	eng_pool_release(&s->pool);
	if (s->headers) { /* the token lives in the first header: wipe it */
		for (struct curl_slist *h = s->headers; h; h = h->next)
			memset(h->data, 0, strlen(h->data));
		curl_slist_free_all(s->headers);
	}
	for (size_t i = 0; i < s->ngroup; i++)
		msg_free(s->group[i]);
	free(s->group);
	struct msg *m;
	while ((m = q_pop(&s->pending)) != NULL)
		msg_free(m);
	free(s->pending.v);
	batch_release(&s->filling);
	batch_release(&s->writing);
	for (size_t i = 0; i < s->users_cap; i++)
		free(s->users[i].r);
	free(s->users);
	eng_sample_release(&s->lat);
	json_decref(s->errors);
	eng_db_close(&s->front);
	eng_db_close(&s->feed);
}

enum eng_status eng_send_run(const struct eng_job *job, const struct eng_send_opts *o,
			     struct eng_err *err)
{
	struct sender s;
	memset(&s, 0, sizeof(s));
	s.job = job;
	s.o = o;
	s.wa = &o->wa;
	s.back = job->db;
	s.errors = json_object();
	s.stop_reason = "stopped";
	batch_init(&s.filling);
	batch_init(&s.writing);
	eng_sample_init(&s.lat, LATENCY_SAMPLE);
	eng_rng_seed(&s.rng);
	snprintf(s.owner, sizeof(s.owner), "%s/%.8s", o->worker_id, job->run_id);
	json_object_set_new(job->summary, "rate_limit", json_real(o->rate));
	int64_t t0 = eng_mono_us();

	enum eng_status st;
	if (job->dry_run) {
		st = dry_run(&s, err);
	} else {
		st = setup(&s, err);
		while (st == ENG_OK && !done(&s))
			st = turn(&s, t0, err);
		if (st) { /* an error that ends the run: say what is unwritten */
			give_up(&s, &s.writing);
			give_up(&s, &s.filling);
		}
	}
	summarize(&s, t0);
	eng_log(ENG_INFO, "send_finished", ENG_I("claimed", s.k.claimed),
		ENG_I("sent", s.k.sent), ENG_I("failed", s.k.failed),
		ENG_I("handed_back", s.k.handed_back));
	if (st == ENG_OK && s.fatal) {
		eng_log(ENG_ERROR, "api_refused_run", ENG_S("error", s.fatal_error),
			ENG_I("handed_back", s.k.handed_back));
		eng_err_set(err, ENG_EUNAVAIL, "the WhatsApp API refused the whole run: %s",
			    s.fatal_error);
		st = eng_err_event(err, "run_refused");
	} else if (st == ENG_OK && s.unreachable) {
		eng_log(ENG_ERROR, "api_unreachable", ENG_S("error", s.fatal_error),
			ENG_I("handed_back", s.k.handed_back));
		eng_err_set(err, ENG_ETEMP, "%s: try again later", s.fatal_error);
		st = eng_err_event(err, "run_stopped");
	} else if (st == ENG_OK && s.interrupted) {
		eng_err_set(err, ENG_ETEMP, "interrupted by a signal");
		st = eng_err_event(err, "interrupted");
	}
	teardown(&s);
	return st;
}

enum eng_status eng_send_check(struct eng_send_opts *o, struct eng_err *err)
{
	if (!o->worker_id[0]) {
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(o->worker_id, sizeof(o->worker_id), "%s:%ld", host, (long)getpid());
	}
	/* Configuration first: nothing is claimed with a broken one. */
	if (eng_wa_config_load(&o->wa, err))
		return eng_err_event(err, "bad_configuration");
	o->wa_loaded = true;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return eng_err_set(err, ENG_EINTERNAL, "curl_global_init failed");
	o->curl_ready = true;
	eng_log(ENG_DEBUG, "configured", ENG_S("endpoint", o->wa.endpoint),
		ENG_S("token_from", o->wa.token_origin));
	return ENG_OK;
}

void eng_send_opts_release(struct eng_send_opts *o)
{
	if (o->wa_loaded)
		eng_wa_config_release(&o->wa);
	if (o->curl_ready)
		curl_global_cleanup();
	o->wa_loaded = o->curl_ready = false;
}
