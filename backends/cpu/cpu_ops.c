/*
 * cpu_ops.c - every op of hcga_plugin.h for the CPU backend: the op table,
 * and for each op the code that unpacks a checked call and runs the f32 /
 * f64 instantiation of cpu_kernels.h.
 *
 * Mixed precision (ABI 1.1): CAST converts with the exact conversions of
 * plugins/hcga_half.h; the bf16 / f16 forms of the convolutions and GEMM are
 * the header's definition executed literally: every half input is widened
 * (exactly) to an f32 copy in a workspace, the f32 implementation of the
 * same op runs on those copies into f32 workspace outputs, and each output
 * element is rounded once to the half dtype (nearest even).
 *
 * The argument rules (slots, dtypes, shapes, parameters, buffer bounds,
 * aliasing) are not here: cpu_dispatch() runs the shared contract checker
 * (backends/common/hcga_contract.c) before any implementation, so an
 * implementation sees only well-formed calls.  What stays here is what only
 * this backend can check: label and pair-index values (they are read from
 * memory) and the limits of its own implementation (32-bit BLAS dimensions,
 * the N x N triplet distance matrix).
 *
 * Every failure returns HCGA_ERR_INVALID (or NOMEM, or UNSUPPORTED for a
 * limit of this implementation such as the triplet distance matrix) with a
 * one-line message "<op>: <problem>" in last_error().
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "hcga_contract.h"
#include "hcga_half.h"

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
/* A refusal by this backend (not by the checker): "<op>: <problem>". */
#define BAD(...) return cpu_fail(be, HCGA_ERR_INVALID, __VA_ARGS__)
#define OPNAME hcga_op_name(ck->op)

/* Every implementation: called by cpu_dispatch() after the checker accepted
 * the call; ck holds the dtype and the derived dims. */
#define CPU_IMPL(id_)                                                                              \
    static hcga_status op_##id_(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)

/* An optional slot: NULL when absent or beyond num_in / num_out. */
static const hcga_tensor *opt_in(const hcga_op_args *a, int slot)
{
    return slot < a->num_in ? a->in[slot] : NULL;
}
static const hcga_tensor *opt_out(const hcga_op_args *a, int slot)
{
    return slot < a->num_out ? a->out[slot] : NULL;
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

/* The im2col / GEMM path passes dims to BLAS as int. */
static hcga_status conv_limits(hcga_backend *be, const hcga_checked *ck)
{
    const hcga_conv_dims *d = &ck->conv;
    if (d->P > INT_MAX / 2 || d->Q > INT_MAX / 2)
        BAD("%s: output size %lldx%lld is too large", OPNAME, (long long)d->P, (long long)d->Q);
    if (d->C * d->R * d->S > INT_MAX / 2 || d->P * d->Q > INT_MAX / 2 || d->K > INT_MAX / 2)
        BAD("%s: the problem is too large for 32-bit BLAS dimensions", OPNAME);
    return HCGA_OK;
}

CPU_IMPL(CONV2D_FWD)
{
    const hcga_tensor *x = a->in[HCGA_CONV_X], *w = a->in[HCGA_CONV_W], *y = a->out[0];
    const hcga_tensor *b = opt_in(a, HCGA_CONV_BIAS);
    TRY(conv_limits(be, ck));
    return DISPATCH(ck->dtype, conv_fwd, be, &ck->conv, cpu_ptr(x), cpu_ptr(w),
                    b ? cpu_ptr(b) : NULL, cpu_ptr(y));
}

CPU_IMPL(CONV2D_BWD_DATA)
{
    const hcga_tensor *dy = a->in[0], *w = a->in[1], *dx = a->out[0];
    TRY(conv_limits(be, ck));
    return DISPATCH(ck->dtype, conv_bwd_data, be, &ck->conv, cpu_ptr(dy), cpu_ptr(w), cpu_ptr(dx));
}

CPU_IMPL(CONV2D_BWD_FILTER)
{
    const hcga_tensor *x = a->in[0], *dy = a->in[1], *dw = a->out[0], *db = opt_out(a, 1);
    TRY(conv_limits(be, ck));
    return DISPATCH(ck->dtype, conv_bwd_filter, be, &ck->conv, cpu_ptr(x), cpu_ptr(dy),
                    cpu_ptr(dw), db ? cpu_ptr(db) : NULL);
}

static hcga_status binary_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int mul);

/* CONV2D_BN_INFER (ABI 1.3, optional): the ops of its definition in turn,
 * the batch norm, the residual's ADD and the ReLU in place on y, with the
 * same kernels as CONV2D_FWD, BN_FWD_INFER, ADD and RELU_FWD, so fused and
 * separate calls give the same bits on this backend (the frontend's fusion
 * changes no result here; it saves the intermediate tensors). */
CPU_IMPL(CONV2D_BN_INFER)
{
    const hcga_tensor *x = a->in[HCGA_CBN_X], *w = a->in[HCGA_CBN_W], *y = a->out[0];
    const hcga_tensor *b = opt_in(a, HCGA_CBN_BIAS);
    const hcga_conv_dims *d = &ck->conv;
    TRY(conv_limits(be, ck));
    TRY(DISPATCH(ck->dtype, conv_fwd, be, d, cpu_ptr(x), cpu_ptr(w), b ? cpu_ptr(b) : NULL, cpu_ptr(y)));
    bn_ctx c = {.x = cpu_ptr(y), .gamma = cpu_ptr(a->in[HCGA_CBN_GAMMA]),
                .beta = cpu_ptr(a->in[HCGA_CBN_BETA]), .rm = cpu_ptr(a->in[HCGA_CBN_RMEAN]),
                .rv = cpu_ptr(a->in[HCGA_CBN_RVAR]), .y = cpu_ptr(y), .N = d->N, .C = d->K,
                .HW = d->P * d->Q, .eps = a->p.conv_bn.eps};
    DISPATCH(ck->dtype, bn, be, BN_K_INFER, &c);
    const hcga_tensor *res = opt_in(a, HCGA_CBN_RES);
    if (res) { /* y = y + residual: the ADD op's kernel, in place */
        hcga_op_args add = {.op = HCGA_OP_ADD, .num_in = 2, .num_out = 1, .in = {y, res}, .out = {y}};
        add.p.scalar.a = add.p.scalar.b = 1.0;
        TRY(binary_op(be, &add, ck, 0));
    }
    if (a->p.conv_bn.relu)
        DISPATCH(ck->dtype, ew, be, EW_RELU_F, cpu_ptr(y), NULL, cpu_ptr(y), hcga_tensor_numel(y), 0.0);
    return HCGA_OK;
}

/* ======================================================================= */
/* Batch normalisation                                                     */
/* ======================================================================= */

CPU_IMPL(BN_FWD_TRAIN)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BN_X]), .gamma = cpu_ptr(a->in[HCGA_BN_GAMMA]),
                .beta = cpu_ptr(a->in[HCGA_BN_BETA]), .y = cpu_ptr(a->out[HCGA_BN_Y]),
                .save_mean = cpu_ptr(a->out[HCGA_BN_SAVE_MEAN]),
                .save_invstd = cpu_ptr(a->out[HCGA_BN_SAVE_INVSTD]),
                .out_rm = cpu_ptr(a->out[HCGA_BN_RMEAN]), .out_rv = cpu_ptr(a->out[HCGA_BN_RVAR]),
                .N = ck->bn_N, .C = ck->bn_C, .HW = ck->bn_HW, .eps = a->p.bn.eps,
                .momentum = a->p.bn.momentum};
    DISPATCH(ck->dtype, bn, be, BN_K_TRAIN, &c);
    return HCGA_OK;
}

CPU_IMPL(BN_FWD_INFER)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BN_X]), .gamma = cpu_ptr(a->in[HCGA_BN_GAMMA]),
                .beta = cpu_ptr(a->in[HCGA_BN_BETA]), .rm = cpu_ptr(a->in[HCGA_BN_RMEAN_IN]),
                .rv = cpu_ptr(a->in[HCGA_BN_RVAR_IN]), .y = cpu_ptr(a->out[0]), .N = ck->bn_N,
                .C = ck->bn_C, .HW = ck->bn_HW, .eps = a->p.bn.eps};
    DISPATCH(ck->dtype, bn, be, BN_K_INFER, &c);
    return HCGA_OK;
}

CPU_IMPL(BN_BWD)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BNB_X]), .dy = cpu_ptr(a->in[HCGA_BNB_DY]),
                .gamma = cpu_ptr(a->in[HCGA_BNB_GAMMA]), .mean = cpu_ptr(a->in[HCGA_BNB_MEAN]),
                .invstd = cpu_ptr(a->in[HCGA_BNB_INVSTD]), .dx = cpu_ptr(a->out[HCGA_BNB_DX]),
                .dgamma = cpu_ptr(a->out[HCGA_BNB_DGAMMA]),
                .dbeta = cpu_ptr(a->out[HCGA_BNB_DBETA]), .N = ck->bn_N, .C = ck->bn_C,
                .HW = ck->bn_HW};
    DISPATCH(ck->dtype, bn, be, BN_K_BWD, &c);
    return HCGA_OK;
}

CPU_IMPL(BN_STATS)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BN_X]), .sum = cpu_ptr(a->out[HCGA_BNS_SUM]),
                .sumsq = cpu_ptr(a->out[HCGA_BNS_SUMSQ]), .N = ck->bn_N, .C = ck->bn_C,
                .HW = ck->bn_HW};
    DISPATCH(ck->dtype, bn, be, BN_K_STATS, &c);
    return HCGA_OK;
}

CPU_IMPL(BN_FWD_FROM_STATS)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BN_X]), .gamma = cpu_ptr(a->in[HCGA_BN_GAMMA]),
                .beta = cpu_ptr(a->in[HCGA_BN_BETA]), .sum = cpu_ptr(a->in[HCGA_BNF_SUM]),
                .sumsq = cpu_ptr(a->in[HCGA_BNF_SUMSQ]), .y = cpu_ptr(a->out[HCGA_BN_Y]),
                .save_mean = cpu_ptr(a->out[HCGA_BN_SAVE_MEAN]),
                .save_invstd = cpu_ptr(a->out[HCGA_BN_SAVE_INVSTD]),
                .out_rm = cpu_ptr(a->out[HCGA_BN_RMEAN]), .out_rv = cpu_ptr(a->out[HCGA_BN_RVAR]),
                .count = a->p.bn.count, .N = ck->bn_N, .C = ck->bn_C, .HW = ck->bn_HW,
                .eps = a->p.bn.eps, .momentum = a->p.bn.momentum};
    DISPATCH(ck->dtype, bn, be, BN_K_FWD_STATS, &c);
    return HCGA_OK;
}

CPU_IMPL(BN_BWD_FROM_STATS)
{
    bn_ctx c = {.x = cpu_ptr(a->in[HCGA_BNB_X]), .dy = cpu_ptr(a->in[HCGA_BNB_DY]),
                .gamma = cpu_ptr(a->in[HCGA_BNB_GAMMA]), .mean = cpu_ptr(a->in[HCGA_BNB_MEAN]),
                .invstd = cpu_ptr(a->in[HCGA_BNB_INVSTD]),
                .sum_dy = cpu_ptr(a->in[HCGA_BNB_SUM_DY]),
                .sum_dy_xhat = cpu_ptr(a->in[HCGA_BNB_SUM_DY_XHAT]),
                .dx = cpu_ptr(a->out[HCGA_BNB_DX]), .count = a->p.bn.count, .N = ck->bn_N,
                .C = ck->bn_C, .HW = ck->bn_HW};
    DISPATCH(ck->dtype, bn, be, BN_K_BWD_STATS, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Elementwise                                                             */
/* ======================================================================= */

/* One input (in[0]) or two (in[0], in[1]) of y's shape. */
static hcga_status ew_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int kind,
                         double s)
{
    const hcga_tensor *x0 = a->in[0], *x1 = a->num_in > 1 ? a->in[1] : NULL;
    DISPATCH(ck->dtype, ew, be, kind, cpu_ptr(x0), x1 ? cpu_ptr(x1) : NULL, cpu_ptr(a->out[0]),
             hcga_tensor_numel(x0), s);
    return HCGA_OK;
}

CPU_IMPL(RELU_FWD) { return ew_op(be, a, ck, EW_RELU_F, 0); }
CPU_IMPL(RELU_BWD) { return ew_op(be, a, ck, EW_RELU_B, 0); }
CPU_IMPL(SIGMOID_FWD) { return ew_op(be, a, ck, EW_SIG_F, 0); }
CPU_IMPL(SIGMOID_BWD) { return ew_op(be, a, ck, EW_SIG_B, 0); }
CPU_IMPL(THRESH_FWD) { return ew_op(be, a, ck, EW_THR_F, a->p.scalar.a); }
CPU_IMPL(THRESH_BWD) { return ew_op(be, a, ck, EW_THR_B, a->p.scalar.a); }

static hcga_status binary_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                             int mul)
{
    const hcga_tensor *ta = a->in[0], *tb = a->in[1], *y = a->out[0];
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
    DISPATCH(ck->dtype, binary, be, &c);
    return HCGA_OK;
}

CPU_IMPL(ADD) { return binary_op(be, a, ck, 0); }
CPU_IMPL(MUL) { return binary_op(be, a, ck, 1); }

CPU_IMPL(SUM_TO)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    if (hcga_tensor_numel(x) == 0) {
        DISPATCH(ck->dtype, ew, be, EW_FILL, NULL, NULL, cpu_ptr(y), hcga_tensor_numel(y), 0.0);
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
    DISPATCH(ck->dtype, sum_to, be, &c);
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

CPU_IMPL(COPY)
{
    (void)ck;
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    if (hcga_tensor_numel(x) == 0 || hcga_contract_same_view(x, y)) return HCGA_OK;
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

/* The checker made sure the value fits y's dtype. */
CPU_IMPL(FILL)
{
    (void)ck;
    const hcga_tensor *y = a->out[0];
    const double s = a->p.scalar.a;
    const int64_t n = hcga_tensor_numel(y);
    switch (y->dtype) {
    case HCGA_F32:
    case HCGA_F64: DISPATCH(y->dtype, ew, be, EW_FILL, NULL, NULL, cpu_ptr(y), n, s); break;
    case HCGA_I32: {
        int32_t *p = cpu_ptr(y), iv = (int32_t)s;
        for (int64_t i = 0; i < n; i++) p[i] = iv;
        break;
    }
    case HCGA_I64: {
        int64_t *p = cpu_ptr(y), iv = (int64_t)s;
        for (int64_t i = 0; i < n; i++) p[i] = iv;
        break;
    }
    default: /* HCGA_U8 */ memset(cpu_ptr(y), (int)(uint8_t)s, (size_t)n); break;
    }
    return HCGA_OK;
}

/* ======================================================================= */
/* Channel ops                                                             */
/* ======================================================================= */

/* x[N,C,...]: N, C and the product S of the remaining dims. */
static chan_ctx nc_dims(const hcga_tensor *x)
{
    chan_ctx c = {.N = x->shape[0], .C = x->shape[1], .S = 1};
    for (int i = 2; i < x->ndim; i++) c.S *= x->shape[i];
    return c;
}

CPU_IMPL(SOFTMAX_FWD)
{
    const hcga_tensor *x = a->in[0];
    if (hcga_tensor_numel(x) == 0) return HCGA_OK;
    chan_ctx c = nc_dims(x);
    c.x = cpu_ptr(x);
    c.y = cpu_ptr(a->out[0]);
    DISPATCH(ck->dtype, chan, be, 0, &c);
    return HCGA_OK;
}

CPU_IMPL(SOFTMAX_BWD)
{
    const hcga_tensor *y = a->in[0];
    if (hcga_tensor_numel(y) == 0) return HCGA_OK;
    chan_ctx c = nc_dims(y);
    c.x = cpu_ptr(y);
    c.dy = cpu_ptr(a->in[1]);
    c.y = cpu_ptr(a->out[0]);
    DISPATCH(ck->dtype, chan, be, 0, &c);
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

/* CONCAT (parts in[], whole out[0]) and SPLIT (whole in[0], parts out[]). */
static hcga_status cat_op(hcga_backend *be, const hcga_op_args *a, int split)
{
    const hcga_tensor *whole = split ? a->in[0] : a->out[0];
    const hcga_tensor *const *parts = split ? a->out : a->in;
    const int n = split ? a->num_out : a->num_in;
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

CPU_IMPL(CONCAT)
{
    (void)ck;
    return cat_op(be, a, 0);
}
CPU_IMPL(SPLIT)
{
    (void)ck;
    return cat_op(be, a, 1);
}

CPU_IMPL(ARGMAX)
{
    const hcga_tensor *x = a->in[0];
    chan_ctx c = nc_dims(x);
    if (c.N * c.S == 0) return HCGA_OK;
    c.x = cpu_ptr(x);
    c.y = cpu_ptr(a->out[0]);
    DISPATCH(ck->dtype, chan, be, 1, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Spatial                                                                 */
/* ======================================================================= */

CPU_IMPL(UPSAMPLE_NEAREST_FWD)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    plane_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(y), .H = x->shape[2], .W = x->shape[3],
                   .factor = a->p.resize.factor};
    DISPATCH(ck->dtype, plane, be, PL_UPS, x->shape[0] * x->shape[1], y->shape[2] * y->shape[3],
             &c);
    return HCGA_OK;
}

CPU_IMPL(UPSAMPLE_NEAREST_BWD)
{
    const hcga_tensor *dy = a->in[0], *dx = a->out[0];
    const int f = a->p.resize.factor;
    plane_ctx c = {.x = cpu_ptr(dy), .y = cpu_ptr(dx), .H = dx->shape[2], .W = dx->shape[3],
                   .factor = f};
    DISPATCH(ck->dtype, plane, be, PL_UPS_BWD, dx->shape[0] * dx->shape[1],
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

/* RESIZE_BILINEAR_FWD (x -> y) and _BWD (dy -> dx). */
static hcga_status resize_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                             int bwd)
{
    const hcga_tensor *tin = a->in[0], *tout = a->out[0];
    const hcga_tensor *small = bwd ? tout : tin, *big = bwd ? tin : tout;
    const int align = a->p.resize.align_corners;
    int64_t H = small->shape[2], W = small->shape[3], OH = big->shape[2], OW = big->shape[3];
    int64_t planes = small->shape[0] * small->shape[1];
    if (planes == 0) return HCGA_OK;
    if (OH * OW == 0) { /* nothing flows: dx = 0 or y empty */
        if (bwd)
            DISPATCH(ck->dtype, ew, be, EW_FILL, NULL, NULL, cpu_ptr(tout),
                     hcga_tensor_numel(tout), 0.0);
        return HCGA_OK;
    }
    size_t bytes = (size_t)(2 * (OH + OW)) * (sizeof(int64_t) + sizeof(double));
    char *w = cpu_ws(be, 2, bytes);
    if (!w) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
    int64_t *hi = (int64_t *)w, *wi = hi + 2 * OH;
    double *hl = (double *)(wi + 2 * OW), *wl = hl + 2 * OH;
    resize_coords(H, OH, align, hi, hl);
    resize_coords(W, OW, align, wi, wl);
    /* scratch: H x OW horizontally resized rows (+ H x W accumulators) */
    if (cpu_scratch_reserve(be, (size_t)(H * OW + (bwd ? H * W : 0)) * sizeof(double)))
        return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for scratch", OPNAME);
    plane_ctx c = {.x = cpu_ptr(tin), .y = cpu_ptr(tout), .H = H, .W = W, .OH = OH, .OW = OW,
                   .hi = hi, .hl = hl, .wi = wi, .wl = wl, .be = be};
    DISPATCH(ck->dtype, plane, be, bwd ? PL_RESIZE_BWD : PL_RESIZE, planes, OH * OW, &c);
    return HCGA_OK;
}

CPU_IMPL(RESIZE_BILINEAR_FWD) { return resize_op(be, a, ck, 0); }
CPU_IMPL(RESIZE_BILINEAR_BWD) { return resize_op(be, a, ck, 1); }

CPU_IMPL(GAP_FWD)
{
    const hcga_tensor *x = a->in[0];
    plane_ctx c = {.x = cpu_ptr(x), .y = cpu_ptr(a->out[0]), .H = x->shape[2], .W = x->shape[3]};
    DISPATCH(ck->dtype, plane, be, PL_GAP, x->shape[0] * x->shape[1], x->shape[2] * x->shape[3],
             &c);
    return HCGA_OK;
}

CPU_IMPL(GAP_BWD)
{
    const hcga_tensor *dx = a->out[0];
    const int64_t HW = dx->shape[2] * dx->shape[3];
    if (HW == 0) return HCGA_OK;
    plane_ctx c = {.x = cpu_ptr(a->in[0]), .y = cpu_ptr(dx), .H = dx->shape[2], .W = dx->shape[3]};
    DISPATCH(ck->dtype, plane, be, PL_GAP_BWD, dx->shape[0] * dx->shape[1], HW, &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* GEMM                                                                    */
/* ======================================================================= */

CPU_IMPL(GEMM)
{
    const hcga_tensor *ta = a->in[0], *tb = a->in[1], *tc = opt_in(a, 2), *y = a->out[0];
    const hcga_gemm_params *p = &a->p.gemm;
    const int64_t M = ck->gemm_M, N = ck->gemm_N, K = ck->gemm_K;
    if (M > INT_MAX / 2 || N > INT_MAX / 2 || K > INT_MAX / 2)
        BAD("%s: dimensions exceed 32-bit BLAS limits", OPNAME);
    if (M == 0 || N == 0) return HCGA_OK;
    const size_t es = hcga_dtype_size(ck->dtype);
    double beta = tc ? p->beta : 0.0;
    if (beta == 0.0)
        memset(cpu_ptr(y), 0, (size_t)(M * N) * es);
    else if (!hcga_contract_same_view(tc, y))
        memcpy(cpu_ptr(y), cpu_ptr(tc), (size_t)(M * N) * es);
    if (K == 0) { /* y = beta * c */
        if (beta != 0.0 && beta != 1.0)
            DISPATCH(ck->dtype, ew, be, EW_SCALE, cpu_ptr(y), NULL, cpu_ptr(y), M * N, beta);
        return HCGA_OK;
    }
    DISPATCH(ck->dtype, gemm, be, p->trans_a, p->trans_b, M, N, K, p->alpha, cpu_ptr(ta),
             cpu_ptr(tb), beta, cpu_ptr(y));
    return HCGA_OK;
}

/* ======================================================================= */
/* Reductions                                                              */
/* ======================================================================= */

CPU_IMPL(REDUCE)
{
    const hcga_tensor *x = a->in[0];
    const int kind = a->p.reduce.kind;
    const int64_t n = hcga_tensor_numel(x);
    double s = 0;
    TRY(DISPATCH(ck->dtype, reduce, be, cpu_ptr(x), n, kind == HCGA_REDUCE_ABS_MEAN, &s));
    write_scalar(a->out[0], kind == HCGA_REDUCE_SUM ? s : s / (double)n);
    return HCGA_OK;
}

CPU_IMPL(REDUCE_BWD)
{
    const hcga_tensor *x = a->in[0];
    const int kind = a->p.reduce.kind;
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    double g = scalar_val(a->in[1]);
    if (kind != HCGA_REDUCE_SUM) g /= (double)n;
    DISPATCH(ck->dtype, ew, be, kind == HCGA_REDUCE_ABS_MEAN ? EW_SIGN_MUL : EW_FILL, cpu_ptr(x),
             NULL, cpu_ptr(a->out[0]), n, g);
    return HCGA_OK;
}

/* ======================================================================= */
/* Losses                                                                  */
/* ======================================================================= */

/* Label values in [0, C) (or == ignore when has_ignore): a rule on data, so
 * the checker leaves it to the backend. */
static hcga_status check_labels(hcga_backend *be, const hcga_checked *ck, const hcga_tensor *lab,
                                int64_t C, int has_ignore, int64_t ignore)
{
    const int64_t *l = cpu_ptr(lab);
    int64_t n = hcga_tensor_numel(lab);
    for (int64_t i = 0; i < n; i++) {
        if (has_ignore && l[i] == ignore) continue;
        if (l[i] < 0 || l[i] >= C)
            BAD("%s: labels[%lld] = %lld is outside [0, %lld)", OPNAME, (long long)i,
                (long long)l[i], (long long)C);
    }
    return HCGA_OK;
}

/* CE_LS_FWD (logits, labels -> loss) / _BWD (+ dloss -> dlogits). */
static hcga_status ce_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *out = a->out[0];
    const int64_t N = x->shape[0], C = x->shape[1];
    TRY(check_labels(be, ck, lab, C, 0, 0));
    loss_ctx c = {.x = cpu_ptr(x), .labels = cpu_ptr(lab), .N = N, .C = C, .eps = a->p.loss.eps};
    int64_t grain = C >= 4096 ? 1 : 4096 / C;
    if (!bwd) {
        double *part = cpu_ws(be, 3, (size_t)N * sizeof(double));
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
        c.part = part;
        cpu_parallel(be, N, grain, PICK(ck->dtype, ce_task), &c);
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += part[n];
        write_scalar(out, s / (double)N);
    } else {
        c.y = cpu_ptr(out);
        c.g = scalar_val(a->in[2]) / (double)N;
        cpu_parallel(be, N, grain, PICK(ck->dtype, ce_task), &c);
    }
    return HCGA_OK;
}

CPU_IMPL(CE_LS_FWD) { return ce_op(be, a, ck, 0); }
CPU_IMPL(CE_LS_BWD) { return ce_op(be, a, ck, 1); }

/* PIXEL_CE_FWD (logits, labels -> loss) / _BWD (+ dloss -> dlogits). */
static hcga_status pixce_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                            int bwd)
{
    const hcga_tensor *x = a->in[0], *lab = a->in[1], *out = a->out[0];
    const int64_t N = x->shape[0], K = x->shape[1], S = x->shape[2] * x->shape[3];
    const int64_t ign = a->p.loss.ignore_label;
    TRY(check_labels(be, ck, lab, K, 1, ign));
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
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
        c.part = part;
        cpu_parallel(be, tasks, grain, PICK(ck->dtype, pixce_task), &c);
        double s = 0;
        for (int64_t t = 0; t < tasks; t++) s += part[2 * t];
        write_scalar(out, count > 0 ? s / (double)count : 0.0);
    } else {
        c.y = cpu_ptr(out);
        c.g = count > 0 ? scalar_val(a->in[2]) / (double)count : 0.0;
        cpu_parallel(be, tasks, grain, PICK(ck->dtype, pixce_task), &c);
    }
    return HCGA_OK;
}

CPU_IMPL(PIXEL_CE_FWD) { return pixce_op(be, a, ck, 0); }
CPU_IMPL(PIXEL_CE_BWD) { return pixce_op(be, a, ck, 1); }

/* d = sqrt(max(sq, 1e-12)), NaN kept. */
static double tri_d(double sq)
{
    if (sq != sq) return sq;
    return sqrt(sq > 1e-12 ? sq : 1e-12);
}

/* This backend keeps the N x N distance matrix in memory: a limit of this
 * implementation, not of the contract, so UNSUPPORTED. */
static hcga_status triplet_limit(hcga_backend *be, const hcga_checked *ck, int64_t N)
{
    if (N > 65536)
        return cpu_fail(be, HCGA_ERR_UNSUPPORTED,
                        "%s: N = %lld is too large for the N x N distance matrix", OPNAME,
                        (long long)N);
    return HCGA_OK;
}

CPU_IMPL(TRIPLET_FWD)
{
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    TRY(triplet_limit(be, ck, N));
    double *dist = cpu_ws(be, 3, (size_t)(N * N + N) * sizeof(double));
    if (!dist) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
    DISPATCH(ck->dtype, tri_dists, be, cpu_ptr(x), N, D, dist);
    const int64_t *l = cpu_ptr(a->in[1]);
    int64_t *h = cpu_ptr(a->out[1]);
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
    write_scalar(a->out[0], num > 0 ? sum / (double)num : 0.0);
    return HCGA_OK;
}

CPU_IMPL(TRIPLET_BWD)
{
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    TRY(triplet_limit(be, ck, N));
    /* the pair indices are data: checked here, not by the contract checker */
    const int64_t *h = cpu_ptr(a->in[1]);
    int64_t num = 0;
    for (int64_t i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++)
            if (h[2 * i + k] < -1 || h[2 * i + k] >= N)
                BAD("%s: hard[%lld,%d] = %lld is outside [-1, %lld)", OPNAME, (long long)i, k,
                    (long long)h[2 * i + k], (long long)N);
        if (h[2 * i] >= 0 && h[2 * i + 1] >= 0) num++;
    }
    double *dist = cpu_ws(be, 3, (size_t)(N * N + N) * sizeof(double));
    double *acc = cpu_ws(be, 2, (size_t)(N * D) * sizeof(double));
    if (!dist || !acc) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
    DISPATCH(ck->dtype, tri_dists, be, cpu_ptr(x), N, D, dist);
    double g = num > 0 ? scalar_val(a->in[2]) / (double)num : 0.0;
    DISPATCH(ck->dtype, tri_bwd, cpu_ptr(x), h, N, D, dist, g, a->p.loss.margin, acc,
             cpu_ptr(a->out[0]));
    return HCGA_OK;
}

/* SHIFT_L1_FWD (x -> loss) / _BWD (x, dloss -> dx). */
static hcga_status shift_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                            int bwd)
{
    const hcga_tensor *x = a->in[0], *out = a->out[0];
    const hcga_shift_params *p = &a->p.shift;
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
        if (!part) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory", OPNAME);
        c.part = part;
        cpu_parallel(be, planes, grain, PICK(ck->dtype, shift_task), &c);
        double s = 0;
        for (int64_t t = 0; t < planes; t++) s += part[t];
        write_scalar(out, s / (double)count);
    } else {
        c.y = cpu_ptr(out);
        c.g = count > 0 ? scalar_val(a->in[1]) / (double)count : 0.0;
        cpu_parallel(be, N * C, grain, PICK(ck->dtype, shift_task), &c);
    }
    return HCGA_OK;
}

CPU_IMPL(SHIFT_L1_FWD) { return shift_op(be, a, ck, 0); }
CPU_IMPL(SHIFT_L1_BWD) { return shift_op(be, a, ck, 1); }

/* ======================================================================= */
/* Optimizers                                                              */
/* ======================================================================= */

CPU_IMPL(ADAM_STEP)
{
    const hcga_tensor *g = a->in[0];
    const hcga_optim_params *o = &a->p.optim;
    opt_ctx c = {.grad = cpu_ptr(g), .param = cpu_ptr(a->out[HCGA_ADAM_PARAM]),
                 .m = cpu_ptr(a->out[HCGA_ADAM_M]), .v = cpu_ptr(a->out[HCGA_ADAM_V]),
                 .lr = o->lr, .b1 = o->beta1, .b2 = o->beta2, .eps = o->eps,
                 .wd = o->weight_decay, .step = o->step};
    /* positive: the checker refuses vanishing bias corrections */
    c.bc1 = 1.0 - pow(o->beta1, (double)o->step);
    c.bc2s = sqrt(1.0 - pow(o->beta2, (double)o->step));
    cpu_parallel(be, hcga_tensor_numel(g), 4096, PICK(ck->dtype, adam_task), &c);
    return HCGA_OK;
}

CPU_IMPL(SGD_STEP)
{
    const hcga_tensor *g = a->in[0];
    const hcga_optim_params *o = &a->p.optim;
    opt_ctx c = {.grad = cpu_ptr(g), .param = cpu_ptr(a->out[HCGA_SGD_PARAM]),
                 .m = cpu_ptr(a->out[HCGA_SGD_BUF]), .lr = o->lr, .wd = o->weight_decay,
                 .mom = o->momentum, .step = o->step};
    cpu_parallel(be, hcga_tensor_numel(g), 4096, PICK(ck->dtype, sgd_task), &c);
    return HCGA_OK;
}

/* ======================================================================= */
/* Mixed precision: CAST and the half forms of the convolutions and GEMM    */
/* ======================================================================= */

/* n dense elements of dtype xdt at x converted to ydt at y (floating dtypes;
 * xdt != ydt, or x and y do not overlap). */
typedef struct conv_dt_ctx {
    const void *x;
    void *y;
    int xdt, ydt;
} conv_dt_ctx;

static void convert_task(void *vc, int64_t b, int64_t e, int tid)
{
    (void)tid;
    const conv_dt_ctx *c = vc;
    const int xdt = c->xdt, ydt = c->ydt;
    if (xdt == ydt) {
        const size_t es = hcga_dtype_size(xdt);
        memmove((char *)c->y + (size_t)b * es, (const char *)c->x + (size_t)b * es,
                (size_t)(e - b) * es);
        return;
    }
    if (hcga_dtype_is_half(xdt)) {
        const uint16_t *x = c->x;
        if (ydt == HCGA_F32) {
            float *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_half_to_f32(xdt, x[i]);
        } else if (ydt == HCGA_F64) {
            double *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = (double)hcga_half_to_f32(xdt, x[i]);
        } else { /* bf16 <-> f16: widening to f32 is exact, so one rounding */
            uint16_t *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_half_from_f32(ydt, hcga_half_to_f32(xdt, x[i]));
        }
    } else if (xdt == HCGA_F32) {
        const float *x = c->x;
        if (ydt == HCGA_F64) {
            double *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = (double)x[i];
        } else if (ydt == HCGA_BF16) {
            uint16_t *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_f32_to_bf16(x[i]);
        } else {
            uint16_t *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_f32_to_f16(x[i]);
        }
    } else { /* f64: to half directly (correctly rounded), never via a rounded f32 */
        const double *x = c->x;
        if (ydt == HCGA_F32) {
            float *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = (float)x[i];
        } else if (ydt == HCGA_BF16) {
            uint16_t *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_f64_to_bf16(x[i]);
        } else {
            uint16_t *y = c->y;
            for (int64_t i = b; i < e; i++) y[i] = hcga_f64_to_f16(x[i]);
        }
    }
}

/* Converts n elements in parallel (ranges depend only on n and the thread
 * count; every element is converted alone, so the result does not). */
static void convert(hcga_backend *be, const void *x, int xdt, void *y, int ydt, int64_t n)
{
    conv_dt_ctx c = {.x = x, .y = y, .xdt = xdt, .ydt = ydt};
    cpu_parallel(be, n, 16384, convert_task, &c);
}

CPU_IMPL(CAST)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    const int64_t n = hcga_tensor_numel(x);
    /* the checker allows x and y to overlap only as the same view (same dtype) */
    if (n == 0 || hcga_contract_same_view(x, y)) return HCGA_OK;
    convert(be, cpu_ptr(x), ck->in_dtype, cpu_ptr(y), ck->out_dtype, n);
    return HCGA_OK;
}

typedef hcga_status (*cpu_impl_fn)(hcga_backend *be, const hcga_op_args *a,
                                   const hcga_checked *ck);

/* A half call (CONV2D_*, GEMM at bf16 / f16) run as the f32 op: each half
 * input widened into an f32 workspace copy, f32_impl writing f32 workspace
 * outputs, each output rounded once into the caller's half tensor.  GEMM's
 * c == y case needs nothing special: c is widened before y is written. */
static hcga_status half_via_f32(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                                cpu_impl_fn f32_impl)
{
    const int hdt = ck->dtype;
    hcga_op_args a32 = *a;
    hcga_tensor tin[HCGA_MAX_OP_IN], tout[HCGA_MAX_OP_OUT];
    struct hcga_buffer bin[HCGA_MAX_OP_IN], bout[HCGA_MAX_OP_OUT];
    for (int io = 0; io < 2; io++) {
        const int count = io ? a->num_out : a->num_in;
        for (int i = 0; i < count; i++) {
            const hcga_tensor *t = io ? a->out[i] : a->in[i];
            if (!t) continue;
            /* dense (checked): the f32 copy keeps the strides, at offset 0 */
            const int64_t n = hcga_tensor_numel(t);
            const size_t bytes = (size_t)n * sizeof(float);
            void *p = cpu_ws(be, CPU_WS_HALF + (io ? HCGA_MAX_OP_IN : 0) + i, bytes);
            if (!p)
                return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for the f32 copy of %s[%d]",
                                OPNAME, io ? "out" : "in", i);
            struct hcga_buffer *b = io ? &bout[i] : &bin[i];
            hcga_tensor *c = io ? &tout[i] : &tin[i];
            b->data = p;
            b->size = bytes;
            *c = *t;
            c->buf = b;
            c->offset = 0;
            c->dtype = HCGA_F32;
            if (io)
                a32.out[i] = c;
            else {
                a32.in[i] = c;
                convert(be, cpu_ptr(t), hdt, p, HCGA_F32, n);
            }
        }
    }
    hcga_checked ck32 = *ck;
    ck32.dtype = ck32.in_dtype = ck32.out_dtype = HCGA_F32;
    TRY(f32_impl(be, &a32, &ck32));
    for (int i = 0; i < a->num_out; i++)
        if (a->out[i])
            convert(be, bout[i].data, HCGA_F32, cpu_ptr(a->out[i]), hdt,
                    hcga_tensor_numel(a->out[i]));
    return HCGA_OK;
}

/* ======================================================================= */
/* Dispatch and table                                                      */
/* ======================================================================= */

static uint64_t cpu_buffer_size(const hcga_buffer *buf)
{
    return buf->size;
}

/* Every op entry: the contract checker, then the implementation. */
static hcga_status cpu_dispatch(hcga_backend *be, const hcga_op_args *a, int op, cpu_impl_fn impl)
{
    if (!be) return HCGA_ERR_INVALID;
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, cpu_buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) return cpu_fail(be, st, "%s", msg);
    /* half dtypes reach only ops with half = 1 (the checker refuses them
     * elsewhere); CAST converts itself, the others run as the f32 op */
    if (op != HCGA_OP_CAST && hcga_dtype_is_half(ck.dtype)) return half_via_f32(be, a, &ck, impl);
    return impl(be, a, &ck);
}

/* One entry per catalogue row; a row without an op_<ID> does not compile. */
#define HCGA_OP(id_, ...)                                                                          \
    static hcga_status entry_##id_(hcga_backend *be, const hcga_op_args *a)                        \
    {                                                                                              \
        return cpu_dispatch(be, a, HCGA_OP_##id_, op_##id_);                                       \
    }
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP

const hcga_op_fn cpu_op_table[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = entry_##id_,
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
};

int cpu_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    if (op < 0 || op >= HCGA_OP_COUNT || !cpu_op_table[op]) return 0;
    if (dtype == HCGA_F32 || dtype == HCGA_F64) return 1;
    /* bf16 / f16: exactly the ops of the catalogue's half column (CAST,
     * the convolutions, GEMM), as the checker enforces */
    if (hcga_dtype_is_half(dtype)) return hcga_op_get_info(op)->half;
    switch (op) {
    case HCGA_OP_FILL: return dtype == HCGA_I32 || dtype == HCGA_I64 || dtype == HCGA_U8;
    case HCGA_OP_COPY:
    case HCGA_OP_CONCAT:
    case HCGA_OP_SPLIT: return dtype >= 0 && dtype < HCGA_DTYPE_COUNT;
    default: return 0;
    }
}
