/*
 * cpu_pool.c - a small persistent thread pool with static partitioning.
 *
 * cpu_pool_run() splits [0, n) into T contiguous ranges, T = min(threads,
 * n / grain), range t = [n*t/T, n*(t+1)/T).  The split depends only on n,
 * grain and the thread count, never on timing, and every range computes the
 * same thing whichever thread runs it, so results are reproducible.
 *
 * Ranges are claimed by whichever thread gets there first; the caller claims
 * too.  On an oversubscribed machine a worker that is not scheduled in time
 * therefore costs nothing: the caller runs its range instead of sleeping on
 * it.
 *
 * Hand-off: the job word `state` holds the job generation (bits 32-63), its
 * number of ranges (16-31) and the next unclaimed range (0-15); a range is
 * claimed with a compare-and-swap on it, so a late worker can never claim a
 * range of a newer job, and the job's other fields are read only by a thread
 * holding an unfinished range of it.  Most ops are short (a few to a few
 * hundred microseconds) and follow each other closely, so an idle worker
 * first polls `state` for up to CPU_POOL_SPIN pause instructions (tens of
 * microseconds) before it sleeps on a condition variable, and the caller
 * polls the done count likewise before it sleeps; a futex wake-up costs
 * more than many of the ops.  The spin is short and adaptive: each thread
 * halves its budget after a poll that timed out and doubles it after one
 * that succeeded (between CPU_POOL_SPIN_MIN and CPU_POOL_SPIN).  When the
 * two threads end up sharing one core (another job holds the other one),
 * polls cannot succeed, because the thread that would end the wait is not
 * running, and the budgets fall to the minimum instead of burning the
 * shared core; unlike BLAS servers, nothing ever spins for long.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#define CPU_POOL_SPIN 2048    /* most pause iterations before sleeping (~50 us) */
#define CPU_POOL_SPIN_MIN 64  /* fewest (a couple of us) */

/* The next poll budget after a poll with budget b that succeeded or not. */
static inline int spin_adapt(int b, int ok)
{
    if (ok) return b < CPU_POOL_SPIN / 2 ? 2 * b : CPU_POOL_SPIN;
    return b > 2 * CPU_POOL_SPIN_MIN ? b / 2 : CPU_POOL_SPIN_MIN;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct cpu_pool {
    int nthreads;
    pthread_t *th;
    int started; /* workers successfully started */
    _Atomic uint64_t state; /* generation << 32 | ranges << 16 | next range */
    _Atomic int done;       /* ranges finished in the current job */
    _Atomic int stop;
    /* current job: written by the caller before it publishes state */
    cpu_task_fn fn;
    void *ctx;
    int64_t n;
    /* sleeping */
    pthread_mutex_t mu;
    pthread_cond_t cv_start;
    pthread_cond_t cv_done;
    int sleepers;      /* workers in cv_start (under mu) */
    int caller_waits;  /* caller in cv_done (under mu) */
    int caller_spin;   /* the caller's poll budget (touched by the caller only) */
};

/* Claims and runs ranges of job `gen` until none is left. */
static void run_ranges(cpu_pool *p, uint32_t gen, int tid)
{
    for (;;) {
        uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        if ((uint32_t)(s >> 32) != gen) return;
        const int parts = (int)((s >> 16) & 0xffff), r = (int)(s & 0xffff);
        if (r >= parts) return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        /* the job cannot change before this range is reported done */
        int64_t b = p->n * r / parts, e = p->n * (r + 1) / parts;
        if (e > b) p->fn(p->ctx, b, e, tid);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == parts) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waits) pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
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
    uint32_t seen = 0;
    int budget = CPU_POOL_SPIN;
    for (;;) {
        uint32_t gen = seen;
        for (int i = 0; i < budget; i++) {
            gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
            if (gen != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
            cpu_relax();
        }
        budget = spin_adapt(budget, gen != seen);
        if (gen == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            for (;;) {
                gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
                if (gen != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
                pthread_cond_wait(&p->cv_start, &p->mu);
            }
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
        seen = gen;
        run_ranges(p, gen, wa.tid);
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
    p->caller_spin = CPU_POOL_SPIN;
    atomic_init(&p->state, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->stop, 0);
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
    atomic_store(&p->stop, 1);
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
    /* publish the job: every worker is between jobs (the previous job's
     * ranges are all done), so these plain writes race with nothing */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t s = atomic_load_explicit(&p->state, memory_order_relaxed);
    uint32_t gen = (uint32_t)(s >> 32) + 1;
    atomic_store_explicit(&p->state, (uint64_t)gen << 32 | (uint64_t)parts << 16,
                          memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);

    run_ranges(p, gen, 0);

    const int budget = p->caller_spin;
    for (int i = 0; i < budget; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == (int)parts) {
            p->caller_spin = spin_adapt(budget, 1);
            return;
        }
        cpu_relax();
    }
    p->caller_spin = spin_adapt(budget, 0);
    pthread_mutex_lock(&p->mu);
    p->caller_waits = 1;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < (int)parts)
        pthread_cond_wait(&p->cv_done, &p->mu);
    p->caller_waits = 0;
    pthread_mutex_unlock(&p->mu);
}
