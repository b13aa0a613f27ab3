/*
 * cpu_backend.c - the reference CPU backend: plugin descriptor, instances,
 * host buffers, options and the synchronous stream, and the reference graph
 * capture (ABI 1.2): between capture_begin and capture_end op calls are
 * recorded (deep copies of the arguments and tensor descriptors, checked by
 * the contract checker but not run) and capture_replay runs the recording
 * in order, so the frontend's capture path is testable without a GPU.  A
 * call that fails while capturing (a malformed call) makes capture_end
 * fail, as on CUDA, so that no recording lacks a call the caller issued.
 */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "hcga_contract.h"

#define CPU_PLUGIN_VERSION "1.2"
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

/* ---- instances and capture state ---- */

/* One recorded op call: the arguments with their tensor descriptors copied
 * (slot i of in[] is t[i], slot j of out[] is t[HCGA_MAX_OP_IN + j]); the
 * pointers in args are rebuilt at replay from `present`, since the
 * recording may move in memory while it grows. */
typedef struct cpu_rec_call {
    hcga_op_args args;
    uint32_t present; /* bit i: in[i] set; bit HCGA_MAX_OP_IN + j: out[j] set */
    hcga_tensor t[HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT];
} cpu_rec_call;

struct hcga_capture {
    cpu_rec_call *calls;
    size_t n, cap;
};

/* The plugin's instance: the backend the op files see (first, so that an
 * hcga_backend pointer is also a cpu_instance pointer) and the capture
 * state, which only this file touches. */
typedef struct cpu_instance {
    struct hcga_backend be;
    hcga_capture *rec; /* non-NULL between capture_begin and capture_end */
    /* the first call that failed while capturing: capture_end then fails
     * with its message (a recording missing a call must not be replayed) */
    hcga_status capture_st;
    char capture_err[400];
} cpu_instance;

static cpu_instance *cpu_inst(hcga_backend *be)
{
    return (cpu_instance *)be;
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

static void cpu_capture_free(hcga_backend *be, hcga_capture *rec);

static void cpu_destroy(hcga_backend *be)
{
    if (!be) return;
    cpu_capture_free(be, cpu_inst(be)->rec); /* a capture never ended */
    cpu_pool_destroy(be->pool);
    for (int i = 0; i < CPU_NUM_WS; i++) free(be->ws[i]);
    if (be->scratch)
        for (int t = 0; t < be->threads; t++) free(be->scratch[t]);
    free(be->scratch);
    free(be->scratch_size);
    free(cpu_inst(be));
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

    cpu_instance *inst = calloc(1, sizeof *inst);
    if (!inst) {
        snprintf(err, err_len, "cpu: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
    hcga_backend *be = &inst->be;
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

/* HCGA_ERR_INVALID while a capture is in progress (what the ABI allows
 * between capture_begin and capture_end is op calls only). */
static hcga_status not_capturing(hcga_backend *be, const char *what)
{
    if (!cpu_inst(be)->rec) return HCGA_OK;
    return cpu_fail(be, HCGA_ERR_INVALID,
                    "%s: not allowed while capturing (between capture_begin and capture_end)", what);
}

static hcga_status cpu_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    if (!out) return cpu_fail(be, HCGA_ERR_INVALID, "buffer_alloc: no output pointer");
    *out = NULL;
    hcga_status cst = not_capturing(be, "buffer_alloc");
    if (cst != HCGA_OK) return cst;
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
    hcga_status st = not_capturing(be, "buffer_write");
    if (st) return st;
    st = check_range(be, "buffer_write", buf, offset, src, bytes);
    if (st) return st;
    if (bytes) memmove((char *)buf->data + offset, src, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status cpu_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset, void *dst,
                                   uint64_t bytes)
{
    hcga_status st = not_capturing(be, "buffer_read");
    if (st) return st;
    st = check_range(be, "buffer_read", buf, offset, dst, bytes);
    if (st) return st;
    if (bytes) memmove(dst, (char *)buf->data + offset, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status cpu_synchronize(hcga_backend *be)
{
    /* every op completes before it returns: nothing to wait for */
    return not_capturing(be, "synchronize");
}

/* ---- graph capture (ABI 1.2) ---- */

static uint64_t rec_buffer_size(const hcga_buffer *buf)
{
    return buf->size;
}

/* Append a deep copy of the call a to the recording.  The contract checker
 * runs first, so a malformed call fails now, as it would when run. */
static hcga_status record_call(hcga_backend *be, const hcga_op_args *a, int op)
{
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, rec_buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) return cpu_fail(be, st, "%s", msg);
    hcga_capture *rec = cpu_inst(be)->rec;
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? 2 * rec->cap : 16;
        cpu_rec_call *calls = realloc(rec->calls, cap * sizeof *calls);
        if (!calls) return cpu_fail(be, HCGA_ERR_NOMEM, "%s: out of memory recording the call", hcga_op_name(op));
        rec->calls = calls;
        rec->cap = cap;
    }
    cpu_rec_call *c = &rec->calls[rec->n++];
    memset(c, 0, sizeof *c);
    c->args = *a;
    c->args.op = op;
    for (int i = 0; i < HCGA_MAX_OP_IN; i++) {
        c->args.in[i] = NULL;
        if (i < a->num_in && a->in[i]) {
            c->t[i] = *a->in[i];
            c->present |= 1u << i;
        }
    }
    for (int j = 0; j < HCGA_MAX_OP_OUT; j++) {
        c->args.out[j] = NULL;
        if (j < a->num_out && a->out[j]) {
            c->t[HCGA_MAX_OP_IN + j] = *a->out[j];
            c->present |= 1u << (HCGA_MAX_OP_IN + j);
        }
    }
    return HCGA_OK;
}

/* Every op entry of the plugin: recorded while capturing, else run. */
static hcga_status cpu_call(hcga_backend *be, const hcga_op_args *a, int op)
{
    if (!be || !a) return HCGA_ERR_INVALID;
    cpu_instance *inst = cpu_inst(be);
    if (!inst->rec) return cpu_op_table[op](be, a);
    hcga_status st = record_call(be, a, op);
    if (st != HCGA_OK && inst->capture_st == HCGA_OK) {
        inst->capture_st = st;
        snprintf(inst->capture_err, sizeof inst->capture_err, "%.399s", be->err);
    }
    return st;
}

#define HCGA_OP(id_, ...)                                                         \
    static hcga_status call_##id_(hcga_backend *be, const hcga_op_args *a)       \
    {                                                                             \
        return cpu_call(be, a, HCGA_OP_##id_);                                    \
    }
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP

static const hcga_op_fn cpu_call_table[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = call_##id_,
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
};

static hcga_status cpu_capture_begin(hcga_backend *be)
{
    if (cpu_inst(be)->rec)
        return cpu_fail(be, HCGA_ERR_INVALID, "capture_begin: a capture is already in progress");
    hcga_capture *rec = calloc(1, sizeof *rec);
    if (!rec) return cpu_fail(be, HCGA_ERR_NOMEM, "capture_begin: out of host memory");
    cpu_inst(be)->rec = rec;
    cpu_inst(be)->capture_st = HCGA_OK;
    cpu_inst(be)->capture_err[0] = '\0';
    return HCGA_OK;
}

static hcga_status cpu_capture_end(hcga_backend *be, hcga_capture **out)
{
    if (!out) return cpu_fail(be, HCGA_ERR_INVALID, "capture_end: no output pointer");
    *out = NULL;
    if (!cpu_inst(be)->rec)
        return cpu_fail(be, HCGA_ERR_INVALID, "capture_end: no capture in progress (capture_begin first)");
    cpu_instance *inst = cpu_inst(be);
    hcga_capture *rec = inst->rec;
    inst->rec = NULL;
    if (inst->capture_st != HCGA_OK) {
        cpu_capture_free(be, rec);
        return cpu_fail(be, inst->capture_st, "capture_end: an op failed while capturing, no recording: %s",
                        inst->capture_err);
    }
    *out = rec;
    return HCGA_OK;
}

/* Run the recorded calls in order; the first failure ends the replay and
 * names the call. */
static hcga_status cpu_capture_replay(hcga_backend *be, hcga_capture *rec)
{
    hcga_status st = not_capturing(be, "capture_replay");
    if (st != HCGA_OK) return st;
    if (!rec) return cpu_fail(be, HCGA_ERR_INVALID, "capture_replay: no recording");
    for (size_t k = 0; k < rec->n; k++) {
        const cpu_rec_call *c = &rec->calls[k];
        hcga_op_args a = c->args;
        for (int i = 0; i < HCGA_MAX_OP_IN; i++)
            a.in[i] = (c->present >> i) & 1u ? &c->t[i] : NULL;
        for (int j = 0; j < HCGA_MAX_OP_OUT; j++)
            a.out[j] = (c->present >> (HCGA_MAX_OP_IN + j)) & 1u ? &c->t[HCGA_MAX_OP_IN + j] : NULL;
        st = cpu_op_table[a.op](be, &a);
        if (st != HCGA_OK) {
            char msg[sizeof be->err];
            snprintf(msg, sizeof msg, "%s", be->err);
            return cpu_fail(be, st, "recorded call %zu of %zu: %.400s", k + 1, rec->n, msg);
        }
    }
    return HCGA_OK;
}

static void cpu_capture_free(hcga_backend *be, hcga_capture *rec)
{
    (void)be;
    if (!rec) return;
    free(rec->calls);
    free(rec);
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
    .ops = cpu_call_table,
    .num_ops = HCGA_OP_COUNT,
    .supports = cpu_supports,
    /* no collectives: one process has nothing to reduce with */
    .capture_begin = cpu_capture_begin,
    .capture_end = cpu_capture_end,
    .capture_replay = cpu_capture_replay,
    .capture_free = cpu_capture_free,
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
