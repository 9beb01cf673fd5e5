/* eng_crypto: SHA-256 (migration checksums) and HMAC-SHA256 (signatures),
 * checked against published vectors. */
#include "unit.h"

#include <string.h>

#include "eng_crypto.h"

static void test_sha256_vectors(void **state)
{
	(void)state;
	char out[65];
	eng_sha256_hex("abc", 3, out);
	assert_string_equal(
		out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	eng_sha256_hex("", 0, out);
	assert_string_equal(
		out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	eng_sha256_hex(m, strlen(m), out);
	assert_string_equal(
		out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* n is honoured: bytes after it and embedded NULs */
	eng_sha256_hex("abcdef", 3, out);
	assert_string_equal(
		out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	char other[65];
	eng_sha256_hex("a\0b", 3, other);
	eng_sha256_hex("a", 1, out);
	assert_string_not_equal(out, other);
}

static void test_sha256_text_line_endings(void **state)
{
	(void)state;
	/* sha256("a\nb\n") */
	const char *want =
		"911169ddaaf146aff539f58c26c489af3b892dff0fe283c1c264c65ae5aa59a2";
	char out[65];
	eng_sha256_text_hex("a\nb\n", out);
	assert_string_equal(out, want);
	eng_sha256_text_hex("a\r\nb\n", out);
	assert_string_equal(out, want);
	eng_sha256_text_hex("a\rb\n", out);
	assert_string_equal(out, want);
	eng_sha256_text_hex("a\r\nb\r\n", out);
	assert_string_equal(out, want);
	eng_sha256_text_hex("a\rb\r", out);
	assert_string_equal(out, want);
	/* the same as the plain hash when there is nothing to normalise */
	char plain[65];
	eng_sha256_hex("a\nb\n", 4, plain);
	assert_string_equal(plain, want);
}

static void test_sha256_text_keeps_lines(void **state)
{
	(void)state;
	char a[65], b[65];
	/* \r\r\n is two line ends, not one */
	eng_sha256_text_hex("a\r\r\nb", a);
	eng_sha256_hex("a\n\nb", 4, b);
	assert_string_equal(a, b);
	eng_sha256_text_hex("a\n\rb", a); /* LF then a lone CR */
	assert_string_equal(a, b);
	eng_sha256_text_hex("a\nb", a);
	assert_string_not_equal(a, b);
	eng_sha256_text_hex("", a);
	assert_string_equal(
		a, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac_rfc4231(void **state)
{
	(void)state;
	char out[65];
	/* RFC 4231 test case 2 */
	const char *data = "what do ya want for nothing?";
	eng_hmac_sha256_hex("Jefe", 4, data, strlen(data), out);
	assert_string_equal(
		out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	/* RFC 4231 test case 1: key 0x0b x 20, "Hi There" */
	unsigned char key1[20];
	memset(key1, 0x0b, sizeof(key1));
	eng_hmac_sha256_hex(key1, sizeof(key1), "Hi There", 8, out);
	assert_string_equal(
		out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	/* RFC 4231 test case 6: a key longer than the block size */
	unsigned char key6[131];
	memset(key6, 0xaa, sizeof(key6));
	const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	eng_hmac_sha256_hex(key6, sizeof(key6), d6, strlen(d6), out);
	assert_string_equal(
		out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hmac_key_matters(void **state)
{
	(void)state;
	char a[65], b[65];
	eng_hmac_sha256_hex("k1", 2, "body", 4, a);
	eng_hmac_sha256_hex("k2", 2, "body", 4, b);
	assert_string_not_equal(a, b);
	eng_hmac_sha256_hex("k1", 2, "body", 4, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 64);
	for (const char *p = a; *p; p++)
		assert_non_null(strchr("0123456789abcdef", *p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_text_line_endings),
		cmocka_unit_test(test_sha256_text_keeps_lines),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hmac_key_matters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
