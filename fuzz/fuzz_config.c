/*
 * libFuzzer target for the config loader.  Input: YAML text, optionally
 * followed by a NUL and newline-separated KEY VALUE override strings.
 * Properties checked: errors are one line naming the input; a config that
 * loads has every key of its default type (the getters would abort
 * otherwise); its dump reloads and dumps identically.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OV 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, 0, size);
    size_t ylen = nul ? (size_t)(nul - text) : size;
    char *ov[MAX_OV];
    int n_ov = 0;
    char *rest = NULL;
    if (nul) {
        size_t rlen = size - ylen - 1;
        rest = malloc(rlen + 1);
        if (!rest)
            return 0;
        memcpy(rest, nul + 1, rlen);
        rest[rlen] = 0;
        char *p = rest;
        while (n_ov < MAX_OV && p && *p) {
            char *e = strchr(p, '\n');
            if (e)
                *e = 0;
            ov[n_ov++] = p;
            p = e ? e + 1 : NULL;
        }
    }
    char err[1024] = "";
    hcga_config *c = hcga_config_load_string(text, ylen, "fuzz", n_ov, ov, err, sizeof err);
    if (!c) {
        if ((strncmp(err, "fuzz:", 5) != 0 && strncmp(err, "override ", 9) != 0) ||
            strchr(err, '\n'))
            abort();
        free(rest);
        return 0;
    }
    /* types are what the defaults say, whatever the input */
    (void)hcga_cfg_int(c, "MODEL.T");
    (void)hcga_cfg_float(c, "SOLVER.BASE_LR");
    (void)hcga_cfg_str(c, "MODEL.NAME");
    (void)hcga_cfg_bool(c, "TEST.WITH_ARM");
    (void)hcga_cfg_bool(c, "MODEL.IF_WITH_CENTER"); /* a 'yes'/'no' string switch */
    for (int i = 0; i < hcga_cfg_list_len(c, "SOLVER.STEPS"); i++)
        (void)hcga_cfg_list_int(c, "SOLVER.STEPS", i);
    for (int i = 0; i < hcga_cfg_list_len(c, "INPUT.PIXEL_MEAN"); i++)
        (void)hcga_cfg_list_float(c, "INPUT.PIXEL_MEAN", i);
    for (int i = 0; i < hcga_cfg_list_len(c, "MODEL.EXTRA.PRETRAINED_LAYERS"); i++)
        (void)hcga_cfg_list_str(c, "MODEL.EXTRA.PRETRAINED_LAYERS", i);

    char *d1 = hcga_config_dump_string(c);
    if (!d1)
        abort();
    hcga_config *r = hcga_config_load_string(d1, strlen(d1), "dump", 0, NULL, err, sizeof err);
    if (!r)
        abort(); /* a dump must load again */
    char *d2 = hcga_config_dump_string(r);
    if (!d2 || strcmp(d1, d2) != 0)
        abort(); /* and reproduce itself */

    /* the override strings also go through hcga_cfg_set on a clone */
    hcga_config *k = hcga_config_clone(c);
    if (!k)
        abort();
    for (int i = 0; i + 1 < n_ov; i += 2)
        (void)hcga_cfg_set(k, ov[i], ov[i + 1], err, sizeof err);
    hcga_config_free(k);

    free(d1);
    free(d2);
    hcga_config_free(r);
    hcga_config_free(c);
    free(rest);
    return 0;
}
