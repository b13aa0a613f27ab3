/*
 * report.c - the certification report, `hcga [--backend NAME] conformance
 * --report FILE`.  One command that certifies a backend: it runs the suite
 * in test and grad modes in each dtype (f32, f64, bf16, f16) and in perf mode
 * on the backend and on the CPU reference backend, then writes
 *   FILE       Markdown: the devices and library versions, the command, a
 *              verdict, one row per op x dtype with test and grad results
 *              (cases, worst normalised MSE and max error against the f64
 *              reference, the tolerance, the worst error/tolerance ratio),
 *              perf times on the backend and on the CPU backend and their
 *              ratio, and the repro line of every failed case;
 *   FILE.json  the same data (FILE.md gives FILE.json).
 * The shape selection (--quick, --shapes, --op, --seed, --threads) is the
 * suite's; perf runs take 3 timed runs per case (perf_fast) so that a
 * report of the full set stays within minutes.  Each sub-run's own text goes
 * to a temporary file, from which the repro lines are taken.
 */
#include "conf_internal.h"
#include "hcga_autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NDT 4
static const int dts[NDT] = {HCGA_F32, HCGA_F64, HCGA_BF16, HCGA_F16};
enum { R_TEST, R_GRAD, R_PERF, R_PERF_CPU, R_COUNT };
static const char *const rnames[R_COUNT] = {"test", "grad", "perf", "perf (cpu)"};

typedef struct sub_run {
    int ran;    /* 1: the sub-run took place */
    int rc;     /* its exit code */
    double secs;
    char note[160]; /* why it did not run, or a remark */
    conf_op_stats st[HCGA_OP_COUNT];
} sub_run;

typedef struct report {
    sub_run r[R_COUNT][NDT];
    char *repro;     /* "mode dtype: repro line\n" ..., malloc'd */
    size_t repro_len;
    int failed_cases, cases;
} report;

static void repro_add(report *rp, const char *line)
{
    size_t n = strlen(line);
    char *p = realloc(rp->repro, rp->repro_len + n + 2);
    if (!p) return;
    rp->repro = p;
    memcpy(p + rp->repro_len, line, n);
    rp->repro_len += n;
    p[rp->repro_len++] = '\n';
    p[rp->repro_len] = '\0';
}

/* Runs one sub-run of the suite with its text in a temporary file; keeps
 * the statistics and the failing cases' repro lines. */
static int sub(const conf_opts *o, report *rp, int which, int di, const char *backend, conf_mode mode)
{
    sub_run *s = &rp->r[which][di];
    conf_opts so = *o;
    so.report = NULL;
    so.backend = backend;
    if (strcmp(backend, o->backend) != 0) {
        so.options = NULL;
        so.device = 0;
    }
    so.mode = mode;
    so.dtypes = 1 << dts[di];
    so.stats_out = s->st;
    so.perf_fast = 1;
    so.verbose = 0;
    FILE *tmp = tmpfile();
    if (!tmp) {
        fprintf(stderr, "hcga conformance: --report: cannot create a temporary file\n");
        return CONF_EXIT_USAGE;
    }
    so.out = tmp;
    double t0 = conf_now_ms();
    s->rc = hcga_conformance_run(&so);
    s->secs = (conf_now_ms() - t0) / 1000.0;
    s->ran = 1;
    rewind(tmp);
    char line[4096];
    while (fgets(line, sizeof line, tmp)) {
        line[strcspn(line, "\n")] = '\0';
        const char *p = strstr(line, "repro: ");
        if (p && which != R_PERF_CPU) repro_add(rp, p + 7);
        if (strncmp(line, "no case selected", 16) == 0) snprintf(s->note, sizeof s->note, "no case applies");
    }
    fclose(tmp);
    if (s->rc == CONF_EXIT_USAGE) {
        fprintf(stderr, "hcga conformance: --report: the %s run of '%s' in %s could not start\n",
                rnames[which], backend, hcga_dtype_name(dts[di]));
        return CONF_EXIT_USAGE;
    }
    if (which == R_TEST || which == R_GRAD)
        for (int op = 0; op < HCGA_OP_COUNT; op++) {
            rp->cases += s->st[op].cases;
            rp->failed_cases += s->st[op].failed;
        }
    fprintf(stderr, "report: %-10s %-6s %-5s %6.1f s%s\n", rnames[which], backend, hcga_dtype_name(dts[di]),
            s->secs, s->rc == CONF_EXIT_FAIL && !s->note[0] ? "  (failures)" : "");
    return CONF_EXIT_PASS;
}

static void devinfo(const char *name, int device, char *buf, size_t len)
{
    /* (%.Ns: the loader's path and reason fields are long; a line is enough) */
    hcga_plugin_entry pe;
    hcga_device_info di;
    char err[512];
    if (hcga_plugin_find(name, &pe) != 0) {
        snprintf(buf, len, "%s: not available (%.300s)", name, pe.reason);
        return;
    }
    if (hcga_plugin_device_info(&pe, device, &di, err, sizeof err) != HCGA_OK) {
        snprintf(buf, len, "%s: %.200s (device info failed: %.200s)", name, pe.path, err);
        return;
    }
    snprintf(buf, len, "%s device %d: %s; %s", name, device, di.name, di.version);
}

/* JSON string body (quotes and control characters escaped). */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Markdown-safe: '|' would split a table cell. */
static void mdcell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else fputc(*s, f);
    }
}

static const char *verdict(const conf_op_stats *s)
{
    if (s->cases == 0) return "-";
    if (s->failed) return "FAIL";
    if (s->passed == 0) return "skip";
    return "pass";
}

static void fmt_res(char *b, size_t n, const conf_op_stats *s)
{
    if (s->cases == 0) snprintf(b, n, "-");
    else if (s->skipped) snprintf(b, n, "%s %d/%d (%d skipped)", verdict(s), s->passed, s->cases, s->skipped);
    else snprintf(b, n, "%s %d/%d", verdict(s), s->passed, s->cases);
}

static void cmdline(const conf_opts *o, char *b, size_t n)
{
    int k = snprintf(b, n, "hcga --backend %s", o->backend);
    if (o->device && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --device %d", o->device);
    if (o->threads && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --threads %d", o->threads);
    if (o->options && *o->options && k < (int)n)
        k += snprintf(b + k, n - (size_t)k, " --backend-options '%s'", o->options);
    if (k < (int)n) k += snprintf(b + k, n - (size_t)k, " conformance");
    if (o->quick && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --quick");
    if (o->shapes && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --shapes %s", o->shapes);
    if (o->op >= 0 && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --op %s", hcga_op_name(o->op));
    if (o->seed != 1 && k < (int)n) k += snprintf(b + k, n - (size_t)k, " --seed %llu", (unsigned long long)o->seed);
    if (k < (int)n) snprintf(b + k, n - (size_t)k, " --report %s", o->report);
}

static void write_md(FILE *f, const conf_opts *o, const report *rp, const char *dut_info, const char *cpu_info,
                     const char *cmd, const char *when, double secs)
{
    fprintf(f, "# Conformance certification: backend `%s`\n\n", o->backend);
    fprintf(f, "Generated by `%s` (hcga %s, plugin ABI %d.%d) on %s in %.0f s.\n\n", cmd, PACKAGE_VERSION,
            HCGA_ABI_MAJOR, HCGA_ABI_MINOR, when, secs);
    fprintf(f, "* backend under test: ");
    mdcell(f, dut_info);
    fprintf(f, "\n* reference (f64) and perf baseline: ");
    mdcell(f, cpu_info);
    fprintf(f, "\n* shapes: %s; seed %llu; threads %s\n", o->shapes ? o->shapes : o->quick ? "quick.txt" : "default set (hcga_w32_b2.txt + edge.txt)",
            (unsigned long long)o->seed, o->threads ? "as given" : "backend default");
    fprintf(f, "\n**Verdict: %s** (%d test and grad cases, %d failed)\n\n",
            rp->failed_cases ? "FAILED" : "PASSED", rp->cases, rp->failed_cases);
    fprintf(f, "Errors are measured against the CPU backend in f64 on the same inputs: `nmse` = "
               "sum (a-r)^2 / sum r^2, `max` = max |a-r| / max |r|; `ratio` is the worst "
               "error/tolerance over the cases (pass <= 1).  Tolerances are conformance/README.md's "
               "(`conf_op_tol`).  Grad on a non-reference backend is test mode over the backward-op "
               "cases; on the CPU backend it is finite differences, run once in f64.  Perf: the sum "
               "over the op's cases of the median of 3 timed runs (after 2 warm-ups), ms; `speed-up` = "
               "cpu / this backend.\n\n");
    fprintf(f, "| op | dtype | test | test nmse | test max | tol nmse | tol max | test ratio | grad | grad ratio | ms | cpu ms | speed-up |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int op = 0; op < HCGA_OP_COUNT; op++)
        for (int di = 0; di < NDT; di++) {
            const conf_op_stats *t = &rp->r[R_TEST][di].st[op], *g = &rp->r[R_GRAD][di].st[op];
            const conf_op_stats *p = &rp->r[R_PERF][di].st[op], *pc = &rp->r[R_PERF_CPU][di].st[op];
            if (!t->cases && !g->cases && !p->cases) continue;
            conf_tol tol = conf_op_tol(op, dts[di]);
            char tr[64], gr[64], ms[32] = "-", cms[32] = "-", sp[32] = "-", terr[96] = "- | - | - | - | -",
                 gratio[32] = "-";
            fmt_res(tr, sizeof tr, t);
            fmt_res(gr, sizeof gr, g);
            if (t->passed + t->failed > 0) /* an all-skipped row (an optional op not provided) has none */
                snprintf(terr, sizeof terr, "%.1e | %.1e | %.1e | %.1e | %.2f", t->worst_nmse, t->worst_maxerr,
                         tol.nmse, tol.maxerr, t->worst_ratio);
            if (g->passed + g->failed > 0) snprintf(gratio, sizeof gratio, "%.2f", g->worst_ratio);
            if (p->passed && !p->failed) snprintf(ms, sizeof ms, "%.3f", p->total_ms);
            if (pc->passed && !pc->failed) snprintf(cms, sizeof cms, "%.3f", pc->total_ms);
            if (p->passed && pc->passed && !p->failed && !pc->failed && p->total_ms > 0)
                snprintf(sp, sizeof sp, "%.2fx", pc->total_ms / p->total_ms);
            fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", hcga_op_name(op),
                    hcga_dtype_name(dts[di]), tr, terr, gr, gratio, ms, cms, sp);
        }
    fprintf(f, "\n## Runs\n\n| run | dtype | result | seconds | note |\n|---|---|---|---|---|\n");
    for (int w = 0; w < R_COUNT; w++)
        for (int di = 0; di < NDT; di++) {
            const sub_run *s = &rp->r[w][di];
            if (!s->ran && !s->note[0]) continue;
            fprintf(f, "| %s | %s | %s | %.1f | ", rnames[w], hcga_dtype_name(dts[di]),
                    !s->ran ? "not run" : s->rc == CONF_EXIT_PASS ? "passed" : s->note[0] ? "-" : "failed", s->secs);
            mdcell(f, s->note);
            fprintf(f, " |\n");
        }
    fprintf(f, "\n## Failures\n\n");
    if (!rp->repro_len) fprintf(f, "None.\n");
    else {
        fprintf(f, "Each line reruns one failed case:\n\n```\n%s```\n", rp->repro);
    }
}

static void write_json(FILE *f, const conf_opts *o, const report *rp, const char *dut_info, const char *cpu_info,
                       const char *cmd, const char *when, double secs)
{
    fprintf(f, "{\n  \"backend\": ");
    jstr(f, o->backend);
    fprintf(f, ",\n  \"device\": ");
    jstr(f, dut_info);
    fprintf(f, ",\n  \"reference\": ");
    jstr(f, cpu_info);
    fprintf(f, ",\n  \"command\": ");
    jstr(f, cmd);
    fprintf(f, ",\n  \"hcga_version\": ");
    jstr(f, PACKAGE_VERSION);
    fprintf(f, ",\n  \"abi\": \"%d.%d\",\n  \"date\": ", HCGA_ABI_MAJOR, HCGA_ABI_MINOR);
    jstr(f, when);
    fprintf(f, ",\n  \"seconds\": %.1f,\n  \"passed\": %s,\n  \"cases\": %d,\n  \"failed\": %d,\n  \"rows\": [",
            secs, rp->failed_cases ? "false" : "true", rp->cases, rp->failed_cases);
    int first = 1;
    static const char *const modes[3] = {"test", "grad", "perf"};
    for (int op = 0; op < HCGA_OP_COUNT; op++)
        for (int di = 0; di < NDT; di++)
            for (int m = 0; m < 3; m++) {
                const conf_op_stats *s = &rp->r[m][di].st[op];
                if (!s->cases) continue;
                conf_tol tol = conf_op_tol(op, dts[di]);
                fprintf(f, "%s\n    {\"op\": \"%s\", \"dtype\": \"%s\", \"mode\": \"%s\", \"cases\": %d, "
                           "\"passed\": %d, \"failed\": %d, \"skipped\": %d, \"result\": \"%s\"",
                        first ? "" : ",", hcga_op_name(op), hcga_dtype_name(dts[di]), modes[m], s->cases,
                        s->passed, s->failed, s->skipped, verdict(s));
                first = 0;
                if (m != 2 && s->passed + s->failed == 0) {
                    /* every case skipped (an optional op not provided): no errors to report */
                } else if (m != 2) {
                    fprintf(f, ", \"worst_nmse\": %.3e, \"worst_max\": %.3e, \"tol_nmse\": %.3e, \"tol_max\": %.3e, "
                               "\"worst_ratio\": %.3f, \"worst_case\": ",
                            s->worst_nmse, s->worst_maxerr, tol.nmse, tol.maxerr, s->worst_ratio);
                    jstr(f, s->worst_case);
                } else {
                    const conf_op_stats *c = &rp->r[R_PERF_CPU][di].st[op];
                    if (s->passed) fprintf(f, ", \"ms\": %.4f", s->total_ms);
                    if (c->cases && !c->failed) fprintf(f, ", \"cpu_ms\": %.4f", c->total_ms);
                    if (c->cases && !c->failed && s->total_ms > 0 && !s->failed)
                        fprintf(f, ", \"speedup_vs_cpu\": %.3f", c->total_ms / s->total_ms);
                }
                fprintf(f, "}");
            }
    fprintf(f, "\n  ],\n  \"repro\": [");
    first = 1;
    const char *p = rp->repro ? rp->repro : "";
    while (*p) {
        size_t n = strcspn(p, "\n");
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
        fprintf(f, "%s\n    ", first ? "" : ",");
        jstr(f, line);
        first = 0;
        p += n + (p[n] == '\n');
    }
    fprintf(f, "\n  ]\n}\n");
}

int hcga_conformance_report(const conf_opts *o)
{
    report *rp = calloc(1, sizeof *rp);
    if (!rp) {
        fprintf(stderr, "hcga conformance: --report: out of memory\n");
        return CONF_EXIT_USAGE;
    }
    double t0 = conf_now_ms();
    const int is_cpu = strcmp(o->backend, "cpu") == 0;
    int rc = CONF_EXIT_PASS;
    for (int di = 0; di < NDT && rc != CONF_EXIT_USAGE; di++) {
        rc = sub(o, rp, R_TEST, di, o->backend, CONF_MODE_TEST);
        if (rc == CONF_EXIT_USAGE) break;
        if (is_cpu && dts[di] != HCGA_F64)
            snprintf(rp->r[R_GRAD][di].note, sizeof rp->r[R_GRAD][di].note,
                     "the reference's grad mode is finite differences in f64: see the f64 row");
        else
            rc = sub(o, rp, R_GRAD, di, o->backend, CONF_MODE_GRAD);
        if (rc == CONF_EXIT_USAGE) break;
        rc = sub(o, rp, R_PERF, di, o->backend, CONF_MODE_PERF);
        if (rc == CONF_EXIT_USAGE) break;
        if (is_cpu) memcpy(&rp->r[R_PERF_CPU][di], &rp->r[R_PERF][di], sizeof rp->r[R_PERF][di]);
        else rc = sub(o, rp, R_PERF_CPU, di, "cpu", CONF_MODE_PERF);
    }
    if (rc == CONF_EXIT_USAGE) {
        free(rp->repro);
        free(rp);
        return rc;
    }
    double secs = (conf_now_ms() - t0) / 1000.0;
    char dut_info[512], cpu_info[512], cmd[1024], when[64];
    devinfo(o->backend, o->device, dut_info, sizeof dut_info);
    devinfo("cpu", 0, cpu_info, sizeof cpu_info);
    cmdline(o, cmd, sizeof cmd);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);

    char jpath[4096];
    size_t L = strlen(o->report);
    if (L > 3 && strcmp(o->report + L - 3, ".md") == 0)
        snprintf(jpath, sizeof jpath, "%.*s.json", (int)(L - 3), o->report);
    else
        snprintf(jpath, sizeof jpath, "%s.json", o->report);
    FILE *md = fopen(o->report, "w"), *js = fopen(jpath, "w");
    if (!md || !js) {
        fprintf(stderr, "hcga conformance: --report: cannot write %s\n", !md ? o->report : jpath);
        if (md) fclose(md);
        if (js) fclose(js);
        free(rp->repro);
        free(rp);
        return CONF_EXIT_USAGE;
    }
    write_md(md, o, rp, dut_info, cpu_info, cmd, when, secs);
    write_json(js, o, rp, dut_info, cpu_info, cmd, when, secs);
    int bad = ferror(md) || ferror(js);
    bad |= fclose(md) != 0;
    bad |= fclose(js) != 0;
    if (bad) {
        fprintf(stderr, "hcga conformance: --report: writing %s failed\n", o->report);
        free(rp->repro);
        free(rp);
        return CONF_EXIT_USAGE;
    }
    FILE *out = o->out ? o->out : stdout;
    fprintf(out, "report: %s and %s: %d test and grad cases, %d failed: %s\n", o->report, jpath, rp->cases,
            rp->failed_cases, rp->failed_cases ? "CERTIFICATION FAILED" : "CERTIFICATION PASSED");
    rc = rp->failed_cases ? CONF_EXIT_FAIL : CONF_EXIT_PASS;
    free(rp->repro);
    free(rp);
    return rc;
}
