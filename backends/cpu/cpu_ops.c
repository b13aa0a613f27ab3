/*
 * cpu_ops.c - every op of hcga_plugin.h for the CPU backend: argument
 * validation (slots, dtypes, shapes, parameters, buffer bounds, aliasing)
 * and dispatch to the f32 / f64 instantiations of cpu_kernels.h.
 *
 * Every failure returns HCGA_ERR_INVALID (or NOMEM) with a one-line message
 * "<op>: <problem>" in last_error().
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

#define T float
#define SFX f32
#define CPU_GEMM cblas_sgemm
#include "cpu_kernels.h"
#undef T
#undef SFX
#undef CPU_GEMM

#define T double
#define SFX f64
#define CPU_GEMM cblas_dgemm
#include "cpu_kernels.h"
#undef T
#undef SFX
#undef CPU_GEMM

/* Calls name_f32(...) or name_f64(...) by dtype. */
#define DISPATCH(dt, name, ...) ((dt) == HCGA_F32 ? name##_f32(__VA_ARGS__) : name##_f64(__VA_ARGS__))
/* The f32 or f64 task function by dtype. */
#define PICK(dt, name) ((dt) == HCGA_F32 ? name##_f32 : name##_f64)

#define TRY(e)                                                                                     \
    do {                                                                                           \
        hcga_status st_ = (e);                                                                     \
        if (st_ != HCGA_OK) return st_;                                                            \
    } while (0)
#define BAD(...) return cpu_fail(v->be, HCGA_ERR_INVALID, __VA_ARGS__)

/* ======================================================================= */
/* Validation helpers                                                      */
/* ======================================================================= */

typedef struct V {
    hcga_backend *be;
    const hcga_op_args *a;
    const char *op;
    int dt; /* the op's floating dtype, -1 until the first float tensor */
} V;

enum { K_FLOAT, K_I64, K_ANY };

static const char *shp(const hcga_tensor *t, char *buf, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static hcga_status v_begin(V *v, hcga_backend *be, const hcga_op_args *a, int op, int nin_min,
                           int nin_max, int nout_min, int nout_max)
{
    v->be = be;
    v->a = a;
    v->op = hcga_op_name(op);
    v->dt = -1;
    if (!be) return HCGA_ERR_INVALID;
    if (!a) BAD("%s: called with NULL args", v->op);
    if (a->op != op)
        BAD("%s: args.op is %d (%s) but the %s entry of the op table was called", v->op, a->op,
            hcga_op_name(a->op), v->op);
    if (a->num_in < nin_min || a->num_in > nin_max)
        BAD("%s: num_in is %d, expected %d..%d", v->op, a->num_in, nin_min, nin_max);
    if (a->num_out < nout_min || a->num_out > nout_max)
        BAD("%s: num_out is %d, expected %d..%d", v->op, a->num_out, nout_min, nout_max);
    return HCGA_OK;
}

static int is_dense(const hcga_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

/* Byte range [lo, hi) a tensor touches (lo == hi when empty). */
static void t_range(const hcga_tensor *t, uint64_t *lo, uint64_t *hi)
{
    int64_t esz = (int64_t)hcga_dtype_size(t->dtype);
    int64_t mn = 0, mx = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) {
            *lo = *hi = t->offset;
            return;
        }
        int64_t e = (t->shape[i] - 1) * t->stride[i];
        if (e < 0)
            mn += e;
        else
            mx += e;
    }
    *lo = (uint64_t)((int64_t)t->offset + mn * esz);
    *hi = (uint64_t)((int64_t)t->offset + (mx + 1) * esz);
}

/* Structural checks: buffer, dtype, dims, strides, bounds. */
static hcga_status v_tensor(V *v, const hcga_tensor *t, const char *name, int dense)
{
    if (!t->buf) BAD("%s: %s has no buffer", v->op, name);
    if (t->dtype < 0 || t->dtype >= HCGA_DTYPE_COUNT)
        BAD("%s: %s has unknown dtype %d", v->op, name, t->dtype);
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS)
        BAD("%s: %s has ndim %d (0..%d allowed)", v->op, name, t->ndim, HCGA_MAX_DIMS);
    const int64_t esz = (int64_t)hcga_dtype_size(t->dtype);
    int64_t numel = 1;
    int64_t mn = 0, mx = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            BAD("%s: %s has negative dim %d (%lld)", v->op, name, i, (long long)t->shape[i]);
        if (t->shape[i] > ((int64_t)1 << 40))
            BAD("%s: %s dim %d (%lld) is too large", v->op, name, i, (long long)t->shape[i]);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel) || numel > ((int64_t)1 << 50))
            BAD("%s: %s has too many elements", v->op, name);
    }
    if (dense && !is_dense(t)) {
        char b[96];
        BAD("%s: %s %s is not dense C-contiguous (only copy accepts strided tensors)", v->op, name,
            shp(t, b, sizeof b));
    }
    if (t->offset % (uint64_t)esz)
        BAD("%s: %s offset %llu is not a multiple of its element size %lld", v->op, name,
            (unsigned long long)t->offset, (long long)esz);
    if (t->offset > t->buf->size)
        BAD("%s: %s offset %llu is beyond its buffer (%llu bytes)", v->op, name,
            (unsigned long long)t->offset, (unsigned long long)t->buf->size);
    if (numel == 0) return HCGA_OK;
    for (int i = 0; i < t->ndim; i++) {
        int64_t e;
        if (t->stride[i] > ((int64_t)1 << 50) || t->stride[i] < -((int64_t)1 << 50) ||
            __builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &e))
            BAD("%s: %s stride %d (%lld) is out of range", v->op, name, i,
                (long long)t->stride[i]);
        if (e < 0)
            mn += e;
        else
            mx += e;
    }
    if ((int64_t)t->offset + mn * esz < 0)
        BAD("%s: %s reaches before the start of its buffer", v->op, name);
    if ((uint64_t)((int64_t)t->offset + (mx + 1) * esz) > t->buf->size) {
        char b[96];
        BAD("%s: %s %s at offset %llu overruns its buffer of %llu bytes", v->op, name,
            shp(t, b, sizeof b), (unsigned long long)t->offset, (unsigned long long)t->buf->size);
    }
    return HCGA_OK;
}

static hcga_status v_kind(V *v, const hcga_tensor *t, const char *name, int kind)
{
    if (kind == K_FLOAT) {
        if (t->dtype != HCGA_F32 && t->dtype != HCGA_F64)
            BAD("%s: %s has dtype %s, expected f32 or f64", v->op, name, hcga_dtype_name(t->dtype));
        if (v->dt < 0)
            v->dt = t->dtype;
        else if (t->dtype != v->dt)
            BAD("%s: %s has dtype %s but the op's other float tensors are %s", v->op, name,
                hcga_dtype_name(t->dtype), hcga_dtype_name(v->dt));
    } else if (kind == K_I64) {
        if (t->dtype != HCGA_I64)
            BAD("%s: %s has dtype %s, expected i64", v->op, name, hcga_dtype_name(t->dtype));
    }
    return HCGA_OK;
}

/* Fetches a slot: required (opt == 0) or optional. */
static hcga_status v_slot(V *v, int is_out, int slot, const char *name, int kind, int opt,
                          const hcga_tensor **out)
{
    int count = is_out ? v->a->num_out : v->a->num_in;
    const hcga_tensor *t = slot < count ? (is_out ? v->a->out[slot] : v->a->in[slot]) : NULL;
    *out = t;
    if (!t) {
        if (opt) return HCGA_OK;
        BAD("%s: %s (%s[%d]) is missing", v->op, name, is_out ? "out" : "in", slot);
    }
    TRY(v_tensor(v, t, name, 1));
    return v_kind(v, t, name, kind);
}

#define IN(slot, name, kind, var) TRY(v_slot(v, 0, (slot), (name), (kind), 0, &(var)))
#define OUT(slot, name, kind, var) TRY(v_slot(v, 1, (slot), (name), (kind), 0, &(var)))
#define OPT_IN(slot, name, kind, var) TRY(v_slot(v, 0, (slot), (name), (kind), 1, &(var)))
#define OPT_OUT(slot, name, kind, var) TRY(v_slot(v, 1, (slot), (name), (kind), 1, &(var)))

static hcga_status v_shape(V *v, const hcga_tensor *t, const char *name, int nd,
                           const int64_t *dims)
{
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char b1[96], b2[96];
        hcga_tensor e = {0};
        e.ndim = nd;
        for (int i = 0; i < nd; i++) e.shape[i] = dims[i];
        BAD("%s: %s has shape %s, expected %s", v->op, name, shp(t, b1, sizeof b1),
            shp(&e, b2, sizeof b2));
    }
    return HCGA_OK;
}

#define SHAPE(t, name, ...)                                                                        \
    do {                                                                                           \
        const int64_t d_[] = {__VA_ARGS__};                                                        \
        TRY(v_shape(v, (t), (name), (int)(sizeof d_ / sizeof d_[0]), d_));                         \
    } while (0)

static hcga_status v_same(V *v, const hcga_tensor *t, const char *name, const hcga_tensor *ref,
                          const char *refname)
{
    int ok = t->ndim == ref->ndim;
    for (int i = 0; ok && i < t->ndim; i++) ok = t->shape[i] == ref->shape[i];
    if (!ok) {
        char b1[96], b2[96];
        BAD("%s: %s has shape %s but %s has %s", v->op, name, shp(t, b1, sizeof b1), refname,
            shp(ref, b2, sizeof b2));
    }
    return HCGA_OK;
}

static hcga_status v_ndim(V *v, const hcga_tensor *t, const char *name, int nd, const char *layout)
{
    if (t->ndim != nd) {
        char b[96];
        BAD("%s: %s must be %d-D %s, got %s", v->op, name, nd, layout, shp(t, b, sizeof b));
    }
    return HCGA_OK;
}

static hcga_status v_scalar(V *v, const hcga_tensor *t, const char *name)
{
    if (hcga_tensor_numel(t) != 1) {
        char b[96];
        BAD("%s: %s must be a scalar ([1]), got %s", v->op, name, shp(t, b, sizeof b));
    }
    return HCGA_OK;
}

static int overlaps(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf) return 0;
    uint64_t a0, a1, b0, b1;
    t_range(x, &a0, &a1);
    t_range(y, &b0, &b1);
    if (a0 == a1 || b0 == b1) return 0;
    return a0 < b1 && b0 < a1;
}

static int same_view(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf || x->offset != y->offset || x->dtype != y->dtype || x->ndim != y->ndim)
        return 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i] || (x->shape[i] != 1 && x->stride[i] != y->stride[i]))
            return 0;
    return 1;
}

/* Outputs must not overlap inputs (except an identical view when
 * allow_exact) nor each other. */
static hcga_status v_noalias(V *v, int allow_exact)
{
    const hcga_op_args *a = v->a;
    for (int o = 0; o < a->num_out; o++) {
        const hcga_tensor *y = a->out[o];
        if (!y) continue;
        for (int i = 0; i < a->num_in; i++) {
            const hcga_tensor *x = a->in[i];
            if (!x || !overlaps(x, y)) continue;
            if (allow_exact && same_view(x, y)) continue;
            BAD("%s: out[%d] overlaps in[%d] in the same buffer", v->op, o, i);
        }
        for (int p = 0; p < o; p++)
            if (a->out[p] && overlaps(a->out[p], y))
                BAD("%s: out[%d] overlaps out[%d] in the same buffer", v->op, o, p);
    }
    return HCGA_OK;
}

static hcga_status v_finite(V *v, double x, const char *name)
{
    if (!isfinite(x)) BAD("%s: parameter %s is not finite (%g)", v->op, name, x);
    return HCGA_OK;
}

/* Reads a scalar tensor as double. */
static double scalar_val(const hcga_tensor *t)
{
    return t->dtype == HCGA_F32 ? (double)*(const float *)cpu_ptr(t) : *(const double *)cpu_ptr(t);
}

static void write_scalar(const hcga_tensor *t, double x)
{
    if (t->dtype == HCGA_F32)
        *(float *)cpu_ptr(t) = (float)x;
    else
        *(double *)cpu_ptr(t) = x;
}

/* ======================================================================= */
/* Convolution                                                             */
/* ======================================================================= */

/* img = x or dx [N,C,H,W]; res = y or dy [N,K,P,Q]. */
static hcga_status v_conv(V *v, const hcga_tensor *img, const char *iname, const hcga_tensor *w,
                          const hcga_tensor *res, const char *rname, cpu_conv_dims *d)
{
    const hcga_conv_params *p = &v->a->p.conv;
    TRY(v_ndim(v, img, iname, 4, "[N,C,H,W]"));
    TRY(v_ndim(v, w, "w", 4, "[K,C,R,S]"));
    TRY(v_ndim(v, res, rname, 4, "[N,K,P,Q]"));
    if (p->stride_h < 1 || p->stride_w < 1)
        BAD("%s: stride (%d,%d) must be >= 1", v->op, p->stride_h, p->stride_w);
    if (p->dilation_h < 1 || p->dilation_w < 1)
        BAD("%s: dilation (%d,%d) must be >= 1", v->op, p->dilation_h, p->dilation_w);
    if (p->pad_h < 0 || p->pad_w < 0)
        BAD("%s: padding (%d,%d) must be >= 0", v->op, p->pad_h, p->pad_w);
    d->N = img->shape[0];
    d->C = img->shape[1];
    d->H = img->shape[2];
    d->W = img->shape[3];
    d->K = w->shape[0];
    d->R = w->shape[2];
    d->S = w->shape[3];
    d->sh = p->stride_h;
    d->sw = p->stride_w;
    d->ph = p->pad_h;
    d->pw = p->pad_w;
    d->dh = p->dilation_h;
    d->dw = p->dilation_w;
    if (w->shape[1] != d->C)
        BAD("%s: w has %lld input channels but %s has C=%lld", v->op, (long long)w->shape[1],
            iname, (long long)d->C);
    if (d->C < 1 || d->K < 1 || d->R < 1 || d->S < 1 || d->H < 1 || d->W < 1)
        BAD("%s: C, K, R, S, H, W must all be >= 1", v->op);
    int64_t ph = d->H + 2 * d->ph - d->dh * (d->R - 1) - 1;
    int64_t pw = d->W + 2 * d->pw - d->dw * (d->S - 1) - 1;
    if (ph < 0 || pw < 0)
        BAD("%s: the %lldx%lld filter (dilation %lld,%lld) is larger than the padded %lldx%lld input",
            v->op, (long long)d->R, (long long)d->S, (long long)d->dh, (long long)d->dw,
            (long long)(d->H + 2 * d->ph), (long long)(d->W + 2 * d->pw));
    d->P = ph / d->sh + 1;
    d->Q = pw / d->sw + 1;
    if (d->P > INT_MAX / 2 || d->Q > INT_MAX / 2)
        BAD("%s: output size %lldx%lld is too large", v->op, (long long)d->P, (long long)d->Q);
    const int64_t want[4] = {d->N, d->K, d->P, d->Q};
    TRY(v_shape(v, res, rname, 4, want));
    if (d->C * d->R * d->S > INT_MAX / 2 || d->P * d->Q > INT_MAX / 2 || d->K > INT_MAX / 2)
        BAD("%s: the problem is too large for 32-bit BLAS dimensions", v->op);
    return HCGA_OK;
}

static hcga_status op_conv2d_fwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_CONV2D_FWD, 2, 3, 1, 1));
    const hcga_tensor *x, *w, *b, *y;
    IN(HCGA_CONV_X, "x", K_FLOAT, x);
    IN(HCGA_CONV_W, "w", K_FLOAT, w);
    OPT_IN(HCGA_CONV_BIAS, "bias", K_FLOAT, b);
    OUT(0, "y", K_FLOAT, y);
    cpu_conv_dims d;
    TRY(v_conv(v, x, "x", w, y, "y", &d));
    if (b) SHAPE(b, "bias", d.K);
    TRY(v_noalias(v, 0));
    return DISPATCH(v->dt, conv_fwd, be, &d, cpu_ptr(x), cpu_ptr(w), b ? cpu_ptr(b) : NULL,
                    cpu_ptr(y));
}

static hcga_status op_conv2d_bwd_data(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_CONV2D_BWD_DATA, 2, 2, 1, 1));
    const hcga_tensor *dy, *w, *dx;
    IN(0, "dy", K_FLOAT, dy);
    IN(1, "w", K_FLOAT, w);
    OUT(0, "dx", K_FLOAT, dx);
    cpu_conv_dims d;
    TRY(v_conv(v, dx, "dx", w, dy, "dy", &d));
    TRY(v_noalias(v, 0));
    return DISPATCH(v->dt, conv_bwd_data, be, &d, cpu_ptr(dy), cpu_ptr(w), cpu_ptr(dx));
}

static hcga_status op_conv2d_bwd_filter(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_CONV2D_BWD_FILTER, 2, 2, 1, 2));
    const hcga_tensor *x, *dy, *dw, *db;
    IN(0, "x", K_FLOAT, x);
    IN(1, "dy", K_FLOAT, dy);
    OUT(0, "dw", K_FLOAT, dw);
    OPT_OUT(1, "dbias", K_FLOAT, db);
    cpu_conv_dims d;
    TRY(v_conv(v, x, "x", dw, dy, "dy", &d));
    if (db) SHAPE(db, "dbias", d.K);
    TRY(v_noalias(v, 0));
    return DISPATCH(v->dt, conv_bwd_filter, be, &d, cpu_ptr(x), cpu_ptr(dy), cpu_ptr(dw),
                    db ? cpu_ptr(db) : NULL);
}

/* ======================================================================= */
/* Batch normalisation                                                     */
/* ======================================================================= */

static hcga_status v_bn_x(V *v, const hcga_tensor *x, const char *name, int64_t *N, int64_t *C,
                          int64_t *HW)
{
    if (x->ndim != 2 && x->ndim != 4) {
        char b[96];
        BAD("%s: %s must be [N,C] or [N,C,H,W], got %s", v->op, name, shp(x, b, sizeof b));
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *HW = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    const hcga_bn_params *p = &v->a->p.bn;
    TRY(v_finite(v, p->eps, "bn.eps"));
    TRY(v_finite(v, p->momentum, "bn.momentum"));
    if (p->eps < 0) BAD("%s: bn.eps (%g) must be >= 0", v->op, p->eps);
    return HCGA_OK;
}

static hcga_status op_bn_fwd_train(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_BN_FWD_TRAIN, 3, 3, 5, 5));
    const hcga_tensor *x, *g, *b, *y, *sm, *si, *rm, *rv;
    IN(HCGA_BN_X, "x", K_FLOAT, x);
    IN(HCGA_BN_GAMMA, "gamma", K_FLOAT, g);
    IN(HCGA_BN_BETA, "beta", K_FLOAT, b);
    OUT(HCGA_BN_Y, "y", K_FLOAT, y);
    OUT(HCGA_BN_SAVE_MEAN, "save_mean", K_FLOAT, sm);
    OUT(HCGA_BN_SAVE_INVSTD, "save_invstd", K_FLOAT, si);
    OUT(HCGA_BN_RMEAN, "running_mean", K_FLOAT, rm);
    OUT(HCGA_BN_RVAR, "running_var", K_FLOAT, rv);
    int64_t N, C, HW;
    TRY(v_bn_x(v, x, "x", &N, &C, &HW));
    TRY(v_same(v, y, "y", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(b, "beta", C);
    SHAPE(sm, "save_mean", C);
    SHAPE(si, "save_invstd", C);
    SHAPE(rm, "running_mean", C);
    SHAPE(rv, "running_var", C);
    if (C > 0 && N * HW < 2)
        BAD("%s: needs more than 1 value per channel in training (N*H*W = %lld)", v->op,
            (long long)(N * HW));
    TRY(v_noalias(v, 1));
    bn_ctx c = {.x = cpu_ptr(x), .gamma = cpu_ptr(g), .beta = cpu_ptr(b), .y = cpu_ptr(y),
                .save_mean = cpu_ptr(sm), .save_invstd = cpu_ptr(si), .out_rm = cpu_ptr(rm),
                .out_rv = cpu_ptr(rv), .N = N, .C = C, .HW = HW, .eps = a->p.bn.eps,
                .momentum = a->p.bn.momentum};
    DISPATCH(v->dt, bn, be, 0, &c);
    return HCGA_OK;
}

static hcga_status op_bn_fwd_infer(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_BN_FWD_INFER, 5, 5, 1, 1));
    const hcga_tensor *x, *g, *b, *rm, *rv, *y;
    IN(HCGA_BN_X, "x", K_FLOAT, x);
    IN(HCGA_BN_GAMMA, "gamma", K_FLOAT, g);
    IN(HCGA_BN_BETA, "beta", K_FLOAT, b);
    IN(HCGA_BN_RMEAN_IN, "running_mean", K_FLOAT, rm);
    IN(HCGA_BN_RVAR_IN, "running_var", K_FLOAT, rv);
    OUT(0, "y", K_FLOAT, y);
    int64_t N, C, HW;
    TRY(v_bn_x(v, x, "x", &N, &C, &HW));
    TRY(v_same(v, y, "y", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(b, "beta", C);
    SHAPE(rm, "running_mean", C);
    SHAPE(rv, "running_var", C);
    TRY(v_noalias(v, 1));
    bn_ctx c = {.x = cpu_ptr(x), .gamma = cpu_ptr(g), .beta = cpu_ptr(b), .rm = cpu_ptr(rm),
                .rv = cpu_ptr(rv), .y = cpu_ptr(y), .N = N, .C = C, .HW = HW,
                .eps = a->p.bn.eps};
    DISPATCH(v->dt, bn, be, 1, &c);
    return HCGA_OK;
}

static hcga_status op_bn_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_BN_BWD, 5, 5, 3, 3));
    const hcga_tensor *x, *dy, *g, *m, *is, *dx, *dg, *db;
    IN(HCGA_BNB_X, "x", K_FLOAT, x);
    IN(HCGA_BNB_DY, "dy", K_FLOAT, dy);
    IN(HCGA_BNB_GAMMA, "gamma", K_FLOAT, g);
    IN(HCGA_BNB_MEAN, "save_mean", K_FLOAT, m);
    IN(HCGA_BNB_INVSTD, "save_invstd", K_FLOAT, is);
    OUT(HCGA_BNB_DX, "dx", K_FLOAT, dx);
    OUT(HCGA_BNB_DGAMMA, "dgamma", K_FLOAT, dg);
    OUT(HCGA_BNB_DBETA, "dbeta", K_FLOAT, db);
    int64_t N, C, HW;
    TRY(v_bn_x(v, x, "x", &N, &C, &HW));
    TRY(v_same(v, dy, "dy", x, "x"));
    TRY(v_same(v, dx, "dx", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(m, "save_mean", C);
    SHAPE(is, "save_invstd", C);
    SHAPE(dg, "dgamma", C);
    SHAPE(db, "dbeta", C);
    if (C > 0 && N * HW < 1) BAD("%s: x has no values per channel", v->op);
    TRY(v_noalias(v, 1));
    bn_ctx c = {.x = cpu_ptr(x), .dy = cpu_ptr(dy), .gamma = cpu_ptr(g), .mean = cpu_ptr(m),
                .invstd = cpu_ptr(is), .dx = cpu_ptr(dx), .dgamma = cpu_ptr(dg),
                .dbeta = cpu_ptr(db), .N = N, .C = C, .HW = HW};
    DISPATCH(v->dt, bn, be, 2, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Elementwise                                                             */
/* ======================================================================= */

/* One input (x) or two (first, second) of the same shape, one output. */
static hcga_status ew_op(hcga_backend *be, const hcga_op_args *a, int op, int kind,
                         const char *n0, const char *n1, const char *nout, double s)
{
    V vv, *v = &vv;
    int nin = n1 ? 2 : 1;
    TRY(v_begin(v, be, a, op, nin, nin, 1, 1));
    const hcga_tensor *x0, *x1 = NULL, *y;
    IN(0, n0, K_FLOAT, x0);
    if (n1) IN(1, n1, K_FLOAT, x1);
    OUT(0, nout, K_FLOAT, y);
    if (x1) TRY(v_same(v, x1, n1, x0, n0));
    TRY(v_same(v, y, nout, x0, n0));
    TRY(v_noalias(v, 1));
    if (kind == EW_THR_F || kind == EW_THR_B) TRY(v_finite(v, s, "scalar.a (threshold)"));
    DISPATCH(v->dt, ew, be, kind, cpu_ptr(x0), x1 ? cpu_ptr(x1) : NULL, cpu_ptr(y),
             hcga_tensor_numel(x0), s);
    return HCGA_OK;
}

static hcga_status op_relu_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_RELU_FWD, EW_RELU_F, "x", NULL, "y", 0);
}
static hcga_status op_relu_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_RELU_BWD, EW_RELU_B, "y", "dy", "dx", 0);
}
static hcga_status op_sigmoid_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_SIGMOID_FWD, EW_SIG_F, "x", NULL, "y", 0);
}
static hcga_status op_sigmoid_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_SIGMOID_BWD, EW_SIG_B, "y", "dy", "dx", 0);
}
static hcga_status op_thresh_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_THRESH_FWD, EW_THR_F, "x", NULL, "y", a ? a->p.scalar.a : 0);
}
static hcga_status op_thresh_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return ew_op(be, a, HCGA_OP_THRESH_BWD, EW_THR_B, "x", "dy", "dx", a ? a->p.scalar.a : 0);
}

static hcga_status binary_op(hcga_backend *be, const hcga_op_args *a, int op, int mul)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, op, 2, 2, 1, 1));
    const hcga_tensor *ta, *tb, *y;
    IN(0, "a", K_FLOAT, ta);
    IN(1, "b", K_FLOAT, tb);
    OUT(0, "y", K_FLOAT, y);
    TRY(v_finite(v, a->p.scalar.a, "scalar.a (alpha)"));
    if (!mul) TRY(v_finite(v, a->p.scalar.b, "scalar.b (beta)"));
    const hcga_tensor *ins[2] = {ta, tb};
    const char *nm[2] = {"a", "b"};
    for (int k = 0; k < 2; k++) {
        if (ins[k]->ndim != y->ndim) {
            char b1[96], b2[96];
            BAD("%s: %s %s and y %s must have the same ndim", v->op, nm[k],
                shp(ins[k], b1, sizeof b1), shp(y, b2, sizeof b2));
        }
        for (int i = 0; i < y->ndim; i++)
            if (ins[k]->shape[i] != y->shape[i] && ins[k]->shape[i] != 1) {
                char b1[96], b2[96];
                BAD("%s: %s %s does not broadcast to y %s (dim %d)", v->op, nm[k],
                    shp(ins[k], b1, sizeof b1), shp(y, b2, sizeof b2), i);
            }
    }
    TRY(v_noalias(v, 1));
    if (hcga_tensor_numel(y) == 0) return HCGA_OK;
    /* coalesce: drop size-1 dims of y, merge compatible neighbours */
    bin_ctx c = {.mul = mul, .a = cpu_ptr(ta), .b = cpu_ptr(tb), .y = cpu_ptr(y),
                 .alpha = a->p.scalar.a, .beta = mul ? 0 : a->p.scalar.b};
    int64_t da[HCGA_MAX_DIMS], db[HCGA_MAX_DIMS], dy[HCGA_MAX_DIMS];
    int64_t sa = 1, sb = 1, sy = 1;
    for (int i = y->ndim - 1; i >= 0; i--) {
        da[i] = ta->shape[i] == 1 ? 0 : sa;
        db[i] = tb->shape[i] == 1 ? 0 : sb;
        dy[i] = sy;
        sa *= ta->shape[i];
        sb *= tb->shape[i];
        sy *= y->shape[i];
    }
    int nd = 0;
    for (int i = 0; i < y->ndim; i++) {
        if (y->shape[i] == 1) continue;
        if (nd > 0 && c.sa[nd - 1] == da[i] * y->shape[i] && c.sb[nd - 1] == db[i] * y->shape[i] &&
            c.sy[nd - 1] == dy[i] * y->shape[i]) {
            c.len[nd - 1] *= y->shape[i];
            c.sa[nd - 1] = da[i];
            c.sb[nd - 1] = db[i];
            c.sy[nd - 1] = dy[i];
            continue;
        }
        c.len[nd] = y->shape[i];
        c.sa[nd] = da[i];
        c.sb[nd] = db[i];
        c.sy[nd] = dy[i];
        nd++;
    }
    if (nd == 0) {
        c.len[0] = 1;
        c.sa[0] = c.sb[0] = c.sy[0] = 1;
        nd = 1;
    }
    c.nd = nd;
    c.rows = 1;
    for (int i = 0; i < nd - 1; i++) c.rows *= c.len[i];
    DISPATCH(v->dt, binary, be, &c);
    return HCGA_OK;
}

static hcga_status op_add(hcga_backend *be, const hcga_op_args *a)
{
    return binary_op(be, a, HCGA_OP_ADD, 0);
}
static hcga_status op_mul(hcga_backend *be, const hcga_op_args *a)
{
    return binary_op(be, a, HCGA_OP_MUL, 1);
}

static hcga_status op_sum_to(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_SUM_TO, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "y", K_FLOAT, y);
    if (x->ndim != y->ndim) {
        char b1[96], b2[96];
        BAD("%s: y %s must have the ndim of x %s", v->op, shp(y, b1, sizeof b1),
            shp(x, b2, sizeof b2));
    }
    for (int i = 0; i < x->ndim; i++)
        if (y->shape[i] != x->shape[i] && y->shape[i] != 1) {
            char b1[96], b2[96];
            BAD("%s: y %s dim %d is neither x's (%s) nor 1", v->op, shp(y, b1, sizeof b1), i,
                shp(x, b2, sizeof b2));
        }
    TRY(v_noalias(v, 1));
    if (hcga_tensor_numel(x) == 0) {
        DISPATCH(v->dt, ew, be, EW_FILL, NULL, NULL, cpu_ptr(y), hcga_tensor_numel(y), 0.0);
        return HCGA_OK;
    }
    /* groups of consecutive non-trivial dims with the same kept flag */
    int64_t glen[HCGA_MAX_DIMS], gxs[HCGA_MAX_DIMS];
    int gkept[HCGA_MAX_DIMS], ng = 0;
    int64_t xs[HCGA_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->shape[i];
    }
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1) continue;
        int kept = y->shape[i] == x->shape[i];
        if (ng > 0 && gkept[ng - 1] == kept) {
            glen[ng - 1] *= x->shape[i];
            gxs[ng - 1] = xs[i];
            continue;
        }
        glen[ng] = x->shape[i];
        gxs[ng] = xs[i];
        gkept[ng] = kept;
        ng++;
    }
    sumto_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y)};
    if (ng == 0) {
        glen[0] = 1;
        gxs[0] = 1;
        gkept[0] = 1;
        ng = 1;
    }
    c.last_kept = gkept[ng - 1];
    c.L = glen[ng - 1];
    for (int i = 0; i < ng - 1; i++) {
        if (gkept[i]) {
            c.ko_len[c.nko] = glen[i];
            c.ko_xs[c.nko++] = gxs[i];
        } else {
            c.rd_len[c.nrd] = glen[i];
            c.rd_xs[c.nrd++] = gxs[i];
        }
    }
    c.O = 1;
    for (int i = 0; i < c.nko; i++) c.O *= c.ko_len[i];
    c.R = 1;
    for (int i = 0; i < c.nrd; i++) c.R *= c.rd_len[i];
    c.nch = (c.L + CPU_VEC_CHUNK - 1) / CPU_VEC_CHUNK;
    DISPATCH(v->dt, sum_to, be, &c);
    return HCGA_OK;
}

/* ---- COPY (strided, with f32 <-> f64 conversion) ---- */

typedef struct copy_ctx {
    const char *x;
    char *y;
    int xdt, ydt;
    int nd;
    int64_t len[HCGA_MAX_DIMS], xs[HCGA_MAX_DIMS], ys[HCGA_MAX_DIMS]; /* in bytes */
    int64_t rows;
} copy_ctx;

static void copy_task(void *vc, int64_t r0, int64_t r1, int tid)
{
    (void)tid;
    const copy_ctx *c = vc;
    const int nd = c->nd;
    const int64_t L = c->len[nd - 1], ix = c->xs[nd - 1], iy = c->ys[nd - 1];
    const size_t xe = hcga_dtype_size(c->xdt), ye = hcga_dtype_size(c->ydt);
    for (int64_t r = r0; r < r1; r++) {
        int64_t ox = 0, oy = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t idx = rem % c->len[d];
            rem /= c->len[d];
            ox += idx * c->xs[d];
            oy += idx * c->ys[d];
        }
        const char *px = c->x + ox;
        char *py = c->y + oy;
        if (c->xdt == c->ydt) {
            if (ix == (int64_t)xe && iy == (int64_t)ye)
                memmove(py, px, (size_t)L * xe);
            else
                for (int64_t j = 0; j < L; j++) memmove(py + j * iy, px + j * ix, xe);
        } else if (c->xdt == HCGA_F32) {
            for (int64_t j = 0; j < L; j++) {
                float f;
                memcpy(&f, px + j * ix, sizeof f);
                double dv = f;
                memcpy(py + j * iy, &dv, sizeof dv);
            }
        } else {
            for (int64_t j = 0; j < L; j++) {
                double dv;
                memcpy(&dv, px + j * ix, sizeof dv);
                float f = (float)dv;
                memcpy(py + j * iy, &f, sizeof f);
            }
        }
    }
}

static hcga_status op_copy(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_COPY, 1, 1, 1, 1));
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    if (!x) BAD("%s: x (in[0]) is missing", v->op);
    if (!y) BAD("%s: y (out[0]) is missing", v->op);
    TRY(v_tensor(v, x, "x", 0));
    TRY(v_tensor(v, y, "y", 0));
    TRY(v_same(v, y, "y", x, "x"));
    int fx = x->dtype == HCGA_F32 || x->dtype == HCGA_F64;
    int fy = y->dtype == HCGA_F32 || y->dtype == HCGA_F64;
    if (x->dtype != y->dtype && !(fx && fy))
        BAD("%s: cannot convert %s to %s (only f32 <-> f64)", v->op, hcga_dtype_name(x->dtype),
            hcga_dtype_name(y->dtype));
    if (overlaps(x, y) && !same_view(x, y)) BAD("%s: x and y overlap in the same buffer", v->op);
    if (hcga_tensor_numel(x) == 0 || same_view(x, y)) return HCGA_OK;
    copy_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y), .xdt = x->dtype, .ydt = y->dtype};
    const int64_t xe = (int64_t)hcga_dtype_size(x->dtype), ye = (int64_t)hcga_dtype_size(y->dtype);
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1) continue;
        int64_t sx = x->stride[i] * xe, sy = y->stride[i] * ye;
        if (nd > 0 && c.xs[nd - 1] == sx * x->shape[i] && c.ys[nd - 1] == sy * x->shape[i]) {
            c.len[nd - 1] *= x->shape[i];
            c.xs[nd - 1] = sx;
            c.ys[nd - 1] = sy;
            continue;
        }
        c.len[nd] = x->shape[i];
        c.xs[nd] = sx;
        c.ys[nd] = sy;
        nd++;
    }
    if (nd == 0) {
        c.len[0] = 1;
        c.xs[0] = xe;
        c.ys[0] = ye;
        nd = 1;
    }
    c.nd = nd;
    c.rows = 1;
    for (int i = 0; i < nd - 1; i++) c.rows *= c.len[i];
    int64_t L = c.len[nd - 1];
    cpu_parallel(be, c.rows, L >= 16384 ? 1 : 16384 / L, copy_task, &c);
    return HCGA_OK;
}

static hcga_status op_fill(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_FILL, 0, 0, 1, 1));
    const hcga_tensor *y;
    OUT(0, "y", K_ANY, y);
    double s = a->p.scalar.a;
    int64_t n = hcga_tensor_numel(y);
    switch (y->dtype) {
    case HCGA_F32:
    case HCGA_F64:
        if (y->dtype == HCGA_F32 && isfinite(s) && fabs(s) > (double)3.4028234663852886e38)
            BAD("%s: %g does not fit in f32", v->op, s);
        DISPATCH(y->dtype, ew, be, EW_FILL, NULL, NULL, cpu_ptr(y), n, s);
        return HCGA_OK;
    case HCGA_I32:
    case HCGA_I64:
    case HCGA_U8: {
        double lo = y->dtype == HCGA_I32 ? -2147483648.0 : y->dtype == HCGA_U8 ? 0.0 : -9223372036854775808.0;
        double hi = y->dtype == HCGA_I32 ? 2147483648.0 : y->dtype == HCGA_U8 ? 256.0 : 9223372036854775808.0;
        if (!isfinite(s) || trunc(s) < lo || trunc(s) >= hi)
            BAD("%s: %g does not fit in %s", v->op, s, hcga_dtype_name(y->dtype));
        if (y->dtype == HCGA_I32) {
            int32_t *p = cpu_ptr(y), iv = (int32_t)s;
            for (int64_t i = 0; i < n; i++) p[i] = iv;
        } else if (y->dtype == HCGA_I64) {
            int64_t *p = cpu_ptr(y), iv = (int64_t)s;
            for (int64_t i = 0; i < n; i++) p[i] = iv;
        } else {
            memset(cpu_ptr(y), (int)(uint8_t)s, (size_t)n);
        }
        return HCGA_OK;
    }
    default: BAD("%s: y has unsupported dtype %s", v->op, hcga_dtype_name(y->dtype));
    }
}

/* ======================================================================= */
/* Channel ops                                                             */
/* ======================================================================= */

static hcga_status v_nc(V *v, const hcga_tensor *x, const char *name, int64_t *N, int64_t *C,
                        int64_t *S)
{
    if (x->ndim < 2) {
        char b[96];
        BAD("%s: %s must have at least 2 dims [N,C,...], got %s", v->op, name, shp(x, b, sizeof b));
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->shape[i];
    return HCGA_OK;
}

static hcga_status op_softmax_fwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_SOFTMAX_FWD, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "y", K_FLOAT, y);
    int64_t N, C, S;
    TRY(v_nc(v, x, "x", &N, &C, &S));
    TRY(v_same(v, y, "y", x, "x"));
    TRY(v_noalias(v, 1));
    if (hcga_tensor_numel(x) == 0) return HCGA_OK;
    chan_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y), .N = N, .C = C, .S = S};
    DISPATCH(v->dt, chan, be, 0, &c);
    return HCGA_OK;
}

static hcga_status op_softmax_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_SOFTMAX_BWD, 2, 2, 1, 1));
    const hcga_tensor *y, *dy, *dx;
    IN(0, "y", K_FLOAT, y);
    IN(1, "dy", K_FLOAT, dy);
    OUT(0, "dx", K_FLOAT, dx);
    int64_t N, C, S;
    TRY(v_nc(v, y, "y", &N, &C, &S));
    TRY(v_same(v, dy, "dy", y, "y"));
    TRY(v_same(v, dx, "dx", y, "y"));
    TRY(v_noalias(v, 1));
    if (hcga_tensor_numel(y) == 0) return HCGA_OK;
    chan_ctx c = {.x = cpu_ptr(y), .dy = cpu_ptr(dy), .y = cpu_ptr(dx), .N = N, .C = C, .S = S};
    DISPATCH(v->dt, chan, be, 0, &c);
    return HCGA_OK;
}

typedef struct cat_ctx {
    int n;
    char *whole;           /* y (concat) or dy (split) */
    char *part[HCGA_MAX_OP_IN];
    int64_t pbytes[HCGA_MAX_OP_IN]; /* bytes per outer index of each part */
    int64_t wbytes;        /* bytes per outer index of whole */
    int split;
} cat_ctx;

static void cat_task(void *vc, int64_t o0, int64_t o1, int tid)
{
    (void)tid;
    const cat_ctx *c = vc;
    for (int64_t o = o0; o < o1; o++) {
        int64_t off = o * c->wbytes;
        for (int i = 0; i < c->n; i++) {
            char *p = c->part[i] + o * c->pbytes[i];
            if (c->split)
                memcpy(p, c->whole + off, (size_t)c->pbytes[i]);
            else
                memcpy(c->whole + off, p, (size_t)c->pbytes[i]);
            off += c->pbytes[i];
        }
    }
}

static hcga_status cat_op(hcga_backend *be, const hcga_op_args *a, int op, int split)
{
    V vv, *v = &vv;
    if (split)
        TRY(v_begin(v, be, a, op, 1, 1, 1, HCGA_MAX_OP_OUT));
    else
        TRY(v_begin(v, be, a, op, 1, HCGA_MAX_OP_IN, 1, 1));
    const hcga_tensor *whole, *parts[HCGA_MAX_OP_IN];
    int n = split ? a->num_out : a->num_in;
    const char *wn = split ? "dy" : "y";
    if (split)
        IN(0, wn, K_ANY, whole);
    else
        OUT(0, wn, K_ANY, whole);
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, split ? "dx%d" : "x%d", i);
        TRY(v_slot(v, split, i, nm, K_ANY, 0, &parts[i]));
        if (parts[i]->dtype != whole->dtype)
            BAD("%s: %s has dtype %s but %s is %s", v->op, nm, hcga_dtype_name(parts[i]->dtype),
                wn, hcga_dtype_name(whole->dtype));
        if (parts[i]->ndim != whole->ndim || whole->ndim < 2) {
            char b1[96], b2[96];
            BAD("%s: %s %s and %s %s must have the same ndim >= 2", v->op, nm,
                shp(parts[i], b1, sizeof b1), wn, shp(whole, b2, sizeof b2));
        }
        for (int d = 0; d < whole->ndim; d++)
            if (d != 1 && parts[i]->shape[d] != whole->shape[d]) {
                char b1[96], b2[96];
                BAD("%s: %s %s differs from %s %s in dim %d", v->op, nm,
                    shp(parts[i], b1, sizeof b1), wn, shp(whole, b2, sizeof b2), d);
            }
    }
    int64_t csum = 0;
    for (int i = 0; i < n; i++) csum += parts[i]->shape[1];
    if (csum != whole->shape[1])
        BAD("%s: the parts have %lld channels in total but %s has %lld", v->op, (long long)csum,
            wn, (long long)whole->shape[1]);
    TRY(v_noalias(v, 0));
    int64_t inner = 1;
    for (int d = 2; d < whole->ndim; d++) inner *= whole->shape[d];
    int64_t esz = (int64_t)hcga_dtype_size(whole->dtype);
    cat_ctx c = {.n = n, .whole = cpu_ptr(whole), .split = split,
                 .wbytes = whole->shape[1] * inner * esz};
    for (int i = 0; i < n; i++) {
        c.part[i] = cpu_ptr(parts[i]);
        c.pbytes[i] = parts[i]->shape[1] * inner * esz;
    }
    int64_t N = whole->shape[0];
    if (hcga_tensor_numel(whole) == 0) return HCGA_OK;
    cpu_parallel(be, N, c.wbytes >= 65536 ? 1 : 65536 / c.wbytes, cat_task, &c);
    return HCGA_OK;
}

static hcga_status op_concat(hcga_backend *be, const hcga_op_args *a)
{
    return cat_op(be, a, HCGA_OP_CONCAT, 0);
}
static hcga_status op_split(hcga_backend *be, const hcga_op_args *a)
{
    return cat_op(be, a, HCGA_OP_SPLIT, 1);
}

static hcga_status op_argmax(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_ARGMAX, 1, 1, 1, 1));
    const hcga_tensor *x, *idx;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "idx", K_I64, idx);
    int64_t N, C, S;
    TRY(v_nc(v, x, "x", &N, &C, &S));
    int64_t want[HCGA_MAX_DIMS];
    want[0] = N;
    for (int i = 2; i < x->ndim; i++) want[i - 1] = x->shape[i];
    TRY(v_shape(v, idx, "idx", x->ndim - 1, want));
    if (C < 1 && N * S > 0) BAD("%s: x has no channels to take the maximum over", v->op);
    TRY(v_noalias(v, 0));
    if (N * S == 0) return HCGA_OK;
    chan_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(idx), .N = N, .C = C, .S = S};
    DISPATCH(v->dt, chan, be, 1, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Spatial                                                                 */
/* ======================================================================= */

static hcga_status op_upsample_fwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_UPSAMPLE_NEAREST_FWD, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "y", K_FLOAT, y);
    int f = a->p.resize.factor;
    if (f < 1 || f > 4096) BAD("%s: resize.factor %d must be in 1..4096", v->op, f);
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    SHAPE(y, "y", x->shape[0], x->shape[1], x->shape[2] * f, x->shape[3] * f);
    TRY(v_noalias(v, 0));
    plane_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y), .H = x->shape[2], .W = x->shape[3],
                   .factor = f};
    DISPATCH(v->dt, plane, be, PL_UPS, x->shape[0] * x->shape[1],
             y->shape[2] * y->shape[3], &c);
    return HCGA_OK;
}

static hcga_status op_upsample_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_UPSAMPLE_NEAREST_BWD, 1, 1, 1, 1));
    const hcga_tensor *dy, *dx;
    IN(0, "dy", K_FLOAT, dy);
    OUT(0, "dx", K_FLOAT, dx);
    int f = a->p.resize.factor;
    if (f < 1 || f > 4096) BAD("%s: resize.factor %d must be in 1..4096", v->op, f);
    TRY(v_ndim(v, dx, "dx", 4, "[N,C,H,W]"));
    SHAPE(dy, "dy", dx->shape[0], dx->shape[1], dx->shape[2] * f, dx->shape[3] * f);
    TRY(v_noalias(v, 0));
    plane_ctx c = {.x = cpu_ptr(dy), .y = cpu_ptr(dx), .H = dx->shape[2], .W = dx->shape[3],
                   .factor = f};
    DISPATCH(v->dt, plane, be, PL_UPS_BWD, dx->shape[0] * dx->shape[1],
             dx->shape[2] * dx->shape[3] * f * f, &c);
    return HCGA_OK;
}

/* Source rows (i0, i1) and weights (l0, l1) of bilinear resizing. */
static void resize_coords(int64_t in, int64_t out, int align, int64_t *idx, double *lam)
{
    for (int64_t d = 0; d < out; d++) {
        double src;
        if (align)
            src = out > 1 ? (double)d * (double)(in - 1) / (double)(out - 1) : 0.0;
        else {
            src = ((double)d + 0.5) * (double)in / (double)out - 0.5;
            if (src < 0) src = 0;
        }
        int64_t i0 = (int64_t)src;
        if (i0 > in - 1) i0 = in - 1;
        int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
        double l1 = src - (double)i0;
        idx[2 * d] = i0;
        idx[2 * d + 1] = i1;
        lam[2 * d] = 1.0 - l1;
        lam[2 * d + 1] = l1;
    }
}

static hcga_status resize_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, op, 1, 1, 1, 1));
    const hcga_tensor *small, *big; /* small = input image side, big = output side */
    const hcga_tensor *tin, *tout;
    IN(0, bwd ? "dy" : "x", K_FLOAT, tin);
    OUT(0, bwd ? "dx" : "y", K_FLOAT, tout);
    small = bwd ? tout : tin;
    big = bwd ? tin : tout;
    const char *sn = bwd ? "dx" : "x", *bn = bwd ? "dy" : "y";
    TRY(v_ndim(v, small, sn, 4, "[N,C,H,W]"));
    TRY(v_ndim(v, big, bn, 4, "[N,C,OH,OW]"));
    if (big->shape[0] != small->shape[0] || big->shape[1] != small->shape[1]) {
        char b1[96], b2[96];
        BAD("%s: %s %s and %s %s differ in N or C", v->op, sn, shp(small, b1, sizeof b1), bn,
            shp(big, b2, sizeof b2));
    }
    int align = a->p.resize.align_corners;
    if (align != 0 && align != 1) BAD("%s: resize.align_corners %d must be 0 or 1", v->op, align);
    int64_t H = small->shape[2], W = small->shape[3], OH = big->shape[2], OW = big->shape[3];
    int64_t planes = small->shape[0] * small->shape[1];
    if (planes > 0 && OH * OW > 0 && (H < 1 || W < 1))
        BAD("%s: %s has an empty spatial size", v->op, sn);
    TRY(v_noalias(v, 0));
    if (planes == 0) return HCGA_OK;
    if (OH * OW == 0) { /* nothing flows: dx = 0 or y empty */
        if (bwd) DISPATCH(v->dt, ew, be, EW_FILL, NULL, NULL, cpu_ptr(tout), hcga_tensor_numel(tout), 0.0);
        return HCGA_OK;
    }
    size_t bytes = (size_t)(2 * (OH + OW)) * (sizeof(int64_t) + sizeof(double));
    char *w = cpu_ws(be, 2, bytes);
    if (!w) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
    int64_t *hi = (int64_t *)w, *wi = hi + 2 * OH;
    double *hl = (double *)(wi + 2 * OW), *wl = hl + 2 * OH;
    resize_coords(H, OH, align, hi, hl);
    resize_coords(W, OW, align, wi, wl);
    /* scratch: H x OW horizontally resized rows (+ H x W accumulators) */
    if (cpu_scratch_reserve(be, (size_t)(H * OW + (bwd ? H * W : 0)) * sizeof(double)))
        return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for scratch", v->op);
    plane_ctx c = {.x = cpu_ptr(tin), .y = cpu_ptr(tout), .H = H, .W = W, .OH = OH, .OW = OW,
                   .hi = hi, .hl = hl, .wi = wi, .wl = wl, .be = be};
    DISPATCH(v->dt, plane, be, bwd ? PL_RESIZE_BWD : PL_RESIZE, planes, OH * OW, &c);
    return HCGA_OK;
}

static hcga_status op_resize_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return resize_op(be, a, HCGA_OP_RESIZE_BILINEAR_FWD, 0);
}
static hcga_status op_resize_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return resize_op(be, a, HCGA_OP_RESIZE_BILINEAR_BWD, 1);
}

static hcga_status op_gap_fwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_GAP_FWD, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "y", K_FLOAT, y);
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    SHAPE(y, "y", x->shape[0], x->shape[1]);
    int64_t HW = x->shape[2] * x->shape[3];
    if (HW < 1 && x->shape[0] * x->shape[1] > 0) BAD("%s: x has an empty spatial size", v->op);
    TRY(v_noalias(v, 0));
    plane_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y), .H = x->shape[2], .W = x->shape[3]};
    DISPATCH(v->dt, plane, be, PL_GAP, x->shape[0] * x->shape[1], HW, &c);
    return HCGA_OK;
}

static hcga_status op_gap_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_GAP_BWD, 1, 1, 1, 1));
    const hcga_tensor *dy, *dx;
    IN(0, "dy", K_FLOAT, dy);
    OUT(0, "dx", K_FLOAT, dx);
    TRY(v_ndim(v, dx, "dx", 4, "[N,C,H,W]"));
    SHAPE(dy, "dy", dx->shape[0], dx->shape[1]);
    int64_t HW = dx->shape[2] * dx->shape[3];
    TRY(v_noalias(v, 0));
    if (HW == 0) return HCGA_OK;
    plane_ctx c = {.x = cpu_ptr(dy), .y = cpu_ptr(dx), .H = dx->shape[2], .W = dx->shape[3]};
    DISPATCH(v->dt, plane, be, PL_GAP_BWD, dx->shape[0] * dx->shape[1], HW, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* GEMM                                                                    */
/* ======================================================================= */

static hcga_status op_gemm(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_GEMM, 2, 3, 1, 1));
    const hcga_tensor *ta, *tb, *tc, *y;
    IN(0, "a", K_FLOAT, ta);
    IN(1, "b", K_FLOAT, tb);
    OPT_IN(2, "c", K_FLOAT, tc);
    OUT(0, "y", K_FLOAT, y);
    const hcga_gemm_params *p = &a->p.gemm;
    if ((p->trans_a != 0 && p->trans_a != 1) || (p->trans_b != 0 && p->trans_b != 1))
        BAD("%s: gemm.trans_a/trans_b must be 0 or 1 (got %d, %d)", v->op, p->trans_a, p->trans_b);
    TRY(v_finite(v, p->alpha, "gemm.alpha"));
    TRY(v_finite(v, p->beta, "gemm.beta"));
    TRY(v_ndim(v, ta, "a", 2, "matrix"));
    TRY(v_ndim(v, tb, "b", 2, "matrix"));
    TRY(v_ndim(v, y, "y", 2, "matrix"));
    int64_t M = p->trans_a ? ta->shape[1] : ta->shape[0];
    int64_t K = p->trans_a ? ta->shape[0] : ta->shape[1];
    int64_t Kb = p->trans_b ? tb->shape[1] : tb->shape[0];
    int64_t N = p->trans_b ? tb->shape[0] : tb->shape[1];
    if (K != Kb) {
        char b1[96], b2[96];
        BAD("%s: op(a) of a %s (trans %d) and op(b) of b %s (trans %d) disagree on K (%lld vs %lld)",
            v->op, shp(ta, b1, sizeof b1), p->trans_a, shp(tb, b2, sizeof b2), p->trans_b,
            (long long)K, (long long)Kb);
    }
    SHAPE(y, "y", M, N);
    if (tc) SHAPE(tc, "c", M, N);
    if (M > INT_MAX / 2 || N > INT_MAX / 2 || K > INT_MAX / 2)
        BAD("%s: dimensions exceed 32-bit BLAS limits", v->op);
    if (overlaps(ta, y)) BAD("%s: y overlaps a in the same buffer", v->op);
    if (overlaps(tb, y)) BAD("%s: y overlaps b in the same buffer", v->op);
    if (tc && overlaps(tc, y) && !same_view(tc, y))
        BAD("%s: c partially overlaps y (only c == y is allowed)", v->op);
    if (M == 0 || N == 0) return HCGA_OK;
    const size_t es = hcga_dtype_size(v->dt);
    double beta = tc ? p->beta : 0.0;
    if (beta == 0.0)
        memset(cpu_ptr(y), 0, (size_t)(M * N) * es);
    else if (!same_view(tc, y))
        memcpy(cpu_ptr(y), cpu_ptr(tc), (size_t)(M * N) * es);
    if (K == 0) { /* y = beta * c */
        if (beta != 0.0 && beta != 1.0)
            DISPATCH(v->dt, ew, be, EW_SCALE, cpu_ptr(y), NULL, cpu_ptr(y), M * N, beta);
        return HCGA_OK;
    }
    DISPATCH(v->dt, gemm, be, p->trans_a, p->trans_b, M, N, K, p->alpha, cpu_ptr(ta), cpu_ptr(tb),
             beta, cpu_ptr(y));
    return HCGA_OK;
}

/* ======================================================================= */
/* Reductions                                                              */
/* ======================================================================= */

static hcga_status op_reduce(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_REDUCE, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    IN(0, "x", K_FLOAT, x);
    OUT(0, "y", K_FLOAT, y);
    TRY(v_scalar(v, y, "y"));
    int kind = a->p.reduce.kind;
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        BAD("%s: reduce.kind %d is not SUM, MEAN or ABS_MEAN", v->op, kind);
    int64_t n = hcga_tensor_numel(x);
    if (n == 0 && kind != HCGA_REDUCE_SUM) BAD("%s: mean of an empty tensor", v->op);
    TRY(v_noalias(v, 0));
    double s = 0;
    TRY(DISPATCH(v->dt, reduce, be, cpu_ptr(x), n, kind == HCGA_REDUCE_ABS_MEAN, &s));
    write_scalar(y, kind == HCGA_REDUCE_SUM ? s : s / (double)n);
    return HCGA_OK;
}

static hcga_status op_reduce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_REDUCE_BWD, 2, 2, 1, 1));
    const hcga_tensor *x, *dy, *dx;
    IN(0, "x", K_FLOAT, x);
    IN(1, "dy", K_FLOAT, dy);
    OUT(0, "dx", K_FLOAT, dx);
    TRY(v_scalar(v, dy, "dy"));
    TRY(v_same(v, dx, "dx", x, "x"));
    int kind = a->p.reduce.kind;
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        BAD("%s: reduce.kind %d is not SUM, MEAN or ABS_MEAN", v->op, kind);
    int64_t n = hcga_tensor_numel(x);
    TRY(v_noalias(v, 1));
    if (n == 0) return HCGA_OK;
    double g = scalar_val(dy);
    if (kind != HCGA_REDUCE_SUM) g /= (double)n;
    DISPATCH(v->dt, ew, be, kind == HCGA_REDUCE_ABS_MEAN ? EW_SIGN_MUL : EW_FILL, cpu_ptr(x),
             NULL, cpu_ptr(dx), n, g);
    return HCGA_OK;
}

/* ======================================================================= */
/* Losses                                                                  */
/* ======================================================================= */

static hcga_status v_labels(V *v, const hcga_tensor *lab, int64_t C, int has_ignore,
                            int64_t ignore)
{
    const int64_t *l = cpu_ptr(lab);
    int64_t n = hcga_tensor_numel(lab);
    for (int64_t i = 0; i < n; i++) {
        if (has_ignore && l[i] == ignore) continue;
        if (l[i] < 0 || l[i] >= C)
            BAD("%s: labels[%lld] = %lld is outside [0, %lld)", v->op, (long long)i,
                (long long)l[i], (long long)C);
    }
    return HCGA_OK;
}

static hcga_status ce_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, op, bwd ? 3 : 2, bwd ? 3 : 2, 1, 1));
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    IN(0, "logits", K_FLOAT, x);
    IN(1, "labels", K_I64, lab);
    if (bwd) IN(2, "dloss", K_FLOAT, dl);
    OUT(0, bwd ? "dlogits" : "loss", K_FLOAT, out);
    TRY(v_ndim(v, x, "logits", 2, "[N,C]"));
    int64_t N = x->shape[0], C = x->shape[1];
    SHAPE(lab, "labels", N);
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dlogits", x, "logits"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    double eps = a->p.loss.eps;
    TRY(v_finite(v, eps, "loss.eps"));
    if (eps < 0 || eps > 1) BAD("%s: loss.eps %g must be in [0, 1]", v->op, eps);
    if (N < 1 || C < 1) BAD("%s: logits must have N >= 1 and C >= 1", v->op);
    TRY(v_labels(v, lab, C, 0, 0));
    TRY(v_noalias(v, 0));
    loss_ctx c = {.x = cpu_ptr(x), .labels = cpu_ptr(lab), .N = N, .C = C, .eps = eps};
    int64_t grain = C >= 4096 ? 1 : 4096 / C;
    if (!bwd) {
        double *part = cpu_ws(be, 3, (size_t)N * sizeof(double));
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
        c.part = part;
        cpu_parallel(be, N, grain, PICK(v->dt, ce_task), &c);
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += part[n];
        write_scalar(out, s / (double)N);
    } else {
        c.y = cpu_ptr(out);
        c.g = scalar_val(dl) / (double)N;
        cpu_parallel(be, N, grain, PICK(v->dt, ce_task), &c);
    }
    return HCGA_OK;
}

static hcga_status op_ce_ls_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return ce_op(be, a, HCGA_OP_CE_LS_FWD, 0);
}
static hcga_status op_ce_ls_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return ce_op(be, a, HCGA_OP_CE_LS_BWD, 1);
}

static hcga_status pixce_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, op, bwd ? 3 : 2, bwd ? 3 : 2, 1, 1));
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    IN(0, "logits", K_FLOAT, x);
    IN(1, "labels", K_I64, lab);
    if (bwd) IN(2, "dloss", K_FLOAT, dl);
    OUT(0, bwd ? "dlogits" : "loss", K_FLOAT, out);
    TRY(v_ndim(v, x, "logits", 4, "[N,K,H,W]"));
    int64_t N = x->shape[0], K = x->shape[1], S = x->shape[2] * x->shape[3];
    SHAPE(lab, "labels", N, x->shape[2], x->shape[3]);
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dlogits", x, "logits"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    if (K < 1) BAD("%s: logits have no classes", v->op);
    int64_t ign = a->p.loss.ignore_label;
    TRY(v_labels(v, lab, K, 1, ign));
    TRY(v_noalias(v, 0));
    const int64_t *l = cpu_ptr(lab);
    int64_t count = 0;
    for (int64_t i = 0; i < N * S; i++) count += l[i] != ign;
    loss_ctx c = {.x = cpu_ptr(x), .labels = l, .N = N, .C = K, .S = S, .ignore = ign};
    c.nch = (S + CPU_VEC_CHUNK - 1) / CPU_VEC_CHUNK;
    int64_t tasks = N * c.nch;
    int64_t per = K * (S < CPU_VEC_CHUNK ? S : CPU_VEC_CHUNK);
    int64_t grain = per >= 4096 ? 1 : 4096 / (per ? per : 1);
    if (!bwd) {
        if (tasks == 0) {
            write_scalar(out, 0.0);
            return HCGA_OK;
        }
        double *part = cpu_ws(be, 3, (size_t)(2 * tasks) * sizeof(double));
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
        c.part = part;
        cpu_parallel(be, tasks, grain, PICK(v->dt, pixce_task), &c);
        double s = 0;
        for (int64_t t = 0; t < tasks; t++) s += part[2 * t];
        write_scalar(out, count > 0 ? s / (double)count : 0.0);
    } else {
        c.y = cpu_ptr(out);
        c.g = count > 0 ? scalar_val(dl) / (double)count : 0.0;
        cpu_parallel(be, tasks, grain, PICK(v->dt, pixce_task), &c);
    }
    return HCGA_OK;
}

static hcga_status op_pixel_ce_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return pixce_op(be, a, HCGA_OP_PIXEL_CE_FWD, 0);
}
static hcga_status op_pixel_ce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return pixce_op(be, a, HCGA_OP_PIXEL_CE_BWD, 1);
}

/* d = sqrt(max(sq, 1e-12)), NaN kept. */
static double tri_d(double sq)
{
    if (sq != sq) return sq;
    return sqrt(sq > 1e-12 ? sq : 1e-12);
}

static hcga_status op_triplet_fwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_TRIPLET_FWD, 2, 2, 2, 2));
    const hcga_tensor *x, *lab, *loss, *hard;
    IN(0, "x", K_FLOAT, x);
    IN(1, "labels", K_I64, lab);
    OUT(0, "loss", K_FLOAT, loss);
    OUT(1, "hard", K_I64, hard);
    TRY(v_ndim(v, x, "x", 2, "[N,D]"));
    int64_t N = x->shape[0], D = x->shape[1];
    SHAPE(lab, "labels", N);
    TRY(v_scalar(v, loss, "loss"));
    SHAPE(hard, "hard", N, 2);
    TRY(v_finite(v, a->p.loss.margin, "loss.margin"));
    if (N < 1) BAD("%s: x has no rows", v->op);
    if (N > 65536) BAD("%s: N = %lld is too large for the N x N distance matrix", v->op, (long long)N);
    TRY(v_noalias(v, 0));
    double *dist = cpu_ws(be, 3, (size_t)(N * N + N) * sizeof(double));
    if (!dist) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
    DISPATCH(v->dt, tri_dists, be, cpu_ptr(x), N, D, dist);
    const int64_t *l = cpu_ptr(lab);
    int64_t *h = cpu_ptr(hard);
    double sum = 0;
    int64_t num = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t ap = -1, an = -1;
        double dap = 0, dan = 0;
        for (int64_t j = 0; j < N; j++) {
            double d = tri_d(dist[i * N + j]);
            if (l[j] == l[i]) {
                if (ap < 0 || d > dap) ap = j, dap = d;
            } else {
                if (an < 0 || d < dan) an = j, dan = d;
            }
        }
        h[2 * i] = ap;
        h[2 * i + 1] = an;
        if (an >= 0) {
            double z = dap - dan + a->p.loss.margin;
            sum += z > 0 ? z : (z != z ? z : 0.0);
            num++;
        }
    }
    write_scalar(loss, num > 0 ? sum / (double)num : 0.0);
    return HCGA_OK;
}

static hcga_status op_triplet_bwd(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_TRIPLET_BWD, 3, 3, 1, 1));
    const hcga_tensor *x, *hard, *dl, *dx;
    IN(0, "x", K_FLOAT, x);
    IN(1, "hard", K_I64, hard);
    IN(2, "dloss", K_FLOAT, dl);
    OUT(0, "dx", K_FLOAT, dx);
    TRY(v_ndim(v, x, "x", 2, "[N,D]"));
    int64_t N = x->shape[0], D = x->shape[1];
    SHAPE(hard, "hard", N, 2);
    TRY(v_scalar(v, dl, "dloss"));
    TRY(v_same(v, dx, "dx", x, "x"));
    TRY(v_finite(v, a->p.loss.margin, "loss.margin"));
    if (N < 1) BAD("%s: x has no rows", v->op);
    if (N > 65536) BAD("%s: N = %lld is too large for the N x N distance matrix", v->op, (long long)N);
    const int64_t *h = cpu_ptr(hard);
    int64_t num = 0;
    for (int64_t i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++)
            if (h[2 * i + k] < -1 || h[2 * i + k] >= N)
                BAD("%s: hard[%lld,%d] = %lld is outside [-1, %lld)", v->op, (long long)i, k,
                    (long long)h[2 * i + k], (long long)N);
        if (h[2 * i] >= 0 && h[2 * i + 1] >= 0) num++;
    }
    TRY(v_noalias(v, 0));
    double *dist = cpu_ws(be, 3, (size_t)(N * N + N) * sizeof(double));
    double *acc = cpu_ws(be, 2, (size_t)(N * D) * sizeof(double));
    if (!dist || !acc) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
    DISPATCH(v->dt, tri_dists, be, cpu_ptr(x), N, D, dist);
    double g = num > 0 ? scalar_val(dl) / (double)num : 0.0;
    DISPATCH(v->dt, tri_bwd, cpu_ptr(x), h, N, D, dist, g, a->p.loss.margin, acc, cpu_ptr(dx));
    return HCGA_OK;
}

static hcga_status shift_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, op, bwd ? 2 : 1, bwd ? 2 : 1, 1, 1));
    const hcga_tensor *x, *dl = NULL, *out;
    IN(0, "x", K_FLOAT, x);
    if (bwd) IN(1, "dloss", K_FLOAT, dl);
    OUT(0, bwd ? "dx" : "loss", K_FLOAT, out);
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dx", x, "x"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    const hcga_shift_params *p = &a->p.shift;
    if (p->dn < -1 || p->dn > 1 || p->dh < -1 || p->dh > 1 || p->dw < -1 || p->dw > 1)
        BAD("%s: shift (dn,dh,dw) = (%d,%d,%d) must each be -1, 0 or 1", v->op, p->dn, p->dh, p->dw);
    TRY(v_noalias(v, 0));
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t vn = N - (p->dn ? 1 : 0), vh = H - (p->dh ? 1 : 0), vw = W - (p->dw ? 1 : 0);
    if (vn < 0) vn = 0;
    if (vh < 0) vh = 0;
    if (vw < 0) vw = 0;
    int64_t count = vn * C * vh * vw;
    loss_ctx c = {.x = cpu_ptr(x), .N = N, .C = C, .H = H, .W = W, .dn = p->dn, .dh = p->dh,
                  .dw = p->dw};
    const int64_t hw = H * W;
    int64_t grain = hw >= 4096 ? 1 : 4096 / (hw > 0 ? hw : 1);
    if (!bwd) {
        if (count == 0) {
            write_scalar(out, 0.0);
            return HCGA_OK;
        }
        int64_t planes = vn * C;
        double *part = cpu_ws(be, 3, (size_t)planes * sizeof(double));
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", v->op);
        c.part = part;
        cpu_parallel(be, planes, grain, PICK(v->dt, shift_task), &c);
        double s = 0;
        for (int64_t t = 0; t < planes; t++) s += part[t];
        write_scalar(out, s / (double)count);
    } else {
        c.y = cpu_ptr(out);
        c.g = count > 0 ? scalar_val(dl) / (double)count : 0.0;
        cpu_parallel(be, N * C, grain, PICK(v->dt, shift_task), &c);
    }
    return HCGA_OK;
}

static hcga_status op_shift_l1_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return shift_op(be, a, HCGA_OP_SHIFT_L1_FWD, 0);
}
static hcga_status op_shift_l1_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return shift_op(be, a, HCGA_OP_SHIFT_L1_BWD, 1);
}

/* ======================================================================= */
/* Optimizers                                                              */
/* ======================================================================= */

static hcga_status v_optim(V *v, const hcga_optim_params *p, int adam)
{
    TRY(v_finite(v, p->lr, "optim.lr"));
    TRY(v_finite(v, p->weight_decay, "optim.weight_decay"));
    if (p->step < 1) BAD("%s: optim.step %lld must be >= 1", v->op, (long long)p->step);
    if (adam) {
        TRY(v_finite(v, p->eps, "optim.eps"));
        if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1))
            BAD("%s: optim.beta1 (%g) and beta2 (%g) must be in [0, 1)", v->op, p->beta1, p->beta2);
        if (p->eps < 0) BAD("%s: optim.eps (%g) must be >= 0", v->op, p->eps);
    } else {
        TRY(v_finite(v, p->momentum, "optim.momentum"));
    }
    return HCGA_OK;
}

static hcga_status op_adam_step(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_ADAM_STEP, 1, 1, 3, 3));
    const hcga_tensor *g, *p, *m, *vs;
    IN(0, "grad", K_FLOAT, g);
    OUT(HCGA_ADAM_PARAM, "param", K_FLOAT, p);
    OUT(HCGA_ADAM_M, "m", K_FLOAT, m);
    OUT(HCGA_ADAM_V, "v", K_FLOAT, vs);
    TRY(v_same(v, p, "param", g, "grad"));
    TRY(v_same(v, m, "m", g, "grad"));
    TRY(v_same(v, vs, "v", g, "grad"));
    const hcga_optim_params *o = &a->p.optim;
    TRY(v_optim(v, o, 1));
    TRY(v_noalias(v, 0));
    opt_ctx c = {.grad = cpu_ptr(g), .param = cpu_ptr(p), .m = cpu_ptr(m), .v = cpu_ptr(vs),
                 .lr = o->lr, .b1 = o->beta1, .b2 = o->beta2, .eps = o->eps,
                 .wd = o->weight_decay, .step = o->step};
    c.bc1 = 1.0 - pow(o->beta1, (double)o->step);
    c.bc2s = sqrt(1.0 - pow(o->beta2, (double)o->step));
    if (c.bc1 <= 0 || c.bc2s <= 0)
        BAD("%s: bias corrections vanish (beta1 %g, beta2 %g, step %lld)", v->op, o->beta1,
            o->beta2, (long long)o->step);
    cpu_parallel(be, hcga_tensor_numel(g), 4096, PICK(v->dt, adam_task), &c);
    return HCGA_OK;
}

static hcga_status op_sgd_step(hcga_backend *be, const hcga_op_args *a)
{
    V vv, *v = &vv;
    TRY(v_begin(v, be, a, HCGA_OP_SGD_STEP, 1, 1, 2, 2));
    const hcga_tensor *g, *p, *b;
    IN(0, "grad", K_FLOAT, g);
    OUT(HCGA_SGD_PARAM, "param", K_FLOAT, p);
    OUT(HCGA_SGD_BUF, "buf", K_FLOAT, b);
    TRY(v_same(v, p, "param", g, "grad"));
    TRY(v_same(v, b, "buf", g, "grad"));
    const hcga_optim_params *o = &a->p.optim;
    TRY(v_optim(v, o, 0));
    TRY(v_noalias(v, 0));
    opt_ctx c = {.grad = cpu_ptr(g), .param = cpu_ptr(p), .m = cpu_ptr(b), .lr = o->lr,
                 .wd = o->weight_decay, .mom = o->momentum, .step = o->step};
    cpu_parallel(be, hcga_tensor_numel(g), 4096, PICK(v->dt, sgd_task), &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Table                                                                   */
/* ======================================================================= */

const hcga_op_fn cpu_op_table[HCGA_OP_COUNT] = {
    [HCGA_OP_CONV2D_FWD] = op_conv2d_fwd,
    [HCGA_OP_CONV2D_BWD_DATA] = op_conv2d_bwd_data,
    [HCGA_OP_CONV2D_BWD_FILTER] = op_conv2d_bwd_filter,
    [HCGA_OP_BN_FWD_TRAIN] = op_bn_fwd_train,
    [HCGA_OP_BN_FWD_INFER] = op_bn_fwd_infer,
    [HCGA_OP_BN_BWD] = op_bn_bwd,
    [HCGA_OP_RELU_FWD] = op_relu_fwd,
    [HCGA_OP_RELU_BWD] = op_relu_bwd,
    [HCGA_OP_SIGMOID_FWD] = op_sigmoid_fwd,
    [HCGA_OP_SIGMOID_BWD] = op_sigmoid_bwd,
    [HCGA_OP_THRESH_FWD] = op_thresh_fwd,
    [HCGA_OP_THRESH_BWD] = op_thresh_bwd,
    [HCGA_OP_ADD] = op_add,
    [HCGA_OP_MUL] = op_mul,
    [HCGA_OP_SUM_TO] = op_sum_to,
    [HCGA_OP_COPY] = op_copy,
    [HCGA_OP_FILL] = op_fill,
    [HCGA_OP_SOFTMAX_FWD] = op_softmax_fwd,
    [HCGA_OP_SOFTMAX_BWD] = op_softmax_bwd,
    [HCGA_OP_CONCAT] = op_concat,
    [HCGA_OP_SPLIT] = op_split,
    [HCGA_OP_ARGMAX] = op_argmax,
    [HCGA_OP_UPSAMPLE_NEAREST_FWD] = op_upsample_fwd,
    [HCGA_OP_UPSAMPLE_NEAREST_BWD] = op_upsample_bwd,
    [HCGA_OP_RESIZE_BILINEAR_FWD] = op_resize_fwd,
    [HCGA_OP_RESIZE_BILINEAR_BWD] = op_resize_bwd,
    [HCGA_OP_GAP_FWD] = op_gap_fwd,
    [HCGA_OP_GAP_BWD] = op_gap_bwd,
    [HCGA_OP_GEMM] = op_gemm,
    [HCGA_OP_REDUCE] = op_reduce,
    [HCGA_OP_REDUCE_BWD] = op_reduce_bwd,
    [HCGA_OP_CE_LS_FWD] = op_ce_ls_fwd,
    [HCGA_OP_CE_LS_BWD] = op_ce_ls_bwd,
    [HCGA_OP_PIXEL_CE_FWD] = op_pixel_ce_fwd,
    [HCGA_OP_PIXEL_CE_BWD] = op_pixel_ce_bwd,
    [HCGA_OP_TRIPLET_FWD] = op_triplet_fwd,
    [HCGA_OP_TRIPLET_BWD] = op_triplet_bwd,
    [HCGA_OP_SHIFT_L1_FWD] = op_shift_l1_fwd,
    [HCGA_OP_SHIFT_L1_BWD] = op_shift_l1_bwd,
    [HCGA_OP_ADAM_STEP] = op_adam_step,
    [HCGA_OP_SGD_STEP] = op_sgd_step,
};

int cpu_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    if (op < 0 || op >= HCGA_OP_COUNT || !cpu_op_table[op]) return 0;
    if (dtype == HCGA_F32 || dtype == HCGA_F64) return 1;
    switch (op) {
    case HCGA_OP_FILL: return dtype == HCGA_I32 || dtype == HCGA_I64 || dtype == HCGA_U8;
    case HCGA_OP_COPY:
    case HCGA_OP_CONCAT:
    case HCGA_OP_SPLIT: return dtype >= 0 && dtype < HCGA_DTYPE_COUNT;
    default: return 0;
    }
}
