/*
 * cuda_backend.c - the CUDA backend plugin: descriptor, probe, instances,
 * device buffers, synchronisation and the op dispatcher.
 *
 * One instance owns one non-blocking stream; every op, copy and allocation
 * of the instance is enqueued there, so ops never synchronise.  Only
 * buffer_read and synchronize wait (with the host thread asleep unless
 * wait=spin: cuda_core.c), and that is where device-side input errors (bad
 * labels, bad indices) found by kernels are reported.  The optional ABI 1.2
 * groups are in cuda_capture.c (CUDA Graphs) and cuda_comm.c (NCCL).
 *
 * Without a usable driver (no GPU on the machine) nothing here crashes:
 * probe() returns -1 with CUDA's own error text and create() fails with it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcga_autoconf.h" /* PACKAGE_VERSION */
#include "cuda_algo_db.h"
#include "cuda_impl.h"

#define CU_DEFAULT_WORKSPACE_MB 1024
#define CU_INITIAL_SCRATCH (1u << 20)

/* ---- probe and device info ---------------------------------------------------------- */

static int cuda_probe(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why && why_len)
            snprintf(why, why_len, "%s (cudaGetDeviceCount: %s)", cudaGetErrorString(e),
                     cudaGetErrorName(e));
        cudaGetLastError();
        return -1;
    }
    if (n <= 0) {
        if (why && why_len) snprintf(why, why_len, "cudaGetDeviceCount found no CUDA device");
        return -1;
    }
    size_t v = cudnnGetVersion();
    if (v / 10000 != CUDNN_MAJOR) {
        if (why && why_len)
            snprintf(why, why_len, "cuDNN %zu.%zu.%zu is loaded but the plugin was built for cuDNN %d",
                     v / 10000, (v / 100) % 100, v % 100, CUDNN_MAJOR);
        return -1;
    }
    return n;
}

static void version_string(char *out, size_t len, int device)
{
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    int blmaj = 0, blmin = 0, blpat = 0;
    cublasGetProperty(MAJOR_VERSION, &blmaj);
    cublasGetProperty(MINOR_VERSION, &blmin);
    cublasGetProperty(PATCH_LEVEL, &blpat);
    size_t dv = cudnnGetVersion();
    int major = 0, minor = 0;
    if (device >= 0) {
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    }
    snprintf(out, len, "sm_%d%d, driver %d.%d, runtime %d.%d, cuDNN %zu.%zu.%zu, cuBLAS %d.%d.%d",
             major, minor, drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, dv / 10000,
             (dv / 100) % 100, dv % 100, blmaj, blmin, blpat);
    cudaGetLastError();
}

static hcga_status cuda_device_info(int device, hcga_device_info *info)
{
    memset(info, 0, sizeof *info);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(info->name, sizeof info->name, "unavailable: %s", cudaGetErrorString(e));
        version_string(info->version, sizeof info->version, -1);
        cudaGetLastError();
        return HCGA_ERR_DEVICE;
    }
    if (device < 0 || device >= n) {
        snprintf(info->name, sizeof info->name, "no CUDA device %d (%d present)", device, n);
        return HCGA_ERR_INVALID;
    }
    struct cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        snprintf(info->name, sizeof info->name, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return HCGA_ERR_DEVICE;
    }
    snprintf(info->name, sizeof info->name, "%.127s", prop.name);
    version_string(info->version, sizeof info->version, device);
    info->memory_total = prop.totalGlobalMem;
    int prev = 0;
    if (cudaGetDevice(&prev) == cudaSuccess && cudaSetDevice(device) == cudaSuccess) {
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
            info->memory_free = fr;
            info->memory_total = tot;
        }
        cudaSetDevice(prev);
    }
    cudaGetLastError();
    return HCGA_OK;
}

/* ---- options ------------------------------------------------------------------------ */

static int parse_long(const char *s, size_t len, long lo, long hi, long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int key_is(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

/* "key=value,key=value"; the keys are documented in docs/cuda-runs.md. */
static int parse_options(hcga_backend *be, const char *opts, char *err, size_t err_len)
{
    be->tf32 = 0;
    be->deterministic = 1;
    be->algo_find = 0;
    be->algo_cache = 0;
    be->sync_each = 0;
    be->wait_spin = 0;
    be->ws_cap = (size_t)CU_DEFAULT_WORKSPACE_MB << 20;
    if (!opts) return 0;
    const char *p = opts;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            if (!eq) {
                snprintf(err, err_len, "cuda backend option '%.*s' has no '=value'", (int)len, p);
                return -1;
            }
            size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
            const char *v = eq + 1;
            long num = 0;
            if (key_is(p, klen, "tf32") || key_is(p, klen, "deterministic") || key_is(p, klen, "sync")) {
                if (parse_long(v, vlen, 0, 1, &num) != 0) {
                    snprintf(err, err_len, "cuda backend option '%.*s': value must be 0 or 1",
                             (int)len, p);
                    return -1;
                }
                if (key_is(p, klen, "tf32")) be->tf32 = (int)num;
                else if (key_is(p, klen, "sync")) be->sync_each = (int)num;
                else be->deterministic = (int)num;
            } else if (key_is(p, klen, "algo")) {
                be->algo_cache = 0;
                if (vlen == 9 && memcmp(v, "heuristic", 9) == 0) be->algo_find = 0;
                else if (vlen == 4 && memcmp(v, "find", 4) == 0) be->algo_find = 1;
                else if (vlen == 5 && memcmp(v, "cache", 5) == 0) be->algo_find = be->algo_cache = 1;
                else {
                    snprintf(err, err_len,
                             "cuda backend option '%.*s': value must be heuristic, find or cache", (int)len, p);
                    return -1;
                }
            } else if (key_is(p, klen, "wait")) {
                /* "sync" already names the per-op wait (sync=0|1), so the
                 * way of waiting is its own key */
                if (vlen == 5 && memcmp(v, "block", 5) == 0) be->wait_spin = 0;
                else if (vlen == 4 && memcmp(v, "spin", 4) == 0) be->wait_spin = 1;
                else {
                    snprintf(err, err_len, "cuda backend option '%.*s': value must be block or spin", (int)len, p);
                    return -1;
                }
            } else if (key_is(p, klen, "workspace_mb")) {
                if (parse_long(v, vlen, 0, 1L << 20, &num) != 0) {
                    snprintf(err, err_len, "cuda backend option '%.*s': value must be 0..1048576 (MiB)",
                             (int)len, p);
                    return -1;
                }
                be->ws_cap = (size_t)num << 20;
            } else if (key_is(p, klen, "threads")) {
                /* The CLI passes --threads to every backend; host threads do
                 * not change what the GPU computes, so it is only checked. */
                if (parse_long(v, vlen, 1, 4096, &num) != 0) {
                    snprintf(err, err_len, "cuda backend option '%.*s': value must be 1..4096",
                             (int)len, p);
                    return -1;
                }
            } else {
                snprintf(err, err_len,
                         "unknown cuda backend option '%.*s' (known: tf32, deterministic, algo, workspace_mb, sync, wait, threads)",
                         (int)klen, p);
                return -1;
            }
        }
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

/* ---- instances ------------------------------------------------------------------------ */

static void cuda_destroy(hcga_backend *be)
{
    if (!be) return;
    if (be->stream) {
        cudaSetDevice(be->device);
        cu_capture_abandon(be);
        cudaStreamSynchronize(be->stream);
    }
    cu_comm_release(be);
    if (be->ws) cu_dev_free(be, be->ws);
    if (be->scratch) cu_dev_free(be, be->scratch);
    if (be->stream) cudaStreamSynchronize(be->stream);
    if (be->dflag) cudaFree(be->dflag);
    if (be->hflag) cudaFreeHost(be->hflag);
    if (be->wait_ev) cudaEventDestroy(be->wait_ev);
    if (be->xd) cudnnDestroyTensorDescriptor(be->xd);
    if (be->yd) cudnnDestroyTensorDescriptor(be->yd);
    if (be->bd) cudnnDestroyTensorDescriptor(be->bd);
    if (be->bnd) cudnnDestroyTensorDescriptor(be->bnd);
    if (be->wd) cudnnDestroyFilterDescriptor(be->wd);
    if (be->cd) cudnnDestroyConvolutionDescriptor(be->cd);
    if (be->blas) cublasDestroy(be->blas);
    if (be->dnn) cudnnDestroy(be->dnn);
    if (be->stream) cudaStreamDestroy(be->stream);
    cu_dnn_release(be);
    if (be->adb) {
        cu_algo_db_free(be->adb);
        free(be->adb);
    }
    cudaGetLastError();
    free(be);
}

/*
 * algo=cache: this device's identity (GPU name, compute capability, SM
 * count, driver, CUDA runtime and cuDNN versions: a cached choice is reused
 * only where all of them are equal) and the cache loaded from
 * $HCGA_CACHE_DIR (cuda_algo_db.h).  Problems with the directory or the
 * file are warnings on stderr; the choices then live in this process only.
 */
static hcga_status open_algo_db(hcga_backend *be)
{
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, be->device);
    if (e != cudaSuccess) return cu_fail_cuda(be, "create", "cudaGetDeviceProperties", e);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    char name[128];
    snprintf(name, sizeof name, "%.127s", prop.name);
    for (char *q = name; *q; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e || *q == '|') *q = '_';
    snprintf(be->adb_device, sizeof be->adb_device, "%s|sm_%d%d|%d SMs|driver %d|runtime %d|cudnn %zu", name,
             prop.major, prop.minor, prop.multiProcessorCount, drv, rt, cudnnGetVersion());
    be->adb = calloc(1, sizeof *be->adb);
    if (!be->adb) return cu_err(be, HCGA_ERR_NOMEM, "create: out of host memory");
    cu_algo_db_init(be->adb);
    if (cu_algo_db_default_path(be->adb_path, sizeof be->adb_path, stderr) != 0 ||
        cu_algo_db_load(be->adb, be->adb_path, stderr) != 0) {
        fprintf(stderr, "hcga cuda: algo=cache: the algorithm choices of this process are not persisted\n");
        be->adb_path[0] = '\0';
    }
    return HCGA_OK;
}

/* create() failure: message into err, clean up. */
static hcga_status create_fail(hcga_backend *be, char *err, size_t err_len, hcga_status st)
{
    snprintf(err, err_len, "%s", be->err);
    cuda_destroy(be);
    return st;
}

static hcga_status cuda_create(int device, const char *options, hcga_backend **out, char *err,
                               size_t err_len)
{
    *out = NULL;
    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "cuda backend: out of host memory");
        return HCGA_ERR_NOMEM;
    }
    be->device = device;
    if (parse_options(be, options, err, err_len) != 0) {
        free(be);
        return HCGA_ERR_INVALID;
    }
    const char *op = "create";
    hcga_status st;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cu_fail_cuda(be, op, "cudaGetDeviceCount", e);
        return create_fail(be, err, err_len, HCGA_ERR_DEVICE);
    }
    if (device < 0 || device >= n) {
        cu_err(be, HCGA_ERR_INVALID, "no CUDA device %d (%d present)", device, n);
        return create_fail(be, err, err_len, HCGA_ERR_INVALID);
    }
#define CREATE_CUDA(call, expr)                                      \
    do {                                                             \
        cudaError_t ce_ = (expr);                                    \
        if (ce_ != cudaSuccess) {                                    \
            st = cu_fail_cuda(be, op, call, ce_);                    \
            return create_fail(be, err, err_len, st);                \
        }                                                            \
    } while (0)
#define CREATE_DNN(call, expr)                                       \
    do {                                                             \
        cudnnStatus_t cs_ = (expr);                                  \
        if (cs_ != CUDNN_STATUS_SUCCESS) {                           \
            st = cu_fail_cudnn(be, op, call, cs_);                   \
            return create_fail(be, err, err_len, st);                \
        }                                                            \
    } while (0)
#define CREATE_BLAS(call, expr)                                      \
    do {                                                             \
        cublasStatus_t cb_ = (expr);                                 \
        if (cb_ != CUBLAS_STATUS_SUCCESS) {                          \
            st = cu_fail_cublas(be, op, call, cb_);                  \
            return create_fail(be, err, err_len, st);                \
        }                                                            \
    } while (0)

    CREATE_CUDA("cudaSetDevice", cudaSetDevice(device));
    int pools = 0;
    CREATE_CUDA("cudaDeviceGetAttribute", cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
    CREATE_CUDA("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking));
    /* wait=block: the host sleeps in cudaEventSynchronize (cuda_core.c) */
    CREATE_CUDA("cudaEventCreateWithFlags",
                cudaEventCreateWithFlags(&be->wait_ev, cudaEventBlockingSync | cudaEventDisableTiming));
    if (pools) {
        /* Keep freed memory in the pool instead of returning it at every
         * synchronisation: steady-state training then allocates nothing. */
        cudaMemPool_t pool;
        CREATE_CUDA("cudaDeviceGetDefaultMemPool", cudaDeviceGetDefaultMemPool(&pool, device));
        uint64_t threshold = UINT64_MAX;
        CREATE_CUDA("cudaMemPoolSetAttribute",
                    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
        be->use_pool = 1;
    }
    CREATE_CUDA("cudaMalloc", cudaMalloc((void **)&be->dflag, sizeof(int)));
    CREATE_CUDA("cudaMemset", cudaMemset(be->dflag, 0, sizeof(int)));
    CREATE_CUDA("cudaMallocHost", cudaMallocHost((void **)&be->hflag, sizeof(int)));
    *be->hflag = 0;

    CREATE_DNN("cudnnCreate", cudnnCreate(&be->dnn));
    CREATE_DNN("cudnnSetStream", cudnnSetStream(be->dnn, be->stream));
    CREATE_DNN("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&be->xd));
    CREATE_DNN("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&be->yd));
    CREATE_DNN("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&be->bd));
    CREATE_DNN("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&be->bnd));
    CREATE_DNN("cudnnCreateFilterDescriptor", cudnnCreateFilterDescriptor(&be->wd));
    CREATE_DNN("cudnnCreateConvolutionDescriptor", cudnnCreateConvolutionDescriptor(&be->cd));

    CREATE_BLAS("cublasCreate", cublasCreate(&be->blas));
    CREATE_BLAS("cublasSetStream", cublasSetStream(be->blas, be->stream));
    CREATE_BLAS("cublasSetPointerMode", cublasSetPointerMode(be->blas, CUBLAS_POINTER_MODE_HOST));
    CREATE_BLAS("cublasSetAtomicsMode", cublasSetAtomicsMode(be->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    /* half GEMM: keep split-K reductions in the F32 compute type rather than
     * the 16-bit output type (no effect on F32 / F64) */
    CREATE_BLAS("cublasSetMathMode",
                cublasSetMathMode(be->blas, (cublasMath_t)((be->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) |
                                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));

    st = cu_ensure_scratch(be, op, CU_INITIAL_SCRATCH);
    if (st != HCGA_OK) return create_fail(be, err, err_len, st);
    if (be->algo_cache) {
        st = open_algo_db(be);
        if (st != HCGA_OK) return create_fail(be, err, err_len, st);
    }
#undef CREATE_CUDA
#undef CREATE_DNN
#undef CREATE_BLAS
    *out = be;
    return HCGA_OK;
}

static const char *cuda_last_error(hcga_backend *be)
{
    return be ? be->err : "no cuda backend instance";
}

/* ---- buffers ------------------------------------------------------------------------------ */

static hcga_status cuda_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    *out = NULL;
    const char *op = "buffer_alloc";
    CU_TRY(cu_not_capturing(be, op));
    hcga_buffer *b = calloc(1, sizeof *b);
    if (!b) return cu_err(be, HCGA_ERR_NOMEM, "buffer_alloc: out of host memory");
    if (bytes > SIZE_MAX - 512) {
        free(b);
        return cu_err(be, HCGA_ERR_NOMEM, "buffer_alloc: %llu bytes is too large",
                      (unsigned long long)bytes);
    }
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    /* cudaMalloc guarantees 256-byte alignment; cudaMallocAsync is not
     * documented to, so allocate 256 more and align by hand. */
    void *p = NULL;
    cudaError_t e = cu_dev_alloc(be, (size_t)bytes + 256, &p);
    if (e != cudaSuccess) {
        free(b);
        hcga_status st = cu_fail_cuda(be, op, be->use_pool ? "cudaMallocAsync" : "cudaMalloc", e);
        size_t len = strlen(be->err);
        snprintf(be->err + len, sizeof be->err - len, " (%llu bytes)", (unsigned long long)bytes);
        return st;
    }
    b->base = p;
    b->ptr = (void *)(((uintptr_t)p + 255) & ~(uintptr_t)255);
    b->bytes = bytes;
    *out = b;
    return HCGA_OK;
}

static void cuda_buffer_free(hcga_backend *be, hcga_buffer *buf)
{
    if (!buf) return;
    if (be && cu_capture_defer_free(be, buf->base)) {
        free(buf);
        return;
    }
    if (be) {
        cudaSetDevice(be->device);
        cudaError_t e = cu_dev_free(be, buf->base);
        if (e != cudaSuccess) cu_fail_cuda(be, "buffer_free", be->use_pool ? "cudaFreeAsync" : "cudaFree", e);
    }
    free(buf);
}

static hcga_status check_range(hcga_backend *be, const char *what, hcga_buffer *buf, uint64_t offset,
                               uint64_t bytes)
{
    if (!buf) return cu_err(be, HCGA_ERR_INVALID, "%s: no buffer", what);
    if (offset > buf->bytes || bytes > buf->bytes - offset)
        return cu_err(be, HCGA_ERR_INVALID, "%s: range [%llu, %llu) is outside the buffer of %llu bytes",
                      what, (unsigned long long)offset, (unsigned long long)(offset + bytes),
                      (unsigned long long)buf->bytes);
    return HCGA_OK;
}

static hcga_status cuda_buffer_write(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                     const void *src, uint64_t bytes)
{
    const char *op = "buffer_write";
    CU_TRY(cu_not_capturing(be, op));
    hcga_status st = check_range(be, op, buf, offset, bytes);
    if (st != HCGA_OK || bytes == 0) return st;
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    /* From pageable memory the call returns once src has been staged, so the
     * caller may reuse src immediately; the copy stays in stream order. */
    CU_CUDA(be, op, "cudaMemcpyAsync",
            cudaMemcpyAsync((char *)buf->ptr + offset, src, bytes, cudaMemcpyHostToDevice, be->stream));
    return HCGA_OK;
}

static hcga_status cuda_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset, void *dst,
                                    uint64_t bytes)
{
    const char *op = "buffer_read";
    CU_TRY(cu_not_capturing(be, op));
    hcga_status st = check_range(be, op, buf, offset, bytes);
    if (st != HCGA_OK) return st;
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    if (bytes > 0 && !be->wait_spin) {
        /* A copy to pageable memory returns only when done, and waits for
         * the work before it the context's way (spinning, by default):
         * wait for that work here first, asleep. */
        const char *call = "";
        cudaError_t e = cu_stream_wait(be, &call);
        if (e != cudaSuccess) return cu_fail_cuda(be, op, call, e);
    }
    if (bytes > 0)
        CU_CUDA(be, op, "cudaMemcpyAsync",
                cudaMemcpyAsync(dst, (char *)buf->ptr + offset, bytes, cudaMemcpyDeviceToHost, be->stream));
    return cu_wait_and_check(be, op);
}

static hcga_status cuda_synchronize(hcga_backend *be)
{
    CU_TRY(cu_not_capturing(be, "synchronize"));
    CU_CUDA(be, "synchronize", "cudaSetDevice", cudaSetDevice(be->device));
    CU_TRY(cu_comm_join(be, "synchronize")); /* all enqueued work: collectives too */
    return cu_wait_and_check(be, "synchronize");
}

/* ---- ops: one dispatcher for every op ------------------------------------------------ */

/* The implementations, one per catalogue row (declared from the catalogue
 * in cuda_impl.h; a row without a definition does not link). */
static const cu_impl_fn cu_impl[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = cu_impl_##id_,
#include "hcga_ops.def"
#undef HCGA_OP
};

static uint64_t cu_buffer_size(const hcga_buffer *buf)
{
    return buf->bytes;
}

/*
 * Every op: the shared contract check (nothing is enqueued for a bad call;
 * its message "<op>: <problem>" is last_error as it is), the instance's
 * device made current, the implementation, and with sync=1 a wait after it,
 * so that a device fault or a device-side input error (bad label) is
 * reported by the op that caused it rather than by the next read.  While a
 * graph is being captured that wait is skipped (it would end the capture),
 * and a failure is also kept for capture_end (cuda_capture.c).
 */
static hcga_status cu_dispatch(hcga_backend *be, const hcga_op_args *a, int op)
{
    if (!be) return HCGA_ERR_INVALID;
    hcga_checked ck;
    char msg[HCGA_CONTRACT_MSG_LEN];
    hcga_status st = hcga_contract_check(op, a, cu_buffer_size, &ck, msg, sizeof msg);
    if (st != HCGA_OK) {
        cu_err(be, st, "%s", msg);
        cu_capture_note_failure(be, st);
        return st;
    }
    const char *name = hcga_op_name(op);
    cudaError_t e = cudaSetDevice(be->device);
    st = e == cudaSuccess ? cu_impl[op](be, a, &ck) : cu_fail_cuda(be, name, "cudaSetDevice", e);
    if (st != HCGA_OK) {
        cu_capture_note_failure(be, st);
        return st;
    }
    if (!be->sync_each || be->capturing) return st;
    return cu_wait_and_check(be, name);
}

#define HCGA_OP(id_, ...)                                                         \
    static hcga_status cu_entry_##id_(hcga_backend *be, const hcga_op_args *a) \
    {                                                                             \
        return cu_dispatch(be, a, HCGA_OP_##id_);                                 \
    }
#include "hcga_ops.def"
#undef HCGA_OP

static const hcga_op_fn cu_op_table[HCGA_OP_COUNT] = {
#define HCGA_OP(id_, ...) [HCGA_OP_##id_] = cu_entry_##id_,
#include "hcga_ops.def"
#undef HCGA_OP
};

/* F32 and F64 everywhere; BF16 and F16 for the ops whose catalogue row has
 * half = 1 (CONV2D_*, GEMM: cuDNN / cuBLAS with F32 accumulation; CAST: our
 * kernel), which every GPU the plugin is built for (sm_80 and newer) runs;
 * FILL, COPY, CONCAT and SPLIT also move the integer dtypes. */
static int cuda_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    const hcga_op_info *info = hcga_op_get_info(op);
    if (!info || !cu_op_table[op]) return 0; /* the optional (fused) ops of ABI 1.3 are not provided */
    if (dtype == HCGA_F32 || dtype == HCGA_F64) return 1;
    if (hcga_dtype_is_half(dtype)) return info->half;
    if (op == HCGA_OP_FILL || op == HCGA_OP_COPY || op == HCGA_OP_CONCAT || op == HCGA_OP_SPLIT)
        return dtype == HCGA_I32 || dtype == HCGA_I64 || dtype == HCGA_U8;
    return 0;
}

/* ---- plugin descriptor ------------------------------------------------------------------------ */

static const hcga_backend_iface cuda_iface = {
    sizeof(hcga_backend_iface),
    cuda_probe,
    cuda_device_info,
    cuda_create,
    cuda_destroy,
    cuda_last_error,
    cuda_buffer_alloc,
    cuda_buffer_free,
    cuda_buffer_write,
    cuda_buffer_read,
    cuda_synchronize,
    cu_op_table,
    HCGA_OP_COUNT,
    cuda_supports,
#ifdef HCGA_HAVE_NCCL
    cu_comm_id,
    cu_comm_init,
    cu_allreduce,
    cu_broadcast,
    cu_comm_wait,
#else /* built without NCCL: no collectives group */
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
#endif
    cu_capture_begin,
    cu_capture_end,
    cu_capture_replay,
    cu_capture_free,
};

static const hcga_backend_iface *cuda_get_iface(void)
{
    return &cuda_iface;
}

__attribute__((visibility("default"))) const hcga_plugin_descriptor hcga_plugin_descriptor_v1 =
    HCGA_PLUGIN_DESCRIPTOR_INIT("cuda", "NVIDIA GPUs: cuDNN convolution and batch norm, cuBLAS GEMM, own CUDA kernels",
                                PACKAGE_VERSION, cuda_get_iface);
