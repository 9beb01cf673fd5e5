/*
 * outbox-relay's Standard Webhooks secret file (eng_relay_keys_parse) and
 * signatures (eng_relay_sign, eng_relay_signature). Input: one byte N, N
 * bytes of webhook-id (fewer where the input ends), then the secret file's
 * text up to a NUL byte, then the body. Checked against an independent reading of the contract: one
 * secret per non-blank line, trimmed; "whsec_" + padded base64 gives the
 * key, anything else is the line's bytes; at most 16; an error names the
 * line, never its content. The signature is checked against HMAC-SHA256
 * computed here with OpenSSL, for every key; the keys are released
 * without a leak, after an error too.
 */
#include "fuzz.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "eng_relay.h"

#define TIMESTAMP 1795327200LL

struct ref_key {
	unsigned char *b;
	size_t n;
};

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Padded standard base64 (RFC 4648 §4) into out; -1 when it is not. */
static long unbase64(const char *s, size_t n, unsigned char *out)
{
	if (n == 0 || n % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad || (v[j] = b64val(s[i + j])) < 0) {
				return -1;
			}
		}
		unsigned x = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		out[o++] = (unsigned char)(x >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(x >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)x;
	}
	return (long)o;
}

/* The error message's shape, digits taken out (base64 too). */
static bool known_error(const char *msg)
{
	static const char *const shapes[] = {
		"--secret-file holds more than  secrets",
		"--secret-file line : a whsec_ secret must be followed by the key in base",
		"--secret-file holds no secret",
	};
	char bare[sizeof(((struct eng_err *)0)->msg)];
	size_t k = 0;
	for (const char *p = msg; *p; p++)
		if (!isdigit((unsigned char)*p))
			bare[k++] = *p;
	bare[k] = '\0';
	for (size_t i = 0; i < sizeof(shapes) / sizeof(*shapes); i++)
		if (strcmp(bare, shapes[i]) == 0)
			return true;
	return false;
}

/* The keys text holds by the contract, *n of them: 1 (0 when there are
 * none), -1 when there are too many, -2 for a bad whsec_ line (its number
 * in *bad_line); legacy: the first, as written. */
static int reference(const char *text, struct ref_key *keys, int *count, char **legacy,
		     int *bad_line)
{
	int n = 0, lineno = 0;
	*count = 0;
	*legacy = NULL;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *b = p, *e = p + len;
		p += len + (nl ? 1 : 0);
		lineno++;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e)
			continue;
		if (n == ENG_RELAY_MAX_KEYS)
			return -1;
		size_t m = (size_t)(e - b);
		keys[n].b = malloc(m + 1);
		CHECK(keys[n].b != NULL);
		if (m >= 6 && memcmp(b, "whsec_", 6) == 0) {
			long got = unbase64(b + 6, m - 6, keys[n].b);
			if (got <= 0) {
				free(keys[n].b);
				*bad_line = lineno;
				return -2;
			}
			keys[n].n = (size_t)got;
		} else {
			memcpy(keys[n].b, b, m);
			keys[n].n = m;
		}
		if (!*legacy) {
			*legacy = malloc(m + 1);
			CHECK(*legacy != NULL);
			memcpy(*legacy, b, m);
			(*legacy)[m] = '\0';
		}
		*count = ++n;
	}
	return n > 0;
}

static void check_signature(const char *sig, const struct ref_key *keys, int n,
			    const char *id, const char *body, size_t len)
{
	size_t idn = strlen(id);
	char ts[32];
	int tn = snprintf(ts, sizeof(ts), ".%lld.", TIMESTAMP);
	unsigned char *msg = malloc(idn + (size_t)tn + len + 1);
	CHECK(msg != NULL);
	memcpy(msg, id, idn);
	memcpy(msg + idn, ts, (size_t)tn);
	if (len)
		memcpy(msg + idn + (size_t)tn, body, len);
	const char *p = sig;
	for (int i = 0; i < n; i++) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned ml = 0;
		CHECK(HMAC(EVP_sha256(), keys[i].b, (int)keys[i].n, msg,
			   idn + (size_t)tn + len, mac, &ml) != NULL);
		char b64[4 * EVP_MAX_MD_SIZE / 3 + 8];
		int bn = EVP_EncodeBlock((unsigned char *)b64, mac, (int)ml);
		if (i) {
			CHECK(*p == ' ');
			p++;
		}
		CHECK(strncmp(p, "v1,", 3) == 0);
		p += 3;
		CHECK(strncmp(p, b64, (size_t)bn) == 0);
		p += bn;
	}
	CHECK(*p == '\0');
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t idn = data[0] < size - 1 ? data[0] : size - 1;
	char *id = fuzz_cstr(data + 1, idn);
	const uint8_t *rest = data + 1 + idn;
	size_t restn = size - 1 - idn;
	const uint8_t *nul = memchr(rest, '\0', restn);
	size_t textn = nul ? (size_t)(nul - rest) : restn;
	char *text = fuzz_cstr(rest, textn);
	const char *body = nul ? (const char *)nul + 1 : "";
	size_t len = nul ? restn - textn - 1 : 0;

	struct ref_key keys[ENG_RELAY_MAX_KEYS];
	char *legacy;
	int bad_line = 0, want;
	int ok = reference(text, keys, &want, &legacy, &bad_line);

	struct eng_relay_keys k;
	struct eng_err err = ENG_ERR_INIT;
	enum eng_status st = eng_relay_keys_parse(text, &k, &err);
	if (ok == 1) {
		CHECK(st == ENG_OK);
		CHECK(k.n == (size_t)want);
		for (int i = 0; i < want; i++)
			CHECK(k.len[i] == keys[i].n && memcmp(k.key[i], keys[i].b, keys[i].n) == 0);
		CHECK(k.legacy && strcmp(k.legacy, legacy) == 0);

		char *sig = eng_relay_sign(&k, id, TIMESTAMP, body, len);
		CHECK(sig != NULL);
		check_signature(sig, keys, want, id, body, len);
		free(sig);

		char old[72], hex[65];
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned ml = 0;
		eng_relay_signature(k.legacy, body, len, old);
		HMAC(EVP_sha256(), legacy, (int)strlen(legacy), (const unsigned char *)body, len,
		     mac, &ml);
		for (unsigned i = 0; i < ml; i++)
			snprintf(hex + 2 * i, 3, "%02x", mac[i]);
		CHECK(strncmp(old, "sha256=", 7) == 0 && strcmp(old + 7, hex) == 0);
	} else {
		CHECK(st == ENG_ECONFIG);
		CHECK(known_error(err.msg));
		if (ok == -2) {
			char where[32];
			snprintf(where, sizeof(where), "line %d:", bad_line);
			CHECK(strstr(err.msg, where) != NULL);
		}
	}
	eng_relay_keys_release(&k);
	CHECK(k.n == 0 && k.legacy == NULL);
	for (int i = 0; i < want; i++)
		free(keys[i].b);
	free(legacy);
	free(text);
	free(id);
	return 0;
}
