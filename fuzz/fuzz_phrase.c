/*
 * The opt-out phrases people type on WhatsApp (eng_phrase.h). Input: one
 * byte choosing the size of the output buffer (1..256, allocated exactly,
 * so ASan sees a write past it), then the text. Properties: the output
 * fits and is a prefix of the full normalisation; the full normalisation
 * has no ASCII capitals, no run of two spaces, no space or . , ! ? ¡ ¿
 * at either end, and normalising it again changes nothing; a text matches a
 * phrase exactly when its normalisation does, with the same meaning.
 */
#include "fuzz.h"

#include <stdbool.h>

#include "eng_phrase.h"

#define BIG 8192 /* more than the normaliser keeps (4096 bytes) */

static bool trimmed_char(char c)
{
	return c == ' ' || c == '.' || c == ',' || c == '!' || c == '?';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t outsz = 1 + data[0];
	char *s = fuzz_cstr(data + 1, size - 1);
	char *small = malloc(outsz);
	char *full = malloc(BIG), *again = malloc(BIG);
	CHECK(small && full && again);

	eng_phrase_normalize(s, small, outsz);
	eng_phrase_normalize(s, full, BIG);
	size_t n = strlen(full);
	CHECK(n < 4096 + 1);
	CHECK(strlen(small) < outsz);
	CHECK(strncmp(small, full, strlen(small)) == 0);
	CHECK(strlen(small) == (n < outsz ? n : outsz - 1));

	for (size_t i = 0; i < n; i++) {
		CHECK(!(full[i] >= 'A' && full[i] <= 'Z'));
		CHECK(!(full[i] == ' ' && full[i + 1] == ' '));
	}
	if (n) {
		CHECK(!trimmed_char(full[0]) && !trimmed_char(full[n - 1]));
	}
	if (n >= 2) { /* nor ¡ or ¿ (C2 A1, C2 BF) */
		const unsigned char *u = (const unsigned char *)full;
		CHECK(!(u[0] == 0xC2 && (u[1] == 0xA1 || u[1] == 0xBF)));
		CHECK(!(u[n - 2] == 0xC2 && (u[n - 1] == 0xA1 || u[n - 1] == 0xBF)));
	}
	eng_phrase_normalize(full, again, BIG);
	CHECK(strcmp(full, again) == 0);

	bool out1 = false, out2 = false;
	const char *loc1 = NULL, *loc2 = NULL;
	int m1 = eng_phrase_match(s, &out1, &loc1);
	int m2 = eng_phrase_match(full, &out2, &loc2);
	CHECK(m1 == m2);
	if (m1) {
		CHECK(out1 == out2 && loc1 && loc2 && strcmp(loc1, loc2) == 0);
		CHECK(strcmp(loc1, "en") == 0 || strcmp(loc1, "pt-BR") == 0 ||
		      strcmp(loc1, "es") == 0);
	}
	free(again);
	free(full);
	free(small);
	free(s);
	return 0;
}
