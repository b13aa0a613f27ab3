/* Tests for the configuration code (frontend/config/: config_*.c, pyliteral.c,
 * yaml_scalar.c, yacs_format.c): built-in defaults, file merge, overrides,
 * type errors with positions, literal evaluation, dump/reload. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "testutil.h"

static char err[2048];

static const char *shared_dir(void)
{
    const char *s = getenv("HCGA_SHARED");
    return s && *s ? s : HCGA_SRCDIR "/../shared";
}

static hcga_config *defaults(void)
{
    hcga_config *c = hcga_config_load(NULL, 0, NULL, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static hcga_config *from_yaml(const char *y)
{
    return hcga_config_load_string(y, strlen(y), "t.yml", 0, NULL, err, sizeof err);
}

static void expect_yaml_error(const char *y, const char *prefix, const char *needle)
{
    err[0] = 0;
    hcga_config *c = from_yaml(y);
    ck_assert_msg(c == NULL, "accepted:\n%s", y);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s': %s", prefix, err);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' not in: %s", needle, err);
    ck_assert_ptr_null(strchr(err, '\n'));
}

/* one override on the defaults */
static hcga_config *with(const char *key, const char *val)
{
    char *ov[2] = {(char *)key, (char *)val};
    return hcga_config_load(NULL, 2, ov, err, sizeof err);
}

static void expect_override_error(const char *key, const char *val, const char *needle)
{
    err[0] = 0;
    hcga_config *c = with(key, val);
    ck_assert_msg(c == NULL, "accepted %s %s", key, val);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "override %s: ", key);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s': %s", prefix, err);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' not in: %s", needle, err);
}

/* Keys hcga adds to the reference's defaults (fast-reid's names for mixed
 * precision); every other key is the reference's, with its value. */
static const char *const OWN_KEYS[] = {
    "SOLVER.AMP.ENABLED",       "SOLVER.AMP.DTYPE",         "SOLVER.AMP.INIT_SCALE",
    "SOLVER.AMP.GROWTH_INTERVAL", "SOLVER.AMP.GROWTH_FACTOR", "SOLVER.AMP.BACKOFF_FACTOR",
    "MODEL.SYNC_BN"};
#define N_OWN_KEYS ((int)(sizeof OWN_KEYS / sizeof OWN_KEYS[0]))

#define MAX_LEAVES 256
typedef char leaf_line[512];

/* The leaves of a dump (nested, two spaces per level) as "A.B.C: value". */
static int dump_leaves(const char *dump, leaf_line *out)
{
    char path[8][128];
    int n = 0;
    const char *p = dump;
    while (*p) {
        const char *e = strchr(p, '\n');
        ck_assert_ptr_nonnull(e);
        int indent = 0;
        while (p[indent] == ' ') indent++;
        int depth = indent / 2;
        ck_assert_int_lt(depth, 8);
        const char *colon = memchr(p, ':', (size_t)(e - p));
        ck_assert_ptr_nonnull(colon);
        snprintf(path[depth], sizeof path[depth], "%.*s", (int)(colon - p - indent), p + indent);
        if (colon + 1 < e) { /* a leaf: "KEY: value" */
            ck_assert_int_lt(n, MAX_LEAVES);
            size_t o = 0;
            for (int i = 0; i <= depth; i++)
                o += (size_t)snprintf(out[n] + o, sizeof out[n] - o, "%s%s", i ? "." : "", path[i]);
            snprintf(out[n] + o, sizeof out[n] - o, "%.*s", (int)(e - colon), colon);
            n++;
        }
        p = e + 1;
    }
    return n;
}

static int is_own_key(const char *leaf)
{
    for (int i = 0; i < N_OWN_KEYS; i++) {
        size_t k = strlen(OWN_KEYS[i]);
        if (strncmp(leaf, OWN_KEYS[i], k) == 0 && leaf[k] == ':') return 1;
    }
    return 0;
}

static int count_leaf_lines(const char *dump)
{
    int n = 0;
    const char *p = dump;
    while (*p) {
        const char *e = strchr(p, '\n');
        ck_assert_ptr_nonnull(e);
        if (e > p && e[-1] != ':')
            n++;
        p = e + 1;
    }
    return n;
}

/* ------------------------------------------------------------- defaults */

START_TEST(test_defaults)
{
    hcga_config *c = defaults();
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.T"), 4);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.SEG_F"), "softmax");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.DEVICE_ID"), "0");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.NAME"), "HRNet32");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.PRETRAIN_PATH"), "");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.IF_WITH_CENTER"), "no");
    ck_assert_int_eq(hcga_cfg_bool(c, "MODEL.IF_WITH_CENTER"), 0);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.IF_LABELSMOOTH"), "on");
    ck_assert_int_eq(hcga_cfg_bool(c, "MODEL.IF_LABELSMOOTH"), 1);
    ck_assert_int_eq(hcga_cfg_bool(c, "MODEL.IF_BIGG"), 0);
    ck_assert_int_eq(hcga_cfg_bool(c, "MODEL.TAG_PER_JOINT"), 1);
    ck_assert_int_eq(hcga_cfg_bool(c, "TEST.FEAT_NORM"), 1);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.NUM_CLASSES"), 1000);
    ck_assert_int_eq(hcga_cfg_list_len(c, "MODEL.IMAGE_SIZE"), 2);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.IMAGE_SIZE", 0), 256);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.IMAGE_SIZE", 1), 128);
    ck_assert_int_eq(hcga_cfg_list_len(c, "MODEL.EXTRA.PRETRAINED_LAYERS"), 1);
    ck_assert_str_eq(hcga_cfg_list_str(c, "MODEL.EXTRA.PRETRAINED_LAYERS", 0), "*");
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.EXTRA.STAGE4.NUM_BRANCHES"), 4);
    ck_assert_int_eq(hcga_cfg_list_len(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS"), 4);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", 3), 256);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.EXTRA.STAGE3.BLOCK"), "BASIC");
    ck_assert_str_eq(hcga_cfg_str(c, "CLUSTERING.AL"), "Kmeans");
    ck_assert_int_eq(hcga_cfg_int(c, "CLUSTERING.STOP"), 101);
    ck_assert_int_eq(hcga_cfg_bool(c, "CLUSTERING.ENHANCED"), 1);
    ck_assert(hcga_cfg_float(c, "DFC.COEF") == 0.04);
    ck_assert(hcga_cfg_float(c, "DFC.DIAG_WEIGHT") == 0.0);
    ck_assert_int_eq(hcga_cfg_bool(c, "DFC.VISULIZE"), 0);
    ck_assert_int_eq(hcga_cfg_int(c, "TRAIN.IGNORE_LABEL"), -1);
    ck_assert_str_eq(hcga_cfg_str(c, "VIS.ENV"), "HumanCo-parsing");
    ck_assert(hcga_cfg_list_float(c, "INPUT.PIXEL_MEAN", 1) == 0.456);
    ck_assert(hcga_cfg_list_float(c, "INPUT.PIXEL_STD", 2) == 0.225);
    ck_assert_str_eq(hcga_cfg_str(c, "DATASETS.ROOT_DIR"), "/mnt/Data/dsg/HPNet/dataset");
    ck_assert_str_eq(hcga_cfg_str(c, "SOLVER.OPTIMIZER_NAME"), "Adam");
    ck_assert(hcga_cfg_float(c, "SOLVER.BASE_LR") == 0.0003);
    ck_assert(hcga_cfg_float(c, "SOLVER.WARMUP_FACTOR") == 1.0 / 3.0);
    ck_assert(hcga_cfg_float(c, "SOLVER.CENTER_LOSS_WEIGHT") == 0.0005);
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.BIAS_LR_FACTOR"), 2);
    ck_assert(hcga_cfg_float(c, "SOLVER.BIAS_LR_FACTOR") == 2.0); /* ints read as floats */
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.CrossE_G_WEIGHT"), 1);
    ck_assert_int_eq(hcga_cfg_list_int(c, "SOLVER.STEPS", 1), 55);
    ck_assert_int_eq(hcga_cfg_int(c, "TEST.IMS_PER_BATCH"), 64);
    ck_assert_int_eq(hcga_cfg_bool(c, "TEST.WITH_ARM"), 0);
    ck_assert_str_eq(hcga_cfg_str(c, "OUTPUT_DIR"), "");
    char *d = hcga_config_dump_string(c);
    /* leaves of the reference's defaults.yml (PyYAML count) + hcga's own keys */
    ck_assert_int_eq(count_leaf_lines(d), 126 + N_OWN_KEYS);
    free(d);
    hcga_config_free(c);
}
END_TEST

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* configs/defaults.yml (embedded) is the golden file plus one block of
 * hcga's own keys (OWN_KEYS), and merging the golden file over the defaults
 * changes nothing. */
START_TEST(test_defaults_match_golden)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/defaults.yml", shared_dir());
    char *golden = read_all(path);
    char *ours = read_all(HCGA_SRCDIR "/configs/defaults.yml");
    /* ours without the blocks of hcga's own keys (SOLVER.AMP, MODEL.SYNC_BN)
     * is the reference's file, byte for byte */
    char *start;
    int blocks = 0;
    /* each block: its comment lines, then one key whose value is a scalar
     * ("  SYNC_BN: false") or a flow mapping ("  AMP: {...}", maybe over
     * several lines) */
    while ((start = strstr(ours, "\n  # hcga's addition"))) {
        char *key = start + 1;
        while (strncmp(key, "  #", 3) == 0) key = strchr(key, '\n') + 1;
        char *end = strchr(key, '\n');
        ck_assert_ptr_nonnull(end);
        char *brace = strchr(key, '{');
        if (brace && brace < end) {
            end = strchr(brace, '}');
            ck_assert_ptr_nonnull(end);
            ck_assert_int_eq(end[1], '\n');
            end++;
        }
        memmove(start, end, strlen(end) + 1);
        blocks++;
    }
    ck_assert_int_eq(blocks, 2);
    size_t i = 0;
    while (ours[i] && ours[i] == golden[i]) i++;
    ck_assert_msg(ours[i] == golden[i], "defaults.yml without hcga's block differs from the "
                  "reference's at byte %zu: '%.40s' vs '%.40s'", i, ours + i, golden + i);
    /* and the block holds exactly OWN_KEYS */
    hcga_config *d0 = defaults();
    char *dd = hcga_config_dump_string(d0);
    hcga_config_free(d0);
    static leaf_line ol[MAX_LEAVES];
    int no = dump_leaves(dd, ol), own = 0;
    for (int i = 0; i < no; i++) own += is_own_key(ol[i]);
    ck_assert_int_eq(own, N_OWN_KEYS);
    ck_assert_int_eq(no, 126 + N_OWN_KEYS);
    free(dd);
    hcga_config *a = defaults();
    hcga_config *b = hcga_config_load(path, 0, NULL, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    char *da = hcga_config_dump_string(a), *db = hcga_config_dump_string(b);
    ck_assert_str_eq(da, db);
    free(da);
    free(db);
    hcga_config_free(a);
    hcga_config_free(b);
    free(golden);
    free(ours);
}
END_TEST

/* --------------------------------------------------------------- files */

static hcga_config *load_cfg(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", HCGA_SRCDIR, name);
    hcga_config *c = hcga_config_load(path, 0, NULL, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

START_TEST(test_config_files)
{
    hcga_config *c = load_cfg("hcga_occluded_duke.yml");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.SEG_F"), "adaptive");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.PRETRAIN_PATH"),
                     "./hrnetv2_w32_imagenet_pretrained.safetensors");
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.EXTRA.STAGE3.NUM_MODULES"), 4);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.EXTRA.STAGE4.NUM_MODULES"), 3);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TRAIN", 0), 256);
    ck_assert_str_eq(hcga_cfg_str(c, "CLUSTERING.AL"), "dfc");
    ck_assert_int_eq(hcga_cfg_int(c, "CLUSTERING.PART_NUM"), 4);
    ck_assert_int_eq(hcga_cfg_bool(c, "CLUSTERING.ENHANCED"), 1); /* untouched default */
    ck_assert_int_eq(hcga_cfg_int(c, "DFC.EPOCH"), 32);
    ck_assert_int_eq(hcga_cfg_int(c, "DFC.MIN_LABEL_NUM"), 18);
    ck_assert(hcga_cfg_float(c, "DFC.PIXEL_WEIGHT") == 2.0);
    ck_assert(hcga_cfg_float(c, "DFC.DIAG_WEIGHT") == 1.0);
    ck_assert_str_eq(hcga_cfg_str(c, "DATASETS.NAMES"), "occluded_dukemtmc");
    ck_assert_str_eq(hcga_cfg_str(c, "DATALOADER.SAMPLER"), "softmax_triplet");
    ck_assert_int_eq(hcga_cfg_int(c, "DATALOADER.NUM_INSTANCE"), 4);
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.MAX_EPOCHS"), 120);
    ck_assert(hcga_cfg_float(c, "SOLVER.BASE_LR") == 0.00035);
    ck_assert(hcga_cfg_float(c, "SOLVER.WEIGHT_DECAY_BIAS") == 0.0005);
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.BIAS_LR_FACTOR"), 1);
    ck_assert(hcga_cfg_float(c, "SOLVER.WARMUP_FACTOR") == 0.01);
    ck_assert_int_eq(hcga_cfg_list_int(c, "SOLVER.STEPS", 0), 40);
    ck_assert_int_eq(hcga_cfg_int(c, "TEST.IMS_PER_BATCH"), 128);
    ck_assert_int_eq(hcga_cfg_bool(c, "TEST.WITH_ARM"), 1);
    ck_assert_str_eq(hcga_cfg_str(c, "TEST.RE_RANKING"), "no");
    hcga_config_free(c);

    c = load_cfg("hrnet_tiny.yml");
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", 0), 8);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", 3), 64);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE2.NUM_BLOCKS", 1), 1);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TEST", 0), 128);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TEST", 1), 64);
    ck_assert(hcga_cfg_float(c, "SOLVER.MARGIN") == 0.3);
    hcga_config_free(c);

    c = load_cfg("hrnet18.yml");
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE2.NUM_CHANNELS", 1), 36);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", 3), 144);
    ck_assert(hcga_cfg_float(c, "SOLVER.BASE_LR") == 0.0003); /* default */
    hcga_config_free(c);

    c = load_cfg("hrnet32.yml");
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE3.NUM_CHANNELS", 2), 128);
    hcga_config_free(c);
    c = load_cfg("hrnet48.yml");
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", 3), 384);
    hcga_config_free(c);

    /* the golden copies are the same files */
    const char *names[] = {"hrnet18.yml", "hrnet32.yml", "hrnet48.yml", "hrnet_tiny.yml",
                           "hcga_occluded_duke.yml"};
    for (int i = 0; i < 5; i++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/configs/%s", HCGA_SRCDIR, names[i]);
        snprintf(b, sizeof b, "%s/golden/%s", shared_dir(), names[i]);
        char *x = read_all(a), *y = read_all(b);
        ck_assert_msg(strcmp(x, y) == 0, "configs/%s differs from the golden copy", names[i]);
        free(x);
        free(y);
    }

    ck_assert_ptr_null(hcga_config_load("/nonexistent/x.yml", 0, NULL, err, sizeof err));
    ck_assert_msg(strncmp(err, "/nonexistent/x.yml: ", 20) == 0, "%s", err);
}
END_TEST

START_TEST(test_yaml_merge)
{
    hcga_config *c = from_yaml("# comment\n"
                               "MODEL:\n"
                               "  T: 0x10\n"             /* YAML hex int */
                               "  NUM_JOINTS: 010\n"     /* YAML 1.1 octal */
                               "  NUM_CLASSES: 1_000\n"
                               "  SIGMA: 1:30\n"         /* YAML 1.1 base 60 */
                               "  DEVICE_ID: '3'\n"      /* quoted: stays a string */
                               "  IF_WITH_CENTER: 'yes'\n"
                               "  EXTRA:\n"
                               "    STAGE2:\n"
                               "      NUM_CHANNELS: (16, 32)\n"
                               "SOLVER:\n"
                               "  BASE_LR: 1e-4\n"       /* plain -> literal eval */
                               "  MOMENTUM: '0.5'\n"     /* quoted, float key: literal eval */
                               "  GAMMA: 1\n"            /* int for a float */
                               "  MARGIN: .25\n"
                               "  CLUSTER_MARGIN: 1_0.5\n"
                               "  STEPS: !!seq [1, 2, 3]\n"
                               "  LOG_PERIOD: !!int 7\n"
                               "TEST: {WITH_ARM: yes, RE_RANKING: 'no', NECK_FEAT: before}\n"
                               "INPUT:\n"
                               "  SIZE_TRAIN: &sz [64, 32]\n"
                               "  SIZE_TEST: *sz\n"
                               "  PIXEL_MEAN: [0, 1, 0.5]\n" /* ints in a float list */
                               "DATASETS:\n"
                               "  ROOT_DIR: |\n"
                               "    /data/x\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.T"), 16);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.NUM_JOINTS"), 8);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.NUM_CLASSES"), 1000);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.SIGMA"), 90);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.DEVICE_ID"), "3");
    ck_assert_int_eq(hcga_cfg_bool(c, "MODEL.IF_WITH_CENTER"), 1);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE2.NUM_CHANNELS", 1), 32);
    ck_assert_int_eq(hcga_cfg_list_int(c, "MODEL.EXTRA.STAGE2.NUM_BLOCKS", 1), 4);
    ck_assert(hcga_cfg_float(c, "SOLVER.BASE_LR") == 1e-4);
    ck_assert(hcga_cfg_float(c, "SOLVER.MOMENTUM") == 0.5);
    ck_assert(hcga_cfg_float(c, "SOLVER.GAMMA") == 1.0);
    ck_assert(hcga_cfg_float(c, "SOLVER.MARGIN") == 0.25);
    ck_assert(hcga_cfg_float(c, "SOLVER.CLUSTER_MARGIN") == 10.5);
    ck_assert_int_eq(hcga_cfg_list_len(c, "SOLVER.STEPS"), 3);
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.LOG_PERIOD"), 7);
    ck_assert_int_eq(hcga_cfg_bool(c, "TEST.WITH_ARM"), 1);
    ck_assert_str_eq(hcga_cfg_str(c, "TEST.NECK_FEAT"), "before");
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TEST", 0), 64);
    ck_assert(hcga_cfg_list_float(c, "INPUT.PIXEL_MEAN", 1) == 1.0);
    ck_assert(hcga_cfg_list_float(c, "INPUT.PIXEL_MEAN", 2) == 0.5);
    ck_assert_str_eq(hcga_cfg_str(c, "DATASETS.ROOT_DIR"), "/data/x\n");
    hcga_config_free(c);

    /* empty documents change nothing */
    c = from_yaml("");
    ck_assert_msg(c != NULL, "%s", err);
    hcga_config_free(c);
    c = from_yaml("# only a comment\n");
    ck_assert_msg(c != NULL, "%s", err);
    hcga_config_free(c);
    c = from_yaml("---\n");
    ck_assert_msg(c != NULL, "%s", err);
    hcga_config_free(c);
}
END_TEST

START_TEST(test_yaml_errors)
{
    expect_yaml_error("MODEL:\n  NAME: HRNet32\n  FOO: 1\n", "t.yml:3:3: ", "unknown key MODEL.FOO");
    expect_yaml_error("MODEL:\n  EXTRA:\n    STAGE2:\n      NUM_CHANEL: [1]\n", "t.yml:4:7: ",
                      "unknown key MODEL.EXTRA.STAGE2.NUM_CHANEL (did you mean "
                      "MODEL.EXTRA.STAGE2.NUM_CHANNELS?)");
    expect_yaml_error("SOLVER:\n  BASE_LR: abc\n", "t.yml:2:12: SOLVER.BASE_LR: ",
                      "expected float, got str 'abc'");
    expect_yaml_error("MODEL: 3\n", "t.yml:1:8: MODEL: ", "section");
    expect_yaml_error("MODEL:\n  T: {A: 1}\n", "t.yml:2:6: MODEL.T: ", "got a mapping");
    expect_yaml_error("MODEL:\n  T: 4\n  T: 5\n", "t.yml:3:3: ", "duplicate key MODEL.T");
    expect_yaml_error("MODEL:\n  T: 2.5\n", "t.yml:2:6: MODEL.T: ", "expected int, got float 2.5");
    expect_yaml_error("MODEL:\n  T: true\n", "t.yml:2:6: MODEL.T: ", "expected int, got bool");
    expect_yaml_error("MODEL:\n  DEVICE_ID: 0\n", "t.yml:2:14: MODEL.DEVICE_ID: ",
                      "expected str, got int 0");
    /* plain no is a YAML bool; the key is a string switch */
    expect_yaml_error("MODEL:\n  IF_WITH_CENTER: no\n", "t.yml:2:19: MODEL.IF_WITH_CENTER: ",
                      "expected str, got bool false");
    expect_yaml_error("MODEL:\n  IF_WITH_CENTER: 'maybe'\n", "t.yml:2:19: ", "yes/no");
    expect_yaml_error("TEST:\n  WITH_ARM: 'true'\n", "t.yml:2:13: TEST.WITH_ARM: ",
                      "expected bool, got str");
    expect_yaml_error("SOLVER:\n  STEPS: 30\n", "t.yml:2:10: SOLVER.STEPS: ",
                      "expected list, got int 30");
    expect_yaml_error("SOLVER:\n  STEPS: [30, x]\n", "t.yml:2:10: SOLVER.STEPS: ",
                      "element 1: expected int, got str 'x'");
    expect_yaml_error("SOLVER:\n  BASE_LR: ~\n", "t.yml:2:12: SOLVER.BASE_LR: ",
                      "None is not allowed");
    expect_yaml_error("SOLVER:\n  BASE_LR: 99999999999999999999999\n", "t.yml:2:12: ",
                      "out of range");
    expect_yaml_error("MODEL:\n  T: !!python/int 4\n", "t.yml:2:6: ", "unsupported YAML tag");
    expect_yaml_error("MODEL:\n  T: !!float 4\n", "t.yml:2:6: MODEL.T: ", "expected int, got float");
    expect_yaml_error("MODEL: [1, 2\n", "t.yml:", "YAML: ");
    expect_yaml_error("MODEL:\n\tT: 4\n", "t.yml:2:", "YAML: ");
    expect_yaml_error("- a\n- b\n", "t.yml:1:1: ", "top level must be a mapping");
    expect_yaml_error("SOLVER: {}\n---\nMODEL: {}\n", "t.yml:3:1: ", "single YAML document");
    expect_yaml_error("? [a]\n: 1\n", "t.yml:1:3: ", "keys must be plain names");
    expect_yaml_error("base: &b {T: 1}\nMODEL:\n  <<: *b\n", "t.yml:1:1: ", "unknown key base");
    expect_yaml_error("MODEL:\n  <<: {T: 1}\n", "t.yml:2:3: ", "merge keys");
    expect_yaml_error("MODEL:\n  NAME: \"a\\0b\"\n", "t.yml:2:9: ", "NUL");
    expect_yaml_error("INPUT:\n  SIZE_TRAIN: &a [1, *a]\n", "t.yml:", "");
}
END_TEST

/* ------------------------------------------------------------ overrides */

START_TEST(test_overrides)
{
    char *ov[] = {"SOLVER.BASE_LR", "1e-4",
                  "SOLVER.MAX_EPOCHS", "10",
                  "INPUT.SIZE_TRAIN", "(64, 32)",
                  "INPUT.SIZE_TEST", "48, 24",
                  "MODEL.NAME", "HRNet48",
                  "TEST.WITH_ARM", "True",
                  "DFC.VISULIZE", "true",
                  "SOLVER.GAMMA", "1",
                  "MODEL.DEVICE_ID", "'1'",
                  "MODEL.IF_WITH_CENTER", "yes",
                  "DATASETS.ROOT_DIR", "/data/with space",
                  "TRAIN.IGNORE_LABEL", "-5",
                  "SOLVER.STEPS", "[]",
                  "MODEL.EXTRA.PRETRAINED_LAYERS", "['conv1', 'layer1']"};
    int n = (int)(sizeof ov / sizeof ov[0]);
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/hrnet32.yml", HCGA_SRCDIR);
    hcga_config *c = hcga_config_load(path, n, ov, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert(hcga_cfg_float(c, "SOLVER.BASE_LR") == 1e-4); /* override beats the file */
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.MAX_EPOCHS"), 10);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TRAIN", 0), 64);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TRAIN", 1), 32);
    ck_assert_int_eq(hcga_cfg_list_int(c, "INPUT.SIZE_TEST", 1), 24);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.NAME"), "HRNet48");
    ck_assert_int_eq(hcga_cfg_bool(c, "TEST.WITH_ARM"), 1);
    ck_assert_int_eq(hcga_cfg_bool(c, "DFC.VISULIZE"), 1);
    ck_assert(hcga_cfg_float(c, "SOLVER.GAMMA") == 1.0);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.DEVICE_ID"), "1");
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.IF_WITH_CENTER"), "yes");
    ck_assert_str_eq(hcga_cfg_str(c, "DATASETS.ROOT_DIR"), "/data/with space");
    ck_assert_int_eq(hcga_cfg_int(c, "TRAIN.IGNORE_LABEL"), -5);
    ck_assert_int_eq(hcga_cfg_list_len(c, "SOLVER.STEPS"), 0);
    ck_assert_str_eq(hcga_cfg_list_str(c, "MODEL.EXTRA.PRETRAINED_LAYERS", 1), "layer1");
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.EXTRA.STAGE3.NUM_MODULES"), 4); /* from the file */

    /* merge_overrides and set on an existing config */
    char *more[] = {"SOLVER.MOMENTUM", "0.8", "MODEL.T", "3"};
    ck_assert_msg(hcga_config_merge_overrides(c, 4, more, err, sizeof err) == 0, "%s", err);
    ck_assert(hcga_cfg_float(c, "SOLVER.MOMENTUM") == 0.8);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.T"), 3);
    /* all or nothing: the bad second pair leaves the first unapplied */
    char *bad[] = {"MODEL.T", "9", "MODEL.NOPE", "1"};
    ck_assert_int_eq(hcga_config_merge_overrides(c, 4, bad, err, sizeof err), -1);
    ck_assert_int_eq(hcga_cfg_int(c, "MODEL.T"), 3);
    ck_assert_int_eq(hcga_cfg_set(c, "SOLVER.IMS_PER_BATCH", "32", err, sizeof err), 0);
    ck_assert_int_eq(hcga_cfg_int(c, "SOLVER.IMS_PER_BATCH"), 32);
    ck_assert_int_eq(hcga_cfg_set(c, "SOLVER.IMS_PER_BATCH", "x", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "SOLVER.IMS_PER_BATCH: expected int, got str 'x'") == err, "%s", err);

    /* clones are independent */
    hcga_config *d = hcga_config_clone(c);
    ck_assert_int_eq(hcga_cfg_set(d, "MODEL.NAME", "Other", err, sizeof err), 0);
    ck_assert_str_eq(hcga_cfg_str(c, "MODEL.NAME"), "HRNet48");
    ck_assert_str_eq(hcga_cfg_str(d, "MODEL.NAME"), "Other");
    hcga_config_free(d);
    hcga_config_free(c);
}
END_TEST

START_TEST(test_override_errors)
{
    expect_override_error("MODEL.FOO", "1", "unknown key");
    expect_override_error("SOLVER.BASE_LRR", "1", "did you mean SOLVER.BASE_LR?");
    expect_override_error("NOPE.X", "1", "unknown key");
    expect_override_error("MODEL", "1", "is a section");
    expect_override_error("MODEL.T", "2.5", "expected int, got float 2.5");
    expect_override_error("MODEL.T", "007", "expected int, got str '007'");
    expect_override_error("MODEL.T", "--1", "expected int, got str '--1'");
    expect_override_error("MODEL.DEVICE_ID", "1", "expected str, got int 1 (quote it");
    expect_override_error("MODEL.NAME", "True", "expected str, got bool");
    expect_override_error("TEST.WITH_ARM", "yes", "expected bool, got str 'yes'");
    expect_override_error("SOLVER.BASE_LR", "None", "None is not allowed");
    expect_override_error("SOLVER.BASE_LR", "1e-4x", "expected float, got str '1e-4x'");
    expect_override_error("SOLVER.STEPS", "[1, 'a']", "element 1: expected int, got str 'a'");
    expect_override_error("SOLVER.STEPS", "[[1]]", "element 0: expected int, got list");
    expect_override_error("SOLVER.STEPS", "5", "expected list, got int 5");
    expect_override_error("MODEL.IF_WITH_CENTER", "maybe", "yes/no");
    expect_override_error("MODEL.T", "99999999999999999999", "out of range");

    expect_override_error("MODEL.NAME", "ab\xff", "not valid UTF-8");
    expect_override_error("MODEL.NAME", "\xc0\x80", "not valid UTF-8"); /* overlong NUL */
    expect_override_error("MODEL.NAME", "\xed\xa0\x80", "not valid UTF-8"); /* surrogate */

    char *odd[] = {"MODEL.T", "1", "MODEL.NAME"};
    ck_assert_ptr_null(hcga_config_load(NULL, 3, odd, err, sizeof err));
    ck_assert_msg(strstr(err, "override MODEL.NAME: missing value") == err, "%s", err);
}
END_TEST

/* Python literal evaluation, checked against what ast.literal_eval gives. */
START_TEST(test_literal_eval)
{
    struct { const char *text; double want; } floats[] = {
        {"1e-4", 1e-4}, {".5", 0.5}, {"5.", 5.0}, {"1_000.5", 1000.5}, {"-2.5e-3", -2.5e-3},
        {"+3", 3.0}, {"1.e5", 1e5}, {"- .5", -0.5}, {"1e1_0", 1e10}, {"(0.25)", 0.25},
        {"  7.5  ", 7.5}, {"1 # comment", 1.0}, {"1E+2", 100.0}, {"0.1", 0.1},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        hcga_config *c = with("SOLVER.BASE_LR", floats[i].text);
        ck_assert_msg(c != NULL, "%s: %s", floats[i].text, err);
        ck_assert_msg(hcga_cfg_float(c, "SOLVER.BASE_LR") == floats[i].want, "%s -> %.17g",
                      floats[i].text, hcga_cfg_float(c, "SOLVER.BASE_LR"));
        hcga_config_free(c);
    }
    struct { const char *text; long long want; } ints[] = {
        {"0x10", 16}, {"0o17", 15}, {"0b101", 5}, {"1_000", 1000}, {"00", 0}, {"0_0", 0},
        {"- 1", -1}, {"-9223372036854775808", -9223372036854775807LL - 1}, {"0X1f", 31},
        {"9223372036854775807", 9223372036854775807LL},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        hcga_config *c = with("MODEL.T", ints[i].text);
        ck_assert_msg(c != NULL, "%s: %s", ints[i].text, err);
        ck_assert_msg(hcga_cfg_int(c, "MODEL.T") == ints[i].want, "%s", ints[i].text);
        hcga_config_free(c);
    }
    struct { const char *text; const char *want; } strs[] = {
        {"'a\\'b'", "a'b"}, {"\"x\\ty\"", "x\ty"}, {"'\\u00e9'", "\xc3\xa9"},
        {"'a' 'b'", "ab"}, {"'''tri'''", "tri"}, {"abc def", "abc def"}, {"1__0", "1__0"},
        {"'\\x41\\101'", "AA"}, {"'\\q'", "\\q"}, {"[1, 2", "[1, 2"}, {"u'x'", "x"},
        {"r'a\\nb'", "a\\nb"},
        {"{'a': 1}", "{'a': 1}"}, {"", ""}, {"'#'", "#"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        hcga_config *c = with("MODEL.NAME", strs[i].text);
        ck_assert_msg(c != NULL, "%s: %s", strs[i].text, err);
        ck_assert_msg(strcmp(hcga_cfg_str(c, "MODEL.NAME"), strs[i].want) == 0, "%s -> %s",
                      strs[i].text, hcga_cfg_str(c, "MODEL.NAME"));
        hcga_config_free(c);
    }
    struct { const char *text; int n; long long first; } lists[] = {
        {"(1,)", 1, 1}, {"()", 0, 0}, {"1, 2", 2, 1}, {"[1, 2,]", 2, 1}, {"[\n 3,\n 4 ]", 2, 3},
        {"(5, 6, 7)", 3, 5}, {"9,", 1, 9},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        hcga_config *c = with("SOLVER.STEPS", lists[i].text);
        ck_assert_msg(c != NULL, "%s: %s", lists[i].text, err);
        ck_assert_int_eq(hcga_cfg_list_len(c, "SOLVER.STEPS"), lists[i].n);
        if (lists[i].n)
            ck_assert_int_eq(hcga_cfg_list_int(c, "SOLVER.STEPS", 0), lists[i].first);
        hcga_config_free(c);
    }
}
END_TEST

/* ------------------------------------------------------------------ dump */

static void check_reload_equal(hcga_config *c)
{
    char *d1 = hcga_config_dump_string(c);
    ck_assert_ptr_nonnull(d1);
    hcga_config *r = hcga_config_load_string(d1, strlen(d1), "dump", 0, NULL, err, sizeof err);
    ck_assert_msg(r != NULL, "dump does not reload: %s\n%s", err, d1);
    char *d2 = hcga_config_dump_string(r);
    ck_assert_str_eq(d1, d2);
    free(d1);
    free(d2);
    hcga_config_free(r);
}

START_TEST(test_dump_reload)
{
    const char *names[] = {"defaults.yml", "hrnet18.yml", "hrnet32.yml", "hrnet48.yml",
                           "hrnet_tiny.yml", "hcga_occluded_duke.yml"};
    for (int i = 0; i < 6; i++) {
        hcga_config *c = load_cfg(names[i]);
        check_reload_equal(c);
        hcga_config_free(c);
    }
    /* awkward values survive a dump and reload */
    char *ov[] = {"MODEL.NAME", "'no'",
                  "MODEL.SEG_F", "'0'",
                  "MODEL.NECK", "\"it's\"",
                  "MODEL.TARGET_TYPE", "'a: b # c'",
                  "MODEL.PRETRAIN_PATH", "'line1\\nline2\\ttab'",
                  "MODEL.PRETRAINED", "'[1, 2]'",
                  "MODEL.METRIC_LOSS_TYPE", "'True'",
                  "MODEL.PRETRAIN_CHOICE", "'1e-4'",
                  "DATASETS.NAMES", "'-x'",
                  "DATASETS.ROOT_DIR", "'\\u00e9t\\u00e9 *&!|>%@`'",
                  "VIS.ENV", "'~'",
                  "TEST.NECK_FEAT", "'a\\u2028b\\x85c\\x06d\\ufeff\\x9f\\u00a0\\U0001f600'",
                  "OUTPUT_DIR", "''",
                  "SOLVER.BASE_LR", "1e-05",
                  "SOLVER.MOMENTUM", "0.1",
                  "SOLVER.MARGIN", "1e16",
                  "SOLVER.GAMMA", "-0.0",
                  "SOLVER.CENTER_LR", "123456789.125",
                  "SOLVER.WARMUP_FACTOR", "2.2250738585072014e-308",
                  "SOLVER.RANGE_MARGIN", "1.7976931348623157e308",
                  "SOLVER.CLUSTER_MARGIN", "5e-324",
                  "TRAIN.IGNORE_LABEL", "-9223372036854775808",
                  "MODEL.EXTRA.PRETRAINED_LAYERS", "['a, b', '', 'x]', \"'\"]",
                  "INPUT.PIXEL_MEAN", "(0.1, 0.2, 0.30000000000000004)"};
    int n = (int)(sizeof ov / sizeof ov[0]);
    hcga_config *c = hcga_config_load(NULL, n, ov, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    char *d = hcga_config_dump_string(c);
    hcga_config *r = hcga_config_load_string(d, strlen(d), "dump", 0, NULL, err, sizeof err);
    ck_assert_msg(r != NULL, "%s\n%s", err, d);
    const char *keys[] = {"MODEL.NAME", "MODEL.SEG_F", "MODEL.NECK", "MODEL.TARGET_TYPE",
                          "MODEL.PRETRAIN_PATH", "MODEL.PRETRAINED", "MODEL.METRIC_LOSS_TYPE",
                          "MODEL.PRETRAIN_CHOICE", "DATASETS.NAMES", "DATASETS.ROOT_DIR",
                          "VIS.ENV", "OUTPUT_DIR"};
    const char *want[] = {"no", "0", "it's", "a: b # c", "line1\nline2\ttab", "[1, 2]", "True",
                          "1e-4", "-x", "\xc3\xa9t\xc3\xa9 *&!|>%@`", "~", ""};
    for (int i = 0; i < 12; i++)
        ck_assert_msg(strcmp(hcga_cfg_str(r, keys[i]), want[i]) == 0, "%s: %s", keys[i],
                      hcga_cfg_str(r, keys[i]));
    /* line separators, C1 controls and BOM are escaped, not folded by YAML */
    ck_assert_str_eq(hcga_cfg_str(r, "TEST.NECK_FEAT"),
                     "a\xe2\x80\xa8" "b\xc2\x85" "c\x06" "d\xef\xbb\xbf\xc2\x9f\xc2\xa0\xf0\x9f\x98\x80");
    const char *fk[] = {"SOLVER.BASE_LR", "SOLVER.MOMENTUM", "SOLVER.MARGIN", "SOLVER.GAMMA",
                        "SOLVER.CENTER_LR", "SOLVER.WARMUP_FACTOR", "SOLVER.RANGE_MARGIN",
                        "SOLVER.CLUSTER_MARGIN"};
    for (int i = 0; i < 8; i++) {
        double a = hcga_cfg_float(c, fk[i]), b = hcga_cfg_float(r, fk[i]);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s: %.17g vs %.17g", fk[i], a, b);
    }
    ck_assert(signbit(hcga_cfg_float(r, "SOLVER.GAMMA")));
    ck_assert_int_eq(hcga_cfg_int(r, "TRAIN.IGNORE_LABEL"), -9223372036854775807LL - 1);
    ck_assert_int_eq(hcga_cfg_list_len(r, "MODEL.EXTRA.PRETRAINED_LAYERS"), 4);
    ck_assert_str_eq(hcga_cfg_list_str(r, "MODEL.EXTRA.PRETRAINED_LAYERS", 0), "a, b");
    ck_assert_str_eq(hcga_cfg_list_str(r, "MODEL.EXTRA.PRETRAINED_LAYERS", 1), "");
    ck_assert_str_eq(hcga_cfg_list_str(r, "MODEL.EXTRA.PRETRAINED_LAYERS", 2), "x]");
    ck_assert_str_eq(hcga_cfg_list_str(r, "MODEL.EXTRA.PRETRAINED_LAYERS", 3), "'");
    ck_assert(hcga_cfg_list_float(r, "INPUT.PIXEL_MEAN", 2) == 0.1 + 0.2);
    /* shortest round-trip floats, written like Python's repr */
    ck_assert_ptr_nonnull(strstr(d, "  BASE_LR: 1e-05\n"));
    ck_assert_ptr_nonnull(strstr(d, "  MOMENTUM: 0.1\n"));
    ck_assert_ptr_nonnull(strstr(d, "  MARGIN: 1e+16\n"));
    ck_assert_ptr_nonnull(strstr(d, "  CENTER_LR: 123456789.125\n"));
    ck_assert_ptr_nonnull(strstr(d, "  NAME: 'no'\n"));
    ck_assert_ptr_nonnull(strstr(d, "  SEG_F: '0'\n"));
    char *d2 = hcga_config_dump_string(r);
    ck_assert_str_eq(d, d2);
    free(d);
    free(d2);
    hcga_config_free(r);
    hcga_config_free(c);

    /* default dump: plain where plain reads back the same */
    c = defaults();
    d = hcga_config_dump_string(c);
    ck_assert_ptr_nonnull(strstr(d, "MODEL:\n  T: 4\n  SEG_F: softmax\n  DEVICE: cuda\n  DEVICE_ID: '0'\n"));
    ck_assert_ptr_nonnull(strstr(d, "    PRETRAINED_LAYERS: ['*']\n"));
    ck_assert_ptr_nonnull(strstr(d, "  WARMUP_FACTOR: 0.3333333333333333\n"));
    ck_assert_ptr_nonnull(strstr(d, "  IMAGE_SIZE: [256, 128]\n"));
    ck_assert_ptr_nonnull(strstr(d, "  PIXEL_MEAN: [0.485, 0.456, 0.406]\n"));
    ck_assert_ptr_nonnull(strstr(d, "OUTPUT_DIR: ''\n"));
    free(d);
    hcga_config_free(c);
}
END_TEST

/* ------------------------------------------------ getters on wrong keys */

START_TEST(test_getter_missing_key_aborts)
{
    hcga_config *c = defaults();
    (void)hcga_cfg_int(c, "MODEL.NOPE");
}
END_TEST

START_TEST(test_getter_wrong_type_aborts)
{
    hcga_config *c = defaults();
    (void)hcga_cfg_int(c, "SOLVER.BASE_LR");
}
END_TEST

START_TEST(test_getter_index_aborts)
{
    hcga_config *c = defaults();
    (void)hcga_cfg_list_int(c, "MODEL.IMAGE_SIZE", 2);
}
END_TEST

START_TEST(test_getter_bool_of_str_aborts)
{
    hcga_config *c = defaults();
    (void)hcga_cfg_bool(c, "MODEL.NAME");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = hcga_test_tcase(s, "core");
    HCGA_ADD_TESTS(tc, test_defaults, test_defaults_match_golden, test_config_files, test_yaml_merge,
                   test_yaml_errors, test_overrides, test_override_errors, test_literal_eval,
                   test_dump_reload);
    TCase *ta = hcga_test_tcase(s, "abort");
    tcase_add_test_raise_signal(ta, test_getter_missing_key_aborts, SIGABRT);
    tcase_add_test_raise_signal(ta, test_getter_wrong_type_aborts, SIGABRT);
    tcase_add_test_raise_signal(ta, test_getter_index_aborts, SIGABRT);
    tcase_add_test_raise_signal(ta, test_getter_bool_of_str_aborts, SIGABRT);
    return s;
}

int main(void)
{
    return hcga_test_run(suite());
}
