/*
 * test-tucker.c — Tucker-2 against kernels of known multilinear rank,
 * against unfoldings and a truncated HOSVD built independently here (index
 * loops, dgesdd, projectors), against hand-computed layouts and costs,
 * and against HOOI's fixed-point condition.
 */
#include "config.h"

#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/tucker.h"
#include "rankscope/util.h"
#include "testlib.h"

#define IDX(o, i, y, x) ((((o) * c + (i)) * kh + (y)) * kw + (x))

static double *
gaussian(size_t n)
{
	double *v = rs_xmalloc(n * sizeof *v);
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = test_gaussian();
	return v;
}

/* The first r columns of a random orthogonal n x n matrix. */
static double *
orth_cols(size_t n, size_t r)
{
	double *q = test_orthogonal(n), *u = rs_xmalloc(n * r * sizeof *u);

	memcpy(u, q, n * r * sizeof *u);
	free(q);
	return u;
}

/* W = G x_1 U x_2 V straight from the definition, element by element:
 * the test's own reconstruction. */
static double *
from_factors(size_t f, size_t c, size_t kh, size_t kw, size_t ro, size_t ri,
             const double *u, const double *v, const double *g)
{
	double *w = rs_xcalloc(f * c * kh * kw, sizeof *w);
	size_t o, i, y, x, j, l;

	for (o = 0; o < f; o++)
		for (i = 0; i < c; i++)
			for (y = 0; y < kh; y++)
				for (x = 0; x < kw; x++) {
					double sum = 0;
					for (j = 0; j < ro; j++)
						for (l = 0; l < ri; l++)
							sum += u[o + j * f] * v[i + l * c] *
							       g[((j * ri + l) * kh + y) * kw + x];
					w[IDX(o, i, y, x)] = sum;
				}
	return w;
}

static double
norm2(const double *a, size_t n)
{
	double s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += a[i] * a[i];
	return s;
}

static double
rel_err(const double *w, const double *what, size_t n)
{
	double d = 0, s = norm2(w, n);
	size_t i;

	for (i = 0; i < n; i++)
		d += (w[i] - what[i]) * (w[i] - what[i]);
	return s > 0 ? sqrt(d / s) : 0.0;
}

/* Mode-1 unfolding f x (c kh kw), column-major, by the definition. */
static double *
ref_unfold1(const double *w, size_t f, size_t c, size_t kh, size_t kw)
{
	double *a = rs_xmalloc(f * c * kh * kw * sizeof *a);
	size_t o, i, y, x;

	for (o = 0; o < f; o++)
		for (i = 0; i < c; i++)
			for (y = 0; y < kh; y++)
				for (x = 0; x < kw; x++)
					a[o + f * ((i * kh + y) * kw + x)] = w[IDX(o, i, y, x)];
	return a;
}

/* Mode-2 unfolding c x (f kh kw), column-major, by the definition. */
static double *
ref_unfold2(const double *w, size_t f, size_t c, size_t kh, size_t kw)
{
	double *a = rs_xmalloc(f * c * kh * kw * sizeof *a);
	size_t o, i, y, x;

	for (o = 0; o < f; o++)
		for (i = 0; i < c; i++)
			for (y = 0; y < kh; y++)
				for (x = 0; x < kw; x++)
					a[i + c * ((o * kh + y) * kw + x)] = w[IDX(o, i, y, x)];
	return a;
}

/* Singular values (k = min(m, n)) and, when u is not NULL, the thin U
 * (m x k) of the m x n a (not modified). */
static double *
ref_svd(const double *a, size_t m, size_t n, double *u)
{
	size_t k = m < n ? m : n;
	double *copy = rs_xmalloc(m * n * sizeof *copy), *s = rs_xmalloc(k * sizeof *s);
	double *vt = rs_xmalloc(k * n * sizeof *vt);

	memcpy(copy, a, m * n * sizeof *copy);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, u ? 'S' : 'N', (int)m, (int)n, copy, (int)m,
	                   s, u ? u : vt, (int)m, vt, (int)k) != 0)
		abort();
	free(copy);
	free(vt);
	return s;
}

/* P = U U^T (m x m) for the first r columns of u (m x ?, ld m). */
static double *
projector(const double *u, size_t m, size_t r)
{
	double *p = rs_xcalloc(m * m, sizeof *p);
	size_t i, j, t;

	for (j = 0; j < m; j++)
		for (i = 0; i < m; i++)
			for (t = 0; t < r; t++)
				p[i + j * m] += u[i + t * m] * u[j + t * m];
	return p;
}

static double
max_diff(const double *a, const double *b, size_t n)
{
	double d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (fabs(a[i] - b[i]) > d)
			d = fabs(a[i] - b[i]);
	return d;
}

/*
 * The truncated HOSVD's W_hat = W x_1 P_out x_2 P_in from this file's own
 * unfoldings and dgesdd: P onto the leading min(r, k) left singular
 * vectors (a rank beyond k changes nothing: P is then the projector onto
 * the whole column space, which W already lies in).
 */
static double *
ref_hosvd(const double *w, size_t f, size_t c, size_t kh, size_t kw, size_t ro, size_t ri)
{
	size_t s = kh * kw, n = f * c * s, k1 = f < c * s ? f : c * s, k2 = c < f * s ? c : f * s;
	double *a1 = ref_unfold1(w, f, c, kh, kw), *a2 = ref_unfold2(w, f, c, kh, kw);
	double *u1 = rs_xmalloc(f * k1 * sizeof *u1), *u2 = rs_xmalloc(c * k2 * sizeof *u2);
	double *p1, *p2, *x = rs_xcalloc(n, sizeof *x), *what = rs_xcalloc(n, sizeof *what);
	size_t o, o2, i, i2, p;

	free(ref_svd(a1, f, c * s, u1));
	free(ref_svd(a2, c, f * s, u2));
	p1 = projector(u1, f, ro < k1 ? ro : k1);
	p2 = projector(u2, c, ri < k2 ? ri : k2);
	for (o2 = 0; o2 < f; o2++)
		for (o = 0; o < f; o++)
			for (i = 0; i < c; i++)
				for (p = 0; p < s; p++)
					x[(o2 * c + i) * s + p] += p1[o2 + o * f] * w[(o * c + i) * s + p];
	for (o = 0; o < f; o++)
		for (i2 = 0; i2 < c; i2++)
			for (i = 0; i < c; i++)
				for (p = 0; p < s; p++)
					what[(o * c + i2) * s + p] += p2[i2 + i * c] * x[(o * c + i) * s + p];
	free(a1); free(a2); free(u1); free(u2); free(p1); free(p2); free(x);
	return what;
}

static rs_tucker *
run(const double *w, size_t f, size_t c, size_t kh, size_t kw, size_t ro, size_t ri,
    int max_iter, double tol)
{
	rs_error err;
	rs_tucker *t;

	rs_error_clear(&err);
	t = rs_tucker_hooi(w, f, c, kh, kw, ro, ri, max_iter, tol, &err);
	CHECK(t != NULL, "%zux%zux%zux%zu (%zu, %zu): %s", f, c, kh, kw, ro, ri, err.msg);
	if (t == NULL)
		abort();
	return t;
}

static rs_tucker_modes *
modes(const double *w, size_t f, size_t c, size_t kh, size_t kw)
{
	rs_error err;
	rs_tucker_modes *m;

	rs_error_clear(&err);
	m = rs_tucker_modes_new(w, f, c, kh, kw, &err);
	CHECK(m != NULL, "modes of %zux%zux%zux%zu: %s", f, c, kh, kw, err.msg);
	if (m == NULL)
		abort();
	return m;
}

/* Orthonormal columns, and each column's largest-magnitude entry positive. */
static void
check_factor(const double *u, size_t m, size_t r, const char *what)
{
	double worst = 0;
	size_t i, j, t, best;

	for (i = 0; i < r; i++)
		for (j = 0; j < r; j++) {
			double d = 0;
			for (t = 0; t < m; t++)
				d += u[t + i * m] * u[t + j * m];
			d -= i == j ? 1.0 : 0.0;
			if (fabs(d) > worst)
				worst = fabs(d);
		}
	CHECK(worst <= 1e-12, "%s (%zux%zu): |U^T U - I| = %.3g", what, m, r, worst);
	for (j = 0; j < r; j++) {
		for (best = 0, i = 1; i < m; i++)
			if (fabs(u[i + j * m]) > fabs(u[best + j * m]))
				best = i;
		CHECK(u[best + j * m] > 0, "%s column %zu: largest entry %g is not positive",
		      what, j, u[best + j * m]);
	}
}

/* Shape fields, factors, and err against this file's reconstruction. */
static void
check_result(const rs_tucker *t, const double *w, size_t f, size_t c, size_t kh,
             size_t kw, size_t ro, size_t ri)
{
	size_t n = f * c * kh * kw;
	double *what = rs_xmalloc(n * sizeof *what), *mine;
	double g2 = norm2(t->core, ro * ri * kh * kw), w2 = norm2(w, n);

	CHECK(t->f == f && t->c == c && t->kh == kh && t->kw == kw && t->r_out == ro &&
	      t->r_in == ri, "shape fields of %zux%zux%zux%zu (%zu, %zu)", f, c, kh, kw,
	      ro, ri);
	check_factor(t->u_out, f, ro, "U_out");
	check_factor(t->u_in, c, ri, "U_in");
	rs_tucker_reconstruct(t, what);
	CHECK_NEAR(t->err, rel_err(w, what, n), 1e-13, "err vs error of rs_tucker_reconstruct");
	mine = from_factors(f, c, kh, kw, ro, ri, t->u_out, t->u_in, t->core);
	CHECK(max_diff(mine, what, n) <= 1e-12 * sqrt(w2 + 1),
	      "rs_tucker_reconstruct vs the definition: %.3g", max_diff(mine, what, n));
	/* orthonormal factors: err^2 = 1 - ||G||^2 / ||W||^2 (loose: it cancels) */
	if (w2 > 0)
		CHECK_NEAR(t->err * t->err, 1.0 - g2 / w2, 1e-12, "err^2 vs 1 - ||G||^2/||W||^2");
	free(what);
	free(mine);
}

/* ---- (1) exact multilinear rank ---------------------------------------- */

static void
check_exact(size_t f, size_t c, size_t kh, size_t kw, size_t ro, size_t ri)
{
	size_t s = kh * kw, i;
	double *u = orth_cols(f, ro), *v = orth_cols(c, ri), *g = gaussian(ro * ri * s);
	double *w = from_factors(f, c, kh, kw, ro, ri, u, v, g);
	rs_tucker_modes *m = modes(w, f, c, kh, kw);
	rs_tucker *t = run(w, f, c, kh, kw, ro, ri, 20, 1e-10);

	CHECK(t->err_hosvd < 1e-10 && t->err < 1e-10,
	      "exact rank (%zu, %zu) of %zux%zux%zux%zu: err_hosvd %.3g err %.3g",
	      ro, ri, f, c, kh, kw, t->err_hosvd, t->err);
	CHECK(rs_tucker_bound(m, ro, ri) < 1e-10, "exact rank: bound %.3g",
	      rs_tucker_bound(m, ro, ri));
	CHECK(rs_tucker_bound(m, ro, ri) >= t->err_hosvd - 1e-12, "exact rank: bound holds");
	for (i = ro; i < m->k_out; i++)
		CHECK(m->sigma_out[i] < 1e-12 * m->sigma_out[0], "sigma_out_%zu = %.3g beyond rank",
		      i + 1, m->sigma_out[i]);
	check_result(t, w, f, c, kh, kw, ro, ri);
	/* The subspaces themselves are recovered when the other mode does not
	 * cap the rank (r_out <= r_in s and r_in <= r_out s). */
	if (ro <= ri * s && ri <= ro * s) {
		double *p = projector(u, f, ro), *q = projector(t->u_out, f, ro);
		CHECK(max_diff(p, q, f * f) < 1e-10, "U_out spans the true output subspace");
		free(p); free(q);
		p = projector(v, c, ri);
		q = projector(t->u_in, c, ri);
		CHECK(max_diff(p, q, c * c) < 1e-10, "U_in spans the true input subspace");
		free(p); free(q);
		if (ro < m->k_out)
			CHECK(m->sigma_out[ro - 1] > 1e-3 * m->sigma_out[0],
			      "sigma_out has exactly r_out values");
	}
	rs_tucker_free(t);
	rs_tucker_modes_free(m);
	free(u); free(v); free(g); free(w);
}

/* ---- (2) mode spectra -------------------------------------------------- */

static void
check_spectra(size_t f, size_t c, size_t kh, size_t kw)
{
	size_t s = kh * kw, n = f * c * s, k1 = f < c * s ? f : c * s, k2 = c < f * s ? c : f * s;
	size_t i, r, ri;
	double *w = gaussian(n), *a1, *a2, *s1, *s2, fro2 = 0;
	rs_tucker_modes *m;

	/* uneven channel scales so the spectra decay */
	for (i = 0; i < n; i++)
		w[i] *= 1.0 / (1.0 + (double)(i / (c * s))) + 0.3 / (1.0 + (double)(i / s % c));
	m = modes(w, f, c, kh, kw);
	a1 = ref_unfold1(w, f, c, kh, kw);
	a2 = ref_unfold2(w, f, c, kh, kw);
	s1 = ref_svd(a1, f, c * s, NULL);
	s2 = ref_svd(a2, c, f * s, NULL);
	CHECK(m->f == f && m->c == c && m->kh == kh && m->kw == kw, "modes shape fields");
	CHECK(m->k_out == k1 && m->k_in == k2, "%zux%zux%zux%zu: k_out %zu (want %zu), k_in %zu "
	      "(want %zu)", f, c, kh, kw, m->k_out, k1, m->k_in, k2);
	for (i = 0; i < k1; i++)
		CHECK_NEAR(m->sigma_out[i], s1[i], 1e-13 * s1[0], "sigma_out vs SVD of the mode-1 unfolding");
	for (i = 0; i < k2; i++)
		CHECK_NEAR(m->sigma_in[i], s2[i], 1e-13 * s2[0], "sigma_in vs SVD of the mode-2 unfolding");
	for (i = 0; i < n; i++)
		fro2 += w[i] * w[i];
	CHECK_NEAR(m->fro2, fro2, 1e-14 * fro2, "fro2 = sum of squares");
	for (r = 0; r <= k1; r++) {
		double t = 0;
		for (i = r; i < k1; i++)
			t += s1[i] * s1[i];
		CHECK_NEAR(m->tail_out[r], t, 1e-13 * fro2, "tail_out by hand");
	}
	for (r = 0; r <= k2; r++) {
		double t = 0;
		for (i = r; i < k2; i++)
			t += s2[i] * s2[i];
		CHECK_NEAR(m->tail_in[r], t, 1e-13 * fro2, "tail_in by hand");
	}
	CHECK(m->tail_out[k1] == 0 && m->tail_in[k2] == 0, "tails end at 0");
	/* bound by hand, ranks past k clamped */
	for (r = 0; r <= k1 + 2; r++)
		for (ri = 0; ri <= k2 + 2; ri++) {
			double t = 0;
			for (i = r; i < k1; i++)
				t += s1[i] * s1[i];
			for (i = ri; i < k2; i++)
				t += s2[i] * s2[i];
			CHECK_NEAR(rs_tucker_bound(m, r, ri), sqrt(t / fro2), 1e-13,
			           "bound = sqrt(tail_out + tail_in) / ||W||");
		}
	rs_tucker_modes_free(m);
	free(w); free(a1); free(a2); free(s1); free(s2);
}

static void
check_zero_kernel(void)
{
	double w[2 * 3 * 2 * 2] = {0};
	rs_tucker_modes *m = modes(w, 2, 3, 2, 2);
	rs_tucker *t = run(w, 2, 3, 2, 2, 1, 2, 10, 1e-6);
	size_t i;

	CHECK(m->fro2 == 0 && m->tail_out[0] == 0 && m->tail_in[0] == 0, "zero kernel: no energy");
	CHECK(rs_tucker_bound(m, 0, 0) == 0 && rs_tucker_bound(m, 1, 1) == 0,
	      "zero kernel: bound 0");
	CHECK(t->err == 0 && t->err_hosvd == 0 && t->iterations == 0,
	      "zero kernel: errors 0 and no sweeps (%g %g %d)", t->err, t->err_hosvd,
	      t->iterations);
	for (i = 0; i < 1 * 2 * 4; i++)
		CHECK(t->core[i] == 0, "zero kernel: zero core");
	check_factor(t->u_out, 2, 1, "zero kernel U_out");
	check_factor(t->u_in, 3, 2, "zero kernel U_in");
	rs_tucker_free(t);
	rs_tucker_modes_free(m);
}

/* ---- (3) random kernels: bound, HOSVD, HOOI, measured errors ------------ */

static size_t
pick(size_t lo, size_t hi)
{
	return lo + (size_t)(test_uniform() * (double)(hi - lo + 1));
}

static void
check_random(int count)
{
	int trial;

	for (trial = 0; trial < count; trial++) {
		size_t f = pick(1, 9), c = pick(1, 9), kh = pick(1, 3), kw = pick(1, 3);
		size_t ro = pick(1, f), ri = pick(1, c), n = f * c * kh * kw, i;
		double *w = gaussian(n), *ref, *what = rs_xmalloc(n * sizeof *what), bound;
		rs_tucker_modes *m;
		rs_tucker *t0, *t, *again;

		for (i = 0; i < n; i++)  /* decaying output channels */
			w[i] *= pow(0.7, (double)(i / (c * kh * kw)));
		m = modes(w, f, c, kh, kw);
		bound = rs_tucker_bound(m, ro, ri);
		t0 = run(w, f, c, kh, kw, ro, ri, 0, 1e-6);
		t = run(w, f, c, kh, kw, ro, ri, 100, 1e-9);
		CHECK(t0->iterations == 0 && t0->err == t0->err_hosvd,
		      "max_iter 0 is the truncated HOSVD");
		CHECK(t->err_hosvd == t0->err_hosvd, "same start with and without sweeps");
		CHECK(t->err_hosvd <= bound + 1e-12,
		      "%zux%zux%zux%zu (%zu, %zu): err_hosvd %.17g > bound %.17g", f, c, kh, kw,
		      ro, ri, t->err_hosvd, bound);
		CHECK(t->err <= t->err_hosvd + 1e-12,
		      "%zux%zux%zux%zu (%zu, %zu): HOOI %.17g worse than HOSVD %.17g", f, c, kh,
		      kw, ro, ri, t->err, t->err_hosvd);
		CHECK(t->err <= t->err_hosvd, "HOOI never worse than its start, exactly");
		CHECK(t->iterations >= 0 && t->iterations <= 100, "iterations %d", t->iterations);
		check_result(t0, w, f, c, kh, kw, ro, ri);
		check_result(t, w, f, c, kh, kw, ro, ri);
		/* the HOSVD against this file's own projectors */
		ref = ref_hosvd(w, f, c, kh, kw, ro, ri);
		CHECK_NEAR(t0->err_hosvd, rel_err(w, ref, n), 1e-10,
		           "err_hosvd vs independent truncated HOSVD");
		rs_tucker_reconstruct(t0, what);
		CHECK(max_diff(what, ref, n) <= 1e-9 * sqrt(m->fro2),
		      "%zux%zux%zux%zu (%zu, %zu): HOSVD W_hat vs independent: %.3g", f, c, kh,
		      kw, ro, ri, max_diff(what, ref, n));
		/* reproducible to the bit */
		again = run(w, f, c, kh, kw, ro, ri, 100, 1e-9);
		CHECK(again->iterations == t->iterations && again->err == t->err &&
		      memcmp(again->u_out, t->u_out, f * ro * sizeof(double)) == 0 &&
		      memcmp(again->u_in, t->u_in, c * ri * sizeof(double)) == 0 &&
		      memcmp(again->core, t->core, ro * ri * kh * kw * sizeof(double)) == 0,
		      "a second run gives identical output");
		rs_tucker_free(again);
		rs_tucker_free(t0);
		rs_tucker_free(t);
		rs_tucker_modes_free(m);
		free(ref); free(what); free(w);
	}
}

/* Sweep by sweep: max_iter = i gives the i-sweep prefix of one run, with
 * non-increasing errors; tol = 0 only stops when the error stops falling. */
static void
check_monotone(void)
{
	size_t f = 8, c = 7, kh = 3, kw = 2, n = f * c * kh * kw;
	double *w = gaussian(n), prev = INFINITY;
	rs_tucker *full = run(w, f, c, kh, kw, 3, 3, 30, 0.0);
	int i;

	CHECK(full->err < full->err_hosvd - 1e-6,
	      "HOOI improves a random kernel: %.17g vs HOSVD %.17g", full->err, full->err_hosvd);
	for (i = 0; i <= 6; i++) {
		rs_tucker *t = run(w, f, c, kh, kw, 3, 3, i, 0.0);
		CHECK(t->iterations == i, "max_iter %d, tol 0: %d sweeps", i, t->iterations);
		CHECK(t->err <= prev, "sweep %d: error %.17g rose from %.17g", i, t->err, prev);
		prev = t->err;
		rs_tucker_free(t);
	}
	CHECK(full->err <= prev, "30 sweeps no worse than 6");
	rs_tucker_free(full);
	free(w);
}

/* The stopping rule, exactly: with e_i the error after i sweeps (from
 * max_iter = i runs), a run with tolerance tol stops after the first i
 * with e_{i-1} - e_i <= tol e_{i-1}. */
static void
check_stopping_rule(void)
{
	size_t f = 7, c = 6, kh = 2, kw = 2, n = f * c * kh * kw;
	static const double tols[] = {0.5, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5};
	double *w = gaussian(n), e[41];
	size_t ti;
	int i;

	for (i = 0; i <= 40; i++) {
		rs_tucker *t = run(w, f, c, kh, kw, 2, 2, i, 0.0);
		e[i] = t->err;
		rs_tucker_free(t);
	}
	for (ti = 0; ti < sizeof tols / sizeof *tols; ti++) {
		rs_tucker *t = run(w, f, c, kh, kw, 2, 2, 40, tols[ti]);
		for (i = 1; i < 40; i++)
			if (e[i - 1] - e[i] <= tols[ti] * e[i - 1])
				break;
		CHECK(t->iterations == i, "tol %g: %d sweeps, the rule says %d", tols[ti],
		      t->iterations, i);
		CHECK(t->err == e[i], "tol %g: error after %d sweeps", tols[ti], i);
		rs_tucker_free(t);
	}
	{
		rs_tucker *t = run(w, f, c, kh, kw, 2, 2, 3, 0.9);
		CHECK(t->iterations == 1, "tol 0.9 stops after one sweep (%d)", t->iterations);
		rs_tucker_free(t);
	}
	CHECK(e[5] - e[6] > 1e-5 * e[5], "the test kernel converges slowly enough to "
	      "tell the tolerances apart (%.3g)", (e[5] - e[6]) / e[5]);
	free(w);
}

/* ---- (4) layout, signs, orthonormality in degenerate ranks ------------- */

static void
check_layout(void)
{
	/* hand-made: f 2, c 3, kh 1, kw 2, ranks (2, 1);
	 * W_hat[o, i, 0, x] = u_in[i] (U_out[o, 0] G[0, 0, 0, x] + U_out[o, 1] G[1, 0, 0, x]):
	 * o = 0: x = 0: 1*1 + 2*0.5 = 2,  x = 1: 1*(-1) + 2*2 = 3
	 * o = 1: x = 0: 3*1 + 4*0.5 = 5,  x = 1: 3*(-1) + 4*2 = 5 */
	double u_out[] = {1, 3, 2, 4}, u_in[] = {1, 10, 100}, core[] = {1, -1, 0.5, 2};
	static const double want[] = {2, 3, 20, 30, 200, 300, 5, 5, 50, 50, 500, 500};
	double out[12];
	rs_tucker hand = {2, 3, 1, 2, 2, 1, u_out, u_in, core, 0, 0, 0};
	size_t i;

	rs_tucker_reconstruct(&hand, out);
	for (i = 0; i < 12; i++)
		CHECK(out[i] == want[i], "hand-made reconstruct element %zu: %g, want %g", i,
		      out[i], want[i]);
}

/* a (x) b (x) K: rank (1, 1) with U_out = +-a, U_in = +-b and the core
 * +-K in (kh, kw) row-major order; the signs follow the rule. */
static void
check_rank_one(double sign_a, double sign_b)
{
	const size_t f = 3, c = 2, kh = 2, kw = 3;
	double a[3] = {0.6 * sign_a, 0.8 * sign_a, 0}, b[2] = {-0.28 * sign_b, 0.96 * sign_b};
	double k[6] = {1, 2, 3, 4, 5, 6}, w[36];
	size_t o, i, y, x;
	rs_tucker *t;

	for (o = 0; o < f; o++)
		for (i = 0; i < c; i++)
			for (y = 0; y < kh; y++)
				for (x = 0; x < kw; x++)
					w[IDX(o, i, y, x)] = a[o] * b[i] * k[y * kw + x];
	t = run(w, f, c, kh, kw, 1, 1, 10, 1e-9);
	CHECK(t->err < 1e-14, "rank one: err %.3g", t->err);
	for (o = 0; o < f; o++)
		CHECK_NEAR(t->u_out[o], a[o] * sign_a, 1e-14, "rank one: U_out = a, sign fixed");
	for (i = 0; i < c; i++)
		CHECK_NEAR(t->u_in[i], b[i] * sign_b, 1e-14, "rank one: U_in = b, sign fixed");
	for (i = 0; i < 6; i++)
		CHECK_NEAR(t->core[i], k[i] * sign_a * sign_b, 1e-13,
		           "rank one: core = K in (kh, kw) order");
	rs_tucker_free(t);
}

/* W[o, i, y, x] = a[o] M[i, y, x]: output rank 1, input rank full.  A
 * mode mix-up shows as the wrong one being exact. */
static void
check_modes_not_swapped(void)
{
	const size_t f = 6, c = 4, kh = 2, kw = 2, s = 4;
	double *a = gaussian(f), *mm = gaussian(c * s), w[6 * 4 * 4];
	rs_tucker_modes *m;
	rs_tucker *t;
	size_t o, q;

	for (o = 0; o < f; o++)
		for (q = 0; q < c * s; q++)
			w[o * c * s + q] = a[o] * mm[q];
	m = modes(w, f, c, kh, kw);
	CHECK(m->sigma_out[1] < 1e-12 * m->sigma_out[0], "output mode has rank 1");
	CHECK(m->sigma_in[c - 1] > 1e-3 * m->sigma_in[0], "input mode has full rank");
	CHECK(rs_tucker_bound(m, 1, c) < 1e-12, "bound (1, c) ~ 0");
	CHECK(rs_tucker_bound(m, f, 1) > 0.1, "bound (f, 1) > 0");
	t = run(w, f, c, kh, kw, 1, c, 10, 1e-9);
	CHECK(t->err < 1e-13, "(1, c) exact: %.3g", t->err);
	rs_tucker_free(t);
	t = run(w, f, c, kh, kw, f, 1, 10, 1e-9);
	CHECK(t->err > 0.1, "(f, 1) not exact: %.3g", t->err);
	rs_tucker_free(t);
	rs_tucker_modes_free(m);
	free(a); free(mm);
}

/* Linear layers (kh = kw = 1): Tucker-2 at (r_out, r_in) is U_out G U_in^T,
 * whose best error is Eckart-Young's at min(r_out, r_in), and HOSVD
 * reaches it.  Ranks past the unfoldings' rank keep the requested shape
 * with orthonormal completions. */
static void
check_linear(size_t f, size_t c, size_t ro, size_t ri)
{
	size_t n = f * c, r = ro < ri ? ro : ri, k = f < c ? f : c, i;
	double *w = gaussian(n), *a1, *sv, tail = 0, tot = 0;
	rs_tucker *t;

	a1 = ref_unfold1(w, f, c, 1, 1);
	sv = ref_svd(a1, f, c, NULL);
	for (i = 0; i < k; i++) {
		tot += sv[i] * sv[i];
		if (i >= r)
			tail += sv[i] * sv[i];
	}
	t = run(w, f, c, 1, 1, ro, ri, 20, 1e-12);
	CHECK_NEAR(t->err_hosvd, sqrt(tail / tot), 1e-12,
	           "linear layer: HOSVD error = Eckart-Young at min(r_out, r_in)");
	CHECK_NEAR(t->err, sqrt(tail / tot), 1e-12, "linear layer: HOOI error = Eckart-Young");
	check_result(t, w, f, c, 1, 1, ro, ri);
	rs_tucker_free(t);
	free(w); free(a1); free(sv);
}

/* ---- (5) HOOI's fixed point on a noisy low-rank kernel ----------------- */

static void
check_fixed_point(void)
{
	const size_t f = 12, c = 10, kh = 3, kw = 3, s = 9, ro = 4, ri = 3, n = f * c * s;
	double *u = orth_cols(f, ro), *v = orth_cols(c, ri), *g = gaussian(ro * ri * s);
	double *w = from_factors(f, c, kh, kw, ro, ri, u, v, g), *noise = gaussian(n);
	double *y, *a, *uu, *p, *q, noise_rel, scale = 3e-2 * sqrt(norm2(w, n) / (double)n);
	size_t o, i, l, pp, j;
	rs_tucker *t;

	for (i = 0; i < n; i++)
		w[i] += scale * noise[i];
	noise_rel = scale * sqrt(norm2(noise, n) / norm2(w, n));
	t = run(w, f, c, kh, kw, ro, ri, 200, 1e-14);
	check_result(t, w, f, c, kh, kw, ro, ri);
	CHECK(t->iterations < 200, "HOOI converged in %d sweeps", t->iterations);
	CHECK(t->err <= t->err_hosvd, "noisy: HOOI %.17g vs HOSVD %.17g", t->err, t->err_hosvd);
	/* the true factors are feasible with error = the noise's; the fit
	 * absorbs only the part of the noise inside its subspaces */
	CHECK(t->err <= noise_rel && t->err >= 0.7 * noise_rel,
	      "noisy: err %.6g vs noise %.6g", t->err, noise_rel);

	/* U_out spans the leading r_out left singular vectors of the mode-1
	 * unfolding of W x_2 U_in^T, computed here by loops */
	y = rs_xcalloc(f * ri * s, sizeof *y);
	for (o = 0; o < f; o++)
		for (l = 0; l < ri; l++)
			for (i = 0; i < c; i++)
				for (pp = 0; pp < s; pp++)
					y[o + f * (l * s + pp)] += t->u_in[i + l * c] *
					                            w[(o * c + i) * s + pp];
	uu = rs_xmalloc(f * f * sizeof *uu);
	free(ref_svd(y, f, ri * s, uu));
	p = projector(uu, f, ro);
	q = projector(t->u_out, f, ro);
	CHECK(max_diff(p, q, f * f) < 1e-8, "fixed point: U_out %.3g", max_diff(p, q, f * f));
	free(y); free(uu); free(p); free(q);
	/* and U_in those of the mode-2 unfolding of W x_1 U_out^T */
	a = rs_xcalloc(c * ro * s, sizeof *a);
	for (j = 0; j < ro; j++)
		for (o = 0; o < f; o++)
			for (i = 0; i < c; i++)
				for (pp = 0; pp < s; pp++)
					a[i + c * (j * s + pp)] += t->u_out[o + j * f] *
					                            w[(o * c + i) * s + pp];
	uu = rs_xmalloc(c * c * sizeof *uu);
	free(ref_svd(a, c, ro * s, uu));
	p = projector(uu, c, ri);
	q = projector(t->u_in, c, ri);
	CHECK(max_diff(p, q, c * c) < 1e-8, "fixed point: U_in %.3g", max_diff(p, q, c * c));
	free(a); free(uu); free(p); free(q);
	rs_tucker_free(t);
	free(u); free(v); free(g); free(w); free(noise);
}

/* ---- (6) costs --------------------------------------------------------- */

static void
check_costs(void)
{
	/* 32*8 + 8*16*9 + 16*64 = 256 + 1152 + 1024 */
	CHECK(rs_tucker_params(64, 32, 3, 3, 16, 8) == 2432, "64x32x3x3 (16, 8): %zu",
	      rs_tucker_params(64, 32, 3, 3, 16, 8));
	CHECK(rs_tucker_flops(64, 32, 3, 3, 16, 8) == 4864, "flops 2 x 2432");
	/* 128*32 + 32*64*25 + 64*256 = 4096 + 51200 + 16384 */
	CHECK(rs_tucker_params(256, 128, 5, 5, 64, 32) == 71680, "256x128x5x5 (64, 32)");
	CHECK(rs_tucker_flops(256, 128, 5, 5, 64, 32) == 143360, "flops 2 x 71680");
	/* 7*2 + 2*3*3 + 3*5 = 14 + 18 + 15 (kh != kw) */
	CHECK(rs_tucker_params(5, 7, 3, 1, 3, 2) == 47, "5x7x3x1 (3, 2): %zu",
	      rs_tucker_params(5, 7, 3, 1, 3, 2));
	CHECK(rs_tucker_params(1, 1, 1, 1, 1, 1) == 3, "1x1x1x1: three 1-weight convs");
	/* full ranks cost more than dense: 512*512 * 2 + 512*512*9 vs 512*512*9 */
	CHECK(rs_tucker_params(512, 512, 3, 3, 512, 512) == 2883584, "512x512x3x3 full ranks");
	CHECK(rs_tucker_params(SIZE_MAX / 2, 4, 3, 3, SIZE_MAX / 4, 2) == SIZE_MAX &&
	      rs_tucker_flops(SIZE_MAX / 2, 1, 1, 1, 1, 1) == SIZE_MAX, "costs saturate");
}

/* ---- (7) invalid arguments --------------------------------------------- */

static void
expect_fail(rs_tucker *t, const rs_error *err, rs_status code, const char *needle,
            const char *what)
{
	CHECK(t == NULL && err->code == code, "%s: refused with %s (got %s)", what,
	      rs_status_name(code), rs_status_name(err->code));
	CHECK_CONTAINS(err->msg, needle);
	rs_tucker_free(t);
}

static void
check_invalid(void)
{
	const size_t c = 3, kh = 2, kw = 2;    /* for IDX; f = 4 */
	double w[4 * 3 * 2 * 2];
	rs_error err;
	size_t i;

	for (i = 0; i < sizeof w / sizeof *w; i++)
		w[i] = (double)i - 7.0;
#define TRY(call) (rs_error_clear(&err), (call))
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 0, 1, 10, 1e-6, &err)), &err, RS_EINVAL,
	            "output rank 0 is outside 1..4", "r_out 0");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 5, 1, 10, 1e-6, &err)), &err, RS_EINVAL,
	            "output rank 5 is outside 1..4 (the output channels)", "r_out f + 1");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 1, 0, 10, 1e-6, &err)), &err, RS_EINVAL,
	            "input rank 0 is outside 1..3", "r_in 0");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 1, 4, 10, 1e-6, &err)), &err, RS_EINVAL,
	            "input rank 4 is outside 1..3 (the input channels)", "r_in c + 1");
	CHECK_CONTAINS(err.msg, "4x3x2x2 kernel");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 1, 1, -1, 1e-6, &err)), &err, RS_EINVAL,
	            "max_iter -1", "negative max_iter");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 1, 1, 5, -1e-3, &err)), &err, RS_EINVAL,
	            "tolerance", "negative tolerance");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 1, 1, 5, NAN, &err)), &err, RS_EINVAL,
	            "tolerance", "NaN tolerance");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 0, 2, 2, 1, 1, 5, 1e-6, &err)), &err, RS_EINVAL,
	            "4x0x2x2 kernel is empty", "c = 0");
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 0, 1, 1, 5, 1e-6, &err)), &err, RS_EINVAL,
	            "is empty", "kw = 0");
	expect_fail(TRY(rs_tucker_hooi(NULL, 4, 3, 2, 2, 1, 1, 5, 1e-6, &err)), &err,
	            RS_EINVAL, "no kernel", "NULL kernel");
	expect_fail(TRY(rs_tucker_hooi(w, SIZE_MAX / 2, 4, 3, 3, 1, 1, 5, 1e-6, &err)), &err,
	            RS_EINVAL, "too many elements", "overflowing sizes");
	expect_fail(TRY(rs_tucker_hooi(w, 1u << 20, 1u << 12, 1, 1, 1, 1, 5, 1e-6, &err)),
	            &err, RS_EINVAL, "32-bit index range", "beyond LAPACK");
	w[IDX(2, 1, 0, 1)] = NAN;
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 2, 2, 5, 1e-6, &err)), &err,
	            RS_ENUMERIC, "element (2, 1, 0, 1) of the 4x3x2x2 kernel is not finite",
	            "NaN element");
	w[IDX(2, 1, 0, 1)] = 0;
	w[IDX(3, 2, 1, 0)] = -INFINITY;
	expect_fail(TRY(rs_tucker_hooi(w, 4, 3, 2, 2, 2, 2, 5, 1e-6, &err)), &err,
	            RS_ENUMERIC, "element (3, 2, 1, 0)", "infinite element");

	/* the spectra refuse the same kernels */
	CHECK(TRY(rs_tucker_modes_new(w, 4, 3, 2, 2, &err)) == NULL && err.code == RS_ENUMERIC,
	      "modes: infinite element refused");
	CHECK_CONTAINS(err.msg, "element (3, 2, 1, 0) of the 4x3x2x2 kernel is not finite");
	w[IDX(3, 2, 1, 0)] = 1;
	CHECK(TRY(rs_tucker_modes_new(w, 0, 3, 2, 2, &err)) == NULL && err.code == RS_EINVAL,
	      "modes: f = 0 refused");
	CHECK_CONTAINS(err.msg, "0x3x2x2 kernel is empty");
	CHECK(TRY(rs_tucker_modes_new(w, 4, 3, SIZE_MAX / 3, 4, &err)) == NULL &&
	      err.code == RS_EINVAL, "modes: overflowing sizes refused");
	CHECK_CONTAINS(err.msg, "too many elements");
	CHECK(TRY(rs_tucker_modes_new(NULL, 4, 3, 2, 2, &err)) == NULL && err.code == RS_EINVAL,
	      "modes: NULL refused");
#undef TRY
}

int
main(void)
{
	test_seed(20261207);
	check_exact(8, 6, 3, 3, 3, 2);
	check_exact(10, 12, 3, 1, 5, 7);
	check_exact(5, 7, 1, 1, 2, 3);     /* linear: the input rank is capped at 2 */
	check_exact(6, 4, 2, 3, 6, 4);     /* full ranks */
	check_exact(4, 9, 1, 2, 1, 1);
	check_spectra(6, 4, 3, 3);
	check_spectra(4, 9, 2, 1);
	check_spectra(12, 2, 1, 3);        /* f > c s: k_out = c s */
	check_spectra(3, 3, 1, 1);
	check_spectra(20, 1, 2, 2);        /* one input channel */
	check_zero_kernel();
	check_random(40);
	check_monotone();
	check_stopping_rule();
	check_layout();
	check_rank_one(1, 1);
	check_rank_one(-1, 1);
	check_rank_one(1, -1);
	check_modes_not_swapped();
	check_linear(9, 9, 6, 2);          /* sweeps complete U_out past r_in */
	check_linear(8, 5, 2, 5);
	check_linear(10, 2, 6, 2);         /* r_out > c s: HOSVD completes U_out */
	check_linear(3, 8, 3, 7);          /* r_in > f s */
	check_fixed_point();
	check_costs();
	check_invalid();
	return test_done("test-tucker");
}
