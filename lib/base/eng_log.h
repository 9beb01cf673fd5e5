/*
 * JSON log lines on stderr: one object per line, written with one write(2).
 *
 *   eng_log(ENG_INFO, "job_started", ENG_I("batch_size", 1000));
 *   eng_log(ENG_WARN, "user_failed", ENG_S("user_id", id),
 *           ENG_S("error", msg));
 *
 * Every line carries ts, level, program, run_id and event. String values are
 * scrubbed of phone numbers; ENG_PHONE masks a value that is one.
 */
#ifndef ENG_LOG_H
#define ENG_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum eng_level { ENG_DEBUG = 0, ENG_INFO, ENG_WARN, ENG_ERROR };

enum eng_ftype {
	ENG_FT_NONE = 0, /* placeholder; skipped */
	ENG_FT_STR,
	ENG_FT_INT,
	ENG_FT_DBL,
	ENG_FT_BOOL,
	ENG_FT_JSON,  /* s is already valid JSON text */
	ENG_FT_PHONE, /* s is a phone number: masked */
};

struct eng_field {
	const char *key;
	enum eng_ftype type;
	union {
		const char *s;
		long long i;
		double d;
		bool b;
	};
};

#define ENG_S(k, v) {.key = (k), .type = ENG_FT_STR, .s = (v)}
#define ENG_I(k, v) {.key = (k), .type = ENG_FT_INT, .i = (long long)(v)}
#define ENG_D(k, v) {.key = (k), .type = ENG_FT_DBL, .d = (double)(v)}
#define ENG_B(k, v) {.key = (k), .type = ENG_FT_BOOL, .b = (v)}
#define ENG_J(k, v) {.key = (k), .type = ENG_FT_JSON, .s = (v)}
#define ENG_PHONE(k, v) {.key = (k), .type = ENG_FT_PHONE, .s = (v)}

#define eng_log(lvl, event, ...)                                            \
	eng_log_fields((lvl), (event),                                      \
		       (const struct eng_field[]){{0}, __VA_ARGS__},        \
		       sizeof((const struct eng_field[]){{0}, __VA_ARGS__}) / \
			       sizeof(struct eng_field))

/* program and run_id are copied. fd is normally 2. The format starts as
 * JSON lines. */
void eng_log_init(const char *program, const char *run_id, int fd);

/*
 * The format of the lines: JSON (for cron, systemd, pipes and files:
 * always the same bytes), or text for a person at a terminal: local time
 * to the second, level, event and its message (the "error" or "message"
 * field), then key=value fields, quoted and escaped where needed so that
 * no value can break the line; the level coloured when colour is on.
 * Phone numbers are masked in both; each line is one write(2).
 */
enum eng_log_format { ENG_LOG_JSON = 0, ENG_LOG_TEXT };
void eng_log_set_format(enum eng_log_format f, bool colour);
enum eng_log_format eng_log_get_format(void);
/* "auto" (text when fd is a terminal), "json" or "text": the format to
 * use, and whether with colour (a terminal, and neither NO_COLOR set nor
 * TERM=dumb). -1 when the name is unknown. */
int eng_log_choose_format(const char *name, int fd, bool *colour);
void eng_log_set_level(enum eng_level lvl);
enum eng_level eng_log_get_level(void);
bool eng_log_enabled(enum eng_level lvl);
/* Parse "debug|info|warn|error"; -1 when unknown. */
int eng_log_parse_level(const char *s);
const char *eng_log_level_name(enum eng_level lvl);

void eng_log_fields(enum eng_level lvl, const char *event,
		    const struct eng_field *f, size_t n);

/* A line of plain text, as it is (the front end's GNU-style usage lines
 * on a terminal). */
void eng_log_plain(const char *line);

/* Format the current UTC time as RFC 3339 with milliseconds. */
void eng_log_timestamp(char out[32]);

#endif
