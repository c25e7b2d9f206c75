/*
 * cp.h — CP (CANDECOMP/PARAFAC) decomposition of a 2-, 3- or 4-mode
 * tensor by alternating least squares (la-cp.c; DESIGN.md §4: "CP
 * (rank R) by ALS; error measured, not bounded").
 *
 *   W ~ W_hat = sum_{r<R} lambda_r a^(0)_r o a^(1)_r o ... o a^(N-1)_r
 *
 * Tensor layout.  A tensor of N = nmodes modes with sizes dims[0..N-1]
 * is prod(dims) doubles in row-major order, dims[0] slowest, dims[N-1]
 * fastest: element (i_0, ..., i_{N-1}) is at
 *   ((i_0 dims[1] + i_1) dims[2] + i_2) ... dims[N-1] + i_{N-1},
 * the layout of a weight file.  A conv kernel (f out, c in, kh, kw) is
 * dims = {f, c, kh, kw} with (o, i, y, x) at w[((o c + i) kh + y) kw + x];
 * a linear layer (m out, n in) is dims = {m, n} with (i, j) at w[i n + j];
 * a 1-D conv (f, c, k) is dims = {f, c, k}.
 *
 * Factors.  factors[k] is dims[k] x R, column-major (element (i, r) at
 * factors[k][i + r dims[k]]), every column of unit 2-norm.  lambda[r] >= 0
 * and lambda is sorted descending, the factor columns permuted to match
 * (ties keep the order ALS produced).  So W_hat at (i_0, ..., i_{N-1}) is
 * sum_r lambda[r] prod_k factors[k][i_k + r dims[k]].  A component whose
 * weight is exactly 0 keeps a unit column from an earlier sweep (or the
 * initialisation), so the columns are unit-norm even then.
 *
 * Signs.  A rank-1 term is unchanged when two of its vectors change sign,
 * so signs are fixed: in factors 0 .. N-2 the largest-magnitude entry of
 * every column (the lowest index on a tie) is positive; a column that had
 * to be negated has its column in the last factor (N-1) negated too.
 *
 * Applying a conv's CP (lambda folded into one factor) is four convs:
 * 1x1 c -> R, kh x 1 depthwise, 1 x kw depthwise, 1x1 R -> f.  A 3-mode
 * (f, c, k) kernel is 1x1 c -> R, k depthwise, 1x1 R -> f; a matrix is
 * x -> A (lambda o (B^T x)).
 *
 * Algorithm (all of it deterministic: the same input gives bit-identical
 * output with the same BLAS and thread count).
 *   Scaling: ALS runs on W / ||W||_F (overflow-safe norm) and lambda is
 *     scaled back at the end, so results do not depend on W's scale.
 *   Initialisation (HOSVD): column r < min(R, dims[k]) of factor k is the
 *     eigenvector of the r-th largest eigenvalue of the mode-k Gram matrix
 *     X_(k) X_(k)^T (dsyevd), i.e. the r-th leading left singular vector of
 *     the mode-k unfolding.  When R > dims[k] the remaining R - dims[k]
 *     columns are Gaussian vectors (normalised) from a fixed-seed
 *     generator private to the call (splitmix64; no global state, no
 *     rand()).
 *   Sweep: for k = 0 .. N-1 in turn, factor k is the exact least-squares
 *     solution with the others fixed: A_k V = M, V = the Hadamard
 *     product of the other factors' Gram matrices A_j^T A_j (R x R), M
 *     the MTTKRP X_(k) (Khatri-Rao of the others).  The MTTKRPs share
 *     work: the larger of the first and last mode (the root) gets one
 *     dgemm against the other modes' Khatri-Rao product (built in blocks
 *     of rows), the other modes contract Y = W x_root A_root^T, formed by
 *     one dgemm per sweep; see la-cp.c.  V is solved by Cholesky
 *     (dpotrf/dpotrs) when dpocon reports a reciprocal condition number
 *     >= RS_CP_RCOND_MIN; otherwise (singular or ill-conditioned V:
 *     collinear components, or R larger than the tensor needs) by the
 *     pseudo-inverse from a symmetric eigen-decomposition (dsyevd),
 *     eigenvalues <= R * DBL_EPSILON * the largest treated as zero (the
 *     minimum-norm least-squares solution).  No Tikhonov term.  Then each column's norm goes into lambda
 *     and the column is normalised.  Every step minimises the error over
 *     one factor, so the error is non-increasing from sweep to sweep (up
 *     to rounding).
 *   Error: after every sweep the model is reconstructed (dgemm) and
 *     ||W - W_hat||_F / ||W||_F measured directly; history[s] is that
 *     value after sweep s + 1.  No fit formula is used.
 *   Stopping, after sweep s (1-based), with e_s = history[s - 1]:
 *     e_s < RS_CP_TINY_ERR (exact to rounding); or s >= 2 and
 *     e_{s-1} - e_s <= tol * e_{s-1} (a rise from rounding counts as
 *     "fell by less"; the same rule as rs_combine); or s == max_iter.
 *     converged is 1 when one of the first two fired (possibly at sweep
 *     max_iter itself), 0 when the run stopped only because s reached
 *     max_iter.
 *   Final err: measured again by reconstruction from the returned,
 *     sign-fixed, sorted and rescaled model (rs_cp_reconstruct),
 *     against the caller's w.  It equals history[iterations - 1] up to
 *     rounding (about 1e-15).
 *
 * What is exact: params and flops (formulas below).  What is measured:
 * err and history (CP-ALS finds a local optimum; nothing here is a bound
 * or a guarantee of the best rank-R error).  For a matrix (2 modes) with
 * distinct leading singular values the result converges to the truncated
 * SVD (Eckart-Young error), and a tensor of exact CP rank R with
 * well-conditioned factors is recovered to rounding.
 *
 * Cost: each sweep is three dgemms of about 2 R prod(dims) flops (the
 * root's MTTKRP, Y, the reconstruction) plus O(R prod(dims) / dims[root])
 * for Khatri-Rao rows and the other modes' contractions, and the R x R
 * solves; the initialisation adds about dims[k] prod(dims) per mode
 * (dsyrk) and a dims[k]^3 eigen-decomposition.  E.g. 256x256x3x3 at
 * R = 64 runs 50 sweeps in about 0.6 s on one core.
 * Memory: two copies of the tensor (scaled input, reconstruction), Y
 * (prod(dims) / dims[root] x R), two Khatri-Rao products within Y (at
 * most the same), a block of at most max(2^18, R) doubles, the largest
 * mode's Gram matrix (dims[k]^2, initialisation only) and a few R x R
 * and dims[k] x R matrices.  Sized by the layer, so plain malloc and
 * RS_ENOMEM.
 */
#ifndef RANKSCOPE_CP_H
#define RANKSCOPE_CP_H

#include <stddef.h>

#include "rankscope/error.h"

#define RS_CP_MAX_MODES 4
/* Stop as exact when the measured relative error is below this. */
#define RS_CP_TINY_ERR 1e-13
/* Cholesky is trusted down to this reciprocal condition number of V. */
#define RS_CP_RCOND_MIN 1e-12
/* Defaults for front ends. */
#define RS_CP_DEFAULT_ITERATIONS 500
#define RS_CP_DEFAULT_TOLERANCE 1e-8

typedef struct rs_cp {
	size_t nmodes, dims[RS_CP_MAX_MODES], rank;
	double *factors[RS_CP_MAX_MODES]; /* dims[k] x rank, column-major, unit columns */
	double *lambda;     /* rank weights >= 0, descending */
	double err;         /* ||W - W_hat||_F / ||W||_F, measured by reconstruction */
	int iterations;     /* sweeps run (0 for a zero tensor) */
	int converged;      /* see "Stopping" above */
	double *history;    /* measured relative error after each sweep, `iterations` values */
} rs_cp;

/*
 * CP decomposition of rank `rank` of the row-major tensor w (nmodes
 * modes, sizes dims[0..nmodes-1]); w is not modified.  At most max_iter
 * sweeps; tol is the relative fall of the error below which it stops
 * (RS_CP_DEFAULT_* are reasonable).
 *
 * RS_EINVAL (the message names the value): nmodes outside 2..4, a zero
 * dimension, rank 0, max_iter < 1, tol negative or not finite, a tensor
 * with more than INT_MAX elements (BLAS's 32-bit indices) or a rank whose
 * work arrays overflow size_t.  RS_ENUMERIC: a non-finite element (its
 * multi-index is named), ||W||_F beyond the double range, or LAPACK
 * non-convergence.  RS_ENOMEM: a work array could not be allocated.
 * A rank above the sizes (even above the tensor's maximal CP rank) is
 * allowed: the surplus components go through the pseudo-inverse.
 *
 * A zero tensor is exact at once: err 0, every lambda 0, iterations 0,
 * converged 1, factors the (unit-norm) initialisation.  history is never
 * NULL (it may hold no values).
 *
 * Returns NULL on error; the caller frees the result with rs_cp_free.
 */
rs_cp *rs_cp_als(const double *w, size_t nmodes, const size_t *dims, size_t rank,
                 int max_iter, double tol, rs_error *err);
void rs_cp_free(rs_cp *cp);

/* Writes W_hat to out (prod(dims) doubles, the same row-major layout as
 * the input).  Uses a scratch block of at most max(2^18, rank) doubles
 * (aborts if even that cannot be allocated, like rs_xmalloc). */
void rs_cp_reconstruct(const rs_cp *cp, double *out);

/*
 * Costs of a rank-R CP, exact, with lambda folded into one factor:
 *   params = R (dims[0] + ... + dims[N-1]).
 *   flops  = 2 R (dims[0] + ... + dims[N-1]) = 2 params, counting a
 *            multiply-add as 2:
 *     4 modes (f, c, kh, kw): per output position of the conv at stride
 *       1 (one position of each stage's output; the 1x1 stages cost 2 R c
 *       and 2 R f, the depthwise ones 2 R kh and 2 R kw), against
 *       2 f c kh kw dense;
 *     3 modes (f, c, k): the same per output position of a 1-D conv at
 *       stride 1, against 2 f c k;
 *     2 modes (m, n): per input vector of the linear layer, against 2 m n
 *       (the low-rank figure 2 R (m + n)).
 * Both return 0 when nmodes is outside 2..4 and SIZE_MAX when the
 * product overflows.
 */
size_t rs_cp_params(size_t nmodes, const size_t *dims, size_t rank);
size_t rs_cp_flops(size_t nmodes, const size_t *dims, size_t rank);

#endif
