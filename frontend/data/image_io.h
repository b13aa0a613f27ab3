/*
 * image_io.h - JPEG (libjpeg-turbo) and PNG (libpng) reading and writing.
 * Every error is one line naming the file; nothing here aborts or exits.
 */
#ifndef HCGA_IMAGE_IO_H
#define HCGA_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct hcga_image {
    int width, height, channels; /* channels: 1 (gray / label map) or 3 (RGB) */
    uint8_t *data;               /* row-major, interleaved channels */
} hcga_image;

int hcga_image_alloc(hcga_image *img, int width, int height, int channels);
void hcga_image_free(hcga_image *img);

/* Decompression-bomb guard: the readers refuse an image whose header claims
 * more than HCGA_IMAGE_MAX_PIXELS pixels (width * height), with a one-line
 * error, before allocating anything for it.  1 << 26 (e.g. 8192 x 8192) is far
 * above any ReID crop or label map and bounds one decode to about 200 MB of
 * RGB output (plus libjpeg's coefficient buffers for a progressive JPEG).
 * Overridable with -D for a build that wants a smaller bound. */
#ifndef HCGA_IMAGE_MAX_PIXELS
#define HCGA_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)
#endif
/* A progressive JPEG with more scans than this is refused: every scan costs a
 * pass over the whole coefficient buffer, and encoders write about ten. */
#define HCGA_JPEG_MAX_SCANS 500
/* An image file larger than this is refused before it is read into memory. */
#define HCGA_IMAGE_MAX_FILE_BYTES ((size_t)1 << 28)

/* Read any JPEG as RGB.  Returns 0, or -1 with "PATH: problem" in err. */
int hcga_jpeg_read(const char *path, hcga_image *img, char *err, size_t err_len);
/* The same decoder over LEN bytes in memory (what hcga_jpeg_read runs after
 * reading the file); NAME stands for the file in error messages.  Used by the
 * fuzz target (fuzz/fuzz_image.c). */
int hcga_jpeg_read_mem(const void *buf, size_t len, const char *name, hcga_image *img,
                       char *err, size_t err_len);
/* Write RGB (3 channels) at quality 1..100, atomically (PATH.tmp + rename). */
int hcga_jpeg_write(const char *path, const hcga_image *img, int quality, char *err,
                    size_t err_len);

/* Read a PNG: 8-bit gray or palette -> 1 channel (values as stored, no
 * palette expansion for label maps), RGB/RGBA -> 3 channels. */
int hcga_png_read(const char *path, hcga_image *img, char *err, size_t err_len);
/* The same decoder over LEN bytes in memory, NAME as in hcga_jpeg_read_mem. */
int hcga_png_read_mem(const void *buf, size_t len, const char *name, hcga_image *img,
                      char *err, size_t err_len);
/* Write 8-bit gray (1 channel) or RGB (3 channels), atomically. */
int hcga_png_write(const char *path, const hcga_image *img, char *err, size_t err_len);

/* mkdir -p; returns 0 or -1 with err set. */
int hcga_mkdirs(const char *path, char *err, size_t err_len);

#endif
