/*
 * graph.h - hcga's computation graph: build once, differentiate, plan, run.
 *
 * A graph is a list of nodes in topological (creation) order.  Each node is
 * one backend op (hcga_plugin.h) producing one or more values.  Values are
 * identified by hg_val (an index; -1 means "none").
 *
 *   hg_graph *g = hg_graph_new(HCGA_F32);
 *   hg_val x = hg_input(g, "images", HCGA_F32, 4, (int64_t[]){N,3,H,W});
 *   hg_val w = hg_param(g, "base.conv1.weight", 4, (int64_t[]){64,3,3,3}, HG_TRAINABLE);
 *   hg_val y = hg_conv2d(g, x, w, -1, 2, 1);
 *   ...
 *   hg_backward(g, loss);           // reverse-mode autodiff appends grad nodes
 *   hg_exec *ex = hg_exec_new(g, store, be, err, sizeof err); // plan + allocate
 *   hg_exec_set_input(ex, "images", host, HCGA_F32);
 *   hg_exec_run(ex);
 *   hg_exec_read(ex, y, host_out, HCGA_F32);
 *
 * Parameters and buffers (BN running statistics) live in an hg_store that
 * several graphs (eval, train) share; they are bound by name when an exec is
 * created.  Gradients and optimizer state live on the backend too.
 *
 * Memory planning: every non-persistent value gets an offset in one arena
 * buffer; values whose lifetimes (first definition .. last use) do not
 * overlap share memory.  Persistent: inputs, parameters, outputs marked with
 * hg_mark_output, and gradients of trainable parameters.
 *
 * All build functions abort the program with a message naming the node on a
 * shape error (a shape error is a programming error in the model builder,
 * not a user error).
 */
#ifndef HCGA_GRAPH_H
#define HCGA_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include "backend/backend.h"
#include "hcga_plugin.h"

typedef int32_t hg_val;
typedef struct hg_graph hg_graph;
typedef struct hg_store hg_store;
typedef struct hg_exec hg_exec;

/* Parameter flags */
#define HG_TRAINABLE 1u /* gets a gradient and an optimizer update */
#define HG_BUFFER 2u    /* not trainable (BN running statistics) */
#define HG_FROZEN 4u    /* has a gradient but the optimizer never updates it (BNNeck bias) */
#define HG_BIAS 8u      /* uses the bias learning rate / weight decay */

/* ---- building ---------------------------------------------------------- */
hg_graph *hg_graph_new(int dtype /* HCGA_F32 or HCGA_F64: compute dtype */);
/* Values have the graph's dtype, I64 (labels, argmax) or, with mixed
 * precision, BF16/F16 (hg_cast, autocast below): only CAST, the
 * convolutions and GEMM take half operands. */
void hg_graph_free(hg_graph *g);
int hg_graph_dtype(const hg_graph *g);

hg_val hg_input(hg_graph *g, const char *name, int dtype, int ndim, const int64_t *shape);
hg_val hg_param(hg_graph *g, const char *name, int ndim, const int64_t *shape, unsigned flags);

/* shape queries */
int hg_ndim(const hg_graph *g, hg_val v);
const int64_t *hg_shape(const hg_graph *g, hg_val v);
int hg_val_dtype(const hg_graph *g, hg_val v);

hg_val hg_conv2d(hg_graph *g, hg_val x, hg_val w, hg_val bias /* -1 */, int stride, int pad);
/* training: batch statistics and running-stat update (BN_FWD_TRAIN);
 * otherwise BN_FWD_INFER.  rmean/rvar are HG_BUFFER params. */
hg_val hg_batchnorm(hg_graph *g, hg_val x, hg_val gamma, hg_val beta, hg_val rmean,
                    hg_val rvar, int training, double eps, double momentum);
hg_val hg_relu(hg_graph *g, hg_val x);
hg_val hg_sigmoid(hg_graph *g, hg_val x);
hg_val hg_threshold(hg_graph *g, hg_val x, double t);      /* x < t -> 0 */
hg_val hg_add(hg_graph *g, hg_val a, hg_val b);            /* broadcasting */
hg_val hg_axpby(hg_graph *g, double alpha, hg_val a, double beta, hg_val b);
hg_val hg_scale(hg_graph *g, hg_val x, double alpha);
hg_val hg_mul(hg_graph *g, hg_val a, hg_val b);            /* broadcasting */
hg_val hg_softmax(hg_graph *g, hg_val x);                  /* over dim 1 */
hg_val hg_argmax(hg_graph *g, hg_val x);                   /* over dim 1, I64, no grad */
hg_val hg_upsample_nearest(hg_graph *g, hg_val x, int factor);
hg_val hg_resize_bilinear(hg_graph *g, hg_val x, int64_t oh, int64_t ow, int align_corners);
hg_val hg_concat(hg_graph *g, int n, const hg_val *xs);    /* along dim 1 */
/* split along dim 1 into n pieces of sizes[i] channels; writes outs[0..n) */
void hg_split(hg_graph *g, hg_val x, int n, const int64_t *sizes, hg_val *outs);
hg_val hg_gap(hg_graph *g, hg_val x);                      /* [N,C,H,W] -> [N,C] */
hg_val hg_matmul(hg_graph *g, hg_val a, hg_val b, int trans_a, int trans_b);
hg_val hg_linear(hg_graph *g, hg_val x, hg_val w);         /* x[N,I] * w[O,I]^T */
hg_val hg_reshape(hg_graph *g, hg_val x, int ndim, const int64_t *shape); /* same numel */
hg_val hg_reduce(hg_graph *g, hg_val x, int kind /* hcga_reduce_kind */);
hg_val hg_ce_ls(hg_graph *g, hg_val logits, hg_val labels, double eps);
hg_val hg_pixel_ce(hg_graph *g, hg_val logits, hg_val labels, int64_t ignore_label);
hg_val hg_triplet(hg_graph *g, hg_val x, hg_val labels, double margin);
hg_val hg_shift_l1(hg_graph *g, hg_val x, int dn, int dh, int dw);

/* ---- mixed precision (ABI 1.1: BF16/F16 storage, F32 accumulation) ------ */
/* CAST x to a floating dtype (f32, f64, bf16, f16); x itself when it has
 * that dtype already.  Its gradient is a CAST back to x's dtype. */
hg_val hg_cast(hg_graph *g, hg_val x, int dtype);
/* Autocast: with half_dtype HCGA_BF16 or HCGA_F16, every later hg_conv2d,
 * hg_matmul and hg_linear whose operands have the graph's dtype CASTs its
 * floating operands (input, weight, bias) to half_dtype, runs the op in half
 * (the backend accumulates in F32) and CASTs the half result back, so its
 * result has the graph's dtype and every other op (batch norm, softmax,
 * losses, the optimizer) is untouched.  These builders are the only place
 * where the casts are inserted.  Parameters, their gradients and the
 * optimizer state keep the graph's dtype: a weight's half copy is a CAST
 * node, run once per execution.  -1 turns autocast off (the default).
 * Backward nodes never autocast: they follow the dtypes of the forward. */
void hg_graph_set_autocast(hg_graph *g, int half_dtype);
int hg_graph_autocast(const hg_graph *g); /* -1 when off */

/* Synchronised batch norm (data-parallel training, MODEL.SYNC_BN): from now
 * on, training-mode hg_batchnorm takes its statistics over the batches of
 * `ranks` processes, each holding an equal part: BN_STATS, whose sums the
 * executor's hook adds over the ranks (hg_exec_node_reduce), then
 * BN_FWD_FROM_STATS with count = ranks x the local count; its backward adds
 * BN_BWD's sums over the ranks the same way before BN_BWD_FROM_STATS.
 * ranks 0 (the default) builds BN_FWD_TRAIN.  With ranks 1 the result equals
 * BN_FWD_TRAIN's up to rounding. */
void hg_graph_set_sync_bn(hg_graph *g, int ranks);
/* One process computing as `parts` data-parallel ranks would, each on a
 * contiguous 1/parts of the batch: from now on hg_triplet mines within each
 * part and hg_pixel_ce averages per part (then both average the parts'
 * losses, as the ranks' gradient averaging does), and training-mode
 * hg_batchnorm without synchronisation normalises each part by its own
 * statistics, the running statistics following part 0 (rank 0's, the ones
 * a checkpoint keeps).  hg_ce_ls needs nothing: the mean of equal parts'
 * means is the mean.  `hcga train --as-ranks N` uses it to check N real
 * ranks against one process.  1 (the default) is off. */
void hg_graph_set_parts(hg_graph *g, int parts);

/* Keep v alive after a run and readable with hg_exec_read; the name is for
 * messages and lookups (hg_find). */
void hg_mark_output(hg_graph *g, hg_val v, const char *name);
hg_val hg_find(const hg_graph *g, const char *name); /* input, param or output by name */

/* ---- autodiff ---------------------------------------------------------- */
/* Append the backward graph of scalar `loss` (d loss / d loss = 1).
 * Afterwards hg_grad gives the gradient value of any value that the loss
 * depends on (trainable params at least); -1 when it has none. */
int hg_backward(hg_graph *g, hg_val loss);
hg_val hg_grad(const hg_graph *g, hg_val v);
/* Loss scaling (FP16 training): hg_backward with the seed d loss / d loss =
 * seed (a scalar value, e.g. an input holding the current loss scale S)
 * instead of 1; when unscale >= 0 (a scalar holding 1/S) the gradient of
 * every HG_TRAINABLE/HG_FROZEN parameter is multiplied by it, so hg_grad of
 * a parameter (what the optimizers read) is unscaled, while everything
 * between the loss and the parameters ran with the scaled values. */
int hg_backward_scaled(hg_graph *g, hg_val loss, hg_val seed, hg_val unscale);
/* After hg_backward: a scalar, the sum over the parameter gradients of
 * REDUCE ABS_MEAN(grad): finite exactly when no gradient has an Inf or NaN
 * (one value to read per step instead of every gradient).  -1 when no
 * parameter has a gradient. */
hg_val hg_grad_check(hg_graph *g);
/* Ask hg_backward for the gradient of v too (e.g. an input, for
 * gradient checks); call before hg_backward.  Without it only values on a
 * path from a HG_TRAINABLE/HG_FROZEN parameter to the loss get gradients. */
void hg_requires_grad(hg_graph *g, hg_val v);

/* Introspection for conformance shape extraction, benchmarks, tests. */
int hg_num_nodes(const hg_graph *g);
/* Fills args with the node's op, params and tensor descriptors (buf NULL,
 * offset 0, shapes and dtypes set); tensors point into storage owned by g. */
void hg_node_args(const hg_graph *g, int node, hcga_op_args *args);

/* ---- parameter store --------------------------------------------------- */
typedef struct hg_store_entry {
    char name[256];
    int ndim;
    int64_t shape[HCGA_MAX_DIMS];
    unsigned flags;
    hcga_tensor t;    /* the value on the backend */
    hcga_tensor m, v; /* optimizer state (Adam m/v or SGD momentum in m); buf NULL until used */
} hg_store_entry;

hg_store *hg_store_new(hcga_be *be, int dtype);
void hg_store_free(hg_store *s);
/* Create (zero-filled) or return the existing entry; returns NULL and
 * writes err when an existing entry has another shape. */
hg_store_entry *hg_store_add(hg_store *s, const char *name, int ndim, const int64_t *shape,
                             unsigned flags, char *err, size_t err_len);
hg_store_entry *hg_store_get(hg_store *s, const char *name);
int hg_store_dtype(const hg_store *s);
int hg_store_count(const hg_store *s);
hg_store_entry *hg_store_at(hg_store *s, int i);
/* host <-> backend, converting from/to the host dtype (F32 or F64) */
int hg_store_write(hg_store *s, hg_store_entry *e, const void *host, int host_dtype);
int hg_store_read(hg_store *s, hg_store_entry *e, void *host, int host_dtype);

/* ---- execution --------------------------------------------------------- */
/* Plan memory (liveness) and allocate on the store's backend.  Params of
 * g are bound to store entries by name (added, zero-filled, if missing). */
hg_exec *hg_exec_new(hg_graph *g, hg_store *s, char *err, size_t err_len);
void hg_exec_free(hg_exec *ex);
int hg_exec_set_input(hg_exec *ex, const char *name, const void *host, int host_dtype);
int hg_exec_run(hg_exec *ex); /* non-zero on backend error; hg_exec_error says why */
/* Graph capture (plugin ABI 1.2; CUDA Graphs): from the second run on,
 * hg_exec_run records the node sequence once and then replays it, saving
 * the per-op launch cost.  Refused (non-zero, hg_exec_error says why) when
 * the backend has no capture or a node hook is set. */
int hg_exec_set_capture(hg_exec *ex, int on);
int hg_exec_read(hg_exec *ex, hg_val v, void *host, int host_dtype);
const char *hg_exec_error(const hg_exec *ex);
uint64_t hg_exec_peak_bytes(const hg_exec *ex);   /* arena (transient) bytes */
uint64_t hg_exec_persistent_bytes(const hg_exec *ex); /* inputs, outputs, grads */
uint64_t hg_exec_naive_bytes(const hg_exec *ex);  /* sum of all transient values, no reuse */
/* Runs of CONV2D_FWD -> BN_FWD_INFER [-> RELU_FWD] executed as one fused
 * CONV2D_BN_INFER call (graph_exec.c: when the backend has the optional op
 * and HCGA_FUSION is not 0). */
int hg_exec_fused_count(const hg_exec *ex);
/* Why nothing was fused ("HCGA_FUSION=0", "backend 'x' has no ..."), or "". */
const char *hg_exec_fusion_note(const hg_exec *ex);
/* (addition) Bytes of the store entries the graph binds (parameters and
 * buffers) plus the optimizer state allocated for them so far. */
uint64_t hg_exec_param_bytes(const hg_exec *ex);
uint64_t hg_exec_optim_bytes(const hg_exec *ex);
/* Planner introspection: returns 1 when v lives in the arena
 * (*offset, *bytes: its 256-byte-aligned block), 0 when it has its own
 * persistent buffer or is a store entry (*bytes: its size), -1 when v has no
 * storage in ex.  offset/bytes may be NULL. */
int hg_exec_placement(const hg_exec *ex, hg_val v, uint64_t *offset, uint64_t *bytes);

/* ---- data-parallel support (frontend/train/ddp.c) ------------------------
 * A hook called by hg_exec_run after each node (err: one line on failure,
 * which stops the run).  NULL (the default): none. */
typedef int (*hg_node_hook)(void *ctx, int node, char *err, size_t err_len);
void hg_exec_set_hook(hg_exec *ex, hg_node_hook fn, void *ctx);
/* The gradients of the graph's parameters share one buffer (*bytes long,
 * NULL when the graph has none), laid out last parameter first.  The k-th
 * (0 <= k < hg_exec_grad_count) is *bytes long (padded to 256) at *offset;
 * *ready_node is the node that completes it (-1: none in ex). */
hcga_buffer *hg_exec_grad_buffer(const hg_exec *ex, uint64_t *bytes);
int hg_exec_grad_count(const hg_exec *ex);
int hg_exec_grad_at(const hg_exec *ex, int k, uint64_t *offset, uint64_t *bytes, int *ready_node);
/* Bit k set: output k of node must be summed over the ranks right after the
 * node runs (synchronised BN); outs[0..num_out) receive the bound tensors
 * when outs is not NULL. */
unsigned hg_exec_node_reduce(const hg_exec *ex, int node, const hcga_tensor **outs);
hcga_be *hg_exec_backend(const hg_exec *ex);
int hg_exec_dtype(const hg_exec *ex); /* the graph's dtype */

/* ---- optimizers (over the trainable params of ex's graph with a grad) --- */
typedef struct hg_optim_cfg {
    double lr, weight_decay;           /* non-bias params */
    double lr_bias, weight_decay_bias; /* params flagged HG_BIAS */
    double beta1, beta2, eps;          /* Adam */
    double momentum;                   /* SGD */
    int64_t step;                      /* 1-based */
} hg_optim_cfg;
int hg_adam_step(hg_exec *ex, const hg_optim_cfg *cfg);
int hg_sgd_step(hg_exec *ex, const hg_optim_cfg *cfg);

#endif
