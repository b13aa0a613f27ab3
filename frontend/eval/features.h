/*
 * features.h - eval-mode features of a split (foreground, parts, global,
 * visible parts, identities and cameras), their files, and the matching that
 * turns query and gallery features into distances and Market-1501 scores.
 * Used by `hcga train` (periodic evaluation), `hcga test` and `hcga parse`.
 */
#ifndef HCGA_FEATURES_H
#define HCGA_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "eval/eval.h"
#include "graph/graph.h"

/* Features of one split in eval mode. */
typedef struct hcga_features {
    int n, nparts, d, dg;
    float *fore;   /* n*d       BN'ed y_fore */
    float *part;   /* n*nparts*d BN'ed y_part */
    float *global; /* n*dg      BN'ed y_global */
    int64_t *vis;  /* n*nparts  visible parts */
    int *pids, *cams;
} hcga_features;

void hcga_features_free(hcga_features *f);

/* The eval graph run batch by batch on images already transformed (CHW,
 * normalised): shared by hcga_extract_features and the public API
 * (frontend/api), so both compute features the same way. */
typedef struct hcga_eval_runner {
    hg_exec *ex;
    hg_graph *g;
    int batch, height, width;
    int d, nparts, dg;
    /* outputs of the last batch, rows 0..n-1 (averaged over the mirrored
     * image when flip): fore [batch*d], part [batch*nparts*d], global
     * [batch*dg], vis [batch*nparts] (0/1, OR over the two passes) */
    float *fore, *part, *global;
    int64_t *vis;
    /* private */
    hg_val vf, vp, vg, va;
    int64_t ah, aw;
    float *in, *bf, *bp, *bg;
    int64_t *am, *bvis;
} hcga_eval_runner;

/* Find the eval outputs of g and allocate the buffers for `batch` images of
 * height x width.  Returns 0 or -1 with err. */
int hcga_eval_runner_init(hcga_eval_runner *r, hg_exec *ex, hg_graph *g, int batch, int height, int width,
                          char *err, size_t err_len);
/* Forward n (1..batch) images images[n*3*height*width]; a short batch is
 * padded with copies of its last image.  Returns 0 or -1 with err. */
int hcga_eval_runner_run(hcga_eval_runner *r, const float *images, int n, int flip, char *err, size_t err_len);
void hcga_eval_runner_free(hcga_eval_runner *r);

/* Run the eval graph (built for `batch` images) over a split; flip != 0
 * averages each feature with that of the horizontally flipped image. */
int hcga_extract_features(hg_exec *ex, hg_graph *g, int batch, const hcga_split *split,
                          const hcga_aug_cfg *aug, int threads, int flip, hcga_features *out,
                          char *err, size_t err_len);

typedef enum { HCGA_MATCH_ARM = 0, HCGA_MATCH_GLOBAL = 1, HCGA_MATCH_CONCAT = 2 } hcga_match;

/* The distance matrix qg[q->n * g->n] of a matching mode (features
 * L2-normalised when feat_norm), k-reciprocal re-ranked with k1, k2, lambda
 * when rerank.  Returns 0 or -1 with err. */
int hcga_match_distances(const hcga_features *q, const hcga_features *g, hcga_match mode, int feat_norm,
                         int rerank, int k1, int k2, double lambda, float *qg, char *err, size_t err_len);

/* Distances query x gallery for a matching mode (features L2-normalised
 * when feat_norm), optionally k-reciprocal re-ranked, then the Market
 * protocol.  Returns 0 or -1 (no valid query / memory) with err. */
int hcga_evaluate_features(const hcga_features *q, const hcga_features *g, hcga_match mode,
                           int feat_norm, int rerank, hcga_eval_result *res, char *err,
                           size_t err_len);

/* Features files (hcga test --save-features / --features): tensors
 * <prefix>.fore [n,d], .part [n,nparts,d], .global [n,dg], .vis [n,nparts] I64,
 * .pids [n] I64, .cams [n] I64 for prefix "query" and "gallery". */
int hcga_features_save(const hcga_features *q, const hcga_features *g, const char *path, char *err,
                       size_t err_len);
int hcga_features_load(const char *path, hcga_features *q, hcga_features *g, char *err, size_t err_len);

#endif
