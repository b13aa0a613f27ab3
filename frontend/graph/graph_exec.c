/*
 * graph_exec.c - liveness-based memory planning, execution on a backend,
 * the parameter store shared between graphs, and the Adam / SGD steps.
 *
 * Storage classes of a value:
 *   store   parameters (and BN running statistics): the hg_store entry;
 *   own     inputs and outputs marked with hg_mark_output: one backend
 *           buffer each, allocated once; gradients of parameters: ranges
 *           of one gradient buffer, the last parameter's first (backward
 *           completes them in about that order, so data-parallel training
 *           all-reduces contiguous buckets of it while backward goes on);
 *   arena   everything else: an offset into one arena buffer.
 * Arena offsets come from a greedy best-fit pass over the nodes in order:
 * before node i, the blocks of values whose last use is < i are released;
 * then each transient output of node i takes the smallest free gap that
 * fits (lowest offset on ties) or goes on top of the highest live block.
 * A value is alive from its producing node to its last consumer inclusive,
 * so an op's outputs never overlap its inputs.  Sizes are numel times the
 * value's own element size: a BF16/F16 value (mixed precision) takes 2
 * bytes an element, whatever the graph's dtype.
 *
 * Fusion (ABI 1.3 optional ops): where the backend supports
 * CONV2D_BN_INFER for the graph's dtype, each run of nodes CONV2D_FWD ->
 * BN_FWD_INFER [-> ADD of a residual] [-> RELU_FWD] whose intermediate
 * values nothing else reads (an eval graph's convolution, batch norm,
 * shortcut and ReLU) is executed as one
 * CONV2D_BN_INFER call at the position of its last node; the folded nodes
 * run nothing and their intermediate values get no memory.  The planner
 * treats the fused call's inputs (the convolution's and the batch norm's)
 * as used at that position.  The graph itself is not changed, and
 * HCGA_FUSION=0 turns this off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "hcga_half.h"

#define HG_ALIGN 256u

enum { LOC_NONE = 0, LOC_ARENA = 1, LOC_OWN = 2, LOC_STORE = 3 };

struct hg_store {
    hcga_be *be;
    int dtype;
    hg_store_entry **e;
    int n, cap;
};

struct hg_exec {
    hg_graph *g;
    hg_store *s;
    hcga_be *be;
    int nvals, nnodes; /* snapshot of the graph at hg_exec_new */
    int *loc;
    uint64_t *off;   /* arena offset */
    uint64_t *bytes; /* numel * element size */
    hcga_buffer **own;
    uint64_t *own_off; /* offset of an own value in its buffer (0 but in gradbuf) */
    hcga_buffer *gradbuf;
    uint64_t grad_bytes;
    int ngrads;
    hg_val *grads; /* the values in gradbuf, in buffer order */
    hg_node_hook hook;
    void *hook_ctx;
    int capture;          /* hg_exec_set_capture: 1 asked for */
    long long runs;       /* hg_exec_run calls so far */
    hcga_capture *rec;    /* the recorded node sequence (second run on) */
    hg_store_entry **entry;
    hcga_buffer *arena;
    uint64_t peak, persistent, naive;
    hcga_tensor *tens;  /* nnodes * (MAX_IN + MAX_OUT) bound descriptors */
    hcga_op_args *args; /* nnodes */
    int *fuse_first;    /* nnodes: first node of the fused run ending here, or -1 */
    char *folded;       /* nnodes: 1 = part of a fused run that ends at a later node */
    int nfused;         /* fused runs */
    char fusion_note[160]; /* why nothing was fused, when nfused == 0 */
    char err[2048];
};

static uint64_t align_up(uint64_t b) { return (b + HG_ALIGN - 1) / HG_ALIGN * HG_ALIGN; }

static uint64_t value_bytes(const hg_value *x)
{
    return (uint64_t)hg__numel(x->ndim, x->shape) * hcga_dtype_size(x->dtype);
}

/* ---- host conversions ---------------------------------------------------- */

/* host dtypes: what callers hand in and get back (values themselves may
 * also be BF16/F16, converted on the way) */
static int is_float(int dt) { return dt == HCGA_F32 || dt == HCGA_F64; }

/* element i of a floating array of dtype dt, exactly, as a double */
static double load_f(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case HCGA_F32: return ((const float *)p)[i];
    case HCGA_F64: return ((const double *)p)[i];
    default: return hcga_half_to_f32(dt, ((const uint16_t *)p)[i]);
    }
}

/* n elements between floating dtypes (F32, F64, BF16, F16), each rounded
 * once to nearest even (hcga_half.h: the ABI's conversions); equal dtypes
 * (I64 too) are copied */
static void convert(void *dst, int ddt, const void *src, int sdt, int64_t n)
{
    if (ddt == sdt) {
        memcpy(dst, src, (size_t)n * hcga_dtype_size(ddt));
    } else if (ddt == HCGA_F64) {
        double *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = load_f(src, sdt, i);
    } else if (ddt == HCGA_F32) {
        float *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = (float)load_f(src, sdt, i);
    } else if (sdt == HCGA_F32) { /* F32 -> half */
        const float *s = src;
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = hcga_half_from_f32(ddt, s[i]);
    } else { /* F64 or the other half -> half: exact as a double, rounded once */
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = hcga_half_from_f64(ddt, load_f(src, sdt, i));
    }
}

/* write n elements of host dtype hdt into a buffer of dtype bdt */
static hcga_status write_conv(hcga_be *be, hcga_buffer *buf, uint64_t off, int bdt, const void *host,
                              int hdt, int64_t n)
{
    if (bdt == hdt) return hcga_be_write(be, buf, off, host, (uint64_t)n * hcga_dtype_size(bdt));
    void *tmp = malloc((size_t)n * hcga_dtype_size(bdt) + 1);
    if (!tmp) return HCGA_ERR_NOMEM;
    convert(tmp, bdt, host, hdt, n);
    hcga_status st = hcga_be_write(be, buf, off, tmp, (uint64_t)n * hcga_dtype_size(bdt));
    free(tmp);
    return st;
}

static hcga_status read_conv(hcga_be *be, hcga_buffer *buf, uint64_t off, int bdt, void *host, int hdt,
                             int64_t n)
{
    if (bdt == hdt) return hcga_be_read(be, buf, off, host, (uint64_t)n * hcga_dtype_size(bdt));
    void *tmp = malloc((size_t)n * hcga_dtype_size(bdt) + 1);
    if (!tmp) return HCGA_ERR_NOMEM;
    hcga_status st = hcga_be_read(be, buf, off, tmp, (uint64_t)n * hcga_dtype_size(bdt));
    if (st == HCGA_OK) convert(host, hdt, tmp, bdt, n);
    free(tmp);
    return st;
}

static hcga_status zero_fill(hcga_be *be, hcga_buffer *buf, uint64_t bytes)
{
    static const unsigned char zeros[65536];
    for (uint64_t o = 0; o < bytes; o += sizeof zeros) {
        uint64_t k = bytes - o < sizeof zeros ? bytes - o : sizeof zeros;
        hcga_status st = hcga_be_write(be, buf, o, zeros, k);
        if (st != HCGA_OK) return st;
    }
    return HCGA_OK;
}

/* ---- parameter store ----------------------------------------------------- */

hg_store *hg_store_new(hcga_be *be, int dtype)
{
    if (!be || !is_float(dtype)) return NULL;
    hg_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->be = be;
    s->dtype = dtype;
    return s;
}

void hg_store_free(hg_store *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        hg_store_entry *e = s->e[i];
        if (e->t.buf) hcga_be_free(s->be, e->t.buf);
        if (e->m.buf) hcga_be_free(s->be, e->m.buf);
        if (e->v.buf) hcga_be_free(s->be, e->v.buf);
        free(e);
    }
    free(s->e);
    free(s);
}

/* a zero-filled tensor shaped like e */
static hcga_status alloc_like(hg_store *s, const hg_store_entry *e, hcga_tensor *t)
{
    uint64_t bytes = (uint64_t)hg__numel(e->ndim, e->shape) * hcga_dtype_size(s->dtype);
    hcga_buffer *b = NULL;
    hcga_status st = hcga_be_alloc(s->be, bytes ? bytes : 1, &b);
    if (st != HCGA_OK) return st;
    st = zero_fill(s->be, b, bytes);
    if (st != HCGA_OK) {
        hcga_be_free(s->be, b);
        return st;
    }
    *t = hg__desc(s->dtype, e->ndim, e->shape);
    t->buf = b;
    return HCGA_OK;
}

hg_store_entry *hg_store_get(hg_store *s, const char *name)
{
    if (!s || !name) return NULL;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->e[i]->name, name)) return s->e[i];
    return NULL;
}

static void shape_str(char *b, size_t n, int ndim, const int64_t *shape)
{
    int k = snprintf(b, n, "[");
    for (int i = 0; i < ndim && k > 0 && (size_t)k < n; i++)
        k += snprintf(b + k, n - (size_t)k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k > 0 && (size_t)k < n) snprintf(b + k, n - (size_t)k, "]");
}

hg_store_entry *hg_store_add(hg_store *s, const char *name, int ndim, const int64_t *shape, unsigned flags,
                             char *err, size_t err_len)
{
    if (!name || !name[0] || strlen(name) >= sizeof(((hg_store_entry *)0)->name)) {
        snprintf(err, err_len, "store: invalid parameter name '%.80s'", name ? name : "(null)");
        return NULL;
    }
    if (ndim < 0 || ndim > HCGA_MAX_DIMS || (ndim > 0 && !shape)) {
        snprintf(err, err_len, "store: parameter '%s': invalid rank %d", name, ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            snprintf(err, err_len, "store: parameter '%s': dimension %d is %lld", name, i, (long long)shape[i]);
            return NULL;
        }
    hg_store_entry *e = hg_store_get(s, name);
    if (e) {
        int same = e->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = e->shape[i] == shape[i];
        if (!same) {
            char a[128], b[128];
            shape_str(a, sizeof a, e->ndim, e->shape);
            shape_str(b, sizeof b, ndim, shape);
            snprintf(err, err_len, "store: parameter '%s' exists with shape %s, requested %s", name, a, b);
            return NULL;
        }
        if (!e->flags) e->flags = flags;
        return e;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, err_len, "store: out of host memory adding '%s'", name);
        return NULL;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    for (int i = 0; i < HCGA_MAX_DIMS; i++) e->shape[i] = i < ndim ? shape[i] : 1;
    e->flags = flags;
    if (alloc_like(s, e, &e->t) != HCGA_OK) {
        snprintf(err, err_len, "store: allocating '%s': %s", name, hcga_be_error(s->be));
        free(e);
        return NULL;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        hg_store_entry **ne = realloc(s->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            hcga_be_free(s->be, e->t.buf);
            free(e);
            snprintf(err, err_len, "store: out of host memory adding '%s'", name);
            return NULL;
        }
        s->e = ne;
        s->cap = cap;
    }
    s->e[s->n++] = e;
    return e;
}

int hg_store_count(const hg_store *s) { return s ? s->n : 0; }
int hg_store_dtype(const hg_store *s) { return s->dtype; }

hg_store_entry *hg_store_at(hg_store *s, int i) { return (s && i >= 0 && i < s->n) ? s->e[i] : NULL; }

int hg_store_write(hg_store *s, hg_store_entry *e, const void *host, int host_dtype)
{
    if (!is_float(host_dtype)) {
        snprintf(s->be->err, sizeof s->be->err, "store: writing '%s': host dtype %s (f32 or f64 expected)",
                 e->name, hcga_dtype_name(host_dtype));
        return HCGA_ERR_INVALID;
    }
    return write_conv(s->be, e->t.buf, e->t.offset, s->dtype, host, host_dtype, hg__numel(e->ndim, e->shape));
}

int hg_store_read(hg_store *s, hg_store_entry *e, void *host, int host_dtype)
{
    if (!is_float(host_dtype)) {
        snprintf(s->be->err, sizeof s->be->err, "store: reading '%s': host dtype %s (f32 or f64 expected)",
                 e->name, hcga_dtype_name(host_dtype));
        return HCGA_ERR_INVALID;
    }
    return read_conv(s->be, e->t.buf, e->t.offset, s->dtype, host, host_dtype, hg__numel(e->ndim, e->shape));
}

/* ---- planning ------------------------------------------------------------ */

typedef struct blk {
    uint64_t off, size;
    int last;
} blk;

/* Assigns ex->off for arena values; sets ex->peak and ex->naive. */
static int plan(hg_exec *ex)
{
    const hg_graph *g = ex->g;
    int nv = ex->nvals, nn = ex->nnodes;
    int *last = malloc((size_t)(nv ? nv : 1) * sizeof *last);
    blk *act = malloc((size_t)(nv ? nv : 1) * sizeof *act);
    if (!last || !act) {
        free(last);
        free(act);
        return -1;
    }
    for (int v = 0; v < nv; v++) last[v] = g->vals[v]->producer;
    for (int i = 0; i < nn; i++) {
        if (ex->folded[i]) continue;
        /* a fused call at i reads the inputs of every node of its run */
        for (int j = ex->fuse_first[i] >= 0 ? ex->fuse_first[i] : i; j <= i; j++) {
            const hg_node *n = g->nodes[j];
            for (int s = 0; s < n->num_in; s++)
                if (n->in[s] >= 0 && last[n->in[s]] < i) last[n->in[s]] = i;
        }
    }
    int na = 0;
    uint64_t peak = 0, naive = 0;
    for (int i = 0; i < nn; i++) {
        int k = 0;
        for (int j = 0; j < na; j++)
            if (act[j].last >= i) act[k++] = act[j];
        na = k;
        const hg_node *n = g->nodes[i];
        for (int s = 0; s < n->num_out; s++) {
            hg_val v = n->out[s];
            if (v < 0 || ex->loc[v] != LOC_ARENA || g->vals[v]->producer != i) continue;
            uint64_t size = align_up(ex->bytes[v] ? ex->bytes[v] : 1);
            uint64_t prev = 0, best = 0, bestgap = UINT64_MAX;
            int at = -1;
            for (int j = 0; j < na; j++) {
                uint64_t gap = act[j].off - prev;
                if (gap >= size && gap < bestgap) {
                    bestgap = gap;
                    best = prev;
                    at = j;
                }
                prev = act[j].off + act[j].size;
            }
            if (at < 0) {
                best = prev;
                at = na;
            }
            memmove(act + at + 1, act + at, (size_t)(na - at) * sizeof *act);
            act[at].off = best;
            act[at].size = size;
            act[at].last = last[v];
            na++;
            ex->off[v] = best;
            if (best + size > peak) peak = best + size;
            naive += size;
        }
    }
    ex->peak = peak;
    ex->naive = naive;
    free(last);
    free(act);
    return 0;
}

/* ---- execution ----------------------------------------------------------- */

/* desc->offset: the view's byte offset into the value (a row block) */
static void bind(const hg_exec *ex, hcga_tensor *t, const hcga_tensor *desc, hg_val v)
{
    *t = *desc;
    switch (ex->loc[v]) {
    case LOC_ARENA:
        t->buf = ex->arena;
        t->offset = ex->off[v] + desc->offset;
        break;
    case LOC_OWN:
        t->buf = ex->own[v];
        t->offset = ex->own_off[v] + desc->offset;
        break;
    case LOC_STORE:
        t->buf = ex->entry[v]->t.buf;
        t->offset = ex->entry[v]->t.offset + desc->offset;
        break;
    default:
        t->buf = NULL;
        t->offset = 0;
    }
}

void hg_exec_free(hg_exec *ex)
{
    if (!ex) return;
    if (ex->own)
        for (int v = 0; v < ex->nvals; v++)
            if (ex->own[v] && ex->own[v] != ex->gradbuf) hcga_be_free(ex->be, ex->own[v]);
    if (ex->rec) hcga_be_capture_free(ex->be, ex->rec);
    if (ex->gradbuf) hcga_be_free(ex->be, ex->gradbuf);
    if (ex->arena) hcga_be_free(ex->be, ex->arena);
    free(ex->own_off);
    free(ex->grads);
    free(ex->loc);
    free(ex->off);
    free(ex->bytes);
    free(ex->own);
    free(ex->entry);
    free(ex->tens);
    free(ex->args);
    free(ex->fuse_first);
    free(ex->folded);
    free(ex);
}

static int be_supports(hcga_be *be, int op, int dtype)
{
    const hcga_backend_iface *f = be->iface;
    if (!f || op < 0 || (uint32_t)op >= f->num_ops || !f->ops || !f->ops[op]) return 0;
    if (f->supports && !f->supports(be->inst, op, dtype)) return 0;
    return 1;
}

/* 1 when value v is a transient node value that only node reader reads,
 * in slot 0 and nowhere else (uses[v] counts every (node, slot) read). */
static int read_once_by(const hg_exec *ex, const int *uses, hg_val v, int reader)
{
    const hg_value *x = ex->g->vals[v];
    if (x->kind != HGV_NODE || x->is_output || x->persistent_grad || x->requested) return 0;
    const hg_node *r = ex->g->nodes[reader];
    return uses[v] == 1 && r->num_in > 0 && r->in[0] == v;
}

/* 1 when descriptors a and b are the same dense view (shape, offset 0). */
static int same_dense_view(const hcga_tensor *a, const hcga_tensor *b)
{
    if (a->ndim != b->ndim || a->offset != 0 || b->offset != 0) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* 1 when node a is ADD(v, r) or ADD(r, v) with alpha = beta = 1, v read
 * only there, r another value, every tensor of the add the dense view y
 * (the convolution's output): a residual connection. */
static int is_residual_add(const hg_exec *ex, const int *uses, const hg_node *a, hg_val v, const hcga_tensor *y)
{
    if (a->op != HCGA_OP_ADD || a->p.scalar.a != 1.0 || a->p.scalar.b != 1.0) return 0;
    if (a->in[0] == a->in[1] || (a->in[0] != v && a->in[1] != v) || uses[v] != 1) return 0;
    const hg_value *x = ex->g->vals[v];
    if (x->is_output || x->persistent_grad || x->requested) return 0;
    return same_dense_view(&a->tin[0], y) && same_dense_view(&a->tin[1], y) && same_dense_view(&a->tout[0], y);
}

/* HCGA_FUSION: unset or "1" fuse, "0" do not; anything else is an error. */
static int fusion_wanted(char *err, size_t err_len)
{
    const char *e = getenv("HCGA_FUSION");
    if (!e || !strcmp(e, "1")) return 1;
    if (!strcmp(e, "0")) return 0;
    snprintf(err, err_len, "HCGA_FUSION must be 0 or 1, not '%s'", e);
    return -1;
}

/* Marks the runs CONV2D_FWD -> BN_FWD_INFER [-> ADD residual] [-> RELU_FWD]
 * that run as one CONV2D_BN_INFER (see the top of this file). */
static int find_fusions(hg_exec *ex, char *err, size_t err_len)
{
    const hg_graph *g = ex->g;
    for (int i = 0; i < ex->nnodes; i++) ex->fuse_first[i] = -1;
    const int want = fusion_wanted(err, err_len);
    if (want < 0) return -1;
    if (!want) {
        snprintf(ex->fusion_note, sizeof ex->fusion_note, "HCGA_FUSION=0");
        return 0;
    }
    if (!be_supports(ex->be, HCGA_OP_CONV2D_BN_INFER, g->dtype)) {
        snprintf(ex->fusion_note, sizeof ex->fusion_note, "backend '%s' has no conv2d_bn_infer for %s",
                 ex->be->name, hcga_dtype_name(g->dtype));
        return 0;
    }
    snprintf(ex->fusion_note, sizeof ex->fusion_note, "no convolution + batch norm run to fuse");
    int *uses = calloc((size_t)(ex->nvals ? ex->nvals : 1), sizeof *uses);
    if (!uses) {
        snprintf(err, err_len, "hg_exec_new: out of host memory");
        return -1;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int s = 0; s < g->nodes[i]->num_in; s++)
            if (g->nodes[i]->in[s] >= 0) uses[g->nodes[i]->in[s]]++;
    for (int i = 0; i + 1 < ex->nnodes; i++) {
        const hg_node *c = g->nodes[i], *b = g->nodes[i + 1];
        if (c->op != HCGA_OP_CONV2D_FWD || b->op != HCGA_OP_BN_FWD_INFER) continue;
        const hg_val z = c->out[0];
        if (g->vals[z]->dtype != g->dtype || !read_once_by(ex, uses, z, i + 1) ||
            !same_dense_view(&c->tout[0], &b->tin[0]) || !same_dense_view(&b->tin[0], &b->tout[0]))
            continue;
        int last = i + 1;
        hg_val v = b->out[0];
        if (i + 2 < ex->nnodes && is_residual_add(ex, uses, g->nodes[i + 2], v, &c->tout[0])) {
            last = i + 2;
            v = g->nodes[last]->out[0];
        }
        if (last + 1 < ex->nnodes) {
            const hg_node *r = g->nodes[last + 1];
            if (r->op == HCGA_OP_RELU_FWD && read_once_by(ex, uses, v, last + 1) &&
                hcga_tensor_numel(&r->tout[0]) == hcga_tensor_numel(&c->tout[0]) && r->tout[0].offset == 0 &&
                r->tin[0].offset == 0)
                last++;
        }
        for (int j = i; j < last; j++) ex->folded[j] = 1;
        ex->fuse_first[last] = i;
        ex->nfused++;
        i = last;
    }
    free(uses);
    return 0;
}

/* The arguments of the fused call that ends at node k (its run starts at
 * node ex->fuse_first[k]): the convolution's x, w, bias, the batch norm's
 * vectors, the residual (the add's other input), the last node's output
 * viewed as the convolution's y. */
static void bind_fused(const hg_exec *ex, int k, hcga_op_args *a, hcga_tensor *t)
{
    const hg_graph *g = ex->g;
    const int i = ex->fuse_first[k];
    const hg_node *c = g->nodes[i], *b = g->nodes[i + 1], *last = g->nodes[k];
    static const int bn_slot[4] = {HCGA_BN_GAMMA, HCGA_BN_BETA, HCGA_BN_RMEAN_IN, HCGA_BN_RVAR_IN};
    a->op = HCGA_OP_CONV2D_BN_INFER;
    a->num_out = 1;
    memset(&a->p, 0, sizeof a->p);
    a->p.conv_bn.conv = c->p.conv;
    a->p.conv_bn.eps = b->p.bn.eps;
    a->p.conv_bn.relu = g->nodes[k]->op == HCGA_OP_RELU_FWD;
    const hg_node *add = k >= i + 2 && g->nodes[i + 2]->op == HCGA_OP_ADD ? g->nodes[i + 2] : NULL;
    bind(ex, &t[HCGA_CBN_X], &c->tin[HCGA_CONV_X], c->in[HCGA_CONV_X]);
    bind(ex, &t[HCGA_CBN_W], &c->tin[HCGA_CONV_W], c->in[HCGA_CONV_W]);
    for (int s = 0; s < 4; s++) bind(ex, &t[HCGA_CBN_GAMMA + s], &b->tin[bn_slot[s]], b->in[bn_slot[s]]);
    const int bias = c->num_in > HCGA_CONV_BIAS && c->in[HCGA_CONV_BIAS] >= 0;
    if (bias) bind(ex, &t[HCGA_CBN_BIAS], &c->tin[HCGA_CONV_BIAS], c->in[HCGA_CONV_BIAS]);
    a->num_in = bias ? 7 : 6;
    for (int s = 0; s < a->num_in; s++) a->in[s] = &t[s];
    if (add) {
        const int rs = add->in[0] == b->out[0] ? 1 : 0;
        bind(ex, &t[HCGA_CBN_RES], &add->tin[rs], add->in[rs]);
        a->in[HCGA_CBN_RES] = &t[HCGA_CBN_RES];
        if (!bias) a->in[HCGA_CBN_BIAS] = NULL;
        a->num_in = 8;
    }
    bind(ex, &t[HCGA_MAX_OP_IN], &c->tout[0], last->out[0]);
    a->out[0] = &t[HCGA_MAX_OP_IN];
}

/* The gradients of parameters, in one zeroed buffer: highest value id (the
 * last parameter created) first, each at a HG_ALIGN boundary. */
static int alloc_grads(hg_exec *ex, char *err, size_t err_len)
{
    const hg_graph *g = ex->g;
    uint64_t off = 0;
    for (int v = ex->nvals - 1; v >= 0; v--) {
        if (ex->loc[v] != LOC_OWN || !g->vals[v]->persistent_grad) continue;
        ex->own_off[v] = off;
        ex->grads[ex->ngrads++] = v;
        off += align_up(ex->bytes[v] ? ex->bytes[v] : 1);
    }
    if (!off) return 0;
    if (hcga_be_alloc(ex->be, off, &ex->gradbuf) != HCGA_OK || zero_fill(ex->be, ex->gradbuf, off) != HCGA_OK) {
        snprintf(err, err_len, "allocating the %llu-byte gradient buffer: %s", (unsigned long long)off,
                 hcga_be_error(ex->be));
        return -1;
    }
    ex->grad_bytes = off;
    ex->persistent += off;
    for (int k = 0; k < ex->ngrads; k++) ex->own[ex->grads[k]] = ex->gradbuf;
    return 0;
}

hg_exec *hg_exec_new(hg_graph *g, hg_store *s, char *err, size_t err_len)
{
    if (!g || !s) {
        snprintf(err, err_len, "hg_exec_new: graph or store is NULL");
        return NULL;
    }
    if (s->dtype != g->dtype) {
        snprintf(err, err_len, "hg_exec_new: store dtype %s differs from the graph's %s",
                 hcga_dtype_name(s->dtype), hcga_dtype_name(g->dtype));
        return NULL;
    }
    hg_exec *ex = calloc(1, sizeof *ex);
    if (!ex) goto nomem;
    ex->g = g;
    ex->s = s;
    ex->be = s->be;
    ex->nvals = g->nvals;
    ex->nnodes = g->nnodes;
    size_t nv = (size_t)(g->nvals ? g->nvals : 1), nn = (size_t)(g->nnodes ? g->nnodes : 1);
    ex->loc = calloc(nv, sizeof *ex->loc);
    ex->off = calloc(nv, sizeof *ex->off);
    ex->bytes = calloc(nv, sizeof *ex->bytes);
    ex->own = calloc(nv, sizeof *ex->own);
    ex->own_off = calloc(nv, sizeof *ex->own_off);
    ex->grads = calloc(nv, sizeof *ex->grads);
    ex->entry = calloc(nv, sizeof *ex->entry);
    ex->tens = calloc(nn * (HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT), sizeof *ex->tens);
    ex->args = calloc(nn, sizeof *ex->args);
    ex->fuse_first = calloc(nn, sizeof *ex->fuse_first);
    ex->folded = calloc(nn, sizeof *ex->folded);
    if (!ex->loc || !ex->off || !ex->bytes || !ex->own || !ex->own_off || !ex->grads || !ex->entry || !ex->tens ||
        !ex->args || !ex->fuse_first || !ex->folded)
        goto nomem;

    /* every op must exist on this backend for each floating dtype it takes
     * (a half conv: bf16; a CAST: both sides); FILL and COPY of indices:
     * their output's dtype */
    for (int i = 0; i < ex->nnodes; i++) {
        const hg_node *n = g->nodes[i];
        int dts[HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT], nd = 0;
        for (int k = 0; k < n->num_in + n->num_out; k++) {
            const int in = k < n->num_in;
            hg_val v = in ? n->in[k] : n->out[k - n->num_in];
            if (v < 0 || !hcga_dtype_is_float(g->vals[v]->dtype)) continue;
            int dup = 0;
            for (int j = 0; j < nd; j++) dup |= dts[j] == g->vals[v]->dtype;
            if (!dup) dts[nd++] = g->vals[v]->dtype;
        }
        if (nd == 0) dts[nd++] = n->num_out > 0 && n->out[0] >= 0 ? g->vals[n->out[0]]->dtype : g->dtype;
        int dt = -1;
        for (int j = 0; j < nd && dt < 0; j++)
            if (!be_supports(ex->be, n->op, dts[j])) dt = dts[j];
        if (dt >= 0) {
            snprintf(err, err_len, "node %d (%s producing '%s'): backend '%s' does not support %s for %s", i,
                     hcga_op_name(n->op), hg__vname(g, n->out[0]), ex->be->name, hcga_op_name(n->op),
                     hcga_dtype_name(dt));
            hg_exec_free(ex);
            return NULL;
        }
    }

    if (find_fusions(ex, err, err_len)) {
        hg_exec_free(ex);
        return NULL;
    }

    /* storage classes; parameters are bound to store entries by name */
    for (int v = 0; v < ex->nvals; v++) {
        const hg_value *x = g->vals[v];
        ex->bytes[v] = value_bytes(x);
        if (x->kind == HGV_PARAM) {
            char e2[1024];
            hg_store_entry *e = hg_store_add(s, x->name, x->ndim, x->shape, x->flags, e2, sizeof e2);
            if (!e) {
                snprintf(err, err_len, "%s", e2);
                hg_exec_free(ex);
                return NULL;
            }
            ex->entry[v] = e;
            ex->loc[v] = LOC_STORE;
        } else if (x->kind == HGV_INPUT || x->is_output || x->persistent_grad) {
            ex->loc[v] = LOC_OWN;
        } else if (x->producer >= 0 && x->producer < ex->nnodes && ex->folded[x->producer]) {
            ex->loc[v] = LOC_NONE; /* inside a fused run: never written */
        } else if (x->producer >= 0 && x->producer < ex->nnodes) {
            ex->loc[v] = LOC_ARENA;
        } else {
            ex->loc[v] = LOC_NONE; /* produced by a node added after this exec */
        }
    }
    if (plan(ex)) goto nomem;
    if (alloc_grads(ex, err, err_len)) {
        hg_exec_free(ex);
        return NULL;
    }

    for (int v = 0; v < ex->nvals; v++) {
        if (ex->loc[v] != LOC_OWN || ex->own[v]) continue;
        uint64_t b = ex->bytes[v] ? ex->bytes[v] : 1;
        if (hcga_be_alloc(ex->be, b, &ex->own[v]) != HCGA_OK) {
            snprintf(err, err_len, "allocating %llu bytes for value '%s': %s", (unsigned long long)b,
                     hg__vname(g, v), hcga_be_error(ex->be));
            hg_exec_free(ex);
            return NULL;
        }
        ex->persistent += ex->bytes[v];
        if (g->vals[v]->kind == HGV_INPUT && zero_fill(ex->be, ex->own[v], ex->bytes[v]) != HCGA_OK) {
            snprintf(err, err_len, "clearing input '%s': %s", hg__vname(g, v), hcga_be_error(ex->be));
            hg_exec_free(ex);
            return NULL;
        }
    }
    if (ex->peak && hcga_be_alloc(ex->be, ex->peak, &ex->arena) != HCGA_OK) {
        snprintf(err, err_len, "allocating the %llu-byte arena: %s", (unsigned long long)ex->peak,
                 hcga_be_error(ex->be));
        hg_exec_free(ex);
        return NULL;
    }

    for (int i = 0; i < ex->nnodes; i++) {
        const hg_node *n = g->nodes[i];
        hcga_op_args *a = &ex->args[i];
        hcga_tensor *t = ex->tens + (size_t)i * (HCGA_MAX_OP_IN + HCGA_MAX_OP_OUT);
        if (ex->folded[i]) continue;
        if (ex->fuse_first[i] >= 0) {
            bind_fused(ex, i, a, t);
            continue;
        }
        a->op = n->op;
        a->num_in = n->num_in;
        a->num_out = n->num_out;
        a->p = n->p;
        for (int k = 0; k < n->num_in; k++) {
            if (n->in[k] < 0) continue;
            bind(ex, &t[k], &n->tin[k], n->in[k]);
            a->in[k] = &t[k];
        }
        for (int k = 0; k < n->num_out; k++) {
            if (n->out[k] < 0) continue;
            bind(ex, &t[HCGA_MAX_OP_IN + k], &n->tout[k], n->out[k]);
            a->out[k] = &t[HCGA_MAX_OP_IN + k];
        }
    }
    return ex;

nomem:
    snprintf(err, err_len, "hg_exec_new: out of host memory");
    hg_exec_free(ex);
    return NULL;
}

int hg_exec_set_input(hg_exec *ex, const char *name, const void *host, int host_dtype)
{
    const hg_graph *g = ex->g;
    hg_val v = -1;
    for (int i = 0; i < ex->nvals && v < 0; i++)
        if (g->vals[i]->kind == HGV_INPUT && !strcmp(g->vals[i]->name, name)) v = i;
    if (v < 0) {
        snprintf(ex->err, sizeof ex->err, "set_input: the graph has no input named '%s'", name);
        return HCGA_ERR_INVALID;
    }
    const hg_value *x = g->vals[v];
    int ok = x->dtype == HCGA_I64 ? host_dtype == HCGA_I64 : is_float(host_dtype);
    if (!ok) {
        snprintf(ex->err, sizeof ex->err, "set_input '%s': host dtype %s does not fit the input's %s", name,
                 hcga_dtype_name(host_dtype), hcga_dtype_name(x->dtype));
        return HCGA_ERR_INVALID;
    }
    hcga_status st =
        write_conv(ex->be, ex->own[v], ex->own_off[v], x->dtype, host, host_dtype, hg__numel(x->ndim, x->shape));
    if (st != HCGA_OK)
        snprintf(ex->err, sizeof ex->err, "set_input '%s': %s", name, hcga_be_error(ex->be));
    return st;
}

/* Graph capture (hg_exec_set_capture): the first run goes op by op (the
 * backend sizes its workspaces and picks its algorithms), the second records
 * the node sequence and replays it, every later run replays.  The node
 * arguments never change between runs, and inputs are written before. */
static int run_captured(hg_exec *ex)
{
    hcga_status st = HCGA_OK;
    if (!ex->rec) {
        st = hcga_be_capture_begin(ex->be);
        for (int i = 0; st == HCGA_OK && i < ex->nnodes; i++)
            if (!ex->folded[i]) st = hcga_be_run(ex->be, &ex->args[i]);
        hcga_capture *rec = NULL;
        hcga_status end = hcga_be_capture_end(ex->be, &rec);
        if (st == HCGA_OK) st = end;
        if (st != HCGA_OK) {
            snprintf(ex->err, sizeof ex->err, "capturing the graph's %d nodes: %s", ex->nnodes, hcga_be_error(ex->be));
            return st;
        }
        ex->rec = rec;
    }
    st = hcga_be_capture_replay(ex->be, ex->rec);
    if (st == HCGA_OK) st = hcga_be_sync(ex->be);
    if (st != HCGA_OK) snprintf(ex->err, sizeof ex->err, "replaying the captured graph: %s", hcga_be_error(ex->be));
    return st;
}

int hg_exec_set_capture(hg_exec *ex, int on)
{
    if (on && !hcga_be_has_capture(ex->be)) {
        snprintf(ex->err, sizeof ex->err, "backend '%s' has no graph capture", ex->be->name);
        return HCGA_ERR_UNSUPPORTED;
    }
    if (on && ex->hook) {
        snprintf(ex->err, sizeof ex->err, "graph capture cannot record a run with a node hook (data-parallel "
                                          "training on a backend without its own collectives)");
        return HCGA_ERR_INVALID;
    }
    ex->capture = on;
    return HCGA_OK;
}

int hg_exec_run(hg_exec *ex)
{
    if (ex->capture && ex->runs++ > 0) return run_captured(ex);
    for (int i = 0; i < ex->nnodes; i++) {
        const hg_node *n = ex->g->nodes[i];
        hcga_status st = ex->folded[i] ? HCGA_OK : hcga_be_run(ex->be, &ex->args[i]);
        if (st != HCGA_OK && ex->fuse_first[i] >= 0) {
            snprintf(ex->err, sizeof ex->err, "nodes %d-%d (conv2d_bn_infer, fused, producing '%s'): %s",
                     ex->fuse_first[i], i, hg__vname(ex->g, n->out[0]), hcga_be_error(ex->be));
            return st;
        }
        if (st != HCGA_OK) {
            snprintf(ex->err, sizeof ex->err, "node %d (%s producing '%s'): %s", i, hcga_op_name(n->op),
                     hg__vname(ex->g, n->out[0]), hcga_be_error(ex->be));
            return st;
        }
        if (ex->hook) {
            char e[1024];
            if (ex->hook(ex->hook_ctx, i, e, sizeof e)) {
                snprintf(ex->err, sizeof ex->err, "after node %d (%s producing '%s'): %s", i, hcga_op_name(n->op),
                         hg__vname(ex->g, n->out[0]), e);
                return HCGA_ERR_DEVICE;
            }
        }
    }
    hcga_status st = hcga_be_sync(ex->be);
    if (st != HCGA_OK) {
        snprintf(ex->err, sizeof ex->err, "synchronize after node %d: %s", ex->nnodes - 1, hcga_be_error(ex->be));
        return st;
    }
    return HCGA_OK;
}

int hg_exec_read(hg_exec *ex, hg_val v, void *host, int host_dtype)
{
    const hg_graph *g = ex->g;
    if (v < 0 || v >= ex->nvals) {
        snprintf(ex->err, sizeof ex->err, "read: invalid value id %d", (int)v);
        return HCGA_ERR_INVALID;
    }
    const hg_value *x = g->vals[v];
    int ok = x->dtype == HCGA_I64 ? host_dtype == HCGA_I64 : is_float(host_dtype);
    if (!ok) {
        snprintf(ex->err, sizeof ex->err, "read '%s': host dtype %s does not fit the value's %s",
                 hg__vname(g, v), hcga_dtype_name(host_dtype), hcga_dtype_name(x->dtype));
        return HCGA_ERR_INVALID;
    }
    int64_t n = hg__numel(x->ndim, x->shape);
    hcga_status st;
    switch (ex->loc[v]) {
    case LOC_OWN: st = read_conv(ex->be, ex->own[v], ex->own_off[v], x->dtype, host, host_dtype, n); break;
    case LOC_STORE:
        st = read_conv(ex->be, ex->entry[v]->t.buf, ex->entry[v]->t.offset, x->dtype, host, host_dtype, n);
        break;
    default:
        snprintf(ex->err, sizeof ex->err,
                 "read '%s': the value is transient (its memory is reused); mark it with hg_mark_output",
                 hg__vname(g, v));
        return HCGA_ERR_INVALID;
    }
    if (st != HCGA_OK) snprintf(ex->err, sizeof ex->err, "read '%s': %s", hg__vname(g, v), hcga_be_error(ex->be));
    return st;
}

const char *hg_exec_error(const hg_exec *ex) { return ex->err; }
uint64_t hg_exec_peak_bytes(const hg_exec *ex) { return ex->peak; }
uint64_t hg_exec_persistent_bytes(const hg_exec *ex) { return ex->persistent; }
uint64_t hg_exec_naive_bytes(const hg_exec *ex) { return ex->naive; }
int hg_exec_fused_count(const hg_exec *ex) { return ex->nfused; }
const char *hg_exec_fusion_note(const hg_exec *ex) { return ex->nfused ? "" : ex->fusion_note; }

/* store entries bound by ex (a parameter name is one value of the graph:
 * hg_param returns the existing value for a shared weight) */
static uint64_t store_bytes(const hg_exec *ex, int optim)
{
    uint64_t total = 0;
    for (int v = 0; v < ex->nvals; v++) {
        const hg_store_entry *e = ex->loc[v] == LOC_STORE ? ex->entry[v] : NULL;
        if (!e) continue;
        uint64_t b = (uint64_t)hg__numel(e->ndim, e->shape) * hcga_dtype_size(ex->s->dtype);
        if (!optim) total += b;
        else total += (e->m.buf ? b : 0) + (e->v.buf ? b : 0);
    }
    return total;
}

uint64_t hg_exec_param_bytes(const hg_exec *ex) { return store_bytes(ex, 0); }
uint64_t hg_exec_optim_bytes(const hg_exec *ex) { return store_bytes(ex, 1); }

int hg_exec_placement(const hg_exec *ex, hg_val v, uint64_t *offset, uint64_t *bytes)
{
    if (v < 0 || v >= ex->nvals) return -1;
    if (ex->loc[v] == LOC_ARENA) {
        if (offset) *offset = ex->off[v];
        if (bytes) *bytes = align_up(ex->bytes[v] ? ex->bytes[v] : 1);
        return 1;
    }
    if (ex->loc[v] == LOC_OWN || ex->loc[v] == LOC_STORE) {
        if (bytes) *bytes = ex->bytes[v];
        return 0;
    }
    return -1;
}

/* ---- optimizers ---------------------------------------------------------- */

static int optim_step(hg_exec *ex, const hg_optim_cfg *cfg, int adam)
{
    const hg_graph *g = ex->g;
    const char *what = adam ? "adam" : "sgd";
    if (cfg->step < 1) {
        snprintf(ex->err, sizeof ex->err, "%s: step %lld must be >= 1", what, (long long)cfg->step);
        return HCGA_ERR_INVALID;
    }
    for (int v = 0; v < ex->nvals; v++) {
        const hg_value *x = g->vals[v];
        if (x->kind != HGV_PARAM || !(x->flags & HG_TRAINABLE) || (x->flags & HG_FROZEN)) continue;
        if (x->grad < 0 || x->grad >= ex->nvals || ex->loc[x->grad] != LOC_OWN) continue;
        hg_store_entry *e = ex->entry[v];
        hcga_status st = HCGA_OK;
        if (!e->m.buf) st = alloc_like(ex->s, e, &e->m);
        if (st == HCGA_OK && adam && !e->v.buf) st = alloc_like(ex->s, e, &e->v);
        if (st != HCGA_OK) {
            snprintf(ex->err, sizeof ex->err, "%s: allocating the state of '%s': %s", what, x->name,
                     hcga_be_error(ex->be));
            return st;
        }
        int bias = (x->flags & HG_BIAS) != 0;
        hcga_op_args a;
        memset(&a, 0, sizeof a);
        hcga_tensor grad;
        grad = hg__desc(g->dtype, x->ndim, x->shape);
        grad.buf = ex->own[x->grad];
        grad.offset = ex->own_off[x->grad];
        a.op = adam ? HCGA_OP_ADAM_STEP : HCGA_OP_SGD_STEP;
        a.num_in = 1;
        a.in[0] = &grad;
        a.p.optim.lr = bias ? cfg->lr_bias : cfg->lr;
        a.p.optim.weight_decay = bias ? cfg->weight_decay_bias : cfg->weight_decay;
        a.p.optim.beta1 = cfg->beta1;
        a.p.optim.beta2 = cfg->beta2;
        a.p.optim.eps = cfg->eps;
        a.p.optim.momentum = cfg->momentum;
        a.p.optim.step = cfg->step;
        if (adam) {
            a.num_out = 3;
            a.out[HCGA_ADAM_PARAM] = &e->t;
            a.out[HCGA_ADAM_M] = &e->m;
            a.out[HCGA_ADAM_V] = &e->v;
        } else {
            a.num_out = 2;
            a.out[HCGA_SGD_PARAM] = &e->t;
            a.out[HCGA_SGD_BUF] = &e->m;
        }
        st = hcga_be_run(ex->be, &a);
        if (st != HCGA_OK) {
            snprintf(ex->err, sizeof ex->err, "%s step of '%s': %s", what, x->name, hcga_be_error(ex->be));
            return st;
        }
    }
    hcga_status st = hcga_be_sync(ex->be);
    if (st != HCGA_OK) {
        snprintf(ex->err, sizeof ex->err, "%s: synchronize: %s", what, hcga_be_error(ex->be));
        return st;
    }
    return HCGA_OK;
}

int hg_adam_step(hg_exec *ex, const hg_optim_cfg *cfg) { return optim_step(ex, cfg, 1); }
int hg_sgd_step(hg_exec *ex, const hg_optim_cfg *cfg) { return optim_step(ex, cfg, 0); }

/* ---- what data-parallel training needs ------------------------------------- */

void hg_exec_set_hook(hg_exec *ex, hg_node_hook fn, void *ctx)
{
    ex->hook = fn;
    ex->hook_ctx = ctx;
}

hcga_buffer *hg_exec_grad_buffer(const hg_exec *ex, uint64_t *bytes)
{
    if (bytes) *bytes = ex->grad_bytes;
    return ex->gradbuf;
}

int hg_exec_grad_count(const hg_exec *ex) { return ex->ngrads; }

int hg_exec_grad_at(const hg_exec *ex, int k, uint64_t *offset, uint64_t *bytes, int *ready_node)
{
    if (k < 0 || k >= ex->ngrads) return -1;
    hg_val v = ex->grads[k];
    if (offset) *offset = ex->own_off[v];
    if (bytes) *bytes = align_up(ex->bytes[v] ? ex->bytes[v] : 1);
    if (ready_node) *ready_node = ex->g->vals[v]->producer < ex->nnodes ? ex->g->vals[v]->producer : -1;
    return 0;
}

unsigned hg_exec_node_reduce(const hg_exec *ex, int node, const hcga_tensor **outs)
{
    if (node < 0 || node >= ex->nnodes) return 0;
    const hg_node *n = ex->g->nodes[node];
    if (outs)
        for (int k = 0; k < n->num_out; k++) outs[k] = ex->args[node].out[k];
    return n->reduce_out;
}

hcga_be *hg_exec_backend(const hg_exec *ex) { return ex->be; }
int hg_exec_dtype(const hg_exec *ex) { return ex->g->dtype; }
