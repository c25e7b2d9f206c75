/*
 * grouped.h — channel-grouped SVD (ALDS, la-grouped.c): exact errors and
 * costs at any rank from one SVD per group.
 *
 * An m x n layer W (m = output side) is split on its input side into g
 * equal groups of n/g consecutive columns, W = [W_1 ... W_g], and each
 * m x (n/g) block is factorised on its own at the same rank j.  With
 * k = min(m, n/g) and sigma_{g,1} >= ... >= sigma_{g,k} the singular
 * values of block g:
 *   err_spec(j) = max_g sigma_{g,j+1} / ||W||_2 (0 when j >= k)   ALDS's measure
 *   err_fro(j)  = sqrt(sum_g sum_{i>j} sigma_{g,i}^2) / ||W||_F  exact
 *   params(j)   = j (g m + n)   (each group: m x j and j x (n/g) factors)
 * err_fro is the exact Frobenius error of truncating every block
 * optimally (Eckart-Young-Mirsky per block; the blocks' errors occupy
 * disjoint columns).  err_spec is the largest block's spectral error
 * relative to the whole layer's: the true ||W - W_j||_2 lies between
 * that numerator and sqrt(g) times it.  g = 1 is the plain SVD and gives
 * the rs_spectrum figures (spectrum.h).  Tail sums are accumulated from
 * the small end, as in rs_spectrum.
 */
#ifndef RANKSCOPE_GROUPED_H
#define RANKSCOPE_GROUPED_H

#include <stddef.h>

#include "rankscope/error.h"

typedef struct rs_grouped {
	size_t rows, cols, groups;
	size_t k;             /* min(rows, cols / groups): values per group */
	double *sigma;        /* groups x k, group-major, each group descending */
	double *tail;         /* groups x (k + 1): tail[g (k+1) + j] = sum_{i>j} sigma_{g,i}^2 */
	double fro2;          /* ||W||_F^2, the sum of the groups' tails at 0 */
	double spec;          /* ||W||_2 as given by the caller */
} rs_grouped;

/*
 * Splits the column-major rows x cols matrix w (element (i, j) at
 * w[i + j * ld], ld >= rows) into `groups` blocks of cols / groups
 * consecutive columns and computes each block's singular values (dgesdd,
 * no vectors, on a private copy; w is not modified).  groups must be
 * >= 1 and divide cols (RS_EINVAL).  spec_norm is ||W||_2, the full
 * matrix's sigma_1 (from its spectrum), which the errors are relative
 * to; it must be finite and >= 0 (RS_EINVAL).  Non-finite elements or
 * non-convergence give RS_ENUMERIC, a block too large to allocate
 * RS_ENOMEM.  Returns NULL on error; the caller frees the result with
 * rs_grouped_free.
 */
rs_grouped *rs_grouped_new(const double *w, size_t rows, size_t cols, size_t ld,
                           size_t groups, double spec_norm, rs_error *err);
void rs_grouped_free(rs_grouped *g);

/* Relative errors at rank j in every group, O(groups); ranks above k are
 * clamped to k (no error).  0 for a zero matrix. */
double rs_grouped_err_spec(const rs_grouped *g, size_t j);
double rs_grouped_err_fro(const rs_grouped *g, size_t j);

/* Parameters of rank j in every group: j (groups rows + cols). */
size_t rs_grouped_params(const rs_grouped *g, size_t j);

/* Smallest j with err_spec(j) <= eps, O(groups log k) by bisection
 * (err_spec is non-increasing in j); k when eps < 0. */
size_t rs_grouped_rank_for_err_spec(const rs_grouped *g, double eps);

#endif
