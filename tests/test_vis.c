/* Picture tests: co-parsing strips (blend colours, outlines, ground-truth
 * row), ranked lists (border colours, part squares, junk removal), training
 * curves (size, line colours, errors naming the file). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "vis/vis.h"
#include "testutil.h"

static char tmpdir[256];

static void setup(void)
{
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga-test-vis-");
}

static void rm_rf(const char *path)
{
    if (hcga_test_rm_rf(path) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

static void teardown(void)
{
    rm_rf(tmpdir);
}

static void solid(hcga_image *im, int w, int h, int r, int g, int b)
{
    ck_assert_int_eq(hcga_image_alloc(im, w, h, 3), 0);
    for (int i = 0; i < w * h; i++) {
        im->data[3 * i] = (uint8_t)r;
        im->data[3 * i + 1] = (uint8_t)g;
        im->data[3 * i + 2] = (uint8_t)b;
    }
}

static void load_png(const char *path, hcga_image *im)
{
    char err[512];
    int rc = hcga_png_read(path, im, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(im->channels, 3);
}

static const uint8_t *px(const hcga_image *im, int x, int y)
{
    return im->data + ((size_t)y * im->width + x) * 3;
}

static int is_rgb(const uint8_t *p, int r, int g, int b, int tol)
{
    return abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
}

typedef struct box {
    int count, x0, y0, x1, y1; /* inclusive */
} box;

static box find(const hcga_image *im, int r, int g, int b, int tol)
{
    box bx = {0, im->width, im->height, -1, -1};
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++)
            if (is_rgb(px(im, x, y), r, g, b, tol)) {
                bx.count++;
                if (x < bx.x0) bx.x0 = x;
                if (y < bx.y0) bx.y0 = y;
                if (x > bx.x1) bx.x1 = x;
                if (y > bx.y1) bx.y1 = y;
            }
    return bx;
}

static int blend(int pixel, int colour)
{
    return (int)(0.5 * pixel + 0.5 * colour + 0.5); /* alpha 0.5, rounded */
}

START_TEST(test_part_colors)
{
    uint8_t c[3];
    hcga_vis_part_color(1, c);
    ck_assert(c[0] > 180 && c[1] < 80 && c[2] < 80); /* head red */
    hcga_vis_part_color(2, c);
    ck_assert(c[1] > 150 && c[0] < 80 && c[2] < 100); /* upper green */
    hcga_vis_part_color(3, c);
    ck_assert(c[2] > 180 && c[0] < 80 && c[1] < 130); /* lower blue */
    /* many parts and clusters: all distinct */
    uint8_t a[40][3];
    for (int k = 0; k < 40; k++) hcga_vis_cluster_color(k, a[k]);
    for (int i = 0; i < 40; i++)
        for (int j = i + 1; j < 40; j++) ck_assert_msg(memcmp(a[i], a[j], 3) != 0, "clusters %d and %d share a colour", i, j);
    for (int i = 1; i < 30; i++) {
        hcga_vis_part_color(i, a[i]);
        for (int j = 1; j < i; j++) ck_assert_msg(memcmp(a[i], a[j], 3) != 0, "parts %d and %d share a colour", i, j);
    }
}
END_TEST

/* the source colour: not gray, so no text pixel can have it */
#define SR 100
#define SG 120
#define SB 140

/* 2 uniform 20x40 images, 10x5 labels: rows 0-2 head, 3-5 upper, 6-8 lower,
 * row 9 background.  Shown at 2x: 40x80 pixels, 8x8 per label. */
static void make_strip_inputs(hcga_image im[2], uint8_t lab[2][50])
{
    solid(&im[0], 20, 40, SR, SG, SB);
    solid(&im[1], 20, 40, SR, SG, SB);
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 5; x++) lab[i][y * 5 + x] = (uint8_t)(y < 3 ? 1 : y < 6 ? 2 : y < 9 ? 3 : 0);
}

START_TEST(test_strip_colours)
{
    hcga_image im[2];
    uint8_t lab[2][50];
    make_strip_inputs(im, lab);
    const uint8_t *labels[2] = {lab[0], lab[1]};
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/strip.png", tmpdir);
    hcga_vis_strip_opts o = {0};
    o.title = "identity 0001";
    o.method = "DFC";
    o.miou = 0.5;
    int rc = hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 4, &o, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0); /* renamed into place */
    hcga_image out;
    load_png(path, &out);
    ck_assert_int_ge(out.width, 2 * 40);
    ck_assert_int_ge(out.height, 80);
    /* head: rows 0-23 of each shown image, the last row (23) darkened: 23 x 40 per image */
    box head = find(&out, blend(SR, 230), blend(SG, 30), blend(SB, 30), 0);
    ck_assert_int_eq(head.count, 2 * 23 * 40);
    ck_assert_int_eq(head.y1 - head.y0 + 1, 23);
    /* upper and lower body likewise */
    box up = find(&out, blend(SR, 30), blend(SG, 200), blend(SB, 50), 0);
    ck_assert_int_eq(up.count, 2 * 23 * 40);
    box low = find(&out, blend(SR, 30), blend(SG, 90), blend(SB, 240), 0);
    ck_assert_int_eq(low.count, 2 * 23 * 40);
    /* vertical order head, upper, lower; the two images side by side */
    ck_assert_int_lt(head.y1, up.y0);
    ck_assert_int_lt(up.y1, low.y0);
    ck_assert_int_gt(head.x1 - head.x0 + 1, 2 * 40);
    /* a head pixel has more red than the source pixel, less green */
    const uint8_t *h = px(&out, head.x0 + 5, head.y0 + 5);
    ck_assert_int_gt(h[0], SR);
    ck_assert_int_lt(h[1], SG);
    /* background label: the plain pixel, 8 rows below the lower body's outline */
    box plain = find(&out, SR, SG, SB, 0);
    ck_assert_int_eq(plain.count, 2 * 8 * 40);
    ck_assert_int_eq(plain.y0, low.y1 + 2);
    /* outlines: the darkened row between head and upper body */
    const uint8_t *d = px(&out, head.x0 + 5, head.y1 + 1);
    ck_assert(is_rgb(d, (int)(blend(SR, 230) * 0.35 + 0.5), (int)(blend(SG, 30) * 0.35 + 0.5),
                     (int)(blend(SB, 30) * 0.35 + 0.5), 1));
    hcga_image_free(&out);

    /* with ground truth: a second row doubles every part's pixels */
    hcga_image gt[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(hcga_image_alloc(&gt[i], 5, 10, 1), 0);
        memcpy(gt[i].data, lab[i], 50);
    }
    o.gt = gt;
    rc = hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 4, &o, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(path, &out);
    box head2 = find(&out, blend(SR, 230), blend(SG, 30), blend(SB, 30), 0);
    ck_assert_int_eq(head2.count, 4 * 23 * 40);
    ck_assert_int_gt(head2.y1 - head2.y0, 80); /* spans two rows */
    hcga_image_free(&out);

    /* scale 3: 60x120 shown, 12x12 per label */
    o.gt = NULL;
    o.scale = 3;
    rc = hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 4, &o, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(path, &out);
    box head3 = find(&out, blend(SR, 230), blend(SG, 30), blend(SB, 30), 0);
    ck_assert_int_eq(head3.count, 2 * 35 * 60);
    hcga_image_free(&out);

    /* raw clusters: label 0 is coloured too */
    o.scale = 2;
    o.raw_clusters = 1;
    rc = hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 32, &o, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(path, &out);
    ck_assert_int_eq(find(&out, SR, SG, SB, 0).count, 0);
    uint8_t c0[3];
    hcga_vis_cluster_color(0, c0);
    ck_assert_int_eq(find(&out, blend(SR, c0[0]), blend(SG, c0[1]), blend(SB, c0[2]), 0).count, 2 * 8 * 40);
    hcga_image_free(&out);
    for (int i = 0; i < 2; i++) {
        hcga_image_free(&im[i]);
        hcga_image_free(&gt[i]);
    }
}
END_TEST

START_TEST(test_strip_errors)
{
    hcga_image im[2];
    uint8_t lab[2][50];
    make_strip_inputs(im, lab);
    const uint8_t *labels[2] = {lab[0], lab[1]};
    char path[512], err[512];
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/strip.png", tmpdir);
    ck_assert_int_eq(hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 4, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, path) != NULL, "error does not name the file: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    /* a label outside 0..K-1 */
    snprintf(path, sizeof path, "%s/strip.png", tmpdir);
    lab[1][7] = 4;
    ck_assert_int_eq(hcga_vis_parsing_strip(path, im, labels, 2, 10, 5, 4, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, path) && strstr(err, "label 4"), "%s", err);
    ck_assert_int_ne(access(path, F_OK), 0);
    hcga_image_free(&im[0]);
    hcga_image_free(&im[1]);
}
END_TEST

/* query 16x32 in one colour, 3 gallery images in others; shown 256 high */
START_TEST(test_ranklist_borders)
{
    hcga_image q, g[3];
    solid(&q, 16, 32, 200, 200, 0);
    solid(&g[0], 16, 32, 0, 200, 200);
    solid(&g[1], 16, 32, 200, 0, 200);
    solid(&g[2], 16, 32, 120, 60, 0);
    int match[3] = {1, 0, 1};
    float dist[3] = {0.25f, 0.5f, 0.75f};
    int64_t qvis[3] = {1, 1, 1}, gvis[9] = {0};
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/rank.png", tmpdir);
    const char *caps[4] = {"q", "a", "b", "c"};
    int rc = hcga_vis_ranklist(path, &q, qvis, g, match, gvis, dist, 3, 3, caps, "query 0", err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    hcga_image out;
    load_png(path, &out);
    box bq = find(&out, 200, 200, 0, 0);
    ck_assert_int_eq(bq.y1 - bq.y0 + 1, 256);
    ck_assert_int_eq(bq.x1 - bq.x0 + 1, 128);
    ck_assert_int_eq(bq.count, 256 * 128);
    const int cols[3][3] = {{0, 200, 200}, {200, 0, 200}, {120, 60, 0}};
    box bg[3];
    for (int i = 0; i < 3; i++) {
        bg[i] = find(&out, cols[i][0], cols[i][1], cols[i][2], 0);
        ck_assert_int_eq(bg[i].count, 256 * 128);
    }
    /* order: query, then rank 1, 2, 3 left to right */
    ck_assert_int_lt(bq.x1, bg[0].x0);
    ck_assert_int_lt(bg[0].x1, bg[1].x0);
    ck_assert_int_lt(bg[1].x1, bg[2].x0);
    /* borders: just outside each image, left, right, above, below */
    const int ym = (bq.y0 + bq.y1) / 2;
    ck_assert(is_rgb(px(&out, bq.x0 - 2, ym), 40, 100, 230, 0));
    for (int i = 0; i < 3; i++) {
        const int *c = match[i] ? (const int[]){20, 190, 40} : (const int[]){230, 25, 25};
        int xm = (bg[i].x0 + bg[i].x1) / 2;
        ck_assert_msg(is_rgb(px(&out, bg[i].x0 - 2, ym), c[0], c[1], c[2], 0), "left border of gallery %d", i);
        ck_assert_msg(is_rgb(px(&out, bg[i].x1 + 2, ym), c[0], c[1], c[2], 0), "right border of gallery %d", i);
        ck_assert_msg(is_rgb(px(&out, xm, bg[i].y0 - 2), c[0], c[1], c[2], 0), "top border of gallery %d", i);
        ck_assert_msg(is_rgb(px(&out, xm, bg[i].y1 + 2), c[0], c[1], c[2], 0), "bottom border of gallery %d", i);
    }
    /* visible parts: only the query's, so part-2 green appears under the query only */
    box p2 = find(&out, 30, 200, 50, 0);
    ck_assert_int_gt(p2.count, 25);
    ck_assert_int_ge(p2.x0, bq.x0 - 5);
    ck_assert_int_le(p2.x1, bq.x1 + 5);
    ck_assert_int_gt(p2.y0, bq.y1);
    hcga_image_free(&out);
    /* make gallery 2's part 2 visible: its squares appear under it */
    gvis[3 * 2 + 1] = 1;
    rc = hcga_vis_ranklist(path, &q, qvis, g, match, gvis, dist, 3, 3, NULL, NULL, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(path, &out);
    bg[2] = find(&out, 120, 60, 0, 0);
    box p2b = find(&out, 30, 200, 50, 0);
    ck_assert_int_eq(p2b.count, 2 * p2.count);
    ck_assert_int_ge(p2b.x1, bg[2].x0);
    hcga_image_free(&out);
    hcga_image_free(&q);
    for (int i = 0; i < 3; i++) hcga_image_free(&g[i]);
}
END_TEST

static void write_jpeg(const char *dir, const char *name, int r, int g, int b)
{
    char path[800], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hcga_image im;
    solid(&im, 16, 32, r, g, b);
    int rc = hcga_jpeg_write(path, &im, 95, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    hcga_image_free(&im);
}

/* A query of identity 1 in camera 1; gallery: 1/c1 (junk, nearest), 2/c2,
 * 1/c2, -1 (junk id).  The list must be 2/c2 (red), then 1/c2 (green). */
START_TEST(test_ranklists_dataset)
{
    char d[600], err[512];
    const char *sub[3] = {"bounding_box_train", "query", "bounding_box_test"};
    for (int i = 0; i < 3; i++) {
        snprintf(d, sizeof d, "%s/ds/%s", tmpdir, sub[i]);
        ck_assert_int_eq(hcga_mkdirs(d, err, sizeof err), 0);
    }
    snprintf(d, sizeof d, "%s/ds/bounding_box_train", tmpdir);
    write_jpeg(d, "0001_c1s1_000001_01.jpg", 128, 128, 128);
    snprintf(d, sizeof d, "%s/ds/query", tmpdir);
    write_jpeg(d, "0001_c1s1_000010_01.jpg", 240, 240, 20);
    snprintf(d, sizeof d, "%s/ds/bounding_box_test", tmpdir);
    write_jpeg(d, "0001_c1s1_000020_01.jpg", 20, 240, 240); /* same id and camera: junk */
    write_jpeg(d, "0002_c2s1_000030_01.jpg", 240, 20, 240);
    write_jpeg(d, "0001_c2s1_000040_01.jpg", 130, 70, 10);
    write_jpeg(d, "-1_c3s1_000050_01.jpg", 20, 20, 240); /* junk identity */
    hcga_dataset ds;
    snprintf(d, sizeof d, "%s/ds", tmpdir);
    int rc = hcga_dataset_open(d, &ds, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(ds.query.count, 1);
    ck_assert_int_eq(ds.gallery.count, 4);
    /* distances in gallery order (sorted by name) */
    float dist[4];
    for (int j = 0; j < 4; j++) {
        const char *nm = ds.gallery.items[j].name;
        dist[j] = !strncmp(nm, "0001_c1", 7) ? 0.0f : !strncmp(nm, "-1", 2) ? 0.1f : !strncmp(nm, "0002", 4) ? 0.2f : 0.3f;
    }
    char outdir[600];
    snprintf(outdir, sizeof outdir, "%s/vis", tmpdir);
    int n = hcga_vis_ranklists(outdir, 5, &ds, dist, NULL, NULL, 3, err, sizeof err);
    ck_assert_msg(n == 1, "%d: %s", n, err);
    char path[800];
    snprintf(path, sizeof path, "%s/rank_0000_0001_c1s1_000010_01.png", outdir);
    hcga_image out;
    load_png(path, &out);
    ck_assert_int_eq(find(&out, 20, 240, 240, 8).count, 0); /* same-camera junk removed */
    ck_assert_int_eq(find(&out, 20, 20, 240, 8).count, 0);  /* identity -1 removed */
    box wrong = find(&out, 240, 20, 240, 8), right = find(&out, 130, 70, 10, 8);
    ck_assert_int_gt(wrong.count, 1000);
    ck_assert_int_gt(right.count, 1000);
    ck_assert_int_lt(wrong.x1, right.x0); /* rank 1 left of rank 2 */
    int ym = (wrong.y0 + wrong.y1) / 2;
    ck_assert(is_rgb(px(&out, wrong.x0 - 2, ym), 230, 25, 25, 0));
    ck_assert(is_rgb(px(&out, right.x0 - 2, ym), 20, 190, 40, 0));
    hcga_image_free(&out);
    /* N = 0: nothing written */
    ck_assert_int_eq(hcga_vis_ranklists(outdir, 0, &ds, dist, NULL, NULL, 3, err, sizeof err), 0);
    hcga_dataset_free(&ds);
}
END_TEST

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char *METRICS =
    "{\"epoch\": 1, \"coparse_round\": 1, \"seconds\": 2.5}\n"
    "{\"epoch\": 1, \"iterations\": 10, \"loss\": 9.5, \"acc\": 0.05, \"lr\": 3.5e-05}\n"
    "{\"epoch\": 2, \"iterations\": 10, \"loss\": 7.25, \"acc\": 0.2, \"lr\": 3.5e-04}\n"
    "{\"epoch\": 2, \"eval\": \"arm\", \"rank1\": 0.31, \"rank5\": 0.5, \"rank10\": 0.6, \"map\": 0.22, \"minp\": 0.1, \"queries\": 50}\n"
    "{\"epoch\": 2, \"eval\": \"global\", \"rank1\": 0.28, \"map\": 0.19}\n"
    "\n"
    "{\"epoch\": 3, \"coparse_round\": 2, \"seconds\": 2.0}\n"
    "{\"epoch\": 3, \"iterations\": 10, \"loss\": 99.0, \"acc\": 0.3, \"lr\": 3.5e-04}\n"
    "{\"epoch\": 3, \"iterations\": 10, \"loss\": 5.5, \"acc\": 0.3, \"lr\": 3.5e-04}\n"
    "{\"epoch\": 4, \"iterations\": 10, \"loss\": 4.0, \"acc\": 0.45, \"lr\": 3.5e-04}\n"
    "{\"epoch\": 4, \"eval\": \"arm\", \"rank1\": 0.52, \"map\": 0.41}\n"
    "{\"epoch\": 4, \"eval\": \"global\", \"rank1\": 0.47, \"map\": 0.35}\n";

START_TEST(test_curves)
{
    char mpath[600], ppath[600], err[512];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", tmpdir);
    snprintf(ppath, sizeof ppath, "%s/curves.png", tmpdir);
    write_text(mpath, METRICS);
    int rc = hcga_vis_curves(ppath, mpath, 900, 360, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    hcga_image out;
    load_png(ppath, &out);
    ck_assert_int_eq(out.width, 900);
    ck_assert_int_eq(out.height, 360);
    /* the loss line (217,84,26) on the left half, the ARM mAP line (31,89,217) on the right */
    box loss = find(&out, 217, 84, 26, 2), arm = find(&out, 31, 89, 217, 2);
    ck_assert_int_gt(loss.count, 50);
    ck_assert_int_lt(loss.x1, 450);
    ck_assert_int_gt(arm.count, 50);
    ck_assert_int_gt(arm.x0, 450);
    /* a later line for an epoch replaces an earlier one: without the loss-99
     * line the picture is the same; with 99 written last it differs */
    char p2[600];
    snprintf(p2, sizeof p2, "%s/curves2.png", tmpdir);
    const char *l99 = "{\"epoch\": 3, \"iterations\": 10, \"loss\": 99.0, \"acc\": 0.3, \"lr\": 3.5e-04}\n";
    char *m2 = strdup(METRICS), *at = strstr(m2, l99);
    ck_assert_ptr_nonnull(at);
    memmove(at, at + strlen(l99), strlen(at + strlen(l99)) + 1);
    write_text(mpath, m2);
    rc = hcga_vis_curves(p2, mpath, 900, 360, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    hcga_image out2;
    load_png(p2, &out2);
    ck_assert_int_eq(memcmp(out.data, out2.data, (size_t)900 * 360 * 3), 0);
    hcga_image_free(&out2);
    /* now 99 last for epoch 3 */
    char *m3 = malloc(strlen(METRICS) + strlen(l99) + 1);
    strcpy(m3, m2);
    strcat(m3, l99);
    write_text(mpath, m3);
    rc = hcga_vis_curves(p2, mpath, 900, 360, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(p2, &out2);
    ck_assert_int_ne(memcmp(out.data, out2.data, (size_t)900 * 360 * 3), 0);
    hcga_image_free(&out2);
    free(m2);
    free(m3);
    hcga_image_free(&out);
    write_text(mpath, METRICS);
    /* default size */
    rc = hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(ppath, &out);
    ck_assert_int_eq(out.width, 1200);
    ck_assert_int_eq(out.height, 450);
    hcga_image_free(&out);
    /* a single epoch, no evaluation */
    write_text(mpath, "{\"epoch\": 1, \"loss\": 3.0, \"acc\": 0.1}\n");
    rc = hcga_vis_curves(ppath, mpath, 640, 240, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    load_png(ppath, &out);
    ck_assert_int_eq(out.width, 640);
    ck_assert_int_gt(find(&out, 217, 84, 26, 2).count, 10); /* the point's marker */
    hcga_image_free(&out);
}
END_TEST

START_TEST(test_curves_errors)
{
    char mpath[600], ppath[600], err[512];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", tmpdir);
    snprintf(ppath, sizeof ppath, "%s/curves.png", tmpdir);
    /* missing */
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, mpath) != NULL, "%s", err);
    /* garbled second line */
    write_text(mpath, "{\"epoch\": 1, \"loss\": 3.0}\n{\"epoch\": 2, \"loss\": 2.\n");
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
    char where[700];
    snprintf(where, sizeof where, "%s:2:", mpath);
    ck_assert_msg(strstr(err, where) != NULL, "%s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    /* not an object / no epoch / a loss that is not a number */
    const char *bad[3] = {"[1, 2]\n", "{\"loss\": 1.0}\n", "{\"epoch\": 1, \"loss\": \"high\"}\n"};
    for (int i = 0; i < 3; i++) {
        write_text(mpath, bad[i]);
        ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
        snprintf(where, sizeof where, "%s:1:", mpath);
        ck_assert_msg(strstr(err, where) != NULL, "case %d: %s", i, err);
    }
    /* empty, or evaluations only */
    write_text(mpath, "");
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, mpath) != NULL, "%s", err);
    write_text(mpath, "{\"epoch\": 1, \"eval\": \"arm\", \"map\": 0.5, \"rank1\": 0.6}\n");
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, mpath) != NULL, "%s", err);
    ck_assert_int_ne(access(ppath, F_OK), 0); /* nothing written on errors */
    /* a size too small */
    write_text(mpath, "{\"epoch\": 1, \"loss\": 3.0}\n");
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 100, 100, err, sizeof err), -1);
    ck_assert_msg(strstr(err, ppath) != NULL, "%s", err);
    /* an unwritable destination names the PNG */
    snprintf(ppath, sizeof ppath, "%s/missing-dir/curves.png", tmpdir);
    ck_assert_int_eq(hcga_vis_curves(ppath, mpath, 0, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, ppath) != NULL, "%s", err);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vis");
    TCase *t = hcga_test_tcase(s, "vis");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    HCGA_ADD_TESTS(t, test_part_colors, test_strip_colours, test_strip_errors, test_ranklist_borders,
                   test_ranklists_dataset, test_curves, test_curves_errors);
    return s;
}

int main(void)
{
    return hcga_test_run(suite());
}
