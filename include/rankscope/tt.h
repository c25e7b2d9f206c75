/*
 * tt.h — TT-SVD of a layer reshaped as a TT-matrix (la-tt.c; Oseledets'
 * TT-SVD, the TT-matrix format of Novikov et al.; DESIGN.md §4).
 *
 * An m x n layer W (m = output side) is given column-major, element
 * (i, j) at w[i + j * ld].  The caller factorises m = m_1 ... m_d and
 * n = n_1 ... n_d (same d, 2 <= d <= RS_TT_MAX_D, factors of 1 allowed).
 * The row index is the mixed-radix number i = (i_1, ..., i_d) with i_1
 * most significant, i = i_1 (m_2 ... m_d) + ... + i_d, and likewise j.
 * Mode k of the d-way tensor has size m_k n_k and is indexed by the pair
 * (i_k, j_k), i_k major (a_k = i_k n_k + j_k).  The TT-matrix is
 *   W(i, j) = G_1[i_1, j_1] G_2[i_2, j_2] ... G_d[i_d, j_d]
 * where G_k[i_k, j_k] is an r_{k-1} x r_k matrix, r_0 = r_d = 1.  (In the
 * code and the struct, modes and cores are numbered from 0.)
 *
 * TT-SVD works left to right: step k (k = 0 .. d-2) takes the current
 * remainder as an (r_k m_k n_k) x (prod_{l>k} m_l n_l) unfolding, computes
 * its SVD (dgesdd), keeps the leading r_{k+1} left singular vectors as core
 * k and carries diag(sigma) V^T on to the next step; the last remainder is
 * core d-1.  Core k is stored row-major with shape
 * (ranks[k], row_modes[k], col_modes[k], ranks[k+1]): element
 * G_k[a, i_k, j_k, b] at cores[k][((a m_k + i_k) n_k + j_k) r_{k+1} + b].
 * Cores 0 .. d-2 have orthonormal columns when viewed as
 * (r_k m_k n_k) x r_{k+1} matrices (left-orthogonal), so all of the
 * weight sits in the last core.
 *
 * Signs are deterministic: in every kept left singular vector (a column
 * of core k, k < d-1) the entry of largest magnitude (the first such) is
 * positive; the matching row carried to the next step is flipped with it.
 *
 * Errors (relative Frobenius, all over ||W||_F; 0 for a zero matrix):
 *   bound = sqrt(sum_k step_tail[k]) / ||W||_F     Oseledets' bound
 *   err   = ||W - TT||_F / ||W||_F                 measured
 * step_tail[k] is the energy (sum of squared singular values) dropped at
 * step k.  Oseledets proves err <= bound.  For TT-SVD it is in fact an
 * equality in exact arithmetic: each step's discarded part is orthogonal
 * to everything kept (it lies in the orthogonal complement of the kept
 * left singular vectors, and the cores kept before it are orthonormal), so
 * the squared errors add.  The test confirms it: over 240 random cases
 * (caps and eps mixed) |bound - err| stays below 1e-13 (largest seen
 * 8e-15).  err is still measured, by reconstruction, so nothing rests on
 * that argument.
 *
 * Costs:
 *   params = sum_k r_k m_k n_k r_{k+1}      values stored in the cores
 *   flops  = 2 sum_k (n_1 ... n_{k-1}) r_{k-1} n_k m_k r_k (m_{k+1} ... m_d)
 *            (modes numbered 1..d here) for y = W x with one vector x,
 *            contracting the cores one at a time from the right (core d
 *            first): the contraction with core k runs over the input
 *            indices j_1..j_{k-1} not yet contracted and the output indices
 *            i_{k+1}..i_d already produced, 2 per multiply-add.  Other
 *            contraction orders cost differently; this is the order of
 *            Novikov et al.  Compare with 2 m n for the dense layer; whether
 *            the TT form pays (params vs m n) is the caller's business.
 */
#ifndef RANKSCOPE_TT_H
#define RANKSCOPE_TT_H

#include <stddef.h>

#include "rankscope/error.h"

#define RS_TT_MAX_D 8

typedef struct rs_tt {
	size_t d, rows, cols;
	size_t row_modes[RS_TT_MAX_D], col_modes[RS_TT_MAX_D];
	size_t ranks[RS_TT_MAX_D + 1];    /* ranks[0] = ranks[d] = 1, each >= 1 */
	double *cores[RS_TT_MAX_D];       /* core k: (ranks[k], row_modes[k], col_modes[k], ranks[k+1]) row-major */
	double *step_sigma[RS_TT_MAX_D];  /* step k = 0..d-2: all singular values of that step's unfolding, descending; NULL for k >= d-1 */
	size_t step_k[RS_TT_MAX_D];       /* values in step_sigma[k]: min(ranks[k] m_k n_k, prod_{l>k} m_l n_l); 0 for k >= d-1 */
	double step_tail[RS_TT_MAX_D];    /* energy dropped at step k: sum_{i >= ranks[k+1]} sigma_i^2 (from the small end); 0 for k >= d-1 */
	double fro2;                      /* ||W||_F^2, summed from the input */
	double bound;                     /* sqrt(sum_k step_tail[k]) / ||W||_F: Oseledets' bound, equal to err up to rounding */
	double err;                       /* ||W - TT||_F / ||W||_F MEASURED by rs_tt_reconstruct */
	size_t params;                    /* sum_k ranks[k] m_k n_k ranks[k+1] */
	size_t flops;                     /* per input vector, right-to-left contraction (above); SIZE_MAX if it overflows */
} rs_tt;

/*
 * TT-SVD of the column-major rows x cols matrix w (leading dimension
 * ld >= rows; w is not modified) with the given d mode factorisations.
 *
 * Ranks.  eps is a relative Frobenius target (eps < 0: none).  At each step
 * the rank kept is the smallest r whose dropped tail sum_{i>r} sigma_i^2 is
 * <= (eps ||W||_F)^2 / (d-1) (Oseledets' delta split, which guarantees
 * err <= eps, up to rounding, when no cap binds; eps = 0 drops only exact
 * zeros), then capped by max_ranks[k] (d-1 values,
 * for ranks[1..d-1]); max_ranks NULL or max_ranks[k] = 0 means no cap at
 * that step (a rank of 0 is never meaningful).  Without eps the rank is
 * the step's full min(rows, cols), i.e. no truncation but the caps.  The
 * rank is always >= 1: a step whose whole spectrum fits the tolerance
 * (a zero matrix, eps >= 1) keeps one vector, and the TT form still
 * reproduces W within eps.
 *
 * Errors: RS_EINVAL for d outside 2..RS_TT_MAX_D, a mode of 0, row or
 * column modes whose product differs from rows or cols (the message names
 * both), ld < rows, a NaN eps, sizes whose products overflow or exceed
 * LAPACK's 32-bit index range; RS_ENUMERIC for a non-finite element of w
 * or dgesdd not converging; RS_ENOMEM when a buffer cannot be allocated.
 * Peak extra memory is about three dense copies of W.  Returns NULL on
 * error; the caller frees the result with rs_tt_free.
 */
rs_tt *rs_tt_svd(const double *w, size_t rows, size_t cols, size_t ld, size_t d,
                 const size_t *row_modes, const size_t *col_modes,
                 const size_t *max_ranks, double eps, rs_error *err);
void rs_tt_free(rs_tt *tt);

/*
 * Contracts the cores back into the column-major rows x cols matrix out
 * (element (i, j) at out[i + j * ld], ld >= rows; padding rows are not
 * touched).  Takes an error because it needs two rows x cols scratch
 * buffers: RS_EINVAL for ld < rows, RS_ENOMEM when they cannot be had.
 */
rs_status rs_tt_reconstruct(const rs_tt *tt, double *out, size_t ld, rs_error *err);

/*
 * A balanced default factorisation of n into d factors (1 <= d <=
 * RS_TT_MAX_D, n >= 1), written to modes[0..d-1]: every factor >= 1, their
 * product n, and as equal as possible in this exact sense — sorted in
 * descending order (which is the order returned) the factors form the
 * lexicographically smallest such vector: the largest factor is as small
 * as it can be, then the second largest, and so on.  784 in 4 gives
 * 7 7 4 4, 784 in 3 gives 14 8 7, a prime p gives p 1 ... 1, 1 gives
 * ones.  Deterministic; finds n's divisors by trial division (O(sqrt n),
 * meant for layer dimensions).  Returns 0 on success, -1 for n = 0, d out
 * of range or modes NULL.
 */
int rs_tt_balanced_modes(size_t n, size_t d, size_t *modes);

/* params and flops (above) of a TT-matrix with these d modes and d + 1
 * ranks, as rs_tt_svd fills them in. */
void rs_tt_cost(size_t d, const size_t *row_modes, const size_t *col_modes,
                const size_t *ranks, size_t *params, size_t *flops);

#endif
