/*
 * model.h - the HCGA network (HRNet backbone + HCGA heads) as an hg_graph,
 * with the reference's state-dict names.  Specification: ../shared/HCGA.md.
 */
#ifndef HCGA_MODEL_H
#define HCGA_MODEL_H

#include <stddef.h>
#include "config/config.h"
#include "graph/graph.h"

typedef enum hcga_model_mode {
    HCGA_MODEL_EVAL = 0,  /* BN inference; outputs eval.* (feat_fore, feat_part, visible_part, feature_map) */
    HCGA_MODEL_TRAIN = 1, /* BN batch mode; outputs train.* and loss.*, then hg_backward(total) */
    HCGA_MODEL_FEATURES = 2 /* eval-mode feature map F only (co-parsing input) */
} hcga_model_mode;

/* Graph inputs: "input.images" [N,3,H,W] (F32/F64 as dtype), and in train
 * mode "input.pids" [N] I64 (class indices 0..num_classes-1) and
 * "input.parsing" [N,H/4,W/4] I64.  Outputs are marked with the golden
 * file's names ("eval.feat_fore", "train.cls_score_part", "loss.total", ...).
 * Parameters carry the reference's names.  Returns NULL and writes err on a
 * config problem. */
hg_graph *hcga_model_build(const hcga_config *cfg, int mode, int batch, int num_classes,
                           int dtype, char *err, size_t err_len);

/* Initialise every parameter of g in the store from scratch (Kaiming normal
 * fan_in for convs, BN weight 1 bias 0 running var 1, classifier normal
 * std 0.001), deterministic for seed. */
int hcga_model_init(hg_graph *g, hg_store *s, uint64_t seed, char *err, size_t err_len);

#endif
