/*
 * coparse.h - human co-parsing (HCGA.md section 5): pseudo part labels for
 * the training images, made per identity from the network's feature maps.
 *
 * The training loop owns an hcga_pseudo (one label map per training item)
 * and calls hcga_coparse_round at the epochs chosen by CLUSTERING.PERIOD /
 * CLUSTERING.STOP (see hcga_coparse_due).  Until the first round the maps
 * are the horizontal-band fallback (hcga_band_labels).
 */
#ifndef HCGA_COPARSE_H
#define HCGA_COPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "data/dataset.h"
#include "graph/graph.h"

typedef struct hcga_pseudo {
    int count;        /* training items */
    int h, w;         /* label map size: SIZE_TRAIN / 4 */
    int num_parts;    /* CLUSTERING.PART_NUM (K, class 0 background) */
    uint8_t *maps;    /* count*h*w labels 0..K-1 */
    int rounds;       /* co-parsing rounds done (0: band fallback) */
    double miou;      /* mIoU(parts) of the last round vs ground truth, -1 if unknown */
    double iou[64];   /* per-class IoU of the last round (0 background), when miou >= 0 */
} hcga_pseudo;

/* Allocate and fill with the band fallback. */
int hcga_pseudo_init(hcga_pseudo *p, int count, int h, int w, int num_parts);
void hcga_pseudo_free(hcga_pseudo *p);
/* hcga_label_fn for hcga_loader_new (ctx = hcga_pseudo*). */
int hcga_pseudo_label_fn(void *ctx, int item, int64_t *labels, char *err, size_t err_len);

/* 1 when a co-parsing round runs at the start of `epoch` (1-based): epoch 1,
 * then every CLUSTERING.PERIOD epochs while epoch <= CLUSTERING.STOP. */
int hcga_coparse_due(const hcga_config *cfg, int epoch);

/* Per-part IoU of pseudo labels against ground-truth part masks
 * (<root>/parts/bounding_box_train/<name>.png, resized by nearest to h x w).
 * iou[k] for k = 0..K-1 (k = 0 background), *miou over parts 1..K-1.
 * Returns 0, 1 when the dataset has no part masks, -1 with err on error. */
int hcga_pseudo_miou(const hcga_pseudo *p, const hcga_dataset *ds, double *iou, double *miou,
                     char *err, size_t err_len);

/* Fill p->maps with the ground-truth part masks themselves
 * (<root>/parts/bounding_box_train/<name>.png, nearest-resized to h x w,
 * values >= K counted as K-1): the labels of CLUSTERING.AL gt, which
 * `hcga pretrain` trains with on a pretraining set.  Returns 0, 1 when the
 * dataset has no part masks (err says which file), -1 with err on error. */
int hcga_pseudo_from_masks(hcga_pseudo *p, const hcga_dataset *ds, char *err, size_t err_len);

/* One co-parsing round: feature maps F of every training image (eval mode,
 * test transform at SIZE_TRAIN, no augmentation) from the store's current
 * parameters, grouped by identity; CLUSTERING.AL selects "dfc" (the paper's
 * per-identity network, run on the backend) or "kmeans"/"Kmeans" (ISP).
 * Writes p->maps and the PNG files <root>/<DATASETS.PSEUDO_LABEL_SUBDIR>/
 * <name>.png (atomically), logs progress and, when ground truth exists, the
 * per-part IoU and mIoU to log.  Returns 0 or -1 with err. */
int hcga_coparse_round(const hcga_config *cfg, hcga_be *be, hg_store *store,
                       const hcga_dataset *ds, int epoch, int threads, uint64_t seed,
                       hcga_pseudo *p, FILE *log, char *err, size_t err_len);

/* The per-identity steps, exposed for `hcga parse` and the tests.
 * feats: n images x C channels x h x w (host, float).  Both write labels
 * [n*h*w] with values 0..K-1. */
typedef struct hcga_dfc hcga_dfc; /* the per-identity network, reused across identities */
hcga_dfc *hcga_dfc_new(const hcga_config *cfg, hcga_be *be, int channels, int h, int w,
                       char *err, size_t err_len);
void hcga_dfc_free(hcga_dfc *d);
/* Train the DFC network from scratch (seeded) on one identity's features;
 * raw[n*h*w] receives the final argmax labels (0..31) before post-processing
 * (may be NULL); *iters the iterations run.  frame_cb (may be NULL) is
 * called after every iteration with the current argmax labels. */
int hcga_dfc_run(hcga_dfc *d, const float *feats, int n, uint64_t seed, int64_t *raw, int *iters,
                 void (*frame_cb)(void *ctx, int iter, const int64_t *labels), void *cb_ctx,
                 char *err, size_t err_len);
/* DFC post-processing: boundary labels -> background, others by mean row
 * to 1 (head), 2 (upper), 3 (lower) (K = 4; other K: evenly spaced bands). */
void hcga_dfc_postprocess(const int64_t *raw, int n, int h, int w, int num_parts, uint8_t *labels);
/* ISP k-means labels for one identity (foreground by feature norm). */
int hcga_kmeans_labels(const float *feats, int n, int c, int h, int w, int num_parts,
                       uint8_t *labels);
/* The same with a choice of foreground: HCGA_FG_NORM
 * ISP's k = 2 on the sharpened feature norms, HCGA_FG_BORDER clusters of
 * the features that avoid the image's side columns (border_foreground in
 * coparse.c).  The parts are then ISP's: k-means on the foreground,
 * numbered top to bottom. */
enum { HCGA_FG_NORM = 0, HCGA_FG_BORDER = 1 };
int hcga_kmeans_labels_fg(const float *feats, int n, int c, int h, int w, int num_parts, int fg_mode,
                          uint8_t *labels);
/* Co-parsing guided by the part head (CLUSTERING.AL guided), for a model
 * whose part classifier was pretrained (hcga pretrain).  Jointly over the
 * identity's n images: each part's prototype is the mean L2-normalised
 * feature of the pixels the head gives that part with probability >= 0.7;
 * each pixel then takes the part k maximising
 *     log p_k + 4 cos(f, prototype_k) [+ 4 if prev says k],
 * so a pixel the head is unsure of follows what the same identity's
 * confident pixels look like, and, from the second round on (prev: the
 * last round's labels, NULL before), the labels move only where the head
 * and the features clearly disagree with them (docs/training.md has the
 * measurements behind 0.7, 4 and 4).  probs: n x K x h x w (the softmax of
 * part_cls_layer on F); labels n*h*w.  Returns 0 or -1 (out of memory or
 * K outside 2..64). */
int hcga_guided_labels(const float *feats, const float *probs, const uint8_t *prev, int n, int c, int h, int w,
                       int num_parts, uint8_t *labels);

/* The co-parsing methods, the values of CLUSTERING.AL that co-parse (band
 * and gt do not): one row each, X(enum, value, alias, name in logs). */
#define HCGA_COPARSE_METHODS(X)                          \
    X(HCGA_CP_DFC, "dfc", "DFC", "DFC")                   \
    X(HCGA_CP_KMEANS, "kmeans", "Kmeans", "k-means")      \
    X(HCGA_CP_BORDER, "kmeans_border", NULL, "k-means, border foreground") \
    X(HCGA_CP_GUIDED, "guided", NULL, "guided")
#define HCGA_CP_ENUM(e, v, a, n) e,
typedef enum { HCGA_COPARSE_METHODS(HCGA_CP_ENUM) HCGA_CP_COUNT } hcga_coparse_method;
#undef HCGA_CP_ENUM
/* The method cfg's CLUSTERING.AL names, or -1 with err (which lists the
 * values accepted). */
int hcga_coparse_method_of(const hcga_config *cfg, char *err, size_t err_len);
/* The method's name for logs and pictures ("DFC", "k-means", ...). */
const char *hcga_coparse_method_name(int method);

/* The feature maps F (n x C x h x w) of n training images, and, when
 * probs is not NULL, the part probabilities (n x K x h x w), in eval mode
 * with the test transform at SIZE_TRAIN, through ex (executing g, a
 * features graph of batch `batch`; vF, vP its eval.feature_map and
 * eval.part_prob).  Returns
 * 0 or -1 with err. */
int hcga_coparse_features(hg_exec *ex, const hg_graph *g, int batch, hg_val vF, hg_val vP, const hcga_item *items, int n,
                          const hcga_aug_cfg *aug, int num_parts, int threads, float *feats, float *probs,
                          char *err, size_t err_len);

/* One identity's labels (n*h*w, 0..K-1) by `method`: DFC (dfc, seed; raw
 * receives DFC's labels before post-processing, *iters its iterations,
 * frame_cb as for hcga_dfc_run) or one of the k-means rules (probs needed by
 * guided).  Returns 0 or -1 with err. */
int hcga_coparse_labels(int method, hcga_dfc *dfc, const float *feats, const float *probs, const uint8_t *prev,
                        int n, int c, int h, int w, int num_parts, uint64_t seed, int64_t *raw, uint8_t *labels, int *iters,
                        void (*frame_cb)(void *ctx, int iter, const int64_t *labels), void *cb_ctx, char *err,
                        size_t err_len);

/* Take an exclusive lock on the pseudo-label directory
 * (<root>/DATASETS.PSEUDO_LABEL_SUBDIR, created if missing) for the life of a
 * training run, so that a second training on the same dataset and subdir
 * stops with an error instead of overwriting this run's labels.  Returns the
 * lock's file descriptor (close it to release), or -1 with ERR set. */
int hcga_pseudo_lock(const hcga_config *cfg, const hcga_dataset *ds, char *err, size_t err_len);

/* Reload the maps written by the last round (for --resume). */
int hcga_pseudo_load(hcga_pseudo *p, const hcga_config *cfg, const hcga_dataset *ds, char *err,
                     size_t err_len);

#endif
