/*
 * test-refine.c — the block-coordinate refinement against direct
 * computation on real inputs X: every reported output error is
 * ||(W - W') X^T||_F / ||W X^T||_F of the W' returned, the history never
 * rises, each closed-form block is a minimum (no perturbation of the
 * refined values, codebook or factors does better), the sparse support
 * and the codes stay as given, and low rank refined from the plain
 * truncation approaches the whitened optimum.
 */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/prune.h"
#include "rankscope/quant.h"
#include "rankscope/refine.h"
#include "rankscope/tt.h"
#include "rankscope/util.h"
#include "rankscope/whiten.h"
#include "testlib.h"

/* correlated inputs (count x n) and their Gram */
static double *
inputs(size_t count, size_t n, double **g_out)
{
	double *z = test_gaussian_matrix(count, n), *mix = test_gaussian_matrix(n, n), *x = rs_xmalloc(count * n * sizeof *x);
	double *g = rs_xcalloc(n * n, sizeof *g);
	size_t i, j;

	for (i = 0; i < n; i++)
		mix[i + i * n] += 2.5;
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)count, (int)n, (int)n, 1.0, z,
	            (int)count, mix, (int)n, 0.0, x, (int)count);
	cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, (int)n, (int)count, 1.0, x, (int)count,
	            0.0, g, (int)n);
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++)
			g[j + i * n] = g[i + j * n];
	free(z);
	free(mix);
	*g_out = g;
	return x;
}

static double
out_err_on_x(const double *w, const double *wp, size_t m, size_t n, const double *x,
             size_t count)
{
	double *e = rs_xmalloc(m * n * sizeof *e), *y = rs_xmalloc(m * count * sizeof *y);
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < m * n; i++)
		e[i] = w[i] - wp[i];
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)count, (int)n, 1.0, e,
	            (int)m, x, (int)count, 0.0, y, (int)m);
	for (i = 0; i < m * count; i++)
		num += y[i] * y[i];
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)count, (int)n, 1.0, w,
	            (int)m, x, (int)count, 0.0, y, (int)m);
	for (i = 0; i < m * count; i++)
		den += y[i] * y[i];
	free(e);
	free(y);
	return sqrt(num / den);
}

static void
check_history(const rs_refine_result *r, const char *what)
{
	size_t s;

	CHECK(r->sweeps >= 1, "%s: no sweep", what);
	for (s = 1; s <= r->sweeps; s++)
		CHECK(r->history[s] <= r->history[s - 1] + 1e-12, "%s: sweep %zu raised the error "
		      "%.15g -> %.15g", what, s, r->history[s - 1], r->history[s]);
	CHECK(r->out_err == r->history[r->sweeps], "%s: out_err is the last sweep's", what);
}

static void
check_lowrank(size_t m, size_t n, size_t count, size_t r)
{
	double *w = test_gaussian_matrix(m, n), *g, *x = inputs(count, n, &g);
	size_t k = m < n ? m : n, i, j, t;
	double *u = rs_xmalloc(m * k * sizeof *u), *s = rs_xmalloc(k * sizeof *s);
	double *vt = rs_xmalloc(k * n * sizeof *vt), *c = rs_xmalloc(m * n * sizeof *c);
	double *b = rs_xmalloc(m * r * sizeof *b), *a = rs_xmalloc(r * n * sizeof *a);
	double *wp = rs_xmalloc(m * n * sizeof *wp);
	rs_refine_result res;
	rs_error err = {0};
	rs_whiten *wh;
	char what[96];

	memcpy(c, w, m * n * sizeof *c);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (int)m, (int)n, c, (int)m, s, u, (int)m, vt,
	                   (int)k) != 0)
		abort();
	for (t = 0; t < r; t++) {
		for (i = 0; i < m; i++)
			b[i + t * m] = u[i + t * m] * s[t];
		for (j = 0; j < n; j++)
			a[t + j * r] = vt[t + j * k];
	}
	snprintf(what, sizeof what, "low rank %zux%zu r=%zu", m, n, r);
	CHECK(rs_refine_lowrank(w, m, n, g, r, b, a, 30, &res, &err) == RS_OK, "%s: %s", what,
	      err.msg);
	check_history(&res, what);
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)r, 1.0, b,
	            (int)m, a, (int)r, 0.0, wp, (int)m);
	CHECK_NEAR(res.out_err, out_err_on_x(w, wp, m, n, x, count), 1e-9, "refined factors on X");
	wh = rs_whiten_new(w, m, n, m, g, n, &err);
	CHECK(wh != NULL, "whiten: %s", err.msg);
	if (wh) {
		double opt = rs_whiten_out_err(wh, r);
		CHECK(res.history[0] >= rs_whiten_plain_out_err(wh, r) - 1e-12 &&
		      res.history[0] <= rs_whiten_plain_out_err(wh, r) + 1e-12,
		      "%s: starts at the plain truncation", what);
		CHECK(res.out_err >= opt - 1e-10, "%s: beats the optimum %.12g < %.12g", what,
		      res.out_err, opt);
		CHECK(res.out_err <= res.history[0], "%s: no gain", what);
		CHECK(res.out_err - opt <= 0.25 * (res.history[0] - opt) + 1e-9,
		      "%s: refinement closes under 3/4 of the gap to the optimum (%.6g, start %.6g, "
		      "optimum %.6g)", what, res.out_err, res.history[0], opt);
	}
	rs_whiten_free(wh);
	free(w); free(g); free(x); free(u); free(s); free(vt); free(c); free(b); free(a); free(wp);
}

static void
check_sparse(size_t m, size_t n, size_t count, double sparsity)
{
	double *w = test_gaussian_matrix(m, n), *g, *x = inputs(count, n, &g);
	double *out = rs_xmalloc(m * n * sizeof *out), *p = rs_xmalloc(m * n * sizeof *p);
	unsigned char *keep = rs_xmalloc(m * n);
	rs_magnitudes *mags = rs_magnitudes_new(w, m, n, m);
	rs_refine_result res;
	rs_error err = {0};
	size_t i, trial;
	double best;
	char what[96];

	rs_prune_mask(mags, rs_prune_dropped(m * n, sparsity), keep);
	snprintf(what, sizeof what, "sparse %zux%zu p=%.2f", m, n, sparsity);
	CHECK(rs_refine_sparse(w, m, n, g, keep, out, &res, &err) == RS_OK, "%s: %s", what, err.msg);
	check_history(&res, what);
	for (i = 0; i < m * n; i++)
		CHECK(keep[i] || out[i] == 0, "%s: a dropped weight came back", what);
	best = out_err_on_x(w, out, m, n, x, count);
	CHECK_NEAR(res.out_err, best, 1e-9, "refined sparse on X");
	for (i = 0; i < m * n; i++)
		p[i] = keep[i] ? w[i] : 0;
	CHECK_NEAR(res.history[0], out_err_on_x(w, p, m, n, x, count), 1e-9, "start on X");
	for (trial = 0; trial < 30; trial++) {
		for (i = 0; i < m * n; i++)
			p[i] = keep[i] ? out[i] + 1e-3 * test_gaussian() : 0;
		CHECK(out_err_on_x(w, p, m, n, x, count) >= best - 1e-12,
		      "%s: a perturbation of the refined values does better", what);
	}
	rs_magnitudes_free(mags);
	free(w); free(g); free(x); free(out); free(p); free(keep);
}

static void
check_codebook(size_t m, size_t n, size_t count, rs_quantizer q, unsigned bits, bool choose)
{
	double *w = test_gaussian_matrix(m, n), *g, *x = inputs(count, n, &g);
	bool per_row = q == RS_QUANT_UNIFORM_CHANNEL;
	size_t levels = (size_t)1 << rs_quantizer_bits(q, bits), nbook = per_row ? m * levels : levels;
	uint16_t *codes = rs_xmalloc(m * n * sizeof *codes);
	double *book = rs_xcalloc(nbook, sizeof *book), *orig = rs_xmalloc(nbook * sizeof *orig);
	double *out = rs_xmalloc(m * n * sizeof *out), *p = rs_xmalloc(m * n * sizeof *p), best;
	rs_quant_result qr;
	rs_refine_result res;
	rs_error err = {0};
	size_t i, j, trial;
	char what[96];

	if (rs_quantize(w, m, n, m, q, bits, NULL, codes, book, &qr, &err) != RS_OK)
		abort();
	memcpy(orig, book, nbook * sizeof *book);
	snprintf(what, sizeof what, "codebook %s/%u %zux%zu", rs_quantizer_name(q), bits, m, n);
	CHECK(rs_refine_codebook(w, m, n, g, codes, levels, per_row, choose, book, out, &res, &err) ==
	      RS_OK, "%s: %s", what, err.msg);
	check_history(&res, what);
	best = out_err_on_x(w, out, m, n, x, count);
	CHECK_NEAR(res.out_err, best, 1e-9, "refined codebook on X");
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			CHECK(out[i + j * m] == book[(per_row ? i * levels : 0) + codes[i + j * m]],
			      "%s: W' is the codes looked up", what);
	for (trial = 0; trial < 30; trial++) {
		double *pb = rs_xmalloc(nbook * sizeof *pb);
		for (i = 0; i < nbook; i++)
			pb[i] = book[i] + 1e-3 * test_gaussian();
		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++)
				p[i + j * m] = pb[(per_row ? i * levels : 0) + codes[i + j * m]];
		CHECK(out_err_on_x(w, p, m, n, x, count) >= best - 1e-12,
		      "%s: a perturbed codebook does better", what);
		free(pb);
	}
	free(w); free(g); free(x); free(codes); free(book); free(orig); free(out); free(p);
}

/* Core k of tt solved by brute force: the linear map from the core's
 * values to W' built column by column from unit cores, and the least
 * squares on X itself (count x n) — nothing of the kernel's structure. */
static void
brute_core(const double *w, const double *x, size_t count, rs_tt *tt, size_t k)
{
	size_t m = tt->rows, n = tt->cols, p = tt->ranks[k] * tt->row_modes[k] *
	       tt->col_modes[k] * tt->ranks[k + 1], rows = count * m, u, c;
	double *save = tt->cores[k], *unit = rs_xcalloc(p, sizeof *unit);
	double *a = rs_xmalloc(rows * p * sizeof *a), *rhs = rs_xmalloc(rows * sizeof *rhs);
	double *wp = rs_xmalloc(m * n * sizeof *wp);
	rs_error err = {0};

	tt->cores[k] = unit;
	for (u = 0; u < p; u++) {
		unit[u] = 1;
		if (rs_tt_reconstruct(tt, wp, m, &err) != RS_OK)
			abort();
		unit[u] = 0;
		/* X W'^T: count x m */
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)count, (int)m, (int)n, 1.0,
		            x, (int)count, wp, (int)m, 0.0, a + u * rows, (int)count);
	}
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)count, (int)m, (int)n, 1.0, x,
	            (int)count, w, (int)m, 0.0, rhs, (int)count);
	{
		double *sv = rs_xmalloc(p * sizeof *sv);
		lapack_int rank;
		if (LAPACKE_dgelsd(LAPACK_COL_MAJOR, (int)rows, (int)p, 1, a, (int)rows, rhs,
		                   (int)rows, sv, -1.0, &rank) != 0)
			abort();
		free(sv);
	}
	for (c = 0; c < p; c++)
		save[c] = rhs[c];
	tt->cores[k] = save;
	free(unit); free(a); free(rhs); free(wp);
}

static void
check_tt(size_t d, const size_t *rm, const size_t *cm, const size_t *caps, size_t count)
{
	size_t m = 1, n = 1, k, s;
	double *w, *g, *x, *wp;
	rs_tt *tt, *ref;
	rs_refine_result res, one;
	rs_error err = {0};
	char what[96];

	for (k = 0; k < d; k++) {
		m *= rm[k];
		n *= cm[k];
	}
	w = test_gaussian_matrix(m, n);
	x = inputs(count, n, &g);
	wp = rs_xmalloc(m * n * sizeof *wp);
	snprintf(what, sizeof what, "tt %zux%zu d=%zu", m, n, d);
	/* one sweep against the same sweep done by brute force */
	tt = rs_tt_svd(w, m, n, m, d, rm, cm, caps, -1.0, &err);
	ref = rs_tt_svd(w, m, n, m, d, rm, cm, caps, -1.0, &err);
	CHECK(tt && ref, "%s: TT-SVD: %s", what, err.msg);
	if (!tt || !ref)
		return;
	CHECK(rs_refine_tt(w, m, n, g, tt, 1, &one, &err) == RS_OK, "%s: %s", what, err.msg);
	for (k = 0; k < d; k++)
		brute_core(w, x, count, ref, k);
	if (rs_tt_reconstruct(ref, wp, m, &err) != RS_OK)
		abort();
	CHECK(fabs(one.out_err - out_err_on_x(w, wp, m, n, x, count)) <= 1e-8,
	      "%s: one sweep = the sweep solved by brute force on X", what);
	if (rs_tt_reconstruct(tt, wp, m, &err) != RS_OK)
		abort();
	CHECK(fabs(one.out_err - out_err_on_x(w, wp, m, n, x, count)) <= 1e-9,
	      "%s: reported error of the refined cores on X", what);
	rs_tt_free(tt);
	/* many sweeps: monotone, below TT-SVD, each core optimal at the end */
	tt = rs_tt_svd(w, m, n, m, d, rm, cm, caps, -1.0, &err);
	CHECK(rs_refine_tt(w, m, n, g, tt, 40, &res, &err) == RS_OK, "%s: %s", what, err.msg);
	check_history(&res, what);
	CHECK(res.out_err < res.history[0], "%s: no gain", what);
	if (rs_tt_reconstruct(tt, wp, m, &err) != RS_OK)
		abort();
	CHECK(fabs(res.out_err - out_err_on_x(w, wp, m, n, x, count)) <= 1e-9, "%s: on X", what);
	CHECK(tt->err == res.fro_err, "%s: tt->err is the refined weight error", what);
	for (s = 0; s < d; s++) {
		rs_tt *copy = rs_tt_svd(w, m, n, m, d, rm, cm, caps, -1.0, &err);
		size_t c, sz;
		for (k = 0; k < d; k++) {
			sz = tt->ranks[k] * rm[k] * cm[k] * tt->ranks[k + 1];
			for (c = 0; c < sz; c++)
				copy->cores[k][c] = tt->cores[k][c];
		}
		brute_core(w, x, count, copy, s);
		if (rs_tt_reconstruct(copy, wp, m, &err) != RS_OK)
			abort();
		CHECK(out_err_on_x(w, wp, m, n, x, count) >= res.out_err - 1e-6 * res.out_err,
		      "%s: core %zu can still gain after the sweeps", what, s + 1);
		rs_tt_free(copy);
	}
	rs_tt_free(tt);
	rs_tt_free(ref);
	free(w); free(g); free(x); free(wp);
}

int
main(void)
{
	test_seed(4242);
	check_lowrank(12, 9, 40, 3);
	check_lowrank(8, 15, 60, 4);
	check_lowrank(10, 10, 6, 2);     /* singular G */
	check_sparse(9, 12, 50, 0.5);
	check_sparse(7, 8, 5, 0.3);      /* singular G */
	check_codebook(10, 12, 50, RS_QUANT_KMEANS, 2, false);
	check_codebook(6, 9, 40, RS_QUANT_UNIFORM_CHANNEL, 3, false);
	check_codebook(8, 8, 30, RS_QUANT_UNIFORM_TENSOR, 2, false);
	check_codebook(9, 7, 30, RS_QUANT_TERNARY, 1, false);
	check_codebook(10, 12, 50, RS_QUANT_KMEANS, 2, true);
	check_codebook(12, 16, 60, RS_QUANT_UNIFORM_CHANNEL, 3, true);
	check_codebook(16, 10, 40, RS_QUANT_UNIFORM_TENSOR, 2, true);
	check_codebook(8, 8, 6, RS_QUANT_UNIFORM_TENSOR, 3, true);   /* singular G */
	{
		size_t rm[3] = {2, 2, 2}, cm[3] = {3, 2, 2}, caps[2] = {2, 3};
		size_t rm2[2] = {3, 4}, cm2[2] = {4, 2}, caps2[1] = {3};
		size_t rm4[4] = {2, 1, 2, 2}, cm4[4] = {2, 3, 1, 2}, caps4[3] = {2, 3, 2};
		check_tt(3, rm, cm, caps, 60);
		check_tt(2, rm2, cm2, caps2, 40);
		check_tt(4, rm4, cm4, caps4, 50);
	}
	return test_done("test-refine");
}
