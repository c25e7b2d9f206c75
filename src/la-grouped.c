/* la-grouped.c — channel-grouped SVD (ALDS); see rankscope/grouped.h.
 *
 * One block is copied at a time into a scratch buffer (dgesdd destroys
 * its input), so peak extra memory is one m x (n/g) block plus the
 * singular values. */
#include "config.h"

#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/grouped.h"
#include "rankscope/util.h"

static rs_status
block_values(double *a, size_t rows, size_t cols, double *sigma, rs_error *err)
{
	double dummy = 0;
	lapack_int info;

	info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)rows,
	                      (lapack_int)cols, a, (lapack_int)rows, sigma, &dummy,
	                      1, &dummy, 1);
	/* info < 0 means we passed a bad argument: a bug, not a user error. */
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC,
		    "dgesdd did not converge (info %d)", (int)info);
	return RS_OK;
}

rs_grouped *
rs_grouped_new(const double *w, size_t rows, size_t cols, size_t ld,
               size_t groups, double spec_norm, rs_error *err)
{
	rs_grouped *g;
	size_t width, k, cells, gi, i, j;
	double *block = NULL;

	if (groups == 0 || cols % groups != 0) {
		rs_error_set(err, RS_EINVAL,
		    "cannot split %zu input columns into %zu equal groups "
		    "(the group count must be >= 1 and divide the columns)",
		    cols, groups);
		return NULL;
	}
	if (ld < rows) {
		rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is smaller than the %zu rows", ld, rows);
		return NULL;
	}
	if (!isfinite(spec_norm) || spec_norm < 0) {
		rs_error_set(err, RS_EINVAL,
		    "the spectral norm %g must be finite and >= 0", spec_norm);
		return NULL;
	}
	width = cols / groups;
	k = rows < width ? rows : width;
	if (rows > INT_MAX || width > INT_MAX ||
	    (k > 0 && rows > INT_MAX / k) || (k > 0 && width > INT_MAX / k)) {
		rs_error_set(err, RS_EINVAL,
		    "a %zux%zu group exceeds LAPACK's 32-bit index range", rows, width);
		return NULL;
	}
	if (rs_mul_overflows(rows, width, &cells) ||
	    cells > SIZE_MAX / sizeof *block) {
		rs_error_set(err, RS_ENOMEM, "a %zux%zu group is too large", rows, width);
		return NULL;
	}

	g = rs_xcalloc(1, sizeof *g);
	g->rows = rows;
	g->cols = cols;
	g->groups = groups;
	g->k = k;
	/* groups * (k + 1) <= cols + groups: no overflow for a real matrix. */
	g->sigma = malloc((k > 0 ? groups * k : 1) * sizeof *g->sigma);
	g->tail = malloc(groups * (k + 1) * sizeof *g->tail);
	block = malloc((cells ? cells : 1) * sizeof *block);
	if (g->sigma == NULL || g->tail == NULL || block == NULL) {
		rs_error_set(err, RS_ENOMEM,
		    "out of memory for %zu groups of %zux%zu", groups, rows, width);
		goto fail;
	}
	g->spec = spec_norm;
	g->fro2 = 0.0;
	for (gi = 0; gi < groups; gi++) {
		double *sigma = g->sigma + gi * k, *tail = g->tail + gi * (k + 1);

		for (j = 0; j < width; j++) {
			const double *src = w + (gi * width + j) * ld;
			for (i = 0; i < rows; i++) {
				if (!isfinite(src[i])) {
					rs_error_set(err, RS_ENUMERIC,
					    "element (%zu, %zu) is not finite",
					    i, gi * width + j);
					goto fail;
				}
				block[i + j * rows] = src[i];
			}
		}
		if (k > 0 && block_values(block, rows, width, sigma, err) != RS_OK) {
			rs_error_prefix(err, "group %zu of %zu: ", gi + 1, groups);
			goto fail;
		}
		/* Summing from the smallest value keeps every tail accurate. */
		tail[k] = 0.0;
		for (i = k; i > 0; i--)
			tail[i - 1] = tail[i] + sigma[i - 1] * sigma[i - 1];
		g->fro2 += tail[0];
	}
	free(block);
	return g;
fail:
	free(block);
	rs_grouped_free(g);
	return NULL;
}

void
rs_grouped_free(rs_grouped *g)
{
	if (g == NULL)
		return;
	free(g->sigma);
	free(g->tail);
	free(g);
}

double
rs_grouped_err_spec(const rs_grouped *g, size_t j)
{
	double worst = 0.0;
	size_t gi;

	if (j >= g->k || g->spec <= 0)
		return 0.0;
	for (gi = 0; gi < g->groups; gi++)
		if (g->sigma[gi * g->k + j] > worst)
			worst = g->sigma[gi * g->k + j];
	return worst / g->spec;
}

double
rs_grouped_err_fro(const rs_grouped *g, size_t j)
{
	double sum = 0.0;
	size_t gi;

	if (j > g->k)
		j = g->k;
	if (!(g->fro2 > 0))
		return 0.0;
	for (gi = 0; gi < g->groups; gi++)
		sum += g->tail[gi * (g->k + 1) + j];
	return sqrt(sum / g->fro2);
}

size_t
rs_grouped_params(const rs_grouped *g, size_t j)
{
	return j * (g->groups * g->rows + g->cols);
}

static double
curve_err_spec(const void *g, size_t j)
{
	return rs_grouped_err_spec(g, j);
}

size_t
rs_grouped_rank_for_err_spec(const rs_grouped *g, double eps)
{
	/* err_spec(k) = 0 <= eps for any eps >= 0, so the answer is in [0, k]. */
	if (!(eps >= 0))
		return g->k;
	return rs_smallest_within(g->k, eps, curve_err_spec, g);
}
