/*
 * cmd_shapes.c - `hcga shapes`: every distinct op call of the model's
 * graphs (forward and backward, plus the Adam updates) in the conformance
 * suite's shape-file format, for conformance/shapes/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "graph/graph.h"
#include "model/model.h"
#include "model/model_io.h"
#include "shapefile.h"
#include "util/util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga shapes --config FILE --batch N [--mode train|eval|both] [--out FILE]\n"
            "                   [--dtype f32|f64] [--classes C] [KEY VALUE ...]\n"
            "\n"
            "Build the model's graphs for the config at batch N (train: forward, backward\n"
            "and one Adam update per parameter shape; eval: forward) and print every\n"
            "distinct op call, one per line, in the conformance shape-file format (see\n"
            "conformance/shapefile.h), in first-use order.  Defaults: --mode both,\n"
            "--dtype f32, --classes 702, output to stdout.\n");
}

/* a set of strings in first-insertion order */
typedef struct strset {
    char **items;
    int n, cap;
    int *slots; /* open addressing, index into items or -1 */
    int nslots;
} strset;

static uint64_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* 1 inserted, 0 already there, -1 out of memory */
static int strset_add(strset *t, const char *s)
{
    if (2 * (t->n + 1) > t->nslots) {
        int ns = t->nslots ? 2 * t->nslots : 1024;
        int *sl = malloc((size_t)ns * sizeof *sl);
        if (!sl) return -1;
        for (int i = 0; i < ns; i++) sl[i] = -1;
        for (int i = 0; i < t->n; i++) {
            uint64_t h = hash(t->items[i]) % (uint64_t)ns;
            while (sl[h] >= 0) h = (h + 1) % (uint64_t)ns;
            sl[h] = i;
        }
        free(t->slots);
        t->slots = sl;
        t->nslots = ns;
    }
    uint64_t h = hash(s) % (uint64_t)t->nslots;
    while (t->slots[h] >= 0) {
        if (!strcmp(t->items[t->slots[h]], s)) return 0;
        h = (h + 1) % (uint64_t)t->nslots;
    }
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        char **it = realloc(t->items, (size_t)cap * sizeof *it);
        if (!it) return -1;
        t->items = it;
        t->cap = cap;
    }
    char *c = strdup(s);
    if (!c) return -1;
    t->items[t->n] = c;
    t->slots[h] = t->n++;
    return 1;
}

static void strset_free(strset *t)
{
    for (int i = 0; i < t->n; i++) free(t->items[i]);
    free(t->items);
    free(t->slots);
}

static int add_call(strset *set, const hcga_op_args *a)
{
    int len = hcga_shapefile_format(NULL, 0, a);
    if (len < 0) return -1;
    char *line = malloc((size_t)len + 1);
    if (!line) return -1;
    hcga_shapefile_format(line, (size_t)len + 1, a);
    int rc = strset_add(set, line);
    free(line);
    return rc < 0 ? -1 : 0;
}

static int collect(const hcga_config *cfg, int mode, int batch, int classes, int dtype,
                   strset *set, char *err, size_t err_len)
{
    hg_graph *g = hcga_model_build(cfg, mode, batch, classes, dtype, err, err_len);
    if (!g) return -1;
    int rc = 0;
    for (int i = 0; i < hg_num_nodes(g) && !rc; i++) {
        hcga_op_args a;
        memset(&a, 0, sizeof a);
        hg_node_args(g, i, &a);
        rc = add_call(set, &a);
    }
    if (!rc && mode == HCGA_MODEL_TRAIN) {
        /* the optimizer's calls: one ADAM_STEP per trainable parameter */
        int np = 0;
        const hcga_model_param *p = hcga_model_graph_params(g, &np);
        for (int i = 0; i < np && !rc; i++) {
            if (!(p[i].flags & HG_TRAINABLE) || (p[i].flags & HG_FROZEN)) continue;
            hcga_tensor t = hcga_tensor_make(NULL, 0, dtype, p[i].ndim, p[i].shape);
            hcga_op_args a = {.op = HCGA_OP_ADAM_STEP, .num_in = 1, .num_out = 3, .in = {&t}, .out = {&t, &t, &t}};
            int bias = (p[i].flags & HG_BIAS) != 0;
            a.p.optim.lr = hcga_cfg_float(cfg, "SOLVER.BASE_LR") *
                           (bias ? hcga_cfg_float(cfg, "SOLVER.BIAS_LR_FACTOR") : 1.0);
            a.p.optim.beta1 = 0.9;
            a.p.optim.beta2 = 0.999;
            a.p.optim.eps = 1e-8;
            a.p.optim.weight_decay =
                hcga_cfg_float(cfg, bias ? "SOLVER.WEIGHT_DECAY_BIAS" : "SOLVER.WEIGHT_DECAY");
            a.p.optim.step = 1;
            rc = add_call(set, &a);
        }
    }
    if (rc) snprintf(err, err_len, "out of memory collecting op calls");
    hcga_model_graph_free(g);
    return rc;
}

int cmd_shapes(int argc, char **argv, const hcga_global_opts *gopt)
{
    (void)gopt;
    if (argc > 1 && hcga_cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    const char *config = NULL, *out = NULL;
    long long batch = 0, classes = 702;
    int do_train = 1, do_eval = 1, dtype = HCGA_F32, n_over = 0;
    char **over = calloc((size_t)argc + 1, sizeof *over);
    if (!over) return 1;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") || !strcmp(a, "--out") || !strcmp(a, "--mode") ||
            !strcmp(a, "--dtype") || !strcmp(a, "--batch") || !strcmp(a, "--classes")) {
            if (!val) {
                fprintf(stderr, "hcga shapes: %s needs a value\n", a);
                goto usage_err;
            }
            i++;
            if (!strcmp(a, "--config")) config = val;
            else if (!strcmp(a, "--out")) out = val;
            else if (!strcmp(a, "--mode")) {
                do_train = !strcmp(val, "train") || !strcmp(val, "both");
                do_eval = !strcmp(val, "eval") || !strcmp(val, "both");
                if (!do_train && !do_eval) {
                    fprintf(stderr, "hcga shapes: --mode '%s': expected train, eval or both\n", val);
                    goto usage_err;
                }
            } else if (!strcmp(a, "--dtype")) {
                if (!strcmp(val, "f32")) dtype = HCGA_F32;
                else if (!strcmp(val, "f64")) dtype = HCGA_F64;
                else {
                    fprintf(stderr, "hcga shapes: --dtype '%s': expected f32 or f64\n", val);
                    goto usage_err;
                }
            } else {
                long long *num = !strcmp(a, "--batch") ? &batch : &classes;
                if (hcga_parse_int(val, 1, 1 << 20, num)) {
                    fprintf(stderr, "hcga shapes: %s '%s': expected a positive integer\n", a, val);
                    goto usage_err;
                }
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga shapes: unknown option %s (see hcga shapes --help)\n", a);
            goto usage_err;
        } else {
            if (!val) {
                fprintf(stderr, "hcga shapes: config override %s has no value (KEY VALUE)\n", a);
                goto usage_err;
            }
            over[n_over++] = argv[i];
            over[n_over++] = argv[++i];
        }
    }
    if (!config || !batch) {
        fprintf(stderr, "hcga shapes: --config and --batch are required (see hcga shapes --help)\n");
        goto usage_err;
    }

    char err[2048];
    rc = 1;
    strset set = {0};
    hcga_config *cfg = hcga_config_load(config, n_over, over, err, sizeof err);
    if (!cfg) goto fail;
    if (do_train &&
        collect(cfg, HCGA_MODEL_TRAIN, (int)batch, (int)classes, dtype, &set, err, sizeof err))
        goto fail;
    if (do_eval &&
        collect(cfg, HCGA_MODEL_EVAL, (int)batch, (int)classes, dtype, &set, err, sizeof err))
        goto fail;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        snprintf(err, sizeof err, "%s: cannot open for writing", out);
        goto fail;
    }
    const char *base = strrchr(config, '/');
    fprintf(f, "# hcga shapes --config %s --batch %lld --mode %s --dtype %s --classes %lld\n",
            base ? base + 1 : config, batch, do_train && do_eval ? "both" : do_train ? "train" : "eval",
            hcga_dtype_name(dtype), classes);
    fprintf(f, "# %d distinct op calls of the HCGA model (forward%s)\n", set.n,
            do_train ? ", backward and Adam" : "");
    for (int i = 0; i < set.n; i++) fprintf(f, "%s\n", set.items[i]);
    if (out && fclose(f) != 0) {
        snprintf(err, sizeof err, "%s: write failed", out);
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "hcga shapes: %s\n", err);
done:
    strset_free(&set);
    if (cfg) hcga_config_free(cfg);
    free(over);
    return rc;
usage_err:
    free(over);
    return 2;
}
