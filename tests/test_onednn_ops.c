/*
 * test_onednn_ops.c - unit test of the oneDNN backend (backends/onednn),
 * loaded through the plugin loader like any backend.  The conformance suite
 * (conformance/check_backends.sh) checks every op against the f64 reference;
 * this test checks what is particular to this backend:
 *   - its create options (threads, plain) and their one-line errors;
 *   - the oneDNN path (f32 convolutions in the three directions with and
 *     without bias, on oneDNN's Winograd kernels where it has them and with
 *     winograd=0 on its direct ones, GEMM with c aliasing y, ReLU, BN inference) against the
 *     backend's own plain-C path (option plain=1) on shapes larger than the
 *     quick conformance set, so blocked-format reorders and the primitive
 *     cache (the same shape twice, then another) are exercised;
 *   - determinism: the same call twice on one instance and on a second
 *     instance with the same thread count gives the same bits;
 *   - a tensor's byte offset is honoured and nothing is written outside it
 *     (guard bytes around every output);
 *   - the blocked copies kept between ops (dnn_blocked.h): a chain of ops
 *     through one buffer gives the same bits with copies, without them and
 *     with a cap that forces evictions; so does a mixed-precision chain
 *     (casts around bf16 convolutions), which also stays within a few bf16
 *     ulps of the same chain with the convolutions widened to f32.
 * Exit 77 (skip) when the onednn plugin cannot be opened (not built).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"

#define OFFSET 512
#define GUARD 256

static hcga_be *fast, *direct, *plain; /* default options, winograd=0, plain=1 */

static void setup(void)
{
    char err[1024];
    ck_assert_msg(hcga_be_open("onednn", 0, "threads=2", &fast, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(hcga_be_open("onednn", 0, "threads=2,winograd=0", &direct, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(hcga_be_open("onednn", 0, "threads=2,plain=1", &plain, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    if (fast) hcga_be_close(fast);
    if (direct) hcga_be_close(direct);
    if (plain) hcga_be_close(plain);
    fast = direct = plain = NULL;
}

typedef struct tdesc {
    int ndim;
    int64_t shape[4];
    const float *data; /* NULL: an output, pre-filled with a NaN pattern */
} tdesc;

static int64_t numel(const tdesc *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float *frand(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)hcga_test_urand_pm1(&rng);
    return p;
}

/* Runs op on be with f32 tensors; out[k] results in res[k] (malloc'd).
 * alias_out0_in: if >= 0, out[0] is the same tensor as in[alias]. */
static hcga_status run(hcga_be *be, int op, const hcga_op_params *p, int nin, const tdesc *in, int nout,
                       const tdesc *out, float **res, int alias)
{
    hcga_buffer *b[12] = {0};
    hcga_tensor t[12];
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout};
    if (p) a.p = *p;
    for (int i = 0; i < nin + nout; i++) {
        const tdesc *d = i < nin ? &in[i] : &out[i - nin];
        if (i == nin && alias >= 0) {
            t[i] = t[alias];
            a.out[0] = &t[i];
            continue;
        }
        if (!d->ndim) { /* an absent optional slot */
            if (i < nin) a.in[i] = NULL;
            else a.out[i - nin] = NULL;
            continue;
        }
        size_t bytes = (size_t)numel(d) * 4, total = OFFSET + bytes + GUARD;
        ck_assert_int_eq(hcga_be_alloc(be, total, &b[i]), HCGA_OK);
        unsigned char *init = malloc(total);
        memset(init, 0xFF, total); /* NaN pattern */
        if (d->data) memcpy(init + OFFSET, d->data, bytes);
        ck_assert_int_eq(hcga_be_write(be, b[i], 0, init, total), HCGA_OK);
        free(init);
        t[i] = hcga_tensor_make(b[i], OFFSET, HCGA_F32, d->ndim, d->shape);
        if (i < nin) a.in[i] = &t[i];
        else a.out[i - nin] = &t[i];
    }
    hcga_status st = hcga_be_run(be, &a);
    ck_assert_msg(st == HCGA_OK, "%s failed: %s", hcga_op_name(op), hcga_be_error(be));
    for (int k = 0; k < nout; k++) {
        res[k] = NULL;
        if (!out[k].ndim) continue;
        int i = (k == 0 && alias >= 0) ? alias : nin + k;
        const tdesc *d = &out[k];
        size_t bytes = (size_t)numel(d) * 4, total = OFFSET + bytes + GUARD;
        unsigned char *all = malloc(total);
        ck_assert_int_eq(hcga_be_read(be, b[i], 0, all, total), HCGA_OK);
        for (size_t j = 0; j < OFFSET; j++) ck_assert_msg(all[j] == 0xFF, "%s: out[%d] written before its offset", hcga_op_name(op), k);
        for (size_t j = OFFSET + bytes; j < total; j++)
            ck_assert_msg(all[j] == 0xFF, "%s: out[%d] written past its end", hcga_op_name(op), k);
        res[k] = malloc(bytes);
        memcpy(res[k], all + OFFSET, bytes);
        free(all);
    }
    for (int i = 0; i < 12; i++)
        if (b[i]) hcga_be_free(be, b[i]);
    return st;
}

/* The op on the oneDNN path with the options of be and on the plain-C
 * path: outputs within tol (relative to the largest reference value), every
 * element written. */
static void compare_on(hcga_be *be, const char *what, int op, const hcga_op_params *p, int nin, const tdesc *in,
                       int nout, const tdesc *out, double tol, int alias)
{
    float *rf[4], *rp[4];
    run(be, op, p, nin, in, nout, out, rf, alias);
    run(plain, op, p, nin, in, nout, out, rp, alias);
    for (int k = 0; k < nout; k++) {
        if (!out[k].ndim) continue;
        const int64_t n = numel(&out[k]);
        double mx = 1, err = 0;
        for (int64_t i = 0; i < n; i++) {
            ck_assert_msg(isfinite(rf[k][i]), "%s: out[%d][%lld] = %g (not written?)", what, k, (long long)i,
                          rf[k][i]);
            if (fabs(rp[k][i]) > mx) mx = fabs(rp[k][i]);
            if (fabs(rf[k][i] - rp[k][i]) > err) err = fabs(rf[k][i] - rp[k][i]);
        }
        ck_assert_msg(err <= tol * mx, "%s: out[%d] differs from the plain-C path by %.3g (> %.3g)", what, k,
                      err, tol * mx);
        free(rf[k]);
        free(rp[k]);
    }
}

/* compare_on with the default options. */
static void compare(const char *what, int op, const hcga_op_params *p, int nin, const tdesc *in, int nout,
                    const tdesc *out, double tol, int alias)
{
    compare_on(fast, what, op, p, nin, in, nout, out, tol, alias);
}

START_TEST(test_options)
{
    hcga_be *b = NULL;
    char err[1024] = "";
    ck_assert_int_ne(hcga_be_open("onednn", 0, "threads=0", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "threads='0' is not an integer"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 0, "fuse=1", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "unknown option 'fuse'"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 0, "plain=2", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "plain='2' is not 0 or 1"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 0, "blocked_mb=x", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "blocked_mb='x' is not an integer"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 0, "winograd=2", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "winograd='2' is not 0 or 1"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 0, "bf16=on", &b, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "bf16='on' is not 0 or 1"), "%s", err);
    ck_assert_int_ne(hcga_be_open("onednn", 1, NULL, &b, err, sizeof err), 0);
}
END_TEST

/* conv shapes: (N C H W K R S stride pad); the 3x3 stride-1 ones run on
 * oneDNN's Winograd kernels on AVX-512 by default (option winograd) */
static const int conv_cases[][9] = {
    {2, 16, 12, 10, 24, 3, 3, 1, 1}, {2, 16, 12, 10, 24, 3, 3, 1, 1}, /* twice: the cache */
    {2, 32, 13, 9, 16, 3, 3, 2, 1},  {3, 24, 8, 8, 40, 1, 1, 1, 0},
    {1, 3, 17, 15, 8, 3, 3, 2, 1},   {2, 8, 6, 5, 1, 3, 3, 2, 1},
    {2, 32, 17, 11, 48, 3, 3, 1, 1},
};

/* The three convolutions of every case, with bias and without, against the
 * plain-C path: with the default options and with winograd=0 (direct). */
START_TEST(test_conv)
{
    hcga_be *const bes[2] = {fast, direct};
    for (size_t c = 0; c < sizeof conv_cases / sizeof conv_cases[0]; c++) {
        const int *v = conv_cases[c];
        const int64_t N = v[0], C = v[1], H = v[2], W = v[3], K = v[4], R = v[5], S = v[6];
        const int st = v[7], pd = v[8];
        const int64_t P = (H + 2 * pd - R) / st + 1, Q = (W + 2 * pd - S) / st + 1;
        hcga_op_params p;
        memset(&p, 0, sizeof p);
        p.conv = (hcga_conv_params){st, st, pd, pd, 1, 1};
        float *x = frand(N * C * H * W), *w = frand(K * C * R * S), *bias = frand(K), *dy = frand(N * K * P * Q);
        char what[96];
        for (int b = 0; b < 2; b++) {
            const char *opt = b ? "winograd=0" : "default";
            for (int withb = 0; withb < 2; withb++) {
                tdesc in[3] = {{4, {N, C, H, W}, x}, {4, {K, C, R, S}, w}, {withb ? 1 : 0, {K}, bias}};
                tdesc o1[1] = {{4, {N, K, P, Q}, NULL}};
                snprintf(what, sizeof what, "conv2d_fwd case %zu bias %d (%s)", c, withb, opt);
                compare_on(bes[b], what, HCGA_OP_CONV2D_FWD, &p, withb ? 3 : 2, in, 1, o1, 1e-5, -1);
                tdesc bin[2] = {{4, {N, C, H, W}, x}, {4, {N, K, P, Q}, dy}};
                tdesc bo[2] = {{4, {K, C, R, S}, NULL}, {withb ? 1 : 0, {K}, NULL}};
                snprintf(what, sizeof what, "conv2d_bwd_filter case %zu bias %d (%s)", c, withb, opt);
                compare_on(bes[b], what, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, bin, withb ? 2 : 1, bo, 1e-5, -1);
            }
            tdesc din[2] = {{4, {N, K, P, Q}, dy}, {4, {K, C, R, S}, w}};
            tdesc dout[1] = {{4, {N, C, H, W}, NULL}};
            snprintf(what, sizeof what, "conv2d_bwd_data case %zu (%s)", c, opt);
            compare_on(bes[b], what, HCGA_OP_CONV2D_BWD_DATA, &p, 2, din, 1, dout, 1e-5, -1);
        }
        free(x), free(w), free(bias), free(dy);
    }
}
END_TEST

START_TEST(test_gemm)
{
    const int64_t M = 37, N = 29, K = 53;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int withc = 0; withc < 3; withc++) { /* no c, c, c == y */
                hcga_op_params p;
                memset(&p, 0, sizeof p);
                p.gemm = (hcga_gemm_params){ta, tb, 0.75, withc ? -0.5 : 0.0};
                float *A = frand(M * K), *B = frand(K * N), *Cm = frand(M * N);
                tdesc in[3] = {{2, {ta ? K : M, ta ? M : K}, A}, {2, {tb ? N : K, tb ? K : N}, B},
                               {2, {M, N}, Cm}};
                tdesc out[1] = {{2, {M, N}, NULL}};
                char what[64];
                snprintf(what, sizeof what, "gemm ta %d tb %d c %d", ta, tb, withc);
                compare(what, HCGA_OP_GEMM, &p, withc ? 3 : 2, in, 1, out, 1e-5, withc == 2 ? 2 : -1);
                free(A), free(B), free(Cm);
            }
}
END_TEST

START_TEST(test_relu_bn)
{
    const int64_t N = 3, C = 11, H = 7, W = 5, n = N * C * H * W;
    float *x = frand(n), *dy = frand(n);
    x[3] = NAN; /* max(NaN, 0) is NaN (oneDNN's own ReLU would give 0) */
    tdesc in[1] = {{4, {N, C, H, W}, x}}, out[1] = {{4, {N, C, H, W}, NULL}};
    float *r[1];
    run(fast, HCGA_OP_RELU_FWD, NULL, 1, in, 1, out, r, -1);
    ck_assert_msg(isnan(r[0][3]), "relu_fwd(NaN) = %g", r[0][3]);
    for (int64_t i = 0; i < n; i++)
        if (i != 3) ck_assert_msg(r[0][i] == (x[i] > 0 ? x[i] : 0.0f), "relu_fwd[%lld]", (long long)i);
    x[3] = 0.5f;
    tdesc bin[2] = {{4, {N, C, H, W}, r[0]}, {4, {N, C, H, W}, dy}};
    r[0][3] = 0.5f;
    compare("relu_bwd", HCGA_OP_RELU_BWD, NULL, 2, bin, 1, out, 0, -1);
    free(r[0]);
    float *g = frand(C), *b = frand(C), *rm = frand(C), *rv = frand(C);
    for (int64_t c = 0; c < C; c++) rv[c] = 0.5f + fabsf(rv[c]);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.bn.eps = 1e-5;
    tdesc bn[5] = {{4, {N, C, H, W}, x}, {1, {C}, g}, {1, {C}, b}, {1, {C}, rm}, {1, {C}, rv}};
    compare("bn_fwd_infer", HCGA_OP_BN_FWD_INFER, &p, 5, bn, 1, out, 1e-5, -1);
    free(x), free(dy), free(g), free(b), free(rm), free(rv);
}
END_TEST

/* Same call twice, and on a second instance with the same threads: same bits. */
START_TEST(test_deterministic)
{
    const int64_t N = 4, C = 32, H = 20, W = 18, K = 32;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    float *x = frand(N * C * H * W), *dy = frand(N * K * H * W);
    tdesc in[2] = {{4, {N, C, H, W}, x}, {4, {N, K, H, W}, dy}};
    tdesc out[2] = {{4, {K, C, 3, 3}, NULL}, {1, {K}, NULL}};
    float *r1[2], *r2[2], *r3[2];
    hcga_be *other = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open("onednn", 0, "threads=2", &other, err, sizeof err) == 0, "%s", err);
    run(fast, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, in, 2, out, r1, -1);
    run(fast, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, in, 2, out, r2, -1);
    run(other, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, in, 2, out, r3, -1);
    for (int k = 0; k < 2; k++) {
        size_t bytes = (size_t)numel(&out[k]) * 4;
        ck_assert_msg(memcmp(r1[k], r2[k], bytes) == 0, "conv2d_bwd_filter out[%d]: two runs differ", k);
        ck_assert_msg(memcmp(r1[k], r3[k], bytes) == 0, "conv2d_bwd_filter out[%d]: two instances differ", k);
        free(r1[k]), free(r2[k]), free(r3[k]);
    }
    hcga_be_close(other);
    free(x), free(dy);
}
END_TEST


/* CONV2D_BN_INFER 3x3 stride 1 with residual and ReLU, 64 channels: on
 * oneDNN's Winograd convolution where the machine has it (option winograd,
 * default on), against the plain-C path; and with winograd=0 (direct). */
START_TEST(test_conv_bn_winograd)
{
    const int64_t N = 2, C = 64, H = 16, W = 12, K = 64;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv_bn.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    p.conv_bn.eps = 1e-5;
    p.conv_bn.relu = 1;
    float *x = frand(N * C * H * W), *w = frand(K * C * 9), *g = frand(K), *b = frand(K), *rm = frand(K),
          *rv = frand(K), *res = frand(N * K * H * W);
    for (int64_t k = 0; k < K; k++) rv[k] = 0.5f + fabsf(rv[k]);
    tdesc in[8] = {{4, {N, C, H, W}, x}, {4, {K, C, 3, 3}, w}, {1, {K}, g},  {1, {K}, b},
                   {1, {K}, rm},         {1, {K}, rv},         {0, {0}, NULL}, {4, {N, K, H, W}, res}};
    tdesc out[1] = {{4, {N, K, H, W}, NULL}};
    compare("conv2d_bn_infer 3x3 (winograd=1)", HCGA_OP_CONV2D_BN_INFER, &p, 8, in, 1, out, 1e-5, -1);
    float *rw[1], *rd[1];
    run(fast, HCGA_OP_CONV2D_BN_INFER, &p, 8, in, 1, out, rw, -1);
    run(direct, HCGA_OP_CONV2D_BN_INFER, &p, 8, in, 1, out, rd, -1);
    double mx = 1, e = 0;
    for (int64_t i = 0; i < N * K * H * W; i++) {
        if (fabs(rd[0][i]) > mx) mx = fabs(rd[0][i]);
        if (fabs(rw[0][i] - rd[0][i]) > e) e = fabs(rw[0][i] - rd[0][i]);
    }
    ck_assert_msg(e <= 1e-5 * mx, "winograd=1 and winograd=0 differ by %.3g (max %.3g)", e, mx);
    free(rw[0]), free(rd[0]);
    free(x), free(w), free(g), free(b), free(rm), free(rv), free(res);
}
END_TEST

/* SUM_TO against a naive sum in double: the same float, for reduced dims
 * trailing, leading, in the middle, all, and none (the plain path's
 * offset tables), and a [N,1,H,W] sum over C with H*W above the plain
 * path's run of outputs summed side by side (runs of 256: 600 = 2 whole
 * runs and a part). */
START_TEST(test_sum_to)
{
    static const struct {
        int64_t x[4], y[4];
    } cases[] = {{{2, 3, 4, 5}, {2, 3, 1, 1}}, {{2, 3, 4, 5}, {1, 3, 4, 5}}, {{2, 3, 4, 5}, {2, 1, 4, 1}},
                 {{2, 3, 4, 5}, {1, 1, 1, 1}}, {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {1, 3, 1, 5}},
                 {{2, 5, 20, 30}, {2, 1, 20, 30}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t *xs = cases[c].x, *ys = cases[c].y, n = xs[0] * xs[1] * xs[2] * xs[3];
        float *x = frand(n);
        tdesc in[1] = {{4, {xs[0], xs[1], xs[2], xs[3]}, x}}, out[1] = {{4, {ys[0], ys[1], ys[2], ys[3]}, NULL}};
        float *r[1];
        run(fast, HCGA_OP_SUM_TO, NULL, 1, in, 1, out, r, -1);
        const int64_t ny = numel(&out[0]);
        for (int64_t j = 0; j < ny; j++) {
            int64_t yi[4], rem = j;
            for (int d = 3; d >= 0; d--) yi[d] = rem % ys[d], rem /= ys[d];
            double acc = 0;
            for (int64_t i = 0; i < n; i++) { /* x in row-major order = the reduced indices' order */
                int64_t xi[4], q = i, hit = 1;
                for (int d = 3; d >= 0; d--) xi[d] = q % xs[d], q /= xs[d];
                for (int d = 0; d < 4; d++) hit &= ys[d] == 1 ? 1 : xi[d] == yi[d];
                if (hit) acc += (double)x[i];
            }
            ck_assert_msg((float)acc == r[0][j], "sum_to case %zu element %lld: %.9g, expected %.9g", c,
                          (long long)j, r[0][j], (float)acc);
        }
        free(r[0]);
        free(x);
    }
}
END_TEST

/* ---- blocked copies kept between ops (backends/onednn/dnn_blocked.h) ---- */

/* One arena-like buffer; tensors are views at float offsets into it. */
enum { BX = 0, BW1 = BX + 2 * 16 * 64 * 48, BW2 = BW1 + 16 * 16 * 9, BY1 = BW2 + 16 * 16 * 9,
       BY2 = BY1 + 2 * 16 * 64 * 48, BY3 = BY2 + 2 * 16 * 64 * 48, BY4 = BY3 + 2 * 16 * 64 * 48,
       BBN = BY4 + 2 * 16 * 64 * 48, BTOTAL = BBN + 4 * 16 };

static hcga_tensor view(hcga_buffer *b, int64_t off, int ndim, int64_t n0, int64_t n1, int64_t n2, int64_t n3)
{
    const int64_t shape[4] = {n0, n1, n2, n3};
    return hcga_tensor_make(b, (uint64_t)off * 4, HCGA_F32, ndim, shape);
}

static void op_run(hcga_be *be, int op, const hcga_op_params *p, int nin, const hcga_tensor *const *in, int nout,
                   const hcga_tensor *const *out)
{
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout};
    if (p) a.p = *p;
    for (int i = 0; i < nin; i++) a.in[i] = in[i];
    for (int i = 0; i < nout; i++) a.out[i] = out[i];
    hcga_status st = hcga_be_run(be, &a);
    ck_assert_msg(st == HCGA_OK, "%s failed: %s", hcga_op_name(op), hcga_be_error(be));
}

/* A chain's instance (options) and its one buffer of `total` floats, filled
 * with uniform values in [-1, 1) from seed and the running variance's n
 * floats at rv set to rv_value(i) > 0. */
typedef struct chain {
    hcga_be *be;
    hcga_buffer *b;
} chain;

static chain chain_open(const char *options, int64_t total, uint64_t seed, int64_t rv, int n,
                        float (*rv_value)(int))
{
    chain c = {0};
    char err[1024];
    ck_assert_msg(hcga_be_open("onednn", 0, options, &c.be, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(hcga_be_alloc(c.be, (uint64_t)total * 4, &c.b), HCGA_OK);
    float *init = malloc((size_t)total * 4);
    for (int64_t i = 0; i < total; i++) init[i] = (float)hcga_test_urand_pm1(&seed);
    for (int i = 0; i < n; i++) init[rv + i] = rv_value(i);
    ck_assert_int_eq(hcga_be_write(c.be, c.b, 0, init, (uint64_t)total * 4), HCGA_OK);
    free(init);
    return c;
}

/* Reads the chain's buffer back (malloc'd), checks that the fill of n
 * floats at off with `value` survived (what: the fill's description), and
 * closes the instance. */
static float *chain_close(chain c, int64_t total, int64_t off, int64_t n, float value, const char *what,
                          const char *options)
{
    float *all = malloc((size_t)total * 4);
    ck_assert_int_eq(hcga_be_read(c.be, c.b, 0, all, (uint64_t)total * 4), HCGA_OK);
    for (int64_t i = off; i < off + n; i++)
        ck_assert_msg(all[i] == value, "%s: %s was lost at %lld", options, what, (long long)(i - off));
    hcga_be_free(c.be, c.b);
    hcga_be_close(c.be);
    return all;
}

static float rv_ramp(int i) { return 0.5f + (float)i / 16; }
static float rv_one(int i) { (void)i; return 1.0f; }

/* Chain results r[1] .. r[n-1] (run with opts[k]) have the bits of r[0]. */
static void assert_same_bits(float *const *r, const char *const *opts, int n, int64_t total)
{
    for (int k = 1; k < n; k++)
        for (int64_t i = 0; i < total; i++)
            ck_assert_msg(memcmp(&r[0][i], &r[k][i], 4) == 0, "float %lld: %.9g with '%s', %.9g with '%s'",
                          (long long)i, r[0][i], opts[0], r[k][i], opts[k]);
}

/* A chain of ops through one buffer, the way a planned graph uses the
 * arena: convolution outputs feeding convolutions (copies reused), a fused
 * conv + BN + residual (the residual and the folded weights from copies),
 * plain ops reading them (write-back), outputs overwriting regions that
 * have copies (dropped), a partial write over a dirty copy, and a new
 * running variance written between two fused runs (the folded weights'
 * copy dropped).  Returns the whole buffer (malloc'd). */
static float *blocked_chain(const char *options)
{
    const chain c = chain_open(options, BTOTAL, 0x5eed5eedull, BBN + 48, 16, rv_ramp);
    hcga_be *be = c.be;
    hcga_buffer *b = c.b;
    const hcga_tensor x = view(b, BX, 4, 2, 16, 64, 48), w1 = view(b, BW1, 4, 16, 16, 3, 3),
                      w2 = view(b, BW2, 4, 16, 16, 3, 3), y1 = view(b, BY1, 4, 2, 16, 64, 48),
                      y2 = view(b, BY2, 4, 2, 16, 64, 48), y3 = view(b, BY3, 4, 2, 16, 64, 48),
                      y4 = view(b, BY4, 4, 2, 16, 64, 48), g = view(b, BBN, 1, 16, 0, 0, 0),
                      be_ = view(b, BBN + 16, 1, 16, 0, 0, 0), rm = view(b, BBN + 32, 1, 16, 0, 0, 0),
                      rv = view(b, BBN + 48, 1, 16, 0, 0, 0),
                      half_y1 = view(b, BY1 + 16 * 64 * 48 / 2, 4, 1, 16, 64, 24); /* inside y1 */
    hcga_op_params pc, pb, pf;
    memset(&pc, 0, sizeof pc);
    pc.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    memset(&pb, 0, sizeof pb);
    pb.conv_bn.conv = pc.conv;
    pb.conv_bn.eps = 1e-5;
    pb.conv_bn.relu = 1;
    memset(&pf, 0, sizeof pf);
    pf.scalar.a = 0.25;
    op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&x, &w1}, 1, (const hcga_tensor *[]){&y1});
    op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&y1, &w2}, 1, (const hcga_tensor *[]){&y2});
    const hcga_tensor *cbn[8] = {&y2, &w1, &g, &be_, &rm, &rv, NULL, &y1};
    op_run(be, HCGA_OP_CONV2D_BN_INFER, &pb, 8, cbn, 1, (const hcga_tensor *[]){&y3});
    op_run(be, HCGA_OP_RELU_FWD, NULL, 1, (const hcga_tensor *[]){&y3}, 1, (const hcga_tensor *[]){&y4});
    /* y1's region overwritten by a backward convolution reading y2's copy */
    op_run(be, HCGA_OP_CONV2D_BWD_DATA, &pc, 2, (const hcga_tensor *[]){&y2, &w2}, 1,
           (const hcga_tensor *[]){&y1});
    op_run(be, HCGA_OP_FILL, &pf, 0, NULL, 1, (const hcga_tensor *[]){&half_y1}); /* part of dirty y1 */
    float rv2[16];
    for (int i = 0; i < 16; i++) rv2[i] = 2.0f + (float)i; /* a new running variance: the fold changes */
    ck_assert_int_eq(hcga_be_write(be, b, (uint64_t)(BBN + 48) * 4, rv2, sizeof rv2), HCGA_OK);
    op_run(be, HCGA_OP_CONV2D_BN_INFER, &pb, 8, cbn, 1, (const hcga_tensor *[]){&y4}); /* residual y1 part fill */
    op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&y4, &w2}, 1, (const hcga_tensor *[]){&y3});
    return chain_close(c, BTOTAL, BY1 + 16 * 64 * 48 / 2, 16 * 64 * 48 / 2, 0.25f,
                       "the fill over part of a dirty copy", options);
}

/* The chain with copies kept (default), with none (blocked_mb=0) and with a
 * 1 MiB cap (copies evicted and written back): the same bits. */
START_TEST(test_blocked_copies)
{
    float *kept = blocked_chain("threads=2"), *none = blocked_chain("threads=2,blocked_mb=0"),
          *tight = blocked_chain("threads=2,blocked_mb=1");
    for (int64_t i = 0; i < BTOTAL; i++) {
        ck_assert_msg(memcmp(&kept[i], &none[i], 4) == 0, "float %lld: %g with copies kept, %g without",
                      (long long)i, kept[i], none[i]);
        ck_assert_msg(memcmp(&tight[i], &none[i], 4) == 0, "float %lld: %g with a 1 MiB cap, %g without",
                      (long long)i, tight[i], none[i]);
    }
    int64_t nonzero = 0;
    for (int64_t i = BY3; i < BY4; i++) nonzero += none[i] != 0;
    ck_assert_msg(nonzero > (BY4 - BY3) / 4, "the last convolution wrote almost nothing (%lld nonzero)",
                  (long long)nonzero);
    free(kept), free(none), free(tight);
}
END_TEST

/* ---- training's ops on activations in the blocked format (dnn_act.c) ---- */

/* A training-like chain on [2, 32, 16, 12] activations (32 channels: a
 * multiple of both activation blocks, 16 and 8) through one buffer:
 * convolution, batch norm, ReLU, a second convolution, nearest upsampling
 * and its backward, a residual addition with a plain input, ReLU and batch
 * norm backward, both backward convolutions, two Adam steps on the first
 * convolution's weights (in the weights' blocked format, in place) with a
 * forward and a backward-data convolution reading the updated weights
 * between them, then a fill over half of a dirty activation and a batch
 * norm reading across it.  Returns the whole buffer (malloc'd). */
enum { TA = 2 * 32 * 16 * 12, TW = 32 * 32 * 9 };
enum { TX = 0, TW1 = TX + TA, TW2 = TW1 + TW, TY1 = TW2 + TW, TY2 = TY1 + TA, TY3 = TY2 + TA, TY4 = TY3 + TA,
       TY5 = TY4 + TA, TD1 = TY5 + TA, TDX = TD1 + TA, TDI = TDX + TA, TDW = TDI + TA, TUP = TDW + TW,
       TUB = TUP + 4 * TA, TM = TUB + TA, TV = TM + TW, TY6 = TV + TW, TD2 = TY6 + TA, TBN = TD2 + TA,
       TTOTAL = TBN + 10 * 32 };

static float *training_chain(const char *options)
{
    const chain c = chain_open(options, TTOTAL, 0x7a11ull, TBN + 3 * 32, 32, rv_one);
    hcga_be *be = c.be;
    hcga_buffer *b = c.b;
    float vinit[TW]; /* Adam's second moment: >= 0 */
    for (int i = 0; i < TW; i++) vinit[i] = 0.01f * (float)(i % 7);
    ck_assert_int_eq(hcga_be_write(be, b, (uint64_t)TV * 4, vinit, sizeof vinit), HCGA_OK);
#define ACT(off_) view(b, (off_), 4, 2, 32, 16, 12)
#define CHN(k_) view(b, TBN + (k_) * 32, 1, 32, 0, 0, 0)
    const hcga_tensor x = ACT(TX), y1 = ACT(TY1), y2 = ACT(TY2), y3 = ACT(TY3), y4 = ACT(TY4), y5 = ACT(TY5),
                      d1 = ACT(TD1), dx = ACT(TDX), dxin = ACT(TDI), w1 = view(b, TW1, 4, 32, 32, 3, 3),
                      w2 = view(b, TW2, 4, 32, 32, 3, 3), dw = view(b, TDW, 4, 32, 32, 3, 3), g = CHN(0),
                      bt = CHN(1), rm = CHN(2), rv = CHN(3), mean = CHN(4), inv = CHN(5), dg = CHN(6),
                      db = CHN(7), mean2 = CHN(8), inv2 = CHN(9),
                      half_y2 = view(b, TY2, 4, 1, 32, 16, 12), /* y2's first image */
                      up = view(b, TUP, 4, 2, 32, 32, 24), upb = ACT(TUB), m = view(b, TM, 4, 32, 32, 3, 3),
                      v = view(b, TV, 4, 32, 32, 3, 3), y6 = ACT(TY6), d2 = ACT(TD2);
#undef ACT
#undef CHN
    hcga_op_params pc, pn, pa, pf, pu;
    memset(&pu, 0, sizeof pu);
    pu.resize.factor = 2;
    memset(&pc, 0, sizeof pc);
    pc.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    memset(&pn, 0, sizeof pn);
    pn.bn.eps = 1e-5;
    pn.bn.momentum = 0.1;
    memset(&pa, 0, sizeof pa);
    pa.scalar.a = 1.0;
    pa.scalar.b = 0.5;
    memset(&pf, 0, sizeof pf);
    pf.scalar.a = 0.75;
    op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&x, &w1}, 1, (const hcga_tensor *[]){&y1});
    op_run(be, HCGA_OP_BN_FWD_TRAIN, &pn, 3, (const hcga_tensor *[]){&y1, &g, &bt}, 5,
           (const hcga_tensor *[]){&y2, &mean, &inv, &rm, &rv});
    op_run(be, HCGA_OP_RELU_FWD, NULL, 1, (const hcga_tensor *[]){&y2}, 1, (const hcga_tensor *[]){&y3});
    op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&y3, &w2}, 1, (const hcga_tensor *[]){&y4});
    op_run(be, HCGA_OP_UPSAMPLE_NEAREST_FWD, &pu, 1, (const hcga_tensor *[]){&y4}, 1, (const hcga_tensor *[]){&up});
    op_run(be, HCGA_OP_UPSAMPLE_NEAREST_BWD, &pu, 1, (const hcga_tensor *[]){&up}, 1, (const hcga_tensor *[]){&upb});
    op_run(be, HCGA_OP_ADD, &pa, 2, (const hcga_tensor *[]){&upb, &x}, 1, (const hcga_tensor *[]){&y5});
    op_run(be, HCGA_OP_RELU_BWD, NULL, 2, (const hcga_tensor *[]){&y3, &y5}, 1, (const hcga_tensor *[]){&d1});
    op_run(be, HCGA_OP_BN_BWD, &pn, 5, (const hcga_tensor *[]){&y1, &d1, &g, &mean, &inv}, 3,
           (const hcga_tensor *[]){&dx, &dg, &db});
    op_run(be, HCGA_OP_CONV2D_BWD_DATA, &pc, 2, (const hcga_tensor *[]){&dx, &w1}, 1,
           (const hcga_tensor *[]){&dxin});
    op_run(be, HCGA_OP_CONV2D_BWD_FILTER, &pc, 2, (const hcga_tensor *[]){&x, &dx}, 1, (const hcga_tensor *[]){&dw});
    hcga_op_params po;
    memset(&po, 0, sizeof po);
    po.optim = (hcga_optim_params){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 5e-4};
    for (int s = 1; s <= 2; s++) { /* w1 -= Adam(dw), then a forward and a backward-data convolution with w1 */
        po.optim.step = s;
        op_run(be, HCGA_OP_ADAM_STEP, &po, 1, (const hcga_tensor *[]){&dw}, 3,
               (const hcga_tensor *[]){&w1, &m, &v});
        op_run(be, HCGA_OP_CONV2D_FWD, &pc, 2, (const hcga_tensor *[]){&x, &w1}, 1, (const hcga_tensor *[]){&y6});
        op_run(be, HCGA_OP_CONV2D_BWD_DATA, &pc, 2, (const hcga_tensor *[]){&dx, &w1}, 1,
               (const hcga_tensor *[]){&d2});
    }
    op_run(be, HCGA_OP_FILL, &pf, 0, NULL, 1, (const hcga_tensor *[]){&half_y2}); /* half of a dirty copy */
    op_run(be, HCGA_OP_BN_FWD_TRAIN, &pn, 3, (const hcga_tensor *[]){&y2, &g, &bt}, 5,
           (const hcga_tensor *[]){&y1, &mean2, &inv2, &rm, &rv});
    return chain_close(c, TTOTAL, TY2, TA / 2, 0.75f, "the fill over half of a dirty activation", options);
}

/* The training chain with activations kept blocked (default), with the
 * batch norms, ReLUs and additions on plain tensors (blocked_act=0), with
 * no copies at all (blocked_mb=0) and with a 1 MiB cap (copies evicted): the
 * same bits, and each op's output not trivially zero. */
START_TEST(test_blocked_activations)
{
    static const char *const opts[] = {"threads=2", "threads=2,blocked_act=0", "threads=2,blocked_mb=0",
                                       "threads=2,blocked_mb=1", "threads=1"};
    float *r[5];
    for (int k = 0; k < 5; k++) r[k] = training_chain(opts[k]);
    assert_same_bits(r, opts, 5, TTOTAL);
    static const struct {
        const char *name;
        int64_t off, n;
    } outs[] = {{"y3 (relu)", TY3, TA}, {"y5 (add)", TY5, TA}, {"d1 (relu_bwd)", TD1, TA},
                {"dx (bn_bwd)", TDX, TA}, {"dxin (bwd_data)", TDI, TA}, {"dw (bwd_filter)", TDW, TW},
                {"y1 (bn over the fill)", TY1, TA}, {"dgamma", TBN + 6 * 32, 32},
                {"up (upsample)", TUP, 4 * TA}, {"upb (upsample_bwd)", TUB, TA}, {"m (adam)", TM, TW},
                {"y6 (conv with the updated weights)", TY6, TA}, {"d2 (bwd_data with them)", TD2, TA}};
    for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++) {
        int64_t nonzero = 0;
        for (int64_t i = 0; i < outs[o].n; i++) nonzero += r[0][outs[o].off + i] != 0;
        ck_assert_msg(nonzero > outs[o].n / 4, "%s is almost all zero (%lld of %lld nonzero)", outs[o].name,
                      (long long)nonzero, (long long)outs[o].n);
    }
    for (int k = 0; k < 5; k++) free(r[k]);
}
END_TEST

/* ---- mixed precision: bf16 convolutions between casts (dnn_act.c) ---- */

/* The AMP graph's pattern (frontend/graph/graph.c, autocast) on [2, 32, 16,
 * 12] activations through one buffer: every convolution's operands cast
 * f32 -> bf16, the convolution in bf16, its result cast back; batch norm and
 * ReLU in f32 between them; the backward convolutions on the bf16 casts of
 * the gradient; then a fill over half of a dirty f32 activation that a
 * cast reads.  Half tensors take TA / 2 floats of room.  Returns the buffer. */
enum { HX = 0, HW1 = HX + TA, HW2 = HW1 + TW, HY1 = HW2 + TW, HY2 = HY1 + TA, HY3 = HY2 + TA, HY4 = HY3 + TA,
       HDX = HY4 + TA, HDW = HDX + TA, HXB = HDW + TW, HW1B = HXB + TA / 2, HW2B = HW1B + TW / 2,
       HY1B = HW2B + TW / 2, HY3B = HY1B + TA / 2, HY4B = HY3B + TA / 2, HDYB = HY4B + TA / 2,
       HDXB = HDYB + TA / 2, HDWB = HDXB + TA / 2, HY5B = HDWB + TW / 2, HBN = HY5B + TA / 2,
       HTOTAL = HBN + 6 * 32 };

static float *amp_chain(const char *options)
{
    const chain c = chain_open(options, HTOTAL, 0xa3b1ull, HBN + 3 * 32, 32, rv_one);
    hcga_be *be = c.be;
    hcga_buffer *b = c.b;
    const int64_t act[4] = {2, 32, 16, 12}, wsh[4] = {32, 32, 3, 3};
#define F32(off_, sh_) hcga_tensor_make(b, (uint64_t)(off_) * 4, HCGA_F32, 4, (sh_))
#define B16(off_, sh_) hcga_tensor_make(b, (uint64_t)(off_) * 4, HCGA_BF16, 4, (sh_))
#define CHN(k_) view(b, HBN + (k_) * 32, 1, 32, 0, 0, 0)
    const hcga_tensor x = F32(HX, act), w1 = F32(HW1, wsh), w2 = F32(HW2, wsh), y1 = F32(HY1, act),
                      y2 = F32(HY2, act), y3 = F32(HY3, act), y4 = F32(HY4, act), dx = F32(HDX, act),
                      dw = F32(HDW, wsh), xb = B16(HXB, act), w1b = B16(HW1B, wsh), w2b = B16(HW2B, wsh),
                      y1b = B16(HY1B, act), y3b = B16(HY3B, act), y4b = B16(HY4B, act), dyb = B16(HDYB, act),
                      dxb = B16(HDXB, act), dwb = B16(HDWB, wsh), y5b = B16(HY5B, act), g = CHN(0), bt = CHN(1),
                      rm = CHN(2), rv = CHN(3), mean = CHN(4), inv = CHN(5),
                      half_y3 = view(b, HY3, 4, 1, 32, 16, 12); /* y3's first image */
#undef F32
#undef B16
#undef CHN
    hcga_op_params pc, pn, pf;
    memset(&pc, 0, sizeof pc);
    pc.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    memset(&pn, 0, sizeof pn);
    pn.bn.eps = 1e-5;
    pn.bn.momentum = 0.1;
    memset(&pf, 0, sizeof pf);
    pf.scalar.a = 0.75;
#define CAST(from_, to_) op_run(be, HCGA_OP_CAST, NULL, 1, (const hcga_tensor *[]){&(from_)}, 1, \
                                (const hcga_tensor *[]){&(to_)})
#define CONV(op_, a_, b_, y_) op_run(be, (op_), &pc, 2, (const hcga_tensor *[]){&(a_), &(b_)}, 1, \
                                     (const hcga_tensor *[]){&(y_)})
    CAST(x, xb);
    CAST(w1, w1b);
    CAST(w2, w2b);
    CONV(HCGA_OP_CONV2D_FWD, xb, w1b, y1b);
    CAST(y1b, y1);
    op_run(be, HCGA_OP_BN_FWD_TRAIN, &pn, 3, (const hcga_tensor *[]){&y1, &g, &bt}, 5,
           (const hcga_tensor *[]){&y2, &mean, &inv, &rm, &rv});
    op_run(be, HCGA_OP_RELU_FWD, NULL, 1, (const hcga_tensor *[]){&y2}, 1, (const hcga_tensor *[]){&y3});
    CAST(y3, y3b);
    CONV(HCGA_OP_CONV2D_FWD, y3b, w2b, y4b);
    CAST(y4b, y4);
    CAST(y4, dyb); /* y4 stands in for the gradient of y4 */
    CONV(HCGA_OP_CONV2D_BWD_DATA, dyb, w2b, dxb);
    CAST(dxb, dx);
    CONV(HCGA_OP_CONV2D_BWD_FILTER, y3b, dyb, dwb);
    CAST(dwb, dw);
    op_run(be, HCGA_OP_FILL, &pf, 0, NULL, 1, (const hcga_tensor *[]){&half_y3}); /* half of a dirty copy */
    CAST(y3, y5b);
#undef CAST
#undef CONV
    return chain_close(c, HTOTAL, HY3, TA / 2, 0.75f, "the fill over half of a dirty activation", options);
}

/* The bf16 value at float offset off + i of a chain's buffer. */
static float bf16_at(const float *all, int64_t off, int64_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)(all + off) + 2 * i, 2);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The AMP chain with copies kept (default), with the casts and batch norms
 * on plain tensors (blocked_act=0), with no copies (blocked_mb=0) and with a
 * 1 MiB cap: the same bits.  Against bf16=0 (the convolutions widened to
 * f32, the ABI's definition): within one bf16 unit in the last place of
 * each output's largest value (oneDNN's f32 sums run in another order,
 * which may round a bf16 result the other way; measured: 0.0078 on a
 * largest value of 308 for dxb, 0 for the forward convolutions). */
START_TEST(test_amp_chain)
{
    static const char *const opts[] = {"threads=2", "threads=2,blocked_act=0", "threads=2,blocked_mb=0",
                                       "threads=2,blocked_mb=1", "threads=2,bf16=0"};
    float *r[5];
    for (int k = 0; k < 5; k++) r[k] = amp_chain(opts[k]);
    assert_same_bits(r, opts, 4, HTOTAL); /* not bf16=0 (opts[4]): checked against a tolerance below */
    static const struct {
        const char *name;
        int64_t off, n;
    } outs[] = {{"y1b (conv)", HY1B, TA}, {"y4b (conv)", HY4B, TA}, {"dxb (bwd_data)", HDXB, TA},
                {"dwb (bwd_filter)", HDWB, TW}, {"y5b (cast over the fill)", HY5B, TA}};
    for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++) {
        double mx = 0, err = 0;
        int64_t nonzero = 0;
        for (int64_t i = 0; i < outs[o].n; i++) {
            const float v = bf16_at(r[0], outs[o].off, i), ref = bf16_at(r[4], outs[o].off, i);
            ck_assert_msg(isfinite(v), "%s[%lld] = %g", outs[o].name, (long long)i, v);
            nonzero += v != 0;
            mx = fmax(mx, fabs(ref));
            err = fmax(err, fabs(v - ref));
        }
        ck_assert_msg(nonzero > outs[o].n / 4, "%s is almost all zero (%lld of %lld nonzero)", outs[o].name,
                      (long long)nonzero, (long long)outs[o].n);
        ck_assert_msg(err <= mx / 128, "%s: %.4g from the widened convolutions' (largest value %.4g)",
                      outs[o].name, err, mx);
    }
    for (int k = 0; k < 5; k++) free(r[k]);
}
END_TEST

int main(void)
{
    hcga_be *b = NULL;
    char err[1024] = "";
    if (hcga_be_open("onednn", 0, NULL, &b, err, sizeof err) != 0) {
        printf("SKIP test_onednn_ops: the onednn backend cannot be opened: %s\n", err);
        return 77;
    }
    hcga_be_close(b);
    Suite *s = suite_create("onednn_ops");
    TCase *t = hcga_test_tcase(s, "ops");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    HCGA_ADD_TESTS(t, test_options, test_conv, test_gemm, test_relu_bn, test_deterministic, test_blocked_copies,
                   test_blocked_activations, test_amp_chain, test_sum_to, test_conv_bn_winograd);
    return hcga_test_run(s);
}
