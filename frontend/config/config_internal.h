/*
 * config_internal.h - what the parts of the configuration code share: the
 * value and key-tree types behind hcga_config and the functions one part
 * calls in another.  Only the frontend's config*.c, pyliteral.c,
 * yaml_scalar.c and yacs_format.c include it; everything else uses config.h.
 *
 *   config_tree.c   values, the key tree, type checks and the typed getters
 *   config_load.c   defaults, YAML merge, KEY VALUE overrides, the load API
 *   pyliteral.c     Python's ast.literal_eval (yacs's value decoding)
 *   yaml_scalar.c   YAML 1.1 plain-scalar typing (PyYAML's safe_load) and UTF-8
 *   yacs_format.c   values and trees written back as YAML (hcga config show)
 */
#ifndef HCGA_CONFIG_INTERNAL_H
#define HCGA_CONFIG_INTERNAL_H

#include "config/config.h"

#include <stddef.h>

#define MAX_DEPTH 64         /* nesting of lists / mappings */
#define MAX_ITEMS 100000     /* list elements converted for one file or value */

/* ------------------------------------------------------------------ values */

typedef enum vkind { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST } vkind;

typedef struct value {
    vkind kind;
    int is_tuple; /* V_LIST */
    int b;
    long long i;
    double f;
    char *s;
    int n;
    struct value *items;
} value;

typedef struct cnode {
    char *name;
    int is_map;
    value v;      /* leaf */
    int n, cap;   /* map */
    struct cnode *kids;
} cnode;

struct hcga_config {
    cnode root;
};

/* ---------------------------------------------------- config_tree.c */

void cfg_value_free(value *v);
/* Appends *item to list l (taking it over: *item is zeroed). */
int cfg_list_push(value *l, value *item);
/* "int", "str", "tuple", ... for messages. */
const char *cfg_kind_name(const value *v);
cnode *cfg_cnode_child(const cnode *m, const char *name, size_t len);
cnode *cfg_cnode_add_child(cnode *m, const char *name);
/* Looks a dotted key up.  Returns NULL when absent. */
cnode *cfg_find(const hcga_config *c, const char *key);
/* Writes a one-line message into err (control characters become spaces). */
void cfg_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Makes nv acceptable for a key whose default is def (converting int to
 * float, list<->tuple).  Returns 0, or -1 with msg set. */
int cfg_coerce(value *nv, const value *def, char *msg, size_t cap);
/* " (did you mean X?)" for the closest sibling key, or "". */
void cfg_suggest(const cnode *m, const char *prefix, const char *name, char *out, size_t cap);

/* ------------------------------------------------------ pyliteral.c */

/* Python's ast.literal_eval on text.  Returns 0 with *v set, 1 when text is
 * not a literal (the caller keeps it as a string), -1 when an integer is out
 * of range. */
int cfg_literal_eval(const char *text, size_t len, value *v);

/* ---------------------------------------------------- yaml_scalar.c */

/* v becomes a copy of s[0..len) as V_STR.  Returns 0, or -1 (out of memory). */
int cfg_make_str(value *v, const char *s, size_t len);
/* Plain scalar -> typed value.  Returns 0, or -1 with why set. */
int cfg_resolve_plain(const char *s, size_t len, value *v, const char **why);
/* Command-line text -> value (yacs's _decode_cfg_value). */
int cfg_decode_text(const char *s, value *v, const char **why);
/* One strict UTF-8 sequence at s: its length with *cp set, or 0. */
int cfg_utf8_decode(const unsigned char *s, unsigned long *cp);
/* Code points that a quoted YAML scalar must escape. */
int cfg_yaml_needs_escape(unsigned long cp);

/* ---------------------------------------------------- yacs_format.c */

/* Short description of a value for error messages ("str 'abc'", "int 3"). */
void cfg_describe(const value *v, char *out, size_t cap);

#endif
