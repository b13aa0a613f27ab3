/*
 * dnn_backend.c - the oneDNN backend plugin (hcga_backend_onednn.so): the
 * descriptor, probe / device_info / create, host buffers, the op table and
 * the routing of each call.  Started as a copy of plugins/template/ and
 * written against plugins/hcga_plugin.h only, as an outside vendor would.
 *
 * Routing (the same every call, decided by op and dtype only, so nothing
 * falls back silently):
 *   - f32 CONV2D_FWD / BWD_DATA / BWD_FILTER, GEMM, RELU_BWD and
 *     BN_FWD_INFER run on oneDNN primitives (dnn_prims.c); RELU_FWD does
 *     not: oneDNN's ReLU maps NaN to 0 where the header keeps it;
 *   - bf16 convolutions run on oneDNN's bf16 primitives where the machine
 *     has AVX512_BF16 (oneDNN's avx512_core_bf16; option bf16=0 turns them
 *     off): products of bf16 values are exact in f32 and oneDNN accumulates
 *     in f32, so this is the ABI's definition (the f32 convolution of the
 *     widened operands, rounded once) up to the order of the f32 sums;
 *   - elsewhere the bf16 / f16 forms of the convolutions and GEMM are
 *     widened to f32, run as the f32 op above and rounded once (oneDNN 2.6
 *     has no f16 convolutions on these CPUs, and emulates bf16 without
 *     AVX512_BF16);
 *   - every op at f64 (oneDNN 2.6 has no f64 on the CPU) and the ops oneDNN
 *     has no primitive for run on the plain-C path (dnn_plain.c);
 *   - the create option plain=1 sends every op to the plain-C path.
 * A oneDNN failure is an error naming the op and the oneDNN call, never a
 * retry on the other path.
 *
 * Blocked copies (dnn_blocked.h): f32 convolutions on oneDNN leave their
 * outputs, and keep their inputs, in the primitives' formats between ops;
 * training's batch norms, ReLUs, additions and upsamplings run on such
 * copies when their inputs have them (dnn_act.c).
 * Every call goes through dnn_dispatch, which first brings the plain bytes
 * of what the op reads up to date (dirty copies written back) and drops the
 * copies of what it writes; buffer_read / buffer_write / buffer_free do the
 * same for the frontend's own accesses.
 *
 * Threads: one count per instance (option threads=N, else $HCGA_THREADS,
 * else the online CPUs), set with omp_set_num_threads before each op; oneDNN
 * (OpenMP runtime) and the plain-C loops both use it.  With a fixed count,
 * oneDNN's CPU primitives and the plain-C loops (static schedules, sums in
 * orders fixed by the sizes) give the same bits on every run.
 */
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dnn_internal.h"


hcga_status dnn_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return code;
}

void *dnn_ws(hcga_backend *be, int slot, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (be->ws_size[slot] >= bytes) return be->ws[slot];
    void *p = NULL;
    if (posix_memalign(&p, DNN_ALIGN, bytes) != 0) return NULL;
    free(be->ws[slot]);
    be->ws[slot] = p;
    be->ws_size[slot] = bytes;
    return p;
}

void dnn_threads(hcga_backend *be)
{
    if (omp_get_max_threads() != be->threads) omp_set_num_threads(be->threads);
}

/* ---- options ---- */

static int parse_uint(const char *s, size_t len, int lo, int hi, int *out)
{
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int default_threads(int *out, char *err, size_t err_len)
{
    const char *env = getenv("HCGA_THREADS");
    if (env && *env) {
        if (parse_uint(env, strlen(env), 1, DNN_MAX_THREADS, out) != 0) {
            snprintf(err, err_len, "onednn: HCGA_THREADS='%.64s' is not an integer in 1..%d", env,
                     DNN_MAX_THREADS);
            return -1;
        }
        return 0;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *out = n < 1 ? 1 : n > DNN_MAX_THREADS ? DNN_MAX_THREADS : (int)n;
    return 0;
}

#define DNN_BLOCKED_MB_DEFAULT 2048 /* or a quarter of the machine's memory, if less */
#define DNN_BLOCKED_MB_MAX (1 << 20)

/* The default cap of the blocked copies, MiB: DNN_BLOCKED_MB_DEFAULT, or a
 * quarter of the physical memory on a smaller machine (training HRNet-W32
 * at batch 8 keeps about 1.6 GiB of copies; a board with 2 GiB should not). */
static int default_blocked_mb(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || ps <= 0) return DNN_BLOCKED_MB_DEFAULT;
    const uint64_t quarter_mb = (uint64_t)pages * (uint64_t)ps / 4 >> 20;
    return quarter_mb < DNN_BLOCKED_MB_DEFAULT ? (int)quarter_mb : DNN_BLOCKED_MB_DEFAULT;
}

/* The create options, with their defaults filled in by dnn_create. */
typedef struct dnn_opts {
    int threads, plain, blocked_mb, winograd, blocked_act, bf16;
} dnn_opts;

#define DNN_KNOWN_OPTIONS "threads=N, plain=0|1, blocked_mb=M, blocked_act=0|1, winograd=0|1, bf16=0|1"

/* One row per option: its name, where it goes, its range. */
static const struct {
    const char *key;
    size_t at;
    int lo, hi;
} dnn_option_rows[] = {
    {"threads", offsetof(dnn_opts, threads), 1, DNN_MAX_THREADS},
    {"plain", offsetof(dnn_opts, plain), 0, 1},
    {"blocked_mb", offsetof(dnn_opts, blocked_mb), 0, DNN_BLOCKED_MB_MAX},
    {"blocked_act", offsetof(dnn_opts, blocked_act), 0, 1},
    {"winograd", offsetof(dnn_opts, winograd), 0, 1},
    {"bf16", offsetof(dnn_opts, bf16), 0, 1},
};

/* "key=value,..." over the rows above */
static int parse_options(const char *opts, dnn_opts *o, char *err, size_t err_len)
{
    const char *p = opts;
    while (p && *p) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            snprintf(err, err_len, "onednn: option '%.*s' is not key=value (known: " DNN_KNOWN_OPTIONS ")",
                     (int)len, p);
            return -1;
        }
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        const char *val = eq + 1;
        size_t r = 0, nrows = sizeof dnn_option_rows / sizeof dnn_option_rows[0];
        while (r < nrows && !(strlen(dnn_option_rows[r].key) == klen && memcmp(p, dnn_option_rows[r].key, klen) == 0))
            r++;
        if (r == nrows) {
            snprintf(err, err_len, "onednn: unknown option '%.*s' (known: " DNN_KNOWN_OPTIONS ")", (int)klen, p);
            return -1;
        }
        int *dst = (int *)((char *)o + dnn_option_rows[r].at);
        if (parse_uint(val, vlen, dnn_option_rows[r].lo, dnn_option_rows[r].hi, dst) != 0) {
            if (dnn_option_rows[r].hi == 1)
                snprintf(err, err_len, "onednn: option %s='%.*s' is not 0 or 1", dnn_option_rows[r].key, (int)vlen,
                         val);
            else
                snprintf(err, err_len, "onednn: option %s='%.*s' is not an integer in %d..%d",
                         dnn_option_rows[r].key, (int)vlen, val, dnn_option_rows[r].lo, dnn_option_rows[r].hi);
            return -1;
        }
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

/* ---- probe, device, instances ---- */

static int dnn_probe(char *why, size_t why_len)
{
    if (why_len) why[0] = '\0';
    return 1;
}

static hcga_status dnn_device_info(int device, hcga_device_info *info)
{
    if (device != 0) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    int threads = 1;
    char err[128];
    if (default_threads(&threads, err, sizeof err) != 0) threads = 1;
    snprintf(info->name, sizeof info->name, "CPU x%d (oneDNN)", threads);
    char lib[96];
    dnn_library_version(lib, sizeof lib);
    snprintf(info->version, sizeof info->version, "%s; plugin %s, ABI %d.%d", lib, DNN_PLUGIN_VERSION,
             HCGA_ABI_MAJOR, HCGA_ABI_MINOR);
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    if (pages > 0 && ps > 0) info->memory_total = (uint64_t)pages * (uint64_t)ps;
    if (avail > 0 && ps > 0) info->memory_free = (uint64_t)avail * (uint64_t)ps;
    return HCGA_OK;
}

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The last path op ran on (its write-backs are printed on that row). */
static int last_path(const hcga_backend *be, int op)
{
    int k = DNN_PATHS - 1;
    while (k > 0 && !be->prof_calls[op][k]) k--;
    return k;
}

/* $HCGA_ONEDNN_PROFILE: where the time went, per op and path (stderr). */
static void print_profile(const hcga_backend *be)
{
    double tw = 0, tc = 0;
    static const char *const path_name[DNN_PATHS] = {"plain", "onednn", "blocked"};
    for (int op = 0; op < HCGA_OP_COUNT; op++)
        for (int k = 0; k < DNN_PATHS; k++) tw += be->prof_wall[op][k], tc += be->prof_cpu[op][k];
    fprintf(stderr, "onednn profile (threads %d): %.3f s wall, %.3f s cpu in ops\n", be->threads, tw, tc);
    fprintf(stderr, "  %-22s %-7s %8s %10s %10s %11s\n", "op", "path", "calls", "wall s", "cpu s", "write-backs");
    for (int op = 0; op < HCGA_OP_COUNT; op++)
        for (int k = 0; k < DNN_PATHS; k++)
            if (be->prof_calls[op][k])
                fprintf(stderr, "  %-22s %-7s %8lld %10.3f %10.3f %11lld\n", hcga_op_name(op), path_name[k],
                        (long long)be->prof_calls[op][k], be->prof_wall[op][k], be->prof_cpu[op][k],
                        (long long)(last_path(be, op) == k ? be->prof_writebacks[op] : 0));
    fprintf(stderr,
            "  blocked copies: %lld reused, %lld written back, %lld evicted, %lld partial overwrites deferred; "
            "at most %d copies; %.1f MiB held at the end\n",
            (long long)be->blk_hits, (long long)be->blk_writebacks, (long long)be->blk_evictions,
            (long long)be->blk_retired, dnn_blk_count(be),
            (double)dnn_blk_bytes(be) / (1 << 20));
    dnn_prims_print_ref(be);
}

static void dnn_destroy(hcga_backend *be)
{
    if (!be) return;
    if (be->profile) print_profile(be);
    dnn_prims_fini(be);
    for (int i = 0; i < DNN_WS_SLOTS; i++) free(be->ws[i]);
    free(be);
}

static hcga_status dnn_create(int device, const char *options, hcga_backend **out, char *err,
                              size_t err_len)
{
    *out = NULL;
    if (device != 0) {
        snprintf(err, err_len, "onednn: device %d does not exist (1 device: 0)", device);
        return HCGA_ERR_INVALID;
    }
    dnn_opts o = {
        .threads = 1, .plain = 0, .blocked_mb = default_blocked_mb(), .winograd = 1, .blocked_act = 1, .bf16 = 1};
    if (default_threads(&o.threads, err, err_len) != 0) return HCGA_ERR_INVALID;
    if (parse_options(options, &o, err, err_len) != 0) return HCGA_ERR_INVALID;
    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "onednn: out of memory creating the backend");
        return HCGA_ERR_NOMEM;
    }
    be->device = device;
    be->threads = o.threads;
    be->plain = o.plain;
    be->winograd = o.winograd;
    be->blk_cap = o.plain ? 0 : (uint64_t)o.blocked_mb << 20;
    const char *prof = getenv("HCGA_ONEDNN_PROFILE");
    be->profile = prof && *prof && strcmp(prof, "0") != 0;
    dnn_threads(be);
    hcga_status st = dnn_prims_init(be, err, err_len);
    if (st != HCGA_OK) {
        dnn_destroy(be);
        return st;
    }
    /* the convolutions' activation format does not depend on blocked_mb or
     * blocked_act: those options change where the bytes wait, not the bits */
    be->act_fmt = o.plain ? 0 : dnn_act_block_for_isa();
    be->act_block = be->blk_cap && o.blocked_act ? be->act_fmt : 0;
    be->bf16_native = !o.plain && o.bf16 && dnn_bf16_isa();
    *out = be;
    return HCGA_OK;
}

static const char *dnn_last_error(hcga_backend *be)
{
    return be->err;
}

/* ---- buffers (host memory) ---- */

static hcga_status dnn_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    *out = NULL;
    hcga_buffer *b = calloc(1, sizeof *b);
    uint64_t rounded = (bytes + DNN_ALIGN - 1) / DNN_ALIGN * DNN_ALIGN;
    if (rounded == 0) rounded = DNN_ALIGN;
    if (b && rounded >= bytes && rounded <= SIZE_MAX) b->data = aligned_alloc(DNN_ALIGN, (size_t)rounded);
    if (!b || !b->data) {
        free(b);
        return dnn_fail(be, HCGA_ERR_NOMEM, "out of memory in buffer_alloc (%llu bytes)",
                        (unsigned long long)bytes);
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void dnn_buffer_free(hcga_backend *be, hcga_buffer *buf)
{
    if (!buf) return;
    dnn_blk_forget(be, buf->data, buf->size);
    free(buf->data);
    free(buf);
}

static int range_ok(const hcga_buffer *buf, uint64_t offset, uint64_t bytes)
{
    return buf && offset <= buf->size && bytes <= buf->size - offset;
}

static hcga_status dnn_buffer_write(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                    const void *src, uint64_t bytes)
{
    if (!range_ok(buf, offset, bytes))
        return dnn_fail(be, HCGA_ERR_INVALID, "buffer_write: %llu bytes at offset %llu outside the buffer",
                        (unsigned long long)bytes, (unsigned long long)offset);
    hcga_status st = dnn_blk_before_write(be, (char *)buf->data + offset, bytes);
    if (st != HCGA_OK) return st;
    if (bytes) memcpy((char *)buf->data + offset, src, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status dnn_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset, void *dst,
                                   uint64_t bytes)
{
    if (!range_ok(buf, offset, bytes))
        return dnn_fail(be, HCGA_ERR_INVALID, "buffer_read: %llu bytes at offset %llu outside the buffer",
                        (unsigned long long)bytes, (unsigned long long)offset);
    hcga_status st = dnn_blk_before_read(be, (char *)buf->data + offset, bytes);
    if (st != HCGA_OK) return st;
    if (bytes) memcpy(dst, (const char *)buf->data + offset, (size_t)bytes);
    return HCGA_OK;
}

static hcga_status dnn_synchronize(hcga_backend *be)
{
    (void)be; /* every op waits for its oneDNN stream before returning */
    return HCGA_OK;
}

/* ---- dispatch ---- */

static uint64_t dnn_buffer_size(const hcga_buffer *buf)
{
    return buf->size;
}

/* The oneDNN implementation of an op at f32, or NULL (plain-C path). */
static dnn_impl_fn onednn_impl(int op)
{
    switch (op) {
    case HCGA_OP_CONV2D_FWD: return dnn_conv_fwd;
    case HCGA_OP_CONV2D_BWD_DATA: return dnn_conv_bwd_data;
    case HCGA_OP_CONV2D_BWD_FILTER: return dnn_conv_bwd_filter;
    case HCGA_OP_GEMM: return dnn_gemm;
    /* RELU_FWD stays plain C: oneDNN's ReLU turns NaN into 0, the header's
     * max(x, 0) keeps it (tests/test_onednn_ops checks this) */
    case HCGA_OP_RELU_BWD: return dnn_relu_bwd;
    case HCGA_OP_BN_FWD_INFER: return dnn_bn_fwd_infer;
    case HCGA_OP_CONV2D_BN_INFER: return dnn_conv_bn_infer;
    default: return NULL;
    }
}

/* Does this call run on oneDNN's bf16 convolutions (see the top)?  An
 * empty one (a zero dimension) is widened: nothing to compute. */
static int native_bf16(const hcga_backend *be, int op, const hcga_checked *ck)
{
    return be->bf16_native && ck->dtype == HCGA_BF16 &&
           (op == HCGA_OP_CONV2D_FWD || op == HCGA_OP_CONV2D_BWD_DATA || op == HCGA_OP_CONV2D_BWD_FILTER) &&
           !dnn_conv_empty(&ck->conv);
}

/* A bf16 / f16 call of CONV2D_* or GEMM run as the f32 op: every input
 * widened (exactly) into an f32 workspace copy, the f32 implementation,
 * every output rounded once into the caller's tensor. */
static hcga_status half_via_f32(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck,
                                dnn_impl_fn impl)
{
    const int hdt = ck->dtype;
    hcga_op_args a32 = *a;
    hcga_tensor tin[HCGA_MAX_OP_IN], tout[HCGA_MAX_OP_OUT];
    struct hcga_buffer bin[HCGA_MAX_OP_IN], bout[HCGA_MAX_OP_OUT];
    for (int io = 0; io < 2; io++) {
        const int count = io ? a->num_out : a->num_in;
        for (int i = 0; i < count && i < 8; i++) {
            const hcga_tensor *t = io ? a->out[i] : a->in[i];
            if (!t) continue;
            const int64_t n = hcga_tensor_numel(t);
            void *p = dnn_ws(be, DNN_WS_HALF + (io ? 8 : 0) + i, (size_t)n * sizeof(float));
            if (!p)
                return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for the f32 copy of %s[%d]",
                                hcga_op_name(ck->op), io ? "out" : "in", i);
            struct hcga_buffer *b = io ? &bout[i] : &bin[i];
            hcga_tensor *c = io ? &tout[i] : &tin[i];
            b->data = p;
            b->size = (uint64_t)n * sizeof(float);
            *c = *t;
            c->buf = b;
            c->offset = 0;
            c->dtype = HCGA_F32;
            if (io) a32.out[i] = c;
            else {
                a32.in[i] = c;
                dnn_half_to_f32(dnn_ptr(t), hdt, p, n);
            }
        }
    }
    hcga_checked ck32 = *ck;
    ck32.dtype = ck32.in_dtype = ck32.out_dtype = HCGA_F32;
    hcga_status st = impl(be, &a32, &ck32);
    if (st != HCGA_OK) return st;
    for (int i = 0; i < a->num_out; i++)
        if (a->out[i]) dnn_half_from_f32(bout[i].data, hdt, dnn_ptr(a->out[i]), hcga_tensor_numel(a->out[i]));
    return HCGA_OK;
}

/* The bytes tensor t spans in its buffer: [*lo, *lo + *bytes). */
static void tensor_extent(const hcga_tensor *t, const char **lo, uint64_t *bytes)
{
    const int64_t n = hcga_tensor_numel(t);
    *lo = dnn_ptr(t);
    *bytes = 0;
    if (n == 0) return;
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) last += (t->shape[d] - 1) * t->stride[d];
    *bytes = (uint64_t)(last + 1) * hcga_dtype_size(t->dtype);
}

/* Does this call run a convolution that takes its data inputs from blocked
 * copies and leaves its output in one (dnn_blocked.h)?  Its data inputs
 * (slots 0 and 1, and CONV2D_BN_INFER's residual) are then the op's to
 * look up. */
static int keeps_copies(const hcga_backend *be, int op, const hcga_checked *ck, int onednn_path)
{
    if (!be->blk_cap || !onednn_path || (ck->dtype != HCGA_F32 && !native_bf16(be, op, ck))) return 0;
    if (op != HCGA_OP_CONV2D_FWD && op != HCGA_OP_CONV2D_BWD_DATA && op != HCGA_OP_CONV2D_BWD_FILTER &&
        op != HCGA_OP_CONV2D_BN_INFER)
        return 0;
    return !dnn_conv_empty(&ck->conv); /* empty ones run plain */
}

/* Brings the plain bytes of the call's tensors up to date before it runs:
 * dirty copies of what it reads written back, copies of what it writes
 * dropped (see dnn_blocked.h); except the inputs in skip_in and outputs in
 * skip_out, which the call takes from and leaves in copies itself. */
static hcga_status sync_copies(hcga_backend *be, const hcga_op_args *a, int op, unsigned skip_in,
                               unsigned skip_out)
{
    const char *lo;
    uint64_t bytes;
    hcga_status st = HCGA_OK;
    for (int i = 0; i < a->num_in && st == HCGA_OK; i++) {
        if (!a->in[i] || (skip_in >> i & 1)) continue;
        tensor_extent(a->in[i], &lo, &bytes);
        st = dnn_blk_before_read(be, lo, bytes);
    }
    const unsigned inout = hcga_op_get_info(op)->inout; /* outputs read as well as written */
    for (int i = 0; i < a->num_out && st == HCGA_OK; i++) {
        if (!a->out[i] || (skip_out >> i & 1)) continue;
        tensor_extent(a->out[i], &lo, &bytes);
        if (inout >> i & 1) st = dnn_blk_before_read(be, lo, bytes);
        if (st == HCGA_OK) st = dnn_blk_before_write(be, lo, bytes);
    }
    return st;
}

static hcga_status dnn_dispatch(hcga_backend *be, const hcga_op_args *a, int op, dnn_impl_fn plain)
{
    if (!be) return HCGA_ERR_INVALID;
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, dnn_buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) return dnn_fail(be, st, "%s", msg);
    dnn_threads(be);
    dnn_impl_fn fast = be->plain ? NULL : onednn_impl(op);
    dnn_impl_fn f32 = fast ? fast : plain;
    dnn_impl_fn impl = ck.dtype == HCGA_F32 || native_bf16(be, op, &ck) ? f32 : plain;
    const int path = impl != plain;
    double w0 = 0, c0 = 0;
    const int64_t wb0 = be->blk_writebacks;
    if (be->profile) w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    const int keeps = keeps_copies(be, op, &ck, path);
    unsigned skip_in = 0, skip_out = 0; /* the data tensors the call keeps in copies itself */
    if (keeps) skip_in = 0x3u | (op == HCGA_OP_CONV2D_BN_INFER ? 1u << HCGA_CBN_RES : 0u);
    const int act = !keeps && dnn_act_plan(be, op, a, &ck, &skip_in, &skip_out);
    if (be->blk) st = sync_copies(be, a, op, skip_in, skip_out); /* on failure, be->err names the write-back */
    be->blk_call = keeps;
    if (st == HCGA_OK && act) st = dnn_act_run(be, a, &ck, skip_in, skip_out, impl);
    else if (st == HCGA_OK)
        st = op != HCGA_OP_CAST && hcga_dtype_is_half(ck.dtype) && impl == plain ? half_via_f32(be, a, &ck, f32)
                                                                                  : impl(be, a, &ck);
    be->blk_call = 0;
    if (be->profile) {
        const int where = act ? DNN_PATH_BLOCKED : path ? DNN_PATH_ONEDNN : DNN_PATH_PLAIN;
        be->prof_wall[op][where] += now_s(CLOCK_MONOTONIC) - w0;
        be->prof_cpu[op][where] += now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        be->prof_calls[op][where]++;
        be->prof_writebacks[op] += be->blk_writebacks - wb0;
    }
    return st;
}

#define HCGA_OP(id_, ...)                                                                          \
    static hcga_status entry_##id_(hcga_backend *be, const hcga_op_args *a)                        \
    {                                                                                              \
        return dnn_dispatch(be, a, HCGA_OP_##id_, dnn_plain_##id_);                                \
    }
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP

static const hcga_op_fn dnn_ops[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = entry_##id_,
#define HCGA_OPT_OP HCGA_OP
#include "hcga_ops.def"
#undef HCGA_OPT_OP
#undef HCGA_OP
};

static int dnn_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    if (op < 0 || op >= HCGA_OP_COUNT) return 0;
    if (dtype == HCGA_F32 || dtype == HCGA_F64) return 1;
    if (hcga_dtype_is_half(dtype)) return hcga_op_get_info(op)->half;
    switch (op) {
    case HCGA_OP_FILL: return dtype == HCGA_I32 || dtype == HCGA_I64 || dtype == HCGA_U8;
    case HCGA_OP_COPY:
    case HCGA_OP_CONCAT:
    case HCGA_OP_SPLIT: return dtype >= 0 && dtype < HCGA_DTYPE_COUNT;
    default: return 0;
    }
}

/* ---- the descriptor ---- */

static const hcga_backend_iface dnn_iface = {
    .struct_size = sizeof(hcga_backend_iface),
    .probe = dnn_probe,
    .device_info = dnn_device_info,
    .create = dnn_create,
    .destroy = dnn_destroy,
    .last_error = dnn_last_error,
    .buffer_alloc = dnn_buffer_alloc,
    .buffer_free = dnn_buffer_free,
    .buffer_write = dnn_buffer_write,
    .buffer_read = dnn_buffer_read,
    .synchronize = dnn_synchronize,
    .ops = dnn_ops,
    .num_ops = HCGA_OP_COUNT,
    .supports = dnn_supports,
};

static const hcga_backend_iface *dnn_get_iface(void)
{
    return &dnn_iface;
}

/* The implementation's entry point, looked up by the loader shim
 * (dnn_shim.c, the file hcga loads as hcga_backend_onednn.so) after it has
 * set OpenMP's wait policy; see there. */
__attribute__((visibility("default"))) const hcga_backend_iface *hcga_onednn_impl_iface(void);
const hcga_backend_iface *hcga_onednn_impl_iface(void)
{
    return dnn_get_iface();
}
