/* The exit codes (sysexits, DESIGN.md §2.2): the front end's choice, from
 * the status the core returned. */
#ifndef ENG_EXIT_H
#define ENG_EXIT_H

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

#endif
