/* queue-send: deliver due queued messages through the WhatsApp Cloud API. */
#include <curl/curl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"
#include "eng_send.h"
#include "eng_wa.h"

static const char usage[] =
	"Usage: queue-send [OPTION]...\n"
	"Deliver due queued messages through the WhatsApp Cloud API. Per message,\n"
	"in order: past its expiry -> cancelled; opted out -> blocked; inside the\n"
	"user's quiet hours -> deferred to the window's end; over the per-user\n"
	"hourly cap -> deferred; no template in the user's language, its base\n"
	"language or en -> failed; else sent. Errors are retried with backoff,\n"
	"deferred, failed, or (bad token, blocked account) stop the run.\n"
	"Many copies may run at once.\n"
	"\n"
	"Options:\n"
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
	"      --timeout DURATION     per request (default 10s)\n"
	"      --connect-timeout DURATION  (default 3s)\n"
	"      --now RFC3339          decide as if it were this instant\n"
	"      --dry-run              show the request bodies, send and change nothing\n"
	"      --db CONNINFO          libpq connection string or URI\n"
	"      --log-level LEVEL      debug, info, warn or error (default info)\n"
	"      --help                 show this help and exit\n"
	"      --version              show the version and exit\n"
	"\n"
	"Environment: WHATSAPP_API_URL (default https://graph.facebook.com),\n"
	"WHATSAPP_API_VERSION (default v23.0), WHATSAPP_PHONE_NUMBER_ID,\n"
	"WHATSAPP_ACCESS_TOKEN_FILE (preferred) or WHATSAPP_ACCESS_TOKEN.\n"
	"\n"
	"Exit status: 0 done; 64 bad command line; 69 the API refused the whole run\n"
	"(every unsent claim handed back); 75 interrupted or database unreachable;\n"
	"77 credentials refused; 78 missing or invalid configuration.\n";

enum {
	OPT_BATCH = 1, OPT_CONC, OPT_RATE, OPT_MAXMSG, OPT_MAXSEC, OPT_WORKER,
	OPT_HOURLY, OPT_RETAIN, OPT_LEASE, OPT_TIMEOUT, OPT_CTIMEOUT,
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
	{NULL, 0, NULL, 0},
};

static enum eng_status on_opt(void *ctx, int opt, const char *arg,
			      struct eng_err *err)
{
	struct eng_send_opts *o = ctx;
	long long v = 0;
	double d;
	enum eng_status st = ENG_OK;
	switch (opt) {
	case OPT_BATCH:
		if (!(st = eng_opt_int("batch", arg, 1, 10000, &v, err)))
			o->batch = (int)v;
		return st;
	case OPT_CONC:
		if (!(st = eng_opt_int("concurrency", arg, 1, 512, &v, err)))
			o->concurrency = (int)v;
		return st;
	case OPT_RATE:
		if (eng_parse_double(arg, 0, 100000, &d))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --rate \"%s\": messages per second, "
					   "0 for no limit",
					   arg);
		o->rate = d;
		return ENG_OK;
	case OPT_MAXMSG:
		if (!(st = eng_opt_int("max-messages", arg, 1, 1000000000, &v, err)))
			o->max_messages = v;
		return st;
	case OPT_MAXSEC:
		if (eng_parse_double(arg, 0.001, 86400, &d))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --max-seconds \"%s\"", arg);
		o->max_seconds = d;
		return ENG_OK;
	case OPT_WORKER:
		if (!*arg || strlen(arg) >= sizeof(o->worker_id))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --worker-id: 1 to %zu characters",
					   sizeof(o->worker_id) - 1);
		snprintf(o->worker_id, sizeof(o->worker_id), "%s", arg);
		return ENG_OK;
	case OPT_HOURLY:
		if (!(st = eng_opt_int("per-user-hourly", arg, 1, 1000, &v, err)))
			o->per_user_hourly = (int)v;
		return st;
	case OPT_RETAIN:
		if (!(st = eng_opt_int("retain-days", arg, 1, 3650, &v, err)))
			o->retain_days = (int)v;
		return st;
	case OPT_LEASE:
		if (!(st = eng_opt_int("lease-seconds", arg, 5, 3600, &v, err)))
			o->lease_seconds = (int)v;
		return st;
	case OPT_TIMEOUT:
	case OPT_CTIMEOUT:
		if (eng_parse_duration_ms(arg, &v) || v < 1 || v > 300000)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --%s \"%s\": a duration such as "
					   "10s or 500ms",
					   opt == OPT_TIMEOUT ? "timeout" : "connect-timeout",
					   arg);
		if (opt == OPT_TIMEOUT)
			o->timeout_ms = v;
		else
			o->connect_timeout_ms = v;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct eng_send_opts o = {
		.batch = 200, .concurrency = 16, .rate = 80, .per_user_hourly = 20,
		.retain_days = 30, .lease_seconds = 60, .timeout_ms = 10000,
		.connect_timeout_ms = 3000,
	};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_NOW | ENG_OPT_DRYRUN, on_opt, &o};
	struct eng_err err = ENG_ERR_INIT;
	struct eng_wa_config wa;
	int first, code = ENG_EXIT_OK;

	eng_run_init(&run, "queue-send");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);
	if (!o.worker_id[0]) {
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(o.worker_id, sizeof(o.worker_id), "%s:%ld", host, (long)getpid());
	}
	json_object_set_new(run.summary, "rate_limit", json_real(o.rate));

	/* The process will hold a secret: no core dump may carry it. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Configuration first: nothing is claimed with a broken one. */
	if (eng_wa_config_load(&wa, &err))
		return eng_run_fail_event(&run, "bad_configuration", &err);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		eng_wa_config_release(&wa);
		eng_err_set(&err, ENG_EINTERNAL, "curl_global_init failed");
		return eng_run_fail(&run, &err);
	}
	eng_log(ENG_DEBUG, "configured", ENG_S("endpoint", wa.endpoint),
		ENG_S("token_from", wa.token_origin));

	if (eng_run_start(&run, ENG_START_SCHEMA | ENG_START_NOW | ENG_START_RECORD,
			  &err)) {
		eng_wa_config_release(&wa);
		curl_global_cleanup();
		return eng_run_fail(&run, &err);
	}
	enum eng_status st = eng_send_run(&run, &o, &wa, &code, &err);
	eng_wa_config_release(&wa);
	curl_global_cleanup();
	if (st)
		return eng_run_fail(&run, &err);
	if (code == ENG_EXIT_UNAVAILABLE) {
		eng_err_set(&err, ENG_EUNAVAIL,
			    "the WhatsApp API refused the whole run: %s",
			    json_string_value(json_object_get(run.summary, "fatal_error")));
		return eng_run_fail_event(&run, "run_refused", &err);
	}
	if (code == ENG_EXIT_TEMPFAIL) {
		eng_err_set(&err, ENG_ETEMP, "interrupted by a signal");
		return eng_run_fail_event(&run, "interrupted", &err);
	}
	return eng_run_finish(&run, code);
}
