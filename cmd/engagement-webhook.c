/* engagement-webhook: receive WhatsApp's webhook (messages and statuses). */
#include <stdio.h>
#include <string.h>

#include "eng_fe.h"
#include "eng_webhook.h"

static const char usage[] =
	"Usage: engagement-webhook --listen ADDR:PORT --app-secret-file FILE\n"
	"                          --verify-token-file FILE [OPTION]...\n"
	"       engagement-webhook --drain [OPTION]...\n"
	"Receive the WhatsApp Cloud API's `messages` webhook, behind a TLS proxy:\n"
	"  GET  the subscription check: the challenge when hub.verify_token is the\n"
	"       verify token, else 403;\n"
	"  POST a delivery signed with X-Hub-Signature-256 (HMAC-SHA256 of the raw\n"
	"       body with the app secret; else 401), at most --max-body (else 413),\n"
	"       a JSON object (else 400): committed to the inbox, then 200.\n"
	"Deliveries are applied within a second, each message and status at most\n"
	"once however often Meta repeats it: a person's message is activity (or\n"
	"their answer to the goodbye: 1, 2, 3 or a goodbye_N button), an opt-out\n"
	"or opt-in phrase also changes the preference, and statuses move each\n"
	"message's delivery_status forward. Unknown numbers, fields and types\n"
	"are counted and ignored. SIGTERM: stop accepting, answer what is in hand,\n"
	"apply what is pending, exit 0. --drain applies what is pending and exits.\n";

static const char options[] =
	"      --listen ADDR:PORT        where to listen (e.g. 127.0.0.1:8090)\n"
	"      --app-secret-file FILE    the Meta app's secret (mode 0600)\n"
	"      --verify-token-file FILE  the verify token set in the app dashboard\n"
	"      --path PATH               the webhook's path (default /)\n"
	"      --max-body BYTES          largest delivery accepted (default 1048576)\n"
	"      --threads N               request threads (default 2)\n"
	"      --connection-timeout D    an idle connection is closed (default 10s)\n"
	"      --request-timeout D       a request (headers and body), or a stretch\n"
	"                                between requests, may take this long at\n"
	"                                most, however slowly its bytes come\n"
	"                                (default 30s)\n"
	"      --max-connections-per-ip N  connections from one address (default 64)\n"
	"      --batch N                 deliveries applied per transaction (default 200)\n"
	"      --retain-days N           applied deliveries and event ids kept (default 30)\n"
	"      --drain                   apply the pending inbox and exit\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "stopped by SIGTERM or drained"},
	{ENG_EXIT_CONFIG, "bad configuration (secret files, an address it cannot listen "
			  "on) or schema not migrated"},
	{0},
};

enum {
	OPT_LISTEN = 1, OPT_SECRET, OPT_TOKEN, OPT_PATH, OPT_MAXBODY, OPT_THREADS,
	OPT_CTIMEOUT, OPT_BATCH, OPT_RETAIN, OPT_DRAIN, OPT_RTIMEOUT, OPT_PERIP,
};

static const struct option opts[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"app-secret-file", required_argument, NULL, OPT_SECRET},
	{"verify-token-file", required_argument, NULL, OPT_TOKEN},
	{"path", required_argument, NULL, OPT_PATH},
	{"max-body", required_argument, NULL, OPT_MAXBODY},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"connection-timeout", required_argument, NULL, OPT_CTIMEOUT},
	{"request-timeout", required_argument, NULL, OPT_RTIMEOUT},
	{"max-connections-per-ip", required_argument, NULL, OPT_PERIP},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"retain-days", required_argument, NULL, OPT_RETAIN},
	{"drain", no_argument, NULL, OPT_DRAIN},
	{NULL, 0, NULL, 0},
};

struct ctx {
	struct eng_webhook_opts o; /* first: what run() and done() hand the core */
	const char *secret_file, *token_file;
	long timeout_ms;
};

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_MAXBODY, ENG_NUM_LLONG, 1024, 64 * 1024 * 1024, struct ctx, o.max_body,
		NULL),
	ENG_NUM(OPT_THREADS, ENG_NUM_INT, 1, 64, struct ctx, o.threads, NULL),
	ENG_NUM(OPT_CTIMEOUT, ENG_NUM_MS, 1000, 3600000, struct ctx, timeout_ms, NULL),
	ENG_NUM(OPT_RTIMEOUT, ENG_NUM_MS, 1000, 3600000, struct ctx, o.request_timeout_ms, NULL),
	ENG_NUM(OPT_PERIP, ENG_NUM_INT, 1, 4096, struct ctx, o.max_per_ip, NULL),
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 10000, struct ctx, o.batch, NULL),
	ENG_NUM(OPT_RETAIN, ENG_NUM_INT, 8, 3650, struct ctx, o.retain_days,
		"expected 8 to 3650 days (Meta repeats deliveries for 7)"),
	ENG_COPY(OPT_LISTEN, struct ctx, o.listen),
	ENG_COPY(OPT_PATH, struct ctx, o.path),
	ENG_ARG(OPT_SECRET, struct ctx, secret_file),
	ENG_ARG(OPT_TOKEN, struct ctx, token_file),
	ENG_FLAG(OPT_DRAIN, struct ctx, o.drain),
	{0},
};

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	(void)a;
	struct ctx *c = p;
	c->o.connection_timeout_s = (int)((c->timeout_ms + 999) / 1000);
	if (c->o.drain) {
		if (c->o.listen[0] || c->secret_file || c->token_file)
			return eng_err_set(err, ENG_EUSAGE, "--drain serves nothing: no "
					   "--listen, --app-secret-file or --verify-token-file");
		return ENG_OK;
	}
	if (!c->o.listen[0] || !c->secret_file || !c->token_file)
		return eng_err_set(err, ENG_EUSAGE, "--listen, --app-secret-file and "
				   "--verify-token-file are required (or --drain)");
	return eng_webhook_check(&c->o, c->secret_file, c->token_file, err);
}

ENG_PROG_RUN(run, eng_webhook_run, struct eng_webhook_opts)

ENG_PROG_DONE(done, eng_webhook_opts_release, struct eng_webhook_opts)

static const struct eng_prog prog = {
	.name = "engagement-webhook", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.start = ENG_START_DB | ENG_START_SCHEMA, .secret = true,
	.check = check, .run = run, .done = done,
};

int main(int argc, char **argv)
{
	struct ctx c = {.o = {.path = "/", .max_body = 1024 * 1024, .threads = 2,
			      .retain_days = 30, .batch = 200, .request_timeout_ms = 30000,
			      .max_per_ip = 64},
			.timeout_ms = 10000};
	return eng_main(&prog, &c, argc, argv);
}
