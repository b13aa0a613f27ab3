/* bn.cl - batch normalisation over dim 1 of x[N,C,HW].  Statistics kernels
 * run one work-group per channel.  Typed: T, FN(). */

/* Per-item partial sum over channel c of f(x, dy) where f is chosen by
 * mode: 0: x ; 1: (x-m)^2 ; 2: dy ; 3: dy*(x-m).  Items stride over the
 * channel's N*HW elements; the stride pattern depends on the shape only. */
DEVFN T FN(bn_lane_sum)(const GLOBAL T *x, const GLOBAL T *dy, hk_idx nb, hk_idx cc, hk_idx hw,
                        hk_idx c, int mode, T m)
{
    int lid = get_local_id(0);
    T acc = (T)0;
    if (hw >= RLWS) {
        for (hk_idx n = 0; n < nb; n++) {
            hk_idx base = (n * cc + c) * hw;
            for (hk_idx j = lid; j < hw; j += RLWS) {
                hk_idx a = base + j;
                T v = mode == 0 ? x[a]
                    : mode == 1 ? (x[a] - m) * (x[a] - m)
                    : mode == 2 ? dy[a] : dy[a] * (x[a] - m);
                acc += v;
            }
        }
    } else {
        hk_idx tot = nb * hw;
        for (hk_idx e = lid; e < tot; e += RLWS) {
            hk_idx a = ((e / hw) * cc + c) * hw + e % hw;
            T v = mode == 0 ? x[a]
                : mode == 1 ? (x[a] - m) * (x[a] - m)
                : mode == 2 ? dy[a] : dy[a] * (x[a] - m);
            acc += v;
        }
    }
    return acc;
}

/* BN_FWD_TRAIN statistics: save_mean, save_invstd, running stats. */
RLWS_ATTR __kernel void FN(bn_stats)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc,
                                     hk_idx hw, GLOBAL T *smean, hk_idx smo, GLOBAL T *sinv,
                                     hk_idx sio, GLOBAL T *rmean, hk_idx rmo, GLOBAL T *rvar,
                                     hk_idx rvo, T eps, T momentum)
{
    __local T buf[RLWS];
    hk_idx c = get_group_id(0);
    hk_idx m = nb * hw;
    T sum = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 0, (T)0));
    T mean = sum / (T)m;
    T ss = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 1, mean));
    T var = ss / (T)m;
    if (get_local_id(0) == 0) {
        smean[smo + c] = mean;
        sinv[sio + c] = (T)1 / sqrt(var + eps);
        T unbiased = m > 1 ? var * (T)m / (T)(m - 1) : var;
        rmean[rmo + c] = ((T)1 - momentum) * rmean[rmo + c] + momentum * mean;
        rvar[rvo + c] = ((T)1 - momentum) * rvar[rvo + c] + momentum * unbiased;
    }
}

/* y = (x - mean) * invstd * gamma + beta */
__kernel void FN(bn_apply)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n,
                           hk_idx cc, hk_idx hw, const GLOBAL T *gamma, hk_idx go,
                           const GLOBAL T *beta, hk_idx bo, const GLOBAL T *mean, hk_idx mo,
                           const GLOBAL T *invstd, hk_idx io)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx c = (i / hw) % cc;
    y[yo + i] = (x[xo + i] - mean[mo + c]) * invstd[io + c] * gamma[go + c] + beta[bo + c];
}

/* BN_FWD_INFER: y = gamma*(x-rm)/sqrt(rv+eps) + beta */
__kernel void FN(bn_infer)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n,
                           hk_idx cc, hk_idx hw, const GLOBAL T *gamma, hk_idx go,
                           const GLOBAL T *beta, hk_idx bo, const GLOBAL T *rm, hk_idx rmo,
                           const GLOBAL T *rv, hk_idx rvo, T eps)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx c = (i / hw) % cc;
    y[yo + i] = gamma[go + c] * (x[xo + i] - rm[rmo + c]) / sqrt(rv[rvo + c] + eps) + beta[bo + c];
}

/* BN_BWD statistics: dbeta = sum dy, dgamma = invstd * sum dy*(x-mean). */
RLWS_ATTR __kernel void FN(bn_bwd_stats)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy,
                                         hk_idx dyo, hk_idx nb, hk_idx cc, hk_idx hw,
                                         const GLOBAL T *mean, hk_idx mo,
                                         const GLOBAL T *invstd, hk_idx io, GLOBAL T *dgamma,
                                         hk_idx dgo, GLOBAL T *dbeta, hk_idx dbo)
{
    __local T buf[RLWS];
    hk_idx c = get_group_id(0);
    T mu = mean[mo + c];
    T sdy = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, dy + dyo, nb, cc, hw, c, 2, mu));
    T sdyx = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, dy + dyo, nb, cc, hw, c, 3, mu));
    if (get_local_id(0) == 0) {
        dgamma[dgo + c] = sdyx * invstd[io + c];
        dbeta[dbo + c] = sdy;
    }
}

/* dx = gamma*invstd*(dy - dbeta/M - (x-mean)*invstd*dgamma/M) */
__kernel void FN(bn_bwd_dx)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy, hk_idx dyo,
                            GLOBAL T *dx, hk_idx dxo, hk_idx n, hk_idx cc, hk_idx hw,
                            const GLOBAL T *gamma, hk_idx go, const GLOBAL T *mean, hk_idx mo,
                            const GLOBAL T *invstd, hk_idx io, const GLOBAL T *dgamma,
                            hk_idx dgo, const GLOBAL T *dbeta, hk_idx dbo, T inv_m)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx c = (i / hw) % cc;
    T is = invstd[io + c];
    T xhat = (x[xo + i] - mean[mo + c]) * is;
    dx[dxo + i] = gamma[go + c] * is *
                  (dy[dyo + i] - dbeta[dbo + c] * inv_m - xhat * dgamma[dgo + c] * inv_m);
}
