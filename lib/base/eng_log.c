#include "eng_log.h"

#include <errno.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_mask.h"

/* A log value longer than this is cut: a line stays well under a pipe's
 * atomic-write size in the common case. */
#define MAX_VALUE_BYTES 1500
#define MAX_LINE_BYTES (64 * 1024)

static struct {
	char program[64];
	char run_id[40];
	int fd;
	enum eng_level level;
	enum eng_log_format format;
	bool colour;
} g_log = {"engagement", "", 2, ENG_INFO, ENG_LOG_JSON, false};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void eng_log_init(const char *program, const char *run_id, int fd)
{
	snprintf(g_log.program, sizeof(g_log.program), "%s", program);
	snprintf(g_log.run_id, sizeof(g_log.run_id), "%s", run_id);
	g_log.fd = fd;
}

void eng_log_set_format(enum eng_log_format f, bool colour)
{
	g_log.format = f;
	g_log.colour = f == ENG_LOG_TEXT && colour;
}

enum eng_log_format eng_log_get_format(void)
{
	return g_log.format;
}

int eng_log_choose_format(const char *name, int fd, bool *colour)
{
	bool tty = isatty(fd) == 1;
	const char *term = getenv("TERM");
	const char *no_colour = getenv("NO_COLOR");
	*colour = tty && !(no_colour && *no_colour) && !(term && strcmp(term, "dumb") == 0);
	if (!name || strcmp(name, "auto") == 0)
		return tty ? ENG_LOG_TEXT : ENG_LOG_JSON;
	if (strcmp(name, "json") == 0)
		return ENG_LOG_JSON;
	if (strcmp(name, "text") == 0)
		return ENG_LOG_TEXT;
	return -1;
}

void eng_log_set_level(enum eng_level lvl)
{
	g_log.level = lvl;
}

enum eng_level eng_log_get_level(void)
{
	return g_log.level;
}

bool eng_log_enabled(enum eng_level lvl)
{
	return lvl >= g_log.level;
}

int eng_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *eng_log_level_name(enum eng_level lvl)
{
	return (unsigned)lvl < 4 ? level_names[lvl] : "error";
}

void eng_log_timestamp(char out[32])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void add_key(struct eng_buf *b, const char *k)
{
	eng_buf_addc(b, ',');
	eng_json_escape(b, k, strlen(k), 0);
	eng_buf_addc(b, ':');
}

static void add_text(struct eng_buf *b, const char *s)
{
	struct eng_buf m = ENG_BUF_INIT(MAX_LINE_BYTES);
	size_t n = strlen(s);
	eng_mask_scrub(&m, s, n > MAX_VALUE_BYTES * 2 ? MAX_VALUE_BYTES * 2 : n);
	eng_json_escape(b, eng_buf_str(&m), m.len, MAX_VALUE_BYTES);
	eng_buf_release(&m);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report to */
		}
		p += w;
		n -= (size_t)w;
	}
}

/* A text value: masked, cut like a JSON one, its control characters
 * escaped so that it stays on its line; quoted (logfmt) when it holds
 * anything but plain printable characters, unless bare (the message, which
 * reads better as it is). */
static void add_text_value(struct eng_buf *b, const char *s, bool bare)
{
	struct eng_buf m = ENG_BUF_INIT(MAX_LINE_BYTES);
	size_t n = strlen(s);
	eng_mask_scrub(&m, s, n > MAX_VALUE_BYTES ? MAX_VALUE_BYTES : n);
	if (n > MAX_VALUE_BYTES)
		eng_buf_adds(&m, "...");
	const unsigned char *p = (const unsigned char *)eng_buf_str(&m);
	size_t len = m.len;
	bool quote = !bare && len == 0;
	for (size_t i = 0; i < len && !quote && !bare; i++)
		quote = p[i] <= ' ' || p[i] == '"' || p[i] == '=' || p[i] == '\\' || p[i] == 0x7f;
	if (quote)
		eng_buf_addc(b, '"');
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t k = eng_utf8_seq(p + i, len - i);
		if (k > 1) {
			eng_buf_add(b, p + i, k);
			i += k;
			continue;
		}
		i++;
		if (!k)
			eng_buf_adds(b, "\xEF\xBF\xBD");
		else if ((c == '"' || c == '\\') && quote)
			eng_buf_addf(b, "\\%c", c);
		else if (c == '\n')
			eng_buf_adds(b, "\\n");
		else if (c == '\r')
			eng_buf_adds(b, "\\r");
		else if (c == '\t')
			eng_buf_adds(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			eng_buf_addf(b, "\\x%02x", c);
		else
			eng_buf_addc(b, (char)c);
	}
	if (quote)
		eng_buf_addc(b, '"');
	eng_buf_release(&m);
}

/* A field's value: as JSON (json), or as the text format shows it. Every
 * string is scrubbed of phone numbers; a phone field is masked. */
static void add_value(struct eng_buf *b, const struct eng_field *x, bool json)
{
	char masked[48];
	const char *s = x->s;
	if (x->type == ENG_FT_PHONE && s) {
		eng_mask_phone(s, masked, sizeof(masked));
		s = masked;
	}
	switch (x->type) {
	case ENG_FT_PHONE:
	case ENG_FT_STR:
	case ENG_FT_JSON:
		if (!s)
			eng_buf_adds(b, "null");
		else if (!json)
			add_text_value(b, s, false);
		else if (x->type == ENG_FT_JSON)
			eng_buf_adds(b, s);
		else if (x->type == ENG_FT_PHONE)
			eng_json_escape(b, s, strlen(s), 0);
		else
			add_text(b, s);
		break;
	case ENG_FT_INT:
		eng_buf_addf(b, "%lld", x->i);
		break;
	case ENG_FT_DBL:
		if (json && !isfinite(x->d))
			eng_buf_adds(b, "null");
		else
			eng_buf_addf(b, "%.6g", x->d);
		break;
	case ENG_FT_BOOL:
		eng_buf_adds(b, x->b ? "true" : "false");
		break;
	case ENG_FT_NONE:
		break;
	}
}

/* A JSON line's first fields, every line alike. */
static void add_head(struct eng_buf *b, const char *ts, enum eng_level lvl,
		     const char *event)
{
	eng_buf_addf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"program\":",
		     ts, eng_log_level_name(lvl));
	eng_json_escape(b, g_log.program, strlen(g_log.program), 0);
	eng_buf_adds(b, ",\"run_id\":");
	eng_json_escape(b, g_log.run_id, strlen(g_log.run_id), 0);
	eng_buf_adds(b, ",\"event\":");
	eng_json_escape(b, event, strlen(event), 0);
}

static void render_json(struct eng_buf *b, const char *ts, enum eng_level lvl,
			const char *event, const struct eng_field *f, size_t n)
{
	add_head(b, ts, lvl, event);

	for (size_t i = 0; i < n; i++) {
		const struct eng_field *x = &f[i];
		if (x->type == ENG_FT_NONE || !x->key)
			continue;
		add_key(b, x->key);
		add_value(b, x, true);
	}
	if (b->overflow || eng_buf_adds(b, "}\n")) {
		/* A pathological line: say so rather than cut the JSON. */
		eng_buf_reset(b);
		add_head(b, ts, lvl, event);
		eng_buf_adds(b, ",\"truncated\":true}\n");
	}
}

/* ---- text ------------------------------------------------------------------- */

static const char *const level_colours[] = {"\033[2m", "\033[32m", "\033[33m",
					    "\033[1;31m"};

/* The field shown as the event's message. */
static bool is_message(const struct eng_field *x)
{
	return x->type == ENG_FT_STR && x->s &&
	       (strcmp(x->key, "error") == 0 || strcmp(x->key, "message") == 0);
}

static void render_text(struct eng_buf *b, enum eng_level lvl, const char *event,
			const struct eng_field *f, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char when[32], level[8];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(level, sizeof(level), "%-5s", eng_log_level_name(lvl));
	for (char *c = level; *c; c++)
		*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
	eng_buf_addf(b, "%s ", when);
	if (g_log.colour)
		eng_buf_addf(b, "%s%s\033[0m ", level_colours[lvl], level);
	else
		eng_buf_addf(b, "%s ", level);
	add_text_value(b, event, false);
	const struct eng_field *msg = NULL;
	for (size_t i = 0; i < n && !msg; i++)
		if (f[i].key && is_message(&f[i]))
			msg = &f[i];
	if (msg) {
		eng_buf_adds(b, ": ");
		add_text_value(b, msg->s, true);
	}
	for (size_t i = 0; i < n; i++) {
		const struct eng_field *x = &f[i];
		if (x->type == ENG_FT_NONE || !x->key || x == msg)
			continue;
		eng_buf_addc(b, ' ');
		add_text_value(b, x->key, false);
		eng_buf_addc(b, '=');
		add_value(b, x, false);
	}
	if (b->overflow || eng_buf_addc(b, '\n')) {
		eng_buf_reset(b);
		eng_buf_addf(b, "%s %s ", when, level);
		add_text_value(b, event, false);
		eng_buf_adds(b, " (line too long, cut)\n");
	}
}

void eng_log_fields(enum eng_level lvl, const char *event,
		    const struct eng_field *f, size_t n)
{
	if (!eng_log_enabled(lvl))
		return;
	struct eng_buf b = ENG_BUF_INIT(MAX_LINE_BYTES);
	if (g_log.format == ENG_LOG_TEXT) {
		render_text(&b, lvl, event, f, n);
	} else {
		char ts[32];
		eng_log_timestamp(ts);
		render_json(&b, ts, lvl, event, f, n);
	}
	write_all(g_log.fd, b.data, b.len);
	eng_buf_release(&b);
}

void eng_log_plain(const char *line)
{
	struct eng_buf b = ENG_BUF_INIT(MAX_LINE_BYTES);
	eng_buf_adds(&b, line);
	eng_buf_addc(&b, '\n');
	write_all(g_log.fd, b.data, b.len);
	eng_buf_release(&b);
}
