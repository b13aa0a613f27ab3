/*
 * cuda_check.c - argument validation shared by every op of the CUDA backend.
 *
 * All checks run on the host before anything is enqueued, so a bad call
 * returns HCGA_ERR_INVALID with a one-line "<op>: <problem>" message and no
 * device work.  The rules are those of plugins/hcga_plugin.h: slot counts,
 * one float dtype per call, dense C-contiguous tensors (except COPY), every
 * element inside its buffer, outputs not overlapping inputs.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

const char *cu_shape_str(const hcga_tensor *t, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0) return buf;
    buf[0] = '\0';
    int n = snprintf(buf, len, "[");
    if (n > 0) used = (size_t)n;
    for (int i = 0; t && i < t->ndim && i < HCGA_MAX_DIMS && used + 1 < len; i++) {
        n = snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)t->shape[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used + 1 < len) snprintf(buf + used, len - used, "]");
    return buf;
}

hcga_status cu_begin(cu_ctx *c, hcga_backend *be, const hcga_op_args *a, int op, int nin_lo,
                     int nin_hi, int nout_lo, int nout_hi)
{
    c->be = be;
    c->a = a;
    c->opcode = op;
    c->op = hcga_op_name(op);
    c->dt = -1;
    if (!be) return HCGA_ERR_INVALID;
    if (!a) CU_BAD(c, "%s: called with NULL args", c->op);
    if (a->op != op)
        CU_BAD(c, "%s: args.op is %d (%s) but the %s entry of the op table was called", c->op,
               (int)a->op, hcga_op_name(a->op), c->op);
    if (a->num_in < nin_lo || a->num_in > nin_hi)
        CU_BAD(c, "%s: num_in is %d, expected %d..%d", c->op, (int)a->num_in, nin_lo, nin_hi);
    if (a->num_out < nout_lo || a->num_out > nout_hi)
        CU_BAD(c, "%s: num_out is %d, expected %d..%d", c->op, (int)a->num_out, nout_lo, nout_hi);
    CU_CUDA(be, c->op, "cudaSetDevice", cudaSetDevice(be->device));
    return HCGA_OK;
}

/* Byte range [lo, hi) touched by t; lo == hi when it is empty. */
static void byte_range(const hcga_tensor *t, uint64_t *lo, uint64_t *hi)
{
    int64_t es = (int64_t)hcga_dtype_size(t->dtype), mn = 0, mx = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) {
            *lo = *hi = t->offset;
            return;
        }
        int64_t e = (t->shape[i] - 1) * t->stride[i];
        if (e < 0) mn += e;
        else mx += e;
    }
    *lo = (uint64_t)((int64_t)t->offset + mn * es);
    *hi = (uint64_t)((int64_t)t->offset + (mx + 1) * es);
}

int cu_overlaps(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf) return 0;
    uint64_t a0, a1, b0, b1;
    byte_range(x, &a0, &a1);
    byte_range(y, &b0, &b1);
    if (a0 == a1 || b0 == b1) return 0;
    return a0 < b1 && b0 < a1;
}

int cu_same_view(const hcga_tensor *x, const hcga_tensor *y)
{
    if (x->buf != y->buf || x->offset != y->offset || x->dtype != y->dtype || x->ndim != y->ndim)
        return 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i] || (x->shape[i] != 1 && x->stride[i] != y->stride[i]))
            return 0;
    return 1;
}

static int is_dense(const hcga_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

/* Structure, dtype validity, strides, alignment and bounds. */
static hcga_status check_tensor(cu_ctx *c, const hcga_tensor *t, const char *name, int dense)
{
    if (!t->buf) CU_BAD(c, "%s: %s has no buffer", c->op, name);
    if (t->dtype < 0 || t->dtype >= HCGA_DTYPE_COUNT)
        CU_BAD(c, "%s: %s has unknown dtype %d", c->op, name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > HCGA_MAX_DIMS)
        CU_BAD(c, "%s: %s has ndim %d (0..%d allowed)", c->op, name, (int)t->ndim, HCGA_MAX_DIMS);
    const int64_t es = (int64_t)hcga_dtype_size(t->dtype);
    const int64_t big = (int64_t)1 << 50;
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            CU_BAD(c, "%s: %s has negative dim %d (%lld)", c->op, name, i, (long long)t->shape[i]);
        if (t->shape[i] > ((int64_t)1 << 40))
            CU_BAD(c, "%s: %s dim %d (%lld) is too large", c->op, name, i, (long long)t->shape[i]);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel) || numel > big)
            CU_BAD(c, "%s: %s has too many elements", c->op, name);
    }
    if (dense && !is_dense(t)) {
        char b[96];
        CU_BAD(c, "%s: %s %s is not dense C-contiguous (only copy accepts strided tensors)", c->op,
               name, cu_shape_str(t, b, sizeof b));
    }
    if (t->offset % (uint64_t)es)
        CU_BAD(c, "%s: %s offset %llu is not a multiple of its element size %lld", c->op, name,
               (unsigned long long)t->offset, (long long)es);
    if (t->offset > t->buf->bytes)
        CU_BAD(c, "%s: %s offset %llu is beyond its buffer (%llu bytes)", c->op, name,
               (unsigned long long)t->offset, (unsigned long long)t->buf->bytes);
    if (numel == 0) return HCGA_OK;
    int64_t mn = 0, mx = 0;
    for (int i = 0; i < t->ndim; i++) {
        int64_t e;
        if (t->stride[i] > big || t->stride[i] < -big ||
            __builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &e))
            CU_BAD(c, "%s: %s stride %d (%lld) is out of range", c->op, name, i,
                   (long long)t->stride[i]);
        if (e < 0) mn += e;
        else mx += e;
    }
    if ((int64_t)t->offset + mn * es < 0)
        CU_BAD(c, "%s: %s reaches before the start of its buffer", c->op, name);
    if ((uint64_t)((int64_t)t->offset + (mx + 1) * es) > t->buf->bytes) {
        char b[96];
        CU_BAD(c, "%s: %s %s at offset %llu overruns its buffer of %llu bytes", c->op, name,
               cu_shape_str(t, b, sizeof b), (unsigned long long)t->offset,
               (unsigned long long)t->buf->bytes);
    }
    return HCGA_OK;
}

static hcga_status check_kind(cu_ctx *c, const hcga_tensor *t, const char *name, int kind)
{
    if (kind == CU_K_FLOAT) {
        if (t->dtype != HCGA_F32 && t->dtype != HCGA_F64)
            CU_BAD(c, "%s: %s has dtype %s, expected f32 or f64", c->op, name,
                   hcga_dtype_name(t->dtype));
        if (c->dt < 0)
            c->dt = t->dtype;
        else if (t->dtype != c->dt)
            CU_BAD(c, "%s: %s has dtype %s but the op's other float tensors are %s", c->op, name,
                   hcga_dtype_name(t->dtype), hcga_dtype_name(c->dt));
    } else if (kind == CU_K_I64 && t->dtype != HCGA_I64) {
        CU_BAD(c, "%s: %s has dtype %s, expected i64", c->op, name, hcga_dtype_name(t->dtype));
    }
    return HCGA_OK;
}

static hcga_status get_slot(cu_ctx *c, int is_out, int slot, const char *name, int kind,
                            int optional, const hcga_tensor **tp, void **p)
{
    int count = is_out ? c->a->num_out : c->a->num_in;
    const hcga_tensor *t = NULL;
    if (slot < count) t = is_out ? c->a->out[slot] : c->a->in[slot];
    *tp = t;
    *p = NULL;
    if (!t) {
        if (optional) return HCGA_OK;
        CU_BAD(c, "%s: %s (%s[%d]) is missing", c->op, name, is_out ? "out" : "in", slot);
    }
    CU_TRY(check_tensor(c, t, name, 1));
    CU_TRY(check_kind(c, t, name, kind));
    *p = (char *)t->buf->ptr + t->offset;
    return HCGA_OK;
}

hcga_status cu_in(cu_ctx *c, int slot, const char *name, int kind, int optional,
                  const hcga_tensor **t, void **p)
{
    return get_slot(c, 0, slot, name, kind, optional, t, p);
}

hcga_status cu_out(cu_ctx *c, int slot, const char *name, int kind, int optional,
                   const hcga_tensor **t, void **p)
{
    return get_slot(c, 1, slot, name, kind, optional, t, p);
}

hcga_status cu_tensor_strided(cu_ctx *c, const hcga_tensor *t, const char *name, void **p)
{
    *p = NULL;
    CU_TRY(check_tensor(c, t, name, 0));
    *p = (char *)t->buf->ptr + t->offset;
    return HCGA_OK;
}

hcga_status cu_shape(cu_ctx *c, const hcga_tensor *t, const char *name, int nd, const int64_t *dims)
{
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char b1[96], b2[96];
        hcga_tensor e;
        memset(&e, 0, sizeof e);
        e.ndim = nd;
        for (int i = 0; i < nd && i < HCGA_MAX_DIMS; i++) e.shape[i] = dims[i];
        CU_BAD(c, "%s: %s has shape %s, expected %s", c->op, name, cu_shape_str(t, b1, sizeof b1),
               cu_shape_str(&e, b2, sizeof b2));
    }
    return HCGA_OK;
}

hcga_status cu_same(cu_ctx *c, const hcga_tensor *t, const char *name, const hcga_tensor *ref,
                    const char *refname)
{
    int ok = t->ndim == ref->ndim;
    for (int i = 0; ok && i < t->ndim; i++) ok = t->shape[i] == ref->shape[i];
    if (!ok) {
        char b1[96], b2[96];
        CU_BAD(c, "%s: %s has shape %s but %s has %s", c->op, name, cu_shape_str(t, b1, sizeof b1),
               refname, cu_shape_str(ref, b2, sizeof b2));
    }
    return HCGA_OK;
}

hcga_status cu_ndim(cu_ctx *c, const hcga_tensor *t, const char *name, int nd, const char *layout)
{
    if (t->ndim != nd) {
        char b[96];
        CU_BAD(c, "%s: %s must be %d-D %s, got %s", c->op, name, nd, layout,
               cu_shape_str(t, b, sizeof b));
    }
    return HCGA_OK;
}

hcga_status cu_scalar(cu_ctx *c, const hcga_tensor *t, const char *name)
{
    if (hcga_tensor_numel(t) != 1) {
        char b[96];
        CU_BAD(c, "%s: %s must be a scalar ([1]), got %s", c->op, name, cu_shape_str(t, b, sizeof b));
    }
    return HCGA_OK;
}

hcga_status cu_finite(cu_ctx *c, double v, const char *name)
{
    if (!isfinite(v)) CU_BAD(c, "%s: parameter %s is not finite (%g)", c->op, name, v);
    return HCGA_OK;
}

hcga_status cu_noalias(cu_ctx *c, int allow_exact)
{
    const hcga_op_args *a = c->a;
    for (int o = 0; o < a->num_out; o++) {
        const hcga_tensor *y = a->out[o];
        if (!y) continue;
        for (int i = 0; i < a->num_in; i++) {
            const hcga_tensor *x = a->in[i];
            if (!x || !cu_overlaps(x, y)) continue;
            if (allow_exact && cu_same_view(x, y)) continue;
            CU_BAD(c, "%s: out[%d] overlaps in[%d] in the same buffer", c->op, o, i);
        }
        for (int p = 0; p < o; p++)
            if (a->out[p] && cu_overlaps(a->out[p], y))
                CU_BAD(c, "%s: out[%d] overlaps out[%d] in the same buffer", c->op, o, p);
    }
    return HCGA_OK;
}
