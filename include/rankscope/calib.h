/*
 * calib.h — calibration statistics: each layer's input Gram matrix, read
 * from a file next to the model (calib.c).
 *
 * The file is any weight file rankscope reads (samples/calibrate.py writes
 * safetensors), or llama.cpp's legacy importance matrix (imatrix.h).  For
 * a layer whose tensor is NAME, with PREFIX = NAME less a trailing
 * ".weight" (the module's name in PyTorch) or NAME itself:
 *   PREFIX.gram   (n, n)  G = X^T X, summed over every input vector x (a
 *                         row of X) the layer saw; n = the layer's columns
 *                         (a conv kernel's under fold 0: c kh kw, in
 *                         torch.nn.functional.unfold's order)
 *   PREFIX.inputs (s, n)  or the s input vectors themselves, one per row:
 *                         G = X^T X is summed from them in double precision
 *                         (the count s unless PREFIX.count is given)
 *   PREFIX.diag   (n)     only G's diagonal, sum of x_j^2 (a weaker mode:
 *                         figures are exact for diag(G), an estimate of the
 *                         true output error)
 *   PREFIX.count  ()/(1)  optional: how many vectors were summed
 * or, as llama.cpp's importance matrices have them (NAME the whole tensor
 * name, ".weight" kept):
 *   NAME.in_sum2  (n)     GGUF imatrix (llama-imatrix): the sum of x_j^2,
 *                         taken as a .diag
 *   NAME.counts   (1)     how many vectors were summed, as a .count
 *   NAME.diag     (n)     the legacy imatrix.dat (imatrix.h): its values,
 *                         the sums up to one factor per matrix
 * A stack of experts split into views NAME.0 .. NAME.E-1 (role.h) takes
 * row e of its stack's statistics for view e: NAME.in_sum2 (E, n) with
 * NAME.counts (E) (or (E, 1), or one for all), or the legacy E n values.
 * An expert whose count is 0 (llama-imatrix writes experts the data never
 * reached) has no statistics.
 * A layer with none of these keeps weight figures only.  Embeddings
 * (looked up, not multiplied), transposed and grouped convolutions take
 * no calibration: their input is not X^T's columns.
 *
 * Checked before use: shape, finite values, symmetry (|G_ij - G_ji| <=
 * 1e-6 max |G|), non-negative diagonal, positive semi-definite (smallest
 * eigenvalue >= -1e-6 times the largest), positive trace.  The matrix
 * used is (G + G^T) / 2.
 */
#ifndef RANKSCOPE_CALIB_H
#define RANKSCOPE_CALIB_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/sha256.h"

typedef enum rs_calib_kind {
	RS_CALIB_NONE,   /* no statistics for the layer */
	RS_CALIB_FULL,   /* the whole Gram matrix */
	RS_CALIB_DIAG    /* its diagonal only */
} rs_calib_kind;

typedef struct rs_calib {
	char *path;
	rs_model *file;                 /* the statistics' tensors */
	const rs_tensor **by_name;      /* file's tensors sorted by name, for lookups */
	char sha256[2 * RS_SHA256_LEN + 1];  /* of the whole file, hex */
} rs_calib;

/* Opens a calibration file and digests it.  NULL on failure. */
rs_calib *rs_calib_open(const char *path, rs_error *err);
void rs_calib_free(rs_calib *c);

/* "full", "diag" or "none". */
const char *rs_calib_kind_name(rs_calib_kind kind);

/* Which statistics the file has for a layer, by name; the one value read
 * is an imatrix count, for an expert the data never reached (NONE). */
rs_calib_kind rs_calib_kind_for(const rs_calib *c, const rs_layer *layer);

/*
 * Loads and checks a layer's statistics: *gram (malloc'd, caller frees)
 * receives G as a column-major n x n matrix (a diagonal one for DIAG),
 * *count the vector count or NaN when the file has none (the legacy
 * imatrix never has one).  With no statistics: RS_OK, *kind = NONE,
 * *gram = NULL.  Errors name the file,
 * the tensor and the problem.
 */
rs_status rs_calib_load(const rs_calib *c, const rs_layer *layer, rs_calib_kind *kind,
                        double **gram, double *count, rs_error *err);

/* Whether a calibration tensor name belongs to one of the layers; the
 * first that does not is reported by rs_calib_unmatched (NULL if none). */
const char *rs_calib_unmatched(const rs_calib *c, const rs_layer *layers, size_t nlayers,
                               size_t *count);

#endif
