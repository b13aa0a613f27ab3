/*
 * test_loader.c - the plugin loader (frontend/backend/plugin_loader.c) against the
 * fake plugins of tests/fake_plugin.c and the template backend.
 *
 * HCGA_PLUGIN_PATH is set to the build tree's tests/.libs and
 * plugins/template/.libs before the suite runs.  The expected texts below
 * are written out by hand from backend.h's contract and the header's
 * constants, never taken from the loader's own output.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "testutil.h"

#define TESTS_LIBS HCGA_BUILDDIR "/tests/.libs"
#define TEMPLATE_LIBS HCGA_BUILDDIR "/plugins/template/.libs"

static char err[4096];

#define ck_assert_contains(hay, needle)                                                      \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in \"%s\"", (needle), (hay))

/* Open must fail; returns the reason. */
static const char *open_fails(const char *name)
{
    hcga_be *be = (hcga_be *)0x1;
    err[0] = '\0';
    int rc = hcga_be_open(name, 0, NULL, &be, err, sizeof err);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_null(be);
    ck_assert_msg(err[0] != '\0', "no reason for %s", name);
    ck_assert_msg(strchr(err, '\n') == NULL, "reason is not one line: %s", err);
    return err;
}

static hcga_be *open_ok(const char *name, const char *options)
{
    hcga_be *be = NULL;
    err[0] = '\0';
    int rc = hcga_be_open(name, 0, options, &be, err, sizeof err);
    ck_assert_msg(rc == 0, "opening %s failed: %s", name, err);
    ck_assert_ptr_nonnull(be);
    return be;
}

static hcga_op_args op_args(int op)
{
    hcga_op_args a;
    memset(&a, 0, sizeof a);
    a.op = op;
    return a;
}

/* ---- refused plugins ---------------------------------------------------- */

START_TEST(test_abi_major)
{
    const char *r = open_fails("fake_major");
    ck_assert_contains(r, "ABI major 2, hcga expects 1");
    ck_assert_contains(r, TESTS_LIBS "/hcga_backend_fake_major.so");
    hcga_plugin_entry e;
    ck_assert_int_ne(hcga_plugin_find("fake_major", &e), 0);
    ck_assert_int_eq(e.ok, 0);
    ck_assert_contains(e.reason, "ABI major 2, hcga expects 1");
    ck_assert_str_eq(e.path, TESTS_LIBS "/hcga_backend_fake_major.so");
}
END_TEST

START_TEST(test_struct_size)
{
    char want[128];
    snprintf(want, sizeof want, "sizeof(hcga_tensor) is %u in the plugin, %u in hcga",
             (unsigned)sizeof(hcga_tensor) + 8, (unsigned)sizeof(hcga_tensor));
    ck_assert_contains(open_fails("fake_size"), want);
}
END_TEST

START_TEST(test_missing_symbol)
{
    const char *r = open_fails("fake_nosym");
    ck_assert_contains(r, "no symbol hcga_plugin_descriptor_v1");
    /* dlerror's own text names the symbol too */
    ck_assert_contains(r, "undefined symbol: hcga_plugin_descriptor_v1");
}
END_TEST

START_TEST(test_missing_library)
{
    const char *r = open_fails("fake_missinglib");
    ck_assert_contains(r, "dlopen failed");
    ck_assert_contains(r, "libhcga_does_not_exist.so: cannot open shared object file");
}
END_TEST

START_TEST(test_missing_file)
{
    const char *r = open_fails("nonexistent");
    ck_assert_contains(r, "no plugin file hcga_backend_nonexistent.so found in");
    ck_assert_contains(r, TESTS_LIBS);
    ck_assert_contains(r, HCGA_PKGLIBDIR);
    hcga_plugin_entry e;
    ck_assert_int_ne(hcga_plugin_find("nonexistent", &e), 0);
    ck_assert_str_eq(e.path, "");
    ck_assert_contains(e.reason, "hcga_backend_nonexistent.so");
}
END_TEST

START_TEST(test_bad_name)
{
    ck_assert_contains(open_fails("../etc/x"), "invalid backend name '../etc/x'");
    ck_assert_contains(open_fails(""), "invalid backend name");
}
END_TEST

START_TEST(test_misnamed)
{
    ck_assert_contains(open_fails("fake_misnamed"),
                       "descriptor name 'some_other_name' does not match the file name");
}
END_TEST

START_TEST(test_probe_fails)
{
    const char *r = open_fails("fake_probefail");
    ck_assert_contains(r, "unavailable: fake driver is missing (libfakedrv.so.1 not loaded)");
}
END_TEST

START_TEST(test_bad_device_and_options)
{
    hcga_be *be = NULL;
    ck_assert_int_ne(hcga_be_open("fake_good", 3, NULL, &be, err, sizeof err), 0);
    ck_assert_contains(err, "device 3 does not exist (devices: 0..0)");
    ck_assert_int_ne(hcga_be_open("fake_good", 0, "bogus=1", &be, err, sizeof err), 0);
    ck_assert_contains(err, "create failed: fake: unknown option 'bogus=1'");
    ck_assert_ptr_null(be);
}
END_TEST

/* ---- the good plugin ---------------------------------------------------- */

START_TEST(test_good_plugin_ops)
{
    hcga_be *be = open_ok("fake_good", NULL);
    ck_assert_str_eq(be->name, "fake_good");
    ck_assert_str_eq(be->path, TESTS_LIBS "/hcga_backend_fake_good.so");
    ck_assert_int_eq(be->device, 0);

    hcga_op_args a = op_args(HCGA_OP_RELU_FWD);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);

    /* NULL entry inside the table */
    a = op_args(HCGA_OP_CONV2D_FWD);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "fake_good: op conv2d_fwd is not supported");

    /* beyond the plugin's num_ops (7) */
    a = op_args(HCGA_OP_SIGMOID_FWD);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "fake_good: op sigmoid_fwd is not supported");
    a = op_args(HCGA_OP_SGD_STEP);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "fake_good: op sgd_step is not supported");

    /* out of the enum entirely */
    a = op_args(-1);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "fake_good: op unknown_op is not supported");
    a = op_args(1000000);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);

    /* a failing op: the plugin's last_error prefixed by the op name */
    a = op_args(HCGA_OP_BN_FWD_TRAIN);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_DEVICE);
    ck_assert_str_eq(hcga_be_error(be), "bn_fwd_train: synthetic device failure");

    /* buffer errors are captured the same way */
    hcga_buffer *buf = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 16, &buf), HCGA_OK);
    ck_assert_ptr_nonnull(buf);
    float v[8] = {0};
    ck_assert_int_eq(hcga_be_write(be, buf, 8, v, sizeof v), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "buffer_write: write of 32 bytes out of range");
    ck_assert_int_eq(hcga_be_read(be, buf, 0, v, 16), HCGA_OK);
    ck_assert_int_eq(hcga_be_sync(be), HCGA_OK);
    hcga_be_free(be, buf);
    hcga_be_close(be);
}
END_TEST

START_TEST(test_newer_minor)
{
    hcga_be *be = open_ok("fake_newminor", NULL);
    hcga_op_args a = op_args(HCGA_OP_RELU_FWD);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    /* the plugin has an op at index HCGA_OP_COUNT; hcga must not call it */
    a = op_args(HCGA_OP_COUNT);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "fake_newminor: op unknown_op is not supported");
    hcga_be_close(be);
}
END_TEST

/* ---- search path and scan ----------------------------------------------- */

static const hcga_plugin_entry *find_entry(const hcga_plugin_entry *e, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) return &e[i];
    return NULL;
}

START_TEST(test_scan)
{
    static hcga_plugin_entry e[64];
    int n = hcga_plugins_scan(e, 64);
    ck_assert_int_ge(n, 9);
    static const struct {
        const char *name;
        int ok;
        const char *reason;
    } want[] = {
        {"fake_good", 1, NULL},
        {"fake_newminor", 1, NULL},
        {"template", 1, NULL},
        {"fake_major", 0, "ABI major 2, hcga expects 1"},
        {"fake_size", 0, "sizeof(hcga_tensor)"},
        {"fake_nosym", 0, "no symbol hcga_plugin_descriptor_v1"},
        {"fake_missinglib", 0, "libhcga_does_not_exist.so"},
        {"fake_probefail", 0, "fake driver is missing"},
        {"fake_misnamed", 0, "descriptor name 'some_other_name'"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const hcga_plugin_entry *x = find_entry(e, n, want[i].name);
        ck_assert_msg(x != NULL, "%s not found by the scan", want[i].name);
        ck_assert_msg(x->ok == want[i].ok, "%s: ok=%d (%s)", want[i].name, x->ok, x->reason);
        if (want[i].ok) {
            ck_assert_int_eq(x->num_devices, 1);
        } else {
            ck_assert_contains(x->reason, want[i].reason);
        }
    }
    ck_assert_str_eq(find_entry(e, n, "template")->path, TEMPLATE_LIBS "/hcga_backend_template.so");
    /* each name once */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) ck_assert_str_ne(e[i].name, e[j].name);

    hcga_device_info info;
    ck_assert_int_eq(hcga_plugin_device_info(find_entry(e, n, "fake_good"), 0, &info, err, sizeof err),
                     HCGA_OK);
    ck_assert_str_eq(info.name, "fake device");
    ck_assert_str_eq(info.version, "fake 1.2.3");
    ck_assert_uint_eq(info.memory_total, (uint64_t)3 << 30);
}
END_TEST

/* The first directory holding a name wins, even when that file is broken. */
START_TEST(test_search_order)
{
    char dir[] = "/tmp/hcga_test_loader_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/hcga_backend_fake_good.so", dir);
    ck_assert_int_eq(symlink(TESTS_LIBS "/hcga_backend_fake_major.so", link), 0);

    char path[2 * PATH_MAX];
    /* empty components are skipped */
    snprintf(path, sizeof path, "::%s:" TESTS_LIBS ":", dir);
    setenv("HCGA_PLUGIN_PATH", path, 1);
    const char *r = open_fails("fake_good");
    ck_assert_contains(r, link);
    ck_assert_contains(r, "ABI major 2, hcga expects 1");

    /* with the directory after tests/.libs, the real file wins */
    snprintf(path, sizeof path, TESTS_LIBS ":%s", dir);
    setenv("HCGA_PLUGIN_PATH", path, 1);
    hcga_be *be = open_ok("fake_good", NULL);
    ck_assert_str_eq(be->path, TESTS_LIBS "/hcga_backend_fake_good.so");
    hcga_be_close(be);

    unlink(link);
    rmdir(dir);
    setenv("HCGA_PLUGIN_PATH", TESTS_LIBS ":" TEMPLATE_LIBS, 1);
}
END_TEST

/* ---- the template backend through the loader ------------------------------ */

START_TEST(test_template_backend)
{
    hcga_be *be = open_ok("template", NULL);
    hcga_buffer *buf = NULL;
    ck_assert_int_eq(hcga_be_alloc(be, 6 * sizeof(float) * 2, &buf), HCGA_OK);
    const float x[6] = {-1.5f, 0.0f, 2.0f, -0.0f, 3.25f, -7.0f};
    ck_assert_int_eq(hcga_be_write(be, buf, 0, x, sizeof x), HCGA_OK);

    int64_t shape[2] = {2, 3};
    hcga_tensor tx = hcga_tensor_make(buf, 0, HCGA_F32, 2, shape);
    hcga_tensor ty = hcga_tensor_make(buf, sizeof x, HCGA_F32, 2, shape);
    hcga_op_args a = op_args(HCGA_OP_RELU_FWD);
    a.num_in = 1;
    a.num_out = 1;
    a.in[0] = &tx;
    a.out[0] = &ty;
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    float y[6];
    ck_assert_int_eq(hcga_be_read(be, buf, sizeof x, y, sizeof y), HCGA_OK);
    const float want[6] = {0.0f, 0.0f, 2.0f, 0.0f, 3.25f, 0.0f};
    for (int i = 0; i < 6; i++) ck_assert_float_eq(y[i], want[i]);

    /* FILL with a parameter */
    a = op_args(HCGA_OP_FILL);
    a.num_out = 1;
    a.out[0] = &tx;
    a.p.scalar.a = 0.5;
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_OK);
    ck_assert_int_eq(hcga_be_read(be, buf, 0, y, sizeof y), HCGA_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(y[i], 0.5f);

    /* a shape error from the plugin reaches hcga_be_error, prefixed once */
    int64_t other[2] = {3, 2};
    hcga_tensor tz = hcga_tensor_make(buf, sizeof x, HCGA_F32, 2, other);
    a = op_args(HCGA_OP_RELU_FWD);
    a.num_in = 1;
    a.num_out = 1;
    a.in[0] = &tx;
    a.out[0] = &tz;
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "relu_fwd: y has shape [3,2] but x has [2,3]");

    /* a tensor past the end of its buffer is refused, not read */
    hcga_tensor tbig = hcga_tensor_make(buf, 2 * sizeof x, HCGA_F32, 2, shape);
    a.out[0] = &tbig;
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_INVALID);
    ck_assert_str_eq(hcga_be_error(be), "relu_fwd: y [2,3] at offset 48 overruns its buffer of 48 bytes");

    a = op_args(HCGA_OP_GEMM);
    ck_assert_int_eq(hcga_be_run(be, &a), HCGA_ERR_UNSUPPORTED);
    ck_assert_str_eq(hcga_be_error(be), "template: op gemm is not supported");

    hcga_be_free(be, buf);
    hcga_be_close(be);

    /* threads=N is the option every backend accepts; others are refused */
    ck_assert_msg(hcga_be_open("template", 0, "threads=2", &be, err, sizeof err) == 0, "%s", err);
    hcga_be_close(be);
    ck_assert_int_ne(hcga_be_open("template", 0, "threads=0", &be, err, sizeof err), 0);
    ck_assert_contains(err, "option 'threads=0': threads must be 1..4096");
    ck_assert_int_ne(hcga_be_open("template", 0, "threads=2,fast=1", &be, err, sizeof err), 0);
    ck_assert_contains(err, "unknown option 'fast' (known: threads=N)");
}
END_TEST

/* ---- tensors ------------------------------------------------------------ */

START_TEST(test_tensor_make)
{
    int64_t shape[4] = {2, 3, 4, 5};
    hcga_tensor t = hcga_tensor_make(NULL, 64, HCGA_F64, 4, shape);
    ck_assert_int_eq(t.ndim, 4);
    ck_assert_int_eq(t.dtype, HCGA_F64);
    ck_assert_uint_eq(t.offset, 64);
    const int64_t strides[5] = {60, 20, 5, 1, 1};
    for (int i = 0; i < 4; i++) ck_assert_int_eq(t.shape[i], shape[i]);
    ck_assert_int_eq(t.shape[4], 1);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(t.stride[i], strides[i]);
    ck_assert_int_eq(hcga_tensor_numel(&t), 120);

    hcga_tensor s = hcga_tensor_make(NULL, 0, HCGA_F32, 0, NULL);
    ck_assert_int_eq(s.ndim, 0);
    ck_assert_int_eq(hcga_tensor_numel(&s), 1);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(s.shape[i], 1);

    int64_t five[5] = {1, 2, 1, 3, 7};
    hcga_tensor f = hcga_tensor_make(NULL, 0, HCGA_F32, 5, five);
    const int64_t fs[5] = {42, 21, 21, 7, 1};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(f.stride[i], fs[i]);

    int64_t six[6] = {1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(hcga_tensor_make(NULL, 0, HCGA_F32, 6, six).ndim, -1);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = hcga_test_tcase(s, "refused");
    HCGA_ADD_TESTS(tc, test_abi_major, test_struct_size, test_missing_symbol, test_missing_library,
                   test_missing_file, test_bad_name, test_misnamed, test_probe_fails,
                   test_bad_device_and_options);
    tc = hcga_test_tcase(s, "loaded");
    HCGA_ADD_TESTS(tc, test_good_plugin_ops, test_newer_minor, test_template_backend, test_tensor_make);
    tc = hcga_test_tcase(s, "search");
    /* the scan loads every plugin of the build tree too (OpenCL/CUDA probes) */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scan);
    tcase_add_test(tc, test_search_order);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", TESTS_LIBS ":" TEMPLATE_LIBS, 1);
    return hcga_test_run(loader_suite());
}
