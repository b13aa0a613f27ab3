/*
 * config_tree.c - the configuration itself: values (None, bool, int, float,
 * str, list/tuple), the tree of dotted keys that holds them, the yacs type
 * rules a new value must pass against its default (with "did you mean" for
 * unknown keys), and the typed hcga_cfg_* getters, which abort naming the
 * key on a missing key or a wrong type (a programming error: every key the
 * code reads has a default in configs/defaults.yml, which make check's
 * test_config_keys verifies).
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ values */

void cfg_value_free(value *v)
{
    if (v->kind == V_STR)
        free(v->s);
    if (v->kind == V_LIST) {
        for (int i = 0; i < v->n; i++)
            cfg_value_free(&v->items[i]);
        free(v->items);
    }
    memset(v, 0, sizeof *v);
}

static int value_copy(value *dst, const value *src)
{
    *dst = *src;
    dst->s = NULL;
    dst->items = NULL;
    if (src->kind == V_STR) {
        dst->s = strdup(src->s);
        if (!dst->s) {
            dst->kind = V_NONE;
            return -1;
        }
    } else if (src->kind == V_LIST) {
        dst->n = 0;
        if (src->n) {
            dst->items = calloc((size_t)src->n, sizeof(value));
            if (!dst->items) {
                dst->kind = V_NONE;
                return -1;
            }
        }
        for (int i = 0; i < src->n; i++) {
            if (value_copy(&dst->items[i], &src->items[i]) != 0) {
                cfg_value_free(dst);
                return -1;
            }
            dst->n++;
        }
    }
    return 0;
}

int cfg_list_push(value *l, value *item)
{
    if ((l->n & (l->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = l->n ? 2 * (size_t)l->n : 1;
        value *ni = realloc(l->items, cap * sizeof *ni);
        if (!ni)
            return -1;
        l->items = ni;
    }
    l->items[l->n++] = *item;
    memset(item, 0, sizeof *item);
    return 0;
}

const char *cfg_kind_name(const value *v)
{
    switch (v->kind) {
    case V_NONE: return "None";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return v->is_tuple ? "tuple" : "list";
    }
    return "?";
}

static void cnode_free(cnode *n)
{
    free(n->name);
    if (n->is_map) {
        for (int i = 0; i < n->n; i++)
            cnode_free(&n->kids[i]);
        free(n->kids);
    } else {
        cfg_value_free(&n->v);
    }
    memset(n, 0, sizeof *n);
}

static int cnode_copy(cnode *dst, const cnode *src)
{
    memset(dst, 0, sizeof *dst);
    dst->is_map = src->is_map;
    if (src->name && !(dst->name = strdup(src->name)))
        return -1;
    if (!src->is_map) {
        if (value_copy(&dst->v, &src->v) != 0) {
            cnode_free(dst);
            return -1;
        }
        return 0;
    }
    if (src->n) {
        dst->kids = calloc((size_t)src->n, sizeof(cnode));
        if (!dst->kids) {
            cnode_free(dst);
            return -1;
        }
        dst->cap = src->n;
    }
    for (int i = 0; i < src->n; i++) {
        if (cnode_copy(&dst->kids[i], &src->kids[i]) != 0) {
            cnode_free(dst);
            return -1;
        }
        dst->n++;
    }
    return 0;
}

cnode *cfg_cnode_child(const cnode *m, const char *name, size_t len)
{
    for (int i = 0; i < m->n; i++)
        if (strlen(m->kids[i].name) == len && memcmp(m->kids[i].name, name, len) == 0)
            return &m->kids[i];
    return NULL;
}

cnode *cfg_cnode_add_child(cnode *m, const char *name)
{
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 8;
        cnode *nk = realloc(m->kids, (size_t)nc * sizeof *nk);
        if (!nk)
            return NULL;
        m->kids = nk;
        m->cap = nc;
    }
    cnode *k = &m->kids[m->n];
    memset(k, 0, sizeof *k);
    if (!(k->name = strdup(name)))
        return NULL;
    m->n++;
    return k;
}

/* Looks a dotted key up.  Returns NULL when absent. */
cnode *cfg_find(const hcga_config *c, const char *key)
{
    const cnode *m = &c->root;
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!m->is_map)
            return NULL;
        cnode *k = cfg_cnode_child(m, p, len);
        if (!k)
            return NULL;
        if (!dot)
            return k;
        m = k;
        p = dot + 1;
    }
}

/* ----------------------------------------------------------------- errors */

void cfg_set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    /* one line: control characters that came from user text become spaces */
    for (char *q = err; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = ' ';
}

/* ---------------------------------------------------------- type checks */

/* yes/no, on/off, true/false in any case. */
static int word_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", NULL};
    static const char *const f[] = {"false", "no", "off", NULL};
    for (int i = 0; t[i]; i++)
        if (strcasecmp(s, t[i]) == 0) {
            *out = 1;
            return 0;
        }
    for (int i = 0; f[i]; i++)
        if (strcasecmp(s, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    return -1;
}

/* Element kind shared by every item of a default list, or -1. */
static int uniform_kind(const value *l)
{
    if (l->n == 0)
        return -1;
    vkind k = l->items[0].kind;
    for (int i = 1; i < l->n; i++)
        if (l->items[i].kind != k)
            return -1;
    return (int)k;
}

/* Makes nv acceptable for a key whose default is def (converting int to
 * float, list<->tuple).  Returns 0, or -1 with msg set. */
int cfg_coerce(value *nv, const value *def, char *msg, size_t cap)
{
    char d[96];
    if (def->kind == V_NONE)
        return 0;
    if (nv->kind == V_NONE) {
        snprintf(msg, cap, "None is not allowed (expected %s)", cfg_kind_name(def));
        return -1;
    }
    if (def->kind == V_FLOAT && nv->kind == V_INT) {
        nv->kind = V_FLOAT;
        nv->f = (double)nv->i;
        return 0;
    }
    if (def->kind == V_LIST && nv->kind == V_LIST) {
        nv->is_tuple = def->is_tuple;
        int k = uniform_kind(def);
        if (k < 0)
            return 0;
        for (int i = 0; i < nv->n; i++) {
            value *it = &nv->items[i];
            if (k == V_FLOAT && it->kind == V_INT) {
                it->kind = V_FLOAT;
                it->f = (double)it->i;
            } else if ((int)it->kind != k) {
                cfg_describe(it, d, sizeof d);
                snprintf(msg, cap, "element %d: expected %s, got %s", i,
                         cfg_kind_name(&def->items[0]), d);
                return -1;
            } else if (k == V_LIST) {
                char sub[256];
                if (cfg_coerce(it, &def->items[0], sub, sizeof sub) != 0) {
                    snprintf(msg, cap, "element %d: %s", i, sub);
                    return -1;
                }
            }
        }
        return 0;
    }
    if (def->kind == V_STR && nv->kind == V_STR) {
        /* a string switch ('yes'/'no', 'on'/'off') keeps taking those words */
        int b;
        if (word_bool(def->s, &b) == 0 && word_bool(nv->s, &b) != 0) {
            cfg_describe(nv, d, sizeof d);
            snprintf(msg, cap, "expected one of yes/no, on/off, true/false (a str switch), got %s",
                     d);
            return -1;
        }
        return 0;
    }
    if (def->kind == nv->kind)
        return 0;
    cfg_describe(nv, d, sizeof d);
    if (def->kind == V_STR && nv->kind != V_LIST)
        snprintf(msg, cap, "expected str, got %s (quote it to keep it a string)", d);
    else if (def->kind == V_BOOL && nv->kind == V_STR)
        snprintf(msg, cap, "expected bool, got %s (write true or false, unquoted)", d);
    else
        snprintf(msg, cap, "expected %s, got %s", cfg_kind_name(def), d);
    return -1;
}

/* Levenshtein distance, capped (for "did you mean"). */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int c = prev[j - 1] + (toupper((unsigned char)a[i - 1]) != toupper((unsigned char)b[j - 1]));
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

/* " (did you mean X?)" for the closest sibling key, or "". */
void cfg_suggest(const cnode *m, const char *prefix, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    int best = 3;
    const char *bn = NULL;
    for (int i = 0; i < m->n; i++) {
        int d = edit_distance(name, m->kids[i].name);
        if (d < best) {
            best = d;
            bn = m->kids[i].name;
        }
    }
    if (bn)
        snprintf(out, cap, " (did you mean %s%s%s?)", prefix, *prefix ? "." : "", bn);
}

void hcga_config_free(hcga_config *c)
{
    if (!c)
        return;
    cnode_free(&c->root);
    free(c);
}

hcga_config *hcga_config_clone(const hcga_config *c)
{
    if (!c)
        return NULL;
    hcga_config *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (cnode_copy(&d->root, &c->root) != 0) {
        free(d);
        return NULL;
    }
    return d;
}


/* ---------------------------------------------------------------- getters */

static const value *leaf_or_die(const hcga_config *c, const char *key)
{
    const cnode *k = c && key ? cfg_find(c, key) : NULL;
    if (!k) {
        fprintf(stderr, "hcga: config key %s: no such key (programming error)\n",
                key ? key : "(null)");
        abort();
    }
    if (k->is_map) {
        fprintf(stderr, "hcga: config key %s: is a section, not a value (programming error)\n",
                key);
        abort();
    }
    return &k->v;
}

static void die_type(const char *key, const char *want, const value *v)
{
    fprintf(stderr, "hcga: config key %s: expected %s, has %s (programming error)\n", key, want,
            cfg_kind_name(v));
    abort();
}

long long hcga_cfg_int(const hcga_config *c, const char *key)
{
    const value *v = leaf_or_die(c, key);
    if (v->kind != V_INT)
        die_type(key, "int", v);
    return v->i;
}

double hcga_cfg_float(const hcga_config *c, const char *key)
{
    const value *v = leaf_or_die(c, key);
    if (v->kind == V_INT)
        return (double)v->i;
    if (v->kind != V_FLOAT)
        die_type(key, "float", v);
    return v->f;
}

const char *hcga_cfg_str(const hcga_config *c, const char *key)
{
    const value *v = leaf_or_die(c, key);
    if (v->kind != V_STR)
        die_type(key, "str", v);
    return v->s;
}

int hcga_cfg_bool(const hcga_config *c, const char *key)
{
    const value *v = leaf_or_die(c, key);
    if (v->kind == V_BOOL)
        return v->b;
    int b;
    if (v->kind == V_STR && word_bool(v->s, &b) == 0)
        return b;
    die_type(key, "bool or a yes/no, on/off, true/false string", v);
    return 0;
}

static const value *list_or_die(const hcga_config *c, const char *key)
{
    const value *v = leaf_or_die(c, key);
    if (v->kind != V_LIST)
        die_type(key, "list", v);
    return v;
}

int hcga_cfg_list_len(const hcga_config *c, const char *key)
{
    return list_or_die(c, key)->n;
}

static const value *item_or_die(const hcga_config *c, const char *key, int i)
{
    const value *l = list_or_die(c, key);
    if (i < 0 || i >= l->n) {
        fprintf(stderr, "hcga: config key %s: index %d outside the list of %d (programming error)\n",
                key, i, l->n);
        abort();
    }
    return &l->items[i];
}

long long hcga_cfg_list_int(const hcga_config *c, const char *key, int i)
{
    const value *v = item_or_die(c, key, i);
    if (v->kind != V_INT)
        die_type(key, "a list of int", v);
    return v->i;
}

double hcga_cfg_list_float(const hcga_config *c, const char *key, int i)
{
    const value *v = item_or_die(c, key, i);
    if (v->kind == V_INT)
        return (double)v->i;
    if (v->kind != V_FLOAT)
        die_type(key, "a list of float", v);
    return v->f;
}

const char *hcga_cfg_list_str(const hcga_config *c, const char *key, int i)
{
    const value *v = item_or_die(c, key, i);
    if (v->kind != V_STR)
        die_type(key, "a list of str", v);
    return v->s;
}
