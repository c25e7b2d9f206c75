/*
 * plan.h — a compression plan in memory: one choice per layer, and the
 * figures that choice implies.
 *
 * A layer is either kept dense or replaced by a rank-r factorisation.  A
 * factorisation is used only where it pays: r (m + n) < m n.  Otherwise the
 * layer stays dense (never a factorisation that costs as much or more than
 * the layer it replaces), whatever rank was asked for.
 *
 * Plans do not own layers or spectra; figures are computed from them on
 * demand, in O(1) per layer, so front ends can recompute on every keypress.
 */
#ifndef RANKSCOPE_PLAN_H
#define RANKSCOPE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/layer.h"
#include "rankscope/spectrum.h"

typedef enum rs_method {
	RS_METHOD_DENSE,
	RS_METHOD_LOWRANK
} rs_method;

const char *rs_method_name(rs_method method);

typedef struct rs_plan_entry {
	rs_method method;
	size_t rank;            /* asked-for rank when method is LOWRANK */
} rs_plan_entry;

typedef struct rs_plan {
	size_t nlayers;
	rs_plan_entry *entries; /* rs_xmalloc'd, owned */
} rs_plan;

/* What an entry means for one layer. */
typedef struct rs_plan_figures {
	bool known;             /* false while the layer's spectrum is pending */
	rs_method method;       /* effective: DENSE where a factorisation does not pay */
	size_t rank;            /* effective rank (k when dense) */
	double err_fro;         /* relative, exact (0 when dense) */
	double err_spec;
	double energy;
	size_t params, flops;   /* after; dense: m n and 2 m n */
} rs_plan_figures;

typedef struct rs_plan_totals {
	size_t layers, pending, compressed;
	size_t params_before, params_after;
	size_t flops_before, flops_after;
	double ratio;           /* params_before / params_after */
	double worst_err_spec, worst_err_fro;
	size_t worst_layer;     /* index of the worst err_spec (when layers > 0) */
	/* Bound on the relative output perturbation of a feed-forward chain
	 * with 1-Lipschitz activations: prod (1 + err_spec) - 1.  A bound, not
	 * a measurement. */
	double net_bound;
} rs_plan_totals;

/* A plan of n layers, all dense. */
void rs_plan_init(rs_plan *plan, size_t nlayers);
void rs_plan_free(rs_plan *plan);
void rs_plan_copy(rs_plan *dst, const rs_plan *src);
bool rs_plan_equal(const rs_plan *a, const rs_plan *b);

/* Whether rank r pays off for an m x n layer: r (m + n) < m n. */
bool rs_lowrank_pays(size_t rows, size_t cols, size_t rank);

/* spectrum may be NULL (pending): then figures.known is false and the
 * layer counts as dense. */
void rs_plan_figures_for(const rs_layer *layer, const rs_spectrum *spectrum,
                         const rs_plan_entry *entry, rs_plan_figures *out);

/* spectra[i] may be NULL for pending layers. */
void rs_plan_totals_compute(const rs_plan *plan, const rs_layer *layers,
                            const rs_spectrum *const *spectra,
                            rs_plan_totals *out);

/* Entries for the global modes: keep a fraction of each layer's full rank
 * (rank = max(1, round(fraction k))), or the smallest rank keeping a
 * fraction of its energy (at least 1). */
rs_plan_entry rs_plan_entry_keep_ratio(const rs_spectrum *s, double fraction);
rs_plan_entry rs_plan_entry_energy(const rs_spectrum *s, double fraction);

#endif
