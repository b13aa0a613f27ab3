/*
 * dist.c - ranks of a data-parallel run over MPI (see dist.h).
 *
 * One process-wide state (the job is a process-wide fact).  Every
 * collective is started non-blocking and then polled with a deadline, so a
 * dead or hung rank turns into a message and MPI_Abort instead of a hang.
 * To name the ranks that did not arrive, every rank but 0 also sends rank 0
 * the sequence number of each collective it enters ("arrivals"); rank 0
 * reads them while it waits.  When its deadline passes it also pings every
 * rank (a rank waiting in a collective answers from its poll loop; a
 * stopped or hung one does not) and names the ranks that never arrived or
 * did not answer.  The other ranks wait longer than rank 0, so the named
 * message normally comes first.
 */
#include "hcga_autoconf.h"

#include "dist/dist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcga_plugin.h"
#include "util/util.h"

#ifdef HCGA_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    int rank, size, local_rank, local_size;
    int mpi; /* 1: we called MPI_Init and must finalize */
    double timeout;
    long long step, seq; /* the training step; collectives entered so far */
    long long *arrived;  /* rank 0: last sequence number heard from each rank */
} D = {0, 1, 0, 1, 0, 600.0, 0, 0, NULL};

static void set_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* The number of ranks the launcher says the job has, 0 when not launched. */
static int launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            if (n > 0) return (int)n;
        }
    }
    /* PMIx launchers (Open MPI 5, srun --mpi=pmix) always set PMIX_RANK */
    return getenv("PMIX_RANK") ? 1 : 0;
}

int hcga_dist_rank(void) { return D.rank; }
int hcga_dist_size(void) { return D.size; }
int hcga_dist_local_rank(void) { return D.local_rank; }
int hcga_dist_local_size(void) { return D.local_size; }
void hcga_dist_set_step(long long step) { D.step = step; }
double hcga_dist_timeout(void) { return D.timeout; }

void hcga_dist_set_timeout(double seconds)
{
    if (seconds > 0) D.timeout = seconds;
}

int hcga_dist_built_with_mpi(void)
{
#ifdef HCGA_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

static int timeout_from_env(char *err, size_t err_len)
{
    const char *v = getenv("HCGA_DIST_TIMEOUT");
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    if (errno || *end || !(t > 0) || t > 1e7) {
        set_err(err, err_len, "HCGA_DIST_TIMEOUT: '%s' is not a number of seconds (> 0)", v);
        return -1;
    }
    D.timeout = t;
    return 0;
}

/* a gather with one rank: a copy */
static int gather_one(const void *send, int64_t bytes, void *recv, int64_t recv_cap, int64_t *total,
                      const char *what, char *err, size_t err_len)
{
    if (bytes > recv_cap) {
        set_err(err, err_len, "%s: %lld bytes do not fit %lld", what, (long long)bytes, (long long)recv_cap);
        return -1;
    }
    if (bytes > 0 && recv != send) memmove(recv, send, (size_t)bytes);
    if (total) *total = bytes;
    return 0;
}

#ifndef HCGA_HAVE_MPI

int hcga_dist_init(int *argc, char ***argv, char *err, size_t err_len)
{
    (void)argc;
    (void)argv;
    int n = launcher_size();
    if (n > 1) {
        set_err(err, err_len,
                "started as one of %d ranks, but this hcga was built without MPI (configure found no "
                "mpi-c; apt-get install libopenmpi-dev and rebuild)",
                n);
        return -1;
    }
    return timeout_from_env(err, err_len);
}

void hcga_dist_finalize(void) {}

void hcga_dist_abort(int code, const char *msg)
{
    fprintf(stderr, "hcga: %s\n", msg);
    exit(code);
}

int hcga_dist_barrier(const char *what, char *err, size_t err_len)
{
    (void)what, (void)err, (void)err_len;
    return 0;
}

int hcga_dist_bcast(void *buf, size_t bytes, int root, const char *what, char *err, size_t err_len)
{
    (void)buf, (void)bytes, (void)root, (void)what, (void)err, (void)err_len;
    return 0;
}

int hcga_dist_allreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err, size_t err_len)
{
    (void)buf, (void)count, (void)dtype, (void)what, (void)err, (void)err_len;
    return 0;
}

int hcga_dist_gather(const void *send, int64_t bytes, void *recv, int64_t recv_cap, int root, int64_t *total,
                     const char *what, char *err, size_t err_len)
{
    (void)root;
    return gather_one(send, bytes, recv, recv_cap, total, what, err, err_len);
}

int hcga_dist_allgather_i64(int64_t value, int64_t *values, const char *what, char *err, size_t err_len)
{
    (void)what, (void)err, (void)err_len;
    values[0] = value;
    return 0;
}

struct hcga_dist_req {
    int unused;
};

hcga_dist_req *hcga_dist_iallreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err,
                                        size_t err_len)
{
    (void)buf, (void)count, (void)dtype, (void)what;
    hcga_dist_req *r = calloc(1, sizeof *r);
    if (!r) set_err(err, err_len, "out of memory");
    return r;
}

int hcga_dist_test(hcga_dist_req *r, char *err, size_t err_len)
{
    (void)r, (void)err, (void)err_len;
    return 1;
}

int hcga_dist_wait(hcga_dist_req *r, char *err, size_t err_len)
{
    (void)err, (void)err_len;
    free(r);
    return 0;
}

#else /* HCGA_HAVE_MPI */

enum { TAG_ARRIVE = 7101, TAG_PING = 7102, TAG_PONG = 7103, ARRIVE_RING = 64 };

/* rank != 0: sends of arrival numbers still in flight */
static MPI_Request arrive_req[ARRIVE_RING];
static long long arrive_buf[ARRIVE_RING];

static void mpi_msg(int rc, char *buf, size_t n)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    snprintf(buf, n, "%s", s);
}

int hcga_dist_init(int *argc, char ***argv, char *err, size_t err_len)
{
    if (timeout_from_env(err, err_len)) return -1;
    if (launcher_size() == 0) return 0; /* not started by a launcher: one rank, no MPI */
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        char m[256];
        mpi_msg(rc, m, sizeof m);
        set_err(err, err_len, "MPI_Init_thread: %s", m);
        return -1;
    }
    D.mpi = 1;
    /* errors come back as codes: each call site reports its collective */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, D.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &D.local_rank);
        MPI_Comm_size(node, &D.local_size);
        MPI_Comm_free(&node);
    } else {
        D.local_rank = D.rank;
        D.local_size = D.size;
    }
    for (int i = 0; i < ARRIVE_RING; i++) arrive_req[i] = MPI_REQUEST_NULL;
    if (D.rank == 0) {
        D.arrived = calloc((size_t)D.size, sizeof *D.arrived);
        if (!D.arrived) {
            set_err(err, err_len, "out of memory");
            return -1;
        }
    }
    return 0;
}

void hcga_dist_finalize(void)
{
    if (!D.mpi) return;
    for (int i = 0; i < ARRIVE_RING; i++)
        if (arrive_req[i] != MPI_REQUEST_NULL) MPI_Cancel(&arrive_req[i]), MPI_Request_free(&arrive_req[i]);
    if (D.rank == 0) { /* drop unread arrivals */
        int flag = 1;
        while (flag) {
            MPI_Status st;
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD, &flag, &st);
            if (flag) {
                long long v;
                MPI_Recv(&v, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
        }
    }
    free(D.arrived);
    D.arrived = NULL;
    MPI_Finalize();
    D.mpi = 0;
}

void hcga_dist_abort(int code, const char *msg)
{
    fprintf(stderr, "hcga: rank %d: %s\n", D.rank, msg);
    fflush(stderr);
    if (D.mpi && D.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* rank != 0: tell rank 0 that collective seq was entered (best effort: a
 * send still pending in the ring slot means rank 0 is behind; skip). */
static void announce(long long seq)
{
    if (D.rank == 0 || D.size < 2) return;
    int slot = (int)(seq % ARRIVE_RING), done = 1;
    if (arrive_req[slot] != MPI_REQUEST_NULL) MPI_Test(&arrive_req[slot], &done, MPI_STATUS_IGNORE);
    if (!done) return;
    arrive_buf[slot] = seq;
    MPI_Isend(&arrive_buf[slot], 1, MPI_LONG_LONG, 0, TAG_ARRIVE, MPI_COMM_WORLD, &arrive_req[slot]);
}

/* rank 0: read the arrival numbers that came in */
static void read_arrivals(void)
{
    if (D.rank != 0 || D.size < 2) return;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD, &flag, &st);
        if (!flag) return;
        long long v;
        MPI_Recv(&v, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (v > D.arrived[st.MPI_SOURCE]) D.arrived[st.MPI_SOURCE] = v;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Stops the job: what did not complete in time, and (rank 0) who is missing. */
/* rank 0, past its deadline: which ranks still answer?  A rank waiting in a
 * collective answers a ping from its poll loop (answer_ping); a dead,
 * stopped or hung one does not.  alive[r] = 1 for those that answered
 * within 3 s. */
static void ping_ranks(int *alive)
{
    static long long ping;
    MPI_Request *req = calloc((size_t)D.size, sizeof *req);
    for (int r = 1; r < D.size; r++)
        if (req) MPI_Isend(&ping, 1, MPI_LONG_LONG, r, TAG_PING, MPI_COMM_WORLD, &req[r]);
    const double until = now_s() + 3.0;
    while (now_s() < until) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_PONG, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            long long v;
            MPI_Recv(&v, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_PONG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            alive[st.MPI_SOURCE] = 1;
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    free(req); /* the job is aborted next: unanswered pings are dropped with it */
}

/* rank != 0, while waiting: answer rank 0's ping */
static void answer_ping(void)
{
    int flag = 0;
    MPI_Iprobe(0, TAG_PING, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (!flag) return;
    long long v;
    MPI_Recv(&v, 1, MPI_LONG_LONG, 0, TAG_PING, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(&v, 1, MPI_LONG_LONG, 0, TAG_PONG, MPI_COMM_WORLD);
}

static void timed_out(const char *what, long long seq)
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s (collective %lld, training step %lld) did not complete within %g s; ",
                     what, seq, D.step, D.timeout);
    if (D.rank == 0) {
        /* a rank that never entered the collective, or entered it and then
         * stopped answering (stopped, hung inside it) */
        int *alive = calloc((size_t)D.size, sizeof *alive);
        if (alive) ping_ranks(alive);
        read_arrivals();
        n += snprintf(msg + n, sizeof msg - (size_t)n, "rank(s) that never reached it or stopped answering:");
        int any = 0;
        for (int r = 1; r < D.size && n < (int)sizeof msg - 16; r++)
            if (D.arrived[r] < seq || (alive && !alive[r]))
                n += snprintf(msg + n, sizeof msg - (size_t)n, " %d", r), any = 1;
        if (!any) snprintf(msg + n, sizeof msg - (size_t)n, " none (every rank answers: a collective mismatch?)");
        free(alive);
    } else {
        snprintf(msg + n, sizeof msg - (size_t)n, "another rank is dead or hung (rank 0 names it)");
    }
    hcga_dist_abort(3, msg);
}

/* Polls r until done or the deadline (rank 0 first, the others 10 s later:
 * rank 0 spends 3 s asking which ranks still answer). */
static int wait_req(MPI_Request *r, const char *what, long long seq, char *err, size_t err_len)
{
    const double deadline = now_s() + D.timeout + (D.rank == 0 ? 0.0 : 10.0);
    long pause_ns = 2000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char m[256];
            mpi_msg(rc, m, sizeof m);
            set_err(err, err_len, "%s: %s", what, m);
            return -1;
        }
        if (done) return 0;
        read_arrivals();
        if (D.rank != 0) answer_ping();
        if (now_s() > deadline) timed_out(what, seq);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000) pause_ns *= 2; /* up to 1 ms between polls: no core spins */
    }
}

static long long enter(void)
{
    long long seq = ++D.seq;
    announce(seq);
    return seq;
}

static int started(int rc, const char *what, char *err, size_t err_len)
{
    if (rc == MPI_SUCCESS) return 0;
    char m[256];
    mpi_msg(rc, m, sizeof m);
    set_err(err, err_len, "%s: %s", what, m);
    return -1;
}

static MPI_Datatype mpi_type(int dtype)
{
    switch (dtype) {
    case HCGA_F32: return MPI_FLOAT;
    case HCGA_F64: return MPI_DOUBLE;
    case HCGA_I64: return MPI_INT64_T;
    case HCGA_U8: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
    }
}

int hcga_dist_barrier(const char *what, char *err, size_t err_len)
{
    if (D.size < 2) return 0;
    long long seq = enter();
    MPI_Request r;
    if (started(MPI_Ibarrier(MPI_COMM_WORLD, &r), what, err, err_len)) return -1;
    return wait_req(&r, what, seq, err, err_len);
}

int hcga_dist_bcast(void *buf, size_t bytes, int root, const char *what, char *err, size_t err_len)
{
    if (D.size < 2 || bytes == 0) return 0;
    long long seq = enter();
    /* in chunks: MPI counts are int */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        MPI_Request r;
        if (started(MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD, &r), what, err, err_len))
            return -1;
        if (wait_req(&r, what, seq, err, err_len)) return -1;
    }
    return 0;
}

struct hcga_dist_req {
    MPI_Request r;
    long long seq;
    char what[96];
};

hcga_dist_req *hcga_dist_iallreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err,
                                        size_t err_len)
{
    hcga_dist_req *q = calloc(1, sizeof *q);
    if (!q) {
        set_err(err, err_len, "%s: out of memory", what);
        return NULL;
    }
    snprintf(q->what, sizeof q->what, "%s", what);
    q->r = MPI_REQUEST_NULL;
    if (D.size < 2 || count == 0) return q;
    MPI_Datatype t = mpi_type(dtype);
    if (t == MPI_DATATYPE_NULL || count > 0x7fffffff) { /* a larger sum would go in chunks; none is */
        set_err(err, err_len, "%s: cannot all-reduce %lld elements of dtype %s", what, (long long)count,
                hcga_dtype_name(dtype));
        free(q);
        return NULL;
    }
    q->seq = enter();
    if (started(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, t, MPI_SUM, MPI_COMM_WORLD, &q->r), what, err,
                err_len)) {
        free(q);
        return NULL;
    }
    return q;
}

int hcga_dist_test(hcga_dist_req *q, char *err, size_t err_len)
{
    if (q->r == MPI_REQUEST_NULL) return 1;
    int done = 0;
    if (started(MPI_Test(&q->r, &done, MPI_STATUS_IGNORE), q->what, err, err_len)) return -1;
    return done;
}

int hcga_dist_wait(hcga_dist_req *q, char *err, size_t err_len)
{
    int rc = 0;
    if (q->r != MPI_REQUEST_NULL) rc = wait_req(&q->r, q->what, q->seq, err, err_len);
    free(q);
    return rc;
}

int hcga_dist_allreduce_sum(void *buf, int64_t count, int dtype, const char *what, char *err, size_t err_len)
{
    hcga_dist_req *q = hcga_dist_iallreduce_sum(buf, count, dtype, what, err, err_len);
    return q ? hcga_dist_wait(q, err, err_len) : -1;
}

int hcga_dist_allgather_i64(int64_t value, int64_t *values, const char *what, char *err, size_t err_len)
{
    if (D.size < 2) {
        values[0] = value;
        return 0;
    }
    long long seq = enter();
    MPI_Request r;
    if (started(MPI_Iallgather(&value, 1, MPI_INT64_T, values, 1, MPI_INT64_T, MPI_COMM_WORLD, &r), what, err,
                err_len))
        return -1;
    return wait_req(&r, what, seq, err, err_len);
}

int hcga_dist_gather(const void *send, int64_t bytes, void *recv, int64_t recv_cap, int root, int64_t *total,
                     const char *what, char *err, size_t err_len)
{
    if (D.size < 2) return gather_one(send, bytes, recv, recv_cap, total, what, err, err_len);
    int64_t *sizes = malloc(sizeof *sizes * (size_t)D.size);
    int *counts = malloc(sizeof *counts * (size_t)D.size), *displs = malloc(sizeof *displs * (size_t)D.size);
    int rc = -1;
    if (!sizes || !counts || !displs) {
        set_err(err, err_len, "%s: out of memory", what);
        goto out;
    }
    if (hcga_dist_allgather_i64(bytes, sizes, what, err, err_len)) goto out;
    int64_t sum = 0;
    for (int r = 0; r < D.size; r++) {
        counts[r] = (int)sizes[r];
        displs[r] = (int)sum;
        sum += sizes[r];
    }
    if (sum > 0x7fffffff || (D.rank == root && sum > recv_cap)) {
        set_err(err, err_len, "%s: %lld bytes in all do not fit %lld", what, (long long)sum, (long long)recv_cap);
        goto out;
    }
    long long seq = enter();
    MPI_Request r;
    if (started(MPI_Igatherv(send, (int)bytes, MPI_BYTE, recv, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD, &r),
                what, err, err_len))
        goto out;
    if (wait_req(&r, what, seq, err, err_len)) goto out;
    if (total) *total = sum;
    rc = 0;
out:
    free(sizes);
    free(counts);
    free(displs);
    return rc;
}

#endif /* HCGA_HAVE_MPI */
