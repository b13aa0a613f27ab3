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

static void fill_random(float *v, int n, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < n; i++) v[i] = (float)hcga_test_urand_pm1(&s);
}

START_TEST(test_replay_equals_direct)
{
    hcga_be *be = hcga_test_open_cpu();
    ck_assert_int_eq(hcga_be_has_capture(be), 1);
    ck_assert_int_eq(hcga_be_has_comm(be), 0);
    hcga_test_cbr q;
    hcga_test_cbr_alloc(be, &q);
    static float x1[HCGA_CBR_XN], x2[HCGA_CBR_XN];
    fill_random(x1, HCGA_CBR_XN, 1);
    fill_random(x2, HCGA_CBR_XN, 2);
    static hcga_test_cbr_out ref1, ref2, got;

    /* direct runs: the references */
    hcga_test_cbr_input(be, &q, x1);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &ref1);
    hcga_test_cbr_input(be, &q, x2);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &ref2);
    ck_assert_msg(memcmp(&ref1, &ref2, sizeof ref1) != 0, "the two inputs give the same outputs");

    /* record: nothing runs (z keeps the sentinel hcga_test_cbr_input wrote) */
    hcga_test_cbr_input(be, &q, x1);
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    hcga_test_cbr_issue(be, &q);
    hcga_capture *rec = NULL;
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_OK);
    ck_assert_ptr_nonnull(rec);
    float z0;
    ck_assert_int_eq(hcga_be_read(be, q.z, 0, &z0, 4), HCGA_OK);
    ck_assert_float_eq(z0, -12345.0f);

    /* replay on x1, then on x2 */
    hcga_test_cbr_input(be, &q, x1);
    ck_assert_msg(hcga_be_capture_replay(be, rec) == HCGA_OK, "%s", hcga_be_error(be));
    hcga_test_cbr_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref1, sizeof got) == 0, "replay 1 differs from the direct run");
    hcga_test_cbr_input(be, &q, x2);
    ck_assert_msg(hcga_be_capture_replay(be, rec) == HCGA_OK, "%s", hcga_be_error(be));
    hcga_test_cbr_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref2, sizeof got) == 0, "replay 2 differs from the direct run");

    hcga_be_capture_free(be, rec);
    hcga_test_cbr_free(be, &q);
    hcga_be_close(be);
}
END_TEST

START_TEST(test_refused_while_capturing)
{
    hcga_be *be = hcga_test_open_cpu();
    hcga_buffer *b = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 16, &b), HCGA_OK);
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
