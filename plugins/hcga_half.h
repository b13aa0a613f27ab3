/*
 * hcga_half.h - conversions between the 16-bit storage formats of
 * hcga_plugin.h (HCGA_BF16, HCGA_F16) and float / double, as the ABI defines
 * them: round to nearest, ties to even; overflow to +-Inf; NaN stays a quiet
 * NaN; F16 subnormals kept.  Plain C11, header only, no libm, installed next
 * to hcga_plugin.h so a backend (and its tests) can use the very conversions
 * the reference backend and the conformance suite use.
 *
 * A 16-bit value travels as its bit pattern in a uint16_t.  Narrowing from
 * double goes through float with round-to-odd, which cannot double-round
 * (float keeps more than two bits beyond either 16-bit format), so
 * hcga_f64_to_bf16(d) is the correctly rounded bf16 of d.
 */
#ifndef HCGA_HALF_H
#define HCGA_HALF_H

#include <stdint.h>
#include <string.h>

#include "hcga_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline uint32_t hcga_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float hcga_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- bfloat16 ------------------------------------------------------------ */

static inline uint16_t hcga_f32_to_bf16(float f)
{
    uint32_t u = hcga_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* ties to even; carries into the exponent (Inf) */
    return (uint16_t)(u >> 16);
}

static inline float hcga_bf16_to_f32(uint16_t h) { return hcga_bits_f32((uint32_t)h << 16); }

/* ---- IEEE binary16 ------------------------------------------------------- */

static inline uint16_t hcga_f32_to_f16(float f)
{
    const uint32_t u = hcga_f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: Inf (ties to even) */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal or 0 */
        if (a <= 0x33000000u) return sign;                   /* <= 2^-25: 0 (2^-25 ties to 0) */
        const uint32_t e = a >> 23;                          /* 102..112 */
        const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;                     /* 14..24: value * 2^24 */
        uint32_t m = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (m & 1u))) m++;
        return (uint16_t)(sign | m); /* m == 0x400 is the smallest normal: same encoding */
    }
    uint32_t r = a - 0x38000000u; /* rebias the exponent 127 -> 15 */
    r += 0x0fffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

static inline float hcga_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return hcga_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e != 0) return hcga_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
    if (m == 0) return hcga_bits_f32(sign);
    e = 113; /* subnormal m * 2^-24: normalise */
    while (!(m & 0x400u)) {
        m <<= 1;
        e--;
    }
    return hcga_bits_f32(sign | (e << 23) | ((m & 0x3ffu) << 13));
}

/* ---- from double --------------------------------------------------------- */

/* d rounded to float with round-to-odd (the odd neighbour when inexact). */
static inline float hcga_f64_to_f32_odd(double d)
{
    float f = (float)d;
    if ((double)f == d || f != f) return f;
    uint32_t u = hcga_f32_bits(f);
    if (u & 1u) return f;
    /* f is the even neighbour: step one ulp towards d */
    const double af = f < 0 ? -(double)f : (double)f, ad = d < 0 ? -d : d;
    if ((u & 0x7fffffffu) == 0x7f800000u) u -= 1u; /* Inf: the largest finite float */
    else if (ad > af) u += 1u;
    else u -= 1u;
    return hcga_bits_f32(u);
}

static inline uint16_t hcga_f64_to_bf16(double d) { return hcga_f32_to_bf16(hcga_f64_to_f32_odd(d)); }
static inline uint16_t hcga_f64_to_f16(double d) { return hcga_f32_to_f16(hcga_f64_to_f32_odd(d)); }

/* ---- by dtype ------------------------------------------------------------- */

/* Bits of a HCGA_BF16 or HCGA_F16 value from double / float, and back. */
static inline uint16_t hcga_half_from_f64(int half_dtype, double d)
{
    return half_dtype == HCGA_BF16 ? hcga_f64_to_bf16(d) : hcga_f64_to_f16(d);
}

static inline uint16_t hcga_half_from_f32(int half_dtype, float f)
{
    return half_dtype == HCGA_BF16 ? hcga_f32_to_bf16(f) : hcga_f32_to_f16(f);
}

static inline float hcga_half_to_f32(int half_dtype, uint16_t h)
{
    return half_dtype == HCGA_BF16 ? hcga_bf16_to_f32(h) : hcga_f16_to_f32(h);
}

#ifdef __cplusplus
}
#endif
#endif /* HCGA_HALF_H */
