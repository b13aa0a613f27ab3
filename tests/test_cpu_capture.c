/*
 * test_cpu_capture.c - the cpu backend's reference graph capture (ABI 1.2),
 * through the frontend's wrappers (hcga_be_capture_*):
 *
 *   - a conv2d_fwd + bn_fwd_train + relu_fwd sequence recorded once and
 *     replayed twice, with a new input written before each replay, gives
 *     the same bits as running the three ops directly on that input;
 *   - recording runs nothing (the outputs keep their sentinel), and the
 *     descriptors are deep-copied (the caller's are overwritten after
 *     each call);
 *   - buffer alloc/read/write and synchronize are refused while capturing,
 *     a malformed call fails at once with the contract checker's message
 *     and then capture_end fails (no recording lacks a call), after which
 *     the backend captures again; a second capture_begin or a capture_end
 *     without begin fails.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"

enum { N = 2, C = 3, H = 6, W = 6, K = 4 };
#define XN (N * C * H * W)
#define YN (N * K * H * W)

typedef struct seq {
    hcga_buffer *x, *w, *y, *gamma, *beta, *mean, *invstd, *rmean, *rvar, *z;
} seq;

static hcga_buffer *alloc_f32(hcga_be *be, int n)
{
    hcga_buffer *b = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, (uint64_t)n * 4, &b), HCGA_OK);
    return b;
}

static void write_f32(hcga_be *be, hcga_buffer *b, const float *v, int n)
{
    ck_assert_int_eq(hcga_be_write(be, b, 0, v, (uint64_t)n * 4), HCGA_OK);
}

static void fill_random(float *v, int n, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < n; i++) v[i] = (float)hcga_test_urand_pm1(&s);
}

static void seq_alloc(hcga_be *be, seq *q)
{
    q->x = alloc_f32(be, XN);
    q->w = alloc_f32(be, K * C * 9);
    q->y = alloc_f32(be, YN);
    q->gamma = alloc_f32(be, K);
    q->beta = alloc_f32(be, K);
    q->mean = alloc_f32(be, K);
    q->invstd = alloc_f32(be, K);
    q->rmean = alloc_f32(be, K);
    q->rvar = alloc_f32(be, K);
    q->z = alloc_f32(be, YN);
    float wv[K * C * 9], g[K], b[K];
    fill_random(wv, K * C * 9, 11);
    fill_random(g, K, 12);
    fill_random(b, K, 13);
    write_f32(be, q->w, wv, K * C * 9);
    write_f32(be, q->gamma, g, K);
    write_f32(be, q->beta, b, K);
}

static void seq_free(hcga_be *be, seq *q)
{
    hcga_buffer *all[] = {q->x, q->w, q->y, q->gamma, q->beta, q->mean, q->invstd, q->rmean, q->rvar, q->z};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) hcga_be_free(be, all[i]);
}

/* The running statistics bn_fwd_train updates in place: reset before each
 * run so that every run starts from the same state. */
static void reset_running(hcga_be *be, const seq *q)
{
    const float zero[K] = {0}, one[K] = {1, 1, 1, 1};
    write_f32(be, q->rmean, zero, K);
    write_f32(be, q->rvar, one, K);
}

/* Issue the three ops.  The descriptors live on this function's stack and
 * are scribbled over after each call: a recording must have copied them. */
static void seq_issue(hcga_be *be, const seq *q)
{
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {K, C, 3, 3}, ys[4] = {N, K, H, W}, cs[1] = {K};
    hcga_tensor x = hcga_tensor_make(q->x, 0, HCGA_F32, 4, xs);
    hcga_tensor w = hcga_tensor_make(q->w, 0, HCGA_F32, 4, ws);
    hcga_tensor y = hcga_tensor_make(q->y, 0, HCGA_F32, 4, ys);
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
    a.out[0] = &y; /* in place, as the frontend does for conv+bn */
    a.out[1] = &m;
    a.out[2] = &is;
    a.out[3] = &rm;
    a.out[4] = &rv;
    a.p.bn.eps = 1e-5;
    a.p.bn.momentum = 0.1;
    ck_assert_msg(hcga_be_run(be, &a) == HCGA_OK, "%s", hcga_be_error(be));
    memset(&g, 0xCD, sizeof g);

    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_RELU_FWD;
    a.num_in = 1;
    a.num_out = 1;
    a.in[0] = &y;
    a.out[0] = &z;
    ck_assert_msg(hcga_be_run(be, &a) == HCGA_OK, "%s", hcga_be_error(be));
    memset(&y, 0xEF, sizeof y);
    memset(&z, 0xEF, sizeof z);
}

/* Everything the sequence writes, in one array for bitwise comparison. */
typedef struct seq_out {
    float z[YN], mean[K], invstd[K], rmean[K], rvar[K];
} seq_out;

static void seq_read(hcga_be *be, const seq *q, seq_out *o)
{
    ck_assert_int_eq(hcga_be_read(be, q->z, 0, o->z, sizeof o->z), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->mean, 0, o->mean, sizeof o->mean), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->invstd, 0, o->invstd, sizeof o->invstd), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->rmean, 0, o->rmean, sizeof o->rmean), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, q->rvar, 0, o->rvar, sizeof o->rvar), HCGA_OK);
}

static void sentinel(hcga_be *be, const seq *q)
{
    static float s[YN];
    for (int i = 0; i < YN; i++) s[i] = -12345.0f;
    write_f32(be, q->z, s, YN);
}

START_TEST(test_replay_equals_direct)
{
    hcga_be *be = hcga_test_open_cpu();
    ck_assert_int_eq(hcga_be_has_capture(be), 1);
    ck_assert_int_eq(hcga_be_has_comm(be), 0);
    seq q;
    seq_alloc(be, &q);
    static float x1[XN], x2[XN];
    fill_random(x1, XN, 1);
    fill_random(x2, XN, 2);
    static seq_out ref1, ref2, got;

    /* direct runs: the references */
    write_f32(be, q.x, x1, XN);
    reset_running(be, &q);
    seq_issue(be, &q);
    seq_read(be, &q, &ref1);
    write_f32(be, q.x, x2, XN);
    reset_running(be, &q);
    seq_issue(be, &q);
    seq_read(be, &q, &ref2);
    ck_assert_msg(memcmp(&ref1, &ref2, sizeof ref1) != 0, "the two inputs give the same outputs");

    /* record: nothing runs */
    sentinel(be, &q);
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    seq_issue(be, &q);
    hcga_capture *rec = NULL;
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_OK);
    ck_assert_ptr_nonnull(rec);
    float z0;
    ck_assert_int_eq(hcga_be_read(be, q.z, 0, &z0, 4), HCGA_OK);
    ck_assert_float_eq(z0, -12345.0f);

    /* replay on x1, then on x2 */
    write_f32(be, q.x, x1, XN);
    reset_running(be, &q);
    sentinel(be, &q);
    ck_assert_msg(hcga_be_capture_replay(be, rec) == HCGA_OK, "%s", hcga_be_error(be));
    seq_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref1, sizeof got) == 0, "replay 1 differs from the direct run");
    write_f32(be, q.x, x2, XN);
    reset_running(be, &q);
    sentinel(be, &q);
    ck_assert_msg(hcga_be_capture_replay(be, rec) == HCGA_OK, "%s", hcga_be_error(be));
    seq_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref2, sizeof got) == 0, "replay 2 differs from the direct run");

    hcga_be_capture_free(be, rec);
    seq_free(be, &q);
    hcga_be_close(be);
}
END_TEST

START_TEST(test_refused_while_capturing)
{
    hcga_be *be = hcga_test_open_cpu();
    hcga_buffer *b = alloc_f32(be, 4);
    float v[4] = {1, 2, 3, 4};
    hcga_capture *rec = (hcga_capture *)0x1;

    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_ERR_INVALID);
    ck_assert_ptr_null(rec);
    ck_assert_str_eq(hcga_be_error(be), "capture_end: no capture in progress (capture_begin first)");

    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "capture_begin: a capture is already in progress");
    ck_assert_int_eq(hcga_be_write(be, b, 0, v, 16), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be),
                     "buffer_write: not allowed while capturing (between capture_begin and capture_end)");
    ck_assert_int_eq(hcga_be_read(be, b, 0, v, 16), HCGA_ERR_INVALID);
    ck_assert_int_eq(hcga_be_sync(be), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be),
                     "synchronize: not allowed while capturing (between capture_begin and capture_end)");
    hcga_buffer *b2 = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 16, &b2), HCGA_ERR_INVALID);
    ck_assert_ptr_null(b2);

    /* a malformed call fails now, with the checker's message */
    const int64_t s4[1] = {4}, s5[1] = {5};
    hcga_tensor x = hcga_tensor_make(b, 0, HCGA_F32, 1, s4);
    hcga_tensor y = hcga_tensor_make(b, 0, HCGA_F32, 1, s5);
    hcga_op_args a;
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_RELU_FWD;
    a.num_in = 1;
    a.num_out = 1;
    a.in[0] = &x;
    a.out[0] = &y;
    ck_assert_int_ne(hcga_be_run(be, &a), HCGA_OK);
    ck_assert_msg(strncmp(hcga_be_error(be), "relu_fwd: ", 10) == 0, "%s", hcga_be_error(be));
    char bad[512];
    snprintf(bad, sizeof bad, "%s", hcga_be_error(be));
    a.out[0] = &x;
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK); /* a good call after it changes nothing */
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_ERR_INVALID);
    ck_assert_ptr_null(rec);
    char want[1024];
    snprintf(want, sizeof want, "capture_end: an op failed while capturing, no recording: %s", bad);
    ck_assert_str_eq(hcga_be_error(be), want);

    /* the backend is usable again: a good call records; the capture ends and replays */
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(be, b, 0, (float[4]){-1, 2, -3, 4}, 16), HCGA_OK);
    ck_assert_int_eq(hcga_be_capture_replay(be, rec), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, b, 0, v, 16), HCGA_OK);
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_float_eq(v[1], 2.0f);
    ck_assert_float_eq(v[2], 0.0f);
    ck_assert_float_eq(v[3], 4.0f);
    hcga_be_capture_free(be, rec);

    /* a capture left open is released with the backend */
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    hcga_be_free(be, b);
    hcga_be_close(be);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("cpu_capture", &tc);
    HCGA_ADD_TESTS(tc, test_replay_equals_direct, test_refused_while_capturing);
    return hcga_test_run(s);
}
