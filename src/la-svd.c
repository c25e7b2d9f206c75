/* la-svd.c — singular values by dgesdd or by a double-precision Gram
 * matrix; see rankscope/svd.h for when each is used and why. */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/svd.h"
#include "rankscope/util.h"

/* Below this short side both methods take well under a millisecond, so the
 * backward-stable one is used. */
#define GRAM_MIN_SIDE 64

static const char *const method_names[] = {
	[RS_SVD_AUTO] = "auto", [RS_SVD_GESDD] = "gesdd", [RS_SVD_GRAM] = "gram",
};

const char *
rs_svd_method_name(rs_svd_method method)
{
	return (unsigned)method <= RS_SVD_GRAM ? method_names[method] : "?";
}

bool
rs_svd_method_parse(const char *name, rs_svd_method *out)
{
	int i;

	for (i = RS_SVD_AUTO; i <= RS_SVD_GRAM; i++)
		if (strcmp(name, method_names[i]) == 0) {
			*out = (rs_svd_method)i;
			return true;
		}
	return false;
}

rs_svd_method
rs_svd_choose(size_t rows, size_t cols, rs_dtype source)
{
	size_t k = rows < cols ? rows : cols;

	if (source == RS_DTYPE_F64 || k < GRAM_MIN_SIDE)
		return RS_SVD_GESDD;
	return RS_SVD_GRAM;
}

double
rs_svd_flops(size_t rows, size_t cols, rs_svd_method method)
{
	double k = (double)(rows < cols ? rows : cols);
	double l = (double)(rows < cols ? cols : rows);

	if (method == RS_SVD_GRAM)       /* dsyrk + tridiagonal reduction */
		return l * k * k + 4.0 / 3.0 * k * k * k;
	/* bidiagonal reduction dominates dgesdd without vectors */
	return 4.0 * l * k * k - 4.0 / 3.0 * k * k * k;
}

static rs_status
lapack_outcome(lapack_int info, const char *routine, rs_error *err)
{
	/* info < 0 means we passed a bad argument: a bug, not a user error. */
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC,
		    "%s did not converge (info %d)", routine, (int)info);
	return RS_OK;
}

static rs_status
svd_gesdd(double *a, size_t rows, size_t cols, size_t lda, double *sigma,
          rs_error *err)
{
	double dummy = 0;
	lapack_int info;

	info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)rows,
	                      (lapack_int)cols, a, (lapack_int)lda, sigma, &dummy,
	                      1, &dummy, 1);
	return lapack_outcome(info, "dgesdd", err);
}

rs_status
rs_svd_vectors(double *a, size_t rows, size_t cols, size_t lda, double *sigma, double *u,
               double *vt, rs_error *err)
{
	size_t k = rows < cols ? rows : cols;

	return lapack_outcome(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)rows,
	                                     (lapack_int)cols, a, (lapack_int)lda, sigma, u,
	                                     (lapack_int)rows, vt, (lapack_int)(k ? k : 1)),
	                      "dgesdd", err);
}

void
rs_svd_factors(const double *u, const double *sigma, const double *vt, size_t rows,
               size_t cols, size_t k, size_t r, double *left, double *right)
{
	size_t i, j;

	for (j = 0; j < r; j++)
		for (i = 0; i < rows; i++)
			left[i + j * rows] = u[i + j * rows] * sigma[j];
	for (j = 0; j < cols; j++)
		for (i = 0; i < r; i++)
			right[i + j * r] = vt[i + j * k];
}

static rs_status
svd_gram(double *a, size_t rows, size_t cols, size_t lda, double *sigma,
         rs_error *err)
{
	size_t k = rows < cols ? rows : cols, i;
	double *gram, *lambda;
	lapack_int info;

	gram = malloc(k * k * sizeof *gram);
	lambda = malloc(k * sizeof *lambda);
	if (gram == NULL || lambda == NULL) {
		free(gram);
		free(lambda);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory for a %zux%zu Gram matrix", k, k);
	}
	/* Gram of the short side: A^T A when tall, A A^T when wide. */
	if (rows >= cols)
		cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (blasint)k,
		            (blasint)rows, 1.0, a, (blasint)lda, 0.0, gram, (blasint)k);
	else
		cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (blasint)k,
		            (blasint)cols, 1.0, a, (blasint)lda, 0.0, gram, (blasint)k);
	info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'U', (lapack_int)k, gram,
	                      (lapack_int)k, lambda);
	if (info == 0) {
		/* Eigenvalues come ascending; rounding can leave tiny negative
		 * ones where sigma is 0. */
		for (i = 0; i < k; i++) {
			double l = lambda[k - 1 - i];
			sigma[i] = l > 0 ? sqrt(l) : 0.0;
		}
	}
	free(gram);
	free(lambda);
	return lapack_outcome(info, "dsyevd", err);
}

rs_status
rs_svd_spec_norm(const double *a, size_t rows, size_t cols, size_t lda, double *out,
                 rs_error *err)
{
	size_t k = rows < cols ? rows : cols, j;
	double *copy = malloc(rows * cols * sizeof *copy + 1), *sigma = malloc(k * sizeof *sigma + 1);
	rs_status st = RS_OK;

	*out = 0;
	if (copy == NULL || sigma == NULL)
		st = rs_error_set(err, RS_ENOMEM, "out of memory for a %zux%zu matrix", rows, cols);
	for (j = 0; st == RS_OK && j < cols; j++)
		memcpy(copy + j * rows, a + j * lda, rows * sizeof *copy);
	if (st == RS_OK && k > 0 &&
	    (st = rs_svd_values(copy, rows, cols, rows, RS_SVD_GESDD, sigma, err)) == RS_OK)
		*out = sigma[0];
	free(copy);
	free(sigma);
	return st;
}

rs_status
rs_svd_values(double *a, size_t rows, size_t cols, size_t lda,
              rs_svd_method method, double *sigma, rs_error *err)
{
	if (rows == 0 || cols == 0)
		return RS_OK;
	if (rows > INT_MAX || cols > INT_MAX || lda > INT_MAX ||
	    rows > INT_MAX / (cols < rows ? cols : rows))
		return rs_error_set(err, RS_EINVAL,
		    "a %zux%zu matrix exceeds LAPACK's 32-bit index range", rows, cols);
	if (method == RS_SVD_GRAM)
		return svd_gram(a, rows, cols, lda, sigma, err);
	return svd_gesdd(a, rows, cols, lda, sigma, err);
}
