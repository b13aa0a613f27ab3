/* reduce.cl - deterministic reductions.  Every sum is split over a fixed
 * number of work-groups of RLWS items (chosen by the host from the sizes
 * only), each item sums a fixed strided subset, and the group combines its
 * items with a fixed tree.  No atomics on floats.  Sums and stage-1
 * partials are HK_ACC (double for float data on fp64 devices).
 * Typed: T, FN(), HK_ACC. */

DEVFN HK_ACC FN(wg_sum)(__local HK_ACC *buf, HK_ACC v)
{
    int lid = get_local_id(0);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RLWS / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    HK_ACC r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* REDUCE stage 1: part[g] = sum over [g*chunk, (g+1)*chunk) of x (or |x|). */
RLWS_ATTR __kernel void FN(reduce_part)(const GLOBAL T *x, hk_idx xo, hk_idx n, hk_idx chunk,
                                        int absval, GLOBAL HK_ACC *part, hk_idx po)
{
    __local HK_ACC buf[RLWS];
    hk_idx g = get_group_id(0);
    int lid = get_local_id(0);
    hk_idx beg = g * chunk, end = beg + chunk < n ? beg + chunk : n;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx i = beg + lid; i < end; i += RLWS) {
        HK_ACC v = (HK_ACC)x[xo + i];
        acc += absval ? fabs(v) : v;
    }
    HK_ACC s = FN(wg_sum)(buf, acc);
    if (lid == 0) part[po + g] = s;
}

/* Stage 2: y[yo] = scale * sum of g partials; one group. */
RLWS_ATTR __kernel void FN(reduce_final)(const GLOBAL HK_ACC *part, hk_idx po, hk_idx g,
                                         GLOBAL T *y, hk_idx yo, HK_ACC scale_)
{
    __local HK_ACC buf[RLWS];
    int lid = get_local_id(0);
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx i = lid; i < g; i += RLWS) acc += part[po + i];
    HK_ACC s = FN(wg_sum)(buf, acc);
    if (lid == 0) y[yo] = (T)(s * (HK_ACC)scale_);
}

/* Stage 2 of a masked mean: y = sum/count (0 when count is 0); one group. */
RLWS_ATTR __kernel void FN(reduce_final_count)(const GLOBAL HK_ACC *part, hk_idx po,
                                               const GLOBAL long *cpart, hk_idx cpo, hk_idx g,
                                               GLOBAL T *y, hk_idx yo)
{
    __local HK_ACC buf[RLWS];
    __local long lbuf[RLWS];
    int lid = get_local_id(0);
    HK_ACC acc = (HK_ACC)0;
    long c = 0;
    for (hk_idx i = lid; i < g; i += RLWS) {
        acc += part[po + i];
        c += cpart[cpo + i];
    }
    HK_ACC s = FN(wg_sum)(buf, acc);
    long cnt = wg_sum_long(lbuf, c);
    if (lid == 0) y[yo] = cnt > 0 ? (T)(s / (HK_ACC)cnt) : (T)0;
}

/* Index helpers for SUM_TO: the output index o is decomposed over the
 * output shape (y1..y4, dim 0 implied) and the reduction index r over the
 * shape of the summed dims (r1..r4); both address x through its strides. */
DEVFN hk_idx FN(sum_to_addr)(hk_idx o, hk_idx d1, hk_idx d2, hk_idx d3, hk_idx d4, hk_idx s0,
                             hk_idx s1, hk_idx s2, hk_idx s3, hk_idx s4)
{
    hk_idx c4 = o % d4; o /= d4;
    hk_idx c3 = o % d3; o /= d3;
    hk_idx c2 = o % d2; o /= d2;
    hk_idx c1 = o % d1; o /= d1;
    return o * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4;
}

/* SUM_TO, one work-item per output: used when the last dim is kept (so
 * neighbouring items read neighbouring elements) or when few elements are
 * summed.  The summed dims are walked with nested loops (r0..r4 are the
 * sizes of the summed dims, 1 elsewhere), no division per element. */
__kernel void FN(sum_to_item)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx nout,
                              hk_idx r0, HK_ACC scale_, hk_idx y1, hk_idx y2, hk_idx y3, hk_idx y4,
                              hk_idx r1, hk_idx r2, hk_idx r3, hk_idx r4, hk_idx s0, hk_idx s1,
                              hk_idx s2, hk_idx s3, hk_idx s4)
{
    hk_idx o = get_global_id(0);
    if (o >= nout) return;
    const GLOBAL T *p = x + xo + FN(sum_to_addr)(o, y1, y2, y3, y4, s0, s1, s2, s3, s4);
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx a = 0; a < r0; a++)
        for (hk_idx b = 0; b < r1; b++)
            for (hk_idx c = 0; c < r2; c++)
                for (hk_idx d = 0; d < r3; d++) {
                    const GLOBAL T *q = p + a * s0 + b * s1 + c * s2 + d * s3;
                    for (hk_idx e = 0; e < r4; e++) acc += (HK_ACC)q[e * s4];
                }
    y[yo + o] = (T)(acc * (HK_ACC)scale_);
}

/* SUM_TO, one work-group per output (many summed elements).  When the
 * summed dims are the leading and trailing ones around a kept block (the
 * usual [N,C,H,W] -> [1,C,1,1]) the host passes inner > 1: the summed index
 * r is split into (outer, inner) rows of length inner that are contiguous
 * in x, and items stride along them (no divisions in the inner loop). */
RLWS_ATTR __kernel void FN(sum_to_wg)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo,
                                      hk_idx nout, hk_idx nred, HK_ACC scale_, hk_idx y1, hk_idx y2,
                                      hk_idx y3, hk_idx y4, hk_idx r1, hk_idx r2, hk_idx r3,
                                      hk_idx r4, hk_idx s0, hk_idx s1, hk_idx s2, hk_idx s3,
                                      hk_idx s4, hk_idx inner)
{
    __local HK_ACC buf[RLWS];
    hk_idx o = get_group_id(0);
    int lid = get_local_id(0);
    hk_idx base = xo + FN(sum_to_addr)(o, y1, y2, y3, y4, s0, s1, s2, s3, s4);
    HK_ACC acc = (HK_ACC)0;
    if (inner > 1) {
        hk_idx rows = nred / inner;
        for (hk_idx q = 0; q < rows; q++) {
            hk_idx rb = base + FN(sum_to_addr)(q * inner, r1, r2, r3, r4, s0, s1, s2, s3, s4);
            for (hk_idx j = lid; j < inner; j += RLWS) acc += (HK_ACC)x[rb + j];
        }
    } else {
        for (hk_idx r = lid; r < nred; r += RLWS)
            acc += (HK_ACC)x[base + FN(sum_to_addr)(r, r1, r2, r3, r4, s0, s1, s2, s3, s4)];
    }
    HK_ACC s = FN(wg_sum)(buf, acc);
    if (lid == 0) y[yo + o] = (T)(s * (HK_ACC)scale_);
}
