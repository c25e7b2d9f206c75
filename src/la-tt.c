/* la-tt.c — TT-SVD of a layer as a TT-matrix; see rankscope/tt.h.
 *
 * The tensor is held with its mode indices a_k = i_k n_k + j_k, a_1 most
 * significant, so the remainder at step k is a row-major
 * (r_k M_k) x (M_{k+1} ... M_d) matrix (M_k = m_k n_k) and
 * diag(sigma) V^T, being row-major r_{k+1} x (M_{k+1} ... M_d), is already
 * the next step's remainder without moving anything.  LAPACK is handed
 * the same memory as the column-major transpose A = C^T, so its right
 * singular vectors are our left ones and its U (first r columns, scaled)
 * is exactly the next remainder. */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/svd.h"
#include "rankscope/tt.h"
#include "rankscope/util.h"

/* Tensor offsets of every row and every column: element (i, j) of W is
 * tensor element roff[i] + coff[j].  Mode k's stride is M_{k+1} ... M_d;
 * i_k moves by n_k strides, j_k by one. */
static rs_status
index_maps(size_t d, const size_t *row_modes, const size_t *col_modes,
           size_t rows, size_t cols, size_t **roff_out, size_t **coff_out,
           rs_error *err)
{
	size_t *roff = malloc((rows ? rows : 1) * sizeof *roff);
	size_t *coff = malloc((cols ? cols : 1) * sizeof *coff);
	size_t stride[RS_TT_MAX_D], s = 1, i, k;

	if (roff == NULL || coff == NULL) {
		free(roff);
		free(coff);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory for the index maps of a %zux%zu layer", rows, cols);
	}
	for (k = d; k > 0; k--) {
		stride[k - 1] = s;
		s *= row_modes[k - 1] * col_modes[k - 1];
	}
	for (i = 0; i < rows; i++) {
		size_t rem = i, off = 0;
		for (k = d; k > 0; k--) {
			off += (rem % row_modes[k - 1]) * col_modes[k - 1] * stride[k - 1];
			rem /= row_modes[k - 1];
		}
		roff[i] = off;
	}
	for (i = 0; i < cols; i++) {
		size_t rem = i, off = 0;
		for (k = d; k > 0; k--) {
			off += (rem % col_modes[k - 1]) * stride[k - 1];
			rem /= col_modes[k - 1];
		}
		coff[i] = off;
	}
	*roff_out = roff;
	*coff_out = coff;
	return RS_OK;
}

/* Product of the modes into *out; false on overflow. */
static int
mode_product(const size_t *modes, size_t d, size_t *out)
{
	size_t p = 1, k;

	for (k = 0; k < d; k++)
		if (rs_mul_overflows(p, modes[k], &p))
			return 0;
	*out = p;
	return 1;
}

static rs_status
check_shape(size_t rows, size_t cols, size_t ld, size_t d, const size_t *row_modes,
            const size_t *col_modes, size_t *total, rs_error *err)
{
	size_t prod, k;

	if (d < 2 || d > RS_TT_MAX_D)
		return rs_error_set(err, RS_EINVAL,
		    "a TT-matrix needs 2 to %d modes, not %zu", RS_TT_MAX_D, d);
	if (row_modes == NULL || col_modes == NULL)
		return rs_error_set(err, RS_EINVAL, "the %s modes are missing",
		    row_modes == NULL ? "row" : "column");
	for (k = 0; k < d; k++)
		if (row_modes[k] == 0 || col_modes[k] == 0)
			return rs_error_set(err, RS_EINVAL,
			    "%s mode %zu is 0 (every mode must be >= 1)",
			    row_modes[k] == 0 ? "row" : "column", k + 1);
	if (!mode_product(row_modes, d, &prod))
		return rs_error_set(err, RS_EINVAL,
		    "the row modes overflow when multiplied, so cannot give the %zu rows",
		    rows);
	if (prod != rows)
		return rs_error_set(err, RS_EINVAL,
		    "the row modes multiply to %zu, not the %zu rows", prod, rows);
	if (!mode_product(col_modes, d, &prod))
		return rs_error_set(err, RS_EINVAL,
		    "the column modes overflow when multiplied, so cannot give the %zu columns",
		    cols);
	if (prod != cols)
		return rs_error_set(err, RS_EINVAL,
		    "the column modes multiply to %zu, not the %zu columns", prod, cols);
	if (ld < rows)
		return rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is smaller than the %zu rows", ld, rows);
	if (rs_mul_overflows(rows, cols, total) || *total > SIZE_MAX / sizeof(double))
		return rs_error_set(err, RS_EINVAL, "a %zux%zu layer is too large", rows, cols);
	/* Every unfolding and every intermediate of the contraction has at
	 * most rows * cols elements, so one check covers LAPACK's and BLAS's
	 * 32-bit indices everywhere. */
	if (*total > INT_MAX)
		return rs_error_set(err, RS_EINVAL,
		    "a %zux%zu layer exceeds LAPACK's 32-bit index range", rows, cols);
	return RS_OK;
}

/* Right-to-left contraction cost; see tt.h.  Saturates at SIZE_MAX. */
static size_t
matvec_flops(size_t d, const size_t *row_modes, const size_t *col_modes,
             const size_t *ranks)
{
	size_t total = 0, k, l;

	for (k = 0; k < d; k++) {
		size_t t = 2;
		int over = 0;
		for (l = 0; l < k; l++)
			over |= rs_mul_overflows(t, col_modes[l], &t);
		for (l = k + 1; l < d; l++)
			over |= rs_mul_overflows(t, row_modes[l], &t);
		over |= rs_mul_overflows(t, ranks[k], &t);
		over |= rs_mul_overflows(t, row_modes[k], &t);
		over |= rs_mul_overflows(t, col_modes[k], &t);
		over |= rs_mul_overflows(t, ranks[k + 1], &t);
		if (over || total > SIZE_MAX - t)
			return SIZE_MAX;
		total += t;
	}
	return total;
}

void
rs_tt_cost(size_t d, const size_t *row_modes, const size_t *col_modes,
           const size_t *ranks, size_t *params, size_t *flops)
{
	size_t k;

	*params = 0;
	for (k = 0; k < d; k++)
		*params += ranks[k] * row_modes[k] * col_modes[k] * ranks[k + 1];
	*flops = matvec_flops(d, row_modes, col_modes, ranks);
}

static rs_status
reconstruct(const rs_tt *tt, double *out, size_t ld, rs_error *err)
{
	size_t *roff = NULL, *coff = NULL, need = 1, p, k, i, j;
	double *a = NULL, *b = NULL;
	rs_status st;

	/* Largest intermediate: (M_1 ... M_k) x r_{k+1}.  For ranks made by
	 * rs_tt_svd this is at most rows * cols, but it costs nothing to
	 * size it from the ranks themselves. */
	p = 1;
	for (k = 0; k < tt->d; k++) {
		size_t s;
		if (rs_mul_overflows(p, tt->row_modes[k] * tt->col_modes[k], &p) ||
		    rs_mul_overflows(p, tt->ranks[k + 1], &s) || s > SIZE_MAX / sizeof *a)
			return rs_error_set(err, RS_ENOMEM,
			    "the contraction of a %zux%zu TT-matrix is too large",
			    tt->rows, tt->cols);
		if (s > need)
			need = s;
	}
	st = index_maps(tt->d, tt->row_modes, tt->col_modes, tt->rows, tt->cols,
	                &roff, &coff, err);
	if (st != RS_OK)
		return st;
	a = malloc(need * sizeof *a);
	b = malloc(need * sizeof *b);
	if (a == NULL || b == NULL) {
		st = rs_error_set(err, RS_ENOMEM,
		    "out of memory contracting a %zux%zu TT-matrix", tt->rows, tt->cols);
		goto done;
	}
	/* a: (M_1 ... M_k) x r_{k+1} row-major, grown one core at a time. */
	p = tt->row_modes[0] * tt->col_modes[0];
	memcpy(a, tt->cores[0], p * tt->ranks[1] * sizeof *a);
	for (k = 1; k < tt->d; k++) {
		size_t width = tt->row_modes[k] * tt->col_modes[k] * tt->ranks[k + 1];
		double *t;
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)p,
		            (blasint)width, (blasint)tt->ranks[k], 1.0, a,
		            (blasint)tt->ranks[k], tt->cores[k], (blasint)width, 0.0, b,
		            (blasint)width);
		p *= tt->row_modes[k] * tt->col_modes[k];
		t = a;
		a = b;
		b = t;
	}
	for (j = 0; j < tt->cols; j++)
		for (i = 0; i < tt->rows; i++)
			out[i + j * ld] = a[roff[i] + coff[j]];
	st = RS_OK;
done:
	free(a);
	free(b);
	free(roff);
	free(coff);
	return st;
}

rs_status
rs_tt_reconstruct(const rs_tt *tt, double *out, size_t ld, rs_error *err)
{
	if (ld < tt->rows)
		return rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is smaller than the %zu rows", ld, tt->rows);
	return reconstruct(tt, out, ld, err);
}

/*
 * One step: the remainder c, row-major nrows x ncols, is destroyed.  On
 * success *u_out holds the next remainder (row-major r x ncols, already
 * scaled by sigma), tt->cores[k] the kept left vectors.
 */
static rs_status
tt_step(rs_tt *tt, size_t k, double *c, size_t nrows, size_t ncols, double delta2,
        const size_t *max_ranks, double **u_out, rs_error *err)
{
	size_t p = nrows < ncols ? nrows : ncols, r, i, t;
	double *sigma, *u = NULL, *vt = NULL, *core, tail;
	rs_status st = RS_OK;

	sigma = malloc(p * sizeof *sigma);
	u = malloc(ncols * p * sizeof *u);
	vt = malloc(p * nrows * sizeof *vt);
	tt->step_sigma[k] = sigma;
	if (sigma == NULL || u == NULL || vt == NULL) {
		st = rs_error_set(err, RS_ENOMEM,
		    "out of memory for step %zu's %zux%zu unfolding", k + 1, nrows, ncols);
		goto fail;
	}
	tt->step_k[k] = p;
	/* A = C^T (ncols x nrows, column-major) = U_A S V_A^T: our left
	 * vectors are V_A (the rows of vt), our right ones U_A. */
	if ((st = rs_svd_vectors(c, ncols, nrows, ncols, sigma, u, vt, err)) != RS_OK) {
		rs_error_prefix(err, "step %zu of the TT-SVD: ", k + 1);
		goto fail;
	}

	/* Smallest rank whose tail fits delta^2, summing from the small end
	 * so that the tails stay accurate; at least 1, then the cap. */
	r = p;
	tail = 0.0;
	if (delta2 >= 0)
		while (r > 1 && tail + sigma[r - 1] * sigma[r - 1] <= delta2) {
			tail += sigma[r - 1] * sigma[r - 1];
			r--;
		}
	if (max_ranks != NULL && max_ranks[k] != 0 && max_ranks[k] < r)
		r = max_ranks[k];
	tail = 0.0;
	for (i = p; i > r; i--)
		tail += sigma[i - 1] * sigma[i - 1];
	tt->step_tail[k] = tail;
	tt->ranks[k + 1] = r;

	core = malloc(nrows * r * sizeof *core);
	if (core == NULL) {
		st = rs_error_set(err, RS_ENOMEM,
		    "out of memory for core %zu (%zux%zu)", k + 1, nrows, r);
		goto fail;
	}
	tt->cores[k] = core;
	for (t = 0; t < r; t++) {
		size_t best = 0;
		double *ut = u + t * ncols;
		for (i = 0; i < nrows; i++) {
			core[i * r + t] = vt[t + i * p];
			if (fabs(core[i * r + t]) > fabs(core[best * r + t]))
				best = i;
		}
		/* LAPACK's signs are arbitrary: fix them so that equal input
		 * gives equal cores whatever the library. */
		if (core[best * r + t] < 0) {
			for (i = 0; i < nrows; i++)
				core[i * r + t] = -core[i * r + t];
			for (i = 0; i < ncols; i++)
				ut[i] = -ut[i];
		}
		for (i = 0; i < ncols; i++)
			ut[i] *= sigma[t];
	}
	free(vt);
	*u_out = u;
	return RS_OK;
fail:
	free(u);
	free(vt);
	return st;
}

rs_tt *
rs_tt_svd(const double *w, size_t rows, size_t cols, size_t ld, size_t d,
          const size_t *row_modes, const size_t *col_modes,
          const size_t *max_ranks, double eps, rs_error *err)
{
	rs_tt *tt = NULL;
	size_t total, ncols, rk, *roff = NULL, *coff = NULL, i, j, k;
	double *c = NULL, *rec = NULL, delta2 = -1.0, tails = 0.0, diff2 = 0.0;

	if (check_shape(rows, cols, ld, d, row_modes, col_modes, &total, err) != RS_OK)
		return NULL;
	if (isnan(eps)) {
		rs_error_set(err, RS_EINVAL, "the error target eps is NaN");
		return NULL;
	}
	tt = rs_xcalloc(1, sizeof *tt);
	tt->d = d;
	tt->rows = rows;
	tt->cols = cols;
	memcpy(tt->row_modes, row_modes, d * sizeof *row_modes);
	memcpy(tt->col_modes, col_modes, d * sizeof *col_modes);
	tt->ranks[0] = tt->ranks[d] = 1;

	if (index_maps(d, row_modes, col_modes, rows, cols, &roff, &coff, err) != RS_OK)
		goto fail;
	c = malloc(total * sizeof *c);
	if (c == NULL) {
		rs_error_set(err, RS_ENOMEM, "out of memory for a %zux%zu layer", rows, cols);
		goto fail;
	}
	tt->fro2 = 0.0;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double v = w[i + j * ld];
			if (!isfinite(v)) {
				rs_error_set(err, RS_ENUMERIC,
				    "element (%zu, %zu) is not finite", i, j);
				goto fail;
			}
			c[roff[i] + coff[j]] = v;
			tt->fro2 += v * v;
		}
	if (eps >= 0)
		delta2 = eps * eps * tt->fro2 / (double)(d - 1);

	rk = 1;
	ncols = total;
	for (k = 0; k + 1 < d; k++) {
		size_t mk = row_modes[k] * col_modes[k];
		double *next = NULL;
		ncols /= mk;
		if (tt_step(tt, k, c, rk * mk, ncols, delta2, max_ranks, &next, err) != RS_OK) {
			free(c);
			c = NULL;
			goto fail;
		}
		free(c);
		c = next;
		rk = tt->ranks[k + 1];
		tails += tt->step_tail[k];
	}
	/* The last remainder, r_{d-1} x M_d row-major, is the last core; its
	 * buffer was sized for every singular vector, so give the rest back
	 * (keeping the old block if the system will not shrink it). */
	{
		double *shrunk = realloc(c, rk * ncols * sizeof *c);
		tt->cores[d - 1] = shrunk != NULL ? shrunk : c;
		c = NULL;
	}

	rs_tt_cost(d, row_modes, col_modes, tt->ranks, &tt->params, &tt->flops);

	rec = malloc(total * sizeof *rec);
	if (rec == NULL) {
		rs_error_set(err, RS_ENOMEM, "out of memory for a %zux%zu layer", rows, cols);
		goto fail;
	}
	if (reconstruct(tt, rec, rows, err) != RS_OK)
		goto fail;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double e = w[i + j * ld] - rec[i + j * rows];
			diff2 += e * e;
		}
	if (tt->fro2 > 0) {
		tt->err = sqrt(diff2 / tt->fro2);
		tt->bound = sqrt(tails / tt->fro2);
	}
	free(rec);
	free(roff);
	free(coff);
	return tt;
fail:
	free(rec);
	free(c);
	free(roff);
	free(coff);
	rs_tt_free(tt);
	return NULL;
}

void
rs_tt_free(rs_tt *tt)
{
	size_t k;

	if (tt == NULL)
		return;
	for (k = 0; k < RS_TT_MAX_D; k++) {
		free(tt->cores[k]);
		free(tt->step_sigma[k]);
	}
	free(tt);
}

/* ---- balanced factorisation ------------------------------------------- */

/*
 * Depth-first over non-increasing factor chains, each factor a divisor of
 * what is left: at every level the candidates are tried smallest first,
 * and a factor must be at least the c-th root of the rest it leads, so
 * the first chain completed is the lexicographically smallest.
 */
static int
balanced_search(const size_t *divs, size_t ndivs, size_t rest, size_t c,
                size_t upper, size_t *modes)
{
	size_t i;

	if (c == 1) {
		if (rest > upper)
			return 0;
		modes[0] = rest;
		return 1;
	}
	for (i = 0; i < ndivs && divs[i] <= upper; i++) {
		size_t f = divs[i], pow = 1, q;
		int big = 0;
		if (rest % f != 0)
			continue;
		/* f is the largest of c factors of rest: f^c >= rest. */
		for (q = 0; q < c && !big; q++)
			if (rs_mul_overflows(pow, f, &pow) || pow >= rest)
				big = 1;
		if (!big)
			continue;
		if (balanced_search(divs, ndivs, rest / f, c - 1, f, modes + 1)) {
			modes[0] = f;
			return 1;
		}
	}
	return 0;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int
rs_tt_balanced_modes(size_t n, size_t d, size_t *modes)
{
	size_t *divs, ndivs = 0, cap = 64, f;
	int ok;

	if (n == 0 || d < 1 || d > RS_TT_MAX_D || modes == NULL)
		return -1;
	divs = rs_xmalloc(cap * sizeof *divs);
	for (f = 1; f <= n / f; f++) {
		if (n % f != 0)
			continue;
		if (ndivs + 2 > cap) {
			cap *= 2;
			divs = rs_xreallocarray(divs, cap, sizeof *divs);
		}
		divs[ndivs++] = f;
		if (f != n / f)
			divs[ndivs++] = n / f;
	}
	qsort(divs, ndivs, sizeof *divs, cmp_size);
	/* n, 1, ..., 1 always completes, so the search cannot fail. */
	ok = balanced_search(divs, ndivs, n, d, n, modes);
	free(divs);
	return ok ? 0 : -1;
}
