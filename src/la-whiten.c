/* la-whiten.c — truncations in the output norm; see rankscope/whiten.h.
 *
 * Working memory for an m x n layer: L (n x n), W L and U' (m x n and
 * m x k), V'^T (k x n), and the same again for the plain SVD, which is
 * done after the whitened buffers are freed. */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/svd.h"
#include "rankscope/util.h"
#include "rankscope/whiten.h"

/* The shifts tried, as multiples of tr(G)/n: exact first. */
static const double shift_steps[] = {0, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8,
                                     1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2};

/* L L^T = G + shift I, the smallest listed shift that factors.  l is n x n. */
static rs_status
cholesky_shifted(const double *g, size_t ldg, size_t n, double *l, double *shift,
                 rs_error *err)
{
	double trace = 0;
	size_t i, j, step;

	for (i = 0; i < n; i++)
		trace += g[i + i * ldg];
	if (!(trace > 0) || !isfinite(trace))
		return rs_error_set(err, RS_EINVAL,
		    "the Gram matrix has trace %g: it must be positive", trace);
	for (step = 0; step < sizeof shift_steps / sizeof shift_steps[0]; step++) {
		double s = shift_steps[step] * trace / (double)n;

		for (j = 0; j < n; j++) {
			for (i = 0; i < j; i++)
				l[i + j * n] = 0;
			for (i = j; i < n; i++)
				l[i + j * n] = g[i + j * ldg];
			l[j + j * n] += s;
		}
		if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)n, l, (lapack_int)n) == 0) {
			*shift = s;
			return RS_OK;
		}
	}
	return rs_error_set(err, RS_ENUMERIC,
	    "the Gram matrix does not factor even shifted by 1e-2 tr(G)/n: "
	    "it is not positive semi-definite");
}

/* The whitened SVD: sigma (k), and into xt (k x n) V'^T L^{-1}; u (m x k)
 * optional.  l is G's shifted Cholesky factor. */
static rs_status
whitened_svd(const double *w, size_t rows, size_t cols, size_t ldw, const double *l,
             double *sigma, double *u_out, double *xt, rs_error *err)
{
	size_t k = rows < cols ? rows : cols, j;
	double *a = malloc(rows * cols * sizeof *a);
	double *u = u_out ? u_out : malloc(rows * k * sizeof *u);
	rs_status st;

	if (!a || !u) {
		free(a);
		if (!u_out)
			free(u);
		return rs_error_set(err, RS_ENOMEM, "out of memory for a %zu x %zu whitening",
		                    rows, cols);
	}
	for (j = 0; j < cols; j++)
		memcpy(a + j * rows, w + j * ldw, rows * sizeof *a);
	cblas_dtrmm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
	            (int)rows, (int)cols, 1.0, l, (int)cols, a, (int)rows);
	st = rs_svd_vectors(a, rows, cols, rows, sigma, u, xt, err);
	if (st == RS_OK)
		cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
		            (int)k, (int)cols, 1.0, l, (int)cols, xt, (int)k);
	free(a);
	if (!u_out)
		free(u);
	return st;
}

/* tr(A G A^T) for a rows x cols matrix a. */
static double
gram_trace(const double *a, size_t rows, size_t cols, size_t lda, const double *g,
           size_t ldg, double *scratch)
{
	double t = 0;
	size_t i, j;

	cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)rows, (int)cols, 1.0,
	            g, (int)ldg, a, (int)lda, 0.0, scratch, (int)rows);
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			t += scratch[i + j * rows] * a[i + j * lda];
	return t > 0 ? t : 0;
}

/* tail[r] = sum_{i >= r} term[i], from the small end; clamped at 0. */
static void
tails(const double *term, size_t k, double *tail)
{
	size_t r;

	tail[k] = 0;
	for (r = k; r-- > 0;) {
		double t = tail[r + 1] + term[r];
		tail[r] = t > 0 ? t : 0;
	}
}

void
rs_whiten_free(rs_whiten *wh)
{
	if (!wh)
		return;
	free(wh->sigma);
	free(wh->out_tail);
	free(wh->fro_tail);
	free(wh->plain_out_tail);
	free(wh);
}

rs_whiten *
rs_whiten_new(const double *w, size_t rows, size_t cols, size_t ldw, const double *g,
              size_t ldg, rs_error *err)
{
	size_t k = rows < cols ? rows : cols, i, j;
	rs_whiten *wh;
	double *l = NULL, *xt = NULL, *scratch = NULL, *term = NULL, *a = NULL;
	double *u = NULL, *s = NULL;
	rs_status st;

	if (rows == 0 || cols == 0 || ldw < rows || ldg < cols) {
		rs_error_set(err, RS_EINVAL, "bad whitening shape %zu x %zu", rows, cols);
		return NULL;
	}
	wh = calloc(1, sizeof *wh);
	if (!wh) {
		rs_error_set(err, RS_ENOMEM, "out of memory");
		return NULL;
	}
	wh->rows = rows;
	wh->cols = cols;
	wh->k = k;
	wh->sigma = malloc(k * sizeof *wh->sigma);
	wh->out_tail = malloc((k + 1) * sizeof *wh->out_tail);
	wh->fro_tail = malloc((k + 1) * sizeof *wh->fro_tail);
	wh->plain_out_tail = malloc((k + 1) * sizeof *wh->plain_out_tail);
	l = malloc(cols * cols * sizeof *l);
	xt = malloc(k * cols * sizeof *xt);
	scratch = malloc(rows * cols * sizeof *scratch);
	term = malloc(k * sizeof *term);
	if (!wh->sigma || !wh->out_tail || !wh->fro_tail || !wh->plain_out_tail || !l ||
	    !xt || !scratch || !term) {
		rs_error_set(err, RS_ENOMEM, "out of memory for a %zu x %zu whitening",
		             rows, cols);
		goto fail;
	}

	wh->out_total = gram_trace(w, rows, cols, ldw, g, ldg, scratch);
	wh->fro_total = 0;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			wh->fro_total += w[i + j * ldw] * w[i + j * ldw];
	/* Whitened truncation. */
	if (cholesky_shifted(g, ldg, cols, l, &wh->shift, err) != RS_OK)
		goto fail;
	if (!(wh->out_total > 0)) {
		rs_error_set(err, RS_EINVAL,
		    "the layer's output is zero on the calibration data (tr(W G W^T) = 0)");
		goto fail;
	}
	if (whitened_svd(w, rows, cols, ldw, l, wh->sigma, NULL, xt, err) != RS_OK)
		goto fail;
	for (i = 0; i < k; i++) {
		double wi = 0, s2 = wh->sigma[i] * wh->sigma[i];

		for (j = 0; j < cols; j++)
			wi += xt[i + j * k] * xt[i + j * k];
		term[i] = s2 * wi;
		scratch[i] = s2 * (1 - wh->shift * wi);
	}
	tails(term, k, wh->fro_tail);
	tails(scratch, k, wh->out_tail);

	/* Plain truncation in the output norm: d_i = v_i^T G v_i. */
	free(l);
	l = NULL;
	a = malloc(rows * cols * sizeof *a);
	u = malloc(rows * k * sizeof *u);
	s = malloc(k * sizeof *s);
	if (!a || !u || !s) {
		rs_error_set(err, RS_ENOMEM, "out of memory for a %zu x %zu SVD", rows, cols);
		goto fail;
	}
	for (j = 0; j < cols; j++)
		memcpy(a + j * rows, w + j * ldw, rows * sizeof *a);
	st = rs_svd_vectors(a, rows, cols, rows, s, u, xt, err);
	if (st != RS_OK)
		goto fail;
	/* scratch (k x n) = V^T G */
	cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)k, (int)cols, 1.0, g,
	            (int)ldg, xt, (int)k, 0.0, scratch, (int)k);
	for (i = 0; i < k; i++) {
		double d = 0;

		for (j = 0; j < cols; j++)
			d += scratch[i + j * k] * xt[i + j * k];
		term[i] = s[i] * s[i] * (d > 0 ? d : 0);
	}
	tails(term, k, wh->plain_out_tail);

	free(a);
	free(u);
	free(s);
	free(xt);
	free(scratch);
	free(term);
	return wh;
fail:
	free(a);
	free(u);
	free(s);
	free(l);
	free(xt);
	free(scratch);
	free(term);
	rs_whiten_free(wh);
	return NULL;
}

size_t
rs_whiten_packed_len(size_t rows, size_t cols)
{
	size_t k = rows < cols ? rows : cols;

	return 3 + k + 3 * (k + 1);
}

void
rs_whiten_pack(const rs_whiten *wh, double *out)
{
	size_t k = wh->k;

	out[0] = wh->shift;
	out[1] = wh->out_total;
	out[2] = wh->fro_total;
	memcpy(out + 3, wh->sigma, k * sizeof *out);
	memcpy(out + 3 + k, wh->out_tail, (k + 1) * sizeof *out);
	memcpy(out + 4 + 2 * k, wh->fro_tail, (k + 1) * sizeof *out);
	memcpy(out + 5 + 3 * k, wh->plain_out_tail, (k + 1) * sizeof *out);
}

static bool
non_increasing(const double *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] < 0 || (i > 0 && v[i] > v[i - 1]))
			return false;
	return true;
}

rs_whiten *
rs_whiten_unpack(size_t rows, size_t cols, const double *v)
{
	size_t k = rows < cols ? rows : cols;
	rs_whiten *wh;

	if (!(v[0] >= 0) || !(v[1] > 0) || !(v[2] >= 0) || !non_increasing(v + 3, k) ||
	    !non_increasing(v + 3 + k, k + 1) || !non_increasing(v + 4 + 2 * k, k + 1) ||
	    !non_increasing(v + 5 + 3 * k, k + 1))
		return NULL;
	wh = calloc(1, sizeof *wh);
	if (!wh)
		return NULL;
	wh->rows = rows;
	wh->cols = cols;
	wh->k = k;
	wh->shift = v[0];
	wh->out_total = v[1];
	wh->fro_total = v[2];
	wh->sigma = malloc(k * sizeof *wh->sigma + 1);
	wh->out_tail = malloc((k + 1) * sizeof *wh->out_tail);
	wh->fro_tail = malloc((k + 1) * sizeof *wh->fro_tail);
	wh->plain_out_tail = malloc((k + 1) * sizeof *wh->plain_out_tail);
	if (!wh->sigma || !wh->out_tail || !wh->fro_tail || !wh->plain_out_tail) {
		rs_whiten_free(wh);
		return NULL;
	}
	memcpy(wh->sigma, v + 3, k * sizeof *v);
	memcpy(wh->out_tail, v + 3 + k, (k + 1) * sizeof *v);
	memcpy(wh->fro_tail, v + 4 + 2 * k, (k + 1) * sizeof *v);
	memcpy(wh->plain_out_tail, v + 5 + 3 * k, (k + 1) * sizeof *v);
	return wh;
}

static double
relative(double tail, double total)
{
	return total > 0 ? sqrt(tail / total) : NAN;
}

static size_t
clamp_rank(const rs_whiten *wh, size_t rank)
{
	return rank > wh->k ? wh->k : rank;
}

double
rs_whiten_out_err(const rs_whiten *wh, size_t rank)
{
	return relative(wh->out_tail[clamp_rank(wh, rank)], wh->out_total);
}

double
rs_whiten_fro_err(const rs_whiten *wh, size_t rank)
{
	return relative(wh->fro_tail[clamp_rank(wh, rank)], wh->fro_total);
}

double
rs_whiten_plain_out_err(const rs_whiten *wh, size_t rank)
{
	return relative(wh->plain_out_tail[clamp_rank(wh, rank)], wh->out_total);
}

static double
out_err_curve(const void *wh, size_t rank)
{
	return rs_whiten_out_err(wh, rank);
}

size_t
rs_whiten_rank_for_out_err(const rs_whiten *wh, double eps)
{
	/* out_tail is non-increasing in the rank, and 0 at k */
	return rs_smallest_within(wh->k, eps, out_err_curve, wh);
}

double
rs_whiten_out_err_of(const rs_whiten *wh, const double *e, size_t lde, const double *g,
                     size_t ldg)
{
	double *scratch = malloc(wh->rows * wh->cols * sizeof *scratch), t;

	if (!scratch)
		return NAN;
	t = gram_trace(e, wh->rows, wh->cols, lde, g, ldg, scratch);
	free(scratch);
	return relative(t, wh->out_total);
}

double
rs_gram_relative_error(const double *w, const double *e, size_t rows, size_t cols,
                       const double *g, size_t ldg)
{
	double *scratch = malloc(rows * cols * sizeof *scratch), tw, te;

	if (!scratch)
		return NAN;
	tw = gram_trace(w, rows, cols, rows, g, ldg, scratch);
	te = gram_trace(e, rows, cols, rows, g, ldg, scratch);
	free(scratch);
	return relative(te, tw);
}

rs_status
rs_whiten_factors(const double *w, size_t rows, size_t cols, size_t ldw, const double *g,
                  size_t ldg, size_t rank, double *left, double *right, rs_error *err)
{
	size_t k = rows < cols ? rows : cols;
	double *l = malloc(cols * cols * sizeof *l), *sigma = malloc(k * sizeof *sigma);
	double *u = malloc(rows * k * sizeof *u), *xt = malloc(k * cols * sizeof *xt);
	double shift;
	rs_status st;

	if (rank == 0 || rank > k) {
		st = rs_error_set(err, RS_EINVAL, "whitened rank %zu outside 1..%zu", rank, k);
		goto done;
	}
	if (!l || !sigma || !u || !xt) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory for a %zu x %zu whitening",
		                  rows, cols);
		goto done;
	}
	st = cholesky_shifted(g, ldg, cols, l, &shift, err);
	if (st == RS_OK)
		st = whitened_svd(w, rows, cols, ldw, l, sigma, u, xt, err);
	if (st == RS_OK)
		rs_svd_factors(u, sigma, xt, rows, cols, k, rank, left, right);
done:
	free(l);
	free(sigma);
	free(u);
	free(xt);
	return st;
}
