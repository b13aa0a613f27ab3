/*
 * libFuzzer target for the safetensors reader: st_parse on arbitrary bytes
 * must either fail with "fuzz: ..." or return a file whose every tensor lies
 * inside the buffer and converts without reading past it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    st_file *f = st_parse(data, size, "fuzz", err, sizeof err);
    if (!f) {
        if (strncmp(err, "fuzz: ", 6) != 0 || strchr(err, '\n'))
            abort(); /* every error names the input, on one line */
        return 0;
    }
    const unsigned char *lo = f->blob, *hi = lo + f->blob_len;
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        const unsigned char *d = t->data;
        if (d < lo || d > hi || t->nbytes > (uint64_t)(hi - d))
            abort();
        if (st_find(f, t->name) != t)
            abort();
        if (i > 0 && strcmp(f->tensors[i - 1].name, t->name) >= 0)
            abort();
        /* converting reads every element: ASan checks the bounds */
        size_t n = t->numel ? (size_t)t->numel : 1;
        double *dd = malloc(n * sizeof *dd);
        int64_t *ii = malloc(n * sizeof *ii);
        float *ff = malloc(n * sizeof *ff);
        if (dd && ii && ff) {
            int a = st_to_f64(t, dd), b = st_to_i64(t, ii), c = st_to_f32(t, ff);
            if (a != 0 && b != 0)
                abort(); /* every dtype converts one way or the other */
            (void)c;
        }
        free(dd);
        free(ii);
        free(ff);
    }
    for (int i = 0; i < f->n_meta; i++)
        if (st_meta(f, f->meta_keys[i]) == NULL)
            abort();
    st_free(f);
    return 0;
}
