/*
 * hcga_contract.h - the op contract checker every backend links.
 *
 * plugins/hcga_plugin.h states what each op accepts; this checker is the one
 * implementation of those rules, so every backend rejects the same bad call
 * with the same message.  A backend's op entry calls hcga_contract_check()
 * first; when it returns HCGA_OK the call is well formed (slot counts from
 * the catalogue plugins/hcga_ops.def; one floating dtype per call, bf16 or
 * f16 only for the ops whose catalogue row has half = 1, while CAST and COPY
 * convert between two; index tensors i64; dense C-contiguous tensors except
 * COPY's; every element inside its buffer; no forbidden aliasing between
 * outputs and inputs; finite scalar parameters; each op's shape rules) and
 * the backend only unpacks and launches.  What the checker cannot know stays with the
 * backend: data-dependent rules (label values, which it checks where it can
 * read them) and what its device cannot do (a dtype, a size), which it
 * refuses with HCGA_ERR_UNSUPPORTED and a reason.
 *
 * Messages are one line, "<op>: <problem>", e.g.
 *   "upsample_nearest_fwd: resize.factor 0 must be in 1..4096".
 *
 * The checker is plain C11 with no state and no allocation: it may be called
 * from any thread.  Buffers are opaque to it; the backend passes a function
 * that returns a buffer's size in bytes.
 *
 * Backend pattern (one entry per catalogue row, so a backend that lacks an
 * op implementation does not compile):
 *
 *   static hcga_status my_dispatch(hcga_backend *be, const hcga_op_args *a, int op)
 *   {
 *       hcga_checked ck;
 *       char msg[HCGA_CONTRACT_MSG_LEN];
 *       hcga_status st = hcga_contract_check(op, a, my_buffer_size, &ck, msg, sizeof msg);
 *       if (st != HCGA_OK) return my_fail(be, st, "%s", msg);
 *       return my_impl[op](be, a, &ck);
 *   }
 *   #define HCGA_OP(id_, ...) \
 *       static hcga_status entry_##id_(hcga_backend *be, const hcga_op_args *a) \
 *       { return my_dispatch(be, a, HCGA_OP_##id_); }
 *   #include "hcga_ops.def"
 *   #undef HCGA_OP
 */
#ifndef HCGA_CONTRACT_H
#define HCGA_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "hcga_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Room for any message of the checker (longer ones are cut). */
#define HCGA_CONTRACT_MSG_LEN 320

/* Limits stated by the header and enforced here. */
#define HCGA_CONTRACT_MAX_DIM ((int64_t)1 << 40)      /* one dimension */
#define HCGA_CONTRACT_MAX_NUMEL ((int64_t)1 << 50)    /* one tensor */
#define HCGA_CONTRACT_MAX_FACTOR 4096                 /* UPSAMPLE_NEAREST factor */

/* Convolution geometry, derived from x/dx, w and the conv parameters. */
typedef struct hcga_conv_dims {
    int64_t N, C, H, W; /* image (x or dx) */
    int64_t K, R, S;    /* filter */
    int64_t P, Q;       /* output (y or dy) */
    int64_t sh, sw, ph, pw, dh, dw;
} hcga_conv_dims;

/* What a successful check learned, for the backend's launch code. */
typedef struct hcga_checked {
    int op;             /* hcga_op */
    int dtype;          /* the call's floating dtype, -1 if none (FILL: y's, COPY and
                         * CAST: x's, CONCAT / SPLIT: the tensors' dtype when it is
                         * floating).  HCGA_F32 or HCGA_F64, except for the ops whose
                         * catalogue row has half = 1 (CONV2D_*, GEMM, CAST), where it
                         * may be HCGA_BF16 or HCGA_F16: a backend must test for each
                         * dtype it handles and never read "not F32" as F64. */
    hcga_conv_dims conv; /* CONV2D_*: filled */
    /* BN_*: x is [N,C] or [N,C,H,W]: C channels, N images, HW = H*W (1 for 2-D) */
    int64_t bn_N, bn_C, bn_HW;
    /* GEMM: y[M,N] = op(a)[M,K] op(b)[K,N] */
    int64_t gemm_M, gemm_N, gemm_K;
    /* Added with ABI 1.1 (nothing above was renamed): the floating dtype of
     * the call's inputs and of its outputs, -1 if none.  Both equal dtype
     * except for COPY (f32 <-> f64) and CAST (any float pair): x's and y's. */
    int in_dtype, out_dtype;
} hcga_checked;

/* Size in bytes of a backend buffer (never called with NULL). */
typedef uint64_t (*hcga_buffer_size_fn)(const hcga_buffer *buf);

/* Checks one op call against the contract of op (the op table entry that
 * was called; args->op must equal it).  Returns HCGA_OK and fills *out, or
 * HCGA_ERR_INVALID with "<op>: <problem>" in err[0..err_len). */
hcga_status hcga_contract_check(int op, const hcga_op_args *args, hcga_buffer_size_fn buffer_size,
                                hcga_checked *out, char *err, size_t err_len);

/* 1 if t is dense C-contiguous (dims of size 1 may have any stride). */
int hcga_contract_is_dense(const hcga_tensor *t);

/* 1 if the byte ranges of x and y overlap in the same buffer. */
int hcga_contract_overlaps(const hcga_tensor *x, const hcga_tensor *y);

/* 1 if x and y are the same view: buffer, offset, dtype and shape equal,
 * strides equal in every dim of size > 1 (in-place use, GEMM's c == y). */
int hcga_contract_same_view(const hcga_tensor *x, const hcga_tensor *y);

/* "[2,3,4]" into buf; returns buf. */
const char *hcga_contract_shape_str(const hcga_tensor *t, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* HCGA_CONTRACT_H */
