/*
 * features.c - eval-mode features of a split and their evaluation (ARM,
 * global, concatenated; optional re-ranking), shared by `hcga train`,
 * `hcga test` and co-parsing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_cli.h"
#include "model_io.h"
#include "train.h"

/* ---- features and evaluation --------------------------------------------- */

void hcga_features_free(hcga_features *f)
{
    free(f->fore);
    free(f->part);
    free(f->global);
    free(f->vis);
    free(f->pids);
    free(f->cams);
    memset(f, 0, sizeof *f);
}

hcga_aug_cfg hcga_aug_from_config(const hcga_config *cfg, int train)
{
    hcga_aug_cfg a;
    const char *size = train ? "INPUT.SIZE_TRAIN" : "INPUT.SIZE_TEST";
    a.height = (int)hcga_cfg_list_int(cfg, size, 0);
    a.width = (int)hcga_cfg_list_int(cfg, size, 1);
    a.label_h = a.height / 4;
    a.label_w = a.width / 4;
    a.flip_p = hcga_cfg_float(cfg, "INPUT.PROB");
    a.erase_p = hcga_cfg_float(cfg, "INPUT.RE_PROB");
    a.padding = (int)hcga_cfg_int(cfg, "INPUT.PADDING");
    for (int c = 0; c < 3; c++) {
        a.mean[c] = (float)hcga_cfg_list_float(cfg, "INPUT.PIXEL_MEAN", c);
        a.std[c] = (float)hcga_cfg_list_float(cfg, "INPUT.PIXEL_STD", c);
    }
    return a;
}

int hcga_extract_features(hg_exec *ex, hg_graph *g, int batch, const hcga_split *split,
                          const hcga_aug_cfg *aug, int threads, int flip, hcga_features *out,
                          char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    const int n = split->count;
    hg_val vf = hg_find(g, "eval.feat_fore"), vp = hg_find(g, "eval.feat_part");
    hg_val vg = hg_find(g, "eval.feat_global"), va = hg_find(g, "eval.part_argmax");
    if (vf < 0 || vp < 0 || vg < 0 || va < 0) {
        snprintf(err, err_len, "the eval graph lacks eval.feat_fore/feat_part/feat_global/part_argmax");
        return -1;
    }
    const int d = (int)hg_shape(g, vf)[1];
    const int nparts = (int)hg_shape(g, vp)[1];
    const int dg = (int)hg_shape(g, vg)[1];
    const int64_t ah = hg_shape(g, va)[1], aw = hg_shape(g, va)[2];
    out->n = n;
    out->d = d;
    out->nparts = nparts;
    out->dg = dg;
    out->fore = calloc((size_t)n * d, sizeof(float));
    out->part = calloc((size_t)n * nparts * d, sizeof(float));
    out->global = calloc((size_t)n * dg, sizeof(float));
    out->vis = calloc((size_t)n * nparts, sizeof(int64_t));
    out->pids = malloc(sizeof(int) * (size_t)n);
    out->cams = malloc(sizeof(int) * (size_t)n);
    const size_t img = (size_t)3 * aug->height * aug->width;
    float *in = malloc(sizeof(float) * img * (size_t)batch);
    float *bf = malloc(sizeof(float) * (size_t)batch * d), *bp = malloc(sizeof(float) * (size_t)batch * nparts * d);
    float *bg = malloc(sizeof(float) * (size_t)batch * dg);
    int64_t *am = malloc(sizeof(int64_t) * (size_t)batch * ah * aw);
    int64_t *vis = malloc(sizeof(int64_t) * (size_t)batch * nparts);
    hcga_loader *l = hcga_loader_new(split, NULL, n, batch, 0, aug, nparts + 1, NULL, NULL, 0, 0, threads);
    int rc = -1;
    if (!out->fore || !out->part || !out->global || !out->vis || !out->pids || !out->cams || !in || !bf ||
        !bp || !bg || !am || !vis || !l) {
        snprintf(err, err_len, "out of memory extracting features of %d images", n);
        goto done;
    }
    int done_n = 0;
    const hcga_batch *b;
    while ((b = hcga_loader_next(l))) {
        for (int pass = 0; pass < (flip ? 2 : 1); pass++) {
            /* pad a short last batch with copies of its last image */
            for (int i = 0; i < batch; i++) {
                const float *src = b->images + img * (size_t)(i < b->n ? i : b->n - 1);
                float *dst = in + img * (size_t)i;
                if (!pass) {
                    memcpy(dst, src, sizeof(float) * img);
                } else {
                    for (int c = 0; c < 3; c++)
                        for (int y = 0; y < aug->height; y++)
                            for (int x = 0; x < aug->width; x++)
                                dst[((size_t)c * aug->height + y) * aug->width + x] =
                                    src[((size_t)c * aug->height + y) * aug->width + (aug->width - 1 - x)];
                }
            }
            if (hg_exec_set_input(ex, "input.images", in, HCGA_F32) || hg_exec_run(ex)) {
                snprintf(err, err_len, "eval forward: %s", hg_exec_error(ex));
                goto done;
            }
            if (hg_exec_read(ex, vf, bf, HCGA_F32) || hg_exec_read(ex, vp, bp, HCGA_F32) ||
                hg_exec_read(ex, vg, bg, HCGA_F32) || hg_exec_read(ex, va, am, HCGA_I64)) {
                snprintf(err, err_len, "eval outputs: %s", hg_exec_error(ex));
                goto done;
            }
            hcga_model_visible_parts(am, batch, ah, aw, nparts + 1, vis);
            float scale = flip ? 0.5f : 1.0f;
            for (int i = 0; i < b->n; i++) {
                int r = done_n + i;
                for (int k = 0; k < d; k++) out->fore[(size_t)r * d + k] += scale * bf[(size_t)i * d + k];
                for (int k = 0; k < nparts * d; k++)
                    out->part[(size_t)r * nparts * d + k] += scale * bp[(size_t)i * nparts * d + k];
                for (int k = 0; k < dg; k++) out->global[(size_t)r * dg + k] += scale * bg[(size_t)i * dg + k];
                for (int k = 0; k < nparts; k++) out->vis[(size_t)r * nparts + k] |= vis[(size_t)i * nparts + k];
            }
        }
        for (int i = 0; i < b->n; i++) {
            out->pids[done_n + i] = (int)b->labels[i];
            out->cams[done_n + i] = b->cams[i];
        }
        done_n += b->n;
    }
    if (hcga_loader_error(l)) {
        snprintf(err, err_len, "%s", hcga_loader_error(l));
        goto done;
    }
    rc = 0;
done:
    hcga_loader_free(l);
    free(in);
    free(bf);
    free(bp);
    free(bg);
    free(am);
    free(vis);
    if (rc) hcga_features_free(out);
    return rc;
}

static float *concat_features(const hcga_features *f, int *dim)
{
    int D = f->dg + f->d + f->nparts * f->d;
    float *x = malloc(sizeof(float) * (size_t)f->n * D);
    if (!x) return NULL;
    for (int i = 0; i < f->n; i++) {
        float *r = x + (size_t)i * D;
        memcpy(r, f->global + (size_t)i * f->dg, sizeof(float) * f->dg);
        memcpy(r + f->dg, f->fore + (size_t)i * f->d, sizeof(float) * f->d);
        memcpy(r + f->dg + f->d, f->part + (size_t)i * f->nparts * f->d, sizeof(float) * f->nparts * f->d);
    }
    *dim = D;
    return x;
}

/* pairwise distances a x b for one matching mode */
static int match_dist(const hcga_features *a, const hcga_features *b, hcga_match mode, int feat_norm,
                      float *dist)
{
    if (mode == HCGA_MATCH_ARM) {
        hcga_dist_arm(a->fore, a->part, a->vis, a->n, b->fore, b->part, b->vis, b->n, a->nparts, a->d, dist);
        return 0;
    }
    if (mode == HCGA_MATCH_GLOBAL) {
        hcga_dist_euclidean(a->global, a->n, b->global, b->n, a->dg, feat_norm, dist);
        return 0;
    }
    int da, db;
    float *xa = concat_features(a, &da), *xb = concat_features(b, &db);
    if (!xa || !xb) {
        free(xa);
        free(xb);
        return -1;
    }
    hcga_dist_euclidean(xa, a->n, xb, b->n, da, feat_norm, dist);
    free(xa);
    free(xb);
    return 0;
}

int hcga_evaluate_features(const hcga_features *q, const hcga_features *g, hcga_match mode,
                           int feat_norm, int rerank, hcga_eval_result *res, char *err,
                           size_t err_len)
{
    if (q->d != g->d || q->nparts != g->nparts || q->dg != g->dg) {
        snprintf(err, err_len, "query and gallery features differ in size (%dx%d+%d vs %dx%d+%d)",
                 q->nparts, q->d, q->dg, g->nparts, g->d, g->dg);
        return -1;
    }
    float *qg = malloc(sizeof(float) * (size_t)q->n * g->n);
    if (!qg || match_dist(q, g, mode, feat_norm, qg)) {
        free(qg);
        snprintf(err, err_len, "out of memory for a %dx%d distance matrix", q->n, g->n);
        return -1;
    }
    if (rerank) {
        float *qq = malloc(sizeof(float) * (size_t)q->n * q->n);
        float *gg = malloc(sizeof(float) * (size_t)g->n * g->n);
        float *rr = malloc(sizeof(float) * (size_t)q->n * g->n);
        int bad = !qq || !gg || !rr || match_dist(q, q, mode, feat_norm, qq) ||
                  match_dist(g, g, mode, feat_norm, gg);
        if (!bad && mode == HCGA_MATCH_ARM) {
            /* ARM gives -similarity; re-ranking needs non-negative distances */
            float mx = 0;
            for (size_t i = 0; i < (size_t)q->n * g->n; i++) mx = fmaxf(mx, -qg[i]);
            for (size_t i = 0; i < (size_t)q->n * q->n; i++) mx = fmaxf(mx, -qq[i]);
            for (size_t i = 0; i < (size_t)g->n * g->n; i++) mx = fmaxf(mx, -gg[i]);
            for (size_t i = 0; i < (size_t)q->n * g->n; i++) qg[i] += mx;
            for (size_t i = 0; i < (size_t)q->n * q->n; i++) qq[i] += mx;
            for (size_t i = 0; i < (size_t)g->n * g->n; i++) gg[i] += mx;
        }
        if (!bad) bad = hcga_rerank(qg, qq, gg, q->n, g->n, 20, 6, 0.3, rr) != 0;
        if (!bad) memcpy(qg, rr, sizeof(float) * (size_t)q->n * g->n);
        free(qq);
        free(gg);
        free(rr);
        if (bad) {
            free(qg);
            snprintf(err, err_len, "out of memory for re-ranking %d+%d images", q->n, g->n);
            return -1;
        }
    }
    int rc = hcga_eval_market(qg, q->n, g->n, q->pids, q->cams, g->pids, g->cams, res);
    free(qg);
    if (rc) snprintf(err, err_len, "no query has a valid gallery match (%d queries)", q->n);
    return rc;
}

