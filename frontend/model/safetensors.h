/*
 * safetensors.h - read and write the safetensors format.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON (an object
 * mapping tensor names to {"dtype","shape","data_offsets":[b,e]}, plus an
 * optional "__metadata__" string->string map), then the data.  The reader
 * checks everything before trusting it: header length within the file and
 * <= 100 MB, valid JSON, known dtype, shape product * dtype size == e - b,
 * offsets inside the data, no overlaps, no duplicate names.  A malformed
 * file is an error naming the file and the tensor, never a crash.
 */
#ifndef HCGA_SAFETENSORS_H
#define HCGA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum st_dtype {
    ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    uint64_t numel;
    const void *data;   /* points into the file's data (unaligned: use memcpy or the getters) */
    uint64_t nbytes;
} st_tensor;

typedef struct st_file {
    int count;
    st_tensor *tensors;
    int n_meta;
    char **meta_keys, **meta_values;
    void *blob;         /* the file contents */
    size_t blob_len;
} st_file;

/* Returns NULL and writes "PATH: problem" to err on any error. */
st_file *st_load(const char *path, char *err, size_t err_len);
st_file *st_parse(const void *bytes, size_t len, const char *what, char *err, size_t err_len);
void st_free(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key); /* NULL if absent */
/* Copy a tensor out converting to float (F32/F64/F16/BF16/ints) or to int64
 * (integer types, BOOL).  Returns 0, or -1 if the dtype cannot convert. */
int st_to_f32(const st_tensor *t, float *dst);
int st_to_f64(const st_tensor *t, double *dst);
int st_to_i64(const st_tensor *t, int64_t *dst);

/* Writer: collect tensors, then write atomically (PATH.tmp + rename). */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* Copies data.  Returns 0, or -1 on a duplicate name. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                  const int64_t *shape, const void *data);
void st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_save(st_writer *w, const char *path, char *err, size_t err_len);
void st_writer_free(st_writer *w);

#endif
