/*
 * test_amp_graph.c - mixed precision in the graph layer (graph.h, ABI 1.1),
 * run on the CPU backend plugin: autocast puts CASTs around the
 * convolutions and GEMMs and nowhere else, every other op and every
 * parameter gradient stays F32, the autodiff of CAST and of half
 * convolutions/GEMMs gives gradients close to the F32 graph's, half values
 * are planned at 2 bytes an element and converted exactly on the host side
 * (hcga_half.h), and loss scaling (hg_backward_scaled, hg_grad_check)
 * leaves the gradients unchanged while an overflowing scale is detected.
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "hcga_half.h"
#include "testutil.h"


static double urand(uint64_t *s) { return hcga_test_urand_pm1(s); } /* [-1, 1) */

static int is_gemm_like(int op)
{
    return op == HCGA_OP_CONV2D_FWD || op == HCGA_OP_CONV2D_BWD_DATA || op == HCGA_OP_CONV2D_BWD_FILTER ||
           op == HCGA_OP_GEMM;
}

/* ---- a small model: conv(bias) -> BN -> ReLU -> GAP -> linear -> CE ------ */

enum { N = 4, C = 3, H = 6, W = 6, K = 5, CLS = 3 };

typedef struct net {
    hg_graph *g;
    hg_val x, lab, w, b, gamma, beta, rm, rv, wl, loss, scale, unscale, check;
} net;

/* autocast: -1 or a half dtype; scaled: loss scaling inputs and the check */
static void net_build(net *m, int autocast, int scaled)
{
    memset(m, 0, sizeof *m);
    hg_graph *g = m->g = hg_graph_new(HCGA_F32);
    if (autocast >= 0) hg_graph_set_autocast(g, autocast);
    ck_assert_int_eq(hg_graph_autocast(g), autocast);
    m->x = hg_input(g, "x", HCGA_F32, 4, (int64_t[]){N, C, H, W});
    m->lab = hg_input(g, "lab", HCGA_I64, 1, (int64_t[]){N});
    m->w = hg_param(g, "w", 4, (int64_t[]){K, C, 3, 3}, HG_TRAINABLE);
    m->b = hg_param(g, "b", 1, (int64_t[]){K}, HG_TRAINABLE | HG_BIAS);
    m->gamma = hg_param(g, "gamma", 1, (int64_t[]){K}, HG_TRAINABLE);
    m->beta = hg_param(g, "beta", 1, (int64_t[]){K}, HG_TRAINABLE | HG_BIAS);
    m->rm = hg_param(g, "rm", 1, (int64_t[]){K}, HG_BUFFER);
    m->rv = hg_param(g, "rv", 1, (int64_t[]){K}, HG_BUFFER);
    m->wl = hg_param(g, "wl", 2, (int64_t[]){CLS, K}, HG_TRAINABLE);
    hg_val y = hg_conv2d(g, m->x, m->w, m->b, 1, 1);
    y = hg_relu(g, hg_batchnorm(g, y, m->gamma, m->beta, m->rm, m->rv, 1, 1e-5, 0.1));
    hg_val f = hg_gap(g, y);
    hg_val logits = hg_linear(g, f, m->wl);
    m->loss = hg_ce_ls(g, logits, m->lab, 0.1);
    hg_mark_output(g, m->loss, "loss");
    m->scale = m->unscale = m->check = -1;
    if (scaled) {
        int64_t one = 1;
        m->scale = hg_input(g, "scale", HCGA_F32, 1, &one);
        m->unscale = hg_input(g, "unscale", HCGA_F32, 1, &one);
        ck_assert_int_eq(hg_backward_scaled(g, m->loss, m->scale, m->unscale), 0);
        m->check = hg_grad_check(g);
        ck_assert_int_ge(m->check, 0);
        hg_mark_output(g, m->check, "check");
    } else {
        ck_assert_int_eq(hg_backward(g, m->loss), 0);
    }
}

/* deterministic weights and inputs; running variance 1 */
static void net_fill(net *m, hg_exec *ex, hg_store *s)
{
    uint64_t r = 42;
    float xs[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) xs[i] = (float)urand(&r);
    int64_t lab[N];
    for (int i = 0; i < N; i++) lab[i] = i % CLS;
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_set_input(ex, "lab", lab, HCGA_I64), 0);
    const char *names[] = {"w", "b", "gamma", "beta", "wl", "rv"};
    for (int k = 0; k < 6; k++) {
        hg_store_entry *e = hg_store_get(s, names[k]);
        ck_assert_ptr_nonnull(e);
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        float *v = malloc(sizeof *v * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            v[i] = k == 2 || k == 5 ? (float)(1.0 + 0.1 * urand(&r)) : (float)(0.5 * urand(&r));
        ck_assert_int_eq(hg_store_write(s, e, v, HCGA_F32), 0);
        free(v);
    }
    (void)m;
}

/* loss and the gradients of w, b, gamma, wl of one run */
typedef struct result {
    float loss;
    float gw[K * C * 9], gb[K], gg[K], gl[CLS * K];
} result;

static void net_run(net *m, double scale, result *out, float *check)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    char err[1024] = "";
    hg_exec *ex = hg_exec_new(m->g, s, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    net_fill(m, ex, s);
    if (m->scale >= 0) {
        float sv = (float)scale, iv = (float)(1.0 / scale);
        ck_assert_int_eq(hg_exec_set_input(ex, "scale", &sv, HCGA_F32), 0);
        ck_assert_int_eq(hg_exec_set_input(ex, "unscale", &iv, HCGA_F32), 0);
    }
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, m->loss, &out->loss, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_read(ex, hg_grad(m->g, m->w), out->gw, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_read(ex, hg_grad(m->g, m->b), out->gb, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_read(ex, hg_grad(m->g, m->gamma), out->gg, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_read(ex, hg_grad(m->g, m->wl), out->gl, HCGA_F32), 0);
    if (check) ck_assert_int_eq(hg_exec_read(ex, m->check, check, HCGA_F32), 0);
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
}

/* |a - b| / |b| over a vector (L2) */
static double rel_l2(const float *a, const float *b, int n)
{
    double d = 0, r = 0;
    for (int i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(autocast_casts_only_around_conv_and_gemm)
{
    const int halves[2] = {HCGA_BF16, HCGA_F16};
    const int h = halves[_i];
    net m;
    net_build(&m, h, 0);
    int casts = 0, fwd_casts = -1, gemms = 0, nodes = hg_num_nodes(m.g);
    /* the forward ends at the loss's CE node; count its casts */
    for (int i = 0; i < nodes; i++) {
        hcga_op_args a;
        hg_node_args(m.g, i, &a);
        int nhalf = 0, nf32 = 0;
        for (int k = 0; k < a.num_in + a.num_out; k++) {
            const hcga_tensor *t = k < a.num_in ? a.in[k] : a.out[k - a.num_in];
            if (!t || !hcga_dtype_is_float(t->dtype)) continue;
            if (t->dtype == h) nhalf++;
            else if (t->dtype == HCGA_F32) nf32++;
            else ck_abort_msg("node %d (%s): unexpected dtype %s", i, hcga_op_name(a.op), hcga_dtype_name(t->dtype));
        }
        if (a.op == HCGA_OP_CAST) {
            casts++;
            ck_assert_msg(nhalf == 1 && nf32 == 1, "node %d: a cast between f32 and %s expected", i,
                          hcga_dtype_name(h));
        } else if (is_gemm_like(a.op)) {
            gemms++;
            ck_assert_msg(nf32 == 0 && nhalf >= 2, "node %d (%s): every floating tensor %s", i, hcga_op_name(a.op),
                          hcga_dtype_name(h));
        } else {
            ck_assert_msg(nhalf == 0, "node %d (%s) has a %s tensor: only conv/gemm/cast may", i,
                          hcga_op_name(a.op), hcga_dtype_name(h));
        }
        if (a.op == HCGA_OP_CE_LS_FWD) fwd_casts = casts;
    }
    /* forward: x, w, bias and y of the conv; x, w and y of the linear */
    ck_assert_int_eq(fwd_casts, 7);
    /* conv fwd, bwd_filter (x is an input: no bwd_data); gemm fwd and its two backward gemms */
    ck_assert_int_eq(gemms, 5);
    /* backward: dy of each op cast down, dw, dbias of the conv and da, db of
     * the gemm back up, and the activations x (conv) and a (gemm) cast again
     * for the weight gradients instead of keeping their half copies alive */
    ck_assert_int_eq(casts, 7 + 2 + 4 + 2);
    /* master weights and their gradients are f32 */
    const hg_val ps[5] = {m.w, m.b, m.gamma, m.beta, m.wl};
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(hg_val_dtype(m.g, ps[k]), HCGA_F32);
        ck_assert_int_ge(hg_grad(m.g, ps[k]), 0);
        ck_assert_int_eq(hg_val_dtype(m.g, hg_grad(m.g, ps[k])), HCGA_F32);
    }
    ck_assert_int_eq(hg_val_dtype(m.g, m.loss), HCGA_F32);
    hg_graph_free(m.g);
}
END_TEST

START_TEST(autocast_matches_f32)
{
    const int halves[2] = {HCGA_BF16, HCGA_F16};
    const int h = halves[_i];
    net a, b;
    net_build(&a, -1, 0);
    net_build(&b, h, 0);
    result ra, rb;
    net_run(&a, 1, &ra, NULL);
    net_run(&b, 1, &rb, NULL);
    double dl = fabs((double)rb.loss - ra.loss) / fabs(ra.loss);
    /* bf16 keeps 8 significant bits, f16 11 */
    const double tol = h == HCGA_BF16 ? 2e-2 : 3e-3;
    printf("autocast %s: loss %.7g vs f32 %.7g (relative %.2e); gradients relative L2 w %.2e b %.2e gamma %.2e "
           "wl %.2e\n",
           hcga_dtype_name(h), rb.loss, ra.loss, dl, rel_l2(rb.gw, ra.gw, K * C * 9), rel_l2(rb.gb, ra.gb, K),
           rel_l2(rb.gg, ra.gg, K), rel_l2(rb.gl, ra.gl, CLS * K));
    ck_assert_msg(dl < tol, "loss relative difference %.3g", dl);
    ck_assert_msg(dl > 0, "the half graph gave the f32 loss bit for bit: did it run in half?");
    ck_assert_double_lt(rel_l2(rb.gw, ra.gw, K * C * 9), 8 * tol);
    ck_assert_double_lt(rel_l2(rb.gg, ra.gg, K), 8 * tol);
    ck_assert_double_lt(rel_l2(rb.gl, ra.gl, CLS * K), 8 * tol);
    /* BN removes the bias: its exact gradient is 0; compare to the scale of w's */
    double gbmax = 0, gwmax = 0;
    for (int i = 0; i < K; i++) gbmax = fmax(gbmax, fabs(rb.gb[i]));
    for (int i = 0; i < K * C * 9; i++) gwmax = fmax(gwmax, fabs(rb.gw[i]));
    ck_assert_double_lt(gbmax, 8 * tol * gwmax);
    hg_graph_free(a.g);
    hg_graph_free(b.g);
}
END_TEST

/* half values take 2 bytes an element in the plan; host reads and writes
 * convert with the ABI's rounding */
START_TEST(half_values_planned_at_2_bytes)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    const int64_t shp[4] = {1, 3, 5, 5}; /* 75 elements: 150 bytes in half, 300 in f32 */
    hg_val x = hg_input(g, "x", HCGA_F32, 4, shp);
    hg_val hin = hg_input(g, "hin", HCGA_F16, 4, shp);
    hg_val xb = hg_cast(g, x, HCGA_BF16);
    ck_assert_int_eq(hg_cast(g, xb, HCGA_BF16), xb); /* a cast to its own dtype is the value itself */
    hg_val t = hg_cast(g, x, HCGA_F16); /* transient */
    hg_val back = hg_cast(g, t, HCGA_F32);
    hg_val hb = hg_cast(g, hin, HCGA_F32);
    hg_mark_output(g, xb, "xb");
    hg_mark_output(g, back, "back");
    hg_mark_output(g, hb, "hb");
    ck_assert_int_eq(hg_val_dtype(g, xb), HCGA_BF16);
    ck_assert_int_eq(hg_val_dtype(g, t), HCGA_F16);

    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    char err[1024] = "";
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    uint64_t off, bytes;
    ck_assert_int_eq(hg_exec_placement(ex, xb, &off, &bytes), 0); /* an output: its own buffer */
    ck_assert_uint_eq(bytes, 150);
    ck_assert_int_eq(hg_exec_placement(ex, hin, &off, &bytes), 0);
    ck_assert_uint_eq(bytes, 150);
    ck_assert_int_eq(hg_exec_placement(ex, t, &off, &bytes), 1); /* transient: 150 bytes aligned to 256 */
    ck_assert_uint_eq(bytes, 256);
    ck_assert_uint_eq(hg_exec_peak_bytes(ex), 256);
    ck_assert_int_eq(hg_exec_placement(ex, back, &off, &bytes), 0);
    ck_assert_uint_eq(bytes, 300);
    ck_assert_uint_eq(hg_exec_persistent_bytes(ex), 300 /* x */ + 150 /* hin */ + 150 + 300 + 300);

    float xs[75], got[75];
    double got64[75];
    uint64_t r = 7;
    for (int i = 0; i < 75; i++) xs[i] = (float)(1000.0 * urand(&r));
    xs[0] = 1e6f;         /* beyond f16's range: Inf */
    xs[1] = 1.00390625f;  /* 1 + 2^-8: a bf16 tie, to even (1) */
    xs[2] = 3e-6f;        /* an f16 subnormal */
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_set_input(ex, "hin", xs, HCGA_F32), 0); /* converted to f16 on the way */
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, xb, got, HCGA_F32), 0);
    for (int i = 0; i < 75; i++) ck_assert_float_eq(got[i], hcga_bf16_to_f32(hcga_f32_to_bf16(xs[i])));
    ck_assert_float_eq(got[1], 1.0f);
    ck_assert_int_eq(hg_exec_read(ex, xb, got64, HCGA_F64), 0);
    for (int i = 0; i < 75; i++) ck_assert_double_eq(got64[i], (double)hcga_bf16_to_f32(hcga_f32_to_bf16(xs[i])));
    ck_assert_int_eq(hg_exec_read(ex, back, got, HCGA_F32), 0);
    for (int i = 0; i < 75; i++) ck_assert_float_eq(got[i], hcga_f16_to_f32(hcga_f32_to_f16(xs[i])));
    ck_assert(isinf(got[0]));
    ck_assert(got[2] > 0 && got[2] != xs[2]);
    ck_assert_int_eq(hg_exec_read(ex, hb, got, HCGA_F32), 0);
    for (int i = 0; i < 75; i++) ck_assert_float_eq(got[i], hcga_f16_to_f32(hcga_f32_to_f16(xs[i])));
    /* f64 host data is rounded once, straight to f16 */
    double x64[75];
    for (int i = 0; i < 75; i++) x64[i] = 1.0 + 0x1p-11 + 0x1p-40 * (i + 1); /* just above an f16 tie */
    ck_assert_int_eq(hg_exec_set_input(ex, "hin", x64, HCGA_F64), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, hb, got, HCGA_F32), 0);
    for (int i = 0; i < 75; i++) ck_assert_float_eq(got[i], 1.0f + 0x1p-10f);
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/* the plan of the autocast model: every half value is sized at 2 bytes,
 * every f32 value at 4 (the arena sizes add up to the sum over values) */
START_TEST(autocast_plan_sizes)
{
    net m;
    net_build(&m, HCGA_BF16, 0);
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    char err[1024] = "";
    hg_exec *ex = hg_exec_new(m.g, s, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    int halves = 0, nv = 0;
    uint64_t naive = 0, off, bytes;
    int p;
    /* every value of a graph built before its exec has storage: ids run 0..nv-1 */
    for (hg_val v = 0; (p = hg_exec_placement(ex, v, &off, &bytes)) >= 0; v++, nv++) {
        const int64_t *sh = hg_shape(m.g, v);
        int64_t n = 1;
        for (int d = 0; d < hg_ndim(m.g, v); d++) n *= sh[d];
        const int dt = hg_val_dtype(m.g, v);
        uint64_t expect = (uint64_t)n * hcga_dtype_size(dt);
        if (dt == HCGA_BF16) halves++;
        if (p == 1) {
            expect = (expect + 255) / 256 * 256;
            naive += expect;
        }
        ck_assert_msg(bytes == expect, "value %d (%s): %llu bytes planned, %llu expected", (int)v,
                      hcga_dtype_name(dt), (unsigned long long)bytes, (unsigned long long)expect);
    }
    ck_assert_int_gt(nv, 30);
    /* forward: x, w, bias, the conv's result, the linear's a, w and result;
     * backward: the two dy casts, dw and dbias of the conv, da and dw of the
     * gemm, the recasts of x and a */
    ck_assert_int_eq(halves, 7 + 6 + 2);
    ck_assert_uint_eq(naive, hg_exec_naive_bytes(ex));
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(m.g);
}
END_TEST

/* Loss scaling: the seed S and the unscale 1/S leave the gradients as they
 * are (S a power of 2 scales every f16 value exactly); an S that overflows
 * f16 makes the check non-finite. */
START_TEST(loss_scaling)
{
    net plain, sc;
    net_build(&plain, HCGA_F16, 0);
    net_build(&sc, HCGA_F16, 1);
    result r1, r2, r3;
    float c1, c2, c3;
    net_run(&plain, 1, &r1, NULL);
    net_run(&sc, 1, &r2, &c1);
    ck_assert_float_eq(r1.loss, r2.loss);
    ck_assert_double_lt(rel_l2(r2.gw, r1.gw, K * C * 9), 1e-6);
    ck_assert_double_lt(rel_l2(r2.gl, r1.gl, CLS * K), 1e-6);
    net_run(&sc, 1024, &r3, &c2);
    ck_assert_float_eq(r3.loss, r1.loss);
    /* a scale of 2^10 cannot move a gradient by more than f16 subnormal underflow did at scale 1 */
    ck_assert_double_lt(rel_l2(r3.gw, r1.gw, K * C * 9), 1e-3);
    ck_assert_double_lt(rel_l2(r3.gl, r1.gl, CLS * K), 1e-3);
    ck_assert(isfinite(c1) && c1 > 0);
    ck_assert(isfinite(c2) && fabs(c2 - c1) <= 1e-3 * c1);
    /* the check is the sum of mean |grad| over the parameters (w, b, gamma, beta, wl) */
    double expect = 0;
    for (int i = 0; i < K * C * 9; i++) expect += fabs(r2.gw[i]) / (K * C * 9);
    for (int i = 0; i < K; i++) expect += fabs(r2.gb[i]) / K + fabs(r2.gg[i]) / K;
    for (int i = 0; i < CLS * K; i++) expect += fabs(r2.gl[i]) / (CLS * K);
    ck_assert_double_ge(c1, expect * (1 - 1e-5)); /* + beta's term */
    net_run(&sc, 1e30, &r3, &c3);
    ck_assert_msg(!isfinite(c3), "a loss scale of 1e30 overflows f16, the check read %g", (double)c3);
    hg_graph_free(plain.g);
    hg_graph_free(sc.g);
}
END_TEST

/* one half value consumed twice: its gradient is accumulated through f32 */
START_TEST(half_gradient_accumulation)
{
    float got[2][2 * 3 * 4 * 4];
    for (int pass = 0; pass < 2; pass++) {
        hg_graph *g = hg_graph_new(HCGA_F32);
        hg_val x = hg_input(g, "x", HCGA_F32, 4, (int64_t[]){2, 3, 4, 4});
        hg_requires_grad(g, x);
        hg_val w1 = hg_param(g, "w1", 4, (int64_t[]){2, 3, 3, 3}, HG_TRAINABLE);
        hg_val w2 = hg_param(g, "w2", 4, (int64_t[]){2, 3, 1, 1}, HG_TRAINABLE);
        hg_val y;
        if (pass == 0) {
            y = hg_add(g, hg_conv2d(g, x, w1, -1, 1, 1), hg_conv2d(g, x, w2, -1, 1, 0));
        } else {
            hg_val xh = hg_cast(g, x, HCGA_BF16);
            hg_val a = hg_conv2d(g, xh, hg_cast(g, w1, HCGA_BF16), -1, 1, 1);
            hg_val b = hg_conv2d(g, xh, hg_cast(g, w2, HCGA_BF16), -1, 1, 0);
            ck_assert_int_eq(hg_val_dtype(g, a), HCGA_BF16);
            y = hg_add(g, hg_cast(g, a, HCGA_F32), hg_cast(g, b, HCGA_F32));
        }
        hg_val loss = hg_reduce(g, hg_mul(g, y, y), HCGA_REDUCE_MEAN);
        ck_assert_int_eq(hg_backward(g, loss), 0);
        hg_val gx = hg_grad(g, x);
        ck_assert_int_eq(hg_val_dtype(g, gx), HCGA_F32);
        hg_mark_output(g, gx, "gx");
        hcga_be *be = hcga_test_open_cpu();
        hg_store *s = hg_store_new(be, HCGA_F32);
        char err[1024] = "";
        hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
        ck_assert_msg(ex != NULL, "%s", err);
        uint64_t r = 3;
        float xs[2 * 3 * 4 * 4], w1s[54], w2s[6];
        for (int i = 0; i < 96; i++) xs[i] = (float)urand(&r);
        for (int i = 0; i < 54; i++) w1s[i] = (float)(0.3 * urand(&r));
        for (int i = 0; i < 6; i++) w2s[i] = (float)(0.5 * urand(&r));
        ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
        ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w1"), w1s, HCGA_F32), 0);
        ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "w2"), w2s, HCGA_F32), 0);
        ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
        ck_assert_int_eq(hg_exec_read(ex, gx, got[pass], HCGA_F32), 0);
        hg_exec_free(ex);
        hg_store_free(s);
        hcga_be_close(be);
        hg_graph_free(g);
    }
    double rel = rel_l2(got[1], got[0], 96);
    ck_assert_msg(rel < 3e-2 && rel > 0, "bf16 gradient of x vs f32: relative L2 %.3g", rel);
}
END_TEST

/* one call, one floating dtype: an f32 input with a bf16 weight is a build error */
START_TEST(mixed_operands_abort)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 4, (int64_t[]){1, 2, 3, 3});
    hg_val w = hg_param(g, "w", 4, (int64_t[]){2, 2, 1, 1}, HG_TRAINABLE);
    hg_conv2d(g, x, hg_cast(g, w, HCGA_BF16), -1, 1, 0);
}
END_TEST

START_TEST(autocast_needs_a_half_dtype)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_graph_set_autocast(g, HCGA_F64);
}
END_TEST

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 0);
    TCase *tc;
    Suite *s = hcga_test_suite("amp_graph", &tc);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, autocast_casts_only_around_conv_and_gemm, 0, 2);
    tcase_add_loop_test(tc, autocast_matches_f32, 0, 2);
    HCGA_ADD_TESTS(tc, half_values_planned_at_2_bytes, autocast_plan_sizes, loss_scaling,
                   half_gradient_accumulation);
    tcase_add_test_raise_signal(tc, mixed_operands_abort, SIGABRT);
    tcase_add_test_raise_signal(tc, autocast_needs_a_half_dtype, SIGABRT);
    return hcga_test_run(s);
}
