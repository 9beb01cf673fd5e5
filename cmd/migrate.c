/* migrate: apply, revert and inspect the engagement schema. */
#include <stdio.h>
#include <string.h>

#include "eng_fe.h"
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
	"With --dry-run, up and down print the SQL that would run and change nothing.\n";

static const char options[] =
	"      --dir DIR               read migrations from DIR instead of the ones built\n"
	"                              in (for new: where to write; default ./sql)\n"
	"      --to V                  target version\n"
	"      --steps N               how many migrations down reverts\n"
	"      --lock-wait SECONDS     wait this long for another migrate run (default 60)\n"
	"      --lock-timeout DURATION lock_timeout for migration statements (default 5s)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_DATAERR, "drift, out-of-order or failing migration"},
	ENG_EXIT_CAUSE(ENG_EXIT_TEMPFAIL, "lock busy"),
	ENG_EXIT_SIGNAL,
	ENG_EXIT_CAUSE(ENG_EXIT_CONFIG, "(verify) migrations pending"),
	{0},
};

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
	const char *name;             /* of new */
	struct eng_mig_opts mo;
	bool is_new;
	struct eng_migration_set set;
	bool loaded;
};

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_TO, ENG_NUM_INT, 0, 99999999, struct ctx, mo.to,
		"expected a version number"),
	ENG_NUM(OPT_STEPS, ENG_NUM_INT, 1, 100000, struct ctx, mo.steps,
		"expected a positive number"),
	ENG_NUM(OPT_LOCK_WAIT, ENG_NUM_INT, 0, 86400, struct ctx, mo.lock_wait_s,
		"expected seconds (0-86400)"),
	ENG_NUM(OPT_LOCK_TIMEOUT, ENG_NUM_MS, 0, 3600000, struct ctx, mo.lock_timeout_ms,
		"expected a duration such as 5s or 500ms"),
	ENG_ARG(OPT_DIR, struct ctx, dir),
	{0},
};

static const struct {
	const char *verb;
	enum eng_mig_cmd cmd;
} verbs[] = {
	{"up", ENG_MIG_UP},
	{"down", ENG_MIG_DOWN},
	{"status", ENG_MIG_STATUS},
	{"verify", ENG_MIG_VERIFY},
};

/* The command and how the options combine with it. */
static enum eng_status check_command(struct ctx *c, int argc, char **argv,
				     struct eng_err *err)
{
	const char *verb = argv[0];
	if (strcmp(verb, "new") == 0) {
		if (argc != 2)
			return eng_err_set(err, ENG_EUSAGE, "usage: migrate new NAME");
		c->is_new = true;
		c->name = argv[1];
		return ENG_OK;
	}
	size_t i = 0;
	while (i < sizeof(verbs) / sizeof(*verbs) && strcmp(verb, verbs[i].verb) != 0)
		i++;
	if (i == sizeof(verbs) / sizeof(*verbs))
		return eng_err_set(err, ENG_EUSAGE, "unknown command \"%s\": use up, down, "
				   "status, verify or new",
				   verb);
	c->mo.cmd = verbs[i].cmd;
	if (argc > 1)
		return eng_err_set(err, ENG_EUSAGE, "unexpected argument \"%s\"", argv[1]);
	if (c->mo.cmd != ENG_MIG_DOWN && c->mo.steps >= 0)
		return eng_err_set(err, ENG_EUSAGE, "--steps only applies to down");
	if (c->mo.cmd == ENG_MIG_DOWN && c->mo.steps >= 0 && c->mo.to >= 0)
		return eng_err_set(err, ENG_EUSAGE, "give --steps or --to, not both");
	if ((c->mo.cmd == ENG_MIG_STATUS || c->mo.cmd == ENG_MIG_VERIFY) &&
	    (c->mo.to >= 0 || c->mo.dry_run))
		return eng_err_set(err, ENG_EUSAGE, "%s takes no --to or --dry-run", verb);
	return ENG_OK;
}

static enum eng_status check(void *p, struct eng_args *a, struct eng_err *err)
{
	struct ctx *c = p;
	if (a->argc < 1)
		return eng_err_set(err, ENG_EUSAGE,
				   "missing command: up, down, status, verify or new");
	json_object_set_new(a->summary, "command", eng_json_str(a->argv[0]));
	c->mo.dry_run = a->common->dry_run;
	if (check_command(c, a->argc, a->argv, err))
		return err->status;
	if (c->is_new) {
		a->start = 0; /* no database */
		return ENG_OK;
	}
	c->loaded = true;
	if (c->dir ? eng_mig_load_dir(&c->set, c->dir, err)
		   : eng_mig_load_embedded(&c->set, err))
		return err->status;
	json_object_set_new(a->summary, "source", eng_json_str(c->dir ? c->dir : "built-in"));
	return ENG_OK;
}

static enum eng_status run(void *p, const struct eng_job *job, struct eng_err *err)
{
	struct ctx *c = p;
	if (c->is_new)
		return eng_mig_new(c->dir ? c->dir : "sql", c->name, job->summary, err);
	return eng_mig_run(job->db, &c->set, &c->mo, job->summary, err);
}

static void done(void *p)
{
	struct ctx *c = p;
	if (c->loaded)
		eng_mig_set_release(&c->set);
}

static const struct eng_prog prog = {
	.name = "migrate", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.common = ENG_OPT_DRYRUN, .start = ENG_START_DB,
	.args = true, .check = check, .run = run, .done = done,
};

int main(int argc, char **argv)
{
	struct ctx c = {
		.mo = {.cmd = ENG_MIG_STATUS, .to = -1, .steps = -1, .lock_wait_s = 60,
		       .lock_timeout_ms = 5000},
	};
	return eng_main(&prog, &c, argc, argv);
}
