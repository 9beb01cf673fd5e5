#include "eng_crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static void to_hex(const unsigned char *md, unsigned n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
}

void eng_sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
	to_hex(md, len, out);
}

void eng_sha256_text_hex(const char *text, char out[65])
{
	size_t n = strlen(text);
	char *norm = eng_xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\r') {
			norm[k++] = '\n';
			if (i + 1 < n && text[i + 1] == '\n')
				i++;
		} else {
			norm[k++] = text[i];
		}
	}
	eng_sha256_hex(norm, k, out);
	free(norm);
}

unsigned eng_hmac_sha256(const void *key, size_t keylen, const void *data,
			 size_t n, unsigned char out[64])
{
	unsigned len = 0;
	HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len);
	return len;
}

void eng_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
			 size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	to_hex(md, eng_hmac_sha256(key, keylen, data, n, md), out);
}

char *eng_base64(const void *data, size_t n)
{
	char *out = eng_xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	return out;
}

unsigned char *eng_unbase64(const char *text, size_t *n)
{
	size_t len = strlen(text);
	if (len == 0 || len % 4 != 0 || len > INT32_MAX)
		return NULL;
	size_t pad = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
	/* EVP_DecodeBlock skips white space; refuse anything but the alphabet */
	if (strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789+/") != len - pad)
		return NULL;
	unsigned char *out = eng_xmalloc(len / 4 * 3 + 1);
	int got = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
	if (got < 0) {
		free(out);
		return NULL;
	}
	*n = (size_t)got - pad;
	return out;
}
