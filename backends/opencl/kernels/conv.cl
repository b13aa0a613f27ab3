/* conv.cl - im2col / col2im for the GEMM lowering of 2-D convolution
 * (default; option im2col=clblast uses CLBlast's instead).  Layout as
 * CLBlast's: col[(c*R + kh)*S + kw][p*Q + q], zero where the patch is in
 * the padding.  Measured on PoCL (C=64, 64x32, 3x3): im2col as fast as
 * CLBlast's, col2im 3-4x faster (a gather that overwrites, so dx needs no
 * zero fill and no accumulation).  Typed: T, FN(), HK_ACC. */

/* NDRange (P*Q, R*S, C): one item per element of col, written in order. */
__kernel void FN(im2col)(const GLOBAL T *x, hk_idx xo, GLOBAL T *col, hk_idx co, hk_idx c,
                         hk_idx h, hk_idx w, hk_idx p_, hk_idx q_, hk_idx r, hk_idx s, hk_idx sh,
                         hk_idx sw, hk_idx ph, hk_idx pw, hk_idx dh, hk_idx dw)
{
    hk_idx i = get_global_id(0), z = get_global_id(1), ch = get_global_id(2);
    hk_idx p = i / q_, q = i - p * q_;
    hk_idx kh = z / s, kw = z - kh * s;
    hk_idx hi = p * sh - ph + kh * dh, wi = q * sw - pw + kw * dw;
    int inside = hi >= 0 && hi < h && wi >= 0 && wi < w;
    col[co + (ch * r * s + z) * p_ * q_ + i] = inside ? x[xo + (ch * h + hi) * w + wi] : (T)0;
    (void)c; /* the NDRange carries C */
}

/* col2im as a gather (overwrites x, deterministic order kh, kw):
 * x[ch, hi, wi] = sum over (kh, kw) with hi = p*sh - ph + kh*dh and
 * wi = q*sw - pw + kw*dw of col[(ch*R + kh)*S + kw][p*Q + q].
 * NDRange (W, H, C). */
__kernel void FN(col2im)(const GLOBAL T *col, hk_idx co, GLOBAL T *x, hk_idx xo, hk_idx h,
                         hk_idx w, hk_idx p_, hk_idx q_, hk_idx r, hk_idx s, hk_idx sh,
                         hk_idx sw, hk_idx ph, hk_idx pw, hk_idx dh, hk_idx dw)
{
    hk_idx wi = get_global_id(0), hi = get_global_id(1), ch = get_global_id(2);
    hk_idx pq = p_ * q_;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx kh = 0; kh < r; kh++) {
        hk_idx tp = hi + ph - kh * dh;
        if (tp < 0) break; /* grows more negative with kh */
        if (sh != 1 && tp % sh) continue;
        hk_idx p = sh == 1 ? tp : tp / sh;
        if (p >= p_) continue;
        const GLOBAL T *row = col + co + (ch * r + kh) * s * pq + p * q_;
        for (hk_idx kw = 0; kw < s; kw++) {
            hk_idx tq = wi + pw - kw * dw;
            if (tq < 0) break;
            if (sw != 1 && tq % sw) continue;
            hk_idx q = sw == 1 ? tq : tq / sw;
            if (q < q_) acc += (HK_ACC)row[kw * pq + q];
        }
    }
    x[xo + (ch * h + hi) * w + wi] = (T)acc;
}
