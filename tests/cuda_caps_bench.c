/*
 * cuda_caps_bench.c - measurements of the CUDA backend's ABI 1.2 groups and
 * its waiting, for scripts/gpu-check.sh on a GPU machine (not a test: it
 * needs a GPU, and it prints numbers).  Through the frontend's loader:
 *
 *   cuda_caps_bench nccl1   one-rank NCCL allreduce (SUM, in place) of a
 *                           100 MB F32 buffer: ms per call and GB/s
 *                           (bytes / time; with one rank NCCL moves nothing
 *                           between GPUs, so this is the cost of the path:
 *                           event, stream wait, NCCL launch);
 *   cuda_caps_bench wait    200 GEMMs 4096^3 F32 enqueued, then synchronize
 *                           and a 4-byte buffer_read timed in wall and
 *                           process CPU time, with wait=block and wait=spin:
 *                           block must leave the CPU time far below the wall
 *                           time (fails when above 20%);
 *   cuda_caps_bench graph   100 small ADDs per step, 200 steps, direct and
 *                           as a captured graph replayed: us per step, and
 *                           the final buffer equal bit for bit (fails if not).
 *
 * Exit status 0 when the measurement ran and its check held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hcga_be *open_cuda(const char *opts)
{
    hcga_be *be = NULL;
    char err[1024];
    if (hcga_be_open("cuda", 0, opts, &be, err, sizeof err) != 0) {
        fprintf(stderr, "cuda_caps_bench: %s\n", err);
        exit(2);
    }
    return be;
}

#define TRY(be, expr)                                                                       \
    do {                                                                                    \
        if ((expr) != HCGA_OK) {                                                            \
            fprintf(stderr, "cuda_caps_bench: %s failed: %s\n", #expr, hcga_be_error(be)); \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static int bench_nccl1(void)
{
    hcga_be *be = open_cuda(NULL);
    if (!hcga_be_has_comm(be)) {
        fprintf(stderr, "cuda_caps_bench: the cuda plugin has no collectives (built without NCCL)\n");
        return 1;
    }
    unsigned char id[HCGA_COMM_ID_BYTES];
    uint32_t len = 0;
    TRY(be, hcga_be_comm_id(be, id, &len));
    TRY(be, hcga_be_comm_init(be, id, len, 0, 1));
    const int64_t n = 25000000; /* 100 MB of F32 */
    hcga_buffer *b = NULL;
    TRY(be, hcga_be_alloc(be, (uint64_t)n * 4, &b));
    hcga_tensor t = hcga_tensor_make(b, 0, HCGA_F32, 1, &n);
    hcga_op_args fill = {.op = HCGA_OP_FILL, .num_out = 1, .out = {&t}, .p.scalar = {1.0, 0.0}};
    TRY(be, hcga_be_run(be, &fill));
    for (int i = 0; i < 3; i++) TRY(be, hcga_be_allreduce(be, &t, HCGA_COMM_SUM));
    TRY(be, hcga_be_comm_wait(be));
    TRY(be, hcga_be_sync(be));
    const int iters = 20;
    double t0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < iters; i++) TRY(be, hcga_be_allreduce(be, &t, HCGA_COMM_SUM));
    TRY(be, hcga_be_comm_wait(be));
    TRY(be, hcga_be_sync(be));
    double dt = (now_s(CLOCK_MONOTONIC) - t0) / iters;
    float v = 0;
    TRY(be, hcga_be_read(be, b, 0, &v, 4));
    printf("nccl1: allreduce sum f32 in place, 1 rank, %lld bytes: %.3f ms per call, %.1f GB/s (value %g, expected 1)\n",
           (long long)n * 4, dt * 1e3, (double)n * 4 / dt / 1e9, (double)v);
    hcga_be_free(be, b);
    hcga_be_close(be);
    return v == 1.0f ? 0 : 1;
}

/* Enqueue `count` GEMMs y = a*b of m x m F32. */
static void gemms(hcga_be *be, hcga_tensor *a, hcga_tensor *y, int count)
{
    hcga_op_args g = {.op = HCGA_OP_GEMM, .num_in = 2, .num_out = 1, .in = {a, a}, .out = {y}};
    g.p.gemm.alpha = 1e-3;
    g.p.gemm.beta = 0.0;
    for (int i = 0; i < count; i++) TRY(be, hcga_be_run(be, &g));
}

static int bench_wait(void)
{
    const char *modes[2] = {"wait=block", "wait=spin"};
    double share[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        hcga_be *be = open_cuda(modes[k]);
        const int64_t m = 4096, shape[2] = {m, m};
        hcga_buffer *ba = NULL, *by = NULL;
        TRY(be, hcga_be_alloc(be, (uint64_t)(m * m * 4), &ba));
        TRY(be, hcga_be_alloc(be, (uint64_t)(m * m * 4), &by));
        hcga_tensor a = hcga_tensor_make(ba, 0, HCGA_F32, 2, shape), y = hcga_tensor_make(by, 0, HCGA_F32, 2, shape);
        hcga_op_args fill = {.op = HCGA_OP_FILL, .num_out = 1, .out = {&a}, .p.scalar = {0.5, 0.0}};
        TRY(be, hcga_be_run(be, &fill));
        gemms(be, &a, &y, 2);
        TRY(be, hcga_be_sync(be));
        const char *what[2] = {"synchronize", "buffer_read"};
        for (int r = 0; r < 2; r++) {
            gemms(be, &a, &y, 200);
            double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
            float v = 0;
            if (r == 0) TRY(be, hcga_be_sync(be));
            else TRY(be, hcga_be_read(be, by, 0, &v, 4));
            double wall = now_s(CLOCK_MONOTONIC) - w0, cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            printf("wait: %s, %s after 200 GEMMs 4096^3: %.1f ms wall, %.1f ms CPU (%.0f%%)\n", modes[k], what[r],
                   wall * 1e3, cpu * 1e3, 100.0 * cpu / wall);
            if (cpu / wall > share[k]) share[k] = cpu / wall;
        }
        hcga_be_free(be, ba);
        hcga_be_free(be, by);
        hcga_be_close(be);
    }
    printf("wait: CPU share while waiting: block %.0f%%, spin %.0f%% (block must stay under 20%%)\n", 100 * share[0],
           100 * share[1]);
    return share[0] < 0.2 ? 0 : 1;
}

/* One step: 100 ADDs x = 1*x + 1e-3*c on 1024 floats. */
static void small_step(hcga_be *be, hcga_tensor *x, hcga_tensor *c)
{
    hcga_op_args a = {.op = HCGA_OP_ADD, .num_in = 2, .num_out = 1, .in = {x, c}, .out = {x}};
    a.p.scalar.a = 1.0;
    a.p.scalar.b = 1e-3;
    for (int i = 0; i < 100; i++) TRY(be, hcga_be_run(be, &a));
}

static int bench_graph(void)
{
    hcga_be *be = open_cuda(NULL);
    if (!hcga_be_has_capture(be)) {
        fprintf(stderr, "cuda_caps_bench: the cuda plugin has no graph capture\n");
        return 1;
    }
    const int64_t n = 1024;
    hcga_buffer *bx = NULL, *bc = NULL;
    TRY(be, hcga_be_alloc(be, n * 4, &bx));
    TRY(be, hcga_be_alloc(be, n * 4, &bc));
    hcga_tensor x = hcga_tensor_make(bx, 0, HCGA_F32, 1, &n), c = hcga_tensor_make(bc, 0, HCGA_F32, 1, &n);
    float init[1024], direct[1024], graph[1024];
    for (int i = 0; i < 1024; i++) init[i] = (float)i / 1024.0f;
    TRY(be, hcga_be_write(be, bc, 0, init, sizeof init));
    const int steps = 200;
    double us[2];
    for (int k = 0; k < 2; k++) {
        TRY(be, hcga_be_write(be, bx, 0, init, sizeof init));
        hcga_capture *rec = NULL;
        if (k == 1) {
            TRY(be, hcga_be_capture_begin(be));
            small_step(be, &x, &c);
            TRY(be, hcga_be_capture_end(be, &rec));
        } else {
            small_step(be, &x, &c); /* warm-up, as a capture would need */
            TRY(be, hcga_be_write(be, bx, 0, init, sizeof init));
        }
        TRY(be, hcga_be_sync(be));
        double t0 = now_s(CLOCK_MONOTONIC);
        for (int s = 0; s < steps; s++) {
            if (k == 1) TRY(be, hcga_be_capture_replay(be, rec));
            else small_step(be, &x, &c);
        }
        TRY(be, hcga_be_sync(be));
        us[k] = (now_s(CLOCK_MONOTONIC) - t0) / steps * 1e6;
        TRY(be, hcga_be_read(be, bx, 0, k ? graph : direct, sizeof direct));
        hcga_be_capture_free(be, rec);
    }
    int same = memcmp(direct, graph, sizeof direct) == 0;
    printf("graph: 100 ADDs of 1024 f32 per step, %d steps: direct %.1f us/step, graph replay %.1f us/step (%.2fx); "
           "results %s\n",
           steps, us[0], us[1], us[0] / us[1], same ? "bitwise equal" : "DIFFER");
    hcga_be_free(be, bx);
    hcga_be_free(be, bc);
    hcga_be_close(be);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "nccl1") == 0) return bench_nccl1();
    if (argc == 2 && strcmp(argv[1], "wait") == 0) return bench_wait();
    if (argc == 2 && strcmp(argv[1], "graph") == 0) return bench_graph();
    fprintf(stderr, "usage: cuda_caps_bench nccl1|wait|graph\n");
    return 2;
}
