/* eng_opt: the options every program shares, merged with its own. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "eng_help.h"
#include "eng_log.h"
#include "eng_opt.h"

/* getopt_long permutes argv, so it must be writable: copies of the words. */
struct args {
	int argc;
	char *argv[16];
};

static void args_make(struct args *a, const char *const *words)
{
	a->argc = 0;
	while (words[a->argc]) {
		assert_true(a->argc < 15);
		a->argv[a->argc] = strdup(words[a->argc]);
		a->argc++;
	}
	a->argv[a->argc] = NULL;
}

static void args_free(struct args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
}

/* The program under test: --limit N and --verbose of its own. */
struct prog {
	int calls;
	long long limit;
	bool verbose;
	int last_opt;
};

enum { OPT_LIMIT = 'l', OPT_VERBOSE = 'v' };

static const struct option prog_opts[] = {
	{"limit", required_argument, NULL, OPT_LIMIT},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{NULL, 0, NULL, 0},
};

static enum eng_status prog_handle(void *ctx, int opt, const char *arg,
				   struct eng_err *err)
{
	struct prog *p = ctx;
	p->calls++;
	p->last_opt = opt;
	switch (opt) {
	case OPT_LIMIT: {
		char *end;
		long long v = strtoll(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || v < 1)
			return eng_err_set(err, ENG_EUSAGE, "invalid --limit \"%s\"",
					   arg);
		p->limit = v;
		return ENG_OK;
	}
	case OPT_VERBOSE:
		if (arg)
			return eng_err_set(err, ENG_EINTERNAL, "unexpected value");
		p->verbose = true;
		return ENG_OK;
	}
	return eng_err_set(err, ENG_EINTERNAL, "unexpected option %d", opt);
}

struct run {
	enum eng_status st;
	struct eng_common c;
	struct eng_err err;
	struct prog prog;
	int first_arg;
	struct args a;
};

/* Parse words (NULL-terminated) as a program with the given ENG_OPT_*. */
static void parse(struct run *r, unsigned common, const char *const *words)
{
	memset(r, 0, sizeof(*r));
	eng_err_clear(&r->err);
	r->first_arg = -1;
	struct eng_cmd cmd = {
		.opts = prog_opts,
		.common = common,
		.handle = prog_handle,
		.ctx = &r->prog,
	};
	args_make(&r->a, words);
	r->st = eng_opt_parse(&cmd, r->a.argc, r->a.argv, &r->c, &r->first_arg,
			      &r->err);
}

static void setup_level(void)
{
	eng_log_set_level(ENG_INFO);
}

static void test_db(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0, (const char *const[]){"prog", "--db", "postgres://h/x", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_non_null(r.c.db);
	assert_string_equal(r.c.db, "postgres://h/x");
	assert_int_equal(r.first_arg, 3);
	assert_false(r.c.help);
	assert_false(r.c.dry_run);
	assert_false(r.c.have_now);
	assert_int_equal(r.prog.calls, 0);
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "--db=dbname=x", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_string_equal(r.c.db, "dbname=x");
	assert_int_equal(r.first_arg, 2);
	args_free(&r.a);
}

static void test_db_refused_with_nodb(void **state)
{
	(void)state;
	struct run r;
	parse(&r, ENG_OPT_NODB, (const char *const[]){"prog", "--db", "x", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "--db"));
	args_free(&r.a);
}

static void test_log_level(void **state)
{
	(void)state;
	struct run r;
	setup_level();
	parse(&r, 0, (const char *const[]){"prog", "--log-level", "debug", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(eng_log_get_level(), ENG_DEBUG);
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "--log-level=error", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(eng_log_get_level(), ENG_ERROR);
	args_free(&r.a);
	setup_level();
}

static void test_log_level_bad(void **state)
{
	(void)state;
	struct run r;
	setup_level();
	parse(&r, 0, (const char *const[]){"prog", "--log-level", "loud", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_int_equal(r.err.status, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "loud"));
	assert_non_null(strstr(r.err.msg, "--log-level"));
	assert_int_equal(eng_log_get_level(), ENG_INFO); /* unchanged */
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "--log-level", "INFO", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	args_free(&r.a);
}

static void test_now(void **state)
{
	(void)state;
	struct run r;
	parse(&r, ENG_OPT_NOW,
	      (const char *const[]){"prog", "--now", "2026-11-22T06:00:00Z", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_true(r.c.have_now);
	assert_int_equal(r.c.now, INT64_C(1795327200) * ENG_USEC_PER_SEC);
	args_free(&r.a);

	parse(&r, ENG_OPT_NOW,
	      (const char *const[]){"prog", "--now=2026-11-22T06:00:00-03:00", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_true(r.c.have_now);
	assert_int_equal(r.c.now, INT64_C(1795338000) * ENG_USEC_PER_SEC);
	args_free(&r.a);

	/* not given: have_now stays false */
	parse(&r, ENG_OPT_NOW, (const char *const[]){"prog", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_false(r.c.have_now);
	args_free(&r.a);
}

static void test_now_bad(void **state)
{
	(void)state;
	struct run r;
	parse(&r, ENG_OPT_NOW,
	      (const char *const[]){"prog", "--now", "yesterday", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "yesterday"));
	assert_false(r.c.have_now);
	args_free(&r.a);

	parse(&r, ENG_OPT_NOW,
	      (const char *const[]){"prog", "--now", "2026-02-29T00:00:00Z", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	args_free(&r.a);
}

static void test_now_refused_without_flag(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0,
	      (const char *const[]){"prog", "--now", "2026-11-22T06:00:00Z", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "unrecognized option '--now'");
	assert_false(r.c.have_now);
	args_free(&r.a);
}

static void test_unknown(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0, (const char *const[]){"prog", "--foo", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "unrecognized option '--foo'");
	args_free(&r.a);

	/* the value is not echoed back */
	parse(&r, 0, (const char *const[]){"prog", "--foo=secret", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "unrecognized option '--foo'");
	args_free(&r.a);

	/* after a positional argument too */
	parse(&r, 0, (const char *const[]){"prog", "file", "--foo", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "unrecognized option '--foo'");
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "-x", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "invalid option -- 'x'");
	args_free(&r.a);
}

static void test_missing_value(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0, (const char *const[]){"prog", "--db", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "--db"));
	assert_null(r.c.db);
	args_free(&r.a);

	parse(&r, ENG_OPT_NOW, (const char *const[]){"prog", "--now", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "--now"));
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "--limit", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_non_null(strstr(r.err.msg, "--limit"));
	assert_int_equal(r.prog.calls, 0);
	args_free(&r.a);
}

static void test_dry_run(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0, (const char *const[]){"prog", "--dry-run", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "unrecognized option '--dry-run'");
	assert_false(r.c.dry_run);
	args_free(&r.a);

	parse(&r, ENG_OPT_DRYRUN, (const char *const[]){"prog", "--dry-run", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_true(r.c.dry_run);
	args_free(&r.a);
}

static void test_help_version(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0, (const char *const[]){"prog", "--help", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_true(r.c.help);
	assert_false(r.c.version);
	args_free(&r.a);
	parse(&r, ENG_OPT_NODB, (const char *const[]){"prog", "--version", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_true(r.c.version);
	args_free(&r.a);
}

static void test_positional(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0,
	      (const char *const[]){"prog", "--db", "x", "a.sql", "b.sql", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(r.first_arg, 3);
	assert_int_equal(r.a.argc - r.first_arg, 2);
	assert_string_equal(r.a.argv[r.first_arg], "a.sql");
	assert_string_equal(r.a.argv[r.first_arg + 1], "b.sql");
	args_free(&r.a);

	/* options after positional arguments still count */
	parse(&r, 0,
	      (const char *const[]){"prog", "a.sql", "--db", "x", "b.sql", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_string_equal(r.c.db, "x");
	assert_int_equal(r.a.argc - r.first_arg, 2);
	assert_string_equal(r.a.argv[r.first_arg], "a.sql");
	assert_string_equal(r.a.argv[r.first_arg + 1], "b.sql");
	args_free(&r.a);

	/* "--" ends the options */
	parse(&r, 0,
	      (const char *const[]){"prog", "--db", "x", "--", "--foo", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(r.a.argc - r.first_arg, 1);
	assert_string_equal(r.a.argv[r.first_arg], "--foo");
	args_free(&r.a);

	/* none at all */
	parse(&r, 0, (const char *const[]){"prog", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(r.first_arg, 1);
	args_free(&r.a);
}

static void test_program_options(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0,
	      (const char *const[]){"prog", "--limit", "25", "--verbose", "--db",
				    "x", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(r.prog.calls, 2);
	assert_int_equal(r.prog.limit, 25);
	assert_true(r.prog.verbose);
	assert_string_equal(r.c.db, "x");
	args_free(&r.a);

	parse(&r, 0, (const char *const[]){"prog", "--limit=7", NULL});
	assert_int_equal(r.st, ENG_OK);
	assert_int_equal(r.prog.calls, 1);
	assert_int_equal(r.prog.last_opt, OPT_LIMIT);
	assert_int_equal(r.prog.limit, 7);
	args_free(&r.a);
}

static void test_program_option_error(void **state)
{
	(void)state;
	struct run r;
	parse(&r, 0,
	      (const char *const[]){"prog", "--limit", "zero", "--verbose", NULL});
	assert_int_equal(r.st, ENG_EUSAGE);
	assert_string_equal(r.err.msg, "invalid --limit \"zero\"");
	/* parsing stopped at the first error */
	assert_int_equal(r.prog.calls, 1);
	assert_false(r.prog.verbose);
	args_free(&r.a);
}

static void test_reparse(void **state)
{
	(void)state;
	/* a second parse starts from scratch (optind reset) */
	struct run r;
	for (int i = 0; i < 3; i++) {
		parse(&r, ENG_OPT_DRYRUN,
		      (const char *const[]){"prog", "--dry-run", "f", NULL});
		assert_int_equal(r.st, ENG_OK);
		assert_true(r.c.dry_run);
		assert_int_equal(r.first_arg, 2);
		args_free(&r.a);
		parse(&r, 0, (const char *const[]){"prog", "--bad", NULL});
		assert_int_equal(r.st, ENG_EUSAGE);
		args_free(&r.a);
	}
}

static void test_no_program_options(void **state)
{
	(void)state;
	struct eng_common c;
	memset(&c, 0, sizeof(c));
	struct eng_err err = ENG_ERR_INIT;
	struct eng_cmd cmd = {.help = NULL, .opts = NULL, .common = 0,
			      .handle = NULL, .ctx = NULL};
	struct args a;
	args_make(&a, (const char *const[]){"prog", "--db", "x", "f", NULL});
	int first = -1;
	assert_int_equal(eng_opt_parse(&cmd, a.argc, a.argv, &c, &first, &err),
			 ENG_OK);
	assert_string_equal(c.db, "x");
	assert_int_equal(first, 3);
	args_free(&a);

	args_make(&a, (const char *const[]){"prog", "--limit", "3", NULL});
	assert_int_equal(eng_opt_parse(&cmd, a.argc, a.argv, &c, &first, &err),
			 ENG_EUSAGE);
	args_free(&a);
}

/* ---- options the parser stores itself ----------------------------------- */

struct stored {
	const char *name;
	char tag[8];
	bool on;
	int n;
};

enum { OPT_NAME = 1, OPT_TAG, OPT_ON, OPT_N };

static const struct option stored_opts[] = {
	{"name", required_argument, NULL, OPT_NAME},
	{"tag", required_argument, NULL, OPT_TAG},
	{"on", no_argument, NULL, OPT_ON},
	{"n", required_argument, NULL, OPT_N},
	{NULL, 0, NULL, 0},
};

static const struct eng_opt_field stored_fields[] = {
	ENG_TEXT(OPT_NAME, 0, 5, struct stored, name),
	ENG_COPY(OPT_TAG, struct stored, tag),
	ENG_FLAG(OPT_ON, struct stored, on),
	ENG_NUM(OPT_N, ENG_NUM_INT, 1, 9, struct stored, n, NULL),
	{0},
};

static enum eng_status parse_stored(struct stored *o, const char *const *words,
				    struct eng_err *err)
{
	struct eng_common c;
	memset(&c, 0, sizeof(c));
	memset(o, 0, sizeof(*o));
	struct eng_cmd cmd = {.opts = stored_opts, .ctx = o, .fields = stored_fields};
	struct args a;
	int first = -1;
	args_make(&a, words);
	enum eng_status st = eng_opt_parse(&cmd, a.argc, a.argv, &c, &first, err);
	/* name points into argv: keep what the test looks at */
	static char name[16];
	if (o->name) {
		snprintf(name, sizeof(name), "%s", o->name);
		o->name = name;
	}
	args_free(&a);
	return st;
}

static void test_fields(void **state)
{
	(void)state;
	struct stored o;
	struct eng_err err = ENG_ERR_INIT;
	assert_int_equal(parse_stored(&o,
				      (const char *const[]){"prog", "--name", "ab", "--tag",
							    "1234567", "--on", "--n", "3",
							    NULL},
				      &err),
			 ENG_OK);
	assert_string_equal(o.name, "ab");
	assert_string_equal(o.tag, "1234567");
	assert_true(o.on);
	assert_int_equal(o.n, 3);

	assert_int_equal(parse_stored(&o, (const char *const[]){"prog", "--name", "", NULL},
				      &err),
			 ENG_OK);
	assert_string_equal(o.name, "");
	assert_int_equal(parse_stored(&o,
				      (const char *const[]){"prog", "--name", "abcdef", NULL},
				      &err),
			 ENG_EUSAGE);
	assert_string_equal(err.msg, "invalid --name: expected at most 5 bytes");
	/* a copy: one byte to what the array holds */
	assert_int_equal(parse_stored(&o,
				      (const char *const[]){"prog", "--tag", "12345678", NULL},
				      &err),
			 ENG_EUSAGE);
	assert_string_equal(err.msg, "invalid --tag: expected 1 to 7 bytes");
	assert_string_equal(o.tag, "");
	assert_int_equal(parse_stored(&o, (const char *const[]){"prog", "--tag=", NULL}, &err),
			 ENG_EUSAGE);
}

static void test_choice(void **state)
{
	(void)state;
	static const char *const words[] = {"json", "text", "pretty"};
	struct eng_err err = ENG_ERR_INIT;
	int i = -1;
	assert_int_equal(eng_opt_choice("format", "text", words, 3, &i, &err), ENG_OK);
	assert_int_equal(i, 1);
	assert_int_equal(eng_opt_choice("format", "xml", words, 3, &i, &err), ENG_EUSAGE);
	assert_string_equal(err.msg, "invalid --format \"xml\": use json, text or pretty");
	assert_int_equal(eng_opt_choice("format", "xml", words, 2, &i, &err), ENG_EUSAGE);
	assert_string_equal(err.msg, "invalid --format \"xml\": use json or text");
}

/* ---- --help ---------------------------------------------------------------- */

/* The line of text that starts with start, or NULL. */
static const char *line_of(const char *text, const char *start)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, start, strlen(start)) == 0)
			return l;
	return NULL;
}

static void test_help_options(void **state)
{
	(void)state;
	struct eng_help h = {
		.usage = "Usage: prog [OPTION]...\nDo a thing.\n",
		.options = "      --limit N            at most N (default 3)\n"
			   "      --verbose            say more\n"
			   "                           and more\n",
		.common = ENG_OPT_NOW | ENG_OPT_DRYRUN,
	};
	char *t = eng_help_text(&h);
	assert_non_null(strstr(t, "Usage: prog [OPTION]...\nDo a thing.\n\nOptions:\n"
				  "      --limit N"));
	/* every shared option, after the program's own, at their column (27) */
	static const char *const shared[] = {
		"      --now RFC3339", "      --dry-run", "      --db CONNINFO",
		"      --log-level LEVEL", "      --log-format FORMAT",
		"      --summary-format FORMAT", "      --help", "      --version",
	};
	const char *prev = strstr(t, "      --verbose");
	for (size_t i = 0; i < sizeof(shared) / sizeof(*shared); i++) {
		const char *l = line_of(t, shared[i]);
		assert_non_null(l);
		assert_true(l > prev);
		prev = l;
	}
	/* descriptions at the program's column; a long name has its own line */
	assert_non_null(line_of(t, "      --dry-run            report what would happen, "
				   "change nothing\n"));
	assert_non_null(strstr(t, "\n      --summary-format FORMAT\n"
				  "                           auto (indented on a terminal), "
				  "json or pretty\n"));
	assert_non_null(strstr(t, "\n                           (default: the database's clock)\n"));
	free(t);

	/* without --now, --dry-run or --db, they are not listed */
	h.common = ENG_OPT_NODB;
	h.options = NULL;
	t = eng_help_text(&h);
	assert_null(strstr(t, "--now"));
	assert_null(strstr(t, "--dry-run"));
	assert_null(strstr(t, "--db"));
	assert_non_null(line_of(t, "      --help                 show this help and exit"));
	free(t);
}

/* The exit status paragraph of help text t, its lines (at most 76 wide)
 * joined with spaces. */
static void paragraph(const char *t, char *out, size_t size)
{
	const char *p = strstr(t, "\n\nExit status: ");
	assert_non_null(p);
	*out = '\0';
	for (const char *l = p + 2; *l;) {
		size_t n = strcspn(l, "\n");
		assert_true(n <= 76);
		assert_true(strlen(out) + n + 2 <= size);
		strncat(out, l, n);
		strcat(out, " ");
		l += n + (l[n] == '\n');
	}
}

static void test_help_exits(void **state)
{
	(void)state;
	static const struct eng_exit_text exits[] = {
		{ENG_EXIT_OK, "applied"},
		{ENG_EXIT_DATAERR, "bad phrase"},
		{ENG_EXIT_NOUSER, NULL},
		ENG_EXIT_CAUSE(ENG_EXIT_TEMPFAIL, "lock busy"),
		ENG_EXIT_SIGNAL,
		{0},
	};
	struct eng_help h = {.usage = "Usage: prog\n", .exits = exits,
			     .about = ENG_HELP_LEASE | ENG_HELP_SCHEMA};
	char *t = eng_help_text(&h);
	char para[1024];
	paragraph(t, para, sizeof(para));
	assert_string_equal(para,
			    "Exit status: 0 applied; 64 bad command line; 65 bad phrase; "
			    "67 no such user; 75 database unreachable, another run holds "
			    "the lease, lock busy, or a signal stopped the run; 77 "
			    "credentials or privilege refused; 78 missing or invalid "
			    "configuration, or schema not migrated. ");
	free(t);

	/* the shared codes alone, without the lease and the schema */
	h.exits = NULL;
	h.about = 0;
	t = eng_help_text(&h);
	paragraph(t, para, sizeof(para));
	assert_string_equal(para, "Exit status: 0 done; 64 bad command line; 75 database "
				  "unreachable; 77 credentials or privilege refused; 78 "
				  "missing or invalid configuration. ");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db),
		cmocka_unit_test(test_db_refused_with_nodb),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_log_level_bad),
		cmocka_unit_test(test_now),
		cmocka_unit_test(test_now_bad),
		cmocka_unit_test(test_now_refused_without_flag),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_missing_value),
		cmocka_unit_test(test_dry_run),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_positional),
		cmocka_unit_test(test_program_options),
		cmocka_unit_test(test_program_option_error),
		cmocka_unit_test(test_reparse),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_choice),
		cmocka_unit_test(test_help_options),
		cmocka_unit_test(test_help_exits),
		cmocka_unit_test(test_no_program_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
