#include "eng_json.h"

#include <string.h>

#include "eng_mask.h"

#define TEXT_MAX ((size_t)1 << 20)

size_t eng_utf8_seq(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned min;
	unsigned cp;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		min = 0x80;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		min = 0x800;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0; /* continuation byte, C0/C1 overlong lead, or > F4 */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool eng_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t k = eng_utf8_seq(p + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

int eng_json_escape(struct eng_buf *b, const char *s, size_t n, size_t max_in)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	int rc = eng_buf_addc(b, '"');

	while (i < n && rc == 0) {
		if (max_in && i >= max_in) {
			rc = eng_buf_adds(b, "...");
			break;
		}
		unsigned char c = p[i];
		if (c >= 0x80) {
			size_t k = eng_utf8_seq(p + i, n - i);
			if (k && max_in && i + k > max_in) { /* would pass the cut */
				rc = eng_buf_adds(b, "...");
				break;
			}
			if (k) {
				rc = eng_buf_add(b, p + i, k);
				i += k;
			} else {
				rc = eng_buf_adds(b, "\\ufffd");
				i++;
			}
			continue;
		}
		switch (c) {
		case '"': rc = eng_buf_adds(b, "\\\""); break;
		case '\\': rc = eng_buf_adds(b, "\\\\"); break;
		case '\n': rc = eng_buf_adds(b, "\\n"); break;
		case '\r': rc = eng_buf_adds(b, "\\r"); break;
		case '\t': rc = eng_buf_adds(b, "\\t"); break;
		case '\b': rc = eng_buf_adds(b, "\\b"); break;
		case '\f': rc = eng_buf_adds(b, "\\f"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char u[7] = {'\\', 'u', '0', '0', hex[c >> 4],
					     hex[c & 15], 0};
				rc = eng_buf_adds(b, u);
			} else {
				rc = eng_buf_addc(b, (char)c);
			}
		}
		i++;
	}
	if (rc == 0)
		rc = eng_buf_addc(b, '"');
	return rc;
}

/* A jansson string from n bytes, invalid UTF-8 replaced by U+FFFD. */
static json_t *utf8_string(const char *s, size_t n)
{
	struct eng_buf clean = ENG_BUF_INIT(3 * n + 16);
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t k = eng_utf8_seq(p + i, n - i);
		if (k) {
			eng_buf_add(&clean, p + i, k);
			i += k;
		} else {
			eng_buf_adds(&clean, "\xEF\xBF\xBD");
			i++;
		}
	}
	json_t *v = json_stringn(eng_buf_str(&clean), clean.len);
	eng_buf_release(&clean);
	return v ? v : json_string("");
}

json_t *eng_json_str(const char *s)
{
	return s ? utf8_string(s, strlen(s)) : json_null();
}

json_t *eng_json_masked(const char *s)
{
	if (!s)
		return json_null();
	/* Masking keeps lengths, so the scrubbed copy fits a buffer of the
	 * input's size; beyond TEXT_MAX the text is cut, and says so. */
	size_t n = strlen(s);
	bool cut = n > TEXT_MAX;
	if (cut)
		n = TEXT_MAX;
	struct eng_buf masked = ENG_BUF_INIT(TEXT_MAX + 16);
	eng_mask_scrub(&masked, s, n);
	if (cut)
		eng_buf_adds(&masked, "...");
	json_t *v = utf8_string(eng_buf_str(&masked), masked.len);
	eng_buf_release(&masked);
	return v;
}

char *eng_json_dump(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
	if (!s)
		return eng_xstrdup("null");
	return s;
}
