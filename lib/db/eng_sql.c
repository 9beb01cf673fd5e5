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

/* Past a block comment at *p (they nest), counting newlines into *line.
 * false when it never ends (*p at the end). */
static bool skip_block_comment(const char **pp, const char *end, int *line)
{
	const char *p = *pp;
	int depth = 0;
	do {
		if (p + 1 < end && p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p + 1 < end && p[0] == '*' && p[1] == '/') {
			depth--;
			p += 2;
		} else {
			if (*p == '\n')
				(*line)++;
			p++;
		}
	} while (p < end && depth > 0);
	*pp = p;
	return depth == 0;
}

/* Past a quoted string or identifier at *p ('...', E'...' with backslash
 * escapes, "..."; a doubled quote is one). false when it never ends. */
static bool skip_quoted(const char **pp, const char *stmt, int *line)
{
	const char *p = *pp;
	char q = *p;
	bool escapes = q == '\'' && p > stmt && (p[-1] == 'E' || p[-1] == 'e') &&
		       !(p - 1 > stmt && ident_char(p[-2]));
	for (p++;; p++) {
		if (!*p)
			return false;
		if (*p == '\n')
			(*line)++;
		if (escapes && *p == '\\' && p[1]) {
			if (p[1] == '\n')
				(*line)++;
			p++;
		} else if (*p == q && p[1] == q) {
			p++; /* doubled quote */
		} else if (*p == q) {
			*pp = p + 1;
			return true;
		}
	}
}

/* Past a dollar-quoted body whose delimiter (tag bytes) starts at *p. */
static bool skip_dollar(const char **pp, size_t tag, int *line)
{
	const char *p = *pp, *end = p + tag;
	for (;;) {
		end = strchr(end, '$');
		if (!end)
			return false;
		if (strncmp(end, p, tag) == 0)
			break;
		end++;
	}
	for (const char *q = p; q < end; q++)
		if (*q == '\n')
			(*line)++;
	*pp = end + tag;
	return true;
}

/* Whether [from, to) holds more than whitespace and comments. */
static bool has_content(const char *from, const char *to)
{
	int ignored = 0;
	const char *p = from;
	while (p < to) {
		if (isspace((unsigned char)*p))
			p++;
		else if (p[0] == '-' && p + 1 < to && p[1] == '-')
			while (p < to && *p != '\n')
				p++;
		else if (p[0] == '/' && p + 1 < to && p[1] == '*')
			skip_block_comment(&p, to, &ignored);
		else
			return true;
	}
	return false;
}

static void push(struct eng_sql_list *l, const char *from, const char *to,
		 int line, int text_line)
{
	if (!has_content(from, to))
		return;
	ENG_GROW(l->v, l->n, l->cap);
	l->v[l->n].text = eng_xstrndup(from, (size_t)(to - from));
	l->v[l->n].line = line;
	l->v[l->n].text_line = text_line;
	l->n++;
}

int eng_sql_split(const char *sql, struct eng_sql_list *out, int *bad_line)
{
	const char *p = sql, *stmt = sql, *end = sql + strlen(sql);
	int line = 1, stmt_line = 0, text_line = 1;

	out->v = NULL;
	out->n = out->cap = 0;
	while (*p) {
		char c = *p;
		int open_line = line;
		bool closed = true;
		size_t tag;
		if (c == '\n') {
			line++;
			p++;
		} else if (isspace((unsigned char)c)) {
			p++;
		} else if (c == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
		} else if (c == '/' && p[1] == '*') {
			closed = skip_block_comment(&p, end, &line);
		} else {
			if (!stmt_line)
				stmt_line = line;
			if (c == ';') {
				push(out, stmt, p, stmt_line, text_line);
				stmt = ++p;
				stmt_line = 0;
				text_line = line;
			} else if (c == '\'' || c == '"') {
				closed = skip_quoted(&p, stmt, &line);
			} else if ((tag = dollar_tag(p, sql)) != 0) {
				closed = skip_dollar(&p, tag, &line);
			} else {
				p++;
			}
		}
		if (!closed) {
			if (bad_line)
				*bad_line = open_line;
			eng_sql_list_release(out);
			return -1;
		}
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
	l->n = l->cap = 0;
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
