/*
 * ddp.h - data-parallel training steps: what every rank does so that N
 * ranks with a part of the batch each train exactly like one process with
 * the whole batch.
 *
 * After hg_exec_new of the training graph, hcga_ddp_new plans the gradient
 * buckets: the graph keeps every parameter gradient in one buffer, last
 * parameter first (graph.h), and the buckets are consecutive ranges of it
 * of about bucket_mb each, so the first bucket completes first in backward.
 * hcga_ddp_new installs a hook on the executor which, after each node,
 *   - sums over the ranks the outputs the graph marks (synchronised batch
 *     norm statistics, blocking: the next node needs them), and
 *   - starts the all-reduce of each bucket whose last gradient that node
 *     completed, so communication overlaps the rest of backward;
 * hcga_ddp_finish (after hg_exec_run, before the optimizer) waits for the
 * buckets and leaves the mean over the ranks in the gradient buffer.
 *
 * Transport: the backend's own collectives when it has them (plugin ABI
 * 1.2: NCCL for CUDA) else the host: the bucket is read, all-reduced with
 * MPI (MPI_Iallreduce) and written back.  With one rank nothing is done.
 */
#ifndef HCGA_DDP_H
#define HCGA_DDP_H

#include <stddef.h>

#include "graph/graph.h"

typedef struct hcga_ddp hcga_ddp;

/* Timings of the steps so far (seconds), for hcga bench and the logs. */
typedef struct hcga_ddp_stats {
    long long steps, buckets;
    double bytes;        /* gradient bytes all-reduced per step */
    double exposed_s;    /* time hcga_ddp_finish spent (waiting + writing back) */
    double hook_s;       /* time in the hook during backward (staging, starting) */
    double sync_bn_s;    /* time summing BN statistics (inside the hook) */
    const char *transport; /* "nccl" / "mpi (host staging)" / "none" */
} hcga_ddp_stats;

/* Plans buckets of about bucket_mb MiB over ex's gradients and installs the
 * hook.  overlap 0: every bucket is started in hcga_ddp_finish instead (to
 * measure what overlap gains).  Returns NULL with err set on failure. */
hcga_ddp *hcga_ddp_new(hg_exec *ex, double bucket_mb, int overlap, char *err, size_t err_len);
void hcga_ddp_free(hcga_ddp *d);

/* Waits for every bucket and averages: afterwards each rank's gradient
 * buffer holds the mean of the ranks' gradients.  0, or -1 with err set. */
int hcga_ddp_finish(hcga_ddp *d, char *err, size_t err_len);

/* Rank 0's parameters and buffers (BN running statistics) to every rank:
 * after initialisation and after --resume.  buffers_only: the buffers alone,
 * which per-rank batch norm (MODEL.SYNC_BN False) lets drift apart: before
 * whatever uses them (evaluation, co-parsing), so every rank computes with
 * rank 0's, the ones a checkpoint keeps (torch DDP's broadcast_buffers). */
int hcga_ddp_broadcast_store(hg_store *s, int buffers_only, char *err, size_t err_len);

hcga_ddp_stats hcga_ddp_get_stats(const hcga_ddp *d);
int hcga_ddp_num_buckets(const hcga_ddp *d);

#endif
