/*
 * k_elementwise.cu - pointwise kernels: activations, broadcasting ADD/MUL,
 * strided COPY with conversion, FILL, REDUCE_BWD, GAP_BWD, nearest
 * upsampling, CONCAT/SPLIT and the optimizer steps.
 *
 * Every output element is written by exactly one thread (gather form), so
 * none of these kernels needs atomics.
 */
#include "kcommon.cuh"

/* ---- activations ------------------------------------------------------ */

template <typename T>
__global__ void k_pointwise(int kind, int64_t n, const T *a, const T *b, T *y, T p)
{
    CUK_FOR(i, n)
    {
        const T av = a[i];
        T r;
        switch (kind) {
        case CUK_PW_RELU_FWD: r = (av > T(0) || av != av) ? av : T(0); break; /* NaN propagates */
        case CUK_PW_RELU_BWD: r = hk_relu_bwd(av, b[i]); break;
        case CUK_PW_SIGMOID_FWD: r = hk_sigmoid(av); break;
        case CUK_PW_SIGMOID_BWD: r = hk_sigmoid_bwd(av, b[i]); break;
        case CUK_PW_THRESH_FWD: r = hk_thresh(av, p); break;
        case CUK_PW_THRESH_BWD: r = hk_thresh_bwd(av, b[i], p); break;
        default: r = p * av; break; /* CUK_PW_SCALE */
        }
        y[i] = r;
    }
}

extern "C" cudaError_t cuk_pointwise(cudaStream_t s, int dt, int kind, int64_t n, const void *a,
                                    const void *b, void *y, double p)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_pointwise<double><<<g, CUK_BLOCK, 0, s>>>(kind, n, (const double *)a, (const double *)b,
                                                    (double *)y, p);
    else
        k_pointwise<float><<<g, CUK_BLOCK, 0, s>>>(kind, n, (const float *)a, (const float *)b,
                                                  (float *)y, (float)p);
    return cuk_status();
}

/* ---- broadcasting binary ops ------------------------------------------- */

/* Offsets of element i (C order over v.shape) in a and b. */
__device__ __forceinline__ void view_ab(const cuk_view &v, int64_t i, int64_t &oa, int64_t &ob)
{
    oa = 0;
    ob = 0;
    for (int d = v.nd - 1; d >= 0; --d) {
        const int64_t c = i % v.shape[d];
        i /= v.shape[d];
        oa += c * v.sa[d];
        ob += c * v.sb[d];
    }
}

template <typename T, bool MUL, bool BC>
__global__ void k_binary(cuk_view v, int64_t n, const T *a, const T *b, T *y, T alpha, T beta)
{
    CUK_FOR(i, n)
    {
        int64_t oa = i, ob = i;
        if (BC) view_ab(v, i, oa, ob);
        const T av = a[oa], bv = b[ob];
        y[i] = MUL ? alpha * av * bv : alpha * av + beta * bv;
    }
}

template <typename T>
static cudaError_t run_binary(cudaStream_t s, int is_mul, const cuk_view *v, int64_t n, const T *a,
                              const T *b, T *y, T alpha, T beta)
{
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    cuk_view none = {}; /* nd = 0: unused without broadcasting */
    if (v) {
        if (is_mul)
            k_binary<T, true, true><<<g, CUK_BLOCK, 0, s>>>(*v, n, a, b, y, alpha, beta);
        else
            k_binary<T, false, true><<<g, CUK_BLOCK, 0, s>>>(*v, n, a, b, y, alpha, beta);
    } else {
        if (is_mul)
            k_binary<T, true, false><<<g, CUK_BLOCK, 0, s>>>(none, n, a, b, y, alpha, beta);
        else
            k_binary<T, false, false><<<g, CUK_BLOCK, 0, s>>>(none, n, a, b, y, alpha, beta);
    }
    return cuk_status();
}

extern "C" cudaError_t cuk_binary(cudaStream_t s, int dt, int is_mul, const cuk_view *v, int64_t n,
                                 const void *a, const void *b, void *y, double alpha, double beta)
{
    if (n <= 0) return cudaSuccess;
    if (dt == CUK_F64)
        return run_binary<double>(s, is_mul, v, n, (const double *)a, (const double *)b,
                                  (double *)y, alpha, beta);
    return run_binary<float>(s, is_mul, v, n, (const float *)a, (const float *)b, (float *)y,
                             (float)alpha, (float)beta);
}

/* ---- COPY ---------------------------------------------------------------- */

template <typename TI, typename TO>
__global__ void k_copy(cuk_view v, int64_t n, const TI *x, TO *y)
{
    CUK_FOR(i, n)
    {
        int64_t ox = 0, oy = 0, r = i;
        for (int d = v.nd - 1; d >= 0; --d) {
            const int64_t c = r % v.shape[d];
            r /= v.shape[d];
            ox += c * v.sa[d];
            oy += c * v.sy[d];
        }
        y[oy] = (TO)x[ox];
    }
}

static int cuk_esize(int dt)
{
    switch (dt) {
    case 0: return 4; /* F32 */
    case 1: return 8; /* F64 */
    case 2: return 4; /* I32 */
    case 3: return 8; /* I64 */
    case 4: return 1; /* U8 */
    default: return 0;
    }
}

extern "C" cudaError_t cuk_copy(cudaStream_t s, int dt_in, int dt_out, const cuk_view *v, int64_t n,
                               const void *x, void *y)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt_in == CUK_F32 && dt_out == CUK_F64) {
        k_copy<float, double><<<g, CUK_BLOCK, 0, s>>>(*v, n, (const float *)x, (double *)y);
    } else if (dt_in == CUK_F64 && dt_out == CUK_F32) {
        k_copy<double, float><<<g, CUK_BLOCK, 0, s>>>(*v, n, (const double *)x, (float *)y);
    } else if (dt_in == dt_out) {
        switch (cuk_esize(dt_in)) {
        case 1: k_copy<uint8_t, uint8_t><<<g, CUK_BLOCK, 0, s>>>(*v, n, (const uint8_t *)x, (uint8_t *)y); break;
        case 4: k_copy<uint32_t, uint32_t><<<g, CUK_BLOCK, 0, s>>>(*v, n, (const uint32_t *)x, (uint32_t *)y); break;
        case 8: k_copy<uint64_t, uint64_t><<<g, CUK_BLOCK, 0, s>>>(*v, n, (const uint64_t *)x, (uint64_t *)y); break;
        default: return cudaErrorInvalidValue;
        }
    } else {
        return cudaErrorInvalidValue;
    }
    return cuk_status();
}

/* ---- FILL ---------------------------------------------------------------- */

template <typename T> __global__ void k_fill(int64_t n, T *y, T v)
{
    CUK_FOR(i, n) y[i] = v;
}

extern "C" cudaError_t cuk_fill(cudaStream_t s, int dt, int64_t n, void *y, double v)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    switch (dt) {
    case 0: k_fill<float><<<g, CUK_BLOCK, 0, s>>>(n, (float *)y, (float)v); break;
    case 1: k_fill<double><<<g, CUK_BLOCK, 0, s>>>(n, (double *)y, v); break;
    case 2: k_fill<int32_t><<<g, CUK_BLOCK, 0, s>>>(n, (int32_t *)y, (int32_t)v); break;
    case 3: k_fill<int64_t><<<g, CUK_BLOCK, 0, s>>>(n, (int64_t *)y, (int64_t)v); break;
    case 4: k_fill<uint8_t><<<g, CUK_BLOCK, 0, s>>>(n, (uint8_t *)y, (uint8_t)v); break;
    default: return cudaErrorInvalidValue;
    }
    return cuk_status();
}

/* ---- REDUCE_BWD, GAP_BWD --------------------------------------------------- */

template <typename T>
__global__ void k_reduce_bwd(int kind, int64_t n, const T *x, const T *dy, T *dx)
{
    const T g = kind == CUK_RED_SUM ? dy[0] : dy[0] / (T)n;
    CUK_FOR(i, n) dx[i] = kind == CUK_RED_ABS_MEAN ? g * hk_sign(x[i]) : g;
}

extern "C" cudaError_t cuk_reduce_bwd(cudaStream_t s, int dt, int kind, int64_t n, const void *x,
                                     const void *dy, void *dx)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_reduce_bwd<double><<<g, CUK_BLOCK, 0, s>>>(kind, n, (const double *)x, (const double *)dy,
                                                     (double *)dx);
    else
        k_reduce_bwd<float><<<g, CUK_BLOCK, 0, s>>>(kind, n, (const float *)x, (const float *)dy,
                                                   (float *)dx);
    return cuk_status();
}

template <typename T> __global__ void k_gap_bwd(int64_t nc, int64_t hw, const T *dy, T *dx)
{
    CUK_FOR(i, nc * hw) dx[i] = dy[i / hw] / (T)hw;
}

extern "C" cudaError_t cuk_gap_bwd(cudaStream_t s, int dt, int64_t nc, int64_t hw, const void *dy,
                                  void *dx)
{
    if (nc <= 0 || hw <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(nc * hw, CUK_BLOCK);
    if (dt == CUK_F64)
        k_gap_bwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, hw, (const double *)dy, (double *)dx);
    else
        k_gap_bwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, hw, (const float *)dy, (float *)dx);
    return cuk_status();
}

/* ---- nearest upsampling ---------------------------------------------------- */

/* y[nc, oh, ow] = x[nc, oh / f, ow / f] with OH = H*f, OW = W*f. */
template <typename T>
__global__ void k_upsample_fwd(int64_t nc, int64_t H, int64_t W, int f, const T *x, T *y)
{
    const int64_t OH = H * f, OW = W * f;
    CUK_FOR(i, nc * OH * OW)
    {
        const int64_t ow = i % OW;
        const int64_t t = i / OW;
        const int64_t oh = t % OH;
        const int64_t p = t / OH;
        y[i] = x[(p * H + oh / f) * W + ow / f];
    }
}

/* dx[nc, h, w] = sum over the f x f block of dy starting at (h*f, w*f). */
template <typename T>
__global__ void k_upsample_bwd(int64_t nc, int64_t H, int64_t W, int f, const T *dy, T *dx)
{
    const int64_t OH = H * f, OW = W * f;
    CUK_FOR(i, nc * H * W)
    {
        const int64_t w = i % W;
        const int64_t t = i / W;
        const int64_t h = t % H;
        const int64_t p = t / H;
        const T *src = dy + (p * OH + h * f) * OW + w * f;
        T acc = T(0);
        for (int a = 0; a < f; ++a)
            for (int b = 0; b < f; ++b) acc += src[(int64_t)a * OW + b];
        dx[i] = acc;
    }
}

extern "C" cudaError_t cuk_upsample_fwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W,
                                       int f, const void *x, void *y)
{
    const int64_t n = nc * H * W * f * f;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_upsample_fwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, f, (const double *)x, (double *)y);
    else
        k_upsample_fwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, f, (const float *)x, (float *)y);
    return cuk_status();
}

extern "C" cudaError_t cuk_upsample_bwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W,
                                       int f, const void *dy, void *dx)
{
    const int64_t n = nc * H * W;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_upsample_bwd<double><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, f, (const double *)dy, (double *)dx);
    else
        k_upsample_bwd<float><<<g, CUK_BLOCK, 0, s>>>(nc, H, W, f, (const float *)dy, (float *)dx);
    return cuk_status();
}

/* ---- CONCAT / SPLIT along dim 1 ---------------------------------------------- */

/* One thread per element of the concatenated tensor y[outer, C, inner]; it
 * finds the part holding channel c and copies in the requested direction. */
template <typename E>
__global__ void k_concat(cuk_parts parts, int split, int64_t outer, int64_t C, int64_t inner, E *y)
{
    CUK_FOR(i, outer * C * inner)
    {
        const int64_t s = i % inner;
        const int64_t t = i / inner;
        const int64_t c = t % C;
        const int64_t o = t / C;
        int p = 0;
        int64_t off = 0;
        while (p < parts.n - 1 && c >= off + parts.c[p]) {
            off += parts.c[p];
            ++p;
        }
        E *part = (E *)parts.ptr[p];
        const int64_t j = (o * parts.c[p] + (c - off)) * inner + s;
        if (split)
            part[j] = y[i];
        else
            y[i] = part[j];
    }
}

extern "C" cudaError_t cuk_concat(cudaStream_t s, int esize, int split, const cuk_parts *parts,
                                 int64_t outer, int64_t C, int64_t inner, void *y)
{
    const int64_t n = outer * C * inner;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    switch (esize) {
    case 1: k_concat<uint8_t><<<g, CUK_BLOCK, 0, s>>>(*parts, split, outer, C, inner, (uint8_t *)y); break;
    case 4: k_concat<uint32_t><<<g, CUK_BLOCK, 0, s>>>(*parts, split, outer, C, inner, (uint32_t *)y); break;
    case 8: k_concat<uint64_t><<<g, CUK_BLOCK, 0, s>>>(*parts, split, outer, C, inner, (uint64_t *)y); break;
    default: return cudaErrorInvalidValue;
    }
    return cuk_status();
}

/* ---- optimizers ------------------------------------------------------------- */

/* torch.optim.Adam (not AdamW), one element per thread (hk_adam: shared math). */
template <typename T>
__global__ void k_adam(int64_t n, const T *grad, T *param, T *m, T *v, T step_size, T b1, T b2,
                       T eps, T wd, T sqrt_bc2)
{
    CUK_FOR(i, n)
    {
        T p = param[i], mi = m[i], vi = v[i];
        hk_adam(grad[i], &p, &mi, &vi, b1, b2, step_size, sqrt_bc2, eps, wd);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
    }
}

extern "C" cudaError_t cuk_adam(cudaStream_t s, int dt, int64_t n, const void *grad, void *param,
                               void *m, void *v, double step_size, double b1, double b2,
                               double eps, double wd, double sqrt_bc2)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_adam<double><<<g, CUK_BLOCK, 0, s>>>(n, (const double *)grad, (double *)param,
                                               (double *)m, (double *)v, step_size, b1, b2, eps, wd,
                                               sqrt_bc2);
    else
        k_adam<float><<<g, CUK_BLOCK, 0, s>>>(n, (const float *)grad, (float *)param, (float *)m,
                                             (float *)v, (float)step_size, (float)b1, (float)b2,
                                             (float)eps, (float)wd, (float)sqrt_bc2);
    return cuk_status();
}

/* torch.optim.SGD with momentum, no dampening, no Nesterov (hk_sgd: shared math). */
template <typename T>
__global__ void k_sgd(int64_t n, const T *grad, T *param, T *buf, T lr, T momentum, T wd,
                      int first)
{
    CUK_FOR(i, n)
    {
        T p = param[i], b = first ? T(0) : buf[i];
        hk_sgd(grad[i], &p, &b, lr, momentum, wd, first);
        buf[i] = b;
        param[i] = p;
    }
}

extern "C" cudaError_t cuk_sgd(cudaStream_t s, int dt, int64_t n, const void *grad, void *param,
                              void *buf, double lr, double momentum, double wd, int first)
{
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_sgd<double><<<g, CUK_BLOCK, 0, s>>>(n, (const double *)grad, (double *)param,
                                              (double *)buf, lr, momentum, wd, first);
    else
        k_sgd<float><<<g, CUK_BLOCK, 0, s>>>(n, (const float *)grad, (float *)param, (float *)buf,
                                            (float)lr, (float)momentum, (float)wd, first);
    return cuk_status();
}
