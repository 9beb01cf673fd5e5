/*
 * One invocation of a program: its run_id, options, connection, summary,
 * job_runs row, single-run lease, and the exit path that always writes the
 * summary, records the run and releases what it holds (after PostgreSQL's
 * on_exit_nicely). The only code that prints and picks exit codes.
 *
 * A program is a table (struct eng_prog) and one call:
 *
 *   int main(int argc, char **argv)
 *   {
 *           struct eng_daily_opts o = {...defaults...};
 *           return eng_main(&prog, &o, argc, argv);
 *   }
 *
 * eng_main parses the options into o (--help prints the program's text
 * and the shared options and exit codes, eng_help.h), lets the program
 * check how they combine, starts the run (connect, schema, now, job_runs,
 * lease), calls prog.run with a struct eng_job (the core's narrow view of
 * the run), and ends it: ENG_OK exits 0, ENG_PARTIAL 1, an error its
 * sysexits code, with the error logged (as err.event, or run_failed) and
 * in the summary.
 */
#ifndef ENG_RUN_H
#define ENG_RUN_H

#include <jansson.h>
#include <stdbool.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_help.h"
#include "eng_job.h"
#include "eng_opt.h"
#include "eng_time.h"

struct eng_run {
	const char *program;
	char run_id[37];
	int64_t t0_us;
	struct eng_common opt;
	struct eng_db db;
	eng_time now;     /* --now, or the database clock at start */
	eng_time clock;   /* the database clock at start */
	json_t *summary;  /* the job adds its own counts here */
	bool job_row;     /* a job_runs row exists for this run */
	bool guard_held;
	int64_t guard_renewed_us;
	bool skipped;     /* ended without working: status "skipped" */
	bool started;     /* eng_run_start was called: job_finished is logged */
	bool finished;
	const char *bad_log_format; /* ENGAGEMENT_LOG_FORMAT, when unknown */
	const char *stdout_text;    /* printed instead of the summary (a
				     * format the program was asked for) */
};

/* What eng_run_start does. */
enum {
	ENG_START_DB = 1u << 0,     /* connect */
	ENG_START_SCHEMA = 1u << 1, /* refuse an old schema (78) */
	ENG_START_NOW = 1u << 2,    /* fix run->now */
	ENG_START_RECORD = 1u << 3, /* write a job_runs row */
	ENG_START_GUARD = 1u << 4,  /* single-run lease (75 already_running) */
	ENG_START_STANDBY = 1u << 5, /* reads only: a hot standby will do
				      * (eng_db_open ENG_DB_ANY) */
	ENG_START_JOB = ENG_START_DB | ENG_START_SCHEMA | ENG_START_NOW |
			ENG_START_RECORD | ENG_START_GUARD,
	ENG_START_TOOL = ENG_START_DB | ENG_START_SCHEMA | ENG_START_NOW,
};

/* What a program's check() sees after the options were parsed. */
struct eng_args {
	int argc;                        /* the positional arguments */
	char **argv;
	const struct eng_common *common; /* --dry-run, --now, --db ... */
	unsigned start;                  /* ENG_START_*: may be changed */
	json_t *summary;                 /* may be added to */
};

/* A program. */
struct eng_prog {
	const char *name;
	/* --help: the front end adds the shared options' lines and the exit
	 * codes every program shows (eng_help.h) */
	const char *usage;               /* synopsis and description */
	const char *options;             /* its own options' lines */
	const struct eng_exit_text *exits; /* its own exit codes and meanings */
	const struct option *opts;       /* its own options, {0}-terminated */
	unsigned common;                 /* shared options it takes: ENG_OPT_* */
	const struct eng_opt_field *fields; /* options the parser stores */
	eng_opt_fn on_opt;               /* the other options (may be NULL) */
	unsigned start;                  /* ENG_START_* */
	bool secret;                     /* it holds a secret: no core dumps */
	bool args;                       /* it takes positional arguments
					  * (check() reads them); else any is
					  * a usage error */
	/* After the options: check how they combine and what the positional
	 * arguments say (ENG_EUSAGE is a usage error; any other error fails
	 * the run before it connects, e.g. 65 or 78), and adjust a->start.
	 * May be NULL. */
	enum eng_status (*check)(void *opts, struct eng_args *a, struct eng_err *err);
	/* The work: one call into the core. */
	enum eng_status (*run)(void *opts, const struct eng_job *job,
			       struct eng_err *err);
	/* What stdout gets instead of the JSON summary, when the options ask
	 * for another format (NULL, or returning NULL: the summary). */
	const char *(*output)(void *opts);
	/* Always called last, whatever happened (may be NULL). */
	void (*done)(void *opts);
};

int eng_main(const struct eng_prog *prog, void *opts, int argc, char **argv);

/* A program's run() or done() that only hands its options to the core:
 * fn(job, (T *)opts, err), fn((T *)opts). T is the type of the options
 * eng_main was given, or of their first member (a pointer to a struct
 * stands for one to its first member). */
#define ENG_PROG_RUN(name, fn, T)                                              \
	static enum eng_status name(void *o_, const struct eng_job *job,       \
				    struct eng_err *err)                        \
	{                                                                       \
		return fn(job, (T *)o_, err);                                   \
	}
#define ENG_PROG_DONE(name, fn, T)                                             \
	static void name(void *o_)                                              \
	{                                                                       \
		fn((T *)o_);                                                    \
	}

/* ENG_EUSAGE when there are positional arguments (a check() for programs
 * that take none). */
enum eng_status eng_no_arguments(const struct eng_args *a, struct eng_err *err);

/* The pieces eng_main is made of (tests use them directly). */
void eng_run_init(struct eng_run *run, const char *program);
/* Parse the command line. Returns -1 to go on, or the exit code main()
 * should return: 0 after --help/--version (printed to stdout), 64 after a
 * usage error (logged, summary printed). */
int eng_run_args(struct eng_run *run, const struct eng_cmd *cmd, int argc,
		 char **argv, int *first_arg);
enum eng_status eng_run_start(struct eng_run *run, unsigned what,
			      struct eng_err *err);
/* The core's view of the run. */
void eng_run_job(struct eng_run *run, struct eng_job *job);
/* End with what the job returned: 0, 1 or the error's code. */
int eng_run_end(struct eng_run *run, enum eng_status st, const struct eng_err *err);
/* Record the run, release the lease, print the summary, close the
 * connection. Returns exit_code. */
int eng_run_finish(struct eng_run *run, int exit_code);

#endif
