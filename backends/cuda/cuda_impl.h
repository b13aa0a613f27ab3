/*
 * cuda_impl.h - the op implementations the dispatcher (cuda_backend.c) calls.
 *
 * One function per row of plugins/hcga_ops.def, named cu_impl_<ID>.  The
 * dispatcher has already run hcga_contract_check() (the call is well formed;
 * ck holds the call's dtype and the derived convolution, batch-norm and GEMM
 * sizes) and made the instance's device current; an implementation fetches
 * device pointers, refuses what the device cannot do (HCGA_ERR_UNSUPPORTED
 * with a reason) and enqueues its work.  The dispatcher's table names every
 * cu_impl_<ID>, so an op added to the catalogue without an implementation
 * declared here does not compile.
 */
#ifndef HCGA_CUDA_IMPL_H
#define HCGA_CUDA_IMPL_H

#include "hcga_contract.h"
#include "cuda_internal.h"

typedef hcga_status (*cu_impl_fn)(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);

#define CU_IMPL(id_) hcga_status cu_impl_##id_(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)

/* cuda_dnn.c: cuDNN convolution and batch norm, cuBLAS GEMM */
CU_IMPL(CONV2D_FWD);
CU_IMPL(CONV2D_BWD_DATA);
CU_IMPL(CONV2D_BWD_FILTER);
CU_IMPL(BN_FWD_TRAIN);
CU_IMPL(BN_FWD_INFER);
CU_IMPL(BN_BWD);
CU_IMPL(GEMM);
void cu_dnn_release(hcga_backend *be); /* frees the algorithm cache */

/* cuda_ops.c: our own kernels (k_*.cu) */
CU_IMPL(RELU_FWD);
CU_IMPL(RELU_BWD);
CU_IMPL(SIGMOID_FWD);
CU_IMPL(SIGMOID_BWD);
CU_IMPL(THRESH_FWD);
CU_IMPL(THRESH_BWD);
CU_IMPL(ADD);
CU_IMPL(MUL);
CU_IMPL(SUM_TO);
CU_IMPL(COPY);
CU_IMPL(FILL);
CU_IMPL(SOFTMAX_FWD);
CU_IMPL(SOFTMAX_BWD);
CU_IMPL(CONCAT);
CU_IMPL(SPLIT);
CU_IMPL(ARGMAX);
CU_IMPL(UPSAMPLE_NEAREST_FWD);
CU_IMPL(UPSAMPLE_NEAREST_BWD);
CU_IMPL(RESIZE_BILINEAR_FWD);
CU_IMPL(RESIZE_BILINEAR_BWD);
CU_IMPL(GAP_FWD);
CU_IMPL(GAP_BWD);
CU_IMPL(REDUCE);
CU_IMPL(REDUCE_BWD);
CU_IMPL(CE_LS_FWD);
CU_IMPL(CE_LS_BWD);
CU_IMPL(PIXEL_CE_FWD);
CU_IMPL(PIXEL_CE_BWD);
CU_IMPL(TRIPLET_FWD);
CU_IMPL(TRIPLET_BWD);
CU_IMPL(SHIFT_L1_FWD);
CU_IMPL(SHIFT_L1_BWD);
CU_IMPL(ADAM_STEP);
CU_IMPL(SGD_STEP);
CU_IMPL(CAST); /* ABI 1.1: k_half.cu */

#endif
