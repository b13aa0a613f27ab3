/*
 * cuda_ops.c - the ops of the CUDA backend that run on our own kernels
 * (k_*.cu through cuda_kernels.h).
 *
 * The dispatcher (cuda_backend.c) has checked each call against the shared
 * contract before it gets here, so an op only derives its kernel's sizes,
 * fetches device pointers and enqueues one or a few kernels on the
 * instance's stream.  Losses leave their scalar on the device; labels and
 * indices that can only be checked on the device raise the instance's error
 * flag, reported at the next buffer_read / synchronize (or by the op itself
 * with sync=1).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_impl.h"
#include "cuda_kernels.h"

#define OPN(ck) hcga_op_name((ck)->op)

/* ---- elementwise ---------------------------------------------------------------- */

/* One or two same-shape inputs, one same-shape output (in place allowed). */
static hcga_status pointwise_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                                int kind)
{
    const hcga_tensor *x0 = a->in[0];
    void *p0 = cu_ptr(x0), *p1 = a->num_in > 1 ? cu_ptr(a->in[1]) : NULL, *py = cu_ptr(a->out[0]);
    const double p = (kind == CUK_PW_THRESH_FWD || kind == CUK_PW_THRESH_BWD) ? a->p.scalar.a : 0.0;
    CU_LAUNCH(be, OPN(ck), cuk_pointwise(be->stream, ck->dtype, kind, hcga_tensor_numel(x0), p0, p1, py, p));
    return HCGA_OK;
}

CU_IMPL(RELU_FWD)
{
    return pointwise_op(be, a, ck, CUK_PW_RELU_FWD);
}
CU_IMPL(RELU_BWD)
{
    return pointwise_op(be, a, ck, CUK_PW_RELU_BWD);
}
CU_IMPL(SIGMOID_FWD)
{
    return pointwise_op(be, a, ck, CUK_PW_SIGMOID_FWD);
}
CU_IMPL(SIGMOID_BWD)
{
    return pointwise_op(be, a, ck, CUK_PW_SIGMOID_BWD);
}
CU_IMPL(THRESH_FWD)
{
    return pointwise_op(be, a, ck, CUK_PW_THRESH_FWD);
}
CU_IMPL(THRESH_BWD)
{
    return pointwise_op(be, a, ck, CUK_PW_THRESH_BWD);
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

static hcga_status binary_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int mul)
{
    const hcga_tensor *ta = a->in[0], *tb = a->in[1], *y = a->out[0];
    void *pa = cu_ptr(ta), *pb = cu_ptr(tb), *py = cu_ptr(y);
    const int64_t n = hcga_tensor_numel(y);
    if (n == 0) return HCGA_OK;
    const double alpha = a->p.scalar.a, beta = mul ? 0.0 : a->p.scalar.b;
    if (hcga_tensor_numel(ta) == n && hcga_tensor_numel(tb) == n) { /* no broadcasting */
        CU_LAUNCH(be, OPN(ck), cuk_binary(be->stream, ck->dtype, mul, NULL, n, pa, pb, py, alpha, beta));
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
    CU_LAUNCH(be, OPN(ck), cuk_binary(be->stream, ck->dtype, mul, &v, n, pa, pb, py, alpha, beta));
    return HCGA_OK;
}

CU_IMPL(ADD)
{
    return binary_op(be, a, ck, 0);
}
CU_IMPL(MUL)
{
    return binary_op(be, a, ck, 1);
}

CU_IMPL(SUM_TO)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    void *px = cu_ptr(x), *py = cu_ptr(y);
    if (hcga_tensor_numel(x) == 0) {
        CU_LAUNCH(be, OPN(ck), cuk_fill(be->stream, ck->dtype, hcga_tensor_numel(y), py, 0.0));
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
    CU_LAUNCH(be, OPN(ck), cuk_sum_to(be->stream, ck->dtype, &r, px, py));
    return HCGA_OK;
}

/* Any strides; f32 <-> f64 conversion (dtypes from the tensors, not ck). */
CU_IMPL(COPY)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    void *px = cu_ptr(x), *py = cu_ptr(y);
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0 || hcga_contract_same_view(x, y)) return HCGA_OK;
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
        CU_CUDA(be, OPN(ck), "cudaMemcpyAsync",
                cudaMemcpyAsync(py, px, (size_t)n * hcga_dtype_size(x->dtype), cudaMemcpyDeviceToDevice,
                                be->stream));
        return HCGA_OK;
    }
    CU_LAUNCH(be, OPN(ck), cuk_copy(be->stream, x->dtype, y->dtype, &v, n, px, py));
    return HCGA_OK;
}

/* Any dtype: the value (range-checked by the contract) is truncated for integers. */
CU_IMPL(FILL)
{
    const hcga_tensor *y = a->out[0];
    const double s = a->p.scalar.a;
    CU_LAUNCH(be, OPN(ck), cuk_fill(be->stream, y->dtype, hcga_tensor_numel(y), cu_ptr(y),
                                    y->dtype <= HCGA_F64 ? s : trunc(s)));
    return HCGA_OK;
}

/* ---- channel ops ---------------------------------------------------------------------- */

/* x [N, C, ...] -> N, C and the product of the remaining dims. */
static void nc_dims(const hcga_tensor *x, int64_t *N, int64_t *C, int64_t *S)
{
    *N = x->shape[0];
    *C = x->shape[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->shape[i];
}

CU_IMPL(SOFTMAX_FWD)
{
    int64_t N, C, S;
    nc_dims(a->in[0], &N, &C, &S);
    CU_LAUNCH(be, OPN(ck), cuk_softmax_fwd(be->stream, ck->dtype, N, C, S, cu_ptr(a->in[0]),
                                           cu_ptr(a->out[0])));
    return HCGA_OK;
}

CU_IMPL(SOFTMAX_BWD)
{
    int64_t N, C, S;
    nc_dims(a->in[0], &N, &C, &S);
    CU_LAUNCH(be, OPN(ck), cuk_softmax_bwd(be->stream, ck->dtype, N, C, S, cu_ptr(a->in[0]),
                                           cu_ptr(a->in[1]), cu_ptr(a->out[0])));
    return HCGA_OK;
}

/* CONCAT: in x0..x{n-1} -> out y; SPLIT: in dy -> out dx0..dx{n-1}; any dtype. */
static hcga_status cat_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int split)
{
    const hcga_tensor *whole = split ? a->in[0] : a->out[0];
    const hcga_tensor *const *parts = split ? a->out : a->in;
    const int n = split ? a->num_out : a->num_in;
    cuk_parts pp;
    memset(&pp, 0, sizeof pp);
    pp.n = n;
    for (int i = 0; i < n; i++) {
        pp.ptr[i] = cu_ptr(parts[i]);
        pp.c[i] = parts[i]->shape[1];
    }
    int64_t inner = 1;
    for (int d = 2; d < whole->ndim; d++) inner *= whole->shape[d];
    CU_LAUNCH(be, OPN(ck), cuk_concat(be->stream, (int)hcga_dtype_size(whole->dtype), split, &pp,
                                      whole->shape[0], whole->shape[1], inner, cu_ptr(whole)));
    return HCGA_OK;
}

CU_IMPL(CONCAT)
{
    return cat_op(be, a, ck, 0);
}
CU_IMPL(SPLIT)
{
    return cat_op(be, a, ck, 1);
}

CU_IMPL(ARGMAX)
{
    int64_t N, C, S;
    nc_dims(a->in[0], &N, &C, &S);
    CU_LAUNCH(be, OPN(ck), cuk_argmax(be->stream, ck->dtype, N, C, S, cu_ptr(a->in[0]),
                                      (int64_t *)cu_ptr(a->out[0])));
    return HCGA_OK;
}

/* ---- spatial ----------------------------------------------------------------------------- */

static hcga_status upsample_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const hcga_tensor *tin = a->in[0], *tout = a->out[0];
    void *pin = cu_ptr(tin), *pout = cu_ptr(tout);
    const int f = a->p.resize.factor;
    const hcga_tensor *small = bwd ? tout : tin;
    const int64_t nc = small->shape[0] * small->shape[1], H = small->shape[2], W = small->shape[3];
    if (bwd)
        CU_LAUNCH(be, OPN(ck), cuk_upsample_bwd(be->stream, ck->dtype, nc, H, W, f, pin, pout));
    else
        CU_LAUNCH(be, OPN(ck), cuk_upsample_fwd(be->stream, ck->dtype, nc, H, W, f, pin, pout));
    return HCGA_OK;
}

CU_IMPL(UPSAMPLE_NEAREST_FWD)
{
    return upsample_op(be, a, ck, 0);
}
CU_IMPL(UPSAMPLE_NEAREST_BWD)
{
    return upsample_op(be, a, ck, 1);
}

static hcga_status resize_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const hcga_tensor *tin = a->in[0], *tout = a->out[0];
    void *pin = cu_ptr(tin), *pout = cu_ptr(tout);
    const hcga_tensor *small = bwd ? tout : tin, *big = bwd ? tin : tout;
    const int align = a->p.resize.align_corners;
    const int64_t H = small->shape[2], W = small->shape[3], OH = big->shape[2], OW = big->shape[3];
    const int64_t nc = small->shape[0] * small->shape[1];
    if (nc == 0) return HCGA_OK;
    if (OH * OW == 0) { /* nothing flows */
        if (bwd) CU_LAUNCH(be, OPN(ck), cuk_fill(be->stream, ck->dtype, hcga_tensor_numel(tout), pout, 0.0));
        return HCGA_OK;
    }
    if (bwd)
        CU_LAUNCH(be, OPN(ck), cuk_bilinear_bwd(be->stream, ck->dtype, nc, H, W, OH, OW, align, pin, pout));
    else
        CU_LAUNCH(be, OPN(ck), cuk_bilinear_fwd(be->stream, ck->dtype, nc, H, W, OH, OW, align, pin, pout));
    return HCGA_OK;
}

CU_IMPL(RESIZE_BILINEAR_FWD)
{
    return resize_op(be, a, ck, 0);
}
CU_IMPL(RESIZE_BILINEAR_BWD)
{
    return resize_op(be, a, ck, 1);
}

CU_IMPL(GAP_FWD)
{
    const hcga_tensor *x = a->in[0];
    const int64_t HW = x->shape[2] * x->shape[3], nc = x->shape[0] * x->shape[1];
    CU_LAUNCH(be, OPN(ck), cuk_gap_fwd(be->stream, ck->dtype, nc, HW, cu_ptr(x), cu_ptr(a->out[0])));
    return HCGA_OK;
}

CU_IMPL(GAP_BWD)
{
    const hcga_tensor *dx = a->out[0];
    CU_LAUNCH(be, OPN(ck), cuk_gap_bwd(be->stream, ck->dtype, dx->shape[0] * dx->shape[1],
                                       dx->shape[2] * dx->shape[3], cu_ptr(a->in[0]), cu_ptr(dx)));
    return HCGA_OK;
}

/* ---- reductions -------------------------------------------------------------------------- */

static int red_kind(int kind)
{
    return kind == HCGA_REDUCE_SUM ? CUK_RED_SUM : kind == HCGA_REDUCE_MEAN ? CUK_RED_MEAN : CUK_RED_ABS_MEAN;
}

CU_IMPL(REDUCE)
{
    const char *op = OPN(ck);
    const int64_t n = hcga_tensor_numel(a->in[0]);
    void *px = cu_ptr(a->in[0]), *py = cu_ptr(a->out[0]);
    if (n == 0) { /* SUM of nothing (the contract refuses the means) */
        CU_LAUNCH(be, op, cuk_fill(be->stream, ck->dtype, 1, py, 0.0));
        return HCGA_OK;
    }
    CU_TRY(cu_ensure_scratch(be, op, CUK_REDUCE_SCRATCH));
    CU_LAUNCH(be, op, cuk_reduce_all(be->stream, ck->dtype, red_kind(a->p.reduce.kind), n, px, py, be->scratch));
    return HCGA_OK;
}

CU_IMPL(REDUCE_BWD)
{
    CU_LAUNCH(be, OPN(ck), cuk_reduce_bwd(be->stream, ck->dtype, red_kind(a->p.reduce.kind),
                                          hcga_tensor_numel(a->in[0]), cu_ptr(a->in[0]),
                                          cu_ptr(a->in[1]), cu_ptr(a->out[0])));
    return HCGA_OK;
}

/* ---- losses ---------------------------------------------------------------------------------- */

/* Labels outside their range cannot be seen on the host: the kernels raise
 * the error flag with the op's code (cu_wait_and_check reports it). */
static hcga_status ce_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const char *op = OPN(ck);
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], C = x->shape[1];
    const void *px = cu_ptr(x), *plab = cu_ptr(a->in[1]);
    void *pout = cu_ptr(a->out[0]);
    const double eps = a->p.loss.eps;
    if (bwd) {
        CU_LAUNCH(be, op, cuk_ce_ls_bwd(be->stream, ck->dtype, N, C, px, (const int64_t *)plab,
                                        cu_ptr(a->in[2]), eps, pout, be->dflag, cu_flag_code(ck->op)));
    } else {
        CU_TRY(cu_ensure_scratch(be, op, (size_t)cuk_ce_ls_scratch(ck->dtype, N)));
        CU_LAUNCH(be, op, cuk_ce_ls_fwd(be->stream, ck->dtype, N, C, px, (const int64_t *)plab, eps,
                                        pout, be->scratch, be->dflag, cu_flag_code(ck->op)));
    }
    return HCGA_OK;
}

CU_IMPL(CE_LS_FWD)
{
    return ce_op(be, a, ck, 0);
}
CU_IMPL(CE_LS_BWD)
{
    return ce_op(be, a, ck, 1);
}

static hcga_status pixce_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const char *op = OPN(ck);
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], K = x->shape[1], S = x->shape[2] * x->shape[3];
    const void *px = cu_ptr(x), *plab = cu_ptr(a->in[1]);
    void *pout = cu_ptr(a->out[0]);
    const int64_t ign = a->p.loss.ignore_label;
    CU_TRY(cu_ensure_scratch(be, op, (size_t)cuk_pixel_ce_scratch()));
    if (bwd)
        CU_LAUNCH(be, op, cuk_pixel_ce_bwd(be->stream, ck->dtype, N, K, S, px, (const int64_t *)plab,
                                           ign, cu_ptr(a->in[2]), pout, be->scratch, be->dflag,
                                           cu_flag_code(ck->op)));
    else
        CU_LAUNCH(be, op, cuk_pixel_ce_fwd(be->stream, ck->dtype, N, K, S, px, (const int64_t *)plab,
                                           ign, pout, be->scratch, be->dflag, cu_flag_code(ck->op)));
    return HCGA_OK;
}

CU_IMPL(PIXEL_CE_FWD)
{
    return pixce_op(be, a, ck, 0);
}
CU_IMPL(PIXEL_CE_BWD)
{
    return pixce_op(be, a, ck, 1);
}

/* The kernels keep an N x N distance matrix in scratch. */
#define CU_TRIPLET_MAX_N 65536
static hcga_status triplet_limit(hcga_backend *be, const hcga_checked *ck, int64_t N)
{
    if (N > CU_TRIPLET_MAX_N)
        return cu_err(be, HCGA_ERR_UNSUPPORTED, "%s: N = %lld is too large for the N x N distance matrix",
                      OPN(ck), (long long)N);
    return HCGA_OK;
}

CU_IMPL(TRIPLET_FWD)
{
    const char *op = OPN(ck);
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    CU_TRY(triplet_limit(be, ck, N));
    CU_TRY(cu_ensure_scratch(be, op, (size_t)cuk_triplet_scratch(ck->dtype, N)));
    CU_LAUNCH(be, op, cuk_triplet_fwd(be->stream, ck->dtype, N, D, cu_ptr(x), (const int64_t *)cu_ptr(a->in[1]),
                                      a->p.loss.margin, cu_ptr(a->out[0]), (int64_t *)cu_ptr(a->out[1]),
                                      be->scratch));
    return HCGA_OK;
}

CU_IMPL(TRIPLET_BWD)
{
    const char *op = OPN(ck);
    const hcga_tensor *x = a->in[0];
    const int64_t N = x->shape[0], D = x->shape[1];
    CU_TRY(triplet_limit(be, ck, N));
    CU_TRY(cu_ensure_scratch(be, op, (size_t)cuk_triplet_scratch(ck->dtype, N)));
    CU_LAUNCH(be, op, cuk_triplet_bwd(be->stream, ck->dtype, N, D, cu_ptr(x), (const int64_t *)cu_ptr(a->in[1]),
                                      cu_ptr(a->in[2]), a->p.loss.margin, cu_ptr(a->out[0]), be->scratch,
                                      be->dflag, cu_flag_code(HCGA_OP_TRIPLET_BWD)));
    return HCGA_OK;
}

static hcga_status shift_op(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, int bwd)
{
    const char *op = OPN(ck);
    const hcga_tensor *x = a->in[0];
    void *px = cu_ptr(x), *pdl = bwd ? cu_ptr(a->in[1]) : NULL, *pout = cu_ptr(a->out[0]);
    const hcga_shift_params *p = &a->p.shift;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t vn = N - (p->dn ? 1 : 0), vh = H - (p->dh ? 1 : 0), vw = W - (p->dw ? 1 : 0);
    const int64_t count = (vn > 0 ? vn : 0) * C * (vh > 0 ? vh : 0) * (vw > 0 ? vw : 0);
    if (bwd) {
        if (count == 0) {
            CU_LAUNCH(be, op, cuk_fill(be->stream, ck->dtype, hcga_tensor_numel(x), pout, 0.0));
            return HCGA_OK;
        }
        CU_LAUNCH(be, op, cuk_shift_l1_bwd(be->stream, ck->dtype, N, C, H, W, p->dn, p->dh, p->dw, px,
                                           pdl, pout));
    } else {
        if (count == 0) {
            CU_LAUNCH(be, op, cuk_fill(be->stream, ck->dtype, 1, pout, 0.0));
            return HCGA_OK;
        }
        CU_TRY(cu_ensure_scratch(be, op, (size_t)cuk_shift_l1_scratch()));
        CU_LAUNCH(be, op, cuk_shift_l1_fwd(be->stream, ck->dtype, N, C, H, W, p->dn, p->dh, p->dw, px,
                                           pout, be->scratch));
    }
    return HCGA_OK;
}

CU_IMPL(SHIFT_L1_FWD)
{
    return shift_op(be, a, ck, 0);
}
CU_IMPL(SHIFT_L1_BWD)
{
    return shift_op(be, a, ck, 1);
}

/* ---- optimizers --------------------------------------------------------------------------------- */

CU_IMPL(ADAM_STEP)
{
    const hcga_tensor *g = a->in[0];
    const hcga_optim_params *o = &a->p.optim;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2s = sqrt(1.0 - pow(o->beta2, (double)o->step)); /* > 0: checked by the contract */
    CU_LAUNCH(be, OPN(ck), cuk_adam(be->stream, ck->dtype, hcga_tensor_numel(g), cu_ptr(g),
                                    cu_ptr(a->out[HCGA_ADAM_PARAM]), cu_ptr(a->out[HCGA_ADAM_M]),
                                    cu_ptr(a->out[HCGA_ADAM_V]), o->lr / bc1, o->beta1, o->beta2, o->eps,
                                    o->weight_decay, bc2s));
    return HCGA_OK;
}

CU_IMPL(SGD_STEP)
{
    const hcga_tensor *g = a->in[0];
    const hcga_optim_params *o = &a->p.optim;
    CU_LAUNCH(be, OPN(ck), cuk_sgd(be->stream, ck->dtype, hcga_tensor_numel(g), cu_ptr(g),
                                   cu_ptr(a->out[HCGA_SGD_PARAM]), cu_ptr(a->out[HCGA_SGD_BUF]), o->lr,
                                   o->momentum, o->weight_decay, o->step == 1));
    return HCGA_OK;
}

/* ---- CAST (ABI 1.1) ------------------------------------------------------------------- */

/* x and y dense, same shape, floating; equal dtypes are a copy. */
CU_IMPL(CAST)
{
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    void *px = cu_ptr(x), *py = cu_ptr(y);
    const int64_t n = hcga_tensor_numel(x);
    if (n == 0) return HCGA_OK;
    if (x->dtype == y->dtype) {
        if (px == py) return HCGA_OK;
        CU_CUDA(be, OPN(ck), "cudaMemcpyAsync",
                cudaMemcpyAsync(py, px, (size_t)n * hcga_dtype_size(x->dtype), cudaMemcpyDeviceToDevice,
                                be->stream));
        return HCGA_OK;
    }
    CU_LAUNCH(be, OPN(ck), cuk_cast(be->stream, x->dtype, y->dtype, n, px, py));
    return HCGA_OK;
}

/* ---- batch norm from summed statistics (ABI 1.2; kernels in k_bnstats.cu) -------------- */

CU_IMPL(BN_STATS)
{
    CU_LAUNCH(be, OPN(ck), cuk_bn_sums(be->stream, ck->dtype, ck->bn_N, ck->bn_C, ck->bn_HW,
                                       cu_ptr(a->in[HCGA_BN_X]), cu_ptr(a->out[HCGA_BNS_SUM]),
                                       cu_ptr(a->out[HCGA_BNS_SUMSQ])));
    return HCGA_OK;
}

/* The statistics from the sums, then y with them (as BN_FWD_TRAIN's y). */
CU_IMPL(BN_FWD_FROM_STATS)
{
    const char *op = OPN(ck);
    void *psm = cu_ptr(a->out[HCGA_BN_SAVE_MEAN]), *psi = cu_ptr(a->out[HCGA_BN_SAVE_INVSTD]);
    CU_LAUNCH(be, op, cuk_bn_from_sums(be->stream, ck->dtype, ck->bn_C, a->p.bn.count,
                                       cu_ptr(a->in[HCGA_BNF_SUM]), cu_ptr(a->in[HCGA_BNF_SUMSQ]),
                                       a->p.bn.eps, a->p.bn.momentum, psm, psi,
                                       cu_ptr(a->out[HCGA_BN_RMEAN]), cu_ptr(a->out[HCGA_BN_RVAR])));
    CU_LAUNCH(be, op, cuk_bn_apply(be->stream, ck->dtype, ck->bn_N, ck->bn_C, ck->bn_HW,
                                   cu_ptr(a->in[HCGA_BN_X]), cu_ptr(a->in[HCGA_BN_GAMMA]),
                                   cu_ptr(a->in[HCGA_BN_BETA]), psm, psi, cu_ptr(a->out[HCGA_BN_Y])));
    return HCGA_OK;
}

CU_IMPL(BN_BWD_FROM_STATS)
{
    CU_LAUNCH(be, OPN(ck),
              cuk_bn_bwd_dx(be->stream, ck->dtype, ck->bn_N, ck->bn_C, ck->bn_HW, a->p.bn.count,
                            cu_ptr(a->in[HCGA_BNB_X]), cu_ptr(a->in[HCGA_BNB_DY]),
                            cu_ptr(a->in[HCGA_BNB_GAMMA]), cu_ptr(a->in[HCGA_BNB_MEAN]),
                            cu_ptr(a->in[HCGA_BNB_INVSTD]), cu_ptr(a->in[HCGA_BNB_SUM_DY]),
                            cu_ptr(a->in[HCGA_BNB_SUM_DY_XHAT]), cu_ptr(a->out[HCGA_BNB_DX])));
    return HCGA_OK;
}
