/*
 * Small numeric helpers the long-running loops share: a random number
 * generator for jitter and sampling, and a bounded sample of durations
 * summarised as percentiles.
 */
#ifndef ENG_STATS_H
#define ENG_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* xorshift64: not for secrets, only for jitter and sampling. */
struct eng_rng {
	uint64_t s;
};

/* Seed from getrandom(2) (the monotonic clock if that fails). */
void eng_rng_seed(struct eng_rng *r);
uint64_t eng_rng_next(struct eng_rng *r);
/* Uniform in [0, 1). */
double eng_rng01(struct eng_rng *r);

/* A uniform sample (reservoir) of at most cap values, with the exact
 * maximum: bounded memory however long a run lasts. */
struct eng_sample {
	double *v;
	size_t n, cap;
	long long seen;
	double max;
};

void eng_sample_init(struct eng_sample *s, size_t cap);
void eng_sample_add(struct eng_sample *s, struct eng_rng *r, double v);
/* {"p50": .., "p99": .., "max": ..}, rounded to 0.1 (sorts the sample). */
json_t *eng_sample_json(struct eng_sample *s);
void eng_sample_release(struct eng_sample *s);

/* The q-quantile (0..1) of n ascending values by the nearest-rank method;
 * 0 when n is 0. */
double eng_percentile(const double *sorted, size_t n, double q);

#endif
