/* Error results shared by the whole library (see eng.h for the rules). */
#ifndef ENG_ERR_H
#define ENG_ERR_H

#include <signal.h>
#include <stdarg.h>

enum eng_status {
	ENG_OK = 0,
	ENG_EUSAGE,    /* bad command line                          -> 64 */
	ENG_EDATA,     /* bad input data                            -> 65 */
	ENG_ENOUSER,   /* the user named does not exist             -> 67 */
	ENG_EUNAVAIL,  /* a remote service refused the whole run    -> 69 */
	ENG_EINTERNAL, /* a bug                                     -> 70 */
	ENG_ETEMP,     /* try again later                           -> 75 */
	ENG_EPERM,     /* credentials or privilege refused          -> 77 */
	ENG_ECONFIG,   /* configuration missing or schema too old   -> 78 */
	/* Not an error: a job that finished, but with items that failed (it
	 * says which in its summary and err).                     -> 1 */
	ENG_PARTIAL,
	ENG_ECANTCREAT, /* an output file cannot be created         -> 73 */
};

struct eng_err {
	enum eng_status status;
	char sqlstate[6]; /* "" when the error did not come from PostgreSQL */
	char msg[512];    /* one line, lowercase start, no trailing full stop */
	char event[40];   /* the log event that reports it ("" for the default,
			   * run_failed), e.g. run_refused, invalid_input */
};

#define ENG_ERR_INIT {ENG_OK, "", "", ""}

void eng_err_clear(struct eng_err *e);

/* Fill e and return st, so callers can write `return eng_err_set(...)`. */
enum eng_status eng_err_set(struct eng_err *e, enum eng_status st,
			    const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum eng_status eng_err_vset(struct eng_err *e, enum eng_status st,
			     const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Name the log event that reports this error. Returns e->status. */
enum eng_status eng_err_event(struct eng_err *e, const char *event);

/* Prepend context: "context: previous message". Returns e->status. */
enum eng_status eng_err_prefix(struct eng_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Set (to the signal number) by the front end when SIGINT or SIGTERM
 * arrives; the core's long loops poll it, finish or hand back what they
 * hold, and return ENG_ETEMP. */
extern volatile sig_atomic_t eng_interrupted;

const char *eng_status_name(enum eng_status st);

/* Classify a five-character SQLSTATE (NULL or "" gives ENG_EINTERNAL). */
enum eng_status eng_status_from_sqlstate(const char *sqlstate);

#endif
