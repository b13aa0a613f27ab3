/* channel.cl - ops over dim 1 of x[N,C,inner].  Typed: T, FN().
 * Multi-dimensional NDRanges (dim 0 fastest) instead of dividing a flat
 * index: 64-bit divisions do not vectorise on CPU devices. */

/* NDRange (inner, N) */
__kernel void FN(softmax_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx c,
                              hk_idx inner)
{
    hk_idx j = get_global_id(0), n = get_global_id(1);
    hk_idx base = n * c * inner + j;
    FN(hk_softmax_row)(x + xo + base, y + yo + base, c, inner);
}

/* NDRange (inner, N) */
__kernel void FN(softmax_bwd)(const GLOBAL T *y, hk_idx yo, const GLOBAL T *dy, hk_idx dyo,
                              GLOBAL T *dx, hk_idx dxo, hk_idx c, hk_idx inner)
{
    hk_idx j = get_global_id(0), n = get_global_id(1);
    hk_idx base = n * c * inner + j;
    FN(hk_softmax_bwd_row)(y + yo + base, dy + dyo + base, dx + dxo + base, c, inner);
}

/* NDRange (inner, N) */
__kernel void FN(argmax)(const GLOBAL T *x, hk_idx xo, GLOBAL long *idx, hk_idx io, hk_idx c,
                         hk_idx inner)
{
    hk_idx j = get_global_id(0), n = get_global_id(1);
    idx[io + n * inner + j] = FN(hk_row_argmax)(x + xo + n * c * inner + j, c, inner);
}

/* CONCAT / SPLIT: dst[r*dpitch + k] = src[r*spitch + k]; NDRange (cols, rows). */
__kernel void FN(copy_rows)(const GLOBAL T *src, hk_idx so, hk_idx spitch, GLOBAL T *dst,
                            hk_idx dso, hk_idx dpitch)
{
    hk_idx k = get_global_id(0), r = get_global_id(1);
    dst[dso + r * dpitch + k] = src[so + r * spitch + k];
}
