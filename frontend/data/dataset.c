/*
 * dataset.c - dataset reading, augmentation, PK sampling, background loading.
 */
#include "data/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/rng.h"

/* ---- reading -------------------------------------------------------------- */

int hcga_parse_reid_name(const char *name, int *pid, int *cam)
{
    const char *p = name;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000000L) return -1;
        p++;
    }
    if (p[0] != '_' || p[1] != 'c' || p[2] < '0' || p[2] > '9') return -1;
    p += 2;
    long c = 0;
    while (*p >= '0' && *p <= '9') {
        c = c * 10 + (*p - '0');
        if (c > 1000) return -1;
        p++;
    }
    if (c < 1) return -1;
    *pid = (int)(neg ? -v : v);
    *cam = (int)c - 1;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const hcga_item *)a)->name, ((const hcga_item *)b)->name);
}

static int has_jpeg_ext(const char *n)
{
    size_t l = strlen(n);
    return (l > 4 && (strcmp(n + l - 4, ".jpg") == 0 || strcmp(n + l - 4, ".JPG") == 0)) ||
           (l > 5 && strcmp(n + l - 5, ".jpeg") == 0);
}

static void free_split(hcga_split *s)
{
    for (int i = 0; i < s->count; i++) {
        free(s->items[i].path);
        free(s->items[i].name);
    }
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

static int read_split(const char *root, const char *sub, int is_train, hcga_split *s, int *ignored,
                      char *err, size_t err_len)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "%s: cannot open dataset folder: %s", dir, strerror(errno));
        return -1;
    }
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!has_jpeg_ext(e->d_name)) {
            (*ignored)++;
            continue;
        }
        int pid, cam;
        if (hcga_parse_reid_name(e->d_name, &pid, &cam)) {
            snprintf(err, err_len, "%s/%s: file name does not follow PPPP_cC... (identity_camera)",
                     dir, e->d_name);
            closedir(d);
            return -1;
        }
        if (is_train && pid == -1) continue; /* junk: the reference drops it */
        if (s->count == cap) {
            cap = cap ? cap * 2 : 256;
            hcga_item *n = realloc(s->items, sizeof *n * (size_t)cap);
            if (!n) {
                closedir(d);
                snprintf(err, err_len, "%s: out of memory", dir);
                return -1;
            }
            s->items = n;
        }
        hcga_item *it = &s->items[s->count++];
        size_t nl = strlen(e->d_name);
        it->path = malloc(strlen(dir) + nl + 2);
        it->name = strdup(e->d_name);
        if (!it->path || !it->name) {
            closedir(d);
            snprintf(err, err_len, "%s: out of memory", dir);
            return -1;
        }
        sprintf(it->path, "%s/%s", dir, e->d_name);
        char *dot = strrchr(it->name, '.');
        if (dot) *dot = '\0';
        it->pid = pid;
        it->label = pid;
        it->cam = cam;
    }
    closedir(d);
    if (s->count == 0) {
        snprintf(err, err_len, "%s: no JPEG images", dir);
        return -1;
    }
    qsort(s->items, (size_t)s->count, sizeof *s->items, name_cmp);
    return 0;
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int hcga_dataset_open(const char *root, hcga_dataset *ds, char *err, size_t err_len)
{
    memset(ds, 0, sizeof *ds);
    ds->root = strdup(root);
    if (!ds->root) return -1;
    if (read_split(root, "bounding_box_train", 1, &ds->train, &ds->ignored_files, err, err_len) ||
        read_split(root, "query", 0, &ds->query, &ds->ignored_files, err, err_len) ||
        read_split(root, "bounding_box_test", 0, &ds->gallery, &ds->ignored_files, err, err_len)) {
        hcga_dataset_free(ds);
        return -1;
    }
    /* relabel training pids 0..n-1 in increasing pid order */
    int *pids = malloc(sizeof *pids * (size_t)ds->train.count);
    if (!pids) {
        hcga_dataset_free(ds);
        snprintf(err, err_len, "%s: out of memory", root);
        return -1;
    }
    for (int i = 0; i < ds->train.count; i++) pids[i] = ds->train.items[i].pid;
    qsort(pids, (size_t)ds->train.count, sizeof *pids, int_cmp);
    int n = 0;
    for (int i = 0; i < ds->train.count; i++)
        if (i == 0 || pids[i] != pids[i - 1]) pids[n++] = pids[i];
    ds->num_train_ids = n;
    ds->train_pid_of_label = pids;
    for (int i = 0; i < ds->train.count; i++) {
        int *f = bsearch(&ds->train.items[i].pid, pids, (size_t)n, sizeof *pids, int_cmp);
        ds->train.items[i].label = (int)(f - pids);
    }
    return 0;
}

void hcga_dataset_free(hcga_dataset *ds)
{
    free_split(&ds->train);
    free_split(&ds->query);
    free_split(&ds->gallery);
    free(ds->train_pid_of_label);
    free(ds->root);
    memset(ds, 0, sizeof *ds);
}

/* ---- transforms ----------------------------------------------------------- */

/* Separable triangle-filter weights for one axis (PIL's BILINEAR). */
typedef struct axis_w {
    int *start, *len;
    double *w; /* len entries per output at stride ksize */
    int ksize;
} axis_w;

static int axis_weights(int in, int out, axis_w *a)
{
    double scale = (double)in / out;
    double fs = scale > 1.0 ? scale : 1.0;
    double support = fs; /* triangle support 1, widened when shrinking */
    a->ksize = (int)ceil(support) * 2 + 1;
    a->start = malloc(sizeof(int) * (size_t)out);
    a->len = malloc(sizeof(int) * (size_t)out);
    a->w = calloc((size_t)out * (size_t)a->ksize, sizeof(double));
    if (!a->start || !a->len || !a->w) return -1;
    for (int x = 0; x < out; x++) {
        double center = (x + 0.5) * scale;
        int lo = (int)floor(center - support + 0.5);
        int hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > a->ksize) hi = lo + a->ksize;
        double tot = 0;
        for (int i = lo; i < hi; i++) {
            double t = fabs((i + 0.5 - center) / fs);
            double w = t < 1.0 ? 1.0 - t : 0.0;
            a->w[(size_t)x * a->ksize + (i - lo)] = w;
            tot += w;
        }
        if (tot > 0)
            for (int i = lo; i < hi; i++) a->w[(size_t)x * a->ksize + (i - lo)] /= tot;
        a->start[x] = lo;
        a->len[x] = hi - lo;
    }
    return 0;
}

static void axis_free(axis_w *a)
{
    free(a->start);
    free(a->len);
    free(a->w);
}

int hcga_resize_u8(const hcga_image *src, int out_w, int out_h, hcga_image *dst)
{
    if (hcga_image_alloc(dst, out_w, out_h, src->channels)) return -1;
    const int C = src->channels;
    if (src->width == out_w && src->height == out_h) {
        memcpy(dst->data, src->data, (size_t)out_w * out_h * C);
        return 0;
    }
    axis_w ax = {0}, ay = {0};
    double *tmp = malloc(sizeof(double) * (size_t)out_w * src->height * C);
    if (!tmp || axis_weights(src->width, out_w, &ax) || axis_weights(src->height, out_h, &ay)) {
        free(tmp);
        axis_free(&ax);
        axis_free(&ay);
        hcga_image_free(dst);
        return -1;
    }
    for (int y = 0; y < src->height; y++)
        for (int x = 0; x < out_w; x++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int k = 0; k < ax.len[x]; k++)
                    s += ax.w[(size_t)x * ax.ksize + k] *
                         src->data[((size_t)y * src->width + ax.start[x] + k) * C + c];
                tmp[((size_t)y * out_w + x) * C + c] = s;
            }
    for (int y = 0; y < out_h; y++)
        for (int x = 0; x < out_w; x++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int k = 0; k < ay.len[y]; k++)
                    s += ay.w[(size_t)y * ay.ksize + k] * tmp[((size_t)(ay.start[y] + k) * out_w + x) * C + c];
                long v = lround(s);
                dst->data[((size_t)y * out_w + x) * C + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return 0;
}

static void to_chw_normalised(const hcga_image *img, const hcga_aug_cfg *cfg, float *out)
{
    const int H = img->height, W = img->width;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = img->data[((size_t)y * W + x) * 3 + c] / 255.0f;
                out[((size_t)c * H + y) * W + x] = (v - cfg->mean[c]) / cfg->std[c];
            }
}

int hcga_transform_test(const hcga_image *img, const hcga_aug_cfg *cfg, float *out)
{
    hcga_image r;
    if (hcga_resize_u8(img, cfg->width, cfg->height, &r)) return -1;
    to_chw_normalised(&r, cfg, out);
    hcga_image_free(&r);
    return 0;
}

void hcga_band_labels(int label_h, int label_w, int num_parts, int64_t *labels)
{
    int bands = num_parts - 1 > 0 ? num_parts - 1 : 1;
    for (int y = 0; y < label_h; y++)
        for (int x = 0; x < label_w; x++) labels[(size_t)y * label_w + x] = 1 + (int64_t)y * bands / label_h;
}

int hcga_transform_train(const hcga_image *img, const hcga_aug_cfg *cfg, uint64_t seed,
                         uint64_t key, float *out, int64_t *labels)
{
    const int H = cfg->height, W = cfg->width, P = cfg->padding;
    const int LH = cfg->label_h, LW = cfg->label_w;
    hcga_rng r;
    hcga_rng_seed(&r, seed, key);
    hcga_image rs;
    if (hcga_resize_u8(img, W, H, &rs)) return -1;
    /* horizontal flip, image and label map */
    if (hcga_rng_uniform(&r) < cfg->flip_p) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W / 2; x++)
                for (int c = 0; c < 3; c++) {
                    uint8_t *a = &rs.data[((size_t)y * W + x) * 3 + c];
                    uint8_t *b = &rs.data[((size_t)y * W + (W - 1 - x)) * 3 + c];
                    uint8_t t = *a;
                    *a = *b;
                    *b = t;
                }
        if (labels)
            for (int y = 0; y < LH; y++)
                for (int x = 0; x < LW / 2; x++) {
                    int64_t *a = &labels[(size_t)y * LW + x], *b = &labels[(size_t)y * LW + (LW - 1 - x)];
                    int64_t t = *a;
                    *a = *b;
                    *b = t;
                }
    }
    /* zero padding + random crop of the image only */
    int top = P > 0 ? (int)hcga_rng_below(&r, (uint64_t)(2 * P + 1)) : 0;
    int left = P > 0 ? (int)hcga_rng_below(&r, (uint64_t)(2 * P + 1)) : 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int sy = y + top - P, sx = x + left - P;
                float v = 0.0f;
                if (sy >= 0 && sy < H && sx >= 0 && sx < W) v = rs.data[((size_t)sy * W + sx) * 3 + c] / 255.0f;
                out[((size_t)c * H + y) * W + x] = (v - cfg->mean[c]) / cfg->std[c];
            }
    hcga_image_free(&rs);
    /* random erasing with the image's per-channel mean */
    if (hcga_rng_uniform(&r) < cfg->erase_p) {
        for (int attempt = 0; attempt < 100; attempt++) {
            double area = (double)H * W;
            double target = hcga_rng_range(&r, 0.02, 0.4) * area;
            double aspect = hcga_rng_range(&r, 0.3, 1.0 / 0.3);
            int h = (int)lround(sqrt(target * aspect)), w = (int)lround(sqrt(target / aspect));
            if (w >= W || h >= H || w < 1 || h < 1) continue;
            int y1 = (int)hcga_rng_below(&r, (uint64_t)(H - h + 1));
            int x1 = (int)hcga_rng_below(&r, (uint64_t)(W - w + 1));
            for (int c = 0; c < 3; c++) {
                double m = 0;
                float *plane = out + (size_t)c * H * W;
                for (size_t i = 0; i < (size_t)H * W; i++) m += plane[i];
                float mf = (float)(m / ((double)H * W));
                for (int y = y1; y < y1 + h; y++)
                    for (int x = x1; x < x1 + w; x++) plane[(size_t)y * W + x] = mf;
            }
            if (labels) {
                int ly0 = y1 * LH / H, ly1 = ((y1 + h) * LH + H - 1) / H;
                int lx0 = x1 * LW / W, lx1 = ((x1 + w) * LW + W - 1) / W;
                for (int y = ly0; y < ly1 && y < LH; y++)
                    for (int x = lx0; x < lx1 && x < LW; x++) labels[(size_t)y * LW + x] = 0;
            }
            break;
        }
    }
    return 0;
}

/* ---- PK sampler ------------------------------------------------------------ */

static void shuffle_ints(int *a, int n, hcga_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)hcga_rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

int hcga_pk_sample(const hcga_split *train, int num_ids, int P, int K, uint64_t seed, int epoch,
                   int **order, int *count)
{
    *order = NULL;
    *count = 0;
    if (P < 1 || K < 1 || num_ids < 1) return -1;
    hcga_rng r;
    hcga_rng_seed(&r, seed ^ 0x5a3b1e5ull, (uint64_t)epoch);
    int *cnt = calloc((size_t)num_ids, sizeof *cnt);
    int **chunks = calloc((size_t)num_ids, sizeof *chunks); /* per id: its chunk list, K each */
    int *nchunks = calloc((size_t)num_ids, sizeof *nchunks), *next = calloc((size_t)num_ids, sizeof *next);
    int *avail = malloc(sizeof *avail * (size_t)num_ids);
    int rc = -1;
    if (!cnt || !chunks || !nchunks || !next || !avail) goto out;
    for (int i = 0; i < train->count; i++) cnt[train->items[i].label]++;
    for (int id = 0; id < num_ids; id++) {
        int n = cnt[id];
        if (n == 0) continue;
        int m = n < K ? K : n;
        int *idx = malloc(sizeof *idx * (size_t)m);
        if (!idx) goto out;
        int k = 0;
        for (int i = 0; i < train->count; i++)
            if (train->items[i].label == id) idx[k++] = i;
        if (n < K) {
            for (int j = 0; j < K; j++) idx[j] = idx[hcga_rng_below(&r, (uint64_t)n)];
        } else {
            shuffle_ints(idx, n, &r);
        }
        chunks[id] = idx;
        nchunks[id] = m / K; /* the incomplete tail chunk is dropped */
    }
    int navail = 0;
    for (int id = 0; id < num_ids; id++)
        if (nchunks[id] > 0) avail[navail++] = id;
    int total = 0;
    for (int id = 0; id < num_ids; id++) total += nchunks[id] * K;
    int *out = malloc(sizeof *out * (size_t)(total > 0 ? total : 1));
    if (!out) goto out;
    int n = 0;
    while (navail >= P) {
        /* choose P distinct identities among the available ones */
        for (int j = 0; j < P; j++) {
            int pick = j + (int)hcga_rng_below(&r, (uint64_t)(navail - j));
            int t = avail[j];
            avail[j] = avail[pick];
            avail[pick] = t;
        }
        for (int j = 0; j < P; j++) {
            int id = avail[j];
            memcpy(out + n, chunks[id] + (size_t)next[id] * K, sizeof(int) * (size_t)K);
            n += K;
            next[id]++;
        }
        /* drop exhausted identities, keeping the order of the rest */
        int w = 0;
        for (int j = 0; j < navail; j++)
            if (next[avail[j]] < nchunks[avail[j]]) avail[w++] = avail[j];
        navail = w;
    }
    *order = out;
    *count = n;
    rc = 0;
out:
    if (chunks)
        for (int id = 0; id < num_ids; id++) free(chunks[id]);
    free(chunks);
    free(cnt);
    free(nchunks);
    free(next);
    free(avail);
    return rc;
}

/* ---- background loader ---------------------------------------------------- */

#define LOADER_DEPTH 3

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    int state, batch_idx, failed;
    char err[4800];
    hcga_batch b;
    int *index;
} slot;

struct hcga_loader {
    const hcga_split *split;
    int *order;
    int count, batch, train, num_parts, nbatches;
    int shard, nshards; /* this loader yields slice `shard` of nshards of every batch */
    hcga_aug_cfg cfg;
    hcga_label_fn label_fn;
    void *label_ctx;
    uint64_t seed;
    int epoch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int next_fill, next_consume, last_slot, stop;
    slot slots[LOADER_DEPTH];
    pthread_t *threads;
    int nthreads;
    double wait_s;
    char err[4800];
    int has_err;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the batch slots, the order and the loader itself */
static void free_buffers(hcga_loader *l)
{
    for (int k = 0; k < LOADER_DEPTH; k++) {
        free(l->slots[k].b.images);
        free(l->slots[k].b.labels);
        free(l->slots[k].b.cams);
        free(l->slots[k].b.parsing);
        free(l->slots[k].index);
    }
    free(l->order);
    free(l);
}

static void fill_batch(hcga_loader *l, slot *s, int b)
{
    const int H = l->cfg.height, W = l->cfg.width, LH = l->cfg.label_h, LW = l->cfg.label_w;
    int first = b * l->batch;
    int whole = l->count - first < l->batch ? l->count - first : l->batch;
    /* this shard's contiguous slice of the batch; positions (and so the
     * augmentation keys) stay those of the whole batch */
    first += (int)((int64_t)whole * l->shard / l->nshards);
    int n = (int)((int64_t)whole * (l->shard + 1) / l->nshards) - (int)((int64_t)whole * l->shard / l->nshards);
    s->b.n = n;
    s->failed = 0;
    for (int i = 0; i < n; i++) {
        int item = l->order[first + i];
        const hcga_item *it = &l->split->items[item];
        s->index[i] = item;
        s->b.labels[i] = it->label;
        s->b.cams[i] = it->cam;
        hcga_image img;
        if (hcga_jpeg_read(it->path, &img, s->err, sizeof s->err)) {
            s->failed = 1;
            return;
        }
        float *dst = s->b.images + (size_t)i * 3 * H * W;
        int rc;
        if (l->train) {
            int64_t *lab = s->b.parsing + (size_t)i * LH * LW;
            if (l->label_fn) {
                if (l->label_fn(l->label_ctx, item, lab, s->err, sizeof s->err)) {
                    hcga_image_free(&img);
                    s->failed = 1;
                    return;
                }
            } else {
                hcga_band_labels(LH, LW, l->num_parts, lab);
            }
            uint64_t key = ((uint64_t)l->epoch << 40) ^ (uint64_t)(first + i);
            rc = hcga_transform_train(&img, &l->cfg, l->seed, key, dst, lab);
        } else {
            rc = hcga_transform_test(&img, &l->cfg, dst);
        }
        hcga_image_free(&img);
        if (rc) {
            snprintf(s->err, sizeof s->err, "%s: out of memory while transforming", it->path);
            s->failed = 1;
            return;
        }
    }
}

static void *loader_worker(void *arg)
{
    hcga_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_fill < l->nbatches &&
               (l->next_fill >= l->next_consume + LOADER_DEPTH ||
                l->slots[l->next_fill % LOADER_DEPTH].state != SLOT_FREE))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop || l->next_fill >= l->nbatches) break;
        int b = l->next_fill++;
        slot *s = &l->slots[b % LOADER_DEPTH];
        s->state = SLOT_FILLING;
        s->batch_idx = b;
        pthread_mutex_unlock(&l->mu);
        fill_batch(l, s, b);
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

hcga_loader *hcga_loader_new(const hcga_split *split, const int *order, int count, int batch,
                             int train, const hcga_aug_cfg *cfg, int num_parts,
                             hcga_label_fn label_fn, void *label_ctx, uint64_t seed, int epoch,
                             int threads)
{
    return hcga_loader_new_shard(split, order, count, batch, train, cfg, num_parts, label_fn, label_ctx, seed,
                                 epoch, threads, 0, 1);
}

hcga_loader *hcga_loader_new_shard(const hcga_split *split, const int *order, int count, int batch,
                                   int train, const hcga_aug_cfg *cfg, int num_parts,
                                   hcga_label_fn label_fn, void *label_ctx, uint64_t seed, int epoch,
                                   int threads, int shard, int nshards)
{
    if (batch < 1 || count < 0 || nshards < 1 || shard < 0 || shard >= nshards) return NULL;
    hcga_loader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->shard = shard;
    l->nshards = nshards;
    l->split = split;
    l->count = count;
    l->batch = batch;
    l->train = train;
    l->cfg = *cfg;
    l->num_parts = num_parts;
    l->label_fn = label_fn;
    l->label_ctx = label_ctx;
    l->seed = seed;
    l->epoch = epoch;
    l->nbatches = (count + batch - 1) / batch;
    l->last_slot = -1;
    l->order = malloc(sizeof(int) * (size_t)(count > 0 ? count : 1));
    if (!l->order) goto fail;
    for (int i = 0; i < count; i++) l->order[i] = order ? order[i] : i;
    const size_t img = (size_t)3 * cfg->height * cfg->width, lab = (size_t)cfg->label_h * cfg->label_w;
    for (int k = 0; k < LOADER_DEPTH; k++) {
        slot *s = &l->slots[k];
        s->b.images = malloc(sizeof(float) * img * (size_t)batch);
        s->b.labels = malloc(sizeof(int64_t) * (size_t)batch);
        s->b.cams = malloc(sizeof(int) * (size_t)batch);
        s->index = malloc(sizeof(int) * (size_t)batch);
        s->b.index = s->index;
        if (train) s->b.parsing = malloc(sizeof(int64_t) * lab * (size_t)batch);
        if (!s->b.images || !s->b.labels || !s->b.cams || !s->index || (train && !s->b.parsing)) goto fail;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->nthreads = threads < 1 ? 1 : threads;
    l->threads = calloc((size_t)l->nthreads, sizeof *l->threads);
    if (!l->threads) goto fail_sync;
    for (int t = 0; t < l->nthreads; t++) {
        if (pthread_create(&l->threads[t], NULL, loader_worker, l) != 0) {
            l->nthreads = t;
            hcga_loader_free(l);
            return NULL;
        }
    }
    return l;
fail_sync:
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
fail:
    free_buffers(l);
    return NULL;
}

const hcga_batch *hcga_loader_next(hcga_loader *l)
{
    double t0 = now_s();
    pthread_mutex_lock(&l->mu);
    if (l->last_slot >= 0) {
        l->slots[l->last_slot].state = SLOT_FREE;
        l->last_slot = -1;
        pthread_cond_broadcast(&l->cv);
    }
    if (l->has_err || l->next_consume >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int b = l->next_consume;
    slot *s = &l->slots[b % LOADER_DEPTH];
    while (!(s->state == SLOT_READY && s->batch_idx == b)) pthread_cond_wait(&l->cv, &l->mu);
    l->next_consume++;
    l->last_slot = b % LOADER_DEPTH;
    if (s->failed) {
        snprintf(l->err, sizeof l->err, "%s", s->err);
        l->has_err = 1;
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    pthread_mutex_unlock(&l->mu);
    l->wait_s += now_s() - t0;
    return &s->b;
}

const char *hcga_loader_error(const hcga_loader *l)
{
    return l->has_err ? l->err : NULL;
}

double hcga_loader_wait_seconds(const hcga_loader *l)
{
    return l->wait_s;
}

void hcga_loader_free(hcga_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nthreads; t++) pthread_join(l->threads[t], NULL);
    free(l->threads);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free_buffers(l);
}

/* ---- augmentation settings from the config -------------------------------- */

hcga_aug_cfg hcga_aug_from_config(const hcga_config *cfg, int train)
{
    hcga_aug_cfg a;
    const char *size = train ? "INPUT.SIZE_TRAIN" : "INPUT.SIZE_TEST";
    a.height = (int)hcga_cfg_list_int(cfg, size, 0);
    a.width = (int)hcga_cfg_list_int(cfg, size, 1);
    a.label_h = a.height / 4;
    a.label_w = a.width / 4;
    a.flip_p = hcga_cfg_float(cfg, "INPUT.PROB");
    a.erase_p = hcga_cfg_float(cfg, "INPUT.RE_PROB");
    a.padding = (int)hcga_cfg_int(cfg, "INPUT.PADDING");
    for (int c = 0; c < 3; c++) {
        a.mean[c] = (float)hcga_cfg_list_float(cfg, "INPUT.PIXEL_MEAN", c);
        a.std[c] = (float)hcga_cfg_list_float(cfg, "INPUT.PIXEL_STD", c);
    }
    return a;
}
