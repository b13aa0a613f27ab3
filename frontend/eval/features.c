/*
 * features.c - eval-mode features of a split (the eval graph run over every
 * image, optionally averaged with the mirrored image) and the features files
 * of `hcga test --save-features / --features`.
 */
#include "eval/features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_io.h"
#include "model/safetensors.h"

void hcga_features_free(hcga_features *f)
{
    free(f->fore);
    free(f->part);
    free(f->global);
    free(f->vis);
    free(f->pids);
    free(f->cams);
    memset(f, 0, sizeof *f);
}

int hcga_eval_runner_init(hcga_eval_runner *r, hg_exec *ex, hg_graph *g, int batch, int height, int width,
                          char *err, size_t err_len)
{
    memset(r, 0, sizeof *r);
    r->vf = hg_find(g, "eval.feat_fore");
    r->vp = hg_find(g, "eval.feat_part");
    r->vg = hg_find(g, "eval.feat_global");
    r->va = hg_find(g, "eval.part_argmax");
    if (r->vf < 0 || r->vp < 0 || r->vg < 0 || r->va < 0) {
        snprintf(err, err_len, "the eval graph lacks eval.feat_fore/feat_part/feat_global/part_argmax");
        return -1;
    }
    r->ex = ex;
    r->g = g;
    r->batch = batch;
    r->height = height;
    r->width = width;
    r->d = (int)hg_shape(g, r->vf)[1];
    r->nparts = (int)hg_shape(g, r->vp)[1];
    r->dg = (int)hg_shape(g, r->vg)[1];
    r->ah = hg_shape(g, r->va)[1];
    r->aw = hg_shape(g, r->va)[2];
    const size_t b = (size_t)batch, img = (size_t)3 * height * width;
    r->in = malloc(sizeof(float) * img * b);
    r->bf = malloc(sizeof(float) * b * r->d);
    r->bp = malloc(sizeof(float) * b * r->nparts * r->d);
    r->bg = malloc(sizeof(float) * b * r->dg);
    r->am = malloc(sizeof(int64_t) * b * r->ah * r->aw);
    r->bvis = malloc(sizeof(int64_t) * b * r->nparts);
    r->fore = malloc(sizeof(float) * b * r->d);
    r->part = malloc(sizeof(float) * b * r->nparts * r->d);
    r->global = malloc(sizeof(float) * b * r->dg);
    r->vis = malloc(sizeof(int64_t) * b * r->nparts);
    if (!r->in || !r->bf || !r->bp || !r->bg || !r->am || !r->bvis || !r->fore || !r->part || !r->global ||
        !r->vis) {
        hcga_eval_runner_free(r);
        snprintf(err, err_len, "out of memory for a batch of %d images", batch);
        return -1;
    }
    return 0;
}

void hcga_eval_runner_free(hcga_eval_runner *r)
{
    free(r->in);
    free(r->bf);
    free(r->bp);
    free(r->bg);
    free(r->am);
    free(r->bvis);
    free(r->fore);
    free(r->part);
    free(r->global);
    free(r->vis);
    memset(r, 0, sizeof *r);
}

int hcga_eval_runner_run(hcga_eval_runner *r, const float *images, int n, int flip, char *err, size_t err_len)
{
    const int d = r->d, nparts = r->nparts, dg = r->dg, H = r->height, W = r->width;
    const size_t img = (size_t)3 * H * W;
    memset(r->fore, 0, sizeof(float) * (size_t)n * d);
    memset(r->part, 0, sizeof(float) * (size_t)n * nparts * d);
    memset(r->global, 0, sizeof(float) * (size_t)n * dg);
    memset(r->vis, 0, sizeof(int64_t) * (size_t)n * nparts);
    for (int pass = 0; pass < (flip ? 2 : 1); pass++) {
        /* pad a short batch with copies of its last image */
        for (int i = 0; i < r->batch; i++) {
            const float *src = images + img * (size_t)(i < n ? i : n - 1);
            float *dst = r->in + img * (size_t)i;
            if (!pass) {
                memcpy(dst, src, sizeof(float) * img);
                continue;
            }
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++)
                        dst[((size_t)c * H + y) * W + x] = src[((size_t)c * H + y) * W + (W - 1 - x)];
        }
        if (hg_exec_set_input(r->ex, "input.images", r->in, HCGA_F32) || hg_exec_run(r->ex)) {
            snprintf(err, err_len, "eval forward: %s", hg_exec_error(r->ex));
            return -1;
        }
        if (hg_exec_read(r->ex, r->vf, r->bf, HCGA_F32) || hg_exec_read(r->ex, r->vp, r->bp, HCGA_F32) ||
            hg_exec_read(r->ex, r->vg, r->bg, HCGA_F32) || hg_exec_read(r->ex, r->va, r->am, HCGA_I64)) {
            snprintf(err, err_len, "eval outputs: %s", hg_exec_error(r->ex));
            return -1;
        }
        hcga_model_visible_parts(r->am, r->batch, r->ah, r->aw, nparts + 1, r->bvis);
        const float scale = flip ? 0.5f : 1.0f;
        for (size_t k = 0; k < (size_t)n * d; k++) r->fore[k] += scale * r->bf[k];
        for (size_t k = 0; k < (size_t)n * nparts * d; k++) r->part[k] += scale * r->bp[k];
        for (size_t k = 0; k < (size_t)n * dg; k++) r->global[k] += scale * r->bg[k];
        for (size_t k = 0; k < (size_t)n * nparts; k++) r->vis[k] |= r->bvis[k];
    }
    return 0;
}

int hcga_extract_features(hg_exec *ex, hg_graph *g, int batch, const hcga_split *split,
                          const hcga_aug_cfg *aug, int threads, int flip, hcga_features *out,
                          char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    const int n = split->count;
    hcga_eval_runner r;
    if (hcga_eval_runner_init(&r, ex, g, batch, aug->height, aug->width, err, err_len)) return -1;
    const int d = r.d, nparts = r.nparts, dg = r.dg;
    out->n = n;
    out->d = d;
    out->nparts = nparts;
    out->dg = dg;
    out->fore = calloc((size_t)n * d, sizeof(float));
    out->part = calloc((size_t)n * nparts * d, sizeof(float));
    out->global = calloc((size_t)n * dg, sizeof(float));
    out->vis = calloc((size_t)n * nparts, sizeof(int64_t));
    out->pids = malloc(sizeof(int) * (size_t)n);
    out->cams = malloc(sizeof(int) * (size_t)n);
    hcga_loader *l = hcga_loader_new(split, NULL, n, batch, 0, aug, nparts + 1, NULL, NULL, 0, 0, threads);
    int rc = -1;
    if (!out->fore || !out->part || !out->global || !out->vis || !out->pids || !out->cams || !l) {
        snprintf(err, err_len, "out of memory extracting features of %d images", n);
        goto done;
    }
    int done_n = 0;
    const hcga_batch *b;
    while ((b = hcga_loader_next(l))) {
        if (hcga_eval_runner_run(&r, b->images, b->n, flip, err, err_len)) goto done;
        memcpy(out->fore + (size_t)done_n * d, r.fore, sizeof(float) * (size_t)b->n * d);
        memcpy(out->part + (size_t)done_n * nparts * d, r.part, sizeof(float) * (size_t)b->n * nparts * d);
        memcpy(out->global + (size_t)done_n * dg, r.global, sizeof(float) * (size_t)b->n * dg);
        memcpy(out->vis + (size_t)done_n * nparts, r.vis, sizeof(int64_t) * (size_t)b->n * nparts);
        for (int i = 0; i < b->n; i++) {
            out->pids[done_n + i] = (int)b->labels[i];
            out->cams[done_n + i] = b->cams[i];
        }
        done_n += b->n;
    }
    if (hcga_loader_error(l)) {
        snprintf(err, err_len, "%s", hcga_loader_error(l));
        goto done;
    }
    rc = 0;
done:
    hcga_loader_free(l);
    hcga_eval_runner_free(&r);
    if (rc) hcga_features_free(out);
    return rc;
}

/* ---- features files ------------------------------------------------------ */

static int save_one(st_writer *w, const char *pre, const hcga_features *f)
{
    char name[64];
    int64_t n = f->n;
    int64_t *i64 = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1) * 2);
    if (!i64) return -1;
    for (int i = 0; i < f->n; i++) {
        i64[i] = f->pids[i];
        i64[f->n + i] = f->cams[i];
    }
    int bad = 0;
    snprintf(name, sizeof name, "%s.fore", pre);
    bad |= st_writer_add(w, name, ST_F32, 2, (int64_t[]){n, f->d}, f->fore);
    snprintf(name, sizeof name, "%s.part", pre);
    bad |= st_writer_add(w, name, ST_F32, 3, (int64_t[]){n, f->nparts, f->d}, f->part);
    snprintf(name, sizeof name, "%s.global", pre);
    bad |= st_writer_add(w, name, ST_F32, 2, (int64_t[]){n, f->dg}, f->global);
    snprintf(name, sizeof name, "%s.vis", pre);
    bad |= st_writer_add(w, name, ST_I64, 2, (int64_t[]){n, f->nparts}, f->vis);
    snprintf(name, sizeof name, "%s.pids", pre);
    bad |= st_writer_add(w, name, ST_I64, 1, &n, i64);
    snprintf(name, sizeof name, "%s.cams", pre);
    bad |= st_writer_add(w, name, ST_I64, 1, &n, i64 + f->n);
    free(i64);
    return bad ? -1 : 0;
}

int hcga_features_save(const hcga_features *q, const hcga_features *g, const char *path, char *err,
                       size_t err_len)
{
    st_writer *w = st_writer_new();
    if (!w || save_one(w, "query", q) || save_one(w, "gallery", g)) {
        snprintf(err, err_len, "%s: out of memory", path);
        st_writer_free(w);
        return -1;
    }
    st_writer_meta(w, "format", "hcga-features-1");
    int rc = st_writer_save(w, path, err, err_len);
    st_writer_free(w);
    return rc;
}

static const st_tensor *need(const st_file *f, const char *path, const char *pre, const char *what, int ndim,
                             char *err, size_t err_len)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", pre, what);
    const st_tensor *t = st_find(f, name);
    if (!t) snprintf(err, err_len, "%s: tensor '%s' is missing", path, name);
    else if (t->ndim != ndim) {
        snprintf(err, err_len, "%s: tensor '%s' has %d dims, expected %d", path, name, t->ndim, ndim);
        t = NULL;
    }
    return t;
}

static int load_one(const st_file *f, const char *path, const char *pre, hcga_features *o, char *err,
                    size_t err_len)
{
    memset(o, 0, sizeof *o);
    const st_tensor *fo = need(f, path, pre, "fore", 2, err, err_len);
    const st_tensor *pa = fo ? need(f, path, pre, "part", 3, err, err_len) : NULL;
    const st_tensor *gl = pa ? need(f, path, pre, "global", 2, err, err_len) : NULL;
    const st_tensor *vi = gl ? need(f, path, pre, "vis", 2, err, err_len) : NULL;
    const st_tensor *pi = vi ? need(f, path, pre, "pids", 1, err, err_len) : NULL;
    const st_tensor *ca = pi ? need(f, path, pre, "cams", 1, err, err_len) : NULL;
    if (!ca) return -1;
    int64_t n = fo->shape[0];
    if (pa->shape[0] != n || gl->shape[0] != n || vi->shape[0] != n || pi->shape[0] != n || ca->shape[0] != n ||
        pa->shape[2] != fo->shape[1] || vi->shape[1] != pa->shape[1] || n < 1 || n > (1 << 26)) {
        snprintf(err, err_len, "%s: the %s.* tensors disagree in their sizes", path, pre);
        return -1;
    }
    o->n = (int)n;
    o->d = (int)fo->shape[1];
    o->nparts = (int)pa->shape[1];
    o->dg = (int)gl->shape[1];
    o->fore = malloc(sizeof(float) * fo->numel + 1);
    o->part = malloc(sizeof(float) * pa->numel + 1);
    o->global = malloc(sizeof(float) * gl->numel + 1);
    o->vis = malloc(sizeof(int64_t) * vi->numel + 1);
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)n * 2);
    o->pids = malloc(sizeof(int) * (size_t)n);
    o->cams = malloc(sizeof(int) * (size_t)n);
    if (!o->fore || !o->part || !o->global || !o->vis || !tmp || !o->pids || !o->cams) {
        free(tmp);
        hcga_features_free(o);
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    if (st_to_f32(fo, o->fore) || st_to_f32(pa, o->part) || st_to_f32(gl, o->global) || st_to_i64(vi, o->vis) ||
        st_to_i64(pi, tmp) || st_to_i64(ca, tmp + n)) {
        free(tmp);
        hcga_features_free(o);
        snprintf(err, err_len, "%s: %s.* tensors have unusable dtypes (float features, integer ids)", path, pre);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        o->pids[i] = (int)tmp[i];
        o->cams[i] = (int)tmp[n + i];
    }
    free(tmp);
    return 0;
}

int hcga_features_load(const char *path, hcga_features *q, hcga_features *g, char *err, size_t err_len)
{
    st_file *f = st_load(path, err, err_len);
    if (!f) return -1;
    int rc = load_one(f, path, "query", q, err, err_len);
    if (!rc && (rc = load_one(f, path, "gallery", g, err, err_len)) != 0) hcga_features_free(q);
    st_free(f);
    return rc;
}
