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
 *
 * The loop is here (a run stops by handing back what it claimed and did
 * not start, and ends only once every outcome is written), with setup, the
 * dry run, the summary and the public functions. The rest, around the
 * state in eng_send_int.h: eng_send_claims.c (claims and their leases,
 * nothing sent twice, the hourly cap, outcomes), eng_send_fence.c (the
 * front connection: rate tokens, the fence and its gate, the requests'
 * outcomes) and eng_send_outage.c (outages and reconnecting, the back and
 * feed connections' statements).
 */
#include "eng_send.h"
#include "eng_send_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_version.h"

#define MAX_ANSWER (64 * 1024)          /* an API answer larger than this is cut */
#define LATENCY_SAMPLE 65536

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
	for (struct msg *m; (m = snd_q_pop(&s->pending)) != NULL;)
		snd_hand_back(s, m, s->stop_reason);
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
	if (s->db_down && (st = snd_reconnect(s, err)))
		return st;
	if (!s->db_down) {
		st = snd_drive_back(s, err);
		if (st == ENG_OK)
			st = snd_drive_feed(s, err);
		if (st == ENG_OK)
			st = snd_drive_front(s, err);
	}
	if (st == ENG_OK)
		st = wait(s, err);
	struct eng_pool_done d;
	while (st == ENG_OK && eng_pool_next(&s->pool, &d))
		snd_finished(s, &d);
	if (st == ENG_OK)
		st = collect(s, s->back, s->bop != B_IDLE, snd_back_done, err);
	if (st == ENG_OK)
		st = collect(s, &s->feed, s->cop != C_IDLE, snd_feed_done, err);
	if (st == ENG_OK)
		st = collect(s, &s->front, s->fop != F_IDLE && s->fop != F_OPEN, snd_front_done,
			     err);
	if (st == ENG_ETEMP) {
		snd_outage(s, err);
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
		.max_answer = MAX_ANSWER, .gate = snd_gate, .gate_ctx = s,
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
	while (st == ENG_OK && snd_may_claim(s)) {
		int want = snd_claim_size(s);
		struct eng_claim_args a = snd_claim_args(s, want);
		PGresult *r = NULL;
		if ((st = eng_queue_claim(s->back, &a, &r, err)))
			break;
		if (PQntuples(r) < want)
			s->drained = true;
		snd_take_claim(s, r, eng_mono_us());
		PQclear(r);
		snd_batch_clear(&s->filling);
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
		{"handed_back", s->k.handed_back}, {"paused", s->k.paused},
		{"requests", s->k.requests},
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
		snd_msg_free(m);
	}
	eng_pool_release(&s->pool);
	if (s->headers) { /* the token lives in the first header: wipe it */
		for (struct curl_slist *h = s->headers; h; h = h->next)
			memset(h->data, 0, strlen(h->data));
		curl_slist_free_all(s->headers);
	}
	for (size_t i = 0; i < s->ngroup; i++)
		snd_msg_free(s->group[i]);
	free(s->group);
	struct msg *m;
	while ((m = snd_q_pop(&s->pending)) != NULL)
		snd_msg_free(m);
	free(s->pending.v);
	snd_batch_release(&s->filling);
	snd_batch_release(&s->writing);
	for (size_t i = 0; i < s->users_cap; i++)
		free(s->users[i].r);
	free(s->users);
	eng_sample_release(&s->lat);
	json_decref(s->errors);
	json_decref(s->paused_templates);
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
	s.paused_templates = json_object();
	s.stop_reason = "stopped";
	snd_batch_init(&s.filling);
	snd_batch_init(&s.writing);
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
			snd_give_up(&s, &s.writing);
			snd_give_up(&s, &s.filling);
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
