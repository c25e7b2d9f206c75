/*
 * test-outcurve.c — output errors of pruning and quantisation against
 * direct computation on real inputs X: every tabulated figure is checked as
 * ||E X^T||_F / ||W X^T||_F with E formed from the mask or the quantised
 * values in the test, for W read straight and as W^T (the engine's order
 * for linear layers); the scored mask is optimal when G is diagonal.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/outcurve.h"
#include "rankscope/util.h"
#include "testlib.h"

static double *
gaussian_matrix(size_t m, size_t n, double scale_cols)
{
	double *a = rs_xmalloc(m * n * sizeof *a);
	size_t i, j;

	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			a[i + j * m] = test_gaussian() * (1 + scale_cols * (double)j);
	return a;
}

/* ||E X^T||_F^2 with X count x n (column-major). */
static double
out_sq(const double *e, size_t m, size_t n, const double *x, size_t count)
{
	double *y = rs_xmalloc(m * count * sizeof *y), s = 0;
	size_t i;

	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)count, (int)n, 1.0, e,
	            (int)m, x, (int)count, 0.0, y, (int)m);
	for (i = 0; i < m * count; i++)
		s += y[i] * y[i];
	free(y);
	return s;
}

static void
check_layer(size_t m, size_t n, size_t count, bool transposed, bool diagonal)
{
	double *w = gaussian_matrix(m, n, 0.05), *x = gaussian_matrix(count, n, 0.3);
	double *g = rs_xcalloc(n * n, sizeof *g), *e = rs_xmalloc(m * n * sizeof *e), *wt;
	unsigned char *keep = rs_xmalloc(m * n);
	size_t i, j, d, total = m * n;
	rs_magnitudes *mags;
	rs_out_curves *c;
	rs_error err = {0};
	double wx;
	char what[160];

	if (diagonal) {
		/* orthogonal input columns: G is diagonal and X still real */
		for (j = 0; j < n; j++)
			for (i = 0; i < count; i++)
				x[i + j * count] = i == j ? 1.0 + (double)j : 0.0;
	}
	cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, (int)n, (int)count, 1.0, x, (int)count,
	            0.0, g, (int)n);
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++)
			g[j + i * n] = g[i + j * n];
	wt = rs_xmalloc(m * n * sizeof *wt);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			wt[j + i * n] = w[i + j * m];
	mags = transposed ? rs_magnitudes_new(wt, n, m, n) : rs_magnitudes_new(w, m, n, m);
	c = rs_out_curves_new(w, m, n, g, mags, transposed, &err);
	CHECK(c != NULL, "curves: %s", err.msg);
	if (c == NULL)
		goto out;
	wx = out_sq(w, m, n, x, count);
	CHECK_NEAR(c->total, wx, 1e-9 * wx, "tr(W G W^T)");
	for (d = 0; d <= total; d += (total / 17) + 1) {
		double magnitude, scored;

		/* magnitude order, as the weight figures' mask */
		rs_prune_mask(mags, d, keep);
		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++) {
				size_t b = transposed ? j + i * n : i + j * m;
				e[i + j * m] = keep[b] ? 0 : w[i + j * m];
			}
		magnitude = sqrt(out_sq(e, m, n, x, count) / wx);
		snprintf(what, sizeof what, "%zux%zu%s%s: pruning %zu by magnitude", m, n,
		         transposed ? " (W^T)" : "", diagonal ? " diag" : "", d);
		CHECK_NEAR(rs_out_prune_error(c, d, false), magnitude, 1e-9, what);
		rs_out_scored_mask(c, d, keep);
		for (i = 0; i < total; i++)
			e[i] = keep[i] ? 0 : w[i];
		scored = sqrt(out_sq(e, m, n, x, count) / wx);
		snprintf(what, sizeof what, "%zux%zu: pruning %zu by score", m, n, d);
		CHECK_NEAR(rs_out_prune_error(c, d, true), scored, 1e-9, what);
		{
			double ef = 0, wf = 0;
			for (i = 0; i < total; i++) {
				ef += e[i] * e[i];
				wf += w[i] * w[i];
			}
			CHECK_NEAR(rs_out_scored_fro_error(c, d), sqrt(ef / wf), 1e-12,
			           "scored mask's weight error");
		}
		if (diagonal)
			CHECK(scored <= magnitude + 1e-12, "diagonal G: the scored mask (%g) loses to "
			      "magnitude (%g) at %zu", scored, magnitude, d);
	}
	/* channels, in the weight figures' order */
	{
		const uint32_t *ro = transposed ? mags->col_order : mags->row_order;
		const uint32_t *co = transposed ? mags->row_order : mags->col_order;

		for (d = 0; d <= m; d++) {
			memset(e, 0, total * sizeof *e);
			for (size_t k = 0; k < d; k++)
				for (j = 0; j < n; j++)
					e[ro[k] + j * m] = w[ro[k] + j * m];
			snprintf(what, sizeof what, "%zux%zu: dropping %zu rows", m, n, d);
			CHECK_NEAR(rs_out_rows_error(c, d), sqrt(out_sq(e, m, n, x, count) / wx), 1e-9,
			           what);
		}
		for (d = 0; d <= n; d++) {
			memset(e, 0, total * sizeof *e);
			for (size_t k = 0; k < d; k++)
				for (i = 0; i < m; i++)
					e[i + co[k] * m] = w[i + co[k] * m];
			snprintf(what, sizeof what, "%zux%zu: dropping %zu columns", m, n, d);
			CHECK_NEAR(rs_out_cols_error(c, d), sqrt(out_sq(e, m, n, x, count) / wx), 1e-9,
			           what);
		}
	}
	/* quantisers: Q(W) from the quantiser, E measured on X */
	for (int q = 0; q < RS_QUANT_COUNT; q++)
		for (unsigned b = 1; b <= RS_OUT_QUANT_BITS; b++) {
			rs_quant_result r;

			if (rs_quantize(w, m, n, m, (rs_quantizer)q, b, e, NULL, NULL, &r, &err) != RS_OK)
				abort();
			for (i = 0; i < total; i++)
				e[i] = w[i] - e[i];
			snprintf(what, sizeof what, "%zux%zu: %s at %u bits", m, n,
			         rs_quantizer_name((rs_quantizer)q), b);
			CHECK_NEAR(rs_out_quant_error(c, (rs_quantizer)q, b),
			           sqrt(out_sq(e, m, n, x, count) / wx), 1e-9, what);
		}
out:
	rs_out_curves_free(c);
	rs_magnitudes_free(mags);
	free(w);
	free(wt);
	free(x);
	free(g);
	free(e);
	free(keep);
}

int
main(void)
{
	test_seed(77);
	check_layer(7, 5, 30, false, false);
	check_layer(6, 9, 40, true, false);
	check_layer(12, 8, 8, true, false);   /* singular G: fewer inputs than columns */
	check_layer(5, 10, 10, false, true);
	check_layer(9, 6, 6, true, true);
	return test_done("test-outcurve");
}
