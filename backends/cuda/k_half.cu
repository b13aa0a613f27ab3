/*
 * k_half.cu - the 16-bit storage formats (HCGA_BF16, HCGA_F16; ABI 1.1):
 * CAST between any two floating dtypes, and the few pointwise steps the
 * half convolutions and GEMM need around cuDNN / cuBLAS (bias add, bias
 * gradient, scaling), all computed in F32 and rounded once.
 *
 * Conversions follow hcga_plugin.h ("Mixed precision") and hcga_half.h,
 * bit for bit:
 *  - narrowing rounds to nearest, ties to even (the _rn intrinsics of
 *    cuda_bf16.h / cuda_fp16.h), overflows to +-Inf, keeps F16 subnormals
 *    (no flush to zero: the plugin is built without --use_fast_math);
 *  - double -> half is correctly rounded: double -> float with round to odd
 *    (truncate, then set the last bit when inexact), then float -> half to
 *    nearest even; float keeps more than two bits beyond either 16-bit
 *    format, so the two steps cannot double-round;
 *  - NaN stays NaN: narrowing sets the quiet bit and keeps the sign and the
 *    top payload bits (as hcga_half.h does, rather than the canonical NaN
 *    the conversion instructions produce); widening is exact.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kcommon.cuh"

#define CUK_BF16 5
#define CUK_F16 6

/* ---- scalar conversions ------------------------------------------------------ */

__device__ __forceinline__ uint16_t f32_to_bf16(float f)
{
    const uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__device__ __forceinline__ uint16_t f32_to_f16(float f)
{
    const uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
    return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ float bf16_to_f32(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

__device__ __forceinline__ float f16_to_f32(uint16_t h)
{
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) /* NaN: keep sign and payload */
        return __uint_as_float(((uint32_t)(h & 0x8000u) << 16) | 0x7f800000u | ((uint32_t)(h & 0x3ffu) << 13));
    return __half2float(__ushort_as_half(h));
}

/* d rounded to float with round to odd: truncation, last bit set when inexact. */
__device__ __forceinline__ float f64_to_f32_odd(double d)
{
    const float t = __double2float_rz(d);
    if ((double)t == d || d != d) return t;
    return __uint_as_float(__float_as_uint(t) | 1u);
}

/* Any floating dtype, widened to float (exact for the 16-bit formats). */
template <int DT> struct cuk_fp;
template <> struct cuk_fp<CUK_F32> {
    typedef float T;
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float f) { return f; }
};
template <> struct cuk_fp<CUK_BF16> {
    typedef uint16_t T;
    static __device__ __forceinline__ float load(uint16_t v) { return bf16_to_f32(v); }
    static __device__ __forceinline__ uint16_t store(float f) { return f32_to_bf16(f); }
};
template <> struct cuk_fp<CUK_F16> {
    typedef uint16_t T;
    static __device__ __forceinline__ float load(uint16_t v) { return f16_to_f32(v); }
    static __device__ __forceinline__ uint16_t store(float f) { return f32_to_f16(f); }
};

/* ---- CAST --------------------------------------------------------------------- */

/* Widening from a 16-bit format, or narrowing from F32, through float. */
template <int DI, int DO>
__global__ void k_cast_via_f32(int64_t n, const typename cuk_fp<DI>::T *x, typename cuk_fp<DO>::T *y)
{
    CUK_FOR(i, n) y[i] = cuk_fp<DO>::store(cuk_fp<DI>::load(x[i]));
}

/* half -> F64 (exact) and F64 -> half (correctly rounded). */
template <int DH> __global__ void k_cast_half_to_f64(int64_t n, const uint16_t *x, double *y)
{
    CUK_FOR(i, n) y[i] = (double)cuk_fp<DH>::load(x[i]);
}
template <int DH> __global__ void k_cast_f64_to_half(int64_t n, const double *x, uint16_t *y)
{
    CUK_FOR(i, n) y[i] = cuk_fp<DH>::store(f64_to_f32_odd(x[i]));
}

/* F32 <-> F64 (round to nearest even / exact). */
__global__ void k_cast_f32_f64(int64_t n, const float *x, double *y)
{
    CUK_FOR(i, n) y[i] = (double)x[i];
}
__global__ void k_cast_f64_f32(int64_t n, const double *x, float *y)
{
    CUK_FOR(i, n) y[i] = __double2float_rn(x[i]);
}

extern "C" cudaError_t cuk_cast(cudaStream_t s, int dt_in, int dt_out, int64_t n, const void *x, void *y)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    const uint16_t *hx = (const uint16_t *)x;
    uint16_t *hy = (uint16_t *)y;
#define CAST_VIA_F32(DI, DO, TI, TO) \
    k_cast_via_f32<DI, DO><<<g, CUK_BLOCK, 0, s>>>(n, (const TI *)x, (TO *)y)
    switch (dt_in * 8 + dt_out) {
    case CUK_F32 * 8 + CUK_F64: k_cast_f32_f64<<<g, CUK_BLOCK, 0, s>>>(n, (const float *)x, (double *)y); break;
    case CUK_F64 * 8 + CUK_F32: k_cast_f64_f32<<<g, CUK_BLOCK, 0, s>>>(n, (const double *)x, (float *)y); break;
    case CUK_F32 * 8 + CUK_BF16: CAST_VIA_F32(CUK_F32, CUK_BF16, float, uint16_t); break;
    case CUK_F32 * 8 + CUK_F16: CAST_VIA_F32(CUK_F32, CUK_F16, float, uint16_t); break;
    case CUK_BF16 * 8 + CUK_F16: CAST_VIA_F32(CUK_BF16, CUK_F16, uint16_t, uint16_t); break;
    case CUK_F16 * 8 + CUK_BF16: CAST_VIA_F32(CUK_F16, CUK_BF16, uint16_t, uint16_t); break;
    case CUK_BF16 * 8 + CUK_F32: CAST_VIA_F32(CUK_BF16, CUK_F32, uint16_t, float); break;
    case CUK_F16 * 8 + CUK_F32: CAST_VIA_F32(CUK_F16, CUK_F32, uint16_t, float); break;
    case CUK_BF16 * 8 + CUK_F64: k_cast_half_to_f64<CUK_BF16><<<g, CUK_BLOCK, 0, s>>>(n, hx, (double *)y); break;
    case CUK_F16 * 8 + CUK_F64: k_cast_half_to_f64<CUK_F16><<<g, CUK_BLOCK, 0, s>>>(n, hx, (double *)y); break;
    case CUK_F64 * 8 + CUK_BF16: k_cast_f64_to_half<CUK_BF16><<<g, CUK_BLOCK, 0, s>>>(n, (const double *)x, hy); break;
    case CUK_F64 * 8 + CUK_F16: k_cast_f64_to_half<CUK_F16><<<g, CUK_BLOCK, 0, s>>>(n, (const double *)x, hy); break;
    default: return cudaErrorInvalidValue; /* same dtype: the caller copies */
    }
#undef CAST_VIA_F32
    return cuk_status();
}

/* ---- around cuDNN and cuBLAS ---------------------------------------------------- */

/* y[n,k,pq] = round(float(y) + float(bias[k])). */
template <int DH>
__global__ void k_half_bias_add(int64_t total, int64_t K, int64_t PQ, uint16_t *y, const uint16_t *b)
{
    CUK_FOR(i, total)
    {
        const int64_t k = (i / PQ) % K;
        y[i] = cuk_fp<DH>::store(cuk_fp<DH>::load(y[i]) + cuk_fp<DH>::load(b[k]));
    }
}

/* db[k] = round(sum over n, pq of dy[n,k,pq]), one block per channel, the
 * sum in float in a fixed order (strided per thread, then block_sum). */
template <int DH>
__global__ void k_half_bias_grad(int64_t N, int64_t K, int64_t PQ, const uint16_t *dy, uint16_t *db)
{
    for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
        float acc = 0.0f;
        const int64_t m = N * PQ;
        for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
            const int64_t n = j / PQ, q = j - n * PQ;
            acc += cuk_fp<DH>::load(dy[(n * K + k) * PQ + q]);
        }
        acc = block_sum(acc);
        if (threadIdx.x == 0) db[k] = cuk_fp<DH>::store(acc);
    }
}

/* y = round(a * float(x)) */
template <int DH> __global__ void k_half_scale(int64_t n, const uint16_t *x, uint16_t *y, float a)
{
    CUK_FOR(i, n) y[i] = cuk_fp<DH>::store(a * cuk_fp<DH>::load(x[i]));
}

extern "C" cudaError_t cuk_half_bias_add(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t PQ, void *y,
                                         const void *bias)
{
    const int64_t total = N * K * PQ;
    if (total <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(total, CUK_BLOCK);
    if (dt == CUK_BF16)
        k_half_bias_add<CUK_BF16><<<g, CUK_BLOCK, 0, s>>>(total, K, PQ, (uint16_t *)y, (const uint16_t *)bias);
    else if (dt == CUK_F16)
        k_half_bias_add<CUK_F16><<<g, CUK_BLOCK, 0, s>>>(total, K, PQ, (uint16_t *)y, (const uint16_t *)bias);
    else
        return cudaErrorInvalidValue;
    return cuk_status();
}

extern "C" cudaError_t cuk_half_bias_grad(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t PQ,
                                          const void *dy, void *db)
{
    if (K <= 0) return cudaSuccess;
    const unsigned g = K > (1 << 16) ? (1u << 16) : (unsigned)K;
    if (dt == CUK_BF16)
        k_half_bias_grad<CUK_BF16><<<g, CUK_BLOCK, 0, s>>>(N, K, PQ, (const uint16_t *)dy, (uint16_t *)db);
    else if (dt == CUK_F16)
        k_half_bias_grad<CUK_F16><<<g, CUK_BLOCK, 0, s>>>(N, K, PQ, (const uint16_t *)dy, (uint16_t *)db);
    else
        return cudaErrorInvalidValue;
    return cuk_status();
}

extern "C" cudaError_t cuk_half_scale(cudaStream_t s, int dt, int64_t n, const void *x, void *y, double a)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_BF16)
        k_half_scale<CUK_BF16><<<g, CUK_BLOCK, 0, s>>>(n, (const uint16_t *)x, (uint16_t *)y, (float)a);
    else if (dt == CUK_F16)
        k_half_scale<CUK_F16><<<g, CUK_BLOCK, 0, s>>>(n, (const uint16_t *)x, (uint16_t *)y, (float)a);
    else
        return cudaErrorInvalidValue;
    return cuk_status();
}
