/*
 * apply-internal.h — shared by apply.c (the file, the simple methods) and
 * apply-decomp.c (the decompositions' parts).
 */
#ifndef RANKSCOPE_APPLY_INTERNAL_H
#define RANKSCOPE_APPLY_INTERNAL_H

#include <stddef.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"

/* Parts of one layer at most: a TT-matrix's cores. */
#define APPLY_MAX_PARTS RS_PLAN_TT_MAX_D

/* One part's name suffix and float32 shape. */
typedef struct apply_part_shape {
	char suffix[24];
	size_t shape[4], ndim;
} apply_part_shape;

/*
 * The parts a decomposition entry (GROUPED, TUCKER2, CP, TT) writes for
 * the layer, in order; returns how many.  Shapes follow rankscope-plan(5).
 */
size_t apply_decomposition_shapes(const rs_layer *l, const rs_plan_entry *e,
                                  apply_part_shape *parts);

/*
 * Runs the decomposition again (deterministic, as the plan's solve did),
 * writes its float32 parts into data[0..] (allocated here, freed by the
 * caller) and, for measuring, the matrix it approximates: *view is the
 * layer as measured (a grouped SVD's own fold), w its weights and approx
 * the product of the parts as written, both column-major view->rows x
 * view->cols (the caller's buffers of rows x cols doubles).
 */
rs_status apply_decomposition(const rs_model *model, const rs_layer *l,
                              const rs_layer_analysis *a, const rs_plan_entry *e,
                              void **data, rs_layer *view, double *w, double *approx,
                              rs_error *err);

/* apply.c's rank-r factorisation of the m x n matrix x (destroyed), used
 * per group: a (r x n) and b (m x r) row-major float32, approx += b a. */
rs_status apply_factorise(const rs_model *model, const rs_layer *l, double *x, size_t r,
                          float *a, float *b, double *approx, rs_error *err);

#endif
