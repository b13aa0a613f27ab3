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
 * cudnnFind*Algorithm instead, deterministic=0 admits the rest.  Option
 * algo=cache looks the shape up in the persisted cache first
 * (cuda_algo_db.h: keyed by the device identity and by direction, dtype,
 * layout, math mode, determinism and geometry) and otherwise runs
 * cudnnFind* once and persists the answer, so that every later process on
 * the same GPU and library versions chooses the same algorithm.  F32 runs
 * with CUDNN_FMA_MATH (no TF32) unless tf32=1.  All convolutions share one
 * workspace that grows to the largest size needed (bounded by
 * workspace_mb).
 *
 * Half precision (ABI 1.1): BF16 / F16 convolutions are cuDNN's
 * PSEUDO_BFLOAT16 / PSEUDO_HALF configurations: x, w, y (dy, dx, dw) in the
 * 16-bit type, the convolution descriptor's compute type CUDNN_DATA_FLOAT
 * (F32 accumulation, one rounding of each output), alpha/beta as float, and
 * CUDNN_TENSOR_OP_MATH asked for when the algorithms are listed (each
 * candidate then runs with the math type cuDNN reports for it).  The bias
 * add and the bias gradient are our kernels (k_half.cu), in F32 and rounded
 * once; the bias add reads the already rounded convolution output, so a
 * biased half convolution is rounded twice (at most one more half ulp than
 * the ABI's single rounding; docs/cuda-runs.md).  GEMM is cublasGemmEx on
 * CUDA_R_16BF / CUDA_R_16F operands and output with CUBLAS_COMPUTE_32F; the
 * handle has CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION, so split-K
 * partial sums stay F32 instead of the output type.  The algorithm cache
 * keys on the dtype.
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

#include "cuda_algo_db.h"
#include "cuda_impl.h"
#include "cuda_kernels.h"

/* ---- helpers ------------------------------------------------------------------- */

/* The call being run: what the helpers below report errors as and with. */
typedef struct cu_call {
    hcga_backend *be;
    const hcga_op_args *a;
    const char *op; /* hcga_op_name */
    int dt;         /* the call's float dtype (from the contract check) */
} cu_call;

static cu_call call_of(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    cu_call c = {be, a, hcga_op_name(ck->op), ck->dtype};
    return c;
}

/* What cuDNN/cuBLAS cannot take although the contract allows it. */
#define CU_REFUSE(c, ...) return cu_err((c)->be, HCGA_ERR_UNSUPPORTED, __VA_ARGS__)

/* Storage type of the tensors and filters of a call. */
static cudnnDataType_t dnn_type(int dt)
{
    switch (dt) {
    case HCGA_F64: return CUDNN_DATA_DOUBLE;
    case HCGA_BF16: return CUDNN_DATA_BFLOAT16;
    case HCGA_F16: return CUDNN_DATA_HALF;
    default: return CUDNN_DATA_FLOAT;
    }
}

/* Compute (accumulation) type of the convolution descriptor: F32 for F32
 * and both 16-bit formats, F64 for F64. */
static cudnnDataType_t dnn_compute_type(int dt)
{
    return dt == HCGA_F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

/* alpha = 1 and beta = 0 in the scaling type cuDNN expects for dt: double
 * for F64, float for F32 and for the 16-bit formats. */
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

/* The geometry comes from the contract check (ck->conv); what is left is
 * the legacy cuDNN API's int dimensions and int element counts. */
static hcga_status conv_limits(const cu_call *c, const hcga_conv_dims *d)
{
    if (!fits_int(d->N * d->C * d->H * d->W) || !fits_int(d->N * d->K * d->P * d->Q) ||
        !fits_int(d->K * d->C * d->R * d->S))
        CU_REFUSE(c, "%s: a tensor has more than %d elements (cuDNN's legacy API limit)", c->op, INT_MAX);
    return HCGA_OK;
}

/* Set xd/wd/yd/cd for the geometry; yd describes [N,K,P,Q]. */
static hcga_status conv_descs(const cu_call *c, const hcga_conv_dims *d)
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
           cudnnSetConvolution2dDescriptor(be->cd, (int)d->ph, (int)d->pw, (int)d->sh, (int)d->sw,
                                           (int)d->dh, (int)d->dw, CUDNN_CROSS_CORRELATION,
                                           dnn_compute_type(c->dt)));
    return HCGA_OK;
}

/* ---- algorithm cache --------------------------------------------------------------- */

enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 };

/* One cached algorithm choice, keyed by everything the choice depends on. */
typedef struct cu_conv_key {
    int32_t kind, dtype, math_mode;
    int32_t n, c, h, w, k, r, s;
    int32_t pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
} cu_conv_key;

typedef struct cu_conv_entry {
    cu_conv_key key;
    int used;
    int algo;
    int math_type; /* cudnnMathType_t to run with */
    size_t ws_bytes;
} cu_conv_entry;

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
    float time; /* ms (cudnnFind*), -1 from the heuristics */
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
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType,
                                      be->algo_find ? p[i].time : -1.0f};
    } else if (kind == CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t p[MAX_ALGOS];
        st = be->algo_find
                 ? cudnnFindConvolutionBackwardDataAlgorithm(be->dnn, be->wd, be->yd, be->cd, be->xd, MAX_ALGOS, &got, p)
                 : cudnnGetConvolutionBackwardDataAlgorithm_v7(be->dnn, be->wd, be->yd, be->cd, be->xd, MAX_ALGOS, &got, p);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got && i < MAX_ALGOS; i++)
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType,
                                      be->algo_find ? p[i].time : -1.0f};
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t p[MAX_ALGOS];
        st = be->algo_find
                 ? cudnnFindConvolutionBackwardFilterAlgorithm(be->dnn, be->xd, be->yd, be->cd, be->wd, MAX_ALGOS, &got, p)
                 : cudnnGetConvolutionBackwardFilterAlgorithm_v7(be->dnn, be->xd, be->yd, be->cd, be->wd, MAX_ALGOS, &got, p);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got && i < MAX_ALGOS; i++)
            rows[(*n)++] = (perf_row){(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType,
                                      be->algo_find ? p[i].time : -1.0f};
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

/* The persisted-cache key of a choice: direction, dtype, layout, the math
 * the candidates were listed with, determinism, geometry. */
static void db_key(char *buf, size_t len, const cu_conv_key *k, const char *math, int det)
{
    static const char *const kinds[3] = {"fwd", "bwd_data", "bwd_filter"};
    snprintf(buf, len, "%s|%s|NCHW|%s|%s|n%d c%d h%d w%d k%d r%d s%d pad%d,%d stride%d,%d dil%d,%d", kinds[k->kind],
             hcga_dtype_name(k->dtype), math, det ? "det" : "any", k->n, k->c, k->h, k->w, k->k, k->r, k->s,
             k->pad_h, k->pad_w, k->stride_h, k->stride_w, k->dil_h, k->dil_w);
}

/* A persisted choice, if it can run here: its math type is one this call
 * allows and its workspace fits workspace_mb.  Leaves the math type on cd. */
static int db_entry_usable(hcga_backend *be, int kind, const cu_algo_rec *r, int no_tf32, int half,
                           size_t *bytes)
{
    if (r->math != CUDNN_DEFAULT_MATH && r->math != CUDNN_TENSOR_OP_MATH &&
        r->math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && r->math != CUDNN_FMA_MATH)
        return 0;
    if (no_tf32 && r->math != CUDNN_FMA_MATH) return 0;
    if (half && r->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return 0;
    if (cudnnSetConvolutionMathType(be->cd, (cudnnMathType_t)r->math) != CUDNN_STATUS_SUCCESS) return 0;
    if (ws_size(be, kind, r->algo, bytes) != CUDNN_STATUS_SUCCESS) return 0;
    return *bytes <= be->ws_cap;
}

/* Choose (or recall) the algorithm for the descriptors just set, leave the
 * math type on cd, and make sure the workspace is large enough. */
static hcga_status conv_algo(const cu_call *c, int kind, const hcga_conv_dims *d, cu_conv_entry *out)
{
    hcga_backend *be = c->be;
    const int no_tf32 = c->dt == HCGA_F32 && !be->tf32;
    const int half = hcga_dtype_is_half(c->dt);
    cu_conv_key k;
    memset(&k, 0, sizeof k);
    k.kind = kind;
    k.dtype = c->dt;
    k.math_mode = (be->tf32 ? 1 : 0) | (be->deterministic ? 2 : 0) | (be->algo_find ? 4 : 0) |
                  (be->algo_cache ? 8 : 0);
    k.n = (int32_t)d->N;
    k.c = (int32_t)d->C;
    k.h = (int32_t)d->H;
    k.w = (int32_t)d->W;
    k.k = (int32_t)d->K;
    k.r = (int32_t)d->R;
    k.s = (int32_t)d->S;
    k.pad_h = (int32_t)d->ph;
    k.pad_w = (int32_t)d->pw;
    k.stride_h = (int32_t)d->sh;
    k.stride_w = (int32_t)d->sw;
    k.dil_h = (int32_t)d->dh;
    k.dil_w = (int32_t)d->dw;

    cu_conv_entry *hit = cache_find(be, &k);
    if (hit) {
        *out = *hit;
        CU_DNN(be, c->op, "cudnnSetConvolutionMathType",
               cudnnSetConvolutionMathType(be->cd, (cudnnMathType_t)hit->math_type));
        return cu_ensure_workspace(be, c->op, hit->ws_bytes);
    }

    /* Query with the math type we are willing to run. */
    const cudnnMathType_t query_math = no_tf32 ? CUDNN_FMA_MATH : half ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH;
    char dbk[256];
    if (be->algo_cache) {
        static const char *const mnames[4] = {"default", "tensor_op", "tensor_op_conv", "fma"};
        db_key(dbk, sizeof dbk, &k, mnames[query_math & 3], be->deterministic);
        const cu_algo_rec *r = cu_algo_db_find(be->adb, be->adb_device, dbk);
        size_t bytes = 0;
        if (r && db_entry_usable(be, kind, r, no_tf32, half, &bytes)) {
            cu_conv_entry e;
            memset(&e, 0, sizeof e);
            e.key = k;
            e.algo = r->algo;
            e.math_type = r->math;
            e.ws_bytes = bytes;
            if (cache_put(be, &e) != 0)
                return cu_err(be, HCGA_ERR_NOMEM, "%s: out of host memory for the algorithm cache", c->op);
            *out = e;
            return cu_ensure_workspace(be, c->op, bytes);
        }
        if (r)
            fprintf(stderr, "hcga cuda: %s: cached algorithm %d (math %d) for %s cannot run here; searching again\n",
                    be->adb_path, r->algo, r->math, dbk);
    }
    CU_DNN(be, c->op, "cudnnSetConvolutionMathType", cudnnSetConvolutionMathType(be->cd, query_math));
    if (be->algo_find && be->capturing)
        /* cudnnFind* synchronises and runs candidates: not in a graph
         * capture, which records only sequences that ran once already */
        return cu_err(be, HCGA_ERR_INVALID,
                      "%s: the convolution algorithm would be searched (algo=find/cache) while capturing a graph "
                      "(capture only a sequence that has run once outside capture)", c->op);
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
        /* half: the data is already 16-bit, nothing to down-convert */
        if (half && r->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
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
        /* persist (a failure to write is a warning: the run goes on) */
        if (be->algo_cache &&
            cu_algo_db_add(be->adb, be->adb_device, dbk, r->algo, (int)run, (uint64_t)bytes,
                           r->time >= 0 ? (double)r->time : 0.0) == 1 &&
            be->adb_path[0])
            cu_algo_db_save(be->adb, be->adb_path, stderr);
        *out = e;
        return cu_ensure_workspace(be, c->op, bytes);
    }
    return cu_err(be, HCGA_ERR_UNSUPPORTED,
                  "%s: no %scuDNN algorithm for N=%lld C=%lld H=%lld W=%lld K=%lld R=%lld S=%lld "
                  "pad=%d,%d stride=%d,%d (%d candidates, %d usable, workspace_mb=%zu)",
                  c->op, be->deterministic ? "deterministic " : "", (long long)d->N, (long long)d->C,
                  (long long)d->H, (long long)d->W, (long long)d->K, (long long)d->R,
                  (long long)d->S, (int)d->ph, (int)d->pw, (int)d->sh, (int)d->sw, n, tried,
                  be->ws_cap >> 20);
}

/* dbias[K] = sum of dy over N, P, Q (our deterministic reduction). */
static hcga_status bias_grad(const cu_call *c, const hcga_conv_dims *d, const void *dy, void *db)
{
    if (hcga_dtype_is_half(c->dt)) {
        CU_LAUNCH(c->be, c->op, cuk_half_bias_grad(c->be->stream, c->dt, d->N, d->K, d->P * d->Q, dy, db));
        return HCGA_OK;
    }
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

CU_IMPL(CONV2D_FWD)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_conv_dims *d = &ck->conv;
    void *px = cu_ptr(a->in[HCGA_CONV_X]), *pw = cu_ptr(a->in[HCGA_CONV_W]);
    void *pb = cu_ptr(cu_in_opt(a, HCGA_CONV_BIAS)), *py = cu_ptr(a->out[0]);
    CU_TRY(conv_limits(c, d));
    if (d->N == 0) return HCGA_OK;
    CU_TRY(conv_descs(c, d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_FWD, d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionForward",
           cudnnConvolutionForward(be->dnn, one_of(c->dt), be->xd, px, be->wd, pw, be->cd,
                                   (cudnnConvolutionFwdAlgo_t)e.algo, be->ws, e.ws_bytes,
                                   zero_of(c->dt), be->yd, py));
    if (pb && hcga_dtype_is_half(c->dt)) {
        CU_LAUNCH(be, c->op, cuk_half_bias_add(be->stream, c->dt, d->N, d->K, d->P * d->Q, py, pb));
    } else if (pb) {
        CU_DNN(be, c->op, "cudnnSetTensor4dDescriptor",
               cudnnSetTensor4dDescriptor(be->bd, CUDNN_TENSOR_NCHW, dnn_type(c->dt), 1, (int)d->K, 1, 1));
        CU_DNN(be, c->op, "cudnnAddTensor",
               cudnnAddTensor(be->dnn, one_of(c->dt), be->bd, pb, one_of(c->dt), be->yd, py));
    }
    return HCGA_OK;
}

CU_IMPL(CONV2D_BWD_DATA)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_conv_dims *d = &ck->conv;
    void *pdy = cu_ptr(a->in[0]), *pw = cu_ptr(a->in[1]), *pdx = cu_ptr(a->out[0]);
    CU_TRY(conv_limits(c, d));
    if (d->N == 0) return HCGA_OK;
    CU_TRY(conv_descs(c, d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_BWD_DATA, d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionBackwardData",
           cudnnConvolutionBackwardData(be->dnn, one_of(c->dt), be->wd, pw, be->yd, pdy, be->cd,
                                        (cudnnConvolutionBwdDataAlgo_t)e.algo, be->ws, e.ws_bytes,
                                        zero_of(c->dt), be->xd, pdx));
    return HCGA_OK;
}

CU_IMPL(CONV2D_BWD_FILTER)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_conv_dims *d = &ck->conv;
    void *px = cu_ptr(a->in[0]), *pdy = cu_ptr(a->in[1]), *pdw = cu_ptr(a->out[0]);
    void *pdb = cu_ptr(cu_out_opt(a, 1));
    CU_TRY(conv_limits(c, d));
    if (d->N == 0) { /* nothing flows: zero gradients (+0 is all zero bits in every float dtype) */
        const size_t es = hcga_dtype_size(c->dt);
        CU_CUDA(be, c->op, "cudaMemsetAsync",
                cudaMemsetAsync(pdw, 0, (size_t)hcga_tensor_numel(a->out[0]) * es, be->stream));
        if (pdb) CU_CUDA(be, c->op, "cudaMemsetAsync", cudaMemsetAsync(pdb, 0, (size_t)d->K * es, be->stream));
        return HCGA_OK;
    }
    CU_TRY(conv_descs(c, d));
    cu_conv_entry e;
    CU_TRY(conv_algo(c, CONV_BWD_FILTER, d, &e));
    CU_DNN(be, c->op, "cudnnConvolutionBackwardFilter",
           cudnnConvolutionBackwardFilter(be->dnn, one_of(c->dt), be->xd, px, be->yd, pdy, be->cd,
                                          (cudnnConvolutionBwdFilterAlgo_t)e.algo, be->ws,
                                          e.ws_bytes, zero_of(c->dt), be->wd, pdw));
    if (pdb) CU_TRY(bias_grad(c, d, pdy, pdb));
    return HCGA_OK;
}

/* ---- batch normalisation ------------------------------------------------------------------ */

/* What cuDNN's batch norm takes beyond the contract: its minimum epsilon and
 * int element counts. */
static hcga_status bn_limits(const cu_call *c, const hcga_tensor *x)
{
    const double eps = c->a->p.bn.eps;
    if (eps < CUDNN_BN_MIN_EPSILON)
        CU_REFUSE(c, "%s: bn.eps (%g) is below cuDNN's minimum %g", c->op, eps, (double)CUDNN_BN_MIN_EPSILON);
    if (!fits_int(hcga_tensor_numel(x)))
        CU_REFUSE(c, "%s: x has more than %d elements (cuDNN's legacy API limit)", c->op, INT_MAX);
    return HCGA_OK;
}

/* x [N,C] or [N,C,H,W] -> xd as N,C,H,W (H = W = 1 for 2-D), bnd derived. */
static hcga_status bn_descs(const cu_call *c, const hcga_tensor *x)
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
static hcga_status detach_aliased(const cu_call *c, void **ins)
{
    hcga_backend *be = c->be;
    const hcga_op_args *a = c->a;
    size_t need[HCGA_MAX_OP_IN] = {0}, total = 0;
    for (int i = 0; i < a->num_in; i++) {
        if (!a->in[i]) continue;
        for (int o = 0; o < a->num_out; o++)
            if (a->out[o] && hcga_contract_same_view(a->in[i], a->out[o])) {
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

CU_IMPL(BN_FWD_TRAIN)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_tensor *x = a->in[HCGA_BN_X];
    void *px = cu_ptr(x), *pg = cu_ptr(a->in[HCGA_BN_GAMMA]), *pb = cu_ptr(a->in[HCGA_BN_BETA]);
    void *py = cu_ptr(a->out[HCGA_BN_Y]), *psm = cu_ptr(a->out[HCGA_BN_SAVE_MEAN]);
    void *psi = cu_ptr(a->out[HCGA_BN_SAVE_INVSTD]), *prm = cu_ptr(a->out[HCGA_BN_RMEAN]);
    void *prv = cu_ptr(a->out[HCGA_BN_RVAR]);
    CU_TRY(bn_limits(c, x));
    if (ck->bn_C == 0) return HCGA_OK;
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

CU_IMPL(BN_FWD_INFER)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_tensor *x = a->in[HCGA_BN_X];
    void *px = cu_ptr(x), *pg = cu_ptr(a->in[HCGA_BN_GAMMA]), *pb = cu_ptr(a->in[HCGA_BN_BETA]);
    void *prm = cu_ptr(a->in[HCGA_BN_RMEAN_IN]), *prv = cu_ptr(a->in[HCGA_BN_RVAR_IN]);
    void *py = cu_ptr(a->out[0]);
    CU_TRY(bn_limits(c, x));
    if (hcga_tensor_numel(x) == 0) return HCGA_OK;
    CU_TRY(bn_descs(c, x));
    CU_DNN(be, c->op, "cudnnBatchNormalizationForwardInference",
           cudnnBatchNormalizationForwardInference(be->dnn, CUDNN_BATCHNORM_SPATIAL, one_of(c->dt),
                                                   zero_of(c->dt), be->xd, px, be->xd, py, be->bnd,
                                                   pg, pb, prm, prv, a->p.bn.eps));
    return HCGA_OK;
}

CU_IMPL(BN_BWD)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_tensor *x = a->in[HCGA_BNB_X];
    void *px = cu_ptr(x), *pdy = cu_ptr(a->in[HCGA_BNB_DY]), *pg = cu_ptr(a->in[HCGA_BNB_GAMMA]);
    void *pm = cu_ptr(a->in[HCGA_BNB_MEAN]), *pis = cu_ptr(a->in[HCGA_BNB_INVSTD]);
    void *pdx = cu_ptr(a->out[HCGA_BNB_DX]), *pdg = cu_ptr(a->out[HCGA_BNB_DGAMMA]);
    void *pdb = cu_ptr(a->out[HCGA_BNB_DBETA]);
    CU_TRY(bn_limits(c, x));
    if (ck->bn_C == 0) return HCGA_OK;
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
CU_IMPL(GEMM)
{
    const cu_call cc = call_of(be, a, ck), *c = &cc;
    const hcga_tensor *ta = a->in[0], *tb = a->in[1], *tc = cu_in_opt(a, 2), *y = a->out[0];
    void *pa = cu_ptr(ta), *pb = cu_ptr(tb), *pc = cu_ptr(tc), *py = cu_ptr(y);
    const hcga_gemm_params *p = &a->p.gemm;
    const int64_t M = ck->gemm_M, N = ck->gemm_N, K = ck->gemm_K;
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(ta->shape[1]) || !fits_int(tb->shape[1]))
        CU_REFUSE(c, "%s: dimensions exceed cuBLAS's 32-bit limits", c->op);
    if (M == 0 || N == 0) return HCGA_OK;

    const size_t es = hcga_dtype_size(c->dt);
    const double beta = tc ? p->beta : 0.0;
    if (beta != 0.0 && !hcga_contract_same_view(tc, y))
        CU_CUDA(be, c->op, "cudaMemcpyAsync",
                cudaMemcpyAsync(py, pc, (size_t)(M * N) * es, cudaMemcpyDeviceToDevice, be->stream));
    if (K == 0) { /* y = beta * c (or 0) */
        if (beta == 0.0)
            CU_CUDA(be, c->op, "cudaMemsetAsync", cudaMemsetAsync(py, 0, (size_t)(M * N) * es, be->stream));
        else if (beta != 1.0 && hcga_dtype_is_half(c->dt))
            CU_LAUNCH(be, c->op, cuk_half_scale(be->stream, c->dt, M * N, py, py, beta));
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
    } else if (hcga_dtype_is_half(c->dt)) {
        /* A, B, C/Y 16-bit, F32 accumulation and float alpha/beta (the
         * scaling type of CUBLAS_COMPUTE_32F); tensor cores by default */
        const cudaDataType_t t = c->dt == HCGA_BF16 ? CUDA_R_16BF : CUDA_R_16F;
        const float al = (float)p->alpha, bt = (float)beta;
        CU_BLAS(be, c->op, "cublasGemmEx",
                cublasGemmEx(be->blas, opb, opa, (int)N, (int)M, (int)K, &al, pb, t, ldb, pa, t, lda,
                             &bt, py, t, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
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
