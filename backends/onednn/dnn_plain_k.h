/*
 * dnn_plain_k.h - the plain-C kernels of the oneDNN backend, written once for
 * a floating type T and included twice by dnn_plain.c (T = float, SFX = f32;
 * T = double, SFX = f64).  They serve every op oneDNN 2.6 has no primitive
 * for on the CPU, and every op at f64 (oneDNN has no f64 there).  Loops are
 * OpenMP worksharing loops with a static schedule over independent outputs;
 * every sum is accumulated in double in an order fixed by the problem size
 * (chunks of DNN_CHUNK, added in order), never by the thread count, so a
 * result is the same bits for any number of threads.  No include guard.
 */
#ifndef T
#error "dnn_plain_k.h needs T and SFX"
#endif

#define DNN_CAT2(a, b) a##_##b
#define DNN_CAT(a, b) DNN_CAT2(a, b)
#define K(name) DNN_CAT(name, SFX)

/* Smallest T t with (x < t) <=> ((double)x < s) for every T x. */
static inline T K(thr)(double s)
{
    T t = (T)s;
    if ((double)t < s) t = (T)nextafter((double)t, INFINITY);
    if (sizeof(T) == 4 && (double)t < s) t = (T)nextafterf((float)t, INFINITY);
    return t;
}

/* The largest channel block of the blocked layouts (nChw16c). */
#ifndef DNN_BMAX
#define DNN_BMAX 16
#endif

/* ---- elementwise --------------------------------------------------------- */

/* One loop per kind (a switch inside the loop kept GCC from vectorising
 * it); every select is written without short-circuit control flow. */
#define DNN_UNARY_LOOP(expr_)                                                                      \
    do {                                                                                           \
        _Pragma("omp parallel for schedule(static) if (n >= DNN_PAR_MIN)")                         \
        for (int64_t i = 0; i < n; i++) {                                                          \
            const T v = x[i], g = dy ? dy[i] : (T)0; /* g loaded unconditionally: a select */     \
            (void)v;                                                                               \
            (void)g;                                                                               \
            y[i] = (expr_);                                                                        \
        }                                                                                          \
    } while (0)

static void K(unary)(int kind, const T *x, const T *dy, T *y, int64_t n, double s)
{
    const T t = K(thr)(s), ts = (T)s;
    switch (kind) {
    case UN_RELU_F: DNN_UNARY_LOOP(!(v <= (T)0) ? v : (T)0); break; /* NaN stays NaN */
    case UN_RELU_B: DNN_UNARY_LOOP(v > (T)0 ? g : (T)0); break;
    case UN_SIG_F: DNN_UNARY_LOOP((T)(1.0 / (1.0 + exp(-(double)v)))); break;
    case UN_SIG_B: DNN_UNARY_LOOP((T)((double)g * (double)v * (1.0 - (double)v))); break;
    case UN_THR_F: DNN_UNARY_LOOP(v < t ? (T)0 : v); break;
    case UN_THR_B: DNN_UNARY_LOOP(v < t ? (T)0 : g); break;
    case UN_SIGN: DNN_UNARY_LOOP(v > 0 ? ts : v < 0 ? -ts : v == 0 ? (T)0 : v); break;
    case UN_SET: DNN_UNARY_LOOP(ts); break;
    default: break;
    }
}
#undef DNN_UNARY_LOOP

/* ADD / MUL with numpy broadcasting: strides sa/sb of a and b over y's
 * shape (0 in a broadcast dim), y dense. */
static void K(binary)(int mul, const T *A, const T *B, T *Y, const int64_t *shape, int nd,
                      const int64_t *sa, const int64_t *sb, double al, double bt)
{
    const int64_t L = nd ? shape[nd - 1] : 1;
    const int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
    int64_t rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
    int same = 1; /* a and b dense with y's shape: one flat, vectorisable loop */
    for (int d = 0; d < nd; d++) same &= sa[d] != 0 && sb[d] != 0 && sa[d] == sb[d];
    if (same || nd == 0) {
        const int64_t n = rows * L;
        if (mul) {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
            for (int64_t i = 0; i < n; i++) Y[i] = (T)(al * ((double)A[i] * (double)B[i]));
        } else {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
            for (int64_t i = 0; i < n; i++) Y[i] = (T)(al * (double)A[i] + bt * (double)B[i]);
        }
        return;
    }
#pragma omp parallel for schedule(static) if (rows * L >= DNN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa = 0, ob = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t idx = rem % shape[d];
            rem /= shape[d];
            oa += idx * sa[d];
            ob += idx * sb[d];
        }
        const T *pa = A + oa, *pb = B + ob;
        T *py = Y + r * L;
        if (mul)
            for (int64_t j = 0; j < L; j++) py[j] = (T)(al * ((double)pa[j * ia] * (double)pb[j * ib]));
        else
            for (int64_t j = 0; j < L; j++) py[j] = (T)(al * (double)pa[j * ia] + bt * (double)pb[j * ib]);
    }
}

#ifndef DNN_RUN
#define DNN_RUN 256 /* outputs summed side by side (SUM_TO) */
#endif

/* SUM_TO: y[j] = sum of x over the dims where y has 1, in double, each sum
 * in the row-major order of the reduced indices: the reduced trailing dims
 * are a contiguous run of L elements, and roff[r] (r < nr) is x's offset of
 * the r-th combination of the other reduced dims (dnn_plain.c's
 * sum_to_offsets: computed once per call, not with a division per element). */
static void K(sum_to)(const T *X, T *Y, const int64_t *xshape, int nd, const int64_t *ys_shape,
                      const int64_t *roff, int64_t nr, int64_t L)
{
    int64_t xs[HCGA_MAX_DIMS], ny = 1;
    int64_t st = 1;
    for (int d = nd - 1; d >= 0; d--) {
        xs[d] = st;
        st *= xshape[d];
    }
    for (int d = 0; d < nd; d++)
        if (ys_shape[d] == xshape[d]) ny *= xshape[d];
    int64_t kin = 1; /* the trailing kept dims: a contiguous run of outputs in x and in y */
    for (int d = nd - 1; d >= 0 && ys_shape[d] == xshape[d]; d--) kin *= xshape[d];
    if (kin > 1 && nr > 1) {
        /* L == 1 here (the last dim is kept).  Runs of up to DNN_RUN
         * outputs side by side, each summed over r in the same order as
         * below: a vector loop over the run instead of a strided walk per
         * output (the backward of a [N,1,H,W] mask's broadcast over C). */
        const int64_t groups = ny / kin, runs = (kin + DNN_RUN - 1) / DNN_RUN;
#pragma omp parallel for schedule(static) if (ny * nr >= DNN_PAR_MIN)
        for (int64_t t = 0; t < groups * runs; t++) {
            const int64_t g = t / runs, k0 = t % runs * DNN_RUN;
            const int64_t len = kin - k0 < DNN_RUN ? kin - k0 : DNN_RUN;
            const int64_t base = dnn_kept_offset(g * kin, xshape, ys_shape, xs, nd);
            double acc[DNN_RUN];
            for (int64_t k = 0; k < len; k++) acc[k] = 0;
            for (int64_t r = 0; r < nr; r++) {
                const T *xb = X + base + roff[r] + k0;
                for (int64_t k = 0; k < len; k++) acc[k] += (double)xb[k];
            }
            for (int64_t k = 0; k < len; k++) Y[g * kin + k0 + k] = (T)acc[k];
        }
        return;
    }
#pragma omp parallel for schedule(static) if (ny * nr * L >= DNN_PAR_MIN)
    for (int64_t j = 0; j < ny; j++) {
        const int64_t base = dnn_kept_offset(j, xshape, ys_shape, xs, nd);
        const T *xb = X + base;
        double acc = 0;
        for (int64_t r = 0; r < nr; r++)
            for (int64_t l = 0; l < L; l++) acc += (double)xb[roff[r] + l];
        Y[j] = (T)acc;
    }
}

/* ---- channel ops (dim 1 of [N, C, S]) ------------------------------------ */

static void K(softmax)(const T *X, const T *DY, T *Y, int64_t N, int64_t C, int64_t S)
{
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * S; t++) {
        const int64_t n = t / S, j = t % S;
        const T *p = X + n * C * S + j;
        T *q = Y + n * C * S + j;
        if (!DY) {
            double mx = -INFINITY, se = 0;
            for (int64_t k = 0; k < C; k++)
                if (p[k * S] > mx || p[k * S] != p[k * S]) mx = p[k * S];
            for (int64_t k = 0; k < C; k++) se += exp((double)p[k * S] - mx);
            for (int64_t k = 0; k < C; k++) q[k * S] = (T)(exp((double)p[k * S] - mx) / se);
        } else {
            const T *d = DY + n * C * S + j;
            double dot = 0;
            for (int64_t k = 0; k < C; k++) dot += (double)p[k * S] * (double)d[k * S];
            for (int64_t k = 0; k < C; k++) q[k * S] = (T)((double)p[k * S] * ((double)d[k * S] - dot));
        }
    }
}

static void K(argmax)(const T *X, int64_t *I, int64_t N, int64_t C, int64_t S)
{
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * S; t++) {
        const int64_t n = t / S, j = t % S;
        const T *p = X + n * C * S + j;
        T best = p[0];
        int64_t bi = 0;
        for (int64_t k = 1; k < C && best == best; k++)
            if (p[k * S] > best || p[k * S] != p[k * S]) best = p[k * S], bi = k;
        I[t] = bi;
    }
}

/* ---- spatial ------------------------------------------------------------- */

static void K(upsample)(const T *X, T *Y, int64_t planes, int64_t H, int64_t W, int64_t f, int bwd)
{
    const int64_t OH = H * f, OW = W * f;
#pragma omp parallel for schedule(static) if (planes * H * W * f * f >= DNN_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        if (!bwd) { /* X: [H, W] -> Y: [OH, OW] */
            const T *x = X + p * H * W;
            T *y = Y + p * OH * OW;
            for (int64_t h = 0; h < OH; h++)
                for (int64_t w = 0; w < OW; w++) y[h * OW + w] = x[(h / f) * W + w / f];
        } else { /* X = dy: [OH, OW] -> Y = dx: [H, W] */
            const T *dy = X + p * OH * OW;
            T *dx = Y + p * H * W;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    double acc = 0;
                    for (int64_t i = 0; i < f; i++)
                        for (int64_t j = 0; j < f; j++) acc += (double)dy[(h * f + i) * OW + w * f + j];
                    dx[h * W + w] = (T)acc;
                }
        }
    }
}

/* upsample on the channel-blocked layout (planes of [H, W, B], the B
 * channels of a block side by side; see "batch norm on a channel-blocked
 * layout" below): the same values, each backward sum over i, j in the same
 * order as above. */
static inline void K(upsample_blk)(const T *X, T *Y, int64_t planes, int64_t H, int64_t W, int64_t f, int bwd,
                                   const int B)
{
    const int64_t OH = H * f, OW = W * f;
#pragma omp parallel for schedule(static) if (planes * H * W * f * f * B >= DNN_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        if (!bwd) {
            const T *x = X + p * H * W * B;
            T *y = Y + p * OH * OW * B;
            for (int64_t h = 0; h < OH; h++)
                for (int64_t w = 0; w < OW; w++)
                    for (int l = 0; l < B; l++) y[(h * OW + w) * B + l] = x[((h / f) * W + w / f) * B + l];
        } else {
            const T *dy = X + p * OH * OW * B;
            T *dx = Y + p * H * W * B;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    double acc[DNN_BMAX] = {0};
                    for (int64_t i = 0; i < f; i++)
                        for (int64_t j = 0; j < f; j++)
                            for (int l = 0; l < B; l++) acc[l] += (double)dy[((h * f + i) * OW + w * f + j) * B + l];
                    for (int l = 0; l < B; l++) dx[(h * W + w) * B + l] = (T)acc[l];
                }
        }
    }
}

/* RESIZE_BILINEAR over planes [H, W] <-> [OH, OW]; the source rows and
 * columns of every output row and column (h0/h1/lh, w0/w1/lw: dnn_plain.c's
 * resize_table, computed once per call instead of once per element).  Both
 * directions are separable, in double: forward, each output row
 * interpolates its two source rows into one row of W (scratch), then the
 * columns; backward, each dy row is scattered into a row of W, then that
 * row into its two rows of the dx plane, accumulated in double (scratch, H*W)
 * and rounded once.  scratch: per_thread doubles for each OpenMP thread
 * (W forward, W + H*W backward). */
static void K(resize)(const T *X, T *Y, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                      const int64_t *h0, const int64_t *h1, const double *lh, const int64_t *w0,
                      const int64_t *w1, const double *lw, int bwd, double *scratch, int64_t per_thread)
{
#pragma omp parallel
    {
        double *row = scratch + (int64_t)omp_get_thread_num() * per_thread, *acc = row + W;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            if (!bwd) {
                const T *x = X + p * H * W;
                T *y = Y + p * OH * OW;
                for (int64_t oh = 0; oh < OH; oh++) {
                    const T *r0 = x + h0[oh] * W, *r1 = x + h1[oh] * W;
                    const double a = 1 - lh[oh], b = lh[oh];
                    for (int64_t w = 0; w < W; w++) row[w] = a * (double)r0[w] + b * (double)r1[w];
                    for (int64_t ow = 0; ow < OW; ow++)
                        y[oh * OW + ow] = (T)((1 - lw[ow]) * row[w0[ow]] + lw[ow] * row[w1[ow]]);
                }
            } else { /* X = dy [OH, OW], Y = dx [H, W] */
                const T *dy = X + p * OH * OW;
                T *dx = Y + p * H * W;
                for (int64_t i = 0; i < H * W; i++) acc[i] = 0;
                for (int64_t oh = 0; oh < OH; oh++) {
                    for (int64_t w = 0; w < W; w++) row[w] = 0;
                    for (int64_t ow = 0; ow < OW; ow++) {
                        const double g = dy[oh * OW + ow];
                        row[w0[ow]] += (1 - lw[ow]) * g;
                        row[w1[ow]] += lw[ow] * g;
                    }
                    const double a = 1 - lh[oh], b = lh[oh];
                    double *q0 = acc + h0[oh] * W, *q1 = acc + h1[oh] * W;
                    for (int64_t w = 0; w < W; w++) q0[w] += a * row[w];
                    for (int64_t w = 0; w < W; w++) q1[w] += b * row[w];
                }
                for (int64_t i = 0; i < H * W; i++) dx[i] = (T)acc[i];
            }
        }
    }
}

static void K(gap)(const T *X, T *Y, int64_t planes, int64_t HW, int bwd)
{
#pragma omp parallel for schedule(static) if (planes * HW >= DNN_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        if (!bwd) {
            double acc = 0;
            for (int64_t j = 0; j < HW; j++) acc += (double)X[p * HW + j];
            Y[p] = (T)(acc / (double)HW);
        } else {
            T v = (T)((double)X[p] / (double)HW);
            for (int64_t j = 0; j < HW; j++) Y[p * HW + j] = v;
        }
    }
}

/* ---- reductions ---------------------------------------------------------- */

static double K(sum)(const T *x, int64_t n, int absval, double *part)
{
    const int64_t nch = (n + DNN_CHUNK - 1) / DNN_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t b = c * DNN_CHUNK, e = b + DNN_CHUNK < n ? b + DNN_CHUNK : n;
        double acc = 0;
        if (absval)
            for (int64_t i = b; i < e; i++) acc += fabs((double)x[i]);
        else
            for (int64_t i = b; i < e; i++) acc += (double)x[i];
        part[c] = acc;
    }
    double s = 0;
    for (int64_t c = 0; c < nch; c++) s += part[c];
    return s;
}

/* ---- batch norm (x [N, C, HW]) ------------------------------------------- */

/* Sums over a channel's planes in DNN_LANES double lanes (lane u takes the
 * elements j with j % DNN_LANES == u, then the lanes are added in order): a
 * fixed order that the compiler can vectorise. */
#ifndef DNN_LANES
#define DNN_LANES 8
#endif
static inline double K(lanes)(const double *acc)
{
    double s = 0;
    for (int u = 0; u < DNN_LANES; u++) s += acc[u];
    return s;
}

/* kind 0: sum x; 1: sum (x-m)^2; 2: sum x^2 */
static void K(plane_sum)(const T *p, int64_t n, double m, int kind, double *acc)
{
    const int64_t nv = n / DNN_LANES * DNN_LANES;
    for (int64_t j = 0; j < nv; j += DNN_LANES)
        for (int u = 0; u < DNN_LANES; u++) {
            const double v = (double)p[j + u] - (kind == 1 ? m : 0.0);
            acc[u] += kind ? v * v : v;
        }
    for (int64_t j = nv; j < n; j++) {
        const double v = (double)p[j] - (kind == 1 ? m : 0.0);
        acc[j - nv] += kind ? v * v : v;
    }
}

/* Per channel: sum and sum of squares (BN_STATS, raw) or mean and biased
 * variance (two passes). */
static void K(bn_moments)(const T *X, int64_t N, int64_t C, int64_t HW, double *o1, double *o2,
                          int raw)
{
#pragma omp parallel for schedule(static) if (N * C * HW >= DNN_PAR_MIN)
    for (int64_t ch = 0; ch < C; ch++) {
        double a1[DNN_LANES] = {0}, a2[DNN_LANES] = {0};
        for (int64_t n = 0; n < N; n++) K(plane_sum)(X + (n * C + ch) * HW, HW, 0.0, 0, a1);
        const double s = K(lanes)(a1);
        if (raw) {
            for (int64_t n = 0; n < N; n++) K(plane_sum)(X + (n * C + ch) * HW, HW, 0.0, 2, a2);
            o1[ch] = s;
            o2[ch] = K(lanes)(a2);
        } else {
            const double mean = s / (double)(N * HW);
            for (int64_t n = 0; n < N; n++) K(plane_sum)(X + (n * C + ch) * HW, HW, mean, 1, a2);
            o1[ch] = mean;
            o2[ch] = K(lanes)(a2) / (double)(N * HW);
        }
    }
}

/* y = gamma*(x-mean)*invstd + beta with per-channel mean, invstd (double). */
static void K(bn_apply)(const T *X, const T *G, const T *B, const double *mean, const double *inv,
                        T *Y, int64_t N, int64_t C, int64_t HW)
{
#pragma omp parallel for schedule(static) if (N * C * HW >= DNN_PAR_MIN)
    for (int64_t t = 0; t < N * C; t++) {
        const int64_t ch = t % C;
        const double m = mean[ch], k = inv[ch] * (double)G[ch], b = (double)B[ch];
        const T *p = X + t * HW;
        T *q = Y + t * HW;
        for (int64_t j = 0; j < HW; j++) q[j] = (T)(((double)p[j] - m) * k + b);
    }
}

/* BN backward sums: sdy = sum dy, sdx = sum dy*xhat per channel (lanes). */
static void K(bn_bsums)(const T *X, const T *DY, const T *SM, const T *SI, int64_t N, int64_t C,
                        int64_t HW, double *sdy, double *sdx)
{
    const int64_t nv = HW / DNN_LANES * DNN_LANES;
#pragma omp parallel for schedule(static) if (N * C * HW >= DNN_PAR_MIN)
    for (int64_t ch = 0; ch < C; ch++) {
        const double m = SM[ch], k = SI[ch];
        double a[DNN_LANES] = {0}, b[DNN_LANES] = {0};
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * C + ch) * HW, *d = DY + (n * C + ch) * HW;
            for (int64_t j = 0; j < nv; j += DNN_LANES)
                for (int u = 0; u < DNN_LANES; u++) {
                    a[u] += (double)d[j + u];
                    b[u] += (double)d[j + u] * (((double)p[j + u] - m) * k);
                }
            for (int64_t j = nv; j < HW; j++) {
                a[j - nv] += (double)d[j];
                b[j - nv] += (double)d[j] * (((double)p[j] - m) * k);
            }
        }
        sdy[ch] = K(lanes)(a);
        sdx[ch] = K(lanes)(b);
    }
}

/* dx = gamma*invstd*(dy - sdy/M - xhat*sdx/M). */
static void K(bn_dx)(const T *X, const T *DY, const T *G, const T *SM, const T *SI, const double *sdy,
                     const double *sdx, double M, T *DX, int64_t N, int64_t C, int64_t HW)
{
#pragma omp parallel for schedule(static) if (N * C * HW >= DNN_PAR_MIN)
    for (int64_t t = 0; t < N * C; t++) {
        const int64_t ch = t % C;
        const double m = SM[ch], k = SI[ch], g = (double)G[ch] * k;
        const double a = sdy[ch] / M, b = sdx[ch] / M;
        const T *p = X + t * HW, *d = DY + t * HW;
        T *q = DX + t * HW;
        for (int64_t j = 0; j < HW; j++) q[j] = (T)(g * ((double)d[j] - a - ((double)p[j] - m) * k * b));
    }
}

/* ---- batch norm on a channel-blocked layout -------------------------------
 * x as the oneDNN backend keeps activations between ops (dnn_act.c): blocks
 * of B channels, element (n, c, j) of [N, C, HW] at ((n*CB + c/B)*HW + j)*B
 * + c%B with CB = C/B (nChw16c: B = 16; nChw8c: B = 8).  Each channel's sums
 * take the same terms in the same order as the plain kernels above (lane
 * j % DNN_LANES of plane element j, planes in n order, lanes added in
 * order), so a blocked call gives the same bits as a plain one; the vectors
 * run across the B channels of a block instead of along a plane.  B is a
 * constant where these are called (dnn_plain.c's BN_BLOCKED), so each
 * inlined copy keeps its accumulators in registers. */
static inline void K(bnb_moments)(const T *X, int64_t N, int64_t CB, int64_t HW, const int B, double *mean,
                                  double *var)
{
#pragma omp parallel for schedule(static) if (N * CB * HW * B >= DNN_PAR_MIN)
    for (int64_t cb = 0; cb < CB; cb++) {
        double acc[DNN_LANES][DNN_BMAX], s[DNN_BMAX];
        const double m = (double)(N * HW);
        memset(acc, 0, sizeof acc);
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * CB + cb) * HW * B;
            for (int64_t j = 0; j < HW; j++)
                for (int l = 0; l < B; l++) acc[j % DNN_LANES][l] += (double)p[j * B + l];
        }
        for (int l = 0; l < B; l++) {
            s[l] = 0;
            for (int u = 0; u < DNN_LANES; u++) s[l] += acc[u][l];
            s[l] /= m;
            mean[cb * B + l] = s[l];
        }
        memset(acc, 0, sizeof acc);
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * CB + cb) * HW * B;
            for (int64_t j = 0; j < HW; j++)
                for (int l = 0; l < B; l++) {
                    const double v = (double)p[j * B + l] - s[l];
                    acc[j % DNN_LANES][l] += v * v;
                }
        }
        for (int l = 0; l < B; l++) {
            double q = 0;
            for (int u = 0; u < DNN_LANES; u++) q += acc[u][l];
            var[cb * B + l] = q / m;
        }
    }
}

/* bn_apply on the blocked layout. */
static inline void K(bnb_apply)(const T *X, const T *G, const T *Bt, const double *mean, const double *inv, T *Y,
                                int64_t N, int64_t CB, int64_t HW, const int B)
{
#pragma omp parallel for schedule(static) if (N * CB * HW * B >= DNN_PAR_MIN)
    for (int64_t t = 0; t < N * CB; t++) {
        const int64_t c0 = t % CB * B;
        double m[DNN_BMAX], k[DNN_BMAX], b[DNN_BMAX];
        for (int l = 0; l < B; l++)
            m[l] = mean[c0 + l], k[l] = inv[c0 + l] * (double)G[c0 + l], b[l] = (double)Bt[c0 + l];
        const T *p = X + t * HW * B;
        T *q = Y + t * HW * B;
        for (int64_t j = 0; j < HW; j++)
            for (int l = 0; l < B; l++) q[j * B + l] = (T)(((double)p[j * B + l] - m[l]) * k[l] + b[l]);
    }
}

/* bn_bsums on the blocked layout. */
static inline void K(bnb_bsums)(const T *X, const T *DY, const T *SM, const T *SI, int64_t N, int64_t CB,
                                int64_t HW, const int B, double *sdy, double *sdx)
{
#pragma omp parallel for schedule(static) if (N * CB * HW * B >= DNN_PAR_MIN)
    for (int64_t cb = 0; cb < CB; cb++) {
        double a[DNN_LANES][DNN_BMAX], b[DNN_LANES][DNN_BMAX], m[DNN_BMAX], k[DNN_BMAX];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        for (int l = 0; l < B; l++) m[l] = SM[cb * B + l], k[l] = SI[cb * B + l];
        for (int64_t n = 0; n < N; n++) {
            const T *p = X + (n * CB + cb) * HW * B, *d = DY + (n * CB + cb) * HW * B;
            for (int64_t j = 0; j < HW; j++)
                for (int l = 0; l < B; l++) {
                    const double g = (double)d[j * B + l];
                    a[j % DNN_LANES][l] += g;
                    b[j % DNN_LANES][l] += g * (((double)p[j * B + l] - m[l]) * k[l]);
                }
        }
        for (int l = 0; l < B; l++) {
            double sa = 0, sb = 0;
            for (int u = 0; u < DNN_LANES; u++) sa += a[u][l], sb += b[u][l];
            sdy[cb * B + l] = sa;
            sdx[cb * B + l] = sb;
        }
    }
}

/* bn_dx on the blocked layout. */
static inline void K(bnb_dx)(const T *X, const T *DY, const T *G, const T *SM, const T *SI, const double *sdy,
                             const double *sdx, double M, T *DX, int64_t N, int64_t CB, int64_t HW, const int B)
{
#pragma omp parallel for schedule(static) if (N * CB * HW * B >= DNN_PAR_MIN)
    for (int64_t t = 0; t < N * CB; t++) {
        const int64_t c0 = t % CB * B;
        double m[DNN_BMAX], k[DNN_BMAX], g[DNN_BMAX], a[DNN_BMAX], b[DNN_BMAX];
        for (int l = 0; l < B; l++) {
            m[l] = SM[c0 + l], k[l] = SI[c0 + l], g[l] = (double)G[c0 + l] * k[l];
            a[l] = sdy[c0 + l] / M, b[l] = sdx[c0 + l] / M;
        }
        const T *p = X + t * HW * B, *d = DY + t * HW * B;
        T *q = DX + t * HW * B;
        for (int64_t j = 0; j < HW; j++)
            for (int l = 0; l < B; l++)
                q[j * B + l] = (T)(g[l] * ((double)d[j * B + l] - a[l] - ((double)p[j * B + l] - m[l]) * k[l] * b[l]));
    }
}

/* ---- convolution (direct loops; the f64 path) ----------------------------- */

static void K(conv_fwd)(const hcga_conv_dims *d, const T *X, const T *Wt, const T *Bs, T *Y)
{
    const int64_t N = d->N, C = d->C, H = d->H, W = d->W, Kk = d->K, R = d->R, S = d->S;
    const int64_t P = d->P, Q = d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * Kk; t++) {
        const int64_t n = t / Kk, k = t % Kk;
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                double acc = Bs ? (double)Bs[k] : 0.0;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t r = 0; r < R; r++) {
                        const int64_t h = p * d->sh - d->ph + r * d->dh;
                        if (h < 0 || h >= H) continue;
                        for (int64_t s = 0; s < S; s++) {
                            const int64_t w = q * d->sw - d->pw + s * d->dw;
                            if (w < 0 || w >= W) continue;
                            acc += (double)X[((n * C + c) * H + h) * W + w] *
                                   (double)Wt[((k * C + c) * R + r) * S + s];
                        }
                    }
                Y[(t * P + p) * Q + q] = (T)acc;
            }
    }
}

static void K(conv_bwd_data)(const hcga_conv_dims *d, const T *DY, const T *Wt, T *DX)
{
    const int64_t N = d->N, C = d->C, H = d->H, W = d->W, Kk = d->K, R = d->R, S = d->S;
    const int64_t P = d->P, Q = d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * C; t++) {
        const int64_t n = t / C, c = t % C;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                double acc = 0;
                for (int64_t r = 0; r < R; r++) {
                    const int64_t ph = h + d->ph - r * d->dh;
                    if (ph < 0 || ph % d->sh) continue;
                    const int64_t p = ph / d->sh;
                    if (p >= P) continue;
                    for (int64_t s = 0; s < S; s++) {
                        const int64_t pw = w + d->pw - s * d->dw;
                        if (pw < 0 || pw % d->sw) continue;
                        const int64_t q = pw / d->sw;
                        if (q >= Q) continue;
                        for (int64_t k = 0; k < Kk; k++)
                            acc += (double)DY[((n * Kk + k) * P + p) * Q + q] *
                                   (double)Wt[((k * C + c) * R + r) * S + s];
                    }
                }
                DX[(t * H + h) * W + w] = (T)acc;
            }
    }
}

static void K(conv_bwd_filter)(const hcga_conv_dims *d, const T *X, const T *DY, T *DW, T *DB)
{
    const int64_t N = d->N, C = d->C, H = d->H, W = d->W, Kk = d->K, R = d->R, S = d->S;
    const int64_t P = d->P, Q = d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < Kk * C * R * S; t++) {
        const int64_t k = t / (C * R * S), c = t / (R * S) % C, r = t / S % R, s = t % S;
        double acc = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++) {
                const int64_t h = p * d->sh - d->ph + r * d->dh;
                if (h < 0 || h >= H) continue;
                for (int64_t q = 0; q < Q; q++) {
                    const int64_t w = q * d->sw - d->pw + s * d->dw;
                    if (w < 0 || w >= W) continue;
                    acc += (double)X[((n * C + c) * H + h) * W + w] *
                           (double)DY[((n * Kk + k) * P + p) * Q + q];
                }
            }
        DW[t] = (T)acc;
    }
    if (DB) {
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < Kk; k++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < P * Q; j++) acc += (double)DY[(n * Kk + k) * P * Q + j];
            DB[k] = (T)acc;
        }
    }
}

/* ---- GEMM: y[M,N] = alpha*op(a)*op(b) + beta*c (c may be y) -------------- */

static void K(gemm)(int ta, int tb, int64_t M, int64_t N, int64_t Kd, double alpha, const T *A,
                    const T *B, double beta, const T *Cm, T *Y)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < Kd; k++) {
                double av = ta ? (double)A[k * M + i] : (double)A[i * Kd + k];
                double bv = tb ? (double)B[j * Kd + k] : (double)B[k * N + j];
                acc += av * bv;
            }
            double v = alpha * acc;
            if (Cm) v += beta * (double)Cm[i * N + j];
            Y[i * N + j] = (T)v;
        }
}

/* ---- losses --------------------------------------------------------------- */

/* log-sum-exp of C values at stride st. */
static inline double K(lse)(const T *p, int64_t C, int64_t st)
{
    double mx = -INFINITY, se = 0;
    for (int64_t k = 0; k < C; k++)
        if (p[k * st] > mx || p[k * st] != p[k * st]) mx = p[k * st];
    for (int64_t k = 0; k < C; k++) se += exp((double)p[k * st] - mx);
    return mx + log(se);
}

/* CE with label smoothing: fwd returns the mean loss; bwd writes dlogits. */
static double K(ce)(const T *X, const int64_t *lab, int64_t N, int64_t C, double eps, double g,
                    T *DX, double *part)
{
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const T *p = X + n * C;
        const double l = K(lse)(p, C, 1);
        if (!DX) {
            double sls = 0;
            for (int64_t k = 0; k < C; k++) sls += (double)p[k] - l;
            part[n] = -((1.0 - eps) * ((double)p[lab[n]] - l) + eps / (double)C * sls);
        } else {
            for (int64_t k = 0; k < C; k++) {
                double t = eps / (double)C + (k == lab[n] ? 1.0 - eps : 0.0);
                DX[n * C + k] = (T)(g * (exp((double)p[k] - l) - t));
            }
        }
    }
    double s = 0;
    if (!DX)
        for (int64_t n = 0; n < N; n++) s += part[n];
    return s;
}

/* Pixel CE over [N, K, S]: fwd returns the loss sum over counted pixels. */
static double K(pixce)(const T *X, const int64_t *lab, int64_t N, int64_t Kc, int64_t S, int64_t ign,
                       double g, T *DX, double *part)
{
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * S; t++) {
        const int64_t n = t / S, j = t % S, l = lab[t];
        const T *p = X + n * Kc * S + j;
        if (l == ign) {
            if (DX)
                for (int64_t k = 0; k < Kc; k++) DX[n * Kc * S + k * S + j] = 0;
            else part[t] = 0;
            continue;
        }
        const double e = K(lse)(p, Kc, S);
        if (!DX) part[t] = e - (double)p[l * S];
        else
            for (int64_t k = 0; k < Kc; k++)
                DX[n * Kc * S + k * S + j] = (T)(g * (exp((double)p[k * S] - e) - (k == l ? 1.0 : 0.0)));
    }
    double s = 0;
    if (!DX) {
        /* chunked in a fixed order */
        for (int64_t t = 0; t < N * S; t++) s += part[t];
    }
    return s;
}

/* Squared distances dist[i*N+j] (unclamped). */
static void K(tri_dist)(const T *X, int64_t N, int64_t D, double *dist, double *nrm)
{
    for (int64_t i = 0; i < N; i++) {
        double s = 0;
        for (int64_t k = 0; k < D; k++) s += (double)X[i * D + k] * (double)X[i * D + k];
        nrm[i] = s;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
            double dot = 0;
            for (int64_t k = 0; k < D; k++) dot += (double)X[i * D + k] * (double)X[j * D + k];
            dist[i * N + j] = nrm[i] + nrm[j] - 2.0 * dot;
        }
}

static void K(tri_bwd)(const T *X, const int64_t *hard, int64_t N, int64_t D, const double *dist,
                       double g, double margin, double *acc, T *DX)
{
    for (int64_t k = 0; k < N * D; k++) acc[k] = 0;
    for (int64_t i = 0; i < N; i++) {
        const int64_t p = hard[2 * i], q = hard[2 * i + 1];
        if (p < 0 || q < 0) continue;
        const double sap = dist[i * N + p], san = dist[i * N + q];
        const double dap = sqrt(sap > 1e-12 ? sap : 1e-12), dan = sqrt(san > 1e-12 ? san : 1e-12);
        if (!(dap - dan + margin >= 0)) continue;
        if (sap >= 1e-12)
            for (int64_t j = 0; j < D; j++) {
                double t = g / dap * ((double)X[i * D + j] - (double)X[p * D + j]);
                acc[i * D + j] += t;
                acc[p * D + j] -= t;
            }
        if (san >= 1e-12)
            for (int64_t j = 0; j < D; j++) {
                double t = g / dan * ((double)X[i * D + j] - (double)X[q * D + j]);
                acc[i * D + j] -= t;
                acc[q * D + j] += t;
            }
    }
    for (int64_t k = 0; k < N * D; k++) DX[k] = (T)acc[k];
}

static inline double K(sgn)(double d)
{
    return d > 0 ? 1.0 : d < 0 ? -1.0 : d == 0 ? 0.0 : d;
}

/* SHIFT_L1: fwd returns the sum of |x[shifted] - x| over the valid region;
 * bwd writes dx = g * d(sum)/dx. */
static double K(shift)(const T *X, int64_t N, int64_t C, int64_t H, int64_t W, int dn, int dh, int dw,
                       double g, T *DX, double *part)
{
    const int64_t off = ((int64_t)dn * C * H + dh) * W + dw;
    if (!DX) {
        const int64_t n0 = dn < 0 ? -dn : 0, n1 = dn > 0 ? N - dn : N;
        const int64_t h0 = dh < 0 ? -dh : 0, h1 = dh > 0 ? H - dh : H;
        const int64_t w0 = dw < 0 ? -dw : 0, w1 = dw > 0 ? W - dw : W;
        const int64_t planes = (n1 > n0 ? n1 - n0 : 0) * C;
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < planes; t++) {
            const T *pb = X + ((n0 * C) + t) * H * W;
            double acc = 0;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    const T *e = pb + h * W + w;
                    acc += fabs((double)e[off] - (double)e[0]);
                }
            part[t] = acc;
        }
        double s = 0;
        for (int64_t t = 0; t < planes; t++) s += part[t];
        return s;
    }
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * C; t++) {
        const int64_t n = t / C;
        const T *p = X + t * H * W;
        T *q = DX + t * H * W;
        const int base_n = n + dn >= 0 && n + dn < N, shift_n = n - dn >= 0 && n - dn < N;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                const T *e = p + h * W + w;
                double v = 0;
                if (base_n && h + dh >= 0 && h + dh < H && w + dw >= 0 && w + dw < W)
                    v -= K(sgn)((double)e[off] - (double)e[0]);
                if (shift_n && h - dh >= 0 && h - dh < H && w - dw >= 0 && w - dw < W)
                    v += K(sgn)((double)e[0] - (double)e[-off]);
                q[h * W + w] = (T)(g * v);
            }
    }
    return 0;
}

/* ---- optimizers ----------------------------------------------------------- */

static void K(adam)(const T *G, T *P, T *M, T *V, int64_t n, const hcga_optim_params *o)
{
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2s = sqrt(1.0 - pow(o->beta2, (double)o->step));
    const double step = o->lr / bc1;
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const double p = P[i], g = (double)G[i] + o->weight_decay * p;
        const T m = (T)(o->beta1 * (double)M[i] + (1.0 - o->beta1) * g);
        const T v = (T)(o->beta2 * (double)V[i] + (1.0 - o->beta2) * g * g);
        M[i] = m;
        V[i] = v;
        P[i] = (T)(p - step * (double)m / (sqrt((double)v) / bc2s + o->eps));
    }
}

static void K(sgd)(const T *G, T *P, T *B, int64_t n, const hcga_optim_params *o)
{
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const double p = P[i], g = (double)G[i] + o->weight_decay * p;
        const T b = (T)(o->step == 1 ? g : o->momentum * (double)B[i] + g);
        B[i] = b;
        P[i] = (T)(p - o->lr * (double)b);
    }
}

#undef K
#undef DNN_CAT
#undef DNN_CAT2
