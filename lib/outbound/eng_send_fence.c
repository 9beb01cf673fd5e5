/*
 * queue-send's front connection (eng_send.c tells the whole): the home of
 * the pre-send fence. A request goes on the wire only while the fence that
 * re-checked its message is open (snd_gate()), so an opt-out or a
 * transition commits either before the fence looked or after the request
 * started. Also the rate limit (tokens taken from the database's bucket
 * before a group is fenced) and the requests' outcomes (snd_finished()):
 * the API's answer decided, the token redacted from whatever it echoes,
 * and the run stopped when the API is unreachable for every request.
 */
#include "eng_send_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"

#define GATE_US (2 * ENG_USEC_PER_SEC)  /* a fenced request goes on the wire within this */
#define LEASE_MARGIN_US (2 * ENG_USEC_PER_SEC) /* not fenced with less lease left */
#define BUSY_MAX 50                     /* fences that found a row busy, then hand back */

/* The fence's transaction; the server ends it if this process stalls with
 * it open (longer than GATE_US, after which no request of it may start). */
static const char fence_begin_sql[] =
	"BEGIN; SET LOCAL idle_in_transaction_session_timeout = '5s'";

/* ---- the front connection: rate tokens and the fence ------------------------- */

bool snd_gate(void *tag, void *ctx)
{
	(void)ctx;
	struct msg *m = tag;
	if (eng_mono_us() >= m->gate_until)
		return false;
	m->on_wire = true;
	return true;
}

/* The group goes back to the queue (its fence did not finish). */
void snd_group_abandon(struct sender *s)
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
			snd_q_push(&s->pending, m);
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

/* A template WhatsApp answered 132015 for in this run: its messages go
 * back uncharged at once, without a fence or a request (the write-back
 * pauses it in the database for every sender). */
static bool template_paused(const struct sender *s, const struct msg *m)
{
	return json_object_get(s->paused_templates, m->template_key) != NULL;
}

/* Take the group and send its fence's BEGIN. */
static enum eng_status open_fence(struct sender *s, size_t want, struct eng_err *err)
{
	int64_t now = eng_mono_us();
	s->ngroup = 0;
	while (s->ngroup < want && s->pending.n > 0) {
		struct msg *m = snd_q_pop(&s->pending);
		if (m->lease_until - now < LEASE_MARGIN_US) {
			/* its lease could lapse mid-request: not sent */
			snd_hand_back(s, m, "lease");
			continue;
		}
		if (template_paused(s, m)) {
			snd_hand_back(s, m, "template_paused");
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

enum eng_status snd_drive_front(struct sender *s, struct eng_err *err)
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
		enum eng_fence_action act = st ? ENG_FENCE_RETRY
			: eng_decide_fence(verdict, snd_now_for(s, m), s->o->pair_ms, &o);
		switch (act) {
		case ENG_FENCE_SEND:
			if (s->stop) {
				snd_hand_back(s, m, s->stop_reason);
				break;
			}
			if (template_paused(s, m)) {
				snd_hand_back(s, m, "template_paused");
				break;
			}
			int64_t wait = snd_pair_wait(s, m, now);
			if (wait > 0) { /* the same person, too soon: it waits, uncharged */
				eng_outcome_deferred(&o, snd_now_for(s, m) + wait, "pair");
				snd_record(s, m, &o);
				break;
			}
			snd_pair_mark(s, m, now);
			m->gate_until = now + GATE_US;
			if ((st = eng_pool_start(&s->pool, m->body, m->body_len, m, err))) {
				snd_hand_back(s, m, "internal");
				break;
			}
			m->in_group = true;
			s->group[s->ngroup++] = m;
			if (s->o->rate > 0)
				s->tokens -= 1;
			break;
		case ENG_FENCE_RECORD:
			snd_record(s, m, &o);
			break;
		case ENG_FENCE_RETRY:
			if (++m->busy > BUSY_MAX)
				snd_hand_back(s, m, "busy");
			else
				snd_q_push(&s->pending, m);
			break;
		case ENG_FENCE_DROP:
			snd_drop_lost(s, m);
			break;
		}
	}
	/* anything the fence did not name is not ours to send */
	for (size_t k = 0; k < nasked; k++)
		if (asked[k])
			snd_drop_lost(s, asked[k]);
	free(asked);
	s->group_opened = now;
	s->fop = F_OPEN;
	if (st == ENG_OK && s->ngroup)
		st = eng_pool_perform(&s->pool, err);
	return st;
}

enum eng_status snd_front_done(struct sender *s, PGresult *r, struct eng_err *err)
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
						     s->o->pair_ms, NULL, err);
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

void snd_finished(struct sender *s, const struct eng_pool_done *d)
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
		snd_hand_back(s, m, "fence");
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
		snd_record(s, m, &o);
		return;
	}
	eng_time now = snd_now_for(s, m);
	struct eng_outcome o;
	eng_decide_answer(&res, m->attempts, m->max_attempts, now, eng_rng01(&s->rng), &o);
	o.latency_ms = round(d->ms * 10) / 10;
	if (res.code == ENG_WA_TEMPLATE_PAUSED &&
	    !json_object_get(s->paused_templates, m->template_key)) {
		json_object_set_new(s->paused_templates, m->template_key, json_true());
		eng_log(ENG_WARN, "template_paused", ENG_S("template_key", m->template_key),
			ENG_S("hint", "WhatsApp paused it (132015): its messages wait for the pause "
				      "to end (engagement-status shows it)"));
	}
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
	snd_record(s, m, &o);
}
