/*
 * k_spatial.cu - bilinear resizing (forward and a gather-form backward) and
 * the shifted-L1 smoothness loss of co-parsing.
 */
#include "kcommon.cuh"

/* ---- bilinear resize ------------------------------------------------------- */

/* Source samples of output index dst along one axis (in -> out samples):
 * the sample is (1-l)*v[i0] + l*v[i1] with i0, i1, l from hk_bilinear_src
 * (backends/common/kernels/hcga_kmath.h, shared with OpenCL):
 *   align_corners: src = dst * (in-1)/(out-1)   (0 when out == 1)
 *   otherwise:     src = max((dst + 0.5) * in/out - 0.5, 0)
 * i0 = floor(src) (at most in-1), i1 = min(i0 + 1, in - 1), l = src - i0. */
template <typename T>
__device__ __forceinline__ void bil_src(int64_t dst, int64_t in, int64_t out, int align, int64_t &i0,
                                        int64_t &i1, T &l)
{
    hk_idx a = 0, b = 0;
    hk_bilinear_src((hk_idx)dst, (hk_idx)in, (hk_idx)out, align, &a, &b, &l);
    i0 = (int64_t)a;
    i1 = (int64_t)b;
}

template <typename T>
__global__ void k_bilinear_fwd(int64_t nc, int64_t H, int64_t W, int64_t OH, int64_t OW, int align,
                               const T *x, T *y)
{
    CUK_FOR(i, nc * OH * OW)
    {
        const int64_t ow = i % OW;
        const int64_t t = i / OW;
        const int64_t oh = t % OH;
        const int64_t p = t / OH;
        int64_t h0, h1, w0, w1;
        T ly, lx;
        bil_src<T>(oh, H, OH, align, h0, h1, ly);
        bil_src<T>(ow, W, OW, align, w0, w1, lx);
        const T *xp = x + p * H * W;
        const T top = (T(1) - lx) * xp[h0 * W + w0] + lx * xp[h0 * W + w1];
        const T bot = (T(1) - lx) * xp[h1 * W + w0] + lx * xp[h1 * W + w1];
        y[i] = (T(1) - ly) * top + ly * bot;
    }
}

/* The output indices o (of `out`) whose i0 or i1 can be `idx` (of `in`) lie
 * in [lo, hi].  The range comes from inverting the source mapping with a
 * margin of 2 samples; the caller then tests every candidate with bil_src,
 * the very function the forward uses, so rounding cannot lose or add terms. */
__device__ __forceinline__ void bil_range(int64_t idx, int64_t in, int64_t out, int align,
                                          int64_t &lo, int64_t &hi)
{
    if (out == 1) {
        lo = 0;
        hi = 0;
        return;
    }
    if (in == 1) { /* every output reads sample 0 */
        lo = 0;
        hi = out - 1;
        return;
    }
    double a, b;
    if (align) {
        const double scale = (double)(in - 1) / (double)(out - 1); /* > 0 */
        a = (double)(idx - 1) / scale;
        b = (double)(idx + 1) / scale;
    } else {
        const double scale = (double)in / (double)out;
        a = ((double)idx - 0.5) / scale - 0.5;
        b = ((double)idx + 1.5) / scale - 0.5;
    }
    lo = (int64_t)floor(a) - 2;
    hi = (int64_t)ceil(b) + 2;
    if (idx <= 1) lo = 0; /* the clamp src = max(., 0) maps early outputs to 0 */
    if (lo < 0) lo = 0;
    if (hi > out - 1) hi = out - 1;
}

/* Weight of input sample idx in output sample o along one axis. */
template <typename T>
__device__ __forceinline__ bool bil_weight(int64_t o, int64_t idx, int64_t in, int64_t out,
                                           int align, T &wgt)
{
    int64_t i0, i1;
    T l;
    bil_src<T>(o, in, out, align, i0, i1, l);
    const bool use0 = i0 == idx, use1 = i1 == idx;
    wgt = (use0 ? T(1) - l : T(0)) + (use1 ? l : T(0));
    return use0 || use1;
}

/* dx[p, h, w] = sum over outputs (oh, ow) reading (h, w) of wy * wx * dy. */
template <typename T>
__global__ void k_bilinear_bwd(int64_t nc, int64_t H, int64_t W, int64_t OH, int64_t OW, int align,
                               const T *dy, T *dx)
{
    CUK_FOR(i, nc * H * W)
    {
        const int64_t w = i % W;
        const int64_t t = i / W;
        const int64_t h = t % H;
        const int64_t p = t / H;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        bil_range(h, H, OH, align, oh_lo, oh_hi);
        bil_range(w, W, OW, align, ow_lo, ow_hi);
        const T *dyp = dy + p * OH * OW;
        T acc = T(0);
        for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
            T wy;
            if (!bil_weight<T>(oh, h, H, OH, align, wy)) continue;
            T row = T(0);
            for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
                T wx;
                if (!bil_weight<T>(ow, w, W, OW, align, wx)) continue;
                row += wx * dyp[oh * OW + ow];
            }
            acc += wy * row;
        }
        dx[i] = acc;
    }
}

extern "C" cudaError_t cuk_bilinear_fwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W,
                                       int64_t OH, int64_t OW, int align_corners, const void *x,
                                       void *y)
{
    const int64_t n = nc * OH * OW;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_bilinear_fwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, OH, OW, align_corners,
                                                       (const double *)x, (double *)y);
    else
        k_bilinear_fwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, OH, OW, align_corners,
                                                     (const float *)x, (float *)y);
    return cuk_status();
}

extern "C" cudaError_t cuk_bilinear_bwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W,
                                       int64_t OH, int64_t OW, int align_corners, const void *dy,
                                       void *dx)
{
    const int64_t n = nc * H * W;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_bilinear_bwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, OH, OW, align_corners,
                                                       (const double *)dy, (double *)dx);
    else
        k_bilinear_bwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, OH, OW, align_corners,
                                                     (const float *)dy, (float *)dx);
    return cuk_status();
}

/* ---- SHIFT_L1 ------------------------------------------------------------------- */

/* The valid base positions q = (n, c, h, w) have q + shift inside the
 * tensor; there are M = (N-|dn|) C (H-|dh|) (W-|dw|) of them (M > 0: the
 * host handles M == 0).  t enumerates them in C order. */
struct shift_geom {
    int64_t N, C, H, W;
    int dn, dh, dw;
};

template <typename T>
__global__ void k_shift_l1_partial(shift_geom g, int64_t M, const T *x, T *part)
{
    const int64_t n0 = g.dn < 0 ? -g.dn : 0, h0 = g.dh < 0 ? -g.dh : 0, w0 = g.dw < 0 ? -g.dw : 0;
    const int64_t Hh = g.H - (g.dh < 0 ? -g.dh : g.dh);
    const int64_t Ww = g.W - (g.dw < 0 ? -g.dw : g.dw);
    const int64_t shift = ((int64_t)g.dn * g.C * g.H + g.dh) * g.W + g.dw;
    T acc = T(0);
    CUK_FOR(t, M)
    {
        const int64_t w = t % Ww + w0;
        int64_t r = t / Ww;
        const int64_t h = r % Hh + h0;
        r /= Hh;
        const int64_t c = r % g.C;
        const int64_t n = r / g.C + n0;
        const int64_t q = ((n * g.C + c) * g.H + h) * g.W + w;
        acc += fabs(x[q + shift] - x[q]);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <typename T>
static cudaError_t run_shift_l1_fwd(cudaStream_t s, shift_geom g, const T *x, T *loss, void *scratch)
{
    const int64_t M = (g.N - (g.dn < 0 ? -g.dn : g.dn)) * g.C * (g.H - (g.dh < 0 ? -g.dh : g.dh)) *
                      (g.W - (g.dw < 0 ? -g.dw : g.dw));
    const unsigned np = cuk_partials(M);
    T *part = cuk_part_sums<T>(scratch);
    k_shift_l1_partial<T><<<np, CUK_BLOCK, 0, s>>>(g, M, x, part);
    k_finalize<T><<<1, CUK_BLOCK, 0, s>>>(part, NULL, (int64_t)np, (T)M, loss);
    return cuk_status();
}

extern "C" int64_t cuk_shift_l1_scratch(void)
{
    return CUK_REDUCE_SCRATCH;
}

extern "C" cudaError_t cuk_shift_l1_fwd(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t H,
                                       int64_t W, int dn, int dh, int dw, const void *x, void *loss,
                                       void *scratch)
{
    shift_geom g = {N, C, H, W, dn, dh, dw};
    if (dt == CUK_F64) return run_shift_l1_fwd<double>(s, g, (const double *)x, (double *)loss, scratch);
    return run_shift_l1_fwd<float>(s, g, (const float *)x, (float *)loss, scratch);
}

__device__ __forceinline__ bool inside(int64_t v, int64_t n)
{
    return v >= 0 && v < n;
}

/* dx[p] = dloss/M * ( sign(x[p] - x[p - shift])   if p - shift is inside
 *                   - sign(x[p + shift] - x[p])   if p + shift is inside ) */
template <typename T>
__global__ void k_shift_l1_bwd(shift_geom g, int64_t M, const T *x, const T *dloss, T *dx)
{
    const T gr = M > 0 ? dloss[0] / (T)M : T(0); /* M <= 0: no pairs, no gradient */
    const int64_t shift = ((int64_t)g.dn * g.C * g.H + g.dh) * g.W + g.dw;
    CUK_FOR(p, g.N * g.C * g.H * g.W)
    {
        const int64_t w = p % g.W;
        int64_t r = p / g.W;
        const int64_t h = r % g.H;
        r /= g.H;
        const int64_t n = r / g.C;
        const T xp = x[p];
        T acc = T(0);
        if (inside(n - g.dn, g.N) && inside(h - g.dh, g.H) && inside(w - g.dw, g.W))
            acc += hk_sign(xp - x[p - shift]);
        if (inside(n + g.dn, g.N) && inside(h + g.dh, g.H) && inside(w + g.dw, g.W))
            acc -= hk_sign(x[p + shift] - xp);
        dx[p] = gr * acc;
    }
}

extern "C" cudaError_t cuk_shift_l1_bwd(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t H,
                                       int64_t W, int dn, int dh, int dw, const void *x,
                                       const void *dloss, void *dx)
{
    shift_geom g = {N, C, H, W, dn, dh, dw};
    const int64_t M = (N - (dn < 0 ? -dn : dn)) * C * (H - (dh < 0 ? -dh : dh)) * (W - (dw < 0 ? -dw : dw));
    const int64_t n = N * C * H * W;
    if (n <= 0) return cudaSuccess;
    const unsigned gr = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_shift_l1_bwd<double><<<gr, CUK_BLOCK, 0, s>>>(g, M, (const double *)x, (const double *)dloss,
                                                        (double *)dx);
    else
        k_shift_l1_bwd<float><<<gr, CUK_BLOCK, 0, s>>>(g, M, (const float *)x, (const float *)dloss,
                                                      (float *)dx);
    return cuk_status();
}
