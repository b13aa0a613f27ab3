/*
 * vis.c - co-parsing strips, ranked lists and training curves as PNG
 * pictures (cairo: text, anti-aliased lines; image cells are composed
 * pixel by pixel so that the colours are exact).
 */
#include "vis/vis.h"

#include <cairo.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

#define MAX_SURFACE 32767 /* cairo's limit on an image surface side */

/* ---- colours ---------------------------------------------------------------- */

static const uint8_t PART_COLORS[][3] = {
    {0, 0, 0},       /* 0 background: never drawn */
    {230, 30, 30},   /* 1 head */
    {30, 200, 50},   /* 2 upper body */
    {30, 90, 240},   /* 3 lower body */
    {245, 200, 20},  /* 4 */
    {220, 40, 220},  /* 5 */
    {20, 210, 220},  /* 6 */
    {250, 130, 20},  /* 7 */
    {140, 60, 220},  /* 8 */
    {150, 220, 40},  /* 9 */
    {240, 120, 160}, /* 10 */
    {20, 130, 110},  /* 11 */
    {150, 90, 40},   /* 12 */
};
#define N_PART_COLORS ((int)(sizeof PART_COLORS / sizeof PART_COLORS[0]))

/* HSV (h in [0,1)) with full value to RGB */
static void hsv_rgb(double h, double s, double v, uint8_t rgb[3])
{
    h = (h - floor(h)) * 6.0;
    int i = (int)h;
    double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (i % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    rgb[0] = (uint8_t)lrint(255 * r);
    rgb[1] = (uint8_t)lrint(255 * g);
    rgb[2] = (uint8_t)lrint(255 * b);
}

void hcga_vis_part_color(int k, uint8_t rgb[3])
{
    if (k >= 0 && k < N_PART_COLORS) {
        memcpy(rgb, PART_COLORS[k], 3);
        return;
    }
    /* beyond the table: golden-ratio hues */
    hsv_rgb(0.13 + 0.618034 * k, 0.8, 0.9, rgb);
}

void hcga_vis_cluster_color(int k, uint8_t rgb[3])
{
    /* golden-ratio hue steps, alternating saturation/value so neighbours differ */
    double s = (k % 3 == 0) ? 0.95 : (k % 3 == 1) ? 0.65 : 0.85;
    double v = (k % 2 == 0) ? 0.95 : 0.75;
    hsv_rgb(0.02 + 0.618034 * k, s, v, rgb);
}

/* ---- cairo helpers -------------------------------------------------------------- */

/* cairo's font caches and fontconfig's configuration live until exit; release
 * them then, so that leak checkers (CI's -fsanitize=address) see no leaks. */
static void release_fonts(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}

static void register_release(void)
{
    atexit(release_fonts);
}

static pthread_once_t release_once = PTHREAD_ONCE_INIT;

static cairo_surface_t *canvas_new(int w, int h, const char *path, char *err, size_t err_len)
{
    if (w < 1 || h < 1 || w > MAX_SURFACE || h > MAX_SURFACE) {
        snprintf(err, err_len, "%s: picture would be %d x %d pixels (at most %d per side)", path, w, h,
                 MAX_SURFACE);
        return NULL;
    }
    pthread_once(&release_once, register_release);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_len, "%s: cannot create a %d x %d picture: %s", path, w, h,
                 cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return NULL;
    }
    return s;
}

static int canvas_save(cairo_surface_t *s, const char *path, char *err, size_t err_len)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    cairo_surface_flush(s);
    cairo_status_t st = cairo_surface_write_to_png(s, tmp);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_len, "%s: cannot write the PNG: %s", path,
                 st == CAIRO_STATUS_WRITE_ERROR ? strerror(errno ? errno : EIO) : cairo_status_to_string(st));
        remove(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_len, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static void set_rgb(cairo_t *cr, const uint8_t c[3])
{
    cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
}

/* Text with its baseline at y; align 0 left of x, 1 centred on x, 2 right of x.
 * Returns the advance width. */
static double text_at(cairo_t *cr, double x, double y, double size, int bold, int align, const char *s)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    double x0 = align == 1 ? x - e.x_advance / 2 : align == 2 ? x - e.x_advance : x;
    cairo_move_to(cr, x0, y);
    cairo_show_text(cr, s);
    return e.x_advance;
}

static double text_width(cairo_t *cr, double size, int bold, const char *s)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* ---- image cells ------------------------------------------------------------------ */

/* Bilinear sample of img at continuous pixel-centre coordinates. */
static void sample(const hcga_image *img, double sx, double sy, double rgb[3])
{
    if (sx < 0) sx = 0;
    if (sy < 0) sy = 0;
    if (sx > img->width - 1) sx = img->width - 1;
    if (sy > img->height - 1) sy = img->height - 1;
    int x0 = (int)sx, y0 = (int)sy;
    int x1 = x0 + 1 < img->width ? x0 + 1 : x0, y1 = y0 + 1 < img->height ? y0 + 1 : y0;
    double fx = sx - x0, fy = sy - y0;
    const int C = img->channels;
    for (int c = 0; c < 3; c++) {
        int cc = C == 3 ? c : 0;
        double a = img->data[((size_t)y0 * img->width + x0) * C + cc];
        double b = img->data[((size_t)y0 * img->width + x1) * C + cc];
        double d = img->data[((size_t)y1 * img->width + x0) * C + cc];
        double e = img->data[((size_t)y1 * img->width + x1) * C + cc];
        rgb[c] = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy;
    }
}

enum { OVL_NONE = 0, OVL_PARTS = 1, OVL_CLUSTERS = 2 };

/* Draw img scaled to dw x dh at (x0, y0) of the RGB24 surface, with the lh x lw
 * label map lab blended over it (nearest upsampling) and label borders darkened. */
static int draw_cell(cairo_surface_t *s, int x0, int y0, int dw, int dh, const hcga_image *img, const uint8_t *lab,
                     int lh, int lw, int mode, double alpha)
{
    if (dw < 1 || dh < 1) return 0;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    const int SW = cairo_image_surface_get_width(s), SH = cairo_image_surface_get_height(s);
    int *lx = NULL, *ly = NULL;
    if (lab && mode != OVL_NONE) {
        lx = malloc(sizeof(int) * (size_t)(dw + 1));
        ly = malloc(sizeof(int) * (size_t)(dh + 1));
        if (!lx || !ly) {
            free(lx);
            free(ly);
            return -1;
        }
        for (int x = 0; x <= dw; x++) lx[x] = x < dw ? (int)((x + 0.5) * lw / dw) : -1;
        for (int y = 0; y <= dh; y++) ly[y] = y < dh ? (int)((y + 0.5) * lh / dh) : -1;
    }
    uint8_t colors[256][3];
    if (lx)
        for (int k = 0; k < 256; k++) {
            if (mode == OVL_CLUSTERS) hcga_vis_cluster_color(k, colors[k]);
            else hcga_vis_part_color(k, colors[k]);
        }
    for (int y = 0; y < dh; y++) {
        int py = y0 + y;
        if (py < 0 || py >= SH) continue;
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)py * stride);
        for (int x = 0; x < dw; x++) {
            int px = x0 + x;
            if (px < 0 || px >= SW) continue;
            double rgb[3];
            sample(img, (x + 0.5) * img->width / dw - 0.5, (y + 0.5) * img->height / dh - 0.5, rgb);
            if (lx) {
                int L = lab[(size_t)ly[y] * lw + lx[x]];
                int draw = mode == OVL_CLUSTERS || L != 0;
                if (draw)
                    for (int c = 0; c < 3; c++) rgb[c] = (1 - alpha) * rgb[c] + alpha * colors[L][c];
                /* darken the last pixel before a label change (right or below) */
                int Lr = x + 1 < dw ? lab[(size_t)ly[y] * lw + lx[x + 1]] : L;
                int Lb = y + 1 < dh ? lab[(size_t)ly[y + 1] * lw + lx[x]] : L;
                if ((Lr != L && (mode == OVL_CLUSTERS || L || Lr)) || (Lb != L && (mode == OVL_CLUSTERS || L || Lb)))
                    for (int c = 0; c < 3; c++) rgb[c] *= 0.35;
            }
            uint32_t r = (uint32_t)(rgb[0] + 0.5), g = (uint32_t)(rgb[1] + 0.5), b = (uint32_t)(rgb[2] + 0.5);
            row[px] = 0xff000000u | (r << 16) | (g << 8) | b;
        }
    }
    cairo_surface_mark_dirty(s);
    free(lx);
    free(ly);
    return 0;
}

/* Fit an iw x ih image into a cw x ch cell at the given scale (shrinking when
 * it does not fit): display size and offset inside the cell. */
static void fit(int iw, int ih, int cw, int ch, int scale, int *dw, int *dh, int *ox, int *oy)
{
    double f = scale;
    if (iw * f > cw) f = (double)cw / iw;
    if (ih * f > ch) f = (double)ch / ih;
    *dw = (int)lrint(iw * f);
    *dh = (int)lrint(ih * f);
    if (*dw < 1) *dw = 1;
    if (*dh < 1) *dh = 1;
    *ox = (cw - *dw) / 2;
    *oy = (ch - *dh) / 2;
}

static int image_ok(const hcga_image *im)
{
    return im && im->data && im->width > 0 && im->height > 0 && (im->channels == 1 || im->channels == 3);
}

static const char *part_name(int k, int K)
{
    static const char *names[4] = {"background", "head", "upper body", "lower body"};
    return K == 4 && k < 4 ? names[k] : NULL;
}

/* ---- parsing strips -------------------------------------------------------------- */

int hcga_vis_parsing_strip(const char *path, const hcga_image *images, const uint8_t *const *labels, int n,
                           int lh, int lw, int num_parts, const hcga_vis_strip_opts *opts, char *err,
                           size_t err_len)
{
    hcga_vis_strip_opts o = {0};
    if (opts) o = *opts;
    o.miou = opts ? opts->miou : -1;
    const int scale = o.scale > 0 ? o.scale : 2;
    const int max_cols = o.max_cols > 0 ? o.max_cols : 16;
    const double alpha = o.alpha > 0 && o.alpha <= 1 ? o.alpha : 0.5;
    if (n < 1 || lh < 1 || lw < 1 || num_parts < 1 || num_parts > 256 || !images || !labels) {
        snprintf(err, err_len, "%s: nothing to draw (%d images, %dx%d labels, %d parts)", path, n, lh, lw, num_parts);
        return -1;
    }
    int mw = 0, mh = 0;
    for (int i = 0; i < n; i++) {
        if (!image_ok(&images[i]) || !labels[i]) {
            snprintf(err, err_len, "%s: image %d has no pixels or no labels", path, i);
            return -1;
        }
        if (images[i].width > mw) mw = images[i].width;
        if (images[i].height > mh) mh = images[i].height;
        for (int p = 0; p < lh * lw; p++)
            if (labels[i][p] >= num_parts && !o.raw_clusters) {
                snprintf(err, err_len, "%s: image %d has label %d, outside 0..%d", path, i, labels[i][p],
                         num_parts - 1);
                return -1;
            }
    }
    int have_gt = 0;
    if (o.gt)
        for (int i = 0; i < n; i++) {
            if (!o.gt[i].data) continue;
            if (o.gt[i].channels != 1 || o.gt[i].width < 1 || o.gt[i].height < 1) {
                snprintf(err, err_len, "%s: ground-truth mask %d is not a gray label map", path, i);
                return -1;
            }
            have_gt = 1;
        }
    const int CW = mw * scale, CH = mh * scale;
    const int M = 14, GAP = 6, TITLE = 36, CAP = o.captions ? 18 : 0, GUT = have_gt ? 24 : 0;
    const int LEG = o.raw_clusters ? 0 : 30;
    const int cols = n < max_cols ? n : max_cols, nrows = (n + cols - 1) / cols;
    const int rows_per = have_gt ? 2 : 1;
    const int block_h = rows_per * (CH + GAP) + CAP + GAP; /* one row of identities' images */
    long W = 2L * M + GUT + (long)cols * CW + (long)(cols - 1) * GAP;
    long H = M + TITLE + (long)nrows * block_h + LEG + M;
    if (W < 360) W = 360;
    if (W > MAX_SURFACE || H > MAX_SURFACE) {
        snprintf(err, err_len, "%s: picture would be %ld x %ld pixels (at most %d per side)", path, W, H,
                 MAX_SURFACE);
        return -1;
    }
    cairo_surface_t *s = canvas_new((int)W, (int)H, path, err, err_len);
    if (!s) return -1;
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    /* title: "identity 0005 · DFC · mIoU 0.613 · note" */
    char title[1024];
    int tl = snprintf(title, sizeof title, "%s", o.title ? o.title : "");
    const char *parts_txt[3] = {o.method, NULL, o.note};
    char miou[64] = "";
    if (o.miou >= 0) snprintf(miou, sizeof miou, "mIoU %.3f", o.miou);
    parts_txt[1] = miou[0] ? miou : NULL;
    for (int i = 0; i < 3; i++)
        if (parts_txt[i] && parts_txt[i][0] && tl < (int)sizeof title)
            tl += snprintf(title + tl, sizeof title - (size_t)tl, "%s%s", tl ? "  \xc2\xb7  " : "", parts_txt[i]);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, M, M + 18, 17, 1, 0, title);
    char sub[128];
    snprintf(sub, sizeof sub, "%d image%s", n, n == 1 ? "" : "s");
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    text_at(cr, (double)W - M, M + 18, 13, 0, 2, sub);

    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int r = i / cols, c = i % cols;
        int cx = M + GUT + c * (CW + GAP), cy = M + TITLE + r * block_h;
        int dw, dh, ox, oy;
        fit(images[i].width, images[i].height, CW, CH, scale, &dw, &dh, &ox, &oy);
        rc = draw_cell(s, cx + ox, cy + oy, dw, dh, &images[i], labels[i], lh, lw,
                       o.raw_clusters ? OVL_CLUSTERS : OVL_PARTS, alpha);
        if (!rc && have_gt) {
            const hcga_image *g = &o.gt[i];
            int gy = cy + CH + GAP;
            if (g->data) {
                rc = draw_cell(s, cx + ox, gy + oy, dw, dh, &images[i], g->data, g->height, g->width, OVL_PARTS,
                               alpha);
            } else {
                cairo_set_source_rgb(cr, 0.92, 0.92, 0.92);
                cairo_rectangle(cr, cx + ox, gy + oy, dw, dh);
                cairo_fill(cr);
                cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
                text_at(cr, cx + CW / 2.0, gy + CH / 2.0, 11, 0, 1, "no mask");
            }
        }
        if (!rc && o.captions && o.captions[i]) {
            cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
            double fs = 11;
            while (fs > 7 && text_width(cr, fs, 0, o.captions[i]) > CW) fs -= 0.5;
            text_at(cr, cx + CW / 2.0, cy + rows_per * (CH + GAP) + 12, fs, 0, 1, o.captions[i]);
        }
    }
    if (rc) snprintf(err, err_len, "%s: out of memory", path);
    /* row labels in the gutter */
    if (!rc && have_gt)
        for (int r = 0; r < nrows; r++) {
            const char *lab[2] = {o.raw_clusters ? "clusters" : "pseudo labels", "ground truth"};
            for (int k = 0; k < 2; k++) {
                double y = M + TITLE + r * block_h + k * (CH + GAP) + CH / 2.0;
                cairo_save(cr);
                cairo_translate(cr, M + 14, y);
                cairo_rotate(cr, -M_PI / 2);
                cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
                text_at(cr, 0, 0, 11, 0, 1, lab[k]);
                cairo_restore(cr);
            }
        }
    /* legend of the part colours */
    if (!rc && LEG) {
        double x = M + GUT, y = (double)H - M - LEG + 10;
        for (int k = 1; k < num_parts; k++) {
            uint8_t col[3];
            hcga_vis_part_color(k, col);
            char nm[32];
            const char *pn = part_name(k, num_parts);
            if (!pn) snprintf(nm, sizeof nm, "part %d", k);
            const char *t = pn ? pn : nm;
            double tw = text_width(cr, 12, 0, t);
            if (x + 18 + tw > W - M) break;
            set_rgb(cr, col);
            cairo_rectangle(cr, x, y, 13, 13);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            text_at(cr, x + 18, y + 11, 12, 0, 0, t);
            x += 18 + tw + 16;
        }
        const char *bgt = "background: not coloured";
        if (x + 18 + text_width(cr, 12, 0, bgt) <= W - M) {
            cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
            cairo_set_line_width(cr, 1);
            cairo_rectangle(cr, x + 0.5, y + 0.5, 12, 12);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            text_at(cr, x + 18, y + 11, 12, 0, 0, bgt);
        }
    }
    cairo_destroy(cr);
    if (!rc) rc = canvas_save(s, path, err, err_len);
    cairo_surface_destroy(s);
    return rc;
}

/* ---- ranked lists ------------------------------------------------------------------ */

static const uint8_t COL_QUERY[3] = {40, 100, 230}, COL_MATCH[3] = {20, 190, 40}, COL_WRONG[3] = {230, 25, 25};

static int ranklist_draw(const char *path, const hcga_image *query, const int64_t *qvis, const hcga_image *gallery,
                         const int *match, const int64_t *gvis, const float *dist, int k, int nparts,
                         const char *const *captions, const char *title, const char *score_fmt, char *err,
                         size_t err_len)
{
    if (k < 0 || nparts < 0 || nparts > 64 || !image_ok(query) || (k > 0 && (!gallery || !match || !dist))) {
        snprintf(err, err_len, "%s: nothing to draw (query image missing or %d gallery images, %d parts)", path, k,
                 nparts);
        return -1;
    }
    for (int i = 0; i < k; i++)
        if (!image_ok(&gallery[i])) {
            snprintf(err, err_len, "%s: gallery image %d has no pixels", path, i);
            return -1;
        }
    /* common display height 256 (or 2x a smaller image), width by aspect */
    const int DH = 256, B = 5, M = 14, GAP = 8, SEP = 22, HEAD = 22, TITLE = title ? 34 : 0;
    const int SQ = nparts > 0 && (qvis || gvis) ? 14 : 0, CAP = captions ? 18 : 0;
    int maxw = 0;
    for (int i = 0; i <= k; i++) {
        const hcga_image *im = i == 0 ? query : &gallery[i - 1];
        int w = (int)lrint((double)im->width * DH / im->height);
        if (w > maxw) maxw = w;
    }
    if (maxw > 4 * DH) maxw = 4 * DH;
    if (maxw < 40) maxw = 40;
    const int CW = maxw + 2 * B, CH = DH + 2 * B;
    long W = 2L * M + (long)(k + 1) * CW + (long)k * GAP + (k > 0 ? SEP : 0);
    long H = (long)M + TITLE + HEAD + CH + (SQ ? SQ + 8 : 0) + CAP + M;
    if (W > MAX_SURFACE) {
        snprintf(err, err_len, "%s: picture would be %ld pixels wide (at most %d)", path, W, MAX_SURFACE);
        return -1;
    }
    cairo_surface_t *s = canvas_new((int)W, (int)H, path, err, err_len);
    if (!s) return -1;
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (title) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, M, M + 18, 16, 1, 0, title);
    }
    int rc = 0;
    for (int i = 0; i <= k && !rc; i++) {
        const hcga_image *im = i == 0 ? query : &gallery[i - 1];
        int x = M + i * (CW + GAP) + (i > 0 ? SEP : 0), y = M + TITLE + HEAD;
        const uint8_t *bc = i == 0 ? COL_QUERY : match[i - 1] ? COL_MATCH : COL_WRONG;
        /* header: "query" or "#r  score" */
        char head[96];
        if (i == 0) snprintf(head, sizeof head, "query");
        else {
            char sc[48];
            snprintf(sc, sizeof sc, score_fmt, (double)dist[i - 1]);
            snprintf(head, sizeof head, "#%d  %s", i, sc);
        }
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        double fs = 13;
        while (fs > 8 && text_width(cr, fs, i == 0, head) > CW) fs -= 0.5;
        text_at(cr, x + CW / 2.0, y - 7, fs, i == 0, 1, head);
        /* border, then the image inside it */
        set_rgb(cr, bc);
        cairo_rectangle(cr, x, y, CW, CH);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_rectangle(cr, x + B, y + B, CW - 2 * B, CH - 2 * B);
        cairo_fill(cr);
        int dw, dh, ox, oy;
        fit(im->width, im->height, CW - 2 * B, CH - 2 * B, 1 << 20, &dw, &dh, &ox, &oy);
        if (draw_cell(s, x + B + ox, y + B + oy, dw, dh, im, NULL, 0, 0, OVL_NONE, 0)) rc = -1;
        /* visible parts */
        const int64_t *vis = i == 0 ? qvis : gvis ? gvis + (size_t)(i - 1) * nparts : NULL;
        if (SQ && vis) {
            double total = nparts * SQ + (nparts - 1) * 4.0, sx = x + (CW - total) / 2, sy = y + CH + 6;
            for (int p = 0; p < nparts; p++) {
                uint8_t col[3];
                hcga_vis_part_color(p + 1, col);
                double px = sx + p * (SQ + 4);
                if (vis[p]) {
                    set_rgb(cr, col);
                    cairo_rectangle(cr, px, sy, SQ, SQ);
                    cairo_fill(cr);
                } else {
                    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
                    cairo_set_line_width(cr, 1.5);
                    cairo_rectangle(cr, px + 0.75, sy + 0.75, SQ - 1.5, SQ - 1.5);
                    cairo_stroke(cr);
                }
            }
        }
        if (captions && captions[i]) {
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            double cs = 11;
            while (cs > 7 && text_width(cr, cs, 0, captions[i]) > CW) cs -= 0.5;
            text_at(cr, x + CW / 2.0, y + CH + (SQ ? SQ + 8 : 0) + 14, cs, 0, 1, captions[i]);
        }
    }
    if (rc) snprintf(err, err_len, "%s: out of memory", path);
    if (!rc && k > 0) { /* separator between the query and the gallery */
        double sx = M + CW + GAP + SEP / 2.0 - GAP / 2.0;
        cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, sx, M + TITLE + HEAD);
        cairo_line_to(cr, sx, M + TITLE + HEAD + CH);
        cairo_stroke(cr);
    }
    cairo_destroy(cr);
    if (!rc) rc = canvas_save(s, path, err, err_len);
    cairo_surface_destroy(s);
    return rc;
}

int hcga_vis_ranklist(const char *path, const hcga_image *query, const int64_t *qvis, const hcga_image *gallery,
                      const int *match, const int64_t *gvis, const float *dist, int k, int nparts,
                      const char *const *captions, const char *title, char *err, size_t err_len)
{
    return ranklist_draw(path, query, qvis, gallery, match, gvis, dist, k, nparts, captions, title, "%.3f", err,
                         err_len);
}

#define RANK_TOP 10

/* dist: nq rows (the first nq queries of ds) x ng; negate: show -dist as a similarity */
static int ranklists_impl(const char *outdir, int nq, const hcga_dataset *ds, const float *dist,
                          const int64_t *qvis, const int64_t *gvis, int nparts, int negate, char *err,
                          size_t err_len)
{
    const int ng = ds->gallery.count;
    if (hcga_mkdirs(outdir, err, err_len)) return -1;
    int written = 0;
    for (int q = 0; q < nq; q++) {
        const hcga_item *qi = &ds->query.items[q];
        const float *d = dist + (size_t)q * ng;
        int top[RANK_TOP], k = 0;
        /* top RANK_TOP valid gallery images by distance, ties by index */
        for (; k < RANK_TOP; k++) {
            int best = -1;
            for (int j = 0; j < ng; j++) {
                const hcga_item *gi = &ds->gallery.items[j];
                if (gi->pid == -1 || (gi->pid == qi->pid && gi->cam == qi->cam)) continue;
                int used = 0;
                for (int t = 0; t < k; t++) used |= top[t] == j;
                if (used) continue;
                if (best < 0 || d[j] < d[best]) best = j;
            }
            if (best < 0) break;
            top[k] = best;
        }
        hcga_image qimg = {0}, gimg[RANK_TOP];
        memset(gimg, 0, sizeof gimg);
        int match[RANK_TOP];
        float score[RANK_TOP];
        int64_t gv[RANK_TOP * 64];
        char capbuf[RANK_TOP + 1][96];
        const char *caps[RANK_TOP + 1];
        int rc = hcga_jpeg_read(qi->path, &qimg, err, err_len);
        for (int t = 0; t < k && !rc; t++) {
            const hcga_item *gi = &ds->gallery.items[top[t]];
            rc = hcga_jpeg_read(gi->path, &gimg[t], err, err_len);
            match[t] = gi->pid == qi->pid;
            score[t] = negate ? -d[top[t]] : d[top[t]];
            if (gvis && nparts <= 64)
                memcpy(gv + (size_t)t * nparts, gvis + (size_t)top[t] * nparts, sizeof(int64_t) * (size_t)nparts);
            snprintf(capbuf[t + 1], sizeof capbuf[t + 1], "id %04d  cam %d", gi->pid, gi->cam + 1);
            caps[t + 1] = capbuf[t + 1];
        }
        snprintf(capbuf[0], sizeof capbuf[0], "id %04d  cam %d", qi->pid, qi->cam + 1);
        caps[0] = capbuf[0];
        if (!rc) {
            char path[8192], title[512];
            snprintf(path, sizeof path, "%s/rank_%04d_%s.png", outdir, q, qi->name);
            int correct = 0;
            for (int t = 0; t < k; t++) correct += match[t];
            /* rank of the first correct match among the valid gallery images */
            int jm = -1;
            for (int j = 0; j < ng; j++) {
                const hcga_item *gi = &ds->gallery.items[j];
                if (gi->pid == qi->pid && gi->cam != qi->cam && (jm < 0 || d[j] < d[jm])) jm = j;
            }
            char first[64];
            if (jm < 0) snprintf(first, sizeof first, "no correct match in the gallery");
            else {
                int rank = 1;
                for (int j = 0; j < ng; j++) {
                    const hcga_item *gi = &ds->gallery.items[j];
                    if (gi->pid == -1 || (gi->pid == qi->pid && gi->cam == qi->cam)) continue;
                    if (d[j] < d[jm] || (d[j] == d[jm] && j < jm)) rank++;
                }
                snprintf(first, sizeof first, "first correct match at rank %d", rank);
            }
            snprintf(title, sizeof title,
                     "query %d: %s  \xc2\xb7  %d of the top %d are identity %04d  \xc2\xb7  %s  \xc2\xb7  %s", q,
                     qi->name, correct, k, qi->pid, first, negate ? "scores: ARM similarity" : "scores: distance");
            rc = ranklist_draw(path, &qimg, qvis ? qvis + (size_t)q * nparts : NULL, gimg, match,
                               gvis && nparts <= 64 ? gv : NULL, score, k, nparts, caps, title, "%.3f", err, err_len);
        }
        hcga_image_free(&qimg);
        for (int t = 0; t < k; t++) hcga_image_free(&gimg[t]);
        if (rc) return -1;
        written++;
    }
    return written;
}

int hcga_vis_ranklists(const char *outdir, int N, const hcga_dataset *ds, const float *dist, const int64_t *qvis,
                       const int64_t *gvis, int nparts, char *err, size_t err_len)
{
    if (!ds || !dist || N < 0 || nparts < 0 || nparts > 64) {
        snprintf(err, err_len, "%s: ranked lists need a dataset, distances and 0..64 parts", outdir);
        return -1;
    }
    int nq = N < ds->query.count ? N : ds->query.count;
    return ranklists_impl(outdir, nq, ds, dist, qvis, gvis, nparts, 0, err, err_len);
}

int hcga_vis_ranklists_features(const char *outdir, int N, const hcga_dataset *ds, const hcga_features *q,
                                const hcga_features *g, hcga_match mode, int feat_norm, char *err,
                                size_t err_len)
{
    if (!ds || !q || !g || q->n != ds->query.count || g->n != ds->gallery.count || q->d != g->d ||
        q->nparts != g->nparts || q->dg != g->dg) {
        snprintf(err, err_len, "%s: the features do not belong to the dataset's query/gallery splits", outdir);
        return -1;
    }
    if (q->nparts > 64) {
        snprintf(err, err_len, "%s: %d parts (at most 64 are drawn)", outdir, q->nparts);
        return -1;
    }
    const int nq = N < q->n ? N : q->n, ng = g->n;
    if (nq <= 0) return 0;
    float *dist = malloc(sizeof(float) * (size_t)nq * ng);
    float *xa = NULL, *xb = NULL;
    int rc = -1;
    if (!dist) goto oom;
    if (mode == HCGA_MATCH_ARM) {
        hcga_dist_arm(q->fore, q->part, q->vis, nq, g->fore, g->part, g->vis, ng, q->nparts, q->d, dist);
    } else if (mode == HCGA_MATCH_GLOBAL) {
        hcga_dist_euclidean(q->global, nq, g->global, ng, q->dg, feat_norm, dist);
    } else {
        /* concatenated global, foreground and part features (as hcga test --concat) */
        const int D = q->dg + q->d + q->nparts * q->d;
        xa = malloc(sizeof(float) * (size_t)nq * D);
        xb = malloc(sizeof(float) * (size_t)ng * D);
        if (!xa || !xb) goto oom;
        for (int s = 0; s < 2; s++) {
            const hcga_features *f = s ? g : q;
            float *x = s ? xb : xa;
            int n = s ? ng : nq;
            for (int i = 0; i < n; i++) {
                float *r = x + (size_t)i * D;
                memcpy(r, f->global + (size_t)i * f->dg, sizeof(float) * (size_t)f->dg);
                memcpy(r + f->dg, f->fore + (size_t)i * f->d, sizeof(float) * (size_t)f->d);
                memcpy(r + f->dg + f->d, f->part + (size_t)i * f->nparts * f->d,
                       sizeof(float) * (size_t)f->nparts * f->d);
            }
        }
        hcga_dist_euclidean(xa, nq, xb, ng, D, feat_norm, dist);
    }
    rc = ranklists_impl(outdir, nq, ds, dist, q->vis, g->vis, q->nparts, mode == HCGA_MATCH_ARM, err, err_len);
    free(dist);
    free(xa);
    free(xb);
    return rc;
oom:
    snprintf(err, err_len, "%s: out of memory for a %d x %d distance matrix", outdir, nq, ng);
    free(dist);
    free(xa);
    free(xb);
    return -1;
}

/* ---- training curves --------------------------------------------------------------- */

typedef struct pt {
    int epoch, line;
    double v;
} pt;

typedef struct series {
    pt *p;
    int n, cap;
} series;

static int series_add(series *s, int epoch, int line, double v)
{
    if (s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 64;
        pt *np = realloc(s->p, sizeof(pt) * (size_t)nc);
        if (!np) return -1;
        s->p = np;
        s->cap = nc;
    }
    s->p[s->n++] = (pt){epoch, line, v};
    return 0;
}

static int pt_cmp(const void *a, const void *b)
{
    const pt *x = a, *y = b;
    if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* sort by epoch; of several points for one epoch keep the last written */
static void series_finish(series *s)
{
    if (s->n < 2) return;
    qsort(s->p, (size_t)s->n, sizeof(pt), pt_cmp);
    int m = 0;
    for (int i = 0; i < s->n; i++) {
        if (m > 0 && s->p[m - 1].epoch == s->p[i].epoch) s->p[m - 1] = s->p[i];
        else s->p[m++] = s->p[i];
    }
    s->n = m;
}

/* "nice" tick step for a range with about `target` ticks */
static double nice_step(double range, int target)
{
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

typedef struct plot_line {
    const series *s;
    const char *label;
    double r, g, b;
    int dashed;
    double scale; /* values are multiplied by this (e.g. 100 for percent) */
} plot_line;

static void fmt_tick(char *buf, size_t len, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, len, "%.*f", dec, v);
}

/* One panel with axes, grid, ticks, lines, markers, a title and a legend.
 * marks (may be NULL): epochs drawn as dotted vertical lines, legend mark_label. */
static void plot_panel(cairo_t *cr, double x0, double y0, double w, double h, const char *title, const char *ylabel,
                       const plot_line *lines, int nl, const series *marks, const char *mark_label, double emin,
                       double emax)
{
    const double L = 62, R = 18, T = 54, Bm = 46;
    double px = x0 + L, py = y0 + T, pw = w - L - R, ph = h - T - Bm;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, x0 + L, y0 + 20, 15, 1, 0, title);
    /* y range */
    double lo = INFINITY, hi = -INFINITY;
    int npts = 0;
    for (int i = 0; i < nl; i++)
        for (int k = 0; k < lines[i].s->n; k++) {
            double v = lines[i].s->p[k].v * lines[i].scale;
            if (!isfinite(v)) continue;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            npts++;
        }
    if (!npts) {
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        text_at(cr, px + pw / 2, py + ph / 2, 14, 0, 1, "no evaluation in the metrics file yet");
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_line_width(cr, 1);
        cairo_rectangle(cr, px + 0.5, py + 0.5, pw, ph);
        cairo_stroke(cr);
        return;
    }
    if (hi - lo < 1e-9 * fmax(1, fabs(hi))) {
        double d = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    /* a little room above and below the data, then round out to ticks */
    const int nonneg = lo >= 0;
    double pad = 0.04 * (hi - lo);
    lo -= pad;
    hi += pad;
    double ys = nice_step(hi - lo, 5);
    double ylo = floor(lo / ys) * ys, yhi = ceil(hi / ys) * ys;
    if (nonneg && ylo < 0) ylo = 0;
    /* x range: epochs (co-parsing marks sit half an epoch before theirs), integer ticks */
    double xlo = emin, xhi = emax;
    double xpad = fmax(0.3, 0.03 * (xhi - xlo));
    xlo -= xpad;
    xhi += xpad;
    double xs = nice_step(xhi - xlo, 8);
    if (xs < 1) xs = 1;
#define MX(e) (px + ((e) - xlo) / (xhi - xlo) * pw)
#define MY(v) (py + ph - ((v) - ylo) / (yhi - ylo) * ph)
    /* grid and ticks */
    cairo_set_line_width(cr, 1);
    char buf[64];
    for (double v = ylo; v <= yhi + ys * 1e-6; v += ys) {
        double yy = floor(MY(v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px, yy);
        cairo_line_to(cr, px + pw, yy);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_move_to(cr, px - 5, yy);
        cairo_line_to(cr, px, yy);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, ys);
        text_at(cr, px - 8, yy + 4, 11, 0, 2, buf);
    }
    for (double e = ceil(xlo / xs) * xs; e <= xhi + 1e-9; e += xs) {
        double xx = floor(MX(e)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, xx, py);
        cairo_line_to(cr, xx, py + ph);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_move_to(cr, xx, py + ph);
        cairo_line_to(cr, xx, py + ph + 5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.0f", e);
        text_at(cr, xx, py + ph + 18, 11, 0, 1, buf);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text_at(cr, px + pw / 2, py + ph + 38, 12, 0, 1, "epoch");
    cairo_save(cr);
    cairo_translate(cr, x0 + 16, py + ph / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, 12, 0, 1, ylabel);
    cairo_restore(cr);
    /* co-parsing marks */
    cairo_save(cr);
    cairo_rectangle(cr, px, py, pw, ph);
    cairo_clip(cr);
    if (marks && marks->n) {
        double dash[2] = {2, 4};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_source_rgb(cr, 0.55, 0.4, 0.7);
        cairo_set_line_width(cr, 1.2);
        for (int k = 0; k < marks->n; k++) {
            double xx = MX(marks->p[k].epoch - 0.5); /* the round runs before its epoch's training */
            cairo_move_to(cr, xx, py);
            cairo_line_to(cr, xx, py + ph);
            cairo_stroke(cr);
        }
        cairo_set_dash(cr, NULL, 0, 0);
    }
    /* lines and markers */
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int i = 0; i < nl; i++) {
        const series *s = lines[i].s;
        cairo_set_source_rgb(cr, lines[i].r, lines[i].g, lines[i].b);
        cairo_set_line_width(cr, 2.2);
        if (lines[i].dashed) {
            double dash[2] = {7, 4};
            cairo_set_dash(cr, dash, 2, 0);
        }
        int started = 0;
        for (int k = 0; k < s->n; k++) {
            double v = s->p[k].v * lines[i].scale;
            if (!isfinite(v)) {
                started = 0;
                continue;
            }
            if (!started) cairo_move_to(cr, MX(s->p[k].epoch), MY(v));
            else cairo_line_to(cr, MX(s->p[k].epoch), MY(v));
            started = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (s->n <= 40)
            for (int k = 0; k < s->n; k++) {
                double v = s->p[k].v * lines[i].scale;
                if (!isfinite(v)) continue;
                cairo_arc(cr, MX(s->p[k].epoch), MY(v), 3.2, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);
    /* frame */
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, floor(px) + 0.5, floor(py) + 0.5, floor(pw), floor(ph));
    cairo_stroke(cr);
    /* legend: one row under the title */
    double lx = px, ly = y0 + 40;
    for (int i = 0; i <= nl; i++) {
        int is_mark = i == nl;
        if (is_mark ? !(marks && marks->n) : !lines[i].s->n) continue;
        const char *lab = is_mark ? mark_label : lines[i].label;
        double tw = text_width(cr, 11, 0, lab);
        if (lx + 30 + tw > px + pw) break;
        if (is_mark) {
            double dash[2] = {2, 4};
            cairo_set_dash(cr, dash, 2, 0);
            cairo_set_source_rgb(cr, 0.55, 0.4, 0.7);
            cairo_set_line_width(cr, 1.2);
            cairo_move_to(cr, lx + 12, ly - 8);
            cairo_line_to(cr, lx + 12, ly + 6);
        } else {
            if (lines[i].dashed) {
                double dash[2] = {7, 4};
                cairo_set_dash(cr, dash, 2, 0);
            }
            cairo_set_source_rgb(cr, lines[i].r, lines[i].g, lines[i].b);
            cairo_set_line_width(cr, 2.2);
            cairo_move_to(cr, lx, ly - 1);
            cairo_line_to(cr, lx + 24, ly - 1);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text_at(cr, lx + 30, ly + 3, 11, 0, 0, lab);
        lx += 30 + tw + 18;
    }
#undef MX
#undef MY
}

static int get_number(json_t *o, const char *key, const char *path, int line, int *present, double *v, char *err,
                      size_t err_len)
{
    json_t *j = json_object_get(o, key);
    *present = j != NULL;
    if (!j) return 0;
    if (!json_is_number(j)) {
        snprintf(err, err_len, "%s:%d: \"%s\" is not a number", path, line, key);
        return -1;
    }
    *v = json_number_value(j);
    return 0;
}

int hcga_vis_curves(const char *png_path, const char *metrics_path, int width, int height, char *err,
                    size_t err_len)
{
    if (width == 0 && height == 0) width = 1200, height = 450;
    if (width < 320 || height < 200 || width > 8000 || height > 8000) {
        snprintf(err, err_len, "%s: curves picture size %d x %d outside 320x200..8000x8000", png_path, width, height);
        return -1;
    }
    FILE *f = fopen(metrics_path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", metrics_path, strerror(errno));
        return -1;
    }
    enum { S_LOSS, S_ACC, S_ARM_MAP, S_ARM_R1, S_GLB_MAP, S_GLB_R1, S_COPARSE, S_COUNT };
    series s[S_COUNT];
    memset(s, 0, sizeof s);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int line = 0, rc = 0;
    while (!rc && (len = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
            buf[--len] = '\0';
        size_t skip = strspn(buf, " \t");
        if (buf[skip] == '\0') continue;
        json_error_t je;
        json_t *o = json_loadb(buf, (size_t)len, 0, &je);
        if (!o) {
            snprintf(err, err_len, "%s:%d: not JSON: %s (column %d)", metrics_path, line, je.text, je.column);
            rc = -1;
            break;
        }
        json_t *ep = json_object_get(o, "epoch");
        if (!json_is_object(o) || !json_is_integer(ep) || json_integer_value(ep) < 0 ||
            json_integer_value(ep) > 100000000) {
            snprintf(err, err_len, "%s:%d: not a metrics record (a JSON object with an integer \"epoch\")",
                     metrics_path, line);
            json_decref(o);
            rc = -1;
            break;
        }
        int epoch = (int)json_integer_value(ep), has;
        double v;
        json_t *ev = json_object_get(o, "eval");
        if (ev) {
            if (!json_is_string(ev)) {
                snprintf(err, err_len, "%s:%d: \"eval\" is not a string", metrics_path, line);
                rc = -1;
            } else {
                const char *kind = json_string_value(ev);
                int base = !strcmp(kind, "arm") ? S_ARM_MAP : !strcmp(kind, "global") ? S_GLB_MAP : -1;
                if (base >= 0) {
                    rc = get_number(o, "map", metrics_path, line, &has, &v, err, err_len);
                    if (!rc && has && series_add(&s[base], epoch, line, v)) rc = -2;
                    if (!rc) rc = get_number(o, "rank1", metrics_path, line, &has, &v, err, err_len);
                    if (!rc && has && series_add(&s[base + 1], epoch, line, v)) rc = -2;
                }
            }
        } else if (json_object_get(o, "coparse_round")) {
            if (series_add(&s[S_COPARSE], epoch, line, 0)) rc = -2;
        } else {
            rc = get_number(o, "loss", metrics_path, line, &has, &v, err, err_len);
            if (!rc && has && series_add(&s[S_LOSS], epoch, line, v)) rc = -2;
            if (!rc) rc = get_number(o, "acc", metrics_path, line, &has, &v, err, err_len);
            if (!rc && has && series_add(&s[S_ACC], epoch, line, v)) rc = -2;
        }
        json_decref(o);
    }
    if (!rc && ferror(f)) {
        snprintf(err, err_len, "%s: read error: %s", metrics_path, strerror(errno));
        rc = -1;
    }
    free(buf);
    fclose(f);
    if (rc == -2) {
        snprintf(err, err_len, "%s: out of memory", metrics_path);
        rc = -1;
    }
    if (!rc && s[S_LOSS].n == 0) {
        snprintf(err, err_len, "%s: no training epoch (a line with \"epoch\" and \"loss\") in %d line%s",
                 metrics_path, line, line == 1 ? "" : "s");
        rc = -1;
    }
    cairo_surface_t *sf = NULL;
    if (!rc) {
        for (int i = 0; i < S_COUNT; i++) series_finish(&s[i]);
        int emin = s[S_LOSS].p[0].epoch, emax = s[S_LOSS].p[s[S_LOSS].n - 1].epoch;
        for (int i = 0; i < S_COUNT; i++)
            if (s[i].n) {
                if (s[i].p[0].epoch < emin) emin = s[i].p[0].epoch;
                if (s[i].p[s[i].n - 1].epoch > emax) emax = s[i].p[s[i].n - 1].epoch;
            }
        /* both panels share the epoch axis; co-parsing marks sit half an epoch before theirs */
        double xmin = emin;
        if (s[S_COPARSE].n) xmin = fmin(xmin, s[S_COPARSE].p[0].epoch - 0.5);
        sf = canvas_new(width, height, png_path, err, err_len);
        if (!sf) rc = -1;
        else {
            cairo_t *cr = cairo_create(sf);
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_paint(cr);
            double half = width / 2.0;
            plot_line ll[2] = {{&s[S_LOSS], "loss (total)", 0.85, 0.33, 0.1, 0, 1},
                               {&s[S_ACC], "", 0, 0, 0, 0, 1}};
            plot_panel(cr, 0, 0, half, height, "Training loss", "loss", ll, 1, &s[S_COPARSE], "co-parsing round (before the epoch)", xmin,
                       emax);
            plot_line el[4] = {{&s[S_ARM_MAP], "mAP (ARM)", 0.12, 0.35, 0.85, 0, 100},
                               {&s[S_GLB_MAP], "mAP (global)", 0.1, 0.65, 0.3, 0, 100},
                               {&s[S_ARM_R1], "Rank-1 (ARM)", 0.12, 0.35, 0.85, 1, 100},
                               {&s[S_GLB_R1], "Rank-1 (global)", 0.1, 0.65, 0.3, 1, 100}};
            plot_panel(cr, half, 0, width - half, height, "Evaluation (query vs gallery)", "percent", el, 4, NULL, NULL,
                       xmin, emax);
            cairo_destroy(cr);
            rc = canvas_save(sf, png_path, err, err_len);
        }
    }
    if (sf) cairo_surface_destroy(sf);
    for (int i = 0; i < S_COUNT; i++) free(s[i].p);
    return rc;
}
