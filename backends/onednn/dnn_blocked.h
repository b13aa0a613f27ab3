/*
 * dnn_blocked.h - blocked copies of the frontend's tensors, kept by the
 * oneDNN backend between ops (dnn_blocked.c).  The ABI gives every op plain
 * dense NCHW tensors, while oneDNN's convolutions run on blocked formats
 * (nChw16c, nhwc, OIhw16i16o, ...): reordering every input in and every
 * output back inside each op cost about a third of an HRNet step.  Every
 * byte the frontend can see passes through this backend (ops, buffer_read,
 * buffer_write, buffer_free; there is no mapping), so the backend can keep a
 * tensor in the format a convolution produced or consumed, and write the
 * plain bytes only when something reads them:
 *
 *   - a convolution's output is left in the primitive's format ("dirty":
 *     the plain region is not written yet);
 *   - a convolution's input is taken from a copy of that exact region in
 *     the format the primitive wants when one exists, else reordered into a
 *     new ("clean") copy that later calls can reuse: from a dirty copy of
 *     the region in another format when there is one (weights that Adam
 *     updated in the forward convolutions' format, wanted by a
 *     backward-data convolution in its own), else from the plain bytes;
 *   - an op or buffer_read that reads a region first writes back the dirty
 *     copies overlapping it; an op or buffer_write that writes a region
 *     drops the copies overlapping it (writing back first a dirty one the
 *     write does not cover whole: see "retired" below); buffer_free drops
 *     them unwritten;
 *   - a derived copy (CONV2D_BN_INFER's weights with the batch norm folded
 *     in, in the primitive's format) depends on up to three regions and is
 *     dropped when any of them is written.
 *
 * A dirty copy that a write covers only in part is "retired" instead of
 * written back at once: the written byte ranges are recorded as newer than
 * the copy, the copy is no longer used as an input, and its other bytes are
 * written back only if something reads them (or it is evicted); once writes
 * have covered it whole it is dropped.  The frontend's planner reuses the
 * region of a dead activation for smaller tensors, one part at a time: each
 * such write used to write the whole dead tensor back (a quarter of a
 * training step's reorders), and its bytes are never read again.
 *
 * Copies live in a pool of blocks bounded by the option blocked_mb (least
 * recently used copies are evicted: written back first when dirty).  The
 * results are the same bits as without copies: a reorder is an exact copy.
 */
#ifndef HCGA_DNN_BLOCKED_H
#define HCGA_DNN_BLOCKED_H

#include <dnnl.h>

#include "dnn_internal.h"

#define BLK_MAX_DEPS 3
#define BLK_MAX_STALE 4 /* written ranges a retired copy records (then it is written back) */

typedef struct blk_copy {
    const char *lo;          /* the plain region the copy stands for */
    uint64_t bytes;
    dnnl_memory_t mem;       /* the copy, in its own format, on block */
    void *block;
    size_t block_bytes;
    int dirty;               /* 1: newer than the plain region */
    dnnl_primitive_t back;   /* dirty copies: reorder copy -> plain (owner's) */
    dnnl_memory_t plain;     /* dirty copies: the owner's plain memory object */
    const void *owner;       /* the cache entry that owns back and plain */
    int ndeps;               /* derived copies: what the value depends on */
    const char *dep[BLK_MAX_DEPS];
    uint64_t dep_bytes[BLK_MAX_DEPS];
    double param;            /* derived copies: a parameter of the value (eps) */
    int nstale;              /* > 0: retired (dirty, and these ranges of the plain region, */
    struct {                 /*      offsets from lo, are newer than the copy) */
        uint64_t off, len;
    } stale[BLK_MAX_STALE];
    uint64_t stamp;          /* last use, for eviction */
    int pinned;              /* in use by the running op: not evicted */
} blk_copy;

/* The derived-value key of blk_find / blk_new: NULL for a plain copy. */
typedef struct blk_derived {
    int ndeps;
    const void *dep[BLK_MAX_DEPS];
    uint64_t dep_bytes[BLK_MAX_DEPS];
    double param;
} blk_derived;

/* The copy of region [p, p+bytes) in format md (derived: NULL for a plain
 * copy, else the derived value's key), or NULL. */
blk_copy *blk_find(hcga_backend *be, const void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                   const blk_derived *derived);

/* A new copy of [p, p+bytes) in format md, registered as clean (derived:
 * as blk_find).  The caller fills c->mem, and marks it dirty with
 * blk_set_dirty when it is newer than the plain region.  Errors name op. */
hcga_status blk_new(hcga_backend *be, const char *op, const void *p, uint64_t bytes,
                    const dnnl_memory_desc_t *md, const blk_derived *derived, blk_copy **out);

/* A new copy of [p, p+bytes) in format md (derived: as blk_new), filled by
 * running `reorder` from `from` (plain memory whose handle the caller has
 * set to the bytes the value comes from).  Errors name op. */
hcga_status blk_fill(hcga_backend *be, const char *op, const void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                     const blk_derived *derived, dnnl_memory_t from, dnnl_primitive_t reorder, blk_copy **out);

/* The copy of region p in format md to read it from: the kept one, else
 * a new one reordered from the plain bytes (`reorder` from `user`, whose
 * handle is set to p here), dirty copies overlapping them written back
 * first.  Pinned: the caller unpins it when the op is done. */
hcga_status blk_input(hcga_backend *be, const char *op, void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                      dnnl_memory_t user, dnnl_primitive_t reorder, blk_copy **out);

/* Marks c as newer than its plain region; back (c's format -> plain) and
 * plain (a plain memory object whose handle is set at write-back) belong to
 * owner, which calls blk_owner_gone before it frees them. */
void blk_set_dirty(blk_copy *c, dnnl_primitive_t back, dnnl_memory_t plain, const void *owner);

/* c, a new copy just filled (and marked dirty) by an op that wrote its
 * region, now stands for it: every other copy the write made stale is
 * dropped (a dirty one the region does not cover whole written back first). */
hcga_status blk_replace(hcga_backend *be, blk_copy *c);

/* Is there a (non-derived) copy of exactly [p, p+bytes), in any format? */
int blk_has(const hcga_backend *be, const void *p, uint64_t bytes);

/* Drops c (a copy whose content is not needed: an output that failed). */
void blk_drop(hcga_backend *be, blk_copy *c);

/* owner is about to free its primitives: writes back the dirty copies
 * that use them. */
hcga_status blk_owner_gone(hcga_backend *be, const void *owner);

/* The formats dnn_act.c runs ops in, for a 4-D tensor of dtype f32 (or
 * bf16: native bf16 convolutions), be->act_fmt its block b (16 on AVX-512,
 * 8 on AVX2):
 *   DNN_FMT_ACT  activations [N, C, H, W] in nChw{b}c, the format training's
 *                convolutions read and write;
 *   DNN_FMT_WEI  weights [K, C, R, S] in OIhw{b}i{b}o, the format of the
 *                forward convolutions' weights and of the backward-weights
 *                convolutions' gradients (the optimizer step runs in it).
 * dnn_fmt_get gives the format and the reorders between it and the plain
 * layout, kept in the primitive cache (dnn_prims.c).  To fill a copy from
 * plain bytes p: set user_in's handle to p, run to_blk from user_in to the
 * copy.  A dirty copy in this format gets blk_set_dirty(c, to_plain,
 * user_back, owner). */
enum { DNN_FMT_ACT, DNN_FMT_WEI };

typedef struct dnn_fmt {
    const dnnl_memory_desc_t *md;
    dnnl_memory_t user_in, user_back;
    dnnl_primitive_t to_blk, to_plain;
    const void *owner;
} dnn_fmt;

hcga_status dnn_fmt_get(hcga_backend *be, const char *op, const int64_t dims[4], int dtype, int which,
                        dnn_fmt *f);

/* The memory descriptor of that format, without the cache (0 when oneDNN
 * refuses it). */
int dnn_fmt_md(const hcga_backend *be, const int64_t dims[4], int dtype, int which, dnnl_memory_desc_t *md);

#endif
