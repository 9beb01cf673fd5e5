#include "eng_stats.h"

#include <math.h>
#include <stdlib.h>
#include <sys/random.h>

#include "eng_buf.h"
#include "eng_time.h"

void eng_rng_seed(struct eng_rng *r)
{
	if (getrandom(&r->s, sizeof(r->s), 0) != sizeof(r->s) || r->s == 0)
		r->s = 0x9E3779B97F4A7C15ULL ^ (uint64_t)eng_mono_us();
}

uint64_t eng_rng_next(struct eng_rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

double eng_rng01(struct eng_rng *r)
{
	return (double)(eng_rng_next(r) >> 11) / 9007199254740992.0;
}

void eng_sample_init(struct eng_sample *s, size_t cap)
{
	s->v = eng_xcalloc(cap ? cap : 1, sizeof(*s->v));
	s->n = 0;
	s->cap = cap ? cap : 1;
	s->seen = 0;
	s->max = 0;
}

void eng_sample_add(struct eng_sample *s, struct eng_rng *r, double v)
{
	if (v > s->max)
		s->max = v;
	s->seen++;
	if (s->n < s->cap) {
		s->v[s->n++] = v;
		return;
	}
	uint64_t j = eng_rng_next(r) % (uint64_t)s->seen;
	if (j < s->cap)
		s->v[j] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double eng_percentile(const double *sorted, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)ceil(q * (double)n);
	if (i > 0)
		i--;
	return sorted[i < n ? i : n - 1];
}

static double tenth(double v)
{
	return round(v * 10) / 10;
}

json_t *eng_sample_json(struct eng_sample *s)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	return json_pack("{s:f, s:f, s:f}", "p50", tenth(eng_percentile(s->v, s->n, 0.50)),
			 "p99", tenth(eng_percentile(s->v, s->n, 0.99)), "max",
			 tenth(s->max));
}

void eng_sample_release(struct eng_sample *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
