/*
 * ocl_blas.c - GEMM and 2-D convolution through CLBlast.
 *
 * GEMM: CLBlast{S,D}gemmWithTempBuffer with a temp buffer cached in the
 * backend (no hidden allocation per call).
 *
 * Convolution (groups = 1) is lowered to GEMM, per image n (im2col and
 * col2im from kernels/conv.cl, or CLBlast's with im2col=clblast):
 *   forward      col = im2col(x[n])            y[n]  = w[K,CRS] * col[CRS,PQ]
 *   backward dx  col = w^T[CRS,K] * dy[n]      dx[n] = col2im(col)
 *   backward dw  col = im2col(x[n])            dw   += dy[n][K,PQ] * col^T
 * A 1x1 convolution with stride 1 and no padding skips im2col/col2im (col is
 * x[n] itself).  The dw sum over the batch runs in image order with beta = 1
 * after the first image, so it is deterministic.  With the option
 * conv=batched, forward and backward-data im2col several images into the
 * workspace and run one CLBlast{S,D}gemmStridedBatched per chunk instead.
 *
 * bf16 / f16 calls (ABI 1.1) run as the f32 op on f32 copies of their
 * tensors: half_via_f32() below.
 */
#include "ocl_internal.h" /* first: it fixes CL_TARGET_OPENCL_VERSION */

#include <stdio.h>
#include <string.h>

#include <clblast_c.h>

#define TRY(expr)                                                                              \
    do {                                                                                       \
        hcga_status s_ = (expr);                                                               \
        if (s_ != HCGA_OK) return s_;                                                          \
    } while (0)

static hcga_status blast_fail(hcga_backend *be, CLBlastStatusCode st, const char *call)
{
    return ocl_cl_fail(be, (cl_int)st, call);
}

static CLBlastTranspose tr(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

/* Dense copy of n elements with conversion (plain copy kernel, 1-D). */
static hcga_status convert(hcga_backend *be, int k, cl_mem src, size_t so, cl_mem dst, size_t dso,
                           size_t n)
{
    ocl_launch l;
    ocl_begin(&l, be, be->plain[k], "copy", HCGA_F32);
    ocl_arg_mem(&l, src);
    ocl_arg_long(&l, (int64_t)so);
    ocl_arg_mem(&l, dst);
    ocl_arg_long(&l, (int64_t)dso);
    ocl_arg_long(&l, (int64_t)n);
    for (int d = 1; d < 5; d++) ocl_arg_long(&l, 1);
    for (int i = 0; i < 2; i++)
        for (int d = 0; d < 5; d++) ocl_arg_long(&l, 1);
    return ocl_run(&l, n, 0);
}

static hcga_status gemm_raw(hcga_backend *be, int dt, int ta, int tb, size_t m, size_t n,
                            size_t k, double alpha, cl_mem A, size_t ao, size_t lda, cl_mem B,
                            size_t bo, size_t ldb, double beta, cl_mem C, size_t co, size_t ldc);

/* Row-major C[m,n] = alpha*op(A)*op(B) + beta*C, offsets and lds in elements.
 * With gemm=double, an f32 problem runs as DGEMM on f64 copies of the
 * operands (the copies are dense: ld = row length). */
static hcga_status gemm(hcga_backend *be, int dt, int ta, int tb, size_t m, size_t n, size_t k,
                        double alpha, cl_mem A, size_t ao, size_t lda, cl_mem B, size_t bo,
                        size_t ldb, double beta, cl_mem C, size_t co, size_t ldc)
{
    if (dt != HCGA_F32 || !be->gemm_double)
        return gemm_raw(be, dt, ta, tb, m, n, k, alpha, A, ao, lda, B, bo, ldb, beta, C, co, ldc);
    size_t ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
    size_t na = ra * ca, nb = rb * cb, nc = m * n;
    TRY(ocl_ensure(be, &be->dtmp, &be->dtmp_size, (na + nb + nc) * sizeof(double),
                   "gemm=double operands"));
    size_t da = 0, db = na, dc = na + nb;
    for (size_t r = 0; r < ra; r++)
        if (lda == ca && r == 0) {
            TRY(convert(be, KP_copy_f32_f64, A, ao, be->dtmp, da, na));
            break;
        } else
            TRY(convert(be, KP_copy_f32_f64, A, ao + r * lda, be->dtmp, da + r * ca, ca));
    for (size_t r = 0; r < rb; r++)
        if (ldb == cb && r == 0) {
            TRY(convert(be, KP_copy_f32_f64, B, bo, be->dtmp, db, nb));
            break;
        } else
            TRY(convert(be, KP_copy_f32_f64, B, bo + r * ldb, be->dtmp, db + r * cb, cb));
    if (beta != 0.0) {
        for (size_t r = 0; r < m; r++)
            if (ldc == n && r == 0) {
                TRY(convert(be, KP_copy_f32_f64, C, co, be->dtmp, dc, nc));
                break;
            } else
                TRY(convert(be, KP_copy_f32_f64, C, co + r * ldc, be->dtmp, dc + r * n, n));
    }
    TRY(gemm_raw(be, HCGA_F64, ta, tb, m, n, k, alpha, be->dtmp, da, ca, be->dtmp, db, cb, beta,
                 be->dtmp, dc, n));
    for (size_t r = 0; r < m; r++)
        if (ldc == n && r == 0) {
            TRY(convert(be, KP_copy_f64_f32, be->dtmp, dc, C, co, nc));
            break;
        } else
            TRY(convert(be, KP_copy_f64_f32, be->dtmp, dc + r * n, C, co + r * ldc, n));
    return HCGA_OK;
}

static hcga_status gemm_raw(hcga_backend *be, int dt, int ta, int tb, size_t m, size_t n, size_t k,
                        double alpha, cl_mem A, size_t ao, size_t lda, cl_mem B, size_t bo,
                        size_t ldb, double beta, cl_mem C, size_t co, size_t ldc)
{
    size_t tmp = 0;
    CLBlastStatusCode st;
    if (dt == HCGA_F64)
        st = CLBlastDGemmTempBufferSize(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, ao, lda,
                                        bo, ldb, co, ldc, &be->queue, &tmp);
    else
        st = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, ao, lda,
                                        bo, ldb, co, ldc, &be->queue, &tmp);
    if (st != CLBlastSuccess)
        return blast_fail(be, st, dt == HCGA_F64 ? "CLBlastDGemmTempBufferSize"
                                                 : "CLBlastSGemmTempBufferSize");
    /* the size is in bytes (checked: CLBlastInsufficientMemoryTemp below it) */
    TRY(ocl_ensure(be, &be->gemm_tmp, &be->gemm_tmp_size, tmp ? tmp : 1, "gemm temp"));
    if (dt == HCGA_F64)
        st = CLBlastDgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, A,
                                        ao, lda, B, bo, ldb, beta, C, co, ldc, &be->queue, NULL,
                                        be->gemm_tmp);
    else
        st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k,
                                        (float)alpha, A, ao, lda, B, bo, ldb, (float)beta, C, co,
                                        ldc, &be->queue, NULL, be->gemm_tmp);
    if (st != CLBlastSuccess)
        return blast_fail(be, st, dt == HCGA_F64 ? "CLBlastDgemmWithTempBuffer"
                                                 : "CLBlastSgemmWithTempBuffer");
    return HCGA_OK;
}

/* Strided-batched GEMM over count problems. */
static hcga_status gemm_batched(hcga_backend *be, int dt, int ta, int tb, size_t m, size_t n,
                                size_t k, double alpha, cl_mem A, size_t ao, size_t lda,
                                size_t as, cl_mem B, size_t bo, size_t ldb, size_t bs,
                                double beta, cl_mem C, size_t co, size_t ldc, size_t cs,
                                size_t count)
{
    CLBlastStatusCode st;
    if (dt == HCGA_F64)
        st = CLBlastDgemmStridedBatched(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, A,
                                        ao, lda, as, B, bo, ldb, bs, beta, C, co, ldc, cs, count,
                                        &be->queue, NULL);
    else
        st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k,
                                        (float)alpha, A, ao, lda, as, B, bo, ldb, bs,
                                        (float)beta, C, co, ldc, cs, count, &be->queue, NULL);
    if (st != CLBlastSuccess)
        return blast_fail(be, st, dt == HCGA_F64 ? "CLBlastDgemmStridedBatched"
                                                 : "CLBlastSgemmStridedBatched");
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* Half (bf16 / f16) convolutions and GEMM                                   */
/* ------------------------------------------------------------------------ */

typedef hcga_status (*blas_impl_fn)(hcga_backend *be, const hcga_op_args *a,
                                    const hcga_checked *ck);

/* A half call run as the f32 op, as the ABI defines it: every half input
 * is widened (exactly) into an f32 copy in be->half_ws, the f32
 * implementation runs on the copies (so products accumulate in f32 from
 * the exact half values; alpha, beta and the bias apply in f32), and each
 * f32 output is rounded once into the caller's half tensor (kernels/half.cl,
 * nearest even).  The f32 outputs get their own region, so GEMM's c == y
 * becomes c apart from y, which the f32 GEMM handles. */
static hcga_status half_via_f32(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                                blas_impl_fn impl)
{
    const int hd = ck->dtype, nin = a->num_in, nout = a->num_out;
    hcga_op_args fa = *a;
    hcga_tensor ft[HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT];
    int64_t off[HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT]; /* f32 element offset of each copy */
    size_t used = 0;
    for (int s = 0; s < nin + nout; s++) {
        const hcga_tensor *t = s < nin ? a->in[s] : a->out[s - nin];
        off[s] = -1;
        if (!t) continue;
        used = (used + 255) / 256 * 256; /* each copy 256-byte aligned */
        off[s] = (int64_t)(used / sizeof(float));
        used += (size_t)hcga_tensor_numel(t) * sizeof(float);
    }
    TRY(ocl_ensure(be, &be->half_ws, &be->half_ws_size, used ? used : 1, "half f32 copies"));
    struct hcga_buffer hb = {be->half_ws, be->half_ws_size};
    for (int s = 0; s < nin + nout; s++) {
        const hcga_tensor *t = s < nin ? a->in[s] : a->out[s - nin];
        if (!t) continue;
        ft[s] = *t;
        ft[s].buf = &hb;
        ft[s].offset = (uint64_t)off[s] * sizeof(float);
        ft[s].dtype = HCGA_F32;
        if (s < nin) {
            fa.in[s] = &ft[s];
            TRY(ocl_cast_dense(be, t->buf->mem, ocl_eoff(t), hd, be->half_ws, off[s], HCGA_F32,
                               hcga_tensor_numel(t)));
        } else {
            fa.out[s - nin] = &ft[s];
        }
    }
    hcga_checked fck = *ck;
    fck.dtype = HCGA_F32;
    TRY(impl(be, &fa, &fck));
    for (int o = 0; o < nout; o++) {
        const hcga_tensor *t = a->out[o];
        if (t)
            TRY(ocl_cast_dense(be, be->half_ws, off[nin + o], HCGA_F32, t->buf->mem, ocl_eoff(t),
                               hd, hcga_tensor_numel(t)));
    }
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* GEMM op                                                                   */
/* ------------------------------------------------------------------------ */

/* y[M,N] = alpha*op(a)*op(b) + beta*c; c is absent, y itself (same buffer
 * and offset) or apart from y (the contract refuses a partial overlap). */
hcga_status ocl_impl_GEMM(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    if (hcga_dtype_is_half(ck->dtype)) return half_via_f32(be, a, ck, ocl_impl_GEMM);
    const hcga_tensor *A = a->in[0], *B = a->in[1], *Y = a->out[0];
    const hcga_tensor *C = a->num_in > 2 ? a->in[2] : NULL;
    int dt = ck->dtype;
    int ta = a->p.gemm.trans_a != 0, tb = a->p.gemm.trans_b != 0;
    int64_t m = ck->gemm_M, n = ck->gemm_N, k = ck->gemm_K;
    size_t es = hcga_dtype_size(dt);
    double alpha = a->p.gemm.alpha, beta = C ? a->p.gemm.beta : 0.0;
    if (m == 0 || n == 0) return HCGA_OK;
    size_t ybytes = (size_t)(m * n) * es;
    if (C && !(C->buf == Y->buf && C->offset == Y->offset)) {
        if (beta != 0.0)
            OCL_CHECK(be, clEnqueueCopyBuffer(be->queue, C->buf->mem, Y->buf->mem, C->offset,
                                              Y->offset, ybytes, 0, NULL, NULL),
                      "clEnqueueCopyBuffer c to y");
    }
    /* CLBlast does not read C when beta is 0 (IsZero(beta) in its store
     * paths; checked with NaN-filled C on the direct and indirect kernels),
     * so y needs no clearing before a GEMM with beta = 0. */
    if (k == 0) {
        /* op(a)*op(b) is empty: y = beta*c, and y already holds c */
        if (beta == 0.0) return ocl_fill(be, Y->buf->mem, Y->offset, ybytes, dt, 0.0);
        if (beta == 1.0) return HCGA_OK;
        ocl_launch l;
        ocl_begin(&l, be, ocl_kt(be, dt, KT_binary_same), "binary_same", dt);
        ocl_arg_tensor(&l, Y);
        ocl_arg_tensor(&l, Y);
        ocl_arg_tensor(&l, Y);
        ocl_arg_long(&l, m * n);
        ocl_arg_int(&l, 0); /* y = beta*y + 0*y */
        ocl_arg_real(&l, beta);
        ocl_arg_real(&l, 0.0);
        return ocl_run(&l, (size_t)(m * n), 0);
    }
    return gemm(be, dt, ta, tb, (size_t)m, (size_t)n, (size_t)k, alpha, A->buf->mem,
                (size_t)ocl_eoff(A), (size_t)A->shape[1], B->buf->mem, (size_t)ocl_eoff(B),
                (size_t)B->shape[1], beta, Y->buf->mem, (size_t)ocl_eoff(Y), (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* Convolution                                                               */
/* ------------------------------------------------------------------------ */

typedef struct conv_geom {
    int64_t n, c, h, w, k, r, s, p, q;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t crs, pq, hw;
    int is1x1; /* 1x1, stride 1, no padding: col == x[n] */
} conv_geom;

/* The launch geometry from the checker's convolution dims. */
static void conv_geometry(const hcga_conv_dims *d, conv_geom *g)
{
    g->n = d->N;
    g->c = d->C;
    g->h = d->H;
    g->w = d->W;
    g->k = d->K;
    g->r = d->R;
    g->s = d->S;
    g->p = d->P;
    g->q = d->Q;
    g->sh = d->sh;
    g->sw = d->sw;
    g->ph = d->ph;
    g->pw = d->pw;
    g->dh = d->dh;
    g->dw = d->dw;
    g->crs = g->c * g->r * g->s;
    g->pq = g->p * g->q;
    g->hw = g->h * g->w;
    g->is1x1 = g->r == 1 && g->s == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* conv.cl's im2col / col2im arguments after (src, so, dst, dso): the
 * geometry; im2col also takes C. */
static void geom_args(ocl_launch *l, const conv_geom *g, int with_c)
{
    if (with_c) ocl_arg_long(l, g->c);
    ocl_arg_long(l, g->h);
    ocl_arg_long(l, g->w);
    ocl_arg_long(l, g->p);
    ocl_arg_long(l, g->q);
    ocl_arg_long(l, g->r);
    ocl_arg_long(l, g->s);
    ocl_arg_long(l, g->sh);
    ocl_arg_long(l, g->sw);
    ocl_arg_long(l, g->ph);
    ocl_arg_long(l, g->pw);
    ocl_arg_long(l, g->dh);
    ocl_arg_long(l, g->dw);
}

static hcga_status im2col(hcga_backend *be, int dt, const conv_geom *g, cl_mem x, size_t xo,
                          cl_mem col, size_t co)
{
    if (!be->im2col_clblast) {
        ocl_launch l;
        ocl_begin(&l, be, ocl_kt(be, dt, KT_im2col), "im2col", dt);
        ocl_arg_mem(&l, x);
        ocl_arg_long(&l, (int64_t)xo);
        ocl_arg_mem(&l, col);
        ocl_arg_long(&l, (int64_t)co);
        geom_args(&l, g, 1);
        return ocl_run_nd(&l, 3, (size_t)g->pq, (size_t)(g->r * g->s), (size_t)g->c);
    }
    CLBlastStatusCode st;
    if (dt == HCGA_F64)
        st = CLBlastDim2col(CLBlastKernelModeCrossCorrelation, g->c, g->h, g->w, g->r, g->s,
                            g->ph, g->pw, g->sh, g->sw, g->dh, g->dw, x, xo, col, co,
                            &be->queue, NULL);
    else
        st = CLBlastSim2col(CLBlastKernelModeCrossCorrelation, g->c, g->h, g->w, g->r, g->s,
                            g->ph, g->pw, g->sh, g->sw, g->dh, g->dw, x, xo, col, co,
                            &be->queue, NULL);
    if (st != CLBlastSuccess)
        return blast_fail(be, st, dt == HCGA_F64 ? "CLBlastDim2col" : "CLBlastSim2col");
    return HCGA_OK;
}

/* x = col2im(col): conv.cl's gathers and overwrites x; CLBlast's
 * accumulates into x, which the caller has then zeroed. */
static hcga_status col2im(hcga_backend *be, int dt, const conv_geom *g, cl_mem col, size_t co,
                          cl_mem x, size_t xo)
{
    if (!be->im2col_clblast) {
        ocl_launch l;
        ocl_begin(&l, be, ocl_kt(be, dt, KT_col2im), "col2im", dt);
        ocl_arg_mem(&l, col);
        ocl_arg_long(&l, (int64_t)co);
        ocl_arg_mem(&l, x);
        ocl_arg_long(&l, (int64_t)xo);
        geom_args(&l, g, 0);
        return ocl_run_nd(&l, 3, (size_t)g->w, (size_t)g->h, (size_t)g->c);
    }
    CLBlastStatusCode st;
    if (dt == HCGA_F64)
        st = CLBlastDcol2im(CLBlastKernelModeCrossCorrelation, g->c, g->h, g->w, g->r, g->s,
                            g->ph, g->pw, g->sh, g->sw, g->dh, g->dw, col, co, x, xo,
                            &be->queue, NULL);
    else
        st = CLBlastScol2im(CLBlastKernelModeCrossCorrelation, g->c, g->h, g->w, g->r, g->s,
                            g->ph, g->pw, g->sh, g->sw, g->dh, g->dw, col, co, x, xo,
                            &be->queue, NULL);
    if (st != CLBlastSuccess)
        return blast_fail(be, st, dt == HCGA_F64 ? "CLBlastDcol2im" : "CLBlastScol2im");
    return HCGA_OK;
}

/* Images per im2col chunk in batched mode (at least 1), and makes sure the
 * workspace holds that many columns. */
static hcga_status col_workspace(hcga_backend *be, int dt, const conv_geom *g, int batched,
                                 int64_t *per_chunk)
{
    size_t one = (size_t)(g->crs * g->pq) * hcga_dtype_size(dt);
    int64_t b = 1;
    if (batched && one > 0) {
        b = (int64_t)(be->ws_cap / one);
        if (b < 1) b = 1;
        if (b > g->n) b = g->n;
    }
    *per_chunk = b;
    return ocl_ensure(be, &be->ws, &be->ws_size, one * (size_t)b, "im2col workspace");
}

static hcga_status bias_add(hcga_backend *be, int dt, const hcga_tensor *y,
                            const hcga_tensor *bias, const conv_geom *g)
{
    ocl_launch l;
    ocl_begin(&l, be, ocl_kt(be, dt, KT_bias_add), "bias_add", dt);
    ocl_arg_tensor(&l, y);
    ocl_arg_tensor(&l, bias);
    ocl_arg_long(&l, g->k);
    ocl_arg_long(&l, g->pq);
    return ocl_run_nd(&l, 3, (size_t)g->pq, (size_t)g->k, (size_t)g->n);
}

hcga_status ocl_impl_CONV2D_FWD(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)
{
    if (hcga_dtype_is_half(ck->dtype)) return half_via_f32(be, a, ck, ocl_impl_CONV2D_FWD);
    const hcga_tensor *x = a->in[HCGA_CONV_X], *w = a->in[HCGA_CONV_W], *y = a->out[0];
    const hcga_tensor *bias = a->num_in > HCGA_CONV_BIAS ? a->in[HCGA_CONV_BIAS] : NULL;
    int dt = ck->dtype;
    conv_geom g;
    conv_geometry(&ck->conv, &g);
    size_t es = hcga_dtype_size(dt);
    if (g.n == 0 || g.k == 0 || g.pq == 0) return HCGA_OK;
    if (g.crs == 0)
        TRY(ocl_fill(be, y->buf->mem, y->offset, (size_t)(g.n * g.k * g.pq) * es, dt, 0.0));
    else if (g.is1x1) {
        for (int64_t n = 0; n < g.n; n++)
            TRY(gemm(be, dt, 0, 0, g.k, g.pq, g.c, 1.0, w->buf->mem, ocl_eoff(w), g.c,
                     x->buf->mem, ocl_eoff(x) + n * g.c * g.hw, g.pq, 0.0, y->buf->mem,
                     ocl_eoff(y) + n * g.k * g.pq, g.pq));
    } else {
        int64_t chunk;
        TRY(col_workspace(be, dt, &g, be->conv_batched && !be->gemm_double, &chunk));
        for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
            int64_t cnt = g.n - n0 < chunk ? g.n - n0 : chunk;
            for (int64_t i = 0; i < cnt; i++)
                TRY(im2col(be, dt, &g, x->buf->mem, ocl_eoff(x) + (n0 + i) * g.c * g.hw, be->ws,
                           i * g.crs * g.pq));
            size_t yo = ocl_eoff(y) + n0 * g.k * g.pq;
            if (cnt == 1)
                TRY(gemm(be, dt, 0, 0, g.k, g.pq, g.crs, 1.0, w->buf->mem, ocl_eoff(w), g.crs,
                         be->ws, 0, g.pq, 0.0, y->buf->mem, yo, g.pq));
            else
                TRY(gemm_batched(be, dt, 0, 0, g.k, g.pq, g.crs, 1.0, w->buf->mem, ocl_eoff(w),
                                 g.crs, 0, be->ws, 0, g.pq, g.crs * g.pq, 0.0, y->buf->mem, yo,
                                 g.pq, g.k * g.pq, cnt));
        }
    }
    if (bias) TRY(bias_add(be, dt, y, bias, &g));
    return HCGA_OK;
}

hcga_status ocl_impl_CONV2D_BWD_DATA(hcga_backend *be, const hcga_op_args *a,
                                     const hcga_checked *ck)
{
    if (hcga_dtype_is_half(ck->dtype)) return half_via_f32(be, a, ck, ocl_impl_CONV2D_BWD_DATA);
    const hcga_tensor *dy = a->in[0], *w = a->in[1], *dx = a->out[0];
    int dt = ck->dtype;
    conv_geom g; /* of the forward pass: x = dx, y = dy */
    conv_geometry(&ck->conv, &g);
    size_t es = hcga_dtype_size(dt);
    if (g.n == 0 || g.c == 0 || g.hw == 0) return HCGA_OK;
    if (g.k == 0 || g.pq == 0)
        return ocl_fill(be, dx->buf->mem, dx->offset, (size_t)(g.n * g.c * g.hw) * es, dt, 0.0);
    if (g.is1x1) {
        for (int64_t n = 0; n < g.n; n++)
            TRY(gemm(be, dt, 1, 0, g.c, g.pq, g.k, 1.0, w->buf->mem, ocl_eoff(w), g.c,
                     dy->buf->mem, ocl_eoff(dy) + n * g.k * g.pq, g.pq, 0.0, dx->buf->mem,
                     ocl_eoff(dx) + n * g.c * g.hw, g.hw));
        return HCGA_OK;
    }
    if (be->im2col_clblast)
        TRY(ocl_fill(be, dx->buf->mem, dx->offset, (size_t)(g.n * g.c * g.hw) * es, dt, 0.0));
    int64_t chunk;
    TRY(col_workspace(be, dt, &g, be->conv_batched && !be->gemm_double, &chunk));
    for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
        int64_t cnt = g.n - n0 < chunk ? g.n - n0 : chunk;
        size_t dyo = ocl_eoff(dy) + n0 * g.k * g.pq;
        if (cnt == 1)
            TRY(gemm(be, dt, 1, 0, g.crs, g.pq, g.k, 1.0, w->buf->mem, ocl_eoff(w), g.crs,
                     dy->buf->mem, dyo, g.pq, 0.0, be->ws, 0, g.pq));
        else
            TRY(gemm_batched(be, dt, 1, 0, g.crs, g.pq, g.k, 1.0, w->buf->mem, ocl_eoff(w), g.crs,
                             0, dy->buf->mem, dyo, g.pq, g.k * g.pq, 0.0, be->ws, 0, g.pq,
                             g.crs * g.pq, cnt));
        for (int64_t i = 0; i < cnt; i++)
            TRY(col2im(be, dt, &g, be->ws, i * g.crs * g.pq, dx->buf->mem,
                       ocl_eoff(dx) + (n0 + i) * g.c * g.hw));
    }
    return HCGA_OK;
}

hcga_status ocl_impl_CONV2D_BWD_FILTER(hcga_backend *be, const hcga_op_args *a,
                                       const hcga_checked *ck)
{
    if (hcga_dtype_is_half(ck->dtype)) return half_via_f32(be, a, ck, ocl_impl_CONV2D_BWD_FILTER);
    const hcga_tensor *x = a->in[0], *dy = a->in[1], *dw = a->out[0];
    const hcga_tensor *db = a->num_out > 1 ? a->out[1] : NULL;
    int dt = ck->dtype;
    conv_geom g;
    conv_geometry(&ck->conv, &g);
    size_t es = hcga_dtype_size(dt);
    if (g.k == 0) return HCGA_OK;
    if (db) {
        int64_t xs[5] = {1, g.n, g.k, g.p, g.q}, ys[5] = {1, 1, g.k, 1, 1};
        TRY(ocl_sum_to5(be, dt, dy, xs, db, ys, 1.0));
    }
    if (g.crs == 0) return HCGA_OK;
    if (g.n == 0 || g.pq == 0)
        return ocl_fill(be, dw->buf->mem, dw->offset, (size_t)(g.k * g.crs) * es, dt, 0.0);
    if (!g.is1x1) TRY(ocl_ensure(be, &be->ws, &be->ws_size, (size_t)(g.crs * g.pq) * es,
                                 "im2col workspace"));
    for (int64_t n = 0; n < g.n; n++) {
        cl_mem col = x->buf->mem;
        size_t co = ocl_eoff(x) + n * g.c * g.hw;
        if (!g.is1x1) {
            TRY(im2col(be, dt, &g, x->buf->mem, co, be->ws, 0));
            col = be->ws;
            co = 0;
        }
        TRY(gemm(be, dt, 0, 1, g.k, g.crs, g.pq, 1.0, dy->buf->mem,
                 ocl_eoff(dy) + n * g.k * g.pq, g.pq, col, co, g.pq, n == 0 ? 0.0 : 1.0,
                 dw->buf->mem, ocl_eoff(dw), g.crs));
    }
    return HCGA_OK;
}
