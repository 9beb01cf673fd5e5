/*
 * The re-engagement opt-out, from any channel, last write wins by the time
 * the person made the change (DESIGN.md §2.3 optout-set). Used by
 * optout-set and by queue-send when WhatsApp answers 131050.
 *
 * A change applies only if `at` is not older than the stored
 * reengagement_opt_out_updated_at (ties apply). Outcomes: applied (the value
 * changed: column, timestamp, source, an audit_log row, an outbox event and
 * a NOTIFY on engagement_preferences, all in the caller's transaction),
 * unchanged (same value: the timestamp and source move forward and the
 * audit log records the reaffirmation, nothing is published) and stale
 * (older than what is stored: nothing is written).
 *
 * A change dated more than ENG_FUTURE_SKEW_S ahead of the database's clock
 * is refused (a channel with a wrong clock would otherwise freeze the
 * preference until then, "stop" included).
 */
#ifndef ENG_OPTOUT_H
#define ENG_OPTOUT_H

#include <stdbool.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_job.h"
#include "eng_time.h"
#include "eng_users.h"

enum eng_optout_outcome {
	ENG_OPTOUT_APPLIED,
	ENG_OPTOUT_UNCHANGED,
	ENG_OPTOUT_STALE,
	ENG_OPTOUT_DUPLICATE, /* its event id was applied before: nothing written */
};

struct eng_optout_change {
	const char *user_id;    /* a validated UUID */
	bool opt_out;
	const char *source;     /* whatsapp, web, cli or api */
	eng_time at;            /* ENG_TIME_NONE: the database's now() */
	const char *reason;     /* free text for the consent record, or NULL */
	const char *event_id;   /* its identity (a wamid, a batch line's id), or NULL */
	const char *phrase_locale; /* ENG_VIA_WHATSAPP: the phrase's language */
};

const char *eng_optout_outcome_name(enum eng_optout_outcome o);
/* The channels a change comes from: whatsapp, web, cli, api. */
#define ENG_OPTOUT_NSOURCES 4
extern const char *const eng_optout_sources[ENG_OPTOUT_NSOURCES];
/* true when s is one of them */
bool eng_optout_source_valid(const char *s);

struct eng_optout_result {
	enum eng_optout_outcome outcome;
	bool found;             /* false: no such user (nothing written) */
	bool future;            /* at is over ENG_FUTURE_SKEW_S ahead of the
				 * database clock: refused, nothing written */
	bool old_value;
	eng_time at;            /* the instant the change carries */
};

/* Which SQL function applies changes (migration 0014): any channel's
 * change with its reason (engagement.change_preferences: optout-set), or a
 * phrase in a person's own WhatsApp message (engagement.
 * record_whatsapp_preferences: source whatsapp and the consent record's
 * words chosen by the database, the phrase's language given). A stop the
 * provider reported (131050) is recorded by the sender's and the webhook's
 * own functions, from what the provider said. */
enum eng_optout_via { ENG_VIA_CHANGE, ENG_VIA_WHATSAPP };

/* Apply n changes in one statement (run inside a transaction), in order
 * (one person's several in order); res[i] for c[i]. */
enum eng_status eng_optout_apply_many(struct eng_db *db, enum eng_optout_via via,
				      const char *run_id, const struct eng_optout_change *c,
				      size_t n, struct eng_optout_result *res,
				      struct eng_err *err);

/* One change; ENG_ENOUSER when the user does not exist. */
enum eng_status eng_optout_apply(struct eng_db *db, const char *run_id,
				 const struct eng_optout_change *c,
				 struct eng_optout_result *res,
				 struct eng_err *err);

/* A change read from a batch line (optout-set --batch). */
struct eng_optout_item {
	long line;
	struct eng_user_ref who;
	bool opt_out;
	char source[16];
	eng_time at;          /* ENG_TIME_NONE: the database's now() */
	char *reason;         /* owned, may be NULL */
	char phrase_locale[16]; /* ENG_VIA_WHATSAPP: the phrase's language */
	char id[ENG_EVENT_ID_MAX + 1]; /* its "id", or "" */
	bool failed;
	struct eng_err err;
	struct eng_optout_result res;
};

/* {"user_id"|"phone", "opt_out": bool, "source": ..., "at": ...,
 * "reason": ...}: ENG_EDATA with a message on a malformed line. */
enum eng_status eng_optout_parse_json(const char *text, size_t len,
				      struct eng_optout_item *it,
				      struct eng_err *err);
void eng_optout_item_release(struct eng_optout_item *it);

/* Apply n items in order (see eng_items_apply). Items [0, *done) each got
 * res or failed; the rest were not applied (a fatal error). */
enum eng_status eng_optout_apply_items(struct eng_db *db, enum eng_optout_via via,
				       struct eng_optout_item *it, size_t n,
				       const char *run_id, bool dry_run,
				       size_t *done, struct eng_err *err);

/* optout-set with one change named on the command line. */
struct eng_optout_args {
	const char *user, *phone;
	bool opt_out;
	const char *text, *locale; /* a phrase instead of opt_out */
	const char *source, *at, *reason;
};

struct eng_optout_request {
	struct eng_user_ref who;
	bool opt_out;
	const char *source;
	eng_time at;               /* ENG_TIME_NONE: the database's now() */
	char reason[1024];   /* --reason (500), the phrase (200), the locale (35) */
};

/* The arguments' data into rq: ENG_EDATA when the UUID, phone or
 * timestamp is malformed (event invalid_input) or the phrase unknown
 * (unknown_phrase). */
enum eng_status eng_optout_from_args(const struct eng_optout_args *a,
				     struct eng_optout_request *rq, struct eng_err *err);
/* Apply it (rolled back in a dry run) and report the outcome in the
 * summary. ENG_ENOUSER when there is no such user. */
enum eng_status eng_optout_set(const struct eng_job *job, struct eng_optout_request *rq,
			       struct eng_err *err);
/* optout-set --show: the person's preferences, in the summary. */
enum eng_status eng_optout_show(const struct eng_job *job, struct eng_user_ref *who,
				struct eng_err *err);
/* optout-set --batch PATH. */
enum eng_status eng_optout_batch(const struct eng_job *job, const char *path,
				 struct eng_err *err);

#endif
