/* la-refine.c — block-coordinate refinement on G; see rankscope/refine.h. */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/refine.h"
#include "rankscope/util.h"
#include "rankscope/whiten.h"

static rs_status
oom(rs_error *err, size_t rows, size_t cols)
{
	return rs_error_set(err, RS_ENOMEM, "out of memory refining a %zu x %zu layer", rows,
	                    cols);
}

rs_status
rs_refine_lstsq(double *a, size_t m, size_t n, double *b, size_t ldb, size_t nrhs,
                rs_error *err)
{
	size_t k = m < n ? m : n;
	double *s = malloc((k ? k : 1) * sizeof *s);
	lapack_int rank, info;

	if (!s)
		return oom(err, m, n);
	info = LAPACKE_dgelsd(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, (lapack_int)nrhs,
	                      a, (lapack_int)m, b, (lapack_int)ldb, s, -1.0, &rank);
	free(s);
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC, "dgelsd did not converge (info %d)", (int)info);
	return RS_OK;
}

bool
rs_refine_record_sweep(rs_refine_result *res, double after)
{
	double before = res->history[res->sweeps];

	res->sweeps++;
	res->history[res->sweeps] = after;
	res->out_err = after;
	return before * before - after * after <= 1e-12 * before * before;
}

void
rs_refine_measure(const double *w, const double *wp, size_t rows, size_t cols,
                  const double *g, double *out_err, double *fro_err)
{
	double *e = calloc(rows * cols + 1, sizeof *e), ef = 0, wf = 0;
	size_t i;

	if (!e) {
		*out_err = *fro_err = NAN;
		return;
	}
	for (i = 0; i < rows * cols; i++) {
		e[i] = w[i] - wp[i];
		ef += e[i] * e[i];
		wf += w[i] * w[i];
	}
	*out_err = rs_gram_relative_error(w, e, rows, cols, g, cols);
	*fro_err = wf > 0 ? sqrt(ef / wf) : 0;
	free(e);
}

/* S (n x n) with S S^T = G: Q diag(sqrt(max(lambda, 0))). */
static rs_status
gram_factor(const double *g, size_t n, double *s, rs_error *err)
{
	double *lambda = malloc(n * sizeof *lambda);
	size_t i, j;
	lapack_int info;

	if (!lambda)
		return oom(err, n, n);
	memcpy(s, g, n * n * sizeof *s);
	info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', (lapack_int)n, s, (lapack_int)n, lambda);
	if (info < 0)
		abort();
	if (info > 0) {
		free(lambda);
		return rs_error_set(err, RS_ENUMERIC, "dsyevd did not converge (info %d)", (int)info);
	}
	for (j = 0; j < n; j++) {
		double r = lambda[j] > 0 ? sqrt(lambda[j]) : 0;
		for (i = 0; i < n; i++)
			s[i + j * n] *= r;
	}
	free(lambda);
	return RS_OK;
}

rs_status
rs_refine_lowrank(const double *w, size_t rows, size_t cols, const double *g, size_t rank,
                  double *b, double *a, size_t sweeps, rs_refine_result *res, rs_error *err)
{
	size_t m = rows, n = cols, r = rank, i, j, ld_b = n > r ? n : r, ld_a = m > r ? m : r;
	double *s = malloc(n * n * sizeof *s), *ws = malloc(m * n * sizeof *ws);
	double *as = malloc(r * n * sizeof *as), *wp = malloc(m * n * sizeof *wp);
	double *mt = malloc(n * r * sizeof *mt), *rhs = malloc(ld_b * m * sizeof *rhs);
	double *bc = malloc(m * r * sizeof *bc), *wc = malloc(ld_a * n * sizeof *wc);
	rs_status st = RS_OK;

	memset(res, 0, sizeof *res);
	if (sweeps > RS_REFINE_MAX_SWEEPS)
		sweeps = RS_REFINE_MAX_SWEEPS;
	if (!s || !ws || !as || !wp || !mt || !rhs || !bc || !wc) {
		st = oom(err, m, n);
		goto done;
	}
	if ((st = gram_factor(g, n, s, err)) != RS_OK)
		goto done;
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)n, 1.0, w,
	            (int)m, s, (int)n, 0.0, ws, (int)m);
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)r, 1.0, b,
	            (int)m, a, (int)r, 0.0, wp, (int)m);
	rs_refine_measure(w, wp, m, n, g, &res->history[0], &res->fro_err);
	while (res->sweeps < sweeps) {
		double after;
		size_t t;

		/* B: (A S)^T B^T ~ (W S)^T */
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)n, (int)n, 1.0,
		            a, (int)r, s, (int)n, 0.0, as, (int)r);
		for (j = 0; j < n; j++)
			for (t = 0; t < r; t++)
				mt[j + t * n] = as[t + j * r];
		for (i = 0; i < m; i++)
			for (j = 0; j < n; j++)
				rhs[j + i * ld_b] = ws[i + j * m];
		if ((st = rs_refine_lstsq(mt, n, r, rhs, ld_b, m, err)) != RS_OK)
			goto done;
		for (i = 0; i < m; i++)
			for (t = 0; t < r; t++)
				b[i + t * m] = rhs[t + i * ld_b];
		/* A: B A ~ W */
		memcpy(bc, b, m * r * sizeof *bc);
		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++)
				wc[i + j * ld_a] = w[i + j * m];
		if ((st = rs_refine_lstsq(bc, m, r, wc, ld_a, n, err)) != RS_OK)
			goto done;
		for (j = 0; j < n; j++)
			for (t = 0; t < r; t++)
				a[t + j * r] = wc[t + j * ld_a];
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)r, 1.0,
		            b, (int)m, a, (int)r, 0.0, wp, (int)m);
		rs_refine_measure(w, wp, m, n, g, &after, &res->fro_err);
		if (rs_refine_record_sweep(res, after))
			break;
	}
	res->out_err = res->history[res->sweeps];
done:
	free(s);
	free(ws);
	free(as);
	free(wp);
	free(mt);
	free(rhs);
	free(bc);
	free(wc);
	return st;
}

rs_status
rs_refine_sparse(const double *w, size_t rows, size_t cols, const double *g,
                 const unsigned char *keep, double *out, rs_refine_result *res, rs_error *err)
{
	size_t m = rows, n = cols, i, j, t, u;
	size_t *kept = malloc(n * sizeof *kept), *dropped = malloc(n * sizeof *dropped);
	double *gkk = malloc(n * n * sizeof *gkk), *rhs = malloc(n * sizeof *rhs);
	rs_status st = RS_OK;

	memset(res, 0, sizeof *res);
	if (!kept || !dropped || !gkk || !rhs) {
		st = oom(err, m, n);
		goto done;
	}
	for (i = 0; i < m * n; i++)
		out[i] = keep[i] ? w[i] : 0;
	rs_refine_measure(w, out, m, n, g, &res->history[0], &res->fro_err);
	for (i = 0; i < m; i++) {
		size_t nk = 0, np = 0;

		for (j = 0; j < n; j++) {
			if (keep[i + j * m])
				kept[nk++] = j;
			else
				dropped[np++] = j;
		}
		if (nk == 0 || np == 0)
			continue;
		/* G_KK d = -G_KP w_P; v_K = w_K - d */
		for (u = 0; u < nk; u++) {
			double v = 0;

			for (t = 0; t < nk; t++)
				gkk[t + u * nk] = g[kept[t] + kept[u] * n];
			for (t = 0; t < np; t++)
				v += g[kept[u] + dropped[t] * n] * w[i + dropped[t] * m];
			rhs[u] = -v;
		}
		if ((st = rs_refine_lstsq(gkk, nk, nk, rhs, nk, 1, err)) != RS_OK)
			goto done;
		for (u = 0; u < nk; u++)
			out[i + kept[u] * m] = w[i + kept[u] * m] - rhs[u];
	}
	res->sweeps = 1;
	rs_refine_measure(w, out, m, n, g, &res->history[1], &res->fro_err);
	res->out_err = res->history[1];
done:
	free(kept);
	free(dropped);
	free(gkk);
	free(rhs);
	return st;
}

/* The codebook entries used in rows [r0, r1) minimising f with the codes
 * fixed; unused entries keep their values. */
static rs_status
solve_codebook(const double *wg, size_t rows, size_t cols, const double *g,
               const uint16_t *codes, size_t r0, size_t r1, size_t levels, double *book,
               size_t *map, double *h, double *b, rs_error *err)
{
	size_t i, j, jj, used = 0, k;
	rs_status st;

	for (k = 0; k < levels; k++)
		map[k] = (size_t)-1;
	for (j = 0; j < cols; j++)
		for (i = r0; i < r1; i++) {
			k = codes[i + j * rows];
			if (map[k] == (size_t)-1)
				map[k] = used++;
		}
	if (used == 0)
		return RS_OK;
	memset(h, 0, used * used * sizeof *h);
	memset(b, 0, used * sizeof *b);
	for (i = r0; i < r1; i++)
		for (j = 0; j < cols; j++) {
			size_t kj = map[codes[i + j * rows]];

			b[kj] += wg[i + j * rows];
			for (jj = 0; jj < cols; jj++)
				h[kj + map[codes[i + jj * rows]] * used] += g[j + jj * cols];
		}
	if ((st = rs_refine_lstsq(h, used, used, b, used, 1, err)) != RS_OK)
		return st;
	for (k = 0; k < levels; k++)
		if (map[k] != (size_t)-1)
			book[k] = b[map[k]];
	return RS_OK;
}

/* The level of `book` (n values) nearest to v. */
static uint16_t
nearest_level(const double *book, size_t n, double v)
{
	size_t k, best = 0;

	for (k = 1; k < n; k++)
		if (fabs(book[k] - v) < fabs(book[best] - v))
			best = k;
	return (uint16_t)best;
}

/* GPTQ's codes for a fixed codebook: column by column, nearest levels of
 * the weights as updated by the rounding errors of the columns before. */
static rs_status
feedback_codes(const double *w, size_t m, size_t n, const double *g, size_t levels,
               bool per_row, const double *book, uint16_t *codes, rs_error *err)
{
	double *h = malloc(n * n * sizeof *h), *work = malloc(m * n * sizeof *work), damp = 0;
	size_t i, j, c;
	rs_status st = RS_OK;

	if (!h || !work) {
		st = oom(err, m, n);
		goto done;
	}
	for (j = 0; j < n; j++)
		damp += g[j + j * n];
	damp = damp > 0 ? 0.01 * damp / (double)n : 1.0;
	memcpy(h, g, n * n * sizeof *h);
	for (j = 0; j < n; j++)
		h[j + j * n] += damp;
	/* H^-1, then its upper Cholesky factor U (H^-1 = U^T U) */
	if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)n, h, (lapack_int)n) != 0 ||
	    LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (lapack_int)n, h, (lapack_int)n) != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "the damped Gram matrix does not invert");
		goto done;
	}
	for (j = 0; j < n; j++)
		for (i = j + 1; i < n; i++)
			h[j + i * n] = h[i + j * n];
	if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, h, (lapack_int)n) != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "the inverse Gram matrix does not factor");
		goto done;
	}
	memcpy(work, w, m * n * sizeof *work);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			const double *row = book + (per_row ? i * levels : 0);
			double v = work[i + j * m], e;
			uint16_t k = nearest_level(row, levels, v);

			codes[i + j * m] = k;
			e = (v - row[k]) / h[j + j * n];
			for (c = j + 1; c < n; c++)
				work[i + c * m] -= e * h[j + c * n];
		}
done:
	free(h);
	free(work);
	return st;
}

/* The output error of codes looked up in book. */
static void
measure_codes(const double *w, size_t m, size_t n, const double *g, const uint16_t *codes,
              size_t levels, bool per_row, const double *book, double *wp, double *out_err,
              double *fro_err)
{
	size_t i, j;

	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			wp[i + j * m] = book[(per_row ? i * levels : 0) + codes[i + j * m]];
	rs_refine_measure(w, wp, m, n, g, out_err, fro_err);
}

rs_status
rs_refine_codebook(const double *w, size_t rows, size_t cols, const double *g,
                   uint16_t *codes, size_t levels, bool per_row, bool choose_codes,
                   double *codebook, double *out, rs_refine_result *res, rs_error *err)
{
	size_t m = rows, n = cols, i, j, cap = per_row ? (levels < n ? levels : n) : levels;
	double *wg = malloc(m * n * sizeof *wg), *wp = calloc(m * n + 1, sizeof *wp);
	double *h = malloc(cap * cap * sizeof *h), *b = malloc(cap * sizeof *b);
	size_t *map = malloc(levels * sizeof *map);
	rs_status st = RS_OK;

	memset(res, 0, sizeof *res);
	if (!wg || !wp || !h || !b || !map) {
		st = oom(err, m, n);
		goto done;
	}
	if (!per_row && levels > 4096) {
		st = rs_error_set(err, RS_EINVAL, "%zu codebook entries: too many to refine", levels);
		goto done;
	}
	measure_codes(w, m, n, g, codes, levels, per_row, codebook, wp, &res->history[0],
	              &res->fro_err);
	if (choose_codes) {
		uint16_t *chosen = malloc(m * n * sizeof *chosen + 1);
		double e_chosen, f_chosen;

		if (!chosen) {
			st = oom(err, m, n);
			goto done;
		}
		st = feedback_codes(w, m, n, g, levels, per_row, codebook, chosen, err);
		if (st == RS_OK) {
			measure_codes(w, m, n, g, chosen, levels, per_row, codebook, wp, &e_chosen,
			              &f_chosen);
			/* a greedy choice: kept only where it wins */
			res->history[1] = res->history[0];
			if (e_chosen < res->history[0]) {
				memcpy(codes, chosen, m * n * sizeof *codes);
				res->history[1] = e_chosen;
			}
			res->sweeps = 1;
		}
		free(chosen);
		if (st != RS_OK)
			goto done;
	}
	cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)m, (int)n, 1.0, g, (int)n, w,
	            (int)m, 0.0, wg, (int)m);
	if (per_row) {
		for (i = 0; i < m && st == RS_OK; i++)
			st = solve_codebook(wg, m, n, g, codes, i, i + 1, levels, codebook + i * levels,
			                    map, h, b, err);
	} else {
		st = solve_codebook(wg, m, n, g, codes, 0, m, levels, codebook, map, h, b, err);
	}
	if (st != RS_OK)
		goto done;
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			wp[i + j * m] = codebook[(per_row ? i * levels : 0) + codes[i + j * m]];
	res->sweeps++;
	rs_refine_measure(w, wp, m, n, g, &res->history[res->sweeps], &res->fro_err);
	res->out_err = res->history[res->sweeps];
	if (out)
		memcpy(out, wp, m * n * sizeof *out);
done:
	free(wg);
	free(wp);
	free(h);
	free(b);
	free(map);
	return st;
}
