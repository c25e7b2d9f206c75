/*
 * test-plan.c — plan figures and totals on hand-made spectra: the
 * "factorise only where it pays" rule at the break-even boundary, pending
 * layers, the network bound, and the global keep-ratio and energy modes.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/plan.h"
#include "rankscope/util.h"
#include "testlib.h"

static rs_spectrum *
spectrum_of(size_t m, size_t n, const double *values)
{
	size_t k = m < n ? m : n;
	double *s = rs_xmalloc(k * sizeof *s);

	memcpy(s, values, k * sizeof *s);
	return rs_spectrum_new(m, n, s);
}

int
main(void)
{
	/* layer A 4x6 (k 4, break-even floor(24/10) = 2); layer B 3x3. */
	static const double sa[4] = {4, 2, 1, 0.5}, sb[3] = {3, 1, 0.25};
	rs_tensor ta = {0}, tb = {0};
	rs_layer layers[3] = {
		{.tensor = &ta, .name = "a", .rows = 4, .cols = 6},
		{.tensor = &tb, .name = "b", .rows = 3, .cols = 3},
		{.tensor = &tb, .name = "pending", .rows = 8, .cols = 8},
	};
	rs_spectrum *a = spectrum_of(4, 6, sa), *b = spectrum_of(3, 3, sb);
	const rs_spectrum *spectra[3] = {a, b, NULL};
	rs_plan plan, copy;
	rs_plan_figures f;
	rs_plan_totals t;
	rs_plan_entry e;

	rs_plan_init(&plan, 3);
	rs_plan_totals_compute(&plan, layers, spectra, &t);
	CHECK(t.params_before == 24 + 9 + 64 && t.params_after == t.params_before,
	      "a new plan is all dense");
	CHECK(t.ratio == 1.0 && t.net_bound == 0.0 && t.pending == 1, "dense totals");

	/* rank 2 on A: 2 * 10 = 20 < 24 pays */
	plan.entries[0] = (rs_plan_entry){RS_METHOD_LOWRANK, 2};
	rs_plan_figures_for(&layers[0], a, &plan.entries[0], &f);
	CHECK(f.known && f.method == RS_METHOD_LOWRANK && f.rank == 2, "rank 2 pays");
	CHECK_NEAR(f.err_fro, sqrt(1.25 / 21.25), 1e-15, "A err_fro(2)");
	CHECK_NEAR(f.err_spec, 0.25, 0, "A err_spec(2)");
	CHECK(f.params == 20 && f.flops == 40, "A costs at rank 2");
	/* rank 3 on A: 30 >= 24 does not pay: dense */
	e = (rs_plan_entry){RS_METHOD_LOWRANK, 3};
	rs_plan_figures_for(&layers[0], a, &e, &f);
	CHECK(f.method == RS_METHOD_DENSE && f.params == 24 && f.err_fro == 0,
	      "a factorisation costing more stays dense");
	/* B 3x3: break-even floor(9/6) = 1; rank 1 costs 6 < 9 */
	plan.entries[1] = (rs_plan_entry){RS_METHOD_LOWRANK, 1};
	CHECK(rs_lowrank_pays(3, 3, 1) && !rs_lowrank_pays(3, 3, 2), "B break-even");
	/* the pending layer asks for rank 1 but has no spectrum yet */
	plan.entries[2] = (rs_plan_entry){RS_METHOD_LOWRANK, 1};
	rs_plan_figures_for(&layers[2], NULL, &plan.entries[2], &f);
	CHECK(!f.known && f.params == 64, "pending layer counts dense");
	/* equal cost is not a gain: 512x512 at rank 256 */
	CHECK(!rs_lowrank_pays(512, 512, 256) && rs_lowrank_pays(512, 512, 255),
	      "equal cost stays dense");

	rs_plan_totals_compute(&plan, layers, spectra, &t);
	CHECK(t.params_after == 20 + 6 + 64, "params after %zu", t.params_after);
	CHECK(t.compressed == 2 && t.pending == 1, "two compressed, one pending");
	CHECK_NEAR(t.ratio, 97.0 / 90.0, 1e-15, "ratio");
	CHECK_NEAR(t.worst_err_spec, 1.0 / 3.0, 1e-15, "worst err_spec is B's 1/3");
	CHECK(t.worst_layer == 1, "worst layer is B");
	CHECK_NEAR(t.net_bound, (1 + 0.25) * (1 + 1.0 / 3.0) - 1, 1e-15, "network bound");
	CHECK(t.flops_after == 40 + 12 + 128, "flops after");

	rs_plan_copy(&copy, &plan);
	CHECK(rs_plan_equal(&copy, &plan), "copy equals");
	copy.entries[0].rank = 1;
	CHECK(!rs_plan_equal(&copy, &plan), "edit differs");
	rs_plan_free(&copy);

	/* global modes */
	e = rs_plan_entry_keep_ratio(a, 0.5);
	CHECK(e.method == RS_METHOD_LOWRANK && e.rank == 2, "keep 50%% of 4 = 2");
	e = rs_plan_entry_keep_ratio(a, 0.01);
	CHECK(e.rank == 1, "keep ratio never below rank 1");
	e = rs_plan_entry_keep_ratio(a, 1.0);
	CHECK(e.rank == 4, "keep 100%%");
	e = rs_plan_entry_energy(a, 0.9);
	CHECK(e.rank == 2, "90%% energy: 20/21.25 at rank 2 (rank %zu)", e.rank);
	e = rs_plan_entry_energy(a, 0.0);
	CHECK(e.rank == 1, "energy mode never below rank 1");

	rs_plan_free(&plan);
	rs_spectrum_free(a);
	rs_spectrum_free(b);
	return test_done("test-plan");
}
