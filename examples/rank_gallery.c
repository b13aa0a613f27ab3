/*
 * rank_gallery.c - the smallest complete use of libhcga, built outside the
 * hcga tree the way a user builds it:
 *
 *     cc -o rank_gallery rank_gallery.c $(pkg-config --cflags --libs hcga)
 *     ./rank_gallery checkpoint.safetensors query.jpg gallery/*.jpg
 *
 * It loads a checkpoint of `hcga train` on the cpu backend, extracts the
 * features of the query and of every gallery image (JPEG or PNG, any size),
 * ranks the gallery with the model's default matching (ARM or global) and
 * prints the five nearest gallery images.  `make installcheck` builds and
 * runs it against the installed library.
 */
#include <hcga/hcga.h>
#include <stdio.h>
#include <stdlib.h>

#define TOP 5

static int fail(hcga_context *ctx, const char *what)
{
    fprintf(stderr, "rank_gallery: %s: %s\n", what, hcga_context_error(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CHECKPOINT QUERY_IMAGE GALLERY_IMAGE...\n", argv[0]);
        return 2;
    }
    printf("libhcga %s (built against %d.%d)\n", hcga_version_string(), HCGA_VERSION_MAJOR, HCGA_VERSION_MINOR);

    hcga_context *ctx = NULL;
    hcga_context_params cp = hcga_context_default_params(); /* backend "cpu" */
    if (hcga_context_new(&cp, &ctx) != HCGA_SUCCESS) {
        int rc = fail(ctx, "opening the backend");
        hcga_context_free(ctx);
        return rc;
    }
    hcga_model *model = NULL;
    if (hcga_model_load(ctx, argv[1], NULL, &model) != HCGA_SUCCESS) {
        int rc = fail(ctx, argv[1]);
        hcga_context_free(ctx);
        return rc;
    }
    hcga_model_info info;
    hcga_model_get_info(model, &info);

    int ng = argc - 3, rc = 1;
    hcga_embeddings query, gallery;
    int32_t index[TOP];
    float dist[TOP];
    if (hcga_embeddings_alloc(model, 1, &query) != HCGA_SUCCESS ||
        hcga_embeddings_alloc(model, ng, &gallery) != HCGA_SUCCESS) {
        rc = fail(ctx, "allocating features");
        goto out;
    }
    if (hcga_extract_files(model, (const char *const *)&argv[2], 1, &query, 0) != HCGA_SUCCESS ||
        hcga_extract_files(model, (const char *const *)&argv[3], ng, &gallery, 0) != HCGA_SUCCESS) {
        rc = fail(ctx, "extracting features");
        goto out;
    }
    hcga_match_params mp = hcga_match_default_params();
    mp.metric = info.arm ? HCGA_METRIC_ARM : HCGA_METRIC_GLOBAL;
    mp.feat_norm = info.feat_norm;
    if (hcga_search(model, &query, &gallery, &mp, TOP, index, dist) != HCGA_SUCCESS) {
        rc = fail(ctx, "ranking");
        goto out;
    }
    printf("query %s, %d gallery images, %s matching:\n", argv[2], ng, info.arm ? "ARM" : "global");
    for (int j = 0; j < TOP && index[j] >= 0; j++) printf("%d %.4f %s\n", j + 1, dist[j], argv[3 + index[j]]);
    rc = 0;
out:
    hcga_embeddings_free(&query);
    hcga_embeddings_free(&gallery);
    hcga_model_free(model);
    hcga_context_free(ctx);
    return rc;
}
