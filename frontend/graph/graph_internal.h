/*
 * graph_internal.h - data structures shared by graph.c (building, autodiff)
 * and graph_exec.c (planner, executor, parameter store, optimizers).
 * Not part of the public contract (graph.h).
 */
#ifndef HCGA_GRAPH_INTERNAL_H
#define HCGA_GRAPH_INTERNAL_H

#include "graph/graph.h"

enum { HGV_INPUT = 1, HGV_PARAM = 2, HGV_NODE = 3 };

typedef struct hg_value {
    int32_t dtype;
    int32_t ndim;
    int64_t shape[HCGA_MAX_DIMS];
    int kind;          /* HGV_* */
    int producer;      /* index of the producing node (HGV_NODE), else -1 */
    unsigned flags;    /* HG_* for params */
    char *name;        /* input / param name (owned); NULL for node values */
    char *out_name;    /* first name given by hg_mark_output (owned) or NULL */
    int is_output;     /* marked with hg_mark_output */
    int persistent_grad; /* the gradient of a HG_TRAINABLE/HG_FROZEN param */
    int requested;     /* hg_requires_grad */
    hg_val grad;       /* after hg_backward: d loss / d value, or -1 */
} hg_value;

typedef struct hg_node {
    int32_t op;
    int32_t num_in, num_out;
    hg_val in[HCGA_MAX_OP_IN];   /* -1: absent optional slot */
    hg_val out[HCGA_MAX_OP_OUT];
    /* descriptors as the op sees them (buf NULL, offset 0); they may view a
     * value with another shape of the same numel (broadcast padding,
     * reshape) */
    hcga_tensor tin[HCGA_MAX_OP_IN];
    hcga_tensor tout[HCGA_MAX_OP_OUT];
    hcga_op_params p;
    int backward; /* appended by hg_backward */
    unsigned reduce_out; /* bit k: out[k] is summed over the ranks after the node (sync BN) */
} hg_node;

typedef struct hg_outname {
    char *name;
    hg_val v;
} hg_outname;

/* Phases of a graph (hg_graph.backward_done). */
enum { HG_BUILDING = 0, HG_IN_BACKWARD = -1, HG_BACKWARD_DONE = 1 };

struct hg_graph {
    int dtype;
    hg_value **vals; /* individually allocated: hg_shape pointers stay valid */
    int nvals, cvals;
    hg_node **nodes;
    int nnodes, cnodes;
    hg_outname *outs;
    int nouts, couts;
    int backward_done; /* HG_BUILDING, HG_IN_BACKWARD (hg_backward running), HG_BACKWARD_DONE */
    int sync_bn_ranks;  /* > 0: training BN is synchronised over that many ranks */
    int parts;          /* > 1: losses and BN computed as that many ranks would (hg_graph_set_parts) */
    int autocast; /* HCGA_BF16 / HCGA_F16: hg_conv2d and the GEMM builders run in it; -1 off */
};

/* Dense C-contiguous descriptor (buf NULL). */
hcga_tensor hg__desc(int dtype, int ndim, const int64_t *shape);
int64_t hg__numel(int ndim, const int64_t *shape);
/* "'name'" or "#id" for messages (static buffer rotation, 4 slots). */
const char *hg__vname(const hg_graph *g, hg_val v);

#endif
