/*
 * Writes the seed corpora for `make fuzz`: small valid safetensors files
 * (every dtype, metadata, 0-rank and empty tensors) into ST_DIR and config
 * inputs (YAML, YAML + overrides) into CFG_DIR.  The reference configs are
 * copied by the make rule.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void save(st_writer *w, const char *dir, const char *name)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (st_writer_save(w, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    st_writer_free(w);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds ST_DIR CFG_DIR\n");
        return 2;
    }
    const char *sd = argv[1], *cd = argv[2];
    unsigned char bytes[64];
    for (int i = 0; i < 64; i++)
        bytes[i] = (unsigned char)(i * 37 + 1);

    st_writer *w = st_writer_new();
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s0[2] = {3, 0}, s1111[4] = {1, 1, 2, 1};
    st_writer_add(w, "conv.weight", ST_F32, 4, s1111, bytes);
    st_writer_add(w, "bn.running_mean", ST_F32, 2, s23, bytes);
    st_writer_add(w, "d", ST_F64, 1, s4, bytes);
    st_writer_add(w, "h", ST_F16, 1, s4, bytes);
    st_writer_add(w, "bf", ST_BF16, 1, s4, bytes);
    st_writer_add(w, "i64", ST_I64, 1, s4, bytes);
    st_writer_add(w, "i32", ST_I32, 2, s23, bytes);
    st_writer_add(w, "i16", ST_I16, 1, s4, bytes);
    st_writer_add(w, "i8", ST_I8, 1, s4, bytes);
    st_writer_add(w, "u8", ST_U8, 2, s23, bytes);
    st_writer_add(w, "mask", ST_BOOL, 1, s4, bytes);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, bytes);
    st_writer_add(w, "empty", ST_F32, 2, s0, NULL);
    st_writer_meta(w, "format", "pt");
    st_writer_meta(w, "config", "MODEL:\n  T: 4\n");
    save(w, sd, "all_dtypes.safetensors");

    w = st_writer_new();
    st_writer_add(w, "w", ST_F32, 1, s4, bytes);
    save(w, sd, "one.safetensors");

    w = st_writer_new();
    save(w, sd, "none.safetensors");

    w = st_writer_new();
    st_writer_meta(w, "only", "metadata");
    save(w, sd, "meta_only.safetensors");

    /* a gap between tensors and unsorted offsets: valid to read */
    static const char gap[] =
        "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]},"
        "\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char buf[256] = {0};
    uint64_t n = sizeof gap - 1;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, gap, n);
    write_file(sd, "gap.safetensors", buf, 8 + n + 10);

    static const struct { const char *name; const char *text; size_t len; } cfg[] = {
#define SEED(name, s) {name, s, sizeof s - 1}
        SEED("empty.yml", ""),
        SEED("flow.yml", "MODEL: {T: 3, NAME: x, EXTRA: {STAGE2: {NUM_CHANNELS: [1, 2]}}}\n"),
        SEED("scalars.yml", "SOLVER:\n  BASE_LR: 1e-4\n  GAMMA: .5\n  STEPS: (1, 2)\n"
                            "  MAX_EPOCHS: 0x10\n  LOG_PERIOD: 1:30\n"
                            "MODEL:\n  DEVICE_ID: '1'\n  IF_WITH_CENTER: 'yes'\n"
                            "TEST: {WITH_ARM: yes}\n"),
        SEED("anchors.yml", "INPUT:\n  SIZE_TRAIN: &s [64, 32]\n  SIZE_TEST: *s\n"
                            "  PIXEL_MEAN: !!seq [0.1, 0.2, 0.3]\n"),
        SEED("block.yml", "DATASETS:\n  ROOT_DIR: |\n    /data\n  NAMES: >\n    a\n    b\n"),
        SEED("override.txt", "MODEL:\n  T: 2\n\0SOLVER.BASE_LR\n1e-4\nINPUT.SIZE_TRAIN\n(64, 32)\n"
                             "MODEL.NAME\n'quoted \\u00e9'\nSOLVER.STEPS\n[1, 2,]\n"),
        SEED("override2.txt", "\0MODEL.DEVICE_ID\n'3'\nTEST.WITH_ARM\ntrue\n"
                              "MODEL.EXTRA.PRETRAINED_LAYERS\n['a', \"b\"]\n"),
#undef SEED
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        write_file(cd, cfg[i].name, cfg[i].text, cfg[i].len);
    return 0;
}
