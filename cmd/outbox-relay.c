/* outbox-relay: publish outbox events to stdout or a signed webhook. */
#include <curl/curl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <string.h>

#include "eng.h"
#include "eng_http.h"
#include "eng_relay.h"

static const char usage[] =
	"Usage: outbox-relay (--stdout | --webhook URL --secret-file FILE) [--follow]\n"
	"                    [--batch N] [--purge-published-days N] [OPTION]...\n"
	"Publish unpublished outbox events in id order, at least once, and mark\n"
	"them published only after the sink accepted them.\n"
	"  --stdout    one JSON line per event; the run's summary is the last line\n"
	"  --webhook   POST {\"events\": [...]} batches, signed with the header\n"
	"              X-Engagement-Signature: sha256=HEX(HMAC-SHA256(secret, body));\n"
	"              failures are retried with backoff and leave the events\n"
	"              unpublished\n"
	"  --follow    keep running: LISTEN for new events and publish them within\n"
	"              a moment of commit; reconnect after losing the database and\n"
	"              catch up (needs a direct connection, not PgBouncer)\n"
	"Only one relay runs at a time: a second exits 75.\n"
	"\n"
	"Options:\n"
	"      --secret-file FILE         the webhook's HMAC key (never on the command line)\n"
	"      --batch N                  events per fetch and per request (default 100)\n"
	"      --purge-published-days N   delete events published longer ago (default 7)\n"
	"      --timeout DURATION         per webhook request (default 10s)\n"
	"      --max-attempts N           webhook tries per batch without --follow (default 3)\n"
	"      --db CONNINFO              libpq connection string or URI\n"
	"      --log-level LEVEL          debug, info, warn or error (default info)\n"
	"      --help                     show this help and exit\n"
	"      --version                  show the version and exit\n"
	"\n"
	"Exit status: 0 published everything; 64 bad command line; 69 the webhook\n"
	"refused the events (4xx); 75 the webhook or stdout unavailable, another\n"
	"relay running, the database unreachable, or stopped by a signal; 77\n"
	"credentials refused; 78 bad configuration (URL, secret file) or schema.\n";

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
	struct eng_relay_opts o;
	const char *webhook, *secret_file;
};

static enum eng_status on_opt(void *p, int opt, const char *arg,
			      struct eng_err *err)
{
	struct ctx *c = p;
	long long v;
	switch (opt) {
	case OPT_STDOUT: c->o.to_stdout = true; return ENG_OK;
	case OPT_WEBHOOK: c->webhook = arg; return ENG_OK;
	case OPT_SECRET: c->secret_file = arg; return ENG_OK;
	case OPT_FOLLOW: c->o.follow = true; return ENG_OK;
	case OPT_BATCH:
		if (eng_opt_int("batch", arg, 1, 10000, &v, err))
			return err->status;
		c->o.batch = (int)v;
		return ENG_OK;
	case OPT_PURGE:
		if (eng_opt_int("purge-published-days", arg, 1, 3650, &v, err))
			return err->status;
		c->o.purge_days = (int)v;
		return ENG_OK;
	case OPT_TIMEOUT:
		if (eng_parse_duration_ms(arg, &v) || v < 1 || v > 30000)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --timeout \"%s\": a duration from "
					   "1ms to 30s, such as 10s",
					   arg);
		c->o.timeout_ms = v;
		return ENG_OK;
	case OPT_ATTEMPTS:
		if (eng_opt_int("max-attempts", arg, 1, 100, &v, err))
			return err->status;
		c->o.max_attempts = (int)v;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct ctx c = {.o = {.batch = 100, .purge_days = 7, .timeout_ms = 10000,
			      .max_attempts = 3}};
	struct eng_cmd cmd = {usage, opts, 0, on_opt, &c};
	struct eng_err err = ENG_ERR_INIT;
	int first, code = ENG_EXIT_OK;

	eng_run_init(&run, "outbox-relay");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);
	if (c.o.to_stdout == !!c.webhook)
		return eng_run_usage(&run, "give exactly one of --stdout and --webhook");
	if (c.webhook && !c.secret_file)
		return eng_run_usage(&run, "--webhook needs --secret-file");
	if (c.o.to_stdout && c.secret_file)
		return eng_run_usage(&run, "--secret-file goes with --webhook");

	/* The process will hold a secret: no core dump may carry it. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (c.webhook &&
	    (eng_http_check_url(c.webhook, "--webhook", c.o.webhook,
				sizeof(c.o.webhook), &err) ||
	     eng_http_read_secret(c.secret_file, "--secret-file", &c.o.secret, &err)))
		return eng_run_fail_event(&run, "bad_configuration", &err);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		eng_http_wipe(c.o.secret);
		eng_err_set(&err, ENG_EINTERNAL, "curl_global_init failed");
		return eng_run_fail(&run, &err);
	}
	json_object_set_new(run.summary, "follow", json_boolean(c.o.follow));

	enum eng_status st = eng_run_start(&run, ENG_START_JOB, &err);
	if (st == ENG_OK)
		st = eng_relay_run(&run, &c.o, &code, &err);
	eng_http_wipe(c.o.secret);
	curl_global_cleanup();
	if (st)
		return eng_run_fail(&run, &err);
	if (code == ENG_EXIT_TEMPFAIL) {
		eng_err_set(&err, ENG_ETEMP, "stopped by a signal");
		return eng_run_fail_event(&run, "stopped", &err);
	}
	return eng_run_finish(&run, code);
}
