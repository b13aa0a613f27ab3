/*
 * conformance.c - the suite's driver: shape files, backends, modes, summary.
 */
#include "conf_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/progress.h"

#ifndef HCGA_SRCDIR
#error "HCGA_SRCDIR must be defined by the build (Makefile.am)"
#endif
#ifndef HCGA_PKGDATADIR
#error "HCGA_PKGDATADIR must be defined by the build (conformance/conformance.mk)"
#endif

#define SHAPES_FULL "hcga_w32_b2.txt"
#define SHAPES_EDGE "edge.txt"
#define SHAPES_QUICK "quick.txt"

void hcga_conformance_default_opts(conf_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->reference = "cpu";
    o->mode = CONF_MODE_TEST;
    o->op = -1;
    o->seed = 1;
    o->dtypes = 1 << HCGA_F32;
    o->case_index = -1;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int hcga_conformance_find_shapes(const char *name, char *out, size_t out_len)
{
    if (is_file(name)) {
        snprintf(out, out_len, "%s", name);
        return 0;
    }
    if (strchr(name, '/')) return -1;
    const char *dirs[] = {HCGA_SRCDIR "/conformance/shapes", HCGA_PKGDATADIR "/shapes"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int n = snprintf(out, out_len, "%s/%s", dirs[i], name);
        if (n > 0 && (size_t)n < out_len && is_file(out)) return 0;
    }
    return -1;
}

static int open_be(const conf_opts *o, const char *name, const char *options, hcga_be **be,
                   char *err, size_t err_len)
{
    return hcga_be_open_threads(name, o->device, o->threads, options, be, err, err_len);
}

/* Load the selected cases.  Returns 0, or -1 after printing why. */
static int load_cases(const conf_opts *o, FILE *out, conf_loaded_case **cases, int *ncases,
                      char (*files)[4096], int *nfiles)
{
    const char *names[2];
    int nn = 0;
    *nfiles = 0;
    if (o->shapes) {
        names[nn++] = o->shapes;
    } else if (o->quick) {
        names[nn++] = SHAPES_QUICK;
    } else {
        char tmp[4096];
        if (hcga_conformance_find_shapes(SHAPES_FULL, tmp, sizeof tmp) == 0) names[nn++] = SHAPES_FULL;
        else fprintf(out, "note: %s not found; the full set is %s alone\n", SHAPES_FULL, SHAPES_EDGE);
        names[nn++] = SHAPES_EDGE;
    }
    if (o->case_index >= 0 && nn > 1) {
        fprintf(stderr, "hcga conformance: --case needs --shapes FILE (or --quick)\n");
        return -1;
    }
    conf_loaded_case *all = NULL;
    int n = 0;
    for (int f = 0; f < nn; f++) {
        if (hcga_conformance_find_shapes(names[f], files[f], sizeof files[f])) {
            fprintf(stderr, "hcga conformance: shape file '%s' not found (looked in the current "
                    "directory, %s/conformance/shapes and %s/shapes)\n", names[f], HCGA_SRCDIR,
                    HCGA_PKGDATADIR);
            free(all);
            return -1;
        }
        hcga_shape_case *cs;
        int cnt;
        char err[1024];
        if (hcga_shapefile_load(files[f], &cs, &cnt, err, sizeof err)) {
            fprintf(stderr, "hcga conformance: %s\n", err);
            free(all);
            return -1;
        }
        conf_loaded_case *na = realloc(all, (size_t)(n + cnt + 1) * sizeof *na);
        if (!na) {
            free(cs);
            free(all);
            fprintf(stderr, "hcga conformance: out of memory\n");
            return -1;
        }
        all = na;
        for (int i = 0; i < cnt; i++) {
            if (o->op >= 0 && cs[i].op != o->op) continue;
            if (o->case_index >= 0 && i != o->case_index) continue;
            all[n].c = cs[i];
            all[n].file = files[f];
            all[n].index = i;
            n++;
        }
        if (o->case_index >= 0 && o->case_index >= cnt) {
            fprintf(stderr, "hcga conformance: --case %d: %s has %d cases (0..%d)\n",
                    o->case_index, files[f], cnt, cnt - 1);
            free(cs);
            free(all);
            return -1;
        }
        free(cs);
        (*nfiles)++;
    }
    *cases = all;
    *ncases = n;
    return 0;
}

static void print_summary(conf_run *r, double wall_ms)
{
    FILE *out = r->out;
    static const char *const modes[] = {"test", "grad", "perf", "badargs"};
    fprintf(out, "\nsummary (%s mode, backend %s", modes[r->o->mode], r->dut->name);
    if (r->ref) fprintf(out, ", reference %s f64", r->ref->name);
    fprintf(out, "):\n");
    if (r->o->mode == CONF_MODE_PERF) {
        fprintf(out, "  %-22s %6s %12s  %s\n", "op", "cases", "sum of ms", "rate over the cases");
        double all = 0;
        for (int op = 0; op < HCGA_OP_COUNT; op++) {
            const conf_op_stats *s = &r->stats[op];
            if (!s->cases) continue;
            double sec = s->total_ms > 0 ? s->total_ms * 1e-3 : 1e-12;
            all += s->total_ms;
            if (s->flops > 0)
                fprintf(out, "  %-22s %6d %12.3f  %.2f GFLOP/s%s\n", hcga_op_name(op), s->cases,
                        s->total_ms, s->flops / sec * 1e-9, s->failed ? "  (failures)" : "");
            else
                fprintf(out, "  %-22s %6d %12.3f  %.2f GB/s%s\n", hcga_op_name(op), s->cases,
                        s->total_ms, s->bytes / sec * 1e-9, s->failed ? "  (failures)" : "");
        }
        fprintf(out, "  %-22s %6s %12.3f\n", "all", "", all);
    } else {
        fprintf(out, "  %-22s %6s %6s %6s %10s %10s %10s  %s\n", "op", "cases", "pass", "fail",
                "worst nmse", "worst max", "err/tol", "worst case");
        for (int op = 0; op < HCGA_OP_COUNT; op++) {
            const conf_op_stats *s = &r->stats[op];
            if (!s->cases) continue;
            fprintf(out, "  %-22s %6d %6d %6d %10.1e %10.1e %10.1e  %s\n", hcga_op_name(op),
                    s->cases, s->passed, s->failed, s->worst_nmse, s->worst_maxerr, s->worst_ratio,
                    s->worst_case);
        }
    }
    int missing = 0;
    int grad_cpu = r->o->mode == CONF_MODE_GRAD && !r->ref;
    const int full_run = r->o->dtypes & ((1 << HCGA_F32) | (1 << HCGA_F64));
    for (int op = 0; op < HCGA_OP_COUNT; op++) {
        if (r->o->mode == CONF_MODE_GRAD &&
            !(grad_cpu ? conf_grad_is_forward(op) : conf_grad_is_backward(op)))
            continue;
        /* a bf16/f16-only selection has only the ops with half support */
        if (!full_run && !grad_cpu && !hcga_op_get_info(op)->half) continue;
        if (!r->stats[op].cases && r->o->op < 0 && r->o->case_index < 0) {
            if (!missing++) fprintf(out, "  ops without a case in this selection:");
            fprintf(out, " %s", hcga_op_name(op));
        }
    }
    if (missing) fprintf(out, "\n");
    fprintf(out, "cases %d, passed %d, failed %d, skipped %d (%.1f s)\n", r->cases, r->passed,
            r->failed, r->skipped, wall_ms / 1000.0);
    fprintf(out, "%s\n", r->failed ? "CONFORMANCE FAILED" : "CONFORMANCE PASSED");
}

static void count(conf_run *r, int op, int res)
{
    r->cases++;
    r->stats[op].cases++;
    if (res > 0) {
        r->passed++;
        r->stats[op].passed++;
    } else if (res == 0) {
        r->failed++;
        r->stats[op].failed++;
    } else {
        r->skipped++;
        r->stats[op].skipped++;
    }
}

/* Badargs mode: no shape files, the backend under test against the
 * reference on the fixed table of malformed calls. */
static int run_badargs(const conf_opts *o, FILE *out)
{
    double t0 = conf_now_ms();
    conf_run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.out = out;
    char err[1024];
    if (open_be(o, o->backend, o->options, &r.dut, err, sizeof err)) {
        if (o->skip_unavailable) {
            fprintf(out, "SKIP: %s\n", err);
            return CONF_EXIT_SKIP;
        }
        fprintf(stderr, "hcga conformance: %s\n", err);
        return CONF_EXIT_USAGE;
    }
    conf_opts ro = *o;
    ro.device = 0;
    if (open_be(&ro, o->reference ? o->reference : "cpu", NULL, &r.ref, err, sizeof err)) {
        fprintf(stderr, "hcga conformance: reference: %s\n", err);
        hcga_be_close(r.dut);
        return CONF_EXIT_USAGE;
    }
    fprintf(out, "hcga conformance: mode badargs, backend %s (%s), reference %s\n", r.dut->name,
            r.dut->path, r.ref->name);
    int setup = conf_badargs_run(&r);
    hcga_be_close(r.ref);
    hcga_be_close(r.dut);
    if (setup) return CONF_EXIT_FAIL;
    fprintf(out, "cases %d, passed %d, failed %d (%.1f s)\n", r.cases, r.passed, r.failed,
            (conf_now_ms() - t0) / 1000.0);
    fprintf(out, "%s\n", r.failed ? "CONFORMANCE FAILED" : "CONFORMANCE PASSED");
    return r.failed ? CONF_EXIT_FAIL : CONF_EXIT_PASS;
}

int hcga_conformance_run(const conf_opts *o)
{
    FILE *out = o->out ? o->out : stdout;
    if (o->mode == CONF_MODE_BADARGS) return run_badargs(o, out);
    double t0 = conf_now_ms();
    conf_loaded_case *cases = NULL;
    int ncases = 0, nfiles = 0;
    char files[2][4096];
    if (load_cases(o, out, &cases, &ncases, files, &nfiles)) return CONF_EXIT_USAGE;

    /* the backend under test */
    hcga_plugin_entry pe;
    if (hcga_plugin_find(o->backend, &pe) != 0) {
        if (o->skip_unavailable) {
            fprintf(out, "SKIP: backend '%s' is not available: %s\n", o->backend,
                    pe.reason[0] ? pe.reason : "not found");
            free(cases);
            return CONF_EXIT_SKIP;
        }
        fprintf(stderr, "hcga conformance: backend '%s' is not available: %s\n", o->backend,
                pe.reason[0] ? pe.reason : "not found");
        free(cases);
        return CONF_EXIT_USAGE;
    }
    conf_run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.out = out;
    char err[1024];
    if (open_be(o, o->backend, o->options, &r.dut, err, sizeof err)) {
        fprintf(stderr, "hcga conformance: %s\n", err);
        free(cases);
        return o->skip_unavailable ? CONF_EXIT_SKIP : CONF_EXIT_USAGE;
    }
    int grad_on_cpu = o->mode == CONF_MODE_GRAD && strcmp(r.dut->name, "cpu") == 0;
    if (o->mode != CONF_MODE_PERF && !grad_on_cpu) {
        const char *refname = o->reference ? o->reference : "cpu";
        conf_opts ro = *o;
        ro.device = 0;
        if (open_be(&ro, refname, NULL, &r.ref, err, sizeof err)) {
            fprintf(stderr, "hcga conformance: reference: %s\n", err);
            hcga_be_close(r.dut);
            free(cases);
            return CONF_EXIT_USAGE;
        }
    }

    static const char *const modes[] = {"test", "grad", "perf", "badargs"};
    fprintf(out, "hcga conformance: mode %s, backend %s (%s), %s%s, seed %llu\n", modes[o->mode],
            r.dut->name, r.dut->path, o->quick && !o->shapes ? "quick set " : "", files[0],
            (unsigned long long)o->seed);
    if (nfiles > 1) fprintf(out, "  + %s\n", files[1]);
    if (o->mode == CONF_MODE_GRAD)
        fprintf(out, grad_on_cpu
                ? "grad: central finite differences in f64 on the CPU backend vs its backward ops\n"
                : "grad: backward-op cases of the set, compared with the reference in f64\n");

    static const int run_dtypes[] = {HCGA_F32, HCGA_F64, HCGA_BF16, HCGA_F16};
    int runs = 0;
    for (int dt = 0; dt < 4; dt++) {
        int dtype = run_dtypes[dt];
        if (!(o->dtypes & (1 << dtype))) continue;
        if (grad_on_cpu && runs++ > 0) continue; /* finite differences are f64: one run */
        /* which cases this run has: a CAST in its home run only, the ops
         * with half support only in a bf16/f16 run */
        int applies = 0;
        for (int i = 0; i < ncases; i++) applies += conf_case_applies(&cases[i].c, dtype);
        if (!grad_on_cpu && (hcga_dtype_is_half(dtype) || applies < ncases))
            fprintf(out, "%s: %d of %d cases apply, %d not applicable (%s)\n",
                    hcga_dtype_name(dtype), applies, ncases, ncases - applies,
                    hcga_dtype_is_half(dtype)
                        ? "ops without half support, and casts of another dtype's run"
                        : "casts of another dtype's run");
        if (!grad_on_cpu && hcga_dtype_is_half(dtype) && r.dut->desc->abi_minor < 1) {
            /* a plugin built for ABI 1.0 has no half dtypes at all */
            fprintf(out, "SKIP  %s run: backend '%s' is ABI 1.%u: no half support (%d cases)\n",
                    hcga_dtype_name(dtype), r.dut->name, (unsigned)r.dut->desc->abi_minor,
                    applies);
            for (int i = 0; i < ncases; i++)
                if (conf_case_applies(&cases[i].c, dtype)) count(&r, cases[i].c.op, -1);
            continue;
        }
        /* cases done / all on a terminal's stderr; not when the report goes to
         * a terminal too: its line per case is the progress then */
        hcga_progress pg;
        char pglabel[64];
        snprintf(pglabel, sizeof pglabel, "conformance %s %s", modes[o->mode],
                 hcga_dtype_name(grad_on_cpu ? HCGA_F64 : dtype));
        hcga_progress_start(&pg, pglabel, ncases);
        if (isatty(fileno(out))) hcga_progress_off(&pg);
        for (int i = 0; i < ncases; i++) {
            const conf_loaded_case *lc = &cases[i];
            int res;
            hcga_progress_update(&pg, i, hcga_op_name(lc->c.op));
            if (!grad_on_cpu && !conf_case_applies(&lc->c, dtype)) continue;
            if (o->verbose > 0) {
                /* a backend that crashes leaves this line as the last one */
                char line[1024];
                hcga_shapefile_format_case(line, sizeof line, &lc->c);
                fprintf(out, "RUN   %s#%d %s\n", lc->file, lc->index, line);
                fflush(out);
            }
            switch (o->mode) {
            case CONF_MODE_TEST:
                res = conf_test_case(&r, lc, dtype);
                break;
            case CONF_MODE_GRAD:
                if (grad_on_cpu) {
                    if (!conf_grad_is_forward(lc->c.op)) continue;
                    res = conf_grad_case(&r, lc);
                } else {
                    if (!conf_grad_is_backward(lc->c.op)) continue;
                    res = conf_test_case(&r, lc, dtype);
                }
                break;
            default:
                res = conf_perf_case(&r, lc, dtype);
                break;
            }
            count(&r, lc->c.op, res);
            fflush(out);
        }
        hcga_progress_finish(&pg);
    }
    print_summary(&r, conf_now_ms() - t0);
    if (o->stats_out) memcpy(o->stats_out, r.stats, sizeof r.stats);
    int rc = r.failed ? CONF_EXIT_FAIL : CONF_EXIT_PASS;
    if (r.cases == 0) {
        fprintf(out, "no case selected\n");
        rc = CONF_EXIT_FAIL;
    }
    if (r.ref) hcga_be_close(r.ref);
    hcga_be_close(r.dut);
    free(cases);
    return rc;
}
