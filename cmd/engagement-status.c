/* engagement-status: how it all stands, for people, Prometheus and alerts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_fe.h"
#include "eng_status.h"

static const char usage[] =
	"Usage: engagement-status [--format json|prometheus|html] [--textfile PATH]\n"
	"                         [--html PATH] [--check]\n"
	"                         [THRESHOLD]... [OPTION]...\n"
	"How it all stands: the queue's depth by status and message type, the\n"
	"oldest due message, expired leases, what happened to messages in the last\n"
	"hour and day (sent, failed by error code, deferred, delivered, read,\n"
	"undelivered), opt-outs and opt-ins, people by state, each job's last run\n"
	"and last success, the outbox's and the webhook inbox's backlog, the pauses\n"
	"in force, the templates as Meta reports them, the messaging limit and its\n"
	"use, the last day's messages by pricing category. Cheap at\n"
	"any size: indexes, small tables and the planner's statistics (figures\n"
	"that are estimates say so).\n";

static const char options[] =
	"      --format FORMAT        json (the summary, default), prometheus (the\n"
	"                             text exposition on stdout instead) or html\n"
	"                             (the report page on stdout instead)\n"
	"      --textfile PATH        also write the metrics for node_exporter's\n"
	"                             textfile collector (PATH.PID, then renamed;\n"
	"                             a failed run leaves the previous file)\n"
	"      --html PATH            also write the report page (the same way)\n"
	"      --check                exit 1, with a check_failed log line each, when\n"
	"                             a figure crosses its threshold:\n"
	"      --max-daily-age D      engagement-daily not successful for (26h)\n"
	"      --max-weekly-age D     engagement-weekly not successful for (8d)\n"
	"      --max-due-age D        the oldest due message (15min)\n"
	"      --max-expired-leases N claims whose sender stopped (0)\n"
	"      --max-outbox-age D     the oldest unpublished event (5min)\n"
	"      --max-failure-rate P   failed sends in the last hour, percent (5)\n"
	"      --min-sends N          the failure rate counts from N sends (20)\n"
	"      --max-inbox-age D      the oldest webhook delivery not applied (2min)\n"
	"      --max-pause-age D      the oldest pause of sending in force (24h)\n"
	"      --max-limit-use P      the messaging limit used in 24 h, percent (80)\n"
	"                             (and always: a template PAUSED or of quality RED)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "done (and, with --check, nothing crossed)"},
	{ENG_EXIT_PARTIAL, "(--check) a threshold crossed"},
	{ENG_EXIT_CANTCREAT, "the textfile or the page cannot be written (the previous one is "
			     "kept)"},
	{0},
};

enum {
	OPT_FORMAT = 1, OPT_TEXTFILE, OPT_CHECK, OPT_DAILY, OPT_WEEKLY, OPT_DUE, OPT_LEASES,
	OPT_OUTBOX, OPT_RATE, OPT_MINSENDS, OPT_INBOX, OPT_HTML, OPT_PAUSE, OPT_LIMIT,
};

static const struct option opts[] = {
	{"format", required_argument, NULL, OPT_FORMAT},
	{"textfile", required_argument, NULL, OPT_TEXTFILE},
	{"check", no_argument, NULL, OPT_CHECK},
	{"max-daily-age", required_argument, NULL, OPT_DAILY},
	{"max-weekly-age", required_argument, NULL, OPT_WEEKLY},
	{"max-due-age", required_argument, NULL, OPT_DUE},
	{"max-expired-leases", required_argument, NULL, OPT_LEASES},
	{"max-outbox-age", required_argument, NULL, OPT_OUTBOX},
	{"max-failure-rate", required_argument, NULL, OPT_RATE},
	{"min-sends", required_argument, NULL, OPT_MINSENDS},
	{"max-inbox-age", required_argument, NULL, OPT_INBOX},
	{"html", required_argument, NULL, OPT_HTML},
	{"max-pause-age", required_argument, NULL, OPT_PAUSE},
	{"max-limit-use", required_argument, NULL, OPT_LIMIT},
	{NULL, 0, NULL, 0},
};

#define SO struct eng_status_opts
#define YEAR_MS 31536000000.0

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_DAILY, ENG_NUM_MS, 1000, YEAR_MS, SO, max_daily_age_ms, NULL),
	ENG_NUM(OPT_WEEKLY, ENG_NUM_MS, 1000, YEAR_MS, SO, max_weekly_age_ms, NULL),
	ENG_NUM(OPT_DUE, ENG_NUM_MS, 1000, YEAR_MS, SO, max_due_age_ms, NULL),
	ENG_NUM(OPT_LEASES, ENG_NUM_LLONG, 0, 1000000000, SO, max_expired_leases, NULL),
	ENG_NUM(OPT_OUTBOX, ENG_NUM_MS, 1000, YEAR_MS, SO, max_outbox_age_ms, NULL),
	ENG_NUM(OPT_RATE, ENG_NUM_REAL, 0, 100, SO, max_failure_rate,
		"a percentage from 0 to 100"),
	ENG_NUM(OPT_MINSENDS, ENG_NUM_LLONG, 1, 1000000000, SO, min_sends, NULL),
	ENG_NUM(OPT_INBOX, ENG_NUM_MS, 1000, YEAR_MS, SO, max_inbox_age_ms, NULL),
	ENG_NUM(OPT_PAUSE, ENG_NUM_MS, 1000, YEAR_MS, SO, max_pause_age_ms, NULL),
	ENG_NUM(OPT_LIMIT, ENG_NUM_REAL, 0, 100, SO, max_limit_use, "a percentage from 0 to 100"),
	ENG_TEXT(OPT_TEXTFILE, 1, 4096, SO, textfile),
	ENG_TEXT(OPT_HTML, 1, 4096, SO, html),
	ENG_FLAG(OPT_CHECK, SO, check),
	{0},
};

/* --format, the one option the table does not store */
static enum eng_status on_opt(void *o, int opt, const char *arg, struct eng_err *err)
{
	static const char *const formats[] = {"json", "prometheus", "html"};
	int f = 0;
	(void)opt;
	enum eng_status st = eng_opt_choice("format", arg, formats, 3, &f, err);
	((SO *)o)->prometheus = f == 1;
	((SO *)o)->page = f == 2;
	return st;
}

ENG_PROG_RUN(run, eng_status_run, SO)

static const char *output(void *o)
{
	return ((SO *)o)->exposition;
}

static void done(void *o)
{
	free(((SO *)o)->exposition);
}

static const struct eng_prog prog = {
	.name = "engagement-status", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.on_opt = on_opt, .start = ENG_START_DB | ENG_START_SCHEMA | ENG_START_NOW | ENG_START_STANDBY,
	.run = run, .output = output, .done = done,
};

int main(int argc, char **argv)
{
	SO o = {
		.max_daily_age_ms = 26L * 3600 * 1000, .max_weekly_age_ms = 8L * 86400 * 1000,
		.max_due_age_ms = 15L * 60 * 1000, .max_expired_leases = 0,
		.max_outbox_age_ms = 5L * 60 * 1000, .max_failure_rate = 5, .min_sends = 20,
		.max_inbox_age_ms = 2L * 60 * 1000, .max_pause_age_ms = 24L * 3600 * 1000,
		.max_limit_use = 80,
	};
	return eng_main(&prog, &o, argc, argv);
}
