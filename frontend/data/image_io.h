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

/* Read any JPEG as RGB.  Returns 0, or -1 with "PATH: problem" in err. */
int hcga_jpeg_read(const char *path, hcga_image *img, char *err, size_t err_len);
/* Write RGB (3 channels) at quality 1..100, atomically (PATH.tmp + rename). */
int hcga_jpeg_write(const char *path, const hcga_image *img, int quality, char *err,
                    size_t err_len);

/* Read a PNG: 8-bit gray or palette -> 1 channel (values as stored, no
 * palette expansion for label maps), RGB/RGBA -> 3 channels. */
int hcga_png_read(const char *path, hcga_image *img, char *err, size_t err_len);
/* Write 8-bit gray (1 channel) or RGB (3 channels), atomically. */
int hcga_png_write(const char *path, const hcga_image *img, char *err, size_t err_len);

/* mkdir -p; returns 0 or -1 with err set. */
int hcga_mkdirs(const char *path, char *err, size_t err_len);

#endif
