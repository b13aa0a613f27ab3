/*
 * train.h - training loop, checkpoints and evaluation shared by `hcga train`
 * and `hcga test`.
 */
#ifndef HCGA_TRAIN_H
#define HCGA_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dataset.h"
#include "eval.h"
#include "graph.h"
#include "safetensors.h"

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

/* The test-time transform settings of cfg (INPUT.SIZE_TEST, mean, std). */
hcga_aug_cfg hcga_aug_from_config(const hcga_config *cfg, int train);

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

/* Learning rate factor of epoch e (1-based) for the warm-up multistep schedule. */
double hcga_lr_factor(const hcga_config *cfg, int epoch);

/* Write a training checkpoint (parameters and buffers with the reference's
 * names, Adam state as optimizer.exp_avg.<name> / optimizer.exp_avg_sq.<name>,
 * metadata: config, epoch, adam_step, seed) atomically. */
int hcga_checkpoint_save(hg_store *s, const hcga_config *cfg, int epoch, int64_t adam_step,
                         uint64_t seed, int num_classes, const char *path, char *err, size_t err_len);

/* Restore every store entry from a file written by hcga_checkpoint_save,
 * and its Adam state too when with_optimizer; tensors of the file that the
 * store lacks are ignored.  Returns 0 or -1 with err naming the tensor. */
int hcga_checkpoint_restore(hg_store *s, hcga_be *be, const st_file *f, const char *path,
                            int with_optimizer, char *err, size_t err_len);

/* 1 for files written by hcga_checkpoint_save (metadata format hcga-checkpoint-1). */
int hcga_is_checkpoint(const st_file *f);

/* An exec of the inference graph g on store s with the weights of wf: an
 * hcga checkpoint (parameters and buffers, no optimizer state) or a
 * reference state dict (every model tensor must be there, checked by name
 * and shape).  Returns NULL with err on a problem. */
hg_exec *hcga_exec_with_weights(const hcga_config *cfg, hg_graph *g, hg_store *s, hcga_be *be,
                                const st_file *wf, const char *path, char *err, size_t err_len);

/* Features files (hcga test --save-features / --features): tensors
 * <prefix>.fore [n,d], .part [n,nparts,d], .global [n,dg], .vis [n,nparts] I64,
 * .pids [n] I64, .cams [n] I64 for prefix "query" and "gallery". */
int hcga_features_save(const hcga_features *q, const hcga_features *g, const char *path, char *err,
                       size_t err_len);
int hcga_features_load(const char *path, hcga_features *q, hcga_features *g, char *err, size_t err_len);

#endif
