/* Hashes and signatures, through OpenSSL's libcrypto. */
#ifndef ENG_CRYPTO_H
#define ENG_CRYPTO_H

#include <stddef.h>

/* Lowercase hex SHA-256 of data. */
void eng_sha256_hex(const void *data, size_t n, char out[65]);

/* SHA-256 of text with line endings normalised (CRLF and lone CR become
 * LF), so a file checked out on Windows keeps its checksum. */
void eng_sha256_text_hex(const char *text, char out[65]);

/* Lowercase hex HMAC-SHA256(key, data). */
void eng_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
			 size_t n, char out[65]);

#endif
