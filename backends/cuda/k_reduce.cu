/*
 * k_reduce.cu - reductions: SUM_TO (the backward of broadcasting, also the
 * convolution bias gradient), REDUCE to a scalar, GAP, softmax over dim 1 and
 * ARGMAX over dim 1.
 *
 * Determinism: each output is produced by one thread or one block whose
 * partition of the input depends only on the shapes; partial sums are
 * combined by fixed shuffle trees (kcommon.cuh).
 */
#include "kcommon.cuh"

/* ---- SUM_TO ------------------------------------------------------------ */

__device__ __forceinline__ int64_t red_off(int nd, const int64_t *shape, const int64_t *stride,
                                           int64_t j)
{
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; --d) {
        const int64_t c = j % shape[d];
        j /= shape[d];
        off += c * stride[d];
    }
    return off;
}

/* One thread per output element: for many outputs with short reductions. */
template <typename T> __global__ void k_sum_to_thread(cuk_red r, const T *x, T *y)
{
    CUK_FOR(j, r.ny)
    {
        const int64_t base = red_off(r.nk, r.kshape, r.kstride, j);
        T acc = T(0);
        for (int64_t q = 0; q < r.nred; ++q) acc += x[base + red_off(r.nr, r.rshape, r.rstride, q)];
        y[j] = acc;
    }
}

/* One block per output element: for long reductions (bias gradients). */
template <typename T> __global__ void k_sum_to_block(cuk_red r, const T *x, T *y)
{
    for (int64_t j = blockIdx.x; j < r.ny; j += gridDim.x) {
        const int64_t base = red_off(r.nk, r.kshape, r.kstride, j);
        T acc = T(0);
        for (int64_t q = threadIdx.x; q < r.nred; q += blockDim.x)
            acc += x[base + red_off(r.nr, r.rshape, r.rstride, q)];
        acc = block_sum(acc);
        if (threadIdx.x == 0) y[j] = acc;
    }
}

template <typename T> static cudaError_t run_sum_to(cudaStream_t s, const cuk_red *r, const T *x, T *y)
{
    if (r->nred >= 512)
        k_sum_to_block<T><<<cuk_grid(r->ny, 1), CUK_BLOCK, 0, s>>>(*r, x, y);
    else
        k_sum_to_thread<T><<<cuk_grid(r->ny, CUK_BLOCK), CUK_BLOCK, 0, s>>>(*r, x, y);
    return cuk_status();
}

extern "C" cudaError_t cuk_sum_to(cudaStream_t s, int dt, const cuk_red *r, const void *x, void *y)
{
    if (r->ny <= 0) return cudaSuccess;
    if (dt == CUK_F64) return run_sum_to<double>(s, r, (const double *)x, (double *)y);
    return run_sum_to<float>(s, r, (const float *)x, (float *)y);
}

/* ---- REDUCE to a scalar ------------------------------------------------- */

template <typename T>
__global__ void k_reduce_partial(int64_t n, const T *x, int absval, T *part)
{
    T acc = T(0);
    CUK_FOR(i, n)
    {
        const T v = x[i];
        acc += absval ? fabs(v) : v;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <typename T>
static cudaError_t run_reduce_all(cudaStream_t s, int kind, int64_t n, const T *x, T *y,
                                  void *scratch)
{
    const unsigned g = cuk_partials(n);
    T *part = cuk_part_sums<T>(scratch);
    k_reduce_partial<T><<<g, CUK_BLOCK, 0, s>>>(n, x, kind == CUK_RED_ABS_MEAN, part);
    const T div = kind == CUK_RED_SUM ? T(0) : (T)n;
    k_finalize<T><<<1, CUK_BLOCK, 0, s>>>(part, NULL, (int64_t)g, div, y);
    return cuk_status();
}

extern "C" cudaError_t cuk_reduce_all(cudaStream_t s, int dt, int kind, int64_t n, const void *x,
                                     void *y, void *scratch)
{
    if (n <= 0) return cudaErrorInvalidValue; /* the host handles empty tensors */
    if (dt == CUK_F64) return run_reduce_all<double>(s, kind, n, (const double *)x, (double *)y, scratch);
    return run_reduce_all<float>(s, kind, n, (const float *)x, (float *)y, scratch);
}

/* ---- GAP: one warp per (n, c) plane ----------------------------------------- */

template <typename T> __global__ void k_gap_fwd(int64_t nc, int64_t hw, const T *x, T *y)
{
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp; r < nc; r += nwarps) {
        const T *row = x + r * hw;
        T acc = T(0);
        for (int64_t k = lane; k < hw; k += 32) acc += row[k];
        acc = warp_sum(acc);
        if (lane == 0) y[r] = acc / (T)hw;
    }
}

extern "C" cudaError_t cuk_gap_fwd(cudaStream_t s, int dt, int64_t nc, int64_t hw, const void *x,
                                  void *y)
{
    if (nc <= 0 || hw <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(nc, CUK_BLOCK / 32);
    if (dt == CUK_F64)
        k_gap_fwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, hw, (const double *)x, (double *)y);
    else
        k_gap_fwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, hw, (const float *)x, (float *)y);
    return cuk_status();
}

/* ---- softmax over dim 1 of [outer, C, inner] ----------------------------------- */

/* One thread per (o, i) position, looping over C (inner > 1 or short rows). */
template <typename T>
__global__ void k_softmax_fwd_thread(int64_t outer, int64_t C, int64_t inner, const T *x, T *y)
{
    CUK_FOR(t, outer * inner)
    {
        const int64_t o = t / inner, i = t % inner;
        const T *xp = x + o * C * inner + i;
        T *yp = y + o * C * inner + i;
        T m = -cuk_lim<T>::inf();
        for (int64_t c = 0; c < C; ++c) m = cuk_max(m, xp[c * inner]);
        T sum = T(0);
        for (int64_t c = 0; c < C; ++c) sum += exp(xp[c * inner] - m);
        for (int64_t c = 0; c < C; ++c) yp[c * inner] = exp(xp[c * inner] - m) / sum;
    }
}

/* One block per row (inner == 1 and a long C). */
template <typename T>
__global__ void k_softmax_fwd_block(int64_t outer, int64_t C, const T *x, T *y)
{
    for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
        const T *xp = x + o * C;
        T *yp = y + o * C;
        T m = -cuk_lim<T>::inf();
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = cuk_max(m, xp[c]);
        m = block_max(m);
        T sum = T(0);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += exp(xp[c] - m);
        sum = block_sum(sum);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yp[c] = exp(xp[c] - m) / sum;
    }
}

template <typename T>
__global__ void k_softmax_bwd_thread(int64_t outer, int64_t C, int64_t inner, const T *y,
                                     const T *dy, T *dx)
{
    CUK_FOR(t, outer * inner)
    {
        const int64_t o = t / inner, i = t % inner;
        const int64_t base = o * C * inner + i;
        T dot = T(0);
        for (int64_t c = 0; c < C; ++c) dot += dy[base + c * inner] * y[base + c * inner];
        for (int64_t c = 0; c < C; ++c) {
            const int64_t k = base + c * inner;
            dx[k] = y[k] * (dy[k] - dot);
        }
    }
}

template <typename T>
__global__ void k_softmax_bwd_block(int64_t outer, int64_t C, const T *y, const T *dy, T *dx)
{
    for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
        const int64_t base = o * C;
        T dot = T(0);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dot += dy[base + c] * y[base + c];
        dot = block_sum(dot);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            dx[base + c] = y[base + c] * (dy[base + c] - dot);
    }
}

static int softmax_rowwise(int64_t C, int64_t inner)
{
    return inner == 1 && C >= 128;
}

extern "C" cudaError_t cuk_softmax_fwd(cudaStream_t s, int dt, int64_t outer, int64_t C,
                                      int64_t inner, const void *x, void *y)
{
    if (outer <= 0 || C <= 0 || inner <= 0) return cudaSuccess;
    if (softmax_rowwise(C, inner)) {
        const unsigned g = cuk_grid(outer, 1);
        if (dt == CUK_F64)
            k_softmax_fwd_block<double><<<g, CUK_BLOCK, 0, s>>>(outer, C, (const double *)x, (double *)y);
        else
            k_softmax_fwd_block<float><<<g, CUK_BLOCK, 0, s>>>(outer, C, (const float *)x, (float *)y);
    } else {
        const unsigned g = cuk_grid(outer * inner, CUK_BLOCK);
        if (dt == CUK_F64)
            k_softmax_fwd_thread<double><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const double *)x,
                                                                 (double *)y);
        else
            k_softmax_fwd_thread<float><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const float *)x,
                                                               (float *)y);
    }
    return cuk_status();
}

extern "C" cudaError_t cuk_softmax_bwd(cudaStream_t s, int dt, int64_t outer, int64_t C,
                                      int64_t inner, const void *y, const void *dy, void *dx)
{
    if (outer <= 0 || C <= 0 || inner <= 0) return cudaSuccess;
    if (softmax_rowwise(C, inner)) {
        const unsigned g = cuk_grid(outer, 1);
        if (dt == CUK_F64)
            k_softmax_bwd_block<double><<<g, CUK_BLOCK, 0, s>>>(outer, C, (const double *)y,
                                                                (const double *)dy, (double *)dx);
        else
            k_softmax_bwd_block<float><<<g, CUK_BLOCK, 0, s>>>(outer, C, (const float *)y,
                                                              (const float *)dy, (float *)dx);
    } else {
        const unsigned g = cuk_grid(outer * inner, CUK_BLOCK);
        if (dt == CUK_F64)
            k_softmax_bwd_thread<double><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const double *)y,
                                                                 (const double *)dy, (double *)dx);
        else
            k_softmax_bwd_thread<float><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const float *)y,
                                                               (const float *)dy, (float *)dx);
    }
    return cuk_status();
}

/* ---- ARGMAX over dim 1 (first maximal index) ----------------------------------- */

template <typename T>
__global__ void k_argmax(int64_t outer, int64_t C, int64_t inner, const T *x, int64_t *idx)
{
    CUK_FOR(t, outer * inner)
    {
        const int64_t o = t / inner, i = t % inner;
        const T *xp = x + o * C * inner + i;
        T best = xp[0];
        int64_t bi = 0;
        for (int64_t c = 1; c < C; ++c) {
            const T v = xp[c * inner];
            if (v > best) {
                best = v;
                bi = c;
            }
        }
        idx[t] = bi;
    }
}

extern "C" cudaError_t cuk_argmax(cudaStream_t s, int dt, int64_t outer, int64_t C, int64_t inner,
                                 const void *x, int64_t *idx)
{
    if (outer <= 0 || inner <= 0 || C <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(outer * inner, CUK_BLOCK);
    if (dt == CUK_F64)
        k_argmax<double><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const double *)x, idx);
    else
        k_argmax<float><<<g, CUK_BLOCK, 0, s>>>(outer, C, inner, (const float *)x, idx);
    return cuk_status();
}
