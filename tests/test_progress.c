/*
 * test_progress.c - the terminal progress line of frontend/util/progress.h:
 * the pure formatting (count/total, percent, rate, ETA, extra text, unknown
 * totals, cutting to a short buffer) and the rule that nothing at all is
 * written to stderr when it is not a terminal (as under `make check`, where
 * stderr is a log file: start/update/clear/finish must leave it untouched).
 */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util/progress.h"

#define ck_assert_contains(hay, needle)                                                      \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in \"%s\"", (needle), (hay))

START_TEST(test_format_line)
{
    char buf[256];
    size_t n = hcga_progress_format(buf, sizeof buf, "epoch 3/120", 45, 187, 19.48, "loss 3.214");
    ck_assert_uint_eq(n, strlen(buf));
    /* 45 in 19.48 s: 2.31 it/s; 142 left: 61.5 s */
    ck_assert_str_eq(buf, "epoch 3/120  45/187   24%  2.31 it/s  ETA 1:01  loss 3.214");

    /* slower than one a second: seconds per item; ETA in h:mm:ss from an hour */
    hcga_progress_format(buf, sizeof buf, "train", 2, 1000, 9.0, NULL);
    ck_assert_str_eq(buf, "train  2/1000    0%  4.50 s/it  ETA 1:14:51");

    /* fast: whole items per second */
    hcga_progress_format(buf, sizeof buf, "conformance test f32", 500, 1000, 2.0, "conv2d_fwd");
    ck_assert_str_eq(buf, "conformance test f32  500/1000   50%  250 it/s  ETA 0:02  conv2d_fwd");
}
END_TEST

START_TEST(test_format_edges)
{
    char buf[256];
    /* nothing done yet: no rate, unknown ETA */
    hcga_progress_format(buf, sizeof buf, "index", 0, 10, 0.0, NULL);
    ck_assert_str_eq(buf, "index  0/10    0%  ETA --");
    /* done: 100%, ETA 0:00 (also past the total, which is clamped) */
    hcga_progress_format(buf, sizeof buf, "index", 10, 10, 5.0, NULL);
    ck_assert_str_eq(buf, "index  10/10  100%  2.00 it/s  ETA 0:00");
    hcga_progress_format(buf, sizeof buf, "index", 12, 10, 6.0, NULL);
    ck_assert_str_eq(buf, "index  12/10  100%  2.00 it/s  ETA 0:00");
    /* unknown total: no percent, no ETA; no label */
    hcga_progress_format(buf, sizeof buf, "", 7, 0, 3.5, "x");
    ck_assert_str_eq(buf, "7  2.00 it/s  x");
    hcga_progress_format(buf, sizeof buf, NULL, -3, -1, -1.0, NULL);
    ck_assert_str_eq(buf, "0");
    /* a zero or non-finite elapsed time gives no rate (no division by zero) */
    hcga_progress_format(buf, sizeof buf, "a", 5, 10, 0.0, NULL);
    ck_assert_str_eq(buf, "a  5/10   50%  ETA --");
    hcga_progress_format(buf, sizeof buf, "a", 5, 10, INFINITY, NULL);
    ck_assert_str_eq(buf, "a  5/10   50%  ETA --");
    /* a huge total and a tiny rate: the ETA is capped, not overflowed */
    hcga_progress_format(buf, sizeof buf, "a", 1, 9000000000000LL, 1000.0, NULL);
    ck_assert_str_eq(buf, "a  1/9000000000000    0%  1000.00 s/it  ETA >99h");
}
END_TEST

START_TEST(test_format_cut)
{
    /* a short buffer: cut, terminated, the length returned is what fits */
    char small[12];
    memset(small, 'z', sizeof small);
    size_t n = hcga_progress_format(small, sizeof small, "epoch 3/120", 45, 187, 19.48, "loss 3.214");
    ck_assert_uint_eq(n, sizeof small - 1);
    ck_assert_str_eq(small, "epoch 3/120");
    char one[1] = {'z'};
    ck_assert_uint_eq(hcga_progress_format(one, 1, "x", 1, 2, 1.0, NULL), 0);
    ck_assert_int_eq(one[0], '\0');
    ck_assert_uint_eq(hcga_progress_format(NULL, 0, "x", 1, 2, 1.0, NULL), 0);
}
END_TEST

START_TEST(test_format_time)
{
    char t[16];
    hcga_progress_format_time(t, sizeof t, 0.4);
    ck_assert_str_eq(t, "0:00");
    hcga_progress_format_time(t, sizeof t, 59.6);
    ck_assert_str_eq(t, "1:00");
    hcga_progress_format_time(t, sizeof t, 3599.0);
    ck_assert_str_eq(t, "59:59");
    hcga_progress_format_time(t, sizeof t, 3600.0);
    ck_assert_str_eq(t, "1:00:00");
    hcga_progress_format_time(t, sizeof t, 98.0 * 3600 + 61);
    ck_assert_str_eq(t, "98:01:01");
    hcga_progress_format_time(t, sizeof t, 99.0 * 3600);
    ck_assert_str_eq(t, ">99h");
    hcga_progress_format_time(t, sizeof t, -1.0);
    ck_assert_str_eq(t, "--");
    hcga_progress_format_time(t, sizeof t, NAN);
    ck_assert_str_eq(t, "--");
}
END_TEST

/* stderr redirected to a file (not a terminal): the whole API writes nothing */
START_TEST(test_silent_when_not_a_tty)
{
    char path[] = "/tmp/hcga_test_progress_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    hcga_progress pg;
    hcga_progress_start(&pg, "silent", 3);
    for (int i = 0; i <= 3; i++) {
        hcga_progress_clear(&pg);
        hcga_progress_update(&pg, i, "extra");
    }
    hcga_progress_finish(&pg);
    hcga_progress_start(&pg, "silent", 0);
    hcga_progress_off(&pg);
    hcga_progress_update(&pg, 1, NULL);
    hcga_progress_finish(&pg);
    /* NULL objects are ignored */
    hcga_progress_start(NULL, "x", 1);
    hcga_progress_update(NULL, 1, NULL);
    hcga_progress_clear(NULL);
    hcga_progress_off(NULL);
    hcga_progress_finish(NULL);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    close(fd);
    ck_assert_msg(st.st_size == 0, "%lld bytes written to a stderr that is not a terminal",
                  (long long)st.st_size);
    ck_assert_int_eq(pg.on, 0);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("progress", &tc);
    HCGA_ADD_TESTS(tc, test_format_line, test_format_edges, test_format_cut, test_format_time,
                   test_silent_when_not_a_tty);
    return hcga_test_run(s);
}
