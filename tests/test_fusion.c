/*
 * test_fusion.c - the executor's fusion of CONV2D_FWD -> BN_FWD_INFER
 * [-> RELU_FWD] runs into one CONV2D_BN_INFER call (graph_exec.c, ABI 1.3
 * optional op).
 *
 * The graph has three runs that must fuse (one with a ReLU, one without,
 * one with a residual add and a ReLU) and one that must not (its
 * convolution's output is read twice).  On the cpu
 * backend, whose fused op runs the same three kernels in turn, the fused
 * and op-by-op executions must give the same bits: any mistake in the
 * fused call's arguments (bias, batch-norm vectors, parameters, output
 * place) or in the planner's lifetimes would change them.  The values are
 * also checked against a direct double-precision evaluation written here,
 * so the two executions cannot agree on a wrong answer; on the onednn
 * backend (when it loads) the fused execution must agree with it too, and
 * keep agreeing after the weights change between runs (a backend that
 * kept its fused convolutions' weights in its own format between calls
 * would have to refresh them after a buffer_write or an op writes them).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "testutil.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

enum { N = 2, C = 3, H = 8, W = 6, K1 = 4, K2 = 5, K3 = 3 };
#define XN (N * C * H * W)
#define DN (N * K3 * H * W)

typedef struct net {
    hg_graph *g;
    hg_val d;
} net;

/* a = relu(bn1(conv1(x) + b1)); b = bn2(conv2(a)); c = conv3(b);
 * d = relu(bn3(c)) + c  (c is read twice: that run must not fuse);
 * e = relu(bn4(conv4(d)) + d)  (a residual block's end) */
static net build(void)
{
    net n;
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 4, SH(N, C, H, W));
    hg_val w1 = hg_param(g, "w1", 4, SH(K1, C, 3, 3), HG_TRAINABLE);
    hg_val b1 = hg_param(g, "b1", 1, SH(K1), HG_TRAINABLE);
    hg_val w2 = hg_param(g, "w2", 4, SH(K2, K1, 1, 1), HG_TRAINABLE);
    hg_val w3 = hg_param(g, "w3", 4, SH(K3, K2, 3, 3), HG_TRAINABLE);
    hg_val w4 = hg_param(g, "w4", 4, SH(K3, K3, 3, 3), HG_TRAINABLE);
    hg_val bn[4][4];
    const int64_t ch[4] = {K1, K2, K3, K3};
    static const char *const what[4] = {"g", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            char name[16];
            snprintf(name, sizeof name, "bn%d.%s", i + 1, what[k]);
            bn[i][k] = hg_param(g, name, 1, SH(ch[i]), k < 2 ? HG_TRAINABLE : HG_BUFFER);
        }
#define BN(i, v) hg_batchnorm(g, (v), bn[i][0], bn[i][1], bn[i][2], bn[i][3], 0, 1e-5, 0.1)
    hg_val a = hg_relu(g, BN(0, hg_conv2d(g, x, w1, b1, 1, 1)));
    hg_val b = BN(1, hg_conv2d(g, a, w2, -1, 1, 0));
    hg_val c = hg_conv2d(g, b, w3, -1, 1, 1);
    hg_val d = hg_add(g, hg_relu(g, BN(2, c)), c);
    n.d = hg_relu(g, hg_add(g, BN(3, hg_conv2d(g, d, w4, -1, 1, 1)), d));
#undef BN
    hg_mark_output(g, n.d, "e");
    n.g = g;
    return n;
}

/* Parameter values: fixed seeds; variances in [0.5, 1.5]. */
typedef struct params {
    double w1[K1 * C * 9], b1[K1], w2[K2 * K1], w3[K3 * K2 * 9], w4[K3 * K3 * 9];
    double bn[4][4][8];
    float x[XN];
} params;

static void make_params(params *p)
{
    uint64_t r = 11;
    for (size_t i = 0; i < sizeof p->w1 / sizeof *p->w1; i++) p->w1[i] = 0.4 * hcga_test_urand_pm1(&r);
    for (int i = 0; i < K1; i++) p->b1[i] = 0.3 * hcga_test_urand_pm1(&r);
    for (int i = 0; i < K2 * K1; i++) p->w2[i] = 0.5 * hcga_test_urand_pm1(&r);
    for (size_t i = 0; i < sizeof p->w3 / sizeof *p->w3; i++) p->w3[i] = 0.3 * hcga_test_urand_pm1(&r);
    for (size_t i = 0; i < sizeof p->w4 / sizeof *p->w4; i++) p->w4[i] = 0.3 * hcga_test_urand_pm1(&r);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 8; k++) {
            p->bn[i][0][k] = 1.0 + 0.5 * hcga_test_urand_pm1(&r);
            p->bn[i][1][k] = 0.5 * hcga_test_urand_pm1(&r);
            p->bn[i][2][k] = 0.5 * hcga_test_urand_pm1(&r);
            p->bn[i][3][k] = 1.0 + 0.5 * hcga_test_urand_pm1(&r);
        }
    for (int i = 0; i < XN; i++) p->x[i] = (float)hcga_test_urand_pm1(&r);
}

/* Direct evaluation in double (3x3 pad 1 or 1x1, stride 1). */
static void conv_ref(const double *x, int cin, const double *w, int cout, int ks, const double *bias,
                     double *y)
{
    const int pad = ks / 2;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < cout; k++)
            for (int h = 0; h < H; h++)
                for (int q = 0; q < W; q++) {
                    double s = bias ? bias[k] : 0.0;
                    for (int c = 0; c < cin; c++)
                        for (int i = 0; i < ks; i++)
                            for (int j = 0; j < ks; j++) {
                                int hh = h + i - pad, ww = q + j - pad;
                                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                                s += x[((n * cin + c) * H + hh) * W + ww] * w[((k * cin + c) * ks + i) * ks + j];
                            }
                    y[((n * cout + k) * H + h) * W + q] = s;
                }
}

static void bn_ref(double *y, int ch, double (*v)[8], int relu)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < ch; k++)
            for (int i = 0; i < H * W; i++) {
                double *p = &y[(n * ch + k) * H * W + i];
                *p = v[0][k] * (*p - v[2][k]) / sqrt(v[3][k] + 1e-5) + v[1][k];
                if (relu && *p < 0) *p = 0;
            }
}

static void reference(const params *p, double *d)
{
    static double x[XN], a[N * K1 * H * W], b[N * K2 * H * W], c[DN], e[DN];
    for (int i = 0; i < XN; i++) x[i] = p->x[i];
    conv_ref(x, C, p->w1, K1, 3, p->b1, a);
    bn_ref(a, K1, (double(*)[8])p->bn[0], 1);
    conv_ref(a, K1, p->w2, K2, 1, NULL, b);
    bn_ref(b, K2, (double(*)[8])p->bn[1], 0);
    conv_ref(b, K2, p->w3, K3, 3, NULL, c);
    for (int i = 0; i < DN; i++) d[i] = c[i];
    bn_ref(d, K3, (double(*)[8])p->bn[2], 1);
    for (int i = 0; i < DN; i++) d[i] += c[i];
    conv_ref(d, K3, p->w4, K3, 3, NULL, e);
    bn_ref(e, K3, (double(*)[8])p->bn[3], 0);
    for (int i = 0; i < DN; i++) d[i] = fmax(e[i] + d[i], 0.0);
}

/* Writes the parameters of p into s. */
static void write_params(hg_store *s, const params *p)
{
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w1"), p->w1, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "b1"), p->b1, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w2"), p->w2, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w3"), p->w3, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w4"), p->w4, HCGA_F64), 0);
    static const char *const what[4] = {"g", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            char name[16];
            snprintf(name, sizeof name, "bn%d.%s", i + 1, what[k]);
            ck_assert_int_eq(hg_store_write(s, hg_store_get(s, name), p->bn[i][k], HCGA_F64), 0);
        }
}

/* Runs the net on be with HCGA_FUSION set to fusion ("0" or "1"): d into
 * out; the number of fused runs and the arena size through the pointers. */
static void run(hcga_be *be, const char *fusion, const params *p, float *out, int *fused, uint64_t *arena)
{
    net n = build();
    setenv("HCGA_FUSION", fusion, 1);
    hg_store *s = hg_store_new(be, HCGA_F32);
    char err[1024];
    hg_exec *ex = hg_exec_new(n.g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    write_params(s, p);
    ck_assert_int_eq(hg_exec_set_input(ex, "x", p->x, HCGA_F32), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, n.d, out, HCGA_F32), 0);
    *fused = hg_exec_fused_count(ex);
    *arena = hg_exec_peak_bytes(ex);
    hg_exec_free(ex);
    hg_store_free(s);
    hg_graph_free(n.g);
    unsetenv("HCGA_FUSION");
}

static double worst_rel(const float *y, const double *ref, int n)
{
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - ref[i]) / scale);
    return worst;
}

START_TEST(cpu_fused_equals_op_by_op)
{
    static params p;
    static float on[DN], off[DN];
    static double ref[DN];
    make_params(&p);
    reference(&p, ref);
    hcga_be *be = hcga_test_open_cpu();
    int f_on, f_off;
    uint64_t a_on, a_off;
    run(be, "1", &p, on, &f_on, &a_on);
    run(be, "0", &p, off, &f_off, &a_off);
    hcga_be_close(be);
    ck_assert_int_eq(f_on, 3); /* conv1+bn1+relu, conv2+bn2, conv4+bn4+add+relu; not conv3 (c is read twice) */
    ck_assert_int_eq(f_off, 0);
    ck_assert_msg(memcmp(on, off, sizeof on) == 0, "fused and op-by-op results differ on the cpu backend");
    const double e = worst_rel(on, ref, DN);
    ck_assert_msg(e < 1e-5, "cpu result off the double-precision evaluation by %g (relative)", e);
    ck_assert_msg(a_on <= a_off, "fusion grew the arena: %llu > %llu bytes", (unsigned long long)a_on,
                  (unsigned long long)a_off);
    printf("fusion on cpu: 3 runs fused, bit-identical, %.1e from the f64 reference, arena %llu -> %llu bytes\n", e,
           (unsigned long long)a_off, (unsigned long long)a_on);
}
END_TEST

START_TEST(bad_setting_is_an_error)
{
    net n = build();
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    setenv("HCGA_FUSION", "yes", 1);
    char err[1024] = "";
    hg_exec *ex = hg_exec_new(n.g, s, err, sizeof err);
    unsetenv("HCGA_FUSION");
    ck_assert_ptr_null(ex);
    ck_assert_msg(strstr(err, "HCGA_FUSION must be 0 or 1, not 'yes'"), "message: %s", err);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(n.g);
}
END_TEST

/* A training graph (batch norm on batch statistics) has nothing to fuse. */
START_TEST(training_graph_is_not_fused)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 4, SH(N, C, H, W));
    hg_val w = hg_param(g, "w", 4, SH(K1, C, 3, 3), HG_TRAINABLE);
    hg_val v[4];
    for (int k = 0; k < 4; k++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", k);
        v[k] = hg_param(g, name, 1, SH(K1), k < 2 ? HG_TRAINABLE : HG_BUFFER);
    }
    hg_val y = hg_relu(g, hg_batchnorm(g, hg_conv2d(g, x, w, -1, 1, 1), v[0], v[1], v[2], v[3], 1, 1e-5, 0.1));
    hg_mark_output(g, y, "y");
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    char err[1024];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    ck_assert_int_eq(hg_exec_fused_count(ex), 0);
    ck_assert_str_eq(hg_exec_fusion_note(ex), "no convolution + batch norm run to fuse");
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/* Runs ex again and checks e against the f64 evaluation of p. */
static void rerun_and_check(hg_exec *ex, hg_val e, const params *p, const char *what)
{
    static float y[DN];
    static double ref[DN];
    reference(p, ref);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, e, y, HCGA_F32), 0);
    const double err = worst_rel(y, ref, DN);
    ck_assert_msg(err < 1e-5, "onednn after %s: %g (relative) off the f64 evaluation", what, err);
}

/* The onednn backend with one thread, or NULL (printed: what is then not
 * checked) when it does not load here. */
static hcga_be *open_onednn(const char *unchecked)
{
    hcga_be *be = NULL;
    char err[1024] = "";
    if (hcga_be_open("onednn", 0, "threads=1", &be, err, sizeof err) == 0 && be) return be;
    printf("onednn not available here (%s): %s not checked\n", err, unchecked);
    return NULL;
}

START_TEST(onednn_weights_change_between_runs)
{
    hcga_be *be = open_onednn("weight changes");
    if (!be) return;
    char err[1024];
    static params p;
    make_params(&p);
    net n = build();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_exec *ex = hg_exec_new(n.g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    ck_assert_int_eq(hg_exec_fused_count(ex), 3);
    write_params(s, &p);
    ck_assert_int_eq(hg_exec_set_input(ex, "x", p.x, HCGA_F32), 0);
    rerun_and_check(ex, n.d, &p, "the first run");
    rerun_and_check(ex, n.d, &p, "a second run with the same weights");
    /* new w1 and w4 through buffer_write (hg_store_write) */
    for (size_t i = 0; i < sizeof p.w1 / sizeof *p.w1; i++) p.w1[i] = -0.5 * p.w1[i] + 0.01 * (double)(i % 7);
    for (size_t i = 0; i < sizeof p.w4 / sizeof *p.w4; i++) p.w4[i] = 0.8 * p.w4[i] - 0.02;
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w1"), p.w1, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w4"), p.w4, HCGA_F64), 0);
    rerun_and_check(ex, n.d, &p, "buffer_write of w1 and w4");
    /* new w2 written by an op (FILL: every weight 0.125) */
    for (int i = 0; i < K2 * K1; i++) p.w2[i] = 0.125;
    const hcga_tensor *w2 = &hg_store_get(s, "w2")->t;
    hcga_op_args fill = {.op = HCGA_OP_FILL, .num_in = 0, .num_out = 1, .out = {w2}};
    fill.p.scalar.a = 0.125;
    ck_assert_msg(hcga_be_run(be, &fill) == HCGA_OK, "%s", hcga_be_error(be));
    rerun_and_check(ex, n.d, &p, "an op (fill) writing w2");
    hg_exec_free(ex);
    hg_store_free(s);
    hg_graph_free(n.g);
    hcga_be_close(be);
    printf("fusion on onednn: weights rewritten by buffer_write and by an op are used\n");
}
END_TEST

START_TEST(onednn_fused_matches)
{
    hcga_be *be = open_onednn("the fused onednn run");
    if (!be) return;
    static params p;
    static float on[DN];
    static double ref[DN];
    make_params(&p);
    reference(&p, ref);
    int fused;
    uint64_t arena;
    run(be, "1", &p, on, &fused, &arena);
    hcga_be_close(be);
    ck_assert_int_eq(fused, 3);
    const double e = worst_rel(on, ref, DN);
    ck_assert_msg(e < 1e-5, "onednn fused result off the double-precision evaluation by %g (relative)", e);
    printf("fusion on onednn: 3 runs fused, %.1e from the f64 reference\n", e);
}
END_TEST

static Suite *fusion_suite(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("fusion", &tc);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cpu_fused_equals_op_by_op);
    tcase_add_test(tc, bad_setting_is_an_error);
    tcase_add_test(tc, training_graph_is_not_fused);
    tcase_add_test(tc, onednn_fused_matches);
    tcase_add_test(tc, onednn_weights_change_between_runs);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 0);
    return hcga_test_run(fusion_suite());
}
