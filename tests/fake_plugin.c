/*
 * fake_plugin.c - small plugins for tests/test_loader.c, one per -D flag:
 *
 *   FAKE_GOOD        valid; 7 ops (relu_fwd works, bn_fwd_train always fails)
 *   FAKE_MAJOR       descriptor says ABI major HCGA_ABI_MAJOR+1
 *   FAKE_SIZE        descriptor says sizeof(hcga_tensor)+8
 *   FAKE_NOSYM       exports the descriptor under another name
 *   FAKE_MISSINGLIB  valid, but needs libhcga_does_not_exist.so (see tests.mk)
 *   FAKE_NEWMINOR    ABI minor + 1, more ops than hcga knows, a larger iface
 *   FAKE_PROBEFAIL   valid, but probe() finds no device
 *   FAKE_MISNAMED    descriptor name differs from the file name
 *
 * get_iface() of the plugins whose descriptor must be refused calls abort(),
 * so a loader that calls it before checking the descriptor fails the test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcga_plugin.h"

#if defined(FAKE_MAJOR) || defined(FAKE_SIZE) || defined(FAKE_NOSYM) || defined(FAKE_MISNAMED)
#define FAKE_REFUSED 1
#endif

#ifdef FAKE_MISSINGLIB
int hcga_fake_dep_value(void); /* from the library that is not on the path */
#endif

struct hcga_buffer {
    unsigned char *data;
    uint64_t size;
};

struct hcga_backend {
    char err[256];
    int relu_calls;
};

static int fake_probe(char *why, size_t len)
{
#ifdef FAKE_PROBEFAIL
    snprintf(why, len, "fake driver is missing (libfakedrv.so.1 not loaded)");
    return -1;
#else
    if (len) why[0] = '\0';
#ifdef FAKE_MISSINGLIB
    return hcga_fake_dep_value() > 0 ? 1 : 0;
#else
    return 1;
#endif
#endif
}

static hcga_status fake_device_info(int device, hcga_device_info *info)
{
    if (device != 0) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "fake device");
    snprintf(info->version, sizeof info->version, "fake 1.2.3");
    info->memory_total = (uint64_t)3 << 30;
    info->memory_free = (uint64_t)1 << 30;
    return HCGA_OK;
}

static hcga_status fake_create(int device, const char *options, hcga_backend **out, char *err,
                               size_t len)
{
    *out = NULL;
    if (device != 0) {
        snprintf(err, len, "fake: no device %d", device);
        return HCGA_ERR_INVALID;
    }
    if (options && *options) {
        snprintf(err, len, "fake: unknown option '%s'", options);
        return HCGA_ERR_INVALID;
    }
    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) return HCGA_ERR_NOMEM;
    *out = be;
    return HCGA_OK;
}

static void fake_destroy(hcga_backend *be)
{
    free(be);
}

static const char *fake_last_error(hcga_backend *be)
{
    return be->err;
}

static hcga_status fake_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    (void)be;
    hcga_buffer *b = calloc(1, sizeof *b);
    if (!b) return HCGA_ERR_NOMEM;
    b->data = calloc(1, bytes ? (size_t)bytes : 1);
    if (!b->data) {
        free(b);
        return HCGA_ERR_NOMEM;
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void fake_free(hcga_backend *be, hcga_buffer *b)
{
    (void)be;
    if (b) free(b->data);
    free(b);
}

static hcga_status fake_write(hcga_backend *be, hcga_buffer *b, uint64_t off, const void *src,
                              uint64_t n)
{
    if (off > b->size || n > b->size - off) {
        snprintf(be->err, sizeof be->err, "write of %llu bytes out of range",
                 (unsigned long long)n);
        return HCGA_ERR_INVALID;
    }
    memcpy(b->data + off, src, (size_t)n);
    return HCGA_OK;
}

static hcga_status fake_read(hcga_backend *be, hcga_buffer *b, uint64_t off, void *dst,
                             uint64_t n)
{
    if (off > b->size || n > b->size - off) {
        snprintf(be->err, sizeof be->err, "read of %llu bytes out of range",
                 (unsigned long long)n);
        return HCGA_ERR_INVALID;
    }
    memcpy(dst, b->data + off, (size_t)n);
    return HCGA_OK;
}

static hcga_status fake_sync(hcga_backend *be)
{
    (void)be;
    return HCGA_OK;
}

static hcga_status fake_relu(hcga_backend *be, const hcga_op_args *a)
{
    (void)a;
    be->relu_calls++;
    return HCGA_OK;
}

static hcga_status fake_bn_fail(hcga_backend *be, const hcga_op_args *a)
{
    (void)a;
    snprintf(be->err, sizeof be->err, "synthetic device failure");
    return HCGA_ERR_DEVICE;
}

#ifdef FAKE_NEWMINOR
#define FAKE_NUM_OPS (HCGA_OP_COUNT + 5)
#else
#define FAKE_NUM_OPS (HCGA_OP_RELU_FWD + 1)
#endif

static const hcga_op_fn fake_ops[FAKE_NUM_OPS] = {
    [HCGA_OP_BN_FWD_TRAIN] = fake_bn_fail,
    [HCGA_OP_RELU_FWD] = fake_relu,
#ifdef FAKE_NEWMINOR
    /* an op of a future minor version: hcga must never call it */
    [HCGA_OP_COUNT] = fake_bn_fail,
#endif
};

#ifdef FAKE_NEWMINOR
/* A future iface: ours plus one more function at the end. */
typedef struct fake_iface_next {
    hcga_backend_iface base;
    void (*future_function)(void);
} fake_iface_next;
#endif

static const struct {
#ifdef FAKE_NEWMINOR
    fake_iface_next v;
#else
    hcga_backend_iface v;
#endif
} fake_iface = {
#ifdef FAKE_NEWMINOR
    .v.base =
#else
    .v =
#endif
        {
            .struct_size =
#ifdef FAKE_NEWMINOR
                sizeof(fake_iface_next),
#else
                sizeof(hcga_backend_iface),
#endif
            .probe = fake_probe,
            .device_info = fake_device_info,
            .create = fake_create,
            .destroy = fake_destroy,
            .last_error = fake_last_error,
            .buffer_alloc = fake_alloc,
            .buffer_free = fake_free,
            .buffer_write = fake_write,
            .buffer_read = fake_read,
            .synchronize = fake_sync,
            .ops = fake_ops,
            .num_ops = FAKE_NUM_OPS,
            .supports = NULL,
        },
};

static const hcga_backend_iface *fake_get_iface(void)
{
#ifdef FAKE_REFUSED
    /* The loader must refuse this plugin from its descriptor alone. */
    (void)fake_iface;
    fputs("fake plugin: get_iface called on a plugin whose descriptor must be refused\n", stderr);
    abort();
#else
    return (const hcga_backend_iface *)&fake_iface;
#endif
}

#if defined(FAKE_GOOD)
#define FAKE_NAME "fake_good"
#elif defined(FAKE_MAJOR)
#define FAKE_NAME "fake_major"
#elif defined(FAKE_SIZE)
#define FAKE_NAME "fake_size"
#elif defined(FAKE_NOSYM)
#define FAKE_NAME "fake_nosym"
#elif defined(FAKE_MISSINGLIB)
#define FAKE_NAME "fake_missinglib"
#elif defined(FAKE_NEWMINOR)
#define FAKE_NAME "fake_newminor"
#elif defined(FAKE_PROBEFAIL)
#define FAKE_NAME "fake_probefail"
#elif defined(FAKE_MISNAMED)
#define FAKE_NAME "some_other_name"
#else
#error "define one FAKE_* variant"
#endif

#ifdef FAKE_NOSYM
#define FAKE_SYMBOL hcga_plugin_descriptor_v0
#else
#define FAKE_SYMBOL hcga_plugin_descriptor_v1
#endif

const hcga_plugin_descriptor FAKE_SYMBOL = {
    .magic = HCGA_PLUGIN_MAGIC,
#ifdef FAKE_MAJOR
    .abi_major = HCGA_ABI_MAJOR + 1,
#else
    .abi_major = HCGA_ABI_MAJOR,
#endif
#ifdef FAKE_NEWMINOR
    .abi_minor = HCGA_ABI_MINOR + 1,
    .sizeof_backend_iface = sizeof(fake_iface_next),
#else
    .abi_minor = HCGA_ABI_MINOR,
    .sizeof_backend_iface = sizeof(hcga_backend_iface),
#endif
#ifdef FAKE_SIZE
    .sizeof_tensor = sizeof(hcga_tensor) + 8,
#else
    .sizeof_tensor = sizeof(hcga_tensor),
#endif
    .sizeof_op_args = sizeof(hcga_op_args),
    .num_ops = FAKE_NUM_OPS,
    .name = FAKE_NAME,
    .description = "fake plugin for tests/test_loader.c",
    .version = "0",
    .get_iface = fake_get_iface,
};
