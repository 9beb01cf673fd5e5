/*
 * Bounded dynamic buffers (after curl's curlx_dyn): anything that grows
 * from input we do not control has a ceiling, and hitting it is an error
 * rather than unbounded memory. The contents are always NUL-terminated.
 */
#ifndef ENG_BUF_H
#define ENG_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct eng_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;    /* the most len may reach */
	bool overflow; /* an append was refused because of max */
};

#define ENG_BUF_INIT(maxlen) {NULL, 0, 0, (maxlen), false}

void eng_buf_init(struct eng_buf *b, size_t max);
/* Free the contents; the struct can be reused after eng_buf_init. */
void eng_buf_release(struct eng_buf *b);
/* Empty the buffer, keeping its memory. */
void eng_buf_reset(struct eng_buf *b);

/* Appends return 0, or -1 when max would be passed (nothing appended). */
int eng_buf_add(struct eng_buf *b, const void *p, size_t n);
int eng_buf_adds(struct eng_buf *b, const char *s);
int eng_buf_addc(struct eng_buf *b, char c);
int eng_buf_addf(struct eng_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append everything f holds, up to the buffer's max. 0 at the end of
 * the file; EFBIG when the file is larger (what fitted is kept); an errno
 * value when reading failed. */
int eng_buf_read(struct eng_buf *b, FILE *f);

/* Always a valid C string ("" when empty). */
const char *eng_buf_str(const struct eng_buf *b);
/* Hand the heap string to the caller (free() it); the buffer is emptied. */
char *eng_buf_detach(struct eng_buf *b);

/* Allocation that cannot fail: on out-of-memory, log and abort. */
void *eng_xmalloc(size_t n);
void *eng_xcalloc(size_t nmemb, size_t n);
void *eng_xrealloc(void *p, size_t n);
char *eng_xstrdup(const char *s);

/* Room for one more element in array v of *cap elements (each size bytes)
 * that holds n: doubled (from 16) when full. Returns v, possibly moved.
 * ENG_GROW(v, n, cap) does it in place. */
void *eng_xgrow(void *v, size_t n, size_t *cap, size_t size);
#define ENG_GROW(v, n, cap) ((v) = eng_xgrow((v), (n), &(cap), sizeof(*(v))))
char *eng_xstrndup(const char *s, size_t n);

/* FNV-1a of a string, for the open-addressing tables keyed on ids (every
 * byte counts: ids need not be random). */
size_t eng_hash_str(const char *s);

#endif
