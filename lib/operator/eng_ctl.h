/*
 * engagement-ctl's core (DESIGN.md §2.3): the operator's hands. Each
 * command is one call of a function of the database's API (migrations
 * 0015 and 0016: pause_sending, resume_sending, requeue_messages,
 * cancel_messages, set_messaging_limit, person_history), which holds every rule and writes the audit rows with
 * the login and the reason; this module checks what the command line
 * gave, makes the call in one transaction (rolled back in a dry run) and
 * puts the counts in the summary. show's document is masked here
 * (eng_history.h) and goes into the summary, or becomes a timeline.
 *
 * The options of a command are only its own: one of another command's is
 * a usage error that names it, so that a mistyped command line never does
 * something wider than what was meant.
 */
#ifndef ENG_CTL_H
#define ENG_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_err.h"
#include "eng_job.h"
#include "eng_time.h"
#include "eng_users.h"

enum eng_ctl_cmd {
	ENG_CTL_PAUSE,
	ENG_CTL_RESUME,
	ENG_CTL_PAUSES,
	ENG_CTL_REQUEUE,
	ENG_CTL_CANCEL,
	ENG_CTL_LIMIT,
	ENG_CTL_SHOW,
};

/* What show prints: the document in the JSON summary, or instead of it a
 * timeline a person reads (one line per event, in time order). */
enum eng_ctl_format { ENG_CTL_JSON, ENG_CTL_TIMELINE };

/* --error given at most this many times */
#define ENG_CTL_MAX_ERRORS 32

/* The command line as given: each option's text, NULL when absent. */
struct eng_ctl_args {
	const char *type, *template_key, *until, *since, *reason, *status, *key;
	const char *user, *phone, *tier;
	const char *errors[ENG_CTL_MAX_ERRORS];
	size_t nerrors;
	bool unmask;
	bool dry_run;
};

struct eng_ctl {
	struct eng_ctl_args a;
	enum eng_ctl_format format; /* show's, chosen by the front end */
	/* filled by eng_ctl_check */
	enum eng_ctl_cmd cmd;
	const char *name;           /* the command's name */
	eng_time since, until;      /* ENG_TIME_NONE when not given */
	struct eng_user_ref who;    /* --user or --phone */
	bool person;                /* one was given */
	/* filled by show: what stdout gets instead of the summary (owned) */
	char *output;
};

/* Add one --error CODE (1 to 64 bytes, at most ENG_CTL_MAX_ERRORS);
 * ENG_EUSAGE otherwise. */
enum eng_status eng_ctl_add_error(struct eng_ctl *c, const char *code, struct eng_err *err);

/* The positional arguments (the command, nothing after it) and how the
 * options combine with it; parses --since, --until, --user and --phone.
 * ENG_EUSAGE with a one-line message when they do not fit, ENG_EDATA
 * (event invalid_input) when a UUID, phone or timestamp is malformed. */
enum eng_status eng_ctl_check(struct eng_ctl *c, int argc, char *const *argv,
			      struct eng_err *err);

/* Run the command. ENG_EDATA when the database's rules refuse it (its
 * message), ENG_ENOUSER when the person named does not exist, ENG_EPERM
 * when the login lacks the role. */
enum eng_status eng_ctl_run(const struct eng_job *job, struct eng_ctl *c, struct eng_err *err);

void eng_ctl_release(struct eng_ctl *c);

#endif
