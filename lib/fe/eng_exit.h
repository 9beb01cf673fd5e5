/* The exit codes (sysexits, DESIGN.md §2.2): the front end's choice, from
 * the status the core returned, and what --help says of them. */
#ifndef ENG_EXIT_H
#define ENG_EXIT_H

#include "eng_buf.h"
#include "eng_err.h"

enum {
	ENG_EXIT_OK = 0,
	ENG_EXIT_PARTIAL = 1,
	ENG_EXIT_USAGE = 64,
	ENG_EXIT_DATAERR = 65,
	ENG_EXIT_NOUSER = 67,
	ENG_EXIT_UNAVAILABLE = 69,
	ENG_EXIT_SOFTWARE = 70,
	ENG_EXIT_CANTCREAT = 73,
	ENG_EXIT_TEMPFAIL = 75,
	ENG_EXIT_NOPERM = 77,
	ENG_EXIT_CONFIG = 78,
};

int eng_exit_code(enum eng_status st);

/* One line of a program's exit codes in --help. Every program shows 0,
 * 64, 75, 77 and 78 with the shared meanings (eng_exit.c); its list adds
 * its other codes and says where a meaning differs:
 *   {65, "drift or a failing migration"}   the meaning here (replaces the
 *                                          shared one);
 *   {67, NULL}                             the shared meaning, for a code
 *                                          not every program shows;
 *   ENG_EXIT_CAUSE(75, "lock busy")        one more cause, after the
 *                                          shared ones.
 * The list ends with {0}. */
struct eng_exit_text {
	int code; /* | ENG_EXIT_MORE: a cause */
	const char *meaning;
};

#define ENG_EXIT_MORE 0x100
#define ENG_EXIT_CAUSE(code, text) {(code) | ENG_EXIT_MORE, (text)}
/* A run that SIGINT or SIGTERM stops: it finishes or hands back the work
 * in hand, then exits 75 (DESIGN.md §2.1). */
#define ENG_EXIT_SIGNAL ENG_EXIT_CAUSE(ENG_EXIT_TEMPFAIL, "a signal stopped the run")

/* What the front end does for a program, which the shared meanings
 * mention. */
enum {
	ENG_HELP_LEASE = 1u << 0,  /* a single-run lease: 75 another run holds it */
	ENG_HELP_SCHEMA = 1u << 1, /* the schema check: 78 schema not migrated */
};

/* Append the "Exit status:" paragraph: the shared codes and the
 * program's own (own may be NULL), in order, wrapped. */
void eng_exit_help(struct eng_buf *out, const struct eng_exit_text *own, unsigned about);

#endif
