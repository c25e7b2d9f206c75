/*
 * test-whiten.c — truncations in the output norm against direct
 * computation on real inputs X (not only their Gram matrix): every figure
 * is checked as ||(W - W') X^T||_F / ||W X^T||_F with W' formed from the
 * factors, the whitened truncation against other rank-r candidates
 * (random input subspaces, the plain truncation, perturbations of itself),
 * singular and diagonal Gram matrices, and the refusals.
 */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "rankscope/whiten.h"
#include "testlib.h"

/* Inputs with correlated, unevenly scaled features: X = Z M (N x n). */
static double *
correlated_inputs(size_t count, size_t n)
{
	double *z = test_gaussian_matrix(count, n), *mix = test_gaussian_matrix(n, n);
	double *x = rs_xmalloc(count * n * sizeof *x);
	size_t i, j;

	for (j = 0; j < n; j++)
		for (i = 0; i < n; i++)
			mix[i + j * n] *= (i == j ? 3.0 : 0.6) / (1.0 + (double)j);
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)count, (int)n, (int)n,
	            1.0, z, (int)count, mix, (int)n, 0.0, x, (int)count);
	free(z);
	free(mix);
	return x;
}

static double *
gram_of(const double *x, size_t count, size_t n)
{
	double *g = rs_xcalloc(n * n, sizeof *g);
	size_t i, j;

	cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, (int)n, (int)count, 1.0, x,
	            (int)count, 0.0, g, (int)n);
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++)
			g[j + i * n] = g[i + j * n];
	return g;
}

/* ||A X^T||_F for A m x n, X count x n: straight from the inputs. */
static double
output_norm(const double *a, size_t m, size_t n, const double *x, size_t count)
{
	double *y = rs_xmalloc(m * count * sizeof *y), s = 0;
	size_t i;

	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)count, (int)n, 1.0,
	            a, (int)m, x, (int)count, 0.0, y, (int)m);
	for (i = 0; i < m * count; i++)
		s += y[i] * y[i];
	free(y);
	return sqrt(s);
}

static double
fro(const double *a, size_t len)
{
	double s = 0;
	size_t i;

	for (i = 0; i < len; i++)
		s += a[i] * a[i];
	return sqrt(s);
}

/* W - left * right. */
static double *
residual(const double *w, size_t m, size_t n, const double *left, const double *right,
         size_t r)
{
	double *e = rs_xmalloc(m * n * sizeof *e);

	memcpy(e, w, m * n * sizeof *e);
	if (r > 0)
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)r,
		            -1.0, left, (int)m, right, (int)r, 1.0, e, (int)m);
	return e;
}

/* The plain rank-r truncation's residual, from an SVD of our own. */
static double *
plain_residual(const double *w, size_t m, size_t n, size_t r)
{
	size_t k = m < n ? m : n, i, j;
	double *a = rs_xmalloc(m * n * sizeof *a), *s = rs_xmalloc(k * sizeof *s);
	double *u = rs_xmalloc(m * k * sizeof *u), *vt = rs_xmalloc(k * n * sizeof *vt);
	double *left = rs_xmalloc(m * (r ? r : 1) * sizeof *left), *e;
	double *superb = rs_xmalloc(k * sizeof *superb);

	memcpy(a, w, m * n * sizeof *a);
	if (LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'S', 'S', (int)m, (int)n, a, (int)m, s, u,
	                   (int)m, vt, (int)k, superb) != 0)
		abort();
	free(superb);
	for (j = 0; j < r; j++)
		for (i = 0; i < m; i++)
			left[i + j * m] = u[i + j * m] * s[j];
	/* right = first r rows of vt */
	{
		double *right = rs_xmalloc((r ? r : 1) * n * sizeof *right);

		for (j = 0; j < n; j++)
			for (i = 0; i < r; i++)
				right[i + j * r] = vt[i + j * k];
		e = residual(w, m, n, left, right, r);
		free(right);
	}
	free(a);
	free(s);
	free(u);
	free(vt);
	free(left);
	return e;
}

/* Every figure of one layer against its inputs. */
static void
check_layer(const char *what, size_t m, size_t n, size_t count, bool diagonal)
{
	double *w = test_gaussian_matrix(m, n), *x = correlated_inputs(count, n), *g = gram_of(x, count, n);
	size_t k = m < n ? m : n, r, i, j;
	double wx = output_norm(w, m, n, x, count), wf = fro(w, m * n);
	rs_error err = {0};
	rs_whiten *wh;
	char label[160];

	if (diagonal) {
		/* figures exact for diag(G): measure with inputs whose Gram is
		 * diagonal, i.e. X's columns made orthogonal with the same norms */
		for (j = 0; j < n; j++)
			for (i = 0; i < n; i++)
				if (i != j)
					g[i + j * n] = 0;
	}
	wh = rs_whiten_new(w, m, n, m, g, n, &err);
	CHECK(wh != NULL, "%s: %s", what, err.msg);
	if (!wh)
		goto out;
	if (diagonal) {
		double t = 0;

		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++)
				t += w[i + j * m] * w[i + j * m] * g[j + j * n];
		CHECK_NEAR(wh->out_total, t, 1e-12 * t, "tr(W diag(g) W^T) by hand");
	} else {
		CHECK_NEAR(sqrt(wh->out_total), wx, 1e-9 * wx, "tr(W G W^T) against ||W X^T||^2");
	}
	CHECK_NEAR(sqrt(wh->fro_total), wf, 1e-12 * wf, "||W||_F");
	CHECK(count >= n ? wh->shift == 0 : wh->shift > 0, "%s: shift %g with %zu inputs of %zu",
	      what, wh->shift, count, n);
	for (r = 0; r <= k; r++) {
		double *left = rs_xmalloc(m * (r ? r : 1) * sizeof *left);
		double *right = rs_xmalloc((r ? r : 1) * n * sizeof *right);
		double *e, *pe, measured, plain;

		if (r > 0) {
			rs_status st = rs_whiten_factors(w, m, n, m, g, n, r, left, right, &err);

			CHECK(st == RS_OK, "%s: factors at %zu: %s", what, r, err.msg);
		}
		e = residual(w, m, n, left, right, r);
		pe = plain_residual(w, m, n, r);
		if (diagonal) {
			measured = rs_whiten_out_err_of(wh, e, m, g, n);
			plain = rs_whiten_out_err_of(wh, pe, m, g, n);
		} else {
			measured = output_norm(e, m, n, x, count) / wx;
			plain = output_norm(pe, m, n, x, count) / wx;
			CHECK_NEAR(rs_whiten_out_err_of(wh, e, m, g, n), measured, 1e-9,
			           "out_err_of against X");
		}
		/* squared relative errors (the tails' own scale) to 1e-11: near
		 * zero a square root magnifies rounding in the shifted case */
		snprintf(label, sizeof label, "%s: whitened output error^2 at rank %zu", what, r);
		CHECK_NEAR(pow(rs_whiten_out_err(wh, r), 2), measured * measured, 1e-11, label);
		snprintf(label, sizeof label, "%s: whitened weight error^2 at rank %zu", what, r);
		/* shifted: the null space's terms come through L^{-1}, whose condition
		 * grows as 1 / sqrt(shift) */
		CHECK_NEAR(pow(rs_whiten_fro_err(wh, r), 2), pow(fro(e, m * n) / wf, 2),
		           wh->shift > 0 ? 1e-9 : 1e-11, label);
		snprintf(label, sizeof label, "%s: plain output error^2 at rank %zu", what, r);
		CHECK_NEAR(pow(rs_whiten_plain_out_err(wh, r), 2), plain * plain, 1e-11, label);
		/* optimal in the output norm when no shift was needed */
		if (wh->shift == 0)
			CHECK(measured <= plain + 1e-12, "%s: plain beats whitened at %zu: %g < %g",
			      what, r, plain, measured);
		free(left);
		free(right);
		free(e);
		free(pe);
	}
out:
	rs_whiten_free(wh);
	free(w);
	free(x);
	free(g);
}

/* No rank-r matrix does better than the whitened truncation: random input
 * subspaces (W projected onto span(Q), the best W' with that row space in
 * G's norm, W G Q (Q^T G Q)^-1 Q^T), and the truncation perturbed. */
static void
check_optimal(size_t m, size_t n, size_t count, size_t r, int trials)
{
	double *w = test_gaussian_matrix(m, n), *x = correlated_inputs(count, n), *g = gram_of(x, count, n);
	double *left = rs_xmalloc(m * r * sizeof *left), *right = rs_xmalloc(r * n * sizeof *right);
	double wx = output_norm(w, m, n, x, count), best, *e;
	rs_error err = {0};
	rs_whiten *wh = rs_whiten_new(w, m, n, m, g, n, &err);
	int t;
	size_t i;

	CHECK(wh != NULL, "optimality: %s", err.msg);
	if (!wh || rs_whiten_factors(w, m, n, m, g, n, r, left, right, &err) != RS_OK)
		goto out;
	e = residual(w, m, n, left, right, r);
	best = output_norm(e, m, n, x, count) / wx;
	free(e);
	CHECK_NEAR(best, rs_whiten_out_err(wh, r), 1e-9, "optimality: the truncation's error");
	for (t = 0; t < trials; t++) {
		/* perturbed factors */
		double *l2 = rs_xmalloc(m * r * sizeof *l2), *r2 = rs_xmalloc(r * n * sizeof *r2);
		double scale = 1e-3 * (1 + t % 7), cand;

		for (i = 0; i < m * r; i++)
			l2[i] = left[i] * (1 + scale * test_gaussian());
		for (i = 0; i < r * n; i++)
			r2[i] = right[i] * (1 + scale * test_gaussian());
		e = residual(w, m, n, l2, r2, r);
		cand = output_norm(e, m, n, x, count) / wx;
		CHECK(cand >= best - 1e-12, "perturbation %d beats the whitened truncation: %.12g < %.12g",
		      t, cand, best);
		free(e);
		free(l2);
		free(r2);
	}
	for (t = 0; t < trials; t++) {
		/* W' = W G Q (Q^T G Q)^-1 Q^T for a random n x r Q */
		double *q = test_gaussian_matrix(n, r), *gq = rs_xmalloc(n * r * sizeof *gq);
		double *qgq = rs_xmalloc(r * r * sizeof *qgq), *wgq = rs_xmalloc(m * r * sizeof *wgq);
		double *qt = rs_xmalloc(r * n * sizeof *qt), cand;
		lapack_int *piv = rs_xmalloc(r * sizeof *piv);
		size_t a, b;

		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)r, (int)n, 1.0,
		            g, (int)n, q, (int)n, 0.0, gq, (int)n);
		cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)r, (int)r, (int)n, 1.0, q,
		            (int)n, gq, (int)n, 0.0, qgq, (int)r);
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)r, (int)n, 1.0,
		            w, (int)m, gq, (int)n, 0.0, wgq, (int)m);
		for (a = 0; a < r; a++)
			for (b = 0; b < n; b++)
				qt[a + b * r] = q[b + a * n];
		/* qt := (Q^T G Q)^-1 Q^T */
		if (LAPACKE_dgesv(LAPACK_COL_MAJOR, (int)r, (int)n, qgq, (int)r, piv, qt, (int)r) != 0)
			abort();
		e = residual(w, m, n, wgq, qt, r);
		cand = output_norm(e, m, n, x, count) / wx;
		CHECK(cand >= best - 1e-12, "subspace %d beats the whitened truncation: %.12g < %.12g",
		      t, cand, best);
		free(e);
		free(q);
		free(gq);
		free(qgq);
		free(wgq);
		free(qt);
		free(piv);
	}
out:
	rs_whiten_free(wh);
	free(w);
	free(x);
	free(g);
	free(left);
	free(right);
}

static void
check_rank_for(void)
{
	double *w = test_gaussian_matrix(12, 20), *x = correlated_inputs(50, 20), *g = gram_of(x, 50, 20);
	rs_error err = {0};
	rs_whiten *wh = rs_whiten_new(w, 12, 20, 12, g, 20, &err);
	double eps;

	CHECK(wh != NULL, "rank_for: %s", err.msg);
	for (eps = 0; wh && eps <= 1.0; eps += 0.0625) {
		size_t r = rs_whiten_rank_for_out_err(wh, eps), s;

		CHECK(rs_whiten_out_err(wh, r) <= eps, "rank %zu misses eps %g", r, eps);
		for (s = 0; s < r; s++)
			CHECK(rs_whiten_out_err(wh, s) > eps, "rank %zu is not the smallest for %g", r,
			      eps);
	}
	rs_whiten_free(wh);
	free(w);
	free(x);
	free(g);
}

/* The cache's packing: a round trip keeps every figure; damage is refused. */
static void
check_pack(void)
{
	double *w = test_gaussian_matrix(7, 11), *x = correlated_inputs(30, 11), *g = gram_of(x, 30, 11);
	rs_error err = {0};
	rs_whiten *wh = rs_whiten_new(w, 7, 11, 7, g, 11, &err), *back;
	size_t len = rs_whiten_packed_len(7, 11), r;
	double *v = rs_xmalloc(len * sizeof *v);

	CHECK(wh != NULL, "pack: %s", err.msg);
	if (wh == NULL)
		goto out;
	rs_whiten_pack(wh, v);
	back = rs_whiten_unpack(7, 11, v);
	CHECK(back != NULL, "unpack of a packed table refused");
	for (r = 0; back && r <= wh->k; r++) {
		CHECK(rs_whiten_out_err(back, r) == rs_whiten_out_err(wh, r), "round trip: out_err");
		CHECK(rs_whiten_fro_err(back, r) == rs_whiten_fro_err(wh, r), "round trip: fro_err");
		CHECK(rs_whiten_plain_out_err(back, r) == rs_whiten_plain_out_err(wh, r),
		      "round trip: plain");
	}
	rs_whiten_free(back);
	v[4] = v[3] * 2;   /* sigma no longer descending */
	CHECK(rs_whiten_unpack(7, 11, v) == NULL, "unpack accepted rising values");
	rs_whiten_pack(wh, v);
	v[3 + wh->k + 2] = v[3 + wh->k] * 2;   /* a tail that rises */
	CHECK(rs_whiten_unpack(7, 11, v) == NULL, "unpack accepted a rising tail");
	rs_whiten_pack(wh, v);
	v[1] = 0;
	CHECK(rs_whiten_unpack(7, 11, v) == NULL, "unpack accepted a zero output");
out:
	rs_whiten_free(wh);
	free(v);
	free(w);
	free(x);
	free(g);
}

static void
check_refusals(void)
{
	double w[6] = {1, 2, 3, 4, 5, 6}, zero[6] = {0}, g[9] = {0};
	rs_error err = {0};
	rs_whiten *wh;

	wh = rs_whiten_new(w, 2, 3, 2, g, 3, &err);
	CHECK(wh == NULL && err.code == RS_EINVAL, "zero Gram accepted");
	CHECK_CONTAINS(err.msg, "trace");
	g[0] = g[4] = g[8] = 1;
	rs_error_clear(&err);
	wh = rs_whiten_new(zero, 2, 3, 2, g, 3, &err);
	CHECK(wh == NULL && err.code == RS_EINVAL, "zero output accepted");
	CHECK_CONTAINS(err.msg, "output is zero");
	g[8] = -1.5; /* trace 0.5 > 0, but indefinite */
	rs_error_clear(&err);
	wh = rs_whiten_new(w, 2, 3, 2, g, 3, &err);
	CHECK(wh == NULL, "indefinite Gram accepted");
	CHECK_CONTAINS(err.msg, "positive semi-definite");
	rs_error_clear(&err);
	g[8] = 1;
	CHECK(rs_whiten_factors(w, 2, 3, 2, g, 3, 3, zero, zero, &err) == RS_EINVAL,
	      "rank beyond k accepted");
}

int
main(void)
{
	test_seed(2026);
	check_layer("tall, full-rank inputs", 9, 6, 40, false);
	check_layer("wide, full-rank inputs", 5, 12, 60, false);
	check_layer("square, few inputs (singular G)", 8, 8, 5, false);
	check_layer("wide, few inputs (singular G)", 6, 14, 9, false);
	check_layer("diagonal G", 7, 10, 30, true);
	check_optimal(10, 16, 80, 3, 40);
	check_optimal(16, 10, 40, 5, 40);
	check_rank_for();
	check_pack();
	check_refusals();
	return test_done("test-whiten");
}
