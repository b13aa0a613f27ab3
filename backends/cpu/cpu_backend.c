/*
 * cpu_backend.c - the reference CPU backend: plugin descriptor, instances,
 * host buffers, options and the synchronous stream.
 */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_internal.h"

#define CPU_PLUGIN_VERSION "1.1"
#define CPU_MAX_THREADS 1024

hcga_status cpu_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return code;
}

void *cpu_ws(hcga_backend *be, int slot, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (be->ws_size[slot] >= bytes) return be->ws[slot];
    void *p = NULL;
    if (posix_memalign(&p, CPU_ALIGN, bytes) != 0) return NULL;
    free(be->ws[slot]);
    be->ws[slot] = p;
    be->ws_size[slot] = bytes;
    return p;
}

int cpu_scratch_reserve(hcga_backend *be, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    for (int t = 0; t < be->threads; t++) {
        if (be->scratch_size[t] >= bytes) continue;
        void *p = NULL;
        if (posix_memalign(&p, CPU_ALIGN, bytes) != 0) return -1;
        free(be->scratch[t]);
        be->scratch[t] = p;
        be->scratch_size[t] = bytes;
    }
    return 0;
}

void cpu_blas_threads(hcga_backend *be)
{
    (void)be;
    /* OpenBLAS keeps one process-wide setting that others in the process may
     * change; every call of ours must run in the calling thread only (pool
     * threads call BLAS concurrently on disjoint slices). */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* ---- thread count and options ---- */

/* Parses a positive decimal integer <= CPU_MAX_THREADS; 0 on success. */
static int parse_threads(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > CPU_MAX_THREADS) return -1;
    *out = (int)v;
    return 0;
}

/* Default thread count: $HCGA_THREADS, else the online CPUs. */
static int default_threads(int *out, char *err, size_t err_len)
{
    const char *env = getenv("HCGA_THREADS");
    if (env && *env) {
        if (parse_threads(env, strlen(env), out) != 0) {
            snprintf(err, err_len, "cpu: HCGA_THREADS='%.64s' is not an integer in 1..%d", env,
                     CPU_MAX_THREADS);
            return -1;
        }
        return 0;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > CPU_MAX_THREADS) n = CPU_MAX_THREADS;
    *out = (int)n;
    return 0;
}

static int parse_options(const char *opts, int *threads, char *err, size_t err_len)
{
    if (!opts) return 0;
    const char *p = opts;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            if (!eq) {
                snprintf(err, err_len, "cpu: option '%.*s' is not key=value (known: threads=N)",
                         (int)(len > 64 ? 64 : len), p);
                return -1;
            }
            size_t klen = (size_t)(eq - p);
            const char *val = eq + 1;
            size_t vlen = len - klen - 1;
            if (klen == 7 && memcmp(p, "threads", 7) == 0) {
                if (parse_threads(val, vlen, threads) != 0) {
                    snprintf(err, err_len, "cpu: option threads='%.*s' is not an integer in 1..%d",
                             (int)(vlen > 64 ? 64 : vlen), val, CPU_MAX_THREADS);
                    return -1;
                }
            } else {
                snprintf(err, err_len, "cpu: unknown option '%.*s' (known: threads)",
                         (int)(klen > 64 ? 64 : klen), p);
                return -1;
            }
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* ---- iface ---- */

static int cpu_probe(char *why, size_t why_len)
{
    if (why && why_len) why[0] = '\0';
    return 1;
}

static void openblas_version(char *out, size_t len)
{
    /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ..." */
    const char *cfg = openblas_get_config();
    const char *v = cfg ? strstr(cfg, "OpenBLAS ") : NULL;
    if (!v) {
        snprintf(out, len, "unknown");
        return;
    }
    v += 9;
    size_t n = strcspn(v, " ");
    snprintf(out, len, "%.*s", (int)(n > 32 ? 32 : n), v);
}

static hcga_status cpu_device_info(int device, hcga_device_info *info)
{
    if (device != 0 || !info) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    int threads = 1;
    char err[256];
    if (default_threads(&threads, err, sizeof err) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : (int)n;
    }
    char ver[40];
    openblas_version(ver, sizeof ver);
    snprintf(info->name, sizeof info->name, "CPU x%d (OpenBLAS %s)", threads, ver);
    const char *cfg = openblas_get_config();
    const char *core = openblas_get_corename();
    snprintf(info->version, sizeof info->version, "hcga cpu %s; %.80s; core %.24s",
             CPU_PLUGIN_VERSION, cfg ? cfg : "OpenBLAS", core ? core : "unknown");
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0) info->memory_total = (uint64_t)pages * (uint64_t)psz;
    if (avail > 0 && psz > 0) info->memory_free = (uint64_t)avail * (uint64_t)psz;
    return HCGA_OK;
}

static void cpu_destroy(hcga_backend *be)
{
    if (!be) return;
    cpu_pool_destroy(be->pool);
    for (int i = 0; i < CPU_NUM_WS; i++) free(be->ws[i]);
    if (be->scratch)
        for (int t = 0; t < be->threads; t++) free(be->scratch[t]);
    free(be->scratch);
    free(be->scratch_size);
    free(be);
}

static hcga_status cpu_create(int device, const char *options, hcga_backend **out, char *err,
                              size_t err_len)
{
    char tmp[8];
    if (!err || err_len == 0) {
        err = tmp;
        err_len = sizeof tmp;
    }
    err[0] = '\0';
    if (!out) {
        snprintf(err, err_len, "cpu: create called without an output pointer");
        return HCGA_ERR_INVALID;
    }
    *out = NULL;
    if (device != 0) {
        snprintf(err, err_len, "cpu: device %d does not exist (the cpu backend has device 0 only)",
                 device);
        return HCGA_ERR_INVALID;
    }
    int threads = 1;
    if (default_threads(&threads, err, err_len) != 0) return HCGA_ERR_INVALID;
    if (parse_options(options, &threads, err, err_len) != 0) return HCGA_ERR_INVALID;

    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "cpu: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
    be->threads = threads;
    be->scratch = calloc((size_t)threads, sizeof *be->scratch);
    be->scratch_size = calloc((size_t)threads, sizeof *be->scratch_size);
    if (!be->scratch || !be->scratch_size) {
        cpu_destroy(be);
        snprintf(err, err_len, "cpu: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
    be->pool = cpu_pool_create(threads, err, err_len);
    if (!be->pool) {
        cpu_destroy(be);
        return HCGA_ERR_NOMEM;
    }
    cpu_blas_threads(be);
    *out = be;
    return HCGA_OK;
}

static const char *cpu_last_error(hcga_backend *be)
{
    return be ? be->err : "cpu: no backend instance";
}

static hcga_status cpu_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    if (!out) return cpu_fail(be, HCGA_ERR_INVALID, "buffer_alloc: no output pointer");
    *out = NULL;
    if (bytes > (uint64_t)SIZE_MAX - CPU_ALIGN)
        return cpu_fail(be, HCGA_ERR_NOMEM, "buffer_alloc: %llu bytes is too large",
                        (unsigned long long)bytes);
    hcga_buffer *b = malloc(sizeof *b);
    if (!b) return cpu_fail(be, HCGA_ERR_NOMEM, "buffer_alloc: out of host memory");
    size_t sz = (size_t)bytes;
    size_t rounded = (sz + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (rounded == 0) rounded = CPU_ALIGN;
    b->data = NULL;
    if (posix_memalign(&b->data, CPU_ALIGN, rounded) != 0) {
        free(b);
        return cpu_fail(be, HCGA_ERR_NOMEM, "buffer_alloc: out of host memory for %llu bytes",
                        (unsigned long long)bytes);
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void cpu_buffer_free(hcga_backend *be, hcga_buffer *buf)
{
    (void)be;
    if (!buf) return;
    free(buf->data);
    free(buf);
}

static hcga_status check_range(hcga_backend *be, const char *what, hcga_buffer *buf,
                               uint64_t offset, const void *p, uint64_t bytes)
{
    if (!buf) return cpu_fail(be, HCGA_ERR_INVALID, "%s: NULL buffer", what);
    if (!p && bytes) return cpu_fail(be, HCGA_ERR_INVALID, "%s: NULL host pointer", what);
    if (offset > buf->size || bytes > buf->size - offset)
        return cpu_fail(be, HCGA_ERR_INVALID,
                        "%s: range [%llu, %llu) is outside the buffer of %llu bytes", what,
                        (unsigned long long)offset, (unsigned long long)(offset + bytes),
                        (unsigned long long)buf->size);
    return HCGA_OK;
}

static hcga_status cpu_buffer_write(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                    const void *src, uint64_t bytes)
{
    hcga_status st = check_range(be, "buffer_write", buf, offset, src, bytes);
    if (st) return st;
    if (bytes) memmove((char *)buf->data + offset, src, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status cpu_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset, void *dst,
                                   uint64_t bytes)
{
    hcga_status st = check_range(be, "buffer_read", buf, offset, dst, bytes);
    if (st) return st;
    if (bytes) memmove(dst, (char *)buf->data + offset, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status cpu_synchronize(hcga_backend *be)
{
    (void)be; /* every op completes before it returns */
    return HCGA_OK;
}

static const hcga_backend_iface cpu_iface = {
    .struct_size = (uint32_t)sizeof(hcga_backend_iface),
    .probe = cpu_probe,
    .device_info = cpu_device_info,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .last_error = cpu_last_error,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .synchronize = cpu_synchronize,
    .ops = cpu_op_table,
    .num_ops = HCGA_OP_COUNT,
    .supports = cpu_supports,
};

static const hcga_backend_iface *cpu_get_iface(void)
{
    return &cpu_iface;
}

__attribute__((visibility("default"))) const hcga_plugin_descriptor hcga_plugin_descriptor_v1 =
    HCGA_PLUGIN_DESCRIPTOR_INIT("cpu",
                                "reference CPU backend: pthreads + OpenBLAS, f32 and f64 "
                                "(bf16/f16 through f32)",
                                CPU_PLUGIN_VERSION, cpu_get_iface);
