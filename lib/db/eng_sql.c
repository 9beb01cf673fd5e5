#include "eng_sql.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/* Length of a dollar-quote delimiter ($tag$ or $$) at p, or 0. */
static size_t dollar_tag(const char *p, const char *start)
{
	if (*p != '$')
		return 0;
	if (p > start && ident_char(p[-1]))
		return 0; /* part of an identifier such as a$b */
	size_t i = 1;
	if (p[i] == '$')
		return 2;
	if (!(isalpha((unsigned char)p[i]) || p[i] == '_'))
		return 0; /* $1 is a parameter, not a quote */
	while (isalnum((unsigned char)p[i]) || p[i] == '_')
		i++;
	return p[i] == '$' ? i + 1 : 0;
}

static void push(struct eng_sql_list *l, const char *from, const char *to,
		 int line, int text_line)
{
	/* Skip statements holding only whitespace and comments. */
	const char *p = from;
	bool content = false;
	while (p < to) {
		if (isspace((unsigned char)*p)) {
			p++;
		} else if (p[0] == '-' && p + 1 < to && p[1] == '-') {
			while (p < to && *p != '\n')
				p++;
		} else if (p[0] == '/' && p + 1 < to && p[1] == '*') {
			int depth = 0;
			do {
				if (p[0] == '/' && p + 1 < to && p[1] == '*') {
					depth++;
					p += 2;
				} else if (p[0] == '*' && p + 1 < to && p[1] == '/') {
					depth--;
					p += 2;
				} else {
					p++;
				}
			} while (p < to && depth > 0);
		} else {
			content = true;
			break;
		}
	}
	if (!content)
		return;
	l->v = eng_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n].text = eng_xstrndup(from, (size_t)(to - from));
	l->v[l->n].line = line;
	l->v[l->n].text_line = text_line;
	l->n++;
}

int eng_sql_split(const char *sql, struct eng_sql_list *out, int *bad_line)
{
	const char *p = sql, *stmt = sql;
	int line = 1, stmt_line = 0, text_line = 1;

	out->v = NULL;
	out->n = 0;
	while (*p) {
		char c = *p;
		if (c == '\n') {
			line++;
			p++;
			continue;
		}
		if (isspace((unsigned char)c)) {
			p++;
			continue;
		}
		if (c == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		int open_line = line;
		if (c == '/' && p[1] == '*') {
			int depth = 0;
			do {
				if (p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (p[0] == '*' && p[1] == '/') {
					depth--;
					p += 2;
				} else {
					if (*p == '\n')
						line++;
					p++;
				}
			} while (*p && depth > 0);
			if (depth > 0)
				goto unterminated;
			continue;
		}
		if (!stmt_line)
			stmt_line = line;
		if (c == ';') {
			push(out, stmt, p, stmt_line, text_line);
			p++;
			stmt = p;
			stmt_line = 0;
			text_line = line;
			continue;
		}
		if (c == '\'' || c == '"') {
			bool escapes = c == '\'' && p > stmt &&
				       (p[-1] == 'E' || p[-1] == 'e') &&
				       !(p - 1 > stmt && ident_char(p[-2]));
			p++;
			for (;;) {
				if (!*p)
					goto unterminated;
				if (*p == '\n')
					line++;
				if (escapes && *p == '\\' && p[1]) {
					if (p[1] == '\n')
						line++;
					p += 2;
					continue;
				}
				if (*p == c) {
					if (p[1] == c) { /* doubled quote */
						p += 2;
						continue;
					}
					p++;
					break;
				}
				p++;
			}
			continue;
		}
		size_t tag = dollar_tag(p, sql);
		if (tag) {
			const char *body = p + tag;
			const char *end = body;
			for (;;) {
				end = strchr(end, '$');
				if (!end)
					goto unterminated;
				if (strncmp(end, p, tag) == 0)
					break;
				end++;
			}
			for (const char *q = p; q < end; q++)
				if (*q == '\n')
					line++;
			p = end + tag;
			continue;
		}
		(void)open_line;
		p++;
		continue;
unterminated:
		if (bad_line)
			*bad_line = open_line;
		eng_sql_list_release(out);
		return -1;
	}
	push(out, stmt, p, stmt_line ? stmt_line : line, text_line);
	return 0;
}

void eng_sql_list_release(struct eng_sql_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int eng_sql_line_of(const char *text, int position)
{
	/* position counts characters, not bytes: skip UTF-8 continuations. */
	int line = 1, chars = 0;
	for (const char *p = text; *p; p++) {
		if (((unsigned char)*p & 0xC0) == 0x80)
			continue;
		if (++chars >= position)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

bool eng_sql_no_transaction(const char *sql)
{
	static const char marker[] = "-- migrate:no-transaction";
	size_t n = sizeof(marker) - 1;
	if (strncmp(sql, marker, n) != 0)
		return false;
	const char *p = sql + n;
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	return *p == '\n' || *p == '\0';
}
