/*
 * planrefine.h — a plan entry's NN-BCD refinement (refine.h) run on its
 * layer (plan-refine.c): the compressed form the entry describes (the
 * plain or whitened truncation, the magnitude or scored mask, the
 * quantiser's codes and codebook) refined against the dense layer on the
 * calibration statistics.  Lua's plan:set records the result in the entry
 * (refined_out, refined_fro, refined_sweeps); apply runs it again (every
 * step is deterministic) and writes the refined parts.
 */
#ifndef RANKSCOPE_PLANREFINE_H
#define RANKSCOPE_PLANREFINE_H

#include <stdint.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/plan.h"
#include "rankscope/refine.h"
#include "rankscope/tt.h"

/* The refined layer's parts, all column-major in W's coordinates and
 * malloc'd: LOWRANK b (m x r) and a (r x n); PRUNE keep (m n) and wp (m n,
 * zero off the support); QUANT codes (m n), book (levels, or m x levels
 * for per-channel) and wp; LOWRANK_SPARSE b, a, keep and wp (the sparse
 * part); TT the refined cores (tt). */
typedef struct rs_refined_parts {
	double *b, *a, *wp, *book;
	unsigned char *keep;
	uint16_t *codes;
	size_t levels;
	rs_tt *tt;
	rs_refine_result result;
} rs_refined_parts;

/* Whether a method can be refined: LOWRANK, PRUNE, QUANT, LOWRANK_SPARSE
 * and TT (RS_REFINABLE_METHODS names them for messages). */
#define RS_REFINABLE_METHODS "lowrank, prune, quant, lowrank+sparse or tt"
bool rs_method_refinable(rs_method method);

/*
 * Refines the entry (its effective method must be refinable, the layer must
 * have calibration statistics: a->calib) on the layer of the model at
 * `path`, `sweeps` sweeps at most for low rank.  parts may be NULL when
 * only the result is wanted (*result receives it).
 */
rs_status rs_plan_entry_refine(const rs_layer *layer, const rs_layer_analysis *a,
                               const rs_plan_entry *e, const char *path, size_t sweeps,
                               rs_refined_parts *parts, rs_refine_result *result,
                               rs_error *err);
void rs_refined_parts_free(rs_refined_parts *p);

#endif
