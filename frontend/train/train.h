/*
 * train.h - the HCGA training run (HCGA.md sections 3-5) behind `hcga
 * train`: setting it up (resume point, config, output directory, dataset,
 * graphs, weights, pseudo labels), one epoch (co-parsing round when due, PK
 * batches, Adam steps, logs and metrics.jsonl), the periodic checkpoint and
 * the periodic evaluation; and the learning-rate schedule.
 *
 * cli/cmd_train.c parses the command line and drives these in order:
 *   hcga_train_setup, open the backend, hcga_train_build, then per epoch
 *   hcga_train_epoch, hcga_train_checkpoint, hcga_train_periodic_eval;
 *   hcga_train_report, hcga_train_free.
 * Messages go to stdout/stderr prefixed "hcga train:" as before the split.
 */
#ifndef HCGA_TRAIN_H
#define HCGA_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend/backend.h"
#include "config/config.h"
#include "data/dataset.h"
#include "eval/eval.h"
#include "graph/graph.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "train/coparse.h"

/* Learning rate factor of epoch e (1-based) for the warm-up multistep schedule. */
double hcga_lr_factor(const hcga_config *cfg, int epoch);

/* What the command line asks for. */
typedef struct hcga_train_opts {
    const char *config, *data, *output; /* NULL when not given */
    int resume;                         /* continue output/checkpoint.safetensors */
    uint64_t seed;
    long long max_steps; /* 0: no limit */
    int dtype;           /* HCGA_F32 (default) or HCGA_F64 */
    int n_over;          /* KEY VALUE overrides */
    char **over;
    int threads;         /* data loading / evaluation threads (>= 1) */
    double bucket_mb;    /* data-parallel gradient bucket size (0: 25 MiB) */
    int no_overlap;      /* 1: all-reduce after backward instead of during it */
    int as_ranks;        /* > 1: one process computing as that many ranks would */
    int capture;         /* replay the training step as a captured graph */
} hcga_train_opts;

/* One training run; zero it before hcga_train_setup.  Owns everything it
 * points to (the backend too, once hcga_train_build was called). */
typedef struct hcga_train_run {
    hcga_train_opts o; /* o.seed becomes the checkpoint's on --resume */
    hcga_config *cfg;
    hcga_dataset ds;
    hcga_be *be;
    hg_store *store;
    hg_graph *gt, *ge;  /* train and eval graphs */
    hg_exec *ext, *exe;
    st_file *ck;        /* the checkpoint resumed from, or NULL */
    FILE *metrics;
    int label_lock;     /* fd locking the pseudo-label directory, or -1 */
    hcga_pseudo pseudo;
    hcga_aug_cfg aug;
    int *order;
    float *hostbuf;
    char outdir[4096], ckpath[4200], mpath[4200], cpath[4200];
    int start_epoch, max_epochs;
    int64_t adam_step;  /* optimizer steps applied (Adam's t) */
    /* Mixed precision (SOLVER.AMP.*).  FP16: the dynamic loss scale, the good
     * steps since it last changed and the steps skipped for Inf/NaN
     * gradients, all saved in checkpoints; a step's number counts the
     * skipped ones too (adam_step + amp_skipped). */
    hcga_amp_cfg amp;
    double loss_scale;
    long long amp_good_steps, amp_skipped;
    int batch, P, K, num_classes, test_batch, nparts, use_coparse;
    int nranks, local_batch; /* data-parallel ranks; this rank's part of `batch` */
    struct hcga_ddp *ddp;    /* gradient averaging (train/ddp.h) */
    double base_lr, bias_factor;
    int log_period, ck_period, eval_period;
    hcga_eval_result arm, glob; /* the last evaluation */
    int evaluated;
} hcga_train_run;

/* Reads the checkpoint to resume from (if any), loads the config, creates
 * the output directory, opens the dataset and checks the batch shape.
 * Returns the exit status: 0 to go on, 1 (failure) or 2 (usage). */
int hcga_train_setup(hcga_train_run *r, const hcga_train_opts *o);

/* Takes over be; builds the train and eval graphs, initialises or restores
 * the weights, opens metrics.jsonl, sets up (and locks) the pseudo labels
 * and prints the run's summary line.  Returns 0, or -1 after printing why. */
int hcga_train_build(hcga_train_run *r, hcga_be *be);

/* Trains one epoch: a co-parsing round when due, then every batch.  Sets
 * *stop when --max-steps was reached (steps skipped by FP16 loss scaling
 * count).  Returns 0, or -1 after printing why (a NaN/Inf loss stops before
 * the step is applied).  With FP16 an Inf/NaN gradient skips the step
 * instead: "step N skipped: gradients have Inf/NaN at loss scale S" on
 * stdout and in metrics.jsonl, the scale times SOLVER.AMP.BACKOFF_FACTOR. */
int hcga_train_epoch(hcga_train_run *r, int epoch, int *stop);

/* Writes the checkpoint when due (every SOLVER.CHECKPOINT_PERIOD epochs, the
 * last epoch, or stop).  Returns 0, or -1 after printing why. */
int hcga_train_checkpoint(hcga_train_run *r, int epoch, int stop);

/* Evaluates query vs gallery (ARM and global) when due (every
 * SOLVER.EVAL_PERIOD epochs and the last epoch), then redraws curves.png.
 * Returns 0, or -1 after printing why. */
int hcga_train_periodic_eval(hcga_train_run *r, int epoch);

/* The final line (last evaluation's Rank-1 and mAP), if there was one. */
void hcga_train_report(const hcga_train_run *r);

void hcga_train_free(hcga_train_run *r);

#endif
