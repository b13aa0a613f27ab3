/*
 * k_loss.cu - the losses: label-smoothed cross entropy (CE_LS), per-pixel
 * cross entropy with an ignore label (PIXEL_CE) and the batch-hard triplet
 * loss (TRIPLET).  Loss values stay on the device (no synchronisation).
 *
 * Each scalar loss is a two-pass reduction: per-row / per-block partial
 * sums in scratch memory, then k_finalize (one block, fixed order).
 */
#include "kcommon.cuh"

static inline int64_t align16(int64_t v)
{
    return (v + 15) & ~(int64_t)15;
}

/* ---- CE_LS -------------------------------------------------------------------- */

/* t_c = (1-eps)*[c == label] + eps/C;  row loss = sum_c t_c * (lse - x_c). */
template <typename T>
__global__ void k_ce_ls_rows(int64_t N, int64_t C, const T *x, const int64_t *labels, T eps,
                             T *rowloss, int *flag, int code)
{
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const T *row = x + n * C;
        const int64_t L = labels[n];
        T m = -cuk_lim<T>::inf();
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = cuk_max(m, row[c]);
        m = block_max(m);
        T sum = T(0);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += exp(row[c] - m);
        sum = block_sum(sum);
        const T lse = m + log(sum);
        const T off = eps / (T)C, on = (T(1) - eps) + eps / (T)C;
        T acc = T(0);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) acc += (c == L ? on : off) * (lse - row[c]);
        acc = block_sum(acc);
        if (threadIdx.x == 0) {
            if (L < 0 || L >= C) {
                cuk_flag(flag, code);
                rowloss[n] = cuk_lim<T>::nan();
            } else {
                rowloss[n] = acc;
            }
        }
    }
}

/* dlogits[n, c] = dloss/N * (softmax_c - t_c). */
template <typename T>
__global__ void k_ce_ls_bwd(int64_t N, int64_t C, const T *x, const int64_t *labels,
                            const T *dloss, T eps, T *dx, int *flag, int code)
{
    const T g = dloss[0] / (T)N;
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const T *row = x + n * C;
        T *drow = dx + n * C;
        const int64_t L = labels[n];
        T m = -cuk_lim<T>::inf();
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = cuk_max(m, row[c]);
        m = block_max(m);
        T sum = T(0);
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += exp(row[c] - m);
        sum = block_sum(sum);
        const bool bad = L < 0 || L >= C;
        if (bad && threadIdx.x == 0) cuk_flag(flag, code);
        const T off = eps / (T)C, on = (T(1) - eps) + eps / (T)C;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            const T t = c == L ? on : off;
            drow[c] = bad ? cuk_lim<T>::nan() : g * (exp(row[c] - m) / sum - t);
        }
    }
}

extern "C" int64_t cuk_ce_ls_scratch(int dt, int64_t N)
{
    return align16(N * (dt == CUK_F64 ? 8 : 4));
}

extern "C" cudaError_t cuk_ce_ls_fwd(cudaStream_t s, int dt, int64_t N, int64_t C,
                                    const void *logits, const int64_t *labels, double eps,
                                    void *loss, void *scratch, int *flag, int code)
{
    if (N <= 0 || C <= 0) return cudaErrorInvalidValue; /* the host rejects these */
    const unsigned g = cuk_grid(N, 1);
    if (dt == CUK_F64) {
        double *rows = (double *)scratch;
        k_ce_ls_rows<double><<<g, CUK_BLOCK, 0, s>>>(N, C, (const double *)logits, labels, eps, rows,
                                                     flag, code);
        k_finalize<double><<<1, CUK_BLOCK, 0, s>>>(rows, NULL, N, (double)N, (double *)loss);
    } else {
        float *rows = (float *)scratch;
        k_ce_ls_rows<float><<<g, CUK_BLOCK, 0, s>>>(N, C, (const float *)logits, labels, (float)eps,
                                                   rows, flag, code);
        k_finalize<float><<<1, CUK_BLOCK, 0, s>>>(rows, NULL, N, (float)N, (float *)loss);
    }
    return cuk_status();
}

extern "C" cudaError_t cuk_ce_ls_bwd(cudaStream_t s, int dt, int64_t N, int64_t C,
                                    const void *logits, const int64_t *labels, const void *dloss,
                                    double eps, void *dlogits, int *flag, int code)
{
    if (N <= 0 || C <= 0) return cudaErrorInvalidValue;
    const unsigned g = cuk_grid(N, 1);
    if (dt == CUK_F64)
        k_ce_ls_bwd<double><<<g, CUK_BLOCK, 0, s>>>(N, C, (const double *)logits, labels,
                                                    (const double *)dloss, eps, (double *)dlogits,
                                                    flag, code);
    else
        k_ce_ls_bwd<float><<<g, CUK_BLOCK, 0, s>>>(N, C, (const float *)logits, labels,
                                                  (const float *)dloss, (float)eps,
                                                  (float *)dlogits, flag, code);
    return cuk_status();
}

/* ---- PIXEL_CE ------------------------------------------------------------------- */

/* logits [N, K, hw], labels [N, hw]; pixel i = n*hw + s. */
template <typename T>
__device__ __forceinline__ T pixel_lse(const T *base, int64_t K, int64_t hw, T &m)
{
    m = -cuk_lim<T>::inf();
    for (int64_t k = 0; k < K; ++k) m = cuk_max(m, base[k * hw]);
    T sum = T(0);
    for (int64_t k = 0; k < K; ++k) sum += exp(base[k * hw] - m);
    return sum;
}

template <typename T>
__global__ void k_pixel_ce_partial(int64_t P, int64_t K, int64_t hw, const T *x,
                                   const int64_t *labels, int64_t ignore, T *sums,
                                   long long *counts, int *flag, int code)
{
    T acc = T(0);
    long long cnt = 0;
    CUK_FOR(i, P)
    {
        const int64_t L = labels[i];
        if (L == ignore) continue;
        ++cnt;
        if (L < 0 || L >= K) {
            cuk_flag(flag, code);
            acc += cuk_lim<T>::nan();
            continue;
        }
        const int64_t n = i / hw, sp = i % hw;
        const T *base = x + n * K * hw + sp;
        T m;
        const T sum = pixel_lse(base, K, hw, m);
        acc += (m + log(sum)) - base[L * hw];
    }
    acc = block_sum(acc);
    cnt = block_sum(cnt);
    if (threadIdx.x == 0) {
        sums[blockIdx.x] = acc;
        counts[blockIdx.x] = cnt;
    }
}

__global__ void k_pixel_count_partial(int64_t P, const int64_t *labels, int64_t ignore,
                                      long long *counts)
{
    long long cnt = 0;
    CUK_FOR(i, P) cnt += labels[i] != ignore;
    cnt = block_sum(cnt);
    if (threadIdx.x == 0) counts[blockIdx.x] = cnt;
}

/* total = sum of g partial counts, stored at *total. */
__global__ void k_count_total(const long long *counts, int64_t g, long long *total)
{
    long long c = 0;
    for (int64_t i = threadIdx.x; i < g; i += blockDim.x) c += counts[i];
    c = block_sum(c);
    if (threadIdx.x == 0) *total = c;
}

/* dlogits[n, k, s] = dloss/count * (softmax_k - [k == label]); 0 on ignored pixels. */
template <typename T>
__global__ void k_pixel_ce_bwd(int64_t P, int64_t K, int64_t hw, const T *x,
                               const int64_t *labels, int64_t ignore, const T *dloss,
                               const long long *total, T *dx, int *flag, int code)
{
    const long long cnt = *total;
    const T g = cnt > 0 ? dloss[0] / (T)cnt : T(0);
    CUK_FOR(i, P)
    {
        const int64_t L = labels[i];
        const int64_t n = i / hw, sp = i % hw;
        const T *base = x + n * K * hw + sp;
        T *dbase = dx + n * K * hw + sp;
        if (L == ignore) {
            for (int64_t k = 0; k < K; ++k) dbase[k * hw] = T(0);
            continue;
        }
        if (L < 0 || L >= K) {
            cuk_flag(flag, code);
            for (int64_t k = 0; k < K; ++k) dbase[k * hw] = cuk_lim<T>::nan();
            continue;
        }
        T m;
        const T sum = pixel_lse(base, K, hw, m);
        for (int64_t k = 0; k < K; ++k)
            dbase[k * hw] = g * (exp(base[k * hw] - m) / sum - (k == L ? T(1) : T(0)));
    }
}

extern "C" int64_t cuk_pixel_ce_scratch(void)
{
    return CUK_REDUCE_SCRATCH;
}

extern "C" cudaError_t cuk_pixel_ce_fwd(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t hw,
                                       const void *logits, const int64_t *labels, int64_t ignore,
                                       void *loss, void *scratch, int *flag, int code)
{
    const int64_t P = N * hw;
    const unsigned g = cuk_partials(P);
    long long *counts = cuk_part_counts(scratch);
    if (dt == CUK_F64) {
        double *sums = cuk_part_sums<double>(scratch);
        k_pixel_ce_partial<double><<<g, CUK_BLOCK, 0, s>>>(P, K, hw, (const double *)logits, labels,
                                                           ignore, sums, counts, flag, code);
        k_finalize<double><<<1, CUK_BLOCK, 0, s>>>(sums, counts, (int64_t)g, 0.0, (double *)loss);
    } else {
        float *sums = cuk_part_sums<float>(scratch);
        k_pixel_ce_partial<float><<<g, CUK_BLOCK, 0, s>>>(P, K, hw, (const float *)logits, labels,
                                                         ignore, sums, counts, flag, code);
        k_finalize<float><<<1, CUK_BLOCK, 0, s>>>(sums, counts, (int64_t)g, 0.0f, (float *)loss);
    }
    return cuk_status();
}

extern "C" cudaError_t cuk_pixel_ce_bwd(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t hw,
                                       const void *logits, const int64_t *labels, int64_t ignore,
                                       const void *dloss, void *dlogits, void *scratch, int *flag,
                                       int code)
{
    const int64_t P = N * hw;
    if (P <= 0) return cudaSuccess;
    const unsigned g = cuk_partials(P);
    long long *counts = cuk_part_counts(scratch);
    long long *total = (long long *)((char *)scratch + CUK_MAX_PARTIALS * 16);
    k_pixel_count_partial<<<g, CUK_BLOCK, 0, s>>>(P, labels, ignore, counts);
    k_count_total<<<1, CUK_BLOCK, 0, s>>>(counts, (int64_t)g, total);
    const unsigned ge = cuk_grid(P, CUK_BLOCK);
    if (dt == CUK_F64)
        k_pixel_ce_bwd<double><<<ge, CUK_BLOCK, 0, s>>>(P, K, hw, (const double *)logits, labels,
                                                        ignore, (const double *)dloss, total,
                                                        (double *)dlogits, flag, code);
    else
        k_pixel_ce_bwd<float><<<ge, CUK_BLOCK, 0, s>>>(P, K, hw, (const float *)logits, labels,
                                                      ignore, (const float *)dloss, total,
                                                      (float *)dlogits, flag, code);
    return cuk_status();
}

/* ---- TRIPLET (batch hard) -------------------------------------------------------- */

/* d(i,j) = sqrt(max(|xi|^2 + |xj|^2 - 2 xi.xj, 1e-12)); *sq gets the
 * unclamped squared distance.  Not inlined on purpose: the forward (mining)
 * and the backward (hinge test, gradient) must compute bit-identical
 * distances, so both call this one compiled function.  Symmetric in i, j. */
template <typename T>
__device__ __noinline__ T tri_dist(const T *x, int64_t i, int64_t j, int64_t D, T *sq)
{
    const T *a = x + i * D, *b = x + j * D;
    T na = T(0), nb = T(0), dot = T(0);
    for (int64_t k = 0; k < D; ++k) {
        const T u = a[k], v = b[k];
        na += u * u;
        nb += v * v;
        dot += u * v;
    }
    const T s = (na + nb) - T(2) * dot;
    *sq = s;
    return sqrt(s > T(1e-12) ? s : T(1e-12));
}

template <typename T> struct tri_layout {
    T *dist;          /* [N*N] (forward) */
    T *loss;          /* [N]   per-anchor hinge (forward) */
    long long *count; /* [N]   1 if the anchor has a negative (forward) */
    T *coef;          /* [2N]  per-anchor gradient coefficients (backward) */
};

template <typename T> static tri_layout<T> tri_split(void *scratch, int64_t N)
{
    tri_layout<T> l;
    char *p = (char *)scratch;
    l.dist = (T *)p;
    p += align16(N * N * (int64_t)sizeof(T));
    l.loss = (T *)p;
    p += align16(N * (int64_t)sizeof(T));
    l.count = (long long *)p;
    l.coef = (T *)scratch; /* the backward reuses the start */
    return l;
}

extern "C" int64_t cuk_triplet_scratch(int dt, int64_t N)
{
    const int64_t es = dt == CUK_F64 ? 8 : 4;
    const int64_t fwd = align16(N * N * es) + align16(N * es) + align16(N * 8);
    const int64_t bwd = align16(2 * N * es);
    return fwd > bwd ? fwd : bwd;
}

template <typename T> __global__ void k_tri_dist(int64_t N, int64_t D, const T *x, T *dist)
{
    CUK_FOR(e, N * N)
    {
        T sq;
        dist[e] = tri_dist(x, e / N, e % N, D, &sq);
    }
}

/* Per anchor: hardest positive (max d, same label, may be itself), hardest
 * negative (min d, other label); ties keep the lowest index. */
template <typename T>
__global__ void k_tri_mine(int64_t N, const T *dist, const int64_t *labels, T margin,
                           int64_t *hard, T *loss, long long *count)
{
    CUK_FOR(i, N)
    {
        const int64_t li = labels[i];
        const T *row = dist + i * N;
        int64_t ip = -1, in = -1;
        T bp = T(0), bn = T(0);
        for (int64_t j = 0; j < N; ++j) {
            const T d = row[j];
            if (labels[j] == li) {
                if (ip < 0 || d > bp) {
                    bp = d;
                    ip = j;
                }
            } else if (in < 0 || d < bn) {
                bn = d;
                in = j;
            }
        }
        hard[2 * i] = ip;
        hard[2 * i + 1] = in;
        if (in >= 0) {
            const T h = (bp - bn) + margin;
            loss[i] = (h > T(0) || h != h) ? h : T(0); /* NaN propagates */
            count[i] = 1;
        } else {
            loss[i] = T(0);
            count[i] = 0;
        }
    }
}

template <typename T>
static cudaError_t run_triplet_fwd(cudaStream_t s, int64_t N, int64_t D, const T *x,
                                   const int64_t *labels, T margin, T *loss, int64_t *hard,
                                   void *scratch)
{
    tri_layout<T> l = tri_split<T>(scratch, N);
    k_tri_dist<T><<<cuk_grid(N * N, CUK_BLOCK), CUK_BLOCK, 0, s>>>(N, D, x, l.dist);
    k_tri_mine<T><<<cuk_grid(N, CUK_BLOCK), CUK_BLOCK, 0, s>>>(N, l.dist, labels, margin, hard, l.loss,
                                                             l.count);
    k_finalize<T><<<1, CUK_BLOCK, 0, s>>>(l.loss, l.count, N, T(0), loss);
    return cuk_status();
}

extern "C" cudaError_t cuk_triplet_fwd(cudaStream_t s, int dt, int64_t N, int64_t D, const void *x,
                                      const int64_t *labels, double margin, void *loss,
                                      int64_t *hard, void *scratch)
{
    if (N <= 0) return cudaErrorInvalidValue;
    if (dt == CUK_F64)
        return run_triplet_fwd<double>(s, N, D, (const double *)x, labels, margin, (double *)loss,
                                       hard, scratch);
    return run_triplet_fwd<float>(s, N, D, (const float *)x, labels, (float)margin, (float *)loss,
                                  hard, scratch);
}

/* One block.  M = number of anchors with a negative; for an anchor with an
 * active hinge (d_ap - d_an + margin >= 0), g = dloss/M and
 *   coef[2i] = g / d_ap,  coef[2i+1] = g / d_an
 * (0 where the squared distance was clamped below 1e-12: no gradient there). */
template <typename T>
__global__ void k_tri_coef(int64_t N, int64_t D, const T *x, const int64_t *hard, const T *dloss,
                           T margin, T *coef, int *flag, int code)
{
    long long m = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) m += hard[2 * i + 1] >= 0;
    m = block_sum(m);
    const T g = m > 0 ? dloss[0] / (T)m : T(0);
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const int64_t ip = hard[2 * i], in = hard[2 * i + 1];
        T cp = T(0), cn = T(0);
        if (ip < -1 || ip >= N || in < -1 || in >= N || (in >= 0 && ip < 0)) {
            cuk_flag(flag, code);
        } else if (in >= 0) {
            T sap, san;
            const T dap = tri_dist(x, i, ip, D, &sap);
            const T dan = tri_dist(x, i, in, D, &san);
            /* >= 0: torch's clamp_min(0) passes the gradient at the kink */
            if ((dap - dan) + margin >= T(0)) {
                cp = sap >= T(1e-12) ? g / dap : T(0);
                cn = san >= T(1e-12) ? g / dan : T(0);
            }
        }
        coef[2 * i] = cp;
        coef[2 * i + 1] = cn;
    }
}

/* dx[r, k] = sum over anchors i of
 *   [i == r]   (cp_i (x_r - x_p) - cn_i (x_r - x_n))
 * + [p_i == r]  cp_i (x_r - x_i)
 * - [n_i == r]  cn_i (x_r - x_i)
 * (gather form: one thread per element, anchors in index order). */
template <typename T>
__global__ void k_tri_grad(int64_t N, int64_t D, const T *x, const int64_t *hard, const T *coef,
                           T *dx)
{
    CUK_FOR(e, N * D)
    {
        const int64_t r = e / D, k = e % D;
        const T xr = x[e];
        T acc = T(0);
        for (int64_t i = 0; i < N; ++i) {
            const T cp = coef[2 * i], cn = coef[2 * i + 1];
            if (cp == T(0) && cn == T(0)) continue;
            const int64_t ip = hard[2 * i], in = hard[2 * i + 1];
            if (i == r) acc += cp * (xr - x[ip * D + k]) - cn * (xr - x[in * D + k]);
            if (ip == r) acc += cp * (xr - x[i * D + k]);
            if (in == r) acc -= cn * (xr - x[i * D + k]);
        }
        dx[e] = acc;
    }
}

template <typename T>
static cudaError_t run_triplet_bwd(cudaStream_t s, int64_t N, int64_t D, const T *x,
                                   const int64_t *hard, const T *dloss, T margin, T *dx,
                                   void *scratch, int *flag, int code)
{
    tri_layout<T> l = tri_split<T>(scratch, N);
    k_tri_coef<T><<<1, CUK_BLOCK, 0, s>>>(N, D, x, hard, dloss, margin, l.coef, flag, code);
    k_tri_grad<T><<<cuk_grid(N * D, CUK_BLOCK), CUK_BLOCK, 0, s>>>(N, D, x, hard, l.coef, dx);
    return cuk_status();
}

extern "C" cudaError_t cuk_triplet_bwd(cudaStream_t s, int dt, int64_t N, int64_t D, const void *x,
                                      const int64_t *hard, const void *dloss, double margin,
                                      void *dx, void *scratch, int *flag, int code)
{
    if (N <= 0 || D <= 0) return cudaSuccess;
    if (dt == CUK_F64)
        return run_triplet_bwd<double>(s, N, D, (const double *)x, hard, (const double *)dloss,
                                       margin, (double *)dx, scratch, flag, code);
    return run_triplet_bwd<float>(s, N, D, (const float *)x, hard, (const float *)dloss,
                                  (float)margin, (float *)dx, scratch, flag, code);
}
