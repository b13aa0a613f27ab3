/*
 * cli_api.h - what `hcga index` and `hcga search` share (cli_api.c): the
 * model options both take, opening a context and a model through the public
 * API with the global options, and collecting image files from directories.
 * These commands use libhcga's public API only (include/hcga/hcga.h).
 */
#ifndef HCGA_CLI_API_H
#define HCGA_CLI_API_H

#include "cli/commands.h"
#include "hcga/hcga.h"

/* --weights, --config, --batch, --flip, --precision */
typedef struct hcga_cli_model_args {
    const char *weights, *config;
    int batch, flip;
    hcga_precision precision;
} hcga_cli_model_args;

void hcga_cli_model_args_init(hcga_cli_model_args *a);
/* If argv[i] is one of the model options, take it (and its value): returns
 * the number of arguments used (1 or 2), 0 when argv[i] is not one, -1
 * after printing "hcga CMD: ..." for a bad value. */
int hcga_cli_model_arg(hcga_cli_model_args *a, const char *cmd, int argc, char **argv, int i);
/* The arguments index and search share: a model option, an unknown
 * --option (an error), or an image file/directory added to p.  Returns the
 * number of arguments used (1 or 2), or the exit status after printing the
 * problem: -2 (usage) or -1 (a path that cannot be read). */
struct hcga_cli_paths;
int hcga_cli_take_arg(hcga_cli_model_args *a, struct hcga_cli_paths *p, const char *cmd, int argc, char **argv,
                      int i);

/* Open a context with the global options and load the model; prints
 * "hcga CMD: <message>" and returns -1 on failure (*ctx may then be set:
 * free it). */
int hcga_cli_open_model(const hcga_global_opts *g, const hcga_cli_model_args *a, const char *cmd,
                        hcga_context **ctx, hcga_model **m);

/* A growing list of paths. */
typedef struct hcga_cli_paths {
    char **path;
    int n, cap;
} hcga_cli_paths;

/* Add a JPEG/PNG file, or every such file under a directory (recursively,
 * sorted by path).  Returns 0, or -1 after printing "hcga CMD: PATH: why". */
int hcga_cli_paths_add_images(hcga_cli_paths *p, const char *arg, const char *cmd);
void hcga_cli_paths_free(hcga_cli_paths *p);

#endif
