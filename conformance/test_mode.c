/*
 * test_mode.c - one conformance case in test mode: the backend under test
 * (F32, F64, BF16 or F16) against the reference backend in F64 on the same
 * inputs.
 */
#include "conf_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Tolerance classes (justified in conformance/README.md).  An F32 result
 * is compared with the F64 reference computed from the same (F32-rounded)
 * inputs, so the only difference allowed is the F32 rounding of the op's
 * own arithmetic:
 *   elementwise  a few roundings per element: relative 1e-7 each, so NMSE
 *                ~1e-14; tolerance 1e-10 / max 1e-5.
 *   sum          short sums / few transcendental functions per element
 *                (softmax, bilinear, pooling): tolerance 1e-9 / 1e-4.
 *   dot          long dot products and reductions over a batch (conv,
 *                gemm, BN statistics, losses): relative error grows with
 *                the length; tolerance 1e-7 / 1e-3.  Dropping one term of a
 *                3x3x64 conv already gives NMSE ~1e-3.
 * Each op's class is the `tol` column of plugins/hcga_ops.def.
 *
 * BF16 / F16 (ops with half = 1): the inputs are exact half values, the
 * backend accumulates in F32 and rounds each output once to the half format
 * (hcga_plugin.h "Mixed precision"); the reference is F64 on the same
 * values.  With c the class's F32 NMSE and m its max error, u the format's
 * unit roundoff (2^-8 bf16, 2^-11 f16) and f the F32 result before the
 * rounding: |round(f) - f| <= u|f| per element and |f| <= (1 + sqrt(c))|r|
 * in norm, so by the triangle inequality
 *     sqrt(nmse) <= sqrt(c) + u (1 + sqrt(c)),   max <= m + u (1 + m).
 * These bounds are the tolerances (numbers and reasons in README.md).
 * CAST has one correct result (round to nearest even): compared exactly. */
#define TOL_ELEM_INIT {"elementwise", 1e-10, 1e-5, 0}
#define TOL_SUM_INIT {"sum", 1e-9, 1e-4, 0}
#define TOL_DOT_INIT {"dot", 1e-7, 1e-3, 0}

double conf_unit_roundoff(int dtype)
{
    switch (dtype) {
    case HCGA_BF16: return 0x1p-8;
    case HCGA_F16: return 0x1p-11;
    case HCGA_F32: return 0x1p-24;
    default: return 0x1p-53;
    }
}

conf_tol conf_op_tol(int op, int dtype)
{
    static const conf_tol by_class[] = {[HCGA_TOL_ELEM] = TOL_ELEM_INIT,
                                        [HCGA_TOL_SUM] = TOL_SUM_INIT,
                                        [HCGA_TOL_DOT] = TOL_DOT_INIT};
    const hcga_op_info *info = hcga_op_get_info(op);
    conf_tol t = by_class[info ? info->tol : HCGA_TOL_ELEM];
    if (op == HCGA_OP_CAST) {
        /* one correct result: bit for bit after widening (NaN == NaN) */
        t.cls = "exact";
        t.nmse = t.maxerr = 0.0;
        t.exact = 1;
    } else if (dtype == HCGA_F64) {
        /* F64 epsilon is 2^-29 times F32's: scale the NMSE (squared) by 1e-14
         * and the max error by 1e-7. */
        t.nmse *= 1e-14;
        t.maxerr *= 1e-7;
    } else if (hcga_dtype_is_half(dtype)) {
        /* the F32 class plus one rounding of each output to the half format */
        const double u = conf_unit_roundoff(dtype), c = sqrt(t.nmse), m = t.maxerr;
        const double s = c + u * (1.0 + c);
        t.nmse = s * s;
        t.maxerr = m + u * (1.0 + m);
    }
    return t;
}

static const char *out_name(int op, int k)
{
    static const char *const bn_train[] = {"y", "save_mean", "save_invstd", "running_mean",
                                           "running_var"};
    static const char *const bn_bwd[] = {"dx", "dgamma", "dbeta"};
    static const char *const bn_stats[] = {"sum", "sumsq"};
    static const char *const adam[] = {"param", "m", "v"};
    static const char *const sgd[] = {"param", "buf"};
    static const char *const filt[] = {"dw", "dbias"};
    static const char *const trip[] = {"loss", "hard"};
    static char buf[HCGA_MAX_OP_OUT][8];
    switch (op) {
    case HCGA_OP_BN_FWD_TRAIN:
    case HCGA_OP_BN_FWD_FROM_STATS: if (k < 5) return bn_train[k]; break;
    case HCGA_OP_BN_STATS: if (k < 2) return bn_stats[k]; break;
    case HCGA_OP_BN_BWD:
    case HCGA_OP_BN_BWD_FROM_STATS: if (k < 3) return bn_bwd[k]; break;
    case HCGA_OP_ADAM_STEP: if (k < 3) return adam[k]; break;
    case HCGA_OP_SGD_STEP: if (k < 2) return sgd[k]; break;
    case HCGA_OP_CONV2D_BWD_FILTER: if (k < 2) return filt[k]; break;
    case HCGA_OP_TRIPLET_FWD: if (k < 2) return trip[k]; break;
    case HCGA_OP_CAST: if (k == 0) return "y"; break;
    default: break;
    }
    if (k < 0 || k >= HCGA_MAX_OP_OUT) return "out";
    snprintf(buf[k], sizeof buf[k], "out%d", k);
    return buf[k];
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

/* A copy of cc with every float tensor in F64 (the reference run). */
static int clone_f64(const conf_case *src, conf_case *dst)
{
    *dst = *src;
    dst->labels = NULL;
    dst->dtype = HCGA_F64;
    dst->c.dtype = conf_is_float(src->c.dtype) ? HCGA_F64 : src->c.dtype;
    for (int io = 0; io < 2; io++) {
        int n = io ? src->num_out : src->num_in;
        for (int k = 0; k < (io ? HCGA_MAX_OP_OUT : HCGA_MAX_OP_IN); k++) {
            conf_tensor *t = io ? &dst->out[k] : &dst->in[k];
            const conf_tensor *s = io ? &src->out[k] : &src->in[k];
            t->host = NULL;
            if (k >= n || !s->s.present) continue;
            if (conf_is_float(t->s.dtype)) t->s.dtype = HCGA_F64;
            t->host = malloc((size_t)(s->extent ? s->extent : 1) * sizeof(double));
            if (!t->host) return -1;
            memcpy(t->host, s->host, (size_t)s->extent * sizeof(double));
        }
    }
    return 0;
}

static void gather(const conf_tensor *t, const double *ext, double *view, int64_t *offs)
{
    conf_view_offsets(&t->s, offs);
    for (int64_t i = 0; i < t->numel; i++) view[i] = ext[offs[i]];
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

/* TRIPLET_FWD's hard pairs: equal to the reference's, or a near tie with a
 * valid choice (same label for the positive, other label for the negative). */
static int64_t check_hard(const conf_case *cc, const double *a, const double *r, int64_t *first,
                          char *why, size_t wlen)
{
    const conf_tensor *x = &cc->in[0];
    int64_t n = x->s.shape[0], d = x->s.shape[1];
    const double *lab = cc->in[1].host;
    int64_t bad = 0;
    *first = -1;
    for (int64_t i = 0; i < n; i++)
        for (int w = 0; w < 2; w++) {
            double av = a[2 * i + w], rv = r[2 * i + w];
            if (av == rv) continue;
            int ok = 0;
            if (!isnan(av) && rv >= 0 && av >= 0 && av < (double)n) {
                int64_t j = (int64_t)av, j0 = (int64_t)rv;
                int same = lab[j] == lab[i];
                double dj = tdist(x->host, d, i, j), d0 = tdist(x->host, d, i, j0);
                ok = (w == 0 ? same : !same) && fabs(dj - d0) <= 1e-5 * d0 + 1e-6;
            }
            if (!ok) {
                if (bad++ == 0) {
                    *first = 2 * i + w;
                    snprintf(why, wlen, "anchor %lld: %s %s%.0f, reference %.0f", (long long)i,
                             w ? "negative" : "positive", isnan(av) ? "unwritten " : "",
                             isnan(av) ? 0.0 : av, rv);
                }
            }
        }
    return bad;
}

static int supported(hcga_be *be, int op, int dtype)
{
    uint32_t n = be->iface->num_ops;
    if (be->desc->num_ops < n) n = be->desc->num_ops;
    if (!be->iface->ops || (uint32_t)op >= n || !be->iface->ops[op]) return 0;
    if (be->iface->supports && !be->iface->supports(be->inst, op, dtype)) return -1;
    return 1;
}

/* Precision rank of a float dtype (the tolerance follows the least precise
 * float tensor of a call). */
static int prec_rank(int dt)
{
    switch (dt) {
    case HCGA_BF16: return 0;
    case HCGA_F16: return 1;
    case HCGA_F32: return 2;
    case HCGA_F64: return 3;
    default: return 99;
    }
}

static int is_cpu(const hcga_be *be) { return strcmp(be->name, "cpu") == 0; }

int conf_optional_absent(hcga_be *be, int op, int dtype)
{
    const hcga_op_info *info = hcga_op_get_info(op);
    return info && info->optional && !is_cpu(be) && supported(be, op, dtype) != 1;
}

/* Whether the backend under test takes the case (its ABI, op table and
 * supports() for each float dtype the call has): 1 run it, 0 a failure,
 * -1 a skip, with the reason in why.  F32 and, for an ABI 1.1 backend, BF16
 * on ops with half support are mandatory; F64 is optional; F16 is optional
 * except on the CPU backend (the reference computes every half case); an
 * optional op (catalogue: HCGA_OPT_OP rows, ABI 1.3) is a skip when absent,
 * but not on the CPU backend. */
static int gate(conf_run *r, const conf_case *cc, int dtype, char *why, size_t wlen)
{
    hcga_be *be = r->dut;
    const int op = cc->c.op;
    int dts[8], nd = 0, has_half = 0;
    dts[nd++] = dtype;
    for (int io = 0; io < 2; io++)
        for (int k = 0; k < (io ? cc->num_out : cc->num_in); k++) {
            const conf_tensor *t = io ? &cc->out[k] : &cc->in[k];
            if (!t->s.present || !conf_is_float(t->s.dtype)) continue;
            const int dt = t->s.dtype;
            if (hcga_dtype_is_half(dt)) has_half = 1;
            if (!hcga_dtype_is_half(dt) && op != HCGA_OP_CAST) continue;
            int seen = 0;
            for (int i = 0; i < nd; i++) seen |= dts[i] == dt;
            if (!seen && nd < 8) dts[nd++] = dt;
        }
    if ((has_half || op == HCGA_OP_CAST) && be->desc->abi_minor < 1) {
        snprintf(why, wlen, "ABI 1.%u: no half support (backend '%s' predates %s and bf16/f16)",
                 (unsigned)be->desc->abi_minor, be->name, hcga_op_name(HCGA_OP_CAST));
        return -1;
    }
    const int sup = supported(be, op, dtype);
    if (conf_optional_absent(be, op, dtype)) {
        snprintf(why, wlen, "%s: optional op, not provided by backend '%s' (the frontend runs the "
                 "separate ops instead)", hcga_op_name(op), be->name);
        return -1;
    }
    if (sup == 0) {
        snprintf(why, wlen, "%s: op is not supported by backend '%s' (mandatory op)",
                 hcga_op_name(op), be->name);
        return 0;
    }
    int skip = 0;
    for (int i = 0; i < nd; i++) {
        if (!be->iface->supports || be->iface->supports(be->inst, op, dts[i])) continue;
        switch (dts[i]) {
        case HCGA_F32:
            snprintf(why, wlen, "%s: f32 is not supported by backend '%s' (mandatory op)",
                     hcga_op_name(op), be->name);
            return 0;
        case HCGA_BF16:
            snprintf(why, wlen, "%s: bf16 is not supported by backend '%s' (mandatory: ABI 1.1 "
                     "requires every op with half support at bf16)", hcga_op_name(op), be->name);
            return 0;
        case HCGA_F16:
            if (is_cpu(be)) {
                snprintf(why, wlen, "%s: f16 is not supported by backend '%s' (mandatory on the "
                         "reference backend)", hcga_op_name(op), be->name);
                return 0;
            }
            if (!skip)
                snprintf(why, wlen, "backend '%s' does not support %s in f16: supports() is 0 "
                         "(f16 is optional, e.g. OpenCL without cl_khr_fp16)", be->name,
                         hcga_op_name(op));
            skip = 1;
            break;
        default:
            if (!skip)
                snprintf(why, wlen, "backend '%s' does not support %s in %s", be->name,
                         hcga_op_name(op), hcga_dtype_name(dts[i]));
            skip = 1;
            break;
        }
    }
    return skip ? -1 : 1;
}

/* 1 when a float tensor of the case is of dtype dt. */
static int case_has_dtype(const conf_case *cc, int dt)
{
    for (int io = 0; io < 2; io++)
        for (int k = 0; k < (io ? cc->num_out : cc->num_in); k++) {
            const conf_tensor *t = io ? &cc->out[k] : &cc->in[k];
            if (t->s.present && t->s.dtype == dt) return 1;
        }
    return 0;
}

/* A backend must validate what it relies on (hcga_plugin.h): two calls that
 * every op has to refuse with an error and a message, each harmless to a
 * backend that does not check (its writes stay inside the buffers):
 *   out[0] of dtype u8 (no op but FILL produces u8; FILL gets a dtype value
 *   outside hcga_dtype), and num_in = 0 (every op but FILL has inputs).
 * Returns 0, or -1 with the problems appended. */
static int check_rejects(hcga_be *be, conf_dev *d, char *problems, size_t plen)
{
    int bad = 0;
    for (int variant = 0; variant < 2; variant++) {
        hcga_op_args a = d->args;
        hcga_tensor t0;
        const char *what;
        if (variant == 0) {
            if (!a.out[0]) continue;
            t0 = *a.out[0];
            if (a.op == HCGA_OP_FILL) {
                /* FILL may write any dtype a backend has: give it none */
                t0.dtype = HCGA_DTYPE_COUNT;
                what = "out[0] of an unknown dtype";
            } else {
                t0.dtype = HCGA_U8;
                what = "out[0] of dtype u8";
            }
            a.out[0] = &t0;
        } else {
            if (a.num_in == 0) continue;
            a.num_in = 0;
            what = "num_in = 0";
        }
        hcga_status st = hcga_be_run(be, &a);
        if (st == HCGA_OK) st = hcga_be_sync(be);
        if (st == HCGA_OK) {
            append(problems, plen, "  accepted a call with %s (it must fail with "
                   "HCGA_ERR_INVALID and a message)\n", what);
            bad = 1;
            continue;
        }
        const char *msg = be->iface->last_error(be->inst);
        if (!msg || !msg[0]) {
            append(problems, plen, "  refused a call with %s but last_error() is empty\n", what);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

static void note_stats(conf_run *r, const char *tag, int op, double nmse, double maxerr,
                       double ratio, double ms)
{
    conf_op_stats *s = &r->stats[op];
    if (nmse > s->worst_nmse) s->worst_nmse = nmse;
    if (maxerr > s->worst_maxerr) s->worst_maxerr = maxerr;
    if (ratio > s->worst_ratio || !s->worst_case[0]) {
        s->worst_ratio = ratio > s->worst_ratio ? ratio : s->worst_ratio;
        snprintf(s->worst_case, sizeof s->worst_case, "%.60s", tag);
    }
    s->total_ms += ms;
}

int conf_test_case(conf_run *r, const conf_loaded_case *lc, int dtype)
{
    FILE *out = r->out;
    const hcga_shape_case *c = &lc->c;
    char line[1024], err[1024], problems[4096] = "", errs[2048] = "";
    hcga_shapefile_format_case(line, sizeof line, c);
    const char *base = strrchr(lc->file, '/') ? strrchr(lc->file, '/') + 1 : lc->file;
    char tag[256];
    snprintf(tag, sizeof tag, "%s#%d %s", base, lc->index, hcga_dtype_name(dtype));

    conf_case cc, rc;
    uint64_t seed = conf_case_seed(r->o->seed, lc->index);
    if (conf_case_make(&cc, c, dtype, seed, CONF_GEN_TEST, err, sizeof err)) {
        fprintf(out, "FAIL  %-22s %s\n  case: %s\n", tag, line, err);
        conf_print_repro(r, lc, dtype, CONF_MODE_TEST);
        return 0;
    }
    char why[512];
    int g = gate(r, &cc, dtype, why, sizeof why);
    if (g <= 0) {
        if (g == 0) {
            fprintf(out, "FAIL  %-22s %s\n  %s\n", tag, line, why);
            conf_print_repro(r, lc, dtype, CONF_MODE_TEST);
        } else {
            fprintf(out, "SKIP  %-22s %s\n  (%s)\n", tag, line, why);
        }
        conf_case_free(&cc);
        return g == 0 ? 0 : -1;
    }
    if (clone_f64(&cc, &rc)) {
        conf_case_free(&cc);
        fprintf(out, "FAIL  %-22s %s\n  out of memory\n", tag, line);
        return 0;
    }

    conf_dev dd, rd;
    int pass = 1, skipped = 0;
    double ms = 0;
    memset(&dd, 0, sizeof dd);
    memset(&rd, 0, sizeof rd);
    err[0] = 0;
    if (conf_dev_setup(&rd, r->ref, &rc, err, sizeof err) == 0 && conf_dev_run(&rd) != HCGA_OK)
        snprintf(err, sizeof err, "%s", hcga_be_error(r->ref));
    if (err[0]) {
        append(problems, sizeof problems, "  reference backend '%s' rejected the case: %s\n",
               r->ref->name, err);
        pass = 0;
        goto report;
    }
    err[0] = 0;
    if (conf_dev_setup(&dd, r->dut, &cc, err, sizeof err)) {
        append(problems, sizeof problems, "  setup on '%s': %s\n", r->dut->name, err);
        pass = 0;
        goto report;
    }
    double t0 = conf_now_ms();
    hcga_status st = conf_dev_run(&dd);
    ms = conf_now_ms() - t0;
    if (st == HCGA_ERR_UNSUPPORTED && case_has_dtype(&cc, HCGA_F16) &&
        !case_has_dtype(&cc, HCGA_BF16) && !is_cpu(r->dut)) {
        /* f16 is optional outside the reference: the backend's reason */
        append(problems, sizeof problems, "  (backend '%s' refused f16 as unsupported, which "
               "the ABI allows: %s)\n", r->dut->name, hcga_be_error(r->dut));
        skipped = 1;
        goto report;
    }
    if (st != HCGA_OK) {
        append(problems, sizeof problems, "  %s (status %d): %s%s\n",
               st == HCGA_ERR_UNSUPPORTED ? "unsupported" : "error", (int)st,
               hcga_be_error(r->dut),
               st != HCGA_ERR_UNSUPPORTED ? ""
               : case_has_dtype(&cc, HCGA_BF16)
                   ? " (bf16 is mandatory for an ABI 1.1 backend on the ops with half support)"
               : case_has_dtype(&cc, HCGA_F16) ? " (the reference backend must support f16)"
                                               : "");
        pass = 0;
        goto report;
    }

    /* the tolerance follows the least precise float tensor of the call
     * (a COPY converting f64 to f32 is judged at f32) */
    int tol_dtype = dtype;
    for (int io = 0; io < 2; io++)
        for (int k = 0; k < (io ? cc.num_out : cc.num_in); k++) {
            const conf_tensor *t = io ? &cc.out[k] : &cc.in[k];
            if (t->s.present && conf_is_float(t->s.dtype) &&
                prec_rank(t->s.dtype) < prec_rank(tol_dtype))
                tol_dtype = t->s.dtype;
        }
    conf_tol tol = conf_op_tol(c->op, tol_dtype);
    double floor_scale = conf_floor_scale(&cc);
    double worst_nmse = 0, worst_max = 0, worst_ratio = 0;
    for (int k = 0; k < cc.num_out; k++) {
        const conf_tensor *t = &cc.out[k];
        if (!t->s.present) continue;
        int64_t ext = t->extent ? t->extent : 1, n = t->numel;
        double *av = malloc((size_t)ext * sizeof *av), *rv = malloc((size_t)ext * sizeof *rv);
        double *a = malloc((size_t)(n ? n : 1) * sizeof *a), *b = malloc((size_t)(n ? n : 1) * sizeof *b);
        int64_t *offs = malloc((size_t)(n ? n : 1) * sizeof *offs);
        if (!av || !rv || !a || !b || !offs) {
            append(problems, sizeof problems, "  out of memory\n");
            pass = 0;
            free(av); free(rv); free(a); free(b); free(offs);
            break;
        }
        char e1[512] = "", p1[1024] = "";
        int np = conf_dev_read_output(&dd, k, av, p1, sizeof p1, e1, sizeof e1);
        char e2[512] = "", p2[1024] = "";
        int nr = conf_dev_read_output(&rd, k, rv, p2, sizeof p2, e2, sizeof e2);
        if (np < 0 || nr < 0) {
            append(problems, sizeof problems, "  reading %s: %s\n", out_name(c->op, k),
                   np < 0 ? e1 : e2);
            pass = 0;
        } else {
            if (np > 0) {
                append(problems, sizeof problems, "%s", p1);
                pass = 0;
            }
            if (nr > 0)
                append(problems, sizeof problems, "  (reference) %s", p2);
            gather(t, av, a, offs);
            gather(t, rv, b, offs);
            char idx[96];
            if (!conf_is_float(t->s.dtype)) {
                int64_t bad = 0, first = -1;
                char why[256] = "";
                if (c->op == HCGA_OP_TRIPLET_FWD && k == 1) {
                    bad = check_hard(&cc, a, b, &first, why, sizeof why);
                } else {
                    for (int64_t i = 0; i < n; i++)
                        if (!(a[i] == b[i]) && bad++ == 0) {
                            first = i;
                            snprintf(why, sizeof why, "got %s%.0f, reference %.0f",
                                     isnan(a[i]) ? "unwritten " : "", isnan(a[i]) ? 0.0 : a[i],
                                     b[i]);
                        }
                }
                append(errs, sizeof errs, " | %s exact %lld/%lld", out_name(c->op, k),
                       (long long)(n - bad), (long long)n);
                if (bad) {
                    conf_fmt_index(&t->s, first, idx, sizeof idx);
                    append(problems, sizeof problems,
                           "  %s: %lld of %lld index values differ, first at %s: %s\n",
                           out_name(c->op, k), (long long)bad, (long long)n, idx, why);
                    pass = 0;
                }
            } else if (tol.exact) {
                /* CAST: the correctly rounded value of the reference's
                 * (the input widened to f64), bit for bit; NaN == NaN */
                const int dout = t->s.dtype;
                int64_t bad = 0, first = -1;
                for (int64_t i = 0; i < n; i++) {
                    const double want = conf_round_dtype(dout, b[i]);
                    const int same = isnan(want) ? isnan(a[i]) != 0
                                                 : a[i] == want && !signbit(a[i]) == !signbit(want);
                    if (!same && bad++ == 0) first = i;
                }
                const int64_t unset = dd.out[k].unset;
                append(errs, sizeof errs, " | %s exact %lld/%lld", out_name(c->op, k),
                       (long long)(n - bad), (long long)n);
                if (unset) {
                    append(problems, sizeof problems,
                           "  %s: %lld of %lld elements not written (still the prefill NaN)\n",
                           out_name(c->op, k), (long long)unset, (long long)n);
                    pass = 0;
                }
                if (bad) {
                    const int din = cc.in[0].s.dtype, w = 2 * (int)hcga_dtype_size(dout);
                    const double x = first < cc.in[0].extent ? cc.in[0].host[first] : NAN;
                    const double want = conf_round_dtype(dout, b[first]);
                    conf_fmt_index(&t->s, first, idx, sizeof idx);
                    append(problems, sizeof problems,
                           "  %s: %lld of %lld values are not the correctly rounded %s (nearest, "
                           "ties to even), first at %s: x = %a (%s), got %a (0x%0*llx), expected "
                           "%a (0x%0*llx)\n",
                           out_name(c->op, k), (long long)bad, (long long)n,
                           hcga_dtype_name(dout), idx, x, hcga_dtype_name(din), a[first], w,
                           (unsigned long long)conf_value_bits(dout, a[first]), want, w,
                           (unsigned long long)conf_value_bits(dout, want));
                    pass = 0;
                }
                conf_err e;
                conf_compare(a, b, n, 0.0, &e);
                if (e.nmse > worst_nmse) worst_nmse = e.nmse;
                if (e.maxerr > worst_max) worst_max = e.maxerr;
                if (bad || unset) worst_ratio = INFINITY;
            } else {
                conf_err e;
                conf_compare(a, b, n, floor_scale, &e);
                int ok = e.nan_count == 0 && e.nmse <= tol.nmse && e.maxerr <= tol.maxerr;
                append(errs, sizeof errs, " | %s nmse %.1e%s%.0e max %.1e%s%.0e",
                       out_name(c->op, k), e.nmse, e.nmse <= tol.nmse ? "<=" : ">", tol.nmse,
                       e.maxerr, e.maxerr <= tol.maxerr ? "<=" : ">", tol.maxerr);
                if (e.nan_count) {
                    conf_fmt_index(&t->s, e.first_nan, idx, sizeof idx);
                    append(problems, sizeof problems,
                           "  %s: %lld of %lld elements not written or not finite (first at %s)\n",
                           out_name(c->op, k), (long long)e.nan_count, (long long)n, idx);
                }
                if (!ok) pass = 0;
                if (e.nmse > worst_nmse) worst_nmse = e.nmse;
                if (e.maxerr > worst_max) worst_max = e.maxerr;
                double ratio = fmax(e.nmse / tol.nmse, e.maxerr / tol.maxerr);
                if (e.nan_count) ratio = INFINITY;
                if (ratio > worst_ratio) worst_ratio = ratio;
            }
        }
        free(av); free(rv); free(a); free(b); free(offs);
    }
    note_stats(r, tag, c->op, worst_nmse, worst_max, worst_ratio, ms);
    if (dtype == HCGA_F32) {
        int rej = check_rejects(r->dut, &dd, problems, sizeof problems);
        if (rej < 0) pass = 0;
        else append(errs, sizeof errs, " | rejects bad calls");
    }

report:
    fprintf(out, "%s  %-22s %s%s | %.2f ms\n", skipped ? "SKIP" : pass ? "PASS" : "FAIL", tag,
            line, errs, ms);
    if (skipped) {
        fputs(problems, out);
        pass = -1;
    } else if (!pass) {
        fputs(problems, out);
        conf_print_repro(r, lc, dtype, CONF_MODE_TEST);
    } else if (problems[0]) {
        fputs(problems, out);
    }
    conf_dev_free(&dd);
    conf_dev_free(&rd);
    conf_case_free(&rc);
    conf_case_free(&cc);
    return pass;
}
