/*
 * cuda_impl.h - the op implementations the dispatcher (cuda_backend.c) calls.
 *
 * One function per row of plugins/hcga_ops.def, named cu_impl_<ID>.  The
 * dispatcher has already run hcga_contract_check() (the call is well formed;
 * ck holds the call's dtype and the derived convolution, batch-norm and GEMM
 * sizes) and made the instance's device current; an implementation fetches
 * device pointers, refuses what the device cannot do (HCGA_ERR_UNSUPPORTED
 * with a reason) and enqueues its work.  The declarations below are
 * generated from the catalogue, and the dispatcher's table names every
 * cu_impl_<ID>, so an op added to the catalogue without an implementation
 * does not link.
 */
#ifndef HCGA_CUDA_IMPL_H
#define HCGA_CUDA_IMPL_H

#include "hcga_contract.h"
#include "cuda_internal.h"

typedef hcga_status (*cu_impl_fn)(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck);

#define CU_IMPL(id_) hcga_status cu_impl_##id_(hcga_backend *be, const hcga_op_args *a, const hcga_checked *ck)

/* One declaration per catalogue row: cuda_dnn.c defines the convolutions,
 * batch norm and GEMM (cuDNN, cuBLAS); cuda_ops.c every other op, batch norm
 * from summed statistics (ABI 1.2) included (our own kernels, k_*.cu).  A row without a definition fails the plugin's link
 * (-Wl,--no-undefined) or, in a sanitizer build, its dlopen. */
#define HCGA_OP(id_, ...) CU_IMPL(id_);
#include "hcga_ops.def"
#undef HCGA_OP

void cu_dnn_release(hcga_backend *be); /* cuda_dnn.c: frees the algorithm cache */

#endif
