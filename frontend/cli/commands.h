/*
 * commands.h - the hcga command table.
 *
 * To add a command `foo`:
 *   1. add ONE line to HCGA_COMMAND_LIST below:  X(foo, ONE, "one-line summary") \
 *      (RANKS instead of ONE when the command runs as several MPI ranks:
 *      `mpirun -np N hcga foo`; main.c refuses N > 1 for the others)
 *   2. define  int cmd_foo(int argc, char **argv, const hcga_global_opts *g)
 *      in your own source file (the declaration is generated below).
 * main.c dispatches `hcga [global options] foo [args]` to cmd_foo with
 * argv[0] = "foo" and argv[1..argc-1] = the command's own arguments.
 *
 * Every command must handle `--help` (and `-h`): print a usage text that
 * starts with "usage: hcga foo" to stdout and return 0 (tests/test_cli.c runs
 * `hcga <command> --help` for every command in this list).
 *
 * When parsing with getopt_long, set `optind = 0` first: main.c already used
 * getopt for the global options and glibc only resets its state on 0.
 *
 * Exit status convention (the command's return value becomes the exit status):
 *   0 success, 1 the work failed (bad data, numeric failure, test failure),
 *   2 usage error or a backend that cannot be opened.
 */
#ifndef HCGA_COMMANDS_H
#define HCGA_COMMANDS_H

#include "backend/backend.h"

/* Global options, parsed by main.c before the command name. */
typedef struct hcga_global_opts {
    const char *backend;         /* --backend NAME (default "cpu") */
    int backend_explicit;        /* 1 when --backend was given */
    int device;                  /* --device N (default 0; under mpirun the node-local rank) */
    int device_explicit;         /* 1 when --device was given */
    const char *backend_options; /* --backend-options "k=v,k=v" or NULL */
    int threads;                 /* --threads N, 0 = not given */
    int verbosity;               /* 0 default, -1 with -q, +1 per -v */
} hcga_global_opts;

/* How many ranks of a data-parallel job (frontend/dist) a command runs as. */
enum { HCGA_CMD_ONE = 1, HCGA_CMD_RANKS = 2 };

/* The command list: X(name, ONE|RANKS, "summary").  One line per command; keep the
 * continuation backslash and add new lines above the closing comment. */
#define HCGA_COMMAND_LIST(X)                                                       \
    X(backends, ONE, "list backend plugins with their devices, or why each is unavailable") \
    X(conformance, ONE, "certify a backend: op-by-op tests against the CPU in f64, gradients, timings") \
    X(config, ONE, "show the merged configuration: defaults, a YAML file, KEY VALUE overrides") \
    X(forward, ONE, "run the model on stored inputs; write outputs, gradients, one Adam step") \
    X(compare, ONE, "compare two safetensors files tensor by tensor (relative error)") \
    X(bench, RANKS, "images/s and memory of a training step or an eval forward") \
    X(shapes, ONE, "print every distinct op call of the model's graphs (conformance shapes)") \
    X(synth, ONE, "write the synthetic occluded-ReID benchmark (Market-1501 layout + part masks)") \
    X(train, RANKS, "train HCGA on a Market-1501-layout dataset, with co-parsing and evaluation") \
    X(test, ONE, "evaluate a checkpoint or stored features: Rank-1/5/10, mAP, mINP (ARM or global)") \
    X(pretrain, ONE, "pretrain a backbone on a synthetic set with part masks (ImageNet stand-in)") \
    X(parse, ONE, "co-parse chosen identities with a model and draw the part labels (PNG strips)") \
    X(index, ONE, "index a directory of images into a gallery file (features + names) for search") \
    X(search, ONE, "rank a gallery file for query images: top-k names as text or JSON, pictures") \
    /* end of the command list */

#define HCGA_DECLARE_COMMAND(name_, ranks_, summary_) \
    int cmd_##name_(int argc, char **argv, const hcga_global_opts *g);
HCGA_COMMAND_LIST(HCGA_DECLARE_COMMAND)
#undef HCGA_DECLARE_COMMAND

/* Helpers for commands (defined in main.c). */

/* 1 if arg is "--help" or "-h". */
int hcga_cli_is_help(const char *arg);

/* Open the backend chosen by the global options (g->backend, g->device,
 * g->backend_options; --threads N is passed as "threads=N" before them).
 * On failure prints "hcga: <reason>" to stderr and returns 2 (use it as the
 * exit status); returns 0 with *out set on success. */
int hcga_cli_open_backend(const hcga_global_opts *g, hcga_be **out);

#endif
