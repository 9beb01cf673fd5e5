#include "eng_lines.h"

#include "eng_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum eng_status eng_lines_open(struct eng_lines *l, const char *path,
			       struct eng_err *err)
{
	memset(l, 0, sizeof(*l));
	l->path = path;
	if (strcmp(path, "-") == 0) {
		l->f = stdin;
		return ENG_OK;
	}
	l->f = fopen(path, "r");
	if (!l->f)
		return eng_err_set(err, ENG_ECONFIG, "cannot read %s: %s", path,
				   strerror(errno));
	l->own = true;
	return ENG_OK;
}

/* The next line into l->buf, keeping at most ENG_LINE_MAX + 1 bytes of it
 * (the rest is read and dropped: memory stays bounded whatever comes in).
 * 1 with *n its length kept, 0 at the end. */
static int read_line(struct eng_lines *l, size_t *n, bool *cut)
{
	if (!l->buf) {
		l->cap = ENG_LINE_MAX + 2;
		l->buf = eng_xmalloc(l->cap);
	}
	*n = 0;
	*cut = false;
	int c = EOF;
	while ((c = getc_unlocked(l->f)) != EOF && c != '\n') {
		if (*n < ENG_LINE_MAX + 1)
			l->buf[(*n)++] = (char)c;
		else
			*cut = true;
	}
	l->buf[*n] = '\0';
	return c == EOF && *n == 0 && !*cut ? 0 : 1;
}

int eng_lines_next(struct eng_lines *l, const char **text, size_t *len,
		   bool *too_long, struct eng_err *err)
{
	size_t n;
	bool cut;
	while (read_line(l, &n, &cut) == 1) {
		l->lineno++;
		while (n > 0 && (l->buf[n - 1] == '\n' || l->buf[n - 1] == '\r'))
			l->buf[--n] = '\0';
		if (!cut && n == strspn(l->buf, " \t"))
			continue; /* blank */
		*text = l->buf;
		*len = n;
		*too_long = cut || n > ENG_LINE_MAX;
		return 1;
	}
	if (ferror(l->f)) {
		eng_err_set(err, ENG_ECONFIG, "error reading %s", l->path);
		return -1;
	}
	return 0;
}

void eng_lines_close(struct eng_lines *l)
{
	if (l->own && l->f)
		fclose(l->f);
	free(l->buf);
	l->f = NULL;
	l->buf = NULL;
}

enum eng_status eng_lines_block(struct eng_lines *l, size_t max, eng_line_fn take,
				void *ctx, size_t *n, bool *eof,
				struct eng_err *err)
{
	*n = 0;
	while (*n < max) {
		const char *text;
		size_t len;
		bool too_long;
		int got = eng_lines_next(l, &text, &len, &too_long, err);
		if (got < 0)
			return err->status;
		if (got == 0) {
			*eof = true;
			break;
		}
		take(ctx, (*n)++, l->lineno, text, len, too_long);
	}
	return ENG_OK;
}
