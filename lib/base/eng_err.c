#include "eng_err.h"

#include <stdio.h>
#include <string.h>

volatile sig_atomic_t eng_interrupted = 0;

void eng_err_clear(struct eng_err *e)
{
	e->status = ENG_OK;
	e->sqlstate[0] = '\0';
	e->msg[0] = '\0';
	e->event[0] = '\0';
}

enum eng_status eng_err_event(struct eng_err *e, const char *event)
{
	snprintf(e->event, sizeof(e->event), "%s", event);
	return e->status;
}

/* Keep messages on one line: a newline inside would split a log record. */
static void one_line(char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
			s[i] = ' ';
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '.'))
		s[--n] = '\0';
}

enum eng_status eng_err_vset(struct eng_err *e, enum eng_status st,
			     const char *fmt, va_list ap)
{
	e->status = st;
	e->sqlstate[0] = '\0';
	e->event[0] = '\0';
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	one_line(e->msg);
	return st;
}

enum eng_status eng_err_set(struct eng_err *e, enum eng_status st,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	eng_err_vset(e, st, fmt, ap);
	va_end(ap);
	return st;
}

enum eng_status eng_err_prefix(struct eng_err *e, const char *fmt, ...)
{
	char ctx[256];
	char old[sizeof(e->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	if (old[0])
		snprintf(e->msg, sizeof(e->msg), "%s: %s", ctx, old);
	else
		snprintf(e->msg, sizeof(e->msg), "%s", ctx);
	one_line(e->msg);
	return e->status;
}

const char *eng_status_name(enum eng_status st)
{
	switch (st) {
	case ENG_OK: return "ok";
	case ENG_PARTIAL: return "partial";
	case ENG_ECANTCREAT: return "cannot_create";
	case ENG_EUSAGE: return "usage";
	case ENG_EDATA: return "data";
	case ENG_ENOUSER: return "no_user";
	case ENG_EUNAVAIL: return "unavailable";
	case ENG_EINTERNAL: return "internal";
	case ENG_ETEMP: return "temporary";
	case ENG_EPERM: return "permission";
	case ENG_ECONFIG: return "config";
	}
	return "internal";
}

enum eng_status eng_status_from_sqlstate(const char *s)
{
	if (!s || strlen(s) != 5)
		return ENG_EINTERNAL;

	/* Exact codes first, then whole classes. */
	static const struct {
		const char *code;
		enum eng_status st;
	} exact[] = {
		{"42501", ENG_EPERM},   /* insufficient_privilege */
		{"3D000", ENG_ECONFIG}, /* database does not exist */
		{"3F000", ENG_ECONFIG}, /* schema does not exist */
		{"42P01", ENG_ECONFIG}, /* table does not exist: not migrated */
		{"42703", ENG_ECONFIG}, /* column does not exist: schema behind */
		{"42883", ENG_ECONFIG}, /* function does not exist: schema behind */
		{"55P03", ENG_ETEMP},   /* lock_not_available (lock_timeout) */
		{"55006", ENG_ETEMP},   /* object_in_use */
		{"40001", ENG_ETEMP},   /* serialization_failure */
		{"40P01", ENG_ETEMP},   /* deadlock_detected */
		{"57014", ENG_ETEMP},   /* query_canceled (statement_timeout) */
		{"25006", ENG_EPERM},   /* read_only_sql_transaction: a standby */
	};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (memcmp(s, exact[i].code, 5) == 0)
			return exact[i].st;

	if (memcmp(s, "08", 2) == 0) /* connection exception */
		return ENG_ETEMP;
	if (memcmp(s, "28", 2) == 0) /* invalid authorization */
		return ENG_EPERM;
	if (memcmp(s, "53", 2) == 0) /* insufficient resources */
		return ENG_ETEMP;
	if (memcmp(s, "57", 2) == 0) /* operator intervention: shutdown */
		return ENG_ETEMP;
	if (memcmp(s, "58", 2) == 0) /* system error (I/O) */
		return ENG_ETEMP;
	if (memcmp(s, "22", 2) == 0) /* data exception */
		return ENG_EDATA;
	if (memcmp(s, "23", 2) == 0) /* integrity constraint violation */
		return ENG_EDATA;
	return ENG_EINTERNAL;
}
