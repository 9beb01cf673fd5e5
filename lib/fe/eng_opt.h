/*
 * Options every program shares (DESIGN.md §2.1), merged into each
 * program's getopt_long table so that all of them behave the same.
 */
#ifndef ENG_OPT_H
#define ENG_OPT_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "eng_buf.h"
#include "eng_err.h"
#include "eng_time.h"

/* Which shared options a program takes, beyond --db, --help, --version,
 * --log-level, --log-format and --summary-format, which all take. */
enum {
	ENG_OPT_NOW = 1u << 0,    /* --now RFC3339 */
	ENG_OPT_DRYRUN = 1u << 1, /* --dry-run */
	ENG_OPT_NODB = 1u << 2,   /* no --db (a program that needs none) */
};

/* getopt_long values of the shared options (program options use their
 * own, below 0x1000). */
enum {
	ENG_OPTC_DB = 0x1000,
	ENG_OPTC_HELP,
	ENG_OPTC_VERSION,
	ENG_OPTC_LOGLEVEL,
	ENG_OPTC_NOW,
	ENG_OPTC_DRYRUN,
	ENG_OPTC_LOGFORMAT,
	ENG_OPTC_SUMFORMAT,
	ENG_OPTC_LAST = ENG_OPTC_SUMFORMAT,
};

/* --summary-format */
enum eng_summary_format { ENG_SUMMARY_AUTO = 0, ENG_SUMMARY_JSON, ENG_SUMMARY_PRETTY };

struct eng_common {
	const char *db;
	bool help;
	bool version;
	bool dry_run;
	bool have_now;
	eng_time now;
	enum eng_summary_format summary_format;
};

/* A program's option handler: ENG_OK, or an error (normally ENG_EUSAGE)
 * with err filled. */
typedef enum eng_status (*eng_opt_fn)(void *ctx, int opt, const char *arg,
				      struct eng_err *err);

/* An option checked and stored by the parser itself, written at off in
 * the program's options struct (ctx): a number in [lo, hi] (milliseconds
 * for ENG_NUM_MS, which takes a duration such as 500ms, 10s, 2min or a
 * bare number of seconds), a text of lo to hi bytes, or a flag. */
enum eng_opt_kind {
	ENG_NUM_INT,   /* int */
	ENG_NUM_LLONG, /* long long */
	ENG_NUM_MS,    /* long, milliseconds */
	ENG_NUM_REAL,  /* double */
	ENG_OPT_TEXT,  /* const char *: the argument itself */
	ENG_OPT_COPY,  /* char[hi + 1]: a copy of it */
	ENG_OPT_FLAG,  /* bool: true (an option without a value) */
};

struct eng_opt_field {
	int opt;
	enum eng_opt_kind kind;
	double lo, hi;
	size_t off;
	const char *meaning; /* for the error, e.g. "messages per second, 0 for
			      * no limit"; NULL: the range */
};

#define ENG_NUM(opt, kind, lo, hi, type, field, meaning) \
	{(opt), (kind), (lo), (hi), offsetof(type, field), (meaning)}
/* field's offset, when it has the type P points to (else the comparison
 * of distinct pointer types does not compile) */
#define ENG_OFFSET_(type, field, P) \
	(offsetof(type, field) + 0 * sizeof(&((type *)0)->field == (P)0))
#define ENG_TEXT(opt, lo, hi, type, field) \
	{(opt), ENG_OPT_TEXT, (lo), (hi), ENG_OFFSET_(type, field, const char **), NULL}
/* any text (argv's own limit is far below this one) */
#define ENG_ARG(opt, type, field) ENG_TEXT(opt, 0, 1e9, type, field)
/* into a char array, 1 byte to what it holds */
#define ENG_COPY(opt, type, field)                                                  \
	{(opt), ENG_OPT_COPY, 1, sizeof(((type *)0)->field) - 1,                     \
	 ENG_OFFSET_(type, field, char(*)[sizeof(((type *)0)->field)]), NULL}
#define ENG_FLAG(opt, type, field) \
	{(opt), ENG_OPT_FLAG, 0, 0, ENG_OFFSET_(type, field, bool *), NULL}

struct eng_help;

struct eng_cmd {
	const struct eng_help *help; /* what --help prints (eng_help.h) */
	const struct option *opts;   /* the program's own, {0}-terminated */
	unsigned common;             /* ENG_OPT_* */
	eng_opt_fn handle;           /* the others; may be NULL */
	void *ctx;
	const struct eng_opt_field *fields; /* options the parser stores,
					     * {0}-terminated; may be NULL */
};

/* Parse argv. Returns ENG_OK with *first_arg the index of the first
 * positional argument, or ENG_EUSAGE with err filled. --help/--version only
 * set flags in c. */
enum eng_status eng_opt_parse(const struct eng_cmd *cmd, int argc,
			      char **argv, struct eng_common *c,
			      int *first_arg, struct eng_err *err);

/* An integer option value in [lo, hi] into *v; otherwise ENG_EUSAGE with
 * "invalid --NAME "ARG": expected LO to HI". */
enum eng_status eng_opt_int(const char *name, const char *arg, long long lo,
			    long long hi, long long *v, struct eng_err *err);

/* arg is one of the n words: its index into *i; otherwise ENG_EUSAGE with
 * "invalid --NAME "ARG": use A, B or C". */
enum eng_status eng_opt_choice(const char *name, const char *arg, const char *const *words,
			       size_t n, int *i, struct eng_err *err);

/* A text option's value: lo to hi bytes long; otherwise ENG_EUSAGE with
 * "invalid --NAME: expected LO to HI bytes". */
enum eng_status eng_opt_text(const char *name, const char *arg, size_t lo, size_t hi,
			     struct eng_err *err);

/* Check arg against f and store it in ctx (what the parser does for
 * cmd->fields); name is the option's long name. */
enum eng_status eng_opt_store(const struct eng_opt_field *f, const char *name,
			      const char *arg, void *ctx, struct eng_err *err);

/* Append the "Options:" section of --help: own (the program's own
 * options, one "      --name ARG   description" line each; NULL: none),
 * then the lines of the shared options that common (ENG_OPT_*) takes,
 * their descriptions at the column own's descriptions mostly start at. */
void eng_opt_help(struct eng_buf *out, const char *own, unsigned common);

#endif
