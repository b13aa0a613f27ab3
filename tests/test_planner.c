/*
 * test_planner.c - the liveness-based memory planner of hg_exec_new.
 *
 * Expected peaks are computed by hand below (best fit, 256-byte blocks);
 * lifetimes in the random-DAG test come from the test's own bookkeeping of
 * which node defines and uses each value, never from the planner.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "testutil.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})


static double urand(uint64_t *s) { return hcga_test_urand_pm1(s); } /* [-1, 1) */

static int placed(const hg_exec *ex, hg_val v, uint64_t *off, uint64_t *bytes)
{
    return hg_exec_placement(ex, v, off, bytes);
}

/* x -> b -> c -> d -> e: b and d share memory */
START_TEST(chain_reuses_memory)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 1, SH(1024)); /* 4096 bytes */
    hg_val b = hg_relu(g, x);
    hg_val c = hg_sigmoid(g, b);
    hg_val d = hg_relu(g, c);
    hg_val e = hg_sigmoid(g, d);
    hg_mark_output(g, e, "e");
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    /* node 1 reads b while writing c; node 2 writes d where b was */
    ck_assert_uint_eq(hg_exec_peak_bytes(ex), 8192);
    ck_assert_uint_eq(hg_exec_naive_bytes(ex), 12288);
    ck_assert_uint_eq(hg_exec_persistent_bytes(ex), 8192); /* x and e */
    uint64_t ob, oc, od;
    ck_assert_int_eq(placed(ex, b, &ob, NULL), 1);
    ck_assert_int_eq(placed(ex, c, &oc, NULL), 1);
    ck_assert_int_eq(placed(ex, d, &od, NULL), 1);
    ck_assert_uint_eq(ob, 0);
    ck_assert_uint_eq(oc, 4096);
    ck_assert_uint_eq(od, 0);
    ck_assert_int_eq(placed(ex, x, NULL, NULL), 0);
    ck_assert_int_eq(placed(ex, e, NULL, NULL), 0);
    /* and it computes the right thing */
    float xs[1024], ys[1024];
    uint64_t r = 3;
    for (int i = 0; i < 1024; i++) xs[i] = (float)(3 * urand(&r));
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, e, ys, HCGA_F32), 0);
    for (int i = 0; i < 1024; i++) {
        double t = xs[i] > 0 ? xs[i] : 0;
        t = 1 / (1 + exp(-t));
        t = 1 / (1 + exp(-t));
        ck_assert_msg(fabs(ys[i] - t) < 1e-6, "e[%d] = %g, expected %g", i, ys[i], t);
    }
    printf("planner chain: peak %llu naive %llu persistent %llu bytes\n",
           (unsigned long long)hg_exec_peak_bytes(ex), (unsigned long long)hg_exec_naive_bytes(ex),
           (unsigned long long)hg_exec_persistent_bytes(ex));
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/*
 * A case where best fit beats first fit (x is [1,64] f32 = 256 bytes):
 *   n0 a    = concat(x,x)   512  [0,512)      last use n3
 *   n1 keep = relu(x)       256  [512,768)    last use n6
 *   n2 b    = relu(x)       256  [768,1024)   last use n3
 *   n3 big  = concat(a,b)   768  [1024,1792)  last use n7
 *   n4 d    = relu(x)       256  free gaps [0,512) and [768,1024): best fit 768
 *   n5 e    = concat(x,x)   512  -> [0,512)                 last use n7
 *   n6 s1   = concat(keep,d) 512 -> no gap, on top: [1792,2304)  last use n7
 *   n7 out  = concat(big,e,s1)   persistent
 * peak 2304 (first fit would need 2816), naive 3072.
 */
START_TEST(best_fit_exact)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_graph *g = hg_graph_new(HCGA_F32);
    hg_val x = hg_input(g, "x", HCGA_F32, 2, SH(1, 64));
    hg_val a = hg_concat(g, 2, (hg_val[]){x, x});
    hg_val keep = hg_relu(g, x);
    hg_val b = hg_relu(g, x);
    hg_val big = hg_concat(g, 2, (hg_val[]){a, b});
    hg_val d = hg_relu(g, x);
    hg_val e = hg_concat(g, 2, (hg_val[]){x, x});
    hg_val s1 = hg_concat(g, 2, (hg_val[]){keep, d});
    hg_val out = hg_concat(g, 3, (hg_val[]){big, e, s1});
    ck_assert_int_eq(hg_num_nodes(g), 8);
    hg_mark_output(g, out, "out");
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    const hg_val vs[7] = {a, keep, b, big, d, e, s1};
    const uint64_t offs[7] = {0, 512, 768, 1024, 768, 0, 1792};
    const uint64_t sizes[7] = {512, 256, 256, 768, 256, 512, 512};
    for (int i = 0; i < 7; i++) {
        uint64_t o = 99, n = 99;
        ck_assert_int_eq(placed(ex, vs[i], &o, &n), 1);
        ck_assert_msg(o == offs[i] && n == sizes[i], "value %d at %llu (+%llu), expected %llu (+%llu)", i,
                      (unsigned long long)o, (unsigned long long)n, (unsigned long long)offs[i],
                      (unsigned long long)sizes[i]);
    }
    ck_assert_uint_eq(hg_exec_peak_bytes(ex), 2304);
    ck_assert_uint_eq(hg_exec_naive_bytes(ex), 3072);
    ck_assert_uint_eq(hg_exec_persistent_bytes(ex), 256 + 448 * 4);
    float xs[64], ys[448];
    for (int i = 0; i < 64; i++) xs[i] = (float)(i - 20);
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    ck_assert_int_eq(hg_exec_read(ex, out, ys, HCGA_F32), 0);
    /* out = [x, x, relu x, x, x, relu x, relu x] */
    for (int k = 0; k < 7; k++)
        for (int i = 0; i < 64; i++) {
            float ex_v = (k == 2 || k >= 5) ? (xs[i] > 0 ? xs[i] : 0) : xs[i];
            ck_assert_float_eq(ys[k * 64 + i], ex_v);
        }
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

/* ---- random DAGs ---------------------------------------------------------- */

#define RMAX 400
#define BASE 96 /* elements of a base value [2,3,4,4] */

typedef struct rv {
    hg_val v;
    int def, last; /* node indices; inputs/params: def -1 */
    int wide;      /* [2,6,4,4] */
    int out;
    double *host;
} rv;

static int pick(uint64_t *r, int n) { return (int)((urand(r) + 1) * 0.5 * n) % n; }

static void run_random_dag(uint64_t seed, int steps, uint64_t *peak_out, uint64_t *naive_out)
{
    uint64_t r = seed;
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F64);
    hg_graph *g = hg_graph_new(HCGA_F64);
    rv *vals = calloc(RMAX, sizeof *vals);
    int nv = 0, node = 0;
    const int64_t base[4] = {2, 3, 4, 4};
    /* two inputs and one per-channel parameter */
    for (int i = 0; i < 2; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        rv *x = &vals[nv++];
        x->v = hg_input(g, nm, HCGA_F64, 4, base);
        x->def = x->last = -1;
        x->host = malloc(BASE * sizeof(double));
        for (int k = 0; k < BASE; k++) x->host[k] = urand(&r);
    }
    rv *pp = &vals[nv++];
    pp->v = hg_param(g, "chan", 4, SH(1, 3, 1, 1), HG_TRAINABLE);
    pp->def = pp->last = -1;
    pp->host = malloc(3 * sizeof(double));
    for (int k = 0; k < 3; k++) pp->host[k] = urand(&r);
    const int nfixed = nv;

    for (int step = 0; step < steps && nv + 2 < RMAX; step++) {
        /* operands: half the time one of the 6 newest, else anything */
        int cand[RMAX], nc = 0;
        for (int i = 0; i < nv; i++)
            if (!vals[i].wide && i != 2) cand[nc++] = i;
        int ia = urand(&r) < 0 ? cand[nc - 1 - pick(&r, nc < 6 ? nc : 6)] : cand[pick(&r, nc)];
        int ib = cand[pick(&r, nc)];
        rv *A = &vals[ia], *B = &vals[ib];
        int op = pick(&r, 9);
        int nw = 0, wi = -1;
        for (int i = 0; i < nv; i++)
            if (vals[i].wide) {
                nw++;
                if (wi < 0 || urand(&r) < 0) wi = i;
            }
        if (op == 8 && nw == 0) op = 7;
        rv *Y = &vals[nv];
        memset(Y, 0, sizeof *Y);
        Y->def = Y->last = node;
        Y->host = malloc(2 * BASE * sizeof(double));
        switch (op) {
        case 0:
            Y->v = hg_relu(g, A->v);
            for (int k = 0; k < BASE; k++) Y->host[k] = A->host[k] > 0 ? A->host[k] : 0;
            A->last = node;
            break;
        case 1:
            Y->v = hg_sigmoid(g, A->v);
            for (int k = 0; k < BASE; k++) Y->host[k] = 1 / (1 + exp(-A->host[k]));
            A->last = node;
            break;
        case 2: {
            double al = urand(&r);
            Y->v = hg_scale(g, A->v, al);
            for (int k = 0; k < BASE; k++) Y->host[k] = al * A->host[k];
            A->last = node;
            break;
        }
        case 3:
            Y->v = hg_axpby(g, 0.5, A->v, 0.5, B->v);
            for (int k = 0; k < BASE; k++) Y->host[k] = 0.5 * A->host[k] + 0.5 * B->host[k];
            A->last = B->last = node;
            break;
        case 4:
            Y->v = hg_mul(g, A->v, B->v);
            for (int k = 0; k < BASE; k++) Y->host[k] = A->host[k] * B->host[k];
            A->last = B->last = node;
            break;
        case 5:
            Y->v = hg_mul(g, A->v, pp->v);
            for (int k = 0; k < BASE; k++) Y->host[k] = A->host[k] * pp->host[(k / 16) % 3];
            A->last = node;
            break;
        case 6:
            Y->v = hg_threshold(g, A->v, 0.1);
            for (int k = 0; k < BASE; k++) Y->host[k] = A->host[k] < 0.1 ? 0 : A->host[k];
            A->last = node;
            break;
        case 7: /* concat -> a wide value */
            Y->v = hg_concat(g, 2, (hg_val[]){A->v, B->v});
            Y->wide = 1;
            for (int n = 0; n < 2; n++) {
                memcpy(Y->host + n * 96, A->host + n * 48, 48 * sizeof(double));
                memcpy(Y->host + n * 96 + 48, B->host + n * 48, 48 * sizeof(double));
            }
            A->last = B->last = node;
            break;
        case 8: { /* split a wide value back: two outputs of one node */
            rv *W = &vals[wi];
            hg_val o[2];
            hg_split(g, W->v, 2, SH(3, 3), o);
            W->last = node;
            rv *Z = &vals[nv + 1];
            memset(Z, 0, sizeof *Z);
            Z->def = Z->last = node;
            Z->host = malloc(BASE * sizeof(double));
            Y->v = o[0];
            Z->v = o[1];
            for (int n = 0; n < 2; n++) {
                memcpy(Y->host + n * 48, W->host + n * 96, 48 * sizeof(double));
                memcpy(Z->host + n * 48, W->host + n * 96 + 48, 48 * sizeof(double));
            }
            nv++;
            break;
        }
        }
        nv++;
        node++;
        ck_assert_int_eq(hg_num_nodes(g), node);
        if (urand(&r) > 0.8) Y->out = 1;
    }
    for (int i = nfixed; i < nv; i++) {
        if (!vals[i].out) continue;
        char nm[16];
        snprintf(nm, sizeof nm, "o%d", i);
        hg_mark_output(g, vals[i].v, nm);
    }
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    uint64_t peak = hg_exec_peak_bytes(ex);
    uint64_t *off = calloc(RMAX, sizeof *off), *len = calloc(RMAX, sizeof *len);
    int *arena = calloc(RMAX, sizeof *arena);
    for (int i = 0; i < nv; i++) {
        int pl = placed(ex, vals[i].v, &off[i], &len[i]);
        int persistent = i < nfixed || vals[i].out;
        ck_assert_int_eq(pl, persistent ? 0 : 1);
        arena[i] = pl == 1;
        if (arena[i]) {
            ck_assert_uint_ge(len[i], (vals[i].wide ? 2 : 1) * BASE * sizeof(double));
            ck_assert_uint_le(off[i] + len[i], peak);
            ck_assert_uint_eq(off[i] % 256, 0);
        }
    }
    /* every pair alive at the same node is disjoint */
    int pairs = 0;
    for (int i = 0; i < nv; i++)
        for (int j = i + 1; j < nv; j++) {
            if (!arena[i] || !arena[j]) continue;
            if (vals[i].last < vals[j].def || vals[j].last < vals[i].def) continue;
            pairs++;
            ck_assert_msg(off[i] + len[i] <= off[j] || off[j] + len[j] <= off[i],
                          "values %d [%d,%d] and %d [%d,%d] overlap in the arena", i, vals[i].def, vals[i].last,
                          j, vals[j].def, vals[j].last);
        }
    ck_assert_int_gt(pairs, 0);
    /* peak bounds: at least what is alive at the busiest node, at most naive */
    uint64_t busiest = 0;
    for (int k = 0; k < node; k++) {
        uint64_t live = 0;
        for (int i = 0; i < nv; i++)
            if (arena[i] && vals[i].def <= k && k <= vals[i].last) live += len[i];
        if (live > busiest) busiest = live;
    }
    ck_assert_uint_ge(peak, busiest);
    ck_assert_uint_le(peak, hg_exec_naive_bytes(ex));
    /* run and compare the outputs with the host computation */
    for (int i = 0; i < 2; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        ck_assert_int_eq(hg_exec_set_input(ex, nm, vals[i].host, HCGA_F64), 0);
    }
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "chan"), pp->host, HCGA_F64), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    double got[2 * BASE];
    int nout = 0;
    for (int i = nfixed; i < nv; i++) {
        if (!vals[i].out) continue;
        nout++;
        int n = vals[i].wide ? 2 * BASE : BASE;
        ck_assert_int_eq(hg_exec_read(ex, vals[i].v, got, HCGA_F64), 0);
        for (int k = 0; k < n; k++)
            ck_assert_msg(fabs(got[k] - vals[i].host[k]) <= 1e-12, "output %d[%d]: %.17g vs %.17g", i, k, got[k],
                          vals[i].host[k]);
    }
    ck_assert_int_gt(nout, 0);
    *peak_out = peak;
    *naive_out = hg_exec_naive_bytes(ex);
    hg_exec_free(ex);
    for (int i = 0; i < nv; i++) free(vals[i].host);
    free(vals);
    free(off);
    free(len);
    free(arena);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}

START_TEST(random_dag_no_overlap)
{
    uint64_t peak, naive;
    run_random_dag(1000 + (uint64_t)_i, 150, &peak, &naive);
    ck_assert_uint_lt(peak, naive);
    printf("planner random DAG %d: peak %llu naive %llu bytes\n", _i, (unsigned long long)peak,
           (unsigned long long)naive);
}
END_TEST

/* a training graph: inputs, params, marked outputs and param gradients
 * never live in the arena, everything else does */
START_TEST(persistent_never_in_arena)
{
    hcga_be *be = hcga_test_open_cpu();
    hg_store *s = hg_store_new(be, HCGA_F32);
    hg_graph *g = hg_graph_new(HCGA_F32);
    const int N = 4, C = 8, K = 5;
    hg_val x = hg_input(g, "x", HCGA_F32, 4, SH(N, 3, 16, 8));
    hg_val lab = hg_input(g, "lab", HCGA_I64, 1, SH(N));
    hg_val w1 = hg_param(g, "conv1.weight", 4, SH(C, 3, 3, 3), HG_TRAINABLE);
    hg_val g1 = hg_param(g, "bn1.weight", 1, SH(C), HG_TRAINABLE);
    hg_val b1 = hg_param(g, "bn1.bias", 1, SH(C), HG_TRAINABLE | HG_BIAS);
    hg_val m1 = hg_param(g, "bn1.running_mean", 1, SH(C), HG_BUFFER);
    hg_val v1 = hg_param(g, "bn1.running_var", 1, SH(C), HG_BUFFER);
    hg_val w2 = hg_param(g, "conv2.weight", 4, SH(C, C, 3, 3), HG_TRAINABLE);
    hg_val cb2 = hg_param(g, "conv2.bias", 1, SH(C), HG_TRAINABLE | HG_BIAS);
    hg_val fc = hg_param(g, "fc.weight", 2, SH(K, C), HG_TRAINABLE);
    hg_val lb = hg_param(g, "logit_bias", 2, SH(N, K), HG_TRAINABLE | HG_FROZEN); /* same shape as logits */
    hg_val y = hg_relu(g, hg_batchnorm(g, hg_conv2d(g, x, w1, -1, 2, 1), g1, b1, m1, v1, 1, 1e-5, 0.1));
    y = hg_relu(g, hg_conv2d(g, y, w2, cb2, 1, 1));
    hg_val feat = hg_gap(g, y);
    hg_val logits = hg_add(g, hg_linear(g, feat, fc), lb);
    hg_val loss = hg_add(g, hg_ce_ls(g, logits, lab, 0.1), hg_triplet(g, feat, lab, 0.3));
    hg_mark_output(g, loss, "loss");
    hg_mark_output(g, feat, "feat");
    hg_backward(g, loss);
    const hg_val params[9] = {w1, g1, b1, m1, v1, w2, cb2, fc, lb};
    char err[512];
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex, "%s", err);
    uint64_t expect_persistent = (uint64_t)N * 3 * 16 * 8 * 4 + N * 8 /* labels */ + 4 /* loss */ + N * C * 4;
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(placed(ex, params[i], NULL, NULL), 0);
        hg_val gv = hg_grad(g, params[i]);
        if (i == 3 || i == 4) {
            ck_assert_int_eq(gv, -1);
            continue;
        }
        ck_assert_int_ge(gv, 0);
        uint64_t n = 0;
        ck_assert_int_eq(placed(ex, gv, NULL, &n), 0);
        const int64_t *sh = hg_shape(g, params[i]);
        uint64_t numel = 1;
        for (int d = 0; d < hg_ndim(g, params[i]); d++) numel *= (uint64_t)sh[d];
        ck_assert_uint_eq(n, numel * 4);
        expect_persistent += (n + 255) / 256 * 256; /* the gradient buffer keeps each at a 256-byte boundary */
    }
    ck_assert_int_eq(placed(ex, x, NULL, NULL), 0);
    ck_assert_int_eq(placed(ex, lab, NULL, NULL), 0);
    ck_assert_int_eq(placed(ex, loss, NULL, NULL), 0);
    ck_assert_int_eq(placed(ex, feat, NULL, NULL), 0);
    ck_assert_int_eq(placed(ex, y, NULL, NULL), 1);
    ck_assert_int_eq(placed(ex, logits, NULL, NULL), 1);
    ck_assert_uint_eq(hg_exec_persistent_bytes(ex), expect_persistent);
    /* the gradients share one buffer, the last parameter's first (lb, fc,
     * cb2, w2, b1, g1, w1: data-parallel buckets are its ranges); each names
     * the node that completes it */
    ck_assert_int_eq(hg_exec_grad_count(ex), 7);
    uint64_t gbytes = 0, prev_end = 0;
    ck_assert_ptr_nonnull(hg_exec_grad_buffer(ex, &gbytes));
    for (int k = 0; k < 7; k++) {
        uint64_t off, nb;
        int ready;
        ck_assert_int_eq(hg_exec_grad_at(ex, k, &off, &nb, &ready), 0);
        ck_assert_uint_eq(off, prev_end);
        prev_end = off + nb;
        ck_assert_int_ge(ready, 0);
    }
    ck_assert_uint_eq(prev_end, gbytes);
    ck_assert_int_eq(hg_exec_grad_at(ex, 7, NULL, NULL, NULL), -1);
    ck_assert_uint_lt(hg_exec_peak_bytes(ex), hg_exec_naive_bytes(ex));
    /* the frozen logit bias' gradient is the upstream gradient itself:
     * d ce / d logits, rows summing to 0 (times the CE weight) */
    float xs[4 * 3 * 16 * 8];
    uint64_t r = 17;
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) xs[i] = (float)urand(&r);
    int64_t labels[4] = {0, 0, 3, 3};
    float wbuf[8 * 8 * 9];
    for (int i = 0; i < 8 * 8 * 9; i++) wbuf[i] = (float)(0.3 * urand(&r));
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "conv1.weight"), wbuf, HCGA_F32), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "conv2.weight"), wbuf, HCGA_F32), 0);
    ck_assert_int_eq(hg_store_write(s, hg_store_get(s, "fc.weight"), wbuf, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_set_input(ex, "x", xs, HCGA_F32), 0);
    ck_assert_int_eq(hg_exec_set_input(ex, "lab", labels, HCGA_I64), 0);
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    float glb[4 * 5];
    ck_assert_int_eq(hg_exec_read(ex, hg_grad(g, lb), glb, HCGA_F32), 0);
    for (int n = 0; n < N; n++) {
        double sum = 0, mx = 0;
        for (int k = 0; k < K; k++) {
            sum += glb[n * K + k];
            mx = fmax(mx, fabs(glb[n * K + k]));
        }
        ck_assert_msg(fabs(sum) < 1e-6 && mx > 1e-3, "row %d of d loss / d logits: sum %g max %g", n, sum, mx);
    }
    printf("planner conv/bn training graph (%d nodes): peak %llu naive %llu persistent %llu bytes\n",
           hg_num_nodes(g), (unsigned long long)hg_exec_peak_bytes(ex),
           (unsigned long long)hg_exec_naive_bytes(ex), (unsigned long long)hg_exec_persistent_bytes(ex));
    hg_exec_free(ex);
    hg_store_free(s);
    hcga_be_close(be);
    hg_graph_free(g);
}
END_TEST

static Suite *planner_suite(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("planner", &tc);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, chain_reuses_memory);
    tcase_add_test(tc, best_fit_exact);
    tcase_add_loop_test(tc, random_dag_no_overlap, 0, 5);
    tcase_add_test(tc, persistent_never_in_arena);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 0);
    return hcga_test_run(planner_suite());
}
