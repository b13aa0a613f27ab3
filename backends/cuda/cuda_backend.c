/*
 * cuda_backend.c - the CUDA backend plugin: descriptor, probe, instances,
 * device buffers, synchronisation and error reporting.
 *
 * One instance owns one non-blocking stream; every op, copy and allocation
 * of the instance is enqueued there, so ops never synchronise.  Only
 * buffer_read and synchronize wait, and that is where device-side input
 * errors (bad labels, bad indices) found by kernels are reported.
 *
 * Without a usable driver (no GPU on the machine) nothing here crashes:
 * probe() returns -1 with CUDA's own error text and create() fails with it.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcga_autoconf.h" /* PACKAGE_VERSION */
#include "cuda_internal.h"

#define CU_DEFAULT_WORKSPACE_MB 1024
#define CU_INITIAL_SCRATCH (1u << 20)

/* ---- error messages --------------------------------------------------------- */

hcga_status cu_err(hcga_backend *be, hcga_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return st;
}

hcga_status cu_fail_cuda(hcga_backend *be, const char *op, const char *call, cudaError_t e)
{
    hcga_status st = e == cudaErrorMemoryAllocation ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    return cu_err(be, st, "%s in %s (%s): %s", cudaGetErrorName(e), op, call, cudaGetErrorString(e));
}

hcga_status cu_fail_cudnn(hcga_backend *be, const char *op, const char *call, cudnnStatus_t s)
{
    char detail[512];
    detail[0] = '\0';
    cudnnGetLastErrorString(detail, sizeof detail);
    detail[sizeof detail - 1] = '\0';
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    hcga_status st = HCGA_ERR_DEVICE;
    if (s == CUDNN_STATUS_BAD_PARAM || s == CUDNN_STATUS_NOT_SUPPORTED) st = HCGA_ERR_INVALID;
    if (s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED) st = HCGA_ERR_NOMEM;
    if (detail[0])
        return cu_err(be, st, "%s in %s (%s): %s", cudnnGetErrorString(s), op, call, detail);
    return cu_err(be, st, "%s in %s (%s)", cudnnGetErrorString(s), op, call);
}

hcga_status cu_fail_cublas(hcga_backend *be, const char *op, const char *call, cublasStatus_t s)
{
    hcga_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    if (s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_NOT_SUPPORTED) st = HCGA_ERR_INVALID;
    return cu_err(be, st, "%s in %s (%s): %s", cublasGetStatusName(s), op, call,
                  cublasGetStatusString(s));
}

/* ---- device memory ---------------------------------------------------------------- */

static cudaError_t dev_alloc(hcga_backend *be, size_t bytes, void **p)
{
    if (bytes == 0) bytes = 1;
    if (be->use_pool) return cudaMallocAsync(p, bytes, be->stream);
    return cudaMalloc(p, bytes);
}

static cudaError_t dev_free(hcga_backend *be, void *p)
{
    if (!p) return cudaSuccess;
    if (be->use_pool) return cudaFreeAsync(p, be->stream);
    return cudaFree(p);
}

hcga_status cu_ensure_workspace(hcga_backend *be, const char *op, size_t bytes)
{
    if (bytes <= be->ws_size) return HCGA_OK;
    CU_CUDA(be, op, "cudaFreeAsync", dev_free(be, be->ws));
    be->ws = NULL;
    be->ws_size = 0;
    void *p = NULL;
    cudaError_t e = dev_alloc(be, bytes, &p);
    if (e != cudaSuccess) {
        cu_fail_cuda(be, op, be->use_pool ? "cudaMallocAsync" : "cudaMalloc", e);
        size_t len = strlen(be->err);
        snprintf(be->err + len, sizeof be->err - len, " (cuDNN workspace of %zu bytes)", bytes);
        return e == cudaErrorMemoryAllocation ? HCGA_ERR_NOMEM : HCGA_ERR_DEVICE;
    }
    be->ws = p;
    be->ws_size = bytes;
    return HCGA_OK;
}

hcga_status cu_ensure_scratch(hcga_backend *be, const char *op, size_t bytes)
{
    if (bytes <= be->scratch_size) return HCGA_OK;
    CU_CUDA(be, op, "cudaFreeAsync", dev_free(be, be->scratch));
    be->scratch = NULL;
    be->scratch_size = 0;
    void *p = NULL;
    CU_CUDA(be, op, be->use_pool ? "cudaMallocAsync" : "cudaMalloc", dev_alloc(be, bytes, &p));
    be->scratch = p;
    be->scratch_size = bytes;
    return HCGA_OK;
}

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
    be->sync_each = 0;
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
                if (vlen == 9 && memcmp(v, "heuristic", 9) == 0) be->algo_find = 0;
                else if (vlen == 4 && memcmp(v, "find", 4) == 0) be->algo_find = 1;
                else {
                    snprintf(err, err_len, "cuda backend option '%.*s': value must be heuristic or find",
                             (int)len, p);
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
                         "unknown cuda backend option '%.*s' (known: tf32, deterministic, algo, workspace_mb, sync, threads)",
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
        cudaStreamSynchronize(be->stream);
    }
    if (be->ws) dev_free(be, be->ws);
    if (be->scratch) dev_free(be, be->scratch);
    if (be->stream) cudaStreamSynchronize(be->stream);
    if (be->dflag) cudaFree(be->dflag);
    if (be->hflag) cudaFreeHost(be->hflag);
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
    cudaGetLastError();
    free(be);
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
    CREATE_BLAS("cublasSetMathMode",
                cublasSetMathMode(be->blas, be->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));

    st = cu_ensure_scratch(be, op, CU_INITIAL_SCRATCH);
    if (st != HCGA_OK) return create_fail(be, err, err_len, st);
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
    cudaError_t e = dev_alloc(be, (size_t)bytes + 256, &p);
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
    if (be) {
        cudaSetDevice(be->device);
        cudaError_t e = dev_free(be, buf->base);
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
    hcga_status st = check_range(be, op, buf, offset, bytes);
    if (st != HCGA_OK || bytes == 0) return st;
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    /* From pageable memory the call returns once src has been staged, so the
     * caller may reuse src immediately; the copy stays in stream order. */
    CU_CUDA(be, op, "cudaMemcpyAsync",
            cudaMemcpyAsync((char *)buf->ptr + offset, src, bytes, cudaMemcpyHostToDevice, be->stream));
    return HCGA_OK;
}

/* Wait for the stream and report errors recorded by kernels meanwhile. */
hcga_status cu_wait_and_check(hcga_backend *be, const char *op)
{
    CU_CUDA(be, op, "cudaMemcpyAsync",
            cudaMemcpyAsync(be->hflag, be->dflag, sizeof(int), cudaMemcpyDeviceToHost, be->stream));
    CU_CUDA(be, op, "cudaStreamSynchronize", cudaStreamSynchronize(be->stream));
    int code = *be->hflag;
    if (code == 0) return HCGA_OK;
    *be->hflag = 0;
    CU_CUDA(be, op, "cudaMemsetAsync", cudaMemsetAsync(be->dflag, 0, sizeof(int), be->stream));
    int bad_op = code - 1;
    const char *what = "an input value out of range";
    switch (bad_op) {
    case HCGA_OP_CE_LS_FWD:
    case HCGA_OP_CE_LS_BWD: what = "a label outside [0, C)"; break;
    case HCGA_OP_PIXEL_CE_FWD:
    case HCGA_OP_PIXEL_CE_BWD: what = "a label outside [0, K) that is not the ignore label"; break;
    case HCGA_OP_TRIPLET_BWD: what = "an index in hard[] outside [-1, N) (or a negative without a positive)"; break;
    default: break;
    }
    return cu_err(be, HCGA_ERR_INVALID, "%s: an earlier %s call got %s (found by the device; its outputs are NaN)",
                  op, hcga_op_name(bad_op), what);
}

static hcga_status cuda_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset, void *dst,
                                    uint64_t bytes)
{
    const char *op = "buffer_read";
    hcga_status st = check_range(be, op, buf, offset, bytes);
    if (st != HCGA_OK) return st;
    CU_CUDA(be, op, "cudaSetDevice", cudaSetDevice(be->device));
    if (bytes > 0)
        CU_CUDA(be, op, "cudaMemcpyAsync",
                cudaMemcpyAsync(dst, (char *)buf->ptr + offset, bytes, cudaMemcpyDeviceToHost, be->stream));
    return cu_wait_and_check(be, op);
}

static hcga_status cuda_synchronize(hcga_backend *be)
{
    CU_CUDA(be, "synchronize", "cudaSetDevice", cudaSetDevice(be->device));
    return cu_wait_and_check(be, "synchronize");
}

static int cuda_supports(hcga_backend *be, int op, int dtype)
{
    (void)be;
    if (op < 0 || op >= HCGA_OP_COUNT || !cu_op_table[op]) return 0;
    if (op == HCGA_OP_FILL || op == HCGA_OP_COPY || op == HCGA_OP_CONCAT || op == HCGA_OP_SPLIT)
        return dtype >= 0 && dtype < HCGA_DTYPE_COUNT;
    return dtype == HCGA_F32 || dtype == HCGA_F64;
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
};

static const hcga_backend_iface *cuda_get_iface(void)
{
    return &cuda_iface;
}

__attribute__((visibility("default"))) const hcga_plugin_descriptor hcga_plugin_descriptor_v1 =
    HCGA_PLUGIN_DESCRIPTOR_INIT("cuda", "NVIDIA GPUs: cuDNN convolution and batch norm, cuBLAS GEMM, own CUDA kernels",
                                PACKAGE_VERSION, cuda_get_iface);
