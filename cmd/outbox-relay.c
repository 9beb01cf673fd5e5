/* outbox-relay: publish outbox events to stdout or a signed webhook. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "eng_fe.h"
#include "eng_relay.h"

/* --stdout: one JSON line per event, flushed per batch (ENG_ETEMP when
 * stdout cannot be written: the events stay unpublished). */
static enum eng_status print_lines(void *ctx, const char *const *lines, size_t n,
				   struct eng_err *err)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		fputs(lines[i], stdout);
		fputc('\n', stdout);
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return eng_err_set(err, ENG_ETEMP,
				   "cannot write to stdout (%s): events stay unpublished",
				   strerror(errno));
	return ENG_OK;
}

static const struct eng_relay_sink stdout_sink = {"stdout", print_lines, NULL};

static const char usage[] =
	"Usage: outbox-relay (--stdout | --webhook URL --secret-file FILE) [--follow]\n"
	"                    [--batch N] [--purge-published-days N] [OPTION]...\n"
	"Publish unpublished outbox events in id order, at least once, and mark\n"
	"them published only after the sink accepted them.\n"
	"  --stdout    one JSON line per event; the run's summary is the last line\n"
	"  --webhook   POST {\"events\": [...]} batches signed per Standard Webhooks\n"
	"              (webhook-id, the same for every retry of a batch;\n"
	"              webhook-timestamp; webhook-signature, one v1 per secret);\n"
	"              also X-Engagement-Signature, deprecated, for one release;\n"
	"              failures are retried with backoff and leave the events\n"
	"              unpublished\n"
	"  --follow    keep running: LISTEN for new events and publish them within\n"
	"              a moment of commit; reconnect after losing the database and\n"
	"              catch up (needs a direct connection, not PgBouncer)\n"
	"Only one relay runs at a time: a second exits 75.\n";

static const char options[] =
	"      --secret-file FILE         the webhook's keys, one whsec_BASE64 per line, mode 600\n"
	"      --batch N                  events per fetch and per request (default 100)\n"
	"      --purge-published-days N   delete events published longer ago (default 7)\n"
	"      --timeout DURATION         per webhook request (default 10s)\n"
	"      --max-attempts N           webhook tries per batch without --follow (default 3)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "published everything"},
	{ENG_EXIT_UNAVAILABLE, "the webhook refused the events (4xx)"},
	ENG_EXIT_CAUSE(ENG_EXIT_TEMPFAIL, "the webhook or stdout unavailable"),
	ENG_EXIT_SIGNAL,
	{ENG_EXIT_CONFIG, "bad configuration (URL, secret file) or schema not migrated"},
	{0},
};

enum { OPT_STDOUT = 1, OPT_WEBHOOK, OPT_SECRET, OPT_FOLLOW, OPT_BATCH, OPT_PURGE,
       OPT_TIMEOUT, OPT_ATTEMPTS };

static const struct option opts[] = {
	{"stdout", no_argument, NULL, OPT_STDOUT},
	{"webhook", required_argument, NULL, OPT_WEBHOOK},
	{"secret-file", required_argument, NULL, OPT_SECRET},
	{"follow", no_argument, NULL, OPT_FOLLOW},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"purge-published-days", required_argument, NULL, OPT_PURGE},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"max-attempts", required_argument, NULL, OPT_ATTEMPTS},
	{NULL, 0, NULL, 0},
};

struct ctx {
	struct eng_relay_opts o; /* first: what run() and done() hand the core */
	bool to_stdout;
	const char *webhook, *secret_file;
};

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 10000, struct ctx, o.batch, NULL),
	ENG_NUM(OPT_PURGE, ENG_NUM_INT, 1, 3650, struct ctx, o.purge_days, NULL),
	ENG_NUM(OPT_TIMEOUT, ENG_NUM_MS, 1, 30000, struct ctx, o.timeout_ms, NULL),
	ENG_NUM(OPT_ATTEMPTS, ENG_NUM_INT, 1, 100, struct ctx, o.max_attempts, NULL),
	ENG_FLAG(OPT_STDOUT, struct ctx, to_stdout),
	ENG_ARG(OPT_WEBHOOK, struct ctx, webhook),
	ENG_ARG(OPT_SECRET, struct ctx, secret_file),
	ENG_FLAG(OPT_FOLLOW, struct ctx, o.follow),
	{0},
};

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	(void)a;
	struct ctx *c = p;
	if (c->to_stdout == !!c->webhook)
		return eng_err_set(err, ENG_EUSAGE, "give exactly one of --stdout and --webhook");
	if (c->webhook && !c->secret_file)
		return eng_err_set(err, ENG_EUSAGE, "--webhook needs --secret-file");
	if (c->to_stdout && c->secret_file)
		return eng_err_set(err, ENG_EUSAGE, "--secret-file goes with --webhook");
	if (c->to_stdout) {
		c->o.sink = &stdout_sink;
		return ENG_OK;
	}
	return eng_relay_check(&c->o, c->webhook, c->secret_file, err);
}

ENG_PROG_RUN(run, eng_relay_run, struct eng_relay_opts)

ENG_PROG_DONE(done, eng_relay_opts_release, struct eng_relay_opts)

static const struct eng_prog prog = {
	.name = "outbox-relay", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.start = ENG_START_JOB, .secret = true, .check = check,
	.run = run, .done = done,
};

int main(int argc, char **argv)
{
	struct ctx c = {.o = {.batch = 100, .purge_days = 7, .timeout_ms = 10000,
			      .max_attempts = 3}};
	return eng_main(&prog, &c, argc, argv);
}
