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

/* ---- ABI 1.2 optional groups -------------------------------------------- */

/* Graph capture (cuda_capture.c); the iface functions, and what the rest of
 * the plugin asks while a capture is in progress. */
hcga_status cu_capture_begin(hcga_backend *be);
hcga_status cu_capture_end(hcga_backend *be, hcga_capture **out);
hcga_status cu_capture_replay(hcga_backend *be, hcga_capture *rec);
void cu_capture_free(hcga_backend *be, hcga_capture *rec);
/* HCGA_ERR_INVALID "<what>: not allowed while capturing ..." during a capture. */
hcga_status cu_not_capturing(hcga_backend *be, const char *what);
/* An op failed while capturing: capture_end will fail with its message. */
void cu_capture_note_failure(hcga_backend *be, hcga_status st);
/* While capturing: keep base to free after capture_end and return 1; else 0. */
int cu_capture_defer_free(hcga_backend *be, void *base);
/* destroy(): end a capture that was never ended. */
void cu_capture_abandon(hcga_backend *be);

/* Collectives (cuda_comm.c).  The iface functions exist only with NCCL. */
#ifdef HCGA_HAVE_NCCL
hcga_status cu_comm_id(hcga_backend *be, void *id, uint32_t *len);
hcga_status cu_comm_init(hcga_backend *be, const void *id, uint32_t len, int rank, int nranks);
hcga_status cu_allreduce(hcga_backend *be, const hcga_tensor *t, int comm_op);
hcga_status cu_broadcast(hcga_backend *be, const hcga_tensor *t, int root);
hcga_status cu_comm_wait(hcga_backend *be);
#endif
/* synchronize(): the compute stream waits for the collectives started so far. */
hcga_status cu_comm_join(hcga_backend *be, const char *op);
/* destroy(): wait for the comm stream, destroy the communicator, stream, events. */
void cu_comm_release(hcga_backend *be);

#endif
