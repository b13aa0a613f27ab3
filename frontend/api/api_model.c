/*
 * api_model.c - the public API's contexts and models (include/hcga/hcga.h):
 * a context opens one backend and keeps the message of the last failure; a
 * model is a checkpoint loaded into the eval graph on that backend, with
 * the test transform of its config; hcga_extract and hcga_extract_files run
 * it over caller images and image files with the same transform and the
 * same batch runner as `hcga test` (eval/features.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "data/image_io.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/model_io.h"
#include "model/safetensors.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int hcga_version(void)
{
    return HCGA_VERSION_MAJOR * 10000 + HCGA_VERSION_MINOR * 100 + HCGA_VERSION_PATCH;
}

const char *hcga_version_string(void)
{
    return STR(HCGA_VERSION_MAJOR) "." STR(HCGA_VERSION_MINOR) "." STR(HCGA_VERSION_PATCH);
}

const char *hcga_result_string(hcga_result r)
{
    switch (r) {
    case HCGA_SUCCESS: return "success";
    case HCGA_ERROR_ARGUMENT: return "bad argument";
    case HCGA_ERROR_IO: return "input/output error";
    case HCGA_ERROR_FORMAT: return "bad file format";
    case HCGA_ERROR_MISMATCH: return "file of another model";
    case HCGA_ERROR_BACKEND: return "backend error";
    case HCGA_ERROR_MEMORY: return "out of memory";
    }
    return "unknown result";
}

/* ---- errors --------------------------------------------------------------- */

hcga_result hcga_api_fail(hcga_context *ctx, hcga_result code, const char *fmt, ...)
{
    if (!ctx) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    return code;
}

void hcga_api_begin(hcga_context *ctx)
{
    if (ctx) ctx->err[0] = 0;
}

/* ---- context -------------------------------------------------------------- */

hcga_context_params hcga_context_default_params(void)
{
    hcga_context_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.backend = "cpu";
    return p;
}

hcga_result hcga_context_new(const hcga_context_params *params, hcga_context **out)
{
    if (!out) return HCGA_ERROR_ARGUMENT;
    *out = NULL;
    hcga_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return HCGA_ERROR_MEMORY;
    *out = ctx;
    hcga_context_params p = hcga_context_default_params();
    if (params) {
        if (params->struct_size != sizeof p)
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT,
                                 "hcga_context_new: params.struct_size is %u, this libhcga %s expects %zu "
                                 "(use hcga_context_default_params() of the library you run with)",
                                 params->struct_size, hcga_version_string(), sizeof p);
        p = *params;
    }
    if (!p.backend || !*p.backend)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_context_new: params.backend is empty");
    if (p.device < 0 || p.threads < 0)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_context_new: params.%s is negative (%d)",
                             p.device < 0 ? "device" : "threads", p.device < 0 ? p.device : p.threads);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->threads = p.threads > 0 ? p.threads : (ncpu > 0 ? (int)ncpu : 1);
    /* the backend gets the thread count as threads=N, as `hcga --threads` gives it */
    char err[2048];
    if (hcga_be_open_threads(p.backend, p.device, p.threads, p.options, &ctx->be, err, sizeof err)) {
        ctx->be = NULL;
        return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "%s", err);
    }
    if (ctx->be->iface->device_info(ctx->be->device, &ctx->device) != HCGA_OK)
        snprintf(ctx->device.name, sizeof ctx->device.name, "device %d", ctx->be->device);
    return HCGA_SUCCESS;
}

void hcga_context_free(hcga_context *ctx)
{
    if (!ctx) return;
    if (ctx->be) hcga_be_close(ctx->be);
    free(ctx);
}

const char *hcga_context_error(const hcga_context *ctx)
{
    return ctx ? ctx->err : "hcga_context_error: the context is NULL (hcga_context_new ran out of memory?)";
}

hcga_result hcga_context_backend(hcga_context *ctx, const char **name, const char **device)
{
    if (!ctx) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(ctx);
    if (!ctx->be) return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "hcga_context_backend: the backend did not open");
    if (name) *name = ctx->be->name;
    if (device) *device = ctx->device.name;
    return HCGA_SUCCESS;
}

/* ---- model ---------------------------------------------------------------- */

hcga_model_params hcga_model_default_params(void)
{
    hcga_model_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.precision = HCGA_PRECISION_F32;
    return p;
}

/* FNV-1a, 64 bits. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The config keys that decide what features the eval graph computes from
 * an image: the architecture, the test transform, the part count, the neck
 * feature and the precision.  Run-only keys (paths, batch sizes, devices,
 * training schedule, matching options) are left out, so that they do not
 * make a gallery "of another model". */
static const char *const feature_keys[] = {
    "MODEL.NAME", "MODEL.T", "MODEL.SEG_F", "MODEL.LAST_STRIDE", "MODEL.NECK", "MODEL.IF_BIGG", "MODEL.EXTRA",
    "INPUT.SIZE_TEST", "INPUT.PIXEL_MEAN", "INPUT.PIXEL_STD", "CLUSTERING.PART_NUM", "TEST.NECK_FEAT",
    "SOLVER.AMP.ENABLED", "SOLVER.AMP.DTYPE",
};

static int is_feature_key(const char *path)
{
    for (size_t i = 0; i < sizeof feature_keys / sizeof feature_keys[0]; i++) {
        size_t n = strlen(feature_keys[i]);
        if (!strncmp(path, feature_keys[i], n) && (path[n] == 0 || path[n] == '.')) return 1;
    }
    return 0;
}

/* Hash the lines of the config dump (block-style YAML, two spaces an
 * indentation level) whose key path is one of feature_keys. */
static uint64_t hash_feature_config(uint64_t h, const char *yaml)
{
    char path[8][64];
    for (const char *line = yaml; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t ind = 0;
        while (ind < len && line[ind] == ' ') ind++;
        const char *colon = memchr(line + ind, ':', len - ind);
        int depth = (int)(ind / 2);
        if (colon && depth < 8) {
            snprintf(path[depth], sizeof path[depth], "%.*s", (int)(colon - line - ind), line + ind);
            char full[600] = "";
            for (int d = 0; d <= depth; d++) {
                strcat(full, path[d]);
                if (d < depth) strcat(full, ".");
            }
            if (is_feature_key(full)) {
                h = fnv1a(h, full, strlen(full));
                h = fnv1a(h, colon, len - (size_t)(colon - line));
            }
        }
        line += len + (end ? 1 : 0);
    }
    return h;
}

/* The weights as the model computes with them (F32, with their names and
 * shapes) and the feature-deciding config: two loads of the same checkpoint
 * agree, any changed weight or feature key differs. */
static int model_fingerprint(hcga_model *m, uint64_t *out)
{
    uint64_t h = 14695981039346656037ull;
    char *yaml = hcga_config_dump_string(m->cfg);
    if (!yaml) return -1;
    h = hash_feature_config(h, yaml);
    free(yaml);
    for (int i = 0; i < hg_store_count(m->store); i++) {
        hg_store_entry *e = hg_store_at(m->store, i);
        int64_t n = 1;
        for (int k = 0; k < e->ndim; k++) n *= e->shape[k];
        float *buf = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!buf) return -1;
        if (hg_store_read(m->store, e, buf, HCGA_F32)) {
            free(buf);
            return -1;
        }
        h = fnv1a(h, e->name, strlen(e->name));
        h = fnv1a(h, e->shape, sizeof(int64_t) * (size_t)e->ndim);
        h = fnv1a(h, buf, sizeof(float) * (size_t)n);
        free(buf);
    }
    *out = h;
    return 0;
}

static hcga_result model_config(hcga_model *m, const char *weights, const st_file *wf, const hcga_model_params *p)
{
    hcga_context *ctx = m->ctx;
    char err[4096];
    /* only hcga checkpoints embed a YAML config ("config" in other files may be a file name) */
    const char *cy = hcga_is_checkpoint(wf) ? st_meta(wf, "config") : NULL;
    if (!p->config && !cy)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT,
                             "%s carries no config (not an hcga checkpoint): give hcga_model_params.config", weights);
    char *const *over = (char *const *)(uintptr_t)p->overrides;
    m->cfg = p->config ? hcga_config_load(p->config, p->n_overrides * 2, over, err, sizeof err)
                       : hcga_config_load_string(cy, strlen(cy), weights, p->n_overrides * 2, over, err, sizeof err);
    if (!m->cfg) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s", err);
    if (p->precision != HCGA_PRECISION_F32) {
        if (hcga_cfg_set(m->cfg, "SOLVER.AMP.ENABLED", "True", err, sizeof err) ||
            hcga_cfg_set(m->cfg, "SOLVER.AMP.DTYPE", p->precision == HCGA_PRECISION_BF16 ? "bf16" : "fp16", err,
                         sizeof err))
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "precision: %s", err);
    }
    return HCGA_SUCCESS;
}

static hcga_result model_build(hcga_model *m, const char *weights, const st_file *wf)
{
    hcga_context *ctx = m->ctx;
    char err[4096];
    int ncls = hcga_model_num_classes(wf, weights, err, sizeof err);
    if (ncls < 0) return hcga_api_fail(ctx, HCGA_ERROR_MISMATCH, "%s", err);
    int batch = m->params.batch > 0 ? m->params.batch : (int)hcga_cfg_int(m->cfg, "TEST.IMS_PER_BATCH");
    if (batch < 1 || batch > 4096)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "batch %d: give 1..4096 images per forward pass", batch);
    m->store = hg_store_new(ctx->be, HCGA_F32);
    if (!m->store) return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", weights);
    m->graph = hcga_model_build(m->cfg, HCGA_MODEL_EVAL, batch, ncls, HCGA_F32, err, sizeof err);
    if (!m->graph) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s", err);
    m->exec = hcga_exec_with_weights(m->cfg, m->graph, m->store, ctx->be, wf, weights, err, sizeof err);
    if (!m->exec) return hcga_api_fail(ctx, HCGA_ERROR_MISMATCH, "%s", err);
    m->aug = hcga_aug_from_config(m->cfg, 0);
    if (hcga_eval_runner_init(&m->runner, m->exec, m->graph, batch, m->aug.height, m->aug.width, err, sizeof err))
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s", err);
    hcga_model_info *in = &m->info;
    in->struct_size = sizeof *in;
    in->input_height = m->aug.height;
    in->input_width = m->aug.width;
    in->num_parts = m->runner.nparts;
    in->dim = m->runner.d;
    in->global_dim = m->runner.dg;
    in->batch = batch;
    in->arm = hcga_cfg_bool(m->cfg, "TEST.WITH_ARM");
    in->feat_norm = strcmp(hcga_cfg_str(m->cfg, "TEST.FEAT_NORM"), "yes") == 0;
    if (model_fingerprint(m, &in->fingerprint))
        return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "%s: reading the weights back: %s", weights,
                             hcga_be_error(ctx->be));
    return HCGA_SUCCESS;
}

hcga_result hcga_model_load(hcga_context *ctx, const char *weights, const hcga_model_params *params,
                            hcga_model **out)
{
    if (!ctx) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(ctx);
    if (!out) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: out is NULL");
    *out = NULL;
    if (!weights) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: weights is NULL");
    if (!ctx->be) return hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "hcga_model_load: the context's backend did not open");
    hcga_model_params p = hcga_model_default_params();
    if (params) {
        if (params->struct_size != sizeof p)
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT,
                                 "hcga_model_load: params.struct_size is %u, this libhcga %s expects %zu",
                                 params->struct_size, hcga_version_string(), sizeof p);
        p = *params;
    }
    if (p.n_overrides < 0 || (p.n_overrides > 0 && !p.overrides))
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: n_overrides %d without overrides",
                             p.n_overrides);
    for (int i = 0; i < 2 * p.n_overrides; i++)
        if (!p.overrides[i])
            return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: overrides[%d] is NULL", i);
    if ((int)p.precision < HCGA_PRECISION_F32 || (int)p.precision > HCGA_PRECISION_F16)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: precision %d is not an hcga_precision",
                             (int)p.precision);
    if (p.batch < 0 || (p.flip != 0 && p.flip != 1))
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_model_load: params.%s", p.batch < 0 ? "batch < 0" : "flip is not 0 or 1");
    if (access(weights, R_OK) != 0)
        return hcga_api_fail(ctx, HCGA_ERROR_IO, "%s: %s", weights, strerror(errno));
    char err[4096];
    st_file *wf = st_load(weights, err, sizeof err);
    if (!wf) return hcga_api_fail(ctx, HCGA_ERROR_FORMAT, "%s", err);
    hcga_model *m = calloc(1, sizeof *m);
    if (!m) {
        st_free(wf);
        return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "%s: out of memory", weights);
    }
    m->ctx = ctx;
    m->params = p;
    m->params.overrides = NULL; /* not kept: the caller's strings */
    m->params.config = NULL;
    hcga_result r = model_config(m, weights, wf, &p);
    if (r == HCGA_SUCCESS) r = model_build(m, weights, wf);
    st_free(wf);
    if (r != HCGA_SUCCESS) {
        char keep[sizeof ctx->err];
        memcpy(keep, ctx->err, sizeof keep);
        hcga_model_free(m);
        memcpy(ctx->err, keep, sizeof keep);
        return r;
    }
    *out = m;
    return HCGA_SUCCESS;
}

void hcga_model_free(hcga_model *m)
{
    if (!m) return;
    hcga_eval_runner_free(&m->runner);
    hg_exec_free(m->exec);
    if (m->graph) hcga_model_graph_free(m->graph);
    hg_store_free(m->store);
    hcga_config_free(m->cfg);
    free(m);
}

hcga_result hcga_model_get_info(hcga_model *m, hcga_model_info *info)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(m->ctx);
    if (!info) return hcga_api_fail(m->ctx, HCGA_ERROR_ARGUMENT, "hcga_model_get_info: info is NULL");
    *info = m->info;
    return HCGA_SUCCESS;
}

/* ---- extraction ----------------------------------------------------------- */

hcga_result hcga_api_check_embeddings(hcga_context *ctx, const hcga_embeddings *e, const char *what, int num_parts,
                                      int dim, int global_dim)
{
    if (!e) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "%s is NULL", what);
    if (e->n < 0 || e->num_parts != num_parts || e->dim != dim || e->global_dim != global_dim)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT,
                             "%s has n %d, %d parts x %d, global %d; the model has %d parts x %d, global %d", what,
                             e->n, e->num_parts, e->dim, e->global_dim, num_parts, dim, global_dim);
    return HCGA_SUCCESS;
}

/* Copy the runner's rows 0..n-1 to rows first.. of out (NULL arrays skipped). */
static void store_rows(const hcga_eval_runner *r, int n, hcga_embeddings *out, int first)
{
    const size_t d = (size_t)r->d, k = (size_t)r->nparts, dg = (size_t)r->dg, f = (size_t)first;
    if (out->fore) memcpy(out->fore + f * d, r->fore, sizeof(float) * (size_t)n * d);
    if (out->parts) memcpy(out->parts + f * k * d, r->part, sizeof(float) * (size_t)n * k * d);
    if (out->global) memcpy(out->global + f * dg, r->global, sizeof(float) * (size_t)n * dg);
    if (out->visible)
        for (size_t i = 0; i < (size_t)n * k; i++) out->visible[f * k + i] = (uint8_t)(r->vis[i] != 0);
}

/* A source of images for extract(): views or files. */
typedef struct image_source {
    const hcga_image_view *views;
    const char *const *paths;
} image_source;

static hcga_result check_view(hcga_context *ctx, const hcga_image_view *v, int i)
{
    if (!v->pixels) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "image %d: pixels is NULL", i);
    if (v->channels != 3)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "image %d: %d channels; give 8-bit RGB (3 channels)", i,
                             v->channels);
    if (v->width < 1 || v->height < 1 || v->width > 65535 || v->height > 65535)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "image %d: size %dx%d; each side must be 1..65535", i,
                             v->width, v->height);
    if (v->stride != 0 && v->stride < (size_t)3 * (size_t)v->width)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "image %d: stride %zu is below 3 * width = %d", i, v->stride,
                             3 * v->width);
    return HCGA_SUCCESS;
}

/* Decode a JPEG or PNG (by its signature) as RGB. */
static int read_rgb(const char *path, hcga_image *img, char *err, size_t err_len)
{
    unsigned char sig[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t got = fread(sig, 1, sizeof sig, f);
    fclose(f);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got == sizeof sig && !memcmp(sig, png, sizeof png)) {
        if (hcga_png_read(path, img, err, err_len)) return -1;
        if (img->channels == 1) {
            hcga_image rgb;
            if (hcga_image_alloc(&rgb, img->width, img->height, 3)) {
                hcga_image_free(img);
                snprintf(err, err_len, "%s: out of memory", path);
                return -1;
            }
            for (size_t i = 0; i < (size_t)img->width * img->height; i++)
                rgb.data[3 * i] = rgb.data[3 * i + 1] = rgb.data[3 * i + 2] = img->data[i];
            hcga_image_free(img);
            *img = rgb;
        }
        return 0;
    }
    return hcga_jpeg_read(path, img, err, err_len);
}

/* Transform image i of src into dst[3*H*W]. */
static hcga_result transform_one(hcga_model *m, const image_source *src, int i, float *dst)
{
    hcga_context *ctx = m->ctx;
    hcga_image img = {0};
    int owned = 0;
    if (src->views) {
        const hcga_image_view *v = &src->views[i];
        hcga_result r = check_view(ctx, v, i);
        if (r != HCGA_SUCCESS) return r;
        if (v->stride == 0 || v->stride == (size_t)3 * v->width) {
            /* read only: hcga_transform_test takes the image as const */
            img.data = (uint8_t *)(uintptr_t)v->pixels;
            img.width = v->width;
            img.height = v->height;
            img.channels = 3;
        } else {
            if (hcga_image_alloc(&img, v->width, v->height, 3))
                return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "image %d: out of memory", i);
            owned = 1;
            for (int y = 0; y < v->height; y++)
                memcpy(img.data + (size_t)y * 3 * v->width, v->pixels + (size_t)y * v->stride, (size_t)3 * v->width);
        }
    } else {
        char err[4096];
        if (!src->paths[i]) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "paths[%d] is NULL", i);
        if (read_rgb(src->paths[i], &img, err, sizeof err))
            return hcga_api_fail(ctx, access(src->paths[i], R_OK) ? HCGA_ERROR_IO : HCGA_ERROR_FORMAT, "%s", err);
        owned = 1;
    }
    int rc = hcga_transform_test(&img, &m->aug, dst);
    if (owned) hcga_image_free(&img);
    if (rc) return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "image %d: out of memory resizing it", i);
    return HCGA_SUCCESS;
}

static hcga_result extract(hcga_model *m, const image_source *src, int n, hcga_embeddings *out, int first_row)
{
    hcga_context *ctx = m->ctx;
    const hcga_model_info *in = &m->info;
    if (n < 0) return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_extract: n is %d", n);
    if (n > 0 && !src->views && !src->paths)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_extract: the image list is NULL");
    hcga_result r = hcga_api_check_embeddings(ctx, out, "hcga_extract: out", in->num_parts, in->dim, in->global_dim);
    if (r != HCGA_SUCCESS) return r;
    if (first_row < 0 || first_row > out->n || n > out->n - first_row)
        return hcga_api_fail(ctx, HCGA_ERROR_ARGUMENT, "hcga_extract: rows %d..%d do not fit out (n %d)", first_row,
                             first_row + n - 1, out->n);
    const size_t img = (size_t)3 * in->input_height * in->input_width;
    float *batch = malloc(sizeof(float) * img * (size_t)in->batch);
    if (!batch) return hcga_api_fail(ctx, HCGA_ERROR_MEMORY, "hcga_extract: out of memory for a batch");
    char err[4096];
    for (int b0 = 0; b0 < n && r == HCGA_SUCCESS; b0 += in->batch) {
        int nb = n - b0 < in->batch ? n - b0 : in->batch;
        for (int i = 0; i < nb && r == HCGA_SUCCESS; i++) r = transform_one(m, src, b0 + i, batch + img * (size_t)i);
        if (r != HCGA_SUCCESS) break;
        if (hcga_eval_runner_run(&m->runner, batch, nb, m->params.flip, err, sizeof err))
            r = hcga_api_fail(ctx, HCGA_ERROR_BACKEND, "%s", err);
        else
            store_rows(&m->runner, nb, out, first_row + b0);
    }
    free(batch);
    return r;
}

hcga_result hcga_extract(hcga_model *m, const hcga_image_view *images, int n, hcga_embeddings *out, int first_row)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(m->ctx);
    image_source src = {images, NULL};
    return extract(m, &src, n, out, first_row);
}

hcga_result hcga_extract_files(hcga_model *m, const char *const *paths, int n, hcga_embeddings *out, int first_row)
{
    if (!m) return HCGA_ERROR_ARGUMENT;
    hcga_api_begin(m->ctx);
    image_source src = {NULL, paths};
    return extract(m, &src, n, out, first_row);
}
