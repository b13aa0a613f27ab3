/* loss.cl - losses.  Label errors are reported through flag[0]: the lowest
 * offending index is stored with atomic_min (integer, so deterministic) and
 * the host reads it back.  Typed: T, FN(). */

/* CE_LS_FWD stage 1: per-row losses into part[n]; then reduce_final(1/N). */
__kernel void FN(ce_ls_rows)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *lab, hk_idx lo,
                             hk_idx nb, hk_idx c, T eps, GLOBAL HK_ACC *part, hk_idx po,
                             GLOBAL int *flag)
{
    hk_idx n = get_global_id(0);
    if (n >= nb) return;
    long l = lab[lo + n];
    if (l < 0 || l >= c) {
        atomic_min(flag, (int)n);
        part[po + n] = (HK_ACC)0;
        return;
    }
    part[po + n] = FN(hk_ce_ls_row)(x + xo + n * c, c, 1, l, eps);
}

/* CE_LS_BWD: dx = dloss/N * (softmax - t); one item per row. */
__kernel void FN(ce_ls_bwd)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *lab, hk_idx lo,
                            const GLOBAL T *dl, hk_idx dlo, GLOBAL T *dx, hk_idx dxo, hk_idx nb,
                            hk_idx c, T eps, GLOBAL int *flag)
{
    hk_idx n = get_global_id(0);
    if (n >= nb) return;
    long l = lab[lo + n];
    if (l < 0 || l >= c) {
        atomic_min(flag, (int)n);
        for (hk_idx k = 0; k < c; k++) dx[dxo + n * c + k] = (T)0;
        return;
    }
    FN(hk_ce_ls_row_grad)(x + xo + n * c, dx + dxo + n * c, c, 1, l, eps, dl[dlo] / (T)nb);
}

/* PIXEL_CE_FWD stage 1 over pixels p = (n, j) of x[N,K,HW]: per group the
 * sum of -log_softmax(label) and the count of non-ignored pixels. */
RLWS_ATTR __kernel void FN(pixel_ce_part)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *lab,
                                          hk_idx lo, hk_idx np, hk_idx k, hk_idx hw,
                                          long ignore, hk_idx chunk, GLOBAL HK_ACC *part,
                                          hk_idx po, GLOBAL long *cpart, hk_idx cpo,
                                          GLOBAL int *flag)
{
    __local HK_ACC buf[RLWS];
    __local long lbuf[RLWS];
    hk_idx g = get_group_id(0);
    int lid = get_local_id(0);
    hk_idx beg = g * chunk, end = beg + chunk < np ? beg + chunk : np;
    HK_ACC acc = (HK_ACC)0;
    long cnt = 0;
    for (hk_idx p = beg + lid; p < end; p += RLWS) {
        long l = lab[lo + p];
        if (l == ignore) continue;
        if (l < 0 || l >= k) {
            atomic_min(flag, (int)p);
            continue;
        }
        hk_idx base = xo + (p / hw) * k * hw + p % hw;
        acc += FN(hk_ce_ls_row)(x + base, k, hw, l, (T)0);
        cnt++;
    }
    HK_ACC s = FN(wg_sum)(buf, acc);
    long cs = wg_sum_long(lbuf, cnt);
    if (lid == 0) {
        part[po + g] = s;
        cpart[cpo + g] = cs;
    }
}

/* PIXEL_CE_BWD: one item per pixel; cnt[co] = number of non-ignored pixels. */
__kernel void FN(pixel_ce_bwd)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *lab, hk_idx lo,
                               const GLOBAL T *dl, hk_idx dlo, const GLOBAL long *cnt, hk_idx co,
                               GLOBAL T *dx, hk_idx dxo, hk_idx np, hk_idx k, hk_idx hw,
                               long ignore, GLOBAL int *flag)
{
    hk_idx p = get_global_id(0);
    if (p >= np) return;
    long l = lab[lo + p];
    hk_idx base = (p / hw) * k * hw + p % hw;
    long total = cnt[co];
    int bad = l != ignore && (l < 0 || l >= k);
    if (bad) atomic_min(flag, (int)p);
    if (l == ignore || bad || total == 0) {
        for (hk_idx c = 0; c < k; c++) dx[dxo + base + c * hw] = (T)0;
        return;
    }
    FN(hk_ce_ls_row_grad)(x + xo + base, dx + dxo + base, k, hw, l, (T)0, dl[dlo] / (T)total);
}

/* TRIPLET_FWD 1: distance matrix dist[i*N+j]. */
__kernel void FN(triplet_dist)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx d,
                               GLOBAL T *dist, hk_idx dso)
{
    hk_idx t = get_global_id(0);
    if (t >= nb * nb) return;
    hk_idx i = t / nb, j = t % nb;
    int clamped;
    dist[dso + t] = FN(hk_pair_dist)(x + xo + i * d, x + xo + j * d, d, &clamped);
}

/* TRIPLET_FWD 2: hard mining per anchor; loss and validity per anchor. */
__kernel void FN(triplet_mine)(const GLOBAL T *dist, hk_idx dso, const GLOBAL long *lab,
                               hk_idx lo, hk_idx nb, T margin, GLOBAL long *hard, hk_idx ho,
                               GLOBAL HK_ACC *part, hk_idx po, GLOBAL long *cpart, hk_idx cpo)
{
    hk_idx i = get_global_id(0);
    if (i >= nb) return;
    long li = lab[lo + i];
    const GLOBAL T *row = dist + dso + i * nb;
    long pos = -1, neg = -1;
    T dp = (T)0, dn = (T)0;
    for (hk_idx j = 0; j < nb; j++) {
        T v = row[j];
        if (lab[lo + j] == li) {
            if (pos < 0 || v > dp) {
                pos = j;
                dp = v;
            }
        } else {
            if (neg < 0 || v < dn) {
                neg = j;
                dn = v;
            }
        }
    }
    hard[ho + 2 * i] = pos;
    hard[ho + 2 * i + 1] = neg;
    if (neg >= 0) {
        HK_ACC l = (HK_ACC)dp - (HK_ACC)dn + (HK_ACC)margin;
        part[po + i] = l > (HK_ACC)0 ? l : (HK_ACC)0;
        cpart[cpo + i] = 1;
    } else {
        part[po + i] = (HK_ACC)0;
        cpart[cpo + i] = 0;
    }
}

/* TRIPLET_BWD 1: per anchor, coef[i] = 1/d_ap, coef[N+i] = -1/d_an (0 when
 * the hinge is inactive, z = d_ap - d_an + margin < 0, or the distance was
 * clamped; torch passes the gradient at z == 0), coef[2N+i] = 1 if the
 * anchor counts (both indices >= 0).  Indices outside [-1, N) are flagged. */
__kernel void FN(triplet_coef)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *hard, hk_idx ho,
                               hk_idx nb, hk_idx d, T margin, GLOBAL T *coef, hk_idx co,
                               GLOBAL int *flag)
{
    hk_idx i = get_global_id(0);
    if (i >= nb) return;
    long p = hard[ho + 2 * i], ng = hard[ho + 2 * i + 1];
    coef[co + i] = (T)0;
    coef[co + nb + i] = (T)0;
    coef[co + 2 * nb + i] = (T)0;
    if (p < -1 || p >= nb || ng < -1 || ng >= nb) {
        atomic_min(flag, (int)i);
        return;
    }
    if (p < 0 || ng < 0) return;
    int cp, cn;
    T dap = FN(hk_pair_dist)(x + xo + i * d, x + xo + p * d, d, &cp);
    T dan = FN(hk_pair_dist)(x + xo + i * d, x + xo + ng * d, d, &cn);
    coef[co + 2 * nb + i] = (T)1;
    if ((HK_ACC)dap - (HK_ACC)dan + (HK_ACC)margin >= (HK_ACC)0) {
        coef[co + i] = cp ? (T)0 : (T)((HK_ACC)1 / (HK_ACC)dap);
        coef[co + nb + i] = cn ? (T)0 : (T)((HK_ACC)-1 / (HK_ACC)dan);
    }
}

/* TRIPLET_BWD 2: dx[k,e] gathered over anchors in index order. */
__kernel void FN(triplet_dx)(const GLOBAL T *x, hk_idx xo, const GLOBAL long *hard, hk_idx ho,
                             const GLOBAL T *coef, hk_idx co, const GLOBAL T *dl, hk_idx dlo,
                             GLOBAL T *dx, hk_idx dxo, hk_idx nb, hk_idx d)
{
    hk_idx t = get_global_id(0);
    if (t >= nb * d) return;
    hk_idx k = t / d, e = t % d;
    T cntv = (T)0;
    for (hk_idx i = 0; i < nb; i++) cntv += coef[co + 2 * nb + i];
    if (cntv == (T)0) {
        dx[dxo + t] = (T)0;
        return;
    }
    const GLOBAL T *xx = x + xo;
    HK_ACC xk = (HK_ACC)xx[k * d + e];
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx i = 0; i < nb; i++) {
        if (coef[co + 2 * nb + i] == (T)0) continue;
        long p = hard[ho + 2 * i], ng = hard[ho + 2 * i + 1];
        HK_ACC cp = (HK_ACC)coef[co + i], cn = (HK_ACC)coef[co + nb + i];
        if (i == k) acc += cp * (xk - (HK_ACC)xx[p * d + e]) + cn * (xk - (HK_ACC)xx[ng * d + e]);
        if (p == k) acc += cp * (xk - (HK_ACC)xx[i * d + e]);
        if (ng == k) acc += cn * (xk - (HK_ACC)xx[i * d + e]);
    }
    dx[dxo + t] = (T)(acc * (HK_ACC)dl[dlo] / (HK_ACC)cntv);
}

/* SHIFT_L1_FWD stage 1 over the valid region (N',C,H',W') of the shift. */
RLWS_ATTR __kernel void FN(shift_l1_part)(const GLOBAL T *x, hk_idx xo, hk_idx nb, hk_idx cc,
                                          hk_idx h, hk_idx w, int dn, int dh, int dw,
                                          hk_idx nv, hk_idx chunk, GLOBAL HK_ACC *part,
                                          hk_idx po)
{
    __local HK_ACC buf[RLWS];
    hk_idx g = get_group_id(0);
    int lid = get_local_id(0);
    hk_idx vh = h - abs(dh), vw = w - abs(dw);
    hk_idx n0 = dn < 0 ? -dn : 0, h0 = dh < 0 ? -dh : 0, w0 = dw < 0 ? -dw : 0;
    hk_idx shift = ((hk_idx)dn * cc * h + dh) * w + dw;
    hk_idx beg = g * chunk, end = beg + chunk < nv ? beg + chunk : nv;
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx v = beg + lid; v < end; v += RLWS) {
        hk_idx r = v;
        hk_idx q = r % vw; r /= vw;
        hk_idx p = r % vh; r /= vh;
        hk_idx c = r % cc; r /= cc;
        hk_idx a = (((r + n0) * cc + c) * h + p + h0) * w + q + w0;
        acc += fabs((HK_ACC)x[xo + a + shift] - (HK_ACC)x[xo + a]);
    }
    HK_ACC s = FN(wg_sum)(buf, acc);
    if (lid == 0) part[po + g] = s;
}

/* SHIFT_L1_BWD: dx[e] = g*(sign(x[e]-x[e-s]) [e-s valid] - sign(x[e+s]-x[e]) [e valid]) */
__kernel void FN(shift_l1_bwd)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dl, hk_idx dlo,
                               GLOBAL T *dx, hk_idx dxo, hk_idx nb, hk_idx cc, hk_idx h,
                               hk_idx w, int dn, int dh, int dw, T inv_count)
{
    hk_idx i = get_global_id(0);
    if (i >= nb * cc * h * w) return;
    hk_idx q = i % w, r = i / w;
    hk_idx p = r % h;
    r /= h;
    hk_idx n = r / cc;
    hk_idx shift = ((hk_idx)dn * cc * h + dh) * w + dw;
    const GLOBAL T *xx = x + xo;
    T acc = (T)0;
    /* e is the base of a valid pair (e, e+s) */
    if (n + dn >= 0 && n + dn < nb && p + dh >= 0 && p + dh < h && q + dw >= 0 && q + dw < w)
        acc -= FN(hk_sign)(xx[i + shift] - xx[i]);
    /* e is the shifted end of a valid pair (e-s, e) */
    if (n - dn >= 0 && n - dn < nb && p - dh >= 0 && p - dh < h && q - dw >= 0 && q - dw < w)
        acc += FN(hk_sign)(xx[i] - xx[i - shift]);
    dx[dxo + i] = acc * dl[dlo] * inv_count;
}
