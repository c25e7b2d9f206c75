/* plan.c — per-layer choices and their figures; see rankscope/plan.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/plan.h"
#include "rankscope/util.h"

const char *
rs_method_name(rs_method method)
{
	return method == RS_METHOD_LOWRANK ? "lowrank" : "dense";
}

void
rs_plan_init(rs_plan *plan, size_t nlayers)
{
	plan->nlayers = nlayers;
	plan->entries = rs_xcalloc(nlayers, sizeof *plan->entries);
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
	rs_plan_init(dst, src->nlayers);
	memcpy(dst->entries, src->entries, src->nlayers * sizeof *src->entries);
}

bool
rs_plan_equal(const rs_plan *a, const rs_plan *b)
{
	size_t i;

	if (a->nlayers != b->nlayers)
		return false;
	for (i = 0; i < a->nlayers; i++)
		if (a->entries[i].method != b->entries[i].method ||
		    (a->entries[i].method == RS_METHOD_LOWRANK &&
		     a->entries[i].rank != b->entries[i].rank))
			return false;
	return true;
}

bool
rs_lowrank_pays(size_t rows, size_t cols, size_t rank)
{
	return rs_lowrank_params(rows, cols, rank) < rows * cols;
}

void
rs_plan_figures_for(const rs_layer *layer, const rs_spectrum *s,
                    const rs_plan_entry *entry, rs_plan_figures *out)
{
	size_t m = layer->rows, n = layer->cols;

	memset(out, 0, sizeof *out);
	out->known = s != NULL;
	out->method = RS_METHOD_DENSE;
	out->rank = m < n ? m : n;
	out->energy = 1.0;
	out->params = m * n;
	out->flops = 2 * m * n;
	if (s == NULL || entry->method != RS_METHOD_LOWRANK ||
	    !rs_lowrank_pays(m, n, entry->rank))
		return;
	out->method = RS_METHOD_LOWRANK;
	out->rank = entry->rank;
	out->err_fro = rs_spectrum_err_fro(s, entry->rank);
	out->err_spec = rs_spectrum_err_spec(s, entry->rank);
	out->energy = rs_spectrum_energy(s, entry->rank);
	out->params = rs_lowrank_params(m, n, entry->rank);
	out->flops = rs_lowrank_flops(m, n, entry->rank);
}

void
rs_plan_totals_compute(const rs_plan *plan, const rs_layer *layers,
                       const rs_spectrum *const *spectra, rs_plan_totals *out)
{
	double product = 1.0;
	size_t i;

	memset(out, 0, sizeof *out);
	out->layers = plan->nlayers;
	for (i = 0; i < plan->nlayers; i++) {
		rs_plan_figures f;

		rs_plan_figures_for(&layers[i], spectra[i], &plan->entries[i], &f);
		out->params_before += layers[i].rows * layers[i].cols;
		out->flops_before += 2 * layers[i].rows * layers[i].cols;
		out->params_after += f.params;
		out->flops_after += f.flops;
		if (!f.known) {
			out->pending++;
			continue;
		}
		if (f.method == RS_METHOD_LOWRANK)
			out->compressed++;
		if (f.err_spec > out->worst_err_spec) {
			out->worst_err_spec = f.err_spec;
			out->worst_layer = i;
		}
		if (f.err_fro > out->worst_err_fro)
			out->worst_err_fro = f.err_fro;
		product *= 1.0 + f.err_spec;
	}
	out->ratio = out->params_after ?
	    (double)out->params_before / (double)out->params_after : 1.0;
	out->net_bound = product - 1.0;
}

rs_plan_entry
rs_plan_entry_keep_ratio(const rs_spectrum *s, double fraction)
{
	rs_plan_entry e = {RS_METHOD_LOWRANK, 1};
	double r = floor(fraction * (double)s->k + 0.5);

	if (r > 1)
		e.rank = r >= (double)s->k ? s->k : (size_t)r;
	return e;
}

rs_plan_entry
rs_plan_entry_energy(const rs_spectrum *s, double fraction)
{
	rs_plan_entry e = {RS_METHOD_LOWRANK, rs_spectrum_rank_for_energy(s, fraction)};

	if (e.rank < 1)
		e.rank = 1;
	return e;
}
