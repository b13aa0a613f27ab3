/*
 * shapefile.h - the conformance suite's shape files: one op call per line.
 *
 * Format (full description in conformance/README.md):
 *
 *   OP DTYPE in=T,T,... out=T,... [key=value ...]      # comment
 *
 *   OP     an op name as printed by hcga_op_name() ("conv2d_fwd")
 *   DTYPE  the call's float dtype: f32, f64, bf16 or f16 (i64/i32 for a
 *          FILL of an index tensor, the only op without a float tensor).
 *          `hcga conformance --dtype` maps it: in an f32/f64 run the tensors
 *          of DTYPE take the run's dtype (f32 <-> f64 swap for a converting
 *          copy), in a bf16/f16 run every float tensor does; a CAST line
 *          runs as written, in the run of its narrowest dtype (f16, else
 *          bf16, else f32, else f64)
 *   T      a tensor: dims joined by 'x' ("2x64x128x64"), "()" for a 0-d
 *          scalar, "-" for an absent optional slot; optionally followed by
 *          "@" and strides joined by 'x' (COPY only; elements) and/or ":" and
 *          a dtype when it differs from the slot's default (index slots
 *          default to i64, every other slot to DTYPE): "out=4x5:bf16" (a
 *          CAST's per-tensor dtypes, a COPY's conversion).
 *   key=value  the hcga_op_params fields the op uses (see README), e.g.
 *          stride=2,2 pad=1,1 dilation=1,1 for the convolutions; and
 *          gen=NAME, a conformance input-generation variant (README; CAST:
 *          ties, special, subnormal).
 *
 * Blank lines and lines starting with '#' are ignored.
 */
#ifndef HCGA_SHAPEFILE_H
#define HCGA_SHAPEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "hcga_plugin.h"

typedef struct hcga_shape_tensor {
    int present;                   /* 0: absent optional slot ("-") */
    int dtype;                     /* hcga_dtype */
    int ndim;                      /* 0..HCGA_MAX_DIMS */
    int strided;                   /* 1 when stride[] was given explicitly */
    int64_t shape[HCGA_MAX_DIMS];
    int64_t stride[HCGA_MAX_DIMS]; /* always filled (C-contiguous unless strided) */
} hcga_shape_tensor;

typedef struct hcga_shape_case {
    int op;          /* hcga_op */
    int dtype;       /* the line's DTYPE */
    int num_in, num_out;
    hcga_shape_tensor in[HCGA_MAX_OP_IN];
    hcga_shape_tensor out[HCGA_MAX_OP_OUT];
    hcga_op_params p;
    int alias_c_y;   /* GEMM: in[2] aliases out[0] */
    char gen[32];    /* input-generation variant ("gen=NAME"), "" for the default */
    int line;        /* 1-based line number in its file (0 if not from a file) */
} hcga_shape_case;

/* The hcga_op_params group an op reads (the catalogue's `params` column). */
hcga_param_group hcga_shapefile_param_group(int op);

/* 1 if in[slot] (is_out = 0) or out[slot] (is_out = 1) of op is an index
 * tensor (labels, argmax, triplet's hard pairs): its default dtype is i64. */
int hcga_shapefile_index_slot(int op, int is_out, int slot);

/* Op name -> hcga_op, or -1. */
int hcga_op_from_name(const char *name);

/* Set the defaults of op's parameter group (eps 1e-5, momentum 0.1,
 * dilation 1, factor 2, ...) in p, zeroing the rest. */
void hcga_shapefile_default_params(int op, hcga_op_params *p);

/* Parse one line.  Returns 1 when a case was parsed into *c, 0 for a blank or
 * comment line, -1 on error with one line in err (without file/line prefix). */
int hcga_shapefile_parse_line(const char *line, hcga_shape_case *c, char *err, size_t err_len);

/* Load every case of a file.  Returns 0 and a malloc'd array (*cases, *n), or
 * -1 with "FILE:LINE: message" in err. */
int hcga_shapefile_load(const char *path, hcga_shape_case **cases, int *n, char *err,
                        size_t err_len);

/* Format a case or an op call as one line (no newline).  Returns the length
 * it needs (like snprintf); buf may be NULL when len is 0. */
int hcga_shapefile_format_case(char *buf, size_t len, const hcga_shape_case *c);
int hcga_shapefile_format(char *buf, size_t len, const hcga_op_args *a);

/* Convert an op call (descriptors only: buf/offset are ignored) into a case.
 * Returns 0, or -1 with err when the call cannot be described (bad op,
 * too many slots, negative strides). */
int hcga_shapefile_from_args(const hcga_op_args *a, hcga_shape_case *c, char *err,
                             size_t err_len);

/* Write one line for the op call (with a trailing newline) to f.  For the
 * extraction of every distinct op call of a graph: format
 * with hcga_shapefile_format and compare strings to deduplicate. */
void hcga_shapefile_write(FILE *f, const hcga_op_args *a);

#endif
