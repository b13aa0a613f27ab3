/*
 * yacs_format.c - configuration values written back as YAML that loads to
 * the same values: floats as Python's repr() (the shortest decimal that
 * reads back exactly), strings plain when that is unambiguous, else single-
 * or double-quoted with escapes; the whole tree as yacs dumps it
 * (hcga config show, checkpoints' embedded config); and the short value
 * descriptions used in error messages.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->len + n + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* The shortest decimal that reads back as x, written as Python's repr(). */
static void format_float(double x, char *out, size_t cap)
{
    if (isnan(x)) {
        snprintf(out, cap, ".nan");
        return;
    }
    if (isinf(x)) {
        snprintf(out, cap, x < 0 ? "-.inf" : ".inf");
        return;
    }
    char e[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x)
            break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    char digits[32];
    size_t nd = 0;
    const char *p = e;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    char *o = out;
    size_t left = cap;
#define EMIT(...) do { int w_ = snprintf(o, left, __VA_ARGS__); if (w_ < 0 || (size_t)w_ >= left) return; o += w_; left -= (size_t)w_; } while (0)
    if (neg)
        EMIT("-");
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            EMIT("0.");
            for (int k = 0; k < -exp10 - 1; k++)
                EMIT("0");
            EMIT("%s", digits);
        } else {
            for (int k = 0; k <= exp10; k++)
                EMIT("%c", k < (int)nd ? digits[k] : '0');
            EMIT(".");
            if ((int)nd > exp10 + 1)
                EMIT("%s", digits + exp10 + 1);
            else
                EMIT("0");
        }
    } else {
        EMIT("%c", digits[0]);
        if (nd > 1)
            EMIT(".%s", digits + 1);
        EMIT("e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
#undef EMIT
}

/* A string that reads back as the same string when written plain. */
static int plain_safe(const char *s)
{
    if (!*s)
        return 0;
    if (!(isalnum((unsigned char)s[0]) || s[0] == '_' || s[0] == '/' || s[0] == '.'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_./+-", *p)))
            return 0;
    value v;
    const char *why;
    if (cfg_resolve_plain(s, strlen(s), &v, &why) != 0)
        return 0;
    int ok = v.kind == V_STR && strcmp(v.s, s) == 0;
    cfg_value_free(&v);
    return ok;
}

static void format_value(sbuf *b, const value *v)
{
    char tmp[64];
    switch (v->kind) {
    case V_NONE:
        sb_str(b, "null");
        break;
    case V_BOOL:
        sb_str(b, v->b ? "true" : "false");
        break;
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", v->i);
        sb_str(b, tmp);
        break;
    case V_FLOAT:
        format_float(v->f, tmp, sizeof tmp);
        sb_str(b, tmp);
        break;
    case V_STR:
        if (plain_safe(v->s)) {
            sb_str(b, v->s);
        } else {
            /* single-quoted YAML: only ' needs escaping (as ''); other
             * control characters use a double-quoted scalar */
            int ctrl = 0;
            for (const unsigned char *p = (const unsigned char *)v->s; *p;) {
                unsigned long cp;
                int n = cfg_utf8_decode(p, &cp);
                if (!n || cfg_yaml_needs_escape(cp)) {
                    ctrl = 1;
                    break;
                }
                p += n;
            }
            if (!ctrl) {
                sb_str(b, "'");
                for (const char *p = v->s; *p; p++) {
                    if (*p == '\'')
                        sb_str(b, "'"); /* '' inside single quotes */
                    sb_add(b, p, 1);
                }
                sb_str(b, "'");
            } else {
                sb_str(b, "\"");
                for (const unsigned char *p = (const unsigned char *)v->s; *p;) {
                    unsigned long cp;
                    int n = cfg_utf8_decode(p, &cp);
                    if (!n) { /* not reachable: strings are checked UTF-8 */
                        snprintf(tmp, sizeof tmp, "\\x%02x", *p);
                        sb_str(b, tmp);
                        p++;
                        continue;
                    }
                    if (cp == '"' || cp == '\\') {
                        sb_str(b, "\\");
                        sb_add(b, (const char *)p, 1);
                    } else if (cfg_yaml_needs_escape(cp)) {
                        snprintf(tmp, sizeof tmp, cp < 0x100 ? "\\x%02lx" : "\\u%04lx", cp);
                        sb_str(b, tmp);
                    } else {
                        sb_add(b, (const char *)p, (size_t)n);
                    }
                    p += n;
                }
                sb_str(b, "\"");
            }
        }
        break;
    case V_LIST:
        sb_str(b, "[");
        for (int i = 0; i < v->n; i++) {
            if (i)
                sb_str(b, ", ");
            format_value(b, &v->items[i]);
        }
        sb_str(b, "]");
        break;
    }
}

/* Short description of a value for error messages. */
void cfg_describe(const value *v, char *out, size_t cap)
{
    if (v->kind == V_STR) {
        if (strlen(v->s) > 60)
            snprintf(out, cap, "str '%.57s...'", v->s);
        else
            snprintf(out, cap, "str '%s'", v->s);
        return;
    }
    sbuf b = {0};
    format_value(&b, v);
    if (b.oom || !b.s) {
        snprintf(out, cap, "%s", cfg_kind_name(v));
    } else if (b.len > 60) {
        snprintf(out, cap, "%s %.57s...", cfg_kind_name(v), b.s);
    } else {
        snprintf(out, cap, "%s %s", cfg_kind_name(v), b.s);
    }
    free(b.s);
}

/* ------------------------------------------------------------------- dump */

static void dump_node(sbuf *b, const cnode *m, int indent)
{
    for (int i = 0; i < m->n; i++) {
        const cnode *k = &m->kids[i];
        for (int s = 0; s < indent; s++)
            sb_str(b, " ");
        sb_str(b, k->name);
        sb_str(b, ":");
        if (k->is_map) {
            if (k->n == 0) {
                sb_str(b, " {}\n");
            } else {
                sb_str(b, "\n");
                dump_node(b, k, indent + 2);
            }
        } else {
            sb_str(b, " ");
            format_value(b, &k->v);
            sb_str(b, "\n");
        }
    }
}

char *hcga_config_dump_string(const hcga_config *c)
{
    if (!c)
        return NULL;
    sbuf b = {0};
    dump_node(&b, &c->root, 0);
    if (!b.oom && !b.s)
        sb_str(&b, "{}\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

void hcga_config_dump(const hcga_config *c, FILE *f)
{
    char *s = hcga_config_dump_string(c);
    if (!s) {
        fprintf(stderr, "hcga: config dump: out of memory\n");
        return;
    }
    fputs(s, f);
    free(s);
}
