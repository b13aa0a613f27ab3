/* Tests for frontend/model/safetensors.c: round trips, conversions, malformed
 * files, and the golden files written by the Python safetensors package. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "testutil.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga-st-test-");
}

static void remove_tmpdir(void)
{
    ck_assert_int_eq(hcga_test_rm_rf(tmpdir), 0);
}

static const char *shared_dir(void)
{
    const char *s = getenv("HCGA_SHARED");
    return s && *s ? s : HCGA_SRCDIR "/../shared";
}

/* ---------------------------------------------------------------- round trip */

START_TEST(test_roundtrip_all_dtypes)
{
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);

    float f32[6] = {1.5f, -2.25f, 0.0f, 3.0e-38f, 1e30f, -0.0f};
    double f64[3] = {3.141592653589793, -1e-300, 2.0};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}; /* 1, -2, 65504, 2^-24 */
    uint16_t bf16[2] = {0x3f80, 0x4049};                /* 1, 3.140625 */
    int64_t i64[2] = {INT64_MIN, 9007199254740993LL};
    int32_t i32[3] = {-7, 0, 2147483647};
    int16_t i16[2] = {-32768, 12345};
    int8_t i8[3] = {-128, 5, 127};
    uint8_t u8[3] = {0, 200, 255};
    uint8_t bl[3] = {1, 0, 1};
    float scalar = 42.0f;

    st_writer *w = st_writer_new();
    ck_assert_ptr_nonnull(w);
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s2[1] = {2}, s0[2] = {0, 5};
    /* added out of order on purpose: the file lists them sorted */
    ck_assert_int_eq(st_writer_add(w, "z.f32", ST_F32, 2, s23, f32), 0);
    ck_assert_int_eq(st_writer_add(w, "a.f64", ST_F64, 1, s3, f64), 0);
    ck_assert_int_eq(st_writer_add(w, "f16", ST_F16, 1, s4, f16), 0);
    ck_assert_int_eq(st_writer_add(w, "bf16", ST_BF16, 1, s2, bf16), 0);
    ck_assert_int_eq(st_writer_add(w, "i64", ST_I64, 1, s2, i64), 0);
    ck_assert_int_eq(st_writer_add(w, "i32", ST_I32, 1, s3, i32), 0);
    ck_assert_int_eq(st_writer_add(w, "i16", ST_I16, 1, s2, i16), 0);
    ck_assert_int_eq(st_writer_add(w, "i8", ST_I8, 1, s3, i8), 0);
    ck_assert_int_eq(st_writer_add(w, "u8", ST_U8, 1, s3, u8), 0);
    ck_assert_int_eq(st_writer_add(w, "bool", ST_BOOL, 1, s3, bl), 0);
    ck_assert_int_eq(st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar), 0);
    ck_assert_int_eq(st_writer_add(w, "empty", ST_F32, 2, s0, NULL), 0);
    /* duplicates and the reserved name are refused */
    ck_assert_int_eq(st_writer_add(w, "i8", ST_I8, 1, s3, i8), -1);
    ck_assert_int_eq(st_writer_add(w, "__metadata__", ST_I8, 1, s3, i8), -1);
    st_writer_meta(w, "format", "pt");
    st_writer_meta(w, "note", "first");
    st_writer_meta(w, "note", "replaced \"quoted\" \xc3\xa9");
    char err[512] = "";
    ck_assert_msg(st_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    st_writer_free(w);

    char tmp[420];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);

    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(f->count, 12);
    ck_assert_int_eq(f->n_meta, 2);
    ck_assert_str_eq(st_meta(f, "format"), "pt");
    ck_assert_str_eq(st_meta(f, "note"), "replaced \"quoted\" \xc3\xa9");
    ck_assert_ptr_null(st_meta(f, "absent"));
    for (int i = 1; i < f->count; i++)
        ck_assert_int_lt(strcmp(f->tensors[i - 1].name, f->tensors[i].name), 0);

    /* file layout: header multiple of 8 padded with spaces, no holes, natural alignment */
    const unsigned char *b = f->blob;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_int_eq(b[8], '{');
    ck_assert_int_eq(b[8 + n - 1] == ' ' || b[8 + n - 1] == '}', 1);
    uint64_t total = 0;
    for (int i = 0; i < f->count; i++) {
        total += f->tensors[i].nbytes;
        size_t off = (size_t)((const unsigned char *)f->tensors[i].data - (b + 8 + n));
        size_t esz = f->tensors[i].numel ? f->tensors[i].nbytes / f->tensors[i].numel : 1;
        ck_assert_uint_eq(off % esz, 0);
    }
    ck_assert_uint_eq(f->blob_len, 8 + n + total);

    const st_tensor *t = st_find(f, "z.f32");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_uint_eq(t->numel, 6);
    ck_assert_uint_eq(t->nbytes, 24);
    float fo[6];
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert_int_eq(memcmp(fo, f32, sizeof f32), 0);
    double d[6];
    ck_assert_int_eq(st_to_f64(t, d), 0);
    ck_assert(d[1] == -2.25 && d[3] == (double)3.0e-38f);
    int64_t iv[6];
    ck_assert_int_eq(st_to_i64(t, iv), -1);

    t = st_find(f, "a.f64");
    ck_assert_int_eq(st_to_f64(t, d), 0);
    ck_assert_int_eq(memcmp(d, f64, sizeof f64), 0);
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert(fo[0] == (float)3.141592653589793);

    t = st_find(f, "f16");
    ck_assert_int_eq(t->dtype, ST_F16);
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert(fo[0] == 1.0f && fo[1] == -2.0f && fo[2] == 65504.0f && fo[3] == ldexpf(1.0f, -24));

    t = st_find(f, "bf16");
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert(fo[0] == 1.0f && fo[1] == 3.140625f);

    t = st_find(f, "i64");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == INT64_MIN && iv[1] == 9007199254740993LL);
    t = st_find(f, "i32");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == -7 && iv[1] == 0 && iv[2] == 2147483647);
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert(fo[0] == -7.0f);
    t = st_find(f, "i16");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == -32768 && iv[1] == 12345);
    t = st_find(f, "i8");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == -128 && iv[1] == 5 && iv[2] == 127);
    t = st_find(f, "u8");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == 0 && iv[1] == 200 && iv[2] == 255);
    ck_assert_int_eq(st_to_f64(t, d), 0);
    ck_assert(d[2] == 255.0);
    t = st_find(f, "bool");
    ck_assert_int_eq(t->dtype, ST_BOOL);
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == 1 && iv[1] == 0 && iv[2] == 1);
    ck_assert_int_eq(st_to_f32(t, fo), -1);

    t = st_find(f, "scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(t->numel, 1);
    ck_assert_int_eq(st_to_f32(t, fo), 0);
    ck_assert(fo[0] == 42.0f);

    t = st_find(f, "empty");
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 0);
    ck_assert_int_eq(t->shape[1], 5);
    ck_assert_uint_eq(t->numel, 0);
    ck_assert_uint_eq(t->nbytes, 0);
    ck_assert_int_eq(st_to_f32(t, fo), 0);

    ck_assert_ptr_null(st_find(f, "nope"));
    st_free(f);
    remove_tmpdir();
}
END_TEST

START_TEST(test_f16_special_values)
{
    /* Expected values are IEEE 754 binary16 definitions, written out. */
    struct { uint16_t h; float v; } cases[] = {
        {0x0000, 0.0f}, {0x3555, 0x1.554p-2f}, {0x03ff, 0x1.ff8p-15f}, {0x0200, 0x1p-15f},
        {0x8001, -0x1p-24f}, {0x0400, 0x1p-14f}, {0xfbff, -65504.0f}, {0x3bff, 0x1.ffcp-1f},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    uint16_t h[16];
    for (int i = 0; i < nc; i++)
        h[i] = cases[i].h;
    h[nc] = 0x7c00;     /* +inf */
    h[nc + 1] = 0xfc00; /* -inf */
    h[nc + 2] = 0x7e00; /* nan */
    st_tensor t = {0};
    t.dtype = ST_F16;
    t.ndim = 1;
    t.shape[0] = nc + 3;
    t.numel = (uint64_t)nc + 3;
    t.nbytes = 2 * t.numel;
    t.data = h;
    float out[16];
    ck_assert_int_eq(st_to_f32(&t, out), 0);
    for (int i = 0; i < nc; i++)
        ck_assert_msg(out[i] == cases[i].v, "0x%04x -> %a, want %a", cases[i].h, out[i], cases[i].v);
    ck_assert(isinf(out[nc]) && out[nc] > 0);
    ck_assert(isinf(out[nc + 1]) && out[nc + 1] < 0);
    ck_assert(isnan(out[nc + 2]));
    ck_assert(signbit(out[0]) == 0);
}
END_TEST

START_TEST(test_writer_errors)
{
    char err[512] = "";
    st_writer *w = st_writer_new();
    float x = 1;
    int64_t neg[1] = {-1};
    ck_assert_int_eq(st_writer_add(w, "neg", ST_F32, 1, neg, &x), -1);
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(st_writer_add(w, "rank9", ST_F32, 9, nine, &x), -1);
    ck_assert_int_eq(st_writer_add(w, "x", ST_F32, 0, NULL, &x), 0);
    ck_assert_int_eq(st_writer_save(w, "/nonexistent-dir-hcga/x.safetensors", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "/nonexistent-dir-hcga/x.safetensors") != NULL, "%s", err);
    st_writer_free(w);

    /* an empty file (no tensors) is valid */
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/empty.safetensors", tmpdir);
    w = st_writer_new();
    ck_assert_int_eq(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(f->count, 0);
    ck_assert_int_eq(f->n_meta, 0);
    st_free(f);
    remove_tmpdir();
}
END_TEST

/* --------------------------------------------------------------- malformed */

/* Builds u64 len + header + data into a malloc'd buffer. */
static unsigned char *build(const char *header, size_t data_len, size_t *out_len)
{
    size_t hl = strlen(header);
    unsigned char *b = calloc(1, 8 + hl + data_len + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (unsigned char)i;
    *out_len = 8 + hl + data_len;
    return b;
}

static void expect_error(const char *header, size_t data_len, const char *needle1,
                         const char *needle2)
{
    size_t len;
    unsigned char *b = build(header, data_len, &len);
    char err[512] = "";
    st_file *f = st_parse(b, len, "bad.safetensors", err, sizeof err);
    ck_assert_msg(f == NULL, "accepted: %s", header);
    ck_assert_msg(strncmp(err, "bad.safetensors: ", 17) == 0, "error lacks file name: %s", err);
    ck_assert_msg(strstr(err, needle1) != NULL, "'%s' not in: %s", needle1, err);
    if (needle2)
        ck_assert_msg(strstr(err, needle2) != NULL, "'%s' not in: %s", needle2, err);
    ck_assert_ptr_null(strchr(err, '\n'));
    free(b);
}

static void expect_ok(const char *header, size_t data_len, int count)
{
    size_t len;
    unsigned char *b = build(header, data_len, &len);
    char err[512] = "";
    st_file *f = st_parse(b, len, "ok.safetensors", err, sizeof err);
    ck_assert_msg(f != NULL, "rejected %s: %s", header, err);
    ck_assert_int_eq(f->count, count);
    st_free(f);
    free(b);
}

START_TEST(test_malformed)
{
    /* sanity: the builder makes valid files */
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1);
    /* holes are accepted when reading (writers never make them) */
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[12,13]}}", 16, 2);
    /* empty tensors take no bytes and overlap nothing */
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, 2);

    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
                 "header JSON", NULL);
    expect_error("[1,2]", 0, "does not start with '{'", NULL);
    /* the JSON parser quotes the offending text: still one line */
    expect_error("{\"w\":{\"dtypea\\\n", 0, "header JSON", NULL);
    expect_error("{\"w\\n\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
                 "tensor 'w", "dtype 'X'");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
                 "header JSON", "duplicate");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 8,
                 "tensor 'w'", "outside the data");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                 "tensor 'w'", "needs 12 bytes");
    expect_error("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                 "tensor 'w'", "dtype 'Q4'");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                 "tensor 'w'", "shape[0]");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                 "tensor 'w'", "end 0 < begin 8");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
                 "tensor 'w'", "data_offsets");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'w'", "data_offsets");
    expect_error("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "dtype");
    expect_error("{\"w\":[1]}", 8, "tensor 'w'", "not a JSON object");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
                 8, "tensor 'w'", "rank 9");
    expect_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
                 "\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "overflow");
    expect_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                 "\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "overflow");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                 "overlaps", "tensor 'b'");
    expect_error("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "'k'");
    expect_error("{\"__metadata__\":[\"k\"]}", 0, "__metadata__", "not a JSON object");
}
END_TEST

START_TEST(test_bad_lengths)
{
    char err[512];
    unsigned char b[64] = {0};
    /* shorter than the length field */
    ck_assert_ptr_null(st_parse(b, 5, "short.st", err, sizeof err));
    ck_assert_msg(strstr(err, "short.st: ") == err && strstr(err, "too short"), "%s", err);
    /* header length beyond the file */
    b[0] = 100;
    b[8] = '{';
    ck_assert_ptr_null(st_parse(b, 20, "long.st", err, sizeof err));
    ck_assert_msg(strstr(err, "long.st: ") == err && strstr(err, "exceeds the file size"), "%s", err);
    /* header length near 2^64 must not wrap around */
    memset(b, 0xff, 8);
    ck_assert_ptr_null(st_parse(b, 64, "huge.st", err, sizeof err));
    ck_assert_msg(strstr(err, "exceeds the file size") != NULL, "%s", err);

    /* header length above 100 MB: a sparse file big enough to hold it */
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/big.safetensors", tmpdir);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    uint64_t n = 100000001;
    unsigned char hdr[9];
    for (int i = 0; i < 8; i++)
        hdr[i] = (unsigned char)(n >> (8 * i));
    hdr[8] = '{';
    ck_assert_int_eq(fwrite(hdr, 1, 9, fp), 9);
    ck_assert_int_eq(fseek(fp, (long)(8 + n + 10), SEEK_SET), 0);
    ck_assert_int_eq(fputc(' ', fp), ' ');
    fclose(fp);
    ck_assert_ptr_null(st_load(path, err, sizeof err));
    ck_assert_msg(strstr(err, path) == err && strstr(err, "100 MB"), "%s", err);
    remove_tmpdir();

    ck_assert_ptr_null(st_load("/nonexistent/hcga.safetensors", err, sizeof err));
    ck_assert_msg(strstr(err, "/nonexistent/hcga.safetensors: ") == err, "%s", err);
}
END_TEST

/* Every truncation and every single-byte corruption of a small valid file
 * must be either rejected with a message or parsed consistently. */
START_TEST(test_truncations_and_corruptions)
{
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/t.safetensors", tmpdir);
    st_writer *w = st_writer_new();
    float v[5] = {1, 2, 3, 4, 5};
    int64_t s5[1] = {5}, s22[2] = {2, 2};
    int64_t iv[4] = {1, 2, 3, 4};
    ck_assert_int_eq(st_writer_add(w, "v", ST_F32, 1, s5, v), 0);
    ck_assert_int_eq(st_writer_add(w, "i", ST_I64, 2, s22, iv), 0);
    st_writer_meta(w, "k", "v");
    char err[512];
    ck_assert_int_eq(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    st_file *good = st_load(path, err, sizeof err);
    ck_assert_ptr_nonnull(good);
    size_t len = good->blob_len;
    unsigned char *copy = malloc(len);
    for (size_t cut = 0; cut < len; cut++) {
        err[0] = 0;
        st_file *f = st_parse(good->blob, cut, "cut", err, sizeof err);
        ck_assert_msg(f == NULL, "truncation at %zu accepted", cut);
        ck_assert_msg(strncmp(err, "cut: ", 5) == 0, "%s", err);
    }
    for (size_t pos = 0; pos < len; pos++) {
        memcpy(copy, good->blob, len);
        copy[pos] ^= 0x5a;
        err[0] = 0;
        st_file *f = st_parse(copy, len, "flip", err, sizeof err);
        if (!f) {
            ck_assert_msg(strncmp(err, "flip: ", 6) == 0, "%s", err);
            continue;
        }
        for (int i = 0; i < f->count; i++) {
            const unsigned char *d = f->tensors[i].data;
            ck_assert(d >= (const unsigned char *)f->blob);
            ck_assert(d + f->tensors[i].nbytes <= (const unsigned char *)f->blob + f->blob_len);
        }
        st_free(f);
    }
    free(copy);
    st_free(good);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------------ golden */

static double sum_f32(const st_tensor *t)
{
    float *v = malloc((size_t)t->numel * sizeof(float));
    ck_assert_int_eq(st_to_f32(t, v), 0);
    double s = 0;
    for (uint64_t i = 0; i < t->numel; i++)
        s += v[i];
    free(v);
    return s;
}

static uint32_t f32_bits(const st_tensor *t, uint64_t i)
{
    uint32_t u;
    memcpy(&u, (const unsigned char *)t->data + 4 * i, 4);
    return u;
}

/* Expected numbers below were read from the files with Python's struct
 * module (independently of this code). */
START_TEST(test_golden_weights)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/golden/tiny.weights.safetensors", shared_dir());
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(f->count, 451); /* 452 header keys including __metadata__ */
    ck_assert_int_eq(f->n_meta, 3);
    ck_assert_str_eq(st_meta(f, "case"), "tiny");
    ck_assert_str_eq(st_meta(f, "config"), "hrnet_tiny.yml");
    ck_assert_str_eq(st_meta(f, "num_classes"), "6");
    ck_assert_str_eq(f->tensors[0].name, "base.bn1.bias");
    ck_assert_str_eq(f->tensors[f->count - 1].name, "classifier_part.weight");

    const st_tensor *t = st_find(f, "base.bn1.bias");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], 64);
    ck_assert_uint_eq(f32_bits(t, 0), 0x3d262a3eu);
    ck_assert_uint_eq(f32_bits(t, 63), 0x3d0efac3u);
    ck_assert(sum_f32(t) == 1.0957314525730908);

    t = st_find(f, "classifier_part.weight");
    ck_assert_int_eq(t->ndim, 2);
    ck_assert(t->shape[0] == 6 && t->shape[1] == 768);
    ck_assert_uint_eq(f32_bits(t, 0), 0x3ceb73e5u);
    ck_assert_uint_eq(f32_bits(t, t->numel - 1), 0x3d1676a4u);
    ck_assert(sum_f32(t) == 0.48828030933623268);

    t = st_find(f, "base.incre_modules.3.0.conv2.weight");
    ck_assert_int_eq(t->ndim, 4);
    ck_assert(t->shape[0] == 256 && t->shape[1] == 256 && t->shape[2] == 3 && t->shape[3] == 3);
    ck_assert_uint_eq(f32_bits(t, 0), 0xbd62e16au);
    ck_assert_uint_eq(f32_bits(t, t->numel - 1), 0x3d121e19u);
    ck_assert(sum_f32(t) == 0.9931652518506553);
    st_free(f);
}
END_TEST

START_TEST(test_golden_reference)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/golden/tiny.golden.safetensors", shared_dir());
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(f->count, 704); /* 705 header keys including __metadata__ */
    ck_assert_int_eq(f->n_meta, 7);
    ck_assert_str_eq(st_meta(f, "part_num"), "4");
    ck_assert_str_eq(st_meta(f, "adam_lr"), "3.5e-06");
    ck_assert_str_eq(st_meta(f, "weight_decay"), "5e-4");
    ck_assert_str_eq(st_meta(f, "loss"),
                     "xent_global + xent_fore + xent_part + 0.1*parsing + triplet_global");

    int n_i64 = 0;
    for (int i = 0; i < f->count; i++)
        n_i64 += f->tensors[i].dtype == ST_I64;
    ck_assert_int_eq(n_i64, 3);

    const st_tensor *t = st_find(f, "train.y_part");
    ck_assert(t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 768);
    ck_assert_uint_eq(f32_bits(t, 0), 0x3c1cacd6u);
    ck_assert_uint_eq(f32_bits(t, t->numel - 1), 0x3ca0a006u);
    ck_assert(sum_f32(t) == 52.872809268950277);

    t = st_find(f, "after_step.base.incre_modules.3.0.conv2.weight");
    ck_assert_uint_eq(f32_bits(t, 0), 0xbd62e516u);
    ck_assert(sum_f32(t) == 1.0066765165588549);

    /* I64 tensors at offsets that are not multiples of 8 */
    int64_t iv[2048];
    t = st_find(f, "eval.visible_part");
    ck_assert(t->dtype == ST_I64 && t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 3);
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    int64_t s = 0;
    for (int i = 0; i < 12; i++)
        s += iv[i];
    ck_assert_int_eq(s, 12);
    t = st_find(f, "input.parsing");
    ck_assert(t->ndim == 3 && t->shape[0] == 4 && t->shape[1] == 32 && t->shape[2] == 16);
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    s = 0;
    for (int i = 0; i < 2048; i++)
        s += iv[i];
    ck_assert_int_eq(s, 2869);
    ck_assert(iv[0] == 0 && iv[2] == 1);
    t = st_find(f, "input.pids");
    ck_assert_int_eq(st_to_i64(t, iv), 0);
    ck_assert(iv[0] == 0 && iv[1] == 0 && iv[2] == 1 && iv[3] == 1);
    float fv[4];
    ck_assert_int_eq(st_to_f32(t, fv), 0); /* integers convert to float */
    ck_assert(fv[0] == 0.0f && fv[3] == 1.0f);
    st_free(f);
}
END_TEST

/* Our writer's output of the golden weights reads back identical. */
START_TEST(test_golden_rewrite)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/golden/tiny.weights.safetensors", shared_dir());
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    st_writer *w = st_writer_new();
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        ck_assert_int_eq(st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data), 0);
    }
    for (int i = 0; i < f->n_meta; i++)
        st_writer_meta(w, f->meta_keys[i], f->meta_values[i]);
    make_tmpdir();
    char out[400];
    snprintf(out, sizeof out, "%s/rewrite.safetensors", tmpdir);
    ck_assert_msg(st_writer_save(w, out, err, sizeof err) == 0, "%s", err);
    st_writer_free(w);
    st_file *g = st_load(out, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_int_eq(g->count, f->count);
    ck_assert_int_eq(g->n_meta, f->n_meta);
    for (int i = 0; i < f->count; i++) {
        ck_assert_str_eq(g->tensors[i].name, f->tensors[i].name);
        ck_assert_int_eq(g->tensors[i].ndim, f->tensors[i].ndim);
        ck_assert_uint_eq(g->tensors[i].nbytes, f->tensors[i].nbytes);
        ck_assert_int_eq(memcmp(g->tensors[i].data, f->tensors[i].data,
                                (size_t)f->tensors[i].nbytes), 0);
    }
    /* all F32, laid out by name as the Python writer did: identical data sections */
    size_t fh = (size_t)((const unsigned char *)f->tensors[0].data - (const unsigned char *)f->blob);
    size_t gh = (size_t)((const unsigned char *)g->tensors[0].data - (const unsigned char *)g->blob);
    ck_assert_uint_eq(g->blob_len - gh, f->blob_len - fh);
    ck_assert_int_eq(memcmp((const unsigned char *)g->blob + gh,
                            (const unsigned char *)f->blob + fh, f->blob_len - fh), 0);
    st_free(g);
    st_free(f);
    remove_tmpdir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = hcga_test_tcase(s, "core");
    HCGA_ADD_TESTS(tc, test_roundtrip_all_dtypes, test_f16_special_values, test_writer_errors, test_malformed,
                   test_bad_lengths, test_truncations_and_corruptions);
    TCase *tg = hcga_test_tcase(s, "golden");
    tcase_set_timeout(tg, 60);
    HCGA_ADD_TESTS(tg, test_golden_weights, test_golden_reference, test_golden_rewrite);
    return s;
}

int main(void)
{
    return hcga_test_run(suite());
}
