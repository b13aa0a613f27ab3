/*
 * hcga.h - libhcga, the C API for deploying an HCGA person re-identification
 * model: load a checkpoint written by `hcga train` (or a converted reference
 * state dict plus its config) on a backend, turn 8-bit RGB images of any
 * size into features, compare a query set with a gallery, and keep a gallery
 * in a file.  Link with `pkg-config --cflags --libs hcga`; man 3 hcga.
 *
 * Conventions
 *  - Every function that can fail returns an hcga_result; HCGA_SUCCESS is 0.
 *    The one-line message of the last failure is kept in the context the
 *    call used (hcga_context_error); there is no global error state.
 *  - Handles are opaque.  A context and everything made from it (models,
 *    galleries) may be used by one thread at a time; different contexts are
 *    independent and may be used from different threads at once.  Functions
 *    marked "pure" touch no handle and may be called from any thread.
 *  - Parameter structs start with `struct_size`; get them from the
 *    *_default_params() function of the library you run with and change the
 *    fields you need.  A struct whose struct_size differs from the library's
 *    (a program built against another version of this header) is refused
 *    with HCGA_ERROR_ARGUMENT, never misread.  Adding a field is a new
 *    SONAME (libhcga.so.N).
 *  - Images are 8-bit RGB, row-major, any size: resizing to the model's
 *    input (bilinear, as PIL does) and the normalisation by the model's
 *    INPUT.PIXEL_MEAN / PIXEL_STD happen inside, exactly as `hcga test` does.
 *  - Features are float32; arrays are row-major and owned by the caller
 *    unless a function says otherwise.
 */
#ifndef HCGA_HCGA_H
#define HCGA_HCGA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HCGA_API __attribute__((visibility("default")))
#else
#define HCGA_API
#endif

/* ---- version ------------------------------------------------------------ */

#define HCGA_VERSION_MAJOR 0
#define HCGA_VERSION_MINOR 3
#define HCGA_VERSION_PATCH 0

/* The library's version as MAJOR * 10000 + MINOR * 100 + PATCH; compare it
 * with the HCGA_VERSION_* macros of the header a program was built with.
 * Pure. */
HCGA_API int hcga_version(void);
/* The same as "MAJOR.MINOR.PATCH".  Pure; the string is static. */
HCGA_API const char *hcga_version_string(void);

/* ---- results ------------------------------------------------------------- */

typedef enum hcga_result {
    HCGA_SUCCESS = 0,
    HCGA_ERROR_ARGUMENT = 1, /* NULL pointer, bad size, bad image, wrong struct_size */
    HCGA_ERROR_IO = 2,       /* a file could not be read or written */
    HCGA_ERROR_FORMAT = 3,   /* a file is not what it should be (truncated, corrupt) */
    HCGA_ERROR_MISMATCH = 4, /* a file belongs to another model (checkpoint, gallery) */
    HCGA_ERROR_BACKEND = 5,  /* the backend could not be opened or failed */
    HCGA_ERROR_MEMORY = 6    /* out of memory */
} hcga_result;

/* A short name for a result ("success", "bad argument", ...).  Pure. */
HCGA_API const char *hcga_result_string(hcga_result r);

/* ---- context ------------------------------------------------------------- */

typedef struct hcga_context hcga_context;

typedef struct hcga_context_params {
    uint32_t struct_size; /* sizeof(hcga_context_params) */
    const char *backend;  /* plugin name: "cpu" (default), "opencl", "cuda", ... */
    int device;           /* device index of the backend (default 0) */
    int threads;          /* host threads for decoding, and the backend's threads=N; 0: all cores */
    const char *options;  /* backend options "key=value,..." as --backend-opts; NULL: none */
} hcga_context_params;

/* Defaults: backend "cpu", device 0, threads 0, no options.  Pure. */
HCGA_API hcga_context_params hcga_context_default_params(void);

/* Open the backend.  *out is set whenever memory allows, also on failure
 * (then it only holds the message: read hcga_context_error, then free it),
 * as sqlite3_open does.  params may be NULL for the defaults.  Plugins are
 * searched in $HCGA_PLUGIN_PATH, then the installed plugin directory. */
HCGA_API hcga_result hcga_context_new(const hcga_context_params *params, hcga_context **out);
/* Free a context; its models and galleries must be freed first.  NULL is
 * accepted. */
HCGA_API void hcga_context_free(hcga_context *ctx);
/* The message of the last failed call on ctx (or on a model or gallery of
 * it), "" when none failed.  Valid until the next call on ctx.  NULL ctx
 * gives a static message saying so. */
HCGA_API const char *hcga_context_error(const hcga_context *ctx);
/* The backend's name and its device's name ("cpu", "OpenBLAS, 2 threads"). */
HCGA_API hcga_result hcga_context_backend(hcga_context *ctx, const char **name, const char **device);

/* ---- model --------------------------------------------------------------- */

typedef struct hcga_model hcga_model;

typedef enum hcga_precision {
    HCGA_PRECISION_F32 = 0,  /* float32 throughout (default; what `hcga test` does) */
    HCGA_PRECISION_BF16 = 1, /* convolutions and GEMMs in bfloat16, F32 accumulation */
    HCGA_PRECISION_F16 = 2   /* the same in float16 */
} hcga_precision;

typedef struct hcga_model_params {
    uint32_t struct_size;  /* sizeof(hcga_model_params) */
    const char *config;    /* YAML config file; NULL: the one stored in the checkpoint
                              (a converted reference state dict has none: give it) */
    const char *const *overrides; /* n_overrides KEY, VALUE pairs applied to the config, */
    int n_overrides;              /* as on the hcga command line (e.g. "TEST.FEAT_NORM", "no") */
    hcga_precision precision;
    int batch;             /* images per forward pass; 0: TEST.IMS_PER_BATCH of the config */
    int flip;              /* 1: average with the features of the mirrored image */
} hcga_model_params;

/* Defaults: config from the checkpoint, no overrides, F32, batch 0, flip 0.
 * Pure. */
HCGA_API hcga_model_params hcga_model_default_params(void);

/* Load weights (a safetensors checkpoint of `hcga train`, or a reference
 * state dict converted to safetensors) and build the eval graph on ctx's
 * backend.  params may be NULL for the defaults.  A file of another model
 * (missing or extra tensors, other shapes) is HCGA_ERROR_MISMATCH; a
 * truncated or corrupt file HCGA_ERROR_FORMAT. */
HCGA_API hcga_result hcga_model_load(hcga_context *ctx, const char *weights,
                                     const hcga_model_params *params, hcga_model **out);
/* NULL is accepted. */
HCGA_API void hcga_model_free(hcga_model *m);

typedef struct hcga_model_info {
    uint32_t struct_size;  /* set by the library */
    int input_height, input_width; /* INPUT.SIZE_TEST: every image is resized to it */
    int num_parts;         /* K-1 body parts (the background is not a part) */
    int dim;               /* foreground and part feature size */
    int global_dim;        /* global feature size */
    int batch;             /* images per forward pass */
    int arm;               /* TEST.WITH_ARM: ARM is the model's default matching */
    int feat_norm;         /* TEST.FEAT_NORM: global features are L2-normalised for matching */
    uint64_t fingerprint;  /* identifies the weights and the config keys that decide the
                              features (architecture, test size and normalisation, parts,
                              precision; not paths or batch sizes): galleries carry it */
} hcga_model_info;

/* Writes the whole struct (the library's size, set in info->struct_size):
 * like the params structs it changes only with the SONAME. */
HCGA_API hcga_result hcga_model_get_info(hcga_model *m, hcga_model_info *info);

/* ---- features ------------------------------------------------------------ */

/* A view of an 8-bit RGB image, owned by the caller. */
typedef struct hcga_image_view {
    const uint8_t *pixels; /* row-major, interleaved R, G, B */
    int width, height;     /* 1 .. 65535 each */
    int channels;          /* must be 3 */
    size_t stride;         /* bytes from one row to the next; 0: 3 * width */
} hcga_image_view;

/* Features of n images (rows), in caller-owned arrays.  The model's
 * hcga_model_info gives the sizes; hcga_embeddings_alloc allocates all four.
 *   fore    [n][dim]              BN'ed foreground feature
 *   parts   [n][num_parts][dim]   BN'ed part features
 *   global  [n][global_dim]       BN'ed global feature
 *   visible [n][num_parts]        1 when the part was predicted somewhere, else 0
 * Any of the four may be NULL in hcga_extract (that output is not stored);
 * matching reads only the arrays its metric uses. */
typedef struct hcga_embeddings {
    int n, num_parts, dim, global_dim;
    float *fore;
    float *parts;
    float *global;
    uint8_t *visible;
} hcga_embeddings;

/* Allocate (zeroed) arrays for n rows of m's features; free them with
 * hcga_embeddings_free. */
HCGA_API hcga_result hcga_embeddings_alloc(hcga_model *m, int n, hcga_embeddings *e);
/* Free arrays from hcga_embeddings_alloc (or from hcga_gallery_load's
 * copy) and zero the struct.  NULL is accepted.  Pure. */
HCGA_API void hcga_embeddings_free(hcga_embeddings *e);

/* Features of n images into rows first_row .. first_row+n-1 of out (whose
 * sizes must be m's; out->n >= first_row + n).  Runs the eval graph in
 * batches of the model's batch size.  An image's features are bit-identical
 * to `hcga test`'s when it sits at the same position of a batch of the same
 * size; elsewhere they differ by rounding (about 1e-6 relative on the cpu
 * backend: the GEMMs block differently). */
HCGA_API hcga_result hcga_extract(hcga_model *m, const hcga_image_view *images, int n,
                                  hcga_embeddings *out, int first_row);
/* The same for image files (JPEG or PNG, decoded as the dataset reader
 * does; gray and palette PNGs become RGB).  An unreadable file names it. */
HCGA_API hcga_result hcga_extract_files(hcga_model *m, const char *const *paths, int n,
                                        hcga_embeddings *out, int first_row);

/* ---- matching ------------------------------------------------------------ */

typedef enum hcga_metric {
    HCGA_METRIC_ARM = 0,   /* foreground + parts visible in both (HCGA.md section 6) */
    HCGA_METRIC_GLOBAL = 1 /* global features, squared Euclidean */
} hcga_metric;

typedef struct hcga_match_params {
    uint32_t struct_size; /* sizeof(hcga_match_params) */
    hcga_metric metric;   /* default ARM */
    int feat_norm;        /* GLOBAL: L2-normalise first (default 1, as TEST.FEAT_NORM "yes") */
    int rerank;           /* hcga_distances only: k-reciprocal re-ranking (default 0) */
    int k1, k2;           /* re-ranking: 20, 6 */
    double lambda;        /* re-ranking: 0.3 */
} hcga_match_params;

/* Pure. */
HCGA_API hcga_match_params hcga_match_default_params(void);

/* Distances dist[nq][ng] between query rows and gallery rows (smaller is
 * more similar): GLOBAL gives the squared Euclidean distance, ARM the
 * negated similarity  -((1+cos(fore))/2 + sum over parts visible in both of
 * (1+cos(part))/2), exactly as `hcga test` ranks.  params may be NULL. */
HCGA_API hcga_result hcga_distances(hcga_context *ctx, const hcga_embeddings *query,
                                    const hcga_embeddings *gallery, const hcga_match_params *params,
                                    float *dist);

/* The k nearest gallery rows of each query row: index[q][j] (ascending
 * distance, ties by gallery row) and their distances dist[q][j] (may be
 * NULL).  When k exceeds the gallery, the rest is -1 / INFINITY.  The
 * gallery is scored in blocks with the backend's GEMM, so memory stays
 * bounded for any gallery size.  No re-ranking (params->rerank must be 0). */
HCGA_API hcga_result hcga_search(hcga_model *m, const hcga_embeddings *query,
                                 const hcga_embeddings *gallery, const hcga_match_params *params,
                                 int k, int32_t *index, float *dist);

/* ---- gallery files ------------------------------------------------------- */

typedef struct hcga_gallery hcga_gallery;

/* Write rows of e with one name each (UTF-8, no NUL inside) to a safetensors
 * gallery file stamped with m's fingerprint. */
HCGA_API hcga_result hcga_gallery_save(hcga_model *m, const char *path, const hcga_embeddings *e,
                                       const char *const *names);
/* Read a gallery file written for m (another model's gallery is
 * HCGA_ERROR_MISMATCH). */
HCGA_API hcga_result hcga_gallery_load(hcga_model *m, const char *path, hcga_gallery **out);
/* A gallery from rows in memory (copied, with the names), as
 * hcga_gallery_load would read them back from a file. */
HCGA_API hcga_result hcga_gallery_new(hcga_model *m, const hcga_embeddings *e,
                                      const char *const *names, hcga_gallery **out);
/* Its features (owned by the gallery) and names.  Pure. */
HCGA_API const hcga_embeddings *hcga_gallery_embeddings(const hcga_gallery *g);
HCGA_API const char *hcga_gallery_name(const hcga_gallery *g, int row);
/* hcga_search over the gallery, for repeated searches: the first call (and
 * the first after a change of metric or feat_norm) keeps the gallery's
 * matrix rows on the backend (about 4 * n * ((num_parts+1)*dim + num_parts+1)
 * bytes for ARM), so later calls only multiply.  Same results as
 * hcga_search. */
HCGA_API hcga_result hcga_gallery_search(hcga_gallery *g, const hcga_embeddings *query,
                                         const hcga_match_params *params, int k, int32_t *index,
                                         float *dist);
/* NULL is accepted. */
HCGA_API void hcga_gallery_free(hcga_gallery *g);

#ifdef __cplusplus
}
#endif

#endif
