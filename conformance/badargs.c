/*
 * badargs.c - conformance "badargs" mode: the same malformed op calls sent
 * to the backend under test and to the reference backend.
 *
 * The op contract (plugins/hcga_plugin.h) is enforced by one checker that
 * every backend links (backends/common/hcga_contract.c), so every backend
 * must refuse each call below with HCGA_ERR_INVALID and the very same
 * one-line message as the reference.  A backend that accepts a call, refuses
 * it with another status, or words the refusal differently fails the case.
 * The calls are harmless to a backend that does not check: every tensor
 * lies inside one 64 KiB buffer (except the case that tests exactly that,
 * whose overrun is a few elements), and nothing is read back.
 *
 * The table BAD_CASES has one row per malformed call: a name and a builder
 * that fills the op call on a given buffer.  Add a row to test a new rule.
 */
#include "conf_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define BAD_BUF_BYTES 65536u
#define BAD_REGION 4096u /* bytes per tensor unless a case places it */
#define BAD_MAX_T 12

typedef struct bad_call {
    hcga_buffer *buf;
    hcga_op_args a;
    hcga_tensor t[BAD_MAX_T];
    int nt;
    int entry; /* the op table entry to call (normally a.op) */
} bad_call;

/* A dense tensor in the next free 4 KiB region; dims beyond nd ignored. */
static hcga_tensor *tn(bad_call *c, int dtype, int nd, int64_t d0, int64_t d1, int64_t d2,
                       int64_t d3)
{
    hcga_tensor *t = &c->t[c->nt];
    const int64_t d[4] = {d0, d1, d2, d3};
    memset(t, 0, sizeof *t);
    t->buf = c->buf;
    t->offset = (uint64_t)c->nt * BAD_REGION;
    t->dtype = dtype;
    t->ndim = nd;
    int64_t s = 1;
    for (int i = HCGA_MAX_DIMS - 1; i >= 0; i--) {
        t->shape[i] = i < nd ? d[i] : 1;
        t->stride[i] = s;
        if (i < nd) s *= d[i];
    }
    c->nt++;
    return t;
}

static void call(bad_call *c, int op, int nin, int nout)
{
    c->a.op = op;
    c->a.num_in = nin;
    c->a.num_out = nout;
    c->entry = op;
}

#define F32 HCGA_F32
#define V1(n) 1, (n), 0, 0, 0
#define V2(a, b) 2, (a), (b), 0, 0
#define V4(a, b, c_, d) 4, (a), (b), (c_), (d)

/* ---- the cases ---------------------------------------------------------- */

static void relu_fwd_ok(bad_call *c)
{
    call(c, HCGA_OP_RELU_FWD, 1, 1);
    c->a.in[0] = tn(c, F32, V1(4));
    c->a.out[0] = tn(c, F32, V1(4));
}

static void b_i64_input(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[0].dtype = HCGA_I64;
}

static void b_unknown_dtype(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[1].dtype = 99;
}

static void b_mixed_floats(bad_call *c)
{
    call(c, HCGA_OP_ADD, 2, 1);
    c->a.in[0] = tn(c, F32, V1(4));
    c->a.in[1] = tn(c, HCGA_F64, V1(4));
    c->a.out[0] = tn(c, F32, V1(4));
    c->a.p.scalar.a = c->a.p.scalar.b = 1.0;
}

static void b_shape_mismatch(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[1].shape[0] = 5;
}

static void b_negative_dim(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[0].shape[0] = -1;
}

static void b_num_in(bad_call *c)
{
    relu_fwd_ok(c);
    c->a.num_in = 2;
    c->a.in[1] = tn(c, F32, V1(4));
}

static void b_wrong_entry(bad_call *c)
{
    relu_fwd_ok(c);
    c->entry = HCGA_OP_SIGMOID_FWD; /* args.op says relu_fwd */
}

static void b_not_dense(bad_call *c)
{
    call(c, HCGA_OP_RELU_FWD, 1, 1);
    hcga_tensor *x = tn(c, F32, V2(2, 2));
    x->stride[0] = 1;
    x->stride[1] = 2;
    c->a.in[0] = x;
    c->a.out[0] = tn(c, F32, V2(2, 2));
}

static void b_misaligned(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[0].offset += 2;
}

static void b_overrun(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[0].offset = BAD_BUF_BYTES - 8; /* 4 f32 from 8 bytes before the end */
}

static void b_no_buffer(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[1].buf = NULL;
}

static void b_alias(bad_call *c)
{
    call(c, HCGA_OP_ADD, 2, 1);
    c->a.in[0] = tn(c, F32, V1(8));
    c->a.in[1] = tn(c, F32, V1(8));
    hcga_tensor *y = tn(c, F32, V1(8));
    y->offset = c->t[0].offset + 4; /* overlaps a, not the same view */
    c->a.out[0] = y;
    c->a.p.scalar.a = c->a.p.scalar.b = 1.0;
}

static void b_outputs_overlap(bad_call *c)
{
    call(c, HCGA_OP_SGD_STEP, 1, 2);
    c->a.in[0] = tn(c, F32, V1(4));
    c->a.out[0] = tn(c, F32, V1(4));
    c->a.out[1] = c->a.out[0];
    c->a.p.optim.lr = 0.1;
    c->a.p.optim.momentum = 0.9;
    c->a.p.optim.step = 1;
}

static void conv_ok(bad_call *c)
{
    call(c, HCGA_OP_CONV2D_FWD, 2, 1);
    c->a.in[0] = tn(c, F32, V4(1, 2, 5, 5));
    c->a.in[1] = tn(c, F32, V4(3, 2, 3, 3));
    c->a.out[0] = tn(c, F32, V4(1, 3, 3, 3));
    c->a.p.conv.stride_h = c->a.p.conv.stride_w = 1;
    c->a.p.conv.dilation_h = c->a.p.conv.dilation_w = 1;
}

static void b_conv_rank(bad_call *c)
{
    conv_ok(c);
    c->t[0].ndim = 3;
}

static void b_conv_channels(bad_call *c)
{
    conv_ok(c);
    c->t[1].shape[1] = 4;
    c->t[1].stride[0] = 4 * 9;
}

static void b_conv_missing_w(bad_call *c)
{
    conv_ok(c);
    c->a.in[1] = NULL;
}

static void b_conv_stride(bad_call *c)
{
    conv_ok(c);
    c->a.p.conv.stride_h = 0;
}

static void b_conv_out_shape(bad_call *c)
{
    conv_ok(c);
    c->t[2].shape[3] = 4;
}

static void b_bn_gamma(bad_call *c)
{
    call(c, HCGA_OP_BN_FWD_INFER, 5, 1);
    c->a.in[0] = tn(c, F32, V2(2, 3));
    c->a.in[1] = tn(c, F32, V1(4));
    c->a.in[2] = tn(c, F32, V1(3));
    c->a.in[3] = tn(c, F32, V1(3));
    c->a.in[4] = tn(c, F32, V1(3));
    c->a.out[0] = tn(c, F32, V2(2, 3));
    c->a.p.bn.eps = 1e-5;
    c->a.p.bn.momentum = 0.1;
}

static void b_bn_eps(bad_call *c)
{
    b_bn_gamma(c);
    c->t[1].shape[0] = 3;
    c->a.p.bn.eps = NAN;
}

/* A BN_FWD_FROM_STATS call on x[2,3,2,2] (8 values per channel), valid
 * for count >= 8. */
static void bn_from_stats_ok(bad_call *c, int64_t count)
{
    call(c, HCGA_OP_BN_FWD_FROM_STATS, 5, 5);
    c->a.in[0] = tn(c, F32, V4(2, 3, 2, 2));
    for (int k = 1; k < 5; k++) c->a.in[k] = tn(c, F32, V1(3));
    c->a.out[0] = tn(c, F32, V4(2, 3, 2, 2));
    for (int k = 1; k < 5; k++) c->a.out[k] = tn(c, F32, V1(3));
    c->a.p.bn.eps = 1e-5;
    c->a.p.bn.momentum = 0.1;
    c->a.p.bn.count = count;
}

static void b_bn_count_one(bad_call *c) { bn_from_stats_ok(c, 1); }
static void b_bn_count_local(bad_call *c) { bn_from_stats_ok(c, 4); }

static void b_bn_stats_sum(bad_call *c)
{
    call(c, HCGA_OP_BN_STATS, 1, 2);
    c->a.in[0] = tn(c, F32, V4(2, 3, 2, 2));
    c->a.out[0] = tn(c, F32, V1(2));
    c->a.out[1] = tn(c, F32, V1(3));
}

static void b_bn_bwd_sum_dy(bad_call *c)
{
    call(c, HCGA_OP_BN_BWD_FROM_STATS, 7, 1);
    c->a.in[0] = tn(c, F32, V2(2, 3));
    c->a.in[1] = tn(c, F32, V2(2, 3));
    for (int k = 2; k < 7; k++) c->a.in[k] = tn(c, F32, V1(k == 5 ? 4 : 3));
    c->a.out[0] = tn(c, F32, V2(2, 3));
    c->a.p.bn.count = 4;
}

static void b_gemm_inner(bad_call *c)
{
    call(c, HCGA_OP_GEMM, 2, 1);
    c->a.in[0] = tn(c, F32, V2(2, 3));
    c->a.in[1] = tn(c, F32, V2(4, 5));
    c->a.out[0] = tn(c, F32, V2(2, 5));
    c->a.p.gemm.alpha = 1.0;
}

static void ups_ok(bad_call *c, int factor)
{
    call(c, HCGA_OP_UPSAMPLE_NEAREST_FWD, 1, 1);
    c->a.in[0] = tn(c, F32, V4(1, 1, 1, 1));
    c->a.out[0] = tn(c, F32, V4(1, 1, 1, 1));
    c->a.p.resize.factor = factor;
}

static void b_factor_zero(bad_call *c) { ups_ok(c, 0); }
static void b_factor_huge(bad_call *c) { ups_ok(c, 5000); }

static void b_labels_f32(bad_call *c)
{
    call(c, HCGA_OP_CE_LS_FWD, 2, 1);
    c->a.in[0] = tn(c, F32, V2(2, 3));
    c->a.in[1] = tn(c, F32, V1(2));
    c->a.out[0] = tn(c, F32, V1(1));
    c->a.p.loss.eps = 0.1;
}

static void b_loss_not_scalar(bad_call *c)
{
    b_labels_f32(c);
    c->t[1].dtype = HCGA_I64;
    c->t[2].shape[0] = 2;
}

static void b_thresh_nan(bad_call *c)
{
    relu_fwd_ok(c);
    c->a.op = c->entry = HCGA_OP_THRESH_FWD;
    c->a.p.scalar.a = NAN;
}

static void adam_ok(bad_call *c)
{
    call(c, HCGA_OP_ADAM_STEP, 1, 3);
    c->a.in[0] = tn(c, F32, V1(4));
    c->a.out[0] = tn(c, F32, V1(4));
    c->a.out[1] = tn(c, F32, V1(4));
    c->a.out[2] = tn(c, F32, V1(4));
    c->a.p.optim.lr = 1e-3;
    c->a.p.optim.beta1 = 0.9;
    c->a.p.optim.beta2 = 0.999;
    c->a.p.optim.eps = 1e-8;
    c->a.p.optim.step = 1;
}

static void b_lr_nan(bad_call *c)
{
    adam_ok(c);
    c->a.p.optim.lr = NAN;
}

static void b_eps_inf(bad_call *c)
{
    adam_ok(c);
    c->a.p.optim.eps = INFINITY;
}

static void b_step_zero(bad_call *c)
{
    adam_ok(c);
    c->a.p.optim.step = 0;
}

static void b_gap_bwd_shape(bad_call *c)
{
    call(c, HCGA_OP_GAP_BWD, 1, 1);
    c->a.in[0] = tn(c, F32, V2(1, 2));
    c->a.out[0] = tn(c, F32, V4(1, 3, 2, 2));
}

static void b_concat_channels(bad_call *c)
{
    call(c, HCGA_OP_CONCAT, 2, 1);
    c->a.in[0] = tn(c, F32, V2(2, 3));
    c->a.in[1] = tn(c, F32, V2(2, 4));
    c->a.out[0] = tn(c, F32, V2(2, 8));
}

/* ---- mixed precision (ABI 1.1) ---- */

static void b_relu_bf16(bad_call *c)
{
    relu_fwd_ok(c);
    c->t[0].dtype = c->t[1].dtype = HCGA_BF16; /* relu has no half form */
}

static void b_conv_bf16_f16(bad_call *c)
{
    conv_ok(c);
    c->t[0].dtype = HCGA_BF16;
    c->t[1].dtype = HCGA_F16;
    c->t[2].dtype = HCGA_BF16;
}

static void b_gemm_half_f32_out(bad_call *c)
{
    call(c, HCGA_OP_GEMM, 2, 1);
    c->a.in[0] = tn(c, HCGA_BF16, V2(2, 3));
    c->a.in[1] = tn(c, HCGA_BF16, V2(3, 4));
    c->a.out[0] = tn(c, F32, V2(2, 4)); /* half outputs stay half (the ABI) */
    c->a.p.gemm.alpha = 1.0;
}

static void b_cast_from_i64(bad_call *c)
{
    call(c, HCGA_OP_CAST, 1, 1);
    c->a.in[0] = tn(c, HCGA_I64, V1(4));
    c->a.out[0] = tn(c, F32, V1(4));
}

static const struct {
    const char *name;
    void (*build)(bad_call *c);
} BAD_CASES[] = {
    {"input of dtype i64 where a float is required", b_i64_input},
    {"output of an unknown dtype", b_unknown_dtype},
    {"f32 and f64 in one call", b_mixed_floats},
    {"output shape differs from the input's", b_shape_mismatch},
    {"negative dimension", b_negative_dim},
    {"num_in above the op's maximum", b_num_in},
    {"args.op differs from the table entry called", b_wrong_entry},
    {"strided tensor where dense is required", b_not_dense},
    {"offset not a multiple of the element size", b_misaligned},
    {"tensor overruns its buffer", b_overrun},
    {"tensor without a buffer", b_no_buffer},
    {"output partly overlaps an input", b_alias},
    {"two outputs overlap", b_outputs_overlap},
    {"3-D image for a convolution", b_conv_rank},
    {"filter channels differ from the image's", b_conv_channels},
    {"required filter slot missing", b_conv_missing_w},
    {"convolution stride 0", b_conv_stride},
    {"convolution output of the wrong width", b_conv_out_shape},
    {"batch-norm gamma of the wrong length", b_bn_gamma},
    {"batch-norm eps not finite", b_bn_eps},
    {"bn_fwd_from_stats with bn.count 1", b_bn_count_one},
    {"bn.count below x's own values per channel", b_bn_count_local},
    {"bn_stats sum of the wrong length", b_bn_stats_sum},
    {"bn_bwd_from_stats sum_dy of the wrong length", b_bn_bwd_sum_dy},
    {"GEMM inner dimensions differ", b_gemm_inner},
    {"upsample factor 0", b_factor_zero},
    {"upsample factor above 4096", b_factor_huge},
    {"labels of dtype f32", b_labels_f32},
    {"loss output not a scalar", b_loss_not_scalar},
    {"threshold not finite", b_thresh_nan},
    {"Adam lr NaN", b_lr_nan},
    {"Adam eps infinite", b_eps_inf},
    {"optimizer step 0", b_step_zero},
    {"gap_bwd output of the wrong shape", b_gap_bwd_shape},
    {"concat channels do not add up", b_concat_channels},
    {"relu_fwd in bf16 (no half form)", b_relu_bf16},
    {"conv with x bf16 and w f16", b_conv_bf16_f16},
    {"gemm with a, b bf16 and y f32", b_gemm_half_f32_out},
    {"cast from i64", b_cast_from_i64},
};
#define BAD_NCASES ((int)(sizeof BAD_CASES / sizeof BAD_CASES[0]))

int conf_badargs_count(void) { return BAD_NCASES; }

/* ---- running ------------------------------------------------------------ */

typedef struct bad_result {
    hcga_status st;
    int missing; /* the entry is NULL: op unsupported */
    char msg[512];
} bad_result;

/* One case on one backend: build it on buf and call the op table entry. */
static void run_one(hcga_be *be, hcga_buffer *buf, int k, bad_result *res)
{
    bad_call c;
    memset(&c, 0, sizeof c);
    c.buf = buf;
    BAD_CASES[k].build(&c);
    memset(res, 0, sizeof *res);
    const hcga_backend_iface *ifc = be->iface;
    if (c.entry < 0 || (uint32_t)c.entry >= ifc->num_ops || !ifc->ops[c.entry]) {
        res->missing = 1;
        res->st = HCGA_ERR_UNSUPPORTED;
        return;
    }
    res->st = ifc->ops[c.entry](be->inst, &c.a);
    if (res->st == HCGA_OK) {
        res->st = ifc->synchronize(be->inst);
        if (res->st == HCGA_OK) return;
    }
    const char *m = ifc->last_error(be->inst);
    snprintf(res->msg, sizeof res->msg, "%s", m ? m : "");
}

static const char *status_name(hcga_status st)
{
    switch (st) {
    case HCGA_OK: return "HCGA_OK";
    case HCGA_ERR_INVALID: return "HCGA_ERR_INVALID";
    case HCGA_ERR_UNSUPPORTED: return "HCGA_ERR_UNSUPPORTED";
    case HCGA_ERR_NOMEM: return "HCGA_ERR_NOMEM";
    case HCGA_ERR_DEVICE: return "HCGA_ERR_DEVICE";
    case HCGA_ERR_NUMERIC: return "HCGA_ERR_NUMERIC";
    default: return "unknown status";
    }
}

static hcga_buffer *zeroed_buffer(hcga_be *be, char *err, size_t err_len)
{
    static const uint8_t zeros[BAD_BUF_BYTES];
    hcga_buffer *buf = NULL;
    if (hcga_be_alloc(be, BAD_BUF_BYTES, &buf) != HCGA_OK ||
        hcga_be_write(be, buf, 0, zeros, BAD_BUF_BYTES) != HCGA_OK) {
        snprintf(err, err_len, "backend '%s': %s", be->name, hcga_be_error(be));
        if (buf) hcga_be_free(be, buf);
        return NULL;
    }
    return buf;
}

/* Judges one case; returns 1 passed, 0 failed, and prints the line. */
static int judge(conf_run *r, int k, const bad_result *d, const bad_result *ref)
{
    const char *name = BAD_CASES[k].name;
    FILE *out = r->out;
    if (ref->st != HCGA_ERR_INVALID) {
        fprintf(out, "FAIL  %-46s the reference '%s' answered %s (%s), not HCGA_ERR_INVALID\n",
                name, r->ref->name, status_name(ref->st), ref->missing ? "no such op" : ref->msg);
        return 0;
    }
    if (d->missing) {
        fprintf(out, "FAIL  %-46s the op is not supported by backend '%s' (mandatory op)\n", name,
                r->dut->name);
        return 0;
    }
    if (d->st == HCGA_OK) {
        fprintf(out, "FAIL  %-46s accepted (expected HCGA_ERR_INVALID: %s)\n", name, ref->msg);
        return 0;
    }
    if (d->st != ref->st) {
        fprintf(out, "FAIL  %-46s answered %s (%s), expected HCGA_ERR_INVALID (%s)\n", name,
                status_name(d->st), d->msg, ref->msg);
        return 0;
    }
    if (strcmp(d->msg, ref->msg) != 0) {
        fprintf(out, "FAIL  %-46s message differs\n      %-8s %s\n      %-8s %s\n", name,
                r->dut->name, d->msg, r->ref->name, ref->msg);
        return 0;
    }
    if (r->o->verbose >= 0) fprintf(out, "ok    %-46s %s\n", name, d->msg);
    return 1;
}

int conf_badargs_run(conf_run *r)
{
    char err[512];
    hcga_buffer *bd = zeroed_buffer(r->dut, err, sizeof err);
    hcga_buffer *br = bd ? zeroed_buffer(r->ref, err, sizeof err) : NULL;
    if (!bd || !br) {
        fprintf(stderr, "hcga conformance: %s\n", err);
        if (bd) hcga_be_free(r->dut, bd);
        return -1;
    }
    fprintf(r->out, "badargs: %d malformed calls, each refused by '%s' and '%s' with "
            "HCGA_ERR_INVALID and the same message\n", BAD_NCASES, r->dut->name, r->ref->name);
    for (int k = 0; k < BAD_NCASES; k++) {
        bad_result d, ref;
        run_one(r->ref, br, k, &ref);
        run_one(r->dut, bd, k, &d);
        r->cases++;
        if (judge(r, k, &d, &ref))
            r->passed++;
        else
            r->failed++;
        fflush(r->out);
    }
    hcga_be_free(r->dut, bd);
    hcga_be_free(r->ref, br);
    return 0;
}
