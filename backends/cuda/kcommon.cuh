/*
 * kcommon.cuh - device helpers shared by the k_*.cu kernel files.
 *
 * Conventions: blocks of CUK_BLOCK (256) threads, grid-stride loops over
 * int64_t indices, and reductions whose shape (which thread sums which
 * elements, in which order they are combined) depends only on the sizes, so
 * results are bitwise reproducible.  No floating-point atomics anywhere.
 */
#ifndef HCGA_KCOMMON_CUH
#define HCGA_KCOMMON_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"

/* Per-element math shared with the OpenCL backend (backends/common/kernels):
 * included once per T; FN(name) = name, so C++ overloading on float/double
 * picks the copy (hk_sigmoid(float) / hk_sigmoid(double) ...). */
typedef long long hk_idx;
#define FN(name) name
#define DEVFN static __device__ __forceinline__
#define GLOBAL
#define T float
#include "hcga_kmath.h"
#undef T
#define T double
#include "hcga_kmath.h"
#undef T
#undef GLOBAL
#undef DEVFN
#undef FN

#define CUK_BLOCK 256
#define CUK_F32 0
#define CUK_F64 1

/* Grid size for n work items with `per_block` items per block, capped: the
 * kernels loop with a grid stride, so a cap only changes the schedule. */
static inline unsigned cuk_grid(int64_t n, int64_t per_block)
{
    int64_t g = (n + per_block - 1) / per_block;
    if (g < 1) g = 1;
    if (g > (1 << 20)) g = 1 << 20;
    return (unsigned)g;
}

/* Number of partial sums of a two-pass reduction over n elements.  Depends
 * only on n, so the partition (and the bits of the result) are fixed. */
static inline unsigned cuk_partials(int64_t n)
{
    int64_t g = (n + CUK_BLOCK * 8 - 1) / (CUK_BLOCK * 8);
    if (g < 1) g = 1;
    if (g > CUK_MAX_PARTIALS) g = CUK_MAX_PARTIALS;
    return (unsigned)g;
}

#define CUK_FOR(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
         i += (int64_t)gridDim.x * blockDim.x)

template <typename T> struct cuk_lim;
template <> struct cuk_lim<float> {
    static __device__ __forceinline__ float inf() { return __int_as_float(0x7f800000); }
    static __device__ __forceinline__ float nan() { return __int_as_float(0x7fc00000); }
};
template <> struct cuk_lim<double> {
    static __device__ __forceinline__ double inf() { return __longlong_as_double(0x7ff0000000000000LL); }
    static __device__ __forceinline__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

/* max that propagates NaN (like PyTorch's max reductions). */
template <typename T> __device__ __forceinline__ T cuk_max(T a, T b)
{
    return (a > b || a != a) ? a : b;
}

/* Warp reductions with a fixed butterfly order; lane 0 holds the result. */
template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v)
{
    for (int o = 16; o > 0; o >>= 1) v = cuk_max(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

/* Block reductions: every thread of the block must call them (blockDim a
 * multiple of 32, at most 1024); every thread gets the result. */
template <typename T> __device__ T block_sum(T v)
{
    __shared__ T sh[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = (threadIdx.x < nw) ? sh[threadIdx.x] : T(0);
    if (wid == 0) r = warp_sum(r);
    if (threadIdx.x == 0) sh[0] = r;
    __syncthreads();
    return sh[0];
}

template <typename T> __device__ T block_max(T v)
{
    __shared__ T sh[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = (threadIdx.x < nw) ? sh[threadIdx.x] : -cuk_lim<T>::inf();
    if (wid == 0) r = warp_max(r);
    if (threadIdx.x == 0) sh[0] = r;
    __syncthreads();
    return sh[0];
}

/* Record a device-side input error: the first code wins. */
__device__ __forceinline__ void cuk_flag(int *flag, int code)
{
    if (flag) atomicCAS(flag, 0, code);
}

/* Scratch layout of the two-pass reductions: T sums[CUK_MAX_PARTIALS] at 0,
 * long long counts[CUK_MAX_PARTIALS] at byte CUK_MAX_PARTIALS * 8. */
template <typename T> __host__ __device__ __forceinline__ T *cuk_part_sums(void *scratch)
{
    return (T *)scratch;
}
__host__ __device__ __forceinline__ long long *cuk_part_counts(void *scratch)
{
    return (long long *)((char *)scratch + CUK_MAX_PARTIALS * 8);
}

/* Second pass, one block: combine g partial sums in a fixed order.
 *   counts == NULL: out = div > 0 ? sum / div : sum
 *   counts != NULL: out = count > 0 ? sum / count : 0   (mean over counted items) */
template <typename T>
__global__ void k_finalize(const T *sums, const long long *counts, int64_t g, T div, T *out)
{
    T s = T(0);
    long long c = 0;
    for (int64_t i = threadIdx.x; i < g; i += blockDim.x) {
        s += sums[i];
        if (counts) c += counts[i];
    }
    s = block_sum(s);
    if (counts) c = block_sum(c);
    if (threadIdx.x == 0) {
        if (counts)
            *out = c > 0 ? s / (T)c : T(0);
        else
            *out = div > T(0) ? s / div : s;
    }
}

static inline cudaError_t cuk_status(void)
{
    return cudaGetLastError();
}

#endif
