/*
 * ocl_ops.c - the OpenCL backend's op entries and every op but GEMM and
 * convolution (ocl_blas.c).
 *
 * Each entry of the exported op table (generated from plugins/hcga_ops.def
 * at the end of this file) goes through ocl_dispatch(): the shared contract
 * checker (backends/common/hcga_contract.h) validates the call (slots,
 * dtypes, shapes, layout, bounds, aliasing, parameters), then the device's
 * own limits are checked, then the op's implementation ocl_impl_<ID> only
 * unpacks the tensors and enqueues kernels from the kernels/ directory.
 * Data-dependent errors (label values, triplet indices) are found by the
 * kernels and reported after the op.  Semantics are those of
 * plugins/hcga_plugin.h.
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

/* Defines the implementation of catalogue row ID (static: the op table at
 * the end of this file names each one, so a missing one does not compile). */
#define OCL_OP_IMPL(id_)                                                                       \
    static hcga_status ocl_impl_##id_(hcga_backend *be, const hcga_op_args *a,                 \
                                      const hcga_checked *ck)

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

/* y = f(x) elementwise (kernel kt is named like the op). */
static hcga_status unary(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int kt,
                         int nparam, double p0)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int dt = ck->dtype;
    int64_t n = hcga_tensor_numel(x);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, kt), hcga_op_name(ck->op), dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, y);
    ocl_arg_long(&l, n);
    if (nparam) ocl_arg_real(&l, p0);
    return ocl_run(&l, (size_t)n, 0);
}

/* dx = f'(u) * dy elementwise (kernel kt is named like the op). */
static hcga_status binary_grad(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                               int kt, int nparam, double p0)
{
    const hcga_tensor *u = a->in[0], *dy = a->in[1], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t n = hcga_tensor_numel(u);
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, kt), hcga_op_name(ck->op), dt);
    ocl_arg_tensor(&l, u);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, n);
    if (nparam) ocl_arg_real(&l, p0);
    return ocl_run(&l, (size_t)n, 0);
}

OCL_OP_IMPL(RELU_FWD) { return unary(be, a, ck, KT_relu_fwd, 0, 0); }
OCL_OP_IMPL(RELU_BWD) { return binary_grad(be, a, ck, KT_relu_bwd, 0, 0); }
OCL_OP_IMPL(SIGMOID_FWD) { return unary(be, a, ck, KT_sigmoid_fwd, 0, 0); }
OCL_OP_IMPL(SIGMOID_BWD) { return binary_grad(be, a, ck, KT_sigmoid_bwd, 0, 0); }
OCL_OP_IMPL(THRESH_FWD) { return unary(be, a, ck, KT_thresh_fwd, 1, a->p.scalar.a); }
OCL_OP_IMPL(THRESH_BWD) { return binary_grad(be, a, ck, KT_thresh_bwd, 1, a->p.scalar.a); }

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

/* ADD and MUL: a and b have y's ndim, each dim equal to y's or 1. */
static hcga_status add_mul(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    const hcga_tensor *x = a->in[0], *b = a->in[1], *y = a->out[0];
    int dt = ck->dtype;
    int same = 1;
    for (int d = 0; d < y->ndim; d++)
        if (x->shape[d] != y->shape[d] || b->shape[d] != y->shape[d]) same = 0;
    int op = ck->op == HCGA_OP_ADD ? 0 : 1;
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

OCL_OP_IMPL(ADD) { return add_mul(be, a, ck); }
OCL_OP_IMPL(MUL) { return add_mul(be, a, ck); }

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

OCL_OP_IMPL(SUM_TO)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int64_t xs[5], ys[5], dummy[5], ones[5] = {1, 1, 1, 1, 1};
    bcast5(x, ones, xs, dummy);
    bcast5(y, ones, ys, dummy);
    return ocl_sum_to5(be, ck->dtype, x, xs, y, ys, 1.0);
}

/* x and y have one shape and any strides; the dtypes are equal or f32/f64. */
OCL_OP_IMPL(COPY)
{
    (void)ck;
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int k;
    int sx = x->dtype, sy = y->dtype;
    int fx = sx == HCGA_F32 || sx == HCGA_F64, fy = sy == HCGA_F32 || sy == HCGA_F64;
    if (fx && fy)
        k = sx == HCGA_F32 ? (sy == HCGA_F32 ? KP_copy_f32_f32 : KP_copy_f32_f64)
                           : (sy == HCGA_F32 ? KP_copy_f64_f32 : KP_copy_f64_f64);
    else if (sx == sy && sx == HCGA_I64)
        k = KP_copy_i64_i64;
    else if (sx == sy && sx == HCGA_I32)
        k = KP_copy_i32_i32;
    else if (sx == sy && sx == HCGA_U8)
        k = KP_copy_u8_u8;
    else /* the contract allows no other pair: no kernel for it */
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "no copy kernel from %s to %s",
                        hcga_dtype_name(sx), hcga_dtype_name(sy));
    int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    size_t es = hcga_dtype_size(sx);
    if (sx == sy && hcga_contract_is_dense(x) && hcga_contract_is_dense(y)) {
        /* the only overlap the contract lets through is x == y */
        if (x->buf == y->buf && x->offset == y->offset) return HCGA_OK;
        OCL_CHECK(be, clEnqueueCopyBuffer(be->queue, x->buf->mem, y->buf->mem, x->offset,
                                          y->offset, (size_t)n * es, 0, NULL, NULL),
                  "clEnqueueCopyBuffer");
        return HCGA_OK;
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

OCL_OP_IMPL(FILL)
{
    (void)ck;
    const hcga_tensor *y = a->out[0];
    size_t es = hcga_dtype_size(y->dtype);
    return ocl_fill(be, y->buf->mem, y->offset, (size_t)hcga_tensor_numel(y) * es, y->dtype,
                    a->p.scalar.a);
}

/* ------------------------------------------------------------------------ */
/* Channel ops                                                               */
/* ------------------------------------------------------------------------ */

OCL_OP_IMPL(SOFTMAX_FWD)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int dt = ck->dtype;
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

OCL_OP_IMPL(SOFTMAX_BWD)
{
    const hcga_tensor *y = a->in[0], *dy = a->in[1], *dx = a->out[0];
    int dt = ck->dtype;
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
static hcga_status concat_split(hcga_backend *be, const hcga_op_args *a, int dt, int split)
{
    const hcga_tensor *whole = split ? a->in[0] : a->out[0];
    int nparts = split ? a->num_out : a->num_in;
    int64_t inner = dims_from(whole, 2), rows = whole->shape[0];
    int64_t wpitch = whole->shape[1] * inner, coff = 0;
    for (int i = 0; i < nparts; i++) {
        const hcga_tensor *p = split ? a->out[i] : a->in[i];
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

OCL_OP_IMPL(CONCAT) { return concat_split(be, a, ck->dtype, 0); }
OCL_OP_IMPL(SPLIT) { return concat_split(be, a, ck->dtype, 1); }

OCL_OP_IMPL(ARGMAX)
{
    const hcga_tensor *x = a->in[0], *idx = a->out[0];
    int dt = ck->dtype;
    int64_t c = x->shape[1], inner = dims_from(x, 2);
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

/* Forward: in[0] = x[N,C,H,W] (small) -> out[0] = y[N,C,OH,OW] (big);
 * backward: in[0] = dy (big) -> out[0] = dx (small). */
static hcga_status upsample(hcga_backend *be, const hcga_op_args *a, int dt, int bwd)
{
    const hcga_tensor *src = a->in[0], *dst = a->out[0];
    const hcga_tensor *small = bwd ? dst : src;
    int64_t f = a->p.resize.factor;
    int64_t h = small->shape[2], w = small->shape[3];
    const hcga_tensor *o = dst; /* a work-item per output element */
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

OCL_OP_IMPL(UPSAMPLE_NEAREST_FWD) { return upsample(be, a, ck->dtype, 0); }
OCL_OP_IMPL(UPSAMPLE_NEAREST_BWD) { return upsample(be, a, ck->dtype, 1); }

/* Shapes as upsample(); the sizes come from the tensors. */
static hcga_status bilinear(hcga_backend *be, const hcga_op_args *a, int dt, int bwd)
{
    const hcga_tensor *src = a->in[0], *dst = a->out[0];
    const hcga_tensor *small = bwd ? dst : src, *big = bwd ? src : dst;
    int64_t h = small->shape[2], w = small->shape[3], oh = big->shape[2], ow = big->shape[3];
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

OCL_OP_IMPL(RESIZE_BILINEAR_FWD) { return bilinear(be, a, ck->dtype, 0); }
OCL_OP_IMPL(RESIZE_BILINEAR_BWD) { return bilinear(be, a, ck->dtype, 1); }

OCL_OP_IMPL(GAP_FWD)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int64_t nb = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    /* (an empty H x W is refused by the contract unless y is empty too) */
    int64_t xs[5] = {1, nb, c, x->shape[2], x->shape[3]}, ys[5] = {1, nb, c, 1, 1};
    return ocl_sum_to5(be, ck->dtype, x, xs, y, ys, hw > 0 ? 1.0 / (double)hw : 0.0);
}

OCL_OP_IMPL(GAP_BWD)
{
    const hcga_tensor *dy = a->in[0], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t nb = dx->shape[0], c = dx->shape[1], hw = dx->shape[2] * dx->shape[3];
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

OCL_OP_IMPL(REDUCE)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int dt = ck->dtype;
    int kind = a->p.reduce.kind;
    int64_t n = hcga_tensor_numel(x);
    /* (the contract refuses the mean of an empty tensor) */
    if (n == 0) return ocl_fill(be, y->buf->mem, y->offset, hcga_dtype_size(dt), dt, 0.0);
    double scale = kind == HCGA_REDUCE_SUM ? 1.0 : 1.0 / (double)n;
    return reduce_sum(be, dt, x->buf->mem, ocl_eoff(x), n, kind == HCGA_REDUCE_ABS_MEAN,
                      y->buf->mem, ocl_eoff(y), scale);
}

OCL_OP_IMPL(REDUCE_BWD)
{
    const hcga_tensor *x = a->in[0], *dy = a->in[1], *dx = a->out[0];
    int dt = ck->dtype;
    int kind = a->p.reduce.kind;
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
 * set, names the first offending label and its value (a data-dependent
 * rule: the contract checker cannot read device memory). */
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

OCL_OP_IMPL(CE_LS_FWD)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *loss = a->out[0];
    int dt = ck->dtype;
    int64_t nb = x->shape[0], c = x->shape[1];
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

OCL_OP_IMPL(CE_LS_BWD)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *dl = a->in[2], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t nb = x->shape[0], c = x->shape[1];
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

/* Sizes of logits[N,K,H,W]: classes, pixels per image, pixels in all. */
static void pixel_ce_dims(const hcga_tensor *x, int64_t *k, int64_t *hw, int64_t *np)
{
    *k = x->shape[1];
    *hw = x->shape[2] * x->shape[3];
    *np = x->shape[0] * *hw;
}

OCL_OP_IMPL(PIXEL_CE_FWD)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *loss = a->out[0];
    int dt = ck->dtype;
    int64_t np, k, hw;
    pixel_ce_dims(x, &k, &hw, &np);
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

OCL_OP_IMPL(PIXEL_CE_BWD)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *dl = a->in[2], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t np, k, hw;
    pixel_ce_dims(x, &k, &hw, &np);
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

OCL_OP_IMPL(TRIPLET_FWD)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *loss = a->out[0], *hard = a->out[1];
    int dt = ck->dtype;
    int64_t nb = x->shape[0], d = x->shape[1];
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

OCL_OP_IMPL(TRIPLET_BWD)
{
    const hcga_tensor *x = a->in[0], *hard = a->in[1], *dl = a->in[2], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t nb = x->shape[0], d = x->shape[1];
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
    /* the kernels flag the first anchor whose pair holds an index outside
     * [-1, N) (data-dependent: the contract checker cannot see it); name
     * the entry as the CPU reference does */
    long bad;
    TRY(ocl_flag_read(be, &bad));
    if (bad < 0) return HCGA_OK;
    cl_long pair[2] = {0, 0};
    OCL_CHECK(be, clEnqueueReadBuffer(be->queue, hard->buf->mem, CL_TRUE,
                                      hard->offset + (size_t)bad * sizeof pair, sizeof pair, pair,
                                      0, NULL, NULL),
              "clEnqueueReadBuffer hard");
    int k = pair[0] >= -1 && pair[0] < nb ? 1 : 0;
    return ocl_fail(be, HCGA_ERR_INVALID, "hard[%ld,%d] = %lld is outside [-1, %lld)", bad, k,
                    (long long)pair[k], (long long)nb);
}

/* Number of terms of the shifted difference over x[N,C,H,W]. */
static int64_t shift_count(const hcga_op_args *a, const hcga_tensor *x)
{
    int64_t vn = x->shape[0] - (a->p.shift.dn ? 1 : 0), vh = x->shape[2] - (a->p.shift.dh ? 1 : 0),
            vw = x->shape[3] - (a->p.shift.dw ? 1 : 0);
    return (vn > 0 && vh > 0 && vw > 0) ? vn * x->shape[1] * vh * vw : 0;
}

OCL_OP_IMPL(SHIFT_L1_FWD)
{
    const hcga_tensor *x = a->in[0], *loss = a->out[0];
    int dt = ck->dtype;
    int64_t count = shift_count(a, x);
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

OCL_OP_IMPL(SHIFT_L1_BWD)
{
    const hcga_tensor *x = a->in[0], *dl = a->in[1], *dx = a->out[0];
    int dt = ck->dtype;
    int64_t count = shift_count(a, x);
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

/* y = gamma*(x-mean)*invstd + beta with the saved per-channel statistics:
 * the second half of BN_FWD_TRAIN and of BN_FWD_FROM_STATS */
static hcga_status bn_apply(hcga_backend *be, int dt, const hcga_tensor *x, const hcga_tensor *y,
                            const hcga_tensor *gamma, const hcga_tensor *beta, const hcga_tensor *sm,
                            const hcga_tensor *si, int64_t nb, int64_t c, int64_t hw)
{
    ocl_launch l;
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

OCL_OP_IMPL(BN_FWD_TRAIN)
{
    const hcga_tensor *x = a->in[HCGA_BN_X], *gamma = a->in[HCGA_BN_GAMMA],
                      *beta = a->in[HCGA_BN_BETA], *y = a->out[HCGA_BN_Y],
                      *sm = a->out[HCGA_BN_SAVE_MEAN], *si = a->out[HCGA_BN_SAVE_INVSTD],
                      *rm = a->out[HCGA_BN_RMEAN], *rv = a->out[HCGA_BN_RVAR];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
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
    return bn_apply(be, dt, x, y, gamma, beta, sm, si, nb, c, hw);
}

OCL_OP_IMPL(BN_FWD_INFER)
{
    const hcga_tensor *x = a->in[HCGA_BN_X], *gamma = a->in[HCGA_BN_GAMMA],
                      *beta = a->in[HCGA_BN_BETA], *rm = a->in[HCGA_BN_RMEAN_IN],
                      *rv = a->in[HCGA_BN_RVAR_IN], *y = a->out[0];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
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

OCL_OP_IMPL(BN_BWD)
{
    const hcga_tensor *x = a->in[HCGA_BNB_X], *dy = a->in[HCGA_BNB_DY],
                      *gamma = a->in[HCGA_BNB_GAMMA], *mean = a->in[HCGA_BNB_MEAN],
                      *inv = a->in[HCGA_BNB_INVSTD], *dx = a->out[HCGA_BNB_DX],
                      *dg = a->out[HCGA_BNB_DGAMMA], *db = a->out[HCGA_BNB_DBETA];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
    int64_t m = nb * hw; /* >= 1 when c > 0 (contract) */
    if (c == 0) return HCGA_OK;
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

/* sum and sumsq of each channel of x into dense [C] tensors (BN_STATS). */
OCL_OP_IMPL(BN_STATS)
{
    const hcga_tensor *x = a->in[HCGA_BN_X], *sum = a->out[HCGA_BNS_SUM],
                      *sumsq = a->out[HCGA_BNS_SUMSQ];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
    if (c == 0) return HCGA_OK;
    int item = nb * hw < OCL_BN_ITEM_MAX;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, item ? KT_bn_sums_item : KT_bn_sums),
              item ? "bn_sums_item" : "bn_sums", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_long(&l, nb);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, sum);
    ocl_arg_tensor(&l, sumsq);
    return item ? ocl_run(&l, (size_t)c, 0) : ocl_run(&l, (size_t)c * OCL_RLWS, OCL_RLWS);
}

/* Statistics from the summed sum / sumsq (bn_from_sums), then y as
 * BN_FWD_TRAIN writes it (bn_apply). */
OCL_OP_IMPL(BN_FWD_FROM_STATS)
{
    const hcga_tensor *x = a->in[HCGA_BN_X], *gamma = a->in[HCGA_BN_GAMMA],
                      *beta = a->in[HCGA_BN_BETA], *sum = a->in[HCGA_BNF_SUM],
                      *sumsq = a->in[HCGA_BNF_SUMSQ], *y = a->out[HCGA_BN_Y],
                      *sm = a->out[HCGA_BN_SAVE_MEAN], *si = a->out[HCGA_BN_SAVE_INVSTD],
                      *rm = a->out[HCGA_BN_RMEAN], *rv = a->out[HCGA_BN_RVAR];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
    if (c == 0) return HCGA_OK;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bn_from_sums), "bn_from_sums", dt);
    ocl_arg_tensor(&l, sum);
    ocl_arg_tensor(&l, sumsq);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, a->p.bn.count);
    ocl_arg_tensor(&l, sm);
    ocl_arg_tensor(&l, si);
    ocl_arg_tensor(&l, rm);
    ocl_arg_tensor(&l, rv);
    ocl_arg_acc(&l, a->p.bn.eps);
    ocl_arg_acc(&l, a->p.bn.momentum);
    TRY(ocl_run(&l, (size_t)c, 0));
    return bn_apply(be, dt, x, y, gamma, beta, sm, si, nb, c, hw);
}

/* dx from the summed sum_dy / sum_dy_xhat: BN_BWD's dx kernel with those in
 * place of dbeta / dgamma and 1/bn.count for 1/M. */
OCL_OP_IMPL(BN_BWD_FROM_STATS)
{
    const hcga_tensor *x = a->in[HCGA_BNB_X], *dy = a->in[HCGA_BNB_DY],
                      *gamma = a->in[HCGA_BNB_GAMMA], *mean = a->in[HCGA_BNB_MEAN],
                      *inv = a->in[HCGA_BNB_INVSTD], *sdy = a->in[HCGA_BNB_SUM_DY],
                      *sdyx = a->in[HCGA_BNB_SUM_DY_XHAT], *dx = a->out[HCGA_BNB_DX];
    int dt = ck->dtype;
    int64_t nb = ck->bn_N, c = ck->bn_C, hw = ck->bn_HW;
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bn_bwd_dx), "bn_bwd_dx", dt);
    ocl_arg_tensor(&l, x);
    ocl_arg_tensor(&l, dy);
    ocl_arg_tensor(&l, dx);
    ocl_arg_long(&l, c);
    ocl_arg_long(&l, hw);
    ocl_arg_tensor(&l, gamma);
    ocl_arg_tensor(&l, mean);
    ocl_arg_tensor(&l, inv);
    ocl_arg_tensor(&l, sdyx);
    ocl_arg_tensor(&l, sdy);
    ocl_arg_acc(&l, 1.0 / (double)a->p.bn.count);
    return ocl_run_nd(&l, 3, (size_t)hw, (size_t)c, (size_t)nb);
}

/* ------------------------------------------------------------------------ */
/* Optimizers                                                                */
/* ------------------------------------------------------------------------ */

OCL_OP_IMPL(ADAM_STEP)
{
    const hcga_tensor *g = a->in[0], *p = a->out[HCGA_ADAM_PARAM], *m = a->out[HCGA_ADAM_M],
                      *v = a->out[HCGA_ADAM_V];
    int dt = ck->dtype;
    const hcga_optim_params *o = &a->p.optim;
    /* step >= 1 and betas in [0, 1) (contract): both corrections are > 0 */
    double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->beta2, (double)o->step);
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

OCL_OP_IMPL(SGD_STEP)
{
    const hcga_tensor *g = a->in[0], *p = a->out[HCGA_SGD_PARAM], *b = a->out[HCGA_SGD_BUF];
    int dt = ck->dtype;
    const hcga_optim_params *o = &a->p.optim;
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
/* Mixed precision: CAST                                                     */
/* ------------------------------------------------------------------------ */

hcga_status ocl_cast_dense(hcga_backend *be, cl_mem src, int64_t so, int sdt, cl_mem dst,
                           int64_t dso, int ddt, int64_t n)
{
    ocl_launch l;
    ocl_begin(&l, be, be->plain[KP_cast_bits], "cast_bits", HCGA_F32);
    ocl_arg_mem(&l, src);
    ocl_arg_long(&l, so);
    ocl_arg_int(&l, sdt);
    ocl_arg_mem(&l, dst);
    ocl_arg_long(&l, dso);
    ocl_arg_int(&l, ddt);
    ocl_arg_long(&l, n);
    return ocl_run(&l, (size_t)n, 0);
}

/* y = x rounded to y's dtype; x and y dense, same shape (the contract).  A
 * same-dtype cast is a copy of the bits (in place: nothing to do). */
OCL_OP_IMPL(CAST)
{
    (void)ck;
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    if (x->dtype == y->dtype) {
        if (x->buf == y->buf && x->offset == y->offset) return HCGA_OK;
        OCL_CHECK(be, clEnqueueCopyBuffer(be->queue, x->buf->mem, y->buf->mem, x->offset,
                                          y->offset, (size_t)n * hcga_dtype_size(x->dtype), 0,
                                          NULL, NULL),
                  "clEnqueueCopyBuffer");
        return HCGA_OK;
    }
    return ocl_cast_dense(be, x->buf->mem, ocl_eoff(x), x->dtype, y->buf->mem, ocl_eoff(y),
                          y->dtype, n);
}

/* ------------------------------------------------------------------------ */
/* Dispatch and op table                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t buffer_size(const hcga_buffer *buf) { return buf->size; }

/* What this backend cannot do, for a call the contract accepted:
 *  - integer data moves through COPY and FILL only (CONCAT / SPLIT of
 *    integer tensors are valid calls, but there are no kernels for them:
 *    supports() says so too);
 *  - f64 tensors need cl_khr_fp64 (the program has no double kernels
 *    without it);
 *  - f16 tensors only where f16_ok: always by default (f16 is storage
 *    converted with integer operations), with option fp16=khr only on
 *    devices with cl_khr_fp16 (supports() says so too).  bf16 needs nothing. */
static hcga_status device_limits(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    if (ck->dtype < 0 && ck->op != HCGA_OP_COPY && ck->op != HCGA_OP_FILL) {
        const hcga_tensor *t = a->num_in > 0 && a->in[0] ? a->in[0] : a->out[0];
        return ocl_fail(be, HCGA_ERR_UNSUPPORTED,
                        "%s tensors: the OpenCL backend runs this op on f32 and f64 only",
                        hcga_dtype_name(t->dtype));
    }
    if (be->has_fp64 && be->f16_ok) return HCGA_OK;
    for (int s = 0; s < a->num_in + a->num_out; s++) {
        int out = s >= a->num_in;
        const hcga_tensor *t = out ? a->out[s - a->num_in] : a->in[s];
        if (t && t->dtype == HCGA_F64 && !be->has_fp64)
            return ocl_fail(be, HCGA_ERR_UNSUPPORTED,
                            "%s[%d] is f64, which needs cl_khr_fp64 (this device lacks it)",
                            out ? "out" : "in", out ? s - a->num_in : s);
        if (t && t->dtype == HCGA_F16 && !be->f16_ok)
            return ocl_fail(be, HCGA_ERR_UNSUPPORTED,
                            "%s[%d] is f16, which needs cl_khr_fp16 with option fp16=khr (this "
                            "device lacks it)",
                            out ? "out" : "in", out ? s - a->num_in : s);
    }
    return HCGA_OK;
}

typedef hcga_status (*ocl_impl_fn)(hcga_backend *be, const hcga_op_args *a,
                                   const hcga_checked *ck);

/* Every op entry: the shared contract check, the device limits, then the
 * implementation.  The checker's message already starts with "<op>: ". */
static hcga_status ocl_dispatch(hcga_backend *be, const hcga_op_args *a, int op, ocl_impl_fn impl)
{
    if (!be) return HCGA_ERR_INVALID;
    be->op_name = hcga_op_name(op);
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) return ocl_fail_msg(be, st, msg);
    TRY(device_limits(be, a, &ck));
    return impl(be, a, &ck);
}

/* One entry per catalogue row; ocl_impl_<ID> must exist (here or, for
 * GEMM and the convolutions, in ocl_blas.c) or this does not compile. */
#define HCGA_OP(id_, ...)                                                                      \
    static hcga_status ocl_entry_##id_(hcga_backend *be, const hcga_op_args *a)                \
    {                                                                                          \
        return ocl_dispatch(be, a, HCGA_OP_##id_, ocl_impl_##id_);                             \
    }
#include "hcga_ops.def"
#undef HCGA_OP

const hcga_op_fn ocl_op_table[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = ocl_entry_##id_,
#include "hcga_ops.def"
#undef HCGA_OP
};
