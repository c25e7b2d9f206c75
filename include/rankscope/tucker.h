/*
 * tucker.h — Tucker-2 of convolution kernels on the output and input
 * modes (la-tucker.c; DESIGN.md §4, seed 004): truncated HOSVD, HOOI
 * refinement, the HOSVD error bound, costs.
 *
 * Layout.  A kernel W has shape (f out, c in, kh, kw), given as doubles
 * in row-major tensor order, the weight file's: element (o, i, y, x) at
 *   w[((o c + i) kh + y) kw + x].
 * Write s = kh kw for the spatial size.  The two unfoldings used are
 *   mode 1 (output): f x (c s),  row o, column (i s + y kw + x);
 *   mode 2 (input):  c x (f s),  row i, column (o s + y kw + x).
 *
 * Tucker-2.  W ~ W_hat = G x_1 U_out x_2 U_in, i.e.
 *   W_hat[o, i, y, x] = sum_{j < r_out} sum_{l < r_in}
 *                         U_out[o, j] U_in[i, l] G[j, l, y, x],
 * with U_out (f x r_out) and U_in (c x r_in) having orthonormal columns
 * and the core G of shape (r_out, r_in, kh, kw).  The spatial modes are
 * not factorised.  As layers it is three convolutions: a 1x1 c -> r_in
 * (weights U_in^T), the kh x kw r_in -> r_out core G (same stride,
 * padding and dilation as W), a 1x1 r_out -> f (weights U_out).  With
 * kh = kw = 1 (a linear layer) it is the two-sided projection
 * U_out G U_in^T, whose rank is at most min(r_out, r_in).
 *
 * What is exact, bounded, measured:
 *   - rs_tucker_modes: the unfoldings' singular values (dgesdd) and tail
 *     energies: exact up to rounding.
 *   - rs_tucker_bound: a BOUND on the relative Frobenius error of the
 *     truncated HOSVD at (r_out, r_in), and therefore of HOOI started
 *     from it (see rs_tucker_hooi); not an error estimate.
 *   - rs_tucker.err_hosvd and .err: MEASURED, by forming W_hat and
 *     summing (W - W_hat)^2 (||W||^2 - ||G||^2 would be the same in exact
 *     arithmetic but cancels badly when the error is small).
 *   - rs_tucker_params / rs_tucker_flops: exact counts.
 */
#ifndef RANKSCOPE_TUCKER_H
#define RANKSCOPE_TUCKER_H

#include <stddef.h>

#include "rankscope/error.h"

/* ---- mode spectra (HOSVD), for error curves over every rank pair --------- */

typedef struct rs_tucker_modes {
	size_t f, c, kh, kw;
	size_t k_out, k_in;      /* min(f, c kh kw), min(c, f kh kw) */
	double *sigma_out;       /* k_out values of the mode-1 unfolding, descending */
	double *sigma_in;        /* k_in values of the mode-2 unfolding, descending */
	double *tail_out;        /* k_out + 1: tail_out[r] = sum_{i > r} sigma_out_i^2 (1-based i) */
	double *tail_in;         /* k_in + 1, likewise; tail[k] = 0 */
	double fro2;             /* ||W||_F^2, summed over the elements */
} rs_tucker_modes;

/*
 * Singular values of both unfoldings of the kernel w (layout above;
 * w is not modified; each unfolding is copied and given to dgesdd without
 * vectors).  Tails are accumulated from the smallest value, as in
 * rs_spectrum, so small tails keep their relative accuracy; tail_out[0]
 * and tail_in[0] equal fro2 up to rounding.  All of f, c, kh, kw must be
 * >= 1 and their product representable (RS_EINVAL), and each unfolding
 * within LAPACK's 32-bit index range (RS_EINVAL).  A non-finite element
 * gives RS_ENUMERIC naming it as (o, i, y, x); non-convergence
 * RS_ENUMERIC; a kernel too large to copy RS_ENOMEM.  Returns NULL on
 * error; free with rs_tucker_modes_free.
 */
rs_tucker_modes *rs_tucker_modes_new(const double *w, size_t f, size_t c, size_t kh,
                                     size_t kw, rs_error *err);
void rs_tucker_modes_free(rs_tucker_modes *m);

/*
 * DESIGN.md's bound on the relative Frobenius error of the truncated
 * HOSVD at ranks (r_out, r_in), O(1):
 *   sqrt(tail_out[r_out] + tail_in[r_in]) / sqrt(fro2),
 * ranks above k_out / k_in clamped to them (no tail); rank 0 is allowed
 * (the whole energy); 0 for a zero kernel.  Why it holds: with P the
 * orthogonal projectors onto the kept singular subspaces,
 * ||W - W x_1 P_out x_2 P_in||^2 = ||W - W x_1 P_out||^2
 * + ||(W - W x_2 P_in) x_1 P_out||^2 <= tail_out + tail_in (Pythagoras:
 * the two residuals are orthogonal; a projection does not grow a norm).
 * HOOI, started from the truncated HOSVD, never ends worse (see
 * rs_tucker_hooi), so it bounds rs_tucker.err as well.  The bound can
 * exceed 1 (both tails near fro2) while a Tucker-2 error never does.
 */
double rs_tucker_bound(const rs_tucker_modes *m, size_t r_out, size_t r_in);

/*
 * Parameters of the three convolutions (biases not counted; W's bias, if
 * any, stays on the last one unchanged):
 *   c r_in + r_in r_out kh kw + r_out f
 * versus f c kh kw dense.  Multiply-adds per output position at stride 1
 * are the same count (each 1x1 runs at every position of its input,
 * which at stride 1 is every output position), so rs_tucker_flops is
 * 2 x params, versus 2 f c kh kw dense.  At a stride t the first 1x1 runs
 * at t^2 times as many positions; the count here does not model that.
 * Results saturate at SIZE_MAX instead of overflowing.  Ranks are not
 * checked against the shape: at full ranks (f, c) Tucker-2 costs more
 * than the dense kernel, and a plan must compare against dense itself.
 */
size_t rs_tucker_params(size_t f, size_t c, size_t kh, size_t kw, size_t r_out,
                        size_t r_in);
size_t rs_tucker_flops(size_t f, size_t c, size_t kh, size_t kw, size_t r_out,
                       size_t r_in);

/* ---- one decomposition (factors for apply) ------------------------------- */

typedef struct rs_tucker {
	size_t f, c, kh, kw, r_out, r_in;
	double *u_out;      /* f x r_out column-major (U_out[o, j] at u_out[o + j f]), orthonormal columns */
	double *u_in;       /* c x r_in column-major (U_in[i, l] at u_in[i + l c]), orthonormal columns */
	double *core;       /* (r_out, r_in, kh, kw) row-major: G[j, l, y, x] at
	                       core[((j r_in + l) kh + y) kw + x], itself a conv kernel */
	double err_hosvd;   /* measured relative Frobenius error of the truncated HOSVD (the start) */
	double err;         /* measured relative Frobenius error of the result (after HOOI) */
	int iterations;     /* HOOI sweeps run (0: the result is the truncated HOSVD) */
} rs_tucker;

/* Defaults for front ends (workbench, apply, Lua). */
#define RS_TUCKER_DEFAULT_ITERATIONS 50
#define RS_TUCKER_DEFAULT_TOLERANCE 1e-6

/*
 * Truncated HOSVD of w, then HOOI sweeps.
 *
 * Start (truncated HOSVD): U_out = the leading r_out left singular
 * vectors of the mode-1 unfolding of W, U_in = the leading r_in of the
 * mode-2 unfolding, G = W x_1 U_out^T x_2 U_in^T.
 *
 * One HOOI sweep: U_out <- the leading r_out left singular vectors of the
 * mode-1 unfolding (f x r_in s) of W x_2 U_in^T; then U_in <- the leading
 * r_in of the mode-2 unfolding (c x r_out s) of W x_1 U_out^T with the new
 * U_out; then G = W x_1 U_out^T x_2 U_in^T and the error is measured.
 * Each update maximises ||G||_F over one factor with the other fixed, and
 * for orthonormal factors err^2 = 1 - ||G||^2 / ||W||^2, so in exact
 * arithmetic no sweep increases the error.
 *
 * Stopping, with e_0 = err_hosvd and e_i the error after sweep i: no
 * sweep at all when e_0 == 0 or max_iter == 0; after sweep i, stop when
 * e_{i-1} - e_i <= tol * e_{i-1} (a rise from rounding counts as "fell by
 * less"), or e_i == 0, or i == max_iter.  When the last sweep made the
 * error rise, its factors are discarded and the previous ones returned,
 * so err <= err_hosvd always holds exactly (as measured); `iterations`
 * still counts that sweep.  tol = 0 runs until the error stops falling
 * or max_iter.
 *
 * Singular vectors come from dgesdd; each column's sign is fixed so its
 * largest-magnitude component (the first such on a tie) is positive,
 * making the output reproducible for a given LAPACK.  A rank beyond the
 * rank of the matrix it is taken from (r_out > c kh kw, r_in > f kh kw,
 * or in a sweep r_out > r_in s, r_in > r_out s) adds nothing to the
 * approximation; the requested shape is kept by completing the leading
 * vectors with an orthonormal basis of their complement (Householder
 * QR), so the extra columns are orthonormal and their slices of G are
 * zero up to rounding.
 *
 * Arguments: f, c, kh, kw >= 1 with a representable product, unfoldings
 * within LAPACK's 32-bit range (RS_EINVAL); 1 <= r_out <= f and
 * 1 <= r_in <= c (RS_EINVAL naming the rank and its limit);
 * max_iter >= 0; tol finite and >= 0 (RS_EINVAL).  A non-finite element
 * gives RS_ENUMERIC naming (o, i, y, x); non-convergence RS_ENUMERIC;
 * buffers too large RS_ENOMEM.  A zero kernel gives errors 0, no sweeps
 * and a zero core (its U's are the orthonormal vectors dgesdd returns for
 * a zero matrix, signs fixed).
 *
 * Memory: besides the result, a copy of one unfolding (f c s doubles),
 * dgesdd's thin vectors of it, W_hat (f c s) for measuring, two
 * intermediate products of at most f c s each, and a copy of the
 * previous sweep's factors and core.  Returns NULL on error; free with
 * rs_tucker_free.
 */
rs_tucker *rs_tucker_hooi(const double *w, size_t f, size_t c, size_t kh, size_t kw,
                          size_t r_out, size_t r_in, int max_iter, double tol,
                          rs_error *err);
void rs_tucker_free(rs_tucker *t);

/*
 * Writes W_hat = G x_1 U_out x_2 U_in into out (f c kh kw doubles, the
 * row-major (f, c, kh, kw) layout of the input), from the fields of t
 * alone (so a hand-made rs_tucker works; factors need not be
 * orthonormal).  Uses r_in kh kw doubles of scratch (rs_xmalloc: no larger
 * than one r_in x kh x kw slice of the core t already holds).
 */
void rs_tucker_reconstruct(const rs_tucker *t, double *out);

#endif
