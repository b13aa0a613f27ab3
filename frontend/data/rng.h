/*
 * rng.h - the frontend's deterministic random numbers (splitmix64 seeding a
 * xoshiro256** generator).  Same seed -> same sequence on every machine.
 */
#ifndef HCGA_RNG_H
#define HCGA_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct hcga_rng {
    uint64_t s[4];
} hcga_rng;

static inline uint64_t hcga_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seed from any number of 64-bit words (e.g. seed, epoch, index). */
static inline void hcga_rng_seed(hcga_rng *r, uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++) r->s[i] = hcga_splitmix64(&x);
}

static inline uint64_t hcga_rng_next(hcga_rng *r)
{
    uint64_t *s = r->s;
    uint64_t t = s[1] << 17;
    uint64_t res = s[1] * 5;
    res = ((res << 7) | (res >> 57)) * 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* uniform in [0, 1) with 53 random bits */
static inline double hcga_rng_uniform(hcga_rng *r)
{
    return (double)(hcga_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in [lo, hi) */
static inline double hcga_rng_range(hcga_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * hcga_rng_uniform(r);
}

/* uniform integer in [0, n) (n > 0), without modulo bias */
static inline uint64_t hcga_rng_below(hcga_rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = hcga_rng_next(r);
    while (x >= lim);
    return x % n;
}

/* standard normal (Box-Muller, one value per call) */
static inline double hcga_rng_normal(hcga_rng *r)
{
    double u1 = hcga_rng_uniform(r), u2 = hcga_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
