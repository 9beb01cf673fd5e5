/* optout-set: set or read a user's re-engagement opt-out, from any channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_lines.h"
#include "eng_optout.h"
#include "eng_phrase.h"
#include "eng_users.h"

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
	const char *user, *phone, *text, *locale, *source, *at, *reason, *batch;
	int values; /* --opt-out, --opt-in, --text given */
	bool opt_out, show;
};

static enum eng_status on_opt(void *p, int opt, const char *arg,
			      struct eng_err *err)
{
	struct ctx *c = p;
	switch (opt) {
	case OPT_USER: c->user = arg; return ENG_OK;
	case OPT_PHONE: c->phone = arg; return ENG_OK;
	case OPT_OUT: c->values++; c->opt_out = true; return ENG_OK;
	case OPT_IN: c->values++; c->opt_out = false; return ENG_OK;
	case OPT_TEXT: c->values++; c->text = arg; return ENG_OK;
	case OPT_AT: c->at = arg; return ENG_OK;
	case OPT_SHOW: c->show = true; return ENG_OK;
	case OPT_BATCH: c->batch = arg; return ENG_OK;
	case OPT_LOCALE: {
		size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		if (!*arg || arg[n] || strlen(arg) > 35)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --locale \"%.40s\": use a tag "
					   "such as en, pt-BR or es",
					   arg);
		c->locale = arg;
		return ENG_OK;
	}
	case OPT_SOURCE:
		if (!eng_optout_source_valid(arg))
			return eng_err_set(err, ENG_EUSAGE,
					   "unknown --source \"%.40s\": use whatsapp, "
					   "web, cli or api",
					   arg);
		c->source = arg;
		return ENG_OK;
	case OPT_REASON:
		if (strlen(arg) > 500)
			return eng_err_set(err, ENG_EUSAGE,
					   "--reason is longer than 500 bytes");
		c->reason = arg;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

/* Validate --user/--phone into ref; ENG_EDATA when malformed. */
static enum eng_status who(const struct ctx *c, struct eng_user_ref *ref,
			   struct eng_err *err)
{
	memset(ref, 0, sizeof(*ref));
	if (c->user && eng_parse_uuid(c->user, ref->user_id))
		return eng_err_set(err, ENG_EDATA, "invalid --user \"%.60s\": not a UUID",
				   c->user);
	if (c->phone) {
		if (!eng_is_e164(c->phone))
			return eng_err_set(err, ENG_EDATA,
					   "invalid --phone: not an E.164 number (a + "
					   "and 8 to 15 digits, the first not 0)");
		snprintf(ref->phone, sizeof(ref->phone), "%s", c->phone);
	}
	return ENG_OK;
}

/* Connect and find the user: 67 when there is none. */
static enum eng_status find(struct eng_run *run, struct eng_user_ref *ref,
			    struct eng_err *err)
{
	if (eng_run_start(run, ENG_START_SCHEMA, err))
		return err->status;
	struct eng_user_ref *refs[] = {ref};
	if (eng_users_resolve(&run->db, refs, 1, err))
		return err->status;
	if (!ref->found) {
		eng_users_not_found(ref, err);
		return err->status;
	}
	eng_run_set_str(run, "user_id", ref->user_id);
	return ENG_OK;
}

static json_t *ts_json(const char *epoch_us)
{
	char ts[32];
	if (!epoch_us || !*epoch_us)
		return json_null();
	eng_time_format_ms(eng_db_epoch_us(epoch_us), ts);
	return json_string(ts);
}

static int run_show(struct eng_run *run, struct ctx *c)
{
	struct eng_err err = ENG_ERR_INIT;
	struct eng_user_ref ref;
	if (who(c, &ref, &err))
		return eng_run_fail_event(run, "invalid_input", &err);
	if (find(run, &ref, &err))
		return eng_run_fail(run, &err);
	const char *p[] = {ref.user_id};
	PGresult *r = eng_db_query(
		&run->db,
		"SELECT coalesce(p.reengagement_opt_out, false),"
		"  (extract(epoch FROM p.reengagement_opt_out_updated_at) * 1000000)::bigint,"
		"  p.reengagement_opt_out_source, coalesce(p.locale, 'en'),"
		"  coalesce(p.timezone, 'UTC'), to_char(p.quiet_hours_start, 'HH24:MI'),"
		"  to_char(p.quiet_hours_end, 'HH24:MI'),"
		"  coalesce(p.preferred_destination, 'individual')"
		" FROM engagement.users u"
		" LEFT JOIN engagement.user_preferences p ON p.user_id = u.id"
		" WHERE u.id = $1::uuid",
		1, p, &err);
	if (!r)
		return eng_run_fail(run, &err);
	json_t *pref = json_object();
	json_object_set_new(pref, "user_id", json_string(ref.user_id));
	json_object_set_new(pref, "reengagement_opt_out",
			    json_boolean(strcmp(PQgetvalue(r, 0, 0), "t") == 0));
	json_object_set_new(pref, "updated_at", ts_json(PQgetvalue(r, 0, 1)));
	json_object_set_new(pref, "source", PQgetisnull(r, 0, 2) ? json_null()
				   : json_string(PQgetvalue(r, 0, 2)));
	json_object_set_new(pref, "locale", json_string(PQgetvalue(r, 0, 3)));
	json_object_set_new(pref, "timezone", json_string(PQgetvalue(r, 0, 4)));
	json_object_set_new(pref, "quiet_hours",
			    PQgetisnull(r, 0, 5) ? json_null()
			    : json_pack("{s:s, s:s}", "start", PQgetvalue(r, 0, 5),
					"end", PQgetvalue(r, 0, 6)));
	json_object_set_new(pref, "preferred_destination",
			    json_string(PQgetvalue(r, 0, 7)));
	PQclear(r);
	json_object_set_new(run->summary, "preference", pref);
	return eng_run_finish(run, ENG_EXIT_OK);
}

static int run_change(struct eng_run *run, struct ctx *c)
{
	struct eng_err err = ENG_ERR_INIT;
	struct eng_user_ref ref;
	struct eng_optout_change ch = {0};
	const char *phrase_locale = NULL;

	if (who(c, &ref, &err))
		return eng_run_fail_event(run, "invalid_input", &err);
	ch.opt_out = c->opt_out;
	if (c->text && !eng_phrase_match(c->text, &ch.opt_out, &phrase_locale)) {
		eng_err_set(&err, ENG_EDATA,
			    "unknown phrase: expected stop reminders, start reminders, "
			    "parar lembretes, ativar lembretes, parar recordatorios "
			    "or activar recordatorios");
		return eng_run_fail_event(run, "unknown_phrase", &err);
	}
	if (c->at && eng_time_parse(c->at, &ch.at)) {
		eng_err_set(&err, ENG_EDATA,
			    "invalid --at \"%.60s\": expected an RFC 3339 timestamp",
			    c->at);
		return eng_run_fail_event(run, "invalid_input", &err);
	}
	if (find(run, &ref, &err))
		return eng_run_fail(run, &err);

	char reason[700];
	if (c->text)
		snprintf(reason, sizeof(reason), "%s%sphrase \"%s\" (%s)%s%s",
			 c->reason ? c->reason : "", c->reason ? "; " : "", c->text,
			 phrase_locale, c->locale ? ", user locale " : "",
			 c->locale ? c->locale : "");
	ch.user_id = ref.user_id;
	ch.source = c->source;
	ch.reason = c->text ? reason : c->reason;
	ch.run_id = run->run_id;

	struct eng_optout_result res;
	enum eng_status st = eng_db_begin(&run->db, &err);
	if (st == ENG_OK)
		st = eng_optout_apply(&run->db, &ch, &res, &err);
	if (st == ENG_OK)
		st = run->opt.dry_run ? (eng_db_rollback(&run->db), ENG_OK)
				      : eng_db_commit(&run->db, &err);
	if (st)
		return eng_run_fail(run, &err);

	char at[32];
	eng_time_format_ms(res.at, at);
	json_object_set_new(run->summary, "opt_out", json_boolean(ch.opt_out));
	eng_run_set_str(run, "outcome", eng_optout_outcome_name(res.outcome));
	json_object_set_new(run->summary, "previous", json_boolean(res.old_value));
	eng_run_set_str(run, "source", ch.source);
	eng_run_set_str(run, "at", at);
	eng_log(ENG_INFO, "preference_changed", ENG_S("user_id", ref.user_id),
		ENG_B("opt_out", ch.opt_out), ENG_S("source", ch.source),
		ENG_S("outcome", eng_optout_outcome_name(res.outcome)));
	return eng_run_finish(run, ENG_EXIT_OK);
}

#define BLOCK 10000

struct batch {
	struct eng_optout_item *it; /* the block */
	long long counts[3], failed, malformed;
};

/* A malformed line stays in the block, failed, to be reported in order. */
static void take_line(void *ctx, size_t i, long lineno, const char *text,
		      size_t len, bool too_long)
{
	struct batch *b = ctx;
	struct eng_optout_item *x = &b->it[i];
	struct eng_err perr = ENG_ERR_INIT;
	memset(x, 0, sizeof(*x));
	x->line = lineno;
	if (too_long)
		eng_err_set(&perr, ENG_EDATA, "line longer than %d bytes", ENG_LINE_MAX);
	else
		eng_optout_parse_json(text, len, x, &perr);
	if (perr.status) {
		b->malformed++;
		x->failed = true;
		x->err = perr;
	}
}

static enum eng_status apply_block(void *ctx, struct eng_run *run, size_t n,
				   struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_optout_item *it = b->it;
	size_t done;
	enum eng_status st = eng_optout_apply_items(&run->db, it, n, run->run_id,
						    run->opt.dry_run, &done, err);
	for (size_t i = 0; i < done; i++) {
		if (it[i].failed) {
			b->failed++;
			eng_log(ENG_ERROR, "line_failed", ENG_I("line", it[i].line),
				ENG_S("user_id", it[i].who.user_id[0] ? it[i].who.user_id : NULL),
				ENG_S("error", it[i].err.msg),
				ENG_S("error_class", eng_status_name(it[i].err.status)));
		} else {
			b->counts[it[i].res.outcome]++;
			eng_log(ENG_INFO, "line_result", ENG_I("line", it[i].line),
				ENG_S("user_id", it[i].who.user_id),
				ENG_B("opt_out", it[i].opt_out),
				ENG_S("outcome", eng_optout_outcome_name(it[i].res.outcome)));
		}
	}
	for (size_t i = 0; i < n; i++)
		eng_optout_item_release(&it[i]);
	return st;
}

static bool summarize(void *ctx, struct eng_run *run)
{
	struct batch *b = ctx;
	eng_run_set_int(run, "applied", b->counts[ENG_OPTOUT_APPLIED]);
	eng_run_set_int(run, "unchanged", b->counts[ENG_OPTOUT_UNCHANGED]);
	eng_run_set_int(run, "stale", b->counts[ENG_OPTOUT_STALE]);
	eng_run_set_int(run, "failed", b->failed);
	eng_run_set_int(run, "malformed", b->malformed);
	return b->failed > 0;
}

static int run_batch(struct eng_run *run, struct ctx *c)
{
	struct batch b = {.it = eng_xcalloc(BLOCK, sizeof(*b.it))};
	struct eng_run_lines rl = {c->batch, ENG_START_SCHEMA, BLOCK, take_line,
				   apply_block, summarize, &b};
	int rc = eng_run_lines(run, &rl);
	free(b.it);
	return rc;
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct ctx c = {0};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_DRYRUN, on_opt, &c};
	int first;

	eng_run_init(&run, "optout-set");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);
	bool change_opts = c.values || c.source || c.at || c.reason || c.locale;
	if (c.batch) {
		if (c.user || c.phone || change_opts || c.show)
			return eng_run_usage(&run, "--batch takes its changes from the "
					     "file: no other option but --dry-run");
		return run_batch(&run, &c);
	}
	if (!c.user == !c.phone)
		return eng_run_usage(&run, "give exactly one of --user and --phone");
	if (c.show) {
		if (change_opts || run.opt.dry_run)
			return eng_run_usage(&run, "--show only reads: no change options");
		return run_show(&run, &c);
	}
	if (c.values != 1)
		return eng_run_usage(&run, "give exactly one of --opt-out, --opt-in "
				     "and --text");
	if (c.locale && !c.text)
		return eng_run_usage(&run, "--locale goes with --text");
	if (!c.source)
		return eng_run_usage(&run, "--source is required: whatsapp, web, cli "
				     "or api");
	return run_change(&run, &c);
}
