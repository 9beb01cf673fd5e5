#include "eng_opt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"
#include "eng_parse.h"

/* The shared options: what getopt_long knows them by, and their lines in
 * --help, in the order --help shows them after the program's own (a "\n"
 * in a description goes on at the description's column). */
static const struct {
	struct option opt;
	const char *arg; /* the value's name, NULL for a flag */
	const char *help;
} common_opts[] = {
	{{"now", required_argument, NULL, ENG_OPTC_NOW}, "RFC3339",
	 "evaluate as if it were this instant\n(default: the database's clock)"},
	{{"dry-run", no_argument, NULL, ENG_OPTC_DRYRUN}, NULL,
	 "report what would happen, change nothing"},
	{{"db", required_argument, NULL, ENG_OPTC_DB}, "CONNINFO",
	 "libpq connection string or URI\n(else DATABASE_URL, else libpq defaults)"},
	{{"log-level", required_argument, NULL, ENG_OPTC_LOGLEVEL}, "LEVEL",
	 "debug, info, warn or error (default info)"},
	{{"log-format", required_argument, NULL, ENG_OPTC_LOGFORMAT}, "FORMAT",
	 "auto (text on a terminal), json or text"},
	{{"summary-format", required_argument, NULL, ENG_OPTC_SUMFORMAT}, "FORMAT",
	 "auto (indented on a terminal), json or pretty"},
	{{"help", no_argument, NULL, ENG_OPTC_HELP}, NULL, "show this help and exit"},
	{{"version", no_argument, NULL, ENG_OPTC_VERSION}, NULL, "show the version and exit"},
};

#define NCOMMON (sizeof(common_opts) / sizeof(*common_opts))

static bool wanted(int val, unsigned flags)
{
	switch (val) {
	case ENG_OPTC_DB: return !(flags & ENG_OPT_NODB);
	case ENG_OPTC_NOW: return flags & ENG_OPT_NOW;
	case ENG_OPTC_DRYRUN: return flags & ENG_OPT_DRYRUN;
	default: return true;
	}
}

static enum eng_status common(struct eng_common *c, int opt, const char *arg,
			      struct eng_err *err)
{
	switch (opt) {
	case ENG_OPTC_DB:
		c->db = arg;
		return ENG_OK;
	case ENG_OPTC_HELP:
		c->help = true;
		return ENG_OK;
	case ENG_OPTC_VERSION:
		c->version = true;
		return ENG_OK;
	case ENG_OPTC_LOGLEVEL: {
		int lvl = eng_log_parse_level(arg);
		if (lvl < 0)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --log-level \"%s\": use debug, "
					   "info, warn or error",
					   arg);
		eng_log_set_level((enum eng_level)lvl);
		return ENG_OK;
	}
	case ENG_OPTC_NOW:
		if (eng_time_parse(arg, &c->now))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --now \"%s\": expected an RFC 3339 "
					   "timestamp such as 2026-11-22T06:00:00Z",
					   arg);
		c->have_now = true;
		return ENG_OK;
	case ENG_OPTC_DRYRUN:
		c->dry_run = true;
		return ENG_OK;
	case ENG_OPTC_LOGFORMAT: {
		bool colour;
		int f = eng_log_choose_format(arg, 2, &colour);
		if (f < 0)
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --log-format \"%s\": use auto, json or text",
					   arg);
		eng_log_set_format((enum eng_log_format)f, colour);
		return ENG_OK;
	}
	case ENG_OPTC_SUMFORMAT: {
		/* in the order of enum eng_summary_format */
		static const char *const formats[] = {"auto", "json", "pretty"};
		int f = 0;
		if (eng_opt_choice("summary-format", arg, formats, 3, &f, err))
			return err->status;
		c->summary_format = (enum eng_summary_format)f;
		return ENG_OK;
	}
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option %d", opt);
}

static const struct eng_opt_field *find_field(const struct eng_cmd *cmd, int opt)
{
	for (const struct eng_opt_field *f = cmd->fields; f && f->opt; f++)
		if (f->opt == opt)
			return f;
	return NULL;
}

static const char *option_name(const struct option *all, int opt)
{
	for (; all->name; all++)
		if (all->val == opt)
			return all->name;
	return "?";
}

/* ms in the largest unit that says it exactly: 500ms, 30s, 5min, 365d. */
static void duration_text(double ms, char out[32])
{
	static const struct { double ms; const char *unit; } units[] = {
		{86400000, "d"}, {3600000, "h"}, {60000, "min"}, {1000, "s"},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
		if (ms >= units[i].ms && fmod(ms, units[i].ms) == 0) {
			snprintf(out, 32, "%.0f%s", ms / units[i].ms, units[i].unit);
			return;
		}
	snprintf(out, 32, "%.0fms", ms);
}

static enum eng_status store_number(const struct eng_opt_field *num, const char *name,
				    const char *arg, char *at, struct eng_err *err)
{
	long long v = 0;
	double d = 0;
	bool ok;
	switch (num->kind) {
	case ENG_NUM_MS:
		ok = eng_parse_duration_ms(arg, &v) == 0 && v >= num->lo && v <= num->hi;
		break;
	case ENG_NUM_REAL:
		ok = eng_parse_double(arg, num->lo, num->hi, &d) == 0;
		break;
	default:
		ok = eng_parse_int(arg, (long long)num->lo, (long long)num->hi, &v) == 0;
		break;
	}
	if (!ok) {
		if (num->meaning)
			return eng_err_set(err, ENG_EUSAGE, "invalid --%s \"%s\": %s", name,
					   arg, num->meaning);
		if (num->kind == ENG_NUM_MS) {
			char lo[32], hi[32];
			duration_text(num->lo, lo);
			duration_text(num->hi, hi);
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --%s \"%s\": a duration from %s to %s, "
					   "such as 10s or 500ms",
					   name, arg, lo, hi);
		}
		return eng_err_set(err, ENG_EUSAGE, "invalid --%s \"%s\": expected %g to %g",
				   name, arg, num->lo, num->hi);
	}
	switch (num->kind) {
	case ENG_NUM_INT: *(int *)(void *)at = (int)v; break;
	case ENG_NUM_LLONG: *(long long *)(void *)at = v; break;
	case ENG_NUM_MS: *(long *)(void *)at = (long)v; break;
	case ENG_NUM_REAL: *(double *)(void *)at = d; break;
	default: break;
	}
	return ENG_OK;
}

enum eng_status eng_opt_store(const struct eng_opt_field *f, const char *name,
			      const char *arg, void *ctx, struct eng_err *err)
{
	char *at = (char *)ctx + f->off;
	switch (f->kind) {
	case ENG_OPT_FLAG:
		*(bool *)(void *)at = true;
		return ENG_OK;
	case ENG_OPT_TEXT:
	case ENG_OPT_COPY:
		if (eng_opt_text(name, arg, (size_t)f->lo, (size_t)f->hi, err))
			return err->status;
		if (f->kind == ENG_OPT_TEXT)
			*(const char **)(void *)at = arg;
		else
			memcpy(at, arg, strlen(arg) + 1);
		return ENG_OK;
	default:
		return store_number(f, name, arg, at, err);
	}
}

enum eng_status eng_opt_parse(const struct eng_cmd *cmd, int argc,
			      char **argv, struct eng_common *c,
			      int *first_arg, struct eng_err *err)
{
	size_t nprog = 0;
	while (cmd->opts && cmd->opts[nprog].name)
		nprog++;
	struct option *all = eng_xcalloc(nprog + NCOMMON + 1, sizeof(*all));
	size_t k = 0;
	for (size_t i = 0; i < nprog; i++)
		all[k++] = cmd->opts[i];
	for (size_t i = 0; i < NCOMMON; i++)
		if (wanted(common_opts[i].opt.val, cmd->common))
			all[k++] = common_opts[i].opt;

	enum eng_status st = ENG_OK;
	const struct eng_opt_field *field;
	int opt;
	opterr = 0;
	optind = 0; /* full re-initialisation (glibc), so tests may reparse */
	while (st == ENG_OK &&
	       (opt = getopt_long(argc, argv, ":", all, NULL)) != -1) {
		const char *bad = argv[optind - 1] ? argv[optind - 1] : "";
		if (opt == '?') {
			if (strncmp(bad, "--", 2) == 0) {
				size_t n = strcspn(bad, "=");
				st = eng_err_set(err, ENG_EUSAGE,
						 "unrecognized option '%.*s'",
						 (int)n, bad);
			} else {
				st = eng_err_set(err, ENG_EUSAGE,
						 "invalid option -- '%c'",
						 optopt ? optopt : '?');
			}
		} else if (opt == ':') {
			st = eng_err_set(err, ENG_EUSAGE,
					 "option '%s' requires a value", bad);
		} else if (opt >= ENG_OPTC_DB && opt <= ENG_OPTC_LAST) {
			st = common(c, opt, optarg, err);
		} else if ((field = find_field(cmd, opt)) != NULL) {
			st = eng_opt_store(field, option_name(all, opt), optarg, cmd->ctx, err);
		} else if (cmd->handle) {
			st = cmd->handle(cmd->ctx, opt, optarg, err);
		} else {
			st = eng_err_set(err, ENG_EINTERNAL,
					 "unhandled option %d", opt);
		}
	}
	*first_arg = optind;
	free(all);
	return st;
}

enum eng_status eng_opt_int(const char *name, const char *arg, long long lo,
			    long long hi, long long *v, struct eng_err *err)
{
	if (eng_parse_int(arg, lo, hi, v))
		return eng_err_set(err, ENG_EUSAGE,
				   "invalid --%s \"%s\": expected %lld to %lld", name,
				   arg, lo, hi);
	return ENG_OK;
}

enum eng_status eng_opt_choice(const char *name, const char *arg, const char *const *words,
			       size_t n, int *i, struct eng_err *err)
{
	char list[256] = "";
	size_t len = 0;
	for (size_t k = 0; k < n; k++) {
		if (strcmp(arg, words[k]) == 0) {
			*i = (int)k;
			return ENG_OK;
		}
		const char *sep = k == 0 ? "" : k + 1 < n ? ", " : " or ";
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", sep, words[k]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	return eng_err_set(err, ENG_EUSAGE, "invalid --%s \"%.40s\": use %s", name, arg, list);
}

enum eng_status eng_opt_text(const char *name, const char *arg, size_t lo, size_t hi,
			     struct eng_err *err)
{
	size_t n = strlen(arg);
	if (n >= lo && n <= hi)
		return ENG_OK;
	if (lo == 0)
		return eng_err_set(err, ENG_EUSAGE, "invalid --%s: expected at most %zu bytes",
				   name, hi);
	return eng_err_set(err, ENG_EUSAGE, "invalid --%s: expected %zu to %zu bytes", name,
			   lo, hi);
}

/* ---- --help ------------------------------------------------------------------ */

#define HELP_COLUMN 29  /* where descriptions start, when own says nothing */
#define HELP_MAXCOL 60

/* The column where the descriptions of the program's own options start
 * (the most common one), so that the shared options line up with them. */
static size_t help_column(const char *own)
{
	unsigned count[HELP_MAXCOL] = {0};
	size_t best = HELP_COLUMN;
	for (const char *l = own; l && *l;) {
		size_t len = strcspn(l, "\n");
		const char *end = l + len;
		if (len > 8 && strncmp(l, "      --", 8) == 0) {
			const char *g = l + 8;
			while (g + 1 < end && !(g[0] == ' ' && g[1] == ' '))
				g++;
			size_t col = (size_t)(g + strspn(g, " ") - l);
			if (g + 1 < end && col < len && col < HELP_MAXCOL &&
			    ++count[col] > count[best])
				best = col;
		}
		l = *end ? end + 1 : end;
	}
	return best;
}

void eng_opt_help(struct eng_buf *out, const char *own, unsigned common)
{
	size_t col = help_column(own);
	eng_buf_adds(out, "Options:\n");
	eng_buf_adds(out, own ? own : "");
	for (size_t i = 0; i < NCOMMON; i++) {
		if (!wanted(common_opts[i].opt.val, common))
			continue;
		const char *arg = common_opts[i].arg, *help = common_opts[i].help;
		size_t w = out->len;
		eng_buf_addf(out, "      --%s%s%s", common_opts[i].opt.name, arg ? " " : "",
			     arg ? arg : "");
		w = out->len - w;
		if (w + 2 > col) { /* a long name: its description on the next line */
			eng_buf_addc(out, '\n');
			w = 0;
		}
		for (;;) {
			size_t n = strcspn(help, "\n");
			eng_buf_addf(out, "%*s%.*s\n", (int)(col - w), "", (int)n, help);
			if (!help[n])
				break;
			help += n + 1;
			w = 0;
		}
	}
}
