/*
 * The log line escaper, round trip (eng_log.c, eng_json_escape). One
 * string field is logged from any bytes, in either format, captured from a
 * temporary file as tests/unit/test_log.c does, and read back:
 *
 * - the output is exactly one line, valid UTF-8, without control bytes;
 * - JSON: the line parses with jansson and the field's value is the input
 *   after what the contract does to it, computed here independently: phone
 *   numbers masked (eng_mask_scrub, itself held to keeping the length and
 *   starring digits only), each byte that does not start a valid UTF-8
 *   sequence replaced by U+FFFD (so valid UTF-8 comes back unchanged, and
 *   invalid UTF-8 comes back with one U+FFFD per bad byte), and a value of
 *   over 1500 bytes cut on a character boundary with "..." appended;
 * - text: the value, unquoted when it is plain, else quoted with \" \\ \n
 *   \r \t \xHH escapes, decodes to the input after the same masking and
 *   replacement (cut at 1500 bytes, "..." appended); the message ("error"),
 *   which is written bare, is the same with only the control characters
 *   escaped;
 * - a phone field is masked as eng_mask_phone says, in both formats.
 *
 * Input: one byte of flags (1: text, 2: the field is "error", 4: add the
 * input as a phone field too), then the value (to its first NUL).
 */
#include "fuzz.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_log.h"
#include "eng_mask.h"

/* eng_log.c's MAX_VALUE_BYTES: a value is cut after this many bytes */
#define CUT 1500
#define RUN_ID "0b0e7f6a-0f1f-4a57-9f53-6e3c4f1c2d3e"

static FILE *g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_file = tmpfile();
	CHECK(g_file != NULL);
	eng_log_init("fuzz_log", RUN_ID, fileno(g_file));
	eng_log_set_level(ENG_DEBUG);
	return 0;
}

/* Everything logged since the last call (a new string, *n bytes). */
static char *take_output(size_t *n)
{
	int fd = fileno(g_file);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	CHECK(buf != NULL);
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		CHECK(r > 0);
		got += (size_t)r;
	}
	buf[size] = '\0';
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	*n = size;
	return buf;
}

static bool cont(unsigned char c)
{
	return c >= 0x80 && c <= 0xBF;
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7), or 0. */
static size_t ref_utf8(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c <= 0x7F)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && cont(s[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
		return n >= 3 && s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
		return n >= 4 && s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
	}
	return 0;
}

static bool ref_valid(const char *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = ref_utf8((const unsigned char *)s + i, n - i)) == 0)
			return false;
	return true;
}

/* s[0..n) masked as a log value is, checked to change digits only. */
static void masked(struct eng_buf *out, const char *s, size_t n)
{
	eng_mask_scrub(out, s, n);
	CHECK(out->len == n);
	for (size_t i = 0; i < n; i++)
		CHECK(out->data[i] == s[i] ||
		      (out->data[i] == '*' && s[i] >= '0' && s[i] <= '9'));
}

/* m with every byte that starts no valid sequence replaced by U+FFFD; with
 * cut, at most cut input bytes, whole characters, then "...". */
static void replaced(struct eng_buf *out, const char *m, size_t len, size_t cut)
{
	const unsigned char *p = (const unsigned char *)m;
	for (size_t i = 0; i < len;) {
		if (cut && i >= cut) {
			eng_buf_adds(out, "...");
			break;
		}
		size_t k = ref_utf8(p + i, len - i);
		if (cut && k && i + k > cut) {
			eng_buf_adds(out, "...");
			break;
		}
		if (k) {
			eng_buf_add(out, m + i, k);
			i += k;
		} else {
			eng_buf_adds(out, "\xEF\xBF\xBD");
			i++;
		}
	}
}

/* The value a JSON log line must carry for s. */
static void expect_json(struct eng_buf *want, const char *s)
{
	size_t n = strlen(s);
	struct eng_buf m = ENG_BUF_INIT(1 << 20);
	masked(&m, s, n > 2 * CUT ? 2 * CUT : n);
	replaced(want, m.data ? m.data : "", m.len, CUT);
	eng_buf_release(&m);
}

/* The text a text log line must decode to for s. */
static void expect_text(struct eng_buf *want, const char *s)
{
	size_t n = strlen(s);
	struct eng_buf m = ENG_BUF_INIT(1 << 20);
	masked(&m, s, n > CUT ? CUT : n);
	if (n > CUT)
		eng_buf_adds(&m, "...");
	replaced(want, m.data ? m.data : "", m.len, 0);
	eng_buf_release(&m);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode a text value v[0..n) (quoted or not) into out; false when it is
 * not well formed. */
static bool decode_text(const char *v, size_t n, struct eng_buf *out)
{
	if (n == 0 || v[0] != '"') { /* plain: nothing that needs quoting */
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
				return false;
		}
		eng_buf_add(out, v, n);
		return n > 0;
	}
	if (n < 2 || v[n - 1] != '"')
		return false;
	for (size_t i = 1; i < n - 1; i++) {
		char c = v[i];
		if (c == '"')
			return false;
		if (c != '\\') {
			eng_buf_addc(out, c);
			continue;
		}
		if (++i >= n - 1)
			return false;
		switch (v[i]) {
		case '"': eng_buf_addc(out, '"'); break;
		case '\\': eng_buf_addc(out, '\\'); break;
		case 'n': eng_buf_addc(out, '\n'); break;
		case 'r': eng_buf_addc(out, '\r'); break;
		case 't': eng_buf_addc(out, '\t'); break;
		case 'x':
			if (i + 2 >= n - 1 || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0)
				return false;
			eng_buf_addc(out, (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2])));
			i += 2;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* What the bare message is written as: the text with its control
 * characters escaped, nothing quoted. */
static void bare(struct eng_buf *out, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '\n')
			eng_buf_adds(out, "\\n");
		else if (c == '\r')
			eng_buf_adds(out, "\\r");
		else if (c == '\t')
			eng_buf_adds(out, "\\t");
		else if (c < 0x20 || c == 0x7f)
			eng_buf_addf(out, "\\x%02x", c);
		else
			eng_buf_addc(out, (char)c);
	}
}

static bool same(const struct eng_buf *b, const char *s, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

static void check_json(const char *line, size_t n, const char *key, const char *s,
		       const char *phone)
{
	json_error_t je;
	json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		fprintf(stderr, "not JSON (%s): %s", je.text, line);
	CHECK(json_is_object(o));
	CHECK(json_object_size(o) == (phone ? 7u : 6u));
	CHECK(strcmp(json_string_value(json_object_get(o, "event")), "fuzz_value") == 0);
	CHECK(strcmp(json_string_value(json_object_get(o, "run_id")), RUN_ID) == 0);
	const json_t *v = json_object_get(o, key);
	CHECK(json_is_string(v));
	struct eng_buf want = ENG_BUF_INIT(1 << 20);
	expect_json(&want, s);
	CHECK(same(&want, json_string_value(v), json_string_length(v)));
	eng_buf_release(&want);
	if (phone)
		CHECK(strcmp(json_string_value(json_object_get(o, "phone")), phone) == 0);
	json_decref(o);
}

static void check_text(const char *line, size_t n, bool message, const char *s,
		       const char *phone)
{
	/* "YYYY-MM-DD HH:MM:SS INFO  fuzz_value" */
	static const char head[] = " INFO  fuzz_value";
	CHECK(n > 19 + sizeof(head));
	CHECK(memcmp(line + 19, head, sizeof(head) - 1) == 0);
	const char *p = line + 19 + sizeof(head) - 1;
	const char *end = line + n - 1; /* the '\n' */
	struct eng_buf want = ENG_BUF_INIT(1 << 20), got = ENG_BUF_INIT(1 << 20);
	expect_text(&want, s);
	if (message) {
		/* ": MESSAGE[ phone=P]" */
		CHECK(p[0] == ':' && p[1] == ' ');
		p += 2;
		if (phone) {
			size_t k = strlen(" phone=") + strlen(phone);
			CHECK((size_t)(end - p) >= k);
			CHECK(memcmp(end - k, " phone=", 7) == 0);
			CHECK(memcmp(end - k + 7, phone, strlen(phone)) == 0);
			end -= k;
		}
		bare(&got, want.data ? want.data : "", want.len);
		CHECK(same(&got, p, (size_t)(end - p)));
	} else {
		/* "[ phone=P] value=V" */
		if (phone) {
			CHECK(strncmp(p, " phone=", 7) == 0);
			p += 7;
			CHECK(strncmp(p, phone, strlen(phone)) == 0);
			p += strlen(phone);
		}
		CHECK(strncmp(p, " value=", 7) == 0);
		p += 7;
		CHECK(decode_text(p, (size_t)(end - p), &got));
		CHECK(same(&want, got.data, got.len));
	}
	eng_buf_release(&got);
	eng_buf_release(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool text = data[0] & 1, message = data[0] & 2, with_phone = data[0] & 4;
	char *s = fuzz_cstr(data + 1, size - 1);
	const char *key = message ? "error" : "value";
	char phone[48];
	eng_mask_phone(s, phone, sizeof(phone));

	eng_log_set_format(text ? ENG_LOG_TEXT : ENG_LOG_JSON, false);
	if (with_phone)
		eng_log(ENG_INFO, "fuzz_value", ENG_PHONE("phone", s), ENG_S(key, s));
	else
		eng_log(ENG_INFO, "fuzz_value", ENG_S(key, s));

	size_t n;
	char *line = take_output(&n);
	CHECK(n > 0 && line[n - 1] == '\n');
	CHECK(memchr(line, '\0', n) == NULL);
	for (size_t i = 0; i + 1 < n; i++)
		CHECK((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
	CHECK(ref_valid(line, n));
	if (text)
		check_text(line, n, message, s, with_phone ? phone : NULL);
	else
		check_json(line, n, key, s, with_phone ? phone : NULL);
	free(line);
	free(s);
	return 0;
}
