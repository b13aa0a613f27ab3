/*
 * model_cli.h - small helpers shared by the model commands (forward,
 * compare, bench, shapes): option values and reading graph values.
 */
#ifndef HCGA_MODEL_CLI_H
#define HCGA_MODEL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include "graph.h"
#include "safetensors.h"

/* Parse a whole string as a number; 0 on success, -1 otherwise. */
int hcga_parse_double(const char *s, double *out);
int hcga_parse_int(const char *s, long long min, long long max, long long *out);

/* Number of elements of a graph value. */
int64_t hcga_val_numel(const hg_graph *g, hg_val v);

/* Read value v of ex (F32 for float values, I64 for index values) and add
 * it to w as `name`.  Returns 0, or -1 with err. */
int hcga_write_value(hg_exec *ex, const hg_graph *g, hg_val v, const char *name, st_writer *w,
                     char *err, size_t err_len);

/* "[2,3,128,64]" */
void hcga_shape_str(char *buf, size_t len, int ndim, const int64_t *shape);

/* Monotonic clock in seconds. */
double hcga_now(void);
/* CPU time of the process (all threads) in seconds. */
double hcga_cpu_now(void);

#endif
