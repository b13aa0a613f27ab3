/*
 * broken_plugin.c - a deliberately wrong backend ("broken") for the
 * conformance suite's own unit test (conformance/test_conformance.c).  Built
 * by `make check` only; never installed.
 *
 * Each op has one planted bug, or none (the controls):
 *   relu_fwd       leaves the last element unwritten
 *   sigmoid_fwd    right values, but writes one element past the end
 *   gap_fwd        right values, but writes one element before the start
 *   conv2d_fwd     off by one: skips the last filter column
 *   softmax_fwd    an approximate exp (relative error ~1e-3)
 *   reduce_bwd     SUM gradient doubled
 *   gap_bwd        right values, but no argument checks (accepts bad calls)
 *   thresh_fwd     missing from the op table (unsupported)
 *   cast           narrowing to bf16/f16 truncates (rounds toward zero)
 *                  instead of rounding to nearest even; f32/f64 casts are
 *                  correct
 *   relu_bwd, sigmoid_bwd, reduce   correct (must pass)
 * Every other op is missing, and no op but CAST takes bf16/f16 (so the
 * convolutions' bf16 form is a missing mandatory one).  Host memory.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcga_half.h"
#include "hcga_plugin.h"

struct hcga_buffer {
    unsigned char *data;
    uint64_t size;
};

struct hcga_backend {
    char err[256];
};

static hcga_status fail(hcga_backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hcga_status fail(hcga_backend *be, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return HCGA_ERR_INVALID;
}

static int br_probe(char *why, size_t len)
{
    if (len) why[0] = 0;
    return 1;
}

static hcga_status br_device_info(int device, hcga_device_info *info)
{
    if (device != 0) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "broken test backend");
    return HCGA_OK;
}

static hcga_status br_create(int device, const char *options, hcga_backend **out, char *err,
                             size_t len)
{
    *out = NULL;
    if (device != 0 || (options && *options)) {
        snprintf(err, len, "broken: only device 0 and no options");
        return HCGA_ERR_INVALID;
    }
    *out = calloc(1, sizeof **out);
    return *out ? HCGA_OK : HCGA_ERR_NOMEM;
}

static void br_destroy(hcga_backend *be) { free(be); }
static const char *br_last_error(hcga_backend *be) { return be->err; }

static hcga_status br_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    (void)be;
    *out = NULL;
    hcga_buffer *b = calloc(1, sizeof *b);
    uint64_t r = (bytes + 255) / 256 * 256;
    if (b) b->data = aligned_alloc(256, r ? r : 256);
    if (!b || !b->data) {
        free(b);
        return HCGA_ERR_NOMEM;
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void br_free(hcga_backend *be, hcga_buffer *b)
{
    (void)be;
    if (b) free(b->data);
    free(b);
}

static hcga_status br_write(hcga_backend *be, hcga_buffer *b, uint64_t off, const void *src,
                            uint64_t n)
{
    if (off > b->size || n > b->size - off) return fail(be, "buffer_write out of range");
    memcpy(b->data + off, src, n);
    return HCGA_OK;
}

static hcga_status br_read(hcga_backend *be, hcga_buffer *b, uint64_t off, void *dst, uint64_t n)
{
    if (off > b->size || n > b->size - off) return fail(be, "buffer_read out of range");
    memcpy(dst, b->data + off, n);
    return HCGA_OK;
}

static hcga_status br_sync(hcga_backend *be)
{
    (void)be;
    return HCGA_OK;
}

/* ---- element access (dense tensors, f32/f64, and bf16/f16 for CAST) ---- */

static double get(const hcga_tensor *t, int64_t i)
{
    const unsigned char *p = t->buf->data + t->offset;
    if (hcga_dtype_is_half(t->dtype)) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return (double)hcga_half_to_f32(t->dtype, h);
    }
    return t->dtype == HCGA_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* (anything but f64 is written as f32: gap_bwd's unchecked u8 output stays
 * inside its f32-sized buffer) */
static void put(const hcga_tensor *t, int64_t i, double v)
{
    unsigned char *p = t->buf->data + t->offset;
    if (t->dtype == HCGA_F64) ((double *)p)[i] = v;
    else ((float *)p)[i] = (float)v;
}

/* 1 unless t is an f32/f64 view (bf16/f16 too when allow_half) with a buffer, aligned, whose dense extent
 * lies inside the buffer (so the planted bugs below are the only ones: even
 * conformance's badargs calls stay inside host memory). */
static int bad_tensor_dt(const hcga_tensor *t, int allow_half)
{
    if (!t || !t->buf || !hcga_dtype_is_float(t->dtype)) return 1;
    if (hcga_dtype_is_half(t->dtype) && !allow_half) return 1;
    uint64_t es = hcga_dtype_size(t->dtype);
    int64_t n = 1;
    for (int i = 0; i < t->ndim && i < HCGA_MAX_DIMS; i++) {
        if (t->shape[i] < 0) return 1;
        n *= t->shape[i];
    }
    return t->offset % es != 0 || t->offset > t->buf->size ||
           (uint64_t)n > (t->buf->size - t->offset) / es;
}

static int bad_tensor(const hcga_tensor *t) { return bad_tensor_dt(t, 0); }

static int bad(const hcga_op_args *a, int nin, int nout)
{
    if (a->num_in < nin || a->num_out < nout) return 1;
    for (int i = 0; i < nin; i++)
        if (bad_tensor(a->in[i])) return 1;
    for (int i = 0; i < nout; i++)
        if (bad_tensor(a->out[i])) return 1;
    return 0;
}

static hcga_status op_relu_fwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 1, 1)) return fail(be, "relu_fwd: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    for (int64_t i = 0; i + 1 < n; i++) put(a->out[0], i, fmax(get(a->in[0], i), 0.0)); /* bug */
    return HCGA_OK;
}

static hcga_status op_relu_bwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 2, 1)) return fail(be, "relu_bwd: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    for (int64_t i = 0; i < n; i++) put(a->out[0], i, get(a->in[0], i) > 0 ? get(a->in[1], i) : 0.0);
    return HCGA_OK;
}

static hcga_status op_sigmoid_fwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 1, 1)) return fail(be, "sigmoid_fwd: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    for (int64_t i = 0; i < n; i++) put(a->out[0], i, 1.0 / (1.0 + exp(-get(a->in[0], i))));
    put(a->out[0], n, 0.0); /* bug: one element past the end */
    return HCGA_OK;
}

static hcga_status op_sigmoid_bwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 2, 1)) return fail(be, "sigmoid_bwd: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    for (int64_t i = 0; i < n; i++) {
        double y = get(a->in[0], i);
        put(a->out[0], i, get(a->in[1], i) * y * (1.0 - y));
    }
    return HCGA_OK;
}

static hcga_status op_gap_fwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 1, 1) || a->in[0]->ndim != 4) return fail(be, "gap_fwd: bad args");
    const hcga_tensor *x = a->in[0];
    int64_t nc = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
    for (int64_t i = 0; i < nc; i++) {
        double s = 0;
        for (int64_t j = 0; j < hw; j++) s += get(x, i * hw + j);
        put(a->out[0], i, s / (double)hw);
    }
    put(a->out[0], -1, 0.0); /* bug: one element before the start */
    return HCGA_OK;
}

static hcga_status op_conv2d_fwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 2, 1)) return fail(be, "conv2d_fwd: bad args");
    const hcga_tensor *x = a->in[0], *w = a->in[1], *b = a->num_in > 2 ? a->in[2] : NULL,
                      *y = a->out[0];
    const hcga_conv_params *p = &a->p.conv;
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t K = w->shape[0], R = w->shape[2], S = w->shape[3], P = y->shape[2], Q = y->shape[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t oh = 0; oh < P; oh++)
                for (int64_t ow = 0; ow < Q; ow++) {
                    double s = b ? get(b, k) : 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t r = 0; r < R; r++)
                            for (int64_t q = 0; q + 1 < S || (S == 1 && q == 0); q++) { /* bug */
                                int64_t ih = oh * p->stride_h - p->pad_h + r * p->dilation_h;
                                int64_t iw = ow * p->stride_w - p->pad_w + q * p->dilation_w;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += get(x, ((n * C + c) * H + ih) * W + iw) *
                                     get(w, ((k * C + c) * R + r) * S + q);
                            }
                    put(y, ((n * K + k) * P + oh) * Q + ow, s);
                }
    return HCGA_OK;
}

static hcga_status op_softmax_fwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 1, 1) || a->in[0]->ndim < 2) return fail(be, "softmax_fwd: bad args");
    const hcga_tensor *x = a->in[0];
    int64_t N = x->shape[0], C = x->shape[1], inner = hcga_tensor_numel(x) / (N * C);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < inner; i++) {
            double m = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) m = fmax(m, get(x, (n * C + c) * inner + i));
            for (int64_t c = 0; c < C; c++) {
                double e = pow(1.0 + (get(x, (n * C + c) * inner + i) - m) / 512.0, 512.0); /* bug */
                put(a->out[0], (n * C + c) * inner + i, e);
                s += e;
            }
            for (int64_t c = 0; c < C; c++)
                put(a->out[0], (n * C + c) * inner + i, get(a->out[0], (n * C + c) * inner + i) / s);
        }
    return HCGA_OK;
}

static hcga_status op_reduce(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 1, 1)) return fail(be, "reduce: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = get(a->in[0], i);
        s += a->p.reduce.kind == HCGA_REDUCE_ABS_MEAN ? fabs(v) : v;
    }
    if (a->p.reduce.kind != HCGA_REDUCE_SUM) s /= (double)n;
    put(a->out[0], 0, s);
    return HCGA_OK;
}

static hcga_status op_reduce_bwd(hcga_backend *be, const hcga_op_args *a)
{
    if (bad(a, 2, 1)) return fail(be, "reduce_bwd: bad args");
    int64_t n = hcga_tensor_numel(a->in[0]);
    double dy = get(a->in[1], 0);
    for (int64_t i = 0; i < n; i++) {
        double x = get(a->in[0], i), g;
        switch (a->p.reduce.kind) {
        case HCGA_REDUCE_SUM: g = 2.0 * dy; break; /* bug */
        case HCGA_REDUCE_MEAN: g = dy / (double)n; break;
        default: g = dy * (double)((x > 0) - (x < 0)) / (double)n; break;
        }
        put(a->out[0], i, g);
    }
    return HCGA_OK;
}

/* right values, but no validation at all: accepts calls it must refuse */
static hcga_status op_gap_bwd(hcga_backend *be, const hcga_op_args *a)
{
    (void)be;
    const hcga_tensor *dx = a->out[0];
    int64_t nc = dx->shape[0] * dx->shape[1], hw = dx->shape[2] * dx->shape[3];
    for (int64_t i = 0; i < nc; i++)
        for (int64_t j = 0; j < hw; j++) put(dx, i * hw + j, get(a->in[0], i) / (double)hw);
    return HCGA_OK;
}

/* bug: narrowing to a half format truncates (the correctly rounded value,
 * stepped back one ulp toward zero when it rounded away from zero) */
static hcga_status op_cast(hcga_backend *be, const hcga_op_args *a)
{
    if (a->num_in < 1 || a->num_out < 1 || bad_tensor_dt(a->in[0], 1) ||
        bad_tensor_dt(a->out[0], 1) || hcga_tensor_numel(a->in[0]) != hcga_tensor_numel(a->out[0]))
        return fail(be, "cast: bad args");
    const hcga_tensor *x = a->in[0], *y = a->out[0];
    int64_t n = hcga_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = get(x, i);
        if (y->dtype == HCGA_F32 && fabs(v) > FLT_MAX && isfinite(v)) {
            /* beyond float's range: nearest even is FLT_MAX below the
             * midpoint to 2^128, Inf from it on */
            v = fabs(v) >= 0x1.ffffffp+127 ? copysign(INFINITY, v) : copysign(FLT_MAX, v);
        }
        if (!hcga_dtype_is_half(y->dtype)) {
            put(y, i, v);
            continue;
        }
        uint16_t h = hcga_half_from_f64(y->dtype, v);
        double w = (double)hcga_half_to_f32(y->dtype, h);
        if (v == v && (h & 0x7fffu) != 0 && fabs(w) > fabs(v)) h--; /* bug */
        memcpy(y->buf->data + y->offset + 2 * i, &h, 2);
    }
    return HCGA_OK;
}

static hcga_op_fn table[HCGA_OP_COUNT];

static int br_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    if (op < 0 || op >= HCGA_OP_COUNT || !table[op]) return 0;
    return dtype == HCGA_F32 || dtype == HCGA_F64 ||
           (op == HCGA_OP_CAST && hcga_dtype_is_half(dtype));
}

static hcga_backend_iface iface;

static const hcga_backend_iface *br_get_iface(void)
{
    table[HCGA_OP_RELU_FWD] = op_relu_fwd;
    table[HCGA_OP_RELU_BWD] = op_relu_bwd;
    table[HCGA_OP_SIGMOID_FWD] = op_sigmoid_fwd;
    table[HCGA_OP_SIGMOID_BWD] = op_sigmoid_bwd;
    table[HCGA_OP_GAP_FWD] = op_gap_fwd;
    table[HCGA_OP_GAP_BWD] = op_gap_bwd;
    table[HCGA_OP_CONV2D_FWD] = op_conv2d_fwd;
    table[HCGA_OP_SOFTMAX_FWD] = op_softmax_fwd;
    table[HCGA_OP_REDUCE] = op_reduce;
    table[HCGA_OP_REDUCE_BWD] = op_reduce_bwd;
    table[HCGA_OP_CAST] = op_cast;
    iface.struct_size = sizeof iface;
    iface.probe = br_probe;
    iface.device_info = br_device_info;
    iface.create = br_create;
    iface.destroy = br_destroy;
    iface.last_error = br_last_error;
    iface.buffer_alloc = br_alloc;
    iface.buffer_free = br_free;
    iface.buffer_write = br_write;
    iface.buffer_read = br_read;
    iface.synchronize = br_sync;
    iface.ops = table;
    iface.num_ops = HCGA_OP_COUNT;
    iface.supports = br_supports;
    return &iface;
}

const hcga_plugin_descriptor hcga_plugin_descriptor_v1 =
    HCGA_PLUGIN_DESCRIPTOR_INIT("broken", "conformance test backend with planted bugs", "0",
                                br_get_iface);
