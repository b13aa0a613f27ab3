/*
 * cpu_perf.c - perf probe of the CPU backend (not a unit test).
 *
 * Measures conv2d forward / backward-data / backward-filter GFLOP/s of the
 * plugin on HRNet-W32-sized layers and, for comparison, raw cblas_sgemm on
 * the GEMM each conv lowers to and on a square 1024^3 product.
 *
 *   backends/cpu/cpu_perf [threads] [reps] [plugin.so]
 *
 * HCGA_PERF_CPUTIME=1 times with the process CPU clock instead of the wall
 * clock (useful with threads=1 on a loaded machine).
 *
 * Default plugin: the build tree's .libs/hcga_backend_cpu.so.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcga_plugin.h"

static const hcga_backend_iface *IF;
static hcga_backend *BE;

/* Wall time, or with HCGA_PERF_CPUTIME=1 the process CPU time (less noisy on
 * a shared machine, meaningful for threads=1 only). */
static clockid_t g_clock = CLOCK_MONOTONIC;
static int g_threads = 1; /* OpenBLAS threads of the raw sgemm comparisons */

static double now(void)
{
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hcga_tensor tensor4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    hcga_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = HCGA_F32;
    t.ndim = 4;
    int64_t sh[4] = {a, b, c, d}, s = 1;
    for (int i = 3; i >= 0; i--) {
        t.shape[i] = sh[i];
        t.stride[i] = s;
        s *= sh[i];
    }
    t.stride[4] = t.shape[4] = 1;
    if (IF->buffer_alloc(BE, (uint64_t)s * 4, &t.buf) != HCGA_OK) {
        fprintf(stderr, "cpu_perf: buffer_alloc failed: %s\n", IF->last_error(BE));
        exit(1);
    }
    float *tmp = malloc((size_t)s * 4);
    for (int64_t i = 0; i < s; i++) tmp[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    IF->buffer_write(BE, t.buf, 0, tmp, (uint64_t)s * 4);
    free(tmp);
    return t;
}

typedef struct layer {
    const char *name;
    int N, C, K, H, W, R, S, stride, pad;
} layer;

/* Best time of reps runs of op. */
static double time_op(hcga_op_args *a, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* first run warms up */
        double t0 = now();
        hcga_status st = IF->ops[a->op](BE, a);
        double t = now() - t0;
        if (st != HCGA_OK) {
            fprintf(stderr, "cpu_perf: %s: %s\n", hcga_op_name(a->op), IF->last_error(BE));
            exit(1);
        }
        if (r > 0 && t < best) best = t;
    }
    return best;
}

static double time_sgemm(int M, int N, int K, int ta, int tb, int reps)
{
    float *A = calloc((size_t)M * K, 4), *B = calloc((size_t)K * N, 4), *Cm = calloc((size_t)M * N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 13) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    openblas_set_num_threads(g_threads); /* the plugin keeps OpenBLAS at 1 */
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, Cm, N);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(A), free(B), free(Cm);
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *path = argc > 3 ? argv[3] : HCGA_BUILDDIR "/.libs/hcga_backend_cpu.so";
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "usage: cpu_perf [threads >= 1] [reps >= 1] [plugin.so]\n");
        return 2;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "cpu_perf: %s\n", dlerror());
        return 1;
    }
    const hcga_plugin_descriptor *d = dlsym(h, HCGA_PLUGIN_SYMBOL);
    if (!d || d->magic != HCGA_PLUGIN_MAGIC) {
        fprintf(stderr, "cpu_perf: %s has no valid descriptor\n", path);
        return 1;
    }
    const char *ct = getenv("HCGA_PERF_CPUTIME");
    if (ct && strcmp(ct, "1") == 0) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    IF = d->get_iface();
    char opts[32], err[256];
    snprintf(opts, sizeof opts, "threads=%d", threads);
    if (IF->create(0, opts, &BE, err, sizeof err) != HCGA_OK) {
        fprintf(stderr, "cpu_perf: %s\n", err);
        return 1;
    }
    hcga_device_info info;
    IF->device_info(0, &info);
    g_threads = threads;
    printf("device: %s, threads=%d, best of %d, %s clock\n", info.name, threads, reps,
           g_clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    double tsq = time_sgemm(1024, 1024, 1024, 0, 0, reps);
    printf("raw sgemm 1024^3: %.1f GFLOP/s\n\n", 2.0 * 1024 * 1024 * 1024 / tsq * 1e-9);

    const layer layers[] = {
        {"32->32 3x3 s1 @64x32", 8, 32, 32, 64, 32, 3, 3, 1, 1},
        {"256->64 1x1 @64x32", 8, 256, 64, 64, 32, 1, 1, 1, 0},
        {"3->64 3x3 s2 @256x128", 8, 3, 64, 256, 128, 3, 3, 2, 1},
        {"64->64 3x3 s1 @64x32", 8, 64, 64, 64, 32, 3, 3, 1, 1},
        {"256->256 3x3 s1 @8x4", 8, 256, 256, 8, 4, 3, 3, 1, 1},
    };
    printf("%-24s %8s %8s %8s   %8s %8s %8s  (GFLOP/s)\n", "layer (N=8)", "fwd", "bwd_data",
           "bwd_filt", "sgemm_f", "sgemm_d", "sgemm_w");
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const layer *L = &layers[i];
        int P = (L->H + 2 * L->pad - L->R) / L->stride + 1, Q = (L->W + 2 * L->pad - L->S) / L->stride + 1;
        hcga_tensor x = tensor4(L->N, L->C, L->H, L->W), w = tensor4(L->K, L->C, L->R, L->S);
        hcga_tensor y = tensor4(L->N, L->K, P, Q), dx = tensor4(L->N, L->C, L->H, L->W);
        hcga_tensor dw = tensor4(L->K, L->C, L->R, L->S);
        hcga_op_args a;
        memset(&a, 0, sizeof a);
        a.p.conv = (hcga_conv_params){L->stride, L->stride, L->pad, L->pad, 1, 1};
        double flops = 2.0 * L->N * L->K * L->C * L->R * L->S * P * Q;
        a.op = HCGA_OP_CONV2D_FWD, a.num_in = 2, a.num_out = 1;
        a.in[0] = &x, a.in[1] = &w, a.out[0] = &y;
        double tf = time_op(&a, reps);
        a.op = HCGA_OP_CONV2D_BWD_DATA, a.in[0] = &y, a.in[1] = &w, a.out[0] = &dx;
        double tbd = time_op(&a, reps);
        a.op = HCGA_OP_CONV2D_BWD_FILTER, a.in[0] = &x, a.in[1] = &y, a.out[0] = &dw;
        double tbw = time_op(&a, reps);
        int CRS = L->C * L->R * L->S, cols = L->N * P * Q;
        double gf = time_sgemm(L->K, cols, CRS, 0, 0, reps);
        double gd = time_sgemm(CRS, cols, L->K, 1, 0, reps);
        double gw = time_sgemm(L->K, CRS, cols, 0, 1, reps);
        printf("%-24s %8.1f %8.1f %8.1f   %8.1f %8.1f %8.1f\n", L->name, flops / tf * 1e-9,
               flops / tbd * 1e-9, flops / tbw * 1e-9, flops / gf * 1e-9, flops / gd * 1e-9,
               flops / gw * 1e-9);
        hcga_buffer *bufs[] = {x.buf, w.buf, y.buf, dx.buf, dw.buf};
        for (int k = 0; k < 5; k++) IF->buffer_free(BE, bufs[k]);
    }
    printf("\nsgemm_f/d/w: one cblas_sgemm of the whole batch's forward / data / filter GEMM\n"
           "(no im2col) with OpenBLAS's own threads, the ceiling the conv paths can approach.\n");
    IF->destroy(BE);
    return 0;
}
