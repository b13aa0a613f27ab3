/*
 * checkpoint.c - training checkpoints: the store's parameters, buffers and
 * Adam state with the reference's names plus metadata (config, epoch,
 * adam_step, seed, num_classes), written atomically by `hcga train` and read
 * back by --resume, `hcga test` and `hcga parse`; and an inference exec bound
 * to the weights of either a checkpoint or a reference state dict.
 */
#include "model/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_io.h"

/* data: doubles when the store is F64 (an f64 run's checkpoint keeps every
 * bit, so runs can be compared exactly), else floats */
static int add_tensor(st_writer *w, const char *name, int ndim, const int64_t *shape, const void *data, int f64,
                      char *err, size_t err_len)
{
    if (st_writer_add(w, name, f64 ? ST_F64 : ST_F32, ndim, shape, data)) {
        snprintf(err, err_len, "checkpoint: duplicate tensor '%s'", name);
        return -1;
    }
    return 0;
}

static int64_t entry_numel(const hg_store_entry *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

int hcga_checkpoint_save(hg_store *s, const hcga_config *cfg, int epoch, int64_t adam_step,
                         uint64_t seed, int num_classes, int n_extra, const char *const *extra,
                         const char *path, char *err, size_t err_len)
{
    st_writer *w = st_writer_new();
    if (!w) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = -1;
    void *buf = NULL;
    const int f64 = hg_store_dtype(s) == HCGA_F64, hdt = f64 ? HCGA_F64 : HCGA_F32;
    const size_t esz = f64 ? sizeof(double) : sizeof(float);
    for (int i = 0; i < hg_store_count(s); i++) {
        hg_store_entry *e = hg_store_at(s, i);
        int64_t n = entry_numel(e);
        void *nb = realloc(buf, esz * (size_t)(n > 0 ? n : 1));
        if (!nb) {
            snprintf(err, err_len, "%s: out of memory", path);
            goto out;
        }
        buf = nb;
        if (hg_store_read(s, e, buf, hdt)) {
            snprintf(err, err_len, "%s: reading '%s' from the backend failed", path, e->name);
            goto out;
        }
        if (add_tensor(w, e->name, e->ndim, e->shape, buf, f64, err, err_len)) goto out;
        const hcga_tensor *st[2] = {&e->m, &e->v};
        const char *pre[2] = {"optimizer.exp_avg.", "optimizer.exp_avg_sq."};
        for (int k = 0; k < 2; k++) {
            if (!st[k]->buf) continue;
            hg_store_entry tmp = *e;
            tmp.t = *st[k];
            if (hg_store_read(s, &tmp, buf, hdt)) {
                snprintf(err, err_len, "%s: reading the optimizer state of '%s' failed", path, e->name);
                goto out;
            }
            char name[300];
            snprintf(name, sizeof name, "%s%s", pre[k], e->name);
            if (add_tensor(w, name, e->ndim, e->shape, buf, f64, err, err_len)) goto out;
        }
    }
    char *yaml = hcga_config_dump_string(cfg);
    char num[64];
    st_writer_meta(w, "format", "hcga-checkpoint-1");
    st_writer_meta(w, "config", yaml ? yaml : "");
    free(yaml);
    snprintf(num, sizeof num, "%d", epoch);
    st_writer_meta(w, "epoch", num);
    snprintf(num, sizeof num, "%lld", (long long)adam_step);
    st_writer_meta(w, "adam_step", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)seed);
    st_writer_meta(w, "seed", num);
    snprintf(num, sizeof num, "%d", num_classes);
    st_writer_meta(w, "num_classes", num);
    for (int i = 0; i < n_extra; i++) st_writer_meta(w, extra[2 * i], extra[2 * i + 1]);
    rc = st_writer_save(w, path, err, err_len);
out:
    free(buf);
    st_writer_free(w);
    return rc;
}

int hcga_is_checkpoint(const st_file *f)
{
    const char *fmt = st_meta(f, "format");
    return fmt && !strcmp(fmt, "hcga-checkpoint-1");
}

hg_exec *hcga_exec_with_weights(const hcga_config *cfg, hg_graph *g, hg_store *s, hcga_be *be,
                                const st_file *wf, const char *path, char *err, size_t err_len)
{
    const int ours = hcga_is_checkpoint(wf);
    /* a state dict is checked against the whole model before binding; a
     * checkpoint is restored into the entries the graph binds */
    if (!ours && hcga_model_load_state(cfg, s, wf, path, 0, err, err_len)) return NULL;
    hg_exec *ex = hg_exec_new(g, s, err, err_len);
    if (ex && ours && hcga_checkpoint_restore(s, be, wf, path, 0, err, err_len)) {
        hg_exec_free(ex);
        return NULL;
    }
    return ex;
}

int hcga_checkpoint_restore(hg_store *s, hcga_be *be, const st_file *f, const char *path, int with_optimizer,
                            char *err, size_t err_len)
{
    for (int i = 0; i < hg_store_count(s); i++) {
        hg_store_entry *e = hg_store_at(s, i);
        int64_t n = entry_numel(e);
        double *buf = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        if (!buf) {
            snprintf(err, err_len, "%s: out of memory", path);
            return -1;
        }
        const char *pre[3] = {"", "optimizer.exp_avg.", "optimizer.exp_avg_sq."};
        hcga_tensor *dst[3] = {&e->t, &e->m, &e->v};
        for (int k = 0; k < (with_optimizer ? 3 : 1); k++) {
            char name[300];
            snprintf(name, sizeof name, "%s%s", pre[k], e->name);
            const st_tensor *t = st_find(f, name);
            if (!t) {
                if (k == 0) {
                    snprintf(err, err_len, "%s: tensor '%s' is missing", path, name);
                    free(buf);
                    return -1;
                }
                continue;
            }
            if (t->ndim != e->ndim || (int64_t)t->numel != n || memcmp(t->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
                snprintf(err, err_len, "%s: tensor '%s' has another shape than the model's", path, name);
                free(buf);
                return -1;
            }
            if (st_to_f64(t, buf)) {
                snprintf(err, err_len, "%s: tensor '%s' is not a float tensor", path, name);
                free(buf);
                return -1;
            }
            if (!dst[k]->buf) {
                hcga_buffer *b;
                if (hcga_be_alloc(be, hcga_dtype_size(e->t.dtype) * (uint64_t)n, &b) != HCGA_OK) {
                    snprintf(err, err_len, "%s: allocating '%s': %s", path, name, hcga_be_error(be));
                    free(buf);
                    return -1;
                }
                *dst[k] = hcga_tensor_make(b, 0, e->t.dtype, e->ndim, e->shape);
            }
            hg_store_entry tmp = *e;
            tmp.t = *dst[k];
            if (hg_store_write(s, &tmp, buf, HCGA_F64)) {
                snprintf(err, err_len, "%s: writing '%s' to the backend failed", path, name);
                free(buf);
                return -1;
            }
        }
        free(buf);
    }
    return 0;
}
