/* spatial.cl - nearest upsampling and bilinear resizing of NCHW tensors.
 * Backward passes gather (one work-item per input element) so that nothing
 * is accumulated with atomics.  Typed: T, FN(). */

__kernel void FN(upsample_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n,
                               hk_idx h, hk_idx w, hk_idx f)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx ow = w * f, oh = h * f;
    hk_idx q = i % ow, t = i / ow;
    hk_idx p = t % oh, nc = t / oh;
    y[yo + i] = x[xo + nc * h * w + (p / f) * w + q / f];
}

__kernel void FN(upsample_bwd)(const GLOBAL T *dy, hk_idx dyo, GLOBAL T *dx, hk_idx dxo,
                               hk_idx n, hk_idx h, hk_idx w, hk_idx f)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx ow = w * f, oh = h * f;
    hk_idx q = i % w, t = i / w;
    hk_idx p = t % h, nc = t / h;
    const GLOBAL T *src = dy + dyo + nc * oh * ow + (p * f) * ow + q * f;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx a = 0; a < f; a++)
        for (hk_idx b = 0; b < f; b++) acc += (HK_ACC)src[a * ow + b];
    dx[dxo + i] = (T)acc;
}

__kernel void FN(bilinear_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n,
                               hk_idx h, hk_idx w, hk_idx oh, hk_idx ow, int align)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx q = i % ow, t = i / ow;
    hk_idx p = t % oh, nc = t / oh;
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

DEVFN HK_ACC FN(bilinear_weight)(hk_idx d, hk_idx k, hk_idx in, hk_idx out, int align)
{
    hk_idx i0, i1;
    T l;
    FN(hk_bilinear_src)(d, in, out, align, &i0, &i1, &l);
    HK_ACC la = (HK_ACC)l;
    return (i0 == k ? (HK_ACC)1 - la : (HK_ACC)0) + (i1 == k ? la : (HK_ACC)0);
}

__kernel void FN(bilinear_bwd)(const GLOBAL T *dy, hk_idx dyo, GLOBAL T *dx, hk_idx dxo,
                               hk_idx n, hk_idx h, hk_idx w, hk_idx oh, hk_idx ow, int align)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx q = i % w, t = i / w;
    hk_idx p = t % h, nc = t / h;
    hk_idx plo, phi, qlo, qhi;
    FN(bilinear_range)(p, h, oh, align, &plo, &phi);
    FN(bilinear_range)(q, w, ow, align, &qlo, &qhi);
    const GLOBAL T *g = dy + dyo + nc * oh * ow;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx a = plo; a <= phi; a++) {
        HK_ACC wh = FN(bilinear_weight)(a, p, h, oh, align);
        if (wh == (HK_ACC)0) continue;
        HK_ACC row = (HK_ACC)0;
        for (hk_idx b = qlo; b <= qhi; b++) {
            HK_ACC ww = FN(bilinear_weight)(b, q, w, ow, align);
            if (ww != (HK_ACC)0) row += ww * (HK_ACC)g[a * ow + b];
        }
        acc += wh * row;
    }
    dx[dxo + i] = (T)acc;
}
