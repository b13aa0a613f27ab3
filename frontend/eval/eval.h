/*
 * eval.h - ReID evaluation: distances, ARM matching, Market-1501 protocol
 * (CMC, mAP, mINP) and k-reciprocal re-ranking.  Pure host code.
 */
#ifndef HCGA_EVAL_H
#define HCGA_EVAL_H

#include <stddef.h>
#include <stdint.h>

#define HCGA_EVAL_MAX_RANK 50

typedef struct hcga_eval_result {
    int num_query;         /* queries given */
    int num_valid;         /* queries with at least one valid match (the rest are skipped) */
    double cmc[HCGA_EVAL_MAX_RANK]; /* cmc[r] = fraction of valid queries with a match in the top r+1 */
    double map;            /* standard AP: mean of precision at each correct match */
    double map_trapezoid;  /* the reference ARM path's AP: sum (1/ngood)(p_{i-1}+p_i)/2 */
    double minp;           /* mean inverse negative penalty: ngood / rank of the last match */
} hcga_eval_result;

/* Market-1501 protocol on a distance matrix dist[nq*ng] (smaller = more
 * similar).  For each query, gallery images with the same id and the same
 * camera, and gallery images with id -1 (distractors), are removed; a query
 * with no remaining match is skipped.  Ties are broken by gallery index
 * (stable).  Returns 0, or -1 when no query is valid (res->num_valid = 0). */
int hcga_eval_market(const float *dist, int nq, int ng, const int *q_pids, const int *q_cams,
                     const int *g_pids, const int *g_cams, hcga_eval_result *res);

/* Squared Euclidean distances between rows of q[nq*d] and g[ng*d]; with
 * normalize != 0 rows are L2-normalised first (TEST.FEAT_NORM). */
void hcga_dist_euclidean(const float *q, int nq, const float *g, int ng, int d, int normalize,
                         float *dist);

/* ARM matching (HCGA.md section 6): similarity
 *   s = (1 + cos(fore_q, fore_g))/2 + sum_{k visible in both} (1 + cos(part_qk, part_gk))/2
 * written as a distance (-s) so that hcga_eval_market ranks by s descending.
 * fore: [n*d]; part: [n*nparts*d]; vis: [n*nparts] (0/1). */
void hcga_dist_arm(const float *q_fore, const float *q_part, const int64_t *q_vis, int nq,
                   const float *g_fore, const float *g_part, const int64_t *g_vis, int ng,
                   int nparts, int d, float *dist);

/* k-reciprocal re-ranking (Zhong et al., CVPR 2017).  Inputs are the three
 * distance blocks over the same metric: q_g[nq*ng], q_q[nq*nq], g_g[ng*ng].
 * Writes the re-ranked query-gallery distances to out[nq*ng].  Returns 0 or
 * -1 on allocation failure. */
int hcga_rerank(const float *q_g, const float *q_q, const float *g_g, int nq, int ng,
                int k1, int k2, double lambda, float *out);

#endif
