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
 *      op NULL, which hcga reports as "template: op <name> is not supported".
 *
 * Every function validates what it relies on and returns an error with a
 * one-line last_error() rather than crashing: the conformance suite
 * (`hcga --backend template conformance`) calls ops with bad arguments too.
 *
 * This plugin is built by `make check` only (so it keeps compiling as the
 * header evolves); it is not installed and hcga does not load it unless its
 * directory is on $HCGA_PLUGIN_PATH.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* options: NULL or "key=value,key=value".  This backend has no options, so
 * any key is an error; a real one parses its keys here (e.g. threads=N). */
static hcga_status tpl_create(int device, const char *options, hcga_backend **out, char *err,
                              size_t err_len)
{
    *out = NULL;
    if (device != 0) {
        snprintf(err, err_len, "template: device %d does not exist (1 device: 0)", device);
        return HCGA_ERR_INVALID;
    }
    if (options && *options) {
        size_t klen = strcspn(options, "=,");
        snprintf(err, err_len, "template: unknown option '%.*s' (this backend takes none)",
                 (int)klen, options);
        return HCGA_ERR_INVALID;
    }
    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "template: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
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

/* Checks shared by ops: the slot is present, dense C-contiguous, inside its
 * buffer, and of a dtype the op accepts. */
static hcga_status check_tensor(hcga_backend *be, const char *op, const char *slot,
                                const hcga_tensor *t)
{
    if (!t || !t->buf) return fail(be, HCGA_ERR_INVALID, "%s: tensor %s is missing", op, slot);
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS)
        return fail(be, HCGA_ERR_INVALID, "%s: %s has ndim %d", op, slot, (int)t->ndim);
    size_t es = hcga_dtype_size(t->dtype);
    if (es == 0) return fail(be, HCGA_ERR_INVALID, "%s: %s has dtype %d", op, slot, (int)t->dtype);
    int64_t expect = 1;
    uint64_t numel = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] < 0)
            return fail(be, HCGA_ERR_INVALID, "%s: %s has negative dim %d", op, slot, i);
        if (t->stride[i] != expect && t->shape[i] != 1)
            return fail(be, HCGA_ERR_INVALID, "%s: %s is not contiguous", op, slot);
        if (t->shape[i] != 0 && (uint64_t)t->shape[i] > UINT64_MAX / 16 / numel)
            return fail(be, HCGA_ERR_INVALID, "%s: %s is too large", op, slot);
        numel *= (uint64_t)t->shape[i];
        expect *= t->shape[i];
    }
    if (!range_ok(t->buf, t->offset, numel * es))
        return fail(be, HCGA_ERR_INVALID, "%s: %s extends past the end of its buffer", op, slot);
    if (t->offset % es)
        return fail(be, HCGA_ERR_INVALID, "%s: %s offset %llu is not aligned to its dtype", op,
                    slot, (unsigned long long)t->offset);
    return HCGA_OK;
}

static int same_shape(const hcga_tensor *a, const hcga_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static void *data_of(const hcga_tensor *t)
{
    return (char *)t->buf->data + t->offset;
}

/* Example 1, an elementwise op: RELU_FWD  in: x  out: y = max(x, 0). */
static hcga_status op_relu_fwd(hcga_backend *be, const hcga_op_args *a)
{
    const char *op = "relu_fwd";
    if (a->num_in < 1 || a->num_out < 1)
        return fail(be, HCGA_ERR_INVALID, "%s: needs 1 input and 1 output", op);
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    hcga_status st;
    if ((st = check_tensor(be, op, "x", x)) != HCGA_OK) return st;
    if ((st = check_tensor(be, op, "y", y)) != HCGA_OK) return st;
    if (!same_shape(x, y)) return fail(be, HCGA_ERR_INVALID, "%s: x and y shapes differ", op);
    if (x->dtype != y->dtype)
        return fail(be, HCGA_ERR_INVALID, "%s: x is %s, y is %s", op, hcga_dtype_name(x->dtype),
                    hcga_dtype_name(y->dtype));
    int64_t n = hcga_tensor_numel(x);
    if (x->dtype == HCGA_F32) {
        const float *xs = data_of(x);
        float *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] > 0.0f ? xs[i] : 0.0f;
    } else if (x->dtype == HCGA_F64) {
        const double *xs = data_of(x);
        double *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = xs[i] > 0.0 ? xs[i] : 0.0;
    } else {
        return fail(be, HCGA_ERR_UNSUPPORTED, "%s: dtype %s is not supported", op,
                    hcga_dtype_name(x->dtype));
    }
    return HCGA_OK;
}

/* Example 2, an op with parameters and integer dtypes:
 * FILL  out: y = scalar.a (float dtypes) or (int) scalar.a (I32/I64). */
static hcga_status op_fill(hcga_backend *be, const hcga_op_args *a)
{
    const char *op = "fill";
    if (a->num_out < 1) return fail(be, HCGA_ERR_INVALID, "%s: needs 1 output", op);
    const hcga_tensor *y = a->out[0];
    hcga_status st;
    if ((st = check_tensor(be, op, "y", y)) != HCGA_OK) return st;
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
        if (!(v >= -2147483648.0 && v <= 2147483647.0))
            return fail(be, HCGA_ERR_INVALID, "%s: %g does not fit i32", op, v);
        int32_t *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = (int32_t)v;
        break;
    }
    case HCGA_I64: {
        if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
            return fail(be, HCGA_ERR_INVALID, "%s: %g does not fit i64", op, v);
        int64_t *ys = data_of(y);
        for (int64_t i = 0; i < n; i++) ys[i] = (int64_t)v;
        break;
    }
    default:
        return fail(be, HCGA_ERR_UNSUPPORTED, "%s: dtype %s is not supported", op,
                    hcga_dtype_name(y->dtype));
    }
    return HCGA_OK;
}

/* The op table, indexed by hcga_op.  A vendor fills in the NULL entries:
 * each one's inputs, outputs and parameters are specified in section 3 of
 * hcga_plugin.h, and backends/cpu is the reference implementation to compare
 * against.  A NULL entry is reported as unsupported by hcga and by the
 * conformance suite. */
static const hcga_op_fn tpl_ops[HCGA_OP_COUNT] = {
    [HCGA_OP_RELU_FWD] = op_relu_fwd,
    [HCGA_OP_FILL] = op_fill,
    /* [HCGA_OP_CONV2D_FWD] = ..., [HCGA_OP_GEMM] = ..., and the rest. */
};

/* Refines the table per dtype: 1 if op can run on dtype. */
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
