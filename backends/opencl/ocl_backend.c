/*
 * ocl_backend.c - the OpenCL backend plugin: device enumeration, instances,
 * buffers, the kernel program, launch helpers and the plugin descriptor.
 *
 * Devices are numbered over all platforms in order (platform 0's devices,
 * then platform 1's ...).  create() takes that flat index, unless the
 * option "device=P:D" or the environment variable HCGA_OPENCL_DEVICE ("P:D"
 * or a flat index) says otherwise (the option wins over the variable, the
 * variable over the index).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h" /* first: it fixes CL_TARGET_OPENCL_VERSION */

#include <CL/cl_ext.h>
#include <clblast_c.h>

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

#define OCL_MAX_DEVICES 64
#define OCL_DEFAULT_WS_MB 512

/* Kernel sources, generated from kernels/ and ../common/kernels by cl2c.sh. */
extern const char hcga_ocl_src_prelude[];
extern const char hcga_ocl_src_hcga_kmath[];
extern const char hcga_ocl_src_elementwise[];
extern const char hcga_ocl_src_reduce[];
extern const char hcga_ocl_src_channel[];
extern const char hcga_ocl_src_spatial[];
extern const char hcga_ocl_src_bn[];
extern const char hcga_ocl_src_loss[];
extern const char hcga_ocl_src_conv[];
extern const char hcga_ocl_src_untyped[];
extern const char hcga_ocl_src_half[];
extern const char hcga_ocl_src_copy[];

/* ------------------------------------------------------------------------ */
/* Error names                                                               */
/* ------------------------------------------------------------------------ */

const char *ocl_err_name(cl_int code)
{
    switch (code) {
#define N_(c) case c: return #c;
        N_(CL_SUCCESS) N_(CL_DEVICE_NOT_FOUND) N_(CL_DEVICE_NOT_AVAILABLE)
        N_(CL_COMPILER_NOT_AVAILABLE) N_(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        N_(CL_OUT_OF_RESOURCES) N_(CL_OUT_OF_HOST_MEMORY) N_(CL_PROFILING_INFO_NOT_AVAILABLE)
        N_(CL_MEM_COPY_OVERLAP) N_(CL_IMAGE_FORMAT_MISMATCH) N_(CL_IMAGE_FORMAT_NOT_SUPPORTED)
        N_(CL_BUILD_PROGRAM_FAILURE) N_(CL_MAP_FAILURE) N_(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        N_(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) N_(CL_COMPILE_PROGRAM_FAILURE)
        N_(CL_LINKER_NOT_AVAILABLE) N_(CL_LINK_PROGRAM_FAILURE) N_(CL_DEVICE_PARTITION_FAILED)
        N_(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) N_(CL_INVALID_VALUE) N_(CL_INVALID_DEVICE_TYPE)
        N_(CL_INVALID_PLATFORM) N_(CL_INVALID_DEVICE) N_(CL_INVALID_CONTEXT)
        N_(CL_INVALID_QUEUE_PROPERTIES) N_(CL_INVALID_COMMAND_QUEUE) N_(CL_INVALID_HOST_PTR)
        N_(CL_INVALID_MEM_OBJECT) N_(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
        N_(CL_INVALID_IMAGE_SIZE) N_(CL_INVALID_SAMPLER) N_(CL_INVALID_BINARY)
        N_(CL_INVALID_BUILD_OPTIONS) N_(CL_INVALID_PROGRAM) N_(CL_INVALID_PROGRAM_EXECUTABLE)
        N_(CL_INVALID_KERNEL_NAME) N_(CL_INVALID_KERNEL_DEFINITION) N_(CL_INVALID_KERNEL)
        N_(CL_INVALID_ARG_INDEX) N_(CL_INVALID_ARG_VALUE) N_(CL_INVALID_ARG_SIZE)
        N_(CL_INVALID_KERNEL_ARGS) N_(CL_INVALID_WORK_DIMENSION) N_(CL_INVALID_WORK_GROUP_SIZE)
        N_(CL_INVALID_WORK_ITEM_SIZE) N_(CL_INVALID_GLOBAL_OFFSET)
        N_(CL_INVALID_EVENT_WAIT_LIST) N_(CL_INVALID_EVENT) N_(CL_INVALID_OPERATION)
        N_(CL_INVALID_GL_OBJECT) N_(CL_INVALID_BUFFER_SIZE) N_(CL_INVALID_MIP_LEVEL)
        N_(CL_INVALID_GLOBAL_WORK_SIZE) N_(CL_INVALID_PROPERTY)
        N_(CL_INVALID_IMAGE_DESCRIPTOR) N_(CL_INVALID_COMPILER_OPTIONS)
        N_(CL_INVALID_LINKER_OPTIONS) N_(CL_INVALID_DEVICE_PARTITION_COUNT)
        N_(CL_PLATFORM_NOT_FOUND_KHR)
        /* CLBlast's own codes (its other codes equal the OpenCL ones) */
        N_(CLBlastNotImplemented) N_(CLBlastInvalidMatrixA) N_(CLBlastInvalidMatrixB)
        N_(CLBlastInvalidMatrixC) N_(CLBlastInvalidVectorX) N_(CLBlastInvalidVectorY)
        N_(CLBlastInvalidDimension) N_(CLBlastInvalidLeadDimA) N_(CLBlastInvalidLeadDimB)
        N_(CLBlastInvalidLeadDimC) N_(CLBlastInvalidIncrementX) N_(CLBlastInvalidIncrementY)
        N_(CLBlastInsufficientMemoryA) N_(CLBlastInsufficientMemoryB)
        N_(CLBlastInsufficientMemoryC) N_(CLBlastInsufficientMemoryX)
        N_(CLBlastInsufficientMemoryY) N_(CLBlastInsufficientMemoryTemp)
        N_(CLBlastInvalidBatchCount) N_(CLBlastInvalidOverrideKernel)
        N_(CLBlastMissingOverrideParameter) N_(CLBlastInvalidLocalMemUsage)
        N_(CLBlastNoHalfPrecision) N_(CLBlastNoDoublePrecision) N_(CLBlastInvalidVectorScalar)
        N_(CLBlastInsufficientMemoryScalar) N_(CLBlastDatabaseError) N_(CLBlastUnknownError)
        N_(CLBlastUnexpectedError)
#undef N_
    default: return NULL;
    }
}

static void code_text(cl_int code, char *buf, size_t len)
{
    const char *n = ocl_err_name(code);
    if (n)
        snprintf(buf, len, "%s", n);
    else
        snprintf(buf, len, "OpenCL error %d", (int)code);
}

hcga_status ocl_cl_fail(hcga_backend *be, cl_int code, const char *call)
{
    char name[64];
    code_text(code, name, sizeof name);
    snprintf(be->err, sizeof be->err, "%s in %s (%s)", name,
             be->op_name ? be->op_name : "opencl", call);
    if (code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_HOST_MEMORY ||
        code == CL_OUT_OF_RESOURCES)
        return HCGA_ERR_NOMEM;
    return HCGA_ERR_DEVICE;
}

hcga_status ocl_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(be->err, sizeof be->err, "%s: %s", be->op_name ? be->op_name : "opencl", msg);
    return code;
}

hcga_status ocl_fail_msg(hcga_backend *be, hcga_status code, const char *msg)
{
    snprintf(be->err, sizeof be->err, "%s", msg);
    return code;
}

/* ------------------------------------------------------------------------ */
/* Device enumeration                                                        */
/* ------------------------------------------------------------------------ */

typedef struct ocl_dev {
    cl_platform_id platform;
    cl_device_id device;
    int pi, di;
} ocl_dev;

/* Fills devs (all devices of all platforms, in order).  Returns the count,
 * or -1 with the reason in why. */
static int enumerate(ocl_dev *devs, int max, char *why, size_t why_len)
{
    cl_uint np = 0;
    cl_int rc = clGetPlatformIDs(0, NULL, &np);
    if (rc == CL_PLATFORM_NOT_FOUND_KHR || (rc == CL_SUCCESS && np == 0)) {
        snprintf(why, why_len,
                 "clGetPlatformIDs: CL_PLATFORM_NOT_FOUND_KHR (-1001): no OpenCL platform "
                 "installed");
        return -1;
    }
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(why, why_len, "clGetPlatformIDs: %s (%d)", name, (int)rc);
        return -1;
    }
    cl_platform_id plats[16];
    if (np > 16) np = 16;
    rc = clGetPlatformIDs(np, plats, NULL);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(why, why_len, "clGetPlatformIDs: %s (%d)", name, (int)rc);
        return -1;
    }
    int n = 0;
    char last_err[256] = "";
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        rc = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (rc != CL_SUCCESS || nd == 0) {
            char name[64];
            code_text(rc, name, sizeof name);
            snprintf(last_err, sizeof last_err, "clGetDeviceIDs on platform %u: %s", p,
                     rc == CL_SUCCESS ? "no devices" : name);
            continue;
        }
        cl_device_id ids[OCL_MAX_DEVICES];
        if (nd > OCL_MAX_DEVICES) nd = OCL_MAX_DEVICES;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS) continue;
        for (cl_uint d = 0; d < nd && n < max; d++) {
            devs[n].platform = plats[p];
            devs[n].device = ids[d];
            devs[n].pi = (int)p;
            devs[n].di = (int)d;
            n++;
        }
    }
    if (n == 0) {
        snprintf(why, why_len, "%u OpenCL platform(s) but no device: %s", np, last_err);
        return -1;
    }
    return n;
}

/* Device / platform strings, truncated to len (the queries fail on a short
 * buffer, so they go through a large one). */
static void trunc_copy(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len) n = len - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void dev_string(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    char big[8192];
    if (clGetDeviceInfo(d, what, sizeof big, big, NULL) != CL_SUCCESS) snprintf(big, sizeof big, "?");
    big[sizeof big - 1] = 0;
    trunc_copy(buf, len, big);
}

static void plat_string(cl_platform_id p, cl_platform_info what, char *buf, size_t len)
{
    char big[2048];
    if (clGetPlatformInfo(p, what, sizeof big, big, NULL) != CL_SUCCESS) snprintf(big, sizeof big, "?");
    big[sizeof big - 1] = 0;
    trunc_copy(buf, len, big);
}

static int ocl_probe(char *why, size_t why_len)
{
    ocl_dev devs[OCL_MAX_DEVICES];
    char tmp[1024];
    int n = enumerate(devs, OCL_MAX_DEVICES, tmp, sizeof tmp);
    if (n < 0) {
        if (why && why_len) snprintf(why, why_len, "%s", tmp);
        return -1;
    }
    /* On success, list the devices (index: platform / device). */
    if (why && why_len) {
        size_t used = 0;
        why[0] = 0;
        for (int i = 0; i < n && used + 1 < why_len; i++) {
            char pn[128], dn[128];
            plat_string(devs[i].platform, CL_PLATFORM_NAME, pn, sizeof pn);
            dev_string(devs[i].device, CL_DEVICE_NAME, dn, sizeof dn);
            int w = snprintf(why + used, why_len - used, "%s%d (%d:%d): %s / %s",
                             i ? "; " : "", i, devs[i].pi, devs[i].di, pn, dn);
            if (w < 0) break;
            used += (size_t)w;
        }
    }
    return n;
}

static hcga_status ocl_device_info(int device, hcga_device_info *info)
{
    ocl_dev devs[OCL_MAX_DEVICES];
    char why[512];
    if (!info) return HCGA_ERR_INVALID;
    memset(info, 0, sizeof *info);
    int n = enumerate(devs, OCL_MAX_DEVICES, why, sizeof why);
    if (n < 0 || device < 0 || device >= n) {
        snprintf(info->name, sizeof info->name, "%.120s",
                 n < 0 ? why : "no such OpenCL device index");
        return HCGA_ERR_INVALID;
    }
    cl_device_id d = devs[device].device;
    char cver[64], drv[64], pver[96];
    dev_string(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    dev_string(d, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    dev_string(d, CL_DRIVER_VERSION, drv, sizeof drv);
    plat_string(devs[device].platform, CL_PLATFORM_VERSION, pver, sizeof pver);
    /* keep the platform version short: up to its second space-separated word
     * after "OpenCL x.y" ("OpenCL 3.0 PoCL 3.1+debian") */
    int spaces = 0;
    for (char *c = pver; *c; c++)
        if (*c == ' ' && ++spaces == 4) {
            *c = 0;
            break;
        }
    char ver[512];
    snprintf(ver, sizeof ver, "%s / driver %s / %s", cver, drv, pver);
    trunc_copy(info->version, sizeof info->version, ver);
    cl_ulong mem = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL) == CL_SUCCESS)
        info->memory_total = mem;
    info->memory_free = 0; /* OpenCL 1.2 has no portable query */
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* Options and device selection                                              */
/* ------------------------------------------------------------------------ */

typedef struct ocl_opts {
    int have_pd;
    int p, d;
    long ws_mb;
    int conv_batched;
    int acc; /* -1 auto, 0 float, 1 double */
    int gemm_double;
    int tune_off; /* clblast_tune=off */
    int im2col_clblast;
    int fp16_khr; /* fp16=khr: f16 only with cl_khr_fp16 */
} ocl_opts;

static int parse_pd(const char *s, int *p, int *d, int *flat)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (end == s || errno || a < 0 || a > INT_MAX) return -1;
    if (*end == 0) {
        *flat = 1;
        *p = (int)a;
        *d = 0;
        return 0;
    }
    if (*end != ':') return -1;
    const char *s2 = end + 1;
    long b = strtol(s2, &end, 10);
    if (end == s2 || *end || errno || b < 0 || b > INT_MAX) return -1;
    *flat = 0;
    *p = (int)a;
    *d = (int)b;
    return 0;
}

static int parse_options(const char *options, ocl_opts *o, char *err, size_t err_len)
{
    memset(o, 0, sizeof *o);
    o->ws_mb = OCL_DEFAULT_WS_MB;
    o->acc = -1;
    if (!options || !*options) return 0;
    char buf[1024];
    if (strlen(options) >= sizeof buf) {
        snprintf(err, err_len, "opencl: options string too long");
        return -1;
    }
    strcpy(buf, options);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, err_len, "opencl: option '%s' is not key=value", tok);
            return -1;
        }
        *eq = 0;
        const char *key = tok, *val = eq + 1;
        if (!strcmp(key, "device")) {
            int flat;
            if (parse_pd(val, &o->p, &o->d, &flat) || flat) {
                snprintf(err, err_len, "opencl: option device=%s: expected P:D (platform:device)",
                         val);
                return -1;
            }
            o->have_pd = 1;
        } else if (!strcmp(key, "workspace_mb")) {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (end == val || *end || errno || v < 1 || v > 1L << 20) {
                snprintf(err, err_len, "opencl: option workspace_mb=%s: expected 1..1048576",
                         val);
                return -1;
            }
            o->ws_mb = v;
        } else if (!strcmp(key, "threads")) {
            /* every backend accepts threads=N (hcga_plugin.h, create());
             * the OpenCL runtime schedules the device's work itself, so
             * the value is only checked */
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (end == val || *end || errno || v < 1 || v > 4096) {
                snprintf(err, err_len, "opencl: option threads=%s: expected 1..4096", val);
                return -1;
            }
        } else if (!strcmp(key, "conv")) {
            if (!strcmp(val, "loop"))
                o->conv_batched = 0;
            else if (!strcmp(val, "batched"))
                o->conv_batched = 1;
            else {
                snprintf(err, err_len, "opencl: option conv=%s: expected loop or batched", val);
                return -1;
            }
        } else if (!strcmp(key, "im2col")) {
            if (!strcmp(val, "own"))
                o->im2col_clblast = 0;
            else if (!strcmp(val, "clblast"))
                o->im2col_clblast = 1;
            else {
                snprintf(err, err_len, "opencl: option im2col=%s: expected own or clblast", val);
                return -1;
            }
        } else if (!strcmp(key, "clblast_tune")) {
            if (!strcmp(val, "auto"))
                o->tune_off = 0;
            else if (!strcmp(val, "off"))
                o->tune_off = 1;
            else {
                snprintf(err, err_len, "opencl: option clblast_tune=%s: expected auto or off",
                         val);
                return -1;
            }
        } else if (!strcmp(key, "gemm")) {
            if (!strcmp(val, "float"))
                o->gemm_double = 0;
            else if (!strcmp(val, "double"))
                o->gemm_double = 1;
            else {
                snprintf(err, err_len, "opencl: option gemm=%s: expected float or double", val);
                return -1;
            }
        } else if (!strcmp(key, "accumulate")) {
            if (!strcmp(val, "float"))
                o->acc = 0;
            else if (!strcmp(val, "double"))
                o->acc = 1;
            else {
                snprintf(err, err_len, "opencl: option accumulate=%s: expected float or double",
                         val);
                return -1;
            }
        } else if (!strcmp(key, "fp16")) {
            if (!strcmp(val, "storage"))
                o->fp16_khr = 0;
            else if (!strcmp(val, "khr"))
                o->fp16_khr = 1;
            else {
                snprintf(err, err_len, "opencl: option fp16=%s: expected storage or khr", val);
                return -1;
            }
        } else {
            snprintf(err, err_len,
                     "opencl: unknown option '%s' (known: device=P:D, workspace_mb=N, threads=N, "
                     "conv=loop|batched, accumulate=float|double, gemm=float|double, "
                     "clblast_tune=auto|off, im2col=own|clblast, fp16=storage|khr)",
                     key);
            return -1;
        }
    }
    return 0;
}

/* Picks the device: option device=P:D, else $HCGA_OPENCL_DEVICE, else the
 * flat index.  Returns the index into devs or -1 with err set. */
static int select_device(const ocl_dev *devs, int n, int device, const ocl_opts *o, char *err,
                         size_t err_len)
{
    int p = 0, d = 0, flat = 1, idx = device;
    const char *src = "device index";
    const char *env = getenv("HCGA_OPENCL_DEVICE");
    if (o->have_pd) {
        p = o->p;
        d = o->d;
        flat = 0;
        src = "option device";
    } else if (env && *env) {
        if (parse_pd(env, &p, &d, &flat)) {
            snprintf(err, err_len, "opencl: HCGA_OPENCL_DEVICE=%s: expected P:D or an index",
                     env);
            return -1;
        }
        if (flat) idx = p;
        src = "HCGA_OPENCL_DEVICE";
    }
    if (flat) {
        if (idx < 0 || idx >= n) {
            snprintf(err, err_len, "opencl: %s %d out of range (%d device%s)", src, idx, n,
                     n == 1 ? "" : "s");
            return -1;
        }
        return idx;
    }
    for (int i = 0; i < n; i++)
        if (devs[i].pi == p && devs[i].di == d) return i;
    snprintf(err, err_len, "opencl: %s %d:%d: no such platform:device", src, p, d);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Program                                                                   */
/* ------------------------------------------------------------------------ */

static const char *const typed_names[KT_COUNT] = {
#define OCL_NAME_(n) #n,
    OCL_TYPED_KERNELS(OCL_NAME_)
#undef OCL_NAME_
};
static const char *const plain_names[KP_COUNT] = {
#define OCL_NAME_(n) #n,
    OCL_PLAIN_KERNELS(OCL_NAME_)
#undef OCL_NAME_
};

static const char *const typed_sources_f32 =
    "#define T float\n#define SFX _f32\n#define HK_ACC float\n";
static const char *const typed_sources_f32_accd =
    "#define T float\n#define SFX _f32\n#define HK_ACC double\n";
static const char *const typed_sources_f64 =
    "#undef T\n#undef SFX\n#undef HK_ACC\n#define T double\n#define SFX _f64\n"
    "#define HK_ACC double\n";

/* The copy instantiations: (CS, CD, name). */
static const char *const copy_defs[KP_COUNT - KP_copy_f32_f32] = {
    "#define CS float\n#define CD float\n#define CNAME copy_f32_f32\n",
    "#define CS long\n#define CD long\n#define CNAME copy_i64_i64\n",
    "#define CS int\n#define CD int\n#define CNAME copy_i32_i32\n",
    "#define CS uchar\n#define CD uchar\n#define CNAME copy_u8_u8\n",
    "#define CS double\n#define CD double\n#define CNAME copy_f64_f64\n",
    "#define CS float\n#define CD double\n#define CNAME copy_f32_f64\n",
    "#define CS double\n#define CD float\n#define CNAME copy_f64_f32\n",
};
static const char *const copy_undef = "#undef CS\n#undef CD\n#undef CNAME\n";

static hcga_status build_program(hcga_backend *be, char *err, size_t err_len)
{
    const char *typed[] = {hcga_ocl_src_hcga_kmath, hcga_ocl_src_elementwise,
                           hcga_ocl_src_reduce,     hcga_ocl_src_channel,
                           hcga_ocl_src_spatial,    hcga_ocl_src_bn,
                           hcga_ocl_src_loss,       hcga_ocl_src_conv};
    const size_t ntyped = sizeof typed / sizeof typed[0];
    const char *src[64];
    cl_uint n = 0;
    src[n++] = be->has_fp64 ? "#define HCGA_FP64 1\n" : "\n";
    src[n++] = hcga_ocl_src_prelude;
    src[n++] = hcga_ocl_src_untyped;
    src[n++] = hcga_ocl_src_half;
    for (int t = 0; t < (be->has_fp64 ? 2 : 1); t++) {
        src[n++] = t == 1 ? typed_sources_f64
                 : be->acc_double ? typed_sources_f32_accd : typed_sources_f32;
        for (size_t i = 0; i < ntyped; i++) src[n++] = typed[i];
    }
    int ncopy = be->has_fp64 ? KP_COUNT - KP_copy_f32_f32 : KP_FIRST_FP64 - KP_copy_f32_f32;
    for (int i = 0; i < ncopy; i++) {
        src[n++] = copy_defs[i];
        src[n++] = hcga_ocl_src_copy;
        src[n++] = copy_undef;
    }

    cl_int rc;
    be->program = clCreateProgramWithSource(be->ctx, n, src, NULL, &rc);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(err, err_len, "opencl: clCreateProgramWithSource: %s", name);
        return HCGA_ERR_DEVICE;
    }
    rc = clBuildProgram(be->program, 1, &be->device, "-cl-std=CL1.2", NULL, NULL);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        size_t loglen = 0;
        clGetProgramBuildInfo(be->program, be->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &loglen);
        char *log = malloc(loglen + 1);
        if (log) {
            log[0] = 0;
            clGetProgramBuildInfo(be->program, be->device, CL_PROGRAM_BUILD_LOG, loglen, log,
                                  NULL);
            log[loglen] = 0;
            fprintf(stderr, "hcga opencl: kernel build log:\n%s\n", log);
            for (char *c = log; *c; c++)
                if (*c == '\n' || *c == '\r') *c = ' ';
        }
        snprintf(err, err_len, "opencl: clBuildProgram: %s: %s", name, log ? log : "(no log)");
        free(log);
        return HCGA_ERR_DEVICE;
    }
    for (int t = 0; t < (be->has_fp64 ? 2 : 1); t++) {
        for (int k = 0; k < KT_COUNT; k++) {
            char kname[96];
            snprintf(kname, sizeof kname, "%s%s", typed_names[k], t ? "_f64" : "_f32");
            be->typed[t][k] = clCreateKernel(be->program, kname, &rc);
            if (rc != CL_SUCCESS) {
                char name[64];
                code_text(rc, name, sizeof name);
                snprintf(err, err_len, "opencl: clCreateKernel(%s): %s", kname, name);
                return HCGA_ERR_DEVICE;
            }
        }
    }
    int nplain = be->has_fp64 ? KP_COUNT : KP_FIRST_FP64;
    for (int k = 0; k < nplain; k++) {
        be->plain[k] = clCreateKernel(be->program, plain_names[k], &rc);
        if (rc != CL_SUCCESS) {
            char name[64];
            code_text(rc, name, sizeof name);
            snprintf(err, err_len, "opencl: clCreateKernel(%s): %s", plain_names[k], name);
            return HCGA_ERR_DEVICE;
        }
    }
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* CLBlast tuning                                                            */
/* ------------------------------------------------------------------------ */

/* CLBlast has no tuned GEMM parameters for PoCL's CPU device: its default
 * Xgemm runs SGEMM 1024^3 at ~5 GFLOP/s here, and every problem below
 * ~900^3 goes to XgemmDirect, which runs at 2-8 GFLOP/s.  Measured on this
 * machine (PoCL 3.1, 2 AVX-512 cores, runs back to back): Xgemm with 64x64
 * tiles per work-group of 8x8 items, 8-wide vectors and KWG 16 reaches
 * 16-20 GFLOP/s at 1024^3 and 30-55 GFLOP/s on the model's conv GEMMs
 * (64x2048x576, 256x512x1920, ...), DGEMM 2.4 -> 4.0; using it from
 * m*n*k >= 64^3 on (XGEMM_MIN_INDIRECT_SIZE 64) is faster than the direct
 * kernel for every shape tried but 16x128x64.  Applied to PoCL CPU devices
 * only, unless clblast_tune=off.  Each item still sums over k in order, so
 * results do not depend on the tiling. */
static hcga_status tune_clblast(hcga_backend *be, char *err, size_t err_len)
{
    char pname[256];
    cl_device_type type = 0;
    plat_string(be->platform, CL_PLATFORM_NAME, pname, sizeof pname);
    if (clGetDeviceInfo(be->device, CL_DEVICE_TYPE, sizeof type, &type, NULL) != CL_SUCCESS)
        type = 0;
    if (!strstr(pname, "Portable Computing Language") || !(type & CL_DEVICE_TYPE_CPU))
        return HCGA_OK;
    static const char *const names[] = {"GEMMK", "KREG", "KWG",  "KWI",  "MDIMA", "MDIMC",
                                        "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                        "STRM",  "STRN", "VWM",  "VWN"};
    static const size_t vals[] = {0, 1, 16, 1, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 8, 8};
    const size_t n = sizeof vals / sizeof vals[0];
    static const char *const rnames[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    static const size_t rvals[] = {64};
    for (int t = 0; t < (be->has_fp64 ? 2 : 1); t++) {
        CLBlastPrecision prec = t ? CLBlastPrecisionDouble : CLBlastPrecisionSingle;
        const char *what = "Xgemm";
        CLBlastStatusCode st =
            CLBlastOverrideParameters(be->device, what, prec, n, (const char **)names, vals);
        if (st == CLBlastSuccess) {
            what = "GemmRoutine";
            st = CLBlastOverrideParameters(be->device, what, prec, 1, (const char **)rnames,
                                           rvals);
        }
        if (st != CLBlastSuccess) {
            char name[64];
            code_text(st, name, sizeof name);
            snprintf(err, err_len,
                     "opencl: CLBlastOverrideParameters(%s, %s): %s (option clblast_tune=off "
                     "skips it)",
                     what, t ? "double" : "single", name);
            return HCGA_ERR_DEVICE;
        }
    }
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                 */
/* ------------------------------------------------------------------------ */

static void ocl_destroy(hcga_backend *be)
{
    if (!be) return;
    if (be->queue) clFinish(be->queue);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < KT_COUNT; k++)
            if (be->typed[t][k]) clReleaseKernel(be->typed[t][k]);
    for (int k = 0; k < KP_COUNT; k++)
        if (be->plain[k]) clReleaseKernel(be->plain[k]);
    if (be->ws) clReleaseMemObject(be->ws);
    if (be->gemm_tmp) clReleaseMemObject(be->gemm_tmp);
    if (be->dtmp) clReleaseMemObject(be->dtmp);
    if (be->half_ws) clReleaseMemObject(be->half_ws);
    if (be->scratch) clReleaseMemObject(be->scratch);
    if (be->flag) clReleaseMemObject(be->flag);
    if (be->program) clReleaseProgram(be->program);
    if (be->queue) clReleaseCommandQueue(be->queue);
    if (be->ctx) clReleaseContext(be->ctx);
    /* CLBlast keeps compiled programs (holding our context) in a process-wide
     * cache; drop them with the context.  Another live instance only pays a
     * recompilation (PoCL's on-disk cache makes that cheap). */
    CLBlastClearCache();
    free(be);
}

static hcga_status ocl_create(int device, const char *options, hcga_backend **out, char *err,
                              size_t err_len)
{
    char dummy[8];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof dummy;
    }
    err[0] = 0;
    if (!out) {
        snprintf(err, err_len, "opencl: create: out is NULL");
        return HCGA_ERR_INVALID;
    }
    *out = NULL;
    ocl_opts o;
    if (parse_options(options, &o, err, err_len)) return HCGA_ERR_INVALID;
    ocl_dev devs[OCL_MAX_DEVICES];
    char why[512];
    int n = enumerate(devs, OCL_MAX_DEVICES, why, sizeof why);
    if (n < 0) {
        snprintf(err, err_len, "opencl: %s", why);
        return HCGA_ERR_DEVICE;
    }
    int idx = select_device(devs, n, device, &o, err, err_len);
    if (idx < 0) return HCGA_ERR_INVALID;

    hcga_backend *be = calloc(1, sizeof *be);
    if (!be) {
        snprintf(err, err_len, "opencl: out of host memory");
        return HCGA_ERR_NOMEM;
    }
    be->platform = devs[idx].platform;
    be->device = devs[idx].device;
    be->platform_index = devs[idx].pi;
    be->device_index = devs[idx].di;
    be->ws_cap = (size_t)o.ws_mb << 20;
    be->conv_batched = o.conv_batched;
    be->op_name = "create";

    cl_int rc;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)be->platform,
                                     0};
    be->ctx = clCreateContext(props, 1, &be->device, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(err, err_len, "opencl: clCreateContext on %d:%d: %s", be->platform_index,
                 be->device_index, name);
        ocl_destroy(be);
        return HCGA_ERR_DEVICE;
    }
    be->queue = clCreateCommandQueue(be->ctx, be->device, 0, &rc);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(err, err_len, "opencl: clCreateCommandQueue: %s", name);
        ocl_destroy(be);
        return HCGA_ERR_DEVICE;
    }
    cl_device_fp_config fp64 = 0;
    if (clGetDeviceInfo(be->device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) !=
        CL_SUCCESS)
        fp64 = 0;
    char ext[8192];
    dev_string(be->device, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    be->has_fp64 = fp64 != 0 && strstr(ext, "cl_khr_fp64") != NULL;
    be->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    /* f16 is storage here (integer conversions in kernels/half.cl), so it
     * needs no cl_khr_fp16; fp16=khr asks for the extension anyway */
    be->f16_ok = be->has_fp16 || !o.fp16_khr;
    if (o.acc == 1 && !be->has_fp64) {
        snprintf(err, err_len, "opencl: option accumulate=double: the device lacks cl_khr_fp64");
        ocl_destroy(be);
        return HCGA_ERR_INVALID;
    }
    be->acc_double = o.acc < 0 ? be->has_fp64 : o.acc;
    if (o.gemm_double && !be->has_fp64) {
        snprintf(err, err_len, "opencl: option gemm=double: the device lacks cl_khr_fp64");
        ocl_destroy(be);
        return HCGA_ERR_INVALID;
    }
    be->gemm_double = o.gemm_double;
    be->im2col_clblast = o.im2col_clblast;

    hcga_status st = build_program(be, err, err_len);
    if (st == HCGA_OK && !o.tune_off) st = tune_clblast(be, err, err_len);
    if (st != HCGA_OK) {
        ocl_destroy(be);
        return st;
    }
    be->flag = clCreateBuffer(be->ctx, CL_MEM_READ_WRITE, sizeof(cl_int), NULL, &rc);
    if (rc != CL_SUCCESS) {
        char name[64];
        code_text(rc, name, sizeof name);
        snprintf(err, err_len, "opencl: clCreateBuffer (flag): %s", name);
        ocl_destroy(be);
        return HCGA_ERR_NOMEM;
    }
    be->op_name = NULL;
    snprintf(be->err, sizeof be->err, "no error");
    *out = be;
    return HCGA_OK;
}

static const char *ocl_last_error(hcga_backend *be)
{
    return be ? be->err : "opencl: no backend instance";
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

static hcga_status ocl_buffer_alloc(hcga_backend *be, uint64_t bytes, hcga_buffer **out)
{
    be->op_name = "buffer_alloc";
    if (!out) return ocl_fail(be, HCGA_ERR_INVALID, "out is NULL");
    *out = NULL;
    cl_ulong maxalloc = 0;
    OCL_CHECK(be, clGetDeviceInfo(be->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc,
                                  &maxalloc, NULL),
              "clGetDeviceInfo");
    if (bytes > maxalloc)
        return ocl_fail(be, HCGA_ERR_NOMEM,
                        "%llu bytes exceed the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE (%llu)",
                        (unsigned long long)bytes, (unsigned long long)maxalloc);
    hcga_buffer *b = calloc(1, sizeof *b);
    if (!b) return ocl_fail(be, HCGA_ERR_NOMEM, "out of host memory");
    cl_int rc;
    b->mem = clCreateBuffer(be->ctx, CL_MEM_READ_WRITE, bytes ? (size_t)bytes : 1, NULL, &rc);
    if (rc != CL_SUCCESS) {
        free(b);
        return ocl_cl_fail(be, rc, "clCreateBuffer");
    }
    b->size = bytes;
    *out = b;
    return HCGA_OK;
}

static void ocl_buffer_free(hcga_backend *be, hcga_buffer *buf)
{
    (void)be;
    if (!buf) return;
    /* OpenCL keeps the memory alive until enqueued commands using it end. */
    clReleaseMemObject(buf->mem);
    free(buf);
}

static hcga_status ocl_buffer_write(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                    const void *src, uint64_t bytes)
{
    be->op_name = "buffer_write";
    if (!buf || (!src && bytes)) return ocl_fail(be, HCGA_ERR_INVALID, "NULL buffer or source");
    if (offset > buf->size || bytes > buf->size - offset)
        return ocl_fail(be, HCGA_ERR_INVALID,
                        "range [%llu, +%llu) outside the buffer of %llu bytes",
                        (unsigned long long)offset, (unsigned long long)bytes,
                        (unsigned long long)buf->size);
    if (!bytes) return HCGA_OK;
    /* blocking: the caller may reuse src as soon as this returns */
    OCL_CHECK(be, clEnqueueWriteBuffer(be->queue, buf->mem, CL_TRUE, (size_t)offset,
                                       (size_t)bytes, src, 0, NULL, NULL),
              "clEnqueueWriteBuffer");
    return HCGA_OK;
}

static hcga_status ocl_buffer_read(hcga_backend *be, hcga_buffer *buf, uint64_t offset,
                                   void *dst, uint64_t bytes)
{
    be->op_name = "buffer_read";
    if (!buf || (!dst && bytes)) return ocl_fail(be, HCGA_ERR_INVALID, "NULL buffer or target");
    if (offset > buf->size || bytes > buf->size - offset)
        return ocl_fail(be, HCGA_ERR_INVALID,
                        "range [%llu, +%llu) outside the buffer of %llu bytes",
                        (unsigned long long)offset, (unsigned long long)bytes,
                        (unsigned long long)buf->size);
    if (!bytes) {
        OCL_CHECK(be, clFinish(be->queue), "clFinish");
        return HCGA_OK;
    }
    OCL_CHECK(be, clEnqueueReadBuffer(be->queue, buf->mem, CL_TRUE, (size_t)offset,
                                      (size_t)bytes, dst, 0, NULL, NULL),
              "clEnqueueReadBuffer");
    return HCGA_OK;
}

static hcga_status ocl_synchronize(hcga_backend *be)
{
    be->op_name = "synchronize";
    OCL_CHECK(be, clFinish(be->queue), "clFinish");
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* Scratch and helpers                                                       */
/* ------------------------------------------------------------------------ */

hcga_status ocl_ensure(hcga_backend *be, cl_mem *mem, size_t *have, size_t need,
                       const char *what)
{
    if (*mem && *have >= need) return HCGA_OK;
    size_t sz = need < 4096 ? 4096 : need;
    /* grow geometrically so a slowly growing need does not reallocate each time */
    if (*have && sz < *have + *have / 2) sz = *have + *have / 2;
    cl_int rc;
    cl_mem m = clCreateBuffer(be->ctx, CL_MEM_READ_WRITE, sz, NULL, &rc);
    if (rc != CL_SUCCESS && sz > need) {
        sz = need;
        m = clCreateBuffer(be->ctx, CL_MEM_READ_WRITE, sz, NULL, &rc);
    }
    if (rc != CL_SUCCESS) {
        char call[96];
        snprintf(call, sizeof call, "clCreateBuffer %s %zu bytes", what, need);
        return ocl_cl_fail(be, rc, call);
    }
    /* released memory stays valid for commands already enqueued */
    if (*mem) clReleaseMemObject(*mem);
    *mem = m;
    *have = sz;
    return HCGA_OK;
}

hcga_status ocl_fill(hcga_backend *be, cl_mem mem, size_t byte_off, size_t bytes, int dtype,
                     double value)
{
    if (!bytes) return HCGA_OK;
    union {
        float f;
        double d;
        int64_t l;
        int32_t i;
        uint8_t u;
    } pat;
    size_t psize = hcga_dtype_size(dtype);
    memset(&pat, 0, sizeof pat);
    switch (dtype) {
    case HCGA_F32: pat.f = (float)value; break;
    case HCGA_F64: pat.d = value; break;
    case HCGA_I64: pat.l = (int64_t)value; break;
    case HCGA_I32: pat.i = (int32_t)value; break;
    case HCGA_U8: pat.u = (uint8_t)value; break;
    default: return ocl_fail(be, HCGA_ERR_UNSUPPORTED, "fill of dtype %d", dtype);
    }
    OCL_CHECK(be, clEnqueueFillBuffer(be->queue, mem, &pat, psize, byte_off, bytes, 0, NULL,
                                      NULL),
              "clEnqueueFillBuffer");
    return HCGA_OK;
}

hcga_status ocl_flag_reset(hcga_backend *be)
{
    cl_int v = INT_MAX;
    OCL_CHECK(be, clEnqueueFillBuffer(be->queue, be->flag, &v, sizeof v, 0, sizeof v, 0, NULL,
                                      NULL),
              "clEnqueueFillBuffer flag");
    return HCGA_OK;
}

hcga_status ocl_flag_read(hcga_backend *be, long *first_bad)
{
    cl_int v = 0;
    OCL_CHECK(be, clEnqueueReadBuffer(be->queue, be->flag, CL_TRUE, 0, sizeof v, &v, 0, NULL,
                                      NULL),
              "clEnqueueReadBuffer flag");
    *first_bad = v == INT_MAX ? -1 : (long)v;
    return HCGA_OK;
}

void ocl_parts(int64_t n, int64_t *groups, int64_t *chunk)
{
    /* about 4 loop trips per item before a second group is used */
    int64_t g = (n + OCL_RLWS * 4 - 1) / (OCL_RLWS * 4);
    if (g < 1) g = 1;
    if (g > OCL_MAX_PARTS) g = OCL_MAX_PARTS;
    *chunk = (n + g - 1) / g;
    if (*chunk < 1) *chunk = 1;
    *groups = (n + *chunk - 1) / *chunk;
    if (*groups < 1) *groups = 1;
}

void ocl_begin(ocl_launch *l, hcga_backend *be, cl_kernel k, const char *kname, int dtype)
{
    l->be = be;
    l->k = k;
    l->kname = kname;
    l->dtype = dtype;
    l->next = 0;
    l->rc = k ? CL_SUCCESS : CL_INVALID_KERNEL;
    l->failed_call = k ? NULL : "kernel not built";
}

static void set_arg(ocl_launch *l, size_t size, const void *v)
{
    if (l->rc != CL_SUCCESS) return;
    cl_int rc = clSetKernelArg(l->k, l->next, size, v);
    if (rc != CL_SUCCESS) {
        l->rc = rc;
        l->failed_call = "clSetKernelArg";
    }
    l->next++;
}

void ocl_arg_mem(ocl_launch *l, cl_mem m) { set_arg(l, sizeof m, &m); }

void ocl_arg_long(ocl_launch *l, int64_t v)
{
    cl_long x = (cl_long)v;
    set_arg(l, sizeof x, &x);
}

void ocl_arg_int(ocl_launch *l, int32_t v)
{
    cl_int x = (cl_int)v;
    set_arg(l, sizeof x, &x);
}

void ocl_arg_real(ocl_launch *l, double v)
{
    if (l->dtype == HCGA_F64) {
        cl_double x = v;
        set_arg(l, sizeof x, &x);
    } else {
        cl_float x = (cl_float)v;
        set_arg(l, sizeof x, &x);
    }
}

void ocl_arg_acc(ocl_launch *l, double v)
{
    if (l->dtype == HCGA_F64 || l->be->acc_double) {
        cl_double x = v;
        set_arg(l, sizeof x, &x);
    } else {
        cl_float x = (cl_float)v;
        set_arg(l, sizeof x, &x);
    }
}

void ocl_arg_tensor(ocl_launch *l, const hcga_tensor *t)
{
    ocl_arg_mem(l, t->buf->mem);
    ocl_arg_long(l, ocl_eoff(t));
}

hcga_status ocl_run(ocl_launch *l, size_t gws, size_t lws)
{
    hcga_backend *be = l->be;
    char call[128];
    if (l->rc != CL_SUCCESS) {
        snprintf(call, sizeof call, "%s %s arg %u", l->failed_call, l->kname, l->next);
        return ocl_cl_fail(be, l->rc, call);
    }
    if (gws == 0) return HCGA_OK;
    if (lws) gws = (gws + lws - 1) / lws * lws;
    cl_int rc = clEnqueueNDRangeKernel(be->queue, l->k, 1, NULL, &gws, lws ? &lws : NULL, 0,
                                       NULL, NULL);
    if (rc != CL_SUCCESS) {
        snprintf(call, sizeof call, "clEnqueueNDRangeKernel %s", l->kname);
        return ocl_cl_fail(be, rc, call);
    }
    return HCGA_OK;
}

hcga_status ocl_run_nd(ocl_launch *l, int dims, size_t g0, size_t g1, size_t g2)
{
    hcga_backend *be = l->be;
    char call[128];
    if (l->rc != CL_SUCCESS) {
        snprintf(call, sizeof call, "%s %s arg %u", l->failed_call, l->kname, l->next);
        return ocl_cl_fail(be, l->rc, call);
    }
    size_t g[3] = {g0, dims > 1 ? g1 : 1, dims > 2 ? g2 : 1};
    if (g[0] == 0 || g[1] == 0 || g[2] == 0) return HCGA_OK;
    cl_int rc = clEnqueueNDRangeKernel(be->queue, l->k, (cl_uint)dims, NULL, g, NULL, 0, NULL,
                                       NULL);
    if (rc != CL_SUCCESS) {
        snprintf(call, sizeof call, "clEnqueueNDRangeKernel %s", l->kname);
        return ocl_cl_fail(be, rc, call);
    }
    return HCGA_OK;
}

/* ------------------------------------------------------------------------ */
/* Op support and descriptor                                                 */
/* ------------------------------------------------------------------------ */

static int ocl_supports(hcga_backend *be, int op, int dtype)
{
    if (op < 0 || op >= HCGA_OP_COUNT || !ocl_op_table[op]) return 0;
    if (dtype == HCGA_F32) return 1;
    if (dtype == HCGA_F64) return be ? be->has_fp64 : 0;
    /* bf16 / f16: the catalogue's half ops (CAST, convolutions, GEMM) */
    if (dtype == HCGA_BF16 || dtype == HCGA_F16) {
        const hcga_op_info *info = hcga_op_get_info(op);
        if (!info || !info->half) return 0;
        return dtype == HCGA_BF16 || (be ? be->f16_ok : 0);
    }
    /* integer tensors move through COPY and FILL only */
    if (op == HCGA_OP_COPY || op == HCGA_OP_FILL)
        return dtype == HCGA_I64 || dtype == HCGA_I32 || dtype == HCGA_U8;
    return 0;
}

static const hcga_backend_iface ocl_iface = {
    .struct_size = sizeof(hcga_backend_iface),
    .probe = ocl_probe,
    .device_info = ocl_device_info,
    .create = ocl_create,
    .destroy = ocl_destroy,
    .last_error = ocl_last_error,
    .buffer_alloc = ocl_buffer_alloc,
    .buffer_free = ocl_buffer_free,
    .buffer_write = ocl_buffer_write,
    .buffer_read = ocl_buffer_read,
    .synchronize = ocl_synchronize,
    .ops = ocl_op_table,
    .num_ops = HCGA_OP_COUNT,
    .supports = ocl_supports,
};

static const hcga_backend_iface *ocl_get_iface(void) { return &ocl_iface; }

__attribute__((visibility("default"))) extern const hcga_plugin_descriptor
    hcga_plugin_descriptor_v1;
const hcga_plugin_descriptor hcga_plugin_descriptor_v1 = HCGA_PLUGIN_DESCRIPTOR_INIT(
    "opencl", "OpenCL 1.2 kernels, GEMM and im2col/col2im through CLBlast", "0.1.0",
    ocl_get_iface);
