/*
 * test_loader_caps.c - the loader's view of the optional ABI 1.2 groups
 * (collectives comm_*, graph capture capture_*), against the fake plugins
 * of tests/fake_plugin.c:
 *
 *   fake_caps     both groups: hcga_be_has_* say 1, every wrapper reaches
 *                 the plugin, and a plugin failure comes back as
 *                 "<function>: <last_error>";
 *   fake_v11      built for ABI 1.1 (struct_size ends at supports): reads
 *                 as "no capabilities", although the members beyond
 *                 struct_size are set (to functions that abort);
 *   fake_partial  a capture group without capture_replay: refused with a
 *                 one-line message naming it;
 *   fake_good     a 1.2-sized table with the groups NULL: no capabilities.
 *
 * The expected texts are written from backend.h's contract.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"

#define TESTS_LIBS HCGA_BUILDDIR "/tests/.libs"

static char err[4096];

static hcga_be *open_ok(const char *name)
{
    hcga_be *be = NULL;
    err[0] = '\0';
    int rc = hcga_be_open(name, 0, NULL, &be, err, sizeof err);
    ck_assert_msg(rc == 0, "opening %s failed: %s", name, err);
    ck_assert_ptr_nonnull(be);
    return be;
}

/* Every wrapper of an absent group: HCGA_ERR_UNSUPPORTED, the plugin untouched. */
static void check_no_caps(hcga_be *be, const char *name)
{
    char want[256];
    ck_assert_int_eq(hcga_be_has_comm(be), 0);
    ck_assert_int_eq(hcga_be_has_capture(be), 0);

    unsigned char id[HCGA_COMM_ID_BYTES];
    uint32_t len = 99;
    ck_assert_int_eq(hcga_be_comm_id(be, id, &len), HCGA_ERR_UNSUPPORTED);
    snprintf(want, sizeof want, "%s: no collectives (the plugin has no comm_* functions)", name);
    ck_assert_str_eq(hcga_be_error(be), want);
    ck_assert_int_eq(hcga_be_comm_init(be, id, 6, 0, 1), HCGA_ERR_UNSUPPORTED);
    ck_assert_int_eq(hcga_be_allreduce(be, NULL, HCGA_COMM_SUM), HCGA_ERR_UNSUPPORTED);
    ck_assert_int_eq(hcga_be_broadcast(be, NULL, 0), HCGA_ERR_UNSUPPORTED);
    ck_assert_int_eq(hcga_be_comm_wait(be), HCGA_ERR_UNSUPPORTED);

    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_ERR_UNSUPPORTED);
    snprintf(want, sizeof want, "%s: no graph capture (the plugin has no capture_* functions)", name);
    ck_assert_str_eq(hcga_be_error(be), want);
    hcga_capture *rec = (hcga_capture *)0x1;
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_ERR_UNSUPPORTED);
    ck_assert_ptr_null(rec);
    ck_assert_int_eq(hcga_be_capture_replay(be, (hcga_capture *)0x1), HCGA_ERR_UNSUPPORTED);
    hcga_be_capture_free(be, (hcga_capture *)0x1); /* must not reach the plugin */
}

START_TEST(test_v11_reads_as_none)
{
    hcga_be *be = open_ok("fake_v11");
    check_no_caps(be, "fake_v11");
    hcga_be_close(be);
}
END_TEST

START_TEST(test_null_groups_read_as_none)
{
    hcga_be *be = open_ok("fake_good");
    check_no_caps(be, "fake_good");
    hcga_be_close(be);
}
END_TEST

START_TEST(test_partial_group_refused)
{
    hcga_be *be = (hcga_be *)0x1;
    err[0] = '\0';
    ck_assert_int_ne(hcga_be_open("fake_partial", 0, NULL, &be, err, sizeof err), 0);
    ck_assert_ptr_null(be);
    ck_assert_msg(strchr(err, '\n') == NULL, "not one line: %s", err);
    ck_assert_msg(strstr(err, "incomplete plugin: the graph capture group (capture_*) lacks "
                              "capture_replay (a group is all or none)") != NULL,
                  "unexpected reason: %s", err);

    /* the scan reports it the same way */
    static hcga_plugin_entry e[64];
    int n = hcga_plugins_scan(e, 64), found = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].name, "fake_partial") != 0) continue;
        found = 1;
        ck_assert_int_eq(e[i].ok, 0);
        ck_assert_msg(strstr(e[i].reason, "lacks capture_replay") != NULL, "%s", e[i].reason);
    }
    ck_assert(found);
}
END_TEST

START_TEST(test_caps_collectives)
{
    hcga_be *be = open_ok("fake_caps");
    ck_assert_int_eq(hcga_be_has_comm(be), 1);
    ck_assert_int_eq(hcga_be_has_capture(be), 1);

    unsigned char id[HCGA_COMM_ID_BYTES];
    uint32_t len = 0;
    ck_assert_int_eq(hcga_be_comm_id(be, id, &len), HCGA_OK);
    ck_assert_uint_eq(len, 6);
    ck_assert_int_eq(memcmp(id, "fakeid", 6), 0);
    ck_assert_int_eq(hcga_be_comm_init(be, id, len, 2, 3), HCGA_OK);
    /* the wrapper's own check: rank outside 0..nranks-1 */
    ck_assert_int_eq(hcga_be_comm_init(be, id, len, 3, 3), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "comm_init: rank 3 of 3 is out of range");
    /* the plugin's refusal, through last_error */
    ck_assert_int_eq(hcga_be_comm_init(be, "other!", 6, 0, 3), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "comm_init: fake: not a fake communicator id");

    hcga_buffer *buf = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 16, &buf), HCGA_OK);
    const float x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    ck_assert_int_eq(hcga_be_write(be, buf, 0, x, sizeof x), HCGA_OK);
    int64_t shape[1] = {4};
    hcga_tensor t = hcga_tensor_make(buf, 0, HCGA_F32, 1, shape);
    ck_assert_int_eq(hcga_be_allreduce(be, &t, HCGA_COMM_SUM), HCGA_OK);
    ck_assert_int_eq(hcga_be_allreduce(be, &t, HCGA_COMM_AVG), HCGA_OK);
    ck_assert_int_eq(hcga_be_comm_wait(be), HCGA_OK);
    float y[4];
    ck_assert_int_eq(hcga_be_read(be, buf, 0, y, sizeof y), HCGA_OK);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(y[i], 3.0f * x[i]); /* SUM over 3 equal ranks */

    ck_assert_int_eq(hcga_be_allreduce(be, &t, 7), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "allreduce: fake: unknown comm_op 7");
    ck_assert_int_eq(hcga_be_broadcast(be, &t, 0), HCGA_OK);
    ck_assert_int_eq(hcga_be_broadcast(be, &t, 2), HCGA_ERR_DEVICE);
    ck_assert_str_eq(hcga_be_error(be), "broadcast: fake: root 2 is not rank 0");
    hcga_be_free(be, buf);
    hcga_be_close(be);
}
END_TEST

/* relu_fwd on the fake adds 1 to the first i32 of its output. */
static hcga_status bump(hcga_be *be, const hcga_tensor *out)
{
    hcga_op_args a;
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_RELU_FWD;
    a.num_out = out ? 1 : 0;
    a.out[0] = out;
    return hcga_be_run(be, &a);
}

START_TEST(test_caps_capture)
{
    hcga_be *be = open_ok("fake_caps");
    hcga_buffer *buf = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 4, &buf), HCGA_OK);
    const int32_t zero = 0;
    ck_assert_int_eq(hcga_be_write(be, buf, 0, &zero, 4), HCGA_OK);
    int64_t shape[1] = {1};
    hcga_tensor t = hcga_tensor_make(buf, 0, HCGA_I32, 1, shape);

    hcga_capture *rec = NULL;
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "capture_end: fake: capture_end without capture_begin");
    ck_assert_ptr_null(rec);

    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "capture_begin: fake: already capturing");
    ck_assert_int_eq(bump(be, &t), HCGA_OK);
    ck_assert_int_eq(bump(be, &t), HCGA_OK);
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_OK);
    ck_assert_ptr_nonnull(rec);
    int32_t v = -1;
    ck_assert_int_eq(hcga_be_read(be, buf, 0, &v, 4), HCGA_OK);
    ck_assert_int_eq(v, 0); /* recorded, not run */

    ck_assert_int_eq(hcga_be_capture_replay(be, NULL), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "capture_replay: no recording");
    ck_assert_int_eq(hcga_be_capture_replay(be, rec), HCGA_OK);
    hcga_be_capture_free(be, rec);
    hcga_be_capture_free(be, NULL);
    hcga_be_free(be, buf);
    hcga_be_close(be);
}
END_TEST

static Suite *caps_suite(void)
{
    Suite *s = suite_create("loader_caps");
    TCase *tc = hcga_test_tcase(s, "absent");
    HCGA_ADD_TESTS(tc, test_v11_reads_as_none, test_null_groups_read_as_none,
                   test_partial_group_refused);
    tcase_set_timeout(tc, 120); /* the scan probes every plugin of the build tree */
    tc = hcga_test_tcase(s, "present");
    HCGA_ADD_TESTS(tc, test_caps_collectives, test_caps_capture);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", TESTS_LIBS, 1);
    return hcga_test_run(caps_suite());
}
