/*
 * ocl_internal.h - shared declarations of the OpenCL backend plugin.
 *
 * Layout: ocl_backend.c (devices, instance, buffers, program, launch
 * helpers, descriptor), ocl_ops.c (every op but the BLAS ones),
 * ocl_blas.c (GEMM and convolution through CLBlast), kernels/ (OpenCL C
 * sources, embedded at build time by cl2c.sh).
 */
#ifndef HCGA_OCL_INTERNAL_H
#define HCGA_OCL_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdarg.h>
#include <stdint.h>

#include "hcga_contract.h"
#include "hcga_plugin.h"

/* Typed kernels: compiled for float ("_f32") and, with cl_khr_fp64, double. */
#define OCL_TYPED_KERNELS(X)                                                                   \
    X(relu_fwd) X(relu_bwd) X(sigmoid_fwd) X(sigmoid_bwd) X(thresh_fwd) X(thresh_bwd)          \
    X(binary_same) X(binary_bcast) X(binary_bcast3) X(gap_bwd) X(reduce_bwd) X(bias_add)       \
    X(adam_step) X(sgd_step) X(reduce_part) X(reduce_final) X(reduce_final_count)              \
    X(sum_to_item) X(sum_to_wg) X(softmax_fwd) X(softmax_bwd) X(argmax) X(copy_rows)           \
    X(upsample_fwd) X(upsample_bwd) X(bilinear_fwd) X(bilinear_table) X(bilinear_bwd_w) X(bilinear_bwd_h)        \
    X(bn_stats) X(bn_stats_item) X(bn_apply) X(bn_infer) X(bn_bwd_stats) X(bn_bwd_stats_item)  \
    X(bn_bwd_dx) X(bn_sums) X(bn_sums_item) X(bn_from_sums) X(ce_ls_rows) X(ce_ls_bwd) X(pixel_ce_part) X(pixel_ce_bwd) X(triplet_dist)   \
    X(triplet_mine) X(triplet_coef) X(triplet_dx) X(shift_l1_part) X(shift_l1_bwd)          \
    X(im2col) X(col2im)

enum ocl_typed_kernel {
#define OCL_ENUM_(n) KT_##n,
    OCL_TYPED_KERNELS(OCL_ENUM_)
#undef OCL_ENUM_
    KT_COUNT
};

/* Untyped kernels (integer-only, or copies with a fixed type pair). */
#define OCL_PLAIN_KERNELS(X)                                                                   \
    X(label_count_part) X(count_final) X(cast_bits) X(copy_f32_f32) X(copy_i64_i64) X(copy_i32_i32)         \
    X(copy_u8_u8) X(copy_f64_f64) X(copy_f32_f64) X(copy_f64_f32)

enum ocl_plain_kernel {
#define OCL_ENUM_(n) KP_##n,
    OCL_PLAIN_KERNELS(OCL_ENUM_)
#undef OCL_ENUM_
    KP_COUNT
};
/* The fp64 copies come last: they exist only with cl_khr_fp64. */
#define KP_FIRST_FP64 KP_copy_f64_f64

/* Fixed work-group size of the reduction kernels (RLWS in prelude.cl). */
#define OCL_RLWS 64
/* BN statistics use one work-item per channel below this many values per
 * channel (N*HW), a work-group per channel from there. */
#define OCL_BN_ITEM_MAX 512
/* Most work-groups a stage-1 reduction uses (fixed: determinism). */
#define OCL_MAX_PARTS 256

struct hcga_buffer {
    cl_mem mem;
    uint64_t size;
};

struct hcga_backend {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    cl_program program;
    int has_fp64;
    int acc_double; /* f32 kernels sum in double (HK_ACC = double) */
    int platform_index, device_index; /* P:D actually used */
    cl_kernel typed[2][KT_COUNT];     /* [0] f32, [1] f64 */
    cl_kernel plain[KP_COUNT];

    /* Scratch buffers, grown on demand and reused (the queue is in order).
     * ws: im2col columns; gemm_tmp: CLBlast's GEMM temp buffer; scratch:
     * reduction partials and small per-op arrays; flag: one int for label
     * and index errors reported by kernels. */
    cl_mem ws;
    size_t ws_size;
    cl_mem gemm_tmp;
    size_t gemm_tmp_size;
    cl_mem scratch;
    size_t scratch_size;
    cl_mem flag;
    size_t ws_cap; /* largest im2col workspace (bytes) a conv may use */
    int conv_batched; /* option conv=batched: im2col several images, StridedBatched GEMM */
    int gemm_double;  /* option gemm=double: f32 GEMMs run as DGEMM on converted copies */
    int im2col_clblast; /* option im2col=clblast: CLBlast's im2col/col2im, not conv.cl's */
    cl_mem dtmp;      /* f64 copies of GEMM operands for gemm=double */
    size_t dtmp_size;
    /* bf16 / f16 convolutions and GEMM: f32 copies of every floating
     * tensor of the call (inputs widened, outputs computed then rounded) */
    cl_mem half_ws;
    size_t half_ws_size;
    int has_fp16; /* the device reports cl_khr_fp16 */
    int f16_ok;   /* f16 tensors accepted: has_fp16, or option fp16=storage (default) */

    const char *op_name; /* op being run, for messages */
    char err[1024];
};

/* --- errors (ocl_backend.c) --- */
const char *ocl_err_name(cl_int code);
/* Records "<CL_NAME> in <op> (<call>)" and returns DEVICE (NOMEM for the
 * allocation failures). */
hcga_status ocl_cl_fail(hcga_backend *be, cl_int code, const char *call);
/* Records "<op>: <message>" and returns code. */
hcga_status ocl_fail(hcga_backend *be, hcga_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records msg as it is (it already names the op: the contract checker's
 * "<op>: <problem>") and returns code. */
hcga_status ocl_fail_msg(hcga_backend *be, hcga_status code, const char *msg);

#define OCL_CHECK(be, expr, call)                                                              \
    do {                                                                                       \
        cl_int ocl_rc_ = (expr);                                                               \
        if (ocl_rc_ != CL_SUCCESS) return ocl_cl_fail((be), ocl_rc_, (call));                  \
    } while (0)

/* --- scratch (ocl_backend.c) --- */
hcga_status ocl_ensure(hcga_backend *be, cl_mem *mem, size_t *have, size_t need,
                       const char *what);
hcga_status ocl_flag_reset(hcga_backend *be);
/* Reads the flag; returns the lowest index a kernel reported, or -1. */
hcga_status ocl_flag_read(hcga_backend *be, long *first_bad);
hcga_status ocl_fill(hcga_backend *be, cl_mem mem, size_t byte_off, size_t bytes, int dtype,
                     double value);

/* --- kernel launches (ocl_backend.c) --- */
typedef struct ocl_launch {
    hcga_backend *be;
    cl_kernel k;
    const char *kname;
    int dtype; /* type of ocl_real arguments */
    cl_uint next;
    cl_int rc;
    const char *failed_call;
} ocl_launch;

void ocl_begin(ocl_launch *l, hcga_backend *be, cl_kernel k, const char *kname, int dtype);
void ocl_arg_mem(ocl_launch *l, cl_mem m);
void ocl_arg_long(ocl_launch *l, int64_t v);
void ocl_arg_int(ocl_launch *l, int32_t v);
void ocl_arg_real(ocl_launch *l, double v);
/* An HK_ACC argument: double for f64 kernels and for f32 kernels when the
 * instance accumulates in double, else float. */
void ocl_arg_acc(ocl_launch *l, double v);
/* Tensor = (buffer, element offset). */
void ocl_arg_tensor(ocl_launch *l, const hcga_tensor *t);
/* Enqueues over gws items (local = lws, or the implementation's choice
 * when 0); gws = 0 enqueues nothing. */
hcga_status ocl_run(ocl_launch *l, size_t gws, size_t lws);
/* Enqueues an NDRange of dims 1..3 (g[0] fastest), local size chosen by
 * the implementation; an empty range enqueues nothing. */
hcga_status ocl_run_nd(ocl_launch *l, int dims, size_t g0, size_t g1, size_t g2);

static inline cl_kernel ocl_kt(hcga_backend *be, int dtype, int k)
{
    return be->typed[dtype == HCGA_F64 ? 1 : 0][k];
}

/* Bytes of one HK_ACC value (stage-1 partial sums) for data of dtype. */
static inline size_t ocl_acc_size(const hcga_backend *be, int dtype)
{
    return (dtype == HCGA_F64 || be->acc_double) ? 8 : 4;
}

static inline int64_t ocl_eoff(const hcga_tensor *t)
{
    return (int64_t)(t->offset / hcga_dtype_size(t->dtype));
}

/* Number of stage-1 groups and elements per group for a sum of n terms;
 * depends on n only. */
void ocl_parts(int64_t n, int64_t *groups, int64_t *chunk);

/* Sum of dense x (5-dim shape xs) over the dims where ys is 1, times
 * scale, into dense y (ocl_ops.c; SUM_TO, GAP_FWD, conv bias gradient). */
hcga_status ocl_sum_to5(hcga_backend *be, int dt, const hcga_tensor *x, const int64_t xs[5],
                        const hcga_tensor *y, const int64_t ys[5], double scale);

/* --- mixed precision (ocl_ops.c) --- */
/* Dense conversion of n elements between the floating dtypes (f32, f64,
 * bf16, f16; sdt != ddt), offsets in elements: kernels/half.cl's cast_bits,
 * bit for bit plugins/hcga_half.h. */
hcga_status ocl_cast_dense(hcga_backend *be, cl_mem src, int64_t so, int sdt, cl_mem dst,
                           int64_t dso, int ddt, int64_t n);

/* --- BLAS op implementations (ocl_blas.c) ---
 * Called by ocl_dispatch() (ocl_ops.c) once hcga_contract_check() accepted
 * the call, with what it learned in *ck; they only unpack and launch. */
hcga_status ocl_impl_GEMM(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status ocl_impl_CONV2D_FWD(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);
hcga_status ocl_impl_CONV2D_BWD_DATA(hcga_backend *be, const hcga_op_args *a,
                                     const hcga_checked *ck);
hcga_status ocl_impl_CONV2D_BWD_FILTER(hcga_backend *be, const hcga_op_args *a,
                                       const hcga_checked *ck);

/* --- op table (ocl_ops.c): generated from plugins/hcga_ops.def, every
 * entry checks the op contract and the device limits first --- */
extern const hcga_op_fn ocl_op_table[HCGA_OP_COUNT];

#endif
