/* wa-standin: a local stand-in for the WhatsApp Cloud API send endpoint. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "standin.h"

static const char usage[] =
	"Usage: wa-standin --token-file FILE [OPTION]...\n"
	"A local stand-in for the WhatsApp Cloud API send endpoint\n"
	"(POST /{version}/{phone-number-id}/messages), for tests and demos.\n"
	"\n"
	"Options:\n"
	"      --token-file FILE       the bearer token to accept (else the\n"
	"                              WA_STANDIN_TOKEN environment variable)\n"
	"      --listen ADDR           address to listen on (default 127.0.0.1)\n"
	"      --port N                port (default 0: any free port)\n"
	"      --port-file FILE        write the bound port there once listening\n"
	"      --phone-number-id ID    accept only this phone number id\n"
	"      --record FILE           append one JSON line per request\n"
	"      --slow-ms N             wait for \"slow\" recipients (default 5000)\n"
	"      --latency-ms N          added to every answer (default 0)\n"
	"      --webhook-status N      what POST /_webhook answers (default 200)\n"
	"      --webhook-fail N        the first N webhook requests get 503\n"
	"\n"
	"Meta's webhook side (signed with X-Hub-Signature-256):\n"
	"      --status-webhook URL    post status webhooks for each successful\n"
	"                              send to URL (needs --app-secret-file)\n"
	"      --app-secret-file FILE  the app secret that signs every webhook\n"
	"      --status-delay-ms N     before the first status and between\n"
	"                              statuses (default 50)\n"
	"      --statuses LIST         statuses a recipient gets (default\n"
	"                              sent,delivered,read)\n"
	"      --webhook-retries N     retries of a status POST not answered 2xx\n"
	"                              (default 5)\n"
	"      --webhook-timeout-ms N  give up on one webhook POST after N ms\n"
	"                              (default 10000)\n"
	"      --waba-id ID            entry[].id (default 102290129340398)\n"
	"      --display-phone-number N  metadata.display_phone_number\n"
	"                              (default 15550783881)\n"
	"POST /_standin/inbound and /_standin/raw post inbound messages and\n"
	"raw bodies on request.\n"
	"\n"
	"Meta's account rules (also set by POST /_standin/template, /limits):\n"
	"      --pair-interval-ms N    a second message to one recipient within\n"
	"                              N ms gets 131056 (default 0: off)\n"
	"      --messaging-limit N     at most N distinct recipients per moving\n"
	"                              24 h, then 131049 (default: no limit)\n"
	"\n"
	"      --verbose               show libmicrohttpd's messages while serving\n"
	"      --help                  show this help and exit\n"
	"\n"
	"Recipients ending in 901..920 get chosen errors, 930..937 chosen\n"
	"statuses; see README.md.\n"
	"Exit status: 0 stopped by SIGINT/SIGTERM; 64 bad command line;\n"
	"69 cannot listen; 73 cannot write the record or port file;\n"
	"78 no token, or no app secret for --status-webhook.\n";

enum {
	OPT_TOKEN_FILE = 1,
	OPT_LISTEN,
	OPT_PORT,
	OPT_PORT_FILE,
	OPT_PHONE_NUMBER_ID,
	OPT_RECORD,
	OPT_SLOW_MS,
	OPT_LATENCY_MS,
	OPT_WEBHOOK_STATUS,
	OPT_WEBHOOK_FAIL,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_STATUS_WEBHOOK,
	OPT_APP_SECRET_FILE,
	OPT_STATUS_DELAY_MS,
	OPT_STATUSES,
	OPT_WEBHOOK_RETRIES,
	OPT_WEBHOOK_TIMEOUT_MS,
	OPT_WABA_ID,
	OPT_DISPLAY_PHONE_NUMBER,
	OPT_PAIR_INTERVAL_MS,
	OPT_MESSAGING_LIMIT,
};

static const struct option opts[] = {
	{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port", required_argument, NULL, OPT_PORT},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"phone-number-id", required_argument, NULL, OPT_PHONE_NUMBER_ID},
	{"record", required_argument, NULL, OPT_RECORD},
	{"slow-ms", required_argument, NULL, OPT_SLOW_MS},
	{"latency-ms", required_argument, NULL, OPT_LATENCY_MS},
	{"webhook-status", required_argument, NULL, OPT_WEBHOOK_STATUS},
	{"webhook-fail", required_argument, NULL, OPT_WEBHOOK_FAIL},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, OPT_HELP},
	{"status-webhook", required_argument, NULL, OPT_STATUS_WEBHOOK},
	{"app-secret-file", required_argument, NULL, OPT_APP_SECRET_FILE},
	{"status-delay-ms", required_argument, NULL, OPT_STATUS_DELAY_MS},
	{"statuses", required_argument, NULL, OPT_STATUSES},
	{"webhook-retries", required_argument, NULL, OPT_WEBHOOK_RETRIES},
	{"webhook-timeout-ms", required_argument, NULL, OPT_WEBHOOK_TIMEOUT_MS},
	{"waba-id", required_argument, NULL, OPT_WABA_ID},
	{"display-phone-number", required_argument, NULL, OPT_DISPLAY_PHONE_NUMBER},
	{"pair-interval-ms", required_argument, NULL, OPT_PAIR_INTERVAL_MS},
	{"messaging-limit", required_argument, NULL, OPT_MESSAGING_LIMIT},
	{NULL, 0, NULL, 0},
};

static atomic_bool serving;
static bool verbose;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("wa-standin: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static unsigned parse_uint(const char *name, const char *arg, unsigned max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end || errno || v > max)
		die(SA_EXIT_USAGE, "--%s wants a whole number from 0 to %u, not '%s'",
		    name, max, arg);
	return (unsigned)v;
}

/* Read a secret's file into buf (at most 4096 bytes); returns its length. */
static size_t read_secret_file(const char *what, const char *file, char buf[4096])
{
	FILE *f = fopen(file, "r");
	if (!f)
		die(SA_EXIT_CONFIG, "cannot read the %s file %s: %s", what, file,
		    strerror(errno));
	size_t n = fread(buf, 1, 4096, f);
	bool more = !feof(f) && fgetc(f) != EOF;
	fclose(f);
	if (more)
		die(SA_EXIT_CONFIG, "the %s file %s is too large", what, file);
	return n;
}

/*
 * The secret in buf[0..n), without surrounding white space, as a new
 * string; buf is wiped.
 */
static char *trim_secret(const char *what, char buf[4096], size_t n, size_t *len)
{
	size_t a = 0;
	while (a < n && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
		a++;
	while (n > a && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' ||
			 buf[n - 1] == '\r'))
		n--;
	if (n == a)
		die(SA_EXIT_CONFIG, "the %s is empty", what);
	for (size_t i = a; i < n; i++)
		if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
			die(SA_EXIT_CONFIG, "the %s holds white space or control characters",
			    what);
	char *out = malloc(n - a + 1);
	if (!out)
		die(SA_EXIT_SOFTWARE, "out of memory");
	memcpy(out, buf + a, n - a);
	out[n - a] = '\0';
	*len = n - a;
	explicit_bzero(buf, 4096);
	return out;
}

/* The token, from a file: surrounding white space is not part of it. */
static void read_token(struct sa_config *cfg, const char *file)
{
	char buf[4096];
	size_t n = 0;
	if (file) {
		n = read_secret_file("token", file, buf);
	} else {
		const char *env = getenv("WA_STANDIN_TOKEN");
		if (!env)
			die(SA_EXIT_CONFIG,
			    "no token: give --token-file FILE or set WA_STANDIN_TOKEN");
		n = strlen(env);
		if (n >= sizeof buf)
			die(SA_EXIT_CONFIG, "WA_STANDIN_TOKEN is too long");
		memcpy(buf, env, n);
	}
	cfg->token = trim_secret("token", buf, n, &cfg->token_len);
}

static void read_app_secret(struct sa_config *cfg, const char *file)
{
	char buf[4096];
	size_t n = read_secret_file("app secret", file, buf);
	cfg->app_secret = trim_secret("app secret", buf, n, &cfg->app_secret_len);
}

static void parse_args(int argc, char **argv, struct sa_config *cfg)
{
	const char *token_file = NULL, *secret_file = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case OPT_LISTEN:
			cfg->listen = optarg;
			break;
		case OPT_PORT:
			cfg->port = parse_uint("port", optarg, 65535);
			break;
		case OPT_PORT_FILE:
			cfg->port_file = optarg;
			break;
		case OPT_PHONE_NUMBER_ID:
			if (!sa_is_digits(optarg, strlen(optarg)))
				die(SA_EXIT_USAGE, "--phone-number-id wants digits, not '%s'",
				    optarg);
			cfg->phone_number_id = optarg;
			break;
		case OPT_RECORD:
			cfg->record_path = optarg;
			break;
		case OPT_SLOW_MS:
			cfg->slow_ms = parse_uint("slow-ms", optarg, 3600000);
			break;
		case OPT_WEBHOOK_STATUS:
			cfg->webhook_status = parse_uint("webhook-status", optarg, 599);
			if (cfg->webhook_status < 100)
				die(SA_EXIT_USAGE, "--webhook-status wants an HTTP status "
				    "from 100 to 599, not '%s'", optarg);
			break;
		case OPT_WEBHOOK_FAIL:
			cfg->webhook_fail = parse_uint("webhook-fail", optarg, 1000000);
			break;
		case OPT_LATENCY_MS:
			cfg->latency_ms = parse_uint("latency-ms", optarg, 3600000);
			break;
		case OPT_VERBOSE:
			cfg->verbose = true;
			break;
		case OPT_STATUS_WEBHOOK:
			if (strncmp(optarg, "http://", 7) != 0 &&
			    strncmp(optarg, "https://", 8) != 0)
				die(SA_EXIT_USAGE, "--status-webhook wants an http:// or "
				    "https:// URL, not '%s'", optarg);
			cfg->status_webhook = optarg;
			break;
		case OPT_APP_SECRET_FILE:
			secret_file = optarg;
			break;
		case OPT_STATUS_DELAY_MS:
			cfg->status_delay_ms = parse_uint("status-delay-ms", optarg, 3600000);
			break;
		case OPT_STATUSES:
			if (!sa_parse_statuses(optarg, false, cfg->statuses, &cfg->n_statuses))
				die(SA_EXIT_USAGE, "--statuses wants a comma-separated list of "
				    "sent, delivered, read (each at most once), not '%s'",
				    optarg);
			break;
		case OPT_WEBHOOK_RETRIES:
			cfg->webhook_retries = parse_uint("webhook-retries", optarg, 100);
			break;
		case OPT_WEBHOOK_TIMEOUT_MS:
			cfg->webhook_timeout_ms = parse_uint("webhook-timeout-ms", optarg,
							     3600000);
			if (cfg->webhook_timeout_ms == 0)
				die(SA_EXIT_USAGE, "--webhook-timeout-ms wants a whole number "
				    "from 1 to 3600000, not '%s'", optarg);
			break;
		case OPT_WABA_ID:
			if (!sa_is_digits(optarg, strlen(optarg)))
				die(SA_EXIT_USAGE, "--waba-id wants digits, not '%s'", optarg);
			cfg->waba_id = optarg;
			break;
		case OPT_DISPLAY_PHONE_NUMBER:
			if (!sa_is_digits(optarg, strlen(optarg)))
				die(SA_EXIT_USAGE, "--display-phone-number wants digits, "
				    "not '%s'", optarg);
			cfg->display_phone_number = optarg;
			break;
		case OPT_PAIR_INTERVAL_MS:
			cfg->pair_interval_ms = parse_uint("pair-interval-ms", optarg, 86400000);
			break;
		case OPT_MESSAGING_LIMIT:
			cfg->messaging_limit = parse_uint("messaging-limit", optarg, 1000000000);
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			exit(SA_EXIT_OK);
		case ':':
			die(SA_EXIT_USAGE, "option %s needs a value (try --help)",
			    argv[optind - 1]);
		default:
			die(SA_EXIT_USAGE, "unknown option %s (try --help)",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		die(SA_EXIT_USAGE, "unexpected argument '%s' (try --help)", argv[optind]);
	read_token(cfg, token_file);
	if (secret_file)
		read_app_secret(cfg, secret_file);
	else if (cfg->status_webhook)
		die(SA_EXIT_CONFIG, "--status-webhook needs --app-secret-file FILE");
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	if (atomic_load(&serving) && !verbose)
		return;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	fprintf(stderr, "wa-standin: libmicrohttpd: %s\n", line);
}

static void write_port_file(const char *file, unsigned port)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", file) >= (int)sizeof tmp)
		die(SA_EXIT_CANTCREAT, "the port file name is too long");
	FILE *f = fopen(tmp, "w");
	if (!f)
		die(SA_EXIT_CANTCREAT, "cannot write %s: %s", tmp, strerror(errno));
	int bad = fprintf(f, "%u\n", port) < 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, file) != 0) {
		int e = errno;
		unlink(tmp);
		die(SA_EXIT_CANTCREAT, "cannot write %s: %s", file, strerror(e));
	}
}

int main(int argc, char **argv)
{
	static struct sa_server srv = {
		.cfg = {.listen = "127.0.0.1", .slow_ms = 5000, .webhook_status = 200,
			.status_delay_ms = 50,
			.statuses = {SA_SENT, SA_DELIVERED, SA_READ}, .n_statuses = 3,
			.webhook_retries = 5, .webhook_timeout_ms = 10000,
			.waba_id = "102290129340398",
			.display_phone_number = "15550783881",
			.messaging_limit = -1},
		.record_fd = -1,
	};
	parse_args(argc, argv, &srv.cfg);
	verbose = srv.cfg.verbose;

	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	const struct sockaddr *addr;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (inet_pton(AF_INET, srv.cfg.listen, &sin.sin_addr) == 1) {
		sin.sin_port = htons((uint16_t)srv.cfg.port);
		addr = (const struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, srv.cfg.listen, &sin6.sin6_addr) == 1) {
		sin6.sin6_port = htons((uint16_t)srv.cfg.port);
		addr = (const struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		die(SA_EXIT_USAGE, "--listen wants an IPv4 or IPv6 address, not '%s'",
		    srv.cfg.listen);
	}

	if (srv.cfg.record_path) {
		srv.record_fd = open(srv.cfg.record_path,
				     O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (srv.record_fd < 0)
			die(SA_EXIT_CANTCREAT, "cannot open the record file %s: %s",
			    srv.cfg.record_path, strerror(errno));
	}

	pthread_mutex_init(&srv.mu, NULL);
	pthread_mutex_init(&srv.stop_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv.stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	sa_ids_init();
	json_object_seed(0); /* before any thread makes an object */
	sa_account_init(&srv);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die(SA_EXIT_SOFTWARE, "cannot initialise libcurl");

	/* Signals: SIGPIPE ignored; SIGINT and SIGTERM taken by sigwait here
	 * (blocked before any thread starts, so every thread inherits that). */
	signal(SIGPIPE, SIG_IGN);
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	if (!sa_hooks_start(&srv))
		die(SA_EXIT_SOFTWARE, "cannot start the webhook thread");

	struct MHD_Daemon *d = MHD_start_daemon(
		flags, (uint16_t)srv.cfg.port, NULL, NULL, sa_handle, &srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, addr,
		MHD_OPTION_NOTIFY_COMPLETED, sa_completed, &srv,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)511,
		MHD_OPTION_END);
	if (!d)
		die(SA_EXIT_UNAVAILABLE, "cannot listen on %s port %u", srv.cfg.listen,
		    srv.cfg.port);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = info ? info->port : srv.cfg.port;
	if (srv.cfg.port_file)
		write_port_file(srv.cfg.port_file, port);
	atomic_store(&serving, true);
	fprintf(stderr, "wa-standin: listening on %s port %u\n", srv.cfg.listen, port);

	int sig = 0;
	while (sigwait(&stop, &sig) != 0)
		;

	pthread_mutex_lock(&srv.stop_mu);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.stop_cv);
	pthread_mutex_unlock(&srv.stop_mu);
	/* Queued webhooks are dropped, one in flight is cut short. */
	sa_hooks_stop(&srv);
	MHD_stop_daemon(d);
	sa_hooks_free(&srv);

	if (srv.cfg.port_file)
		unlink(srv.cfg.port_file);
	if (srv.record_fd >= 0)
		close(srv.record_fd);
	sa_strset_free(&srv.failed_once);
	sa_account_free(&srv);
	pthread_cond_destroy(&srv.stop_cv);
	pthread_mutex_destroy(&srv.stop_mu);
	pthread_mutex_destroy(&srv.mu);
	explicit_bzero(srv.cfg.token, srv.cfg.token_len);
	free(srv.cfg.token);
	if (srv.cfg.app_secret) {
		explicit_bzero(srv.cfg.app_secret, srv.cfg.app_secret_len);
		free(srv.cfg.app_secret);
	}
	curl_global_cleanup();
	fprintf(stderr, "wa-standin: stopped by %s after %llu requests\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)srv.requests);
	return SA_EXIT_OK;
}
