/*
 * util.h - small helpers with no hcga dependencies, used by every layer:
 * strict number parsing (option values, checkpoint metadata), shape strings
 * for messages, and clocks.  (Formerly model_cli.h; the graph-value helpers
 * it also had are in model/model_io.h.)
 */
#ifndef HCGA_UTIL_H
#define HCGA_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a whole string as a number; 0 on success, -1 otherwise. */
int hcga_parse_double(const char *s, double *out);
int hcga_parse_int(const char *s, long long min, long long max, long long *out);

/* "[2,3,128,64]" */
void hcga_shape_str(char *buf, size_t len, int ndim, const int64_t *shape);

/* Monotonic clock in seconds. */
double hcga_now(void);
/* CPU time of the process (all threads) in seconds. */
double hcga_cpu_now(void);

#endif
