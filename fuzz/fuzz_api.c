/*
 * fuzz_api.c - libFuzzer target for the public API's load and extract paths
 * (include/hcga/hcga.h, frontend/api): the whole library is compiled into
 * the target with coverage, the cpu backend is dlopen'ed from the build tree.
 *
 * The first input byte picks what the rest is (see mode_of):
 *   0  caller images: a small header (sizes, channels, stride, count, first
 *      row) and pixels (repeated to the size the header asks for), given to
 *      hcga_extract on a model loaded once at start;
 *   1  an image file (JPEG, PNG or anything) for hcga_extract_files;
 *   2  a weights file for hcga_model_load (headers of real checkpoints as
 *      seeds: their data is far beyond -max_len, so these end in the
 *      truncation, metadata and model checks);
 *   3  a gallery file for hcga_gallery_load, then a search of it.
 * Every call must return a result code and leave a one-line message on
 * failure; the target aborts when a failure has an empty or multi-line
 * message.  The model comes from $HCGA_FUZZ_WEIGHTS (fuzz/fuzz_api.mk makes a
 * tiny one at 64x32 input with hcga train), run with batch 2 so that a
 * forward pass costs milliseconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hcga/hcga.h"

static hcga_context *ctx;
static hcga_model *model;
static hcga_embeddings rows; /* 4 rows of the model's features */

static void check_message(hcga_result r)
{
    if (r == HCGA_SUCCESS) return;
    const char *m = hcga_context_error(ctx);
    if (!m || !*m || strchr(m, '\n')) {
        fprintf(stderr, "fuzz_api: result %d with message '%s'\n", (int)r, m ? m : "(null)");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *w = getenv("HCGA_FUZZ_WEIGHTS");
    if (!w) {
        fprintf(stderr, "fuzz_api: set HCGA_FUZZ_WEIGHTS to a checkpoint of hcga train (make fuzz-api does)\n");
        exit(2);
    }
    hcga_context_params cp = hcga_context_default_params();
    cp.threads = 1;
    hcga_model_params mp = hcga_model_default_params();
    mp.batch = 2;
    if (hcga_context_new(&cp, &ctx) != HCGA_SUCCESS || hcga_model_load(ctx, w, &mp, &model) != HCGA_SUCCESS ||
        hcga_embeddings_alloc(model, 4, &rows) != HCGA_SUCCESS) {
        fprintf(stderr, "fuzz_api: %s\n", hcga_context_error(ctx));
        exit(2);
    }
    return 0;
}

/* data as a file only this process sees: /proc/self/fd/N of a memfd */
static int as_file(const uint8_t *data, size_t size, char *path, size_t len)
{
    int fd = memfd_create("fuzz_api", 0);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

static void fuzz_views(const uint8_t *d, size_t n)
{
    if (n < 6) return;
    hcga_image_view v[3];
    const int count = 1 + d[4] % 3, first = d[5] % 3;
    uint8_t *px[3] = {NULL, NULL, NULL};
    for (int i = 0; i < count; i++) {
        /* sizes -2..77, channels 0..4, stride 3*w-4 .. 3*w+11 or 0 */
        int w = d[0] % 80 - 2 + i, h = d[1] % 80 - 2, c = d[2] % 5;
        long stride = d[3] % 17 == 0 ? 0 : (long)3 * (w > 0 ? w : 0) + d[3] % 17 - 5;
        size_t need = (size_t)(stride > 0 ? stride : 3L * (w > 0 ? w : 0)) * (size_t)(h > 0 ? h : 0);
        if (need > 0) {
            px[i] = malloc(need);
            for (size_t k = 0; k < need; k++) px[i][k] = n > 6 ? d[6 + k % (n - 6)] : 0;
        }
        v[i] = (hcga_image_view){px[i], w, h, c, stride > 0 ? (size_t)stride : 0};
    }
    check_message(hcga_extract(model, v, count, &rows, first));
    for (int i = 0; i < count; i++) free(px[i]);
}

static void fuzz_file(const uint8_t *d, size_t n, int what)
{
    char path[64];
    int fd = as_file(d, n, path, sizeof path);
    if (fd < 0) return;
    if (what == 1) {
        const char *p[1] = {path};
        check_message(hcga_extract_files(model, p, 1, &rows, 3));
    } else if (what == 2) {
        hcga_model *m = NULL;
        hcga_result r = hcga_model_load(ctx, path, NULL, &m);
        check_message(r);
        hcga_model_free(m);
    } else {
        hcga_gallery *g = NULL;
        hcga_result r = hcga_gallery_load(model, path, &g);
        check_message(r);
        if (r == HCGA_SUCCESS) {
            int32_t idx[4 * 3];
            float dist[4 * 3];
            check_message(hcga_gallery_search(g, &rows, NULL, 3, idx, dist));
        }
        hcga_gallery_free(g);
    }
    close(fd);
}

/* Built twice (fuzz/fuzz_api.mk): FUZZ_API_LOAD takes modes 2 and 3 only,
 * FUZZ_API_EXTRACT modes 0 and 1, so that the fast load paths get their
 * million inputs while every extract input pays for a forward pass. */
static int mode_of(uint8_t b)
{
#if defined(FUZZ_API_LOAD)
    return 2 + b % 2;
#elif defined(FUZZ_API_EXTRACT)
    return b % 2;
#else
    return b % 4;
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = mode_of(data[0]);
    if (mode == 0) fuzz_views(data + 1, size - 1);
    else fuzz_file(data + 1, size - 1, mode);
    return 0;
}
