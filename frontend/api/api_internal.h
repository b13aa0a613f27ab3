/*
 * api_internal.h - what the three files of the public API (frontend/api:
 * api_model.c for contexts, models and feature extraction, api_match.c for
 * distances and the blocked top-k search, api_gallery.c for gallery files)
 * share: the handles' contents and the one way a call records a failure.
 */
#ifndef HCGA_API_INTERNAL_H
#define HCGA_API_INTERNAL_H

#include <stdarg.h>

#include "backend/backend.h"
#include "config/config.h"
#include "data/dataset.h"
#include "eval/features.h"
#include "graph/graph.h"
#include "hcga/hcga.h"

struct hcga_context {
    char err[2048];
    hcga_be *be;              /* NULL when opening the backend failed */
    int threads;              /* resolved: >= 1 */
    hcga_device_info device;
};

struct hcga_model {
    hcga_context *ctx;
    hcga_config *cfg;
    hg_store *store;
    hg_graph *graph;
    hg_exec *exec;
    hcga_eval_runner runner;
    hcga_aug_cfg aug;         /* the test transform: size, mean, std */
    hcga_model_params params;
    hcga_model_info info;
};

/* A gallery's GEMM rows for one metric, kept on the backend by
 * hcga_gallery_search (api_match.c). */
typedef struct hcga_api_prepared {
    hcga_buffer *buf; /* n rows of the metric's width; NULL: not prepared */
    double *sq;       /* global metric: the rows' squared norms */
    int metric, feat_norm;
} hcga_api_prepared;

void hcga_api_prepared_free(hcga_context *ctx, hcga_api_prepared *pg);
/* hcga_search over a gallery whose rows stay prepared in pg between calls. */
hcga_result hcga_api_gallery_search(hcga_context *ctx, const hcga_embeddings *gallery, hcga_api_prepared *pg,
                                    const hcga_embeddings *query, const hcga_match_params *params, int k,
                                    int32_t *index, float *dist);

/* Record "fmt..." as ctx's message and return code (ctx may be NULL). */
hcga_result hcga_api_fail(hcga_context *ctx, hcga_result code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Start a call on ctx: clears the message. */
void hcga_api_begin(hcga_context *ctx);
/* Check that e is usable with `rows` rows of m's sizes; names what is wrong. */
hcga_result hcga_api_check_embeddings(hcga_context *ctx, const hcga_embeddings *e, const char *what,
                                      int num_parts, int dim, int global_dim);

#endif
