/*
 * One invocation of a program: its run_id, options, connection, summary,
 * job_runs row, single-run lease, and the exit path that always writes the
 * summary and releases what the run holds (after PostgreSQL's
 * on_exit_nicely).
 *
 *   struct eng_run run;
 *   eng_run_init(&run, "engagement-daily");
 *   int rc = eng_run_args(&run, &cmd, argc, argv, &first);
 *   if (rc >= 0) return rc;                      // --help, usage error
 *   if (eng_run_start(&run, ENG_START_JOB, &err))
 *           return eng_run_fail(&run, &err);
 *   ... work, adding counts to run.summary ...
 *   return eng_run_finish(&run, ENG_EXIT_OK);
 */
#ifndef ENG_RUN_H
#define ENG_RUN_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_lines.h"
#include "eng_opt.h"
#include "eng_time.h"

#ifndef ENG_VERSION
#define ENG_VERSION "0.0.0"
#endif

/* The newest migration this build knows (generated from sql/). */
#ifndef ENG_SCHEMA_VERSION
#define ENG_SCHEMA_VERSION 0
#endif

/* Set (to the signal number) by SIGINT/SIGTERM; work loops poll it. */
extern volatile sig_atomic_t eng_interrupted;

struct eng_run;
typedef void (*eng_exit_fn)(struct eng_run *run, void *arg);

#define ENG_RUN_MAX_HOOKS 8

struct eng_run {
	const char *program;
	char run_id[37];
	int64_t t0_us;
	struct eng_common opt;
	struct eng_db db;
	eng_time now;     /* --now, or the database clock at start */
	json_t *summary;  /* the program adds its own counts here */
	bool job_row;     /* a job_runs row exists for this run */
	bool guard_held;
	int64_t guard_renewed_us;
	bool skipped;     /* ended without working: status "skipped" */
	bool started;     /* eng_run_start was called: job_finished is logged */
	bool finished;
	struct {
		eng_exit_fn fn;
		void *arg;
	} hooks[ENG_RUN_MAX_HOOKS];
	int nhooks;
};

/* What eng_run_start does after connecting. */
enum {
	ENG_START_SCHEMA = 1u << 0, /* refuse an old schema (78) */
	ENG_START_NOW = 1u << 1,    /* fix run->now */
	ENG_START_RECORD = 1u << 2, /* write a job_runs row */
	ENG_START_GUARD = 1u << 3,  /* single-run lease (75 already_running) */
	ENG_START_JOB = ENG_START_SCHEMA | ENG_START_NOW | ENG_START_RECORD |
			ENG_START_GUARD,
	ENG_START_TOOL = ENG_START_SCHEMA | ENG_START_NOW,
};

void eng_run_init(struct eng_run *run, const char *program);

/* Parse the command line. Returns -1 to go on, or the exit code main()
 * should return: 0 after --help/--version (printed to stdout), 64 after a
 * usage error (logged, summary printed). */
int eng_run_args(struct eng_run *run, const struct eng_cmd *cmd, int argc,
		 char **argv, int *first_arg);

/* A usage error found after parsing (a missing or conflicting option):
 * logs it, prints the summary, returns 64. */
int eng_run_usage(struct eng_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

enum eng_status eng_run_start(struct eng_run *run, unsigned what,
			      struct eng_err *err);

/* Renew the lease if it is due (call between batches, at least every
 * ENG_GUARD_TTL_S / 4 s). ENG_ETEMP when the lease was lost or the database
 * could not be reached; ENG_OK otherwise. */
enum eng_status eng_run_heartbeat(struct eng_run *run, struct eng_err *err);
/* Renew the lease now (after a reconnect). ENG_ETEMP when it was lost or
 * the connection is down (guard_held stays true then: retry later). */
enum eng_status eng_run_renew(struct eng_run *run, struct eng_err *err);

/* Register a hook run (last registered first) by eng_run_finish. */
void eng_run_on_exit(struct eng_run *run, eng_exit_fn fn, void *arg);

/* Log the error (event "run_failed" unless the error says otherwise), put
 * it in the summary and finish with its exit code. */
int eng_run_fail(struct eng_run *run, const struct eng_err *err);
int eng_run_fail_event(struct eng_run *run, const char *event,
		       const struct eng_err *err);

/* Run the exit hooks, record the run, release the lease, print the summary
 * and close the connection. Returns exit_code. */
int eng_run_finish(struct eng_run *run, int exit_code);

/* Summary helpers. */
void eng_run_set_int(struct eng_run *run, const char *key, long long v);
void eng_run_set_str(struct eng_run *run, const char *key, const char *v);

/* A program that applies a file of JSON lines (--batch FILE|-). */
struct eng_run_lines {
	const char *path;   /* a file, or "-" for stdin */
	unsigned start;     /* ENG_START_* */
	size_t block;       /* lines read and applied at a time */
	eng_line_fn take;   /* parse line i of the block into ctx's items */
	/* Apply and report the block's n items. An error only when the run
	 * must stop (a bad item is the program's to count). */
	enum eng_status (*apply)(void *ctx, struct eng_run *run, size_t n,
				 struct eng_err *err);
	/* Put the counts in the summary; true when some item failed. */
	bool (*summarize)(void *ctx, struct eng_run *run);
	void *ctx;
};

/* The whole run of such a program: open the input, start the run, read
 * and apply block by block (a dry run in one transaction, rolled back),
 * stop between blocks on a signal, summarize ("lines" first) and finish:
 * exit 0, 1 when an item failed, or the code of the error that stopped
 * it. */
int eng_run_lines(struct eng_run *run, const struct eng_run_lines *b);

#endif
