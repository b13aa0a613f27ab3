/*
 * coparse.c - human co-parsing: per-identity pseudo part labels (HCGA.md
 * section 5) from the DFC network (the paper's) or ISP's k-means.
 */
#include "train/coparse.h"

#include "dist/dist.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "data/image_io.h"
#include "data/rng.h"
#include "model/model.h"
#include "model/model_io.h"
#include "util/progress.h"
#include "util/util.h"

/* ---- pseudo label storage ----------------------------------------------- */

int hcga_pseudo_init(hcga_pseudo *p, int count, int h, int w, int num_parts)
{
    memset(p, 0, sizeof *p);
    p->maps = malloc((size_t)(count > 0 ? count : 1) * (size_t)h * (size_t)w);
    if (!p->maps) return -1;
    p->count = count;
    p->h = h;
    p->w = w;
    p->num_parts = num_parts;
    p->miou = -1.0;
    int64_t *band = malloc(sizeof(int64_t) * (size_t)h * (size_t)w);
    if (!band) {
        free(p->maps);
        p->maps = NULL;
        return -1;
    }
    hcga_band_labels(h, w, num_parts, band);
    for (int i = 0; i < count; i++)
        for (int k = 0; k < h * w; k++) p->maps[(size_t)i * h * w + k] = (uint8_t)band[k];
    free(band);
    return 0;
}

void hcga_pseudo_free(hcga_pseudo *p)
{
    free(p->maps);
    memset(p, 0, sizeof *p);
}

int hcga_pseudo_label_fn(void *ctx, int item, int64_t *labels, char *err, size_t err_len)
{
    const hcga_pseudo *p = ctx;
    if (item < 0 || item >= p->count) {
        snprintf(err, err_len, "pseudo labels: item %d out of range (%d training images)", item, p->count);
        return -1;
    }
    const uint8_t *m = p->maps + (size_t)item * p->h * p->w;
    for (int k = 0; k < p->h * p->w; k++) labels[k] = m[k];
    return 0;
}

int hcga_coparse_due(const hcga_config *cfg, int epoch)
{
    long long period = hcga_cfg_int(cfg, "CLUSTERING.PERIOD");
    long long stop = hcga_cfg_int(cfg, "CLUSTERING.STOP");
    if (epoch == 1) return 1;
    if (period < 1 || epoch > stop) return 0;
    return (epoch - 1) % period == 0;
}

static void pseudo_dir(const hcga_config *cfg, const hcga_dataset *ds, char *dir, size_t len)
{
    snprintf(dir, len, "%s/%s", ds->root, hcga_cfg_str(cfg, "DATASETS.PSEUDO_LABEL_SUBDIR"));
}

int hcga_pseudo_lock(const hcga_config *cfg, const hcga_dataset *ds, char *err, size_t err_len)
{
    char dir[4096], path[4200];
    pseudo_dir(cfg, ds, dir, sizeof dir);
    if (hcga_mkdirs(dir, err, err_len)) return -1;
    snprintf(path, sizeof path, "%s/.hcga-train.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, err_len,
                     "%s is in use by another hcga train (its pseudo labels would be overwritten); "
                     "give this run its own DATASETS.PSEUDO_LABEL_SUBDIR",
                     dir);
        else
            snprintf(err, err_len, "%s: flock: %s", path, strerror(e));
        return -1;
    }
    return fd;
}

int hcga_pseudo_load(hcga_pseudo *p, const hcga_config *cfg, const hcga_dataset *ds, char *err,
                     size_t err_len)
{
    char dir[4096], path[8300];
    pseudo_dir(cfg, ds, dir, sizeof dir);
    for (int i = 0; i < p->count; i++) {
        snprintf(path, sizeof path, "%s/%s.png", dir, ds->train.items[i].name);
        hcga_image m;
        if (hcga_png_read(path, &m, err, err_len)) return -1;
        if (m.channels != 1 || m.width != p->w || m.height != p->h) {
            snprintf(err, err_len, "%s: pseudo label map is %dx%dx%d, expected %dx%d gray", path, m.height,
                     m.width, m.channels, p->h, p->w);
            hcga_image_free(&m);
            return -1;
        }
        for (int k = 0; k < p->h * p->w; k++) {
            if (m.data[k] >= p->num_parts) {
                snprintf(err, err_len, "%s: label %d outside 0..%d", path, m.data[k], p->num_parts - 1);
                hcga_image_free(&m);
                return -1;
            }
            p->maps[(size_t)i * p->h * p->w + k] = m.data[k];
        }
        hcga_image_free(&m);
    }
    p->rounds = 1;
    return 0;
}

int hcga_pseudo_miou(const hcga_pseudo *p, const hcga_dataset *ds, double *iou, double *miou,
                     char *err, size_t err_len)
{
    const int K = p->num_parts;
    double *inter = calloc((size_t)K, sizeof(double)), *uni = calloc((size_t)K, sizeof(double));
    if (!inter || !uni) {
        free(inter);
        free(uni);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int rc = 0;
    char path[8300];
    for (int i = 0; i < p->count; i++) {
        snprintf(path, sizeof path, "%s/parts/bounding_box_train/%s.png", ds->root, ds->train.items[i].name);
        if (access(path, R_OK) != 0) {
            rc = 1; /* no ground truth */
            break;
        }
        hcga_image g;
        if (hcga_png_read(path, &g, err, err_len)) {
            rc = -1;
            break;
        }
        if (g.channels != 1) {
            snprintf(err, err_len, "%s: part mask must be gray", path);
            hcga_image_free(&g);
            rc = -1;
            break;
        }
        const uint8_t *m = p->maps + (size_t)i * p->h * p->w;
        for (int y = 0; y < p->h; y++)
            for (int x = 0; x < p->w; x++) {
                int gy = (int)((y + 0.5) * g.height / p->h), gx = (int)((x + 0.5) * g.width / p->w);
                int gt = g.data[(size_t)gy * g.width + gx], pr = m[(size_t)y * p->w + x];
                if (gt >= K) gt = K - 1;
                if (gt == pr) {
                    inter[gt] += 1;
                    uni[gt] += 1;
                } else {
                    uni[gt] += 1;
                    uni[pr] += 1;
                }
            }
        hcga_image_free(&g);
    }
    if (rc == 0) {
        double s = 0;
        for (int k = 0; k < K; k++) iou[k] = uni[k] > 0 ? inter[k] / uni[k] : 0.0;
        for (int k = 1; k < K; k++) s += iou[k];
        *miou = K > 1 ? s / (K - 1) : 0.0;
    }
    free(inter);
    free(uni);
    return rc;
}

int hcga_pseudo_from_masks(hcga_pseudo *p, const hcga_dataset *ds, char *err, size_t err_len)
{
    char path[8300];
    for (int i = 0; i < p->count; i++) {
        snprintf(path, sizeof path, "%s/parts/bounding_box_train/%s.png", ds->root, ds->train.items[i].name);
        if (access(path, R_OK) != 0) {
            snprintf(err, err_len, "%s: no ground-truth part mask (%s)", path, strerror(errno));
            return 1;
        }
        hcga_image g;
        if (hcga_png_read(path, &g, err, err_len)) return -1;
        if (g.channels != 1) {
            snprintf(err, err_len, "%s: part mask must be gray", path);
            hcga_image_free(&g);
            return -1;
        }
        uint8_t *m = p->maps + (size_t)i * p->h * p->w;
        for (int y = 0; y < p->h; y++)
            for (int x = 0; x < p->w; x++) {
                int gy = (int)((y + 0.5) * g.height / p->h), gx = (int)((x + 0.5) * g.width / p->w);
                int gt = g.data[(size_t)gy * g.width + gx];
                m[(size_t)y * p->w + x] = (uint8_t)(gt >= p->num_parts ? p->num_parts - 1 : gt);
            }
        hcga_image_free(&g);
    }
    return 0;
}

/* ---- post-processing and k-means ------------------------------------------ */

void hcga_dfc_postprocess(const int64_t *raw, int n, int h, int w, int num_parts, uint8_t *labels)
{
    int maxl = 0;
    for (size_t i = 0; i < (size_t)n * h * w; i++)
        if (raw[i] > maxl) maxl = (int)raw[i];
    const int L = maxl + 1;
    double *rowsum = calloc((size_t)L, sizeof(double));
    long *cnt = calloc((size_t)L, sizeof(long)), *edge_rows = calloc((size_t)L, sizeof(long));
    long *edge_cols = calloc((size_t)L, sizeof(long));
    int *bg = calloc((size_t)L, sizeof(int)), *part = calloc((size_t)L, sizeof(int));
    if (!rowsum || !cnt || !edge_rows || !edge_cols || !bg || !part) abort();
    const int rows[4] = {0, 3, h - 1, h - 4};
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int64_t l = raw[((size_t)i * h + y) * w + x];
                cnt[l]++;
                rowsum[l] += y;
                for (int r = 0; r < 4; r++)
                    if (y == rows[r] && (r < 2 || rows[r] != rows[r - 2])) edge_rows[l]++;
                if (x == 0 || x == w - 1) edge_cols[l]++;
            }
    double lo = INFINITY, hi = -INFINITY;
    for (int l = 0; l < L; l++) {
        if (!cnt[l]) continue;
        bg[l] = edge_rows[l] > (double)n * w / 2.0 || edge_cols[l] > (double)n * h / 3.0;
        if (bg[l]) continue;
        double m = rowsum[l] / cnt[l];
        lo = fmin(lo, m);
        hi = fmax(hi, m);
    }
    const int K = num_parts;
    double s = (hi - lo) / (K - 1 > 0 ? K - 1 : 1);
    for (int l = 0; l < L; l++) {
        if (!cnt[l] || bg[l]) continue;
        double m = rowsum[l] / cnt[l];
        if (K == 4) {
            part[l] = m < lo + s / 2 ? 1 : m < lo + 2 * s ? 2 : 3;
        } else {
            int k = 1;
            while (k < K - 1 && m >= lo + (k - 0.5) * s) k++;
            part[l] = k;
        }
    }
    for (size_t i = 0; i < (size_t)n * h * w; i++) labels[i] = bg[raw[i]] ? 0 : (uint8_t)part[raw[i]];
    free(rowsum);
    free(cnt);
    free(edge_rows);
    free(edge_cols);
    free(bg);
    free(part);
}

/* x[(i*HW + p)*c + k]: the feature vector of pixel p of image i, scaled to
 * unit length (zero stays zero), from feats n x c x HW (NCHW). */
static void unit_pixel_features(const float *feats, int n, int c, size_t HW, float *x)
{
    for (size_t q = 0; q < (size_t)n * HW; q++) {
        const size_t i = q / HW, p = q % HW;
        double s = 0;
        for (int k = 0; k < c; k++) {
            double f = feats[(i * c + k) * HW + p];
            s += f * f;
        }
        double inv = s > 1e-24 ? 1.0 / sqrt(s) : 0.0;
        for (int k = 0; k < c; k++) x[q * c + k] = (float)(feats[(i * c + k) * HW + p] * inv);
    }
}

/* Foreground by clusters and the image border (CLUSTERING.AL
 * kmeans_border): k-means with 8 clusters on the L2-normalised features of all the
 * identity's pixels, initialised from a 4 x 2 grid of regions (row bands x
 * centre / side columns); a cluster is background when its share of pixels
 * in the side columns (the outer fifth on each side, where the person
 * rarely is) exceeds half the share of all pixels there.  fg[p] = 1 for
 * person pixels.  Returns 0 or -1 (out of memory). */
static int border_foreground(const float *x, size_t N, int h, int w, int c, int *fg)
{
    enum { M = 8 };
    const size_t HW = (size_t)h * w;
    const int sw = w / 5 > 0 ? w / 5 : 1;
    double *cent = calloc((size_t)M * c, sizeof(double)), *acc = calloc((size_t)M * c, sizeof(double));
    long cnt[M], side[M];
    int *as = malloc(sizeof(int) * N);
    if (!cent || !acc || !as) {
        free(cent);
        free(acc);
        free(as);
        return -1;
    }
    for (size_t p = 0; p < N; p++) {
        int y = (int)((p % HW) / w), xx = (int)(p % w);
        int is_side = xx < sw || xx >= w - sw;
        as[p] = (y * 4 / h) * 2 + is_side;
    }
    for (int it = 0; it <= 15; it++) {
        memset(acc, 0, sizeof(double) * (size_t)M * c);
        memset(cnt, 0, sizeof cnt);
        for (size_t p = 0; p < N; p++) {
            for (int k = 0; k < c; k++) acc[(size_t)as[p] * c + k] += x[p * c + k];
            cnt[as[p]]++;
        }
        for (int j = 0; j < M; j++)
            if (cnt[j])
                for (int k = 0; k < c; k++) cent[(size_t)j * c + k] = acc[(size_t)j * c + k] / cnt[j];
        if (it == 15) break;
        for (size_t p = 0; p < N; p++) {
            double best = INFINITY;
            int bj = as[p];
            for (int j = 0; j < M; j++) {
                if (!cnt[j]) continue;
                double d = 0;
                for (int k = 0; k < c; k++) {
                    double t = x[p * c + k] - cent[(size_t)j * c + k];
                    d += t * t;
                }
                if (d < best) best = d, bj = j;
            }
            as[p] = bj;
        }
    }
    memset(cnt, 0, sizeof cnt);
    memset(side, 0, sizeof side);
    long side_all = 0;
    for (size_t p = 0; p < N; p++) {
        int xx = (int)(p % w), is_side = xx < sw || xx >= w - sw;
        cnt[as[p]]++;
        side[as[p]] += is_side;
        side_all += is_side;
    }
    const double share_all = (double)side_all / (double)N;
    int bg[M];
    for (int j = 0; j < M; j++) bg[j] = !cnt[j] || (double)side[j] / cnt[j] > 0.5 * share_all;
    for (size_t p = 0; p < N; p++) fg[p] = !bg[as[p]];
    free(cent);
    free(acc);
    free(as);
    return 0;
}

int hcga_kmeans_labels(const float *feats, int n, int c, int h, int w, int num_parts, uint8_t *labels)
{
    return hcga_kmeans_labels_fg(feats, n, c, h, w, num_parts, HCGA_FG_NORM, labels);
}

int hcga_kmeans_labels_fg(const float *feats, int n, int c, int h, int w, int num_parts, int fg_mode,
                          uint8_t *labels)
{
    const size_t HW = (size_t)h * w, N = (size_t)n * HW;
    const int K = num_parts - 1;
    double *v = malloc(sizeof(double) * N);
    int *fg = malloc(sizeof(int) * N);
    float *x = NULL;
    double *cent = NULL, *acc = NULL, *rowsum = NULL, *rel = NULL;
    long *cc = NULL;
    int rc = -1;
    if (!v || !fg || K < 1 || K > 64) goto out;
    /* sharpened, per-image-normalised feature norms */
    for (int i = 0; i < n; i++) {
        double mx = 0;
        for (size_t p = 0; p < HW; p++) {
            double s = 0;
            for (int k = 0; k < c; k++) {
                double f = feats[((size_t)i * c + k) * HW + p];
                s += f * f;
            }
            v[i * HW + p] = sqrt(s);
            mx = fmax(mx, v[i * HW + p]);
        }
        for (size_t p = 0; p < HW; p++) {
            double t = mx > 0 ? v[i * HW + p] / mx : 0;
            v[i * HW + p] = 1.0 / (1.0 + exp(-5.0 * (2.0 * t - 1.0) - 3.0));
        }
    }
    /* k = 2 on the scalars, 20 iterations, from the minimum and the maximum */
    double c0 = INFINITY, c1 = -INFINITY;
    for (size_t p = 0; p < N; p++) {
        c0 = fmin(c0, v[p]);
        c1 = fmax(c1, v[p]);
    }
    for (int it = 0; it < 20; it++) {
        double s0 = 0, s1 = 0;
        long n0 = 0, n1 = 0;
        for (size_t p = 0; p < N; p++) {
            int a = fabs(v[p] - c1) < fabs(v[p] - c0);
            fg[p] = a;
            if (a) s1 += v[p], n1++;
            else s0 += v[p], n0++;
        }
        if (n0) c0 = s0 / n0;
        if (n1) c1 = s1 / n1;
    }
    int fgc = c1 > c0 ? 1 : 0;
    for (size_t p = 0; p < N; p++) fg[p] = fg[p] == fgc;
    const int by_border = fg_mode == HCGA_FG_BORDER;
    /* k = K-1 on L2-normalised foreground features, initialised from horizontal bands */
    x = malloc(sizeof(float) * N * (size_t)c);
    cent = calloc((size_t)K * c, sizeof(double));
    acc = calloc((size_t)K * c, sizeof(double));
    cc = calloc((size_t)K, sizeof(long));
    rowsum = calloc((size_t)K, sizeof(double));
    int *assign = fg; /* reuse: -1 background, else cluster */
    if (!x || !cent || !acc || !cc || !rowsum) goto out;
    unit_pixel_features(feats, n, c, HW, x);
    if (by_border && border_foreground(x, N, h, w, c, fg)) goto out;
    for (size_t p = 0; p < N; p++) {
        if (!fg[p]) {
            assign[p] = -1;
            continue;
        }
        int y = (int)((p % HW) / w);
        assign[p] = y * K / h;
    }
    /* border mode: each foreground pixel's height within its image's
     * foreground (0 top .. 1 bottom) joins the features with weight
     * lam, initialises the clusters (head above 0.18, upper body
     * above 0.55 for K = 4; even bands otherwise) and orders them */
    double ct[64] = {0}, ctacc[64];
    const double lam = 1.0; /* 1 and 3 measured the same (docs/training.md) */
    if (by_border) {
        rel = malloc(sizeof(double) * N);
        if (!rel) goto out;
        for (int i = 0; i < n; i++) {
            int top = h, bot = -1;
            for (size_t p = 0; p < HW; p++)
                if (fg[i * HW + p] >= 0) {
                    int y = (int)(p / w);
                    if (y < top) top = y;
                    if (y > bot) bot = y;
                }
            for (size_t p = 0; p < HW; p++) {
                size_t q = i * HW + p;
                if (assign[q] < 0) continue;
                double t = bot > top ? ((double)(p / w) - top) / (bot - top) : 0.5;
                rel[q] = t;
                if (K == 3) assign[q] = t < 0.18 ? 0 : t < 0.55 ? 1 : 2;
                else assign[q] = t * K >= K ? K - 1 : (int)(t * K);
            }
        }
    }
    for (int it = 0; it <= 20; it++) {
        memset(acc, 0, sizeof(double) * (size_t)K * c);
        memset(cc, 0, sizeof(long) * (size_t)K);
        for (int j = 0; j < K && j < 64; j++) ctacc[j] = 0;
        for (size_t p = 0; p < N; p++) {
            if (assign[p] < 0) continue;
            for (int k = 0; k < c; k++) acc[(size_t)assign[p] * c + k] += x[p * c + k];
            cc[assign[p]]++;
            if (rel) ctacc[assign[p]] += rel[p];
        }
        for (int j = 0; j < K; j++)
            if (cc[j]) {
                for (int k = 0; k < c; k++) cent[(size_t)j * c + k] = acc[(size_t)j * c + k] / cc[j];
                if (rel) ct[j] = ctacc[j] / cc[j];
            }
        if (it == 20) break;
        for (size_t p = 0; p < N; p++) {
            if (assign[p] < 0) continue;
            double best = INFINITY;
            int bj = 0;
            for (int j = 0; j < K; j++) {
                double d = 0;
                for (int k = 0; k < c; k++) {
                    double t = x[p * c + k] - cent[(size_t)j * c + k];
                    d += t * t;
                }
                if (rel) d += lam * lam * (rel[p] - ct[j]) * (rel[p] - ct[j]);
                if (d < best) best = d, bj = j;
            }
            assign[p] = bj;
        }
    }
    /* number clusters 1..K from top to bottom by mean row */
    memset(cc, 0, sizeof(long) * (size_t)K);
    for (size_t p = 0; p < N; p++) {
        if (assign[p] < 0) continue;
        rowsum[assign[p]] += rel ? rel[p] : (double)((p % HW) / w);
        cc[assign[p]]++;
    }
    int order[64];
    for (int j = 0; j < K && j < 64; j++) order[j] = j;
    for (int a = 0; a < K; a++)
        for (int b = a + 1; b < K; b++) {
            double ma = cc[order[a]] ? rowsum[order[a]] / cc[order[a]] : INFINITY;
            double mb = cc[order[b]] ? rowsum[order[b]] / cc[order[b]] : INFINITY;
            if (mb < ma) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
        }
    int rank[64];
    for (int j = 0; j < K; j++) rank[order[j]] = j + 1;
    for (size_t p = 0; p < N; p++) labels[p] = assign[p] < 0 ? 0 : (uint8_t)rank[assign[p]];
    rc = 0;
out:
    free(rel);
    free(v);
    free(fg);
    free(x);
    free(cent);
    free(acc);
    free(cc);
    free(rowsum);
    return rc;
}

/* The guided rule (hcga_guided_labels in coparse.h). */
int hcga_guided_labels(const float *feats, const float *probs, const uint8_t *prev, int n, int c, int h, int w,
                       int num_parts, uint8_t *labels)
{
    const size_t HW = (size_t)h * w, N = (size_t)n * HW;
    const int K = num_parts;
    /* confidence of a prototype's pixels, weight of the prototype term, of
     * the last round's label: docs/training.md (beta 0, 1, 2, 4, 8 gave
     * mIoU(parts) 0.471, 0.495, 0.507, 0.514, 0.504 on one pretraining
     * checkpoint; over 8 rounds of a training gamma 0, 2, 4 ended at
     * 0.44 (round 5), 0.515 and 0.573, the head class at 0.25, 0.34, 0.45) */
    const double conf = 0.7, beta = 4.0, gamma = 4.0;
    if (K < 2 || K > 64) return -1;
    float *x = malloc(sizeof(float) * N * (size_t)c);
    double *proto = calloc((size_t)K * c, sizeof(double));
    long *cnt = calloc((size_t)K, sizeof(long));
    int rc = -1;
    if (!x || !proto || !cnt) goto out;
    /* L2-normalised features; each part's prototype: the mean over the
     * identity's pixels the part head gives that part with confidence */
    unit_pixel_features(feats, n, c, HW, x);
    for (size_t q = 0; q < N; q++) {
        const size_t i = q / HW, p = q % HW;
        for (int k = 0; k < K; k++)
            if (probs[(i * K + k) * HW + p] >= conf) {
                for (int j = 0; j < c; j++) proto[(size_t)k * c + j] += x[q * c + j];
                cnt[k]++;
            }
    }
    for (int k = 0; k < K; k++) {
        double s2 = 0;
        for (int j = 0; j < c; j++) s2 += proto[(size_t)k * c + j] * proto[(size_t)k * c + j];
        double inv = s2 > 1e-24 ? 1.0 / sqrt(s2) : 0.0;
        for (int j = 0; j < c; j++) proto[(size_t)k * c + j] *= inv;
    }
    /* each pixel: its own part probability and its likeness to the part's prototype */
    for (size_t q = 0; q < N; q++) {
        const size_t i = q / HW, p = q % HW;
        double best = -INFINITY;
        int bk = 0;
        for (int k = 0; k < K; k++) {
            double sc = log(fmax(probs[(i * K + k) * HW + p], 1e-12));
            if (cnt[k]) {
                double d = 0;
                for (int j = 0; j < c; j++) d += x[q * c + j] * proto[(size_t)k * c + j];
                sc += beta * d;
            }
            if (prev && prev[q] == k) sc += gamma;
            if (sc > best) best = sc, bk = k;
        }
        labels[q] = (uint8_t)bk;
    }
    rc = 0;
out:
    free(x);
    free(proto);
    free(cnt);
    return rc;
}

/* ---- the methods, and one identity's features and labels ----------------- */

static const struct {
    const char *value, *alias, *name;
} coparse_methods[] = {
#define HCGA_CP_ROW(e, v, a, n) [e] = {v, a, n},
    HCGA_COPARSE_METHODS(HCGA_CP_ROW)
#undef HCGA_CP_ROW
};

int hcga_coparse_method_of(const hcga_config *cfg, char *err, size_t err_len)
{
    const char *v = hcga_cfg_str(cfg, "CLUSTERING.AL");
    for (int m = 0; m < HCGA_CP_COUNT; m++)
        if (!strcmp(v, coparse_methods[m].value) || (coparse_methods[m].alias && !strcmp(v, coparse_methods[m].alias)))
            return m;
    size_t o = (size_t)snprintf(err, err_len, "CLUSTERING.AL '%s' does not co-parse: expected", v);
    for (int m = 0; m < HCGA_CP_COUNT && o < err_len; m++)
        o += (size_t)snprintf(err + o, err_len - o, "%s %s", m ? "," : "", coparse_methods[m].value);
    if (o < err_len) snprintf(err + o, err_len - o, " (or band / gt, which train on fixed labels)");
    return -1;
}

const char *hcga_coparse_method_name(int method)
{
    return method >= 0 && method < HCGA_CP_COUNT ? coparse_methods[method].name : "?";
}

int hcga_coparse_features(hg_exec *ex, const hg_graph *g, int batch, hg_val vF, hg_val vP, const hcga_item *items, int n,
                          const hcga_aug_cfg *aug, int num_parts, int threads, float *feats, float *probs,
                          char *err, size_t err_len)
{
    const size_t per = (size_t)hg_shape(g, vF)[1] * hg_shape(g, vF)[2] * hg_shape(g, vF)[3];
    const size_t perp = probs ? (size_t)hg_shape(g, vP)[1] * hg_shape(g, vP)[2] * hg_shape(g, vP)[3] : 0;
    hcga_split sub = {(hcga_item *)items, n};
    const size_t img = (size_t)3 * aug->height * aug->width;
    float *in = malloc(sizeof(float) * img * batch), *fb = malloc(sizeof(float) * per * batch);
    float *pb = probs ? malloc(sizeof(float) * perp * batch) : NULL;
    hcga_loader *l = hcga_loader_new(&sub, NULL, n, batch, 0, aug, num_parts, NULL, NULL, 0, 0, threads);
    int rc = -1, got = 0;
    if (!in || !fb || (probs && !pb) || !l) {
        snprintf(err, err_len, "out of memory for the feature maps of %d images", n);
        goto out;
    }
    const hcga_batch *b;
    while ((b = hcga_loader_next(l))) {
        /* pad a short last batch with copies of its last image */
        for (int i = 0; i < batch; i++)
            memcpy(in + img * i, b->images + img * (size_t)(i < b->n ? i : b->n - 1), sizeof(float) * img);
        if (hg_exec_set_input(ex, "input.images", in, HCGA_F32) || hg_exec_run(ex) ||
            hg_exec_read(ex, vF, fb, HCGA_F32) || (probs && hg_exec_read(ex, vP, pb, HCGA_F32))) {
            snprintf(err, err_len, "feature maps: %s", hg_exec_error(ex));
            goto out;
        }
        memcpy(feats + per * got, fb, sizeof(float) * per * (size_t)b->n);
        if (probs) memcpy(probs + perp * got, pb, sizeof(float) * perp * (size_t)b->n);
        got += b->n;
    }
    if (hcga_loader_error(l)) {
        snprintf(err, err_len, "%s", hcga_loader_error(l));
        goto out;
    }
    if (got != n) {
        snprintf(err, err_len, "feature maps: the loader gave %d of %d images", got, n);
        goto out;
    }
    rc = 0;
out:
    hcga_loader_free(l);
    free(in);
    free(fb);
    free(pb);
    return rc;
}

int hcga_coparse_labels(int method, hcga_dfc *dfc, const float *feats, const float *probs, const uint8_t *prev,
                        int n, int c, int h, int w, int num_parts, uint64_t seed, int64_t *raw, uint8_t *labels, int *iters,
                        void (*frame_cb)(void *ctx, int iter, const int64_t *labels), void *cb_ctx, char *err,
                        size_t err_len)
{
    *iters = 0;
    switch (method) {
    case HCGA_CP_DFC:
        if (hcga_dfc_run(dfc, feats, n, seed, raw, iters, frame_cb, cb_ctx, err, err_len)) return -1;
        hcga_dfc_postprocess(raw, n, h, w, num_parts, labels);
        return 0;
    case HCGA_CP_KMEANS:
    case HCGA_CP_BORDER:
        if (hcga_kmeans_labels_fg(feats, n, c, h, w, num_parts,
                                  method == HCGA_CP_BORDER ? HCGA_FG_BORDER : HCGA_FG_NORM, labels))
            break;
        return 0;
    case HCGA_CP_GUIDED:
        if (hcga_guided_labels(feats, probs, prev, n, c, h, w, num_parts, labels)) break;
        return 0;
    default:
        snprintf(err, err_len, "co-parsing method %d unknown", method);
        return -1;
    }
    snprintf(err, err_len, "%s co-parsing of %d images: out of memory", hcga_coparse_method_name(method), n);
    return -1;
}

/* ---- the DFC network ---------------------------------------------------------- */

#define DFC_MAX_N 1024

struct hcga_dfc {
    hcga_be *be;
    hg_store *store;
    int c, h, w, m1, m2, epochs, min_labels;
    double pw, iw, dw, lr, momentum;
    hg_graph *g[DFC_MAX_N + 1];
    hg_exec *ex[DFC_MAX_N + 1];
};

hcga_dfc *hcga_dfc_new(const hcga_config *cfg, hcga_be *be, int channels, int h, int w, char *err,
                       size_t err_len)
{
    hcga_dfc *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    d->be = be;
    d->c = channels;
    d->h = h;
    d->w = w;
    d->m1 = (int)hcga_cfg_int(cfg, "DFC.MODIM1");
    d->m2 = (int)hcga_cfg_int(cfg, "DFC.MODIM2");
    d->epochs = (int)hcga_cfg_int(cfg, "DFC.EPOCH");
    d->min_labels = (int)hcga_cfg_int(cfg, "DFC.MIN_LABEL_NUM");
    d->pw = hcga_cfg_float(cfg, "DFC.PIXEL_WEIGHT");
    d->iw = hcga_cfg_float(cfg, "DFC.IMAGE_WEIGHT");
    d->dw = hcga_cfg_float(cfg, "DFC.DIAG_WEIGHT");
    d->lr = 0.1;
    d->momentum = 0.9;
    if (d->m1 < 1 || d->m2 < 2 || d->epochs < 1 || h < 2 || w < 2) {
        snprintf(err, err_len, "DFC: MODIM1 %d / MODIM2 %d / EPOCH %d / map %dx%d out of range", d->m1, d->m2,
                 d->epochs, h, w);
        free(d);
        return NULL;
    }
    d->store = hg_store_new(be, HCGA_F32);
    if (!d->store) {
        snprintf(err, err_len, "DFC: cannot create a parameter store");
        free(d);
        return NULL;
    }
    return d;
}

void hcga_dfc_free(hcga_dfc *d)
{
    if (!d) return;
    for (int i = 0; i <= DFC_MAX_N; i++) {
        hg_exec_free(d->ex[i]);
        hg_graph_free(d->g[i]);
    }
    hg_store_free(d->store);
    free(d);
}

static hg_val dfc_layer(hg_graph *g, hg_val x, const char *name, int cin, int cout, int k, int relu)
{
    char nm[64];
    snprintf(nm, sizeof nm, "dfc.%s.conv.weight", name);
    hg_val w = hg_param(g, nm, 4, (int64_t[]){cout, cin, k, k}, HG_TRAINABLE);
    snprintf(nm, sizeof nm, "dfc.%s.conv.bias", name);
    hg_val b = hg_param(g, nm, 1, (int64_t[]){cout}, HG_TRAINABLE | HG_BIAS);
    hg_val y = hg_conv2d(g, x, w, b, 1, k / 2);
    hg_val bn[4];
    const char *sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "dfc.%s.bn.%s", name, sfx[i]);
        bn[i] = hg_param(g, nm, 1, (int64_t[]){cout}, i < 2 ? (HG_TRAINABLE | (i == 1 ? HG_BIAS : 0)) : HG_BUFFER);
    }
    y = hg_batchnorm(g, y, bn[0], bn[1], bn[2], bn[3], 1, 1e-5, 0.1);
    return relu ? hg_relu(g, y) : y;
}

static hg_exec *dfc_exec(hcga_dfc *d, int n, char *err, size_t err_len)
{
    if (n < 1 || n > DFC_MAX_N) {
        snprintf(err, err_len, "DFC: %d images for one identity (1..%d supported)", n, DFC_MAX_N);
        return NULL;
    }
    if (d->ex[n]) return d->ex[n];
    /* The DFC co-parsing network and its losses stay F32 under
     * SOLVER.AMP.ENABLED: its graph never turns autocast on (only the
     * model's graphs do, in hcga_model_build). */
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "dfc.input", HCGA_F32, 4, (int64_t[]){n, d->c, d->h, d->w});
    hg_val y = dfc_layer(g, x, "0", d->c, d->m1, 3, 1);
    y = dfc_layer(g, y, "1", d->m1, d->m2, 1, 1);
    y = dfc_layer(g, y, "2", d->m2, d->m1, 3, 1);
    y = dfc_layer(g, y, "3", d->m1, d->m2, 1, 0);
    hg_val lab = hg_argmax(g, y);
    hg_val loss = hg_pixel_ce(g, y, lab, -1);
    if (n > 1 && d->iw != 0) loss = hg_axpby(g, 1.0, loss, d->iw, hg_shift_l1(g, y, 1, 0, 0));
    if (d->pw != 0) {
        loss = hg_axpby(g, 1.0, loss, d->pw, hg_shift_l1(g, y, 0, 1, 0));
        loss = hg_axpby(g, 1.0, loss, d->pw, hg_shift_l1(g, y, 0, 0, 1));
    }
    if (d->dw != 0) {
        loss = hg_axpby(g, 1.0, loss, d->dw, hg_shift_l1(g, y, 0, 1, 1));
        loss = hg_axpby(g, 1.0, loss, d->dw, hg_shift_l1(g, y, 0, 1, -1));
    }
    hg_mark_output(g, lab, "dfc.labels");
    hg_mark_output(g, loss, "dfc.loss");
    if (hg_backward(g, loss)) {
        snprintf(err, err_len, "DFC: differentiating the network failed");
        hg_graph_free(g);
        return NULL;
    }
    hg_exec *ex = hg_exec_new(g, d->store, err, err_len);
    if (!ex) {
        hg_graph_free(g);
        return NULL;
    }
    d->g[n] = g;
    d->ex[n] = ex;
    return ex;
}

/* PyTorch's default Conv2d initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * weights and biases; BN weight 1, bias 0. */
static int dfc_init(hcga_dfc *d, uint64_t seed)
{
    hcga_rng r;
    hcga_rng_seed(&r, seed, 0xdfcull);
    for (int i = 0; i < hg_store_count(d->store); i++) {
        hg_store_entry *e = hg_store_at(d->store, i);
        int64_t n = 1;
        for (int k = 0; k < e->ndim; k++) n *= e->shape[k];
        float *v = malloc(sizeof(float) * (size_t)n);
        if (!v) return -1;
        const char *nm = e->name;
        if (strstr(nm, ".conv.")) {
            /* fan_in from the weight of this layer */
            char wn[64];
            snprintf(wn, sizeof wn, "%.*s.conv.weight", (int)(strstr(nm, ".conv.") - nm), nm);
            hg_store_entry *we = hg_store_get(d->store, wn);
            double fan = we ? (double)(we->shape[1] * we->shape[2] * we->shape[3]) : 1.0;
            double bound = 1.0 / sqrt(fan);
            for (int64_t k = 0; k < n; k++) v[k] = (float)hcga_rng_range(&r, -bound, bound);
        } else {
            float val = (strstr(nm, ".bn.weight") || strstr(nm, ".bn.running_var")) ? 1.0f : 0.0f;
            for (int64_t k = 0; k < n; k++) v[k] = val;
        }
        int bad = hg_store_write(d->store, e, v, HCGA_F32);
        free(v);
        if (bad) return -1;
    }
    return 0;
}

int hcga_dfc_run(hcga_dfc *d, const float *feats, int n, uint64_t seed, int64_t *raw, int *iters,
                 void (*frame_cb)(void *ctx, int iter, const int64_t *labels), void *cb_ctx, char *err,
                 size_t err_len)
{
    hg_exec *ex = dfc_exec(d, n, err, err_len);
    if (!ex) return -1;
    if (dfc_init(d, seed)) {
        snprintf(err, err_len, "DFC: initialising the network failed: %s", hcga_be_error(d->be));
        return -1;
    }
    hg_graph *g = d->g[n];
    hg_val vl = hg_find(g, "dfc.labels"), vloss = hg_find(g, "dfc.loss");
    const size_t np = (size_t)n * d->h * d->w;
    int64_t *lab = malloc(sizeof(int64_t) * np);
    unsigned char *seen = calloc((size_t)d->m2, 1);
    if (!lab || !seen) {
        free(lab);
        free(seen);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (hg_exec_set_input(ex, "dfc.input", feats, HCGA_F32)) {
        snprintf(err, err_len, "DFC input: %s", hg_exec_error(ex));
        free(lab);
        free(seen);
        return -1;
    }
    int it = 0, rc = 0;
    for (it = 1; it <= d->epochs; it++) {
        float loss;
        if (hg_exec_run(ex) || hg_exec_read(ex, vl, lab, HCGA_I64) || hg_exec_read(ex, vloss, &loss, HCGA_F32)) {
            snprintf(err, err_len, "DFC iteration %d: %s", it, hg_exec_error(ex));
            rc = -1;
            break;
        }
        if (!isfinite(loss)) {
            snprintf(err, err_len, "DFC iteration %d: the loss is not finite", it);
            rc = -1;
            break;
        }
        memset(seen, 0, (size_t)d->m2);
        int nl = 0;
        for (size_t p = 0; p < np; p++)
            if (!seen[lab[p]]) seen[lab[p]] = 1, nl++;
        if (frame_cb) frame_cb(cb_ctx, it, lab);
        hg_optim_cfg oc = {d->lr, 0.0, d->lr, 0.0, 0.9, 0.999, 1e-8, d->momentum, it};
        if (hg_sgd_step(ex, &oc)) {
            snprintf(err, err_len, "DFC step %d: %s", it, hg_exec_error(ex));
            rc = -1;
            break;
        }
        if (nl <= d->min_labels) break;
    }
    if (it > d->epochs) it = d->epochs;
    if (!rc && raw) memcpy(raw, lab, sizeof(int64_t) * np);
    if (iters) *iters = it;
    free(lab);
    free(seen);
    return rc;
}

/* ---- one round over the training set ------------------------------------------ */

int hcga_coparse_round(const hcga_config *cfg, hcga_be *be, hg_store *store, const hcga_dataset *ds,
                       int epoch, int threads, uint64_t seed, hcga_pseudo *p, FILE *log, char *err,
                       size_t err_len)
{
    const int method = hcga_coparse_method_of(cfg, err, err_len);
    if (method < 0) return -1;
    const int use_dfc = method == HCGA_CP_DFC, use_probs = method == HCGA_CP_GUIDED;
    const int batch = 16;
    int rc = -1;
    hg_graph *gf = hcga_model_build(cfg, HCGA_MODEL_FEATURES, batch, ds->num_train_ids, HCGA_F32, err, err_len);
    if (!gf) return -1;
    hg_exec *ex = hg_exec_new(gf, store, err, err_len);
    hg_val vF = hg_find(gf, "eval.feature_map"), vP = hg_find(gf, "eval.part_prob");
    if (!ex || vF < 0 || vP < 0) {
        if (ex) snprintf(err, err_len, "the features graph has no eval.feature_map or eval.part_prob");
        hcga_model_graph_free(gf);
        hg_exec_free(ex);
        return -1;
    }
    const int C = (int)hg_shape(gf, vF)[1], fh = (int)hg_shape(gf, vF)[2], fw = (int)hg_shape(gf, vF)[3];
    const size_t per = (size_t)C * fh * fw, perp = (size_t)p->num_parts * fh * fw;
    hcga_aug_cfg aug = hcga_aug_from_config(cfg, 0);
    int *members = malloc(sizeof(int) * (size_t)ds->train.count);
    hcga_item *items = malloc(sizeof(hcga_item) * (size_t)ds->train.count);
    float *feats = NULL, *probs = NULL;
    int64_t *raw = NULL;
    uint8_t *lab = NULL, *prevb = NULL;
    hcga_dfc *dfc = NULL;
    hcga_progress pg = {.on = 0}; /* started below; `out:` erases its line */
    if (!members || !items) {
        snprintf(err, err_len, "out of memory for co-parsing");
        goto out;
    }
    if (use_dfc && !(dfc = hcga_dfc_new(cfg, be, C, fh, fw, err, err_len))) goto out;
    char dir[4096];
    pseudo_dir(cfg, ds, dir, sizeof dir);
    if (hcga_mkdirs(dir, err, err_len)) goto out;
    double t0 = hcga_now(), iters_sum = 0;
    /* data-parallel: rank r does the identities id with id % N == r, and
     * the other ranks' maps arrive by the sum below (each map is non-zero on
     * exactly one rank); every identity's result depends only on (seed,
     * epoch, id), so any N gives the single process's labels */
    const int nsh = hcga_dist_size(), me = hcga_dist_rank();
    if (nsh > 1)
        for (int i = 0; i < ds->train.count; i++)
            if (ds->train.items[i].label % nsh != me) memset(p->maps + (size_t)i * p->h * p->w, 0, (size_t)p->h * p->w);
    /* the identities done on a terminal: this rank's share; rank 0 draws it */
    char pglabel[96];
    long long share = (ds->num_train_ids - me + nsh - 1) / nsh, ndone = 0;
    snprintf(pglabel, sizeof pglabel, "co-parsing (%s) epoch %d%s", hcga_coparse_method_name(method), epoch,
             nsh > 1 ? ", rank 0's share" : "");
    hcga_progress_start(&pg, pglabel, share);
    if (me != 0) hcga_progress_off(&pg);
    hcga_progress_update(&pg, 0, NULL);
    size_t cap = 0;
    for (int id = 0; id < ds->num_train_ids; id++) {
        if (id % nsh != me) continue;
        int n = 0;
        for (int i = 0; i < ds->train.count; i++)
            if (ds->train.items[i].label == id) members[n++] = i;
        if (n == 0) continue;
        if ((size_t)n > cap) {
            cap = (size_t)n;
            free(feats);
            free(probs);
            free(raw);
            free(lab);
            free(prevb);
            feats = malloc(sizeof(float) * per * cap);
            probs = use_probs ? malloc(sizeof(float) * perp * cap) : NULL;
            raw = malloc(sizeof(int64_t) * (size_t)fh * fw * cap);
            lab = malloc((size_t)fh * fw * cap);
            prevb = use_probs ? malloc((size_t)fh * fw * cap) : NULL;
            if (!feats || (use_probs && (!probs || !prevb)) || !raw || !lab) {
                snprintf(err, err_len, "out of memory for the feature maps of %d images", n);
                goto out;
            }
        }
        /* feature maps of this identity's images, in eval mode, then its labels */
        for (int j = 0; j < n; j++) items[j] = ds->train.items[members[j]];
        if (hcga_coparse_features(ex, gf, batch, vF, vP, items, n, &aug, p->num_parts, threads, feats,
                                  probs, err, err_len))
            goto out;
        /* guided keeps the last round's labels as a prior (none before round 2) */
        const uint8_t *prev = NULL;
        if (use_probs && p->rounds > 0) {
            for (int j = 0; j < n; j++) {
                const uint8_t *src = p->maps + (size_t)members[j] * p->h * p->w;
                for (int y = 0; y < fh; y++)
                    for (int x = 0; x < fw; x++)
                        prevb[((size_t)j * fh + y) * fw + x] =
                            src[(size_t)((y + 0.5) * p->h / fh) * p->w + (size_t)((x + 0.5) * p->w / fw)];
            }
            prev = prevb;
        }
        int iters;
        uint64_t s = seed ^ ((uint64_t)epoch << 32) ^ (uint64_t)id;
        if (hcga_coparse_labels(method, dfc, feats, probs, prev, n, C, fh, fw, p->num_parts, s, raw, lab, &iters,
                                NULL, NULL, err, err_len))
            goto out;
        iters_sum += iters;
        /* store (nearest-resized to the training label size) and write the PNGs */
        for (int j = 0; j < n; j++) {
            uint8_t *dst = p->maps + (size_t)members[j] * p->h * p->w;
            for (int y = 0; y < p->h; y++)
                for (int x = 0; x < p->w; x++) {
                    int sy = (int)((y + 0.5) * fh / p->h), sx = (int)((x + 0.5) * fw / p->w);
                    dst[(size_t)y * p->w + x] = lab[((size_t)j * fh + sy) * fw + sx];
                }
            hcga_image m = {p->w, p->h, 1, dst};
            char path[8300];
            snprintf(path, sizeof path, "%s/%s.png", dir, ds->train.items[members[j]].name);
            if (hcga_png_write(path, &m, err, err_len)) goto out;
        }
        hcga_progress_update(&pg, ++ndone, NULL);
    }
    hcga_progress_finish(&pg);
    if (nsh > 1 && hcga_dist_allreduce_sum(p->maps, (int64_t)p->count * p->h * p->w, HCGA_U8,
                                           "co-parsing labels of every rank", err, err_len))
        goto out;
    p->rounds++;
    double secs = hcga_now() - t0;
    if (log) {
        fprintf(log, "co-parsing round %d (%s, epoch %d): %d identities in %.1f s (%.3f s per identity)", p->rounds,
                hcga_coparse_method_name(method), epoch, ds->num_train_ids, secs, secs / ds->num_train_ids);
        if (use_dfc) fprintf(log, ", %.1f DFC iterations on average", iters_sum / ds->num_train_ids);
        double iou[64], miou;
        char e2[1024];
        int m = p->num_parts <= 64 ? hcga_pseudo_miou(p, ds, iou, &miou, e2, sizeof e2) : 1;
        p->miou = m == 0 ? miou : -1.0;
        if (m == 0) {
            memcpy(p->iou, iou, sizeof(double) * (size_t)p->num_parts);
            fprintf(log, "; pseudo-label IoU:");
            for (int k = 0; k < p->num_parts; k++) fprintf(log, " %d:%.3f", k, iou[k]);
            fprintf(log, " mIoU(parts) %.3f", miou);
        } else if (m < 0) {
            fprintf(log, "; mIoU not computed: %s", e2);
        }
        fprintf(log, "\n");
        fflush(log);
    }
    rc = 0;
out:
    hcga_progress_finish(&pg); /* the caller prints err on stderr */
    free(members);
    free(items);
    free(feats);
    free(probs);
    free(raw);
    free(lab);
    free(prevb);
    hcga_dfc_free(dfc);
    hg_exec_free(ex);
    hcga_model_graph_free(gf);
    return rc;
}
