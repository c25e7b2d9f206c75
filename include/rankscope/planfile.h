/*
 * planfile.h — compression plans as JSON files (io-plan.c); the format is
 * specified in rankscope-plan(5) and man/rankscope-plan.schema.json.
 *
 * A plan file identifies the model (path, size, SHA-256 of its header), what
 * made it (tool, strategy, parameters), each layer's choice with its
 * predicted figures, and the totals.  Writing is deterministic (same plan,
 * same bytes) and atomic; reading checks every field and that the plan fits
 * the model, naming the first layer that does not.
 */
#ifndef RANKSCOPE_PLANFILE_H
#define RANKSCOPE_PLANFILE_H

#include <stddef.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"
#include "rankscope/spectrum.h"

#define RS_PLAN_FORMAT "rankscope-plan"
#define RS_PLAN_VERSION 1

/* What made a plan.  All strings malloc'd; NULL strategy = edited by hand. */
typedef struct rs_plan_origin {
	char *strategy;
	char **keys, **values;    /* parameters, as given */
	size_t nparams;
	/* read from a plan made with calibration: its "calibration" (path and
	 * SHA-256 of the file); NULL otherwise.  Written from the analyses. */
	char *calibration_path, *calibration_sha256;
} rs_plan_origin;

void rs_plan_origin_set(rs_plan_origin *o, const char *strategy,
                        const char *const *params, size_t nparams);  /* "k=v" */
void rs_plan_origin_copy(rs_plan_origin *dst, const rs_plan_origin *src);
void rs_plan_origin_free(rs_plan_origin *o);

/* The plan as JSON text (malloc'd, ends with a newline).  Every analysis
 * must have its spectrum (and statistics for pruning or quantisation). */
char *rs_plan_to_json(const rs_model *model, const rs_layer *layers, size_t nlayers,
                      const rs_layer_analysis *analyses, const rs_plan *plan,
                      const rs_plan_origin *origin, int indent);

/* Writes the plan atomically and durably (temporary file, fsync, rename);
 * on failure an existing file at path is left as it was. */
rs_status rs_plan_save(const char *path, const rs_model *model, const rs_layer *layers,
                       size_t nlayers, const rs_layer_analysis *analyses,
                       const rs_plan *plan, const rs_plan_origin *origin,
                       rs_error *err);

/*
 * Reads a plan for these layers of this model into *plan (initialised
 * here) and *origin (may be NULL).  Errors name the file and the offending
 * field or layer: malformed JSON, wrong types, unknown format or version,
 * a layer missing from either side, a shape or fold that differs, a rank
 * out of range or one whose factorisation would not pay.
 */
rs_status rs_plan_load(const char *path, const rs_model *model, const rs_layer *layers,
                       size_t nlayers, rs_plan *plan, rs_plan_origin *origin,
                       rs_error *err);

/*
 * The compose patterns a plan was made with (its "compose" array; none when
 * absent), so that the model can be opened with the same composed layers
 * before the plan is loaded against them.  *patterns is malloc'd, as is
 * each string.
 */
/*
 * How the plan's layers were read, as --layout and --kind rules naming each
 * layer exactly ("NAME=in,out", "NAME=embedding", "NAME=groups:4"), so that
 * a session opening the model with the plan reads every layer as the plan
 * did.  Both lists are NULL-terminated and the caller frees them.
 */
rs_status rs_plan_read_roles(const char *path, char ***layouts, size_t *nlayouts,
                             char ***kinds, size_t *nkinds, rs_error *err);
/* The plan's "value_dtype" (--dtype it was made with): *name NULL when
 * absent (the model's dtypes), else rs_xmalloc'd "F16", "BF16" or "F32". */
rs_status rs_plan_read_value_dtype(const char *path, char **name, rs_error *err);
/* The plan's "split" rules (role.h), as given to --split; none when absent. */
rs_status rs_plan_read_splits(const char *path, char ***rules, size_t *nrules,
                              rs_error *err);
/* A plan made in the output norm (origin->calibration_sha256) is used only
 * with the same calibration file: RS_EINVAL, saying which file it needs,
 * when `sha256` (the session's, NULL for none) differs. */
rs_status rs_plan_check_calibration(const char *plan_path, const rs_plan_origin *origin,
                                    const char *sha256, rs_error *err);
rs_status rs_plan_read_compose(const char *path, char ***patterns, size_t *npatterns,
                               rs_error *err);

/*
 * A plan file read on its own, without its model (for comparing plans):
 * the figures it recorded.  Checks the format, the version and the types
 * of what it reads.
 */
typedef struct rs_plan_summary_layer {
	char *name;
	char *method;
	long long rank;           /* -1 when dense */
	char detail[64];          /* sparsity, quantiser and bits where they apply */
	double rel_fro, rel_spec;
	long long params;
} rs_plan_summary_layer;

typedef struct rs_plan_summary {
	char *model_path;
	char *header_sha256;
	char *strategy;           /* NULL when none recorded */
	rs_plan_summary_layer *layers;
	size_t nlayers;
	long long params_before, params_after;
	double ratio, max_rel_spec;
} rs_plan_summary;

rs_status rs_plan_summary_read(const char *path, rs_plan_summary *out, rs_error *err);
void rs_plan_summary_free(rs_plan_summary *s);

#endif
