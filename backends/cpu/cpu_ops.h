/*
 * cpu_ops.h - task contexts and dimension records shared by the op
 * wrappers (cpu_ops.c) and the type-generic kernels (cpu_kernels.h); the
 * convolution geometry is the contract checker's hcga_conv_dims.
 * The contexts hold untyped pointers; each kernel casts them to its T.
 */
#ifndef HCGA_CPU_OPS_H
#define HCGA_CPU_OPS_H

#include <stdint.h>

#include "cpu_internal.h"
#include "hcga_contract.h" /* hcga_conv_dims, the geometry the checker derives */

/* Chunk sizes that fix summation order independently of thread count. */
#define CPU_RED_CHUNK 65536 /* REDUCE partial sums */
#define CPU_VEC_CHUNK 256   /* inner-position chunk of channel ops */
#define CPU_SUM_LANES 16    /* independent accumulators of per-channel sums */
#define CPU_EW_CHUNK 16384  /* elements per task of broadcasting ADD / MUL rows */

/* Conv GEMM width: images are grouped (im2col columns of several images side
 * by side, dy gathered likewise) only while a plane has fewer than this many
 * output positions; larger planes go one image per GEMM with no gather, and a
 * 1x1 stride-1 unpadded conv then multiplies x / dy in place (no im2col).
 * 2048 measured best on this machine for HRNet-W32 layers (cpu_perf). */
#define CPU_CONV_TARGET_COLS 2048
#define CPU_CONV_TARGET_COLS_BWDF 2048

/* BLAS always runs single-threaded in the calling thread (its own worker
 * threads spin-wait between calls, which on a shared machine costs more CPU
 * than the GEMMs they help with); the pool parallelises instead: a conv over
 * several images runs image groups in parallel, one GEMM is split into
 * slices of CPU_GEMM_UNIT rows or columns when it has at least
 * CPU_GEMM_SPLIT_MIN multiply-adds. */
#define CPU_GEMM_UNIT 16
#define CPU_GEMM_SPLIT_MIN ((double)(1 << 20))

/* Elementwise kinds handled by one task (ew_task). */
enum {
    EW_RELU_F,   /* y = max(a, 0) */
    EW_RELU_B,   /* y = a > 0 ? b : 0          (a = y, b = dy) */
    EW_SIG_F,    /* y = 1/(1+exp(-a)) */
    EW_SIG_B,    /* y = b*a*(1-a)              (a = y, b = dy) */
    EW_THR_F,    /* y = a < s ? 0 : a */
    EW_THR_B,    /* y = a < s ? 0 : b          (a = x, b = dy) */
    EW_FILL,     /* y = s */
    EW_SIGN_MUL, /* y = s*sign(a) */
    EW_SCALE     /* y = s*a */
};

typedef struct ew_ctx {
    int kind;
    const void *a, *b;
    void *y;
    double s;
} ew_ctx;

/* Broadcasting binary op over up to 5 coalesced dims. */
typedef struct bin_ctx {
    int mul; /* 0: alpha*a + beta*b, 1: alpha*a*b */
    const void *a, *b;
    void *y;
    double alpha, beta;
    int nd;
    int64_t len[HCGA_MAX_DIMS];
    int64_t sa[HCGA_MAX_DIMS], sb[HCGA_MAX_DIMS], sy[HCGA_MAX_DIMS];
    int64_t rows; /* product of len[0..nd-2] */
} bin_ctx;

/* SUM_TO over coalesced dims: kept dims (ko, then the last kept or reduced
 * inner dim) and reduced dims (rd). */
typedef struct sumto_ctx {
    const void *x;
    void *y;
    int last_kept; /* 1: innermost dim kept (length L), else reduced */
    int64_t L;
    int nko, nrd;
    int64_t ko_len[HCGA_MAX_DIMS], ko_xs[HCGA_MAX_DIMS];
    int64_t rd_len[HCGA_MAX_DIMS], rd_xs[HCGA_MAX_DIMS];
    int64_t O, R, nch;
} sumto_ctx;

typedef struct conv_ctx {
    const hcga_conv_dims *d;
    const void *x;  /* image tensor base (x or dx) */
    void *col;      /* column matrix, row stride ld */
    int64_t n0, cnt, ld;
    int64_t ch;     /* scatter / gather: channels per image (K, or C for 1x1 dx) */
    void *y;        /* output base for scatter/gather */
    const void *src;
    const void *bias;
    hcga_backend *be;
} conv_ctx;

/* A whole conv op split into `parts` parallel parts, each running groups of
 * nb images with single-threaded GEMMs in its own workspace slab. */
typedef struct convp_ctx {
    hcga_backend *be;
    const hcga_conv_dims *d;
    const void *x, *w, *bias, *dy;
    void *y, *dx, *dw;
    void *ws;           /* parts slabs of ws_elems elements */
    int64_t ws_elems, col_elems;
    void *partial;      /* bwd_filter: parts-1 partial dw of K*CRS elements */
    int64_t nb, ngroups, parts;
} convp_ctx;

/* One GEMM split into parts along M or N, each a single-threaded BLAS call. */
typedef struct pgemm_ctx {
    int ta, tb, split_m;
    int64_t M, N, K, lda, ldb, ldc, parts;
    double alpha, beta;
    const void *a, *b;
    void *c;
} pgemm_ctx;

/* Batch-norm kernels (cpu_kernels.h FN(bn)). */
enum {
    BN_K_TRAIN,      /* BN_FWD_TRAIN */
    BN_K_INFER,      /* BN_FWD_INFER */
    BN_K_BWD,        /* BN_BWD */
    BN_K_STATS,      /* BN_STATS: sum, sumsq */
    BN_K_FWD_STATS,  /* BN_FWD_FROM_STATS */
    BN_K_BWD_STATS   /* BN_BWD_FROM_STATS */
};

typedef struct bn_ctx {
    const void *x, *dy, *gamma, *beta, *mean, *invstd, *rm, *rv;
    void *y, *save_mean, *save_invstd, *out_rm, *out_rv, *dx, *dgamma, *dbeta;
    /* ABI 1.2, statistics summed elsewhere: sum / sumsq (BN_STATS's outputs,
     * BN_FWD_FROM_STATS's inputs), sum_dy / sum_dy_xhat, count = bn.count */
    void *sum, *sumsq;
    const void *sum_dy, *sum_dy_xhat;
    int64_t count;
    int64_t N, C, HW;
    double eps, momentum;
} bn_ctx;

typedef struct chan_ctx {
    const void *x, *dy;
    void *y;
    int64_t N, C, S, nch;
} chan_ctx;

typedef struct plane_ctx {
    const void *x;
    void *y;
    int64_t H, W, OH, OW;
    int factor;
    const int64_t *hi;   /* resize: OH*2 (h0,h1) */
    const double *hl;    /* OH*2 (l0,l1) */
    const int64_t *wi;
    const double *wl;
    double scale;
    hcga_backend *be;
} plane_ctx;

/* Plane kernels (cpu_kernels.h FN(plane)). */
enum { PL_UPS, PL_UPS_BWD, PL_RESIZE, PL_RESIZE_BWD, PL_GAP, PL_GAP_BWD };

typedef struct loss_ctx {
    const void *x, *dloss;
    const int64_t *labels;
    void *y;
    double *part;
    int64_t N, C, S, nch, D;
    double eps, g, margin;
    int64_t ignore;
    int dn, dh, dw;
    int64_t H, W;
    double *dist;
} loss_ctx;

typedef struct opt_ctx {
    const void *grad;
    void *param, *m, *v;
    double lr, b1, b2, eps, wd, mom, bc1, bc2s;
    int64_t step;
} opt_ctx;

#endif
