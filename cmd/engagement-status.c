/* engagement-status: how it all stands, for people, Prometheus and alerts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_fe.h"
#include "eng_status.h"

static const char usage[] =
	"Usage: engagement-status [--format json|prometheus] [--textfile PATH] [--check]\n"
	"                         [THRESHOLD]... [OPTION]...\n"
	"How it all stands: the queue's depth by status and message type, the\n"
	"oldest due message, expired leases, what happened to messages in the last\n"
	"hour and day (sent, failed by error code, deferred, delivered, read,\n"
	"undelivered), opt-outs and opt-ins, people by state, each job's last run\n"
	"and last success, the outbox's and the webhook inbox's backlog. Cheap at\n"
	"any size: indexes, small tables and the planner's statistics (figures\n"
	"that are estimates say so).\n"
	"\n"
	"Options:\n"
	"      --format FORMAT        json (the summary, default) or prometheus (the\n"
	"                             text exposition on stdout instead)\n"
	"      --textfile PATH        also write the metrics for node_exporter's\n"
	"                             textfile collector (PATH.PID, then renamed;\n"
	"                             a failed run leaves the previous file)\n"
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
	"      --db CONNINFO          libpq connection string or URI\n"
	"      --log-level LEVEL      debug, info, warn or error (default info)\n"
	"      --log-format FORMAT    auto (text on a terminal), json or text\n"
	"      --summary-format FORMAT\n"
	"                             auto (indented on a terminal), json or pretty\n"
	"      --help                 show this help and exit\n"
	"      --version              show the version and exit\n"
	"\n"
	"Exit status: 0 done (and, with --check, nothing crossed); 1 (--check) a\n"
	"threshold crossed; 64 bad command line; 73 the textfile cannot be written\n"
	"(the previous one is kept); 75 database unreachable; 77 credentials\n"
	"refused; 78 configuration or schema not migrated.\n";

enum {
	OPT_FORMAT = 1, OPT_TEXTFILE, OPT_CHECK, OPT_DAILY, OPT_WEEKLY, OPT_DUE, OPT_LEASES,
	OPT_OUTBOX, OPT_RATE, OPT_MINSENDS, OPT_INBOX,
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
	{NULL, 0, NULL, 0},
};

#define SO struct eng_status_opts
#define YEAR_MS 31536000000.0

static const struct eng_opt_num nums[] = {
	ENG_NUM(OPT_DAILY, ENG_NUM_MS, 1000, YEAR_MS, SO, max_daily_age_ms, NULL),
	ENG_NUM(OPT_WEEKLY, ENG_NUM_MS, 1000, YEAR_MS, SO, max_weekly_age_ms, NULL),
	ENG_NUM(OPT_DUE, ENG_NUM_MS, 1000, YEAR_MS, SO, max_due_age_ms, NULL),
	ENG_NUM(OPT_LEASES, ENG_NUM_LLONG, 0, 1000000000, SO, max_expired_leases, NULL),
	ENG_NUM(OPT_OUTBOX, ENG_NUM_MS, 1000, YEAR_MS, SO, max_outbox_age_ms, NULL),
	ENG_NUM(OPT_RATE, ENG_NUM_REAL, 0, 100, SO, max_failure_rate,
		"a percentage from 0 to 100"),
	ENG_NUM(OPT_MINSENDS, ENG_NUM_LLONG, 1, 1000000000, SO, min_sends, NULL),
	ENG_NUM(OPT_INBOX, ENG_NUM_MS, 1000, YEAR_MS, SO, max_inbox_age_ms, NULL),
	{0},
};

static enum eng_status on_opt(void *p, int opt, const char *arg, struct eng_err *err)
{
	SO *o = p;
	switch (opt) {
	case OPT_FORMAT:
		if (strcmp(arg, "json") != 0 && strcmp(arg, "prometheus") != 0)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --format \"%.40s\": use json or prometheus", arg);
		o->prometheus = strcmp(arg, "prometheus") == 0;
		return ENG_OK;
	case OPT_TEXTFILE:
		if (!*arg)
			return eng_err_set(err, ENG_EUSAGE, "--textfile needs a path");
		o->textfile = arg;
		return ENG_OK;
	case OPT_CHECK:
		o->check = true;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

static enum eng_status run(void *o, const struct eng_job *job, struct eng_err *err)
{
	return eng_status_run(job, o, err);
}

static const char *output(void *o)
{
	return ((SO *)o)->exposition;
}

static void done(void *o)
{
	free(((SO *)o)->exposition);
}

static const struct eng_prog prog = {
	.name = "engagement-status", .usage = usage, .opts = opts, .nums = nums,
	.on_opt = on_opt, .start = ENG_START_DB | ENG_START_SCHEMA | ENG_START_NOW,
	.run = run, .output = output, .done = done,
};

int main(int argc, char **argv)
{
	SO o = {
		.max_daily_age_ms = 26L * 3600 * 1000, .max_weekly_age_ms = 8L * 86400 * 1000,
		.max_due_age_ms = 15L * 60 * 1000, .max_expired_leases = 0,
		.max_outbox_age_ms = 5L * 60 * 1000, .max_failure_rate = 5, .min_sends = 20,
		.max_inbox_age_ms = 2L * 60 * 1000,
	};
	return eng_main(&prog, &o, argc, argv);
}
