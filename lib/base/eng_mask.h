/*
 * Phone number masking for logs: "+5511987654321" -> "+55*********21"
 * (the country calling code and the last two digits kept).
 */
#ifndef ENG_MASK_H
#define ENG_MASK_H

#include <stddef.h>

#include "eng_buf.h"

/* Length (1..3) of the E.164 country calling code that digits start with. */
size_t eng_country_code_len(const char *digits, size_t n);

/* Mask one phone number (with or without '+'). out gets at most outsz-1
 * bytes; anything that is not a plausible number is masked entirely. */
void eng_mask_phone(const char *in, char *out, size_t outsz);

/* Append s to b with every phone-number-looking run masked: '+' followed by
 * 8-15 digits, or a bare run of 10-15 digits standing on its own. */
void eng_mask_scrub(struct eng_buf *b, const char *s, size_t n);

#endif
