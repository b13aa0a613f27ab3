/*
 * config.h - yacs-compatible configuration (the reference's YAML configs).
 *
 * Built-in defaults equal ../shared/golden/defaults.yml (embedded at build
 * time).  A YAML file is merged over them, then KEY VALUE overrides from the
 * command line.  As in yacs: every key must already exist in the defaults
 * (unknown key -> error naming it); a value must keep the default's type
 * (int/float/str/bool/list; an int may be given where a float is expected;
 * lists and tuples interchange); strings from the command line are literal-
 * evaluated ("1e-4" is a float, "[256, 128]" or "(256, 128)" a list).
 * Errors are one line: "FILE:LINE:COL: KEY: problem" or "override KEY: problem".
 */
#ifndef HCGA_CONFIG_H
#define HCGA_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct hcga_config hcga_config;

/* path may be NULL (defaults only).  overrides: n_over strings alternating
 * KEY VALUE (n_over even).  Returns NULL and writes err on failure. */
hcga_config *hcga_config_load(const char *path, int n_over, char *const *overrides,
                              char *err, size_t err_len);
/* Same, from YAML text in memory (for checkpoints' embedded config, fuzzing). */
hcga_config *hcga_config_load_string(const char *yaml, size_t len, const char *what,
                                     int n_over, char *const *overrides,
                                     char *err, size_t err_len);
void hcga_config_free(hcga_config *c);
hcga_config *hcga_config_clone(const hcga_config *c);
/* Apply KEY VALUE overrides to an existing config. */
int hcga_config_merge_overrides(hcga_config *c, int n_over, char *const *overrides,
                                char *err, size_t err_len);

/* Typed getters by dotted key.  A missing key or wrong type aborts with a
 * message naming the key (programming error: every key has a default). */
long long hcga_cfg_int(const hcga_config *c, const char *key);
double hcga_cfg_float(const hcga_config *c, const char *key);   /* ints convert */
const char *hcga_cfg_str(const hcga_config *c, const char *key);
int hcga_cfg_bool(const hcga_config *c, const char *key);       /* true/false; 'yes'/'no'/'on'/'off' strings too */
int hcga_cfg_list_len(const hcga_config *c, const char *key);
long long hcga_cfg_list_int(const hcga_config *c, const char *key, int i);
double hcga_cfg_list_float(const hcga_config *c, const char *key, int i);
const char *hcga_cfg_list_str(const hcga_config *c, const char *key, int i);

/* Set a value programmatically (same type rules as an override). */
int hcga_cfg_set(hcga_config *c, const char *key, const char *value, char *err, size_t err_len);

/* Print the merged config as YAML (loadable again by hcga_config_load). */
void hcga_config_dump(const hcga_config *c, FILE *f);
/* The same into a malloc'd string (for checkpoint metadata). */
char *hcga_config_dump_string(const hcga_config *c);

#endif
