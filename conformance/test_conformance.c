/*
 * test_conformance.c - the conformance harness can fail: a backend with
 * planted bugs (conformance/broken_plugin.c, "broken") must be reported
 * failing op by op, its correct ops must pass, and the CPU backend passes.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"
#include "conformance.h"
#include "tests/testutil.h"

#ifndef HCGA_BUILDDIR
#error "HCGA_BUILDDIR must be defined by the build"
#endif

/* The end of a long report, for assertion messages (Check limits their size). */
static const char *tail(const char *text)
{
    size_t n = strlen(text);
    return n > 2500 ? text + n - 2500 : text;
}

/* Run the suite with output captured, in the dtype runs of the mask dtypes;
 * returns the exit code, *text the report. */
static int run_capture_dt(const char *backend, const char *mode, const char *op, int dtypes,
                          char **text)
{
    conf_opts o;
    hcga_conformance_default_opts(&o);
    o.backend = backend;
    o.quick = 1;
    o.dtypes = dtypes;
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

static int run_capture(const char *backend, const char *mode, const char *op, char **text)
{
    return run_capture_dt(backend, mode, op, 1 << HCGA_F32, text);
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

/* ---- mixed precision (ABI 1.1) ---------------------------------------- */

START_TEST(half_runs_pass_on_cpu)
{
    static const int dts[] = {HCGA_BF16, HCGA_F16};
    for (int i = 0; i < 2; i++) {
        char *text = NULL;
        int rc = run_capture_dt("cpu", "test", NULL, 1 << dts[i], &text);
        ck_assert_msg(rc == CONF_EXIT_PASS, "%s:\n%s", hcga_dtype_name(dts[i]), tail(text));
        /* only the ops with half support ran, every cast bit for bit */
        ck_assert_msg(strstr(text, "not applicable (ops without half support"), "%s", tail(text));
        ck_assert_msg(strstr(text, "conv2d_bwd_filter") && strstr(text, "gemm") &&
                          strstr(text, "| y exact 32/32"), "%s", tail(text));
        ck_assert_msg(!strstr(text, "relu_fwd") && !strstr(text, "SKIP"), "%s", tail(text));
        ck_assert_msg(strstr(text, "skipped 0"), "%s", tail(text));
        free(text);
    }
}
END_TEST

START_TEST(truncating_cast_fails)
{
    /* the broken CAST truncates when it narrows to bf16: the random, tie and
     * special cases fail; widening casts pass */
    char *text = NULL;
    int rc = run_capture_dt("broken", "test", "cast", 1 << HCGA_BF16, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL, "%s", tail(text));
    ck_assert_msg(strstr(text, "values are not the correctly rounded bf16 (nearest, ties to even)"),
                  "%s", tail(text));
    ck_assert_msg(strstr(text, "out=4x8:bf16 gen=ties | y exact 16/32"), "%s", tail(text));
    ck_assert_msg(strstr(text, "expected inf (0x7f80)"), "%s", tail(text));
    ck_assert_msg(strstr(text, "PASS  quick.txt#71 bf16      cast bf16 in=4x5 out=4x5:f32"),
                  "%s", tail(text));
    ck_assert_msg(strstr(text, "--op cast --case ") && strstr(text, "--dtype bf16"), "%s",
                  tail(text));
    free(text);
    rc = run_capture_dt("broken", "test", "cast", 1 << HCGA_F16, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL && strstr(text, "correctly rounded f16"), "%s", tail(text));
    free(text);
    /* its f32 <-> f64 casts are right (the control), bad calls refused */
    rc = run_capture_dt("broken", "test", "cast", (1 << HCGA_F32) | (1 << HCGA_F64), &text);
    ck_assert_msg(rc == CONF_EXIT_PASS && strstr(text, "rejects bad calls"), "%s", tail(text));
    free(text);
}
END_TEST

START_TEST(half_unsupported_bf16_fails_f16_skips)
{
    /* the broken conv has no half form: a failure at bf16 (mandatory) ... */
    char *text = NULL;
    int rc = run_capture_dt("broken", "test", "conv2d_fwd", 1 << HCGA_BF16, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL, "%s", tail(text));
    ck_assert_msg(strstr(text, "conv2d_fwd: bf16 is not supported by backend 'broken' (mandatory"),
                  "%s", tail(text));
    free(text);
    /* ... a skip with the reason at f16 on a backend other than the CPU */
    rc = run_capture_dt("broken", "test", "conv2d_fwd", 1 << HCGA_F16, &text);
    ck_assert_msg(rc == CONF_EXIT_PASS, "%s", tail(text));
    ck_assert_msg(strstr(text, "SKIP  quick.txt#0 f16") && strstr(text, "f16 is optional") &&
                      strstr(text, "failed 0, skipped 5"), "%s", tail(text));
    free(text);
    /* gemm is missing altogether */
    rc = run_capture_dt("broken", "test", "gemm", 1 << HCGA_BF16, &text);
    ck_assert_msg(rc == CONF_EXIT_FAIL && strstr(text, "gemm: op is not supported"), "%s",
                  tail(text));
    free(text);
}
END_TEST

START_TEST(abi_1_0_backend_skips_half)
{
    /* the broken plugin seen as an ABI 1.0 one (41 ops, minor 0) */
    hcga_be *be = NULL;
    char err[512];
    ck_assert_msg(hcga_be_open("broken", 0, NULL, &be, err, sizeof err) == 0, "%s", err);
    hcga_be *ref = NULL;
    ck_assert_msg(hcga_be_open("cpu", 0, NULL, &ref, err, sizeof err) == 0, "%s", err);
    const hcga_plugin_descriptor *real = be->desc;
    hcga_plugin_descriptor old = *real;
    old.abi_minor = 0;
    old.num_ops = HCGA_OP_CAST;
    be->desc = &old;
    conf_opts o;
    hcga_conformance_default_opts(&o);
    o.backend = "broken";
    conf_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.dut = be;
    r.ref = ref;
    char *text = NULL;
    size_t len = 0;
    r.out = open_memstream(&text, &len);
    conf_loaded_case lc = {.file = "inline", .index = 0};
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=4 out=4:f64", &lc.c, err, sizeof err), 1);
    int cast = conf_test_case(&r, &lc, HCGA_F32);
    ck_assert_int_eq(hcga_shapefile_parse_line("conv2d_fwd f32 in=1x2x3x3,2x2x1x1,- out=1x2x3x3",
                                               &lc.c, err, sizeof err), 1);
    int conv = conf_test_case(&r, &lc, HCGA_BF16);
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_bwd f32 in=3x4,3x4 out=3x4", &lc.c, err,
                                               sizeof err), 1);
    int relu = conf_test_case(&r, &lc, HCGA_F32);
    fclose(r.out);
    be->desc = real;
    ck_assert_msg(cast == -1 && conv == -1, "%s", tail(text));
    ck_assert_msg(relu == 1, "%s", tail(text));
    ck_assert_msg(strstr(text, "ABI 1.0: no half support"), "%s", tail(text));
    free(text);
    hcga_be_close(ref);
    hcga_be_close(be);
}
END_TEST

/* The generated CAST inputs are what the shape files promise. */
START_TEST(cast_inputs_tie_overflow_and_subnormal)
{
    char err[512];
    hcga_shape_case c;
    conf_case cc;
    static const char *const outs[] = {"bf16", "f16"};
    for (int o = 0; o < 2; o++) {
        char line[128];
        snprintf(line, sizeof line, "cast f32 in=64 out=64:%s gen=ties", outs[o]);
        ck_assert_int_eq(hcga_shapefile_parse_line(line, &c, err, sizeof err), 1);
        ck_assert_msg(conf_case_make(&cc, &c, c.out[0].dtype, 7, CONF_GEN_TEST, err, sizeof err) == 0,
                      "%s", err);
        const int dout = c.out[0].dtype;
        int up = 0, down = 0;
        for (int64_t i = 0; i < 64; i++) {
            const double v = cc.in[0].host[i], r = conf_round_dtype(dout, v), other = 2 * v - r;
            ck_assert_msg(conf_round_dtype(HCGA_F32, v) == v, "%a not an f32", v);
            /* halfway: the other neighbour is as far on the other side */
            ck_assert_msg(r != v && conf_round_dtype(dout, other) == other, "%a is no %s tie", v,
                          outs[o]);
            if (fabs(r) > fabs(v)) up++;
            else down++;
        }
        ck_assert_msg(up >= 16 && down >= 16, "%s ties: %d up, %d down", outs[o], up, down);
        conf_case_free(&cc);
    }
    /* f64 -> bf16: near ties that a cast through f32 rounds wrongly */
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f64 in=32 out=32:bf16 gen=ties", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(conf_case_make(&cc, &c, HCGA_BF16, 7, CONF_GEN_TEST, err, sizeof err), 0);
    int twice = 0;
    for (int64_t i = 0; i < 32; i++) {
        const double v = cc.in[0].host[i];
        twice += conf_round_dtype(HCGA_BF16, conf_round_dtype(HCGA_F32, v)) !=
                 conf_round_dtype(HCGA_BF16, v);
    }
    ck_assert_msg(twice >= 4, "%d double-rounding traps", twice);
    conf_case_free(&cc);
    /* bf16 -> f16: ties exist only among f16's subnormals, and are found */
    ck_assert_int_eq(hcga_shapefile_parse_line("cast bf16 in=16 out=16:f16 gen=ties", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(conf_case_make(&cc, &c, HCGA_F16, 7, CONF_GEN_TEST, err, sizeof err), 0);
    for (int64_t i = 0; i < 16; i++) {
        const double v = cc.in[0].host[i], r = conf_round_dtype(HCGA_F16, v);
        ck_assert_msg(r != v && conf_round_dtype(HCGA_F16, 2 * v - r) == 2 * v - r &&
                          fabs(v) < 0x1p-14, "%a", v);
    }
    conf_case_free(&cc);
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=32 out=32:f16 gen=special", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(conf_case_make(&cc, &c, HCGA_F16, 7, CONF_GEN_TEST, err, sizeof err), 0);
    int nan = 0, inf = 0, negzero = 0, overflow = 0, sub = 0;
    for (int64_t i = 0; i < 32; i++) {
        const double v = cc.in[0].host[i], r = conf_round_dtype(HCGA_F16, v);
        nan += isnan(v) != 0;
        inf += isinf(v) != 0;
        negzero += v == 0 && signbit(v);
        overflow += isfinite(v) && isinf(r);
        sub += r != 0 && fabs(r) < 0x1p-14;
    }
    ck_assert_msg(nan >= 2 && inf >= 2 && negzero >= 1 && overflow >= 3 && sub >= 4,
                  "nan %d inf %d -0 %d overflow %d subnormal %d", nan, inf, negzero, overflow, sub);
    conf_case_free(&cc);
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=64 out=64:f16 gen=subnormal", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(conf_case_make(&cc, &c, HCGA_F16, 7, CONF_GEN_TEST, err, sizeof err), 0);
    sub = 0;
    for (int64_t i = 0; i < 64; i++) {
        const double r = conf_round_dtype(HCGA_F16, cc.in[0].host[i]);
        sub += r != 0 && fabs(r) < 0x1p-14;
    }
    ck_assert_msg(sub >= 32, "%d of 64 f16 subnormals", sub);
    conf_case_free(&cc);
    /* an unknown variant is an error */
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=4 out=4:f16 gen=one_class", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(conf_case_make(&cc, &c, HCGA_F16, 7, CONF_GEN_TEST, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "gen=one_class is not a variant of cast"));
}
END_TEST

/* The half tolerances: the F32 class plus one output rounding. */
START_TEST(half_tolerances)
{
    conf_tol t = conf_op_tol(HCGA_OP_GEMM, HCGA_BF16);
    const double u = 0x1p-8, c = sqrt(1e-7), s = c + u * (1 + c);
    ck_assert(fabs(t.nmse - s * s) < 1e-12 && fabs(t.maxerr - (1e-3 + u * (1 + 1e-3))) < 1e-12);
    ck_assert(!t.exact);
    conf_tol f = conf_op_tol(HCGA_OP_CONV2D_FWD, HCGA_F16);
    ck_assert(f.nmse < t.nmse / 20 && f.maxerr < t.maxerr / 3 && f.nmse > 1e-7);
    ck_assert(conf_op_tol(HCGA_OP_CAST, HCGA_BF16).exact && conf_op_tol(HCGA_OP_CAST, HCGA_F32).exact);
    /* f32 / f64 unchanged */
    ck_assert(conf_op_tol(HCGA_OP_GEMM, HCGA_F32).nmse == 1e-7);
    ck_assert(conf_op_tol(HCGA_OP_RELU_FWD, HCGA_F64).maxerr < 1e-11);
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
    TCase *tc;
    Suite *s = hcga_test_suite("conformance", &tc);
    tcase_set_timeout(tc, 300);
    HCGA_ADD_TESTS(tc, unwritten_element_fails, write_past_end_fails, write_before_start_fails,
                   conv_off_by_one_fails, approximate_exp_fails, missing_op_is_unsupported_failure,
                   accepting_bad_calls_fails, correct_ops_pass, wrong_gradient_fails_test_and_grad,
                   cpu_passes_quick, badargs_cpu_passes_broken_fails, half_runs_pass_on_cpu,
                   truncating_cast_fails, half_unsupported_bf16_fails_f16_skips, abi_1_0_backend_skips_half,
                   cast_inputs_tie_overflow_and_subnormal, half_tolerances, setup_errors);
    return hcga_test_run(s);
}
