/* elementwise.cl - one work-item per element.  Typed: T, FN(). Every tensor
 * is passed as (pointer, element offset). */

__kernel void FN(relu_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n)
{
    hk_idx i = get_global_id(0);
    if (i < n) y[yo + i] = FN(hk_relu)(x[xo + i]);
}

__kernel void FN(relu_bwd)(const GLOBAL T *y, hk_idx yo, const GLOBAL T *dy, hk_idx dyo,
                           GLOBAL T *dx, hk_idx dxo, hk_idx n)
{
    hk_idx i = get_global_id(0);
    if (i < n) dx[dxo + i] = FN(hk_relu_bwd)(y[yo + i], dy[dyo + i]);
}

__kernel void FN(sigmoid_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n)
{
    hk_idx i = get_global_id(0);
    if (i < n) y[yo + i] = FN(hk_sigmoid)(x[xo + i]);
}

__kernel void FN(sigmoid_bwd)(const GLOBAL T *y, hk_idx yo, const GLOBAL T *dy, hk_idx dyo,
                              GLOBAL T *dx, hk_idx dxo, hk_idx n)
{
    hk_idx i = get_global_id(0);
    if (i < n) dx[dxo + i] = FN(hk_sigmoid_bwd)(y[yo + i], dy[dyo + i]);
}

__kernel void FN(thresh_fwd)(const GLOBAL T *x, hk_idx xo, GLOBAL T *y, hk_idx yo, hk_idx n, T t)
{
    hk_idx i = get_global_id(0);
    if (i < n) y[yo + i] = FN(hk_thresh)(x[xo + i], t);
}

__kernel void FN(thresh_bwd)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy, hk_idx dyo,
                             GLOBAL T *dx, hk_idx dxo, hk_idx n, T t)
{
    hk_idx i = get_global_id(0);
    if (i < n) dx[dxo + i] = FN(hk_thresh_bwd)(x[xo + i], dy[dyo + i], t);
}

/* ADD (op 0): y = alpha*a + beta*b ; MUL (op 1): y = alpha*a*b.  Same shapes. */
__kernel void FN(binary_same)(const GLOBAL T *a, hk_idx ao, const GLOBAL T *b, hk_idx bo,
                              GLOBAL T *y, hk_idx yo, hk_idx n, int op, T alpha, T beta)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    T va = a[ao + i], vb = b[bo + i];
    y[yo + i] = op == 0 ? alpha * va + beta * vb : alpha * va * vb;
}

/* Broadcasting ADD/MUL over 5 dims: y shape (d0..d4) (d0 implied by n), a and
 * b addressed with strides that are 0 along their broadcast dims. */
__kernel void FN(binary_bcast)(const GLOBAL T *a, hk_idx ao, const GLOBAL T *b, hk_idx bo,
                               GLOBAL T *y, hk_idx yo, hk_idx n, int op, T alpha, T beta,
                               hk_idx d1, hk_idx d2, hk_idx d3, hk_idx d4,
                               hk_idx sa0, hk_idx sa1, hk_idx sa2, hk_idx sa3, hk_idx sa4,
                               hk_idx sb0, hk_idx sb1, hk_idx sb2, hk_idx sb3, hk_idx sb4)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx r = i;
    hk_idx c4 = r % d4; r /= d4;
    hk_idx c3 = r % d3; r /= d3;
    hk_idx c2 = r % d2; r /= d2;
    hk_idx c1 = r % d1; r /= d1;
    hk_idx c0 = r;
    T va = a[ao + c0 * sa0 + c1 * sa1 + c2 * sa2 + c3 * sa3 + c4 * sa4];
    T vb = b[bo + c0 * sb0 + c1 * sb1 + c2 * sb2 + c3 * sb3 + c4 * sb4];
    y[yo + i] = op == 0 ? alpha * va + beta * vb : alpha * va * vb;
}

/* GAP_BWD: dx[r*hw + j] = dy[r] * inv; NDRange (HW, N*C) */
__kernel void FN(gap_bwd)(const GLOBAL T *dy, hk_idx dyo, GLOBAL T *dx, hk_idx dxo, hk_idx hw,
                          T inv)
{
    hk_idx j = get_global_id(0), r = get_global_id(1);
    dx[dxo + r * hw + j] = dy[dyo + r] * inv;
}

/* REDUCE_BWD: kind 0 SUM, 1 MEAN, 2 ABS_MEAN; scale = 1 or 1/numel. */
__kernel void FN(reduce_bwd)(const GLOBAL T *x, hk_idx xo, const GLOBAL T *dy, hk_idx dyo,
                             GLOBAL T *dx, hk_idx dxo, hk_idx n, int kind, T scale)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    T g = dy[dyo] * scale;
    dx[dxo + i] = kind == 2 ? g * FN(hk_sign)(x[xo + i]) : g;
}

/* Conv bias: y[n,k,pq] += bias[k]; NDRange (PQ, K, N) */
__kernel void FN(bias_add)(GLOBAL T *y, hk_idx yo, const GLOBAL T *bias, hk_idx bo, hk_idx k,
                           hk_idx pq)
{
    hk_idx c = get_global_id(1);
    y[yo + (get_global_id(2) * k + c) * pq + get_global_id(0)] += bias[bo + c];
}

/* Broadcasting ADD/MUL over at most 3 merged dims: NDRange (d2, d1, d0), y
 * dense, a and b through strides (0 on broadcast dims). */
__kernel void FN(binary_bcast3)(const GLOBAL T *a, hk_idx ao, const GLOBAL T *b, hk_idx bo,
                                GLOBAL T *y, hk_idx yo, int op, T alpha, T beta, hk_idx d1,
                                hk_idx d2, hk_idx sa0, hk_idx sa1, hk_idx sa2, hk_idx sb0,
                                hk_idx sb1, hk_idx sb2)
{
    hk_idx i2 = get_global_id(0), i1 = get_global_id(1), i0 = get_global_id(2);
    T va = a[ao + i0 * sa0 + i1 * sa1 + i2 * sa2];
    T vb = b[bo + i0 * sb0 + i1 * sb1 + i2 * sb2];
    y[yo + (i0 * d1 + i1) * d2 + i2] = op == 0 ? alpha * va + beta * vb : alpha * va * vb;
}

/* ADAM_STEP */
__kernel void FN(adam_step)(const GLOBAL T *grad, hk_idx go, GLOBAL T *param, hk_idx po,
                            GLOBAL T *m, hk_idx mo, GLOBAL T *v, hk_idx vo, hk_idx n, HK_ACC b1,
                            HK_ACC b2, HK_ACC step_size, HK_ACC bc2_sqrt, HK_ACC eps, HK_ACC wd)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    T p = param[po + i], mm = m[mo + i], vv = v[vo + i];
    FN(hk_adam)(grad[go + i], &p, &mm, &vv, b1, b2, step_size, bc2_sqrt, eps, wd);
    param[po + i] = p;
    m[mo + i] = mm;
    v[vo + i] = vv;
}

/* SGD_STEP */
__kernel void FN(sgd_step)(const GLOBAL T *grad, hk_idx go, GLOBAL T *param, hk_idx po,
                           GLOBAL T *buf, hk_idx bfo, hk_idx n, HK_ACC lr, HK_ACC momentum,
                           HK_ACC wd, int first)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    T p = param[po + i], b = buf[bfo + i];
    FN(hk_sgd)(grad[go + i], &p, &b, lr, momentum, wd, first);
    param[po + i] = p;
    buf[bfo + i] = b;
}
