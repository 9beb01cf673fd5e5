/*
 * queue-send's decisions about one message, as pure functions (no I/O, no
 * clock, no randomness of their own): what a claimed message's checks say
 * (DESIGN.md §2.3, steps 0-4), what the pre-send fence's verdict means, and
 * what an answer of the Cloud API does to the message. Each produces an
 * outcome: the row queue-send writes back.
 */
#ifndef ENG_DECIDE_H
#define ENG_DECIDE_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_time.h"
#include "eng_wa.h"

/* What a claimed message's row becomes. */
enum eng_outcome_kind {
	ENG_OUT_SENT,
	ENG_OUT_RETRIED,     /* back to queued after a transient error */
	ENG_OUT_DEFERRED,    /* back to queued: rate limit, quiet hours, cap */
	ENG_OUT_FAILED,
	ENG_OUT_BLOCKED,
	ENG_OUT_CANCELLED,
	ENG_OUT_HANDED_BACK, /* back to queued, uncharged: the run let it go */
};

struct eng_outcome {
	enum eng_outcome_kind kind;
	const char *status;  /* queued, sent, failed, blocked, cancelled */
	int charge;          /* attempts to add */
	eng_time next;       /* next_attempt_at, or 0 to keep it */
	const char *code;    /* last_error_code, or NULL */
	char error[256];     /* last_error, "" for none */
	char wamid[160];     /* provider_message_id when sent */
	eng_time sent_at;
	eng_time at;         /* when the answer came (a 131050 is dated so), or 0 */
	const char *event;   /* the audit_log event */
	const char *reason;  /* the audit row's details.reason, or NULL */
	eng_time until;      /* details.until of a deferral, or 0 */
	int attempt;         /* details.attempt of a request, or 0 */
	long http_status;    /* of a request, or 0 */
	long error_code;     /* error.code of the answer, or 0 */
	double latency_ms;   /* of a request, or 0 */
};

/* Outcomes that need no decision. */
void eng_outcome_cancelled(struct eng_outcome *o, const char *code,
			   const char *error);
void eng_outcome_blocked(struct eng_outcome *o);
void eng_outcome_deferred(struct eng_outcome *o, eng_time until,
			  const char *reason);
void eng_outcome_failed(struct eng_outcome *o, int charge, const char *code,
			const char *error, const char *reason);
/* Back to the queue, no attempt charged: reason says why (fatal, signal,
 * max_seconds, lease, unreachable, fence, internal). */
void eng_outcome_handed_back(struct eng_outcome *o, const char *reason,
			     const char *code, const char *error);

/* One claimed message, as the claim reads it (strings borrowed from the
 * claim's result). */
struct eng_claim_row {
	long long id;
	const char *user_id, *message_type, *template_key, *params;
	int attempts, max_attempts;
	bool expired;             /* past expires_at */
	bool opted_out;
	eng_time quiet_until;     /* the end of the quiet window it is in, or 0 */
	const char *recent_sends; /* the user's sends in the last hour as
				   * "id:epoch_us,..." (at most the cap) */
	const char *phone;
	bool to_group;
	const char *group_id;     /* NULL: none */
	const char *tpl_name;     /* NULL: no active template */
	const char *tpl_language, *tpl_params; /* param_names as "{a,b}" */
	const char *locale;
	const char *state;        /* NULL: no state row */
	eng_time now;             /* the claim's decision instant */
};

/* This run's sends to one user not yet written back (instants). */
struct eng_reservation {
	long long message_id;
	eng_time at;
};

/* When a user may next be sent a message under the hourly cap: now if
 * fewer than cap sends fall in (now - 1 h, now], else when the oldest that
 * must leave the window leaves it. db_sends: the database's list as in
 * eng_claim_row.recent_sends; run: this run's reservations for the user
 * (those already in the database's list are counted once). */
eng_time eng_decide_cap(const char *db_sends, const struct eng_reservation *run,
			size_t nrun, int cap, eng_time now);

/* The template's parameter values from the message's params, in the
 * template's order ("{a,b}"). false with why filled when params is not an
 * object or lacks one. *values (n strings) is the caller's to free with
 * eng_decide_values_free. */
bool eng_decide_params(const char *names, const char *params, char ***values,
		       size_t *n, char *why, size_t whysz);
void eng_decide_values_free(char **values, size_t n);

/* The checks of a claimed message, in order: expired -> cancelled; a
 * goodbye whose user is no longer in goodbye_sent -> cancelled; opted out
 * -> blocked; quiet hours -> deferred to the window's end; over the hourly
 * cap -> deferred; no template, a missing parameter or a group without an
 * id -> failed. Returns true when the message is to be sent: then *values
 * holds the template's parameters. Otherwise *o is its outcome. */
bool eng_decide_claim(const struct eng_claim_row *m, const struct eng_reservation *run,
		      size_t nrun, int hourly_cap, struct eng_outcome *o,
		      char ***values, size_t *nvalues);

/* The pre-send fence's verdict on one message. */
enum eng_fence_action {
	ENG_FENCE_SEND,   /* go */
	ENG_FENCE_RECORD, /* *o is its outcome: cancelled, blocked, failed
			   * (template_disabled), handed back (paused) or
			   * deferred, uncharged (template_held, pair, limit) */
	ENG_FENCE_RETRY,  /* a concurrent writer holds the row: ask again */
	ENG_FENCE_DROP,   /* not ours any more: neither sent nor written */
};
enum eng_fence_action eng_decide_fence(const char *verdict, eng_time now, long pair_ms,
				       struct eng_outcome *o);

/* What an answer (or a transport failure) does to a message that had
 * `attempts` attempts before this one: sent; FAIL -> failed; RETRY and
 * DEFER -> queued with backoff (jitter r01 in [0, 1)), failed once
 * max_attempts are used; FATAL -> handed back uncharged (the caller stops
 * the run). `now` is when the answer arrived. */
void eng_decide_answer(const struct eng_wa_result *res, int attempts,
		       int max_attempts, eng_time now, double r01,
		       struct eng_outcome *o);

#endif
