/*
 * dataset.h - Market-1501-layout datasets (Market-1501, Occluded-Duke, the
 * synthetic benchmark), training augmentation (HCGA.md section 4), the PK
 * sampler and a background batch loader.
 */
#ifndef HCGA_DATASET_H
#define HCGA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "data/image_io.h"

typedef struct hcga_item {
    char *path;      /* the JPEG */
    char *name;      /* file name without directory and extension */
    int pid;         /* identity as in the file name (-1 junk, 0 distractor) */
    int label;       /* train: 0..num_train_ids-1; query/gallery: = pid */
    int cam;         /* 0-based camera */
} hcga_item;

typedef struct hcga_split {
    hcga_item *items;
    int count;
} hcga_split;

typedef struct hcga_dataset {
    char *root;
    hcga_split train, query, gallery;
    int num_train_ids;
    int *train_pid_of_label; /* label -> original pid */
    int ignored_files;       /* non-JPEG files seen (e.g. Thumbs.db) */
} hcga_dataset;

/* Read root/bounding_box_train, root/query, root/bounding_box_test.  File
 * names: PPPP_cC... (Market: 0001_c1s1_000151_01.jpg; Duke: 0001_c2_f0046182.jpg).
 * Training images with pid -1 (junk) are dropped, as the reference does;
 * training labels are the pids relabelled 0..n-1 in increasing order.  A
 * JPEG whose name does not parse is an error naming it.  Items are sorted by
 * name so every run sees the same order. */
int hcga_dataset_open(const char *root, hcga_dataset *ds, char *err, size_t err_len);
void hcga_dataset_free(hcga_dataset *ds);

/* Parse "PPPP_cC..." into pid and 0-based camera; 0 on success. */
int hcga_parse_reid_name(const char *name, int *pid, int *cam);

/* ---- image transforms --------------------------------------------------- */
typedef struct hcga_aug_cfg {
    int height, width;            /* INPUT.SIZE_TRAIN / SIZE_TEST */
    int label_h, label_w;         /* part label map size (height/4, width/4) */
    double flip_p;                /* INPUT.PROB */
    double erase_p;               /* INPUT.RE_PROB */
    int padding;                  /* INPUT.PADDING */
    float mean[3], std[3];        /* INPUT.PIXEL_MEAN / PIXEL_STD */
} hcga_aug_cfg;

/* The augmentation settings of cfg: INPUT.SIZE_TRAIN (train != 0) or
 * INPUT.SIZE_TEST, the label map size (a quarter), flip and erasing
 * probabilities, padding, pixel mean and std. */
hcga_aug_cfg hcga_aug_from_config(const hcga_config *cfg, int train);

/* Bilinear resize of an 8-bit image with the filter PIL uses for BILINEAR
 * (triangle kernel, support widened by the scale when shrinking).  dst is
 * allocated. */
int hcga_resize_u8(const hcga_image *src, int out_w, int out_h, hcga_image *dst);

/* Test transform: resize, to [0,1], normalise -> out[3*H*W] (CHW). */
int hcga_transform_test(const hcga_image *img, const hcga_aug_cfg *cfg, float *out);

/* Training transform, deterministic for (seed, key): resize, horizontal
 * flip (label map too), zero-pad + random crop (the label map is NOT padded
 * or cropped, as in the reference), to [0,1], normalise, random erasing with
 * the image's per-channel mean (erased label region -> 0).  labels: in/out
 * [label_h*label_w] int64 (may be NULL). */
int hcga_transform_train(const hcga_image *img, const hcga_aug_cfg *cfg, uint64_t seed,
                         uint64_t key, float *out, int64_t *labels);

/* The horizontal-band fallback pseudo labels: K-1 equal bands labelled
 * 1..K-1 from top to bottom, no background. */
void hcga_band_labels(int label_h, int label_w, int num_parts, int64_t *labels);

/* ---- PK sampler --------------------------------------------------------- */
/* The epoch's sample order for batches of P identities x K images (as the
 * reference's RandomIdentitySampler): each identity's images shuffled and
 * cut into chunks of K (an identity with fewer than K is sampled with
 * replacement up to K), then batches draw P distinct identities that still
 * have chunks.  Writes a malloc'd index array (into split items) of length
 * *count (a multiple of P*K). */
int hcga_pk_sample(const hcga_split *train, int num_ids, int P, int K, uint64_t seed, int epoch,
                   int **order, int *count);

/* ---- background loader --------------------------------------------------- */
typedef struct hcga_loader hcga_loader;

typedef struct hcga_batch {
    int n;            /* images in the batch */
    float *images;    /* n*3*H*W normalised */
    int64_t *labels;  /* n class labels (train) or pids (test) */
    int *cams;        /* n cameras */
    int64_t *parsing; /* n*label_h*label_w part labels (train; NULL in test mode) */
    const int *index; /* n indices into the split */
} hcga_batch;

/* Label-map source for a training item: fills labels[label_h*label_w] with
 * values 0..K-1, or returns non-zero with err set. */
typedef int (*hcga_label_fn)(void *ctx, int item, int64_t *labels, char *err, size_t err_len);

/* train != 0: training transform and label maps from label_fn (NULL: band
 * fallback with num_parts); else the test transform in order.  Batches of
 * `batch` images over order[0..count); the last test batch may be smaller.
 * threads workers decode and augment ahead of the consumer (queue depth 3).
 * Content depends only on (seed, epoch, batch index), not on scheduling. */
hcga_loader *hcga_loader_new(const hcga_split *split, const int *order, int count, int batch,
                             int train, const hcga_aug_cfg *cfg, int num_parts,
                             hcga_label_fn label_fn, void *label_ctx, uint64_t seed, int epoch,
                             int threads);
/* The same batches cut into nshards contiguous slices, this loader yielding
 * slice `shard` of each (data-parallel training: rank r of N gets slice r,
 * which with PK order and P divisible by N is P/N whole identities).  Every
 * image keeps its position in the whole batch, so its augmentation is the
 * one a single loader gives it: the union of the slices is the unsharded
 * batch, bit for bit.  hcga_loader_new is shard 0 of 1. */
hcga_loader *hcga_loader_new_shard(const hcga_split *split, const int *order, int count, int batch,
                                   int train, const hcga_aug_cfg *cfg, int num_parts,
                                   hcga_label_fn label_fn, void *label_ctx, uint64_t seed, int epoch,
                                   int threads, int shard, int nshards);
/* Next batch (valid until the following call) or NULL at the end; on a bad
 * image returns NULL with hcga_loader_error() naming the file. */
const hcga_batch *hcga_loader_next(hcga_loader *l);
const char *hcga_loader_error(const hcga_loader *l); /* NULL when no error */
double hcga_loader_wait_seconds(const hcga_loader *l); /* time the consumer waited */
void hcga_loader_free(hcga_loader *l);

#endif
