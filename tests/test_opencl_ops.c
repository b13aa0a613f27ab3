/*
 * test_opencl_ops.c - the OpenCL backend against the CPU reference backend,
 * both loaded through the plugin loader (frontend/backend/backend.h).
 *
 * Every op call below runs on both backends with the same inputs; outputs
 * are pre-filled with NaN and surrounded by guard bytes, so a missing or an
 * out-of-bounds write fails.  Tensors sit at a non-zero byte offset in their
 * buffer (the backend must honour tensor.offset).  Also checked: no OpenCL
 * platform (probe's reason), options and device selection, label errors,
 * determinism of reductions, and that malformed calls are refused with the
 * shared contract checker's message, word for word the CPU backend's.
 *
 * Exit 77 (skip) with a printed reason when the OpenCL backend cannot be
 * opened here (no platform, plugin not built).  OpenCL state must not cross
 * fork(), so every test opens its backends itself (checked fixture).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "hcga_half.h"
#include "testutil.h"

/* With --enable-sanitizers: PoCL compiles kernels with LLVM on a cache miss
 * and LLVM leaks there (not our code); GCC 12's LeakSanitizer also crashes
 * on PoCL's dynamic TLS unless use_tls=0.  These hooks are read by the
 * sanitizer runtime at start-up and are unused without it.  The same
 * settings for other programs: backends/opencl/lsan.supp. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libLLVM\nleak:libpocl\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "use_tls=0"; }

#define OFFSET 256 /* byte offset of every tensor in its buffer */
#define GUARD 256  /* guard bytes after it */

static hcga_be *ocl, *cpu;

static void setup(void)
{
    char err[1024];
    ck_assert_msg(hcga_be_open("opencl", 0, NULL, &ocl, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(hcga_be_open("cpu", 0, NULL, &cpu, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    if (ocl) hcga_be_close(ocl);
    if (cpu) hcga_be_close(cpu);
    ocl = cpu = NULL;
}

/* ---- tensors ---------------------------------------------------------- */

typedef struct tdesc {
    int dtype, ndim;
    int64_t shape[5];
    const void *data; /* inputs; for outputs: initial contents (in/out) or NULL = NaN */
} tdesc;

static int64_t numel(const tdesc *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static size_t nbytes(const tdesc *t) { return (size_t)numel(t) * hcga_dtype_size(t->dtype); }

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { return hcga_test_urand01(&rng_state); }

static float *frand(int64_t n, double lo, double hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
    return p;
}

static double *drand_(int64_t n, double lo, double hi)
{
    double *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * urand();
    return p;
}

static tdesc T4(int dt, int64_t a, int64_t b, int64_t c, int64_t d, const void *data)
{
    tdesc t = {dt, 4, {a, b, c, d, 1}, data};
    return t;
}
static tdesc T2(int dt, int64_t a, int64_t b, const void *data)
{
    tdesc t = {dt, 2, {a, b, 1, 1, 1}, data};
    return t;
}
static tdesc T1(int dt, int64_t a, const void *data)
{
    tdesc t = {dt, 1, {a, 1, 1, 1, 1}, data};
    return t;
}

/* Runs one op on be; outputs are returned in res[i] (malloc'd, caller
 * frees).  Returns the op's status; on failure msg holds the error. */
static hcga_status run_on(hcga_be *be, int op, const hcga_op_params *p, int nin, const tdesc *in,
                          int nout, const tdesc *out, void **res, char *msg, size_t msg_len)
{
    hcga_buffer *bufs[16] = {0};
    hcga_tensor ts[16];
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout};
    if (p) a.p = *p;
    int n = nin + nout;
    for (int i = 0; i < n; i++) {
        const tdesc *d = i < nin ? &in[i] : &out[i - nin];
        size_t bytes = nbytes(d);
        size_t total = OFFSET + bytes + GUARD;
        ck_assert_int_eq(hcga_be_alloc(be, total, &bufs[i]), HCGA_OK);
        uint8_t *init = malloc(total);
        memset(init, 0xA5, total); /* sentinel: a NaN pattern for f32 and f64 */
        if (d->data) memcpy(init + OFFSET, d->data, bytes);
        ck_assert_int_eq(hcga_be_write(be, bufs[i], 0, init, total), HCGA_OK);
        free(init);
        ts[i] = hcga_tensor_make(bufs[i], OFFSET, d->dtype, d->ndim, d->shape);
        if (i < nin)
            a.in[i] = &ts[i];
        else
            a.out[i - nin] = &ts[i];
    }
    hcga_status st = hcga_be_run(be, &a);
    if (st != HCGA_OK) snprintf(msg, msg_len, "%s", hcga_be_error(be));
    for (int i = nin; i < n; i++) {
        const tdesc *d = &out[i - nin];
        size_t bytes = nbytes(d), total = OFFSET + bytes + GUARD;
        uint8_t *all = malloc(total);
        ck_assert_int_eq(hcga_be_read(be, bufs[i], 0, all, total), HCGA_OK);
        for (size_t k = 0; k < OFFSET; k++)
            ck_assert_msg(all[k] == 0xA5, "%s: out[%d] written before its offset (byte %zu)",
                          be->name, i - nin, k);
        for (size_t k = OFFSET + bytes; k < total; k++)
            ck_assert_msg(all[k] == 0xA5, "%s: out[%d] written past its end (byte %zu)",
                          be->name, i - nin, k - OFFSET - bytes);
        res[i - nin] = malloc(bytes ? bytes : 1);
        memcpy(res[i - nin], all + OFFSET, bytes);
        free(all);
    }
    for (int i = 0; i < n; i++) hcga_be_free(be, bufs[i]);
    return st;
}

static double elem(const tdesc *t, const void *p, int64_t i)
{
    switch (t->dtype) {
    case HCGA_F32: return ((const float *)p)[i];
    case HCGA_F64: return ((const double *)p)[i];
    case HCGA_I64: return (double)((const int64_t *)p)[i];
    default: return NAN;
    }
}

/* Runs op on both backends and compares every output: integer outputs
 * exactly, float ones with max|a-b| <= tol * max(1, max|ref|). */
static void compare_op(const char *what, int op, const hcga_op_params *p, int nin,
                       const tdesc *in, int nout, const tdesc *out, double tol)
{
    void *ro[8], *rc[8];
    char msg[1024] = "";
    hcga_status so = run_on(ocl, op, p, nin, in, nout, out, ro, msg, sizeof msg);
    ck_assert_msg(so == HCGA_OK, "%s: opencl failed: %s", what, msg);
    hcga_status sc = run_on(cpu, op, p, nin, in, nout, out, rc, msg, sizeof msg);
    ck_assert_msg(sc == HCGA_OK, "%s: cpu failed: %s", what, msg);
    for (int k = 0; k < nout; k++) {
        const tdesc *d = &out[k];
        int64_t n = numel(d);
        double maxref = 0, maxerr = 0;
        int64_t worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = elem(d, ro[k], i), b = elem(d, rc[k], i);
            ck_assert_msg(isfinite(a), "%s: out[%d][%lld] = %g on opencl (not written?)", what, k,
                          (long long)i, a);
            if (d->dtype == HCGA_I64) {
                ck_assert_msg(a == b, "%s: out[%d][%lld]: opencl %g, cpu %g", what, k,
                              (long long)i, a, b);
                continue;
            }
            if (fabs(b) > maxref) maxref = fabs(b);
            if (fabs(a - b) > maxerr) {
                maxerr = fabs(a - b);
                worst = i;
            }
        }
        double lim = tol * (maxref > 1 ? maxref : 1);
        ck_assert_msg(maxerr <= lim, "%s: out[%d] max error %.3g at %lld (opencl %.9g, cpu %.9g) > %.3g",
                      what, k, maxerr, (long long)worst, elem(d, ro[k], worst),
                      elem(d, rc[k], worst), lim);
        free(ro[k]);
        free(rc[k]);
    }
}

/* ---- no platform / options ------------------------------------------ */

START_TEST(test_no_platform)
{
    /* ocl-icd reads OCL_ICD_VENDORS when the first OpenCL call is made; an
     * empty vendor directory means no platform.  Run in a child that has
     * not touched OpenCL yet. */
    char dir[] = "/tmp/hcga-ocl-novendor-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        setenv("OCL_ICD_VENDORS", dir, 1);
        hcga_plugin_entry e[16];
        int n = hcga_plugins_scan(e, 16);
        char line[2048] = "opencl plugin not found";
        for (int i = 0; i < n; i++)
            if (!strcmp(e[i].name, "opencl"))
                snprintf(line, sizeof line, "%d|%s", e[i].ok, e[i].reason);
        hcga_be *b = NULL;
        char err[1024] = "";
        int rc = hcga_be_open("opencl", 0, NULL, &b, err, sizeof err);
        char all[4096];
        snprintf(all, sizeof all, "%s\n%d|%s", line, rc, err);
        ssize_t w = write(fds[1], all, strlen(all));
        _exit(w > 0 ? 0 : 3);
    }
    close(fds[1]);
    char buf[4096] = "";
    ssize_t got = 0, r;
    while ((r = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
    buf[got] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    rmdir(dir);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child crashed: %s", buf);
    const char *want = "clGetPlatformIDs: CL_PLATFORM_NOT_FOUND_KHR (-1001): no OpenCL platform "
                       "installed";
    char *nl = strchr(buf, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = 0;
    ck_assert_msg(!strncmp(buf, "0|", 2) && strstr(buf, want), "scan: %s", buf);
    ck_assert_msg(strncmp(nl + 1, "0|", 2) && strstr(nl + 1, want), "open: %s", nl + 1);
}
END_TEST

static void expect_open_fail(const char *options, const char *want)
{
    hcga_be *b = NULL;
    char err[1024] = "";
    int rc = hcga_be_open("opencl", 0, options, &b, err, sizeof err);
    ck_assert_msg(rc != 0, "options '%s' were accepted", options ? options : "(null)");
    ck_assert_msg(strstr(err, want) != NULL, "options '%s': error '%s' lacks '%s'",
                  options ? options : "(null)", err, want);
}

START_TEST(test_options)
{
    expect_open_fail("bogus=1", "unknown option 'bogus'");
    expect_open_fail("device=0", "expected P:D");
    expect_open_fail("device=0:99", "0:99: no such platform:device");
    expect_open_fail("conv=fast", "conv=fast: expected loop or batched");
    expect_open_fail("gemm=half", "gemm=half: expected float or double");
    expect_open_fail("accumulate=long", "accumulate=long: expected float or double");
    expect_open_fail("im2col=fast", "im2col=fast: expected own or clblast");
    expect_open_fail("clblast_tune=on", "clblast_tune=on: expected auto or off");
    expect_open_fail("threads=0", "threads=0: expected 1..4096");
    setenv("HCGA_OPENCL_DEVICE", "99", 1);
    expect_open_fail(NULL, "HCGA_OPENCL_DEVICE 99 out of range");
    /* the option wins over the variable */
    hcga_be *b = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open("opencl", 0, "threads=2,device=0:0,conv=batched,workspace_mb=1", &b, err,
                               sizeof err) == 0,
                  "%s", err);
    hcga_be_close(b);
    setenv("HCGA_OPENCL_DEVICE", "0:0", 1);
    ck_assert_msg(hcga_be_open("opencl", 0, NULL, &b, err, sizeof err) == 0, "%s", err);
    hcga_be_close(b);
    unsetenv("HCGA_OPENCL_DEVICE");
}
END_TEST

/* ---- convolution ------------------------------------------------------ */

static void conv_case(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r,
                      int stride, int pad, int bias)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.stride_h = p.conv.stride_w = stride;
    p.conv.pad_h = p.conv.pad_w = pad;
    p.conv.dilation_h = p.conv.dilation_w = 1;
    int64_t P = (h + 2 * pad - r) / stride + 1, Q = (w + 2 * pad - r) / stride + 1;
    float *x = frand(n * c * h * w, -1, 1), *wt = frand(k * c * r * r, -1, 1),
          *b = frand(k, -1, 1), *dy = frand(n * k * P * Q, -1, 1);
    char what[128];
    snprintf(what, sizeof what, "conv %lldx%lldx%lldx%lld k%lld r%lld s%d p%d", (long long)n,
             (long long)c, (long long)h, (long long)w, (long long)k, (long long)r, stride, pad);
    tdesc fin[3] = {T4(HCGA_F32, n, c, h, w, x), T4(HCGA_F32, k, c, r, r, wt),
                    T1(HCGA_F32, k, b)};
    tdesc fout[1] = {T4(HCGA_F32, n, k, P, Q, NULL)};
    compare_op(what, HCGA_OP_CONV2D_FWD, &p, bias ? 3 : 2, fin, 1, fout, 1e-5);
    tdesc din[2] = {T4(HCGA_F32, n, k, P, Q, dy), T4(HCGA_F32, k, c, r, r, wt)};
    tdesc dout[1] = {T4(HCGA_F32, n, c, h, w, NULL)};
    compare_op(what, HCGA_OP_CONV2D_BWD_DATA, &p, 2, din, 1, dout, 1e-5);
    tdesc win[2] = {T4(HCGA_F32, n, c, h, w, x), T4(HCGA_F32, n, k, P, Q, dy)};
    tdesc wout[2] = {T4(HCGA_F32, k, c, r, r, NULL), T1(HCGA_F32, k, NULL)};
    compare_op(what, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, win, bias ? 2 : 1, wout, 1e-5);
    free(x);
    free(wt);
    free(b);
    free(dy);
}

START_TEST(test_conv)
{
    conv_case(3, 5, 11, 9, 6, 3, 1, 1, 1);
    conv_case(3, 5, 11, 9, 6, 3, 2, 1, 0);
    conv_case(2, 7, 6, 5, 4, 1, 1, 0, 1);  /* 1x1: im2col skipped */
    conv_case(2, 7, 6, 5, 4, 1, 2, 0, 0);  /* 1x1 stride 2 */
    conv_case(2, 3, 16, 12, 8, 3, 2, 1, 0); /* stem-like */
}
END_TEST

START_TEST(test_conv_batched)
{
    /* the same convs with im2col over several images and StridedBatched GEMM,
     * with a workspace small enough to need more than one chunk */
    hcga_be_close(ocl);
    char err[1024];
    ck_assert_msg(hcga_be_open("opencl", 0, "conv=batched,workspace_mb=1", &ocl, err, sizeof err) ==
                      0,
                  "%s", err);
    conv_case(5, 16, 24, 20, 6, 3, 1, 1, 1); /* 16*9*480*4 = 276 kB per image: 3 per chunk */
    conv_case(3, 5, 11, 9, 6, 3, 2, 1, 0);
}
END_TEST

START_TEST(test_precision_options)
{
    /* gemm=double (f32 GEMMs as DGEMM), accumulate=float (f32 sums in
     * float), CLBlast's im2col/col2im and untuned CLBlast are other code
     * paths: same results within f32 tolerance */
    char err[1024];
    const char *opts[3] = {"gemm=double", "accumulate=float", "im2col=clblast,clblast_tune=off"};
    for (int i = 0; i < 3; i++) {
        hcga_be_close(ocl);
        ocl = NULL;
        if (!strcmp(opts[i], "gemm=double") &&
            hcga_be_open("opencl", 0, opts[i], &ocl, err, sizeof err) != 0) {
            /* no fp64 on this device: the option must say so */
            ck_assert_msg(strstr(err, "lacks cl_khr_fp64"), "gemm=double: %s", err);
            ck_assert_msg(hcga_be_open("opencl", 0, NULL, &ocl, err, sizeof err) == 0, "%s", err);
            continue;
        }
        if (!ocl)
            ck_assert_msg(hcga_be_open("opencl", 0, opts[i], &ocl, err, sizeof err) == 0,
                          "%s: %s", opts[i], err);
        conv_case(2, 5, 9, 7, 6, 3, 2, 1, 1);
        conv_case(2, 7, 6, 5, 4, 1, 1, 0, 0);
        int64_t n = 100003;
        float *x = frand(n, -1, 1);
        hcga_op_params p;
        memset(&p, 0, sizeof p);
        p.reduce.kind = HCGA_REDUCE_MEAN;
        tdesc in[1] = {T1(HCGA_F32, n, x)}, out[1] = {T1(HCGA_F32, 1, NULL)};
        compare_op("reduce mean", HCGA_OP_REDUCE, &p, 1, in, 1, out, 1e-5);
        free(x);
    }
}
END_TEST

/* ---- GEMM ------------------------------------------------------------- */

START_TEST(test_gemm)
{
    float *a = frand(37 * 29, -1, 1), *b = frand(29 * 41, -1, 1), *c = frand(37 * 41, -1, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            hcga_op_params p;
            memset(&p, 0, sizeof p);
            p.gemm.trans_a = ta;
            p.gemm.trans_b = tb;
            p.gemm.alpha = 0.75;
            p.gemm.beta = -1.5;
            tdesc in[3] = {ta ? T2(HCGA_F32, 29, 37, a) : T2(HCGA_F32, 37, 29, a),
                           tb ? T2(HCGA_F32, 41, 29, b) : T2(HCGA_F32, 29, 41, b),
                           T2(HCGA_F32, 37, 41, c)};
            tdesc out[1] = {T2(HCGA_F32, 37, 41, NULL)};
            compare_op("gemm", HCGA_OP_GEMM, &p, 3, in, 1, out, 1e-5);
            compare_op("gemm no c", HCGA_OP_GEMM, &p, 2, in, 1, out, 1e-5);
        }
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- batch norm ------------------------------------------------------- */

START_TEST(test_bn)
{
    int64_t n = 4, c = 6, h = 9, w = 10; /* h*w >= 64: the two-level loop */
    for (int small = 0; small < 2; small++) {
        if (small) {
            h = 3;
            w = 2;
        }
        float *x = frand(n * c * h * w, -2, 3), *g = frand(c, 0.5, 1.5), *b = frand(c, -1, 1);
        float *rm = frand(c, -0.1, 0.1), *rv = frand(c, 0.5, 1.5), *dy = frand(n * c * h * w, -1, 1);
        hcga_op_params p;
        memset(&p, 0, sizeof p);
        p.bn.eps = 1e-5;
        p.bn.momentum = 0.1;
        tdesc in[3] = {T4(HCGA_F32, n, c, h, w, x), T1(HCGA_F32, c, g), T1(HCGA_F32, c, b)};
        tdesc out[5] = {T4(HCGA_F32, n, c, h, w, NULL), T1(HCGA_F32, c, NULL),
                        T1(HCGA_F32, c, NULL), T1(HCGA_F32, c, rm), T1(HCGA_F32, c, rv)};
        compare_op("bn_fwd_train", HCGA_OP_BN_FWD_TRAIN, &p, 3, in, 5, out, 1e-5);
        tdesc iin[5] = {in[0], in[1], in[2], T1(HCGA_F32, c, rm), T1(HCGA_F32, c, rv)};
        compare_op("bn_fwd_infer", HCGA_OP_BN_FWD_INFER, &p, 5, iin, 1, out, 1e-5);
        /* backward with mean / invstd of x */
        float *mean = malloc(c * sizeof *mean), *inv = malloc(c * sizeof *inv);
        for (int64_t k = 0; k < c; k++) {
            double s = 0, ss = 0;
            int64_t m = n * h * w;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < h * w; j++) s += x[(i * c + k) * h * w + j];
            double mu = s / (double)m;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < h * w; j++) {
                    double d = x[(i * c + k) * h * w + j] - mu;
                    ss += d * d;
                }
            mean[k] = (float)mu;
            inv[k] = (float)(1.0 / sqrt(ss / (double)m + 1e-5));
        }
        tdesc bin[5] = {in[0], T4(HCGA_F32, n, c, h, w, dy), in[1], T1(HCGA_F32, c, mean),
                        T1(HCGA_F32, c, inv)};
        tdesc bout[3] = {T4(HCGA_F32, n, c, h, w, NULL), T1(HCGA_F32, c, NULL),
                         T1(HCGA_F32, c, NULL)};
        compare_op("bn_bwd", HCGA_OP_BN_BWD, &p, 5, bin, 3, bout, 1e-5);
        free(x);
        free(g);
        free(b);
        free(rm);
        free(rv);
        free(dy);
        free(mean);
        free(inv);
    }
}
END_TEST

/* ---- spatial, channel, broadcast ------------------------------------- */

START_TEST(test_spatial)
{
    float *x = frand(2 * 3 * 5 * 4, -1, 1), *dy = frand(2 * 3 * 17 * 9, -1, 1);
    for (int align = 0; align < 2; align++) {
        hcga_op_params p;
        memset(&p, 0, sizeof p);
        p.resize.align_corners = align;
        tdesc fin[1] = {T4(HCGA_F32, 2, 3, 5, 4, x)};
        tdesc fout[1] = {T4(HCGA_F32, 2, 3, 17, 9, NULL)};
        compare_op("bilinear fwd", HCGA_OP_RESIZE_BILINEAR_FWD, &p, 1, fin, 1, fout, 1e-5);
        tdesc bin[1] = {T4(HCGA_F32, 2, 3, 17, 9, dy)};
        tdesc bout[1] = {T4(HCGA_F32, 2, 3, 5, 4, NULL)};
        compare_op("bilinear bwd", HCGA_OP_RESIZE_BILINEAR_BWD, &p, 1, bin, 1, bout, 1e-5);
        /* downscale too */
        tdesc din[1] = {T4(HCGA_F32, 2, 3, 17, 9, dy)};
        tdesc dout[1] = {T4(HCGA_F32, 2, 3, 5, 4, NULL)};
        compare_op("bilinear down fwd", HCGA_OP_RESIZE_BILINEAR_FWD, &p, 1, din, 1, dout, 1e-5);
        tdesc dbin[1] = {T4(HCGA_F32, 2, 3, 5, 4, x)};
        tdesc dbout[1] = {T4(HCGA_F32, 2, 3, 17, 9, NULL)};
        compare_op("bilinear down bwd", HCGA_OP_RESIZE_BILINEAR_BWD, &p, 1, dbin, 1, dbout, 1e-5);
    }
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.resize.factor = 3;
    float *u = frand(2 * 3 * 15 * 12, -1, 1);
    tdesc uin[1] = {T4(HCGA_F32, 2, 3, 5, 4, x)};
    tdesc uout[1] = {T4(HCGA_F32, 2, 3, 15, 12, NULL)};
    compare_op("upsample fwd", HCGA_OP_UPSAMPLE_NEAREST_FWD, &p, 1, uin, 1, uout, 0);
    tdesc ubin[1] = {T4(HCGA_F32, 2, 3, 15, 12, u)};
    tdesc ubout[1] = {T4(HCGA_F32, 2, 3, 5, 4, NULL)};
    compare_op("upsample bwd", HCGA_OP_UPSAMPLE_NEAREST_BWD, &p, 1, ubin, 1, ubout, 1e-6);
    free(x);
    free(dy);
    free(u);
}
END_TEST

START_TEST(test_channel_broadcast)
{
    float *x = frand(3 * 7 * 4 * 5, -3, 3), *y = frand(3 * 7 * 4 * 5, 0, 1),
          *b = frand(7, -1, 1), *s = frand(3 * 4 * 5, -1, 1);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    tdesc x4 = T4(HCGA_F32, 3, 7, 4, 5, x), y4 = T4(HCGA_F32, 3, 7, 4, 5, y),
          o4 = T4(HCGA_F32, 3, 7, 4, 5, NULL);
    tdesc in1[1] = {x4}, in2[2] = {y4, x4}, out1[1] = {o4};
    compare_op("softmax fwd", HCGA_OP_SOFTMAX_FWD, &p, 1, in1, 1, out1, 1e-6);
    compare_op("softmax bwd", HCGA_OP_SOFTMAX_BWD, &p, 2, in2, 1, out1, 1e-6);
    tdesc idx[1] = {{HCGA_I64, 3, {3, 4, 5, 1, 1}, NULL}};
    compare_op("argmax", HCGA_OP_ARGMAX, &p, 1, in1, 1, idx, 0);
    /* ties take the first index, a NaN is the maximum (the first NaN wins) */
    float *xt = malloc(3 * 7 * 4 * 5 * sizeof *xt);
    for (int i = 0; i < 3 * 7 * 4 * 5; i++) xt[i] = (float)((i / 20) % 3);
    xt[20 * 3 + 2] = NAN;
    xt[20 * 5 + 2] = NAN;
    xt[20 * 0 + 7] = NAN;
    tdesc tin[1] = {T4(HCGA_F32, 3, 7, 4, 5, xt)};
    compare_op("argmax ties and NaN", HCGA_OP_ARGMAX, &p, 1, tin, 1, idx, 0);
    free(xt);
    p.scalar.a = 0.5;
    p.scalar.b = -2;
    tdesc bc[2] = {x4, T4(HCGA_F32, 1, 7, 1, 1, b)};
    compare_op("add per channel", HCGA_OP_ADD, &p, 2, bc, 1, out1, 1e-6);
    tdesc bs[2] = {T4(HCGA_F32, 3, 1, 4, 5, s), x4};
    compare_op("mul over channels", HCGA_OP_MUL, &p, 2, bs, 1, out1, 1e-6);
    tdesc st_out[1] = {T4(HCGA_F32, 1, 7, 1, 1, NULL)};
    compare_op("sum_to channel", HCGA_OP_SUM_TO, &p, 1, in1, 1, st_out, 1e-5);
    tdesc st_out2[1] = {T4(HCGA_F32, 3, 1, 4, 1, NULL)};
    compare_op("sum_to mixed", HCGA_OP_SUM_TO, &p, 1, in1, 1, st_out2, 1e-5);
    tdesc gap_out[1] = {T2(HCGA_F32, 3, 7, NULL)};
    compare_op("gap fwd", HCGA_OP_GAP_FWD, &p, 1, in1, 1, gap_out, 1e-6);
    tdesc cin[3] = {T4(HCGA_F32, 3, 2, 4, 5, x), T4(HCGA_F32, 3, 4, 4, 5, y),
                    T4(HCGA_F32, 3, 1, 4, 5, s)};
    compare_op("concat", HCGA_OP_CONCAT, &p, 3, cin, 1, out1, 0);
    tdesc sout[3] = {T4(HCGA_F32, 3, 2, 4, 5, NULL), T4(HCGA_F32, 3, 4, 4, 5, NULL),
                     T4(HCGA_F32, 3, 1, 4, 5, NULL)};
    compare_op("split", HCGA_OP_SPLIT, &p, 1, in1, 3, sout, 0);
    free(x);
    free(y);
    free(b);
    free(s);
}
END_TEST

/* ---- losses ----------------------------------------------------------- */

START_TEST(test_losses)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    /* CE with label smoothing */
    int64_t n = 9, c = 13;
    float *lg = frand(n * c, -4, 4), *dl = frand(1, 0.5, 2);
    int64_t lab[9] = {0, 12, 3, 3, 7, 1, 12, 5, 0};
    p.loss.eps = 0.1;
    tdesc cin[3] = {T2(HCGA_F32, n, c, lg), T1(HCGA_I64, n, lab), T1(HCGA_F32, 1, dl)};
    tdesc loss[1] = {T1(HCGA_F32, 1, NULL)};
    compare_op("ce_ls fwd", HCGA_OP_CE_LS_FWD, &p, 2, cin, 1, loss, 1e-6);
    tdesc cout_[1] = {T2(HCGA_F32, n, c, NULL)};
    compare_op("ce_ls bwd", HCGA_OP_CE_LS_BWD, &p, 3, cin, 1, cout_, 1e-6);

    /* pixel CE with ignored pixels */
    int64_t N = 2, K = 5, H = 13, W = 11, np = N * H * W;
    float *px = frand(N * K * H * W, -3, 3);
    int64_t *pl = malloc((size_t)np * sizeof *pl);
    for (int64_t i = 0; i < np; i++) pl[i] = (int64_t)(urand() * 6) - 1; /* -1..4 */
    p.loss.ignore_label = -1;
    tdesc pin[3] = {T4(HCGA_F32, N, K, H, W, px), {HCGA_I64, 3, {N, H, W, 1, 1}, pl},
                    T1(HCGA_F32, 1, dl)};
    compare_op("pixel_ce fwd", HCGA_OP_PIXEL_CE_FWD, &p, 2, pin, 1, loss, 1e-6);
    tdesc pout[1] = {T4(HCGA_F32, N, K, H, W, NULL)};
    compare_op("pixel_ce bwd", HCGA_OP_PIXEL_CE_BWD, &p, 3, pin, 1, pout, 1e-6);

    /* triplet: 4 identities x 3 images */
    int64_t tn = 12, td = 40;
    float *tx = frand(tn * td, -1, 1);
    int64_t tl[12] = {5, 5, 5, 9, 9, 9, 2, 2, 2, 7, 7, 7};
    p.loss.margin = 0.3;
    tdesc tin[2] = {T2(HCGA_F32, tn, td, tx), T1(HCGA_I64, tn, tl)};
    tdesc tout[2] = {T1(HCGA_F32, 1, NULL), T2(HCGA_I64, tn, 2, NULL)};
    compare_op("triplet fwd", HCGA_OP_TRIPLET_FWD, &p, 2, tin, 2, tout, 1e-5);
    void *r[2];
    char msg[1024];
    ck_assert_int_eq(run_on(cpu, HCGA_OP_TRIPLET_FWD, &p, 2, tin, 2, tout, r, msg, sizeof msg),
                     HCGA_OK);
    tdesc bin[3] = {T2(HCGA_F32, tn, td, tx), T2(HCGA_I64, tn, 2, r[1]), T1(HCGA_F32, 1, dl)};
    tdesc bout[1] = {T2(HCGA_F32, tn, td, NULL)};
    compare_op("triplet bwd", HCGA_OP_TRIPLET_BWD, &p, 3, bin, 1, bout, 1e-5);
    free(r[0]);
    free(r[1]);

    /* triplet_bwd edges: z == 0 exactly (torch passes the gradient), -1
     * entries (anchor skipped), an anchor that is its own positive */
    {
        float ex[4 * 2] = {0, 0, 1, 0, 0, 1, 3, 4};
        int64_t eh[4 * 2] = {1, 2, -1, 0, 2, -1, 3, 0};
        hcga_op_params q;
        memset(&q, 0, sizeof q);
        q.loss.margin = 0; /* anchor 0: d_ap = d_an = 1 */
        tdesc ein[3] = {T2(HCGA_F32, 4, 2, ex), T2(HCGA_I64, 4, 2, eh), T1(HCGA_F32, 1, dl)};
        tdesc eout[1] = {T2(HCGA_F32, 4, 2, NULL)};
        compare_op("triplet bwd edges", HCGA_OP_TRIPLET_BWD, &q, 3, ein, 1, eout, 1e-6);
        int64_t bad[4 * 2] = {1, 2, -1, 0, 2, 4, 3, 0};
        tdesc bin2[3] = {T2(HCGA_F32, 4, 2, ex), T2(HCGA_I64, 4, 2, bad), T1(HCGA_F32, 1, dl)};
        void *rr[1];
        char m2[1024] = "", mc[1024] = "";
        hcga_status st = run_on(ocl, HCGA_OP_TRIPLET_BWD, &q, 3, bin2, 1, eout, rr, m2, sizeof m2);
        free(rr[0]);
        ck_assert_int_eq(st, HCGA_ERR_INVALID);
        /* the first bad entry, named as the CPU reference names it */
        ck_assert_str_eq(m2, "triplet_bwd: hard[2,1] = 4 is outside [-1, 4)");
        st = run_on(cpu, HCGA_OP_TRIPLET_BWD, &q, 3, bin2, 1, eout, rr, mc, sizeof mc);
        free(rr[0]);
        ck_assert_int_eq(st, HCGA_ERR_INVALID);
        ck_assert_str_eq(m2, mc);
    }

    /* shift L1, every shift */
    float *sx = frand(3 * 4 * 6 * 5, -1, 1);
    tdesc sin_[2] = {T4(HCGA_F32, 3, 4, 6, 5, sx), T1(HCGA_F32, 1, dl)};
    tdesc sout[1] = {T4(HCGA_F32, 3, 4, 6, 5, NULL)};
    for (int dn = -1; dn <= 1; dn++)
        for (int dh = -1; dh <= 1; dh++)
            for (int dw = -1; dw <= 1; dw++) {
                p.shift.dn = dn;
                p.shift.dh = dh;
                p.shift.dw = dw;
                compare_op("shift_l1 fwd", HCGA_OP_SHIFT_L1_FWD, &p, 1, sin_, 1, loss, 1e-6);
                compare_op("shift_l1 bwd", HCGA_OP_SHIFT_L1_BWD, &p, 2, sin_, 1, sout, 1e-6);
            }
    free(lg);
    free(dl);
    free(px);
    free(pl);
    free(tx);
    free(sx);
}
END_TEST

START_TEST(test_bad_label)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    float *lg = frand(4 * 7, -1, 1);
    int64_t lab[4] = {0, 3, 7, -2};
    tdesc in[2] = {T2(HCGA_F32, 4, 7, lg), T1(HCGA_I64, 4, lab)};
    tdesc out[1] = {T1(HCGA_F32, 1, NULL)};
    void *r[1];
    char msg[1024] = "";
    hcga_status st = run_on(ocl, HCGA_OP_CE_LS_FWD, &p, 2, in, 1, out, r, msg, sizeof msg);
    free(r[0]);
    ck_assert_int_eq(st, HCGA_ERR_INVALID);
    ck_assert_msg(strstr(msg, "labels[2] = 7 is outside [0, 7)"), "message: %s", msg);
    ck_assert_msg(strstr(msg, "ce_ls_fwd"), "message does not name the op: %s", msg);
    /* a shape error names the tensor (the shared contract checker's words) */
    tdesc bad[2] = {T2(HCGA_F32, 4, 7, lg), T1(HCGA_I64, 3, lab)};
    st = run_on(ocl, HCGA_OP_CE_LS_FWD, &p, 2, bad, 1, out, r, msg, sizeof msg);
    free(r[0]);
    ck_assert_int_eq(st, HCGA_ERR_INVALID);
    ck_assert_str_eq(msg, "ce_ls_fwd: labels has shape [3], expected [4]");
    free(lg);
}
END_TEST

/* Runs one malformed call on both backends: both must refuse it with
 * HCGA_ERR_INVALID and the same message (one checker for every backend);
 * returns OpenCL's message in msg. */
static void both_refuse(const char *what, int op, const hcga_op_params *p, int nin,
                        const tdesc *in, int nout, const tdesc *out, char *msg, size_t len)
{
    void *r[8];
    char mc[1024] = "";
    hcga_status so = run_on(ocl, op, p, nin, in, nout, out, r, msg, len);
    for (int i = 0; i < nout; i++) free(r[i]);
    hcga_status sc = run_on(cpu, op, p, nin, in, nout, out, r, mc, sizeof mc);
    for (int i = 0; i < nout; i++) free(r[i]);
    ck_assert_msg(so == HCGA_ERR_INVALID, "%s: opencl answered %d (%s)", what, (int)so,
                  so == HCGA_OK ? "accepted" : msg);
    ck_assert_msg(sc == HCGA_ERR_INVALID, "%s: cpu answered %d (%s)", what, (int)sc,
                  sc == HCGA_OK ? "accepted" : mc);
    ck_assert_msg(!strcmp(msg, mc), "%s: opencl says '%s', cpu says '%s'", what, msg, mc);
}

START_TEST(test_contract)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    char msg[1024];

    /* resize.factor is bounded (the OpenCL backend used to take any f >= 1):
     * refused before the shapes are looked at, with the op named once */
    float x1[4] = {1, 2, 3, 4};
    tdesc uin[1] = {T4(HCGA_F32, 1, 1, 2, 2, x1)}, uout[1] = {T4(HCGA_F32, 1, 1, 4, 4, NULL)};
    p.resize.factor = 5000;
    both_refuse("factor 5000", HCGA_OP_UPSAMPLE_NEAREST_FWD, &p, 1, uin, 1, uout, msg,
                sizeof msg);
    ck_assert_str_eq(msg, "upsample_nearest_fwd: resize.factor 5000 must be in 1..4096");
    p.resize.factor = 0;
    both_refuse("factor 0", HCGA_OP_UPSAMPLE_NEAREST_FWD, &p, 1, uin, 1, uout, msg, sizeof msg);
    ck_assert_str_eq(msg, "upsample_nearest_fwd: resize.factor 0 must be in 1..4096");

    /* one floating dtype per call: an argument error, even on a device
     * without fp64 (the contract is checked before the device's limits) */
    memset(&p, 0, sizeof p);
    tdesc rin[1] = {T1(HCGA_F32, 4, x1)}, rout[1] = {T1(HCGA_F64, 4, NULL)};
    both_refuse("relu f32 -> f64", HCGA_OP_RELU_FWD, &p, 1, rin, 1, rout, msg, sizeof msg);
    ck_assert_msg(!strncmp(msg, "relu_fwd: ", 10) && strncmp(msg + 10, "relu_fwd", 8),
                  "message: %s", msg);

    /* shapes: x and y of an elementwise op differ */
    tdesc sout[1] = {T1(HCGA_F32, 3, NULL)};
    both_refuse("relu shapes", HCGA_OP_RELU_FWD, &p, 1, rin, 1, sout, msg, sizeof msg);

    /* integer CONCAT is a valid call (the CPU backend runs it) that this
     * backend has no kernel for: unsupported, as supports() says */
    {
        int64_t i0[2] = {7, 8}, i1[2] = {-1, 9};
        tdesc cin[2] = {T2(HCGA_I64, 2, 1, i0), T2(HCGA_I64, 2, 1, i1)};
        tdesc cout_[1] = {T2(HCGA_I64, 2, 2, NULL)};
        void *r[1];
        ck_assert(!ocl->iface->supports(ocl->inst, HCGA_OP_CONCAT, HCGA_I64));
        hcga_status st = run_on(ocl, HCGA_OP_CONCAT, &p, 2, cin, 1, cout_, r, msg, sizeof msg);
        free(r[0]);
        ck_assert_int_eq(st, HCGA_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(msg, "concat: i64 tensors") == msg, "message: %s", msg);
    }

    /* a device without cl_khr_fp64 refuses a well-formed f64 call as
     * unsupported, with the reason */
    if (!ocl->iface->supports(ocl->inst, HCGA_OP_RELU_FWD, HCGA_F64)) {
        double d1[4] = {1, -2, 3, -4};
        tdesc din[1] = {T1(HCGA_F64, 4, d1)}, dout[1] = {T1(HCGA_F64, 4, NULL)};
        void *r[1];
        hcga_status st = run_on(ocl, HCGA_OP_RELU_FWD, &p, 1, din, 1, dout, r, msg, sizeof msg);
        free(r[0]);
        ck_assert_int_eq(st, HCGA_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(msg, "relu_fwd: ") == msg && strstr(msg, "cl_khr_fp64"),
                      "message: %s", msg);
    }
}
END_TEST

/* ---- reductions, determinism, optimizer, copy -------------------------- */

START_TEST(test_reduce_deterministic)
{
    int64_t n = 1000003;
    float *x = frand(n, -1, 1);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    tdesc in[1] = {T1(HCGA_F32, n, x)}, out[1] = {T1(HCGA_F32, 1, NULL)};
    for (int k = 0; k < 3; k++) {
        p.reduce.kind = k;
        compare_op("reduce", HCGA_OP_REDUCE, &p, 1, in, 1, out, 1e-5);
        void *r1[1], *r2[1];
        char msg[256];
        ck_assert_int_eq(run_on(ocl, HCGA_OP_REDUCE, &p, 1, in, 1, out, r1, msg, sizeof msg), HCGA_OK);
        ck_assert_int_eq(run_on(ocl, HCGA_OP_REDUCE, &p, 1, in, 1, out, r2, msg, sizeof msg), HCGA_OK);
        ck_assert_msg(!memcmp(r1[0], r2[0], sizeof(float)), "reduce kind %d not bit-reproducible", k);
        free(r1[0]);
        free(r2[0]);
    }
    free(x);
}
END_TEST

START_TEST(test_optim_copy)
{
    int64_t n = 1000;
    float *g = frand(n, -1, 1), *pp = frand(n, -1, 1), *m = frand(n, -0.1, 0.1),
          *v = frand(n, 0, 0.01);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.optim.lr = 3.5e-4;
    p.optim.beta1 = 0.9;
    p.optim.beta2 = 0.999;
    p.optim.eps = 1e-8;
    p.optim.weight_decay = 5e-4;
    p.optim.momentum = 0.9;
    p.optim.step = 7;
    tdesc in[1] = {T1(HCGA_F32, n, g)};
    tdesc out[3] = {T1(HCGA_F32, n, pp), T1(HCGA_F32, n, m), T1(HCGA_F32, n, v)};
    compare_op("adam", HCGA_OP_ADAM_STEP, &p, 1, in, 3, out, 1e-6);
    compare_op("sgd", HCGA_OP_SGD_STEP, &p, 1, in, 2, out, 1e-6);
    p.optim.step = 1;
    compare_op("sgd first", HCGA_OP_SGD_STEP, &p, 1, in, 2, out, 1e-6);

    /* strided copy: a transposed view f32 -> dense f64 */
    double *d = drand_(6 * 4, -1, 1);
    float *f = frand(6 * 4, -1, 1);
    hcga_buffer *bx, *by;
    ck_assert_int_eq(hcga_be_alloc(ocl, 6 * 4 * 4, &bx), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(ocl, 6 * 4 * 8 + 8, &by), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(ocl, bx, 0, f, 6 * 4 * 4), HCGA_OK);
    int64_t shx[2] = {4, 6}, shy[2] = {4, 6};
    hcga_tensor tx = hcga_tensor_make(bx, 0, HCGA_F32, 2, shx);
    tx.stride[0] = 1; /* x viewed as the transpose of a 6x4 matrix */
    tx.stride[1] = 4;
    hcga_tensor ty = hcga_tensor_make(by, 8, HCGA_F64, 2, shy);
    hcga_op_args a = {.op = HCGA_OP_COPY, .num_in = 1, .num_out = 1, .in = {&tx}, .out = {&ty}};
    if (ocl->iface->supports(ocl->inst, HCGA_OP_COPY, HCGA_F64)) {
        ck_assert_msg(hcga_be_run(ocl, &a) == HCGA_OK, "%s", hcga_be_error(ocl));
        ck_assert_int_eq(hcga_be_read(ocl, by, 8, d, 6 * 4 * 8), HCGA_OK);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                ck_assert_msg(d[i * 6 + j] == (double)f[j * 4 + i], "copy [%d][%d]", i, j);
    }
    hcga_be_free(ocl, bx);
    hcga_be_free(ocl, by);
    free(g);
    free(pp);
    free(m);
    free(v);
    free(d);
    free(f);
}
END_TEST

START_TEST(test_f64)
{
    if (!ocl->iface->supports(ocl->inst, HCGA_OP_CONV2D_FWD, HCGA_F64)) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.stride_h = p.conv.stride_w = 2;
    p.conv.pad_h = p.conv.pad_w = 1;
    p.conv.dilation_h = p.conv.dilation_w = 1;
    double *x = drand_(2 * 4 * 9 * 7, -1, 1), *w = drand_(3 * 4 * 3 * 3, -1, 1);
    tdesc in[2] = {T4(HCGA_F64, 2, 4, 9, 7, x), T4(HCGA_F64, 3, 4, 3, 3, w)};
    tdesc out[1] = {T4(HCGA_F64, 2, 3, 5, 4, NULL)};
    compare_op("conv f64", HCGA_OP_CONV2D_FWD, &p, 2, in, 1, out, 1e-13);
    tdesc sin_[1] = {T4(HCGA_F64, 2, 4, 9, 7, x)}, sout[1] = {T4(HCGA_F64, 2, 4, 9, 7, NULL)};
    compare_op("softmax f64", HCGA_OP_SOFTMAX_FWD, &p, 1, sin_, 1, sout, 1e-14);
    free(x);
    free(w);
}
END_TEST

/* ---- mixed precision (ABI 1.1) ----------------------------------------- */

/* Bits of element i of a float tensor of dtype dt, widened to 64 bits. */
static uint64_t bits_at(int dt, const void *p, int64_t i)
{
    switch (dt) {
    case HCGA_F64: return ((const uint64_t *)p)[i];
    case HCGA_F32: return ((const uint32_t *)p)[i];
    default: return ((const uint16_t *)p)[i];
    }
}

/* The ABI's CAST of one element, from plugins/hcga_half.h (what the CPU
 * reference uses) and C's own f32 <-> f64 conversions. */
static uint64_t cast_ref(int sdt, int ddt, const void *x, int64_t i)
{
    if (sdt == ddt) return bits_at(sdt, x, i);
    if (sdt == HCGA_F64) {
        double d = ((const double *)x)[i];
        if (ddt == HCGA_F32) return hcga_f32_bits((float)d);
        return hcga_half_from_f64(ddt, d);
    }
    float f = sdt == HCGA_F32 ? ((const float *)x)[i]
                              : hcga_half_to_f32(sdt, ((const uint16_t *)x)[i]);
    if (ddt == HCGA_F32) return hcga_f32_bits(f);
    if (ddt == HCGA_F64) {
        double d = (double)f;
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        return u;
    }
    return hcga_half_from_f32(ddt, f);
}

static uint64_t xs_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Source values of dtype dt for the CAST test (*n of them, malloc'd): every
 * bf16 / f16 pattern; for f32 and f64 the rounding ties of both half
 * formats and of f32, the overflow thresholds, subnormals of every format,
 * NaNs (quiet, signalling, with payloads, negative), infinities, zeros,
 * then random bit patterns and random values near 1 and near the f16
 * subnormal range. */
static void *cast_source(int dt, int64_t *n)
{
    if (dt == HCGA_BF16 || dt == HCGA_F16) {
        uint16_t *h = malloc(65536 * sizeof *h);
        for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
        *n = 65536;
        return h;
    }
    enum { RANDOM = 6000 };
    if (dt == HCGA_F32) {
        static const uint32_t special[] = {
            0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f7fffff, 0xff7fffff,
            0x7f800000, 0xff800000, 0x7fc00000, 0x7fc12345, 0x7f800001, 0xffc00001,
            0x7fbfffff, 0x00000001, 0x807fffff, 0x00800000, 0x00400000,
            0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, /* bf16 ties around 1 */
            0x7f7f8000, 0x7f7f7fff, 0x7f7fc000,             /* bf16 overflow */
            0x3f801000, 0x3f803000, 0x3f801001, 0x3f800fff, /* f16 ties around 1 */
            0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, /* f16 max, overflow */
            0x33000000, 0x33000001, 0x32ffffff, 0x33800000, 0x33c00000, 0x34200000,
            0x387fc000, 0x387fe000, 0x387fbfff, 0x38800000, 0xb87fc000, /* f16 subnormals */
            0x00012345, 0x80000001,                                     /* f32 subnormals */
        };
        const int ns = (int)(sizeof special / sizeof special[0]);
        uint32_t *u = malloc((size_t)(ns + RANDOM) * sizeof *u);
        for (int i = 0; i < ns; i++) u[i] = special[i];
        for (int i = 0; i < RANDOM; i++) {
            uint32_t r = (uint32_t)(xs_next() >> 16);
            if (i % 3 == 1) /* exponents near 1 and the f16 range */
                r = (r & 0x80ffffffu) | ((uint32_t)(100 + (xs_next() >> 40) % 60) << 23);
            if (i % 3 == 2) r &= 0xffffe000u | (uint32_t)(xs_next() & 0x1000); /* f16 ties */
            u[ns + i] = r;
        }
        *n = ns + RANDOM;
        return u;
    }
    static const uint64_t special[] = {
        0x0000000000000000ull, 0x8000000000000000ull, 0x3ff0000000000000ull,
        0x7ff0000000000000ull, 0xfff0000000000000ull, 0x7ff8000000000000ull,
        0x7ff8000000000001ull, 0x7ff0000000000001ull, 0xfff8dead00000000ull,
        0x7fefffffffffffffull, 0x0000000000000001ull, 0x800fffffffffffffull,
        0x47efffffe0000000ull, /* FLT_MAX + half ulp: f32 tie, rounds to Inf */
        0x47efffffdfffffffull, 0x47efffffe0000001ull, 0x47f0000000000000ull,
        0x36a0000000000000ull, /* 2^-149: the smallest f32 subnormal */
        0x3690000000000000ull, /* 2^-150: tie, rounds to 0 */
        0x3690000000000001ull, 0x368fffffffffffffull, 0x36a8000000000000ull,
        0x380fffffffffffffull, 0x3810000000000000ull, /* f32 normal boundary */
        0x3ff0100000000001ull, /* 1 + 2^-8 + tiny: f32 would tie for bf16; bf16 rounds up */
        0x3ff00fffffffffffull, 0x3ff0100000000000ull, 0x3ff0300000000000ull,
        0x3ff0020000000001ull, /* 1 + 2^-11 + tiny: the same trap for f16 */
        0x3ff001ffffffffffull, 0x40effc0000000000ull, /* 65504 */
        0x40effe0000000000ull, /* 65520: f16 tie, rounds to Inf */
        0x40effdffffffffffull, 0x3e70000000000000ull, /* 2^-24 */
        0x3e60000000000000ull, /* 2^-25: tie, rounds to 0 */
        0x3e60000000000001ull, 0x3f0ff80000000000ull, 0x3f0ff80000000001ull,
        0x54b249ad2594c37dull, 0x1000000000000000ull,
    };
    const int ns = (int)(sizeof special / sizeof special[0]);
    uint64_t *u = malloc((size_t)(ns + RANDOM) * sizeof *u);
    for (int i = 0; i < ns; i++) u[i] = special[i];
    for (int i = 0; i < RANDOM; i++) {
        uint64_t r = xs_next();
        if (i % 3 == 1) /* f32 and half exponent ranges */
            r = (r & 0x800fffffffffffffull) | ((uint64_t)(870 + (xs_next() >> 40) % 300) << 52);
        if (i % 3 == 2) /* near the half ties: low bits set or clear */
            r = (r & 0x800fff0000000000ull) | ((uint64_t)(1000 + (xs_next() >> 40) % 40) << 52) |
                (xs_next() & 1);
        u[ns + i] = r;
    }
    *n = ns + RANDOM;
    return u;
}

/* CAST between every pair of float dtypes, bit for bit against
 * hcga_half.h and against the CPU backend (when it has CAST). */
START_TEST(test_cast)
{
    static const int dts[4] = {HCGA_F32, HCGA_F64, HCGA_BF16, HCGA_F16};
    int cpu_cast = cpu->iface->supports(cpu->inst, HCGA_OP_CAST, HCGA_BF16);
    if (!cpu_cast) printf("test_cast: the cpu backend has no CAST yet: hcga_half.h only\n");
    for (int si = 0; si < 4; si++) {
        int sdt = dts[si];
        if (!ocl->iface->supports(ocl->inst, HCGA_OP_CAST, sdt)) continue;
        int64_t n;
        void *x = cast_source(sdt, &n);
        for (int di = 0; di < 4; di++) {
            int ddt = dts[di];
            if (!ocl->iface->supports(ocl->inst, HCGA_OP_CAST, ddt)) continue;
            tdesc in[1] = {T1(sdt, n, x)}, out[1] = {T1(ddt, n, NULL)};
            void *ro[1], *rc[1] = {NULL};
            char msg[1024] = "";
            hcga_status st = run_on(ocl, HCGA_OP_CAST, NULL, 1, in, 1, out, ro, msg, sizeof msg);
            ck_assert_msg(st == HCGA_OK, "cast %s -> %s: %s", hcga_dtype_name(sdt),
                          hcga_dtype_name(ddt), msg);
            if (cpu_cast) {
                st = run_on(cpu, HCGA_OP_CAST, NULL, 1, in, 1, out, rc, msg, sizeof msg);
                ck_assert_msg(st == HCGA_OK, "cpu cast: %s", msg);
            }
            for (int64_t i = 0; i < n; i++) {
                uint64_t want = cast_ref(sdt, ddt, x, i), got = bits_at(ddt, ro[0], i);
                ck_assert_msg(got == want, "cast %s -> %s of 0x%llx: opencl 0x%llx, want 0x%llx",
                              hcga_dtype_name(sdt), hcga_dtype_name(ddt),
                              (unsigned long long)bits_at(sdt, x, i), (unsigned long long)got,
                              (unsigned long long)want);
                if (rc[0])
                    ck_assert_msg(got == bits_at(ddt, rc[0], i),
                                  "cast %s -> %s of 0x%llx: opencl 0x%llx, cpu 0x%llx",
                                  hcga_dtype_name(sdt), hcga_dtype_name(ddt),
                                  (unsigned long long)bits_at(sdt, x, i),
                                  (unsigned long long)got,
                                  (unsigned long long)bits_at(ddt, rc[0], i));
            }
            free(ro[0]);
            free(rc[0]);
        }
        free(x);
    }
}
END_TEST

/* Random half data: n values in [-1, 1] as hd bits (*f32 gets them widened). */
static uint16_t *hrand(int hd, int64_t n, float **f32)
{
    uint16_t *h = malloc((size_t)n * sizeof *h);
    *f32 = malloc((size_t)n * sizeof **f32);
    for (int64_t i = 0; i < n; i++) {
        h[i] = hcga_half_from_f32(hd, (float)(2 * urand() - 1));
        (*f32)[i] = hcga_half_to_f32(hd, h[i]);
    }
    return h;
}

/* One ulp of half dtype hd at magnitude |v| (its subnormal spacing below
 * the normal range). */
static double half_ulp(int hd, double v)
{
    int mant = hd == HCGA_BF16 ? 7 : 10, emin = hd == HCGA_BF16 ? -126 : -14;
    int e;
    (void)frexp(fabs(v), &e); /* |v| in [2^(e-1), 2^e) */
    if (e - 1 < emin) e = emin + 1;
    return ldexp(1.0, e - 1 - mant);
}

/* Runs a half op (every float tensor in dtype hd) on OpenCL and the CPU,
 * and the f32 op on the widened inputs on OpenCL.  Checks:
 *  - OpenCL's half result is its f32 result rounded once (bit for bit:
 *    the half path widens, runs the same f32 kernels and rounds);
 *  - OpenCL vs the CPU backend, per element,
 *      |ocl - cpu| <= tol32 * max(1, max|cpu|) + 1 ulp_half(max(|ocl|, |cpu|)).
 *    Both backends compute the f32 op from the same exact half inputs, so
 *    before rounding they differ by at most the f32 tolerance tol32 (the
 *    one this file uses for the f32 op); each then rounds once to the half
 *    format, moving its value by at most half an ulp, so the rounded
 *    results differ by at most tol32 + 2 * (1/2) ulp. */
static void compare_half(const char *what, int hd, int op, const hcga_op_params *p, int nin,
                         const tdesc *hin, const tdesc *fin, int nout, const tdesc *hout,
                         const tdesc *fout, double tol32)
{
    void *ro[4], *rc[4], *rf[4];
    char msg[1024] = "", label[160];
    snprintf(label, sizeof label, "%s %s", what, hcga_dtype_name(hd));
    hcga_status st = run_on(ocl, op, p, nin, hin, nout, hout, ro, msg, sizeof msg);
    ck_assert_msg(st == HCGA_OK, "%s: opencl failed: %s", label, msg);
    st = run_on(ocl, op, p, nin, fin, nout, fout, rf, msg, sizeof msg);
    ck_assert_msg(st == HCGA_OK, "%s: opencl f32 failed: %s", label, msg);
    int with_cpu = cpu->iface->supports(cpu->inst, op, hd);
    if (with_cpu) {
        st = run_on(cpu, op, p, nin, hin, nout, hout, rc, msg, sizeof msg);
        ck_assert_msg(st == HCGA_OK, "%s: cpu failed: %s", label, msg);
    }
    for (int k = 0; k < nout; k++) {
        int64_t n = numel(&hout[k]);
        const uint16_t *o = ro[k];
        double maxref = 0;
        for (int64_t i = 0; with_cpu && i < n; i++) {
            double b = hcga_half_to_f32(hd, ((const uint16_t *)rc[k])[i]);
            if (fabs(b) > maxref) maxref = fabs(b);
        }
        int64_t exact = 0;
        for (int64_t i = 0; i < n; i++) {
            uint16_t want = hcga_half_from_f32(hd, ((const float *)rf[k])[i]);
            ck_assert_msg(o[i] == want, "%s: out[%d][%lld] 0x%04x is not its f32 result %.9g "
                          "rounded (0x%04x)", label, k, (long long)i, o[i],
                          ((const float *)rf[k])[i], want);
            if (!with_cpu) continue;
            uint16_t cb = ((const uint16_t *)rc[k])[i];
            double a = hcga_half_to_f32(hd, o[i]), b = hcga_half_to_f32(hd, cb);
            double lim = tol32 * (maxref > 1 ? maxref : 1) +
                         half_ulp(hd, fabs(a) > fabs(b) ? a : b);
            ck_assert_msg(isfinite(a) && fabs(a - b) <= lim,
                          "%s: out[%d][%lld]: opencl %.9g (0x%04x), cpu %.9g (0x%04x), limit %.3g",
                          label, k, (long long)i, a, o[i], b, cb, lim);
            exact += o[i] == cb;
        }
        if (with_cpu && k == 0)
            printf("%s: %lld of %lld elements bit-identical to the cpu backend's\n", label,
                   (long long)exact, (long long)n);
        free(ro[k]);
        free(rf[k]);
        if (with_cpu) free(rc[k]);
    }
}

static void conv_half_case(int hd, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                           int64_t r, int stride, int pad, int bias)
{
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.stride_h = p.conv.stride_w = stride;
    p.conv.pad_h = p.conv.pad_w = pad;
    p.conv.dilation_h = p.conv.dilation_w = 1;
    int64_t P = (h + 2 * pad - r) / stride + 1, Q = (w + 2 * pad - r) / stride + 1;
    float *fx, *fw, *fb, *fdy;
    uint16_t *x = hrand(hd, n * c * h * w, &fx), *wt = hrand(hd, k * c * r * r, &fw),
             *b = hrand(hd, k, &fb), *dy = hrand(hd, n * k * P * Q, &fdy);
    char what[128];
    snprintf(what, sizeof what, "conv %lldx%lldx%lldx%lld k%lld r%lld s%d p%d", (long long)n,
             (long long)c, (long long)h, (long long)w, (long long)k, (long long)r, stride, pad);
    tdesc hin[3] = {T4(hd, n, c, h, w, x), T4(hd, k, c, r, r, wt), T1(hd, k, b)};
    tdesc fin[3] = {T4(HCGA_F32, n, c, h, w, fx), T4(HCGA_F32, k, c, r, r, fw),
                    T1(HCGA_F32, k, fb)};
    tdesc hout[1] = {T4(hd, n, k, P, Q, NULL)}, fout[1] = {T4(HCGA_F32, n, k, P, Q, NULL)};
    compare_half(what, hd, HCGA_OP_CONV2D_FWD, &p, bias ? 3 : 2, hin, fin, 1, hout, fout, 1e-5);
    tdesc hdin[2] = {T4(hd, n, k, P, Q, dy), T4(hd, k, c, r, r, wt)};
    tdesc fdin[2] = {T4(HCGA_F32, n, k, P, Q, fdy), T4(HCGA_F32, k, c, r, r, fw)};
    tdesc hdout[1] = {T4(hd, n, c, h, w, NULL)}, fdout[1] = {T4(HCGA_F32, n, c, h, w, NULL)};
    compare_half(what, hd, HCGA_OP_CONV2D_BWD_DATA, &p, 2, hdin, fdin, 1, hdout, fdout, 1e-5);
    tdesc hwin[2] = {T4(hd, n, c, h, w, x), T4(hd, n, k, P, Q, dy)};
    tdesc fwin[2] = {T4(HCGA_F32, n, c, h, w, fx), T4(HCGA_F32, n, k, P, Q, fdy)};
    tdesc hwout[2] = {T4(hd, k, c, r, r, NULL), T1(hd, k, NULL)};
    tdesc fwout[2] = {T4(HCGA_F32, k, c, r, r, NULL), T1(HCGA_F32, k, NULL)};
    compare_half(what, hd, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, hwin, fwin, bias ? 2 : 1, hwout,
                 fwout, 1e-5);
    free(x), free(wt), free(b), free(dy);
    free(fx), free(fw), free(fb), free(fdy);
}

static void gemm_half_case(int hd)
{
    float *fa, *fb, *fc;
    uint16_t *a = hrand(hd, 37 * 29, &fa), *b = hrand(hd, 29 * 41, &fb),
             *c = hrand(hd, 37 * 41, &fc);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            hcga_op_params p;
            memset(&p, 0, sizeof p);
            p.gemm.trans_a = ta;
            p.gemm.trans_b = tb;
            p.gemm.alpha = 0.75;
            p.gemm.beta = -1.5;
            tdesc hin[3] = {ta ? T2(hd, 29, 37, a) : T2(hd, 37, 29, a),
                            tb ? T2(hd, 41, 29, b) : T2(hd, 29, 41, b), T2(hd, 37, 41, c)};
            tdesc fin[3] = {ta ? T2(HCGA_F32, 29, 37, fa) : T2(HCGA_F32, 37, 29, fa),
                            tb ? T2(HCGA_F32, 41, 29, fb) : T2(HCGA_F32, 29, 41, fb),
                            T2(HCGA_F32, 37, 41, fc)};
            tdesc hout[1] = {T2(hd, 37, 41, NULL)}, fout[1] = {T2(HCGA_F32, 37, 41, NULL)};
            compare_half("gemm", hd, HCGA_OP_GEMM, &p, 3, hin, fin, 1, hout, fout, 1e-5);
            compare_half("gemm no c", hd, HCGA_OP_GEMM, &p, 2, hin, fin, 1, hout, fout, 1e-5);
        }
    free(a), free(b), free(c);
    free(fa), free(fb), free(fc);
}

START_TEST(test_half_ops)
{
    static const int hds[2] = {HCGA_BF16, HCGA_F16};
    for (int i = 0; i < 2; i++) {
        int hd = hds[i];
        /* bf16 always; f16 by default too (storage: see backends/opencl/README.md) */
        ck_assert(ocl->iface->supports(ocl->inst, HCGA_OP_GEMM, hd));
        ck_assert(!ocl->iface->supports(ocl->inst, HCGA_OP_RELU_FWD, hd));
        conv_half_case(hd, 3, 5, 11, 9, 6, 3, 1, 1, 1);
        conv_half_case(hd, 3, 5, 11, 9, 6, 3, 2, 1, 0);
        conv_half_case(hd, 2, 7, 6, 5, 4, 1, 1, 0, 1); /* 1x1: im2col skipped */
        gemm_half_case(hd);
    }
}
END_TEST

/* Option fp16=khr: f16 only with cl_khr_fp16.  Where the device lacks it
 * (PoCL's CPU device), supports() says no and a call is refused with the
 * reason; where it has it, f16 works as by default.  bf16 is unaffected. */
START_TEST(test_fp16_khr)
{
    hcga_be_close(ocl);
    ocl = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open("opencl", 0, "fp16=khr", &ocl, err, sizeof err) == 0, "%s", err);
    expect_open_fail("fp16=native", "fp16=native: expected storage or khr");
    ck_assert(ocl->iface->supports(ocl->inst, HCGA_OP_CAST, HCGA_BF16));
    float x[4] = {1, 2, 3, 4};
    tdesc in[1] = {T1(HCGA_F32, 4, x)}, out[1] = {T1(HCGA_F16, 4, NULL)};
    void *ro[1];
    char msg[1024] = "";
    hcga_status st = run_on(ocl, HCGA_OP_CAST, NULL, 1, in, 1, out, ro, msg, sizeof msg);
    free(ro[0]);
    if (ocl->iface->supports(ocl->inst, HCGA_OP_CAST, HCGA_F16)) {
        printf("test_fp16_khr: the device has cl_khr_fp16; the refusal is not checkable here\n");
        ck_assert_msg(st == HCGA_OK, "%s", msg);
        return;
    }
    ck_assert_int_eq(st, HCGA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(msg, "cast: out[0] is f16, which needs cl_khr_fp16"), "%s", msg);
    ck_assert(!ocl->iface->supports(ocl->inst, HCGA_OP_CONV2D_FWD, HCGA_F16));
}
END_TEST

/* Not a timed test: prints the time of one convolution at f32, bf16 and
 * f16 (README figures), after a warm-up call of each. */
START_TEST(test_half_timing)
{
    int64_t n = 4, c = 64, h = 32, w = 32, k = 64;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.stride_h = p.conv.stride_w = 1;
    p.conv.pad_h = p.conv.pad_w = 1;
    p.conv.dilation_h = p.conv.dilation_w = 1;
    static const int dts[3] = {HCGA_F32, HCGA_BF16, HCGA_F16};
    for (int d = 0; d < 3; d++) {
        int dt = dts[d];
        int64_t shx[4] = {n, c, h, w}, shw[4] = {k, c, 3, 3}, shy[4] = {n, k, h, w};
        size_t es = hcga_dtype_size(dt);
        size_t bx = (size_t)(n * c * h * w) * es, bw = (size_t)(k * c * 9) * es;
        size_t by = (size_t)(n * k * h * w) * es;
        hcga_buffer *X, *W, *Y;
        ck_assert_int_eq(hcga_be_alloc(ocl, bx, &X), HCGA_OK);
        ck_assert_int_eq(hcga_be_alloc(ocl, bw, &W), HCGA_OK);
        ck_assert_int_eq(hcga_be_alloc(ocl, by, &Y), HCGA_OK);
        uint8_t *z = calloc(1, bx);
        ck_assert_int_eq(hcga_be_write(ocl, X, 0, z, bx), HCGA_OK);
        ck_assert_int_eq(hcga_be_write(ocl, W, 0, z, bw), HCGA_OK);
        free(z);
        hcga_tensor tx = hcga_tensor_make(X, 0, dt, 4, shx), tw = hcga_tensor_make(W, 0, dt, 4, shw),
                    ty = hcga_tensor_make(Y, 0, dt, 4, shy);
        hcga_op_args a = {.op = HCGA_OP_CONV2D_FWD, .num_in = 2, .num_out = 1, .in = {&tx, &tw}, .out = {&ty}, .p = p};
        ck_assert_int_eq(hcga_be_run(ocl, &a), HCGA_OK);
        ck_assert_int_eq(hcga_be_sync(ocl), HCGA_OK);
        struct timespec t0, t1;
        const int reps = 5;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int r = 0; r < reps; r++) ck_assert_int_eq(hcga_be_run(ocl, &a), HCGA_OK);
        ck_assert_int_eq(hcga_be_sync(ocl), HCGA_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) /
                    reps;
        printf("timing: conv2d_fwd 4x64x32x32 k64 3x3 %s: %.2f ms per call (%d calls)\n",
               hcga_dtype_name(dt), ms, reps);
        hcga_be_free(ocl, X);
        hcga_be_free(ocl, W);
        hcga_be_free(ocl, Y);
    }
}
END_TEST

/* Whether the OpenCL backend opens here, decided in a child so that this
 * process never initialises OpenCL before fork(). */
static int opencl_usable(char *why, size_t len)
{
    int fds[2];
    if (pipe(fds)) return 0;
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        close(fds[0]);
        hcga_be *b = NULL;
        char err[1024] = "";
        int rc = hcga_be_open("opencl", 0, NULL, &b, err, sizeof err);
        if (rc) {
            ssize_t w = write(fds[1], err, strlen(err));
            (void)w;
        }
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], why, len - 1);
    why[got > 0 ? got : 0] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
    char why[1024];
    if (!opencl_usable(why, sizeof why)) {
        printf("SKIP test_opencl_ops: the opencl backend cannot be opened: %s\n", why);
        return 77;
    }
    Suite *s = suite_create("opencl_ops");
    TCase *t0 = hcga_test_tcase(s, "platform");
    tcase_add_test(t0, test_no_platform);
    tcase_set_timeout(t0, 120);
    TCase *t = hcga_test_tcase(s, "ops");
    tcase_add_checked_fixture(t, setup, teardown);
    /* first use JIT-compiles kernels (PoCL caches them in ~/.cache/pocl) */
    tcase_set_timeout(t, 600);
    HCGA_ADD_TESTS(t, test_options, test_conv, test_conv_batched, test_gemm, test_precision_options, test_bn,
                   test_spatial, test_channel_broadcast, test_losses, test_bad_label, test_contract,
                   test_reduce_deterministic, test_optim_copy, test_f64, test_cast, test_half_ops,
                   test_fp16_khr, test_half_timing);
    return hcga_test_run(s);
}
