#include "eng_exit.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

int eng_exit_code(enum eng_status st)
{
	switch (st) {
	case ENG_OK: return ENG_EXIT_OK;
	case ENG_PARTIAL: return ENG_EXIT_PARTIAL;
	case ENG_ECANTCREAT: return ENG_EXIT_CANTCREAT;
	case ENG_EUSAGE: return ENG_EXIT_USAGE;
	case ENG_EDATA: return ENG_EXIT_DATAERR;
	case ENG_ENOUSER: return ENG_EXIT_NOUSER;
	case ENG_EUNAVAIL: return ENG_EXIT_UNAVAILABLE;
	case ENG_EINTERNAL: return ENG_EXIT_SOFTWARE;
	case ENG_ETEMP: return ENG_EXIT_TEMPFAIL;
	case ENG_EPERM: return ENG_EXIT_NOPERM;
	case ENG_ECONFIG: return ENG_EXIT_CONFIG;
	}
	return ENG_EXIT_SOFTWARE;
}

/* ---- --help ------------------------------------------------------------------ */

/* What a code means where the program says no more (DESIGN.md §2.2). */
static const struct {
	int code;
	bool always;         /* every program shows it */
	const char *meaning;
	unsigned when;       /* ENG_HELP_*: then also */
	const char *also;    /* this cause */
} shared[] = {
	{ENG_EXIT_OK, true, "done", 0, NULL},
	{ENG_EXIT_PARTIAL, false, "some items failed (the summary says which)", 0, NULL},
	{ENG_EXIT_USAGE, true, "bad command line", 0, NULL},
	{ENG_EXIT_DATAERR, false, "bad input data", 0, NULL},
	{ENG_EXIT_NOUSER, false, "no such user", 0, NULL},
	{ENG_EXIT_UNAVAILABLE, false, "a remote service refused the whole run", 0, NULL},
	{ENG_EXIT_SOFTWARE, false, "an internal error (a bug)", 0, NULL},
	{ENG_EXIT_CANTCREAT, false, "an output file cannot be created", 0, NULL},
	{ENG_EXIT_TEMPFAIL, true, "database unreachable", ENG_HELP_LEASE,
	 "another run holds the lease"},
	{ENG_EXIT_NOPERM, true, "credentials or privilege refused", 0, NULL},
	{ENG_EXIT_CONFIG, true, "missing or invalid configuration", ENG_HELP_SCHEMA,
	 "schema not migrated"},
};

#define HELP_WIDTH 76
#define MAX_CAUSES 8
#define NBSP '\1'

/* text as words into out, no line wider than HELP_WIDTH; *col is where
 * the current line stands. */
static void add_words(struct eng_buf *out, const char *text, size_t *col)
{
	text += strspn(text, " ");
	while (*text) {
		size_t n = strcspn(text, " ");
		if (*col > 0 && *col + 1 + n > HELP_WIDTH) {
			eng_buf_addc(out, '\n');
			*col = 0;
		} else if (*col > 0) {
			eng_buf_addc(out, ' ');
			(*col)++;
		}
		for (size_t i = 0; i < n; i++) /* NBSP: a space that does not break */
			eng_buf_addc(out, text[i] == NBSP ? ' ' : text[i]);
		*col += n;
		text += n;
		text += strspn(text, " ");
	}
}

/* "a", "a, or b", "a, b, or c". */
static void add_causes(struct eng_buf *out, const char *const *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			eng_buf_adds(out, i + 1 < n ? ", " : ", or ");
		eng_buf_adds(out, c[i]);
	}
}

/* Code's meaning for this program into out; false: it does not show it. */
static bool add_code(struct eng_buf *out, int code, const struct eng_exit_text *own,
		     unsigned about)
{
	const char *causes[MAX_CAUSES], *extra[MAX_CAUSES], *mine = NULL;
	size_t n = 0, nx = 0;
	bool shown = false;
	size_t s = 0;
	while (s < sizeof(shared) / sizeof(*shared) && shared[s].code != code)
		s++;
	bool known = s < sizeof(shared) / sizeof(*shared);
	if (known)
		shown = shared[s].always;
	for (const struct eng_exit_text *e = own; e && (e->code || e->meaning); e++) {
		if ((e->code & ~ENG_EXIT_MORE) != code)
			continue;
		shown = true;
		if (!(e->code & ENG_EXIT_MORE))
			mine = e->meaning ? e->meaning : mine;
		else if (nx < MAX_CAUSES - 2)
			extra[nx++] = e->meaning;
	}
	if (!shown)
		return false;
	if (mine) {
		causes[n++] = mine;
	} else if (known) {
		causes[n++] = shared[s].meaning;
		if (shared[s].when & about)
			causes[n++] = shared[s].also;
	}
	for (size_t i = 0; i < nx; i++)
		causes[n++] = extra[i];
	eng_buf_addf(out, "%d%c", code, NBSP); /* the code stays with its meaning */
	add_causes(out, causes, n);
	return true;
}

void eng_exit_help(struct eng_buf *out, const struct eng_exit_text *own, unsigned about)
{
	struct eng_buf para = ENG_BUF_INIT(16384), one = ENG_BUF_INIT(4096);
	eng_buf_adds(&para, "Exit status:");
	const char *sep = " ";
	for (int code = 0; code < 256; code++) {
		eng_buf_reset(&one);
		if (!add_code(&one, code, own, about))
			continue;
		eng_buf_adds(&para, sep);
		eng_buf_adds(&para, eng_buf_str(&one));
		sep = "; ";
	}
	eng_buf_addc(&para, '.');
	size_t col = 0;
	add_words(out, eng_buf_str(&para), &col);
	eng_buf_addc(out, '\n');
	eng_buf_release(&one);
	eng_buf_release(&para);
}
