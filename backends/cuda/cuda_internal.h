/*
 * cuda_internal.h - the instance, error reporting and device memory of the
 * CUDA backend (implemented in cuda_core.c), shared by every host file.
 *
 * The host files depend on each other in one direction only:
 *
 *   cuda_backend.c  (plugin iface, instances, buffers, the op dispatcher)
 *        |  cuda_impl.h
 *        v
 *   cuda_dnn.c, cuda_ops.c  (the op implementations)
 *        |  cuda_internal.h, cuda_kernels.h
 *        v
 *   cuda_core.c  (errors, device memory, waiting)   k_*.cu (kernels)
 *
 * Argument checking is not here: the dispatcher runs the shared contract
 * checker (backends/common/hcga_contract.h) before any implementation.
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

/* One cached convolution algorithm choice; defined and used in cuda_dnn.c. */
struct cu_conv_entry;
/* NCCL's communicator (ncclComm_t is a pointer to it); only cuda_comm.c
 * includes nccl.h. */
struct ncclComm;

struct hcga_backend {
    int device;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;

    /* options */
    int tf32;          /* tf32=1: TF32 tensor cores for F32 GEMM/conv */
    int deterministic; /* deterministic=0 admits non-deterministic cuDNN algorithms */
    int algo_find;     /* algo=find or cache: cudnnFind* (timed) instead of heuristics */
    int algo_cache;    /* algo=cache: cudnnFind* results persisted (cuda_algo_db.h) */
    size_t ws_cap;     /* workspace_mb: largest cuDNN workspace considered */
    int sync_each;     /* sync=1: wait after every op so faults name their op */
    int wait_spin;     /* wait=spin: cudaStreamSynchronize; default wait=block (cu_stream_wait) */

    /* recorded at the end of the stream and waited on with the host thread
     * asleep (cudaEventBlockingSync); see cu_stream_wait */
    cudaEvent_t wait_ev;

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

    /* algorithm cache (cuda_dnn.c): open addressing, capacity a power of two */
    struct cu_conv_entry *algos;
    size_t algo_cap, algo_count;

    /* algo=cache: the persisted cudnnFind* results (cuda_algo_db.h), this
     * device's identity in them, and the file ("" when there is no usable
     * cache directory: the choices then stay in this process) */
    struct cu_algo_db *adb;
    char adb_device[256];
    char adb_path[4096];

    /* graph capture (cuda_capture.c): between capture_begin and capture_end
     * the stream is capturing; the first op failure meanwhile is kept and
     * reported by capture_end; buffers freed meanwhile are freed after it */
    int capturing;
    hcga_status capture_st;
    char capture_err[512];
    void **deferred;
    size_t n_deferred, cap_deferred;

    /* collectives (cuda_comm.c, built with NCCL): the communicator, the
     * communication stream, an event of the compute stream it waits on and
     * the event of its last collective */
    struct ncclComm *comm;
    cudaStream_t comm_stream;
    cudaEvent_t comm_ready, comm_done;
    int comm_pending; /* a collective was enqueued since the last synchronize */

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
/* The status our kernel launchers return (cudaGetLastError after their
 * launches): a failed launch ends the op with "<error> in <op> (kernel launch)". */
#define CU_LAUNCH(be, op, expr) CU_CUDA(be, op, "kernel launch", expr)

#define CU_TRY(e)                                  \
    do {                                           \
        hcga_status cu_st_ = (e);                  \
        if (cu_st_ != HCGA_OK) return cu_st_;      \
    } while (0)

/* ---- memory ---------------------------------------------------------------- */

cudaError_t cu_dev_alloc(hcga_backend *be, size_t bytes, void **p); /* on the stream's pool if any */
cudaError_t cu_dev_free(hcga_backend *be, void *p);                  /* NULL is a no-op */
/* Wait for the stream; report a device-side input error (error flag) or a
 * failure of the enqueued work as a failure of `op`. */
hcga_status cu_wait_and_check(hcga_backend *be, const char *op);
/* Block the host until the stream's work is done: wait=block records
 * wait_ev and sleeps in cudaEventSynchronize; wait=spin calls
 * cudaStreamSynchronize.  *call names the CUDA call for messages. */
cudaError_t cu_stream_wait(hcga_backend *be, const char **call);
/* Grow the cuDNN workspace / kernel scratch to at least bytes.  While the
 * stream is capturing a graph, growing is refused (HCGA_ERR_INVALID): see
 * cuda_capture.c. */
hcga_status cu_ensure_workspace(hcga_backend *be, const char *op, size_t bytes);
hcga_status cu_ensure_scratch(hcga_backend *be, const char *op, size_t bytes);

/* Device address of element 0 of t (NULL for an absent optional slot).
 * Only for tensors the contract checker accepted. */
static inline void *cu_ptr(const hcga_tensor *t)
{
    return t ? (void *)((char *)t->buf->ptr + t->offset) : NULL;
}

/* Optional slot i of the call: NULL when absent or beyond num_in / num_out. */
static inline const hcga_tensor *cu_in_opt(const hcga_op_args *a, int i)
{
    return i < a->num_in ? a->in[i] : NULL;
}
static inline const hcga_tensor *cu_out_opt(const hcga_op_args *a, int i)
{
    return i < a->num_out ? a->out[i] : NULL;
}

/* Code stored in the device error flag by op `op`. */
static inline int cu_flag_code(int op)
{
    return op + 1;
}

#endif
