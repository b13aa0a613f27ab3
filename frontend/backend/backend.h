/*
 * backend.h - the frontend's handle on a loaded backend plugin.
 *
 * The loader (plugin_loader.c) searches $HCGA_PLUGIN_PATH (':'-separated
 * directories), then the installed $(pkglibdir), then the build tree, for
 * files named hcga_backend_<name>.so, dlopens them with RTLD_NOW|RTLD_LOCAL,
 * reads the exported descriptor and checks magic, ABI major/minor and struct
 * sizes before calling any plugin function.
 */
#ifndef HCGA_BACKEND_H
#define HCGA_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "hcga_plugin.h"

typedef struct hcga_be {
    char name[64];      /* descriptor name: "cpu", "opencl", "cuda" */
    char path[4096];    /* file it was loaded from */
    void *dl;           /* dlopen handle */
    const hcga_plugin_descriptor *desc;
    const hcga_backend_iface *iface;
    hcga_backend *inst; /* the created instance */
    int device;
    char err[1024];     /* last frontend-side error (e.g. unsupported op) */
} hcga_be;

/* One plugin found on the search path, for `hcga backends`. */
typedef struct hcga_plugin_entry {
    char name[64];
    char path[4096];
    int ok;              /* 1: loadable and probe() found >= 1 device */
    char reason[1024];   /* when !ok: dlerror text, ABI mismatch, probe's reason */
    int num_devices;
} hcga_plugin_entry;

/* List every hcga_backend_*.so on the search path (first match of a name
 * wins).  Returns the number of entries written (at most max). */
int hcga_plugins_scan(hcga_plugin_entry *entries, int max);

/* Find, load, check and probe the plugin
 * `name` without creating an instance; fills entry as the scan does.  Returns
 * 0 when entry->ok, else -1 with entry->reason set (entry->path is empty when
 * no file was found). */
int hcga_plugin_find(const char *name, hcga_plugin_entry *entry);

/* Device details of a plugin found by
 * hcga_plugins_scan / hcga_plugin_find, for `hcga backends`.  On failure
 * writes the reason to err. */
hcga_status hcga_plugin_device_info(const hcga_plugin_entry *entry, int device,
                                    hcga_device_info *info, char *err, size_t err_len);

/* Open backend `name` on `device` with `options` (may be NULL).
 * On failure returns non-zero and writes the exact reason to err. */
int hcga_be_open(const char *name, int device, const char *options, hcga_be **out,
                 char *err, size_t err_len);
/* hcga_be_open with "threads=N," in front of options when threads > 0: the
 * option every backend accepts (hcga_plugin.h, create()).  The one place
 * --threads and hcga_context_params.threads reach a backend. */
int hcga_be_open_threads(const char *name, int device, int threads, const char *options,
                         hcga_be **out, char *err, size_t err_len);

void hcga_be_close(hcga_be *be);

/* Run one op.  An op missing from the plugin's table (NULL or beyond
 * num_ops) returns HCGA_ERR_UNSUPPORTED with be->err set; any other failure
 * copies the plugin's last_error() into be->err prefixed by the op name. */
hcga_status hcga_be_run(hcga_be *be, const hcga_op_args *args);

/* The last error message of this handle (never NULL). */
const char *hcga_be_error(const hcga_be *be);

/* Buffer helpers wrapping the iface with error capture. */
hcga_status hcga_be_alloc(hcga_be *be, uint64_t bytes, hcga_buffer **out);
void hcga_be_free(hcga_be *be, hcga_buffer *buf);
hcga_status hcga_be_write(hcga_be *be, hcga_buffer *buf, uint64_t off, const void *src, uint64_t n);
hcga_status hcga_be_read(hcga_be *be, hcga_buffer *buf, uint64_t off, void *dst, uint64_t n);
hcga_status hcga_be_sync(hcga_be *be);

/* ---- optional capabilities (ABI 1.2) -----------------------------------
 * A plugin provides a group (collectives: comm_id, comm_init, allreduce,
 * broadcast, comm_wait; graph capture: capture_begin, capture_end,
 * capture_replay, capture_free) completely or not at all; the loader
 * refuses a plugin with a partial group, naming the missing function.  A
 * plugin built for ABI 1.1 (its iface ends at supports) has neither.
 *
 * Every wrapper below returns HCGA_ERR_UNSUPPORTED with hcga_be_error()
 * "<backend>: no collectives" / "<backend>: no graph capture" when the group
 * is absent, and otherwise the plugin's status, with hcga_be_error() set to
 * "<function>: <plugin's last_error()>" on failure.  Semantics are those of
 * hcga_plugin.h section 4. */

/* 1 when the backend provides the collectives group, else 0. */
int hcga_be_has_comm(const hcga_be *be);
/* 1 when the backend provides the graph capture group, else 0. */
int hcga_be_has_capture(const hcga_be *be);

/* Rank 0: writes the opaque communicator id to id (which must hold
 * HCGA_COMM_ID_BYTES bytes) and its length to *len. */
hcga_status hcga_be_comm_id(hcga_be *be, void *id, uint32_t *len);
/* Every rank, with rank 0's id: joins the communicator (blocks until all
 * nranks joined). */
hcga_status hcga_be_comm_init(hcga_be *be, const void *id, uint32_t len, int rank, int nranks);
/* In place on t: sum (HCGA_COMM_SUM) or mean (HCGA_COMM_AVG) over the ranks;
 * ordered after earlier work, may overlap later work until hcga_be_comm_wait
 * (so t's buffer must not be written or freed before hcga_be_comm_wait). */
hcga_status hcga_be_allreduce(hcga_be *be, const hcga_tensor *t, int comm_op);
/* In place on t: root's values to every rank; ordered like allreduce. */
hcga_status hcga_be_broadcast(hcga_be *be, const hcga_tensor *t, int root);
/* Work enqueued after this waits for every collective started before it
 * (the host does not block). */
hcga_status hcga_be_comm_wait(hcga_be *be);

/* Start recording op calls instead of running them.  Capture only a
 * sequence that has already run once outside capture (the backend's
 * workspaces and algorithm choices are then settled); buffer
 * alloc/read/write/sync are refused until hcga_be_capture_end. */
hcga_status hcga_be_capture_begin(hcga_be *be);
/* Stop recording; *out is the recording, or NULL on failure (an op that
 * could not be captured: the backend stays usable). */
hcga_status hcga_be_capture_end(hcga_be *be, hcga_capture **out);
/* Enqueue the recorded work again (same buffers, offsets, parameters). */
hcga_status hcga_be_capture_replay(hcga_be *be, hcga_capture *rec);
/* Release a recording (NULL is a no-op). */
void hcga_be_capture_free(hcga_be *be, hcga_capture *rec);

/* Make a dense C-contiguous tensor descriptor. */
hcga_tensor hcga_tensor_make(hcga_buffer *buf, uint64_t offset, int dtype, int ndim,
                             const int64_t *shape);

#endif
