/*
 * model_io.c - checkpoints (state dicts with the reference's names) in and
 * out of an hg_store, and host-side helpers for model outputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/model_io.h"

int hcga_model_ignored_name(const char *name)
{
    static const char *const prefixes[] = {"base.red1.", "base.red2.", "base.spatial_attn1.",
                                           "base.thresh."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    const char *suf = ".num_batches_tracked";
    size_t a = strlen(name), b = strlen(suf);
    return (a >= b && !strcmp(name + a - b, suf)) || !strcmp(name, "num_batches_tracked");
}

int hcga_model_num_classes(const st_file *f, const char *what, char *err, size_t err_len)
{
    const st_tensor *t = st_find(f, "classifier_global.weight");
    if (!t) {
        snprintf(err, err_len, "%s: no tensor classifier_global.weight (needed for the number of "
                               "identities)",
                 what);
        return -1;
    }
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > (1 << 30)) {
        snprintf(err, err_len, "%s: classifier_global.weight has %d dims, expected [classes, features]",
                 what, t->ndim);
        return -1;
    }
    return (int)t->shape[0];
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* append NAME to a ", "-separated list, at most `max` names then "..." */
static void list_add(char *buf, size_t len, int *count, const char *name)
{
    const int max = 4;
    size_t o = strlen(buf);
    if (*count < max)
        snprintf(buf + o, len - o, "%s%s", *count ? ", " : "", name);
    else if (*count == max)
        snprintf(buf + o, len - o, ", ...");
    (*count)++;
}

static int is_classifier(const char *name) { return !strncmp(name, "classifier_", 11); }

static int is_float(st_dtype d) { return d == ST_F32 || d == ST_F64 || d == ST_F16 || d == ST_BF16; }

int hcga_model_load_state(const hcga_config *cfg, hg_store *s, const st_file *f, const char *what,
                          unsigned flags, char *err, size_t err_len)
{
    int ncls = 1;
    if (!(flags & HCGA_LOAD_SKIP_CLASSIFIERS)) {
        ncls = hcga_model_num_classes(f, what, err, err_len);
        if (ncls < 0) return -1;
    }
    int np = 0;
    hcga_model_param *p = hcga_model_param_list(cfg, ncls, &np, err, err_len);
    if (!p) return -1;

    char missing[512] = "", unexpected[512] = "";
    int n_missing = 0, n_unexpected = 0, rc = -1;
    double *buf = NULL;
    size_t buf_cap = 0;

    /* every file tensor must be known */
    for (int i = 0; i < f->count; i++) {
        const char *name = f->tensors[i].name;
        if (hcga_model_ignored_name(name)) continue;
        if ((flags & HCGA_LOAD_SKIP_CLASSIFIERS) && is_classifier(name)) continue;
        int found = 0;
        for (int j = 0; j < np && !found; j++) found = !strcmp(p[j].name, name);
        if (!found) list_add(unexpected, sizeof unexpected, &n_unexpected, name);
    }
    for (int j = 0; j < np; j++) {
        if ((flags & HCGA_LOAD_SKIP_CLASSIFIERS) && is_classifier(p[j].name)) continue;
        if (!st_find(f, p[j].name)) list_add(missing, sizeof missing, &n_missing, p[j].name);
    }
    if (n_missing || n_unexpected) {
        char a[48] = "", b[48] = "";
        if (n_missing) snprintf(a, sizeof a, "%d missing: ", n_missing);
        if (n_unexpected) snprintf(b, sizeof b, "%d unexpected: ", n_unexpected);
        snprintf(err, err_len, "%s: not a state dict of this model for the config (%s%s%s%s%s)",
                 what, a, missing, n_missing && n_unexpected ? "; " : "", b, unexpected);
        goto out;
    }

    for (int j = 0; j < np; j++) {
        const hcga_model_param *e = &p[j];
        if ((flags & HCGA_LOAD_SKIP_CLASSIFIERS) && is_classifier(e->name)) continue;
        const st_tensor *t = st_find(f, e->name);
        int same = (t->ndim == e->ndim);
        for (int d = 0; same && d < e->ndim; d++) same = (t->shape[d] == e->shape[d]);
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, e->ndim, e->shape);
            snprintf(err, err_len, "%s: %s: shape %s in the file, the model has %s", what, e->name,
                     a, b);
            goto out;
        }
        if (!is_float(t->dtype)) {
            snprintf(err, err_len, "%s: %s: not a floating-point tensor", what, e->name);
            goto out;
        }
        if (t->numel > buf_cap) {
            free(buf);
            buf_cap = t->numel;
            buf = malloc(buf_cap * sizeof *buf);
            if (!buf) {
                snprintf(err, err_len, "%s: out of memory reading %s", what, e->name);
                goto out;
            }
        }
        if (st_to_f64(t, buf)) {
            snprintf(err, err_len, "%s: %s: cannot convert its dtype", what, e->name);
            goto out;
        }
        hg_store_entry *se = hg_store_add(s, e->name, e->ndim, e->shape, e->flags, err, err_len);
        if (!se) goto out;
        if (hg_store_write(s, se, buf, HCGA_F64)) {
            snprintf(err, err_len, "%s: could not write %s to the backend", what, e->name);
            goto out;
        }
    }
    rc = 0;
out:
    free(buf);
    free(p);
    return rc;
}

int hcga_model_load_file(const hcga_config *cfg, hg_store *s, const char *path, unsigned flags,
                         char *err, size_t err_len)
{
    st_file *f = st_load(path, err, err_len);
    if (!f) return -1;
    int rc = hcga_model_load_state(cfg, s, f, path, flags, err, err_len);
    st_free(f);
    return rc;
}

int hcga_model_load_backbone(const hcga_config *cfg, hg_store *s, const char *path, int *loaded, int *part_head,
                             char *err, size_t err_len)
{
    if (loaded) *loaded = 0;
    if (part_head) *part_head = 0;
    st_file *f = st_load(path, err, err_len);
    if (!f) return -1;
    int np = 0, count = 0, rc = -1;
    double *buf = NULL;
    hcga_model_param *p = hcga_model_param_list(cfg, 1, &np, err, err_len);
    if (!p) goto out;
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        char name[sizeof p[0].name + 8];
        snprintf(name, sizeof name, "base.%s", t->name);
        const hcga_model_param *e = NULL;
        for (int j = 0; j < np && !e; j++)
            if (!strcmp(p[j].name, name)) e = &p[j];
        if (!e) continue;
        int same = (t->ndim == e->ndim);
        for (int d = 0; same && d < e->ndim; d++) same = (t->shape[d] == e->shape[d]);
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, e->ndim, e->shape);
            snprintf(err, err_len, "%s: %s: shape %s in the file, the model's %s has %s", path,
                     t->name, a, e->name, b);
            goto out;
        }
        if (!is_float(t->dtype)) {
            snprintf(err, err_len, "%s: %s: not a floating-point tensor", path, t->name);
            goto out;
        }
        double *nb = realloc(buf, (size_t)(t->numel ? t->numel : 1) * sizeof *nb);
        if (!nb) {
            snprintf(err, err_len, "%s: out of memory reading %s", path, t->name);
            goto out;
        }
        buf = nb;
        if (st_to_f64(t, buf)) {
            snprintf(err, err_len, "%s: %s: cannot convert its dtype", path, t->name);
            goto out;
        }
        hg_store_entry *se = hg_store_add(s, e->name, e->ndim, e->shape, e->flags, err, err_len);
        if (!se) goto out;
        if (hg_store_write(s, se, buf, HCGA_F64)) {
            snprintf(err, err_len, "%s: could not write %s to the backend", path, e->name);
            goto out;
        }
        count++;
        if (part_head && !strncmp(t->name, "part_cls_layer.", 15)) *part_head = 1;
    }
    if (!count) {
        snprintf(err, err_len, "%s: no tensor matches the HRNet backbone (expected names such as "
                               "conv1.weight, layer1.0.conv1.weight)",
                 path);
        goto out;
    }
    if (loaded) *loaded = count;
    rc = 0;
out:
    free(buf);
    free(p);
    st_free(f);
    return rc;
}

int hcga_model_save_backbone(const st_file *ck, const char *what, const char *path, int n_meta,
                             const char *const *meta, int *saved, char *err, size_t err_len)
{
    if (saved) *saved = 0;
    st_writer *w = st_writer_new();
    if (!w) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = -1, count = 0;
    float *buf = NULL;
    for (int i = 0; i < ck->count; i++) {
        const st_tensor *t = &ck->tensors[i];
        if (strncmp(t->name, "base.", 5) || !is_float(t->dtype)) continue;
        float *b = realloc(buf, (size_t)(t->numel ? t->numel : 1) * sizeof *b);
        if (!b) {
            snprintf(err, err_len, "%s: out of memory reading %s", what, t->name);
            goto out;
        }
        buf = b;
        if (st_to_f32(t, buf)) {
            snprintf(err, err_len, "%s: %s: cannot convert its dtype", what, t->name);
            goto out;
        }
        if (st_writer_add(w, t->name + 5, ST_F32, t->ndim, t->shape, buf)) {
            snprintf(err, err_len, "%s: duplicate tensor %s", what, t->name);
            goto out;
        }
        count++;
    }
    if (!count) {
        snprintf(err, err_len, "%s: no backbone tensors (base.*) to save", what);
        goto out;
    }
    for (int i = 0; i + 1 < 2 * n_meta; i += 2) st_writer_meta(w, meta[i], meta[i + 1]);
    rc = st_writer_save(w, path, err, err_len);
    if (!rc && saved) *saved = count;
out:
    free(buf);
    st_writer_free(w);
    return rc;
}

int hcga_model_save_file(hg_graph *g, hg_store *s, const char *path, int n_meta,
                         const char *const *meta, char *err, size_t err_len)
{
    int np = 0;
    const hcga_model_param *p = hcga_model_graph_params(g, &np);
    if (!p) {
        snprintf(err, err_len, "%s: the graph was not built by hcga_model_build", path);
        return -1;
    }
    st_writer *w = st_writer_new();
    if (!w) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = -1;
    float *buf = NULL;
    for (int j = 0; j < np; j++) {
        const hcga_model_param *e = &p[j];
        hg_store_entry *se = hg_store_get(s, e->name);
        if (!se) {
            snprintf(err, err_len, "%s: parameter %s is not in the store", path, e->name);
            goto out;
        }
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        float *b = realloc(buf, (size_t)(numel > 0 ? numel : 1) * sizeof *b);
        if (!b) {
            snprintf(err, err_len, "%s: out of memory", path);
            goto out;
        }
        buf = b;
        if (hg_store_read(s, se, buf, HCGA_F32)) {
            snprintf(err, err_len, "%s: could not read %s from the backend", path, e->name);
            goto out;
        }
        if (st_writer_add(w, e->name, ST_F32, e->ndim, e->shape, buf)) {
            snprintf(err, err_len, "%s: duplicate tensor %s", path, e->name);
            goto out;
        }
    }
    for (int i = 0; i + 1 < 2 * n_meta; i += 2) st_writer_meta(w, meta[i], meta[i + 1]);
    rc = st_writer_save(w, path, err, err_len);
out:
    free(buf);
    st_writer_free(w);
    return rc;
}

void hcga_model_visible_parts(const int64_t *argmax, int64_t n, int64_t h, int64_t w, int k,
                              int64_t *visible)
{
    for (int64_t i = 0; i < n * (k - 1); i++) visible[i] = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t *a = argmax + i * h * w;
        for (int64_t j = 0; j < h * w; j++)
            if (a[j] >= 1 && a[j] < k) visible[i * (k - 1) + a[j] - 1] = 1;
    }
}

/* ---- graph values -------------------------------------------------------- */

int64_t hcga_val_numel(const hg_graph *g, hg_val v)
{
    int64_t n = 1;
    const int64_t *s = hg_shape(g, v);
    for (int i = 0; i < hg_ndim(g, v); i++) n *= s[i];
    return n;
}

int hcga_write_value(hg_exec *ex, const hg_graph *g, hg_val v, const char *name, st_writer *w,
                     char *err, size_t err_len)
{
    int64_t n = hcga_val_numel(g, v);
    int is_index = (hg_val_dtype(g, v) == HCGA_I64 || hg_val_dtype(g, v) == HCGA_I32);
    size_t esz = is_index ? sizeof(int64_t) : sizeof(float);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * esz);
    if (!buf) {
        snprintf(err, err_len, "out of memory reading %s", name);
        return -1;
    }
    if (hg_exec_read(ex, v, buf, is_index ? HCGA_I64 : HCGA_F32)) {
        snprintf(err, err_len, "reading %s: %s", name, hg_exec_error(ex));
        free(buf);
        return -1;
    }
    int rc = st_writer_add(w, name, is_index ? ST_I64 : ST_F32, hg_ndim(g, v), hg_shape(g, v), buf);
    free(buf);
    if (rc) {
        snprintf(err, err_len, "duplicate output tensor %s", name);
        return -1;
    }
    return 0;
}
