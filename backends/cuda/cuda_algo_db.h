/*
 * cuda_algo_db.h - the persisted convolution-algorithm cache of the CUDA
 * backend (option algo=cache): a text file of cudnnFind* results, so that a
 * timed choice is made once per machine and every later process chooses
 * the same algorithms.  The models are MIOpen's find-db and XLA's autotune
 * cache directory.
 *
 * Plain C with no CUDA dependency, so that the format, the merge and the
 * atomic replacement are unit-tested without a GPU
 * (tests/test_cuda_algo_db.c).  cuda_dnn.c builds the two strings
 * (device identity, convolution key) and stores cuDNN's answer.
 *
 * File (UTF-8 text; docs/cuda-runs.md "Persisted autotuning"):
 *
 *   hcga-cudnn-algo-cache 1
 *   # device <TAB> key <TAB> algo <TAB> math <TAB> workspace_bytes <TAB> time_ms
 *   NVIDIA H200|sm_90|132 SMs|driver 13000|runtime 13000|cudnn 91900<TAB>fwd|bf16|NCHW|tensor_op|det|n64 c3 h256 w128 k64 r3 s3 pad1,1 stride2,2 dil1,1<TAB>1<TAB>1<TAB>4608<TAB>0.0431
 *
 *  - line 1 is the header: the magic word and the format version; a file
 *    whose header is anything else is foreign: it is not read, and not
 *    replaced either (saving fails with a warning);
 *  - '#' lines and empty lines are comments;
 *  - an entry has exactly six TAB-separated fields: device identity and
 *    key (printable ASCII, no TAB, 1..511 bytes), algorithm (0..255), math
 *    type (0..15), workspace in bytes, time in milliseconds (finite, >= 0);
 *    any other line is corrupt: skipped with a warning naming file and line;
 *  - (device, key) is unique; lookups match both strings exactly, so an
 *    entry of another GPU, driver or library version is kept but never used.
 *
 * Saving takes an exclusive flock on "<file>.lock", re-reads the file,
 * merges (an entry already in the file wins over ours: the first process to
 * persist a choice fixes it for every later one), writes "<file>.tmp.<pid>",
 * fsyncs it and renames it over the file, so a reader sees the old or the
 * new file, never a partial one.  Where flock is unavailable the save still
 * goes through (the rename keeps it atomic; a concurrent writer's new
 * entries may then be lost, to be found again later).
 *
 * Warnings go to the FILE* passed (stderr in the backend), one line each,
 * prefixed "hcga cuda: ".
 */
#ifndef HCGA_CUDA_ALGO_DB_H
#define HCGA_CUDA_ALGO_DB_H

#include <stdint.h>
#include <stdio.h>

#define CU_ALGO_DB_MAGIC "hcga-cudnn-algo-cache"
#define CU_ALGO_DB_VERSION 1
#define CU_ALGO_DB_FILE "cudnn-algos.v1.txt"
#define CU_ALGO_DB_MAX_FIELD 511

typedef struct cu_algo_rec {
    char *device; /* GPU name, SM count, driver / CUDA / cuDNN versions */
    char *key;    /* direction, dtype, layout, math mode, geometry */
    int algo;     /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    int math;     /* cudnnMathType_t to run it with */
    uint64_t ws;  /* workspace bytes */
    double ms;    /* time cudnnFind* measured */
} cu_algo_rec;

typedef struct cu_algo_db {
    cu_algo_rec *v;
    size_t n, cap;
} cu_algo_db;

void cu_algo_db_init(cu_algo_db *db);
void cu_algo_db_free(cu_algo_db *db);

/* Reads path into db (entries already in db win).  A missing file is an
 * empty cache (0).  -1: unreadable or foreign file (warning written), db
 * unchanged. */
int cu_algo_db_load(cu_algo_db *db, const char *path, FILE *warn);

/* The entry for (device, key), or NULL. */
const cu_algo_rec *cu_algo_db_find(const cu_algo_db *db, const char *device, const char *key);

/* Adds an entry unless (device, key) is present.  1 added, 0 present,
 * -1 invalid fields (see the format) or out of memory. */
int cu_algo_db_add(cu_algo_db *db, const char *device, const char *key, int algo, int math, uint64_t ws,
                   double ms);

/* Merges db with the file and replaces the file atomically (above); db then
 * holds the merged content.  0 ok, -1 failed (warning written; db keeps
 * its entries). */
int cu_algo_db_save(cu_algo_db *db, const char *path, FILE *warn);

/* The cache directory, $HCGA_CACHE_DIR, else $XDG_CACHE_HOME/hcga, else
 * $HOME/.cache/hcga, created if missing (mode 0700 for new directories),
 * followed by "/" CU_ALGO_DB_FILE.  0 ok, -1 no usable directory (warning). */
int cu_algo_db_default_path(char *buf, size_t len, FILE *warn);

/* 1 if s is usable as a device or key field (printable ASCII, no TAB,
 * 1..CU_ALGO_DB_MAX_FIELD bytes). */
int cu_algo_db_field_ok(const char *s);

#endif
