/*
 * test_cpu_ops.c - unit tests of the reference CPU backend, loaded through
 * the real plugin loader (hcga_be_open("cpu", ...)).
 *
 * Expected values are derived by hand (small cases, worked out in the
 * comments) or by independent naive formulas written here: a direct 7-loop
 * convolution, two-pass batch-norm statistics, the torch Adam/SGD update
 * rules, central finite differences of the op's own (already checked)
 * forward for the backward ops.  Most tests run for f32 and f64 (loop index
 * 0 = f32, 1 = f64).  Batch norm from summed statistics (ABI 1.2) against
 * the whole batch's BN_FWD_TRAIN / BN_BWD, with one part and with two.
 *
 * Mixed precision (ABI 1.1): CAST against hand-written bit patterns (ties to
 * even, NaN, overflow, f16 subnormals, f64 -> half without double rounding)
 * and exhaustive round trips; the bf16 / f16 convolutions and GEMM against
 * the f32 op of this same backend on the same values, rounded with
 * hcga_half.h, bit for bit (a different path through the backend than the
 * half call), and against the naive double results; the checker's half
 * rules and supports().
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "hcga_half.h"
#include "testutil.h"

static hcga_be *BE;
#define MAXBUF 256
static hcga_buffer *g_bufs[MAXBUF];
static int g_nbufs;

static void open_be(const char *opts)
{
    char err[1024];
    int rc = hcga_be_open("cpu", 0, opts, &BE, err, sizeof err);
    ck_assert_msg(rc == 0, "hcga_be_open(cpu): %s", err);
    g_nbufs = 0;
}

static void close_be(void)
{
    for (int i = 0; i < g_nbufs; i++) hcga_be_free(BE, g_bufs[i]);
    g_nbufs = 0;
    hcga_be_close(BE);
    BE = NULL;
}

static void setup(void)
{
    open_be("threads=2");
}

/* ---- tensors ---- */

static hcga_tensor mk(int dt, int nd, const int64_t *shape)
{
    hcga_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = nd;
    for (int i = 0; i < HCGA_MAX_DIMS; i++) t.shape[i] = t.stride[i] = 1;
    int64_t n = 1;
    for (int i = nd - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = n;
        n *= shape[i];
    }
    ck_assert_int_lt(g_nbufs, MAXBUF);
    hcga_buffer *b = NULL;
    ck_assert_int_eq(hcga_be_alloc(BE, (uint64_t)n * hcga_dtype_size(dt), &b), HCGA_OK);
    g_bufs[g_nbufs++] = b;
    t.buf = b;
    return t;
}

static void put(const hcga_tensor *t, const double *v)
{
    int64_t n = hcga_tensor_numel(t);
    size_t es = hcga_dtype_size(t->dtype);
    char *tmp = malloc((size_t)n * es + 1);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == HCGA_F32)
            ((float *)tmp)[i] = (float)v[i];
        else if (t->dtype == HCGA_F64)
            ((double *)tmp)[i] = v[i];
        else
            ((int64_t *)tmp)[i] = (int64_t)v[i];
    }
    ck_assert_int_eq(hcga_be_write(BE, t->buf, t->offset, tmp, (uint64_t)n * es), HCGA_OK);
    free(tmp);
}

/* Tensor of dtype dt with values v (NULL: NaN everywhere, so a partial write shows). */
static hcga_tensor ten(int dt, int nd, const int64_t *shape, const double *v)
{
    hcga_tensor t = mk(dt, nd, shape);
    int64_t n = hcga_tensor_numel(&t);
    double *tmp = NULL;
    if (!v) {
        tmp = malloc((size_t)(n ? n : 1) * sizeof(double));
        for (int64_t i = 0; i < n; i++) tmp[i] = NAN;
        v = tmp;
    }
    if (dt == HCGA_I64 && tmp) /* integer outputs: a sentinel instead of NaN */
        for (int64_t i = 0; i < n; i++) tmp[i] = -12345;
    put(&t, v);
    free(tmp);
    return t;
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TEN(dt, v, ...) ten((dt), NDIM(__VA_ARGS__), SH(__VA_ARGS__), (v))

static void get(const hcga_tensor *t, double *out)
{
    int64_t n = hcga_tensor_numel(t);
    size_t es = hcga_dtype_size(t->dtype);
    char *tmp = malloc((size_t)n * es + 1);
    ck_assert_int_eq(hcga_be_read(BE, t->buf, t->offset, tmp, (uint64_t)n * es), HCGA_OK);
    for (int64_t i = 0; i < n; i++)
        out[i] = t->dtype == HCGA_F32   ? ((float *)tmp)[i]
                 : t->dtype == HCGA_F64 ? ((double *)tmp)[i]
                                        : (double)((int64_t *)tmp)[i];
    free(tmp);
}

static double get1(const hcga_tensor *t)
{
    double v;
    get(t, &v);
    return v;
}

static hcga_status runv(int op, const hcga_op_params *p, int nin, const hcga_tensor *const *in,
                        int nout, const hcga_tensor *const *out)
{
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout};
    for (int i = 0; i < nin; i++) a.in[i] = in[i];
    for (int i = 0; i < nout; i++) a.out[i] = out[i];
    if (p) a.p = *p;
    return hcga_be_run(BE, &a);
}

#define INS(...) ((const hcga_tensor *const[]){__VA_ARGS__})
#define CNT(...) ((int)(sizeof((const hcga_tensor *[]){__VA_ARGS__}) / sizeof(hcga_tensor *)))
#define RUN(op, p, ins, outs)                                                                      \
    do {                                                                                           \
        hcga_status st_ = runv((op), (p), (int)(sizeof(ins) / sizeof(ins[0])), (ins),              \
                               (int)(sizeof(outs) / sizeof(outs[0])), (outs));                     \
        ck_assert_msg(st_ == HCGA_OK, "%s failed (%d): %s", hcga_op_name(op), st_,                 \
                      hcga_be_error(BE));                                                          \
    } while (0)

/* |got - want| <= tol * (1 + |want|) everywhere; NaN fails. */
static void expect_close(const double *got, const double *want, int64_t n, double tol,
                         const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        ck_assert_msg(e <= tol * (1.0 + fabs(want[i])), "%s[%lld]: got %.10g, want %.10g (tol %g)",
                      what, (long long)i, got[i], want[i], tol);
    }
}

static void expect_tensor(const hcga_tensor *t, const double *want, double tol, const char *what)
{
    int64_t n = hcga_tensor_numel(t);
    double *g = malloc((size_t)(n ? n : 1) * sizeof(double));
    get(t, g);
    expect_close(g, want, n, tol, what);
    free(g);
}

static int DT(int i)
{
    return i == 0 ? HCGA_F32 : HCGA_F64;
}
/* Tolerance for results computed in double and rounded once. */
static double TOL(int dt)
{
    return dt == HCGA_F32 ? 2e-7 : 1e-14;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) /* in [-1, 1) */
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}
/* Random values representable in f32, so one expectation serves both dtypes. */
static double *rvec(int64_t n)
{
    double *v = malloc((size_t)(n ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) v[i] = (float)urand();
    return v;
}

/* ======================================================================= */
/* Convolution                                                             */
/* ======================================================================= */

START_TEST(conv_hand)
{
    int dt = DT(_i);
    /* x = 1..9 (3x3), w = [[1,0],[0,-1]]: y[p,q] = x[p,q] - x[p+1,q+1] = -4; bias 0.5 */
    double xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, wv[4] = {1, 0, 0, -1}, bv[1] = {0.5};
    hcga_tensor x = TEN(dt, xv, 1, 1, 3, 3), w = TEN(dt, wv, 1, 1, 2, 2), b = TEN(dt, bv, 1);
    hcga_tensor y = TEN(dt, NULL, 1, 1, 2, 2);
    hcga_op_params p = {.conv = {1, 1, 0, 0, 1, 1}};
    RUN(HCGA_OP_CONV2D_FWD, &p, INS(&x, &w, &b), INS(&y));
    expect_tensor(&y, (double[]){-3.5, -3.5, -3.5, -3.5}, TOL(dt), "y");

    /* stride 2, pad 1, 3x3 ones filter on the 3x3 ramp: output 2x2, each the
     * sum of the in-bounds window: (0,0): 1+2+4+5 = 12, (0,1): 2+3+5+6 = 16,
     * (1,0): 4+5+7+8 = 24, (1,1): 5+6+8+9 = 28 */
    double ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    hcga_tensor w3 = TEN(dt, ones, 1, 1, 3, 3), y2 = TEN(dt, NULL, 1, 1, 2, 2);
    hcga_op_params p2 = {.conv = {2, 2, 1, 1, 1, 1}};
    RUN(HCGA_OP_CONV2D_FWD, &p2, INS(&x, &w3), INS(&y2));
    expect_tensor(&y2, (double[]){12, 16, 24, 28}, TOL(dt), "y (s2 p1)");

    /* backward data of that: dy = 1 everywhere: dx[h,w] = number of windows
     * covering (h,w): corners 1, edges 2, centre 4 */
    double dyv[4] = {1, 1, 1, 1};
    hcga_tensor dy = TEN(dt, dyv, 1, 1, 2, 2), dx = TEN(dt, NULL, 1, 1, 3, 3);
    RUN(HCGA_OP_CONV2D_BWD_DATA, &p2, INS(&dy, &w3), INS(&dx));
    expect_tensor(&dx, (double[]){1, 2, 1, 2, 4, 2, 1, 2, 1}, TOL(dt), "dx");

    /* backward filter: dw[r,s] = sum over windows of x at offset (r,s):
     * dw[0,0] = x(-1,-1)+x(-1,1)+x(1,-1)+x(1,1) = 5, dw[1,1] = 1+3+7+9 = 20 ... */
    hcga_tensor dw = TEN(dt, NULL, 1, 1, 3, 3), db = TEN(dt, NULL, 1);
    RUN(HCGA_OP_CONV2D_BWD_FILTER, &p2, INS(&x, &dy), INS(&dw, &db));
    /* windows centred at (0,0),(0,2),(2,0),(2,2): offset (r-1,s-1) */
    double want[9];
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++) {
            double acc = 0;
            for (int ci = 0; ci <= 2; ci += 2)
                for (int cj = 0; cj <= 2; cj += 2) {
                    int h = ci + r - 1, ww = cj + s - 1;
                    if (h >= 0 && h < 3 && ww >= 0 && ww < 3) acc += xv[h * 3 + ww];
                }
            want[r * 3 + s] = acc;
        }
    ck_assert_double_eq(want[0], 5);
    ck_assert_double_eq(want[4], 20);
    expect_tensor(&dw, want, TOL(dt), "dw");
    expect_tensor(&db, (double[]){4}, TOL(dt), "dbias");
}
END_TEST

typedef struct conv_case {
    int N, C, K, H, W, R, S, sh, sw, ph, pw, dh, dw, bias;
} conv_case;

/* The direct 7-loop convolution and its two backwards, in double. */
static void naive_conv(const conv_case *c, int P, int Q, const double *x, const double *w,
                       const double *b, const double *dy, double *y, double *dx, double *dw,
                       double *db)
{
    memset(dx, 0, sizeof(double) * (size_t)(c->N * c->C * c->H * c->W));
    memset(dw, 0, sizeof(double) * (size_t)(c->K * c->C * c->R * c->S));
    memset(db, 0, sizeof(double) * (size_t)c->K);
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double acc = b ? b[k] : 0;
                    double g = dy[((n * c->K + k) * P + p) * Q + q];
                    db[k] += g;
                    for (int ch = 0; ch < c->C; ch++)
                        for (int r = 0; r < c->R; r++)
                            for (int s = 0; s < c->S; s++) {
                                int h = p * c->sh - c->ph + r * c->dh;
                                int ww = q * c->sw - c->pw + s * c->dw;
                                if (h < 0 || h >= c->H || ww < 0 || ww >= c->W) continue;
                                int xi = ((n * c->C + ch) * c->H + h) * c->W + ww;
                                int wi = ((k * c->C + ch) * c->R + r) * c->S + s;
                                acc += x[xi] * w[wi];
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                    y[((n * c->K + k) * P + p) * Q + q] = acc;
                }
}

static const conv_case conv_cases[] = {
    /* N  C  K  H   W   R  S  sh sw ph pw dh dw bias */
    {2, 3, 4, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1},    /* 3x3 same */
    {3, 4, 5, 7, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1},    /* 1x1 pointwise, grouped images */
    {1, 4, 3, 70, 64, 1, 1, 1, 1, 0, 0, 1, 1, 0},  /* 1x1, one image: straight GEMM */
    {2, 3, 2, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1},    /* stride 2 */
    {2, 2, 3, 9, 9, 3, 2, 1, 2, 2, 1, 2, 1, 0},    /* dilation, asymmetric */
    {2, 3, 2, 8, 8, 1, 1, 2, 2, 0, 0, 1, 1, 1},    /* 1x1 stride 2 (not pointwise) */
    {5, 2, 3, 4, 3, 2, 3, 1, 1, 0, 2, 1, 1, 1},    /* tiny planes, many images */
    {2, 3, 4, 66, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* large plane: one image per GEMM */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1},    /* 1x1x1 */
    {2, 1, 2, 2, 2, 3, 3, 1, 1, 2, 2, 1, 1, 0},    /* padding larger than input */
    {2, 3, 4, 64, 33, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* 1x1, large planes: per-image GEMMs */
    {3, 2, 3, 40, 25, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* 1x1, groups of 2 + 1 images */
    {3, 2, 3, 28, 25, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* 3x3, groups of 2 + 1 images */
    /* few output channels (K*H*W <= C*P*Q/2, H*W >= 128): tap-form GEMMs on x */
    {2, 24, 3, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* stride 1 */
    {2, 32, 2, 16, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1}, /* stride 2 */
    {3, 20, 2, 13, 11, 3, 2, 1, 2, 2, 1, 2, 1, 0}, /* dilation, asymmetric stride */
    {2, 16, 1, 12, 11, 2, 2, 1, 1, 2, 2, 1, 1, 1}, /* padding beyond the filter */
};

/* The three conv ops on case c in dtype dt vs naive_conv. */
static void check_conv_case(int dt, const conv_case *c)
{
    int P = (c->H + 2 * c->ph - c->dh * (c->R - 1) - 1) / c->sh + 1;
    int Q = (c->W + 2 * c->pw - c->dw * (c->S - 1) - 1) / c->sw + 1;
    int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * c->C * c->R * c->S;
    int64_t ny = (int64_t)c->N * c->K * P * Q;
    double *x = rvec(nx), *w = rvec(nw), *b = rvec(c->K), *dyv = rvec(ny);
    double *y = malloc(sizeof(double) * (size_t)ny), *dx = malloc(sizeof(double) * (size_t)nx);
    double *dw = malloc(sizeof(double) * (size_t)nw), *db = malloc(sizeof(double) * (size_t)c->K);
    naive_conv(c, P, Q, x, w, c->bias ? b : NULL, dyv, y, dx, dw, db);

    hcga_tensor tx = TEN(dt, x, c->N, c->C, c->H, c->W), tw = TEN(dt, w, c->K, c->C, c->R, c->S);
    hcga_tensor tb = TEN(dt, b, c->K), ty = TEN(dt, NULL, c->N, c->K, P, Q);
    hcga_tensor tdy = TEN(dt, dyv, c->N, c->K, P, Q), tdx = TEN(dt, NULL, c->N, c->C, c->H, c->W);
    hcga_tensor tdw = TEN(dt, NULL, c->K, c->C, c->R, c->S), tdb = TEN(dt, NULL, c->K);
    hcga_op_params p = {.conv = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw}};
    if (c->bias)
        RUN(HCGA_OP_CONV2D_FWD, &p, INS(&tx, &tw, &tb), INS(&ty));
    else
        RUN(HCGA_OP_CONV2D_FWD, &p, INS(&tx, &tw), INS(&ty));
    RUN(HCGA_OP_CONV2D_BWD_DATA, &p, INS(&tdy, &tw), INS(&tdx));
    RUN(HCGA_OP_CONV2D_BWD_FILTER, &p, INS(&tx, &tdy), INS(&tdw, &tdb));
    /* sums of up to a few hundred products of [-1,1] values */
    double tol = dt == HCGA_F32 ? 2e-5 : 1e-13;
    expect_tensor(&ty, y, tol, "y");
    expect_tensor(&tdx, dx, tol, "dx");
    expect_tensor(&tdw, dw, dt == HCGA_F32 ? 1e-4 : 1e-12, "dw");
    expect_tensor(&tdb, db, tol, "dbias");
    /* without dbias */
    hcga_tensor tdw2 = TEN(dt, NULL, c->K, c->C, c->R, c->S);
    RUN(HCGA_OP_CONV2D_BWD_FILTER, &p, INS(&tx, &tdy), INS(&tdw2));
    expect_tensor(&tdw2, dw, dt == HCGA_F32 ? 1e-4 : 1e-12, "dw (no dbias)");
    free(x), free(w), free(b), free(dyv), free(y), free(dx), free(dw), free(db);
}

START_TEST(conv_vs_naive)
{
    check_conv_case(DT(_i % 2), &conv_cases[_i / 2]);
}
END_TEST

/* The conv paths depend on the thread count: image groups run in parallel
 * parts (uneven when the groups do not divide), a single image splits its
 * GEMMs across threads, and 1 thread runs everything in order. */
START_TEST(conv_thread_counts)
{
    static const char *opts[] = {"threads=1", "threads=3", "threads=4"};
    static const conv_case extra[] = {
        /* N  C   K  H   W   R  S  sh sw ph pw dh dw bias */
        {1, 40, 24, 20, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* one image: GEMMs split */
        {1, 48, 40, 24, 24, 1, 1, 1, 1, 0, 0, 1, 1, 0}, /* one image, 1x1 in place */
        {5, 6, 7, 12, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1},   /* 5 images in groups */
        {7, 5, 3, 48, 48, 1, 1, 1, 1, 0, 0, 1, 1, 1},   /* 7 large 1x1 images */
        {1, 40, 2, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1}, /* one image, tap form */
    };
    close_be();
    open_be(opts[_i]);
    for (size_t k = 0; k < sizeof conv_cases / sizeof conv_cases[0]; k++)
        check_conv_case(HCGA_F32, &conv_cases[k]);
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) {
        check_conv_case(HCGA_F32, &extra[k]);
        check_conv_case(HCGA_F64, &extra[k]);
    }
}
END_TEST

/* ======================================================================= */
/* Batch normalisation                                                     */
/* ======================================================================= */

START_TEST(bn_hand)
{
    int dt = DT(_i);
    /* x[4,1] = 1,2,3,4: mean 2.5, biased var 1.25, unbiased 5/3 */
    double xv[4] = {1, 2, 3, 4};
    hcga_tensor x = TEN(dt, xv, 4, 1), g = TEN(dt, ((double[]){2}), 1),
                b = TEN(dt, ((double[]){1}), 1);
    hcga_tensor y = TEN(dt, NULL, 4, 1), sm = TEN(dt, NULL, 1), si = TEN(dt, NULL, 1);
    hcga_tensor rm = TEN(dt, ((double[]){0}), 1), rv = TEN(dt, ((double[]){1}), 1);
    hcga_op_params p = {.bn = {1e-5, 0.1}};
    RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&x, &g, &b), INS(&y, &sm, &si, &rm, &rv));
    double is = 1.0 / sqrt(1.25 + 1e-5);
    double want[4];
    for (int i = 0; i < 4; i++) want[i] = 2 * (xv[i] - 2.5) * is + 1;
    expect_tensor(&y, want, 4 * TOL(dt), "y");
    expect_tensor(&sm, (double[]){2.5}, TOL(dt), "save_mean");
    expect_tensor(&si, (double[]){is}, TOL(dt), "save_invstd");
    expect_tensor(&rm, (double[]){0.25}, TOL(dt), "running_mean");
    expect_tensor(&rv, (double[]){0.9 + 0.1 * 5.0 / 3.0}, TOL(dt), "running_var");

    /* inference with rm = 2, rv = 3: y = 2*(x-2)/sqrt(3+eps) + 1 */
    hcga_tensor rm2 = TEN(dt, ((double[]){2}), 1), rv2 = TEN(dt, ((double[]){3}), 1);
    hcga_tensor y2 = TEN(dt, NULL, 4, 1);
    RUN(HCGA_OP_BN_FWD_INFER, &p, INS(&x, &g, &b, &rm2, &rv2), INS(&y2));
    for (int i = 0; i < 4; i++) want[i] = 2 * (xv[i] - 2) / sqrt(3 + 1e-5) + 1;
    expect_tensor(&y2, want, 4 * TOL(dt), "y (infer)");
}
END_TEST

/* Two-pass statistics in the test vs the backend, on [N,C,H,W]. */
START_TEST(bn_two_pass)
{
    int dt = DT(_i);
    const int N = 3, C = 4, H = 5, W = 6, HW = 30;
    double *x = rvec(N * C * HW), *g = rvec(C), *b = rvec(C), *rm = rvec(C), *rv = rvec(C);
    for (int i = 0; i < N * C * HW; i++) x[i] = 3 + 2 * x[i]; /* offset mean */
    for (int c = 0; c < C; c++) rv[c] = 1 + fabs(rv[c]);
    hcga_tensor tx = TEN(dt, x, N, C, H, W), tg = TEN(dt, g, C), tb = TEN(dt, b, C);
    hcga_tensor trm = TEN(dt, rm, C), trv = TEN(dt, rv, C);
    hcga_tensor ty = TEN(dt, NULL, N, C, H, W), tsm = TEN(dt, NULL, C), tsi = TEN(dt, NULL, C);
    hcga_op_params p = {.bn = {1e-5, 0.1}};
    RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&tx, &tg, &tb), INS(&ty, &tsm, &tsi, &trm, &trv));
    double *y = malloc(sizeof(double) * N * C * HW);
    double mean[4], invstd[4], nrm[4], nrv[4];
    for (int c = 0; c < C; c++) {
        double s = 0, v = 0;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) s += x[(n * C + c) * HW + j];
        mean[c] = s / (N * HW);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) {
                double d = x[(n * C + c) * HW + j] - mean[c];
                v += d * d;
            }
        invstd[c] = 1 / sqrt(v / (N * HW) + 1e-5);
        nrm[c] = 0.9 * rm[c] + 0.1 * mean[c];
        nrv[c] = 0.9 * rv[c] + 0.1 * v / (N * HW - 1);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < HW; j++) {
                int i = (n * C + c) * HW + j;
                y[i] = (x[i] - mean[c]) * invstd[c] * g[c] + b[c];
            }
    }
    double tol = dt == HCGA_F32 ? 1e-6 : 1e-13;
    expect_tensor(&ty, y, tol, "y");
    expect_tensor(&tsm, mean, tol, "save_mean");
    expect_tensor(&tsi, invstd, tol, "save_invstd");
    expect_tensor(&trm, nrm, tol, "running_mean");
    expect_tensor(&trv, nrv, tol, "running_var");
    free(x), free(g), free(b), free(rm), free(rv), free(y);
}
END_TEST

/* BN backward vs central differences of sum(dy * bn_train(x)) (f64). */
START_TEST(bn_bwd_fd)
{
    const int dt = HCGA_F64, N = 2, C = 3, H = 2, W = 3, n = N * C * H * W;
    double *x = rvec(n), *g = rvec(C), *b = rvec(C), *dy = rvec(n);
    hcga_tensor tx = TEN(dt, x, N, C, H, W), tg = TEN(dt, g, C), tb = TEN(dt, b, C);
    hcga_tensor ty = TEN(dt, NULL, N, C, H, W), tsm = TEN(dt, NULL, C), tsi = TEN(dt, NULL, C);
    hcga_tensor trm = TEN(dt, NULL, C), trv = TEN(dt, NULL, C);
    hcga_tensor tdy = TEN(dt, dy, N, C, H, W);
    hcga_op_params p = {.bn = {1e-5, 0.1}};
    double zeros[3] = {0, 0, 0};
    RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&tx, &tg, &tb), INS(&ty, &tsm, &tsi, &trm, &trv));
    hcga_tensor tdx = TEN(dt, NULL, N, C, H, W), tdg = TEN(dt, NULL, C), tdb = TEN(dt, NULL, C);
    RUN(HCGA_OP_BN_BWD, NULL, INS(&tx, &tdy, &tg, &tsm, &tsi), INS(&tdx, &tdg, &tdb));
    double *dx = malloc(sizeof(double) * n), *yv = malloc(sizeof(double) * n);
    get(&tdx, dx);
    const double h = 1e-6;
    for (int i = 0; i < n; i++) {
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double save = x[i];
            x[i] = save + (sgn ? -h : h);
            put(&tx, x);
            put(&trm, zeros);
            put(&trv, zeros);
            RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&tx, &tg, &tb), INS(&ty, &tsm, &tsi, &trm, &trv));
            get(&ty, yv);
            L[sgn] = 0;
            for (int j = 0; j < n; j++) L[sgn] += dy[j] * yv[j];
            x[i] = save;
        }
        double fd = (L[0] - L[1]) / (2 * h);
        ck_assert_msg(fabs(fd - dx[i]) < 1e-6 * (1 + fabs(fd)), "dx[%d]: %g vs fd %g", i, dx[i], fd);
    }
    /* dgamma = sum dy*xhat, dbeta = sum dy (from the forward's definition) */
    put(&tx, x);
    RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&tx, &tg, &tb), INS(&ty, &tsm, &tsi, &trm, &trv));
    get(&ty, yv);
    double wg[3] = {0, 0, 0}, wb[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        int c = (i / (H * W)) % C;
        wg[c] += dy[i] * (yv[i] - b[c]) / g[c];
        wb[c] += dy[i];
    }
    expect_tensor(&tdg, wg, 1e-9, "dgamma");
    expect_tensor(&tdb, wb, 1e-12, "dbeta");
    free(x), free(g), free(b), free(dy), free(dx), free(yv);
}
END_TEST

/* ---- batch norm from summed statistics (ABI 1.2) ------------------------
 * The facts synchronised BN relies on (hcga_plugin.h section 3): BN_STATS
 * sums a part, the parts' sums add up, and BN_FWD_FROM_STATS /
 * BN_BWD_FROM_STATS with the totals give on each part exactly what
 * BN_FWD_TRAIN / BN_BWD give on the whole batch.  F64, 1e-12. */

#define BNS_N 4
#define BNS_C 3
#define BNS_H 5
#define BNS_W 4
#define BNS_HW (BNS_H * BNS_W)
#define BNS_TOL 1e-12

/* The whole batch's BN_FWD_TRAIN and BN_BWD (f64): y, save_mean,
 * save_invstd, running stats after one update from rm0 / rv0; dx, dgamma,
 * dbeta for dy. */
typedef struct bns_ref {
    double y[BNS_N * BNS_C * BNS_HW], dx[BNS_N * BNS_C * BNS_HW];
    double sm[BNS_C], si[BNS_C], rm[BNS_C], rv[BNS_C], dg[BNS_C], db[BNS_C];
} bns_ref;

static void bns_whole(const double *x, const double *dy, const double *g, const double *b,
                      const double *rm0, const double *rv0, const hcga_op_params *p, bns_ref *r)
{
    const int dt = HCGA_F64, N = BNS_N, C = BNS_C, H = BNS_H, W = BNS_W;
    hcga_tensor tx = TEN(dt, x, N, C, H, W), tg = TEN(dt, g, C), tb = TEN(dt, b, C);
    hcga_tensor ty = TEN(dt, NULL, N, C, H, W), tsm = TEN(dt, NULL, C), tsi = TEN(dt, NULL, C);
    hcga_tensor trm = TEN(dt, rm0, C), trv = TEN(dt, rv0, C);
    RUN(HCGA_OP_BN_FWD_TRAIN, p, INS(&tx, &tg, &tb), INS(&ty, &tsm, &tsi, &trm, &trv));
    hcga_tensor tdy = TEN(dt, dy, N, C, H, W), tdx = TEN(dt, NULL, N, C, H, W);
    hcga_tensor tdg = TEN(dt, NULL, C), tdb = TEN(dt, NULL, C);
    RUN(HCGA_OP_BN_BWD, p, INS(&tx, &tdy, &tg, &tsm, &tsi), INS(&tdx, &tdg, &tdb));
    get(&ty, r->y), get(&tsm, r->sm), get(&tsi, r->si), get(&trm, r->rm), get(&trv, r->rv);
    get(&tdx, r->dx), get(&tdg, r->dg), get(&tdb, r->db);
}

/* Batch data with an offset mean (so sumsq/M - mean^2 cancels a little). */
static void bns_data(double *x, double *dy, double *g, double *b, double *rm0, double *rv0)
{
    const int n = BNS_N * BNS_C * BNS_HW;
    for (int i = 0; i < n; i++) x[i] = 3 + 2 * urand(), dy[i] = urand();
    for (int c = 0; c < BNS_C; c++)
        g[c] = 1 + 0.5 * urand(), b[c] = urand(), rm0[c] = urand(), rv0[c] = 1 + fabs(urand());
}

/* One part: the sums of x alone give BN_FWD_TRAIN's outputs and BN_BWD's dx;
 * BN_STATS by hand on x[4,1] = 1..4; bn.count 1 refused. */
START_TEST(bn_from_stats_one_part)
{
    const int dt = HCGA_F64, N = BNS_N, C = BNS_C, H = BNS_H, W = BNS_W;
    static double x[BNS_N * BNS_C * BNS_HW], dy[BNS_N * BNS_C * BNS_HW];
    double g[BNS_C], b[BNS_C], rm0[BNS_C], rv0[BNS_C];
    bns_data(x, dy, g, b, rm0, rv0);
    hcga_op_params p = {.bn = {1e-5, 0.1, N * BNS_HW}};
    bns_ref r;
    bns_whole(x, dy, g, b, rm0, rv0, &p, &r);

    hcga_tensor tx = TEN(dt, x, N, C, H, W), tg = TEN(dt, g, C), tb = TEN(dt, b, C);
    hcga_tensor tsum = TEN(dt, NULL, C), tsq = TEN(dt, NULL, C);
    RUN(HCGA_OP_BN_STATS, NULL, INS(&tx), INS(&tsum, &tsq));
    hcga_tensor ty = TEN(dt, NULL, N, C, H, W), tsm = TEN(dt, NULL, C), tsi = TEN(dt, NULL, C);
    hcga_tensor trm = TEN(dt, rm0, C), trv = TEN(dt, rv0, C);
    RUN(HCGA_OP_BN_FWD_FROM_STATS, &p, INS(&tx, &tg, &tb, &tsum, &tsq),
        INS(&ty, &tsm, &tsi, &trm, &trv));
    expect_tensor(&ty, r.y, BNS_TOL, "y");
    expect_tensor(&tsm, r.sm, BNS_TOL, "save_mean");
    expect_tensor(&tsi, r.si, BNS_TOL, "save_invstd");
    expect_tensor(&trm, r.rm, BNS_TOL, "running_mean");
    expect_tensor(&trv, r.rv, BNS_TOL, "running_var");

    /* backward: BN_BWD's dbeta / dgamma are sum_dy / sum_dy_xhat */
    hcga_tensor tdy = TEN(dt, dy, N, C, H, W), tdx = TEN(dt, NULL, N, C, H, W);
    hcga_tensor tsd = TEN(dt, r.db, C), tsdx = TEN(dt, r.dg, C);
    RUN(HCGA_OP_BN_BWD_FROM_STATS, &p, INS(&tx, &tdy, &tg, &tsm, &tsi, &tsd, &tsdx), INS(&tdx));
    expect_tensor(&tdx, r.dx, BNS_TOL, "dx");

    /* BN_STATS by hand: 1+2+3+4 = 10, 1+4+9+16 = 30 */
    hcga_tensor hx = TEN(dt, ((double[]){1, 2, 3, 4}), 4, 1);
    hcga_tensor hs = TEN(dt, NULL, 1), hq = TEN(dt, NULL, 1);
    RUN(HCGA_OP_BN_STATS, NULL, INS(&hx), INS(&hs, &hq));
    ck_assert_double_eq(get1(&hs), 10.0);
    ck_assert_double_eq(get1(&hq), 30.0);

    p.bn.count = 1;
    hcga_status st = runv(HCGA_OP_BN_FWD_FROM_STATS, &p, 5, INS(&tx, &tg, &tb, &tsum, &tsq), 5,
                          INS(&ty, &tsm, &tsi, &trm, &trv));
    ck_assert_int_eq(st, HCGA_ERR_INVALID);
    ck_assert_msg(strstr(hcga_be_error(BE), "bn.count (1) must be >= 2"), "%s", hcga_be_error(BE));
}
END_TEST

/* Two parts: x split along N into halves; each half's BN_STATS added, then
 * each half normalised with the totals (count = the whole batch's) gives the
 * whole batch's BN_FWD_TRAIN, and with the halves' BN_BWD dbeta / dgamma
 * added, the whole batch's BN_BWD dx. */
START_TEST(bn_from_stats_two_parts)
{
    const int dt = HCGA_F64, C = BNS_C, H = BNS_H, W = BNS_W, Nh = BNS_N / 2;
    const int64_t half = (int64_t)Nh * C * BNS_HW;
    static double x[BNS_N * BNS_C * BNS_HW], dy[BNS_N * BNS_C * BNS_HW];
    double g[BNS_C], b[BNS_C], rm0[BNS_C], rv0[BNS_C];
    bns_data(x, dy, g, b, rm0, rv0);
    hcga_op_params p = {.bn = {1e-5, 0.1, BNS_N * BNS_HW}};
    bns_ref r;
    bns_whole(x, dy, g, b, rm0, rv0, &p, &r);

    hcga_tensor tg = TEN(dt, g, C), tb = TEN(dt, b, C), tx[2], tdy[2];
    double sum[BNS_C] = {0}, sq[BNS_C] = {0}, sdy[BNS_C] = {0}, sdyx[BNS_C] = {0}, v[BNS_C];
    for (int k = 0; k < 2; k++) {
        tx[k] = TEN(dt, x + k * half, Nh, C, H, W);
        tdy[k] = TEN(dt, dy + k * half, Nh, C, H, W);
        hcga_tensor ts = TEN(dt, NULL, C), tq = TEN(dt, NULL, C);
        RUN(HCGA_OP_BN_STATS, NULL, INS(&tx[k]), INS(&ts, &tq));
        get(&ts, v);
        for (int c = 0; c < C; c++) sum[c] += v[c];
        get(&tq, v);
        for (int c = 0; c < C; c++) sq[c] += v[c];
    }
    hcga_tensor tsum = TEN(dt, sum, C), tsq = TEN(dt, sq, C), tsm[2], tsi[2];
    for (int k = 0; k < 2; k++) {
        hcga_tensor ty = TEN(dt, NULL, Nh, C, H, W), trm = TEN(dt, rm0, C), trv = TEN(dt, rv0, C);
        tsm[k] = TEN(dt, NULL, C), tsi[k] = TEN(dt, NULL, C);
        RUN(HCGA_OP_BN_FWD_FROM_STATS, &p, INS(&tx[k], &tg, &tb, &tsum, &tsq),
            INS(&ty, &tsm[k], &tsi[k], &trm, &trv));
        expect_tensor(&ty, r.y + k * half, BNS_TOL, k ? "y (second half)" : "y (first half)");
        expect_tensor(&tsm[k], r.sm, BNS_TOL, "save_mean");
        expect_tensor(&tsi[k], r.si, BNS_TOL, "save_invstd");
        expect_tensor(&trm, r.rm, BNS_TOL, "running_mean");
        expect_tensor(&trv, r.rv, BNS_TOL, "running_var");
        /* this half's BN_BWD dbeta / dgamma (its dx is not the whole batch's) */
        hcga_tensor tdx = TEN(dt, NULL, Nh, C, H, W), tdg = TEN(dt, NULL, C), tdb = TEN(dt, NULL, C);
        RUN(HCGA_OP_BN_BWD, &p, INS(&tx[k], &tdy[k], &tg, &tsm[k], &tsi[k]), INS(&tdx, &tdg, &tdb));
        get(&tdb, v);
        for (int c = 0; c < C; c++) sdy[c] += v[c];
        get(&tdg, v);
        for (int c = 0; c < C; c++) sdyx[c] += v[c];
    }
    hcga_tensor tsd = TEN(dt, sdy, C), tsdx = TEN(dt, sdyx, C);
    for (int k = 0; k < 2; k++) {
        hcga_tensor tdx = TEN(dt, NULL, Nh, C, H, W);
        RUN(HCGA_OP_BN_BWD_FROM_STATS, &p, INS(&tx[k], &tdy[k], &tg, &tsm[k], &tsi[k], &tsd, &tsdx),
            INS(&tdx));
        expect_tensor(&tdx, r.dx + k * half, BNS_TOL, k ? "dx (second half)" : "dx (first half)");
    }
}
END_TEST

/* BN_STATS: the same bits on every run, and with 1 or 2 threads (the lanes'
 * order depends on the shape only). */
START_TEST(bn_stats_determinism)
{
    const int N = 3, C = 5, H = 17, W = 13, n = N * C * H * W;
    double *x = rvec(n);
    float out[3][2 * 5];
    for (int run = 0; run < 3; run++) {
        close_be();
        open_be(run == 2 ? "threads=1" : "threads=2");
        hcga_tensor tx = TEN(HCGA_F32, x, N, C, H, W), st = TEN(HCGA_F32, NULL, 2 * C);
        hcga_tensor s = st, q = st; /* two halves of one buffer */
        s.shape[0] = q.shape[0] = C;
        q.offset = C * sizeof(float);
        RUN(HCGA_OP_BN_STATS, NULL, INS(&tx), INS(&s, &q));
        ck_assert_int_eq(hcga_be_read(BE, st.buf, 0, out[run], sizeof out[run]), HCGA_OK);
    }
    ck_assert_msg(memcmp(out[0], out[1], sizeof out[0]) == 0, "bn_stats differs between runs");
    ck_assert_msg(memcmp(out[0], out[2], sizeof out[0]) == 0, "bn_stats differs, 2 vs 1 threads");
    free(x);
}
END_TEST

/* ======================================================================= */
/* Elementwise                                                             */
/* ======================================================================= */

START_TEST(elementwise_hand)
{
    int dt = DT(_i);
    double xv[5] = {-2, -0.5, 0, 0.5, 3};
    hcga_tensor x = TEN(dt, xv, 5), y = TEN(dt, NULL, 5), dx = TEN(dt, NULL, 5);
    double dyv[5] = {1, 2, 3, 4, 5};
    hcga_tensor dy = TEN(dt, dyv, 5);

    RUN(HCGA_OP_RELU_FWD, NULL, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){0, 0, 0, 0.5, 3}, 0, "relu");
    RUN(HCGA_OP_RELU_BWD, NULL, INS(&y, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){0, 0, 0, 4, 5}, 0, "relu_bwd");

    RUN(HCGA_OP_SIGMOID_FWD, NULL, INS(&x), INS(&y));
    double s[5];
    for (int i = 0; i < 5; i++) s[i] = 1 / (1 + exp(-xv[i]));
    ck_assert_double_eq(s[2], 0.5);
    expect_tensor(&y, s, TOL(dt), "sigmoid");
    double ys[5];
    get(&y, ys); /* the stored (rounded) sigmoid feeds the backward */
    RUN(HCGA_OP_SIGMOID_BWD, NULL, INS(&y, &dy), INS(&dx));
    double ds[5];
    for (int i = 0; i < 5; i++) ds[i] = dyv[i] * ys[i] * (1 - ys[i]);
    expect_tensor(&dx, ds, TOL(dt), "sigmoid_bwd");

    hcga_op_params th = {.scalar = {0.25, 0}};
    RUN(HCGA_OP_THRESH_FWD, &th, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){0, 0, 0, 0.5, 3}, 0, "thresh");
    th.scalar.a = -0.5; /* x == t is kept (x < t ? 0 : x) */
    RUN(HCGA_OP_THRESH_FWD, &th, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){0, -0.5, 0, 0.5, 3}, 0, "thresh t=-0.5");
    RUN(HCGA_OP_THRESH_BWD, &th, INS(&x, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){0, 2, 3, 4, 5}, 0, "thresh_bwd");

    /* a threshold that f32 cannot represent compares as the exact value:
     * (float)0.1 > 0.1 is kept, the float just below 0.1 is not */
    float above = 0.1f, below = nextafterf(0.1f, 0.0f);
    ck_assert((double)above > 0.1 && (double)below < 0.1);
    hcga_tensor xt = TEN(dt, ((double[]){above, below}), 2), yt = TEN(dt, NULL, 2);
    th.scalar.a = 0.1;
    RUN(HCGA_OP_THRESH_FWD, &th, INS(&xt), INS(&yt));
    expect_tensor(&yt, (double[]){above, 0}, 0, "thresh t=0.1");
    hcga_tensor dyt = TEN(dt, ((double[]){5, 6}), 2);
    RUN(HCGA_OP_THRESH_BWD, &th, INS(&xt, &dyt), INS(&yt));
    expect_tensor(&yt, (double[]){5, 0}, 0, "thresh_bwd t=0.1");

    /* in place (y aliases x) is allowed for elementwise ops */
    RUN(HCGA_OP_RELU_FWD, NULL, INS(&x), INS(&x));
    expect_tensor(&x, (double[]){0, 0, 0, 0.5, 3}, 0, "relu in place");
}
END_TEST

/* y[idx] = alpha*a + beta*b (or alpha*a*b) with broadcasting, naive. */
static void naive_bin(int mul, double al, double be, const int64_t *ys, const int64_t *as,
                      const int64_t *bs, const double *a, const double *b, double *y)
{
    for (int64_t i0 = 0; i0 < ys[0]; i0++)
        for (int64_t i1 = 0; i1 < ys[1]; i1++)
            for (int64_t i2 = 0; i2 < ys[2]; i2++)
                for (int64_t i3 = 0; i3 < ys[3]; i3++) {
                    int64_t ia = (((as[0] > 1 ? i0 : 0) * as[1] + (as[1] > 1 ? i1 : 0)) * as[2] +
                                  (as[2] > 1 ? i2 : 0)) * as[3] + (as[3] > 1 ? i3 : 0);
                    int64_t ib = (((bs[0] > 1 ? i0 : 0) * bs[1] + (bs[1] > 1 ? i1 : 0)) * bs[2] +
                                  (bs[2] > 1 ? i2 : 0)) * bs[3] + (bs[3] > 1 ? i3 : 0);
                    int64_t iy = ((i0 * ys[1] + i1) * ys[2] + i2) * ys[3] + i3;
                    y[iy] = mul ? al * a[ia] * b[ib] : al * a[ia] + be * b[ib];
                }
}

START_TEST(add_mul_broadcast)
{
    int dt = DT(_i);
    const int64_t ys[4] = {2, 3, 4, 5};
    const int64_t shapes[][2][4] = {
        {{2, 3, 4, 5}, {2, 3, 4, 5}}, /* same shape */
        {{2, 3, 4, 5}, {2, 1, 4, 5}}, /* over channels */
        {{2, 3, 4, 5}, {1, 3, 1, 1}}, /* per channel */
        {{2, 3, 4, 5}, {1, 1, 1, 1}}, /* scalar-shaped */
        {{1, 3, 1, 5}, {2, 1, 4, 1}}, /* both broadcast */
        {{2, 3, 4, 1}, {2, 3, 4, 5}}, /* a broadcast on the last dim */
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int mul = 0; mul < 2; mul++) {
            const int64_t *as = shapes[k][0], *bs = shapes[k][1];
            int64_t na = as[0] * as[1] * as[2] * as[3], nb = bs[0] * bs[1] * bs[2] * bs[3];
            double *a = rvec(na), *b = rvec(nb), want[120];
            naive_bin(mul, 1.5, -0.25, ys, as, bs, a, b, want);
            hcga_tensor ta = ten(dt, 4, as, a), tb = ten(dt, 4, bs, b), ty = ten(dt, 4, ys, NULL);
            hcga_op_params p = {.scalar = {1.5, -0.25}};
            RUN(mul ? HCGA_OP_MUL : HCGA_OP_ADD, &p, INS(&ta, &tb), INS(&ty));
            char what[64];
            snprintf(what, sizeof what, "%s case %zu", mul ? "mul" : "add", k);
            expect_tensor(&ty, want, 2 * TOL(dt), what);
            free(a), free(b);
        }
    /* hand: 2 * [1,2] + 3 * [[10],[20]] -> [[32,34],[62,64]] */
    hcga_tensor a = TEN(dt, ((double[]){1, 2}), 1, 2), b = TEN(dt, ((double[]){10, 20}), 2, 1);
    hcga_tensor y = TEN(dt, NULL, 2, 2);
    hcga_op_params p = {.scalar = {2, 3}};
    RUN(HCGA_OP_ADD, &p, INS(&a, &b), INS(&y));
    expect_tensor(&y, (double[]){32, 34, 62, 64}, 0, "add hand");
    RUN(HCGA_OP_MUL, &p, INS(&a, &b), INS(&y));
    expect_tensor(&y, (double[]){20, 40, 40, 80}, 0, "mul hand");

    /* rows longer than one task (16384 elements): split along the row, the
     * last piece partial; same shape (one coalesced row) and a broadcast */
    const int64_t bys[4] = {2, 1, 3, 17000};
    const int64_t big[][2][4] = {
        {{2, 1, 3, 17000}, {2, 1, 3, 17000}},
        {{2, 1, 3, 17000}, {1, 1, 3, 17000}},
        {{2, 1, 3, 17000}, {2, 1, 3, 1}},
    };
    const int64_t nby = 2 * 3 * 17000;
    double *bw = malloc(sizeof(double) * (size_t)nby);
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++)
        for (int mul = 0; mul < 2; mul++) {
            const int64_t *as = big[k][0], *bs = big[k][1];
            int64_t na = as[0] * as[1] * as[2] * as[3], nb = bs[0] * bs[1] * bs[2] * bs[3];
            double *va = rvec(na), *vb = rvec(nb);
            naive_bin(mul, 1.5, -0.25, bys, as, bs, va, vb, bw);
            hcga_tensor ta = ten(dt, 4, as, va), tb = ten(dt, 4, bs, vb), ty = ten(dt, 4, bys, NULL);
            hcga_op_params pb = {.scalar = {1.5, -0.25}};
            RUN(mul ? HCGA_OP_MUL : HCGA_OP_ADD, &pb, INS(&ta, &tb), INS(&ty));
            char what[64];
            snprintf(what, sizeof what, "%s long-row case %zu", mul ? "mul" : "add", k);
            expect_tensor(&ty, bw, 2 * TOL(dt), what);
            free(va), free(vb);
        }
    free(bw);
}
END_TEST

START_TEST(sum_to_cases)
{
    int dt = DT(_i);
    const int64_t xs[4] = {2, 3, 4, 5};
    double *x = rvec(120);
    hcga_tensor tx = ten(dt, 4, xs, x);
    const int64_t targets[][4] = {{1, 3, 1, 1}, {2, 1, 4, 5}, {1, 1, 1, 1}, {2, 3, 4, 1},
                                  {2, 3, 4, 5}, {1, 3, 4, 1}, {2, 1, 1, 5}, {1, 1, 4, 5}};
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        const int64_t *ys = targets[k];
        double want[120] = {0};
        for (int i0 = 0; i0 < 2; i0++)
            for (int i1 = 0; i1 < 3; i1++)
                for (int i2 = 0; i2 < 4; i2++)
                    for (int i3 = 0; i3 < 5; i3++) {
                        int64_t iy = (((ys[0] > 1 ? i0 : 0) * ys[1] + (ys[1] > 1 ? i1 : 0)) * ys[2] +
                                      (ys[2] > 1 ? i2 : 0)) * ys[3] + (ys[3] > 1 ? i3 : 0);
                        want[iy] += x[((i0 * 3 + i1) * 4 + i2) * 5 + i3];
                    }
        hcga_tensor ty = ten(dt, 4, ys, NULL);
        RUN(HCGA_OP_SUM_TO, NULL, INS(&tx), INS(&ty));
        char what[64];
        snprintf(what, sizeof what, "sum_to case %zu", k);
        expect_tensor(&ty, want, dt == HCGA_F32 ? 1e-6 : 1e-14, what);
    }
    /* a long kept last dim (several 256-chunks) reduced over dim 0 */
    double *x2 = rvec(3 * 700);
    hcga_tensor t2 = TEN(dt, x2, 3, 700), y2 = TEN(dt, NULL, 1, 700);
    RUN(HCGA_OP_SUM_TO, NULL, INS(&t2), INS(&y2));
    double w2[700];
    for (int j = 0; j < 700; j++) w2[j] = x2[j] + x2[700 + j] + x2[1400 + j];
    expect_tensor(&y2, w2, dt == HCGA_F32 ? 1e-6 : 1e-14, "sum_to [3,700]->[1,700]");
    free(x), free(x2);
}
END_TEST

START_TEST(copy_fill)
{
    /* x = [[1,2,3],[4,5,6]] viewed transposed (shape [3,2], strides [1,3]) -> y f64 */
    hcga_tensor x = TEN(HCGA_F32, ((double[]){1, 2, 3, 4, 5, 6}), 2, 3);
    hcga_tensor xt = x;
    xt.shape[0] = 3, xt.shape[1] = 2, xt.stride[0] = 1, xt.stride[1] = 3;
    hcga_tensor y = TEN(HCGA_F64, NULL, 3, 2);
    RUN(HCGA_OP_COPY, NULL, INS(&xt), INS(&y));
    expect_tensor(&y, (double[]){1, 4, 2, 5, 3, 6}, 0, "copy transpose f32->f64");
    /* f64 -> f32 rounding, into a strided destination (every other element) */
    hcga_tensor d = TEN(HCGA_F64, ((double[]){0.1, 0.2, 0.3}), 3);
    hcga_tensor z = TEN(HCGA_F32, ((double[]){9, 9, 9, 9, 9, 9}), 6);
    hcga_tensor zs = z;
    zs.shape[0] = 3, zs.stride[0] = 2;
    RUN(HCGA_OP_COPY, NULL, INS(&d), INS(&zs));
    expect_tensor(&z, (double[]){(float)0.1, 9, (float)0.2, 9, (float)0.3, 9}, 0, "copy strided");

    hcga_tensor f = TEN(HCGA_F32, NULL, 7);
    hcga_op_params p = {.scalar = {-2.5, 0}};
    RUN(HCGA_OP_FILL, &p, INS(), INS(&f));
    expect_tensor(&f, (double[]){-2.5, -2.5, -2.5, -2.5, -2.5, -2.5, -2.5}, 0, "fill f32");
    hcga_tensor fi = TEN(HCGA_I64, NULL, 3);
    p.scalar.a = -7;
    RUN(HCGA_OP_FILL, &p, INS(), INS(&fi));
    expect_tensor(&fi, (double[]){-7, -7, -7}, 0, "fill i64");
    hcga_tensor f32i = mk(HCGA_I32, 1, SH(2));
    p.scalar.a = 1e30;
    ck_assert_int_eq(runv(HCGA_OP_FILL, &p, 0, NULL, 1, INS(&f32i)), HCGA_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(hcga_be_error(BE), "fill"));
}
END_TEST

/* ======================================================================= */
/* Channel ops                                                             */
/* ======================================================================= */

START_TEST(softmax_hand)
{
    int dt = DT(_i);
    /* x = (0, ln 2, ln 5) -> exp = 1, 2, 5 -> softmax = 1/8, 2/8, 5/8 */
    hcga_tensor x = TEN(dt, ((double[]){0, log(2.0), log(5.0)}), 1, 3), y = TEN(dt, NULL, 1, 3);
    RUN(HCGA_OP_SOFTMAX_FWD, NULL, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){0.125, 0.25, 0.625}, 2 * TOL(dt), "softmax");
    /* dx = y*(dy - sum dy*y): dy = (1,0,0): sum = 1/8 -> (1/8*7/8, -2/8*1/8, -5/8*1/8) */
    hcga_tensor yy = TEN(dt, ((double[]){0.125, 0.25, 0.625}), 1, 3);
    hcga_tensor dy = TEN(dt, ((double[]){1, 0, 0}), 1, 3), dx = TEN(dt, NULL, 1, 3);
    RUN(HCGA_OP_SOFTMAX_BWD, NULL, INS(&yy, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){7.0 / 64, -2.0 / 64, -5.0 / 64}, TOL(dt), "softmax_bwd");

    /* over dim 1 of [2,3,300] (several chunks): each column sums to 1 and
     * matches exp(x)/sum exp(x) */
    double *xv = rvec(1800);
    for (int i = 0; i < 1800; i++) xv[i] *= 16;
    hcga_tensor x3 = TEN(dt, xv, 2, 3, 300), y3 = TEN(dt, NULL, 2, 3, 300);
    RUN(HCGA_OP_SOFTMAX_FWD, NULL, INS(&x3), INS(&y3));
    double want[1800];
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 300; j++) {
            double s = 0;
            for (int c = 0; c < 3; c++) s += exp(xv[(n * 3 + c) * 300 + j]);
            for (int c = 0; c < 3; c++) want[(n * 3 + c) * 300 + j] = exp(xv[(n * 3 + c) * 300 + j]) / s;
        }
    expect_tensor(&y3, want, dt == HCGA_F32 ? 1e-6 : 1e-13, "softmax [2,3,300]");
    free(xv);
}
END_TEST

START_TEST(concat_split_argmax)
{
    int dt = DT(_i);
    /* x0[2,1,2] = {1,2 | 3,4}, x1[2,2,2] = {5,6,7,8 | 9,10,11,12} */
    hcga_tensor x0 = TEN(dt, ((double[]){1, 2, 3, 4}), 2, 1, 2);
    hcga_tensor x1 = TEN(dt, ((double[]){5, 6, 7, 8, 9, 10, 11, 12}), 2, 2, 2);
    hcga_tensor y = TEN(dt, NULL, 2, 3, 2);
    RUN(HCGA_OP_CONCAT, NULL, INS(&x0, &x1), INS(&y));
    expect_tensor(&y, (double[]){1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}, 0, "concat");
    hcga_tensor d0 = TEN(dt, NULL, 2, 1, 2), d1 = TEN(dt, NULL, 2, 2, 2);
    RUN(HCGA_OP_SPLIT, NULL, INS(&y), INS(&d0, &d1));
    expect_tensor(&d0, (double[]){1, 2, 3, 4}, 0, "split 0");
    expect_tensor(&d1, (double[]){5, 6, 7, 8, 9, 10, 11, 12}, 0, "split 1");

    /* argmax over dim 1 of [2,3,2] with ties -> first index */
    hcga_tensor a = TEN(dt, ((double[]){1, 5, 3, 5, 3, 0, /* n0: col0 1,3,3 -> 1; col1 5,5,0 -> 0 */
                                        -1, -2, -3, 7, -1, 7}), /* n1: col0 -1,-3,-1 -> 0; col1 -2,7,7 -> 1 */
                        2, 3, 2);
    hcga_tensor idx = TEN(HCGA_I64, NULL, 2, 2);
    RUN(HCGA_OP_ARGMAX, NULL, INS(&a), INS(&idx));
    expect_tensor(&idx, (double[]){1, 0, 0, 1}, 0, "argmax");
}
END_TEST

/* ======================================================================= */
/* Spatial                                                                 */
/* ======================================================================= */

START_TEST(upsample_gap)
{
    int dt = DT(_i);
    hcga_tensor x = TEN(dt, ((double[]){1, 2, 3, 4}), 1, 1, 2, 2), y = TEN(dt, NULL, 1, 1, 4, 4);
    hcga_op_params p = {.resize = {2, 0}};
    RUN(HCGA_OP_UPSAMPLE_NEAREST_FWD, &p, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0, "upsample");
    double dyv[16];
    for (int i = 0; i < 16; i++) dyv[i] = i;
    hcga_tensor dy = TEN(dt, dyv, 1, 1, 4, 4), dx = TEN(dt, NULL, 1, 1, 2, 2);
    RUN(HCGA_OP_UPSAMPLE_NEAREST_BWD, &p, INS(&dy), INS(&dx));
    /* block sums: 0+1+4+5, 2+3+6+7, 8+9+12+13, 10+11+14+15 */
    expect_tensor(&dx, (double[]){10, 18, 42, 50}, 0, "upsample_bwd");

    hcga_tensor g = TEN(dt, NULL, 1, 1);
    RUN(HCGA_OP_GAP_FWD, NULL, INS(&dy), INS(&g));
    expect_tensor(&g, (double[]){7.5}, 0, "gap");
    hcga_tensor gd = TEN(dt, ((double[]){8}), 1, 1), gx = TEN(dt, NULL, 1, 1, 2, 2);
    RUN(HCGA_OP_GAP_BWD, NULL, INS(&gd), INS(&gx));
    expect_tensor(&gx, (double[]){2, 2, 2, 2}, 0, "gap_bwd");
}
END_TEST

START_TEST(resize_bilinear)
{
    int dt = DT(_i);
    hcga_tensor x = TEN(dt, ((double[]){0, 1, 2, 3}), 1, 1, 2, 2), y = TEN(dt, NULL, 1, 1, 3, 3);
    hcga_op_params p = {.resize = {0, 1}};
    /* align_corners: src = dst*(2-1)/(3-1) = 0, 0.5, 1 */
    RUN(HCGA_OP_RESIZE_BILINEAR_FWD, &p, INS(&x), INS(&y));
    expect_tensor(&y, (double[]){0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3}, TOL(dt), "resize ac=1");
    /* align_corners = 0, 2 -> 4: src = (d+0.5)/2-0.5 = -0.25->0, 0.25, 0.75, 1.25 (clamped index) */
    hcga_tensor y4 = TEN(dt, NULL, 1, 1, 4, 4);
    p.resize.align_corners = 0;
    RUN(HCGA_OP_RESIZE_BILINEAR_FWD, &p, INS(&x), INS(&y4));
    double r[4] = {0, 0.25, 0.75, 1}; /* 1-D profile along w of row (0,1) */
    double want[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) want[i * 4 + j] = 2 * r[i] + r[j];
    expect_tensor(&y4, want, TOL(dt), "resize ac=0");

    /* backward is the adjoint of forward: <R x, dy> = <x, R^T dy>, on random
     * data and both modes, [2,3,5,7] -> [2,3,8,4] */
    for (int ac = 0; ac < 2; ac++) {
        double *xv = rvec(2 * 3 * 35), *dyv = rvec(2 * 3 * 32);
        hcga_tensor tx = TEN(dt, xv, 2, 3, 5, 7), ty = TEN(dt, NULL, 2, 3, 8, 4);
        hcga_tensor tdy = TEN(dt, dyv, 2, 3, 8, 4), tdx = TEN(dt, NULL, 2, 3, 5, 7);
        p.resize.align_corners = ac;
        RUN(HCGA_OP_RESIZE_BILINEAR_FWD, &p, INS(&tx), INS(&ty));
        RUN(HCGA_OP_RESIZE_BILINEAR_BWD, &p, INS(&tdy), INS(&tdx));
        double yv[192], dxv[210], l = 0, rr = 0;
        get(&ty, yv);
        get(&tdx, dxv);
        for (int i = 0; i < 192; i++) l += yv[i] * dyv[i];
        for (int i = 0; i < 210; i++) rr += xv[i] * dxv[i];
        ck_assert_msg(fabs(l - rr) < (dt == HCGA_F32 ? 1e-4 : 1e-12), "adjoint ac=%d: %g vs %g", ac, l, rr);
        free(xv), free(dyv);
    }
}
END_TEST

/* ======================================================================= */
/* GEMM and reductions                                                     */
/* ======================================================================= */

START_TEST(gemm_cases)
{
    int dt = DT(_i);
    const int M = 5, N = 4, K = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int withc = 0; withc < 3; withc++) { /* 0: no c, 1: c, 2: c == y */
                double *a = rvec(M * K), *b = rvec(K * N), *c = rvec(M * N), want[20];
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                        want[i * N + j] = 0.5 * s + (withc ? -2.0 * c[i * N + j] : 0);
                    }
                hcga_tensor tA = ta ? TEN(dt, a, K, M) : TEN(dt, a, M, K);
                hcga_tensor tB = tb ? TEN(dt, b, N, K) : TEN(dt, b, K, N);
                hcga_tensor tc = TEN(dt, c, M, N), ty = TEN(dt, NULL, M, N);
                hcga_op_params p = {.gemm = {ta, tb, 0.5, -2.0}};
                if (withc == 0)
                    RUN(HCGA_OP_GEMM, &p, INS(&tA, &tB), INS(&ty));
                else if (withc == 1)
                    RUN(HCGA_OP_GEMM, &p, INS(&tA, &tB, &tc), INS(&ty));
                else
                    RUN(HCGA_OP_GEMM, &p, INS(&tA, &tB, &tc), INS(&tc));
                char what[64];
                snprintf(what, sizeof what, "gemm ta%d tb%d c%d", ta, tb, withc);
                expect_tensor(withc == 2 ? &tc : &ty, want, dt == HCGA_F32 ? 1e-6 : 1e-14, what);
                free(a), free(b), free(c);
            }
}
END_TEST

START_TEST(reduce_cases)
{
    int dt = DT(_i);
    hcga_tensor x = TEN(dt, ((double[]){1, -2, 0, 5}), 2, 2), y = TEN(dt, NULL, 1);
    hcga_op_params p = {.reduce = {HCGA_REDUCE_SUM}};
    RUN(HCGA_OP_REDUCE, &p, INS(&x), INS(&y));
    ck_assert_double_eq(get1(&y), 4);
    p.reduce.kind = HCGA_REDUCE_MEAN;
    RUN(HCGA_OP_REDUCE, &p, INS(&x), INS(&y));
    ck_assert_double_eq(get1(&y), 1);
    p.reduce.kind = HCGA_REDUCE_ABS_MEAN;
    RUN(HCGA_OP_REDUCE, &p, INS(&x), INS(&y));
    ck_assert_double_eq(get1(&y), 2);

    hcga_tensor dy = TEN(dt, ((double[]){8}), 1), dx = TEN(dt, NULL, 2, 2);
    p.reduce.kind = HCGA_REDUCE_SUM;
    RUN(HCGA_OP_REDUCE_BWD, &p, INS(&x, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){8, 8, 8, 8}, 0, "reduce_bwd sum");
    p.reduce.kind = HCGA_REDUCE_MEAN;
    RUN(HCGA_OP_REDUCE_BWD, &p, INS(&x, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){2, 2, 2, 2}, 0, "reduce_bwd mean");
    p.reduce.kind = HCGA_REDUCE_ABS_MEAN;
    RUN(HCGA_OP_REDUCE_BWD, &p, INS(&x, &dy), INS(&dx));
    expect_tensor(&dx, (double[]){2, -2, 0, 2}, 0, "reduce_bwd abs_mean");

    /* a long sum over several fixed chunks: 0.5 * 200000 exactly representable */
    int64_t n = 200000;
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = (i % 2) ? 0.75 : 0.25;
    hcga_tensor big = TEN(dt, v, n), yb = TEN(dt, NULL, 1);
    p.reduce.kind = HCGA_REDUCE_SUM;
    RUN(HCGA_OP_REDUCE, &p, INS(&big), INS(&yb));
    ck_assert_double_eq(get1(&yb), 100000);
    free(v);
}
END_TEST

/* ======================================================================= */
/* Losses                                                                  */
/* ======================================================================= */

/* Central-difference check of d(loss)/d(x) * dloss for a loss op whose
 * forward is `fwd` (in: x + extra, out: loss) and backward writes dx. */
static void fd_check(int fwd_op, const hcga_op_params *p, hcga_tensor *x, double *xv,
                     const hcga_tensor *extra, const hcga_tensor *out2, const hcga_tensor *dx,
                     double dloss, double tol)
{
    int64_t n = hcga_tensor_numel(x);
    double *g = malloc(sizeof(double) * (size_t)n);
    get(dx, g);
    hcga_tensor loss = TEN(HCGA_F64, NULL, 1);
    const double h = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double L[2], save = xv[i];
        for (int s = 0; s < 2; s++) {
            xv[i] = save + (s ? -h : h);
            put(x, xv);
            if (out2)
                RUN(fwd_op, p, INS(x, extra), INS(&loss, out2));
            else if (extra)
                RUN(fwd_op, p, INS(x, extra), INS(&loss));
            else
                RUN(fwd_op, p, INS(x), INS(&loss));
            L[s] = get1(&loss);
        }
        xv[i] = save;
        double fd = dloss * (L[0] - L[1]) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) <= tol * (1 + fabs(fd)), "%s: grad[%lld] %.10g vs fd %.10g",
                      hcga_op_name(fwd_op), (long long)i, g[i], fd);
    }
    put(x, xv);
    free(g);
}

START_TEST(ce_ls)
{
    int dt = DT(_i);
    /* logits (0,0), label 0, eps 0.1: log_softmax = -ln 2 each, t sums to 1 -> ln 2 */
    hcga_tensor x = TEN(dt, ((double[]){0, 0}), 1, 2), l = TEN(HCGA_I64, ((double[]){0}), 1);
    hcga_tensor loss = TEN(dt, NULL, 1);
    hcga_op_params p = {.loss = {.eps = 0.1}};
    RUN(HCGA_OP_CE_LS_FWD, &p, INS(&x, &l), INS(&loss));
    ck_assert_msg(fabs(get1(&loss) - log(2.0)) < 1e-7, "ce (0,0): %g", get1(&loss));

    /* [3,4] with the formula written out: loss = mean_n sum_c -t_c log p_c */
    double xv[12], want = 0;
    double *r = rvec(12);
    for (int i = 0; i < 12; i++) xv[i] = 4 * r[i];
    int64_t lab[3] = {2, 0, 3};
    for (int n = 0; n < 3; n++) {
        double se = 0;
        for (int c = 0; c < 4; c++) se += exp(xv[n * 4 + c]);
        for (int c = 0; c < 4; c++) {
            double t = 0.1 / 4 + (c == lab[n] ? 0.9 : 0);
            want += -t * log(exp(xv[n * 4 + c]) / se);
        }
    }
    want /= 3;
    hcga_tensor x3 = TEN(dt, xv, 3, 4), l3 = TEN(HCGA_I64, ((double[]){2, 0, 3}), 3);
    RUN(HCGA_OP_CE_LS_FWD, &p, INS(&x3, &l3), INS(&loss));
    ck_assert_msg(fabs(get1(&loss) - want) < (dt == HCGA_F32 ? 1e-6 : 1e-13), "ce: %.10g vs %.10g",
                  get1(&loss), want);
    if (dt == HCGA_F64) {
        hcga_tensor dl = TEN(dt, ((double[]){1.5}), 1), dx = TEN(dt, NULL, 3, 4);
        RUN(HCGA_OP_CE_LS_BWD, &p, INS(&x3, &l3, &dl), INS(&dx));
        fd_check(HCGA_OP_CE_LS_FWD, &p, &x3, xv, &l3, NULL, &dx, 1.5, 1e-7);
    }
    /* a label outside [0, C) is an error naming the op */
    hcga_tensor bad = TEN(HCGA_I64, ((double[]){4, 0, 0}), 3);
    ck_assert_int_eq(runv(HCGA_OP_CE_LS_FWD, &p, 2, INS(&x3, &bad), 1, INS(&loss)), HCGA_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(hcga_be_error(BE), "ce_ls_fwd"));
    free(r);
}
END_TEST

START_TEST(pixel_ce)
{
    int dt = DT(_i);
    /* logits [1,2,1,3]: pixel 0 (0,0) label 1 -> ln 2; pixel 1 (ln 3, 0) label 0 ->
     * -ln(3/4); pixel 2 ignored. mean over 2 pixels. */
    hcga_tensor x = TEN(dt, ((double[]){0, log(3.0), 7, 0, 0, -7}), 1, 2, 1, 3);
    hcga_tensor l = TEN(HCGA_I64, ((double[]){1, 0, -1}), 1, 1, 3), loss = TEN(dt, NULL, 1);
    hcga_op_params p = {.loss = {.ignore_label = -1}};
    RUN(HCGA_OP_PIXEL_CE_FWD, &p, INS(&x, &l), INS(&loss));
    double want = (log(2.0) - log(0.75)) / 2;
    ck_assert_msg(fabs(get1(&loss) - want) < 1e-6, "pixel_ce: %g vs %g", get1(&loss), want);
    hcga_tensor dl = TEN(dt, ((double[]){1}), 1), dx = TEN(dt, NULL, 1, 2, 1, 3);
    RUN(HCGA_OP_PIXEL_CE_BWD, &p, INS(&x, &l, &dl), INS(&dx));
    /* (softmax - onehot)/2: pixel0 (0.5-0, 0.5-1)/2, pixel1 (0.75-1, 0.25)/2, pixel2 0 */
    expect_tensor(&dx, (double[]){0.25, -0.125, 0, -0.25, 0.125, 0}, 2 * TOL(dt), "pixel_ce_bwd");

    /* every pixel ignored -> loss 0, gradient 0 */
    hcga_tensor li = TEN(HCGA_I64, ((double[]){-1, -1, -1}), 1, 1, 3);
    RUN(HCGA_OP_PIXEL_CE_FWD, &p, INS(&x, &li), INS(&loss));
    ck_assert_double_eq(get1(&loss), 0);
    RUN(HCGA_OP_PIXEL_CE_BWD, &p, INS(&x, &li, &dl), INS(&dx));
    expect_tensor(&dx, (double[]){0, 0, 0, 0, 0, 0}, 0, "pixel_ce_bwd all ignored");

    if (dt == HCGA_F64) { /* random [2,3,4,5] with some ignored pixels, FD check */
        double *xv = rvec(120), lv[40];
        for (int i = 0; i < 40; i++) lv[i] = (i % 7 == 3) ? -1 : i % 3;
        hcga_tensor x2 = TEN(dt, xv, 2, 3, 4, 5), l2 = TEN(HCGA_I64, lv, 2, 4, 5);
        hcga_tensor dx2 = TEN(dt, NULL, 2, 3, 4, 5), dl2 = TEN(dt, ((double[]){0.7}), 1);
        RUN(HCGA_OP_PIXEL_CE_BWD, &p, INS(&x2, &l2, &dl2), INS(&dx2));
        fd_check(HCGA_OP_PIXEL_CE_FWD, &p, &x2, xv, &l2, NULL, &dx2, 0.7, 1e-7);
        free(xv);
    }
}
END_TEST

START_TEST(triplet)
{
    int dt = DT(_i);
    /* 4 points on a line, D = 2: x0=(0,0) A, x1=(3,0) A, x2=(1,0) B, x3=(5,0) B.
     * anchor 0: pos {0,1} farthest 1 (d 3); neg {2,3} nearest 2 (d 1): 3-1+0.3 = 2.3
     * anchor 1: pos farthest 0 (3); neg: d(1,2)=2, d(1,3)=2 tie -> 2: 3-2+0.3 = 1.3
     * anchor 2: pos {2,3} farthest 3 (4); neg: d(2,0)=1, d(2,1)=2 -> 0: 4-1+0.3 = 3.3
     * anchor 3: pos farthest 2 (4); neg: d(3,0)=5, d(3,1)=2 -> 1: 4-2+0.3 = 2.3
     * loss = (2.3+1.3+3.3+2.3)/4 = 2.3 */
    hcga_tensor x = TEN(dt, ((double[]){0, 0, 3, 0, 1, 0, 5, 0}), 4, 2);
    hcga_tensor l = TEN(HCGA_I64, ((double[]){7, 7, 9, 9}), 4);
    hcga_tensor loss = TEN(dt, NULL, 1), hard = TEN(HCGA_I64, NULL, 4, 2);
    hcga_op_params p = {.loss = {.margin = 0.3}};
    RUN(HCGA_OP_TRIPLET_FWD, &p, INS(&x, &l), INS(&loss, &hard));
    expect_tensor(&hard, (double[]){1, 2, 0, 2, 3, 0, 2, 1}, 0, "hard");
    ck_assert_msg(fabs(get1(&loss) - 2.3) < 1e-6, "triplet loss %g", get1(&loss));
    /* gradient: each anchor active; d d_ij / d x_i = (x_i - x_j)/d_ij (unit vectors
     * along the line).  anchor 0: +(0-3)/3 -> -1 to x0, +1 to x1; -(0-1)/1 -> +1 to x0, -1 to x2 ...
     * summed over anchors, /4: x0: (-1 +1) + (+1) [a1 pos] + (+1)[a2 neg, -(x0-x2)/1 -> ... */
    hcga_tensor dl = TEN(dt, ((double[]){4}), 1), dx = TEN(dt, NULL, 4, 2);
    RUN(HCGA_OP_TRIPLET_BWD, &p, INS(&x, &hard, &dl), INS(&dx));
    /* per anchor i, ap, an: dx_i += u(i,ap) - u(i,an); dx_ap -= u(i,ap); dx_an += u(i,an),
     * u(i,j) = (x_i - x_j)/|x_i - x_j| (1-D sign); times dloss/4 = 1 */
    double xs[4] = {0, 3, 1, 5}, w[8] = {0};
    int ap[4] = {1, 0, 3, 2}, an[4] = {2, 2, 0, 1};
    for (int i = 0; i < 4; i++) {
        double up = (xs[i] - xs[ap[i]]) / fabs(xs[i] - xs[ap[i]]);
        double un = (xs[i] - xs[an[i]]) / fabs(xs[i] - xs[an[i]]);
        w[2 * i] += up - un;
        w[2 * ap[i]] -= up;
        w[2 * an[i]] += un;
    }
    expect_tensor(&dx, w, 1e-6, "triplet_bwd");

    /* inactive hinge: margin -10 -> loss 0, gradient 0 */
    p.loss.margin = -10;
    RUN(HCGA_OP_TRIPLET_FWD, &p, INS(&x, &l), INS(&loss, &hard));
    ck_assert_double_eq(get1(&loss), 0);
    RUN(HCGA_OP_TRIPLET_BWD, &p, INS(&x, &hard, &dl), INS(&dx));
    expect_tensor(&dx, (double[]){0, 0, 0, 0, 0, 0, 0, 0}, 0, "triplet_bwd inactive");

    /* one label only: no negatives, hard[:,1] = -1, loss 0 */
    hcga_tensor l1 = TEN(HCGA_I64, ((double[]){1, 1, 1, 1}), 4);
    p.loss.margin = 0.3;
    RUN(HCGA_OP_TRIPLET_FWD, &p, INS(&x, &l1), INS(&loss, &hard));
    /* farthest positives: 0 -> 3 (d 5), 1 -> 0 (d 3), 2 -> 3 (d 4), 3 -> 0 (d 5) */
    expect_tensor(&hard, (double[]){3, -1, 0, -1, 3, -1, 0, -1}, 0, "hard (no negatives)");
    ck_assert_double_eq(get1(&loss), 0);

    if (dt == HCGA_F64) { /* random 6 x 5, FD with the mining fixed by hard */
        double *xv = rvec(30);
        hcga_tensor x6 = TEN(dt, xv, 6, 5), l6 = TEN(HCGA_I64, ((double[]){0, 0, 1, 1, 2, 2}), 6);
        hcga_tensor h6 = TEN(HCGA_I64, NULL, 6, 2), dx6 = TEN(dt, NULL, 6, 5);
        hcga_tensor dl1 = TEN(dt, ((double[]){1}), 1);
        p.loss.margin = 5; /* all anchors active */
        RUN(HCGA_OP_TRIPLET_FWD, &p, INS(&x6, &l6), INS(&loss, &h6));
        RUN(HCGA_OP_TRIPLET_BWD, &p, INS(&x6, &h6, &dl1), INS(&dx6));
        fd_check(HCGA_OP_TRIPLET_FWD, &p, &x6, xv, &l6, &h6, &dx6, 1.0, 1e-6);
        free(xv);
    }
}
END_TEST

START_TEST(shift_l1)
{
    int dt = DT(_i);
    /* x[1,1,2,2] = [[1,4],[2,8]], horizontal (dw=1): |4-1| + |8-2| = 9 over 2 -> 4.5 */
    hcga_tensor x = TEN(dt, ((double[]){1, 4, 2, 8}), 1, 1, 2, 2), loss = TEN(dt, NULL, 1);
    hcga_op_params p = {.shift = {0, 0, 1}};
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&x), INS(&loss));
    ck_assert_double_eq(get1(&loss), 4.5);
    hcga_tensor dl = TEN(dt, ((double[]){2}), 1), dx = TEN(dt, NULL, 1, 1, 2, 2);
    RUN(HCGA_OP_SHIFT_L1_BWD, &p, INS(&x, &dl), INS(&dx));
    expect_tensor(&dx, (double[]){-1, 1, -1, 1}, 0, "shift_l1_bwd horizontal");
    /* vertical (dh=1): |2-1| + |8-4| = 5 over 2; diagonal (1,1): |8-1| = 7 over 1 */
    p.shift = (hcga_shift_params){0, 1, 0};
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&x), INS(&loss));
    ck_assert_double_eq(get1(&loss), 2.5);
    p.shift = (hcga_shift_params){0, 1, 1};
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&x), INS(&loss));
    ck_assert_double_eq(get1(&loss), 7);
    /* anti-diagonal (dh=1, dw=-1): x[1,0]-x[0,1] = 2-4 -> 2 */
    p.shift = (hcga_shift_params){0, 1, -1};
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&x), INS(&loss));
    ck_assert_double_eq(get1(&loss), 2);
    /* image term (dn=1) on [2,1,1,2]: |x1 - x0| elementwise: |5-1| + |-3-2| = 9 over 2 */
    hcga_tensor xi = TEN(dt, ((double[]){1, 2, 5, -3}), 2, 1, 1, 2);
    p.shift = (hcga_shift_params){1, 0, 0};
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&xi), INS(&loss));
    ck_assert_double_eq(get1(&loss), 4.5);
    /* a batch of one has no image pairs: loss 0 */
    RUN(HCGA_OP_SHIFT_L1_FWD, &p, INS(&x), INS(&loss));
    ck_assert_double_eq(get1(&loss), 0);

    if (dt == HCGA_F64) {
        const hcga_shift_params sh[] = {{1, 0, 0}, {0, 1, 0}, {0, 0, -1}, {-1, 1, 1}, {0, -1, 1}};
        for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
            double *xv = rvec(2 * 2 * 3 * 4);
            hcga_tensor xr = TEN(dt, xv, 2, 2, 3, 4), dxr = TEN(dt, NULL, 2, 2, 3, 4);
            hcga_tensor d1 = TEN(dt, ((double[]){1.25}), 1);
            p.shift = sh[k];
            RUN(HCGA_OP_SHIFT_L1_BWD, &p, INS(&xr, &d1), INS(&dxr));
            fd_check(HCGA_OP_SHIFT_L1_FWD, &p, &xr, xv, NULL, NULL, &dxr, 1.25, 1e-6);
            free(xv);
        }
    }
}
END_TEST

/* ======================================================================= */
/* Optimizers                                                              */
/* ======================================================================= */

START_TEST(adam_two_steps)
{
    int dt = DT(_i);
    double pv[3] = {0.5, -1, 2}, g1[3] = {0.1, -0.2, 0.3}, g2[3] = {-0.4, 0.05, 0.3};
    hcga_tensor par = TEN(dt, pv, 3), m = TEN(dt, ((double[]){0, 0, 0}), 3);
    hcga_tensor v = TEN(dt, ((double[]){0, 0, 0}), 3), g = TEN(dt, g1, 3);
    hcga_op_params p = {.optim = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                  .weight_decay = 5e-4, .step = 1}};
    /* torch.optim.Adam (not AdamW), written out */
    double P[3], M[3] = {0}, Vv[3] = {0};
    memcpy(P, pv, sizeof P);
    for (int t = 1; t <= 2; t++) {
        const double *gr = t == 1 ? g1 : g2;
        put(&g, gr);
        p.optim.step = t;
        RUN(HCGA_OP_ADAM_STEP, &p, INS(&g), INS(&par, &m, &v));
        for (int i = 0; i < 3; i++) {
            double gi = gr[i] + 5e-4 * P[i];
            M[i] = 0.9 * M[i] + 0.1 * gi;
            Vv[i] = 0.999 * Vv[i] + 0.001 * gi * gi;
            double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
            P[i] -= (0.01 / bc1) * M[i] / (sqrt(Vv[i]) / sqrt(bc2) + 1e-8);
        }
    }
    double tol = dt == HCGA_F32 ? 1e-6 : 1e-14;
    expect_tensor(&par, P, tol, "adam param");
    expect_tensor(&m, M, tol, "adam m");
    expect_tensor(&v, Vv, tol, "adam v");
}
END_TEST

START_TEST(sgd_two_steps)
{
    int dt = DT(_i);
    hcga_tensor par = TEN(dt, ((double[]){1, -2}), 2), buf = TEN(dt, NULL, 2);
    hcga_tensor g = TEN(dt, ((double[]){0.5, 0.25}), 2);
    hcga_op_params p = {.optim = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5, .step = 1}};
    /* step 1: g' = (0.5+0.5, 0.25-1) = (1, -0.75); buf = g'; p = (0.9, -1.925) */
    RUN(HCGA_OP_SGD_STEP, &p, INS(&g), INS(&par, &buf));
    expect_tensor(&buf, (double[]){1, -0.75}, TOL(dt), "sgd buf 1");
    expect_tensor(&par, (double[]){0.9, -1.925}, TOL(dt), "sgd param 1");
    /* step 2: g' = (0.5+0.45, 0.25-0.9625) = (0.95, -0.7125); buf = 0.9*buf + g' =
     * (1.85, -1.3875); p = (0.9-0.185, -1.925+0.13875) = (0.715, -1.78625) */
    p.optim.step = 2;
    RUN(HCGA_OP_SGD_STEP, &p, INS(&g), INS(&par, &buf));
    expect_tensor(&buf, (double[]){1.85, -1.3875}, 4 * TOL(dt), "sgd buf 2");
    expect_tensor(&par, (double[]){0.715, -1.78625}, 4 * TOL(dt), "sgd param 2");
}
END_TEST

/* ======================================================================= */
/* Errors, options, determinism                                            */
/* ======================================================================= */

static void expect_invalid(hcga_status st, const char *needle)
{
    ck_assert_int_eq(st, HCGA_ERR_INVALID);
    const char *e = hcga_be_error(BE);
    ck_assert_msg(strstr(e, needle) != NULL, "error '%s' lacks '%s'", e, needle);
    ck_assert_msg(strchr(e, '\n') == NULL, "error is not one line: '%s'", e);
}

START_TEST(shape_errors)
{
    hcga_tensor x = TEN(HCGA_F32, NULL, 1, 3, 5, 5), w = TEN(HCGA_F32, NULL, 4, 2, 3, 3);
    hcga_tensor y = TEN(HCGA_F32, NULL, 1, 4, 3, 3);
    hcga_op_params p = {.conv = {1, 1, 0, 0, 1, 1}};
    /* channel mismatch */
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&x, &w), 1, INS(&y)), "conv2d_fwd");
    ck_assert_ptr_nonnull(strstr(hcga_be_error(BE), "channels"));
    /* wrong output shape */
    hcga_tensor w3 = TEN(HCGA_F32, NULL, 4, 3, 3, 3), y5 = TEN(HCGA_F32, NULL, 1, 4, 5, 5);
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&x, &w3), 1, INS(&y5)), "y has shape");
    /* dtype mix */
    hcga_tensor wd = TEN(HCGA_F64, NULL, 4, 3, 3, 3);
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&x, &wd), 1, INS(&y)), "f64");
    /* bad stride */
    hcga_op_params p0 = {.conv = {0, 1, 0, 0, 1, 1}};
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p0, 2, INS(&x, &w3), 1, INS(&y)), "stride");
    /* missing slot */
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 1, INS(NULL), 1, INS(&y)), "missing");
    /* wrong slot count */
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 2, INS(&y, &y), 1, INS(&y)), "num_in");
    /* non-contiguous tensor for an op other than copy */
    hcga_tensor xs = x;
    xs.stride[3] = 2;
    hcga_tensor big = TEN(HCGA_F32, NULL, 1, 3, 5, 10);
    xs.buf = big.buf;
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 1, INS(&xs), 1, INS(&x)), "contiguous");
    /* out of the buffer */
    hcga_tensor over = y;
    over.offset = 8;
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 1, INS(&y), 1, INS(&over)), "overruns");
    /* shape mismatch of an elementwise op */
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 1, INS(&x), 1, INS(&y)), "relu_fwd");
    /* broadcasting that does not fit */
    hcga_tensor b2 = TEN(HCGA_F32, NULL, 1, 2, 1, 1);
    hcga_op_params ps = {.scalar = {1, 1}};
    expect_invalid(runv(HCGA_OP_ADD, &ps, 2, INS(&x, &b2), 1, INS(&x)), "broadcast");
    /* BN with one value per channel in training */
    hcga_tensor x1 = TEN(HCGA_F32, NULL, 1, 3), c3 = TEN(HCGA_F32, NULL, 3);
    hcga_tensor c3b = TEN(HCGA_F32, NULL, 3), c3c = TEN(HCGA_F32, NULL, 3), c3d = TEN(HCGA_F32, NULL, 3);
    hcga_tensor c3e = TEN(HCGA_F32, NULL, 3), c3f = TEN(HCGA_F32, NULL, 3), y1 = TEN(HCGA_F32, NULL, 1, 3);
    hcga_op_params pb = {.bn = {1e-5, 0.1}};
    expect_invalid(runv(HCGA_OP_BN_FWD_TRAIN, &pb, 3, INS(&x1, &c3, &c3b), 5,
                        INS(&y1, &c3c, &c3d, &c3e, &c3f)),
                   "more than 1 value");
    /* gemm K mismatch, and output aliasing an input */
    hcga_tensor A = TEN(HCGA_F32, NULL, 2, 3), B = TEN(HCGA_F32, NULL, 2, 3), Y = TEN(HCGA_F32, NULL, 2, 3);
    hcga_op_params pg = {.gemm = {0, 0, 1, 0}};
    expect_invalid(runv(HCGA_OP_GEMM, &pg, 2, INS(&A, &B), 1, INS(&Y)), "disagree on K");
    hcga_tensor S = TEN(HCGA_F32, NULL, 3, 3);
    hcga_tensor Sy = S;
    expect_invalid(runv(HCGA_OP_GEMM, &pg, 2, INS(&S, &S), 1, INS(&Sy)), "overlaps");
    /* adam step 0 */
    hcga_op_params po = {.optim = {.lr = 1, .beta1 = 0.9, .beta2 = 0.99, .step = 0}};
    hcga_tensor g3 = TEN(HCGA_F32, NULL, 3);
    expect_invalid(runv(HCGA_OP_ADAM_STEP, &po, 1, INS(&g3), 3, INS(&c3, &c3b, &c3c)), "step");
    /* op id mismatch between args and table entry */
    hcga_op_args a = {.op = HCGA_OP_RELU_FWD, .num_in = 1, .num_out = 1, .in = {&c3}, .out = {&c3b}};
    ck_assert_int_eq(BE->iface->ops[HCGA_OP_SIGMOID_FWD](BE->inst, &a), HCGA_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(BE->iface->last_error(BE->inst), "sigmoid_fwd"));
}
END_TEST

START_TEST(options_and_info)
{
    const hcga_backend_iface *it = BE->iface;
    hcga_backend *inst = NULL;
    char err[256];
    ck_assert_int_eq(it->create(0, "threads=0", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_ptr_null(inst);
    ck_assert_ptr_nonnull(strstr(err, "threads"));
    ck_assert_int_eq(it->create(0, "colour=blue", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "unknown option 'colour'"));
    ck_assert_int_eq(it->create(1, NULL, &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_int_eq(it->create(0, "threads=3", &inst, err, sizeof err), HCGA_OK);
    it->destroy(inst);
    char why[64];
    ck_assert_int_eq(it->probe(why, sizeof why), 1);
    hcga_device_info info;
    ck_assert_int_eq(it->device_info(0, &info), HCGA_OK);
    ck_assert_ptr_nonnull(strstr(info.name, "CPU x"));
    ck_assert_ptr_nonnull(strstr(info.name, "OpenBLAS"));
    ck_assert(info.memory_total > 0);
    /* buffers are 256-byte aligned and bounds-checked */
    hcga_buffer *b = NULL;
    ck_assert_int_eq(hcga_be_alloc(BE, 100, &b), HCGA_OK);
    char data[8] = {0};
    ck_assert_int_eq(hcga_be_write(BE, b, 96, data, 8), HCGA_ERR_INVALID);
    ck_assert_int_eq(hcga_be_write(BE, b, 92, data, 8), HCGA_OK);
    hcga_be_free(BE, b);
}
END_TEST

/* Same thread count -> same bits; the non-GEMM ops are even independent of
 * the thread count (fixed chunking), which is checked for BN and reduce. */
START_TEST(determinism)
{
    const int N = 4, C = 8, H = 33, W = 17, n = N * C * H * W, nw = 16 * C * 9;
    double *x = rvec(n), *g = rvec(C), *b = rvec(C), *wv = rvec(nw);
    float stats[3][2 * 8], sums[3], *dw[2];
    for (int run = 0; run < 3; run++) {
        close_be();
        open_be(run == 2 ? "threads=1" : "threads=2");
        hcga_tensor tx = TEN(HCGA_F32, x, N, C, H, W), tg = TEN(HCGA_F32, g, C);
        hcga_tensor tb = TEN(HCGA_F32, b, C), ty = TEN(HCGA_F32, NULL, N, C, H, W);
        hcga_tensor st = TEN(HCGA_F32, NULL, 2 * C), rm = TEN(HCGA_F32, NULL, C);
        hcga_tensor rv = TEN(HCGA_F32, NULL, C);
        hcga_tensor sm = st, si = st; /* two halves of one buffer */
        sm.ndim = si.ndim = 1;
        sm.shape[0] = si.shape[0] = C;
        si.offset = C * sizeof(float);
        hcga_op_params p = {.bn = {1e-5, 0.1}};
        RUN(HCGA_OP_BN_FWD_TRAIN, &p, INS(&tx, &tg, &tb), INS(&ty, &sm, &si, &rm, &rv));
        ck_assert_int_eq(hcga_be_read(BE, st.buf, 0, stats[run], sizeof stats[run]), HCGA_OK);
        hcga_tensor s = TEN(HCGA_F32, NULL, 1);
        hcga_op_params pr = {.reduce = {HCGA_REDUCE_SUM}};
        RUN(HCGA_OP_REDUCE, &pr, INS(&tx), INS(&s));
        ck_assert_int_eq(hcga_be_read(BE, s.buf, 0, &sums[run], sizeof(float)), HCGA_OK);
        if (run < 2) {
            hcga_tensor tw = TEN(HCGA_F32, wv, 16, C, 3, 3), tdw = TEN(HCGA_F32, NULL, 16, C, 3, 3);
            hcga_tensor tyc = TEN(HCGA_F32, NULL, N, 16, H, W);
            hcga_op_params pc = {.conv = {1, 1, 1, 1, 1, 1}};
            RUN(HCGA_OP_CONV2D_FWD, &pc, INS(&tx, &tw), INS(&tyc));
            RUN(HCGA_OP_CONV2D_BWD_FILTER, &pc, INS(&tx, &tyc), INS(&tdw));
            dw[run] = malloc(sizeof(float) * (size_t)nw);
            ck_assert_int_eq(hcga_be_read(BE, tdw.buf, 0, dw[run], sizeof(float) * (size_t)nw),
                             HCGA_OK);
        }
    }
    ck_assert_msg(memcmp(stats[0], stats[1], sizeof stats[0]) == 0, "bn differs between identical runs");
    ck_assert_msg(memcmp(stats[0], stats[2], sizeof stats[0]) == 0, "bn differs, 2 vs 1 threads");
    ck_assert_msg(memcmp(&sums[0], &sums[1], sizeof(float)) == 0, "reduce differs between runs");
    ck_assert_msg(memcmp(&sums[0], &sums[2], sizeof(float)) == 0, "reduce differs, 2 vs 1 threads");
    ck_assert_msg(memcmp(dw[0], dw[1], sizeof(float) * (size_t)nw) == 0,
                  "conv bwd filter differs between identical runs");
    free(dw[0]), free(dw[1]);
    free(x), free(g), free(b), free(wv);
}
END_TEST

/* ======================================================================= */
/* Mixed precision (ABI 1.1): CAST, half convolutions and GEMM, checker    */
/* ======================================================================= */

/* Expected bits below are written out by hand (IEEE / bfloat16 encodings);
 * hcga_half.h serves only to build inputs and to round the f32 reference
 * of the half conv / GEMM tests. */

/* A tensor of dtype dt (any) holding n raw elements from src (NULL: the
 * byte 0xA5 everywhere, so an element the op does not write shows). */
static hcga_tensor raw_ten(int dt, int64_t n, const void *src)
{
    hcga_tensor t = mk(dt, 1, SH(n));
    const size_t bytes = (size_t)n * hcga_dtype_size(dt);
    void *tmp = malloc(bytes + 1);
    if (src)
        memcpy(tmp, src, bytes);
    else
        memset(tmp, 0xA5, bytes);
    ck_assert_int_eq(hcga_be_write(BE, t.buf, 0, tmp, bytes), HCGA_OK);
    free(tmp);
    return t;
}

static void raw_get(const hcga_tensor *t, void *dst)
{
    ck_assert_int_eq(hcga_be_read(BE, t->buf, t->offset, dst,
                                  (uint64_t)hcga_tensor_numel(t) * hcga_dtype_size(t->dtype)),
                     HCGA_OK);
}

/* Frees the test's buffers so far (for tests that make many). */
static void free_bufs(void)
{
    for (int i = 0; i < g_nbufs; i++) hcga_be_free(BE, g_bufs[i]);
    g_nbufs = 0;
}

/* CAST of n elements of dtype xdt at src to dtype ydt at dst. */
static void cast_raw(int xdt, const void *src, int ydt, void *dst, int64_t n)
{
    hcga_tensor x = raw_ten(xdt, n, src), y = raw_ten(ydt, n, NULL);
    RUN(HCGA_OP_CAST, NULL, INS(&x), INS(&y));
    raw_get(&y, dst);
}

static int bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }
static int f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

static float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Each source value and the bits it must become. */
static void cast_expect(int xdt, const void *src, int ydt, const uint64_t *want, int n,
                        const char *what)
{
    uint64_t got[32];
    unsigned char buf[32 * 8];
    ck_assert_int_le(n, 32);
    cast_raw(xdt, src, ydt, buf, n);
    const size_t es = hcga_dtype_size(ydt);
    for (int i = 0; i < n; i++) {
        got[i] = 0;
        if (es == 2) {
            uint16_t h;
            memcpy(&h, buf + 2 * i, 2);
            got[i] = h;
        } else if (es == 4) {
            uint32_t u;
            memcpy(&u, buf + 4 * i, 4);
            got[i] = u;
        } else {
            memcpy(&got[i], buf + 8 * i, 8);
        }
        if (want[i] == UINT64_MAX) { /* a NaN of y's dtype */
            int nan = ydt == HCGA_BF16 ? bf16_is_nan((uint16_t)got[i])
                      : ydt == HCGA_F16 ? f16_is_nan((uint16_t)got[i])
                      : ydt == HCGA_F32 ? isnan(f32_of_bits((uint32_t)got[i]))
                                        : 0;
            if (ydt == HCGA_F64) {
                double d;
                memcpy(&d, &got[i], 8);
                nan = isnan(d);
            }
            ck_assert_msg(nan, "%s[%d]: got 0x%llx, want a NaN", what, i,
                          (unsigned long long)got[i]);
        } else {
            ck_assert_msg(got[i] == want[i], "%s[%d]: got 0x%llx, want 0x%llx", what, i,
                          (unsigned long long)got[i], (unsigned long long)want[i]);
        }
    }
}

#define NANB UINT64_MAX

START_TEST(cast_hand)
{
    /* f32 -> bf16: ties to even, NaN (also signalling) stays NaN, overflow to Inf */
    const uint32_t f32b[] = {
        0x3F808000u, /* 1 + 2^-8: halfway between 0x3F80 and 0x3F81 -> even 0x3F80 */
        0x3F818000u, /* halfway between 0x3F81 and 0x3F82 -> even 0x3F82 */
        0x3F808001u, /* just above halfway -> 0x3F81 */
        0xBF808000u, /* negative tie -> 0xBF80 */
        0x7F7FFFFFu, /* largest float rounds up past bf16's largest: +Inf */
        0x7F7F7FFFu, /* below halfway: bf16's largest finite 0x7F7F */
        0xFF800000u, /* -Inf */
        0x7F800001u, /* signalling NaN: must not become Inf */
        0xFFC00000u, /* quiet NaN */
        0x00000001u, /* smallest f32 subnormal -> +0 */
        0x80000000u, /* -0 */
    };
    cast_expect(HCGA_F32, f32b, HCGA_BF16,
                (const uint64_t[]){0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x7F80, 0x7F7F, 0xFF80, NANB,
                                   NANB, 0x0000, 0x8000},
                11, "f32->bf16");
    /* f32 -> f16: ties, overflow at 65520, subnormals */
    const float f32v[] = {65519.0f, 65520.0f, -65520.0f, 0x1p-24f, 0x1p-25f, 0x3p-25f,
                          0x1.000002p-25f, -0x1p-25f, 0x1p-14f, 1.0f + 0x1p-11f,
                          1.0f + 0x3p-11f, 0x3ffp-24f, NAN};
    cast_expect(HCGA_F32, f32v, HCGA_F16,
                (const uint64_t[]){0x7BFF, 0x7C00, 0xFC00, 0x0001, 0x0000, 0x0002, 0x0001, 0x8000,
                                   0x0400, 0x3C00, 0x3C02, 0x03FF, NANB},
                13, "f32->f16");
    /* f64 -> f16: ties to even, and correctly rounded where a detour through
     * a rounded f32 would double-round (1 + 2^-11 + 2^-40 is above the tie;
     * as f32 it would be the tie itself) */
    const double f64v[] = {1.0 + 0x1p-11, 1.0 + 0x1p-11 + 0x1p-40, 1.0 + 0x3p-11, 65520.0,
                           65519.99, -1e300, 0x1p-24, 0x1p-25, 0x1p-25 + 0x1p-60, 5e-324, NAN,
                           -0.0};
    cast_expect(HCGA_F64, f64v, HCGA_F16,
                (const uint64_t[]){0x3C00, 0x3C01, 0x3C02, 0x7C00, 0x7BFF, 0xFC00, 0x0001, 0x0000,
                                   0x0001, 0x0000, NANB, 0x8000},
                12, "f64->f16");
    /* f64 -> bf16 */
    const double f64b[] = {1.0 + 0x1p-8, 1.0 + 0x1p-8 + 0x1p-40, 1e39, -1e39, 3.0, NAN};
    cast_expect(HCGA_F64, f64b, HCGA_BF16,
                (const uint64_t[]){0x3F80, 0x3F81, 0x7F80, 0xFF80, 0x4040, NANB}, 6, "f64->bf16");
    /* f64 <-> f32 */
    const double f64f[] = {1.0 + 0x1p-24, 1.0 + 0x3p-24, 1e39, 0.1, NAN};
    cast_expect(HCGA_F64, f64f, HCGA_F32,
                (const uint64_t[]){0x3F800000, 0x3F800002, 0x7F800000, 0x3DCCCCCD, NANB}, 5,
                "f64->f32");
    const float f32d[] = {0.1f, -0x1p-149f};
    cast_expect(HCGA_F32, f32d, HCGA_F64,
                (const uint64_t[]){0x3FB99999A0000000ull, 0xB6A0000000000000ull}, 2, "f32->f64");
    /* half -> f32 / f64: exact */
    const uint16_t h16[] = {0x3C00, 0x0001, 0x03FF, 0x7BFF, 0xFC00, 0x8000, 0x7E00};
    cast_expect(HCGA_F16, h16, HCGA_F32,
                (const uint64_t[]){0x3F800000, 0x33800000, 0x387FC000, 0x477FE000, 0xFF800000,
                                   0x80000000, NANB},
                7, "f16->f32");
    cast_expect(HCGA_F16, h16, HCGA_F64,
                (const uint64_t[]){0x3FF0000000000000ull, 0x3E70000000000000ull,
                                   0x3F0FF80000000000ull, 0x40EFFC0000000000ull,
                                   0xFFF0000000000000ull, 0x8000000000000000ull, NANB},
                7, "f16->f64");
    /* bf16 <-> f16: one rounding from the exact value */
    const uint16_t f16b[] = {0x3C01, 0x3C04, 0x3C0C, 0x7C00, 0x0001};
    cast_expect(HCGA_F16, f16b, HCGA_BF16,
                (const uint64_t[]){0x3F80, 0x3F80, 0x3F82, 0x7F80, 0x3380}, 5, "f16->bf16");
    const uint16_t bf16f[] = {0x4780, 0x3380, 0x3F81, 0xC780, 0x7FC0, 0x3300};
    cast_expect(HCGA_BF16, bf16f, HCGA_F16,
                (const uint64_t[]){0x7C00, 0x0001, 0x3C08, 0xFC00, NANB, 0x0000}, 6, "bf16->f16");
    /* same dtype: a copy; in place (the same view): nothing to do */
    const float same[] = {1.5f, -2.0f};
    cast_expect(HCGA_F32, same, HCGA_F32, (const uint64_t[]){0x3FC00000, 0xC0000000}, 2,
                "f32->f32");
    hcga_tensor ip = raw_ten(HCGA_BF16, 2, (const uint16_t[]){0x3F80, 0x4040});
    RUN(HCGA_OP_CAST, NULL, INS(&ip), INS(&ip));
    uint16_t back[2];
    raw_get(&ip, back);
    ck_assert_uint_eq(back[0], 0x3F80);
    ck_assert_uint_eq(back[1], 0x4040);
}
END_TEST

/* Every bf16 and f16 pattern through f32 and f64 and back: the same bits
 * (NaN stays NaN); widening bf16 is the bits shifted left by 16. */
START_TEST(cast_round_trip)
{
    const int64_t n = 65536;
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n), *back = malloc(sizeof(uint16_t) * (size_t)n);
    uint32_t *w32 = malloc(sizeof(uint32_t) * (size_t)n);
    double *w64 = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)i;
    for (int k = 0; k < 2; k++) {
        const int hdt = k ? HCGA_F16 : HCGA_BF16;
        for (int wide = 0; wide < 2; wide++) {
            const int wdt = wide ? HCGA_F64 : HCGA_F32;
            void *mid = wide ? (void *)w64 : (void *)w32;
            cast_raw(hdt, h, wdt, mid, n);
            cast_raw(wdt, mid, hdt, back, n);
            for (int64_t i = 0; i < n; i++) {
                const uint16_t x = (uint16_t)i;
                if (hdt == HCGA_BF16 && !wide)
                    ck_assert_msg(w32[i] == (uint32_t)x << 16, "bf16 0x%04x widened to 0x%08x", x,
                                  w32[i]);
                if (hdt == HCGA_BF16 && wide)
                    ck_assert_msg(w64[i] == (double)f32_of_bits((uint32_t)x << 16) ||
                                      (bf16_is_nan(x) && isnan(w64[i])),
                                  "bf16 0x%04x widened to %g", x, w64[i]);
                int nan = hdt == HCGA_BF16 ? bf16_is_nan(x) : f16_is_nan(x);
                int bnan = hdt == HCGA_BF16 ? bf16_is_nan(back[i]) : f16_is_nan(back[i]);
                if (nan)
                    ck_assert_msg(bnan, "%s NaN 0x%04x came back as 0x%04x",
                                  hcga_dtype_name(hdt), x, back[i]);
                else
                    ck_assert_msg(back[i] == x, "%s 0x%04x via %s came back as 0x%04x",
                                  hcga_dtype_name(hdt), x, hcga_dtype_name(wdt), back[i]);
            }
        }
    }
    free(h), free(back), free(w32), free(w64);
}
END_TEST

/* Values exactly representable in the half dtype hdt (v rounded in place). */
static void hround(int hdt, double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) v[i] = hcga_half_to_f32(hdt, hcga_half_from_f64(hdt, v[i]));
}

/* A half tensor holding v (exactly representable; NULL: NaN everywhere). */
static hcga_tensor half_ten(int hdt, int nd, const int64_t *shape, const double *v)
{
    hcga_tensor t = mk(hdt, nd, shape);
    const int64_t n = hcga_tensor_numel(&t);
    uint16_t *b = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        b[i] = v ? hcga_half_from_f64(hdt, v[i]) : (hdt == HCGA_BF16 ? 0x7FC0 : 0x7E00);
    ck_assert_int_eq(hcga_be_write(BE, t.buf, 0, b, (uint64_t)n * 2), HCGA_OK);
    free(b);
    return t;
}

/* One slot of a half-vs-f32 comparison: shape, and values for inputs. */
typedef struct hslot {
    int nd;
    int64_t shape[4];
    const double *v;
} hslot;

/* Runs op once with every float tensor in the half dtype hdt and once in
 * f32 (same values, exact in both), rounds each f32 output with
 * hcga_half.h and requires the half outputs to equal that bit for bit.
 * alias_y_in >= 0: out[0] is the very tensor in[alias_y_in] (GEMM c == y).
 * Returns the half outputs widened, in got[o] (malloc'ed). */
static void half_vs_f32(int hdt, int op, const hcga_op_params *p, int nin, const hslot *in,
                        int nout, const hslot *out, int alias_y_in, double **got, const char *what)
{
    hcga_tensor th[8], tf[8], oh[8], of[8];
    const hcga_tensor *ih[8], *i32[8], *ph[8], *pf[8];
    for (int i = 0; i < nin; i++) {
        th[i] = half_ten(hdt, in[i].nd, in[i].shape, in[i].v);
        tf[i] = ten(HCGA_F32, in[i].nd, in[i].shape, in[i].v);
        ih[i] = &th[i];
        i32[i] = &tf[i];
    }
    for (int o = 0; o < nout; o++) {
        if (o == 0 && alias_y_in >= 0) {
            ph[o] = &th[alias_y_in];
            pf[o] = &tf[alias_y_in];
            continue;
        }
        oh[o] = half_ten(hdt, out[o].nd, out[o].shape, NULL);
        of[o] = ten(HCGA_F32, out[o].nd, out[o].shape, NULL);
        ph[o] = &oh[o];
        pf[o] = &of[o];
    }
    hcga_status st = runv(op, p, nin, ih, nout, ph);
    ck_assert_msg(st == HCGA_OK, "%s (%s) failed: %s", what, hcga_dtype_name(hdt), hcga_be_error(BE));
    st = runv(op, p, nin, i32, nout, pf);
    ck_assert_msg(st == HCGA_OK, "%s (f32) failed: %s", what, hcga_be_error(BE));
    for (int o = 0; o < nout; o++) {
        const int64_t n = hcga_tensor_numel(ph[o]);
        double *ref = malloc(sizeof(double) * (size_t)(n ? n : 1));
        uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
        get(pf[o], ref);
        raw_get(ph[o], hb);
        got[o] = malloc(sizeof(double) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) {
            const uint16_t want = hcga_half_from_f32(hdt, (float)ref[i]);
            ck_assert_msg(hb[i] == want, "%s %s out[%d][%lld]: got 0x%04x, want 0x%04x (f32 %.9g)",
                          what, hcga_dtype_name(hdt), o, (long long)i, hb[i], want, ref[i]);
            got[o][i] = hcga_half_to_f32(hdt, hb[i]);
        }
        free(ref), free(hb);
    }
}

/* Loop index: conv case i/2, bf16 (even) or f16 (odd).  The three
 * convolutions in the half dtype equal the f32 ones rounded, bit for bit,
 * and are close to the naive double convolution of the same values. */
START_TEST(half_conv)
{
    const int hdt = _i % 2 ? HCGA_F16 : HCGA_BF16;
    const conv_case *c = &conv_cases[_i / 2];
    const int P = (c->H + 2 * c->ph - c->dh * (c->R - 1) - 1) / c->sh + 1;
    const int Q = (c->W + 2 * c->pw - c->dw * (c->S - 1) - 1) / c->sw + 1;
    const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * c->C * c->R * c->S;
    const int64_t ny = (int64_t)c->N * c->K * P * Q;
    double *x = rvec(nx), *w = rvec(nw), *b = rvec(c->K), *dyv = rvec(ny);
    hround(hdt, x, nx), hround(hdt, w, nw), hround(hdt, b, c->K), hround(hdt, dyv, ny);
    double *y = malloc(sizeof(double) * (size_t)ny), *dx = malloc(sizeof(double) * (size_t)nx);
    double *dw = malloc(sizeof(double) * (size_t)nw), *db = malloc(sizeof(double) * (size_t)c->K);
    naive_conv(c, P, Q, x, w, c->bias ? b : NULL, dyv, y, dx, dw, db);
    const hslot sx = {4, {c->N, c->C, c->H, c->W}, x}, sw = {4, {c->K, c->C, c->R, c->S}, w};
    const hslot sb = {1, {c->K}, b}, sy = {4, {c->N, c->K, P, Q}, dyv};
    hcga_op_params p = {.conv = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw}};
    /* one rounding to the half dtype after f32 sums of at most a few
     * thousand products of values in [-1, 1] */
    const double tol = hdt == HCGA_BF16 ? 8e-3 : 1.5e-3;
    double *got[2];
    if (c->bias)
        half_vs_f32(hdt, HCGA_OP_CONV2D_FWD, &p, 3, (const hslot[]){sx, sw, sb}, 1,
                    (const hslot[]){sy}, -1, got, "conv2d_fwd");
    else
        half_vs_f32(hdt, HCGA_OP_CONV2D_FWD, &p, 2, (const hslot[]){sx, sw}, 1,
                    (const hslot[]){sy}, -1, got, "conv2d_fwd");
    expect_close(got[0], y, ny, tol, "half y vs naive");
    free(got[0]);
    half_vs_f32(hdt, HCGA_OP_CONV2D_BWD_DATA, &p, 2, (const hslot[]){sy, sw}, 1,
                (const hslot[]){sx}, -1, got, "conv2d_bwd_data");
    expect_close(got[0], dx, nx, tol, "half dx vs naive");
    free(got[0]);
    half_vs_f32(hdt, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, (const hslot[]){sx, sy}, 2,
                (const hslot[]){sw, sb}, -1, got, "conv2d_bwd_filter");
    expect_close(got[0], dw, nw, tol, "half dw vs naive");
    expect_close(got[1], db, c->K, tol, "half dbias vs naive");
    free(got[0]), free(got[1]);
    half_vs_f32(hdt, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, (const hslot[]){sx, sy}, 1,
                (const hslot[]){sw}, -1, got, "conv2d_bwd_filter (no dbias)");
    expect_close(got[0], dw, nw, tol, "half dw (no dbias) vs naive");
    free(got[0]);
    free(x), free(w), free(b), free(dyv), free(y), free(dx), free(dw), free(db);
}
END_TEST

/* GEMM in bf16 (loop 0) and f16 (1): every transpose, without c, with c and
 * with c == y, alpha and beta applied in f32; a product large enough to be
 * split over the threads; K = 0 (y = beta*c). */
START_TEST(half_gemm)
{
    const int hdt = _i ? HCGA_F16 : HCGA_BF16;
    const int64_t sizes[3][3] = {{5, 4, 3}, {130, 100, 90}, {6, 7, 0}};
    for (int sz = 0; sz < 3; sz++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int withc = 0; withc < 3; withc++) {
                    if (sz == 1 && (ta || tb) && withc != 1) continue; /* keep it short */
                    free_bufs(); /* a few hundred buffers in all */
                    const int64_t M = sizes[sz][0], N = sizes[sz][1], K = sizes[sz][2];
                    double *a = rvec(M * K), *b = rvec(K * N), *c = rvec(M * N);
                    hround(hdt, a, M * K), hround(hdt, b, K * N), hround(hdt, c, M * N);
                    const hslot sa = {2, {ta ? K : M, ta ? M : K}, a};
                    const hslot sb = {2, {tb ? N : K, tb ? K : N}, b};
                    const hslot sc = {2, {M, N}, c};
                    hcga_op_params p = {.gemm = {ta, tb, 0.3, -1.7}};
                    char what[64];
                    snprintf(what, sizeof what, "gemm %lldx%lldx%lld ta%d tb%d c%d", (long long)M,
                             (long long)N, (long long)K, ta, tb, withc);
                    double *got[1];
                    if (withc == 0)
                        half_vs_f32(hdt, HCGA_OP_GEMM, &p, 2, (const hslot[]){sa, sb}, 1,
                                    (const hslot[]){sc}, -1, got, what);
                    else
                        half_vs_f32(hdt, HCGA_OP_GEMM, &p, 3, (const hslot[]){sa, sb, sc}, 1,
                                    (const hslot[]){sc}, withc == 2 ? 2 : -1, got, what);
                    /* and close to the double result */
                    double *want = malloc(sizeof(double) * (size_t)(M * N));
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < N; j++) {
                            double s = 0;
                            for (int64_t k = 0; k < K; k++)
                                s += (ta ? a[k * M + i] : a[i * K + k]) *
                                     (tb ? b[j * K + k] : b[k * N + j]);
                            want[i * N + j] = 0.3 * s + (withc ? -1.7 * c[i * N + j] : 0);
                        }
                    expect_close(got[0], want, M * N, hdt == HCGA_BF16 ? 8e-3 : 1.5e-3, what);
                    free(got[0]), free(want), free(a), free(b), free(c);
                }
}
END_TEST

/* The checker's half rules, seen through the CPU backend, and supports(). */
START_TEST(half_contract)
{
    hcga_op_params p = {.conv = {1, 1, 0, 0, 1, 1}};
    hcga_tensor x = mk(HCGA_BF16, 4, SH(1, 2, 3, 3)), w16 = mk(HCGA_F16, 4, SH(2, 2, 1, 1));
    hcga_tensor y = mk(HCGA_BF16, 4, SH(1, 2, 3, 3));
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&x, &w16), 1, INS(&y)),
                   "conv2d_fwd: w has dtype f16 but the op's other float tensors are bf16");
    hcga_tensor wf = mk(HCGA_F32, 4, SH(2, 2, 1, 1));
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&x, &wf), 1, INS(&y)),
                   "conv2d_fwd: w has dtype f32 but the op's other float tensors are bf16");
    hcga_tensor xi = mk(HCGA_I64, 4, SH(1, 2, 3, 3));
    expect_invalid(runv(HCGA_OP_CONV2D_FWD, &p, 2, INS(&xi, &w16), 1, INS(&y)),
                   "conv2d_fwd: x has dtype i64, expected f32, f64, bf16 or f16");
    /* an op without half support refuses bf16 with the f32/f64 message */
    hcga_tensor r = mk(HCGA_BF16, 2, SH(2, 3)), r2 = mk(HCGA_BF16, 2, SH(2, 3));
    expect_invalid(runv(HCGA_OP_RELU_FWD, NULL, 1, INS(&r), 1, INS(&r2)),
                   "relu_fwd: x has dtype bf16, expected f32 or f64");
    hcga_op_params pf = {.scalar = {1, 0}};
    expect_invalid(runv(HCGA_OP_FILL, &pf, 0, NULL, 1, INS(&r)),
                   "fill: y has dtype bf16, but bf16 and f16 are taken only by cast");
    hcga_tensor r32 = mk(HCGA_F32, 2, SH(2, 3));
    expect_invalid(runv(HCGA_OP_COPY, NULL, 1, INS(&r), 1, INS(&r32)), "copy: x has dtype bf16");
    hcga_tensor cat = mk(HCGA_F16, 2, SH(2, 6)), part = mk(HCGA_F16, 2, SH(2, 6));
    expect_invalid(runv(HCGA_OP_CONCAT, NULL, 1, INS(&part), 1, INS(&cat)), "concat: y has dtype f16");
    /* CAST: floating dtypes only, same shape, no partial overlap */
    hcga_tensor ci = mk(HCGA_I64, 1, SH(4)), cf = mk(HCGA_F32, 1, SH(4)), c3 = mk(HCGA_F16, 1, SH(3));
    expect_invalid(runv(HCGA_OP_CAST, NULL, 1, INS(&ci), 1, INS(&cf)),
                   "cast: x has dtype i64, expected f32, f64, bf16 or f16");
    expect_invalid(runv(HCGA_OP_CAST, NULL, 1, INS(&cf), 1, INS(&ci)),
                   "cast: y has dtype i64, expected f32, f64, bf16 or f16");
    expect_invalid(runv(HCGA_OP_CAST, NULL, 1, INS(&cf), 1, INS(&c3)), "cast: y has shape [3]");
    hcga_tensor ch = cf; /* f16 view of the first half of cf's buffer */
    ch.dtype = HCGA_F16;
    expect_invalid(runv(HCGA_OP_CAST, NULL, 1, INS(&cf), 1, INS(&ch)), "overlaps");
    /* GEMM: a half c of another half dtype */
    hcga_op_params pg = {.gemm = {0, 0, 1, 1}};
    hcga_tensor A = mk(HCGA_BF16, 2, SH(2, 2)), B = mk(HCGA_BF16, 2, SH(2, 2));
    hcga_tensor C = mk(HCGA_F16, 2, SH(2, 2)), Y = mk(HCGA_BF16, 2, SH(2, 2));
    expect_invalid(runv(HCGA_OP_GEMM, &pg, 3, INS(&A, &B, &C), 1, INS(&Y)),
                   "gemm: c has dtype f16 but the op's other float tensors are bf16");

    /* supports(): bf16 / f16 exactly for the catalogue's half column */
    for (int op = 0; op < HCGA_OP_COUNT; op++) {
        const int half = hcga_op_get_info(op)->half;
        ck_assert_int_eq(BE->iface->supports(BE->inst, op, HCGA_BF16), half);
        ck_assert_int_eq(BE->iface->supports(BE->inst, op, HCGA_F16), half);
        ck_assert_int_eq(BE->iface->supports(BE->inst, op, HCGA_F32), 1);
    }
    ck_assert_int_eq(hcga_op_get_info(HCGA_OP_CAST)->half, 1);
    ck_assert_int_eq(hcga_op_get_info(HCGA_OP_GEMM)->half, 1);
    ck_assert_int_eq(hcga_op_get_info(HCGA_OP_RELU_FWD)->half, 0);
}
END_TEST

/* The N x N triplet distance matrix is this backend's limit: UNSUPPORTED
 * (checked before anything is allocated for it). */
START_TEST(triplet_limit_unsupported)
{
    const int64_t N = 65537;
    hcga_tensor x = mk(HCGA_F32, 2, SH(N, 1)), l = mk(HCGA_I64, 1, SH(N));
    hcga_tensor loss = mk(HCGA_F32, 1, SH(1)), hard = mk(HCGA_I64, 2, SH(N, 2));
    hcga_op_params p = {.loss = {.margin = 0.3}};
    ck_assert_int_eq(runv(HCGA_OP_TRIPLET_FWD, &p, 2, INS(&x, &l), 2, INS(&loss, &hard)),
                     HCGA_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(hcga_be_error(BE), "triplet_fwd: N = 65537"));
}
END_TEST

static Suite *cpu_suite(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("cpu_ops", &tc);
    tcase_add_checked_fixture(tc, setup, close_be);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, conv_hand, 0, 2);
    tcase_add_loop_test(tc, conv_vs_naive, 0, 2 * (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_loop_test(tc, conv_thread_counts, 0, 3);
    tcase_add_loop_test(tc, bn_hand, 0, 2);
    tcase_add_loop_test(tc, bn_two_pass, 0, 2);
    tcase_add_test(tc, bn_bwd_fd);
    HCGA_ADD_TESTS(tc, bn_from_stats_one_part, bn_from_stats_two_parts, bn_stats_determinism);
    tcase_add_loop_test(tc, elementwise_hand, 0, 2);
    tcase_add_loop_test(tc, add_mul_broadcast, 0, 2);
    tcase_add_loop_test(tc, sum_to_cases, 0, 2);
    tcase_add_test(tc, copy_fill);
    tcase_add_loop_test(tc, softmax_hand, 0, 2);
    tcase_add_loop_test(tc, concat_split_argmax, 0, 2);
    tcase_add_loop_test(tc, upsample_gap, 0, 2);
    tcase_add_loop_test(tc, resize_bilinear, 0, 2);
    tcase_add_loop_test(tc, gemm_cases, 0, 2);
    tcase_add_loop_test(tc, reduce_cases, 0, 2);
    tcase_add_loop_test(tc, ce_ls, 0, 2);
    tcase_add_loop_test(tc, pixel_ce, 0, 2);
    tcase_add_loop_test(tc, triplet, 0, 2);
    tcase_add_loop_test(tc, shift_l1, 0, 2);
    tcase_add_loop_test(tc, adam_two_steps, 0, 2);
    tcase_add_loop_test(tc, sgd_two_steps, 0, 2);
    HCGA_ADD_TESTS(tc, shape_errors, options_and_info, determinism, cast_hand, cast_round_trip);
    tcase_add_loop_test(tc, half_conv, 0, 2 * (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_loop_test(tc, half_gemm, 0, 2);
    tcase_add_test(tc, half_contract);
    tcase_add_test(tc, triplet_limit_unsupported);
    return s;
}

int main(void)
{
    /* Load the plugin from this build tree. */
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 1);
    return hcga_test_run(cpu_suite());
}
