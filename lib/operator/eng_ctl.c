#include "eng_ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_db.h"
#include "eng_history.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_parse.h"

/* ---- the command line --------------------------------------------------------- */

/* The options a command may take, one bit each, in the order of
 * option_names. */
enum {
	T_TYPE = 1u << 0,
	T_TEMPLATE = 1u << 1,
	T_UNTIL = 1u << 2,
	T_SINCE = 1u << 3,
	T_REASON = 1u << 4,
	T_STATUS = 1u << 5,
	T_ERROR = 1u << 6,
	T_USER = 1u << 7,
	T_PHONE = 1u << 8,
	T_KEY = 1u << 9,
	T_UNMASK = 1u << 10,
	T_DRYRUN = 1u << 11,
	T_TIER = 1u << 12,
	T_CHANGE = T_REASON | T_DRYRUN, /* what every changing command takes */
};

static const char *const option_names[] = {
	"--type", "--template", "--until", "--since", "--reason", "--status",
	"--error", "--user", "--phone", "--key", "--unmask", "--dry-run", "--tier",
};

#define NOPTIONS (sizeof(option_names) / sizeof(*option_names))

static const struct {
	const char *name;
	enum eng_ctl_cmd cmd;
	unsigned takes;
} commands[] = {
	{"pause", ENG_CTL_PAUSE, T_TYPE | T_TEMPLATE | T_UNTIL | T_CHANGE},
	{"resume", ENG_CTL_RESUME, T_TYPE | T_TEMPLATE | T_CHANGE},
	{"pauses", ENG_CTL_PAUSES, 0},
	{"requeue", ENG_CTL_REQUEUE, T_STATUS | T_ERROR | T_TYPE | T_SINCE | T_UNTIL | T_CHANGE},
	{"cancel", ENG_CTL_CANCEL, T_TYPE | T_TEMPLATE | T_USER | T_PHONE | T_KEY | T_CHANGE},
	{"limit", ENG_CTL_LIMIT, T_TIER | T_CHANGE},
	{"show", ENG_CTL_SHOW, T_USER | T_PHONE | T_UNMASK},
};

#define NCOMMANDS (sizeof(commands) / sizeof(*commands))
#define COMMAND_LIST "pause, resume, pauses, requeue, cancel, limit or show"

/* The options given (T_*). */
static unsigned given(const struct eng_ctl_args *a)
{
	const bool set[NOPTIONS] = {
		a->type != NULL, a->template_key != NULL, a->until != NULL, a->since != NULL,
		a->reason != NULL, a->status != NULL, a->nerrors > 0, a->user != NULL,
		a->phone != NULL, a->key != NULL, a->unmask, a->dry_run, a->tier != NULL,
	};
	unsigned g = 0;
	for (size_t i = 0; i < NOPTIONS; i++)
		if (set[i])
			g |= 1u << i;
	return g;
}

/* "cancel does not take --until, --status" */
static enum eng_status refuse(const char *cmd, unsigned extra, struct eng_err *err)
{
	char list[256] = "";
	size_t len = 0;
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (!(extra & (1u << i)))
			continue;
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
				 option_names[i]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	return eng_err_set(err, ENG_EUSAGE, "%s does not take %s", cmd, list);
}

static enum eng_status instant(const char *name, const char *text, eng_time *t,
			       struct eng_err *err)
{
	*t = ENG_TIME_NONE;
	if (text && eng_time_parse(text, t)) {
		eng_err_set(err, ENG_EDATA,
			    "invalid --%s \"%.40s\": expected an RFC 3339 timestamp "
			    "such as 2026-11-22T06:00:00Z",
			    name, text);
		return eng_err_event(err, "invalid_input");
	}
	return ENG_OK;
}

enum eng_status eng_ctl_add_error(struct eng_ctl *c, const char *code, struct eng_err *err)
{
	size_t n = strlen(code);
	if (n < 1 || n > 64)
		return eng_err_set(err, ENG_EUSAGE, "invalid --error: expected 1 to 64 bytes");
	if (c->a.nerrors == ENG_CTL_MAX_ERRORS)
		return eng_err_set(err, ENG_EUSAGE, "--error given more than %d times",
				   ENG_CTL_MAX_ERRORS);
	c->a.errors[c->a.nerrors++] = code;
	return ENG_OK;
}

static enum eng_status usage(struct eng_err *err, const char *msg)
{
	return eng_err_set(err, ENG_EUSAGE, "%s", msg);
}

/* How the options combine with the command. */
static enum eng_status check_options(struct eng_ctl *c, unsigned takes, struct eng_err *err)
{
	const struct eng_ctl_args *a = &c->a;
	unsigned extra = given(a) & ~takes;
	if (extra)
		return refuse(c->name, extra, err);
	bool one_scope = c->cmd == ENG_CTL_PAUSE || c->cmd == ENG_CTL_RESUME;
	if (one_scope && a->type && a->template_key)
		return usage(err, "give --type or --template, not both: a pause holds one or "
				  "the other (neither: everything)");
	if (c->cmd == ENG_CTL_PAUSE && !a->reason)
		return usage(err, "pause needs --reason TEXT (it goes to the audit log)");
	if (c->cmd == ENG_CTL_LIMIT && !a->tier)
		return usage(err, "limit needs --tier TIER_250, TIER_2K, TIER_10K, TIER_100K or "
				  "TIER_UNLIMITED");
	if (c->cmd == ENG_CTL_REQUEUE && !a->status)
		return usage(err, "requeue needs --status failed or --status queued");
	if (c->cmd == ENG_CTL_CANCEL &&
	    !(a->type || a->template_key || a->user || a->phone || a->key))
		return usage(err, "cancel needs a filter: --type, --template, --user, --phone "
				  "or --key");
	if (c->cmd == ENG_CTL_SHOW && !a->user && !a->phone)
		return usage(err, "show needs --user UUID or --phone E164");
	if (a->user && a->phone)
		return usage(err, "give --user or --phone, not both");
	return ENG_OK;
}

enum eng_status eng_ctl_check(struct eng_ctl *c, int argc, char *const *argv,
			      struct eng_err *err)
{
	if (argc < 1)
		return usage(err, "missing command: " COMMAND_LIST);
	size_t i = 0;
	while (i < NCOMMANDS && strcmp(argv[0], commands[i].name) != 0)
		i++;
	if (i == NCOMMANDS)
		return eng_err_set(err, ENG_EUSAGE, "unknown command \"%.40s\": use " COMMAND_LIST,
				   argv[0]);
	if (argc > 1)
		return eng_err_set(err, ENG_EUSAGE, "unexpected argument \"%.40s\"", argv[1]);
	c->cmd = commands[i].cmd;
	c->name = commands[i].name;
	if (check_options(c, commands[i].takes, err) ||
	    instant("since", c->a.since, &c->since, err) ||
	    instant("until", c->a.until, &c->until, err))
		return err->status;
	c->person = c->a.user || c->a.phone;
	/* a malformed UUID or phone: 65, as every program (DESIGN.md §2.2) */
	if (c->person && eng_user_ref_from_args(c->a.user, c->a.phone, &c->who, err))
		return err->status;
	return ENG_OK;
}

void eng_ctl_release(struct eng_ctl *c)
{
	free(c->output);
	c->output = NULL;
}

/* ---- the commands ------------------------------------------------------------- */

/* End the transaction a statement ran in: commit, or roll back in a dry run
 * or when it failed (*r NULL). */
static enum eng_status end_tx(const struct eng_job *job, PGresult **r, struct eng_err *err)
{
	if (!*r || job->dry_run) {
		eng_db_rollback(job->db);
		return *r ? ENG_OK : err->status;
	}
	if (eng_db_commit(job->db, err)) {
		PQclear(*r);
		*r = NULL;
		return err->status;
	}
	return ENG_OK;
}

/* One call in a transaction of its own. */
static enum eng_status transact(const struct eng_job *job, const char *sql, int n,
				const char *const *p, PGresult **r, struct eng_err *err)
{
	*r = NULL;
	if (eng_db_begin(job->db, err))
		return err->status;
	*r = eng_db_query(job->db, sql, n, p, err);
	return end_tx(job, r, err);
}

static long long int_at(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* pause and resume: everything, a message type or a template key */
static const char *scope_of(const struct eng_ctl *c, const char **value)
{
	*value = c->a.type ? c->a.type : c->a.template_key;
	return c->a.type ? "type" : c->a.template_key ? "template" : "all";
}

static void set_scope(const struct eng_job *job, const char *scope, const char *value)
{
	eng_job_set_str(job, "scope", scope);
	if (value)
		eng_job_set_str(job, "value", value);
}

static enum eng_status ctl_pause(const struct eng_job *job, const struct eng_ctl *c,
			     struct eng_err *err)
{
	const char *value, *scope = scope_of(c, &value);
	char until[32];
	if (c->until != ENG_TIME_NONE)
		eng_time_format(c->until, until);
	const char *p[] = {scope, value, c->until != ENG_TIME_NONE ? until : NULL, c->a.reason};
	PGresult *r;
	if (transact(job, "SELECT pause_id, created, waited FROM engagement.pause_sending("
			  "$1, $2, $3::timestamptz, $4)",
		     4, p, &r, err))
		return err->status;
	long long id = int_at(r, 0, 0), waited = int_at(r, 0, 2);
	bool created = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	PQclear(r);
	set_scope(job, scope, value);
	if (c->until != ENG_TIME_NONE) {
		eng_time_format_ms(c->until, until);
		eng_job_set_str(job, "until", until);
	}
	eng_job_set_int(job, "pause_id", id);
	json_object_set_new(job->summary, "created", json_boolean(created));
	eng_job_set_int(job, "waited_for_claims", waited);
	eng_log(ENG_INFO, "sending_paused", ENG_I("pause_id", id), ENG_S("scope", scope),
		ENG_S("value", value), ENG_B("created", created), ENG_I("waited_for_claims", waited),
		ENG_B("dry_run", job->dry_run));
	return ENG_OK;
}

static enum eng_status ctl_resume(const struct eng_job *job, const struct eng_ctl *c,
			      struct eng_err *err)
{
	const char *value, *scope = scope_of(c, &value);
	const char *p[] = {scope, value, c->a.reason};
	PGresult *r;
	if (transact(job, "SELECT pause_id FROM engagement.resume_sending($1, $2, $3)", 3, p, &r,
		     err))
		return err->status;
	json_t *ids = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(ids, json_integer(int_at(r, i, 0)));
	int n = PQntuples(r);
	PQclear(r);
	set_scope(job, scope, value);
	eng_job_set_int(job, "resumed", n);
	json_object_set_new(job->summary, "ids", ids);
	eng_log(ENG_INFO, "sending_resumed", ENG_S("scope", scope), ENG_S("value", value),
		ENG_I("resumed", n), ENG_B("dry_run", job->dry_run));
	return ENG_OK;
}

/* One row of jsonb into *v (json_decref it). */
static enum eng_status json_value(PGresult *r, json_t **v, struct eng_err *err)
{
	json_error_t je;
	*v = json_loads(PQgetvalue(r, 0, 0), 0, &je);
	PQclear(r);
	if (!*v)
		return eng_err_set(err, ENG_EINTERNAL, "the database's JSON did not parse: %s",
				   je.text);
	return ENG_OK;
}

#define UTC_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static enum eng_status ctl_pauses(const struct eng_job *job, struct eng_err *err)
{
	PGresult *r = eng_db_query(
		job->db,
		"SELECT coalesce(json_agg(json_build_object('id', p.id, 'scope', p.scope,"
		"    'value', p.value, 'reason', p.reason, 'source', p.source,"
		"    'paused_by', p.paused_by, 'paused_at', " UTC_MS("p.paused_at") ","
		"    'until', " UTC_MS("p.until") ","
		"    'age_s', floor(extract(epoch FROM now() - p.paused_at))::bigint)"
		"  ORDER BY p.id), '[]')"
		" FROM engagement.send_pauses p"
		" WHERE p.resumed_at IS NULL AND (p.until IS NULL OR p.until > now())",
		0, NULL, err);
	json_t *list;
	if (!r || json_value(r, &list, err))
		return err->status;
	eng_history_mask(list); /* what people typed: shown as a log shows it */
	eng_log(ENG_INFO, "pauses_listed", ENG_I("active", json_array_size(list)));
	json_object_set_new(job->summary, "pauses", list);
	return ENG_OK;
}

static enum eng_status ctl_requeue(const struct eng_job *job, const struct eng_ctl *c,
			       struct eng_err *err)
{
	char since[32], until[32];
	if (c->since != ENG_TIME_NONE)
		eng_time_format(c->since, since);
	if (c->until != ENG_TIME_NONE)
		eng_time_format(c->until, until);
	char *errors = c->a.nerrors ? eng_db_text_array(c->a.errors, c->a.nerrors) : NULL;
	const char *p[] = {c->a.status, errors, c->a.type,
			   c->since != ENG_TIME_NONE ? since : NULL,
			   c->until != ENG_TIME_NONE ? until : NULL, c->a.reason};
	PGresult *r;
	enum eng_status st = transact(job,
				      "SELECT outcome, n FROM engagement.requeue_messages($1,"
				      " $2::text[], $3, $4::timestamptz, $5::timestamptz, $6)",
				      6, p, &r, err);
	free(errors);
	if (st)
		return st;
	long long requeued = 0;
	json_t *skipped = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		if (strcmp(PQgetvalue(r, i, 0), "requeued") == 0)
			requeued = int_at(r, i, 1);
		else
			json_object_set_new(skipped, PQgetvalue(r, i, 0),
					    json_integer(int_at(r, i, 1)));
	}
	PQclear(r);
	eng_job_set_int(job, "requeued", requeued);
	json_object_set_new(job->summary, "skipped", skipped);
	eng_log(ENG_INFO, "messages_requeued", ENG_S("from", c->a.status),
		ENG_I("requeued", requeued),
		ENG_I("opted_out", json_integer_value(json_object_get(skipped, "opted_out"))),
		ENG_I("expired", json_integer_value(json_object_get(skipped, "expired"))),
		ENG_I("user_returned", json_integer_value(json_object_get(skipped, "user_returned"))),
		ENG_B("dry_run", job->dry_run));
	return ENG_OK;
}

/* The document's person's id ("" when it has none). */
static const char *user_id_of(const json_t *doc)
{
	const char *id = json_string_value(json_object_get(json_object_get(doc, "user"), "id"));
	return id ? id : "";
}

/* The person named, looked up through the one read the role has of people
 * (person_history): its id into c->who. */
static enum eng_status find_person(const struct eng_job *job, struct eng_ctl *c,
				   struct eng_err *err)
{
	json_t *doc;
	if (eng_history_fetch(job->db, &c->who, 1, &doc, err))
		return err->status;
	snprintf(c->who.user_id, sizeof(c->who.user_id), "%s", user_id_of(doc));
	json_decref(doc);
	eng_job_set_str(job, "user_id", c->who.user_id);
	return ENG_OK;
}

static enum eng_status ctl_cancel(const struct eng_job *job, struct eng_ctl *c,
				  struct eng_err *err)
{
	PGresult *r = NULL;
	if (eng_db_begin(job->db, err))
		return err->status;
	if (!c->person || find_person(job, c, err) == ENG_OK) {
		const char *p[] = {c->a.type, c->a.template_key,
				   c->person ? c->who.user_id : NULL, c->a.key, c->a.reason};
		r = eng_db_query(job->db,
				 "SELECT cancelled, in_flight FROM engagement.cancel_messages("
				 "$1, $2, $3::uuid, $4, $5)",
				 5, p, err);
	}
	if (end_tx(job, &r, err))
		return err->status;
	long long n = int_at(r, 0, 0), held = int_at(r, 0, 1);
	PQclear(r);
	eng_job_set_int(job, "cancelled", n);
	eng_job_set_int(job, "in_flight", held);
	eng_log(ENG_INFO, "messages_cancelled", ENG_I("cancelled", n), ENG_I("in_flight", held),
		ENG_B("dry_run", job->dry_run));
	return ENG_OK;
}

static enum eng_status ctl_limit(const struct eng_job *job, const struct eng_ctl *c,
			       struct eng_err *err)
{
	const char *p[] = {c->a.tier, c->a.reason};
	PGresult *r;
	if (transact(job, "SELECT tier, max_recipients_24h, reached_24h"
			  " FROM engagement.set_messaging_limit($1, $2)",
		     2, p, &r, err))
		return err->status;
	long long max = PQgetisnull(r, 0, 1) ? -1 : int_at(r, 0, 1), reached = int_at(r, 0, 2);
	PQclear(r);
	eng_job_set_str(job, "tier", c->a.tier);
	/* TIER_UNLIMITED: no number */
	json_object_set_new(job->summary, "max_recipients_24h",
			    max < 0 ? json_null() : json_integer(max));
	eng_job_set_int(job, "reached_24h", reached);
	eng_log(ENG_INFO, "messaging_limit_set", ENG_S("tier", c->a.tier),
		ENG_I("max_recipients_24h", max), ENG_I("reached_24h", reached),
		ENG_B("dry_run", job->dry_run));
	return ENG_OK;
}

static enum eng_status ctl_show(const struct eng_job *job, struct eng_ctl *c,
				struct eng_err *err)
{
	json_t *doc;
	if (eng_history_fetch(job->db, &c->who, 0, &doc, err))
		return err->status;
	const char *id = user_id_of(doc);
	eng_job_set_str(job, "user_id", id);
	eng_log(ENG_INFO, "person_shown", ENG_S("user_id", id), ENG_B("unmasked", c->a.unmask));
	if (!c->a.unmask)
		eng_history_mask(doc);
	/* the document is the summary's (one JSON object on stdout), or a
	 * timeline for a person at a terminal instead */
	static const char *const parts[] = {"user", "preferences", "state", "transitions",
					    "messages", "consent", "audit", "inbound_events"};
	if (c->format == ENG_CTL_TIMELINE)
		c->output = eng_history_timeline(doc);
	else /* in the order a person reads them (jsonb's is by length) */
		for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++)
			json_object_set(job->summary, parts[i], json_object_get(doc, parts[i]));
	json_decref(doc);
	return ENG_OK;
}

enum eng_status eng_ctl_run(const struct eng_job *job, struct eng_ctl *c, struct eng_err *err)
{
	enum eng_status st = ENG_EINTERNAL;
	switch (c->cmd) {
	case ENG_CTL_PAUSE: st = ctl_pause(job, c, err); break;
	case ENG_CTL_RESUME: st = ctl_resume(job, c, err); break;
	case ENG_CTL_PAUSES: st = ctl_pauses(job, err); break;
	case ENG_CTL_REQUEUE: st = ctl_requeue(job, c, err); break;
	case ENG_CTL_CANCEL: st = ctl_cancel(job, c, err); break;
	case ENG_CTL_LIMIT: st = ctl_limit(job, c, err); break;
	case ENG_CTL_SHOW: st = ctl_show(job, c, err); break;
	}
	/* the database's rules refused it: say so as such */
	if (st == ENG_EDATA && !err->event[0])
		eng_err_event(err, "action_refused");
	return st;
}
