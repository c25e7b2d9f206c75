/*
 * layer.h — which tensors are layers, and the matrix each one is.
 *
 * A layer is a matrix view W (rows x cols, rows = output side) of one tensor:
 * a 2-D floating tensor (a linear layer, or an embedding table whose rows
 * are looked up), stored out x in or, when its layout says so, in x out;
 * or a convolution kernel (out f, in c, kh, kw) — a Conv1d kernel (f, c, k)
 * is (f, c, k, 1) — folded by one of four schemes (DESIGN.md §4):
 *   0: f x (c kh kw)   1: (f kh) x (c kw)   2: (f kw) x (c kh)   3: (f kh kw) x c
 * or the product of factor tensors declared by a compose pattern
 * (compose.h), which stands where its first factor stands and replaces
 * them.  Other tensors (biases, norms, integer tensors) are not layers.
 * What a tensor is comes from the file where it says (ONNX's graph), else
 * from the rules of role.c; see rs_tensor's layout, role and groups.
 */
#ifndef RANKSCOPE_LAYER_H
#define RANKSCOPE_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/compose.h"
#include "rankscope/error.h"
#include "rankscope/model.h"

#define RS_FOLD_COUNT 4
#define RS_FOLD_NONE (-1)

typedef enum rs_layer_kind {
	RS_LAYER_LINEAR,    /* 2-D weight */
	RS_LAYER_CONV,      /* 4-D (or Conv1d's 3-D) kernel, folded */
	RS_LAYER_COMPOSED,  /* product of 2-D factors (compose.h) */
	RS_LAYER_EMBEDDING  /* 2-D table, one row looked up per token: no FLOPs */
} rs_layer_kind;

typedef struct rs_layer {
	const rs_tensor *tensor;  /* borrowed from the model; for a composed
	                             layer the group's description of W (no data) */
	const char *name;         /* == tensor->name */
	rs_layer_kind kind;
	int fold;                 /* 0..3 for conv, RS_FOLD_NONE for linear */
	size_t rows, cols;
	const rs_compose_group *group;  /* composed layers only, else NULL */
	size_t kshape[4];         /* conv: (f, c, kh, kw), kw = 1 for Conv1d */
	bool transposed;          /* linear/embedding stored in x out (W = T^T) */
	bool kernel_in_out;       /* conv kernel stored (in, out, kh, kw), as
	                             ConvTranspose keeps it; kshape is (out, in, ...) */
	size_t groups;            /* conv: its group count (1 = ordinary);
	                             > 1 (depthwise, grouped): only the methods a
	                             runtime can run on it (rs_layer_method_refusal) */
	bool value_dtype_chosen;  /* --dtype: values stored in value_dtype ... */
	rs_dtype value_dtype;     /* ... instead of the model's (rs_layer_value_dtype) */
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
 * `fold` (0..3) and the factors of each group in `compose` (may be NULL)
 * replaced by one composed layer (filtered by its composed name).  `*out`
 * is an rs_xmalloc'd array the caller frees; composed layers borrow from
 * `compose`, which must outlive them.
 */
size_t rs_layers_discover(const rs_model *model, const rs_layer_filter *filter,
                          int fold, const rs_compose_set *compose, rs_layer **out);

/* The layer a tensor belongs to (itself or as a factor), or NULL. */
const rs_layer *rs_layer_of_tensor(const rs_layer *layers, size_t nlayers,
                                   const rs_tensor *tensor);

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

/*
 * Writes the layer's weights in the tensor's own row-major layout (a
 * kernel as (f, c, kh, kw), whatever the fold; a composed layer, and a
 * linear one stored in x out, as W: rows x cols), as doubles: what the
 * tensor decompositions take (dims from rs_layer_kernel_dims).
 * Non-finite values are RS_ENUMERIC, as rs_layer_load.
 */
rs_status rs_layer_load_tensor(const rs_layer *layer, double *dst, const char *path,
                               rs_error *err);

/*
 * The layer as the kernel the tensor decompositions see, (f, c, kh, kw): a
 * conv layer's own shape whatever its fold, a linear or composed layer's
 * rows x cols x 1 x 1.  Returns its true mode count: 4 for a conv layer,
 * 2 otherwise.
 */
size_t rs_layer_kernel_dims(const rs_layer *layer, size_t dims[4]);

/* Where element (row, col) of the layer's matrix lives in the tensor's
 * row-major data (the inverse of folding and of an in x out layout). */
size_t rs_layer_tensor_index(const rs_layer *layer, size_t row, size_t col);
/* Where it lives in what rs_layer_load_tensor writes (the same but for a
 * transposed layer, which that writes as rows x cols). */
size_t rs_layer_kernel_index(const rs_layer *layer, size_t row, size_t col);

/*
 * A private copy of the bytes a layer is computed from (its tensor's, or
 * every factor's of a composed layer), taken under the SIGBUS guard
 * (guard.h), and `layer`, which is the original but reads the copy.  The
 * engine hashes its cache key from the copy and decomposes the same copy:
 * a file rewritten in place while open then cannot put one version's
 * spectrum under the other version's key.  Self-referential: use it where
 * it was taken, never copy the struct.
 */
typedef struct rs_layer_snapshot {
	rs_layer layer;
	rs_tensor tensor;              /* the copy's tensor (plain layers) */
	rs_compose_group group;        /* the copy's group (composed layers) */
	rs_tensor *factors;
	const rs_tensor **factor_list;
	unsigned char *bytes;
} rs_layer_snapshot;

/* Fails with RS_ENOMEM, or RS_EIO when the file shrank under the map. */
rs_status rs_layer_snapshot_take(const rs_layer *layer, rs_layer_snapshot *snap,
                                 const char *path, rs_error *err);
void rs_layer_snapshot_free(rs_layer_snapshot *snap);

/* "linear", "conv", "composed" or "embedding". */
const char *rs_layer_kind_name(const rs_layer *layer);

/* NULL when a runtime can execute what `method` makes of the layer, else
 * why not ("a depthwise convolution (groups 32): ..."), for messages. */
const char *rs_layer_method_refusal(const rs_layer *layer, int method);

/* What rs_layer_load_for_spectrum gives: true when it is W^T. */
bool rs_layer_loads_transposed(const rs_layer *layer);

/* Parameters the file stores for the layer: rows * cols, or the sum of a
 * composed layer's factors. */
size_t rs_layer_params(const rs_layer *layer);

#endif
