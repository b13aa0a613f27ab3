/*
 * cpu_internal.h - shared declarations of the reference CPU backend.
 *
 * The backend runs every op synchronously on the calling thread, helped by a
 * small persistent pthread pool (cpu_pool.c) for the loops and the matrix
 * products: OpenBLAS itself always runs single-threaded, in whichever pool
 * thread calls it, on image groups or GEMM slices the pool hands out.  Work
 * is always split into ranges that depend only on the problem and the thread
 * count, and every reduction is summed in a fixed order, so the same thread
 * count gives the same bits.
 */
#ifndef HCGA_CPU_INTERNAL_H
#define HCGA_CPU_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "hcga_plugin.h"

/* Alignment of every buffer (the ABI asks for at least 256 bytes). */
#define CPU_ALIGN 256

struct hcga_buffer {
    void *data;
    uint64_t size;
};

/* A task runs the index range [begin, end) on pool thread tid. */
typedef void (*cpu_task_fn)(void *ctx, int64_t begin, int64_t end, int tid);

typedef struct cpu_pool cpu_pool;

/* Starts nthreads-1 workers (the caller is thread 0).  NULL on failure. */
cpu_pool *cpu_pool_create(int nthreads, char *err, size_t err_len);
void cpu_pool_destroy(cpu_pool *p);
/* Splits [0, n) into at most nthreads contiguous ranges of at least `grain`
 * indices each (ranges depend only on n, grain and the thread count) and
 * runs them in parallel; returns when all are done. */
void cpu_pool_run(cpu_pool *p, int64_t n, int64_t grain, cpu_task_fn fn, void *ctx);

/* Workspace slots: 0..3 belong to the f32 / f64 kernels; the half forms
 * of the convolutions and GEMM (cpu_ops.c) keep their f32 copies of the
 * call's tensors in the slots from CPU_WS_HALF on (inputs, then outputs),
 * so those stay valid while the f32 kernel uses its own slots. */
#define CPU_WS_HALF 4
#define CPU_NUM_WS (CPU_WS_HALF + HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT)

struct hcga_backend {
    int threads;
    cpu_pool *pool;
    char err[512];
    /* Growable 256-byte-aligned workspaces for the conv paths etc. */
    void *ws[CPU_NUM_WS];
    size_t ws_size[CPU_NUM_WS];
    /* Per-thread scratch (threads entries), grown before a parallel run. */
    void **scratch;
    size_t *scratch_size;
};

/* Records "fmt..." as the last error and returns code. */
hcga_status cpu_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Workspace slot `slot` of at least `bytes` bytes (NULL if out of memory). */
void *cpu_ws(hcga_backend *be, int slot, size_t bytes);
/* Makes every thread's scratch at least `bytes` bytes; 0 on success. */
int cpu_scratch_reserve(hcga_backend *be, size_t bytes);

/* Parallel for over [0, n) in ranges of at least grain indices. */
static inline void cpu_parallel(hcga_backend *be, int64_t n, int64_t grain, cpu_task_fn fn,
                                void *ctx)
{
    if (n <= 0) return;
    cpu_pool_run(be->pool, n, grain, fn, ctx);
}

/* Makes OpenBLAS run single-threaded in the calling thread (the pool
 * parallelises around it); re-asserted before BLAS calls because the setting
 * is process-wide. */
void cpu_blas_threads(hcga_backend *be);

/* The op table (cpu_ops.c). */
extern const hcga_op_fn cpu_op_table[HCGA_OP_COUNT];
int cpu_supports(hcga_backend *be, int op, int dtype);

/* Address of element 0 of a tensor. */
static inline void *cpu_ptr(const hcga_tensor *t)
{
    return (char *)t->buf->data + t->offset;
}

#endif
