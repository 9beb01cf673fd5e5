/* engagement-daily: 14-day goodbyes, 48 h goodbye timeouts, due reminders. */
#include "eng_fe.h"
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
	"      --log-format FORMAT    auto (text on a terminal), json or text\n"
	"      --summary-format FORMAT\n"
	"                             auto (indented on a terminal), json or pretty\n"
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

static const struct eng_opt_num nums[] = {
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 100000, struct eng_daily_opts, batch_size, NULL),
	ENG_NUM(OPT_INACTIVITY, ENG_NUM_INT, 1, 3650, struct eng_daily_opts,
		inactivity_days, NULL),
	ENG_NUM(OPT_GOODBYE, ENG_NUM_INT, 1, 8760, struct eng_daily_opts, goodbye_hours,
		NULL),
	{0},
};

static enum eng_status run(void *o, const struct eng_job *job, struct eng_err *err)
{
	return eng_daily_run(job, o, err);
}

static const struct eng_prog prog = {
	.name = "engagement-daily", .usage = usage, .opts = opts, .nums = nums,
	.common = ENG_OPT_NOW | ENG_OPT_DRYRUN, .start = ENG_START_JOB, .run = run,
};

int main(int argc, char **argv)
{
	struct eng_daily_opts o = {5000, ENG_INACTIVITY_DAYS, ENG_GOODBYE_HOURS};
	return eng_main(&prog, &o, argc, argv);
}
