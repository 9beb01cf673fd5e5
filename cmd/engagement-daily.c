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
	"A second run on the same day changes nothing and queues nothing.\n";

static const char options[] =
	"      --batch-size N         users per batch and transaction (default 5000)\n"
	"      --inactivity-days N    quiet days before the goodbye (default 14)\n"
	"      --goodbye-hours N      how long a goodbye waits for an answer (default 48)\n";

static const struct eng_exit_text exits[] = {
	{ENG_EXIT_PARTIAL, "some users failed (see user_failed log lines)"},
	ENG_EXIT_SIGNAL,
	{0},
};

enum { OPT_BATCH = 1, OPT_INACTIVITY, OPT_GOODBYE };

static const struct option opts[] = {
	{"batch-size", required_argument, NULL, OPT_BATCH},
	{"inactivity-days", required_argument, NULL, OPT_INACTIVITY},
	{"goodbye-hours", required_argument, NULL, OPT_GOODBYE},
	{NULL, 0, NULL, 0},
};

static const struct eng_opt_field fields[] = {
	ENG_NUM(OPT_BATCH, ENG_NUM_INT, 1, 100000, struct eng_daily_opts, batch_size, NULL),
	ENG_NUM(OPT_INACTIVITY, ENG_NUM_INT, 1, 3650, struct eng_daily_opts,
		inactivity_days, NULL),
	ENG_NUM(OPT_GOODBYE, ENG_NUM_INT, 1, 8760, struct eng_daily_opts, goodbye_hours,
		NULL),
	{0},
};

ENG_PROG_RUN(run, eng_daily_run, struct eng_daily_opts)

static const struct eng_prog prog = {
	.name = "engagement-daily", .usage = usage, .options = options,
	.exits = exits, .opts = opts, .fields = fields,
	.common = ENG_OPT_NOW | ENG_OPT_DRYRUN, .start = ENG_START_JOB, .run = run,
};

int main(int argc, char **argv)
{
	struct eng_daily_opts o = {5000, ENG_INACTIVITY_DAYS, ENG_GOODBYE_HOURS};
	return eng_main(&prog, &o, argc, argv);
}
