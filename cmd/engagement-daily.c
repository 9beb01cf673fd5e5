/* engagement-daily: 14-day goodbyes, 48 h goodbye timeouts, due reminders. */
#include "eng.h"
#include "eng_daily.h"
#include "eng_state.h"

static const char usage[] =
	"Usage: engagement-daily [OPTION]...\n"
	"Run the three daily timing checks, in order:\n"
	"  1. active users quiet for --inactivity-days who have not opted out\n"
	"     -> goodbye_sent, and one goodbye message queued;\n"
	"  2. goodbye_sent users whose --goodbye-hours window ended -> dormant;\n"
	"  3. remind_later users whose reminder is due -> dormant.\n"
	"A second run on the same day changes nothing and queues nothing.\n"
	"\n"
	"Options:\n"
	"      --now RFC3339          evaluate as if it were this instant\n"
	"                             (default: the database's clock)\n"
	"      --dry-run              report what would change, change nothing\n"
	"      --batch-size N         users per batch and transaction (default 5000)\n"
	"      --inactivity-days N    quiet days before the goodbye (default 14)\n"
	"      --goodbye-hours N      how long a goodbye waits for an answer (default 48)\n"
	"      --db CONNINFO          libpq connection string or URI\n"
	"      --log-level LEVEL      debug, info, warn or error (default info)\n"
	"      --help                 show this help and exit\n"
	"      --version              show the version and exit\n"
	"\n"
	"Exit status: 0 done; 1 some users failed (see user_failed log lines);\n"
	"64 bad command line; 75 another run holds the lease, the database is\n"
	"unreachable, or a signal stopped the run; 77 credentials or privilege\n"
	"refused; 78 bad configuration or schema not migrated.\n";

enum { OPT_BATCH = 1, OPT_INACTIVITY, OPT_GOODBYE };

static const struct option opts[] = {
	{"batch-size", required_argument, NULL, OPT_BATCH},
	{"inactivity-days", required_argument, NULL, OPT_INACTIVITY},
	{"goodbye-hours", required_argument, NULL, OPT_GOODBYE},
	{NULL, 0, NULL, 0},
};

static enum eng_status on_opt(void *ctx, int opt, const char *arg,
			      struct eng_err *err)
{
	struct eng_daily_opts *o = ctx;
	long long v;
	switch (opt) {
	case OPT_BATCH:
		if (eng_opt_int("batch-size", arg, 1, 100000, &v, err))
			return err->status;
		o->batch_size = (int)v;
		return ENG_OK;
	case OPT_INACTIVITY:
		if (eng_opt_int("inactivity-days", arg, 1, 3650, &v, err))
			return err->status;
		o->inactivity_days = (int)v;
		return ENG_OK;
	case OPT_GOODBYE:
		if (eng_opt_int("goodbye-hours", arg, 1, 8760, &v, err))
			return err->status;
		o->goodbye_hours = (int)v;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct eng_daily_opts o = {5000, ENG_INACTIVITY_DAYS, ENG_GOODBYE_HOURS};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_NOW | ENG_OPT_DRYRUN, on_opt, &o};
	struct eng_err err = ENG_ERR_INIT;
	int first, code = ENG_EXIT_OK;

	eng_run_init(&run, "engagement-daily");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);

	if (eng_run_start(&run, ENG_START_JOB, &err))
		return eng_run_fail(&run, &err);
	if (eng_daily_run(&run, &o, &code, &err))
		return eng_run_fail(&run, &err);
	return eng_run_finish(&run, code);
}
