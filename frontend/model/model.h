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
    HCGA_MODEL_FEATURES = 2 /* eval mode: the feature map F and the part probabilities (co-parsing input) */
} hcga_model_mode;

/* Graph inputs: "input.images" [N,3,H,W] (F32/F64 as dtype), and in train
 * mode "input.pids" [N] I64 (class indices 0..num_classes-1) and
 * "input.parsing" [N,H/4,W/4] I64.  Outputs are marked with the golden
 * file's names ("eval.feat_fore", "train.cls_score_part", "loss.total", ...).
 * Parameters carry the reference's names.  Returns NULL and writes err on a
 * config problem. */
hg_graph *hcga_model_build(const hcga_config *cfg, int mode, int batch, int num_classes,
                           int dtype, char *err, size_t err_len);
/* The same for one of `ranks` data-parallel processes, batch being this
 * rank's part: with MODEL.SYNC_BN True a training graph's batch norms take
 * their statistics over all the ranks' parts (hg_graph_set_sync_bn), also
 * with ranks 1.  parts > 1 (with ranks 1): one process computing the
 * training losses and unsynchronised batch norm as `parts` ranks would
 * (hg_graph_set_parts).  hcga_model_build is ranks 0, parts 1 (SYNC_BN
 * ignored). */
hg_graph *hcga_model_build_ranks(const hcga_config *cfg, int mode, int batch, int num_classes, int dtype,
                                 int ranks, int parts, char *err, size_t err_len);

/* Mixed precision from SOLVER.AMP.* (fast-reid's key names).  When enabled,
 * hcga_model_build turns on the graph's autocast (graph.h) in every mode, so
 * the convolutions and the classifier GEMMs run in dtype with F32
 * accumulation and nothing else changes; an FP16 training graph also gets
 * dynamic loss scaling: the scalar inputs HCGA_AMP_SCALE_INPUT (S, the
 * backward seed) and HCGA_AMP_UNSCALE_INPUT (1/S, applied to the parameter
 * gradients) and the output HCGA_AMP_CHECK_OUTPUT (finite exactly when no
 * gradient has an Inf/NaN; hg_grad_check).  BF16 needs no scaling. */
typedef struct hcga_amp_cfg {
    int enabled;
    int dtype; /* HCGA_BF16 or HCGA_F16 when enabled, -1 otherwise */
    double init_scale, growth_factor, backoff_factor;
    long long growth_interval;
} hcga_amp_cfg;

#define HCGA_AMP_SCALE_INPUT "amp.loss_scale"
#define HCGA_AMP_UNSCALE_INPUT "amp.inv_loss_scale"
#define HCGA_AMP_CHECK_OUTPUT "amp.grad_abs_sum"

/* Reads and checks SOLVER.AMP.*; returns 0, or -1 with err naming the key. */
int hcga_amp_from_config(const hcga_config *cfg, hcga_amp_cfg *amp, char *err, size_t err_len);
/* "fp32" / "fp64" (off, by the compute dtype), "bf16" or "fp16". */
const char *hcga_amp_precision(const hcga_amp_cfg *amp, int dtype);
/* Writes S and 1/S to the loss-scale inputs of an FP16 training graph (the
 * inputs start at 0, so a caller must set them before the first run); a
 * no-op for graphs without them.  Returns 0, or -1 with err. */
int hcga_model_set_loss_scale(hg_exec *ex, hg_graph *g, double scale, char *err, size_t err_len);

/* Initialise every parameter of g in the store from scratch (Kaiming normal
 * fan_in for convs, BN weight 1 bias 0 running var 1, classifier normal
 * std 0.001), deterministic for seed. */
int hcga_model_init(hg_graph *g, hg_store *s, uint64_t seed, char *err, size_t err_len);

#endif
