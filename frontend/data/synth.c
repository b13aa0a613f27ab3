/*
 * synth.c - `hcga synth`: a synthetic occluded person re-identification
 * benchmark in the exact Market-1501 layout, with ground-truth part masks.
 *
 * Persons are drawn procedurally from identity attributes (skin, hair, head
 * shape, shirt colour and texture, trousers, shoes, optional bag and hat)
 * with per-image variation (scale, position, shear, camera background and
 * colour cast, brightness, blur, noise, JPEG quality).  Attributes come from
 * small palettes and some identities copy another's shirt, so that telling
 * people apart needs more than one part.  Occluders (boxes, poles, other
 * people) cover 20-50% of the person, mostly from below or the sides; every
 * query and a fraction of gallery/train images are occluded.
 *
 * Masks (parts/<split>/<name>.png): 0 background, 1 head, 2 upper body,
 * 3 lower body; occluder pixels are background.
 *
 * --hard makes a harder benchmark (and a varied pretraining set for hcga
 * pretrain): 300 identities by default, textured per-image backgrounds,
 * wider lighting, occluders from above that hide the head and shoulders
 * besides those from below that hide the legs, and crops that cut the
 * person's head or feet off.  The default stream of random numbers is the
 * same as without --hard, so the default benchmark is unchanged.
 * DIR/synth.txt records the seed and options (hcga pretrain reads it).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/image_io.h"
#include "data/rng.h"
#include "data/synth.h"

typedef struct rgb {
    double r, g, b;
} rgb;

/* ---- palettes ------------------------------------------------------------ */
static const rgb SKIN[] = {{236, 200, 170}, {215, 170, 130}, {180, 130, 95},
                           {140, 95, 65},   {100, 70, 50}};
static const rgb HAIR[] = {{20, 15, 10},  {70, 45, 25},   {150, 110, 60},
                           {200, 180, 120}, {120, 120, 120}, {160, 60, 30}};
static const rgb CLOTH[] = {{200, 30, 30},  {30, 60, 170},  {30, 140, 60},  {230, 210, 40},
                            {240, 240, 240}, {25, 25, 25},  {130, 40, 150}, {240, 130, 30},
                            {100, 180, 220}, {150, 150, 150}, {120, 80, 40}, {240, 150, 180}};
static const rgb TROUSER[] = {{30, 40, 90},  {20, 20, 20},   {90, 90, 95},  {150, 120, 80},
                              {200, 200, 190}, {60, 90, 50},  {110, 30, 30}, {70, 110, 160}};
static const rgb SHOE[] = {{15, 15, 15}, {240, 240, 240}, {110, 70, 40}, {170, 30, 30}, {60, 60, 150}};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { TEX_PLAIN, TEX_HSTRIPE, TEX_VSTRIPE, TEX_CHECK, TEX_COUNT };

typedef struct identity {
    rgb skin, hair, shirt, shirt2, trousers, shoes, bag, hat;
    int texture, period;
    int long_sleeves, shorts, long_hair;
    int bag_side; /* 0 none, -1 left, +1 right */
    int has_hat;
    double head_w, body_w, leg_gap;
} identity;

static rgb pick(hcga_rng *r, const rgb *pal, int n)
{
    return pal[hcga_rng_below(r, (uint64_t)n)];
}

static void make_identity(identity *id, uint64_t seed, int pid, const identity *prev)
{
    hcga_rng r;
    hcga_rng_seed(&r, seed, 0x1d00000000ull + (uint64_t)pid);
    id->skin = pick(&r, SKIN, NELEM(SKIN));
    id->hair = pick(&r, HAIR, NELEM(HAIR));
    id->shirt = pick(&r, CLOTH, NELEM(CLOTH));
    do id->shirt2 = pick(&r, CLOTH, NELEM(CLOTH));
    while (id->shirt2.r == id->shirt.r && id->shirt2.g == id->shirt.g && id->shirt2.b == id->shirt.b);
    id->texture = (int)hcga_rng_below(&r, TEX_COUNT);
    id->period = 4 + (int)hcga_rng_below(&r, 5);
    id->trousers = pick(&r, TROUSER, NELEM(TROUSER));
    id->shoes = pick(&r, SHOE, NELEM(SHOE));
    id->long_sleeves = hcga_rng_uniform(&r) < 0.5;
    id->shorts = hcga_rng_uniform(&r) < 0.2;
    id->long_hair = hcga_rng_uniform(&r) < 0.3;
    double u = hcga_rng_uniform(&r);
    id->bag_side = u < 0.15 ? -1 : (u < 0.3 ? 1 : 0);
    id->bag = pick(&r, CLOTH, NELEM(CLOTH));
    id->has_hat = hcga_rng_uniform(&r) < 0.15;
    id->hat = pick(&r, CLOTH, NELEM(CLOTH));
    id->head_w = hcga_rng_range(&r, 0.85, 1.15);
    id->body_w = hcga_rng_range(&r, 0.85, 1.2);
    id->leg_gap = hcga_rng_range(&r, 0.8, 1.3);
    /* one identity in five wears the previous identity's shirt with other trousers */
    if (prev && hcga_rng_uniform(&r) < 0.2) {
        id->shirt = prev->shirt;
        id->shirt2 = prev->shirt2;
        id->texture = prev->texture;
        id->period = prev->period;
        id->long_sleeves = prev->long_sleeves;
        while (id->trousers.r == prev->trousers.r && id->trousers.g == prev->trousers.g &&
               id->trousers.b == prev->trousers.b)
            id->trousers = pick(&r, TROUSER, NELEM(TROUSER));
    }
}

/* ---- canvas ------------------------------------------------------------- */
typedef struct canvas {
    int w, h;
    double *px;     /* w*h*3 */
    uint8_t *label; /* w*h */
} canvas;

static void put(canvas *c, int x, int y, rgb col, int label)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    double *p = c->px + ((size_t)y * c->w + x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
    if (label >= 0) c->label[(size_t)y * c->w + x] = (uint8_t)label;
}

/* A person placed on the canvas: top-left origin, height ph pixels, centre x
 * cx at the top, shear (pixels of horizontal shift per pixel of height). */
typedef struct placement {
    double cx, top, ph, shear;
} placement;

static double body_x(const placement *p, double u, double v)
{
    return p->cx + v * p->ph + p->shear * (u * p->ph);
}

/* shirt colour at canvas pixel (x, y) from the texture */
static rgb shirt_at(const identity *id, int x, int y)
{
    int k = id->period;
    switch (id->texture) {
    case TEX_HSTRIPE: return ((y / k) % 2) ? id->shirt2 : id->shirt;
    case TEX_VSTRIPE: return ((x / k) % 2) ? id->shirt2 : id->shirt;
    case TEX_CHECK: return (((x / k) + (y / k)) % 2) ? id->shirt2 : id->shirt;
    default: return id->shirt;
    }
}

/* Draw an identity.  labels: write part labels (the main person) or -2 to
 * write label 0 (an occluding person). */
static void draw_person(canvas *c, const identity *id, const placement *pl, int occluder)
{
    const double ph = pl->ph;
    int y0 = (int)floor(pl->top), y1 = (int)ceil(pl->top + ph);
    for (int y = y0; y <= y1; y++) {
        double u = (y + 0.5 - pl->top) / ph;
        if (u < 0 || u > 1) continue;
        for (int x = 0; x < c->w; x++) {
            double v = (x + 0.5 - body_x(pl, u, 0)) / ph; /* horizontal offset in person units */
            rgb col;
            int lab = -1;
            /* head, hair, hat */
            double hcx = 0, hcy = 0.09, hrx = 0.062 * id->head_w, hry = 0.075;
            double dh = (v - hcx) * (v - hcx) / (hrx * hrx) + (u - hcy) * (u - hcy) / (hry * hry);
            double bw = id->body_w;
            if (id->has_hat && u < 0.045 && fabs(v) < hrx * 1.25) {
                col = id->hat;
                lab = 1;
            } else if (dh <= 1.0) {
                int hair = u < hcy - 0.03 || (id->long_hair && fabs(v) > hrx * 0.7 && u < hcy + 0.05);
                col = hair ? id->hair : id->skin;
                lab = 1;
            } else if (id->long_hair && u >= 0.1 && u < 0.24 && fabs(v) < 0.075 * id->head_w &&
                       fabs(v) > 0.045) {
                col = id->hair;
                lab = 1;
            } else if (u >= 0.165 && u < 0.175 && fabs(v) < 0.03) {
                col = id->skin; /* neck */
                lab = 1;
            } else if (u >= 0.175 && u < 0.53) {
                double t = (u - 0.175) / (0.53 - 0.175);
                double half = (0.125 - 0.02 * t) * bw;
                double arm_in = half, arm_out = half + 0.04 * bw;
                if (fabs(v) < half) {
                    col = shirt_at(id, x, y);
                    lab = 2;
                } else if (fabs(v) < arm_out && fabs(v) >= arm_in && u < 0.5) {
                    int sleeve = id->long_sleeves || u < 0.28;
                    col = sleeve ? shirt_at(id, x, y) : id->skin;
                    if (u > 0.47) col = id->skin; /* hands */
                    lab = 2;
                } else if (id->bag_side != 0 && u > 0.3 && u < 0.5 &&
                           v * id->bag_side > arm_out && v * id->bag_side < arm_out + 0.06) {
                    col = id->bag;
                    lab = 2;
                } else {
                    continue;
                }
            } else if (u >= 0.53 && u < 0.955) {
                double gap = 0.012 * id->leg_gap;
                double lw = 0.055 * bw;
                double av = fabs(v);
                if (av < gap + lw && (av > gap || u < 0.6)) {
                    col = (id->shorts && u > 0.68) ? id->skin : id->trousers;
                    lab = 3;
                } else {
                    continue;
                }
            } else if (u >= 0.955) {
                double gap = 0.012 * id->leg_gap, lw = 0.06 * bw, av = fabs(v);
                if (av < gap + lw && av > gap * 0.5) {
                    col = id->shoes;
                    lab = 3;
                } else {
                    continue;
                }
            } else {
                continue;
            }
            put(c, x, y, col, occluder ? 0 : lab);
        }
    }
}

/* ---- backgrounds and occluders ------------------------------------------ */
static void draw_background(canvas *c, int cam, hcga_rng *r, uint64_t seed)
{
    hcga_rng cr;
    hcga_rng_seed(&cr, seed, 0xca0000ull + (uint64_t)cam);
    rgb top = {hcga_rng_range(&cr, 60, 200), hcga_rng_range(&cr, 60, 200), hcga_rng_range(&cr, 60, 200)};
    rgb bot = {hcga_rng_range(&cr, 40, 160), hcga_rng_range(&cr, 40, 160), hcga_rng_range(&cr, 40, 160)};
    double floor_at = hcga_rng_range(&cr, 0.6, 0.8);
    for (int y = 0; y < c->h; y++) {
        double t = (double)y / (c->h - 1);
        rgb col = t < floor_at ? (rgb){top.r * (1 - 0.3 * t), top.g * (1 - 0.3 * t), top.b * (1 - 0.3 * t)}
                               : bot;
        for (int x = 0; x < c->w; x++) put(c, x, y, col, 0);
    }
    /* camera-specific structures plus a few per-image ones */
    int nfix = 2 + (int)hcga_rng_below(&cr, 3);
    for (int k = 0; k < nfix + (int)hcga_rng_below(r, 3); k++) {
        hcga_rng *src = k < nfix ? &cr : r;
        int x0 = (int)hcga_rng_below(src, (uint64_t)c->w), y0 = (int)hcga_rng_below(src, (uint64_t)c->h);
        int w = 4 + (int)hcga_rng_below(src, (uint64_t)c->w / 2), h = 4 + (int)hcga_rng_below(src, (uint64_t)c->h / 3);
        rgb col = {hcga_rng_range(src, 30, 230), hcga_rng_range(src, 30, 230), hcga_rng_range(src, 30, 230)};
        for (int y = y0; y < y0 + h; y++)
            for (int x = x0; x < x0 + w; x++) put(c, x, y, col, 0);
    }
}

typedef struct box {
    int x0, y0, x1, y1; /* inclusive-exclusive */
} box;

static void fill_box(canvas *c, box b, rgb col, int textured, hcga_rng *r)
{
    rgb col2 = {col.r * 0.7, col.g * 0.7, col.b * 0.7};
    int k = 3 + (int)hcga_rng_below(r, 4);
    for (int y = b.y0; y < b.y1; y++)
        for (int x = b.x0; x < b.x1; x++) put(c, x, y, (textured && ((x / k + y / k) % 2)) ? col2 : col, 0);
}

/* Occlude 20-50% of the person's box pb; returns the mode used. */
static void occlude(canvas *c, box pb, hcga_rng *r, uint64_t seed, const identity *others, int nothers, int hard)
{
    double frac = hcga_rng_range(r, 0.2, 0.5);
    double mode = hcga_rng_uniform(r);
    int pw = pb.x1 - pb.x0, ph = pb.y1 - pb.y0;
    rgb col = {hcga_rng_range(r, 20, 235), hcga_rng_range(r, 20, 235), hcga_rng_range(r, 20, 235)};
    if (hard && hcga_rng_uniform(r) < 0.3) { /* from above: a sign, a branch, an umbrella */
        int h = (int)lround(hcga_rng_range(r, 0.1, 0.35) * ph);
        int x0 = pb.x0 - (int)hcga_rng_below(r, (uint64_t)pw / 2 + 1);
        int x1 = pb.x1 + (int)hcga_rng_below(r, (uint64_t)pw / 2 + 1);
        fill_box(c, (box){x0, 0, x1, pb.y0 + h}, col, hcga_rng_uniform(r) < 0.5, r);
    } else if (mode < 0.45) { /* object from below: car, bin, bench */
        int h = (int)lround(frac * ph);
        box b = {pb.x0 - 6, pb.y1 - h, pb.x1 + 6, c->h};
        fill_box(c, b, col, hcga_rng_uniform(r) < 0.5, r);
    } else if (mode < 0.7) { /* from a side */
        int w = (int)lround(frac * pw);
        box b = hcga_rng_uniform(r) < 0.5 ? (box){0, pb.y0 - 4, pb.x0 + w, c->h}
                                          : (box){pb.x1 - w, pb.y0 - 4, c->w, c->h};
        fill_box(c, b, col, hcga_rng_uniform(r) < 0.5, r);
    } else if (mode < 0.8) { /* pole */
        int w = (int)lround(frac * pw);
        int x0 = pb.x0 + (int)hcga_rng_below(r, (uint64_t)(pw - w > 0 ? pw - w : 1));
        fill_box(c, (box){x0, 0, x0 + w, c->h}, col, 0, r);
    } else { /* another person in front, shifted sideways */
        const identity *o = &others[hcga_rng_below(r, (uint64_t)nothers)];
        double side = hcga_rng_uniform(r) < 0.5 ? -1 : 1;
        placement pl = {(pb.x0 + pb.x1) / 2.0 + side * (1.0 - frac) * pw * 0.95,
                        pb.y0 + hcga_rng_range(r, -0.05, 0.1) * ph, ph * hcga_rng_range(r, 1.0, 1.15), 0};
        draw_person(c, o, &pl, 1);
    }
    (void)seed;
}

/* ---- one image ------------------------------------------------------------ */
typedef struct synth_opts {
    const char *out;
    int ids, cams, per_cam, distractors, width, height, qmin, qmax;
    uint64_t seed;
    double occ_query, occ_gallery, occ_train;
    int hard;
} synth_opts;

/* --hard: a per-image texture over the background (grain, stripes, checks or
 * blotches of random colour and period) */
static void texture_background(canvas *c, hcga_rng *r)
{
    int kind = (int)hcga_rng_below(r, 4), k = 2 + (int)hcga_rng_below(r, 7);
    double amp = hcga_rng_range(r, 15, 60), ang = hcga_rng_range(r, 0, 3.14159265358979);
    rgb tint = {hcga_rng_range(r, -1, 1), hcga_rng_range(r, -1, 1), hcga_rng_range(r, -1, 1)};
    double ca = cos(ang), sa = sin(ang);
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            double t;
            switch (kind) {
            case 0: t = hcga_rng_range(r, -1, 1); break;
            case 1: t = ((int)floor((x * ca + y * sa) / k) & 1) ? 1 : -1; break;
            case 2: t = (((x / k) + (y / k)) & 1) ? 1 : -1; break;
            default: t = sin(x * 0.7 / k + 1.3 * sin(y * 0.5 / k)) * cos(y * 0.9 / k); break;
            }
            double *p = c->px + ((size_t)y * c->w + x) * 3;
            p[0] += amp * t * tint.r;
            p[1] += amp * t * tint.g;
            p[2] += amp * t * tint.b;
        }
}

static int render(const synth_opts *o, const identity *id, const identity *pool, int npool,
                  int cam, int occluded, uint64_t key, hcga_image *img, hcga_image *mask)
{
    hcga_rng r;
    hcga_rng_seed(&r, o->seed, key);
    canvas c = {o->width, o->height, calloc((size_t)o->width * o->height * 3, sizeof(double)),
                calloc((size_t)o->width * o->height, 1)};
    if (!c.px || !c.label) {
        free(c.px);
        free(c.label);
        return -1;
    }
    draw_background(&c, cam, &r, o->seed);
    if (o->hard) texture_background(&c, &r);
    double ph = o->height * hcga_rng_range(&r, 0.8, 0.96);
    placement pl = {o->width / 2.0 + hcga_rng_range(&r, -0.06, 0.06) * o->width,
                    (o->height - ph) * hcga_rng_range(&r, 0.2, 0.8), ph, hcga_rng_range(&r, -0.06, 0.06)};
    if (o->hard && hcga_rng_uniform(&r) < 0.25) {
        /* a crop that cuts the person: larger than the frame, head or feet outside */
        pl.ph = ph = o->height * hcga_rng_range(&r, 1.0, 1.3);
        pl.top = hcga_rng_uniform(&r) < 0.5 ? -hcga_rng_range(&r, 0.04, 0.2) * ph
                                            : o->height - ph + hcga_rng_range(&r, 0.05, 0.25) * ph;
    }
    draw_person(&c, id, &pl, 0);
    if (occluded) {
        box pb = {(int)(pl.cx - 0.2 * ph), (int)pl.top, (int)(pl.cx + 0.2 * ph), (int)(pl.top + ph)};
        occlude(&c, pb, &r, o->seed, pool, npool, o->hard);
    }
    /* camera colour cast and per-image brightness */
    hcga_rng cr;
    hcga_rng_seed(&cr, o->seed, 0xcc0000ull + (uint64_t)cam);
    double cast[3] = {hcga_rng_range(&cr, 0.85, 1.15), hcga_rng_range(&cr, 0.85, 1.15), hcga_rng_range(&cr, 0.85, 1.15)};
    double bright = o->hard ? hcga_rng_range(&r, 0.55, 1.45) : hcga_rng_range(&r, 0.8, 1.2);
    int blur = hcga_rng_uniform(&r) < 0.3;
    double noise = hcga_rng_range(&r, 0, 6);
    int quality = o->qmin + (int)hcga_rng_below(&r, (uint64_t)(o->qmax - o->qmin + 1));
    for (int y = 0; y < c.h; y++) {
        for (int x = 0; x < c.w; x++) {
            for (int k = 0; k < 3; k++) {
                double v;
                if (blur) {
                    double s = 0;
                    int n = 0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int xx = x + dx, yy = y + dy;
                            if (xx < 0 || yy < 0 || xx >= c.w || yy >= c.h) continue;
                            s += c.px[((size_t)yy * c.w + xx) * 3 + k];
                            n++;
                        }
                    v = s / n;
                } else {
                    v = c.px[((size_t)y * c.w + x) * 3 + k];
                }
                v = v * cast[k] * bright + noise * hcga_rng_normal(&r);
                img->data[((size_t)y * c.w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
            }
            mask->data[(size_t)y * c.w + x] = c.label[(size_t)y * c.w + x];
        }
    }
    free(c.px);
    free(c.label);
    return quality;
}

static int write_pair(const synth_opts *o, const char *split, int pid, int cam, int frame, int box_no,
                      const hcga_image *img, const hcga_image *mask, int quality, char *err, size_t err_len)
{
    char name[64], path[4600];
    if (pid < 0)
        snprintf(name, sizeof name, "-1_c%ds1_%06d_%02d", cam + 1, frame, box_no);
    else
        snprintf(name, sizeof name, "%04d_c%ds1_%06d_%02d", pid, cam + 1, frame, box_no);
    snprintf(path, sizeof path, "%s/%s/%s.jpg", o->out, split, name);
    if (hcga_jpeg_write(path, img, quality, err, err_len)) return -1;
    snprintf(path, sizeof path, "%s/parts/%s/%s.png", o->out, split, name);
    return hcga_png_write(path, mask, err, err_len);
}

static const char *const SYNTH_USAGE =
    "usage: hcga synth --out DIR [options]\n"
    "Write a synthetic occluded-ReID benchmark in the Market-1501 layout:\n"
    "  DIR/bounding_box_train/, DIR/query/, DIR/bounding_box_test/ (JPEG, PPPP_cCsS_FFFFFF_BB.jpg)\n"
    "  DIR/parts/<split>/<name>.png  part masks: 0 background, 1 head, 2 upper, 3 lower body\n"
    "options:\n"
    "  --out DIR            output directory (required; created)\n"
    "  --ids N              identities, split half train / half test (default 100)\n"
    "  --cams C             cameras, >= 2 (default 4)\n"
    "  --per-cam K          images per identity per camera it appears in, >= 1 (default 3)\n"
    "  --distractors D      gallery images of other people with identity 0000 (default 40)\n"
    "  --seed S             random seed; the same seed gives the same files (default 1)\n"
    "  --width W --height H image size (default 64 x 128, Market-1501's)\n"
    "  --occ-query P        fraction of occluded query images (default 1.0)\n"
    "  --occ-gallery P      fraction of occluded gallery images (default 0.1)\n"
    "  --occ-train P        fraction of occluded training images (default 0.1)\n"
    "  --quality LO,HI      JPEG quality range (default 70,95)\n"
    "  --hard               a harder benchmark: 300 identities unless --ids, textured\n"
    "                       backgrounds, wider lighting, occluders from above (head) as\n"
    "                       well as below (legs), crops cutting off the head or the feet,\n"
    "                       30% of training images occluded unless --occ-train\n"
    "  -h, --help           this text\n";

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "hcga synth: %s: expected an integer in [%d, %d], got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_frac(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= 0 && v <= 1)) {
        fprintf(stderr, "hcga synth: %s: expected a fraction in [0, 1], got '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int hcga_synth_main(int argc, char **argv)
{
    synth_opts o = {NULL, 100, 4, 3, 40, 64, 128, 70, 95, 1, 1.0, 0.1, 0.1, 0};
    int ids_given = 0, occ_train_given = 0;
    static const struct option longopts[] = {
        {"out", required_argument, 0, 'o'},         {"ids", required_argument, 0, 'i'},
        {"cams", required_argument, 0, 'c'},        {"per-cam", required_argument, 0, 'k'},
        {"distractors", required_argument, 0, 'd'}, {"seed", required_argument, 0, 's'},
        {"width", required_argument, 0, 'W'},       {"height", required_argument, 0, 'H'},
        {"occ-query", required_argument, 0, 'q'},   {"occ-gallery", required_argument, 0, 'g'},
        {"occ-train", required_argument, 0, 't'},   {"quality", required_argument, 0, 'Q'},
        {"hard", no_argument, 0, 'X'},              {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 0; /* glibc: full reset (main.c already ran getopt) */
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'o': o.out = optarg; break;
        case 'i': bad = parse_int("--ids", optarg, 4, 100000, &o.ids), ids_given = 1; break;
        case 'X': o.hard = 1; break;
        case 'c': bad = parse_int("--cams", optarg, 2, 9, &o.cams); break;
        case 'k': bad = parse_int("--per-cam", optarg, 1, 1000, &o.per_cam); break;
        case 'd': bad = parse_int("--distractors", optarg, 0, 1000000, &o.distractors); break;
        case 's': {
            char *end;
            o.seed = strtoull(optarg, &end, 10);
            if (*end || end == optarg) {
                fprintf(stderr, "hcga synth: --seed: expected an unsigned integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'W': bad = parse_int("--width", optarg, 16, 4096, &o.width); break;
        case 'H': bad = parse_int("--height", optarg, 32, 4096, &o.height); break;
        case 'q': bad = parse_frac("--occ-query", optarg, &o.occ_query); break;
        case 'g': bad = parse_frac("--occ-gallery", optarg, &o.occ_gallery); break;
        case 't': bad = parse_frac("--occ-train", optarg, &o.occ_train), occ_train_given = 1; break;
        case 'Q':
            if (sscanf(optarg, "%d,%d", &o.qmin, &o.qmax) != 2 || o.qmin < 1 || o.qmax > 100 ||
                o.qmin > o.qmax) {
                fprintf(stderr, "hcga synth: --quality: expected LO,HI with 1 <= LO <= HI <= 100, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': fputs(SYNTH_USAGE, stdout); return 0;
        default: fputs(SYNTH_USAGE, stderr); return 2;
        }
        if (bad) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "hcga synth: unexpected argument '%s'\n%s", argv[optind], SYNTH_USAGE);
        return 2;
    }
    if (!o.out) {
        fprintf(stderr, "hcga synth: --out DIR is required\n%s", SYNTH_USAGE);
        return 2;
    }
    if (o.hard && !ids_given) o.ids = 300;
    if (o.hard && !occ_train_given) o.occ_train = 0.3;
    char err[4800];
    static const char *const splits[] = {"bounding_box_train", "query", "bounding_box_test"};
    for (int s = 0; s < 3; s++) {
        char d[4400];
        snprintf(d, sizeof d, "%s/%s", o.out, splits[s]);
        if (hcga_mkdirs(d, err, sizeof err) == 0) {
            snprintf(d, sizeof d, "%s/parts/%s", o.out, splits[s]);
            if (hcga_mkdirs(d, err, sizeof err) == 0) continue;
        }
        fprintf(stderr, "hcga synth: %s\n", err);
        return 1;
    }
    int n_train = o.ids / 2, n_test = o.ids - n_train;
    int n_pool = o.ids + o.distractors + 8;
    identity *ids = calloc((size_t)n_pool, sizeof *ids);
    hcga_image img = {0}, mask = {0};
    int rc = 1;
    if (!ids || hcga_image_alloc(&img, o.width, o.height, 3) || hcga_image_alloc(&mask, o.width, o.height, 1)) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n_pool; i++) make_identity(&ids[i], o.seed, i + 1, i > 0 ? &ids[i - 1] : NULL);
    /* occluding people are drawn from identities outside train and test */
    const identity *others = ids + o.ids;
    int n_others = n_pool - o.ids;
    int frame = 1, counts[3] = {0, 0, 0}, occluded[3] = {0, 0, 0};
    const int tty = isatty(fileno(stderr));
    for (int p = 0; p < o.ids; p++) {
        int pid = p + 1, is_train = p < n_train;
        hcga_rng r;
        hcga_rng_seed(&r, o.seed, 0x5e1ec7ull + (uint64_t)pid);
        /* cameras this identity appears in: at least two */
        int ncam = 2 + (int)hcga_rng_below(&r, (uint64_t)(o.cams - 1));
        int camlist[9];
        for (int c = 0; c < o.cams; c++) camlist[c] = c;
        for (int c = o.cams - 1; c > 0; c--) {
            int j = (int)hcga_rng_below(&r, (uint64_t)c + 1), t = camlist[c];
            camlist[c] = camlist[j];
            camlist[j] = t;
        }
        int nquery_cams = is_train ? 0 : 1 + (hcga_rng_uniform(&r) < 0.3);
        for (int ci = 0; ci < ncam; ci++) {
            int cam = camlist[ci];
            int k_imgs = 1 + (int)hcga_rng_below(&r, (uint64_t)o.per_cam) + (o.per_cam > 1);
            if (k_imgs > o.per_cam) k_imgs = o.per_cam;
            for (int k = 0; k < k_imgs + (ci < nquery_cams); k++) {
                int split = is_train ? 0 : (ci < nquery_cams && k == 0 ? 1 : 2);
                double occ_p = split == 0 ? o.occ_train : split == 1 ? o.occ_query : o.occ_gallery;
                int occ = hcga_rng_uniform(&r) < occ_p;
                uint64_t key = ((uint64_t)pid << 20) ^ ((uint64_t)cam << 12) ^ (uint64_t)k;
                int q = render(&o, &ids[p], others, n_others, cam, occ, key, &img, &mask);
                if (q < 0) {
                    snprintf(err, sizeof err, "out of memory");
                    goto fail;
                }
                if (write_pair(&o, splits[split], pid, cam, frame++, k + 1, &img, &mask, q, err, sizeof err))
                    goto fail;
                counts[split]++;
                occluded[split] += occ;
            }
        }
        if (tty && ((p + 1) % 20 == 0 || p + 1 == o.ids))
            fprintf(stderr, "\rhcga synth: identities %d/%d", p + 1, o.ids), fflush(stderr);
    }
    /* distractors: people who are in neither split, labelled 0000 */
    for (int d = 0; d < o.distractors; d++) {
        hcga_rng r;
        hcga_rng_seed(&r, o.seed, 0xd15ull + (uint64_t)d);
        int cam = (int)hcga_rng_below(&r, (uint64_t)o.cams);
        int occ = hcga_rng_uniform(&r) < o.occ_gallery;
        const identity *who = &others[hcga_rng_below(&r, (uint64_t)(n_others > 8 ? n_others - 8 : n_others))];
        int q = render(&o, who, others, n_others, cam, occ, 0xd000000000ull + (uint64_t)d, &img, &mask);
        if (q < 0) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        if (write_pair(&o, splits[2], 0, cam, frame++, 1, &img, &mask, q, err, sizeof err)) goto fail;
        counts[2]++;
        occluded[2] += occ;
    }
    if (tty) fprintf(stderr, "\r\033[K");
    {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/synth.txt", o.out);
        FILE *sf = fopen(sp, "w");
        int bad = !sf;
        if (sf) {
            bad |= fprintf(sf, "seed %llu\nids %d\nhard %d\nsize %dx%d\n", (unsigned long long)o.seed, o.ids, o.hard,
                           o.width, o.height) < 0;
            bad |= fclose(sf) != 0;
        }
        if (bad) {
            snprintf(err, sizeof err, "%s: cannot write", sp);
            goto fail;
        }
    }
    printf("hcga synth: wrote %s: train %d images of %d ids (%d occluded), query %d (%d occluded), "
           "gallery %d incl. %d distractors (%d occluded), %dx%d, seed %llu%s\n",
           o.out, counts[0], n_train, occluded[0], counts[1], occluded[1], counts[2], o.distractors,
           occluded[2], o.width, o.height, (unsigned long long)o.seed, o.hard ? ", hard" : "");
    (void)n_test;
    rc = 0;
fail:
    if (rc) fprintf(stderr, "hcga synth: %s\n", err);
    hcga_image_free(&img);
    hcga_image_free(&mask);
    free(ids);
    return rc;
}
