/*
 * spectrum.h — a layer's singular values and the O(1) queries on them.
 *
 * Definitions (DESIGN.md §4), sigma_1 >= ... >= sigma_k, k = min(m, n):
 *   err_fro(r)  = sqrt(sum_{i>r} sigma_i^2) / sqrt(sum_i sigma_i^2)   exact
 *   err_spec(r) = sigma_{r+1} / sigma_1 (0 when r = k)                 exact
 *   energy(r)   = 1 - err_fro(r)^2
 *   params(r)   = r (m + n), flops(r) = 2 r (m + n) per input vector
 * The exact errors are those of the optimal rank-r truncation
 * (Eckart-Young-Mirsky).  Tail sums are accumulated from the small end in
 * double, so small tails keep their precision (no total-minus-prefix
 * cancellation).
 */
#ifndef RANKSCOPE_SPECTRUM_H
#define RANKSCOPE_SPECTRUM_H

#include <stddef.h>

typedef struct rs_spectrum {
	size_t rows, cols, k;
	double *sigma;        /* k values, descending, >= 0 */
	double *tail;         /* k + 1 values: tail[r] = sum_{i>r} sigma_i^2 */
	double effective_rank;
} rs_spectrum;

/* Takes ownership of sigma (malloc'd, k = min(rows, cols) values, sorted
 * descending, non-negative).  Returns NULL if memory runs out. */
rs_spectrum *rs_spectrum_new(size_t rows, size_t cols, double *sigma);
void rs_spectrum_free(rs_spectrum *s);

double rs_spectrum_fro_norm(const rs_spectrum *s);
double rs_spectrum_spec_norm(const rs_spectrum *s);
/* Ranks above k are clamped to k. */
double rs_spectrum_err_fro(const rs_spectrum *s, size_t rank);
double rs_spectrum_err_spec(const rs_spectrum *s, size_t rank);
double rs_spectrum_energy(const rs_spectrum *s, size_t rank);
/* Smallest rank whose kept energy is >= fraction (0..1); O(log k). */
size_t rs_spectrum_rank_for_energy(const rs_spectrum *s, double fraction);
/* ||W||_F^2 / ||W||_2^2 (0 for a zero matrix). */
double rs_spectrum_stable_rank(const rs_spectrum *s);
/* exp(entropy of p_i = sigma_i / sum sigma) (Roy & Vetterli 2007). */
double rs_spectrum_effective_rank(const rs_spectrum *s);

/* Costs of a rank-r factorisation (U: m x r, V: r x n). */
size_t rs_lowrank_params(size_t rows, size_t cols, size_t rank);
size_t rs_lowrank_flops(size_t rows, size_t cols, size_t rank);
/* Largest rank whose factorisation costs no more than the dense layer:
 * floor(m n / (m + n)). */
size_t rs_lowrank_breakeven(size_t rows, size_t cols);

#endif
