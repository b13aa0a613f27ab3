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

/* Run the eval graph (built for `batch` images) over a split; flip != 0
 * averages each feature with that of the horizontally flipped image. */
int hcga_extract_features(hg_exec *ex, hg_graph *g, int batch, const hcga_split *split,
                          const hcga_aug_cfg *aug, int threads, int flip, hcga_features *out,
                          char *err, size_t err_len);

typedef enum { HCGA_MATCH_ARM = 0, HCGA_MATCH_GLOBAL = 1, HCGA_MATCH_CONCAT = 2 } hcga_match;

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
