/* Reading a batch of JSON lines from a file or stdin ("-"). */
#ifndef ENG_LINES_H
#define ENG_LINES_H

#include <stdbool.h>
#include <stdio.h>

#include "eng_err.h"

#define ENG_LINE_MAX (1024 * 1024)

struct eng_lines {
	FILE *f;
	bool own;
	const char *path;
	char *buf;
	size_t cap;
	long lineno;     /* of the line last returned, counting blank ones */
};

enum eng_status eng_lines_open(struct eng_lines *l, const char *path,
			       struct eng_err *err);
/* The next non-blank line (line endings removed): 1, or 0 at the end, or
 * -1 on a read error (err filled). A line longer than ENG_LINE_MAX is
 * returned with *too_long set. */
int eng_lines_next(struct eng_lines *l, const char **text, size_t *len,
		   bool *too_long, struct eng_err *err);
void eng_lines_close(struct eng_lines *l);

/* Read up to max more lines, calling take(ctx, i, line number, text, len,
 * too_long) for the i-th. *n: how many; *eof set at the end of input.
 * An error only when reading failed. */
typedef void (*eng_line_fn)(void *ctx, size_t i, long lineno, const char *text,
			    size_t len, bool too_long);
enum eng_status eng_lines_block(struct eng_lines *l, size_t max, eng_line_fn take,
				void *ctx, size_t *n, bool *eof,
				struct eng_err *err);

#endif
