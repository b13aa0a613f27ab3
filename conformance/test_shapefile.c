/* Unit tests of the shape-file parser and writer (conformance/shapefile.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shapefile.h"
#include "tests/testutil.h"

START_TEST(parse_conv)
{
    hcga_shape_case c;
    char err[256];
    int r = hcga_shapefile_parse_line(
        "conv2d_fwd f32 in=2x3x256x128,64x3x3x3,- out=2x64x128x64 stride=2,2 pad=1,1  # stem",
        &c, err, sizeof err);
    ck_assert_msg(r == 1, "%s", err);
    ck_assert_int_eq(c.op, HCGA_OP_CONV2D_FWD);
    ck_assert_int_eq(c.dtype, HCGA_F32);
    ck_assert_int_eq(c.num_in, 3);
    ck_assert_int_eq(c.num_out, 1);
    ck_assert_int_eq(c.in[0].ndim, 4);
    ck_assert_int_eq(c.in[0].shape[2], 256);
    ck_assert_int_eq(c.in[0].stride[0], 3 * 256 * 128);
    ck_assert_int_eq(c.in[1].shape[0], 64);
    ck_assert_int_eq(c.in[2].present, 0);
    ck_assert_int_eq(c.out[0].shape[3], 64);
    ck_assert_int_eq(c.p.conv.stride_h, 2);
    ck_assert_int_eq(c.p.conv.stride_w, 2);
    ck_assert_int_eq(c.p.conv.pad_w, 1);
    ck_assert_int_eq(c.p.conv.dilation_h, 1); /* default */
}
END_TEST

START_TEST(index_slots_and_dtypes)
{
    hcga_shape_case c;
    char err[256];
    ck_assert_int_eq(hcga_shapefile_parse_line("triplet_fwd f64 in=8x16,8 out=1,8x2 margin=0.5",
                                               &c, err, sizeof err), 1);
    ck_assert_int_eq(c.in[0].dtype, HCGA_F64);
    ck_assert_int_eq(c.in[1].dtype, HCGA_I64);
    ck_assert_int_eq(c.out[0].dtype, HCGA_F64);
    ck_assert_int_eq(c.out[1].dtype, HCGA_I64);
    ck_assert(c.p.loss.margin == 0.5);
    ck_assert_int_eq(hcga_shapefile_parse_line("copy f32 in=2x3@1x2 out=2x3:f64", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(c.in[0].strided, 1);
    ck_assert_int_eq(c.in[0].stride[0], 1);
    ck_assert_int_eq(c.in[0].stride[1], 2);
    ck_assert_int_eq(c.out[0].dtype, HCGA_F64);
    ck_assert_int_eq(hcga_shapefile_parse_line("fill i64 out=4 value=3", &c, err, sizeof err), 1);
    ck_assert_int_eq(c.num_in, 0);
    ck_assert_int_eq(c.out[0].dtype, HCGA_I64);
    ck_assert_int_eq(hcga_shapefile_parse_line("reduce f32 in=() out=1 kind=abs_mean", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(c.in[0].ndim, 0);
    ck_assert_int_eq(c.p.reduce.kind, HCGA_REDUCE_ABS_MEAN);
}
END_TEST

/* ABI 1.1: half DTYPEs and per-tensor dtypes (CAST's pairs), which the
 * writer prints back only where they differ from DTYPE. */
START_TEST(half_dtypes)
{
    hcga_shape_case c;
    char err[256], out[256];
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=4x5 out=4x5:bf16 gen=ties", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(c.op, HCGA_OP_CAST);
    ck_assert_int_eq(c.in[0].dtype, HCGA_F32);
    ck_assert_int_eq(c.out[0].dtype, HCGA_BF16);
    ck_assert_str_eq(c.gen, "ties");
    hcga_shapefile_format_case(out, sizeof out, &c);
    ck_assert_str_eq(out, "cast f32 in=4x5 out=4x5:bf16 gen=ties");
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f16 in=7:f64 out=7", &c, err, sizeof err), 1);
    ck_assert_int_eq(c.dtype, HCGA_F16);
    ck_assert_int_eq(c.in[0].dtype, HCGA_F64);
    ck_assert_int_eq(c.out[0].dtype, HCGA_F16);
    hcga_shapefile_format_case(out, sizeof out, &c);
    ck_assert_str_eq(out, "cast f16 in=7:f64 out=7");
    ck_assert_int_eq(hcga_shapefile_parse_line("gemm bf16 in=2x3,3x4,- out=2x4", &c, err,
                                               sizeof err), 1);
    ck_assert_int_eq(c.in[0].dtype, HCGA_BF16);
    ck_assert_int_eq(c.out[0].dtype, HCGA_BF16);
    ck_assert_int_eq(c.in[2].present, 0);
    /* an op call with half tensors is written with a half DTYPE */
    int64_t shp[2] = {3, 4};
    hcga_tensor x = {0}, y = {0};
    x.dtype = HCGA_F16;
    y.dtype = HCGA_F32;
    x.ndim = y.ndim = 2;
    for (int d = 0; d < HCGA_MAX_DIMS; d++) x.shape[d] = y.shape[d] = d < 2 ? shp[d] : 1;
    x.stride[0] = y.stride[0] = 4;
    for (int d = 1; d < HCGA_MAX_DIMS; d++) x.stride[d] = y.stride[d] = 1;
    hcga_op_args a = {.op = HCGA_OP_CAST, .num_in = 1, .num_out = 1, .in = {&x}, .out = {&y}};
    hcga_shapefile_format(out, sizeof out, &a);
    ck_assert_str_eq(out, "cast f16 in=3x4 out=3x4:f32");
    ck_assert_int_eq(hcga_shapefile_parse_line(out, &c, err, sizeof err), 1);
    ck_assert_int_eq(c.in[0].dtype, HCGA_F16);
    ck_assert_int_eq(c.out[0].dtype, HCGA_F32);
}
END_TEST

START_TEST(blank_and_errors)
{
    hcga_shape_case c;
    char err[256];
    ck_assert_int_eq(hcga_shapefile_parse_line("   # only a comment\n", &c, err, sizeof err), 0);
    ck_assert_int_eq(hcga_shapefile_parse_line("", &c, err, sizeof err), 0);
    ck_assert_int_eq(hcga_shapefile_parse_line("conv3d f32 out=1", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown op 'conv3d'"));
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_fwd f8 in=2 out=2", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown dtype 'f8'"));
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_fwd", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing dtype (f32, f64, bf16 or f16)"));
    ck_assert_int_eq(hcga_shapefile_parse_line("cast f32 in=2:f8 out=2", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown dtype 'f8'"));
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_fwd f32 in=2x out=2", &c, err, sizeof err), -1);
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_fwd f32 in=2x3", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "out="));
    ck_assert_int_eq(hcga_shapefile_parse_line("relu_fwd f32 in=2 out=2 stride=1,1", &c, err,
                                               sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown parameter 'stride'"));
    ck_assert_int_eq(hcga_shapefile_parse_line("conv2d_fwd f32 in=1x1x3x3,1x1x1x1 out=1x1x3x3 "
                                               "pad=1", &c, err, sizeof err), -1);
    ck_assert_int_eq(hcga_shapefile_parse_line("bn_fwd_train f32 in=2x3,3,3 out=2x3,3,3,3,3 "
                                               "eps=abc", &c, err, sizeof err), -1);
    ck_assert_int_eq(hcga_shapefile_parse_line("copy f32 in=2x3@1 out=2x3", &c, err, sizeof err),
                     -1);
}
END_TEST

/* Writer -> parser -> writer gives the same line, and the fields survive. */
START_TEST(round_trip_args)
{
    int64_t xs[4] = {2, 3, 7, 5}, ws[4] = {4, 3, 3, 3}, ys[4] = {2, 4, 4, 3};
    hcga_tensor x = {0}, w = {0}, y = {0};
    x.dtype = w.dtype = y.dtype = HCGA_F32;
    x.ndim = w.ndim = y.ndim = 4;
    for (int d = 0; d < 4; d++) {
        x.shape[d] = xs[d];
        w.shape[d] = ws[d];
        y.shape[d] = ys[d];
    }
    int64_t s;
    s = 1; for (int d = 3; d >= 0; d--) { x.stride[d] = s; s *= xs[d]; }
    s = 1; for (int d = 3; d >= 0; d--) { w.stride[d] = s; s *= ws[d]; }
    s = 1; for (int d = 3; d >= 0; d--) { y.stride[d] = s; s *= ys[d]; }
    hcga_op_args a = {.op = HCGA_OP_CONV2D_FWD, .num_in = 3, .num_out = 1, .in = {&x, &w, NULL}, .out = {&y}};
    a.p.conv.stride_h = 2; a.p.conv.stride_w = 2;
    a.p.conv.pad_h = 1; a.p.conv.pad_w = 1;
    a.p.conv.dilation_h = 1; a.p.conv.dilation_w = 1;
    char line[512], line2[512], err[256];
    hcga_shapefile_format(line, sizeof line, &a);
    ck_assert_str_eq(line, "conv2d_fwd f32 in=2x3x7x5,4x3x3x3,- out=2x4x4x3 stride=2,2 pad=1,1 "
                           "dilation=1,1");
    hcga_shape_case c;
    ck_assert_int_eq(hcga_shapefile_parse_line(line, &c, err, sizeof err), 1);
    hcga_shapefile_format_case(line2, sizeof line2, &c);
    ck_assert_str_eq(line, line2);

    /* doubles keep their exact value; non-contiguous strides are written */
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_ADAM_STEP;
    a.num_in = 1;
    a.num_out = 3;
    hcga_tensor g = {0};
    g.dtype = HCGA_F64;
    g.ndim = 2;
    g.shape[0] = 3; g.shape[1] = 4;
    g.stride[0] = 4; g.stride[1] = 1;
    a.in[0] = a.out[0] = a.out[1] = a.out[2] = &g;
    a.p.optim.lr = 0.1 + 0.2; /* not representable in %.15g round trip */
    a.p.optim.beta1 = 0.9; a.p.optim.beta2 = 0.999; a.p.optim.eps = 1e-8;
    a.p.optim.weight_decay = 5e-4; a.p.optim.step = 7;
    hcga_shapefile_format(line, sizeof line, &a);
    ck_assert_int_eq(hcga_shapefile_parse_line(line, &c, err, sizeof err), 1);
    ck_assert(c.p.optim.lr == 0.1 + 0.2);
    ck_assert(c.p.optim.weight_decay == 5e-4);
    ck_assert_int_eq(c.p.optim.step, 7);

    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_COPY;
    a.num_in = 1;
    a.num_out = 1;
    hcga_tensor t = g, u = g;
    t.stride[0] = 1; t.stride[1] = 3; /* transposed view */
    u.dtype = HCGA_F32;
    a.in[0] = &t;
    a.out[0] = &u;
    hcga_shapefile_format(line, sizeof line, &a);
    ck_assert_str_eq(line, "copy f64 in=3x4@1x3 out=3x4:f32");

    /* the FILE* writer appends a newline */
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    hcga_shapefile_write(f, &a);
    fclose(f);
    ck_assert_str_eq(mem, "copy f64 in=3x4@1x3 out=3x4:f32\n");
    free(mem);
}
END_TEST

/* Every op's default parameters survive format -> parse. */
START_TEST(every_op_round_trips)
{
    for (int op = 0; op < HCGA_OP_COUNT; op++) {
        hcga_shape_case c, d;
        memset(&c, 0, sizeof c);
        c.op = op;
        c.dtype = HCGA_F32;
        c.num_out = 1;
        c.out[0].present = 1;
        c.out[0].dtype = hcga_shapefile_index_slot(op, 1, 0) ? HCGA_I64 : HCGA_F32;
        c.out[0].ndim = 1;
        c.out[0].shape[0] = 5;
        for (int k = 0; k < HCGA_MAX_DIMS; k++) c.out[0].stride[k] = 1;
        for (int k = 1; k < HCGA_MAX_DIMS; k++) c.out[0].shape[k] = 1;
        hcga_shapefile_default_params(op, &c.p);
        char line[512], line2[512], err[256];
        hcga_shapefile_format_case(line, sizeof line, &c);
        ck_assert_msg(hcga_shapefile_parse_line(line, &d, err, sizeof err) == 1, "%s: %s", line,
                      err);
        hcga_shapefile_format_case(line2, sizeof line2, &d);
        ck_assert_str_eq(line, line2);
        ck_assert_int_eq(d.op, op);
    }
}
END_TEST

START_TEST(load_reports_file_and_line)
{
    char path[] = "/tmp/hcga_shapefile_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# header\nrelu_fwd f32 in=4 out=4\n\nrelu_fwd f32 in=4 out=4 bogus=1\n");
    fclose(f);
    hcga_shape_case *cases;
    int n;
    char err[512];
    ck_assert_int_eq(hcga_shapefile_load(path, &cases, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":4: unknown parameter 'bogus'"));
    f = fopen(path, "w");
    fprintf(f, "# header\nrelu_fwd f32 in=4 out=4\n\nsigmoid_fwd f64 in=4 out=4\n");
    fclose(f);
    ck_assert_int_eq(hcga_shapefile_load(path, &cases, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(cases[1].line, 4);
    ck_assert_int_eq(cases[1].op, HCGA_OP_SIGMOID_FWD);
    free(cases);
    unlink(path);
    ck_assert_int_eq(hcga_shapefile_load(path, &cases, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("shapefile", &tc);
    HCGA_ADD_TESTS(tc, parse_conv, index_slots_and_dtypes, half_dtypes, blank_and_errors, round_trip_args,
                   every_op_round_trips, load_reports_file_and_line);
    return hcga_test_run(s);
}
