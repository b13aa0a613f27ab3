/*
 * train.c - the HCGA training run (HCGA.md sections 3-5; see train.h):
 * setup, one epoch of PK batches with Adam steps and co-parsing rounds, the
 * periodic checkpoint and evaluation; and the learning-rate schedule.  The
 * command line (options, usage, the order of the calls) is cli/cmd_train.c.
 *
 * Data-parallel (mpirun -np N, frontend/dist): SOLVER.IMS_PER_BATCH stays
 * the global batch; every rank builds the graph for its part (P/N whole
 * identities x K images, dealt by the sharded loader), train/ddp.c averages
 * the gradients, and rank 0 alone writes the checkpoint, metrics.jsonl and
 * the logs.  Evaluation extracts the query and gallery features in N slices
 * and gathers them on rank 0, which scores them.
 */
#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"
#include "eval/features.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/model_io.h"
#include "train/coparse.h"
#include "train/ddp.h"
#include "util/progress.h"
#include "util/util.h"
#include "vis/vis.h"

#define ERRLEN 4096

static int read_val(hg_exec *ex, hg_graph *g, const char *name, void *host, int dtype, char *err,
                    size_t err_len)
{
    hg_val v = hg_find(g, name);
    if (v < 0) {
        snprintf(err, err_len, "the model graph has no output '%s'", name);
        return -1;
    }
    if (hg_exec_read(ex, v, host, dtype)) {
        snprintf(err, err_len, "reading '%s': %s", name, hg_exec_error(ex));
        return -1;
    }
    return 0;
}

static int64_t val_numel(hg_graph *g, const char *name)
{
    hg_val v = hg_find(g, name);
    return v < 0 ? -1 : hcga_val_numel(g, v);
}

/* ---- schedule ----------------------------------------------------------------- */

double hcga_lr_factor(const hcga_config *cfg, int epoch)
{
    double f = 1.0;
    long long warm = hcga_cfg_int(cfg, "SOLVER.WARMUP_ITERS");
    if (epoch < warm) {
        double alpha = (double)epoch / (double)warm;
        const char *method = hcga_cfg_str(cfg, "SOLVER.WARMUP_METHOD");
        double wf = hcga_cfg_float(cfg, "SOLVER.WARMUP_FACTOR");
        f = strcmp(method, "constant") == 0 ? wf : wf * (1.0 - alpha) + alpha;
    }
    int nsteps = hcga_cfg_list_len(cfg, "SOLVER.STEPS");
    double gamma = hcga_cfg_float(cfg, "SOLVER.GAMMA");
    for (int i = 0; i < nsteps; i++)
        if (hcga_cfg_list_int(cfg, "SOLVER.STEPS", i) <= epoch) f *= gamma;
    return f;
}

/* ---- the run -------------------------------------------------------------------- */

static void eval_print(FILE *f, const char *what, const hcga_eval_result *r)
{
    fprintf(f, "%-7s Rank-1 %5.1f%%  Rank-5 %5.1f%%  Rank-10 %5.1f%%  mAP %5.1f%%  mINP %5.1f%%  (%d/%d queries; "
               "mAP = mean of precision at each match; trapezoid-rule mAP %5.1f%%)\n",
            what, 100 * r->cmc[0], 100 * r->cmc[4], 100 * r->cmc[9], 100 * r->map, 100 * r->minp,
            r->num_valid, r->num_query, 100 * r->map_trapezoid);
}

static void jsonl_eval(FILE *m, int epoch, const char *what, const hcga_eval_result *r)
{
    if (!m) return;
    fprintf(m, "{\"epoch\": %d, \"eval\": \"%s\", \"rank1\": %.6f, \"rank5\": %.6f, \"rank10\": %.6f, "
               "\"map\": %.6f, \"minp\": %.6f, \"queries\": %d}\n",
            epoch, what, r->cmc[0], r->cmc[4], r->cmc[9], r->map, r->minp, r->num_valid);
    fflush(m);
}

/* Gathers one array of every rank's features on rank 0 (rank order, so
 * the slices join into the whole split).  *arr is replaced on rank 0. */
static int gather_array(void **arr, size_t row_bytes, int n_local, int n_total, const char *what, char *err,
                        size_t err_len)
{
    const int64_t cap = (int64_t)row_bytes * n_total;
    void *all = hcga_dist_rank() == 0 ? malloc((size_t)(cap > 0 ? cap : 1)) : NULL;
    if (hcga_dist_rank() == 0 && !all) {
        snprintf(err, err_len, "out of memory gathering %s", what);
        return -1;
    }
    int rc = hcga_dist_gather(*arr, (int64_t)row_bytes * n_local, all, cap, 0, NULL, what, err, err_len);
    if (rc == 0 && hcga_dist_rank() == 0) {
        free(*arr);
        *arr = all;
    } else {
        free(all);
    }
    return rc;
}

/* Features of a split extracted in N slices (one per rank) and joined on
 * rank 0; with one rank, simply the split's features. */
static int sharded_features(hg_exec *ex, hg_graph *g, int batch, const hcga_split *split, const hcga_aug_cfg *aug,
                            int threads, hcga_features *out, char *err, size_t err_len)
{
    const int N = hcga_dist_size(), r = hcga_dist_rank();
    if (N == 1) return hcga_extract_features(ex, g, batch, split, aug, threads, 0, out, err, err_len);
    const int lo = (int)((int64_t)split->count * r / N), hi = (int)((int64_t)split->count * (r + 1) / N);
    hcga_split part = {split->items + lo, hi - lo};
    if (hcga_extract_features(ex, g, batch, &part, aug, threads, 0, out, err, err_len)) return -1;
    const int n = out->n;
    const struct {
        void **p;
        size_t row;
        const char *what;
    } arrays[] = {
        {(void **)&out->fore, sizeof(float) * (size_t)out->d, "foreground features"},
        {(void **)&out->part, sizeof(float) * (size_t)out->nparts * out->d, "part features"},
        {(void **)&out->global, sizeof(float) * (size_t)out->dg, "global features"},
        {(void **)&out->vis, sizeof(int64_t) * (size_t)out->nparts, "visible parts"},
        {(void **)&out->pids, sizeof(int), "identities"},
        {(void **)&out->cams, sizeof(int), "cameras"},
    };
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        if (gather_array(arrays[k].p, arrays[k].row, n, split->count, arrays[k].what, err, err_len)) {
            hcga_features_free(out);
            return -1;
        }
    out->n = split->count;
    return 0;
}

/* Evaluate query vs gallery with ARM and global matching; prints both.  With
 * several ranks every rank extracts a slice and rank 0 scores. */
static int train_eval(hg_exec *ex, hg_graph *g, int batch, const hcga_dataset *ds, const hcga_config *cfg,
                      int threads, int epoch, FILE *metrics, hcga_eval_result *arm, hcga_eval_result *glob,
                      char *err, size_t err_len)
{
    hcga_aug_cfg aug = hcga_aug_from_config(cfg, 0);
    hcga_features q, gal;
    double t0 = hcga_now();
    if (sharded_features(ex, g, batch, &ds->query, &aug, threads, &q, err, err_len)) return -1;
    if (sharded_features(ex, g, batch, &ds->gallery, &aug, threads, &gal, err, err_len)) {
        hcga_features_free(&q);
        return -1;
    }
    if (hcga_dist_rank() != 0) { /* rank 0 scores */
        hcga_features_free(&q);
        hcga_features_free(&gal);
        return 0;
    }
    int norm = strcmp(hcga_cfg_str(cfg, "TEST.FEAT_NORM"), "yes") == 0;
    int rc = hcga_evaluate_features(&q, &gal, HCGA_MATCH_ARM, norm, 0, arm, err, err_len);
    if (!rc) rc = hcga_evaluate_features(&q, &gal, HCGA_MATCH_GLOBAL, norm, 0, glob, err, err_len);
    if (!rc) {
        printf("Validation results - epoch %d (%d query, %d gallery images, %.1f s)\n", epoch, q.n, gal.n,
               hcga_now() - t0);
        eval_print(stdout, "ARM", arm);
        eval_print(stdout, "global", glob);
        fflush(stdout);
        jsonl_eval(metrics, epoch, "arm", arm);
        jsonl_eval(metrics, epoch, "global", glob);
    }
    hcga_features_free(&q);
    hcga_features_free(&gal);
    return rc;
}

int hcga_train_setup(hcga_train_run *r, const hcga_train_opts *o)
{
    char err[ERRLEN];
    r->o = *o;
    r->label_lock = -1;

    /* output directory and the checkpoint to resume from */
    if (o->output) snprintf(r->outdir, sizeof r->outdir, "%s", o->output);
    else r->outdir[0] = '\0';
    r->start_epoch = 1;
    r->adam_step = 0;
    if (o->resume) {
        if (!r->outdir[0]) {
            fprintf(stderr, "hcga train: --resume needs --output DIR (the run to continue)\n");
            return 2;
        }
        snprintf(r->ckpath, sizeof r->ckpath, "%s/checkpoint.safetensors", r->outdir);
        r->ck = st_load(r->ckpath, err, sizeof err);
        if (!r->ck) {
            fprintf(stderr, "hcga train: --resume: %s\n", err);
            return 1;
        }
        const char *ep = st_meta(r->ck, "epoch"), *as = st_meta(r->ck, "adam_step"),
                   *sd = st_meta(r->ck, "seed");
        const char *cy = st_meta(r->ck, "config");
        long long v;
        if (!ep || !as || !sd || !cy || hcga_parse_int(ep, 0, 1000000, &v)) {
            fprintf(stderr, "hcga train: %s: not an hcga training checkpoint (metadata epoch/adam_step/seed/config missing)\n",
                    r->ckpath);
            return 1;
        }
        r->start_epoch = (int)v + 1;
        if (hcga_parse_int(as, 0, (long long)(~0ull >> 1), &v)) return 1;
        r->adam_step = v;
        if (hcga_parse_int(sd, 0, (long long)(~0ull >> 1), &v)) return 1;
        r->o.seed = (uint64_t)v;
        if (!o->config)
            r->cfg = hcga_config_load_string(cy, strlen(cy), r->ckpath, o->n_over, o->over, err, sizeof err);
    }
    if (!r->cfg) r->cfg = hcga_config_load(o->config, o->n_over, o->over, err, sizeof err);
    if (!r->cfg) {
        fprintf(stderr, "hcga train: %s\n", err);
        return 2;
    }
    const hcga_config *cfg = r->cfg;
    if (!r->outdir[0]) {
        const char *od = hcga_cfg_str(cfg, "OUTPUT_DIR");
        snprintf(r->outdir, sizeof r->outdir, "%s", od[0] ? od : "hcga-out");
    }
    if (hcga_mkdirs(r->outdir, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        return 1;
    }
    snprintf(r->ckpath, sizeof r->ckpath, "%s/checkpoint.safetensors", r->outdir);
    snprintf(r->mpath, sizeof r->mpath, "%s/metrics.jsonl", r->outdir);
    snprintf(r->cpath, sizeof r->cpath, "%s/curves.png", r->outdir);

    const char *root = o->data ? o->data : hcga_cfg_str(cfg, "DATASETS.ROOT_DIR");
    if (hcga_dataset_open(root, &r->ds, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        return 1;
    }
    r->batch = (int)hcga_cfg_int(cfg, "SOLVER.IMS_PER_BATCH");
    r->K = (int)hcga_cfg_int(cfg, "DATALOADER.NUM_INSTANCE");
    if (r->K < 1 || r->batch < r->K || r->batch % r->K) {
        fprintf(stderr, "hcga train: SOLVER.IMS_PER_BATCH (%d) must be a multiple of DATALOADER.NUM_INSTANCE (%d)\n",
                r->batch, r->K);
        return 2;
    }
    r->P = r->batch / r->K;
    r->nranks = hcga_dist_size();
    if (o->as_ranks > 1 && r->nranks > 1) {
        fprintf(stderr, "hcga train: --as-ranks stands one process for several ranks; it is not for an mpirun "
                        "job (this one has %d ranks)\n", r->nranks);
        return 2;
    }
    const int split = o->as_ranks > 1 ? o->as_ranks : r->nranks;
    if (r->P % split) {
        fprintf(stderr,
                "hcga train: SOLVER.IMS_PER_BATCH %d is %d identities x DATALOADER.NUM_INSTANCE %d, which %d ranks "
                "cannot share in whole identities (the global batch is divided among the ranks: make the identity "
                "count a multiple of %d)\n",
                r->batch, r->P, r->K, split, split);
        return 2;
    }
    r->local_batch = r->batch / r->nranks;
    r->num_classes = r->ds.num_train_ids;
    if (r->num_classes < r->P) {
        fprintf(stderr, "hcga train: %s has %d training identities, fewer than the %d a batch needs\n", root,
                r->num_classes, r->P);
        return 1;
    }
    r->max_epochs = (int)hcga_cfg_int(cfg, "SOLVER.MAX_EPOCHS");
    r->test_batch = (int)hcga_cfg_int(cfg, "TEST.IMS_PER_BATCH");

    /* mixed precision; --resume continues the FP16 loss scaler where it was */
    if (hcga_amp_from_config(cfg, &r->amp, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        return 2;
    }
    r->loss_scale = r->amp.init_scale;
    r->amp_good_steps = r->amp_skipped = 0;
    if (r->ck) {
        const char *ls = st_meta(r->ck, "amp_loss_scale"), *gs = st_meta(r->ck, "amp_good_steps"),
                   *sk = st_meta(r->ck, "amp_skipped_steps");
        if (ls && gs && sk) {
            char *end;
            double scale = strtod(ls, &end);
            long long g, k;
            if (*end || !(scale > 0) || !isfinite(scale) || hcga_parse_int(gs, 0, (long long)(~0ull >> 1), &g) ||
                hcga_parse_int(sk, 0, (long long)(~0ull >> 1), &k)) {
                fprintf(stderr, "hcga train: %s: invalid loss-scaler metadata (amp_loss_scale '%s', "
                                "amp_good_steps '%s', amp_skipped_steps '%s')\n",
                        r->ckpath, ls, gs, sk);
                return 1;
            }
            r->loss_scale = scale;
            r->amp_good_steps = g;
            r->amp_skipped = k;
        }
    }
    return 0;
}

/* CLUSTERING.AL must name a co-parsing method; guided names its clusters
 * with the part head, which is random at initialisation: a fresh run needs
 * it from MODEL.PRETRAIN_PATH (part_head: that file held part_cls_layer, as
 * hcga pretrain writes).  A resumed run has its own trained head.  0, or -1
 * after printing why. */
static int check_coparse_method(const hcga_config *cfg, int resumed, int part_head)
{
    char err[1024];
    int m = hcga_coparse_method_of(cfg, err, sizeof err);
    if (m < 0) {
        fprintf(stderr, "hcga train: %s\n", err);
        return -1;
    }
    if (m != HCGA_CP_GUIDED || resumed || part_head) return 0;
    const char *pp = hcga_cfg_str(cfg, "MODEL.PRETRAIN_PATH");
    fprintf(stderr,
            "hcga train: CLUSTERING.AL guided names the clusters with the part head, which must be "
            "pretrained: MODEL.PRETRAIN_PATH %s%s (hcga pretrain writes a backbone with part_cls_layer)\n",
            pp[0] ? pp : "is empty", pp[0] ? " has no part_cls_layer.weight" : "");
    return -1;
}

int hcga_train_build(hcga_train_run *r, hcga_be *be)
{
    char err[ERRLEN];
    int part_head = 0; /* MODEL.PRETRAIN_PATH held the part classifier */
    const hcga_config *cfg = r->cfg;
    r->be = be;
    r->store = hg_store_new(be, r->o.dtype);
    r->gt = hcga_model_build_ranks(cfg, HCGA_MODEL_TRAIN, r->local_batch, r->num_classes, r->o.dtype, r->nranks,
                                   r->o.as_ranks, err, sizeof err);
    if (!r->gt) {
        fprintf(stderr, "hcga train: %s\n", err);
        return -1;
    }
    r->ge = hcga_model_build(cfg, HCGA_MODEL_EVAL, r->test_batch, r->num_classes, r->o.dtype, err, sizeof err);
    if (!r->ge) {
        fprintf(stderr, "hcga train: %s\n", err);
        return -1;
    }
    r->ext = hg_exec_new(r->gt, r->store, err, sizeof err);
    if (!r->ext) {
        fprintf(stderr, "hcga train: train graph: %s\n", err);
        return -1;
    }
    r->exe = hg_exec_new(r->ge, r->store, err, sizeof err);
    if (!r->exe) {
        fprintf(stderr, "hcga train: eval graph: %s\n", err);
        return -1;
    }
    if (r->ck) {
        if (hcga_checkpoint_restore(r->store, be, r->ck, r->ckpath, 1, err, sizeof err)) {
            fprintf(stderr, "hcga train: %s\n", err);
            return -1;
        }
    } else if (hcga_model_init(r->gt, r->store, r->o.seed, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        return -1;
    } else if (hcga_cfg_str(cfg, "MODEL.PRETRAIN_PATH")[0]) {
        /* a pretrained backbone (the ImageNet HRNet, or hcga pretrain's
         * stand-in) over the initialised weights; a resumed run has its
         * own weights in the checkpoint */
        const char *pp = hcga_cfg_str(cfg, "MODEL.PRETRAIN_PATH");
        int loaded = 0;
        if (hcga_model_load_backbone(cfg, r->store, pp, &loaded, &part_head, err, sizeof err)) {
            fprintf(stderr, "hcga train: MODEL.PRETRAIN_PATH: %s\n", err);
            return -1;
        }
        printf("hcga train: pretrained backbone: %d tensors from %s\n", loaded, pp);
    }
    /* every rank starts from rank 0's weights and buffers, then averages
     * its gradients with the others' every step */
    if (hcga_ddp_broadcast_store(r->store, 0, err, sizeof err)) {
        fprintf(stderr, "hcga train: rank %d: %s\n", hcga_dist_rank(), err);
        return -1;
    }
    r->ddp = hcga_ddp_new(r->ext, r->o.bucket_mb > 0 ? r->o.bucket_mb : 25.0, !r->o.no_overlap, err, sizeof err);
    if (!r->ddp) {
        fprintf(stderr, "hcga train: data-parallel setup: %s\n", err);
        return -1;
    }
    if (r->o.capture && hg_exec_set_capture(r->ext, 1)) {
        fprintf(stderr, "hcga train: --capture: %s\n", hg_exec_error(r->ext));
        return -1;
    }
    /* rank 0 writes metrics.jsonl; the others write nowhere */
    r->metrics = hcga_dist_rank() == 0 ? fopen(r->mpath, r->o.resume ? "a" : "w") : fopen("/dev/null", "w");
    if (!r->metrics) {
        fprintf(stderr, "hcga train: %s: %s\n", r->mpath, strerror(errno));
        return -1;
    }
    r->aug = hcga_aug_from_config(cfg, 1);
    r->nparts = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (hcga_pseudo_init(&r->pseudo, r->ds.train.count, r->aug.label_h, r->aug.label_w, r->nparts)) {
        fprintf(stderr, "hcga train: out of memory for pseudo labels\n");
        return -1;
    }
    const char *al = hcga_cfg_str(cfg, "CLUSTERING.AL");
    r->use_coparse = strcmp(al, "band") != 0 && strcmp(al, "gt") != 0;
    if (r->use_coparse && check_coparse_method(cfg, r->ck != NULL, part_head)) return -1;
    if (!strcmp(al, "gt")) {
        /* the ground-truth part masks as labels throughout (hcga pretrain) */
        int m = hcga_pseudo_from_masks(&r->pseudo, &r->ds, err, sizeof err);
        if (m) {
            fprintf(stderr, "hcga train: CLUSTERING.AL gt: %s\n", err);
            return -1;
        }
    }
    /* the job holds the label directory's lock through rank 0 */
    if (r->use_coparse && hcga_dist_rank() == 0 &&
        (r->label_lock = hcga_pseudo_lock(cfg, &r->ds, err, sizeof err)) < 0) {
        fprintf(stderr, "hcga train: %s\n", err);
        return -1;
    }
    if (r->start_epoch == 1 && r->nparts <= 64 && strcmp(al, "gt") != 0) {
        double iou[64], miou;
        if (hcga_pseudo_miou(&r->pseudo, &r->ds, iou, &miou, err, sizeof err) == 0) {
            printf("horizontal-band pseudo labels: mIoU(parts) %.3f against the ground-truth part masks\n", miou);
            fprintf(r->metrics, "{\"epoch\": 0, \"band_miou\": %.6f}\n", miou);
        }
    }
    if (r->ck && r->use_coparse && r->start_epoch > 1) {
        if (hcga_pseudo_load(&r->pseudo, cfg, &r->ds, err, sizeof err)) {
            fprintf(stderr, "hcga train: --resume: %s\n", err);
            return -1;
        }
    }
    printf("hcga train: %s backend, %d training images of %d identities, batch %d = %d x %d, epochs %d..%d, "
           "train graph peak %.1f MiB (+%.1f MiB persistent), output %s\n",
           be->name, r->ds.train.count, r->num_classes, r->batch, r->P, r->K, r->start_epoch, r->max_epochs,
           hg_exec_peak_bytes(r->ext) / 1048576.0, hg_exec_persistent_bytes(r->ext) / 1048576.0, r->outdir);
    const char *prec = hcga_amp_precision(&r->amp, r->o.dtype);
    if (!r->amp.enabled)
        printf("hcga train: precision %s (no mixed precision; SOLVER.AMP.ENABLED False)\n", prec);
    else if (r->amp.dtype == HCGA_F16)
        printf("hcga train: precision fp16 mixed: convolutions and GEMMs in fp16 with f32 accumulation, "
               "everything else, master weights and Adam state %s; dynamic loss scale %g (x%g after %lld "
               "good steps, x%g and the step skipped on Inf/NaN gradients)\n",
               r->o.dtype == HCGA_F64 ? "f64" : "f32", r->loss_scale, r->amp.growth_factor,
               r->amp.growth_interval, r->amp.backoff_factor);
    else
        printf("hcga train: precision bf16 mixed: convolutions and GEMMs in bf16 with f32 accumulation, "
               "everything else, master weights and Adam state %s; no loss scaling\n",
               r->o.dtype == HCGA_F64 ? "f64" : "f32");
    if (r->nranks > 1) {
        hcga_ddp_stats ds = hcga_ddp_get_stats(r->ddp);
        printf("hcga train: data-parallel over %d ranks (%s backend on each), %d images per rank per step, "
               "%d gradient buckets (%.1f MiB in all, %s), batch norm %s\n",
               r->nranks, be->name, r->local_batch, hcga_ddp_num_buckets(r->ddp), ds.bytes / 1048576.0, ds.transport,
               hcga_cfg_bool(cfg, "MODEL.SYNC_BN") ? "synchronised over the ranks (MODEL.SYNC_BN)"
                                                   : "per rank (MODEL.SYNC_BN False)");
    }
    fflush(stdout);

    r->base_lr = hcga_cfg_float(cfg, "SOLVER.BASE_LR");
    r->bias_factor = hcga_cfg_float(cfg, "SOLVER.BIAS_LR_FACTOR");
    r->log_period = (int)hcga_cfg_int(cfg, "SOLVER.LOG_PERIOD");
    r->ck_period = (int)hcga_cfg_int(cfg, "SOLVER.CHECKPOINT_PERIOD");
    r->eval_period = (int)hcga_cfg_int(cfg, "SOLVER.EVAL_PERIOD");
    const int64_t ncls_out = val_numel(r->gt, "train.cls_score_global");
    r->hostbuf = malloc(sizeof(float) * (size_t)(ncls_out > 0 ? ncls_out : 1));
    if (!r->hostbuf) return -1;
    return 0;
}

int hcga_train_epoch(hcga_train_run *r, int epoch, int *stop)
{
    char err[ERRLEN];
    const hcga_config *cfg = r->cfg;
    const int batch = r->batch, num_classes = r->num_classes;
    double lr = r->base_lr * hcga_lr_factor(cfg, epoch);
    if (r->use_coparse && hcga_coparse_due(cfg, epoch)) {
        double t0 = hcga_now();
        if (hcga_ddp_broadcast_store(r->store, 1, err, sizeof err)) {
            fprintf(stderr, "hcga train: co-parsing at epoch %d: %s\n", epoch, err);
            return -1;
        }
        if (hcga_coparse_round(cfg, r->be, r->store, &r->ds, epoch, r->o.threads, r->o.seed, &r->pseudo, stdout,
                               err, sizeof err)) {
            fprintf(stderr, "hcga train: co-parsing at epoch %d: %s\n", epoch, err);
            return -1;
        }
        fprintf(r->metrics, "{\"epoch\": %d, \"coparse_round\": %d, \"seconds\": %.2f, \"miou\": %.6f", epoch,
                r->pseudo.rounds, hcga_now() - t0, r->pseudo.miou);
        if (r->pseudo.miou >= 0) {
            fprintf(r->metrics, ", \"iou\": [");
            for (int k = 0; k < r->pseudo.num_parts; k++) fprintf(r->metrics, "%s%.6f", k ? ", " : "", r->pseudo.iou[k]);
            fprintf(r->metrics, "]");
        }
        fprintf(r->metrics, "}\n");
    }
    free(r->order);
    r->order = NULL;
    int count;
    if (hcga_pk_sample(&r->ds.train, num_classes, r->P, r->K, r->o.seed, epoch, &r->order, &count) || count == 0) {
        fprintf(stderr, "hcga train: the PK sampler produced no batch (%d identities, P %d, K %d)\n",
                num_classes, r->P, r->K);
        return -1;
    }
    hcga_loader *ld = hcga_loader_new_shard(&r->ds.train, r->order, count, batch, 1, &r->aug, r->nparts,
                                            hcga_pseudo_label_fn, &r->pseudo, r->o.seed, epoch, r->o.threads,
                                            hcga_dist_rank(), r->nranks);
    if (!ld) {
        fprintf(stderr, "hcga train: cannot start the data loader\n");
        return -1;
    }
    const int niter = count / batch;
    double t0 = hcga_now(), loss_sum = 0, acc_sum = 0;
    int it = 0;
    /* the step line on a terminal (rank 0 only): epoch, step, rate, ETA, loss */
    hcga_progress pg;
    char pglabel[64], pgextra[48];
    snprintf(pglabel, sizeof pglabel, "epoch %d/%d", epoch, r->max_epochs);
    hcga_progress_start(&pg, pglabel, niter);
    if (hcga_dist_rank() != 0) hcga_progress_off(&pg);
    const hcga_batch *b;
    float *hostbuf = r->hostbuf;
    const int fp16 = r->amp.enabled && r->amp.dtype == HCGA_F16;
    while ((b = hcga_loader_next(ld))) {
        it++;
        if (fp16 && hcga_model_set_loss_scale(r->ext, r->gt, r->loss_scale, err, sizeof err)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, err);
            hcga_loader_free(ld);
            return -1;
        }
        hcga_dist_set_step((long long)r->adam_step + r->amp_skipped + 1);
        if (hg_exec_set_input(r->ext, "input.images", b->images, HCGA_F32) ||
            hg_exec_set_input(r->ext, "input.pids", b->labels, HCGA_I64) ||
            hg_exec_set_input(r->ext, "input.parsing", b->parsing, HCGA_I64) || hg_exec_run(r->ext)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, hg_exec_error(r->ext));
            hcga_loader_free(ld);
            return -1;
        }
        if (hcga_ddp_finish(r->ddp, err, sizeof err)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, err);
            hcga_loader_free(ld);
            return -1;
        }
        double loss; /* f64 whatever the graph's dtype: metrics.jsonl shows it to 17 digits */
        int b_n_all;
        if (read_val(r->ext, r->gt, "loss.total", &loss, HCGA_F64, err, sizeof err) ||
            read_val(r->ext, r->gt, "train.cls_score_global", hostbuf, HCGA_F32, err, sizeof err)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: %s\n", err);
            hcga_loader_free(ld);
            return -1;
        }
        int correct = 0;
        for (int i = 0; i < b->n; i++) {
            int best = 0;
            for (int c = 1; c < num_classes; c++)
                if (hostbuf[(size_t)i * num_classes + c] > hostbuf[(size_t)i * num_classes + best]) best = c;
            correct += best == b->labels[i];
        }
        const long long stepno = (long long)r->adam_step + r->amp_skipped + 1;
        float gsum = 0;
        if (fp16 && read_val(r->ext, r->gt, HCGA_AMP_CHECK_OUTPUT, &gsum, HCGA_F32, err, sizeof err)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: %s\n", err);
            hcga_loader_free(ld);
            return -1;
        }
        /* the step's numbers over all ranks: the mean loss, the accuracy of
         * the whole batch, and an Inf/NaN gradient anywhere skips everywhere */
        if (r->nranks > 1) {
            double v[4] = {loss, correct, b->n, gsum};
            if (hcga_dist_allreduce_sum(v, 4, HCGA_F64, "loss and accuracy", err, sizeof err)) {
                hcga_progress_finish(&pg);
                fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, err);
                hcga_loader_free(ld);
                return -1;
            }
            loss = v[0] / r->nranks;
            correct = (int)v[1];
            gsum = (float)v[3];
            b_n_all = (int)v[2];
        } else {
            b_n_all = b->n;
        }
        double acc = (double)correct / b_n_all;
        if (!isfinite(loss)) {
            hcga_progress_finish(&pg);
            fprintf(stderr, "hcga train: loss is %s at epoch %d iteration %d; stopping without applying "
                            "this step (the last checkpoint %s is intact)\n",
                    isnan(loss) ? "NaN" : "Inf", epoch, it, r->ckpath);
            hcga_loader_free(ld);
            return -1;
        }
        if (fp16 && !isfinite(gsum)) {
            /* never applied: the optimizer does not run (nor count the step) */
            hcga_progress_clear(&pg);
            printf("step %lld skipped: gradients have Inf/NaN at loss scale %g\n", stepno, r->loss_scale);
            fflush(stdout);
            fprintf(r->metrics,
                    "{\"epoch\": %d, \"skipped_step\": %lld, \"reason\": \"gradients have Inf/NaN\", "
                    "\"loss_scale\": %.17g, \"next_loss_scale\": %.17g, \"loss\": %.17g}\n",
                    epoch, stepno, r->loss_scale, r->loss_scale * r->amp.backoff_factor, loss);
            r->loss_scale *= r->amp.backoff_factor;
            r->amp_good_steps = 0;
            r->amp_skipped++;
        } else {
            hg_optim_cfg oc = {lr, hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY"), lr * r->bias_factor,
                               hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY_BIAS"), 0.9, 0.999, 1e-8, 0.0,
                               ++r->adam_step};
            if (hg_adam_step(r->ext, &oc)) {
                hcga_progress_finish(&pg);
                fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, hg_exec_error(r->ext));
                hcga_loader_free(ld);
                return -1;
            }
            if (fp16 && ++r->amp_good_steps >= r->amp.growth_interval) {
                r->loss_scale *= r->amp.growth_factor;
                r->amp_good_steps = 0;
            }
            fprintf(r->metrics, "{\"epoch\": %d, \"step\": %lld, \"loss\": %.17g, \"acc\": %.6f}\n", epoch,
                    stepno, loss, acc);
        }
        loss_sum += loss;
        acc_sum += acc;
        if (r->o.max_steps > 0 && r->adam_step + r->amp_skipped >= r->o.max_steps) {
            *stop = 1;
            break;
        }
        if (r->log_period > 0 && it % r->log_period == 0) {
            hcga_progress_clear(&pg);
            printf("Epoch[%d] Iteration[%d/%d] Loss: %.3f, Acc: %.3f, Base Lr: %.2e\n", epoch, it, niter,
                   loss_sum / it, acc_sum / it, lr);
            fflush(stdout);
        }
        snprintf(pgextra, sizeof pgextra, "loss %.3f", loss_sum / it);
        hcga_progress_update(&pg, it, pgextra);
    }
    hcga_progress_finish(&pg);
    if (hcga_loader_error(ld)) {
        fprintf(stderr, "hcga train: %s\n", hcga_loader_error(ld));
        hcga_loader_free(ld);
        return -1;
    }
    double secs = hcga_now() - t0, waited = hcga_loader_wait_seconds(ld);
    hcga_loader_free(ld);
    printf("Epoch %d done. Loss: %.3f, Acc: %.3f, Base Lr: %.2e, time %.1f s, %.2f samples/s (data wait %.1f s)\n",
           epoch, loss_sum / it, acc_sum / it, lr, secs, it * batch / secs, waited);
    fflush(stdout);
    fprintf(r->metrics,
            "{\"epoch\": %d, \"iterations\": %d, \"loss\": %.6f, \"acc\": %.6f, \"lr\": %.6e, \"seconds\": %.3f, "
            "\"samples_per_s\": %.3f, \"data_wait_s\": %.3f}\n",
            epoch, it, loss_sum / it, acc_sum / it, lr, secs, it * batch / secs, waited);
    fflush(r->metrics);
    return 0;
}

int hcga_train_checkpoint(hcga_train_run *r, int epoch, int stop)
{
    char err[ERRLEN];
    if (hcga_dist_rank() != 0) return 0; /* rank 0 writes it (all ranks hold the same weights) */
    if ((r->ck_period > 0 && epoch % r->ck_period == 0) || epoch == r->max_epochs || stop) {
        char ls[64], gs[32], sk[32];
        snprintf(ls, sizeof ls, "%.17g", r->loss_scale);
        snprintf(gs, sizeof gs, "%lld", r->amp_good_steps);
        snprintf(sk, sizeof sk, "%lld", r->amp_skipped);
        const char *const extra[] = {"amp_loss_scale", ls, "amp_good_steps", gs, "amp_skipped_steps", sk};
        if (hcga_checkpoint_save(r->store, r->cfg, epoch, r->adam_step, r->o.seed, r->num_classes, 3, extra,
                                 r->ckpath, err, sizeof err)) {
            fprintf(stderr, "hcga train: %s\n", err);
            return -1;
        }
        printf("checkpoint: %s (epoch %d)\n", r->ckpath, epoch);
    }
    return 0;
}

int hcga_train_periodic_eval(hcga_train_run *r, int epoch)
{
    char err[ERRLEN];
    if ((r->eval_period > 0 && epoch % r->eval_period == 0) || epoch == r->max_epochs) {
        if (hcga_ddp_broadcast_store(r->store, 1, err, sizeof err)) {
            fprintf(stderr, "hcga train: evaluation at epoch %d: %s\n", epoch, err);
            return -1;
        }
        if (train_eval(r->exe, r->ge, r->test_batch, &r->ds, r->cfg, r->o.threads, epoch, r->metrics, &r->arm,
                       &r->glob, err, sizeof err)) {
            fprintf(stderr, "hcga train: evaluation at epoch %d: %s\n", epoch, err);
            return -1;
        }
        r->evaluated = 1;
    }
    if (hcga_dist_rank() != 0) return 0;
    if (hcga_vis_curves(r->cpath, r->mpath, 0, 0, err, sizeof err)) fprintf(stderr, "hcga train: curves: %s\n", err);
    return 0;
}

void hcga_train_report(const hcga_train_run *r)
{
    if (r->evaluated)
        printf("final: ARM Rank-1 %.1f%% mAP %.1f%% | global Rank-1 %.1f%% mAP %.1f%%\n", 100 * r->arm.cmc[0],
               100 * r->arm.map, 100 * r->glob.cmc[0], 100 * r->glob.map);
}

void hcga_train_free(hcga_train_run *r)
{
    hcga_ddp_free(r->ddp);
    free(r->hostbuf);
    free(r->order);
    hcga_pseudo_free(&r->pseudo);
    if (r->label_lock >= 0) close(r->label_lock);
    if (r->metrics) fclose(r->metrics);
    hg_exec_free(r->ext);
    hg_exec_free(r->exe);
    if (r->gt) hcga_model_graph_free(r->gt);
    if (r->ge) hcga_model_graph_free(r->ge);
    hg_store_free(r->store);
    if (r->be) hcga_be_close(r->be);
    hcga_dataset_free(&r->ds);
    if (r->ck) st_free(r->ck);
    hcga_config_free(r->cfg);
    memset(r, 0, sizeof *r);
    r->label_lock = -1;
}
