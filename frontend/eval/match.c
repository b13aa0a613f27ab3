/*
 * match.c - query x gallery distances for one matching mode (ARM: foreground
 * plus the parts visible in both images; global; the concatenation), with
 * optional k-reciprocal re-ranking, scored with the Market-1501 protocol.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/features.h"

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

int hcga_match_distances(const hcga_features *q, const hcga_features *g, hcga_match mode, int feat_norm,
                         int rerank, int k1, int k2, double lambda, float *qg, char *err, size_t err_len)
{
    if (q->d != g->d || q->nparts != g->nparts || q->dg != g->dg) {
        snprintf(err, err_len, "query and gallery features differ in size (%dx%d+%d vs %dx%d+%d)",
                 q->nparts, q->d, q->dg, g->nparts, g->d, g->dg);
        return -1;
    }
    if (match_dist(q, g, mode, feat_norm, qg)) {
        snprintf(err, err_len, "out of memory for concatenated features of %d+%d images", q->n, g->n);
        return -1;
    }
    if (!rerank) return 0;
    float *qq = malloc(sizeof(float) * (size_t)q->n * q->n);
    float *gg = malloc(sizeof(float) * (size_t)g->n * g->n);
    float *rr = malloc(sizeof(float) * (size_t)q->n * g->n);
    int bad = !qq || !gg || !rr || match_dist(q, q, mode, feat_norm, qq) || match_dist(g, g, mode, feat_norm, gg);
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
    if (!bad) bad = hcga_rerank(qg, qq, gg, q->n, g->n, k1, k2, lambda, rr) != 0;
    if (!bad) memcpy(qg, rr, sizeof(float) * (size_t)q->n * g->n);
    free(qq);
    free(gg);
    free(rr);
    if (bad) snprintf(err, err_len, "out of memory for re-ranking %d+%d images", q->n, g->n);
    return bad ? -1 : 0;
}

int hcga_evaluate_features(const hcga_features *q, const hcga_features *g, hcga_match mode,
                           int feat_norm, int rerank, hcga_eval_result *res, char *err,
                           size_t err_len)
{
    float *qg = malloc(sizeof(float) * (size_t)q->n * g->n);
    if (!qg) {
        snprintf(err, err_len, "out of memory for a %dx%d distance matrix", q->n, g->n);
        return -1;
    }
    if (hcga_match_distances(q, g, mode, feat_norm, rerank, 20, 6, 0.3, qg, err, err_len)) {
        free(qg);
        return -1;
    }
    int rc = hcga_eval_market(qg, q->n, g->n, q->pids, q->cams, g->pids, g->cams, res);
    free(qg);
    if (rc) snprintf(err, err_len, "no query has a valid gallery match (%d queries)", q->n);
    return rc;
}
