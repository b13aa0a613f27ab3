/*
 * k_bnstats.cu - batch normalisation from statistics summed elsewhere (ABI
 * 1.2: BN_STATS, BN_FWD_FROM_STATS, BN_BWD_FROM_STATS), the pieces of
 * synchronised batch norm.  cuDNN's batch norm (cuda_dnn.c) computes its own
 * statistics, so these ops run on our kernels:
 *   cuk_bn_sums        one block per channel: sum and sum of squares of x,
 *                      accumulated in double for f32 and f64 alike;
 *   cuk_bn_from_sums   one thread per channel: mean, variance, save_invstd
 *                      and the running statistics from the summed sums;
 *   cuk_bn_apply       y = (x - mean) * invstd * gamma + beta;
 *   cuk_bn_bwd_dx      dx = gamma*invstd/M * (M*dy - sum_dy - xhat*sum_dy_xhat).
 *
 * Determinism: each channel's sums come from one block with a fixed
 * element-to-thread assignment and fixed shuffle trees (kcommon.cuh); no
 * atomics.
 */
#include "kcommon.cuh"

/* ---- BN_STATS ------------------------------------------------------------ */

template <typename T>
__global__ void k_bn_sums(int64_t N, int64_t C, int64_t HW, const T *x, T *sum, T *sumsq)
{
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        double s = 0.0, sq = 0.0;
        const int64_t m = N * HW;
        for (int64_t e = threadIdx.x; e < m; e += blockDim.x) {
            const double v = (double)x[((e / HW) * C + c) * HW + e % HW];
            s += v;
            sq += v * v;
        }
        s = block_sum(s);
        sq = block_sum(sq);
        if (threadIdx.x == 0) {
            sum[c] = (T)s;
            sumsq[c] = (T)sq;
        }
    }
}

extern "C" cudaError_t cuk_bn_sums(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW,
                                   const void *x, void *sum, void *sumsq)
{
    if (C <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(C, 1);
    if (dt == CUK_F64)
        k_bn_sums<double><<<g, CUK_BLOCK, 0, s>>>(N, C, HW, (const double *)x, (double *)sum,
                                                   (double *)sumsq);
    else
        k_bn_sums<float><<<g, CUK_BLOCK, 0, s>>>(N, C, HW, (const float *)x, (float *)sum,
                                                  (float *)sumsq);
    return cuk_status();
}

/* ---- BN_FWD_FROM_STATS ------------------------------------------------------ */

template <typename T>
__global__ void k_bn_from_sums(int64_t C, int64_t count, const T *sum, const T *sumsq, double eps,
                               double momentum, T *smean, T *sinv, T *rmean, T *rvar)
{
    CUK_FOR(c, C)
    {
        const double m = (double)count;
        const double mean = (double)sum[c] / m;
        double var = (double)sumsq[c] / m - mean * mean;
        if (var < 0.0) var = 0.0;
        smean[c] = (T)mean;
        sinv[c] = (T)(1.0 / sqrt(var + eps));
        const double unbiased = var * m / (m - 1.0);
        rmean[c] = (T)((1.0 - momentum) * (double)rmean[c] + momentum * mean);
        rvar[c] = (T)((1.0 - momentum) * (double)rvar[c] + momentum * unbiased);
    }
}

extern "C" cudaError_t cuk_bn_from_sums(cudaStream_t s, int dt, int64_t C, int64_t count,
                                        const void *sum, const void *sumsq, double eps,
                                        double momentum, void *smean, void *sinv, void *rmean,
                                        void *rvar)
{
    if (C <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(C, CUK_BLOCK);
    if (dt == CUK_F64)
        k_bn_from_sums<double><<<g, CUK_BLOCK, 0, s>>>(C, count, (const double *)sum,
                                                        (const double *)sumsq, eps, momentum,
                                                        (double *)smean, (double *)sinv,
                                                        (double *)rmean, (double *)rvar);
    else
        k_bn_from_sums<float><<<g, CUK_BLOCK, 0, s>>>(C, count, (const float *)sum,
                                                       (const float *)sumsq, eps, momentum,
                                                       (float *)smean, (float *)sinv,
                                                       (float *)rmean, (float *)rvar);
    return cuk_status();
}

template <typename T>
__global__ void k_bn_apply(int64_t n, int64_t C, int64_t HW, const T *x, const T *gamma,
                           const T *beta, const T *mean, const T *invstd, T *y)
{
    CUK_FOR(i, n)
    {
        const int64_t c = (i / HW) % C;
        y[i] = (T)(((double)x[i] - (double)mean[c]) * (double)invstd[c] * (double)gamma[c] +
                   (double)beta[c]);
    }
}

extern "C" cudaError_t cuk_bn_apply(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW,
                                    const void *x, const void *gamma, const void *beta,
                                    const void *mean, const void *invstd, void *y)
{
    const int64_t n = N * C * HW;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_bn_apply<double><<<g, CUK_BLOCK, 0, s>>>(n, C, HW, (const double *)x,
                                                    (const double *)gamma, (const double *)beta,
                                                    (const double *)mean,
                                                    (const double *)invstd, (double *)y);
    else
        k_bn_apply<float><<<g, CUK_BLOCK, 0, s>>>(n, C, HW, (const float *)x,
                                                   (const float *)gamma, (const float *)beta,
                                                   (const float *)mean, (const float *)invstd,
                                                   (float *)y);
    return cuk_status();
}

/* ---- BN_BWD_FROM_STATS --------------------------------------------------------- */

template <typename T>
__global__ void k_bn_bwd_dx(int64_t n, int64_t C, int64_t HW, int64_t count, const T *x,
                            const T *dy, const T *gamma, const T *mean, const T *invstd,
                            const T *sum_dy, const T *sum_dy_xhat, T *dx)
{
    const double m = (double)count;
    CUK_FOR(i, n)
    {
        const int64_t c = (i / HW) % C;
        const double is = (double)invstd[c];
        const double xhat = ((double)x[i] - (double)mean[c]) * is;
        const double k = (double)gamma[c] * is / m;
        dx[i] = (T)(k * (m * (double)dy[i] - (double)sum_dy[c] - xhat * (double)sum_dy_xhat[c]));
    }
}

extern "C" cudaError_t cuk_bn_bwd_dx(cudaStream_t s, int dt, int64_t N, int64_t C, int64_t HW,
                                     int64_t count, const void *x, const void *dy,
                                     const void *gamma, const void *mean, const void *invstd,
                                     const void *sum_dy, const void *sum_dy_xhat, void *dx)
{
    const int64_t n = N * C * HW;
    if (n <= 0) return cudaSuccess;
    const unsigned g = cuk_grid(n, CUK_BLOCK);
    if (dt == CUK_F64)
        k_bn_bwd_dx<double><<<g, CUK_BLOCK, 0, s>>>(
            n, C, HW, count, (const double *)x, (const double *)dy, (const double *)gamma,
            (const double *)mean, (const double *)invstd, (const double *)sum_dy,
            (const double *)sum_dy_xhat, (double *)dx);
    else
        k_bn_bwd_dx<float><<<g, CUK_BLOCK, 0, s>>>(
            n, C, HW, count, (const float *)x, (const float *)dy, (const float *)gamma,
            (const float *)mean, (const float *)invstd, (const float *)sum_dy,
            (const float *)sum_dy_xhat, (float *)dx);
    return cuk_status();
}
