#include "eng_mask.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ITU-T E.164 assignments: 1 and 7 are one digit; these are two digits;
 * everything else is three. */
static const char *const two_digit_cc[] = {
	"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41",
	"43", "44", "45", "46", "47", "48", "49", "51", "52", "53", "54",
	"55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66",
	"81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
};

size_t eng_country_code_len(const char *d, size_t n)
{
	if (n < 1)
		return 0;
	if (d[0] == '1' || d[0] == '7')
		return 1;
	if (n < 2)
		return n;
	for (size_t i = 0; i < sizeof(two_digit_cc) / sizeof(*two_digit_cc); i++)
		if (d[0] == two_digit_cc[i][0] && d[1] == two_digit_cc[i][1])
			return 2;
	return n < 3 ? n : 3;
}

static void mask_digits(struct eng_buf *b, const char *d, size_t n)
{
	size_t cc = eng_country_code_len(d, n);
	if (n < cc + 4) { /* too short to show anything safely */
		for (size_t i = 0; i < n; i++)
			eng_buf_addc(b, '*');
		return;
	}
	eng_buf_add(b, d, cc);
	for (size_t i = cc; i < n - 2; i++)
		eng_buf_addc(b, '*');
	eng_buf_add(b, d + n - 2, 2);
}

void eng_mask_phone(const char *in, char *out, size_t outsz)
{
	struct eng_buf b = ENG_BUF_INIT(64);
	const char *d = in;
	size_t n;

	if (outsz == 0)
		return;
	if (*d == '+') {
		eng_buf_addc(&b, '+');
		d++;
	}
	n = strlen(d);
	bool digits = n >= 1 && n <= 20;
	for (size_t i = 0; digits && i < n; i++)
		if (!isdigit((unsigned char)d[i]))
			digits = false;
	if (digits)
		mask_digits(&b, d, n);
	else
		eng_buf_adds(&b, "***");
	snprintf(out, outsz, "%s", eng_buf_str(&b));
	eng_buf_release(&b);
}

static bool is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

void eng_mask_scrub(struct eng_buf *b, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		bool plus = c == '+';
		size_t start = plus ? i + 1 : i;
		if (plus || (isdigit(c) && (i == 0 || (!is_word((unsigned char)s[i - 1]) &&
						      s[i - 1] != '-' && s[i - 1] != '.')))) {
			size_t j = start;
			while (j < n && isdigit((unsigned char)s[j]))
				j++;
			size_t run = j - start;
			bool bounded = j == n || (!is_word((unsigned char)s[j]) &&
						  s[j] != '-');
			if (bounded && ((plus && run >= 8 && run <= 15) ||
					(!plus && run >= 10 && run <= 15))) {
				if (plus)
					eng_buf_addc(b, '+');
				mask_digits(b, s + start, run);
				i = j;
				continue;
			}
			if (!plus) { /* copy the whole digit run untouched */
				eng_buf_add(b, s + i, j - i);
				i = j;
				continue;
			}
		}
		eng_buf_addc(b, (char)c);
		i++;
	}
}
