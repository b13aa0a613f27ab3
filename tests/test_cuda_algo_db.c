/*
 * test_cuda_algo_db.c - the CUDA backend's persisted algorithm cache file
 * (backends/cuda/cuda_algo_db.h), which needs no GPU: round trip, atomic
 * replacement, merging with another process's entries, corrupt lines, key
 * and device mismatches, a foreign file, and the cache directory lookup.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cuda_algo_db.h"
#include "testutil.h"

static const char *DEV = "NVIDIA H200|sm_90|132 SMs|driver 13000|runtime 13000|cudnn 91900";
static const char *KEY1 = "fwd|bf16|NCHW|tensor_op|det|n64 c3 h256 w128 k64 r3 s3 pad1,1 stride2,2 dil1,1";
static const char *KEY2 = "bwd_filter|f32|NCHW|fma|det|n64 c64 h64 w32 k64 r3 s3 pad1,1 stride1,1 dil1,1";
static const char *KEY3 = "bwd_data|f16|NCHW|tensor_op|any|n128 c32 h64 w32 k32 r1 s1 pad0,0 stride1,1 dil1,1";

static char dir[256], path[512];

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/hcga-algo-db-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, CU_ALGO_DB_FILE);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(FILE *f)
{
    static char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

START_TEST(test_round_trip)
{
    cu_algo_db a, b;
    cu_algo_db_init(&a);
    cu_algo_db_init(&b);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY1, 1, 1, 4608, 0.0431), 1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY2, 3, 2, 0, 1.5), 1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY3, 5, 1, (uint64_t)1 << 40, 12.25), 1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY1, 7, 0, 0, 0), 0); /* present: not replaced */
    ck_assert_int_eq(cu_algo_db_load(&b, path, stderr), 0);            /* no file: empty */
    ck_assert_uint_eq(b.n, 0);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0);
    ck_assert_int_eq(cu_algo_db_load(&b, path, stderr), 0);
    ck_assert_uint_eq(b.n, 3);
    const cu_algo_rec *r = cu_algo_db_find(&b, DEV, KEY1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->algo, 1);
    ck_assert_int_eq(r->math, 1);
    ck_assert_uint_eq(r->ws, 4608);
    ck_assert_double_eq_tol(r->ms, 0.0431, 1e-9);
    r = cu_algo_db_find(&b, DEV, KEY3);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->algo, 5);
    ck_assert_uint_eq(r->ws, (uint64_t)1 << 40);
    ck_assert_double_eq_tol(r->ms, 12.25, 1e-9);
    /* invalid fields are refused, not written */
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, "with\ttab", 1, 1, 0, 0), -1);
    ck_assert_int_eq(cu_algo_db_add(&a, "", KEY1, 1, 1, 0, 0), -1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, "k", 256, 1, 0, 0), -1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, "k", 1, 1, 0, -1.0), -1);
    cu_algo_db_free(&a);
    cu_algo_db_free(&b);
}
END_TEST

START_TEST(test_atomic_replace)
{
    cu_algo_db a;
    cu_algo_db_init(&a);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY1, 1, 1, 10, 1.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0);
    struct stat st1, st2;
    ck_assert_int_eq(stat(path, &st1), 0);
    /* a reader that opened the old file keeps reading the old, whole file */
    FILE *old = fopen(path, "r");
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY2, 2, 2, 20, 2.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0);
    ck_assert_int_eq(stat(path, &st2), 0);
    ck_assert_msg(st1.st_ino != st2.st_ino, "the file was rewritten in place, not replaced by rename");
    const char *t = read_text(old);
    fclose(old);
    ck_assert_int_eq(count_lines_with(t, KEY1), 1);
    ck_assert_int_eq(count_lines_with(t, KEY2), 0);
    ck_assert_msg(strncmp(t, CU_ALGO_DB_MAGIC " 1\n", strlen(CU_ALGO_DB_MAGIC) + 3) == 0, "header: %s", t);
    /* no temporary file is left behind; only the file and its lock file */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "left behind: %s", e->d_name);
        files++;
    }
    closedir(d);
    ck_assert_int_le(files, 2);
    cu_algo_db_free(&a);
}
END_TEST

START_TEST(test_merge_with_other_process)
{
    cu_algo_db a, b, c;
    cu_algo_db_init(&a);
    cu_algo_db_init(&b);
    cu_algo_db_init(&c);
    /* both processes start from an empty cache and find KEY1 differently */
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY1, 1, 1, 10, 1.0), 1);
    ck_assert_int_eq(cu_algo_db_add(&b, DEV, KEY1, 6, 0, 99, 0.9), 1);
    ck_assert_int_eq(cu_algo_db_add(&b, DEV, KEY2, 2, 2, 20, 2.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0); /* a persists first */
    ck_assert_int_eq(cu_algo_db_save(&b, path, stderr), 0); /* b merges */
    /* the first persisted choice wins, b's other entry is added, and b
     * itself now holds the merged content */
    const cu_algo_rec *r = cu_algo_db_find(&b, DEV, KEY1);
    ck_assert_int_eq(r->algo, 1);
    ck_assert_uint_eq(r->ws, 10);
    ck_assert_int_eq(cu_algo_db_load(&c, path, stderr), 0);
    ck_assert_uint_eq(c.n, 2);
    ck_assert_int_eq(cu_algo_db_find(&c, DEV, KEY1)->algo, 1);
    ck_assert_int_eq(cu_algo_db_find(&c, DEV, KEY2)->algo, 2);
    /* a saves again: nothing of b's is lost */
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY3, 3, 1, 30, 3.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0);
    cu_algo_db_free(&c);
    cu_algo_db_init(&c);
    ck_assert_int_eq(cu_algo_db_load(&c, path, stderr), 0);
    ck_assert_uint_eq(c.n, 3);
    cu_algo_db_free(&a);
    cu_algo_db_free(&b);
    cu_algo_db_free(&c);
}
END_TEST

START_TEST(test_corrupt_lines)
{
    char text[4096];
    snprintf(text, sizeof text,
             "hcga-cudnn-algo-cache 1\n"
             "# comment\n"
             "\n"
             "%s\t%s\t1\t1\t4608\t0.5\n"     /* 4: good */
             "%s\t%s\t1\t1\t4608\n"          /* 5: 5 fields */
             "%s\t%s\t1\t1\t4608\t0.5\textra\n" /* 6: 7 fields */
             "%s\t%s\tfast\t1\t0\t0.5\n"     /* 7: algo not a number */
             "%s\t%s\t1\t99\t0\t0.5\n"       /* 8: math out of range */
             "%s\t%s\t1\t1\t-5\t0.5\n"       /* 9: negative workspace */
             "%s\t%s\t1\t1\t0\tnan\n"        /* 10: time NaN */
             "garbage without tabs\n"        /* 11 */
             "%s\t%s\t2\t1\t0\t0.25\r\n"     /* 12: good, CRLF */
             "%s\t%s\t3\t1\t0\t0.125",       /* 13: good, no final newline */
             DEV, KEY1, DEV, KEY2, DEV, KEY2, DEV, KEY2, DEV, KEY2, DEV, KEY2, DEV, KEY2, DEV, KEY2, DEV,
             KEY3);
    write_file(text);
    FILE *w = tmpfile();
    cu_algo_db db;
    cu_algo_db_init(&db);
    ck_assert_int_eq(cu_algo_db_load(&db, path, w), 0);
    ck_assert_uint_eq(db.n, 3);
    ck_assert_int_eq(cu_algo_db_find(&db, DEV, KEY1)->algo, 1);
    ck_assert_int_eq(cu_algo_db_find(&db, DEV, KEY2)->algo, 2); /* the first good KEY2 line */
    ck_assert_int_eq(cu_algo_db_find(&db, DEV, KEY3)->algo, 3);
    const char *warns = read_text(w);
    ck_assert_int_eq(count_lines_with(warns, "line ignored"), 7);
    ck_assert_int_eq(count_lines_with(warns, "hcga cuda: "), 7);
    for (int ln = 5; ln <= 11; ln++) {
        char at[64];
        snprintf(at, sizeof at, "%s:%d: ", CU_ALGO_DB_FILE, ln);
        ck_assert_msg(strstr(warns, at), "no warning for line %d in:\n%s", ln, warns);
    }
    fclose(w);
    /* saving (which re-reads the file, warning again: not checked here)
     * drops the corrupt lines and keeps the good ones */
    ck_assert_int_eq(cu_algo_db_save(&db, path, NULL), 0);
    w = tmpfile();
    cu_algo_db_free(&db);
    cu_algo_db_init(&db);
    ck_assert_int_eq(cu_algo_db_load(&db, path, w), 0);
    ck_assert_uint_eq(db.n, 3);
    ck_assert_str_eq(read_text(w), "");
    fclose(w);
    cu_algo_db_free(&db);
}
END_TEST

START_TEST(test_key_mismatch)
{
    cu_algo_db a, b;
    cu_algo_db_init(&a);
    cu_algo_db_init(&b);
    const char *other_dev = "NVIDIA H100 80GB HBM3|sm_90|132 SMs|driver 13000|runtime 13000|cudnn 91900";
    const char *newer_cudnn = "NVIDIA H200|sm_90|132 SMs|driver 13000|runtime 13000|cudnn 92000";
    ck_assert_int_eq(cu_algo_db_add(&a, other_dev, KEY1, 4, 1, 0, 1.0), 1);
    ck_assert_int_eq(cu_algo_db_add(&a, DEV, KEY1, 1, 1, 0, 1.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&a, path, stderr), 0);
    ck_assert_int_eq(cu_algo_db_load(&b, path, stderr), 0);
    /* another GPU or library version, or another dtype / math / geometry: no hit */
    ck_assert_ptr_null(cu_algo_db_find(&b, newer_cudnn, KEY1));
    ck_assert_ptr_null(cu_algo_db_find(&b, DEV, "fwd|f16|NCHW|tensor_op|det|n64 c3 h256 w128 k64 r3 s3 pad1,1 stride2,2 dil1,1"));
    ck_assert_ptr_null(cu_algo_db_find(&b, DEV, "fwd|bf16|NCHW|tensor_op|det|n32 c3 h256 w128 k64 r3 s3 pad1,1 stride2,2 dil1,1"));
    ck_assert_int_eq(cu_algo_db_find(&b, DEV, KEY1)->algo, 1);
    ck_assert_int_eq(cu_algo_db_find(&b, other_dev, KEY1)->algo, 4);
    /* a process on the newer cuDNN adds its own entry; the others are kept */
    ck_assert_int_eq(cu_algo_db_add(&b, newer_cudnn, KEY1, 2, 1, 0, 0.5), 1);
    ck_assert_int_eq(cu_algo_db_save(&b, path, stderr), 0);
    cu_algo_db_free(&a);
    cu_algo_db_init(&a);
    ck_assert_int_eq(cu_algo_db_load(&a, path, stderr), 0);
    ck_assert_uint_eq(a.n, 3);
    cu_algo_db_free(&a);
    cu_algo_db_free(&b);
}
END_TEST

START_TEST(test_foreign_file_left_alone)
{
    const char *foreign = "hcga-cudnn-algo-cache 2\nsomething\tnewer\n";
    write_file(foreign);
    FILE *w = tmpfile();
    cu_algo_db db;
    cu_algo_db_init(&db);
    ck_assert_int_eq(cu_algo_db_load(&db, path, w), -1);
    ck_assert_uint_eq(db.n, 0);
    ck_assert_int_eq(cu_algo_db_add(&db, DEV, KEY1, 1, 1, 0, 1.0), 1);
    ck_assert_int_eq(cu_algo_db_save(&db, path, w), -1);
    ck_assert_uint_eq(db.n, 1); /* kept in memory */
    ck_assert_ptr_nonnull(strstr(read_text(w), "header is not 'hcga-cudnn-algo-cache 1'"));
    fclose(w);
    FILE *f = fopen(path, "r");
    ck_assert_str_eq(read_text(f), foreign);
    fclose(f);
    cu_algo_db_free(&db);
}
END_TEST

START_TEST(test_default_path)
{
    char buf[1024], want[1024];
    snprintf(want, sizeof want, "%s/x/y", dir);
    setenv("HCGA_CACHE_DIR", want, 1);
    ck_assert_int_eq(cu_algo_db_default_path(buf, sizeof buf, stderr), 0);
    snprintf(want, sizeof want, "%s/x/y/%s", dir, CU_ALGO_DB_FILE);
    ck_assert_str_eq(buf, want);
    struct stat st;
    snprintf(want, sizeof want, "%s/x/y", dir);
    ck_assert_int_eq(stat(want, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    rmdir(want);
    snprintf(want, sizeof want, "%s/x", dir);
    rmdir(want);

    unsetenv("HCGA_CACHE_DIR");
    setenv("XDG_CACHE_HOME", dir, 1);
    ck_assert_int_eq(cu_algo_db_default_path(buf, sizeof buf, stderr), 0);
    snprintf(want, sizeof want, "%s/hcga/%s", dir, CU_ALGO_DB_FILE);
    ck_assert_str_eq(buf, want);
    snprintf(want, sizeof want, "%s/hcga", dir);
    rmdir(want);

    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", dir, 1);
    ck_assert_int_eq(cu_algo_db_default_path(buf, sizeof buf, stderr), 0);
    snprintf(want, sizeof want, "%s/.cache/hcga/%s", dir, CU_ALGO_DB_FILE);
    ck_assert_str_eq(buf, want);
    snprintf(want, sizeof want, "%s/.cache/hcga", dir);
    rmdir(want);
    snprintf(want, sizeof want, "%s/.cache", dir);
    rmdir(want);

    /* a file where the directory should be */
    snprintf(want, sizeof want, "%s/plainfile", dir);
    FILE *f = fopen(want, "w");
    fclose(f);
    setenv("HCGA_CACHE_DIR", want, 1);
    FILE *w = tmpfile();
    ck_assert_int_eq(cu_algo_db_default_path(buf, sizeof buf, w), -1);
    ck_assert_ptr_nonnull(strstr(read_text(w), "cannot create the cache directory"));
    fclose(w);
}
END_TEST

static Suite *algo_db_suite(void)
{
    Suite *s = suite_create("cuda_algo_db");
    TCase *t = hcga_test_tcase(s, "file");
    tcase_add_checked_fixture(t, setup, teardown);
    HCGA_ADD_TESTS(t, test_round_trip, test_atomic_replace, test_merge_with_other_process, test_corrupt_lines,
                   test_key_mismatch, test_foreign_file_left_alone, test_default_path);
    return s;
}

int main(void)
{
    return hcga_test_run(algo_db_suite());
}
