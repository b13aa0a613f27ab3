/*
 * image_io.c - JPEG and PNG I/O with one-line errors naming the file.
 */
#include "data/image_io.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

int hcga_image_alloc(hcga_image *img, int width, int height, int channels)
{
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->data = calloc((size_t)width * (size_t)height * (size_t)channels, 1);
    return img->data ? 0 : -1;
}

void hcga_image_free(hcga_image *img)
{
    free(img->data);
    img->data = NULL;
}

int hcga_mkdirs(const char *path, char *err, size_t err_len)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        snprintf(err, err_len, "%s: path is empty or too long", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, err_len, "%s: cannot create directory: %s", buf, strerror(errno));
                return -1;
            }
            buf[i] = c;
        }
    }
    return 0;
}

/* Finish an atomic write: fsync+close tmp, then rename over path. */
static int finish_atomic(FILE *f, const char *tmp, const char *path, char *err, size_t err_len)
{
    int bad = fflush(f) != 0 || ferror(f);
    if (!bad) bad = fsync(fileno(f)) != 0;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        snprintf(err, err_len, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_len, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* ---- JPEG -------------------------------------------------------------- */

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
};

static void jerr_exit(j_common_ptr cinfo)
{
    struct jerr *e = (struct jerr *)cinfo->err;
    longjmp(e->jb, 1);
}

/* Corrupt data is reported by libjpeg as warnings (it pads with gray);
 * treat any warning as an error so a truncated file is never used silently. */
static void jerr_emit(j_common_ptr cinfo, int level)
{
    if (level < 0) {
        struct jerr *e = (struct jerr *)cinfo->err;
        longjmp(e->jb, 1);
    }
}

int hcga_jpeg_read(const char *path, hcga_image *img, char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    struct jerr je;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    je.pub.emit_message = jerr_emit;
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile data = NULL;
    if (setjmp(je.jb)) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
        snprintf(err, err_len, "%s: not a valid JPEG: %s", path, msg);
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        free(data);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    if (w <= 0 || h <= 0 || cinfo.output_components != 3) {
        snprintf(err, err_len, "%s: unsupported JPEG (%dx%d, %d components)", path, w, h,
                 cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return -1;
    }
    data = malloc((size_t)w * (size_t)h * 3);
    if (!data) {
        snprintf(err, err_len, "%s: out of memory for %dx%d image", path, w, h);
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = data + (size_t)cinfo.output_scanline * (size_t)w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    img->width = w;
    img->height = h;
    img->channels = 3;
    img->data = data;
    return 0;
}

int hcga_jpeg_write(const char *path, const hcga_image *img, int quality, char *err,
                    size_t err_len)
{
    if (img->channels != 3) {
        snprintf(err, err_len, "%s: JPEG writer needs RGB, got %d channels", path, img->channels);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    struct jpeg_compress_struct cinfo;
    struct jerr je;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    if (setjmp(je.jb)) {
        snprintf(err, err_len, "%s: JPEG compression failed", path);
        jpeg_destroy_compress(&cinfo);
        fclose(f);
        remove(tmp);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->data + (size_t)cinfo.next_scanline * (size_t)img->width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return finish_atomic(f, tmp, path, err, err_len);
}

/* ---- PNG --------------------------------------------------------------- */

struct png_ctx {
    char *err;
    size_t err_len;
    const char *path;
};

static void png_err_fn(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->err, c->err_len, "%s: not a valid PNG: %s", c->path, msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int hcga_png_read(const char *path, hcga_image *img, char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        snprintf(err, err_len, "%s: not a PNG file (bad signature)", path);
        fclose(f);
        return -1;
    }
    struct png_ctx ctx = {err, err_len, path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        snprintf(err, err_len, "%s: out of memory", path);
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(f);
        return -1;
    }
    uint8_t *volatile data = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(data);
        free(rows);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int ct = png_get_color_type(png, info), bd = png_get_bit_depth(png, info);
    if (bd == 16) png_set_strip_16(png);
    if (bd < 8 && ct == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);
    if (bd < 8 && ct == PNG_COLOR_TYPE_PALETTE) png_set_packing(png);
    int channels;
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_PALETTE) {
        channels = 1;
    } else if (ct == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_strip_alpha(png);
        channels = 1;
    } else {
        if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
        channels = 3;
    }
    png_read_update_info(png, info);
    if ((int)png_get_rowbytes(png, info) != w * channels) {
        snprintf(err, err_len, "%s: unsupported PNG layout", path);
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    data = malloc((size_t)w * (size_t)h * (size_t)channels);
    rows = malloc(sizeof *rows * (size_t)h);
    if (!data || !rows) {
        snprintf(err, err_len, "%s: out of memory", path);
        png_longjmp(png, 1);
    }
    for (int y = 0; y < h; y++) rows[y] = data + (size_t)y * (size_t)w * (size_t)channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    img->width = w;
    img->height = h;
    img->channels = channels;
    img->data = data;
    return 0;
}

int hcga_png_write(const char *path, const hcga_image *img, char *err, size_t err_len)
{
    if (img->channels != 1 && img->channels != 3) {
        snprintf(err, err_len, "%s: PNG writer needs 1 or 3 channels, got %d", path, img->channels);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    struct png_ctx ctx = {err, err_len, path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        snprintf(err, err_len, "%s: out of memory", path);
        png_destroy_write_struct(png ? &png : NULL, NULL);
        fclose(f);
        remove(tmp);
        return -1;
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        free(rows);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    rows = malloc(sizeof *rows * (size_t)img->height);
    if (!rows) {
        snprintf(err, err_len, "%s: out of memory", path);
        png_longjmp(png, 1);
    }
    for (int y = 0; y < img->height; y++)
        rows[y] = img->data + (size_t)y * (size_t)img->width * (size_t)img->channels;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return finish_atomic(f, tmp, path, err, err_len);
}
