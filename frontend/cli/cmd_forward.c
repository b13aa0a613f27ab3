/*
 * cmd_forward.c - `hcga forward`: run the model on stored inputs and write
 * every output (and optionally gradients and one Adam step) to safetensors,
 * with the golden file's names so `hcga compare` can check a backend
 * against the reference PyTorch code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "graph/graph.h"
#include "model/model.h"
#include "model/model_io.h"
#include "model/safetensors.h"
#include "util/util.h"

#define ERRLEN 2048

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend NAME] forward --config FILE --weights W.safetensors\n"
            "            --input I.safetensors --output O.safetensors [--mode eval|train|both]\n"
            "            [--grads] [--adam-step LR] [--dtype f32|f64] [KEY VALUE ...]\n"
            "\n"
            "Run the HCGA model on the inputs of I (input.images [N,3,H,W]; for train mode\n"
            "also input.pids [N] and input.parsing [N,H/4,W/4]) with the state dict W (the\n"
            "reference's names) and write O:\n"
            "  eval:  eval.feat_fore, eval.feat_part, eval.visible_part, eval.feature_map,\n"
            "         eval.feat_global (BN'ed features, ARM mode)\n"
            "  train: train.cls_score_part/global/fore, train.y_part/global/fore,\n"
            "         train.part_pd_score and loss.xent_global/xent_fore/xent_part/parsing/\n"
            "         triplet_global/total (BN in batch mode)\n"
            "  --grads         also grad.<param> = d loss.total / d param for every\n"
            "                  trainable parameter\n"
            "  --adam-step LR  also after_step.<name>: every trainable parameter after one\n"
            "                  Adam step with learning rate LR (biases LR * SOLVER.BIAS_LR_FACTOR,\n"
            "                  weight decay SOLVER.WEIGHT_DECAY / WEIGHT_DECAY_BIAS) and every\n"
            "                  BN running statistic after the train-mode forward\n"
            "--dtype f64 computes in double precision (outputs are written as F32).\n"
            "--mode both (the default) runs eval first, then train on the same weights.\n"
            "KEY VALUE pairs override the config (yacs style, e.g. MODEL.T 4).\n");
}

typedef struct fwd_opts {
    const char *config, *weights, *input, *output;
    int eval, train, grads;
    int dtype; /* compute dtype: HCGA_F32 (default) or HCGA_F64 */
    double adam_lr; /* < 0: no step */
    int n_over;
    char **over;
} fwd_opts;

static int parse_args(int argc, char **argv, fwd_opts *o)
{
    memset(o, 0, sizeof *o);
    o->eval = o->train = 1;
    o->dtype = HCGA_F32;
    o->adam_lr = -1.0;
    o->over = calloc((size_t)argc + 1, sizeof *o->over);
    if (!o->over) {
        fprintf(stderr, "hcga forward: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--config")) dst = &o->config;
        else if (!strcmp(a, "--weights")) dst = &o->weights;
        else if (!strcmp(a, "--input")) dst = &o->input;
        else if (!strcmp(a, "--output")) dst = &o->output;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga forward: %s needs a value\n", a);
                return 2;
            }
            *dst = argv[++i];
        } else if (!strcmp(a, "--mode")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga forward: --mode needs a value (eval, train or both)\n");
                return 2;
            }
            const char *m = argv[++i];
            if (!strcmp(m, "eval")) o->eval = 1, o->train = 0;
            else if (!strcmp(m, "train")) o->eval = 0, o->train = 1;
            else if (!strcmp(m, "both")) o->eval = 1, o->train = 1;
            else {
                fprintf(stderr, "hcga forward: --mode '%s': expected eval, train or both\n", m);
                return 2;
            }
        } else if (!strcmp(a, "--dtype")) {
            const char *d = i + 1 < argc ? argv[++i] : "";
            if (!strcmp(d, "f32")) o->dtype = HCGA_F32;
            else if (!strcmp(d, "f64")) o->dtype = HCGA_F64;
            else {
                fprintf(stderr, "hcga forward: --dtype '%s': expected f32 or f64\n", d);
                return 2;
            }
        } else if (!strcmp(a, "--grads")) {
            o->grads = 1;
        } else if (!strcmp(a, "--adam-step")) {
            if (i + 1 >= argc || hcga_parse_double(argv[i + 1], &o->adam_lr) || o->adam_lr < 0) {
                fprintf(stderr, "hcga forward: --adam-step needs a learning rate >= 0\n");
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga forward: unknown option %s (see hcga forward --help)\n", a);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga forward: config override %s has no value (KEY VALUE)\n", a);
                return 2;
            }
            o->over[o->n_over++] = argv[i];
            o->over[o->n_over++] = argv[i + 1];
            i++;
        }
    }
    const char *missing = !o->config ? "--config" : !o->weights ? "--weights"
                        : !o->input ? "--input" : !o->output ? "--output" : NULL;
    if (missing) {
        fprintf(stderr, "hcga forward: %s is required (see hcga forward --help)\n", missing);
        return 2;
    }
    if ((o->grads || o->adam_lr >= 0) && !o->train) {
        fprintf(stderr, "hcga forward: --grads and --adam-step need --mode train or both\n");
        return 2;
    }
    return 0;
}

/* Copy a stored input tensor to the exec, checking its shape. */
static int set_input(hg_exec *ex, hg_graph *g, const st_file *in, const char *path,
                     const char *name, char *err, size_t err_len)
{
    const st_tensor *t = st_find(in, name);
    if (!t) {
        snprintf(err, err_len, "%s: no tensor %s", path, name);
        return -1;
    }
    hg_val v = hg_find(g, name);
    int same = (v >= 0 && t->ndim == hg_ndim(g, v));
    for (int d = 0; same && d < t->ndim; d++) same = (t->shape[d] == hg_shape(g, v)[d]);
    if (!same) {
        char a[128], b[128];
        hcga_shape_str(a, sizeof a, t->ndim, t->shape);
        if (v >= 0)
            hcga_shape_str(b, sizeof b, hg_ndim(g, v), hg_shape(g, v));
        else
            snprintf(b, sizeof b, "(none)");
        snprintf(err, err_len, "%s: %s has shape %s, the model wants %s (check the batch and "
                               "INPUT.SIZE_* in the config)",
                 path, name, a, b);
        return -1;
    }
    int is_index = (hg_val_dtype(g, v) == HCGA_I64);
    void *buf = malloc((size_t)(t->numel ? t->numel : 1) * (is_index ? 8 : 4));
    if (!buf) {
        snprintf(err, err_len, "out of memory reading %s", name);
        return -1;
    }
    int rc = is_index ? st_to_i64(t, buf) : st_to_f32(t, buf);
    if (rc) {
        snprintf(err, err_len, "%s: %s has a dtype that does not convert to %s", path, name,
                 is_index ? "int64" : "float");
        free(buf);
        return -1;
    }
    if (hg_exec_set_input(ex, name, buf, is_index ? HCGA_I64 : HCGA_F32)) {
        snprintf(err, err_len, "setting %s: %s", name, hg_exec_error(ex));
        free(buf);
        return -1;
    }
    free(buf);
    return 0;
}

static int check_labels(const st_file *in, const char *path, int ncls, int k, char *err,
                        size_t err_len)
{
    const st_tensor *p = st_find(in, "input.pids");
    const st_tensor *s = st_find(in, "input.parsing");
    if (!p || !s) {
        snprintf(err, err_len, "%s: train mode needs input.pids and input.parsing", path);
        return -1;
    }
    int64_t *buf = malloc((size_t)(p->numel + s->numel + 1) * sizeof *buf);
    if (!buf) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int rc = 0;
    if (st_to_i64(p, buf) || st_to_i64(s, buf + p->numel)) {
        snprintf(err, err_len, "%s: input.pids / input.parsing must be integer tensors", path);
        rc = -1;
    }
    for (uint64_t i = 0; !rc && i < p->numel; i++)
        if (buf[i] < 0 || buf[i] >= ncls) {
            snprintf(err, err_len, "%s: input.pids[%llu] = %lld is not a class index 0..%d", path,
                     (unsigned long long)i, (long long)buf[i], ncls - 1);
            rc = -1;
        }
    for (uint64_t i = 0; !rc && i < s->numel; i++) {
        int64_t v = buf[p->numel + i];
        if (v != -1 && (v < 0 || v >= k)) {
            snprintf(err, err_len, "%s: input.parsing has label %lld (valid: 0..%d and -1 = ignore)",
                     path, (long long)v, k - 1);
            rc = -1;
        }
    }
    free(buf);
    return rc;
}

static int run_eval(const hcga_config *cfg, hg_store *s, const st_file *in, const char *inpath,
                    int n, int ncls, int dtype, st_writer *w, char *err, size_t err_len)
{
    int rc = -1;
    hg_exec *ex = NULL;
    int64_t *am = NULL, *vis = NULL;
    hg_graph *g = hcga_model_build(cfg, HCGA_MODEL_EVAL, n, ncls, dtype, err, err_len);
    if (!g) return -1;
    ex = hg_exec_new(g, s, err, err_len);
    if (!ex) goto out;
    if (set_input(ex, g, in, inpath, "input.images", err, err_len)) goto out;
    if (hg_exec_run(ex)) {
        snprintf(err, err_len, "eval forward: %s", hg_exec_error(ex));
        goto out;
    }
    static const char *const outs[] = {"eval.feat_fore", "eval.feat_part", "eval.feat_global",
                                       "eval.feature_map"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        if (hcga_write_value(ex, g, hg_find(g, outs[i]), outs[i], w, err, err_len)) goto out;
    /* visible_part from the argmax of the part probabilities */
    hg_val av = hg_find(g, "eval.part_argmax");
    const int64_t *sh = hg_shape(g, av);
    int k = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    am = malloc((size_t)hcga_val_numel(g, av) * sizeof *am);
    vis = malloc((size_t)n * (size_t)(k - 1) * sizeof *vis);
    if (!am || !vis) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    if (hg_exec_read(ex, av, am, HCGA_I64)) {
        snprintf(err, err_len, "reading eval.part_argmax: %s", hg_exec_error(ex));
        goto out;
    }
    hcga_model_visible_parts(am, sh[0], sh[1], sh[2], k, vis);
    if (st_writer_add(w, "eval.visible_part", ST_I64, 2, (int64_t[]){n, k - 1}, vis)) {
        snprintf(err, err_len, "duplicate output eval.visible_part");
        goto out;
    }
    rc = 0;
out:
    free(am);
    free(vis);
    if (ex) hg_exec_free(ex);
    hcga_model_graph_free(g);
    return rc;
}

static int is_running_stat(const char *name)
{
    size_t n = strlen(name);
    return (n > 13 && !strcmp(name + n - 13, ".running_mean")) ||
           (n > 12 && !strcmp(name + n - 12, ".running_var"));
}

static int run_train(const hcga_config *cfg, hg_store *s, const st_file *in, const char *inpath,
                     const st_file *wf, int n, int ncls, const fwd_opts *o, st_writer *w,
                     char *err, size_t err_len)
{
    int rc = -1;
    hg_exec *ex = NULL;
    float *buf = NULL;
    int k = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (check_labels(in, inpath, ncls, k, err, err_len)) return -1;
    hg_graph *g = hcga_model_build(cfg, HCGA_MODEL_TRAIN, n, ncls, o->dtype, err, err_len);
    if (!g) return -1;
    ex = hg_exec_new(g, s, err, err_len);
    if (!ex) goto out;
    if (set_input(ex, g, in, inpath, "input.images", err, err_len) ||
        set_input(ex, g, in, inpath, "input.pids", err, err_len) ||
        set_input(ex, g, in, inpath, "input.parsing", err, err_len))
        goto out;
    hcga_amp_cfg amp; /* FP16 training graphs scale the loss by SOLVER.AMP.INIT_SCALE */
    if (hcga_amp_from_config(cfg, &amp, err, err_len) ||
        hcga_model_set_loss_scale(ex, g, amp.init_scale, err, err_len))
        goto out;
    if (hg_exec_run(ex)) {
        snprintf(err, err_len, "train step: %s", hg_exec_error(ex));
        goto out;
    }
    static const char *const outs[] = {
        "train.cls_score_part", "train.cls_score_global", "train.cls_score_fore",
        "train.y_part",         "train.y_global",         "train.y_fore",
        "train.part_pd_score",  "loss.xent_global",       "loss.xent_fore",
        "loss.xent_part",       "loss.parsing",           "loss.triplet_global",
        "loss.triplet_fore",    "loss.total"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        hg_val v = hg_find(g, outs[i]);
        if (v < 0) continue; /* loss.triplet_fore only with SOLVER.Tri_F_WEIGHT != 0 */
        if (hcga_write_value(ex, g, v, outs[i], w, err, err_len)) goto out;
    }
    int np = 0;
    const hcga_model_param *p = hcga_model_graph_params(g, &np);
    if (o->grads) {
        for (int i = 0; i < np; i++) {
            if (!(p[i].flags & HG_TRAINABLE) || (p[i].flags & HG_FROZEN)) continue;
            hg_val gv = hg_grad(g, hg_find(g, p[i].name));
            if (gv < 0) {
                snprintf(err, err_len, "trainable parameter %s has no gradient", p[i].name);
                goto out;
            }
            char name[160];
            snprintf(name, sizeof name, "grad.%s", p[i].name);
            if (hcga_write_value(ex, g, gv, name, w, err, err_len)) goto out;
        }
    }
    if (o->adam_lr >= 0) {
        hg_optim_cfg oc = {0};
        oc.lr = o->adam_lr;
        oc.weight_decay = hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY");
        oc.lr_bias = o->adam_lr * hcga_cfg_float(cfg, "SOLVER.BIAS_LR_FACTOR");
        oc.weight_decay_bias = hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY_BIAS");
        oc.beta1 = 0.9;
        oc.beta2 = 0.999;
        oc.eps = 1e-8;
        oc.step = 1;
        if (hg_adam_step(ex, &oc)) {
            snprintf(err, err_len, "Adam step: %s", hg_exec_error(ex));
            goto out;
        }
        for (int i = 0; i < np; i++) {
            int upd = (p[i].flags & HG_TRAINABLE) && !(p[i].flags & HG_FROZEN);
            if (!upd && !(p[i].flags & HG_BUFFER)) continue;
            hg_store_entry *e = hg_store_get(s, p[i].name);
            int64_t numel = 1;
            for (int d = 0; d < p[i].ndim; d++) numel *= p[i].shape[d];
            float *b = realloc(buf, (size_t)numel * sizeof *b);
            if (!e || !b) {
                snprintf(err, err_len, "reading %s after the step failed", p[i].name);
                goto out;
            }
            buf = b;
            if (hg_store_read(s, e, buf, HCGA_F32)) {
                snprintf(err, err_len, "reading %s from the backend failed", p[i].name);
                goto out;
            }
            char name[160];
            snprintf(name, sizeof name, "after_step.%s", p[i].name);
            if (st_writer_add(w, name, ST_F32, p[i].ndim, p[i].shape, buf)) {
                snprintf(err, err_len, "duplicate output %s", name);
                goto out;
            }
        }
        /* The reference's state dict keeps the running statistics of its
         * unused modules (red1, red2, spatial_attn1); a train forward leaves
         * them as they were. */
        for (int i = 0; i < wf->count; i++) {
            const st_tensor *t = &wf->tensors[i];
            if (!hcga_model_ignored_name(t->name) || !is_running_stat(t->name)) continue;
            float *b = realloc(buf, (size_t)(t->numel ? t->numel : 1) * sizeof *b);
            if (!b) {
                snprintf(err, err_len, "out of memory");
                goto out;
            }
            buf = b;
            char name[300];
            snprintf(name, sizeof name, "after_step.%s", t->name);
            if (st_to_f32(t, buf) || st_writer_add(w, name, ST_F32, t->ndim, t->shape, buf)) {
                snprintf(err, err_len, "copying %s failed", t->name);
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(buf);
    if (ex) hg_exec_free(ex);
    hcga_model_graph_free(g);
    return rc;
}

int cmd_forward(int argc, char **argv, const hcga_global_opts *gopt)
{
    if (argc > 1 && hcga_cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    fwd_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        free(o.over);
        return rc;
    }
    char err[ERRLEN] = "";
    hcga_config *cfg = NULL;
    st_file *in = NULL, *wf = NULL;
    hcga_be *be = NULL;
    hg_store *s = NULL;
    st_writer *w = NULL;
    rc = 1;

    cfg = hcga_config_load(o.config, o.n_over, o.over, err, sizeof err);
    if (!cfg) goto fail;
    in = st_load(o.input, err, sizeof err);
    if (!in) goto fail;
    wf = st_load(o.weights, err, sizeof err);
    if (!wf) goto fail;
    const st_tensor *img = st_find(in, "input.images");
    if (!img || img->ndim != 4 || img->shape[1] != 3 || img->shape[0] < 1) {
        snprintf(err, sizeof err, "%s: needs input.images [N,3,H,W]", o.input);
        goto fail;
    }
    int n = (int)img->shape[0];
    int ncls = hcga_model_num_classes(wf, o.weights, err, sizeof err);
    if (ncls < 0) goto fail;

    if (hcga_cli_open_backend(gopt, &be)) {
        rc = 2;
        goto done;
    }
    s = hg_store_new(be, o.dtype);
    w = st_writer_new();
    if (!s || !w) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (hcga_model_load_state(cfg, s, wf, o.weights, 0, err, sizeof err)) goto fail;
    if (o.eval && run_eval(cfg, s, in, o.input, n, ncls, o.dtype, w, err, sizeof err)) goto fail;
    if (o.train && run_train(cfg, s, in, o.input, wf, n, ncls, &o, w, err, sizeof err)) goto fail;
    st_writer_meta(w, "producer", "hcga forward");
    st_writer_meta(w, "backend", be->name);
    st_writer_meta(w, "config", o.config);
    if (st_writer_save(w, o.output, err, sizeof err)) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "hcga forward: %s\n", err);
done:
    if (w) st_writer_free(w);
    if (s) hg_store_free(s);
    if (be) hcga_be_close(be);
    if (wf) st_free(wf);
    if (in) st_free(in);
    if (cfg) hcga_config_free(cfg);
    free(o.over);
    return rc;
}
