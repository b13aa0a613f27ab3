/*
 * Image reader tests (frontend/data/image_io.c): the path readers
 * hcga_jpeg_read and hcga_png_read on damaged files - every proper prefix of
 * a valid file, corrupt bytes, a wrong format, an empty or missing file, a
 * directory, headers claiming more pixels than HCGA_IMAGE_MAX_PIXELS, a PNG
 * chunk whose length runs past the end - must return -1 with one line naming
 * the file and leave no image, never crash or exit.  The in-memory decoders
 * the fuzz target drives (fuzz/fuzz_image.c) must agree with the path readers.
 * A progressive JPEG over HCGA_JPEG_MAX_SCANS scans is refused, one under is
 * read.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "data/image_io.h"
#include "testutil.h"

static char tmpdir[256];

static void setup_tmp(void)
{
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga_test_image_io_");
}

static void teardown_tmp(void)
{
    ck_assert_int_eq(hcga_test_rm_rf(tmpdir), 0);
}

static void path_in_tmp(char *path, size_t n, const char *name)
{
    snprintf(path, n, "%s/%s", tmpdir, name);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_gt(n, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spill(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

typedef int (*reader)(const char *, hcga_image *, char *, size_t);

/* the reader fails, leaves no image and says one line starting "PATH: " that
 * contains want (when not NULL) */
static void expect_error(reader rd, const char *path, const char *want)
{
    hcga_image img;
    char err[1024] = "";
    int rc = rd(path, &img, err, sizeof err);
    ck_assert_msg(rc == -1, "%s: read returned %d (err \"%s\")", path, rc, err);
    ck_assert_ptr_null(img.data);
    size_t n = strlen(path);
    ck_assert_msg(strncmp(err, path, n) == 0 && strncmp(err + n, ": ", 2) == 0,
                  "error does not start with the file name: \"%s\"", err);
    ck_assert_msg(strchr(err, '\n') == NULL, "error is not one line: \"%s\"", err);
    if (want) ck_assert_msg(strstr(err, want) != NULL, "\"%s\" lacks \"%s\"", err, want);
}

/* a small RGB image with content that does not compress to nothing */
static void write_samples(char *jpg, char *png, size_t n)
{
    hcga_image im;
    char err[1024];
    ck_assert_int_eq(hcga_image_alloc(&im, 21, 13, 3), 0);
    for (int i = 0; i < 21 * 13 * 3; i++) im.data[i] = (uint8_t)(i * 29 + (i / 63) * 7);
    path_in_tmp(jpg, n, "ok.jpg");
    path_in_tmp(png, n, "ok.png");
    ck_assert_msg(hcga_jpeg_write(jpg, &im, 80, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(hcga_png_write(png, &im, err, sizeof err) == 0, "%s", err);
    hcga_image_free(&im);
}

START_TEST(test_every_prefix_fails)
{
    char jpg[512], png[512], cut[512];
    write_samples(jpg, png, sizeof jpg);
    path_in_tmp(cut, sizeof cut, "cut");
    const char *files[2] = {jpg, png};
    reader readers[2] = {hcga_jpeg_read, hcga_png_read};
    for (int k = 0; k < 2; k++) {
        size_t len;
        unsigned char *b = slurp(files[k], &len);
        hcga_image img;
        char err[1024];
        ck_assert_msg(readers[k](files[k], &img, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(img.width, 21);
        ck_assert_int_eq(img.height, 13);
        hcga_image_free(&img);
        /* a truncated image is never used: every shorter file is an error */
        for (size_t n = 0; n < len; n++) {
            spill(cut, b, n);
            expect_error(readers[k], cut, NULL);
        }
        free(b);
    }
}
END_TEST

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

START_TEST(test_corrupt_files)
{
    char jpg[512], png[512], bad[512];
    write_samples(jpg, png, sizeof jpg);
    path_in_tmp(bad, sizeof bad, "bad.img");
    size_t jlen, plen;
    unsigned char *j = slurp(jpg, &jlen), *p = slurp(png, &plen);

    /* missing, empty, a directory, text, each format given to the other */
    path_in_tmp(bad, sizeof bad, "missing.jpg");
    expect_error(hcga_jpeg_read, bad, "cannot open");
    expect_error(hcga_png_read, bad, "cannot open");
    path_in_tmp(bad, sizeof bad, "bad.img");
    spill(bad, "", 0);
    expect_error(hcga_jpeg_read, bad, NULL);
    expect_error(hcga_png_read, bad, "bad signature");
    expect_error(hcga_jpeg_read, tmpdir, NULL);
    expect_error(hcga_png_read, tmpdir, NULL);
    spill(bad, "this is not an image\n", 21);
    expect_error(hcga_jpeg_read, bad, "not a valid JPEG");
    expect_error(hcga_png_read, bad, "bad signature");
    expect_error(hcga_jpeg_read, png, "not a valid JPEG");
    expect_error(hcga_png_read, jpg, "bad signature");

    /* JPEG: the entropy-coded data cut short by an early EOI */
    unsigned char *c = malloc(jlen);
    ck_assert_ptr_nonnull(c);
    memcpy(c, j, jlen);
    c[jlen / 2] = 0xff;
    c[jlen / 2 + 1] = 0xd9;
    spill(bad, c, jlen);
    expect_error(hcga_jpeg_read, bad, "not a valid JPEG");
    /* JPEG: a frame header claiming 65000 x 65000 pixels */
    memcpy(c, j, jlen);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jlen; i++)
        if (c[i] == 0xff && c[i + 1] == 0xc0) {
            sof = i;
            break;
        }
    ck_assert_uint_gt(sof, 0);
    c[sof + 5] = c[sof + 7] = 0xfd; /* height and width, big-endian 0xfde8 */
    c[sof + 6] = c[sof + 8] = 0xe8;
    spill(bad, c, jlen);
    expect_error(hcga_jpeg_read, bad, "over the limit");
    free(c);

    /* PNG: a flipped bit in IDAT's data (its CRC no longer matches) */
    c = malloc(plen);
    ck_assert_ptr_nonnull(c);
    memcpy(c, p, plen);
    size_t idat = 0;
    for (size_t i = 8; i + 8 < plen; i++)
        if (memcmp(c + i, "IDAT", 4) == 0) {
            idat = i;
            break;
        }
    ck_assert_uint_gt(idat, 0);
    c[idat + 6] ^= 0x10;
    spill(bad, c, plen);
    expect_error(hcga_png_read, bad, "not a valid PNG");
    /* PNG: IHDR (with a valid CRC) claiming 16384 x 16384 pixels */
    memcpy(c, p, plen);
    ck_assert_int_eq(memcmp(c + 12, "IHDR", 4), 0);
    put_be32(c + 16, 16384);
    put_be32(c + 20, 16384);
    put_be32(c + 29, crc32_of(c + 12, 17));
    spill(bad, c, plen);
    expect_error(hcga_png_read, bad, "over the limit");
    /* PNG: a text chunk declaring 2 GiB in a file of a few hundred bytes */
    unsigned char *t = malloc(plen + 16);
    ck_assert_ptr_nonnull(t);
    memcpy(t, p, 33); /* signature and IHDR */
    put_be32(t + 33, 0x7fffff00u);
    memcpy(t + 37, "tEXtComment", 11);
    memcpy(t + 48, p + 33, plen - 33); /* then the real IDAT and IEND */
    spill(bad, t, plen + 15);
    expect_error(hcga_png_read, bad, "runs past the end");
    free(t);
    free(c);
    free(j);
    free(p);
}
END_TEST

START_TEST(test_mem_matches_path)
{
    char jpg[512], png[512];
    write_samples(jpg, png, sizeof jpg);
    const char *files[2] = {jpg, png};
    for (int k = 0; k < 2; k++) {
        size_t len;
        unsigned char *b = slurp(files[k], &len);
        hcga_image a, m;
        char err[1024];
        int rc = k ? hcga_png_read(files[k], &a, err, sizeof err)
                   : hcga_jpeg_read(files[k], &a, err, sizeof err);
        ck_assert_msg(rc == 0, "%s", err);
        rc = k ? hcga_png_read_mem(b, len, "mem", &m, err, sizeof err)
               : hcga_jpeg_read_mem(b, len, "mem", &m, err, sizeof err);
        ck_assert_msg(rc == 0, "%s", err);
        ck_assert_int_eq(a.width, m.width);
        ck_assert_int_eq(a.height, m.height);
        ck_assert_int_eq(a.channels, m.channels);
        ck_assert_int_eq(memcmp(a.data, m.data, (size_t)a.width * a.height * a.channels), 0);
        hcga_image_free(&a);
        hcga_image_free(&m);
        /* the name given stands for the file in the in-memory error */
        rc = k ? hcga_png_read_mem(b, len / 2, "mem.png", &m, err, sizeof err)
               : hcga_jpeg_read_mem(b, len / 2, "mem.jpg", &m, err, sizeof err);
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(m.data);
        const char *want = k ? "mem.png: not a valid PNG: " : "mem.jpg: not a valid JPEG: ";
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start \"%s\"", err,
                      want);
        free(b);
    }
}
END_TEST

/* A valid progressive 16x16 RGB JPEG whose script sends every AC coefficient
 * of every component in its own scans, successive approximation starting at
 * bit al_first: 1 + 3 * 63 * (al_first + 1) scans. */
static void write_many_scans(const char *path, int al_first, int *scans)
{
    static jpeg_scan_info sc[1 + 3 * 63 * 4];
    int n = 0;
    sc[n] = (jpeg_scan_info){3, {0, 1, 2, 0}, 0, 0, 0, 0};
    n++;
    for (int c = 0; c < 3; c++)
        for (int k = 1; k < 64; k++)
            for (int al = al_first; al >= 0; al--) {
                sc[n] = (jpeg_scan_info){1, {c, 0, 0, 0}, k, k, al == al_first ? 0 : al + 1, al};
                n++;
            }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = ci.image_height = 16;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    ci.scan_info = sc;
    ci.num_scans = n;
    jpeg_start_compress(&ci, TRUE);
    unsigned char row[48];
    JSAMPROW r = row;
    while (ci.next_scanline < 16) {
        for (int i = 0; i < 48; i++) row[i] = (unsigned char)(i * 5 + ci.next_scanline * 13);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    ck_assert_int_eq(fclose(f), 0);
    *scans = n;
}

START_TEST(test_jpeg_scan_limit)
{
    char path[512];
    path_in_tmp(path, sizeof path, "scans.jpg");
    int n;
    write_many_scans(path, 1, &n);
    ck_assert_int_le(n, HCGA_JPEG_MAX_SCANS);
    hcga_image img;
    char err[1024];
    ck_assert_msg(hcga_jpeg_read(path, &img, err, sizeof err) == 0, "%d scans: %s", n, err);
    ck_assert_int_eq(img.width, 16);
    hcga_image_free(&img);
    write_many_scans(path, 2, &n);
    ck_assert_int_gt(n, HCGA_JPEG_MAX_SCANS);
    expect_error(hcga_jpeg_read, path, "more than 500 scans");
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("image_io", &tc);
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_set_timeout(tc, 60);
    HCGA_ADD_TESTS(tc, test_every_prefix_fails, test_corrupt_files, test_mem_matches_path,
                   test_jpeg_scan_limit);
    return hcga_test_run(s);
}
