/*
 * cpu_pool.c - a small persistent thread pool with static partitioning.
 *
 * cpu_pool_run() splits [0, n) into T contiguous ranges, T = min(threads,
 * n / grain), range t = [n*t/T, n*(t+1)/T).  The split depends only on n,
 * grain and the thread count, never on timing, and every range computes the
 * same thing whichever thread runs it, so results are reproducible.
 *
 * Ranges are claimed (under the pool mutex) by whichever thread gets there
 * first; the caller claims too.  On an oversubscribed machine a worker that
 * is not scheduled in time therefore costs nothing: the caller runs its range
 * instead of sleeping on it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

struct cpu_pool {
    int nthreads;
    pthread_t *th;
    int started; /* workers successfully started */
    pthread_mutex_t mu;
    pthread_cond_t cv_start;
    pthread_cond_t cv_done;
    uint64_t gen;   /* incremented for each job */
    int stop;
    /* current job */
    cpu_task_fn fn;
    void *ctx;
    int64_t n;
    int nparts;
    int next; /* next unclaimed range */
    int done; /* ranges finished */
};

/* Claims and runs ranges of job `gen` until none is left. */
static void run_ranges(cpu_pool *p, uint64_t gen, int tid)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->gen != gen || p->next >= p->nparts) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        int r = p->next++;
        cpu_task_fn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n;
        int parts = p->nparts;
        pthread_mutex_unlock(&p->mu);

        int64_t b = n * r / parts, e = n * (r + 1) / parts;
        if (e > b) fn(ctx, b, e, tid);

        pthread_mutex_lock(&p->mu);
        if (++p->done == parts) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

typedef struct worker_arg {
    cpu_pool *p;
    int tid;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    cpu_pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->cv_start, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_ranges(p, seen, wa.tid);
    }
}

cpu_pool *cpu_pool_create(int nthreads, char *err, size_t err_len)
{
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_len, "cpu: out of memory creating the thread pool");
        return NULL;
    }
    p->nthreads = nthreads < 1 ? 1 : nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (p->nthreads > 1) {
        p->th = calloc((size_t)p->nthreads, sizeof *p->th);
        if (!p->th) {
            snprintf(err, err_len, "cpu: out of memory creating the thread pool");
            cpu_pool_destroy(p);
            return NULL;
        }
        for (int t = 1; t < p->nthreads; t++) {
            worker_arg *wa = malloc(sizeof *wa);
            int rc = wa ? 0 : ENOMEM;
            if (wa) {
                wa->p = p;
                wa->tid = t;
                rc = pthread_create(&p->th[t], NULL, worker_main, wa);
                if (rc) free(wa);
            }
            if (rc) {
                snprintf(err, err_len, "cpu: pthread_create for worker %d of %d failed: %s", t,
                         p->nthreads, strerror(rc));
                cpu_pool_destroy(p);
                return NULL;
            }
            p->started = t;
        }
    }
    return p;
}

void cpu_pool_destroy(cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t <= p->started; t++) pthread_join(p->th[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    free(p->th);
    free(p);
}

void cpu_pool_run(cpu_pool *p, int64_t n, int64_t grain, cpu_task_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t parts = n / grain;
    if (parts > p->nthreads) parts = p->nthreads;
    if (parts <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->nparts = (int)parts;
    p->next = 0;
    p->done = 0;
    uint64_t gen = ++p->gen;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);

    run_ranges(p, gen, 0);

    pthread_mutex_lock(&p->mu);
    while (p->done < p->nparts) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
