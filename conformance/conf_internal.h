/*
 * conf_internal.h - shared internals of the conformance suite.
 */
#ifndef HCGA_CONF_INTERNAL_H
#define HCGA_CONF_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "conformance.h"

/* ---- deterministic random numbers (splitmix64) ------------------------ */
typedef struct conf_rng {
    uint64_t s;
} conf_rng;

static inline uint64_t conf_rng_next(conf_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static inline double conf_rng_unif(conf_rng *r)
{
    return (double)(conf_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
/* uniform in [lo, hi) */
static inline double conf_rng_range(conf_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * conf_rng_unif(r);
}
/* uniform integer in [0, n) (n > 0) */
static inline int64_t conf_rng_int(conf_rng *r, int64_t n)
{
    return (int64_t)(conf_rng_next(r) % (uint64_t)n);
}
/* The seed of case `index` under the run's seed. */
uint64_t conf_case_seed(uint64_t seed, int index);

/* ---- host side of a case ---------------------------------------------- */
typedef struct conf_tensor {
    hcga_shape_tensor s; /* shape, strides, dtype (after the run's dtype mapping) */
    int64_t numel;       /* elements of the view */
    int64_t extent;      /* elements spanned by the view (>= numel when strided) */
    double *host;        /* extent values: inputs' data, outputs' initial values */
    int inout;           /* output slot whose initial values matter (in/out) */
} conf_tensor;

typedef struct conf_case {
    hcga_shape_case c;   /* with dtypes mapped */
    int dtype;           /* float dtype of the run */
    int num_in, num_out;
    conf_tensor in[HCGA_MAX_OP_IN], out[HCGA_MAX_OP_OUT];
    int64_t *labels;     /* TRIPLET_BWD: labels the hard pairs were chosen with (N), else NULL */
} conf_case;

/* Generation flavours */
#define CONF_GEN_TEST 0
#define CONF_GEN_GRAD 1 /* keep inputs away from kinks (relu at 0, threshold at t, ...) */

/* Map the case's float dtypes to the run's `dtype` and generate inputs and
 * in/out initial values (rounded to each tensor's dtype).  The mapping
 * (README "Dtypes"): in an f32/f64 run the tensors of the line's DTYPE take
 * `dtype` and, when the line is f32/f64, the other of f32/f64 swaps (a
 * converting copy stays a conversion); in a bf16/f16 run every float tensor
 * takes `dtype`; a CAST keeps its dtypes as written (they are its test). */
int conf_case_make(conf_case *cc, const hcga_shape_case *c, int dtype, uint64_t seed, int flavour,
                   char *err, size_t err_len);
void conf_case_free(conf_case *cc);

/* Offsets (elements) of the view's elements in C order. */
void conf_view_offsets(const hcga_shape_tensor *s, int64_t *offs);
int64_t conf_numel(const hcga_shape_tensor *s);
int64_t conf_extent(const hcga_shape_tensor *s);
int conf_is_float(int dtype); /* f32, f64, bf16, f16 */
/* v rounded to dtype (to nearest even; beyond the range: +-Inf; integers:
 * nearest integer).  Exact for a value representable in dtype. */
double conf_round_dtype(int dtype, double v);
/* Bits of a float value in its dtype's storage (f32, bf16, f16; f64's
 * own), for messages. */
uint64_t conf_value_bits(int dtype, double v);
/* The run a CAST case belongs to: its f16 tensor's dtype if any, else bf16,
 * else f32, else f64 (so each pair of dtypes runs once over --dtype all);
 * -1 for every other op (it runs in every run). */
int conf_case_home_dtype(const hcga_shape_case *c);
/* 1 when the case runs in the run of `dtype`: a CAST in its home run only;
 * in a bf16/f16 run only ops whose catalogue row has half = 1. */
int conf_case_applies(const hcga_shape_case *c, int dtype);
/* Labels a triplet case uses for a batch of n (PK layout, or gen variant). */
void conf_triplet_labels(int64_t n, conf_rng *r, int64_t *labels);
/* Hardest positive / negative per anchor (d as the ABI defines it). */
void conf_triplet_hard(const double *x, int64_t n, int64_t d, const int64_t *labels,
                       int64_t *hard);

/* ---- device side ------------------------------------------------------- */
#define CONF_GUARD 1024 /* bytes of sentinel pattern before and after each tensor */

typedef struct conf_dev_tensor {
    hcga_buffer *buf;
    hcga_tensor t;
    uint64_t data_bytes; /* extent * element size */
    uint64_t total;      /* guard + data (padded to 8) + guard */
    uint8_t *image;      /* what was uploaded (total bytes) */
    int present;
    int64_t unset;       /* after conf_dev_read_output: view elements that still hold
                          * the "unset" prefill pattern (outputs that are not in/out) */
} conf_dev_tensor;

typedef struct conf_dev {
    hcga_be *be;
    const conf_case *cc;
    conf_dev_tensor in[HCGA_MAX_OP_IN], out[HCGA_MAX_OP_OUT];
    hcga_op_args args;
    int alias; /* GEMM c aliases y: in[2] uses out[0]'s tensor */
} conf_dev;

/* Allocate and upload a case: inputs with their data, outputs NaN-prefilled
 * (or with their initial values for in/out slots), each surrounded by guards.
 * Returns 0, or -1 with err. */
int conf_dev_setup(conf_dev *d, hcga_be *be, const conf_case *cc, char *err, size_t err_len);
/* Re-upload input slot k (after the host data changed) or the outputs'
 * prefill/initial values (slot -1). */
int conf_dev_rewrite_input(conf_dev *d, int k, char *err, size_t err_len);
int conf_dev_reset_outputs(conf_dev *d, char *err, size_t err_len);
/* Run the op and synchronize: the status. */
hcga_status conf_dev_run(conf_dev *d);
void conf_dev_free(conf_dev *d);

/* Read output k as doubles (extent values) and check its guards and the
 * untouched gaps of a strided view.  problems gets one line per problem
 * (appended); returns the number of problems found. */
int conf_dev_read_output(conf_dev *d, int k, double *vals, char *problems, size_t plen,
                         char *err, size_t err_len);

/* Write/read a plain device tensor (no guards) used for chained ops in grad mode. */
int conf_tmp_alloc(hcga_be *be, int dtype, int ndim, const int64_t *shape, conf_dev_tensor *t,
                   char *err, size_t err_len);
int conf_tmp_write(hcga_be *be, conf_dev_tensor *t, const double *vals, char *err,
                   size_t err_len);
int conf_tmp_read(hcga_be *be, const conf_dev_tensor *t, double *vals, char *err,
                  size_t err_len);
void conf_tmp_free(hcga_be *be, conf_dev_tensor *t);

/* ---- tolerances and comparison ---------------------------------------- */
typedef struct conf_tol {
    const char *cls; /* "elementwise", "sum", "dot", "exact" */
    double nmse;     /* normalised MSE: sum (a-r)^2 / sum r^2 */
    double maxerr;   /* max |a-r| / max |r| */
    int exact;       /* 1: bit for bit after widening (NaN == NaN): CAST */
} conf_tol;

/* Tolerance of op's outputs when the least precise float tensor of the call
 * is of `dtype` (F32, F64, BF16 or F16): the catalogue's class, scaled for
 * F64, plus the output rounding for BF16/F16 (README "Tolerances"). */
conf_tol conf_op_tol(int op, int dtype);
/* The unit roundoff of a float dtype: 2^-8 bf16, 2^-11 f16, 2^-24 f32, 2^-53 f64. */
double conf_unit_roundoff(int dtype);

typedef struct conf_err {
    double nmse, maxerr;
    int64_t nan_count;   /* non-finite where the reference is finite */
    int64_t first_nan;   /* view index of the first one */
    int64_t mismatch;    /* index outputs: elements that differ */
    int64_t first_mismatch;
} conf_err;

/* Compare n view values a (under test) with r (reference).  Reference
 * magnitudes below floor_scale count as floor_scale (0: none). */
void conf_compare(const double *a, const double *r, int64_t n, double floor_scale, conf_err *e);
/* 1e-3 x the largest magnitude among the case's float inputs (and in/out
 * initial values): the floor for conf_compare in test mode. */
double conf_floor_scale(const conf_case *cc);

/* ---- modes ------------------------------------------------------------- */
typedef struct conf_loaded_case {
    hcga_shape_case c;
    const char *file; /* path as given / resolved */
    int index;        /* 0-based case index within the file */
} conf_loaded_case;

typedef struct conf_op_stats {
    int cases, passed, failed, skipped;
    double worst_nmse, worst_maxerr;  /* measured */
    double worst_ratio;               /* max over cases of error / tolerance */
    char worst_case[64];              /* "file#index" of the worst ratio */
    double total_ms;
    double flops, bytes;              /* perf: sums over the op's cases */
} conf_op_stats;

typedef struct conf_run {
    const conf_opts *o;
    FILE *out;
    hcga_be *dut, *ref;
    conf_op_stats stats[HCGA_OP_COUNT];
    int cases, passed, failed, skipped;
} conf_run;

void conf_print_repro(conf_run *r, const conf_loaded_case *lc, int dtype, conf_mode mode);

/* One test-mode case; returns 1 passed, 0 failed, -1 skipped. */
int conf_test_case(conf_run *r, const conf_loaded_case *lc, int dtype);
/* One grad-mode case on the CPU (finite differences); same returns. */
int conf_grad_case(conf_run *r, const conf_loaded_case *lc);
/* 1 when op is an optional op (ABI 1.3) that the backend be does not
 * provide at dtype (NULL entry, or supports() says no): such a case is a
 * skip, except on the reference (cpu), which must have every op. */
int conf_optional_absent(hcga_be *be, int op, int dtype);
/* One perf-mode case; same returns. */
int conf_perf_case(conf_run *r, const conf_loaded_case *lc, int dtype);

/* The pairing table (grad.c): 1 when op is a forward op with a backward
 * recipe; 1 when op appears as a backward op of some forward op. */
int conf_grad_is_forward(int op);
int conf_grad_is_backward(int op);
/* Names of the backward ops of a forward op, "conv2d_bwd_data+conv2d_bwd_filter". */
const char *conf_grad_bwd_names(int op);

/* Badargs mode (badargs.c): runs every malformed call on r->dut and r->ref,
 * counting passes and failures in r.  Returns 0, or -1 when the buffers
 * could not be set up (after printing why). */
int conf_badargs_run(conf_run *r);
int conf_badargs_count(void);

/* Formatting helpers */
void conf_fmt_index(const hcga_shape_tensor *s, int64_t flat, char *buf, size_t len);
double conf_now_ms(void);

#endif
