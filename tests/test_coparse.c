/* Co-parsing tests: DFC post-processing rules on hand-made label maps,
 * k-means on separable features, the band fallback and the round schedule,
 * the ground-truth labels of CLUSTERING.AL gt and their IoU, the guided
 * rule and the method names. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "train/coparse.h"
#include "testutil.h"

/* n = 1, h = 16, w = 4; the boundary rows are 0, 3, 12, 15.  Label 5 fills
 * rows 0-3 and 12-15 and the outer columns -> background.  In the inner
 * columns: label 1 rows 4-5 (mean row 4.5), 2 rows 6-8 (7), 3 rows 9-10
 * (9.5), 4 row 11 (11): lo 4.5, hi 11, s = 6.5/3: 4.5 < lo + s/2 -> head;
 * 7 < lo + 2s = 8.83 -> upper; 9.5 and 11 -> lower. */
START_TEST(test_postprocess_rows)
{
    const int h = 16, w = 4;
    int64_t raw[64];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int64_t l;
            if (y <= 3 || y >= 12 || x == 0 || x == 3) l = 5;
            else if (y <= 5) l = 1;
            else if (y <= 8) l = 2;
            else if (y <= 10) l = 3;
            else l = 4;
            raw[y * w + x] = l;
        }
    uint8_t out[64];
    hcga_dfc_postprocess(raw, 1, h, w, 4, out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int expect;
            if (y <= 3 || y >= 12 || x == 0 || x == 3) expect = 0;
            else if (y <= 5) expect = 1;
            else if (y <= 8) expect = 2;
            else expect = 3;
            ck_assert_msg(out[y * w + x] == expect, "(%d,%d): %d, expected %d", y, x, out[y * w + x], expect);
        }
}
END_TEST

/* The column rule: label 9 only in the first and last columns of rows 4-11
 * (16 pixels > n*h/3 = 5.3, none in the boundary rows) is background.  Label
 * 7 fills rows 0-3 and 12-15 (row rule).  Inner: label 1 rows 4-7 (mean 5.5),
 * label 2 rows 8-11 (9.5): s = 4/3, 5.5 -> head, 9.5 >= lo + 2s -> lower. */
START_TEST(test_postprocess_columns)
{
    const int h = 16, w = 6;
    int64_t raw[96];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            raw[y * w + x] = (y <= 3 || y >= 12) ? 7 : (x == 0 || x == 5) ? 9 : y <= 7 ? 1 : 2;
    uint8_t out[96];
    hcga_dfc_postprocess(raw, 1, h, w, 4, out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int expect = (y <= 3 || y >= 12 || x == 0 || x == 5) ? 0 : y <= 7 ? 1 : 3;
            ck_assert_msg(out[y * w + x] == expect, "(%d,%d): %d, expected %d", y, x, out[y * w + x], expect);
        }
}
END_TEST

START_TEST(test_kmeans_separable)
{
    /* one image 6 x 2, 3 channels: rows 0-1 zero features (background), rows 2-3 direction
     * (1,0,0) strong, rows 4-5 direction (0,1,0) strong -> head/upper by position: 1 then 2
     * with K = 3 (two parts) */
    const int n = 1, c = 3, h = 6, w = 2;
    float f[36] = {0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int p = y * w + x;
            if (y >= 2 && y <= 3) f[0 * 12 + p] = 5.0f;
            if (y >= 4) f[1 * 12 + p] = 5.0f;
        }
    uint8_t lab[12];
    ck_assert_int_eq(hcga_kmeans_labels(f, n, c, h, w, 3, lab), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int expect = y < 2 ? 0 : y < 4 ? 1 : 2;
            ck_assert_msg(lab[y * w + x] == expect, "(%d,%d): %d, expected %d", y, x, lab[y * w + x], expect);
        }
}
END_TEST

START_TEST(test_band_and_schedule)
{
    hcga_pseudo p;
    ck_assert_int_eq(hcga_pseudo_init(&p, 2, 6, 2, 4), 0);
    /* 3 bands of 2 rows: 1, 1, 2, 2, 3, 3 */
    const int expect[6] = {1, 1, 2, 2, 3, 3};
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 6; y++) ck_assert_int_eq(p.maps[i * 12 + y * 2 + 1], expect[y]);
    int64_t l[12];
    char err[256];
    ck_assert_int_eq(hcga_pseudo_label_fn(&p, 1, l, err, sizeof err), 0);
    ck_assert_int_eq(l[11], 3);
    ck_assert_int_ne(hcga_pseudo_label_fn(&p, 2, l, err, sizeof err), 0);
    hcga_pseudo_free(&p);
    char *over[] = {"CLUSTERING.PERIOD", "3", "CLUSTERING.STOP", "7"};
    hcga_config *cfg = hcga_config_load(NULL, 4, over, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    const int due[10] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 0}; /* epochs 1, 4, 7; 10 > STOP */
    for (int e = 1; e <= 10; e++) ck_assert_int_eq(hcga_coparse_due(cfg, e), due[e - 1]);
    hcga_config_free(cfg);
}
END_TEST

/* Two trainings on one dataset and PSEUDO_LABEL_SUBDIR: the second is refused
 * while the first holds the lock; another subdir, or after release, is fine. */
START_TEST(test_pseudo_lock)
{
    char root[] = "/tmp/hcga-test-lock-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    hcga_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.root = root;
    char err[512] = "";
    hcga_config *cfg = hcga_config_load(NULL, 0, NULL, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    char *over[] = {"DATASETS.PSEUDO_LABEL_SUBDIR", "other_labels"};
    hcga_config *cfg2 = hcga_config_load(NULL, 2, over, err, sizeof err);
    ck_assert_msg(cfg2 != NULL, "%s", err);

    int a = hcga_pseudo_lock(cfg, &ds, err, sizeof err);
    ck_assert_msg(a >= 0, "%s", err);
    err[0] = 0;
    ck_assert_int_eq(hcga_pseudo_lock(cfg, &ds, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "in use by another hcga train") && strstr(err, root),
                  "error '%s' names neither the conflict nor the directory", err);
    int c = hcga_pseudo_lock(cfg2, &ds, err, sizeof err);
    ck_assert_msg(c >= 0, "%s", err);
    close(a);
    int b = hcga_pseudo_lock(cfg, &ds, err, sizeof err);
    ck_assert_msg(b >= 0, "after release: %s", err);
    close(b);
    close(c);

    char path[512];
    const char *subs[2] = {hcga_cfg_str(cfg, "DATASETS.PSEUDO_LABEL_SUBDIR"), "other_labels"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/.hcga-train.lock", root, subs[i]);
        ck_assert_int_eq(unlink(path), 0);
        snprintf(path, sizeof path, "%s/%s", root, subs[i]);
        ck_assert_int_eq(rmdir(path), 0);
    }
    ck_assert_int_eq(rmdir(root), 0);
    hcga_config_free(cfg);
    hcga_config_free(cfg2);
}
END_TEST

/* CLUSTERING.AL kmeans_border on a 2-image identity, 16 x 10 maps, 4
 * channels: the background (columns 0-1 and 8-9 everywhere, and rows 0-1
 * and 14-15) has direction e0, the person in columns 2-7 has e1 (rows
 * 2-4, head), e2 (rows 5-8, upper) and e3 (rows 9-13, lower) with a small
 * colour-like variation: the border rule finds the background by the
 * side columns and the parts come out top to bottom (all norms are about
 * equal here, so ISP's norm rule has nothing to split). */
START_TEST(test_kmeans_border)
{
    const int n = 2, c = 4, h = 16, w = 10, HW = h * w;
    float *f = calloc((size_t)n * c * HW, sizeof(float));
    uint8_t *lab = malloc((size_t)n * HW);
    ck_assert(f && lab);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int person = x >= 2 && x <= 7 && y >= 2 && y <= 13;
                int ch = !person ? 0 : y <= 4 ? 1 : y <= 8 ? 2 : 3;
                f[((size_t)i * c + ch) * HW + y * w + x] = 1.0f;
                f[((size_t)i * c + (ch + 1) % c) * HW + y * w + x] = 0.05f * (float)((x + y + i) % 3);
            }
    ck_assert_int_eq(hcga_kmeans_labels_fg(f, n, c, h, w, 4, HCGA_FG_BORDER, lab), 0);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int person = x >= 2 && x <= 7 && y >= 2 && y <= 13;
                int expect = !person ? 0 : y <= 4 ? 1 : y <= 8 ? 2 : 3;
                ck_assert_msg(lab[i * HW + y * w + x] == expect, "image %d (%d,%d): %d, expected %d", i, y, x,
                              lab[i * HW + y * w + x], expect);
            }
    free(f);
    free(lab);
}
END_TEST

/* CLUSTERING.AL gt: the masks become the labels (nearest-resized, values
 * >= K clamped to K-1), score IoU 1 against themselves; a missing mask is
 * reported as 1 with the file named. */
START_TEST(test_pseudo_from_masks)
{
    char root[] = "/tmp/hcga-test-gt-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char dir[256], path[512], err[512] = "";
    snprintf(dir, sizeof dir, "%s/parts/bounding_box_train", root);
    ck_assert_int_eq(hcga_mkdirs(dir, err, sizeof err), 0);
    /* an 8 x 4 mask: rows 0-1 label 1, 2-3 label 2, 4-5 label 3, 6-7 label 9 (clamped to 3) */
    uint8_t px[32];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 4; x++) px[y * 4 + x] = (uint8_t)(y < 2 ? 1 : y < 4 ? 2 : y < 6 ? 3 : 9);
    px[0] = 0;
    hcga_image m = {4, 8, 1, px};
    snprintf(path, sizeof path, "%s/0001_c1s1_000001_01.png", dir);
    ck_assert_msg(hcga_png_write(path, &m, err, sizeof err) == 0, "%s", err);
    hcga_item items[2] = {{NULL, "0001_c1s1_000001_01", 1, 0, 0}, {NULL, "0001_c2s1_000002_01", 1, 0, 1}};
    hcga_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.root = root;
    ds.train.items = items;
    ds.train.count = 1;
    hcga_pseudo p;
    ck_assert_int_eq(hcga_pseudo_init(&p, 1, 4, 2, 4), 0); /* half resolution */
    ck_assert_msg(hcga_pseudo_from_masks(&p, &ds, err, sizeof err) == 0, "%s", err);
    const uint8_t want[8] = {1, 1, 2, 2, 3, 3, 3, 3};
    for (int k = 0; k < 8; k++) ck_assert_int_eq(p.maps[k], want[k]);
    double iou[4], miou;
    ck_assert_int_eq(hcga_pseudo_miou(&p, &ds, iou, &miou, err, sizeof err), 0);
    ck_assert(miou == 1.0 && iou[1] == 1.0 && iou[2] == 1.0 && iou[3] == 1.0);
    /* swap head and upper body: those two score 0 */
    for (int k = 0; k < 8; k++) p.maps[k] = p.maps[k] == 1 ? 2 : p.maps[k] == 2 ? 1 : p.maps[k];
    ck_assert_int_eq(hcga_pseudo_miou(&p, &ds, iou, &miou, err, sizeof err), 0);
    ck_assert(iou[1] == 0.0 && iou[2] == 0.0 && iou[3] == 1.0 && fabs(miou - 1.0 / 3) < 1e-12);
    hcga_pseudo_free(&p);
    ds.train.count = 2;
    ck_assert_int_eq(hcga_pseudo_init(&p, 2, 4, 2, 4), 0);
    ck_assert_int_eq(hcga_pseudo_from_masks(&p, &ds, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "0001_c2s1_000002_01.png"), "error '%s' does not name the missing mask", err);
    hcga_pseudo_free(&p);
    ck_assert_int_eq(hcga_test_rm_rf(root), 0);
}
END_TEST

/* CLUSTERING.AL guided on 2 images of 4 x 1 pixels, K = 3, features along
 * e0 (background), e1 (part 1), e2 (part 2).  Image 0 is parsed
 * confidently (p = 0.9), so the prototypes are e0, e1, e2.  Image 1: pixel
 * 0 is e1 but the head leans to background (0.45 / 0.35 / 0.2): the
 * prototype term (4 x cos = 4) outweighs log(0.45/0.35) and makes it part
 * 1; pixel 1 has no feature (cos 0 to all) and probabilities 0.4 / 0.35 /
 * 0.25: background, unless the last round said 2 (prior 4 > log(0.4/0.25));
 * pixel 2 is a confident background (0.98, e0) that the last round's 1
 * does not move (log 0.98 + 4 for its prototype > log 0.01 + 4 for the
 * prior); pixel 3 is e2 with a flat head (1/3 each): part 2. */
START_TEST(test_guided)
{
    const int n = 2, c = 3, h = 4, w = 1, K = 3, HW = h * w;
    float f[2 * 3 * 4] = {0}, pr[2 * 3 * 4];
    const int img0[4] = {0, 1, 2, 0};
    const float p1[4][3] = {{0.45f, 0.35f, 0.2f}, {0.4f, 0.35f, 0.25f}, {0.98f, 0.01f, 0.01f}, {1 / 3.f, 1 / 3.f, 1 / 3.f}};
    const int feat1[4] = {1, -1, 0, 2};
    for (int p = 0; p < HW; p++) {
        f[(0 * c + img0[p]) * HW + p] = 2.0f; /* any norm: features are normalised */
        for (int k = 0; k < K; k++) pr[(0 * K + k) * HW + p] = k == img0[p] ? 0.9f : 0.05f;
        if (feat1[p] >= 0) f[(1 * c + feat1[p]) * HW + p] = 1.0f;
        for (int k = 0; k < K; k++) pr[(1 * K + k) * HW + p] = p1[p][k];
    }
    uint8_t lab[8], prev[8] = {0, 1, 2, 0, 1, 2, 1, 2};
    ck_assert_int_eq(hcga_guided_labels(f, pr, NULL, n, c, h, w, K, lab), 0);
    const uint8_t want[8] = {0, 1, 2, 0, 1, 0, 0, 2};
    for (int q = 0; q < 8; q++) ck_assert_msg(lab[q] == want[q], "pixel %d: %d, expected %d", q, lab[q], want[q]);
    ck_assert_int_eq(hcga_guided_labels(f, pr, prev, n, c, h, w, K, lab), 0);
    const uint8_t want_prev[8] = {0, 1, 2, 0, 1, 2, 0, 2};
    for (int q = 0; q < 8; q++)
        ck_assert_msg(lab[q] == want_prev[q], "with the prior, pixel %d: %d, expected %d", q, lab[q], want_prev[q]);
    /* the argmax of the head alone would make image 1's pixel 0 background */
    ck_assert(p1[0][0] > p1[0][1]);
}
END_TEST

/* CLUSTERING.AL: every method by its value (and alias), anything else an
 * error that lists them */
START_TEST(test_method_names)
{
    const char *vals[] = {"dfc", "DFC", "kmeans", "Kmeans", "kmeans_border", "guided", "kmeans_guided"};
    const int want[] = {HCGA_CP_DFC, HCGA_CP_DFC, HCGA_CP_KMEANS, HCGA_CP_KMEANS, HCGA_CP_BORDER, HCGA_CP_GUIDED, -1};
    for (int i = 0; i < 7; i++) {
        const char *over[] = {"CLUSTERING.AL", vals[i]};
        char err[512] = "";
        hcga_config *cfg = hcga_config_load(NULL, 2, (char *const *)over, err, sizeof err);
        ck_assert_msg(cfg, "%s", err);
        ck_assert_int_eq(hcga_coparse_method_of(cfg, err, sizeof err), want[i]);
        if (want[i] < 0)
            ck_assert_msg(strstr(err, "'kmeans_guided'") && strstr(err, "dfc, kmeans, kmeans_border, guided"),
                          "error '%s'", err);
        hcga_config_free(cfg);
    }
    ck_assert_str_eq(hcga_coparse_method_name(HCGA_CP_DFC), "DFC");
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("coparse", &tc);
    HCGA_ADD_TESTS(tc, test_postprocess_rows, test_postprocess_columns, test_kmeans_separable,
                   test_band_and_schedule, test_pseudo_lock, test_pseudo_from_masks,
                   test_kmeans_border, test_guided, test_method_names);
    return hcga_test_run(s);
}
