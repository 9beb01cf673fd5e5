/*
 * What --help prints: the program's own text (synopsis, description, its
 * own options), then what the front end writes the same way for every
 * program: the shared options' lines and the exit codes' paragraph.
 */
#ifndef ENG_HELP_H
#define ENG_HELP_H

#include "eng_exit.h"

struct eng_help {
	const char *usage;   /* synopsis and description, "\n"-terminated */
	const char *options; /* the program's own options (eng_opt_help) */
	unsigned common;     /* the shared options it takes: ENG_OPT_* */
	const struct eng_exit_text *exits; /* its own exit codes (eng_exit.h) */
	unsigned about;      /* ENG_HELP_*: what the shared meanings mention */
};

/* The whole text; free() it. */
char *eng_help_text(const struct eng_help *h);

#endif
