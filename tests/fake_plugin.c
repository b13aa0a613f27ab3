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
 *   FAKE_CAPS        valid, with both ABI 1.2 groups (collectives, capture):
 *                    relu_fwd adds 1 to the first i32 of out[0] (or records
 *                    that while capturing); allreduce SUM multiplies an f32
 *                    tensor by nranks, AVG leaves it; broadcast fails for a
 *                    root other than 0; a replay adds the recorded count
 *   FAKE_V11         valid, built "for ABI 1.1": struct_size ends at
 *                    supports, though the group members after it are set
 *                    (to functions that abort: the loader must not read them)
 *   FAKE_PARTIAL     the collectives complete, the capture group without
 *                    capture_replay: refused
 *
 * get_iface() of the plugins whose descriptor must be refused calls abort(),
 * so a loader that calls it before checking the descriptor fails the test.
 */
#include <stddef.h>
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
    int capturing; /* FAKE_CAPS: between capture_begin and capture_end */
    int recorded;  /* relu calls recorded since capture_begin */
    int nranks;    /* from comm_init */
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

#ifdef FAKE_CAPS
/* Adds n to the first i32 of out[0], when the call has an output. */
static void fake_bump(const hcga_op_args *a, int n)
{
    if (a->num_out < 1 || !a->out[0]) return;
    int32_t v;
    unsigned char *p = a->out[0]->buf->data + a->out[0]->offset;
    memcpy(&v, p, sizeof v);
    v += n;
    memcpy(p, &v, sizeof v);
}
#endif

static hcga_status fake_relu(hcga_backend *be, const hcga_op_args *a)
{
    (void)a;
#ifdef FAKE_CAPS
    if (be->capturing) {
        be->recorded++;
        return HCGA_OK;
    }
    fake_bump(a, 1);
#endif
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

/* ---- ABI 1.2 groups ---- */

#ifdef FAKE_CAPS
static hcga_status fake_comm_id(hcga_backend *be, void *id, uint32_t *len)
{
    (void)be;
    memcpy(id, "fakeid", 6);
    *len = 6;
    return HCGA_OK;
}

static hcga_status fake_comm_init(hcga_backend *be, const void *id, uint32_t len, int rank, int nranks)
{
    (void)rank;
    if (len != 6 || memcmp(id, "fakeid", 6) != 0) {
        snprintf(be->err, sizeof be->err, "fake: not a fake communicator id");
        return HCGA_ERR_INVALID;
    }
    be->nranks = nranks;
    return HCGA_OK;
}

static hcga_status fake_allreduce(hcga_backend *be, const hcga_tensor *t, int comm_op)
{
    if (comm_op != HCGA_COMM_SUM && comm_op != HCGA_COMM_AVG) {
        snprintf(be->err, sizeof be->err, "fake: unknown comm_op %d", comm_op);
        return HCGA_ERR_INVALID;
    }
    if (comm_op == HCGA_COMM_AVG) return HCGA_OK;
    unsigned char *p = t->buf->data + t->offset;
    for (int64_t i = 0; i < hcga_tensor_numel(t); i++) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        v *= (float)be->nranks;
        memcpy(p + 4 * i, &v, 4);
    }
    return HCGA_OK;
}

static hcga_status fake_broadcast(hcga_backend *be, const hcga_tensor *t, int root)
{
    (void)t;
    if (root == 0) return HCGA_OK;
    snprintf(be->err, sizeof be->err, "fake: root %d is not rank 0", root);
    return HCGA_ERR_DEVICE;
}

static hcga_status fake_comm_wait(hcga_backend *be)
{
    (void)be;
    return HCGA_OK;
}

struct hcga_capture {
    int relu_calls;
};

static hcga_status fake_capture_begin(hcga_backend *be)
{
    if (be->capturing) {
        snprintf(be->err, sizeof be->err, "fake: already capturing");
        return HCGA_ERR_INVALID;
    }
    be->capturing = 1;
    be->recorded = 0;
    return HCGA_OK;
}

static hcga_status fake_capture_end(hcga_backend *be, hcga_capture **out)
{
    *out = NULL;
    if (!be->capturing) {
        snprintf(be->err, sizeof be->err, "fake: capture_end without capture_begin");
        return HCGA_ERR_INVALID;
    }
    be->capturing = 0;
    hcga_capture *c = malloc(sizeof *c);
    if (!c) return HCGA_ERR_NOMEM;
    c->relu_calls = be->recorded;
    *out = c;
    return HCGA_OK;
}

/* The fake replays into no particular buffer: it only counts. */
static hcga_status fake_capture_replay(hcga_backend *be, hcga_capture *c)
{
    be->relu_calls += c->relu_calls;
    return HCGA_OK;
}

static void fake_capture_free(hcga_backend *be, hcga_capture *c)
{
    (void)be;
    free(c);
}
#define FAKE_COMM_FNS fake_comm_id, fake_comm_init, fake_allreduce, fake_broadcast, fake_comm_wait
#define FAKE_CAPTURE_FNS fake_capture_begin, fake_capture_end, fake_capture_replay, fake_capture_free
#endif

#if defined(FAKE_V11) || defined(FAKE_PARTIAL)
/* Members the loader must never call (FAKE_V11: beyond struct_size;
 * FAKE_PARTIAL: the plugin is refused). */
static void fake_never(void)
{
    fputs("fake plugin: an ABI 1.2 member was called though the loader must not read it\n", stderr);
    abort();
}
#define NEVER(type_) ((type_)(void (*)(void))fake_never)
#define FAKE_COMM_FNS                                                                       \
    NEVER(hcga_status(*)(hcga_backend *, void *, uint32_t *)),                              \
        NEVER(hcga_status(*)(hcga_backend *, const void *, uint32_t, int, int)),            \
        NEVER(hcga_status(*)(hcga_backend *, const hcga_tensor *, int)),                    \
        NEVER(hcga_status(*)(hcga_backend *, const hcga_tensor *, int)),                    \
        NEVER(hcga_status(*)(hcga_backend *))
#ifdef FAKE_V11
#define FAKE_CAPTURE_FNS                                                                    \
    NEVER(hcga_status(*)(hcga_backend *)), NEVER(hcga_status(*)(hcga_backend *, hcga_capture **)), \
        NEVER(hcga_status(*)(hcga_backend *, hcga_capture *)),                              \
        NEVER(void (*)(hcga_backend *, hcga_capture *))
#else /* FAKE_PARTIAL: capture_replay missing */
#define FAKE_CAPTURE_FNS                                                                    \
    NEVER(hcga_status(*)(hcga_backend *)), NEVER(hcga_status(*)(hcga_backend *, hcga_capture **)), \
        NULL, NEVER(void (*)(hcga_backend *, hcga_capture *))
#endif
#endif

#ifdef FAKE_V11
/* What a plugin built against the 1.1 header declares as its table size. */
#define FAKE_IFACE_SIZE offsetof(hcga_backend_iface, comm_id)
#else
#define FAKE_IFACE_SIZE sizeof(hcga_backend_iface)
#endif

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
                FAKE_IFACE_SIZE,
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
#ifdef FAKE_COMM_FNS
            /* the ABI 1.2 members follow supports in this order */
            FAKE_COMM_FNS,
            FAKE_CAPTURE_FNS,
#endif
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
#elif defined(FAKE_CAPS)
#define FAKE_NAME "fake_caps"
#elif defined(FAKE_V11)
#define FAKE_NAME "fake_v11"
#elif defined(FAKE_PARTIAL)
#define FAKE_NAME "fake_partial"
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
    .sizeof_backend_iface = FAKE_IFACE_SIZE,
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
