/* Dataset tests: name parsing, reading the Market layout, corrupt files, PK
 * sampling, transforms and the background loader's determinism. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "data/synth.h"
#include "testutil.h"

static char tmpdir[256];

static void make_tmp(void)
{
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga_test_dataset_");
}

static void rm_tmp(void)
{
    ck_assert_int_eq(hcga_test_rm_rf(tmpdir), 0);
}

static void synth_into(const char *dir, int ids)
{
    char ids_s[16];
    snprintf(ids_s, sizeof ids_s, "%d", ids);
    char *argv[] = {"synth", "--out", (char *)dir, "--ids", ids_s, "--cams", "3", "--per-cam", "2",
                    "--distractors", "3", NULL};
    ck_assert_int_eq(hcga_synth_main(11, argv), 0);
}

static hcga_aug_cfg test_cfg(void)
{
    hcga_aug_cfg c = {128, 64, 32, 16, 0.5, 0.5, 10, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    return c;
}

START_TEST(test_names)
{
    int pid, cam;
    ck_assert_int_eq(hcga_parse_reid_name("0001_c1s1_000151_01.jpg", &pid, &cam), 0);
    ck_assert_int_eq(pid, 1);
    ck_assert_int_eq(cam, 0);
    ck_assert_int_eq(hcga_parse_reid_name("-1_c3s2_000001_02.jpg", &pid, &cam), 0);
    ck_assert_int_eq(pid, -1);
    ck_assert_int_eq(cam, 2);
    ck_assert_int_eq(hcga_parse_reid_name("0712_c8_f0046182.jpg", &pid, &cam), 0); /* Duke */
    ck_assert_int_eq(pid, 712);
    ck_assert_int_eq(cam, 7);
    ck_assert_int_ne(hcga_parse_reid_name("Thumbs.db", &pid, &cam), 0);
    ck_assert_int_ne(hcga_parse_reid_name("0001_x1.jpg", &pid, &cam), 0);
    ck_assert_int_ne(hcga_parse_reid_name("0001_c0s1.jpg", &pid, &cam), 0);
}
END_TEST

START_TEST(test_read_synth)
{
    make_tmp();
    synth_into(tmpdir, 10);
    hcga_dataset ds;
    char err[4096];
    ck_assert_msg(hcga_dataset_open(tmpdir, &ds, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(ds.num_train_ids, 5);
    ck_assert_int_gt(ds.query.count, 0);
    ck_assert_int_gt(ds.gallery.count, ds.query.count);
    for (int i = 0; i < ds.train.count; i++) {
        ck_assert_int_ge(ds.train.items[i].label, 0);
        ck_assert_int_lt(ds.train.items[i].label, 5);
        ck_assert_int_eq(ds.train_pid_of_label[ds.train.items[i].label], ds.train.items[i].pid);
        if (i) ck_assert_int_lt(strcmp(ds.train.items[i - 1].name, ds.train.items[i].name), 0);
    }
    /* every query has a gallery match from another camera */
    for (int q = 0; q < ds.query.count; q++) {
        int ok = 0;
        for (int g = 0; g < ds.gallery.count; g++)
            ok |= ds.gallery.items[g].pid == ds.query.items[q].pid &&
                  ds.gallery.items[g].cam != ds.query.items[q].cam;
        ck_assert_msg(ok, "query %s has no valid match", ds.query.items[q].name);
    }
    hcga_dataset_free(&ds);
    rm_tmp();
}
END_TEST

START_TEST(test_bad_name_and_corrupt_files)
{
    make_tmp();
    synth_into(tmpdir, 6);
    char path[512], err[4096];
    /* a JPEG with a name that does not parse is an error naming it */
    snprintf(path, sizeof path, "%s/query/badname.jpg", tmpdir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    hcga_dataset ds;
    ck_assert_int_ne(hcga_dataset_open(tmpdir, &ds, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "badname.jpg"));
    unlink(path);
    ck_assert_msg(hcga_dataset_open(tmpdir, &ds, err, sizeof err) == 0, "%s", err);
    /* truncate one training JPEG: the loader stops with an error naming it */
    const char *victim = ds.train.items[1].path;
    hcga_image img;
    ck_assert_int_eq(hcga_jpeg_read(victim, &img, err, sizeof err), 0);
    hcga_image_free(&img);
    ck_assert_int_eq(truncate(victim, 300), 0);
    ck_assert_int_ne(hcga_jpeg_read(victim, &img, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, victim));
    hcga_aug_cfg cfg = test_cfg();
    hcga_loader *l = hcga_loader_new(&ds.train, NULL, 4, 2, 1, &cfg, 4, NULL, NULL, 1, 1, 2);
    ck_assert_ptr_nonnull(l);
    const hcga_batch *b = hcga_loader_next(l);
    ck_assert_ptr_null(b); /* item 1 is in the first batch */
    ck_assert_ptr_nonnull(hcga_loader_error(l));
    ck_assert_ptr_nonnull(strstr(hcga_loader_error(l), victim));
    hcga_loader_free(l);
    /* not an image at all */
    f = fopen(victim, "wb");
    fputs("this is not a jpeg", f);
    fclose(f);
    ck_assert_int_ne(hcga_jpeg_read(victim, &img, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, victim));
    /* PNG round trip and a corrupt PNG */
    hcga_image m;
    ck_assert_int_eq(hcga_image_alloc(&m, 5, 3, 1), 0);
    for (int i = 0; i < 15; i++) m.data[i] = (uint8_t)(i % 4);
    snprintf(path, sizeof path, "%s/m.png", tmpdir);
    ck_assert_int_eq(hcga_png_write(path, &m, err, sizeof err), 0);
    hcga_image back;
    ck_assert_msg(hcga_png_read(path, &back, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(back.width, 5);
    ck_assert_int_eq(back.height, 3);
    ck_assert_int_eq(back.channels, 1);
    ck_assert_int_eq(memcmp(back.data, m.data, 15), 0);
    hcga_image_free(&back);
    hcga_image_free(&m);
    ck_assert_int_eq(truncate(path, 40), 0);
    ck_assert_int_ne(hcga_png_read(path, &back, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, path));
    hcga_dataset_free(&ds);
    rm_tmp();
}
END_TEST

START_TEST(test_pk_sampler)
{
    /* 5 identities with 1, 3, 4, 6, 9 images */
    const int per[5] = {1, 3, 4, 6, 9};
    hcga_split s = {0};
    s.items = calloc(23, sizeof *s.items);
    for (int id = 0, k = 0; id < 5; id++)
        for (int j = 0; j < per[id]; j++, k++) s.items[k].label = id, s.count++;
    int *order, n;
    ck_assert_int_eq(hcga_pk_sample(&s, 5, 2, 4, 7, 1, &order, &n), 0);
    /* chunks of 4: id0 1 (resampled), id1 1 (resampled), id2 1, id3 1, id4 2 -> 6 chunks;
     * batches of 2 distinct ids until fewer than 2 ids remain: at most 3 batches */
    ck_assert_int_eq(n % 8, 0);
    ck_assert_int_ge(n, 16);
    for (int b = 0; b < n / 8; b++) {
        int a = s.items[order[b * 8]].label, c = s.items[order[b * 8 + 4]].label;
        ck_assert_int_ne(a, c);
        for (int j = 0; j < 4; j++) {
            ck_assert_int_eq(s.items[order[b * 8 + j]].label, a);
            ck_assert_int_eq(s.items[order[b * 8 + 4 + j]].label, c);
        }
    }
    int *order2, n2;
    ck_assert_int_eq(hcga_pk_sample(&s, 5, 2, 4, 7, 1, &order2, &n2), 0);
    ck_assert_int_eq(n, n2);
    ck_assert_int_eq(memcmp(order, order2, sizeof(int) * (size_t)n), 0);
    free(order2);
    ck_assert_int_eq(hcga_pk_sample(&s, 5, 2, 4, 7, 2, &order2, &n2), 0);
    ck_assert(n != n2 || memcmp(order, order2, sizeof(int) * (size_t)n) != 0);
    free(order2);
    free(order);
    free(s.items);
}
END_TEST

START_TEST(test_transforms)
{
    hcga_image img;
    ck_assert_int_eq(hcga_image_alloc(&img, 64, 128, 3), 0);
    for (int i = 0; i < 64 * 128 * 3; i++) img.data[i] = (uint8_t)((i * 37) % 251);
    hcga_aug_cfg cfg = test_cfg();
    float *a = malloc(sizeof(float) * 3 * 128 * 64), *b = malloc(sizeof(float) * 3 * 128 * 64);
    ck_assert_int_eq(hcga_transform_test(&img, &cfg, a), 0);
    /* same size: exact normalisation of the pixel */
    ck_assert_float_eq_tol(a[5], (img.data[5 * 3] / 255.0f - 0.485f) / 0.229f, 1e-6f);
    /* flip always, no padding, no erasing: the mirrored test transform, labels mirrored */
    cfg.flip_p = 1.0;
    cfg.erase_p = 0.0;
    cfg.padding = 0;
    int64_t lab[32 * 16];
    for (int i = 0; i < 32 * 16; i++) lab[i] = i % 16 < 4 ? 1 : 0;
    ck_assert_int_eq(hcga_transform_train(&img, &cfg, 3, 9, b, lab), 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 64; x++)
                ck_assert_float_eq(b[(c * 128 + y) * 64 + x], a[(c * 128 + y) * 64 + 63 - x]);
    ck_assert_int_eq(lab[15], 1);
    ck_assert_int_eq(lab[0], 0);
    /* erasing always: some region equals the per-channel mean, and labels get zeros there */
    cfg.flip_p = 0.0;
    cfg.erase_p = 1.0;
    hcga_band_labels(32, 16, 4, lab);
    ck_assert_int_eq(lab[0], 1);
    ck_assert_int_eq(lab[31 * 16], 3);
    ck_assert_int_eq(hcga_transform_train(&img, &cfg, 3, 10, b, lab), 0);
    int zeros = 0, same = 0;
    for (int i = 0; i < 32 * 16; i++) zeros += lab[i] == 0;
    for (int i = 0; i < 128 * 64; i++) same += a[i] != b[i];
    ck_assert_int_gt(zeros, 0);
    ck_assert_int_gt(same, (int)(0.02 * 128 * 64) - 1);
    /* deterministic for (seed, key) */
    float *c2 = malloc(sizeof(float) * 3 * 128 * 64);
    cfg.padding = 10;
    cfg.flip_p = 0.5;
    ck_assert_int_eq(hcga_transform_train(&img, &cfg, 5, 11, b, NULL), 0);
    ck_assert_int_eq(hcga_transform_train(&img, &cfg, 5, 11, c2, NULL), 0);
    ck_assert_int_eq(memcmp(b, c2, sizeof(float) * 3 * 128 * 64), 0);
    /* resize: a constant image stays constant; 2x upscale keeps the size asked */
    hcga_image k, r;
    ck_assert_int_eq(hcga_image_alloc(&k, 7, 5, 3), 0);
    memset(k.data, 99, 7 * 5 * 3);
    ck_assert_int_eq(hcga_resize_u8(&k, 14, 10, &r), 0);
    for (int i = 0; i < 14 * 10 * 3; i++) ck_assert_int_eq(r.data[i], 99);
    hcga_image_free(&r);
    ck_assert_int_eq(hcga_resize_u8(&k, 3, 2, &r), 0);
    for (int i = 0; i < 3 * 2 * 3; i++) ck_assert_int_eq(r.data[i], 99);
    hcga_image_free(&r);
    hcga_image_free(&k);
    free(a);
    free(b);
    free(c2);
    hcga_image_free(&img);
}
END_TEST

START_TEST(test_loader_deterministic)
{
    make_tmp();
    synth_into(tmpdir, 8);
    hcga_dataset ds;
    char err[4096];
    ck_assert_msg(hcga_dataset_open(tmpdir, &ds, err, sizeof err) == 0, "%s", err);
    int *order, n;
    ck_assert_int_eq(hcga_pk_sample(&ds.train, ds.num_train_ids, 2, 2, 1, 1, &order, &n), 0);
    hcga_aug_cfg cfg = test_cfg();
    hcga_loader *l1 = hcga_loader_new(&ds.train, order, n, 4, 1, &cfg, 4, NULL, NULL, 1, 1, 1);
    hcga_loader *l2 = hcga_loader_new(&ds.train, order, n, 4, 1, &cfg, 4, NULL, NULL, 1, 1, 3);
    ck_assert_ptr_nonnull(l1);
    ck_assert_ptr_nonnull(l2);
    int batches = 0;
    for (;;) {
        const hcga_batch *a = hcga_loader_next(l1), *b = hcga_loader_next(l2);
        ck_assert((a == NULL) == (b == NULL));
        if (!a) break;
        ck_assert_int_eq(a->n, b->n);
        ck_assert_int_eq(memcmp(a->images, b->images, sizeof(float) * 3 * 128 * 64 * (size_t)a->n), 0);
        ck_assert_int_eq(memcmp(a->parsing, b->parsing, sizeof(int64_t) * 32 * 16 * (size_t)a->n), 0);
        for (int i = 0; i < a->n; i++) ck_assert_int_eq(a->labels[i], ds.train.items[a->index[i]].label);
        batches++;
    }
    ck_assert_ptr_null(hcga_loader_error(l1));
    ck_assert_int_eq(batches, (n + 3) / 4);
    hcga_loader_free(l1);
    hcga_loader_free(l2);
    free(order);
    hcga_dataset_free(&ds);
    rm_tmp();
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("dataset", &tc);
    tcase_set_timeout(tc, 60);
    HCGA_ADD_TESTS(tc, test_names, test_read_synth, test_bad_name_and_corrupt_files, test_pk_sampler,
                   test_transforms, test_loader_deterministic);
    return hcga_test_run(s);
}
