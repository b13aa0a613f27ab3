/*
 * testutil.h - support shared by the Check unit tests (tests/test_*.c and
 * conformance/test_*.c): the runner every test's main() ends with, a suite
 * with its one test case, fresh temporary directories and their removal, and
 * shell commands whose output goes to a log file.  Built once as
 * tests/libhcgatest.la and linked into each test program, so that the tests
 * hold only what they test.
 */
#ifndef HCGA_TESTUTIL_H
#define HCGA_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Run every test of s (CK_NORMAL output) and free the runner: the exit status
 * for main(), EXIT_FAILURE when any test failed and EXIT_SUCCESS otherwise. */
int hcga_test_run(Suite *s);

/* A suite named name holding one test case of the same name, returned in *tc
 * for the caller to add its tests to. */
Suite *hcga_test_suite(const char *name, TCase **tc);

/* Create a test case named name and add it to s: for a suite of several. */
TCase *hcga_test_tcase(Suite *s, const char *name);

/* Add the tests named (START_TEST names, at least one) to tc in order, as
 * tcase_add_test would one by one: HCGA_ADD_TESTS(tc, test_a, test_b).  (A
 * START_TEST name is a const TTest *: check 0.13 or newer, which configure
 * requires.) */
#define HCGA_ADD_TESTS(tc, ...) hcga_test_add((tc), (const TTest *const[]){__VA_ARGS__, NULL})
void hcga_test_add(TCase *tc, const TTest *const *tests);

/* Make a fresh directory /tmp/<prefix>XXXXXX and leave its path in dir (of
 * size bytes); the test fails when mkdtemp cannot. */
void hcga_test_mkdtemp(char *dir, size_t size, const char *prefix);

/* The source tree: $HCGA_SRCDIR when set, else the one this was built from. */
const char *hcga_test_srcdir(void);

/* `rm -rf` path: system()'s status, 0 when it was removed. */
int hcga_test_rm_rf(const char *path);

/* Run the shell command printf(fmt, ...) with its stdout and stderr appended
 * to <dir>/log: its exit status, or 128 when it did not exit normally. */
int hcga_test_sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A program's exit status (or 128+signal) and the start of its output. */
typedef struct hcga_test_output {
    int status;
    char out[65536];
    char err[65536];
} hcga_test_output;

/* Run the program bin with the arguments args (NULL-terminated, without
 * argv[0]), stdin from /dev/null, and capture its stdout and stderr into
 * *res (at most 64 KiB each).  The test fails when it cannot be started. */
void hcga_test_run_program(const char *bin, const char *const *args, hcga_test_output *res);

/* The per-step losses of a training run's metrics.jsonl (its lines with a
 * "step" and a "loss", in order) into loss[]: how many.  The test fails when
 * the file cannot be opened, a step is out of sequence or there are more than
 * max of them. */
int hcga_test_read_losses(const char *path, double *loss, int max);

/* Pseudo-random numbers for test data, the same sequence on every run:
 * xorshift64 in [0, 1), and a 64-bit LCG in [-1, 1); *state is the generator. */
double hcga_test_urand01(uint64_t *state);
double hcga_test_urand_pm1(uint64_t *state);

/* The cpu backend with one thread, opened through libhcga's loader (the test
 * fails, with the loader's reason, when it cannot be opened); close it with
 * hcga_be_close.  In testutil_be.c: only for tests linked with libhcga. */
struct hcga_be;
struct hcga_be *hcga_test_open_cpu(void);

/* A conv2d_fwd (3x3, pad 1) + bn_fwd_train + relu_fwd sequence on
 * x[2,3,6,6] -> y -> n -> z[2,4,6,6] (no call in place), for the graph capture tests (cpu and cuda): the
 * buffers (weights and bn parameters filled from fixed seeds), the calls
 * (descriptors on the callee's stack, scribbled over after each call, so a
 * recording must have copied them) and its outputs.  In testutil_be.c. */
enum { HCGA_CBR_XN = 2 * 3 * 6 * 6, HCGA_CBR_ZN = 2 * 4 * 6 * 6, HCGA_CBR_K = 4 };
typedef struct hcga_test_cbr {
    struct hcga_buffer *x, *w, *y, *n, *gamma, *beta, *mean, *invstd, *rmean, *rvar, *z;
} hcga_test_cbr;
typedef struct hcga_test_cbr_out {
    float z[HCGA_CBR_ZN], mean[HCGA_CBR_K], invstd[HCGA_CBR_K], rmean[HCGA_CBR_K], rvar[HCGA_CBR_K];
} hcga_test_cbr_out;
void hcga_test_cbr_alloc(struct hcga_be *be, hcga_test_cbr *q);
void hcga_test_cbr_free(struct hcga_be *be, hcga_test_cbr *q);
/* Write x (HCGA_CBR_XN floats), reset the running statistics (0 and 1) and
 * fill z with -12345. */
void hcga_test_cbr_input(struct hcga_be *be, const hcga_test_cbr *q, const float *x);
/* Issue the three calls (each must return HCGA_OK). */
void hcga_test_cbr_issue(struct hcga_be *be, const hcga_test_cbr *q);
void hcga_test_cbr_read(struct hcga_be *be, const hcga_test_cbr *q, hcga_test_cbr_out *o);

/* Copy the last lines lines of <dir>/log to stderr (after a failed command). */
void hcga_test_tail_log(const char *dir, int lines);

#endif
