/* engagement-weekly: queue a weekly review for the users active last week. */
#include "eng_fe.h"
#include "eng_weekly.h"

static const char usage[] =
	"Usage: engagement-weekly [OPTION]...\n"
	"Queue a weekly_review message, params {\"activity_count\": N}, for every\n"
	"user with activity in [now - lookback, now) who has not opted out. The\n"
	"idempotency key {user_id}:weekly_review:{ISO year}-W{week} makes a second\n"
	"run in the same ISO week queue nothing.\n";

static const char options[] =
	"      --lookback-days N      the activity window (default 7)\n"
	"      --batch-size N         users per batch and transaction (default 5000)\n"
	"      --expire-hours N       a review not sent within N hours is cancelled\n"
	"                             by queue-send (default 24)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_PARTIAL, "some users failed"},
	ENG_EXIT_SIGNAL,
	{0},
};

enum { OPT_LOOKBACK = 1, OPT_BATCH, OPT_EXPIRE };

static const struct option opts[] = {
	{"lookback-days", required_argument, NULL, OPT_LOOKBACK},
	{"batch-size", required_argument, NULL, OPT_BATCH},
	{"expire-hours", required_argument, NULL, OPT_EXPIRE},
	{NULL, 0, NULL, 0},
};

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_LOOKBACK, ENG_NUM_INT, 1, 366, struct eng_weekly_opts, lookback_days,
		NULL),
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 100000, struct eng_weekly_opts, batch_size, NULL),
	ENG_NUM(OPT_EXPIRE, ENG_NUM_INT, 1, 720, struct eng_weekly_opts, expire_hours, NULL),
	{0},
};

ENG_PROG_RUN(run, eng_weekly_run, struct eng_weekly_opts)

static const struct eng_prog prog = {
	.name = "engagement-weekly", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.common = ENG_OPT_NOW | ENG_OPT_DRYRUN, .start = ENG_START_JOB, .run = run,
};

int main(int argc, char **argv)
{
	struct eng_weekly_opts o = {7, 5000, 24};
	return eng_main(&prog, &o, argc, argv);
}
