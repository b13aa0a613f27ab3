/*
 * model_cli.c - helpers shared by the model commands.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_cli.h"

int hcga_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int hcga_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int64_t hcga_val_numel(const hg_graph *g, hg_val v)
{
    int64_t n = 1;
    const int64_t *s = hg_shape(g, v);
    for (int i = 0; i < hg_ndim(g, v); i++) n *= s[i];
    return n;
}

int hcga_write_value(hg_exec *ex, const hg_graph *g, hg_val v, const char *name, st_writer *w,
                     char *err, size_t err_len)
{
    int64_t n = hcga_val_numel(g, v);
    int is_index = (hg_val_dtype(g, v) == HCGA_I64 || hg_val_dtype(g, v) == HCGA_I32);
    size_t esz = is_index ? sizeof(int64_t) : sizeof(float);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * esz);
    if (!buf) {
        snprintf(err, err_len, "out of memory reading %s", name);
        return -1;
    }
    if (hg_exec_read(ex, v, buf, is_index ? HCGA_I64 : HCGA_F32)) {
        snprintf(err, err_len, "reading %s: %s", name, hg_exec_error(ex));
        free(buf);
        return -1;
    }
    int rc = st_writer_add(w, name, is_index ? ST_I64 : ST_F32, hg_ndim(g, v), hg_shape(g, v), buf);
    free(buf);
    if (rc) {
        snprintf(err, err_len, "duplicate output tensor %s", name);
        return -1;
    }
    return 0;
}

double hcga_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double hcga_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hcga_shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    if (!len) return;
    buf[0] = 0;
    o += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}
