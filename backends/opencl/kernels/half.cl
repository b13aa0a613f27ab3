/* half.cl - CAST between the floating dtypes f32, f64, bf16 and f16, and the
 * widening / rounding around the half convolutions and GEMM (ABI 1.1,
 * "Mixed precision" in plugins/hcga_plugin.h).  Compiled once, untyped.
 *
 * Every value is handled as its bit pattern in an integer: bf16 and f16 are
 * ushort storage, f32 is read and written as uint, f64 as ulong.  Nothing
 * here does floating-point arithmetic, so the results do not depend on the
 * device's rounding, denormal flushing or on cl_khr_fp16 / cl_khr_fp64
 * (the host still refuses f64 tensors without cl_khr_fp64, as for every
 * op).  The conversions are those of plugins/hcga_half.h, written again
 * for integers: round to nearest even, overflow to +-Inf, NaN stays a quiet
 * NaN (payload kept where the format has room, as x86 conversions do), f16
 * subnormals kept; f64 -> half goes through f32 with round-to-odd, which
 * cannot double-round.  tests/test_opencl_ops.c compares every pair with
 * the CPU backend bit for bit. */

/* dtype codes, as hcga_dtype in hcga_plugin.h */
#define HD_F32 0
#define HD_F64 1
#define HD_BF16 5
#define HD_F16 6

/* f32 bits -> bf16 bits, ties to even (a carry into the exponent gives Inf). */
static inline ushort hb_f32_to_bf16(uint u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* f32 bits -> f16 bits, ties to even, subnormals kept. */
static inline ushort hb_f32_to_f16(uint u)
{
    uint sign = (u >> 16) & 0x8000u;
    uint a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (ushort)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (ushort)(sign | 0x7c00u); /* rounds to >= 65536: Inf */
    if (a < 0x38800000u) {                                  /* below 2^-14 */
        if (a <= 0x33000000u) return (ushort)sign;          /* <= 2^-25 (the tie) */
        uint shift = 126u - (a >> 23);                      /* 14..24 */
        uint mant = (a & 0x7fffffu) | 0x800000u;
        uint m = mant >> shift;
        uint rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (m & 1u))) m++;
        return (ushort)(sign | m);
    }
    uint r = a - 0x38000000u; /* exponent bias 127 -> 15 */
    r += 0x0fffu + ((r >> 13) & 1u);
    return (ushort)(sign | (r >> 13));
}

/* f16 bits -> f32 bits (exact). */
static inline uint hb_f16_to_f32(ushort h)
{
    uint sign = (uint)(h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return sign | 0x7f800000u | (m << 13);
    if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0) return sign;
    /* subnormal m * 2^-24, m < 2^10: leading bit at p = 31 - clz(m) */
    uint p = 31u - (uint)clz(m);
    return sign | ((p + 103u) << 23) | ((m << (23u - p)) & 0x7fffffu);
}

/* f32 bits -> f64 bits (exact; a NaN is made quiet, payload kept). */
static inline ulong hb_f32_to_f64(uint u)
{
    ulong sign = (ulong)(u & 0x80000000u) << 32;
    uint a = u & 0x7fffffffu, e = a >> 23, m = a & 0x7fffffu;
    if (a > 0x7f800000u) return sign | 0x7ff8000000000000ul | ((ulong)m << 29);
    if (a == 0x7f800000u) return sign | 0x7ff0000000000000ul;
    if (e != 0) return sign | ((ulong)(e + 896u) << 52) | ((ulong)m << 29);
    if (m == 0) return sign;
    /* subnormal m * 2^-149: leading bit at p, value 1.f * 2^(p - 149) */
    uint p = 31u - (uint)clz(m);
    return sign | ((ulong)(p + 874u) << 52) | (((ulong)m << (52u - p)) & 0xffffffffffffful);
}

/* f64 bits -> f32 bits, rounded to nearest even (odd == 0) or to odd
 * (odd == 1: the odd neighbour when inexact, so overflow gives the largest
 * finite float instead of Inf, as hcga_f64_to_f32_odd). */
static inline uint hb_f64_to_f32(ulong b, int odd)
{
    uint sign = (uint)(b >> 32) & 0x80000000u;
    ulong a = b & 0x7ffffffffffffffful;
    ulong mant = a & 0xffffffffffffful;
    int e = (int)(a >> 52);
    if (e == 0x7ff) /* Inf, or NaN: quiet, top payload bits kept */
        return mant ? sign | 0x7fc00000u | (uint)(mant >> 29) : sign | 0x7f800000u;
    if (a == 0) return sign;
    int fe = e - 896; /* the f32 biased exponent of a normal result */
    if (fe >= 255) return sign | (odd ? 0x7f7fffffu : 0x7f800000u);
    ulong r, rem, halfway;
    if (fe >= 1) {
        r = ((ulong)fe << 23) | (mant >> 29);
        rem = mant & 0x1ffffffful;
        halfway = 0x10000000ul;
    } else {
        /* f32 subnormal: value / 2^-149 = m * 2^(e' - 926), e' = max(e, 1) */
        ulong m = e ? (mant | 0x10000000000000ul) : mant;
        int shift = 926 - (e ? e : 1); /* >= 30 */
        if (shift >= 55) { /* below half the smallest subnormal, m != 0 */
            r = 0;
            rem = 1;
            halfway = 2;
        } else {
            r = m >> shift;
            rem = m & ((1ul << shift) - 1ul);
            halfway = 1ul << (shift - 1);
        }
    }
    if (odd) {
        if (rem) r |= 1ul;
    } else if (rem > halfway || (rem == halfway && (r & 1ul))) {
        r++; /* a carry into the exponent is right, up to Inf */
    }
    return sign | (uint)r;
}

/* y[yo + i] = x[xo + i] converted, for i < n.  x and y are the buffers of
 * the two tensors as bytes, xo and yo element offsets, sdt / ddt the dtype
 * codes (never equal: the host copies same-dtype casts). */
__kernel void cast_bits(const GLOBAL uchar *x, hk_idx xo, int sdt, GLOBAL uchar *y, hk_idx yo,
                        int ddt, hk_idx n)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    uint u; /* the value as f32 bits (not used from f64 sources) */
    if (sdt == HD_F64) {
        ulong b = ((const GLOBAL ulong *)x)[xo + i];
        if (ddt == HD_F32)
            ((GLOBAL uint *)y)[yo + i] = hb_f64_to_f32(b, 0);
        else {
            u = hb_f64_to_f32(b, 1);
            ((GLOBAL ushort *)y)[yo + i] = ddt == HD_BF16 ? hb_f32_to_bf16(u) : hb_f32_to_f16(u);
        }
        return;
    }
    if (sdt == HD_F32)
        u = ((const GLOBAL uint *)x)[xo + i];
    else if (sdt == HD_BF16)
        u = (uint)((const GLOBAL ushort *)x)[xo + i] << 16;
    else
        u = hb_f16_to_f32(((const GLOBAL ushort *)x)[xo + i]);
    if (ddt == HD_F32)
        ((GLOBAL uint *)y)[yo + i] = u;
    else if (ddt == HD_F64)
        ((GLOBAL ulong *)y)[yo + i] = hb_f32_to_f64(u);
    else
        ((GLOBAL ushort *)y)[yo + i] = ddt == HD_BF16 ? hb_f32_to_bf16(u) : hb_f32_to_f16(u);
}
