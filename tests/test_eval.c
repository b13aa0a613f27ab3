/* Evaluation tests: hand-made distances and features with hand-derived CMC/mAP. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "eval/eval.h"
#include "testutil.h"

/* q0: id 1 cam 1 -> gallery sorted g3 (distractor), g0 (same id+cam: junk), g1 (neg),
 * g2 (hit at kept position 1), g4 (hit at kept position 2): AP = (1/2 + 2/3)/2 = 7/12,
 * rank-1 miss, INP = 2/3, trapezoid AP = ((0+1/2)/2 + (1/2+2/3)/2)/2 = 5/12.
 * q1: id 2 cam 1 -> g1 first: AP 1, INP 1, trapezoid 1.  q2: id 3 -> no match, skipped. */
static const float dist3x5[15] = {
    0.1f, 0.2f, 0.3f, 0.05f, 0.5f,
    0.4f, 0.0f, 0.3f, 0.2f, 0.1f,
    0.1f, 0.2f, 0.3f, 0.4f, 0.5f,
};
static const int qp[3] = {1, 2, 3}, qc[3] = {1, 1, 1};
static const int gp[5] = {1, 2, 1, -1, 1}, gc[5] = {1, 2, 2, 2, 3};

START_TEST(test_market_protocol)
{
    hcga_eval_result r;
    ck_assert_int_eq(hcga_eval_market(dist3x5, 3, 5, qp, qc, gp, gc, &r), 0);
    ck_assert_int_eq(r.num_query, 3);
    ck_assert_int_eq(r.num_valid, 2);
    ck_assert_double_eq_tol(r.cmc[0], 0.5, 1e-12);
    ck_assert_double_eq_tol(r.cmc[1], 1.0, 1e-12);
    ck_assert_double_eq_tol(r.cmc[9], 1.0, 1e-12);
    ck_assert_double_eq_tol(r.map, (7.0 / 12.0 + 1.0) / 2.0, 1e-12);
    ck_assert_double_eq_tol(r.minp, (2.0 / 3.0 + 1.0) / 2.0, 1e-12);
    ck_assert_double_eq_tol(r.map_trapezoid, (5.0 / 12.0 + 1.0) / 2.0, 1e-12);
}
END_TEST

START_TEST(test_no_valid_query)
{
    const float d[2] = {0.1f, 0.2f};
    const int q[1] = {7}, qcam[1] = {1}, g[2] = {7, 8}, gcam[2] = {1, 2};
    hcga_eval_result r;
    /* the only same-id gallery image shares the camera: junk, so the query is skipped */
    ck_assert_int_eq(hcga_eval_market(d, 1, 2, q, qcam, g, gcam, &r), -1);
    ck_assert_int_eq(r.num_valid, 0);
}
END_TEST

START_TEST(test_ties_stable)
{
    /* equal distances: the lower gallery index ranks first */
    const float d[2] = {0.5f, 0.5f};
    const int q[1] = {1}, qcam[1] = {1}, g[2] = {2, 1}, gcam[2] = {2, 2};
    hcga_eval_result r;
    ck_assert_int_eq(hcga_eval_market(d, 1, 2, q, qcam, g, gcam, &r), 0);
    ck_assert_double_eq_tol(r.cmc[0], 0.0, 1e-12);
    ck_assert_double_eq_tol(r.map, 0.5, 1e-12);
}
END_TEST

START_TEST(test_euclidean)
{
    const float q[2] = {3, 4}, g[4] = {0, 0, 6, 8};
    float d[2];
    hcga_dist_euclidean(q, 1, g, 2, 2, 0, d);
    ck_assert_float_eq_tol(d[0], 25.0f, 1e-5f);
    ck_assert_float_eq_tol(d[1], 25.0f, 1e-5f);
    hcga_dist_euclidean(q, 1, g, 2, 2, 1, d);
    /* normalised: (0.6,0.8) vs zero vector (kept zero) -> 1; vs the same direction -> 0 */
    ck_assert_float_eq_tol(d[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(d[1], 0.0f, 1e-6f);
}
END_TEST

START_TEST(test_arm)
{
    /* d = 2, two parts.  query fore (1,0), parts (1,0),(0,1), visible {1,1}.
     * g0: fore (0,1) -> cos 0 -> 0.5; parts (1,0) cos 1 -> 1, (0,-1) cos -1 -> 0; both visible: s = 1.5
     * g1: fore (1,0) -> 1; part 0 invisible in g1; part 1 (0,1) -> 1: s = 2 */
    const float qf[2] = {1, 0}, qpart[4] = {1, 0, 0, 1};
    const int64_t qv[2] = {1, 1};
    const float gf[4] = {0, 1, 1, 0}, gpart[8] = {1, 0, 0, -1, 5, 5, 0, 2};
    const int64_t gv[4] = {1, 1, 0, 1};
    float d[2];
    hcga_dist_arm(qf, qpart, qv, 1, gf, gpart, gv, 2, 2, 2, d);
    ck_assert_float_eq_tol(d[0], -1.5f, 1e-6f);
    ck_assert_float_eq_tol(d[1], -2.0f, 1e-6f);
}
END_TEST

static void line_dists(const double *pos, int n0, int n1, float *out, int off0, int off1)
{
    for (int i = 0; i < n0; i++)
        for (int j = 0; j < n1; j++) {
            double dd = pos[off0 + i] - pos[off1 + j];
            out[i * n1 + j] = (float)(dd * dd);
        }
}

START_TEST(test_rerank)
{
    /* one query at 0, gallery at 0.1, 10, 10.1 (squared distances) */
    const double pos[4] = {0.0, 0.1, 10.0, 10.1};
    float qg[3], qq[1], gg[9], out[3];
    line_dists(pos, 1, 3, qg, 0, 1);
    line_dists(pos, 1, 1, qq, 0, 0);
    line_dists(pos, 3, 3, gg, 1, 1);
    /* lambda = 1: the column-max-normalised original distance */
    ck_assert_int_eq(hcga_rerank(qg, qq, gg, 1, 3, 1, 1, 1.0, out), 0);
    /* column maxima: g0 (0.1) is farthest from 10.1, g1 (10) from 0, g2 (10.1) from 0 */
    const double colmax[3] = {10.0 * 10.0, 10.0 * 10.0, 10.1 * 10.1};
    for (int j = 0; j < 3; j++)
        ck_assert_double_eq_tol(out[j], qg[j] / colmax[j], 1e-6);
    /* lambda = 0: pure Jaccard; the far cluster shares no reciprocal neighbour -> exactly 1 */
    ck_assert_int_eq(hcga_rerank(qg, qq, gg, 1, 3, 1, 1, 0.0, out), 0);
    ck_assert_float_eq_tol(out[1], 1.0f, 1e-7f);
    ck_assert_float_eq_tol(out[2], 1.0f, 1e-7f);
    ck_assert(out[0] < 0.9f);
    ck_assert(out[0] >= 0.0f);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("eval", &tc);
    HCGA_ADD_TESTS(tc, test_market_protocol, test_no_valid_query, test_ties_stable, test_euclidean, test_arm,
                   test_rerank);
    return hcga_test_run(s);
}
