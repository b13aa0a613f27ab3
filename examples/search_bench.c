/*
 * search_bench.c - how long hcga_search takes to rank galleries of 1,000,
 * 10,000 and 100,000 images (or the sizes given) for one query and per
 * query in a batch of queries, with ARM and global matching.  The features
 * are fixed pseudo-random rows of the model's sizes (the time does not
 * depend on their values), so no 100,000 images need to be extracted.  Uses
 * only the public API; built in the tree as examples/search_bench.  The
 * last column is hcga_gallery_search on the gallery saved and loaded as a
 * file: its rows stay on the backend after the first call, so a query only
 * multiplies.
 *
 *   search_bench CHECKPOINT [--backend B] [--threads N] [--queries Q]
 *                [--sizes 1000,10000,100000] [--top K]
 */
#include <hcga/hcga.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void fill(hcga_embeddings *e, uint64_t seed)
{
    uint64_t s = seed;
#define NEXT() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f)
    for (size_t i = 0; i < (size_t)e->n * e->dim; i++) e->fore[i] = NEXT();
    for (size_t i = 0; i < (size_t)e->n * e->num_parts * e->dim; i++) e->parts[i] = NEXT();
    for (size_t i = 0; i < (size_t)e->n * e->global_dim; i++) e->global[i] = NEXT();
    for (size_t i = 0; i < (size_t)e->n * e->num_parts; i++) e->visible[i] = NEXT() > -0.3f;
#undef NEXT
}

/* seconds of one hcga_search call, the best of three */
static double time_search(hcga_model *m, const hcga_embeddings *q, const hcga_embeddings *g, hcga_metric metric,
                          int k, int32_t *idx, float *dist)
{
    hcga_match_params p = hcga_match_default_params();
    p.metric = metric;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (hcga_search(m, q, g, &p, k, idx, dist) != HCGA_SUCCESS) return -1;
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* the same with hcga_gallery_search after one call that keeps the rows */
static double time_gallery(hcga_gallery *gal, const hcga_embeddings *q, hcga_metric metric, int k, int32_t *idx,
                           float *dist)
{
    hcga_match_params p = hcga_match_default_params();
    p.metric = metric;
    if (hcga_gallery_search(gal, q, &p, k, idx, dist) != HCGA_SUCCESS) return -1;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (hcga_gallery_search(gal, q, &p, k, idx, dist) != HCGA_SUCCESS) return -1;
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* g written to a temporary gallery file and read back as a gallery */
static int save_load(hcga_model *m, const hcga_embeddings *g, hcga_gallery **gal)
{
    char path[] = "/tmp/search_bench_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    char **names = malloc(sizeof(char *) * (size_t)g->n);
    char *buf = malloc((size_t)g->n * 16);
    int rc = -1;
    if (names && buf) {
        for (int i = 0; i < g->n; i++) {
            names[i] = buf + (size_t)i * 16;
            snprintf(names[i], 16, "g%d", i);
        }
        if (hcga_gallery_save(m, path, g, (const char *const *)names) == HCGA_SUCCESS &&
            hcga_gallery_load(m, path, gal) == HCGA_SUCCESS)
            rc = 0;
    }
    unlink(path);
    free(names);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: search_bench CHECKPOINT [--backend B] [--threads N] "
                                            "[--queries Q] [--sizes N,N,...] [--top K]\n");
        return argc < 2 ? 2 : 0;
    }
    hcga_context_params cp = hcga_context_default_params();
    int nq = 100, k = 10;
    char sizes[256] = "1000,10000,100000";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) cp.backend = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) cp.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries")) nq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--top")) k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes")) snprintf(sizes, sizeof sizes, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "search_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nq < 1 || k < 1) {
        fprintf(stderr, "search_bench: --queries and --top must be >= 1\n");
        return 2;
    }
    hcga_context *ctx = NULL;
    hcga_model *m = NULL;
    if (hcga_context_new(&cp, &ctx) != HCGA_SUCCESS || hcga_model_load(ctx, argv[1], NULL, &m) != HCGA_SUCCESS) {
        fprintf(stderr, "search_bench: %s\n", hcga_context_error(ctx));
        hcga_context_free(ctx);
        return 1;
    }
    const char *bname = "", *dname = "";
    hcga_context_backend(ctx, &bname, &dname);
    hcga_model_info in;
    hcga_model_get_info(m, &in);
    printf("hcga_search on %s (%s): %d parts x %d, global %d, top %d\n", bname, dname, in.num_parts, in.dim,
           in.global_dim, k);
    char col[64];
    snprintf(col, sizeof col, "per query of %d (ms)", nq);
    printf("%-10s %-7s %14s %22s %24s\n", "gallery", "metric", "1 query (ms)", col, "kept gallery, 1 query (ms)");
    hcga_embeddings q;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)nq * k);
    float *dist = malloc(sizeof(float) * (size_t)nq * k);
    int rc = 0;
    if (!idx || !dist || hcga_embeddings_alloc(m, nq, &q) != HCGA_SUCCESS) {
        fprintf(stderr, "search_bench: out of memory\n");
        return 1;
    }
    fill(&q, 1);
    for (char *tok = strtok(sizes, ","); tok && !rc; tok = strtok(NULL, ",")) {
        int ng = atoi(tok);
        hcga_embeddings g;
        if (ng < 1 || hcga_embeddings_alloc(m, ng, &g) != HCGA_SUCCESS) {
            fprintf(stderr, "search_bench: gallery size '%s'\n", tok);
            rc = 1;
            break;
        }
        fill(&g, 2);
        hcga_gallery *gal = NULL;
        if (save_load(m, &g, &gal)) {
            fprintf(stderr, "search_bench: %s\n", hcga_context_error(ctx));
            hcga_embeddings_free(&g);
            rc = 1;
            break;
        }
        for (int metric = 0; metric < 2 && !rc; metric++) {
            hcga_embeddings one = q;
            one.n = 1;
            double t1 = time_search(m, &one, &g, (hcga_metric)metric, k, idx, dist);
            double tq = time_search(m, &q, &g, (hcga_metric)metric, k, idx, dist);
            double tg = time_gallery(gal, &one, (hcga_metric)metric, k, idx, dist);
            if (t1 < 0 || tq < 0 || tg < 0) {
                fprintf(stderr, "search_bench: %s\n", hcga_context_error(ctx));
                rc = 1;
                break;
            }
            printf("%-10d %-7s %14.2f %22.3f %24.2f\n", ng, metric ? "global" : "ARM", 1e3 * t1, 1e3 * tq / nq,
                   1e3 * tg);
        }
        hcga_gallery_free(gal);
        hcga_embeddings_free(&g);
    }
    hcga_embeddings_free(&q);
    free(idx);
    free(dist);
    hcga_model_free(m);
    hcga_context_free(ctx);
    return rc;
}
