/*
 * progress.h - a one-line progress indicator on stderr for long work
 * (training epochs, co-parsing rounds, conformance runs, indexing), drawn
 * only when stderr is a terminal.  When stderr is a file or a pipe (logs,
 * CI, `2>err.txt`) nothing at all is written, so logs and metrics files
 * stay exactly as they were.  It needs nothing but libc: it is part of
 * frontend/util and may be used by every layer.
 *
 * The line looks like
 *     epoch 3/120  45/187  24%  2.31 it/s  ETA 1:01  loss 3.214
 * (label, done/total, percent, average rate since start, remaining time,
 * the caller's extra text), cut to the terminal's width so that it never
 * wraps, redrawn in place with "\r\033[K" at most 10 times a second.
 *
 * Use:
 *     hcga_progress pg;
 *     hcga_progress_start(&pg, "index", n);      // draws nothing yet
 *     if (rank != 0) hcga_progress_off(&pg);     // e.g. only rank 0 of mpirun
 *     for (i = 0; i < n; i++) {
 *         ... work, which may print to stdout: call hcga_progress_clear(&pg)
 *             before such a line so that it does not land on the bar ...
 *         hcga_progress_update(&pg, i + 1, name_of_item);
 *     }
 *     hcga_progress_finish(&pg);                 // erases the line
 *
 * A progress object belongs to one thread; two objects must not be drawn at
 * the same time (finish one before starting the next).  None of the calls
 * can fail; with a NULL object they do nothing.
 */
#ifndef HCGA_PROGRESS_H
#define HCGA_PROGRESS_H

#include <stddef.h>

typedef struct hcga_progress {
    char label[64];
    long long total;  /* <= 0: unknown (no percent, no ETA) */
    long long done;   /* the last value given to update */
    double t0;        /* monotonic seconds at start */
    double last_draw; /* monotonic seconds of the last redraw */
    int on;           /* 1: stderr is a terminal and drawing was not turned off */
    int shown;        /* 1: a line is on the screen now */
    int redraw;       /* 1: the next update draws whatever the rate limit says */
    int out_tty;      /* 1: stdout is a terminal as well */
} hcga_progress;

/* Begin: remembers label (cut to 63 bytes), total and the start time.  The
 * line is drawn only when isatty(STDERR_FILENO); nothing is drawn until the
 * first hcga_progress_update. */
void hcga_progress_start(hcga_progress *p, const char *label, long long total);

/* Never draw this indicator (for example on every rank of a data-parallel
 * job but rank 0, where stderr may be the same terminal).  Erases the line
 * when one is shown. */
void hcga_progress_off(hcga_progress *p);

/* done items of total so far; extra (may be NULL) is appended to the line,
 * e.g. "loss 3.214" or the item's name.  Redraws when 0.1 s have passed
 * since the last redraw, when done reaches total, or after a clear. */
void hcga_progress_update(hcga_progress *p, long long done, const char *extra);

/* Call before a line goes to stdout (a log line): when stdout is a terminal
 * too, erases the shown line so that the text does not land on it, and the
 * next update redraws at once below the new text.  When stdout goes to a
 * file or a pipe it does nothing.  (Before a message on stderr, call
 * hcga_progress_finish instead.) */
void hcga_progress_clear(hcga_progress *p);

/* Erase the line for good.  The object may be started again. */
void hcga_progress_finish(hcga_progress *p);

/* The pure part, for tests and for other front ends: formats the line for
 * label, done of total (total <= 0: unknown) after elapsed seconds, with
 * extra appended (NULL: none), into buf of len bytes (always terminated when
 * len > 0; cut when too short).  No escape sequences, no newline.  Returns
 * the length written (at most len - 1). */
size_t hcga_progress_format(char *buf, size_t len, const char *label, long long done, long long total,
                            double elapsed, const char *extra);

/* "m:ss", or "h:mm:ss" from one hour, or ">99h" beyond 99 hours, of seconds
 * (negative or not finite: "--") into buf.  Returns the length written. */
size_t hcga_progress_format_time(char *buf, size_t len, double seconds);

#endif
