/*
 * model_io.h - helpers around the HCGA model builder (model.h): the list of
 * parameters a built graph uses, checkpoint (state dict) load/save with the
 * reference's names, small host-side post-processing of model outputs, and
 * graph values read into safetensors writers (hcga forward).
 *
 * Graph outputs of hcga_model_build (names as in the golden file):
 *   eval:     eval.feat_fore [N,256], eval.feat_part [N,K-1,256],
 *             eval.feat_global [N,256 or 1920] (BN'ed y_global, for the
 *             non-ARM "concat" test features), eval.feature_map [N,256,h,w],
 *             eval.part_argmax [N,h,w] I64 (argmax over the part softmax;
 *             hcga_model_visible_parts turns it into eval.visible_part).
 *   features: eval.feature_map only.
 *   train:    train.cls_score_part/global/fore [N,classes],
 *             train.y_part [N,256(K-1)], train.y_global, train.y_fore,
 *             train.part_pd_score [N,K,h,w], loss.xent_global, loss.xent_fore,
 *             loss.xent_part, loss.parsing, loss.triplet_global (and
 *             loss.triplet_fore when SOLVER.Tri_F_WEIGHT != 0), loss.total;
 *             hcga_model_build has already called hg_backward(loss.total).
 * h = H/4 and w = W/4 for an H x W input.
 */
#ifndef HCGA_MODEL_IO_H
#define HCGA_MODEL_IO_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "graph/graph.h"
#include "model/safetensors.h"

/* One parameter or buffer of a model graph, as registered by the builder. */
typedef struct hcga_model_param {
    char name[128];
    int ndim;
    int64_t shape[4];
    unsigned flags; /* HG_TRAINABLE / HG_BUFFER / HG_FROZEN / HG_BIAS */
} hcga_model_param;

/* The parameters of a graph built by hcga_model_build, in creation order.
 * Returns NULL (and *n = 0) for a graph that the builder did not make. */
const hcga_model_param *hcga_model_graph_params(const hg_graph *g, int *n);

/* Every parameter and buffer of the full model (the train graph's) for cfg
 * and num_classes, as a malloc'd array of *n entries; NULL with err on a
 * config error. */
hcga_model_param *hcga_model_param_list(const hcga_config *cfg, int num_classes, int *n,
                                        char *err, size_t err_len);

/* Free a graph from hcga_model_build (also forgets its parameter list). */
void hcga_model_graph_free(hg_graph *g);

/* Spatial size of the feature map / part logits for the config and mode
 * (INPUT.SIZE_TRAIN for train, INPUT.SIZE_TEST otherwise) divided by 4. */
void hcga_model_input_size(const hcga_config *cfg, int mode, int64_t *h, int64_t *w);

/* 1 for state-dict names the reference has but hcga does not compute with:
 * base.red1.*, base.red2.*, base.spatial_attn1.*, base.thresh.* and every
 * *.num_batches_tracked. */
int hcga_model_ignored_name(const char *name);

/* The number of identities a checkpoint was trained for: the first dim of
 * classifier_global.weight.  Returns -1 and writes err when absent. */
int hcga_model_num_classes(const st_file *f, const char *what, char *err, size_t err_len);

/* Load flags */
#define HCGA_LOAD_SKIP_CLASSIFIERS 1u /* ignore classifier_* (other identities); they stay as initialised */

/* Copy a state dict into the store: every parameter and buffer of the full
 * model for cfg (the train graph's, with the number of classes taken from
 * the file's classifier_global.weight) is written to the store, adding
 * entries that are missing.  Every such parameter must be in the file with
 * its exact shape; every tensor of the file must be a model parameter or an
 * ignored name (hcga_model_ignored_name).  Otherwise returns -1 with one line
 * naming the file and the offending tensors ("missing: ...", "unexpected:
 * ...", "shape [..] in the file, the model has [..]").  Tensors of any float
 * dtype convert to the store's dtype.  Load before or after building the
 * eval/train graphs: they bind to the store's entries by name. */
int hcga_model_load_state(const hcga_config *cfg, hg_store *s, const st_file *f,
                          const char *what, unsigned flags, char *err, size_t err_len);
int hcga_model_load_file(const hcga_config *cfg, hg_store *s, const char *path, unsigned flags,
                         char *err, size_t err_len);

/* Load an ImageNet-pretrained HRNet (the reference's load_param: names
 * without the "base." prefix, e.g. "conv1.weight", "stage4.2.fuse_layers.
 * 3.0.0.0.weight").  Every tensor whose "base."-prefixed name is a backbone
 * parameter of the model is loaded; others (the ImageNet classifier, the
 * downsampling/final layers) are skipped, and the model's parameters the
 * file lacks keep their values.  A known name with another shape is an error.
 * *loaded (may be NULL) gets the number of tensors loaded, *part_head (may
 * be NULL) 1 when they include the part classifier (part_cls_layer, which
 * hcga pretrain writes and an ImageNet file lacks), else 0; a file that
 * loads nothing is an error (probably the wrong file). */
int hcga_model_load_backbone(const hcga_config *cfg, hg_store *s, const char *path, int *loaded, int *part_head,
                             char *err, size_t err_len);

/* The backbone of a checkpoint as an ImageNet-HRNet-style file: every
 * tensor "base.X" of ck written as "X" (F32) to path: the HRNet itself,
 * the layers that make the feature map F (cls_head, spatial_attn) and the
 * part classifier (part_cls_layer, which CLUSTERING.AL guided names the
 * co-parsing clusters with), all of which a converted ImageNet file lacks
 * and hcga_model_load_backbone then leaves initialised, plus metadata pairs, so that hcga_model_load_backbone (MODEL.PRETRAIN_PATH)
 * loads it as it loads the converted ImageNet HRNet.  *saved (may be NULL)
 * gets the number of tensors.  Returns 0 or -1 with err. */
int hcga_model_save_backbone(const st_file *ck, const char *what, const char *path, int n_meta,
                             const char *const *meta, int *saved, char *err, size_t err_len);

/* Write every parameter and buffer of g from the store to a safetensors
 * file with the reference's names (F32), plus metadata pairs (n_meta pairs
 * of key, value; may be 0).  Returns 0 or -1 with err. */
int hcga_model_save_file(hg_graph *g, hg_store *s, const char *path, int n_meta,
                         const char *const *meta, char *err, size_t err_len);

/* visible[n*(K-1) + (k-1)] = 1 when some pixel of image n has argmax k. */
void hcga_model_visible_parts(const int64_t *argmax, int64_t n, int64_t h, int64_t w, int k,
                              int64_t *visible);

/* Number of elements of a graph value. */
int64_t hcga_val_numel(const hg_graph *g, hg_val v);

/* Read value v of ex (F32 for float values, I64 for index values) and add
 * it to w as `name`.  Returns 0, or -1 with err. */
int hcga_write_value(hg_exec *ex, const hg_graph *g, hg_val v, const char *name, st_writer *w,
                     char *err, size_t err_len);

#endif
