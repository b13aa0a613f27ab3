/*
 * shapefile.c - parser and writer of the conformance shape files
 * (format: shapefile.h and conformance/README.md).
 */
#include "shapefile.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- op metadata ------------------------------------------------------- */

hcga_param_group hcga_shapefile_param_group(int op)
{
    const hcga_op_info *info = hcga_op_get_info(op);
    return info ? (hcga_param_group)info->params : HCGA_PG_NONE;
}

int hcga_shapefile_index_slot(int op, int is_out, int slot)
{
    const hcga_op_info *info = hcga_op_get_info(op);
    if (!info || slot < 0 || slot >= 8) return 0;
    return ((is_out ? info->index_out : info->index_in) >> slot) & 1;
}

int hcga_op_from_name(const char *name)
{
    for (int i = 0; i < HCGA_OP_COUNT; i++)
        if (strcmp(hcga_op_name(i), name) == 0) return i;
    return -1;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < HCGA_DTYPE_COUNT; i++)
        if (strcmp(hcga_dtype_name(i), s) == 0) return i;
    return -1;
}

/* ---- parameter keys ---------------------------------------------------- */

enum key_type { K_DOUBLE, K_I32, K_I64, K_PAIR, K_KIND, K_FLAG };

typedef struct key_desc {
    const char *name;
    enum key_type type;
    size_t off; /* offset in hcga_op_params (K_FLAG: unused) */
} key_desc;

#define PO(field) offsetof(hcga_op_params, field)

/* The keys of every op, in the order the writer prints them. */
static int op_keys(int op, const key_desc **keys)
{
    static const key_desc conv[] = {{"stride", K_PAIR, PO(conv.stride_h)},
                                    {"pad", K_PAIR, PO(conv.pad_h)},
                                    {"dilation", K_PAIR, PO(conv.dilation_h)}};
    static const key_desc conv_bn[] = {{"stride", K_PAIR, PO(conv_bn.conv.stride_h)},
                                       {"pad", K_PAIR, PO(conv_bn.conv.pad_h)},
                                       {"dilation", K_PAIR, PO(conv_bn.conv.dilation_h)},
                                       {"eps", K_DOUBLE, PO(conv_bn.eps)},
                                       {"relu", K_I32, PO(conv_bn.relu)}};
    static const key_desc bn_train[] = {{"eps", K_DOUBLE, PO(bn.eps)},
                                        {"momentum", K_DOUBLE, PO(bn.momentum)}};
    static const key_desc bn_infer[] = {{"eps", K_DOUBLE, PO(bn.eps)}};
    static const key_desc bn_fwd_sums[] = {{"eps", K_DOUBLE, PO(bn.eps)},
                                           {"momentum", K_DOUBLE, PO(bn.momentum)},
                                           {"count", K_I64, PO(bn.count)}};
    static const key_desc bn_bwd_sums[] = {{"count", K_I64, PO(bn.count)}};
    static const key_desc thresh[] = {{"t", K_DOUBLE, PO(scalar.a)}};
    static const key_desc add[] = {{"alpha", K_DOUBLE, PO(scalar.a)},
                                   {"beta", K_DOUBLE, PO(scalar.b)}};
    static const key_desc mul[] = {{"alpha", K_DOUBLE, PO(scalar.a)}};
    static const key_desc fill[] = {{"value", K_DOUBLE, PO(scalar.a)}};
    static const key_desc ups[] = {{"factor", K_I32, PO(resize.factor)}};
    static const key_desc bil[] = {{"align_corners", K_I32, PO(resize.align_corners)}};
    static const key_desc gemm[] = {{"trans_a", K_I32, PO(gemm.trans_a)},
                                    {"trans_b", K_I32, PO(gemm.trans_b)},
                                    {"alpha", K_DOUBLE, PO(gemm.alpha)},
                                    {"beta", K_DOUBLE, PO(gemm.beta)},
                                    {"alias_c_y", K_FLAG, 0}};
    static const key_desc reduce[] = {{"kind", K_KIND, PO(reduce.kind)}};
    static const key_desc ce[] = {{"eps", K_DOUBLE, PO(loss.eps)}};
    static const key_desc pix[] = {{"ignore_label", K_I64, PO(loss.ignore_label)}};
    static const key_desc trip[] = {{"margin", K_DOUBLE, PO(loss.margin)}};
    static const key_desc shift[] = {{"dn", K_I32, PO(shift.dn)},
                                     {"dh", K_I32, PO(shift.dh)},
                                     {"dw", K_I32, PO(shift.dw)}};
    static const key_desc adam[] = {{"lr", K_DOUBLE, PO(optim.lr)},
                                    {"beta1", K_DOUBLE, PO(optim.beta1)},
                                    {"beta2", K_DOUBLE, PO(optim.beta2)},
                                    {"eps", K_DOUBLE, PO(optim.eps)},
                                    {"weight_decay", K_DOUBLE, PO(optim.weight_decay)},
                                    {"step", K_I64, PO(optim.step)}};
    static const key_desc sgd[] = {{"lr", K_DOUBLE, PO(optim.lr)},
                                   {"momentum", K_DOUBLE, PO(optim.momentum)},
                                   {"weight_decay", K_DOUBLE, PO(optim.weight_decay)},
                                   {"step", K_I64, PO(optim.step)}};
#define RET(arr) do { *keys = arr; return (int)(sizeof arr / sizeof arr[0]); } while (0)
    switch (op) {
    case HCGA_OP_CONV2D_FWD:
    case HCGA_OP_CONV2D_BWD_DATA:
    case HCGA_OP_CONV2D_BWD_FILTER: RET(conv);
    case HCGA_OP_CONV2D_BN_INFER: RET(conv_bn);
    case HCGA_OP_BN_FWD_TRAIN: RET(bn_train);
    case HCGA_OP_BN_FWD_INFER: RET(bn_infer);
    case HCGA_OP_BN_FWD_FROM_STATS: RET(bn_fwd_sums);
    case HCGA_OP_BN_BWD_FROM_STATS: RET(bn_bwd_sums);
    case HCGA_OP_THRESH_FWD:
    case HCGA_OP_THRESH_BWD: RET(thresh);
    case HCGA_OP_ADD: RET(add);
    case HCGA_OP_MUL: RET(mul);
    case HCGA_OP_FILL: RET(fill);
    case HCGA_OP_UPSAMPLE_NEAREST_FWD:
    case HCGA_OP_UPSAMPLE_NEAREST_BWD: RET(ups);
    case HCGA_OP_RESIZE_BILINEAR_FWD:
    case HCGA_OP_RESIZE_BILINEAR_BWD: RET(bil);
    case HCGA_OP_GEMM: RET(gemm);
    case HCGA_OP_REDUCE:
    case HCGA_OP_REDUCE_BWD: RET(reduce);
    case HCGA_OP_CE_LS_FWD:
    case HCGA_OP_CE_LS_BWD: RET(ce);
    case HCGA_OP_PIXEL_CE_FWD:
    case HCGA_OP_PIXEL_CE_BWD: RET(pix);
    case HCGA_OP_TRIPLET_FWD:
    case HCGA_OP_TRIPLET_BWD: RET(trip);
    case HCGA_OP_SHIFT_L1_FWD:
    case HCGA_OP_SHIFT_L1_BWD: RET(shift);
    case HCGA_OP_ADAM_STEP: RET(adam);
    case HCGA_OP_SGD_STEP: RET(sgd);
    default: *keys = NULL; return 0;
    }
#undef RET
}

void hcga_shapefile_default_params(int op, hcga_op_params *p)
{
    memset(p, 0, sizeof *p);
    switch (hcga_shapefile_param_group(op)) {
    case HCGA_PG_CONV:
        p->conv.stride_h = p->conv.stride_w = 1;
        p->conv.dilation_h = p->conv.dilation_w = 1;
        break;
    case HCGA_PG_BN: p->bn.eps = 1e-5; p->bn.momentum = 0.1; break;
    case HCGA_PG_CONV_BN:
        p->conv_bn.conv.stride_h = p->conv_bn.conv.stride_w = 1;
        p->conv_bn.conv.dilation_h = p->conv_bn.conv.dilation_w = 1;
        p->conv_bn.eps = 1e-5;
        p->conv_bn.relu = 1;
        break;
    case HCGA_PG_RESIZE: p->resize.factor = 2; p->resize.align_corners = 1; break;
    case HCGA_PG_GEMM: p->gemm.alpha = 1.0; p->gemm.beta = 0.0; break;
    case HCGA_PG_LOSS: p->loss.eps = 0.1; p->loss.margin = 0.3; p->loss.ignore_label = -1; break;
    case HCGA_PG_OPTIM:
        p->optim.lr = 1e-3; p->optim.beta1 = 0.9; p->optim.beta2 = 0.999;
        p->optim.eps = 1e-8; p->optim.weight_decay = 0.0; p->optim.momentum = 0.9;
        p->optim.step = 1;
        break;
    case HCGA_PG_SCALAR:
        if (op == HCGA_OP_ADD || op == HCGA_OP_MUL) p->scalar.a = p->scalar.b = 1.0;
        break;
    case HCGA_PG_REDUCE: p->reduce.kind = HCGA_REDUCE_SUM; break;
    default: break;
    }
}

static const char *const kind_names[] = {"sum", "mean", "abs_mean"};

/* ---- small helpers ----------------------------------------------------- */

static int set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int parse_i64(const char *s, int64_t *v)
{
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double *v)
{
    if (!*s) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || *end || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

/* Shortest of %.15g / %.17g that reads back to the same double. */
static void fmt_double(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, len, "%.17g", v);
}

static void contiguous_strides(hcga_shape_tensor *t)
{
    int64_t s = 1;
    for (int d = HCGA_MAX_DIMS - 1; d >= 0; d--) {
        if (d >= t->ndim) { t->stride[d] = 1; continue; }
        t->stride[d] = s;
        s *= t->shape[d];
    }
}

/* Parse "AxBxC" into dims; returns the count or -1. */
static int parse_dims(const char *s, int64_t *dims, int64_t min_val)
{
    int n = 0;
    char tmp[64];
    while (*s) {
        const char *x = strchr(s, 'x');
        size_t l = x ? (size_t)(x - s) : strlen(s);
        if (l == 0 || l >= sizeof tmp || n == HCGA_MAX_DIMS) return -1;
        memcpy(tmp, s, l);
        tmp[l] = 0;
        int64_t v;
        if (parse_i64(tmp, &v) || v < min_val) return -1;
        dims[n++] = v;
        s += l;
        if (x) {
            s++;
            if (!*s) return -1;
        }
    }
    return n;
}

static int parse_tensor(const char *tok, int op, int is_out, int slot, int line_dtype,
                        hcga_shape_tensor *t, char *err, size_t err_len)
{
    memset(t, 0, sizeof *t);
    if (strcmp(tok, "-") == 0) return 0;
    t->present = 1;
    t->dtype = hcga_shapefile_index_slot(op, is_out, slot) ? HCGA_I64 : line_dtype;
    char buf[256];
    if (strlen(tok) >= sizeof buf)
        return set_err(err, err_len, "tensor '%.40s...' too long", tok);
    strcpy(buf, tok);
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = 0;
        int dt = dtype_from_name(colon + 1);
        if (dt < 0)
            return set_err(err, err_len, "tensor '%s': unknown dtype '%s'", tok, colon + 1);
        t->dtype = dt;
    }
    char *at = strchr(buf, '@');
    if (at) *at = 0;
    if (strcmp(buf, "()") == 0) {
        t->ndim = 0;
    } else {
        int n = parse_dims(buf, t->shape, 0);
        if (n < 1)
            return set_err(err, err_len,
                           "tensor '%s': expected dims like 2x3x4 (1..%d non-negative integers)",
                           tok, HCGA_MAX_DIMS);
        t->ndim = n;
    }
    for (int d = t->ndim; d < HCGA_MAX_DIMS; d++) t->shape[d] = 1;
    contiguous_strides(t);
    if (at) {
        int64_t st[HCGA_MAX_DIMS];
        int n = parse_dims(at + 1, st, 0);
        if (n != t->ndim)
            return set_err(err, err_len,
                           "tensor '%s': %d strides given for %d dims (strides are "
                           "non-negative, joined by 'x')", tok, n < 0 ? 0 : n, t->ndim);
        for (int d = 0; d < n; d++) t->stride[d] = st[d];
        t->strided = 1;
    }
    return 0;
}

static int parse_tensor_list(const char *list, int op, int is_out, int line_dtype,
                             hcga_shape_tensor *ts, int max, int *count, char *err,
                             size_t err_len)
{
    int n = 0;
    *count = 0;
    if (!*list) return 0;
    const char *s = list;
    for (;;) {
        const char *c = strchr(s, ',');
        size_t l = c ? (size_t)(c - s) : strlen(s);
        char tok[256];
        if (l == 0) return set_err(err, err_len, "%s=: empty tensor in '%s'",
                                   is_out ? "out" : "in", list);
        if (l >= sizeof tok) return set_err(err, err_len, "%s=: tensor too long",
                                            is_out ? "out" : "in");
        if (n == max)
            return set_err(err, err_len, "%s=: more than %d tensors", is_out ? "out" : "in",
                           max);
        memcpy(tok, s, l);
        tok[l] = 0;
        if (parse_tensor(tok, op, is_out, n, line_dtype, &ts[n], err, err_len)) return -1;
        n++;
        if (!c) break;
        s = c + 1;
    }
    *count = n;
    return 0;
}

static int parse_key(int op, hcga_shape_case *c, const char *key, const char *val, char *err,
                     size_t err_len)
{
    if (strcmp(key, "gen") == 0) {
        size_t l = strlen(val);
        if (l == 0 || l >= sizeof c->gen)
            return set_err(err, err_len, "gen=%s: expected a name of 1..%zu characters", val,
                           sizeof c->gen - 1);
        for (size_t i = 0; i < l; i++)
            if (!(islower((unsigned char)val[i]) || isdigit((unsigned char)val[i]) || val[i] == '_'))
                return set_err(err, err_len, "gen=%s: use lower-case letters, digits and '_'",
                               val);
        memcpy(c->gen, val, l + 1);
        return 0;
    }
    const key_desc *keys;
    int nk = op_keys(op, &keys);
    for (int i = 0; i < nk; i++) {
        if (strcmp(keys[i].name, key) != 0) continue;
        char *base = (char *)&c->p;
        int64_t iv;
        double dv;
        switch (keys[i].type) {
        case K_DOUBLE:
            if (parse_double(val, &dv))
                return set_err(err, err_len, "%s=%s: not a finite number", key, val);
            memcpy(base + keys[i].off, &dv, sizeof dv);
            return 0;
        case K_I32:
            if (parse_i64(val, &iv) || iv < INT32_MIN || iv > INT32_MAX)
                return set_err(err, err_len, "%s=%s: not an integer", key, val);
            {
                int32_t v32 = (int32_t)iv;
                memcpy(base + keys[i].off, &v32, sizeof v32);
            }
            return 0;
        case K_I64:
            if (parse_i64(val, &iv))
                return set_err(err, err_len, "%s=%s: not an integer", key, val);
            memcpy(base + keys[i].off, &iv, sizeof iv);
            return 0;
        case K_PAIR: {
            const char *comma = strchr(val, ',');
            char a[32], b[32];
            int64_t x, y;
            if (!comma || (size_t)(comma - val) >= sizeof a || strlen(comma + 1) >= sizeof b)
                return set_err(err, err_len, "%s=%s: expected two integers 'H,W'", key, val);
            memcpy(a, val, (size_t)(comma - val));
            a[comma - val] = 0;
            strcpy(b, comma + 1);
            if (parse_i64(a, &x) || parse_i64(b, &y) || x < 0 || y < 0 || x > INT32_MAX ||
                y > INT32_MAX)
                return set_err(err, err_len, "%s=%s: expected two non-negative integers 'H,W'",
                               key, val);
            int32_t pair[2] = {(int32_t)x, (int32_t)y};
            memcpy(base + keys[i].off, pair, sizeof pair);
            return 0;
        }
        case K_KIND:
            for (int k = 0; k < 3; k++)
                if (strcmp(val, kind_names[k]) == 0) {
                    int32_t v32 = k;
                    memcpy(base + keys[i].off, &v32, sizeof v32);
                    return 0;
                }
            return set_err(err, err_len, "%s=%s: expected sum, mean or abs_mean", key, val);
        case K_FLAG:
            if (strcmp(val, "0") == 0) c->alias_c_y = 0;
            else if (strcmp(val, "1") == 0) c->alias_c_y = 1;
            else return set_err(err, err_len, "%s=%s: expected 0 or 1", key, val);
            return 0;
        }
    }
    char known[256] = "";
    for (int i = 0; i < nk; i++) {
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, keys[i].name, sizeof known - strlen(known) - 1);
    }
    return set_err(err, err_len, "unknown parameter '%s' for %s (known: %s%sgen)", key,
                   hcga_op_name(op), known, nk ? ", " : "");
}

int hcga_shapefile_parse_line(const char *line, hcga_shape_case *c, char *err, size_t err_len)
{
    char buf[4096];
    size_t l = strlen(line);
    if (l >= sizeof buf) return set_err(err, err_len, "line longer than %zu bytes", sizeof buf);
    memcpy(buf, line, l + 1);
    char *hash = strchr(buf, '#');
    if (hash) *hash = 0;

    char *tok[64];
    int nt = 0;
    for (char *s = strtok(buf, " \t\r\n"); s; s = strtok(NULL, " \t\r\n")) {
        if (nt == 64) return set_err(err, err_len, "too many fields");
        tok[nt++] = s;
    }
    if (nt == 0) return 0;

    memset(c, 0, sizeof *c);
    c->op = hcga_op_from_name(tok[0]);
    if (c->op < 0) return set_err(err, err_len, "unknown op '%s'", tok[0]);
    if (nt < 2) return set_err(err, err_len, "%s: missing dtype (f32, f64, bf16 or f16)", tok[0]);
    c->dtype = dtype_from_name(tok[1]);
    if (c->dtype < 0) return set_err(err, err_len, "unknown dtype '%s'", tok[1]);
    hcga_shapefile_default_params(c->op, &c->p);

    int have_in = 0, have_out = 0;
    for (int i = 2; i < nt; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq) return set_err(err, err_len, "'%s': expected key=value", tok[i]);
        *eq = 0;
        const char *key = tok[i], *val = eq + 1;
        if (strcmp(key, "in") == 0 || strcmp(key, "out") == 0) {
            int is_out = key[0] == 'o';
            if (is_out ? have_out : have_in)
                return set_err(err, err_len, "%s= given twice", key);
            if (is_out) have_out = 1; else have_in = 1;
            if (parse_tensor_list(val, c->op, is_out, c->dtype, is_out ? c->out : c->in,
                                  is_out ? HCGA_MAX_OP_OUT : HCGA_MAX_OP_IN,
                                  is_out ? &c->num_out : &c->num_in, err, err_len))
                return -1;
        } else if (parse_key(c->op, c, key, val, err, err_len)) {
            return -1;
        }
    }
    if (!have_out || c->num_out == 0)
        return set_err(err, err_len, "%s: missing out=", tok[0]);
    return 1;
}

int hcga_shapefile_load(const char *path, hcga_shape_case **cases, int *n, char *err,
                        size_t err_len)
{
    *cases = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return set_err(err, err_len, "%s: %s", path, strerror(errno));
    hcga_shape_case *arr = NULL;
    int cnt = 0, cap = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    char msg[512];
    int rc = 0;
    while (getline(&line, &lcap, f) >= 0) {
        lineno++;
        hcga_shape_case c;
        int r = hcga_shapefile_parse_line(line, &c, msg, sizeof msg);
        if (r < 0) {
            set_err(err, err_len, "%s:%d: %s", path, lineno, msg);
            rc = -1;
            break;
        }
        if (r == 0) continue;
        c.line = lineno;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            hcga_shape_case *na = realloc(arr, (size_t)cap * sizeof *na);
            if (!na) {
                set_err(err, err_len, "%s: out of memory", path);
                rc = -1;
                break;
            }
            arr = na;
        }
        arr[cnt++] = c;
    }
    if (rc == 0 && ferror(f)) rc = set_err(err, err_len, "%s: read error", path);
    free(line);
    fclose(f);
    if (rc) {
        free(arr);
        return -1;
    }
    *cases = arr;
    *n = cnt;
    return 0;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, used;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->used < b->len ? b->len - b->used : 0;
    int n = vsnprintf(room ? b->p + b->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->used += (size_t)n;
}

static void sb_tensor(sbuf *b, const hcga_shape_tensor *t, int def_dtype)
{
    if (!t->present) {
        sb_printf(b, "-");
        return;
    }
    if (t->ndim == 0) sb_printf(b, "()");
    for (int d = 0; d < t->ndim; d++) sb_printf(b, "%s%lld", d ? "x" : "", (long long)t->shape[d]);
    if (t->strided) {
        sb_printf(b, "@");
        for (int d = 0; d < t->ndim; d++)
            sb_printf(b, "%s%lld", d ? "x" : "", (long long)t->stride[d]);
    }
    if (t->dtype != def_dtype) sb_printf(b, ":%s", hcga_dtype_name(t->dtype));
}

int hcga_shapefile_format_case(char *buf, size_t len, const hcga_shape_case *c)
{
    sbuf b = {buf, len, 0};
    if (buf && len) buf[0] = 0;
    sb_printf(&b, "%s %s", hcga_op_name(c->op), hcga_dtype_name(c->dtype));
    for (int io = 0; io < 2; io++) {
        int n = io ? c->num_out : c->num_in;
        const hcga_shape_tensor *ts = io ? c->out : c->in;
        if (n == 0) continue;
        sb_printf(&b, " %s=", io ? "out" : "in");
        for (int i = 0; i < n; i++) {
            if (i) sb_printf(&b, ",");
            int def = hcga_shapefile_index_slot(c->op, io, i) ? HCGA_I64 : c->dtype;
            sb_tensor(&b, &ts[i], def);
        }
    }
    const key_desc *keys;
    int nk = op_keys(c->op, &keys);
    const char *base = (const char *)&c->p;
    for (int i = 0; i < nk; i++) {
        char num[64];
        switch (keys[i].type) {
        case K_DOUBLE: {
            double v;
            memcpy(&v, base + keys[i].off, sizeof v);
            fmt_double(num, sizeof num, v);
            sb_printf(&b, " %s=%s", keys[i].name, num);
            break;
        }
        case K_I32: {
            int32_t v;
            memcpy(&v, base + keys[i].off, sizeof v);
            sb_printf(&b, " %s=%d", keys[i].name, (int)v);
            break;
        }
        case K_I64: {
            int64_t v;
            memcpy(&v, base + keys[i].off, sizeof v);
            sb_printf(&b, " %s=%lld", keys[i].name, (long long)v);
            break;
        }
        case K_PAIR: {
            int32_t v[2];
            memcpy(v, base + keys[i].off, sizeof v);
            sb_printf(&b, " %s=%d,%d", keys[i].name, (int)v[0], (int)v[1]);
            break;
        }
        case K_KIND: {
            int32_t v;
            memcpy(&v, base + keys[i].off, sizeof v);
            if (v >= 0 && v < 3) sb_printf(&b, " %s=%s", keys[i].name, kind_names[v]);
            else sb_printf(&b, " %s=%d", keys[i].name, (int)v);
            break;
        }
        case K_FLAG:
            if (c->alias_c_y) sb_printf(&b, " %s=1", keys[i].name);
            break;
        }
    }
    if (c->gen[0]) sb_printf(&b, " gen=%s", c->gen);
    return (int)b.used;
}

static int is_float(int dt) { return hcga_dtype_is_float(dt); }

int hcga_shapefile_from_args(const hcga_op_args *a, hcga_shape_case *c, char *err,
                             size_t err_len)
{
    memset(c, 0, sizeof *c);
    if (a->op < 0 || a->op >= HCGA_OP_COUNT)
        return set_err(err, err_len, "op %d is not an op of this ABI", (int)a->op);
    if (a->num_in < 0 || a->num_in > HCGA_MAX_OP_IN || a->num_out < 0 ||
        a->num_out > HCGA_MAX_OP_OUT)
        return set_err(err, err_len, "%s: num_in %d / num_out %d out of range",
                       hcga_op_name(a->op), (int)a->num_in, (int)a->num_out);
    c->op = a->op;
    c->num_in = a->num_in;
    c->num_out = a->num_out;
    c->p = a->p;
    c->dtype = -1;
    for (int io = 0; io < 2; io++) {
        int n = io ? a->num_out : a->num_in;
        for (int i = 0; i < n; i++) {
            const hcga_tensor *src = io ? a->out[i] : a->in[i];
            hcga_shape_tensor *t = io ? &c->out[i] : &c->in[i];
            if (!src) continue;
            if (src->ndim < 0 || src->ndim > HCGA_MAX_DIMS)
                return set_err(err, err_len, "%s: %s[%d] has ndim %d", hcga_op_name(a->op),
                               io ? "out" : "in", i, (int)src->ndim);
            t->present = 1;
            t->dtype = src->dtype;
            t->ndim = src->ndim;
            for (int d = 0; d < HCGA_MAX_DIMS; d++) t->shape[d] = d < t->ndim ? src->shape[d] : 1;
            contiguous_strides(t);
            for (int d = 0; d < t->ndim; d++) {
                if (src->stride[d] < 0)
                    return set_err(err, err_len, "%s: %s[%d] has a negative stride",
                                   hcga_op_name(a->op), io ? "out" : "in", i);
                /* a stride of a size-1 dim never matters */
                if (t->shape[d] > 1 && src->stride[d] != t->stride[d]) t->strided = 1;
            }
            if (t->strided)
                for (int d = 0; d < t->ndim; d++) t->stride[d] = src->stride[d];
            if (c->dtype < 0 && is_float(t->dtype)) c->dtype = t->dtype;
        }
    }
    if (c->dtype < 0) c->dtype = (c->num_out > 0 && c->out[0].present) ? c->out[0].dtype : HCGA_F32;
    if (a->op == HCGA_OP_GEMM && a->num_in > 2 && a->in[2] && a->num_out > 0 && a->out[0] &&
        a->in[2]->buf == a->out[0]->buf && a->in[2]->offset == a->out[0]->offset &&
        a->in[2]->buf != NULL)
        c->alias_c_y = 1;
    return 0;
}

int hcga_shapefile_format(char *buf, size_t len, const hcga_op_args *a)
{
    hcga_shape_case c;
    char err[256];
    if (hcga_shapefile_from_args(a, &c, err, sizeof err)) {
        return snprintf(buf, len, "# %s", err);
    }
    return hcga_shapefile_format_case(buf, len, &c);
}

void hcga_shapefile_write(FILE *f, const hcga_op_args *a)
{
    char small[1024];
    int n = hcga_shapefile_format(small, sizeof small, a);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        fprintf(f, "%s\n", small);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    hcga_shapefile_format(big, (size_t)n + 1, a);
    fprintf(f, "%s\n", big);
    free(big);
}
