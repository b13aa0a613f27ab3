/*
 * cuda_capture.c - graph capture for the CUDA backend (ABI 1.2 capture_*):
 * CUDA Graphs made by stream capture of the instance's compute stream.
 *
 * capture_begin starts cudaStreamBeginCapture in thread-local mode (only
 * this thread's capture-unsafe calls, such as cudaMalloc, invalidate the
 * capture); every op call until capture_end is recorded into the graph
 * instead of run.  capture_end ends the capture, instantiates the graph and
 * returns it; capture_replay launches it on the compute stream, ordered
 * like any other call.
 *
 * What may not happen while capturing, and how it is kept out:
 *  - host waits and copies: buffer_alloc, buffer_read, buffer_write and
 *    synchronize return HCGA_ERR_INVALID (cu_not_capturing); sync=1's wait
 *    after every op is skipped (its checks happen at the next synchronize);
 *  - allocations: cuDNN workspace and kernel scratch growth is refused
 *    (cuda_core.c), and so is a cudnnFind* search (algo=find/cache on a
 *    convolution not chosen yet, cuda_dnn.c), because both need the
 *    sequence to have run once outside capture: the frontend captures only
 *    such sequences, so in a good capture they never happen;
 *  - frees: buffer_free defers the free to capture_end (a captured
 *    cudaFreeAsync would free the buffer at every replay);
 *  - collectives: refused while capturing (cuda_comm.c).
 * The first op failure while capturing is kept; capture_end then ends the
 * capture anyway (so the stream leaves capture mode and stays usable),
 * discards the graph and reports that failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

struct hcga_capture {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

hcga_status cu_not_capturing(hcga_backend *be, const char *what)
{
    if (!be->capturing) return HCGA_OK;
    return cu_err(be, HCGA_ERR_INVALID,
                  "%s: not allowed while capturing a graph (between capture_begin and capture_end)", what);
}

void cu_capture_note_failure(hcga_backend *be, hcga_status st)
{
    if (!be->capturing || be->capture_st != HCGA_OK) return;
    be->capture_st = st;
    snprintf(be->capture_err, sizeof be->capture_err, "%.500s", be->err);
}

int cu_capture_defer_free(hcga_backend *be, void *base)
{
    if (!be->capturing) return 0;
    if (be->n_deferred == be->cap_deferred) {
        size_t cap = be->cap_deferred ? 2 * be->cap_deferred : 16;
        void **d = realloc(be->deferred, cap * sizeof *d);
        if (!d) {
            /* leak the device memory rather than capture a free of it */
            cu_err(be, HCGA_ERR_NOMEM, "buffer_free: out of host memory while capturing");
            cu_capture_note_failure(be, HCGA_ERR_NOMEM);
            return 1;
        }
        be->deferred = d;
        be->cap_deferred = cap;
    }
    be->deferred[be->n_deferred++] = base;
    return 1;
}

/* The frees deferred while capturing, now on the stream again. */
static void free_deferred(hcga_backend *be)
{
    for (size_t i = 0; i < be->n_deferred; i++) cu_dev_free(be, be->deferred[i]);
    free(be->deferred);
    be->deferred = NULL;
    be->n_deferred = be->cap_deferred = 0;
}

hcga_status cu_capture_begin(hcga_backend *be)
{
    const char *op = "capture_begin";
    if (be->capturing) return cu_err(be, HCGA_ERR_INVALID, "capture_begin: a capture is already in progress");
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    CU_CUDA(be, op, "cudaStreamBeginCapture",
            cudaStreamBeginCapture(be->stream, cudaStreamCaptureModeThreadLocal));
    be->capturing = 1;
    be->capture_st = HCGA_OK;
    be->capture_err[0] = '\0';
    return HCGA_OK;
}

/* End the stream's capture whatever happened; the graph (NULL if the
 * capture was invalidated) goes to *g. */
static cudaError_t end_capture(hcga_backend *be, cudaGraph_t *g)
{
    *g = NULL;
    cudaError_t e = cudaStreamEndCapture(be->stream, g);
    be->capturing = 0;
    free_deferred(be);
    return e;
}

hcga_status cu_capture_end(hcga_backend *be, hcga_capture **out)
{
    const char *op = "capture_end";
    *out = NULL;
    if (!be->capturing)
        return cu_err(be, HCGA_ERR_INVALID, "capture_end: no capture in progress (capture_begin first)");
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    cudaGraph_t g = NULL;
    cudaError_t e = end_capture(be, &g);
    if (be->capture_st != HCGA_OK) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        return cu_err(be, be->capture_st, "capture_end: an op failed while capturing, no graph: %s",
                      be->capture_err);
    }
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        return cu_fail_cuda(be, op, "cudaStreamEndCapture", e);
    }
    hcga_capture *rec = calloc(1, sizeof *rec);
    if (!rec) {
        cudaGraphDestroy(g);
        return cu_err(be, HCGA_ERR_NOMEM, "capture_end: out of host memory");
    }
    rec->graph = g;
    e = cudaGraphInstantiate(&rec->exec, g, 0);
    if (e != cudaSuccess) {
        cudaGraphDestroy(g);
        free(rec);
        return cu_fail_cuda(be, op, "cudaGraphInstantiate", e);
    }
    *out = rec;
    return HCGA_OK;
}

hcga_status cu_capture_replay(hcga_backend *be, hcga_capture *rec)
{
    const char *op = "capture_replay";
    CU_TRY(cu_not_capturing(be, op));
    if (!rec || !rec->exec) return cu_err(be, HCGA_ERR_INVALID, "capture_replay: no recording");
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    CU_CUDA(be, op, "cudaGraphLaunch", cudaGraphLaunch(rec->exec, be->stream));
    if (be->sync_each) return cu_wait_and_check(be, op);
    return HCGA_OK;
}

void cu_capture_free(hcga_backend *be, hcga_capture *rec)
{
    if (!rec) return;
    if (be) cudaSetDevice(be->device);
    /* a launched graph may still run: destroying its executable is
     * allowed then (CUDA keeps it alive until the launch completes) */
    if (rec->exec) cudaGraphExecDestroy(rec->exec);
    if (rec->graph) cudaGraphDestroy(rec->graph);
    cudaGetLastError();
    free(rec);
}

void cu_capture_abandon(hcga_backend *be)
{
    if (!be->capturing) return;
    cudaGraph_t g = NULL;
    end_capture(be, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
}
