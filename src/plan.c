/* plan.c — per-layer choices and their figures; see rankscope/plan.h. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/combine.h"
#include "rankscope/cp.h"
#include "rankscope/outcurve.h"
#include "rankscope/plan.h"
#include "rankscope/tt.h"
#include "rankscope/tucker.h"
#include "rankscope/util.h"

static const char *const method_names[RS_METHOD_COUNT] = {
	[RS_METHOD_DENSE] = "dense",
	[RS_METHOD_LOWRANK] = "lowrank",
	[RS_METHOD_PRUNE] = "prune",
	[RS_METHOD_PRUNE_ROWS] = "prune-rows",
	[RS_METHOD_PRUNE_COLS] = "prune-cols",
	[RS_METHOD_QUANT] = "quant",
	[RS_METHOD_LOWRANK_SPARSE] = "lowrank+sparse",
	[RS_METHOD_GROUPED] = "grouped",
	[RS_METHOD_TUCKER2] = "tucker2",
	[RS_METHOD_CP] = "cp",
	[RS_METHOD_TT] = "tt",
	[RS_METHOD_QUANT_SPARSE] = "quant+sparse",
	[RS_METHOD_LOWRANK_SPARSE_QUANT] = "lowrank+sparse+quant",
};

bool
rs_method_is_combination(rs_method method)
{
	return method == RS_METHOD_LOWRANK_SPARSE || method == RS_METHOD_QUANT_SPARSE ||
	       method == RS_METHOD_LOWRANK_SPARSE_QUANT;
}

void
rs_plan_entry_take_solve(const rs_layer *layer, rs_plan_entry *e,
                         const rs_combine_result *res)
{
	size_t count = layer->rows * layer->cols;
	rs_quantizer q = e->quantizer;

	switch (res->fallback) {
	case RS_COMBINE_LOWRANK_ONLY:
		*e = rs_plan_entry_lowrank(res->fallback_rank);
		break;
	case RS_COMBINE_SPARSE_ONLY:
		*e = rs_plan_entry_dense();
		e->method = RS_METHOD_PRUNE;
		/* half an element over, so floor(p N) gives back the same count */
		e->sparsity = ((double)(count - res->fallback_nonzeros) + 0.5) / (double)count;
		break;
	case RS_COMBINE_QUANT_ONLY:
		*e = rs_plan_entry_dense();
		e->method = RS_METHOD_QUANT;
		e->quantizer = q;
		e->bits = res->fallback_bits > RS_QUANT_CURVE_BITS ? RS_QUANT_CURVE_BITS :
		          res->fallback_bits;
		break;
	default:
		e->solved_error = res->rel_error;
		break;
	}
}

bool
rs_method_has_lowrank_part(rs_method method)
{
	return method == RS_METHOD_LOWRANK_SPARSE || method == RS_METHOD_LOWRANK_SPARSE_QUANT;
}

bool
rs_method_has_quant_part(rs_method method)
{
	return method == RS_METHOD_QUANT || method == RS_METHOD_QUANT_SPARSE ||
	       method == RS_METHOD_LOWRANK_SPARSE_QUANT;
}

void
rs_plan_entry_combine_spec(const rs_layer *layer, const rs_plan_entry *e,
                           rs_combine_spec *spec)
{
	size_t count = layer->rows * layer->cols;

	memset(spec, 0, sizeof *spec);
	spec->rank = rs_method_has_lowrank_part(e->method) ? e->rank : 0;
	spec->nonzeros = count - rs_prune_dropped(count, e->sparsity);
	spec->quantize = rs_method_has_quant_part(e->method);
	spec->quantizer = e->quantizer;
	spec->bits = e->bits;
	spec->value_bits = rs_layer_value_bits(layer);
	spec->max_iterations = RS_COMBINE_DEFAULT_ITERATIONS;
	spec->tolerance = RS_COMBINE_DEFAULT_TOLERANCE;
}

bool
rs_method_is_decomposition(rs_method method)
{
	return method == RS_METHOD_GROUPED || method == RS_METHOD_TUCKER2 ||
	       method == RS_METHOD_CP || method == RS_METHOD_TT;
}

bool
rs_method_is_solved(rs_method method)
{
	return rs_method_is_combination(method) || rs_method_is_decomposition(method);
}

const char *
rs_method_name(rs_method method)
{
	return (unsigned)method < RS_METHOD_COUNT ? method_names[method] : "?";
}

bool
rs_method_parse(const char *name, rs_method *out)
{
	int i;

	for (i = 0; i < RS_METHOD_COUNT; i++)
		if (strcmp(name, method_names[i]) == 0) {
			*out = (rs_method)i;
			return true;
		}
	return false;
}

rs_plan_entry
rs_plan_entry_dense(void)
{
	rs_plan_entry e;

	memset(&e, 0, sizeof e);
	e.method = RS_METHOD_DENSE;
	e.quantizer = RS_QUANT_UNIFORM_TENSOR;
	e.fold = RS_FOLD_NONE;
	e.solved_error = NAN;
	e.solved_spec = NAN;
	e.solved_fro_bound = NAN;
	e.solved_alds = NAN;
	e.tt_eps = NAN;
	e.refined_out = NAN;
	e.refined_fro = NAN;
	e.solved_out = NAN;
	return e;
}

rs_plan_entry
rs_plan_entry_lowrank(size_t rank)
{
	rs_plan_entry e = rs_plan_entry_dense();

	e.method = RS_METHOD_LOWRANK;
	e.rank = rank;
	return e;
}

void
rs_plan_init(rs_plan *plan, size_t nlayers)
{
	size_t i;

	plan->nlayers = nlayers;
	plan->entries = rs_xcalloc(nlayers ? nlayers : 1, sizeof *plan->entries);
	for (i = 0; i < nlayers; i++)
		plan->entries[i] = rs_plan_entry_dense();
}

void
rs_plan_free(rs_plan *plan)
{
	free(plan->entries);
	plan->entries = NULL;
	plan->nlayers = 0;
}

void
rs_plan_copy(rs_plan *dst, const rs_plan *src)
{
	dst->nlayers = src->nlayers;
	dst->entries = rs_xcalloc(src->nlayers ? src->nlayers : 1, sizeof *dst->entries);
	memcpy(dst->entries, src->entries, src->nlayers * sizeof *src->entries);
}

bool
rs_plan_entry_equal(const rs_plan_entry *a, const rs_plan_entry *b)
{
	if (a->method != b->method)
		return false;
	switch (a->method) {
	case RS_METHOD_LOWRANK:
		return a->rank == b->rank && a->whitened == b->whitened && a->refined == b->refined;
	case RS_METHOD_PRUNE:
		return a->sparsity == b->sparsity && a->scored == b->scored && a->refined == b->refined;
	case RS_METHOD_PRUNE_ROWS: case RS_METHOD_PRUNE_COLS:
		return a->sparsity == b->sparsity;
	case RS_METHOD_QUANT:
		return a->quantizer == b->quantizer && a->bits == b->bits && a->refined == b->refined;
	case RS_METHOD_LOWRANK_SPARSE:
		return a->rank == b->rank && a->sparsity == b->sparsity && a->refined == b->refined;
	case RS_METHOD_QUANT_SPARSE:
		return a->sparsity == b->sparsity && a->quantizer == b->quantizer &&
		       a->bits == b->bits;
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		return a->rank == b->rank && a->sparsity == b->sparsity &&
		       a->quantizer == b->quantizer && a->bits == b->bits;
	case RS_METHOD_GROUPED:
		return a->rank == b->rank && a->groups == b->groups && a->fold == b->fold;
	case RS_METHOD_TUCKER2:
		return a->rank == b->rank && a->rank_in == b->rank_in;
	case RS_METHOD_CP:
		return a->rank == b->rank;
	case RS_METHOD_TT:
		return a->tt_d == b->tt_d &&
		       memcmp(a->tt_rows, b->tt_rows, sizeof a->tt_rows) == 0 &&
		       memcmp(a->tt_cols, b->tt_cols, sizeof a->tt_cols) == 0 &&
		       memcmp(a->tt_ranks, b->tt_ranks, sizeof a->tt_ranks) == 0 &&
		       a->refined == b->refined;
	default:
		return true;
	}
}

void
rs_plan_entry_matrix(const rs_layer *layer, const rs_plan_entry *e, size_t *rows,
                     size_t *cols)
{
	if (e->method == RS_METHOD_GROUPED && layer->kind == RS_LAYER_CONV &&
	    e->fold >= 0 && e->fold < RS_FOLD_COUNT) {
		rs_fold_shape(layer->kshape, e->fold, rows, cols);
		return;
	}
	*rows = layer->rows;
	*cols = layer->cols;
}

void
rs_plan_entry_cost(const rs_layer *layer, const rs_plan_entry *e, size_t *params,
                   size_t *flops)
{
	size_t m, n, dims[4], nmodes;

	rs_plan_entry_matrix(layer, e, &m, &n);
	nmodes = rs_layer_kernel_dims(layer, dims);
	*params = *flops = 0;
	switch (e->method) {
	case RS_METHOD_GROUPED:
		/* each group: m x r and r x (n / g) */
		*params = e->rank * (e->groups * m + n);
		*flops = 2 * *params;
		break;
	case RS_METHOD_TUCKER2:
		*params = rs_tucker_params(dims[0], dims[1], dims[2], dims[3], e->rank, e->rank_in);
		*flops = rs_tucker_flops(dims[0], dims[1], dims[2], dims[3], e->rank, e->rank_in);
		break;
	case RS_METHOD_CP:
		*params = rs_cp_params(nmodes, dims, e->rank);
		*flops = rs_cp_flops(nmodes, dims, e->rank);
		break;
	case RS_METHOD_TT:
		if (e->tt_d >= 2 && e->tt_d <= RS_PLAN_TT_MAX_D)
			rs_tt_cost(e->tt_d, e->tt_rows, e->tt_cols, e->tt_ranks, params, flops);
		break;
	default:
		break;
	}
}

bool
rs_plan_equal(const rs_plan *a, const rs_plan *b)
{
	size_t i;

	if (a->nlayers != b->nlayers)
		return false;
	for (i = 0; i < a->nlayers; i++)
		if (!rs_plan_entry_equal(&a->entries[i], &b->entries[i]))
			return false;
	return true;
}

bool
rs_lowrank_pays(size_t rows, size_t cols, size_t rank)
{
	return rs_lowrank_params(rows, cols, rank) < rows * cols;
}

rs_dtype
rs_layer_value_dtype(const rs_layer *layer)
{
	rs_dtype d = layer->group != NULL ? layer->group->factors[0]->dtype : layer->tensor->dtype;

	if (layer->value_dtype_chosen)
		return layer->value_dtype;
	return d == RS_DTYPE_F16 || d == RS_DTYPE_BF16 ? d : RS_DTYPE_F32;
}

unsigned
rs_layer_value_bits(const rs_layer *layer)
{
	return rs_dtype_get(rs_layer_value_dtype(layer))->bits;
}

uint64_t
rs_layer_dense_bits(const rs_layer *layer)
{
	uint64_t bits = 0;
	size_t k;

	if (layer->group == NULL)
		return rs_dtype_storage_bits(layer->tensor->dtype, layer->rows * layer->cols);
	/* a composed layer kept as it is keeps its factors */
	for (k = 0; k < layer->group->nfactors; k++)
		bits += rs_dtype_storage_bits(layer->group->factors[k]->dtype,
		                              layer->group->factors[k]->count);
	return bits;
}

/* Sets the figures common to every compressed method from err_fro. */
static void
finish_compressed(rs_plan_figures *out, const rs_layer_analysis *a, double err_fro)
{
	double fro = a->spectrum ? rs_spectrum_fro_norm(a->spectrum) : 0;
	double spec = a->spectrum ? rs_spectrum_spec_norm(a->spectrum) : 0;

	out->err_fro = err_fro;
	out->energy = 1.0 - err_fro * err_fro;
	/* ||E||_2 <= ||E||_F: a bound on the relative spectral error */
	out->err_spec = spec > 0 ? err_fro * fro / spec : 0;
	out->spec_is_bound = true;
}

/*
 * An embedding is a lookup: a token's row is read, not multiplied.  Its
 * FLOPs per token are what rebuilding that one row costs: none for rows
 * stored as they are (dense, pruned, quantised: a decode), 2 r cols for a
 * low-rank part (the row of A times B), and for the decompositions their
 * matrix-vector cost divided by the rows — an estimate, since rebuilding a
 * row of a TT or CP is not a matrix-vector product.
 */
static size_t
embedding_flops(const rs_layer *layer, const rs_plan_figures *f)
{
	switch (f->method) {
	case RS_METHOD_LOWRANK:
	case RS_METHOD_LOWRANK_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		return 2 * f->rank * layer->cols;
	case RS_METHOD_GROUPED:
	case RS_METHOD_TUCKER2:
	case RS_METHOD_CP:
	case RS_METHOD_TT:
		return layer->rows ? (f->flops + layer->rows - 1) / layer->rows : 0;
	default:
		return 0;
	}
}

static void figures_for(const rs_layer *layer, const rs_layer_analysis *a,
                        const rs_plan_entry *entry, rs_plan_figures *out);

void
rs_plan_figures_for(const rs_layer *layer, const rs_layer_analysis *a,
                    const rs_plan_entry *entry, rs_plan_figures *out)
{
	figures_for(layer, a, entry, out);
	if (layer->kind == RS_LAYER_EMBEDDING)
		out->flops = embedding_flops(layer, out);
}

/* A refined entry's errors are its refinement's (planrefine.h); false
 * while it has not run. */
static bool
take_refinement(rs_plan_figures *f, const rs_layer_analysis *a, const rs_plan_entry *entry)
{
	if (!entry->refined)
		return true;
	if (isnan(entry->refined_out))
		return false;
	finish_compressed(f, a, entry->refined_fro);
	f->out_err = entry->refined_out;
	return true;
}

static void
figures_for(const rs_layer *layer, const rs_layer_analysis *a,
            const rs_plan_entry *entry, rs_plan_figures *out)
{
	size_t m = layer->rows, n = layer->cols, count = m * n, dropped;
	uint64_t dense_bits = rs_layer_dense_bits(layer);
	rs_plan_figures f;

	memset(out, 0, sizeof *out);
	out->known = a != NULL && a->spectrum != NULL;
	out->method = RS_METHOD_DENSE;
	out->rank = m < n ? m : n;
	out->nonzeros = count;
	out->energy = 1.0;
	out->params = rs_layer_params(layer);
	out->flops = 2 * out->params;
	out->bits = dense_bits;
	out->out_err = a != NULL && a->whiten != NULL ? 0 : NAN;
	out->out_is_estimate = a != NULL && a->whiten != NULL && a->diagonal;
	if (!out->known || entry->method == RS_METHOD_DENSE)
		return;
	f = *out;
	/* output figures are computed per method below; none until they are */
	f.out_err = NAN;
	switch (entry->method) {
	case RS_METHOD_LOWRANK:
		if (!rs_lowrank_pays(m, n, entry->rank))
			return;
		f.method = RS_METHOD_LOWRANK;
		f.rank = entry->rank;
		if (entry->whitened) {
			if (a->whiten == NULL) {
				out->known = false;   /* needs its calibration */
				return;
			}
			finish_compressed(&f, a, rs_whiten_fro_err(a->whiten, entry->rank));
			f.out_err = rs_whiten_out_err(a->whiten, entry->rank);
		} else {
			f.err_fro = rs_spectrum_err_fro(a->spectrum, entry->rank);
			f.err_spec = rs_spectrum_err_spec(a->spectrum, entry->rank);
			f.energy = rs_spectrum_energy(a->spectrum, entry->rank);
			f.out_err = a->whiten ? rs_whiten_plain_out_err(a->whiten, entry->rank) : NAN;
		}
		f.params = rs_lowrank_params(m, n, entry->rank);
		f.flops = rs_lowrank_flops(m, n, entry->rank);
		f.bits = (uint64_t)f.params * rs_layer_value_bits(layer);
		if (!take_refinement(&f, a, entry)) {
			out->known = false;   /* the refinement has not run yet */
			return;
		}
		*out = f;
		return;
	case RS_METHOD_PRUNE:
		if (a->magnitudes == NULL)
			break;
		dropped = rs_prune_dropped(count, entry->sparsity);
		f.nonzeros = count - dropped;
		f.params = f.nonzeros;
		f.flops = 2 * f.nonzeros;
		f.bits = rs_sparse_storage_bits(m, n, f.nonzeros, rs_layer_value_bits(layer), NULL);
		if (entry->scored) {
			if (a->out == NULL) {
				out->known = false;   /* needs its calibration */
				return;
			}
			finish_compressed(&f, a, rs_out_scored_fro_error(a->out, dropped));
		} else {
			finish_compressed(&f, a, rs_prune_error(a->magnitudes, dropped));
		}
		if (a->out != NULL)
			f.out_err = rs_out_prune_error(a->out, dropped, entry->scored);
		break;
	case RS_METHOD_PRUNE_ROWS:
	case RS_METHOD_PRUNE_COLS:
		if (a->magnitudes == NULL)
			break;
		{
			bool rows = entry->method == RS_METHOD_PRUNE_ROWS;
			size_t side = rows ? m : n, other = rows ? n : m;
			dropped = (size_t)floor(entry->sparsity * (double)side);
			f.nonzeros = (side - dropped) * other;
			f.params = f.nonzeros;
			f.flops = 2 * f.nonzeros;
			/* the kept values and a bitmap of the kept channels */
			f.bits = (uint64_t)f.nonzeros * rs_layer_value_bits(layer) + side;
			finish_compressed(&f, a, rows ? rs_analysis_prune_outputs_error(a, dropped) :
			                                rs_analysis_prune_inputs_error(a, dropped));
			if (a->out != NULL)
				f.out_err = rows ? rs_out_rows_error(a->out, dropped) :
				                   rs_out_cols_error(a->out, dropped);
		}
		break;
	case RS_METHOD_QUANT:
		if (a->quant == NULL || entry->bits < 1 || entry->bits > RS_QUANT_CURVE_BITS ||
		    (unsigned)entry->quantizer >= RS_QUANT_COUNT)
			break;
		/* a refined codebook is stored whole (its levels follow no rule) */
		f.bits = rs_quant_storage_bits(m, n, entry->quantizer, entry->bits,
		                               rs_layer_value_bits(layer), entry->refined);
		finish_compressed(&f, a, a->quant->err[entry->quantizer][entry->bits]);
		if (a->out != NULL)
			f.out_err = rs_out_quant_error(a->out, entry->quantizer, entry->bits);
		break;
	case RS_METHOD_LOWRANK_SPARSE:
	case RS_METHOD_QUANT_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		{
			rs_combine_spec spec;
			rs_plan_entry_combine_spec(layer, entry, &spec);
			if (isnan(entry->solved_error)) {
				out->known = false;   /* the solve has not run yet */
				return;
			}
			f.rank = spec.rank;
			f.nonzeros = spec.nonzeros;
			/* values stored: factors, sparse values, and a code per weight */
			f.params = rs_lowrank_params(m, n, spec.rank) + spec.nonzeros +
			           (spec.quantize ? count : 0);
			f.flops = rs_lowrank_flops(m, n, spec.rank) + 2 * spec.nonzeros +
			          (spec.quantize ? 2 * count : 0);
			f.bits = rs_combine_storage_bits(m, n, &spec);
			finish_compressed(&f, a, entry->solved_error);
			f.out_err = entry->solved_out;
			if (!take_refinement(&f, a, entry)) {
				out->known = false;   /* the refinement has not run yet */
				return;
			}
		}
		break;
	case RS_METHOD_GROUPED:
	case RS_METHOD_TUCKER2:
	case RS_METHOD_CP:
	case RS_METHOD_TT:
		if (isnan(entry->solved_error)) {
			out->known = false;   /* the solve has not run yet */
			return;
		}
		rs_plan_entry_cost(layer, entry, &f.params, &f.flops);
		f.rank = entry->rank;
		f.bits = (uint64_t)f.params * rs_layer_value_bits(layer);
		f.err_fro = entry->solved_error;
		f.energy = 1.0 - f.err_fro * f.err_fro;
		f.err_spec = entry->solved_spec;
		f.spec_is_bound = true;
		f.out_err = entry->solved_out;
		if (!take_refinement(&f, a, entry)) {
			out->known = false;   /* the refinement has not run yet */
			return;
		}
		break;
	default:
		break;
	}
	/* Only a representation cheaper than the dense layer is used. */
	if ((entry->method == RS_METHOD_PRUNE || entry->method == RS_METHOD_QUANT) &&
	    !take_refinement(&f, a, entry)) {
		out->known = false;   /* the refinement has not run yet */
		return;
	}
	if (f.bits < dense_bits && entry->method != RS_METHOD_LOWRANK) {
		f.method = entry->method;
		*out = f;
	}
}

void
rs_plan_describe(const rs_plan_entry *e, const rs_plan_figures *f, char *buf, size_t len)
{
	switch (f->method) {
	case RS_METHOD_LOWRANK:
		snprintf(buf, len, "r=%zu%s", f->rank, e->whitened ? " whitened" : "");
		break;
	case RS_METHOD_PRUNE:
		snprintf(buf, len, "p=%.2f%s", e->sparsity, e->scored ? " scored" : "");
		break;
	case RS_METHOD_PRUNE_ROWS: case RS_METHOD_PRUNE_COLS:
		snprintf(buf, len, "p=%.2f", e->sparsity);
		break;
	case RS_METHOD_QUANT:
		snprintf(buf, len, "%s/%ub", rs_quantizer_name(e->quantizer),
		         rs_quantizer_bits(e->quantizer, e->bits));
		break;
	case RS_METHOD_LOWRANK_SPARSE:
		snprintf(buf, len, "r=%zu p=%.2f", f->rank, e->sparsity);
		break;
	case RS_METHOD_QUANT_SPARSE:
		snprintf(buf, len, "%s/%ub p=%.2f", rs_quantizer_name(e->quantizer),
		         rs_quantizer_bits(e->quantizer, e->bits), e->sparsity);
		break;
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		snprintf(buf, len, "r=%zu p=%.2f %s/%ub", f->rank, e->sparsity,
		         rs_quantizer_name(e->quantizer), rs_quantizer_bits(e->quantizer, e->bits));
		break;
	case RS_METHOD_GROUPED:
		if (e->fold >= 0)
			snprintf(buf, len, "r=%zu g=%zu f%d", e->rank, e->groups, e->fold);
		else
			snprintf(buf, len, "r=%zu g=%zu", e->rank, e->groups);
		break;
	case RS_METHOD_TUCKER2:
		snprintf(buf, len, "r=%zu,%zu", e->rank, e->rank_in);
		break;
	case RS_METHOD_CP:
		snprintf(buf, len, "R=%zu", e->rank);
		break;
	case RS_METHOD_TT: {
		size_t k, at;
		at = (size_t)snprintf(buf, len, "tt");
		for (k = 1; k < e->tt_d && at < len; k++)
			at += (size_t)snprintf(buf + at, len - at, "%c%zu", k == 1 ? '=' : ',',
			                       e->tt_ranks[k]);
		break;
	}
	default:
		snprintf(buf, len, "%s", "");
		break;
	}
	/* a refined entry says so (refinement keeps the method's parts) */
	if (e->refined && f->method == e->method && strlen(buf) + 8 < len)
		strcat(buf, " refined");
}

void
rs_plan_totals_compute(const rs_plan *plan, const rs_layer *layers,
                       const rs_layer_analysis *analyses, rs_plan_totals *out)
{
	double product = 1.0;
	size_t i;

	memset(out, 0, sizeof *out);
	out->layers = plan->nlayers;
	for (i = 0; i < plan->nlayers; i++) {
		rs_plan_figures f;

		rs_plan_figures_for(&layers[i], &analyses[i], &plan->entries[i], &f);
		out->params_before += rs_layer_params(&layers[i]);
		out->flops_before += 2 * rs_layer_params(&layers[i]);
		out->bits_before += rs_layer_dense_bits(&layers[i]);
		out->params_after += f.params;
		out->flops_after += f.flops;
		out->bits_after += f.bits;
		if (!f.known) {
			out->pending++;
			continue;
		}
		if (f.method != RS_METHOD_DENSE)
			out->compressed++;
		if (f.err_spec > out->worst_err_spec) {
			out->worst_err_spec = f.err_spec;
			out->worst_layer = i;
		}
		if (f.err_fro > out->worst_err_fro)
			out->worst_err_fro = f.err_fro;
		/* NaN sticks: a compressed layer without an output figure makes
		 * the worst one unknown (fmax would skip it) */
		if (f.method != RS_METHOD_DENSE) {
			if (isnan(f.out_err))
				out->worst_out_err = NAN;
			else if (f.out_err > out->worst_out_err)
				out->worst_out_err = f.out_err;
		}
		product *= 1.0 + f.err_spec;
	}
	out->ratio = out->params_after ?
	    (double)out->params_before / (double)out->params_after : 1.0;
	out->bits_ratio = out->bits_after ?
	    (double)out->bits_before / (double)out->bits_after : 1.0;
	out->net_bound = product - 1.0;
}

rs_plan_entry
rs_plan_entry_keep_ratio(const rs_spectrum *s, double fraction)
{
	double r = floor(fraction * (double)s->k + 0.5);

	if (r < 1)
		r = 1;
	return rs_plan_entry_lowrank(r >= (double)s->k ? s->k : (size_t)r);
}

rs_plan_entry
rs_plan_entry_energy(const rs_spectrum *s, double fraction)
{
	size_t r = rs_spectrum_rank_for_energy(s, fraction);

	return rs_plan_entry_lowrank(r < 1 ? 1 : r);
}
