/*
 * test_graph.c - the graph builders, autodiff and optimizers, run on the CPU
 * backend plugin.
 *
 * Gradients are checked against central finite differences of the loss in
 * F64 (h = 1e-6), for every input and parameter element, on small graphs
 * covering every builder.  Optimizer steps are checked against the torch
 * formulas written out independently below.
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static int64_t numel(int ndim, const int64_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= s[i];
    return n;
}

static double urand(uint64_t *s) { return hcga_test_urand_pm1(s); } /* [-1, 1) */

#define MAXIT 40

typedef struct item {
    char name[64];
    hg_val v;
    int kind;   /* 0 input with grad, 1 constant input, 2 labels, 3 param (grad), 4 buffer param */
    int64_t n;
    double *x;  /* float data */
    int64_t *lab;
} item;

typedef struct gcase {
    hg_graph *g;
    item it[MAXIT];
    int nit;
    uint64_t rng;
    double max_err;
    int checked;
} gcase;

static void gc_init(gcase *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->g = hg_graph_new(HCGA_F64);
    c->rng = seed;
}

static item *add_item(gcase *c, const char *name, int kind, int ndim, const int64_t *shape)
{
    ck_assert_int_lt(c->nit, MAXIT);
    item *it = &c->it[c->nit++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->kind = kind;
    it->n = numel(ndim, shape);
    return it;
}

static void fill_rand(gcase *c, item *it, double scale, double offset)
{
    it->x = malloc((size_t)it->n * sizeof(double));
    for (int64_t i = 0; i < it->n; i++) it->x[i] = offset + scale * urand(&c->rng);
}

/* float input that wants a gradient */
static hg_val in_x(gcase *c, const char *name, int ndim, const int64_t *shape, double scale, double offset)
{
    item *it = add_item(c, name, 0, ndim, shape);
    it->v = hg_input(c->g, name, HCGA_F64, ndim, shape);
    hg_requires_grad(c->g, it->v);
    fill_rand(c, it, scale, offset);
    return it->v;
}

/* float input without gradient */
static hg_val in_const(gcase *c, const char *name, int ndim, const int64_t *shape, double scale, double offset)
{
    item *it = add_item(c, name, 1, ndim, shape);
    it->v = hg_input(c->g, name, HCGA_F64, ndim, shape);
    fill_rand(c, it, scale, offset);
    return it->v;
}

static hg_val in_labels(gcase *c, const char *name, int ndim, const int64_t *shape, const int64_t *lab)
{
    item *it = add_item(c, name, 2, ndim, shape);
    it->v = hg_input(c->g, name, HCGA_I64, ndim, shape);
    it->lab = malloc((size_t)it->n * sizeof(int64_t));
    memcpy(it->lab, lab, (size_t)it->n * sizeof(int64_t));
    return it->v;
}

static hg_val param(gcase *c, const char *name, int ndim, const int64_t *shape, double scale, double offset)
{
    item *it = add_item(c, name, 3, ndim, shape);
    it->v = hg_param(c->g, name, ndim, shape, HG_TRAINABLE);
    fill_rand(c, it, scale, offset);
    return it->v;
}

static hg_val buffer(gcase *c, const char *name, int ndim, const int64_t *shape, double scale, double offset)
{
    item *it = add_item(c, name, 4, ndim, shape);
    it->v = hg_param(c->g, name, ndim, shape, HG_BUFFER);
    fill_rand(c, it, scale, offset);
    return it->v;
}

static void upload(hg_exec *ex, hg_store *s, const item *it)
{
    int rc;
    if (it->kind == 2) rc = hg_exec_set_input(ex, it->name, it->lab, HCGA_I64);
    else if (it->kind >= 3) rc = hg_store_write(s, hg_store_get(s, it->name), it->x, HCGA_F64);
    else rc = hg_exec_set_input(ex, it->name, it->x, HCGA_F64);
    ck_assert_msg(rc == 0, "upload %s: %s", it->name, hg_exec_error(ex));
}

static double run_loss(hg_exec *ex, hg_val loss)
{
    ck_assert_msg(hg_exec_run(ex) == 0, "run: %s", hg_exec_error(ex));
    double l = NAN;
    ck_assert_msg(hg_exec_read(ex, loss, &l, HCGA_F64) == 0, "read loss: %s", hg_exec_error(ex));
    return l;
}

/* Turn y into a scalar loss (weighted sum with fixed random weights), run
 * backward, and compare every analytic gradient with central differences. */
static void gc_check(gcase *c, hg_val y)
{
    hg_graph *g = c->g;
    hg_val loss = y;
    if (numel(hg_ndim(g, y), hg_shape(g, y)) != 1) {
        int64_t sh[HCGA_MAX_DIMS];
        int nd = hg_ndim(g, y);
        memcpy(sh, hg_shape(g, y), (size_t)nd * sizeof(int64_t));
        hg_val w = in_const(c, "loss_weights", nd, sh, 1.0, 0.0);
        loss = hg_reduce(g, hg_mul(g, y, w), HCGA_REDUCE_SUM);
    }
    hg_mark_output(g, loss, "loss");
    ck_assert_int_eq(hg_backward(g, loss), 0);
    for (int i = 0; i < c->nit; i++) {
        item *it = &c->it[i];
        if (it->kind != 0 && it->kind != 3) {
            continue;
        }
        hg_val gv = hg_grad(g, it->v);
        ck_assert_msg(gv >= 0, "%s has no gradient", it->name);
        if (it->kind == 0) {
            char nm[80];
            snprintf(nm, sizeof nm, "grad.%s", it->name);
            hg_mark_output(g, gv, nm);
        }
    }
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F64);
    char err[1024] = "";
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex != NULL, "hg_exec_new: %s", err);
    for (int i = 0; i < c->nit; i++) upload(ex, s, &c->it[i]);
    double l0 = run_loss(ex, loss);
    ck_assert_msg(isfinite(l0), "loss %g", l0);

    const double h = 1e-6;
    for (int i = 0; i < c->nit; i++) {
        item *it = &c->it[i];
        if (it->kind != 0 && it->kind != 3) continue;
        /* read the analytic gradient from the baseline run */
        double *ga = malloc((size_t)it->n * sizeof *ga);
        upload(ex, s, it);
        run_loss(ex, loss);
        ck_assert_msg(hg_exec_read(ex, hg_grad(g, it->v), ga, HCGA_F64) == 0, "read grad %s: %s", it->name,
                      hg_exec_error(ex));
        for (int64_t j = 0; j < it->n; j++) {
            double x0 = it->x[j];
            it->x[j] = x0 + h;
            upload(ex, s, it);
            double lp = run_loss(ex, loss);
            it->x[j] = x0 - h;
            upload(ex, s, it);
            double lm = run_loss(ex, loss);
            it->x[j] = x0;
            double num = (lp - lm) / (2 * h);
            double e = fabs(ga[j] - num);
            double tol = 1e-7 + 1e-5 * fabs(num);
            ck_assert_msg(e <= tol, "d loss / d %s[%lld]: analytic %.10g, numeric %.10g", it->name,
                          (long long)j, ga[j], num);
            double rel = e / (fabs(num) + 1e-3);
            if (rel > c->max_err) c->max_err = rel;
            c->checked++;
        }
        upload(ex, s, it);
        free(ga);
    }
    ck_assert_int_gt(c->checked, 0);
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    for (int i = 0; i < c->nit; i++) {
        free(c->it[i].x);
        free(c->it[i].lab);
    }
    hg_graph_free(g);
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* ---- gradient checks ------------------------------------------------------ */

START_TEST(grad_conv_bn_relu)
{
    gcase c;
    gc_init(&c, 11);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 4, SH(2, 3, 5, 5), 1, 0);
    hg_val w1 = param(&c, "w1", 4, SH(4, 3, 3, 3), 0.5, 0);
    hg_val b1 = param(&c, "b1", 1, SH(4), 0.5, 0);
    hg_val ga1 = param(&c, "bn1.weight", 1, SH(4), 0.3, 1);
    hg_val be1 = param(&c, "bn1.bias", 1, SH(4), 0.3, 0);
    hg_val rm1 = buffer(&c, "bn1.running_mean", 1, SH(4), 0.1, 0);
    hg_val rv1 = buffer(&c, "bn1.running_var", 1, SH(4), 0.1, 1);
    hg_val y = hg_conv2d(g, x, w1, b1, 1, 1);
    y = hg_batchnorm(g, y, ga1, be1, rm1, rv1, 1, 1e-5, 0.1);
    y = hg_relu(g, y);
    hg_val w2 = param(&c, "w2", 4, SH(3, 4, 3, 3), 0.5, 0);
    hg_val ga2 = param(&c, "bn2.weight", 1, SH(3), 0.3, 1);
    hg_val be2 = param(&c, "bn2.bias", 1, SH(3), 0.3, 0);
    hg_val rm2 = buffer(&c, "bn2.running_mean", 1, SH(3), 0.1, 0);
    hg_val rv2 = buffer(&c, "bn2.running_var", 1, SH(3), 0.1, 1);
    y = hg_conv2d(g, y, w2, -1, 2, 1);
    ck_assert_int_eq(hg_shape(g, y)[2], 3);
    ck_assert_int_eq(hg_shape(g, y)[3], 3);
    y = hg_batchnorm(g, y, ga2, be2, rm2, rv2, 1, 1e-5, 0.1);
    y = hg_relu(g, y);
    gc_check(&c, y);
}
END_TEST

START_TEST(grad_bn_infer)
{
    gcase c;
    gc_init(&c, 12);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 4, SH(2, 3, 3, 2), 1, 0.2);
    hg_val ga = param(&c, "bn.weight", 1, SH(3), 0.3, 1);
    hg_val bb = param(&c, "bn.bias", 1, SH(3), 0.3, 0);
    hg_val rm = buffer(&c, "bn.running_mean", 1, SH(3), 0.3, 0);
    hg_val rv = buffer(&c, "bn.running_var", 1, SH(3), 0.3, 0.8);
    hg_val y = hg_batchnorm(g, x, ga, bb, rm, rv, 0, 1e-5, 0.1);
    /* and a 1-D (BNNeck-style) infer + train pair on a pooled feature */
    hg_val f = hg_gap(g, y);
    hg_val ga2 = param(&c, "bn2.weight", 1, SH(3), 0.3, 1);
    hg_val bb2 = param(&c, "bn2.bias", 1, SH(3), 0.3, 0);
    hg_val rm2 = buffer(&c, "bn2.running_mean", 1, SH(3), 0.3, 0);
    hg_val rv2 = buffer(&c, "bn2.running_var", 1, SH(3), 0.3, 0.8);
    hg_val f1 = hg_batchnorm(g, f, ga2, bb2, rm2, rv2, 0, 1e-5, 0.1);
    /* own running stats: BN_FWD_TRAIN rewrites them at every run */
    hg_val rm3 = buffer(&c, "bn3.running_mean", 1, SH(3), 0.3, 0);
    hg_val rv3 = buffer(&c, "bn3.running_var", 1, SH(3), 0.3, 0.8);
    hg_val f2 = hg_batchnorm(g, f, ga2, bb2, rm3, rv3, 1, 1e-5, 0.1);
    gc_check(&c, hg_concat(g, 2, (hg_val[]){f1, f2}));
}
END_TEST

START_TEST(grad_broadcast)
{
    gcase c;
    gc_init(&c, 13);
    hg_graph *g = c.g;
    hg_val a = in_x(&c, "a", 4, SH(2, 3, 2, 4), 1, 0);
    hg_val b = param(&c, "b", 4, SH(1, 3, 1, 1), 1, 0);
    hg_val cc = in_x(&c, "c", 4, SH(2, 1, 2, 4), 1, 0);
    hg_val d = param(&c, "d", 1, SH(4), 1, 0);         /* right-aligned: [1,1,1,4] */
    hg_val s = param(&c, "s", 4, SH(1, 1, 1, 1), 1, 0); /* scalar-shaped */
    hg_val y = hg_mul(g, a, b);
    y = hg_add(g, y, cc);
    y = hg_mul(g, d, y);
    y = hg_axpby(g, 2.0, y, -0.5, a);
    y = hg_scale(g, y, 3.0);
    y = hg_add(g, hg_mul(g, y, s), hg_axpby(g, 0.7, cc, 0.0, cc));
    gc_check(&c, y);
}
END_TEST

START_TEST(grad_softmax_sigmoid_threshold)
{
    gcase c;
    gc_init(&c, 14);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 4, SH(2, 4, 3, 2), 2, 0);
    hg_val p = hg_softmax(g, x);
    hg_val t = hg_threshold(g, p, 0.25);
    hg_val sg = hg_sigmoid(g, x);
    hg_val am = hg_argmax(g, p); /* no gradient, must not disturb */
    ck_assert_int_eq(hg_val_dtype(g, am), HCGA_I64);
    ck_assert_int_eq(hg_ndim(g, am), 3);
    hg_val x2 = in_x(&c, "x2", 2, SH(3, 5), 2, 0); /* 2-D softmax */
    hg_val p2 = hg_softmax(g, x2);
    hg_val y = hg_mul(g, t, sg);
    hg_val l1 = hg_reduce(g, y, HCGA_REDUCE_SUM);
    hg_val l2 = hg_reduce(g, hg_mul(g, p2, in_const(&c, "w2", 2, SH(3, 5), 1, 0)), HCGA_REDUCE_SUM);
    gc_check(&c, hg_add(g, hg_scale(g, l1, 0.3), l2));
    (void)am;
}
END_TEST

START_TEST(grad_resize_upsample)
{
    gcase c;
    gc_init(&c, 15);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 4, SH(1, 2, 3, 4), 1, 0);
    hg_val y = hg_resize_bilinear(g, x, 5, 7, 1);
    y = hg_upsample_nearest(g, y, 2);
    ck_assert_int_eq(hg_shape(g, y)[2], 10);
    ck_assert_int_eq(hg_shape(g, y)[3], 14);
    y = hg_resize_bilinear(g, y, 4, 3, 0);
    hg_val z = hg_resize_bilinear(g, x, 1, 6, 1); /* OH == 1 */
    hg_val l = hg_add(g, hg_reduce(g, hg_mul(g, y, in_const(&c, "wy", 4, SH(1, 2, 4, 3), 1, 0)), HCGA_REDUCE_SUM),
                      hg_reduce(g, hg_mul(g, z, in_const(&c, "wz", 4, SH(1, 2, 1, 6), 1, 0)), HCGA_REDUCE_SUM));
    gc_check(&c, l);
}
END_TEST

START_TEST(grad_concat_split)
{
    gcase c;
    gc_init(&c, 16);
    hg_graph *g = c.g;
    hg_val a = in_x(&c, "a", 3, SH(2, 2, 3), 1, 0);
    hg_val b = in_x(&c, "b", 3, SH(2, 3, 3), 1, 0);
    hg_val d = in_x(&c, "d", 4, SH(1, 1, 2, 2), 1, 0);
    hg_val e = in_x(&c, "e", 4, SH(1, 2, 2, 2), 1, 0);
    hg_val cat = hg_concat(g, 2, (hg_val[]){a, b});
    ck_assert_int_eq(hg_shape(g, cat)[1], 5);
    hg_val parts[3];
    hg_split(g, cat, 3, SH(1, 3, 1), parts);
    ck_assert_int_eq(hg_shape(g, parts[1])[1], 3);
    /* parts[0] unused: its gradient is zero-filled for the CONCAT backward */
    hg_val y = hg_add(g, hg_mul(g, parts[1], in_const(&c, "w1", 3, SH(2, 3, 3), 1, 0)),
                      hg_scale(g, hg_reduce(g, parts[2], HCGA_REDUCE_SUM), 0.5));
    hg_val cat4 = hg_concat(g, 3, (hg_val[]){d, e, d});
    hg_val p4[2];
    hg_split(g, cat4, 2, SH(2, 2), p4);
    hg_val z = hg_mul(g, p4[0], p4[1]);
    hg_val l = hg_add(g, hg_reduce(g, y, HCGA_REDUCE_SUM), hg_reduce(g, hg_sigmoid(g, z), HCGA_REDUCE_SUM));
    gc_check(&c, l);
}
END_TEST

START_TEST(grad_gemm_transposes)
{
    gcase c;
    gc_init(&c, 17);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 4, SH(2, 3, 2, 3), 1, 0);
    hg_val w = param(&c, "fc.weight", 2, SH(4, 3), 1, 0);
    hg_val f = hg_linear(g, hg_gap(g, x), w); /* [2,4] */
    ck_assert_int_eq(hg_shape(g, f)[0], 2);
    ck_assert_int_eq(hg_shape(g, f)[1], 4);
    hg_val m00 = param(&c, "m00", 2, SH(4, 5), 1, 0);
    hg_val m01 = param(&c, "m01", 2, SH(5, 4), 1, 0);
    hg_val m10 = param(&c, "m10", 2, SH(2, 3), 1, 0);
    hg_val m11 = param(&c, "m11", 2, SH(3, 4), 1, 0);
    hg_val y00 = hg_matmul(g, f, m00, 0, 0);   /* [2,5] */
    hg_val y01 = hg_matmul(g, f, m01, 0, 1);   /* [2,5] */
    hg_val y10 = hg_matmul(g, f, m10, 1, 0);   /* f^T m10: [4,3] */
    hg_val y11 = hg_matmul(g, y10, m11, 1, 1); /* y10^T m11^T: [3,4]x[4,3] = [3,3] */
    ck_assert_int_eq(hg_shape(g, y11)[0], 3);
    ck_assert_int_eq(hg_shape(g, y11)[1], 3);
    hg_val l = hg_add(g, hg_reduce(g, hg_mul(g, y00, y01), HCGA_REDUCE_SUM),
                      hg_reduce(g, hg_mul(g, y11, in_const(&c, "w11", 2, SH(3, 3), 1, 0)), HCGA_REDUCE_SUM));
    gc_check(&c, l);
}
END_TEST

START_TEST(grad_reshape_reduce)
{
    gcase c;
    gc_init(&c, 18);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 3, SH(2, 3, 4), 1, 0);
    hg_val r = hg_reshape(g, x, 2, SH(6, 4));
    hg_val m = param(&c, "m", 2, SH(4, 2), 1, 0);
    hg_val y = hg_matmul(g, r, m, 0, 0); /* [6,2] */
    hg_val back = hg_reshape(g, y, 4, SH(2, 3, 2, 1));
    hg_val l1 = hg_reduce(g, back, HCGA_REDUCE_MEAN);
    hg_val l2 = hg_reduce(g, x, HCGA_REDUCE_ABS_MEAN);
    hg_val l3 = hg_reduce(g, hg_mul(g, back, back), HCGA_REDUCE_SUM);
    gc_check(&c, hg_add(g, hg_add(g, l1, l2), hg_scale(g, l3, 0.1)));
}
END_TEST

START_TEST(grad_losses)
{
    gcase c;
    gc_init(&c, 19);
    hg_graph *g = c.g;
    /* label-smoothed and plain cross entropy */
    hg_val lg = in_x(&c, "logits", 2, SH(4, 5), 2, 0);
    hg_val lab = in_labels(&c, "pids", 1, SH(4), SH(3, 0, 4, 3));
    hg_val ce1 = hg_ce_ls(g, lg, lab, 0.1);
    hg_val ce0 = hg_ce_ls(g, lg, lab, 0.0);
    /* pixel cross entropy with ignored pixels */
    hg_val pl = in_x(&c, "pix_logits", 4, SH(2, 3, 2, 3), 2, 0);
    hg_val plab = in_labels(&c, "parsing", 3, SH(2, 2, 3), SH(0, 1, 2, -1, 2, 0, 1, -1, 1, 2, 0, 0));
    hg_val pce = hg_pixel_ce(g, pl, plab, -1);
    /* batch-hard triplet */
    hg_val tx = in_x(&c, "feat", 2, SH(6, 3), 1, 0);
    hg_val tl = in_labels(&c, "tid", 1, SH(6), SH(0, 0, 1, 1, 2, 2));
    hg_val tri = hg_triplet(g, tx, tl, 0.3);
    /* shift L1 in every direction the co-parsing loss uses */
    hg_val sx = in_x(&c, "map", 4, SH(3, 2, 3, 3), 1, 0);
    hg_val sl = hg_shift_l1(g, sx, 1, 0, 0);
    sl = hg_add(g, sl, hg_shift_l1(g, sx, 0, 1, 0));
    sl = hg_add(g, sl, hg_shift_l1(g, sx, 0, 0, 1));
    sl = hg_add(g, sl, hg_shift_l1(g, sx, 0, 1, 1));
    sl = hg_add(g, sl, hg_shift_l1(g, sx, 0, 1, -1));
    hg_val l = hg_add(g, hg_add(g, ce1, hg_scale(g, ce0, 0.5)), hg_add(g, hg_scale(g, pce, 0.1), tri));
    gc_check(&c, hg_add(g, l, sl));
}
END_TEST

/* a value used several times: gradients must add up */
START_TEST(grad_accumulation)
{
    gcase c;
    gc_init(&c, 20);
    hg_graph *g = c.g;
    hg_val x = in_x(&c, "x", 2, SH(3, 4), 1, 0);
    hg_val p = param(&c, "p", 2, SH(3, 4), 1, 0);
    hg_val y = hg_add(g, hg_mul(g, x, x), hg_relu(g, x));  /* x used 3 times */
    y = hg_add(g, y, hg_axpby(g, 2.0, x, -1.0, x));        /* twice in one node */
    y = hg_mul(g, y, hg_sigmoid(g, p));
    y = hg_add(g, y, hg_mul(g, p, p));
    gc_check(&c, y);
}
END_TEST

/* the same check, exact: d/dx sum(x*x + 3x) = 2x + 3 */
START_TEST(grad_accumulation_exact)
{
    hg_graph *g = hg_graph_new(HCGA_F64);
    hg_val x = hg_input(g, "x", HCGA_F64, 1, SH(5));
    hg_requires_grad(g, x);
    hg_val l = hg_reduce(g, hg_add(g, hg_mul(g, x, x), hg_scale(g, x, 3.0)), HCGA_REDUCE_SUM);
    hg_backward(g, l);
    hg_val gx = hg_grad(g, x);
    ck_assert_int_ge(gx, 0);
    hg_mark_output(g, gx, "gx");
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F64);
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    double xs[5] = {1, -2, 0.5, 4, -0.25}, out[5];
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F64), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, gx, out, HCGA_F64), 0);
    for (int i = 0; i < 5; i++) ck_assert_double_eq_tol(out[i], 2 * xs[i] + 3, 1e-12);
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/* which values get gradients, and how many backward nodes */
START_TEST(grad_only_on_paths)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 2, SH(2, 3));
    hg_val lab = hg_input(g, "lab", HCGA_I64, 1, SH(2));
    hg_val w = hg_param(g, "w", 2, SH(3, 3), HG_TRAINABLE);
    hg_val fz = hg_param(g, "fz", 1, SH(3), HG_TRAINABLE | HG_FROZEN);
    hg_val nt = hg_param(g, "nt", 2, SH(3, 3), 0); /* not trainable */
    hg_val side = hg_relu(g, hg_linear(g, x, w)); /* does not reach the loss */
    hg_val xn = hg_linear(g, x, nt);              /* no trainable param upstream */
    hg_val h = hg_linear(g, xn, w);
    hg_val hb = hg_add(g, h, fz);
    hg_val am = hg_argmax(g, hb);
    hg_val loss = hg_ce_ls(g, hb, lab, 0.1);
    int nf = hg_num_nodes(g);
    hg_backward(g, loss);
    ck_assert_int_ge(hg_grad(g, w), 0);
    ck_assert_int_ge(hg_grad(g, fz), 0);
    ck_assert_int_ge(hg_grad(g, hb), 0);
    ck_assert_int_eq(hg_grad(g, nt), -1);
    ck_assert_int_eq(hg_grad(g, x), -1);
    ck_assert_int_eq(hg_grad(g, xn), -1);
    ck_assert_int_eq(hg_grad(g, side), -1);
    ck_assert_int_eq(hg_grad(g, am), -1);
    ck_assert_int_eq(hg_grad(g, lab), -1);
    /* seed FILL, CE_LS_BWD, SUM_TO (fz), GEMM (dw); nothing for xn or side */
    ck_assert_int_eq(hg_num_nodes(g) - nf, 4);
    hcga_op_args a;
    hg_node_args(g, nf + 1, &a);
    ck_assert_int_eq(a.op, HCGA_OP_CE_LS_BWD);
    hg_graph_free(g);
}
END_TEST

START_TEST(node_args_introspection)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 4, SH(2, 3, 9, 7));
    hg_val w = hg_param(g, "w", 4, SH(8, 3, 3, 3), HG_TRAINABLE);
    hg_val y = hg_conv2d(g, x, w, -1, 2, 1);
    ck_assert_int_eq(hg_shape(g, y)[1], 8);
    ck_assert_int_eq(hg_shape(g, y)[2], 5);
    ck_assert_int_eq(hg_shape(g, y)[3], 4);
    hcga_op_args a;
    hg_node_args(g, 0, &a);
    ck_assert_int_eq(a.op, HCGA_OP_CONV2D_FWD);
    ck_assert_int_eq(a.num_in, 2);
    ck_assert_int_eq(a.num_out, 1);
    ck_assert_ptr_null(a.in[0]->buf);
    ck_assert_int_eq(a.in[1]->shape[0], 8);
    ck_assert_int_eq(a.out[0]->shape[2], 5);
    ck_assert_int_eq(a.out[0]->stride[0], 8 * 5 * 4);
    ck_assert_int_eq(a.p.conv.stride_h, 2);
    ck_assert_int_eq(a.p.conv.pad_w, 1);
    ck_assert_int_eq(a.p.conv.dilation_h, 1);
    /* broadcasting operand padded to the output's rank */
    hg_val b = hg_param(g, "b", 1, SH(4), HG_TRAINABLE);
    hg_val z = hg_add(g, y, b);
    (void)z;
    hg_node_args(g, 1, &a);
    ck_assert_int_eq(a.op, HCGA_OP_ADD);
    ck_assert_int_eq(a.in[1]->ndim, 4);
    ck_assert_int_eq(a.in[1]->shape[0], 1);
    ck_assert_int_eq(a.in[1]->shape[3], 4);
    ck_assert_int_eq(hg_find(g, "w"), w);
    ck_assert_int_eq(hg_find(g, "x"), x);
    hg_mark_output(g, y, "out.y");
    ck_assert_int_eq(hg_find(g, "out.y"), y);
    ck_assert_int_eq(hg_find(g, "nope"), -1);
    hg_graph_free(g);
}
END_TEST

/* shape errors abort (programming errors in the model builder) */
START_TEST(shape_error_conv)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 4, SH(1, 3, 8, 8));
    hg_val w = hg_param(g, "w", 4, SH(4, 5, 3, 3), HG_TRAINABLE);
    hg_conv2d(g, x, w, -1, 1, 1);
}
END_TEST

START_TEST(shape_error_broadcast)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val a = hg_input(g, "a", HCGA_F32, 2, SH(2, 3));
    hg_val b = hg_input(g, "b", HCGA_F32, 2, SH(2, 4));
    hg_add(g, a, b);
}
END_TEST

START_TEST(shape_error_matmul)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val a = hg_param(g, "a", 2, SH(4, 3), HG_TRAINABLE);
    hg_val b = hg_param(g, "b", 2, SH(3, 2), HG_TRAINABLE);
    hg_matmul(g, a, b, 1, 1); /* a^T [3,4] x b^T [2,3] */
}
END_TEST

START_TEST(shape_error_split)
{
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val a = hg_input(g, "a", HCGA_F32, 2, SH(2, 5));
    hg_val o[2];
    hg_split(g, a, 2, SH(2, 2), o);
}
END_TEST

/* ---- optimizers ----------------------------------------------------------- */

typedef struct optim_fixture {
    hcga_be *be;
    hg_store *s;
    hg_graph *g;
    hg_exec *ex;
    hg_val p, q, f, rb;
    double w[3][6];
} optim_fixture;

/* loss = sum(w0*p*p) + sum(w1*q*q) + sum(w2*f*f): grad = 2*w*param */
static void optim_setup(optim_fixture *o)
{
    o->be = hcga_test_open_cpu();
    o->s = hg_store_new(o->be, HCGA_F64);
    hg_graph *g = o->g = hg_graph_new(HCGA_F64);
    o->p = hg_param(g, "p", 1, SH(6), HG_TRAINABLE);
    o->q = hg_param(g, "q", 1, SH(6), HG_TRAINABLE | HG_BIAS);
    o->f = hg_param(g, "f", 1, SH(6), HG_TRAINABLE | HG_FROZEN | HG_BIAS);
    hg_val w0 = hg_input(g, "w0", HCGA_F64, 1, SH(6));
    hg_val w1 = hg_input(g, "w1", HCGA_F64, 1, SH(6));
    hg_val w2 = hg_input(g, "w2", HCGA_F64, 1, SH(6));
    hg_val l = hg_reduce(g, hg_mul(g, w0, hg_mul(g, o->p, o->p)), HCGA_REDUCE_SUM);
    l = hg_add(g, l, hg_reduce(g, hg_mul(g, w1, hg_mul(g, o->q, o->q)), HCGA_REDUCE_SUM));
    l = hg_add(g, l, hg_reduce(g, hg_mul(g, w2, hg_mul(g, o->f, o->f)), HCGA_REDUCE_SUM));
    hg_mark_output(g, l, "loss");
    hg_backward(g, l);
    char err[512];
    o->ex = hg_exec_new(g, o->s, err, sizeof err);
    ck_assert_msg(o->ex, "%s", err);
    uint64_t r = 99;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 6; i++) o->w[k][i] = urand(&r);
    ck_assert_int_eq(hg_exec_set_input(o->ex, "w0", o->w[0], HCGA_F64), 0);
    ck_assert_int_eq(hg_exec_set_input(o->ex, "w1", o->w[1], HCGA_F64), 0);
    ck_assert_int_eq(hg_exec_set_input(o->ex, "w2", o->w[2], HCGA_F64), 0);
}

static void optim_teardown(optim_fixture *o)
{
    hg_exec_free(o->ex);
    hg_store_free(o->s);
    hcga_be_close(o->be);
    hg_graph_free(o->g);
}

START_TEST(adam_matches_torch_formula)
{
    optim_fixture o;
    optim_setup(&o);
    const char *names[3] = {"p", "q", "f"};
    double ref[3][6], m[3][6] = {{0}}, v[3][6] = {{0}};
    uint64_t r = 7;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 6; i++) ref[k][i] = urand(&r);
        ck_assert_int_eq(hg_store_write(o.s, hg_store_get(o.s, names[k]), ref[k], HCGA_F64), 0);
    }
    hg_optim_cfg cfg = {.lr = 0.01, .weight_decay = 5e-4, .lr_bias = 0.02, .weight_decay_bias = 1e-3,
                        .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum = 0, .step = 0};
    ck_assert_ptr_null(hg_store_get(o.s, "p")->m.buf); /* state is lazy */
    for (int t = 1; t <= 4; t++) {
        ck_assert_msg(hg_exec_run(o.ex) == 0, "%s", hg_exec_error(o.ex));
        /* gradients from the graph equal 2*w*param */
        for (int k = 0; k < 3; k++) {
            double gr[6];
            ck_assert_int_eq(hg_exec_read(o.ex, hg_grad(o.g, k == 0 ? o.p : k == 1 ? o.q : o.f), gr, HCGA_F64), 0);
            for (int i = 0; i < 6; i++) ck_assert_double_eq_tol(gr[i], 2 * o.w[k][i] * ref[k][i], 1e-12);
        }
        cfg.step = t;
        ck_assert_msg(hg_adam_step(o.ex, &cfg) == 0, "%s", hg_exec_error(o.ex));
        /* torch.optim.Adam (not AdamW), written out */
        for (int k = 0; k < 2; k++) { /* f is frozen */
            double lr = k == 1 ? cfg.lr_bias : cfg.lr, wd = k == 1 ? cfg.weight_decay_bias : cfg.weight_decay;
            for (int i = 0; i < 6; i++) {
                double gg = 2 * o.w[k][i] * ref[k][i] + wd * ref[k][i];
                m[k][i] = cfg.beta1 * m[k][i] + (1 - cfg.beta1) * gg;
                v[k][i] = cfg.beta2 * v[k][i] + (1 - cfg.beta2) * gg * gg;
                double bc1 = 1 - pow(cfg.beta1, t), bc2 = 1 - pow(cfg.beta2, t);
                double denom = sqrt(v[k][i]) / sqrt(bc2) + cfg.eps;
                ref[k][i] -= lr / bc1 * m[k][i] / denom;
            }
        }
        for (int k = 0; k < 3; k++) {
            double got[6];
            ck_assert_int_eq(hg_store_read(o.s, hg_store_get(o.s, names[k]), got, HCGA_F64), 0);
            for (int i = 0; i < 6; i++)
                ck_assert_msg(fabs(got[i] - ref[k][i]) <= 1e-12 * (1 + fabs(ref[k][i])),
                              "step %d %s[%d]: %.15g vs %.15g", t, names[k], i, got[i], ref[k][i]);
        }
    }
    ck_assert_ptr_nonnull(hg_store_get(o.s, "p")->m.buf);
    ck_assert_ptr_nonnull(hg_store_get(o.s, "p")->v.buf);
    ck_assert_ptr_null(hg_store_get(o.s, "f")->m.buf); /* frozen: never touched */
    optim_teardown(&o);
}
END_TEST

START_TEST(sgd_matches_torch_formula)
{
    optim_fixture o;
    optim_setup(&o);
    const char *names[3] = {"p", "q", "f"};
    double ref[3][6], buf[3][6] = {{0}};
    uint64_t r = 8;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 6; i++) ref[k][i] = urand(&r);
        ck_assert_int_eq(hg_store_write(o.s, hg_store_get(o.s, names[k]), ref[k], HCGA_F64), 0);
    }
    hg_optim_cfg cfg = {.lr = 0.1, .weight_decay = 1e-3, .lr_bias = 0.05, .weight_decay_bias = 0,
                        .momentum = 0.9, .step = 0};
    for (int t = 1; t <= 3; t++) {
        ck_assert_msg(hg_exec_run(o.ex) == 0, "%s", hg_exec_error(o.ex));
        cfg.step = t;
        ck_assert_msg(hg_sgd_step(o.ex, &cfg) == 0, "%s", hg_exec_error(o.ex));
        for (int k = 0; k < 2; k++) {
            double lr = k == 1 ? cfg.lr_bias : cfg.lr, wd = k == 1 ? cfg.weight_decay_bias : cfg.weight_decay;
            for (int i = 0; i < 6; i++) {
                double gg = 2 * o.w[k][i] * ref[k][i] + wd * ref[k][i];
                buf[k][i] = t == 1 ? gg : cfg.momentum * buf[k][i] + gg;
                ref[k][i] -= lr * buf[k][i];
            }
        }
        for (int k = 0; k < 3; k++) {
            double got[6];
            ck_assert_int_eq(hg_store_read(o.s, hg_store_get(o.s, names[k]), got, HCGA_F64), 0);
            for (int i = 0; i < 6; i++)
                ck_assert_msg(fabs(got[i] - ref[k][i]) <= 1e-12 * (1 + fabs(ref[k][i])),
                              "step %d %s[%d]: %.15g vs %.15g", t, names[k], i, got[i], ref[k][i]);
        }
    }
    ck_assert_ptr_nonnull(hg_store_get(o.s, "p")->m.buf);
    ck_assert_ptr_null(hg_store_get(o.s, "p")->v.buf);
    optim_teardown(&o);
}
END_TEST

/* ---- store shared between a train and an eval graph ---------------------- */

START_TEST(store_shared_bn_running_stats)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F64);
    const int64_t C = 2, N = 3, HW = 2;
    /* train graph: BN in batch mode updates the running statistics */
    hg_graph *gt = hg_graph_new(HCGA_F64);
    hg_val x = hg_input(gt, "x", HCGA_F64, 4, SH(N, C, 1, HW));
    hg_val y = hg_batchnorm(gt, x, hg_param(gt, "bn.weight", 1, SH(C), HG_TRAINABLE),
                            hg_param(gt, "bn.bias", 1, SH(C), HG_TRAINABLE | HG_BIAS),
                            hg_param(gt, "bn.running_mean", 1, SH(C), HG_BUFFER),
                            hg_param(gt, "bn.running_var", 1, SH(C), HG_BUFFER), 1, 1e-5, 0.1);
    hg_mark_output(gt, y, "y");
    /* eval graph on the same store */
    hg_graph *ge = hg_graph_new(HCGA_F64);
    hg_val xe = hg_input(ge, "x", HCGA_F64, 4, SH(N, C, 1, HW));
    hg_val ye = hg_batchnorm(ge, xe, hg_param(ge, "bn.weight", 1, SH(C), HG_TRAINABLE),
                             hg_param(ge, "bn.bias", 1, SH(C), HG_TRAINABLE | HG_BIAS),
                             hg_param(ge, "bn.running_mean", 1, SH(C), HG_BUFFER),
                             hg_param(ge, "bn.running_var", 1, SH(C), HG_BUFFER), 0, 1e-5, 0.1);
    hg_mark_output(ge, ye, "y");
    char err[512];
    hg_exec *et = hg_exec_new(gt, s, err, sizeof err);
    ck_assert_msg(et, "%s", err);
    hg_exec *ee = hg_exec_new(ge, s, err, sizeof err);
    ck_assert_msg(ee, "%s", err);
    ck_assert_int_eq(hg_store_count(s), 4);
    double gam[2] = {1.5, 0.5}, bet[2] = {0.25, -1}, rv0[2] = {1, 2};
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "bn.weight"), gam, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "bn.bias"), bet, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "bn.running_var"), rv0, HCGA_F64), 0);
    double xs[12];
    uint64_t r = 5;
    for (int i = 0; i < 12; i++) xs[i] = urand(&r) * 2 + 0.5;
    ck_assert_int_eq(hg_exec_set_input(et, "x", xs, HCGA_F64), 0);
    ck_assert_int_eq(hg_exec_set_input(ee, "x", xs, HCGA_F64), 0);
    ck_assert_msg(hg_exec_run(et) == 0, "%s", hg_exec_error(et));
    double rm[2], rv[2], mean[2], var[2];
    ck_assert_int_eq(hg_store_read(s, hg_store_get(s, "bn.running_mean"), rm, HCGA_F64), 0);
    ck_assert_int_eq(hg_store_read(s, hg_store_get(s, "bn.running_var"), rv, HCGA_F64), 0);
    for (int c = 0; c < 2; c++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < HW; k++) sum += xs[(n * C + c) * HW + k];
        mean[c] = sum / (N * HW);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < HW; k++) sq += pow(xs[(n * C + c) * HW + k] - mean[c], 2);
        var[c] = sq / (N * HW - 1); /* unbiased for the running estimate */
        ck_assert_double_eq_tol(rm[c], 0.1 * mean[c], 1e-12);
        ck_assert_double_eq_tol(rv[c], 0.9 * rv0[c] + 0.1 * var[c], 1e-12);
    }
    /* the eval graph sees the updated statistics */
    ck_assert_msg(hg_exec_run(ee) == 0, "%s", hg_exec_error(ee));
    double out[12];
    ck_assert_int_eq(hg_exec_read(ee, ye, out, HCGA_F64), 0);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < HW; k++) {
                int i = (n * C + c) * HW + k;
                double e = gam[c] * (xs[i] - rm[c]) / sqrt(rv[c] + 1e-5) + bet[c];
                ck_assert_double_eq_tol(out[i], e, 1e-12);
            }
    /* a param of another shape under an existing name is refused */
    ck_assert_ptr_null(hg_store_add(s, "bn.weight", 1, SH(3), HG_TRAINABLE, err, sizeof err));
    ck_assert_msg(strstr(err, "bn.weight") != NULL, "%s", err);
    hg_exec_free(et);
    hg_exec_free(ee);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(gt);
    hg_graph_free(ge);
}
END_TEST

/* F32 graph fed and read in F64 and F32; transient values are not readable */
START_TEST(exec_dtype_conversion_and_errors)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 1, SH(4));
    hg_val t = hg_relu(g, x);
    hg_val y = hg_scale(g, t, 0.5);
    hg_mark_output(g, y, "y");
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    double xd[4] = {1.5, -2, 3.25, 0};
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xd, HCGA_F64), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    double yd[4];
    float yf[4];
    ck_assert_int_eq(hg_exec_read(ex, y, yd, HCGA_F64), 0);
    ck_assert_int_eq(hg_exec_read(ex, y, yf, HCGA_F32), 0);
    const double e[4] = {0.75, 0, 1.625, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(yd[i], e[i]);
        ck_assert_float_eq(yf[i], (float)e[i]);
    }
    ck_assert_int_ne(hg_exec_read(ex, t, yd, HCGA_F64), 0);
    ck_assert_msg(strstr(hg_exec_error(ex), "hg_mark_output") != NULL, "%s", hg_exec_error(ex));
    ck_assert_int_ne(hg_exec_set_input(ex, "nope", xd, HCGA_F64), 0);
    ck_assert_msg(strstr(hg_exec_error(ex), "'nope'") != NULL, "%s", hg_exec_error(ex));
    ck_assert_int_ne(hg_exec_set_input(ex, "x", xd, HCGA_I64), 0);
    hg_exec_free(ex);
    /* a store of another dtype is refused */
    hg_store *s64 = hg_store_new(be, HCGA_F64);
    ck_assert_ptr_null(hg_exec_new(g, s64, err, sizeof err));
    ck_assert_msg(strstr(err, "dtype") != NULL, "%s", err);
    hg_store_free(s64);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/* a backend failure names the node, its op and the value */
START_TEST(exec_error_names_node)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "logits", HCGA_F32, 2, SH(2, 3));
    hg_val lab = hg_input(g, "labels", HCGA_I64, 1, SH(2));
    hg_val r = hg_relu(g, x);
    hg_val l = hg_ce_ls(g, r, lab, 0);
    hg_mark_output(g, l, "loss.ce");
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    int64_t bad[2] = {1, 7}; /* label out of range */
    ck_assert_int_eq(hg_exec_set_input(ex, "labels", bad, HCGA_I64), 0);
    ck_assert_int_ne(hg_exec_run(ex), 0);
    const char *m = hg_exec_error(ex);
    ck_assert_msg(strncmp(m, "node 1 (ce_ls_fwd producing 'loss.ce'): ", 40) == 0, "%s", m);
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

static Suite *graph_suite(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = hcga_test_tcase(s, "autodiff");
    tcase_set_timeout(tc, 120);
    HCGA_ADD_TESTS(tc, grad_conv_bn_relu, grad_bn_infer, grad_broadcast, grad_softmax_sigmoid_threshold,
                   grad_resize_upsample, grad_concat_split, grad_gemm_transposes, grad_reshape_reduce,
                   grad_losses, grad_accumulation, grad_accumulation_exact, grad_only_on_paths);

    tc = hcga_test_tcase(s, "build");
    tcase_add_test(tc, node_args_introspection);
    tcase_add_test_raise_signal(tc, shape_error_conv, SIGABRT);
    tcase_add_test_raise_signal(tc, shape_error_broadcast, SIGABRT);
    tcase_add_test_raise_signal(tc, shape_error_split, SIGABRT);
    tcase_add_test_raise_signal(tc, shape_error_matmul, SIGABRT);

    tc = hcga_test_tcase(s, "exec");
    tcase_set_timeout(tc, 60);
    HCGA_ADD_TESTS(tc, adam_matches_torch_formula, sgd_matches_torch_formula, store_shared_bn_running_stats,
                   exec_dtype_conversion_and_errors, exec_error_names_node);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 0);
    return hcga_test_run(graph_suite());
}
