/*
 * Writes the seed corpus of the image fuzz target (fuzz/fuzz_image.c) into
 * DIR: small valid JPEG and PNG files covering what the decoders branch on.
 * Plain RGB JPEG and gray/RGB PNG come from the project's own writers
 * (hcga_jpeg_write, hcga_png_write); the variants those writers do not
 * produce (gray, progressive, arithmetic-coded, restart markers, 4:4:4 JPEG;
 * palette, RGBA, gray+alpha, 1/2/4/16-bit, Adam7, tRNS and text PNG) are
 * written here through libjpeg and libpng.  Sizes are 1x1 and odd (not a
 * multiple of the 8x8/16x16 MCU) to reach the edge handling.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "data/image_io.h"

static const char *dir;

static void path_of(char *path, size_t n, const char *name)
{
    snprintf(path, n, "%s/%s", dir, name);
}

static uint8_t pixel(int x, int y, int c)
{
    return (uint8_t)(x * 37 + y * 11 + c * 85 + ((x ^ y) & 4) * 16);
}

/* through the project's writers */
static void own_writers(const char *name, int w, int h, int channels, int jpeg)
{
    char path[4096], err[512];
    hcga_image img;
    if (hcga_image_alloc(&img, w, h, channels)) exit(1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                img.data[((size_t)y * w + x) * channels + c] = pixel(x, y, c);
    path_of(path, sizeof path, name);
    int rc = jpeg ? hcga_jpeg_write(path, &img, 75, err, sizeof err)
                  : hcga_png_write(path, &img, err, sizeof err);
    hcga_image_free(&img);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

enum { J_PROGRESSIVE = 1, J_ARITH = 2, J_RESTART = 4, J_444 = 8, J_OPTIMIZE = 16 };

/* libjpeg's default error handler exits with a message: fine for a generator */
static void jpeg_seed(const char *name, int w, int h, int gray, int flags)
{
    char path[4096];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = gray ? 1 : 3;
    ci.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 60, TRUE);
    if (flags & J_PROGRESSIVE) jpeg_simple_progression(&ci);
    if (flags & J_ARITH) ci.arith_code = TRUE;
    if (flags & J_RESTART) ci.restart_interval = 1;
    if (flags & J_OPTIMIZE) ci.optimize_coding = TRUE;
    if ((flags & J_444) && !gray)
        for (int c = 0; c < 3; c++) ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    jpeg_start_compress(&ci, TRUE);
    int comps = gray ? 1 : 3;
    JSAMPLE *row = malloc((size_t)w * comps);
    if (!row) exit(1);
    while (ci.next_scanline < ci.image_height) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) row[x * comps + c] = pixel(x, (int)ci.next_scanline, c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* libpng's default error handler aborts the process: fine for a generator */
static void png_seed(const char *name, int w, int h, int color_type, int depth, int interlace,
                     int extras)
{
    char path[4096];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !info) {
        perror(path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[16];
        png_byte alpha[16];
        int n = depth >= 4 ? 16 : 1 << depth;
        for (int i = 0; i < n; i++) {
            pal[i].red = pixel(i, 0, 0);
            pal[i].green = pixel(i, 0, 1);
            pal[i].blue = pixel(i, 0, 2);
            alpha[i] = (png_byte)(255 - i * 8);
        }
        png_set_PLTE(png, info, pal, n);
        if (extras) png_set_tRNS(png, info, alpha, n, NULL);
    }
    if (extras) {
        png_text t[2];
        memset(t, 0, sizeof t);
        t[0].compression = PNG_TEXT_COMPRESSION_NONE;
        t[0].key = "Comment";
        t[0].text = "hcga fuzz seed";
        t[1].compression = PNG_TEXT_COMPRESSION_zTXt;
        t[1].key = "Description";
        t[1].text = "compressed text chunk, compressed text chunk";
        png_set_text(png, info, t, 2);
        png_set_gAMA(png, info, 0.45455);
        png_set_pHYs(png, info, 2835, 2835, PNG_RESOLUTION_METER);
    }
    png_write_info(png, info);
    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep data = calloc((size_t)h, rowbytes);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    if (!data || !rows) exit(1);
    int maxv = (1 << depth) - 1;
    if (color_type == PNG_COLOR_TYPE_PALETTE) maxv = (depth >= 4 ? 16 : 1 << depth) - 1;
    for (int y = 0; y < h; y++) {
        rows[y] = data + (size_t)y * rowbytes;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                unsigned v = (unsigned)(pixel(x, y, c) * 257u) % (unsigned)(maxv + 1);
                size_t s = (size_t)x * channels + c; /* sample index in the row */
                if (depth == 16) {
                    rows[y][2 * s] = (png_byte)(v >> 8);
                    rows[y][2 * s + 1] = (png_byte)v;
                } else if (depth == 8) {
                    rows[y][s] = (png_byte)v;
                } else {
                    size_t bit = s * depth;
                    rows[y][bit / 8] |= (png_byte)(v << (8 - depth - bit % 8));
                }
            }
    }
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(data);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_image_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    own_writers("rgb_13x7.jpg", 13, 7, 3, 1);
    own_writers("rgb_1x1.jpg", 1, 1, 3, 1);
    own_writers("gray_5x3.png", 5, 3, 1, 0);
    own_writers("rgb_9x17.png", 9, 17, 3, 0);
    own_writers("gray_1x1.png", 1, 1, 1, 0);

    jpeg_seed("gray_11x9.jpg", 11, 9, 1, 0);
    jpeg_seed("gray_1x1_prog.jpg", 1, 1, 1, J_PROGRESSIVE);
    jpeg_seed("rgb_17x15_prog.jpg", 17, 15, 0, J_PROGRESSIVE);
    jpeg_seed("rgb_19x5_prog444.jpg", 19, 5, 0, J_PROGRESSIVE | J_444);
    jpeg_seed("rgb_9x9_arith.jpg", 9, 9, 0, J_ARITH);
    jpeg_seed("rgb_10x6_arith_prog.jpg", 10, 6, 0, J_ARITH | J_PROGRESSIVE);
    jpeg_seed("rgb_23x17_restart.jpg", 23, 17, 0, J_RESTART | J_OPTIMIZE);
    jpeg_seed("rgb_7x21_444.jpg", 7, 21, 0, J_444);

    png_seed("gray1_9x3.png", 9, 3, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    png_seed("gray2_5x5.png", 5, 5, PNG_COLOR_TYPE_GRAY, 2, 0, 0);
    png_seed("gray4_3x7.png", 3, 7, PNG_COLOR_TYPE_GRAY, 4, 0, 0);
    png_seed("gray16_4x3.png", 4, 3, PNG_COLOR_TYPE_GRAY, 16, 0, 0);
    png_seed("graya_6x5.png", 6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0);
    png_seed("pal1_7x2.png", 7, 2, PNG_COLOR_TYPE_PALETTE, 1, 0, 0);
    png_seed("pal4_5x3_trns.png", 5, 3, PNG_COLOR_TYPE_PALETTE, 4, 0, 1);
    png_seed("pal8_3x3.png", 3, 3, PNG_COLOR_TYPE_PALETTE, 8, 0, 0);
    png_seed("rgb16_3x2.png", 3, 2, PNG_COLOR_TYPE_RGB, 16, 0, 0);
    png_seed("rgba_7x5.png", 7, 5, PNG_COLOR_TYPE_RGBA, 8, 0, 1);
    png_seed("rgba_1x1.png", 1, 1, PNG_COLOR_TYPE_RGBA, 8, 0, 0);
    png_seed("rgb_11x9_adam7.png", 11, 9, PNG_COLOR_TYPE_RGB, 8, 1, 0);
    png_seed("gray2_9x10_adam7.png", 9, 10, PNG_COLOR_TYPE_GRAY, 2, 1, 1);
    return 0;
}
