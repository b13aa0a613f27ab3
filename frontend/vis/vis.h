/*
 * vis.h - pictures of what the model does, drawn with cairo and written as
 * PNG (PATH.tmp, then rename): co-parsing strips (`hcga parse`), ranked
 * lists (`hcga test --visrank`) and training curves (metrics.jsonl).
 *
 * Every function returns 0, or -1 with one line in err that names the file
 * it was writing or reading.  Nothing here aborts or exits.
 */
#ifndef HCGA_VIS_H
#define HCGA_VIS_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "eval/features.h"

/* The fixed part colours: 0 background (not drawn), 1 head red, 2 upper
 * body green, 3 lower body blue, then yellow, magenta, cyan, orange, ...
 * (any k >= 1 gets a colour). */
void hcga_vis_part_color(int k, uint8_t rgb[3]);
/* Colours for raw cluster ids (DFC's 32 channels before post-processing):
 * every id, 0 included, gets a distinct, saturated colour. */
void hcga_vis_cluster_color(int k, uint8_t rgb[3]);

/* ---- co-parsing strips ----------------------------------------------------- */

typedef struct hcga_vis_strip_opts {
    const char *title;           /* first title line, e.g. "identity 0005" (may be NULL) */
    const char *method;          /* e.g. "DFC" or "k-means", shown after the title (may be NULL) */
    double miou;                 /* shown when >= 0 ("mIoU 0.613"); < 0: not shown */
    const char *note;            /* extra text for the title line (may be NULL) */
    const hcga_image *gt;        /* NULL, or n gray ground-truth part masks (any size; an
                                    entry with data == NULL has none): drawn as a second row */
    const char *const *captions; /* NULL, or n short texts drawn under each image */
    int scale;                   /* display scale of the images (0: 2) */
    int max_cols;                /* images per row before wrapping (0: 16) */
    int raw_clusters;            /* labels are raw cluster ids: colour every id, 0 included,
                                    with hcga_vis_cluster_color and draw no part legend */
    double alpha;                /* overlay opacity (0: 0.5) */
} hcga_vis_strip_opts;

/* One identity: its images (RGB or gray, any sizes, each shown at `scale`
 * times its size, bilinear, fitted into a common cell of scale x the largest
 * width and height), each with its part labels (labels[i] is an lh x lw map,
 * values 0..num_parts-1, nearest-upsampled to the shown image) blended in
 * the part colours: shown = round((1 - alpha) * pixel + alpha * colour);
 * label 0 stays as the pixel.  Part borders are outlined: the last shown
 * pixel before a change of label to its right or below it is darkened to
 * 35%.  A title line above, a legend of the part colours below; rows of at
 * most max_cols images, each followed by its ground-truth row when given. */
int hcga_vis_parsing_strip(const char *path, const hcga_image *images, const uint8_t *const *labels,
                           int n, int lh, int lw, int num_parts, const hcga_vis_strip_opts *opts,
                           char *err, size_t err_len);

/* ---- ranked lists ---------------------------------------------------------- */

/* The query, then k gallery images in rank order, each scaled (bilinear,
 * aspect kept) to 256 pixels high inside a 5-pixel border: RGB (20,190,40)
 * green for a gallery image with match[i] != 0 (same identity), (230,25,25)
 * red otherwise; the query's border is (40,100,230) blue.  Under each image a row of nparts
 * small squares: filled with the part colour (part p+1) when visible,
 * outlined grey when not.  Above: "query" / "#rank" and the score dist[i];
 * captions (may be NULL: none; else k+1 texts, query first) under the
 * squares.  qvis: nparts flags, gvis: k*nparts flags (either may be NULL:
 * no squares).  title (may be NULL) heads the picture. */
int hcga_vis_ranklist(const char *path, const hcga_image *query, const int64_t *qvis,
                      const hcga_image *gallery, const int *match, const int64_t *gvis,
                      const float *dist, int k, int nparts, const char *const *captions,
                      const char *title, char *err, size_t err_len);

/* Ranked lists of the first N queries of ds (N > query count: all):
 * gallery sorted by dist (nq x ng, smaller = more similar, ties by gallery
 * index) after removing, as the Market protocol does, gallery images with
 * the query's identity and camera and those with identity -1; the top 10
 * are drawn.  Files: outdir/rank_QQQQ_<query name>.png (QQQQ the query's
 * index).  qvis: nq*nparts, gvis: ng*nparts visibility flags (NULL: none).
 * The score shown is the distance.  Creates outdir; prints nothing.
 * Returns the number of pictures written, or -1 with err. */
int hcga_vis_ranklists(const char *outdir, int N, const hcga_dataset *ds, const float *dist,
                       const int64_t *qvis, const int64_t *gvis, int nparts, char *err,
                       size_t err_len);

/* The same from features as `hcga test` has them: distances for the
 * matching mode (ARM similarity shown as the score; global/concat: squared
 * Euclidean, L2-normalised when feat_norm), then hcga_vis_ranklists.
 * q/g must be ds's query and gallery features, in split order.  Returns
 * the number of pictures written, or -1 with err. */
int hcga_vis_ranklists_features(const char *outdir, int N, const hcga_dataset *ds,
                                const hcga_features *q, const hcga_features *g, hcga_match mode,
                                int feat_norm, char *err, size_t err_len);

/* ---- training curves --------------------------------------------------------- */

/* Read a training metrics file (JSON lines, as hcga train writes:
 * {"epoch", "loss", "acc", "lr", ...} per epoch, {"epoch", "eval": "arm" |
 * "global", "map", "rank1", ...} per evaluation, {"epoch", "coparse_round",
 * ...} per co-parsing round; a later line for the same epoch replaces an
 * earlier one, as after --resume) and plot, side by side, the training loss
 * (co-parsing rounds marked) and the mAP and Rank-1 of ARM and global
 * matching vs epoch, with axes, ticks and legends, as a width x height PNG
 * (0, 0: 1200 x 450; at least 320 x 200).  A file with no epoch line is an
 * error; so is any line that is not a JSON object with an integer
 * "epoch" (err: "FILE:LINE: ..."). */
int hcga_vis_curves(const char *png_path, const char *metrics_path, int width, int height,
                    char *err, size_t err_len);

#endif
