/* channel.cl - ops over dim 1 of x[N,C,inner].  Typed: T, FN(). */

__kernel void FN(softmax_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx rows,
                              hk_idx c, hk_idx inner)
{
    hk_idx i = get_global_id(0);
    if (i >= rows) return;
    hk_idx base = (i / inner) * c * inner + i % inner;
    FN(hk_softmax_row)(x + xo + base, y + yo + base, c, inner);
}

__kernel void FN(softmax_bwd)(const GLOBAL T *y, hk_idx yo, const GLOBAL T *dy, hk_idx dyo,
                              GLOBAL T *dx, hk_idx dxo, hk_idx rows, hk_idx c, hk_idx inner)
{
    hk_idx i = get_global_id(0);
    if (i >= rows) return;
    hk_idx base = (i / inner) * c * inner + i % inner;
    FN(hk_softmax_bwd_row)(y + yo + base, dy + dyo + base, dx + dxo + base, c, inner);
}

__kernel void FN(argmax)(const GLOBAL T *x, hk_idx xo, GLOBAL long *idx, hk_idx io, hk_idx rows,
                         hk_idx c, hk_idx inner)
{
    hk_idx i = get_global_id(0);
    if (i >= rows) return;
    hk_idx base = (i / inner) * c * inner + i % inner;
    idx[io + i] = FN(hk_row_argmax)(x + xo + base, c, inner);
}

/* CONCAT / SPLIT: dst[r*dpitch + k] = src[r*spitch + k], k < cols. */
__kernel void FN(copy_rows)(const GLOBAL T *src, hk_idx so, hk_idx spitch, GLOBAL T *dst,
                            hk_idx dso, hk_idx dpitch, hk_idx n, hk_idx cols)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx r = i / cols, k = i % cols;
    dst[dso + r * dpitch + k] = src[so + r * spitch + k];
}
