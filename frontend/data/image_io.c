/*
 * image_io.c - JPEG and PNG I/O with one-line errors naming the file.
 */
#include "data/image_io.h"

#include <errno.h>
#include <limits.h>
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

/* ---- reading a whole file ------------------------------------------------ */

/* The readers load the file into memory and decode from there, so that the
 * path readers and the fuzz target run one decoder: libjpeg has its own memory
 * source (jpeg_mem_src) and libpng takes a read callback, whereas fmemopen
 * would add a glibc stdio layer (and refuses a zero-length buffer) that no
 * file read goes through.  Images here are small crops; the whole-file read is
 * bounded by HCGA_IMAGE_MAX_FILE_BYTES. */
static int read_whole(const char *path, unsigned char **out, size_t *out_len, char *err,
                      size_t err_len)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* a regular file is read in one go (its size + 1, to see the end);
     * anything else grows from 64 KiB */
    struct stat st;
    size_t first = 65536, cap = 0, len = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        first = (uint64_t)st.st_size < HCGA_IMAGE_MAX_FILE_BYTES ? (size_t)st.st_size + 1
                                                                 : HCGA_IMAGE_MAX_FILE_BYTES + 1;
    unsigned char *buf = NULL;
    for (;;) {
        if (len == cap) {
            if (cap > HCGA_IMAGE_MAX_FILE_BYTES) {
                snprintf(err, err_len, "%s: file is larger than %zu bytes", path,
                         (size_t)HCGA_IMAGE_MAX_FILE_BYTES);
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : first;
            if (ncap > HCGA_IMAGE_MAX_FILE_BYTES + 1) ncap = HCGA_IMAGE_MAX_FILE_BYTES + 1;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                snprintf(err, err_len, "%s: out of memory reading %zu bytes", path, ncap);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                snprintf(err, err_len, "%s: read failed: %s", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    fclose(f);
    free(buf);
    return -1;
}

static int too_many_pixels(const char *name, const char *kind, uint64_t w, uint64_t h,
                           char *err, size_t err_len)
{
    if (w * h <= HCGA_IMAGE_MAX_PIXELS) return 0;
    snprintf(err, err_len, "%s: %s of %llux%llu pixels is over the limit of %llu pixels", name,
             kind, (unsigned long long)w, (unsigned long long)h,
             (unsigned long long)HCGA_IMAGE_MAX_PIXELS);
    return 1;
}

/* ---- JPEG -------------------------------------------------------------- */

/* libjpeg's default error_exit calls exit(): every error and (see jerr_emit)
 * every warning longjmps back to the reader instead. */
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

/* Called by libjpeg while it reads the input: stop a progressive JPEG at
 * HCGA_JPEG_MAX_SCANS scans.  setjmp value 2: the message is in err already. */
struct jprog {
    struct jpeg_progress_mgr pub;
    struct jerr *je;
    const char *name;
    char *err;
    size_t err_len;
};

static void jprog_monitor(j_common_ptr cinfo)
{
    struct jprog *p = (struct jprog *)cinfo->progress;
    if (cinfo->is_decompressor &&
        ((j_decompress_ptr)cinfo)->input_scan_number > HCGA_JPEG_MAX_SCANS) {
        snprintf(p->err, p->err_len, "%s: not a valid JPEG: more than %d scans", p->name,
                 HCGA_JPEG_MAX_SCANS);
        longjmp(p->je->jb, 2);
    }
}

int hcga_jpeg_read(const char *path, hcga_image *img, char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
    unsigned char *buf;
    size_t len;
    if (read_whole(path, &buf, &len, err, err_len)) return -1;
    int rc = hcga_jpeg_read_mem(buf, len, path, img, err, err_len);
    free(buf);
    return rc;
}

int hcga_jpeg_read_mem(const void *buf, size_t len, const char *name, hcga_image *img,
                       char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
#if SIZE_MAX > ULONG_MAX
    if (len > ULONG_MAX) {
        snprintf(err, err_len, "%s: file too large for libjpeg", name);
        return -1;
    }
#endif
    struct jpeg_decompress_struct cinfo;
    struct jerr je;
    struct jprog prog = {.je = &je, .name = name, .err = err, .err_len = err_len};
    prog.pub.progress_monitor = jprog_monitor;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    je.pub.emit_message = jerr_emit;
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile data = NULL;
    /* 1: a libjpeg error or warning, still to format; 2: err is written */
    switch (setjmp(je.jb)) {
    case 0:
        break;
    case 1: {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
        snprintf(err, err_len, "%s: not a valid JPEG: %s", name, msg);
        jpeg_destroy_decompress(&cinfo);
        free(data);
        return -1;
    }
    default:
        jpeg_destroy_decompress(&cinfo);
        free(data);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &prog.pub; /* after create, which clears the struct */
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (too_many_pixels(name, "JPEG", cinfo.image_width, cinfo.image_height, err, err_len))
        longjmp(je.jb, 2);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    if (w <= 0 || h <= 0 || cinfo.output_components != 3) {
        snprintf(err, err_len, "%s: unsupported JPEG (%dx%d, %d components)", name, w, h,
                 cinfo.output_components);
        longjmp(je.jb, 2);
    }
    data = malloc((size_t)w * (size_t)h * 3);
    if (!data) {
        snprintf(err, err_len, "%s: out of memory for %dx%d image", name, w, h);
        longjmp(je.jb, 2);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = data + (size_t)cinfo.output_scanline * (size_t)w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
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

/* libpng calls png_err_fn for every error: it writes the one-line message and
 * longjmps to the reader's setjmp (libpng never returns from an error). */
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

/* libpng read callback over a memory buffer; a short read is libpng's own
 * "Read Error", as with a truncated file through stdio. */
struct png_src {
    const unsigned char *p;
    size_t left;
};

static void png_mem_read(png_structp png, png_bytep out, size_t n)
{
    struct png_src *s = png_get_io_ptr(png);
    if (n > s->left) png_error(png, "Read Error");
    memcpy(out, s->p, n);
    s->p += n;
    s->left -= n;
}

/* libpng trusts a chunk's length field: for tEXt, zTXt, iTXt, iCCP, sPLT,
 * pCAL, sCAL and eXIf it allocates the whole declared length (up to 2 GiB)
 * before reading a byte of it, so a 100-byte file can cost gigabytes.  With
 * the whole file in memory, walk the chunks first and refuse one whose length
 * runs past the end of the data: libpng would fail on it anyway ("Read
 * Error"), only after the allocation.  Chunks after IEND are never read. */
static int png_chunks_fit(const unsigned char *p, size_t len, const char *name, char *err,
                          size_t err_len)
{
    size_t off = 8;
    while (len - off >= 8) {
        uint32_t n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                     (uint32_t)p[off + 2] << 8 | p[off + 3];
        const unsigned char *t = p + off + 4;
        if ((uint64_t)n + 12 > len - off) {
            char type[5];
            for (int i = 0; i < 4; i++)
                type[i] = (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z') ? (char)t[i]
                                                                                     : '?';
            type[4] = '\0';
            snprintf(err, err_len,
                     "%s: not a valid PNG: chunk %s of %lu bytes runs past the end of the file",
                     name, type, (unsigned long)n);
            return -1;
        }
        off += (size_t)n + 12;
        if (memcmp(t, "IEND", 4) == 0) break;
    }
    return 0;
}

int hcga_png_read(const char *path, hcga_image *img, char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
    unsigned char *buf;
    size_t len;
    if (read_whole(path, &buf, &len, err, err_len)) return -1;
    int rc = hcga_png_read_mem(buf, len, path, img, err, err_len);
    free(buf);
    return rc;
}

int hcga_png_read_mem(const void *buf, size_t len, const char *name, hcga_image *img,
                      char *err, size_t err_len)
{
    memset(img, 0, sizeof *img);
    if (len < 8 || png_sig_cmp(buf, 0, 8) != 0) {
        snprintf(err, err_len, "%s: not a PNG file (bad signature)", name);
        return -1;
    }
    if (png_chunks_fit(buf, len, name, err, err_len)) return -1;
    struct png_src src = {(const unsigned char *)buf + 8, len - 8};
    struct png_ctx ctx = {err, err_len, name};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        snprintf(err, err_len, "%s: out of memory", name);
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return -1;
    }
    /* every path to this longjmp target has written err */
    uint8_t *volatile data = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(data);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, &src, png_mem_read);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 uw = png_get_image_width(png, info), uh = png_get_image_height(png, info);
    if (too_many_pixels(name, "PNG", uw, uh, err, err_len)) png_longjmp(png, 1);
    int w = (int)uw, h = (int)uh;
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
    /* Adam7: png_read_image de-interlaces into the full rows */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels) {
        snprintf(err, err_len, "%s: unsupported PNG layout", name);
        png_longjmp(png, 1);
    }
    data = malloc((size_t)w * (size_t)h * (size_t)channels);
    rows = malloc(sizeof *rows * (size_t)h);
    if (!data || !rows) {
        snprintf(err, err_len, "%s: out of memory", name);
        png_longjmp(png, 1);
    }
    for (int y = 0; y < h; y++) rows[y] = data + (size_t)y * (size_t)w * (size_t)channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
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
