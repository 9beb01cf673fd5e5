/*
 * What of a connection string may be a password, and its removal from
 * libpq's messages (eng_db.h: eng_db_secret_words, eng_db_redact).
 */
#include "eng_db.h"

#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static int by_length_desc(const void *a, const void *b)
{
	size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
	return (x < y) - (x > y);
}

static size_t add_word(char **out, size_t n, size_t max, const char *w, size_t len)
{
	if (len < 3 || n >= max)
		return n;
	for (size_t i = 0; i < n; i++)
		if (strlen(out[i]) == len && memcmp(out[i], w, len) == 0)
			return n;
	out[n] = eng_xmalloc(len + 1);
	memcpy(out[n], w, len);
	out[n][len] = '\0';
	return n + 1;
}

size_t eng_db_secret_words(const char *conninfo, char **out, size_t max)
{
	size_t n = 0;
	if (!conninfo)
		return 0;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val)
			n = add_word(out, n, max, o->val, strlen(o->val));
	PQconninfoFree(opts);
	PQfreemem(perr);
	const char *scheme = strstr(conninfo, "://");
	const char *at = strrchr(conninfo, '@');
	if (scheme && at && at > scheme) {
		const char *user = scheme + 3;
		const char *colon = memchr(user, ':', (size_t)(at - user));
		if (colon) {
			const char *p = colon + 1;
			n = add_word(out, n, max, p, (size_t)(at - p));
			while (p < at) {
				size_t k = strcspn(p, "/:@?#&=,");
				if (p + k > at)
					k = (size_t)(at - p);
				n = add_word(out, n, max, p, k);
				p += k + 1;
			}
		}
	}
	qsort(out, n, sizeof(*out), by_length_desc);
	return n;
}

void eng_db_redact(char *msg, size_t cap, char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t wl = strlen(words[i]);
		char *hit;
		while (wl && (hit = strstr(msg, words[i])) != NULL) {
			size_t tail = strlen(hit + wl);
			if (wl >= 3) { /* "***" is never longer than the word */
				memcpy(hit, "***", 3);
				memmove(hit + 3, hit + wl, tail + 1);
			}
		}
	}
	(void)cap;
}
