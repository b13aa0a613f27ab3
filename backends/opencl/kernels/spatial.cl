/* spatial.cl - nearest upsampling and bilinear resizing of NCHW tensors.
 * Backward passes gather (one work-item per input element) so that nothing
 * is accumulated with atomics.  Typed: T, FN(). */

/* NDRange (OW, OH, N*C) */
__kernel void FN(upsample_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx h,
                               hk_idx w, hk_idx f)
{
    hk_idx q = get_global_id(0), p = get_global_id(1), nc = get_global_id(2);
    hk_idx ow = w * f, oh = h * f;
    y[yo + (nc * oh + p) * ow + q] = x[xo + nc * h * w + (p / f) * w + q / f];
}

/* NDRange (W, H, N*C) */
__kernel void FN(upsample_bwd)(const GLOBAL T *dy, hk_idx dyo, GLOBAL T *dx, hk_idx dxo,
                               hk_idx h, hk_idx w, hk_idx f)
{
    hk_idx q = get_global_id(0), p = get_global_id(1), nc = get_global_id(2);
    hk_idx i = (nc * h + p) * w + q;
    hk_idx ow = w * f, oh = h * f;
    const GLOBAL T *src = dy + dyo + nc * oh * ow + (p * f) * ow + q * f;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx a = 0; a < f; a++)
        for (hk_idx b = 0; b < f; b++) acc += (HK_ACC)src[a * ow + b];
    dx[dxo + i] = (T)acc;
}

/* NDRange (OW, OH, N*C) */
__kernel void FN(bilinear_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx h,
                               hk_idx w, hk_idx oh, hk_idx ow, int align)
{
    hk_idx q = get_global_id(0), p = get_global_id(1), nc = get_global_id(2);
    hk_idx i = (nc * oh + p) * ow + q;
    hk_idx h0, h1, w0, w1;
    T lh, lw;
    FN(hk_bilinear_src)(p, h, oh, align, &h0, &h1, &lh);
    FN(hk_bilinear_src)(q, w, ow, align, &w0, &w1, &lw);
    const GLOBAL T *s = x + xo + nc * h * w;
    HK_ACC a = (HK_ACC)lh, b = (HK_ACC)lw;
    HK_ACC top = ((HK_ACC)1 - b) * (HK_ACC)s[h0 * w + w0] + b * (HK_ACC)s[h0 * w + w1];
    HK_ACC bot = ((HK_ACC)1 - b) * (HK_ACC)s[h1 * w + w0] + b * (HK_ACC)s[h1 * w + w1];
    y[yo + i] = (T)(((HK_ACC)1 - a) * top + a * bot);
}

/* Output indices along one axis whose source interval can touch input
 * index k: a superset, each candidate is then tested exactly. */
DEVFN void FN(bilinear_range)(hk_idx k, hk_idx in, hk_idx out, int align, hk_idx *lo,
                              hk_idx *hi)
{
    T a, b;
    if (in <= 1 || out <= 1) {
        *lo = 0;
        *hi = out - 1;
        return;
    }
    if (align) {
        T r = (T)(out - 1) / (T)(in - 1);
        a = (T)(k - 1) * r;
        b = (T)(k + 1) * r;
    } else {
        T r = (T)out / (T)in;
        a = ((T)k - (T)0.5) * r - (T)0.5;
        b = ((T)k + (T)1.5) * r - (T)0.5;
    }
    hk_idx l = (hk_idx)floor(a) - 1, u = (hk_idx)ceil(b) + 1;
    *lo = l < 0 ? 0 : l;
    *hi = u > out - 1 ? out - 1 : u;
}

/* Source table of one axis: for each output index d, (i0, i1) in ti[2d],
 * ti[2d+1] and the weight of i1 in tl[d] (the forward's values). */
__kernel void FN(bilinear_table)(GLOBAL long *ti, hk_idx tio, GLOBAL HK_ACC *tl, hk_idx tlo,
                                 hk_idx in, hk_idx out, int align)
{
    hk_idx d = get_global_id(0);
    if (d >= out) return;
    hk_idx i0, i1;
    T l;
    FN(hk_bilinear_src)(d, in, out, align, &i0, &i1, &l);
    ti[tio + 2 * d] = i0;
    ti[tio + 2 * d + 1] = i1;
    tl[tlo + d] = (HK_ACC)l;
}

/* Weight of input index k in output index d, from a table. */
DEVFN HK_ACC FN(table_weight)(const GLOBAL long *ti, const GLOBAL HK_ACC *tl, hk_idx d, hk_idx k)
{
    HK_ACC l = tl[d];
    return (ti[2 * d] == k ? (HK_ACC)1 - l : (HK_ACC)0) + (ti[2 * d + 1] == k ? l : (HK_ACC)0);
}

/* Separable backward, pass 1 (along the width): for every output row a,
 * tmp[nc, a, q] = sum_b ww(b, q) dy[nc, a, b]; NDRange (W, OH, N*C).  tmp
 * is HK_ACC; (wi, wl) is the width table. */
__kernel void FN(bilinear_bwd_w)(const GLOBAL T *dy, hk_idx dyo, GLOBAL HK_ACC *tmp, hk_idx to,
                                 const GLOBAL long *ti, hk_idx tio, const GLOBAL HK_ACC *tl,
                                 hk_idx tlo, hk_idx w, hk_idx oh, hk_idx ow, int align)
{
    hk_idx q = get_global_id(0), a = get_global_id(1), nc = get_global_id(2);
    hk_idx lo, hi;
    FN(bilinear_range)(q, w, ow, align, &lo, &hi);
    const GLOBAL T *g = dy + dyo + (nc * oh + a) * ow;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx b = lo; b <= hi; b++) {
        HK_ACC ww = FN(table_weight)(ti + tio, tl + tlo, b, q);
        if (ww != (HK_ACC)0) acc += ww * (HK_ACC)g[b];
    }
    tmp[to + (nc * oh + a) * w + q] = acc;
}

/* Pass 2 (along the height): dx[nc, p, q] = sum_a wh(a, p) tmp[nc, a, q];
 * NDRange (W, H, N*C); (ti, tl) is the height table. */
__kernel void FN(bilinear_bwd_h)(const GLOBAL HK_ACC *tmp, hk_idx to, const GLOBAL long *ti,
                                 hk_idx tio, const GLOBAL HK_ACC *tl, hk_idx tlo, GLOBAL T *dx,
                                 hk_idx dxo, hk_idx h, hk_idx w, hk_idx oh, int align)
{
    hk_idx q = get_global_id(0), p = get_global_id(1), nc = get_global_id(2);
    hk_idx lo, hi;
    FN(bilinear_range)(p, h, oh, align, &lo, &hi);
    const GLOBAL HK_ACC *t = tmp + to + nc * oh * w + q;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx a = lo; a <= hi; a++) {
        HK_ACC wh = FN(table_weight)(ti + tio, tl + tlo, a, p);
        if (wh != (HK_ACC)0) acc += wh * t[a * w];
    }
    dx[dxo + (nc * h + p) * w + q] = (T)acc;
}
