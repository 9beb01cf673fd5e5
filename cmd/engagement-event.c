/* engagement-event: record inbound activity and goodbye replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_event.h"
#include "eng_lines.h"
#include "eng_state.h"

static const char usage[] =
	"Usage: engagement-event (--user UUID | --phone E164)\n"
	"                        (--activity | --goodbye-reply 1|2|3 | --trigger NAME)\n"
	"                        [--at RFC3339] [OPTION]...\n"
	"       engagement-event --batch FILE|- [OPTION]...\n"
	"Record an inbound event. --activity records the user's activity, moves\n"
	"last_activity_at forward and brings a goodbye_sent, help_flow,\n"
	"remind_later or dormant user back to active. --goodbye-reply answers the\n"
	"goodbye (1 confused -> help_flow, 2 busy -> remind_later, 3 all good ->\n"
	"dormant). --trigger makes any transition by name: inactivity_14d,\n"
	"user_message, goodbye_response_1..3, goodbye_timeout, reminder_due.\n"
	"\n"
	"--batch reads JSON lines, one event each, in order:\n"
	"  {\"user_id\": \"...\" | \"phone\": \"+...\",\n"
	"   \"activity\": true | \"goodbye_reply\": 1|2|3 | \"trigger\": \"NAME\",\n"
	"   \"at\": \"RFC3339\" (optional)}\n"
	"A bad line is reported with its number; the others still apply.\n"
	"\n"
	"Options:\n"
	"      --at RFC3339      when the event happened (default: now)\n"
	"      --now RFC3339     evaluate as if it were this instant\n"
	"      --dry-run         report what would happen, change nothing\n"
	"      --db CONNINFO     libpq connection string or URI\n"
	"      --log-level LEVEL debug, info, warn or error (default info)\n"
	"      --help            show this help and exit\n"
	"      --version         show the version and exit\n"
	"\n"
	"Exit status: 0 applied; 1 (--batch) some lines failed; 64 bad command\n"
	"line; 65 malformed UUID, phone or timestamp, or an invalid transition\n"
	"(nothing changed); 67 no such user; 75 database unreachable or\n"
	"interrupted; 77 credentials refused; 78 configuration or schema.\n";

enum {
	OPT_USER = 1, OPT_PHONE, OPT_ACTIVITY, OPT_REPLY, OPT_TRIGGER, OPT_AT,
	OPT_BATCH,
};

static const struct option opts[] = {
	{"user", required_argument, NULL, OPT_USER},
	{"phone", required_argument, NULL, OPT_PHONE},
	{"activity", no_argument, NULL, OPT_ACTIVITY},
	{"goodbye-reply", required_argument, NULL, OPT_REPLY},
	{"trigger", required_argument, NULL, OPT_TRIGGER},
	{"at", required_argument, NULL, OPT_AT},
	{"batch", required_argument, NULL, OPT_BATCH},
	{NULL, 0, NULL, 0},
};

struct ctx {
	const char *user, *phone, *at, *batch;
	int actions;
	bool activity;
	int trigger;
};

static enum eng_status on_opt(void *p, int opt, const char *arg,
			      struct eng_err *err)
{
	struct ctx *c = p;
	long long v;
	switch (opt) {
	case OPT_USER: c->user = arg; return ENG_OK;
	case OPT_PHONE: c->phone = arg; return ENG_OK;
	case OPT_AT: c->at = arg; return ENG_OK;
	case OPT_BATCH: c->batch = arg; return ENG_OK;
	case OPT_ACTIVITY:
		c->actions++;
		c->activity = true;
		return ENG_OK;
	case OPT_REPLY:
		if (eng_parse_int(arg, 1, 3, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --goodbye-reply \"%s\": use 1, 2 or 3",
					   arg);
		c->actions++;
		c->trigger = ENG_TR_GOODBYE_RESPONSE_1 + (int)v - 1;
		return ENG_OK;
	case OPT_TRIGGER:
		c->trigger = eng_trigger_parse(arg);
		if (c->trigger < 0)
			return eng_err_set(err, ENG_EUSAGE,
					   "unknown --trigger \"%s\": use inactivity_14d, "
					   "user_message, goodbye_response_1..3, "
					   "goodbye_timeout or reminder_due",
					   arg);
		c->actions++;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

static const char *action_name(const struct eng_event *e)
{
	return e->activity ? "activity" : eng_trigger_name(e->trigger);
}

static const char *outcome_name(enum eng_ev_outcome o)
{
	switch (o) {
	case ENG_EV_TRANSITIONED: return "transitioned";
	case ENG_EV_RECORDED: return "recorded";
	case ENG_EV_FAILED: return "failed";
	case ENG_EV_PENDING: break;
	}
	return "pending";
}

static int run_single(struct eng_run *run, struct ctx *c)
{
	struct eng_err err = ENG_ERR_INIT;
	struct eng_event ev;
	memset(&ev, 0, sizeof(ev));

	/* Bad data in the arguments: 65, before touching the database. */
	if (c->user && eng_parse_uuid(c->user, ev.who.user_id)) {
		eng_err_set(&err, ENG_EDATA, "invalid --user \"%.60s\": not a UUID",
			    c->user);
		return eng_run_fail_event(run, "invalid_input", &err);
	}
	if (c->phone) {
		if (!eng_is_e164(c->phone)) {
			eng_err_set(&err, ENG_EDATA,
				    "invalid --phone: not an E.164 number (a + and "
				    "8 to 15 digits, the first not 0)");
			return eng_run_fail_event(run, "invalid_input", &err);
		}
		snprintf(ev.who.phone, sizeof(ev.who.phone), "%s", c->phone);
	}
	if (c->at && eng_time_parse(c->at, &ev.at)) {
		eng_err_set(&err, ENG_EDATA,
			    "invalid --at \"%.60s\": expected an RFC 3339 timestamp "
			    "such as 2026-11-22T06:00:00Z",
			    c->at);
		return eng_run_fail_event(run, "invalid_input", &err);
	}
	ev.activity = c->activity;
	ev.trigger = c->activity ? ENG_TR_USER_MESSAGE : (enum eng_trigger)c->trigger;

	if (eng_run_start(run, ENG_START_TOOL, &err))
		return eng_run_fail(run, &err);
	if (!c->at)
		ev.at = run->now;

	struct eng_ev_counts k = {0};
	if (run->opt.dry_run && eng_db_begin(&run->db, &err))
		return eng_run_fail(run, &err);
	enum eng_status st = eng_events_apply(&run->db, &ev, 1, run->run_id,
					      run->opt.dry_run, &k, &err);
	if (run->opt.dry_run)
		eng_db_rollback(&run->db);
	if (st)
		return eng_run_fail(run, &err);

	char at[32];
	eng_time_format(ev.at, at);
	eng_run_set_str(run, "user_id", ev.who.user_id[0] ? ev.who.user_id : NULL);
	eng_run_set_str(run, "action", action_name(&ev));
	eng_run_set_str(run, "at", at);
	eng_run_set_str(run, "outcome", outcome_name(ev.outcome));
	if (ev.outcome == ENG_EV_FAILED)
		return eng_run_fail_event(
			run,
			ev.err.status == ENG_ENOUSER ? "unknown_user" : "event_rejected",
			&ev.err);
	eng_run_set_str(run, "from_state", eng_state_name(ev.from));
	eng_run_set_str(run, "to_state", eng_state_name(ev.to));
	eng_log(ENG_INFO, "event_applied", ENG_S("user_id", ev.who.user_id),
		ENG_S("action", action_name(&ev)),
		ENG_S("outcome", outcome_name(ev.outcome)),
		ENG_S("from_state", eng_state_name(ev.from)),
		ENG_S("to_state", eng_state_name(ev.to)));
	return eng_run_finish(run, ENG_EXIT_OK);
}

#define BLOCK 10000

struct batch {
	struct eng_event *ev; /* the block */
	const struct eng_run *run;
	struct eng_ev_counts k;
	long long malformed;
};

/* A malformed line stays in the block, failed, to be reported in order. */
static void take_line(void *ctx, size_t i, long lineno, const char *text,
		      size_t len, bool too_long)
{
	struct batch *b = ctx;
	struct eng_event *e = &b->ev[i];
	struct eng_err perr = ENG_ERR_INIT;
	e->line = lineno;
	if (too_long)
		eng_err_set(&perr, ENG_EDATA, "line longer than %d bytes", ENG_LINE_MAX);
	else
		eng_event_parse_json(text, len, b->run->now, e, &perr);
	if (perr.status) {
		b->malformed++;
		memset(e, 0, sizeof(*e));
		e->line = lineno;
		e->err = perr;
		e->outcome = ENG_EV_FAILED;
	}
}

static enum eng_status apply_block(void *ctx, struct eng_run *run, size_t n,
				   struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_ev_counts bk = {0};
	enum eng_status st = eng_events_apply(&run->db, b->ev, n, run->run_id,
					      run->opt.dry_run, &bk, err);
	for (size_t i = 0; i < n; i++) {
		if (b->ev[i].outcome != ENG_EV_FAILED)
			continue;
		eng_log(ENG_ERROR, "line_failed", ENG_I("line", b->ev[i].line),
			ENG_S("user_id", b->ev[i].who.user_id[0] ? b->ev[i].who.user_id : NULL),
			ENG_S("error", b->ev[i].err.msg),
			ENG_S("error_class", eng_status_name(b->ev[i].err.status)));
	}
	b->k.applied += bk.applied;
	b->k.failed += bk.failed;
	b->k.transitions += bk.transitions;
	b->k.activities += bk.activities;
	return st;
}

static bool summarize(void *ctx, struct eng_run *run)
{
	struct batch *b = ctx;
	eng_run_set_int(run, "applied", b->k.applied);
	eng_run_set_int(run, "failed", b->k.failed);
	eng_run_set_int(run, "malformed", b->malformed);
	eng_run_set_int(run, "transitions", b->k.transitions);
	eng_run_set_int(run, "activities", b->k.activities);
	return b->k.failed > 0;
}

static int run_batch(struct eng_run *run, struct ctx *c)
{
	struct batch b = {.ev = eng_xcalloc(BLOCK, sizeof(*b.ev)), .run = run};
	struct eng_run_lines rl = {c->batch, ENG_START_TOOL, BLOCK, take_line,
				   apply_block, summarize, &b};
	int rc = eng_run_lines(run, &rl);
	free(b.ev);
	return rc;
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct ctx c = {0};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_NOW | ENG_OPT_DRYRUN, on_opt, &c};
	int first;

	c.trigger = -1;
	eng_run_init(&run, "engagement-event");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);
	if (c.batch) {
		if (c.user || c.phone || c.actions || c.at)
			return eng_run_usage(&run, "--batch takes its events from the "
					     "file: no --user, --phone, --at or action");
		return run_batch(&run, &c);
	}
	if (!c.user == !c.phone)
		return eng_run_usage(&run, "give exactly one of --user and --phone");
	if (c.actions != 1)
		return eng_run_usage(&run, "give exactly one of --activity, "
				     "--goodbye-reply and --trigger");
	return run_single(&run, &c);
}
