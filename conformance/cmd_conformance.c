/*
 * cmd_conformance.c - `hcga [--backend NAME] conformance [options]`.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "conformance.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga conformance [options]\n"
            "       (global options first: hcga --backend NAME [--device N] [--threads N]\n"
            "        [--backend-options S] conformance ...)\n"
            "\n"
            "Certify a backend: run op calls from shape files on it and compare with the CPU\n"
            "backend in f64 (see conformance/README.md).\n"
            "\n"
            "options:\n"
            "  --mode test|grad|perf  test: outputs vs the f64 reference (default)\n"
            "                         grad: finite differences vs backward ops (CPU), or the\n"
            "                               backward-op cases vs the reference (other backends)\n"
            "                         perf: median time per case, GFLOP/s or GB/s\n"
            "  --mode badargs         malformed calls (wrong dtype, rank, aliasing, bounds,\n"
            "                         parameters): each must be refused with the reference's\n"
            "                         message, word for word (shape options do not apply)\n"
            "  --op NAME              only cases of this op (e.g. conv2d_fwd)\n"
            "  --shapes FILE          shape file (a path, or a name under the shapes directory);\n"
            "                         default: hcga_w32_b2.txt (when present) + edge.txt\n"
            "  --quick                the small set quick.txt (make check)\n"
            "  --case N               only case N (0-based) of the shape file\n"
            "  --seed S               input seed (default 1)\n"
            "  --dtype f32|f64|bf16|f16|both|all\n"
            "                         dtype run(s) of the backend under test (default f32;\n"
            "                         both: f32 and f64; all: the four).  bf16 and f16 run\n"
            "                         the ops with half support (conv, gemm, cast) only\n"
            "  --reference NAME       reference backend (default cpu)\n"
            "  --skip-unavailable     exit 77 (skip) when the backend is not usable here\n"
            "  --report FILE          certification report: test and grad modes in f32, f64,\n"
            "                         bf16 and f16, perf against the cpu backend; Markdown to\n"
            "                         FILE and JSON to FILE.json (FILE.md -> FILE.json); with\n"
            "                         --quick / --shapes / --op / --seed; --mode and --dtype\n"
            "                         do not apply\n"
            "  -h, --help             this text\n"
            "\n"
            "exit status: 0 all cases passed, 1 a case failed, 2 usage error or backend\n"
            "that cannot be opened, 77 skipped (--skip-unavailable)\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || !*s || *end || *s == '-') return -1;
    *v = x;
    return 0;
}

int cmd_conformance(int argc, char **argv, const hcga_global_opts *g)
{
    conf_opts o;
    hcga_conformance_default_opts(&o);
    o.backend = g->backend ? g->backend : "cpu";
    o.device = g->device;
    o.options = g->backend_options;
    o.threads = g->threads;
    o.verbose = g->verbosity;

    enum { O_MODE = 256, O_OP, O_SHAPES, O_QUICK, O_CASE, O_SEED, O_DTYPE, O_REF, O_SKIP, O_REPORT };
    static const struct option lopts[] = {
        {"mode", required_argument, NULL, O_MODE},
        {"op", required_argument, NULL, O_OP},
        {"shapes", required_argument, NULL, O_SHAPES},
        {"quick", no_argument, NULL, O_QUICK},
        {"case", required_argument, NULL, O_CASE},
        {"seed", required_argument, NULL, O_SEED},
        {"dtype", required_argument, NULL, O_DTYPE},
        {"reference", required_argument, NULL, O_REF},
        {"skip-unavailable", no_argument, NULL, O_SKIP},
        {"report", required_argument, NULL, O_REPORT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        uint64_t v;
        switch (ch) {
        case 'h': usage(stdout); return 0;
        case O_MODE:
            if (strcmp(optarg, "test") == 0) o.mode = CONF_MODE_TEST;
            else if (strcmp(optarg, "grad") == 0) o.mode = CONF_MODE_GRAD;
            else if (strcmp(optarg, "perf") == 0) o.mode = CONF_MODE_PERF;
            else if (strcmp(optarg, "badargs") == 0) o.mode = CONF_MODE_BADARGS;
            else {
                fprintf(stderr, "hcga conformance: --mode: '%s' is not test, grad, perf or badargs\n",
                        optarg);
                return 2;
            }
            break;
        case O_OP:
            o.op = hcga_op_from_name(optarg);
            if (o.op < 0) {
                fprintf(stderr, "hcga conformance: --op: unknown op '%s' (ops:", optarg);
                for (int i = 0; i < HCGA_OP_COUNT; i++) fprintf(stderr, " %s", hcga_op_name(i));
                fprintf(stderr, ")\n");
                return 2;
            }
            break;
        case O_SHAPES: o.shapes = optarg; break;
        case O_QUICK: o.quick = 1; break;
        case O_CASE:
            if (parse_u64(optarg, &v) || v > 100000000) {
                fprintf(stderr, "hcga conformance: --case: '%s' is not a case index\n", optarg);
                return 2;
            }
            o.case_index = (int)v;
            break;
        case O_SEED:
            if (parse_u64(optarg, &v)) {
                fprintf(stderr, "hcga conformance: --seed: '%s' is not a non-negative integer\n",
                        optarg);
                return 2;
            }
            o.seed = v;
            break;
        case O_DTYPE:
            if (strcmp(optarg, "f32") == 0) o.dtypes = 1 << HCGA_F32;
            else if (strcmp(optarg, "f64") == 0) o.dtypes = 1 << HCGA_F64;
            else if (strcmp(optarg, "bf16") == 0) o.dtypes = 1 << HCGA_BF16;
            else if (strcmp(optarg, "f16") == 0) o.dtypes = 1 << HCGA_F16;
            else if (strcmp(optarg, "both") == 0) o.dtypes = (1 << HCGA_F32) | (1 << HCGA_F64);
            else if (strcmp(optarg, "all") == 0)
                o.dtypes = (1 << HCGA_F32) | (1 << HCGA_F64) | (1 << HCGA_BF16) | (1 << HCGA_F16);
            else {
                fprintf(stderr, "hcga conformance: --dtype: '%s' is not f32, f64, bf16, f16, both "
                        "or all\n", optarg);
                return 2;
            }
            break;
        case O_REF: o.reference = optarg; break;
        case O_SKIP: o.skip_unavailable = 1; break;
        case O_REPORT: o.report = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hcga conformance: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o.report) {
        if (o.mode == CONF_MODE_BADARGS) {
            fprintf(stderr, "hcga conformance: --report runs test, grad and perf modes itself: "
                    "drop --mode\n");
            return 2;
        }
        return hcga_conformance_report(&o);
    }
    return hcga_conformance_run(&o);
}
