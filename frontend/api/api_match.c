/*
 * api_match.c - the public API's features and matching
 * (include/hcga/hcga.h): allocating feature rows, the full distance matrix
 * with the same code as `hcga test` (eval/match.c, re-ranking included),
 * and hcga_search, the k nearest gallery rows computed in gallery blocks
 * with the backend's GEMM so that a gallery of any size needs bounded memory.
 *
 * hcga_search writes both metrics as one matrix product.  ARM's similarity
 *   S = (1 + cos(f_q, f_g))/2 + sum_k v_qk v_gk (1 + cos(p_qk, p_gk))/2
 * is the dot product of the query row
 *   [f_q/|f_q|/2, v_qk p_qk/|p_qk|/2 (k = 1..K), v_qk/2 (k = 1..K), 1/2]
 * with the gallery row
 *   [f_g/|f_g|, v_gk p_gk/|p_gk|, v_gk, 1]
 * (a zero vector counts as cosine 0, as eval.c's cosine does); the distance
 * is -S.  The global distance is |q|^2 + |g|^2 - 2 q.g over the (optionally
 * L2-normalised) global features, the GEMM giving q.g.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

#define GALLERY_BLOCK 4096 /* gallery rows per GEMM */
#define QUERY_BLOCK 512    /* query rows per GEMM */

/* ---- features ------------------------------------------------------------- */

hcga_result hcga_embeddings_alloc(hcga_model *m, int n, hcga_embeddings *e)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(m->ctx);
    if (!e) return hcga_api_fail(m->ctx, HCGA_ERROR_ARGUMENT, "hcga_embeddings_alloc: e is NULL");
    memset(e, 0, sizeof *e);
    if (n < 0 || n > (1 << 26))
        return hcga_api_fail(m->ctx, HCGA_ERROR_ARGUMENT, "hcga_embeddings_alloc: n %d is outside 0..2^26", n);
    const hcga_model_info *in = &m->info;
    const size_t rows = (size_t)(n > 0 ? n : 1);
    e->n = n;
    e->num_parts = in->num_parts;
    e->dim = in->dim;
    e->global_dim = in->global_dim;
    e->fore = calloc(rows * in->dim, sizeof(float));
    e->parts = calloc(rows * in->num_parts * in->dim, sizeof(float));
    e->global = calloc(rows * in->global_dim, sizeof(float));
    e->visible = calloc(rows * in->num_parts, 1);
    if (!e->fore || !e->parts || !e->global || !e->visible) {
        hcga_embeddings_free(e);
        return hcga_api_fail(m->ctx, HCGA_ERROR_MEMORY, "hcga_embeddings_alloc: out of memory for %d rows", n);
    }
    return HCGA_SUCCESS;
}

void hcga_embeddings_free(hcga_embeddings *e)
{
    if (!e) return;
    free(e->fore);
    free(e->parts);
    free(e->global);
    free(e->visible);
    memset(e, 0, sizeof *e);
}

/* ---- parameters ----------------------------------------------------------- */

hcga_match_params hcga_match_default_params(void)
{
    hcga_match_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.metric = HCGA_METRIC_ARM;
    p.feat_norm = 1;
    p.k1 = 20;
    p.k2 = 6;
    p.lambda = 0.3;
    return p;
}

static hcga_result get_params(hcga_context *ctx, const char *fn, const hcga_match_params *in,
                              hcga_match_params *p)
{
    *p = hcga_match_default_params();
    if (!in) return HCGA_SUCCESS;
    if (in->struct_size != sizeof *p)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: params.struct_size is %u, this libhcga %s expects %zu",
                             fn, in->struct_size, hcga_version_string(), sizeof *p);
    *p = *in;
    if (p->metric != HCGA_METRIC_ARM && p->metric != HCGA_METRIC_GLOBAL)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: params.metric %d is not an hcga_metric", fn,
                             (int)p->metric);
    if (p->rerank && (p->k1 < 1 || p->k2 < 1 || !(p->lambda >= 0 && p->lambda <= 1)))
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: re-ranking needs k1, k2 >= 1 and lambda in [0, 1]", fn);
    return HCGA_SUCCESS;
}

/* Query and gallery agree in sizes and have the arrays the metric reads. */
static hcga_result check_pair(hcga_context *ctx, const char *fn, const hcga_embeddings *q, const hcga_embeddings *g,
                              hcga_metric metric)
{
    if (!q || !g) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: %s is NULL", fn, q ? "gallery" : "query");
    if (q->n < 0 || g->n < 0 || q->num_parts != g->num_parts || q->dim != g->dim || q->global_dim != g->global_dim ||
        q->num_parts < 0 || q->dim < 1 || q->global_dim < 1)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT,
                             "%s: query (%d rows, %d parts x %d, global %d) and gallery (%d rows, %d parts x %d, "
                             "global %d) do not match",
                             fn, q->n, q->num_parts, q->dim, q->global_dim, g->n, g->num_parts, g->dim, g->global_dim);
    const hcga_embeddings *e[2] = {q, g};
    for (int s = 0; s < 2; s++) {
        const char *what = s ? "gallery" : "query";
        if (metric == HCGA_METRIC_ARM && (!e[s]->fore || !e[s]->parts || !e[s]->visible))
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: ARM matching needs the %s's fore, parts and visible",
                                 fn, what);
        if (metric == HCGA_METRIC_GLOBAL && !e[s]->global)
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: global matching needs the %s's global features", fn,
                                 what);
    }
    return HCGA_SUCCESS;
}

/* ---- full distance matrix ------------------------------------------------- */

/* An hcga_features view of public rows (visible widened to int64). */
static int as_features(const hcga_embeddings *e, hcga_features *f)
{
    memset(f, 0, sizeof *f);
    f->n = e->n;
    f->nparts = e->num_parts;
    f->d = e->dim;
    f->dg = e->global_dim;
    f->fore = e->fore;
    f->part = e->parts;
    f->global = e->global;
    size_t nv = (size_t)e->n * e->num_parts;
    f->vis = calloc(nv ? nv : 1, sizeof(int64_t));
    if (!f->vis) return -1;
    if (e->visible)
        for (size_t i = 0; i < nv; i++) f->vis[i] = e->visible[i] != 0;
    return 0;
}

hcga_result hcga_distances(hcga_context *ctx, const hcga_embeddings *query, const hcga_embeddings *gallery,
                           const hcga_match_params *params, float *dist)
{
    if (!ctx) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(ctx);
    hcga_match_params p;
    hcga_result r = get_params(ctx, "hcga_distances", params, &p);
    if (r == HCGA_SUCCESS) r = check_pair(ctx, "hcga_distances", query, gallery, p.metric);
    if (r != HCGA_SUCCESS) return r;
    if (!dist) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_distances: dist is NULL");
    if (!query->n || !gallery->n) return HCGA_SUCCESS;
    hcga_features q, g;
    if (as_features(query, &q) || as_features(gallery, &g)) {
        free(q.vis);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_distances: out of memory");
    }
    char err[1024];
    int rc = hcga_match_distances(&q, &g, p.metric == HCGA_METRIC_ARM ? HCGA_MATCH_ARM : HCGA_MATCH_GLOBAL,
                                  p.feat_norm, p.rerank, p.k1, p.k2, p.lambda, dist, err, sizeof err);
    free(q.vis);
    free(g.vis);
    return rc ? hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_distances: %s", err) : HCGA_SUCCESS;
}

/* ---- blocked search ------------------------------------------------------- */

/* x scaled to unit length (zero when |x| is below 1e-6), times s. */
static void unit(const float *x, int d, float s, float *out)
{
    double n = 0;
    for (int i = 0; i < d; i++) n += (double)x[i] * x[i];
    n = sqrt(n);
    double f = n > 1e-6 ? s / n : 0.0;
    for (int i = 0; i < d; i++) out[i] = (float)(x[i] * f);
}

/* Width of a GEMM row for the metric. */
static int row_width(const hcga_embeddings *e, hcga_metric metric)
{
    return metric == HCGA_METRIC_ARM ? (e->num_parts + 1) * e->dim + e->num_parts + 1 : e->global_dim;
}

/* Rows first..first+n-1 of e as GEMM rows (query side when query), and for
 * the global metric their squared norms in sq[]. */
static void gemm_rows(const hcga_embeddings *e, int first, int n, hcga_metric metric, int feat_norm, int query,
                      float *out, double *sq)
{
    const int K = e->num_parts, d = e->dim, D = row_width(e, metric);
    const float h = query ? 0.5f : 1.0f;
    for (int i = 0; i < n; i++) {
        const size_t r = (size_t)first + i;
        float *o = out + (size_t)i * D;
        if (metric == HCGA_METRIC_GLOBAL) {
            const float *x = e->global + r * e->global_dim;
            if (feat_norm) unit(x, e->global_dim, 1.0f, o);
            else memcpy(o, x, sizeof(float) * e->global_dim);
            double s = 0;
            for (int k = 0; k < e->global_dim; k++) s += (double)o[k] * o[k];
            sq[i] = s;
            continue;
        }
        unit(e->fore + r * d, d, h, o);
        for (int k = 0; k < K; k++) {
            const int v = e->visible[r * K + k] != 0;
            if (v) unit(e->parts + (r * K + k) * d, d, h, o + (size_t)(k + 1) * d);
            else memset(o + (size_t)(k + 1) * d, 0, sizeof(float) * d);
            o[(size_t)(K + 1) * d + k] = v ? h : 0.0f;
        }
        o[D - 1] = h;
    }
}

/* Insert (d, j) into a query's sorted top-k list; ties keep the earlier row. */
static void topk_insert(float *td, int32_t *ti, int k, float d, int32_t j)
{
    if (!(d < td[k - 1])) return;
    int p = k - 1;
    while (p > 0 && d < td[p - 1]) {
        td[p] = td[p - 1];
        ti[p] = ti[p - 1];
        p--;
    }
    td[p] = d;
    ti[p] = j;
}

typedef struct search_bufs {
    hcga_buffer *q, *g, *y; /* g: a streamed gallery block (hcga_search only) */
    float *hq, *hg, *hy;
    double *sq, *sg;
    int qb, gb, D;
} search_bufs;

static void bufs_free(hcga_be *be, search_bufs *b)
{
    if (b->q) hcga_be_free(be, b->q);
    if (b->g) hcga_be_free(be, b->g);
    if (b->y) hcga_be_free(be, b->y);
    free(b->hq);
    free(b->hg);
    free(b->hy);
    free(b->sq);
    free(b->sg);
    memset(b, 0, sizeof *b);
}

/* Buffers for query blocks of qb rows against gallery blocks of gb rows;
 * with_gallery: also host and backend room for one streamed gallery block. */
static hcga_result bufs_alloc(hcga_context *ctx, search_bufs *b, int qb, int gb, int D, int with_gallery)
{
    hcga_be *be = ctx->be;
    memset(b, 0, sizeof *b);
    b->qb = qb;
    b->gb = gb;
    b->D = D;
    b->hq = malloc(sizeof(float) * (size_t)qb * D);
    b->hy = malloc(sizeof(float) * (size_t)qb * gb);
    b->sq = malloc(sizeof(double) * (size_t)qb);
    if (with_gallery) {
        b->hg = malloc(sizeof(float) * (size_t)gb * D);
        b->sg = malloc(sizeof(double) * (size_t)gb);
    }
    if (!b->hq || !b->hy || !b->sq || (with_gallery && (!b->hg || !b->sg)))
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "search: out of memory for %dx%d blocks", qb, gb);
    if (hcga_be_alloc(be, sizeof(float) * (uint64_t)qb * D, &b->q) != HCGA_OK ||
        hcga_be_alloc(be, sizeof(float) * (uint64_t)qb * gb, &b->y) != HCGA_OK ||
        (with_gallery && hcga_be_alloc(be, sizeof(float) * (uint64_t)gb * D, &b->g) != HCGA_OK))
        return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "search: %s", hcga_be_error(be));
    return HCGA_SUCCESS;
}

/* Query rows q0.. (nqb of them) as the GEMM's left side, on the backend. */
static hcga_result upload_queries(hcga_context *ctx, search_bufs *b, const hcga_embeddings *q, int q0, int nqb,
                                  const hcga_match_params *p)
{
    gemm_rows(q, q0, nqb, p->metric, p->feat_norm, 1, b->hq, b->sq);
    if (hcga_be_write(ctx->be, b->q, 0, b->hq, sizeof(float) * (uint64_t)nqb * b->D) != HCGA_OK)
        return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "search: %s", hcga_be_error(ctx->be));
    return HCGA_SUCCESS;
}

/* Score the uploaded query block (rows q0.., nqb) against ngb gallery rows
 * g0.. held at byte offset goff of gbuf (their squared norms in sg for the
 * global metric) with one GEMM, and merge them into the queries' top-k. */
static hcga_result score_block(hcga_context *ctx, search_bufs *b, int q0, int nqb, hcga_buffer *gbuf, uint64_t goff,
                               int g0, int ngb, const double *sg, hcga_metric metric, int k, float *td,
                               int32_t *index)
{
    hcga_be *be = ctx->be;
    const int D = b->D;
    hcga_tensor ta = hcga_tensor_make(b->q, 0, HCGA_F32, 2, (int64_t[]){nqb, D});
    hcga_tensor tb = hcga_tensor_make(gbuf, goff, HCGA_F32, 2, (int64_t[]){ngb, D});
    hcga_tensor ty = hcga_tensor_make(b->y, 0, HCGA_F32, 2, (int64_t[]){nqb, ngb});
    hcga_op_args a;
    memset(&a, 0, sizeof a);
    a.op = HCGA_OP_GEMM;
    a.num_in = 2;
    a.num_out = 1;
    a.in[0] = &ta;
    a.in[1] = &tb;
    a.out[0] = &ty;
    a.p.gemm.trans_b = 1;
    a.p.gemm.alpha = 1.0;
    if (hcga_be_run(be, &a) != HCGA_OK ||
        hcga_be_read(be, b->y, 0, b->hy, sizeof(float) * (uint64_t)nqb * ngb) != HCGA_OK)
        return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "search: %s", hcga_be_error(be));
    for (int i = 0; i < nqb; i++) {
        float *rd = td + (size_t)(q0 + i) * k;
        int32_t *ri = index + (size_t)(q0 + i) * k;
        const float *y = b->hy + (size_t)i * ngb;
        for (int j = 0; j < ngb; j++) {
            float d;
            if (metric == HCGA_METRIC_ARM) d = -y[j];
            else {
                double v = b->sq[i] + sg[j] - 2.0 * y[j];
                d = (float)(v < 0 ? 0 : v);
            }
            topk_insert(rd, ri, k, d, g0 + j);
        }
    }
    return HCGA_SUCCESS;
}

/* Checks shared by both searches; *td gets the nq*k distance lists (INFINITY). */
static hcga_result search_begin(hcga_context *ctx, const char *fn, const hcga_embeddings *query,
                                const hcga_embeddings *gallery, const hcga_match_params *params, int k,
                                int32_t *index, hcga_match_params *p, float **td)
{
    hcga_result r = get_params(ctx, fn, params, p);
    if (r == HCGA_SUCCESS) r = check_pair(ctx, fn, query, gallery, p->metric);
    if (r != HCGA_SUCCESS) return r;
    if (p->rerank)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: re-ranking needs the whole matrix: use hcga_distances",
                             fn);
    if (k < 1 || !index) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s: %s", fn, k < 1 ? "k < 1" : "index is NULL");
    const int nq = query->n;
    *td = malloc(sizeof(float) * (size_t)(nq > 0 ? nq : 1) * k);
    if (!*td) return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", fn);
    for (size_t i = 0; i < (size_t)nq * k; i++) {
        (*td)[i] = INFINITY;
        index[i] = -1;
    }
    return HCGA_SUCCESS;
}

hcga_result hcga_search(hcga_model *m, const hcga_embeddings *query, const hcga_embeddings *gallery,
                        const hcga_match_params *params, int k, int32_t *index, float *dist)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_context *ctx = m->ctx;
    hcga_api_begin(ctx);
    hcga_match_params p;
    float *td = NULL;
    hcga_result r = search_begin(ctx, "hcga_search", query, gallery, params, k, index, &p, &td);
    if (r != HCGA_SUCCESS) return r;
    const int nq = query->n, ng = gallery->n, D = row_width(query, p.metric);
    const int qb = nq < QUERY_BLOCK ? (nq > 0 ? nq : 1) : QUERY_BLOCK;
    const int gb = ng < GALLERY_BLOCK ? (ng > 0 ? ng : 1) : GALLERY_BLOCK;
    search_bufs b;
    r = bufs_alloc(ctx, &b, qb, gb, D, 1);
    /* gallery blocks outside, so each is prepared once; the query block is
     * prepared once when the queries fit in one */
    for (int g0 = 0; g0 < ng && r == HCGA_SUCCESS; g0 += gb) {
        const int ngb = ng - g0 < gb ? ng - g0 : gb;
        gemm_rows(gallery, g0, ngb, p.metric, p.feat_norm, 0, b.hg, b.sg);
        if (hcga_be_write(ctx->be, b.g, 0, b.hg, sizeof(float) * (uint64_t)ngb * D) != HCGA_OK)
            r = hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "hcga_search: %s", hcga_be_error(ctx->be));
        for (int q0 = 0; q0 < nq && r == HCGA_SUCCESS; q0 += qb) {
            const int nqb = nq - q0 < qb ? nq - q0 : qb;
            if (g0 == 0 || nq > qb) r = upload_queries(ctx, &b, query, q0, nqb, &p);
            if (r == HCGA_SUCCESS)
                r = score_block(ctx, &b, q0, nqb, b.g, 0, g0, ngb, b.sg, p.metric, k, td, index);
        }
    }
    if (r == HCGA_SUCCESS && dist) memcpy(dist, td, sizeof(float) * (size_t)nq * k);
    bufs_free(ctx->be, &b);
    free(td);
    return r;
}

/* ---- gallery search: the gallery's GEMM rows kept on the backend ---------- */

void hcga_api_prepared_free(hcga_context *ctx, hcga_api_prepared *pg)
{
    if (pg->buf && ctx && ctx->be) hcga_be_free(ctx->be, pg->buf);
    free(pg->sq);
    memset(pg, 0, sizeof *pg);
}

/* Make pg hold the GEMM rows of g for the metric (rebuilt when the metric
 * or feat_norm changed): all n rows in one backend buffer. */
static hcga_result prepare(hcga_context *ctx, const hcga_embeddings *g, const hcga_match_params *p,
                           hcga_api_prepared *pg)
{
    if (pg->buf && pg->metric == (int)p->metric && pg->feat_norm == p->feat_norm) return HCGA_SUCCESS;
    hcga_api_prepared_free(ctx, pg);
    const int n = g->n, D = row_width(g, p->metric), blk = GALLERY_BLOCK;
    float *host = malloc(sizeof(float) * (size_t)blk * D);
    pg->sq = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!host || !pg->sq) {
        free(host);
        hcga_api_prepared_free(ctx, pg);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_gallery_search: out of memory");
    }
    hcga_result r = HCGA_SUCCESS;
    if (hcga_be_alloc(ctx->be, sizeof(float) * (uint64_t)(n > 0 ? n : 1) * D, &pg->buf) != HCGA_OK) {
        pg->buf = NULL;
        r = hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "hcga_gallery_search: %d gallery rows: %s", n,
                          hcga_be_error(ctx->be));
    }
    for (int g0 = 0; g0 < n && r == HCGA_SUCCESS; g0 += blk) {
        const int nb = n - g0 < blk ? n - g0 : blk;
        gemm_rows(g, g0, nb, p->metric, p->feat_norm, 0, host, pg->sq + g0);
        if (hcga_be_write(ctx->be, pg->buf, sizeof(float) * (uint64_t)g0 * D, host, sizeof(float) * (uint64_t)nb * D) !=
            HCGA_OK)
            r = hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "hcga_gallery_search: %s", hcga_be_error(ctx->be));
    }
    free(host);
    if (r != HCGA_SUCCESS) {
        hcga_api_prepared_free(ctx, pg);
        return r;
    }
    pg->metric = (int)p->metric;
    pg->feat_norm = p->feat_norm;
    return HCGA_SUCCESS;
}

hcga_result hcga_api_gallery_search(hcga_context *ctx, const hcga_embeddings *gallery, hcga_api_prepared *pg,
                                    const hcga_embeddings *query, const hcga_match_params *params, int k,
                                    int32_t *index, float *dist)
{
    hcga_match_params p;
    float *td = NULL;
    hcga_result r = search_begin(ctx, "hcga_gallery_search", query, gallery, params, k, index, &p, &td);
    if (r != HCGA_SUCCESS) return r;
    r = prepare(ctx, gallery, &p, pg);
    const int nq = query->n, ng = gallery->n, D = row_width(query, p.metric);
    const int qb = nq < QUERY_BLOCK ? (nq > 0 ? nq : 1) : QUERY_BLOCK;
    const int gb = ng < GALLERY_BLOCK ? (ng > 0 ? ng : 1) : GALLERY_BLOCK;
    search_bufs b = {0};
    if (r == HCGA_SUCCESS) r = bufs_alloc(ctx, &b, qb, gb, D, 0);
    for (int q0 = 0; q0 < nq && r == HCGA_SUCCESS; q0 += qb) {
        const int nqb = nq - q0 < qb ? nq - q0 : qb;
        r = upload_queries(ctx, &b, query, q0, nqb, &p);
        for (int g0 = 0; g0 < ng && r == HCGA_SUCCESS; g0 += gb) {
            const int ngb = ng - g0 < gb ? ng - g0 : gb;
            r = score_block(ctx, &b, q0, nqb, pg->buf, sizeof(float) * (uint64_t)g0 * D, g0, ngb, pg->sq + g0,
                            p.metric, k, td, index);
        }
    }
    if (r == HCGA_SUCCESS && dist) memcpy(dist, td, sizeof(float) * (size_t)nq * k);
    bufs_free(ctx->be, &b);
    free(td);
    return r;
}
