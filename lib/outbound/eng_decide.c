#include "eng_decide.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static void outcome(struct eng_outcome *o, enum eng_outcome_kind kind,
		    const char *status, const char *event)
{
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->status = status;
	o->event = event;
}

static void set_error(struct eng_outcome *o, const char *code, const char *error)
{
	o->code = code;
	snprintf(o->error, sizeof(o->error), "%s", error ? error : "");
}

void eng_outcome_cancelled(struct eng_outcome *o, const char *code,
			   const char *error)
{
	outcome(o, ENG_OUT_CANCELLED, "cancelled", "message_cancelled");
	set_error(o, code, error);
	o->reason = code;
}

void eng_outcome_blocked(struct eng_outcome *o)
{
	outcome(o, ENG_OUT_BLOCKED, "blocked", "message_blocked");
	set_error(o, "opted_out", "the user opted out of re-engagement messages");
	o->reason = "opted_out";
}

void eng_outcome_deferred(struct eng_outcome *o, eng_time until,
			  const char *reason)
{
	outcome(o, ENG_OUT_DEFERRED, "queued", "message_deferred");
	o->next = until;
	o->until = until;
	o->reason = reason;
}

void eng_outcome_failed(struct eng_outcome *o, int charge, const char *code,
			const char *error, const char *reason)
{
	outcome(o, ENG_OUT_FAILED, "failed", "message_failed");
	o->charge = charge;
	set_error(o, code, error);
	o->reason = reason;
}

void eng_outcome_handed_back(struct eng_outcome *o, const char *reason,
			     const char *code, const char *error)
{
	outcome(o, ENG_OUT_HANDED_BACK, "queued", "message_handed_back");
	if (code || error)
		set_error(o, code, error);
	o->reason = reason;
}

/* ---- the hourly cap -------------------------------------------------------- */

static int cmp_time(const void *a, const void *b)
{
	eng_time x = *(const eng_time *)a, y = *(const eng_time *)b;
	return (x > y) - (x < y);
}

/* The next "id:us" item of a list, or false at its end. */
static bool next_send(const char **p, long long *id, eng_time *at)
{
	if (!*p || !**p)
		return false;
	char *end;
	*id = strtoll(*p, &end, 10);
	*at = *end == ':' ? strtoll(end + 1, &end, 10) : 0;
	*p = *end == ',' ? end + 1 : end;
	return true;
}

eng_time eng_decide_cap(const char *db_sends, const struct eng_reservation *run,
			size_t nrun, int cap, eng_time now)
{
	size_t ndb = 0;
	long long id;
	eng_time at;
	for (const char *p = db_sends; next_send(&p, &id, &at);)
		ndb++;
	eng_time *all = eng_xcalloc(ndb + nrun + 1, sizeof(*all));
	long long *dbids = eng_xcalloc(ndb + 1, sizeof(*dbids));
	size_t n = 0;
	for (const char *p = db_sends; next_send(&p, &id, &at);) {
		dbids[n] = id;
		all[n++] = at;
	}
	for (size_t k = 0; k < nrun; k++) {
		bool known = false;
		for (size_t d = 0; d < ndb && !known; d++)
			known = dbids[d] == run[k].message_id;
		if (!known && run[k].at > now - 3600 * ENG_USEC_PER_SEC && run[k].at <= now)
			all[n++] = run[k].at;
	}
	qsort(all, n, sizeof(*all), cmp_time);
	eng_time free_at = now;
	if (cap > 0 && n >= (size_t)cap) {
		eng_time t = all[n - (size_t)cap] + 3600 * ENG_USEC_PER_SEC;
		if (t > now)
			free_at = t;
	}
	free(all);
	free(dbids);
	return free_at;
}

/* ---- template parameters ------------------------------------------------- */

void eng_decide_values_free(char **values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

bool eng_decide_params(const char *names, const char *params, char ***values,
		       size_t *n, char *why, size_t whysz)
{
	*values = NULL;
	*n = 0;
	json_error_t je;
	json_t *obj = json_loads(params ? params : "{}", 0, &je);
	bool ok = json_is_object(obj);
	if (!ok)
		snprintf(why, whysz, "params are not a JSON object");
	/* names: "{}" or "{activity_count,first_name}" (plain identifiers) */
	const char *p = names && *names == '{' ? names + 1 : "";
	while (ok && *p && *p != '}') {
		size_t len = strcspn(p, ",}");
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		json_t *v = json_object_get(obj, name);
		char buf[64];
		const char *text = NULL;
		if (json_is_string(v)) {
			text = json_string_value(v);
		} else if (json_is_integer(v)) {
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
			text = buf;
		} else if (json_is_real(v)) {
			snprintf(buf, sizeof(buf), "%g", json_real_value(v));
			text = buf;
		}
		if (!text) {
			snprintf(why, whysz, "the template needs parameter \"%s\", which "
				 "the message does not have", name);
			ok = false;
			break;
		}
		*values = eng_xrealloc(*values, (*n + 1) * sizeof(**values));
		(*values)[(*n)++] = eng_xstrdup(text);
	}
	json_decref(obj);
	if (!ok) {
		eng_decide_values_free(*values, *n);
		*values = NULL;
		*n = 0;
	}
	return ok;
}

/* ---- a claimed message ------------------------------------------------- */

bool eng_decide_claim(const struct eng_claim_row *m, const struct eng_reservation *run,
		      size_t nrun, int hourly_cap, struct eng_outcome *o,
		      char ***values, size_t *nvalues)
{
	*values = NULL;
	*nvalues = 0;
	/* 0. a late re-engagement message is worse than none */
	if (m->expired) {
		eng_outcome_cancelled(o, "expired", "expired before it could be sent");
		return false;
	}
	/* 0b. a goodbye to someone who came back: worse than none too */
	if (strcmp(m->message_type, "goodbye") == 0 && m->state &&
	    strcmp(m->state, "goodbye_sent") != 0) {
		eng_outcome_cancelled(o, "user_returned",
				      "the user wrote again before it was sent");
		return false;
	}
	/* 1. opted out now: never sent, even if queued before */
	if (m->opted_out) {
		eng_outcome_blocked(o);
		return false;
	}
	/* 2. quiet hours: back to the queue until the window ends */
	if (m->quiet_until > m->now) {
		eng_outcome_deferred(o, m->quiet_until, "quiet_hours");
		return false;
	}
	/* 3. the per-user hourly cap */
	eng_time free_at = eng_decide_cap(m->recent_sends, run, nrun, hourly_cap, m->now);
	if (free_at > m->now) {
		eng_outcome_deferred(o, free_at, "hourly_cap");
		return false;
	}
	/* 4. the template, in the user's language or the nearest one */
	char why[256];
	if (!m->tpl_name) {
		snprintf(why, sizeof(why),
			 "no active template \"%s\" for locale %s, its language or en",
			 m->template_key, m->locale);
		eng_outcome_failed(o, 0, "template", why, "template");
		return false;
	}
	if (!eng_decide_params(m->tpl_params, m->params, values, nvalues, why,
			       sizeof(why))) {
		eng_outcome_failed(o, 0, "template", why, "template");
		return false;
	}
	if (m->to_group && !m->group_id) {
		eng_decide_values_free(*values, *nvalues);
		*values = NULL;
		*nvalues = 0;
		eng_outcome_failed(o, 0, "no_group",
				   "the user prefers a group but has no group_id",
				   "no_group");
		return false;
	}
	return true;
}

/* ---- the fence ------------------------------------------------------------ */

/* How long a message the account's rules hold waits before it is claimed
 * again: a template not approved, the messaging limit used up. */
#define HELD_WAIT (5 * 60 * (eng_time)ENG_USEC_PER_SEC)

enum eng_fence_action eng_decide_fence(const char *verdict, eng_time now, long pair_ms,
				       struct eng_outcome *o)
{
	if (strcmp(verdict, "send") == 0)
		return ENG_FENCE_SEND;
	if (strcmp(verdict, "busy") == 0)
		return ENG_FENCE_RETRY;
	if (strcmp(verdict, "expired") == 0) {
		eng_outcome_cancelled(o, "expired", "expired before it could be sent");
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "opted_out") == 0) {
		eng_outcome_blocked(o);
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "paused") == 0) {
		/* back to the queue uncharged; the claim skips it while paused */
		eng_outcome_handed_back(o, "paused", NULL, NULL);
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "template_disabled") == 0) {
		eng_outcome_failed(o, 0, "template_disabled",
				   "WhatsApp disabled, rejected or deleted the template", NULL);
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "template_held") == 0 || strcmp(verdict, "limit") == 0) {
		eng_outcome_deferred(o, now + HELD_WAIT, verdict);
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "pair") == 0) {
		eng_outcome_deferred(o, now + (eng_time)pair_ms * 1000, "pair");
		return ENG_FENCE_RECORD;
	}
	if (strcmp(verdict, "user_returned") == 0) {
		eng_outcome_cancelled(o, "user_returned",
				      "the user wrote again before it was sent");
		return ENG_FENCE_RECORD;
	}
	return ENG_FENCE_DROP; /* lost, or anything this build does not know */
}

/* ---- an answer ---------------------------------------------------------------- */

void eng_decide_answer(const struct eng_wa_result *res, int attempts,
		       int max_attempts, eng_time now, double r01,
		       struct eng_outcome *o)
{
	switch (res->cls) {
	case ENG_WA_SENT:
		outcome(o, ENG_OUT_SENT, "sent", "message_sent");
		o->charge = 1;
		snprintf(o->wamid, sizeof(o->wamid), "%s", res->wamid);
		o->sent_at = now;
		break;
	case ENG_WA_FATAL:
		/* the whole run is refused: this one goes back uncharged too */
		eng_outcome_handed_back(o, "fatal", res->code_text, res->error);
		break;
	case ENG_WA_FAIL:
		eng_outcome_failed(o, 1, res->code_text, res->error, NULL);
		break;
	case ENG_WA_RETRY:
	case ENG_WA_DEFER:
		if (res->code == ENG_WA_TEMPLATE_PAUSED) {
			/* the template's fault, not the message's: back uncharged,
			 * to go when the template's pause (the write-back starts
			 * it) ends */
			eng_outcome_handed_back(o, "template_paused", res->code_text,
						res->error);
			break;
		}
		if (attempts + 1 >= max_attempts) {
			eng_outcome_failed(o, 1, res->code_text, res->error, "max_attempts");
			break;
		}
		if (res->cls == ENG_WA_RETRY)
			outcome(o, ENG_OUT_RETRIED, "queued", "message_retry");
		else
			outcome(o, ENG_OUT_DEFERRED, "queued", "message_deferred");
		o->charge = 1;
		set_error(o, res->code_text, res->error);
		o->next = now + eng_wa_backoff(res->cls, res->code, attempts + 1, r01);
		break;
	}
	o->at = now;
	if (o->kind != ENG_OUT_HANDED_BACK || res->code == ENG_WA_TEMPLATE_PAUSED) {
		o->attempt = attempts + 1;
		o->http_status = res->http_status;
		o->error_code = res->code;
	}
}
