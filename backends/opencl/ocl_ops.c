/*
 * ocl_ops.c - the OpenCL backend's ops except GEMM and convolution
 * (ocl_blas.c).  Each op validates its tensors (slots, dtypes, shapes,
 * layout, bounds), then enqueues kernels from the kernels/ directory.  Semantics are
 * those of plugins/hcga_plugin.h.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ocl_internal.h"

#define TRY(expr)                                                                              \
    do {                                                                                       \
        hcga_status s_ = (expr);                                                               \
        if (s_ != HCGA_OK) return s_;                                                          \
    } while (0)

#define BEGIN_OP(opc)                                                                          \
    do {                                                                                       \
        be->op_name = hcga_op_name(opc);                                                       \
        if (!a) return ocl_fail(be, HCGA_ERR_INVALID, "args is NULL");                         \
    } while (0)

static const hcga_tensor *in_slot(const hcga_op_args *a, int i)
{
    return i < a->num_in && i < HCGA_MAX_OP_IN ? a->in[i] : NULL;
}

static const hcga_tensor *out_slot(const hcga_op_args *a, int i)
{
    return i < a->num_out && i < HCGA_MAX_OP_OUT ? a->out[i] : NULL;
}

/* ------------------------------------------------------------------------ */
/* Tensor checks                                                             */
/* ------------------------------------------------------------------------ */

int ocl_is_contiguous(const hcga_tensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* Lowest and one-past-highest element touched by a strided view. */
static void extent(const hcga_tensor *t, int64_t *lo, int64_t *hi)
{
    int64_t l = 0, h = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = 0;
            return;
        }
        int64_t span = (t->shape[d] - 1) * t->stride[d];
        if (span < 0)
            l += span;
        else
            h += span;
    }
    *lo = l;
    *hi = h + 1;
}

static hcga_status check_common(hcga_backend *be, const hcga_tensor *t, const char *slot,
                                int dtype, int contiguous)
{
    if (!t) return ocl_fail(be, HCGA_ERR_INVALID, "%s is missing", slot);
    if (!t->buf) return ocl_fail(be, HCGA_ERR_INVALID, "%s has no buffer", slot);
    if (t->dtype < 0 || t->dtype >= HCGA_DTYPE_COUNT)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s has unknown dtype %d", slot, t->dtype);
    if (dtype >= 0 && t->dtype != dtype)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s is %s, expected %s", slot,
                        hcga_dtype_name(t->dtype), hcga_dtype_name(dtype));
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s has ndim %d (0..%d)", slot, t->ndim,
                        HCGA_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return ocl_fail(be, HCGA_ERR_INVALID, "%s has negative dim %d", slot, d);
    size_t es = hcga_dtype_size(t->dtype);
    if (t->offset % es)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s offset %llu is not a multiple of %zu", slot,
                        (unsigned long long)t->offset, es);
    if (contiguous && !ocl_is_contiguous(t))
        return ocl_fail(be, HCGA_ERR_INVALID, "%s is not dense C-contiguous", slot);
    int64_t lo, hi;
    if (contiguous) {
        lo = 0;
        hi = hcga_tensor_numel(t);
    } else {
        extent(t, &lo, &hi);
    }
    int64_t e0 = (int64_t)(t->offset / es);
    if (hi > lo && (e0 + lo < 0 || (uint64_t)(e0 + hi) * es > t->buf->size))
        return ocl_fail(be, HCGA_ERR_INVALID,
                        "%s (offset %llu, %lld elements of %zu bytes) exceeds its buffer of "
                        "%llu bytes",
                        slot, (unsigned long long)t->offset, (long long)(hi - lo), es,
                        (unsigned long long)t->buf->size);
    return HCGA_OK;
}

hcga_status ocl_check_tensor(hcga_backend *be, const hcga_tensor *t, const char *slot, int dtype)
{
    return check_common(be, t, slot, dtype, 1);
}

/* The float dtype of an op, taken from its first tensor. */
hcga_status ocl_float_dtype(hcga_backend *be, const hcga_tensor *t, const char *slot, int *dt)
{
    TRY(check_common(be, t, slot, -1, 1));
    if (t->dtype != HCGA_F32 && t->dtype != HCGA_F64)
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "%s is %s; this op takes f32 or f64", slot,
                        hcga_dtype_name(t->dtype));
    if (t->dtype == HCGA_F64 && !be->has_fp64)
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "f64 needs cl_khr_fp64, which this device lacks");
    *dt = t->dtype;
    return HCGA_OK;
}

static hcga_status same_shape(hcga_backend *be, const hcga_tensor *x, const char *xn,
                              const hcga_tensor *y, const char *yn)
{
    int same = x->ndim == y->ndim;
    for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == y->shape[d];
    if (!same)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s and %s differ in shape", xn, yn);
    return HCGA_OK;
}

static hcga_status want_numel(hcga_backend *be, const hcga_tensor *t, const char *slot,
                              int64_t n)
{
    if (hcga_tensor_numel(t) != n)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s has %lld elements, expected %lld", slot,
                        (long long)hcga_tensor_numel(t), (long long)n);
    return HCGA_OK;
}

static hcga_status want_ndim(hcga_backend *be, const hcga_tensor *t, const char *slot, int lo,
                             int hi)
{
    if (t->ndim < lo || t->ndim > hi) {
        if (lo == hi)
            return ocl_fail(be, HCGA_ERR_INVALID, "%s has ndim %d, expected %d", slot, t->ndim,
                            lo);
        return ocl_fail(be, HCGA_ERR_INVALID, "%s has ndim %d, expected %d..%d", slot, t->ndim,
                        lo, hi);
    }
    return HCGA_OK;
}

/* Product of dims [from, ndim). */
static int64_t dims_from(const hcga_tensor *t, int from)
{
    int64_t n = 1;
    for (int d = from; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* ------------------------------------------------------------------------ */
/* Scratch carving                                                           */
/* ------------------------------------------------------------------------ */

typedef struct carve {
    size_t used;
} carve;

/* Reserves n elements of es bytes; returns the element offset. */
static int64_t carve_take(carve *c, int64_t n, size_t es)
{
    size_t off = (c->used + 63) / 64 * 64;
    c->used = off + (size_t)(n > 0 ? n : 1) * es;
    return (int64_t)(off / es);
}

/* ------------------------------------------------------------------------ */
/* Elementwise                                                               */
/* ------------------------------------------------------------------------ */

static hcga_status unary(hcga_backend *be, const hcga_op_args *a, int opc, int kt, int nparam,
                         double p0)
{
    BEGIN_OP(opc);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0]", &dt));
    TRY(ocl_check_tensor(be, y, "out[0]", dt));
    TRY(same_shape(be, x, "in[0]", y, "out[0]"));
    int64_t n = hcga_tensor_numel(x);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, kt), hcga_op_name(opc), dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, n);
    if (nparam) ocl_arg_real(&l, p0);
    return ocl_run(&l, (size_t)n, 0);
}

static hcga_status binary_grad(hcga_backend *be, const hcga_op_args *a, int opc, int kt,
                               int nparam, double p0)
{
    BEGIN_OP(opc);
    const hcga_tensor *u = in_slot(a, 0), *dy = in_slot(a, 1), *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, u, "in[0]", &dt));
    TRY(ocl_check_tensor(be, dy, "in[1] (dy)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(same_shape(be, u, "in[0]", dy, "in[1] (dy)"));
    TRY(same_shape(be, u, "in[0]", dx, "out[0] (dx)"));
    int64_t n = hcga_tensor_numel(u);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, kt), hcga_op_name(opc), dt);
    ocl_arg_tensor(&l, u);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, n);
    if (nparam) ocl_arg_real(&l, p0);
    return ocl_run(&l, (size_t)n, 0);
}

static hcga_status op_relu_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return unary(be, a, HCGA_OP_RELU_FWD, KT_relu_fwd, 0, 0);
}
static hcga_status op_relu_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return binary_grad(be, a, HCGA_OP_RELU_BWD, KT_relu_bwd, 0, 0);
}
static hcga_status op_sigmoid_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return unary(be, a, HCGA_OP_SIGMOID_FWD, KT_sigmoid_fwd, 0, 0);
}
static hcga_status op_sigmoid_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return binary_grad(be, a, HCGA_OP_SIGMOID_BWD, KT_sigmoid_bwd, 0, 0);
}
static hcga_status op_thresh_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return unary(be, a, HCGA_OP_THRESH_FWD, KT_thresh_fwd, 1, a ? a->p.scalar.a : 0);
}
static hcga_status op_thresh_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return binary_grad(be, a, HCGA_OP_THRESH_BWD, KT_thresh_bwd, 1, a ? a->p.scalar.a : 0);
}

/* Pads a contiguous tensor's shape to 5 dims (leading 1s) and gives the
 * strides to read it broadcast to the padded out shape (0 on dims of size 1
 * that are broadcast). */
static void bcast5(const hcga_tensor *t, const int64_t *oshape5, int64_t shape5[5],
                   int64_t stride5[5])
{
    int pad = 5 - t->ndim;
    for (int d = 0; d < 5; d++) shape5[d] = d < pad ? 1 : t->shape[d - pad];
    int64_t s = 1;
    for (int d = 4; d >= 0; d--) {
        stride5[d] = (shape5[d] == 1 && oshape5[d] != 1) ? 0 : s;
        s *= shape5[d];
    }
}

static hcga_status add_mul(hcga_backend *be, const hcga_op_args *a, int opc)
{
    BEGIN_OP(opc);
    const hcga_tensor *x = in_slot(a, 0), *b = in_slot(a, 1), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, y, "out[0]", &dt));
    TRY(ocl_check_tensor(be, x, "in[0] (a)", dt));
    TRY(ocl_check_tensor(be, b, "in[1] (b)", dt));
    if (x->ndim != y->ndim || b->ndim != y->ndim)
        return ocl_fail(be, HCGA_ERR_INVALID, "a, b and y need the same ndim (%d, %d, %d)",
                        x->ndim, b->ndim, y->ndim);
    int same = 1;
    for (int d = 0; d < y->ndim; d++) {
        if ((x->shape[d] != y->shape[d] && x->shape[d] != 1) ||
            (b->shape[d] != y->shape[d] && b->shape[d] != 1))
            return ocl_fail(be, HCGA_ERR_INVALID,
                            "dim %d: a has %lld, b has %lld, y has %lld (each must equal y's or "
                            "be 1)",
                            d, (long long)x->shape[d], (long long)b->shape[d],
                            (long long)y->shape[d]);
        if (x->shape[d] != y->shape[d] || b->shape[d] != y->shape[d]) same = 0;
    }
    int op = opc == HCGA_OP_ADD ? 0 : 1;
    double alpha = a->p.scalar.a, beta = op == 0 ? a->p.scalar.b : 0.0;
    int64_t n = hcga_tensor_numel(y);
    ocl_launch l;
    if (same) {
        ocl_begin(&l, be, ocl_kt(be, dt, KT_binary_same), "binary_same", dt);
        ocl_arg_tensor(&l, x);
        ocl_arg_tensor(&l, b);
        ocl_arg_tensor(&l, y);
        ocl_arg_long(&l, n);
        ocl_arg_int(&l, op);
        ocl_arg_real(&l, alpha);
        ocl_arg_real(&l, beta);
        return ocl_run(&l, (size_t)n, 0);
    }
    int64_t ys[5], ystr[5], xs[5], xstr[5], bs[5], bstr[5];
    int64_t ones[5] = {1, 1, 1, 1, 1};
    bcast5(y, ones, ys, ystr);
    bcast5(x, ys, xs, xstr);
    bcast5(b, ys, bs, bstr);
    /* merge dims: drop size-1 dims, join neighbours that continue each
     * other in both a and b (stride[i] == stride[i+1]*size[i+1]) */
    int64_t md[5], ma[5], mb[5];
    int nd = 0;
    for (int d = 0; d < 5; d++) {
        if (ys[d] == 1) continue;
        if (nd > 0 && ma[nd - 1] == xstr[d] * ys[d] && mb[nd - 1] == bstr[d] * ys[d]) {
            md[nd - 1] *= ys[d];
            ma[nd - 1] = xstr[d];
            mb[nd - 1] = bstr[d];
            continue;
        }
        md[nd] = ys[d];
        ma[nd] = xstr[d];
        mb[nd] = bstr[d];
        nd++;
    }
    if (nd <= 3) {
        int64_t d3[3] = {1, 1, 1}, a3[3] = {0, 0, 0}, b3[3] = {0, 0, 0};
        for (int i = 0; i < nd; i++) {
            d3[3 - nd + i] = md[i];
            a3[3 - nd + i] = ma[i];
            b3[3 - nd + i] = mb[i];
        }
        ocl_begin(&l, be, ocl_kt(be, dt, KT_binary_bcast3), "binary_bcast3", dt);
        ocl_arg_tensor(&l, x);
        ocl_arg_tensor(&l, b);
        ocl_arg_tensor(&l, y);
        ocl_arg_int(&l, op);
        ocl_arg_real(&l, alpha);
        ocl_arg_real(&l, beta);
        ocl_arg_long(&l, d3[1]);
        ocl_arg_long(&l, d3[2]);
        for (int i = 0; i < 3; i++) ocl_arg_long(&l, a3[i]);
        for (int i = 0; i < 3; i++) ocl_arg_long(&l, b3[i]);
        return ocl_run_nd(&l, 3, (size_t)d3[2], (size_t)d3[1], (size_t)d3[0]);
    }
    ocl_begin(&l, be, ocl_kt(be, dt, KT_binary_bcast), "binary_bcast", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, b);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, n);
    ocl_arg_int(&l, op);
    ocl_arg_real(&l, alpha);
    ocl_arg_real(&l, beta);
    for (int d = 1; d < 5; d++) ocl_arg_long(&l, ys[d]);
    for (int d = 0; d < 5; d++) ocl_arg_long(&l, xstr[d]);
    for (int d = 0; d < 5; d++) ocl_arg_long(&l, bstr[d]);
    return ocl_run(&l, (size_t)n, 0);
}

static hcga_status op_add(hcga_backend *be, const hcga_op_args *a)
{
    return add_mul(be, a, HCGA_OP_ADD);
}
static hcga_status op_mul(hcga_backend *be, const hcga_op_args *a)
{
    return add_mul(be, a, HCGA_OP_MUL);
}

/* Sum of x over the dims where the 5-dim y shape is 1 (x dense), scaled. */
hcga_status ocl_sum_to5(hcga_backend *be, int dt, const hcga_tensor *x, const int64_t xs[5],
                        const hcga_tensor *y, const int64_t ys[5], double scale)
{
    int64_t rs[5], st[5], nout = 1, nred = 1;
    int64_t s = 1;
    for (int d = 4; d >= 0; d--) {
        st[d] = s;
        s *= xs[d];
    }
    for (int d = 0; d < 5; d++) {
        rs[d] = ys[d] == 1 ? xs[d] : 1;
        nout *= ys[d];
        nred *= rs[d];
    }
    if (nout == 0) return HCGA_OK;
    if (nred == 0) return ocl_fill(be, y->buf->mem, y->offset,
                                   (size_t)nout * hcga_dtype_size(dt), dt, 0.0);
    /* a work-group per output when many elements are summed and the last
     * dim is summed too (outputs strided); else an item per output, whose
     * neighbours read neighbouring elements when the last dim is kept */
    int wg = nred >= OCL_RLWS && ys[4] == 1;
    int64_t inner = 1;
    if (wg) {
        int last = -1;
        for (int d = 0; d < 5; d++)
            if (ys[d] > 1) last = d;
        for (int d = last + 1; d < 5; d++) inner *= xs[d];
    }
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, wg ? KT_sum_to_wg : KT_sum_to_item),
              wg ? "sum_to_wg" : "sum_to_item", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, nout);
    ocl_arg_long(&l, wg ? nred : rs[0]);
    ocl_arg_acc(&l, scale);
    for (int d = 1; d < 5; d++) ocl_arg_long(&l, ys[d]);
    for (int d = 1; d < 5; d++) ocl_arg_long(&l, rs[d]);
    for (int d = 0; d < 5; d++) ocl_arg_long(&l, st[d]);
    if (wg) {
        ocl_arg_long(&l, inner);
        return ocl_run(&l, (size_t)nout * OCL_RLWS, OCL_RLWS);
    }
    return ocl_run(&l, (size_t)nout, 0);
}

static hcga_status op_sum_to(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SUM_TO);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(ocl_check_tensor(be, y, "out[0] (y)", dt));
    if (x->ndim != y->ndim)
        return ocl_fail(be, HCGA_ERR_INVALID, "x has ndim %d, y has %d (must match)", x->ndim,
                        y->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (y->shape[d] != x->shape[d] && y->shape[d] != 1)
            return ocl_fail(be, HCGA_ERR_INVALID,
                            "dim %d: y has %lld, x has %lld (must be equal or 1)", d,
                            (long long)y->shape[d], (long long)x->shape[d]);
    int64_t xs[5], ys[5], dummy[5], ones[5] = {1, 1, 1, 1, 1};
    bcast5(x, ones, xs, dummy);
    bcast5(y, ones, ys, dummy);
    return ocl_sum_to5(be, dt, x, xs, y, ys, 1.0);
}

static hcga_status op_copy(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_COPY);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    TRY(check_common(be, x, "in[0] (x)", -1, 0));
    TRY(check_common(be, y, "out[0] (y)", -1, 0));
    TRY(same_shape(be, x, "in[0] (x)", y, "out[0] (y)"));
    int k;
    int sx = x->dtype, sy = y->dtype;
    int fx = sx == HCGA_F32 || sx == HCGA_F64, fy = sy == HCGA_F32 || sy == HCGA_F64;
    if ((sx == HCGA_F64 || sy == HCGA_F64) && !be->has_fp64)
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "f64 needs cl_khr_fp64, which this device lacks");
    if (fx && fy)
        k = sx == HCGA_F32 ? (sy == HCGA_F32 ? KP_copy_f32_f32 : KP_copy_f32_f64)
                           : (sy == HCGA_F32 ? KP_copy_f64_f32 : KP_copy_f64_f64);
    else if (sx == sy && sx == HCGA_I64)
        k = KP_copy_i64_i64;
    else if (sx == sy && sx == HCGA_I32)
        k = KP_copy_i32_i32;
    else if (sx == sy && sx == HCGA_U8)
        k = KP_copy_u8_u8;
    else
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "copy from %s to %s", hcga_dtype_name(sx),
                        hcga_dtype_name(sy));
    int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    size_t es = hcga_dtype_size(sx);
    if (sx == sy && ocl_is_contiguous(x) && ocl_is_contiguous(y)) {
        size_t bytes = (size_t)n * es;
        if (x->buf == y->buf && x->offset == y->offset) return HCGA_OK;
        int overlap = x->buf == y->buf && x->offset < y->offset + bytes &&
                      y->offset < x->offset + bytes;
        if (!overlap) {
            OCL_CHECK(be, clEnqueueCopyBuffer(be->queue, x->buf->mem, y->buf->mem, x->offset,
                                              y->offset, bytes, 0, NULL, NULL),
                      "clEnqueueCopyBuffer");
            return HCGA_OK;
        }
        return ocl_fail(be, HCGA_ERR_INVALID, "source and destination overlap");
    }
    int64_t sh[5], xst[5], yst[5];
    int pad = 5 - x->ndim;
    for (int d = 0; d < 5; d++) {
        sh[d] = d < pad ? 1 : x->shape[d - pad];
        xst[d] = d < pad ? 0 : x->stride[d - pad];
        yst[d] = d < pad ? 0 : y->stride[d - pad];
    }
    ocl_launch l;
    ocl_begin(&l, be, be->plain[k], "copy", HCGA_F32);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, n);
    for (int d = 1; d < 5; d++) ocl_arg_long(&l, sh[d]);
    for (int d = 0; d < 5; d++) ocl_arg_long(&l, xst[d]);
    for (int d = 0; d < 5; d++) ocl_arg_long(&l, yst[d]);
    return ocl_run(&l, (size_t)n, 0);
}

static hcga_status op_fill(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_FILL);
    const hcga_tensor *y = out_slot(a, 0);
    TRY(ocl_check_tensor(be, y, "out[0] (y)", -1));
    if (y->dtype == HCGA_F64 && !be->has_fp64)
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "f64 needs cl_khr_fp64, which this device lacks");
    size_t es = hcga_dtype_size(y->dtype);
    return ocl_fill(be, y->buf->mem, y->offset, (size_t)hcga_tensor_numel(y) * es, y->dtype,
                    a->p.scalar.a);
}

/* ------------------------------------------------------------------------ */
/* Channel ops                                                               */
/* ------------------------------------------------------------------------ */

static hcga_status op_softmax_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SOFTMAX_FWD);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(ocl_check_tensor(be, y, "out[0] (y)", dt));
    TRY(want_ndim(be, x, "in[0] (x)", 2, 5));
    TRY(same_shape(be, x, "in[0] (x)", y, "out[0] (y)"));
    int64_t c = x->shape[1], inner = dims_from(x, 2);
    if (c == 0) return HCGA_OK;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_softmax_fwd), "softmax_fwd", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, inner);
    return ocl_run_nd(&l, 2, (size_t)inner, (size_t)x->shape[0], 1);
}

static hcga_status op_softmax_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SOFTMAX_BWD);
    const hcga_tensor *y = in_slot(a, 0), *dy = in_slot(a, 1), *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, y, "in[0] (y)", &dt));
    TRY(ocl_check_tensor(be, dy, "in[1] (dy)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(want_ndim(be, y, "in[0] (y)", 2, 5));
    TRY(same_shape(be, y, "in[0] (y)", dy, "in[1] (dy)"));
    TRY(same_shape(be, y, "in[0] (y)", dx, "out[0] (dx)"));
    int64_t c = y->shape[1], inner = dims_from(y, 2);
    if (c == 0) return HCGA_OK;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_softmax_bwd), "softmax_bwd", dt);
    ocl_arg_tensor(&l, y);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, inner);
    return ocl_run_nd(&l, 2, (size_t)inner, (size_t)y->shape[0], 1);
}

/* CONCAT (split = 0) or SPLIT (split = 1): whole = y / dy, parts = x_i / dx_i. */
static hcga_status concat_split(hcga_backend *be, const hcga_op_args *a, int split)
{
    BEGIN_OP(split ? HCGA_OP_SPLIT : HCGA_OP_CONCAT);
    const hcga_tensor *whole = split ? in_slot(a, 0) : out_slot(a, 0);
    int nparts = split ? a->num_out : a->num_in;
    const char *wn = split ? "in[0] (dy)" : "out[0] (y)";
    int dt;
    TRY(ocl_float_dtype(be, whole, wn, &dt));
    TRY(want_ndim(be, whole, wn, 2, 5));
    if (nparts < 1 || nparts > 8)
        return ocl_fail(be, HCGA_ERR_INVALID, "%d parts (1..8)", nparts);
    int64_t csum = 0;
    for (int i = 0; i < nparts; i++) {
        const hcga_tensor *p = split ? out_slot(a, i) : in_slot(a, i);
        char slot[32];
        snprintf(slot, sizeof slot, split ? "out[%d]" : "in[%d]", i);
        TRY(ocl_check_tensor(be, p, slot, dt));
        if (p->ndim != whole->ndim)
            return ocl_fail(be, HCGA_ERR_INVALID, "%s has ndim %d, %s has %d", slot, p->ndim, wn,
                            whole->ndim);
        for (int d = 0; d < p->ndim; d++)
            if (d != 1 && p->shape[d] != whole->shape[d])
                return ocl_fail(be, HCGA_ERR_INVALID, "%s dim %d is %lld, %s has %lld", slot, d,
                                (long long)p->shape[d], wn, (long long)whole->shape[d]);
        csum += p->shape[1];
    }
    if (csum != whole->shape[1])
        return ocl_fail(be, HCGA_ERR_INVALID, "parts have %lld channels in all, %s has %lld",
                        (long long)csum, wn, (long long)whole->shape[1]);
    int64_t inner = dims_from(whole, 2), rows = whole->shape[0];
    int64_t wpitch = whole->shape[1] * inner, coff = 0;
    for (int i = 0; i < nparts; i++) {
        const hcga_tensor *p = split ? out_slot(a, i) : in_slot(a, i);
        int64_t cols = p->shape[1] * inner;
        ocl_launch l;
        ocl_begin(&l, be, ocl_kt(be, dt, KT_copy_rows), "copy_rows", dt);
        if (split) {
            ocl_arg_mem(&l, whole->buf->mem);
            ocl_arg_long(&l, ocl_eoff(whole) + coff * inner);
            ocl_arg_long(&l, wpitch);
            ocl_arg_tensor(&l, p);
            ocl_arg_long(&l, cols);
        } else {
            ocl_arg_tensor(&l, p);
            ocl_arg_long(&l, cols);
            ocl_arg_mem(&l, whole->buf->mem);
            ocl_arg_long(&l, ocl_eoff(whole) + coff * inner);
            ocl_arg_long(&l, wpitch);
        }
        TRY(ocl_run_nd(&l, 2, (size_t)cols, (size_t)rows, 1));
        coff += p->shape[1];
    }
    return HCGA_OK;
}

static hcga_status op_concat(hcga_backend *be, const hcga_op_args *a)
{
    return concat_split(be, a, 0);
}
static hcga_status op_split(hcga_backend *be, const hcga_op_args *a)
{
    return concat_split(be, a, 1);
}

static hcga_status op_argmax(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_ARGMAX);
    const hcga_tensor *x = in_slot(a, 0), *idx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(want_ndim(be, x, "in[0] (x)", 2, 5));
    TRY(ocl_check_tensor(be, idx, "out[0] (idx)", HCGA_I64));
    int64_t c = x->shape[1], inner = dims_from(x, 2), rows = x->shape[0] * inner;
    TRY(want_numel(be, idx, "out[0] (idx)", rows));
    if (c == 0) return ocl_fail(be, HCGA_ERR_INVALID, "x has 0 channels");
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_argmax), "argmax", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, idx);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, inner);
    return ocl_run_nd(&l, 2, (size_t)inner, (size_t)x->shape[0], 1);
}

/* ------------------------------------------------------------------------ */
/* Spatial                                                                   */
/* ------------------------------------------------------------------------ */

/* Checks x[N,C,H,W] (small) and y[N,C,OH,OW] (big) of one dtype. */
static hcga_status pair4(hcga_backend *be, const hcga_tensor *small, const char *sn,
                         const hcga_tensor *big, const char *bn, int *dt)
{
    TRY(ocl_float_dtype(be, small, sn, dt));
    TRY(ocl_check_tensor(be, big, bn, *dt));
    TRY(want_ndim(be, small, sn, 4, 4));
    TRY(want_ndim(be, big, bn, 4, 4));
    if (small->shape[0] != big->shape[0] || small->shape[1] != big->shape[1])
        return ocl_fail(be, HCGA_ERR_INVALID, "%s and %s differ in N or C", sn, bn);
    return HCGA_OK;
}

static hcga_status upsample(hcga_backend *be, const hcga_op_args *a, int bwd)
{
    BEGIN_OP(bwd ? HCGA_OP_UPSAMPLE_NEAREST_BWD : HCGA_OP_UPSAMPLE_NEAREST_FWD);
    const hcga_tensor *src = in_slot(a, 0), *dst = out_slot(a, 0);
    const hcga_tensor *small = bwd ? dst : src, *big = bwd ? src : dst;
    const char *sn = bwd ? "out[0] (dx)" : "in[0] (x)", *bn = bwd ? "in[0] (dy)" : "out[0] (y)";
    int dt;
    TRY(pair4(be, small, sn, big, bn, &dt));
    int64_t f = a->p.resize.factor;
    if (f < 1) return ocl_fail(be, HCGA_ERR_INVALID, "resize.factor %lld < 1", (long long)f);
    int64_t h = small->shape[2], w = small->shape[3];
    if (big->shape[2] != h * f || big->shape[3] != w * f)
        return ocl_fail(be, HCGA_ERR_INVALID, "%s is %lldx%lld, expected %lldx%lld (factor %lld)",
                        bn, (long long)big->shape[2], (long long)big->shape[3],
                        (long long)(h * f), (long long)(w * f), (long long)f);
    const hcga_tensor *o = bwd ? small : big;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, bwd ? KT_upsample_bwd : KT_upsample_fwd),
              bwd ? "upsample_bwd" : "upsample_fwd", dt);
    ocl_arg_tensor(&l, src);
    ocl_arg_tensor(&l, dst);
    ocl_arg_long(&l, h);
    ocl_arg_long(&l, w);
    ocl_arg_long(&l, f);
    return ocl_run_nd(&l, 3, (size_t)o->shape[3], (size_t)o->shape[2],
                      (size_t)(o->shape[0] * o->shape[1]));
}

static hcga_status op_upsample_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return upsample(be, a, 0);
}
static hcga_status op_upsample_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return upsample(be, a, 1);
}

static hcga_status bilinear(hcga_backend *be, const hcga_op_args *a, int bwd)
{
    BEGIN_OP(bwd ? HCGA_OP_RESIZE_BILINEAR_BWD : HCGA_OP_RESIZE_BILINEAR_FWD);
    const hcga_tensor *src = in_slot(a, 0), *dst = out_slot(a, 0);
    const hcga_tensor *small = bwd ? dst : src, *big = bwd ? src : dst;
    const char *sn = bwd ? "out[0] (dx)" : "in[0] (x)", *bn = bwd ? "in[0] (dy)" : "out[0] (y)";
    int dt;
    TRY(pair4(be, small, sn, big, bn, &dt));
    int64_t h = small->shape[2], w = small->shape[3], oh = big->shape[2], ow = big->shape[3];
    if ((h == 0 || w == 0) && oh * ow > 0)
        return ocl_fail(be, HCGA_ERR_INVALID, "cannot resize an empty %lldx%lld image",
                        (long long)h, (long long)w);
    const hcga_tensor *o = bwd ? small : big;
    int64_t nc = small->shape[0] * small->shape[1];
    int align = a->p.resize.align_corners ? 1 : 0;
    ocl_launch l;
    if (bwd) {
        /* separable: along W into tmp[N*C, OH, W] (HK_ACC), then along H */
        if (nc * h * w == 0) return HCGA_OK;
        size_t as = ocl_acc_size(be, dt);
        carve cv = {0};
        int64_t to = carve_take(&cv, nc * oh * w, as);
        int64_t hi = carve_take(&cv, 2 * oh, sizeof(cl_long)), hl = carve_take(&cv, oh, as);
        int64_t wi = carve_take(&cv, 2 * ow, sizeof(cl_long)), wl = carve_take(&cv, ow, as);
        TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
        for (int axis = 0; axis < 2; axis++) {
            ocl_begin(&l, be, ocl_kt(be, dt, KT_bilinear_table), "bilinear_table", dt);
            ocl_arg_mem(&l, be->scratch);
            ocl_arg_long(&l, axis ? wi : hi);
            ocl_arg_mem(&l, be->scratch);
            ocl_arg_long(&l, axis ? wl : hl);
            ocl_arg_long(&l, axis ? w : h);
            ocl_arg_long(&l, axis ? ow : oh);
            ocl_arg_int(&l, align);
            TRY(ocl_run(&l, (size_t)(axis ? ow : oh), 0));
        }
        ocl_begin(&l, be, ocl_kt(be, dt, KT_bilinear_bwd_w), "bilinear_bwd_w", dt);
        ocl_arg_tensor(&l, src);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, to);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, wi);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, wl);
        ocl_arg_long(&l, w);
        ocl_arg_long(&l, oh);
        ocl_arg_long(&l, ow);
        ocl_arg_int(&l, align);
        TRY(ocl_run_nd(&l, 3, (size_t)w, (size_t)oh, (size_t)nc));
        ocl_begin(&l, be, ocl_kt(be, dt, KT_bilinear_bwd_h), "bilinear_bwd_h", dt);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, to);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, hi);
        ocl_arg_mem(&l, be->scratch);
        ocl_arg_long(&l, hl);
        ocl_arg_tensor(&l, dst);
        ocl_arg_long(&l, h);
        ocl_arg_long(&l, w);
        ocl_arg_long(&l, oh);
        ocl_arg_int(&l, align);
        return ocl_run_nd(&l, 3, (size_t)w, (size_t)h, (size_t)nc);
    }
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bilinear_fwd), "bilinear_fwd", dt);
    ocl_arg_tensor(&l, src);
    ocl_arg_tensor(&l, dst);
    ocl_arg_long(&l, h);
    ocl_arg_long(&l, w);
    ocl_arg_long(&l, oh);
    ocl_arg_long(&l, ow);
    ocl_arg_int(&l, align);
    return ocl_run_nd(&l, 3, (size_t)o->shape[3], (size_t)o->shape[2], (size_t)nc);
}

static hcga_status op_bilinear_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return bilinear(be, a, 0);
}
static hcga_status op_bilinear_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return bilinear(be, a, 1);
}

static hcga_status op_gap_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_GAP_FWD);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(want_ndim(be, x, "in[0] (x)", 4, 4));
    TRY(ocl_check_tensor(be, y, "out[0] (y)", dt));
    int64_t nb = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    TRY(want_numel(be, y, "out[0] (y)", nb * c));
    if (hw == 0) return ocl_fail(be, HCGA_ERR_INVALID, "mean over an empty H x W");
    int64_t xs[5] = {1, nb, c, x->shape[2], x->shape[3]}, ys[5] = {1, nb, c, 1, 1};
    return ocl_sum_to5(be, dt, x, xs, y, ys, 1.0 / (double)hw);
}

static hcga_status op_gap_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_GAP_BWD);
    const hcga_tensor *dy = in_slot(a, 0), *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, dy, "in[0] (dy)", &dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(want_ndim(be, dx, "out[0] (dx)", 4, 4));
    int64_t nb = dx->shape[0], c = dx->shape[1], hw = dx->shape[2] * dx->shape[3];
    TRY(want_numel(be, dy, "in[0] (dy)", nb * c));
    if (hw == 0) return HCGA_OK;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_gap_bwd), "gap_bwd", dt);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, hw);
    ocl_arg_real(&l, 1.0 / (double)hw);
    return ocl_run_nd(&l, 2, (size_t)hw, (size_t)(nb * c), 1);
}

/* ------------------------------------------------------------------------ */
/* Reductions                                                                */
/* ------------------------------------------------------------------------ */

/* Two-stage sum of n elements of x (absval: of |x|) into y[yo] * scale. */
static hcga_status reduce_sum(hcga_backend *be, int dt, cl_mem x, int64_t xo, int64_t n,
                              int absval, cl_mem y, int64_t yo, double scale)
{
    int64_t g, chunk;
    ocl_parts(n, &g, &chunk);
    carve cv = {0};
    int64_t po = carve_take(&cv, g, ocl_acc_size(be, dt));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_part), "reduce_part", dt);
    ocl_arg_mem(&l, x);
    ocl_arg_long(&l, xo);
    ocl_arg_long(&l, n);
    ocl_arg_long(&l, chunk);
    ocl_arg_int(&l, absval);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    TRY(ocl_run(&l, (size_t)g * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_final), "reduce_final", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_long(&l, g);
    ocl_arg_mem(&l, y);
    ocl_arg_long(&l, yo);
    ocl_arg_acc(&l, scale);
    return ocl_run(&l, OCL_RLWS, OCL_RLWS);
}

static hcga_status check_scalar(hcga_backend *be, const hcga_tensor *t, const char *slot, int dt)
{
    TRY(ocl_check_tensor(be, t, slot, dt));
    return want_numel(be, t, slot, 1);
}

static hcga_status op_reduce(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_REDUCE);
    const hcga_tensor *x = in_slot(a, 0), *y = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(check_scalar(be, y, "out[0] (y)", dt));
    int kind = a->p.reduce.kind;
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        return ocl_fail(be, HCGA_ERR_INVALID, "unknown reduce.kind %d", kind);
    int64_t n = hcga_tensor_numel(x);
    if (n == 0) {
        if (kind != HCGA_REDUCE_SUM)
            return ocl_fail(be, HCGA_ERR_INVALID, "mean of an empty tensor");
        return ocl_fill(be, y->buf->mem, y->offset, hcga_dtype_size(dt), dt, 0.0);
    }
    double scale = kind == HCGA_REDUCE_SUM ? 1.0 : 1.0 / (double)n;
    return reduce_sum(be, dt, x->buf->mem, ocl_eoff(x), n, kind == HCGA_REDUCE_ABS_MEAN,
                      y->buf->mem, ocl_eoff(y), scale);
}

static hcga_status op_reduce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_REDUCE_BWD);
    const hcga_tensor *x = in_slot(a, 0), *dy = in_slot(a, 1), *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(check_scalar(be, dy, "in[1] (dy)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(same_shape(be, x, "in[0] (x)", dx, "out[0] (dx)"));
    int kind = a->p.reduce.kind;
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        return ocl_fail(be, HCGA_ERR_INVALID, "unknown reduce.kind %d", kind);
    int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_bwd), "reduce_bwd", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, n);
    ocl_arg_int(&l, kind);
    ocl_arg_real(&l, kind == HCGA_REDUCE_SUM ? 1.0 : 1.0 / (double)n);
    return ocl_run(&l, (size_t)n, 0);
}

/* ------------------------------------------------------------------------ */
/* Losses                                                                    */
/* ------------------------------------------------------------------------ */

/* After kernels that report bad labels through the flag: reads it and, if
 * set, names the first offending label and its value. */
static hcga_status label_verdict(hcga_backend *be, const hcga_tensor *labels, int64_t nclass,
                                 const char *what)
{
    long bad;
    TRY(ocl_flag_read(be, &bad));
    if (bad < 0) return HCGA_OK;
    cl_long v = 0;
    OCL_CHECK(be, clEnqueueReadBuffer(be->queue, labels->buf->mem, CL_TRUE,
                                      labels->offset + (size_t)bad * sizeof(cl_long),
                                      sizeof v, &v, 0, NULL, NULL),
              "clEnqueueReadBuffer labels");
    return ocl_fail(be, HCGA_ERR_INVALID, "%s[%ld] = %lld is outside [0, %lld)", what, bad,
                    (long long)v, (long long)nclass);
}

static hcga_status op_ce_ls_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_CE_LS_FWD);
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1), *loss = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (logits)", &dt));
    TRY(want_ndim(be, x, "in[0] (logits)", 2, 2));
    TRY(ocl_check_tensor(be, lab, "in[1] (labels)", HCGA_I64));
    TRY(check_scalar(be, loss, "out[0] (loss)", dt));
    int64_t nb = x->shape[0], c = x->shape[1];
    TRY(want_numel(be, lab, "in[1] (labels)", nb));
    if (nb == 0 || c == 0) return ocl_fail(be, HCGA_ERR_INVALID, "empty logits");
    carve cv = {0};
    int64_t po = carve_take(&cv, nb, ocl_acc_size(be, dt));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    TRY(ocl_flag_reset(be));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_ce_ls_rows), "ce_ls_rows", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, lab);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, c);
    ocl_arg_real(&l, a->p.loss.eps);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_mem(&l, be->flag);
    TRY(ocl_run(&l, (size_t)nb, 0));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_final), "reduce_final", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_long(&l, nb);
    ocl_arg_tensor(&l, loss);
    ocl_arg_acc(&l, 1.0 / (double)nb);
    TRY(ocl_run(&l, OCL_RLWS, OCL_RLWS));
    return label_verdict(be, lab, c, "labels");
}

static hcga_status op_ce_ls_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_CE_LS_BWD);
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1), *dl = in_slot(a, 2),
                      *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (logits)", &dt));
    TRY(want_ndim(be, x, "in[0] (logits)", 2, 2));
    TRY(ocl_check_tensor(be, lab, "in[1] (labels)", HCGA_I64));
    TRY(check_scalar(be, dl, "in[2] (dloss)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dlogits)", dt));
    TRY(same_shape(be, x, "in[0] (logits)", dx, "out[0] (dlogits)"));
    int64_t nb = x->shape[0], c = x->shape[1];
    TRY(want_numel(be, lab, "in[1] (labels)", nb));
    if (nb == 0 || c == 0) return ocl_fail(be, HCGA_ERR_INVALID, "empty logits");
    TRY(ocl_flag_reset(be));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_ce_ls_bwd), "ce_ls_bwd", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, lab);
    ocl_arg_tensor(&l, dl);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, c);
    ocl_arg_real(&l, a->p.loss.eps);
    ocl_arg_mem(&l, be->flag);
    TRY(ocl_run(&l, (size_t)nb, 0));
    return label_verdict(be, lab, c, "labels");
}

static hcga_status pixel_ce_check(hcga_backend *be, const hcga_op_args *a, int *dt,
                                  int64_t *np, int64_t *k, int64_t *hw)
{
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1);
    TRY(ocl_float_dtype(be, x, "in[0] (logits)", dt));
    TRY(want_ndim(be, x, "in[0] (logits)", 4, 4));
    TRY(ocl_check_tensor(be, lab, "in[1] (labels)", HCGA_I64));
    *k = x->shape[1];
    *hw = x->shape[2] * x->shape[3];
    *np = x->shape[0] * *hw;
    TRY(want_numel(be, lab, "in[1] (labels)", *np));
    if (lab->ndim == 3 && (lab->shape[0] != x->shape[0] || lab->shape[1] != x->shape[2] ||
                           lab->shape[2] != x->shape[3]))
        return ocl_fail(be, HCGA_ERR_INVALID, "labels shape does not match logits [N,K,H,W]");
    if (*k == 0) return ocl_fail(be, HCGA_ERR_INVALID, "logits have 0 classes");
    return HCGA_OK;
}

static hcga_status op_pixel_ce_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_PIXEL_CE_FWD);
    int dt;
    int64_t np, k, hw;
    TRY(pixel_ce_check(be, a, &dt, &np, &k, &hw));
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1), *loss = out_slot(a, 0);
    TRY(check_scalar(be, loss, "out[0] (loss)", dt));
    if (np == 0) return ocl_fill(be, loss->buf->mem, loss->offset, hcga_dtype_size(dt), dt, 0.0);
    int64_t g, chunk;
    ocl_parts(np, &g, &chunk);
    carve cv = {0};
    int64_t po = carve_take(&cv, g, ocl_acc_size(be, dt));
    int64_t cpo = carve_take(&cv, g, sizeof(cl_long));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    TRY(ocl_flag_reset(be));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_pixel_ce_part), "pixel_ce_part", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, lab);
    ocl_arg_long(&l, np);
    ocl_arg_long(&l, k);
    ocl_arg_long(&l, hw);
    ocl_arg_long(&l, a->p.loss.ignore_label);
    ocl_arg_long(&l, chunk);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    ocl_arg_mem(&l, be->flag);
    TRY(ocl_run(&l, (size_t)g * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_final_count), "reduce_final_count", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    ocl_arg_long(&l, g);
    ocl_arg_tensor(&l, loss);
    TRY(ocl_run(&l, OCL_RLWS, OCL_RLWS));
    return label_verdict(be, lab, k, "labels");
}

static hcga_status op_pixel_ce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_PIXEL_CE_BWD);
    int dt;
    int64_t np, k, hw;
    TRY(pixel_ce_check(be, a, &dt, &np, &k, &hw));
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1), *dl = in_slot(a, 2),
                      *dx = out_slot(a, 0);
    TRY(check_scalar(be, dl, "in[2] (dloss)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dlogits)", dt));
    TRY(same_shape(be, x, "in[0] (logits)", dx, "out[0] (dlogits)"));
    if (np == 0) return HCGA_OK;
    int64_t g, chunk;
    ocl_parts(np, &g, &chunk);
    carve cv = {0};
    int64_t cpo = carve_take(&cv, g, sizeof(cl_long));
    int64_t co = carve_take(&cv, 1, sizeof(cl_long));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    TRY(ocl_flag_reset(be));
    ocl_launch l;
    ocl_begin(&l, be, be->plain[KP_label_count_part], "label_count_part", dt);
    ocl_arg_tensor(&l, lab);
    ocl_arg_long(&l, np);
    ocl_arg_long(&l, a->p.loss.ignore_label);
    ocl_arg_long(&l, chunk);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    TRY(ocl_run(&l, (size_t)g * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, be->plain[KP_count_final], "count_final", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    ocl_arg_long(&l, g);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, co);
    TRY(ocl_run(&l, OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_pixel_ce_bwd), "pixel_ce_bwd", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, lab);
    ocl_arg_tensor(&l, dl);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, co);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, np);
    ocl_arg_long(&l, k);
    ocl_arg_long(&l, hw);
    ocl_arg_long(&l, a->p.loss.ignore_label);
    ocl_arg_mem(&l, be->flag);
    TRY(ocl_run(&l, (size_t)np, 0));
    return label_verdict(be, lab, k, "labels");
}

static hcga_status op_triplet_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_TRIPLET_FWD);
    const hcga_tensor *x = in_slot(a, 0), *lab = in_slot(a, 1), *loss = out_slot(a, 0),
                      *hard = out_slot(a, 1);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(want_ndim(be, x, "in[0] (x)", 2, 2));
    TRY(ocl_check_tensor(be, lab, "in[1] (labels)", HCGA_I64));
    TRY(check_scalar(be, loss, "out[0] (loss)", dt));
    TRY(ocl_check_tensor(be, hard, "out[1] (hard)", HCGA_I64));
    int64_t nb = x->shape[0], d = x->shape[1];
    TRY(want_numel(be, lab, "in[1] (labels)", nb));
    TRY(want_numel(be, hard, "out[1] (hard)", nb * 2));
    if (nb == 0) return ocl_fail(be, HCGA_ERR_INVALID, "empty batch");
    size_t es = hcga_dtype_size(dt);
    carve cv = {0};
    int64_t dso = carve_take(&cv, nb * nb, es);
    int64_t po = carve_take(&cv, nb, ocl_acc_size(be, dt));
    int64_t cpo = carve_take(&cv, nb, sizeof(cl_long));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_triplet_dist), "triplet_dist", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, d);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, dso);
    TRY(ocl_run(&l, (size_t)(nb * nb), 0));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_triplet_mine), "triplet_mine", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, dso);
    ocl_arg_tensor(&l, lab);
    ocl_arg_long(&l, nb);
    ocl_arg_real(&l, a->p.loss.margin);
    ocl_arg_tensor(&l, hard);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    TRY(ocl_run(&l, (size_t)nb, 0));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_final_count), "reduce_final_count", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, cpo);
    ocl_arg_long(&l, nb);
    ocl_arg_tensor(&l, loss);
    return ocl_run(&l, OCL_RLWS, OCL_RLWS);
}

static hcga_status op_triplet_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_TRIPLET_BWD);
    const hcga_tensor *x = in_slot(a, 0), *hard = in_slot(a, 1), *dl = in_slot(a, 2),
                      *dx = out_slot(a, 0);
    int dt;
    TRY(ocl_float_dtype(be, x, "in[0] (x)", &dt));
    TRY(want_ndim(be, x, "in[0] (x)", 2, 2));
    TRY(ocl_check_tensor(be, hard, "in[1] (hard)", HCGA_I64));
    TRY(check_scalar(be, dl, "in[2] (dloss)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(same_shape(be, x, "in[0] (x)", dx, "out[0] (dx)"));
    int64_t nb = x->shape[0], d = x->shape[1];
    TRY(want_numel(be, hard, "in[1] (hard)", nb * 2));
    if (nb == 0) return HCGA_OK;
    carve cv = {0};
    int64_t co = carve_take(&cv, 3 * nb, hcga_dtype_size(dt));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    TRY(ocl_flag_reset(be));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_triplet_coef), "triplet_coef", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, hard);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, d);
    ocl_arg_real(&l, a->p.loss.margin);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, co);
    ocl_arg_mem(&l, be->flag);
    TRY(ocl_run(&l, (size_t)nb, 0));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_triplet_dx), "triplet_dx", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, hard);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, co);
    ocl_arg_tensor(&l, dl);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, d);
    TRY(ocl_run(&l, (size_t)(nb * d), 0));
    long bad;
    TRY(ocl_flag_read(be, &bad));
    if (bad >= 0)
        return ocl_fail(be, HCGA_ERR_INVALID,
                        "hard[%ld] holds an index outside [-1, %lld)", bad, (long long)nb);
    return HCGA_OK;
}

static hcga_status shift_check(hcga_backend *be, const hcga_op_args *a, const hcga_tensor *x,
                               int *dt, int64_t *count)
{
    TRY(ocl_float_dtype(be, x, "in[0] (x)", dt));
    TRY(want_ndim(be, x, "in[0] (x)", 4, 4));
    int s[3] = {a->p.shift.dn, a->p.shift.dh, a->p.shift.dw};
    for (int i = 0; i < 3; i++)
        if (s[i] < -1 || s[i] > 1)
            return ocl_fail(be, HCGA_ERR_INVALID, "shift (%d, %d, %d): each must be -1, 0 or 1",
                            s[0], s[1], s[2]);
    int64_t vn = x->shape[0] - (s[0] ? 1 : 0), vh = x->shape[2] - (s[1] ? 1 : 0),
            vw = x->shape[3] - (s[2] ? 1 : 0);
    *count = (vn > 0 && vh > 0 && vw > 0) ? vn * x->shape[1] * vh * vw : 0;
    return HCGA_OK;
}

static hcga_status op_shift_l1_fwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SHIFT_L1_FWD);
    const hcga_tensor *x = in_slot(a, 0), *loss = out_slot(a, 0);
    int dt;
    int64_t count;
    TRY(shift_check(be, a, x, &dt, &count));
    TRY(check_scalar(be, loss, "out[0] (loss)", dt));
    if (count == 0)
        return ocl_fill(be, loss->buf->mem, loss->offset, hcga_dtype_size(dt), dt, 0.0);
    int64_t g, chunk;
    ocl_parts(count, &g, &chunk);
    carve cv = {0};
    int64_t po = carve_take(&cv, g, ocl_acc_size(be, dt));
    TRY(ocl_ensure(be, &be->scratch, &be->scratch_size, cv.used, "scratch"));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_shift_l1_part), "shift_l1_part", dt);
    ocl_arg_tensor(&l, x);
    for (int d = 0; d < 4; d++) ocl_arg_long(&l, x->shape[d]);
    ocl_arg_int(&l, a->p.shift.dn);
    ocl_arg_int(&l, a->p.shift.dh);
    ocl_arg_int(&l, a->p.shift.dw);
    ocl_arg_long(&l, count);
    ocl_arg_long(&l, chunk);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    TRY(ocl_run(&l, (size_t)g * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_reduce_final), "reduce_final", dt);
    ocl_arg_mem(&l, be->scratch);
    ocl_arg_long(&l, po);
    ocl_arg_long(&l, g);
    ocl_arg_tensor(&l, loss);
    ocl_arg_acc(&l, 1.0 / (double)count);
    return ocl_run(&l, OCL_RLWS, OCL_RLWS);
}

static hcga_status op_shift_l1_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SHIFT_L1_BWD);
    const hcga_tensor *x = in_slot(a, 0), *dl = in_slot(a, 1), *dx = out_slot(a, 0);
    int dt;
    int64_t count;
    TRY(shift_check(be, a, x, &dt, &count));
    TRY(check_scalar(be, dl, "in[1] (dloss)", dt));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(same_shape(be, x, "in[0] (x)", dx, "out[0] (dx)"));
    int64_t n = hcga_tensor_numel(x);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_shift_l1_bwd), "shift_l1_bwd", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, dl);
    ocl_arg_tensor(&l, dx);
    for (int d = 0; d < 4; d++) ocl_arg_long(&l, x->shape[d]);
    ocl_arg_int(&l, a->p.shift.dn);
    ocl_arg_int(&l, a->p.shift.dh);
    ocl_arg_int(&l, a->p.shift.dw);
    ocl_arg_real(&l, count > 0 ? 1.0 / (double)count : 0.0);
    return ocl_run(&l, (size_t)n, 0);
}

/* ------------------------------------------------------------------------ */
/* Batch normalisation                                                       */
/* ------------------------------------------------------------------------ */

static hcga_status bn_x(hcga_backend *be, const hcga_tensor *x, const char *slot, int *dt,
                        int64_t *nb, int64_t *c, int64_t *hw)
{
    TRY(ocl_float_dtype(be, x, slot, dt));
    TRY(want_ndim(be, x, slot, 2, 5));
    *nb = x->shape[0];
    *c = x->shape[1];
    *hw = dims_from(x, 2);
    return HCGA_OK;
}

static hcga_status bn_vec(hcga_backend *be, const hcga_tensor *t, const char *slot, int dt,
                          int64_t c)
{
    TRY(ocl_check_tensor(be, t, slot, dt));
    return want_numel(be, t, slot, c);
}

static hcga_status op_bn_fwd_train(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_BN_FWD_TRAIN);
    const hcga_tensor *x = in_slot(a, HCGA_BN_X), *gamma = in_slot(a, HCGA_BN_GAMMA),
                      *beta = in_slot(a, HCGA_BN_BETA), *y = out_slot(a, HCGA_BN_Y),
                      *sm = out_slot(a, HCGA_BN_SAVE_MEAN), *si = out_slot(a, HCGA_BN_SAVE_INVSTD),
                      *rm = out_slot(a, HCGA_BN_RMEAN), *rv = out_slot(a, HCGA_BN_RVAR);
    int dt;
    int64_t nb, c, hw;
    TRY(bn_x(be, x, "in[0] (x)", &dt, &nb, &c, &hw));
    TRY(bn_vec(be, gamma, "in[1] (gamma)", dt, c));
    TRY(bn_vec(be, beta, "in[2] (beta)", dt, c));
    TRY(ocl_check_tensor(be, y, "out[0] (y)", dt));
    TRY(same_shape(be, x, "in[0] (x)", y, "out[0] (y)"));
    TRY(bn_vec(be, sm, "out[1] (save_mean)", dt, c));
    TRY(bn_vec(be, si, "out[2] (save_invstd)", dt, c));
    TRY(bn_vec(be, rm, "out[3] (running_mean)", dt, c));
    TRY(bn_vec(be, rv, "out[4] (running_var)", dt, c));
    if (nb * hw < 2)
        return ocl_fail(be, HCGA_ERR_INVALID,
                        "training statistics need more than 1 value per channel (got %lld)",
                        (long long)(nb * hw));
    if (c == 0) return HCGA_OK;
    /* few values per channel: an item per channel beats a group per channel */
    int item = nb * hw < OCL_BN_ITEM_MAX;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, item ? KT_bn_stats_item : KT_bn_stats),
              item ? "bn_stats_item" : "bn_stats", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, sm);
    ocl_arg_tensor(&l, si);
    ocl_arg_tensor(&l, rm);
    ocl_arg_tensor(&l, rv);
    ocl_arg_acc(&l, a->p.bn.eps);
    ocl_arg_acc(&l, a->p.bn.momentum);
    TRY(item ? ocl_run(&l, (size_t)c, 0) : ocl_run(&l, (size_t)c * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bn_apply), "bn_apply", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, gamma);
    ocl_arg_tensor(&l, beta);
    ocl_arg_tensor(&l, sm);
    ocl_arg_tensor(&l, si);
    return ocl_run_nd(&l, 3, (size_t)hw, (size_t)c, (size_t)nb);
}

static hcga_status op_bn_fwd_infer(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_BN_FWD_INFER);
    const hcga_tensor *x = in_slot(a, HCGA_BN_X), *gamma = in_slot(a, HCGA_BN_GAMMA),
                      *beta = in_slot(a, HCGA_BN_BETA), *rm = in_slot(a, HCGA_BN_RMEAN_IN),
                      *rv = in_slot(a, HCGA_BN_RVAR_IN), *y = out_slot(a, 0);
    int dt;
    int64_t nb, c, hw;
    TRY(bn_x(be, x, "in[0] (x)", &dt, &nb, &c, &hw));
    TRY(bn_vec(be, gamma, "in[1] (gamma)", dt, c));
    TRY(bn_vec(be, beta, "in[2] (beta)", dt, c));
    TRY(bn_vec(be, rm, "in[3] (running_mean)", dt, c));
    TRY(bn_vec(be, rv, "in[4] (running_var)", dt, c));
    TRY(ocl_check_tensor(be, y, "out[0] (y)", dt));
    TRY(same_shape(be, x, "in[0] (x)", y, "out[0] (y)"));
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bn_infer), "bn_infer", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, gamma);
    ocl_arg_tensor(&l, beta);
    ocl_arg_tensor(&l, rm);
    ocl_arg_tensor(&l, rv);
    ocl_arg_acc(&l, a->p.bn.eps);
    return ocl_run_nd(&l, 3, (size_t)hw, (size_t)c, (size_t)nb);
}

static hcga_status op_bn_bwd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_BN_BWD);
    const hcga_tensor *x = in_slot(a, HCGA_BNB_X), *dy = in_slot(a, HCGA_BNB_DY),
                      *gamma = in_slot(a, HCGA_BNB_GAMMA), *mean = in_slot(a, HCGA_BNB_MEAN),
                      *inv = in_slot(a, HCGA_BNB_INVSTD), *dx = out_slot(a, HCGA_BNB_DX),
                      *dg = out_slot(a, HCGA_BNB_DGAMMA), *db = out_slot(a, HCGA_BNB_DBETA);
    int dt;
    int64_t nb, c, hw;
    TRY(bn_x(be, x, "in[0] (x)", &dt, &nb, &c, &hw));
    TRY(ocl_check_tensor(be, dy, "in[1] (dy)", dt));
    TRY(same_shape(be, x, "in[0] (x)", dy, "in[1] (dy)"));
    TRY(bn_vec(be, gamma, "in[2] (gamma)", dt, c));
    TRY(bn_vec(be, mean, "in[3] (save_mean)", dt, c));
    TRY(bn_vec(be, inv, "in[4] (save_invstd)", dt, c));
    TRY(ocl_check_tensor(be, dx, "out[0] (dx)", dt));
    TRY(same_shape(be, x, "in[0] (x)", dx, "out[0] (dx)"));
    TRY(bn_vec(be, dg, "out[1] (dgamma)", dt, c));
    TRY(bn_vec(be, db, "out[2] (dbeta)", dt, c));
    int64_t m = nb * hw;
    if (c == 0) return HCGA_OK;
    if (m == 0) return ocl_fail(be, HCGA_ERR_INVALID, "x has no values per channel");
    int item = m < OCL_BN_ITEM_MAX;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, item ? KT_bn_bwd_stats_item : KT_bn_bwd_stats),
              item ? "bn_bwd_stats_item" : "bn_bwd_stats", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, dy);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, mean);
    ocl_arg_tensor(&l, inv);
    ocl_arg_tensor(&l, dg);
    ocl_arg_tensor(&l, db);
    TRY(item ? ocl_run(&l, (size_t)c, 0) : ocl_run(&l, (size_t)c * OCL_RLWS, OCL_RLWS));
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bn_bwd_dx), "bn_bwd_dx", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, gamma);
    ocl_arg_tensor(&l, mean);
    ocl_arg_tensor(&l, inv);
    ocl_arg_tensor(&l, dg);
    ocl_arg_tensor(&l, db);
    ocl_arg_acc(&l, 1.0 / (double)m);
    return ocl_run_nd(&l, 3, (size_t)hw, (size_t)c, (size_t)nb);
}

/* ------------------------------------------------------------------------ */
/* Optimizers                                                                */
/* ------------------------------------------------------------------------ */

static hcga_status op_adam(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_ADAM_STEP);
    const hcga_tensor *g = in_slot(a, 0), *p = out_slot(a, HCGA_ADAM_PARAM),
                      *m = out_slot(a, HCGA_ADAM_M), *v = out_slot(a, HCGA_ADAM_V);
    int dt;
    TRY(ocl_float_dtype(be, g, "in[0] (grad)", &dt));
    TRY(ocl_check_tensor(be, p, "out[0] (param)", dt));
    TRY(ocl_check_tensor(be, m, "out[1] (m)", dt));
    TRY(ocl_check_tensor(be, v, "out[2] (v)", dt));
    TRY(same_shape(be, g, "in[0] (grad)", p, "out[0] (param)"));
    TRY(same_shape(be, g, "in[0] (grad)", m, "out[1] (m)"));
    TRY(same_shape(be, g, "in[0] (grad)", v, "out[2] (v)"));
    const hcga_optim_params *o = &a->p.optim;
    if (o->step < 1) return ocl_fail(be, HCGA_ERR_INVALID, "optim.step %lld < 1", (long long)o->step);
    double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->beta2, (double)o->step);
    if (!(bc1 > 0) || !(bc2 > 0))
        return ocl_fail(be, HCGA_ERR_INVALID, "beta1 %g / beta2 %g give no bias correction",
                        o->beta1, o->beta2);
    int64_t n = hcga_tensor_numel(g);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_adam_step), "adam_step", dt);
    ocl_arg_tensor(&l, g);
    ocl_arg_tensor(&l, p);
    ocl_arg_tensor(&l, m);
    ocl_arg_tensor(&l, v);
    ocl_arg_long(&l, n);
    ocl_arg_acc(&l, o->beta1);
    ocl_arg_acc(&l, o->beta2);
    ocl_arg_acc(&l, o->lr / bc1);
    ocl_arg_acc(&l, sqrt(bc2));
    ocl_arg_acc(&l, o->eps);
    ocl_arg_acc(&l, o->weight_decay);
    return ocl_run(&l, (size_t)n, 0);
}

static hcga_status op_sgd(hcga_backend *be, const hcga_op_args *a)
{
    BEGIN_OP(HCGA_OP_SGD_STEP);
    const hcga_tensor *g = in_slot(a, 0), *p = out_slot(a, HCGA_SGD_PARAM),
                      *b = out_slot(a, HCGA_SGD_BUF);
    int dt;
    TRY(ocl_float_dtype(be, g, "in[0] (grad)", &dt));
    TRY(ocl_check_tensor(be, p, "out[0] (param)", dt));
    TRY(ocl_check_tensor(be, b, "out[1] (buf)", dt));
    TRY(same_shape(be, g, "in[0] (grad)", p, "out[0] (param)"));
    TRY(same_shape(be, g, "in[0] (grad)", b, "out[1] (buf)"));
    const hcga_optim_params *o = &a->p.optim;
    if (o->step < 1) return ocl_fail(be, HCGA_ERR_INVALID, "optim.step %lld < 1", (long long)o->step);
    int64_t n = hcga_tensor_numel(g);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_sgd_step), "sgd_step", dt);
    ocl_arg_tensor(&l, g);
    ocl_arg_tensor(&l, p);
    ocl_arg_tensor(&l, b);
    ocl_arg_long(&l, n);
    ocl_arg_acc(&l, o->lr);
    ocl_arg_acc(&l, o->momentum);
    ocl_arg_acc(&l, o->weight_decay);
    ocl_arg_int(&l, o->step == 1);
    return ocl_run(&l, (size_t)n, 0);
}

/* ------------------------------------------------------------------------ */
/* Table                                                                     */
/* ------------------------------------------------------------------------ */

const hcga_op_fn ocl_op_table[HCGA_OP_COUNT] = {
    [HCGA_OP_CONV2D_FWD] = ocl_op_conv_fwd,
    [HCGA_OP_CONV2D_BWD_DATA] = ocl_op_conv_bwd_data,
    [HCGA_OP_CONV2D_BWD_FILTER] = ocl_op_conv_bwd_filter,
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
    [HCGA_OP_RESIZE_BILINEAR_FWD] = op_bilinear_fwd,
    [HCGA_OP_RESIZE_BILINEAR_BWD] = op_bilinear_bwd,
    [HCGA_OP_GAP_FWD] = op_gap_fwd,
    [HCGA_OP_GAP_BWD] = op_gap_bwd,
    [HCGA_OP_GEMM] = ocl_op_gemm,
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
    [HCGA_OP_ADAM_STEP] = op_adam,
    [HCGA_OP_SGD_STEP] = op_sgd,
};
