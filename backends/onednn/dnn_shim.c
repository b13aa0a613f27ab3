/*
 * dnn_shim.c - the file hcga loads for `--backend onednn`
 * (hcga_backend_onednn.so): a loader shim in front of the implementation
 * (hcga_onednn_impl.so, dnn_backend.c and the rest of backends/onednn).
 *
 * Why a shim: oneDNN's Debian build runs on GNU OpenMP, and libgomp reads its
 * wait policy from the environment once, when it is loaded.  Its default
 * (threads spin for a long while at every barrier, waiting for each other)
 * is a disaster on an oversubscribed machine: a thread that the kernel
 * descheduled holds every barrier up, and a 2-thread convolution measured
 * 10-20x slower than a 1-thread one with load 8 on 2 cores (a 1 MB reorder:
 * 20 ms instead of 0.2 ms).  With OMP_WAIT_POLICY=passive it is as fast as
 * or faster than 1 thread.  But passive threads sleep at once, and a
 * training step runs some 10000 parallel regions back to back: waking the
 * other thread for each cost 10% of an f32 HRNet step and 20% of a bf16 one
 * on an idle machine.  A short spin first (GOMP_SPINCOUNT=1000, some tens of
 * microseconds) gets that back and, measured with 4 busy processes on 2
 * cores, is no slower than passive; 10000 was 40-70% slower there.
 * The plugin cannot change the policy once libgomp is loaded, and libgomp
 * is loaded with libdnnl, so this shim (which links neither) sets
 * OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=1000 when the user has set
 * neither and libgomp is not yet in the process, then loads the
 * implementation from its own directory and hands hcga the
 * implementation's function table.  A user who sets either keeps it (and
 * OMP_WAIT_POLICY alone means libgomp's own spin count for that policy).
 *
 * If the implementation cannot be loaded (libdnnl missing at run time), the
 * shim's own table reports it: probe() returns -1 with dlerror()'s text,
 * which `hcga backends` shows as the reason; nothing else is ever called.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnn_internal.h"

#define IMPL_FILE "hcga_onednn_impl.so"
#define DNN_SPINCOUNT "1000" /* OpenMP's spins before a thread sleeps (see above) */

static char load_error[1024];

/* ---- the table used when the implementation did not load ---- */

static int stub_probe(char *why, size_t why_len)
{
    if (why_len) snprintf(why, why_len, "%s", load_error);
    return -1;
}

static hcga_status stub_device_info(int device, hcga_device_info *info)
{
    (void)device;
    (void)info;
    return HCGA_ERR_DEVICE;
}

static hcga_status stub_create(int device, const char *options, hcga_backend **out, char *err,
                               size_t err_len)
{
    (void)device;
    (void)options;
    *out = NULL;
    snprintf(err, err_len, "onednn: %s", load_error);
    return HCGA_ERR_DEVICE;
}

static void stub_destroy(hcga_backend *be) { (void)be; }
static const char *stub_last_error(hcga_backend *be)
{
    (void)be;
    return load_error;
}
static hcga_status stub_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    (void)be;
    (void)bytes;
    *out = NULL;
    return HCGA_ERR_DEVICE;
}
static void stub_free(hcga_backend *be, hcga_buffer *buf)
{
    (void)be;
    (void)buf;
}
static hcga_status stub_rw(hcga_backend *be, hcga_buffer *buf, uint64_t off, void *p, uint64_t n)
{
    (void)be, (void)buf, (void)off, (void)p, (void)n;
    return HCGA_ERR_DEVICE;
}
static hcga_status stub_write(hcga_backend *be, hcga_buffer *buf, uint64_t off, const void *p,
                              uint64_t n)
{
    (void)p;
    return stub_rw(be, buf, off, NULL, n);
}
static hcga_status stub_sync(hcga_backend *be)
{
    (void)be;
    return HCGA_ERR_DEVICE;
}
static const hcga_op_fn stub_ops[HCGA_OP_COUNT];

static const hcga_backend_iface stub_iface = {
    .struct_size = sizeof(hcga_backend_iface),
    .probe = stub_probe,
    .device_info = stub_device_info,
    .create = stub_create,
    .destroy = stub_destroy,
    .last_error = stub_last_error,
    .buffer_alloc = stub_alloc,
    .buffer_free = stub_free,
    .buffer_write = stub_write,
    .buffer_read = stub_rw,
    .synchronize = stub_sync,
    .ops = stub_ops,
    .num_ops = HCGA_OP_COUNT,
    .supports = NULL,
};

/* ---- loading ---- */

static const hcga_backend_iface *impl_iface;

static const hcga_backend_iface *shim_get_iface(void)
{
    if (impl_iface) return impl_iface;
    /* libgomp reads the policy once, when loaded: only worth setting before */
    void *gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (gomp) dlclose(gomp);
    else {
        /* the failed RTLD_NOLOAD left an error state that glibc frees only
         * when dlerror() is called again after returning it */
        (void)dlerror();
        (void)dlerror();
        /* the user's settings win; the spin count only goes with our policy */
        if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", DNN_SPINCOUNT, 0);
        setenv("OMP_WAIT_POLICY", "passive", 0);
    }

    Dl_info di;
    char path[PATH_MAX];
    if (!dladdr((const void *)shim_get_iface, &di) || !di.dli_fname) {
        snprintf(load_error, sizeof load_error, "cannot locate hcga_backend_onednn.so (dladdr failed)");
        return &stub_iface;
    }
    const char *slash = strrchr(di.dli_fname, '/');
    int dirlen = slash ? (int)(slash - di.dli_fname) : 1;
    snprintf(path, sizeof path, "%.*s/%s", dirlen, slash ? di.dli_fname : ".", IMPL_FILE);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load the implementation: %s", dlerror());
        return &stub_iface;
    }
    const hcga_backend_iface *(*get)(void) = NULL;
    void *sym = dlsym(h, "hcga_onednn_impl_iface");
    memcpy(&get, &sym, sizeof get); /* object pointer to function pointer, without UB casts */
    if (!get) {
        snprintf(load_error, sizeof load_error, "%.900s has no hcga_onednn_impl_iface", path);
        dlclose(h);
        return &stub_iface;
    }
    impl_iface = get(); /* the implementation stays loaded for the process's life */
    return impl_iface;
}

__attribute__((visibility("default")))
const hcga_plugin_descriptor hcga_plugin_descriptor_v1 = HCGA_PLUGIN_DESCRIPTOR_INIT(
    "onednn",
    "oneDNN CPU backend: oneDNN convolutions, GEMM, BN inference; plain C (OpenMP) for the rest; f32, f64; "
    "bf16 convolutions on oneDNN with AVX512_BF16, other bf16/f16 via f32",
    DNN_PLUGIN_VERSION, shim_get_iface);
