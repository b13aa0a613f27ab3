/* bn.cl - batch normalisation over dim 1 of x[N,C,HW].  Statistics kernels
 * run one work-group per channel (or, for few values per channel, one
 * work-item per channel).  Also the ABI 1.2 kernels of batch norm from
 * statistics summed elsewhere: bn_sums (BN_STATS) and bn_from_sums
 * (BN_FWD_FROM_STATS's statistics; y is bn_apply, BN_BWD_FROM_STATS's dx is
 * bn_bwd_dx).  Typed: T, FN(). */

/* Per-item partial sum over channel c of f(x, dy) where f is chosen by
 * mode: 0: x ; 1: (x-m)^2 ; 2: dy ; 3: dy*(x-m) ; 4: x*x.  Items stride over the
 * channel's N*HW elements; the stride pattern depends on the shape only. */
DEVFN HK_ACC FN(bn_lane_sum)(const GLOBAL T *x, const GLOBAL T *dy, hk_idx nb, hk_idx cc,
                             hk_idx hw, hk_idx c, int mode, HK_ACC m)
{
    int lid = get_local_id(0);
    HK_ACC acc = (HK_ACC)0;
    if (hw >= RLWS) {
        for (hk_idx n = 0; n < nb; n++) {
            hk_idx base = (n * cc + c) * hw;
            for (hk_idx j = lid; j < hw; j += RLWS) {
                hk_idx a = base + j;
                HK_ACC xv = (HK_ACC)x[a], d = xv - m;
                acc += mode == 0 ? xv : mode == 1 ? d * d : mode == 2 ? (HK_ACC)dy[a] : mode == 3 ? (HK_ACC)dy[a] * d : xv * xv;
            }
        }
    } else {
        hk_idx tot = nb * hw;
        for (hk_idx e = lid; e < tot; e += RLWS) {
            hk_idx a = ((e / hw) * cc + c) * hw + e % hw;
            HK_ACC xv = (HK_ACC)x[a], d = xv - m;
            acc += mode == 0 ? xv : mode == 1 ? d * d : mode == 2 ? (HK_ACC)dy[a] : mode == 3 ? (HK_ACC)dy[a] * d : xv * xv;
        }
    }
    return acc;
}

/* BN_FWD_TRAIN statistics: save_mean, save_invstd, running stats. */
RLWS_ATTR __kernel void FN(bn_stats)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc,
                                     hk_idx hw, GLOBAL T *smean, hk_idx smo, GLOBAL T *sinv,
                                     hk_idx sio, GLOBAL T *rmean, hk_idx rmo, GLOBAL T *rvar,
                                     hk_idx rvo, HK_ACC eps, HK_ACC momentum)
{
    __local HK_ACC buf[RLWS];
    hk_idx c = get_group_id(0);
    hk_idx m = nb * hw;
    HK_ACC sum = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 0, (HK_ACC)0));
    HK_ACC mean = sum / (HK_ACC)m;
    HK_ACC ss = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 1, mean));
    HK_ACC var = ss / (HK_ACC)m, mom = (HK_ACC)momentum;
    if (get_local_id(0) == 0) {
        smean[smo + c] = (T)mean;
        sinv[sio + c] = (T)((HK_ACC)1 / sqrt(var + (HK_ACC)eps));
        HK_ACC unbiased = m > 1 ? var * (HK_ACC)m / (HK_ACC)(m - 1) : var;
        rmean[rmo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rmean[rmo + c] + mom * mean);
        rvar[rvo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rvar[rvo + c] + mom * unbiased);
    }
}

/* Statistics with one work-item per channel, for channels with few
 * values (N*HW small), where a work-group per channel costs more than the
 * sums.  Same formulas as bn_stats, sequential sums. */
__kernel void FN(bn_stats_item)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc, hk_idx hw,
                                GLOBAL T *smean, hk_idx smo, GLOBAL T *sinv, hk_idx sio,
                                GLOBAL T *rmean, hk_idx rmo, GLOBAL T *rvar, hk_idx rvo,
                                HK_ACC eps, HK_ACC momentum)
{
    hk_idx c = get_global_id(0);
    if (c >= cc) return;
    hk_idx m = nb * hw;
    HK_ACC sum = (HK_ACC)0, ss = (HK_ACC)0;
    for (hk_idx n = 0; n < nb; n++)
        for (hk_idx j = 0; j < hw; j++) sum += (HK_ACC)x[xo + (n * cc + c) * hw + j];
    HK_ACC mean = sum / (HK_ACC)m;
    for (hk_idx n = 0; n < nb; n++)
        for (hk_idx j = 0; j < hw; j++) {
            HK_ACC d = (HK_ACC)x[xo + (n * cc + c) * hw + j] - mean;
            ss += d * d;
        }
    HK_ACC var = ss / (HK_ACC)m, mom = momentum;
    smean[smo + c] = (T)mean;
    sinv[sio + c] = (T)((HK_ACC)1 / sqrt(var + eps));
    HK_ACC unbiased = m > 1 ? var * (HK_ACC)m / (HK_ACC)(m - 1) : var;
    rmean[rmo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rmean[rmo + c] + mom * mean);
    rvar[rvo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rvar[rvo + c] + mom * unbiased);
}

__kernel void FN(bn_bwd_stats_item)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy,
                                    hk_idx dyo, hk_idx nb, hk_idx cc, hk_idx hw,
                                    const GLOBAL T *mean, hk_idx mo, const GLOBAL T *invstd,
                                    hk_idx io, GLOBAL T *dgamma, hk_idx dgo, GLOBAL T *dbeta,
                                    hk_idx dbo)
{
    hk_idx c = get_global_id(0);
    if (c >= cc) return;
    HK_ACC mu = (HK_ACC)mean[mo + c], sdy = (HK_ACC)0, sdyx = (HK_ACC)0;
    for (hk_idx n = 0; n < nb; n++)
        for (hk_idx j = 0; j < hw; j++) {
            hk_idx a = (n * cc + c) * hw + j;
            HK_ACC g = (HK_ACC)dy[dyo + a];
            sdy += g;
            sdyx += g * ((HK_ACC)x[xo + a] - mu);
        }
    dgamma[dgo + c] = (T)(sdyx * (HK_ACC)invstd[io + c]);
    dbeta[dbo + c] = (T)sdy;
}

/* y = (x - mean) * invstd * gamma + beta; NDRange (HW, C, N) */
__kernel void FN(bn_apply)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx cc,
                           hk_idx hw, const GLOBAL T *gamma, hk_idx go, const GLOBAL T *beta,
                           hk_idx bo, const GLOBAL T *mean, hk_idx mo, const GLOBAL T *invstd,
                           hk_idx io)
{
    hk_idx c = get_global_id(1);
    hk_idx i = (get_global_id(2) * cc + c) * hw + get_global_id(0);
    y[yo + i] = (T)(((HK_ACC)x[xo + i] - (HK_ACC)mean[mo + c]) * (HK_ACC)invstd[io + c] *
                        (HK_ACC)gamma[go + c] +
                    (HK_ACC)beta[bo + c]);
}

/* BN_FWD_INFER: y = gamma*(x-rm)/sqrt(rv+eps) + beta; NDRange (HW, C, N) */
__kernel void FN(bn_infer)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx cc,
                           hk_idx hw, const GLOBAL T *gamma, hk_idx go, const GLOBAL T *beta,
                           hk_idx bo, const GLOBAL T *rm, hk_idx rmo, const GLOBAL T *rv,
                           hk_idx rvo, HK_ACC eps)
{
    hk_idx c = get_global_id(1);
    hk_idx i = (get_global_id(2) * cc + c) * hw + get_global_id(0);
    y[yo + i] = (T)((HK_ACC)gamma[go + c] * ((HK_ACC)x[xo + i] - (HK_ACC)rm[rmo + c]) /
                        sqrt((HK_ACC)rv[rvo + c] + (HK_ACC)eps) +
                    (HK_ACC)beta[bo + c]);
}

/* BN_BWD statistics: dbeta = sum dy, dgamma = invstd * sum dy*(x-mean). */
RLWS_ATTR __kernel void FN(bn_bwd_stats)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy,
                                         hk_idx dyo, hk_idx nb, hk_idx cc, hk_idx hw,
                                         const GLOBAL T *mean, hk_idx mo,
                                         const GLOBAL T *invstd, hk_idx io, GLOBAL T *dgamma,
                                         hk_idx dgo, GLOBAL T *dbeta, hk_idx dbo)
{
    __local HK_ACC buf[RLWS];
    hk_idx c = get_group_id(0);
    HK_ACC mu = (HK_ACC)mean[mo + c];
    HK_ACC sdy = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, dy + dyo, nb, cc, hw, c, 2, mu));
    HK_ACC sdyx = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, dy + dyo, nb, cc, hw, c, 3, mu));
    if (get_local_id(0) == 0) {
        dgamma[dgo + c] = (T)(sdyx * (HK_ACC)invstd[io + c]);
        dbeta[dbo + c] = (T)sdy;
    }
}

/* dx = gamma*invstd*(dy - dbeta/M - (x-mean)*invstd*dgamma/M); NDRange (HW, C, N) */
__kernel void FN(bn_bwd_dx)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy, hk_idx dyo,
                            GLOBAL T *dx, hk_idx dxo, hk_idx cc, hk_idx hw,
                            const GLOBAL T *gamma, hk_idx go, const GLOBAL T *mean, hk_idx mo,
                            const GLOBAL T *invstd, hk_idx io, const GLOBAL T *dgamma,
                            hk_idx dgo, const GLOBAL T *dbeta, hk_idx dbo, HK_ACC inv_m)
{
    hk_idx c = get_global_id(1);
    hk_idx i = (get_global_id(2) * cc + c) * hw + get_global_id(0);
    HK_ACC is = (HK_ACC)invstd[io + c];
    HK_ACC xhat = ((HK_ACC)x[xo + i] - (HK_ACC)mean[mo + c]) * is;
    dx[dxo + i] = (T)((HK_ACC)gamma[go + c] * is *
                      ((HK_ACC)dy[dyo + i] - (HK_ACC)dbeta[dbo + c] * inv_m -
                       xhat * (HK_ACC)dgamma[dgo + c] * inv_m));
}

/* BN_STATS: sum[c] = sum of x, sumsq[c] = sum of x*x over channel c; one
 * work-group per channel. */
RLWS_ATTR __kernel void FN(bn_sums)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc,
                                    hk_idx hw, GLOBAL T *sum, hk_idx so, GLOBAL T *sumsq,
                                    hk_idx sqo)
{
    __local HK_ACC buf[RLWS];
    hk_idx c = get_group_id(0);
    HK_ACC s = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 0, (HK_ACC)0));
    HK_ACC sq = FN(wg_sum)(buf, FN(bn_lane_sum)(x + xo, x + xo, nb, cc, hw, c, 4, (HK_ACC)0));
    if (get_local_id(0) == 0) {
        sum[so + c] = (T)s;
        sumsq[sqo + c] = (T)sq;
    }
}

/* BN_STATS with one work-item per channel (few values per channel). */
__kernel void FN(bn_sums_item)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc, hk_idx hw,
                               GLOBAL T *sum, hk_idx so, GLOBAL T *sumsq, hk_idx sqo)
{
    hk_idx c = get_global_id(0);
    if (c >= cc) return;
    HK_ACC s = (HK_ACC)0, sq = (HK_ACC)0;
    for (hk_idx n = 0; n < nb; n++)
        for (hk_idx j = 0; j < hw; j++) {
            HK_ACC v = (HK_ACC)x[xo + (n * cc + c) * hw + j];
            s += v;
            sq += v * v;
        }
    sum[so + c] = (T)s;
    sumsq[sqo + c] = (T)sq;
}

/* BN_FWD_FROM_STATS statistics, one work-item per channel: mean = sum/M,
 * var = max(sumsq/M - mean^2, 0), save_mean, save_invstd and the running
 * statistics (running_var with var*M/(M-1)). */
__kernel void FN(bn_from_sums)(const GLOBAL T *sum, hk_idx so, const GLOBAL T *sumsq, hk_idx sqo,
                               hk_idx cc, hk_idx count, GLOBAL T *smean, hk_idx smo,
                               GLOBAL T *sinv, hk_idx sio, GLOBAL T *rmean, hk_idx rmo,
                               GLOBAL T *rvar, hk_idx rvo, HK_ACC eps, HK_ACC momentum)
{
    hk_idx c = get_global_id(0);
    if (c >= cc) return;
    HK_ACC m = (HK_ACC)count, mom = momentum;
    HK_ACC mean = (HK_ACC)sum[so + c] / m;
    HK_ACC var = (HK_ACC)sumsq[sqo + c] / m - mean * mean;
    if (var < (HK_ACC)0) var = (HK_ACC)0;
    smean[smo + c] = (T)mean;
    sinv[sio + c] = (T)((HK_ACC)1 / sqrt(var + eps));
    HK_ACC unbiased = var * m / (m - (HK_ACC)1);
    rmean[rmo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rmean[rmo + c] + mom * mean);
    rvar[rvo + c] = (T)(((HK_ACC)1 - mom) * (HK_ACC)rvar[rvo + c] + mom * unbiased);
}
