/*
 * conformance.h - the backend conformance suite behind `hcga conformance`.
 *
 * A vendor certifies a backend by running every op call of a shape file
 * (shapefile.h) on it and on the CPU reference in F64:
 *
 *   test: outputs compared with per-op tolerances; NaN-prefilled outputs with
 *         guard regions catch unwritten elements and out-of-bounds writes.
 *         A run per dtype (--dtype): f32, f64, and bf16 / f16 for the ops
 *         with half support (CAST, convolutions, GEMM), CAST bit for bit.
 *   grad: on the CPU, central finite differences in F64 against every backward
 *         op (the pairing table in grad.c); on another backend, test mode over
 *         the backward-op cases.
 *   perf: median time per case, GFLOP/s (conv, gemm) or GB/s (the rest).
 *   badargs: a fixed table of malformed calls (badargs.c), each to be refused
 *         with HCGA_ERR_INVALID and the reference's message, word for word.
 *
 * The suite's documentation (format, tolerances and why) is conformance/README.md.
 */
#ifndef HCGA_CONFORMANCE_H
#define HCGA_CONFORMANCE_H

#include <stdint.h>
#include <stdio.h>

#include "backend/backend.h"
#include "hcga_plugin.h"
#include "shapefile.h"

typedef enum conf_mode {
    CONF_MODE_TEST = 0, CONF_MODE_GRAD, CONF_MODE_PERF,
    CONF_MODE_BADARGS /* malformed calls: same refusal and message as the reference */
} conf_mode;

/* Exit codes of hcga_conformance_run (and of the command). */
#define CONF_EXIT_PASS 0
#define CONF_EXIT_FAIL 1
#define CONF_EXIT_USAGE 2
#define CONF_EXIT_SKIP 77 /* backend unavailable and skip_unavailable set */

typedef struct conf_opts {
    const char *backend;   /* backend under test ("cpu") */
    int device;
    const char *options;   /* create() options of the backend under test, or NULL */
    int threads;           /* > 0: "threads=N" is passed to both backends */
    const char *reference; /* reference backend, "cpu" when NULL */
    conf_mode mode;
    int op;                /* -1: every op, else only this hcga_op */
    const char *shapes;    /* shape file; NULL: the default set (or quick.txt with quick) */
    int quick;
    uint64_t seed;
    int dtypes;            /* bit mask of runs: 1 << HCGA_F32, HCGA_F64, HCGA_BF16,
                            * HCGA_F16 (run in that order; a bf16/f16 run has the
                            * ops with half support only) */
    int case_index;        /* -1: every case, else only this 0-based case of the file */
    int skip_unavailable;  /* backend not usable -> CONF_EXIT_SKIP instead of failure */
    int verbose;
    FILE *out;             /* report stream (stdout when NULL) */
    /* Used by the certification report (report.c): */
    void *stats_out;       /* NULL, or conf_op_stats[HCGA_OP_COUNT] (conf_internal.h)
                            * that receives the run's per-op statistics */
    int perf_fast;         /* perf mode: 2 warm-ups and 3 timed runs per case */
    const char *report;    /* --report FILE: see hcga_conformance_report */
} conf_opts;

void hcga_conformance_default_opts(conf_opts *o);

/* Runs the suite; returns one of the CONF_EXIT_* codes. */
int hcga_conformance_run(const conf_opts *o);

/* The certification report (`hcga conformance --report FILE`): test and grad
 * modes in f32, f64, bf16 and f16, perf mode on the backend and on the CPU
 * backend, every op x dtype x mode with its worst error against the f64
 * reference, the tolerance, pass/fail, time against the CPU backend, device
 * and library versions and the repro line of every failure; written as
 * Markdown to o->report and as JSON next to it (FILE.md -> FILE.json, else
 * FILE.json).  Returns CONF_EXIT_PASS when every test and grad case passed. */
int hcga_conformance_report(const conf_opts *o);

/* Resolve a shape file name: an existing path as is, else NAME looked up in
 * HCGA_SRCDIR/conformance/shapes and then the installed pkgdatadir/shapes.
 * Returns 0 and the path in out, or -1. */
int hcga_conformance_find_shapes(const char *name, char *out, size_t out_len);

#endif
