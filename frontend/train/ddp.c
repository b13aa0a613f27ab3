/*
 * ddp.c - gradient buckets, their overlapped all-reduce, synchronised batch
 * norm sums and the start-of-training broadcast (see ddp.h).
 *
 * All ranks run the same graph, so they reach the same nodes in the same
 * order and start the same collectives in the same order, which MPI and
 * NCCL both require.  Open MPI progresses a non-blocking collective only
 * inside MPI calls, so the hook also tests the buckets in flight after
 * every node.
 */
#include "train/ddp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "util/util.h"

typedef struct bucket {
    uint64_t off, bytes; /* range of the gradient buffer */
    int ready_node;      /* the node that completes its last gradient (-1: none) */
    void *host;          /* staging copy (host transport) */
    hcga_dist_req *req;  /* in flight (host transport) */
} bucket;

struct hcga_ddp {
    hg_exec *ex;
    hcga_be *be;
    hcga_buffer *grads;
    int dtype, esize, nranks, overlap, backend_comm;
    bucket *b;
    int nb;
    int next; /* buckets 0..next-1 are started (they start in index order) */
    hcga_ddp_stats st;
};

static int start_bucket(hcga_ddp *d, int k, char *err, size_t err_len)
{
    bucket *q = &d->b[k];
    char what[64];
    snprintf(what, sizeof what, "gradient bucket %d of %d", k + 1, d->nb);
    if (d->backend_comm) {
        hcga_tensor t = hcga_tensor_make(d->grads, q->off, d->dtype, 1, (int64_t[]){(int64_t)(q->bytes / d->esize)});
        if (hcga_be_allreduce(d->be, &t, HCGA_COMM_AVG) != HCGA_OK) {
            snprintf(err, err_len, "%s: %s", what, hcga_be_error(d->be));
            return -1;
        }
    } else {
        if (hcga_be_read(d->be, d->grads, q->off, q->host, q->bytes) != HCGA_OK) {
            snprintf(err, err_len, "%s: reading the gradients: %s", what, hcga_be_error(d->be));
            return -1;
        }
        q->req = hcga_dist_iallreduce_sum(q->host, (int64_t)(q->bytes / d->esize), d->dtype, what, err, err_len);
        if (!q->req) return -1;
    }
    return 0;
}

/* Sums the marked outputs of node over the ranks, in place, now. */
static int reduce_outputs(hcga_ddp *d, int node, unsigned mask, char *err, size_t err_len)
{
    const hcga_tensor *outs[HCGA_MAX_OP_OUT] = {0};
    hg_exec_node_reduce(d->ex, node, outs);
    for (int k = 0; k < HCGA_MAX_OP_OUT; k++) {
        if (!(mask & (1u << k)) || !outs[k]) continue;
        const hcga_tensor *t = outs[k];
        int64_t n = hcga_tensor_numel(t);
        if (d->backend_comm) {
            if (hcga_be_allreduce(d->be, t, HCGA_COMM_SUM) != HCGA_OK || hcga_be_comm_wait(d->be) != HCGA_OK) {
                snprintf(err, err_len, "batch-norm sums: %s", hcga_be_error(d->be));
                return -1;
            }
            continue;
        }
        size_t bytes = (size_t)n * hcga_dtype_size(t->dtype);
        void *h = malloc(bytes ? bytes : 1);
        if (!h) {
            snprintf(err, err_len, "batch-norm sums: out of memory");
            return -1;
        }
        int rc = -1;
        if (hcga_be_read(d->be, t->buf, t->offset, h, bytes) != HCGA_OK)
            snprintf(err, err_len, "batch-norm sums: %s", hcga_be_error(d->be));
        else if (hcga_dist_allreduce_sum(h, n, t->dtype, "batch-norm sums", err, err_len) == 0) {
            if (hcga_be_write(d->be, t->buf, t->offset, h, bytes) != HCGA_OK)
                snprintf(err, err_len, "batch-norm sums: %s", hcga_be_error(d->be));
            else
                rc = 0;
        }
        free(h);
        if (rc) return -1;
    }
    return 0;
}

static int after_node(void *ctx, int node, char *err, size_t err_len)
{
    hcga_ddp *d = ctx;
    double t0 = hcga_now();
    unsigned mask = hg_exec_node_reduce(d->ex, node, NULL);
    if (mask) {
        if (reduce_outputs(d, node, mask, err, err_len)) return -1;
        d->st.sync_bn_s += hcga_now() - t0;
    }
    if (d->overlap) {
        /* buckets start in index order, each once its gradients are done */
        while (d->next < d->nb && d->b[d->next].ready_node >= 0 && d->b[d->next].ready_node <= node) {
            if (start_bucket(d, d->next, err, err_len)) return -1;
            d->next++;
        }
        if (!d->backend_comm)
            for (int k = 0; k < d->next; k++)
                if (d->b[k].req && hcga_dist_test(d->b[k].req, err, err_len) < 0) return -1;
    }
    d->st.hook_s += hcga_now() - t0;
    return 0;
}

/* The backend's communicator (NCCL): rank 0 makes its id, MPI carries it
 * to every rank, all join. */
static int join_backend_comm(hcga_be *be, char *err, size_t err_len)
{
    unsigned char id[HCGA_COMM_ID_BYTES];
    uint32_t len = 0;
    memset(id, 0, sizeof id);
    if (hcga_dist_rank() == 0 && hcga_be_comm_id(be, id, &len) != HCGA_OK) {
        snprintf(err, err_len, "%s", hcga_be_error(be));
        len = 0; /* tells the others to stop too */
    }
    if (hcga_dist_bcast(&len, sizeof len, 0, "the backend communicator's size", err, err_len) ||
        hcga_dist_bcast(id, sizeof id, 0, "the backend communicator's id", err, err_len))
        return -1;
    if (len == 0) {
        if (hcga_dist_rank() != 0) snprintf(err, err_len, "rank 0 could not create the backend communicator");
        return -1;
    }
    if (hcga_be_comm_init(be, id, len, hcga_dist_rank(), hcga_dist_size()) != HCGA_OK) {
        snprintf(err, err_len, "%s", hcga_be_error(be));
        return -1;
    }
    return 0;
}

hcga_ddp *hcga_ddp_new(hg_exec *ex, double bucket_mb, int overlap, char *err, size_t err_len)
{
    hcga_ddp *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    d->ex = ex;
    d->be = hg_exec_backend(ex);
    d->nranks = hcga_dist_size();
    d->overlap = overlap;
    uint64_t total = 0;
    d->grads = hg_exec_grad_buffer(ex, &total);
    const int ng = hg_exec_grad_count(ex);
    d->b = calloc((size_t)(ng > 0 ? ng : 1), sizeof *d->b);
    if (!d->b) {
        snprintf(err, err_len, "out of memory");
        free(d);
        return NULL;
    }
    d->st.transport = "none";
    if (d->nranks < 2 || !d->grads) return d; /* nothing to do; no hook */
    d->backend_comm = hcga_be_has_comm(d->be);
    if (d->backend_comm && join_backend_comm(d->be, err, err_len)) {
        hcga_ddp_free(d);
        return NULL;
    }
    d->st.transport = d->backend_comm ? "backend collectives" : "mpi (host staging)";
    /* the gradients' dtype is the graph's (master gradients stay f32/f64) */
    d->dtype = hg_exec_dtype(ex);
    d->esize = (int)hcga_dtype_size(d->dtype);
    const uint64_t cap = (uint64_t)(bucket_mb > 0 ? bucket_mb * 1048576.0 : 1);
    for (int k = 0; k < ng; k++) {
        uint64_t off, bytes;
        int ready;
        hg_exec_grad_at(ex, k, &off, &bytes, &ready);
        bucket *q = d->nb ? &d->b[d->nb - 1] : NULL;
        if (!q || q->bytes >= cap) {
            q = &d->b[d->nb++];
            q->off = off;
            q->ready_node = -1;
        }
        q->bytes = off + bytes - q->off;
        if (ready > q->ready_node) q->ready_node = ready;
    }
    for (int k = 0; k < d->nb; k++) {
        if (d->b[k].bytes % (uint64_t)d->esize) {
            snprintf(err, err_len, "gradient bucket %d: %llu bytes is not whole %s elements", k,
                     (unsigned long long)d->b[k].bytes, hcga_dtype_name(d->dtype));
            hcga_ddp_free(d);
            return NULL;
        }
        if (!d->backend_comm && !(d->b[k].host = malloc(d->b[k].bytes))) {
            snprintf(err, err_len, "out of memory for the gradient staging buffers");
            hcga_ddp_free(d);
            return NULL;
        }
        d->st.bytes += (double)d->b[k].bytes;
    }
    d->st.buckets = d->nb;
    hg_exec_set_hook(ex, after_node, d);
    return d;
}

void hcga_ddp_free(hcga_ddp *d)
{
    if (!d) return;
    if (d->ex && d->nranks > 1) hg_exec_set_hook(d->ex, NULL, NULL);
    for (int k = 0; k < d->nb; k++) {
        if (d->b[k].req) hcga_dist_wait(d->b[k].req, NULL, 0);
        free(d->b[k].host);
    }
    free(d->b);
    free(d);
}

int hcga_ddp_finish(hcga_ddp *d, char *err, size_t err_len)
{
    if (d->nranks < 2 || d->nb == 0) return 0;
    double t0 = hcga_now();
    int rc = 0;
    /* buckets not started by the hook (overlap off, or no node of this
     * graph completes them) start now, still in index order */
    for (; d->next < d->nb && rc == 0; d->next++) rc = start_bucket(d, d->next, err, err_len);
    if (d->backend_comm) {
        if (rc == 0 && hcga_be_comm_wait(d->be) != HCGA_OK) {
            snprintf(err, err_len, "waiting for the gradient all-reduce: %s", hcga_be_error(d->be));
            rc = -1;
        }
    } else {
        const double inv = 1.0 / d->nranks;
        for (int k = 0; k < d->nb; k++) {
            bucket *q = &d->b[k];
            if (!q->req) continue;
            int w = hcga_dist_wait(q->req, rc ? NULL : err, err_len);
            q->req = NULL;
            if (rc || w) {
                rc = -1;
                continue;
            }
            int64_t n = (int64_t)(q->bytes / d->esize);
            if (d->dtype == HCGA_F64)
                for (int64_t i = 0; i < n; i++) ((double *)q->host)[i] *= inv;
            else
                for (int64_t i = 0; i < n; i++) ((float *)q->host)[i] *= (float)inv;
            if (hcga_be_write(d->be, d->grads, q->off, q->host, q->bytes) != HCGA_OK) {
                snprintf(err, err_len, "writing the averaged gradients: %s", hcga_be_error(d->be));
                rc = -1;
            }
        }
    }
    d->next = 0;
    d->st.steps++;
    d->st.exposed_s += hcga_now() - t0;
    return rc;
}

int hcga_ddp_broadcast_store(hg_store *s, int buffers_only, char *err, size_t err_len)
{
    if (hcga_dist_size() < 2) return 0;
    int n = hg_store_count(s);
    for (int i = 0; i < n; i++) {
        hg_store_entry *e = hg_store_at(s, i);
        if (buffers_only && !(e->flags & HG_BUFFER)) continue;
        int64_t numel = 1;
        for (int k = 0; k < e->ndim; k++) numel *= e->shape[k];
        double *h = malloc(sizeof(double) * (size_t)(numel > 0 ? numel : 1));
        if (!h) {
            snprintf(err, err_len, "out of memory broadcasting '%s'", e->name);
            return -1;
        }
        char what[300];
        snprintf(what, sizeof what, "broadcast of '%s' from rank 0", e->name);
        int rc = hg_store_read(s, e, h, HCGA_F64) != 0 ? -1 : 0;
        if (rc) snprintf(err, err_len, "%s: reading it failed", what);
        if (!rc) rc = hcga_dist_bcast(h, sizeof(double) * (size_t)numel, 0, what, err, err_len);
        if (!rc && hcga_dist_rank() != 0 && hg_store_write(s, e, h, HCGA_F64) != 0) {
            snprintf(err, err_len, "%s: writing it failed", what);
            rc = -1;
        }
        free(h);
        if (rc) return -1;
    }
    return 0;
}

hcga_ddp_stats hcga_ddp_get_stats(const hcga_ddp *d) { return d->st; }
int hcga_ddp_num_buckets(const hcga_ddp *d) { return d->nb; }
