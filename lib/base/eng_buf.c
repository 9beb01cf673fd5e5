#include "eng_buf.h"

#include <errno.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void)
{
	static const char msg[] =
		"{\"level\":\"error\",\"event\":\"out_of_memory\"}\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *eng_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *eng_xcalloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *eng_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

void *eng_xgrow(void *v, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return v;
	size_t want = *cap ? 2 * *cap : 16;
	if (want <= n || want > SIZE_MAX / size)
		want = n + 1;
	v = eng_xrealloc(v, want * size);
	*cap = want;
	return v;
}

char *eng_xstrdup(const char *s)
{
	return eng_xstrndup(s, strlen(s));
}

char *eng_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = eng_xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

size_t eng_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

void eng_buf_init(struct eng_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->overflow = false;
}

void eng_buf_release(struct eng_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->overflow = false;
}

void eng_buf_reset(struct eng_buf *b)
{
	b->len = 0;
	b->overflow = false;
	if (b->data)
		b->data[0] = '\0';
}

static int grow(struct eng_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra) {
		b->overflow = true;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (b->max < SIZE_MAX && cap > b->max + 1)
		cap = b->max + 1;
	b->data = eng_xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int eng_buf_add(struct eng_buf *b, const void *p, size_t n)
{
	if (grow(b, n))
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int eng_buf_adds(struct eng_buf *b, const char *s)
{
	return eng_buf_add(b, s, strlen(s));
}

int eng_buf_addc(struct eng_buf *b, char c)
{
	return eng_buf_add(b, &c, 1);
}

int eng_buf_addf(struct eng_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return eng_buf_add(b, small, (size_t)n);
	if (grow(b, (size_t)n))
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int eng_buf_read(struct eng_buf *b, FILE *f)
{
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (eng_buf_add(b, chunk, n))
			return EFBIG;
	return ferror(f) ? (errno ? errno : EIO) : 0;
}

const char *eng_buf_str(const struct eng_buf *b)
{
	return b->data ? b->data : "";
}

char *eng_buf_detach(struct eng_buf *b)
{
	char *p = b->data ? b->data : eng_xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->overflow = false;
	return p;
}
