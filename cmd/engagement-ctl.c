/* engagement-ctl: the operator's hands: pause and resume sending, requeue
 * and cancel messages, show one person's history. */
#include <unistd.h>

#include "eng_ctl.h"
#include "eng_fe.h"

static const char usage[] =
	"Usage: engagement-ctl COMMAND [OPTION]...\n"
	"The operator's hands. A command that changes something is one transaction,\n"
	"writes an audit row per pause, message or person it touches (with the\n"
	"login and --reason), reports its counts in the summary, and with --dry-run\n"
	"counts and rolls back. A filter that matches nothing is not an error.\n"
	"\n"
	"Commands (each takes only its own options):\n"
	"  pause [--type T | --template KEY] [--until RFC3339] --reason TEXT\n"
	"      stop sending what it matches (everything, a message type or a\n"
	"      template) until resumed or until --until; pausing the same again\n"
	"      updates the pause's reason and end\n"
	"  resume [--type T | --template KEY] [--reason TEXT]\n"
	"      end the pauses of that scope, whoever set them (operator or Meta)\n"
	"  pauses\n"
	"      list the pauses in force\n"
	"  requeue --status failed|queued [--error CODE]... [--type T]\n"
	"          [--since RFC3339] [--until RFC3339] [--reason TEXT]\n"
	"      failed messages, or queued ones waiting for a later attempt, due\n"
	"      now with their attempts reset; those whose person opted out, whose\n"
	"      expiry passed or (goodbyes) whose person left goodbye_sent stay as\n"
	"      they are and are counted by reason\n"
	"  cancel [--type T] [--template KEY] [--user UUID | --phone E164]\n"
	"         [--key IDEMPOTENCY_KEY] [--reason TEXT]\n"
	"      queued messages matching every filter given (one at least) are\n"
	"      cancelled; those a sender holds are left and counted as in_flight\n"
	"  limit --tier TIER [--reason TEXT]\n"
	"      the messaging limit (people reached in 24 h), when the webhook is not\n"
	"      subscribed to Meta's phone_number_quality_update\n"
	"  show (--user UUID | --phone E164) [--unmask]\n"
	"      one person's history in the summary (a timeline instead on a\n"
	"      terminal, unless --summary-format); phone numbers and template\n"
	"      parameters masked unless --unmask\n";

static const char options[] =
	"      --type T               a message type (goodbye, weekly_review)\n"
	"      --template KEY         a template key\n"
	"      --until RFC3339        (pause) when it ends; (requeue) changed before\n"
	"      --since RFC3339        (requeue) changed at or after\n"
	"      --reason TEXT          why, for the audit log (1 to 500 bytes)\n"
	"      --status STATUS        (requeue) failed, or queued (waiting to retry)\n"
	"      --error CODE           (requeue) with this last error code; repeat\n"
	"                             for several\n"
	"      --user UUID            a person, by id\n"
	"      --phone E164           a person, by phone number\n"
	"      --key KEY              (cancel) a message's idempotency key\n"
	"      --unmask               (show) phone numbers and parameters as stored\n"
	"      --tier TIER            (limit) TIER_250, TIER_2K, TIER_10K, TIER_100K\n"
	"                             or TIER_UNLIMITED\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "done (a filter that matches nothing too: its counts are 0)"},
	{ENG_EXIT_USAGE, "bad command line: an unknown command, another command's option, "
			 "cancel without a filter, an unknown tier"},
	{ENG_EXIT_DATAERR, "a malformed UUID, phone or timestamp, or the database's rules "
			   "refused it (a pause ending in the past, a blank reason): "
			   "nothing changed"},
	{ENG_EXIT_NOUSER, NULL},
	ENG_EXIT_CAUSE(ENG_EXIT_NOPERM, "the login lacks engagement_operator"),
	{0},
};

enum {
	OPT_TYPE = 1, OPT_TEMPLATE, OPT_UNTIL, OPT_SINCE, OPT_REASON, OPT_STATUS, OPT_ERROR,
	OPT_USER, OPT_PHONE, OPT_KEY, OPT_UNMASK, OPT_TIER,
};

static const struct option opts[] = {
	{"type", required_argument, NULL, OPT_TYPE},
	{"template", required_argument, NULL, OPT_TEMPLATE},
	{"until", required_argument, NULL, OPT_UNTIL},
	{"since", required_argument, NULL, OPT_SINCE},
	{"reason", required_argument, NULL, OPT_REASON},
	{"status", required_argument, NULL, OPT_STATUS},
	{"error", required_argument, NULL, OPT_ERROR},
	{"user", required_argument, NULL, OPT_USER},
	{"phone", required_argument, NULL, OPT_PHONE},
	{"key", required_argument, NULL, OPT_KEY},
	{"unmask", no_argument, NULL, OPT_UNMASK},
	{"tier", required_argument, NULL, OPT_TIER},
	{NULL, 0, NULL, 0},
};

#define C struct eng_ctl

static const struct eng_opt_field fields[] = {
	ENG_TEXT(OPT_TYPE, 1, 200, C, a.type),
	ENG_TEXT(OPT_TEMPLATE, 1, 200, C, a.template_key),
	ENG_ARG(OPT_UNTIL, C, a.until),
	ENG_ARG(OPT_SINCE, C, a.since),
	ENG_TEXT(OPT_REASON, 1, 500, C, a.reason),
	ENG_ARG(OPT_USER, C, a.user),
	ENG_ARG(OPT_PHONE, C, a.phone),
	ENG_TEXT(OPT_KEY, 1, 500, C, a.key),
	ENG_FLAG(OPT_UNMASK, C, a.unmask),
	{0},
};

/* --status and --tier (choices) and --error (repeated) */
static enum eng_status on_opt(void *p, int opt, const char *arg, struct eng_err *err)
{
	static const char *const statuses[] = {"failed", "queued"};
	static const char *const tiers[] = {"TIER_250", "TIER_2K", "TIER_10K", "TIER_100K",
					    "TIER_UNLIMITED"};
	C *c = p;
	int i;
	if (opt == OPT_ERROR)
		return eng_ctl_add_error(c, arg, err);
	if (opt == OPT_TIER) {
		c->a.tier = arg;
		return eng_opt_choice("tier", arg, tiers, 5, &i, err);
	}
	c->a.status = arg;
	return eng_opt_choice("status", arg, statuses, 2, &i, err);
}

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	C *c = p;
	c->a.dry_run = a->common->dry_run;
	/* show: a timeline for a person at a terminal; JSON for a pipe, or
	 * when a summary format is asked for */
	c->format = a->common->summary_format == ENG_SUMMARY_AUTO && isatty(1) == 1
			    ? ENG_CTL_TIMELINE
			    : ENG_CTL_JSON;
	if (a->argc > 0)
		json_object_set_new(a->summary, "command", eng_json_str(a->argv[0]));
	return eng_ctl_check(c, a->argc, a->argv, err);
}

ENG_PROG_RUN(run, eng_ctl_run, C)
ENG_PROG_DONE(done, eng_ctl_release, C)

static const char *output(void *p)
{
	return ((C *)p)->output;
}

static const struct eng_prog prog = {
	.name = "engagement-ctl", .usage = usage, .options = options, .exits = exits,
	.opts = opts, .fields = fields, .on_opt = on_opt, .common = ENG_OPT_DRYRUN,
	.start = ENG_START_TOOL, .args = true,
	.check = check, .run = run, .output = output, .done = done,
};

int main(int argc, char **argv)
{
	C c = {.format = ENG_CTL_JSON};
	return eng_main(&prog, &c, argc, argv);
}
