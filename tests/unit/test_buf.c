/* eng_buf: bounded dynamic buffers. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static void test_empty(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(16);
	assert_string_equal(eng_buf_str(&b), "");
	assert_int_equal(b.len, 0);
	assert_false(b.overflow);
	eng_buf_release(&b);

	struct eng_buf c;
	eng_buf_init(&c, 16);
	assert_null(c.data);
	assert_int_equal(c.max, 16);
	assert_string_equal(eng_buf_str(&c), "");
	eng_buf_release(&c);
}

static void test_append(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(1024);
	assert_int_equal(eng_buf_adds(&b, "abc"), 0);
	assert_int_equal(eng_buf_addc(&b, '-'), 0);
	assert_int_equal(eng_buf_add(&b, "xyz!!", 3), 0);
	assert_int_equal(eng_buf_addf(&b, "[%d|%s]", 42, "q"), 0);
	assert_int_equal(eng_buf_add(&b, NULL, 0), 0);
	assert_string_equal(eng_buf_str(&b), "abc-xyz[42|q]");
	assert_int_equal(b.len, strlen("abc-xyz[42|q]"));
	assert_false(b.overflow);
	eng_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_binary_and_growth(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(1 << 20);
	char chunk[100];
	for (int i = 0; i < 100; i++)
		chunk[i] = (char)i; /* includes NUL bytes */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(eng_buf_add(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	for (size_t i = 0; i < b.len; i += 997)
		assert_int_equal(b.data[i], (char)(i % 100));
	eng_buf_release(&b);
}

static void test_max_enforced(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(8);
	assert_int_equal(eng_buf_adds(&b, "12345"), 0);
	assert_int_equal(eng_buf_adds(&b, "6789"), -1); /* would make 9 */
	assert_true(b.overflow);
	assert_string_equal(eng_buf_str(&b), "12345"); /* nothing appended */
	assert_int_equal(b.len, 5);
	/* what still fits is still taken */
	assert_int_equal(eng_buf_adds(&b, "678"), 0);
	assert_string_equal(eng_buf_str(&b), "12345678");
	assert_int_equal(eng_buf_addc(&b, '9'), -1);
	assert_int_equal(eng_buf_addf(&b, "%d", 9), -1);
	assert_int_equal(eng_buf_add(&b, "9", 1), -1);
	assert_string_equal(eng_buf_str(&b), "12345678");
	assert_int_equal(b.len, 8);
	assert_true(b.overflow);
	eng_buf_release(&b);
}

static void test_max_huge_append(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(100);
	eng_buf_adds(&b, "x");
	/* an append whose size would wrap len + n must be refused too */
	assert_int_equal(eng_buf_add(&b, "y", SIZE_MAX), -1);
	assert_true(b.overflow);
	assert_string_equal(eng_buf_str(&b), "x");
	eng_buf_release(&b);
}

static void test_max_zero(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(0);
	assert_int_equal(eng_buf_adds(&b, ""), 0);
	assert_int_equal(eng_buf_addc(&b, 'a'), -1);
	assert_string_equal(eng_buf_str(&b), "");
	eng_buf_release(&b);
}

static void test_addf_long(void **state)
{
	(void)state;
	/* "%s|%d" of n bytes and 7 formats to n + 2 bytes: 255 fits the
	 * formatter's 256-byte stack buffer, 256 and up do not */
	static const size_t lens[] = {252, 253, 254, 255, 300, 5000};
	for (size_t k = 0; k < ARRAY_LEN(lens); k++) {
		size_t n = lens[k];
		char *s = malloc(n + 1);
		for (size_t i = 0; i < n; i++)
			s[i] = (char)('a' + i % 26);
		s[n] = '\0';
		struct eng_buf b = ENG_BUF_INIT(1 << 16);
		assert_int_equal(eng_buf_adds(&b, "<"), 0);
		assert_int_equal(eng_buf_addf(&b, "%s|%d", s, 7), 0);
		assert_int_equal(eng_buf_adds(&b, ">"), 0);
		assert_int_equal(b.len, n + 4);
		assert_int_equal(strlen(eng_buf_str(&b)), n + 4);
		assert_memory_equal(b.data + 1, s, n);
		assert_string_equal(b.data + 1 + n, "|7>");
		free(s);
		eng_buf_release(&b);
	}
}

static void test_addf_long_over_max(void **state)
{
	(void)state;
	char s[400];
	memset(s, 'z', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	struct eng_buf b = ENG_BUF_INIT(300);
	eng_buf_adds(&b, "keep");
	assert_int_equal(eng_buf_addf(&b, "%s", s), -1);
	assert_true(b.overflow);
	assert_string_equal(eng_buf_str(&b), "keep");
	eng_buf_release(&b);
}

static void test_reset(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(8);
	eng_buf_adds(&b, "12345678");
	eng_buf_addc(&b, '9');
	assert_true(b.overflow);
	eng_buf_reset(&b);
	assert_false(b.overflow);
	assert_int_equal(b.len, 0);
	assert_string_equal(eng_buf_str(&b), "");
	assert_int_equal(eng_buf_adds(&b, "abcdefgh"), 0); /* room again */
	assert_string_equal(eng_buf_str(&b), "abcdefgh");
	eng_buf_release(&b);
}

static void test_detach(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(64);
	eng_buf_adds(&b, "hello");
	char *s = eng_buf_detach(&b);
	assert_string_equal(s, "hello");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(eng_buf_str(&b), "");
	/* the buffer is usable again and independent of s */
	eng_buf_adds(&b, "world");
	assert_string_equal(s, "hello");
	assert_string_equal(eng_buf_str(&b), "world");
	free(s);
	eng_buf_release(&b);

	/* an empty buffer detaches as a freeable "" */
	struct eng_buf e = ENG_BUF_INIT(64);
	s = eng_buf_detach(&e);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
}

static void test_xalloc(void **state)
{
	(void)state;
	char *s = eng_xstrdup("abc");
	assert_string_equal(s, "abc");
	free(s);
	s = eng_xstrndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);
	s = eng_xstrndup("ab", 10);
	assert_string_equal(s, "ab");
	free(s);
	int *z = eng_xcalloc(10, sizeof(int));
	for (int i = 0; i < 10; i++)
		assert_int_equal(z[i], 0);
	z = eng_xrealloc(z, 20 * sizeof(int));
	assert_int_equal(z[9], 0);
	free(z);
	void *p = eng_xmalloc(0); /* a real pointer, freeable */
	assert_non_null(p);
	free(p);
}

/* max is "the most len may reach"; SIZE_MAX (no practical limit) is a
 * valid ceiling and must not make the buffer smaller than its contents.
 * Kept last: when it fails under AddressSanitizer the process stops. */
static void test_max_size_max(void **state)
{
	(void)state;
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX);
	assert_int_equal(eng_buf_adds(&b, "0123456789"), 0);
	assert_true(b.cap > b.len);
	assert_string_equal(eng_buf_str(&b), "0123456789");
	eng_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_binary_and_growth),
		cmocka_unit_test(test_max_enforced),
		cmocka_unit_test(test_max_huge_append),
		cmocka_unit_test(test_max_zero),
		cmocka_unit_test(test_addf_long),
		cmocka_unit_test(test_addf_long_over_max),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_xalloc),
		cmocka_unit_test(test_max_size_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
