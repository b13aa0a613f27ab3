/*
 * dnn_act.c - training's batch norms, ReLUs, additions and upsamplings on
 * activations kept in oneDNN's blocked format between ops (and the
 * optimizer step on weights kept in theirs).  dnn_blocked.h keeps the
 * convolutions' inputs and outputs in blocked copies; but in training every
 * convolution output goes to a batch norm and a ReLU (and, at branch ends,
 * an addition), plain ops that read the plain bytes, so each output was
 * written back to NCHW and each input reordered again: a fifth of a training
 * step.  Here those ops run on the copies themselves:
 *
 *   - the activation format is nChw16c on AVX-512 and nChw8c on AVX2 (the
 *     one oneDNN's backward convolutions choose; dnn_prims.c asks every
 *     training convolution for it where the channels divide by the block);
 *   - a call of RELU_FWD, RELU_BWD, ADD (no broadcast), BN_FWD_TRAIN,
 *     BN_BWD or UPSAMPLE_NEAREST_FWD / BWD (HRNet's fuse layers) at f32 on
 *     [N, C, H, W] tensors whose C divides by the block runs on copies when
 *     one of its data inputs has a copy in the format (any other data input
 *     is reordered into one); its data output is left in a new dirty copy,
 *     as a convolution's is;
 *   - with native bf16 convolutions (mixed precision), so does a CAST
 *     between f32 and bf16 whose input has a copy in the activation format:
 *     the casts the AMP graph puts around every convolution then convert
 *     one blocked copy into another, and no plain bytes are written;
 *   - ADAM_STEP on a [K, C, R, S] weight whose gradient has a copy in the
 *     weights' format (OIhw16i16o / OIhw8i8o: the backward-weights
 *     convolution leaves it there, and the forward one reads weights in
 *     it) runs there too, on copies of the weight and of its moments,
 *     updated in place and left dirty: the gradient is not written back,
 *     the next forward convolution finds its weights ready, and the
 *     backward-data one reorders them from that copy (dnn_blocked.h);
 *   - the op's own implementation runs on the copies' memory: the
 *     elementwise ones (and CAST, ADAM_STEP) do not care about the layout,
 *     and the batch norm and upsampling kernels (dnn_plain_k.h,
 *     "channel-blocked layout") take each channel's sums in the same order
 *     as on NCHW.  Results are the same
 *     bits either way (tests/test_onednn_ops: test_blocked_activations).
 *
 * The option blocked_act=0 (or blocked_mb=0) turns this off.
 */
#include <string.h>

#include "dnn_blocked.h"

enum { SAME_SHAPE = 1, SAME_NC = 2 }; /* what the data tensors of an op share */

/* The data slots of op (ins, outs) and what their shapes share, or 0 when
 * the op never runs blocked. */
static int data_slots(int op, unsigned *in_mask, unsigned *out_mask)
{
    switch (op) {
    case HCGA_OP_RELU_FWD: *in_mask = 0x1, *out_mask = 0x1; return SAME_SHAPE;
    case HCGA_OP_RELU_BWD: *in_mask = 0x3, *out_mask = 0x1; return SAME_SHAPE;
    case HCGA_OP_ADD: *in_mask = 0x3, *out_mask = 0x1; return SAME_SHAPE; /* a broadcast: not blocked */
    case HCGA_OP_BN_FWD_TRAIN: *in_mask = 1u << HCGA_BN_X, *out_mask = 1u << HCGA_BN_Y; return SAME_SHAPE;
    case HCGA_OP_BN_BWD:
        *in_mask = 1u << HCGA_BNB_X | 1u << HCGA_BNB_DY, *out_mask = 1u << HCGA_BNB_DX;
        return SAME_SHAPE;
    case HCGA_OP_UPSAMPLE_NEAREST_FWD:
    case HCGA_OP_UPSAMPLE_NEAREST_BWD: *in_mask = 0x1, *out_mask = 0x1; return SAME_NC;
    case HCGA_OP_CAST: *in_mask = 0x1, *out_mask = 0x1; return SAME_SHAPE;
    case HCGA_OP_ADAM_STEP: *in_mask = 0x1, *out_mask = 0x7; return SAME_SHAPE; /* grad; param, m, v */
    default: return 0;
    }
}

/* Is t a dense 4-D tensor whose shape shares with y's what `share` says? */
static int fits(const hcga_tensor *t, const hcga_tensor *y, int share)
{
    if (!t || t->ndim != 4) return 0;
    int64_t st = 1;
    for (int d = 3; d >= 0; d--) {
        if ((d < 2 || share == SAME_SHAPE) && t->shape[d] != y->shape[d]) return 0;
        if (t->shape[d] > 1 && t->stride[d] != st) return 0;
        st *= t->shape[d];
    }
    return st > 0;
}

static uint64_t dense_bytes(const hcga_tensor *t)
{
    return (uint64_t)hcga_tensor_numel(t) * hcga_dtype_size(t->dtype);
}

/* Does the call run at a dtype this file handles: f32, or a CAST between
 * f32 and bf16 when bf16 convolutions are native (their operands are the
 * copies the casts make)? */
static int act_dtype(const hcga_backend *be, int op, const hcga_checked *ck)
{
    if (op != HCGA_OP_CAST) return ck->dtype == HCGA_F32;
    return be->bf16_native && ((ck->in_dtype == HCGA_F32 && ck->out_dtype == HCGA_BF16) ||
                               (ck->in_dtype == HCGA_BF16 && ck->out_dtype == HCGA_F32));
}

/* The format op runs in (dnn_blocked.h): the optimizer step in the
 * weights' format, the others in the activation format. */
static int op_fmt(int op)
{
    return op == HCGA_OP_ADAM_STEP ? DNN_FMT_WEI : DNN_FMT_ACT;
}

/* Has t a copy in format `which`?  (A weight gradient's copy in a
 * convolution's weight format does not count for a CAST: casting it
 * through the activation format would cost two reorders and save none.) */
static int has_fmt_copy(hcga_backend *be, const hcga_tensor *t, int which)
{
    dnnl_memory_desc_t md;
    return dnn_fmt_md(be, t->shape, t->dtype, which, &md) && blk_find(be, dnn_ptr(t), dense_bytes(t), &md, NULL);
}

int dnn_act_plan(hcga_backend *be, int op, const hcga_op_args *a, const hcga_checked *ck, unsigned *in_mask,
                 unsigned *out_mask)
{
    unsigned im, om;
    int share;
    if (!be->act_block || !be->blk || !act_dtype(be, op, ck) || !(share = data_slots(op, &im, &om))) return 0;
    const int which = op_fmt(op);
    const hcga_tensor *y = a->out[0];
    if (!fits(y, y, share) || y->shape[1] % be->act_block != 0) return 0;
    if (which == DNN_FMT_WEI && y->shape[0] % be->act_block != 0) return 0; /* OIhw{b}i{b}o: no padding */
    for (int i = 1; i < a->num_out; i++)
        if ((om >> i & 1) && !fits(a->out[i], y, share)) return 0;
    int kept = 0;
    for (int i = 0; i < a->num_in; i++) {
        if (!(im >> i & 1)) continue;
        if (!fits(a->in[i], y, share)) return 0; /* ADD with a broadcast operand, a view */
        kept |= op == HCGA_OP_CAST || which == DNN_FMT_WEI ? has_fmt_copy(be, a->in[i], which)
                                                         : blk_has(be, dnn_ptr(a->in[i]), dense_bytes(a->in[i]));
    }
    if (!kept) return 0;
    *in_mask = im;
    *out_mask = om;
    return 1;
}

/* A tensor like t on memory p (a copy's block). */
static void on_copy(const hcga_tensor *t, void *p, uint64_t bytes, hcga_tensor *v, struct hcga_buffer *b)
{
    b->data = p;
    b->size = bytes;
    *v = *t;
    v->buf = b;
    v->offset = 0;
}

/* Is the format of u that of t (NULL: none yet)? */
static int same_fmt(const hcga_tensor *t, const hcga_tensor *u)
{
    return t && t->dtype == u->dtype && memcmp(t->shape, u->shape, 4 * sizeof *t->shape) == 0;
}

/* The format of tensor t into *f, unless *ft (the tensor *f is for) has
 * the same one. */
static hcga_status fmt_for(hcga_backend *be, const char *op, const hcga_tensor *t, int which,
                           const hcga_tensor **ft, dnn_fmt *f)
{
    if (same_fmt(*ft, t)) return HCGA_OK;
    hcga_status st = dnn_fmt_get(be, op, t->shape, t->dtype, which, f);
    if (st == HCGA_OK) *ft = t;
    return st;
}

hcga_status dnn_act_run(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, unsigned in_mask,
                        unsigned out_mask, dnn_impl_fn impl)
{
    const char *op = hcga_op_name(ck->op);
    const int which = op_fmt(ck->op);
    const unsigned inout = hcga_op_get_info(ck->op)->inout; /* outputs the op also reads (ADAM_STEP's) */
    dnn_fmt f = {0}, fo[HCGA_MAX_OP_OUT] = {{0}};
    const hcga_tensor *ft = NULL; /* the tensor f is for: BN's and ReLU's tensors share a format */
    hcga_status st = HCGA_OK;
    hcga_op_args v = *a;
    hcga_tensor tin[HCGA_MAX_OP_IN], tout[HCGA_MAX_OP_OUT];
    struct hcga_buffer bin[HCGA_MAX_OP_IN], bout[HCGA_MAX_OP_OUT];
    blk_copy *used[HCGA_MAX_OP_IN] = {0}, *made[HCGA_MAX_OP_OUT] = {0};
    for (int i = 0; i < a->num_in && st == HCGA_OK; i++) {
        if (!(in_mask >> i & 1)) continue;
        const uint64_t bytes = dense_bytes(a->in[i]);
        if ((st = fmt_for(be, op, a->in[i], which, &ft, &f)) != HCGA_OK) break;
        st = blk_input(be, op, dnn_ptr(a->in[i]), bytes, f.md, f.user_in, f.to_blk, &used[i]);
        if (st != HCGA_OK) break;
        on_copy(a->in[i], used[i]->block, bytes, &tin[i], &bin[i]);
        v.in[i] = &tin[i];
    }
    for (int i = 0; i < a->num_out && st == HCGA_OK; i++) {
        if (!(out_mask >> i & 1)) continue;
        const uint64_t bytes = dense_bytes(a->out[i]);
        if ((st = fmt_for(be, op, a->out[i], which, &ft, &f)) != HCGA_OK) break;
        fo[i] = f;
        /* an output the op reads too is updated in place, in its copy */
        if (inout >> i & 1) st = blk_input(be, op, dnn_ptr(a->out[i]), bytes, f.md, f.user_in, f.to_blk, &made[i]);
        else if ((st = blk_new(be, op, dnn_ptr(a->out[i]), bytes, f.md, NULL, &made[i])) == HCGA_OK)
            made[i]->pinned = 1;
        if (st != HCGA_OK) break;
        on_copy(a->out[i], made[i]->block, bytes, &tout[i], &bout[i]);
        v.out[i] = &tout[i];
    }
    if (st == HCGA_OK) {
        be->act_now = 1;
        st = impl(be, &v, ck);
        be->act_now = 0;
    }
    for (int i = 0; i < a->num_in; i++)
        if (used[i]) used[i]->pinned = 0;
    for (int i = 0; i < a->num_out; i++) {
        if (!made[i]) continue;
        made[i]->pinned = 0;
        if (st == HCGA_OK) {
            blk_set_dirty(made[i], fo[i].to_plain, fo[i].user_back, fo[i].owner);
            st = blk_replace(be, made[i]); /* the output's older copies (an input's, in place) are stale */
        } else if (!(inout >> i & 1)) {
            blk_drop(be, made[i]); /* the call failed: its output is not there */
        } /* an in-place copy stays as it was: a failing op fails before it writes */
    }
    return st;
}
