/*
 * perf.c - perf mode: median time per op case after a warm-up, with GFLOP/s
 * for the convolutions and GEMM and GB/s (bytes of every input and output
 * moved once; in/out tensors twice) for the rest.
 */
#include "conf_internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Floating-point operations of a case (multiply and add counted apart);
 * 0 for the bandwidth-bound ops. */
static double case_flops(const conf_case *cc)
{
    const hcga_shape_case *c = &cc->c;
    switch (c->op) {
    case HCGA_OP_CONV2D_FWD:
    case HCGA_OP_CONV2D_BN_INFER: {
        const int64_t *w = c->in[1].shape, *y = c->out[0].shape;
        return 2.0 * (double)y[0] * (double)y[1] * (double)y[2] * (double)y[3] * (double)w[1] *
               (double)w[2] * (double)w[3];
    }
    case HCGA_OP_CONV2D_BWD_DATA: {
        const int64_t *dy = c->in[0].shape, *w = c->in[1].shape;
        return 2.0 * (double)dy[0] * (double)dy[1] * (double)dy[2] * (double)dy[3] * (double)w[1] *
               (double)w[2] * (double)w[3];
    }
    case HCGA_OP_CONV2D_BWD_FILTER: {
        const int64_t *dy = c->in[1].shape, *dw = c->out[0].shape;
        return 2.0 * (double)dy[0] * (double)dy[1] * (double)dy[2] * (double)dy[3] *
               (double)dw[1] * (double)dw[2] * (double)dw[3];
    }
    case HCGA_OP_GEMM: {
        int64_t m = c->out[0].shape[0], n = c->out[0].shape[1];
        int64_t k = c->p.gemm.trans_a ? c->in[0].shape[0] : c->in[0].shape[1];
        return 2.0 * (double)m * (double)n * (double)k;
    }
    default: return 0.0;
    }
}

static double case_bytes(const conf_case *cc)
{
    double b = 0;
    for (int k = 0; k < cc->num_in; k++)
        if (cc->in[k].s.present) b += (double)cc->in[k].numel * (double)hcga_dtype_size(cc->in[k].s.dtype);
    for (int k = 0; k < cc->num_out; k++)
        if (cc->out[k].s.present)
            b += (double)cc->out[k].numel * (double)hcga_dtype_size(cc->out[k].s.dtype) *
                 (cc->out[k].inout ? 2.0 : 1.0);
    return b;
}

int conf_perf_case(conf_run *r, const conf_loaded_case *lc, int dtype)
{
    FILE *out = r->out;
    char line[1024], err[1024] = "";
    hcga_shapefile_format_case(line, sizeof line, &lc->c);
    const char *base = strrchr(lc->file, '/') ? strrchr(lc->file, '/') + 1 : lc->file;
    char tag[256];
    snprintf(tag, sizeof tag, "%s#%d %s", base, lc->index, hcga_dtype_name(dtype));

    if (conf_optional_absent(r->dut, lc->c.op, dtype)) {
        fprintf(out, "SKIP  %-22s %s\n  (%s: optional op, not provided by backend '%s')\n", tag, line,
                hcga_op_name(lc->c.op), r->dut->name);
        return -1;
    }
    conf_case cc;
    conf_dev d;
    memset(&d, 0, sizeof d);
    if (conf_case_make(&cc, &lc->c, dtype, conf_case_seed(r->o->seed, lc->index), CONF_GEN_TEST,
                       err, sizeof err)) {
        fprintf(out, "FAIL  %-22s %s\n  case: %s\n", tag, line, err);
        conf_print_repro(r, lc, dtype, CONF_MODE_PERF);
        return 0;
    }
    int pass = 1;
    double times[64];
    int reps = 0;
    if (conf_dev_setup(&d, r->dut, &cc, err, sizeof err)) {
        pass = 0;
        goto done;
    }
    /* warm-up: 2 runs (first-use compilation, algorithm selection) */
    double first = 0;
    for (int i = 0; i < 2; i++) {
        double t0 = conf_now_ms();
        if (conf_dev_run(&d) != HCGA_OK) {
            snprintf(err, sizeof err, "%s", hcga_be_error(r->dut));
            pass = 0;
            goto done;
        }
        first = conf_now_ms() - t0;
    }
    /* repeats: up to 25 (5 with --quick), stopping after ~1 s of runs */
    int max_reps = r->o->quick ? 5 : 25;
    double budget = r->o->quick ? 200.0 : 1000.0, spent = 0;
    if (first > budget || r->o->perf_fast) max_reps = 3;
    for (reps = 0; reps < max_reps && (reps < 3 || spent < budget); reps++) {
        double t0 = conf_now_ms();
        if (conf_dev_run(&d) != HCGA_OK) {
            snprintf(err, sizeof err, "%s", hcga_be_error(r->dut));
            pass = 0;
            goto done;
        }
        times[reps] = conf_now_ms() - t0;
        spent += times[reps];
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);

done:;
    if (!pass) {
        fprintf(out, "FAIL  %-22s %s\n  %s\n", tag, line, err);
        conf_print_repro(r, lc, dtype, CONF_MODE_PERF);
    } else {
        double med = times[reps / 2];
        double fl = case_flops(&cc), by = case_bytes(&cc);
        double sec = med > 0 ? med * 1e-3 : 1e-9;
        if (fl > 0)
            fprintf(out, "PERF  %-22s %s | median %.3f ms (min %.3f, %d runs) %.2f GFLOP/s\n", tag,
                    line, med, times[0], reps, fl / sec * 1e-9);
        else
            fprintf(out, "PERF  %-22s %s | median %.3f ms (min %.3f, %d runs) %.2f GB/s\n", tag,
                    line, med, times[0], reps, by / sec * 1e-9);
        r->stats[lc->c.op].total_ms += med;
        r->stats[lc->c.op].flops += fl;
        r->stats[lc->c.op].bytes += by;
    }
    conf_dev_free(&d);
    conf_case_free(&cc);
    return pass;
}
