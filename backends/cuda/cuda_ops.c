/*
 * cuda_ops.c - the ops of the CUDA backend that run on our own kernels
 * (k_*.cu through cuda_kernels.h), and the op table.
 *
 * Each op validates its arguments on the host (cuda_check.c), then
 * enqueues one or a few kernels on the instance's stream and returns.
 * Losses leave their scalar on the device; labels and indices that can
 * only be checked on the device raise the instance's error flag, reported
 * at the next buffer_read / synchronize.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_kernels.h"

/* ---- elementwise ---------------------------------------------------------------- */

/* One or two same-shape inputs, one same-shape output (in place allowed). */
static hcga_status pointwise_op(hcga_backend *be, const hcga_op_args *a, int op, int kind,
                                const char *n0, const char *n1, const char *nout)
{
    cu_ctx cc, *c = &cc;
    const int nin = n1 ? 2 : 1;
    CU_TRY(cu_begin(c, be, a, op, nin, nin, 1, 1));
    const hcga_tensor *x0, *x1 = NULL, *y;
    void *p0, *p1 = NULL, *py;
    CU_TRY(cu_in(c, 0, n0, CU_K_FLOAT, 0, &x0, &p0));
    if (n1) CU_TRY(cu_in(c, 1, n1, CU_K_FLOAT, 0, &x1, &p1));
    CU_TRY(cu_out(c, 0, nout, CU_K_FLOAT, 0, &y, &py));
    if (x1) CU_TRY(cu_same(c, x1, n1, x0, n0));
    CU_TRY(cu_same(c, y, nout, x0, n0));
    CU_TRY(cu_noalias(c, 1));
    double p = 0.0;
    if (kind == CUK_PW_THRESH_FWD || kind == CUK_PW_THRESH_BWD) {
        p = a->p.scalar.a;
        CU_TRY(cu_finite(c, p, "scalar.a (threshold)"));
    }
    CU_LAUNCH(be, c->op, cuk_pointwise(be->stream, c->dt, kind, hcga_tensor_numel(x0), p0, p1, py, p));
    return HCGA_OK;
}

static hcga_status op_relu_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_RELU_FWD, CUK_PW_RELU_FWD, "x", NULL, "y");
}
static hcga_status op_relu_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_RELU_BWD, CUK_PW_RELU_BWD, "y", "dy", "dx");
}
static hcga_status op_sigmoid_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_SIGMOID_FWD, CUK_PW_SIGMOID_FWD, "x", NULL, "y");
}
static hcga_status op_sigmoid_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_SIGMOID_BWD, CUK_PW_SIGMOID_BWD, "y", "dy", "dx");
}
static hcga_status op_thresh_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_THRESH_FWD, CUK_PW_THRESH_FWD, "x", NULL, "y");
}
static hcga_status op_thresh_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return pointwise_op(be, a, HCGA_OP_THRESH_BWD, CUK_PW_THRESH_BWD, "x", "dy", "dx");
}

/* Element strides of a dense tensor of shape `shape` (ndim nd), 0 on dims of 1. */
static void bcast_strides(const hcga_tensor *t, int64_t *s)
{
    int64_t acc = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        s[i] = t->shape[i] == 1 ? 0 : acc;
        acc *= t->shape[i];
    }
}

static hcga_status binary_op(hcga_backend *be, const hcga_op_args *a, int op, int mul)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, 2, 2, 1, 1));
    const hcga_tensor *ta, *tb, *y;
    void *pa, *pb, *py;
    CU_TRY(cu_in(c, 0, "a", CU_K_FLOAT, 0, &ta, &pa));
    CU_TRY(cu_in(c, 1, "b", CU_K_FLOAT, 0, &tb, &pb));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    CU_TRY(cu_finite(c, a->p.scalar.a, "scalar.a (alpha)"));
    if (!mul) CU_TRY(cu_finite(c, a->p.scalar.b, "scalar.b (beta)"));
    const hcga_tensor *ins[2] = {ta, tb};
    const char *names[2] = {"a", "b"};
    for (int k = 0; k < 2; k++) {
        char b1[96], b2[96];
        if (ins[k]->ndim != y->ndim)
            CU_BAD(c, "%s: %s %s and y %s must have the same ndim", c->op, names[k],
                   cu_shape_str(ins[k], b1, sizeof b1), cu_shape_str(y, b2, sizeof b2));
        for (int i = 0; i < y->ndim; i++)
            if (ins[k]->shape[i] != y->shape[i] && ins[k]->shape[i] != 1)
                CU_BAD(c, "%s: %s %s does not broadcast to y %s (dim %d)", c->op, names[k],
                       cu_shape_str(ins[k], b1, sizeof b1), cu_shape_str(y, b2, sizeof b2), i);
    }
    CU_TRY(cu_noalias(c, 1));
    const int64_t n = hcga_tensor_numel(y);
    if (n == 0) return HCGA_OK;
    const double alpha = a->p.scalar.a, beta = mul ? 0.0 : a->p.scalar.b;
    if (hcga_tensor_numel(ta) == n && hcga_tensor_numel(tb) == n) { /* no broadcasting */
        CU_LAUNCH(be, c->op, cuk_binary(be->stream, c->dt, mul, NULL, n, pa, pb, py, alpha, beta));
        return HCGA_OK;
    }
    /* broadcast: iterate over y's non-trivial dims */
    int64_t sa[HCGA_MAX_DIMS], sb[HCGA_MAX_DIMS];
    bcast_strides(ta, sa);
    bcast_strides(tb, sb);
    cuk_view v;
    memset(&v, 0, sizeof v);
    for (int i = 0; i < y->ndim; i++) {
        if (y->shape[i] == 1) continue;
        v.shape[v.nd] = y->shape[i];
        v.sa[v.nd] = sa[i];
        v.sb[v.nd] = sb[i];
        v.nd++;
    }
    CU_LAUNCH(be, c->op, cuk_binary(be->stream, c->dt, mul, &v, n, pa, pb, py, alpha, beta));
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
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_SUM_TO, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    void *px, *py;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    char b1[96], b2[96];
    if (x->ndim != y->ndim)
        CU_BAD(c, "%s: y %s must have the ndim of x %s", c->op, cu_shape_str(y, b1, sizeof b1),
               cu_shape_str(x, b2, sizeof b2));
    for (int i = 0; i < x->ndim; i++)
        if (y->shape[i] != x->shape[i] && y->shape[i] != 1)
            CU_BAD(c, "%s: y %s dim %d is neither x's (%s) nor 1", c->op,
                   cu_shape_str(y, b1, sizeof b1), i, cu_shape_str(x, b2, sizeof b2));
    CU_TRY(cu_noalias(c, 1));
    if (hcga_tensor_numel(x) == 0) {
        CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, hcga_tensor_numel(y), py, 0.0));
        return HCGA_OK;
    }
    /* kept dims (y == x) and reduced dims (y == 1 < x), merged when adjacent
     * in x's memory; dims of size 1 take no part */
    int64_t xs[HCGA_MAX_DIMS], acc = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xs[i] = acc;
        acc *= x->shape[i];
    }
    cuk_red r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1) continue;
        if (y->shape[i] == x->shape[i]) {
            if (r.nk > 0 && r.kstride[r.nk - 1] == xs[i] * x->shape[i]) {
                r.kshape[r.nk - 1] *= x->shape[i];
                r.kstride[r.nk - 1] = xs[i];
            } else {
                r.kshape[r.nk] = x->shape[i];
                r.kstride[r.nk++] = xs[i];
            }
        } else {
            if (r.nr > 0 && r.rstride[r.nr - 1] == xs[i] * x->shape[i]) {
                r.rshape[r.nr - 1] *= x->shape[i];
                r.rstride[r.nr - 1] = xs[i];
            } else {
                r.rshape[r.nr] = x->shape[i];
                r.rstride[r.nr++] = xs[i];
            }
        }
    }
    r.ny = 1;
    for (int i = 0; i < r.nk; i++) r.ny *= r.kshape[i];
    r.nred = 1;
    for (int i = 0; i < r.nr; i++) r.nred *= r.rshape[i];
    CU_LAUNCH(be, c->op, cuk_sum_to(be->stream, c->dt, &r, px, py));
    return HCGA_OK;
}

static hcga_status op_copy(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_COPY, 1, 1, 1, 1));
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    void *px, *py;
    if (!x) CU_BAD(c, "%s: x (in[0]) is missing", c->op);
    if (!y) CU_BAD(c, "%s: y (out[0]) is missing", c->op);
    CU_TRY(cu_tensor_strided(c, x, "x", &px));
    CU_TRY(cu_tensor_strided(c, y, "y", &py));
    CU_TRY(cu_same(c, y, "y", x, "x"));
    const int fx = x->dtype == HCGA_F32 || x->dtype == HCGA_F64;
    const int fy = y->dtype == HCGA_F32 || y->dtype == HCGA_F64;
    if (x->dtype != y->dtype && !(fx && fy))
        CU_BAD(c, "%s: cannot convert %s to %s (only f32 <-> f64)", c->op, hcga_dtype_name(x->dtype),
               hcga_dtype_name(y->dtype));
    if (cu_overlaps(x, y) && !cu_same_view(x, y))
        CU_BAD(c, "%s: x and y overlap in the same buffer", c->op);
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0 || cu_same_view(x, y)) return HCGA_OK;
    /* dims of size 1 dropped, neighbours merged when both sides allow it */
    cuk_view v;
    memset(&v, 0, sizeof v);
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1) continue;
        const int64_t sx = x->stride[i], sy = y->stride[i];
        if (v.nd > 0 && v.sa[v.nd - 1] == sx * x->shape[i] && v.sy[v.nd - 1] == sy * x->shape[i]) {
            v.shape[v.nd - 1] *= x->shape[i];
            v.sa[v.nd - 1] = sx;
            v.sy[v.nd - 1] = sy;
            continue;
        }
        v.shape[v.nd] = x->shape[i];
        v.sa[v.nd] = sx;
        v.sy[v.nd] = sy;
        v.nd++;
    }
    /* a dense same-dtype copy is one memcpy */
    if (x->dtype == y->dtype && (v.nd == 0 || (v.nd == 1 && v.sa[0] == 1 && v.sy[0] == 1))) {
        CU_CUDA(be, c->op, "cudaMemcpyAsync",
                cudaMemcpyAsync(py, px, (size_t)n * hcga_dtype_size(x->dtype), cudaMemcpyDeviceToDevice,
                                be->stream));
        return HCGA_OK;
    }
    CU_LAUNCH(be, c->op, cuk_copy(be->stream, x->dtype, y->dtype, &v, n, px, py));
    return HCGA_OK;
}

static hcga_status op_fill(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_FILL, 0, 0, 1, 1));
    const hcga_tensor *y;
    void *py;
    CU_TRY(cu_out(c, 0, "y", CU_K_ANY, 0, &y, &py));
    const double s = a->p.scalar.a;
    const int64_t n = hcga_tensor_numel(y);
    switch (y->dtype) {
    case HCGA_F32:
        if (isfinite(s) && fabs(s) > 3.4028234663852886e38) CU_BAD(c, "%s: %g does not fit in f32", c->op, s);
        break;
    case HCGA_F64: break;
    case HCGA_I32:
    case HCGA_I64:
    case HCGA_U8: {
        const double lo = y->dtype == HCGA_I32 ? -2147483648.0 : y->dtype == HCGA_U8 ? 0.0 : -9223372036854775808.0;
        const double hi = y->dtype == HCGA_I32 ? 2147483648.0 : y->dtype == HCGA_U8 ? 256.0 : 9223372036854775808.0;
        if (!isfinite(s) || trunc(s) < lo || trunc(s) >= hi)
            CU_BAD(c, "%s: %g does not fit in %s", c->op, s, hcga_dtype_name(y->dtype));
        break;
    }
    default: CU_BAD(c, "%s: y has unsupported dtype %s", c->op, hcga_dtype_name(y->dtype));
    }
    CU_LAUNCH(be, c->op, cuk_fill(be->stream, y->dtype, n, py, y->dtype <= HCGA_F64 ? s : trunc(s)));
    return HCGA_OK;
}

/* ---- channel ops ---------------------------------------------------------------------- */

/* x [N, C, ...] -> N, C and the product of the remaining dims. */
static hcga_status nc_dims(cu_ctx *c, const hcga_tensor *x, const char *name, int64_t *N, int64_t *C,
                           int64_t *S)
{
    if (x->ndim < 2) {
        char b[96];
        CU_BAD(c, "%s: %s must have at least 2 dims [N,C,...], got %s", c->op, name,
               cu_shape_str(x, b, sizeof b));
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->shape[i];
    return HCGA_OK;
}

static hcga_status op_softmax_fwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_SOFTMAX_FWD, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    void *px, *py;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    int64_t N, C, S;
    CU_TRY(nc_dims(c, x, "x", &N, &C, &S));
    CU_TRY(cu_same(c, y, "y", x, "x"));
    CU_TRY(cu_noalias(c, 1));
    CU_LAUNCH(be, c->op, cuk_softmax_fwd(be->stream, c->dt, N, C, S, px, py));
    return HCGA_OK;
}

static hcga_status op_softmax_bwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_SOFTMAX_BWD, 2, 2, 1, 1));
    const hcga_tensor *y, *dy, *dx;
    void *py, *pdy, *pdx;
    CU_TRY(cu_in(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    CU_TRY(cu_in(c, 1, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_out(c, 0, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    int64_t N, C, S;
    CU_TRY(nc_dims(c, y, "y", &N, &C, &S));
    CU_TRY(cu_same(c, dy, "dy", y, "y"));
    CU_TRY(cu_same(c, dx, "dx", y, "y"));
    CU_TRY(cu_noalias(c, 1));
    CU_LAUNCH(be, c->op, cuk_softmax_bwd(be->stream, c->dt, N, C, S, py, pdy, pdx));
    return HCGA_OK;
}

static hcga_status cat_op(hcga_backend *be, const hcga_op_args *a, int op, int split)
{
    cu_ctx cc, *c = &cc;
    if (split)
        CU_TRY(cu_begin(c, be, a, op, 1, 1, 1, HCGA_MAX_OP_OUT));
    else
        CU_TRY(cu_begin(c, be, a, op, 1, HCGA_MAX_OP_IN, 1, 1));
    const hcga_tensor *whole, *parts[8];
    void *pw;
    const int n = split ? a->num_out : a->num_in;
    const char *wn = split ? "dy" : "y";
    if (split)
        CU_TRY(cu_in(c, 0, wn, CU_K_ANY, 0, &whole, &pw));
    else
        CU_TRY(cu_out(c, 0, wn, CU_K_ANY, 0, &whole, &pw));
    cuk_parts pp;
    memset(&pp, 0, sizeof pp);
    pp.n = n;
    int64_t csum = 0;
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, split ? "dx%d" : "x%d", i);
        void *p;
        if (split)
            CU_TRY(cu_out(c, i, nm, CU_K_ANY, 0, &parts[i], &p));
        else
            CU_TRY(cu_in(c, i, nm, CU_K_ANY, 0, &parts[i], &p));
        if (parts[i]->dtype != whole->dtype)
            CU_BAD(c, "%s: %s has dtype %s but %s is %s", c->op, nm,
                   hcga_dtype_name(parts[i]->dtype), wn, hcga_dtype_name(whole->dtype));
        char b1[96], b2[96];
        if (parts[i]->ndim != whole->ndim || whole->ndim < 2)
            CU_BAD(c, "%s: %s %s and %s %s must have the same ndim >= 2", c->op, nm,
                   cu_shape_str(parts[i], b1, sizeof b1), wn, cu_shape_str(whole, b2, sizeof b2));
        for (int d = 0; d < whole->ndim; d++)
            if (d != 1 && parts[i]->shape[d] != whole->shape[d])
                CU_BAD(c, "%s: %s %s differs from %s %s in dim %d", c->op, nm,
                       cu_shape_str(parts[i], b1, sizeof b1), wn, cu_shape_str(whole, b2, sizeof b2), d);
        pp.ptr[i] = p;
        pp.c[i] = parts[i]->shape[1];
        csum += parts[i]->shape[1];
    }
    if (csum != whole->shape[1])
        CU_BAD(c, "%s: the parts have %lld channels in total but %s has %lld", c->op,
               (long long)csum, wn, (long long)whole->shape[1]);
    CU_TRY(cu_noalias(c, 0));
    int64_t inner = 1;
    for (int d = 2; d < whole->ndim; d++) inner *= whole->shape[d];
    CU_LAUNCH(be, c->op, cuk_concat(be->stream, (int)hcga_dtype_size(whole->dtype), split, &pp,
                                    whole->shape[0], whole->shape[1], inner, pw));
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
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_ARGMAX, 1, 1, 1, 1));
    const hcga_tensor *x, *idx;
    void *px, *pi;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_out(c, 0, "idx", CU_K_I64, 0, &idx, &pi));
    int64_t N, C, S;
    CU_TRY(nc_dims(c, x, "x", &N, &C, &S));
    int64_t want[HCGA_MAX_DIMS];
    want[0] = N;
    for (int i = 2; i < x->ndim; i++) want[i - 1] = x->shape[i];
    CU_TRY(cu_shape(c, idx, "idx", x->ndim - 1, want));
    if (C < 1 && N * S > 0) CU_BAD(c, "%s: x has no channels to take the maximum over", c->op);
    CU_TRY(cu_noalias(c, 0));
    CU_LAUNCH(be, c->op, cuk_argmax(be->stream, c->dt, N, C, S, px, (int64_t *)pi));
    return HCGA_OK;
}

/* ---- spatial ----------------------------------------------------------------------------- */

static hcga_status upsample_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, 1, 1, 1, 1));
    const hcga_tensor *tin, *tout;
    void *pin, *pout;
    CU_TRY(cu_in(c, 0, bwd ? "dy" : "x", CU_K_FLOAT, 0, &tin, &pin));
    CU_TRY(cu_out(c, 0, bwd ? "dx" : "y", CU_K_FLOAT, 0, &tout, &pout));
    const int f = a->p.resize.factor;
    if (f < 1 || f > 4096) CU_BAD(c, "%s: resize.factor %d must be in 1..4096", c->op, f);
    const hcga_tensor *small = bwd ? tout : tin, *big = bwd ? tin : tout;
    CU_TRY(cu_ndim(c, small, bwd ? "dx" : "x", 4, "[N,C,H,W]"));
    CU_SHAPE(c, big, bwd ? "dy" : "y", small->shape[0], small->shape[1], small->shape[2] * f,
             small->shape[3] * f);
    CU_TRY(cu_noalias(c, 0));
    const int64_t nc = small->shape[0] * small->shape[1], H = small->shape[2], W = small->shape[3];
    if (bwd)
        CU_LAUNCH(be, c->op, cuk_upsample_bwd(be->stream, c->dt, nc, H, W, f, pin, pout));
    else
        CU_LAUNCH(be, c->op, cuk_upsample_fwd(be->stream, c->dt, nc, H, W, f, pin, pout));
    return HCGA_OK;
}

static hcga_status op_upsample_fwd(hcga_backend *be, const hcga_op_args *a)
{
    return upsample_op(be, a, HCGA_OP_UPSAMPLE_NEAREST_FWD, 0);
}
static hcga_status op_upsample_bwd(hcga_backend *be, const hcga_op_args *a)
{
    return upsample_op(be, a, HCGA_OP_UPSAMPLE_NEAREST_BWD, 1);
}

static hcga_status resize_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, 1, 1, 1, 1));
    const hcga_tensor *tin, *tout;
    void *pin, *pout;
    CU_TRY(cu_in(c, 0, bwd ? "dy" : "x", CU_K_FLOAT, 0, &tin, &pin));
    CU_TRY(cu_out(c, 0, bwd ? "dx" : "y", CU_K_FLOAT, 0, &tout, &pout));
    const hcga_tensor *small = bwd ? tout : tin, *big = bwd ? tin : tout;
    const char *sn = bwd ? "dx" : "x", *bn = bwd ? "dy" : "y";
    CU_TRY(cu_ndim(c, small, sn, 4, "[N,C,H,W]"));
    CU_TRY(cu_ndim(c, big, bn, 4, "[N,C,OH,OW]"));
    if (big->shape[0] != small->shape[0] || big->shape[1] != small->shape[1]) {
        char b1[96], b2[96];
        CU_BAD(c, "%s: %s %s and %s %s differ in N or C", c->op, sn, cu_shape_str(small, b1, sizeof b1),
               bn, cu_shape_str(big, b2, sizeof b2));
    }
    const int align = a->p.resize.align_corners;
    if (align != 0 && align != 1) CU_BAD(c, "%s: resize.align_corners %d must be 0 or 1", c->op, align);
    const int64_t H = small->shape[2], W = small->shape[3], OH = big->shape[2], OW = big->shape[3];
    const int64_t nc = small->shape[0] * small->shape[1];
    if (nc > 0 && OH * OW > 0 && (H < 1 || W < 1)) CU_BAD(c, "%s: %s has an empty spatial size", c->op, sn);
    CU_TRY(cu_noalias(c, 0));
    if (nc == 0) return HCGA_OK;
    if (OH * OW == 0) { /* nothing flows */
        if (bwd) CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, hcga_tensor_numel(tout), pout, 0.0));
        return HCGA_OK;
    }
    if (bwd)
        CU_LAUNCH(be, c->op, cuk_bilinear_bwd(be->stream, c->dt, nc, H, W, OH, OW, align, pin, pout));
    else
        CU_LAUNCH(be, c->op, cuk_bilinear_fwd(be->stream, c->dt, nc, H, W, OH, OW, align, pin, pout));
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
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_GAP_FWD, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    void *px, *py;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    CU_TRY(cu_ndim(c, x, "x", 4, "[N,C,H,W]"));
    CU_SHAPE(c, y, "y", x->shape[0], x->shape[1]);
    const int64_t HW = x->shape[2] * x->shape[3], nc = x->shape[0] * x->shape[1];
    if (HW < 1 && nc > 0) CU_BAD(c, "%s: x has an empty spatial size", c->op);
    CU_TRY(cu_noalias(c, 0));
    CU_LAUNCH(be, c->op, cuk_gap_fwd(be->stream, c->dt, nc, HW, px, py));
    return HCGA_OK;
}

static hcga_status op_gap_bwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_GAP_BWD, 1, 1, 1, 1));
    const hcga_tensor *dy, *dx;
    void *pdy, *pdx;
    CU_TRY(cu_in(c, 0, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_out(c, 0, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    CU_TRY(cu_ndim(c, dx, "dx", 4, "[N,C,H,W]"));
    CU_SHAPE(c, dy, "dy", dx->shape[0], dx->shape[1]);
    CU_TRY(cu_noalias(c, 0));
    CU_LAUNCH(be, c->op, cuk_gap_bwd(be->stream, c->dt, dx->shape[0] * dx->shape[1],
                                     dx->shape[2] * dx->shape[3], pdy, pdx));
    return HCGA_OK;
}

/* ---- reductions -------------------------------------------------------------------------- */

static hcga_status reduce_kind(cu_ctx *c, int kind)
{
    if (kind != HCGA_REDUCE_SUM && kind != HCGA_REDUCE_MEAN && kind != HCGA_REDUCE_ABS_MEAN)
        CU_BAD(c, "%s: reduce.kind %d is not SUM, MEAN or ABS_MEAN", c->op, kind);
    return HCGA_OK;
}

static hcga_status op_reduce(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_REDUCE, 1, 1, 1, 1));
    const hcga_tensor *x, *y;
    void *px, *py;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    CU_TRY(cu_scalar(c, y, "y"));
    const int kind = a->p.reduce.kind;
    CU_TRY(reduce_kind(c, kind));
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0 && kind != HCGA_REDUCE_SUM) CU_BAD(c, "%s: mean of an empty tensor", c->op);
    CU_TRY(cu_noalias(c, 0));
    if (n == 0) {
        CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, 1, py, 0.0));
        return HCGA_OK;
    }
    CU_TRY(cu_ensure_scratch(be, c->op, CUK_REDUCE_SCRATCH));
    const int k = kind == HCGA_REDUCE_SUM ? CUK_RED_SUM : kind == HCGA_REDUCE_MEAN ? CUK_RED_MEAN : CUK_RED_ABS_MEAN;
    CU_LAUNCH(be, c->op, cuk_reduce_all(be->stream, c->dt, k, n, px, py, be->scratch));
    return HCGA_OK;
}

static hcga_status op_reduce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_REDUCE_BWD, 2, 2, 1, 1));
    const hcga_tensor *x, *dy, *dx;
    void *px, *pdy, *pdx;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_out(c, 0, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    CU_TRY(cu_scalar(c, dy, "dy"));
    CU_TRY(cu_same(c, dx, "dx", x, "x"));
    const int kind = a->p.reduce.kind;
    CU_TRY(reduce_kind(c, kind));
    CU_TRY(cu_noalias(c, 1));
    const int k = kind == HCGA_REDUCE_SUM ? CUK_RED_SUM : kind == HCGA_REDUCE_MEAN ? CUK_RED_MEAN : CUK_RED_ABS_MEAN;
    CU_LAUNCH(be, c->op, cuk_reduce_bwd(be->stream, c->dt, k, hcga_tensor_numel(x), px, pdy, pdx));
    return HCGA_OK;
}

/* ---- losses ---------------------------------------------------------------------------------- */

static hcga_status ce_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, bwd ? 3 : 2, bwd ? 3 : 2, 1, 1));
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    void *px, *plab, *pdl = NULL, *pout;
    CU_TRY(cu_in(c, 0, "logits", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "labels", CU_K_I64, 0, &lab, &plab));
    if (bwd) CU_TRY(cu_in(c, 2, "dloss", CU_K_FLOAT, 0, &dl, &pdl));
    CU_TRY(cu_out(c, 0, bwd ? "dlogits" : "loss", CU_K_FLOAT, 0, &out, &pout));
    CU_TRY(cu_ndim(c, x, "logits", 2, "[N,C]"));
    const int64_t N = x->shape[0], C = x->shape[1];
    CU_SHAPE(c, lab, "labels", N);
    if (bwd) {
        CU_TRY(cu_scalar(c, dl, "dloss"));
        CU_TRY(cu_same(c, out, "dlogits", x, "logits"));
    } else {
        CU_TRY(cu_scalar(c, out, "loss"));
    }
    const double eps = a->p.loss.eps;
    CU_TRY(cu_finite(c, eps, "loss.eps"));
    if (eps < 0 || eps > 1) CU_BAD(c, "%s: loss.eps %g must be in [0, 1]", c->op, eps);
    if (N < 1 || C < 1) CU_BAD(c, "%s: logits must have N >= 1 and C >= 1", c->op);
    CU_TRY(cu_noalias(c, 0));
    if (bwd) {
        CU_LAUNCH(be, c->op, cuk_ce_ls_bwd(be->stream, c->dt, N, C, px, (const int64_t *)plab, pdl,
                                           eps, pout, be->dflag, cu_flag_code(op)));
    } else {
        CU_TRY(cu_ensure_scratch(be, c->op, (size_t)cuk_ce_ls_scratch(c->dt, N)));
        CU_LAUNCH(be, c->op, cuk_ce_ls_fwd(be->stream, c->dt, N, C, px, (const int64_t *)plab, eps,
                                           pout, be->scratch, be->dflag, cu_flag_code(op)));
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
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, bwd ? 3 : 2, bwd ? 3 : 2, 1, 1));
    const hcga_tensor *x, *lab, *dl = NULL, *out;
    void *px, *plab, *pdl = NULL, *pout;
    CU_TRY(cu_in(c, 0, "logits", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "labels", CU_K_I64, 0, &lab, &plab));
    if (bwd) CU_TRY(cu_in(c, 2, "dloss", CU_K_FLOAT, 0, &dl, &pdl));
    CU_TRY(cu_out(c, 0, bwd ? "dlogits" : "loss", CU_K_FLOAT, 0, &out, &pout));
    CU_TRY(cu_ndim(c, x, "logits", 4, "[N,K,H,W]"));
    const int64_t N = x->shape[0], K = x->shape[1], S = x->shape[2] * x->shape[3];
    CU_SHAPE(c, lab, "labels", N, x->shape[2], x->shape[3]);
    if (bwd) {
        CU_TRY(cu_scalar(c, dl, "dloss"));
        CU_TRY(cu_same(c, out, "dlogits", x, "logits"));
    } else {
        CU_TRY(cu_scalar(c, out, "loss"));
    }
    if (K < 1) CU_BAD(c, "%s: logits have no classes", c->op);
    CU_TRY(cu_noalias(c, 0));
    CU_TRY(cu_ensure_scratch(be, c->op, (size_t)cuk_pixel_ce_scratch()));
    const int64_t ign = a->p.loss.ignore_label;
    if (bwd)
        CU_LAUNCH(be, c->op, cuk_pixel_ce_bwd(be->stream, c->dt, N, K, S, px, (const int64_t *)plab,
                                              ign, pdl, pout, be->scratch, be->dflag, cu_flag_code(op)));
    else
        CU_LAUNCH(be, c->op, cuk_pixel_ce_fwd(be->stream, c->dt, N, K, S, px, (const int64_t *)plab,
                                              ign, pout, be->scratch, be->dflag, cu_flag_code(op)));
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

static hcga_status op_triplet_fwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_TRIPLET_FWD, 2, 2, 2, 2));
    const hcga_tensor *x, *lab, *loss, *hard;
    void *px, *plab, *ploss, *phard;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "labels", CU_K_I64, 0, &lab, &plab));
    CU_TRY(cu_out(c, 0, "loss", CU_K_FLOAT, 0, &loss, &ploss));
    CU_TRY(cu_out(c, 1, "hard", CU_K_I64, 0, &hard, &phard));
    CU_TRY(cu_ndim(c, x, "x", 2, "[N,D]"));
    const int64_t N = x->shape[0], D = x->shape[1];
    CU_SHAPE(c, lab, "labels", N);
    CU_TRY(cu_scalar(c, loss, "loss"));
    CU_SHAPE(c, hard, "hard", N, 2);
    CU_TRY(cu_finite(c, a->p.loss.margin, "loss.margin"));
    if (N < 1) CU_BAD(c, "%s: x has no rows", c->op);
    if (N > 65536) CU_BAD(c, "%s: N = %lld is too large for the N x N distance matrix", c->op, (long long)N);
    CU_TRY(cu_noalias(c, 0));
    CU_TRY(cu_ensure_scratch(be, c->op, (size_t)cuk_triplet_scratch(c->dt, N)));
    CU_LAUNCH(be, c->op, cuk_triplet_fwd(be->stream, c->dt, N, D, px, (const int64_t *)plab,
                                         a->p.loss.margin, ploss, (int64_t *)phard, be->scratch));
    return HCGA_OK;
}

static hcga_status op_triplet_bwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_TRIPLET_BWD, 3, 3, 1, 1));
    const hcga_tensor *x, *hard, *dl, *dx;
    void *px, *phard, *pdl, *pdx;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "hard", CU_K_I64, 0, &hard, &phard));
    CU_TRY(cu_in(c, 2, "dloss", CU_K_FLOAT, 0, &dl, &pdl));
    CU_TRY(cu_out(c, 0, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    CU_TRY(cu_ndim(c, x, "x", 2, "[N,D]"));
    const int64_t N = x->shape[0], D = x->shape[1];
    CU_SHAPE(c, hard, "hard", N, 2);
    CU_TRY(cu_scalar(c, dl, "dloss"));
    CU_TRY(cu_same(c, dx, "dx", x, "x"));
    CU_TRY(cu_finite(c, a->p.loss.margin, "loss.margin"));
    if (N < 1) CU_BAD(c, "%s: x has no rows", c->op);
    if (N > 65536) CU_BAD(c, "%s: N = %lld is too large for the N x N distance matrix", c->op, (long long)N);
    CU_TRY(cu_noalias(c, 0));
    CU_TRY(cu_ensure_scratch(be, c->op, (size_t)cuk_triplet_scratch(c->dt, N)));
    CU_LAUNCH(be, c->op, cuk_triplet_bwd(be->stream, c->dt, N, D, px, (const int64_t *)phard, pdl,
                                         a->p.loss.margin, pdx, be->scratch, be->dflag,
                                         cu_flag_code(HCGA_OP_TRIPLET_BWD)));
    return HCGA_OK;
}

static hcga_status shift_op(hcga_backend *be, const hcga_op_args *a, int op, int bwd)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, op, bwd ? 2 : 1, bwd ? 2 : 1, 1, 1));
    const hcga_tensor *x, *dl = NULL, *out;
    void *px, *pdl = NULL, *pout;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    if (bwd) CU_TRY(cu_in(c, 1, "dloss", CU_K_FLOAT, 0, &dl, &pdl));
    CU_TRY(cu_out(c, 0, bwd ? "dx" : "loss", CU_K_FLOAT, 0, &out, &pout));
    CU_TRY(cu_ndim(c, x, "x", 4, "[N,C,H,W]"));
    if (bwd) {
        CU_TRY(cu_scalar(c, dl, "dloss"));
        CU_TRY(cu_same(c, out, "dx", x, "x"));
    } else {
        CU_TRY(cu_scalar(c, out, "loss"));
    }
    const hcga_shift_params *p = &a->p.shift;
    if (p->dn < -1 || p->dn > 1 || p->dh < -1 || p->dh > 1 || p->dw < -1 || p->dw > 1)
        CU_BAD(c, "%s: shift (dn,dh,dw) = (%d,%d,%d) must each be -1, 0 or 1", c->op, p->dn, p->dh, p->dw);
    CU_TRY(cu_noalias(c, 0));
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t vn = N - (p->dn ? 1 : 0), vh = H - (p->dh ? 1 : 0), vw = W - (p->dw ? 1 : 0);
    const int64_t count = (vn > 0 ? vn : 0) * C * (vh > 0 ? vh : 0) * (vw > 0 ? vw : 0);
    if (bwd) {
        if (count == 0) {
            CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, hcga_tensor_numel(x), pout, 0.0));
            return HCGA_OK;
        }
        CU_LAUNCH(be, c->op, cuk_shift_l1_bwd(be->stream, c->dt, N, C, H, W, p->dn, p->dh, p->dw, px,
                                              pdl, pout));
    } else {
        if (count == 0) {
            CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, 1, pout, 0.0));
            return HCGA_OK;
        }
        CU_TRY(cu_ensure_scratch(be, c->op, (size_t)cuk_shift_l1_scratch()));
        CU_LAUNCH(be, c->op, cuk_shift_l1_fwd(be->stream, c->dt, N, C, H, W, p->dn, p->dh, p->dw, px,
                                              pout, be->scratch));
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

/* ---- optimizers --------------------------------------------------------------------------------- */

static hcga_status optim_check(cu_ctx *c, const hcga_optim_params *p, int adam)
{
    CU_TRY(cu_finite(c, p->lr, "optim.lr"));
    CU_TRY(cu_finite(c, p->weight_decay, "optim.weight_decay"));
    if (p->step < 1) CU_BAD(c, "%s: optim.step %lld must be >= 1", c->op, (long long)p->step);
    if (adam) {
        CU_TRY(cu_finite(c, p->eps, "optim.eps"));
        if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1))
            CU_BAD(c, "%s: optim.beta1 (%g) and beta2 (%g) must be in [0, 1)", c->op, p->beta1, p->beta2);
        if (p->eps < 0) CU_BAD(c, "%s: optim.eps (%g) must be >= 0", c->op, p->eps);
    } else {
        CU_TRY(cu_finite(c, p->momentum, "optim.momentum"));
    }
    return HCGA_OK;
}

static hcga_status op_adam_step(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_ADAM_STEP, 1, 1, 3, 3));
    const hcga_tensor *g, *p, *m, *v;
    void *pg, *pp, *pm, *pv;
    CU_TRY(cu_in(c, 0, "grad", CU_K_FLOAT, 0, &g, &pg));
    CU_TRY(cu_out(c, HCGA_ADAM_PARAM, "param", CU_K_FLOAT, 0, &p, &pp));
    CU_TRY(cu_out(c, HCGA_ADAM_M, "m", CU_K_FLOAT, 0, &m, &pm));
    CU_TRY(cu_out(c, HCGA_ADAM_V, "v", CU_K_FLOAT, 0, &v, &pv));
    CU_TRY(cu_same(c, p, "param", g, "grad"));
    CU_TRY(cu_same(c, m, "m", g, "grad"));
    CU_TRY(cu_same(c, v, "v", g, "grad"));
    const hcga_optim_params *o = &a->p.optim;
    CU_TRY(optim_check(c, o, 1));
    CU_TRY(cu_noalias(c, 0));
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2s = sqrt(1.0 - pow(o->beta2, (double)o->step));
    if (bc1 <= 0 || bc2s <= 0)
        CU_BAD(c, "%s: bias corrections vanish (beta1 %g, beta2 %g, step %lld)", c->op, o->beta1,
               o->beta2, (long long)o->step);
    CU_LAUNCH(be, c->op, cuk_adam(be->stream, c->dt, hcga_tensor_numel(g), pg, pp, pm, pv, o->lr / bc1,
                                  o->beta1, o->beta2, o->eps, o->weight_decay, bc2s));
    return HCGA_OK;
}

static hcga_status op_sgd_step(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_SGD_STEP, 1, 1, 2, 2));
    const hcga_tensor *g, *p, *b;
    void *pg, *pp, *pb;
    CU_TRY(cu_in(c, 0, "grad", CU_K_FLOAT, 0, &g, &pg));
    CU_TRY(cu_out(c, HCGA_SGD_PARAM, "param", CU_K_FLOAT, 0, &p, &pp));
    CU_TRY(cu_out(c, HCGA_SGD_BUF, "buf", CU_K_FLOAT, 0, &b, &pb));
    CU_TRY(cu_same(c, p, "param", g, "grad"));
    CU_TRY(cu_same(c, b, "buf", g, "grad"));
    const hcga_optim_params *o = &a->p.optim;
    CU_TRY(optim_check(c, o, 0));
    CU_TRY(cu_noalias(c, 0));
    CU_LAUNCH(be, c->op, cuk_sgd(be->stream, c->dt, hcga_tensor_numel(g), pg, pp, pb, o->lr,
                                 o->momentum, o->weight_decay, o->step == 1));
    return HCGA_OK;
}

/* ---- the table ------------------------------------------------------------------------------------ */

/* With sync=1 every op waits for its own work, so that a device fault or a
 * device-side input error is reported by the op that caused it. */
static hcga_status after_op(hcga_backend *be, const hcga_op_args *a, hcga_status st)
{
    if (st != HCGA_OK || !be || !be->sync_each) return st;
    return cu_wait_and_check(be, hcga_op_name(a->op));
}

#define CU_WRAP(fn)                                                           \
    static hcga_status w_##fn(hcga_backend *be, const hcga_op_args *a)          \
    {                                                                         \
        return after_op(be, a, fn(be, a));                                    \
    }
CU_WRAP(cu_op_conv2d_fwd)
CU_WRAP(cu_op_conv2d_bwd_data)
CU_WRAP(cu_op_conv2d_bwd_filter)
CU_WRAP(cu_op_bn_fwd_train)
CU_WRAP(cu_op_bn_fwd_infer)
CU_WRAP(cu_op_bn_bwd)
CU_WRAP(op_relu_fwd)
CU_WRAP(op_relu_bwd)
CU_WRAP(op_sigmoid_fwd)
CU_WRAP(op_sigmoid_bwd)
CU_WRAP(op_thresh_fwd)
CU_WRAP(op_thresh_bwd)
CU_WRAP(op_add)
CU_WRAP(op_mul)
CU_WRAP(op_sum_to)
CU_WRAP(op_copy)
CU_WRAP(op_fill)
CU_WRAP(op_softmax_fwd)
CU_WRAP(op_softmax_bwd)
CU_WRAP(op_concat)
CU_WRAP(op_split)
CU_WRAP(op_argmax)
CU_WRAP(op_upsample_fwd)
CU_WRAP(op_upsample_bwd)
CU_WRAP(op_resize_fwd)
CU_WRAP(op_resize_bwd)
CU_WRAP(op_gap_fwd)
CU_WRAP(op_gap_bwd)
CU_WRAP(cu_op_gemm)
CU_WRAP(op_reduce)
CU_WRAP(op_reduce_bwd)
CU_WRAP(op_ce_ls_fwd)
CU_WRAP(op_ce_ls_bwd)
CU_WRAP(op_pixel_ce_fwd)
CU_WRAP(op_pixel_ce_bwd)
CU_WRAP(op_triplet_fwd)
CU_WRAP(op_triplet_bwd)
CU_WRAP(op_shift_l1_fwd)
CU_WRAP(op_shift_l1_bwd)
CU_WRAP(op_adam_step)
CU_WRAP(op_sgd_step)

const hcga_op_fn cu_op_table[HCGA_OP_COUNT] = {
    [HCGA_OP_CONV2D_FWD] = w_cu_op_conv2d_fwd,
    [HCGA_OP_CONV2D_BWD_DATA] = w_cu_op_conv2d_bwd_data,
    [HCGA_OP_CONV2D_BWD_FILTER] = w_cu_op_conv2d_bwd_filter,
    [HCGA_OP_BN_FWD_TRAIN] = w_cu_op_bn_fwd_train,
    [HCGA_OP_BN_FWD_INFER] = w_cu_op_bn_fwd_infer,
    [HCGA_OP_BN_BWD] = w_cu_op_bn_bwd,
    [HCGA_OP_RELU_FWD] = w_op_relu_fwd,
    [HCGA_OP_RELU_BWD] = w_op_relu_bwd,
    [HCGA_OP_SIGMOID_FWD] = w_op_sigmoid_fwd,
    [HCGA_OP_SIGMOID_BWD] = w_op_sigmoid_bwd,
    [HCGA_OP_THRESH_FWD] = w_op_thresh_fwd,
    [HCGA_OP_THRESH_BWD] = w_op_thresh_bwd,
    [HCGA_OP_ADD] = w_op_add,
    [HCGA_OP_MUL] = w_op_mul,
    [HCGA_OP_SUM_TO] = w_op_sum_to,
    [HCGA_OP_COPY] = w_op_copy,
    [HCGA_OP_FILL] = w_op_fill,
    [HCGA_OP_SOFTMAX_FWD] = w_op_softmax_fwd,
    [HCGA_OP_SOFTMAX_BWD] = w_op_softmax_bwd,
    [HCGA_OP_CONCAT] = w_op_concat,
    [HCGA_OP_SPLIT] = w_op_split,
    [HCGA_OP_ARGMAX] = w_op_argmax,
    [HCGA_OP_UPSAMPLE_NEAREST_FWD] = w_op_upsample_fwd,
    [HCGA_OP_UPSAMPLE_NEAREST_BWD] = w_op_upsample_bwd,
    [HCGA_OP_RESIZE_BILINEAR_FWD] = w_op_resize_fwd,
    [HCGA_OP_RESIZE_BILINEAR_BWD] = w_op_resize_bwd,
    [HCGA_OP_GAP_FWD] = w_op_gap_fwd,
    [HCGA_OP_GAP_BWD] = w_op_gap_bwd,
    [HCGA_OP_GEMM] = w_cu_op_gemm,
    [HCGA_OP_REDUCE] = w_op_reduce,
    [HCGA_OP_REDUCE_BWD] = w_op_reduce_bwd,
    [HCGA_OP_CE_LS_FWD] = w_op_ce_ls_fwd,
    [HCGA_OP_CE_LS_BWD] = w_op_ce_ls_bwd,
    [HCGA_OP_PIXEL_CE_FWD] = w_op_pixel_ce_fwd,
    [HCGA_OP_PIXEL_CE_BWD] = w_op_pixel_ce_bwd,
    [HCGA_OP_TRIPLET_FWD] = w_op_triplet_fwd,
    [HCGA_OP_TRIPLET_BWD] = w_op_triplet_bwd,
    [HCGA_OP_SHIFT_L1_FWD] = w_op_shift_l1_fwd,
    [HCGA_OP_SHIFT_L1_BWD] = w_op_shift_l1_bwd,
    [HCGA_OP_ADAM_STEP] = w_op_adam_step,
    [HCGA_OP_SGD_STEP] = w_op_sgd_step,
};
