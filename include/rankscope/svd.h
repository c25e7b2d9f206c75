/*
 * svd.h — singular values of a dense double matrix (la-svd.c).
 *
 * Two methods, chosen per matrix (DESIGN.md §5, HACKING.md "Spectrum engine"):
 *   RS_SVD_GESDD: LAPACK dgesdd, jobz='N'.  Backward stable; the reference.
 *   RS_SVD_GRAM:  the Gram matrix of the short side in double (dsyrk), then
 *                 dsyevd; sigma_i = sqrt(lambda_i).  Fewer flops, mostly
 *                 level-3; absolute error about eps * sigma_1^2 / sigma_i.
 * Never single precision: a single-precision Gram loses every sigma below
 * ~3e-4 sigma_1, and those make up the error tails we report.
 */
#ifndef RANKSCOPE_SVD_H
#define RANKSCOPE_SVD_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/dtype.h"
#include "rankscope/error.h"

typedef enum rs_svd_method {
	RS_SVD_AUTO = 0,
	RS_SVD_GESDD,
	RS_SVD_GRAM
} rs_svd_method;

const char *rs_svd_method_name(rs_svd_method method);
bool rs_svd_method_parse(const char *name, rs_svd_method *out);

/*
 * The method AUTO resolves to for a matrix of this shape whose data came
 * from `source` dtype: dgesdd for float64 sources (their small singular
 * values are meaningful and Gram would lose those below ~1e-8 sigma_1) and
 * for small matrices (cost is negligible either way); Gram otherwise.
 */
rs_svd_method rs_svd_choose(size_t rows, size_t cols, rs_dtype source);

/* Approximate floating-point operations of a method (for scheduling and
 * the benchmark's GFLOP/s). */
double rs_svd_flops(size_t rows, size_t cols, rs_svd_method method);

/*
 * Computes the min(rows, cols) singular values of the column-major matrix a
 * (leading dimension lda) in descending order into sigma.  `a` is destroyed.
 * `method` must not be AUTO.  Returns RS_ENUMERIC if LAPACK does not converge.
 */
rs_status rs_svd_values(double *a, size_t rows, size_t cols, size_t lda,
                        rs_svd_method method, double *sigma, rs_error *err);

/* The thin SVD A = U diag(sigma) V^T of the column-major rows x cols a
 * (leading dimension lda, destroyed) with dgesdd: sigma the k = min(rows,
 * cols) values descending, u rows x k (leading dimension rows) and vt
 * k x cols (leading dimension k).  RS_ENUMERIC if LAPACK does not
 * converge. */
rs_status rs_svd_vectors(double *a, size_t rows, size_t cols, size_t lda, double *sigma,
                         double *u, double *vt, rs_error *err);

/* The rank-r factors of a thin SVD from rs_svd_vectors (k values):
 * left = U_r diag(sigma_r), rows x r, and right = V_r^T, r x cols, both
 * column-major with leading dimensions rows and r. */
void rs_svd_factors(const double *u, const double *sigma, const double *vt, size_t rows,
                    size_t cols, size_t k, size_t r, double *left, double *right);

/* ||A||_2, the largest singular value (dgesdd on a private copy; `a` is
 * kept), for a matrix whose spectrum is not at hand, e.g. a kernel under
 * another fold scheme than the session's.  0 for an empty matrix. */
rs_status rs_svd_spec_norm(const double *a, size_t rows, size_t cols, size_t lda,
                           double *out, rs_error *err);

#endif
