/*
 * cuda_core.c - what every host file of the CUDA backend shares: error
 * messages, device memory (buffers, the cuDNN workspace, kernel scratch) and
 * waiting for the stream with the device-side error flag.  It depends on no
 * other file of the backend (see the layering in cuda_internal.h).
 *
 * Waiting (option wait=block|spin).  cudaStreamSynchronize waits the way the
 * context's scheduling flag says, and the default flag (auto) spins a core
 * at 100% while the GPU works when there are fewer contexts than cores: the
 * whole training run on the H100 kept one core busy.  The alternative,
 * cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync), changes the
 * process-wide primary context and only takes effect before that context
 * exists, which a plugin cannot promise (another instance, or another
 * library in the process, may have made it already).  So the default,
 * wait=block, records an event created with cudaEventBlockingSync at the end
 * of the stream and waits with cudaEventSynchronize, which puts the thread
 * to sleep until the event completes; it affects this instance only.  Spin
 * waiting can return a few microseconds sooner, which matters only for
 * many tiny waits, so wait=spin keeps cudaStreamSynchronize.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- error messages --------------------------------------------------------- */

hcga_status cu_err(hcga_backend *be, hcga_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return st;
}

hcga_status cu_fail_cuda(hcga_backend *be, const char *op, const char *call, cudaError_t e)
{
    hcga_status st = e == cudaErrorMemoryAllocation ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    return cu_err(be, st, "%s in %s (%s): %s", cudaGetErrorName(e), op, call, cudaGetErrorString(e));
}

hcga_status cu_fail_cudnn(hcga_backend *be, const char *op, const char *call, cudnnStatus_t s)
{
    char detail[512];
    detail[0] = '\0';
    cudnnGetLastErrorString(detail, sizeof detail);
    detail[sizeof detail - 1] = '\0';
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    hcga_status st = HCGA_ERR_DEVICE;
    if (s == CUDNN_STATUS_BAD_PARAM || s == CUDNN_STATUS_NOT_SUPPORTED) st = HCGA_ERR_INVALID;
    if (s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED) st = HCGA_ERR_NOMEM;
    if (detail[0])
        return cu_err(be, st, "%s in %s (%s): %s", cudnnGetErrorString(s), op, call, detail);
    return cu_err(be, st, "%s in %s (%s)", cudnnGetErrorString(s), op, call);
}

hcga_status cu_fail_cublas(hcga_backend *be, const char *op, const char *call, cublasStatus_t s)
{
    hcga_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    if (s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_NOT_SUPPORTED) st = HCGA_ERR_INVALID;
    return cu_err(be, st, "%s in %s (%s): %s", cublasGetStatusName(s), op, call,
                  cublasGetStatusString(s));
}

/* ---- device memory ---------------------------------------------------------------- */

cudaError_t cu_dev_alloc(hcga_backend *be, size_t bytes, void **p)
{
    if (bytes == 0) bytes = 1;
    if (be->use_pool) return cudaMallocAsync(p, bytes, be->stream);
    return cudaMalloc(p, bytes);
}

cudaError_t cu_dev_free(hcga_backend *be, void *p)
{
    if (!p) return cudaSuccess;
    if (be->use_pool) return cudaFreeAsync(p, be->stream);
    return cudaFree(p);
}

cudaError_t cu_stream_wait(hcga_backend *be, const char **call)
{
    if (be->wait_spin || !be->wait_ev) {
        *call = "cudaStreamSynchronize";
        return cudaStreamSynchronize(be->stream);
    }
    *call = "cudaEventRecord";
    cudaError_t e = cudaEventRecord(be->wait_ev, be->stream);
    if (e != cudaSuccess) return e;
    *call = "cudaEventSynchronize";
    return cudaEventSynchronize(be->wait_ev);
}

/*
 * Growth while capturing is refused rather than captured: a captured
 * cudaFreeAsync/cudaMallocAsync pair would free the old workspace and
 * allocate a new one at every replay, and cudaMalloc is not allowed in a
 * capture at all.  The frontend captures only a sequence it has already run
 * once outside capture, so every workspace and scratch size it needs is
 * reached before capture_begin and growth never happens in a good capture.
 */
static hcga_status refuse_growth(hcga_backend *be, const char *op, const char *what, size_t have,
                                 size_t want)
{
    return cu_err(be, HCGA_ERR_INVALID,
                  "%s: the %s would grow from %zu to %zu bytes while capturing a graph (capture only "
                  "a sequence that has run once outside capture)",
                  op, what, have, want);
}

hcga_status cu_ensure_workspace(hcga_backend *be, const char *op, size_t bytes)
{
    if (bytes <= be->ws_size) return HCGA_OK;
    if (be->capturing) return refuse_growth(be, op, "cuDNN workspace", be->ws_size, bytes);
    CU_CUDA(be, op, "cudaFreeAsync", cu_dev_free(be, be->ws));
    be->ws = NULL;
    be->ws_size = 0;
    void *p = NULL;
    cudaError_t e = cu_dev_alloc(be, bytes, &p);
    if (e != cudaSuccess) {
        cu_fail_cuda(be, op, be->use_pool ? "cudaMallocAsync" : "cudaMalloc", e);
        size_t len = strlen(be->err);
        snprintf(be->err + len, sizeof be->err - len, " (cuDNN workspace of %zu bytes)", bytes);
        return e == cudaErrorMemoryAllocation ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    }
    be->ws = p;
    be->ws_size = bytes;
    return HCGA_OK;
}

hcga_status cu_ensure_scratch(hcga_backend *be, const char *op, size_t bytes)
{
    if (bytes <= be->scratch_size) return HCGA_OK;
    if (be->capturing) return refuse_growth(be, op, "kernel scratch", be->scratch_size, bytes);
    CU_CUDA(be, op, "cudaFreeAsync", cu_dev_free(be, be->scratch));
    be->scratch = NULL;
    be->scratch_size = 0;
    void *p = NULL;
    CU_CUDA(be, op, be->use_pool ? "cudaMallocAsync" : "cudaMalloc", cu_dev_alloc(be, bytes, &p));
    be->scratch = p;
    be->scratch_size = bytes;
    return HCGA_OK;
}

/* Wait for the stream and report errors recorded by kernels meanwhile. */
hcga_status cu_wait_and_check(hcga_backend *be, const char *op)
{
    CU_CUDA(be, op, "cudaMemcpyAsync",
            cudaMemcpyAsync(be->hflag, be->dflag, sizeof(int), cudaMemcpyDeviceToHost, be->stream));
    const char *call = "";
    cudaError_t e = cu_stream_wait(be, &call);
    if (e != cudaSuccess) return cu_fail_cuda(be, op, call, e);
    int code = *be->hflag;
    if (code == 0) return HCGA_OK;
    *be->hflag = 0;
    CU_CUDA(be, op, "cudaMemsetAsync", cudaMemsetAsync(be->dflag, 0, sizeof(int), be->stream));
    int bad_op = code - 1;
    const char *what = "an input value out of range";
    switch (bad_op) {
    case HCGA_OP_CE_LS_FWD:
    case HCGA_OP_CE_LS_BWD: what = "a label outside [0, C)"; break;
    case HCGA_OP_PIXEL_CE_FWD:
    case HCGA_OP_PIXEL_CE_BWD: what = "a label outside [0, K) that is not the ignore label"; break;
    case HCGA_OP_TRIPLET_BWD: what = "an index in hard[] outside [-1, N) (or a negative without a positive)"; break;
    default: break;
    }
    return cu_err(be, HCGA_ERR_INVALID, "%s: an earlier %s call got %s (found by the device; its outputs are NaN)",
                  op, hcga_op_name(bad_op), what);
}
