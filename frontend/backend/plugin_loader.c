/*
 * plugin_loader.c - find, check and open backend plugins (see backend.h).
 *
 * Search order for hcga_backend_<name>.so (the first directory holding the
 * file wins, even if that file then fails to load, so the error is about the
 * file the user would get):
 *   1. each directory of $HCGA_PLUGIN_PATH (':'-separated, empty parts skipped)
 *   2. HCGA_PKGLIBDIR (the installed plugin directory)
 *   3. the build tree: HCGA_BUILDDIR/.libs, then HCGA_BUILDDIR/backends/<dir>/.libs
 *
 * A plugin is checked in this order, and nothing of it is called before the
 * descriptor passed: dlopen(RTLD_NOW|RTLD_LOCAL), dlsym(HCGA_PLUGIN_SYMBOL),
 * magic, ABI major, struct sizes, name, then get_iface(), then the iface
 * (the required functions, then each optional ABI 1.2 group: all or none).
 *
 * Libraries whose code has run (get_iface was called) are never dlclose'd:
 * GPU runtimes and OpenCL ICDs start threads and register exit handlers that
 * would point into unmapped code.  The OS unmaps them at exit.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"

#ifndef HCGA_PKGLIBDIR
#error "HCGA_PKGLIBDIR must be defined by the build (Makefile.am)"
#endif
#ifndef HCGA_BUILDDIR
#error "HCGA_BUILDDIR must be defined by the build (Makefile.am)"
#endif

#define PLUGIN_PREFIX "hcga_backend_"
#define PLUGIN_SUFFIX ".so"

/* The iface fields every plugin must have (ABI 1.0): everything up to
 * supports.  The ABI 1.2 groups after it are optional and read only where
 * struct_size covers them (see "optional groups" below). */
#define IFACE_USED_SIZE \
    (offsetof(hcga_backend_iface, supports) + sizeof(((hcga_backend_iface *)0)->supports))

/* ---- optional groups of the iface (ABI 1.2) ----------------------------- */

/* One iface member of an optional group: its name and where it lies. */
typedef struct iface_member {
    const char *name;
    size_t offset, size;
} iface_member;

#define IFACE_MEMBER(m_) \
    {#m_, offsetof(hcga_backend_iface, m_), sizeof(((hcga_backend_iface *)0)->m_)}

static const iface_member comm_group[] = {
    IFACE_MEMBER(comm_id), IFACE_MEMBER(comm_init), IFACE_MEMBER(allreduce),
    IFACE_MEMBER(broadcast), IFACE_MEMBER(comm_wait),
};
static const iface_member capture_group[] = {
    IFACE_MEMBER(capture_begin), IFACE_MEMBER(capture_end), IFACE_MEMBER(capture_replay),
    IFACE_MEMBER(capture_free),
};
#define GROUP_LEN(g_) (sizeof(g_) / sizeof((g_)[0]))

/* 1 when member m lies inside the plugin's iface and is not NULL.  A member
 * beyond struct_size is never read (a 1.1 plugin's table ends earlier). */
static int member_set(const hcga_backend_iface *f, const iface_member *m)
{
    if (m->offset + m->size > f->struct_size) return 0;
    const void *p;
    memcpy(&p, (const char *)f + m->offset, sizeof p);
    return p != NULL;
}

/* Number of members of the group the plugin provides. */
static size_t group_count(const hcga_backend_iface *f, const iface_member *g, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)member_set(f, &g[i]);
    return k;
}

/* All-or-none: NULL when the group is complete or absent, else the name of
 * the first member that is missing. */
static const char *group_missing(const hcga_backend_iface *f, const iface_member *g, size_t n)
{
    size_t k = group_count(f, g, n);
    if (k == 0 || k == n) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!member_set(f, &g[i])) return g[i].name;
    return NULL;
}

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
    if (!err || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    if (len == 0) return;
    snprintf(dst, len, "%s", src ? src : "");
}

static int valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- search path -------------------------------------------------------- */

typedef struct dir_list {
    char **dirs;
    int n, cap;
} dir_list;

static int dirs_push(dir_list *l, const char *d, size_t len)
{
    if (len == 0) return 0;
    for (int i = 0; i < l->n; i++)
        if (strlen(l->dirs[i]) == len && memcmp(l->dirs[i], d, len) == 0) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **nd = realloc(l->dirs, (size_t)cap * sizeof *nd);
        if (!nd) return -1;
        l->dirs = nd;
        l->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return -1;
    memcpy(s, d, len);
    s[len] = '\0';
    l->dirs[l->n++] = s;
    return 0;
}

static void dirs_free(dir_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->dirs[i]);
    free(l->dirs);
    l->dirs = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Build-tree plugin directories: HCGA_BUILDDIR/.libs and, sorted,
 * HCGA_BUILDDIR/backends/<x>/.libs for every x that has one. */
static int dirs_add_build_tree(dir_list *l)
{
    static const char top[] = HCGA_BUILDDIR "/.libs";
    if (dirs_push(l, top, strlen(top)) != 0) return -1;

    DIR *d = opendir(HCGA_BUILDDIR "/backends");
    if (!d) return 0;
    dir_list sub = {0};
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        int n = snprintf(p, sizeof p, "%s/backends/%s/.libs", HCGA_BUILDDIR, de->d_name);
        if (n < 0 || (size_t)n >= sizeof p || !is_dir(p)) continue;
        if (dirs_push(&sub, p, (size_t)n) != 0) { rc = -1; break; }
    }
    closedir(d);
    if (sub.n > 1) qsort(sub.dirs, (size_t)sub.n, sizeof *sub.dirs, cmp_str);
    for (int i = 0; rc == 0 && i < sub.n; i++)
        if (dirs_push(l, sub.dirs[i], strlen(sub.dirs[i])) != 0) rc = -1;
    dirs_free(&sub);
    return rc;
}

static int search_dirs(dir_list *l)
{
    const char *env = getenv("HCGA_PLUGIN_PATH");
    if (env) {
        const char *p = env;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (dirs_push(l, p, len) != 0) return -1;
            p += len;
            if (*p == ':') p++;
        }
    }
    if (dirs_push(l, HCGA_PKGLIBDIR, strlen(HCGA_PKGLIBDIR)) != 0) return -1;
    return dirs_add_build_tree(l);
}

/* "a:b:c" for messages. */
static void dirs_join(const dir_list *l, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < l->n && used + 1 < len; i++) {
        int n = snprintf(out + used, len - used, "%s%s", i ? ":" : "", l->dirs[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* Find hcga_backend_<name>.so; 0 on success with its path in path[]. */
static int find_plugin(const char *name, char *path, size_t path_len, char *err, size_t err_len)
{
    if (!valid_name(name)) {
        set_err(err, err_len,
                "invalid backend name '%s' (letters, digits, '_' and '-', at most 63)",
                name ? name : "(null)");
        return -1;
    }
    dir_list l = {0};
    if (search_dirs(&l) != 0) {
        dirs_free(&l);
        set_err(err, err_len, "out of memory while building the plugin search path");
        return -1;
    }
    for (int i = 0; i < l.n; i++) {
        int n = snprintf(path, path_len, "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, l.dirs[i], name);
        if (n > 0 && (size_t)n < path_len && is_file(path)) {
            dirs_free(&l);
            return 0;
        }
    }
    char joined[2048];
    dirs_join(&l, joined, sizeof joined);
    set_err(err, err_len, "no plugin file " PLUGIN_PREFIX "%s" PLUGIN_SUFFIX
            " found in %s (set HCGA_PLUGIN_PATH to add directories)", name, joined);
    dirs_free(&l);
    return -1;
}

/* ---- loading and checking one file ------------------------------------- */

typedef struct loaded_plugin {
    void *dl;
    const hcga_plugin_descriptor *desc;
    const hcga_backend_iface *iface;
} loaded_plugin;

/* Open `path` and check it.  want_name: the <name> of the file name.
 * On failure the library is closed if none of its functions ran. */
static int load_plugin(const char *path, const char *want_name, loaded_plugin *lp, char *err,
                       size_t err_len)
{
    memset(lp, 0, sizeof *lp);
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        set_err(err, err_len, "dlopen failed: %s", e ? e : "unknown error");
        return -1;
    }
    dlerror();
    const hcga_plugin_descriptor *d = (const hcga_plugin_descriptor *)dlsym(dl, HCGA_PLUGIN_SYMBOL);
    if (!d) {
        const char *e = dlerror();
        set_err(err, err_len, "not an hcga plugin: no symbol " HCGA_PLUGIN_SYMBOL " (%s)",
                e ? e : "symbol is NULL");
        dlclose(dl);
        return -1;
    }
    if (d->magic != HCGA_PLUGIN_MAGIC) {
        set_err(err, err_len, "not an hcga plugin: descriptor magic 0x%08x, expected 0x%08x",
                (unsigned)d->magic, (unsigned)HCGA_PLUGIN_MAGIC);
        dlclose(dl);
        return -1;
    }
    if (d->abi_major != HCGA_ABI_MAJOR) {
        set_err(err, err_len, "incompatible plugin: ABI major %u, hcga expects %u (rebuild the plugin against this hcga_plugin.h)",
                (unsigned)d->abi_major, (unsigned)HCGA_ABI_MAJOR);
        dlclose(dl);
        return -1;
    }
    /* Same major: a different minor is fine (older: its missing ops are
     * unsupported; newer: we use only our HCGA_OP_COUNT ops). */
    if (d->sizeof_tensor != sizeof(hcga_tensor)) {
        set_err(err, err_len, "incompatible plugin: sizeof(hcga_tensor) is %u in the plugin, %u in hcga",
                (unsigned)d->sizeof_tensor, (unsigned)sizeof(hcga_tensor));
        dlclose(dl);
        return -1;
    }
    if (d->sizeof_op_args != sizeof(hcga_op_args)) {
        set_err(err, err_len, "incompatible plugin: sizeof(hcga_op_args) is %u in the plugin, %u in hcga",
                (unsigned)d->sizeof_op_args, (unsigned)sizeof(hcga_op_args));
        dlclose(dl);
        return -1;
    }
    if (d->sizeof_backend_iface < IFACE_USED_SIZE) {
        set_err(err, err_len, "incompatible plugin: sizeof(hcga_backend_iface) is %u in the plugin, hcga needs at least %u",
                (unsigned)d->sizeof_backend_iface, (unsigned)IFACE_USED_SIZE);
        dlclose(dl);
        return -1;
    }
    if (!d->name || strcmp(d->name, want_name) != 0) {
        set_err(err, err_len, "descriptor name '%s' does not match the file name (" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX ")",
                d->name ? d->name : "(null)", want_name);
        dlclose(dl);
        return -1;
    }
    if (!d->get_iface) {
        set_err(err, err_len, "descriptor has no get_iface function");
        dlclose(dl);
        return -1;
    }

    /* From here on plugin code runs: keep the library mapped. */
    const hcga_backend_iface *f = d->get_iface();
    if (!f) {
        set_err(err, err_len, "get_iface() returned NULL");
        return -1;
    }
    if (f->struct_size < IFACE_USED_SIZE) {
        set_err(err, err_len, "incompatible plugin: iface struct_size is %u, hcga needs at least %u",
                (unsigned)f->struct_size, (unsigned)IFACE_USED_SIZE);
        return -1;
    }
    const char *missing = NULL;
    if (!f->probe) missing = "probe";
    else if (!f->device_info) missing = "device_info";
    else if (!f->create) missing = "create";
    else if (!f->destroy) missing = "destroy";
    else if (!f->last_error) missing = "last_error";
    else if (!f->buffer_alloc) missing = "buffer_alloc";
    else if (!f->buffer_free) missing = "buffer_free";
    else if (!f->buffer_write) missing = "buffer_write";
    else if (!f->buffer_read) missing = "buffer_read";
    else if (!f->synchronize) missing = "synchronize";
    else if (!f->ops && f->num_ops > 0) missing = "ops (num_ops > 0)";
    if (missing) {
        set_err(err, err_len, "incomplete plugin: iface function %s is NULL", missing);
        return -1;
    }
    if ((missing = group_missing(f, comm_group, GROUP_LEN(comm_group))) != NULL) {
        set_err(err, err_len,
                "incomplete plugin: the collectives group (comm_*) lacks %s (a group is all or none)",
                missing);
        return -1;
    }
    if ((missing = group_missing(f, capture_group, GROUP_LEN(capture_group))) != NULL) {
        set_err(err, err_len,
                "incomplete plugin: the graph capture group (capture_*) lacks %s (a group is all or none)",
                missing);
        return -1;
    }
    lp->dl = dl;
    lp->desc = d;
    lp->iface = f;
    return 0;
}

/* Probe a loaded plugin: number of devices (>= 1), or -1 with the reason. */
static int probe_plugin(const loaded_plugin *lp, char *err, size_t err_len)
{
    char why[1024];
    why[0] = '\0';
    int n = lp->iface->probe(why, sizeof why);
    why[sizeof why - 1] = '\0';
    if (n < 0) {
        set_err(err, err_len, "%s", why[0] ? why : "probe failed without a reason");
        return -1;
    }
    if (n == 0) {
        set_err(err, err_len, "no devices%s%s", why[0] ? ": " : "", why);
        return -1;
    }
    return n;
}

/* The name part of "hcga_backend_<name>.so", or 0 if fname does not match. */
static int plugin_file_name(const char *fname, char *name, size_t name_len)
{
    size_t pl = strlen(PLUGIN_PREFIX), sl = strlen(PLUGIN_SUFFIX), n = strlen(fname);
    if (n <= pl + sl || strncmp(fname, PLUGIN_PREFIX, pl) != 0 ||
        strcmp(fname + n - sl, PLUGIN_SUFFIX) != 0)
        return 0;
    size_t len = n - pl - sl;
    if (len >= name_len) return 0;
    memcpy(name, fname + pl, len);
    name[len] = '\0';
    return valid_name(name);
}

static void check_entry(hcga_plugin_entry *e)
{
    loaded_plugin lp;
    e->ok = 0;
    e->num_devices = 0;
    e->reason[0] = '\0';
    if (load_plugin(e->path, e->name, &lp, e->reason, sizeof e->reason) != 0) return;
    int n = probe_plugin(&lp, e->reason, sizeof e->reason);
    if (n < 0) return;
    e->ok = 1;
    e->num_devices = n;
}

/* ---- public API --------------------------------------------------------- */

int hcga_plugins_scan(hcga_plugin_entry *entries, int max)
{
    dir_list l = {0};
    if (search_dirs(&l) != 0) {
        dirs_free(&l);
        return 0;
    }
    int count = 0;
    for (int i = 0; i < l.n && count < max; i++) {
        DIR *d = opendir(l.dirs[i]);
        if (!d) continue;
        dir_list files = {0};
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char name[64];
            if (plugin_file_name(de->d_name, name, sizeof name))
                dirs_push(&files, de->d_name, strlen(de->d_name));
        }
        closedir(d);
        if (files.n > 1) qsort(files.dirs, (size_t)files.n, sizeof *files.dirs, cmp_str);
        for (int j = 0; j < files.n && count < max; j++) {
            char name[64];
            plugin_file_name(files.dirs[j], name, sizeof name);
            int dup = 0;
            for (int k = 0; k < count; k++)
                if (strcmp(entries[k].name, name) == 0) dup = 1;
            if (dup) continue;
            hcga_plugin_entry *e = &entries[count];
            memset(e, 0, sizeof *e);
            copy_str(e->name, sizeof e->name, name);
            int n = snprintf(e->path, sizeof e->path, "%s/%s", l.dirs[i], files.dirs[j]);
            if (n < 0 || (size_t)n >= sizeof e->path) continue;
            check_entry(e);
            count++;
        }
        dirs_free(&files);
    }
    dirs_free(&l);
    return count;
}

int hcga_plugin_find(const char *name, hcga_plugin_entry *entry)
{
    memset(entry, 0, sizeof *entry);
    copy_str(entry->name, sizeof entry->name, name);
    if (find_plugin(name, entry->path, sizeof entry->path, entry->reason, sizeof entry->reason) != 0) {
        entry->path[0] = '\0';
        return -1;
    }
    check_entry(entry);
    return entry->ok ? 0 : -1;
}

hcga_status hcga_plugin_device_info(const hcga_plugin_entry *entry, int device,
                                    hcga_device_info *info, char *err, size_t err_len)
{
    loaded_plugin lp;
    memset(info, 0, sizeof *info);
    if (load_plugin(entry->path, entry->name, &lp, err, err_len) != 0) return HCGA_ERR_INVALID;
    hcga_status st = lp.iface->device_info(device, info);
    info->name[sizeof info->name - 1] = '\0';
    info->version[sizeof info->version - 1] = '\0';
    if (st != HCGA_OK)
        set_err(err, err_len, "device_info(%d) failed with status %d", device, (int)st);
    return st;
}

int hcga_be_open_threads(const char *name, int device, int threads, const char *options,
                         hcga_be **out, char *err, size_t err_len)
{
    if (threads <= 0) return hcga_be_open(name, device, options, out, err, err_len);
    *out = NULL;
    char opts[1024];
    const int has = options && *options;
    int n = snprintf(opts, sizeof opts, "threads=%d%s%s", threads, has ? "," : "", has ? options : "");
    if (n < 0 || (size_t)n >= sizeof opts) {
        set_err(err, err_len, "backend '%s': the options are too long (at most %zu characters)",
                name ? name : "(null)", sizeof opts - 16);
        return -1;
    }
    return hcga_be_open(name, device, opts, out, err, err_len);
}

int hcga_be_open(const char *name, int device, const char *options, hcga_be **out, char *err,
                 size_t err_len)
{
    *out = NULL;
    char path[4096];
    char why[1024];
    if (find_plugin(name, path, sizeof path, why, sizeof why) != 0) {
        set_err(err, err_len, "backend '%s': %s", name ? name : "(null)", why);
        return -1;
    }
    loaded_plugin lp;
    if (load_plugin(path, name, &lp, why, sizeof why) != 0) {
        set_err(err, err_len, "backend '%s' (%s): %s", name, path, why);
        return -1;
    }
    int n = probe_plugin(&lp, why, sizeof why);
    if (n < 0) {
        set_err(err, err_len, "backend '%s' unavailable: %s", name, why);
        return -1;
    }
    if (device < 0 || device >= n) {
        set_err(err, err_len, "backend '%s': device %d does not exist (devices: 0..%d)", name,
                device, n - 1);
        return -1;
    }
    hcga_be *be = calloc(1, sizeof *be);
    if (!be) {
        set_err(err, err_len, "backend '%s': out of memory", name);
        return -1;
    }
    copy_str(be->name, sizeof be->name, name);
    copy_str(be->path, sizeof be->path, path);
    be->dl = lp.dl;
    be->desc = lp.desc;
    be->iface = lp.iface;
    be->device = device;
    why[0] = '\0';
    hcga_backend *inst = NULL;
    hcga_status st = lp.iface->create(device, options, &inst, why, sizeof why);
    why[sizeof why - 1] = '\0';
    if (st != HCGA_OK || !inst) {
        set_err(err, err_len, "backend '%s' device %d: create failed: %s", name, device,
                why[0] ? why : "no reason given");
        if (inst) lp.iface->destroy(inst);
        free(be);
        return -1;
    }
    be->inst = inst;
    *out = be;
    return 0;
}

void hcga_be_close(hcga_be *be)
{
    if (!be) return;
    if (be->inst) be->iface->destroy(be->inst);
    /* be->dl stays open: see the comment at the top of this file. */
    free(be);
}

const char *hcga_be_error(const hcga_be *be)
{
    if (!be) return "no backend";
    return be->err;
}

static const char *status_name(hcga_status st)
{
    switch (st) {
    case HCGA_OK: return "ok";
    case HCGA_ERR_INVALID: return "invalid argument";
    case HCGA_ERR_UNSUPPORTED: return "unsupported";
    case HCGA_ERR_NOMEM: return "out of memory";
    case HCGA_ERR_DEVICE: return "device error";
    case HCGA_ERR_NUMERIC: return "numeric error";
    }
    return "unknown status";
}

/* be->err = "<what>: <last_error()>" */
static hcga_status capture(hcga_be *be, hcga_status st, const char *what)
{
    if (st == HCGA_OK) return st;
    const char *msg = be->iface->last_error(be->inst);
    size_t wl = strlen(what);
    if (!msg || !msg[0])
        set_err(be->err, sizeof be->err, "%s: failed (%s) without a message", what, status_name(st));
    else if (strncmp(msg, what, wl) == 0 && msg[wl] == ':')
        set_err(be->err, sizeof be->err, "%s", msg); /* already "<what>: ..." */
    else
        set_err(be->err, sizeof be->err, "%s: %s", what, msg);
    return st;
}

static uint32_t effective_num_ops(const hcga_be *be)
{
    uint32_t n = be->iface->num_ops;
    if (be->desc->num_ops < n) n = be->desc->num_ops;
    if (n > (uint32_t)HCGA_OP_COUNT) n = (uint32_t)HCGA_OP_COUNT;
    return be->iface->ops ? n : 0;
}

hcga_status hcga_be_run(hcga_be *be, const hcga_op_args *args)
{
    if (!be || !args) return HCGA_ERR_INVALID;
    int op = args->op;
    if (op < 0 || (uint32_t)op >= effective_num_ops(be) || !be->iface->ops[op]) {
        set_err(be->err, sizeof be->err, "%s: op %s is not supported", be->name, hcga_op_name(op));
        return HCGA_ERR_UNSUPPORTED;
    }
    return capture(be, be->iface->ops[op](be->inst, args), hcga_op_name(op));
}

hcga_status hcga_be_alloc(hcga_be *be, uint64_t bytes, hcga_buffer **out)
{
    *out = NULL;
    hcga_status st = be->iface->buffer_alloc(be->inst, bytes, out);
    if (st == HCGA_OK && !*out) {
        set_err(be->err, sizeof be->err, "buffer_alloc(%llu bytes): plugin returned no buffer",
                (unsigned long long)bytes);
        return HCGA_ERR_DEVICE;
    }
    if (st != HCGA_OK) {
        char what[64];
        snprintf(what, sizeof what, "buffer_alloc(%llu bytes)", (unsigned long long)bytes);
        *out = NULL;
        return capture(be, st, what);
    }
    return st;
}

void hcga_be_free(hcga_be *be, hcga_buffer *buf)
{
    if (be && buf) be->iface->buffer_free(be->inst, buf);
}

hcga_status hcga_be_write(hcga_be *be, hcga_buffer *buf, uint64_t off, const void *src, uint64_t n)
{
    return capture(be, be->iface->buffer_write(be->inst, buf, off, src, n), "buffer_write");
}

hcga_status hcga_be_read(hcga_be *be, hcga_buffer *buf, uint64_t off, void *dst, uint64_t n)
{
    return capture(be, be->iface->buffer_read(be->inst, buf, off, dst, n), "buffer_read");
}

hcga_status hcga_be_sync(hcga_be *be)
{
    return capture(be, be->iface->synchronize(be->inst), "synchronize");
}

/* ---- optional capabilities (ABI 1.2) ------------------------------------ */

int hcga_be_has_comm(const hcga_be *be)
{
    return be && group_count(be->iface, comm_group, GROUP_LEN(comm_group)) == GROUP_LEN(comm_group);
}

int hcga_be_has_capture(const hcga_be *be)
{
    return be &&
           group_count(be->iface, capture_group, GROUP_LEN(capture_group)) == GROUP_LEN(capture_group);
}

/* HCGA_ERR_UNSUPPORTED with be->err set when the group is absent. */
static hcga_status need_comm(hcga_be *be)
{
    if (hcga_be_has_comm(be)) return HCGA_OK;
    set_err(be->err, sizeof be->err, "%s: no collectives (the plugin has no comm_* functions)",
            be->name);
    return HCGA_ERR_UNSUPPORTED;
}

static hcga_status need_capture(hcga_be *be)
{
    if (hcga_be_has_capture(be)) return HCGA_OK;
    set_err(be->err, sizeof be->err,
            "%s: no graph capture (the plugin has no capture_* functions)", be->name);
    return HCGA_ERR_UNSUPPORTED;
}

hcga_status hcga_be_comm_id(hcga_be *be, void *id, uint32_t *len)
{
    hcga_status st = need_comm(be);
    if (st != HCGA_OK) return st;
    *len = 0;
    st = capture(be, be->iface->comm_id(be->inst, id, len), "comm_id");
    if (st == HCGA_OK && (*len == 0 || *len > HCGA_COMM_ID_BYTES)) {
        set_err(be->err, sizeof be->err, "comm_id: the plugin returned an id of %u bytes (1..%d allowed)",
                (unsigned)*len, HCGA_COMM_ID_BYTES);
        return HCGA_ERR_DEVICE;
    }
    return st;
}

hcga_status hcga_be_comm_init(hcga_be *be, const void *id, uint32_t len, int rank, int nranks)
{
    hcga_status st = need_comm(be);
    if (st != HCGA_OK) return st;
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        set_err(be->err, sizeof be->err, "comm_init: rank %d of %d is out of range", rank, nranks);
        return HCGA_ERR_INVALID;
    }
    return capture(be, be->iface->comm_init(be->inst, id, len, rank, nranks), "comm_init");
}

hcga_status hcga_be_allreduce(hcga_be *be, const hcga_tensor *t, int comm_op)
{
    hcga_status st = need_comm(be);
    if (st != HCGA_OK) return st;
    return capture(be, be->iface->allreduce(be->inst, t, comm_op), "allreduce");
}

hcga_status hcga_be_broadcast(hcga_be *be, const hcga_tensor *t, int root)
{
    hcga_status st = need_comm(be);
    if (st != HCGA_OK) return st;
    return capture(be, be->iface->broadcast(be->inst, t, root), "broadcast");
}

hcga_status hcga_be_comm_wait(hcga_be *be)
{
    hcga_status st = need_comm(be);
    if (st != HCGA_OK) return st;
    return capture(be, be->iface->comm_wait(be->inst), "comm_wait");
}

hcga_status hcga_be_capture_begin(hcga_be *be)
{
    hcga_status st = need_capture(be);
    if (st != HCGA_OK) return st;
    return capture(be, be->iface->capture_begin(be->inst), "capture_begin");
}

hcga_status hcga_be_capture_end(hcga_be *be, hcga_capture **out)
{
    *out = NULL;
    hcga_status st = need_capture(be);
    if (st != HCGA_OK) return st;
    st = be->iface->capture_end(be->inst, out);
    if (st != HCGA_OK) {
        *out = NULL; /* a failed capture_end returns no recording */
        return capture(be, st, "capture_end");
    }
    if (!*out) {
        set_err(be->err, sizeof be->err, "capture_end: the plugin returned no recording");
        return HCGA_ERR_DEVICE;
    }
    return st;
}

hcga_status hcga_be_capture_replay(hcga_be *be, hcga_capture *rec)
{
    hcga_status st = need_capture(be);
    if (st != HCGA_OK) return st;
    if (!rec) {
        set_err(be->err, sizeof be->err, "capture_replay: no recording");
        return HCGA_ERR_INVALID;
    }
    return capture(be, be->iface->capture_replay(be->inst, rec), "capture_replay");
}

void hcga_be_capture_free(hcga_be *be, hcga_capture *rec)
{
    if (be && rec && hcga_be_has_capture(be)) be->iface->capture_free(be->inst, rec);
}

hcga_tensor hcga_tensor_make(hcga_buffer *buf, uint64_t offset, int dtype, int ndim,
                             const int64_t *shape)
{
    hcga_tensor t;
    memset(&t, 0, sizeof t);
    t.buf = buf;
    t.offset = offset;
    t.dtype = dtype;
    for (int i = 0; i < HCGA_MAX_DIMS; i++) {
        t.shape[i] = 1;
        t.stride[i] = 1;
    }
    if (ndim < 0 || ndim > HCGA_MAX_DIMS) {
        /* A programming error: make a tensor every backend rejects. */
        t.ndim = -1;
        return t;
    }
    t.ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}
