/* spectrum.c — O(1) error and cost queries; see rankscope/spectrum.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "rankscope/spectrum.h"

rs_spectrum *
rs_spectrum_new(size_t rows, size_t cols, double *sigma)
{
	rs_spectrum *s = malloc(sizeof *s);
	size_t k = rows < cols ? rows : cols, i;
	double l1 = 0, entropy = 0;

	if (s == NULL)
		return NULL;
	s->tail = malloc((k + 1) * sizeof *s->tail);
	if (s->tail == NULL) {
		free(s);
		return NULL;
	}
	s->rows = rows;
	s->cols = cols;
	s->k = k;
	s->sigma = sigma;
	/* Summing from the smallest value keeps every tail accurate. */
	s->tail[k] = 0.0;
	for (i = k; i > 0; i--)
		s->tail[i - 1] = s->tail[i] + sigma[i - 1] * sigma[i - 1];
	for (i = 0; i < k; i++)
		l1 += sigma[i];
	for (i = 0; i < k && l1 > 0; i++) {
		double p = sigma[i] / l1;
		if (p > 0)
			entropy -= p * log(p);
	}
	s->effective_rank = l1 > 0 ? exp(entropy) : 0.0;
	return s;
}

void
rs_spectrum_free(rs_spectrum *s)
{
	if (s == NULL)
		return;
	free(s->sigma);
	free(s->tail);
	free(s);
}

double
rs_spectrum_fro_norm(const rs_spectrum *s)
{
	return sqrt(s->tail[0]);
}

double
rs_spectrum_spec_norm(const rs_spectrum *s)
{
	return s->k ? s->sigma[0] : 0.0;
}

double
rs_spectrum_err_fro(const rs_spectrum *s, size_t rank)
{
	if (rank > s->k)
		rank = s->k;
	return s->tail[0] > 0 ? sqrt(s->tail[rank] / s->tail[0]) : 0.0;
}

double
rs_spectrum_err_spec(const rs_spectrum *s, size_t rank)
{
	if (rank >= s->k || s->sigma[0] == 0)
		return 0.0;
	return s->sigma[rank] / s->sigma[0];
}

double
rs_spectrum_energy(const rs_spectrum *s, size_t rank)
{
	if (rank > s->k)
		rank = s->k;
	return s->tail[0] > 0 ? 1.0 - s->tail[rank] / s->tail[0] : 1.0;
}

size_t
rs_spectrum_rank_for_energy(const rs_spectrum *s, double fraction)
{
	/* Smallest r with tail[r] <= (1 - fraction) total; tail is
	 * non-increasing, so bisect. */
	double allowed = (1.0 - fraction) * s->tail[0];
	size_t lo = 0, hi = s->k;

	if (fraction <= 0)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->tail[mid] <= allowed)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

double
rs_spectrum_stable_rank(const rs_spectrum *s)
{
	if (s->k == 0 || s->sigma[0] == 0)
		return 0.0;
	return s->tail[0] / (s->sigma[0] * s->sigma[0]);
}

double
rs_spectrum_effective_rank(const rs_spectrum *s)
{
	return s->effective_rank;
}

size_t
rs_lowrank_params(size_t rows, size_t cols, size_t rank)
{
	return rank * (rows + cols);
}

size_t
rs_lowrank_flops(size_t rows, size_t cols, size_t rank)
{
	return 2 * rank * (rows + cols);
}

size_t
rs_lowrank_breakeven(size_t rows, size_t cols)
{
	return rows + cols ? rows * cols / (rows + cols) : 0;
}
