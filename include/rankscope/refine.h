/*
 * refine.h — NN-BCD's closed-form block-coordinate refinement of a
 * compressed layer against its dense self on the calibration statistics
 * (la-refine.c).
 *
 * The objective is the squared output error f(W') = tr((W - W') G (W - W')^T)
 * (whiten.h) for the layer's compressed form W', and each block is solved
 * exactly with the others fixed, so f never increases (TT-matrices:
 * rs_refine_tt below, in la-refine-tt.c):
 *   low rank W' = B A:   B = argmin f (least squares of B (A S) ~ W S, with
 *                        G = S S^T its symmetric square root), then
 *                        A = argmin f = B^+ W (any A with A S = B^+ W S is a
 *                        minimiser; B^+ W is one whatever G's rank);
 *                        repeated for `sweeps` sweeps or until f stops
 *                        falling by more than 1e-12 of its value;
 *   sparse, fixed support: per row, the kept values v_K minimising f solve
 *                        G_KK (w_K - v_K) = -G_KP w_P (P the dropped
 *                        columns): one sweep is the exact optimum (rows are
 *                        independent) — the OBS/SparseGPT compensation;
 *   quantised: first the codes, by GPTQ's error feedback — columns in
 *                        order, each weight rounded to its nearest level
 *                        after the rounding errors of the columns before
 *                        it were spread over the columns after it through
 *                        the Cholesky factor of (G + 0.01 mean(diag G) I)^-1
 *                        (a greedy choice, kept only when f is lower than
 *                        with nearest-level codes) — then, codes fixed,
 *                        the codebook c minimising f solves H c = b with
 *                        H_kl = sum over rows of sum_{j: code k, j': code l}
 *                        G_jj' and b_k = sum_{code k} (W G)_ij — one system
 *                        for a shared codebook, one per row for per-channel
 *                        codebooks; one sweep is the exact optimum.
 * Least squares go through dgelsd (minimum norm), so a singular G or a
 * rank-deficient factor is no special case.
 */
#ifndef RANKSCOPE_REFINE_H
#define RANKSCOPE_REFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/error.h"
#include "rankscope/tt.h"

#define RS_REFINE_MAX_SWEEPS 50
#define RS_REFINE_DEFAULT_SWEEPS 10

typedef struct rs_refine_result {
	size_t sweeps;                                /* done */
	double history[RS_REFINE_MAX_SWEEPS + 1];    /* relative output error before
	                                                the first sweep and after each */
	double out_err;                               /* after the last, = history[sweeps] */
	double fro_err;                               /* its relative Frobenius error */
} rs_refine_result;

/* w: column-major rows x cols (ld rows); g: cols x cols column-major.
 * b (rows x rank) and a (rank x cols), column-major, are the starting
 * factors and receive the refined ones. */
rs_status rs_refine_lowrank(const double *w, size_t rows, size_t cols, const double *g,
                            size_t rank, double *b, double *a, size_t sweeps,
                            rs_refine_result *res, rs_error *err);

/* keep (W's column-major order, 1 = kept); out receives W' (rows x cols),
 * zero off the support. */
rs_status rs_refine_sparse(const double *w, size_t rows, size_t cols, const double *g,
                           const unsigned char *keep, double *out, rs_refine_result *res,
                           rs_error *err);

/* codes (W's column-major order) index codebook (levels values, or rows x
 * levels with per_row: row i's at i * levels), which receives the refined
 * values; out (may be NULL) receives W'.  With choose_codes the codes are
 * first chosen by error feedback (above) and rewritten; history then has
 * the nearest codes, the chosen codes and the refitted codebook. */
rs_status rs_refine_codebook(const double *w, size_t rows, size_t cols, const double *g,
                             uint16_t *codes, size_t levels, bool per_row, bool choose_codes,
                             double *codebook, double *out, rs_refine_result *res,
                             rs_error *err);

/*
 * TT-matrix (tt.h): the cores in turn, 0 to d-1 in each sweep, each the
 * exact minimiser of f with the others fixed.  Row i of W' depends on core
 * k only through its slice G_k[i_k, ., ., .], and W'(i, j) =
 * L(i_<k, j_<k) G_k[i_k, j_k] R(i_>k, j_>k), so the m_k slices are
 * independent least-squares problems with one normal matrix
 *   H = sum over (i_<k, i_>k) of B G B^T,
 * B = blockdiag over j_k of Phi (Phi[(a, b), (j_<k, j_>k)] = L_a R_b),
 * and one right-hand side per slice, B (W G)_i^T summed over its rows;
 * solved by dgelsd (minimum norm).  Cost per core about
 * 2 (m / m_k) (q n^2 + q^2 n n_k) flops with q = r_k r_{k+1}: affordable
 * for the layer sizes TT is used on, quadratic in n.  The cores are
 * rewritten in place; sweeps and the stopping rule as for low rank.
 */
rs_status rs_refine_tt(const double *w, size_t rows, size_t cols, const double *g,
                       rs_tt *tt, size_t sweeps, rs_refine_result *res, rs_error *err);

/* Shared by the refinement kernels. */
/* The relative output and weight errors of wp (rows x cols) against w. */
void rs_refine_measure(const double *w, const double *wp, size_t rows, size_t cols,
                       const double *g, double *out_err, double *fro_err);
/* Records a sweep's error `after` in res (sweeps, history, out_err) and
 * says whether to stop: the sweep gained under 1e-12 of f = after^2. */
bool rs_refine_record_sweep(rs_refine_result *res, double after);
/* Minimum-norm least squares: a (m x n, lda m) x ~ b (m x nrhs, ldb >=
 * max(m, n)); the solution is in b's first n rows.  a and b destroyed. */
rs_status rs_refine_lstsq(double *a, size_t m, size_t n, double *b, size_t ldb, size_t nrhs,
                          rs_error *err);

#endif
