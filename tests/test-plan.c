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
#include "rankscope/prune.h"
#include "rankscope/quant.h"
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

static int
compare_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* Pruning and quantisation figures on a 4x6 matrix, against values worked
 * out independently here; the same analysis built from W^T must give the
 * same channel errors. */
static void
check_other_methods(void)
{
	double w[24], wt[24], sq[24], total = 0, rown[4] = {0}, dropped = 0;
	rs_tensor t = {.dtype = RS_DTYPE_F32};
	rs_layer l = {.tensor = &t, .name = "w", .rows = 4, .cols = 6};
	rs_magnitudes *mg, *mgt;
	rs_quant_curve qc, qct;
	rs_spectrum *sp;
	rs_plan_entry e;
	rs_plan_figures f;
	rs_quant_result qr;
	size_t i, j;
	double *sigma = rs_xmalloc(4 * sizeof *sigma);

	test_seed(3);
	for (j = 0; j < 6; j++)
		for (i = 0; i < 4; i++) {
			w[i + j * 4] = test_gaussian() * (1.0 + (double)i);
			wt[j + i * 6] = w[i + j * 4];
		}
	for (i = 0; i < 24; i++) {
		sq[i] = w[i] * w[i];
		total += sq[i];
	}
	for (i = 0; i < 4; i++)
		for (j = 0; j < 6; j++)
			rown[i] += w[i + j * 4] * w[i + j * 4];
	/* the spectrum only feeds the spectral bound here */
	for (i = 0; i < 4; i++)
		sigma[i] = 4.0 - (double)i;
	sp = rs_spectrum_new(4, 6, sigma);
	mg = rs_magnitudes_new(w, 4, 6, 4);
	mgt = rs_magnitudes_new(wt, 6, 4, 6);
	CHECK(rs_quant_curve_build(w, 4, 6, 4, false, &qc, NULL) == RS_OK, "quant curve");
	CHECK(rs_quant_curve_build(wt, 6, 4, 6, true, &qct, NULL) == RS_OK, "quant curve of W^T");
	{
		rs_layer_analysis a = {.spectrum = sp, .magnitudes = mg, .quant = &qc};
		rs_layer_analysis at = {.spectrum = sp, .magnitudes = mgt, .quant = &qct,
		                        .transposed = true};

		/* unstructured pruning at 0.5: the 12 smallest squares go */
		qsort(sq, 24, sizeof *sq, compare_double);
		for (i = 0; i < 12; i++)
			dropped += sq[i];
		e = rs_plan_entry_dense();
		e.method = RS_METHOD_PRUNE;
		e.sparsity = 0.5;
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK(f.known && f.method == RS_METHOD_PRUNE && f.nonzeros == 12, "prune 0.5");
		CHECK_NEAR(f.err_fro, sqrt(dropped / total), 1e-15, "prune error");
		/* bitmap 24 + 12 x 32 = 408 beats CSR 32 x 5 + 12 x 16 + 384 = 736 */
		CHECK(f.bits == 408 && f.params == 12 && f.flops == 24, "prune storage %llu",
		      (unsigned long long)f.bits);
		CHECK(f.spec_is_bound && fabs(f.err_spec - f.err_fro * sqrt(30.0) / 4.0) < 1e-14,
		      "spectral error of pruning is the Frobenius bound");
		/* sparsity 0 stores more than dense: the layer stays dense */
		e.sparsity = 0.0;
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK(f.method == RS_METHOD_DENSE && f.bits == 768, "no gain: dense");

		/* whole output channels: the two rows of smallest norm */
		e.method = RS_METHOD_PRUNE_ROWS;
		e.sparsity = 0.5;
		qsort(rown, 4, sizeof *rown, compare_double);
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK_NEAR(f.err_fro, sqrt((rown[0] + rown[1]) / total), 1e-15, "row pruning error");
		CHECK(f.nonzeros == 12 && f.bits == 12 * 32 + 4, "row pruning storage");
		{
			rs_plan_figures ft;
			rs_plan_figures_for(&l, &at, &e, &ft);
			CHECK_NEAR(ft.err_fro, f.err_fro, 1e-15, "rows from a W^T analysis");
			e.method = RS_METHOD_PRUNE_COLS;
			rs_plan_figures_for(&l, &a, &e, &f);
			rs_plan_figures_for(&l, &at, &e, &ft);
			CHECK_NEAR(ft.err_fro, f.err_fro, 1e-15, "columns from a W^T analysis");
			CHECK(f.nonzeros == 12 && f.bits == 12 * 32 + 6, "column pruning storage");
		}

		/* quantisation: the curve holds what rs_quantize measures */
		e = rs_plan_entry_dense();
		e.method = RS_METHOD_QUANT;
		e.quantizer = RS_QUANT_KMEANS;
		e.bits = 2;
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK(rs_quantize(w, 4, 6, 4, RS_QUANT_KMEANS, 2, NULL, NULL, NULL, &qr, NULL) == RS_OK,
		      "quantize");
		CHECK_NEAR(f.err_fro, qr.rel_error, 1e-12, "k-means 2-bit error from the curve");
		CHECK(f.bits == qr.storage_bits && f.bits == 2 * 24 + 32 * 4, "k-means storage");
		e.quantizer = RS_QUANT_UNIFORM_CHANNEL;
		rs_plan_figures_for(&l, &at, &e, &f);
		CHECK(rs_quantize(w, 4, 6, 4, RS_QUANT_UNIFORM_CHANNEL, 2, NULL, NULL, NULL, &qr,
		                  NULL) == RS_OK, "quantize per channel");
		CHECK_NEAR(f.err_fro, qr.rel_error, 1e-15,
		           "per-channel error from a W^T analysis is per output channel");

		/* low rank + sparse: unknown until solved, then the solve's error */
		e = rs_plan_entry_dense();
		e.method = RS_METHOD_LOWRANK_SPARSE;
		e.rank = 1;
		e.sparsity = 0.75;
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK(!f.known, "an unsolved combination is not known");
		e.solved_error = 0.125;
		rs_plan_figures_for(&l, &a, &e, &f);
		CHECK(f.known && f.err_fro == 0.125 && f.nonzeros == 6 && f.params == 10 + 6,
		      "a solved combination: rank 1 (10 values) + 6 nonzeros");
	}
	rs_magnitudes_free(mg);
	rs_magnitudes_free(mgt);
	rs_spectrum_free(sp);
}

int
main(void)
{
	/* layer A 4x6 (k 4, break-even floor(24/10) = 2); layer B 3x3. */
	static const double sa[4] = {4, 2, 1, 0.5}, sb[3] = {3, 1, 0.25};
	rs_tensor ta = {.dtype = RS_DTYPE_F32}, tb = {.dtype = RS_DTYPE_F32};
	rs_layer layers[3] = {
		{.tensor = &ta, .name = "a", .rows = 4, .cols = 6},
		{.tensor = &tb, .name = "b", .rows = 3, .cols = 3},
		{.tensor = &tb, .name = "pending", .rows = 8, .cols = 8},
	};
	rs_spectrum *a = spectrum_of(4, 6, sa), *b = spectrum_of(3, 3, sb);
	rs_layer_analysis an[3] = {{.spectrum = a}, {.spectrum = b}, {.spectrum = NULL}};
	rs_plan plan, copy;
	rs_plan_figures f;
	rs_plan_totals t;
	rs_plan_entry e;

	rs_plan_init(&plan, 3);
	rs_plan_totals_compute(&plan, layers, an, &t);
	CHECK(t.params_before == 24 + 9 + 64 && t.params_after == t.params_before,
	      "a new plan is all dense");
	CHECK(t.ratio == 1.0 && t.net_bound == 0.0 && t.pending == 1, "dense totals");

	/* rank 2 on A: 2 * 10 = 20 < 24 pays */
	plan.entries[0] = rs_plan_entry_lowrank(2);
	rs_plan_figures_for(&layers[0], &an[0], &plan.entries[0], &f);
	CHECK(f.known && f.method == RS_METHOD_LOWRANK && f.rank == 2, "rank 2 pays");
	CHECK_NEAR(f.err_fro, sqrt(1.25 / 21.25), 1e-15, "A err_fro(2)");
	CHECK_NEAR(f.err_spec, 0.25, 0, "A err_spec(2)");
	CHECK(f.params == 20 && f.flops == 40, "A costs at rank 2");
	/* rank 3 on A: 30 >= 24 does not pay: dense */
	e = rs_plan_entry_lowrank(3);
	rs_plan_figures_for(&layers[0], &an[0], &e, &f);
	CHECK(f.method == RS_METHOD_DENSE && f.params == 24 && f.err_fro == 0,
	      "a factorisation costing more stays dense");
	/* B 3x3: break-even floor(9/6) = 1; rank 1 costs 6 < 9 */
	plan.entries[1] = rs_plan_entry_lowrank(1);
	CHECK(rs_lowrank_pays(3, 3, 1) && !rs_lowrank_pays(3, 3, 2), "B break-even");
	/* the pending layer asks for rank 1 but has no spectrum yet */
	plan.entries[2] = rs_plan_entry_lowrank(1);
	rs_plan_figures_for(&layers[2], &an[2], &plan.entries[2], &f);
	CHECK(!f.known && f.params == 64, "pending layer counts dense");
	/* equal cost is not a gain: 512x512 at rank 256 */
	CHECK(!rs_lowrank_pays(512, 512, 256) && rs_lowrank_pays(512, 512, 255),
	      "equal cost stays dense");

	rs_plan_totals_compute(&plan, layers, an, &t);
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
	check_other_methods();
	return test_done("test-plan");
}
