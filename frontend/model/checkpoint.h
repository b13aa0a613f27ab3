/*
 * checkpoint.h - training checkpoints (hcga-checkpoint-1 safetensors files)
 * and binding an inference graph to the weights of a checkpoint or a
 * reference state dict.
 */
#ifndef HCGA_CHECKPOINT_H
#define HCGA_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "config/config.h"
#include "graph/graph.h"
#include "model/safetensors.h"

/* Write a training checkpoint (parameters and buffers with the reference's
 * names, Adam state as optimizer.exp_avg.<name> / optimizer.exp_avg_sq.<name>,
 * metadata: config, epoch, adam_step, seed, plus n_extra more KEY VALUE
 * pairs from extra[2*i], extra[2*i+1], e.g. the FP16 loss scaler's state)
 * atomically. */
int hcga_checkpoint_save(hg_store *s, const hcga_config *cfg, int epoch, int64_t adam_step,
                         uint64_t seed, int num_classes, int n_extra, const char *const *extra,
                         const char *path, char *err, size_t err_len);

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

#endif
