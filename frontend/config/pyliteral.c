/*
 * pyliteral.c - Python's ast.literal_eval for configuration text: what yacs
 * does to a KEY VALUE override and to a quoted YAML value whose key is not a
 * string.  Numbers (underscores, 0x/0o/0b, floats; a signed one too),
 * strings (single or double quotes, u/r prefixes, Python's escapes), lists,
 * tuples (a bare "1, 2" too), True/False/None; anything else is "not a
 * literal" and the caller keeps the text as a string.  Nesting and list sizes are bounded
 * (MAX_DEPTH, MAX_ITEMS) so hostile input cannot exhaust the stack or memory.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct lit {
    const char *p, *end;
    int depth;
    long items;
    int range_err; /* an integer literal does not fit in 64 bits */
} lit;

static void lit_ws(lit *L)
{
    while (L->p < L->end) {
        char ch = *L->p;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f') {
            L->p++;
        } else if (ch == '\\' && L->p + 1 < L->end && L->p[1] == '\n') {
            L->p += 2; /* explicit line joining */
        } else if (ch == '#') {
            while (L->p < L->end && *L->p != '\n')
                L->p++;
        } else {
            break;
        }
    }
}

static int is_ident_char(int ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || (unsigned char)ch >= 0x80;
}

/* digits of the given base with single underscores between them; copies the
 * digits (without underscores) into buf.  Returns the count, or -1. */
static int scan_digits(lit *L, int base, char *buf, size_t cap, size_t *blen)
{
    int count = 0;
    int last_us = 1; /* an underscore may not lead */
    while (L->p < L->end) {
        char ch = *L->p;
        int ok;
        if (base == 16)
            ok = isxdigit((unsigned char)ch);
        else if (base == 10)
            ok = ch >= '0' && ch <= '9';
        else if (base == 8)
            ok = ch >= '0' && ch <= '7';
        else
            ok = ch == '0' || ch == '1';
        if (ok) {
            if (*blen + 1 >= cap)
                return -1;
            buf[(*blen)++] = ch;
            count++;
            last_us = 0;
            L->p++;
        } else if (ch == '_' && !last_us && L->p + 1 < L->end) {
            last_us = 1;
            L->p++;
        } else {
            break;
        }
    }
    if (last_us && count > 0)
        return -1; /* trailing underscore */
    return count;
}

/* A Python number (no sign).  Sets v to V_INT or V_FLOAT. */
static int lit_number(lit *L, value *v, int negative)
{
    char buf[512];
    size_t n = 0;
    if (negative)
        buf[n++] = '-';
    if (L->p + 1 < L->end && L->p[0] == '0' && strchr("xXoObB", L->p[1])) {
        int base = (L->p[1] == 'x' || L->p[1] == 'X') ? 16 : (L->p[1] == 'o' || L->p[1] == 'O') ? 8 : 2;
        L->p += 2;
        if (L->p < L->end && *L->p == '_')
            L->p++; /* Python allows 0x_1 */
        if (scan_digits(L, base, buf, sizeof buf, &n) <= 0)
            return -1;
        if (L->p < L->end && is_ident_char(*L->p))
            return -1;
        buf[n] = 0;
        errno = 0;
        char *e;
        unsigned long long u = strtoull(buf + (negative ? 1 : 0), &e, base);
        if (errno == ERANGE || u > (unsigned long long)LLONG_MAX + (negative ? 1u : 0u)) {
            L->range_err = 1;
            return -1;
        }
        v->kind = V_INT;
        v->i = negative ? (long long)(0 - u) : (long long)u;
        return 0;
    }
    int int_digits = scan_digits(L, 10, buf, sizeof buf, &n);
    if (int_digits < 0)
        return -1;
    int is_float = 0;
    if (L->p < L->end && *L->p == '.') {
        is_float = 1;
        L->p++;
        buf[n++] = '.';
        if (L->p < L->end && *L->p == '_')
            return -1;
        int frac = scan_digits(L, 10, buf, sizeof buf, &n);
        if (frac < 0 || (int_digits == 0 && frac == 0))
            return -1;
    } else if (int_digits == 0) {
        return -1;
    }
    if (L->p < L->end && (*L->p == 'e' || *L->p == 'E')) {
        L->p++;
        if (n + 3 >= sizeof buf)
            return -1;
        buf[n++] = 'e';
        if (L->p < L->end && (*L->p == '+' || *L->p == '-'))
            buf[n++] = *L->p++;
        if (scan_digits(L, 10, buf, sizeof buf, &n) <= 0)
            return -1;
        is_float = 1;
    }
    if (L->p < L->end && (is_ident_char(*L->p) || *L->p == '.'))
        return -1; /* 1j, 1abc, 1.2.3 */
    buf[n] = 0;
    if (!is_float) {
        /* Python forbids leading zeros in non-zero decimal integers */
        const char *d = buf + (negative ? 1 : 0);
        if (d[0] == '0') {
            for (const char *q = d; *q; q++)
                if (*q != '0')
                    return -1;
        }
        errno = 0;
        char *e;
        long long x = strtoll(buf, &e, 10);
        if (errno == ERANGE) {
            L->range_err = 1;
            return -1;
        }
        v->kind = V_INT;
        v->i = x;
    } else {
        char *e;
        v->kind = V_FLOAT;
        v->f = strtod(buf, &e); /* overflow gives inf, as Python's float() */
    }
    return 0;
}

static int put_utf8(char **buf, size_t *len, size_t *cap, unsigned long cp)
{
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1; /* NUL cannot live in a C string; surrogates are not UTF-8 */
    if (*len + 5 > *cap) {
        size_t nc = *cap * 2 + 16;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    char *o = *buf + *len;
    if (cp < 0x80) {
        o[0] = (char)cp;
        *len += 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        *len += 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        *len += 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        *len += 4;
    }
    return 0;
}

static int put_byte(char **buf, size_t *len, size_t *cap, char ch)
{
    if (ch == 0)
        return -1;
    if (*len + 2 > *cap) {
        size_t nc = *cap * 2 + 16;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    (*buf)[(*len)++] = ch;
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Where a string literal starts: an optional u/r prefix, then a quote.
 * Returns the prefix length (0 or 1), or -1 when there is none. */
static int string_start(const lit *L)
{
    const char *p = L->p;
    int pre = 0;
    if (p < L->end && strchr("uUrR", *p) && *p) {
        p++;
        pre = 1;
    }
    if (p < L->end && (*p == '\'' || *p == '"'))
        return pre;
    return -1;
}

/* One quoted string (single or double quotes, Python escapes, u and r
 * prefixes); adjacent literals concatenate as in Python. */
static int lit_string(lit *L, value *v)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int any = 0;
    int pre;
    while ((pre = string_start(L)) >= 0) {
        int raw = pre && (*L->p == 'r' || *L->p == 'R');
        L->p += pre;
        char q = *L->p++;
        any = 1;
        for (;;) {
            if (L->p >= L->end || *L->p == '\n')
                goto bad;
            char ch = *L->p++;
            if (ch == q)
                break;
            if (ch != '\\') {
                if (put_byte(&buf, &len, &cap, ch) != 0)
                    goto bad;
                continue;
            }
            if (L->p >= L->end)
                goto bad;
            char e = *L->p++;
            if (raw) { /* r'..': the backslash stays; \' does not end it */
                if (put_byte(&buf, &len, &cap, '\\') != 0 || put_byte(&buf, &len, &cap, e) != 0)
                    goto bad;
                continue;
            }
            unsigned long cp;
            int nd;
            switch (e) {
            case '\n': continue;
            case '\\': case '\'': case '"':
                if (put_byte(&buf, &len, &cap, e) != 0) goto bad;
                continue;
            case 'n': cp = '\n'; break;
            case 't': cp = '\t'; break;
            case 'r': cp = '\r'; break;
            case 'a': cp = '\a'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'v': cp = '\v'; break;
            case 'x': nd = 2; goto hex;
            case 'u': nd = 4; goto hex;
            case 'U': nd = 8;
            hex:
                cp = 0;
                for (int k = 0; k < nd; k++) {
                    if (L->p >= L->end || hexval(*L->p) < 0)
                        goto bad;
                    cp = cp * 16 + (unsigned long)hexval(*L->p++);
                }
                break;
            default:
                if (e >= '0' && e <= '7') {
                    cp = (unsigned long)(e - '0');
                    for (int k = 0; k < 2 && L->p < L->end && *L->p >= '0' && *L->p <= '7'; k++)
                        cp = cp * 8 + (unsigned long)(*L->p++ - '0');
                    break;
                }
                /* unknown escape: kept as written */
                if (put_byte(&buf, &len, &cap, '\\') != 0 || put_byte(&buf, &len, &cap, e) != 0)
                    goto bad;
                continue;
            }
            if (put_utf8(&buf, &len, &cap, cp) != 0)
                goto bad;
        }
        const char *save = L->p;
        lit_ws(L);
        if (string_start(L) < 0)
            L->p = save;
    }
    if (!any)
        goto bad;
    if (L->p < L->end && is_ident_char(*L->p))
        goto bad;
    if (!buf && !(buf = malloc(1)))
        return -1;
    buf[len] = 0;
    v->kind = V_STR;
    v->s = buf;
    return 0;
bad:
    free(buf);
    return -1;
}

static int lit_expr(lit *L, value *v);

/* Elements up to the closing bracket; *had_comma tells whether a comma was
 * seen (a parenthesised single value is not a tuple). */
static int lit_seq(lit *L, char close, value *v, int *had_comma)
{
    v->kind = V_LIST;
    *had_comma = 0;
    lit_ws(L);
    while (L->p < L->end && *L->p != close) {
        value item = {0};
        if (lit_expr(L, &item) != 0)
            return -1;
        if (++L->items > MAX_ITEMS || cfg_list_push(v, &item) != 0) {
            cfg_value_free(&item);
            return -1;
        }
        lit_ws(L);
        if (L->p < L->end && *L->p == ',') {
            *had_comma = 1;
            L->p++;
            lit_ws(L);
        } else {
            break;
        }
    }
    if (L->p >= L->end || *L->p != close)
        return -1;
    L->p++;
    return 0;
}

static int lit_word(lit *L, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(L->end - L->p) >= n && memcmp(L->p, w, n) == 0 &&
        (L->p + n == L->end || !is_ident_char(L->p[n]))) {
        L->p += n;
        return 1;
    }
    return 0;
}

static int lit_expr(lit *L, value *v)
{
    memset(v, 0, sizeof *v);
    if (++L->depth > MAX_DEPTH)
        return -1;
    int rc = -1;
    lit_ws(L);
    if (L->p >= L->end)
        goto out;
    char ch = *L->p;
    if (ch == '[') {
        L->p++;
        int comma;
        rc = lit_seq(L, ']', v, &comma);
    } else if (ch == '(') {
        L->p++;
        int comma;
        value t = {0};
        rc = lit_seq(L, ')', &t, &comma);
        if (rc == 0 && t.n == 1 && !comma) { /* (x) is x */
            *v = t.items[0];
            free(t.items);
        } else {
            t.is_tuple = 1;
            *v = t;
        }
    } else if (string_start(L) >= 0) {
        rc = lit_string(L, v);
    } else if (ch == '-' || ch == '+') {
        L->p++;
        lit_ws(L);
        if (L->p < L->end && (isdigit((unsigned char)*L->p) || *L->p == '.'))
            rc = lit_number(L, v, ch == '-');
    } else if (isdigit((unsigned char)ch) || ch == '.') {
        rc = lit_number(L, v, 0);
    } else if (lit_word(L, "True")) {
        v->kind = V_BOOL;
        v->b = 1;
        rc = 0;
    } else if (lit_word(L, "False")) {
        v->kind = V_BOOL;
        rc = 0;
    } else if (lit_word(L, "None")) {
        v->kind = V_NONE;
        rc = 0;
    }
out:
    L->depth--;
    if (rc != 0)
        cfg_value_free(v);
    return rc;
}

/* Python's ast.literal_eval on text.  Returns 0 with *v set, 1 when text is
 * not a literal (the caller keeps it as a string), -1 when an integer is out
 * of range. */
int cfg_literal_eval(const char *text, size_t len, value *v)
{
    lit L = {text, text + len, 0, 0, 0};
    while (L.p < L.end && (*L.p == ' ' || *L.p == '\t'))
        L.p++;
    value first = {0};
    if (lit_expr(&L, &first) != 0)
        return L.range_err ? -1 : 1;
    lit_ws(&L);
    if (L.p < L.end && *L.p == ',') { /* bare tuple: 1, 2 */
        value t = {0};
        t.kind = V_LIST;
        t.is_tuple = 1;
        if (cfg_list_push(&t, &first) != 0) {
            cfg_value_free(&first);
            return 1;
        }
        while (L.p < L.end && *L.p == ',') {
            L.p++;
            lit_ws(&L);
            if (L.p >= L.end)
                break;
            value item;
            if (lit_expr(&L, &item) != 0 || cfg_list_push(&t, &item) != 0) {
                cfg_value_free(&t);
                return L.range_err ? -1 : 1;
            }
            lit_ws(&L);
        }
        first = t;
    }
    if (L.p != L.end) {
        cfg_value_free(&first);
        return 1;
    }
    *v = first;
    return 0;
}
