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
	"each line's outcome is logged (line_result, or line_failed).\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_OK, "done (applied, unchanged or stale)"},
	{ENG_EXIT_PARTIAL, "(--batch) some lines failed"},
	{ENG_EXIT_USAGE, "bad command line (including an unknown --source)"},
	{ENG_EXIT_DATAERR, "unknown phrase, malformed UUID, phone or timestamp"},
	{ENG_EXIT_NOUSER, NULL},
	{0},
};

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

static const struct eng_opt_field fields[] = {
	ENG_ARG(OPT_USER, struct ctx, a.user),
	ENG_ARG(OPT_PHONE, struct ctx, a.phone),
	ENG_ARG(OPT_AT, struct ctx, a.at),
	ENG_TEXT(OPT_REASON, 0, 500, struct ctx, a.reason),
	ENG_FLAG(OPT_SHOW, struct ctx, show),
	ENG_ARG(OPT_BATCH, struct ctx, batch),
	{0},
};

static enum eng_status on_opt(void *p, int opt, const char *arg, struct eng_err *err)
{
	struct ctx *c = p;
	switch (opt) {
	case OPT_OUT: c->values++; c->a.opt_out = true; return ENG_OK;
	case OPT_IN: c->values++; c->a.opt_out = false; return ENG_OK;
	case OPT_TEXT:
		c->values++;
		c->a.text = arg;
		return eng_opt_text("text", arg, 0, 200, err);
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
	case OPT_SOURCE: {
		int i;
		c->a.source = arg;
		return eng_opt_choice("source", arg, eng_optout_sources, ENG_OPTOUT_NSOURCES, &i,
				      err);
	}
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
	.name = "optout-set", .usage = usage, .exits = exits, .opts = opts,
	.fields = fields, .on_opt = on_opt,
	.common = ENG_OPT_DRYRUN, .start = ENG_START_DB | ENG_START_SCHEMA,
	.check = check, .run = run,
};

int main(int argc, char **argv)
{
	struct ctx c = {0};
	return eng_main(&prog, &c, argc, argv);
}
