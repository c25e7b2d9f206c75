/*
 * test-spectrum.c — the spectrum numbers against matrices with known
 * singular values, and every error formula against direct computation:
 * the rank-r truncation is formed explicitly from a full SVD and its
 * Frobenius and spectral distance to W measured.
 */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/spectrum.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"
#include "testlib.h"

/* Singular values by each method from a private copy. */
static double *
values(const double *a, size_t m, size_t n, rs_svd_method method)
{
	size_t k = m < n ? m : n;
	double *copy = rs_xmalloc(m * n * sizeof *copy), *s = rs_xmalloc(k * sizeof *s);
	rs_error err;

	memcpy(copy, a, m * n * sizeof *copy);
	CHECK(rs_svd_values(copy, m, n, m, method, s, &err) == RS_OK, "svd: %s", err.msg);
	free(copy);
	return s;
}

static void
check_known_spectrum(size_t m, size_t n, rs_svd_method method, double decay)
{
	size_t k = m < n ? m : n, i;
	double *s = rs_xmalloc(k * sizeof *s), *a, *got, tol;

	for (i = 0; i < k; i++)
		s[i] = 2.385 * pow(decay, (double)i);
	a = test_matrix_with_spectrum(m, n, s);
	got = values(a, m, n, method);
	/* Gram: absolute error ~ eps sigma_1^2 / sigma_i; relative to sigma_1
	 * that stays far below 1e-10 for the ranges used here. */
	tol = 1e-10 * s[0];
	for (i = 0; i < k; i++)
		CHECK(fabs(got[i] - s[i]) <= tol,
		      "%zux%zu %s sigma_%zu = %.17g, want %.17g", m, n,
		      rs_svd_method_name(method), i + 1, got[i], s[i]);
	free(a);
	free(got);
	free(s);
}

/* ||A - A_r||_F and ||A - A_r||_2 formed explicitly. */
static void
direct_errors(const double *a, size_t m, size_t n, size_t r, double *fro,
              double *spec)
{
	size_t k = m < n ? m : n, i, j, t;
	double *copy = rs_xmalloc(m * n * sizeof *copy), *u = rs_xmalloc(m * k * sizeof *u);
	double *vt = rs_xmalloc(k * n * sizeof *vt), *s = rs_xmalloc(k * sizeof *s);
	double *diff = rs_xmalloc(m * n * sizeof *diff), *ds;
	double sum = 0;

	memcpy(copy, a, m * n * sizeof *copy);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (int)m, (int)n, copy, (int)m, s, u,
	                   (int)m, vt, (int)k) != 0)
		abort();
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			double ar = 0;
			for (t = 0; t < r; t++)
				ar += u[i + t * m] * s[t] * vt[t + j * k];
			diff[i + j * m] = a[i + j * m] - ar;
			sum += diff[i + j * m] * diff[i + j * m];
		}
	*fro = sqrt(sum);
	ds = values(diff, m, n, RS_SVD_GESDD);
	*spec = ds[0];
	free(ds);
	free(copy); free(u); free(vt); free(s); free(diff);
}

static void
check_error_formulas(size_t m, size_t n)
{
	size_t k = m < n ? m : n, r, i;
	double *s = rs_xmalloc(k * sizeof *s), *a, fro_w = 0;
	rs_spectrum *sp;

	for (i = 0; i < k; i++)
		s[i] = 10.0 / (1.0 + (double)i * (double)i * 0.37) + 0.01 * test_uniform();
	/* descending with distinct values */
	for (i = 1; i < k; i++)
		if (s[i] >= s[i - 1])
			s[i] = s[i - 1] * 0.999;
	a = test_matrix_with_spectrum(m, n, s);
	for (i = 0; i < m * n; i++)
		fro_w += a[i] * a[i];
	fro_w = sqrt(fro_w);
	sp = rs_spectrum_new(m, n, values(a, m, n, RS_SVD_GESDD));
	CHECK(sp != NULL, "spectrum");
	CHECK_NEAR(rs_spectrum_fro_norm(sp), fro_w, 1e-12 * fro_w, "||W||_F");
	CHECK_NEAR(rs_spectrum_spec_norm(sp), s[0], 1e-12 * s[0], "||W||_2");
	for (r = 0; r <= k; r += (r < 4 ? 1 : 3)) {
		double fro, spec;
		direct_errors(a, m, n, r, &fro, &spec);
		CHECK_NEAR(rs_spectrum_err_fro(sp, r), fro / fro_w, 1e-11, "err_fro vs direct");
		CHECK_NEAR(rs_spectrum_err_spec(sp, r), spec / s[0], 1e-11, "err_spec vs direct");
		CHECK_NEAR(rs_spectrum_energy(sp, r), 1 - (fro / fro_w) * (fro / fro_w), 1e-11,
		           "energy vs direct");
	}
	CHECK(rs_spectrum_err_fro(sp, k + 5) == 0.0 && rs_spectrum_err_spec(sp, k) == 0.0,
	      "full rank has no error");
	CHECK(rs_spectrum_err_fro(sp, 0) == 1.0 && rs_spectrum_err_spec(sp, 0) == 1.0,
	      "rank 0 loses everything");
	rs_spectrum_free(sp);
	free(a);
	free(s);
}

static void
check_queries(void)
{
	/* sigma = 4, 2, 1, 0.5, 0: energies 16, 4, 1, 0.25, 0; total 21.25 */
	double *sigma = rs_xmalloc(5 * sizeof *sigma);
	rs_spectrum *sp;
	/* sigma / sum(sigma) = (4, 2, 1, 0.5) / 7.5 */
	double p[4] = {4 / 7.5, 2 / 7.5, 1 / 7.5, 0.5 / 7.5}, h = 0;
	int i;

	sigma[0] = 4; sigma[1] = 2; sigma[2] = 1; sigma[3] = 0.5; sigma[4] = 0;
	sp = rs_spectrum_new(5, 7, sigma);
	CHECK_NEAR(rs_spectrum_err_fro(sp, 1), sqrt(5.25 / 21.25), 1e-15, "err_fro(1)");
	CHECK_NEAR(rs_spectrum_err_fro(sp, 3), sqrt(0.25 / 21.25), 1e-15, "err_fro(3)");
	CHECK_NEAR(rs_spectrum_err_spec(sp, 2), 0.25, 0, "err_spec(2)");
	CHECK_NEAR(rs_spectrum_energy(sp, 2), 20.0 / 21.25, 1e-15, "energy(2)");
	CHECK(rs_spectrum_rank_for_energy(sp, 0.75) == 1, "16/21.25 = 0.753 >= 0.75 at rank 1");
	CHECK(rs_spectrum_rank_for_energy(sp, 0.76) == 2, "0.76 needs rank 2");
	CHECK(rs_spectrum_rank_for_energy(sp, 20.0 / 21.25) == 2, "exact boundary");
	CHECK(rs_spectrum_rank_for_energy(sp, 0.98) == 3, "0.98 needs rank 3 (21/21.25 = 0.988)");
	CHECK(rs_spectrum_rank_for_energy(sp, 0.99) == 4, "0.99 needs rank 4");
	CHECK(rs_spectrum_rank_for_energy(sp, 1.0) == 4, "all energy at rank 4 (sigma_5 = 0)");
	CHECK(rs_spectrum_rank_for_energy(sp, 0.0) == 0, "no energy at rank 0");
	CHECK_NEAR(rs_spectrum_stable_rank(sp), 21.25 / 16, 1e-15, "stable rank");
	for (i = 0; i < 4; i++)
		h -= p[i] * log(p[i]);
	CHECK_NEAR(rs_spectrum_effective_rank(sp), exp(h), 1e-13, "effective rank");
	rs_spectrum_free(sp);

	CHECK(rs_lowrank_params(512, 64, 37) == 37 * 576, "params");
	CHECK(rs_lowrank_flops(512, 64, 37) == 2 * 37 * 576, "flops");
	CHECK(rs_lowrank_breakeven(512, 64) == 56, "break-even 512x64 = floor(32768/576)");
	CHECK(rs_lowrank_breakeven(512, 512) == 256, "break-even square");
	CHECK(rs_lowrank_params(512, 64, rs_lowrank_breakeven(512, 64)) <= 512 * 64 &&
	      rs_lowrank_params(512, 64, rs_lowrank_breakeven(512, 64) + 1) > 512 * 64,
	      "break-even is the largest rank not costing more than dense");

	/* zero matrix */
	sigma = rs_xcalloc(3, sizeof *sigma);
	sp = rs_spectrum_new(3, 3, sigma);
	CHECK(rs_spectrum_err_fro(sp, 0) == 0 && rs_spectrum_stable_rank(sp) == 0 &&
	      rs_spectrum_effective_rank(sp) == 0, "zero matrix queries are 0");
	rs_spectrum_free(sp);
}

static void
check_tail_precision(void)
{
	/* A tail of 1e-9 relative energy under a sigma_1 of 1: total-minus-
	 * prefix would lose it to cancellation; suffix sums keep it. */
	size_t k = 100, i;
	double *sigma = rs_xmalloc(k * sizeof *sigma);
	rs_spectrum *sp;

	sigma[0] = 1.0;
	for (i = 1; i < k; i++)
		sigma[i] = 1e-6 / (double)i;
	sp = rs_spectrum_new(k, k, sigma);
	{
		double tail = 0;
		for (i = k; i > 50; i--)
			tail += 1e-12 / (double)((i - 1) * (i - 1));
		CHECK_NEAR(rs_spectrum_err_fro(sp, 50), sqrt(tail / sp->tail[0]),
		           1e-15 * sqrt(tail), "tiny tail keeps its digits");
	}
	rs_spectrum_free(sp);
}

int
main(void)
{
	test_seed(20261122);
	check_queries();
	check_tail_precision();
	check_known_spectrum(40, 40, RS_SVD_GESDD, 0.8);
	check_known_spectrum(40, 40, RS_SVD_GRAM, 0.8);
	check_known_spectrum(120, 70, RS_SVD_GESDD, 0.9);
	check_known_spectrum(120, 70, RS_SVD_GRAM, 0.9);
	check_known_spectrum(70, 120, RS_SVD_GRAM, 0.9);
	check_known_spectrum(70, 120, RS_SVD_GESDD, 0.9);
	check_known_spectrum(200, 30, RS_SVD_GRAM, 0.7);
	check_known_spectrum(1, 9, RS_SVD_GRAM, 0.5);
	check_known_spectrum(9, 1, RS_SVD_GESDD, 0.5);
	check_error_formulas(30, 18);
	check_error_formulas(18, 30);
	check_error_formulas(25, 25);
	CHECK(rs_svd_choose(512, 512, RS_DTYPE_F32) == RS_SVD_GRAM, "fp32 large: Gram");
	CHECK(rs_svd_choose(512, 512, RS_DTYPE_F64) == RS_SVD_GESDD, "fp64: gesdd");
	CHECK(rs_svd_choose(512, 16, RS_DTYPE_BF16) == RS_SVD_GESDD, "small side: gesdd");
	return test_done("test-spectrum");
}
