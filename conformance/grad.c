/*
 * grad.c - grad mode on the CPU backend: central finite differences in F64
 * of every forward op that has a backward, against the backward op(s).
 *
 * The pairing table below is the one place that says which backward ops
 * differentiate which forward op, through which slots.  For a forward case
 * the check is:
 *   L(inputs) = sum over the differentiable outputs k of <dy_k, y_k>
 *   analytic:  the recipe runs the backward op(s) with dy_k
 *   numeric:   dL/dx_i ~ (L(x_i + h) - L(x_i - h)) / (2h) on a deterministic
 *              sample of the elements of every differentiable input.
 */
#include "conf_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXTRA 8

typedef struct grad_ctx {
    hcga_be *be;
    conf_case cc;                          /* f64 */
    conf_dev dev;                          /* forward op on the backend */
    conf_dev_tensor dy[HCGA_MAX_OP_OUT];   /* upstream gradients (y-shaped, contiguous) */
    double *dyh[HCGA_MAX_OP_OUT];          /* their values (view order) */
    conf_dev_tensor gt[HCGA_MAX_OP_IN];    /* analytic gradients of the inputs */
    double scale[HCGA_MAX_OP_IN];          /* gradient = scale * gt */
    conf_dev_tensor extra[MAX_EXTRA];
    int nextra;
    char err[1024];
} grad_ctx;

typedef int (*grad_recipe)(grad_ctx *g);

typedef struct grad_pair {
    int fwd;
    const char *bwd;    /* the backward op(s), for the report */
    unsigned diff_in;   /* differentiable input slots (bit k); ALL_SLOTS: every input */
    unsigned diff_out;  /* outputs that get an upstream gradient */
    double h;           /* finite-difference step */
    int kinks;          /* piecewise: skip elements within h of a kink (see below) */
    grad_recipe recipe;
} grad_pair;

#define ALL_SLOTS 0xFFu

static int set_err(grad_ctx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_err(grad_ctx *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- recipe helpers ---------------------------------------------------- */

static const hcga_tensor *X(grad_ctx *g, int k) { return &g->dev.in[k].t; }
static const hcga_tensor *Y(grad_ctx *g, int k) { return &g->dev.out[k].t; }
static const hcga_tensor *DY(grad_ctx *g, int k) { return &g->dy[k].t; }

/* The analytic gradient of input k (x's shape, contiguous f64). */
static const hcga_tensor *G(grad_ctx *g, int k)
{
    if (!g->gt[k].present) {
        const hcga_shape_tensor *s = &g->cc.in[k].s;
        if (conf_tmp_alloc(g->be, HCGA_F64, s->ndim, s->shape, &g->gt[k], g->err, sizeof g->err))
            return NULL;
    }
    return &g->gt[k].t;
}

static const hcga_tensor *tmp(grad_ctx *g, const hcga_shape_tensor *s, const double *init)
{
    if (g->nextra == MAX_EXTRA) return NULL;
    conf_dev_tensor *t = &g->extra[g->nextra];
    if (conf_tmp_alloc(g->be, HCGA_F64, s->ndim, s->shape, t, g->err, sizeof g->err)) return NULL;
    g->nextra++;
    if (init && conf_tmp_write(g->be, t, init, g->err, sizeof g->err)) return NULL;
    return &t->t;
}

static int run(grad_ctx *g, int op, const hcga_op_params *p, int nin, const hcga_tensor *const *in,
               int nout, const hcga_tensor *const *out)
{
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout, .p = *p};
    for (int i = 0; i < nin; i++) a.in[i] = in[i];
    for (int i = 0; i < nout; i++) {
        if (!out[i]) return set_err(g, "%s", g->err[0] ? g->err : "out of memory");
        a.out[i] = out[i];
    }
    hcga_status st = hcga_be_run(g->be, &a);
    if (st == HCGA_OK) st = hcga_be_sync(g->be);
    if (st != HCGA_OK) return set_err(g, "%s", hcga_be_error(g->be));
    return 0;
}

#define RUN(op, p, ins, outs) \
    run(g, op, p, (int)(sizeof ins / sizeof ins[0]), ins, (int)(sizeof outs / sizeof outs[0]), outs)

static const hcga_op_params *P(grad_ctx *g) { return &g->cc.c.p; }

/* ---- recipes ----------------------------------------------------------- */

static int r_conv(grad_ctx *g)
{
    const hcga_tensor *in1[] = {DY(g, 0), X(g, 1)}, *out1[] = {G(g, 0)};
    if (RUN(HCGA_OP_CONV2D_BWD_DATA, P(g), in1, out1)) return -1;
    const hcga_tensor *in2[] = {X(g, 0), DY(g, 0)};
    if (g->cc.num_in > 2 && g->cc.in[2].s.present) {
        const hcga_tensor *out2[] = {G(g, 1), G(g, 2)};
        return RUN(HCGA_OP_CONV2D_BWD_FILTER, P(g), in2, out2);
    }
    const hcga_tensor *out2[] = {G(g, 1)};
    return RUN(HCGA_OP_CONV2D_BWD_FILTER, P(g), in2, out2);
}

static int r_bn(grad_ctx *g)
{
    const hcga_tensor *in[] = {X(g, 0), DY(g, 0), X(g, 1), Y(g, 1), Y(g, 2)};
    const hcga_tensor *out[] = {G(g, 0), G(g, 1), G(g, 2)};
    return RUN(HCGA_OP_BN_BWD, P(g), in, out);
}

/* bn_fwd_from_stats with its sums held fixed (as an input, which they are):
 * dL/dx = gamma*invstd*dy is bn_bwd_from_stats with sum_dy = sum_dy_xhat = 0;
 * dL/dgamma, dL/dbeta are bn_bwd's dgamma, dbeta (its dx, which accounts for
 * statistics that depend on x, is not this op's gradient). */
static int r_bn_from_stats(grad_ctx *g)
{
    const hcga_shape_tensor *cs = &g->cc.in[HCGA_BNF_SUM].s;
    double *zeros = calloc((size_t)(cs->shape[0] > 0 ? cs->shape[0] : 1), sizeof *zeros);
    if (!zeros) return set_err(g, "out of memory");
    const hcga_tensor *z = tmp(g, cs, zeros);
    free(zeros);
    if (!z) return set_err(g, "%s", g->err[0] ? g->err : "too many temporaries");
    const hcga_tensor *in1[] = {X(g, 0), DY(g, 0), X(g, 1), Y(g, 1), Y(g, 2), z, z};
    const hcga_tensor *out1[] = {G(g, 0)};
    if (RUN(HCGA_OP_BN_BWD_FROM_STATS, P(g), in1, out1)) return -1;
    if (hcga_tensor_numel(X(g, 0)) == 0) { /* an empty part: bn_bwd refuses it */
        hcga_op_params zero;
        memset(&zero, 0, sizeof zero);
        const hcga_tensor *outg[] = {G(g, 1)}, *outb[] = {G(g, 2)};
        return run(g, HCGA_OP_FILL, &zero, 0, NULL, 1, outg) ||
               run(g, HCGA_OP_FILL, &zero, 0, NULL, 1, outb);
    }
    const hcga_tensor *in2[] = {X(g, 0), DY(g, 0), X(g, 1), Y(g, 1), Y(g, 2)};
    const hcga_tensor *out2[] = {tmp(g, &g->cc.in[0].s, NULL), G(g, 1), G(g, 2)};
    return RUN(HCGA_OP_BN_BWD, P(g), in2, out2);
}

static int r_act_y(grad_ctx *g, int op) /* backward from y: relu, sigmoid, softmax */
{
    const hcga_tensor *in[] = {Y(g, 0), DY(g, 0)}, *out[] = {G(g, 0)};
    return RUN(op, P(g), in, out);
}
static int r_relu(grad_ctx *g) { return r_act_y(g, HCGA_OP_RELU_BWD); }
static int r_sigmoid(grad_ctx *g) { return r_act_y(g, HCGA_OP_SIGMOID_BWD); }
static int r_softmax(grad_ctx *g) { return r_act_y(g, HCGA_OP_SOFTMAX_BWD); }

static int r_x_dy(grad_ctx *g, int op) /* backward from (x, dy): threshold, reduce, losses */
{
    const hcga_tensor *in[] = {X(g, 0), DY(g, 0)}, *out[] = {G(g, 0)};
    return RUN(op, P(g), in, out);
}
static int r_thresh(grad_ctx *g) { return r_x_dy(g, HCGA_OP_THRESH_BWD); }
static int r_reduce(grad_ctx *g) { return r_x_dy(g, HCGA_OP_REDUCE_BWD); }
static int r_shift(grad_ctx *g) { return r_x_dy(g, HCGA_OP_SHIFT_L1_BWD); }

static int r_dy_only(grad_ctx *g, int op) /* upsample, resize, gap, sum-to, copy */
{
    const hcga_tensor *in[] = {DY(g, 0)}, *out[] = {G(g, 0)};
    return RUN(op, P(g), in, out);
}
static int r_upsample(grad_ctx *g) { return r_dy_only(g, HCGA_OP_UPSAMPLE_NEAREST_BWD); }
static int r_resize(grad_ctx *g) { return r_dy_only(g, HCGA_OP_RESIZE_BILINEAR_BWD); }
static int r_gap(grad_ctx *g) { return r_dy_only(g, HCGA_OP_GAP_BWD); }
static int r_copy(grad_ctx *g) { return r_dy_only(g, HCGA_OP_COPY); }

static int r_ce(grad_ctx *g, int op)
{
    const hcga_tensor *in[] = {X(g, 0), X(g, 1), DY(g, 0)}, *out[] = {G(g, 0)};
    return RUN(op, P(g), in, out);
}
static int r_ce_ls(grad_ctx *g) { return r_ce(g, HCGA_OP_CE_LS_BWD); }
static int r_pixel_ce(grad_ctx *g) { return r_ce(g, HCGA_OP_PIXEL_CE_BWD); }

static int r_triplet(grad_ctx *g)
{
    const hcga_tensor *in[] = {X(g, 0), Y(g, 1), DY(g, 0)}, *out[] = {G(g, 0)};
    return RUN(HCGA_OP_TRIPLET_BWD, P(g), in, out);
}

/* y = alpha*a + beta*b (broadcast): da = alpha*sum_to(dy), db = beta*sum_to(dy) */
static int r_add(grad_ctx *g)
{
    hcga_op_params none;
    memset(&none, 0, sizeof none);
    for (int k = 0; k < 2; k++) {
        const hcga_tensor *in[] = {DY(g, 0)}, *out[] = {G(g, k)};
        if (RUN(HCGA_OP_SUM_TO, &none, in, out)) return -1;
    }
    g->scale[0] = P(g)->scalar.a;
    g->scale[1] = P(g)->scalar.b;
    return 0;
}

/* y = alpha*a*b: da = sum_to(alpha*dy*b), db = sum_to(alpha*dy*a) */
static int r_mul(grad_ctx *g)
{
    hcga_op_params none;
    memset(&none, 0, sizeof none);
    for (int k = 0; k < 2; k++) {
        const hcga_tensor *t = tmp(g, &g->cc.out[0].s, NULL);
        const hcga_tensor *in1[] = {DY(g, 0), X(g, 1 - k)}, *out1[] = {t};
        if (RUN(HCGA_OP_MUL, P(g), in1, out1)) return -1;
        const hcga_tensor *in2[] = {t}, *out2[] = {G(g, k)};
        if (RUN(HCGA_OP_SUM_TO, &none, in2, out2)) return -1;
    }
    return 0;
}

/* y = sum_to(x): dx = broadcast(dy) = 1*dy + 0*zeros[x] */
static int r_sum_to(grad_ctx *g)
{
    double *z = calloc((size_t)(g->cc.in[0].numel ? g->cc.in[0].numel : 1), sizeof *z);
    if (!z) return set_err(g, "out of memory");
    const hcga_tensor *zt = tmp(g, &g->cc.in[0].s, z);
    free(z);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.scalar.a = 1.0;
    p.scalar.b = 0.0;
    const hcga_tensor *in[] = {DY(g, 0), zt}, *out[] = {G(g, 0)};
    return RUN(HCGA_OP_ADD, &p, in, out);
}

static int r_concat(grad_ctx *g)
{
    hcga_op_params none;
    memset(&none, 0, sizeof none);
    const hcga_tensor *in[] = {DY(g, 0)};
    const hcga_tensor *out[HCGA_MAX_OP_OUT];
    int n = g->cc.num_in;
    for (int k = 0; k < n; k++) out[k] = G(g, k);
    return run(g, HCGA_OP_SPLIT, &none, 1, in, n, out);
}

static int r_split(grad_ctx *g)
{
    hcga_op_params none;
    memset(&none, 0, sizeof none);
    const hcga_tensor *in[HCGA_MAX_OP_IN];
    int n = g->cc.num_out;
    for (int k = 0; k < n; k++) in[k] = DY(g, k);
    const hcga_tensor *out[] = {G(g, 0)};
    return run(g, HCGA_OP_CONCAT, &none, n, in, 1, out);
}

/* y = alpha*op(a)*op(b) + beta*c with A = op(a), B = op(b):
 *   dA = alpha*dy*B^T, dB = alpha*A^T*dy, dc = beta*dy. */
static int r_gemm(grad_ctx *g)
{
    const hcga_gemm_params *q = &P(g)->gemm;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.gemm.alpha = q->alpha;
    p.gemm.beta = 0.0;
    const hcga_tensor *dy = DY(g, 0), *a = X(g, 0), *b = X(g, 1);
    /* da */
    {
        const hcga_tensor *l, *r;
        if (!q->trans_a) { l = dy; r = b; p.gemm.trans_a = 0; p.gemm.trans_b = !q->trans_b; }
        else { l = b; r = dy; p.gemm.trans_a = q->trans_b; p.gemm.trans_b = 1; }
        const hcga_tensor *in[] = {l, r}, *out[] = {G(g, 0)};
        if (RUN(HCGA_OP_GEMM, &p, in, out)) return -1;
    }
    /* db */
    {
        const hcga_tensor *l, *r;
        if (!q->trans_b) { l = a; r = dy; p.gemm.trans_a = !q->trans_a; p.gemm.trans_b = 0; }
        else { l = dy; r = a; p.gemm.trans_a = 1; p.gemm.trans_b = q->trans_a; }
        const hcga_tensor *in[] = {l, r}, *out[] = {G(g, 1)};
        if (RUN(HCGA_OP_GEMM, &p, in, out)) return -1;
    }
    if (g->cc.num_in > 2 && g->cc.in[2].s.present) {
        hcga_op_params none;
        memset(&none, 0, sizeof none);
        const hcga_tensor *in[] = {dy}, *out[] = {G(g, 2)};
        if (RUN(HCGA_OP_COPY, &none, in, out)) return -1;
        g->scale[2] = q->beta;
    }
    return 0;
}

/* ---- the pairing table ------------------------------------------------- */

static const grad_pair PAIRS[] = {
    {HCGA_OP_CONV2D_FWD, "conv2d_bwd_data+conv2d_bwd_filter", 0x7, 0x1, 1e-5, 0, r_conv},
    {HCGA_OP_BN_FWD_TRAIN, "bn_bwd", 0x7, 0x1, 1e-5, 0, r_bn},
    {HCGA_OP_BN_FWD_FROM_STATS, "bn_bwd_from_stats+bn_bwd", 0x7, 0x1, 1e-5, 0, r_bn_from_stats},
    {HCGA_OP_RELU_FWD, "relu_bwd", 0x1, 0x1, 1e-4, 1, r_relu},
    {HCGA_OP_SIGMOID_FWD, "sigmoid_bwd", 0x1, 0x1, 1e-5, 0, r_sigmoid},
    {HCGA_OP_THRESH_FWD, "thresh_bwd", 0x1, 0x1, 1e-4, 1, r_thresh},
    {HCGA_OP_ADD, "sum_to", 0x3, 0x1, 1e-5, 0, r_add},
    {HCGA_OP_MUL, "mul+sum_to", 0x3, 0x1, 1e-5, 0, r_mul},
    {HCGA_OP_SUM_TO, "add (broadcast)", 0x1, 0x1, 1e-5, 0, r_sum_to},
    {HCGA_OP_COPY, "copy", 0x1, 0x1, 1e-5, 0, r_copy},
    {HCGA_OP_SOFTMAX_FWD, "softmax_bwd", 0x1, 0x1, 1e-5, 0, r_softmax},
    {HCGA_OP_CONCAT, "split", ALL_SLOTS, 0x1, 1e-5, 0, r_concat},
    {HCGA_OP_SPLIT, "concat", 0x1, ALL_SLOTS, 1e-5, 0, r_split},
    {HCGA_OP_UPSAMPLE_NEAREST_FWD, "upsample_nearest_bwd", 0x1, 0x1, 1e-5, 0, r_upsample},
    {HCGA_OP_RESIZE_BILINEAR_FWD, "resize_bilinear_bwd", 0x1, 0x1, 1e-5, 0, r_resize},
    {HCGA_OP_GAP_FWD, "gap_bwd", 0x1, 0x1, 1e-5, 0, r_gap},
    {HCGA_OP_GEMM, "gemm+copy", 0x7, 0x1, 1e-5, 0, r_gemm},
    {HCGA_OP_REDUCE, "reduce_bwd", 0x1, 0x1, 1e-4, 1, r_reduce},
    {HCGA_OP_CE_LS_FWD, "ce_ls_bwd", 0x1, 0x1, 1e-5, 0, r_ce_ls},
    {HCGA_OP_PIXEL_CE_FWD, "pixel_ce_bwd", 0x1, 0x1, 1e-5, 0, r_pixel_ce},
    {HCGA_OP_TRIPLET_FWD, "triplet_bwd", 0x1, 0x1, 1e-4, 1, r_triplet},
    {HCGA_OP_SHIFT_L1_FWD, "shift_l1_bwd", 0x1, 0x1, 1e-4, 1, r_shift},
};
#define NPAIRS ((int)(sizeof PAIRS / sizeof PAIRS[0]))

static const grad_pair *find_pair(int op)
{
    for (int i = 0; i < NPAIRS; i++)
        if (PAIRS[i].fwd == op) return &PAIRS[i];
    return NULL;
}

int conf_grad_is_forward(int op) { return find_pair(op) != NULL; }

/* The backward ops that grad mode exercises on a non-CPU backend: the
 * catalogue's `bwd` column. */
int conf_grad_is_backward(int op)
{
    const hcga_op_info *info = hcga_op_get_info(op);
    return info && info->bwd;
}

const char *conf_grad_bwd_names(int op)
{
    const grad_pair *p = find_pair(op);
    return p ? p->bwd : "";
}

/* ---- the check --------------------------------------------------------- */

/* Finite-difference tolerance (README): F64 central differences with the
 * steps above are accurate to ~1e-9 relative on these smooth inputs. */
static const double GRAD_NMSE = 1e-8;
static const double GRAD_MAX = 1e-4;

static int read_view(grad_ctx *g, int k, double *view)
{
    conf_dev_tensor *dt = &g->dev.out[k];
    const conf_tensor *t = &g->cc.out[k];
    double *ext = malloc((size_t)(t->extent ? t->extent : 1) * sizeof *ext);
    int64_t *offs = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *offs);
    if (!ext || !offs) {
        free(ext);
        free(offs);
        return set_err(g, "out of memory");
    }
    hcga_status st = hcga_be_read(g->be, dt->buf, CONF_GUARD, ext, (uint64_t)t->extent * 8);
    if (st == HCGA_OK) {
        conf_view_offsets(&t->s, offs);
        for (int64_t i = 0; i < t->numel; i++) view[i] = ext[offs[i]];
    }
    free(ext);
    free(offs);
    if (st != HCGA_OK) return set_err(g, "%s", hcga_be_error(g->be));
    return 0;
}

static int eval_L(grad_ctx *g, const grad_pair *gp, double *L)
{
    if (conf_dev_run(&g->dev) != HCGA_OK) return set_err(g, "%s", hcga_be_error(g->be));
    long double acc = 0;
    for (int k = 0; k < g->cc.num_out; k++) {
        if (!((gp->diff_out >> k) & 1) || !g->cc.out[k].s.present) continue;
        int64_t n = g->cc.out[k].numel;
        double *y = malloc((size_t)(n ? n : 1) * sizeof *y);
        if (!y) return set_err(g, "out of memory");
        if (read_view(g, k, y)) {
            free(y);
            return -1;
        }
        for (int64_t i = 0; i < n; i++) acc += (long double)g->dyh[k][i] * y[i];
        free(y);
    }
    *L = (double)acc;
    return 0;
}

static int set_elem(grad_ctx *g, int k, int64_t off, double v)
{
    g->cc.in[k].host[off] = v;
    hcga_status st = hcga_be_write(g->be, g->dev.in[k].buf, CONF_GUARD + (uint64_t)off * 8, &v, 8);
    return st == HCGA_OK ? 0 : set_err(g, "%s", hcga_be_error(g->be));
}

static void grad_free(grad_ctx *g)
{
    for (int k = 0; k < HCGA_MAX_OP_OUT; k++) {
        conf_tmp_free(g->be, &g->dy[k]);
        free(g->dyh[k]);
    }
    for (int k = 0; k < HCGA_MAX_OP_IN; k++) conf_tmp_free(g->be, &g->gt[k]);
    for (int i = 0; i < g->nextra; i++) conf_tmp_free(g->be, &g->extra[i]);
    conf_dev_free(&g->dev);
    conf_case_free(&g->cc);
}

int conf_grad_case(conf_run *r, const conf_loaded_case *lc)
{
    FILE *out = r->out;
    const grad_pair *gp = find_pair(lc->c.op);
    char line[1024], msg[2048] = "";
    hcga_shapefile_format_case(line, sizeof line, &lc->c);
    const char *base = strrchr(lc->file, '/') ? strrchr(lc->file, '/') + 1 : lc->file;
    char tag[256];
    snprintf(tag, sizeof tag, "%s#%d f64", base, lc->index);
    if (!gp) return -1;

    grad_ctx *g = calloc(1, sizeof *g);
    if (!g) {
        fprintf(out, "FAIL  %-22s %s\n  out of memory\n", tag, line);
        return 0;
    }
    g->be = r->dut;
    for (int k = 0; k < HCGA_MAX_OP_IN; k++) g->scale[k] = 1.0;
    hcga_shape_case c = lc->c;
    c.alias_c_y = 0; /* c is an input of its own here */
    uint64_t seed = conf_case_seed(r->o->seed, lc->index);
    conf_rng rng = {seed ^ 0x6A09E667F3BCC909ull};
    int pass = 1;
    double t0 = conf_now_ms(), worst_nmse = 0, worst_max = 0;
    size_t ml = 0;

    if (conf_case_make(&g->cc, &c, HCGA_F64, seed, CONF_GEN_GRAD, g->err, sizeof g->err) ||
        conf_dev_setup(&g->dev, g->be, &g->cc, g->err, sizeof g->err)) {
        pass = 0;
        goto done;
    }
    if (conf_dev_run(&g->dev) != HCGA_OK) {
        set_err(g, "forward: %s", hcga_be_error(g->be));
        pass = 0;
        goto done;
    }
    /* upstream gradients */
    for (int k = 0; k < g->cc.num_out; k++) {
        const conf_tensor *t = &g->cc.out[k];
        if (!((gp->diff_out >> k) & 1) || !t->s.present) continue;
        g->dyh[k] = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(double));
        if (!g->dyh[k]) {
            set_err(g, "out of memory");
            pass = 0;
            goto done;
        }
        for (int64_t i = 0; i < t->numel; i++) g->dyh[k][i] = conf_rng_range(&rng, -1.0, 1.0);
        if (conf_tmp_alloc(g->be, HCGA_F64, t->s.ndim, t->s.shape, &g->dy[k], g->err,
                           sizeof g->err) ||
            conf_tmp_write(g->be, &g->dy[k], g->dyh[k], g->err, sizeof g->err)) {
            pass = 0;
            goto done;
        }
    }
    /* analytic */
    if (gp->recipe(g)) {
        char e2[sizeof g->err];
        memcpy(e2, g->err, sizeof e2);
        snprintf(g->err, sizeof g->err, "backward (%.60s): %.900s", gp->bwd, e2);
        pass = 0;
        goto done;
    }
    /* numeric, per differentiable input */
    double L0;
    if (gp->kinks && eval_L(g, gp, &L0)) {
        pass = 0;
        goto done;
    }
    /* Elements per input: up to 32 (12 with --quick), fewer when one
     * evaluation moves many elements, so a case costs at most ~1e8 element
     * visits; never fewer than 4. */
    int64_t cost = 0;
    for (int k = 0; k < g->cc.num_in; k++) cost += g->cc.in[k].extent;
    for (int k = 0; k < g->cc.num_out; k++) cost += g->cc.out[k].extent;
    int64_t per_input = r->o->quick ? 12 : 32, nin = 0;
    for (int k = 0; k < g->cc.num_in; k++) nin += (gp->diff_in >> k) & 1;
    int64_t afford = (int64_t)(1e8 / (2.0 * (double)(cost ? cost : 1) * (double)(nin ? nin : 1)));
    if (afford < per_input) per_input = afford < 4 ? 4 : afford;
    for (int k = 0; k < g->cc.num_in; k++) {
        conf_tensor *t = &g->cc.in[k];
        if (!((gp->diff_in >> k) & 1) || !t->s.present || !conf_is_float(t->s.dtype)) continue;
        int64_t n = t->numel;
        if (n == 0) continue;
        if (t->extent < n) {
            /* a view that repeats elements (stride 0): one stored element
             * feeds several view elements, so per-element differences do not
             * apply */
            ml += (size_t)snprintf(msg + ml, ml < sizeof msg ? sizeof msg - ml : 0,
                                   " | d in%d not checked (view repeats elements)", k);
            continue;
        }
        double *ana = malloc((size_t)n * sizeof *ana);
        int64_t *offs = malloc((size_t)n * sizeof *offs);
        int64_t S = n < per_input ? n : per_input;
        double *gn = malloc((size_t)S * sizeof *gn), *ga = malloc((size_t)S * sizeof *ga);
        int64_t *idx = malloc((size_t)S * sizeof *idx);
        if (!ana || !offs || !gn || !ga || !idx ||
            conf_tmp_read(g->be, &g->gt[k], ana, g->err, sizeof g->err)) {
            if (!g->err[0]) set_err(g, "out of memory");
            free(ana); free(offs); free(gn); free(ga); free(idx);
            pass = 0;
            goto done;
        }
        conf_view_offsets(&t->s, offs);
        double gscale = 0;
        for (int64_t e = 0; e < n; e++) gscale = fmax(gscale, fabs(g->scale[k] * ana[e]));
        /* deterministic sample: elements of S equal strata, in random order
         * inside each stratum */
        int bad = 0;
        int64_t used = 0, kinked = 0;
        for (int64_t j = 0; j < S && !bad; j++) {
            int64_t lo = j * n / S, hi = (j + 1) * n / S, span = hi - lo;
            int64_t start = S == n ? 0 : conf_rng_int(&rng, span);
            for (int64_t tries = 0; tries < (span < 4 ? span : 4); tries++) {
                int64_t e = lo + (start + tries) % span, off = offs[e];
                double v = t->host[off], h = gp->h, Lp = 0, Lm = 0;
                if (set_elem(g, k, off, v + h) || eval_L(g, gp, &Lp) ||
                    set_elem(g, k, off, v - h) || eval_L(g, gp, &Lm) || set_elem(g, k, off, v)) {
                    bad = 1;
                    break;
                }
                double cd = (Lp - Lm) / (2.0 * h);
                if (gp->kinks) {
                    /* A kink within h makes the one-sided slopes differ by
                     * about the jump J of the slope, and the central
                     * difference errs by up to J/2.  When that could reach a
                     * tenth of the tolerance, retry with h/10: a smooth
                     * function's slopes then differ 10x less (h*f''), and a
                     * kink between h/10 and h no longer matters; if the
                     * slopes still disagree, a kink sits within h/10: skip. */
                    double sp = (Lp - L0) / h, sm = (L0 - Lm) / h, jump = fabs(sp - sm);
                    if (jump > 1e-3 * fmax(fabs(sp), fabs(sm)) && jump > 2e-5 * gscale &&
                        jump > 1e-9 * (1.0 + fabs(L0))) {
                        double h2 = h / 10;
                        if (set_elem(g, k, off, v + h2) || eval_L(g, gp, &Lp) ||
                            set_elem(g, k, off, v - h2) || eval_L(g, gp, &Lm) ||
                            set_elem(g, k, off, v)) {
                            bad = 1;
                            break;
                        }
                        double sp2 = (Lp - L0) / h2, sm2 = (L0 - Lm) / h2;
                        if (fabs(sp2 - sm2) > jump / 5) {
                            kinked++;
                            continue;
                        }
                        cd = (Lp - Lm) / (2.0 * h2);
                    }
                }
                idx[used] = e;
                gn[used] = cd;
                ga[used] = g->scale[k] * ana[e];
                used++;
                break;
            }
        }
        if (bad) {
            free(ana); free(offs); free(gn); free(ga); free(idx);
            pass = 0;
            goto done;
        }
        S = used;
        if (S == 0) {
            set_err(g, "d in%d: every sampled element sits at a kink of the forward op", k);
            free(ana); free(offs); free(gn); free(ga); free(idx);
            pass = 0;
            goto done;
        }
        if (kinked)
            ml += (size_t)snprintf(msg + ml, ml < sizeof msg ? sizeof msg - ml : 0,
                                   " | d in%d %lld element(s) near a kink skipped", k,
                                   (long long)kinked);
        conf_err e;
        conf_compare(ga, gn, S, 0.0, &e);
        int ok = e.nan_count == 0 && e.nmse <= GRAD_NMSE && e.maxerr <= GRAD_MAX;
        if (e.nmse > worst_nmse) worst_nmse = e.nmse;
        if (e.maxerr > worst_max) worst_max = e.maxerr;
        ml += (size_t)snprintf(msg + ml, ml < sizeof msg ? sizeof msg - ml : 0,
                               " | d in%d %lld/%lld nmse %.1e%s%.0e max %.1e%s%.0e", k,
                               (long long)S, (long long)n, e.nmse, e.nmse <= GRAD_NMSE ? "<=" : ">",
                               GRAD_NMSE, e.maxerr, e.maxerr <= GRAD_MAX ? "<=" : ">", GRAD_MAX);
        if (!ok) {
            /* show the worst element */
            int64_t w = 0;
            for (int64_t j = 1; j < S; j++)
                if (fabs(ga[j] - gn[j]) > fabs(ga[w] - gn[w])) w = j;
            char ix[96];
            conf_fmt_index(&t->s, idx[w], ix, sizeof ix);
            set_err(g, "d in%d%s: analytic %.9g vs numeric %.9g (worst of %lld sampled)", k, ix,
                    ga[w], gn[w], (long long)S);
            pass = 0;
        }
        free(ana); free(offs); free(gn); free(ga); free(idx);
    }

done:;
    double ms = conf_now_ms() - t0;
    conf_op_stats *s = &r->stats[lc->c.op];
    if (worst_nmse > s->worst_nmse) s->worst_nmse = worst_nmse;
    if (worst_max > s->worst_maxerr) s->worst_maxerr = worst_max;
    double ratio = fmax(worst_nmse / GRAD_NMSE, worst_max / GRAD_MAX);
    if (ratio > s->worst_ratio || !s->worst_case[0]) {
        s->worst_ratio = fmax(ratio, s->worst_ratio);
        snprintf(s->worst_case, sizeof s->worst_case, "%.60s", tag);
    }
    s->total_ms += ms;
    fprintf(out, "%s  %-22s %s [vs %s]%s | %.1f ms\n", pass ? "PASS" : "FAIL", tag, line, gp->bwd,
            msg, ms);
    if (!pass) {
        fprintf(out, "  %s\n", g->err[0] ? g->err : "failed");
        conf_print_repro(r, lc, HCGA_F64, CONF_MODE_GRAD);
    }
    grad_free(g);
    free(g);
    return pass;
}
