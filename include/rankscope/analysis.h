/*
 * analysis.h — everything computed once per layer that plan figures are
 * read from (analysis.c): the spectrum, the sorted magnitudes for pruning,
 * and the quantisation error curves.
 *
 * Magnitude statistics are built from the same buffer the spectrum engine
 * loads (rs_layer_load_for_spectrum), which for linear layers and fold-0
 * kernels is W^T: `transposed` says so, and the helpers below translate
 * "output channels" (rows of W) into the right side of the statistics.
 * apply builds the statistics the same way, so its masks are exactly the
 * sets the figures describe.
 */
#ifndef RANKSCOPE_ANALYSIS_H
#define RANKSCOPE_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"
#include "rankscope/prune.h"
#include "rankscope/quant.h"
#include "rankscope/spectrum.h"
#include "rankscope/whiten.h"

/* Quantisation curves are tabulated for 1..8 bits. */
#define RS_QUANT_CURVE_BITS 8

typedef struct rs_quant_curve {
	double err[RS_QUANT_COUNT][RS_QUANT_CURVE_BITS + 1];       /* [quantiser][bits] */
} rs_quant_curve;   /* storage: rs_quant_storage_bits, in the layer's value dtype */

/* Tabulates every quantiser at 1..8 bits (binary and ternary once, copied
 * across).  w is column-major m x n with leading dimension ld; when
 * `transposed`, w holds W^T, and per-channel quantisation (one scale per
 * output channel, a row of W) works on a transposed copy. */
rs_status rs_quant_curve_build(const double *w, size_t rows, size_t cols, size_t ld,
                               bool transposed, rs_quant_curve *out, rs_error *err);

typedef struct rs_layer_analysis {
	const rs_spectrum *spectrum;      /* NULL while pending */
	const rs_magnitudes *magnitudes;  /* NULL when not computed */
	const rs_quant_curve *quant;      /* NULL when not computed */
	bool transposed;                  /* the statistics describe W^T */
	/* With calibration (calib.h): the truncations in the output norm,
	 * NULL without statistics for the layer or while pending; `diagonal`
	 * when only G's diagonal was given (figures are then estimates). */
	const rs_whiten *whiten;
	/* and, with the statistics too, pruning and quantisation in the
	 * output norm (outcurve.h); NULL otherwise */
	const struct rs_out_curves *out;
	bool diagonal;
	const struct rs_calib *calib;     /* the session's calibration, or NULL */
} rs_layer_analysis;

/* Relative Frobenius error of dropping whole output channels (rows of W)
 * or input channels (columns of W). */
double rs_analysis_prune_outputs_error(const rs_layer_analysis *a, size_t dropped);
double rs_analysis_prune_inputs_error(const rs_layer_analysis *a, size_t dropped);

#endif
