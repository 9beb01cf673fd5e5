#include "eng_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "eng_exit.h"
#include "eng_runs.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_parse.h"
#include "eng_version.h"

/* How long a run that lost its database keeps trying, once it is over, to
 * record its end and free its lease (a restart is back in seconds). */
#define END_RETRY_S 30

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
	eng_interrupted = sig;
	signals_seen++;
}

void eng_run_init(struct eng_run *run, const char *program)
{
	memset(run, 0, sizeof(*run));
	run->program = program;
	eng_uuid_v4(run->run_id);
	run->t0_us = eng_mono_us();
	eng_log_init(program, run->run_id, 2);
	/* JSON for cron, systemd and pipes; text for a person at a terminal
	 * (ENGAGEMENT_LOG_FORMAT or --log-format choose otherwise) */
	bool colour;
	const char *env = getenv("ENGAGEMENT_LOG_FORMAT");
	int f = eng_log_choose_format(env && *env ? env : "auto", 2, &colour);
	if (f < 0) {
		run->bad_log_format = env;
		f = eng_log_choose_format("auto", 2, &colour);
	}
	eng_log_set_format((enum eng_log_format)f, colour);

	/* Key order of the summary: the fixed fields first. */
	run->summary = json_object();
	json_object_set_new(run->summary, "program", json_string(program));
	json_object_set_new(run->summary, "run_id", json_string(run->run_id));
	json_object_set_new(run->summary, "status", json_string("failed"));
	json_object_set_new(run->summary, "exit_code",
			    json_integer(ENG_EXIT_SOFTWARE));
	json_object_set_new(run->summary, "duration_ms", json_integer(0));

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int usage_error(struct eng_run *run, const struct eng_err *err)
{
	char hint[96];
	if (eng_log_get_format() == ENG_LOG_TEXT) {
		/* a person at a terminal: the two lines GNU tools print */
		char line[700];
		snprintf(line, sizeof(line), "%s: %s", run->program, err->msg);
		eng_log_plain(line);
		snprintf(hint, sizeof(hint), "Try '%s --help' for more information.",
			 run->program);
		eng_log_plain(hint);
	} else {
		snprintf(hint, sizeof(hint), "Try '%s --help'.", run->program);
		eng_log(ENG_ERROR, "usage_error", ENG_S("error", err->msg),
			ENG_S("hint", hint));
	}
	json_object_set_new(run->summary, "error", eng_json_masked(err->msg));
	return eng_run_finish(run, ENG_EXIT_USAGE);
}

/* --help or --version: stdout, exit 0, no summary. */
static int informed(struct eng_run *run)
{
	fflush(stdout);
	run->finished = true;
	json_decref(run->summary);
	run->summary = NULL;
	return ENG_EXIT_OK;
}

int eng_run_args(struct eng_run *run, const struct eng_cmd *cmd, int argc,
		 char **argv, int *first_arg)
{
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = eng_opt_parse(cmd, argc, argv, &run->opt,
					   first_arg, &err);
	if (run->opt.help) {
		char *text = cmd->help ? eng_help_text(cmd->help) : NULL;
		fputs(text ? text : "", stdout);
		free(text);
		return informed(run);
	}
	if (st == ENG_OK && run->opt.version) {
		printf("%s %s\n", run->program, ENG_VERSION);
		return informed(run);
	}
	if (st == ENG_OK && run->bad_log_format)
		st = eng_err_set(&err, ENG_EUSAGE,
				 "invalid ENGAGEMENT_LOG_FORMAT \"%.40s\": use auto, json or text",
				 run->bad_log_format);
	if (st != ENG_OK)
		return usage_error(run, &err);
	if (run->opt.dry_run)
		json_object_set_new(run->summary, "dry_run", json_true());
	return -1;
}

/* ---- the single-run lease -------------------------------------------------- */

static enum eng_status lease_renew(void *arg, struct eng_err *err)
{
	struct eng_run *run = arg;
	if (!run->guard_held)
		return ENG_OK;
	int64_t now = eng_mono_us();
	bool lost;
	if (eng_lease_renew(&run->db, run->program, run->run_id,
			    ENG_LEASE_TTL_S, &lost, err)) {
		if (lost)
			run->guard_held = false; /* not ours to release */
		return err->status;
	}
	run->guard_renewed_us = now;
	return ENG_OK;
}

static enum eng_status lease_keep(void *arg, struct eng_err *err)
{
	struct eng_run *run = arg;
	/* A dry run works in one transaction it rolls back: a renewal there
	 * would hold the lease row locked (a real run would wait on it rather
	 * than exit 75) and be undone anyway. Its lease lapses after the TTL;
	 * a real run may then start beside it, which is harmless. */
	if (run->opt.dry_run && eng_db_in_transaction(&run->db))
		return ENG_OK;
	if (!run->guard_held ||
	    eng_mono_us() - run->guard_renewed_us < (int64_t)ENG_LEASE_TTL_S * 1000000 / 4)
		return ENG_OK;
	return lease_renew(run, err);
}

static enum eng_status take_lease(struct eng_run *run, struct eng_err *err)
{
	bool got = false;
	char holder[512] = "";
	if (eng_lease_take(&run->db, run->program, run->run_id, ENG_LEASE_TTL_S,
			      &got, holder, sizeof(holder), err))
		return eng_err_prefix(err, "could not take the run lease");
	if (!got) {
		run->skipped = true;
		eng_log(ENG_WARN, "already_running", ENG_S("holder", holder));
		json_object_set_new(run->summary, "reason", json_string("already_running"));
		return eng_err_set(err, ENG_ETEMP, "%s is already running (%s)",
				   run->program, holder);
	}
	run->guard_held = true;
	run->guard_renewed_us = eng_mono_us();
	return ENG_OK;
}

/* ---- start and end ------------------------------------------------------------ */

static enum eng_status mark_dead(struct eng_run *run, bool all_others, struct eng_err *err)
{
	long long n = 0;
	if (eng_runs_mark_dead(&run->db, run->program, run->run_id, all_others, &n, err))
		return eng_err_prefix(err, "could not mark dead runs");
	if (n)
		eng_log(ENG_WARN, "dead_runs_marked", ENG_I("runs", n));
	return ENG_OK;
}

enum eng_status eng_run_start(struct eng_run *run, unsigned what,
			      struct eng_err *err)
{
	if (!(what & ENG_START_DB))
		return ENG_OK;
	run->started = true;
	if (run->opt.db && eng_db_has_password(run->opt.db))
		eng_log(ENG_WARN, "password_on_command_line",
			ENG_S("hint", "--db shows it to every user of this host (ps, "
				      "/proc): use ~/.pgpass, PGPASSFILE or PGSERVICE"));
	if (eng_db_open(&run->db, run->opt.db, run->program,
			what & ENG_START_STANDBY ? ENG_DB_ANY : ENG_DB_PRIMARY, err))
		return err->status;

	if ((what & ENG_START_SCHEMA) &&
	    eng_db_check_schema(&run->db, ENG_SCHEMA_VERSION, err))
		return err->status;

	if (what & ENG_START_NOW) {
		if (eng_db_now(&run->db, &run->clock, err))
			return err->status;
		run->now = run->opt.have_now ? run->opt.now : run->clock;
		char ts[32];
		eng_time_format(run->now, ts);
		json_object_set_new(run->summary, "now", json_string(ts));
	}

	/* Dry runs are rehearsals: they leave no job_runs row behind. */
	if ((what & ENG_START_RECORD) && !run->opt.dry_run) {
		if (eng_runs_start(&run->db, run->run_id, run->program, err))
			return eng_err_prefix(err, "could not record the run");
		run->job_row = true;
	}
	if ((what & ENG_START_GUARD) && take_lease(run, err))
		return err->status;
	/* Runs of this program that died: with the lease, every other one
	 * still "running" (the lease says none is alive); without one (many
	 * queue-sends at once), those whose heartbeat stopped. */
	if (run->job_row && mark_dead(run, run->guard_held, err))
		return err->status;
	if (what & ENG_START_RECORD)
		eng_log(ENG_INFO, "job_started", ENG_B("dry_run", run->opt.dry_run));
	return ENG_OK;
}

void eng_run_job(struct eng_run *run, struct eng_job *job)
{
	*job = (struct eng_job){
		.db = &run->db,
		.program = run->program,
		.conninfo = run->opt.db,
		.run_id = run->run_id,
		.now = run->now,
		.clock = run->clock,
		.fixed_now = run->opt.have_now,
		.dry_run = run->opt.dry_run,
		.summary = run->summary,
	};
	if (run->guard_held) {
		job->keep = lease_keep;
		job->renew = lease_renew;
		job->lease = run;
	}
}

static int fail(struct eng_run *run, const struct eng_err *err)
{
	if (!run->skipped)
		eng_log(ENG_ERROR, err->event[0] ? err->event : "run_failed",
			ENG_S("error", err->msg),
			ENG_S("error_class", eng_status_name(err->status)),
			err->sqlstate[0] ? (struct eng_field)ENG_S("sqlstate", err->sqlstate)
					 : (struct eng_field){0});
	json_object_set_new(run->summary, "error", eng_json_masked(err->msg));
	return eng_run_finish(run, eng_exit_code(err->status));
}

int eng_run_end(struct eng_run *run, enum eng_status st, const struct eng_err *err)
{
	if (st == ENG_OK || st == ENG_PARTIAL)
		return eng_run_finish(run, eng_exit_code(st));
	if (st == ENG_EUSAGE)
		return usage_error(run, err);
	return fail(run, err);
}

static const char *status_for(struct eng_run *run, int exit_code)
{
	if (run->skipped)
		return "skipped";
	if (exit_code == ENG_EXIT_OK)
		return "ok";
	if (exit_code == ENG_EXIT_PARTIAL)
		return "partial";
	return "failed";
}

/* A run that lost its database says how it ended and frees its lease all
 * the same: it reconnects, with growing pauses, for up to END_RETRY_S (a
 * second signal cuts that short). */
static void reach_db(struct eng_run *run)
{
	if (!run->db.conn || eng_db_alive(&run->db))
		return;
	int64_t t0 = eng_mono_us(), deadline = t0 + END_RETRY_S * ENG_USEC_PER_SEC;
	sig_atomic_t signals0 = signals_seen;
	struct eng_err e = ENG_ERR_INIT;
	for (int attempt = 0;; attempt++) {
		if (eng_db_reconnect(&run->db, &e) == ENG_OK) {
			eng_log(ENG_INFO, "reconnected", ENG_S("reason", "to record the run's end"),
				ENG_I("attempts", attempt + 1),
				ENG_I("waited_ms", (eng_mono_us() - t0) / 1000));
			return;
		}
		int64_t now = eng_mono_us();
		if (e.status != ENG_ETEMP || now >= deadline || signals_seen != signals0)
			break;
		int64_t wait = (int64_t)100000 << (attempt < 4 ? attempt : 4); /* to 1.6 s */
		if (now + wait > deadline)
			wait = deadline - now;
		struct timespec ts = {wait / 1000000, (wait % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	eng_log(ENG_WARN, "job_run_not_recorded", ENG_S("error", e.msg),
		ENG_I("waited_ms", (eng_mono_us() - t0) / 1000),
		ENG_S("hint", "the next run marks it died"));
}

/* The job_runs row gets how the run ended. */
static void record_end(struct eng_run *run, const char *status, int exit_code,
		       const char *summary)
{
	struct eng_err err = ENG_ERR_INIT;
	if (eng_runs_end(&run->db, run->run_id, status, exit_code, summary, &err))
		eng_log(ENG_WARN, "job_run_not_recorded", ENG_S("error", err.msg));
}

/* One JSON line, or indented for a person at a terminal. */
static void print_summary(const struct eng_run *run, const char *line)
{
	if (run->stdout_text) {
		fputs(run->stdout_text, stdout);
		fflush(stdout);
		return;
	}
	enum eng_summary_format f = run->opt.summary_format;
	if (f == ENG_SUMMARY_PRETTY || (f == ENG_SUMMARY_AUTO && isatty(1) == 1)) {
		char *pretty = json_dumps(run->summary, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
		fputs(pretty ? pretty : line, stdout);
		free(pretty);
	} else {
		fputs(line, stdout);
	}
	fputc('\n', stdout);
	fflush(stdout);
}

int eng_run_finish(struct eng_run *run, int exit_code)
{
	if (run->finished)
		return exit_code;
	run->finished = true;

	int64_t ms = (eng_mono_us() - run->t0_us) / 1000;
	const char *status = status_for(run, exit_code);
	json_object_set_new(run->summary, "status", json_string(status));
	json_object_set_new(run->summary, "exit_code", json_integer(exit_code));
	json_object_set_new(run->summary, "duration_ms", json_integer(ms));
	char *text = eng_json_dump(run->summary);

	if (run->job_row || run->guard_held)
		reach_db(run);
	if (eng_db_alive(&run->db)) {
		eng_db_rollback(&run->db); /* whatever an error left open */
		if (run->job_row)
			record_end(run, status, exit_code, text);
		if (run->guard_held)
			eng_lease_release(&run->db, run->program, run->run_id);
	}

	if (run->started) /* a usage error stays one line */
		eng_log(ENG_INFO, "job_finished", ENG_S("status", status),
			ENG_I("exit_code", exit_code), ENG_I("duration_ms", ms));
	print_summary(run, text);
	free(text);

	eng_db_close(&run->db);
	json_decref(run->summary);
	run->summary = NULL;
	return exit_code;
}

/* ---- a program -------------------------------------------------------------- */

enum eng_status eng_no_arguments(const struct eng_args *a, struct eng_err *err)
{
	if (a->argc > 0)
		return eng_err_set(err, ENG_EUSAGE, "unexpected argument \"%s\"", a->argv[0]);
	return ENG_OK;
}

int eng_main(const struct eng_prog *prog, void *opts, int argc, char **argv)
{
	struct eng_run run;
	struct eng_err err = ENG_ERR_INIT;
	struct eng_help help = {
		prog->usage, prog->options, prog->common, prog->exits,
		(prog->start & ENG_START_GUARD ? ENG_HELP_LEASE : 0) |
			(prog->start & ENG_START_SCHEMA ? ENG_HELP_SCHEMA : 0),
	};
	struct eng_cmd cmd = {&help, prog->opts, prog->common, prog->on_opt, opts,
			      prog->fields};
	int first;
	eng_run_init(&run, prog->name);
	int rc = eng_run_args(&run, &cmd, argc, argv, &first);
	if (rc < 0) {
		/* A process that will hold a secret may not dump core. */
		if (prog->secret)
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		struct eng_args a = {argc - first, argv + first, &run.opt, prog->start,
				     run.summary};
		enum eng_status st = prog->args ? ENG_OK : eng_no_arguments(&a, &err);
		if (st == ENG_OK && prog->check)
			st = prog->check(opts, &a, &err);
		if (st == ENG_OK)
			st = eng_run_start(&run, a.start, &err);
		if (st == ENG_OK) {
			struct eng_job job;
			eng_run_job(&run, &job);
			st = prog->run(opts, &job, &err);
			if (prog->output)
				run.stdout_text = prog->output(opts);
		}
		rc = eng_run_end(&run, st, &err);
	}
	if (prog->done)
		prog->done(opts);
	return rc;
}
