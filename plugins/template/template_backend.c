/*
 * template_backend.c - the smallest complete hcga backend plugin.
 *
 * Copy this directory, rename "template" to your backend's name everywhere
 * (the descriptor's name must match the file name hcga_backend_<name>.so),
 * then replace the host-memory buffers with your device's memory and fill in
 * the op table.  plugins/hcga_plugin.h is the contract: read it top to bottom
 * first.  What this file shows:
 *
 *   1. the exported descriptor (checked by hcga before any code here runs),
 *   2. probe / device_info / create / destroy / last_error,
 *   3. buffers (here: aligned host memory) and synchronize,
 *   4. an op table with two example ops (RELU_FWD and FILL) and every other
 *      op NULL, which hcga reports as "template: op <name> is not supported";
 *      each entry runs the shared contract checker (hcga_contract.h) first.
 *
 * Every function validates what it relies on and returns an error with a
 * one-line last_error() rather than crashing: the conformance suite
 * (`hcga --backend template conformance`) calls ops with bad arguments too,
 * and expects the checker's messages, the same on every backend.
 *
 * This plugin is built by `make check` only (so it keeps compiling as the
 * header evolves); it is not installed and hcga does not load it unless its
 * directory is on $HCGA_PLUGIN_PATH.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcga_contract.h" /* the shared argument checker (includes hcga_plugin.h) */
#include "hcga_plugin.h"

#define TEMPLATE_ALIGN 256 /* the ABI asks for at least 256-byte alignment */

/* ---- 2. instances and errors ------------------------------------------- */

/* hcga_plugin.h leaves these two structs to the backend. */
struct hcga_buffer {
    void *data;
    uint64_t size;
};

struct hcga_backend {
    int device;
    int threads;   /* option threads=N: this skeleton runs every op on the caller's thread */
    char err[512]; /* last_error() */
};

static hcga_status fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hcga_status fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Number of devices, or -1 with the reason.  A real backend asks its driver
 * here (and must not crash when there is none); host memory always exists. */
static int tpl_probe(char *why, size_t why_len)
{
    if (why_len) why[0] = '\0';
    return 1;
}

static hcga_status tpl_device_info(int device, hcga_device_info *info)
{
    if (device != 0) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "template backend (host memory)");
    snprintf(info->version, sizeof info->version, "template plugin 0.1, ABI %d.%d",
             HCGA_ABI_MAJOR, HCGA_ABI_MINOR);
    info->memory_total = 0; /* unknown; report real numbers if you can */
    info->memory_free = 0;
    return HCGA_OK;
}

/* options: NULL or "key=value,key=value".  Every backend accepts
 * threads=N (hcga_plugin.h, create()); any other key is an error here.  A
 * real backend adds its own keys to this loop and sizes its thread pool
 * with N (a device backend only checks it). */
static int tpl_parse_options(const char *options, int *threads, char *err, size_t err_len)
{
    for (const char *p = options; p && *p;) {
        size_t len = strcspn(p, ","), klen = strcspn(p, "=,");
        if (klen == 7 && !strncmp(p, "threads", 7) && klen < len) {
            char *end;
            long v = strtol(p + 8, &end, 10);
            if (end != p + len || v < 1 || v > 4096) {
                snprintf(err, err_len, "template: option '%.*s': threads must be 1..4096", (int)len, p);
                return -1;
            }
            *threads = (int)v;
        } else {
            snprintf(err, err_len, "template: unknown option '%.*s' (known: threads=N)", (int)klen, p);
            return -1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

static hcga_status tpl_create(int device, const char *options, hcga_backend **out, char *err,
                              size_t err_len)
{
    *out = NULL;
    if (device != 0) {
        snprintf(err, err_len, "template: device %d does not exist (1 device: 0)", device);
        return HCGA_ERR_INVALID;
    }
    int threads = 1;
    if (tpl_parse_options(options, &threads, err, err_len) != 0) return HCGA_ERR_INVALID;
    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "template: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
    be->threads = threads;
    be->device = device;
    *out = be;
    return HCGA_OK;
}

static void tpl_destroy(hcga_backend *be)
{
    free(be);
}

static const char *tpl_last_error(hcga_backend *be)
{
    return be->err;
}

/* ---- 3. buffers ---------------------------------------------------------- */

static hcga_status tpl_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    *out = NULL;
    hcga_buffer *b = calloc(1, sizeof *b);
    /* Round up: aligned_alloc wants a multiple of the alignment; 0 bytes
     * still gets a valid buffer. */
    uint64_t rounded = (bytes + TEMPLATE_ALIGN - 1) / TEMPLATE_ALIGN * TEMPLATE_ALIGN;
    if (rounded == 0) rounded = TEMPLATE_ALIGN;
    if (b && rounded >= bytes && rounded <= SIZE_MAX)
        b->data = aligned_alloc(TEMPLATE_ALIGN, (size_t)rounded);
    if (!b || !b->data) {
        free(b);
        return fail(be, HCGA_ERR_NOMEM, "out of memory in buffer_alloc (%llu bytes)",
                    (unsigned long long)bytes);
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void tpl_buffer_free(hcga_backend *be, hcga_buffer *buf)
{
    (void)be;
    if (!buf) return;
    free(buf->data);
    free(buf);
}

static int range_ok(const hcga_buffer *buf, uint64_t offset, uint64_t bytes)
{
    return buf && offset <= buf->size && bytes <= buf->size - offset;
}

static hcga_status tpl_buffer_write(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                    const void *src, uint64_t bytes)
{
    if (!range_ok(buf, offset, bytes))
        return fail(be, HCGA_ERR_INVALID, "buffer_write: %llu bytes at offset %llu outside the buffer",
                    (unsigned long long)bytes, (unsigned long long)offset);
    if (bytes) memcpy((char *)buf->data + offset, src, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status tpl_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                   void *dst, uint64_t bytes)
{
    /* An asynchronous backend waits for pending work here. */
    if (!range_ok(buf, offset, bytes))
        return fail(be, HCGA_ERR_INVALID, "buffer_read: %llu bytes at offset %llu outside the buffer",
                    (unsigned long long)bytes, (unsigned long long)offset);
    if (bytes) memcpy(dst, (const char *)buf->data + offset, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status tpl_synchronize(hcga_backend *be)
{
    (void)be; /* every op here runs synchronously */
    return HCGA_OK;
}

/* ---- 4. ops ---------------------------------------------------------------- */

/*
 * Argument checking is not written here: every op entry first calls the
 * shared contract checker (backends/common/hcga_contract.h, linked as
 * libhcga_contract.la), which enforces the rules of hcga_plugin.h (slot
 * counts, dtypes, shapes, buffer bounds, aliasing, parameters) with the same
 * messages as every other backend, and hands the implementation a
 * hcga_checked (the call's float dtype, conv / bn / gemm dims).  An
 * implementation then only unpacks the tensors and computes.  It still
 * refuses what this backend cannot do (a dtype, a size) with
 * HCGA_ERR_UNSUPPORTED, and checks rules on data it reads (label values).
 */

/* One op implementation, called only with a call the checker accepted. */
typedef hcga_status (*tpl_impl_fn)(hcga_backend *be, const hcga_op_args *a,
                                   const hcga_checked *ck);

/* The checker asks for a buffer's size (it never sees inside a buffer). */
static uint64_t tpl_buffer_size(const hcga_buffer *buf)
{
    return buf->size;
}

/* Every op entry: the contract checker, then the implementation. */
static hcga_status tpl_dispatch(hcga_backend *be, const hcga_op_args *a, int op, tpl_impl_fn impl)
{
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, tpl_buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) return fail(be, st, "%s", msg);
    return impl(be, a, &ck);
}

static void *data_of(const hcga_tensor *t)
{
    return (char *)t->buf->data + t->offset;
}

/* Example 1, an elementwise op: RELU_FWD  in: x  out: y = max(x, 0).
 * The checker made sure x and y are dense, in bounds, of one float dtype
 * (ck->dtype) and of the same shape. */
static hcga_status op_RELU_FWD(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    (void)be;
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int64_t n = hcga_tensor_numel(x);
    if (ck->dtype == HCGA_F32) {
        const float *xs = data_of(x);
        float *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] > 0.0f ? xs[i] : 0.0f;
    } else {
        const double *xs = data_of(x);
        double *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] > 0.0 ? xs[i] : 0.0;
    }
    return HCGA_OK;
}

/* Example 2, an op with parameters and integer dtypes:
 * FILL  out: y = scalar.a (float dtypes) or (int) scalar.a (I32/I64).
 * The checker made sure scalar.a fits y's dtype; this backend does not do
 * U8 (tpl_supports says so), which it refuses as unsupported. */
static hcga_status op_FILL(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    (void)ck;
    const hcga_tensor *y = a->out[0];
    int64_t n = hcga_tensor_numel(y);
    double v = a->p.scalar.a;
    switch (y->dtype) {
    case HCGA_F32: {
        float *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = (float)v;
        break;
    }
    case HCGA_F64: {
        double *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = v;
        break;
    }
    case HCGA_I32: {
        int32_t *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = (int32_t)v;
        break;
    }
    case HCGA_I64: {
        int64_t *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = (int64_t)v;
        break;
    }
    default:
        return fail(be, HCGA_ERR_UNSUPPORTED, "fill: dtype %s is not supported",
                    hcga_dtype_name(y->dtype));
    }
    return HCGA_OK;
}

/* The op table entries, one per implemented op: TPL_ENTRY(ID) defines
 * entry_ID, which checks the call and runs op_ID. */
#define TPL_ENTRY(id_)                                                                             \
    static hcga_status entry_##id_(hcga_backend *be, const hcga_op_args *a)                        \
    {                                                                                              \
        return tpl_dispatch(be, a, HCGA_OP_##id_, op_##id_);                                       \
    }
TPL_ENTRY(RELU_FWD)
TPL_ENTRY(FILL)

/* The op table, indexed by hcga_op.  A vendor fills in the NULL entries:
 * each one's inputs, outputs and parameters are specified in section 3 of
 * hcga_plugin.h, and backends/cpu is the reference implementation to compare
 * against.  A NULL entry is reported as unsupported by hcga and by the
 * conformance suite.
 *
 * Once every op is implemented, generate the entries and the table from the
 * catalogue instead, as backends/cpu/cpu_ops.c does, so that an op added to
 * plugins/hcga_ops.def without an op_<ID> is a compile error:
 *
 *   #define HCGA_OP(id_, ...) TPL_ENTRY(id_)
 *   #include "hcga_ops.def"
 *   #undef HCGA_OP
 *   static const hcga_op_fn tpl_ops[HCGA_OP_COUNT] = {
 *   #define HCGA_OP(id_, ...) [HCGA_OP_##id_] = entry_##id_,
 *   #include "hcga_ops.def"
 *   #undef HCGA_OP
 *   };
 *
 * Those includes skip the optional (fused) ops of ABI 1.3, the rows written
 * HCGA_OPT_OP (CONV2D_BN_INFER): their entries stay NULL and the frontend
 * runs the separate ops.  To provide one, write its op_<ID> and add
 * "#define HCGA_OPT_OP HCGA_OP" before each include (and #undef it after),
 * as backends/onednn/dnn_backend.c does; conformance then tests it.
 */
static const hcga_op_fn tpl_ops[HCGA_OP_COUNT] = {
    [HCGA_OP_RELU_FWD] = entry_RELU_FWD,
    [HCGA_OP_FILL] = entry_FILL,
    /* [HCGA_OP_CONV2D_FWD] = entry_CONV2D_FWD, ..., and the rest. */
    /* [HCGA_OP_CAST] (ABI 1.1) stays NULL: this skeleton has no bf16/f16.
     * A vendor implements it with the conversions of plugins/hcga_half.h,
     * then the half forms of CONV2D_* and GEMM (hcga_checked.dtype is then
     * HCGA_BF16 or HCGA_F16), and reports them in tpl_supports(); a 1.1
     * backend must support CAST and the half forms at bf16 to pass
     * conformance. */
};

/* Refines the table per dtype: 1 if op can run on dtype (never bf16 / f16
 * here: CAST is NULL above). */
static int tpl_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    switch (op) {
    case HCGA_OP_RELU_FWD: return dtype == HCGA_F32 || dtype == HCGA_F64;
    case HCGA_OP_FILL:
        return dtype == HCGA_F32 || dtype == HCGA_F64 || dtype == HCGA_I32 || dtype == HCGA_I64;
    default: return 0;
    }
}

/* ---- 1. the descriptor ---------------------------------------------------- */

static const hcga_backend_iface tpl_iface = {
    .struct_size = sizeof(hcga_backend_iface),
    .probe = tpl_probe,
    .device_info = tpl_device_info,
    .create = tpl_create,
    .destroy = tpl_destroy,
    .last_error = tpl_last_error,
    .buffer_alloc = tpl_buffer_alloc,
    .buffer_free = tpl_buffer_free,
    .buffer_write = tpl_buffer_write,
    .buffer_read = tpl_buffer_read,
    .synchronize = tpl_synchronize,
    .ops = tpl_ops,
    .num_ops = HCGA_OP_COUNT,
    .supports = tpl_supports,
};

static const hcga_backend_iface *tpl_get_iface(void)
{
    return &tpl_iface;
}

/* The one exported symbol (build with -fvisibility=hidden if you like; this
 * symbol must stay visible). */
__attribute__((visibility("default")))
const hcga_plugin_descriptor hcga_plugin_descriptor_v1 = HCGA_PLUGIN_DESCRIPTOR_INIT(
    "template", "template backend: host memory, two example ops", "0.1", tpl_get_iface);
