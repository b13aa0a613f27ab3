/*
 * test_cuda_backend.c - the CUDA plugin as the frontend sees it.
 *
 * The oracle for "is there a GPU, and if not, why" is CUDA itself: the test
 * dlopens libcudart (it does not link it: only the plugin does) and calls
 * cudaGetDeviceCount / cudaGetErrorString.  That runs inside each forked
 * test, never in the parent, because CUDA must not be initialised before a
 * fork.
 *
 * Without a usable GPU (this build machine: "CUDA driver version is
 * insufficient for CUDA runtime version") the plugin must still load, report
 * unavailable with exactly that text through hcga_plugins_scan and
 * hcga_be_open, fail create() cleanly, reject unknown options, and never
 * crash.  With a GPU, a few ops are run on both the CPU and the CUDA backend
 * on the same random inputs and compared, plus determinism, the
 * device-side label check and the contract checker's messages.
 *
 * ABI 1.2 groups: without a GPU, the iface must carry the capture group and,
 * when the plugin was built with NCCL (HCGA_TEST_NCCL), the collectives, and
 * the wait= option is parsed.  With a GPU: NCCL with one rank (allreduce SUM
 * and AVG leave every dtype's values unchanged, broadcast from root 0,
 * ordering against the compute stream), and a captured conv+bn+relu graph
 * replayed on new inputs equals direct execution bit for bit; a capture that
 * would grow the kernel scratch fails cleanly and the stream goes on.
 */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "hcga_half.h"
#include "testutil.h"

#ifndef HCGA_CUDA_LIBDIR
#error "HCGA_CUDA_LIBDIR must be defined by the build (backends/cuda/cuda.mk)"
#endif

/* ---- the oracle ---------------------------------------------------------- */

typedef struct oracle {
    int devices;     /* >= 1 when usable */
    char why[512];   /* cudaGetErrorString text when devices < 1 */
} oracle;

static void cuda_oracle(oracle *o)
{
    memset(o, 0, sizeof *o);
    void *h = dlopen(HCGA_CUDA_LIBDIR "/libcudart.so", RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "cannot dlopen libcudart from %s: %s", HCGA_CUDA_LIBDIR, dlerror());
    typedef int (*count_fn)(int *);
    typedef const char *(*str_fn)(int);
    count_fn count = (count_fn)(uintptr_t)dlsym(h, "cudaGetDeviceCount");
    str_fn str = (str_fn)(uintptr_t)dlsym(h, "cudaGetErrorString");
    ck_assert(count != NULL && str != NULL);
    int n = 0;
    int e = count(&n);
    if (e != 0) {
        snprintf(o->why, sizeof o->why, "%s", str(e));
        o->devices = 0;
    } else {
        o->devices = n;
        if (n == 0) snprintf(o->why, sizeof o->why, "no CUDA device");
    }
    /* the library stays loaded: CUDA registers exit handlers */
}

static int find_entry(hcga_plugin_entry *entries, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(entries[i].name, name) == 0) return i;
    return -1;
}

/* ---- without or with a GPU: the loader's view -------------------------------- */

START_TEST(test_scan_reports_cuda)
{
    oracle o;
    cuda_oracle(&o);
    hcga_plugin_entry e[32];
    int n = hcga_plugins_scan(e, 32);
    int i = find_entry(e, n, "cuda");
    ck_assert_msg(i >= 0, "the cuda plugin was not found by hcga_plugins_scan (%d entries)", n);
    if (o.devices < 1) {
        ck_assert_msg(!e[i].ok, "cuda plugin claims %d devices but CUDA says: %s", e[i].num_devices, o.why);
        ck_assert_msg(strstr(e[i].reason, o.why) != NULL,
                      "reason '%s' does not contain CUDA's own text '%s'", e[i].reason, o.why);
    } else {
        ck_assert_msg(e[i].ok, "cuda plugin unavailable on a machine with %d GPU(s): %s", o.devices,
                      e[i].reason);
        ck_assert_int_eq(e[i].num_devices, o.devices);
    }
}
END_TEST

START_TEST(test_open_without_gpu_fails_cleanly)
{
    oracle o;
    cuda_oracle(&o);
    hcga_be *be = NULL;
    char err[1024] = "";
    int rc = hcga_be_open("cuda", 0, NULL, &be, err, sizeof err);
    if (o.devices < 1) {
        ck_assert_int_ne(rc, 0);
        ck_assert_ptr_null(be);
        ck_assert_msg(strstr(err, "unavailable") && strstr(err, o.why),
                      "open error '%s' lacks 'unavailable' and CUDA's text '%s'", err, o.why);
    } else {
        ck_assert_msg(rc == 0, "open failed on a GPU machine: %s", err);
        hcga_be_close(be);
    }
}
END_TEST

/* The plugin's own entry points, called directly (the loader stops at probe
 * when there is no GPU, so create and device_info are reached this way). */
static const hcga_backend_iface *direct_iface(void)
{
    hcga_plugin_entry e[32];
    int n = hcga_plugins_scan(e, 32);
    int i = find_entry(e, n, "cuda");
    ck_assert(i >= 0);
    void *dl = dlopen(e[i].path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "dlopen %s: %s", e[i].path, dlerror());
    const hcga_plugin_descriptor *d = dlsym(dl, HCGA_PLUGIN_SYMBOL);
    ck_assert(d != NULL);
    ck_assert_str_eq(d->name, "cuda");
    ck_assert_uint_eq(d->num_ops, HCGA_OP_COUNT);
    const hcga_backend_iface *f = d->get_iface();
    ck_assert(f != NULL);
    ck_assert_uint_eq(f->num_ops, HCGA_OP_COUNT);
    for (int op = 0; op < HCGA_OP_COUNT; op++) /* every mandatory op; optional (fused) ones may be NULL */
        ck_assert_msg(f->ops[op] != NULL || hcga_op_get_info(op)->optional, "op %s has no implementation",
                      hcga_op_name(op));
    return f;
}

START_TEST(test_direct_calls_do_not_crash)
{
    oracle o;
    cuda_oracle(&o);
    const hcga_backend_iface *f = direct_iface();
    char why[512] = "";
    int n = f->probe(why, sizeof why);
    hcga_device_info info;
    hcga_backend *inst = NULL;
    char err[512] = "";
    if (o.devices < 1) {
        ck_assert_int_eq(n, -1);
        ck_assert_msg(strstr(why, o.why) != NULL, "probe says '%s', CUDA says '%s'", why, o.why);
        ck_assert_int_ne(f->device_info(0, &info), HCGA_OK);
        ck_assert_int_ne(f->create(0, NULL, &inst, err, sizeof err), HCGA_OK);
        ck_assert_ptr_null(inst);
        ck_assert_msg(strstr(err, o.why) != NULL, "create error '%s' lacks '%s'", err, o.why);
    } else {
        ck_assert_int_eq(n, o.devices);
        ck_assert_int_eq(f->device_info(0, &info), HCGA_OK);
        ck_assert(info.name[0] != '\0');
        ck_assert_int_eq(f->create(0, "tf32=0,deterministic=1", &inst, err, sizeof err), HCGA_OK);
        f->destroy(inst);
        inst = NULL;
    }
    /* options are checked before the device is touched: same answer either way */
    ck_assert_int_eq(f->create(0, "bogus=1", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_ptr_null(inst);
    ck_assert_msg(strstr(err, "unknown cuda backend option 'bogus'") != NULL, "got '%s'", err);
    ck_assert_int_eq(f->create(0, "tf32=2", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_msg(strstr(err, "tf32") != NULL, "got '%s'", err);
    ck_assert_int_eq(f->create(0, "algo=fastest", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_msg(strstr(err, "heuristic, find or cache") != NULL, "got '%s'", err);
    /* algo=cache is a valid option: without a GPU create fails on the device */
    if (o.devices < 1) {
        ck_assert_int_ne(f->create(0, "algo=cache,deterministic=1", &inst, err, sizeof err), HCGA_ERR_INVALID);
        ck_assert_ptr_null(inst);
        ck_assert_msg(strstr(err, o.why) != NULL, "create error '%s' lacks '%s'", err, o.why);
    }
    for (int op = 0; op < HCGA_OP_COUNT; op++) {
        if (!f->ops[op]) { /* an optional op the plugin does not provide: supports() says no */
            ck_assert(hcga_op_get_info(op)->optional && !f->supports(NULL, op, HCGA_F32));
            continue;
        }
        ck_assert(f->supports(NULL, op, HCGA_F32));
        ck_assert(f->supports(NULL, op, HCGA_F64));
        /* ABI 1.1: BF16 and F16 exactly for the catalogue's half ops */
        const int half = hcga_op_get_info(op)->half;
        ck_assert_int_eq(f->supports(NULL, op, HCGA_BF16), half);
        ck_assert_int_eq(f->supports(NULL, op, HCGA_F16), half);
    }
    ck_assert(f->supports(NULL, HCGA_OP_CAST, HCGA_BF16) && f->supports(NULL, HCGA_OP_GEMM, HCGA_F16));
    ck_assert(!f->supports(NULL, HCGA_OP_BN_FWD_TRAIN, HCGA_BF16));
    ck_assert(!f->supports(NULL, HCGA_OP_ADD, HCGA_I64));
    /* every entry of the generated op table goes through the dispatcher,
     * which refuses a call without an instance before touching anything */
    hcga_op_args a;
    memset(&a, 0, sizeof a);
    for (int op = 0; op < HCGA_OP_COUNT; op++) {
        if (!f->ops[op]) continue; /* optional, not provided */
        a.op = op;
        ck_assert_int_eq(f->ops[op](NULL, &a), HCGA_ERR_INVALID);
    }
}
END_TEST

/* ---- ABI 1.2 groups without a GPU: the table and the options --------------------- */

START_TEST(test_groups_and_wait_option)
{
    oracle o;
    cuda_oracle(&o);
    const hcga_backend_iface *f = direct_iface();
    ck_assert_uint_eq(f->struct_size, sizeof(hcga_backend_iface));
    ck_assert(f->capture_begin && f->capture_end && f->capture_replay && f->capture_free);
#ifdef HCGA_TEST_NCCL
    ck_assert(f->comm_id && f->comm_init && f->allreduce && f->broadcast && f->comm_wait);
#else
    ck_assert(!f->comm_id && !f->comm_init && !f->allreduce && !f->broadcast && !f->comm_wait);
#endif
    hcga_backend *inst = NULL;
    char err[512] = "";
    ck_assert_int_eq(f->create(0, "wait=fast", &inst, err, sizeof err), HCGA_ERR_INVALID);
    ck_assert_ptr_null(inst);
    ck_assert_msg(strstr(err, "'wait=fast': value must be block or spin") != NULL, "got '%s'", err);
    for (int k = 0; k < 2; k++) {
        hcga_status st = f->create(0, k ? "wait=spin" : "wait=block", &inst, err, sizeof err);
        if (o.devices < 1) {
            /* a valid option: create gets as far as the device */
            ck_assert_int_ne(st, HCGA_ERR_INVALID);
            ck_assert_msg(strstr(err, o.why) != NULL, "create error '%s' lacks '%s'", err, o.why);
        } else {
            ck_assert_msg(st == HCGA_OK, "%s", err);
            f->destroy(inst);
        }
        inst = NULL;
    }
}
END_TEST

/* ---- with a GPU: ops against the CPU backend ------------------------------------ */

typedef struct spec {
    int dtype, ndim;
    int64_t shape[HCGA_MAX_DIMS];
    const void *init; /* inputs and in/out tensors; NULL for outputs (NaN-filled) */
} spec;

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { return hcga_test_urand01(&rng_state); }

static int64_t numel(const spec *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static size_t bytes_of(const spec *s)
{
    return (size_t)numel(s) * hcga_dtype_size(s->dtype);
}

static float *frand(int64_t n, double lo, double hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    ck_assert(p != NULL);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
    return p;
}

/* Runs op on backend `name` created with `opts`; outputs (and in/out
 * tensors) come back in res[]. */
static void run_with(const char *name, const char *opts, int op, const hcga_op_params *p, int nin,
                     const spec *in, int nout, const spec *out, void **res)
{
    hcga_be *be = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open(name, 0, opts, &be, err, sizeof err) == 0, "%s", err);
    hcga_buffer *bufs[16];
    hcga_tensor t[16];
    hcga_op_args a = {.op = op, .num_in = nin, .num_out = nout, .p = *p};
    for (int k = 0; k < nin + nout; k++) {
        const spec *s = k < nin ? &in[k] : &out[k - nin];
        size_t nb = bytes_of(s);
        ck_assert_int_eq(hcga_be_alloc(be, nb ? nb : 8, &bufs[k]), HCGA_OK);
        if (s->init) {
            ck_assert_int_eq(hcga_be_write(be, bufs[k], 0, s->init, nb), HCGA_OK);
        } else {
            unsigned char *nan = malloc(nb ? nb : 1);
            memset(nan, 0xff, nb); /* NaN for floats, -1 for integers */
            ck_assert_int_eq(hcga_be_write(be, bufs[k], 0, nan, nb), HCGA_OK);
            free(nan);
        }
        t[k] = hcga_tensor_make(bufs[k], 0, s->dtype, s->ndim, s->shape);
        if (k < nin) a.in[k] = &t[k];
        else a.out[k - nin] = &t[k];
    }
    hcga_status st = hcga_be_run(be, &a);
    ck_assert_msg(st == HCGA_OK, "%s on %s: %s", hcga_op_name(op), name, hcga_be_error(be));
    for (int k = 0; k < nout; k++) {
        size_t nb = bytes_of(&out[k]);
        res[k] = malloc(nb ? nb : 1);
        st = hcga_be_read(be, bufs[nin + k], 0, res[k], nb);
        ck_assert_msg(st == HCGA_OK, "reading %s out[%d] on %s: %s", hcga_op_name(op), k, name,
                      hcga_be_error(be));
    }
    for (int k = 0; k < nin + nout; k++) hcga_be_free(be, bufs[k]);
    hcga_be_close(be);
}

static void run_on(const char *name, int op, const hcga_op_params *p, int nin, const spec *in,
                   int nout, const spec *out, void **res)
{
    run_with(name, NULL, op, p, nin, in, nout, out, res);
}

/* Same op on cpu and cuda; float outputs agree to rel_tol (relative to the
 * largest CPU magnitude of that output), integer outputs exactly. */
static void compare(int op, const hcga_op_params *p, int nin, const spec *in, int nout,
                    const spec *out, double rel_tol)
{
    void *rc[8], *rg[8];
    run_on("cpu", op, p, nin, in, nout, out, rc);
    run_on("cuda", op, p, nin, in, nout, out, rg);
    for (int k = 0; k < nout; k++) {
        int64_t n = numel(&out[k]);
        if (out[k].dtype == HCGA_I64) {
            ck_assert_msg(memcmp(rc[k], rg[k], (size_t)n * 8) == 0, "%s out[%d]: indices differ",
                          hcga_op_name(op), k);
        } else {
            const float *c = rc[k], *g = rg[k];
            double scale = 0, worst = 0;
            int64_t at = 0;
            for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(c[i]));
            for (int64_t i = 0; i < n; i++) {
                double d = fabs((double)c[i] - (double)g[i]);
                if (!(d <= worst)) {
                    worst = d;
                    at = i;
                }
            }
            ck_assert_msg(worst <= rel_tol * (scale > 1e-30 ? scale : 1.0),
                          "%s out[%d]: |cpu - cuda| = %g at %lld (cpu %g, cuda %g, scale %g)",
                          hcga_op_name(op), k, worst, (long long)at, c[at], g[at], scale);
        }
        free(rc[k]);
        free(rg[k]);
    }
}

#define SPEC(dt, init_, ...) {(dt), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), {__VA_ARGS__}, (init_)}

static int gpu_present(void)
{
    oracle o;
    cuda_oracle(&o);
    if (o.devices < 1) fprintf(stderr, "test_cuda_backend: no usable GPU (%s): op comparisons skipped\n", o.why);
    return o.devices >= 1;
}

START_TEST(test_gpu_conv_vs_cpu)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv = (hcga_conv_params){2, 2, 1, 1, 1, 1};
    const int64_t N = 4, C = 8, H = 17, W = 12, K = 6;
    const int64_t P = (H + 2 - 3) / 2 + 1, Q = (W + 2 - 3) / 2 + 1;
    float *x = frand(N * C * H * W, -1, 1), *w = frand(K * C * 9, -0.5, 0.5), *b = frand(K, -1, 1);
    float *dy = frand(N * K * P * Q, -1, 1);
    spec fin[3] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, w, K, C, 3, 3), SPEC(HCGA_F32, b, K)};
    spec fout[1] = {SPEC(HCGA_F32, NULL, N, K, P, Q)};
    compare(HCGA_OP_CONV2D_FWD, &p, 3, fin, 1, fout, 1e-5);
    spec din[2] = {SPEC(HCGA_F32, dy, N, K, P, Q), SPEC(HCGA_F32, w, K, C, 3, 3)};
    spec dout[1] = {SPEC(HCGA_F32, NULL, N, C, H, W)};
    compare(HCGA_OP_CONV2D_BWD_DATA, &p, 2, din, 1, dout, 1e-5);
    spec win[2] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, dy, N, K, P, Q)};
    spec wout[2] = {SPEC(HCGA_F32, NULL, K, C, 3, 3), SPEC(HCGA_F32, NULL, K)};
    compare(HCGA_OP_CONV2D_BWD_FILTER, &p, 2, win, 2, wout, 1e-5);
    free(x), free(w), free(b), free(dy);
}
END_TEST

START_TEST(test_gpu_bn_vs_cpu)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.bn = (hcga_bn_params){1e-5, 0.1, 0};
    const int64_t N = 3, C = 5, H = 7, W = 6;
    float *x = frand(N * C * H * W, -2, 3), *g = frand(C, 0.5, 1.5), *b = frand(C, -1, 1);
    float *rm = frand(C, -0.1, 0.1), *rv = frand(C, 0.9, 1.1), *dy = frand(N * C * H * W, -1, 1);
    spec in[3] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, g, C), SPEC(HCGA_F32, b, C)};
    spec out[5] = {SPEC(HCGA_F32, NULL, N, C, H, W), SPEC(HCGA_F32, NULL, C), SPEC(HCGA_F32, NULL, C),
                   SPEC(HCGA_F32, rm, C), SPEC(HCGA_F32, rv, C)};
    /* running_var must follow the unbiased convention on both */
    compare(HCGA_OP_BN_FWD_TRAIN, &p, 3, in, 5, out, 1e-5);
    void *res[5];
    run_on("cpu", HCGA_OP_BN_FWD_TRAIN, &p, 3, in, 5, out, res);
    spec bin[5] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, dy, N, C, H, W), SPEC(HCGA_F32, g, C),
                   SPEC(HCGA_F32, res[1], C), SPEC(HCGA_F32, res[2], C)};
    spec bout[3] = {SPEC(HCGA_F32, NULL, N, C, H, W), SPEC(HCGA_F32, NULL, C), SPEC(HCGA_F32, NULL, C)};
    compare(HCGA_OP_BN_BWD, &p, 5, bin, 3, bout, 1e-4);
    for (int k = 0; k < 5; k++) free(res[k]);
    free(x), free(g), free(b), free(rm), free(rv), free(dy);
}
END_TEST

START_TEST(test_gpu_kernels_vs_cpu)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    /* GEMM with both transposes and beta*c */
    memset(&p, 0, sizeof p);
    p.gemm = (hcga_gemm_params){1, 1, 0.5, 2.0};
    float *a = frand(7 * 5, -1, 1), *b = frand(9 * 7, -1, 1), *cm = frand(5 * 9, -1, 1);
    spec gin[3] = {SPEC(HCGA_F32, a, 7, 5), SPEC(HCGA_F32, b, 9, 7), SPEC(HCGA_F32, cm, 5, 9)};
    spec gout[1] = {SPEC(HCGA_F32, NULL, 5, 9)};
    compare(HCGA_OP_GEMM, &p, 3, gin, 1, gout, 1e-5);
    free(a), free(b), free(cm);

    /* ADD with per-channel broadcasting, SUM_TO back to it */
    memset(&p, 0, sizeof p);
    p.scalar = (hcga_scalar_params){1.5, -0.5};
    float *x = frand(2 * 3 * 4 * 5, -1, 1), *bc = frand(3, -1, 1);
    spec ain[2] = {SPEC(HCGA_F32, x, 2, 3, 4, 5), SPEC(HCGA_F32, bc, 1, 3, 1, 1)};
    spec aout[1] = {SPEC(HCGA_F32, NULL, 2, 3, 4, 5)};
    compare(HCGA_OP_ADD, &p, 2, ain, 1, aout, 1e-6);
    spec sin_[1] = {SPEC(HCGA_F32, x, 2, 3, 4, 5)};
    spec sout[1] = {SPEC(HCGA_F32, NULL, 1, 3, 1, 5)};
    compare(HCGA_OP_SUM_TO, &p, 1, sin_, 1, sout, 1e-5);

    /* softmax over 4 channels of a map, over 300 classes of rows */
    float *lg = frand(2 * 300 * 3, -4, 4);
    spec smi[1] = {SPEC(HCGA_F32, lg, 2, 4, 3, 5)};
    spec smo[1] = {SPEC(HCGA_F32, NULL, 2, 4, 3, 5)};
    compare(HCGA_OP_SOFTMAX_FWD, &p, 1, smi, 1, smo, 1e-5);
    spec sri[1] = {SPEC(HCGA_F32, lg, 3, 300)};
    spec sro[1] = {SPEC(HCGA_F32, NULL, 3, 300)};
    compare(HCGA_OP_SOFTMAX_FWD, &p, 1, sri, 1, sro, 1e-5);
    free(x), free(bc), free(lg);

    /* bilinear align_corners = 1, 8x4 -> 64x32 and back (gather backward) */
    memset(&p, 0, sizeof p);
    p.resize.align_corners = 1;
    float *small = frand(2 * 3 * 8 * 4, -1, 1), *big = frand(2 * 3 * 64 * 32, -1, 1);
    spec rfi[1] = {SPEC(HCGA_F32, small, 2, 3, 8, 4)};
    spec rfo[1] = {SPEC(HCGA_F32, NULL, 2, 3, 64, 32)};
    compare(HCGA_OP_RESIZE_BILINEAR_FWD, &p, 1, rfi, 1, rfo, 1e-5);
    spec rbi[1] = {SPEC(HCGA_F32, big, 2, 3, 64, 32)};
    spec rbo[1] = {SPEC(HCGA_F32, NULL, 2, 3, 8, 4)};
    compare(HCGA_OP_RESIZE_BILINEAR_BWD, &p, 1, rbi, 1, rbo, 1e-5);
    p.resize.align_corners = 0; /* and a downsampling one without align_corners */
    spec r2i[1] = {SPEC(HCGA_F32, big, 2, 3, 64, 32)};
    spec r2o[1] = {SPEC(HCGA_F32, NULL, 2, 3, 9, 5)};
    compare(HCGA_OP_RESIZE_BILINEAR_FWD, &p, 1, r2i, 1, r2o, 1e-5);
    float *dsm = frand(2 * 3 * 9 * 5, -1, 1);
    spec r3i[1] = {SPEC(HCGA_F32, dsm, 2, 3, 9, 5)};
    spec r3o[1] = {SPEC(HCGA_F32, NULL, 2, 3, 64, 32)};
    compare(HCGA_OP_RESIZE_BILINEAR_BWD, &p, 1, r3i, 1, r3o, 1e-5);
    free(small), free(big), free(dsm);
}
END_TEST

START_TEST(test_gpu_losses_vs_cpu)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    float one = 1.0f;
    /* CE_LS */
    p.loss.eps = 0.1;
    const int64_t N = 8, C = 11;
    float *lg = frand(N * C, -3, 3);
    int64_t lab[8];
    for (int i = 0; i < 8; i++) lab[i] = (i * 7) % C;
    spec ci[2] = {SPEC(HCGA_F32, lg, N, C), SPEC(HCGA_I64, lab, N)};
    spec co[1] = {SPEC(HCGA_F32, NULL, 1)};
    compare(HCGA_OP_CE_LS_FWD, &p, 2, ci, 1, co, 1e-5);
    spec cbi[3] = {SPEC(HCGA_F32, lg, N, C), SPEC(HCGA_I64, lab, N), SPEC(HCGA_F32, &one, 1)};
    spec cbo[1] = {SPEC(HCGA_F32, NULL, N, C)};
    compare(HCGA_OP_CE_LS_BWD, &p, 3, cbi, 1, cbo, 1e-5);
    free(lg);

    /* PIXEL_CE with ignored pixels */
    p.loss.ignore_label = -1;
    float *pl = frand(2 * 4 * 6 * 5, -3, 3);
    int64_t plab[60];
    for (int i = 0; i < 60; i++) plab[i] = (i % 7 == 0) ? -1 : (i * 3) % 4;
    spec pi[2] = {SPEC(HCGA_F32, pl, 2, 4, 6, 5), SPEC(HCGA_I64, plab, 2, 6, 5)};
    spec po[1] = {SPEC(HCGA_F32, NULL, 1)};
    compare(HCGA_OP_PIXEL_CE_FWD, &p, 2, pi, 1, po, 1e-5);
    spec pbi[3] = {SPEC(HCGA_F32, pl, 2, 4, 6, 5), SPEC(HCGA_I64, plab, 2, 6, 5), SPEC(HCGA_F32, &one, 1)};
    spec pbo[1] = {SPEC(HCGA_F32, NULL, 2, 4, 6, 5)};
    compare(HCGA_OP_PIXEL_CE_BWD, &p, 3, pbi, 1, pbo, 1e-5);
    free(pl);

    /* TRIPLET: 4 identities x 3 */
    p.loss.margin = 0.3;
    float *f = frand(12 * 16, -1, 1);
    int64_t tl[12];
    for (int i = 0; i < 12; i++) tl[i] = i / 3;
    spec ti[2] = {SPEC(HCGA_F32, f, 12, 16), SPEC(HCGA_I64, tl, 12)};
    spec to[2] = {SPEC(HCGA_F32, NULL, 1), SPEC(HCGA_I64, NULL, 12, 2)};
    compare(HCGA_OP_TRIPLET_FWD, &p, 2, ti, 2, to, 1e-5);
    void *res[2];
    run_on("cpu", HCGA_OP_TRIPLET_FWD, &p, 2, ti, 2, to, res);
    spec tbi[3] = {SPEC(HCGA_F32, f, 12, 16), SPEC(HCGA_I64, res[1], 12, 2), SPEC(HCGA_F32, &one, 1)};
    spec tbo[1] = {SPEC(HCGA_F32, NULL, 12, 16)};
    compare(HCGA_OP_TRIPLET_BWD, &p, 3, tbi, 1, tbo, 1e-5);
    free(res[0]), free(res[1]), free(f);

    /* SHIFT_L1, diagonal */
    memset(&p, 0, sizeof p);
    p.shift = (hcga_shift_params){0, 1, -1};
    float *s = frand(2 * 3 * 5 * 4, -1, 1);
    spec si[1] = {SPEC(HCGA_F32, s, 2, 3, 5, 4)};
    spec so[1] = {SPEC(HCGA_F32, NULL, 1)};
    compare(HCGA_OP_SHIFT_L1_FWD, &p, 1, si, 1, so, 1e-5);
    spec sbi[2] = {SPEC(HCGA_F32, s, 2, 3, 5, 4), SPEC(HCGA_F32, &one, 1)};
    spec sbo[1] = {SPEC(HCGA_F32, NULL, 2, 3, 5, 4)};
    compare(HCGA_OP_SHIFT_L1_BWD, &p, 2, sbi, 1, sbo, 1e-6);
    free(s);
}
END_TEST

/* Same inputs twice -> same bits (conv backward filter + bias reduction). */
START_TEST(test_gpu_deterministic)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    float *x = frand(8 * 16 * 32 * 16, -1, 1), *dy = frand(8 * 32 * 32 * 16, -1, 1);
    spec in[2] = {SPEC(HCGA_F32, x, 8, 16, 32, 16), SPEC(HCGA_F32, dy, 8, 32, 32, 16)};
    spec out[2] = {SPEC(HCGA_F32, NULL, 32, 16, 3, 3), SPEC(HCGA_F32, NULL, 32)};
    void *r1[2], *r2[2];
    run_on("cuda", HCGA_OP_CONV2D_BWD_FILTER, &p, 2, in, 2, out, r1);
    run_on("cuda", HCGA_OP_CONV2D_BWD_FILTER, &p, 2, in, 2, out, r2);
    ck_assert(memcmp(r1[0], r2[0], bytes_of(&out[0])) == 0);
    ck_assert(memcmp(r1[1], r2[1], bytes_of(&out[1])) == 0);
    free(r1[0]), free(r1[1]), free(r2[0]), free(r2[1]), free(x), free(dy);
}
END_TEST

/* A label out of range is found by the device and reported at the read. */
START_TEST(test_gpu_bad_label_reported)
{
    if (!gpu_present()) return;
    hcga_be *be = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open("cuda", 0, NULL, &be, err, sizeof err) == 0, "%s", err);
    hcga_buffer *bx, *bl, *bo;
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t lab[2] = {0, 7};
    ck_assert_int_eq(hcga_be_alloc(be, sizeof x, &bx), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, sizeof lab, &bl), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, 4, &bo), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(be, bx, 0, x, sizeof x), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(be, bl, 0, lab, sizeof lab), HCGA_OK);
    int64_t sx[2] = {2, 3}, sl[1] = {2}, so[1] = {1};
    hcga_tensor tx = hcga_tensor_make(bx, 0, HCGA_F32, 2, sx);
    hcga_tensor tl = hcga_tensor_make(bl, 0, HCGA_I64, 1, sl);
    hcga_tensor to = hcga_tensor_make(bo, 0, HCGA_F32, 1, so);
    hcga_op_args a = {.op = HCGA_OP_CE_LS_FWD, .num_in = 2, .num_out = 1, .in = {&tx, &tl}, .out = {&to}};
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK); /* asynchronous: not known yet */
    float loss;
    ck_assert_int_eq(hcga_be_read(be, bo, 0, &loss, 4), HCGA_ERR_INVALID);
    ck_assert_msg(strstr(hcga_be_error(be), "ce_ls_fwd") != NULL, "%s", hcga_be_error(be));
    ck_assert(isnan(loss));
    ck_assert_int_eq(hcga_be_sync(be), HCGA_OK); /* reported once */
    hcga_be_free(be, bx);
    hcga_be_free(be, bl);
    hcga_be_free(be, bo);
    hcga_be_close(be);
}
END_TEST

/* A malformed call is refused by the shared contract checker before any
 * device work, with the same "<op>: <problem>" line as the CPU backend; a
 * call the device cannot take is refused as unsupported, with a reason. */
static hcga_status bad_call(const char *name, const hcga_op_args *proto, int nin, const int64_t *const *shapes,
                            const int *ndims, const int *dtypes, char *msg, size_t len)
{
    hcga_be *be = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open(name, 0, NULL, &be, err, sizeof err) == 0, "%s", err);
    hcga_op_args a = *proto;
    hcga_buffer *bufs[8];
    hcga_tensor t[8];
    const int n = a.num_in + a.num_out;
    for (int k = 0; k < n; k++) {
        int64_t ne = 1;
        for (int i = 0; i < ndims[k]; i++) ne *= shapes[k][i];
        ck_assert_int_eq(hcga_be_alloc(be, (uint64_t)ne * hcga_dtype_size(dtypes[k]), &bufs[k]), HCGA_OK);
        t[k] = hcga_tensor_make(bufs[k], 0, dtypes[k], ndims[k], shapes[k]);
        if (k < nin) a.in[k] = &t[k];
        else a.out[k - nin] = &t[k];
    }
    hcga_status st = hcga_be_run(be, &a);
    snprintf(msg, len, "%s", hcga_be_error(be));
    ck_assert_int_eq(hcga_be_sync(be), HCGA_OK); /* nothing bad was enqueued */
    for (int k = 0; k < n; k++) hcga_be_free(be, bufs[k]);
    hcga_be_close(be);
    return st;
}

START_TEST(test_gpu_contract_messages)
{
    if (!gpu_present()) return;
    hcga_op_args a = {.op = HCGA_OP_RELU_FWD, .num_in = 1, .num_out = 1};
    const int64_t sx[2] = {2, 3}, sy[2] = {2, 4};
    const int64_t *shapes[2] = {sx, sy};
    const int nd[2] = {2, 2}, dt[2] = {HCGA_F32, HCGA_F32};
    char mc[1024], mg[1024];
    ck_assert_int_eq(bad_call("cpu", &a, 1, shapes, nd, dt, mc, sizeof mc), HCGA_ERR_INVALID);
    ck_assert_int_eq(bad_call("cuda", &a, 1, shapes, nd, dt, mg, sizeof mg), HCGA_ERR_INVALID);
    ck_assert_msg(strncmp(mg, "relu_fwd: ", 10) == 0, "cuda says '%s'", mg);
    ck_assert_str_eq(mg, mc);

    /* the N x N distance matrix of the triplet kernels: a device limit */
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_TRIPLET_FWD;
    a.num_in = 2;
    a.num_out = 2;
    a.p.loss.margin = 0.3;
    const int64_t tx[2] = {65537, 1}, tl[1] = {65537}, tloss[1] = {1}, th[2] = {65537, 2};
    const int64_t *tshapes[4] = {tx, tl, tloss, th};
    const int tnd[4] = {2, 1, 1, 2}, tdt[4] = {HCGA_F32, HCGA_I64, HCGA_F32, HCGA_I64};
    ck_assert_int_eq(bad_call("cuda", &a, 2, tshapes, tnd, tdt, mg, sizeof mg), HCGA_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(mg, "triplet_fwd: ") == mg && strstr(mg, "distance matrix"), "cuda says '%s'", mg);
}
END_TEST

/* ---- with a GPU: mixed precision (ABI 1.1) --------------------------------------- */

/* CAST on the GPU, bit for bit against hcga_half.h (the reference's
 * conversions): every 16-bit pattern widened and converted across, and
 * F32 / F64 values around ties, overflow, subnormals and NaN narrowed. */
START_TEST(test_gpu_cast_bits)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    static uint16_t all[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int src = HCGA_BF16; src <= HCGA_F16; src++) {
        spec in[1] = {SPEC(src, all, 65536)};
        spec o32[1] = {SPEC(HCGA_F32, NULL, 65536)}, o64[1] = {SPEC(HCGA_F64, NULL, 65536)};
        const int other = src == HCGA_BF16 ? HCGA_F16 : HCGA_BF16;
        spec oh[1] = {SPEC(other, NULL, 65536)};
        void *r32, *r64, *rh;
        run_on("cuda", HCGA_OP_CAST, &p, 1, in, 1, o32, &r32);
        run_on("cuda", HCGA_OP_CAST, &p, 1, in, 1, o64, &r64);
        run_on("cuda", HCGA_OP_CAST, &p, 1, in, 1, oh, &rh);
        for (int i = 0; i < 65536; i++) {
            const float want = hcga_half_to_f32(src, (uint16_t)i);
            const float got = ((float *)r32)[i];
            const double got64 = ((double *)r64)[i];
            if (want != want) {
                ck_assert_msg(got != got && got64 != got64, "%s 0x%04x: NaN lost", hcga_dtype_name(src), i);
            } else {
                ck_assert_msg(hcga_f32_bits(got) == hcga_f32_bits(want), "%s 0x%04x -> f32: 0x%08x, want 0x%08x",
                              hcga_dtype_name(src), i, hcga_f32_bits(got), hcga_f32_bits(want));
                ck_assert_msg(got64 == (double)want, "%s 0x%04x -> f64", hcga_dtype_name(src), i);
            }
            const uint16_t wh = hcga_half_from_f32(other, want), gh = ((uint16_t *)rh)[i];
            ck_assert_msg(gh == wh, "%s 0x%04x -> %s: 0x%04x, want 0x%04x", hcga_dtype_name(src), i,
                          hcga_dtype_name(other), gh, wh);
        }
        free(r32), free(r64), free(rh);
    }
    /* narrowing: special values, then random ones over a wide range */
    enum { NV = 4096 };
    static float f[NV];
    static double d[NV];
    const double sp[] = {0.0, -0.0, 1.0, 1.0 + 0x1p-8, 1.0 + 0x1p-8 + 0x1p-30, 1.0 + 0x1p-8 - 0x1p-40,
                         1.0 + 0x1p-11, 1.0 + 0x1p-11 + 0x1p-35, 65504.0, 65519.99, 65520.0, 0x1p-24,
                         0x1p-25, 0x1p-25 + 0x1p-60, 0x1p-14 - 0x1p-30, 3.3895313892515355e38, 3.4e38,
                         1e300, -1e300, 0x1p-133, 0x1p-134, 0x1p-149, 1e-320, 1.0 / 0.0, -1.0 / 0.0};
    const int nsp = (int)(sizeof sp / sizeof sp[0]);
    for (int i = 0; i < NV; i++) {
        if (i < nsp) d[i] = sp[i];
        else d[i] = (urand() - 0.5) * pow(2.0, (int)(urand() * 80) - 40);
        f[i] = (float)d[i];
    }
    f[nsp] = hcga_bits_f32(0x7fc00001u); /* NaNs with payloads, both signs */
    f[nsp + 1] = hcga_bits_f32(0xff812345u);
    d[nsp] = (double)f[nsp];
    d[nsp + 1] = -d[nsp];
    for (int dst = HCGA_BF16; dst <= HCGA_F16; dst++) {
        spec i32[1] = {SPEC(HCGA_F32, f, NV)}, i64[1] = {SPEC(HCGA_F64, d, NV)};
        spec oh[1] = {SPEC(dst, NULL, NV)};
        void *r32, *r64;
        run_on("cuda", HCGA_OP_CAST, &p, 1, i32, 1, oh, &r32);
        run_on("cuda", HCGA_OP_CAST, &p, 1, i64, 1, oh, &r64);
        for (int i = 0; i < NV; i++) {
            const uint16_t w32 = hcga_half_from_f32(dst, f[i]), w64 = hcga_half_from_f64(dst, d[i]);
            const uint16_t g32 = ((uint16_t *)r32)[i], g64 = ((uint16_t *)r64)[i];
            if (f[i] != f[i]) { /* NaN: the reference keeps sign and payload top bits */
                ck_assert_msg(g32 == w32, "f32 NaN 0x%08x -> %s: 0x%04x, want 0x%04x", hcga_f32_bits(f[i]),
                              hcga_dtype_name(dst), g32, w32);
                ck_assert(hcga_half_to_f32(dst, g64) != hcga_half_to_f32(dst, g64));
                continue;
            }
            ck_assert_msg(g32 == w32, "f32 %a -> %s: 0x%04x, want 0x%04x", (double)f[i], hcga_dtype_name(dst), g32, w32);
            ck_assert_msg(g64 == w64, "f64 %a -> %s: 0x%04x, want 0x%04x", d[i], hcga_dtype_name(dst), g64, w64);
        }
        free(r32), free(r64);
    }
}
END_TEST

/* Half convolutions and GEMM against the CPU's F32 op on the same (exactly
 * widened) values: within one unit of the half format's last place of the
 * output's scale (F32 accumulation, one or two roundings). */
static void half_compare(int dt, int op, const hcga_op_params *p, int nin, spec *in, int nout, spec *out,
                         const char *opts)
{
    spec fin[8], fout[8];
    void *hin[8], *fbuf[8];
    for (int k = 0; k < nin; k++) { /* in[k].init: float values; round them, widen them back */
        const int64_t n = numel(&in[k]);
        uint16_t *h = malloc((size_t)n * 2);
        float *w = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            h[i] = hcga_half_from_f32(dt, ((const float *)in[k].init)[i]);
            w[i] = hcga_half_to_f32(dt, h[i]);
        }
        hin[k] = h;
        fbuf[k] = w;
        fin[k] = in[k];
        fin[k].dtype = HCGA_F32;
        fin[k].init = w;
        in[k].dtype = dt;
        in[k].init = h;
    }
    for (int k = 0; k < nout; k++) {
        fout[k] = out[k];
        fout[k].dtype = HCGA_F32;
        out[k].dtype = dt;
    }
    void *rc[8], *rg[8];
    run_on("cpu", op, p, nin, fin, nout, fout, rc);
    run_with("cuda", opts, op, p, nin, in, nout, out, rg);
    const double ulp = dt == HCGA_BF16 ? 0x1p-7 : 0x1p-10;
    for (int k = 0; k < nout; k++) {
        const int64_t n = numel(&out[k]);
        const float *c = rc[k];
        const uint16_t *g = rg[k];
        double scale = 0, worst = 0;
        for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(c[i]));
        for (int64_t i = 0; i < n; i++) {
            const double e = fabs((double)c[i] - (double)hcga_half_to_f32(dt, g[i]));
            if (!(e <= worst)) worst = e;
        }
        ck_assert_msg(worst <= ulp * scale, "%s %s out[%d]: worst |cpu f32 - cuda| = %g, scale %g",
                      hcga_op_name(op), hcga_dtype_name(dt), k, worst, scale);
        free(rc[k]);
        free(rg[k]);
    }
    for (int k = 0; k < nin; k++) free(hin[k]), free(fbuf[k]);
}

START_TEST(test_gpu_half_conv_gemm)
{
    if (!gpu_present()) return;
    hcga_op_params p;
    const int64_t N = 4, C = 16, H = 17, W = 12, K = 8;
    const int64_t P = (H + 2 - 3) / 2 + 1, Q = (W + 2 - 3) / 2 + 1;
    float *x = frand(N * C * H * W, -1, 1), *w = frand(K * C * 9, -0.5, 0.5), *b = frand(K, -1, 1);
    float *dy = frand(N * K * P * Q, -1, 1);
    float *ga = frand(40 * 24, -1, 1), *gb = frand(24 * 36, -1, 1), *gc = frand(40 * 36, -1, 1);
    for (int dt = HCGA_BF16; dt <= HCGA_F16; dt++) {
        for (int timed = 0; timed < 2; timed++) { /* heuristic, then cudnnFind* choices */
            const char *opts = timed ? "algo=find" : NULL;
            memset(&p, 0, sizeof p);
            p.conv = (hcga_conv_params){2, 2, 1, 1, 1, 1};
            spec fin[3] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, w, K, C, 3, 3), SPEC(HCGA_F32, b, K)};
            spec fout[1] = {SPEC(HCGA_F32, NULL, N, K, P, Q)};
            half_compare(dt, HCGA_OP_CONV2D_FWD, &p, 3, fin, 1, fout, opts);
            spec din[2] = {SPEC(HCGA_F32, dy, N, K, P, Q), SPEC(HCGA_F32, w, K, C, 3, 3)};
            spec dout[1] = {SPEC(HCGA_F32, NULL, N, C, H, W)};
            half_compare(dt, HCGA_OP_CONV2D_BWD_DATA, &p, 2, din, 1, dout, opts);
            spec win[2] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, dy, N, K, P, Q)};
            spec wout[2] = {SPEC(HCGA_F32, NULL, K, C, 3, 3), SPEC(HCGA_F32, NULL, K)};
            half_compare(dt, HCGA_OP_CONV2D_BWD_FILTER, &p, 2, win, 2, wout, opts);
        }
        memset(&p, 0, sizeof p);
        p.gemm = (hcga_gemm_params){0, 0, 0.5, 2.0};
        spec gin[3] = {SPEC(HCGA_F32, ga, 40, 24), SPEC(HCGA_F32, gb, 24, 36), SPEC(HCGA_F32, gc, 40, 36)};
        spec gout[1] = {SPEC(HCGA_F32, NULL, 40, 36)};
        half_compare(dt, HCGA_OP_GEMM, &p, 3, gin, 1, gout, NULL);
        p.gemm = (hcga_gemm_params){1, 1, 1.0, 0.0};
        spec tin[2] = {SPEC(HCGA_F32, gb, 24, 36), SPEC(HCGA_F32, ga, 40, 24)};
        spec tout[1] = {SPEC(HCGA_F32, NULL, 36, 40)};
        half_compare(dt, HCGA_OP_GEMM, &p, 2, tin, 1, tout, NULL);
    }
    free(x), free(w), free(b), free(dy), free(ga), free(gb), free(gc);
}
END_TEST

static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* algo=cache: the first instance finds and persists one entry per
 * direction; a second instance finds nothing new and gives the same bits. */
START_TEST(test_gpu_algo_cache)
{
    if (!gpu_present()) return;
    char dir[] = "/tmp/hcga-cuda-cache-XXXXXX", file[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("HCGA_CACHE_DIR", dir, 1);
    snprintf(file, sizeof file, "%s/cudnn-algos.v1.txt", dir);
    hcga_op_params p;
    memset(&p, 0, sizeof p);
    p.conv = (hcga_conv_params){1, 1, 1, 1, 1, 1};
    const int64_t N = 8, C = 32, H = 32, W = 16, K = 32;
    float *x = frand(N * C * H * W, -1, 1), *w = frand(K * C * 9, -0.5, 0.5);
    float *dy = frand(N * K * H * W, -1, 1);
    spec fin[2] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, w, K, C, 3, 3)};
    spec fout[1] = {SPEC(HCGA_F32, NULL, N, K, H, W)};
    spec win[2] = {SPEC(HCGA_F32, x, N, C, H, W), SPEC(HCGA_F32, dy, N, K, H, W)};
    spec wout[1] = {SPEC(HCGA_F32, NULL, K, C, 3, 3)};
    spec din[2] = {SPEC(HCGA_F32, dy, N, K, H, W), SPEC(HCGA_F32, w, K, C, 3, 3)};
    spec dout[1] = {SPEC(HCGA_F32, NULL, N, C, H, W)};
    void *r[2][3];
    for (int round = 0; round < 2; round++) {
        run_with("cuda", "algo=cache", HCGA_OP_CONV2D_FWD, &p, 2, fin, 1, fout, &r[round][0]);
        run_with("cuda", "algo=cache", HCGA_OP_CONV2D_BWD_FILTER, &p, 2, win, 1, wout, &r[round][1]);
        run_with("cuda", "algo=cache", HCGA_OP_CONV2D_BWD_DATA, &p, 2, din, 1, dout, &r[round][2]);
        ck_assert_int_eq(count_lines(file, "|f32|NCHW|fma|det|n8 c32 h32 w16 k32 r3 s3 pad1,1 stride1,1 dil1,1\t"), 3);
    }
    ck_assert_int_eq(count_lines(file, "hcga-cudnn-algo-cache 1"), 1);
    ck_assert(memcmp(r[0][0], r[1][0], (size_t)(N * K * H * W) * 4) == 0);
    ck_assert(memcmp(r[0][1], r[1][1], (size_t)(K * C * 9) * 4) == 0);
    ck_assert(memcmp(r[0][2], r[1][2], (size_t)(N * C * H * W) * 4) == 0);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) free(r[i][k]);
    free(x), free(w), free(dy);
    unlink(file);
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", file);
    unlink(lock);
    rmdir(dir);
}
END_TEST

/* ---- with a GPU: the ABI 1.2 groups ------------------------------------------------ */

static hcga_be *open_cuda(const char *opts)
{
    hcga_be *be = NULL;
    char err[1024];
    ck_assert_msg(hcga_be_open("cuda", 0, opts, &be, err, sizeof err) == 0, "%s", err);
    return be;
}

/* n elements of dtype dt, finite, from the test's generator. */
static void *comm_values(int dt, int64_t n)
{
    void *p = malloc((size_t)n * hcga_dtype_size(dt));
    ck_assert(p != NULL);
    for (int64_t i = 0; i < n; i++) {
        double v = -3.0 + 6.0 * urand();
        switch (dt) {
        case HCGA_F32: ((float *)p)[i] = (float)v; break;
        case HCGA_F64: ((double *)p)[i] = v; break;
        case HCGA_BF16: ((uint16_t *)p)[i] = hcga_f64_to_bf16(v); break;
        default: ((uint16_t *)p)[i] = hcga_f64_to_f16(v); break;
        }
    }
    return p;
}

/* With one rank, allreduce SUM and AVG and broadcast from 0 leave t as it is. */
static void one_rank_unchanged(hcga_be *be, int dt)
{
    const int64_t n = 1000;
    size_t nb = (size_t)n * hcga_dtype_size(dt);
    void *v = comm_values(dt, n), *got = malloc(nb);
    hcga_buffer *b = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, nb, &b), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(be, b, 0, v, nb), HCGA_OK);
    hcga_tensor t = hcga_tensor_make(b, 0, dt, 1, &n);
    ck_assert_msg(hcga_be_allreduce(be, &t, HCGA_COMM_SUM) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_msg(hcga_be_allreduce(be, &t, HCGA_COMM_AVG) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_msg(hcga_be_broadcast(be, &t, 0) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_int_eq(hcga_be_comm_wait(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, b, 0, got, nb), HCGA_OK);
    ck_assert_msg(memcmp(v, got, nb) == 0, "%s: one-rank collectives changed the values", hcga_dtype_name(dt));
    hcga_be_free(be, b);
    free(v);
    free(got);
}

START_TEST(test_gpu_nccl_one_rank)
{
    if (!gpu_present()) return;
    hcga_be *be = open_cuda(NULL);
#ifndef HCGA_TEST_NCCL
    ck_assert_int_eq(hcga_be_has_comm(be), 0);
    fprintf(stderr, "test_cuda_backend: the plugin was built without NCCL: collectives skipped\n");
    hcga_be_close(be);
    return;
#endif
    ck_assert_int_eq(hcga_be_has_comm(be), 1);
    const int64_t one = 1;
    hcga_buffer *s = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 8, &s), HCGA_OK);
    hcga_tensor ts = hcga_tensor_make(s, 0, HCGA_F32, 1, &one);
    ck_assert_int_eq(hcga_be_allreduce(be, &ts, HCGA_COMM_SUM), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "allreduce: no communicator (comm_init first)");

    unsigned char id[HCGA_COMM_ID_BYTES];
    uint32_t len = 0;
    ck_assert_msg(hcga_be_comm_id(be, id, &len) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_uint_eq(len, 128); /* sizeof(ncclUniqueId) */
    ck_assert_msg(hcga_be_comm_init(be, id, len, 0, 1) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_int_eq(hcga_be_comm_init(be, id, len, 0, 1), HCGA_ERR_INVALID); /* joined already */

    const int dts[4] = {HCGA_F32, HCGA_F64, HCGA_BF16, HCGA_F16};
    for (int k = 0; k < 4; k++) one_rank_unchanged(be, dts[k]);

    /* ordering: FILL on the compute stream, allreduce, comm_wait, then ADD
     * on the compute stream reads the reduced values */
    const int64_t n = 4096;
    hcga_buffer *bx = NULL, *by = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, n * 4, &bx), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, n * 4, &by), HCGA_OK);
    hcga_tensor x = hcga_tensor_make(bx, 0, HCGA_F32, 1, &n), y = hcga_tensor_make(by, 0, HCGA_F32, 1, &n);
    hcga_op_args a = {.op = HCGA_OP_FILL, .num_out = 1, .out = {&x}, .p.scalar = {3.0, 0.0}};
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    ck_assert_int_eq(hcga_be_allreduce(be, &x, HCGA_COMM_SUM), HCGA_OK);
    ck_assert_int_eq(hcga_be_comm_wait(be), HCGA_OK);
    a = (hcga_op_args){.op = HCGA_OP_ADD, .num_in = 2, .num_out = 1, .in = {&x, &x}, .out = {&y},
                       .p.scalar = {1.0, 1.0}};
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    float *got = malloc(n * 4);
    ck_assert_int_eq(hcga_be_read(be, by, 0, got, n * 4), HCGA_OK);
    for (int64_t i = 0; i < n; i++) ck_assert_msg(got[i] == 6.0f, "y[%lld] = %g", (long long)i, got[i]);
    free(got);

    /* refusals */
    ck_assert_int_eq(hcga_be_allreduce(be, &x, 9), HCGA_ERR_INVALID);
    ck_assert_int_eq(hcga_be_broadcast(be, &x, 1), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "broadcast: root 1 is not a rank (0..0)");
    hcga_tensor xi = hcga_tensor_make(bx, 0, HCGA_I64, 1, &one);
    ck_assert_int_eq(hcga_be_allreduce(be, &xi, HCGA_COMM_SUM), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "allreduce: dtype i64 (f32, f64, bf16 or f16 only)");
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(hcga_be_allreduce(be, &x, HCGA_COMM_SUM), HCGA_ERR_INVALID);
    ck_assert_msg(strstr(hcga_be_error(be), "not allowed while capturing") != NULL, "%s", hcga_be_error(be));
    hcga_capture *rec = NULL;
    if (hcga_be_capture_end(be, &rec) == HCGA_OK) hcga_be_capture_free(be, rec);
    ck_assert_int_eq(hcga_be_sync(be), HCGA_OK);

    hcga_be_free(be, s);
    hcga_be_free(be, bx);
    hcga_be_free(be, by);
    hcga_be_close(be);
}
END_TEST

/* triplet_fwd on N = 1024 needs 4 MiB of kernel scratch (the distance
 * matrix): more than the 1 MiB an instance starts with.  bufs: x, labels,
 * loss, hard, allocated and written by triplet_bufs (outside a capture). */
enum { TRI_N = 1024, TRI_D = 8 };

static void triplet_bufs(hcga_be *be, hcga_buffer **bufs)
{
    ck_assert_int_eq(hcga_be_alloc(be, TRI_N * TRI_D * 4, &bufs[0]), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, TRI_N * 8, &bufs[1]), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, 4, &bufs[2]), HCGA_OK);
    ck_assert_int_eq(hcga_be_alloc(be, TRI_N * 16, &bufs[3]), HCGA_OK);
    float *x = frand(TRI_N * TRI_D, -1, 1);
    int64_t *lab = malloc(TRI_N * 8);
    ck_assert(lab != NULL);
    for (int64_t i = 0; i < TRI_N; i++) lab[i] = i % 16;
    ck_assert_int_eq(hcga_be_write(be, bufs[0], 0, x, TRI_N * TRI_D * 4), HCGA_OK);
    ck_assert_int_eq(hcga_be_write(be, bufs[1], 0, lab, TRI_N * 8), HCGA_OK);
    free(x);
    free(lab);
}

static hcga_status triplet_run(hcga_be *be, hcga_buffer *const *bufs)
{
    const int64_t xs[2] = {TRI_N, TRI_D}, ls[1] = {TRI_N}, one[1] = {1}, hs[2] = {TRI_N, 2};
    hcga_tensor x = hcga_tensor_make(bufs[0], 0, HCGA_F32, 2, xs);
    hcga_tensor l = hcga_tensor_make(bufs[1], 0, HCGA_I64, 1, ls);
    hcga_tensor loss = hcga_tensor_make(bufs[2], 0, HCGA_F32, 1, one);
    hcga_tensor h = hcga_tensor_make(bufs[3], 0, HCGA_I64, 2, hs);
    hcga_op_args a = {.op = HCGA_OP_TRIPLET_FWD, .num_in = 2, .num_out = 2, .in = {&x, &l}, .out = {&loss, &h}};
    a.p.loss.margin = 0.3;
    return hcga_be_run(be, &a);
}

START_TEST(test_gpu_capture_conv_bn_relu)
{
    if (!gpu_present()) return;
    hcga_be *be = open_cuda(NULL);
    ck_assert_int_eq(hcga_be_has_capture(be), 1);
    hcga_test_cbr q;
    hcga_test_cbr_alloc(be, &q);
    float *x1 = frand(HCGA_CBR_XN, -1, 1), *x2 = frand(HCGA_CBR_XN, -1, 1);
    static hcga_test_cbr_out ref1, ref2, got;

    /* direct runs (also the warm-up: algorithm choice, workspace) */
    hcga_test_cbr_input(be, &q, x1);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &ref1);
    hcga_test_cbr_input(be, &q, x2);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &ref2);
    ck_assert(memcmp(&ref1, &ref2, sizeof ref1) != 0);

    /* capture: host calls refused, nothing runs */
    hcga_test_cbr_input(be, &q, x1);
    ck_assert_msg(hcga_be_capture_begin(be) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_int_eq(hcga_be_write(be, q.x, 0, x2, 4), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be),
                     "buffer_write: not allowed while capturing a graph (between capture_begin and capture_end)");
    ck_assert_int_eq(hcga_be_sync(be), HCGA_ERR_INVALID);
    hcga_buffer *nb = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 64, &nb), HCGA_ERR_INVALID);
    hcga_test_cbr_issue(be, &q);
    hcga_capture *rec = NULL;
    ck_assert_msg(hcga_be_capture_end(be, &rec) == HCGA_OK, "%s", hcga_be_error(be));
    float z0 = 0;
    ck_assert_int_eq(hcga_be_read(be, q.z, 0, &z0, 4), HCGA_OK);
    ck_assert_msg(z0 == -12345.0f, "z[0] = %g after capture: the capture ran the ops", z0);

    /* replays on new inputs: the direct results, bit for bit */
    for (int k = 0; k < 2; k++) {
        hcga_test_cbr_input(be, &q, k ? x2 : x1);
        ck_assert_msg(hcga_be_capture_replay(be, rec) == HCGA_OK, "%s", hcga_be_error(be));
        hcga_test_cbr_read(be, &q, &got);
        ck_assert_msg(memcmp(&got, k ? &ref2 : &ref1, sizeof got) == 0, "replay %d differs from the direct run", k + 1);
    }
    hcga_be_capture_free(be, rec);

    /* a capture that would grow the scratch fails cleanly; the stream goes on */
    hcga_buffer *tb[4];
    triplet_bufs(be, tb);
    ck_assert_int_eq(hcga_be_capture_begin(be), HCGA_OK);
    ck_assert_int_eq(triplet_run(be, tb), HCGA_ERR_INVALID);
    ck_assert_msg(strstr(hcga_be_error(be), "triplet_fwd: the kernel scratch would grow from ") != NULL, "%s",
                  hcga_be_error(be));
    rec = (hcga_capture *)0x1;
    ck_assert_int_eq(hcga_be_capture_end(be, &rec), HCGA_ERR_INVALID);
    ck_assert_ptr_null(rec);
    ck_assert_msg(strstr(hcga_be_error(be), "capture_end: an op failed while capturing, no graph: triplet_fwd:") ==
                      hcga_be_error(be),
                  "%s", hcga_be_error(be));
    ck_assert_msg(triplet_run(be, tb) == HCGA_OK, "%s", hcga_be_error(be));
    ck_assert_msg(hcga_be_sync(be) == HCGA_OK, "%s", hcga_be_error(be));
    hcga_test_cbr_input(be, &q, x1);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref1, sizeof got) == 0, "direct run after a failed capture differs");
    for (int k = 0; k < 4; k++) hcga_be_free(be, tb[k]);
    hcga_test_cbr_free(be, &q);
    hcga_be_close(be);

    /* wait=spin computes the same (only the host's waiting differs) */
    be = open_cuda("wait=spin");
    hcga_test_cbr_alloc(be, &q);
    hcga_test_cbr_input(be, &q, x1);
    hcga_test_cbr_issue(be, &q);
    hcga_test_cbr_read(be, &q, &got);
    ck_assert_msg(memcmp(&got, &ref1, sizeof got) == 0, "wait=spin differs from wait=block");
    hcga_test_cbr_free(be, &q);
    hcga_be_close(be);
    free(x1);
    free(x2);
}
END_TEST

static Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda_backend");
    TCase *t = hcga_test_tcase(s, "loader");
    tcase_set_timeout(t, 120);
    HCGA_ADD_TESTS(t, test_scan_reports_cuda, test_open_without_gpu_fails_cleanly,
                   test_direct_calls_do_not_crash, test_groups_and_wait_option);
    TCase *g = hcga_test_tcase(s, "gpu_vs_cpu");
    tcase_set_timeout(g, 300);
    HCGA_ADD_TESTS(g, test_gpu_conv_vs_cpu, test_gpu_bn_vs_cpu, test_gpu_kernels_vs_cpu,
                   test_gpu_losses_vs_cpu, test_gpu_deterministic, test_gpu_bad_label_reported,
                   test_gpu_contract_messages, test_gpu_cast_bits, test_gpu_half_conv_gemm,
                   test_gpu_algo_cache, test_gpu_nccl_one_rank, test_gpu_capture_conv_bn_relu);
    return s;
}

int main(void)
{
    return hcga_test_run(cuda_suite());
}
