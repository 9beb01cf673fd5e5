/* migrate: apply, revert and inspect the engagement schema. */
#include <stdio.h>
#include <string.h>

#include "eng.h"
#include "eng_migrate.h"

static const char usage[] =
	"Usage: migrate [OPTION]... COMMAND\n"
	"Apply, revert and inspect the engagement schema.\n"
	"\n"
	"Commands:\n"
	"  up [--to V]                 apply pending migrations (up to V)\n"
	"  down [--steps N | --to V]   revert the newest N (default 1), or all above V\n"
	"  status                      show every migration, drift and order problems\n"
	"  verify                      exit 0 only if the schema is complete and unchanged\n"
	"  new NAME                    write the next NNNN_NAME.{up,down}.sql into --dir\n"
	"\n"
	"Options:\n"
	"      --db CONNINFO           libpq connection string or URI (else DATABASE_URL,\n"
	"                              else libpq defaults: PGHOST, PGDATABASE, ...)\n"
	"      --dir DIR               read migrations from DIR instead of the ones built\n"
	"                              in (for new: where to write; default ./sql)\n"
	"      --to V                  target version\n"
	"      --steps N               how many migrations down reverts\n"
	"      --lock-wait SECONDS     wait this long for another migrate run (default 60)\n"
	"      --lock-timeout DURATION lock_timeout for migration statements (default 5s)\n"
	"      --dry-run               print the SQL that would run, change nothing\n"
	"      --log-level LEVEL       debug, info, warn or error (default info)\n"
	"      --help                  show this help and exit\n"
	"      --version               show the version and exit\n"
	"\n"
	"Exit status: 0 done; 64 bad command line; 65 drift, out-of-order or failing\n"
	"migration; 75 database unreachable or lock busy; 77 refused credentials;\n"
	"78 bad configuration, or (verify) migrations pending.\n";

enum { OPT_DIR = 1, OPT_TO, OPT_STEPS, OPT_LOCK_WAIT, OPT_LOCK_TIMEOUT };

static const struct option opts[] = {
	{"dir", required_argument, NULL, OPT_DIR},
	{"to", required_argument, NULL, OPT_TO},
	{"steps", required_argument, NULL, OPT_STEPS},
	{"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
	{"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT},
	{NULL, 0, NULL, 0},
};

struct ctx {
	const char *dir;
	struct eng_mig_opts mo;
};

static enum eng_status on_opt(void *p, int opt, const char *arg,
			      struct eng_err *err)
{
	struct ctx *c = p;
	long long v;
	switch (opt) {
	case OPT_DIR:
		c->dir = arg;
		return ENG_OK;
	case OPT_TO:
		if (eng_parse_int(arg, 0, 99999999, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --to \"%s\": expected a version "
					   "number",
					   arg);
		c->mo.to = (int)v;
		return ENG_OK;
	case OPT_STEPS:
		if (eng_parse_int(arg, 1, 100000, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --steps \"%s\": expected a "
					   "positive number",
					   arg);
		c->mo.steps = (int)v;
		return ENG_OK;
	case OPT_LOCK_WAIT:
		if (eng_parse_int(arg, 0, 86400, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --lock-wait \"%s\": expected "
					   "seconds (0-86400)",
					   arg);
		c->mo.lock_wait_s = (int)v;
		return ENG_OK;
	case OPT_LOCK_TIMEOUT:
		if (eng_parse_duration_ms(arg, &v))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid --lock-timeout \"%s\": expected "
					   "a duration such as 5s or 500ms",
					   arg);
		c->mo.lock_timeout_ms = v;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct ctx c = {
		.dir = NULL,
		.mo = {.cmd = ENG_MIG_STATUS, .to = -1, .steps = -1,
		       .lock_wait_s = 60, .lock_timeout_ms = 5000},
	};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_DRYRUN, on_opt, &c};
	struct eng_err err = ENG_ERR_INIT;
	int first;

	eng_run_init(&run, "migrate");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;

	if (first >= argc)
		return eng_run_usage(&run, "missing command: up, down, status, "
				     "verify or new");
	const char *verb = argv[first];
	int nargs = argc - first - 1;
	json_object_set_new(run.summary, "command", eng_json_str(verb));
	c.mo.dry_run = run.opt.dry_run;

	if (strcmp(verb, "new") == 0) {
		if (nargs != 1)
			return eng_run_usage(&run, "usage: migrate new NAME");
		if (eng_mig_new(c.dir ? c.dir : "sql", argv[first + 1],
				run.summary, &err)) {
			if (err.status == ENG_EUSAGE)
				return eng_run_usage(&run, "%s", err.msg);
			return eng_run_fail(&run, &err);
		}
		return eng_run_finish(&run, ENG_EXIT_OK);
	}
	if (strcmp(verb, "up") == 0)
		c.mo.cmd = ENG_MIG_UP;
	else if (strcmp(verb, "down") == 0)
		c.mo.cmd = ENG_MIG_DOWN;
	else if (strcmp(verb, "status") == 0)
		c.mo.cmd = ENG_MIG_STATUS;
	else if (strcmp(verb, "verify") == 0)
		c.mo.cmd = ENG_MIG_VERIFY;
	else
		return eng_run_usage(&run, "unknown command \"%s\": use up, down, "
				     "status, verify or new",
				     verb);
	if (nargs != 0)
		return eng_run_usage(&run, "unexpected argument \"%s\"",
				     argv[first + 1]);
	if (c.mo.cmd != ENG_MIG_DOWN && c.mo.steps >= 0)
		return eng_run_usage(&run, "--steps only applies to down");
	if (c.mo.cmd == ENG_MIG_DOWN && c.mo.steps >= 0 && c.mo.to >= 0)
		return eng_run_usage(&run, "give --steps or --to, not both");
	if ((c.mo.cmd == ENG_MIG_STATUS || c.mo.cmd == ENG_MIG_VERIFY) &&
	    (c.mo.to >= 0 || c.mo.dry_run))
		return eng_run_usage(&run, "%s takes no --to or --dry-run", verb);

	struct eng_migration_set set;
	if (c.dir ? eng_mig_load_dir(&set, c.dir, &err)
		  : eng_mig_load_embedded(&set, &err)) {
		eng_mig_set_release(&set);
		return eng_run_fail(&run, &err);
	}
	json_object_set_new(run.summary, "source",
			    eng_json_str(c.dir ? c.dir : "built-in"));

	if (eng_run_start(&run, 0, &err)) {
		eng_mig_set_release(&set);
		return eng_run_fail(&run, &err);
	}
	enum eng_status st = eng_mig_run(&run.db, &set, &c.mo, run.summary, &err);
	eng_mig_set_release(&set);
	if (st)
		return eng_run_fail(&run, &err);
	return eng_run_finish(&run, ENG_EXIT_OK);
}
