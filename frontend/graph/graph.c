/*
 * graph.c - building hcga graphs (shape inference for every builder) and
 * reverse-mode automatic differentiation.
 *
 * Every builder appends one or more nodes, each one backend op of
 * hcga_plugin.h.  A value is produced by exactly one node (or is an input or
 * a parameter) and never modified afterwards, with one exception: the
 * running statistics of a training-mode batch norm are parameters that
 * BN_FWD_TRAIN updates in place (in/out slots).
 *
 * Node descriptors (hg_node.tin / tout) may view a value with another shape
 * of the same number of elements: a lower-rank operand of ADD/MUL is padded
 * with leading 1s (numpy alignment), SUM_TO's output is viewed with the
 * rank of its input, and the COPY of hg_reshape views its input with the
 * output's shape.
 *
 * Mixed precision: values may also be BF16/F16 (ABI 1.1), produced by CAST
 * nodes.  With autocast on (hg_graph_set_autocast) hg_conv2d and the GEMM
 * builders are the one place where casts are inserted: F32 operands in,
 * CAST to half, the op in half, CAST of the half result back.  The
 * convolution and GEMM backward rules then see half values (dy, x, w) and
 * produce half gradients, which the CASTs' own backward rule (a CAST back)
 * returns to the graph's dtype; gradients always have their value's dtype.
 *
 * Planning, execution, the parameter store and the optimizers are in
 * graph_exec.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

/* ---- small helpers ------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "hcga graph: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *q = calloc(n ? n : 1, sz ? sz : 1);
    if (!q) {
        fprintf(stderr, "hcga graph: out of memory (%zu x %zu bytes)\n", n, sz);
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n);
    memcpy(d, s, n);
    return d;
}

__attribute__((format(printf, 3, 4), noreturn)) static void die(const hg_graph *g, const char *who,
                                                                const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hcga graph: %s (node %d): ", who, g ? g->nnodes : -1);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

int64_t hg__numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

hcga_tensor hg__desc(int dtype, int ndim, const int64_t *shape)
{
    hcga_tensor t;
    memset(&t, 0, sizeof t);
    t.buf = NULL;
    t.offset = 0;
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < HCGA_MAX_DIMS; i++) {
        t.shape[i] = i < ndim ? shape[i] : 1;
        t.stride[i] = 1;
    }
    for (int i = ndim - 2; i >= 0; i--) t.stride[i] = t.stride[i + 1] * t.shape[i + 1];
    return t;
}

static hg_value *V(const hg_graph *g, hg_val v) { return g->vals[v]; }

const char *hg__vname(const hg_graph *g, hg_val v)
{
    static char bufs[4][64];
    static int next;
    if (v < 0 || v >= g->nvals) return "(none)";
    const hg_value *x = V(g, v);
    if (x->out_name) return x->out_name;
    if (x->name) return x->name;
    char *b = bufs[next];
    next = (next + 1) % 4;
    snprintf(b, sizeof bufs[0], "#%d", (int)v);
    return b;
}

/* "#12 [2,3,4,4] f32" style description for build errors (rotating buffers) */
static const char *vdesc(const hg_graph *g, hg_val v)
{
    static char bufs[4][400];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 4;
    if (v < 0 || v >= g->nvals) {
        snprintf(b, sizeof bufs[0], "(invalid value %d)", (int)v);
        return b;
    }
    const hg_value *x = V(g, v);
    int k = snprintf(b, sizeof bufs[0], "'%s' [", hg__vname(g, v));
    for (int i = 0; i < x->ndim && k < 360; i++)
        k += snprintf(b + k, sizeof bufs[0] - (size_t)k, "%s%lld", i ? "," : "", (long long)x->shape[i]);
    snprintf(b + k, sizeof bufs[0] - (size_t)k, "] %s", hcga_dtype_name(x->dtype));
    return b;
}

static void chkv(const hg_graph *g, const char *who, hg_val v, const char *what)
{
    if (v < 0 || v >= g->nvals) die(g, who, "%s: invalid value id %d", what, (int)v);
}

/* a floating-point value of the graph's compute dtype */
static void chkf(const hg_graph *g, const char *who, hg_val v, const char *what)
{
    chkv(g, who, v, what);
    if (V(g, v)->dtype != g->dtype)
        die(g, who, "%s %s: expected dtype %s (the graph's)", what, vdesc(g, v),
            hcga_dtype_name(g->dtype));
}

/* a floating value of the graph's dtype or, for the half-capable ops
 * (convolutions, GEMM: catalogue column half), of a 16-bit dtype */
static void chkfh(const hg_graph *g, const char *who, hg_val v, const char *what)
{
    chkv(g, who, v, what);
    int dt = V(g, v)->dtype;
    if (dt != g->dtype && !hcga_dtype_is_half(dt))
        die(g, who, "%s %s: expected dtype %s (the graph's), bf16 or f16", what, vdesc(g, v),
            hcga_dtype_name(g->dtype));
}

/* the floating operands of one half-capable op call share one dtype */
static void chksame(const hg_graph *g, const char *who, hg_val a, const char *an, hg_val b, const char *bn)
{
    if (V(g, a)->dtype != V(g, b)->dtype)
        die(g, who, "%s %s and %s %s have different dtypes (one op call, one floating dtype)", an,
            vdesc(g, a), bn, vdesc(g, b));
}

static void chki64(const hg_graph *g, const char *who, hg_val v, const char *what)
{
    chkv(g, who, v, what);
    if (V(g, v)->dtype != HCGA_I64) die(g, who, "%s %s: expected dtype i64", what, vdesc(g, v));
}

static void chkndim(const hg_graph *g, const char *who, hg_val v, const char *what, int ndim)
{
    if (V(g, v)->ndim != ndim) die(g, who, "%s %s: expected %d dimensions", what, vdesc(g, v), ndim);
}

static void chkshape(const hg_graph *g, const char *who, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > HCGA_MAX_DIMS) die(g, who, "ndim %d out of range 0..%d", ndim, HCGA_MAX_DIMS);
    if (ndim > 0 && !shape) die(g, who, "shape is NULL");
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) die(g, who, "dimension %d is %lld (must be >= 1)", i, (long long)shape[i]);
}

static hg_val new_value(hg_graph *g, int kind, int dtype, int ndim, const int64_t *shape)
{
    if (g->nvals == g->cvals) {
        g->cvals = g->cvals ? 2 * g->cvals : 64;
        g->vals = xrealloc(g->vals, (size_t)g->cvals * sizeof *g->vals);
    }
    hg_value *x = xcalloc(1, sizeof *x);
    x->dtype = dtype;
    x->ndim = ndim;
    for (int i = 0; i < HCGA_MAX_DIMS; i++) x->shape[i] = i < ndim ? shape[i] : 1;
    x->kind = kind;
    x->producer = -1;
    x->grad = -1;
    g->vals[g->nvals] = x;
    return g->nvals++;
}

static int same_shape(const hg_graph *g, hg_val a, hg_val b)
{
    const hg_value *x = V(g, a), *y = V(g, b);
    if (x->ndim != y->ndim) return 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i]) return 0;
    return 1;
}

/* ---- nodes --------------------------------------------------------------- */

static hg_node *node_new(hg_graph *g, int op)
{
    if (g->nnodes == g->cnodes) {
        g->cnodes = g->cnodes ? 2 * g->cnodes : 64;
        g->nodes = xrealloc(g->nodes, (size_t)g->cnodes * sizeof *g->nodes);
    }
    hg_node *n = xcalloc(1, sizeof *n);
    n->op = op;
    for (int i = 0; i < HCGA_MAX_OP_IN; i++) n->in[i] = -1;
    for (int i = 0; i < HCGA_MAX_OP_OUT; i++) n->out[i] = -1;
    n->backward = g->backward_done == HG_IN_BACKWARD;
    g->nodes[g->nnodes++] = n;
    return n;
}

static void set_in_view(hg_graph *g, hg_node *n, int slot, hg_val v, int ndim, const int64_t *shape)
{
    const hg_value *x = V(g, v);
    if (hg__numel(ndim, shape) != hg__numel(x->ndim, x->shape))
        die(g, "internal", "view of %s with another number of elements", vdesc(g, v));
    n->in[slot] = v;
    n->tin[slot] = hg__desc(x->dtype, ndim, shape);
    if (slot + 1 > n->num_in) n->num_in = slot + 1;
}

static void set_in(hg_graph *g, hg_node *n, int slot, hg_val v)
{
    set_in_view(g, n, slot, v, V(g, v)->ndim, V(g, v)->shape);
}

/* a new value produced by the last node n, viewed by the op as dshape */
static hg_val new_out_view(hg_graph *g, hg_node *n, int slot, int dtype, int ndim, const int64_t *shape,
                           int dndim, const int64_t *dshape)
{
    hg_val v = new_value(g, HGV_NODE, dtype, ndim, shape);
    V(g, v)->producer = g->nnodes - 1;
    n->out[slot] = v;
    n->tout[slot] = hg__desc(dtype, dndim, dshape);
    if (slot + 1 > n->num_out) n->num_out = slot + 1;
    return v;
}

static hg_val new_out(hg_graph *g, hg_node *n, int slot, int dtype, int ndim, const int64_t *shape)
{
    return new_out_view(g, n, slot, dtype, ndim, shape, ndim, shape);
}

static hg_val new_out_like(hg_graph *g, hg_node *n, int slot, hg_val like)
{
    return new_out(g, n, slot, V(g, like)->dtype, V(g, like)->ndim, V(g, like)->shape);
}

/* ---- building ------------------------------------------------------------ */

hg_graph *hg_graph_new(int dtype)
{
    if (dtype != HCGA_F32 && dtype != HCGA_F64) {
        fprintf(stderr, "hcga graph: hg_graph_new: compute dtype must be f32 or f64, not %s\n",
                hcga_dtype_name(dtype));
        abort();
    }
    hg_graph *g = xcalloc(1, sizeof *g);
    g->dtype = dtype;
    g->autocast = -1;
    g->parts = 1;
    return g;
}

void hg_graph_free(hg_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->nvals; i++) {
        free(g->vals[i]->name);
        free(g->vals[i]->out_name);
        free(g->vals[i]);
    }
    for (int i = 0; i < g->nnodes; i++) free(g->nodes[i]);
    for (int i = 0; i < g->nouts; i++) free(g->outs[i].name);
    free(g->vals);
    free(g->nodes);
    free(g->outs);
    free(g);
}

int hg_graph_dtype(const hg_graph *g) { return g->dtype; }

void hg_graph_set_sync_bn(hg_graph *g, int ranks) { g->sync_bn_ranks = ranks > 0 ? ranks : 0; }
void hg_graph_set_parts(hg_graph *g, int parts)
{
    if (parts > HCGA_MAX_OP_OUT) /* a SPLIT has at most that many outputs */
        die(g, "hg_graph_set_parts", "%d parts: at most %d", parts, HCGA_MAX_OP_OUT);
    g->parts = parts > 1 ? parts : 1;
}

static hg_val binary(hg_graph *g, const char *who, int op, hg_val a, hg_val b, double alpha, double beta);

/* ---- one process computing as g->parts data-parallel ranks would --------
 * Part k is the k-th contiguous block of B/parts rows of the batch. */

static void check_parts(hg_graph *g, const char *who, hg_val x)
{
    if (V(g, x)->shape[0] % g->parts)
        die(g, who, "batch of %s does not divide into %d parts", vdesc(g, x), g->parts);
}

/* x [B,...] into its parts [B/parts,...]: a SPLIT of x seen as [1, numel]
 * (the SPLIT's gradient, a CONCAT, uses the same views) */
static void split_rows(hg_graph *g, const char *who, hg_val x, hg_val *out)
{
    check_parts(g, who, x);
    const hg_value *xv = V(g, x);
    const int P = g->parts;
    const int64_t tot = hg__numel(xv->ndim, xv->shape);
    int64_t sh[HCGA_MAX_DIMS];
    memcpy(sh, xv->shape, sizeof sh);
    sh[0] /= P;
    hg_node *n = node_new(g, HCGA_OP_SPLIT);
    set_in_view(g, n, 0, x, 2, (int64_t[]){1, tot});
    for (int k = 0; k < P; k++) out[k] = new_out_view(g, n, k, xv->dtype, xv->ndim, sh, 2, (int64_t[]){1, tot / P});
}

/* the parts back into one [B,...] value (CONCAT of the [1, numel/parts] views) */
static hg_val concat_rows(hg_graph *g, const hg_val *parts)
{
    const hg_value *pv = V(g, parts[0]);
    const int P = g->parts;
    const int64_t each = hg__numel(pv->ndim, pv->shape);
    int64_t sh[HCGA_MAX_DIMS];
    memcpy(sh, pv->shape, sizeof sh);
    sh[0] *= P;
    hg_node *n = node_new(g, HCGA_OP_CONCAT);
    for (int k = 0; k < P; k++) set_in_view(g, n, k, parts[k], 2, (int64_t[]){1, each});
    return new_out_view(g, n, 0, pv->dtype, pv->ndim, sh, 2, (int64_t[]){1, each * P});
}

/* input slot = rows of part k of v (an index tensor: labels), a view at an
 * offset, no copy */
static void set_in_rows(hg_graph *g, hg_node *n, int slot, hg_val v, int k)
{
    const hg_value *x = V(g, v);
    int64_t sh[HCGA_MAX_DIMS];
    memcpy(sh, x->shape, sizeof sh);
    sh[0] /= g->parts;
    set_in_view(g, n, slot, v, x->ndim, x->shape);
    n->tin[slot] = hg__desc(x->dtype, x->ndim, sh);
    n->tin[slot].offset = (uint64_t)(k * hg__numel(x->ndim, sh)) * hcga_dtype_size(x->dtype);
}

/* the mean of per-part losses l[0..parts) ([1] each) */
static hg_val mean_of_parts(hg_graph *g, const hg_val *l)
{
    hg_val sum = l[0];
    const double w = 1.0 / g->parts;
    for (int k = 1; k < g->parts; k++) sum = binary(g, "hg_parts", HCGA_OP_ADD, sum, l[k], k == 1 ? w : 1.0, w);
    return sum;
}

void hg_graph_set_autocast(hg_graph *g, int half_dtype)
{
    if (half_dtype != -1 && !hcga_dtype_is_half(half_dtype))
        die(g, "hg_graph_set_autocast", "dtype %s: autocast needs bf16 or f16 (or -1: off)",
            hcga_dtype_name(half_dtype));
    g->autocast = half_dtype;
}

int hg_graph_autocast(const hg_graph *g) { return g->autocast; }

/* Autocast applies to a forward builder call whose operands have the
 * graph's dtype; backward nodes follow the forward's dtypes. */
static int autocasting(const hg_graph *g, hg_val v)
{
    return g->autocast >= 0 && g->backward_done != HG_IN_BACKWARD && V(g, v)->dtype == g->dtype;
}

static hg_val find_named(const hg_graph *g, const char *name)
{
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, name)) return g->outs[i].v;
    for (int i = 0; i < g->nvals; i++)
        if (g->vals[i]->name && !strcmp(g->vals[i]->name, name)) return i;
    return -1;
}

static void chkname(const hg_graph *g, const char *who, const char *name)
{
    if (!name || !name[0]) die(g, who, "empty name");
    if (strlen(name) >= sizeof(((hg_store_entry *)0)->name))
        die(g, who, "name '%.60s...' longer than %zu characters", name,
            sizeof(((hg_store_entry *)0)->name) - 1);
}

hg_val hg_input(hg_graph *g, const char *name, int dtype, int ndim, const int64_t *shape)
{
    const char *who = "hg_input";
    chkname(g, who, name);
    chkshape(g, who, ndim, shape);
    if (dtype != g->dtype && dtype != HCGA_I64 && !hcga_dtype_is_half(dtype))
        die(g, who, "input '%s': dtype %s must be the graph's (%s), bf16, f16 or i64", name,
            hcga_dtype_name(dtype), hcga_dtype_name(g->dtype));
    if (find_named(g, name) >= 0) die(g, who, "name '%s' is already used in this graph", name);
    hg_val v = new_value(g, HGV_INPUT, dtype, ndim, shape);
    V(g, v)->name = xstrdup(name);
    return v;
}

hg_val hg_param(hg_graph *g, const char *name, int ndim, const int64_t *shape, unsigned flags)
{
    const char *who = "hg_param";
    chkname(g, who, name);
    chkshape(g, who, ndim, shape);
    hg_val old = find_named(g, name);
    if (old >= 0) {
        /* the same parameter requested twice: weight sharing */
        const hg_value *x = V(g, old);
        int same = x->kind == HGV_PARAM && x->ndim == ndim && x->flags == flags;
        for (int i = 0; same && i < ndim; i++) same = x->shape[i] == shape[i];
        if (!same) die(g, who, "'%s' already exists with another shape, kind or flags", name);
        return old;
    }
    hg_val v = new_value(g, HGV_PARAM, g->dtype, ndim, shape);
    V(g, v)->name = xstrdup(name);
    V(g, v)->flags = flags;
    return v;
}

int hg_ndim(const hg_graph *g, hg_val v)
{
    chkv(g, "hg_ndim", v, "v");
    return V(g, v)->ndim;
}

const int64_t *hg_shape(const hg_graph *g, hg_val v)
{
    chkv(g, "hg_shape", v, "v");
    return V(g, v)->shape;
}

int hg_val_dtype(const hg_graph *g, hg_val v)
{
    chkv(g, "hg_val_dtype", v, "v");
    return V(g, v)->dtype;
}

/* -- convolution -- */

static hcga_op_params conv_params(int stride, int pad)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.stride_h = p.conv.stride_w = stride;
    p.conv.pad_h = p.conv.pad_w = pad;
    p.conv.dilation_h = p.conv.dilation_w = 1;
    return p;
}

hg_val hg_conv2d(hg_graph *g, hg_val x, hg_val w, hg_val bias, int stride, int pad)
{
    const char *who = "hg_conv2d";
    chkv(g, who, x, "x");
    if (autocasting(g, x)) {
        /* the one place (with gemm below) where autocast inserts casts */
        const int h = g->autocast;
        hg_val y = hg_conv2d(g, hg_cast(g, x, h), hg_cast(g, w, h), bias >= 0 ? hg_cast(g, bias, h) : -1,
                             stride, pad);
        return hg_cast(g, y, g->dtype);
    }
    chkfh(g, who, x, "x");
    chkfh(g, who, w, "w");
    chksame(g, who, x, "x", w, "w");
    chkndim(g, who, x, "x", 4);
    chkndim(g, who, w, "w", 4);
    const int64_t *xs = V(g, x)->shape, *ws = V(g, w)->shape;
    if (xs[1] != ws[1]) die(g, who, "x %s has %lld channels but w %s expects %lld", vdesc(g, x),
                            (long long)xs[1], vdesc(g, w), (long long)ws[1]);
    if (stride < 1 || pad < 0) die(g, who, "stride %d / pad %d out of range", stride, pad);
    if (xs[2] + 2 * pad < ws[2] || xs[3] + 2 * pad < ws[3])
        die(g, who, "kernel %s larger than the padded input %s", vdesc(g, w), vdesc(g, x));
    if (bias >= 0) {
        chkfh(g, who, bias, "bias");
        chksame(g, who, x, "x", bias, "bias");
        chkndim(g, who, bias, "bias", 1);
        if (V(g, bias)->shape[0] != ws[0])
            die(g, who, "bias %s does not match %lld output channels", vdesc(g, bias), (long long)ws[0]);
    }
    int64_t ys[4] = {xs[0], ws[0], (xs[2] + 2 * pad - ws[2]) / stride + 1,
                     (xs[3] + 2 * pad - ws[3]) / stride + 1};
    hg_node *n = node_new(g, HCGA_OP_CONV2D_FWD);
    n->p = conv_params(stride, pad);
    set_in(g, n, HCGA_CONV_X, x);
    set_in(g, n, HCGA_CONV_W, w);
    if (bias >= 0) set_in(g, n, HCGA_CONV_BIAS, bias);
    return new_out(g, n, 0, V(g, x)->dtype, 4, ys);
}

/* -- batch norm -- */

static hg_val bn_infer(hg_graph *g, hg_val x, hg_val gamma, hg_val beta, hg_val rm, hg_val rv, double eps)
{
    hg_node *n = node_new(g, HCGA_OP_BN_FWD_INFER);
    n->p.bn.eps = eps;
    n->p.bn.momentum = 0;
    set_in(g, n, HCGA_BN_X, x);
    set_in(g, n, HCGA_BN_GAMMA, gamma);
    set_in(g, n, HCGA_BN_BETA, beta);
    set_in(g, n, HCGA_BN_RMEAN_IN, rm);
    set_in(g, n, HCGA_BN_RVAR_IN, rv);
    return new_out_like(g, n, 0, x);
}

hg_val hg_batchnorm(hg_graph *g, hg_val x, hg_val gamma, hg_val beta, hg_val rmean, hg_val rvar,
                    int training, double eps, double momentum)
{
    const char *who = "hg_batchnorm";
    chkf(g, who, x, "x");
    if (V(g, x)->ndim != 2 && V(g, x)->ndim != 4)
        die(g, who, "x %s must be [N,C] or [N,C,H,W]", vdesc(g, x));
    int64_t C = V(g, x)->shape[1];
    const hg_val vs[4] = {gamma, beta, rmean, rvar};
    const char *nm[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        chkf(g, who, vs[i], nm[i]);
        if (V(g, vs[i])->ndim != 1 || V(g, vs[i])->shape[0] != C)
            die(g, who, "%s %s must be [%lld] for x %s", nm[i], vdesc(g, vs[i]), (long long)C, vdesc(g, x));
    }
    if (!(eps > 0)) die(g, who, "eps %g must be > 0", eps);
    if (!training) return bn_infer(g, x, gamma, beta, rmean, rvar, eps);
    if (!(momentum >= 0 && momentum <= 1)) die(g, who, "momentum %g out of [0,1]", momentum);
    for (int i = 2; i < 4; i++)
        if (V(g, vs[i])->kind != HGV_PARAM)
            die(g, who, "%s %s must be a parameter (a store buffer updated in place)", nm[i], vdesc(g, vs[i]));
    if (rmean == rvar) die(g, who, "running_mean and running_var are the same value");
    if (g->parts > 1 && g->sync_bn_ranks == 0 && g->backward_done == HG_BUILDING) {
        /* as `parts` unsynchronised ranks: statistics per part; the running
         * statistics follow part 0 alone (rank 0's are the ones saved) */
        hg_val xs[HCGA_MAX_OP_OUT], ys[HCGA_MAX_OP_OUT];
        split_rows(g, who, x, xs);
        const int P = g->parts;
        g->parts = 1;
        for (int k = 0; k < P; k++) ys[k] = hg_batchnorm(g, xs[k], gamma, beta, rmean, rvar, 1, eps, k ? 0.0 : momentum);
        g->parts = P;
        return concat_rows(g, ys);
    }
    hg_node *n;
    if (g->sync_bn_ranks > 0) {
        /* the per-channel sums of this rank's part, added over the ranks by
         * the executor's hook, then the normalisation with the totals */
        int64_t local = hg__numel(V(g, x)->ndim, V(g, x)->shape) / C;
        hg_node *st = node_new(g, HCGA_OP_BN_STATS);
        set_in(g, st, 0, x);
        hg_val sum = new_out(g, st, HCGA_BNS_SUM, g->dtype, 1, &C);
        hg_val sumsq = new_out(g, st, HCGA_BNS_SUMSQ, g->dtype, 1, &C);
        st->reduce_out = 1u << HCGA_BNS_SUM | 1u << HCGA_BNS_SUMSQ;
        n = node_new(g, HCGA_OP_BN_FWD_FROM_STATS);
        n->p.bn.count = local * g->sync_bn_ranks;
        set_in(g, n, HCGA_BNF_SUM, sum);
        set_in(g, n, HCGA_BNF_SUMSQ, sumsq);
    } else {
        n = node_new(g, HCGA_OP_BN_FWD_TRAIN);
    }
    n->p.bn.eps = eps;
    n->p.bn.momentum = momentum;
    set_in(g, n, HCGA_BN_X, x);
    set_in(g, n, HCGA_BN_GAMMA, gamma);
    set_in(g, n, HCGA_BN_BETA, beta);
    hg_val y = new_out_like(g, n, HCGA_BN_Y, x);
    new_out(g, n, HCGA_BN_SAVE_MEAN, g->dtype, 1, &C);
    new_out(g, n, HCGA_BN_SAVE_INVSTD, g->dtype, 1, &C);
    /* running statistics: the parameters themselves, in/out */
    n->out[HCGA_BN_RMEAN] = rmean;
    n->tout[HCGA_BN_RMEAN] = hg__desc(g->dtype, 1, &C);
    n->out[HCGA_BN_RVAR] = rvar;
    n->tout[HCGA_BN_RVAR] = hg__desc(g->dtype, 1, &C);
    n->num_out = 5;
    return y;
}

/* -- elementwise -- */

static hg_val unary(hg_graph *g, const char *who, int op, hg_val x, double a)
{
    chkf(g, who, x, "x");
    hg_node *n = node_new(g, op);
    n->p.scalar.a = a;
    set_in(g, n, 0, x);
    return new_out_like(g, n, 0, x);
}

hg_val hg_relu(hg_graph *g, hg_val x) { return unary(g, "hg_relu", HCGA_OP_RELU_FWD, x, 0); }
hg_val hg_sigmoid(hg_graph *g, hg_val x) { return unary(g, "hg_sigmoid", HCGA_OP_SIGMOID_FWD, x, 0); }
hg_val hg_threshold(hg_graph *g, hg_val x, double t)
{
    return unary(g, "hg_threshold", HCGA_OP_THRESH_FWD, x, t);
}

/* right-aligned padding of v's shape to ndim dims */
static void padded(const hg_graph *g, hg_val v, int ndim, int64_t *out)
{
    const hg_value *x = V(g, v);
    int k = ndim - x->ndim;
    for (int i = 0; i < ndim; i++) out[i] = i < k ? 1 : x->shape[i - k];
}

/* ADD (alpha*a + beta*b) or MUL (alpha*a*b) with numpy broadcasting */
static hg_val binary(hg_graph *g, const char *who, int op, hg_val a, hg_val b, double alpha, double beta)
{
    chkf(g, who, a, "a");
    chkf(g, who, b, "b");
    int nd = V(g, a)->ndim > V(g, b)->ndim ? V(g, a)->ndim : V(g, b)->ndim;
    int64_t pa[HCGA_MAX_DIMS], pb[HCGA_MAX_DIMS], ys[HCGA_MAX_DIMS];
    padded(g, a, nd, pa);
    padded(g, b, nd, pb);
    for (int i = 0; i < nd; i++) {
        if (pa[i] == pb[i] || pb[i] == 1) ys[i] = pa[i];
        else if (pa[i] == 1) ys[i] = pb[i];
        else die(g, who, "shapes of %s and %s do not broadcast", vdesc(g, a), vdesc(g, b));
    }
    hg_node *n = node_new(g, op);
    n->p.scalar.a = alpha;
    n->p.scalar.b = beta;
    set_in_view(g, n, 0, a, nd, pa);
    set_in_view(g, n, 1, b, nd, pb);
    return new_out(g, n, 0, g->dtype, nd, ys);
}

hg_val hg_add(hg_graph *g, hg_val a, hg_val b) { return binary(g, "hg_add", HCGA_OP_ADD, a, b, 1, 1); }
hg_val hg_axpby(hg_graph *g, double alpha, hg_val a, double beta, hg_val b)
{
    return binary(g, "hg_axpby", HCGA_OP_ADD, a, b, alpha, beta);
}
/* ADD(x, x) with beta 0: one node, and its backward is alpha*dy */
hg_val hg_scale(hg_graph *g, hg_val x, double alpha)
{
    return binary(g, "hg_scale", HCGA_OP_ADD, x, x, alpha, 0);
}
hg_val hg_mul(hg_graph *g, hg_val a, hg_val b) { return binary(g, "hg_mul", HCGA_OP_MUL, a, b, 1, 0); }

/* SUM_TO x into a value of shape (ndim, shape), viewed with x's rank */
static hg_val sum_to(hg_graph *g, hg_val x, int ndim, const int64_t *shape)
{
    const char *who = "sum_to";
    int xn = V(g, x)->ndim;
    if (ndim > xn) die(g, who, "target rank %d above %s", ndim, vdesc(g, x));
    int64_t ps[HCGA_MAX_DIMS];
    for (int i = 0; i < xn; i++) {
        ps[i] = i < xn - ndim ? 1 : shape[i - (xn - ndim)];
        if (ps[i] != 1 && ps[i] != V(g, x)->shape[i]) die(g, who, "cannot sum %s to that shape", vdesc(g, x));
    }
    hg_node *n = node_new(g, HCGA_OP_SUM_TO);
    set_in(g, n, 0, x);
    return new_out_view(g, n, 0, g->dtype, ndim, shape, xn, ps);
}

static hg_val fill(hg_graph *g, int ndim, const int64_t *shape, double value)
{
    hg_node *n = node_new(g, HCGA_OP_FILL);
    n->p.scalar.a = value;
    return new_out(g, n, 0, g->dtype, ndim, shape);
}

/* -- channel ops -- */

hg_val hg_softmax(hg_graph *g, hg_val x)
{
    const char *who = "hg_softmax";
    chkf(g, who, x, "x");
    if (V(g, x)->ndim < 2) die(g, who, "x %s needs at least 2 dimensions", vdesc(g, x));
    hg_node *n = node_new(g, HCGA_OP_SOFTMAX_FWD);
    set_in(g, n, 0, x);
    return new_out_like(g, n, 0, x);
}

hg_val hg_argmax(hg_graph *g, hg_val x)
{
    const char *who = "hg_argmax";
    chkf(g, who, x, "x");
    const hg_value *X = V(g, x);
    if (X->ndim < 2) die(g, who, "x %s needs at least 2 dimensions", vdesc(g, x));
    int64_t ys[HCGA_MAX_DIMS];
    ys[0] = X->shape[0];
    for (int i = 2; i < X->ndim; i++) ys[i - 1] = X->shape[i];
    int yn = X->ndim - 1;
    hg_node *n = node_new(g, HCGA_OP_ARGMAX);
    set_in(g, n, 0, x);
    return new_out(g, n, 0, HCGA_I64, yn, ys);
}

/* -- spatial -- */

hg_val hg_upsample_nearest(hg_graph *g, hg_val x, int factor)
{
    const char *who = "hg_upsample_nearest";
    chkf(g, who, x, "x");
    chkndim(g, who, x, "x", 4);
    if (factor < 1) die(g, who, "factor %d must be >= 1", factor);
    const int64_t *xs = V(g, x)->shape;
    int64_t ys[4] = {xs[0], xs[1], xs[2] * factor, xs[3] * factor};
    hg_node *n = node_new(g, HCGA_OP_UPSAMPLE_NEAREST_FWD);
    n->p.resize.factor = factor;
    set_in(g, n, 0, x);
    return new_out(g, n, 0, g->dtype, 4, ys);
}

hg_val hg_resize_bilinear(hg_graph *g, hg_val x, int64_t oh, int64_t ow, int align_corners)
{
    const char *who = "hg_resize_bilinear";
    chkf(g, who, x, "x");
    chkndim(g, who, x, "x", 4);
    if (oh < 1 || ow < 1) die(g, who, "output size %lldx%lld", (long long)oh, (long long)ow);
    if (align_corners != 0 && align_corners != 1) die(g, who, "align_corners must be 0 or 1");
    const int64_t *xs = V(g, x)->shape;
    int64_t ys[4] = {xs[0], xs[1], oh, ow};
    hg_node *n = node_new(g, HCGA_OP_RESIZE_BILINEAR_FWD);
    n->p.resize.align_corners = align_corners;
    set_in(g, n, 0, x);
    return new_out(g, n, 0, g->dtype, 4, ys);
}

hg_val hg_concat(hg_graph *g, int n, const hg_val *xs)
{
    const char *who = "hg_concat";
    if (n < 1 || n > HCGA_MAX_OP_IN) die(g, who, "%d inputs (1..%d supported)", n, HCGA_MAX_OP_IN);
    chkf(g, who, xs[0], "x0");
    const hg_value *X0 = V(g, xs[0]);
    if (X0->ndim < 2) die(g, who, "x0 %s needs at least 2 dimensions", vdesc(g, xs[0]));
    int64_t ys[HCGA_MAX_DIMS];
    memcpy(ys, X0->shape, sizeof ys);
    ys[1] = 0;
    for (int i = 0; i < n; i++) {
        chkf(g, who, xs[i], "x");
        const hg_value *X = V(g, xs[i]);
        int ok = X->ndim == X0->ndim;
        for (int d = 0; ok && d < X->ndim; d++) ok = d == 1 || X->shape[d] == X0->shape[d];
        if (!ok) die(g, who, "x%d %s does not match x0 %s outside dim 1", i, vdesc(g, xs[i]), vdesc(g, xs[0]));
        ys[1] += X->shape[1];
    }
    hg_node *nd = node_new(g, HCGA_OP_CONCAT);
    for (int i = 0; i < n; i++) set_in(g, nd, i, xs[i]);
    return new_out(g, nd, 0, g->dtype, X0->ndim, ys);
}

void hg_split(hg_graph *g, hg_val x, int n, const int64_t *sizes, hg_val *outs)
{
    const char *who = "hg_split";
    chkf(g, who, x, "x");
    const hg_value *X = V(g, x);
    if (X->ndim < 2) die(g, who, "x %s needs at least 2 dimensions", vdesc(g, x));
    if (n < 1 || n > HCGA_MAX_OP_OUT) die(g, who, "%d pieces (1..%d supported)", n, HCGA_MAX_OP_OUT);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 1) die(g, who, "piece %d has size %lld", i, (long long)sizes[i]);
        sum += sizes[i];
    }
    if (sum != X->shape[1])
        die(g, who, "sizes add up to %lld, x %s has %lld channels", (long long)sum, vdesc(g, x),
            (long long)X->shape[1]);
    hg_node *nd = node_new(g, HCGA_OP_SPLIT);
    set_in(g, nd, 0, x);
    int nd_ = X->ndim;
    int64_t s[HCGA_MAX_DIMS];
    memcpy(s, X->shape, sizeof s);
    for (int i = 0; i < n; i++) {
        s[1] = sizes[i];
        outs[i] = new_out(g, nd, i, g->dtype, nd_, s);
    }
}

hg_val hg_gap(hg_graph *g, hg_val x)
{
    const char *who = "hg_gap";
    chkf(g, who, x, "x");
    chkndim(g, who, x, "x", 4);
    int64_t ys[2] = {V(g, x)->shape[0], V(g, x)->shape[1]};
    hg_node *n = node_new(g, HCGA_OP_GAP_FWD);
    set_in(g, n, 0, x);
    return new_out(g, n, 0, g->dtype, 2, ys);
}

/* -- matrix -- */

static hg_val gemm(hg_graph *g, const char *who, hg_val a, hg_val b, int ta, int tb, double alpha)
{
    chkv(g, who, a, "a");
    if (autocasting(g, a)) {
        const int h = g->autocast;
        hg_val y = gemm(g, who, hg_cast(g, a, h), hg_cast(g, b, h), ta, tb, alpha);
        return hg_cast(g, y, g->dtype);
    }
    chkfh(g, who, a, "a");
    chkfh(g, who, b, "b");
    chksame(g, who, a, "a", b, "b");
    chkndim(g, who, a, "a", 2);
    chkndim(g, who, b, "b", 2);
    const int64_t *as = V(g, a)->shape, *bs = V(g, b)->shape;
    int64_t M = ta ? as[1] : as[0], K = ta ? as[0] : as[1];
    int64_t Kb = tb ? bs[1] : bs[0], N = tb ? bs[0] : bs[1];
    if (K != Kb)
        die(g, who, "inner dimensions differ: %s%s x %s%s", vdesc(g, a), ta ? "^T" : "", vdesc(g, b),
            tb ? "^T" : "");
    hg_node *n = node_new(g, HCGA_OP_GEMM);
    n->p.gemm.trans_a = ta ? 1 : 0;
    n->p.gemm.trans_b = tb ? 1 : 0;
    n->p.gemm.alpha = alpha;
    n->p.gemm.beta = 0;
    set_in(g, n, 0, a);
    set_in(g, n, 1, b);
    int64_t ys[2] = {M, N};
    return new_out(g, n, 0, V(g, a)->dtype, 2, ys);
}

hg_val hg_matmul(hg_graph *g, hg_val a, hg_val b, int trans_a, int trans_b)
{
    return gemm(g, "hg_matmul", a, b, trans_a, trans_b, 1);
}

hg_val hg_linear(hg_graph *g, hg_val x, hg_val w) { return gemm(g, "hg_linear", x, w, 0, 1, 1); }

/* COPY with the input viewed in the output's shape (no aliasing) */
static hg_val copy_as(hg_graph *g, hg_val x, int ndim, const int64_t *shape)
{
    hg_node *n = node_new(g, HCGA_OP_COPY);
    set_in_view(g, n, 0, x, ndim, shape);
    return new_out(g, n, 0, V(g, x)->dtype, ndim, shape);
}

hg_val hg_cast(hg_graph *g, hg_val x, int dtype)
{
    const char *who = "hg_cast";
    chkv(g, who, x, "x");
    if (!hcga_dtype_is_float(V(g, x)->dtype)) die(g, who, "x %s is not a floating value", vdesc(g, x));
    if (!hcga_dtype_is_float(dtype)) die(g, who, "target dtype %s is not floating", hcga_dtype_name(dtype));
    if (V(g, x)->dtype == dtype) return x;
    hg_node *n = node_new(g, HCGA_OP_CAST);
    set_in(g, n, 0, x);
    return new_out(g, n, 0, dtype, V(g, x)->ndim, V(g, x)->shape);
}

hg_val hg_reshape(hg_graph *g, hg_val x, int ndim, const int64_t *shape)
{
    const char *who = "hg_reshape";
    chkv(g, who, x, "x");
    chkshape(g, who, ndim, shape);
    if (hg__numel(ndim, shape) != hg__numel(V(g, x)->ndim, V(g, x)->shape))
        die(g, who, "x %s has %lld elements, the new shape %lld", vdesc(g, x),
            (long long)hg__numel(V(g, x)->ndim, V(g, x)->shape), (long long)hg__numel(ndim, shape));
    if (V(g, x)->dtype != g->dtype && V(g, x)->dtype != HCGA_I64)
        die(g, who, "x %s: unsupported dtype", vdesc(g, x));
    return copy_as(g, x, ndim, shape);
}

hg_val hg_reduce(hg_graph *g, hg_val x, int kind)
{
    const char *who = "hg_reduce";
    chkf(g, who, x, "x");
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        die(g, who, "unknown reduce kind %d", kind);
    hg_node *n = node_new(g, HCGA_OP_REDUCE);
    n->p.reduce.kind = kind;
    set_in(g, n, 0, x);
    int64_t one = 1;
    return new_out(g, n, 0, g->dtype, 1, &one);
}

/* -- losses -- */

/* A loss op (PIXEL_CE_FWD, TRIPLET_FWD: in x, labels; out loss[1], and
 * TRIPLET's hard[N,2]) on the whole batch, or under hg_graph_set_parts on
 * each part (labels viewed by rows) with the mean of the parts' losses. */
static hg_val loss_per_part(hg_graph *g, const char *who, int op, const hcga_op_params *p, hg_val x, hg_val labels)
{
    const int P = g->parts > 1 && g->backward_done == HG_BUILDING ? g->parts : 1;
    hg_val xs[HCGA_MAX_OP_OUT] = {x}, l[HCGA_MAX_OP_OUT];
    if (P > 1) split_rows(g, who, x, xs);
    for (int k = 0; k < P; k++) {
        hg_node *n = node_new(g, op);
        n->p = *p;
        set_in(g, n, 0, xs[k]);
        if (P > 1) set_in_rows(g, n, 1, labels, k);
        else set_in(g, n, 1, labels);
        int64_t one = 1, hs[2] = {V(g, xs[k])->shape[0], 2};
        l[k] = new_out(g, n, 0, g->dtype, 1, &one);
        if (op == HCGA_OP_TRIPLET_FWD) new_out(g, n, 1, HCGA_I64, 2, hs);
    }
    return P > 1 ? mean_of_parts(g, l) : l[0];
}

hg_val hg_ce_ls(hg_graph *g, hg_val logits, hg_val labels, double eps)
{
    const char *who = "hg_ce_ls";
    chkf(g, who, logits, "logits");
    chki64(g, who, labels, "labels");
    chkndim(g, who, logits, "logits", 2);
    chkndim(g, who, labels, "labels", 1);
    if (V(g, labels)->shape[0] != V(g, logits)->shape[0])
        die(g, who, "labels %s do not match logits %s", vdesc(g, labels), vdesc(g, logits));
    if (!(eps >= 0 && eps < 1)) die(g, who, "eps %g out of [0,1)", eps);
    hg_node *n = node_new(g, HCGA_OP_CE_LS_FWD);
    n->p.loss.eps = eps;
    set_in(g, n, 0, logits);
    set_in(g, n, 1, labels);
    int64_t one = 1;
    return new_out(g, n, 0, g->dtype, 1, &one);
}

hg_val hg_pixel_ce(hg_graph *g, hg_val logits, hg_val labels, int64_t ignore_label)
{
    const char *who = "hg_pixel_ce";
    chkf(g, who, logits, "logits");
    chki64(g, who, labels, "labels");
    chkndim(g, who, logits, "logits", 4);
    chkndim(g, who, labels, "labels", 3);
    const int64_t *ls = V(g, logits)->shape, *bs = V(g, labels)->shape;
    if (bs[0] != ls[0] || bs[1] != ls[2] || bs[2] != ls[3])
        die(g, who, "labels %s do not match logits %s", vdesc(g, labels), vdesc(g, logits));
    /* as `parts` ranks: the mean over each part's non-ignored pixels */
    hcga_op_params p = {.loss.ignore_label = ignore_label};
    return loss_per_part(g, who, HCGA_OP_PIXEL_CE_FWD, &p, logits, labels);
}

hg_val hg_triplet(hg_graph *g, hg_val x, hg_val labels, double margin)
{
    const char *who = "hg_triplet";
    chkf(g, who, x, "x");
    chki64(g, who, labels, "labels");
    chkndim(g, who, x, "x", 2);
    chkndim(g, who, labels, "labels", 1);
    if (V(g, labels)->shape[0] != V(g, x)->shape[0])
        die(g, who, "labels %s do not match x %s", vdesc(g, labels), vdesc(g, x));
    /* as `parts` ranks: hardest examples mined within each part */
    hcga_op_params p = {.loss.margin = margin};
    return loss_per_part(g, who, HCGA_OP_TRIPLET_FWD, &p, x, labels);
}

hg_val hg_shift_l1(hg_graph *g, hg_val x, int dn, int dh, int dw)
{
    const char *who = "hg_shift_l1";
    chkf(g, who, x, "x");
    chkndim(g, who, x, "x", 4);
    if (dn < -1 || dn > 1 || dh < -1 || dh > 1 || dw < -1 || dw > 1)
        die(g, who, "shift (%d,%d,%d): each must be -1, 0 or 1", dn, dh, dw);
    hg_node *n = node_new(g, HCGA_OP_SHIFT_L1_FWD);
    n->p.shift.dn = dn;
    n->p.shift.dh = dh;
    n->p.shift.dw = dw;
    set_in(g, n, 0, x);
    int64_t one = 1;
    return new_out(g, n, 0, g->dtype, 1, &one);
}

/* -- outputs and lookups -- */

void hg_mark_output(hg_graph *g, hg_val v, const char *name)
{
    const char *who = "hg_mark_output";
    chkv(g, who, v, "v");
    chkname(g, who, name);
    hg_val old = find_named(g, name);
    if (old == v) return;
    if (old >= 0) die(g, who, "name '%s' is already used by %s", name, vdesc(g, old));
    if (g->nouts == g->couts) {
        g->couts = g->couts ? 2 * g->couts : 16;
        g->outs = xrealloc(g->outs, (size_t)g->couts * sizeof *g->outs);
    }
    g->outs[g->nouts].name = xstrdup(name);
    g->outs[g->nouts].v = v;
    g->nouts++;
    hg_value *x = V(g, v);
    x->is_output = 1;
    if (!x->out_name && !x->name) x->out_name = xstrdup(name);
}

hg_val hg_find(const hg_graph *g, const char *name)
{
    if (!name) return -1;
    return find_named(g, name);
}

void hg_requires_grad(hg_graph *g, hg_val v)
{
    const char *who = "hg_requires_grad";
    chkf(g, who, v, "v");
    if (g->backward_done) die(g, who, "called after hg_backward");
    V(g, v)->requested = 1;
}

/* ---- autodiff ------------------------------------------------------------ */

/* Does output slot s of a forward node carry a gradient?  (The catalogue's
 * diff_out column, plugins/hcga_ops.def.) */
static int out_differentiable(const hg_node *n, int s)
{
    const hcga_op_info *info = hcga_op_get_info(n->op);
    return info && s >= 0 && s < 8 && ((info->diff_out >> s) & 1);
}

/* Does input slot s of a forward node receive a gradient?  (diff_in.) */
static int in_differentiable(const hg_node *n, int s)
{
    const hcga_op_info *info = hcga_op_get_info(n->op);
    return info && s >= 0 && s < 8 && ((info->diff_in >> s) & 1);
}

typedef struct bw_ctx {
    hg_graph *g;
    unsigned char *req; /* per forward value: needs a gradient */
    int nv;
} bw_ctx;

/* grad[v] += contrib */
static void acc(bw_ctx *c, hg_val v, hg_val contrib)
{
    if (v < 0 || v >= c->nv || !c->req[v]) return;
    hg_graph *g = c->g;
    hg_value *x = V(g, v);
    if (!same_shape(g, v, contrib) || V(g, contrib)->dtype != x->dtype)
        die(g, "hg_backward", "internal: gradient %s does not match %s", vdesc(g, contrib), vdesc(g, v));
    if (x->grad < 0) x->grad = contrib;
    else if (hcga_dtype_is_half(x->dtype)) {
        /* no ADD in half (ABI 1.1): sum in the graph's dtype, round once */
        hg_val s = binary(g, "hg_backward", HCGA_OP_ADD, hg_cast(g, x->grad, g->dtype),
                          hg_cast(g, contrib, g->dtype), 1, 1);
        x->grad = hg_cast(g, s, x->dtype);
    } else {
        hg_val old = x->grad;
        x->grad = binary(g, "hg_backward", HCGA_OP_ADD, old, contrib, 1, 1);
    }
}

/* a node with the given inputs and one output shaped like `like` */
static hg_val simple(hg_graph *g, int op, const hcga_op_params *p, int nin, const hg_val *ins, hg_val like)
{
    hg_node *n = node_new(g, op);
    if (p) n->p = *p;
    for (int i = 0; i < nin; i++)
        if (ins[i] >= 0) set_in(g, n, i, ins[i]);
    n->num_in = nin;
    return new_out_like(g, n, 0, like);
}

/* BN_BWD of the training-mode batch norm n (BN_FWD_TRAIN or
 * BN_FWD_FROM_STATS: same inputs and saved statistics): out[HCGA_BNB_DX,
 * DGAMMA, DBETA] */
static void bn_bwd(hg_graph *g, const hg_node *n, hg_val dy, hg_val *out)
{
    hg_node *m = node_new(g, HCGA_OP_BN_BWD);
    m->p = n->p;
    set_in(g, m, HCGA_BNB_X, n->in[HCGA_BN_X]);
    set_in(g, m, HCGA_BNB_DY, dy);
    set_in(g, m, HCGA_BNB_GAMMA, n->in[HCGA_BN_GAMMA]);
    set_in(g, m, HCGA_BNB_MEAN, n->out[HCGA_BN_SAVE_MEAN]);
    set_in(g, m, HCGA_BNB_INVSTD, n->out[HCGA_BN_SAVE_INVSTD]);
    out[HCGA_BNB_DX] = new_out_like(g, m, HCGA_BNB_DX, n->in[HCGA_BN_X]);
    out[HCGA_BNB_DGAMMA] = new_out_like(g, m, HCGA_BNB_DGAMMA, n->in[HCGA_BN_GAMMA]);
    out[HCGA_BNB_DBETA] = new_out_like(g, m, HCGA_BNB_DBETA, n->in[HCGA_BN_BETA]);
}

/* coef * dy summed to v's shape */
static hg_val scaled_sum_to(hg_graph *g, hg_val dy, hg_val v, double coef)
{
    hg_val t = dy;
    if (!same_shape(g, dy, v)) t = sum_to(g, dy, V(g, v)->ndim, V(g, v)->shape);
    if (coef != 1) t = binary(g, "hg_backward", HCGA_OP_ADD, t, t, coef, 0);
    return t;
}

/* An activation operand of a half conv/GEMM that autocast made by a CAST of
 * a forward value: cast that value again where the backward needs it, so
 * the half copy dies with the forward op and only the f32 value (which the
 * neighbouring f32 ops' backward keeps anyway) lives until the backward.
 * Weights (parameters) are small: their half copy is kept. */
static hg_val recast(hg_graph *g, hg_val v)
{
    const hg_value *x = V(g, v);
    if (x->kind != HGV_NODE || !hcga_dtype_is_half(x->dtype)) return v;
    const hg_node *p = g->nodes[x->producer];
    if (p->op != HCGA_OP_CAST || p->backward || V(g, p->in[0])->kind == HGV_PARAM) return v;
    return hg_cast(g, p->in[0], x->dtype);
}

static void backward_node(bw_ctx *c, const hg_node *n)
{
    hg_graph *g = c->g;
    const unsigned char *req = c->req;
    const hg_val *in = n->in;
    hg_val dy = V(g, n->out[0])->grad;
#define REQ(v) ((v) >= 0 && (v) < c->nv && req[v])

    switch (n->op) {
    case HCGA_OP_CONV2D_FWD: {
        hg_val x = in[HCGA_CONV_X], w = in[HCGA_CONV_W], b = in[HCGA_CONV_BIAS];
        if (REQ(x)) {
            hg_val ins[2] = {dy, w};
            acc(c, x, simple(g, HCGA_OP_CONV2D_BWD_DATA, &n->p, 2, ins, x));
        }
        if (REQ(w) || REQ(b)) {
            hg_val xb = recast(g, x);
            hg_node *m = node_new(g, HCGA_OP_CONV2D_BWD_FILTER);
            m->p = n->p;
            set_in(g, m, 0, xb);
            set_in(g, m, 1, dy);
            hg_val dw = new_out_like(g, m, 0, w);
            hg_val db = b >= 0 ? new_out_like(g, m, 1, b) : -1;
            acc(c, w, dw);
            if (b >= 0) acc(c, b, db);
        }
        break;
    }
    case HCGA_OP_BN_FWD_TRAIN: {
        hg_val bw[3];
        bn_bwd(g, n, dy, bw);
        acc(c, in[HCGA_BN_X], bw[HCGA_BNB_DX]);
        acc(c, in[HCGA_BN_GAMMA], bw[HCGA_BNB_DGAMMA]);
        acc(c, in[HCGA_BN_BETA], bw[HCGA_BNB_DBETA]);
        break;
    }
    case HCGA_OP_BN_FWD_FROM_STATS: {
        /* synchronised BN: BN_BWD gives this rank's sum(dy) and
         * sum(dy*xhat), which are also the gradients of beta and gamma (the
         * data-parallel all-reduce adds those over the ranks later); copies
         * of them are added over the ranks now (reduce_out) for dx, which
         * depends on every rank's part through the batch statistics */
        hg_val x = in[HCGA_BN_X], gm = in[HCGA_BN_GAMMA], bt = in[HCGA_BN_BETA];
        hg_val bw[3]; /* bw[HCGA_BNB_DX], this part's dx alone, is unused */
        bn_bwd(g, n, dy, bw);
        hg_val dg = bw[HCGA_BNB_DGAMMA], db = bw[HCGA_BNB_DBETA];
        acc(c, gm, dg);
        acc(c, bt, db);
        if (REQ(x)) {
            hg_node *k1 = node_new(g, HCGA_OP_COPY);
            set_in(g, k1, 0, db);
            hg_val sdy = new_out_like(g, k1, 0, db);
            k1->reduce_out = 1u;
            hg_node *k2 = node_new(g, HCGA_OP_COPY);
            set_in(g, k2, 0, dg);
            hg_val sdyx = new_out_like(g, k2, 0, dg);
            k2->reduce_out = 1u;
            hg_node *e = node_new(g, HCGA_OP_BN_BWD_FROM_STATS);
            e->p = n->p;
            set_in(g, e, HCGA_BNB_X, x);
            set_in(g, e, HCGA_BNB_DY, dy);
            set_in(g, e, HCGA_BNB_GAMMA, gm);
            set_in(g, e, HCGA_BNB_MEAN, n->out[HCGA_BN_SAVE_MEAN]);
            set_in(g, e, HCGA_BNB_INVSTD, n->out[HCGA_BN_SAVE_INVSTD]);
            set_in(g, e, HCGA_BNB_SUM_DY, sdy);
            set_in(g, e, HCGA_BNB_SUM_DY_XHAT, sdyx);
            acc(c, x, new_out_like(g, e, 0, x));
        }
        break;
    }
    case HCGA_OP_BN_FWD_INFER: {
        /* y = gamma*(x-rm)/sqrt(rv+eps) + beta with fixed statistics:
         *   dx     = dy * s,  s = gamma/sqrt(rv+eps) = BN_INFER(1; gamma, 0, 0, rv)
         *   dgamma = sum(dy * xhat), xhat = BN_INFER(x; 1, 0, rm, rv)
         *   dbeta  = sum(dy)  (sums over every dim but 1) */
        hg_val x = in[HCGA_BN_X], gm = in[HCGA_BN_GAMMA], bt = in[HCGA_BN_BETA];
        hg_val rm = in[HCGA_BN_RMEAN_IN], rv = in[HCGA_BN_RVAR_IN];
        double eps = n->p.bn.eps;
        int xn = V(g, x)->ndim;
        int64_t C = V(g, x)->shape[1];
        int64_t cs[4] = {1, C, 1, 1}; /* [1,C] or [1,C,1,1] */
        hg_val zc = -1;
        if (REQ(x) || REQ(gm)) zc = fill(g, 1, &C, 0);
        if (REQ(x)) {
            hg_val ones = fill(g, xn, cs, 1);
            hg_val s = bn_infer(g, ones, gm, zc, zc, rv, eps);
            acc(c, x, binary(g, "hg_backward", HCGA_OP_MUL, dy, s, 1, 0));
        }
        if (REQ(gm)) {
            hg_val onec = fill(g, 1, &C, 1);
            hg_val xhat = bn_infer(g, x, onec, zc, rm, rv, eps);
            hg_val t = binary(g, "hg_backward", HCGA_OP_MUL, dy, xhat, 1, 0);
            hg_node *m = node_new(g, HCGA_OP_SUM_TO);
            set_in(g, m, 0, t);
            acc(c, gm, new_out_view(g, m, 0, g->dtype, 1, &C, xn, cs));
        }
        if (REQ(bt)) {
            hg_node *m = node_new(g, HCGA_OP_SUM_TO);
            set_in(g, m, 0, dy);
            acc(c, bt, new_out_view(g, m, 0, g->dtype, 1, &C, xn, cs));
        }
        break;
    }
    case HCGA_OP_RELU_FWD:
    case HCGA_OP_SIGMOID_FWD:
    case HCGA_OP_SOFTMAX_FWD: {
        /* from the forward output */
        int op = n->op == HCGA_OP_RELU_FWD ? HCGA_OP_RELU_BWD
                 : n->op == HCGA_OP_SIGMOID_FWD ? HCGA_OP_SIGMOID_BWD : HCGA_OP_SOFTMAX_BWD;
        hg_val ins[2] = {n->out[0], dy};
        acc(c, in[0], simple(g, op, &n->p, 2, ins, in[0]));
        break;
    }
    case HCGA_OP_THRESH_FWD: {
        hg_val ins[2] = {in[0], dy};
        acc(c, in[0], simple(g, HCGA_OP_THRESH_BWD, &n->p, 2, ins, in[0]));
        break;
    }
    case HCGA_OP_ADD: {
        double coef[2] = {n->p.scalar.a, n->p.scalar.b};
        for (int s = 0; s < 2; s++)
            if (REQ(in[s]) && coef[s] != 0) acc(c, in[s], scaled_sum_to(g, dy, in[s], coef[s]));
        break;
    }
    case HCGA_OP_MUL: {
        double alpha = n->p.scalar.a;
        for (int s = 0; s < 2; s++) {
            if (!REQ(in[s])) continue;
            hg_val t = binary(g, "hg_backward", HCGA_OP_MUL, dy, in[1 - s], alpha, 0);
            acc(c, in[s], scaled_sum_to(g, t, in[s], 1));
        }
        break;
    }
    case HCGA_OP_UPSAMPLE_NEAREST_FWD: {
        acc(c, in[0], simple(g, HCGA_OP_UPSAMPLE_NEAREST_BWD, &n->p, 1, &dy, in[0]));
        break;
    }
    case HCGA_OP_RESIZE_BILINEAR_FWD: {
        acc(c, in[0], simple(g, HCGA_OP_RESIZE_BILINEAR_BWD, &n->p, 1, &dy, in[0]));
        break;
    }
    case HCGA_OP_GAP_FWD: {
        acc(c, in[0], simple(g, HCGA_OP_GAP_BWD, &n->p, 1, &dy, in[0]));
        break;
    }
    case HCGA_OP_CONCAT: {
        /* the forward's views (row blocks under hg_graph_set_parts) */
        hg_node *m = node_new(g, HCGA_OP_SPLIT);
        set_in_view(g, m, 0, dy, n->tout[0].ndim, n->tout[0].shape);
        hg_val d[HCGA_MAX_OP_OUT];
        for (int i = 0; i < n->num_in; i++)
            d[i] = new_out_view(g, m, i, V(g, in[i])->dtype, V(g, in[i])->ndim, V(g, in[i])->shape, n->tin[i].ndim,
                                n->tin[i].shape);
        for (int i = 0; i < n->num_in; i++) acc(c, in[i], d[i]);
        break;
    }
    case HCGA_OP_SPLIT: {
        hg_val d[HCGA_MAX_OP_IN];
        for (int i = 0; i < n->num_out; i++) {
            hg_val o = n->out[i];
            d[i] = V(g, o)->grad >= 0 ? V(g, o)->grad : fill(g, V(g, o)->ndim, V(g, o)->shape, 0);
        }
        hg_node *m = node_new(g, HCGA_OP_CONCAT);
        for (int i = 0; i < n->num_out; i++) set_in_view(g, m, i, d[i], n->tout[i].ndim, n->tout[i].shape);
        acc(c, in[0], new_out_view(g, m, 0, V(g, in[0])->dtype, V(g, in[0])->ndim, V(g, in[0])->shape,
                                   n->tin[0].ndim, n->tin[0].shape));
        break;
    }
    case HCGA_OP_GEMM: {
        hg_val a = in[0], b = in[1];
        int ta = n->p.gemm.trans_a, tb = n->p.gemm.trans_b;
        double al = n->p.gemm.alpha;
        const char *who = "hg_backward";
        if (REQ(a)) {
            hg_val da;
            b = recast(g, b);
            if (!ta) da = tb ? gemm(g, who, dy, b, 0, 0, al) : gemm(g, who, dy, b, 0, 1, al);
            else da = tb ? gemm(g, who, b, dy, 1, 1, al) : gemm(g, who, b, dy, 0, 1, al);
            acc(c, in[0], da);
        }
        if (REQ(in[1])) {
            hg_val db;
            a = recast(g, a);
            if (!tb) db = ta ? gemm(g, who, a, dy, 0, 0, al) : gemm(g, who, a, dy, 1, 0, al);
            else db = ta ? gemm(g, who, dy, a, 1, 1, al) : gemm(g, who, dy, a, 1, 0, al);
            acc(c, in[1], db); /* a and b may be recasts now: the gradients go to the inputs */
        }
        break;
    }
    case HCGA_OP_COPY: {
        acc(c, in[0], copy_as(g, dy, V(g, in[0])->ndim, V(g, in[0])->shape));
        break;
    }
    case HCGA_OP_CAST: {
        /* the gradient of a cast is the cast back to the source dtype */
        acc(c, in[0], hg_cast(g, dy, V(g, in[0])->dtype));
        break;
    }
    case HCGA_OP_REDUCE: {
        hg_val ins[2] = {in[0], dy};
        acc(c, in[0], simple(g, HCGA_OP_REDUCE_BWD, &n->p, 2, ins, in[0]));
        break;
    }
    case HCGA_OP_CE_LS_FWD:
    case HCGA_OP_PIXEL_CE_FWD: {
        hg_val ins[3] = {in[0], in[1], dy};
        int op = n->op == HCGA_OP_CE_LS_FWD ? HCGA_OP_CE_LS_BWD : HCGA_OP_PIXEL_CE_BWD;
        hg_val d = simple(g, op, &n->p, 3, ins, in[0]);
        g->nodes[g->nnodes - 1]->tin[1] = n->tin[1]; /* the labels as the forward saw them (a row block) */
        acc(c, in[0], d);
        break;
    }
    case HCGA_OP_TRIPLET_FWD: {
        hg_val ins[3] = {in[0], n->out[1], dy};
        acc(c, in[0], simple(g, HCGA_OP_TRIPLET_BWD, &n->p, 3, ins, in[0]));
        break;
    }
    case HCGA_OP_SHIFT_L1_FWD: {
        hg_val ins[2] = {in[0], dy};
        acc(c, in[0], simple(g, HCGA_OP_SHIFT_L1_BWD, &n->p, 2, ins, in[0]));
        break;
    }
    default:
        die(g, "hg_backward", "internal: no gradient rule for %s", hcga_op_name(n->op));
    }
#undef REQ
}

static int backward(hg_graph *g, const char *who, hg_val loss, hg_val seed, hg_val unscale)
{
    chkf(g, who, loss, "loss");
    if (g->backward_done) die(g, who, "called twice on the same graph");
    const hg_value *L = V(g, loss);
    if (hg__numel(L->ndim, L->shape) != 1) die(g, who, "loss %s is not a scalar", vdesc(g, loss));
    const hg_val scalars[2] = {seed, unscale};
    for (int i = 0; i < 2; i++) {
        if (scalars[i] < 0) continue;
        chkf(g, who, scalars[i], i ? "unscale" : "seed");
        if (hg__numel(V(g, scalars[i])->ndim, V(g, scalars[i])->shape) != 1)
            die(g, who, "%s %s is not a scalar", i ? "unscale" : "seed", vdesc(g, scalars[i]));
    }

    bw_ctx c;
    c.g = g;
    c.nv = g->nvals;
    c.req = xcalloc((size_t)c.nv, 1);
    int nf = g->nnodes;

    /* forward reachability from what wants a gradient */
    for (int v = 0; v < c.nv; v++) {
        const hg_value *x = V(g, v);
        if (!hcga_dtype_is_float(x->dtype)) continue;
        if (x->requested || (x->kind == HGV_PARAM && (x->flags & (HG_TRAINABLE | HG_FROZEN))))
            c.req[v] = 1;
    }
    for (int i = 0; i < nf; i++) {
        const hg_node *n = g->nodes[i];
        int any = 0;
        for (int s = 0; s < n->num_in && !any; s++)
            any = n->in[s] >= 0 && in_differentiable(n, s) && c.req[n->in[s]];
        if (!any) continue;
        for (int s = 0; s < n->num_out; s++) {
            hg_val o = n->out[s];
            if (o >= 0 && out_differentiable(n, s) && hcga_dtype_is_float(V(g, o)->dtype) &&
                V(g, o)->kind == HGV_NODE)
                c.req[o] = 1;
        }
    }

    g->backward_done = HG_IN_BACKWARD; /* nodes created from here are backward nodes */
    /* d loss / d loss = 1, or the loss scale */
    if (seed < 0) V(g, loss)->grad = fill(g, L->ndim, L->shape, 1.0);
    else if (same_shape(g, seed, loss)) V(g, loss)->grad = seed;
    else V(g, loss)->grad = copy_as(g, seed, L->ndim, L->shape);

    for (int i = nf - 1; i >= 0; i--) {
        const hg_node *n = g->nodes[i];
        int has_dy = 0, need = 0;
        for (int s = 0; s < n->num_out; s++)
            if (n->out[s] >= 0 && out_differentiable(n, s) && V(g, n->out[s])->grad >= 0) has_dy = 1;
        for (int s = 0; s < n->num_in; s++)
            if (n->in[s] >= 0 && in_differentiable(n, s) && c.req[n->in[s]]) need = 1;
        if (!has_dy || !need) continue;
        /* single-output rules read out[0]'s gradient; SPLIT handles missing ones */
        if (n->op != HCGA_OP_SPLIT && V(g, n->out[0])->grad < 0) continue;
        backward_node(&c, n);
    }

    for (int v = 0; v < c.nv; v++) {
        const hg_value *x = V(g, v);
        if (x->kind == HGV_PARAM && (x->flags & (HG_TRAINABLE | HG_FROZEN)) && x->grad >= 0) {
            if (unscale >= 0) {
                hg_val raw = x->grad;
                V(g, v)->grad = binary(g, who, HCGA_OP_MUL, raw, unscale, 1, 0);
            }
            hg_value *gv = V(g, x->grad);
            gv->persistent_grad = 1;
            if (!gv->out_name && strlen(x->name) < 250) { /* for messages */
                char nm[256];
                snprintf(nm, sizeof nm, "grad.%s", x->name);
                gv->out_name = xstrdup(nm);
            }
        }
    }
    free(c.req);
    g->backward_done = HG_BACKWARD_DONE;
    return 0;
}

int hg_backward(hg_graph *g, hg_val loss) { return backward(g, "hg_backward", loss, -1, -1); }

int hg_backward_scaled(hg_graph *g, hg_val loss, hg_val seed, hg_val unscale)
{
    chkv(g, "hg_backward_scaled", seed, "seed");
    return backward(g, "hg_backward_scaled", loss, seed, unscale);
}

hg_val hg_grad_check(hg_graph *g)
{
    const char *who = "hg_grad_check";
    if (g->backward_done != HG_BACKWARD_DONE) die(g, who, "call hg_backward first");
    hg_val sum = -1;
    for (int v = 0; v < g->nvals; v++) {
        const hg_value *x = V(g, v);
        if (x->kind != HGV_PARAM || !(x->flags & (HG_TRAINABLE | HG_FROZEN)) || x->grad < 0) continue;
        hg_val r = hg_reduce(g, x->grad, HCGA_REDUCE_ABS_MEAN);
        sum = sum < 0 ? r : binary(g, who, HCGA_OP_ADD, sum, r, 1, 1);
    }
    return sum;
}

hg_val hg_grad(const hg_graph *g, hg_val v)
{
    if (v < 0 || v >= g->nvals) return -1;
    return V(g, v)->grad;
}

/* ---- introspection ------------------------------------------------------- */

int hg_num_nodes(const hg_graph *g) { return g->nnodes; }

void hg_node_args(const hg_graph *g, int node, hcga_op_args *args)
{
    if (node < 0 || node >= g->nnodes) die(g, "hg_node_args", "node %d out of range 0..%d", node, g->nnodes - 1);
    const hg_node *n = g->nodes[node];
    memset(args, 0, sizeof *args);
    args->op = n->op;
    args->num_in = n->num_in;
    args->num_out = n->num_out;
    for (int i = 0; i < n->num_in; i++) args->in[i] = n->in[i] >= 0 ? &n->tin[i] : NULL;
    for (int i = 0; i < n->num_out; i++) args->out[i] = n->out[i] >= 0 ? &n->tout[i] : NULL;
    args->p = n->p;
}
