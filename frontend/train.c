/*
 * train.c - `hcga train`: the HCGA training loop (HCGA.md sections 3-5),
 * checkpoints, periodic evaluation; and the evaluation helpers `hcga test`
 * shares.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "coparse.h"
#include "model.h"
#include "model_cli.h"
#include "model_io.h"
#include "safetensors.h"
#include "vis.h"

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

/* ---- checkpoints --------------------------------------------------------------- */

static int add_tensor(st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data,
                      char *err, size_t err_len)
{
    if (st_writer_add(w, name, ST_F32, ndim, shape, data)) {
        snprintf(err, err_len, "checkpoint: duplicate tensor '%s'", name);
        return -1;
    }
    return 0;
}

static int64_t entry_numel(const hg_store_entry *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

int hcga_checkpoint_save(hg_store *s, const hcga_config *cfg, int epoch, int64_t adam_step,
                         uint64_t seed, int num_classes, const char *path, char *err, size_t err_len)
{
    st_writer *w = st_writer_new();
    if (!w) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = -1;
    float *buf = NULL;
    for (int i = 0; i < hg_store_count(s); i++) {
        hg_store_entry *e = hg_store_at(s, i);
        int64_t n = entry_numel(e);
        float *nb = realloc(buf, sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!nb) {
            snprintf(err, err_len, "%s: out of memory", path);
            goto out;
        }
        buf = nb;
        if (hg_store_read(s, e, buf, HCGA_F32)) {
            snprintf(err, err_len, "%s: reading '%s' from the backend failed", path, e->name);
            goto out;
        }
        if (add_tensor(w, e->name, e->ndim, e->shape, buf, err, err_len)) goto out;
        const hcga_tensor *st[2] = {&e->m, &e->v};
        const char *pre[2] = {"optimizer.exp_avg.", "optimizer.exp_avg_sq."};
        for (int k = 0; k < 2; k++) {
            if (!st[k]->buf) continue;
            hg_store_entry tmp = *e;
            tmp.t = *st[k];
            if (hg_store_read(s, &tmp, buf, HCGA_F32)) {
                snprintf(err, err_len, "%s: reading the optimizer state of '%s' failed", path, e->name);
                goto out;
            }
            char name[300];
            snprintf(name, sizeof name, "%s%s", pre[k], e->name);
            if (add_tensor(w, name, e->ndim, e->shape, buf, err, err_len)) goto out;
        }
    }
    char *yaml = hcga_config_dump_string(cfg);
    char num[64];
    st_writer_meta(w, "format", "hcga-checkpoint-1");
    st_writer_meta(w, "config", yaml ? yaml : "");
    free(yaml);
    snprintf(num, sizeof num, "%d", epoch);
    st_writer_meta(w, "epoch", num);
    snprintf(num, sizeof num, "%lld", (long long)adam_step);
    st_writer_meta(w, "adam_step", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)seed);
    st_writer_meta(w, "seed", num);
    snprintf(num, sizeof num, "%d", num_classes);
    st_writer_meta(w, "num_classes", num);
    rc = st_writer_save(w, path, err, err_len);
out:
    free(buf);
    st_writer_free(w);
    return rc;
}

int hcga_is_checkpoint(const st_file *f)
{
    const char *fmt = st_meta(f, "format");
    return fmt && !strcmp(fmt, "hcga-checkpoint-1");
}

hg_exec *hcga_exec_with_weights(const hcga_config *cfg, hg_graph *g, hg_store *s, hcga_be *be,
                                const st_file *wf, const char *path, char *err, size_t err_len)
{
    const int ours = hcga_is_checkpoint(wf);
    /* a state dict is checked against the whole model before binding; a
     * checkpoint is restored into the entries the graph binds */
    if (!ours && hcga_model_load_state(cfg, s, wf, path, 0, err, err_len)) return NULL;
    hg_exec *ex = hg_exec_new(g, s, err, err_len);
    if (ex && ours && hcga_checkpoint_restore(s, be, wf, path, 0, err, err_len)) {
        hg_exec_free(ex);
        return NULL;
    }
    return ex;
}

int hcga_checkpoint_restore(hg_store *s, hcga_be *be, const st_file *f, const char *path, int with_optimizer,
                            char *err, size_t err_len)
{
    for (int i = 0; i < hg_store_count(s); i++) {
        hg_store_entry *e = hg_store_at(s, i);
        int64_t n = entry_numel(e);
        float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!buf) {
            snprintf(err, err_len, "%s: out of memory", path);
            return -1;
        }
        const char *pre[3] = {"", "optimizer.exp_avg.", "optimizer.exp_avg_sq."};
        hcga_tensor *dst[3] = {&e->t, &e->m, &e->v};
        for (int k = 0; k < (with_optimizer ? 3 : 1); k++) {
            char name[300];
            snprintf(name, sizeof name, "%s%s", pre[k], e->name);
            const st_tensor *t = st_find(f, name);
            if (!t) {
                if (k == 0) {
                    snprintf(err, err_len, "%s: tensor '%s' is missing", path, name);
                    free(buf);
                    return -1;
                }
                continue;
            }
            if (t->ndim != e->ndim || (int64_t)t->numel != n || memcmp(t->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
                snprintf(err, err_len, "%s: tensor '%s' has another shape than the model's", path, name);
                free(buf);
                return -1;
            }
            if (st_to_f32(t, buf)) {
                snprintf(err, err_len, "%s: tensor '%s' is not a float tensor", path, name);
                free(buf);
                return -1;
            }
            if (!dst[k]->buf) {
                hcga_buffer *b;
                if (hcga_be_alloc(be, hcga_dtype_size(e->t.dtype) * (uint64_t)n, &b) != HCGA_OK) {
                    snprintf(err, err_len, "%s: allocating '%s': %s", path, name, hcga_be_error(be));
                    free(buf);
                    return -1;
                }
                *dst[k] = hcga_tensor_make(b, 0, e->t.dtype, e->ndim, e->shape);
            }
            hg_store_entry tmp = *e;
            tmp.t = *dst[k];
            if (hg_store_write(s, &tmp, buf, HCGA_F32)) {
                snprintf(err, err_len, "%s: writing '%s' to the backend failed", path, name);
                free(buf);
                return -1;
            }
        }
        free(buf);
    }
    return 0;
}

/* ---- the command ---------------------------------------------------------------- */

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] [--threads N] train [--config F] [--data DIR] [--output DIR]\n"
            "                  [--resume] [--seed S] [--max-steps N] [--dtype f32|f64] [KEY VALUE ...]\n"
            "\n"
            "Train HCGA (HCGA.md sections 3-5) on a Market-1501-layout dataset.\n"
            "  --config F    yacs YAML config (default: built-in defaults; with --resume, the\n"
            "                checkpoint's own config)\n"
            "  --data DIR    dataset root (default: DATASETS.ROOT_DIR)\n"
            "  --output DIR  where checkpoint.safetensors and metrics.jsonl go (default:\n"
            "                OUTPUT_DIR, or ./hcga-out when that is empty)\n"
            "  --resume      continue from DIR/checkpoint.safetensors exactly where it stopped\n"
            "  --seed S      seed of initialisation, sampling and augmentation (default 1)\n"
            "  --max-steps N stop after N optimizer steps in all (checkpoint written, no\n"
            "                evaluation): for comparing backends step by step\n"
            "  --dtype f32|f64  compute dtype of the graph, parameters and Adam state\n"
            "                (default f32; f64 for verification; checkpoints store f32)\n"
            "KEY VALUE pairs override the config, e.g. SOLVER.MAX_EPOCHS 10 SOLVER.IMS_PER_BATCH 16.\n"
            "Batches are SOLVER.IMS_PER_BATCH images: IMS_PER_BATCH / DATALOADER.NUM_INSTANCE\n"
            "identities x NUM_INSTANCE images.  Pseudo part labels are re-made by co-parsing\n"
            "(CLUSTERING.AL dfc | kmeans) at epoch 1 and every CLUSTERING.PERIOD epochs up to\n"
            "CLUSTERING.STOP; CLUSTERING.AL band keeps the horizontal-band labels throughout.\n"
            "The labels are written to DIR/DATASETS.PSEUDO_LABEL_SUBDIR, which the run locks:\n"
            "concurrent trainings on one dataset need different PSEUDO_LABEL_SUBDIRs.\n"
            "Logs: 'Epoch[e] Iteration[i/n] Loss: .. Acc: .. Base Lr: ..', metrics.jsonl.\n");
}

typedef struct train_opts {
    const char *config, *data, *output;
    int resume;
    uint64_t seed;
    long long max_steps; /* 0: no limit */
    int dtype;           /* HCGA_F32 (default) or HCGA_F64 */
    int n_over;
    char **over;
} train_opts;

static int is_tty_stderr(void)
{
    return isatty(fileno(stderr));
}

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

/* Evaluate query vs gallery with ARM and global matching; prints both. */
static int train_eval(hg_exec *ex, hg_graph *g, int batch, const hcga_dataset *ds, const hcga_config *cfg,
                      int threads, int epoch, FILE *metrics, hcga_eval_result *arm, hcga_eval_result *glob,
                      char *err, size_t err_len)
{
    hcga_aug_cfg aug = hcga_aug_from_config(cfg, 0);
    hcga_features q, gal;
    double t0 = hcga_now();
    if (hcga_extract_features(ex, g, batch, &ds->query, &aug, threads, 0, &q, err, err_len)) return -1;
    if (hcga_extract_features(ex, g, batch, &ds->gallery, &aug, threads, 0, &gal, err, err_len)) {
        hcga_features_free(&q);
        return -1;
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

int cmd_train(int argc, char **argv, const hcga_global_opts *gopt)
{
    train_opts o = {0};
    o.seed = 1;
    o.dtype = HCGA_F32;
    o.over = calloc((size_t)argc + 1, sizeof *o.over);
    if (!o.over) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hcga_cli_is_help(a)) {
            train_usage(stdout);
            free(o.over);
            return 0;
        }
        const char **dst = !strcmp(a, "--config") ? &o.config
                           : !strcmp(a, "--data") ? &o.data
                           : !strcmp(a, "--output") ? &o.output
                           : NULL;
        if (dst || !strcmp(a, "--seed") || !strcmp(a, "--max-steps")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga train: %s needs a value\n", a);
                free(o.over);
                return 2;
            }
            if (dst) {
                *dst = argv[++i];
            } else if (!strcmp(a, "--max-steps")) {
                long long s;
                if (hcga_parse_int(argv[++i], 1, (long long)(~0ull >> 1), &s)) {
                    fprintf(stderr, "hcga train: --max-steps: expected a positive integer, got '%s'\n", argv[i]);
                    free(o.over);
                    return 2;
                }
                o.max_steps = s;
            } else {
                long long s;
                if (hcga_parse_int(argv[++i], 0, (long long)(~0ull >> 1), &s)) {
                    fprintf(stderr, "hcga train: --seed: expected a non-negative integer, got '%s'\n", argv[i]);
                    free(o.over);
                    return 2;
                }
                o.seed = (uint64_t)s;
            }
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--dtype")) {
            if (i + 1 >= argc || (strcmp(argv[i + 1], "f32") && strcmp(argv[i + 1], "f64"))) {
                fprintf(stderr, "hcga train: --dtype needs f32 or f64\n");
                free(o.over);
                return 2;
            }
            o.dtype = strcmp(argv[++i], "f64") ? HCGA_F32 : HCGA_F64;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga train: unknown option '%s' (see hcga train --help)\n", a);
            free(o.over);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga train: override '%s' has no value (KEY VALUE pairs)\n", a);
                free(o.over);
                return 2;
            }
            o.over[o.n_over++] = argv[i];
            o.over[o.n_over++] = argv[++i];
        }
    }

    char err[ERRLEN];
    int rc = 1;
    hcga_config *cfg = NULL;
    hcga_dataset ds = {0};
    hcga_be *be = NULL;
    hg_store *store = NULL;
    hg_graph *gt = NULL, *ge = NULL;
    hg_exec *ext = NULL, *exe = NULL;
    st_file *ck = NULL;
    FILE *metrics = NULL;
    int label_lock = -1;
    hcga_pseudo pseudo = {0};
    int *order = NULL;
    float *hostbuf = NULL;
    char outdir[4096], ckpath[4200], mpath[4200], cpath[4200];

    /* output directory and the checkpoint to resume from */
    if (o.output) snprintf(outdir, sizeof outdir, "%s", o.output);
    else outdir[0] = '\0';
    int start_epoch = 1;
    int64_t adam_step = 0;
    if (o.resume) {
        if (!outdir[0]) {
            fprintf(stderr, "hcga train: --resume needs --output DIR (the run to continue)\n");
            free(o.over);
            return 2;
        }
        snprintf(ckpath, sizeof ckpath, "%s/checkpoint.safetensors", outdir);
        ck = st_load(ckpath, err, sizeof err);
        if (!ck) {
            fprintf(stderr, "hcga train: --resume: %s\n", err);
            goto out;
        }
        const char *ep = st_meta(ck, "epoch"), *as = st_meta(ck, "adam_step"), *sd = st_meta(ck, "seed");
        const char *cy = st_meta(ck, "config");
        long long v;
        if (!ep || !as || !sd || !cy || hcga_parse_int(ep, 0, 1000000, &v)) {
            fprintf(stderr, "hcga train: %s: not an hcga training checkpoint (metadata epoch/adam_step/seed/config missing)\n",
                    ckpath);
            goto out;
        }
        start_epoch = (int)v + 1;
        if (hcga_parse_int(as, 0, (long long)(~0ull >> 1), &v)) goto out;
        adam_step = v;
        if (hcga_parse_int(sd, 0, (long long)(~0ull >> 1), &v)) goto out;
        o.seed = (uint64_t)v;
        if (!o.config) cfg = hcga_config_load_string(cy, strlen(cy), ckpath, o.n_over, o.over, err, sizeof err);
    }
    if (!cfg) cfg = hcga_config_load(o.config, o.n_over, o.over, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "hcga train: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!outdir[0]) {
        const char *od = hcga_cfg_str(cfg, "OUTPUT_DIR");
        snprintf(outdir, sizeof outdir, "%s", od[0] ? od : "hcga-out");
    }
    if (hcga_mkdirs(outdir, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.safetensors", outdir);
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", outdir);
    snprintf(cpath, sizeof cpath, "%s/curves.png", outdir);

    const char *root = o.data ? o.data : hcga_cfg_str(cfg, "DATASETS.ROOT_DIR");
    if (hcga_dataset_open(root, &ds, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    const int batch = (int)hcga_cfg_int(cfg, "SOLVER.IMS_PER_BATCH");
    const int K = (int)hcga_cfg_int(cfg, "DATALOADER.NUM_INSTANCE");
    if (K < 1 || batch < K || batch % K) {
        fprintf(stderr, "hcga train: SOLVER.IMS_PER_BATCH (%d) must be a multiple of DATALOADER.NUM_INSTANCE (%d)\n",
                batch, K);
        rc = 2;
        goto out;
    }
    const int P = batch / K;
    const int num_classes = ds.num_train_ids;
    if (num_classes < P) {
        fprintf(stderr, "hcga train: %s has %d training identities, fewer than the %d a batch needs\n", root,
                num_classes, P);
        goto out;
    }
    const int max_epochs = (int)hcga_cfg_int(cfg, "SOLVER.MAX_EPOCHS");
    const int test_batch = (int)hcga_cfg_int(cfg, "TEST.IMS_PER_BATCH");
    int threads = gopt->threads > 0 ? gopt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;

    if ((rc = hcga_cli_open_backend(gopt, &be)) != 0) goto out;
    rc = 1;
    store = hg_store_new(be, o.dtype);
    gt = hcga_model_build(cfg, HCGA_MODEL_TRAIN, batch, num_classes, o.dtype, err, sizeof err);
    if (!gt) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    ge = hcga_model_build(cfg, HCGA_MODEL_EVAL, test_batch, num_classes, o.dtype, err, sizeof err);
    if (!ge) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    ext = hg_exec_new(gt, store, err, sizeof err);
    if (!ext) {
        fprintf(stderr, "hcga train: train graph: %s\n", err);
        goto out;
    }
    exe = hg_exec_new(ge, store, err, sizeof err);
    if (!exe) {
        fprintf(stderr, "hcga train: eval graph: %s\n", err);
        goto out;
    }
    if (ck) {
        if (hcga_checkpoint_restore(store, be, ck, ckpath, 1, err, sizeof err)) {
            fprintf(stderr, "hcga train: %s\n", err);
            goto out;
        }
    } else if (hcga_model_init(gt, store, o.seed, err, sizeof err)) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    metrics = fopen(mpath, o.resume ? "a" : "w");
    if (!metrics) {
        fprintf(stderr, "hcga train: %s: %s\n", mpath, strerror(errno));
        goto out;
    }
    hcga_aug_cfg aug = hcga_aug_from_config(cfg, 1);
    const int nparts = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (hcga_pseudo_init(&pseudo, ds.train.count, aug.label_h, aug.label_w, nparts)) {
        fprintf(stderr, "hcga train: out of memory for pseudo labels\n");
        goto out;
    }
    const char *al = hcga_cfg_str(cfg, "CLUSTERING.AL");
    const int use_coparse = strcmp(al, "band") != 0;
    if (use_coparse && (label_lock = hcga_pseudo_lock(cfg, &ds, err, sizeof err)) < 0) {
        fprintf(stderr, "hcga train: %s\n", err);
        goto out;
    }
    if (start_epoch == 1 && nparts <= 64) {
        double iou[64], miou;
        if (hcga_pseudo_miou(&pseudo, &ds, iou, &miou, err, sizeof err) == 0) {
            printf("horizontal-band pseudo labels: mIoU(parts) %.3f against the ground-truth part masks\n", miou);
            fprintf(metrics, "{\"epoch\": 0, \"band_miou\": %.6f}\n", miou);
        }
    }
    if (ck && use_coparse && start_epoch > 1) {
        if (hcga_pseudo_load(&pseudo, cfg, &ds, err, sizeof err)) {
            fprintf(stderr, "hcga train: --resume: %s\n", err);
            goto out;
        }
    }
    printf("hcga train: %s backend, %d training images of %d identities, batch %d = %d x %d, epochs %d..%d, "
           "train graph peak %.1f MiB (+%.1f MiB persistent), output %s\n",
           be->name, ds.train.count, num_classes, batch, P, K, start_epoch, max_epochs,
           hg_exec_peak_bytes(ext) / 1048576.0, hg_exec_persistent_bytes(ext) / 1048576.0, outdir);
    fflush(stdout);

    const double base_lr = hcga_cfg_float(cfg, "SOLVER.BASE_LR");
    const double bias_factor = hcga_cfg_float(cfg, "SOLVER.BIAS_LR_FACTOR");
    const int log_period = (int)hcga_cfg_int(cfg, "SOLVER.LOG_PERIOD");
    const int ck_period = (int)hcga_cfg_int(cfg, "SOLVER.CHECKPOINT_PERIOD");
    const int eval_period = (int)hcga_cfg_int(cfg, "SOLVER.EVAL_PERIOD");
    const int64_t ncls_out = val_numel(gt, "train.cls_score_global");
    hostbuf = malloc(sizeof(float) * (size_t)(ncls_out > 0 ? ncls_out : 1));
    if (!hostbuf) goto out;
    hcga_eval_result arm = {0}, glob = {0};
    int evaluated = 0, stop = 0;

    for (int epoch = start_epoch; epoch <= max_epochs; epoch++) {
        double lr = base_lr * hcga_lr_factor(cfg, epoch);
        if (use_coparse && hcga_coparse_due(cfg, epoch)) {
            double t0 = hcga_now();
            if (hcga_coparse_round(cfg, be, store, &ds, epoch, threads, o.seed, &pseudo, stdout, err, sizeof err)) {
                fprintf(stderr, "hcga train: co-parsing at epoch %d: %s\n", epoch, err);
                goto out;
            }
            fprintf(metrics, "{\"epoch\": %d, \"coparse_round\": %d, \"seconds\": %.2f, \"miou\": %.6f}\n", epoch,
                    pseudo.rounds, hcga_now() - t0, pseudo.miou);
        }
        free(order);
        int count;
        if (hcga_pk_sample(&ds.train, num_classes, P, K, o.seed, epoch, &order, &count) || count == 0) {
            fprintf(stderr, "hcga train: the PK sampler produced no batch (%d identities, P %d, K %d)\n",
                    num_classes, P, K);
            goto out;
        }
        hcga_loader *ld = hcga_loader_new(&ds.train, order, count, batch, 1, &aug, nparts, hcga_pseudo_label_fn,
                                          &pseudo, o.seed, epoch, threads);
        if (!ld) {
            fprintf(stderr, "hcga train: cannot start the data loader\n");
            goto out;
        }
        const int niter = count / batch;
        double t0 = hcga_now(), loss_sum = 0, acc_sum = 0;
        int it = 0;
        const hcga_batch *b;
        while ((b = hcga_loader_next(ld))) {
            it++;
            if (hg_exec_set_input(ext, "input.images", b->images, HCGA_F32) ||
                hg_exec_set_input(ext, "input.pids", b->labels, HCGA_I64) ||
                hg_exec_set_input(ext, "input.parsing", b->parsing, HCGA_I64) || hg_exec_run(ext)) {
                fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, hg_exec_error(ext));
                hcga_loader_free(ld);
                goto out;
            }
            float loss;
            if (read_val(ext, gt, "loss.total", &loss, HCGA_F32, err, sizeof err) ||
                read_val(ext, gt, "train.cls_score_global", hostbuf, HCGA_F32, err, sizeof err)) {
                fprintf(stderr, "hcga train: %s\n", err);
                hcga_loader_free(ld);
                goto out;
            }
            if (!isfinite(loss)) {
                fprintf(stderr, "hcga train: loss is %s at epoch %d iteration %d; stopping without applying "
                                "this step (the last checkpoint %s is intact)\n",
                        isnan(loss) ? "NaN" : "Inf", epoch, it, ckpath);
                hcga_loader_free(ld);
                goto out;
            }
            int correct = 0;
            for (int i = 0; i < b->n; i++) {
                int best = 0;
                for (int c = 1; c < num_classes; c++)
                    if (hostbuf[(size_t)i * num_classes + c] > hostbuf[(size_t)i * num_classes + best]) best = c;
                correct += best == b->labels[i];
            }
            double acc = (double)correct / b->n;
            hg_optim_cfg oc = {lr, hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY"), lr * bias_factor,
                               hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY_BIAS"), 0.9, 0.999, 1e-8, 0.0, ++adam_step};
            if (hg_adam_step(ext, &oc)) {
                fprintf(stderr, "hcga train: epoch %d iteration %d: %s\n", epoch, it, hg_exec_error(ext));
                hcga_loader_free(ld);
                goto out;
            }
            loss_sum += loss;
            acc_sum += acc;
            fprintf(metrics, "{\"epoch\": %d, \"step\": %lld, \"loss\": %.9g, \"acc\": %.6f}\n", epoch,
                    (long long)adam_step, loss, acc);
            if (o.max_steps > 0 && adam_step >= o.max_steps) {
                stop = 1;
                break;
            }
            if (log_period > 0 && it % log_period == 0) {
                if (is_tty_stderr()) fprintf(stderr, "\r\033[K");
                printf("Epoch[%d] Iteration[%d/%d] Loss: %.3f, Acc: %.3f, Base Lr: %.2e\n", epoch, it, niter,
                       loss_sum / it, acc_sum / it, lr);
                fflush(stdout);
            }
            if (is_tty_stderr()) {
                int w = 30, done = niter ? it * w / niter : w;
                fprintf(stderr, "\r[%.*s%*s] %d/%d loss %.3f", done, "##############################", w - done, "",
                        it, niter, loss_sum / it);
                fflush(stderr);
            }
        }
        if (is_tty_stderr()) fprintf(stderr, "\r\033[K");
        if (hcga_loader_error(ld)) {
            fprintf(stderr, "hcga train: %s\n", hcga_loader_error(ld));
            hcga_loader_free(ld);
            goto out;
        }
        double secs = hcga_now() - t0, waited = hcga_loader_wait_seconds(ld);
        hcga_loader_free(ld);
        printf("Epoch %d done. Loss: %.3f, Acc: %.3f, Base Lr: %.2e, time %.1f s, %.2f samples/s (data wait %.1f s)\n",
               epoch, loss_sum / it, acc_sum / it, lr, secs, it * batch / secs, waited);
        fflush(stdout);
        fprintf(metrics,
                "{\"epoch\": %d, \"iterations\": %d, \"loss\": %.6f, \"acc\": %.6f, \"lr\": %.6e, \"seconds\": %.3f, "
                "\"samples_per_s\": %.3f, \"data_wait_s\": %.3f}\n",
                epoch, it, loss_sum / it, acc_sum / it, lr, secs, it * batch / secs, waited);
        fflush(metrics);
        if ((ck_period > 0 && epoch % ck_period == 0) || epoch == max_epochs || stop) {
            if (hcga_checkpoint_save(store, cfg, epoch, adam_step, o.seed, num_classes, ckpath, err, sizeof err)) {
                fprintf(stderr, "hcga train: %s\n", err);
                goto out;
            }
            printf("checkpoint: %s (epoch %d)\n", ckpath, epoch);
        }
        if (stop) {
            printf("stopped after %lld optimizer steps (--max-steps)\n", (long long)adam_step);
            break;
        }
        if ((eval_period > 0 && epoch % eval_period == 0) || epoch == max_epochs) {
            if (train_eval(exe, ge, test_batch, &ds, cfg, threads, epoch, metrics, &arm, &glob, err, sizeof err)) {
                fprintf(stderr, "hcga train: evaluation at epoch %d: %s\n", epoch, err);
                goto out;
            }
            evaluated = 1;
        }
        if (hcga_vis_curves(cpath, mpath, 0, 0, err, sizeof err)) fprintf(stderr, "hcga train: curves: %s\n", err);
    }
    if (evaluated)
        printf("final: ARM Rank-1 %.1f%% mAP %.1f%% | global Rank-1 %.1f%% mAP %.1f%%\n", 100 * arm.cmc[0],
               100 * arm.map, 100 * glob.cmc[0], 100 * glob.map);
    rc = 0;
out:
    free(hostbuf);
    free(order);
    hcga_pseudo_free(&pseudo);
    if (label_lock >= 0) close(label_lock);
    if (metrics) fclose(metrics);
    hg_exec_free(ext);
    hg_exec_free(exe);
    if (gt) hcga_model_free(gt);
    if (ge) hcga_model_free(ge);
    hg_store_free(store);
    if (be) hcga_be_close(be);
    hcga_dataset_free(&ds);
    if (ck) st_free(ck);
    hcga_config_free(cfg);
    free(o.over);
    return rc;
}
