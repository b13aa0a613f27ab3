/*
 * test_conformance.c - the conformance harness can fail: a backend with
 * planted bugs (conformance/broken_plugin.c, "broken") must be reported
 * failing op by op, its correct ops must pass, and the CPU backend passes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"
#include "conformance.h"

#ifndef HCGA_BUILDDIR
#error "HCGA_BUILDDIR must be defined by the build"
#endif

/* The end of a long report, for assertion messages (Check limits their size). */
static const char *tail(const char *text)
{
    size_t n = strlen(text);
    return n > 2500 ? text + n - 2500 : text;
}

/* Run the suite with output captured; returns the exit code, *text the report. */
static int run_capture(const char *backend, const char *mode, const char *op, char **text)
{
    conf_opts o;
    hcga_conformance_default_opts(&o);
    o.backend = backend;
    o.quick = 1;
    if (op) {
        o.op = hcga_op_from_name(op);
        ck_assert_int_ge(o.op, 0);
    }
    if (strcmp(mode, "grad") == 0) o.mode = CONF_MODE_GRAD;
    if (strcmp(mode, "perf") == 0) o.mode = CONF_MODE_PERF;
    if (strcmp(mode, "badargs") == 0) o.mode = CONF_MODE_BADARGS;
    size_t len = 0;
    FILE *f = open_memstream(text, &len);
    ck_assert_ptr_nonnull(f);
    o.out = f;
    int rc = hcga_conformance_run(&o);
    fclose(f);
    return rc;
}

static void expect_fail(const char *op, const char *needle)
{
    char *text = NULL;
    int rc = run_capture("broken", "test", op, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL, "%s: exit %d, expected failure:\n%s", op, rc, tail(text));
    ck_assert_msg(strstr(text, needle) != NULL, "%s: '%s' not in the report:\n%s", op, needle, tail(text));
    /* every failure carries a repro line naming the op, the file and the seed */
    char repro[256];
    snprintf(repro, sizeof repro, "conformance --mode test --shapes ");
    ck_assert_msg(strstr(text, "repro: hcga --backend broken") && strstr(text, repro),
                  "no repro line:\n%s", tail(text));
    snprintf(repro, sizeof repro, "--op %s --case ", op);
    ck_assert_msg(strstr(text, repro) && strstr(text, "--seed 1 --dtype f32"), "repro:\n%s", tail(text));
    ck_assert_msg(strstr(text, "CONFORMANCE FAILED") != NULL, "%s", tail(text));
    free(text);
}

START_TEST(unwritten_element_fails)
{
    expect_fail("relu_fwd", "1 of 120 elements not written");
}
END_TEST

START_TEST(write_past_end_fails)
{
    expect_fail("sigmoid_fwd", "past its last element (guard)");
}
END_TEST

START_TEST(write_before_start_fails)
{
    expect_fail("gap_fwd", "before its first element (guard)");
}
END_TEST

START_TEST(conv_off_by_one_fails)
{
    /* the planted bug skips the last filter column: 3x3 cases fail, and
     * the 1x1 cases, unaffected, pass */
    char *text = NULL;
    int rc = run_capture("broken", "test", "conv2d_fwd", &text);
    ck_assert_int_eq(rc, CONF_EXIT_FAIL);
    ck_assert_msg(strstr(text, "FAIL  quick.txt#0 ") && strstr(text, "FAIL  quick.txt#1 "), "%s", tail(text));
    ck_assert_msg(strstr(text, "PASS  quick.txt#2 ") && strstr(text, "PASS  quick.txt#3 "), "%s", tail(text));
    ck_assert_msg(strstr(text, "nmse") && strstr(text, ">1e-07"), "%s", tail(text));
    free(text);
}
END_TEST

START_TEST(approximate_exp_fails)
{
    expect_fail("softmax_fwd", ">1e-09");
}
END_TEST

START_TEST(missing_op_is_unsupported_failure)
{
    expect_fail("thresh_fwd", "is not supported by backend 'broken' (mandatory op)");
    expect_fail("bn_bwd", "is not supported");
}
END_TEST

START_TEST(accepting_bad_calls_fails)
{
    expect_fail("gap_bwd", "accepted a call with out[0] of dtype u8");
    expect_fail("gap_bwd", "accepted a call with num_in = 0");
}
END_TEST

START_TEST(correct_ops_pass)
{
    const char *ops[] = {"relu_bwd", "sigmoid_bwd", "reduce"};
    for (int i = 0; i < 3; i++) {
        char *text = NULL;
        int rc = run_capture("broken", "test", ops[i], &text);
        ck_assert_msg(rc == CONF_EXIT_PASS, "%s: exit %d\n%s", ops[i], rc, tail(text));
        ck_assert_ptr_nonnull(strstr(text, "CONFORMANCE PASSED"));
        ck_assert_ptr_nonnull(strstr(text, "rejects bad calls"));
        free(text);
    }
}
END_TEST

START_TEST(wrong_gradient_fails_test_and_grad)
{
    /* vs the reference (test mode, and grad mode on a non-CPU backend) */
    char *text = NULL;
    int rc = run_capture("broken", "grad", "reduce_bwd", &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL, "%s", tail(text));
    ck_assert_ptr_nonnull(strstr(text, "--mode test"));
    free(text);

    /* finite differences: the broken reduce_bwd against its forward op */
    hcga_be *be = NULL;
    char err[512];
    ck_assert_msg(hcga_be_open("broken", 0, NULL, &be, err, sizeof err) == 0, "%s", err);
    conf_opts o;
    hcga_conformance_default_opts(&o);
    o.backend = "broken";
    o.quick = 1;
    conf_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.dut = be;
    size_t len = 0;
    r.out = open_memstream(&text, &len);
    conf_loaded_case lc = {.file = "inline", .index = 0};
    ck_assert_int_eq(hcga_shapefile_parse_line("reduce f64 in=3x7 out=1 kind=sum", &lc.c, err,
                                               sizeof err), 1);
    int fails = conf_grad_case(&r, &lc);
    ck_assert_int_eq(hcga_shapefile_parse_line("reduce f64 in=3x7 out=1 kind=mean", &lc.c, err,
                                               sizeof err), 1);
    int passes = conf_grad_case(&r, &lc);
    ck_assert_int_eq(hcga_shapefile_parse_line("sigmoid_fwd f64 in=2x5 out=2x5", &lc.c, err,
                                               sizeof err), 1);
    int passes2 = conf_grad_case(&r, &lc);
    fclose(r.out);
    ck_assert_msg(fails == 0, "%s", tail(text));
    ck_assert_msg(passes == 1 && passes2 == 1, "%s", tail(text));
    ck_assert_msg(strstr(text, "analytic") && strstr(text, "numeric"), "%s", tail(text));
    free(text);
    hcga_be_close(be);
}
END_TEST

START_TEST(cpu_passes_quick)
{
    char *text = NULL;
    int rc = run_capture("cpu", "test", NULL, &text);
    ck_assert_msg(rc == CONF_EXIT_PASS, "%s", tail(text));
    free(text);
    rc = run_capture("cpu", "grad", NULL, &text);
    ck_assert_msg(rc == CONF_EXIT_PASS, "%s", tail(text));
    free(text);
}
END_TEST

/* Badargs mode: the CPU refuses every malformed call (against itself as
 * the reference); the broken backend fails it three ways: gap_bwd accepts
 * its bad call, relu_bwd-style own checks word their refusal differently,
 * and most ops are missing. */
START_TEST(badargs_cpu_passes_broken_fails)
{
    char *text = NULL;
    int rc = run_capture("cpu", "badargs", NULL, &text);
    ck_assert_msg(rc == CONF_EXIT_PASS, "%s", tail(text));
    char want[64];
    snprintf(want, sizeof want, "cases %d, passed %d, failed 0", conf_badargs_count(),
             conf_badargs_count());
    ck_assert_msg(strstr(text, want) != NULL, "%s", tail(text));
    ck_assert_ptr_nonnull(strstr(text, "upsample_nearest_fwd: "));
    free(text);
    rc = run_capture("broken", "badargs", NULL, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL, "%s", tail(text));
    ck_assert_msg(strstr(text, "gap_bwd output of the wrong shape") &&
                      strstr(text, "accepted (expected HCGA_ERR_INVALID: gap_bwd: "),
                  "%s", tail(text));
    ck_assert_msg(strstr(text, "message differs"), "%s", tail(text));
    ck_assert_msg(strstr(text, "(mandatory op)"), "%s", tail(text));
    ck_assert_ptr_nonnull(strstr(text, "CONFORMANCE FAILED"));
    free(text);
}
END_TEST

START_TEST(setup_errors)
{
    conf_opts o;
    hcga_conformance_default_opts(&o);
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.backend = "no_such_backend";
    o.quick = 1;
    ck_assert_int_eq(hcga_conformance_run(&o), CONF_EXIT_USAGE);
    o.skip_unavailable = 1;
    ck_assert_int_eq(hcga_conformance_run(&o), CONF_EXIT_SKIP);
    o.backend = "cpu";
    o.shapes = "/nonexistent/shapes.txt";
    ck_assert_int_eq(hcga_conformance_run(&o), CONF_EXIT_USAGE);
    fclose(o.out);
    free(text);
    char path[4096];
    ck_assert_int_eq(hcga_conformance_find_shapes("quick.txt", path, sizeof path), 0);
    ck_assert_ptr_nonnull(strstr(path, "conformance/shapes/quick.txt"));
}
END_TEST

int main(void)
{
    /* the broken plugin is built next to this test, in conformance/.libs */
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/conformance/.libs", 1);
    Suite *s = suite_create("conformance");
    TCase *tc = tcase_create("harness");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, unwritten_element_fails);
    tcase_add_test(tc, write_past_end_fails);
    tcase_add_test(tc, write_before_start_fails);
    tcase_add_test(tc, conv_off_by_one_fails);
    tcase_add_test(tc, approximate_exp_fails);
    tcase_add_test(tc, missing_op_is_unsupported_failure);
    tcase_add_test(tc, accepting_bad_calls_fails);
    tcase_add_test(tc, correct_ops_pass);
    tcase_add_test(tc, wrong_gradient_fails_test_and_grad);
    tcase_add_test(tc, cpu_passes_quick);
    tcase_add_test(tc, badargs_cpu_passes_broken_fails);
    tcase_add_test(tc, setup_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
