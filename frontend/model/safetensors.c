/*
 * safetensors.c - reader and writer for the safetensors format (see safetensors.h).
 *
 * Reader: everything in the file is checked before it is used.  The header
 * length must fit in the file and be at most 100 MB, the header must be a
 * JSON object (starting with '{', duplicate keys rejected), every entry
 * needs a known dtype, a shape of at most 8 non-negative dimensions whose
 * product (times the dtype size) does not overflow and equals e - b, and
 * data_offsets [b, e] inside the data section.  No two tensors may share a
 * byte.  Gaps between tensors are accepted (the format's writers never
 * leave any, but a gap is harmless to read).
 *
 * Writer: the header lists tensors sorted by name; the data section holds
 * them without gaps, ordered by dtype size (largest first) then name, so
 * every tensor starts at a multiple of its own element size (as the Python
 * writer does; the Python reader rejects gaps, so padding between tensors is
 * not an option).  The header is space-padded so the data section starts at
 * a multiple of 8 in the file.  The file is written to PATH.tmp, flushed to
 * disk and renamed over PATH.
 */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_NDIM 8

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F64] = {"F64", 8}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1}, [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    /* one line: control characters from the file (JSON parser context,
     * tensor names) become spaces */
    for (char *q = err; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = ' ';
}

static int dtype_from_name(const char *s, st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* ------------------------------------------------------------------ reader */

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void st_free(st_file *f)
{
    if (!f)
        return;
    if (f->tensors)
        for (int i = 0; i < f->count; i++)
            free(f->tensors[i].name);
    free(f->tensors);
    if (f->meta_keys)
        for (int i = 0; i < f->n_meta; i++)
            free(f->meta_keys[i]);
    if (f->meta_values)
        for (int i = 0; i < f->n_meta; i++)
            free(f->meta_values[i]);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->blob);
    free(f);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct range {
    uint64_t b, e;
    int idx;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    if (x->e != y->e)
        return x->e < y->e ? -1 : 1;
    return x->idx - y->idx;
}

/* A JSON integer that must be >= 0. */
static int json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return -1;
    *out = (uint64_t)x;
    return 0;
}

/* Parses one tensor entry into t (name already set).  Returns 0 or -1 with
 * err set. */
static int parse_entry(const char *what, const char *name, json_t *ent, uint64_t data_len,
                       st_tensor *t, char *err, size_t err_len)
{
    if (!json_is_object(ent)) {
        set_err(err, err_len, "%s: tensor '%s': entry is not a JSON object", what, name);
        return -1;
    }
    json_t *jd = json_object_get(ent, "dtype");
    json_t *js = json_object_get(ent, "shape");
    json_t *jo = json_object_get(ent, "data_offsets");
    if (!jd || !js || !jo) {
        set_err(err, err_len, "%s: tensor '%s': missing \"%s\"", what, name,
                !jd ? "dtype" : !js ? "shape" : "data_offsets");
        return -1;
    }
    if (!json_is_string(jd)) {
        set_err(err, err_len, "%s: tensor '%s': dtype is not a string", what, name);
        return -1;
    }
    if (dtype_from_name(json_string_value(jd), &t->dtype) != 0) {
        set_err(err, err_len, "%s: tensor '%s': unknown or unsupported dtype '%s'", what, name,
                json_string_value(jd));
        return -1;
    }
    if (!json_is_array(js)) {
        set_err(err, err_len, "%s: tensor '%s': shape is not an array", what, name);
        return -1;
    }
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_NDIM) {
        set_err(err, err_len, "%s: tensor '%s': rank %zu exceeds the supported %d", what, name,
                nd, ST_MAX_NDIM);
        return -1;
    }
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_uint(json_array_get(js, i), &d) != 0) {
            set_err(err, err_len, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                    what, name, i);
            return -1;
        }
        t->shape[i] = (int64_t)d; /* json_int_t is signed 64-bit: d <= INT64_MAX */
        if (numel != 0 && d != 0 && numel > UINT64_MAX / d)
            overflow = 1;
        else
            numel *= d;
    }
    for (size_t i = nd; i < ST_MAX_NDIM; i++)
        t->shape[i] = 0;
    /* A zero dimension makes the product 0 even if a partial product overflowed. */
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] == 0) {
            overflow = 0;
            numel = 0;
        }
    size_t esz = dtype_info[t->dtype].size;
    if (overflow || numel > UINT64_MAX / esz) {
        set_err(err, err_len, "%s: tensor '%s': shape product overflows", what, name);
        return -1;
    }
    t->numel = numel;
    t->nbytes = numel * esz;
    if (!json_is_array(jo) || json_array_size(jo) != 2) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets is not a [begin, end] pair", what,
                name);
        return -1;
    }
    uint64_t b, e;
    if (json_uint(json_array_get(jo, 0), &b) != 0 || json_uint(json_array_get(jo, 1), &e) != 0) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets are not non-negative integers",
                what, name);
        return -1;
    }
    if (e < b) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets end %llu < begin %llu", what, name,
                (unsigned long long)e, (unsigned long long)b);
        return -1;
    }
    if (e > data_len) {
        set_err(err, err_len,
                "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section (%llu bytes)",
                what, name, (unsigned long long)b, (unsigned long long)e,
                (unsigned long long)data_len);
        return -1;
    }
    if (e - b != t->nbytes) {
        set_err(err, err_len,
                "%s: tensor '%s': %s shape needs %llu bytes but data_offsets span %llu", what,
                name, dtype_info[t->dtype].name, (unsigned long long)t->nbytes,
                (unsigned long long)(e - b));
        return -1;
    }
    t->data = (const void *)(uintptr_t)b; /* relative for now; rebased by the caller */
    return 0;
}

static int parse_metadata(st_file *f, const char *what, json_t *meta, char *err, size_t err_len)
{
    if (!json_is_object(meta)) {
        set_err(err, err_len, "%s: __metadata__ is not a JSON object", what);
        return -1;
    }
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof(char *));
    f->meta_values = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values) {
        set_err(err, err_len, "%s: out of memory", what);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v)) {
            set_err(err, err_len, "%s: __metadata__ '%s': value is not a string", what, k);
            return -1;
        }
        f->meta_keys[f->n_meta] = strdup(k);
        f->meta_values[f->n_meta] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1]) {
            set_err(err, err_len, "%s: out of memory", what);
            return -1;
        }
    }
    return 0;
}

/* Takes ownership of blob (malloc'd, len bytes) in every case. */
static st_file *parse_owned(void *blob, size_t len, const char *what, char *err, size_t err_len)
{
    if (!what)
        what = "<memory>";
    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        free(blob);
        set_err(err, err_len, "%s: out of memory", what);
        return NULL;
    }
    f->blob = blob;
    f->blob_len = len;
    const unsigned char *p = blob;
    json_t *root = NULL;
    range *rg = NULL;

    if (len < 8) {
        set_err(err, err_len, "%s: file too short for a safetensors header (%zu bytes)", what,
                len);
        goto fail;
    }
    uint64_t n = read_le64(p);
    if (n > len - 8) {
        set_err(err, err_len, "%s: header length %llu exceeds the file size (%zu bytes)", what,
                (unsigned long long)n, len);
        goto fail;
    }
    if (n > ST_MAX_HEADER) {
        set_err(err, err_len, "%s: header length %llu exceeds the 100 MB limit", what,
                (unsigned long long)n);
        goto fail;
    }
    if (n < 2 || p[8] != '{') {
        set_err(err, err_len, "%s: header does not start with '{' (not a safetensors file?)",
                what);
        goto fail;
    }
    uint64_t data_len = len - 8 - n;
    json_error_t jerr;
    root = json_loadb((const char *)p + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, err_len, "%s: header JSON: %s (at byte %d)", what, jerr.text,
                jerr.position);
        goto fail;
    }
    if (!json_is_object(root)) {
        set_err(err, err_len, "%s: header is not a JSON object", what);
        goto fail;
    }
    size_t nkeys = json_object_size(root);
    json_t *meta = json_object_get(root, "__metadata__");
    size_t nt = nkeys - (meta ? 1 : 0);
    if (nt > INT_MAX) {
        set_err(err, err_len, "%s: too many tensors", what);
        goto fail;
    }
    if (meta && parse_metadata(f, what, meta, err, err_len) != 0)
        goto fail;
    f->tensors = calloc(nt ? nt : 1, sizeof(st_tensor));
    if (!f->tensors) {
        set_err(err, err_len, "%s: out of memory", what);
        goto fail;
    }
    const char *key;
    json_t *ent;
    json_object_foreach(root, key, ent) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        st_tensor *t = &f->tensors[f->count];
        t->name = strdup(key);
        if (!t->name) {
            set_err(err, err_len, "%s: out of memory", what);
            goto fail;
        }
        f->count++;
        if (parse_entry(what, key, ent, data_len, t, err, err_len) != 0)
            goto fail;
    }
    json_decref(root);
    root = NULL;

    /* No two tensors may share a byte.  Empty tensors occupy no bytes. */
    rg = malloc((size_t)(f->count ? f->count : 1) * sizeof *rg);
    if (!rg) {
        set_err(err, err_len, "%s: out of memory", what);
        goto fail;
    }
    int nr = 0;
    for (int i = 0; i < f->count; i++) {
        uint64_t b = (uint64_t)(uintptr_t)f->tensors[i].data;
        if (f->tensors[i].nbytes == 0)
            continue;
        rg[nr].b = b;
        rg[nr].e = b + f->tensors[i].nbytes;
        rg[nr].idx = i;
        nr++;
    }
    qsort(rg, (size_t)nr, sizeof *rg, cmp_range);
    for (int i = 1; i < nr; i++)
        if (rg[i].b < rg[i - 1].e) {
            set_err(err, err_len, "%s: tensor '%s': data [%llu, %llu] overlaps tensor '%s' [%llu, %llu]",
                    what, f->tensors[rg[i].idx].name, (unsigned long long)rg[i].b,
                    (unsigned long long)rg[i].e, f->tensors[rg[i - 1].idx].name,
                    (unsigned long long)rg[i - 1].b, (unsigned long long)rg[i - 1].e);
            goto fail;
        }
    free(rg);
    rg = NULL;

    const unsigned char *data = p + 8 + n;
    for (int i = 0; i < f->count; i++)
        f->tensors[i].data = data + (uintptr_t)f->tensors[i].data;
    qsort(f->tensors, (size_t)f->count, sizeof(st_tensor), cmp_tensor_name);
    return f;

fail:
    json_decref(root);
    free(rg);
    st_free(f);
    return NULL;
}

st_file *st_parse(const void *bytes, size_t len, const char *what, char *err, size_t err_len)
{
    void *copy = malloc(len ? len : 1);
    if (!copy) {
        set_err(err, err_len, "%s: out of memory (%zu bytes)", what ? what : "<memory>", len);
        return NULL;
    }
    if (len)
        memcpy(copy, bytes, len);
    return parse_owned(copy, len, what, err, err_len);
}

st_file *st_load(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, err_len, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        set_err(err, err_len, "%s: out of memory (%zu bytes)", path, len);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(err, err_len, "%s: read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break; /* file shrank while reading: parse what is there */
        got += (size_t)r;
    }
    close(fd);
    return parse_owned(buf, got, path, err, err_len);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    if (!f || !name || f->count == 0)
        return NULL;
    st_tensor key = {0};
    key.name = (char *)name;
    return bsearch(&key, f->tensors, (size_t)f->count, sizeof(st_tensor), cmp_tensor_name);
}

const char *st_meta(const st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

/* -------------------------------------------------------------- conversion */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Element i as double (floating and integer dtypes).  The file is little-
 * endian; so is every machine hcga runs on (checked at compile time). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static double elem_f64(const st_tensor *t, uint64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * dtype_info[t->dtype].size;
    switch (t->dtype) {
    case ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case ST_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    case ST_BF16: { uint16_t v; memcpy(&v, p, 2); return bf16_to_float(v); }
    case ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ST_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case ST_I8: { int8_t v; memcpy(&v, p, 1); return v; }
    case ST_U8: return p[0];
    case ST_BOOL: return p[0] != 0;
    }
    return 0;
}

static int64_t elem_i64(const st_tensor *t, uint64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * dtype_info[t->dtype].size;
    switch (t->dtype) {
    case ST_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ST_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case ST_I8: { int8_t v; memcpy(&v, p, 1); return v; }
    case ST_U8: return p[0];
    case ST_BOOL: return p[0] != 0;
    default: return 0;
    }
}

int st_to_f32(const st_tensor *t, float *dst)
{
    if (!t || t->dtype == ST_BOOL)
        return -1;
    if (t->dtype == ST_F32) {
        if (t->nbytes)
            memcpy(dst, t->data, (size_t)t->nbytes);
        return 0;
    }
    for (uint64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_F16) {
            uint16_t v;
            memcpy(&v, (const unsigned char *)t->data + 2 * i, 2);
            dst[i] = half_to_float(v);
        } else if (t->dtype == ST_BF16) {
            uint16_t v;
            memcpy(&v, (const unsigned char *)t->data + 2 * i, 2);
            dst[i] = bf16_to_float(v);
        } else {
            dst[i] = (float)elem_f64(t, i);
        }
    }
    return 0;
}

int st_to_f64(const st_tensor *t, double *dst)
{
    if (!t || t->dtype == ST_BOOL)
        return -1;
    if (t->dtype == ST_F64) {
        if (t->nbytes)
            memcpy(dst, t->data, (size_t)t->nbytes);
        return 0;
    }
    for (uint64_t i = 0; i < t->numel; i++)
        dst[i] = elem_f64(t, i);
    return 0;
}

int st_to_i64(const st_tensor *t, int64_t *dst)
{
    if (!t)
        return -1;
    switch (t->dtype) {
    case ST_F32: case ST_F64: case ST_F16: case ST_BF16:
        return -1;
    default:
        break;
    }
    if (t->dtype == ST_I64) {
        if (t->nbytes)
            memcpy(dst, t->data, (size_t)t->nbytes);
        return 0;
    }
    for (uint64_t i = 0; i < t->numel; i++)
        dst[i] = elem_i64(t, i);
    return 0;
}

/* ------------------------------------------------------------------ writer */

typedef struct wtensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_NDIM];
    void *data;
    uint64_t nbytes;
    uint64_t offset;
} wtensor;

struct st_writer {
    int count, cap;
    wtensor *t;
    int n_meta, meta_cap;
    char **mk, **mv;
};

st_writer *st_writer_new(void)
{
    return calloc(1, sizeof(st_writer));
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->count; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->mk);
    free(w->mv);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                  const int64_t *shape, const void *data)
{
    if (!w || !name || (int)dtype < 0 || (int)dtype >= N_DTYPES || ndim < 0 ||
        ndim > ST_MAX_NDIM || (ndim > 0 && !shape) || strcmp(name, "__metadata__") == 0)
        return -1;
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return -1;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && numel > UINT64_MAX / (uint64_t)shape[i])
            return -1;
        numel *= (uint64_t)shape[i];
    }
    size_t esz = dtype_info[dtype].size;
    if (numel > SIZE_MAX / esz)
        return -1;
    uint64_t nbytes = numel * esz;
    if (nbytes && !data)
        return -1;
    if (w->count == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt)
            return -1;
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return -1;
    }
    if (nbytes)
        memcpy(t->data, data, (size_t)nbytes);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = nbytes;
    w->count++;
    return 0;
}

void st_writer_meta(st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value)
        return;
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->mk[i], key) == 0) {
            char *v = strdup(value);
            if (v) {
                free(w->mv[i]);
                w->mv[i] = v;
            }
            return;
        }
    if (w->n_meta == w->meta_cap) {
        int nc = w->meta_cap ? 2 * w->meta_cap : 8;
        char **nk = realloc(w->mk, (size_t)nc * sizeof *nk);
        if (!nk)
            return;
        w->mk = nk;
        char **nv = realloc(w->mv, (size_t)nc * sizeof *nv);
        if (!nv)
            return;
        w->mv = nv;
        w->meta_cap = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return;
    }
    w->mk[w->n_meta] = k;
    w->mv[w->n_meta] = v;
    w->n_meta++;
}

static int cmp_wname(const void *a, const void *b)
{
    return strcmp(((const wtensor *)a)->name, ((const wtensor *)b)->name);
}

/* Data order: larger element size first, then by name. */
static int cmp_wlayout(const void *a, const void *b)
{
    const wtensor *x = *(wtensor *const *)a, *y = *(wtensor *const *)b;
    size_t sx = dtype_info[x->dtype].size, sy = dtype_info[y->dtype].size;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Builds the header JSON (unpadded).  Returns malloc'd text or NULL. */
static char *build_header(st_writer *w)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    int ok = 1;
    if (w->n_meta) {
        json_t *m = json_object();
        ok = m != NULL;
        /* keys sorted for reproducible files */
        int *ord = ok ? malloc((size_t)w->n_meta * sizeof *ord) : NULL;
        ok = ok && ord;
        if (ok) {
            for (int i = 0; i < w->n_meta; i++)
                ord[i] = i;
            for (int i = 1; i < w->n_meta; i++) /* insertion sort: few keys */
                for (int j = i; j > 0 && strcmp(w->mk[ord[j - 1]], w->mk[ord[j]]) > 0; j--) {
                    int tmp = ord[j];
                    ord[j] = ord[j - 1];
                    ord[j - 1] = tmp;
                }
            for (int i = 0; i < w->n_meta && ok; i++)
                ok = json_object_set_new(m, w->mk[ord[i]], json_string(w->mv[ord[i]])) == 0;
        }
        free(ord);
        if (ok)
            ok = json_object_set_new(root, "__metadata__", m) == 0;
        else
            json_decref(m);
    }
    for (int i = 0; i < w->count && ok; i++) {
        wtensor *t = &w->t[i];
        json_t *e = json_object(), *sh = json_array(), *off = json_array();
        ok = e && sh && off;
        for (int d = 0; d < t->ndim && ok; d++)
            ok = json_array_append_new(sh, json_integer((json_int_t)t->shape[d])) == 0;
        ok = ok && json_array_append_new(off, json_integer((json_int_t)t->offset)) == 0;
        ok = ok && json_array_append_new(off, json_integer((json_int_t)(t->offset + t->nbytes))) == 0;
        ok = ok && json_object_set_new(e, "dtype", json_string(dtype_info[t->dtype].name)) == 0;
        if (ok) {
            ok = json_object_set_new(e, "shape", sh) == 0;
            sh = NULL;
        }
        if (ok) {
            ok = json_object_set_new(e, "data_offsets", off) == 0;
            off = NULL;
        }
        if (ok) {
            ok = json_object_set_new(root, t->name, e) == 0;
            e = NULL;
        }
        json_decref(sh);
        json_decref(off);
        json_decref(e);
    }
    char *s = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

int st_writer_save(st_writer *w, const char *path, char *err, size_t err_len)
{
    if (!w || !path) {
        set_err(err, err_len, "%s: invalid writer", path ? path : "<null>");
        return -1;
    }
    /* Header order: by name.  Data order: by element size, then name. */
    if (w->count > 1)
        qsort(w->t, (size_t)w->count, sizeof *w->t, cmp_wname);
    wtensor **lay = malloc((size_t)(w->count ? w->count : 1) * sizeof *lay);
    if (!lay) {
        set_err(err, err_len, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < w->count; i++)
        lay[i] = &w->t[i];
    qsort(lay, (size_t)w->count, sizeof *lay, cmp_wlayout);
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        lay[i]->offset = off;
        if (lay[i]->nbytes > (uint64_t)INT64_MAX - off) {
            set_err(err, err_len, "%s: tensor '%s': data too large", path, lay[i]->name);
            free(lay);
            return -1;
        }
        off += lay[i]->nbytes;
    }
    char *hdr = build_header(w);
    if (!hdr) {
        free(lay);
        set_err(err, err_len, "%s: cannot encode the header (invalid UTF-8 in a name?)", path);
        return -1;
    }
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8;
    if (padded > ST_MAX_HEADER) {
        free(hdr);
        free(lay);
        set_err(err, err_len, "%s: header of %zu bytes exceeds the 100 MB limit", path, padded);
        return -1;
    }
    unsigned char *head = malloc(8 + padded);
    if (!head) {
        free(hdr);
        free(lay);
        set_err(err, err_len, "%s: out of memory", path);
        return -1;
    }
    uint64_t n = padded;
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)(n >> (8 * i));
    memcpy(head + 8, hdr, hlen);
    memset(head + 8 + hlen, ' ', padded - hlen);
    free(hdr);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(head);
        free(lay);
        set_err(err, err_len, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    int ok = write_all(fd, head, 8 + padded) == 0;
    for (int i = 0; i < w->count && ok; i++)
        if (lay[i]->nbytes)
            ok = write_all(fd, lay[i]->data, (size_t)lay[i]->nbytes) == 0;
    if (!ok) {
        set_err(err, err_len, "%s: write: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (fsync(fd) != 0) {
        set_err(err, err_len, "%s: fsync: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        set_err(err, err_len, "%s: close: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, err_len, "%s: rename from %s: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* Make the rename itself durable (best effort: not every filesystem
     * lets a directory be opened for fsync). */
    {
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        if (dir) {
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    rc = 0;
out:
    free(tmp);
    free(head);
    free(lay);
    return rc;
}
