/*
 * hcga_plugin.h - the one header a backend vendor reads.
 *
 * hcga (the frontend: model, data, training, evaluation) talks to compute
 * backends only through this file.  A backend is a shared object loaded with
 * dlopen(RTLD_NOW | RTLD_LOCAL) that exports one const data symbol:
 *
 *     const hcga_plugin_descriptor hcga_plugin_descriptor_v1 = { ... };
 *
 * The loader reads that descriptor with dlsym and checks the ABI major
 * version, minor version and the struct sizes BEFORE it calls any function of
 * the plugin.  Only then does it call descriptor->get_iface() to obtain the
 * function table below.
 *
 * Reading order: 1. versioning, 2. tensors and buffers, 3. ops (their exact
 * semantics: inputs, outputs, parameters), 4. the backend function table,
 * 5. the descriptor.  backends/cpu is the reference implementation of every
 * op and plugins/template/ is a skeleton to copy.
 *
 * Conventions for every op:
 *  - Tensors are described by hcga_tensor: dtype, up to 5 dims, strides in
 *    elements, a buffer and a byte offset into it.  Unless an op says
 *    otherwise its tensors are dense and C-contiguous (row-major, last
 *    dimension fastest).  Image tensors are NCHW.
 *  - All floating-point inputs and outputs of one op call have the same
 *    dtype (HCGA_F32 or HCGA_F64); index tensors (labels, argmax) are HCGA_I64.
 *    The exceptions are CAST (any float to any float) and the convolutions
 *    and GEMM, which also take BF16 or F16 ("Mixed precision", section 3).
 *  - Outputs are fully overwritten (never accumulated into) unless the op
 *    says "in/out".  The conformance suite fills outputs with NaN first and
 *    puts sentinels around them, so a partial or out-of-bounds write fails.
 *  - Every call is enqueued on the backend's single in-order stream and may
 *    return before the work is done; buffer_read and synchronize wait.
 *  - A function returns HCGA_OK or an error code; on error, last_error()
 *    returns one line naming the op and the failing call, e.g.
 *    "CL_OUT_OF_RESOURCES in conv2d_bwd_filter".
 */
#ifndef HCGA_PLUGIN_H
#define HCGA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------- */
/* 1. Versioning                                                           */
/* ---------------------------------------------------------------------- */

/* Major: incompatible change (the loader refuses a different major).
 * Minor: additions at the end of enums and structs; a plugin built for an
 * older minor loads, and ops it does not know are reported unsupported. */
#define HCGA_ABI_MAJOR 1
#define HCGA_ABI_MINOR 3

/* ABI history (minor versions of major 1):
 *   1.0  41 ops (CONV2D_FWD .. SGD_STEP), dtypes F32 F64 I32 I64 U8.
 *   1.1  dtypes HCGA_BF16 and HCGA_F16; op CAST; CONV2D_* and GEMM take
 *        half tensors with F32 accumulation ("Mixed precision" in section 3).
 *        A 1.0 plugin keeps loading: CAST is unsupported there, and so is
 *        every half call (the frontend asks supports() first).
 *   1.2  ops BN_STATS, BN_FWD_FROM_STATS, BN_BWD_FROM_STATS (batch norm
 *        whose statistics are summed elsewhere: synchronised BN across
 *        processes); hcga_bn_params.count; optional capabilities at the end
 *        of hcga_backend_iface: collectives (comm_*) and graph capture
 *        (capture_*).  A 1.1 plugin keeps loading: the three ops are
 *        unsupported there and the capabilities read as NULL (the loader
 *        looks at them only when iface->struct_size covers them).
 *   1.3  optional ops ("Fused ops" in section 3): CONV2D_BN_INFER
 *        (convolution + inference batch norm [+ residual] [+ ReLU] in one call),
 *        hcga_conv_bn_params, hcga_op_info.optional.  An op marked optional
 *        may be left NULL by any backend: the frontend then runs the same
 *        computation as the separate ops, and conformance reports the op
 *        as "not provided" instead of failing.  A 1.2 plugin keeps loading
 *        (num_ops 45: the fused op is unsupported there). */

/* Name of the exported descriptor symbol. */
#define HCGA_PLUGIN_SYMBOL "hcga_plugin_descriptor_v1"

/* ---------------------------------------------------------------------- */
/* 2. Tensors, buffers, status                                             */
/* ---------------------------------------------------------------------- */

typedef enum hcga_status {
    HCGA_OK = 0,
    HCGA_ERR_INVALID = 1,      /* bad argument: shape, dtype, parameter */
    HCGA_ERR_UNSUPPORTED = 2,  /* op or dtype not implemented */
    HCGA_ERR_NOMEM = 3,        /* allocation failed (host or device) */
    HCGA_ERR_DEVICE = 4,       /* the device/driver/library failed */
    HCGA_ERR_NUMERIC = 5       /* NaN or Inf where the op checks for it */
} hcga_status;

typedef enum hcga_dtype {
    HCGA_F32 = 0,
    HCGA_F64 = 1,
    HCGA_I32 = 2,
    HCGA_I64 = 3,
    HCGA_U8 = 4,
    HCGA_BF16 = 5, /* bfloat16: 1 sign, 8 exponent, 7 fraction bits (ABI 1.1) */
    HCGA_F16 = 6,  /* IEEE 754 binary16: 1 sign, 5 exponent, 10 fraction bits (ABI 1.1) */
    HCGA_DTYPE_COUNT
} hcga_dtype;

#define HCGA_MAX_DIMS 5

/* Opaque: each backend defines struct hcga_buffer and struct hcga_backend. */
typedef struct hcga_buffer hcga_buffer;
typedef struct hcga_backend hcga_backend;
typedef struct hcga_capture hcga_capture; /* ABI 1.2: a recorded sequence of calls */

/* A view of memory inside a backend buffer. */
typedef struct hcga_tensor {
    hcga_buffer *buf;              /* owning buffer (from buffer_alloc) */
    uint64_t offset;               /* byte offset of element 0 in buf */
    int32_t dtype;                 /* hcga_dtype */
    int32_t ndim;                  /* 0..HCGA_MAX_DIMS (0 = scalar) */
    int64_t shape[HCGA_MAX_DIMS];  /* dims beyond ndim are 1 */
    int64_t stride[HCGA_MAX_DIMS]; /* in elements; dims beyond ndim are 1 */
} hcga_tensor;

/* ---------------------------------------------------------------------- */
/* 3. Ops                                                                  */
/* ---------------------------------------------------------------------- */
/*
 * Every op is called as  status = ops[OP](backend, &args)  with one
 * hcga_op_args.  in[i] / out[i] are the slots listed for the op; a slot
 * marked "optional" may be NULL.  N,C,H,W are batch, channels, height,
 * width.  "scalar" means a tensor with ndim 0 or shape [1].
 *
 * Convolution (cross-correlation, as in cuDNN/PyTorch), groups = 1:
 *  CONV2D_FWD        in: x[N,C,H,W], w[K,C,R,S], bias[K] (optional)
 *                    out: y[N,K,P,Q], P = (H + 2ph - dh(R-1) - 1)/sh + 1
 *                    params: conv
 *  CONV2D_BWD_DATA   in: dy[N,K,P,Q], w[K,C,R,S]   out: dx[N,C,H,W]
 *  CONV2D_BWD_FILTER in: x[N,C,H,W], dy[N,K,P,Q]
 *                    out: dw[K,C,R,S], dbias[K] (optional: sum of dy over N,P,Q)
 *
 * Batch normalisation over dim 1 of x[N,C] or x[N,C,H,W] (statistics over
 * every dim but 1):
 *  BN_FWD_TRAIN  in: x, gamma[C], beta[C]
 *                out: y, save_mean[C], save_invstd[C] (= 1/sqrt(var_biased+eps)),
 *                     running_mean[C] (in/out), running_var[C] (in/out)
 *                running = (1-momentum)*running + momentum*batch, where the
 *                variance used for running_var is the unbiased one (m/(m-1)).
 *                params: bn
 *  BN_FWD_INFER  in: x, gamma, beta, running_mean, running_var   out: y
 *                y = gamma*(x-rm)/sqrt(rv+eps) + beta.  params: bn
 *  BN_BWD        in: x, dy, gamma, save_mean, save_invstd
 *                out: dx, dgamma[C], dbeta[C]   (training-mode gradient)
 *                dgamma = sum(dy*xhat), dbeta = sum(dy) over every dim but
 *                1, xhat = (x-save_mean)*save_invstd.
 *
 * Batch normalisation from statistics summed elsewhere (ABI 1.2; what
 * synchronised BN is made of: every process computes BN_STATS on its part
 * of the batch, the sums are added over processes, and each process
 * normalises its part with the total).  M = bn.count is the number of
 * elements per channel over all parts (M >= 2):
 *  BN_STATS           in: x    out: sum[C] = sum(x), sumsq[C] = sum(x*x)
 *                     over every dim but 1 (accumulated in F64 or by a
 *                     pairwise/blocked sum: tolerance class DOT)
 *  BN_FWD_FROM_STATS  in: x, gamma, beta, sum[C], sumsq[C]
 *                     out: as BN_FWD_TRAIN (y, save_mean, save_invstd,
 *                     running_mean in/out, running_var in/out) with
 *                     mean = sum/M, var = max(sumsq/M - mean^2, 0) (biased),
 *                     save_invstd = 1/sqrt(var+eps), y = gamma*(x-mean)*
 *                     save_invstd + beta, running_var updated with
 *                     var*M/(M-1).  params: bn (eps, momentum, count)
 *  BN_BWD_FROM_STATS  in: x, dy, gamma, save_mean, save_invstd,
 *                     sum_dy[C], sum_dy_xhat[C]   out: dx
 *                     dx = gamma*save_invstd*(dy - sum_dy/M - xhat*sum_dy_xhat/M)
 *                     where sum_dy, sum_dy_xhat are BN_BWD's dbeta, dgamma
 *                     summed over all parts.  params: bn (count)
 *  With one part (sum, sumsq from BN_STATS of the same x; sum_dy, sum_dy_xhat
 *  from BN_BWD of the same x, dy), these equal BN_FWD_TRAIN and BN_BWD's dx
 *  up to rounding.
 *
 * Elementwise and broadcasting:
 *  RELU_FWD     in: x          out: y = max(x, 0)
 *  RELU_BWD     in: y, dy      out: dx = dy * (y > 0)
 *  SIGMOID_FWD  in: x          out: y = 1/(1+exp(-x))
 *  SIGMOID_BWD  in: y, dy      out: dx = dy * y * (1-y)
 *  THRESH_FWD   in: x          out: y = x < t ? 0 : x         params: scalar.a = t
 *  THRESH_BWD   in: x, dy      out: dx = x < t ? 0 : dy       params: scalar.a = t
 *  ADD          in: a, b       out: y = alpha*a + beta*b      params: scalar.a=alpha, .b=beta
 *  MUL          in: a, b       out: y = alpha*a*b             params: scalar.a=alpha
 *      ADD and MUL broadcast numpy-style: all three tensors have the same
 *      ndim; each dim of a or b equals y's or is 1 (e.g. b[N,1,H,W] over
 *      channels, b[1,C,1,1] per channel, b scalar-shaped [1,1,1,1]).
 *  SUM_TO       in: x          out: y with y.ndim == x.ndim and each dim of y
 *               equal to x's or 1: y = sum of x over the dims where y is 1
 *               (the backward of a broadcast).  y may equal x's shape (copy).
 *  COPY         in: x (any strides)  out: y (any strides), same shape; the
 *               only op that accepts non-contiguous tensors; x and y may
 *               differ in dtype among F32/F64 (conversion).
 *  FILL         out: y = scalar.a (any float dtype) or (int) scalar.a (I64/I32)
 *
 * Channel ops (dim 1):
 *  SOFTMAX_FWD  in: x[N,C,...]  out: y = softmax over dim 1
 *  SOFTMAX_BWD  in: y, dy       out: dx = y * (dy - sum_c(dy*y))
 *  CONCAT       in: x0..x{n-1} (n = num_in, 1..8)  out: y, along dim 1
 *               (all other dims equal; works for any ndim >= 2)
 *  SPLIT        in: dy          out: dx0..dx{n-1} (n = num_out), the
 *               inverse of CONCAT (slices of dim 1, sizes from the outputs)
 *  ARGMAX       in: x[N,C,...]  out: idx[N,...] I64 (first maximal index)
 *
 * Spatial:
 *  UPSAMPLE_NEAREST_FWD in: x[N,C,H,W]   out: y[N,C,H*f,W*f]   params: resize.factor = f
 *  UPSAMPLE_NEAREST_BWD in: dy           out: dx (sum over each f x f block)
 *  RESIZE_BILINEAR_FWD  in: x[N,C,H,W]   out: y[N,C,OH,OW] (size from out)
 *                       align_corners = resize.align_corners (hcga uses 1):
 *                       src = dst*(H-1)/(OH-1) (0 when OH == 1); with 0:
 *                       src = max((dst+0.5)*H/OH - 0.5, 0).
 *  RESIZE_BILINEAR_BWD  in: dy[N,C,OH,OW] out: dx[N,C,H,W]
 *  GAP_FWD      in: x[N,C,H,W]   out: y[N,C] mean over H,W
 *  GAP_BWD      in: dy[N,C]      out: dx[N,C,H,W] = dy/(H*W)
 *
 * Matrix:
 *  GEMM         in: a, b, c (optional, 2-D)  out: y (2-D)
 *               y = alpha*op(a)*op(b) + beta*c, op(t) = t or t^T.
 *               params: gemm.  c may alias y (same buffer and offset).
 *
 * Reductions (to a scalar, output shape [1]):
 *  REDUCE       in: x   out: y[1];  params: reduce.kind = SUM | MEAN | ABS_MEAN
 *  REDUCE_BWD   in: x, dy[1]   out: dx;  SUM: dx = dy; MEAN: dy/numel;
 *               ABS_MEAN: dy*sign(x)/numel (sign(0) = 0)
 *
 * Losses (all return a scalar [1]; the *_BWD take the upstream gradient
 * dloss[1] and write the gradient of the input scores):
 *  CE_LS_FWD    in: logits[N,C], labels[N] I64   out: loss[1]
 *               t = (1-eps)*onehot + eps/C; loss = mean_n sum_c -t*log_softmax.
 *               params: loss.eps (0 gives plain cross entropy)
 *  CE_LS_BWD    in: logits, labels, dloss   out: dlogits
 *  PIXEL_CE_FWD in: logits[N,K,H,W], labels[N,H,W] I64   out: loss[1]
 *               mean over pixels whose label != loss.ignore_label of
 *               -log_softmax_k(label); 0 if every pixel is ignored.
 *  PIXEL_CE_BWD in: logits, labels, dloss   out: dlogits
 *  TRIPLET_FWD  in: x[N,D], labels[N] I64
 *               out: loss[1], hard[N,2] I64 (per anchor: index of the
 *               hardest positive, hardest negative; -1 if none)
 *               d(i,j) = sqrt(max(|xi|^2 + |xj|^2 - 2 xi.xj, 1e-12));
 *               hardest positive = argmax_j d over same label (j may be i),
 *               hardest negative = argmin_j d over other labels; ties take
 *               the lowest index; loss = mean_i max(0, d_ap - d_an + margin)
 *               over anchors that have a negative.  params: loss.margin
 *  TRIPLET_BWD  in: x, hard, dloss   out: dx   (params as forward)
 *  SHIFT_L1_FWD in: x[N,C,H,W]   out: loss[1]
 *               mean over the valid region of |x[n+dn,c,h+dh,w+dw] - x[n,c,h,w]|
 *               with (dn,dh,dw) = shift.dn, shift.dh, shift.dw (each -1, 0 or 1)
 *               (co-parsing's image, vertical, horizontal, diagonal terms)
 *  SHIFT_L1_BWD in: x, dloss   out: dx
 *
 * Mixed precision (ABI 1.1).  BF16 and F16 are storage formats; no op
 * computes in them:
 *  CAST         in: x   out: y, same shape, dense; x and y floating (F32, F64,
 *               BF16, F16), any pair.  y = x rounded to y's dtype, to nearest
 *               with ties to even; values beyond y's range become +-Inf, NaN
 *               stays NaN (quiet), F16 subnormals are kept.  Its gradient is
 *               a CAST of dy back to x's dtype.
 *  CONV2D_FWD, CONV2D_BWD_DATA, CONV2D_BWD_FILTER, GEMM also take BF16 or
 *               F16: every floating tensor of the call (x, w, bias, y; dy,
 *               dx, dw, dbias; a, b, c, y) in the same half dtype.  Products
 *               are accumulated in F32 (or wider) from the exact half values;
 *               alpha, beta and the bias are applied in F32; each output
 *               element is rounded once, at the end, to nearest even.  The
 *               reference backend computes exactly that (inputs widened to
 *               F32, the F32 op, outputs rounded), so other backends are
 *               compared with a well-defined result; conformance/README.md
 *               gives the tolerances.  (Outputs stay in the half dtype, as
 *               cuDNN's half configurations write them; a frontend that
 *               wants F32 CASTs afterwards.)
 *  Every other op takes F32/F64 only.  A backend of ABI >= 1.1 must
 *  support CAST and the half forms at BF16 (conformance fails it otherwise);
 *  F16 it may refuse with HCGA_ERR_UNSUPPORTED where its device has no
 *  16-bit float support (e.g. OpenCL without cl_khr_fp16).
 *
 * Fused ops (ABI 1.3, OPTIONAL: a backend may leave them NULL).  A fused op
 * computes what a chain of the ops above computes, in one call, so that a
 * backend can keep the intermediate values out of memory (oneDNN and cuDNN
 * post-ops, an epilogue after a GEMM).  The frontend calls one only when
 * supports() says yes for the dtype, and only where the intermediate values
 * are read by nothing else (hcga's eval graphs: every convolution followed
 * by its batch norm, and by a ReLU where the model has one); otherwise it
 * calls the separate ops.  HCGA_FUSION=0 in the environment turns the
 * frontend's use of them off, for comparisons.
 *  CONV2D_BN_INFER  in: x[N,C,H,W], w[K,C,R,S], gamma[K], beta[K],
 *                   running_mean[K], running_var[K], bias[K] (optional, slot 6),
 *                   residual[N,K,P,Q] (optional, slot 7; must not overlap y)
 *                   out: y[N,K,P,Q] (P, Q as CONV2D_FWD)
 *                   z = CONV2D_FWD(x, w, bias) (params conv_bn.conv),
 *                   v = gamma*(z-running_mean)/sqrt(running_var+eps) + beta
 *                   per output channel k (eps = conv_bn.eps),
 *                   u = v + residual (ADD, alpha = beta = 1) when given, else v,
 *                   y = conv_bn.relu ? RELU_FWD(u) : u.  params: conv_bn
 *                   (the end of a residual block: conv, BN, + shortcut, ReLU).
 *                   Equal to CONV2D_FWD, BN_FWD_INFER, ADD, RELU_FWD in turn
 *                   up to rounding: a backend may fold the batch norm into a
 *                   per-channel scale and shift of the accumulator (tolerance
 *                   class DOT).  The reference computes the ops in turn on y,
 *                   so on the cpu backend fused and separate calls give the
 *                   same bits.  A NaN pre-activation gives NaN on the
 *                   reference; a backend whose fused ReLU maps NaN to 0 (as
 *                   oneDNN's post-op does) passes conformance, which sends no
 *                   NaN through this op.  F32 and F64 (no half form).
 *
 * Optimizers (in/out on the parameter and its state; all same shape):
 *  ADAM_STEP    in: grad   out (in/out): param, m, v.  torch.optim.Adam:
 *               g = grad + wd*param; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *               param -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *               with t = optim.step (1 on the first step).  params: optim
 *  SGD_STEP     in: grad   out (in/out): param, buf.  torch.optim.SGD:
 *               g = grad + wd*param; buf = (t == 1) ? g : momentum*buf + g;
 *               param -= lr*buf.  params: optim
 */
/* The op enum is generated from the catalogue plugins/hcga_ops.def (one
 * row per op, in ABI order: new ops are appended there). */
typedef enum hcga_op {
#define HCGA_OP(id_, ...) HCGA_OP_##id_,
#define HCGA_OPT_OP(id_, ...) HCGA_OP_##id_,
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
    HCGA_OP_COUNT /* number of ops in this ABI minor version */
} hcga_op;

/* Slot numbers, for readability in backends and in the frontend. */
enum {
    /* CONV2D_FWD */ HCGA_CONV_X = 0, HCGA_CONV_W = 1, HCGA_CONV_BIAS = 2,
    /* BN_FWD_TRAIN / BN_FWD_INFER inputs */
    HCGA_BN_X = 0, HCGA_BN_GAMMA = 1, HCGA_BN_BETA = 2,
    HCGA_BN_RMEAN_IN = 3, HCGA_BN_RVAR_IN = 4, /* BN_FWD_INFER only */
    /* BN_FWD_TRAIN outputs */
    HCGA_BN_Y = 0, HCGA_BN_SAVE_MEAN = 1, HCGA_BN_SAVE_INVSTD = 2,
    HCGA_BN_RMEAN = 3, HCGA_BN_RVAR = 4,
    /* BN_BWD inputs (x, dy, gamma, save_mean, save_invstd) and outputs */
    HCGA_BNB_X = 0, HCGA_BNB_DY = 1, HCGA_BNB_GAMMA = 2, HCGA_BNB_MEAN = 3,
    HCGA_BNB_INVSTD = 4,
    HCGA_BNB_DX = 0, HCGA_BNB_DGAMMA = 1, HCGA_BNB_DBETA = 2,
    /* BN_STATS outputs; BN_FWD_FROM_STATS inputs 3, 4 (x, gamma, beta as
     * BN_FWD_TRAIN; outputs as BN_FWD_TRAIN) */
    HCGA_BNS_SUM = 0, HCGA_BNS_SUMSQ = 1,
    HCGA_BNF_SUM = 3, HCGA_BNF_SUMSQ = 4,
    /* BN_BWD_FROM_STATS inputs 5, 6 (0..4 as BN_BWD; output dx) */
    HCGA_BNB_SUM_DY = 5, HCGA_BNB_SUM_DY_XHAT = 6,
    /* ADAM_STEP outputs */
    HCGA_ADAM_PARAM = 0, HCGA_ADAM_M = 1, HCGA_ADAM_V = 2,
    /* SGD_STEP outputs */
    HCGA_SGD_PARAM = 0, HCGA_SGD_BUF = 1,
    /* CONV2D_BN_INFER inputs (ABI 1.3) */
    HCGA_CBN_X = 0, HCGA_CBN_W = 1, HCGA_CBN_GAMMA = 2, HCGA_CBN_BETA = 3,
    HCGA_CBN_RMEAN = 4, HCGA_CBN_RVAR = 5, HCGA_CBN_BIAS = 6, HCGA_CBN_RES = 7
};

typedef enum hcga_reduce_kind {
    HCGA_REDUCE_SUM = 0,
    HCGA_REDUCE_MEAN = 1,
    HCGA_REDUCE_ABS_MEAN = 2
} hcga_reduce_kind;

#define HCGA_MAX_OP_IN 8
#define HCGA_MAX_OP_OUT 8

typedef struct hcga_conv_params {
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t dilation_h, dilation_w; /* 1 for hcga */
} hcga_conv_params;

typedef struct hcga_bn_params {
    double eps;      /* 1e-5 */
    double momentum; /* 0.1, PyTorch convention */
    int64_t count;   /* ABI 1.2, *_FROM_STATS only: elements per channel, all parts */
} hcga_bn_params;

typedef struct hcga_resize_params {
    int32_t factor;        /* UPSAMPLE_NEAREST: integer scale factor */
    int32_t align_corners; /* RESIZE_BILINEAR */
} hcga_resize_params;

typedef struct hcga_gemm_params {
    int32_t trans_a, trans_b;
    double alpha, beta;
} hcga_gemm_params;

typedef struct hcga_loss_params {
    double eps;           /* CE_LS label smoothing */
    double margin;        /* TRIPLET */
    int64_t ignore_label; /* PIXEL_CE, e.g. -1 */
} hcga_loss_params;

typedef struct hcga_shift_params {
    int32_t dn, dh, dw;
} hcga_shift_params;

typedef struct hcga_optim_params {
    double lr, beta1, beta2, eps, weight_decay, momentum;
    int64_t step; /* 1-based step count t */
} hcga_optim_params;

typedef struct hcga_scalar_params {
    double a, b;
} hcga_scalar_params;

typedef struct hcga_reduce_params {
    int32_t kind; /* hcga_reduce_kind */
} hcga_reduce_params;

/* CONV2D_BN_INFER (ABI 1.3).  conv comes first, so p.conv and
 * p.conv_bn.conv read the same bytes. */
typedef struct hcga_conv_bn_params {
    hcga_conv_params conv;
    int32_t relu;     /* 1: ReLU after the batch norm; 0: none */
    int32_t reserved; /* 0 */
    double eps;       /* the batch norm's eps, 1e-5 */
} hcga_conv_bn_params;

typedef union hcga_op_params {
    hcga_conv_params conv;
    hcga_bn_params bn;
    hcga_resize_params resize;
    hcga_gemm_params gemm;
    hcga_loss_params loss;
    hcga_shift_params shift;
    hcga_optim_params optim;
    hcga_scalar_params scalar;
    hcga_reduce_params reduce;
    hcga_conv_bn_params conv_bn; /* ABI 1.3 */
    uint8_t reserved[128]; /* fixes the union's size for the ABI */
} hcga_op_params;

typedef struct hcga_op_args {
    int32_t op;      /* hcga_op */
    int32_t num_in;  /* number of used in[] slots (trailing optional ones may be NULL) */
    int32_t num_out; /* number of used out[] slots */
    int32_t reserved;
    const hcga_tensor *in[HCGA_MAX_OP_IN];
    const hcga_tensor *out[HCGA_MAX_OP_OUT]; /* the memory is written, the descriptors are not */
    hcga_op_params p;
} hcga_op_args;

/* One op implementation.  Validate what you rely on (shapes, dtypes) and
 * return HCGA_ERR_INVALID with last_error() set rather than crash. */
typedef hcga_status (*hcga_op_fn)(hcga_backend *be, const hcga_op_args *args);

/* ---------------------------------------------------------------------- */
/* 4. The backend function table                                           */
/* ---------------------------------------------------------------------- */

typedef struct hcga_device_info {
    char name[128];         /* "NVIDIA H100 80GB HBM3", "pthreads x2 + OpenBLAS" */
    char version[128];      /* driver / runtime / library versions */
    uint64_t memory_total;  /* bytes, 0 if unknown */
    uint64_t memory_free;   /* bytes, 0 if unknown */
} hcga_device_info;

typedef struct hcga_backend_iface {
    uint32_t struct_size; /* sizeof(hcga_backend_iface) the plugin was built with */

    /* Probe without creating a backend: number of usable devices, or -1
     * with a reason ("CUDA driver version is insufficient ...") written to
     * why[0..why_len).  Must not crash when the driver/GPU is absent. */
    int (*probe)(char *why, size_t why_len);
    hcga_status (*device_info)(int device, hcga_device_info *info);

    /* Create an instance on one device.  options: NULL or a string of
     * "key=value" pairs separated by ',' (e.g. "threads=2"); unknown keys are
     * an error.  On failure *out is NULL and err holds one line.
     * The key threads=N (N >= 1) is common to all backends and every plugin
     * must accept it: `hcga --threads N`, `hcga conformance --threads N` and
     * libhcga's hcga_context_params.threads pass it to whichever backend is
     * chosen.  A backend that computes on host threads runs its ops on N of
     * them; a device backend (GPU, OpenCL) checks the value and may leave
     * its device's parallelism as it is.  A value that is not an integer
     * >= 1 is an error like any bad option. */
    hcga_status (*create)(int device, const char *options, hcga_backend **out,
                          char *err, size_t err_len);
    void (*destroy)(hcga_backend *be);

    /* The message of the last failed call on this instance (never NULL). */
    const char *(*last_error)(hcga_backend *be);

    /* Buffers: device memory; alignment at least 256 bytes. */
    hcga_status (*buffer_alloc)(hcga_backend *be, uint64_t bytes, hcga_buffer **out);
    void (*buffer_free)(hcga_backend *be, hcga_buffer *buf);
    hcga_status (*buffer_write)(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                const void *src, uint64_t bytes);
    hcga_status (*buffer_read)(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                               void *dst, uint64_t bytes); /* waits for pending work */

    /* Wait until all enqueued work is done. */
    hcga_status (*synchronize)(hcga_backend *be);

    /* Op table: ops[i] for i < num_ops; NULL = unsupported.  supports() may
     * refine per dtype (e.g. no F64 on a device without fp64).  Every op is
     * mandatory but the optional (fused) ones of ABI 1.3. */
    const hcga_op_fn *ops;
    uint32_t num_ops;
    int (*supports)(hcga_backend *be, int op, int dtype);

    /* ---- ABI 1.2: optional capabilities ----------------------------------
     * Each pointer may be NULL (capability not provided).  The frontend
     * reads a member only when struct_size covers it, so a plugin built
     * for 1.1 reads as "none".  A group is all-or-none: provide every
     * function of it or none. */

    /* Collectives on the backend's own buffers (CUDA: NCCL).  One backend
     * instance per process ("rank"), nranks in all; the frontend bootstraps
     * them through its own transport (MPI) and falls back to staging
     * through the host when a backend has none:
     *   rank 0:    comm_id(be, id, &len) writes <= HCGA_COMM_ID_BYTES opaque
     *              bytes (ncclUniqueId);
     *   every rank receives those bytes, then comm_init(be, id, len, rank,
     *              nranks) (collective: returns when all ranks joined).
     * allreduce: in place on t (dense, F32/F64/BF16/F16), every element
     *   becomes the sum (HCGA_COMM_SUM) or the mean (HCGA_COMM_AVG) over the
     *   ranks.  It is ordered after all work enqueued before the call and may
     *   run concurrently with work enqueued after it (NCCL: a second stream
     *   that waits on an event of the compute stream), so a frontend can
     *   start a bucket's reduction while backward continues.
     * broadcast: in place on t, root's values to every rank; ordered like
     *   allreduce.
     * comm_wait: work enqueued after it (ops, buffer_read) waits for every
     *   collective started before it; does not block the host.
     * Every rank must start the same collectives, same sizes, same order.
     * Errors are HCGA_ERR_DEVICE with last_error naming the call and the
     * library's message ("ncclAllReduce: unhandled system error"). */
    hcga_status (*comm_id)(hcga_backend *be, void *id, uint32_t *len);
    hcga_status (*comm_init)(hcga_backend *be, const void *id, uint32_t len, int rank, int nranks);
    hcga_status (*allreduce)(hcga_backend *be, const hcga_tensor *t, int comm_op);
    hcga_status (*broadcast)(hcga_backend *be, const hcga_tensor *t, int root);
    hcga_status (*comm_wait)(hcga_backend *be);

    /* Graph capture (CUDA: CUDA Graphs via stream capture).  Between
     * capture_begin and capture_end, op calls are recorded instead of run
     * (buffer_alloc/read/write/synchronize return HCGA_ERR_INVALID then);
     * capture_end returns the recording; capture_replay enqueues the same
     * work again: same ops, same buffers and offsets, same parameters (a
     * frontend captures only calls whose parameters do not change between
     * replays, and writes inputs with buffer_write before each replay).
     * Replay is ordered like any other call; synchronize waits for it.  A
     * failure inside capture (an op that cannot be captured) is reported by
     * capture_end, which then returns no recording and leaves the backend
     * usable. */
    hcga_status (*capture_begin)(hcga_backend *be);
    hcga_status (*capture_end)(hcga_backend *be, hcga_capture **out);
    hcga_status (*capture_replay)(hcga_backend *be, hcga_capture *rec);
    void (*capture_free)(hcga_backend *be, hcga_capture *rec);
} hcga_backend_iface;

/* comm_op of allreduce (ABI 1.2). */
typedef enum hcga_comm_op { HCGA_COMM_SUM = 0, HCGA_COMM_AVG = 1 } hcga_comm_op;
#define HCGA_COMM_ID_BYTES 256

/* ---------------------------------------------------------------------- */
/* 5. The descriptor (checked before any plugin code runs)                 */
/* ---------------------------------------------------------------------- */

typedef struct hcga_plugin_descriptor {
    uint32_t magic;     /* HCGA_PLUGIN_MAGIC */
    uint32_t abi_major; /* HCGA_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;
    uint32_t sizeof_tensor;        /* sizeof(hcga_tensor) */
    uint32_t sizeof_op_args;       /* sizeof(hcga_op_args) */
    uint32_t sizeof_backend_iface; /* sizeof(hcga_backend_iface) */
    uint32_t num_ops;              /* HCGA_OP_COUNT the plugin was built with */
    const char *name;              /* "cpu", "cuda", "opencl": --backend NAME */
    const char *description;       /* one line */
    const char *version;           /* plugin version string */
    const hcga_backend_iface *(*get_iface)(void);
} hcga_plugin_descriptor;

#define HCGA_PLUGIN_MAGIC 0x48434741u /* "HCGA" */

/* Convenience for plugins: fills every field but name/description/version/get_iface. */
#define HCGA_PLUGIN_DESCRIPTOR_INIT(name_, desc_, version_, get_iface_)          \
    {                                                                            \
        HCGA_PLUGIN_MAGIC, HCGA_ABI_MAJOR, HCGA_ABI_MINOR,                       \
        (uint32_t)sizeof(hcga_tensor), (uint32_t)sizeof(hcga_op_args),           \
        (uint32_t)sizeof(hcga_backend_iface), (uint32_t)HCGA_OP_COUNT,           \
        (name_), (desc_), (version_), (get_iface_)                               \
    }

/* The hcga_op_params member an op reads (column `params` of hcga_ops.def). */
typedef enum hcga_param_group {
    HCGA_PG_NONE = 0, HCGA_PG_CONV, HCGA_PG_BN, HCGA_PG_RESIZE, HCGA_PG_GEMM,
    HCGA_PG_LOSS, HCGA_PG_SHIFT, HCGA_PG_OPTIM, HCGA_PG_SCALAR, HCGA_PG_REDUCE,
    HCGA_PG_CONV_BN /* ABI 1.3 */
} hcga_param_group;

/* Conformance tolerance classes (column `tol`; the numbers are in
 * conformance/README.md): a few roundings per element, short sums and
 * transcendental functions, long dot products and batch reductions. */
typedef enum hcga_tol_class { HCGA_TOL_ELEM = 0, HCGA_TOL_SUM, HCGA_TOL_DOT } hcga_tol_class;

/* One row of the op catalogue as data (see hcga_ops.def for each column). */
typedef struct hcga_op_info {
    const char *name;        /* "conv2d_bwd_filter" */
    int8_t in_min, in_max;   /* allowed num_in */
    int8_t out_min, out_max; /* allowed num_out */
    int8_t params;           /* hcga_param_group */
    int8_t tol;              /* hcga_tol_class */
    uint8_t diff_in;         /* bit s: in[s] receives a gradient under autodiff */
    uint8_t diff_out;        /* bit s: out[s] carries a gradient */
    uint8_t index_in;        /* bit s: in[s] is an index (i64) tensor */
    uint8_t index_out;       /* bit s: out[s] is an index (i64) tensor */
    uint8_t bwd;             /* 1: backward passes use the op */
    uint8_t half;            /* 1: accepts BF16/F16 operands (ABI 1.1) */
    uint8_t optional;        /* 1: a backend may leave the op NULL (ABI 1.3, HCGA_OPT_OP rows) */
    uint8_t inout;           /* bit s: out[s] is read as well as written ("in/out" in section 3) */
} hcga_op_info;

/* The catalogue row of op, or NULL for an op this header does not know. */
static inline const hcga_op_info *hcga_op_get_info(int op)
{
    static const hcga_op_info table[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, name_, imin_, imax_, omin_, omax_, pg_, din_, dout_, iin_, iout_, tol_, bwd_, \
                half_, inout_)                                                                   \
    {name_, imin_, imax_, omin_, omax_, HCGA_PG_##pg_, HCGA_TOL_##tol_, din_, dout_, iin_, iout_,    \
     bwd_, half_, 0, inout_},
#define HCGA_OPT_OP(id_, name_, imin_, imax_, omin_, omax_, pg_, din_, dout_, iin_, iout_, tol_,     \
                    bwd_, half_, inout_)                                                         \
    {name_, imin_, imax_, omin_, omax_, HCGA_PG_##pg_, HCGA_TOL_##tol_, din_, dout_, iin_, iout_,    \
     bwd_, half_, 1, inout_},
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
    };
    return (op >= 0 && op < HCGA_OP_COUNT) ? &table[op] : (const hcga_op_info *)0;
}

/* Names of ops and dtypes for messages ("conv2d_bwd_filter", "f32"). */
static inline const char *hcga_op_name(int op)
{
    const hcga_op_info *info = hcga_op_get_info(op);
    return info ? info->name : "unknown_op";
}

static inline const char *hcga_dtype_name(int dt)
{
    static const char *const names[HCGA_DTYPE_COUNT] = {"f32", "f64", "i32", "i64", "u8",
                                                        "bf16", "f16"};
    return (dt >= 0 && dt < HCGA_DTYPE_COUNT) ? names[dt] : "unknown_dtype";
}

static inline size_t hcga_dtype_size(int dt)
{
    switch (dt) {
    case HCGA_F32: return 4;
    case HCGA_F64: return 8;
    case HCGA_I32: return 4;
    case HCGA_I64: return 8;
    case HCGA_U8: return 1;
    case HCGA_BF16: return 2;
    case HCGA_F16: return 2;
    default: return 0;
    }
}

/* 1 for the floating dtypes (F32, F64, BF16, F16). */
static inline int hcga_dtype_is_float(int dt)
{
    return dt == HCGA_F32 || dt == HCGA_F64 || dt == HCGA_BF16 || dt == HCGA_F16;
}

/* 1 for the 16-bit storage formats (BF16, F16). */
static inline int hcga_dtype_is_half(int dt) { return dt == HCGA_BF16 || dt == HCGA_F16; }

static inline int64_t hcga_tensor_numel(const hcga_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

#ifdef __cplusplus
}
#endif
#endif /* HCGA_PLUGIN_H */
