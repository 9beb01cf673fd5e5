#include "eng_phrase.h"

#include <ctype.h>
#include <string.h>

#include "eng_buf.h"

static const struct {
	const char *locale;
	const char *text; /* normalized */
	bool opt_out;
} phrases[] = {
	{"en", "stop reminders", true},
	{"en", "start reminders", false},
	{"pt-BR", "parar lembretes", true},
	{"pt-BR", "ativar lembretes", false},
	{"es", "parar recordatorios", true},
	{"es", "activar recordatorios", false},
};

/* The base letter of a Latin-1 supplement letter (U+00C0..U+00FF), or 0. */
static char fold_latin1(unsigned cp)
{
	static const char map[] =
		"aaaaaaaceeeeiiii" /* C0-CF: À..Ï (Æ as a) */
		"dnooooo ouuuuyts" /* D0-DF: Ð..ß (× kept as space) */
		"aaaaaaaceeeeiiii" /* E0-EF */
		"dnooooo ouuuuyty";/* F0-FF */
	if (cp < 0xC0 || cp > 0xFF)
		return 0;
	return map[cp - 0xC0];
}

static bool trim_char(const char *p, size_t *len)
{
	unsigned char c = (unsigned char)*p;
	if (c == ' ' || c == '.' || c == ',' || c == '!' || c == '?') {
		*len = 1;
		return true;
	}
	/* ¡ (C2 A1) and ¿ (C2 BF) */
	if (c == 0xC2 && ((unsigned char)p[1] == 0xA1 || (unsigned char)p[1] == 0xBF)) {
		*len = 2;
		return true;
	}
	return false;
}

void eng_phrase_normalize(const char *in, char *out, size_t outsz)
{
	struct eng_buf b = ENG_BUF_INIT(4096);
	const unsigned char *p = (const unsigned char *)in;
	bool space = false;
	while (*p) {
		unsigned c = *p;
		if (c == 0xC2 && (p[1] == 0xA1 || p[1] == 0xBF)) { /* ¡ ¿ */
			eng_buf_addc(&b, (char)c);
			eng_buf_addc(&b, (char)p[1]);
			p += 2;
			space = false;
			continue;
		}
		if (c == 0xC2 && p[1] == 0xA0) { /* no-break space */
			p += 2;
			c = ' ';
		} else if (c == 0xC3 && p[1] >= 0x80 && p[1] <= 0xBF) { /* U+00C0..U+00FF */
			char f = fold_latin1(0xC0 + (p[1] - 0x80));
			p += 2;
			if (f && f != ' ') {
				eng_buf_addc(&b, f);
				space = false;
				continue;
			}
			c = ' ';
		} else {
			p++;
		}
		if (isspace(c)) {
			if (!space && b.len > 0)
				eng_buf_addc(&b, ' ');
			space = true;
			continue;
		}
		eng_buf_addc(&b, (char)tolower(c));
		space = false;
	}
	/* trim punctuation and spaces at both ends */
	const char *s = eng_buf_str(&b);
	size_t start = 0, end = b.len, k;
	while (start < end && trim_char(s + start, &k))
		start += k;
	while (end > start) {
		if (s[end - 1] == ' ' || s[end - 1] == '.' || s[end - 1] == ',' ||
		    s[end - 1] == '!' || s[end - 1] == '?')
			end--;
		else if (end - start >= 2 && (unsigned char)s[end - 2] == 0xC2 &&
			 ((unsigned char)s[end - 1] == 0xA1 ||
			  (unsigned char)s[end - 1] == 0xBF))
			end -= 2;
		else
			break;
	}
	size_t n = end - start < outsz ? end - start : outsz - 1;
	memcpy(out, s + start, n);
	out[n] = '\0';
	eng_buf_release(&b);
}

int eng_phrase_match(const char *text, bool *opt_out, const char **locale)
{
	char norm[256];
	eng_phrase_normalize(text, norm, sizeof(norm));
	for (size_t i = 0; i < sizeof(phrases) / sizeof(*phrases); i++)
		if (strcmp(norm, phrases[i].text) == 0) {
			*opt_out = phrases[i].opt_out;
			*locale = phrases[i].locale;
			return 1;
		}
	return 0;
}
