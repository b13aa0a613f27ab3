/*
 * dnn_plain.c - the plain-C path of the oneDNN backend: one dnn_plain_<ID>
 * per op of the catalogue, at f32 and f64, on host memory, threaded with
 * OpenMP (the runtime oneDNN itself uses in the Debian build, so both share
 * one thread count).  dnn_backend.c sends here every op at f64 (oneDNN 2.6
 * has no f64 on the CPU), the ops oneDNN has no primitive for (losses,
 * optimizers, CAST, COPY, ...), and, with the create option plain=1, every
 * op (a debugging aid that conformance can compare against).  The kernels
 * are in dnn_plain_k.h; the argument rules were checked by the contract
 * checker before any of this runs.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnn_internal.h"
#include "hcga_half.h"

#define DNN_CHUNK 4096
/* Loops over fewer elements run on the calling thread alone: an OpenMP
 * region costs a wake-up of the other threads, more than a small op (the
 * cpu backend's pool uses grains of the same size).  Results do not depend
 * on it: every element is computed the same way either way. */
#define DNN_PAR_MIN 32768

enum { UN_RELU_F, UN_RELU_B, UN_SIG_F, UN_SIG_B, UN_THR_F, UN_THR_B, UN_SIGN, UN_SET };

/* SUM_TO: x's offset of y's element j (y dense; x's strides xs; the dims
 * where y is 1 skipped). */
static inline int64_t dnn_kept_offset(int64_t j, const int64_t *xshape, const int64_t *yshape, const int64_t *xs,
                                      int nd)
{
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        if (yshape[d] != xshape[d]) continue;
        off += (j % xshape[d]) * xs[d];
        j /= xshape[d];
    }
    return off;
}

#define T float
#define SFX f32
#include "dnn_plain_k.h"
#undef T
#undef SFX
#define T double
#define SFX f64
#include "dnn_plain_k.h"
#undef T
#undef SFX

/* Calls name_f32 or name_f64 by the call's dtype. */
#define DISPATCH(dt_, name_, ...)                                                                  \
    do {                                                                                           \
        if ((dt_) == HCGA_F64) name_##_f64(__VA_ARGS__);                                           \
        else name_##_f32(__VA_ARGS__);                                                             \
    } while (0)
#define DISPATCH_R(res_, dt_, name_, ...)                                                          \
    do {                                                                                           \
        if ((dt_) == HCGA_F64) res_ = name_##_f64(__VA_ARGS__);                                    \
        else res_ = name_##_f32(__VA_ARGS__);                                                      \
    } while (0)

#define OPNAME hcga_op_name(ck->op)
#define IMPL(id_) hcga_status dnn_plain_##id_(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)

/* Only f32 and f64 reach the plain kernels (half calls are widened first). */
static hcga_status need_float(hcga_backend *be, const hcga_checked *ck)
{
    if (ck->dtype == HCGA_F32 || ck->dtype == HCGA_F64) return HCGA_OK;
    return dnn_fail(be, HCGA_ERR_UNSUPPORTED, "%s: dtype %s is not supported by the plain-C path",
                    hcga_op_name(ck->op), hcga_dtype_name(ck->dtype));
}
#define NEED_FLOAT()                                                                               \
    do {                                                                                           \
        hcga_status st_ = need_float(be, ck);                                                      \
        if (st_ != HCGA_OK) return st_;                                                            \
    } while (0)

static double scalar_in(const hcga_tensor *t)
{
    return t->dtype == HCGA_F64 ? *(const double *)dnn_ptr(t) : (double)*(const float *)dnn_ptr(t);
}

static void scalar_out(const hcga_tensor *t, double v)
{
    if (t->dtype == HCGA_F64) *(double *)dnn_ptr(t) = v;
    else *(float *)dnn_ptr(t) = (float)v;
}

static double *tmp_doubles(hcga_backend *be, int slot, int64_t n)
{
    return dnn_ws(be, slot, (size_t)(n > 0 ? n : 1) * sizeof(double));
}
#define NOMEM() return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for a workspace", OPNAME)

/* ---- convolutions and GEMM ---- */

IMPL(CONV2D_FWD)
{
    NEED_FLOAT();
    const hcga_tensor *b = a->num_in > 2 ? a->in[2] : NULL;
    DISPATCH(ck->dtype, conv_fwd, &ck->conv, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]),
             b ? dnn_ptr(b) : NULL, dnn_ptr(a->out[0]));
    return HCGA_OK;
}

IMPL(CONV2D_BWD_DATA)
{
    NEED_FLOAT();
    DISPATCH(ck->dtype, conv_bwd_data, &ck->conv, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]),
             dnn_ptr(a->out[0]));
    return HCGA_OK;
}

IMPL(CONV2D_BWD_FILTER)
{
    NEED_FLOAT();
    const hcga_tensor *db = a->num_out > 1 ? a->out[1] : NULL;
    DISPATCH(ck->dtype, conv_bwd_filter, &ck->conv, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]),
             dnn_ptr(a->out[0]), db ? dnn_ptr(db) : NULL);
    return HCGA_OK;
}

IMPL(GEMM)
{
    NEED_FLOAT();
    const hcga_gemm_params *g = &a->p.gemm;
    const hcga_tensor *c = a->num_in > 2 ? a->in[2] : NULL;
    DISPATCH(ck->dtype, gemm, g->trans_a, g->trans_b, ck->gemm_M, ck->gemm_N, ck->gemm_K, g->alpha,
             dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), g->beta, c ? dnn_ptr(c) : NULL,
             dnn_ptr(a->out[0]));
    return HCGA_OK;
}

/* ---- batch norm ---- */

/* The channel block of the call's data tensors (x, y, dy, dx): be->act_block
 * while dnn_act.c runs the call on blocked copies (nChw16c / nChw8c), else
 * 0 (plain NCHW).  Only f32 calls are run blocked. */
static int act_block_of(const hcga_backend *be, const hcga_checked *ck)
{
    return ck->dtype == HCGA_F32 && be->act_now ? be->act_block : 0;
}

/* Calls the f32 blocked kernel name_ with the arguments, in which B (the
 * caller's block size, 16 or 8) is a constant: each inlined copy of the
 * kernel is specialised for its block. */
#define BLOCKED(B_, name_, ...)                                                                    \
    do {                                                                                           \
        if ((B_) == 16) {                                                                          \
            enum { B = 16 };                                                                       \
            name_##_f32(__VA_ARGS__);                                                              \
        } else {                                                                                   \
            enum { B = 8 };                                                                        \
            name_##_f32(__VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

IMPL(BN_FWD_TRAIN)
{
    NEED_FLOAT();
    const int64_t N = ck->bn_N, C = ck->bn_C, HW = ck->bn_HW;
    double *mean = tmp_doubles(be, 0, C), *var = tmp_doubles(be, 1, C), *inv = tmp_doubles(be, 2, C);
    if (!mean || !var || !inv) NOMEM();
    const int B = act_block_of(be, ck);
    if (B) BLOCKED(B, bnb_moments, dnn_ptr(a->in[0]), N, C / B, HW, B, mean, var);
    else DISPATCH(ck->dtype, bn_moments, dnn_ptr(a->in[0]), N, C, HW, mean, var, 0);
    const double m = (double)(N * HW), mom = a->p.bn.momentum;
    for (int64_t c = 0; c < C; c++) inv[c] = 1.0 / sqrt(var[c] + a->p.bn.eps);
    if (B)
        BLOCKED(B, bnb_apply, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]), mean, inv,
                   dnn_ptr(a->out[0]), N, C / B, HW, B);
    else
        DISPATCH(ck->dtype, bn_apply, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]), mean, inv,
                 dnn_ptr(a->out[0]), N, C, HW);
    for (int64_t c = 0; c < C; c++) {
        double unb = m > 1 ? var[c] * m / (m - 1) : var[c];
        if (ck->dtype == HCGA_F64) {
            double *sm = dnn_ptr(a->out[1]), *si = dnn_ptr(a->out[2]);
            double *rm = dnn_ptr(a->out[3]), *rv = dnn_ptr(a->out[4]);
            sm[c] = mean[c], si[c] = inv[c];
            rm[c] = (1 - mom) * rm[c] + mom * mean[c];
            rv[c] = (1 - mom) * rv[c] + mom * unb;
        } else {
            float *sm = dnn_ptr(a->out[1]), *si = dnn_ptr(a->out[2]);
            float *rm = dnn_ptr(a->out[3]), *rv = dnn_ptr(a->out[4]);
            sm[c] = (float)mean[c], si[c] = (float)inv[c];
            rm[c] = (float)((1 - mom) * (double)rm[c] + mom * mean[c]);
            rv[c] = (float)((1 - mom) * (double)rv[c] + mom * unb);
        }
    }
    return HCGA_OK;
}

/* y = gamma*(x-rm)/sqrt(rv+eps) + beta per channel of x[N,C,HW] (BN
 * inference; x may be y). */
static hcga_status bn_infer(hcga_backend *be, const hcga_checked *ck, const void *x, const hcga_tensor *gamma,
                            const hcga_tensor *beta, const hcga_tensor *rm_t, const hcga_tensor *rv_t,
                            double eps, void *y, int64_t N, int64_t C, int64_t HW)
{
    double *mean = tmp_doubles(be, 0, C), *inv = tmp_doubles(be, 1, C);
    if (!mean || !inv) NOMEM();
    for (int64_t c = 0; c < C; c++) {
        double rm, rv;
        if (ck->dtype == HCGA_F64)
            rm = ((double *)dnn_ptr(rm_t))[c], rv = ((double *)dnn_ptr(rv_t))[c];
        else
            rm = ((float *)dnn_ptr(rm_t))[c], rv = ((float *)dnn_ptr(rv_t))[c];
        mean[c] = rm;
        inv[c] = 1.0 / sqrt(rv + eps);
    }
    DISPATCH(ck->dtype, bn_apply, x, dnn_ptr(gamma), dnn_ptr(beta), mean, inv, y, N, C, HW);
    return HCGA_OK;
}

IMPL(BN_FWD_INFER)
{
    NEED_FLOAT();
    return bn_infer(be, ck, dnn_ptr(a->in[0]), a->in[1], a->in[2], a->in[3], a->in[4], a->p.bn.eps,
                    dnn_ptr(a->out[0]), ck->bn_N, ck->bn_C, ck->bn_HW);
}

/* CONV2D_BN_INFER on the plain path (f64, plain=1, empty problems): the
 * convolution into y, then the batch norm, the residual and the ReLU in
 * place. */
IMPL(CONV2D_BN_INFER)
{
    NEED_FLOAT();
    const hcga_conv_dims *d = &ck->conv;
    const hcga_tensor *b = a->num_in > HCGA_CBN_BIAS ? a->in[HCGA_CBN_BIAS] : NULL;
    void *y = dnn_ptr(a->out[0]);
    DISPATCH(ck->dtype, conv_fwd, d, dnn_ptr(a->in[HCGA_CBN_X]), dnn_ptr(a->in[HCGA_CBN_W]),
             b ? dnn_ptr(b) : NULL, y);
    hcga_status st = bn_infer(be, ck, y, a->in[HCGA_CBN_GAMMA], a->in[HCGA_CBN_BETA], a->in[HCGA_CBN_RMEAN],
                              a->in[HCGA_CBN_RVAR], a->p.conv_bn.eps, y, d->N, d->K, d->P * d->Q);
    if (st != HCGA_OK) return st;
    const hcga_tensor *res = a->num_in > HCGA_CBN_RES ? a->in[HCGA_CBN_RES] : NULL;
    if (res) { /* y += residual, as ADD's flat loop */
        const int64_t n = hcga_tensor_numel(a->out[0]), one = 1;
        DISPATCH(ck->dtype, binary, 0, y, dnn_ptr(res), y, &n, 1, &one, &one, 1.0, 1.0);
    }
    if (a->p.conv_bn.relu)
        DISPATCH(ck->dtype, unary, UN_RELU_F, y, NULL, y, hcga_tensor_numel(a->out[0]), 0.0);
    return HCGA_OK;
}

static void store_channels(const hcga_tensor *t, const double *v, int64_t C)
{
    if (t->dtype == HCGA_F64) memcpy(dnn_ptr(t), v, (size_t)C * sizeof(double));
    else {
        float *p = dnn_ptr(t);
        for (int64_t c = 0; c < C; c++) p[c] = (float)v[c];
    }
}

IMPL(BN_BWD)
{
    NEED_FLOAT();
    const int64_t N = ck->bn_N, C = ck->bn_C, HW = ck->bn_HW;
    double *sdy = tmp_doubles(be, 0, C), *sdx = tmp_doubles(be, 1, C);
    if (!sdy || !sdx) NOMEM();
    const int B = act_block_of(be, ck);
    if (B) {
        BLOCKED(B, bnb_bsums, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[3]), dnn_ptr(a->in[4]), N,
                   C / B, HW, B, sdy, sdx);
        BLOCKED(B, bnb_dx, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]), dnn_ptr(a->in[3]),
                   dnn_ptr(a->in[4]), sdy, sdx, (double)(N * HW), dnn_ptr(a->out[0]), N, C / B, HW, B);
    } else {
        DISPATCH(ck->dtype, bn_bsums, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[3]),
                 dnn_ptr(a->in[4]), N, C, HW, sdy, sdx);
        DISPATCH(ck->dtype, bn_dx, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]),
                 dnn_ptr(a->in[3]), dnn_ptr(a->in[4]), sdy, sdx, (double)(N * HW), dnn_ptr(a->out[0]), N,
                 C, HW);
    }
    store_channels(a->out[1], sdx, C);
    store_channels(a->out[2], sdy, C);
    return HCGA_OK;
}

IMPL(BN_STATS)
{
    NEED_FLOAT();
    const int64_t C = ck->bn_C;
    double *s = tmp_doubles(be, 0, C), *q = tmp_doubles(be, 1, C);
    if (!s || !q) NOMEM();
    DISPATCH(ck->dtype, bn_moments, dnn_ptr(a->in[0]), ck->bn_N, C, ck->bn_HW, s, q, 1);
    store_channels(a->out[0], s, C);
    store_channels(a->out[1], q, C);
    return HCGA_OK;
}

static double chan_at(const hcga_tensor *t, int64_t c)
{
    return t->dtype == HCGA_F64 ? ((const double *)dnn_ptr(t))[c] : (double)((const float *)dnn_ptr(t))[c];
}

static void chan_set(const hcga_tensor *t, int64_t c, double v)
{
    if (t->dtype == HCGA_F64) ((double *)dnn_ptr(t))[c] = v;
    else ((float *)dnn_ptr(t))[c] = (float)v;
}

IMPL(BN_FWD_FROM_STATS)
{
    NEED_FLOAT();
    const int64_t C = ck->bn_C;
    const double M = (double)a->p.bn.count, mom = a->p.bn.momentum;
    double *mean = tmp_doubles(be, 0, C), *inv = tmp_doubles(be, 1, C);
    if (!mean || !inv) NOMEM();
    for (int64_t c = 0; c < C; c++) {
        double mu = chan_at(a->in[HCGA_BNF_SUM], c) / M;
        double var = chan_at(a->in[HCGA_BNF_SUMSQ], c) / M - mu * mu;
        if (!(var > 0)) var = var != var ? var : 0.0;
        mean[c] = mu;
        inv[c] = 1.0 / sqrt(var + a->p.bn.eps);
        chan_set(a->out[1], c, mu);
        chan_set(a->out[2], c, inv[c]);
        chan_set(a->out[3], c, (1 - mom) * chan_at(a->out[3], c) + mom * mu);
        chan_set(a->out[4], c, (1 - mom) * chan_at(a->out[4], c) + mom * var * M / (M - 1));
    }
    DISPATCH(ck->dtype, bn_apply, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]), mean, inv,
             dnn_ptr(a->out[0]), ck->bn_N, C, ck->bn_HW);
    return HCGA_OK;
}

IMPL(BN_BWD_FROM_STATS)
{
    NEED_FLOAT();
    const int64_t C = ck->bn_C;
    double *sdy = tmp_doubles(be, 0, C), *sdx = tmp_doubles(be, 1, C);
    if (!sdy || !sdx) NOMEM();
    for (int64_t c = 0; c < C; c++) {
        sdy[c] = chan_at(a->in[HCGA_BNB_SUM_DY], c);
        sdx[c] = chan_at(a->in[HCGA_BNB_SUM_DY_XHAT], c);
    }
    DISPATCH(ck->dtype, bn_dx, dnn_ptr(a->in[0]), dnn_ptr(a->in[1]), dnn_ptr(a->in[2]),
             dnn_ptr(a->in[3]), dnn_ptr(a->in[4]), sdy, sdx, (double)a->p.bn.count,
             dnn_ptr(a->out[0]), ck->bn_N, C, ck->bn_HW);
    return HCGA_OK;
}

/* ---- elementwise ---- */

static hcga_status unary(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int kind,
                         double s)
{
    NEED_FLOAT();
    const hcga_tensor *dy = a->num_in > 1 ? a->in[1] : NULL;
    DISPATCH(ck->dtype, unary, kind, dnn_ptr(a->in[0]), dy ? dnn_ptr(dy) : NULL, dnn_ptr(a->out[0]),
             hcga_tensor_numel(a->out[0]), s);
    return HCGA_OK;
}

IMPL(RELU_FWD) { return unary(be, a, ck, UN_RELU_F, 0); }
IMPL(RELU_BWD) { return unary(be, a, ck, UN_RELU_B, 0); }
IMPL(SIGMOID_FWD) { return unary(be, a, ck, UN_SIG_F, 0); }
IMPL(SIGMOID_BWD) { return unary(be, a, ck, UN_SIG_B, 0); }
IMPL(THRESH_FWD) { return unary(be, a, ck, UN_THR_F, a->p.scalar.a); }
IMPL(THRESH_BWD) { return unary(be, a, ck, UN_THR_B, a->p.scalar.a); }

static hcga_status binary(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int mul)
{
    NEED_FLOAT();
    const hcga_tensor *A = a->in[0], *B = a->in[1], *Y = a->out[0];
    int64_t sa[HCGA_MAX_DIMS], sb[HCGA_MAX_DIMS], da = 1, db = 1;
    for (int d = Y->ndim - 1; d >= 0; d--) {
        sa[d] = A->shape[d] == 1 ? 0 : da;
        sb[d] = B->shape[d] == 1 ? 0 : db;
        da *= A->shape[d];
        db *= B->shape[d];
    }
    if (hcga_tensor_numel(Y) == 0) return HCGA_OK;
    DISPATCH(ck->dtype, binary, mul, dnn_ptr(A), dnn_ptr(B), dnn_ptr(Y), Y->shape, Y->ndim, sa, sb,
             a->p.scalar.a, mul ? 0.0 : a->p.scalar.b);
    return HCGA_OK;
}

IMPL(ADD) { return binary(be, a, ck, 0); }
IMPL(MUL) { return binary(be, a, ck, 1); }

/* The reduced dims of a SUM_TO (y has 1, x does not): *L, the length of the
 * contiguous run the trailing ones make in x; the number of combinations of
 * the others; and, when roff is not NULL, x's offset of each combination,
 * in row-major order. */
static int64_t sum_to_offsets(const int64_t *xshape, int nd, const int64_t *yshape, int64_t *roff, int64_t *L)
{
    int64_t xs[HCGA_MAX_DIMS], st = 1, nr = 1;
    int inner = nd; /* dims inner..nd-1 are the trailing run */
    for (int d = nd - 1; d >= 0; d--) {
        xs[d] = st;
        st *= xshape[d];
    }
    *L = 1;
    while (inner > 0 && (yshape[inner - 1] != xshape[inner - 1] || xshape[inner - 1] == 1)) {
        inner--;
        *L *= xshape[inner];
    }
    for (int d = 0; d < inner; d++)
        if (yshape[d] != xshape[d]) nr *= xshape[d];
    for (int64_t r = 0; roff && r < nr; r++) {
        int64_t off = 0, rr = r;
        for (int d = inner - 1; d >= 0; d--) {
            if (yshape[d] == xshape[d]) continue;
            off += (rr % xshape[d]) * xs[d];
            rr /= xshape[d];
        }
        roff[r] = off;
    }
    return nr;
}

IMPL(SUM_TO)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    if (hcga_tensor_numel(y) == 0) return HCGA_OK;
    int64_t L;
    const int64_t nr = sum_to_offsets(x->shape, x->ndim, y->shape, NULL, &L);
    int64_t *roff = dnn_ws(be, DNN_WS_TMP + 2, (size_t)nr * sizeof(int64_t));
    if (!roff) NOMEM();
    sum_to_offsets(x->shape, x->ndim, y->shape, roff, &L);
    DISPATCH(ck->dtype, sum_to, dnn_ptr(x), dnn_ptr(y), x->shape, x->ndim, y->shape, roff, nr, L);
    return HCGA_OK;
}

/* COPY: any strides, same dtype (any) or f32 <-> f64. */
IMPL(COPY)
{
    (void)ck;
    (void)be;
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0 || hcga_contract_same_view(x, y)) return HCGA_OK;
    const size_t xe = hcga_dtype_size(x->dtype), ye = hcga_dtype_size(y->dtype);
    const char *px = dnn_ptr(x);
    char *py = dnn_ptr(y);
    const int nd = x->ndim;
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t ox = 0, oy = 0, rem = i;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t idx = rem % x->shape[d];
            rem /= x->shape[d];
            ox += idx * x->stride[d];
            oy += idx * y->stride[d];
        }
        const char *s = px + ox * (int64_t)xe;
        char *t = py + oy * (int64_t)ye;
        if (x->dtype == y->dtype) memcpy(t, s, xe);
        else if (x->dtype == HCGA_F32) {
            float f;
            memcpy(&f, s, sizeof f);
            double v = f;
            memcpy(t, &v, sizeof v);
        } else {
            double v;
            memcpy(&v, s, sizeof v);
            float f = (float)v;
            memcpy(t, &f, sizeof f);
        }
    }
    return HCGA_OK;
}

IMPL(FILL)
{
    (void)ck;
    const hcga_tensor *y = a->out[0];
    const int64_t n = hcga_tensor_numel(y);
    const double v = a->p.scalar.a;
    switch (y->dtype) {
    case HCGA_F32:
    case HCGA_F64: DISPATCH(y->dtype, unary, UN_SET, dnn_ptr(y), NULL, dnn_ptr(y), n, v); break;
    case HCGA_I32: {
        int32_t *p = dnn_ptr(y);
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)v;
        break;
    }
    case HCGA_I64: {
        int64_t *p = dnn_ptr(y);
        for (int64_t i = 0; i < n; i++) p[i] = (int64_t)v;
        break;
    }
    case HCGA_U8: memset(dnn_ptr(y), (int)(uint8_t)v, (size_t)n); break;
    default:
        return dnn_fail(be, HCGA_ERR_UNSUPPORTED, "fill: dtype %s is not supported",
                        hcga_dtype_name(y->dtype));
    }
    return HCGA_OK;
}

/* ---- channel ops ---- */

static int64_t inner_of(const hcga_tensor *t)
{
    int64_t s = 1;
    for (int d = 2; d < t->ndim; d++) s *= t->shape[d];
    return s;
}

IMPL(SOFTMAX_FWD)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    DISPATCH(ck->dtype, softmax, dnn_ptr(x), NULL, dnn_ptr(a->out[0]), x->shape[0], x->shape[1],
             inner_of(x));
    return HCGA_OK;
}

IMPL(SOFTMAX_BWD)
{
    NEED_FLOAT();
    const hcga_tensor *y = a->in[0];
    DISPATCH(ck->dtype, softmax, dnn_ptr(y), dnn_ptr(a->in[1]), dnn_ptr(a->out[0]), y->shape[0],
             y->shape[1], inner_of(y));
    return HCGA_OK;
}

/* CONCAT (split = 0) and SPLIT: blocks of C_i * inner elements per image. */
static hcga_status cat(hcga_backend *be, const hcga_op_args *a, int split)
{
    (void)be;
    const hcga_tensor *whole = split ? a->in[0] : a->out[0];
    const int parts = split ? a->num_out : a->num_in;
    const size_t es = hcga_dtype_size(whole->dtype);
    const int64_t N = whole->shape[0], S = inner_of(whole), Ct = whole->shape[1];
    int64_t c0 = 0;
    for (int i = 0; i < parts; i++) {
        const hcga_tensor *p = split ? a->out[i] : a->in[i];
        const int64_t Ci = p->shape[1];
        char *wb = dnn_ptr(whole);
        char *pb = dnn_ptr(p);
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            char *w = wb + (size_t)((n * Ct + c0) * S) * es;
            char *q = pb + (size_t)(n * Ci * S) * es;
            if (split) memcpy(q, w, (size_t)(Ci * S) * es);
            else memcpy(w, q, (size_t)(Ci * S) * es);
        }
        c0 += Ci;
    }
    return HCGA_OK;
}

IMPL(CONCAT)
{
    (void)ck;
    return cat(be, a, 0);
}

IMPL(SPLIT)
{
    (void)ck;
    return cat(be, a, 1);
}

IMPL(ARGMAX)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    DISPATCH(ck->dtype, argmax, dnn_ptr(x), dnn_ptr(a->out[0]), x->shape[0], x->shape[1], inner_of(x));
    return HCGA_OK;
}

/* ---- spatial ---- */

/* UPSAMPLE_NEAREST_FWD (x = in[0] -> y = out[0]) and _BWD (dy = in[0] ->
 * dx = out[0]): the small image is x / dx. */
static hcga_status upsample(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    NEED_FLOAT();
    const hcga_tensor *small = bwd ? a->out[0] : a->in[0];
    const int64_t planes = small->shape[0] * small->shape[1], H = small->shape[2], W = small->shape[3];
    const int B = act_block_of(be, ck);
    if (B)
        BLOCKED(B, upsample_blk, dnn_ptr(a->in[0]), dnn_ptr(a->out[0]), planes / B, H, W, a->p.resize.factor, bwd,
                B);
    else
        DISPATCH(ck->dtype, upsample, dnn_ptr(a->in[0]), dnn_ptr(a->out[0]), planes, H, W, a->p.resize.factor, bwd);
    return HCGA_OK;
}

IMPL(UPSAMPLE_NEAREST_FWD) { return upsample(be, a, ck, 0); }
IMPL(UPSAMPLE_NEAREST_BWD) { return upsample(be, a, ck, 1); }

/* Source coordinate of each output index d < on for a resize of n to on:
 * rows i0[d], i1[d] and the weight l[d] of i1. */
static void resize_table(int64_t n, int64_t on, int ac, int64_t *i0, int64_t *i1, double *l)
{
    for (int64_t d = 0; d < on; d++) {
        double s;
        if (ac) s = on > 1 ? (double)d * (double)(n - 1) / (double)(on - 1) : 0.0;
        else {
            s = ((double)d + 0.5) * (double)n / (double)on - 0.5;
            if (s < 0) s = 0;
        }
        int64_t a = (int64_t)floor(s);
        if (a > n - 1) a = n - 1;
        i0[d] = a;
        i1[d] = a + 1 < n ? a + 1 : n - 1;
        l[d] = s - (double)a;
    }
}

/* RESIZE_BILINEAR_FWD (x = in[0] -> y = out[0]) and _BWD (dy = in[0] ->
 * dx = out[0]): the small image is x / dx. */
static hcga_status resize(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    NEED_FLOAT();
    const hcga_tensor *small = bwd ? a->out[0] : a->in[0], *big = bwd ? a->in[0] : a->out[0];
    const int64_t H = small->shape[2], W = small->shape[3], OH = big->shape[2], OW = big->shape[3];
    int64_t *idx = dnn_ws(be, DNN_WS_TMP + 2, (size_t)(2 * (OH + OW)) * sizeof(int64_t));
    double *l = tmp_doubles(be, DNN_WS_TMP + 3, OH + OW);
    const int64_t per_thread = W + (bwd ? H * W : 0); /* the kernel's rows and dx plane */
    double *scratch = tmp_doubles(be, DNN_WS_TMP + 1, per_thread * omp_get_max_threads());
    if (!idx || !l || !scratch) NOMEM();
    const int ac = a->p.resize.align_corners;
    resize_table(H, OH, ac, idx, idx + OH, l);
    resize_table(W, OW, ac, idx + 2 * OH, idx + 2 * OH + OW, l + OH);
    DISPATCH(ck->dtype, resize, dnn_ptr(a->in[0]), dnn_ptr(a->out[0]), small->shape[0] * small->shape[1], H, W, OH,
             OW, idx, idx + OH, l, idx + 2 * OH, idx + 2 * OH + OW, l + OH, bwd, scratch, per_thread);
    return HCGA_OK;
}

IMPL(RESIZE_BILINEAR_FWD) { return resize(be, a, ck, 0); }
IMPL(RESIZE_BILINEAR_BWD) { return resize(be, a, ck, 1); }

IMPL(GAP_FWD)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    DISPATCH(ck->dtype, gap, dnn_ptr(x), dnn_ptr(a->out[0]), x->shape[0] * x->shape[1],
             x->shape[2] * x->shape[3], 0);
    return HCGA_OK;
}

IMPL(GAP_BWD)
{
    NEED_FLOAT();
    const hcga_tensor *dx = a->out[0];
    DISPATCH(ck->dtype, gap, dnn_ptr(a->in[0]), dnn_ptr(dx), dx->shape[0] * dx->shape[1],
             dx->shape[2] * dx->shape[3], 1);
    return HCGA_OK;
}

/* ---- reductions ---- */

IMPL(REDUCE)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    const int64_t n = hcga_tensor_numel(x);
    double *part = tmp_doubles(be, 0, (n + DNN_CHUNK - 1) / DNN_CHUNK);
    if (!part) NOMEM();
    const int kind = a->p.reduce.kind;
    double s;
    DISPATCH_R(s, ck->dtype, sum, dnn_ptr(x), n, kind == HCGA_REDUCE_ABS_MEAN, part);
    if (kind != HCGA_REDUCE_SUM) s = n > 0 ? s / (double)n : 0.0;
    scalar_out(a->out[0], s);
    return HCGA_OK;
}

IMPL(REDUCE_BWD)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    const int kind = a->p.reduce.kind;
    double g = scalar_in(a->in[1]);
    if (kind != HCGA_REDUCE_SUM) g /= (double)n;
    DISPATCH(ck->dtype, unary, kind == HCGA_REDUCE_ABS_MEAN ? UN_SIGN : UN_SET, dnn_ptr(x), NULL,
             dnn_ptr(a->out[0]), n, g);
    return HCGA_OK;
}

/* ---- losses ---- */

/* Label values are data: checked here (the contract checker cannot). */
static hcga_status check_labels(hcga_backend *be, const hcga_checked *ck, const hcga_tensor *lab,
                                int64_t C, int has_ignore, int64_t ignore)
{
    const int64_t *l = dnn_ptr(lab);
    const int64_t n = hcga_tensor_numel(lab);
    for (int64_t i = 0; i < n; i++) {
        if (has_ignore && l[i] == ignore) continue;
        if (l[i] < 0 || l[i] >= C)
            return dnn_fail(be, HCGA_ERR_INVALID, "%s: labels[%lld] = %lld is outside [0, %lld)", OPNAME,
                            (long long)i, (long long)l[i], (long long)C);
    }
    return HCGA_OK;
}
#define TRY(e_)                                                                                    \
    do {                                                                                           \
        hcga_status st_ = (e_);                                                                    \
        if (st_ != HCGA_OK) return st_;                                                            \
    } while (0)

static hcga_status ce(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0], *lab = a->in[1];
    const int64_t N = x->shape[0], C = x->shape[1];
    TRY(check_labels(be, ck, lab, C, 0, 0));
    double *part = tmp_doubles(be, 0, N);
    if (!part) NOMEM();
    if (!bwd) {
        double s;
        DISPATCH_R(s, ck->dtype, ce, dnn_ptr(x), dnn_ptr(lab), N, C, a->p.loss.eps, 0, NULL, part);
        scalar_out(a->out[0], N > 0 ? s / (double)N : 0.0);
    } else {
        double g = N > 0 ? scalar_in(a->in[2]) / (double)N : 0.0;
        double s;
        if (ck->dtype == HCGA_F64)
            s = ce_f64(dnn_ptr(x), dnn_ptr(lab), N, C, a->p.loss.eps, g, dnn_ptr(a->out[0]), part);
        else
            s = ce_f32(dnn_ptr(x), dnn_ptr(lab), N, C, a->p.loss.eps, g, dnn_ptr(a->out[0]), part);
        (void)s;
    }
    return HCGA_OK;
}

IMPL(CE_LS_FWD) { return ce(be, a, ck, 0); }
IMPL(CE_LS_BWD) { return ce(be, a, ck, 1); }

static hcga_status pixce(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0], *lab = a->in[1];
    const int64_t N = x->shape[0], Kc = x->shape[1], S = x->shape[2] * x->shape[3];
    const int64_t ign = a->p.loss.ignore_label;
    TRY(check_labels(be, ck, lab, Kc, 1, ign));
    const int64_t *l = dnn_ptr(lab);
    int64_t count = 0;
    for (int64_t i = 0; i < N * S; i++) count += l[i] != ign;
    double *part = tmp_doubles(be, 0, N * S);
    if (!part) NOMEM();
    double s;
    if (!bwd) {
        DISPATCH_R(s, ck->dtype, pixce, dnn_ptr(x), l, N, Kc, S, ign, 0, NULL, part);
        scalar_out(a->out[0], count > 0 ? s / (double)count : 0.0);
    } else {
        double g = count > 0 ? scalar_in(a->in[2]) / (double)count : 0.0;
        if (ck->dtype == HCGA_F64) s = pixce_f64(dnn_ptr(x), l, N, Kc, S, ign, g, dnn_ptr(a->out[0]), part);
        else s = pixce_f32(dnn_ptr(x), l, N, Kc, S, ign, g, dnn_ptr(a->out[0]), part);
        (void)s;
    }
    return HCGA_OK;
}

IMPL(PIXEL_CE_FWD) { return pixce(be, a, ck, 0); }
IMPL(PIXEL_CE_BWD) { return pixce(be, a, ck, 1); }

static double tri_d(double sq)
{
    if (sq != sq) return sq;
    return sqrt(sq > 1e-12 ? sq : 1e-12);
}

/* This backend keeps the N x N distance matrix: a limit of this
 * implementation, refused as unsupported. */
static hcga_status tri_limit(hcga_backend *be, const hcga_checked *ck, int64_t N)
{
    if (N > 65536)
        return dnn_fail(be, HCGA_ERR_UNSUPPORTED, "%s: N = %lld is too large for the N x N distance matrix",
                        OPNAME, (long long)N);
    return HCGA_OK;
}

IMPL(TRIPLET_FWD)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    TRY(tri_limit(be, ck, N));
    double *dist = tmp_doubles(be, 0, N * N), *nrm = tmp_doubles(be, 1, N);
    if (!dist || !nrm) NOMEM();
    DISPATCH(ck->dtype, tri_dist, dnn_ptr(x), N, D, dist, nrm);
    const int64_t *l = dnn_ptr(a->in[1]);
    int64_t *h = dnn_ptr(a->out[1]);
    double sum = 0;
    int64_t num = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t ap = -1, an = -1;
        double dap = 0, dan = 0;
        for (int64_t j = 0; j < N; j++) {
            const double d = tri_d(dist[i * N + j]);
            if (l[j] == l[i]) {
                if (ap < 0 || d > dap) ap = j, dap = d;
            } else if (an < 0 || d < dan) an = j, dan = d;
        }
        h[2 * i] = ap;
        h[2 * i + 1] = an;
        if (an >= 0) {
            const double z = dap - dan + a->p.loss.margin;
            sum += z > 0 ? z : (z != z ? z : 0.0);
            num++;
        }
    }
    scalar_out(a->out[0], num > 0 ? sum / (double)num : 0.0);
    return HCGA_OK;
}

IMPL(TRIPLET_BWD)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    TRY(tri_limit(be, ck, N));
    const int64_t *h = dnn_ptr(a->in[1]);
    int64_t num = 0;
    for (int64_t i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++)
            if (h[2 * i + k] < -1 || h[2 * i + k] >= N)
                return dnn_fail(be, HCGA_ERR_INVALID, "%s: hard[%lld,%d] = %lld is outside [-1, %lld)",
                                OPNAME, (long long)i, k, (long long)h[2 * i + k], (long long)N);
        if (h[2 * i] >= 0 && h[2 * i + 1] >= 0) num++;
    }
    double *dist = tmp_doubles(be, 0, N * N), *nrm = tmp_doubles(be, 1, N);
    double *acc = tmp_doubles(be, 2, N * D);
    if (!dist || !nrm || !acc) NOMEM();
    DISPATCH(ck->dtype, tri_dist, dnn_ptr(x), N, D, dist, nrm);
    const double g = num > 0 ? scalar_in(a->in[2]) / (double)num : 0.0;
    DISPATCH(ck->dtype, tri_bwd, dnn_ptr(x), h, N, D, dist, g, a->p.loss.margin, acc,
             dnn_ptr(a->out[0]));
    return HCGA_OK;
}

static hcga_status shift(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    NEED_FLOAT();
    const hcga_tensor *x = a->in[0];
    const hcga_shift_params *p = &a->p.shift;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t vn = N - (p->dn ? 1 : 0), vh = H - (p->dh ? 1 : 0), vw = W - (p->dw ? 1 : 0);
    if (vn < 0) vn = 0;
    if (vh < 0) vh = 0;
    if (vw < 0) vw = 0;
    const int64_t count = vn * C * vh * vw;
    double *part = tmp_doubles(be, 0, N * C);
    if (!part) NOMEM();
    double s;
    if (!bwd) {
        if (count == 0) {
            scalar_out(a->out[0], 0.0);
            return HCGA_OK;
        }
        DISPATCH_R(s, ck->dtype, shift, dnn_ptr(x), N, C, H, W, p->dn, p->dh, p->dw, 0, NULL, part);
        scalar_out(a->out[0], s / (double)count);
    } else {
        const double g = count > 0 ? scalar_in(a->in[1]) / (double)count : 0.0;
        DISPATCH_R(s, ck->dtype, shift, dnn_ptr(x), N, C, H, W, p->dn, p->dh, p->dw, g,
                   dnn_ptr(a->out[0]), part);
        (void)s;
    }
    return HCGA_OK;
}

IMPL(SHIFT_L1_FWD) { return shift(be, a, ck, 0); }
IMPL(SHIFT_L1_BWD) { return shift(be, a, ck, 1); }

/* ---- optimizers ---- */

IMPL(ADAM_STEP)
{
    NEED_FLOAT();
    DISPATCH(ck->dtype, adam, dnn_ptr(a->in[0]), dnn_ptr(a->out[0]), dnn_ptr(a->out[1]),
             dnn_ptr(a->out[2]), hcga_tensor_numel(a->in[0]), &a->p.optim);
    return HCGA_OK;
}

IMPL(SGD_STEP)
{
    NEED_FLOAT();
    DISPATCH(ck->dtype, sgd, dnn_ptr(a->in[0]), dnn_ptr(a->out[0]), dnn_ptr(a->out[1]),
             hcga_tensor_numel(a->in[0]), &a->p.optim);
    return HCGA_OK;
}

/* ---- CAST: any float pair, with the exact conversions of hcga_half.h ---- */

/* f32 <-> 16-bit loops with the dtype test outside (they vectorize): the
 * AMP graph casts every convolution's operands, so these run per step on
 * every activation. */
void dnn_half_from_f32(const float *x, int half_dtype, uint16_t *y, int64_t n)
{
    if (half_dtype == HCGA_BF16) {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = hcga_f32_to_bf16(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = hcga_f32_to_f16(x[i]);
    }
}

void dnn_half_to_f32(const uint16_t *x, int half_dtype, float *y, int64_t n)
{
    if (half_dtype == HCGA_BF16) {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = hcga_bf16_to_f32(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = hcga_f16_to_f32(x[i]);
    }
}

/* any other pair: through double, one element at a time */
static void cast_any(const char *px, int xd, char *py, int yd, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= DNN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        /* read: exact in double (every half and f32 value is a double) */
        double v;
        float f = 0;
        int have_f = 0;
        switch (xd) {
        case HCGA_F64: memcpy(&v, px + i * 8, 8); break;
        case HCGA_F32: memcpy(&f, px + i * 4, 4), v = f, have_f = 1; break;
        default: {
            uint16_t h;
            memcpy(&h, px + i * 2, 2);
            f = hcga_half_to_f32(xd, h), v = f, have_f = 1;
        }
        }
        switch (yd) {
        case HCGA_F64: memcpy(py + i * 8, &v, 8); break;
        case HCGA_F32: {
            float o = have_f ? f : (float)v;
            memcpy(py + i * 4, &o, 4);
            break;
        }
        default: {
            uint16_t h = have_f ? hcga_half_from_f32(yd, f) : hcga_half_from_f64(yd, v);
            memcpy(py + i * 2, &h, 2);
        }
        }
    }
}

IMPL(CAST)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0 || hcga_contract_same_view(x, y)) return HCGA_OK;
    const int xd = ck->in_dtype, yd = ck->out_dtype;
    (void)be;
    if (xd == HCGA_F32 && hcga_dtype_is_half(yd)) dnn_half_from_f32(dnn_ptr(x), yd, dnn_ptr(y), n);
    else if (hcga_dtype_is_half(xd) && yd == HCGA_F32) dnn_half_to_f32(dnn_ptr(x), xd, dnn_ptr(y), n);
    else cast_any(dnn_ptr(x), xd, dnn_ptr(y), yd, n);
    return HCGA_OK;
}
