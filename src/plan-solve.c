/* plan-solve.c — solving decomposition entries; see rankscope/plansolve.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cp.h"
#include "rankscope/grouped.h"
#include "rankscope/plansolve.h"
#include "rankscope/svd.h"
#include "rankscope/tt.h"
#include "rankscope/tucker.h"

/* CP ranks above this are a typo, not a compression. */
#define CP_MAX_RANK 65536

rs_status
rs_plan_entry_check(const rs_layer *layer, const rs_plan_entry *e, rs_error *err)
{
	size_t m, n, dims[4], k, prod_r = 1, prod_c = 1;
	const char *name = layer->name, *refusal = rs_layer_method_refusal(layer, e->method);

	if (refusal != NULL)
		return rs_error_set(err, RS_EINVAL, "%s", refusal);
	rs_plan_entry_matrix(layer, e, &m, &n);
	rs_layer_kernel_dims(layer, dims);
	switch (e->method) {
	case RS_METHOD_GROUPED:
		if (e->fold != RS_FOLD_NONE && layer->kind != RS_LAYER_CONV)
			return rs_error_set(err, RS_EINVAL, "layer '%s' is not a convolution "
			                    "kernel: a grouped SVD of it has no fold", name);
		if (e->fold != RS_FOLD_NONE && (e->fold < 0 || e->fold >= RS_FOLD_COUNT))
			return rs_error_set(err, RS_EINVAL, "layer '%s': fold scheme %d out of "
			                    "range 0..%d", name, e->fold, RS_FOLD_COUNT - 1);
		if (e->groups < 2 || n % e->groups != 0)
			return rs_error_set(err, RS_EINVAL, "layer '%s': %zu groups must be at "
			    "least 2 and divide its %zu input columns (one group is method "
			    "lowrank)", name, e->groups, n);
		k = m < n / e->groups ? m : n / e->groups;
		if (e->rank < 1 || e->rank > k)
			return rs_error_set(err, RS_EINVAL, "layer '%s': rank %zu per group out "
			                    "of range 1..%zu", name, e->rank, k);
		return RS_OK;
	case RS_METHOD_TUCKER2:
		if (e->rank < 1 || e->rank > dims[0] || e->rank_in < 1 || e->rank_in > dims[1])
			return rs_error_set(err, RS_EINVAL, "layer '%s': Tucker-2 ranks %zu, %zu "
			    "out of range 1..%zu (outputs), 1..%zu (inputs)", name, e->rank,
			    e->rank_in, dims[0], dims[1]);
		return RS_OK;
	case RS_METHOD_CP:
		if (e->rank < 1 || e->rank > CP_MAX_RANK)
			return rs_error_set(err, RS_EINVAL, "layer '%s': CP rank %zu out of range "
			                    "1..%d", name, e->rank, CP_MAX_RANK);
		return RS_OK;
	case RS_METHOD_TT:
		if (e->tt_d < 2 || e->tt_d > RS_PLAN_TT_MAX_D)
			return rs_error_set(err, RS_EINVAL, "layer '%s': TT needs 2..%d modes, "
			                    "not %zu", name, RS_PLAN_TT_MAX_D, e->tt_d);
		for (k = 0; k < e->tt_d; k++) {
			if (e->tt_rows[k] == 0 || e->tt_cols[k] == 0)
				return rs_error_set(err, RS_EINVAL, "layer '%s': a TT mode of 0", name);
			prod_r *= e->tt_rows[k];
			prod_c *= e->tt_cols[k];
			if (prod_r > m || prod_c > n)
				break;
		}
		if (prod_r != m || prod_c != n)
			return rs_error_set(err, RS_EINVAL, "layer '%s': TT row modes must multiply "
			    "to %zu and column modes to %zu", name, m, n);
		return RS_OK;
	default:
		return RS_OK;
	}
}

static rs_status
solve_grouped(const rs_layer *layer, const rs_spectrum *sp, rs_plan_entry *e,
              const char *path, rs_error *err)
{
	rs_layer folded = *layer;
	size_t m, n;
	double *w, spec = sp->k > 0 ? sp->sigma[0] : 0.0, bound_f;
	rs_grouped *g = NULL;
	rs_status st;

	if (layer->kind == RS_LAYER_CONV) {
		if (e->fold == RS_FOLD_NONE)
			e->fold = layer->fold;   /* a conv entry always names its fold */
		if ((st = rs_layer_set_fold(&folded, e->fold, err)) != RS_OK)
			return st;
	}
	m = folded.rows;
	n = folded.cols;
	w = malloc(m * n * sizeof *w);
	if (w == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", path,
		                    layer->name);
	st = rs_layer_load(&folded, w, m, path, err);
	/* errors are relative to this fold's own ||W||_2 */
	if (st == RS_OK && folded.fold != layer->fold)
		st = rs_svd_spec_norm(w, m, n, m, &spec, err);
	if (st == RS_OK) {
		g = rs_grouped_new(w, m, n, m, e->groups, spec, err);
		st = g ? RS_OK : err->code;
	}
	free(w);
	if (st != RS_OK) {
		rs_error_prefix(err, "%s: layer '%s': ", path, layer->name);
		return st;
	}
	e->solved_error = rs_grouped_err_fro(g, e->rank);
	e->solved_alds = rs_grouped_err_spec(g, e->rank);
	/* ||E||_2^2 <= sum_g ||E_g||_2^2 <= g max_g ||E_g||_2^2, and ||E||_2 <= ||E||_F */
	bound_f = spec > 0 ? e->solved_error * sqrt(g->fro2) / spec : 0.0;
	e->solved_spec = fmin(sqrt((double)e->groups) * e->solved_alds, bound_f);
	e->solved_fro_bound = NAN;
	rs_grouped_free(g);
	return RS_OK;
}

rs_tt *
rs_plan_entry_tt(const rs_plan_entry *e, const double *w, size_t rows, size_t cols,
                 rs_error *err)
{
	size_t caps[RS_PLAN_TT_MAX_D];
	rs_tt *tt;

	memcpy(caps, e->tt_ranks + 1, sizeof caps);
	tt = rs_tt_svd(w, rows, cols, rows, e->tt_d, e->tt_rows, e->tt_cols, caps, -1.0, err);
	if (tt != NULL &&
	    memcmp(tt->ranks, e->tt_ranks, (e->tt_d + 1) * sizeof *tt->ranks) != 0) {
		rs_tt_free(tt);
		rs_error_set(err, RS_EINVAL, "TT-SVD reaches other ranks than the plan's; solve "
		             "the plan again");
		return NULL;
	}
	return tt;
}

rs_status
rs_plan_entry_solve(const rs_layer *layer, const rs_spectrum *sp, rs_plan_entry *e,
                    const char *path, rs_error *err)
{
	size_t dims[4], nmodes, count = layer->rows * layer->cols;
	double *w, fro = rs_spectrum_fro_norm(sp), spec = rs_spectrum_spec_norm(sp);
	double ratio = spec > 0 ? fro / spec : 0.0;
	rs_error local;
	rs_status st;

	if (err == NULL)
		err = &local;   /* the kernels' codes are read back from it */
	if (!rs_method_is_decomposition(e->method))
		return RS_OK;
	if ((st = rs_plan_entry_check(layer, e, err)) != RS_OK)
		return st;
	if (e->method == RS_METHOD_GROUPED)
		return solve_grouped(layer, sp, e, path, err);
	nmodes = rs_layer_kernel_dims(layer, dims);
	w = malloc(count * sizeof *w);
	if (w == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", path,
		                    layer->name);
	/* Tucker-2 and CP take the tensor in its own order, TT the matrix */
	st = e->method == RS_METHOD_TT ? rs_layer_load(layer, w, layer->rows, path, err) :
	                                 rs_layer_load_tensor(layer, w, path, err);
	if (st != RS_OK) {
		free(w);
		return st;
	}
	e->solved_alds = NAN;
	e->solved_fro_bound = NAN;
	if (e->method == RS_METHOD_TUCKER2) {
		rs_tucker *t = rs_tucker_hooi(w, dims[0], dims[1], dims[2], dims[3], e->rank,
		                              e->rank_in, RS_TUCKER_DEFAULT_ITERATIONS,
		                              RS_TUCKER_DEFAULT_TOLERANCE, err);
		rs_tucker_modes *modes = t ? rs_tucker_modes_new(w, dims[0], dims[1], dims[2],
		                                                 dims[3], err) : NULL;
		if (modes != NULL) {
			e->solved_error = t->err;
			e->solved_fro_bound = rs_tucker_bound(modes, e->rank, e->rank_in);
		}
		st = modes ? RS_OK : err->code;
		rs_tucker_modes_free(modes);
		rs_tucker_free(t);
	} else if (e->method == RS_METHOD_CP) {
		rs_cp *cp = rs_cp_als(w, nmodes, dims, e->rank, RS_CP_DEFAULT_ITERATIONS,
		                      RS_CP_DEFAULT_TOLERANCE, err);
		if (cp != NULL)
			e->solved_error = cp->err;
		st = cp ? RS_OK : err->code;
		rs_cp_free(cp);
	} else {
		size_t caps[RS_PLAN_TT_MAX_D];
		rs_tt *tt;
		memcpy(caps, e->tt_ranks + 1, sizeof caps);
		tt = rs_tt_svd(w, layer->rows, layer->cols, layer->rows, e->tt_d, e->tt_rows,
		               e->tt_cols, caps, isnan(e->tt_eps) ? -1.0 : e->tt_eps, err);
		if (tt != NULL) {
			/* what is recorded and applied: the ranks reached, as caps */
			memcpy(e->tt_ranks, tt->ranks, (e->tt_d + 1) * sizeof *e->tt_ranks);
			e->tt_eps = NAN;
			e->solved_error = tt->err;
			e->solved_fro_bound = tt->bound;
		}
		st = tt ? RS_OK : err->code;
		rs_tt_free(tt);
	}
	free(w);
	if (st != RS_OK) {
		rs_error_prefix(err, "%s: layer '%s': ", path, layer->name);
		return st;
	}
	/* ||E||_2 <= ||E||_F */
	e->solved_spec = e->solved_error * ratio;
	return RS_OK;
}
