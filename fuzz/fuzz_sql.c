/*
 * The migration statement splitter (eng_sql_split), on any text. Properties:
 * every statement is a piece of the input, the pieces in order and apart,
 * each ending where the input has a ';' or ends, so the statements joined
 * hold no byte the input did not; each holds more than blanks and
 * comments; split again on its own, each statement is exactly one
 * statement, itself, starting on the same line relative to its text (the
 * lexer's state at a ';' is always the plain one); line numbers lie within
 * the input; an unterminated string, identifier, comment or dollar-quoted
 * body is refused with the line where it began, and nothing is leaked.
 */
#include "fuzz.h"

#include "eng_sql.h"

static int lines_of(const char *s)
{
	int n = 1;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = fuzz_cstr(data, size);
	size_t n = strlen(sql);
	int total = lines_of(sql);
	struct eng_sql_list l;
	int bad = -1;

	(void)eng_sql_no_transaction(sql);
	if (eng_sql_split(sql, &l, &bad) != 0) {
		CHECK(bad >= 1 && bad <= total);
		CHECK(l.v == NULL && l.n == 0);
		free(sql);
		return 0;
	}

	size_t at = 0; /* where the previous statement's ';' was passed */
	for (size_t i = 0; i < l.n; i++) {
		const struct eng_sql_stmt *s = &l.v[i];
		size_t k = strlen(s->text);
		/* the first place from at where the text stands before a ';' or
		 * the end */
		const char *p = sql + at;
		const char *found = NULL;
		while ((p = strstr(p, s->text)) != NULL) {
			if (p[k] == ';' || p[k] == '\0') {
				found = p;
				break;
			}
			p++;
		}
		CHECK(found != NULL);
		at = (size_t)(found - sql) + k + (found[k] == ';');
		CHECK(at <= n);

		CHECK(s->text_line >= 1 && s->text_line <= s->line && s->line <= total);
		CHECK(eng_sql_line_of(s->text, 1) == 1);
		CHECK(eng_sql_line_of(s->text, (int)k + 1) <= lines_of(s->text));

		struct eng_sql_list again;
		int bad2 = -1;
		CHECK(eng_sql_split(s->text, &again, &bad2) == 0);
		CHECK(again.n == 1);
		CHECK(strcmp(again.v[0].text, s->text) == 0);
		CHECK(again.v[0].line == s->line - s->text_line + 1);
		eng_sql_list_release(&again);
	}
	size_t semis = 0;
	for (size_t i = 0; i < n; i++)
		semis += sql[i] == ';';
	CHECK(l.n <= semis + 1);
	eng_sql_list_release(&l);
	CHECK(l.v == NULL && l.n == 0);
	free(sql);
	return 0;
}
