/*
 * eval.c - ReID evaluation: Market-1501 protocol, ARM distances, re-ranking.
 */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sorting helpers ---------------------------------------------------- */

typedef struct {
    float key;
    int idx;
} keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* order[0..n) = indices of row sorted ascending, ties by index. */
static void argsort_row(const float *row, int n, keyed *tmp, int *order)
{
    for (int j = 0; j < n; j++) {
        tmp[j].key = isnan(row[j]) ? INFINITY : row[j];
        tmp[j].idx = j;
    }
    qsort(tmp, (size_t)n, sizeof *tmp, keyed_cmp);
    for (int j = 0; j < n; j++) order[j] = tmp[j].idx;
}

/* ---- protocol ----------------------------------------------------------- */

int hcga_eval_market(const float *dist, int nq, int ng, const int *q_pids, const int *q_cams,
                     const int *g_pids, const int *g_cams, hcga_eval_result *res)
{
    memset(res, 0, sizeof *res);
    res->num_query = nq;
    if (nq <= 0 || ng <= 0) return -1;
    keyed *tmp = malloc(sizeof *tmp * (size_t)ng);
    int *order = malloc(sizeof *order * (size_t)ng);
    if (!tmp || !order) {
        free(tmp);
        free(order);
        return -1;
    }
    double cmc_sum[HCGA_EVAL_MAX_RANK] = {0};
    double ap_sum = 0, apt_sum = 0, inp_sum = 0;
    int valid = 0;
    for (int q = 0; q < nq; q++) {
        argsort_row(dist + (size_t)q * (size_t)ng, ng, tmp, order);
        int ngood = 0;
        for (int j = 0; j < ng; j++) {
            int g = order[j];
            if (g_pids[g] == -1 || (g_pids[g] == q_pids[q] && g_cams[g] == q_cams[q])) continue;
            if (g_pids[g] == q_pids[q]) ngood++;
        }
        if (ngood == 0) continue;
        valid++;
        int pos = 0, hits = 0, first = -1, last = -1;
        double ap = 0, apt = 0;
        for (int j = 0; j < ng; j++) {
            int g = order[j];
            if (g_pids[g] == -1 || (g_pids[g] == q_pids[q] && g_cams[g] == q_cams[q])) continue;
            if (g_pids[g] == q_pids[q]) {
                hits++;
                if (first < 0) first = pos;
                last = pos;
                double prec = (double)hits / (pos + 1);
                double old_prec = pos == 0 ? 1.0 : (double)(hits - 1) / pos;
                ap += prec;
                apt += (old_prec + prec) / 2.0;
            }
            pos++;
        }
        for (int r = first; r < HCGA_EVAL_MAX_RANK; r++) cmc_sum[r] += 1.0;
        ap_sum += ap / ngood;
        apt_sum += apt / ngood;
        inp_sum += (double)ngood / (last + 1);
    }
    free(tmp);
    free(order);
    res->num_valid = valid;
    if (valid == 0) return -1;
    for (int r = 0; r < HCGA_EVAL_MAX_RANK; r++) res->cmc[r] = cmc_sum[r] / valid;
    res->map = ap_sum / valid;
    res->map_trapezoid = apt_sum / valid;
    res->minp = inp_sum / valid;
    return 0;
}

/* ---- distances ---------------------------------------------------------- */

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)a[i] * b[i];
    return s;
}

void hcga_dist_euclidean(const float *q, int nq, const float *g, int ng, int d, int normalize,
                         float *dist)
{
    double *qn = malloc(sizeof *qn * (size_t)(nq > 0 ? nq : 1));
    double *gn = malloc(sizeof *gn * (size_t)(ng > 0 ? ng : 1));
    if (!qn || !gn) abort();
    for (int i = 0; i < nq; i++) qn[i] = dot(q + (size_t)i * d, q + (size_t)i * d, d);
    for (int j = 0; j < ng; j++) gn[j] = dot(g + (size_t)j * d, g + (size_t)j * d, d);
    for (int i = 0; i < nq; i++) {
        double sq = normalize ? (qn[i] > 1e-24 ? 1.0 / sqrt(qn[i]) : 0.0) : 1.0;
        double q2 = normalize ? qn[i] * sq * sq : qn[i];
        for (int j = 0; j < ng; j++) {
            double sg = normalize ? (gn[j] > 1e-24 ? 1.0 / sqrt(gn[j]) : 0.0) : 1.0;
            double g2 = normalize ? gn[j] * sg * sg : gn[j];
            double qg = dot(q + (size_t)i * d, g + (size_t)j * d, d) * sq * sg;
            double v = q2 + g2 - 2.0 * qg;
            dist[(size_t)i * ng + j] = (float)(v < 0 ? 0 : v);
        }
    }
    free(qn);
    free(gn);
}

static double cosine(const float *a, const float *b, int d)
{
    double ab = dot(a, b, d), aa = dot(a, a, d), bb = dot(b, b, d);
    double den = sqrt(aa) * sqrt(bb);
    return den > 1e-12 ? ab / den : 0.0;
}

void hcga_dist_arm(const float *q_fore, const float *q_part, const int64_t *q_vis, int nq,
                   const float *g_fore, const float *g_part, const int64_t *g_vis, int ng,
                   int nparts, int d, float *dist)
{
    for (int i = 0; i < nq; i++) {
        for (int j = 0; j < ng; j++) {
            double s = (1.0 + cosine(q_fore + (size_t)i * d, g_fore + (size_t)j * d, d)) / 2.0;
            for (int k = 0; k < nparts; k++) {
                if (!q_vis[(size_t)i * nparts + k] || !g_vis[(size_t)j * nparts + k]) continue;
                const float *a = q_part + ((size_t)i * nparts + k) * d;
                const float *b = g_part + ((size_t)j * nparts + k) * d;
                s += (1.0 + cosine(a, b, d)) / 2.0;
            }
            dist[(size_t)i * ng + j] = (float)-s;
        }
    }
}

/* ---- k-reciprocal re-ranking ------------------------------------------- */

/* Indices j in forward[0..kf) whose own top-kf list (rank[j]) contains i. */
static int k_reciprocal(const int *rank, int all, int i, int kf, int *out)
{
    int n = 0;
    for (int a = 0; a < kf && a < all; a++) {
        int j = rank[(size_t)i * all + a];
        for (int b = 0; b < kf && b < all; b++) {
            if (rank[(size_t)j * all + b] == i) {
                out[n++] = j;
                break;
            }
        }
    }
    return n;
}

int hcga_rerank(const float *q_g, const float *q_q, const float *g_g, int nq, int ng, int k1,
                int k2, double lambda, float *out)
{
    const int all = nq + ng;
    const size_t A = (size_t)all;
    double *dist = malloc(sizeof *dist * A * A);
    double *V = calloc(A * A, sizeof *V);
    int *rank = malloc(sizeof *rank * A * A);
    keyed *tmp = malloc(sizeof *tmp * A);
    float *row = malloc(sizeof *row * A);
    int *cand = malloc(sizeof *cand * A);
    int *sub = malloc(sizeof *sub * A);
    unsigned char *inset = calloc(A, 1);
    int *expand = malloc(sizeof *expand * A);
    if (!dist || !V || !rank || !tmp || !row || !cand || !sub || !inset || !expand) {
        free(dist); free(V); free(rank); free(tmp); free(row); free(cand); free(sub);
        free(inset); free(expand);
        return -1;
    }
    /* full distance matrix over queries then gallery */
    for (int i = 0; i < all; i++) {
        for (int j = 0; j < all; j++) {
            double v;
            if (i < nq && j < nq) v = q_q[(size_t)i * nq + j];
            else if (i < nq) v = q_g[(size_t)i * ng + (j - nq)];
            else if (j < nq) v = q_g[(size_t)j * ng + (i - nq)];
            else v = g_g[(size_t)(i - nq) * ng + (j - nq)];
            dist[(size_t)i * A + j] = v;
        }
    }
    /* normalise each column by its maximum (the matrix is symmetric) */
    for (int j = 0; j < all; j++) {
        double mx = 0;
        for (int i = 0; i < all; i++) mx = fmax(mx, dist[(size_t)i * A + j]);
        if (mx > 0)
            for (int i = 0; i < all; i++) dist[(size_t)i * A + j] /= mx;
    }
    for (int i = 0; i < all; i++) {
        for (int j = 0; j < all; j++) row[j] = (float)dist[(size_t)i * A + j];
        argsort_row(row, all, tmp, rank + (size_t)i * A);
    }
    const int half = (int)nearbyint(k1 / 2.0); /* ties to even, like the reference */
    for (int i = 0; i < all; i++) {
        int nk = k_reciprocal(rank, all, i, k1 + 1, cand);
        int ne = 0;
        for (int a = 0; a < nk; a++) {
            expand[ne++] = cand[a];
            inset[cand[a]] = 1;
        }
        for (int a = 0; a < nk; a++) {
            int c = cand[a];
            int ns = k_reciprocal(rank, all, c, half + 1, sub);
            int common = 0;
            for (int b = 0; b < ns; b++) {
                for (int e = 0; e < nk; e++)
                    if (cand[e] == sub[b]) {
                        common++;
                        break;
                    }
            }
            if ((double)common > 2.0 / 3.0 * ns) {
                for (int b = 0; b < ns; b++)
                    if (!inset[sub[b]]) {
                        inset[sub[b]] = 1;
                        expand[ne++] = sub[b];
                    }
            }
        }
        double wsum = 0;
        for (int e = 0; e < ne; e++) wsum += exp(-dist[(size_t)i * A + expand[e]]);
        for (int e = 0; e < ne; e++) {
            int j = expand[e];
            V[(size_t)i * A + j] = exp(-dist[(size_t)i * A + j]) / wsum;
            inset[j] = 0;
        }
    }
    /* local query expansion: average V over each sample's top-k2 */
    if (k2 > 1) {
        double *Vq = calloc(A * A, sizeof *Vq);
        if (!Vq) {
            free(dist); free(V); free(rank); free(tmp); free(row); free(cand); free(sub);
            free(inset); free(expand);
            return -1;
        }
        for (int i = 0; i < all; i++) {
            for (int a = 0; a < k2 && a < all; a++) {
                int j = rank[(size_t)i * A + a];
                for (int c = 0; c < all; c++) Vq[(size_t)i * A + c] += V[(size_t)j * A + c];
            }
            int kk = k2 < all ? k2 : all;
            for (int c = 0; c < all; c++) Vq[(size_t)i * A + c] /= kk;
        }
        free(V);
        V = Vq;
    }
    /* Jaccard distance between each query and each gallery sample */
    for (int i = 0; i < nq; i++) {
        for (int j = 0; j < ng; j++) {
            double mins = 0;
            const double *vi = V + (size_t)i * A, *vj = V + (size_t)(nq + j) * A;
            for (int c = 0; c < all; c++)
                if (vi[c] != 0 && vj[c] != 0) mins += fmin(vi[c], vj[c]);
            double jac = 1.0 - mins / (2.0 - mins);
            out[(size_t)i * ng + j] =
                (float)(jac * (1.0 - lambda) + dist[(size_t)i * A + (nq + j)] * lambda);
        }
    }
    free(dist); free(V); free(rank); free(tmp); free(row); free(cand); free(sub);
    free(inset); free(expand);
    return 0;
}
