/*
 * cuda_algo_db.c - the persisted convolution-algorithm cache file (format
 * and guarantees in cuda_algo_db.h).  No CUDA here.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cuda_algo_db.h"

#define WARN(w, ...)                              \
    do {                                          \
        if (w) {                                  \
            fprintf((w), "hcga cuda: " __VA_ARGS__); \
            fputc('\n', (w));                     \
        }                                         \
    } while (0)

void cu_algo_db_init(cu_algo_db *db)
{
    db->v = NULL;
    db->n = db->cap = 0;
}

void cu_algo_db_free(cu_algo_db *db)
{
    for (size_t i = 0; i < db->n; i++) {
        free(db->v[i].device);
        free(db->v[i].key);
    }
    free(db->v);
    cu_algo_db_init(db);
}

int cu_algo_db_field_ok(const char *s)
{
    size_t n = 0;
    if (!s) return 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) return 0;
    return n >= 1 && n <= CU_ALGO_DB_MAX_FIELD;
}

const cu_algo_rec *cu_algo_db_find(const cu_algo_db *db, const char *device, const char *key)
{
    for (size_t i = 0; i < db->n; i++)
        if (strcmp(db->v[i].key, key) == 0 && strcmp(db->v[i].device, device) == 0) return &db->v[i];
    return NULL;
}

int cu_algo_db_add(cu_algo_db *db, const char *device, const char *key, int algo, int math, uint64_t ws,
                   double ms)
{
    if (!cu_algo_db_field_ok(device) || !cu_algo_db_field_ok(key) || algo < 0 || algo > 255 || math < 0 ||
        math > 15 || !isfinite(ms) || ms < 0)
        return -1;
    if (cu_algo_db_find(db, device, key)) return 0;
    if (db->n == db->cap) {
        size_t cap = db->cap ? db->cap * 2 : 32;
        cu_algo_rec *v = realloc(db->v, cap * sizeof *v);
        if (!v) return -1;
        db->v = v;
        db->cap = cap;
    }
    cu_algo_rec *r = &db->v[db->n];
    r->device = strdup(device);
    r->key = strdup(key);
    if (!r->device || !r->key) {
        free(r->device);
        free(r->key);
        return -1;
    }
    r->algo = algo;
    r->math = math;
    r->ws = ws;
    r->ms = ms;
    db->n++;
    return 1;
}

/* ---- reading ---------------------------------------------------------------- */

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    if (!*s || *s == '+' || *s == ' ') return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

/* One entry line (newline removed) into db; NULL or the reason it is corrupt. */
static const char *parse_entry(cu_algo_db *db, char *line)
{
    char *f[6];
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == 6) return "more than 6 TAB-separated fields";
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n != 6) return "fewer than 6 TAB-separated fields";
    if (!cu_algo_db_field_ok(f[0])) return "bad device field";
    if (!cu_algo_db_field_ok(f[1])) return "bad key field";
    long long algo, math;
    uint64_t ws;
    if (parse_ll(f[2], 0, 255, &algo) != 0) return "bad algorithm number";
    if (parse_ll(f[3], 0, 15, &math) != 0) return "bad math type";
    if (parse_u64(f[4], &ws) != 0) return "bad workspace size";
    char *end = NULL;
    errno = 0;
    double ms = strtod(f[5], &end);
    if (errno || end == f[5] || *end || !isfinite(ms) || ms < 0) return "bad time";
    if (cu_algo_db_add(db, f[0], f[1], (int)algo, (int)math, ws, ms) < 0) return "out of memory";
    return NULL;
}

/* Reads an open file; -1 if its header is not ours. */
static int load_stream(cu_algo_db *db, FILE *fp, const char *path, FILE *warn)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    char header[64];
    snprintf(header, sizeof header, "%s %d", CU_ALGO_DB_MAGIC, CU_ALGO_DB_VERSION);
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, header) != 0) {
                WARN(warn, "%s: header is not '%s': not an algorithm cache of this hcga, ignored", path, header);
                rc = -1;
                break;
            }
            continue;
        }
        if (len == 0 || line[0] == '#') continue;
        if ((size_t)len != strlen(line)) {
            WARN(warn, "%s:%ld: NUL byte; line ignored", path, lineno);
            continue;
        }
        const char *why = parse_entry(db, line);
        if (why) WARN(warn, "%s:%ld: %s; line ignored", path, lineno, why);
    }
    if (rc == 0 && ferror(fp)) {
        WARN(warn, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

int cu_algo_db_load(cu_algo_db *db, const char *path, FILE *warn)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT) return 0;
        WARN(warn, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    cu_algo_db tmp;
    cu_algo_db_init(&tmp);
    int rc = load_stream(&tmp, fp, path, warn);
    fclose(fp);
    if (rc == 0)
        for (size_t i = 0; i < tmp.n; i++) {
            const cu_algo_rec *r = &tmp.v[i];
            if (cu_algo_db_add(db, r->device, r->key, r->algo, r->math, r->ws, r->ms) < 0) {
                WARN(warn, "%s: out of memory", path);
                rc = -1;
                break;
            }
        }
    cu_algo_db_free(&tmp);
    return rc;
}

/* ---- writing ---------------------------------------------------------------- */

static int write_all(const cu_algo_db *db, FILE *fp)
{
    fprintf(fp, "%s %d\n", CU_ALGO_DB_MAGIC, CU_ALGO_DB_VERSION);
    fprintf(fp, "# cuDNN convolution algorithms found by hcga's CUDA backend (algo=cache); see docs/cuda-runs.md\n");
    fprintf(fp, "# device\tkey\talgo\tmath\tworkspace_bytes\ttime_ms\n");
    for (size_t i = 0; i < db->n; i++) {
        const cu_algo_rec *r = &db->v[i];
        fprintf(fp, "%s\t%s\t%d\t%d\t%llu\t%.6g\n", r->device, r->key, r->algo, r->math,
                (unsigned long long)r->ws, r->ms);
    }
    return ferror(fp) ? -1 : 0;
}

int cu_algo_db_save(cu_algo_db *db, const char *path, FILE *warn)
{
    size_t plen = strlen(path);
    char *lockp = malloc(plen + 6), *tmpp = malloc(plen + 32);
    int rc = -1, lockfd = -1;
    cu_algo_db merged;
    cu_algo_db_init(&merged);
    if (!lockp || !tmpp) {
        WARN(warn, "%s: out of memory", path);
        goto out;
    }
    snprintf(lockp, plen + 6, "%s.lock", path);
    snprintf(tmpp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    /* serialise writers: re-read + merge + rename under the lock */
    lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd >= 0 && flock(lockfd, LOCK_EX) != 0) {
        close(lockfd);
        lockfd = -1;
    }
    /* what the file holds now wins; ours are added after it */
    if (cu_algo_db_load(&merged, path, warn) != 0) {
        WARN(warn, "%s: not replaced; the new algorithm choices stay in this process only", path);
        goto out;
    }
    for (size_t i = 0; i < db->n; i++) {
        const cu_algo_rec *r = &db->v[i];
        if (cu_algo_db_add(&merged, r->device, r->key, r->algo, r->math, r->ws, r->ms) < 0) {
            WARN(warn, "%s: out of memory", path);
            goto out;
        }
    }
    int fd = open(tmpp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) {
        WARN(warn, "%s: cannot write: %s", tmpp, strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    int bad = write_all(&merged, fp);
    bad |= fflush(fp) != 0;
    bad |= fsync(fd) != 0;
    bad |= fclose(fp) != 0;
    if (bad) {
        WARN(warn, "%s: write failed: %s", tmpp, strerror(errno));
        unlink(tmpp);
        goto out;
    }
    if (rename(tmpp, path) != 0) {
        WARN(warn, "%s: cannot rename to %s: %s", tmpp, path, strerror(errno));
        unlink(tmpp);
        goto out;
    }
    /* db becomes the merged content */
    cu_algo_db swap = *db;
    *db = merged;
    merged = swap;
    rc = 0;
out:
    if (lockfd >= 0) close(lockfd); /* releases the flock */
    cu_algo_db_free(&merged);
    free(lockp);
    free(tmpp);
    return rc;
}

/* mkdir -p with mode 0700 for what it creates */
static int make_dirs(char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : -1;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int rc = make_dirs(dir);
        *slash = '/';
        if (rc != 0) return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
    return 0;
}

int cu_algo_db_default_path(char *buf, size_t len, FILE *warn)
{
    const char *env = getenv("HCGA_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4096];
    int n;
    if (env && *env) n = snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg) n = snprintf(dir, sizeof dir, "%s/hcga", xdg);
    else if (home && *home) n = snprintf(dir, sizeof dir, "%s/.cache/hcga", home);
    else {
        WARN(warn, "no cache directory: none of HCGA_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
        return -1;
    }
    if (n < 0 || (size_t)n >= sizeof dir) {
        WARN(warn, "cache directory path is too long");
        return -1;
    }
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    if (make_dirs(dir) != 0) {
        WARN(warn, "%s: cannot create the cache directory: %s", dir, strerror(errno));
        return -1;
    }
    n = snprintf(buf, len, "%s/%s", dir, CU_ALGO_DB_FILE);
    if (n < 0 || (size_t)n >= len) {
        WARN(warn, "cache file path is too long");
        return -1;
    }
    return 0;
}
