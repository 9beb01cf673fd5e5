/*
 * The opt-out phrases people type ("parar lembretes"), matched ignoring
 * case, accents, extra spaces and surrounding punctuation.
 */
#ifndef ENG_PHRASE_H
#define ENG_PHRASE_H

#include <stdbool.h>
#include <stddef.h>

/* Lowercase ASCII, strip the accents of Latin letters (U+00C0..U+00FF),
 * collapse runs of spaces, trim spaces and . , ! ? ¡ ¿ at both ends. */
void eng_phrase_normalize(const char *in, char *out, size_t outsz);

/* 0: not a known phrase; else *opt_out and *locale (en, pt-BR, es) of
 * the phrase. Every locale's phrases are accepted whatever the user's. */
int eng_phrase_match(const char *text, bool *opt_out, const char **locale);

#endif
