/*
 * cmd_search.c - `hcga search`: rank a gallery file of `hcga index` for
 * query images: the top-k names and distances as text or JSON, and
 * optionally ranked-list pictures.  Features and ranking go through the
 * public API alone (hcga_extract_files, hcga_gallery_load, hcga_gallery_search:
 * the blocked GEMM search); only the pictures use the frontend's drawing code
 * (vis/vis.h, as `hcga test --visrank` draws them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_api.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "hcga/hcga.h"
#include "vis/vis.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] search --weights W.safetensors --gallery G.safetensors\n"
            "                   [--top K] [--arm | --global] [--json] [--visrank DIR]\n"
            "                   [--config F] [--batch N] [--flip] [--precision f32|bf16|f16]\n"
            "                   QUERY_IMAGE|DIR ...\n"
            "\n"
            "Rank the gallery of `hcga index` for each query image (JPEG or PNG; directories\n"
            "are searched recursively): prints the top K gallery names with their distances\n"
            "(smaller is more similar; ARM gives the negated similarity).  The gallery is\n"
            "scored in blocks with the backend's GEMM, so any gallery size fits in memory.\n"
            "  --weights W     the checkpoint the gallery was indexed with\n"
            "  --gallery G     gallery file from hcga index\n"
            "  --top K         names per query (default 10)\n"
            "  --arm           ARM matching: foreground + parts visible in both (default when\n"
            "                  the model's TEST.WITH_ARM is true)\n"
            "  --global        global features, squared Euclidean (TEST.FEAT_NORM decides\n"
            "                  the L2 normalisation)\n"
            "  --json          one JSON document on stdout: queries with ranked names, distances\n"
            "  --visrank DIR   also draw each query's ranked list as DIR/search_<n>.png (green\n"
            "                  border: the Market-1501 file names carry the query's identity)\n"
            "  --config F, --batch N, --flip, --precision P   as for hcga index (use the same)\n"
            "Also prints the time per query on stderr.\n");
}

/* s as a JSON string literal. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* One ranked-list picture: the query and its k results. */
static int draw(const char *dir, int qi, const char *qpath, const hcga_gallery *gal, const int32_t *idx,
                const float *dist, int k, const hcga_embeddings *q)
{
    char err[4096], path[4096];
    hcga_image qimg = {0};
    hcga_image *gimg = calloc((size_t)k, sizeof *gimg);
    int *match = calloc((size_t)k, sizeof *match);
    const hcga_embeddings *ge = hcga_gallery_embeddings(gal);
    const int K = ge->num_parts;
    int64_t *qvis = calloc((size_t)K + 1, sizeof *qvis), *gvis = calloc((size_t)k * K + 1, sizeof *gvis);
    const char **caps = calloc((size_t)k + 1, sizeof *caps);
    int rc = -1, n = 0, qpid, qcam;
    if (!gimg || !match || !qvis || !gvis || !caps) goto out;
    if (hcga_jpeg_read(qpath, &qimg, err, sizeof err) && hcga_png_read(qpath, &qimg, err, sizeof err)) goto bad;
    int qparsed = hcga_parse_reid_name(base_name(qpath), &qpid, &qcam) == 0;
    for (int p = 0; p < K; p++) qvis[p] = q->visible[(size_t)qi * K + p];
    caps[0] = base_name(qpath);
    for (; n < k && idx[n] >= 0; n++) {
        const char *name = hcga_gallery_name(gal, idx[n]);
        if (hcga_jpeg_read(name, &gimg[n], err, sizeof err) && hcga_png_read(name, &gimg[n], err, sizeof err))
            goto bad;
        int pid, cam;
        match[n] = qparsed && hcga_parse_reid_name(base_name(name), &pid, &cam) == 0 && pid == qpid;
        for (int p = 0; p < K; p++) gvis[(size_t)n * K + p] = ge->visible[(size_t)idx[n] * K + p];
        caps[n + 1] = base_name(name);
    }
    if (hcga_mkdirs(dir, err, sizeof err)) goto bad;
    snprintf(path, sizeof path, "%s/search_%d.png", dir, qi + 1);
    if (hcga_vis_ranklist(path, &qimg, qvis, gimg, match, gvis, dist, n, K, caps, NULL, err, sizeof err)) goto bad;
    rc = 0;
    goto out;
bad:
    fprintf(stderr, "hcga search: --visrank: %s\n", err);
out:
    hcga_image_free(&qimg);
    for (int i = 0; gimg && i < k; i++) hcga_image_free(&gimg[i]);
    free(gimg);
    free(match);
    free(qvis);
    free(gvis);
    free(caps);
    return rc;
}

static void print_text(const hcga_cli_paths *qs, const hcga_gallery *gal, const int32_t *idx, const float *dist,
                       int k)
{
    for (int i = 0; i < qs->n; i++) {
        printf("query %s\n", qs->path[i]);
        for (int j = 0; j < k && idx[(size_t)i * k + j] >= 0; j++)
            printf("  %3d  %10.4f  %s\n", j + 1, dist[(size_t)i * k + j],
                   hcga_gallery_name(gal, idx[(size_t)i * k + j]));
    }
}

static void print_json(const hcga_cli_paths *qs, const hcga_gallery *gal, const int32_t *idx, const float *dist,
                       int k, const char *metric)
{
    printf("{\"metric\": \"%s\", \"queries\": [", metric);
    for (int i = 0; i < qs->n; i++) {
        printf("%s\n  {\"query\": ", i ? "," : "");
        json_string(stdout, qs->path[i]);
        printf(", \"results\": [");
        for (int j = 0; j < k && idx[(size_t)i * k + j] >= 0; j++) {
            printf("%s{\"rank\": %d, \"name\": ", j ? ", " : "", j + 1);
            json_string(stdout, hcga_gallery_name(gal, idx[(size_t)i * k + j]));
            printf(", \"distance\": %.6g}", dist[(size_t)i * k + j]);
        }
        printf("]}");
    }
    printf("\n]}\n");
}

int cmd_search(int argc, char **argv, const hcga_global_opts *g)
{
    hcga_cli_model_args ma;
    hcga_cli_model_args_init(&ma);
    const char *gallery = NULL, *visrank = NULL;
    int top = 10, json = 0, metric = -1, rc = 2;
    hcga_cli_paths qs = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used;
        if (hcga_cli_is_help(a)) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--gallery") || !strcmp(a, "--visrank") || !strcmp(a, "--top")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga search: %s needs a value\n", a);
                goto done;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--gallery")) gallery = v;
            else if (!strcmp(a, "--visrank")) visrank = v;
            else {
                char *end;
                long t = strtol(v, &end, 10);
                if (*end || end == v || t < 1 || t > 1000) {
                    fprintf(stderr, "hcga search: --top '%s': give 1..1000\n", v);
                    goto done;
                }
                top = (int)t;
            }
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--arm")) metric = HCGA_METRIC_ARM;
        else if (!strcmp(a, "--global")) metric = HCGA_METRIC_GLOBAL;
        else if ((used = hcga_cli_take_arg(&ma, &qs, "search", argc, argv, i)) < 0) {
            rc = used == -2 ? 2 : 1;
            goto done;
        } else {
            i += used - 1;
        }
    }
    if (!ma.weights || !gallery || qs.n == 0) {
        fprintf(stderr, "hcga search: %s\n",
                !ma.weights ? "--weights W.safetensors is required"
                : !gallery  ? "--gallery G.safetensors is required"
                            : "no query images given");
        goto done;
    }
    rc = 1;
    hcga_context *ctx = NULL;
    hcga_model *m = NULL;
    hcga_gallery *gal = NULL;
    hcga_embeddings q = {0};
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)qs.n * top);
    float *dist = malloc(sizeof(float) * (size_t)qs.n * top);
    if (!idx || !dist) {
        fprintf(stderr, "hcga search: out of memory for %d queries\n", qs.n);
        goto close;
    }
    if (hcga_cli_open_model(g, &ma, "search", &ctx, &m)) goto close;
    hcga_model_info info;
    hcga_model_get_info(m, &info);
    hcga_match_params mp = hcga_match_default_params();
    mp.metric = metric >= 0 ? (hcga_metric)metric : info.arm ? HCGA_METRIC_ARM : HCGA_METRIC_GLOBAL;
    mp.feat_norm = info.feat_norm;
    struct timespec t0, t1, t2;
    if (hcga_gallery_load(m, gallery, &gal) != HCGA_SUCCESS || hcga_embeddings_alloc(m, qs.n, &q) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga search: %s\n", hcga_context_error(ctx));
        goto close;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (hcga_extract_files(m, (const char *const *)qs.path, qs.n, &q, 0) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga search: %s\n", hcga_context_error(ctx));
        goto close;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (hcga_gallery_search(gal, &q, &mp, top, idx, dist) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga search: %s\n", hcga_context_error(ctx));
        goto close;
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    const char *mname = mp.metric == HCGA_METRIC_ARM ? "arm" : "global";
    if (json) print_json(&qs, gal, idx, dist, top, mname);
    else print_text(&qs, gal, idx, dist, top);
    double te = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    double ts = (t2.tv_sec - t1.tv_sec) + 1e-9 * (t2.tv_nsec - t1.tv_nsec);
    fprintf(stderr, "hcga search: %d queries, gallery of %d (%s): features %.1f ms/query, ranking %.2f ms/query\n",
            qs.n, hcga_gallery_embeddings(gal)->n, mname, 1e3 * te / qs.n, 1e3 * ts / qs.n);
    rc = 0;
    for (int i = 0; visrank && i < qs.n; i++)
        if (draw(visrank, i, qs.path[i], gal, idx + (size_t)i * top, dist + (size_t)i * top, top, &q)) rc = 1;
    if (visrank && !rc) fprintf(stderr, "hcga search: ranked lists in %s/search_*.png\n", visrank);
close:
    free(idx);
    free(dist);
    hcga_embeddings_free(&q);
    hcga_gallery_free(gal);
    hcga_model_free(m);
    hcga_context_free(ctx);
done:
    hcga_cli_paths_free(&qs);
    return rc;
}
