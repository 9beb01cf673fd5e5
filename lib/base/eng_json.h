/*
 * JSON helpers. Log lines are built by hand with the escaper below (one
 * write(2) per line); everything structured (summaries, batch input, API
 * answers) goes through jansson.
 */
#ifndef ENG_JSON_H
#define ENG_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "eng_buf.h"

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the
 * bytes there are not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated). n is the number of bytes available. */
size_t eng_utf8_seq(const unsigned char *s, size_t n);
bool eng_utf8_valid(const char *s, size_t n);

/* Append s (n bytes) as a quoted JSON string: ", \ and control bytes are
 * escaped, invalid UTF-8 bytes become U+FFFD. At most max_in input bytes are
 * taken (cut on a character boundary, "..." appended); 0 means all. */
int eng_json_escape(struct eng_buf *b, const char *s, size_t n, size_t max_in);

/* A jansson string from any bytes, exactly as given but for invalid UTF-8
 * (replaced by U+FFFD): for what is sent or stored. NULL gives JSON null.
 * Never fails (aborts on out-of-memory). */
json_t *eng_json_str(const char *s);

/* The same with phone numbers masked and at most 1 MiB kept: for text shown
 * to people (summaries), like a log value. Never for what is sent or
 * stored: masking is for logs only. */
json_t *eng_json_masked(const char *s);

/* Serialise compactly; caller frees. */
char *eng_json_dump(const json_t *v);

#endif
