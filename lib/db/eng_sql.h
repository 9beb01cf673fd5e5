/*
 * Splitting a migration file into statements, so that each runs on its own
 * (CREATE INDEX CONCURRENTLY must) and an error can name its line.
 *
 * Understands '...' and E'...' strings, "..." identifiers, -- and nested
 * block comments, and $tag$...$tag$ bodies. Not understood: SQL-standard
 * function bodies (BEGIN ATOMIC ... END) -- write those with $$ instead.
 */
#ifndef ENG_SQL_H
#define ENG_SQL_H

#include <stdbool.h>
#include <stddef.h>

struct eng_sql_stmt {
	char *text; /* the statement without its ';' (owned) */
	int line;      /* 1-based line of its first token in the file */
	int text_line; /* line where text (leading blanks included) starts */
};

struct eng_sql_list {
	struct eng_sql_stmt *v;
	size_t n, cap;
};

/* Returns 0, or -1 when the file ends inside a string, identifier,
 * comment or dollar-quoted body (*bad_line says where it began). */
int eng_sql_split(const char *sql, struct eng_sql_list *out, int *bad_line);
void eng_sql_list_release(struct eng_sql_list *l);

/* Line (1-based) within text of a 1-based character position, as
 * PostgreSQL reports in PG_DIAG_STATEMENT_POSITION. */
int eng_sql_line_of(const char *text, int position);

/* True when the first line of sql is "-- migrate:no-transaction". */
bool eng_sql_no_transaction(const char *sql);

#endif
