/* engagement-event: record inbound activity and goodbye replies. */

#include "eng_fe.h"
#include "eng_event.h"
#include "eng_lines.h"
#include "eng_state.h"

static const char usage[] =
	"Usage: engagement-event (--user UUID | --phone E164)\n"
	"                        (--activity | --goodbye-reply 1|2|3 | --trigger NAME)\n"
	"                        [--at RFC3339] [--id ID] [OPTION]...\n"
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
	"   \"at\": \"RFC3339\" (optional), \"id\": \"...\" (optional)}\n"
	"A bad line is reported with its number; the others still apply.\n"
	"An event with an id (--id, a line's \"id\": the channel's message id) is\n"
	"applied at most once: seen again, it is a duplicate and changes nothing,\n"
	"so a whole batch can be run again after a crash.\n";

static const char options[] =
	"      --at RFC3339      when the event happened (default: now)\n"
	"      --id ID           the event's identity (1 to 128 bytes)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "applied"},
	{ENG_EXIT_PARTIAL, "(--batch) some lines failed, the others applied"},
	{ENG_EXIT_DATAERR, "malformed UUID, phone or timestamp, or an invalid transition "
			   "(nothing changed)"},
	{ENG_EXIT_NOUSER, NULL},
	ENG_EXIT_SIGNAL,
	{0},
};

enum {
	OPT_USER = 1, OPT_PHONE, OPT_ACTIVITY, OPT_REPLY, OPT_TRIGGER, OPT_AT,
	OPT_BATCH, OPT_ID,
};

static const struct option opts[] = {
	{"user", required_argument, NULL, OPT_USER},
	{"phone", required_argument, NULL, OPT_PHONE},
	{"activity", no_argument, NULL, OPT_ACTIVITY},
	{"goodbye-reply", required_argument, NULL, OPT_REPLY},
	{"trigger", required_argument, NULL, OPT_TRIGGER},
	{"at", required_argument, NULL, OPT_AT},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"id", required_argument, NULL, OPT_ID},
	{NULL, 0, NULL, 0},
};

struct ctx {
	struct eng_event_args a;
	const char *batch;
	int actions;
	struct eng_event ev;
};

static const struct eng_opt_field fields[] = {
	ENG_ARG(OPT_USER, struct ctx, a.user),
	ENG_ARG(OPT_PHONE, struct ctx, a.phone),
	ENG_ARG(OPT_AT, struct ctx, a.at),
	ENG_ARG(OPT_BATCH, struct ctx, batch),
	ENG_ARG(OPT_ID, struct ctx, a.id),
	{0},
};

static enum eng_status on_opt(void *p, int opt, const char *arg, struct eng_err *err)
{
	struct ctx *c = p;
	long long v;
	switch (opt) {
	case OPT_ACTIVITY:
		c->actions++;
		c->a.activity = true;
		return ENG_OK;
	case OPT_REPLY:
		if (eng_parse_int(arg, 1, 3, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --goodbye-reply \"%s\": use 1, 2 or 3", arg);
		c->actions++;
		c->a.trigger = ENG_TR_GOODBYE_RESPONSE_1 + (int)v - 1;
		return ENG_OK;
	case OPT_TRIGGER:
		c->a.trigger = eng_trigger_parse(arg);
		if (c->a.trigger < 0)
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

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	(void)a;
	struct ctx *c = p;
	if (c->batch) {
		if (c->a.user || c->a.phone || c->actions || c->a.at || c->a.id)
			return eng_err_set(err, ENG_EUSAGE,
					   "--batch takes its events from the file: no "
					   "--user, --phone, --at, --id or action");
		return ENG_OK;
	}
	if (!c->a.user == !c->a.phone)
		return eng_err_set(err, ENG_EUSAGE, "give exactly one of --user and --phone");
	if (c->actions != 1)
		return eng_err_set(err, ENG_EUSAGE, "give exactly one of --activity, "
				   "--goodbye-reply and --trigger");
	/* bad data in the arguments: 65, before touching the database */
	return eng_event_from_args(&c->a, &c->ev, err);
}

static enum eng_status run(void *p, const struct eng_job *job, struct eng_err *err)
{
	struct ctx *c = p;
	if (c->batch)
		return eng_event_batch(job, c->batch, err);
	return eng_event_one(job, &c->ev, err);
}

static const struct eng_prog prog = {
	.name = "engagement-event", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields, .on_opt = on_opt,
	.common = ENG_OPT_NOW | ENG_OPT_DRYRUN, .start = ENG_START_TOOL,
	.check = check, .run = run,
};

int main(int argc, char **argv)
{
	struct ctx c = {.a = {.trigger = -1}};
	return eng_main(&prog, &c, argc, argv);
}
