/*
 * testutil_be.c - the part of the test support (testutil.h) that opens a
 * backend through libhcga's loader.  Kept apart from testutil.c so that the
 * tests which do not link libhcga (test_cli, the conformance tests) can still
 * link the support library: this object is taken from the archive only by a
 * test that calls hcga_test_open_cpu or the hcga_test_cbr_* sequence.
 */
#include "testutil.h"

#include <string.h>

#include "backend/backend.h"

hcga_be *hcga_test_open_cpu(void)
{
    char err[1024] = "";
    hcga_be *be = NULL;
    int rc = hcga_be_open("cpu", 0, "threads=1", &be, err, sizeof err);
    ck_assert_msg(rc == 0 && be, "cannot open the cpu backend: %s", err);
    return be;
}

/* ---- the conv + bn + relu sequence of the capture tests ---- */

enum { CBR_N = 2, CBR_C = 3, CBR_H = 6, CBR_W = 6, CBR_K = HCGA_CBR_K };

static hcga_buffer *cbr_alloc(hcga_be *be, int n)
{
    hcga_buffer *b = NULL;
    ck_assert_msg(hcga_be_alloc(be, (uint64_t)n * 4, &b) == HCGA_OK, "%s", hcga_be_error(be));
    return b;
}

static void cbr_write(hcga_be *be, hcga_buffer *b, const float *v, int n)
{
    ck_assert_msg(hcga_be_write(be, b, 0, v, (uint64_t)n * 4) == HCGA_OK, "%s", hcga_be_error(be));
}

static void cbr_random(hcga_be *be, hcga_buffer *b, int n, uint64_t seed)
{
    float v[CBR_K * CBR_C * 9];
    uint64_t s = seed;
    for (int i = 0; i < n; i++) v[i] = (float)hcga_test_urand_pm1(&s);
    cbr_write(be, b, v, n);
}

void hcga_test_cbr_alloc(hcga_be *be, hcga_test_cbr *q)
{
    q->x = cbr_alloc(be, HCGA_CBR_XN);
    q->w = cbr_alloc(be, CBR_K * CBR_C * 9);
    q->y = cbr_alloc(be, HCGA_CBR_ZN);
    q->n = cbr_alloc(be, HCGA_CBR_ZN);
    q->gamma = cbr_alloc(be, CBR_K);
    q->beta = cbr_alloc(be, CBR_K);
    q->mean = cbr_alloc(be, CBR_K);
    q->invstd = cbr_alloc(be, CBR_K);
    q->rmean = cbr_alloc(be, CBR_K);
    q->rvar = cbr_alloc(be, CBR_K);
    q->z = cbr_alloc(be, HCGA_CBR_ZN);
    cbr_random(be, q->w, CBR_K * CBR_C * 9, 11);
    cbr_random(be, q->gamma, CBR_K, 12);
    cbr_random(be, q->beta, CBR_K, 13);
}

void hcga_test_cbr_free(hcga_be *be, hcga_test_cbr *q)
{
    hcga_buffer *all[] = {q->x, q->w, q->y, q->n, q->gamma, q->beta, q->mean, q->invstd, q->rmean, q->rvar, q->z};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) hcga_be_free(be, all[i]);
}

void hcga_test_cbr_input(hcga_be *be, const hcga_test_cbr *q, const float *x)
{
    static float s[HCGA_CBR_ZN];
    const float zero[CBR_K] = {0}, one[CBR_K] = {1, 1, 1, 1};
    for (int i = 0; i < HCGA_CBR_ZN; i++) s[i] = -12345.0f;
    cbr_write(be, q->x, x, HCGA_CBR_XN);
    cbr_write(be, q->rmean, zero, CBR_K);
    cbr_write(be, q->rvar, one, CBR_K);
    cbr_write(be, q->z, s, HCGA_CBR_ZN);
}

void hcga_test_cbr_issue(hcga_be *be, const hcga_test_cbr *q)
{
    const int64_t xs[4] = {CBR_N, CBR_C, CBR_H, CBR_W}, ws[4] = {CBR_K, CBR_C, 3, 3},
                  ys[4] = {CBR_N, CBR_K, CBR_H, CBR_W}, cs[1] = {CBR_K};
    hcga_tensor x = hcga_tensor_make(q->x, 0, HCGA_F32, 4, xs);
    hcga_tensor w = hcga_tensor_make(q->w, 0, HCGA_F32, 4, ws);
    hcga_tensor y = hcga_tensor_make(q->y, 0, HCGA_F32, 4, ys);
    hcga_tensor n = hcga_tensor_make(q->n, 0, HCGA_F32, 4, ys);
    hcga_tensor z = hcga_tensor_make(q->z, 0, HCGA_F32, 4, ys);
    hcga_tensor g = hcga_tensor_make(q->gamma, 0, HCGA_F32, 1, cs);
    hcga_tensor b = hcga_tensor_make(q->beta, 0, HCGA_F32, 1, cs);
    hcga_tensor m = hcga_tensor_make(q->mean, 0, HCGA_F32, 1, cs);
    hcga_tensor is = hcga_tensor_make(q->invstd, 0, HCGA_F32, 1, cs);
    hcga_tensor rm = hcga_tensor_make(q->rmean, 0, HCGA_F32, 1, cs);
    hcga_tensor rv = hcga_tensor_make(q->rvar, 0, HCGA_F32, 1, cs);

    hcga_op_args a;
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_CONV2D_FWD;
    a.num_in = 2;
    a.num_out = 1;
    a.in[0] = &x;
    a.in[1] = &w;
    a.out[0] = &y;
    a.p.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    ck_assert_msg(hcga_be_run(be, &a) == HCGA_OK, "%s", hcga_be_error(be));
    memset(&x, 0xAB, sizeof x);
    memset(&w, 0xAB, sizeof w);

    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_BN_FWD_TRAIN;
    a.num_in = 3;
    a.num_out = 5;
    a.in[0] = &y;
    a.in[1] = &g;
    a.in[2] = &b;
    a.out[0] = &n;
    a.out[1] = &m;
    a.out[2] = &is;
    a.out[3] = &rm;
    a.out[4] = &rv;
    a.p.bn.eps = 1e-5;
    a.p.bn.momentum = 0.1;
    ck_assert_msg(hcga_be_run(be, &a) == HCGA_OK, "%s", hcga_be_error(be));
    memset(&g, 0xCD, sizeof g);
    memset(&y, 0xCD, sizeof y);

    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_RELU_FWD;
    a.num_in = 1;
    a.num_out = 1;
    a.in[0] = &n;
    a.out[0] = &z;
    ck_assert_msg(hcga_be_run(be, &a) == HCGA_OK, "%s", hcga_be_error(be));
    memset(&n, 0xEF, sizeof n);
    memset(&z, 0xEF, sizeof z);
}

void hcga_test_cbr_read(hcga_be *be, const hcga_test_cbr *q, hcga_test_cbr_out *o)
{
    ck_assert_int_eq(hcga_be_read(be, q->z, 0, o->z, sizeof o->z), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->mean, 0, o->mean, sizeof o->mean), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->invstd, 0, o->invstd, sizeof o->invstd), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->rmean, 0, o->rmean, sizeof o->rmean), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->rvar, 0, o->rvar, sizeof o->rvar), HCGA_OK);
}
