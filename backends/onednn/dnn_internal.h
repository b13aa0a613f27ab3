/*
 * dnn_internal.h - shared declarations of the oneDNN backend plugin
 * (backends/onednn).  The plugin is written against plugins/hcga_plugin.h and
 * the template only, as an outside vendor would: dnn_backend.c holds the
 * descriptor, instances, host buffers and the op table; dnn_prims.c the ops
 * that run on oneDNN primitives (convolutions, GEMM) with their primitive
 * cache; dnn_plain.c the plain-C ops (every op at F64, where oneDNN 2.6 has
 * no f64 on the CPU, and the ops oneDNN has no primitive for), threaded with
 * OpenMP, the runtime the Debian oneDNN build uses.
 */
#ifndef HCGA_DNN_INTERNAL_H
#define HCGA_DNN_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "hcga_contract.h"
#include "hcga_plugin.h"

#define DNN_PLUGIN_VERSION "1.0"
#define DNN_ALIGN 256
#define DNN_MAX_THREADS 1024
#define DNN_WS_SLOTS 24 /* workspace slots: see DNN_WS_* */
#define DNN_WS_TMP 0    /* 0..3: scratch of one op */
#define DNN_WS_HALF 4   /* 4..19: f32 copies of half tensors (in 0..7, out 8..15) */
#define DNN_WS_FUSED 20 /* CONV2D_BN_INFER: the weights with the batch norm folded in, the shift */

enum { DNN_PATH_PLAIN, DNN_PATH_ONEDNN, DNN_PATH_BLOCKED, DNN_PATHS }; /* where a call ran (profile) */

struct hcga_buffer {
    void *data;
    uint64_t size;
};

typedef struct dnn_cache dnn_cache; /* the primitive cache (dnn_prims.c) */
typedef struct dnn_blk dnn_blk;     /* blocked copies kept between ops (dnn_blocked.c) */

struct hcga_backend {
    int device;
    int threads;   /* OpenMP threads for oneDNN and the plain-C ops */
    int plain;     /* option plain=1: every op on the plain-C path (debugging) */
    int winograd;  /* option winograd (default 1): f32 3x3 stride-1 convolutions on Winograd */
    int profile;   /* $HCGA_ONEDNN_PROFILE set: per-op times printed at destroy */
    /* per-op times, s: [op][path] (DNN_PATH_*) */
    double prof_wall[HCGA_OP_COUNT][DNN_PATHS], prof_cpu[HCGA_OP_COUNT][DNN_PATHS];
    int64_t prof_calls[HCGA_OP_COUNT][DNN_PATHS];
    int64_t prof_writebacks[HCGA_OP_COUNT]; /* blocked copies the op's calls wrote back */
    void *engine;  /* dnnl_engine_t */
    void *stream;  /* dnnl_stream_t */
    dnn_cache *cache;
    dnn_blk *blk;       /* NULL until the first copy */
    uint64_t blk_cap;   /* option blocked_mb, in bytes; 0: no copies kept */
    int blk_call;       /* this call's convolutions may use and leave copies */
    int act_fmt;        /* the activation format's channel block: 16 (nChw16c, AVX-512), 8
                         * (nChw8c, AVX2), 0 (neither ISA, or plain=1); the training
                         * convolutions' format whatever the other options */
    int act_block;      /* act_fmt when dnn_act.c runs ops on blocked activations (copies kept
                         * and blocked_act=1), else 0 */
    int act_now;        /* the running call's data tensors are copies in the activation format */
    int bf16_native;    /* bf16 convolutions on oneDNN's bf16 primitives (AVX512_BF16 and
                         * option bf16=1), else widened to f32 (dnn_backend.c) */
    int64_t blk_hits, blk_writebacks, blk_evictions, blk_retired; /* for the profile */
    void *ws[DNN_WS_SLOTS];
    size_t ws_size[DNN_WS_SLOTS];
    char err[512];
};

hcga_status dnn_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Workspace slot (grows, kept until destroy); NULL when out of memory. */
void *dnn_ws(hcga_backend *be, int slot, size_t bytes);

static inline void *dnn_ptr(const hcga_tensor *t)
{
    return (char *)t->buf->data + t->offset;
}

/* Blocked copies (dnn_blocked.c; the rules are in dnn_blocked.h).  Before
 * plain code reads [p, p+bytes): write back the dirty copies overlapping it.
 * Before it is written: drop the copies it touches.  forget: drop them
 * unwritten (the buffer is freed). */
hcga_status dnn_blk_before_read(hcga_backend *be, const void *p, uint64_t bytes);
hcga_status dnn_blk_before_write(hcga_backend *be, const void *p, uint64_t bytes);
void dnn_blk_forget(hcga_backend *be, const void *p, uint64_t bytes);
void dnn_blk_fini(hcga_backend *be);
uint64_t dnn_blk_bytes(const hcga_backend *be); /* in copies and the pool */
int dnn_blk_count(const hcga_backend *be);      /* the most copies the table held */

typedef hcga_status (*dnn_impl_fn)(hcga_backend *be, const hcga_op_args *a,
                                   const hcga_checked *ck);

/* Ops on tensors kept in blocked formats (dnn_act.c): does this call run
 * on blocked copies (f32 activations, f32 <-> bf16 casts of them, Adam on
 * f32 weights)?  If so, *in_mask / *out_mask get the slots of its data
 * tensors (dnn_dispatch leaves them out of its write-backs and drops) and
 * dnn_act_run runs it: impl (the op's implementation) on the copies'
 * memory, the outputs left in dirty copies. */
int dnn_act_plan(hcga_backend *be, int op, const hcga_op_args *a, const hcga_checked *ck, unsigned *in_mask,
                 unsigned *out_mask);
hcga_status dnn_act_run(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck, unsigned in_mask,
                        unsigned out_mask, dnn_impl_fn impl);
/* The activation block of this machine's oneDNN (16, 8 or 0). */
int dnn_act_block_for_isa(void);
/* Has the convolution a zero dimension?  (oneDNN refuses those: they run
 * on the plain-C path, which writes the zero outputs.) */
int dnn_conv_empty(const hcga_conv_dims *d);
/* Has this machine's oneDNN native bf16 convolutions (avx512_core_bf16)? */
int dnn_bf16_isa(void);

/* f32 <-> bf16 / f16 (hcga_half.h's conversions), threaded (dnn_plain.c). */
void dnn_half_from_f32(const float *x, int half_dtype, uint16_t *y, int64_t n);
void dnn_half_to_f32(const uint16_t *x, int half_dtype, float *y, int64_t n);

/* Sets OpenMP's thread count to the instance's (it is per calling thread). */
void dnn_threads(hcga_backend *be);


/* Plain-C implementations (dnn_plain.c): one per catalogue row. */
#define HCGA_OP(id_, ...) hcga_status dnn_plain_##id_(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP

/* oneDNN implementations (dnn_prims.c); f32 (and bf16 convolutions when
 * be->bf16_native).  Each returns
 * HCGA_ERR_UNSUPPORTED with a reason when oneDNN cannot take the call. */
hcga_status dnn_conv_fwd(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_conv_bwd_data(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_conv_bwd_filter(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_gemm(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_relu_fwd(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_relu_bwd(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status dnn_bn_fwd_infer(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
/* CONV2D_BN_INFER: one convolution primitive with post-ops (x scale, + shift, ReLU) */
hcga_status dnn_conv_bn_infer(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);

hcga_status dnn_prims_init(hcga_backend *be, char *err, size_t err_len);
void dnn_prims_fini(hcga_backend *be);
/* For HCGA_ONEDNN_PROFILE: prints (stderr) every cached primitive that ran
 * on a oneDNN reference implementation, with its shape and run count. */
void dnn_prims_print_ref(const hcga_backend *be);
/* "oneDNN 2.6.3 (cpu runtime OpenMP, isa avx2)" */
void dnn_library_version(char *buf, size_t len);

#endif
