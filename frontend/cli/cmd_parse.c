/*
 * cmd_parse.c - `hcga parse`: co-parse chosen training identities with a
 * trained model (HCGA.md section 5) and draw the result: one strip per
 * identity with the part labels over its images (and the ground-truth
 * masks when the dataset has them), optionally one strip per DFC iteration.
 * With --eval it scores instead of drawing: the pseudo labels a training run
 * left in the dataset (no --weights), or a co-parsing of every training
 * identity with the model (--weights), against the ground-truth part masks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "data/image_io.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/model_io.h"
#include "model/safetensors.h"
#include "train/coparse.h"
#include "util/util.h"
#include "vis/vis.h"

#define ERRLEN 4096
#define FEAT_BATCH 16 /* as a co-parsing round in hcga train */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga parse --weights W.safetensors [--config F] [--data DIR] [--ids LIST]\n"
            "                  [--out DIR] [--frames] [--show N] [--seed S] [KEY VALUE ...]\n"
            "       hcga parse --eval [--weights W] [--config F] [--data DIR] [--ids LIST] [KEY VALUE ...]\n"
            "       (global options such as --backend B and --threads N go before 'parse')\n"
            "\n"
            "Co-parse training identities with a model and draw the pseudo part labels, as a\n"
            "co-parsing round of hcga train does (HCGA.md section 5): the feature maps F of\n"
            "every training image of the identity (eval mode, test transform), then\n"
            "CLUSTERING.AL dfc (the per-identity DFC network, on the backend, and its\n"
            "post-processing), kmeans (ISP), kmeans_border or guided (the model's part head\n"
            "and the identity's part prototypes), into CLUSTERING.PART_NUM labels.\n"
            "  --weights W   checkpoint from hcga train (its config is used unless --config is\n"
            "                given) or a state dict with the reference's names\n"
            "  --config F    yacs YAML config (overrides the checkpoint's; without either, the\n"
            "                built-in defaults)\n"
            "  --data DIR    dataset root (default: DATASETS.ROOT_DIR)\n"
            "  --ids LIST    comma-separated training identities as in the file names, e.g.\n"
            "                1,5,12 (default: the first 4 training identities)\n"
            "  --out DIR     where the pictures go (default ./parse-out; created)\n"
            "  --frames      with DFC, also one picture per DFC iteration showing the raw\n"
            "                clusters (before post-processing): idPPPP_iterNN.png\n"
            "  --show N      draw at most the first N images of an identity (default 12; 0: all;\n"
            "                co-parsing always uses all of them)\n"
            "  --seed S      DFC initialisation seed (default 1: identity i is seeded as in\n"
            "                hcga train --seed S's first round)\n"
            "  --eval        score, draw nothing.  Without --weights: the label maps a training run\n"
            "                left in <data>/DATASETS.PSEUDO_LABEL_SUBDIR (its current pseudo labels)\n"
            "                against <data>/parts/bounding_box_train/.  With --weights: co-parse every\n"
            "                training identity (or --ids) as a round of hcga train would, and score\n"
            "                that.  Prints per-part IoU and mIoU(parts) over all pixels, and with\n"
            "                --weights the time per identity.  Without --weights and with --ids,\n"
            "                also one picture per identity (its first --show images, at most 16)\n"
            "                in --out: idPPPP.png\n"
            "KEY VALUE pairs override the config, e.g. CLUSTERING.AL kmeans (ISP), kmeans_border\n"
            "(foreground from feature clusters avoiding the side columns) or guided (for a model\n"
            "whose part head was pretrained; docs/training.md).\n"
            "Output: DIR/idPPPP.png per identity: its images (2x) with the labels blended in\n"
            "(head red, upper body green, lower body blue, background uncoloured), and a\n"
            "second row with the ground-truth masks when <root>/parts/bounding_box_train/\n"
            "<name>.png exist.  Prints each picture's path, the identity's time (features and\n"
            "clustering) and, with ground truth, its per-part IoU and mIoU (mean over parts\n"
            "1..K-1 present in the labels or the masks, at the feature map's resolution).\n");
}

typedef struct parse_opts {
    const char *weights, *config, *data, *ids, *out;
    int frames, show, eval;
    uint64_t seed;
    int n_over;
    char **over;
} parse_opts;

/* What a DFC frame callback needs to draw one iteration. */
typedef struct frame_ctx {
    const char *outdir;
    int pid, n, show, fh, fw;
    const hcga_image *images;
    const char *const *captions;
    uint8_t *lab8;          /* n*fh*fw */
    const uint8_t **labptr; /* n */
    int written, failed;
    double seconds; /* spent drawing */
    char err[ERRLEN];
} frame_ctx;

static void frame_cb(void *vctx, int iter, const int64_t *labels)
{
    frame_ctx *c = vctx;
    if (c->failed) return;
    double t0 = hcga_now();
    const size_t np = (size_t)c->n * c->fh * c->fw;
    unsigned char seen[256] = {0};
    int nl = 0;
    for (size_t p = 0; p < np; p++) {
        int64_t l = labels[p];
        uint8_t v = (uint8_t)(l < 0 ? 0 : l > 255 ? 255 : l);
        c->lab8[p] = v;
        if (!seen[v]) seen[v] = 1, nl++;
    }
    char path[8300], title[64], note[64];
    snprintf(path, sizeof path, "%s/id%04d_iter%02d.png", c->outdir, c->pid, iter);
    snprintf(title, sizeof title, "identity %04d", c->pid);
    snprintf(note, sizeof note, "iteration %d: %d clusters", iter, nl);
    hcga_vis_strip_opts o = {0};
    o.title = title;
    o.method = "DFC";
    o.note = note;
    o.miou = -1;
    o.captions = c->captions;
    o.raw_clusters = 1;
    if (hcga_vis_parsing_strip(path, c->images, c->labptr, c->show, c->fh, c->fw, 256, &o, c->err, sizeof c->err)) {
        c->failed = 1;
        return;
    }
    c->written++;
    c->seconds += hcga_now() - t0;
}

static int parse_args(int argc, char **argv, parse_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->show = 12;
    o->out = "parse-out";
    o->over = calloc((size_t)argc + 1, sizeof *o->over);
    if (!o->over) {
        fprintf(stderr, "hcga parse: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hcga_cli_is_help(a)) {
            usage(stdout);
            return -1;
        }
        const char **dst = !strcmp(a, "--weights") ? &o->weights
                           : !strcmp(a, "--config")  ? &o->config
                           : !strcmp(a, "--data")    ? &o->data
                           : !strcmp(a, "--ids")     ? &o->ids
                           : !strcmp(a, "--out")     ? &o->out
                                                     : NULL;
        int is_num = !strcmp(a, "--show") || !strcmp(a, "--seed");
        if (dst || is_num) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga parse: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (dst) {
                *dst = v;
            } else {
                long long x;
                int show = !strcmp(a, "--show");
                if (hcga_parse_int(v, 0, show ? 100000 : (long long)(~0ull >> 1), &x)) {
                    fprintf(stderr, "hcga parse: %s: expected a non-negative integer, got '%s'\n", a, v);
                    return 2;
                }
                if (show) o->show = (int)x;
                else o->seed = (uint64_t)x;
            }
        } else if (!strcmp(a, "--frames")) {
            o->frames = 1;
        } else if (!strcmp(a, "--eval")) {
            o->eval = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga parse: unknown option '%s' (see hcga parse --help)\n", a);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga parse: override '%s' has no value (KEY VALUE pairs)\n", a);
                return 2;
            }
            o->over[o->n_over++] = argv[i];
            o->over[o->n_over++] = argv[++i];
        }
    }
    if (!o->weights && !o->eval) {
        fprintf(stderr, "hcga parse: --weights W.safetensors is required (see hcga parse --help)\n");
        return 2;
    }
    if (!o->out[0]) {
        fprintf(stderr, "hcga parse: --out: empty directory name\n");
        return 2;
    }
    return 0;
}

/* "1,5,12" -> training labels of those identities.  Returns the count, or -1
 * after printing the problem. */
static int resolve_ids(const char *list, const hcga_dataset *ds, int **labels, int all)
{
    int cap = 8 + (all ? ds->num_train_ids : 0), n = 0;
    int *out = malloc(sizeof(int) * (size_t)cap);
    if (!out) return -1;
    if (!list) {
        for (int l = 0; l < ds->num_train_ids && (all || l < 4); l++) out[n++] = l;
        *labels = out;
        return n;
    }
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char tok[32];
        long long pid;
        if (len == 0 || len >= sizeof tok) {
            fprintf(stderr, "hcga parse: --ids '%s': expected comma-separated identity numbers, e.g. 1,5,12\n", list);
            free(out);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (hcga_parse_int(tok, 0, 1000000000, &pid)) {
            fprintf(stderr, "hcga parse: --ids: '%s' is not an identity number\n", tok);
            free(out);
            return -1;
        }
        int label = -1;
        for (int l = 0; l < ds->num_train_ids; l++)
            if (ds->train_pid_of_label[l] == pid) label = l;
        if (label < 0) {
            fprintf(stderr, "hcga parse: --ids: identity %lld has no training images in %s/bounding_box_train\n", pid,
                    ds->root);
            free(out);
            return -1;
        }
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= out[k] == label;
        if (!dup) {
            if (n == cap) {
                int *no = realloc(out, sizeof(int) * (size_t)(cap *= 2));
                if (!no) {
                    free(out);
                    return -1;
                }
                out = no;
            }
            out[n++] = label;
        }
        p += len + (e ? 1 : 0);
        if (e && !*p) {
            fprintf(stderr, "hcga parse: --ids '%s' ends with a comma\n", list);
            free(out);
            return -1;
        }
    }
    *labels = out;
    return n;
}

/* Per-part IoU of labels (n maps fh x fw) against the masks (nearest-sampled
 * as hcga_pseudo_miou does; values >= K count as K-1); adds to inter/uni. */
static void accumulate_iou(const uint8_t *labels, const hcga_image *gt, int n, int fh, int fw, int K, double *inter,
                           double *uni)
{
    for (int i = 0; i < n; i++) {
        const hcga_image *g = &gt[i];
        const uint8_t *m = labels + (size_t)i * fh * fw;
        for (int y = 0; y < fh; y++)
            for (int x = 0; x < fw; x++) {
                int gy = (int)((y + 0.5) * g->height / fh), gx = (int)((x + 0.5) * g->width / fw);
                int t = g->data[(size_t)gy * g->width + gx], p = m[(size_t)y * fw + x];
                if (t >= K) t = K - 1;
                uni[t] += 1;
                if (t == p) inter[t] += 1;
                else uni[p] += 1;
            }
    }
}

static double miou_of(const double *inter, const double *uni, int K, double *iou)
{
    double s = 0;
    int c = 0;
    for (int k = 0; k < K; k++) {
        iou[k] = uni[k] > 0 ? inter[k] / uni[k] : -1;
        if (k > 0 && uni[k] > 0) s += iou[k], c++;
    }
    return c ? s / c : -1;
}

static void print_ious(const double *iou, int K)
{
    static const char *const names[] = {"background", "head", "upper", "lower"};
    for (int k = 0; k < K; k++) {
        if (K == 4) printf(" %s", names[k]);
        else printf(" %d", k);
        if (iou[k] >= 0) printf(" %.3f", iou[k]);
        else printf(" -");
    }
}

/* --eval without --weights: the label maps of <root>/PSEUDO_LABEL_SUBDIR
 * against the masks, every training image.  Returns the exit status. */
static int eval_stored(const parse_opts *o)
{
    char err[ERRLEN];
    int rc = 1;
    hcga_dataset ds = {0};
    hcga_config *cfg = hcga_config_load(o->config, o->n_over, o->over, err, sizeof err);
    double *inter = NULL, *uni = NULL, *iou = NULL;
    hcga_image *gt = NULL;
    if (!cfg) {
        fprintf(stderr, "hcga parse: %s\n", err);
        return 2;
    }
    const int K = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (K < 2 || K > 64) {
        fprintf(stderr, "hcga parse: CLUSTERING.PART_NUM %d outside 2..64\n", K);
        rc = 2;
        goto out;
    }
    const char *root = o->data ? o->data : hcga_cfg_str(cfg, "DATASETS.ROOT_DIR");
    if (hcga_dataset_open(root, &ds, err, sizeof err)) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    inter = calloc((size_t)K, sizeof(double));
    uni = calloc((size_t)K, sizeof(double));
    iou = calloc((size_t)K, sizeof(double));
    gt = calloc(1, sizeof *gt);
    if (!inter || !uni || !iou || !gt) {
        fprintf(stderr, "hcga parse: out of memory\n");
        goto out;
    }
    const char *sub = hcga_cfg_str(cfg, "DATASETS.PSEUDO_LABEL_SUBDIR");
    int scored = 0;
    if (o->ids && hcga_mkdirs(o->out, err, sizeof err)) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    for (int i = 0; i < ds.train.count; i++) {
        const hcga_item *it = &ds.train.items[i];
        if (o->ids) {
            int pid = ds.train_pid_of_label[it->label], want = 0;
            char tok[32];
            snprintf(tok, sizeof tok, "%d", pid);
            for (const char *p = o->ids; *p && !want;) {
                size_t len = strcspn(p, ",");
                want = len == strlen(tok) && !strncmp(p, tok, len);
                p += len + (p[len] == ',');
            }
            if (!want) continue;
        }
        char lp[8300], gp[8300];
        snprintf(lp, sizeof lp, "%s/%s/%s.png", ds.root, sub, it->name);
        snprintf(gp, sizeof gp, "%s/parts/bounding_box_train/%s.png", ds.root, it->name);
        hcga_image lab;
        if (hcga_png_read(lp, &lab, err, sizeof err)) {
            fprintf(stderr, "hcga parse: --eval: %s (no pseudo labels: train with co-parsing first, or give "
                            "DATASETS.PSEUDO_LABEL_SUBDIR)\n",
                    err);
            goto out;
        }
        if (hcga_png_read(gp, gt, err, sizeof err)) {
            fprintf(stderr, "hcga parse: --eval: %s (the dataset needs ground-truth part masks)\n", err);
            hcga_image_free(&lab);
            goto out;
        }
        int okk = lab.channels == 1 && gt->channels == 1;
        for (size_t k = 0; okk && k < (size_t)lab.width * lab.height; k++) okk = lab.data[k] < K;
        if (!okk) {
            fprintf(stderr, "hcga parse: --eval: %s: expected gray labels 0..%d (and a gray mask %s)\n", lp, K - 1,
                    gp);
            hcga_image_free(&lab);
            hcga_image_free(gt);
            goto out;
        }
        accumulate_iou(lab.data, gt, 1, lab.height, lab.width, K, inter, uni);
        hcga_image_free(&lab);
        hcga_image_free(gt);
        scored++;
    }
    if (!scored) {
        fprintf(stderr, "hcga parse: --eval: no training images of --ids %s in %s\n", o->ids ? o->ids : "", root);
        goto out;
    }
    /* with --ids: one picture per identity, its stored labels over the first
     * --show images and the masks below */
    for (int l = 0; o->ids && l < ds.num_train_ids; l++) {
        enum { MAXS = 16 };
        hcga_image im[MAXS], lb[MAXS], gm[MAXS];
        const uint8_t *lp[MAXS];
        const char *cap[MAXS];
        int n = 0, bad = 0, want = 0;
        char tok[32];
        snprintf(tok, sizeof tok, "%d", ds.train_pid_of_label[l]);
        for (const char *q = o->ids; *q && !want;) {
            size_t len = strcspn(q, ",");
            want = len == strlen(tok) && !strncmp(q, tok, len);
            q += len + (q[len] == ',');
        }
        const int show = o->show > 0 && o->show < MAXS ? o->show : MAXS;
        for (int i = 0; want && i < ds.train.count && n < show && !bad; i++) {
            const hcga_item *it = &ds.train.items[i];
            if (it->label != l) continue;
            char lpth[8300], gp[8300];
            snprintf(lpth, sizeof lpth, "%s/%s/%s.png", ds.root, sub, it->name);
            snprintf(gp, sizeof gp, "%s/parts/bounding_box_train/%s.png", ds.root, it->name);
            if (hcga_jpeg_read(it->path, &im[n], err, sizeof err)) bad = 1;
            else if (hcga_png_read(lpth, &lb[n], err, sizeof err)) bad = 2;
            else if (hcga_png_read(gp, &gm[n], err, sizeof err)) bad = 3;
            if (bad) {
                if (bad > 1) hcga_image_free(&im[n]);
                if (bad > 2) hcga_image_free(&lb[n]);
                break;
            }
            lp[n] = lb[n].data;
            cap[n] = it->name;
            n++;
        }
        if (!bad && n > 0) {
            char path[8300], title[64];
            snprintf(path, sizeof path, "%s/id%04d.png", o->out, ds.train_pid_of_label[l]);
            snprintf(title, sizeof title, "identity %04d", ds.train_pid_of_label[l]);
            hcga_vis_strip_opts vo = {0};
            vo.title = title;
            vo.method = "stored pseudo labels";
            vo.miou = -1;
            vo.gt = gm;
            vo.captions = cap;
            if (hcga_vis_parsing_strip(path, im, lp, n, lb[0].height, lb[0].width, K, &vo, err, sizeof err)) bad = 1;
            else printf("  %s\n", path);
        }
        for (int j = 0; j < n; j++) {
            hcga_image_free(&im[j]);
            hcga_image_free(&lb[j]);
            hcga_image_free(&gm[j]);
        }
        if (bad) {
            fprintf(stderr, "hcga parse: %s\n", err);
            goto out;
        }
    }
    double m = miou_of(inter, uni, K, iou);
    printf("hcga parse --eval: %s/%s: %d label maps against the ground-truth masks: IoU", ds.root, sub, scored);
    print_ious(iou, K);
    printf(", mIoU(parts) %.3f\n", m);
    rc = 0;
out:
    free(inter);
    free(uni);
    free(iou);
    free(gt);
    hcga_dataset_free(&ds);
    hcga_config_free(cfg);
    return rc;
}

int cmd_parse(int argc, char **argv, const hcga_global_opts *gopt)
{
    parse_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) {
        free(o.over);
        return prc < 0 ? 0 : prc;
    }
    if (o.eval && !o.weights) {
        int r = eval_stored(&o);
        free(o.over);
        return r;
    }
    char err[ERRLEN];
    int rc = 1;
    st_file *wf = NULL;
    hcga_config *cfg = NULL;
    hcga_dataset ds = {0};
    hcga_be *be = NULL;
    hg_store *store = NULL;
    hg_graph *gf = NULL;
    hg_exec *ex = NULL;
    hcga_dfc *dfc = NULL;
    int *ids = NULL;
    float *feats = NULL, *probs = NULL;
    int64_t *raw = NULL;
    uint8_t *lab = NULL, *lab8 = NULL;
    hcga_image *imgs = NULL, *gts = NULL;
    char **caps = NULL;
    const uint8_t **labptr = NULL;
    double *inter_all = NULL, *uni_all = NULL, *inter = NULL, *uni = NULL, *iou = NULL;
    int nmax = 0;

    wf = st_load(o.weights, err, sizeof err);
    if (!wf) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    const int ours = hcga_is_checkpoint(wf);
    /* only our checkpoints carry a YAML config (other files may use the key otherwise) */
    const char *cy = ours ? st_meta(wf, "config") : NULL;
    if (o.config || !cy) cfg = hcga_config_load(o.config, o.n_over, o.over, err, sizeof err);
    else cfg = hcga_config_load_string(cy, strlen(cy), o.weights, o.n_over, o.over, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "hcga parse: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!o.config && !cy)
        fprintf(stderr, "hcga parse: %s is not an hcga checkpoint with a config; using the built-in defaults (give --config)\n",
                o.weights);
    const int method = hcga_coparse_method_of(cfg, err, sizeof err);
    if (method < 0) {
        fprintf(stderr, "hcga parse: %s\n", err);
        rc = 2;
        goto out;
    }
    const int use_dfc = method == HCGA_CP_DFC, use_probs = method == HCGA_CP_GUIDED;
    if (o.frames && !use_dfc)
        fprintf(stderr, "hcga parse: --frames: %s has no iterations to draw; writing the final pictures only\n",
                hcga_coparse_method_name(method));
    const int K = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
    if (K < 2 || K > 64) {
        fprintf(stderr, "hcga parse: CLUSTERING.PART_NUM %d outside 2..64\n", K);
        rc = 2;
        goto out;
    }
    int ncls = hcga_model_num_classes(wf, o.weights, err, sizeof err);
    if (ncls < 0) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    const char *root = o.data ? o.data : hcga_cfg_str(cfg, "DATASETS.ROOT_DIR");
    if (hcga_dataset_open(root, &ds, err, sizeof err)) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    int nids = resolve_ids(o.ids, &ds, &ids, o.eval);
    if (nids < 0) {
        rc = 2;
        goto out;
    }
    if (nids == 0) {
        fprintf(stderr, "hcga parse: %s has no training identities\n", root);
        goto out;
    }
    if (!o.eval && hcga_mkdirs(o.out, err, sizeof err)) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    int threads = gopt->threads > 0 ? gopt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;

    /* the features graph and its weights */
    if ((rc = hcga_cli_open_backend(gopt, &be)) != 0) goto out;
    rc = 1;
    store = hg_store_new(be, HCGA_F32);
    if (!store) {
        fprintf(stderr, "hcga parse: cannot create a parameter store on %s\n", be->name);
        goto out;
    }
    gf = hcga_model_build(cfg, HCGA_MODEL_FEATURES, FEAT_BATCH, ncls, HCGA_F32, err, sizeof err);
    if (!gf) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    ex = hcga_exec_with_weights(cfg, gf, store, be, wf, o.weights, err, sizeof err);
    if (!ex) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    st_free(wf);
    wf = NULL;
    hg_val vF = hg_find(gf, "eval.feature_map"), vP = hg_find(gf, "eval.part_prob");
    if (vF < 0 || vP < 0) {
        fprintf(stderr, "hcga parse: the features graph has no eval.feature_map or eval.part_prob\n");
        goto out;
    }
    const int C = (int)hg_shape(gf, vF)[1], fh = (int)hg_shape(gf, vF)[2], fw = (int)hg_shape(gf, vF)[3];
    const size_t per = (size_t)C * fh * fw, hw = (size_t)fh * fw;
    hcga_aug_cfg aug = hcga_aug_from_config(cfg, 0);
    if (use_dfc && !(dfc = hcga_dfc_new(cfg, be, C, fh, fw, err, sizeof err))) {
        fprintf(stderr, "hcga parse: %s\n", err);
        goto out;
    }
    for (int k = 0; k < nids; k++) {
        int n = 0;
        for (int i = 0; i < ds.train.count; i++) n += ds.train.items[i].label == ids[k];
        if (n > nmax) nmax = n;
    }
    feats = malloc(sizeof(float) * per * (size_t)nmax);
    probs = use_probs ? malloc(sizeof(float) * (size_t)K * hw * (size_t)nmax) : NULL;
    raw = malloc(sizeof(int64_t) * hw * (size_t)nmax);
    lab = malloc(hw * (size_t)nmax);
    lab8 = malloc(hw * (size_t)nmax);
    imgs = calloc((size_t)nmax, sizeof *imgs);
    gts = calloc((size_t)nmax, sizeof *gts);
    caps = calloc((size_t)nmax, sizeof *caps);
    labptr = calloc((size_t)nmax, sizeof *labptr);
    inter_all = calloc((size_t)K, sizeof(double));
    uni_all = calloc((size_t)K, sizeof(double));
    inter = calloc((size_t)K, sizeof(double));
    uni = calloc((size_t)K, sizeof(double));
    iou = calloc((size_t)K, sizeof(double));
    hcga_item *items = malloc(sizeof(hcga_item) * (size_t)nmax);
    if (!feats || (use_probs && !probs) || !raw || !lab || !lab8 || !imgs || !gts || !caps || !labptr || !inter_all || !uni_all ||
        !inter || !uni || !iou || !items) {
        free(items);
        fprintf(stderr, "hcga parse: out of memory for identities of up to %d images\n", nmax);
        goto out;
    }
    printf("hcga parse: %s co-parsing of %d identit%s from %s on %s (features %dx%dx%d, K = %d)\n",
           hcga_coparse_method_name(method), nids, nids == 1 ? "y" : "ies", root, be->name, C, fh, fw, K);
    fflush(stdout);
    int gt_ids = 0, bad = 0;
    double t_all = 0;
    for (int k = 0; k < nids && !bad; k++) {
        const int label = ids[k], pid = ds.train_pid_of_label[label];
        int n = 0;
        for (int i = 0; i < ds.train.count; i++)
            if (ds.train.items[i].label == label) items[n++] = ds.train.items[i];
        const int show = o.eval ? 0 : o.show > 0 && o.show < n ? o.show : n;
        double t0 = hcga_now();
        if (hcga_coparse_features(ex, gf, FEAT_BATCH, vF, vP, items, n, &aug, K, threads, feats, probs, err,
                                  sizeof err)) {
            fprintf(stderr, "hcga parse: identity %04d: %s\n", pid, err);
            bad = 1;
            break;
        }
        double t_feat = hcga_now() - t0;
        /* the pictures: originals, captions, masks */
        int have_gt = 1;
        for (int j = 0; j < n && !bad; j++) {
            if (j < show) {
                if (hcga_jpeg_read(items[j].path, &imgs[j], err, sizeof err)) {
                    fprintf(stderr, "hcga parse: %s\n", err);
                    bad = 1;
                    break;
                }
                caps[j] = items[j].name;
            }
            char gp[8300];
            snprintf(gp, sizeof gp, "%s/parts/bounding_box_train/%s.png", ds.root, items[j].name);
            if (!have_gt || access(gp, R_OK) != 0) {
                have_gt = 0;
                continue;
            }
            if (hcga_png_read(gp, &gts[j], err, sizeof err)) {
                fprintf(stderr, "hcga parse: %s\n", err);
                bad = 1;
                break;
            }
            if (gts[j].channels != 1) {
                fprintf(stderr, "hcga parse: %s: part mask must be gray\n", gp);
                bad = 1;
            }
        }
        if (bad) break;
        for (int j = 0; j < show; j++) labptr[j] = lab8 + hw * j;
        frame_ctx fc = {o.out, pid, n, show, fh, fw, imgs, (const char *const *)caps, lab8, labptr, 0, 0, 0.0, {0}};
        int iters = 0;
        double t1 = hcga_now();
        uint64_t s = o.seed ^ ((uint64_t)1 << 32) ^ (uint64_t)label;
        if (hcga_coparse_labels(method, dfc, feats, probs, NULL, n, C, fh, fw, K, s, raw, lab, &iters,
                                use_dfc && o.frames ? frame_cb : NULL, &fc, err, sizeof err)) {
            fprintf(stderr, "hcga parse: identity %04d: %s\n", pid, err);
            bad = 1;
            break;
        }
        if (fc.failed) {
            fprintf(stderr, "hcga parse: %s\n", fc.err);
            bad = 1;
            break;
        }
        /* the identity's time without drawing the frames */
        double t_clu = hcga_now() - t1 - fc.seconds, t_id = hcga_now() - t0 - fc.seconds;
        t_all += t_id;
        double miou = -1;
        if (have_gt) {
            memset(inter, 0, sizeof(double) * (size_t)K);
            memset(uni, 0, sizeof(double) * (size_t)K);
            accumulate_iou(lab, gts, n, fh, fw, K, inter, uni);
            accumulate_iou(lab, gts, n, fh, fw, K, inter_all, uni_all);
            miou = miou_of(inter, uni, K, iou);
            gt_ids++;
        }
        if (o.eval) {
            if (gopt->verbosity > 0) {
                printf("identity %04d: %d images, %.2f s, mIoU %.3f\n", pid, n, t_id, miou);
                fflush(stdout);
            }
            for (int j = 0; j < n; j++) hcga_image_free(&gts[j]);
            continue;
        }
        for (int j = 0; j < show; j++) labptr[j] = lab + hw * j;
        char path[8300], title[64];
        snprintf(path, sizeof path, "%s/id%04d.png", o.out, pid);
        snprintf(title, sizeof title, "identity %04d", pid);
        hcga_vis_strip_opts vo = {0};
        vo.title = title;
        vo.method = hcga_coparse_method_name(method);
        vo.miou = miou;
        vo.gt = have_gt ? gts : NULL;
        vo.captions = (const char *const *)caps;
        char note[64] = "";
        if (use_dfc) snprintf(note, sizeof note, "%d iteration%s", iters, iters == 1 ? "" : "s");
        if (show < n) {
            size_t l = strlen(note);
            snprintf(note + l, sizeof note - l, "%sfirst %d of %d images", l ? ", " : "", show, n);
        }
        vo.note = note[0] ? note : NULL;
        if (hcga_vis_parsing_strip(path, imgs, labptr, show, fh, fw, K, &vo, err, sizeof err)) {
            fprintf(stderr, "hcga parse: %s\n", err);
            bad = 1;
            break;
        }
        printf("identity %04d: %d images, %.2f s (features %.2f s, %s %.2f s", pid, n, t_id, t_feat,
               hcga_coparse_method_name(method), t_clu);
        if (use_dfc) printf(", %d iterations", iters);
        printf(")");
        if (have_gt) {
            printf(", IoU");
            for (int c = 0; c < K; c++) {
                if (iou[c] >= 0) printf(" %d:%.3f", c, iou[c]);
                else printf(" %d:-", c);
            }
            if (miou >= 0) printf(", mIoU %.3f", miou);
        }
        printf("\n  %s\n", path);
        if (fc.written)
            printf("  %s/id%04d_iter01.png .. id%04d_iter%02d.png (%d frames, drawn in %.2f s)\n", o.out, pid, pid,
                   iters, fc.written, fc.seconds);
        fflush(stdout);
        for (int j = 0; j < n; j++) {
            hcga_image_free(&imgs[j]);
            hcga_image_free(&gts[j]);
            caps[j] = NULL;
        }
    }
    free(items);
    if (bad) goto out;
    printf("%d identit%s in %.2f s (%.2f s per identity)", nids, nids == 1 ? "y" : "ies", t_all, t_all / nids);
    if (gt_ids) {
        double m = miou_of(inter_all, uni_all, K, iou);
        if (o.eval) {
            printf("; IoU");
            print_ious(iou, K);
            printf(", mIoU(parts) %.3f over the %d with ground-truth masks", m, gt_ids);
        } else if (m >= 0) {
            printf("; mIoU %.3f over the %d with ground-truth masks", m, gt_ids);
        }
    } else if (o.eval) {
        printf("; no ground-truth part masks in %s/parts/bounding_box_train: nothing scored", root);
        rc = 1;
        printf("\n");
        goto out;
    }
    printf("\n");
    rc = 0;
out:
    if (imgs)
        for (int j = 0; j < nmax; j++) hcga_image_free(&imgs[j]);
    if (gts)
        for (int j = 0; j < nmax; j++) hcga_image_free(&gts[j]);
    free(imgs);
    free(gts);
    free(caps);
    free(labptr);
    free(inter_all);
    free(uni_all);
    free(inter);
    free(uni);
    free(iou);
    free(feats);
    free(probs);
    free(raw);
    free(lab);
    free(lab8);
    free(ids);
    hcga_dfc_free(dfc);
    hg_exec_free(ex);
    if (gf) hcga_model_graph_free(gf);
    hg_store_free(store);
    if (be) hcga_be_close(be);
    hcga_dataset_free(&ds);
    if (wf) st_free(wf);
    hcga_config_free(cfg);
    free(o.over);
    return rc;
}
