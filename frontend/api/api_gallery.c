/*
 * api_gallery.c - the public API's gallery files (include/hcga/hcga.h):
 * the features of indexed images and their names in one safetensors file,
 * stamped with the model's fingerprint so that a gallery is never searched
 * with features of another model.
 *
 * Format (metadata "format": "hcga-gallery-1", "fingerprint": 16 hex digits,
 * "model_sizes": "K D G"): tensors fore F32 [n,D], parts F32 [n,K,D],
 * global F32 [n,G], visible U8 [n,K], and names U8 [bytes]: the n names,
 * each followed by one NUL.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "model/safetensors.h"

#define GALLERY_FORMAT "hcga-gallery-1"

struct hcga_gallery {
    hcga_context *ctx;
    hcga_embeddings e;
    char *names;    /* n NUL-terminated names back to back */
    char **row;     /* row[i] points into names */
    hcga_api_prepared prep; /* its GEMM rows on the backend, made by the first search */
};

hcga_result hcga_gallery_save(hcga_model *m, const char *path, const hcga_embeddings *e, const char *const *names)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_context *ctx = m->ctx;
    hcga_api_begin(ctx);
    if (!path) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_save: path is NULL");
    const hcga_model_info *in = &m->info;
    hcga_result r = hcga_api_check_embeddings(ctx, e, "hcga_gallery_save: e", in->num_parts, in->dim, in->global_dim);
    if (r != HCGA_SUCCESS) return r;
    if (!e->fore || !e->parts || !e->global || !e->visible || (e->n > 0 && !names))
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_save: e needs all four arrays and names");
    size_t bytes = 0;
    for (int i = 0; i < e->n; i++) {
        if (!names[i]) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_save: names[%d] is NULL", i);
        bytes += strlen(names[i]) + 1;
    }
    char *blob = malloc(bytes ? bytes : 1);
    st_writer *w = st_writer_new();
    if (!blob || !w) {
        free(blob);
        st_writer_free(w);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", path);
    }
    size_t at = 0;
    for (int i = 0; i < e->n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(blob + at, names[i], l);
        at += l;
    }
    const int64_t n = e->n, K = e->num_parts, D = e->dim, G = e->global_dim, nb = (int64_t)bytes;
    int bad = st_writer_add(w, "fore", ST_F32, 2, (int64_t[]){n, D}, e->fore);
    bad |= st_writer_add(w, "parts", ST_F32, 3, (int64_t[]){n, K, D}, e->parts);
    bad |= st_writer_add(w, "global", ST_F32, 2, (int64_t[]){n, G}, e->global);
    bad |= st_writer_add(w, "visible", ST_U8, 2, (int64_t[]){n, K}, e->visible);
    bad |= st_writer_add(w, "names", ST_U8, 1, &nb, blob);
    char fp[32], sizes[64];
    snprintf(fp, sizeof fp, "%016" PRIx64, in->fingerprint);
    snprintf(sizes, sizeof sizes, "%d %d %d", e->num_parts, e->dim, e->global_dim);
    st_writer_meta(w, "format", GALLERY_FORMAT);
    st_writer_meta(w, "fingerprint", fp);
    st_writer_meta(w, "model_sizes", sizes);
    char err[4096];
    if (bad) r = hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", path);
    else if (st_writer_save(w, path, err, sizeof err)) r = hcga_api_fail(ctx, HCGA_ERROR_IO, "%s", err);
    st_writer_free(w);
    free(blob);
    return r;
}

/* The tensor `name` with ndim dims, dtype and shape[0] == n (n < 0: any). */
static const st_tensor *need(hcga_context *ctx, const st_file *f, const char *path, const char *name, int ndim,
                             st_dtype dt, int64_t n, hcga_result *r)
{
    const st_tensor *t = st_find(f, name);
    if (!t) {
        *r = hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: gallery tensor '%s' is missing", path, name);
        return NULL;
    }
    if (t->ndim != ndim || t->dtype != dt || (n >= 0 && t->shape[0] != n)) {
        *r = hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: gallery tensor '%s' has another dtype or shape", path, name);
        return NULL;
    }
    return t;
}

static hcga_result read_gallery(hcga_gallery *gal, const st_file *f, const char *path, const hcga_model_info *in)
{
    hcga_context *ctx = gal->ctx;
    const char *fmt = st_meta(f, "format"), *fp = st_meta(f, "fingerprint");
    if (!fmt || strcmp(fmt, GALLERY_FORMAT) || !fp)
        return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: not an hcga gallery (format '%s'; make one with hcga index)",
                             path, fmt ? fmt : "none");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, in->fingerprint);
    if (strcmp(fp, want))
        return hcga_api_fail(ctx, HCGA_ERROR_MISMATCH,
                             "%s: indexed with another model (fingerprint %s, this model %s): index it again", path,
                             fp, want);
    hcga_result r = HCGA_SUCCESS;
    const st_tensor *fo = need(ctx, f, path, "fore", 2, ST_F32, -1, &r);
    const int64_t n = fo ? fo->shape[0] : 0;
    const st_tensor *pa = fo ? need(ctx, f, path, "parts", 3, ST_F32, n, &r) : NULL;
    const st_tensor *gl = pa ? need(ctx, f, path, "global", 2, ST_F32, n, &r) : NULL;
    const st_tensor *vi = gl ? need(ctx, f, path, "visible", 2, ST_U8, n, &r) : NULL;
    const st_tensor *na = vi ? need(ctx, f, path, "names", 1, ST_U8, -1, &r) : NULL;
    if (!na) return r;
    if (n > (1 << 26) || fo->shape[1] != in->dim || pa->shape[1] != in->num_parts || pa->shape[2] != in->dim ||
        gl->shape[1] != in->global_dim || vi->shape[1] != in->num_parts)
        return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: gallery tensors disagree with the model's sizes", path);
    gal->e.n = (int)n;
    gal->e.num_parts = in->num_parts;
    gal->e.dim = in->dim;
    gal->e.global_dim = in->global_dim;
    const size_t rows = (size_t)(n > 0 ? n : 1);
    gal->e.fore = malloc(sizeof(float) * rows * in->dim);
    gal->e.parts = malloc(sizeof(float) * rows * in->num_parts * in->dim);
    gal->e.global = malloc(sizeof(float) * rows * in->global_dim);
    gal->e.visible = malloc(rows * in->num_parts + 1);
    gal->names = malloc(na->numel + 1);
    gal->row = malloc(sizeof(char *) * rows);
    if (!gal->e.fore || !gal->e.parts || !gal->e.global || !gal->e.visible || !gal->names || !gal->row)
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory for %" PRId64 " rows", path, n);
    st_to_f32(fo, gal->e.fore);
    st_to_f32(pa, gal->e.parts);
    st_to_f32(gl, gal->e.global);
    memcpy(gal->e.visible, vi->data, vi->numel);
    memcpy(gal->names, na->data, na->numel);
    gal->names[na->numel] = 0;
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        if (at >= na->numel)
            return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: 'names' holds fewer than %" PRId64 " names", path, n);
        gal->row[i] = gal->names + at;
        const char *z = memchr(gal->names + at, 0, na->numel - at);
        if (!z)
            return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: the last name in 'names' has no terminating NUL", path);
        at = (size_t)(z - gal->names) + 1;
    }
    if (at != na->numel)
        return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s: 'names' holds more than %" PRId64 " names", path, n);
    return HCGA_SUCCESS;
}

hcga_result hcga_gallery_load(hcga_model *m, const char *path, hcga_gallery **out)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_context *ctx = m->ctx;
    hcga_api_begin(ctx);
    if (!out || !path) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_load: %s is NULL", out ? "path" : "out");
    *out = NULL;
    if (access(path, R_OK) != 0) return hcga_api_fail(ctx, HCGA_ERROR_IO, "%s: %s", path, strerror(errno));
    char err[4096];
    st_file *f = st_load(path, err, sizeof err);
    if (!f) return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s", err);
    hcga_gallery *gal = calloc(1, sizeof *gal);
    if (!gal) {
        st_free(f);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", path);
    }
    gal->ctx = ctx;
    hcga_result r = read_gallery(gal, f, path, &m->info);
    st_free(f);
    if (r != HCGA_SUCCESS) {
        hcga_gallery_free(gal);
        return r;
    }
    *out = gal;
    return HCGA_SUCCESS;
}

const hcga_embeddings *hcga_gallery_embeddings(const hcga_gallery *g)
{
    return g ? &g->e : NULL;
}

const char *hcga_gallery_name(const hcga_gallery *g, int row)
{
    return g && row >= 0 && row < g->e.n ? g->row[row] : NULL;
}

hcga_result hcga_gallery_new(hcga_model *m, const hcga_embeddings *e, const char *const *names, hcga_gallery **out)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_context *ctx = m->ctx;
    hcga_api_begin(ctx);
    if (!out) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_new: out is NULL");
    *out = NULL;
    const hcga_model_info *in = &m->info;
    hcga_result r = hcga_api_check_embeddings(ctx, e, "hcga_gallery_new: e", in->num_parts, in->dim, in->global_dim);
    if (r != HCGA_SUCCESS) return r;
    if (!e->fore || !e->parts || !e->global || !e->visible || (e->n > 0 && !names))
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_new: e needs all four arrays and names");
    size_t bytes = 0;
    for (int i = 0; i < e->n; i++) {
        if (!names[i]) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_gallery_new: names[%d] is NULL", i);
        bytes += strlen(names[i]) + 1;
    }
    hcga_gallery *gal = calloc(1, sizeof *gal);
    if (!gal) return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_gallery_new: out of memory");
    gal->ctx = ctx;
    const size_t rows = (size_t)(e->n > 0 ? e->n : 1);
    if (hcga_embeddings_alloc(m, e->n, &gal->e) != HCGA_SUCCESS || !(gal->names = malloc(bytes + 1)) ||
        !(gal->row = malloc(sizeof(char *) * rows))) {
        hcga_gallery_free(gal);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_gallery_new: out of memory for %d rows", e->n);
    }
    memcpy(gal->e.fore, e->fore, sizeof(float) * (size_t)e->n * e->dim);
    memcpy(gal->e.parts, e->parts, sizeof(float) * (size_t)e->n * e->num_parts * e->dim);
    memcpy(gal->e.global, e->global, sizeof(float) * (size_t)e->n * e->global_dim);
    for (size_t i = 0; i < (size_t)e->n * e->num_parts; i++) gal->e.visible[i] = e->visible[i] != 0;
    size_t at = 0;
    for (int i = 0; i < e->n; i++) {
        size_t l = strlen(names[i]) + 1;
        gal->row[i] = gal->names + at;
        memcpy(gal->names + at, names[i], l);
        at += l;
    }
    *out = gal;
    return HCGA_SUCCESS;
}

hcga_result hcga_gallery_search(hcga_gallery *g, const hcga_embeddings *query, const hcga_match_params *params, int k,
                                int32_t *index, float *dist)
{
    if (!g) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(g->ctx);
    return hcga_api_gallery_search(g->ctx, &g->e, &g->prep, query, params, k, index, dist);
}

void hcga_gallery_free(hcga_gallery *g)
{
    if (!g) return;
    hcga_api_prepared_free(g->ctx, &g->prep);
    hcga_embeddings_free(&g->e);
    free(g->names);
    free(g->row);
    free(g);
}
