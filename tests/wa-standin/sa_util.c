/* Small helpers: ids, time, UTF-8, secrets, files, a string set, naps. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "standin.h"

static uint64_t id_seed;
static atomic_uint_fast64_t id_counter;
static atomic_uint_fast64_t wamid_counter;

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

void sa_ids_init(void)
{
	uint64_t s = 0;
	if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
		    ((uint64_t)getpid() << 32);
	}
	id_seed = splitmix64(s);
}

static uint64_t next_random(void)
{
	return splitmix64(id_seed ^ splitmix64(atomic_fetch_add(&id_counter, 1)));
}

void sa_fbtrace_id(char out[24])
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t a = next_random(), b = next_random();
	out[0] = 'A';
	for (int i = 1; i < 23; i++) {
		uint64_t *r = i < 11 ? &a : &b;
		out[i] = alphabet[*r & 63];
		*r >>= 6;
	}
	out[23] = '\0';
}

static char *base64(const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/*
 * Real wamids are base64 of a small binary record: 1C 18 <len> <wa_id>
 * 15 02 00 11 18 12 <18 hex digits> 00. Ours have the same layout; the
 * 18 hex digits are 32 random bits of this process and a 40-bit counter,
 * so no two are alike.
 */
char *sa_wamid(const char *wa_id)
{
	size_t n = strlen(wa_id);
	if (n > 64)
		n = 64;
	unsigned char raw[3 + 64 + 6 + 18 + 1];
	size_t o = 0;
	raw[o++] = 0x1c;
	raw[o++] = 0x18;
	raw[o++] = (unsigned char)n;
	memcpy(raw + o, wa_id, n);
	o += n;
	static const unsigned char mid[] = {0x15, 0x02, 0x00, 0x11, 0x18, 0x12};
	memcpy(raw + o, mid, sizeof mid);
	o += sizeof mid;
	uint64_t c = atomic_fetch_add(&wamid_counter, 1) & 0xffffffffffu;
	char hex[19];
	snprintf(hex, sizeof hex, "%08X%010llX", (unsigned)(id_seed >> 32),
		 (unsigned long long)c);
	memcpy(raw + o, hex, 18);
	o += 18;
	raw[o++] = 0x00;

	char *b = base64(raw, o);
	if (!b)
		return NULL;
	char *w = malloc(strlen(b) + 7);
	if (w) {
		memcpy(w, "wamid.", 6);
		strcpy(w + 6, b);
	}
	free(b);
	return w;
}

void sa_rfc3339_ms(const struct timespec *ts, char out[32])
{
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03ldZ", ts->tv_nsec / 1000000);
}

long long sa_ms_between(const struct timespec *a, const struct timespec *b)
{
	return ((long long)b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	unsigned cp = c & (0xff >> (len + 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *sa_json_lossy_string(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	/* Invalid UTF-8: replace each bad byte by U+FFFD. */
	char *out = malloc(n * 3 + 1);
	if (!out)
		return json_null();
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(u + i, n - i);
		if (len == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, u + i, len);
			o += len;
			i += len;
		}
	}
	j = json_stringn(out, o);
	free(out);
	return j ? j : json_null();
}

size_t sa_utf8_chars(const char *s, size_t n)
{
	size_t chars = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			chars++;
	return chars;
}

bool sa_secret_equal(const char *a, size_t an, const char *b, size_t bn)
{
	/* Walk all of b (the caller's guess) whatever a holds. */
	volatile unsigned char diff = (unsigned char)(an != bn);
	for (size_t i = 0; i < bn; i++) {
		unsigned char x = an ? (unsigned char)a[i % an] : 0;
		diff |= x ^ (unsigned char)b[i];
	}
	return an != 0 && diff == 0;
}

bool sa_write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return h;
}

static bool strset_grow(struct sa_strset *set)
{
	size_t cap = set->cap ? set->cap * 2 : 64;
	char **slot = calloc(cap, sizeof *slot);
	if (!slot)
		return false;
	for (size_t i = 0; i < set->cap; i++) {
		if (!set->slot[i])
			continue;
		size_t j = fnv1a(set->slot[i]) & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = set->slot[i];
	}
	free(set->slot);
	set->slot = slot;
	set->cap = cap;
	return true;
}

bool sa_strset_add(struct sa_strset *set, const char *s)
{
	if ((set->len + 1) * 2 > set->cap && !strset_grow(set))
		return false; /* out of memory: behave as if seen */
	size_t j = fnv1a(s) & (set->cap - 1);
	while (set->slot[j]) {
		if (strcmp(set->slot[j], s) == 0)
			return false;
		j = (j + 1) & (set->cap - 1);
	}
	set->slot[j] = strdup(s);
	if (!set->slot[j])
		return false;
	set->len++;
	return true;
}

void sa_strset_free(struct sa_strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
	set->slot = NULL;
	set->cap = set->len = 0;
}

bool sa_nap(struct sa_server *srv, unsigned ms)
{
	if (ms == 0)
		return true;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&srv->stop_mu);
	while (!srv->stopping &&
	       pthread_cond_timedwait(&srv->stop_cv, &srv->stop_mu, &until) != ETIMEDOUT)
		;
	bool whole = !srv->stopping;
	pthread_mutex_unlock(&srv->stop_mu);
	return whole;
}

static bool strmap_grow(struct sa_strmap *map)
{
	size_t cap = map->cap ? map->cap * 2 : 64;
	char **key = calloc(cap, sizeof *key);
	char **val = calloc(cap, sizeof *val);
	if (!key || !val) {
		free(key);
		free(val);
		return false;
	}
	for (size_t i = 0; i < map->cap; i++) {
		if (!map->key[i])
			continue;
		size_t j = fnv1a(map->key[i]) & (cap - 1);
		while (key[j])
			j = (j + 1) & (cap - 1);
		key[j] = map->key[i];
		val[j] = map->val[i];
	}
	free(map->key);
	free(map->val);
	map->key = key;
	map->val = val;
	map->cap = cap;
	return true;
}

bool sa_strmap_set(struct sa_strmap *map, const char *key, const char *val)
{
	if ((map->len + 1) * 2 > map->cap && !strmap_grow(map))
		return false;
	char *v = strdup(val);
	if (!v)
		return false;
	size_t j = fnv1a(key) & (map->cap - 1);
	while (map->key[j]) {
		if (strcmp(map->key[j], key) == 0) {
			free(map->val[j]);
			map->val[j] = v;
			return true;
		}
		j = (j + 1) & (map->cap - 1);
	}
	map->key[j] = strdup(key);
	if (!map->key[j]) {
		free(v);
		return false;
	}
	map->val[j] = v;
	map->len++;
	return true;
}

const char *sa_strmap_get(const struct sa_strmap *map, const char *key)
{
	if (!map->cap)
		return NULL;
	size_t j = fnv1a(key) & (map->cap - 1);
	while (map->key[j]) {
		if (strcmp(map->key[j], key) == 0)
			return map->val[j];
		j = (j + 1) & (map->cap - 1);
	}
	return NULL;
}

void sa_strmap_free(struct sa_strmap *map)
{
	for (size_t i = 0; i < map->cap; i++) {
		free(map->key[i]);
		free(map->val[i]);
	}
	free(map->key);
	free(map->val);
	map->key = map->val = NULL;
	map->cap = map->len = 0;
}

void sa_random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t r = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % 16 == 0)
			r = next_random();
		out[i] = hex[r & 15];
		r >>= 4;
	}
	out[n] = '\0';
}

bool sa_stopping(struct sa_server *srv)
{
	pthread_mutex_lock(&srv->stop_mu);
	bool s = srv->stopping;
	pthread_mutex_unlock(&srv->stop_mu);
	return s;
}

json_t *sa_refuse(unsigned *status, unsigned code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	*status = code;
	return json_pack("{s:o}", "error", sa_json_lossy_string(msg, strlen(msg)));
}

const char *sa_unknown_member(const json_t *obj, const char *const *allowed)
{
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		(void)v;
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known |= strcmp(allowed[i], k) == 0;
		if (!known)
			return k;
	}
	return NULL;
}
