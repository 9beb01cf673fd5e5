/*
 * Phone numbers: eng_is_e164 (the validator of --phone, batch lines and
 * webhook senders) against an independent reading of the contract,
 * ^\+[1-9][0-9]{7,14}$; and the masking that keeps them out of logs:
 * eng_mask_phone (into an output of any size) keeps '+', the country code
 * and the last two digits of a valid number and stars the rest;
 * eng_mask_scrub never changes a text's length and only ever turns digits
 * into '*', and leaves no valid number in it.
 */
#include "fuzz.h"

#include <stdbool.h>

#include "eng_buf.h"
#include "eng_mask.h"
#include "eng_parse.h"

static bool reference_e164(const char *s)
{
	size_t n = strlen(s);
	if (n < 9 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (size_t i = 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t outsz = 1 + data[0] % 40; /* the mask's output buffer, exactly */
	char *s = fuzz_cstr(data + 1, size - 1);
	size_t n = strlen(s);

	bool valid = eng_is_e164(s);
	CHECK(valid == reference_e164(s));

	char *out = malloc(outsz);
	CHECK(out != NULL);
	eng_mask_phone(s, out, outsz);
	CHECK(strlen(out) < outsz);
	if (valid && outsz > n) {
		size_t cc = eng_country_code_len(s + 1, n - 1);
		CHECK(cc >= 1 && cc <= 3);
		CHECK(strlen(out) == n);
		CHECK(memcmp(out, s, 1 + cc) == 0);
		CHECK(memcmp(out + n - 2, s + n - 2, 2) == 0);
		for (size_t i = 1 + cc; i < n - 2; i++)
			CHECK(out[i] == '*');
	}
	free(out);

	struct eng_buf b = ENG_BUF_INIT(1 << 20);
	eng_mask_scrub(&b, s, n);
	CHECK(b.len == n);
	const char *m = eng_buf_str(&b);
	for (size_t i = 0; i < n; i++)
		CHECK(m[i] == s[i] || (m[i] == '*' && s[i] >= '0' && s[i] <= '9'));
	/* no whole number survives: a '+' and 8..15 digits, standing alone */
	for (size_t i = 0; i < n; i++) {
		if (m[i] != '+')
			continue;
		size_t j = i + 1;
		while (j < n && m[j] >= '0' && m[j] <= '9')
			j++;
		bool alone = j == n || !(m[j] == '_' || m[j] == '-' ||
					 (m[j] >= '0' && m[j] <= '9') ||
					 ((m[j] | 0x20) >= 'a' && (m[j] | 0x20) <= 'z'));
		CHECK(!(alone && j - i - 1 >= 8 && j - i - 1 <= 15));
	}
	eng_buf_release(&b);
	free(s);
	return 0;
}
