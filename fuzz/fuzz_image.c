/*
 * libFuzzer target for the image decoding path of the dataset reader: the
 * bytes go to hcga_png_read_mem when they start like a PNG (first byte 0x89)
 * and to hcga_jpeg_read_mem otherwise, the same decoders that hcga_png_read /
 * hcga_jpeg_read run after reading a file.  A decode must either fail with
 * one line "fuzz: ..." or return an image of sane shape whose every byte is
 * readable (ASan checks the bounds); the image is then freed, so LeakSanitizer
 * sees anything the error paths forget.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    hcga_image img;
    int png = size > 0 && data[0] == 0x89;
    int rc = png ? hcga_png_read_mem(data, size, "fuzz", &img, err, sizeof err)
                 : hcga_jpeg_read_mem(data, size, "fuzz", &img, err, sizeof err);
    if (rc != 0) {
        if (rc != -1 || img.data != NULL || strncmp(err, "fuzz: ", 6) != 0 || strchr(err, '\n'))
            abort(); /* every error names the input, on one line, and leaves no image */
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || !img.data ||
        (uint64_t)img.width * (uint64_t)img.height > HCGA_IMAGE_MAX_PIXELS)
        abort();
    if (png ? (img.channels != 1 && img.channels != 3) : img.channels != 3)
        abort();
    /* read every byte: a buffer shorter than width*height*channels is caught */
    size_t n = (size_t)img.width * (size_t)img.height * (size_t)img.channels;
    volatile unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += img.data[i];
    hcga_image_free(&img);
    return 0;
}
