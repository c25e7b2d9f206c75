/*
 * combine.h — additive combinations by alternating projections
 * (la-combine.c; LC Part V, DESIGN.md §4).
 *
 * W ~ L + S (+ Q): L of rank r, S with at most s nonzeros, Q quantised.
 * Each iteration projects the residual of the others onto each part in
 * turn: L <- SVD_r(W - S - Q), S <- top_s(W - L - Q) (largest magnitudes),
 * Q <- quantise(W - L - S).  It stops when the relative error falls by less
 * than `tolerance` (relative) from one iteration to the next, or after
 * `max_iterations`.  Parts are left out by rank 0 / nonzeros 0 / quantiser
 * off.  Every iteration's error is recorded.
 *
 * The result is never worse than the best single part at the same storage:
 * the low-rank, pruned and quantised approximations that fit the
 * combination's storage are computed as well, and when one of them is
 * better it is returned instead (result.fallback says which).
 */
#ifndef RANKSCOPE_COMBINE_H
#define RANKSCOPE_COMBINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"
#include "rankscope/quant.h"

typedef struct rs_combine_spec {
	size_t rank;                /* 0: no low-rank part */
	size_t nonzeros;            /* 0: no sparse part */
	bool quantize;              /* a quantised part */
	rs_quantizer quantizer;
	unsigned bits;
	unsigned value_bits;        /* storage bits of L's factors and S's values (32) */
	size_t max_iterations;      /* e.g. 50 */
	double tolerance;           /* e.g. 1e-6 */
} rs_combine_spec;

typedef enum rs_combine_fallback {
	RS_COMBINE_NONE,            /* the combination itself */
	RS_COMBINE_LOWRANK_ONLY,
	RS_COMBINE_SPARSE_ONLY,
	RS_COMBINE_QUANT_ONLY
} rs_combine_fallback;

typedef struct rs_combine_result {
	double rel_error;           /* of what is returned */
	size_t iterations;
	double *errors;             /* rel. error after each iteration (malloc'd) */
	uint64_t storage_bits;      /* of the combination as specified */
	rs_combine_fallback fallback;
	size_t fallback_rank;       /* with LOWRANK_ONLY */
	size_t fallback_nonzeros;   /* with SPARSE_ONLY */
	unsigned fallback_bits;     /* with QUANT_ONLY: b' */
} rs_combine_result;

/* The parts of a combination, for writing them (each pointer may be NULL):
 * L as a column-major m x n matrix (zeros without a low-rank part), and the
 * quantised part's codes (column-major m x n) and codebook (rs_quantize's
 * layout: 2^b levels, or m of them per channel), so that Q = codebook[codes]
 * exactly.  Filled only when the combination itself is returned, not a
 * fallback. */
typedef struct rs_combine_parts {
	double *lowrank;
	uint16_t *codes;
	double *codebook;
} rs_combine_parts;

/* Storage of a combination: r (m + n) factor values, s sparse values with
 * their index (the cheaper of bitmap and CSR), and the quantised part's
 * codes and codebook. */
uint64_t rs_combine_storage_bits(size_t rows, size_t cols, const rs_combine_spec *spec);

/* Defaults for front ends (workbench, apply, Lua). */
#define RS_COMBINE_DEFAULT_ITERATIONS 50
#define RS_COMBINE_DEFAULT_TOLERANCE 1e-6

/*
 * Runs the alternating projections on the column-major m x n matrix w
 * (leading dimension ld).  approx (m x n, ld m) receives L + S + Q (or the
 * fallback) when not NULL; sparse (m x n, ld m) receives the sparse part S
 * alone when not NULL (zeros when there is none or on a fallback).  `cancel` (may be NULL) is checked between
 * iterations; `progress` (may be NULL) is called after each one.
 */
rs_status rs_combine(const double *w, size_t rows, size_t cols, size_t ld,
                     const rs_combine_spec *spec, const volatile int *cancel,
                     void (*progress)(void *userdata, size_t iteration, double rel_error),
                     void *userdata, double *approx, double *sparse,
                     rs_combine_result *result, rs_error *err);
/* rs_combine, also writing the parts into *parts (may be NULL). */
rs_status rs_combine_with_parts(const double *w, size_t rows, size_t cols, size_t ld,
                                const rs_combine_spec *spec, const volatile int *cancel,
                                void (*progress)(void *userdata, size_t iteration,
                                                 double rel_error),
                                void *userdata, double *approx, double *sparse,
                                rs_combine_parts *parts, rs_combine_result *result,
                                rs_error *err);
void rs_combine_result_free(rs_combine_result *result);

#endif
