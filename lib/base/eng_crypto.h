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

/* HMAC-SHA256(key, data) into out; returns its length (32). */
unsigned eng_hmac_sha256(const void *key, size_t keylen, const void *data,
			 size_t n, unsigned char out[64]);

/* Standard base64 (RFC 4648, padded) of data, a new string. */
char *eng_base64(const void *data, size_t n);

/* Decode padded standard base64 (no white space): a new buffer of *n bytes,
 * or NULL when text is not valid base64. */
unsigned char *eng_unbase64(const char *text, size_t *n);

#endif
