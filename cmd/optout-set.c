/* optout-set: set or read a user's re-engagement opt-out, from any channel. */
#include <string.h>

#include "eng_fe.h"
#include "eng_optout.h"

static const char usage[] =
	"Usage: optout-set (--user UUID | --phone E164)\n"
	"                  (--opt-out | --opt-in | --text PHRASE [--locale L])\n"
	"                  --source whatsapp|web|cli|api [--at RFC3339] [--reason TEXT]\n"
	"       optout-set --show (--user UUID | --phone E164)\n"
	"       optout-set --batch FILE|-\n"
	"Switch a user's re-engagement messages off or on. The newest change wins:\n"
	"a change applies only if --at (default: the database's now) is not older\n"
	"than the stored one; an older one is reported stale and changes nothing.\n"
	"Outcomes (all exit 0): applied, unchanged, stale. An applied change writes\n"
	"the preference, an audit record (who, when, from where, old and new value),\n"
	"an outbox event and a NOTIFY on engagement_preferences, in one transaction.\n"
	"\n"
	"--text takes what the person wrote, case, accents and spacing ignored:\n"
	"  en: stop reminders / start reminders\n"
	"  pt-BR: parar lembretes / ativar lembretes\n"
	"  es: parar recordatorios / activar recordatorios\n"
	"--batch applies JSON lines in order, an offline channel's queue:\n"
	"  {\"user_id\"|\"phone\": ..., \"opt_out\": true|false, \"source\": ...,\n"
	"   \"at\": RFC3339 (optional), \"reason\": text (optional)}\n"
	"each line's outcome is logged (line_result, or line_failed).\n"
	"\n"
	"Options:\n"
	"      --dry-run          report the outcome, change nothing\n"
	"      --db CONNINFO      libpq connection string or URI\n"
	"      --log-level LEVEL  debug, info, warn or error (default info)\n"
	"      --log-format FORMAT\n"
	"                         auto (text on a terminal), json or text\n"
	"      --summary-format FORMAT\n"
	"                         auto (indented on a terminal), json or pretty\n"
	"      --help             show this help and exit\n"
	"      --version          show the version and exit\n"
	"\n"
	"Exit status: 0 done (applied, unchanged or stale); 1 (--batch) some lines\n"
	"failed; 64 bad command line (including an unknown --source); 65 unknown\n"
	"phrase, malformed UUID, phone or timestamp; 67 no such user; 75 database\n"
	"unreachable; 77 credentials refused; 78 configuration or schema.\n";

enum {
	OPT_USER = 1, OPT_PHONE, OPT_OUT, OPT_IN, OPT_TEXT, OPT_LOCALE, OPT_SOURCE,
	OPT_AT, OPT_REASON, OPT_SHOW, OPT_BATCH,
};

static const struct option opts[] = {
	{"user", required_argument, NULL, OPT_USER},
	{"phone", required_argument, NULL, OPT_PHONE},
	{"opt-out", no_argument, NULL, OPT_OUT},
	{"opt-in", no_argument, NULL, OPT_IN},
	{"text", required_argument, NULL, OPT_TEXT},
	{"locale", required_argument, NULL, OPT_LOCALE},
	{"source", required_argument, NULL, OPT_SOURCE},
	{"at", required_argument, NULL, OPT_AT},
	{"reason", required_argument, NULL, OPT_REASON},
	{"show", no_argument, NULL, OPT_SHOW},
	{"batch", required_argument, NULL, OPT_BATCH},
	{NULL, 0, NULL, 0},
};

struct ctx {
	struct eng_optout_args a;
	const char *batch;
	int values; /* --opt-out, --opt-in, --text given */
	bool show;
	struct eng_optout_request rq;
};

static enum eng_status on_opt(void *p, int opt, const char *arg, struct eng_err *err)
{
	struct ctx *c = p;
	switch (opt) {
	case OPT_USER: c->a.user = arg; return ENG_OK;
	case OPT_PHONE: c->a.phone = arg; return ENG_OK;
	case OPT_OUT: c->values++; c->a.opt_out = true; return ENG_OK;
	case OPT_IN: c->values++; c->a.opt_out = false; return ENG_OK;
	case OPT_TEXT:
		if (strlen(arg) > 200)
			return eng_err_set(err, ENG_EUSAGE, "--text is longer than 200 bytes");
		c->values++;
		c->a.text = arg;
		return ENG_OK;
	case OPT_AT: c->a.at = arg; return ENG_OK;
	case OPT_SHOW: c->show = true; return ENG_OK;
	case OPT_BATCH: c->batch = arg; return ENG_OK;
	case OPT_LOCALE: {
		size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		if (!*arg || arg[n] || strlen(arg) > 35)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --locale \"%.40s\": use a tag such as "
					   "en, pt-BR or es",
					   arg);
		c->a.locale = arg;
		return ENG_OK;
	}
	case OPT_SOURCE:
		if (!eng_optout_source_valid(arg))
			return eng_err_set(err, ENG_EUSAGE,
					   "unknown --source \"%.40s\": use whatsapp, web, "
					   "cli or api",
					   arg);
		c->a.source = arg;
		return ENG_OK;
	case OPT_REASON:
		if (strlen(arg) > 500)
			return eng_err_set(err, ENG_EUSAGE, "--reason is longer than 500 bytes");
		c->a.reason = arg;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

static enum eng_status usage_error(struct eng_err *err, const char *msg)
{
	return eng_err_set(err, ENG_EUSAGE, "%s", msg);
}

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	struct ctx *c = p;
	if (eng_no_arguments(a, err))
		return err->status;
	bool change_opts = c->values || c->a.source || c->a.at || c->a.reason || c->a.locale;
	if (c->batch) {
		if (c->a.user || c->a.phone || change_opts || c->show)
			return usage_error(err, "--batch takes its changes from the file: no "
					   "other option but --dry-run");
		return ENG_OK;
	}
	if (!c->a.user == !c->a.phone)
		return usage_error(err, "give exactly one of --user and --phone");
	if (c->show) {
		if (change_opts || a->common->dry_run)
			return usage_error(err, "--show only reads: no change options");
		return eng_user_ref_from_args(c->a.user, c->a.phone, &c->rq.who, err);
	}
	if (c->values != 1)
		return usage_error(err, "give exactly one of --opt-out, --opt-in and --text");
	if (c->a.locale && !c->a.text)
		return usage_error(err, "--locale goes with --text");
	if (!c->a.source)
		return usage_error(err, "--source is required: whatsapp, web, cli or api");
	return eng_optout_from_args(&c->a, &c->rq, err);
}

static enum eng_status run(void *p, const struct eng_job *job, struct eng_err *err)
{
	struct ctx *c = p;
	if (c->batch)
		return eng_optout_batch(job, c->batch, err);
	if (c->show)
		return eng_optout_show(job, &c->rq.who, err);
	return eng_optout_set(job, &c->rq, err);
}

static const struct eng_prog prog = {
	.name = "optout-set", .usage = usage, .opts = opts, .on_opt = on_opt,
	.common = ENG_OPT_DRYRUN, .start = ENG_START_DB | ENG_START_SCHEMA,
	.check = check, .run = run,
};

int main(int argc, char **argv)
{
	struct ctx c = {0};
	return eng_main(&prog, &c, argc, argv);
}
