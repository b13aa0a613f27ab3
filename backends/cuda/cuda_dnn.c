/*
 * cuda_dnn.c - the library-backed ops: convolution and batch normalisation
 * through cuDNN 9's legacy API, GEMM through cuBLAS.
 *
 * Convolution algorithms are chosen once per shape (kind, dtype, math mode,
 * N C H W K R S, padding, stride, dilation) and cached in a small open-
 * addressing hash table.  By default the choice comes from the
 * cudnnGet*Algorithm_v7 heuristics (a pure function of the shape, so every
 * run picks the same algorithm) and only algorithms whose determinism is
 * CUDNN_DETERMINISTIC are accepted; option algo=find times candidates with
 * cudnnFind*Algorithm instead, deterministic=0 admits the rest.  F32 runs
 * with CUDNN_FMA_MATH (no TF32) unless tf32=1.  All convolutions share one
 * workspace that grows to the largest size needed (bounded by
 * workspace_mb).
 *
 * Batch norm uses cudnnBatchNormalization{ForwardTraining,ForwardInference,
 * Backward} in CUDNN_BATCHNORM_SPATIAL mode.  cuDNN's conventions match the
 * plugin ABI (and PyTorch): the running variance is updated with the
 * unbiased batch variance, exponentialAverageFactor = momentum, and
 * resultSaveInvVariance is 1/sqrt(biased var + eps).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_kernels.h"

/* ---- helpers ------------------------------------------------------------------- */

static cudnnDataType_t dnn_type(int dt)
{
    return dt == HCGA_F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

/* alpha = 1 and beta = 0 in the scaling type cuDNN expects for dt. */
typedef struct scale_pair {
    float f1, f0;
    double d1, d0;
} scale_pair;
static const scale_pair k_scale = {1.0f, 0.0f, 1.0, 0.0};
static const void *one_of(int dt)
{
    return dt == HCGA_F64 ? (const void *)&k_scale.d1 : (const void *)&k_scale.f1;
}
static const void *zero_of(int dt)
{
    return dt == HCGA_F64 ? (const void *)&k_scale.d0 : (const void *)&k_scale.f0;
}

static int fits_int(int64_t v)
{
    return v >= 0 && v <= INT_MAX;
}

/* ---- convolution geometry ------------------------------------------------------------ */

typedef struct conv_dims {
    int64_t N, C, H, W, K, R, S, P, Q;
    int ph, pw, sh, sw, dh, dw;
} conv_dims;

/* img = x or dx [N,C,H,W], res = y or dy [N,K,P,Q], w [K,C,R,S]. */
static hcga_status conv_check(cu_ctx *c, const hcga_tensor *img, const char *iname,
                              const hcga_tensor *w, const hcga_tensor *res, const char *rname,
                              conv_dims *d)
{
    const hcga_conv_params *p = &c->a->p.conv;
    CU_TRY(cu_ndim(c, img, iname, 4, "[N,C,H,W]"));
    CU_TRY(cu_ndim(c, w, "w", 4, "[K,C,R,S]"));
    CU_TRY(cu_ndim(c, res, rname, 4, "[N,K,P,Q]"));
    if (p->stride_h < 1 || p->stride_w < 1)
        CU_BAD(c, "%s: stride (%d,%d) must be >= 1", c->op, p->stride_h, p->stride_w);
    if (p->dilation_h < 1 || p->dilation_w < 1)
        CU_BAD(c, "%s: dilation (%d,%d) must be >= 1", c->op, p->dilation_h, p->dilation_w);
    if (p->pad_h < 0 || p->pad_w < 0)
        CU_BAD(c, "%s: padding (%d,%d) must be >= 0", c->op, p->pad_h, p->pad_w);
    d->N = img->shape[0];
    d->C = img->shape[1];
    d->H = img->shape[2];
    d->W = img->shape[3];
    d->K = w->shape[0];
    d->R = w->shape[2];
    d->S = w->shape[3];
    d->ph = p->pad_h;
    d->pw = p->pad_w;
    d->sh = p->stride_h;
    d->sw = p->stride_w;
    d->dh = p->dilation_h;
    d->dw = p->dilation_w;
    if (w->shape[1] != d->C)
        CU_BAD(c, "%s: w has %lld input channels but %s has C=%lld", c->op,
               (long long)w->shape[1], iname, (long long)d->C);
    if (d->C < 1 || d->K < 1 || d->R < 1 || d->S < 1 || d->H < 1 || d->W < 1)
        CU_BAD(c, "%s: C, K, R, S, H, W must all be >= 1", c->op);
    int64_t eh = d->H + 2 * (int64_t)d->ph - (int64_t)d->dh * (d->R - 1) - 1;
    int64_t ew = d->W + 2 * (int64_t)d->pw - (int64_t)d->dw * (d->S - 1) - 1;
    if (eh < 0 || ew < 0)
        CU_BAD(c, "%s: the %lldx%lld filter (dilation %d,%d) is larger than the padded %lldx%lld input",
               c->op, (long long)d->R, (long long)d->S, d->dh, d->dw,
               (long long)(d->H + 2 * d->ph), (long long)(d->W + 2 * d->pw));
    d->P = eh / d->sh + 1;
    d->Q = ew / d->sw + 1;
    CU_SHAPE(c, res, rname, d->N, d->K, d->P, d->Q);
    /* the legacy cuDNN API takes int dimensions and int element counts */
    if (!fits_int(d->N * d->C * d->H * d->W) || !fits_int(d->N * d->K * d->P * d->Q) ||
        !fits_int(d->K * d->C * d->R * d->S))
        CU_BAD(c, "%s: a tensor has more than %d elements (cuDNN's legacy API limit)", c->op, INT_MAX);
    return HCGA_OK;
}

/* Set xd/wd/yd/cd for the geometry; yd describes [N,K,P,Q]. */
static hcga_status conv_descs(cu_ctx *c, const conv_dims *d)
{
    hcga_backend *be = c->be;
    cudnnDataType_t t = dnn_type(c->dt);
    CU_DNN(be, c->op, "cudnnSetTensor4dDescriptor",
           cudnnSetTensor4dDescriptor(be->xd, CUDNN_TENSOR_NCHW, t, (int)d->N, (int)d->C, (int)d->H, (int)d->W));
    CU_DNN(be, c->op, "cudnnSetTensor4dDescriptor",
           cudnnSetTensor4dDescriptor(be->yd, CUDNN_TENSOR_NCHW, t, (int)d->N, (int)d->K, (int)d->P, (int)d->Q));
    CU_DNN(be, c->op, "cudnnSetFilter4dDescriptor",
           cudnnSetFilter4dDescriptor(be->wd, t, CUDNN_TENSOR_NCHW, (int)d->K, (int)d->C, (int)d->R, (int)d->S));
    CU_DNN(be, c->op, "cudnnSetConvolution2dDescriptor",
           cudnnSetConvolution2dDescriptor(be->cd, d->ph, d->pw, d->sh, d->sw, d->dh, d->dw,
                                           CUDNN_CROSS_CORRELATION, t));
    return HCGA_OK;
}

/* ---- algorithm cache --------------------------------------------------------------- */

enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 };

static uint64_t key_hash(const cu_conv_key *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static cu_conv_entry *cache_find(hcga_backend *be, const cu_conv_key *k)
{
    if (!be->algos) return NULL;
    size_t mask = be->algo_cap - 1;
    for (size_t i = (size_t)key_hash(k) & mask;; i = (i + 1) & mask) {
        cu_conv_entry *e = &be->algos[i];
        if (!e->used) return NULL;
        if (memcmp(&e->key, k, sizeof *k) == 0) return e;
    }
}

static int cache_put(hcga_backend *be, const cu_conv_entry *ent)
{
    if ((be->algo_count + 1) * 2 > be->algo_cap) {
        size_t cap = be->algo_cap ? be->algo_cap * 2 : 64;
        cu_conv_entry *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < be->algo_cap; i++) {
            if (!be->algos[i].used) continue;
            size_t j = (size_t)key_hash(&be->algos[i].key) & (cap - 1);
            while (t[j].used) j = (j + 1) & (cap - 1);
            t[j] = be->algos[i];
        }
        free(be->algos);
        be->algos = t;
        be->algo_cap = cap;
    }
    size_t mask = be->algo_cap - 1;
    size_t j = (size_t)key_hash(&ent->key) & mask;
    while (be->algos[j].used) j = (j + 1) & mask;
    be->algos[j] = *ent;
    be->algos[j].used = 1;
    be->algo_count++;
    return 0;
}

void cu_dnn_release(hcga_backend *be)
{
    free(be->algos);
    be->algos = NULL;
    be->algo_cap = be->algo_count = 0;
}

/* The three perf structs of cuDNN share one layout; this is ours. */
typedef struct perf_row {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
} perf_row;

#define MAX_ALGOS 16

static const char *kind_call(int kind, int find)
{
    static const char *const heur[3] = {"cudnnGetConvolutionForwardAlgorithm_v7",
                                        "cudnnGetConvolutionBackwardDataAlgorithm_v7",
                                        "cudnnGetConvolutionBackwardFilterAlgorithm_v7"};
    static const char *const fnd[3] = {"cudnnFindConvolutionForwardAlgorithm",
                                       "cudnnFindConvolutionBackwardDataAlgorithm",
                                       "cudnnFindConvolutionBackwardFilterAlgorithm"};
    return find ? fnd[kind] : heur[kind];
}

static cudnnStatus_t query_algos(hcga_backend *be, int kind, perf_row *rows, int *n)
{
    cudnnStatus_t st;
    int got = 0;
    *n = 0;
    if (kind == CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t p[MAX_ALGOS];
        st = be->algo_find
                 ? cudnnFindConvolutionForwardAlgorithm(be->dnn, be->xd, be->wd, be->cd, be->yd, MAX_ALGOS, &got, p)
                 : cudnnGetConvolutionForwardAlgorithm_v7(be->dnn, be->xd, be->wd, be->cd, be->yd, MAX_ALGOS, &got, p);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got && i < MAX_ALGOS; i++)
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType};
    } else if (kind == CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t p[MAX_ALGOS];
        st = be->algo_find
                 ? cudnnFindConvolutionBackwardDataAlgorithm(be->dnn, be->wd, be->yd, be->cd, be->xd, MAX_ALGOS, &got, p)
                 : cudnnGetConvolutionBackwardDataAlgorithm_v7(be->dnn, be->wd, be->yd, be->cd, be->xd, MAX_ALGOS, &got, p);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got && i < MAX_ALGOS; i++)
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType};
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t p[MAX_ALGOS];
        st = be->algo_find
                 ? cudnnFindConvolutionBackwardFilterAlgorithm(be->dnn, be->xd, be->yd, be->cd, be->wd, MAX_ALGOS, &got, p)
                 : cudnnGetConvolutionBackwardFilterAlgorithm_v7(be->dnn, be->xd, be->yd, be->cd, be->wd, MAX_ALGOS, &got, p);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got && i < MAX_ALGOS; i++)
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType};
    }
    return st;
}

static cudnnStatus_t ws_size(hcga_backend *be, int kind, int algo, size_t *bytes)
{
    switch (kind) {
    case CONV_FWD:
        return cudnnGetConvolutionForwardWorkspaceSize(be->dnn, be->xd, be->wd, be->cd, be->yd,
                                                       (cudnnConvolutionFwdAlgo_t)algo, bytes);
    case CONV_BWD_DATA:
        return cudnnGetConvolutionBackwardDataWorkspaceSize(be->dnn, be->wd, be->yd, be->cd, be->xd,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    default:
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(be->dnn, be->xd, be->yd, be->cd, be->wd,
                                                              (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
    }
}

/* Choose (or recall) the algorithm for the descriptors just set, leave the
 * math type on cd, and make sure the workspace is large enough. */
static hcga_status conv_algo(cu_ctx *c, int kind, const conv_dims *d, cu_conv_entry *out)
{
    hcga_backend *be = c->be;
    const int no_tf32 = c->dt == HCGA_F32 && !be->tf32;
    cu_conv_key k;
    memset(&k, 0, sizeof k);
    k.kind = kind;
    k.dtype = c->dt;
    k.math_mode = (be->tf32 ? 1 : 0) | (be->deterministic ? 2 : 0) | (be->algo_find ? 4 : 0);
    k.n = (int32_t)d->N;
    k.c = (int32_t)d->C;
    k.h = (int32_t)d->H;
    k.w = (int32_t)d->W;
    k.k = (int32_t)d->K;
    k.r = (int32_t)d->R;
    k.s = (int32_t)d->S;
    k.pad_h = d->ph;
    k.pad_w = d->pw;
    k.stride_h = d->sh;
    k.stride_w = d->sw;
    k.dil_h = d->dh;
    k.dil_w = d->dw;

    cu_conv_entry *hit = cache_find(be, &k);
    if (hit) {
        *out = *hit;
        CU_DNN(be, c->op, "cudnnSetConvolutionMathType",
               cudnnSetConvolutionMathType(be->cd, (cudnnMathType_t)hit->math_type));
        return cu_ensure_workspace(be, c->op, hit->ws_bytes);
    }

    /* Query with the math type we are willing to run. */
    CU_DNN(be, c->op, "cudnnSetConvolutionMathType",
           cudnnSetConvolutionMathType(be->cd, no_tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
    if (be->algo_find) {
        /* cudnnFind* runs the candidates (synchronously, on cuDNN's stream). */
        CU_CUDA(be, c->op, "cudaStreamSynchronize", cudaStreamSynchronize(be->stream));
    }
    perf_row rows[MAX_ALGOS];
    int n = 0;
    CU_DNN(be, c->op, kind_call(kind, be->algo_find), query_algos(be, kind, rows, &n));

    int tried = 0;
    for (int i = 0; i < n; i++) {
        const perf_row *r = &rows[i];
        if (r->status != CUDNN_STATUS_SUCCESS) continue;
        if (be->deterministic && r->det != CUDNN_DETERMINISTIC) continue;
        if (no_tf32 && (r->math == CUDNN_TENSOR_OP_MATH || r->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
            continue;
        cudnnMathType_t run = no_tf32 ? CUDNN_FMA_MATH : r->math;
        tried++;
        if (cudnnSetConvolutionMathType(be->cd, run) != CUDNN_STATUS_SUCCESS) continue;
        size_t bytes = 0;
        if (ws_size(be, kind, r->algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
        if (bytes > be->ws_cap) continue;
        cu_conv_entry e;
        memset(&e, 0, sizeof e);
        e.key = k;
        e.algo = r->algo;
        e.math_type = (int)run;
        e.ws_bytes = bytes;
        if (cache_put(be, &e) != 0)
            return cu_err(be, HCGA_ERR_NOMEM, "%s: out of host memory for the algorithm cache", c->op);
        *out = e;
        return cu_ensure_workspace(be, c->op, bytes);
    }
    return cu_err(be, HCGA_ERR_UNSUPPORTED,
                  "%s: no %scuDNN algorithm for N=%lld C=%lld H=%lld W=%lld K=%lld R=%lld S=%lld "
                  "pad=%d,%d stride=%d,%d (%d candidates, %d usable, workspace_mb=%zu)",
                  c->op, be->deterministic ? "deterministic " : "", (long long)d->N, (long long)d->C,
                  (long long)d->H, (long long)d->W, (long long)d->K, (long long)d->R,
                  (long long)d->S, d->ph, d->pw, d->sh, d->sw, n, tried, be->ws_cap >> 20);
}

/* dbias[K] = sum of dy over N, P, Q (our deterministic reduction). */
static hcga_status bias_grad(cu_ctx *c, const conv_dims *d, const void *dy, void *db)
{
    cuk_red r;
    memset(&r, 0, sizeof r);
    r.nk = 1;
    r.kshape[0] = d->K;
    r.kstride[0] = d->P * d->Q;
    r.nr = 2;
    r.rshape[0] = d->N;
    r.rstride[0] = d->K * d->P * d->Q;
    r.rshape[1] = d->P * d->Q;
    r.rstride[1] = 1;
    r.ny = d->K;
    r.nred = d->N * d->P * d->Q;
    CU_LAUNCH(c->be, c->op, cuk_sum_to(c->be->stream, c->dt, &r, dy, db));
    return HCGA_OK;
}

/* ---- convolution ops ------------------------------------------------------------------- */

hcga_status cu_op_conv2d_fwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_CONV2D_FWD, 2, 3, 1, 1));
    const hcga_tensor *x, *w, *b, *y;
    void *px, *pw, *pb, *py;
    CU_TRY(cu_in(c, HCGA_CONV_X, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, HCGA_CONV_W, "w", CU_K_FLOAT, 0, &w, &pw));
    CU_TRY(cu_in(c, HCGA_CONV_BIAS, "bias", CU_K_FLOAT, 1, &b, &pb));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    conv_dims d;
    CU_TRY(conv_check(c, x, "x", w, y, "y", &d));
    if (b) CU_SHAPE(c, b, "bias", d.K);
    CU_TRY(cu_noalias(c, 0));
    if (d.N == 0) return HCGA_OK;
    CU_TRY(conv_descs(c, &d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_FWD, &d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionForward",
           cudnnConvolutionForward(be->dnn, one_of(c->dt), be->xd, px, be->wd, pw, be->cd,
                                   (cudnnConvolutionFwdAlgo_t)e.algo, be->ws, e.ws_bytes,
                                   zero_of(c->dt), be->yd, py));
    if (b) {
        CU_DNN(be, c->op, "cudnnSetTensor4dDescriptor",
               cudnnSetTensor4dDescriptor(be->bd, CUDNN_TENSOR_NCHW, dnn_type(c->dt), 1, (int)d.K, 1, 1));
        CU_DNN(be, c->op, "cudnnAddTensor",
               cudnnAddTensor(be->dnn, one_of(c->dt), be->bd, pb, one_of(c->dt), be->yd, py));
    }
    return HCGA_OK;
}

hcga_status cu_op_conv2d_bwd_data(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_CONV2D_BWD_DATA, 2, 2, 1, 1));
    const hcga_tensor *dy, *w, *dx;
    void *pdy, *pw, *pdx;
    CU_TRY(cu_in(c, 0, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_in(c, 1, "w", CU_K_FLOAT, 0, &w, &pw));
    CU_TRY(cu_out(c, 0, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    conv_dims d;
    CU_TRY(conv_check(c, dx, "dx", w, dy, "dy", &d));
    CU_TRY(cu_noalias(c, 0));
    if (d.N == 0) return HCGA_OK;
    CU_TRY(conv_descs(c, &d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_BWD_DATA, &d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionBackwardData",
           cudnnConvolutionBackwardData(be->dnn, one_of(c->dt), be->wd, pw, be->yd, pdy, be->cd,
                                        (cudnnConvolutionBwdDataAlgo_t)e.algo, be->ws, e.ws_bytes,
                                        zero_of(c->dt), be->xd, pdx));
    return HCGA_OK;
}

hcga_status cu_op_conv2d_bwd_filter(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_CONV2D_BWD_FILTER, 2, 2, 1, 2));
    const hcga_tensor *x, *dy, *dw, *db;
    void *px, *pdy, *pdw, *pdb;
    CU_TRY(cu_in(c, 0, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, 1, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_out(c, 0, "dw", CU_K_FLOAT, 0, &dw, &pdw));
    CU_TRY(cu_out(c, 1, "dbias", CU_K_FLOAT, 1, &db, &pdb));
    conv_dims d;
    CU_TRY(conv_check(c, x, "x", dw, dy, "dy", &d));
    if (db) CU_SHAPE(c, db, "dbias", d.K);
    CU_TRY(cu_noalias(c, 0));
    if (d.N == 0) { /* nothing flows: zero gradients */
        CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, hcga_tensor_numel(dw), pdw, 0.0));
        if (db) CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, d.K, pdb, 0.0));
        return HCGA_OK;
    }
    CU_TRY(conv_descs(c, &d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_BWD_FILTER, &d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionBackwardFilter",
           cudnnConvolutionBackwardFilter(be->dnn, one_of(c->dt), be->xd, px, be->yd, pdy, be->cd,
                                          (cudnnConvolutionBwdFilterAlgo_t)e.algo, be->ws,
                                          e.ws_bytes, zero_of(c->dt), be->wd, pdw));
    if (db) CU_TRY(bias_grad(c, &d, pdy, pdb));
    return HCGA_OK;
}

/* ---- batch normalisation ------------------------------------------------------------------ */

/* x [N,C] or [N,C,H,W] -> xd as N,C,H,W (H = W = 1 for 2-D), bnd derived. */
static hcga_status bn_check(cu_ctx *c, const hcga_tensor *x, int64_t *N, int64_t *C, int64_t *HW)
{
    if (x->ndim != 2 && x->ndim != 4) {
        char b[96];
        CU_BAD(c, "%s: x must be [N,C] or [N,C,H,W], got %s", c->op, cu_shape_str(x, b, sizeof b));
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *HW = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    const hcga_bn_params *p = &c->a->p.bn;
    CU_TRY(cu_finite(c, p->eps, "bn.eps"));
    CU_TRY(cu_finite(c, p->momentum, "bn.momentum"));
    if (p->eps < CUDNN_BN_MIN_EPSILON) CU_BAD(c, "%s: bn.eps (%g) must be >= %g", c->op, p->eps, (double)CUDNN_BN_MIN_EPSILON);
    if (!fits_int(hcga_tensor_numel(x)))
        CU_BAD(c, "%s: x has more than %d elements (cuDNN's legacy API limit)", c->op, INT_MAX);
    return HCGA_OK;
}

static hcga_status bn_descs(cu_ctx *c, const hcga_tensor *x)
{
    hcga_backend *be = c->be;
    int n = (int)x->shape[0], ch = (int)x->shape[1];
    int h = x->ndim == 4 ? (int)x->shape[2] : 1, w = x->ndim == 4 ? (int)x->shape[3] : 1;
    CU_DNN(be, c->op, "cudnnSetTensor4dDescriptor",
           cudnnSetTensor4dDescriptor(be->xd, CUDNN_TENSOR_NCHW, dnn_type(c->dt), n, ch, h, w));
    CU_DNN(be, c->op, "cudnnDeriveBNTensorDescriptor",
           cudnnDeriveBNTensorDescriptor(be->bnd, be->xd, CUDNN_BATCHNORM_SPATIAL));
    return HCGA_OK;
}

/* An input that is the very view of an output (allowed for batch norm, as
 * for the other per-element ops) is copied to scratch first: cuDNN does not
 * document in-place training or backward passes.  ins[i] is replaced. */
static hcga_status detach_aliased(cu_ctx *c, void **ins)
{
    hcga_backend *be = c->be;
    const hcga_op_args *a = c->a;
    size_t need[HCGA_MAX_OP_IN] = {0}, total = 0;
    for (int i = 0; i < a->num_in; i++) {
        if (!a->in[i]) continue;
        for (int o = 0; o < a->num_out; o++)
            if (a->out[o] && cu_same_view(a->in[i], a->out[o])) {
                need[i] = (size_t)hcga_tensor_numel(a->in[i]) * hcga_dtype_size(a->in[i]->dtype);
                total += (need[i] + 255) & ~(size_t)255;
                break;
            }
    }
    if (total == 0) return HCGA_OK;
    CU_TRY(cu_ensure_scratch(be, c->op, total));
    size_t off = 0;
    for (int i = 0; i < a->num_in; i++) {
        if (!need[i]) continue;
        void *dst = (char *)be->scratch + off;
        CU_CUDA(be, c->op, "cudaMemcpyAsync",
                cudaMemcpyAsync(dst, ins[i], need[i], cudaMemcpyDeviceToDevice, be->stream));
        ins[i] = dst;
        off += (need[i] + 255) & ~(size_t)255;
    }
    return HCGA_OK;
}

hcga_status cu_op_bn_fwd_train(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_BN_FWD_TRAIN, 3, 3, 5, 5));
    const hcga_tensor *x, *g, *b, *y, *sm, *si, *rm, *rv;
    void *px, *pg, *pb, *py, *psm, *psi, *prm, *prv;
    CU_TRY(cu_in(c, HCGA_BN_X, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, HCGA_BN_GAMMA, "gamma", CU_K_FLOAT, 0, &g, &pg));
    CU_TRY(cu_in(c, HCGA_BN_BETA, "beta", CU_K_FLOAT, 0, &b, &pb));
    CU_TRY(cu_out(c, HCGA_BN_Y, "y", CU_K_FLOAT, 0, &y, &py));
    CU_TRY(cu_out(c, HCGA_BN_SAVE_MEAN, "save_mean", CU_K_FLOAT, 0, &sm, &psm));
    CU_TRY(cu_out(c, HCGA_BN_SAVE_INVSTD, "save_invstd", CU_K_FLOAT, 0, &si, &psi));
    CU_TRY(cu_out(c, HCGA_BN_RMEAN, "running_mean", CU_K_FLOAT, 0, &rm, &prm));
    CU_TRY(cu_out(c, HCGA_BN_RVAR, "running_var", CU_K_FLOAT, 0, &rv, &prv));
    int64_t N, C, HW;
    CU_TRY(bn_check(c, x, &N, &C, &HW));
    CU_TRY(cu_same(c, y, "y", x, "x"));
    CU_SHAPE(c, g, "gamma", C);
    CU_SHAPE(c, b, "beta", C);
    CU_SHAPE(c, sm, "save_mean", C);
    CU_SHAPE(c, si, "save_invstd", C);
    CU_SHAPE(c, rm, "running_mean", C);
    CU_SHAPE(c, rv, "running_var", C);
    if (C > 0 && N * HW < 2)
        CU_BAD(c, "%s: needs more than 1 value per channel in training (N*H*W = %lld)", c->op,
               (long long)(N * HW));
    CU_TRY(cu_noalias(c, 1));
    if (C == 0) return HCGA_OK;
    void *ins[3] = {px, pg, pb};
    CU_TRY(detach_aliased(c, ins));
    px = ins[0];
    pg = ins[1];
    pb = ins[2];
    CU_TRY(bn_descs(c, x));
    CU_DNN(be, c->op, "cudnnBatchNormalizationForwardTraining",
           cudnnBatchNormalizationForwardTraining(be->dnn, CUDNN_BATCHNORM_SPATIAL, one_of(c->dt),
                                                  zero_of(c->dt), be->xd, px, be->xd, py, be->bnd,
                                                  pg, pb, a->p.bn.momentum, prm, prv, a->p.bn.eps,
                                                  psm, psi));
    return HCGA_OK;
}

hcga_status cu_op_bn_fwd_infer(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_BN_FWD_INFER, 5, 5, 1, 1));
    const hcga_tensor *x, *g, *b, *rm, *rv, *y;
    void *px, *pg, *pb, *prm, *prv, *py;
    CU_TRY(cu_in(c, HCGA_BN_X, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, HCGA_BN_GAMMA, "gamma", CU_K_FLOAT, 0, &g, &pg));
    CU_TRY(cu_in(c, HCGA_BN_BETA, "beta", CU_K_FLOAT, 0, &b, &pb));
    CU_TRY(cu_in(c, HCGA_BN_RMEAN_IN, "running_mean", CU_K_FLOAT, 0, &rm, &prm));
    CU_TRY(cu_in(c, HCGA_BN_RVAR_IN, "running_var", CU_K_FLOAT, 0, &rv, &prv));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    int64_t N, C, HW;
    CU_TRY(bn_check(c, x, &N, &C, &HW));
    CU_TRY(cu_same(c, y, "y", x, "x"));
    CU_SHAPE(c, g, "gamma", C);
    CU_SHAPE(c, b, "beta", C);
    CU_SHAPE(c, rm, "running_mean", C);
    CU_SHAPE(c, rv, "running_var", C);
    CU_TRY(cu_noalias(c, 1));
    if (hcga_tensor_numel(x) == 0) return HCGA_OK;
    CU_TRY(bn_descs(c, x));
    CU_DNN(be, c->op, "cudnnBatchNormalizationForwardInference",
           cudnnBatchNormalizationForwardInference(be->dnn, CUDNN_BATCHNORM_SPATIAL, one_of(c->dt),
                                                   zero_of(c->dt), be->xd, px, be->xd, py, be->bnd,
                                                   pg, pb, prm, prv, a->p.bn.eps));
    return HCGA_OK;
}

hcga_status cu_op_bn_bwd(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_BN_BWD, 5, 5, 3, 3));
    const hcga_tensor *x, *dy, *g, *m, *is, *dx, *dg, *db;
    void *px, *pdy, *pg, *pm, *pis, *pdx, *pdg, *pdb;
    CU_TRY(cu_in(c, HCGA_BNB_X, "x", CU_K_FLOAT, 0, &x, &px));
    CU_TRY(cu_in(c, HCGA_BNB_DY, "dy", CU_K_FLOAT, 0, &dy, &pdy));
    CU_TRY(cu_in(c, HCGA_BNB_GAMMA, "gamma", CU_K_FLOAT, 0, &g, &pg));
    CU_TRY(cu_in(c, HCGA_BNB_MEAN, "save_mean", CU_K_FLOAT, 0, &m, &pm));
    CU_TRY(cu_in(c, HCGA_BNB_INVSTD, "save_invstd", CU_K_FLOAT, 0, &is, &pis));
    CU_TRY(cu_out(c, HCGA_BNB_DX, "dx", CU_K_FLOAT, 0, &dx, &pdx));
    CU_TRY(cu_out(c, HCGA_BNB_DGAMMA, "dgamma", CU_K_FLOAT, 0, &dg, &pdg));
    CU_TRY(cu_out(c, HCGA_BNB_DBETA, "dbeta", CU_K_FLOAT, 0, &db, &pdb));
    int64_t N, C, HW;
    CU_TRY(bn_check(c, x, &N, &C, &HW));
    CU_TRY(cu_same(c, dy, "dy", x, "x"));
    CU_TRY(cu_same(c, dx, "dx", x, "x"));
    CU_SHAPE(c, g, "gamma", C);
    CU_SHAPE(c, m, "save_mean", C);
    CU_SHAPE(c, is, "save_invstd", C);
    CU_SHAPE(c, dg, "dgamma", C);
    CU_SHAPE(c, db, "dbeta", C);
    if (C > 0 && N * HW < 1) CU_BAD(c, "%s: x has no values per channel", c->op);
    CU_TRY(cu_noalias(c, 1));
    if (C == 0) return HCGA_OK;
    void *ins[5] = {px, pdy, pg, pm, pis};
    CU_TRY(detach_aliased(c, ins));
    px = ins[0];
    pdy = ins[1];
    pg = ins[2];
    pm = ins[3];
    pis = ins[4];
    CU_TRY(bn_descs(c, x));
    /* The saved mean and inverse std are passed, so cuDNN uses them as they
     * are; epsilon is then not applied again. */
    CU_DNN(be, c->op, "cudnnBatchNormalizationBackward",
           cudnnBatchNormalizationBackward(be->dnn, CUDNN_BATCHNORM_SPATIAL, one_of(c->dt),
                                           zero_of(c->dt), one_of(c->dt), zero_of(c->dt), be->xd, px,
                                           be->xd, pdy, be->xd, pdx, be->bnd, pg, pdg, pdb,
                                           a->p.bn.eps, pm, pis));
    return HCGA_OK;
}

/* ---- GEMM (cuBLAS, row-major via operand swap) --------------------------------------------- */

/*
 * Row-major Y[M,N] = alpha op(A) op(B) + beta C is column-major
 * Y^T[N,M] = alpha op(B)^T op(A)^T + beta C^T, and a row-major matrix read
 * as column-major is its transpose.  So cuBLAS gets (B, A) in that order,
 * each with its own transpose flag, m = N, n = M, and every leading
 * dimension is the stored row length (shape[1]).
 */
hcga_status cu_op_gemm(hcga_backend *be, const hcga_op_args *a)
{
    cu_ctx cc, *c = &cc;
    CU_TRY(cu_begin(c, be, a, HCGA_OP_GEMM, 2, 3, 1, 1));
    const hcga_tensor *ta, *tb, *tc, *y;
    void *pa, *pb, *pc, *py;
    CU_TRY(cu_in(c, 0, "a", CU_K_FLOAT, 0, &ta, &pa));
    CU_TRY(cu_in(c, 1, "b", CU_K_FLOAT, 0, &tb, &pb));
    CU_TRY(cu_in(c, 2, "c", CU_K_FLOAT, 1, &tc, &pc));
    CU_TRY(cu_out(c, 0, "y", CU_K_FLOAT, 0, &y, &py));
    const hcga_gemm_params *p = &a->p.gemm;
    if ((p->trans_a != 0 && p->trans_a != 1) || (p->trans_b != 0 && p->trans_b != 1))
        CU_BAD(c, "%s: gemm.trans_a/trans_b must be 0 or 1 (got %d, %d)", c->op, p->trans_a, p->trans_b);
    CU_TRY(cu_finite(c, p->alpha, "gemm.alpha"));
    CU_TRY(cu_finite(c, p->beta, "gemm.beta"));
    CU_TRY(cu_ndim(c, ta, "a", 2, "matrix"));
    CU_TRY(cu_ndim(c, tb, "b", 2, "matrix"));
    CU_TRY(cu_ndim(c, y, "y", 2, "matrix"));
    const int64_t M = p->trans_a ? ta->shape[1] : ta->shape[0];
    const int64_t K = p->trans_a ? ta->shape[0] : ta->shape[1];
    const int64_t Kb = p->trans_b ? tb->shape[1] : tb->shape[0];
    const int64_t N = p->trans_b ? tb->shape[0] : tb->shape[1];
    if (K != Kb) {
        char b1[96], b2[96];
        CU_BAD(c, "%s: op(a) of a %s (trans %d) and op(b) of b %s (trans %d) disagree on K (%lld vs %lld)",
               c->op, cu_shape_str(ta, b1, sizeof b1), p->trans_a, cu_shape_str(tb, b2, sizeof b2),
               p->trans_b, (long long)K, (long long)Kb);
    }
    CU_SHAPE(c, y, "y", M, N);
    if (tc) CU_SHAPE(c, tc, "c", M, N);
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(ta->shape[1]) || !fits_int(tb->shape[1]))
        CU_BAD(c, "%s: dimensions exceed cuBLAS's 32-bit limits", c->op);
    if (cu_overlaps(ta, y)) CU_BAD(c, "%s: y overlaps a in the same buffer", c->op);
    if (cu_overlaps(tb, y)) CU_BAD(c, "%s: y overlaps b in the same buffer", c->op);
    if (tc && cu_overlaps(tc, y) && !cu_same_view(tc, y))
        CU_BAD(c, "%s: c partially overlaps y (only c == y is allowed)", c->op);
    if (M == 0 || N == 0) return HCGA_OK;

    const size_t es = hcga_dtype_size(c->dt);
    const double beta = tc ? p->beta : 0.0;
    if (beta != 0.0 && !cu_same_view(tc, y))
        CU_CUDA(be, c->op, "cudaMemcpyAsync",
                cudaMemcpyAsync(py, pc, (size_t)(M * N) * es, cudaMemcpyDeviceToDevice, be->stream));
    if (K == 0) { /* y = beta * c (or 0) */
        if (beta == 0.0)
            CU_LAUNCH(be, c->op, cuk_fill(be->stream, c->dt, M * N, py, 0.0));
        else if (beta != 1.0)
            CU_LAUNCH(be, c->op, cuk_pointwise(be->stream, c->dt, CUK_PW_SCALE, M * N, py, NULL, py, beta));
        return HCGA_OK;
    }
    const cublasOperation_t opa = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t opb = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = (int)ta->shape[1], ldb = (int)tb->shape[1], ldy = (int)N;
    if (c->dt == HCGA_F64) {
        const double al = p->alpha, bt = beta;
        CU_BLAS(be, c->op, "cublasDgemm",
                cublasDgemm(be->blas, opb, opa, (int)N, (int)M, (int)K, &al, (const double *)pb, ldb,
                            (const double *)pa, lda, &bt, (double *)py, ldy));
    } else {
        const float al = (float)p->alpha, bt = (float)beta;
        CU_BLAS(be, c->op, "cublasGemmEx",
                cublasGemmEx(be->blas, opb, opa, (int)N, (int)M, (int)K, &al, pb, CUDA_R_32F, ldb,
                             pa, CUDA_R_32F, lda, &bt, py, CUDA_R_32F, ldy,
                             be->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
    }
    return HCGA_OK;
}
