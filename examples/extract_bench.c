/*
 * extract_bench.c - how fast libhcga turns images into features: the
 * single-image latency (a model loaded with batch 1, one image per
 * hcga_extract call) and the batch throughput (batch B, B images per call)
 * of a checkpoint on a backend, on fixed pseudo-random 8-bit RGB images of
 * the model's input size.  Built in the tree as examples/extract_bench
 * (scripts/api_latency.sh runs it beside the PyTorch reference); it uses
 * only the public API.
 *
 *   extract_bench CHECKPOINT [--backend B] [--threads N] [--batch B]
 *                 [--iters N] [--warmup N]
 */
#include <hcga/hcga.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Seconds per hcga_extract call of n images, median of iters calls. */
static int time_extract(hcga_context *ctx, const char *ckpt, int batch, int iters, int warmup, double *median,
                        hcga_model_info *info)
{
    hcga_model_params mp = hcga_model_default_params();
    mp.batch = batch;
    hcga_model *m = NULL;
    if (hcga_model_load(ctx, ckpt, &mp, &m) != HCGA_SUCCESS) {
        fprintf(stderr, "extract_bench: %s\n", hcga_context_error(ctx));
        return -1;
    }
    hcga_model_get_info(m, info);
    const int w = info->input_width, h = info->input_height;
    uint8_t *px = malloc((size_t)batch * w * h * 3);
    hcga_image_view *v = malloc(sizeof *v * (size_t)batch);
    double *t = malloc(sizeof *t * (size_t)iters);
    hcga_embeddings e;
    int rc = -1;
    if (!px || !v || !t || hcga_embeddings_alloc(m, batch, &e) != HCGA_SUCCESS) goto out;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)batch * w * h * 3; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        px[i] = (uint8_t)(s >> 56);
    }
    for (int i = 0; i < batch; i++) v[i] = (hcga_image_view){px + (size_t)i * w * h * 3, w, h, 3, 0};
    for (int it = -warmup; it < iters; it++) {
        double t0 = now();
        if (hcga_extract(m, v, batch, &e, 0) != HCGA_SUCCESS) {
            fprintf(stderr, "extract_bench: %s\n", hcga_context_error(ctx));
            hcga_embeddings_free(&e);
            goto out;
        }
        if (it >= 0) t[it] = now() - t0;
    }
    for (int i = 1; i < iters; i++) /* insertion sort: iters is small */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    *median = t[iters / 2];
    hcga_embeddings_free(&e);
    rc = 0;
out:
    free(px);
    free(v);
    free(t);
    hcga_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: extract_bench CHECKPOINT [--backend B] [--threads N] [--batch B] [--iters N] [--warmup N]\n");
        return argc < 2 ? 2 : 0;
    }
    hcga_context_params cp = hcga_context_default_params();
    int batch = 32, iters = 10, warmup = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) cp.backend = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) cp.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "extract_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || iters < 1 || warmup < 0) {
        fprintf(stderr, "extract_bench: --batch and --iters must be >= 1, --warmup >= 0\n");
        return 2;
    }
    hcga_context *ctx = NULL;
    if (hcga_context_new(&cp, &ctx) != HCGA_SUCCESS) {
        fprintf(stderr, "extract_bench: %s\n", hcga_context_error(ctx));
        hcga_context_free(ctx);
        return 1;
    }
    const char *bname = "", *dname = "";
    hcga_context_backend(ctx, &bname, &dname);
    hcga_model_info info;
    double t1, tb;
    if (time_extract(ctx, argv[1], 1, iters, warmup, &t1, &info) ||
        time_extract(ctx, argv[1], batch, iters, warmup, &tb, &info)) {
        hcga_context_free(ctx);
        return 1;
    }
    printf("hcga_extract on %s (%s), input %dx%d: single image %.1f ms; batch %d: %.1f ms = %.1f images/s\n", bname,
           dname, info.input_height, info.input_width, 1e3 * t1, batch, 1e3 * tb, batch / tb);
    printf("{\"backend\": \"%s\", \"latency_ms\": %.3f, \"batch\": %d, \"batch_ms\": %.3f, \"images_per_s\": %.2f}\n",
           bname, 1e3 * t1, batch, 1e3 * tb, batch / tb);
    hcga_context_free(ctx);
    return 0;
}
