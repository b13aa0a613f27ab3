/*
 * cpu_kernels.h - every kernel of the CPU backend, written once for a
 * floating type T.  cpu_ops.c includes this file twice:
 *     T = float,  SFX = f32, CPU_GEMM = cblas_sgemm
 *     T = double, SFX = f64, CPU_GEMM = cblas_dgemm
 * (no include guard on purpose).  Shapes, dtypes and slots were validated by
 * the contract checker (hcga_contract.c) before the op ran; the kernels only
 * compute.  Sums are accumulated in double for
 * both types, in an order fixed by the problem (not by the thread count).
 */
#ifndef T
#error "cpu_kernels.h needs T, SFX and CPU_GEMM"
#endif

#define CPU_CAT2(a, b) a##_##b
#define CPU_CAT(a, b) CPU_CAT2(a, b)
#define FN(name) CPU_CAT(name, SFX)

/* ======================================================================= */
/* Elementwise                                                             */
/* ======================================================================= */

/* The smallest T >= s: for every T x, x < result <=> (double)x < s.  (Only
 * f32 can round s down.) */
static inline T FN(thresh_t)(double s)
{
    T t = (T)s;
    if ((double)t < s) t = (T)nextafterf((float)t, INFINITY);
    return t;
}

static void FN(ew_task)(void *vc, int64_t b0, int64_t e, int tid)
{
    (void)tid;
    const ew_ctx *c = vc;
    const T *a = c->a, *b = c->b;
    T *y = c->y;
    const double s = c->s;
    switch (c->kind) {
    case EW_RELU_F:
        for (int64_t i = b0; i < e; i++) y[i] = (a[i] > 0 || a[i] != a[i]) ? a[i] : (T)0;
        break;
    case EW_RELU_B: /* unconditional loads so the loop vectorises */
        for (int64_t i = b0; i < e; i++) {
            T g = b[i];
            y[i] = a[i] > 0 ? g : (T)0;
        }
        break;
    case EW_SIG_F:
        for (int64_t i = b0; i < e; i++) y[i] = (T)(1.0 / (1.0 + exp(-(double)a[i])));
        break;
    case EW_SIG_B:
        for (int64_t i = b0; i < e; i++) {
            double yy = a[i];
            y[i] = (T)((double)b[i] * yy * (1.0 - yy));
        }
        break;
    case EW_THR_F: {
        const T t = FN(thresh_t)(s);
        for (int64_t i = b0; i < e; i++) y[i] = a[i] < t ? (T)0 : a[i];
        break;
    }
    case EW_THR_B: {
        const T t = FN(thresh_t)(s);
        for (int64_t i = b0; i < e; i++) {
            T g = b[i];
            y[i] = a[i] < t ? (T)0 : g;
        }
        break;
    }
    case EW_FILL: {
        T v = (T)s;
        for (int64_t i = b0; i < e; i++) y[i] = v;
        break;
    }
    case EW_SIGN_MUL:
        for (int64_t i = b0; i < e; i++) {
            T xv = a[i];
            y[i] = xv > 0 ? (T)s : xv < 0 ? (T)(-s) : xv == 0 ? (T)0 : xv;
        }
        break;
    case EW_SCALE:
        for (int64_t i = b0; i < e; i++) y[i] = (T)(s * (double)a[i]);
        break;
    default: break;
    }
}

static void FN(ew)(hcga_backend *be, int kind, const void *a, const void *b, void *y, int64_t n,
                   double s)
{
    ew_ctx c = {kind, a, b, y, s};
    cpu_parallel(be, n, 16384, FN(ew_task), &c);
}

/* Broadcasting ADD / MUL: rows of the innermost coalesced dim. */
/* Tasks over (row, chunk of CPU_EW_CHUNK along the row): a same-shape
 * ADD/MUL coalesces into a single row, which must still split. */
static void FN(bin_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const bin_ctx *c = vc;
    const T *A = c->a, *B = c->b;
    T *Y = c->y;
    const int nd = c->nd;
    const int64_t L = c->len[nd - 1], nch = (L + CPU_EW_CHUNK - 1) / CPU_EW_CHUNK;
    const int64_t ia = c->sa[nd - 1], ib = c->sb[nd - 1];
    const double al = c->alpha, bt = c->beta;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t r = t / nch, j0 = t % nch * CPU_EW_CHUNK;
        const int64_t j1 = j0 + CPU_EW_CHUNK < L ? j0 + CPU_EW_CHUNK : L;
        int64_t oa = 0, ob = 0, oy = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t idx = rem % c->len[d];
            rem /= c->len[d];
            oa += idx * c->sa[d];
            ob += idx * c->sb[d];
            oy += idx * c->sy[d];
        }
        const T *pa = A + oa, *pb = B + ob;
        T *py = Y + oy;
        if (!c->mul) {
            if (ia && ib)
                for (int64_t j = j0; j < j1; j++) py[j] = (T)(al * (double)pa[j] + bt * (double)pb[j]);
            else
                for (int64_t j = j0; j < j1; j++)
                    py[j] = (T)(al * (double)pa[j * ia] + bt * (double)pb[j * ib]);
        } else {
            if (ia && ib)
                for (int64_t j = j0; j < j1; j++) py[j] = (T)(al * ((double)pa[j] * (double)pb[j]));
            else
                for (int64_t j = j0; j < j1; j++)
                    py[j] = (T)(al * ((double)pa[j * ia] * (double)pb[j * ib]));
        }
    }
}

static void FN(binary)(hcga_backend *be, bin_ctx *c)
{
    const int64_t L = c->len[c->nd - 1], nch = (L + CPU_EW_CHUNK - 1) / CPU_EW_CHUNK;
    const int64_t per = L < CPU_EW_CHUNK ? L : CPU_EW_CHUNK;
    const int64_t grain = per >= 16384 ? 1 : 16384 / (per ? per : 1);
    cpu_parallel(be, c->rows * nch, grain, FN(bin_task), c);
}

/* SUM_TO. */
static void FN(sumto_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const sumto_ctx *c = vc;
    const T *X = c->x;
    T *Y = c->y;
    for (int64_t t = t0; t < t1; t++) {
        int64_t o = c->last_kept ? t / c->nch : t;
        int64_t ch = c->last_kept ? t % c->nch : 0;
        int64_t xb = 0, rem = o;
        for (int d = c->nko - 1; d >= 0; d--) {
            xb += (rem % c->ko_len[d]) * c->ko_xs[d];
            rem /= c->ko_len[d];
        }
        if (c->last_kept) {
            double acc[CPU_VEC_CHUNK];
            int64_t j0 = ch * CPU_VEC_CHUNK, j1 = j0 + CPU_VEC_CHUNK;
            if (j1 > c->L) j1 = c->L;
            for (int64_t j = 0; j < j1 - j0; j++) acc[j] = 0;
            for (int64_t r = 0; r < c->R; r++) {
                int64_t xo = xb, rr = r;
                for (int d = c->nrd - 1; d >= 0; d--) {
                    xo += (rr % c->rd_len[d]) * c->rd_xs[d];
                    rr /= c->rd_len[d];
                }
                const T *px = X + xo + j0;
                for (int64_t j = 0; j < j1 - j0; j++) acc[j] += px[j];
            }
            T *py = Y + o * c->L + j0;
            for (int64_t j = 0; j < j1 - j0; j++) py[j] = (T)acc[j];
        } else {
            double acc = 0;
            for (int64_t r = 0; r < c->R; r++) {
                int64_t xo = xb, rr = r;
                for (int d = c->nrd - 1; d >= 0; d--) {
                    xo += (rr % c->rd_len[d]) * c->rd_xs[d];
                    rr /= c->rd_len[d];
                }
                const T *px = X + xo;
                for (int64_t j = 0; j < c->L; j++) acc += px[j];
            }
            Y[o] = (T)acc;
        }
    }
}

static void FN(sum_to)(hcga_backend *be, sumto_ctx *c)
{
    int64_t tasks = c->last_kept ? c->O * c->nch : c->O;
    int64_t per = c->last_kept ? c->R * CPU_VEC_CHUNK : c->R * c->L;
    int64_t grain = per >= 16384 ? 1 : 16384 / (per ? per : 1);
    cpu_parallel(be, tasks, grain, FN(sumto_task), c);
}

/* ======================================================================= */
/* Convolution: im2col / col2im + GEMM                                     */
/* ======================================================================= */

/* Valid output columns q in [*lo, *hi) for input column w = q*st + off. */
static inline void FN(qrange)(int64_t Q, int64_t W, int64_t st, int64_t off, int64_t *lo,
                              int64_t *hi)
{
    int64_t l = 0;
    if (off < 0) l = (-off + st - 1) / st;
    int64_t h;
    if (W - 1 - off < 0)
        h = 0;
    else
        h = (W - 1 - off) / st + 1;
    if (h > Q) h = Q;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[row = (c*R + r)*S + s][i*PQ + p*Q + q] = x[n0+i, c, p*sh-ph+r*dh, q*sw-pw+s*dw] */
static void FN(im2col_task)(void *vc, int64_t r0, int64_t r1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const T *X = c->x;
    T *col = c->col;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W;
    for (int64_t row = r0; row < r1; row++) {
        int64_t s = row % d->S, r = (row / d->S) % d->R, ch = row / (d->S * d->R);
        int64_t woff = s * d->dw - d->pw, hoff = r * d->dh - d->ph;
        int64_t qlo, qhi;
        FN(qrange)(d->Q, d->W, d->sw, woff, &qlo, &qhi);
        for (int64_t i = 0; i < c->cnt; i++) {
            const T *xp = X + ((c->n0 + i) * d->C + ch) * HW;
            T *dst = col + row * c->ld + i * PQ;
            for (int64_t p = 0; p < d->P; p++, dst += d->Q) {
                int64_t h = p * d->sh + hoff;
                if (h < 0 || h >= d->H) {
                    for (int64_t q = 0; q < d->Q; q++) dst[q] = 0;
                    continue;
                }
                const T *srow = xp + h * d->W;
                for (int64_t q = 0; q < qlo; q++) dst[q] = 0;
                if (d->sw == 1)
                    memcpy(dst + qlo, srow + qlo + woff, (size_t)(qhi - qlo) * sizeof(T));
                else
                    for (int64_t q = qlo; q < qhi; q++) dst[q] = srow[q * d->sw + woff];
                for (int64_t q = qhi; q < d->Q; q++) dst[q] = 0;
            }
        }
    }
}

/* dx[n0+i, c] = sum over (r,s,p,q) of col rows, accumulated in double. */
static void FN(col2im_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const T *col = c->col;
    T *DX = c->y;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W;
    double *acc = c->be->scratch[tid];
    for (int64_t t = t0; t < t1; t++) {
        int64_t i = t / d->C, ch = t % d->C;
        for (int64_t k = 0; k < HW; k++) acc[k] = 0;
        for (int64_t r = 0; r < d->R; r++) {
            int64_t hoff = r * d->dh - d->ph;
            for (int64_t s = 0; s < d->S; s++) {
                int64_t woff = s * d->dw - d->pw;
                int64_t qlo, qhi;
                FN(qrange)(d->Q, d->W, d->sw, woff, &qlo, &qhi);
                const T *crow = col + ((ch * d->R + r) * d->S + s) * c->ld + i * PQ;
                for (int64_t p = 0; p < d->P; p++) {
                    int64_t h = p * d->sh + hoff;
                    if (h < 0 || h >= d->H) continue;
                    double *arow = acc + h * d->W + woff;
                    const T *cp = crow + p * d->Q;
                    if (d->sw == 1)
                        for (int64_t q = qlo; q < qhi; q++) arow[q] += cp[q];
                    else
                        for (int64_t q = qlo; q < qhi; q++) arow[q * d->sw] += cp[q];
                }
            }
        }
        T *dst = DX + ((c->n0 + i) * d->C + ch) * HW;
        for (int64_t k = 0; k < HW; k++) dst[k] = (T)acc[k];
    }
}

/* y[n0+i, k, :] = tmp[k, i*PQ : (i+1)*PQ] (+ bias[k]), k < ch; tasks over
 * i*ch + k. */
static void FN(conv_scatter_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t PQ = d->P * d->Q, CH = c->ch;
    const T *tmp = c->src, *bias = c->bias;
    T *Y = c->y;
    for (int64_t t = t0; t < t1; t++) {
        int64_t i = t / CH, k = t % CH;
        const T *s = tmp + k * c->ld + i * PQ;
        T *dst = Y + ((c->n0 + i) * CH + k) * PQ;
        if (bias) {
            T bv = bias[k];
            for (int64_t j = 0; j < PQ; j++) dst[j] = s[j] + bv;
        } else if (s != dst) {
            memcpy(dst, s, (size_t)PQ * sizeof(T));
        }
    }
}

/* dyg[k, i*PQ : (i+1)*PQ] = dy[n0+i, k, :]; tasks over i*K + k. */
static void FN(conv_gather_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t PQ = d->P * d->Q;
    const T *DY = c->src;
    T *g = c->col;
    for (int64_t t = t0; t < t1; t++) {
        int64_t i = t / d->K, k = t % d->K;
        memcpy(g + k * c->ld + i * PQ, DY + ((c->n0 + i) * d->K + k) * PQ,
               (size_t)PQ * sizeof(T));
    }
}

static inline int FN(conv_pointwise)(const hcga_conv_dims *d)
{
    return d->R == 1 && d->S == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0;
}

/* Images per GEMM: enough columns to keep the GEMM efficient, bounded by a
 * workspace cap (rows = CRS + K per column), and no more than N / threads so
 * that every thread gets a group. */
static int64_t FN(conv_group)(const hcga_conv_dims *d, int64_t target_cols, int64_t cap_bytes,
                              int threads)
{
    int64_t PQ = d->P * d->Q;
    if (PQ <= 0 || d->N <= 1) return 1;
    int64_t nb = target_cols / PQ;
    if (nb < 1) nb = 1;
    if (nb > d->N) nb = d->N;
    if (threads > 1 && d->N >= threads) {
        int64_t share = (d->N + threads - 1) / threads;
        if (nb > share) nb = share;
    }
    int64_t per = (d->C * d->R * d->S + d->K) * PQ * (int64_t)sizeof(T);
    if (per > 0 && nb * per > cap_bytes) nb = cap_bytes / per;
    if (nb < 1) nb = 1;
    /* never more columns than an int can hold */
    while (nb > 1 && nb * PQ > INT32_MAX / 2) nb--;
    return nb;
}

#define CONV_CAP ((int64_t)128 << 20)

/* ---- GEMM split over the pool ---- */

static void FN(pgemm_task)(void *vc, int64_t p0, int64_t p1, int tid)
{
    (void)tid;
    const pgemm_ctx *g = vc;
    const T *A = g->a, *B = g->b;
    T *C = g->c;
    const int64_t len = g->split_m ? g->M : g->N;
    const int64_t units = (len + CPU_GEMM_UNIT - 1) / CPU_GEMM_UNIT;
    for (int64_t p = p0; p < p1; p++) {
        int64_t s0 = units * p / g->parts * CPU_GEMM_UNIT;
        int64_t s1 = units * (p + 1) / g->parts * CPU_GEMM_UNIT;
        if (s1 > len) s1 = len;
        if (s1 <= s0) continue;
        if (g->split_m)
            CPU_GEMM(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                     g->tb ? CblasTrans : CblasNoTrans, (int)(s1 - s0), (int)g->N, (int)g->K,
                     (T)g->alpha, g->ta ? A + s0 : A + s0 * g->lda, (int)g->lda, B, (int)g->ldb,
                     (T)g->beta, C + s0 * g->ldc, (int)g->ldc);
        else
            CPU_GEMM(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                     g->tb ? CblasTrans : CblasNoTrans, (int)g->M, (int)(s1 - s0), (int)g->K,
                     (T)g->alpha, A, (int)g->lda, g->tb ? B + s0 * g->ldb : B + s0, (int)g->ldb,
                     (T)g->beta, C + s0, (int)g->ldc);
    }
}

/* C = alpha op(A) op(B) + beta C (row-major), split along the longer of M
 * and N into one slice per thread.  Every element is computed by one BLAS
 * call over the full K, so the split only decides who computes it. */
static void FN(gemm_mt)(hcga_backend *be, int ta, int tb, int64_t M, int64_t N, int64_t K,
                        double alpha, const T *A, int64_t lda, const T *B, int64_t ldb,
                        double beta, T *C, int64_t ldc)
{
    cpu_blas_threads(be);
    const int split_m = M > N;
    const int64_t len = split_m ? M : N;
    int64_t parts = (len + CPU_GEMM_UNIT - 1) / CPU_GEMM_UNIT;
    if (parts > be->threads) parts = be->threads;
    if (parts < 2 || (double)M * (double)N * (double)K < CPU_GEMM_SPLIT_MIN) {
        CPU_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                 (int)M, (int)N, (int)K, (T)alpha, A, (int)lda, B, (int)ldb, (T)beta, C,
                 (int)ldc);
        return;
    }
    pgemm_ctx g = {.ta = ta, .tb = tb, .split_m = split_m, .M = M, .N = N, .K = K, .lda = lda,
                   .ldb = ldb, .ldc = ldc, .parts = parts, .alpha = alpha, .beta = beta,
                   .a = A, .b = B, .c = C};
    cpu_parallel(be, parts, 1, FN(pgemm_task), &g);
}

/* ---- convolution: image groups ---- */

/* Splits the op's ngroups image groups into parts for the pool; 1 means run
 * the groups one after another with each step parallelised instead. */
static int64_t FN(conv_parts)(hcga_backend *be, int64_t ngroups)
{
    int64_t parts = be->threads;
    if (parts > ngroups) parts = ngroups;
    return parts < 2 ? 1 : parts;
}

/* Forward of images [n0, n0 + cnt) in the calling thread. */
static void FN(conv_fwd_images)(const convp_ctx *c, int64_t n0, int64_t cnt, T *col, T *tmp,
                                int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q, cols = cnt * PQ;
    const T *x = c->x;
    T *y = c->y;
    const T *B;
    if (FN(conv_pointwise)(d) && cnt == 1) {
        B = x + n0 * d->C * PQ;
    } else {
        conv_ctx ic = {.d = d, .x = x, .col = col, .n0 = n0, .cnt = cnt, .ld = cols};
        FN(im2col_task)(&ic, 0, CRS, tid);
        B = col;
    }
    T *out = cnt == 1 ? y + n0 * d->K * PQ : tmp;
    CPU_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d->K, (int)cols, (int)CRS, 1,
             (const T *)c->w, (int)CRS, B, (int)cols, 0, out, (int)cols);
    if (cnt > 1 || c->bias) {
        conv_ctx sc = {.d = d, .src = out, .bias = c->bias, .y = y, .n0 = n0, .cnt = cnt,
                       .ld = cols, .ch = d->K};
        FN(conv_scatter_task)(&sc, 0, cnt * d->K, tid);
    }
}

/* Backward data of images [n0, n0 + cnt) in the calling thread. */
static void FN(conv_bwd_data_images)(const convp_ctx *c, int64_t n0, int64_t cnt, T *dcol,
                                     T *dyg, int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q, cols = cnt * PQ;
    const int pw1 = FN(conv_pointwise)(d);
    const T *dy = c->dy;
    T *dx = c->dx;
    const T *A;
    if (cnt == 1) {
        A = dy + n0 * d->K * PQ;
    } else {
        conv_ctx gc = {.d = d, .src = dy, .col = dyg, .n0 = n0, .cnt = cnt, .ld = cols};
        FN(conv_gather_task)(&gc, 0, cnt * d->K, tid);
        A = dyg;
    }
    T *out = pw1 && cnt == 1 ? dx + n0 * d->C * PQ : dcol;
    CPU_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)CRS, (int)cols, (int)d->K, 1,
             (const T *)c->w, (int)CRS, A, (int)cols, 0, out, (int)cols);
    if (out == dcol) {
        conv_ctx cc = {.d = d, .col = dcol, .src = dcol, .y = dx, .n0 = n0, .cnt = cnt,
                       .ld = cols, .ch = d->C, .be = c->be};
        if (pw1) /* a 1x1 stride-1 column matrix is dx itself, images side by side */
            FN(conv_scatter_task)(&cc, 0, cnt * d->C, tid);
        else
            FN(col2im_task)(&cc, 0, cnt * d->C, tid);
    }
}

/* dwt (+)= col_g dy_g^T over images [n0, n0 + cnt) in the calling thread:
 * the transposed filter gradient (C*R*S x K).  OpenBLAS runs this product
 * (M = C*R*S, N = K) markedly faster than dw = dy col^T when K is small and
 * the inner dimension long (32x288x2048: 86 vs 53 GFLOP/s here). */
static void FN(conv_bwd_filter_images)(const convp_ctx *c, int64_t n0, int64_t cnt, T *col,
                                       T *dyg, T *dwt, int accumulate, int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q, cols = cnt * PQ;
    const T *x = c->x, *dy = c->dy;
    const T *A, *B;
    if (cnt == 1) {
        A = dy + n0 * d->K * PQ;
    } else {
        conv_ctx gc = {.d = d, .src = dy, .col = dyg, .n0 = n0, .cnt = cnt, .ld = cols};
        FN(conv_gather_task)(&gc, 0, cnt * d->K, tid);
        A = dyg;
    }
    if (FN(conv_pointwise)(d) && cnt == 1) {
        B = x + n0 * d->C * PQ;
    } else {
        conv_ctx ic = {.d = d, .x = x, .col = col, .n0 = n0, .cnt = cnt, .ld = cols};
        FN(im2col_task)(&ic, 0, CRS, tid);
        B = col;
    }
    CPU_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)CRS, (int)d->K, (int)cols, 1, B,
             (int)cols, A, (int)cols, accumulate ? 1 : 0, dwt, (int)d->K);
}

/* Part p of a parallel conv: its share of the image groups. */
static void FN(conv_part_range)(const convp_ctx *c, int64_t p, int64_t *n0, int64_t *n1)
{
    int64_t g0 = c->ngroups * p / c->parts, g1 = c->ngroups * (p + 1) / c->parts;
    *n0 = g0 * c->nb;
    *n1 = g1 * c->nb < c->d->N ? g1 * c->nb : c->d->N;
}

static void FN(conv_fwd_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++) {
        T *ws = (T *)c->ws + p * c->ws_elems;
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n += c->nb)
            FN(conv_fwd_images)(c, n, n1 - n < c->nb ? n1 - n : c->nb, ws, ws + c->col_elems, tid);
    }
}

static void FN(conv_bwd_data_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++) {
        T *ws = (T *)c->ws + p * c->ws_elems;
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n += c->nb)
            FN(conv_bwd_data_images)(c, n, n1 - n < c->nb ? n1 - n : c->nb, ws,
                                     ws + c->col_elems, tid);
    }
}

static void FN(conv_bwd_filter_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    const int64_t KCRS = c->d->K * c->d->C * c->d->R * c->d->S;
    for (int64_t p = p0; p < p1; p++) {
        T *ws = (T *)c->ws + p * c->ws_elems;
        T *dw = (T *)c->partial + p * KCRS;
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n += c->nb)
            FN(conv_bwd_filter_images)(c, n, n1 - n < c->nb ? n1 - n : c->nb, ws,
                                       ws + c->col_elems, dw, n > n0, tid);
    }
}

/* dw[k, i] = sum over parts (in order) of the transposed partial dwt_p[i, k];
 * tasks over blocks of 16 k (one cache line of dwt per row i). */
static void FN(conv_dw_reduce_task)(void *vc, int64_t b0, int64_t b1, int tid)
{
    (void)tid;
    const convp_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t CRS = d->C * d->R * d->S, KCRS = d->K * CRS;
    T *dw = c->dw;
    const T *part = c->partial;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t k0 = b * 16, k1 = k0 + 16 < d->K ? k0 + 16 : d->K;
        for (int64_t i = 0; i < CRS; i++)
            for (int64_t k = k0; k < k1; k++) {
                T v = part[i * d->K + k];
                for (int64_t p = 1; p < c->parts; p++) v += part[p * KCRS + i * d->K + k];
                dw[k * CRS + i] = v;
            }
    }
}

/* Sets up groups, parts and workspaces (col_rows rows of im2col/col2im
 * columns, the other matrix of K rows when images are grouped). */
static hcga_status FN(conv_plan)(hcga_backend *be, convp_ctx *c, int64_t target_cols,
                                 int need_col, const char *op)
{
    const hcga_conv_dims *d = c->d;
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q;
    c->be = be;
    c->nb = FN(conv_group)(d, target_cols, CONV_CAP, be->threads);
    c->ngroups = (d->N + c->nb - 1) / c->nb;
    c->parts = FN(conv_parts)(be, c->ngroups);
    c->col_elems = need_col || c->nb > 1 ? CRS * c->nb * PQ : 0;
    int64_t other = c->nb > 1 ? d->K * c->nb * PQ : 0;
    c->ws_elems = (c->col_elems + other + 63) / 64 * 64;
    c->ws = cpu_ws(be, 0, (size_t)(c->ws_elems * c->parts) * sizeof(T));
    if (!c->ws) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for the workspace", op);
    cpu_blas_threads(be);
    return HCGA_OK;
}

/* ---- convolution with few output channels: per-tap GEMMs on x itself ----
 *
 * With K much smaller than C, im2col (C*R*S rows) costs more than the GEMM
 * that reads it.  The tap form multiplies x (C x H*W) as it is:
 *   forward:     z = wr x, wr[k*RS + rs, c] = w[k, c, rs]  (K*R*S x H*W), then
 *                y[k, p, q] = sum over (r, s) of z[k*RS + rs] at the input
 *                position (p*sh - ph + r*dh, q*sw - pw + s*dw);
 *   bwd_filter:  e[k*RS + rs] = dy[k] spread to those input positions (0
 *                elsewhere), dwr += e x^T (K*R*S x C), dw[k, c, rs] = dwr.
 * Used when the tap matrix (K*R*S x H*W) is at most half the im2col matrix
 * (C*R*S x P*Q) and a plane is large enough for a GEMM of its own. */
static inline int FN(conv_use_taps)(const hcga_conv_dims *d)
{
    return !FN(conv_pointwise)(d) && d->H * d->W >= 128 &&
           2 * d->K * d->H * d->W <= d->C * d->P * d->Q;
}

/* wr[(k*RS + rs)*C + c] = w[(k*C + c)*RS + rs]; tasks over k. */
static void FN(wtaps_task)(void *vc, int64_t k0, int64_t k1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const T *w = c->src;
    T *wr = c->y;
    const int64_t RS = d->R * d->S;
    for (int64_t k = k0; k < k1; k++)
        for (int64_t rs = 0; rs < RS; rs++)
            for (int64_t ch = 0; ch < d->C; ch++)
                wr[(k * RS + rs) * d->C + ch] = w[(k * d->C + ch) * RS + rs];
}

/* y[n0, k] = sum over taps of z (+ bias[k]), in double; tasks over k. */
static void FN(tapsum_task)(void *vc, int64_t k0, int64_t k1, int tid)
{
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W;
    const T *z = c->src, *bias = c->bias;
    double *acc = c->be->scratch[tid];
    for (int64_t k = k0; k < k1; k++) {
        for (int64_t j = 0; j < PQ; j++) acc[j] = 0;
        for (int64_t r = 0; r < d->R; r++) {
            const int64_t hoff = r * d->dh - d->ph;
            for (int64_t s = 0; s < d->S; s++) {
                const int64_t woff = s * d->dw - d->pw;
                int64_t qlo, qhi;
                FN(qrange)(d->Q, d->W, d->sw, woff, &qlo, &qhi);
                const T *zt = z + ((k * d->R + r) * d->S + s) * HW;
                for (int64_t p = 0; p < d->P; p++) {
                    const int64_t h = p * d->sh + hoff;
                    if (h < 0 || h >= d->H) continue;
                    const T *zr = zt + h * d->W + woff;
                    double *a = acc + p * d->Q;
                    if (d->sw == 1)
                        for (int64_t q = qlo; q < qhi; q++) a[q] += zr[q];
                    else
                        for (int64_t q = qlo; q < qhi; q++) a[q] += zr[q * d->sw];
                }
            }
        }
        const double b = bias ? (double)bias[k] : 0.0;
        T *out = (T *)c->y + (c->n0 * d->K + k) * PQ;
        for (int64_t j = 0; j < PQ; j++) out[j] = (T)(acc[j] + b);
    }
}

/* e = dy[n0] spread over the taps' input positions; tasks over k. */
static void FN(tapspread_task)(void *vc, int64_t k0, int64_t k1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W;
    const T *dy = (const T *)c->src + c->n0 * d->K * PQ;
    T *e = c->col;
    for (int64_t k = k0; k < k1; k++)
        for (int64_t r = 0; r < d->R; r++) {
            const int64_t hoff = r * d->dh - d->ph;
            for (int64_t s = 0; s < d->S; s++) {
                const int64_t woff = s * d->dw - d->pw;
                int64_t qlo, qhi;
                FN(qrange)(d->Q, d->W, d->sw, woff, &qlo, &qhi);
                T *et = e + ((k * d->R + r) * d->S + s) * HW;
                for (int64_t j = 0; j < HW; j++) et[j] = 0;
                for (int64_t p = 0; p < d->P; p++) {
                    const int64_t h = p * d->sh + hoff;
                    if (h < 0 || h >= d->H) continue;
                    const T *g = dy + (k * d->P + p) * d->Q;
                    T *er = et + h * d->W + woff;
                    for (int64_t q = qlo; q < qhi; q++) er[q * d->sw] = g[q];
                }
            }
        }
}

/* Tap-form forward of image n in the calling thread (z: K*R*S x H*W). */
static void FN(conv_fwd_taps_image)(const convp_ctx *c, int64_t n, T *z, int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W;
    CPU_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)KRS, (int)HW, (int)d->C, 1,
             (const T *)c->w, (int)d->C, (const T *)c->x + n * d->C * HW, (int)HW, 0, z,
             (int)HW);
    conv_ctx sc = {.d = d, .src = z, .bias = c->bias, .y = c->y, .n0 = n, .be = c->be};
    FN(tapsum_task)(&sc, 0, d->K, tid);
}

static void FN(conv_fwd_taps_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++) {
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n++)
            FN(conv_fwd_taps_image)(c, n, (T *)c->ws + p * c->ws_elems, tid);
    }
}

/* Tap-form filter gradient of image n into dwr (K*R*S x C), calling thread. */
static void FN(conv_bwd_filter_taps_image)(const convp_ctx *c, int64_t n, T *e, T *dwr,
                                           int accumulate, int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W;
    conv_ctx ec = {.d = d, .src = c->dy, .col = e, .n0 = n};
    FN(tapspread_task)(&ec, 0, d->K, tid);
    CPU_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)KRS, (int)d->C, (int)HW, 1, e,
             (int)HW, (const T *)c->x + n * d->C * HW, (int)HW, accumulate ? 1 : 0, dwr,
             (int)d->C);
}

static void FN(conv_bwd_filter_taps_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    const int64_t KCRS = c->d->K * c->d->C * c->d->R * c->d->S;
    for (int64_t p = p0; p < p1; p++) {
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n++)
            FN(conv_bwd_filter_taps_image)(c, n, (T *)c->ws + p * c->ws_elems,
                                           (T *)c->partial + p * KCRS, n > n0, tid);
    }
}

/* dw[k, c, rs] = sum over parts (in order) of dwr_p[k*RS + rs, c]; tasks
 * over k*C + c. */
static void FN(taps_dw_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const convp_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t RS = d->R * d->S, KCRS = d->K * d->C * RS;
    const T *part = c->partial;
    T *dw = c->dw;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t k = t / d->C, ch = t % d->C;
        for (int64_t rs = 0; rs < RS; rs++) {
            const int64_t i = (k * RS + rs) * d->C + ch;
            T v = part[i];
            for (int64_t p = 1; p < c->parts; p++) v += part[p * KCRS + i];
            dw[t * RS + rs] = v;
        }
    }
}

/* Plans a tap-form op: one image per step, parts over images, a workspace
 * slab of K*R*S x H*W per part. */
static hcga_status FN(conv_plan_taps)(hcga_backend *be, convp_ctx *c, const char *op)
{
    const hcga_conv_dims *d = c->d;
    c->be = be;
    c->nb = 1;
    c->ngroups = d->N;
    c->parts = FN(conv_parts)(be, d->N);
    c->col_elems = d->K * d->R * d->S * d->H * d->W;
    c->ws_elems = (c->col_elems + 63) / 64 * 64;
    c->ws = cpu_ws(be, 0, (size_t)(c->ws_elems * c->parts) * sizeof(T));
    if (!c->ws) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for the workspace", op);
    cpu_blas_threads(be);
    return HCGA_OK;
}

static hcga_status FN(conv_fwd_taps)(hcga_backend *be, const hcga_conv_dims *d, const T *x,
                                     const T *w, const T *bias, T *y)
{
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W;
    T *wr = cpu_ws(be, 2, (size_t)(KRS * d->C) * sizeof(T));
    if (!wr) return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_fwd: out of memory for the filter");
    if (cpu_scratch_reserve(be, (size_t)(d->P * d->Q) * sizeof(double)))
        return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_fwd: out of memory for scratch");
    conv_ctx wc = {.d = d, .src = w, .y = wr};
    cpu_parallel(be, d->K, 1, FN(wtaps_task), &wc);
    convp_ctx c = {.d = d, .x = x, .w = wr, .bias = bias, .y = y};
    hcga_status st = FN(conv_plan_taps)(be, &c, "conv2d_fwd");
    if (st != HCGA_OK) return st;
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_fwd_taps_part), &c);
        return HCGA_OK;
    }
    T *z = c.ws;
    for (int64_t n = 0; n < d->N; n++) {
        FN(gemm_mt)(be, 0, 0, KRS, HW, d->C, 1.0, wr, d->C, x + n * d->C * HW, HW, 0.0, z, HW);
        conv_ctx sc = {.d = d, .src = z, .bias = bias, .y = y, .n0 = n, .be = be};
        cpu_parallel(be, d->K, 1, FN(tapsum_task), &sc);
    }
    return HCGA_OK;
}

/* Tap-form data gradient of image n: dx = wr^T e (C x H*W), calling thread. */
static void FN(conv_bwd_data_taps_image)(const convp_ctx *c, int64_t n, T *e, int tid)
{
    const hcga_conv_dims *d = c->d;
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W;
    conv_ctx ec = {.d = d, .src = c->dy, .col = e, .n0 = n};
    FN(tapspread_task)(&ec, 0, d->K, tid);
    CPU_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d->C, (int)HW, (int)KRS, 1,
             (const T *)c->w, (int)d->C, e, (int)HW, 0, (T *)c->dx + n * d->C * HW, (int)HW);
}

static void FN(conv_bwd_data_taps_part)(void *vc, int64_t p0, int64_t p1, int tid)
{
    const convp_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++) {
        int64_t n0, n1;
        FN(conv_part_range)(c, p, &n0, &n1);
        for (int64_t n = n0; n < n1; n++)
            FN(conv_bwd_data_taps_image)(c, n, (T *)c->ws + p * c->ws_elems, tid);
    }
}

/* The adjoint of the tap forward: e = dy spread over the taps (as for the
 * filter gradient), dx = wr^T e; no col2im. */
static hcga_status FN(conv_bwd_data_taps)(hcga_backend *be, const hcga_conv_dims *d, const T *dy,
                                          const T *w, T *dx)
{
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W;
    T *wr = cpu_ws(be, 2, (size_t)(KRS * d->C) * sizeof(T));
    if (!wr) return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_bwd_data: out of memory for the filter");
    conv_ctx wc = {.d = d, .src = w, .y = wr};
    cpu_parallel(be, d->K, 1, FN(wtaps_task), &wc);
    convp_ctx c = {.d = d, .w = wr, .dy = dy, .dx = dx};
    hcga_status st = FN(conv_plan_taps)(be, &c, "conv2d_bwd_data");
    if (st != HCGA_OK) return st;
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_bwd_data_taps_part), &c);
        return HCGA_OK;
    }
    T *e = c.ws;
    for (int64_t n = 0; n < d->N; n++) {
        conv_ctx ec = {.d = d, .src = dy, .col = e, .n0 = n};
        cpu_parallel(be, d->K, 1, FN(tapspread_task), &ec);
        FN(gemm_mt)(be, 1, 0, d->C, HW, KRS, 1.0, wr, d->C, e, HW, 0.0, dx + n * d->C * HW, HW);
    }
    return HCGA_OK;
}

static hcga_status FN(conv_bwd_filter_taps)(hcga_backend *be, const hcga_conv_dims *d, const T *x,
                                            const T *dy, T *dw)
{
    const int64_t KRS = d->K * d->R * d->S, HW = d->H * d->W, KCRS = KRS * d->C;
    convp_ctx c = {.d = d, .x = x, .dy = dy, .dw = dw};
    hcga_status st = FN(conv_plan_taps)(be, &c, "conv2d_bwd_filter");
    if (st != HCGA_OK) return st;
    c.partial = cpu_ws(be, 1, (size_t)(c.parts * KCRS) * sizeof(T));
    if (!c.partial)
        return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_bwd_filter: out of memory for partial sums");
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_bwd_filter_taps_part), &c);
    } else {
        T *e = c.ws, *dwr = c.partial;
        for (int64_t n = 0; n < d->N; n++) {
            conv_ctx ec = {.d = d, .src = dy, .col = e, .n0 = n};
            cpu_parallel(be, d->K, 1, FN(tapspread_task), &ec);
            FN(gemm_mt)(be, 0, 1, KRS, d->C, HW, 1.0, e, HW, x + n * d->C * HW, HW,
                        n > 0 ? 1.0 : 0.0, dwr, d->C);
        }
    }
    cpu_parallel(be, d->K * d->C, 64, FN(taps_dw_task), &c);
    return HCGA_OK;
}

static hcga_status FN(conv_fwd)(hcga_backend *be, const hcga_conv_dims *d, const T *x, const T *w,
                                const T *bias, T *y)
{
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q;
    const int pw1 = FN(conv_pointwise)(d);
    if (FN(conv_use_taps)(d)) return FN(conv_fwd_taps)(be, d, x, w, bias, y);
    convp_ctx c = {.d = d, .x = x, .w = w, .bias = bias, .y = y};
    hcga_status st = FN(conv_plan)(be, &c, CPU_CONV_TARGET_COLS, !pw1, "conv2d_fwd");
    if (st != HCGA_OK) return st;
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_fwd_part), &c);
        return HCGA_OK;
    }
    /* one group at a time, each step parallel */
    T *col = c.ws, *tmp = (T *)c.ws + c.col_elems;
    for (int64_t n0 = 0; n0 < d->N; n0 += c.nb) {
        int64_t cnt = d->N - n0 < c.nb ? d->N - n0 : c.nb;
        int64_t cols = cnt * PQ;
        const T *B;
        if (pw1 && cnt == 1) {
            B = x + n0 * d->C * PQ;
        } else {
            conv_ctx ic = {.d = d, .x = x, .col = col, .n0 = n0, .cnt = cnt, .ld = cols};
            cpu_parallel(be, CRS, 1, FN(im2col_task), &ic);
            B = col;
        }
        T *out = cnt == 1 ? y + n0 * d->K * PQ : tmp;
        FN(gemm_mt)(be, 0, 0, d->K, cols, CRS, 1.0, w, CRS, B, cols, 0.0, out, cols);
        if (cnt > 1 || bias) {
            conv_ctx sc = {.d = d, .src = out, .bias = bias, .y = y, .n0 = n0, .cnt = cnt,
                           .ld = cols, .ch = d->K};
            cpu_parallel(be, cnt * d->K, 4, FN(conv_scatter_task), &sc);
        }
    }
    return HCGA_OK;
}

/* wf[c, k, r, s] = w[k, c, R-1-r, S-1-s]; tasks over c. */
static void FN(flip_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const T *w = c->src;
    T *wf = c->y;
    const int64_t RS = d->R * d->S;
    for (int64_t ch = c0; ch < c1; ch++)
        for (int64_t k = 0; k < d->K; k++) {
            const T *src = w + (k * d->C + ch) * RS;
            T *dst = wf + (ch * d->K + k) * RS;
            for (int64_t i = 0; i < RS; i++) dst[i] = src[RS - 1 - i];
        }
}

static hcga_status FN(conv_bwd_data)(hcga_backend *be, const hcga_conv_dims *d, const T *dy,
                                     const T *w, T *dx)
{
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q;
    const int pw1 = FN(conv_pointwise)(d);
    if (FN(conv_use_taps)(d) && (d->sh != 1 || d->sw != 1))
        return FN(conv_bwd_data_taps)(be, d, dy, w, dx);
    if (!pw1 && d->sh == 1 && d->sw == 1 && d->dh * (d->R - 1) >= d->ph &&
        d->dw * (d->S - 1) >= d->pw) {
        /* A stride-1 transposed conv is the forward conv of dy with the
         * flipped, channel-swapped filter and padding dil*(R-1) - pad: its
         * im2col has K*R*S rows instead of C*R*S, and the GEMM writes dx
         * directly (no col2im). */
        T *wf = cpu_ws(be, 2, (size_t)(d->K * CRS) * sizeof(T));
        if (!wf) return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_bwd_data: out of memory for the filter");
        conv_ctx fc = {.d = d, .src = w, .y = wf};
        cpu_parallel(be, d->C, 64, FN(flip_task), &fc);
        hcga_conv_dims t = *d;
        t.C = d->K;
        t.H = d->P;
        t.W = d->Q;
        t.K = d->C;
        t.ph = d->dh * (d->R - 1) - d->ph;
        t.pw = d->dw * (d->S - 1) - d->pw;
        t.P = d->H;
        t.Q = d->W;
        return FN(conv_fwd)(be, &t, dy, wf, NULL, dx);
    }
    convp_ctx c = {.d = d, .dy = dy, .w = w, .dx = dx};
    hcga_status st = FN(conv_plan)(be, &c, CPU_CONV_TARGET_COLS, !pw1, "conv2d_bwd_data");
    if (st != HCGA_OK) return st;
    if (!pw1 && cpu_scratch_reserve(be, (size_t)(d->H * d->W) * sizeof(double)))
        return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_bwd_data: out of memory for scratch");
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_bwd_data_part), &c);
        return HCGA_OK;
    }
    T *dcol = c.ws, *dyg = (T *)c.ws + c.col_elems;
    for (int64_t n0 = 0; n0 < d->N; n0 += c.nb) {
        int64_t cnt = d->N - n0 < c.nb ? d->N - n0 : c.nb;
        int64_t cols = cnt * PQ;
        const T *A;
        if (cnt == 1) {
            A = dy + n0 * d->K * PQ;
        } else {
            conv_ctx gc = {.d = d, .src = dy, .col = dyg, .n0 = n0, .cnt = cnt, .ld = cols};
            cpu_parallel(be, cnt * d->K, 4, FN(conv_gather_task), &gc);
            A = dyg;
        }
        T *out = pw1 && cnt == 1 ? dx + n0 * d->C * PQ : dcol;
        FN(gemm_mt)(be, 1, 0, CRS, cols, d->K, 1.0, w, CRS, A, cols, 0.0, out, cols);
        if (out == dcol) {
            conv_ctx cc = {.d = d, .col = dcol, .src = dcol, .y = dx, .n0 = n0, .cnt = cnt,
                           .ld = cols, .ch = d->C, .be = be};
            cpu_parallel(be, cnt * d->C, pw1 ? 4 : 1,
                         pw1 ? FN(conv_scatter_task) : FN(col2im_task), &cc);
        }
    }
    return HCGA_OK;
}

static void FN(dbias_task)(void *vc, int64_t k0, int64_t k1, int tid)
{
    (void)tid;
    const conv_ctx *c = vc;
    const hcga_conv_dims *d = c->d;
    const int64_t PQ = d->P * d->Q;
    const T *DY = c->src;
    T *db = c->y;
    for (int64_t k = k0; k < k1; k++) {
        double acc = 0;
        for (int64_t n = 0; n < d->N; n++) {
            const T *p = DY + (n * d->K + k) * PQ;
            for (int64_t j = 0; j < PQ; j++) acc += p[j];
        }
        db[k] = (T)acc;
    }
}

static hcga_status FN(conv_bwd_filter)(hcga_backend *be, const hcga_conv_dims *d, const T *x,
                                       const T *dy, T *dw, T *dbias)
{
    const int64_t CRS = d->C * d->R * d->S, PQ = d->P * d->Q;
    const int pw1 = FN(conv_pointwise)(d);
    if (dbias) {
        conv_ctx c = {.d = d, .src = dy, .y = dbias};
        cpu_parallel(be, d->K, 1, FN(dbias_task), &c);
    }
    if (d->N == 0) {
        for (int64_t i = 0; i < d->K * CRS; i++) dw[i] = 0;
        return HCGA_OK;
    }
    if (FN(conv_use_taps)(d)) return FN(conv_bwd_filter_taps)(be, d, x, dy, dw);
    convp_ctx c = {.d = d, .x = x, .dy = dy, .dw = dw};
    hcga_status st = FN(conv_plan)(be, &c, CPU_CONV_TARGET_COLS_BWDF, !pw1, "conv2d_bwd_filter");
    if (st != HCGA_OK) return st;
    c.partial = cpu_ws(be, 1, (size_t)(c.parts * d->K * CRS) * sizeof(T));
    if (!c.partial)
        return cpu_fail(be, HCGA_ERR_NOMEM, "conv2d_bwd_filter: out of memory for partial sums");
    const int64_t kblocks = (d->K + 15) / 16, kgrain = 16 * CRS >= 16384 ? 1 : 16384 / (16 * CRS);
    if (c.parts > 1) {
        cpu_parallel(be, c.parts, 1, FN(conv_bwd_filter_part), &c);
        cpu_parallel(be, kblocks, kgrain, FN(conv_dw_reduce_task), &c);
        return HCGA_OK;
    }
    T *col = c.ws, *dyg = (T *)c.ws + c.col_elems, *dwt = c.partial;
    for (int64_t n0 = 0; n0 < d->N; n0 += c.nb) {
        int64_t cnt = d->N - n0 < c.nb ? d->N - n0 : c.nb;
        int64_t cols = cnt * PQ;
        const T *A, *B;
        if (cnt == 1) {
            A = dy + n0 * d->K * PQ;
        } else {
            conv_ctx gc = {.d = d, .src = dy, .col = dyg, .n0 = n0, .cnt = cnt, .ld = cols};
            cpu_parallel(be, cnt * d->K, 4, FN(conv_gather_task), &gc);
            A = dyg;
        }
        if (pw1 && cnt == 1) {
            B = x + n0 * d->C * PQ;
        } else {
            conv_ctx ic = {.d = d, .x = x, .col = col, .n0 = n0, .cnt = cnt, .ld = cols};
            cpu_parallel(be, CRS, 1, FN(im2col_task), &ic);
            B = col;
        }
        FN(gemm_mt)(be, 0, 1, CRS, d->K, cols, 1.0, B, cols, A, cols, n0 == 0 ? 0.0 : 1.0, dwt,
                    d->K);
    }
    cpu_parallel(be, kblocks, kgrain, FN(conv_dw_reduce_task), &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Batch normalisation (per channel; statistics in double)                 */
/* ======================================================================= */

/* Sums over one channel use CPU_SUM_LANES double accumulators: element j of
 * each plane goes to lane j % CPU_SUM_LANES and the lanes are added in order
 * at the end.  The order depends only on the shape (never on threads), and
 * the independent chains let the loops vectorise. */
static inline double FN(lanes_total)(const double *acc)
{
    double s = 0;
    for (int u = 0; u < CPU_SUM_LANES; u++) s += acc[u];
    return s;
}

static void FN(bn_train_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x, *G = c->gamma, *Bt = c->beta;
    T *Y = c->y, *SM = c->save_mean, *SI = c->save_invstd, *RM = c->out_rm, *RV = c->out_rv;
    const int64_t N = c->N, C = c->C, HW = c->HW;
    const int64_t HWv = HW / CPU_SUM_LANES * CPU_SUM_LANES;
    const double m = (double)(N * HW);
    for (int64_t ch = c0; ch < c1; ch++) {
        double acc[CPU_SUM_LANES] = {0};
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW;
            for (int64_t j = 0; j < HWv; j += CPU_SUM_LANES)
                for (int u = 0; u < CPU_SUM_LANES; u++) acc[u] += (double)p[j + u];
            for (int64_t j = HWv; j < HW; j++) acc[j - HWv] += (double)p[j];
        }
        double mean = FN(lanes_total)(acc) / m;
        for (int u = 0; u < CPU_SUM_LANES; u++) acc[u] = 0;
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW;
            for (int64_t j = 0; j < HWv; j += CPU_SUM_LANES)
                for (int u = 0; u < CPU_SUM_LANES; u++) {
                    double t = (double)p[j + u] - mean;
                    acc[u] += t * t;
                }
            for (int64_t j = HWv; j < HW; j++) {
                double t = (double)p[j] - mean;
                acc[j - HWv] += t * t;
            }
        }
        double v = FN(lanes_total)(acc);
        double var = v / m;
        double invstd = 1.0 / sqrt(var + c->eps);
        double g = G[ch], b = Bt[ch];
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW;
            T *q = Y + (n * C + ch) * HW;
            for (int64_t j = 0; j < HW; j++) q[j] = (T)(((double)p[j] - mean) * invstd * g + b);
        }
        SM[ch] = (T)mean;
        SI[ch] = (T)invstd;
        double unbiased = v / (m - 1);
        RM[ch] = (T)((1.0 - c->momentum) * (double)RM[ch] + c->momentum * mean);
        RV[ch] = (T)((1.0 - c->momentum) * (double)RV[ch] + c->momentum * unbiased);
    }
}

static void FN(bn_infer_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x, *G = c->gamma, *Bt = c->beta, *RM = c->rm, *RV = c->rv;
    T *Y = c->y;
    for (int64_t t = t0; t < t1; t++) {
        int64_t ch = t % c->C;
        double mean = RM[ch], invstd = 1.0 / sqrt((double)RV[ch] + c->eps);
        double g = G[ch], b = Bt[ch];
        const T *p = X + t * c->HW;
        T *q = Y + t * c->HW;
        for (int64_t j = 0; j < c->HW; j++) q[j] = (T)(g * (((double)p[j] - mean) * invstd) + b);
    }
}

static void FN(bn_bwd_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x, *DY = c->dy, *G = c->gamma, *M = c->mean, *IS = c->invstd;
    T *DX = c->dx, *DG = c->dgamma, *DB = c->dbeta;
    const int64_t N = c->N, C = c->C, HW = c->HW;
    const int64_t HWv = HW / CPU_SUM_LANES * CPU_SUM_LANES;
    const double m = (double)(N * HW);
    for (int64_t ch = c0; ch < c1; ch++) {
        double mean = M[ch], invstd = IS[ch];
        double a1[CPU_SUM_LANES] = {0}, a2[CPU_SUM_LANES] = {0};
        for (int64_t n = 0; n < N; n++) {
            const T *px = X + (n * C + ch) * HW, *pd = DY + (n * C + ch) * HW;
            for (int64_t j = 0; j < HWv; j += CPU_SUM_LANES)
                for (int u = 0; u < CPU_SUM_LANES; u++) {
                    double d = pd[j + u];
                    a1[u] += d;
                    a2[u] += d * (((double)px[j + u] - mean) * invstd);
                }
            for (int64_t j = HWv; j < HW; j++) {
                double d = pd[j];
                a1[j - HWv] += d;
                a2[j - HWv] += d * (((double)px[j] - mean) * invstd);
            }
        }
        double sdy = FN(lanes_total)(a1), sdyx = FN(lanes_total)(a2);
        double k = (double)G[ch] * invstd / m;
        for (int64_t n = 0; n < N; n++) {
            const T *px = X + (n * C + ch) * HW, *pd = DY + (n * C + ch) * HW;
            T *q = DX + (n * C + ch) * HW;
            for (int64_t j = 0; j < HW; j++) {
                double xh = ((double)px[j] - mean) * invstd;
                q[j] = (T)(k * (m * (double)pd[j] - sdy - xh * sdyx));
            }
        }
        DG[ch] = (T)sdyx;
        DB[ch] = (T)sdy;
    }
}

/* BN_STATS: sum and sum of squares of each channel, lanes as above. */
static void FN(bn_sums_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x;
    T *S = c->sum, *SQ = c->sumsq;
    const int64_t N = c->N, C = c->C, HW = c->HW;
    const int64_t HWv = HW / CPU_SUM_LANES * CPU_SUM_LANES;
    for (int64_t ch = c0; ch < c1; ch++) {
        double a1[CPU_SUM_LANES] = {0}, a2[CPU_SUM_LANES] = {0};
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW;
            for (int64_t j = 0; j < HWv; j += CPU_SUM_LANES)
                for (int u = 0; u < CPU_SUM_LANES; u++) {
                    double v = p[j + u];
                    a1[u] += v;
                    a2[u] += v * v;
                }
            for (int64_t j = HWv; j < HW; j++) {
                double v = p[j];
                a1[j - HWv] += v;
                a2[j - HWv] += v * v;
            }
        }
        S[ch] = (T)FN(lanes_total)(a1);
        SQ[ch] = (T)FN(lanes_total)(a2);
    }
}

/* BN_FWD_FROM_STATS: the statistics of each channel from the summed
 * sum / sumsq over M = count values, then y and the running statistics as
 * bn_train_task writes them. */
static void FN(bn_fwd_stats_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x, *G = c->gamma, *Bt = c->beta, *S = c->sum, *SQ = c->sumsq;
    T *Y = c->y, *SM = c->save_mean, *SI = c->save_invstd, *RM = c->out_rm, *RV = c->out_rv;
    const int64_t N = c->N, C = c->C, HW = c->HW;
    const double m = (double)c->count;
    for (int64_t ch = c0; ch < c1; ch++) {
        double mean = (double)S[ch] / m;
        double var = (double)SQ[ch] / m - mean * mean;
        if (var < 0) var = 0; /* cancellation in sumsq/M - mean^2 */
        double invstd = 1.0 / sqrt(var + c->eps);
        double g = G[ch], b = Bt[ch];
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW;
            T *q = Y + (n * C + ch) * HW;
            for (int64_t j = 0; j < HW; j++) q[j] = (T)(((double)p[j] - mean) * invstd * g + b);
        }
        SM[ch] = (T)mean;
        SI[ch] = (T)invstd;
        double unbiased = var * m / (m - 1);
        RM[ch] = (T)((1.0 - c->momentum) * (double)RM[ch] + c->momentum * mean);
        RV[ch] = (T)((1.0 - c->momentum) * (double)RV[ch] + c->momentum * unbiased);
    }
}

/* BN_BWD_FROM_STATS over planes t = n*C + ch:
 * dx = gamma*invstd/M * (M*dy - sum_dy - xhat*sum_dy_xhat), bn_bwd_task's form. */
static void FN(bn_bwd_stats_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const bn_ctx *c = vc;
    const T *X = c->x, *DY = c->dy, *G = c->gamma, *M = c->mean, *IS = c->invstd;
    const T *SD = c->sum_dy, *SDX = c->sum_dy_xhat;
    T *DX = c->dx;
    const double m = (double)c->count;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t ch = t % c->C;
        const double mean = M[ch], invstd = IS[ch], sdy = SD[ch], sdyx = SDX[ch];
        const double k = (double)G[ch] * invstd / m;
        const T *px = X + t * c->HW, *pd = DY + t * c->HW;
        T *q = DX + t * c->HW;
        for (int64_t j = 0; j < c->HW; j++) {
            double xh = ((double)px[j] - mean) * invstd;
            q[j] = (T)(k * (m * (double)pd[j] - sdy - xh * sdyx));
        }
    }
}

static void FN(bn)(hcga_backend *be, int which, bn_ctx *c)
{
    const int64_t grain = c->HW >= 4096 ? 1 : 4096 / (c->HW ? c->HW : 1);
    switch (which) {
    case BN_K_INFER: cpu_parallel(be, c->N * c->C, grain, FN(bn_infer_task), c); break;
    case BN_K_BWD_STATS: cpu_parallel(be, c->N * c->C, grain, FN(bn_bwd_stats_task), c); break;
    case BN_K_TRAIN: cpu_parallel(be, c->C, 1, FN(bn_train_task), c); break;
    case BN_K_BWD: cpu_parallel(be, c->C, 1, FN(bn_bwd_task), c); break;
    case BN_K_STATS: cpu_parallel(be, c->C, 1, FN(bn_sums_task), c); break;
    default: cpu_parallel(be, c->C, 1, FN(bn_fwd_stats_task), c); break;
    }
}

/* ======================================================================= */
/* Channel ops over dim 1 of [N, C, S]: tasks = N * chunks of S            */
/* ======================================================================= */

static void FN(softmax_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const chan_ctx *c = vc;
    const T *X = c->x, *DY = c->dy;
    T *Y = c->y;
    const int64_t C = c->C, S = c->S;
    double a[CPU_VEC_CHUNK], b[CPU_VEC_CHUNK];
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / c->nch, j0 = (t % c->nch) * CPU_VEC_CHUNK;
        int64_t len = S - j0 < CPU_VEC_CHUNK ? S - j0 : CPU_VEC_CHUNK;
        const int64_t base = n * C * S + j0;
        if (!DY) { /* forward: a = max, b = sum exp */
            for (int64_t j = 0; j < len; j++) a[j] = -INFINITY, b[j] = 0;
            for (int64_t k = 0; k < C; k++) {
                const T *p = X + base + k * S;
                for (int64_t j = 0; j < len; j++)
                    if (p[j] > a[j] || p[j] != p[j]) a[j] = p[j];
            }
            for (int64_t k = 0; k < C; k++) {
                const T *p = X + base + k * S;
                for (int64_t j = 0; j < len; j++) b[j] += exp((double)p[j] - a[j]);
            }
            for (int64_t k = 0; k < C; k++) {
                const T *p = X + base + k * S;
                T *q = Y + base + k * S;
                for (int64_t j = 0; j < len; j++) q[j] = (T)(exp((double)p[j] - a[j]) / b[j]);
            }
        } else { /* backward: X = y, a = sum dy*y */
            for (int64_t j = 0; j < len; j++) a[j] = 0;
            for (int64_t k = 0; k < C; k++) {
                const T *p = X + base + k * S, *d = DY + base + k * S;
                for (int64_t j = 0; j < len; j++) a[j] += (double)p[j] * (double)d[j];
            }
            for (int64_t k = 0; k < C; k++) {
                const T *p = X + base + k * S, *d = DY + base + k * S;
                T *q = Y + base + k * S;
                for (int64_t j = 0; j < len; j++) q[j] = (T)((double)p[j] * ((double)d[j] - a[j]));
            }
        }
    }
}

static void FN(argmax_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const chan_ctx *c = vc;
    const T *X = c->x;
    int64_t *IDX = c->y;
    const int64_t C = c->C, S = c->S;
    T best[CPU_VEC_CHUNK];
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / c->nch, j0 = (t % c->nch) * CPU_VEC_CHUNK;
        int64_t len = S - j0 < CPU_VEC_CHUNK ? S - j0 : CPU_VEC_CHUNK;
        const T *p0 = X + n * C * S + j0;
        int64_t *idx = IDX + n * S + j0;
        for (int64_t j = 0; j < len; j++) best[j] = p0[j], idx[j] = 0;
        for (int64_t k = 1; k < C; k++) {
            const T *p = p0 + k * S;
            for (int64_t j = 0; j < len; j++) {
                /* NaN counts as the maximum (first NaN wins), like torch */
                if (best[j] != best[j]) continue;
                if (p[j] > best[j] || p[j] != p[j]) best[j] = p[j], idx[j] = k;
            }
        }
    }
}

static void FN(chan)(hcga_backend *be, int argmax, chan_ctx *c)
{
    c->nch = (c->S + CPU_VEC_CHUNK - 1) / CPU_VEC_CHUNK;
    int64_t per = c->C * (c->S < CPU_VEC_CHUNK ? c->S : CPU_VEC_CHUNK);
    int64_t grain = per >= 8192 ? 1 : 8192 / (per ? per : 1);
    cpu_parallel(be, c->N * c->nch, grain, argmax ? FN(argmax_task) : FN(softmax_task), c);
}

/* ======================================================================= */
/* Spatial ops, per (n, c) plane                                           */
/* ======================================================================= */

static void FN(ups_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const plane_ctx *c = vc;
    const T *X = c->x;
    T *Y = c->y;
    const int64_t f = c->factor, H = c->H, W = c->W, OH = H * f, OW = W * f;
    for (int64_t t = t0; t < t1; t++) {
        const T *xp = X + t * H * W;
        T *yp = Y + t * OH * OW;
        for (int64_t i = 0; i < OH; i++) {
            const T *xr = xp + (i / f) * W;
            T *yr = yp + i * OW;
            for (int64_t j = 0; j < OW; j++) yr[j] = xr[j / f];
        }
    }
}

static void FN(ups_bwd_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const plane_ctx *c = vc;
    const T *DY = c->x;
    T *DX = c->y;
    const int64_t f = c->factor, H = c->H, W = c->W, OW = W * f;
    for (int64_t t = t0; t < t1; t++) {
        const T *dp = DY + t * H * f * OW;
        T *xp = DX + t * H * W;
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                double acc = 0;
                for (int64_t a = 0; a < f; a++) {
                    const T *r = dp + (i * f + a) * OW + j * f;
                    for (int64_t b = 0; b < f; b++) acc += r[b];
                }
                xp[i * W + j] = (T)acc;
            }
    }
}

/* Bilinear resize, separably: each input row is interpolated horizontally
 * once (hr, H x OW doubles in the thread's scratch), then every output row
 * mixes two of those rows.  Same operations in the same order as the direct
 * formula a0*(b0*x00 + b1*x01) + a1*(b0*x10 + b1*x11), so the same bits. */
static void FN(resize_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    const plane_ctx *c = vc;
    const T *X = c->x;
    T *Y = c->y;
    const int64_t H = c->H, W = c->W, OH = c->OH, OW = c->OW;
    double *hr = c->be->scratch[tid];
    for (int64_t t = t0; t < t1; t++) {
        const T *xp = X + t * H * W;
        T *yp = Y + t * OH * OW;
        for (int64_t h = 0; h < H; h++) {
            const T *r = xp + h * W;
            double *o = hr + h * OW;
            for (int64_t j = 0; j < OW; j++)
                o[j] = c->wl[2 * j] * (double)r[c->wi[2 * j]] +
                       c->wl[2 * j + 1] * (double)r[c->wi[2 * j + 1]];
        }
        for (int64_t i = 0; i < OH; i++) {
            const double *r0 = hr + c->hi[2 * i] * OW, *r1 = hr + c->hi[2 * i + 1] * OW;
            const double a0 = c->hl[2 * i], a1 = c->hl[2 * i + 1];
            T *o = yp + i * OW;
            for (int64_t j = 0; j < OW; j++) o[j] = (T)(a0 * r0[j] + a1 * r1[j]);
        }
    }
}

/* Its transpose, also separable: output rows are first spread over the input
 * rows (tv, H x OW doubles), then each of those over the input columns (acc,
 * H x W doubles); every sum runs in a fixed order. */
static void FN(resize_bwd_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    const plane_ctx *c = vc;
    const T *DY = c->x;
    T *DX = c->y;
    const int64_t H = c->H, W = c->W, OH = c->OH, OW = c->OW;
    double *tv = c->be->scratch[tid], *acc = tv + H * OW;
    for (int64_t t = t0; t < t1; t++) {
        const T *dp = DY + t * OH * OW;
        for (int64_t k = 0; k < H * OW; k++) tv[k] = 0;
        for (int64_t i = 0; i < OH; i++) {
            double *r0 = tv + c->hi[2 * i] * OW, *r1 = tv + c->hi[2 * i + 1] * OW;
            const double a0 = c->hl[2 * i], a1 = c->hl[2 * i + 1];
            const T *g = dp + i * OW;
            for (int64_t j = 0; j < OW; j++) r0[j] += a0 * (double)g[j];
            for (int64_t j = 0; j < OW; j++) r1[j] += a1 * (double)g[j];
        }
        for (int64_t k = 0; k < H * W; k++) acc[k] = 0;
        for (int64_t h = 0; h < H; h++) {
            const double *r = tv + h * OW;
            double *o = acc + h * W;
            for (int64_t j = 0; j < OW; j++) {
                o[c->wi[2 * j]] += c->wl[2 * j] * r[j];
                o[c->wi[2 * j + 1]] += c->wl[2 * j + 1] * r[j];
            }
        }
        T *xp = DX + t * H * W;
        for (int64_t k = 0; k < H * W; k++) xp[k] = (T)acc[k];
    }
}

static void FN(gap_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const plane_ctx *c = vc;
    const T *X = c->x;
    T *Y = c->y;
    const int64_t HW = c->H * c->W;
    for (int64_t t = t0; t < t1; t++) {
        const T *p = X + t * HW;
        double acc = 0;
        for (int64_t j = 0; j < HW; j++) acc += p[j];
        Y[t] = (T)(acc / (double)HW);
    }
}

static void FN(gap_bwd_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const plane_ctx *c = vc;
    const T *DY = c->x;
    T *DX = c->y;
    const int64_t HW = c->H * c->W;
    for (int64_t t = t0; t < t1; t++) {
        T v = (T)((double)DY[t] / (double)HW);
        T *p = DX + t * HW;
        for (int64_t j = 0; j < HW; j++) p[j] = v;
    }
}

static void FN(plane)(hcga_backend *be, int kind, int64_t planes, int64_t per_plane,
                      plane_ctx *c)
{
    static const cpu_task_fn fns[] = {FN(ups_task),    FN(ups_bwd_task), FN(resize_task),
                                      FN(resize_bwd_task), FN(gap_task), FN(gap_bwd_task)};
    int64_t grain = per_plane >= 8192 ? 1 : 8192 / (per_plane ? per_plane : 1);
    cpu_parallel(be, planes, grain, fns[kind], c);
}

/* ======================================================================= */
/* GEMM                                                                    */
/* ======================================================================= */

static void FN(gemm)(hcga_backend *be, int ta, int tb, int64_t M, int64_t N, int64_t K,
                     double alpha, const T *a, const T *b, double beta, T *y)
{
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    FN(gemm_mt)(be, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, y, N < 1 ? 1 : N);
}

/* ======================================================================= */
/* Reductions                                                              */
/* ======================================================================= */

typedef struct FN(red_ctx) {
    const T *x;
    int64_t n;
    int absval;
    double *part;
} FN(red_ctx);

static void FN(reduce_task)(void *vc, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const FN(red_ctx) *c = vc;
    for (int64_t ch = c0; ch < c1; ch++) {
        int64_t b = ch * CPU_RED_CHUNK, e = b + CPU_RED_CHUNK;
        if (e > c->n) e = c->n;
        double acc = 0;
        if (c->absval)
            for (int64_t i = b; i < e; i++) acc += fabs((double)c->x[i]);
        else
            for (int64_t i = b; i < e; i++) acc += c->x[i];
        c->part[ch] = acc;
    }
}

/* Sum (or sum of |x|) of n values in a fixed chunked order. */
static hcga_status FN(reduce)(hcga_backend *be, const T *x, int64_t n, int absval, double *out)
{
    int64_t nch = (n + CPU_RED_CHUNK - 1) / CPU_RED_CHUNK;
    double *part = cpu_ws(be, 3, (size_t)(nch ? nch : 1) * sizeof(double));
    if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "reduce: out of memory");
    FN(red_ctx) c = {x, n, absval, part};
    cpu_parallel(be, nch, 1, FN(reduce_task), &c);
    double s = 0;
    for (int64_t i = 0; i < nch; i++) s += part[i];
    *out = s;
    return HCGA_OK;
}

/* ======================================================================= */
/* Losses                                                                  */
/* ======================================================================= */

/* Per-row label-smoothed CE (part[n]) or its gradient (y != NULL). */
static void FN(ce_task)(void *vc, int64_t n0, int64_t n1, int tid)
{
    (void)tid;
    const loss_ctx *c = vc;
    const T *X = c->x;
    const int64_t C = c->C;
    for (int64_t n = n0; n < n1; n++) {
        const T *p = X + n * C;
        int64_t lab = c->labels[n];
        double mx = -INFINITY;
        for (int64_t k = 0; k < C; k++)
            if (p[k] > mx || p[k] != p[k]) mx = p[k];
        double se = 0;
        for (int64_t k = 0; k < C; k++) se += exp((double)p[k] - mx);
        double lse = mx + log(se);
        if (!c->y) {
            double sls = 0;
            for (int64_t k = 0; k < C; k++) sls += (double)p[k] - lse;
            c->part[n] = -((1.0 - c->eps) * ((double)p[lab] - lse) + c->eps / (double)C * sls);
        } else {
            T *q = (T *)c->y + n * C;
            for (int64_t k = 0; k < C; k++) {
                double t = c->eps / (double)C + (k == lab ? 1.0 - c->eps : 0.0);
                q[k] = (T)(c->g * (exp((double)p[k] - lse) - t));
            }
        }
    }
}

/* Pixel CE over chunks of S (fwd: part[2*t] = loss sum, part[2*t+1] = count). */
static void FN(pixce_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const loss_ctx *c = vc;
    const T *X = c->x;
    const int64_t C = c->C, S = c->S;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / c->nch, j0 = (t % c->nch) * CPU_VEC_CHUNK;
        int64_t j1 = j0 + CPU_VEC_CHUNK < S ? j0 + CPU_VEC_CHUNK : S;
        double sum = 0, cnt = 0;
        for (int64_t j = j0; j < j1; j++) {
            int64_t lab = c->labels[n * S + j];
            const T *p = X + n * C * S + j;
            if (lab == c->ignore) {
                if (c->y) {
                    T *q = (T *)c->y + n * C * S + j;
                    for (int64_t k = 0; k < C; k++) q[k * S] = 0;
                }
                continue;
            }
            double mx = -INFINITY;
            for (int64_t k = 0; k < C; k++)
                if (p[k * S] > mx || p[k * S] != p[k * S]) mx = p[k * S];
            double se = 0;
            for (int64_t k = 0; k < C; k++) se += exp((double)p[k * S] - mx);
            double lse = mx + log(se);
            if (!c->y) {
                sum += lse - (double)p[lab * S];
                cnt += 1;
            } else {
                T *q = (T *)c->y + n * C * S + j;
                for (int64_t k = 0; k < C; k++)
                    q[k * S] = (T)(c->g * (exp((double)p[k * S] - lse) - (k == lab ? 1.0 : 0.0)));
            }
        }
        if (!c->y) {
            c->part[2 * t] = sum;
            c->part[2 * t + 1] = cnt;
        }
    }
}

/* Squared norms (dist[N*N + i]) and the distance matrix rows [t0, t1). */
static void FN(tri_dist_task)(void *vc, int64_t i0, int64_t i1, int tid)
{
    (void)tid;
    const loss_ctx *c = vc;
    const T *X = c->x;
    const int64_t N = c->N, D = c->D;
    const double *nrm = c->dist + N * N;
    for (int64_t i = i0; i < i1; i++) {
        const T *xi = X + i * D;
        for (int64_t j = 0; j < N; j++) {
            const T *xj = X + j * D;
            double dot = 0;
            for (int64_t k = 0; k < D; k++) dot += (double)xi[k] * (double)xj[k];
            double sq = nrm[i] + nrm[j] - 2.0 * dot;
            c->dist[i * N + j] = sq; /* squared, clamped by the caller */
        }
    }
}

/* dist[0..N*N) = squared distances (unclamped), dist[N*N..N*N+N) = norms. */
static void FN(tri_dists)(hcga_backend *be, const T *x, int64_t N, int64_t D, double *dist)
{
    for (int64_t i = 0; i < N; i++) {
        double s = 0;
        for (int64_t k = 0; k < D; k++) s += (double)x[i * D + k] * (double)x[i * D + k];
        dist[N * N + i] = s;
    }
    loss_ctx c = {.x = x, .N = N, .D = D, .dist = dist};
    const int64_t nd = N * D;
    int64_t grain = nd >= 16384 ? 1 : 16384 / (nd > 0 ? nd : 1);
    cpu_parallel(be, N, grain, FN(tri_dist_task), &c);
}

/* Triplet gradient: acc (N*D doubles) gathers every anchor's terms in
 * anchor order, then dx = acc.  dist holds the squared distances. */
static void FN(tri_bwd)(const T *x, const int64_t *hard, int64_t N, int64_t D, const double *dist,
                        double g, double margin, double *acc, T *dx)
{
    for (int64_t k = 0; k < N * D; k++) acc[k] = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t p = hard[2 * i], n = hard[2 * i + 1];
        if (p < 0 || n < 0) continue;
        double sap = dist[i * N + p], san = dist[i * N + n];
        double dap = sqrt(sap > 1e-12 ? sap : 1e-12), dan = sqrt(san > 1e-12 ? san : 1e-12);
        double z = dap - dan + margin;
        if (!(z >= 0)) continue; /* hinge inactive (torch passes the gradient at z == 0) */
        const T *xi = x + i * D, *xp = x + p * D, *xn = x + n * D;
        if (sap >= 1e-12) {
            double k = g / dap;
            for (int64_t j = 0; j < D; j++) {
                double t = k * ((double)xi[j] - (double)xp[j]);
                acc[i * D + j] += t;
                acc[p * D + j] -= t;
            }
        }
        if (san >= 1e-12) {
            double k = g / dan;
            for (int64_t j = 0; j < D; j++) {
                double t = k * ((double)xi[j] - (double)xn[j]);
                acc[i * D + j] -= t;
                acc[n * D + j] += t;
            }
        }
    }
    for (int64_t k = 0; k < N * D; k++) dx[k] = (T)acc[k];
}

static void FN(shift_task)(void *vc, int64_t t0, int64_t t1, int tid)
{
    (void)tid;
    const loss_ctx *c = vc;
    const T *X = c->x;
    const int64_t C = c->C, H = c->H, W = c->W, N = c->N;
    const int dn = c->dn, dh = c->dh, dw = c->dw;
    const int64_t off = ((int64_t)dn * C * H + dh) * W + dw;
    const int64_t h0 = dh < 0 ? -dh : 0, h1 = dh > 0 ? H - dh : H;
    const int64_t w0 = dw < 0 ? -dw : 0, w1 = dw > 0 ? W - dw : W;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / C;
        const T *p = X + t * H * W;
        if (!c->y) { /* forward: t ranges over valid base planes */
            double acc = 0;
            int64_t nb = n + (dn < 0 ? -dn : 0);
            const T *pb = X + (nb * C + t % C) * H * W;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    const T *e = pb + h * W + w;
                    acc += fabs((double)e[off] - (double)e[0]);
                }
            c->part[t] = acc;
        } else { /* backward: every plane of dx */
            T *q = (T *)c->y + t * H * W;
            int base_n = (n + dn >= 0 && n + dn < N);
            int shift_n = (n - dn >= 0 && n - dn < N);
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    double v = 0;
                    const T *e = p + h * W + w;
                    if (base_n && h + dh >= 0 && h + dh < H && w + dw >= 0 && w + dw < W) {
                        double d = (double)e[off] - (double)e[0];
                        v -= d > 0 ? 1.0 : d < 0 ? -1.0 : d == 0 ? 0.0 : d;
                    }
                    if (shift_n && h - dh >= 0 && h - dh < H && w - dw >= 0 && w - dw < W) {
                        double d = (double)e[0] - (double)e[-off];
                        v += d > 0 ? 1.0 : d < 0 ? -1.0 : d == 0 ? 0.0 : d;
                    }
                    q[h * W + w] = (T)(c->g * v);
                }
        }
    }
}

/* ======================================================================= */
/* Optimizers                                                              */
/* ======================================================================= */

static void FN(adam_task)(void *vc, int64_t i0, int64_t i1, int tid)
{
    (void)tid;
    const opt_ctx *c = vc;
    const T *G = c->grad;
    T *P = c->param, *M = c->m, *V = c->v;
    const double step_size = c->lr / c->bc1;
    for (int64_t i = i0; i < i1; i++) {
        double p = P[i];
        double g = (double)G[i] + c->wd * p;
        T m = (T)(c->b1 * (double)M[i] + (1.0 - c->b1) * g);
        T v = (T)(c->b2 * (double)V[i] + (1.0 - c->b2) * g * g);
        M[i] = m;
        V[i] = v;
        double denom = sqrt((double)v) / c->bc2s + c->eps;
        P[i] = (T)(p - step_size * (double)m / denom);
    }
}

static void FN(sgd_task)(void *vc, int64_t i0, int64_t i1, int tid)
{
    (void)tid;
    const opt_ctx *c = vc;
    const T *G = c->grad;
    T *P = c->param, *B = c->m;
    for (int64_t i = i0; i < i1; i++) {
        double p = P[i];
        double g = (double)G[i] + c->wd * p;
        T b = (T)(c->step == 1 ? g : c->mom * (double)B[i] + g);
        B[i] = b;
        P[i] = (T)(p - c->lr * (double)b);
    }
}

#undef FN
#undef CPU_CAT
#undef CPU_CAT2
