/*
 * whiten.h — a layer's truncations measured in the output norm, from the
 * Gram matrix G = X^T X of its inputs (la-whiten.c).
 *
 * For an m x n layer W and inputs X (one n-vector per row, N rows), the
 * output error of an approximation W' is ||(W - W') X^T||_F, and
 *   ||E X^T||_F^2 = tr(E G E^T),     ||W X^T||_F^2 = tr(W G W^T),
 * so G (n x n, symmetric positive semi-definite) is all that is needed.
 * The relative output error is sqrt(tr(E G E^T) / tr(W G W^T)).
 *
 * Two rank-r truncations, each with O(1) queries from tabulated tails:
 *
 * - Whitened (SVD-LLM).  G + shift I = L L^T (Cholesky; shift = 0 unless
 *   G is singular, then the smallest of 1e-12, 1e-11, ... times tr(G)/n
 *   that makes the factorisation succeed).  With W L = U' S' V'^T, the
 *   rank-r truncation W'_r = U'_r S'_r V'_r^T L^{-1} is optimal in the
 *   norm of G + shift I (Eckart-Young in whitened coordinates), and
 *   exactly optimal in G's when shift = 0.  Its errors are exact in G's
 *   norm whatever the shift:
 *     tr(E G E^T) = sum_{i>r} s'_i^2 (1 - shift w_i),  ||E||_F^2 = sum_{i>r} s'_i^2 w_i,
 *   with w_i = ||L^{-T} v'_i||^2 (the cross terms vanish because the u'_i
 *   are orthonormal).
 * - Plain (Eckart-Young in the weights), measured in the output norm: with
 *   W = U S V^T, tr(E G E^T) = sum_{i>r} s_i^2 v_i^T G v_i.
 *
 * A diagonal G (per-channel statistics only, as llama.cpp's importance
 * matrices and ASVD's activation scales give) goes through the same
 * algebra: W diag(sqrt(g)) is ASVD's scaled matrix, and the figures are
 * exact for that G — an estimate of the true output error, which would
 * need the off-diagonal terms.
 */
#ifndef RANKSCOPE_WHITEN_H
#define RANKSCOPE_WHITEN_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"

typedef struct rs_whiten {
	size_t rows, cols, k;   /* k = min(rows, cols) */
	double shift;           /* added to G's diagonal for the Cholesky factor */
	double out_total;       /* tr(W G W^T) */
	double fro_total;       /* ||W||_F^2 */
	double *sigma;          /* k singular values of W L, descending */
	double *out_tail;       /* k + 1: tr(E G E^T) of the whitened rank-r truncation */
	double *fro_tail;       /* k + 1: ||E||_F^2 of the same */
	double *plain_out_tail; /* k + 1: tr(E G E^T) of the plain rank-r truncation */
} rs_whiten;

/*
 * Tabulates both truncations of the column-major rows x cols matrix w
 * (leading dimension ldw) against the column-major cols x cols Gram g
 * (leading dimension ldg; only its lower triangle is read).  g must be
 * symmetric positive semi-definite with tr(W G W^T) > 0 (calib.c checks
 * that before); RS_ENUMERIC when no shift up to 1e-2 tr(G)/n makes it
 * factor, or LAPACK does not converge.  Returns NULL on failure.
 */
rs_whiten *rs_whiten_new(const double *w, size_t rows, size_t cols, size_t ldw,
                         const double *g, size_t ldg, rs_error *err);
void rs_whiten_free(rs_whiten *wh);

/* The tables as one array for the cache (cache.h): rs_whiten_packed_len
 * doubles; rs_whiten_unpack checks them (signs, descending values,
 * non-increasing tails) and returns NULL on anything off. */
size_t rs_whiten_packed_len(size_t rows, size_t cols);
void rs_whiten_pack(const rs_whiten *wh, double *out);
rs_whiten *rs_whiten_unpack(size_t rows, size_t cols, const double *v);

/* Relative output error of the whitened rank-r truncation (exact). */
double rs_whiten_out_err(const rs_whiten *wh, size_t rank);
/* Its relative Frobenius (weight) error (exact). */
double rs_whiten_fro_err(const rs_whiten *wh, size_t rank);
/* Relative output error of the plain rank-r truncation (exact). */
double rs_whiten_plain_out_err(const rs_whiten *wh, size_t rank);
/* Smallest rank whose whitened output error is <= eps; O(log k). */
size_t rs_whiten_rank_for_out_err(const rs_whiten *wh, double eps);
/* Relative output error of an arbitrary error matrix E (rows x cols,
 * column-major, leading dimension lde): sqrt(tr(E G E^T) / tr(W G W^T)),
 * O(m n^2); g as for rs_whiten_new.  NaN when out_total is 0. */
double rs_whiten_out_err_of(const rs_whiten *wh, const double *e, size_t lde,
                            const double *g, size_t ldg);

/* sqrt(tr(E G E^T) / tr(W G W^T)) for W and E (rows x cols, column-major,
 * leading dimension rows) and G as for rs_whiten_new; NaN when W's output
 * is zero or memory runs out. */
double rs_gram_relative_error(const double *w, const double *e, size_t rows, size_t cols,
                              const double *g, size_t ldg);

/*
 * The factors of the whitened rank-r truncation, W'_r = left * right:
 * left (rows x rank, column-major, ld rows) = U'_r S'_r, right (rank x
 * cols, column-major, ld rank) = V'_r^T L^{-1}.  Recomputed from w and g
 * (every step is deterministic, so they are the factors the tables
 * describe).  rank must be 1..k.
 */
rs_status rs_whiten_factors(const double *w, size_t rows, size_t cols, size_t ldw,
                            const double *g, size_t ldg, size_t rank,
                            double *left, double *right, rs_error *err);

#endif
