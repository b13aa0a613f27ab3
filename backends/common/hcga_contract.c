/*
 * hcga_contract.c - the op contract checker (hcga_contract.h): the one
 * implementation of the argument rules of plugins/hcga_plugin.h, linked by
 * every backend so that each refuses the same bad call with the same message.
 *
 * hcga_contract_check() runs the checks every op shares (args present and
 * naming the called entry, num_in / num_out inside the catalogue's bounds)
 * and then the op's own check function, picked from a table generated from
 * plugins/hcga_ops.def (so an op without a check function does not compile).
 * The check functions take each slot in order (present, structurally valid,
 * of the right dtype kind), then the op's shape and parameter rules, then
 * aliasing; the first violated rule wins and becomes the one-line message
 * "<op>: <problem>".  The rules and texts are those of the reference CPU
 * backend, which enforced them itself before this file existed.
 *
 * Mixed precision (ABI 1.1): a float slot takes bf16 / f16 only when the
 * op's catalogue row has half = 1 (the convolutions, GEMM), and then the
 * one-dtype-per-call rule makes every float tensor that half dtype; CAST
 * has its own rule (any pair of floating dtypes).  Other ops refuse half
 * tensors, the any-dtype slots of FILL / COPY / CONCAT / SPLIT included.
 *
 * Not here: data-dependent rules (label values, triplet pair indices), which
 * the backend checks where it can read its memory, and limits of a backend's
 * own implementation (32-bit BLAS dimensions, the size of a scratch matrix).
 *
 * The arithmetic on shapes is overflow-free: every dimension is at most
 * HCGA_CONTRACT_MAX_DIM, and the product of a tensor's non-zero dimensions is
 * at most HCGA_CONTRACT_MAX_NUMEL, so products of the dimensions of one tensor
 * (H*W, N*C, ...) fit in int64_t even for an empty tensor.
 */
#include "hcga_contract.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define CK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CK_PRINTF(f, a)
#endif

/* Dtype kind a slot must have. */
enum { K_FLOAT, K_I64, K_ANY };

/* One check in progress. */
typedef struct V {
    const hcga_op_args *a;
    const hcga_op_info *info;
    const char *op;   /* the op's name, for messages */
    int dt;           /* the call's floating dtype, -1 until the first float tensor */
    int in_dt, out_dt; /* set by COPY and CAST (x's and y's dtype); -2: same as dt */
    hcga_buffer_size_fn bsize;
    hcga_checked *ck;
    char *err;
    size_t err_len;
} V;

static hcga_status bad(V *v, const char *fmt, ...) CK_PRINTF(2, 3);
static hcga_status bad(V *v, const char *fmt, ...)
{
    if (v->err && v->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->err, v->err_len, fmt, ap);
        va_end(ap);
    }
    return HCGA_ERR_INVALID;
}

#define BAD(...) return bad(v, __VA_ARGS__)
#define TRY(e)                                                                                     \
    do {                                                                                           \
        hcga_status st_ = (e);                                                                     \
        if (st_ != HCGA_OK) return st_;                                                            \
    } while (0)

/* ======================================================================= */
/* Public helpers                                                          */
/* ======================================================================= */

const char *hcga_contract_shape_str(const hcga_tensor *t, char *buf, size_t len)
{
    if (!buf || len == 0) return buf;
    int nd = t->ndim < 0 ? 0 : t->ndim > HCGA_MAX_DIMS ? HCGA_MAX_DIMS : t->ndim;
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

int hcga_contract_is_dense(const hcga_tensor *t)
{
    uint64_t s = 1; /* unsigned: no overflow on a tensor not yet checked */
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && (t->stride[i] < 0 || (uint64_t)t->stride[i] != s)) return 0;
        s *= (uint64_t)t->shape[i];
    }
    return 1;
}

/* Byte range [lo, hi) a tensor the checker accepted touches (lo == hi when
 * it is empty).  Unsigned: an accepted tensor lies inside its buffer. */
static void t_range(const hcga_tensor *t, uint64_t *lo, uint64_t *hi)
{
    const uint64_t esz = hcga_dtype_size(t->dtype);
    uint64_t below = 0, above = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) {
            *lo = *hi = t->offset;
            return;
        }
        uint64_t n = (uint64_t)(t->shape[i] - 1);
        if (t->stride[i] < 0)
            below += n * (uint64_t)(-t->stride[i]);
        else
            above += n * (uint64_t)t->stride[i];
    }
    *lo = t->offset - below * esz;
    *hi = t->offset + (above + 1) * esz;
}

int hcga_contract_overlaps(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf) return 0;
    uint64_t a0, a1, b0, b1;
    t_range(x, &a0, &a1);
    t_range(y, &b0, &b1);
    if (a0 == a1 || b0 == b1) return 0;
    return a0 < b1 && b0 < a1;
}

int hcga_contract_same_view(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf || x->offset != y->offset || x->dtype != y->dtype || x->ndim != y->ndim)
        return 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i] || (x->shape[i] != 1 && x->stride[i] != y->stride[i]))
            return 0;
    return 1;
}

#define shp hcga_contract_shape_str
#define overlaps hcga_contract_overlaps
#define same_view hcga_contract_same_view

/* ======================================================================= */
/* Slot and shape helpers                                                  */
/* ======================================================================= */

/* a + b, saturating at UINT64_MAX. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* a * b, saturating at UINT64_MAX. */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return (b != 0 && a > UINT64_MAX / b) ? UINT64_MAX : a * b;
}

/* Structural checks: buffer, dtype, dims, strides, bounds. */
static hcga_status v_tensor(V *v, const hcga_tensor *t, const char *name, int dense)
{
    if (!t->buf) BAD("%s: %s has no buffer", v->op, name);
    if (t->dtype < 0 || t->dtype >= HCGA_DTYPE_COUNT)
        BAD("%s: %s has unknown dtype %d", v->op, name, t->dtype);
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS)
        BAD("%s: %s has ndim %d (0..%d allowed)", v->op, name, t->ndim, HCGA_MAX_DIMS);
    const uint64_t esz = hcga_dtype_size(t->dtype);
    const uint64_t size = v->bsize(t->buf);
    int64_t numel = 1, span = 1; /* span: the product of the non-zero dims */
    for (int i = 0; i < t->ndim; i++) {
        const int64_t d = t->shape[i];
        if (d < 0) BAD("%s: %s has negative dim %d (%lld)", v->op, name, i, (long long)d);
        if (d > HCGA_CONTRACT_MAX_DIM)
            BAD("%s: %s dim %d (%lld) is too large", v->op, name, i, (long long)d);
        if (d != 0 && (numel > HCGA_CONTRACT_MAX_NUMEL / d || span > HCGA_CONTRACT_MAX_NUMEL / d))
            BAD("%s: %s has too many elements", v->op, name);
        numel *= d;
        if (d != 0) span *= d;
    }
    if (dense && !hcga_contract_is_dense(t)) {
        char b[96];
        BAD("%s: %s %s is not dense C-contiguous (only copy accepts strided tensors)", v->op, name,
            shp(t, b, sizeof b));
    }
    if (t->offset % esz)
        BAD("%s: %s offset %llu is not a multiple of its element size %lld", v->op, name,
            (unsigned long long)t->offset, (long long)esz);
    if (t->offset > size)
        BAD("%s: %s offset %llu is beyond its buffer (%llu bytes)", v->op, name,
            (unsigned long long)t->offset, (unsigned long long)size);
    if (numel == 0) return HCGA_OK;
    uint64_t below = 0, above = 0; /* elements before / after element 0 */
    for (int i = 0; i < t->ndim; i++) {
        const int64_t s = t->stride[i], n = t->shape[i] - 1;
        if (s > HCGA_CONTRACT_MAX_NUMEL || s < -HCGA_CONTRACT_MAX_NUMEL ||
            (n > 0 && (s > INT64_MAX / n || s < -(INT64_MAX / n))))
            BAD("%s: %s stride %d (%lld) is out of range", v->op, name, i, (long long)s);
        if (s < 0)
            below = add_sat(below, (uint64_t)n * (uint64_t)(-s));
        else
            above = add_sat(above, (uint64_t)n * (uint64_t)s);
    }
    if (mul_sat(below, esz) > t->offset)
        BAD("%s: %s reaches before the start of its buffer", v->op, name);
    if (add_sat(t->offset, mul_sat(add_sat(above, 1), esz)) > size) {
        char b[96];
        BAD("%s: %s %s at offset %llu overruns its buffer of %llu bytes", v->op, name,
            shp(t, b, sizeof b), (unsigned long long)t->offset, (unsigned long long)size);
    }
    return HCGA_OK;
}

/* A bf16 / f16 tensor where the op's catalogue row has half = 0 (an op
 * that computes in f32 or f64 only). */
static hcga_status v_no_half(V *v, const hcga_tensor *t, const char *name)
{
    if (hcga_dtype_is_half(t->dtype) && !v->info->half)
        BAD("%s: %s has dtype %s, but bf16 and f16 are taken only by cast, the convolutions and "
            "gemm", v->op, name, hcga_dtype_name(t->dtype));
    return HCGA_OK;
}

static hcga_status v_kind(V *v, const hcga_tensor *t, const char *name, int kind)
{
    if (kind == K_FLOAT) {
        /* half ops (catalogue column half) also take bf16 / f16; the
         * same-dtype rule below then makes every float tensor that dtype */
        if (v->info->half && t->dtype != HCGA_F32 && t->dtype != HCGA_F64 &&
            !hcga_dtype_is_half(t->dtype))
            BAD("%s: %s has dtype %s, expected f32, f64, bf16 or f16", v->op, name,
                hcga_dtype_name(t->dtype));
        if (!v->info->half && t->dtype != HCGA_F32 && t->dtype != HCGA_F64)
            BAD("%s: %s has dtype %s, expected f32 or f64", v->op, name, hcga_dtype_name(t->dtype));
        if (v->dt < 0)
            v->dt = t->dtype;
        else if (t->dtype != v->dt)
            BAD("%s: %s has dtype %s but the op's other float tensors are %s", v->op, name,
                hcga_dtype_name(t->dtype), hcga_dtype_name(v->dt));
    } else if (kind == K_I64) {
        if (t->dtype != HCGA_I64)
            BAD("%s: %s has dtype %s, expected i64", v->op, name, hcga_dtype_name(t->dtype));
    } else {
        TRY(v_no_half(v, t, name));
    }
    return HCGA_OK;
}

/* Fetches a slot: required (opt == 0) or optional; dense, and of `kind`. */
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

/* The dtype kind of a slot, from the catalogue's index columns. */
static int kind_of(const V *v, int is_out, int slot)
{
    unsigned bits = is_out ? v->info->index_out : v->info->index_in;
    return (bits >> slot) & 1u ? K_I64 : K_FLOAT;
}

#define IN(slot, name, var) TRY(v_slot(v, 0, (slot), (name), kind_of(v, 0, (slot)), 0, &(var)))
#define OUT(slot, name, var) TRY(v_slot(v, 1, (slot), (name), kind_of(v, 1, (slot)), 0, &(var)))
#define OPT_IN(slot, name, var) TRY(v_slot(v, 0, (slot), (name), kind_of(v, 0, (slot)), 1, &(var)))
#define OPT_OUT(slot, name, var) TRY(v_slot(v, 1, (slot), (name), kind_of(v, 1, (slot)), 1, &(var)))

static hcga_status v_shape(V *v, const hcga_tensor *t, const char *name, int nd,
                           const int64_t *dims)
{
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char b1[96], b2[96];
        hcga_tensor e;
        memset(&e, 0, sizeof e);
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

/* Outputs must not overlap inputs (except an identical view when
 * allow_exact: in-place) nor each other. */
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

/* ======================================================================= */
/* Convolution                                                             */
/* ======================================================================= */

/* img = x or dx [N,C,H,W]; res = y or dy [N,K,P,Q].  Fills ck->conv. */
static hcga_status v_conv(V *v, const hcga_tensor *img, const char *iname, const hcga_tensor *w,
                          const hcga_tensor *res, const char *rname)
{
    const hcga_conv_params *p = &v->a->p.conv;
    hcga_conv_dims *d = &v->ck->conv;
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
    /* The dilated filter extent dh*(R-1)+1 must fit in the padded input;
     * tested by division first so that dh*(R-1) cannot overflow. */
    const int64_t padh = d->H + 2 * d->ph, padw = d->W + 2 * d->pw;
    if ((d->R > 1 && d->dh > (padh - 1) / (d->R - 1)) ||
        (d->S > 1 && d->dw > (padw - 1) / (d->S - 1)))
        BAD("%s: the %lldx%lld filter (dilation %lld,%lld) is larger than the padded %lldx%lld input",
            v->op, (long long)d->R, (long long)d->S, (long long)d->dh, (long long)d->dw,
            (long long)padh, (long long)padw);
    d->P = (padh - d->dh * (d->R - 1) - 1) / d->sh + 1;
    d->Q = (padw - d->dw * (d->S - 1) - 1) / d->sw + 1;
    const int64_t want[4] = {d->N, d->K, d->P, d->Q};
    return v_shape(v, res, rname, 4, want);
}

static hcga_status chk_CONV2D_FWD(V *v)
{
    const hcga_tensor *x, *w, *b, *y;
    IN(HCGA_CONV_X, "x", x);
    IN(HCGA_CONV_W, "w", w);
    OPT_IN(HCGA_CONV_BIAS, "bias", b);
    OUT(0, "y", y);
    TRY(v_conv(v, x, "x", w, y, "y"));
    if (b) SHAPE(b, "bias", v->ck->conv.K);
    return v_noalias(v, 0);
}

/* The batch norm's per-channel vectors (gamma, beta, running mean and
 * variance): C values each. */
static hcga_status v_bn_vectors(V *v, const hcga_tensor *g, const hcga_tensor *b, const hcga_tensor *rm,
                                const hcga_tensor *rv, int64_t C)
{
    SHAPE(g, "gamma", C);
    SHAPE(b, "beta", C);
    SHAPE(rm, "running_mean", C);
    SHAPE(rv, "running_var", C);
    return HCGA_OK;
}

/* CONV2D_BN_INFER (ABI 1.3, optional): the convolution's rules, the batch
 * norm's per-channel vectors over the output channels, the residual of y's
 * shape and apart from it, eps as BN's, relu 0 or 1. */
static hcga_status chk_CONV2D_BN_INFER(V *v)
{
    const hcga_tensor *x, *w, *g, *b, *rm, *rv, *bias, *y;
    IN(HCGA_CBN_X, "x", x);
    IN(HCGA_CBN_W, "w", w);
    IN(HCGA_CBN_GAMMA, "gamma", g);
    IN(HCGA_CBN_BETA, "beta", b);
    IN(HCGA_CBN_RMEAN, "running_mean", rm);
    IN(HCGA_CBN_RVAR, "running_var", rv);
    OPT_IN(HCGA_CBN_BIAS, "bias", bias);
    const hcga_tensor *res;
    OPT_IN(HCGA_CBN_RES, "residual", res);
    OUT(0, "y", y);
    TRY(v_conv(v, x, "x", w, y, "y"));
    if (res) TRY(v_same(v, res, "residual", y, "y"));
    const int64_t K = v->ck->conv.K;
    TRY(v_bn_vectors(v, g, b, rm, rv, K));
    if (bias) SHAPE(bias, "bias", K);
    const hcga_conv_bn_params *p = &v->a->p.conv_bn;
    TRY(v_finite(v, p->eps, "conv_bn.eps"));
    if (p->eps < 0) BAD("%s: conv_bn.eps (%g) must be >= 0", v->op, p->eps);
    if (p->relu != 0 && p->relu != 1) BAD("%s: conv_bn.relu (%d) must be 0 or 1", v->op, p->relu);
    return v_noalias(v, 0);
}

static hcga_status chk_CONV2D_BWD_DATA(V *v)
{
    const hcga_tensor *dy, *w, *dx;
    IN(0, "dy", dy);
    IN(1, "w", w);
    OUT(0, "dx", dx);
    TRY(v_conv(v, dx, "dx", w, dy, "dy"));
    return v_noalias(v, 0);
}

static hcga_status chk_CONV2D_BWD_FILTER(V *v)
{
    const hcga_tensor *x, *dy, *dw, *db;
    IN(0, "x", x);
    IN(1, "dy", dy);
    OUT(0, "dw", dw);
    OPT_OUT(1, "dbias", db);
    TRY(v_conv(v, x, "x", dw, dy, "dy"));
    if (db) SHAPE(db, "dbias", v->ck->conv.K);
    return v_noalias(v, 0);
}

/* ======================================================================= */
/* Batch normalisation                                                     */
/* ======================================================================= */

/* x is [N,C] or [N,C,H,W]; fills ck->bn_*. */
static hcga_status v_bn_layout(V *v, const hcga_tensor *x, const char *name)
{
    if (x->ndim != 2 && x->ndim != 4) {
        char b[96];
        BAD("%s: %s must be [N,C] or [N,C,H,W], got %s", v->op, name, shp(x, b, sizeof b));
    }
    v->ck->bn_N = x->shape[0];
    v->ck->bn_C = x->shape[1];
    v->ck->bn_HW = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    return HCGA_OK;
}

/* v_bn_layout, then the bn parameters: eps finite and >= 0, momentum finite. */
static hcga_status v_bn_x(V *v, const hcga_tensor *x, const char *name)
{
    TRY(v_bn_layout(v, x, name));
    const hcga_bn_params *p = &v->a->p.bn;
    TRY(v_finite(v, p->eps, "bn.eps"));
    TRY(v_finite(v, p->momentum, "bn.momentum"));
    if (p->eps < 0) BAD("%s: bn.eps (%g) must be >= 0", v->op, p->eps);
    return HCGA_OK;
}

static hcga_status chk_BN_FWD_TRAIN(V *v)
{
    const hcga_tensor *x, *g, *b, *y, *sm, *si, *rm, *rv;
    IN(HCGA_BN_X, "x", x);
    IN(HCGA_BN_GAMMA, "gamma", g);
    IN(HCGA_BN_BETA, "beta", b);
    OUT(HCGA_BN_Y, "y", y);
    OUT(HCGA_BN_SAVE_MEAN, "save_mean", sm);
    OUT(HCGA_BN_SAVE_INVSTD, "save_invstd", si);
    OUT(HCGA_BN_RMEAN, "running_mean", rm);
    OUT(HCGA_BN_RVAR, "running_var", rv);
    TRY(v_bn_x(v, x, "x"));
    const int64_t N = v->ck->bn_N, C = v->ck->bn_C, HW = v->ck->bn_HW;
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
    return v_noalias(v, 1);
}

static hcga_status chk_BN_FWD_INFER(V *v)
{
    const hcga_tensor *x, *g, *b, *rm, *rv, *y;
    IN(HCGA_BN_X, "x", x);
    IN(HCGA_BN_GAMMA, "gamma", g);
    IN(HCGA_BN_BETA, "beta", b);
    IN(HCGA_BN_RMEAN_IN, "running_mean", rm);
    IN(HCGA_BN_RVAR_IN, "running_var", rv);
    OUT(0, "y", y);
    TRY(v_bn_x(v, x, "x"));
    const int64_t C = v->ck->bn_C;
    TRY(v_same(v, y, "y", x, "x"));
    TRY(v_bn_vectors(v, g, b, rm, rv, C));
    return v_noalias(v, 1);
}

static hcga_status chk_BN_BWD(V *v)
{
    const hcga_tensor *x, *dy, *g, *m, *is, *dx, *dg, *db;
    IN(HCGA_BNB_X, "x", x);
    IN(HCGA_BNB_DY, "dy", dy);
    IN(HCGA_BNB_GAMMA, "gamma", g);
    IN(HCGA_BNB_MEAN, "save_mean", m);
    IN(HCGA_BNB_INVSTD, "save_invstd", is);
    OUT(HCGA_BNB_DX, "dx", dx);
    OUT(HCGA_BNB_DGAMMA, "dgamma", dg);
    OUT(HCGA_BNB_DBETA, "dbeta", db);
    TRY(v_bn_x(v, x, "x"));
    const int64_t N = v->ck->bn_N, C = v->ck->bn_C, HW = v->ck->bn_HW;
    TRY(v_same(v, dy, "dy", x, "x"));
    TRY(v_same(v, dx, "dx", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(m, "save_mean", C);
    SHAPE(is, "save_invstd", C);
    SHAPE(dg, "dgamma", C);
    SHAPE(db, "dbeta", C);
    if (C > 0 && N * HW < 1) BAD("%s: x has no values per channel", v->op);
    return v_noalias(v, 1);
}

/* bn.count of the *_FROM_STATS ops (ABI 1.2): M >= 2 values per channel in
 * all parts together, and no fewer than this part's own N*H*W (after
 * v_bn_x filled ck->bn_*). */
static hcga_status v_bn_count(V *v)
{
    const int64_t M = v->a->p.bn.count, local = v->ck->bn_N * v->ck->bn_HW;
    if (M < 2) BAD("%s: bn.count (%lld) must be >= 2", v->op, (long long)M);
    if (M < local)
        BAD("%s: bn.count (%lld) is less than x's %lld values per channel (N*H*W)", v->op,
            (long long)M, (long long)local);
    return HCGA_OK;
}

/* BN_STATS reads no parameters: x's layout, two [C] outputs. */
static hcga_status chk_BN_STATS(V *v)
{
    const hcga_tensor *x, *sum, *sumsq;
    IN(HCGA_BN_X, "x", x);
    OUT(HCGA_BNS_SUM, "sum", sum);
    OUT(HCGA_BNS_SUMSQ, "sumsq", sumsq);
    TRY(v_bn_layout(v, x, "x"));
    const int64_t C = v->ck->bn_C;
    SHAPE(sum, "sum", C);
    SHAPE(sumsq, "sumsq", C);
    return v_noalias(v, 0);
}

static hcga_status chk_BN_FWD_FROM_STATS(V *v)
{
    const hcga_tensor *x, *g, *b, *sum, *sumsq, *y, *sm, *si, *rm, *rv;
    IN(HCGA_BN_X, "x", x);
    IN(HCGA_BN_GAMMA, "gamma", g);
    IN(HCGA_BN_BETA, "beta", b);
    IN(HCGA_BNF_SUM, "sum", sum);
    IN(HCGA_BNF_SUMSQ, "sumsq", sumsq);
    OUT(HCGA_BN_Y, "y", y);
    OUT(HCGA_BN_SAVE_MEAN, "save_mean", sm);
    OUT(HCGA_BN_SAVE_INVSTD, "save_invstd", si);
    OUT(HCGA_BN_RMEAN, "running_mean", rm);
    OUT(HCGA_BN_RVAR, "running_var", rv);
    TRY(v_bn_x(v, x, "x"));
    const int64_t C = v->ck->bn_C;
    TRY(v_same(v, y, "y", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(b, "beta", C);
    SHAPE(sum, "sum", C);
    SHAPE(sumsq, "sumsq", C);
    SHAPE(sm, "save_mean", C);
    SHAPE(si, "save_invstd", C);
    SHAPE(rm, "running_mean", C);
    SHAPE(rv, "running_var", C);
    TRY(v_bn_count(v));
    return v_noalias(v, 1);
}

static hcga_status chk_BN_BWD_FROM_STATS(V *v)
{
    const hcga_tensor *x, *dy, *g, *m, *is, *sdy, *sdyx, *dx;
    IN(HCGA_BNB_X, "x", x);
    IN(HCGA_BNB_DY, "dy", dy);
    IN(HCGA_BNB_GAMMA, "gamma", g);
    IN(HCGA_BNB_MEAN, "save_mean", m);
    IN(HCGA_BNB_INVSTD, "save_invstd", is);
    IN(HCGA_BNB_SUM_DY, "sum_dy", sdy);
    IN(HCGA_BNB_SUM_DY_XHAT, "sum_dy_xhat", sdyx);
    OUT(HCGA_BNB_DX, "dx", dx);
    TRY(v_bn_x(v, x, "x"));
    const int64_t C = v->ck->bn_C;
    TRY(v_same(v, dy, "dy", x, "x"));
    TRY(v_same(v, dx, "dx", x, "x"));
    SHAPE(g, "gamma", C);
    SHAPE(m, "save_mean", C);
    SHAPE(is, "save_invstd", C);
    SHAPE(sdy, "sum_dy", C);
    SHAPE(sdyx, "sum_dy_xhat", C);
    TRY(v_bn_count(v));
    return v_noalias(v, 1);
}

/* ======================================================================= */
/* Elementwise and broadcasting                                            */
/* ======================================================================= */

/* One input (n0) or two (n0, n1) of the same shape, one output of that
 * shape, in-place allowed; thresholds must be finite. */
static hcga_status v_ew(V *v, const char *n0, const char *n1, const char *nout, int thresh)
{
    const hcga_tensor *x0, *x1 = NULL, *y;
    IN(0, n0, x0);
    if (n1) IN(1, n1, x1);
    OUT(0, nout, y);
    if (x1) TRY(v_same(v, x1, n1, x0, n0));
    TRY(v_same(v, y, nout, x0, n0));
    TRY(v_noalias(v, 1));
    if (thresh) TRY(v_finite(v, v->a->p.scalar.a, "scalar.a (threshold)"));
    return HCGA_OK;
}

static hcga_status chk_RELU_FWD(V *v) { return v_ew(v, "x", NULL, "y", 0); }
static hcga_status chk_RELU_BWD(V *v) { return v_ew(v, "y", "dy", "dx", 0); }
static hcga_status chk_SIGMOID_FWD(V *v) { return v_ew(v, "x", NULL, "y", 0); }
static hcga_status chk_SIGMOID_BWD(V *v) { return v_ew(v, "y", "dy", "dx", 0); }
static hcga_status chk_THRESH_FWD(V *v) { return v_ew(v, "x", NULL, "y", 1); }
static hcga_status chk_THRESH_BWD(V *v) { return v_ew(v, "x", "dy", "dx", 1); }

/* ADD / MUL: numpy broadcasting of a and b to y (same ndim). */
static hcga_status v_binary(V *v, int mul)
{
    const hcga_tensor *ta, *tb, *y;
    IN(0, "a", ta);
    IN(1, "b", tb);
    OUT(0, "y", y);
    TRY(v_finite(v, v->a->p.scalar.a, "scalar.a (alpha)"));
    if (!mul) TRY(v_finite(v, v->a->p.scalar.b, "scalar.b (beta)"));
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
    return v_noalias(v, 1);
}

static hcga_status chk_ADD(V *v) { return v_binary(v, 0); }
static hcga_status chk_MUL(V *v) { return v_binary(v, 1); }

static hcga_status chk_SUM_TO(V *v)
{
    const hcga_tensor *x, *y;
    IN(0, "x", x);
    OUT(0, "y", y);
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
    return v_noalias(v, 1);
}

/* COPY: any strides, f32 <-> f64 conversion, x == y allowed. */
static hcga_status chk_COPY(V *v)
{
    const hcga_tensor *x = v->a->in[0], *y = v->a->out[0];
    if (!x) BAD("%s: x (in[0]) is missing", v->op);
    if (!y) BAD("%s: y (out[0]) is missing", v->op);
    TRY(v_tensor(v, x, "x", 0));
    TRY(v_tensor(v, y, "y", 0));
    TRY(v_same(v, y, "y", x, "x"));
    TRY(v_no_half(v, x, "x"));
    TRY(v_no_half(v, y, "y"));
    int fx = x->dtype == HCGA_F32 || x->dtype == HCGA_F64;
    int fy = y->dtype == HCGA_F32 || y->dtype == HCGA_F64;
    if (x->dtype != y->dtype && !(fx && fy))
        BAD("%s: cannot convert %s to %s (only f32 <-> f64)", v->op, hcga_dtype_name(x->dtype),
            hcga_dtype_name(y->dtype));
    if (overlaps(x, y) && !same_view(x, y)) BAD("%s: x and y overlap in the same buffer", v->op);
    if (fx) {
        v->dt = v->in_dt = x->dtype;
        v->out_dt = y->dtype;
    }
    return HCGA_OK;
}

/* CAST: x and y floating (f32, f64, bf16, f16), any pair, same shape,
 * dense; in place only as the identical view (then x and y have one dtype
 * and the cast is a no-op). */
static hcga_status chk_CAST(V *v)
{
    const hcga_tensor *x, *y;
    TRY(v_slot(v, 0, 0, "x", K_ANY, 0, &x));
    if (!hcga_dtype_is_float(x->dtype))
        BAD("%s: x has dtype %s, expected f32, f64, bf16 or f16", v->op, hcga_dtype_name(x->dtype));
    TRY(v_slot(v, 1, 0, "y", K_ANY, 0, &y));
    if (!hcga_dtype_is_float(y->dtype))
        BAD("%s: y has dtype %s, expected f32, f64, bf16 or f16", v->op, hcga_dtype_name(y->dtype));
    TRY(v_same(v, y, "y", x, "x"));
    TRY(v_noalias(v, 1));
    v->dt = v->in_dt = x->dtype;
    v->out_dt = y->dtype;
    return HCGA_OK;
}

/* FILL: any dtype; the value must be representable in it (NaN and Inf may
 * fill a float tensor). */
static hcga_status chk_FILL(V *v)
{
    const hcga_tensor *y;
    TRY(v_slot(v, 1, 0, "y", K_ANY, 0, &y));
    const double s = v->a->p.scalar.a;
    if (y->dtype == HCGA_F32 || y->dtype == HCGA_F64) {
        if (y->dtype == HCGA_F32 && isfinite(s) && fabs(s) > (double)3.4028234663852886e38)
            BAD("%s: %g does not fit in f32", v->op, s);
        v->dt = y->dtype;
        return HCGA_OK;
    }
    /* Integer dtypes: the value truncated toward zero must lie in [lo, hi).
     * lo <= 0 is an integer, so trunc(s) >= lo iff s >= lo or s > lo - 1. */
    const double lo = y->dtype == HCGA_I32 ? -2147483648.0
                      : y->dtype == HCGA_U8 ? 0.0
                                            : -9223372036854775808.0;
    const double hi = y->dtype == HCGA_I32 ? 2147483648.0
                      : y->dtype == HCGA_U8 ? 256.0
                                            : 9223372036854775808.0;
    if (!isfinite(s) || !(s >= lo || s > lo - 1.0) || s >= hi)
        BAD("%s: %g does not fit in %s", v->op, s, hcga_dtype_name(y->dtype));
    return HCGA_OK;
}

/* ======================================================================= */
/* Channel ops                                                             */
/* ======================================================================= */

static hcga_status v_nc(V *v, const hcga_tensor *x, const char *name)
{
    if (x->ndim < 2) {
        char b[96];
        BAD("%s: %s must have at least 2 dims [N,C,...], got %s", v->op, name, shp(x, b, sizeof b));
    }
    return HCGA_OK;
}

static hcga_status chk_SOFTMAX_FWD(V *v)
{
    const hcga_tensor *x, *y;
    IN(0, "x", x);
    OUT(0, "y", y);
    TRY(v_nc(v, x, "x"));
    TRY(v_same(v, y, "y", x, "x"));
    return v_noalias(v, 1);
}

static hcga_status chk_SOFTMAX_BWD(V *v)
{
    const hcga_tensor *y, *dy, *dx;
    IN(0, "y", y);
    IN(1, "dy", dy);
    OUT(0, "dx", dx);
    TRY(v_nc(v, y, "y"));
    TRY(v_same(v, dy, "dy", y, "y"));
    TRY(v_same(v, dx, "dx", y, "y"));
    return v_noalias(v, 1);
}

/* CONCAT (parts are inputs, whole is y) and SPLIT (whole is dy, parts are
 * outputs): any dtype, all the same; dim 1 sums, other dims equal. */
static hcga_status v_cat(V *v, int split)
{
    const hcga_op_args *a = v->a;
    const hcga_tensor *whole, *parts[HCGA_MAX_OP_IN > HCGA_MAX_OP_OUT ? HCGA_MAX_OP_IN : HCGA_MAX_OP_OUT];
    const int n = split ? a->num_out : a->num_in;
    const char *wn = split ? "dy" : "y";
    TRY(v_slot(v, !split, 0, wn, K_ANY, 0, &whole));
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
    int64_t csum = 0; /* at most 8 dims of at most 2^40 each */
    for (int i = 0; i < n; i++) csum += parts[i]->shape[1];
    if (csum != whole->shape[1])
        BAD("%s: the parts have %lld channels in total but %s has %lld", v->op, (long long)csum,
            wn, (long long)whole->shape[1]);
    TRY(v_noalias(v, 0));
    if (whole->dtype == HCGA_F32 || whole->dtype == HCGA_F64) v->dt = whole->dtype;
    return HCGA_OK;
}

static hcga_status chk_CONCAT(V *v) { return v_cat(v, 0); }
static hcga_status chk_SPLIT(V *v) { return v_cat(v, 1); }

static hcga_status chk_ARGMAX(V *v)
{
    const hcga_tensor *x, *idx;
    IN(0, "x", x);
    OUT(0, "idx", idx);
    TRY(v_nc(v, x, "x"));
    const int64_t N = x->shape[0], C = x->shape[1];
    int64_t S = 1;
    for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
    int64_t want[HCGA_MAX_DIMS];
    want[0] = N;
    for (int i = 2; i < x->ndim; i++) want[i - 1] = x->shape[i];
    TRY(v_shape(v, idx, "idx", x->ndim - 1, want));
    if (C < 1 && N * S > 0) BAD("%s: x has no channels to take the maximum over", v->op);
    return v_noalias(v, 0);
}

/* ======================================================================= */
/* Spatial                                                                 */
/* ======================================================================= */

static hcga_status v_factor(V *v)
{
    const int f = v->a->p.resize.factor;
    if (f < 1 || f > HCGA_CONTRACT_MAX_FACTOR)
        BAD("%s: resize.factor %d must be in 1..%d", v->op, f, HCGA_CONTRACT_MAX_FACTOR);
    return HCGA_OK;
}

static hcga_status chk_UPSAMPLE_NEAREST_FWD(V *v)
{
    const hcga_tensor *x, *y;
    IN(0, "x", x);
    OUT(0, "y", y);
    TRY(v_factor(v));
    const int64_t f = v->a->p.resize.factor;
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    SHAPE(y, "y", x->shape[0], x->shape[1], x->shape[2] * f, x->shape[3] * f);
    return v_noalias(v, 0);
}

static hcga_status chk_UPSAMPLE_NEAREST_BWD(V *v)
{
    const hcga_tensor *dy, *dx;
    IN(0, "dy", dy);
    OUT(0, "dx", dx);
    TRY(v_factor(v));
    const int64_t f = v->a->p.resize.factor;
    TRY(v_ndim(v, dx, "dx", 4, "[N,C,H,W]"));
    SHAPE(dy, "dy", dx->shape[0], dx->shape[1], dx->shape[2] * f, dx->shape[3] * f);
    return v_noalias(v, 0);
}

/* RESIZE_BILINEAR_FWD (x -> y) and _BWD (dy -> dx): small side [N,C,H,W],
 * big side [N,C,OH,OW]. */
static hcga_status v_resize(V *v, int bwd)
{
    const hcga_tensor *tin, *tout;
    IN(0, bwd ? "dy" : "x", tin);
    OUT(0, bwd ? "dx" : "y", tout);
    const hcga_tensor *small = bwd ? tout : tin, *big = bwd ? tin : tout;
    const char *sn = bwd ? "dx" : "x", *bn = bwd ? "dy" : "y";
    TRY(v_ndim(v, small, sn, 4, "[N,C,H,W]"));
    TRY(v_ndim(v, big, bn, 4, "[N,C,OH,OW]"));
    if (big->shape[0] != small->shape[0] || big->shape[1] != small->shape[1]) {
        char b1[96], b2[96];
        BAD("%s: %s %s and %s %s differ in N or C", v->op, sn, shp(small, b1, sizeof b1), bn,
            shp(big, b2, sizeof b2));
    }
    const int align = v->a->p.resize.align_corners;
    if (align != 0 && align != 1) BAD("%s: resize.align_corners %d must be 0 or 1", v->op, align);
    const int64_t H = small->shape[2], W = small->shape[3];
    const int64_t planes = small->shape[0] * small->shape[1];
    if (planes > 0 && big->shape[2] * big->shape[3] > 0 && (H < 1 || W < 1))
        BAD("%s: %s has an empty spatial size", v->op, sn);
    return v_noalias(v, 0);
}

static hcga_status chk_RESIZE_BILINEAR_FWD(V *v) { return v_resize(v, 0); }
static hcga_status chk_RESIZE_BILINEAR_BWD(V *v) { return v_resize(v, 1); }

static hcga_status chk_GAP_FWD(V *v)
{
    const hcga_tensor *x, *y;
    IN(0, "x", x);
    OUT(0, "y", y);
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    SHAPE(y, "y", x->shape[0], x->shape[1]);
    if (x->shape[2] * x->shape[3] < 1 && x->shape[0] * x->shape[1] > 0)
        BAD("%s: x has an empty spatial size", v->op);
    return v_noalias(v, 0);
}

static hcga_status chk_GAP_BWD(V *v)
{
    const hcga_tensor *dy, *dx;
    IN(0, "dy", dy);
    OUT(0, "dx", dx);
    TRY(v_ndim(v, dx, "dx", 4, "[N,C,H,W]"));
    SHAPE(dy, "dy", dx->shape[0], dx->shape[1]);
    return v_noalias(v, 0);
}

/* ======================================================================= */
/* GEMM                                                                    */
/* ======================================================================= */

static hcga_status chk_GEMM(V *v)
{
    const hcga_tensor *ta, *tb, *tc, *y;
    IN(0, "a", ta);
    IN(1, "b", tb);
    OPT_IN(2, "c", tc);
    OUT(0, "y", y);
    const hcga_gemm_params *p = &v->a->p.gemm;
    if ((p->trans_a != 0 && p->trans_a != 1) || (p->trans_b != 0 && p->trans_b != 1))
        BAD("%s: gemm.trans_a/trans_b must be 0 or 1 (got %d, %d)", v->op, p->trans_a, p->trans_b);
    TRY(v_finite(v, p->alpha, "gemm.alpha"));
    TRY(v_finite(v, p->beta, "gemm.beta"));
    TRY(v_ndim(v, ta, "a", 2, "matrix"));
    TRY(v_ndim(v, tb, "b", 2, "matrix"));
    TRY(v_ndim(v, y, "y", 2, "matrix"));
    const int64_t M = p->trans_a ? ta->shape[1] : ta->shape[0];
    const int64_t K = p->trans_a ? ta->shape[0] : ta->shape[1];
    const int64_t Kb = p->trans_b ? tb->shape[1] : tb->shape[0];
    const int64_t N = p->trans_b ? tb->shape[0] : tb->shape[1];
    if (K != Kb) {
        char b1[96], b2[96];
        BAD("%s: op(a) of a %s (trans %d) and op(b) of b %s (trans %d) disagree on K (%lld vs %lld)",
            v->op, shp(ta, b1, sizeof b1), p->trans_a, shp(tb, b2, sizeof b2), p->trans_b,
            (long long)K, (long long)Kb);
    }
    SHAPE(y, "y", M, N);
    if (tc) SHAPE(tc, "c", M, N);
    if (overlaps(ta, y)) BAD("%s: y overlaps a in the same buffer", v->op);
    if (overlaps(tb, y)) BAD("%s: y overlaps b in the same buffer", v->op);
    if (tc && overlaps(tc, y) && !same_view(tc, y))
        BAD("%s: c partially overlaps y (only c == y is allowed)", v->op);
    v->ck->gemm_M = M;
    v->ck->gemm_N = N;
    v->ck->gemm_K = K;
    return HCGA_OK;
}

/* ======================================================================= */
/* Reductions                                                              */
/* ======================================================================= */

static hcga_status v_reduce_kind(V *v)
{
    const int kind = v->a->p.reduce.kind;
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        BAD("%s: reduce.kind %d is not SUM, MEAN or ABS_MEAN", v->op, kind);
    return HCGA_OK;
}

static hcga_status chk_REDUCE(V *v)
{
    const hcga_tensor *x, *y;
    IN(0, "x", x);
    OUT(0, "y", y);
    TRY(v_scalar(v, y, "y"));
    TRY(v_reduce_kind(v));
    if (hcga_tensor_numel(x) == 0 && v->a->p.reduce.kind != HCGA_REDUCE_SUM)
        BAD("%s: mean of an empty tensor", v->op);
    return v_noalias(v, 0);
}

static hcga_status chk_REDUCE_BWD(V *v)
{
    const hcga_tensor *x, *dy, *dx;
    IN(0, "x", x);
    IN(1, "dy", dy);
    OUT(0, "dx", dx);
    TRY(v_scalar(v, dy, "dy"));
    TRY(v_same(v, dx, "dx", x, "x"));
    TRY(v_reduce_kind(v));
    return v_noalias(v, 1);
}

/* ======================================================================= */
/* Losses                                                                  */
/* ======================================================================= */

/* CE_LS_FWD / _BWD: logits[N,C], labels[N]; the label values are the
 * backend's to check. */
static hcga_status v_ce(V *v, int bwd)
{
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    IN(0, "logits", x);
    IN(1, "labels", lab);
    if (bwd) IN(2, "dloss", dl);
    OUT(0, bwd ? "dlogits" : "loss", out);
    TRY(v_ndim(v, x, "logits", 2, "[N,C]"));
    const int64_t N = x->shape[0], C = x->shape[1];
    SHAPE(lab, "labels", N);
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dlogits", x, "logits"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    const double eps = v->a->p.loss.eps;
    TRY(v_finite(v, eps, "loss.eps"));
    if (eps < 0 || eps > 1) BAD("%s: loss.eps %g must be in [0, 1]", v->op, eps);
    if (N < 1 || C < 1) BAD("%s: logits must have N >= 1 and C >= 1", v->op);
    return v_noalias(v, 0);
}

static hcga_status chk_CE_LS_FWD(V *v) { return v_ce(v, 0); }
static hcga_status chk_CE_LS_BWD(V *v) { return v_ce(v, 1); }

/* PIXEL_CE_FWD / _BWD: logits[N,K,H,W], labels[N,H,W]. */
static hcga_status v_pixce(V *v, int bwd)
{
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    IN(0, "logits", x);
    IN(1, "labels", lab);
    if (bwd) IN(2, "dloss", dl);
    OUT(0, bwd ? "dlogits" : "loss", out);
    TRY(v_ndim(v, x, "logits", 4, "[N,K,H,W]"));
    SHAPE(lab, "labels", x->shape[0], x->shape[2], x->shape[3]);
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dlogits", x, "logits"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    if (x->shape[1] < 1) BAD("%s: logits have no classes", v->op);
    return v_noalias(v, 0);
}

static hcga_status chk_PIXEL_CE_FWD(V *v) { return v_pixce(v, 0); }
static hcga_status chk_PIXEL_CE_BWD(V *v) { return v_pixce(v, 1); }

static hcga_status chk_TRIPLET_FWD(V *v)
{
    const hcga_tensor *x, *lab, *loss, *hard;
    IN(0, "x", x);
    IN(1, "labels", lab);
    OUT(0, "loss", loss);
    OUT(1, "hard", hard);
    TRY(v_ndim(v, x, "x", 2, "[N,D]"));
    const int64_t N = x->shape[0];
    SHAPE(lab, "labels", N);
    TRY(v_scalar(v, loss, "loss"));
    SHAPE(hard, "hard", N, 2);
    TRY(v_finite(v, v->a->p.loss.margin, "loss.margin"));
    if (N < 1) BAD("%s: x has no rows", v->op);
    return v_noalias(v, 0);
}

/* The values of hard (in -1..N-1) are the backend's to check. */
static hcga_status chk_TRIPLET_BWD(V *v)
{
    const hcga_tensor *x, *hard, *dl, *dx;
    IN(0, "x", x);
    IN(1, "hard", hard);
    IN(2, "dloss", dl);
    OUT(0, "dx", dx);
    TRY(v_ndim(v, x, "x", 2, "[N,D]"));
    const int64_t N = x->shape[0];
    SHAPE(hard, "hard", N, 2);
    TRY(v_scalar(v, dl, "dloss"));
    TRY(v_same(v, dx, "dx", x, "x"));
    TRY(v_finite(v, v->a->p.loss.margin, "loss.margin"));
    if (N < 1) BAD("%s: x has no rows", v->op);
    return v_noalias(v, 0);
}

/* SHIFT_L1_FWD (x -> loss) / _BWD (x, dloss -> dx). */
static hcga_status v_shift(V *v, int bwd)
{
    const hcga_tensor *x, *dl = NULL, *out;
    IN(0, "x", x);
    if (bwd) IN(1, "dloss", dl);
    OUT(0, bwd ? "dx" : "loss", out);
    TRY(v_ndim(v, x, "x", 4, "[N,C,H,W]"));
    if (bwd) {
        TRY(v_scalar(v, dl, "dloss"));
        TRY(v_same(v, out, "dx", x, "x"));
    } else {
        TRY(v_scalar(v, out, "loss"));
    }
    const hcga_shift_params *p = &v->a->p.shift;
    if (p->dn < -1 || p->dn > 1 || p->dh < -1 || p->dh > 1 || p->dw < -1 || p->dw > 1)
        BAD("%s: shift (dn,dh,dw) = (%d,%d,%d) must each be -1, 0 or 1", v->op, p->dn, p->dh, p->dw);
    return v_noalias(v, 0);
}

static hcga_status chk_SHIFT_L1_FWD(V *v) { return v_shift(v, 0); }
static hcga_status chk_SHIFT_L1_BWD(V *v) { return v_shift(v, 1); }

/* ======================================================================= */
/* Optimizers                                                              */
/* ======================================================================= */

static hcga_status v_optim(V *v, int adam)
{
    const hcga_optim_params *p = &v->a->p.optim;
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

static hcga_status chk_ADAM_STEP(V *v)
{
    const hcga_tensor *g, *p, *m, *vs;
    IN(0, "grad", g);
    OUT(HCGA_ADAM_PARAM, "param", p);
    OUT(HCGA_ADAM_M, "m", m);
    OUT(HCGA_ADAM_V, "v", vs);
    TRY(v_same(v, p, "param", g, "grad"));
    TRY(v_same(v, m, "m", g, "grad"));
    TRY(v_same(v, vs, "v", g, "grad"));
    TRY(v_optim(v, 1));
    TRY(v_noalias(v, 0));
    /* The bias corrections 1-beta1^t and sqrt(1-beta2^t) divide the step. */
    const hcga_optim_params *o = &v->a->p.optim;
    if (1.0 - pow(o->beta1, (double)o->step) <= 0 || sqrt(1.0 - pow(o->beta2, (double)o->step)) <= 0)
        BAD("%s: bias corrections vanish (beta1 %g, beta2 %g, step %lld)", v->op, o->beta1,
            o->beta2, (long long)o->step);
    return HCGA_OK;
}

static hcga_status chk_SGD_STEP(V *v)
{
    const hcga_tensor *g, *p, *b;
    IN(0, "grad", g);
    OUT(HCGA_SGD_PARAM, "param", p);
    OUT(HCGA_SGD_BUF, "buf", b);
    TRY(v_same(v, p, "param", g, "grad"));
    TRY(v_same(v, b, "buf", g, "grad"));
    TRY(v_optim(v, 0));
    return v_noalias(v, 0);
}

/* ======================================================================= */
/* Entry point                                                             */
/* ======================================================================= */

typedef hcga_status (*check_fn)(V *v);

/* One check function per catalogue row: chk_<ID> (optional rows too). */
static const check_fn checks[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = chk_##id_,
#define HCGA_OPT_OP(id_, ...) [HCGA_OP_##id_] = chk_##id_,
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
};

hcga_status hcga_contract_check(int op, const hcga_op_args *args, hcga_buffer_size_fn buffer_size,
                                hcga_checked *out, char *err, size_t err_len)
{
    hcga_checked local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    out->op = op;
    out->dtype = -1;
    if (err && err_len) err[0] = '\0';
    out->in_dtype = out->out_dtype = -1;
    V vv = {.a = args, .info = hcga_op_get_info(op), .op = hcga_op_name(op), .dt = -1,
            .in_dt = -2, .out_dt = -2, .bsize = buffer_size, .ck = out, .err = err, .err_len = err_len};
    V *v = &vv;
    if (!v->info) BAD("%s: op %d is not in this ABI (0..%d)", v->op, op, HCGA_OP_COUNT - 1);
    const hcga_op_args *a = args;
    if (!a) BAD("%s: called with NULL args", v->op);
    if (a->op != op)
        BAD("%s: args.op is %d (%s) but the %s entry of the op table was called", v->op, a->op,
            hcga_op_name(a->op), v->op);
    const hcga_op_info *info = v->info;
    if (a->num_in < info->in_min || a->num_in > info->in_max)
        BAD("%s: num_in is %d, expected %d..%d", v->op, a->num_in, info->in_min, info->in_max);
    if (a->num_out < info->out_min || a->num_out > info->out_max)
        BAD("%s: num_out is %d, expected %d..%d", v->op, a->num_out, info->out_min, info->out_max);
    TRY(checks[op](v));
    out->dtype = v->dt;
    out->in_dtype = v->in_dt == -2 ? v->dt : v->in_dt;
    out->out_dtype = v->out_dt == -2 ? v->dt : v->out_dt;
    return HCGA_OK;
}
