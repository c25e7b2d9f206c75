/*
 * layer.h — which tensors are layers, and the matrix each one is.
 *
 * A layer is a matrix view W (rows x cols, rows = output side) of one tensor:
 * a 2-D floating tensor as it is, or a 4-D convolution kernel (out f, in c,
 * kh, kw) folded by one of four schemes (DESIGN.md §4):
 *   0: f x (c kh kw)   1: (f kh) x (c kw)   2: (f kw) x (c kh)   3: (f kh kw) x c
 * Other tensors (biases, norms, integer tensors) are not layers.
 */
#ifndef RANKSCOPE_LAYER_H
#define RANKSCOPE_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"
#include "rankscope/model.h"

#define RS_FOLD_COUNT 4
#define RS_FOLD_NONE (-1)

typedef enum rs_layer_kind {
	RS_LAYER_LINEAR,   /* 2-D weight */
	RS_LAYER_CONV      /* 4-D kernel, folded */
} rs_layer_kind;

typedef struct rs_layer {
	const rs_tensor *tensor;  /* borrowed from the model */
	const char *name;         /* == tensor->name */
	rs_layer_kind kind;
	int fold;                 /* 0..3 for conv, RS_FOLD_NONE for linear */
	size_t rows, cols;
} rs_layer;

/* Name filters: a layer is kept when it matches some include pattern (or
 * there are none) and no exclude pattern.  Patterns are fnmatch(3) globs in
 * which '*' also matches '.'. */
typedef struct rs_layer_filter {
	const char *const *include;
	size_t ninclude;
	const char *const *exclude;
	size_t nexclude;
} rs_layer_filter;

bool rs_layer_filter_match(const rs_layer_filter *filter, const char *name);

/*
 * Why a tensor is (not) a layer.  Returns NULL when it can be one, else a
 * short reason ("1-D", "integer dtype I64", "empty").
 */
const char *rs_layer_ineligible_reason(const rs_tensor *tensor);

/*
 * Lists the model's layers in file order, with conv kernels folded by
 * `fold` (0..3).  `*out` is an rs_xmalloc'd array the caller frees.
 */
size_t rs_layers_discover(const rs_model *model, const rs_layer_filter *filter,
                          int fold, rs_layer **out);

/* Sets a conv layer's fold scheme and recomputes rows/cols. */
rs_status rs_layer_set_fold(rs_layer *layer, int fold, rs_error *err);

/* Matrix shape a conv kernel takes under a fold scheme. */
void rs_fold_shape(const size_t shape[4], int fold, size_t *rows, size_t *cols);

/*
 * Writes the layer's matrix as doubles in column-major order (LAPACK's
 * convention), element (i, j) at dst[i + j * ld], ld >= rows.  Fails with
 * RS_ENUMERIC (naming the layer and the element) if a value is NaN or
 * infinite.
 */
rs_status rs_layer_load(const rs_layer *layer, double *dst, size_t ld,
                        const char *path, rs_error *err);

/*
 * Loads W or its transpose, whichever the tensor's row-major bytes give by
 * a straight conversion (linear layers and fold-0 kernels: W^T, read as a
 * column-major cols x rows matrix; other folds: W, gathered).  Both have
 * the same singular values, and the straight read avoids a strided
 * transpose that costs as much as a quarter of a spectrum on wide layers.
 * *rows and *cols receive the loaded matrix's shape (ld = *rows).
 * Non-finite values are reported in W's coordinates, as rs_layer_load does.
 */
rs_status rs_layer_load_for_spectrum(const rs_layer *layer, double *dst,
                                     size_t *rows, size_t *cols,
                                     const char *path, rs_error *err);

/* Where element (row, col) of the layer's matrix lives in the tensor's
 * row-major data (the inverse of folding). */
size_t rs_layer_tensor_index(const rs_layer *layer, size_t row, size_t col);

/* Dense cost of the layer: rows * cols parameters. */
size_t rs_layer_params(const rs_layer *layer);

#endif
