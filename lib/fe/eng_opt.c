#include "eng_opt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"
#include "eng_parse.h"

static const struct option common_opts[] = {
	{"db", required_argument, NULL, ENG_OPTC_DB},
	{"help", no_argument, NULL, ENG_OPTC_HELP},
	{"version", no_argument, NULL, ENG_OPTC_VERSION},
	{"log-level", required_argument, NULL, ENG_OPTC_LOGLEVEL},
	{"now", required_argument, NULL, ENG_OPTC_NOW},
	{"dry-run", no_argument, NULL, ENG_OPTC_DRYRUN},
	{"log-format", required_argument, NULL, ENG_OPTC_LOGFORMAT},
	{"summary-format", required_argument, NULL, ENG_OPTC_SUMFORMAT},
};

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
	case ENG_OPTC_SUMFORMAT:
		if (strcmp(arg, "auto") == 0)
			c->summary_format = ENG_SUMMARY_AUTO;
		else if (strcmp(arg, "json") == 0)
			c->summary_format = ENG_SUMMARY_JSON;
		else if (strcmp(arg, "pretty") == 0)
			c->summary_format = ENG_SUMMARY_PRETTY;
		else
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --summary-format \"%s\": use auto, json "
					   "or pretty",
					   arg);
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option %d", opt);
}

static const struct eng_opt_num *find_num(const struct eng_cmd *cmd, int opt)
{
	for (const struct eng_opt_num *n = cmd->nums; n && n->opt; n++)
		if (n->opt == opt)
			return n;
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

enum eng_status eng_opt_store(const struct eng_opt_num *num, const char *name,
			      const char *arg, void *ctx, struct eng_err *err)
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
	char *at = (char *)ctx + num->off;
	switch (num->kind) {
	case ENG_NUM_INT: *(int *)(void *)at = (int)v; break;
	case ENG_NUM_LLONG: *(long long *)(void *)at = v; break;
	case ENG_NUM_MS: *(long *)(void *)at = (long)v; break;
	case ENG_NUM_REAL: *(double *)(void *)at = d; break;
	}
	return ENG_OK;
}

enum eng_status eng_opt_parse(const struct eng_cmd *cmd, int argc,
			      char **argv, struct eng_common *c,
			      int *first_arg, struct eng_err *err)
{
	size_t nprog = 0;
	while (cmd->opts && cmd->opts[nprog].name)
		nprog++;
	size_t ncommon = sizeof(common_opts) / sizeof(*common_opts);
	struct option *all = eng_xcalloc(nprog + ncommon + 1, sizeof(*all));
	size_t k = 0;
	for (size_t i = 0; i < nprog; i++)
		all[k++] = cmd->opts[i];
	for (size_t i = 0; i < ncommon; i++)
		if (wanted(common_opts[i].val, cmd->common))
			all[k++] = common_opts[i];

	enum eng_status st = ENG_OK;
	const struct eng_opt_num *num;
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
		} else if ((num = find_num(cmd, opt)) != NULL) {
			st = eng_opt_store(num, option_name(all, opt), optarg, cmd->ctx, err);
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
