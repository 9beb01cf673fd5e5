/* engagement-weekly: queue a weekly review for the users active last week. */
#include "eng.h"
#include "eng_weekly.h"

static const char usage[] =
	"Usage: engagement-weekly [OPTION]...\n"
	"Queue a weekly_review message, params {\"activity_count\": N}, for every\n"
	"user with activity in [now - lookback, now) who has not opted out. The\n"
	"idempotency key {user_id}:weekly_review:{ISO year}-W{week} makes a second\n"
	"run in the same ISO week queue nothing.\n"
	"\n"
	"Options:\n"
	"      --now RFC3339          evaluate as if it were this instant\n"
	"                             (default: the database's clock)\n"
	"      --dry-run              report what would be queued, change nothing\n"
	"      --lookback-days N      the activity window (default 7)\n"
	"      --batch-size N         users per batch and transaction (default 5000)\n"
	"      --expire-hours N       a review not sent within N hours is cancelled\n"
	"                             by queue-send (default 24)\n"
	"      --db CONNINFO          libpq connection string or URI\n"
	"      --log-level LEVEL      debug, info, warn or error (default info)\n"
	"      --help                 show this help and exit\n"
	"      --version              show the version and exit\n"
	"\n"
	"Exit status: 0 done; 1 some users failed; 64 bad command line; 75 another\n"
	"run holds the lease, database unreachable, or interrupted; 77 credentials\n"
	"or privilege refused; 78 bad configuration or schema not migrated.\n";

enum { OPT_LOOKBACK = 1, OPT_BATCH, OPT_EXPIRE };

static const struct option opts[] = {
	{"lookback-days", required_argument, NULL, OPT_LOOKBACK},
	{"batch-size", required_argument, NULL, OPT_BATCH},
	{"expire-hours", required_argument, NULL, OPT_EXPIRE},
	{NULL, 0, NULL, 0},
};

static enum eng_status on_opt(void *ctx, int opt, const char *arg,
			      struct eng_err *err)
{
	struct eng_weekly_opts *o = ctx;
	long long v;
	switch (opt) {
	case OPT_LOOKBACK:
		if (eng_opt_int("lookback-days", arg, 1, 366, &v, err))
			return err->status;
		o->lookback_days = (int)v;
		return ENG_OK;
	case OPT_BATCH:
		if (eng_opt_int("batch-size", arg, 1, 100000, &v, err))
			return err->status;
		o->batch_size = (int)v;
		return ENG_OK;
	case OPT_EXPIRE:
		if (eng_opt_int("expire-hours", arg, 1, 720, &v, err))
			return err->status;
		o->expire_hours = (int)v;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unhandled option");
}

int main(int argc, char **argv)
{
	struct eng_run run;
	struct eng_weekly_opts o = {7, 5000, 24};
	struct eng_cmd cmd = {usage, opts, ENG_OPT_NOW | ENG_OPT_DRYRUN, on_opt, &o};
	struct eng_err err = ENG_ERR_INIT;
	int first, code = ENG_EXIT_OK;

	eng_run_init(&run, "engagement-weekly");
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return eng_run_usage(&run, "unexpected argument \"%s\"", argv[first]);
	if (eng_run_start(&run, ENG_START_JOB, &err))
		return eng_run_fail(&run, &err);
	if (eng_weekly_run(&run, &o, &code, &err))
		return eng_run_fail(&run, &err);
	return eng_run_finish(&run, code);
}
