/*
 * cuda_internal.h - shared declarations of the CUDA backend's host code
 * (cuda_backend.c: plugin iface, buffers; cuda_dnn.c: cuDNN convolution and
 * batch norm, cuBLAS GEMM; cuda_ops.c: the ops built on our own kernels).
 */
#ifndef HCGA_CUDA_INTERNAL_H
#define HCGA_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "hcga_plugin.h"

struct hcga_buffer {
    void *base;     /* what the allocator returned */
    void *ptr;      /* base rounded up to 256 bytes */
    uint64_t bytes; /* usable bytes from ptr */
};

/* One cached convolution algorithm choice (see cuda_dnn.c). */
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

struct hcga_backend {
    int device;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;

    /* options */
    int tf32;          /* tf32=1: TF32 tensor cores for F32 GEMM/conv */
    int deterministic; /* deterministic=0 admits non-deterministic cuDNN algorithms */
    int algo_find;     /* algo=find: cudnnFind* (timed) instead of heuristics */
    size_t ws_cap;     /* workspace_mb: largest cuDNN workspace considered */
    int sync_each;     /* sync=1: wait after every op so faults name their op */

    int use_pool; /* stream-ordered allocation (cudaMallocAsync) available */

    /* the one shared cuDNN workspace, grown on demand */
    void *ws;
    size_t ws_size;
    /* scratch for our own kernels (partial sums, distance matrices) */
    void *scratch;
    size_t scratch_size;

    /* device-side input error flag and its pinned host mirror */
    int *dflag;
    int *hflag;

    /* descriptors, re-set for every call */
    cudnnTensorDescriptor_t xd, yd, bd, bnd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;

    /* algorithm cache: open addressing, capacity a power of two */
    cu_conv_entry *algos;
    size_t algo_cap, algo_count;

    char err[1024];
};

/* ---- errors (all return the hcga_status to pass up) ---------------------- */

hcga_status cu_err(hcga_backend *be, hcga_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "cudaErrorMemoryAllocation in conv2d_fwd (cudaMallocAsync): out of memory" */
hcga_status cu_fail_cuda(hcga_backend *be, const char *op, const char *call, cudaError_t e);
/* "CUDNN_STATUS_BAD_PARAM in conv2d_bwd_filter (cudnnConvolutionBackwardFilter)" */
hcga_status cu_fail_cudnn(hcga_backend *be, const char *op, const char *call, cudnnStatus_t st);
hcga_status cu_fail_cublas(hcga_backend *be, const char *op, const char *call, cublasStatus_t st);

#define CU_CUDA(be, op, call, expr)                                               \
    do {                                                                          \
        cudaError_t cu_e_ = (expr);                                               \
        if (cu_e_ != cudaSuccess) return cu_fail_cuda((be), (op), (call), cu_e_); \
    } while (0)
#define CU_DNN(be, op, call, expr)                                                      \
    do {                                                                                \
        cudnnStatus_t cu_s_ = (expr);                                                   \
        if (cu_s_ != CUDNN_STATUS_SUCCESS) return cu_fail_cudnn((be), (op), (call), cu_s_); \
    } while (0)
#define CU_BLAS(be, op, call, expr)                                                       \
    do {                                                                                  \
        cublasStatus_t cu_b_ = (expr);                                                    \
        if (cu_b_ != CUBLAS_STATUS_SUCCESS) return cu_fail_cublas((be), (op), (call), cu_b_); \
    } while (0)
/* After our own kernel launchers. */
#define CU_LAUNCH(be, op, expr) CU_CUDA(be, op, "kernel launch", expr)

/* ---- memory ---------------------------------------------------------------- */

/* Wait for the stream; report a device-side input error (error flag) or a
 * failure of the enqueued work as a failure of `op`. */
hcga_status cu_wait_and_check(hcga_backend *be, const char *op);
hcga_status cu_ensure_workspace(hcga_backend *be, const char *op, size_t bytes);
hcga_status cu_ensure_scratch(hcga_backend *be, const char *op, size_t bytes);

/* ---- argument checks (cuda_check.c) ------------------------------------------ */

/* Validation state of one op call. */
typedef struct cu_ctx {
    hcga_backend *be;
    const hcga_op_args *a;
    int opcode;
    const char *op; /* hcga_op_name(opcode) */
    int dt;         /* the op's float dtype; -1 until the first float tensor */
} cu_ctx;

enum { CU_K_FLOAT, CU_K_I64, CU_K_ANY };

#define CU_TRY(e)                                  \
    do {                                           \
        hcga_status cu_st_ = (e);                  \
        if (cu_st_ != HCGA_OK) return cu_st_;      \
    } while (0)

/* Check args->op and the slot counts, make the instance's device current. */
hcga_status cu_begin(cu_ctx *c, hcga_backend *be, const hcga_op_args *a, int op, int nin_lo,
                     int nin_hi, int nout_lo, int nout_hi);
/* Fetch in[slot] / out[slot]: present unless optional, dense, inside its
 * buffer, of the kind asked (CU_K_FLOAT tensors of one call share a dtype).
 * *p gets the device address (NULL for an absent optional slot). */
hcga_status cu_in(cu_ctx *c, int slot, const char *name, int kind, int optional,
                  const hcga_tensor **t, void **p);
hcga_status cu_out(cu_ctx *c, int slot, const char *name, int kind, int optional,
                   const hcga_tensor **t, void **p);
/* Structural check of a tensor that may be strided (COPY). */
hcga_status cu_tensor_strided(cu_ctx *c, const hcga_tensor *t, const char *name, void **p);
hcga_status cu_shape(cu_ctx *c, const hcga_tensor *t, const char *name, int nd, const int64_t *dims);
hcga_status cu_same(cu_ctx *c, const hcga_tensor *t, const char *name, const hcga_tensor *ref,
                    const char *refname);
hcga_status cu_ndim(cu_ctx *c, const hcga_tensor *t, const char *name, int nd, const char *layout);
hcga_status cu_scalar(cu_ctx *c, const hcga_tensor *t, const char *name);
hcga_status cu_finite(cu_ctx *c, double v, const char *name);
/* Outputs overlap no input (an identical view is allowed when allow_exact)
 * and no other output. */
hcga_status cu_noalias(cu_ctx *c, int allow_exact);
int cu_overlaps(const hcga_tensor *x, const hcga_tensor *y);
int cu_same_view(const hcga_tensor *x, const hcga_tensor *y);
/* "[2,3,4]" into buf */
const char *cu_shape_str(const hcga_tensor *t, char *buf, size_t len);

#define CU_SHAPE(c, t, name, ...)                                                  \
    do {                                                                         \
        const int64_t cu_d_[] = {__VA_ARGS__};                                   \
        CU_TRY(cu_shape((c), (t), (name), (int)(sizeof cu_d_ / sizeof cu_d_[0]), cu_d_)); \
    } while (0)
#define CU_BAD(c, ...) return cu_err((c)->be, HCGA_ERR_INVALID, __VA_ARGS__)

/* ---- ops implemented in cuda_dnn.c -------------------------------------------- */

hcga_status cu_op_conv2d_fwd(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_conv2d_bwd_data(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_conv2d_bwd_filter(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_bn_fwd_train(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_bn_fwd_infer(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_bn_bwd(hcga_backend *be, const hcga_op_args *a);
hcga_status cu_op_gemm(hcga_backend *be, const hcga_op_args *a);
void cu_dnn_release(hcga_backend *be); /* frees the algorithm cache */

/* ---- ops implemented in cuda_ops.c ----------------------------------------------- */

extern const hcga_op_fn cu_op_table[HCGA_OP_COUNT];

/* Code stored in the device error flag by op `op`. */
static inline int cu_flag_code(int op)
{
    return op + 1;
}

#endif
