/*
 * dnn_blocked.c - the table of blocked copies the oneDNN backend keeps
 * between ops (what and why: dnn_blocked.h), their pool of memory blocks,
 * and the two rules that keep them right: before a region is read by plain
 * code, the dirty copies overlapping it are written back; before a region is
 * written, the copies overlapping it (or a derived copy's inputs) are
 * dropped.  The table is an array sorted by address: a training step keeps
 * some 1500 copies and makes some 20000 lookups, so a lookup starts at a
 * binary search (the first copy that can reach the region: its address
 * minus the largest copy's size) instead of scanning them all; derived
 * copies, whose inputs lie elsewhere, are also checked one by one when a
 * write comes (inference only, a few hundred).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnn_blocked.h"

struct dnn_blk {
    blk_copy **v; /* the copies, sorted by lo */
    int n, cap, peak;
    uint64_t maxbytes; /* the largest copy ever kept: no copy below lo - maxbytes reaches lo */
    int nderived;      /* derived copies in v */
    struct {
        void *p;
        size_t bytes;
    } *pool;      /* free blocks */
    int npool, pool_cap;
    uint64_t used; /* bytes in copies and in the pool */
    uint64_t stamp;
    void *scratch; /* a retired copy's write-back goes here first */
    size_t scratch_bytes;
    struct xreorder { /* reorders from one copy's format to another's (blk_input) */
        dnnl_memory_desc_t from, to;
        dnnl_primitive_t prim;
    } *xr;
    int nxr, xr_cap;
};

static int overlaps(const char *a, uint64_t an, const char *b, uint64_t bn)
{
    return an && bn && a < b + bn && b < a + an;
}

static int covers(const char *a, uint64_t an, const char *b, uint64_t bn)
{
    return a <= b && b + bn <= a + an;
}

static dnn_blk *table(hcga_backend *be)
{
    if (!be->blk) be->blk = calloc(1, sizeof *be->blk);
    return be->blk;
}

static void pool_release(dnn_blk *t, void *p, size_t bytes)
{
    if (t->npool == t->pool_cap) {
        int nc = t->pool_cap ? 2 * t->pool_cap : 64;
        void *np = realloc(t->pool, (size_t)nc * sizeof *t->pool);
        if (!np) { /* keep nothing rather than fail a release */
            free(p);
            t->used -= bytes;
            return;
        }
        t->pool = np;
        t->pool_cap = nc;
    }
    t->pool[t->npool].p = p;
    t->pool[t->npool].bytes = bytes;
    t->npool++;
}

static int by_offset(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts a retired copy's stale ranges by offset. */
static void sort_stale(blk_copy *c)
{
    qsort(c->stale, (size_t)c->nstale, sizeof c->stale[0], by_offset);
}

/* Do c's stale ranges cover [off, off+len) (offsets from c->lo)? */
static int stale_covers(blk_copy *c, uint64_t off, uint64_t len)
{
    sort_stale(c);
    uint64_t end = off; /* [off, end) covered so far */
    for (int i = 0; i < c->nstale && end < off + len; i++) {
        if (c->stale[i].off > end) return 0;
        if (c->stale[i].off + c->stale[i].len > end) end = c->stale[i].off + c->stale[i].len;
    }
    return end >= off + len;
}

/* The part of [p, p+bytes) inside c, as offsets from c->lo. */
static void clip(const blk_copy *c, const void *p, uint64_t bytes, uint64_t *off, uint64_t *len)
{
    const char *a = (const char *)p > c->lo ? (const char *)p : c->lo;
    const char *z = (const char *)p + bytes < c->lo + c->bytes ? (const char *)p + bytes : c->lo + c->bytes;
    *off = (uint64_t)(a - c->lo);
    *len = (uint64_t)(z - a);
}

/* Copies the bytes of a retired copy's region that are not stale from
 * from (its write-back) to the plain region. */
static void copy_unstale(blk_copy *c, const char *from)
{
    sort_stale(c);
    uint64_t at = 0;
    for (int i = 0; i <= c->nstale; i++) {
        const uint64_t next = i < c->nstale ? c->stale[i].off : c->bytes;
        if (next > at) memcpy((char *)c->lo + at, from + at, (size_t)(next - at));
        if (i < c->nstale && c->stale[i].off + c->stale[i].len > at) at = c->stale[i].off + c->stale[i].len;
    }
}

/* Writes c back to its plain region (c stays, clean); a retired copy
 * through the scratch buffer, its stale ranges left as they are. */
static hcga_status write_back(hcga_backend *be, blk_copy *c)
{
    if (!c->dirty) return HCGA_OK;
    dnn_blk *t = be->blk;
    void *to = (void *)c->lo;
    if (c->nstale) {
        if (t->scratch_bytes < c->bytes) {
            free(t->scratch);
            t->scratch_bytes = 0;
            t->scratch = aligned_alloc(DNN_ALIGN, (size_t)((c->bytes + DNN_ALIGN - 1) / DNN_ALIGN * DNN_ALIGN));
            if (!t->scratch)
                return dnn_fail(be, HCGA_ERR_NOMEM, "onednn: out of memory writing back a blocked copy (%llu bytes)",
                                (unsigned long long)c->bytes);
            t->scratch_bytes = (size_t)c->bytes;
        }
        to = t->scratch;
    }
    dnnl_status_t s = dnnl_memory_set_data_handle(c->plain, to);
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, c->mem}, {DNNL_ARG_TO, c->plain}};
    if (s == dnnl_success) s = dnnl_primitive_execute(c->back, be->stream, 2, r);
    if (s == dnnl_success) s = dnnl_stream_wait(be->stream);
    if (s != dnnl_success)
        return dnn_fail(be, HCGA_ERR_DEVICE, "onednn: writing back a blocked copy (%llu bytes) failed: status %d",
                        (unsigned long long)c->bytes, (int)s);
    if (c->nstale) copy_unstale(c, to);
    c->dirty = 0;
    c->back = NULL;
    c->plain = NULL;
    c->owner = NULL;
    be->blk_writebacks++;
    return HCGA_OK;
}

/* The first index whose copy starts at or above key (t->n if none). */
static int lower_bound(const dnn_blk *t, uintptr_t key)
{
    int lo = 0, hi = t->n;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if ((uintptr_t)t->v[mid]->lo < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The first index whose copy can overlap a region starting at p. */
static int first_reaching(const dnn_blk *t, const void *p)
{
    const uintptr_t a = (uintptr_t)p;
    return lower_bound(t, a > t->maxbytes ? a - (uintptr_t)t->maxbytes : 0);
}

/* Does copy i start below the end of [p, p+bytes)? (the loops' bound) */
static int starts_before(const dnn_blk *t, int i, const void *p, uint64_t bytes)
{
    return i < t->n && (uintptr_t)t->v[i]->lo < (uintptr_t)p + bytes;
}

/* Removes copy i from the table (the next one takes index i); its block
 * goes to the pool. */
static void remove_at(hcga_backend *be, int i)
{
    dnn_blk *t = be->blk;
    blk_copy *c = t->v[i];
    dnnl_memory_destroy(c->mem);
    pool_release(t, c->block, c->block_bytes);
    t->nderived -= c->ndeps > 0;
    free(c);
    memmove(&t->v[i], &t->v[i + 1], (size_t)(t->n - i - 1) * sizeof *t->v);
    t->n--;
}

void blk_drop(hcga_backend *be, blk_copy *c)
{
    dnn_blk *t = be->blk;
    for (int i = t ? lower_bound(t, (uintptr_t)c->lo) : 0; t && i < t->n && t->v[i]->lo == c->lo; i++)
        if (t->v[i] == c) {
            remove_at(be, i);
            return;
        }
}

/* Frees pooled blocks, then evicts least recently used copies, until
 * `need` more bytes fit under the cap (or nothing is left to free). */
static hcga_status make_room(hcga_backend *be, size_t need)
{
    dnn_blk *t = be->blk;
    while (t->used + need > be->blk_cap && t->npool > 0) {
        t->npool--;
        free(t->pool[t->npool].p);
        t->used -= t->pool[t->npool].bytes;
    }
    while (t->used + need > be->blk_cap && t->n > 0) {
        int old = -1;
        for (int i = 0; i < t->n; i++)
            if (!t->v[i]->pinned && (old < 0 || t->v[i]->stamp < t->v[old]->stamp)) old = i;
        if (old < 0) break; /* every copy is in use: go over the cap for this op */
        hcga_status st = write_back(be, t->v[old]);
        if (st != HCGA_OK) return st;
        remove_at(be, old);
        be->blk_evictions++;
        while (t->npool > 0) { /* the evicted copy's block went to the pool: free it */
            t->npool--;
            free(t->pool[t->npool].p);
            t->used -= t->pool[t->npool].bytes;
        }
    }
    return HCGA_OK;
}

/* A block of `bytes` from the pool (the smallest that fits, if not more
 * than a quarter larger) or newly allocated: *out, its size *got. */
static hcga_status block_get(hcga_backend *be, const char *op, size_t bytes, void **out, size_t *got)
{
    dnn_blk *t = be->blk;
    int best = -1;
    for (int i = 0; i < t->npool; i++)
        if (t->pool[i].bytes >= bytes && t->pool[i].bytes <= bytes + bytes / 4 &&
            (best < 0 || t->pool[i].bytes < t->pool[best].bytes))
            best = i;
    if (best >= 0) {
        *out = t->pool[best].p;
        *got = t->pool[best].bytes;
        t->pool[best] = t->pool[--t->npool];
        return HCGA_OK;
    }
    hcga_status st = make_room(be, bytes); /* on failure be->err names the write-back */
    if (st != HCGA_OK) return st;
    size_t rounded = (bytes + DNN_ALIGN - 1) / DNN_ALIGN * DNN_ALIGN;
    if (rounded == 0) rounded = DNN_ALIGN;
    *out = aligned_alloc(DNN_ALIGN, rounded);
    if (!*out) return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for a blocked copy of %zu bytes", op, bytes);
    t->used += rounded;
    *got = rounded;
    return HCGA_OK;
}

static int same_key(const blk_copy *c, const blk_derived *d)
{
    if (!d) return c->ndeps == 0;
    if (c->ndeps != d->ndeps || c->param != d->param) return 0;
    for (int i = 0; i < d->ndeps; i++)
        if (c->dep[i] != d->dep[i] || c->dep_bytes[i] != d->dep_bytes[i]) return 0;
    return 1;
}

blk_copy *blk_find(hcga_backend *be, const void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                   const blk_derived *derived)
{
    dnn_blk *t = be->blk;
    for (int i = t ? lower_bound(t, (uintptr_t)p) : 0; t && i < t->n && t->v[i]->lo == (const char *)p; i++) {
        blk_copy *c = t->v[i];
        if (c->bytes != bytes || c->nstale || !same_key(c, derived)) continue;
        const dnnl_memory_desc_t *cmd = NULL;
        if (dnnl_memory_get_memory_desc(c->mem, &cmd) != dnnl_success || !dnnl_memory_desc_equal(cmd, md))
            continue;
        c->stamp = ++t->stamp;
        be->blk_hits++;
        return c;
    }
    return NULL;
}

hcga_status blk_new(hcga_backend *be, const char *op, const void *p, uint64_t bytes,
                    const dnnl_memory_desc_t *md, const blk_derived *derived, blk_copy **out)
{
    *out = NULL;
    dnn_blk *t = table(be);
    blk_copy *c = t ? calloc(1, sizeof *c) : NULL;
    if (!c) return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for a blocked copy", op);
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 256;
        blk_copy **nv = realloc(t->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            free(c);
            return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for the blocked-copy table", op);
        }
        t->v = nv;
        t->cap = nc;
    }
    hcga_status st = block_get(be, op, dnnl_memory_desc_get_size(md), &c->block, &c->block_bytes);
    if (st != HCGA_OK) {
        free(c);
        return st;
    }
    if (dnnl_memory_create(&c->mem, md, be->engine, c->block) != dnnl_success) {
        pool_release(t, c->block, c->block_bytes);
        free(c);
        return dnn_fail(be, HCGA_ERR_DEVICE, "%s: dnnl_memory_create for a blocked copy failed", op);
    }
    c->lo = p;
    c->bytes = bytes;
    if (derived) {
        c->ndeps = derived->ndeps;
        for (int i = 0; i < derived->ndeps; i++) {
            c->dep[i] = derived->dep[i];
            c->dep_bytes[i] = derived->dep_bytes[i];
        }
        c->param = derived->param;
    }
    c->stamp = ++t->stamp;
    const int at = lower_bound(t, (uintptr_t)p + 1); /* after the copies of the same address */
    memmove(&t->v[at + 1], &t->v[at], (size_t)(t->n - at) * sizeof *t->v);
    t->v[at] = c;
    t->n++;
    if (t->n > t->peak) t->peak = t->n;
    if (bytes > t->maxbytes) t->maxbytes = bytes;
    t->nderived += c->ndeps > 0;
    *out = c;
    return HCGA_OK;
}

hcga_status blk_fill(hcga_backend *be, const char *op, const void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                     const blk_derived *derived, dnnl_memory_t from, dnnl_primitive_t reorder, blk_copy **out)
{
    hcga_status st = blk_new(be, op, p, bytes, md, derived, out);
    if (st != HCGA_OK) return st;
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, (*out)->mem}};
    dnnl_status_t s = dnnl_primitive_execute(reorder, be->stream, 2, r);
    if (s == dnnl_success) s = dnnl_stream_wait(be->stream);
    if (s != dnnl_success) {
        blk_drop(be, *out);
        *out = NULL;
        return dnn_fail(be, HCGA_ERR_DEVICE, "%s: reorder into a blocked copy failed: status %d", op, (int)s);
    }
    return HCGA_OK;
}

/* The dirty copy of exactly [p, p+bytes) that is not retired, or NULL. */
static blk_copy *dirty_copy(const dnn_blk *t, const void *p, uint64_t bytes)
{
    for (int i = t ? lower_bound(t, (uintptr_t)p) : 0; t && i < t->n && t->v[i]->lo == (const char *)p; i++) {
        blk_copy *c = t->v[i];
        if (c->bytes == bytes && c->dirty && !c->nstale && c->ndeps == 0) return c;
    }
    return NULL;
}

/* The cached reorder from format `from` to `to` (made on first use). */
static hcga_status xreorder_get(hcga_backend *be, const char *op, const dnnl_memory_desc_t *from,
                                const dnnl_memory_desc_t *to, dnnl_primitive_t *out)
{
    dnn_blk *t = be->blk;
    for (int i = 0; i < t->nxr; i++)
        if (dnnl_memory_desc_equal(&t->xr[i].from, from) && dnnl_memory_desc_equal(&t->xr[i].to, to)) {
            *out = t->xr[i].prim;
            return HCGA_OK;
        }
    if (t->nxr == t->xr_cap) {
        const int nc = t->xr_cap ? 2 * t->xr_cap : 32;
        void *nx = realloc(t->xr, (size_t)nc * sizeof *t->xr);
        if (!nx) return dnn_fail(be, HCGA_ERR_NOMEM, "%s: out of memory for a reorder", op);
        t->xr = nx;
        t->xr_cap = nc;
    }
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&rpd, from, be->engine, to, be->engine, NULL);
    if (s == dnnl_success) s = dnnl_primitive_create(&prim, rpd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (s != dnnl_success)
        return dnn_fail(be, HCGA_ERR_DEVICE, "%s: a reorder between two blocked formats failed: status %d", op,
                        (int)s);
    t->xr[t->nxr].from = *from;
    t->xr[t->nxr].to = *to;
    t->xr[t->nxr].prim = prim;
    t->nxr++;
    *out = prim;
    return HCGA_OK;
}

/* A new copy of src's region in format md, reordered from src (a dirty
 * copy): clean, since it holds src's value, which is what a write-back of
 * src would make the plain bytes. */
static hcga_status fill_from_copy(hcga_backend *be, const char *op, blk_copy *src, const dnnl_memory_desc_t *md,
                                  blk_copy **out)
{
    const dnnl_memory_desc_t *smd = NULL;
    dnnl_primitive_t prim = NULL;
    if (dnnl_memory_get_memory_desc(src->mem, &smd) != dnnl_success)
        return dnn_fail(be, HCGA_ERR_DEVICE, "%s: querying a blocked copy's format failed", op);
    hcga_status st = xreorder_get(be, op, smd, md, &prim);
    if (st != HCGA_OK) return st;
    src->pinned++; /* not evicted to make room for its own reorder */
    st = blk_fill(be, op, src->lo, src->bytes, md, NULL, src->mem, prim, out);
    src->pinned--;
    return st;
}

hcga_status blk_input(hcga_backend *be, const char *op, void *p, uint64_t bytes, const dnnl_memory_desc_t *md,
                      dnnl_memory_t user, dnnl_primitive_t reorder, blk_copy **out)
{
    blk_copy *c = blk_find(be, p, bytes, md, NULL), *src;
    if (!c && (src = dirty_copy(be->blk, p, bytes)) != NULL) { /* another format of the newest bytes */
        hcga_status st = fill_from_copy(be, op, src, md, &c);
        if (st != HCGA_OK) return st;
    } else if (!c) {
        hcga_status st = dnn_blk_before_read(be, p, bytes);
        if (st == HCGA_OK && dnnl_memory_set_data_handle(user, p) != dnnl_success)
            st = dnn_fail(be, HCGA_ERR_DEVICE, "%s: setting a reorder's source failed", op);
        if (st == HCGA_OK) st = blk_fill(be, op, p, bytes, md, NULL, user, reorder, &c);
        if (st != HCGA_OK) return st;
    }
    c->pinned = 1;
    *out = c;
    return HCGA_OK;
}

void blk_set_dirty(blk_copy *c, dnnl_primitive_t back, dnnl_memory_t plain, const void *owner)
{
    c->dirty = 1;
    c->back = back;
    c->plain = plain;
    c->owner = owner;
}

hcga_status blk_owner_gone(hcga_backend *be, const void *owner)
{
    dnn_blk *t = be->blk;
    for (int i = 0; t && i < t->n; i++)
        if (t->v[i]->dirty && t->v[i]->owner == owner) {
            hcga_status st = write_back(be, t->v[i]);
            if (st != HCGA_OK) return st;
        }
    return HCGA_OK;
}

hcga_status dnn_blk_before_read(hcga_backend *be, const void *p, uint64_t bytes)
{
    dnn_blk *t = be->blk;
    for (int i = t ? first_reaching(t, p) : 0; t && starts_before(t, i, p, bytes);) {
        blk_copy *c = t->v[i];
        if (c->dirty && overlaps(c->lo, c->bytes, p, bytes)) {
            uint64_t off, len;
            clip(c, p, bytes, &off, &len);
            if (c->nstale && stale_covers(c, off, len)) { /* the read wants newer bytes only */
                i++;
                continue;
            }
            hcga_status st = write_back(be, c);
            if (st != HCGA_OK) return st;
            if (c->nstale) { /* written back, part of it stale: of no further use */
                remove_at(be, i);
                continue;
            }
        }
        i++;
    }
    return HCGA_OK;
}

/* Does a write of [p, p+bytes) make c stale? */
static int hit_by_write(const blk_copy *c, const char *p, uint64_t bytes)
{
    if (overlaps(c->lo, c->bytes, p, bytes)) return 1;
    for (int d = 0; d < c->ndeps; d++)
        if (overlaps(c->dep[d], c->dep_bytes[d], p, bytes)) return 1;
    return 0;
}

/* Drops the derived copies one of whose inputs [p, p+bytes) overlaps. */
static void drop_derived(hcga_backend *be, const void *p, uint64_t bytes)
{
    dnn_blk *t = be->blk;
    for (int i = 0; t && t->nderived && i < t->n;) {
        if (t->v[i]->ndeps && hit_by_write(t->v[i], p, bytes)) remove_at(be, i);
        else i++;
    }
}

/* Drops the copies a write of [p, p+bytes) makes stale, except keep. */
static hcga_status drop_written(hcga_backend *be, const void *p, uint64_t bytes, const blk_copy *keep)
{
    dnn_blk *t = be->blk;
    drop_derived(be, p, bytes); /* never dirty, never keep */
    for (int i = t ? first_reaching(t, p) : 0; t && starts_before(t, i, p, bytes);) {
        blk_copy *c = t->v[i];
        if (c == keep || !hit_by_write(c, p, bytes)) {
            i++;
            continue;
        }
        /* a dirty copy the write does not cover whole keeps bytes nobody
         * has yet: it is retired (the written range recorded), or written
         * back when it has no room for another range */
        if (c->dirty && c->ndeps == 0 && !covers(p, bytes, c->lo, c->bytes)) {
            uint64_t off, len;
            clip(c, p, bytes, &off, &len);
            if (c->nstale && stale_covers(c, off, len)) { /* nothing new is stale */
                i++;
                continue;
            }
            if (c->nstale < BLK_MAX_STALE) {
                c->stale[c->nstale].off = off;
                c->stale[c->nstale].len = len;
                c->nstale++;
                be->blk_retired++;
                if (!stale_covers(c, 0, c->bytes)) {
                    i++;
                    continue;
                }
            } else {
                hcga_status st = write_back(be, c);
                if (st != HCGA_OK) return st;
            }
        }
        remove_at(be, i); /* the next copy moves to i */
    }
    return HCGA_OK;
}

hcga_status dnn_blk_before_write(hcga_backend *be, const void *p, uint64_t bytes)
{
    return drop_written(be, p, bytes, NULL);
}

hcga_status blk_replace(hcga_backend *be, blk_copy *c)
{
    return drop_written(be, c->lo, c->bytes, c);
}

int blk_has(const hcga_backend *be, const void *p, uint64_t bytes)
{
    const dnn_blk *t = be->blk;
    for (int i = t ? lower_bound(t, (uintptr_t)p) : 0; t && i < t->n && t->v[i]->lo == (const char *)p; i++)
        if (t->v[i]->bytes == bytes && t->v[i]->ndeps == 0 && !t->v[i]->nstale) return 1;
    return 0;
}

void dnn_blk_forget(hcga_backend *be, const void *p, uint64_t bytes)
{
    dnn_blk *t = be->blk;
    drop_derived(be, p, bytes);
    for (int i = t ? first_reaching(t, p) : 0; t && starts_before(t, i, p, bytes);) {
        if (hit_by_write(t->v[i], p, bytes)) remove_at(be, i);
        else i++;
    }
}

void dnn_blk_fini(hcga_backend *be)
{
    dnn_blk *t = be->blk;
    if (!t) return;
    while (t->n > 0) remove_at(be, t->n - 1);
    for (int i = 0; i < t->npool; i++) free(t->pool[i].p);
    free(t->scratch);
    for (int i = 0; i < t->nxr; i++) dnnl_primitive_destroy(t->xr[i].prim);
    free(t->xr);
    free(t->pool);
    free(t->v);
    free(t);
    be->blk = NULL;
}

int dnn_blk_count(const hcga_backend *be)
{
    return be->blk ? be->blk->peak : 0;
}

uint64_t dnn_blk_bytes(const hcga_backend *be)
{
    return be->blk ? be->blk->used : 0;
}
