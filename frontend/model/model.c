/*
 * model.c - the HCGA network as an hg_graph: HRNet backbone (any
 * MODEL.EXTRA.STAGE2..4), incre heads, cls_head, spatial attention, part
 * head, part-guided pooling, BNNeck, classifiers and the training losses.
 * Parameter names follow the reference's state dict (../shared/HCGA.md §2, §7).
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/model.h"
#include "model/model_io.h"

#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1
#define MAX_BRANCHES 8

/* ---- registry: graph -> parameter list --------------------------------- */

typedef struct reg_entry {
    const hg_graph *g;
    hcga_model_param *p;
    int n;
} reg_entry;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg;
static int reg_n, reg_cap;

static void reg_forget_locked(const hg_graph *g)
{
    for (int i = 0; i < reg_n; i++) {
        if (reg[i].g == g) {
            free(reg[i].p);
            reg[i] = reg[--reg_n];
            return;
        }
    }
}

static int reg_put(const hg_graph *g, hcga_model_param *p, int n)
{
    pthread_mutex_lock(&reg_lock);
    reg_forget_locked(g); /* a freed graph's address may be reused */
    if (reg_n == reg_cap) {
        int cap = reg_cap ? 2 * reg_cap : 8;
        reg_entry *r = realloc(reg, (size_t)cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&reg_lock);
            return -1;
        }
        reg = r;
        reg_cap = cap;
    }
    reg[reg_n].g = g;
    reg[reg_n].p = p;
    reg[reg_n].n = n;
    reg_n++;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

const hcga_model_param *hcga_model_graph_params(const hg_graph *g, int *n)
{
    const hcga_model_param *p = NULL;
    *n = 0;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < reg_n; i++) {
        if (reg[i].g == g) {
            p = reg[i].p;
            *n = reg[i].n;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return p;
}

void hcga_model_graph_free(hg_graph *g)
{
    if (!g) return;
    pthread_mutex_lock(&reg_lock);
    reg_forget_locked(g);
    if (reg_n == 0) {
        free(reg);
        reg = NULL;
        reg_cap = 0;
    }
    pthread_mutex_unlock(&reg_lock);
    hg_graph_free(g);
}

/* ---- builder state ------------------------------------------------------ */

typedef struct mb {
    hg_graph *g;
    int train; /* BN in batch mode */
    hcga_model_param *p;
    int np, cap;
    int oom;
} mb;

static hg_val param(mb *b, const char *name, int ndim, const int64_t *shape, unsigned flags)
{
    if (b->np == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        hcga_model_param *q = realloc(b->p, (size_t)cap * sizeof *q);
        if (!q) {
            b->oom = 1;
            return hg_param(b->g, name, ndim, shape, flags);
        }
        b->p = q;
        b->cap = cap;
    }
    hcga_model_param *e = &b->p[b->np++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->flags = flags;
    return hg_param(b->g, name, ndim, shape, flags);
}

static int64_t dim(mb *b, hg_val v, int i) { return hg_shape(b->g, v)[i]; }

/* conv with weight PREFIX.weight [cout, cin, k, k] and optional PREFIX.bias */
static hg_val conv(mb *b, hg_val x, const char *prefix, int64_t cout, int k, int stride, int pad,
                   int with_bias)
{
    char name[160];
    int64_t ws[4] = {cout, dim(b, x, 1), k, k};
    snprintf(name, sizeof name, "%s.weight", prefix);
    hg_val w = param(b, name, 4, ws, HG_TRAINABLE);
    hg_val bias = -1;
    if (with_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        bias = param(b, name, 1, &cout, HG_TRAINABLE | HG_BIAS);
    }
    return hg_conv2d(b->g, x, w, bias, stride, pad);
}

static hg_val bn_flags(mb *b, hg_val x, const char *prefix, unsigned bias_flags)
{
    char name[160];
    int64_t c = dim(b, x, 1);
    snprintf(name, sizeof name, "%s.weight", prefix);
    hg_val gamma = param(b, name, 1, &c, HG_TRAINABLE);
    snprintf(name, sizeof name, "%s.bias", prefix);
    hg_val beta = param(b, name, 1, &c, bias_flags);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    hg_val rm = param(b, name, 1, &c, HG_BUFFER);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    hg_val rv = param(b, name, 1, &c, HG_BUFFER);
    return hg_batchnorm(b->g, x, gamma, beta, rm, rv, b->train, BN_EPS, BN_MOMENTUM);
}

static hg_val bn(mb *b, hg_val x, const char *prefix)
{
    return bn_flags(b, x, prefix, HG_TRAINABLE | HG_BIAS);
}

static const char *fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
    return buf;
}

/* Shortcut of a residual block: identity, or 1x1 conv (stride) + BN named
 * PREFIX.downsample.0 / .1 when the width or the resolution changes. */
static hg_val shortcut(mb *b, hg_val x, const char *prefix, int64_t cout, int stride)
{
    char n[160];
    if (stride == 1 && dim(b, x, 1) == cout) return x;
    hg_val r = conv(b, x, fmt(n, sizeof n, "%s.downsample.0", prefix), cout, 1, stride, 0, 0);
    return bn(b, r, fmt(n, sizeof n, "%s.downsample.1", prefix));
}

static hg_val basic_block(mb *b, hg_val x, const char *prefix, int64_t planes, int stride)
{
    char n[160];
    hg_val o = conv(b, x, fmt(n, sizeof n, "%s.conv1", prefix), planes, 3, stride, 1, 0);
    o = hg_relu(b->g, bn(b, o, fmt(n, sizeof n, "%s.bn1", prefix)));
    o = conv(b, o, fmt(n, sizeof n, "%s.conv2", prefix), planes, 3, 1, 1, 0);
    o = bn(b, o, fmt(n, sizeof n, "%s.bn2", prefix));
    hg_val r = shortcut(b, x, prefix, planes, stride);
    return hg_relu(b->g, hg_add(b->g, o, r));
}

static hg_val bottleneck(mb *b, hg_val x, const char *prefix, int64_t planes, int stride)
{
    char n[160];
    hg_val o = conv(b, x, fmt(n, sizeof n, "%s.conv1", prefix), planes, 1, 1, 0, 0);
    o = hg_relu(b->g, bn(b, o, fmt(n, sizeof n, "%s.bn1", prefix)));
    o = conv(b, o, fmt(n, sizeof n, "%s.conv2", prefix), planes, 3, stride, 1, 0);
    o = hg_relu(b->g, bn(b, o, fmt(n, sizeof n, "%s.bn2", prefix)));
    o = conv(b, o, fmt(n, sizeof n, "%s.conv3", prefix), planes * 4, 1, 1, 0, 0);
    o = bn(b, o, fmt(n, sizeof n, "%s.bn3", prefix));
    hg_val r = shortcut(b, x, prefix, planes * 4, stride);
    return hg_relu(b->g, hg_add(b->g, o, r));
}

/* ---- HRNet stage configuration ----------------------------------------- */

typedef struct stage_cfg {
    int modules, branches;
    int blocks[MAX_BRANCHES];
    int64_t channels[MAX_BRANCHES]; /* NUM_CHANNELS * block expansion */
    int bottleneck;                 /* BLOCK: BOTTLENECK (else BASIC) */
} stage_cfg;

static int read_stage(const hcga_config *cfg, int s, stage_cfg *st, char *err, size_t err_len)
{
    char key[96];
    const char *pre = "MODEL.EXTRA.STAGE";
    memset(st, 0, sizeof *st);
    snprintf(key, sizeof key, "%s%d.NUM_MODULES", pre, s);
    st->modules = (int)hcga_cfg_int(cfg, key);
    snprintf(key, sizeof key, "%s%d.NUM_BRANCHES", pre, s);
    st->branches = (int)hcga_cfg_int(cfg, key);
    snprintf(key, sizeof key, "%s%d.BLOCK", pre, s);
    const char *block = hcga_cfg_str(cfg, key);
    if (!strcmp(block, "BASIC")) {
        st->bottleneck = 0;
    } else if (!strcmp(block, "BOTTLENECK")) {
        st->bottleneck = 1;
    } else {
        snprintf(err, err_len, "%s: '%s' is not BASIC or BOTTLENECK", key, block);
        return -1;
    }
    if (st->modules < 1) {
        snprintf(err, err_len, "%s%d.NUM_MODULES: %d, must be >= 1", pre, s, st->modules);
        return -1;
    }
    if (st->branches < 1 || st->branches > MAX_BRANCHES) {
        snprintf(err, err_len, "%s%d.NUM_BRANCHES: %d, must be 1..%d", pre, s, st->branches,
                 MAX_BRANCHES);
        return -1;
    }
    const char *lists[2] = {"NUM_BLOCKS", "NUM_CHANNELS"};
    for (int l = 0; l < 2; l++) {
        snprintf(key, sizeof key, "%s%d.%s", pre, s, lists[l]);
        int len = hcga_cfg_list_len(cfg, key);
        if (len != st->branches) {
            snprintf(err, err_len, "%s: %d entries but NUM_BRANCHES is %d", key, len,
                     st->branches);
            return -1;
        }
        for (int i = 0; i < len; i++) {
            long long v = hcga_cfg_list_int(cfg, key, i);
            if (v < 1 || v > 65536) {
                snprintf(err, err_len, "%s[%d]: %lld, must be 1..65536", key, i, v);
                return -1;
            }
            if (l == 0)
                st->blocks[i] = (int)v;
            else
                st->channels[i] = v * (st->bottleneck ? 4 : 1);
        }
    }
    return 0;
}

/* transitionT: existing branch i whose width changes: conv3x3 s1 + BN + ReLU
 * (names transitionT.i.0/.1); new branch i >= npre: (i+1-npre) conv3x3 s2 +
 * BN + ReLU from the last old branch (names transitionT.i.j.0/.1). */
static void transition(mb *b, int t, const hg_val *x, const int64_t *pre, int npre,
                       const int64_t *cur, int ncur, hg_val *out)
{
    char n[160];
    for (int i = 0; i < ncur; i++) {
        if (i < npre) {
            if (cur[i] != pre[i]) {
                hg_val y = conv(b, x[i], fmt(n, sizeof n, "base.transition%d.%d.0", t, i), cur[i],
                                3, 1, 1, 0);
                y = bn(b, y, fmt(n, sizeof n, "base.transition%d.%d.1", t, i));
                out[i] = hg_relu(b->g, y);
            } else {
                out[i] = x[i];
            }
        } else {
            hg_val y = x[npre - 1];
            for (int j = 0; j < i + 1 - npre; j++) {
                int64_t oc = (j == i - npre) ? cur[i] : pre[npre - 1];
                y = conv(b, y, fmt(n, sizeof n, "base.transition%d.%d.%d.0", t, i, j), oc, 3, 2, 1,
                         0);
                y = bn(b, y, fmt(n, sizeof n, "base.transition%d.%d.%d.1", t, i, j));
                y = hg_relu(b->g, y);
            }
            out[i] = y;
        }
    }
}

/* fuse_layers.i.j of module PREFIX applied to branch j's output x */
static hg_val fuse(mb *b, const char *prefix, int i, int j, hg_val x, const int64_t *inch)
{
    char n[192];
    if (j > i) {
        hg_val y = conv(b, x, fmt(n, sizeof n, "%s.fuse_layers.%d.%d.0", prefix, i, j), inch[i], 1,
                        1, 0, 0);
        y = bn(b, y, fmt(n, sizeof n, "%s.fuse_layers.%d.%d.1", prefix, i, j));
        return hg_upsample_nearest(b->g, y, 1 << (j - i));
    }
    hg_val y = x;
    for (int k = 0; k < i - j; k++) {
        int last = (k == i - j - 1);
        y = conv(b, y, fmt(n, sizeof n, "%s.fuse_layers.%d.%d.%d.0", prefix, i, j, k),
                 last ? inch[i] : inch[j], 3, 2, 1, 0);
        y = bn(b, y, fmt(n, sizeof n, "%s.fuse_layers.%d.%d.%d.1", prefix, i, j, k));
        if (!last) y = hg_relu(b->g, y);
    }
    return y;
}

/* One stage: NUM_MODULES high-resolution modules.  inch: the branch widths
 * entering the stage, updated to the widths leaving it. */
static void stage(mb *b, int s, const stage_cfg *st, hg_val *x, int64_t *inch)
{
    char prefix[96], n[192];
    for (int m = 0; m < st->modules; m++) {
        snprintf(prefix, sizeof prefix, "base.stage%d.%d", s, m);
        for (int i = 0; i < st->branches; i++) {
            int64_t planes = st->channels[i] / (st->bottleneck ? 4 : 1);
            for (int k = 0; k < st->blocks[i]; k++) {
                fmt(n, sizeof n, "%s.branches.%d.%d", prefix, i, k);
                x[i] = st->bottleneck ? bottleneck(b, x[i], n, planes, 1)
                                      : basic_block(b, x[i], n, planes, 1);
            }
            inch[i] = st->channels[i];
        }
        if (st->branches == 1) continue;
        hg_val y[MAX_BRANCHES];
        for (int i = 0; i < st->branches; i++) {
            hg_val acc = (i == 0) ? x[0] : fuse(b, prefix, i, 0, x[0], inch);
            for (int j = 1; j < st->branches; j++)
                acc = hg_add(b->g, acc, (i == j) ? x[j] : fuse(b, prefix, i, j, x[j], inch));
            y[i] = hg_relu(b->g, acc);
        }
        for (int i = 0; i < st->branches; i++) x[i] = y[i];
    }
}

void hcga_model_input_size(const hcga_config *cfg, int mode, int64_t *h, int64_t *w)
{
    const char *key = (mode == HCGA_MODEL_TRAIN) ? "INPUT.SIZE_TRAIN" : "INPUT.SIZE_TEST";
    *h = hcga_cfg_list_int(cfg, key, 0) / 4;
    *w = hcga_cfg_list_int(cfg, key, 1) / 4;
}

static int check_config(const hcga_config *cfg, int mode, int batch, int num_classes, int dtype,
                        char *err, size_t err_len)
{
    const char *name = hcga_cfg_str(cfg, "MODEL.NAME");
    if (strcmp(name, "HRNet32") && strcmp(name, "HRNet48")) {
        snprintf(err, err_len,
                 "MODEL.NAME: '%s' is not supported (hcga builds the HRNet backbone: HRNet32 or "
                 "HRNet48; the widths come from MODEL.EXTRA)",
                 name);
        return -1;
    }
    if (strcmp(hcga_cfg_str(cfg, "MODEL.NECK"), "bnneck")) {
        snprintf(err, err_len, "MODEL.NECK: '%s' is not supported (only bnneck)",
                 hcga_cfg_str(cfg, "MODEL.NECK"));
        return -1;
    }
    if (mode != HCGA_MODEL_TRAIN && mode != HCGA_MODEL_EVAL && mode != HCGA_MODEL_FEATURES) {
        snprintf(err, err_len, "model mode %d is not eval, train or features", mode);
        return -1;
    }
    if (mode == HCGA_MODEL_EVAL && strcmp(hcga_cfg_str(cfg, "TEST.NECK_FEAT"), "after")) {
        snprintf(err, err_len, "TEST.NECK_FEAT: '%s' is not supported (the reference only has 'after')",
                 hcga_cfg_str(cfg, "TEST.NECK_FEAT"));
        return -1;
    }
    if (mode == HCGA_MODEL_EVAL && !strcmp(hcga_cfg_str(cfg, "MODEL.SEG_F"), "part_t")) {
        snprintf(err, err_len,
                 "MODEL.SEG_F: 'part_t' (hard 0.5 part masks at test time) is not supported; use "
                 "softmax");
        return -1;
    }
    if (mode == HCGA_MODEL_TRAIN && hcga_cfg_bool(cfg, "MODEL.IF_WITH_CENTER")) {
        snprintf(err, err_len, "MODEL.IF_WITH_CENTER: the center loss is not supported (off in the "
                               "paper's runs)");
        return -1;
    }
    if (dtype != HCGA_F32 && dtype != HCGA_F64) {
        snprintf(err, err_len, "model dtype %s: must be f32 or f64", hcga_dtype_name(dtype));
        return -1;
    }
    if (batch < 1) {
        snprintf(err, err_len, "batch size %d: must be >= 1", batch);
        return -1;
    }
    if (mode == HCGA_MODEL_TRAIN && num_classes < 1) {
        snprintf(err, err_len, "number of classes %d: must be >= 1", num_classes);
        return -1;
    }
    int k = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (k < 2 || k > 64) {
        snprintf(err, err_len, "CLUSTERING.PART_NUM: %d, must be 2..64 (background + parts)", k);
        return -1;
    }
    if (mode == HCGA_MODEL_TRAIN && !(hcga_cfg_float(cfg, "MODEL.T") > 0)) {
        snprintf(err, err_len, "MODEL.T: %g, must be > 0", hcga_cfg_float(cfg, "MODEL.T"));
        return -1;
    }
    const char *key = (mode == HCGA_MODEL_TRAIN) ? "INPUT.SIZE_TRAIN" : "INPUT.SIZE_TEST";
    if (hcga_cfg_list_len(cfg, key) != 2) {
        snprintf(err, err_len, "%s: needs 2 entries [height, width]", key);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        long long v = hcga_cfg_list_int(cfg, key, i);
        /* 4 branches at 1/4 .. 1/32 of the input, exact 2x steps between them */
        if (v < 32 || v % 32 != 0 || v > 65536) {
            snprintf(err, err_len, "%s: %lld is not a positive multiple of 32 (HRNet's branches "
                                   "halve the resolution 5 times)",
                     key, v);
            return -1;
        }
    }
    return 0;
}

int hcga_amp_from_config(const hcga_config *cfg, hcga_amp_cfg *amp, char *err, size_t err_len)
{
    memset(amp, 0, sizeof *amp);
    amp->dtype = -1;
    const char *dt = hcga_cfg_str(cfg, "SOLVER.AMP.DTYPE");
    int half;
    if (!strcmp(dt, "bf16")) half = HCGA_BF16;
    else if (!strcmp(dt, "fp16")) half = HCGA_F16;
    else {
        snprintf(err, err_len, "SOLVER.AMP.DTYPE: '%s' is not supported (bf16 or fp16)", dt);
        return -1;
    }
    amp->init_scale = hcga_cfg_float(cfg, "SOLVER.AMP.INIT_SCALE");
    amp->growth_interval = hcga_cfg_int(cfg, "SOLVER.AMP.GROWTH_INTERVAL");
    amp->growth_factor = hcga_cfg_float(cfg, "SOLVER.AMP.GROWTH_FACTOR");
    amp->backoff_factor = hcga_cfg_float(cfg, "SOLVER.AMP.BACKOFF_FACTOR");
    if (!(amp->init_scale > 0) || !isfinite(amp->init_scale)) {
        snprintf(err, err_len, "SOLVER.AMP.INIT_SCALE: %g, must be a positive number", amp->init_scale);
        return -1;
    }
    if (amp->growth_interval < 1) {
        snprintf(err, err_len, "SOLVER.AMP.GROWTH_INTERVAL: %lld, must be >= 1", amp->growth_interval);
        return -1;
    }
    if (!(amp->growth_factor >= 1) || !isfinite(amp->growth_factor)) {
        snprintf(err, err_len, "SOLVER.AMP.GROWTH_FACTOR: %g, must be >= 1", amp->growth_factor);
        return -1;
    }
    if (!(amp->backoff_factor > 0 && amp->backoff_factor < 1)) {
        snprintf(err, err_len, "SOLVER.AMP.BACKOFF_FACTOR: %g, must be in (0, 1)", amp->backoff_factor);
        return -1;
    }
    amp->enabled = hcga_cfg_bool(cfg, "SOLVER.AMP.ENABLED");
    if (amp->enabled) amp->dtype = half;
    return 0;
}

const char *hcga_amp_precision(const hcga_amp_cfg *amp, int dtype)
{
    if (amp->enabled) return amp->dtype == HCGA_F16 ? "fp16" : "bf16";
    return dtype == HCGA_F64 ? "fp64" : "fp32";
}

int hcga_model_set_loss_scale(hg_exec *ex, hg_graph *g, double scale, char *err, size_t err_len)
{
    const char *names[2] = {HCGA_AMP_SCALE_INPUT, HCGA_AMP_UNSCALE_INPUT};
    const double vals[2] = {scale, 1.0 / scale};
    for (int i = 0; i < 2; i++) {
        if (hg_find(g, names[i]) < 0) continue;
        if (hg_exec_set_input(ex, names[i], &vals[i], HCGA_F64)) {
            snprintf(err, err_len, "%s", hg_exec_error(ex));
            return -1;
        }
    }
    return 0;
}

static hg_graph *build(const hcga_config *cfg, int mode, int batch, int num_classes, int dtype,
                       int backward, int ranks, int rank_parts, char *err, size_t err_len)
{
    if (check_config(cfg, mode, batch, num_classes, dtype, err, err_len)) return NULL;
    hcga_amp_cfg amp;
    if (hcga_amp_from_config(cfg, &amp, err, err_len)) return NULL;
    stage_cfg st[3];
    for (int s = 0; s < 3; s++)
        if (read_stage(cfg, s + 2, &st[s], err, err_len)) return NULL;
    if (st[2].branches != 4) {
        snprintf(err, err_len,
                 "MODEL.EXTRA.STAGE4.NUM_BRANCHES: %d, the HCGA head needs 4 branches (incre heads "
                 "to 128/256/512/1024 channels)",
                 st[2].branches);
        return NULL;
    }
    if (st[1].branches < st[0].branches || st[2].branches < st[1].branches) {
        snprintf(err, err_len, "MODEL.EXTRA.STAGE2..4.NUM_BRANCHES: %d, %d, %d must not decrease",
                 st[0].branches, st[1].branches, st[2].branches);
        return NULL;
    }
    const int K = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    const int big_g = hcga_cfg_bool(cfg, "MODEL.IF_BIGG");
    const char *size_key = (mode == HCGA_MODEL_TRAIN) ? "INPUT.SIZE_TRAIN" : "INPUT.SIZE_TEST";
    const int64_t H = hcga_cfg_list_int(cfg, size_key, 0);
    const int64_t W = hcga_cfg_list_int(cfg, size_key, 1);
    const int64_t N = batch;

    mb b = {0};
    b.g = hg_graph_new(dtype);
    if (!b.g) {
        snprintf(err, err_len, "out of memory creating the model graph");
        return NULL;
    }
    b.train = (mode == HCGA_MODEL_TRAIN);
    hg_graph *g = b.g;
    /* mixed precision: hg_conv2d / hg_linear insert the casts (graph.h) */
    if (amp.enabled) hg_graph_set_autocast(g, amp.dtype);
    /* data-parallel: batch norm over every rank's part when MODEL.SYNC_BN */
    if (b.train && ranks > 0 && hcga_cfg_bool(cfg, "MODEL.SYNC_BN")) hg_graph_set_sync_bn(g, ranks);
    /* or one process standing for `parts` ranks (hcga train --as-ranks) */
    if (b.train && rank_parts > 1) {
        if (batch % rank_parts) {
            snprintf(err, err_len, "a batch of %d does not divide into %d ranks' parts", batch, rank_parts);
            hg_graph_free(g);
            return NULL;
        }
        hg_graph_set_parts(g, rank_parts);
    }
    char n[160];

    /* stem */
    hg_val x = hg_input(g, "input.images", dtype, 4, (int64_t[]){N, 3, H, W});
    x = hg_relu(g, bn(&b, conv(&b, x, "base.conv1", 64, 3, 2, 1, 0), "base.bn1"));
    x = hg_relu(g, bn(&b, conv(&b, x, "base.conv2", 64, 3, 2, 1, 0), "base.bn2"));
    /* layer1: 4 Bottlenecks, planes 64 */
    for (int i = 0; i < 4; i++) x = bottleneck(&b, x, fmt(n, sizeof n, "base.layer1.%d", i), 64, 1);

    /* stages 2..4 with their transitions */
    hg_val xs[MAX_BRANCHES] = {x};
    int64_t inch[MAX_BRANCHES] = {256};
    int nb = 1;
    for (int s = 0; s < 3; s++) {
        hg_val t[MAX_BRANCHES];
        transition(&b, s + 1, xs, inch, nb, st[s].channels, st[s].branches, t);
        for (int i = 0; i < st[s].branches; i++) {
            xs[i] = t[i];
            inch[i] = st[s].channels[i];
        }
        nb = st[s].branches;
        stage(&b, s + 2, &st[s], xs, inch);
    }

    /* incre heads: one Bottleneck per branch to 128/256/512/1024 channels */
    for (int i = 0; i < 4; i++)
        xs[i] = bottleneck(&b, xs[i], fmt(n, sizeof n, "base.incre_modules.%d.0", i), 32 << i, 1);
    const int64_t fh = dim(&b, xs[0], 2), fw = dim(&b, xs[0], 3);

    /* cls_head: conv1x1 (bias) + BN + ReLU on concat(x0, resize(x1), resize(x2),
     * resize(x3)), 1920 channels at branch 0's size.  A 1x1 convolution is a
     * per-pixel linear map and the align_corners bilinear resize is a per-channel
     * combination with weights summing to 1, so the two commute: the graph
     * applies each branch's slice of the weight (split along its input
     * channels) at the branch's own resolution, resizes the 256-channel results
     * and sums them, adding the bias once.  Same function and parameters
     * (base.cls_head.0.weight stays 256 x 1920), about 8x fewer multiply-adds
     * than convolving the upsampled concatenation. */
    int64_t cw_shape[4] = {256, 0, 1, 1}, cin[4];
    for (int i = 0; i < 4; i++) cw_shape[1] += cin[i] = dim(&b, xs[i], 1);
    hg_val cw = param(&b, "base.cls_head.0.weight", 4, cw_shape, HG_TRAINABLE);
    hg_val cb = param(&b, "base.cls_head.0.bias", 1, (int64_t[]){256}, HG_TRAINABLE | HG_BIAS);
    hg_val wpart[4];
    hg_split(g, cw, 4, cin, wpart);
    /* MODEL.IF_BIGG: y_global pools the 1920-channel concatenation itself */
    hg_val cat = -1;
    if (big_g) {
        hg_val up[4] = {xs[0]};
        for (int i = 1; i < 4; i++) up[i] = hg_resize_bilinear(g, xs[i], fh, fw, 1);
        cat = hg_concat(g, 4, up);
    }
    hg_val f = hg_conv2d(g, xs[0], wpart[0], cb, 1, 0);
    for (int i = 1; i < 4; i++)
        f = hg_add(g, f, hg_resize_bilinear(g, hg_conv2d(g, xs[i], wpart[i], -1, 1, 0), fh, fw, 1));
    f = hg_relu(g, bn(&b, f, "base.cls_head.1"));
    /* spatial attention */
    hg_val a = conv(&b, f, "base.spatial_attn.conv1.conv", 1, 3, 2, 1, 1);
    a = hg_relu(g, bn(&b, a, "base.spatial_attn.conv1.bn"));
    a = hg_resize_bilinear(g, a, 2 * dim(&b, a, 2), 2 * dim(&b, a, 3), 1);
    a = conv(&b, a, "base.spatial_attn.conv2.conv", 1, 1, 1, 0, 1);
    a = hg_sigmoid(g, bn(&b, a, "base.spatial_attn.conv2.bn"));
    f = hg_mul(g, f, a); /* the feature map F */

    /* part head */
    hg_val logits = conv(&b, f, "base.part_cls_layer", K, 1, 1, 0, 1);
    hg_val prob = hg_softmax(g, logits);
    if (mode == HCGA_MODEL_FEATURES) {
        /* co-parsing's input: F, and the part head's probabilities that
         * CLUSTERING.AL guided names the clusters with */
        hg_mark_output(g, f, "eval.feature_map");
        hg_mark_output(g, prob, "eval.part_prob");
        goto done;
    }

    hg_val pk[64];
    int64_t ones[64];
    for (int k = 0; k < K; k++) ones[k] = 1;
    hg_split(g, prob, K, ones, pk);
    hg_val fore = pk[1];
    for (int k = 2; k < K; k++) fore = hg_add(g, fore, pk[k]);
    hg_val y_fore = hg_gap(g, hg_mul(g, f, fore));
    hg_val parts[64];
    double t = b.train ? 1.0 / hcga_cfg_float(cfg, "MODEL.T") : 0.0;
    for (int k = 1; k < K; k++) {
        hg_val m = b.train ? hg_threshold(g, pk[k], t) : pk[k];
        parts[k - 1] = hg_gap(g, hg_mul(g, f, m));
    }
    hg_val y_part = (K == 2) ? parts[0] : hg_concat(g, K - 1, parts);
    hg_val y_global = big_g ? hg_gap(g, cat) : hg_gap(g, f);

    /* BNNeck: BatchNorm1d with a frozen bias */
    const unsigned neck_bias = HG_TRAINABLE | HG_FROZEN | HG_BIAS;
    hg_val feat_part = bn_flags(&b, y_part, "bottleneck_part", neck_bias);
    hg_val feat_global = bn_flags(&b, y_global, "bottleneck_global", neck_bias);
    hg_val feat_fore = bn_flags(&b, y_fore, "bottleneck_fore", neck_bias);

    if (mode == HCGA_MODEL_EVAL) {
        hg_mark_output(g, feat_fore, "eval.feat_fore");
        hg_val fp = hg_reshape(g, feat_part, 3, (int64_t[]){N, K - 1, 256});
        hg_mark_output(g, fp, "eval.feat_part");
        hg_mark_output(g, feat_global, "eval.feat_global");
        hg_mark_output(g, f, "eval.feature_map");
        hg_mark_output(g, hg_argmax(g, prob), "eval.part_argmax");
        goto done;
    }

    /* train: classifiers and losses */
    int64_t ncls = num_classes;
    hg_val wcp = param(&b, "classifier_part.weight", 2, (int64_t[]){ncls, dim(&b, feat_part, 1)},
                       HG_TRAINABLE);
    hg_val wcg = param(&b, "classifier_global.weight", 2,
                       (int64_t[]){ncls, dim(&b, feat_global, 1)}, HG_TRAINABLE);
    hg_val wcf = param(&b, "classifier_fore.weight", 2, (int64_t[]){ncls, dim(&b, feat_fore, 1)},
                       HG_TRAINABLE);
    hg_val cls_part = hg_linear(g, feat_part, wcp);
    hg_val cls_global = hg_linear(g, feat_global, wcg);
    hg_val cls_fore = hg_linear(g, feat_fore, wcf);
    hg_mark_output(g, cls_part, "train.cls_score_part");
    hg_mark_output(g, cls_global, "train.cls_score_global");
    hg_mark_output(g, cls_fore, "train.cls_score_fore");
    hg_mark_output(g, y_part, "train.y_part");
    hg_mark_output(g, y_global, "train.y_global");
    hg_mark_output(g, y_fore, "train.y_fore");
    hg_mark_output(g, logits, "train.part_pd_score");

    hg_val pids = hg_input(g, "input.pids", HCGA_I64, 1, &N);
    hg_val parsing = hg_input(g, "input.parsing", HCGA_I64, 3, (int64_t[]){N, fh, fw});
    /* an 'on'/'off' string in the reference's configs; hcga_cfg_bool reads both */
    double eps = hcga_cfg_bool(cfg, "MODEL.IF_LABELSMOOTH") ? 0.1 : 0.0;
    double margin = hcga_cfg_float(cfg, "SOLVER.MARGIN");
    hg_val xg = hg_ce_ls(g, cls_global, pids, eps);
    hg_val xf = hg_ce_ls(g, cls_fore, pids, eps);
    hg_val xp = hg_ce_ls(g, cls_part, pids, eps);
    hg_val lp = hg_pixel_ce(g, logits, parsing, hcga_cfg_int(cfg, "TRAIN.IGNORE_LABEL"));
    hg_val tg = hg_triplet(g, y_global, pids, margin);
    hg_mark_output(g, xg, "loss.xent_global");
    hg_mark_output(g, xf, "loss.xent_fore");
    hg_mark_output(g, xp, "loss.xent_part");
    hg_mark_output(g, lp, "loss.parsing");
    hg_mark_output(g, tg, "loss.triplet_global");
    /* loss = wG xg + wF xf + wP xp + wPars parsing + wTG triplet(y_global)
     *        (+ wTF triplet(y_fore)), summed left to right as the reference */
    hg_val tot = hg_axpby(g, hcga_cfg_float(cfg, "SOLVER.CrossE_G_WEIGHT"), xg,
                          hcga_cfg_float(cfg, "SOLVER.CrossE_F_WEIGHT"), xf);
    tot = hg_axpby(g, 1.0, tot, hcga_cfg_float(cfg, "SOLVER.CrossE_P_WEIGHT"), xp);
    tot = hg_axpby(g, 1.0, tot, hcga_cfg_float(cfg, "SOLVER.PARSING_LOSS_WEIGHT"), lp);
    tot = hg_axpby(g, 1.0, tot, hcga_cfg_float(cfg, "SOLVER.Tri_G_WEIGHT"), tg);
    double wtf = hcga_cfg_float(cfg, "SOLVER.Tri_F_WEIGHT");
    if (wtf != 0.0) {
        hg_val tf = hg_triplet(g, y_fore, pids, margin);
        hg_mark_output(g, tf, "loss.triplet_fore");
        tot = hg_axpby(g, 1.0, tot, wtf, tf);
    }
    hg_mark_output(g, tot, "loss.total");
    int brc = 0;
    if (backward && amp.enabled && amp.dtype == HCGA_F16) {
        /* FP16 dynamic loss scaling: seed S, parameter gradients times 1/S */
        int64_t one = 1;
        hg_val ls = hg_input(g, HCGA_AMP_SCALE_INPUT, dtype, 1, &one);
        hg_val inv = hg_input(g, HCGA_AMP_UNSCALE_INPUT, dtype, 1, &one);
        brc = hg_backward_scaled(g, tot, ls, inv);
        if (!brc) hg_mark_output(g, hg_grad_check(g), HCGA_AMP_CHECK_OUTPUT);
    } else if (backward) {
        brc = hg_backward(g, tot);
    }
    if (brc) {
        snprintf(err, err_len, "could not differentiate the training graph");
        hg_graph_free(g);
        free(b.p);
        return NULL;
    }

done:
    if (b.oom || reg_put(g, b.p, b.np)) {
        snprintf(err, err_len, "out of memory building the model graph");
        hg_graph_free(g);
        free(b.p);
        return NULL;
    }
    return g;
}

hg_graph *hcga_model_build(const hcga_config *cfg, int mode, int batch, int num_classes,
                           int dtype, char *err, size_t err_len)
{
    if (!cfg) {
        snprintf(err, err_len, "no configuration given to the model builder");
        return NULL;
    }
    return build(cfg, mode, batch, num_classes, dtype, 1, 0, 1, err, err_len);
}

hg_graph *hcga_model_build_ranks(const hcga_config *cfg, int mode, int batch, int num_classes, int dtype,
                                 int ranks, int parts, char *err, size_t err_len)
{
    if (!cfg) {
        snprintf(err, err_len, "no configuration given to the model builder");
        return NULL;
    }
    return build(cfg, mode, batch, num_classes, dtype, 1, ranks, parts, err, err_len);
}

hcga_model_param *hcga_model_param_list(const hcga_config *cfg, int num_classes, int *n,
                                        char *err, size_t err_len)
{
    *n = 0;
    hg_graph *g = build(cfg, HCGA_MODEL_TRAIN, 2, num_classes, HCGA_F32, 0, 0, 1, err, err_len);
    if (!g) return NULL;
    int np = 0;
    const hcga_model_param *p = hcga_model_graph_params(g, &np);
    hcga_model_param *copy = malloc((size_t)(np > 0 ? np : 1) * sizeof *copy);
    if (!copy) {
        snprintf(err, err_len, "out of memory listing the model's parameters");
    } else {
        memcpy(copy, p, (size_t)np * sizeof *copy);
        *n = np;
    }
    hcga_model_graph_free(g);
    return copy;
}

/* ---- initialisation ----------------------------------------------------- */

typedef struct rng {
    uint64_t s;
    int have;
    double spare;
} rng;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1] with 53 random bits */
static double unif(rng *r) { return ((double)(splitmix64(&r->s) >> 11) + 1.0) * 0x1.0p-53; }

/* standard normal by Box-Muller */
static double gauss(rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = unif(r), u2 = unif(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->have = 1;
    return rad * cos(th);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int hcga_model_init(hg_graph *g, hg_store *s, uint64_t seed, char *err, size_t err_len)
{
    int np = 0;
    const hcga_model_param *p = hcga_model_graph_params(g, &np);
    if (!p) {
        snprintf(err, err_len, "hcga_model_init: the graph was not built by hcga_model_build");
        return -1;
    }
    int dtype = HCGA_F64;
    for (int i = 0; i < np; i++) {
        const hcga_model_param *e = &p[i];
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        double *v = malloc((size_t)(numel > 0 ? numel : 1) * sizeof *v);
        if (!v) {
            snprintf(err, err_len, "out of memory initialising %s", e->name);
            return -1;
        }
        /* one independent stream per parameter: the values do not depend on
         * the order or number of other parameters */
        rng r = {seed ^ fnv1a(e->name), 0, 0.0};
        if (e->ndim == 4) { /* conv weight: Kaiming normal, fan_in, gain sqrt(2) */
            double std = sqrt(2.0 / (double)(e->shape[1] * e->shape[2] * e->shape[3]));
            for (int64_t j = 0; j < numel; j++) v[j] = std * gauss(&r);
        } else if (e->ndim == 2) { /* classifier: normal, std 0.001 */
            for (int64_t j = 0; j < numel; j++) v[j] = 0.001 * gauss(&r);
        } else {
            /* BN weight and running_var 1; biases and running_mean 0 */
            double c = (ends_with(e->name, ".running_var") ||
                        (ends_with(e->name, ".weight") && !(e->flags & HG_BIAS)))
                           ? 1.0
                           : 0.0;
            for (int64_t j = 0; j < numel; j++) v[j] = c;
        }
        hg_store_entry *se = hg_store_add(s, e->name, e->ndim, e->shape, e->flags, err, err_len);
        if (!se || hg_store_write(s, se, v, dtype)) {
            if (se) snprintf(err, err_len, "could not write %s to the backend", e->name);
            free(v);
            return -1;
        }
        free(v);
    }
    return 0;
}
