/*
 * yaml_scalar.c - how an unquoted YAML scalar gets its type, as PyYAML's
 * safe_load does it (YAML 1.1: null/~, yes/no/on/off/true/false in three
 * casings, decimal/0x/0b/0-octal/base-60 integers, floats with a '.',
 * .inf/.nan), falling back to a Python literal and then to the string
 * itself; the same decoding for command-line override text; and the strict
 * UTF-8 helpers the formatter needs to quote strings safely.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

static const char *const yaml_true[] = {"yes", "Yes", "YES", "true", "True", "TRUE",
                                        "on", "On", "ON", NULL};
static const char *const yaml_false[] = {"no", "No", "NO", "false", "False", "FALSE",
                                         "off", "Off", "OFF", NULL};
static const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", NULL};

/* YAML 1.1 int: [-+]?(0b[01_]+ | 0x[0-9a-fA-F_]+ | 0[0-7_]+ | 0 | [1-9][0-9_]*).
 * Returns 1 matched (v set), 0 no match, -1 out of range. */
static int yaml_int(const char *s, value *v)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    int base = 10;
    const char *digits = p;
    if (p[0] == '0' && p[1] == 'b') {
        base = 2;
        digits = p + 2;
    } else if (p[0] == '0' && p[1] == 'x') {
        base = 16;
        digits = p + 2;
    } else if (p[0] == '0' && p[1]) {
        base = 8;
        digits = p + 1;
    } else if (p[0] < '0' || p[0] > '9') {
        return 0;
    }
    char buf[128];
    size_t n = 0;
    int any = 0;
    for (const char *q = digits; *q; q++) {
        if (*q == '_')
            continue;
        int ok = base == 16 ? isxdigit((unsigned char)*q) != 0
               : base == 8 ? (*q >= '0' && *q <= '7')
               : base == 2 ? (*q == '0' || *q == '1')
               : (*q >= '0' && *q <= '9');
        if (!ok || n + 1 >= sizeof buf)
            return 0;
        buf[n++] = *q;
        any = 1;
    }
    if (!any)
        return 0;
    buf[n] = 0;
    errno = 0;
    unsigned long long u = strtoull(buf, NULL, base);
    if (errno == ERANGE || u > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
        return -1;
    v->kind = V_INT;
    v->i = neg ? (long long)(0 - u) : (long long)u;
    return 1;
}

/* YAML 1.1 float: [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)?
 * | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN).  Returns 1 matched, 0 not. */
static int yaml_float(const char *s, value *v)
{
    const char *p = s;
    int neg = 0, sign = 0;
    if (*p == '-' || *p == '+') {
        neg = *p++ == '-';
        sign = 1;
    }
    if (strcmp(p, ".inf") == 0 || strcmp(p, ".Inf") == 0 || strcmp(p, ".INF") == 0) {
        v->kind = V_FLOAT;
        v->f = neg ? -HUGE_VAL : HUGE_VAL;
        return 1;
    }
    if (!sign && (strcmp(p, ".nan") == 0 || strcmp(p, ".NaN") == 0 || strcmp(p, ".NAN") == 0)) {
        v->kind = V_FLOAT;
        v->f = NAN;
        return 1;
    }
    char buf[512];
    size_t n = 0;
    if (neg)
        buf[n++] = '-';
    if (*p >= '0' && *p <= '9') {
        while ((*p >= '0' && *p <= '9') || *p == '_') {
            if (*p != '_') {
                if (n + 1 >= sizeof buf) return 0;
                buf[n++] = *p;
            }
            p++;
        }
        if (*p != '.')
            return 0;
        buf[n++] = *p++;
        while ((*p >= '0' && *p <= '9') || *p == '_') {
            if (*p != '_') {
                if (n + 1 >= sizeof buf) return 0;
                buf[n++] = *p;
            }
            p++;
        }
    } else if (*p == '.' && !sign) {
        buf[n++] = *p++;
        int any = 0;
        while ((*p >= '0' && *p <= '9') || *p == '_') {
            if (*p != '_') {
                if (n + 1 >= sizeof buf) return 0;
                buf[n++] = *p;
                any = 1;
            }
            p++;
        }
        if (!any)
            return 0;
    } else {
        return 0;
    }
    if (*p == 'e' || *p == 'E') {
        if (n + 3 >= sizeof buf) return 0;
        buf[n++] = 'e';
        p++;
        if (*p != '-' && *p != '+')
            return 0;
        buf[n++] = *p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9') {
            if (n + 1 >= sizeof buf) return 0;
            buf[n++] = *p++;
        }
    }
    if (*p)
        return 0;
    buf[n] = 0;
    v->kind = V_FLOAT;
    v->f = strtod(buf, NULL);
    return 1;
}

/* YAML 1.1 base-60 numbers: [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+ (int) and
 * [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* (float).  Returns 1 matched, 0 not,
 * -1 out of range. */
static int yaml_sexagesimal(const char *s, value *v)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!(*p >= '0' && *p <= '9'))
        return 0;
    int lead_zero = *p == '0';
    double acc = 0;
    unsigned long long iacc = 0;
    int overflow = 0;
    while ((*p >= '0' && *p <= '9') || *p == '_') {
        if (*p != '_') {
            int d = *p - '0';
            if (iacc > (ULLONG_MAX - (unsigned)d) / 10)
                overflow = 1;
            iacc = iacc * 10 + (unsigned)d;
            acc = acc * 10 + d;
        }
        p++;
    }
    int parts = 0;
    while (*p == ':') {
        p++;
        int d;
        if (p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9') {
            d = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        } else if (p[0] >= '0' && p[0] <= '9') {
            d = p[0] - '0';
            p += 1;
        } else {
            return 0;
        }
        if (iacc > (ULLONG_MAX - (unsigned)d) / 60)
            overflow = 1;
        iacc = iacc * 60 + (unsigned)d;
        acc = acc * 60 + d;
        parts++;
    }
    if (parts == 0)
        return 0;
    if (*p == '.') {
        p++;
        double scale = 0.1;
        while ((*p >= '0' && *p <= '9') || *p == '_') {
            if (*p != '_') {
                acc += (*p - '0') * scale;
                scale /= 10;
            }
            p++;
        }
        if (*p)
            return 0;
        v->kind = V_FLOAT;
        v->f = neg ? -acc : acc;
        return 1;
    }
    if (*p || lead_zero)
        return 0;
    if (overflow || iacc > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
        return -1;
    v->kind = V_INT;
    v->i = neg ? (long long)(0 - iacc) : (long long)iacc;
    return 1;
}

int cfg_make_str(value *v, const char *s, size_t len)
{
    v->kind = V_STR;
    v->s = malloc(len + 1);
    if (!v->s) {
        v->kind = V_NONE;
        return -1;
    }
    memcpy(v->s, s, len);
    v->s[len] = 0;
    return 0;
}

/* Plain scalar -> typed value.  Returns 0, or -1 with why set. */
int cfg_resolve_plain(const char *s, size_t len, value *v, const char **why)
{
    memset(v, 0, sizeof *v);
    if (is_one_of(s, yaml_null)) {
        v->kind = V_NONE;
        return 0;
    }
    if (is_one_of(s, yaml_true) || is_one_of(s, yaml_false)) {
        v->kind = V_BOOL;
        v->b = is_one_of(s, yaml_true);
        return 0;
    }
    int r = yaml_int(s, v);
    if (r < 0) {
        *why = "integer out of range";
        return -1;
    }
    if (r > 0 || yaml_float(s, v))
        return 0;
    r = yaml_sexagesimal(s, v);
    if (r < 0) {
        *why = "integer out of range";
        return -1;
    }
    if (r > 0)
        return 0;
    r = cfg_literal_eval(s, len, v);
    if (r < 0) {
        *why = "integer out of range";
        return -1;
    }
    if (r == 0)
        return 0;
    if (cfg_make_str(v, s, len) != 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

/* Command-line text -> value (yacs's _decode_cfg_value). */
static int utf8_valid(const char *s);

int cfg_decode_text(const char *s, value *v, const char **why)
{
    memset(v, 0, sizeof *v);
    if (!utf8_valid(s)) {
        *why = "value is not valid UTF-8";
        return -1;
    }
    int r = cfg_literal_eval(s, strlen(s), v);
    if (r < 0) {
        *why = "integer out of range";
        return -1;
    }
    if (r == 0)
        return 0;
    if (cfg_make_str(v, s, strlen(s)) != 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

/* Decodes one UTF-8 sequence at s (strict: no overlong forms, surrogates or
 * code points above U+10FFFF).  Returns its length and sets *cp, or 0. */
int cfg_utf8_decode(const unsigned char *s, unsigned long *cp)
{
    unsigned char c = s[0];
    int n;
    unsigned long v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned long cp;
        int n = cfg_utf8_decode(p, &cp);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

/* Characters that cannot appear raw inside a quoted YAML scalar and read
 * back unchanged: controls, DEL, C1 controls, the Unicode line and paragraph
 * separators (YAML folds them), BOM and non-characters. */
int cfg_yaml_needs_escape(unsigned long cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF;
}
