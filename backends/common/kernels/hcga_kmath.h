/*
 * hcga_kmath.h - per-element and per-row math shared by the device backends.
 *
 * Plain C function bodies, no host code, no kernel entry points.  The
 * including backend defines, before including this file:
 *
 *   T          the floating-point type (float or double)
 *   FN(name)   a name-mangling macro giving each copy a distinct name per T
 *              (OpenCL: name##_f32 / name##_f64; CUDA may use templates and
 *              define FN(name) as name)
 *   DEVFN      qualifiers of a device helper (OpenCL: static inline,
 *              CUDA: static __device__ __forceinline__)
 *   GLOBAL     the address-space qualifier of global memory pointers
 *              (OpenCL: __global, CUDA: empty)
 *   hk_idx     a signed 64-bit integer type (OpenCL: long, CUDA: long long)
 *
 * and makes exp, log, sqrt, fabs available for T (OpenCL built-ins are
 * overloaded; CUDA C++ overloads them too).  The file may be included once
 * per T; it has no include guard on purpose.
 *
 * Optional: HK_ACC, the type of sums and intermediate results (default T).
 * The OpenCL backend sets it to double for T = float on devices with fp64,
 * which keeps long sums (softmax denominators, dot products) accurate; the
 * results are still returned as T.
 *
 * Semantics follow plugins/hcga_plugin.h.  Every function is deterministic:
 * loops run in a fixed order, nothing is accumulated with atomics.
 */

#ifndef HK_ACC
#define HK_ACC T /* expands to the T of each inclusion */
#endif

/* RELU_FWD / RELU_BWD */
DEVFN T FN(hk_relu)(T x) { return x > (T)0 ? x : (T)0; }
DEVFN T FN(hk_relu_bwd)(T y, T dy) { return y > (T)0 ? dy : (T)0; }

/* SIGMOID_FWD / SIGMOID_BWD */
DEVFN T FN(hk_sigmoid)(T x) { return (T)((HK_ACC)1 / ((HK_ACC)1 + exp(-(HK_ACC)x))); }
DEVFN T FN(hk_sigmoid_bwd)(T y, T dy)
{
    return (T)((HK_ACC)dy * (HK_ACC)y * ((HK_ACC)1 - (HK_ACC)y));
}

/* THRESH_FWD / THRESH_BWD: y = x < t ? 0 : x ; dx = x < t ? 0 : dy */
DEVFN T FN(hk_thresh)(T x, T t) { return x < t ? (T)0 : x; }
DEVFN T FN(hk_thresh_bwd)(T x, T dy, T t) { return x < t ? (T)0 : dy; }

/* sign with sign(0) = 0 (REDUCE_BWD ABS_MEAN, SHIFT_L1_BWD) */
DEVFN T FN(hk_sign)(T x) { return x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : (T)0); }

/* Largest value of a row x[0], x[s], ..., x[(n-1)s]. */
DEVFN T FN(hk_row_max)(const GLOBAL T *x, hk_idx n, hk_idx s)
{
    T m = x[0];
    for (hk_idx c = 1; c < n; c++) {
        T v = x[c * s];
        m = v > m ? v : m;
    }
    return m;
}

/* log(sum_c exp(x_c)) of a strided row, computed as max + log(sum exp(x - max)). */
DEVFN HK_ACC FN(hk_row_logsumexp)(const GLOBAL T *x, hk_idx n, hk_idx s)
{
    HK_ACC m = (HK_ACC)FN(hk_row_max)(x, n, s);
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx c = 0; c < n; c++) acc += exp((HK_ACC)x[c * s] - m);
    return m + log(acc);
}

/* SOFTMAX_FWD over one strided row. */
DEVFN void FN(hk_softmax_row)(const GLOBAL T *x, GLOBAL T *y, hk_idx n, hk_idx s)
{
    HK_ACC m = (HK_ACC)FN(hk_row_max)(x, n, s);
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx c = 0; c < n; c++) acc += exp((HK_ACC)x[c * s] - m);
    HK_ACC inv = (HK_ACC)1 / acc;
    for (hk_idx c = 0; c < n; c++) y[c * s] = (T)(exp((HK_ACC)x[c * s] - m) * inv);
}

/* SOFTMAX_BWD over one strided row: dx = y * (dy - sum_c dy*y). */
DEVFN void FN(hk_softmax_bwd_row)(const GLOBAL T *y, const GLOBAL T *dy, GLOBAL T *dx, hk_idx n,
                                  hk_idx s)
{
    HK_ACC dot = (HK_ACC)0;
    for (hk_idx c = 0; c < n; c++) dot += (HK_ACC)dy[c * s] * (HK_ACC)y[c * s];
    for (hk_idx c = 0; c < n; c++)
        dx[c * s] = (T)((HK_ACC)y[c * s] * ((HK_ACC)dy[c * s] - dot));
}

/* Index of the first maximal element of a strided row (ARGMAX); a NaN
 * counts as the maximum (the first NaN wins), as in torch. */
DEVFN hk_idx FN(hk_row_argmax)(const GLOBAL T *x, hk_idx n, hk_idx s)
{
    hk_idx best = 0;
    T m = x[0];
    for (hk_idx c = 1; c < n && m == m; c++) {
        T v = x[c * s];
        if (v > m || v != v) {
            m = v;
            best = c;
        }
    }
    return best;
}

/* Cross entropy with label smoothing of one strided row of logits:
 * t = (1-eps)*onehot(label) + eps/n; returns sum_c -t_c*log_softmax_c
 * = lse - (1-eps)*x_label - (eps/n)*sum_c x_c.  eps = 0 is plain CE. */
DEVFN HK_ACC FN(hk_ce_ls_row)(const GLOBAL T *x, hk_idx n, hk_idx s, hk_idx label, T eps)
{
    HK_ACC lse = FN(hk_row_logsumexp)(x, n, s);
    HK_ACC sum = (HK_ACC)0, e = (HK_ACC)eps;
    if (eps != (T)0)
        for (hk_idx c = 0; c < n; c++) sum += (HK_ACC)x[c * s];
    return lse - ((HK_ACC)1 - e) * (HK_ACC)x[label * s] - (e / (HK_ACC)n) * sum;
}

/* Gradient of scale * hk_ce_ls_row w.r.t. the row: scale*(softmax_c - t_c). */
DEVFN void FN(hk_ce_ls_row_grad)(const GLOBAL T *x, GLOBAL T *dx, hk_idx n, hk_idx s,
                                 hk_idx label, T eps, T scale)
{
    HK_ACC m = (HK_ACC)FN(hk_row_max)(x, n, s);
    HK_ACC acc = (HK_ACC)0;
    for (hk_idx c = 0; c < n; c++) acc += exp((HK_ACC)x[c * s] - m);
    HK_ACC inv = (HK_ACC)1 / acc, e = (HK_ACC)eps;
    HK_ACC off = e / (HK_ACC)n;
    for (hk_idx c = 0; c < n; c++) {
        HK_ACC t = (c == label ? (HK_ACC)1 - e : (HK_ACC)0) + off;
        dx[c * s] = (T)((HK_ACC)scale * (exp((HK_ACC)x[c * s] - m) * inv - t));
    }
}

/* Bilinear source coordinate of output index dst along an axis of input
 * size in and output size out (RESIZE_BILINEAR).  Writes the two source
 * indices and the weight of the second one. */
DEVFN void FN(hk_bilinear_src)(hk_idx dst, hk_idx in, hk_idx out, int align_corners,
                               hk_idx *i0, hk_idx *i1, T *lambda)
{
    HK_ACC src;
    if (align_corners) {
        src = out > 1 ? (HK_ACC)dst * (HK_ACC)(in - 1) / (HK_ACC)(out - 1) : (HK_ACC)0;
    } else {
        src = ((HK_ACC)dst + (HK_ACC)0.5) * (HK_ACC)in / (HK_ACC)out - (HK_ACC)0.5;
        if (src < (HK_ACC)0) src = (HK_ACC)0;
    }
    hk_idx a = (hk_idx)src; /* src >= 0: truncation is floor */
    if (a > in - 1) a = in - 1;
    *i0 = a;
    *i1 = a + 1 < in ? a + 1 : in - 1;
    *lambda = (T)(src - (HK_ACC)a);
}

/* Triplet distance d(i,j) = sqrt(max(|xi|^2 + |xj|^2 - 2 xi.xj, 1e-12)); also
 * returns the clamped-away flag: 1 when q < 1e-12, where dd/dq = 0 (torch's
 * clamp passes the gradient at q == 1e-12). */
DEVFN T FN(hk_pair_dist)(const GLOBAL T *xi, const GLOBAL T *xj, hk_idx d, int *clamped)
{
    HK_ACC ii = (HK_ACC)0, jj = (HK_ACC)0, ij = (HK_ACC)0;
    for (hk_idx k = 0; k < d; k++) {
        HK_ACC a = (HK_ACC)xi[k], b = (HK_ACC)xj[k];
        ii += a * a;
        jj += b * b;
        ij += a * b;
    }
    HK_ACC q = ii + jj - (HK_ACC)2 * ij;
    *clamped = !(q >= (HK_ACC)1e-12);
    return (T)sqrt(*clamped ? (HK_ACC)1e-12 : q);
}

/* ADAM_STEP on one element (torch.optim.Adam).  step_size = lr/(1-b1^t),
 * bc2_sqrt = sqrt(1-b2^t), both computed by the host in double. */
DEVFN void FN(hk_adam)(T grad, T *param, T *m, T *v, HK_ACC b1, HK_ACC b2, HK_ACC step_size,
                       HK_ACC bc2_sqrt, HK_ACC eps, HK_ACC wd)
{
    HK_ACC g = (HK_ACC)grad + wd * (HK_ACC)*param;
    HK_ACC mm = b1 * (HK_ACC)*m + ((HK_ACC)1 - b1) * g;
    HK_ACC vv = b2 * (HK_ACC)*v + ((HK_ACC)1 - b2) * g * g;
    *m = (T)mm;
    *v = (T)vv;
    *param = (T)((HK_ACC)*param - step_size * mm / (sqrt(vv) / bc2_sqrt + eps));
}

/* SGD_STEP on one element (torch.optim.SGD with momentum, no dampening). */
DEVFN void FN(hk_sgd)(T grad, T *param, T *buf, HK_ACC lr, HK_ACC momentum, HK_ACC wd,
                      int first)
{
    HK_ACC g = (HK_ACC)grad + wd * (HK_ACC)*param;
    HK_ACC b = first ? g : momentum * (HK_ACC)*buf + g;
    *buf = (T)b;
    *param = (T)((HK_ACC)*param - lr * b);
}
