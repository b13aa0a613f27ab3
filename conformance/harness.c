/*
 * harness.c - materialise a shape-file case: deterministic inputs, outputs
 * prefilled with NaN inside guard regions, upload/run/read on a backend, and
 * the error metrics.
 */
#include "conf_internal.h"

#include <math.h>

#include "hcga_half.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

double conf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

uint64_t conf_case_seed(uint64_t seed, int index)
{
    conf_rng r = {seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(index + 1))};
    conf_rng_next(&r);
    return conf_rng_next(&r);
}

int conf_is_float(int dtype) { return hcga_dtype_is_float(dtype); }

/* v to the nearest float (ties to even).  Beyond the midpoint between
 * FLT_MAX and 2^128 the nearest even is +-Inf (FLT_MAX's significand is
 * odd): spelled out rather than left to the conversion of a value outside
 * float's finite range. */
static double to_f32(double v)
{
    if (fabs(v) >= 0x1.ffffffp+127) return copysign(INFINITY, v);
    return (double)(float)v;
}

double conf_round_dtype(int dtype, double v)
{
    switch (dtype) {
    case HCGA_F32: return to_f32(v);
    case HCGA_F64: return v;
    case HCGA_BF16:
    case HCGA_F16: return (double)hcga_half_to_f32(dtype, hcga_half_from_f64(dtype, v));
    default: return nearbyint(v);
    }
}

uint64_t conf_value_bits(int dtype, double v)
{
    switch (dtype) {
    case HCGA_F32: return hcga_f32_bits((float)to_f32(v));
    case HCGA_F64: {
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        return u;
    }
    case HCGA_BF16:
    case HCGA_F16: return hcga_half_from_f64(dtype, v);
    default: return 0;
    }
}

int conf_case_home_dtype(const hcga_shape_case *c)
{
    if (c->op != HCGA_OP_CAST) return -1;
    static const int order[] = {HCGA_F16, HCGA_BF16, HCGA_F32, HCGA_F64};
    for (int o = 0; o < 4; o++) {
        for (int k = 0; k < c->num_in; k++)
            if (c->in[k].present && c->in[k].dtype == order[o]) return order[o];
        for (int k = 0; k < c->num_out; k++)
            if (c->out[k].present && c->out[k].dtype == order[o]) return order[o];
    }
    return HCGA_F32;
}

int conf_case_applies(const hcga_shape_case *c, int dtype)
{
    if (c->op == HCGA_OP_CAST) return conf_case_home_dtype(c) == dtype;
    if (hcga_dtype_is_half(dtype)) {
        const hcga_op_info *info = hcga_op_get_info(c->op);
        return info && info->half;
    }
    return 1;
}

int64_t conf_numel(const hcga_shape_tensor *s)
{
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

int64_t conf_extent(const hcga_shape_tensor *s)
{
    if (conf_numel(s) == 0) return 0;
    int64_t e = 1;
    for (int d = 0; d < s->ndim; d++) e += (s->shape[d] - 1) * s->stride[d];
    return e;
}

void conf_view_offsets(const hcga_shape_tensor *s, int64_t *offs)
{
    int64_t n = conf_numel(s);
    int64_t idx[HCGA_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t o = 0;
        for (int d = 0; d < s->ndim; d++) o += idx[d] * s->stride[d];
        offs[i] = o;
        for (int d = s->ndim - 1; d >= 0; d--) {
            if (++idx[d] < s->shape[d]) break;
            idx[d] = 0;
        }
    }
}

void conf_fmt_index(const hcga_shape_tensor *s, int64_t flat, char *buf, size_t len)
{
    int64_t idx[HCGA_MAX_DIMS];
    for (int d = s->ndim - 1; d >= 0; d--) {
        idx[d] = s->shape[d] ? flat % s->shape[d] : 0;
        flat = s->shape[d] ? flat / s->shape[d] : 0;
    }
    buf[0] = 0;
    append(buf, len, "[");
    for (int d = 0; d < s->ndim; d++) append(buf, len, "%s%lld", d ? "," : "", (long long)idx[d]);
    append(buf, len, "]");
}

/* ---- generation -------------------------------------------------------- */

static void finish(conf_tensor *t)
{
    for (int64_t i = 0; i < t->extent; i++) t->host[i] = conf_round_dtype(t->s.dtype, t->host[i]);
}

static void fill_unif(conf_tensor *t, conf_rng *r, double lo, double hi)
{
    for (int64_t i = 0; i < t->extent; i++) t->host[i] = conf_rng_range(r, lo, hi);
    finish(t);
}

/* uniform in [c-1, c+1] but at least `gap` away from c */
static void fill_away(conf_tensor *t, conf_rng *r, double c, double gap)
{
    for (int64_t i = 0; i < t->extent; i++) {
        double u = conf_rng_range(r, gap, 1.0);
        t->host[i] = (conf_rng_next(r) & 1) ? c + u : c - u;
    }
    finish(t);
}

/* dims: outer (before dim 1), C (dim 1), inner (after dim 1) */
static void split_dims(const hcga_shape_tensor *s, int64_t *outer, int64_t *c, int64_t *inner)
{
    *outer = s->ndim > 0 ? s->shape[0] : 1;
    *c = s->ndim > 1 ? s->shape[1] : 1;
    *inner = 1;
    for (int d = 2; d < s->ndim; d++) *inner *= s->shape[d];
}

/* Activations with per-channel offsets and scales, as BN sees them. */
static void fill_bn_x(conf_tensor *t, conf_rng *r)
{
    int64_t outer, C, inner;
    split_dims(&t->s, &outer, &C, &inner);
    double *shift = malloc((size_t)(C ? C : 1) * sizeof *shift);
    double *scale = malloc((size_t)(C ? C : 1) * sizeof *scale);
    for (int64_t c = 0; c < C; c++) {
        shift[c] = conf_rng_range(r, -1.0, 1.0);
        scale[c] = conf_rng_range(r, 0.5, 2.0);
    }
    for (int64_t i = 0; i < t->extent; i++) {
        int64_t c = (i / inner) % C;
        t->host[i] = shift[c] + scale[c] * conf_rng_range(r, -1.0, 1.0);
    }
    free(shift);
    free(scale);
    finish(t);
}

/* x = in[0] as [outer, C, inner]: C and the values per channel m, after
 * checking that the [C] inputs in[first..last] have C elements. */
static int bn_dims(const conf_case *cc, int first, int last, int64_t *C, int64_t *m, char *err,
                   size_t err_len)
{
    const conf_tensor *x = &cc->in[0];
    int64_t outer, inner;
    split_dims(&x->s, &outer, C, &inner);
    for (int k = first; k <= last; k++)
        if (cc->in[k].extent < *C || x->extent != outer * *C * inner)
            return set_err(err, err_len, "%s: in[%d] needs %lld elements", hcga_op_name(cc->c.op),
                           k, (long long)*C);
    *m = outer * inner;
    return 0;
}

/* x's value j of channel ch (j < m), x = [outer, C, inner]. */
static double bn_at(const conf_tensor *x, int64_t C, int64_t ch, int64_t j)
{
    int64_t outer, c, inner;
    split_dims(&x->s, &outer, &c, &inner);
    (void)outer;
    (void)c;
    return x->host[((j / inner) * C + ch) * inner + j % inner];
}

/* BN_BWD / BN_BWD_FROM_STATS: in[3], in[4] = save_mean, save_invstd of x = in[0]. */
static int fill_bn_saved(conf_case *cc, double eps, char *err, size_t err_len)
{
    const conf_tensor *x = &cc->in[0];
    int64_t C, m;
    if (bn_dims(cc, 3, 4, &C, &m, err, err_len)) return -1;
    for (int64_t ch = 0; ch < C; ch++) {
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < m; j++) s += bn_at(x, C, ch, j);
        double mean = m ? s / (double)m : 0.0;
        for (int64_t j = 0; j < m; j++) {
            double dv = bn_at(x, C, ch, j) - mean;
            s2 += dv * dv;
        }
        cc->in[3].host[ch] = mean;
        cc->in[4].host[ch] = 1.0 / sqrt((m ? s2 / (double)m : 0.0) + eps);
    }
    finish(&cc->in[3]);
    finish(&cc->in[4]);
    return 0;
}

/* BN_FWD_FROM_STATS: in[3], in[4] = sum and sumsq of a batch of `count`
 * values per channel of which x's m are one part; the other parts' values
 * are x's values of that channel, cycled, plus noise in [-0.5, 0.5) (values
 * in [-1, 1) when x is empty).  A real batch, so the variance is >= 0. */
static int fill_bn_sums(conf_case *cc, conf_rng *r, int64_t count, char *err, size_t err_len)
{
    const conf_tensor *x = &cc->in[0];
    int64_t C, m;
    if (bn_dims(cc, 3, 4, &C, &m, err, err_len)) return -1;
    for (int64_t ch = 0; ch < C; ch++) {
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < count || j < m; j++) {
            double v = j < m ? bn_at(x, C, ch, j)
                       : m ? bn_at(x, C, ch, j % m) + conf_rng_range(r, -0.5, 0.5)
                           : conf_rng_range(r, -1.0, 1.0);
            s += v;
            s2 += v * v;
        }
        cc->in[3].host[ch] = s;
        cc->in[4].host[ch] = s2;
    }
    finish(&cc->in[3]);
    finish(&cc->in[4]);
    return 0;
}

/* BN_BWD_FROM_STATS: in[5], in[6] = sum_dy and sum_dy_xhat over `count`
 * values per channel: this part's (dy = in[1], xhat from in[3], in[4]) and
 * the other parts', dy in [-1, 1) and xhat in [-1.7, 1.7). */
static int fill_bn_grad_sums(conf_case *cc, conf_rng *r, int64_t count, char *err, size_t err_len)
{
    const conf_tensor *x = &cc->in[0], *dy = &cc->in[1];
    int64_t C, m;
    if (bn_dims(cc, 5, 6, &C, &m, err, err_len)) return -1;
    if (dy->extent != x->extent)
        return set_err(err, err_len, "bn_bwd_from_stats: dy must have x's %lld elements",
                       (long long)x->extent);
    for (int64_t ch = 0; ch < C; ch++) {
        const double mean = cc->in[3].host[ch], invstd = cc->in[4].host[ch];
        double s = 0, sx = 0;
        for (int64_t j = 0; j < m; j++) {
            double d = bn_at(dy, C, ch, j);
            s += d;
            sx += d * (bn_at(x, C, ch, j) - mean) * invstd;
        }
        for (int64_t j = m; j < count; j++) {
            double d = conf_rng_range(r, -1.0, 1.0);
            s += d;
            sx += d * conf_rng_range(r, -1.7, 1.7);
        }
        cc->in[5].host[ch] = s;
        cc->in[6].host[ch] = sx;
    }
    finish(&cc->in[5]);
    finish(&cc->in[6]);
    return 0;
}

static void fill_labels(conf_tensor *t, conf_rng *r, int64_t ncls, int64_t ignore, double ignore_frac)
{
    for (int64_t i = 0; i < t->extent; i++) {
        if (ignore_frac > 0 && conf_rng_unif(r) < ignore_frac) t->host[i] = (double)ignore;
        else t->host[i] = (double)conf_rng_int(r, ncls > 0 ? ncls : 1);
    }
}

void conf_triplet_labels(int64_t n, conf_rng *r, int64_t *labels)
{
    int64_t k = n >= 16 ? 4 : 2;
    for (int64_t i = 0; i < n; i++) labels[i] = i / k;
    if (n > 1 && labels[n - 1] == 0)
        for (int64_t i = 0; i < n; i++) labels[i] = i;
    /* shuffle so that classes interleave (Fisher-Yates) */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = conf_rng_int(r, i + 1);
        int64_t tmp = labels[i];
        labels[i] = labels[j];
        labels[j] = tmp;
    }
}

static void triplet_labels_gen(const char *gen, int64_t n, conf_rng *r, int64_t *labels)
{
    if (strcmp(gen, "one_class") == 0) {
        for (int64_t i = 0; i < n; i++) labels[i] = 7;
    } else if (strcmp(gen, "singletons") == 0) {
        for (int64_t i = 0; i < n; i++) labels[i] = 3 * i + 1;
    } else {
        conf_triplet_labels(n, r, labels);
    }
}

static double tdist(const double *x, int64_t d, int64_t i, int64_t j)
{
    double ni = 0, nj = 0, dot = 0;
    for (int64_t k = 0; k < d; k++) {
        ni += x[i * d + k] * x[i * d + k];
        nj += x[j * d + k] * x[j * d + k];
        dot += x[i * d + k] * x[j * d + k];
    }
    double v = ni + nj - 2.0 * dot;
    return sqrt(v > 1e-12 ? v : 1e-12);
}

void conf_triplet_hard(const double *x, int64_t n, int64_t d, const int64_t *labels, int64_t *hard)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t p = -1, q = -1;
        double dp = -1.0, dq = 0.0;
        for (int64_t j = 0; j < n; j++) {
            double dij = tdist(x, d, i, j);
            if (labels[j] == labels[i]) {
                if (p < 0 || dij > dp) { p = j; dp = dij; }
            } else if (q < 0 || dij < dq) {
                q = j;
                dq = dij;
            }
        }
        hard[2 * i] = p;
        hard[2 * i + 1] = q;
    }
}

static const char *const gens_pixel[] = {"all_ignored", "no_ignore", NULL};
static const char *const gens_triplet[] = {"one_class", "singletons", NULL};
static const char *const gens_cast[] = {"ties", "special", "subnormal", NULL};

static int check_gen(const hcga_shape_case *c, char *err, size_t err_len)
{
    if (!c->gen[0]) return 0;
    const char *const *list = NULL;
    switch (c->op) {
    case HCGA_OP_PIXEL_CE_FWD:
    case HCGA_OP_PIXEL_CE_BWD: list = gens_pixel; break;
    case HCGA_OP_TRIPLET_FWD:
    case HCGA_OP_TRIPLET_BWD: list = gens_triplet; break;
    case HCGA_OP_CAST: list = gens_cast; break;
    default: break;
    }
    for (int i = 0; list && list[i]; i++)
        if (strcmp(list[i], c->gen) == 0) return 0;
    return set_err(err, err_len, "gen=%s is not a variant of %s", c->gen, hcga_op_name(c->op));
}

/* Minimal slot checks the generators rely on (the backend checks the
 * rest): at least nin inputs, all present, and nout outputs. */
static int need(const conf_case *cc, int nin, int nout, char *err, size_t err_len)
{
    if (cc->num_in < nin || cc->num_out < nout)
        return set_err(err, err_len, "%s needs at least %d inputs and %d outputs (got %d, %d)",
                       hcga_op_name(cc->c.op), nin, nout, cc->num_in, cc->num_out);
    for (int k = 0; k < nin; k++)
        if (!cc->in[k].s.present)
            return set_err(err, err_len, "%s: input %d may not be '-'", hcga_op_name(cc->c.op), k);
    return 0;
}

static void softmax_dim1(conf_tensor *t)
{
    int64_t outer, C, inner;
    split_dims(&t->s, &outer, &C, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double m = -INFINITY, s = 0;
            double *base = t->host + o * C * inner + i;
            for (int64_t c = 0; c < C; c++) m = fmax(m, base[c * inner]);
            for (int64_t c = 0; c < C; c++) s += exp(base[c * inner] - m);
            for (int64_t c = 0; c < C; c++) base[c * inner] = exp(base[c * inner] - m) / s;
        }
    finish(t);
}

/* ---- CAST inputs ------------------------------------------------------- */

/* Significand bits (with the implicit one), smallest and largest normal
 * exponents of the float dtypes. */
static int sig_bits(int dt)
{
    switch (dt) {
    case HCGA_BF16: return 8;
    case HCGA_F16: return 11;
    case HCGA_F32: return 24;
    default: return 53;
    }
}
static int min_exp(int dt) { return dt == HCGA_F16 ? -14 : dt == HCGA_F64 ? -1022 : -126; }
static int max_exp(int dt) { return dt == HCGA_F16 ? 15 : dt == HCGA_F64 ? 1023 : 127; }
/* largest finite value */
static double max_finite(int dt) { return ldexp(2.0 - ldexp(1.0, 1 - sig_bits(dt)), max_exp(dt)); }

static int representable(int dt, double v) { return conf_round_dtype(dt, v) == v; }

/* A value exactly halfway between two neighbours of the output dtype `dout`
 * that the input dtype `din` represents: the lower neighbour even when
 * (i & 1) == 0 (the tie rounds down), odd otherwise (it rounds up); in the
 * normal range (exponents -4..3) or, on every other pair of elements first,
 * among dout's subnormals (ties to zero and to the smallest normal
 * included).  A uniform value in [-1, 1) when din has no such value (a
 * widening cast).  From f64 to bf16/f16, every other group of four
 * elements is a near tie instead (see below). */
static double cast_tie(conf_rng *r, int din, int dout, int64_t i)
{
    const int p = sig_bits(dout), pi = sig_bits(din);
    const int64_t odd = i & 1;
    const double sign = (conf_rng_next(r) & 1) ? -1.0 : 1.0;
    double cand[2];
    int nc = 0;
    if (dout != HCGA_F64) {
        /* normal: (m + 1/2) ulp with m a p-bit significand */
        double normal = NAN, sub = NAN;
        if (pi > p) {
            int64_t m = ((int64_t)1 << (p - 1)) + conf_rng_int(r, (int64_t)1 << (p - 1));
            m = (m & ~(int64_t)1) | odd;
            int e = (int)conf_rng_int(r, 8) - 4;
            normal = ldexp(2.0 * (double)m + 1.0, e - p);
        }
        /* subnormal: (m + 1/2) * 2^(emin - p + 1), 0 <= m < 2^(p-1), and
         * 2m+1 within din's significand */
        int64_t lim = (int64_t)1 << (p - 1);
        if (pi - 1 < p - 1) lim = (int64_t)1 << (pi - 1);
        int64_t m = (conf_rng_int(r, lim) & ~(int64_t)1) | odd;
        if (m >= lim) m -= 2;
        if (m >= 0) sub = ldexp(2.0 * (double)m + 1.0, min_exp(dout) - p);
        cand[nc++] = (i & 2) ? sub : normal;
        cand[nc++] = (i & 2) ? normal : sub;
    }
    for (int k = 0; k < nc; k++) {
        if (isnan(cand[k]) || !representable(din, cand[k])) continue;
        if (din == HCGA_F64 && (i & 4) && hcga_dtype_is_half(dout)) {
            /* a near tie: 2^-30 relative off the midpoint, below f32's
             * resolution, so a cast through f32 lands on the tie (double
             * rounding) and rounds to even instead of towards the value */
            return sign * cand[k] * (1.0 + ((i & 8) ? 0x1p-30 : -0x1p-30));
        }
        return sign * cand[k];
    }
    return conf_rng_range(r, -1.0, 1.0);
}

/* NaN, infinities, signed zeros, the range limits of the output (its
 * largest value, the overflow tie that rounds to Inf, a value just below
 * it), din's largest value, dout's smallest normal and subnormal, half the
 * smallest subnormal (a tie to zero) and 1.5 / 2.5 times it (ties to even),
 * ties at 1.  Cycled over the tensor; finish() rounds each to din. */
static double cast_special(int din, int dout, int64_t i)
{
    const int p = sig_bits(dout);
    const double maxo = max_finite(dout), sub = ldexp(1.0, min_exp(dout) - p + 1);
    /* the midpoint between the largest finite value and 2^(emax+1) */
    const double tie_inf = dout == HCGA_F64 ? INFINITY : ldexp(2.0 - ldexp(1.0, -p), max_exp(dout));
    const double vals[] = {
        NAN, INFINITY, -INFINITY, 0.0, -0.0, maxo, -maxo, tie_inf, -tie_inf,
        dout == HCGA_F64 ? maxo : (maxo + tie_inf) / 2, max_finite(din), -max_finite(din),
        ldexp(1.0, min_exp(dout)), -ldexp(1.0, min_exp(dout)), sub, -sub, sub / 2, -sub / 2,
        1.5 * sub, 2.5 * sub, 1.0, -1.0, 1.0 + ldexp(1.0, -p), 1.0 + 3.0 * ldexp(1.0, -p),
        -NAN, 65504.0, 65520.0, 65536.0};
    return vals[i % (int64_t)(sizeof vals / sizeof vals[0])];
}

/* Log-uniform magnitudes from below the smallest subnormal to twice the
 * smallest normal of the dtype with the narrower exponent range (f16 when
 * either side is f16), random signs. */
static double cast_subnormal(conf_rng *r, int din, int dout)
{
    int s = din;
    if (min_exp(dout) > min_exp(din) || (min_exp(dout) == min_exp(din) && sig_bits(dout) > sig_bits(din)))
        s = dout;
    const int lo = min_exp(s) - sig_bits(s), span = sig_bits(s) + 1;
    double v = ldexp(conf_rng_range(r, 1.0, 2.0), lo + (int)conf_rng_int(r, span));
    return (conf_rng_next(r) & 1) ? -v : v;
}

static void fill_cast(conf_case *cc, conf_rng *r)
{
    conf_tensor *x = &cc->in[0];
    const int din = x->s.dtype, dout = cc->out[0].s.dtype;
    const char *gen = cc->c.gen;
    for (int64_t i = 0; i < x->extent; i++) {
        if (strcmp(gen, "ties") == 0) x->host[i] = cast_tie(r, din, dout, i);
        else if (strcmp(gen, "special") == 0) x->host[i] = cast_special(din, dout, i);
        else if (strcmp(gen, "subnormal") == 0) x->host[i] = cast_subnormal(r, din, dout);
        else x->host[i] = conf_rng_range(r, -1.0, 1.0);
    }
    finish(x);
}

static int generate(conf_case *cc, conf_rng *r, int flavour, char *err, size_t err_len)
{
    const hcga_shape_case *c = &cc->c;
    int grad = flavour == CONF_GEN_GRAD;
    /* defaults: every float input uniform in [-1, 1) */
    for (int k = 0; k < cc->num_in; k++)
        if (cc->in[k].s.present && conf_is_float(cc->in[k].s.dtype)) fill_unif(&cc->in[k], r, -1, 1);
    if (check_gen(c, err, err_len)) return -1;
    /* the required slots of the op (catalogue: in_min, out_min) */
    const hcga_op_info *info = hcga_op_get_info(c->op);
    if (!info) return set_err(err, err_len, "op %d is not in the catalogue", c->op);
    if (need(cc, c->op == HCGA_OP_CONCAT ? cc->num_in : info->in_min, info->out_min, err, err_len))
        return -1;
    /* in/out outputs (catalogue: inout) are uploaded with their values: filled below */
    for (int k = 0; k < cc->num_out; k++) cc->out[k].inout = info->inout >> k & 1;

    /* ops whose inputs need more than uniform values in [-1, 1) */
    switch (c->op) {
    case HCGA_OP_BN_FWD_TRAIN:
        fill_bn_x(&cc->in[0], r);
        fill_unif(&cc->in[1], r, 0.5, 1.5);
        fill_unif(&cc->in[2], r, -0.5, 0.5);
        fill_unif(&cc->out[3], r, -0.5, 0.5);
        fill_unif(&cc->out[4], r, 0.5, 1.5);
        return 0;
    case HCGA_OP_BN_FWD_INFER:
        fill_bn_x(&cc->in[0], r);
        fill_unif(&cc->in[1], r, 0.5, 1.5);
        fill_unif(&cc->in[2], r, -0.5, 0.5);
        fill_unif(&cc->in[3], r, -0.5, 0.5);
        fill_unif(&cc->in[4], r, 0.5, 1.5);
        return 0;
    case HCGA_OP_CONV2D_BN_INFER: /* x, w, bias uniform; the batch norm's vectors as BN_FWD_INFER's */
        fill_unif(&cc->in[HCGA_CBN_GAMMA], r, 0.5, 1.5);
        fill_unif(&cc->in[HCGA_CBN_BETA], r, -0.5, 0.5);
        fill_unif(&cc->in[HCGA_CBN_RMEAN], r, -0.5, 0.5);
        fill_unif(&cc->in[HCGA_CBN_RVAR], r, 0.5, 1.5);
        return 0;
    case HCGA_OP_BN_BWD:
        fill_bn_x(&cc->in[0], r);
        fill_unif(&cc->in[2], r, 0.5, 1.5);
        return fill_bn_saved(cc, c->p.bn.eps, err, err_len);
    case HCGA_OP_BN_STATS:
        fill_bn_x(&cc->in[0], r);
        return 0;
    case HCGA_OP_BN_FWD_FROM_STATS:
        fill_bn_x(&cc->in[0], r);
        fill_unif(&cc->in[1], r, 0.5, 1.5);
        fill_unif(&cc->in[2], r, -0.5, 0.5);
        fill_unif(&cc->out[3], r, -0.5, 0.5);
        fill_unif(&cc->out[4], r, 0.5, 1.5);
        return fill_bn_sums(cc, r, c->p.bn.count, err, err_len);
    case HCGA_OP_BN_BWD_FROM_STATS:
        fill_bn_x(&cc->in[0], r);
        fill_unif(&cc->in[2], r, 0.5, 1.5);
        if (fill_bn_saved(cc, c->p.bn.eps, err, err_len)) return -1;
        return fill_bn_grad_sums(cc, r, c->p.bn.count, err, err_len);
    case HCGA_OP_RELU_FWD:
        if (grad) fill_away(&cc->in[0], r, 0.0, 0.05);
        return 0;
    case HCGA_OP_RELU_BWD:
        for (int64_t i = 0; i < cc->in[0].extent; i++)
            cc->in[0].host[i] = fmax(cc->in[0].host[i], 0.0);
        return 0;
    case HCGA_OP_SIGMOID_FWD:
        fill_unif(&cc->in[0], r, -4, 4);
        return 0;
    case HCGA_OP_SIGMOID_BWD:
        for (int64_t i = 0; i < cc->in[0].extent; i++)
            cc->in[0].host[i] = 1.0 / (1.0 + exp(-4.0 * cc->in[0].host[i]));
        finish(&cc->in[0]);
        return 0;
    case HCGA_OP_THRESH_FWD:
    case HCGA_OP_THRESH_BWD:
        fill_away(&cc->in[0], r, c->p.scalar.a, grad ? 0.05 : 0.0);
        return 0;
    case HCGA_OP_SOFTMAX_FWD:
        fill_unif(&cc->in[0], r, -3, 3);
        return 0;
    case HCGA_OP_SOFTMAX_BWD:
        fill_unif(&cc->in[0], r, -3, 3);
        softmax_dim1(&cc->in[0]);
        return 0;
    case HCGA_OP_GEMM:
        if (c->alias_c_y) {
            if (cc->num_in < 3 || !cc->in[2].s.present || cc->in[2].extent != cc->out[0].extent)
                return set_err(err, err_len, "gemm alias_c_y=1 needs c with y's shape");
            cc->out[0].inout = 1;
            memcpy(cc->out[0].host, cc->in[2].host, (size_t)cc->out[0].extent * sizeof(double));
        }
        return 0;
    case HCGA_OP_REDUCE_BWD:
        if (grad && c->p.reduce.kind == HCGA_REDUCE_ABS_MEAN) fill_away(&cc->in[0], r, 0.0, 0.05);
        fill_unif(&cc->in[1], r, 0.5, 1.5);
        return 0;
    case HCGA_OP_CE_LS_FWD:
    case HCGA_OP_CE_LS_BWD:
    case HCGA_OP_PIXEL_CE_FWD:
    case HCGA_OP_PIXEL_CE_BWD: {
        int bwd = c->op == HCGA_OP_CE_LS_BWD || c->op == HCGA_OP_PIXEL_CE_BWD;
        int pix = c->op == HCGA_OP_PIXEL_CE_FWD || c->op == HCGA_OP_PIXEL_CE_BWD;
        fill_unif(&cc->in[0], r, -3, 3);
        int64_t ncls = cc->in[0].s.ndim > 1 ? cc->in[0].s.shape[1] : 1;
        double frac = 0.0;
        if (pix) {
            frac = 0.15;
            if (strcmp(c->gen, "all_ignored") == 0) frac = 1.0;
            if (strcmp(c->gen, "no_ignore") == 0) frac = 0.0;
        }
        if (conf_is_float(cc->in[1].s.dtype))
            return set_err(err, err_len, "%s: labels must be an integer tensor", hcga_op_name(c->op));
        fill_labels(&cc->in[1], r, ncls, c->p.loss.ignore_label, frac);
        if (bwd) fill_unif(&cc->in[2], r, 0.5, 1.5);
        return 0;
    }
    case HCGA_OP_TRIPLET_FWD:
    case HCGA_OP_TRIPLET_BWD: {
        int bwd = c->op == HCGA_OP_TRIPLET_BWD;
        conf_tensor *x = &cc->in[0];
        if (x->s.ndim != 2) return set_err(err, err_len, "%s: x must be [N,D]", hcga_op_name(c->op));
        int64_t n = x->s.shape[0], d = x->s.shape[1];
        /* distances around 0.25 (uniform in [-s, s] gives E|xi-xj|^2 = 2 d s^2 / 3),
         * so that margins of 0.1..0.3 leave some anchors' hinges active */
        double sc = 0.25 / sqrt(2.0 * (double)(d > 0 ? d : 1) / 3.0);
        fill_unif(x, r, -sc, sc);
        if (cc->in[1].extent != (bwd ? 2 * n : n))
            return set_err(err, err_len, "%s: in1 must have %lld elements", hcga_op_name(c->op),
                           (long long)(bwd ? 2 * n : n));
        int64_t *lab = malloc((size_t)(n ? n : 1) * sizeof *lab);
        if (!lab) return set_err(err, err_len, "out of memory");
        triplet_labels_gen(c->gen, n, r, lab);
        if (!bwd) {
            for (int64_t i = 0; i < n; i++) cc->in[1].host[i] = (double)lab[i];
            free(lab);
            return 0;
        }
        int64_t *hard = malloc((size_t)(n > 0 ? 2 * n : 1) * sizeof *hard);
        if (!hard) {
            free(lab);
            return set_err(err, err_len, "out of memory");
        }
        conf_triplet_hard(x->host, n, d, lab, hard);
        for (int64_t i = 0; i < 2 * n; i++) cc->in[1].host[i] = (double)hard[i];
        free(hard);
        cc->labels = lab;
        fill_unif(&cc->in[2], r, 0.5, 1.5);
        return 0;
    }
    case HCGA_OP_SHIFT_L1_BWD:
        fill_unif(&cc->in[1], r, 0.5, 1.5);
        return 0;
    case HCGA_OP_ADAM_STEP:
        fill_unif(&cc->out[0], r, -1, 1);
        fill_unif(&cc->out[1], r, -0.1, 0.1);
        fill_unif(&cc->out[2], r, 0.0, 0.01);
        return 0;
    case HCGA_OP_CAST:
        if (!conf_is_float(cc->in[0].s.dtype) || !cc->out[0].s.present ||
            !conf_is_float(cc->out[0].s.dtype))
            return set_err(err, err_len, "cast: x and y must be float tensors");
        fill_cast(cc, r);
        return 0;
    case HCGA_OP_SGD_STEP:
        fill_unif(&cc->out[0], r, -1, 1);
        fill_unif(&cc->out[1], r, -0.5, 0.5);
        return 0;
    default: /* uniform inputs are right for every other op */
        return 0;
    }
}

int conf_case_make(conf_case *cc, const hcga_shape_case *c, int dtype, uint64_t seed, int flavour,
                   char *err, size_t err_len)
{
    memset(cc, 0, sizeof *cc);
    cc->c = *c;
    cc->dtype = dtype;
    cc->num_in = c->num_in;
    cc->num_out = c->num_out;
    const int half_run = hcga_dtype_is_half(dtype);
    const int swap = (c->dtype == HCGA_F32 || c->dtype == HCGA_F64) && c->dtype != dtype;
    for (int io = 0; io < 2; io++) {
        int n = io ? c->num_out : c->num_in;
        for (int k = 0; k < n; k++) {
            conf_tensor *t = io ? &cc->out[k] : &cc->in[k];
            t->s = io ? c->out[k] : c->in[k];
            if (!t->s.present) continue;
            if (!conf_is_float(t->s.dtype)) {
                /* index tensors keep their dtype */
            } else if (flavour == CONF_GEN_GRAD) {
                t->s.dtype = HCGA_F64; /* finite differences: everything in f64 */
            } else if (c->op == HCGA_OP_CAST) {
                /* a cast's dtypes are its test: run as written */
            } else if (half_run || t->s.dtype == c->dtype) {
                t->s.dtype = dtype;
            } else if (swap && (t->s.dtype == HCGA_F32 || t->s.dtype == HCGA_F64)) {
                t->s.dtype = t->s.dtype == HCGA_F32 ? HCGA_F64 : HCGA_F32;
            }
            if (io && t->s.strided) {
                /* strided outputs are allowed for COPY only (the ABI) */
                if (c->op != HCGA_OP_COPY) {
                    conf_case_free(cc);
                    return set_err(err, err_len, "%s: strides are only allowed for copy",
                                   hcga_op_name(c->op));
                }
            }
            if (!io && t->s.strided && c->op != HCGA_OP_COPY) {
                conf_case_free(cc);
                return set_err(err, err_len, "%s: strides are only allowed for copy",
                               hcga_op_name(c->op));
            }
            t->numel = conf_numel(&t->s);
            t->extent = conf_extent(&t->s);
            if (t->extent > ((int64_t)1 << 31)) {
                conf_case_free(cc);
                return set_err(err, err_len, "tensor of %lld elements is too large for the suite",
                               (long long)t->extent);
            }
            t->host = calloc((size_t)(t->extent ? t->extent : 1), sizeof(double));
            if (!t->host) {
                conf_case_free(cc);
                return set_err(err, err_len, "out of memory");
            }
        }
    }
    /* Slot 2 of the GEMM aliasing y is described by the case; the rest of
     * the slots were checked by the parser. */
    conf_rng r = {seed};
    if (generate(cc, &r, flavour, err, err_len)) {
        conf_case_free(cc);
        return -1;
    }
    return 0;
}

void conf_case_free(conf_case *cc)
{
    for (int k = 0; k < HCGA_MAX_OP_IN; k++) free(cc->in[k].host);
    for (int k = 0; k < HCGA_MAX_OP_OUT; k++) free(cc->out[k].host);
    free(cc->labels);
    memset(cc, 0, sizeof *cc);
}

/* ---- encoding ---------------------------------------------------------- */

static const uint32_t NAN32 = 0x7FE5A5A5u;
static const uint64_t NAN64 = 0x7FFCA5A5A5A5A5A5ull;
static const int64_t SENT64 = 0x5A5A5A5A5A5A5A5All;
static const int32_t SENT32 = 0x5A5A5A5A;
static const uint16_t NAN_BF16 = 0x7FE5u, NAN_F16 = 0x7E5Au; /* quiet NaNs no conversion makes */

static uint8_t pattern_byte(uint64_t i) { return (uint8_t)(0xA5u ^ (uint8_t)(i * 0x3Bu)); }

static void encode(int dtype, double v, uint8_t *dst)
{
    switch (dtype) {
    case HCGA_F32: { float f = (float)v; memcpy(dst, &f, 4); break; }
    case HCGA_F64: memcpy(dst, &v, 8); break;
    case HCGA_I64: { int64_t x = (int64_t)v; memcpy(dst, &x, 8); break; }
    case HCGA_I32: { int32_t x = (int32_t)v; memcpy(dst, &x, 4); break; }
    case HCGA_U8: { uint8_t x = (uint8_t)v; *dst = x; break; }
    case HCGA_BF16:
    case HCGA_F16: { uint16_t h = hcga_half_from_f64(dtype, v); memcpy(dst, &h, 2); break; }
    default: break;
    }
}

static double decode(int dtype, const uint8_t *src)
{
    switch (dtype) {
    case HCGA_F32: { float f; memcpy(&f, src, 4); return f; }
    case HCGA_F64: { double d; memcpy(&d, src, 8); return d; }
    case HCGA_I64: { int64_t x; memcpy(&x, src, 8); return x == SENT64 ? NAN : (double)x; }
    case HCGA_I32: { int32_t x; memcpy(&x, src, 4); return x == SENT32 ? NAN : (double)x; }
    case HCGA_U8: return *src;
    case HCGA_BF16:
    case HCGA_F16: { uint16_t h; memcpy(&h, src, 2); return (double)hcga_half_to_f32(dtype, h); }
    default: return NAN;
    }
}

static void encode_unset(int dtype, uint8_t *dst)
{
    switch (dtype) {
    case HCGA_F32: memcpy(dst, &NAN32, 4); break;
    case HCGA_F64: memcpy(dst, &NAN64, 8); break;
    case HCGA_I64: memcpy(dst, &SENT64, 8); break;
    case HCGA_I32: memcpy(dst, &SENT32, 4); break;
    case HCGA_U8: *dst = 0xA5; break;
    case HCGA_BF16: memcpy(dst, &NAN_BF16, 2); break;
    case HCGA_F16: memcpy(dst, &NAN_F16, 2); break;
    default: break;
    }
}

/* ---- device ------------------------------------------------------------ */

static void make_desc(conf_dev_tensor *dt, const hcga_shape_tensor *s, uint64_t offset)
{
    memset(&dt->t, 0, sizeof dt->t);
    dt->t.buf = dt->buf;
    dt->t.offset = offset;
    dt->t.dtype = s->dtype;
    dt->t.ndim = s->ndim;
    for (int d = 0; d < HCGA_MAX_DIMS; d++) {
        dt->t.shape[d] = d < s->ndim ? s->shape[d] : 1;
        dt->t.stride[d] = d < s->ndim ? s->stride[d] : 1;
    }
}

/* Builds the upload image of a tensor: pattern, then data (inputs, in/out
 * outputs) or the "unset" value (outputs) at the view's elements. */
static int build_image(conf_dev_tensor *dt, const conf_tensor *t, int is_output)
{
    size_t es = hcga_dtype_size(t->s.dtype);
    dt->data_bytes = (uint64_t)t->extent * es;
    dt->total = CONF_GUARD + ((dt->data_bytes + 7) & ~(uint64_t)7) + CONF_GUARD;
    free(dt->image);
    dt->image = malloc(dt->total);
    if (!dt->image) return -1;
    for (uint64_t i = 0; i < dt->total; i++) dt->image[i] = pattern_byte(i);
    uint8_t *data = dt->image + CONF_GUARD;
    if (!is_output) {
        /* every element of the extent gets data (gaps of a strided input too) */
        for (int64_t i = 0; i < t->extent; i++) encode(t->s.dtype, t->host[i], data + (size_t)i * es);
        return 0;
    }
    int64_t *offs = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *offs);
    if (!offs) return -1;
    conf_view_offsets(&t->s, offs);
    for (int64_t i = 0; i < t->numel; i++) {
        uint8_t *p = data + (size_t)offs[i] * es;
        if (t->inout) encode(t->s.dtype, t->host[offs[i]], p);
        else encode_unset(t->s.dtype, p);
    }
    free(offs);
    return 0;
}

static int upload(conf_dev *d, conf_dev_tensor *dt, const conf_tensor *t, int is_output, char *err,
                  size_t err_len)
{
    if (build_image(dt, t, is_output))
        return set_err(err, err_len, "out of memory for a %llu-byte tensor",
                       (unsigned long long)dt->data_bytes);
    if (!dt->buf) {
        if (hcga_be_alloc(d->be, dt->total, &dt->buf) != HCGA_OK)
            return set_err(err, err_len, "%s", hcga_be_error(d->be));
    }
    if (hcga_be_write(d->be, dt->buf, 0, dt->image, dt->total) != HCGA_OK)
        return set_err(err, err_len, "%s", hcga_be_error(d->be));
    make_desc(dt, &t->s, CONF_GUARD);
    dt->present = 1;
    return 0;
}

int conf_dev_setup(conf_dev *d, hcga_be *be, const conf_case *cc, char *err, size_t err_len)
{
    memset(d, 0, sizeof *d);
    d->be = be;
    d->cc = cc;
    d->alias = cc->c.op == HCGA_OP_GEMM && cc->c.alias_c_y;
    d->args.op = cc->c.op;
    d->args.num_in = cc->num_in;
    d->args.num_out = cc->num_out;
    d->args.p = cc->c.p;
    for (int k = 0; k < cc->num_out; k++) {
        if (!cc->out[k].s.present) continue;
        if (upload(d, &d->out[k], &cc->out[k], 1, err, err_len)) return -1;
        d->args.out[k] = &d->out[k].t;
    }
    for (int k = 0; k < cc->num_in; k++) {
        if (!cc->in[k].s.present) continue;
        if (d->alias && k == 2) {
            d->args.in[k] = &d->out[0].t;
            continue;
        }
        if (upload(d, &d->in[k], &cc->in[k], 0, err, err_len)) return -1;
        d->args.in[k] = &d->in[k].t;
    }
    return 0;
}

int conf_dev_rewrite_input(conf_dev *d, int k, char *err, size_t err_len)
{
    if (!d->in[k].present) return 0;
    return upload(d, &d->in[k], &d->cc->in[k], 0, err, err_len);
}

int conf_dev_reset_outputs(conf_dev *d, char *err, size_t err_len)
{
    for (int k = 0; k < d->cc->num_out; k++)
        if (d->out[k].present && upload(d, &d->out[k], &d->cc->out[k], 1, err, err_len)) return -1;
    return 0;
}

hcga_status conf_dev_run(conf_dev *d)
{
    hcga_status st = hcga_be_run(d->be, &d->args);
    if (st != HCGA_OK) return st;
    return hcga_be_sync(d->be);
}

void conf_dev_free(conf_dev *d)
{
    for (int k = 0; k < HCGA_MAX_OP_IN; k++) {
        if (d->in[k].buf) hcga_be_free(d->be, d->in[k].buf);
        free(d->in[k].image);
    }
    for (int k = 0; k < HCGA_MAX_OP_OUT; k++) {
        if (d->out[k].buf) hcga_be_free(d->be, d->out[k].buf);
        free(d->out[k].image);
    }
    memset(d, 0, sizeof *d);
}

int conf_dev_read_output(conf_dev *d, int k, double *vals, char *problems, size_t plen, char *err,
                         size_t err_len)
{
    conf_dev_tensor *dt = &d->out[k];
    const conf_tensor *t = &d->cc->out[k];
    uint8_t *img = malloc(dt->total);
    if (!img) return set_err(err, err_len, "out of memory"), -1;
    if (hcga_be_read(d->be, dt->buf, 0, img, dt->total) != HCGA_OK) {
        set_err(err, err_len, "%s", hcga_be_error(d->be));
        free(img);
        return -1;
    }
    int found = 0;
    /* guard before: report the write closest to the data */
    for (int64_t i = CONF_GUARD - 1; i >= 0; i--)
        if (img[i] != dt->image[i]) {
            append(problems, plen, "  out%d: written %lld byte(s) before its first element (guard)\n",
                   k, (long long)(CONF_GUARD - i));
            found++;
            break;
        }
    for (uint64_t i = CONF_GUARD + dt->data_bytes; i < dt->total; i++)
        if (img[i] != dt->image[i]) {
            append(problems, plen, "  out%d: written %llu byte(s) past its last element (guard)\n",
                   k, (unsigned long long)(i - CONF_GUARD - dt->data_bytes + 1));
            found++;
            break;
        }
    size_t es = hcga_dtype_size(t->s.dtype);
    const uint8_t *data = img + CONF_GUARD;
    if (t->s.strided && t->extent > 0) {
        /* elements of the extent outside the view must keep the pattern */
        uint8_t *inview = calloc((size_t)t->extent, 1);
        int64_t *offs = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *offs);
        if (!inview || !offs) {
            free(inview);
            free(offs);
            free(img);
            return set_err(err, err_len, "out of memory"), -1;
        }
        conf_view_offsets(&t->s, offs);
        for (int64_t i = 0; i < t->numel; i++) inview[offs[i]] = 1;
        for (int64_t e = 0; e < t->extent; e++) {
            if (inview[e]) continue;
            if (memcmp(data + (size_t)e * es, dt->image + CONF_GUARD + (size_t)e * es, es) != 0) {
                append(problems, plen, "  out%d: wrote element %lld of the buffer, outside the "
                       "strided view\n", k, (long long)e);
                found++;
                break;
            }
        }
        free(inview);
        free(offs);
    }
    for (int64_t e = 0; e < t->extent; e++) vals[e] = decode(t->s.dtype, data + (size_t)e * es);
    dt->unset = 0;
    if (!t->inout && es > 0 && es <= 8) {
        /* elements still holding the prefill: a NaN the reference may also
         * produce (a CAST of NaN) cannot tell an unwritten element apart */
        uint8_t unset[8];
        encode_unset(t->s.dtype, unset);
        int64_t *offs = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *offs);
        if (offs) {
            conf_view_offsets(&t->s, offs);
            for (int64_t i = 0; i < t->numel; i++)
                if (memcmp(data + (size_t)offs[i] * es, unset, es) == 0) dt->unset++;
            free(offs);
        }
    }
    free(img);
    return found;
}

int conf_tmp_alloc(hcga_be *be, int dtype, int ndim, const int64_t *shape, conf_dev_tensor *t,
                   char *err, size_t err_len)
{
    memset(t, 0, sizeof *t);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    t->data_bytes = (uint64_t)n * hcga_dtype_size(dtype);
    t->total = t->data_bytes ? t->data_bytes : 8;
    if (hcga_be_alloc(be, t->total, &t->buf) != HCGA_OK)
        return set_err(err, err_len, "%s", hcga_be_error(be));
    t->t = hcga_tensor_make(t->buf, 0, dtype, ndim, shape);
    t->present = 1;
    return 0;
}

int conf_tmp_write(hcga_be *be, conf_dev_tensor *t, const double *vals, char *err, size_t err_len)
{
    int64_t n = hcga_tensor_numel(&t->t);
    size_t es = hcga_dtype_size(t->t.dtype);
    uint8_t *buf = malloc((size_t)(n ? n : 1) * es);
    if (!buf) return set_err(err, err_len, "out of memory");
    for (int64_t i = 0; i < n; i++) encode(t->t.dtype, vals[i], buf + (size_t)i * es);
    hcga_status st = hcga_be_write(be, t->buf, 0, buf, (uint64_t)n * es);
    free(buf);
    if (st != HCGA_OK) return set_err(err, err_len, "%s", hcga_be_error(be));
    return 0;
}

int conf_tmp_read(hcga_be *be, const conf_dev_tensor *t, double *vals, char *err, size_t err_len)
{
    int64_t n = hcga_tensor_numel(&t->t);
    size_t es = hcga_dtype_size(t->t.dtype);
    uint8_t *buf = malloc((size_t)(n ? n : 1) * es);
    if (!buf) return set_err(err, err_len, "out of memory");
    hcga_status st = hcga_be_read(be, t->buf, 0, buf, (uint64_t)n * es);
    if (st == HCGA_OK)
        for (int64_t i = 0; i < n; i++) vals[i] = decode(t->t.dtype, buf + (size_t)i * es);
    free(buf);
    if (st != HCGA_OK) return set_err(err, err_len, "%s", hcga_be_error(be));
    return 0;
}

void conf_tmp_free(hcga_be *be, conf_dev_tensor *t)
{
    if (t->buf) hcga_be_free(be, t->buf);
    free(t->image);
    memset(t, 0, sizeof *t);
}

/* ---- comparison -------------------------------------------------------- */

void conf_compare(const double *a, const double *r, int64_t n, double floor_scale, conf_err *e)
{
    memset(e, 0, sizeof *e);
    e->first_nan = -1;
    e->first_mismatch = -1;
    double d2 = 0, r2 = 0, maxd = 0, maxr = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(r[i])) {
            if (isfinite(a[i]) != isfinite(r[i]) || isnan(a[i]) != isnan(r[i])) {
                if (e->nan_count++ == 0) e->first_nan = i;
            }
            continue;
        }
        double d = a[i] - r[i];
        d2 += d * d;
        r2 += r[i] * r[i];
        if (fabs(d) > maxd) maxd = fabs(d);
        if (fabs(r[i]) > maxr) maxr = fabs(r[i]);
    }
    /* A reference that is (nearly) zero by cancellation, e.g. the loss of a
     * one-class softmax, cannot be matched to relative precision: judge such
     * outputs against floor_scale, the magnitude of the op's terms. */
    double fl = floor_scale > 1e-30 ? floor_scale : 1e-30;
    double r2_floor = fl * fl * (double)(n ? n : 1);
    e->nmse = d2 / (r2 > r2_floor ? r2 : r2_floor);
    e->maxerr = maxd / (maxr > fl ? maxr : fl);
}

double conf_floor_scale(const conf_case *cc)
{
    double m = 0;
    for (int k = 0; k < cc->num_in; k++) {
        const conf_tensor *t = &cc->in[k];
        if (!t->s.present || !conf_is_float(t->s.dtype)) continue;
        for (int64_t i = 0; i < t->extent; i++) m = fmax(m, fabs(t->host[i]));
    }
    for (int k = 0; k < cc->num_out; k++) {
        const conf_tensor *t = &cc->out[k];
        if (!t->s.present || !t->inout || !conf_is_float(t->s.dtype)) continue;
        for (int64_t i = 0; i < t->extent; i++) m = fmax(m, fabs(t->host[i]));
    }
    return 1e-3 * m;
}
