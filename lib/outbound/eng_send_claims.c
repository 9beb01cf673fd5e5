/*
 * queue-send's claims and what becomes of them (eng_send.c tells the
 * whole): the home of "nothing is sent twice" and of the claims' leases.
 * A message this run still holds and claims again goes on as it was
 * (claimed_again); a renewal judges only the claims taken in before it was
 * sent, and a claim found lost is never sent; a claim whose answer was
 * lost with the connection is handed back (release_orphans()). Also the
 * hourly cap's bookkeeping (a send is reserved when it is decided and
 * released if it does not happen) and the outcomes, each kept in a batch
 * with its message until it is written.
 */
#include "eng_send_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"
#include "eng_mask.h"

#define DRY_RUN_SHOWN 100               /* request bodies kept in a dry run's summary */

/* ---- messages, queues, batches ------------------------------------------- */

void snd_msg_free(struct msg *m)
{
	if (!m)
		return;
	free(m->to);
	free(m->body);
	free(m->template_key);
	free(m);
}

static struct msg *msg_new(struct sender *s, const struct eng_claim_row *row,
			   int64_t claim_sent)
{
	struct msg *m = eng_xcalloc(1, sizeof(*m));
	m->id = row->id;
	snprintf(m->user_id, sizeof(m->user_id), "%s", row->user_id ? row->user_id : "");
	m->template_key = eng_xstrdup(row->template_key ? row->template_key : "");
	m->attempts = row->attempts;
	m->max_attempts = row->max_attempts;
	m->claimed_at = row->now;
	m->claimed_mono = eng_mono_us();
	m->lease_until = claim_sent + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC;
	return m;
}

void snd_q_push(struct msgq *q, struct msg *m)
{
	if (q->head > 0 && q->head + q->n == q->cap) { /* compact first */
		memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
		q->head = 0;
	}
	ENG_GROW(q->v, q->head + q->n, q->cap);
	q->v[q->head + q->n++] = m;
}

struct msg *snd_q_pop(struct msgq *q)
{
	if (q->n == 0)
		return NULL;
	q->n--;
	return q->v[q->head++];
}

void snd_batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	b->rows = json_array();
}

void snd_batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		snd_msg_free(b->msgs[i]);
	json_array_clear(b->rows);
	b->n = 0;
}

void snd_batch_release(struct batch *b)
{
	snd_batch_clear(b);
	json_decref(b->rows);
	free(b->msgs);
}

void snd_batch_swap(struct batch *a, struct batch *b)
{
	struct batch t = *a;
	*a = *b;
	*b = t;
}

/* The instant, as the database sees it, at which something happened to m:
 * its claim's instant plus the time since (fixed with --now). */
eng_time snd_now_for(const struct sender *s, const struct msg *m)
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
			size_t h = eng_hash_str(s->users[i].user_id) % cap;
			while (nu[h].user_id[0])
				h = (h + 1) % cap;
			nu[h] = s->users[i];
		}
		free(s->users);
		s->users = nu;
		s->users_cap = cap;
	}
	size_t h = eng_hash_str(id) % s->users_cap;
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

/* ---- the pair rate ---------------------------------------------------------- */

/* How long m must still wait after this run's latest request to the same
 * person (0: it may go). Requests of other runs are the fence's verdict
 * "pair"; this covers two of one run, fenced together or one after the
 * other faster than the write-back records the first. */
int64_t snd_pair_wait(struct sender *s, const struct msg *m, int64_t now)
{
	if (s->o->pair_ms <= 0)
		return 0;
	const struct user_sends *u = user_of(s, m->user_id);
	int64_t until = u->last_request + (int64_t)s->o->pair_ms * 1000;
	return u->last_request && until > now ? until - now : 0;
}

void snd_pair_mark(struct sender *s, const struct msg *m, int64_t now)
{
	if (s->o->pair_ms > 0)
		user_of(s, m->user_id)->last_request = now;
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
	case ENG_OUT_HANDED_BACK:
		s->k.handed_back++;
		s->k.paused += o->reason && strcmp(o->reason, "paused") == 0;
		break;
	}
}

/* m's outcome joins the next write-back; m goes with it. */
void snd_record(struct sender *s, struct msg *m, const struct eng_outcome *o)
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

void snd_hand_back(struct sender *s, struct msg *m, const char *reason)
{
	struct eng_outcome o;
	eng_outcome_handed_back(&o, reason, NULL, NULL);
	snd_record(s, m, &o);
}

/* A claim that is not ours any more: neither sent nor written back.
 * Another worker recovered it after our lease ran out: it may be in the
 * queue again, to be claimed anew. */
void snd_drop_lost(struct sender *s, struct msg *m)
{
	s->k.lease_lost++;
	s->drained = false;
	unreserve(s, m);
	eng_log(ENG_WARN, "claim_lost", ENG_I("message_id", m->id),
		ENG_S("hint", "its lease ran out and another worker took it over"));
	snd_msg_free(m);
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

void snd_take_claim(struct sender *s, const PGresult *r, int64_t claim_sent)
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
			snd_record(s, m, &o);
			continue;
		}
		decided_send(s, m, &row, values, nvalues);
		eng_decide_values_free(values, nvalues);
		if (s->job->dry_run) {
			show_request(s, m, row.to_group);
			s->k.would_send++; /* its reservation stays: the cap holds */
			snd_msg_free(m);
			continue;
		}
		snd_q_push(&s->pending, m);
	}
	free(h.v);
	if (rows)
		eng_log(ENG_DEBUG, "claimed", ENG_I("messages", rows));
}

struct eng_claim_args snd_claim_args(struct sender *s, int want)
{
	return (struct eng_claim_args){s->owner, s->job->fixed_now, s->job->now,
				       s->o->lease_seconds, want,
				       s->o->per_user_hourly};
}

/* ---- the database's answers ---------------------------------------------------- */

/* Every claim this run holds, for renewals and the outage deadline. */
void snd_for_each_held(struct sender *s, void (*fn)(struct sender *, struct msg *, void *),
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
	snd_for_each_held(s, count_held, &n);
	h->v = eng_xcalloc(n + 1, sizeof(*h->v));
	h->n = 0;
	snd_for_each_held(s, add_held, h);
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
		snd_hand_back(s, m, "orphaned");
		s->drained = false; /* it can be claimed again */
	}
	free(h.v);
}

void snd_take_renewal(struct sender *s, const PGresult *r)
{
	long long *ids;
	size_t n = eng_queue_ids(r, &ids);
	struct renewal rn = {ids, n, s->renewed_at,
			     s->renewed_at + (int64_t)s->o->lease_seconds * ENG_USEC_PER_SEC};
	snd_for_each_held(s, renewed_one, &rn);
	release_orphans(s, ids, n);
	free(ids);
	/* Lost claims waiting for their fence are never sent. */
	struct msgq keep = {0};
	struct msg *m;
	while ((m = snd_q_pop(&s->pending)) != NULL) {
		if (m->lost)
			snd_drop_lost(s, m);
		else
			snd_q_push(&keep, m);
	}
	free(s->pending.v);
	s->pending = keep;
}

void snd_take_write_back(struct sender *s, const PGresult *r)
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
	snd_batch_clear(&s->writing);
}
