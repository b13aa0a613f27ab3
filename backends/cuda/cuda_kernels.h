/*
 * cuda_kernels.h - the C interface of the CUDA backend's own kernels.
 *
 * The kernels live in the k_*.cu files (compiled by nvcc into a libtool
 * convenience library); the host side (cuda_*.c, compiled by the C compiler)
 * validates the hcga_op_args and calls these launchers.  Every launcher
 * enqueues its work on `s` and returns the launch status
 * (cudaGetLastError() after the launches, cudaSuccess when there was nothing
 * to do).  Nothing here synchronises.
 *
 * dtype arguments are hcga_dtype values (HCGA_F32 = 0, HCGA_F64 = 1 for the
 * floating-point kernels).  All tensors are dense and C-contiguous unless a
 * launcher takes strides.  Element counts and indices are int64_t.
 *
 * Determinism: no kernel uses floating-point atomics.  Every reduction has a
 * fixed assignment of elements to threads and a fixed combination order that
 * depend only on the shapes, so the same inputs give the same bits.
 *
 * Device-side input errors (a label outside its range, an index out of
 * bounds) cannot be returned synchronously.  Such kernels take `flag` (a
 * device int) and `code`: the first failing thread stores code there with an
 * integer compare-and-swap; the host reads the flag at the next
 * synchronisation point and reports the op.
 */
#ifndef HCGA_CUDA_KERNELS_H
#define HCGA_CUDA_KERNELS_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUK_MAXD 5

/* Scratch space (bytes) the reduction launchers need at least. */
#define CUK_MAX_PARTIALS 1024
#define CUK_REDUCE_SCRATCH (CUK_MAX_PARTIALS * 16 + 256)

/* A strided n-d view for broadcasting and copies: the iteration runs over
 * `shape` in C order; sa/sb/sy are element strides (0 on broadcast dims). */
typedef struct cuk_view {
    int nd;
    int64_t shape[CUK_MAXD];
    int64_t sa[CUK_MAXD];
    int64_t sb[CUK_MAXD];
    int64_t sy[CUK_MAXD];
} cuk_view;

/* A reduction plan for SUM_TO: output element j enumerates the kept dims
 * (C order, the output is dense), r enumerates the reduced dims; both give
 * element offsets into x through their strides. */
typedef struct cuk_red {
    int nk;
    int64_t kshape[CUK_MAXD], kstride[CUK_MAXD];
    int nr;
    int64_t rshape[CUK_MAXD], rstride[CUK_MAXD];
    int64_t ny;   /* product of kshape */
    int64_t nred; /* product of rshape */
} cuk_red;

/* ---- elementwise ---------------------------------------------------- */

enum cuk_pointwise_kind {
    CUK_PW_RELU_FWD = 0,  /* y = max(a, 0) (NaN propagates) */
    CUK_PW_RELU_BWD,      /* y = a > 0 ? b : 0          (a = y, b = dy) */
    CUK_PW_SIGMOID_FWD,   /* y = 1 / (1 + exp(-a)) */
    CUK_PW_SIGMOID_BWD,   /* y = b * a * (1 - a)        (a = y, b = dy) */
    CUK_PW_THRESH_FWD,    /* y = a < p ? 0 : a */
    CUK_PW_THRESH_BWD,    /* y = a < p ? 0 : b          (a = x, b = dy) */
    CUK_PW_SCALE          /* y = p * a */
};
cudaError_t cuk_pointwise(cudaStream_t s, int dt, int kind, int64_t n, const void *a,
                         const void *b, void *y, double p);

/* ADD (is_mul = 0): y = alpha*a + beta*b;  MUL: y = alpha*a*b.
 * v == NULL: a, b, y are dense with n elements each (no broadcasting). */
cudaError_t cuk_binary(cudaStream_t s, int dt, int is_mul, const cuk_view *v, int64_t n,
                      const void *a, const void *b, void *y, double alpha, double beta);

/* y[view sy] = x[view sa] with conversion between F32/F64; same-dtype copies
 * of any dtype go by element size (esize 1, 4 or 8). */
cudaError_t cuk_copy(cudaStream_t s, int dt_in, int dt_out, const cuk_view *v, int64_t n,
                    const void *x, void *y);

/* y[0..n) = v for F32, F64, I32, I64, U8 (integers: v already truncated). */
cudaError_t cuk_fill(cudaStream_t s, int dt, int64_t n, void *y, double v);

/* ---- 16-bit storage formats (k_half.cu; dt 5 = BF16, 6 = F16) ---------- */

/* CAST: y[0..n) = x rounded to dt_out (hcga_plugin.h "Mixed precision"),
 * any pair of distinct floating dtypes (F32, F64, BF16, F16). */
cudaError_t cuk_cast(cudaStream_t s, int dt_in, int dt_out, int64_t n, const void *x, void *y);
/* Half convolutions: y[N,K,PQ] += bias[K] and db[K] = sum of dy over N, PQ,
 * both in float, rounded once to dt (BF16 or F16). */
cudaError_t cuk_half_bias_add(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t PQ, void *y,
                              const void *bias);
cudaError_t cuk_half_bias_grad(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t PQ,
                               const void *dy, void *db);
/* y[0..n) = a * x in float, rounded to dt (BF16 or F16); y may equal x. */
cudaError_t cuk_half_scale(cudaStream_t s, int dt, int64_t n, const void *x, void *y, double a);

/* ---- reductions ----------------------------------------------------- */

cudaError_t cuk_sum_to(cudaStream_t s, int dt, const cuk_red *r, const void *x, void *y);

enum cuk_reduce_kind { CUK_RED_SUM = 0, CUK_RED_MEAN = 1, CUK_RED_ABS_MEAN = 2 };
/* y[0] = reduction of x[0..n); scratch: CUK_REDUCE_SCRATCH bytes. */
cudaError_t cuk_reduce_all(cudaStream_t s, int dt, int kind, int64_t n, const void *x, void *y,
                          void *scratch);
/* dx = dy[0] * (1 | 1/n | sign(x)/n) */
cudaError_t cuk_reduce_bwd(cudaStream_t s, int dt, int kind, int64_t n, const void *x,
                          const void *dy, void *dx);

/* ---- channel ops ([outer, C, inner] views of dim 1) -------------------- */

cudaError_t cuk_softmax_fwd(cudaStream_t s, int dt, int64_t outer, int64_t C, int64_t inner,
                           const void *x, void *y);
cudaError_t cuk_softmax_bwd(cudaStream_t s, int dt, int64_t outer, int64_t C, int64_t inner,
                           const void *y, const void *dy, void *dx);
cudaError_t cuk_argmax(cudaStream_t s, int dt, int64_t outer, int64_t C, int64_t inner,
                      const void *x, int64_t *idx);

/* CONCAT (split = 0): y[o, off_p + c, i] = part_p[o, c, i];
 * SPLIT (split = 1): part_p[o, c, i] = y[o, off_p + c, i].
 * Channels of part p: cpart[p]; their sum is C.  esize: 1, 4 or 8. */
typedef struct cuk_parts {
    int n;
    void *ptr[8];
    int64_t c[8];
} cuk_parts;
cudaError_t cuk_concat(cudaStream_t s, int esize, int split, const cuk_parts *parts, int64_t outer,
                      int64_t C, int64_t inner, void *y);

/* ---- spatial ([NC, H, W] planes) -------------------------------------- */

/* x[NC,H,W] -> y[NC,H*f,W*f] and its backward (dx[NC,H,W] from dy). */
cudaError_t cuk_upsample_fwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W, int f,
                            const void *x, void *y);
cudaError_t cuk_upsample_bwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W, int f,
                            const void *dy, void *dx);
/* x[NC,H,W] -> y[NC,OH,OW]; the backward gathers (no atomics). */
cudaError_t cuk_bilinear_fwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W, int64_t OH,
                            int64_t OW, int align_corners, const void *x, void *y);
cudaError_t cuk_bilinear_bwd(cudaStream_t s, int dt, int64_t nc, int64_t H, int64_t W, int64_t OH,
                            int64_t OW, int align_corners, const void *dy, void *dx);
cudaError_t cuk_gap_fwd(cudaStream_t s, int dt, int64_t nc, int64_t hw, const void *x, void *y);
cudaError_t cuk_gap_bwd(cudaStream_t s, int dt, int64_t nc, int64_t hw, const void *dy, void *dx);

/* ---- losses (scalars stay on the device) ------------------------------ */

/* Scratch bytes for each loss launcher. */
int64_t cuk_ce_ls_scratch(int dt, int64_t N);
int64_t cuk_pixel_ce_scratch(void);
int64_t cuk_triplet_scratch(int dt, int64_t N);
int64_t cuk_shift_l1_scratch(void);

cudaError_t cuk_ce_ls_fwd(cudaStream_t s, int dt, int64_t N, int64_t C, const void *logits,
                         const int64_t *labels, double eps, void *loss, void *scratch, int *flag,
                         int code);
cudaError_t cuk_ce_ls_bwd(cudaStream_t s, int dt, int64_t N, int64_t C, const void *logits,
                         const int64_t *labels, const void *dloss, double eps, void *dlogits,
                         int *flag, int code);
cudaError_t cuk_pixel_ce_fwd(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t hw,
                            const void *logits, const int64_t *labels, int64_t ignore, void *loss,
                            void *scratch, int *flag, int code);
cudaError_t cuk_pixel_ce_bwd(cudaStream_t s, int dt, int64_t N, int64_t K, int64_t hw,
                            const void *logits, const int64_t *labels, int64_t ignore,
                            const void *dloss, void *dlogits, void *scratch, int *flag, int code);
cudaError_t cuk_triplet_fwd(cudaStream_t s, int dt, int64_t N, int64_t D, const void *x,
                           const int64_t *labels, double margin, void *loss, int64_t *hard,
                           void *scratch);
cudaError_t cuk_triplet_bwd(cudaStream_t s, int dt, int64_t N, int64_t D, const void *x,
                           const int64_t *hard, const void *dloss, double margin, void *dx,
                           void *scratch, int *flag, int code);
cudaError_t cuk_shift_l1_fwd(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t H, int64_t W,
                            int dn, int dh, int dw, const void *x, void *loss, void *scratch);
cudaError_t cuk_shift_l1_bwd(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t H, int64_t W,
                            int dn, int dh, int dw, const void *x, const void *dloss, void *dx);

/* ---- batch norm from summed statistics (k_bnstats.cu; ABI 1.2) -------- */

/* x[N,C,HW]: sum[c] = sum of x, sumsq[c] = sum of x*x (accumulated in double). */
cudaError_t cuk_bn_sums(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW, const void *x,
                        void *sum, void *sumsq);
/* Per channel from the sums over count values: save_mean = sum/count,
 * var = max(sumsq/count - mean^2, 0), save_invstd = 1/sqrt(var+eps); running
 * statistics updated in place with momentum (running_var with the unbiased
 * var*count/(count-1)). */
cudaError_t cuk_bn_from_sums(cudaStream_t s, int dt, int64_t C, int64_t count, const void *sum,
                             const void *sumsq, double eps, double momentum, void *smean,
                             void *sinv, void *rmean, void *rvar);
/* y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c] over x[N,C,HW]. */
cudaError_t cuk_bn_apply(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW, const void *x,
                         const void *gamma, const void *beta, const void *mean,
                         const void *invstd, void *y);
/* dx = gamma*invstd*(dy - sum_dy/count - xhat*sum_dy_xhat/count),
 * xhat = (x - mean)*invstd, over x[N,C,HW]. */
cudaError_t cuk_bn_bwd_dx(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW, int64_t count,
                          const void *x, const void *dy, const void *gamma, const void *mean,
                          const void *invstd, const void *sum_dy, const void *sum_dy_xhat,
                          void *dx);

/* ---- optimizers ------------------------------------------------------- */

/* step_size = lr / (1 - b1^t), sqrt_bc2 = sqrt(1 - b2^t), computed by the host. */
cudaError_t cuk_adam(cudaStream_t s, int dt, int64_t n, const void *grad, void *param, void *m,
                    void *v, double step_size, double b1, double b2, double eps, double wd,
                    double sqrt_bc2);
cudaError_t cuk_sgd(cudaStream_t s, int dt, int64_t n, const void *grad, void *param, void *buf,
                   double lr, double momentum, double wd, int first);

#ifdef __cplusplus
}
#endif
#endif
