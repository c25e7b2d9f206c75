/*
 * test-grouped.c — the channel-grouped SVD against matrices whose column
 * blocks have known singular values, and every error formula against
 * direct computation: each block's rank-j truncation is formed
 * explicitly from a full SVD and the distances to W measured.
 */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/grouped.h"
#include "rankscope/util.h"
#include "testlib.h"

/* Singular values of an m x n block (leading dimension ld), descending. */
static double *
ref_values(const double *a, size_t m, size_t n, size_t ld)
{
	size_t k = m < n ? m : n, i, j;
	double *copy = rs_xmalloc(m * n * sizeof *copy), *s = rs_xmalloc((k ? k : 1) * sizeof *s);
	double dummy = 0;

	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			copy[i + j * m] = a[i + j * ld];
	if (k > 0 && LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, copy, (int)m,
	                            s, &dummy, 1, &dummy, 1) != 0)
		abort();
	free(copy);
	return s;
}

static double
ref_spec_norm(const double *a, size_t m, size_t n, size_t ld)
{
	double *s = ref_values(a, m, n, ld), v = s[0];

	free(s);
	return v;
}

/*
 * W = [W_1 ... W_g], block g = U_g diag(s + g k) V_g^T, with leading
 * dimension ld; the padding rows are NaN so reading them shows up.
 */
static double *
assemble(size_t m, size_t n, size_t ld, size_t groups, const double *s)
{
	size_t width = n / groups, k = m < width ? m : width, gi, i, j;
	double *w = rs_xmalloc(ld * n * sizeof *w);

	for (i = 0; i < ld * n; i++)
		w[i] = NAN;
	for (gi = 0; gi < groups; gi++) {
		double *b = test_matrix_with_spectrum(m, width, s + gi * k);
		for (j = 0; j < width; j++)
			for (i = 0; i < m; i++)
				w[i + (gi * width + j) * ld] = b[i + j * m];
		free(b);
	}
	return w;
}

/* Per-group spectra with different decays and scales, distinct values. */
static double *
group_spectra(size_t groups, size_t k)
{
	double *s = rs_xmalloc(groups * k * sizeof *s);
	size_t gi, i;

	for (gi = 0; gi < groups; gi++) {
		double decay = 0.5 + 0.45 * (double)gi / (double)(groups > 1 ? groups - 1 : 1);
		double scale = 3.0 / (1.0 + 2.0 * (double)gi);
		for (i = 0; i < k; i++)
			s[gi * k + i] = scale * pow(decay, (double)i) * (1.0 + 0.01 * test_uniform());
		for (i = 1; i < k; i++)
			if (s[gi * k + i] >= s[gi * k + i - 1])
				s[gi * k + i] = s[gi * k + i - 1] * 0.999;
	}
	return s;
}

static rs_grouped *
make(const double *w, size_t m, size_t n, size_t ld, size_t groups)
{
	rs_error err;
	rs_grouped *g = rs_grouped_new(w, m, n, ld, groups, ref_spec_norm(w, m, n, ld), &err);

	CHECK(g != NULL, "rs_grouped_new %zux%zu g=%zu: %s", m, n, groups,
	      g ? "" : err.msg);
	if (g == NULL)
		abort();
	return g;
}

static void
check_known_spectra(size_t m, size_t n, size_t ld, size_t groups)
{
	size_t width = n / groups, k = m < width ? m : width, gi, i, j;
	double *s = group_spectra(groups, k), *w = assemble(m, n, ld, groups, s);
	double fro2 = 0;
	rs_grouped *g = make(w, m, n, ld, groups);

	CHECK(g->rows == m && g->cols == n && g->groups == groups && g->k == k,
	      "%zux%zu g=%zu: shape %zu %zu %zu k=%zu", m, n, groups, g->rows,
	      g->cols, g->groups, g->k);
	for (gi = 0; gi < groups; gi++)
		for (i = 0; i < k; i++)
			CHECK(fabs(g->sigma[gi * k + i] - s[gi * k + i]) <= 1e-10 * s[0],
			      "%zux%zu g=%zu: sigma_{%zu,%zu} = %.17g, want %.17g", m, n,
			      groups, gi + 1, i + 1, g->sigma[gi * k + i], s[gi * k + i]);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			fro2 += w[i + j * ld] * w[i + j * ld];
	CHECK_NEAR(g->fro2, fro2, 1e-12 * fro2, "fro2 = ||W||_F^2");
	CHECK_NEAR(g->spec, ref_spec_norm(w, m, n, ld), 0, "spec as given");
	for (gi = 0; gi < groups; gi++) {
		double t = 0;
		CHECK(g->tail[gi * (k + 1) + k] == 0.0, "group %zu: tail[k] = 0", gi);
		for (j = k; j > 0; j--) {
			t += s[gi * k + j - 1] * s[gi * k + j - 1];
			CHECK_NEAR(g->tail[gi * (k + 1) + j - 1], t, 1e-10 * s[0] * s[0],
			           "tail sum vs known spectrum");
		}
	}
	rs_grouped_free(g);
	free(w);
	free(s);
}

/*
 * Replaces the m x width block at a (leading dimension ld) by its
 * difference from its own rank-r truncation, written to diff (ld m).
 */
static void
block_residual(const double *a, size_t m, size_t width, size_t ld, size_t r,
               double *diff)
{
	size_t k = m < width ? m : width, i, j, t;
	double *copy = rs_xmalloc(m * width * sizeof *copy), *u = rs_xmalloc(m * k * sizeof *u);
	double *vt = rs_xmalloc(k * width * sizeof *vt), *s = rs_xmalloc(k * sizeof *s);

	for (j = 0; j < width; j++)
		for (i = 0; i < m; i++)
			copy[i + j * m] = a[i + j * ld];
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (int)m, (int)width, copy, (int)m, s, u,
	                   (int)m, vt, (int)k) != 0)
		abort();
	for (j = 0; j < width; j++)
		for (i = 0; i < m; i++) {
			double ar = 0;
			for (t = 0; t < r && t < k; t++)
				ar += u[i + t * m] * s[t] * vt[t + j * k];
			diff[i + j * m] = a[i + j * ld] - ar;
		}
	free(copy); free(u); free(vt); free(s);
}

static void
check_errors_direct(size_t m, size_t n, size_t groups)
{
	size_t width = n / groups, k = m < width ? m : width, gi, i, j, r;
	double *s = group_spectra(groups, k), *w = assemble(m, n, m, groups, s);
	double *diff = rs_xmalloc(m * n * sizeof *diff), spec = ref_spec_norm(w, m, n, m);
	double fro_w = 0;
	rs_grouped *g = make(w, m, n, m, groups);

	for (i = 0; i < m * n; i++)
		fro_w += w[i] * w[i];
	fro_w = sqrt(fro_w);
	for (r = 0; r <= k + 1; r++) {
		double fro = 0, worst = 0, whole, lo, hi;
		for (gi = 0; gi < groups; gi++) {
			double *d = diff + gi * width * m, bn;
			block_residual(w + gi * width * m, m, width, m, r, d);
			bn = ref_spec_norm(d, m, width, m);
			if (bn > worst)
				worst = bn;
		}
		for (i = 0; i < m * n; i++)
			fro += diff[i] * diff[i];
		fro = sqrt(fro);
		CHECK_NEAR(rs_grouped_err_fro(g, r), fro / fro_w, 1e-11,
		           "err_fro vs ||W - W_j||_F / ||W||_F");
		CHECK_NEAR(rs_grouped_err_spec(g, r), worst / spec, 1e-11,
		           "err_spec vs max_g ||W_g - W_{g,j}||_2 / ||W||_2");
		/* The whole residual's spectral norm is bracketed by the
		 * largest block's and sqrt(g) times it. */
		whole = ref_spec_norm(diff, m, n, m);
		lo = worst - 1e-11 * spec;
		hi = sqrt((double)groups) * worst + 1e-11 * spec;
		CHECK(whole >= lo && whole <= hi,
		      "%zux%zu g=%zu r=%zu: ||W - W_j||_2 = %.17g outside [%.17g, %.17g]",
		      m, n, groups, r, whole, lo, hi);
	}
	CHECK_NEAR(rs_grouped_err_fro(g, 0), 1.0, 1e-15, "rank 0 loses all energy");
	CHECK(rs_grouped_err_fro(g, k) == 0.0 && rs_grouped_err_spec(g, k) == 0.0 &&
	      rs_grouped_err_fro(g, k + 7) == 0.0 && rs_grouped_err_spec(g, k + 7) == 0.0,
	      "full rank per group has no error");
	for (j = 1; j <= k; j++)
		CHECK(rs_grouped_err_spec(g, j) <= rs_grouped_err_spec(g, j - 1) &&
		      rs_grouped_err_fro(g, j) <= rs_grouped_err_fro(g, j - 1),
		      "errors non-increasing at %zu", j);
	rs_grouped_free(g);
	free(diff);
	free(w);
	free(s);
}

/* g = 1 is the plain SVD: sigma_{j+1} / sigma_1 and the tail fractions. */
static void
check_plain_svd(size_t m, size_t n)
{
	size_t k = m < n ? m : n, i, j;
	double *w = rs_xmalloc(m * n * sizeof *w), *s, *tail = rs_xmalloc((k + 1) * sizeof *tail);
	rs_grouped *g;

	for (i = 0; i < m * n; i++)
		w[i] = test_gaussian();
	s = ref_values(w, m, n, m);
	g = make(w, m, n, m, 1);
	tail[k] = 0;
	for (i = k; i > 0; i--)
		tail[i - 1] = tail[i] + s[i - 1] * s[i - 1];
	CHECK(g->k == k, "g=1: k = min(m, n)");
	for (i = 0; i < k; i++)
		CHECK_NEAR(g->sigma[i], s[i], 1e-13 * s[0], "g=1 sigma = plain SVD");
	for (j = 0; j <= k; j++) {
		CHECK_NEAR(rs_grouped_err_spec(g, j), j < k ? s[j] / s[0] : 0.0, 1e-13,
		           "g=1 err_spec = sigma_{j+1} / sigma_1");
		CHECK_NEAR(rs_grouped_err_fro(g, j), sqrt(tail[j] / tail[0]), 1e-13,
		           "g=1 err_fro = plain tail fraction");
		CHECK(rs_grouped_params(g, j) == j * (m + n), "g=1 params = j (m + n)");
	}
	CHECK_NEAR(rs_grouped_err_spec(g, 0), 1.0, 1e-13, "g=1 rank 0 spectral error is 1");
	rs_grouped_free(g);
	free(tail);
	free(s);
	free(w);
}

static void
check_costs_and_zero(void)
{
	double *w = rs_xcalloc(64 * 96, sizeof *w);
	rs_error err;
	rs_grouped *g = rs_grouped_new(w, 64, 96, 64, 3, 0.0, &err);
	size_t j;

	CHECK(g != NULL, "zero matrix: %s", err.msg);
	if (g == NULL)
		abort();
	CHECK(g->k == 32, "64x96 in 3 groups: k = min(64, 32) = 32");
	CHECK(rs_grouped_params(g, 5) == 1440, "5 (3 * 64 + 96) = 1440, got %zu",
	      rs_grouped_params(g, 5));
	CHECK(rs_grouped_params(g, 0) == 0, "rank 0 costs nothing");
	CHECK(rs_grouped_params(g, 32) == 32 * 288, "full rank: 32 * 288 = 9216");
	CHECK(g->fro2 == 0.0, "zero matrix has no energy");
	for (j = 0; j <= 33; j++)
		CHECK(rs_grouped_err_spec(g, j) == 0.0 && rs_grouped_err_fro(g, j) == 0.0,
		      "zero matrix: no error at %zu", j);
	CHECK(rs_grouped_rank_for_err_spec(g, 0.0) == 0, "zero matrix needs rank 0");
	rs_grouped_free(g);

	/* one column per group: the singular values are the column norms */
	w[0] = 3; w[1] = 4;                    /* column 0: norm 5 */
	w[64 * 1 + 2] = -2;                     /* column 1: norm 2 */
	g = rs_grouped_new(w, 64, 96, 64, 96, 5.0, &err);
	CHECK(g != NULL && g->k == 1, "96 groups of one column");
	if (g != NULL) {
		CHECK_NEAR(g->sigma[0], 5.0, 1e-14, "group 1 = column norm 5");
		CHECK_NEAR(g->sigma[1], 2.0, 1e-14, "group 2 = column norm 2");
		CHECK(g->sigma[2] == 0.0, "empty column: sigma 0");
		CHECK_NEAR(rs_grouped_err_spec(g, 0), 1.0, 1e-15, "max column norm / 5");
		CHECK_NEAR(g->fro2, 29.0, 1e-13, "fro2 = 25 + 4");
		CHECK(rs_grouped_params(g, 1) == 96 * 64 + 96, "rank 1 in 96 groups");
	}
	rs_grouped_free(g);
	free(w);
}

static void
check_bad_input(void)
{
	double *w = rs_xcalloc(64 * 96, sizeof *w);
	rs_error err;
	static const size_t bad[] = {0, 5, 7, 64, 97, 192};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		char want[32];
		rs_error_clear(&err);
		CHECK(rs_grouped_new(w, 64, 96, 64, bad[i], 1.0, &err) == NULL &&
		      err.code == RS_EINVAL, "%zu groups of 96 columns rejected (%s)",
		      bad[i], rs_status_name(err.code));
		snprintf(want, sizeof want, "into %zu equal groups", bad[i]);
		CHECK_CONTAINS(err.msg, want);
		CHECK_CONTAINS(err.msg, "96 input columns");
	}
	CHECK(rs_grouped_new(w, 64, 96, 64, 7, 1.0, NULL) == NULL, "NULL error allowed");
	CHECK(rs_grouped_new(w, 64, 96, 63, 3, 1.0, &err) == NULL && err.code == RS_EINVAL,
	      "ld < rows rejected");
	CHECK_CONTAINS(err.msg, "leading dimension 63");
	CHECK(rs_grouped_new(w, 64, 96, 64, 3, -1.0, &err) == NULL && err.code == RS_EINVAL,
	      "negative spectral norm rejected");
	CHECK_CONTAINS(err.msg, "spectral norm");
	CHECK(rs_grouped_new(w, 64, 96, 64, 3, NAN, &err) == NULL && err.code == RS_EINVAL,
	      "NaN spectral norm rejected");
	w[5 + 70 * 64] = INFINITY;
	CHECK(rs_grouped_new(w, 64, 96, 64, 3, 1.0, &err) == NULL && err.code == RS_ENUMERIC,
	      "non-finite element rejected");
	CHECK_CONTAINS(err.msg, "element (5, 70) is not finite");
	free(w);
}

static void
check_rank_for_err_spec(void)
{
	size_t m = 30, n = 60, groups = 3, k = 20, j, i;
	double *s = group_spectra(groups, k), *w = assemble(m, n, m, groups, s);
	rs_grouped *g = make(w, m, n, m, groups);
	double eps[3 * 21 + 205];
	size_t count = 0;

	for (j = 0; j <= k; j++) {
		double e = rs_grouped_err_spec(g, j);
		eps[count++] = e;
		eps[count++] = nextafter(e, 2.0);
		eps[count++] = nextafter(e, -1.0);
	}
	eps[count++] = 0.0;
	eps[count++] = 1.0;
	eps[count++] = 2.0;
	eps[count++] = -1.0;
	eps[count++] = NAN;
	for (i = 0; i < 200; i++)
		eps[count++] = 1.1 * test_uniform();
	for (i = 0; i < count; i++) {
		size_t want = k, got = rs_grouped_rank_for_err_spec(g, eps[i]);
		for (j = 0; j <= k; j++)
			if (rs_grouped_err_spec(g, j) <= eps[i]) {
				want = j;
				break;
			}
		CHECK(got == want, "rank_for_err_spec(%.17g) = %zu, linear scan %zu",
		      eps[i], got, want);
	}
	CHECK(rs_grouped_rank_for_err_spec(g, 1.0) == 0, "err 1 allowed at rank 0");
	CHECK(rs_grouped_rank_for_err_spec(g, 0.0) == k, "no error needs full rank");
	rs_grouped_free(g);
	free(w);
	free(s);
}

/*
 * Grouping pays when the blocks' column spaces differ: each block is
 * rank 2 plus a tiny tail, but the six directions together make W rank 6.
 * At 384 parameters g = 3 affords rank 2 per group (2 (96 + 96)), g = 1
 * rank 3 (3 (32 + 96)).  And the reverse: a W of global rank 2.
 */
static void
check_grouping_helps(void)
{
	size_t m = 32, n = 96, k = 32, gi, i;
	double *s = rs_xcalloc(3 * k, sizeof *s), *w, *w2, spec;
	static const double head[3][2] = {{10, 5}, {3, 2}, {1, 0.5}};
	rs_grouped *g1, *g3;
	rs_error err;

	for (gi = 0; gi < 3; gi++) {
		s[gi * k] = head[gi][0];
		s[gi * k + 1] = head[gi][1];
		for (i = 2; i < k; i++)
			s[gi * k + i] = 1e-3 * pow(0.5, (double)(i - 2));
	}
	w = assemble(m, n, m, 3, s);
	g1 = make(w, m, n, m, 1);
	g3 = make(w, m, n, m, 3);
	CHECK(rs_grouped_params(g3, 2) == 384 && rs_grouped_params(g1, 3) == 384,
	      "equal budgets: %zu vs %zu", rs_grouped_params(g3, 2),
	      rs_grouped_params(g1, 3));
	CHECK(rs_grouped_err_spec(g3, 2) < 1e-3 && rs_grouped_err_spec(g1, 3) > 0.02,
	      "g=3 rank 2 err_spec %.3g vs g=1 rank 3 %.3g",
	      rs_grouped_err_spec(g3, 2), rs_grouped_err_spec(g1, 3));
	CHECK(rs_grouped_err_fro(g3, 2) < 1e-3 && rs_grouped_err_fro(g1, 3) > 0.02,
	      "g=3 rank 2 err_fro %.3g vs g=1 rank 3 %.3g",
	      rs_grouped_err_fro(g3, 2), rs_grouped_err_fro(g1, 3));
	CHECK(rs_grouped_rank_for_err_spec(g3, 1e-3) == 2 &&
	      rs_grouped_rank_for_err_spec(g1, 1e-3) >= 6,
	      "1e-3 needs rank 2 per group, >= 6 whole (%zu)",
	      rs_grouped_rank_for_err_spec(g1, 1e-3));
	rs_grouped_free(g1);
	rs_grouped_free(g3);

	/* global rank 2: one SVD wins at any budget */
	memset(s, 0, 3 * k * sizeof *s);
	s[0] = 4;
	s[1] = 1;
	w2 = test_matrix_with_spectrum(m, n, s);
	spec = ref_spec_norm(w2, m, n, m);
	g1 = rs_grouped_new(w2, m, n, m, 1, spec, &err);
	g3 = rs_grouped_new(w2, m, n, m, 3, spec, &err);
	CHECK(g1 && g3, "global rank 2 builds");
	if (g1 && g3) {
		CHECK(rs_grouped_err_spec(g1, 2) < 1e-12 && rs_grouped_params(g1, 2) == 256,
		      "g=1 rank 2 is exact at 256 params");
		CHECK(rs_grouped_params(g3, 1) <= 256 && rs_grouped_err_spec(g3, 1) > 0.01,
		      "g=3 at <= 256 params (rank 1) still errs: %.3g",
		      rs_grouped_err_spec(g3, 1));
	}
	rs_grouped_free(g1);
	rs_grouped_free(g3);
	free(w2);
	free(w);
	free(s);
}

int
main(void)
{
	test_seed(20261123);
	check_known_spectra(30, 60, 33, 3);   /* tall blocks, padded ld */
	check_known_spectra(12, 60, 12, 3);   /* wide blocks: k = m */
	check_known_spectra(20, 40, 21, 1);
	check_errors_direct(30, 60, 3);
	check_errors_direct(40, 24, 4);
	check_errors_direct(10, 40, 2);
	check_plain_svd(25, 35);
	check_plain_svd(35, 25);
	check_costs_and_zero();
	check_bad_input();
	check_rank_for_err_spec();
	check_grouping_helps();
	return test_done("test-grouped");
}
