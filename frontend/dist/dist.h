/*
 * dist.h - the processes of a data-parallel run ("ranks") and what they say
 * to each other, over MPI.
 *
 * `mpirun -np N hcga ... train` starts N copies of hcga; each calls
 * hcga_dist_init, which sees the launcher's environment and joins the MPI
 * job.  Without a launcher (or in a build without MPI, configure's
 * --without-mpi) there is one rank and every call here is a cheap no-op, so
 * a single process behaves exactly as before.  A build without MPI started
 * as one of several ranks refuses with a message saying so.
 *
 * Every collective waits with a deadline (hcga_dist_set_timeout, default
 * 600 s, HCGA_DIST_TIMEOUT in the environment): a rank that died or hangs
 * makes the others stop with a message naming the collective, the step and
 * the ranks that had not arrived, instead of a silent hang.  (A rank killed
 * outright is also reported by mpirun, which stops the job.)
 *
 * Host buffers only: device buffers go through the backend's own
 * collectives (plugin ABI 1.2) or are staged through the host by the caller.
 */
#ifndef HCGA_DIST_H
#define HCGA_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the job when started by a launcher (Open MPI, MPICH/PMI, SLURM srun
 * with PMI), else stays a single rank.  Returns 0, or -1 with err set
 * (a build without MPI started as one of several ranks; MPI failed). */
int hcga_dist_init(int *argc, char ***argv, char *err, size_t err_len);
/* Leaves the job (MPI_Finalize); safe when never initialised. */
void hcga_dist_finalize(void);
/* Stops every rank of the job at once (MPI_Abort) after printing msg on
 * stderr as "hcga: rank R: msg"; exits a single process with status code. */
void hcga_dist_abort(int code, const char *msg);

int hcga_dist_rank(void);       /* 0..size-1 */
int hcga_dist_size(void);       /* number of ranks (1 without a launcher) */
int hcga_dist_local_rank(void); /* rank among the ranks on this machine */
int hcga_dist_local_size(void);
int hcga_dist_built_with_mpi(void);

/* Deadline of every collective wait, in seconds (> 0). */
void hcga_dist_set_timeout(double seconds);
double hcga_dist_timeout(void);
/* The training step number shown in timeout messages. */
void hcga_dist_set_step(long long step);

/* Blocking collectives on host memory; what names the call in messages
 * ("gradient bucket 3").  Return 0, or -1 with err set. */
int hcga_dist_barrier(const char *what, char *err, size_t err_len);
int hcga_dist_bcast(void *buf, size_t bytes, int root, const char *what, char *err, size_t err_len);
/* In place: every element becomes the sum over ranks.  dtype: HCGA_F32,
 * HCGA_F64, HCGA_I64 or HCGA_U8 (plugins/hcga_plugin.h); count < 2^31. */
int hcga_dist_allreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err,
                            size_t err_len);
/* Concatenates every rank's bytes on root in rank order; recv (root only)
 * holds the sum of all ranks' bytes, *total (root only) receives it. */
int hcga_dist_gather(const void *send, int64_t bytes, void *recv, int64_t recv_cap, int root, int64_t *total,
                     const char *what, char *err, size_t err_len);
/* Every rank's int64 value, on every rank (values[size]). */
int hcga_dist_allgather_i64(int64_t value, int64_t *values, const char *what, char *err, size_t err_len);

/* A started all-reduce (sum, in place) that completes in hcga_dist_wait:
 * the gradient buckets overlap with the rest of backward this way. */
typedef struct hcga_dist_req hcga_dist_req;
hcga_dist_req *hcga_dist_iallreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err,
                                        size_t err_len);
/* 1 when done (without waiting), 0 when not yet, -1 on error. */
int hcga_dist_test(hcga_dist_req *r, char *err, size_t err_len);
/* Waits (with the deadline) and frees r.  Returns 0 or -1 with err set. */
int hcga_dist_wait(hcga_dist_req *r, char *err, size_t err_len);

#endif
