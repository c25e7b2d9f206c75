/*
 * outcurve.h — output errors of pruning and quantisation on the
 * calibration inputs, tabulated once per layer so that every query is
 * O(1) (la-outcurve.c).
 *
 * For an error matrix E (W minus the compressed layer) the squared output
 * error is tr(E G E^T) (whiten.h).  The curves hold it, unnormalised, for:
 *   prune[d]         dropping the d weights of smallest magnitude, in the
 *                    order of the weight figures (rs_magnitudes), d = 0..mn
 *   prune_scored[d]  dropping the d weights of smallest w_ij^2 G_jj (the
 *                    output-aware score, |w| ||x_j|| of Wanda / SparseGPT's
 *                    diagonal): the optimal mask of each size when G is
 *                    diagonal, a greedy choice otherwise; either way the
 *                    tabulated error is exact for that mask
 *   rows[d], cols[d] dropping the d output / input channels of smallest
 *                    norm (the weight figures' channels)
 *   quant[q][b]      quantiser q at b bits (the quantised values apply
 *                    writes), for b = 1..8
 * Each drop curve is built incrementally: adding element (i, j) to the
 * dropped set P raises tr(E G E^T) by w_ij^2 G_jj + 2 w_ij (sum over k in
 * P of row i of w_ik G_kj), kept per row, so a whole curve costs O(m n^2)
 * — one product W G — and O(m n) memory.
 */
#ifndef RANKSCOPE_OUTCURVE_H
#define RANKSCOPE_OUTCURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"
#include "rankscope/prune.h"
#include "rankscope/quant.h"

#define RS_OUT_QUANT_BITS 8

typedef struct rs_out_curves {
	size_t rows, cols, count;
	double total;                 /* tr(W G W^T) */
	double *prune;                /* count + 1 */
	double *prune_scored;         /* count + 1 */
	uint32_t *scored_order;       /* count: W's element (i + j rows) dropped d-th */
	double *scored_fro;           /* count + 1: ||E||_F^2 of the scored masks */
	double fro_total;             /* ||W||_F^2 */
	double *drop_rows;            /* rows + 1 */
	double *drop_cols;            /* cols + 1 */
	double quant[RS_QUANT_COUNT][RS_OUT_QUANT_BITS + 1];  /* [q][0] = total */
} rs_out_curves;

/*
 * Tabulates the curves of W (column-major rows x cols, ld = rows) against G
 * (cols x cols, column-major, symmetric), with the drop orders of `mags`,
 * built from W^T when `mags_transposed` (as the engine's statistics are for
 * linear layers).  NULL on failure (memory, a quantiser's error).
 */
rs_out_curves *rs_out_curves_new(const double *w, size_t rows, size_t cols, const double *g,
                                 const rs_magnitudes *mags, bool mags_transposed,
                                 rs_error *err);
void rs_out_curves_free(rs_out_curves *c);

/* Relative output errors (sqrt of the curve over total), clamped indices. */
double rs_out_prune_error(const rs_out_curves *c, size_t dropped, bool scored);
double rs_out_rows_error(const rs_out_curves *c, size_t dropped_rows);
double rs_out_cols_error(const rs_out_curves *c, size_t dropped_cols);
double rs_out_quant_error(const rs_out_curves *c, rs_quantizer q, unsigned bits);

/* The relative Frobenius (weight) error of the scored pruning. */
double rs_out_scored_fro_error(const rs_out_curves *c, size_t dropped);

/* The keep mask (W's column-major order, 1 = kept) of the scored pruning
 * that drops `dropped` weights. */
void rs_out_scored_mask(const rs_out_curves *c, size_t dropped, unsigned char *keep);

#endif
