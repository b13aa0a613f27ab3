/*
 * cuda_comm.c - collectives for the CUDA backend (ABI 1.2 comm_*) with NCCL.
 *
 * One backend instance is one NCCL rank.  comm_id is ncclGetUniqueId (rank
 * 0 hands the bytes to the other ranks through the frontend's transport),
 * comm_init is ncclCommInitRank.  Collectives run on a second stream, the
 * communication stream, so that backward can go on while a bucket of
 * gradients is being reduced:
 *
 *   compute stream:  ... op ... [record comm_ready]      ... [wait comm_done] op ...
 *   comm stream:          [wait comm_ready] ncclAllReduce [record comm_done]
 *
 * allreduce and broadcast are ordered after everything enqueued on the
 * compute stream before them (comm_ready) and run in place; comm_wait makes
 * the compute stream wait for the last collective (comm_done: the comm
 * stream is in order, so that covers every earlier one) without blocking
 * the host; synchronize waits for both streams.  Buffers reduced on the
 * comm stream must not be freed or overwritten before comm_wait.
 *
 * Built only with NCCL (configure says whether it was found, and defines
 * HCGA_HAVE_NCCL); without it the plugin has no collectives group and
 * cu_comm_release / cu_comm_join are no-ops.
 */
#include <stdio.h>
#include <string.h>

#include "cuda_impl.h"

#ifdef HCGA_HAVE_NCCL
#include <nccl.h>

/* "ncclAllReduce: unhandled cuda error (detail)" as HCGA_ERR_DEVICE. */
static hcga_status fail_nccl(hcga_backend *be, const char *call, ncclResult_t r)
{
    const char *detail = be->comm ? ncclGetLastError(be->comm) : NULL;
    if (detail && detail[0])
        return cu_err(be, HCGA_ERR_DEVICE, "%s: %s (%.400s)", call, ncclGetErrorString(r), detail);
    return cu_err(be, HCGA_ERR_DEVICE, "%s: %s", call, ncclGetErrorString(r));
}

#define CU_NCCL(be, call, expr)                                  \
    do {                                                         \
        ncclResult_t cu_r_ = (expr);                             \
        if (cu_r_ != ncclSuccess) return fail_nccl((be), (call), cu_r_); \
    } while (0)

hcga_status cu_comm_id(hcga_backend *be, void *id, uint32_t *len)
{
    if (!id || !len) return cu_err(be, HCGA_ERR_INVALID, "comm_id: no output");
    ncclUniqueId uid;
    CU_CUDA(be, "comm_id", "cudaSetDevice", cudaSetDevice(be->device));
    CU_NCCL(be, "ncclGetUniqueId", ncclGetUniqueId(&uid));
    _Static_assert(sizeof uid <= HCGA_COMM_ID_BYTES, "ncclUniqueId does not fit HCGA_COMM_ID_BYTES");
    memcpy(id, &uid, sizeof uid);
    *len = (uint32_t)sizeof uid;
    return HCGA_OK;
}

hcga_status cu_comm_init(hcga_backend *be, const void *id, uint32_t len, int rank, int nranks)
{
    const char *op = "comm_init";
    if (be->comm) return cu_err(be, HCGA_ERR_INVALID, "comm_init: this instance already joined a communicator");
    CU_TRY(cu_not_capturing(be, op));
    ncclUniqueId uid;
    if (!id || len != sizeof uid)
        return cu_err(be, HCGA_ERR_INVALID, "comm_init: the id has %u bytes, an ncclUniqueId %zu", (unsigned)len,
                      sizeof uid);
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return cu_err(be, HCGA_ERR_INVALID, "comm_init: rank %d of %d is out of range", rank, nranks);
    memcpy(&uid, id, sizeof uid);
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    if (!be->comm_stream)
        CU_CUDA(be, op, "cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&be->comm_stream, cudaStreamNonBlocking));
    if (!be->comm_ready)
        CU_CUDA(be, op, "cudaEventCreateWithFlags", cudaEventCreateWithFlags(&be->comm_ready, cudaEventDisableTiming));
    if (!be->comm_done)
        CU_CUDA(be, op, "cudaEventCreateWithFlags", cudaEventCreateWithFlags(&be->comm_done, cudaEventDisableTiming));
    ncclComm_t comm = NULL;
    CU_NCCL(be, "ncclCommInitRank", ncclCommInitRank(&comm, nranks, uid, rank));
    be->comm = comm;
    return HCGA_OK;
}

/* NCCL's type for a reducible dtype, or -1. */
static int nccl_type(int dtype)
{
    switch (dtype) {
    case HCGA_F32: return ncclFloat32;
    case HCGA_F64: return ncclFloat64;
    case HCGA_BF16: return ncclBfloat16;
    case HCGA_F16: return ncclFloat16;
    default: return -1;
    }
}

/* The tensor of a collective: present, F32/F64/BF16/F16, dense
 * C-contiguous and inside its buffer; its element count in *count. */
static hcga_status comm_tensor(hcga_backend *be, const char *what, const hcga_tensor *t, size_t *count)
{
    if (!be->comm) return cu_err(be, HCGA_ERR_INVALID, "%s: no communicator (comm_init first)", what);
    CU_TRY(cu_not_capturing(be, what));
    if (!t || !t->buf) return cu_err(be, HCGA_ERR_INVALID, "%s: no tensor", what);
    if (nccl_type(t->dtype) < 0)
        return cu_err(be, HCGA_ERR_INVALID, "%s: dtype %s (f32, f64, bf16 or f16 only)", what,
                      hcga_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS) return cu_err(be, HCGA_ERR_INVALID, "%s: ndim %d", what, t->ndim);
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] < 0) return cu_err(be, HCGA_ERR_INVALID, "%s: negative dimension", what);
        if (t->shape[i] > 1 && t->stride[i] != expect)
            return cu_err(be, HCGA_ERR_INVALID, "%s: the tensor is not dense C-contiguous", what);
        expect *= t->shape[i];
    }
    uint64_t bytes = (uint64_t)expect * hcga_dtype_size(t->dtype);
    if (t->offset > t->buf->bytes || bytes > t->buf->bytes - t->offset)
        return cu_err(be, HCGA_ERR_INVALID, "%s: the tensor lies outside its buffer", what);
    *count = (size_t)expect;
    return HCGA_OK;
}

/* Order the comm stream after the work enqueued so far on the compute stream. */
static hcga_status comm_after_compute(hcga_backend *be, const char *what)
{
    CU_CUDA(be, what, "cudaSetDevice", cudaSetDevice(be->device));
    CU_CUDA(be, what, "cudaEventRecord", cudaEventRecord(be->comm_ready, be->stream));
    CU_CUDA(be, what, "cudaStreamWaitEvent", cudaStreamWaitEvent(be->comm_stream, be->comm_ready, 0));
    return HCGA_OK;
}

static hcga_status comm_record_done(hcga_backend *be, const char *what)
{
    CU_CUDA(be, what, "cudaEventRecord", cudaEventRecord(be->comm_done, be->comm_stream));
    be->comm_pending = 1;
    return HCGA_OK;
}

hcga_status cu_allreduce(hcga_backend *be, const hcga_tensor *t, int comm_op)
{
    const char *what = "allreduce";
    size_t count = 0;
    CU_TRY(comm_tensor(be, what, t, &count));
    if (comm_op != HCGA_COMM_SUM && comm_op != HCGA_COMM_AVG)
        return cu_err(be, HCGA_ERR_INVALID, "allreduce: comm_op %d (HCGA_COMM_SUM or HCGA_COMM_AVG)", comm_op);
    if (count == 0) return HCGA_OK;
    CU_TRY(comm_after_compute(be, what));
    void *p = cu_ptr(t);
    CU_NCCL(be, "ncclAllReduce",
            ncclAllReduce(p, p, count, (ncclDataType_t)nccl_type(t->dtype), comm_op == HCGA_COMM_SUM ? ncclSum : ncclAvg,
                          be->comm, be->comm_stream));
    return comm_record_done(be, what);
}

hcga_status cu_broadcast(hcga_backend *be, const hcga_tensor *t, int root)
{
    const char *what = "broadcast";
    size_t count = 0;
    CU_TRY(comm_tensor(be, what, t, &count));
    int nranks = 0;
    CU_NCCL(be, "ncclCommCount", ncclCommCount(be->comm, &nranks));
    if (root < 0 || root >= nranks)
        return cu_err(be, HCGA_ERR_INVALID, "broadcast: root %d is not a rank (0..%d)", root, nranks - 1);
    if (count == 0) return HCGA_OK;
    CU_TRY(comm_after_compute(be, what));
    void *p = cu_ptr(t);
    CU_NCCL(be, "ncclBroadcast",
            ncclBroadcast(p, p, count, (ncclDataType_t)nccl_type(t->dtype), root, be->comm, be->comm_stream));
    return comm_record_done(be, what);
}

hcga_status cu_comm_wait(hcga_backend *be)
{
    const char *what = "comm_wait";
    if (!be->comm) return cu_err(be, HCGA_ERR_INVALID, "comm_wait: no communicator (comm_init first)");
    CU_TRY(cu_not_capturing(be, what));
    if (!be->comm_pending) return HCGA_OK;
    CU_CUDA(be, what, "cudaSetDevice", cudaSetDevice(be->device));
    CU_CUDA(be, what, "cudaStreamWaitEvent", cudaStreamWaitEvent(be->stream, be->comm_done, 0));
    return HCGA_OK;
}

hcga_status cu_comm_join(hcga_backend *be, const char *op)
{
    if (!be->comm_pending) return HCGA_OK;
    CU_CUDA(be, op, "cudaStreamWaitEvent", cudaStreamWaitEvent(be->stream, be->comm_done, 0));
    be->comm_pending = 0;
    return HCGA_OK;
}

void cu_comm_release(hcga_backend *be)
{
    if (be->comm_stream) cudaStreamSynchronize(be->comm_stream);
    if (be->comm) {
        ncclCommFinalize(be->comm);
        ncclCommDestroy(be->comm);
        be->comm = NULL;
    }
    if (be->comm_ready) cudaEventDestroy(be->comm_ready);
    if (be->comm_done) cudaEventDestroy(be->comm_done);
    if (be->comm_stream) cudaStreamDestroy(be->comm_stream);
    be->comm_ready = be->comm_done = NULL;
    be->comm_stream = NULL;
    cudaGetLastError();
}

#else /* no NCCL: nothing was started */

hcga_status cu_comm_join(hcga_backend *be, const char *op)
{
    (void)be;
    (void)op;
    return HCGA_OK;
}

void cu_comm_release(hcga_backend *be)
{
    (void)be;
}

#endif
