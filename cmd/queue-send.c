/* queue-send: deliver due queued messages through the WhatsApp Cloud API. */
#include <stdio.h>
#include <string.h>

#include "eng_fe.h"
#include "eng_send.h"

static const char usage[] =
	"Usage: queue-send [OPTION]...\n"
	"Deliver due queued messages through the WhatsApp Cloud API. Per message,\n"
	"in order: past its expiry -> cancelled; opted out -> blocked; inside the\n"
	"user's quiet hours -> deferred to the window's end; over the per-user\n"
	"hourly cap -> deferred; no template in the user's language, its base\n"
	"language or en -> failed; else sent. Errors are retried with backoff,\n"
	"deferred, failed, or (bad token, blocked account) stop the run.\n"
	"Many copies may run at once. --dry-run shows the request bodies, and\n"
	"sends and changes nothing.\n"
	"\n"
	"Environment: WHATSAPP_API_URL (default https://graph.facebook.com),\n"
	"WHATSAPP_API_VERSION (default v23.0), WHATSAPP_PHONE_NUMBER_ID,\n"
	"WHATSAPP_ACCESS_TOKEN_FILE (preferred) or WHATSAPP_ACCESS_TOKEN.\n";

static const char options[] =
	"      --batch N              messages per claim (default 200)\n"
	"      --concurrency N        requests in flight (default 16)\n"
	"      --rate MPS             messages per second, for all senders of this\n"
	"                             number together (default 80; 0: no limit)\n"
	"      --max-messages N       stop after claiming N messages\n"
	"      --max-seconds S        stop claiming after S seconds\n"
	"      --worker-id ID         name on the claims (default host:pid)\n"
	"      --per-user-hourly N    messages per user per rolling hour (default 20)\n"
	"      --retain-days N        delete finished messages older than this (default 30)\n"
	"      --lease-seconds N      how long a claim is held (default 60)\n"
	"      --pair-interval DURATION  at least this between two requests to one\n"
	"                             person (default 6s; 0: none)\n"
	"      --timeout DURATION     per request (default 10s)\n"
	"      --connect-timeout DURATION  (default 3s)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_UNAVAILABLE, "the API refused the whole run (every unsent claim handed back)"},
	ENG_EXIT_SIGNAL,
	{0},
};

enum {
	OPT_BATCH = 1, OPT_CONC, OPT_RATE, OPT_MAXMSG, OPT_MAXSEC, OPT_WORKER,
	OPT_HOURLY, OPT_RETAIN, OPT_LEASE, OPT_TIMEOUT, OPT_CTIMEOUT, OPT_PAIR,
};

static const struct option opts[] = {
	{"batch", required_argument, NULL, OPT_BATCH},
	{"concurrency", required_argument, NULL, OPT_CONC},
	{"rate", required_argument, NULL, OPT_RATE},
	{"max-messages", required_argument, NULL, OPT_MAXMSG},
	{"max-seconds", required_argument, NULL, OPT_MAXSEC},
	{"worker-id", required_argument, NULL, OPT_WORKER},
	{"per-user-hourly", required_argument, NULL, OPT_HOURLY},
	{"retain-days", required_argument, NULL, OPT_RETAIN},
	{"lease-seconds", required_argument, NULL, OPT_LEASE},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
	{"pair-interval", required_argument, NULL, OPT_PAIR},
	{NULL, 0, NULL, 0},
};

#define SO struct eng_send_opts

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 10000, SO, batch, NULL),
	ENG_NUM(OPT_CONC, ENG_NUM_INT, 1, 512, SO, concurrency, NULL),
	ENG_NUM(OPT_RATE, ENG_NUM_REAL, 0, 100000, SO, rate,
		"messages per second, 0 for no limit"),
	ENG_NUM(OPT_MAXMSG, ENG_NUM_LLONG, 1, 1000000000, SO, max_messages, NULL),
	ENG_NUM(OPT_MAXSEC, ENG_NUM_REAL, 0.001, 86400, SO, max_seconds, "seconds"),
	ENG_NUM(OPT_HOURLY, ENG_NUM_INT, 1, 1000, SO, per_user_hourly, NULL),
	ENG_NUM(OPT_RETAIN, ENG_NUM_INT, 1, 3650, SO, retain_days, NULL),
	ENG_NUM(OPT_LEASE, ENG_NUM_INT, 5, 3600, SO, lease_seconds, NULL),
	ENG_NUM(OPT_TIMEOUT, ENG_NUM_MS, 1, 300000, SO, timeout_ms, NULL),
	ENG_NUM(OPT_CTIMEOUT, ENG_NUM_MS, 1, 300000, SO, connect_timeout_ms, NULL),
	ENG_NUM(OPT_PAIR, ENG_NUM_MS, 0, 3600000, SO, pair_ms, NULL),
	ENG_COPY(OPT_WORKER, SO, worker_id),
	{0},
};

static enum eng_status check(void *o, struct eng_args *a, struct eng_err *err)
{
	(void)a;
	return eng_send_check(o, err);
}

ENG_PROG_RUN(run, eng_send_run, SO)

ENG_PROG_DONE(done, eng_send_opts_release, SO)

static const struct eng_prog prog = {
	.name = "queue-send", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.common = ENG_OPT_NOW | ENG_OPT_DRYRUN,
	.start = ENG_START_SCHEMA | ENG_START_DB | ENG_START_NOW | ENG_START_RECORD,
	.secret = true, .check = check, .run = run, .done = done,
};

int main(int argc, char **argv)
{
	SO o = {
		.batch = 200, .concurrency = 16, .rate = 80, .per_user_hourly = 20,
		.retain_days = 30, .lease_seconds = 60, .timeout_ms = 10000,
		.connect_timeout_ms = 3000, .pair_ms = 6000,
	};
	return eng_main(&prog, &o, argc, argv);
}
