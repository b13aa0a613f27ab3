/*
 * test_api.c - the public C API (include/hcga/hcga.h, libhcga.so): on a tiny
 * model trained for one epoch in setup, features of image files equal those
 * `hcga test --save-features` writes, images given as views (with and
 * without row padding) equal image files, hcga_search's top-k equals the
 * order of hcga_distances, galleries round-trip, and every bad input the
 * issue names (NULL pointers, image sizes and channels, params of another
 * version, truncated or foreign checkpoints and galleries) gives a result
 * code and a one-line message instead of a crash.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_io.h"
#include "eval/features.h"
#include "hcga/hcga.h"
#include "hcga_autoconf.h"
#include "testutil.h"

static char tmpdir[256];
static char ckpt[512];
static char qpaths[64][800];
static int nq;

#define run(...) hcga_test_sh(tmpdir, __VA_ARGS__)

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void setup(void)
{
    const char *src = hcga_test_srcdir();
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga_test_api_");
    ck_assert_int_eq(run("./hcga synth --out %s/data --ids 12 --cams 2 --per-cam 3 --distractors 2 --seed 3", tmpdir),
                     0);
    ck_assert_int_eq(run("./hcga --threads 2 train --config %s/configs/hrnet_tiny.yml --data %s/data --output %s/run "
                         "--seed 5 SOLVER.IMS_PER_BATCH 8 DATALOADER.NUM_INSTANCE 2 SOLVER.MAX_EPOCHS 1 "
                         "SOLVER.EVAL_PERIOD 100 CLUSTERING.AL band TEST.IMS_PER_BATCH 8",
                         src, tmpdir, tmpdir),
                     0);
    snprintf(ckpt, sizeof ckpt, "%s/run/checkpoint.safetensors", tmpdir);
    ck_assert_int_eq(run("./hcga --threads 2 test --weights %s --data %s/data --save-features %s/f.safetensors", ckpt,
                         tmpdir, tmpdir),
                     0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data/query", tmpdir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    nq = 0;
    for (struct dirent *de; nq < 64 && (de = readdir(d));)
        if (strstr(de->d_name, ".jpg")) snprintf(qpaths[nq++], sizeof qpaths[0], "%s/%s", dir, de->d_name);
    closedir(d);
    qsort(qpaths, (size_t)nq, sizeof qpaths[0], cmp_str);
    ck_assert_int_ge(nq, 4);
}

static void teardown(void)
{
    hcga_test_rm_rf(tmpdir);
}

static hcga_context *cpu_context(void)
{
    hcga_context_params p = hcga_context_default_params();
    p.threads = 2;
    hcga_context *ctx = NULL;
    ck_assert_int_eq(hcga_context_new(&p, &ctx), HCGA_SUCCESS);
    return ctx;
}

static hcga_model *load(hcga_context *ctx, const hcga_model_params *p)
{
    hcga_model *m = NULL;
    hcga_result r = hcga_model_load(ctx, ckpt, p, &m);
    ck_assert_msg(r == HCGA_SUCCESS, "load: %s", hcga_context_error(ctx));
    return m;
}

static const char *const *query_list(void)
{
    static const char *l[64];
    for (int i = 0; i < nq; i++) l[i] = qpaths[i];
    return l;
}

START_TEST(test_version)
{
    ck_assert_str_eq(hcga_version_string(), PACKAGE_VERSION);
    ck_assert_int_eq(hcga_version(), HCGA_VERSION_MAJOR * 10000 + HCGA_VERSION_MINOR * 100 + HCGA_VERSION_PATCH);
    ck_assert_str_eq(hcga_result_string(HCGA_ERROR_MISMATCH), "file of another model");
}
END_TEST

/* hcga_extract_files gives what hcga test computes, row for row */
START_TEST(test_files_match_hcga_test)
{
    hcga_features q, g;
    char path[512], err[1024];
    snprintf(path, sizeof path, "%s/f.safetensors", tmpdir);
    ck_assert_msg(hcga_features_load(path, &q, &g, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(q.n, nq);
    hcga_context *ctx = cpu_context();
    hcga_model *m = load(ctx, NULL);
    hcga_model_info in;
    ck_assert_int_eq(hcga_model_get_info(m, &in), HCGA_SUCCESS);
    ck_assert_int_eq(in.num_parts, q.nparts);
    ck_assert_int_eq(in.dim, q.d);
    ck_assert_int_eq(in.global_dim, q.dg);
    hcga_embeddings e;
    ck_assert_int_eq(hcga_embeddings_alloc(m, nq, &e), HCGA_SUCCESS);
    ck_assert_msg(hcga_extract_files(m, query_list(), nq, &e, 0) == HCGA_SUCCESS, "%s", hcga_context_error(ctx));
    double worst = 0;
    for (size_t i = 0; i < (size_t)nq * q.d; i++) worst = fmax(worst, fabs(e.fore[i] - q.fore[i]));
    for (size_t i = 0; i < (size_t)nq * q.nparts * q.d; i++) worst = fmax(worst, fabs(e.parts[i] - q.part[i]));
    for (size_t i = 0; i < (size_t)nq * q.dg; i++) worst = fmax(worst, fabs(e.global[i] - q.global[i]));
    ck_assert_msg(worst <= 1e-6, "features differ from hcga test by %g", worst);
    for (size_t i = 0; i < (size_t)nq * q.nparts; i++) ck_assert_int_eq(e.visible[i], q.vis[i]);
    hcga_embeddings_free(&e);
    hcga_features_free(&q);
    hcga_features_free(&g);
    hcga_model_free(m);
    hcga_context_free(ctx);
}
END_TEST

/* caller images (tight and with padded rows) equal the decoded files */
START_TEST(test_views_equal_files)
{
    hcga_context *ctx = cpu_context();
    hcga_model *m = load(ctx, NULL);
    const int n = 3;
    hcga_image img[3];
    hcga_image_view v[3], vp[3];
    uint8_t *padded[3];
    char err[1024];
    for (int i = 0; i < n; i++) {
        ck_assert_msg(hcga_jpeg_read(qpaths[i], &img[i], err, sizeof err) == 0, "%s", err);
        v[i] = (hcga_image_view){img[i].data, img[i].width, img[i].height, 3, 0};
        size_t stride = (size_t)3 * img[i].width + 7;
        padded[i] = malloc(stride * img[i].height);
        ck_assert_ptr_nonnull(padded[i]);
        memset(padded[i], 0xAB, stride * img[i].height);
        for (int y = 0; y < img[i].height; y++)
            memcpy(padded[i] + y * stride, img[i].data + (size_t)y * 3 * img[i].width, (size_t)3 * img[i].width);
        vp[i] = (hcga_image_view){padded[i], img[i].width, img[i].height, 3, stride};
    }
    hcga_embeddings a, b, c;
    ck_assert_int_eq(hcga_embeddings_alloc(m, n, &a), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_embeddings_alloc(m, n, &b), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_embeddings_alloc(m, n + 2, &c), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_extract_files(m, query_list(), n, &a, 0), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_extract(m, v, n, &b, 0), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_extract(m, vp, n, &c, 2), HCGA_SUCCESS); /* rows 2..4 */
    const size_t d = (size_t)a.dim, dg = (size_t)a.global_dim, pk = (size_t)a.num_parts * d;
    ck_assert_mem_eq(a.fore, b.fore, sizeof(float) * n * d);
    ck_assert_mem_eq(a.parts, b.parts, sizeof(float) * n * pk);
    ck_assert_mem_eq(a.global, b.global, sizeof(float) * n * dg);
    ck_assert_mem_eq(a.fore, c.fore + 2 * d, sizeof(float) * n * d);
    ck_assert_mem_eq(a.global, c.global + 2 * dg, sizeof(float) * n * dg);
    ck_assert_float_eq(c.fore[0], 0.0f); /* rows before first_row untouched */
    for (int i = 0; i < n; i++) {
        hcga_image_free(&img[i]);
        free(padded[i]);
    }
    hcga_embeddings_free(&a);
    hcga_embeddings_free(&b);
    hcga_embeddings_free(&c);
    hcga_model_free(m);
    hcga_context_free(ctx);
}
END_TEST

/* the blocked GEMM search ranks as the full distance matrix does */
START_TEST(test_search_matches_distances)
{
    hcga_context *ctx = cpu_context();
    hcga_model *m = load(ctx, NULL);
    hcga_embeddings e;
    ck_assert_int_eq(hcga_embeddings_alloc(m, nq, &e), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_extract_files(m, query_list(), nq, &e, 0), HCGA_SUCCESS);
    const int k = 5, metrics[2] = {HCGA_METRIC_ARM, HCGA_METRIC_GLOBAL};
    float *dist = malloc(sizeof(float) * nq * nq), *top = malloc(sizeof(float) * nq * (nq + 1));
    int32_t *idx = malloc(sizeof(int32_t) * nq * (nq + 1));
    for (int mi = 0; mi < 2; mi++) {
        hcga_match_params p = hcga_match_default_params();
        p.metric = (hcga_metric)metrics[mi];
        ck_assert_int_eq(hcga_distances(ctx, &e, &e, &p, dist), HCGA_SUCCESS);
        ck_assert_msg(hcga_search(m, &e, &e, &p, k, idx, top) == HCGA_SUCCESS, "%s", hcga_context_error(ctx));
        for (int i = 0; i < nq; i++) {
            for (int j = 0; j < k; j++) {
                int g = idx[i * k + j];
                ck_assert_int_ge(g, 0);
                ck_assert_msg(fabsf(top[i * k + j] - dist[i * nq + g]) <= 1e-4f * (1 + fabsf(dist[i * nq + g])),
                              "metric %d q%d rank %d: search %g, distances %g", mi, i, j, top[i * k + j],
                              dist[i * nq + g]);
                /* nothing outside the top k is nearer than its last entry (up to rounding) */
                if (j) ck_assert(top[i * k + j] >= top[i * k + j - 1]);
            }
            for (int g = 0; g < nq; g++) {
                int in_top = 0;
                for (int j = 0; j < k; j++) in_top |= idx[i * k + j] == g;
                if (!in_top) ck_assert(dist[i * nq + g] >= top[i * k + k - 1] - 1e-4f * (1 + fabsf(top[i * k + k - 1])));
            }
        }
        /* k beyond the gallery: the rest is -1 / INFINITY */
        ck_assert_int_eq(hcga_search(m, &e, &e, &p, nq + 1, idx, top), HCGA_SUCCESS);
        ck_assert_int_eq(idx[nq], -1);
        ck_assert(isinf(top[nq]));
    }
    free(dist);
    free(top);
    free(idx);
    hcga_embeddings_free(&e);
    hcga_model_free(m);
    hcga_context_free(ctx);
}
END_TEST

static void truncate_copy(const char *from, const char *to, long keep)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    for (long i = 0; i < keep; i++) {
        int c = fgetc(a);
        if (c == EOF) break;
        fputc(c, b);
    }
    fclose(a);
    fclose(b);
}

START_TEST(test_gallery_roundtrip_and_foreign)
{
    hcga_context *ctx = cpu_context();
    hcga_model *m = load(ctx, NULL);
    hcga_embeddings e;
    ck_assert_int_eq(hcga_embeddings_alloc(m, nq, &e), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_extract_files(m, query_list(), nq, &e, 0), HCGA_SUCCESS);
    char gpath[512], bad[512];
    snprintf(gpath, sizeof gpath, "%s/g.safetensors", tmpdir);
    ck_assert_int_eq(hcga_gallery_save(m, gpath, &e, query_list()), HCGA_SUCCESS);
    hcga_gallery *gal = NULL;
    ck_assert_int_eq(hcga_gallery_load(m, gpath, &gal), HCGA_SUCCESS);
    const hcga_embeddings *ge = hcga_gallery_embeddings(gal);
    ck_assert_int_eq(ge->n, nq);
    ck_assert_mem_eq(ge->parts, e.parts, sizeof(float) * nq * e.num_parts * e.dim);
    ck_assert_mem_eq(ge->visible, e.visible, (size_t)nq * e.num_parts);
    ck_assert_str_eq(hcga_gallery_name(gal, nq - 1), qpaths[nq - 1]);
    ck_assert_ptr_null(hcga_gallery_name(gal, nq));
    /* the gallery's kept rows rank as hcga_search does, for both metrics and after switching */
    int32_t i1[3 * 64], i2[3 * 64];
    float d1[3 * 64], d2[3 * 64];
    for (int rep = 0; rep < 3; rep++) {
        hcga_match_params p = hcga_match_default_params();
        p.metric = rep == 1 ? HCGA_METRIC_GLOBAL : HCGA_METRIC_ARM;
        ck_assert_int_eq(hcga_search(m, &e, &e, &p, 3, i1, d1), HCGA_SUCCESS);
        ck_assert_msg(hcga_gallery_search(gal, &e, &p, 3, i2, d2) == HCGA_SUCCESS, "%s", hcga_context_error(ctx));
        ck_assert_mem_eq(i1, i2, sizeof(int32_t) * 3 * nq);
        ck_assert_mem_eq(d1, d2, sizeof(float) * 3 * nq);
    }
    hcga_gallery_free(gal);

    /* a run-only key leaves the fingerprint; a key that changes the features does not */
    const char *same[] = {"TEST.IMS_PER_BATCH", "4", "OUTPUT_DIR", "/elsewhere", "TEST.FEAT_NORM", "no"};
    hcga_model_params mp = hcga_model_default_params();
    mp.overrides = same;
    mp.n_overrides = 3;
    hcga_model *m2 = load(ctx, &mp);
    ck_assert_int_eq(hcga_gallery_load(m2, gpath, &gal), HCGA_SUCCESS);
    hcga_gallery_free(gal);
    hcga_model_free(m2);
    const char *other[] = {"INPUT.PIXEL_STD", "[0.2, 0.2, 0.2]"};
    mp.overrides = other;
    mp.n_overrides = 1;
    m2 = load(ctx, &mp);
    gal = NULL;
    ck_assert_int_eq(hcga_gallery_load(m2, gpath, &gal), HCGA_ERROR_MISMATCH);
    ck_assert_ptr_null(gal);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "indexed with another model"));
    hcga_model_free(m2);

    /* a gallery made in memory searches as the one read from the file */
    ck_assert_int_eq(hcga_gallery_new(m, &e, query_list(), &gal), HCGA_SUCCESS);
    ck_assert_str_eq(hcga_gallery_name(gal, 1), qpaths[1]);
    int32_t j1[64], j2[64];
    ck_assert_int_eq(hcga_gallery_search(gal, &e, NULL, 1, j1, NULL), HCGA_SUCCESS);
    ck_assert_int_eq(hcga_search(m, &e, &e, NULL, 1, j2, NULL), HCGA_SUCCESS);
    ck_assert_mem_eq(j1, j2, sizeof(int32_t) * nq);
    hcga_gallery_free(gal);
    ck_assert_int_eq(hcga_gallery_new(m, &e, NULL, &gal), HCGA_ERROR_ARGUMENT);

    /* truncated gallery, a checkpoint given as a gallery */
    snprintf(bad, sizeof bad, "%s/g_cut.safetensors", tmpdir);
    truncate_copy(gpath, bad, 300);
    ck_assert_int_eq(hcga_gallery_load(m, bad, &gal), HCGA_ERROR_FORMAT);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), bad));
    ck_assert_int_eq(hcga_gallery_load(m, ckpt, &gal), HCGA_ERROR_FORMAT);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "not an hcga gallery"));
    hcga_embeddings_free(&e);
    hcga_model_free(m);
    hcga_context_free(ctx);
}
END_TEST

START_TEST(test_bad_checkpoints)
{
    hcga_context *ctx = cpu_context();
    hcga_model *m = NULL;
    char bad[512];
    ck_assert_int_eq(hcga_model_load(ctx, "/nonexistent/w.safetensors", NULL, &m), HCGA_ERROR_IO);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "/nonexistent/w.safetensors"));
    snprintf(bad, sizeof bad, "%s/cut.safetensors", tmpdir);
    truncate_copy(ckpt, bad, 5000);
    ck_assert_int_eq(hcga_model_load(ctx, bad, NULL, &m), HCGA_ERROR_FORMAT);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), bad));
    ck_assert_ptr_null(strchr(hcga_context_error(ctx), '\n'));
    /* the checkpoint read as another model: five parts instead of four */
    const char *over[] = {"CLUSTERING.PART_NUM", "5"};
    hcga_model_params mp = hcga_model_default_params();
    mp.overrides = over;
    mp.n_overrides = 1;
    ck_assert_int_eq(hcga_model_load(ctx, ckpt, &mp, &m), HCGA_ERROR_MISMATCH);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "shape"));
    /* a gallery file given as weights */
    ck_assert_int_ne(hcga_model_load(ctx, "/dev/null", NULL, &m), HCGA_SUCCESS);
    hcga_context_free(ctx);
}
END_TEST

START_TEST(test_bad_arguments)
{
    hcga_context *ctx = NULL;
    hcga_context_params cp = hcga_context_default_params();
    cp.backend = "no_such_backend";
    ck_assert_int_eq(hcga_context_new(&cp, &ctx), HCGA_ERROR_BACKEND);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "no_such_backend"));
    ck_assert_int_eq(hcga_model_load(ctx, ckpt, NULL, &(hcga_model *){NULL}), HCGA_ERROR_BACKEND);
    hcga_context_free(ctx);
    cp = hcga_context_default_params();
    cp.struct_size = 8;
    ck_assert_int_eq(hcga_context_new(&cp, &ctx), HCGA_ERROR_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "struct_size"));
    hcga_context_free(ctx);
    ck_assert_int_eq(hcga_context_new(NULL, NULL), HCGA_ERROR_ARGUMENT);
    ck_assert_ptr_nonnull(hcga_context_error(NULL));

    ctx = cpu_context();
    hcga_model *m = NULL;
    ck_assert_int_eq(hcga_model_load(ctx, NULL, NULL, &m), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_model_load(ctx, ckpt, NULL, NULL), HCGA_ERROR_ARGUMENT);
    hcga_model_params mp = hcga_model_default_params();
    mp.precision = (hcga_precision)7;
    ck_assert_int_eq(hcga_model_load(ctx, ckpt, &mp, &m), HCGA_ERROR_ARGUMENT);
    mp = hcga_model_default_params();
    mp.n_overrides = 1;
    ck_assert_int_eq(hcga_model_load(ctx, ckpt, &mp, &m), HCGA_ERROR_ARGUMENT);
    m = load(ctx, NULL);
    ck_assert_int_eq(hcga_model_get_info(NULL, NULL), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_model_get_info(m, NULL), HCGA_ERROR_ARGUMENT);
    hcga_embeddings e;
    ck_assert_int_eq(hcga_embeddings_alloc(m, 2, &e), HCGA_SUCCESS);
    uint8_t px[4 * 5 * 4] = {0};
    hcga_image_view v = {px, 5, 4, 4, 0};
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 0), HCGA_ERROR_ARGUMENT); /* RGBA */
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "4 channels"));
    v = (hcga_image_view){px, 0, 4, 3, 0};
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 0), HCGA_ERROR_ARGUMENT);
    v = (hcga_image_view){NULL, 5, 4, 3, 0};
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 0), HCGA_ERROR_ARGUMENT);
    v = (hcga_image_view){px, 5, 4, 3, 14};
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 0), HCGA_ERROR_ARGUMENT); /* stride < 3*width */
    v = (hcga_image_view){px, 5, 4, 3, 0};
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 0), HCGA_SUCCESS); /* a 5x4 image is fine */
    ck_assert_int_eq(hcga_extract(m, &v, 1, &e, 2), HCGA_ERROR_ARGUMENT); /* beyond the rows */
    ck_assert_int_eq(hcga_extract(m, NULL, 1, &e, 0), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_extract(m, &v, 1, NULL, 0), HCGA_ERROR_ARGUMENT);
    hcga_embeddings wrong = e;
    wrong.dim = e.dim + 1;
    ck_assert_int_eq(hcga_extract(m, &v, 1, &wrong, 0), HCGA_ERROR_ARGUMENT);
    const char *files[] = {"/nonexistent.jpg"};
    ck_assert_int_eq(hcga_extract_files(m, files, 1, &e, 0), HCGA_ERROR_IO);
    ck_assert_ptr_nonnull(strstr(hcga_context_error(ctx), "/nonexistent.jpg"));
    files[0] = ckpt; /* not an image */
    ck_assert_int_eq(hcga_extract_files(m, files, 1, &e, 0), HCGA_ERROR_FORMAT);
    float dist[4];
    int32_t idx[2];
    ck_assert_int_eq(hcga_distances(ctx, &e, NULL, NULL, dist), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_distances(ctx, &e, &wrong, NULL, dist), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_search(m, &e, &e, NULL, 0, idx, NULL), HCGA_ERROR_ARGUMENT);
    hcga_match_params p = hcga_match_default_params();
    p.rerank = 1;
    ck_assert_int_eq(hcga_search(m, &e, &e, &p, 1, idx, NULL), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_distances(ctx, &e, &e, &p, dist), HCGA_SUCCESS); /* re-ranking is for the full matrix */
    hcga_embeddings nofore = e;
    nofore.fore = NULL;
    ck_assert_int_eq(hcga_search(m, &nofore, &e, NULL, 1, idx, NULL), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_gallery_save(m, NULL, &e, NULL), HCGA_ERROR_ARGUMENT);
    ck_assert_int_eq(hcga_gallery_save(m, "/x.safetensors", &e, NULL), HCGA_ERROR_ARGUMENT);
    hcga_embeddings_free(&e);
    hcga_embeddings_free(NULL);
    hcga_model_free(m);
    hcga_model_free(NULL);
    hcga_gallery_free(NULL);
    hcga_context_free(ctx);
    hcga_context_free(NULL);
}
END_TEST

/* two contexts used from two threads at once compute what one computes alone */
typedef struct worker {
    hcga_embeddings e;
    hcga_result r;
} worker;

static void *extract_worker(void *arg)
{
    worker *w = arg;
    hcga_context_params p = hcga_context_default_params();
    p.threads = 1;
    hcga_context *ctx = NULL;
    hcga_model *m = NULL;
    w->r = hcga_context_new(&p, &ctx);
    if (w->r == HCGA_SUCCESS) w->r = hcga_model_load(ctx, ckpt, NULL, &m);
    if (w->r == HCGA_SUCCESS) w->r = hcga_embeddings_alloc(m, nq, &w->e);
    if (w->r == HCGA_SUCCESS) w->r = hcga_extract_files(m, query_list(), nq, &w->e, 0);
    hcga_model_free(m);
    hcga_context_free(ctx);
    return NULL;
}

START_TEST(test_two_threads)
{
    worker w[2];
    pthread_t t[2];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, extract_worker, &w[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    ck_assert_int_eq(w[0].r, HCGA_SUCCESS);
    ck_assert_int_eq(w[1].r, HCGA_SUCCESS);
    ck_assert_mem_eq(w[0].e.parts, w[1].e.parts, sizeof(float) * nq * w[0].e.num_parts * w[0].e.dim);
    ck_assert_mem_eq(w[0].e.global, w[1].e.global, sizeof(float) * nq * w[0].e.global_dim);
    hcga_embeddings_free(&w[0].e);
    hcga_embeddings_free(&w[1].e);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("api", &tc);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    HCGA_ADD_TESTS(tc, test_version, test_files_match_hcga_test, test_views_equal_files, test_search_matches_distances,
                   test_gallery_roundtrip_and_foreign, test_bad_checkpoints, test_bad_arguments, test_two_threads);
    return hcga_test_run(s);
}
