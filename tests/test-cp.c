/*
 * test-cp.c — CP-ALS against tensors of known CP rank (recovered to
 * rounding, components matched to the generating ones), matrices of
 * known spectrum (Eckart-Young), and every reported error against the
 * test's own reconstruction: an odometer over the multi-index summing
 * lambda_r prod_k a^(k)_r, written without the kernel's code.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cp.h"
#include "rankscope/util.h"
#include "testlib.h"

static size_t
count(size_t n, const size_t *dims)
{
	size_t c = 1, k;

	for (k = 0; k < n; k++)
		c *= dims[k];
	return c;
}

static const char *
shape(size_t n, const size_t *dims)
{
	static char buf[64];
	size_t k, o = 0;

	for (k = 0; k < n; k++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%zu", k ? "x" : "", dims[k]);
	return buf;
}

/*
 * out = sum_r lambda_r prod_k f[k](i_k, r), f[k] dims[k] x R column-major,
 * out row-major: the multi-index is advanced like an odometer, last mode
 * fastest.
 */
static void
ref_reconstruct(size_t n, const size_t *dims, size_t R, double *const *f,
                const double *lambda, double *out)
{
	size_t idx[RS_CP_MAX_MODES] = {0}, total = count(n, dims), e, r, k;

	for (e = 0; e < total; e++) {
		double s = 0;
		for (r = 0; r < R; r++) {
			double p = lambda[r];
			for (k = 0; k < n; k++)
				p *= f[k][idx[k] + r * dims[k]];
			s += p;
		}
		out[e] = s;
		for (k = n; k-- > 0;) {
			if (++idx[k] < dims[k])
				break;
			idx[k] = 0;
		}
	}
}

static double
rel_diff(const double *a, const double *b, size_t total)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < total; i++) {
		num += (a[i] - b[i]) * (a[i] - b[i]);
		den += a[i] * a[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Random unit-norm columns, dims[k] x R each, and the tensor they make. */
typedef struct truth {
	size_t n, dims[RS_CP_MAX_MODES], R;
	double *f[RS_CP_MAX_MODES], *lambda, *w;
} truth;

static truth
make_truth(size_t n, const size_t *dims, size_t R)
{
	truth t;
	size_t k, i, r;

	memset(&t, 0, sizeof t);
	t.n = n;
	t.R = R;
	memcpy(t.dims, dims, n * sizeof *dims);
	for (k = 0; k < n; k++) {
		t.f[k] = rs_xmalloc(dims[k] * R * sizeof(double));
		for (r = 0; r < R; r++) {
			double norm = 0;
			for (i = 0; i < dims[k]; i++) {
				t.f[k][i + r * dims[k]] = test_gaussian();
				norm += t.f[k][i + r * dims[k]] * t.f[k][i + r * dims[k]];
			}
			for (i = 0; i < dims[k]; i++)
				t.f[k][i + r * dims[k]] /= sqrt(norm);
		}
	}
	t.lambda = rs_xmalloc(R * sizeof(double));
	for (r = 0; r < R; r++)
		t.lambda[r] = (3.0 + 2.0 * (double)r) * (1.0 + 0.1 * test_uniform());
	t.w = rs_xmalloc(count(n, dims) * sizeof(double));
	ref_reconstruct(n, dims, R, t.f, t.lambda, t.w);
	return t;
}

static void
free_truth(truth *t)
{
	size_t k;

	for (k = 0; k < t->n; k++)
		free(t->f[k]);
	free(t->lambda);
	free(t->w);
}

/* The stopping rule of cp.h after sweep s (1-based). */
static int
rule_fires(const double *h, int s, double tol)
{
	if (h[s - 1] < RS_CP_TINY_ERR)
		return 1;
	return s >= 2 && h[s - 2] - h[s - 1] <= tol * h[s - 2];
}

/*
 * Everything cp.h promises about any result: shape, unit columns, lambda
 * sorted and >= 0, signs, err against two independent reconstructions,
 * history monotone and consistent with the stopping rule.
 */
static void
check_result(const rs_cp *cp, const double *w, size_t n, const size_t *dims, size_t R,
             int max_iter, double tol)
{
	size_t total = count(n, dims), k, r, i;
	double *a = rs_xmalloc(total * sizeof *a), *b = rs_xmalloc(total * sizeof *b);
	const char *sh = shape(n, dims);
	int s;

	CHECK(cp->nmodes == n && cp->rank == R, "%s R=%zu: nmodes %zu rank %zu", sh, R,
	      cp->nmodes, cp->rank);
	for (k = 0; k < n; k++)
		CHECK(cp->dims[k] == dims[k], "%s: dims[%zu] = %zu", sh, k, cp->dims[k]);
	for (k = 0; k < n; k++)
		for (r = 0; r < R; r++) {
			double norm = 0;
			for (i = 0; i < dims[k]; i++)
				norm += cp->factors[k][i + r * dims[k]] * cp->factors[k][i + r * dims[k]];
			CHECK_NEAR(sqrt(norm), 1.0, 1e-12, "unit-norm factor column");
		}
	for (r = 0; r < R; r++) {
		CHECK(cp->lambda[r] >= 0 && isfinite(cp->lambda[r]), "%s: lambda[%zu] = %g",
		      sh, r, cp->lambda[r]);
		if (r > 0)
			CHECK(cp->lambda[r] <= cp->lambda[r - 1],
			      "%s R=%zu: lambda not descending at %zu (%.17g > %.17g)", sh, R, r,
			      cp->lambda[r], cp->lambda[r - 1]);
	}
	/* signs: the largest magnitude of factors 0 .. n-2 is positive */
	for (k = 0; k + 1 < n; k++)
		for (r = 0; r < R; r++) {
			const double *col = cp->factors[k] + r * dims[k];
			size_t best = 0;
			for (i = 1; i < dims[k]; i++)
				if (fabs(col[i]) > fabs(col[best]))
					best = i;
			CHECK(col[best] > 0, "%s: factor %zu column %zu: largest entry %g not positive",
			      sh, k, r, col[best]);
		}

	/* err, measured three ways */
	rs_cp_reconstruct(cp, a);
	ref_reconstruct(n, dims, R, cp->factors, cp->lambda, b);
	CHECK(rel_diff(b, a, total) <= 1e-13 || rel_diff(a, b, total) <= 1e-13,
	      "%s: rs_cp_reconstruct vs the test's own loops: %.3g", sh, rel_diff(b, a, total));
	CHECK_NEAR(cp->err, rel_diff(w, a, total), 1e-13 + 1e-12 * cp->err,
	           "err vs ||W - rs_cp_reconstruct||_F / ||W||_F");
	CHECK_NEAR(cp->err, rel_diff(w, b, total), 1e-13 + 1e-12 * cp->err,
	           "err vs ||W - own reconstruction||_F / ||W||_F");

	/* history and the stopping rule */
	CHECK(cp->iterations >= 1 && cp->iterations <= max_iter, "%s: %d iterations of %d",
	      sh, cp->iterations, max_iter);
	for (s = 2; s <= cp->iterations; s++)
		CHECK(cp->history[s - 1] <= cp->history[s - 2] * (1 + 1e-12) + 1e-15,
		      "%s R=%zu: error rose at sweep %d: %.17g -> %.17g", sh, R, s,
		      cp->history[s - 2], cp->history[s - 1]);
	for (s = 1; s < cp->iterations; s++)
		CHECK(!rule_fires(cp->history, s, tol), "%s: the rule fired at sweep %d of %d",
		      sh, s, cp->iterations);
	CHECK(cp->converged == rule_fires(cp->history, cp->iterations, tol),
	      "%s R=%zu: converged %d but the rule %s at the last sweep %d", sh, R,
	      cp->converged, rule_fires(cp->history, cp->iterations, tol) ? "fires" : "does not fire",
	      cp->iterations);
	if (!cp->converged)
		CHECK(cp->iterations == max_iter, "%s: stopped unconverged at %d of %d", sh,
		      cp->iterations, max_iter);
	CHECK_NEAR(cp->history[cp->iterations - 1], cp->err, 1e-14 + 1e-10 * cp->err,
	           "last history value vs the final err");
	free(a);
	free(b);
}

static rs_cp *
run(const double *w, size_t n, const size_t *dims, size_t R, int max_iter, double tol)
{
	rs_error err;
	rs_cp *cp = rs_cp_als(w, n, dims, R, max_iter, tol, &err);

	CHECK(cp != NULL, "rs_cp_als %s R=%zu: %s", shape(n, dims), R, cp ? "" : err.msg);
	if (cp == NULL)
		abort();
	return cp;
}

/* Two runs are bit-identical. */
static void
check_deterministic(const rs_cp *a, const double *w, int max_iter, double tol)
{
	rs_cp *b = run(w, a->nmodes, a->dims, a->rank, max_iter, tol);
	size_t k, same = 1;

	for (k = 0; k < a->nmodes; k++)
		same &= memcmp(a->factors[k], b->factors[k], a->dims[k] * a->rank * sizeof(double)) == 0;
	same &= memcmp(a->lambda, b->lambda, a->rank * sizeof(double)) == 0;
	same &= a->iterations == b->iterations && a->converged == b->converged;
	same &= memcmp(&a->err, &b->err, sizeof a->err) == 0;
	if (a->iterations == b->iterations)
		same &= memcmp(a->history, b->history, (size_t)a->iterations * sizeof(double)) == 0;
	CHECK(same, "%s R=%zu: two runs differ", shape(a->nmodes, a->dims), a->rank);
	rs_cp_free(b);
}

/*
 * Exact CP rank R: recovered to rounding; for 3 and 4 modes (essentially
 * unique) each generating component is found with its weight.
 */
static void
check_exact(size_t n, const size_t *dims, size_t R)
{
	truth t = make_truth(n, dims, R);
	int max_iter = 3000;
	double tol = 1e-15;
	rs_cp *cp = run(t.w, n, dims, R, max_iter, tol);
	size_t r, q, k;

	CHECK(cp->err < 1e-8, "%s exact rank %zu: err %.3g after %d sweeps", shape(n, dims), R,
	      cp->err, cp->iterations);
	check_result(cp, t.w, n, dims, R, max_iter, tol);
	check_deterministic(cp, t.w, max_iter, tol);
	if (n >= 3) {
		for (r = 0; r < R; r++) {
			/* the estimated component closest to true component r */
			double best = -1;
			size_t at = 0;
			for (q = 0; q < R; q++) {
				double c = 1;
				for (k = 0; k < n; k++) {
					double dot = 0;
					size_t i;
					for (i = 0; i < dims[k]; i++)
						dot += t.f[k][i + r * dims[k]] * cp->factors[k][i + q * dims[k]];
					c *= fabs(dot);
				}
				if (c > best) {
					best = c;
					at = q;
				}
			}
			CHECK(best > 1 - 1e-7, "%s: component %zu found with congruence %.17g",
			      shape(n, dims), r, best);
			CHECK_NEAR(cp->lambda[at], t.lambda[r], 1e-6 * t.lambda[r],
			           "recovered weight");
		}
	}
	rs_cp_free(cp);
	free_truth(&t);
}

/* Rank 1: exact, lambda = ||W||_F, the vectors recovered up to sign. */
static void
check_rank1(size_t n, const size_t *dims)
{
	truth t = make_truth(n, dims, 1);
	rs_cp *cp = run(t.w, n, dims, 1, 100, 1e-10);
	size_t k, i;
	double sign = 1, fro = 0;

	for (i = 0; i < count(n, dims); i++)
		fro += t.w[i] * t.w[i];
	CHECK(cp->err < 1e-14, "%s rank 1: err %.3g", shape(n, dims), cp->err);
	CHECK(cp->converged && cp->iterations <= 2, "%s rank 1: %d sweeps, converged %d",
	      shape(n, dims), cp->iterations, cp->converged);
	CHECK_NEAR(cp->lambda[0], sqrt(fro), 1e-13 * sqrt(fro), "rank-1 lambda = ||W||_F");
	CHECK_NEAR(cp->lambda[0], t.lambda[0], 1e-13 * t.lambda[0], "rank-1 lambda = the weight");
	for (k = 0; k < n; k++) {
		double s = cp->factors[k][0] * t.f[k][0] >= 0 ? 1 : -1;
		if (k + 1 < n)
			sign *= s;
		else
			CHECK(s == sign, "rank 1: the signs multiply out to the original");
		for (i = 0; i < dims[k]; i++)
			CHECK_NEAR(cp->factors[k][i], s * t.f[k][i], 1e-12, "rank-1 vector recovered");
	}
	check_result(cp, t.w, n, dims, 1, 100, 1e-10);
	rs_cp_free(cp);
	free_truth(&t);
}

/*
 * A matrix with a gapped spectrum: CP of rank R is the truncated SVD, so
 * the error is Eckart-Young's and lambda the leading singular values.
 */
static void
check_matrix(size_t m, size_t n, size_t R)
{
	size_t k = m < n ? m : n, i, j, dims[2] = {m, n};
	double *s = rs_xmalloc(k * sizeof *s), *a, *w = rs_xmalloc(m * n * sizeof *w);
	double tail = 0, all = 0, want;
	rs_cp *cp;

	for (i = 0; i < k; i++)
		s[i] = 10.0 * pow(0.45, (double)i);
	a = test_matrix_with_spectrum(m, n, s);
	for (i = 0; i < m; i++)           /* column-major -> row-major */
		for (j = 0; j < n; j++)
			w[i * n + j] = a[i + j * m];
	for (i = k; i-- > 0;) {
		all += s[i] * s[i];
		if (i >= R)
			tail += s[i] * s[i];
	}
	want = sqrt(tail / all);
	cp = run(w, 2, dims, R, 500, 1e-12);
	CHECK_NEAR(cp->err, want, 1e-6 * want, "matrix CP error = Eckart-Young");
	for (i = 0; i < R; i++)
		CHECK_NEAR(cp->lambda[i], s[i], 1e-6 * s[0], "matrix CP lambda = sigma");
	check_result(cp, w, 2, dims, R, 500, 1e-12);
	check_deterministic(cp, w, 500, 1e-12);
	rs_cp_free(cp);
	free(a);
	free(w);
	free(s);
}

/*
 * Exact rank plus noise, rank too small: a real error, and the stopping
 * rule in its three outcomes (converged early, cut off at max_iter, the
 * first sweep never compared).
 */
static void
check_noisy(void)
{
	static const size_t dims[4] = {8, 6, 3, 3};
	truth t = make_truth(4, dims, 4);
	size_t total = count(4, dims), i;
	rs_cp *cp;

	for (i = 0; i < total; i++)
		t.w[i] += 0.3 * test_gaussian();
	cp = run(t.w, 4, dims, 2, 1000, 1e-9);
	CHECK(cp->err > 0.05 && cp->err < 1, "noisy rank 2: err %.3g", cp->err);
	CHECK(cp->converged, "noisy rank 2 converges at tol 1e-9 (%d sweeps)", cp->iterations);
	check_result(cp, t.w, 4, dims, 2, 1000, 1e-9);
	check_deterministic(cp, t.w, 1000, 1e-9);
	rs_cp_free(cp);

	cp = run(t.w, 4, dims, 3, 3, 0.0);
	CHECK(cp->iterations == 3 && !cp->converged, "max_iter 3, tol 0: %d sweeps, converged %d",
	      cp->iterations, cp->converged);
	check_result(cp, t.w, 4, dims, 3, 3, 0.0);
	rs_cp_free(cp);

	cp = run(t.w, 4, dims, 3, 1, 0.5);
	CHECK(cp->iterations == 1 && !cp->converged, "one sweep: no previous error to compare");
	check_result(cp, t.w, 4, dims, 3, 1, 0.5);
	rs_cp_free(cp);

	cp = run(t.w, 4, dims, 3, 100, 0.5);
	CHECK(cp->iterations == 2 && cp->converged, "tol 0.5 stops at sweep 2 (%d)",
	      cp->iterations);
	check_result(cp, t.w, 4, dims, 3, 100, 0.5);
	rs_cp_free(cp);
	free_truth(&t);
}

/*
 * More components than the tensor needs: V is singular (a 4x3 matrix
 * has 3 independent columns), the pseudo-inverse path; still exact.
 */
static void
check_overcomplete(void)
{
	static const size_t dims2[2] = {4, 3}, dims3[3] = {4, 3, 2};
	truth t = make_truth(2, dims2, 3), u = make_truth(3, dims3, 2);
	rs_cp *cp = run(t.w, 2, dims2, 5, 200, 1e-12);

	CHECK(cp->err < 1e-8, "4x3 at rank 5: err %.3g", cp->err);
	check_result(cp, t.w, 2, dims2, 5, 200, 1e-12);
	check_deterministic(cp, t.w, 200, 1e-12);
	rs_cp_free(cp);
	cp = run(u.w, 3, dims3, 4, 300, 1e-12);
	CHECK(cp->err < 1e-6, "4x3x2 of rank 2 at rank 4: err %.3g", cp->err);
	check_result(cp, u.w, 3, dims3, 4, 300, 1e-12);
	rs_cp_free(cp);
	free_truth(&t);
	free_truth(&u);
}

/* Scaling by a power of two scales lambda exactly and nothing else, even
 * where ||W||_F^2 overflows. */
static void
check_scale(void)
{
	static const size_t dims[3] = {5, 4, 3};
	truth t = make_truth(3, dims, 2);
	size_t total = count(3, dims), i, k;
	double *big = rs_xmalloc(total * sizeof *big), scale = ldexp(1.0, 600);
	rs_cp *a, *b;
	int same = 1;

	for (i = 0; i < total; i++)
		t.w[i] += 0.05 * test_gaussian();
	for (i = 0; i < total; i++)
		big[i] = t.w[i] * scale;
	a = run(t.w, 3, dims, 2, 200, 1e-10);
	b = run(big, 3, dims, 2, 200, 1e-10);
	for (i = 0; i < 2; i++)
		same &= b->lambda[i] == a->lambda[i] * scale;
	for (k = 0; k < 3; k++)
		same &= memcmp(a->factors[k], b->factors[k], dims[k] * 2 * sizeof(double)) == 0;
	CHECK(same && a->iterations == b->iterations,
	      "W * 2^600: lambda scaled exactly, factors identical");
	CHECK_NEAR(b->err, a->err, 1e-15, "W * 2^600: same relative error");
	CHECK(isfinite(b->err) && b->err > 0, "W * 2^600: err %g", b->err);
	rs_cp_free(a);
	rs_cp_free(b);
	free(big);
	free_truth(&t);
}

static void
check_zero(void)
{
	static const size_t dims[4] = {3, 2, 3, 2};
	double w[36] = {0}, out[36];
	rs_cp *cp = run(w, 4, dims, 3, 10, 1e-6);
	size_t k, r, i;

	CHECK(cp->err == 0 && cp->iterations == 0 && cp->converged == 1,
	      "zero tensor: err %g, %d sweeps, converged %d", cp->err, cp->iterations,
	      cp->converged);
	for (r = 0; r < 3; r++)
		CHECK(cp->lambda[r] == 0, "zero tensor: lambda[%zu] = %g", r, cp->lambda[r]);
	for (k = 0; k < 4; k++)
		for (r = 0; r < 3; r++) {
			double norm = 0;
			for (i = 0; i < dims[k]; i++)
				norm += cp->factors[k][i + r * dims[k]] * cp->factors[k][i + r * dims[k]];
			CHECK_NEAR(norm, 1.0, 1e-14, "zero tensor: unit columns all the same");
		}
	rs_cp_reconstruct(cp, out);
	for (i = 0; i < 36; i++)
		CHECK(out[i] == 0, "zero tensor reconstructs to 0");
	rs_cp_free(cp);
}

/* A tensor whose layout the test spells out by hand. */
static void
check_layout(void)
{
	/* (o, i, y, x) of a 2x3x2x2 rank-1 kernel: a_o b_i c_y d_x */
	static const double av[2] = {1, 2}, bv[3] = {1, -1, 3}, cv[2] = {2, 1}, dv[2] = {1, 5};
	static const size_t dims[4] = {2, 3, 2, 2};
	double w[24], out[24];
	size_t o, i, y, x;
	rs_cp *cp;

	for (o = 0; o < 2; o++)
		for (i = 0; i < 3; i++)
			for (y = 0; y < 2; y++)
				for (x = 0; x < 2; x++)
					w[((o * 3 + i) * 2 + y) * 2 + x] = av[o] * bv[i] * cv[y] * dv[x];
	cp = run(w, 4, dims, 1, 50, 1e-12);
	CHECK(cp->err < 1e-14, "hand-made conv kernel: err %.3g", cp->err);
	/* ||a|| ||b|| ||c|| ||d|| = sqrt(5 * 11 * 5 * 26) */
	CHECK_NEAR(cp->lambda[0], sqrt(5.0 * 11 * 5 * 26), 1e-12, "rank-1 weight by hand");
	CHECK_NEAR(cp->factors[1][2], 3 / sqrt(11.0), 1e-14, "b normalised, largest positive");
	CHECK_NEAR(cp->factors[3][1], 5 / sqrt(26.0), 1e-14, "d normalised");
	rs_cp_reconstruct(cp, out);
	CHECK_NEAR(out[((1 * 3 + 2) * 2 + 0) * 2 + 1], 2 * 3 * 2 * 5.0, 1e-12,
	           "element (1, 2, 0, 1)");
	rs_cp_free(cp);
}

static void
check_costs(void)
{
	static const size_t conv[4] = {8, 6, 3, 3}, big[4] = {64, 32, 3, 3};
	static const size_t lin[2] = {100, 50}, c1d[3] = {16, 8, 5};
	static const size_t huge[2] = {SIZE_MAX / 2, 2}, wide[2] = {SIZE_MAX, 1};

	CHECK(rs_cp_params(4, conv, 5) == 100, "8x6x3x3 R=5: 5 * 20 = 100");
	CHECK(rs_cp_flops(4, conv, 5) == 200, "8x6x3x3 R=5: 2 * 5 * 20 = 200");
	CHECK(rs_cp_params(4, big, 16) == 1632, "64x32x3x3 R=16: 16 * 102 = 1632");
	CHECK(rs_cp_flops(4, big, 16) == 3264, "64x32x3x3 R=16: 3264 flops");
	CHECK(rs_cp_params(2, lin, 10) == 1500 && rs_cp_flops(2, lin, 10) == 3000,
	      "100x50 R=10: 1500 params, 3000 flops (the low-rank 2 R (m + n))");
	CHECK(rs_cp_params(3, c1d, 4) == 116 && rs_cp_flops(3, c1d, 4) == 232,
	      "16x8x5 R=4: 4 * 29 = 116, 232 flops");
	CHECK(rs_cp_params(4, conv, 0) == 0, "rank 0 costs nothing");
	CHECK(rs_cp_params(1, conv, 5) == 0 && rs_cp_flops(5, conv, 5) == 0,
	      "bad mode counts give 0");
	CHECK(rs_cp_params(2, huge, 3) == SIZE_MAX && rs_cp_flops(2, huge, 2) == SIZE_MAX,
	      "overflow saturates");
	CHECK(rs_cp_params(2, wide, 1) == SIZE_MAX, "sum overflow saturates");
}

static void
expect_einval(const double *w, size_t n, const size_t *dims, size_t R, int max_iter,
              double tol, const char *needle)
{
	rs_error err;

	rs_error_clear(&err);
	CHECK(rs_cp_als(w, n, dims, R, max_iter, tol, &err) == NULL && err.code == RS_EINVAL,
	      "expected RS_EINVAL (%s), got %s", needle, rs_status_name(err.code));
	CHECK_CONTAINS(err.msg, needle);
}

static void
check_bad_input(void)
{
	static const size_t dims[5] = {8, 6, 3, 3, 2}, zero[3] = {4, 0, 3};
	static const size_t over[3] = {SIZE_MAX / 2 + 1, 2, 2}, big[2] = {65536, 65536};
	static const size_t line[2] = {1, INT_MAX};
	double *w = rs_xcalloc(8 * 6 * 3 * 3, sizeof *w);
	rs_error err;

	expect_einval(w, 1, dims, 2, 10, 1e-6, "2 to 4 modes, not 1");
	expect_einval(w, 5, dims, 2, 10, 1e-6, "2 to 4 modes, not 5");
	expect_einval(w, 0, dims, 2, 10, 1e-6, "not 0");
	expect_einval(w, 3, zero, 2, 10, 1e-6, "mode 1 of the 4x0x3 tensor has size 0");
	expect_einval(w, 4, dims, 0, 10, 1e-6, "CP rank 0 for the 8x6x3x3 tensor");
	expect_einval(w, 4, dims, 2, 0, 1e-6, "max_iter 0");
	expect_einval(w, 4, dims, 2, -3, 1e-6, "max_iter -3");
	expect_einval(w, 4, dims, 2, 10, -1e-6, "tolerance -1e-06");
	expect_einval(w, 4, dims, 2, 10, NAN, "tolerance nan");
	expect_einval(w, 4, dims, 2, 10, INFINITY, "tolerance inf");
	expect_einval(w, 3, over, 2, 10, 1e-6, "more elements than size_t");
	expect_einval(w, 2, big, 2, 10, 1e-6, "4294967296 elements, beyond BLAS");
	expect_einval(w, 4, dims, (size_t)INT_MAX + 1, 10, 1e-6, "CP rank 2147483648 is beyond");
	expect_einval(w, 2, line, 3, 10, 1e-6, "work arrays' sizes overflow");
	CHECK(rs_cp_als(w, 4, dims, 0, 10, 1e-6, NULL) == NULL, "NULL error allowed");

	w[((1 * 6 + 2) * 3 + 0) * 3 + 1] = NAN;
	CHECK(rs_cp_als(w, 4, dims, 2, 10, 1e-6, &err) == NULL && err.code == RS_ENUMERIC,
	      "NaN rejected (%s)", rs_status_name(err.code));
	CHECK_CONTAINS(err.msg, "element (1, 2, 0, 1) of the 8x6x3x3 tensor is not finite");
	w[((1 * 6 + 2) * 3 + 0) * 3 + 1] = 0;
	w[8 * 6 * 3 * 3 - 1] = -INFINITY;
	CHECK(rs_cp_als(w, 4, dims, 2, 10, 1e-6, &err) == NULL && err.code == RS_ENUMERIC,
	      "-Inf rejected");
	CHECK_CONTAINS(err.msg, "element (7, 5, 2, 2)");
	free(w);
}

int
main(void)
{
	static const size_t conv[4] = {8, 6, 3, 3}, conv2[4] = {5, 4, 3, 2};
	static const size_t t3[3] = {7, 6, 5}, t3b[3] = {9, 4, 3}, mat[2] = {6, 5};
	static const size_t mat2[2] = {9, 7}, wide[4] = {4, 10, 2, 3};
	/* last mode the largest: the kernel's other contraction order */
	static const size_t rev4[4] = {3, 5, 4, 6}, rev3[3] = {4, 5, 7};
	/* 180000 rows of the Khatri-Rao product at rank 2: more than one
	 * block of 2^18 / R rows, with either mode as the root */
	static const size_t long0[4] = {2, 300, 300, 2}, long3[4] = {2, 300, 300, 3};

	test_seed(20261124);
	check_exact(4, conv, 3);     /* conv-like, rank <= every size */
	check_exact(4, conv, 5);     /* rank above kh and kw */
	check_exact(4, conv2, 2);
	check_exact(4, wide, 4);
	check_exact(3, t3, 4);
	check_exact(3, t3b, 5);
	check_exact(2, mat, 3);
	check_exact(2, mat2, 4);
	check_exact(4, rev4, 3);
	check_exact(3, rev3, 4);
	check_exact(4, long0, 2);
	check_exact(4, long3, 2);
	check_rank1(4, conv);
	check_rank1(3, t3);
	check_rank1(2, mat);
	check_rank1(4, rev4);
	check_matrix(12, 9, 1);
	check_matrix(12, 9, 3);
	check_matrix(8, 15, 4);
	check_noisy();
	check_overcomplete();
	check_scale();
	check_zero();
	check_layout();
	check_costs();
	check_bad_input();
	return test_done("test-cp");
}
