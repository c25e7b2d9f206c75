/*
 * apply.h — writing a compressed model from a plan (apply.c).
 *
 * Output is safetensors.  Each compressed layer becomes the parts of its
 * method (rankscope-plan(5) has the full layout):
 *   lowrank         NAME.lowrank.A (r x cols), NAME.lowrank.B (rows x r),
 *                   W ~ B A with the singular values split evenly
 *   prune           NAME.sparse.values, then NAME.sparse.bitmap (U8, the
 *                   tensor's kept positions) or CSR over the matrix,
 *                   NAME.sparse.row_ptr (U32) and NAME.sparse.col (U16)
 *   prune-rows/cols NAME.channels.values (the kept rows or columns of the
 *                   folded matrix, row-major) and NAME.channels.bitmap (U8)
 *   quant           NAME.quant.codes (U8, packed at the width, tensor
 *                   order) and NAME.quant.grid (F32 offset and step; a
 *                   row of them per channel), .quant.scale (F32, binary
 *                   and ternary) or .quant.codebook (k-means, refined)
 *   combinations    the low-rank factors, the sparse part, the quantised
 *                   part, in that order
 *   decompositions  their factors or cores (apply-decomp.c)
 * Values are in the layer's value dtype, and every layer's tensors take
 * the storage_bits the plan costs (up to a byte per bit stream).
 * Every other tensor is copied byte for byte.  __metadata__ keeps the
 * input's entries and adds "rankscope_plan" (the plan as compact JSON) and
 * "rankscope_version".
 *
 * The file is written to a temporary beside OUT (rs_file_out: unnamed
 * where the file system allows), fsync'd and renamed: a failed or killed
 * apply leaves no partial output and any old OUT untouched.  Tensors are
 * read from the model's map under the SIGBUS guard (guard.h), so a model
 * shrunk while open fails the apply, naming the tensor.
 */
#ifndef RANKSCOPE_APPLY_H
#define RANKSCOPE_APPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"
#include "rankscope/spectrum.h"

/* What apply measured for one factorised layer, from the factors as
 * written (after rounding to float32), against the original weights. */
typedef struct rs_apply_report {
	const rs_layer *layer;
	rs_method method;
	size_t rank;
	double predicted_fro, predicted_spec;
	bool spec_is_bound;         /* predicted_spec is a bound (not low rank) */
	double measured_fro, measured_spec;
	/* with calibration: the output error the figures predicted and the
	 * one the written parts have on G (whiten.h); NaN when not known */
	double predicted_out, measured_out;
} rs_apply_report;

/* The bytes rs_apply wrote: the file is header + layers + other. */
typedef struct rs_apply_sizes {
	uint64_t header;            /* the length field and the JSON header */
	uint64_t layers;            /* the tensors of the compressed layers */
	uint64_t other;             /* everything copied: dense layers, biases, ... */
	uint64_t plan_bits;         /* the plan's storage_bits of the compressed layers */
} rs_apply_sizes;

typedef void (*rs_apply_progress)(void *userdata, const rs_apply_report *report);

/*
 * What apply would write for one layer, measured and not written: the
 * parts are computed as rs_apply computes them and *report receives the
 * measured errors (measured_out with calibration).  For the methods whose
 * figures are solved (the combinations, the decompositions) this is how
 * their output error becomes known before apply.
 */
rs_status rs_apply_measure(const rs_model *model, const rs_layer *layer,
                           const rs_layer_analysis *analysis, const rs_plan_entry *entry,
                           rs_apply_report *report, rs_error *err);

/*
 * plan_json is stored in the output's metadata (may be NULL).  With dense
 * (apply --dense) each compressed layer is written back as the matrix its
 * parts make, under its tensor's own name and shape, in its dtype (F16,
 * BF16, F32, F64; other types as F32), rounded to nearest: a drop-in
 * state_dict; the errors reported are those of the values as written.  A
 * composed layer (its factors' product) has no such form and is refused.
 * sizes (may be NULL) receives what was written, so that the file can be
 * compared with the plan: a compressed layer's tensors take its
 * storage_bits, each bit-packed one rounded up to a whole byte.
 */
rs_status rs_apply(const rs_model *model, const rs_layer *layers, size_t nlayers,
                   const rs_layer_analysis *analyses, const rs_plan *plan,
                   const char *plan_json, const char *out_path, bool dense,
                   rs_apply_progress progress, void *userdata, rs_apply_sizes *sizes,
                   rs_error *err);

#endif
