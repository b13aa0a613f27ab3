/*
 * progress.c - the one-line progress indicator of progress.h: the pure
 * formatting of the line (hcga_progress_format, unit-tested in
 * tests/test_progress.c) and its drawing on stderr, which happens only when
 * stderr is a terminal, at most 10 times a second, cut to the terminal's
 * width and erased with "\r\033[K".  Only libc (and ioctl for the width).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util/progress.h"

#define PROGRESS_MIN_INTERVAL 0.1 /* seconds between redraws: at most 10 a second */
#define PROGRESS_LINE_MAX 512

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* printf at *pos into buf[len], keeping *pos at the terminator when the text
 * is cut. */
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    if (*pos + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0) {
        buf[*pos] = '\0';
        return;
    }
    *pos = (size_t)n >= len - *pos ? len - 1 : *pos + (size_t)n;
}

size_t hcga_progress_format_time(char *buf, size_t len, double seconds)
{
    if (!buf || len == 0) return 0;
    size_t pos = 0;
    buf[0] = '\0';
    if (!isfinite(seconds) || seconds < 0) {
        append(buf, len, &pos, "--");
    } else if (seconds >= 99.0 * 3600.0) {
        append(buf, len, &pos, ">99h");
    } else {
        long s = (long)(seconds + 0.5);
        if (s >= 3600)
            append(buf, len, &pos, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        else
            append(buf, len, &pos, "%ld:%02ld", s / 60, s % 60);
    }
    return pos;
}

size_t hcga_progress_format(char *buf, size_t len, const char *label, long long done, long long total,
                            double elapsed, const char *extra)
{
    if (!buf || len == 0) return 0;
    size_t pos = 0;
    buf[0] = '\0';
    if (done < 0) done = 0;
    if (label && *label) append(buf, len, &pos, "%s  ", label);
    if (total > 0) {
        double frac = done >= total ? 1.0 : (double)done / (double)total;
        append(buf, len, &pos, "%lld/%lld  %3d%%", done, total, (int)(100.0 * frac));
    } else {
        append(buf, len, &pos, "%lld", done);
    }
    /* the average rate since the start: items per second, or seconds per item
     * when an item takes longer than a second (a training step on a CPU) */
    const int have_rate = done > 0 && isfinite(elapsed) && elapsed > 0;
    double rate = have_rate ? (double)done / elapsed : 0;
    if (have_rate) {
        if (rate >= 100)
            append(buf, len, &pos, "  %.0f it/s", rate);
        else if (rate >= 1)
            append(buf, len, &pos, "  %.2f it/s", rate);
        else
            append(buf, len, &pos, "  %.2f s/it", 1.0 / rate);
    }
    if (total > 0) {
        char t[32];
        if (done >= total)
            hcga_progress_format_time(t, sizeof t, 0.0);
        else if (have_rate)
            hcga_progress_format_time(t, sizeof t, (double)(total - done) / rate);
        else
            hcga_progress_format_time(t, sizeof t, -1.0);
        append(buf, len, &pos, "  ETA %s", t);
    }
    if (extra && *extra) append(buf, len, &pos, "  %s", extra);
    return pos;
}

/* The terminal's width in columns (80 when it does not say). */
static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

static void erase(hcga_progress *p)
{
    if (!p->shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->shown = 0;
}

void hcga_progress_start(hcga_progress *p, const char *label, long long total)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t0 = mono_now();
    /* a dumb terminal (Emacs' shell, some CI consoles) does not know ESC [ K */
    const char *term = getenv("TERM");
    p->on = isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
    p->out_tty = isatty(STDOUT_FILENO);
    p->redraw = 1;
}

void hcga_progress_off(hcga_progress *p)
{
    if (!p) return;
    erase(p);
    p->on = 0;
}

void hcga_progress_update(hcga_progress *p, long long done, const char *extra)
{
    if (!p || !p->on) return;
    p->done = done;
    const double now = mono_now();
    const int last = p->total > 0 && done >= p->total;
    if (!p->redraw && !last && now - p->last_draw < PROGRESS_MIN_INTERVAL) return;
    char line[PROGRESS_LINE_MAX];
    size_t n = hcga_progress_format(line, sizeof line, p->label, done, p->total, now - p->t0, extra);
    /* never as wide as the terminal: a wrapped line could not be erased by
     * "\r\033[K"; never cut a UTF-8 sequence in two */
    size_t w = (size_t)term_width();
    if (w > 1 && n > w - 1) {
        n = w - 1;
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80) n--;
        line[n] = '\0';
    }
    fflush(stdout); /* what the program printed comes first */
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->shown = 1;
    p->redraw = 0;
    p->last_draw = now;
}

void hcga_progress_clear(hcga_progress *p)
{
    if (!p || !p->on || !p->out_tty) return;
    erase(p);
    p->redraw = 1;
}

void hcga_progress_finish(hcga_progress *p)
{
    if (!p) return;
    erase(p);
    p->on = 0;
}
