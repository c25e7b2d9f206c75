/*
 * test-tt.c — TT-SVD against tensors with known TT-ranks, every error
 * figure against the test's own reconstruction by plain index loops,
 * the step spectra against dgesdd of the tensor's unfoldings, costs by
 * hand and by an explicit contraction that counts its multiply-adds, and
 * the balanced factorisation against brute force.
 */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/tt.h"
#include "rankscope/util.h"
#include "testlib.h"

typedef struct shape {
	size_t d, rm[RS_TT_MAX_D], cm[RS_TT_MAX_D];
} shape;

static size_t
prod(const size_t *v, size_t n)
{
	size_t p = 1, k;

	for (k = 0; k < n; k++)
		p *= v[k];
	return p;
}

/* Digits of i in the mixed radix `modes`, most significant first. */
static void
digits(size_t i, const size_t *modes, size_t d, size_t *out)
{
	size_t k;

	for (k = d; k > 0; k--) {
		out[k - 1] = i % modes[k - 1];
		i /= modes[k - 1];
	}
}

/*
 * W(i, j) = G_1[i_1, j_1] ... G_d[i_d, j_d] element by element: a row
 * vector carried through the cores, nothing shared with la-tt.c.
 * out is column-major with leading dimension ld.
 */
static void
contract_ref(const shape *s, const size_t *ranks, double *const *cores, double *out,
             size_t ld)
{
	size_t rows = prod(s->rm, s->d), cols = prod(s->cm, s->d), i, j, k, a, b;
	size_t id[RS_TT_MAX_D], jd[RS_TT_MAX_D], rmax = 1;
	double *v, *nv;

	for (k = 0; k <= s->d; k++)
		if (ranks[k] > rmax)
			rmax = ranks[k];
	v = rs_xmalloc(rmax * sizeof *v);
	nv = rs_xmalloc(rmax * sizeof *nv);
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			digits(i, s->rm, s->d, id);
			digits(j, s->cm, s->d, jd);
			v[0] = 1.0;
			for (k = 0; k < s->d; k++) {
				size_t r0 = ranks[k], r1 = ranks[k + 1];
				for (b = 0; b < r1; b++) {
					nv[b] = 0;
					for (a = 0; a < r0; a++)
						nv[b] += v[a] * cores[k][((a * s->rm[k] + id[k]) *
						    s->cm[k] + jd[k]) * r1 + b];
				}
				memcpy(v, nv, r1 * sizeof *v);
			}
			out[i + j * ld] = v[0];
		}
	free(v);
	free(nv);
}

static void
random_cores(const shape *s, const size_t *ranks, double **cores)
{
	size_t k, i;

	for (k = 0; k < s->d; k++) {
		size_t n = ranks[k] * s->rm[k] * s->cm[k] * ranks[k + 1];
		cores[k] = rs_xmalloc(n * sizeof **cores);
		for (i = 0; i < n; i++)
			cores[k][i] = test_gaussian();
	}
}

static void
free_cores(double **cores, size_t d)
{
	size_t k;

	for (k = 0; k < d; k++)
		free(cores[k]);
}

static double
fro(const double *a, size_t rows, size_t cols, size_t ld)
{
	double s = 0;
	size_t i, j;

	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			s += a[i + j * ld] * a[i + j * ld];
	return sqrt(s);
}

static rs_tt *
run(const double *w, const shape *s, size_t ld, const size_t *caps, double eps)
{
	rs_error err;
	rs_tt *tt = rs_tt_svd(w, prod(s->rm, s->d), prod(s->cm, s->d), ld, s->d, s->rm,
	                      s->cm, caps, eps, &err);

	CHECK(tt != NULL, "rs_tt_svd d=%zu: %s", s->d, tt ? "" : err.msg);
	if (tt == NULL)
		abort();
	return tt;
}

/*
 * What every result must satisfy: shapes, the rank rule against its own
 * step spectra, tails, params, left-orthogonal cores with the sign
 * convention, and err against the test's reconstruction by index loops
 * (also compared element by element with rs_tt_reconstruct into a padded
 * buffer).  Returns the independent relative error.
 */
static double
check_result(const rs_tt *tt, const double *w, size_t ld, const shape *s,
             const size_t *caps, double eps)
{
	size_t rows = prod(s->rm, s->d), cols = prod(s->cm, s->d), rest = rows * cols;
	size_t k, i, j, t, params = 0, rld = rows + 2;
	double *ref = rs_xmalloc(rows * cols * sizeof *ref);
	double *rec = rs_xmalloc(rld * cols * sizeof *rec);
	double fw = fro(w, rows, cols, ld), diff = 0, tails = 0, worst = 0, mine;
	double delta2 = eps >= 0 ? eps * eps * fw * fw / (double)(s->d - 1) : -1;
	rs_error err;
	int padding_ok = 1;

	CHECK(tt->d == s->d && tt->rows == rows && tt->cols == cols, "shape kept");
	CHECK(tt->ranks[0] == 1 && tt->ranks[s->d] == 1, "boundary ranks 1");
	CHECK_NEAR(tt->fro2, fw * fw, 1e-12 * fw * fw, "fro2 = ||W||_F^2");
	for (k = 0; k < s->d; k++) {
		size_t mk = s->rm[k] * s->cm[k], r0 = tt->ranks[k], r1 = tt->ranks[k + 1];
		CHECK(tt->row_modes[k] == s->rm[k] && tt->col_modes[k] == s->cm[k],
		      "modes kept at %zu", k);
		params += r0 * mk * r1;
		rest /= mk;
		if (k + 1 == s->d) {
			CHECK(tt->step_sigma[k] == NULL && tt->step_k[k] == 0 &&
			      tt->step_tail[k] == 0, "no step after the last core");
			break;
		}
		/* step k: an (r_k M_k) x rest unfolding */
		{
			size_t p = r0 * mk < rest ? r0 * mk : rest, want, cap;
			const double *sg = tt->step_sigma[k];
			double tail = 0;
			CHECK(tt->step_k[k] == p, "step %zu: %zu values, want %zu", k,
			      tt->step_k[k], p);
			for (i = 1; i < p; i++)
				CHECK(sg[i] <= sg[i - 1] && sg[i] >= 0, "step %zu descending", k);
			/* the rule, by a forward scan: smallest r >= 1 whose tail fits */
			want = p;
			if (delta2 >= 0)
				for (want = 1; want < p; want++) {
					double tw = 0;
					for (i = want; i < p; i++)
						tw += sg[i] * sg[i];
					if (tw <= delta2)
						break;
				}
			cap = caps != NULL && caps[k] != 0 ? caps[k] : p;
			if (cap < want)
				want = cap;
			CHECK(r1 == want, "step %zu: rank %zu, rule gives %zu", k, r1, want);
			for (i = r1; i < p; i++)
				tail += sg[i] * sg[i];
			CHECK_NEAR(tt->step_tail[k], tail, 1e-13 * fw * fw + 1e-300,
			           "step tail = dropped energy");
			tails += tt->step_tail[k];
		}
		/* left-orthogonal, largest entry of each column positive */
		for (t = 0; t < r1; t++) {
			size_t u;
			double big = 0, bigv = 0;
			for (u = 0; u < r1; u++) {
				double dot = 0;
				for (i = 0; i < r0 * mk; i++)
					dot += tt->cores[k][i * r1 + t] * tt->cores[k][i * r1 + u];
				if (fabs(dot - (t == u)) > worst)
					worst = fabs(dot - (t == u));
			}
			for (i = 0; i < r0 * mk; i++)
				if (fabs(tt->cores[k][i * r1 + t]) > big) {
					big = fabs(tt->cores[k][i * r1 + t]);
					bigv = tt->cores[k][i * r1 + t];
				}
			CHECK(bigv > 0, "core %zu column %zu: largest entry positive", k, t);
		}
	}
	CHECK(worst < 1e-12, "cores 0..d-2 orthonormal columns (off by %.3g)", worst);
	CHECK(tt->params == params, "params %zu, sum of core sizes %zu", tt->params, params);

	contract_ref(s, tt->ranks, tt->cores, ref, rows);
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double e = w[i + j * ld] - ref[i + j * rows];
			diff += e * e;
		}
	mine = fw > 0 ? sqrt(diff) / fw : 0;
	CHECK_NEAR(tt->err, mine, 1e-12, "err vs the test's own reconstruction");
	CHECK_NEAR(tt->bound, fw > 0 ? sqrt(tails) / fw : 0, 1e-14,
	           "bound = sqrt(sum step_tail) / ||W||_F");

	for (i = 0; i < rld * cols; i++)
		rec[i] = -777.0;
	CHECK(rs_tt_reconstruct(tt, rec, rld, &err) == RS_OK, "reconstruct: %s", err.msg);
	diff = 0;
	for (j = 0; j < cols; j++) {
		for (i = 0; i < rows; i++) {
			double e = rec[i + j * rld] - ref[i + j * rows];
			diff += e * e;
		}
		for (i = rows; i < rld; i++)
			padding_ok &= rec[i + j * rld] == -777.0;
	}
	CHECK(sqrt(diff) <= 1e-12 * (fw > 0 ? fw : 1), "rs_tt_reconstruct = index loops (%.3g)",
	      sqrt(diff));
	CHECK(padding_ok, "reconstruct leaves padding rows alone");
	free(ref);
	free(rec);
	return mine;
}

/* W from random cores; padded ld with NaN in the padding. */
static double *
tt_matrix(const shape *s, const size_t *ranks, size_t ld)
{
	size_t cols = prod(s->cm, s->d), i;
	double *cores[RS_TT_MAX_D], *w = rs_xmalloc(ld * cols * sizeof *w);

	for (i = 0; i < ld * cols; i++)
		w[i] = NAN;
	random_cores(s, ranks, cores);
	contract_ref(s, ranks, cores, w, ld);
	free_cores(cores, s->d);
	return w;
}

/* (1) exact TT-ranks recovered */
static void
check_known_ranks(const shape *s, const size_t *ranks, size_t pad)
{
	size_t rows = prod(s->rm, s->d), ld = rows + pad, k;
	double *w = tt_matrix(s, ranks, ld);
	rs_tt *tt = run(w, s, ld, NULL, 1e-12);

	for (k = 0; k <= s->d; k++)
		CHECK(tt->ranks[k] == ranks[k], "d=%zu: rank %zu is %zu, built with %zu",
		      s->d, k, tt->ranks[k], ranks[k]);
	CHECK(tt->err < 1e-10, "d=%zu: exact TT recovered, err %.3g", s->d, tt->err);
	CHECK(tt->bound < 1e-10, "d=%zu: bound %.3g", s->d, tt->bound);
	check_result(tt, w, ld, s, NULL, 1e-12);
	rs_tt_free(tt);
	free(w);
}

/*
 * (4) step spectra: with no truncation every step's unfolding has the
 * singular values of the tensor's own k-th unfolding (rows a_1..a_{k+1},
 * columns the rest), built here from W by index loops.
 */
static void
check_unfoldings(const shape *s, const double *w, size_t ld, const rs_tt *tt)
{
	size_t rows = prod(s->rm, s->d), cols = prod(s->cm, s->d), total = rows * cols;
	size_t i, j, k, l, left = 1;
	size_t id[RS_TT_MAX_D], jd[RS_TT_MAX_D];
	double *t = rs_xmalloc(total * sizeof *t), *a = rs_xmalloc(total * sizeof *a);

	/* tensor in a-order, a_k = i_k n_k + j_k, a_1 most significant */
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			size_t off = 0;
			digits(i, s->rm, s->d, id);
			digits(j, s->cm, s->d, jd);
			for (k = 0; k < s->d; k++)
				off = off * (s->rm[k] * s->cm[k]) + id[k] * s->cm[k] + jd[k];
			t[off] = w[i + j * ld];
		}
	for (k = 0; k + 1 < s->d; k++) {
		size_t right, p, q;
		double *sv, dummy = 0;
		left *= s->rm[k] * s->cm[k];
		right = total / left;
		p = left < right ? left : right;
		sv = rs_xmalloc(p * sizeof *sv);
		/* row-major left x right = column-major right x left */
		memcpy(a, t, total * sizeof *a);
		if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)right, (int)left, a, (int)right,
		                   sv, &dummy, 1, &dummy, 1) != 0)
			abort();
		q = tt->step_k[k];
		CHECK(q <= p, "step %zu has at most the unfolding's %zu values", k, p);
		for (l = 0; l < p; l++)
			CHECK_NEAR(l < q ? tt->step_sigma[k][l] : 0.0, sv[l], 1e-12 * sv[0],
			           "step sigma = unfolding's sigma");
		free(sv);
	}
	free(t);
	free(a);
}

/* (2), (3): many random cases, eps and caps mixed. */
static void
check_random_cases(void)
{
	static const double epss[] = {-1, 0, 1e-3, 0.01, 0.05, 0.1, 0.3, 0.7, 1.5};
	double worst_gap = 0, worst_over = -1;
	size_t n, k, i;

	for (n = 0; n < 240; n++) {
		shape s;
		size_t ranks[RS_TT_MAX_D + 1], caps[RS_TT_MAX_D], rows, cols, ld;
		size_t *cp = NULL;
		double eps = epss[n % (sizeof epss / sizeof *epss)], *w, noise, fw;
		rs_tt *tt;

		do {
			s.d = 2 + (size_t)(test_uniform() * 4);
			for (k = 0; k < s.d; k++) {
				s.rm[k] = 1 + (size_t)(test_uniform() * 4);
				s.cm[k] = 1 + (size_t)(test_uniform() * 4);
			}
			rows = prod(s.rm, s.d);
			cols = prod(s.cm, s.d);
		} while (rows * cols > 2500 || rows * cols < 4);
		ld = rows + (n % 3);
		ranks[0] = ranks[s.d] = 1;
		for (k = 1; k < s.d; k++)
			ranks[k] = 1 + (size_t)(test_uniform() * 4);
		w = tt_matrix(&s, ranks, ld);
		/* low TT-rank plus noise: spectra with a knee, so eps bites */
		fw = fro(w, rows, cols, ld);
		noise = (n % 4 == 0 ? 1.0 : 0.05) * fw / sqrt((double)(rows * cols));
		for (i = 0; i < cols; i++)
			for (k = 0; k < rows; k++)
				w[k + i * ld] += noise * test_gaussian();
		if (n % 2 == 1) {
			for (k = 0; k + 1 < s.d; k++)
				caps[k] = (size_t)(test_uniform() * 5);   /* 0 = no cap */
			cp = caps;
		}
		tt = run(w, &s, ld, cp, eps);
		check_result(tt, w, ld, &s, cp, eps);
		CHECK(tt->bound >= tt->err - 1e-12, "bound %.17g >= err %.17g", tt->bound,
		      tt->err);
		if (fabs(tt->bound - tt->err) > worst_gap)
			worst_gap = fabs(tt->bound - tt->err);
		if (cp == NULL && eps >= 0) {
			CHECK(tt->err <= eps + 1e-13, "eps %g alone: err %.17g <= eps", eps, tt->err);
			if (tt->err - eps > worst_over)
				worst_over = tt->err - eps;
		}
		if (eps < 0 && cp == NULL) {
			CHECK(tt->err < 1e-12, "no truncation: err %.3g", tt->err);
			check_unfoldings(&s, w, ld, tt);
		}
		rs_tt_free(tt);
		free(w);
	}
	/* The header says bound and err agree to rounding: keep it honest. */
	CHECK(worst_gap < 1e-13, "largest |bound - err| %.3g", worst_gap);
	printf("random cases: largest |bound - err| = %.3g, largest err - eps = %.3g\n",
	       worst_gap, worst_over);
}

/* caps of 0 are "no cap": same as NULL; a cap above the step's size is inert. */
static void
check_caps(void)
{
	shape s = {3, {4, 3, 5}, {2, 6, 3}};
	size_t ranks[] = {1, 3, 5, 1}, zero[] = {0, 0}, big[] = {1000, 1000}, two[] = {2, 0};
	double *w = tt_matrix(&s, ranks, 60);
	rs_tt *a = run(w, &s, 60, NULL, -1), *b = run(w, &s, 60, zero, -1);
	rs_tt *c = run(w, &s, 60, big, -1), *e = run(w, &s, 60, two, 1e-12);
	size_t k;

	for (k = 0; k <= 3; k++)
		CHECK(a->ranks[k] == b->ranks[k] && a->ranks[k] == c->ranks[k],
		      "caps of 0 or huge = no caps at %zu", k);
	CHECK(a->ranks[1] == 8 && a->ranks[2] == 15, "no eps, no caps: full ranks 8, 15 (%zu %zu)",
	      a->ranks[1], a->ranks[2]);
	CHECK(a->params == 1 * 8 * 8 + 8 * 18 * 15 + 15 * 15 * 1, "full-rank params 2449, got %zu",
	      a->params);
	CHECK(e->ranks[1] == 2 && e->ranks[2] == 5, "cap 2 then eps: ranks %zu %zu",
	      e->ranks[1], e->ranks[2]);
	CHECK(e->err > 1e-3 && e->bound >= e->err - 1e-12, "capped below the true rank errs");
	check_result(e, w, 60, &s, two, 1e-12);
	rs_tt_free(a);
	rs_tt_free(b);
	rs_tt_free(c);
	rs_tt_free(e);
	free(w);
}

/* (4) d = 2 with the whole of W in one mode each way: plain SVD of W. */
static void
check_plain_svd(size_t m, size_t n)
{
	size_t k = m < n ? m : n, i, t, r;
	double *w = rs_xmalloc(m * n * sizeof *w), *copy = rs_xmalloc(m * n * sizeof *copy);
	double *s = rs_xmalloc(k * sizeof *s), *u = rs_xmalloc(m * k * sizeof *u);
	double *vt = rs_xmalloc(k * n * sizeof *vt), fw;
	shape a = {2, {m, 1}, {1, n}}, b = {2, {1, m}, {n, 1}};

	for (i = 0; i < m * n; i++)
		w[i] = test_gaussian() * (1.0 + (double)(i % 7));
	memcpy(copy, w, m * n * sizeof *w);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (int)m, (int)n, copy, (int)m, s, u, (int)m,
	                   vt, (int)k) != 0)
		abort();
	fw = fro(w, m, n, m);
	for (r = 0; r <= k; r++) {
		size_t cap[1];
		rs_tt *ta, *tb;
		double tail = 0;
		cap[0] = r;   /* r = 0: no cap */
		ta = run(w, &a, m, cap, -1);
		tb = run(w, &b, m, cap, -1);
		CHECK(ta->step_k[0] == k && tb->step_k[0] == k, "one step of min(m, n) values");
		for (i = 0; i < k; i++) {
			CHECK_NEAR(ta->step_sigma[0][i], s[i], 1e-12 * s[0], "(m,1)x(1,n): sigma of W");
			CHECK_NEAR(tb->step_sigma[0][i], s[i], 1e-12 * s[0], "(1,m)x(n,1): sigma of W^T");
		}
		for (i = (r ? r : k); i < k; i++)
			tail += s[i] * s[i];
		/* Eckart-Young: the rank-r truncation is the best there is */
		CHECK_NEAR(ta->err, sqrt(tail) / fw, 1e-12, "(m,1)x(1,n) err = SVD tail");
		CHECK_NEAR(tb->err, sqrt(tail) / fw, 1e-12, "(1,m)x(n,1) err = SVD tail");
		check_result(ta, w, m, &a, cap, -1);
		check_result(tb, w, m, &b, cap, -1);
		/* core 0 of (m,1)x(1,n) is U: columns equal up to sign */
		for (t = 0; t < ta->ranks[1]; t++) {
			double dot = 0;
			for (i = 0; i < m; i++)
				dot += ta->cores[0][i * ta->ranks[1] + t] * u[i + t * m];
			CHECK_NEAR(fabs(dot), 1.0, 1e-10, "core 0 columns are W's left vectors");
		}
		rs_tt_free(ta);
		rs_tt_free(tb);
	}
	free(w); free(copy); free(s); free(u); free(vt);
}

/*
 * y = W x by contracting the cores right to left, index loops only,
 * counting multiply-adds; checks y against the dense product and
 * returns 2 * count.  Z holds (j_1..j_k, i_{k+1}..i_d, r_k), j's major.
 */
static size_t
counted_matvec(const rs_tt *tt, const double *w, size_t ld)
{
	size_t d = tt->d, k, nl, mr, r0, r1, mk, nk, x, a, b, ik, jk, y, macs = 0;
	size_t rows = tt->rows, cols = tt->cols, i, j;
	double *z = rs_xmalloc(cols * sizeof *z), *nz, *yd = rs_xcalloc(rows, sizeof *yd);
	double *xv = rs_xmalloc(cols * sizeof *xv), err = 0, norm = 0;

	for (j = 0; j < cols; j++)
		xv[j] = z[j] = test_gaussian();
	mr = 1;   /* m_{k+1} ... m_d */
	for (k = d; k > 0; k--) {
		mk = tt->row_modes[k - 1];
		nk = tt->col_modes[k - 1];
		r0 = tt->ranks[k - 1];
		r1 = tt->ranks[k];
		nl = prod(tt->col_modes, k - 1);
		nz = rs_xcalloc(nl * mk * mr * r0, sizeof *nz);
		/* Z[x, jk, y, b] -> NZ[x, ik, y, a], x over n_<k, y over m_>k */
		for (x = 0; x < nl; x++)
			for (ik = 0; ik < mk; ik++)
				for (y = 0; y < mr; y++)
					for (a = 0; a < r0; a++) {
						double sum = 0;
						for (jk = 0; jk < nk; jk++)
							for (b = 0; b < r1; b++) {
								sum += tt->cores[k - 1][((a * mk + ik) * nk + jk) *
								    r1 + b] * z[((x * nk + jk) * mr + y) * r1 + b];
								macs++;
							}
						nz[((x * mk + ik) * mr + y) * r0 + a] = sum;
					}
		free(z);
		z = nz;
		mr *= mk;
	}
	/* z is now y in row order (i_1 .. i_d, i_1 most significant) = y[i] */
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			yd[i] += w[i + j * ld] * xv[j];
	for (i = 0; i < rows; i++) {
		err += (z[i] - yd[i]) * (z[i] - yd[i]);
		norm += yd[i] * yd[i];
	}
	CHECK(sqrt(err) <= 1e-10 * sqrt(norm) + 1e-300,
	      "right-to-left contraction gives W x (%.3g)", sqrt(err));
	free(z);
	free(yd);
	free(xv);
	return 2 * macs;
}

/* (5) params and flops by hand */
static void
check_costs(void)
{
	shape s = {3, {4, 3, 5}, {2, 6, 3}};
	shape s5 = {5, {2, 1, 3, 2, 2}, {1, 3, 2, 2, 2}};
	size_t ranks[] = {1, 3, 5, 1}, r5[] = {1, 2, 4, 6, 3, 1};
	double *w = tt_matrix(&s, ranks, 60), *w5 = tt_matrix(&s5, r5, 24);
	rs_tt *tt = run(w, &s, 60, NULL, 1e-12), *t5 = run(w5, &s5, 24, NULL, 1e-12);

	/* 1*8*3 + 3*18*5 + 5*15*1 */
	CHECK(tt->params == 369, "params 24 + 270 + 75 = 369, got %zu", tt->params);
	/* 2 (1*1*2*4*3*15 + 2*3*6*3*5*5 + 12*5*3*5*1*1) = 2 (360 + 2700 + 900) */
	CHECK(tt->flops == 7920, "flops 2 * 3960 = 7920, got %zu", tt->flops);
	CHECK(counted_matvec(tt, w, 60) == tt->flops, "counted contraction = flops");
	/* 1*2*2 + 2*3*4 + 4*6*6 + 6*4*3 + 3*4*1 */
	CHECK(t5->params == 4 + 24 + 144 + 72 + 12, "d=5 params 256, got %zu", t5->params);
	/* k=1: 1*1*1*2*2*(1*3*2*2)=48; k=2: 1*2*3*1*4*12=288; k=3: 3*4*2*3*6*4=1728;
	 * k=4: 6*6*2*2*3*2=864; k=5: 12*3*2*2*1*1=144 */
	CHECK(t5->flops == 2 * (48 + 288 + 1728 + 864 + 144), "d=5 flops 6144, got %zu",
	      t5->flops);
	CHECK(counted_matvec(t5, w5, 24) == t5->flops, "d=5 counted contraction = flops");
	rs_tt_free(tt);
	rs_tt_free(t5);
	free(w);
	free(w5);
}

static void
check_zero(void)
{
	shape s = {3, {2, 3, 2}, {3, 1, 2}};
	double *w = rs_xcalloc(12 * 6, sizeof *w);
	rs_tt *tt = run(w, &s, 12, NULL, 0.1);

	CHECK(tt->ranks[1] == 1 && tt->ranks[2] == 1, "zero matrix: ranks 1");
	CHECK(tt->err == 0 && tt->bound == 0 && tt->fro2 == 0, "zero matrix: no error");
	CHECK(tt->params == 6 + 3 + 4, "zero matrix params 13");
	check_result(tt, w, 12, &s, NULL, 0.1);
	rs_tt_free(tt);
	free(w);
}

/* (6) balanced factorisation */
static void
brute_balanced(size_t rest, size_t c, size_t upper, size_t *cur, size_t depth,
               size_t *best, int *have)
{
	size_t f, k;

	if (c == 0) {
		if (rest != 1)
			return;
		for (k = 0; k < depth; k++)
			if (cur[k] != best[k])
				break;
		if (!*have || (k < depth && cur[k] < best[k])) {
			memcpy(best, cur, depth * sizeof *cur);
			*have = 1;
		}
		return;
	}
	for (f = 1; f <= upper && f <= rest; f++)
		if (rest % f == 0) {
			cur[depth] = f;
			brute_balanced(rest / f, c - 1, f, cur, depth + 1, best, have);
		}
}

static void
check_balanced(void)
{
	static const struct { size_t n, d, want[RS_TT_MAX_D]; } cases[] = {
		{784, 4, {7, 7, 4, 4}}, {784, 2, {28, 28}}, {784, 3, {14, 8, 7}},
		{1024, 2, {32, 32}}, {1024, 3, {16, 8, 8}}, {1024, 4, {8, 8, 4, 4}},
		{1024, 5, {4, 4, 4, 4, 4}}, {4096, 8, {4, 4, 4, 4, 2, 2, 2, 2}},
		{13, 3, {13, 1, 1}}, {65521, 2, {65521, 1}}, {1, 8, {1, 1, 1, 1, 1, 1, 1, 1}},
		{1, 2, {1, 1}}, {180, 2, {15, 12}}, {105, 2, {15, 7}}, {3072, 3, {16, 16, 12}},
		{4096, 1, {4096}}, {2, 4, {2, 1, 1, 1}},
	};
	size_t c, n, d, k, modes[RS_TT_MAX_D], best[RS_TT_MAX_D], cur[RS_TT_MAX_D];

	for (c = 0; c < sizeof cases / sizeof *cases; c++) {
		int same = rs_tt_balanced_modes(cases[c].n, cases[c].d, modes) == 0;
		for (k = 0; k < cases[c].d; k++)
			same &= modes[k] == cases[c].want[k];
		CHECK(same, "balanced %zu in %zu: got %zu %zu %zu ...", cases[c].n, cases[c].d,
		      modes[0], modes[1], cases[c].d > 2 ? modes[2] : 0);
	}
	/* brute force: every non-increasing factorisation, lexicographic min */
	for (n = 1; n <= 400; n++)
		for (d = 1; d <= 4; d++) {
			int have = 0, same;
			brute_balanced(n, d, n, cur, 0, best, &have);
			same = have && rs_tt_balanced_modes(n, d, modes) == 0;
			for (k = 0; same && k < d; k++)
				same = modes[k] == best[k];
			CHECK(same, "balanced %zu in %zu matches brute force", n, d);
		}
	CHECK(rs_tt_balanced_modes(0, 2, modes) == -1, "n = 0 refused");
	CHECK(rs_tt_balanced_modes(8, 0, modes) == -1, "d = 0 refused");
	CHECK(rs_tt_balanced_modes(8, RS_TT_MAX_D + 1, modes) == -1, "d too large refused");
	CHECK(rs_tt_balanced_modes(8, 2, NULL) == -1, "NULL modes refused");
}

/* (7) invalid arguments */
static void
check_bad_input(void)
{
	double *w = rs_xcalloc(12 * 6, sizeof *w);
	size_t rm[RS_TT_MAX_D + 1] = {2, 3, 2, 1, 1, 1, 1, 1, 1};
	size_t cm[RS_TT_MAX_D + 1] = {3, 1, 2, 1, 1, 1, 1, 1, 1};
	size_t bad[3], huge[2] = {SIZE_MAX / 2 + 1, 2}, big[2] = {256, 256};
	rs_error err;
	rs_tt *tt;
	double out[12 * 6];

#define BAD(call, code_, needle) do { rs_error_clear(&err); \
	CHECK((call) == NULL && err.code == (code_), "%s refused (%s: %s)", needle, \
	      rs_status_name(err.code), err.msg); \
	CHECK_CONTAINS(err.msg, needle); } while (0)
	BAD(rs_tt_svd(w, 12, 6, 12, 1, rm, cm, NULL, -1, &err), RS_EINVAL, "2 to 8 modes, not 1");
	BAD(rs_tt_svd(w, 12, 6, 12, 0, rm, cm, NULL, -1, &err), RS_EINVAL, "not 0");
	BAD(rs_tt_svd(w, 12, 6, 12, 9, rm, cm, NULL, -1, &err), RS_EINVAL, "not 9");
	BAD(rs_tt_svd(w, 12, 6, 12, 3, NULL, cm, NULL, -1, &err), RS_EINVAL, "row modes");
	BAD(rs_tt_svd(w, 12, 6, 12, 3, rm, NULL, NULL, -1, &err), RS_EINVAL, "column modes");
	BAD(rs_tt_svd(w, 12, 6, 12, 4, (size_t[]){2, 3, 2, 2}, cm, NULL, -1, &err), RS_EINVAL,
	    "row modes multiply to 24, not the 12 rows");
	memcpy(bad, (size_t[]){2, 0, 6}, sizeof bad);
	BAD(rs_tt_svd(w, 12, 6, 12, 3, bad, cm, NULL, -1, &err), RS_EINVAL, "row mode 2 is 0");
	BAD(rs_tt_svd(w, 12, 6, 12, 3, rm, (size_t[]){3, 2, 0}, NULL, -1, &err), RS_EINVAL,
	    "column mode 3 is 0");
	BAD(rs_tt_svd(w, 10, 6, 12, 3, rm, cm, NULL, -1, &err), RS_EINVAL,
	    "row modes multiply to 12, not the 10 rows");
	BAD(rs_tt_svd(w, 12, 5, 12, 3, rm, cm, NULL, -1, &err), RS_EINVAL,
	    "column modes multiply to 6, not the 5 columns");
	BAD(rs_tt_svd(w, 12, 6, 11, 3, rm, cm, NULL, -1, &err), RS_EINVAL, "leading dimension 11");
	BAD(rs_tt_svd(w, 12, 6, 12, 3, rm, cm, NULL, NAN, &err), RS_EINVAL, "eps is NaN");
	BAD(rs_tt_svd(w, 0, 6, 12, 2, huge, cm, NULL, -1, &err), RS_EINVAL,
	    "row modes overflow");
	BAD(rs_tt_svd(w, 65536, 65536, 65536, 2, big, big, NULL, -1, &err), RS_EINVAL,
	    "32-bit index range");
	w[7 + 4 * 12] = INFINITY;
	BAD(rs_tt_svd(w, 12, 6, 12, 3, rm, cm, NULL, -1, &err), RS_ENUMERIC,
	    "element (7, 4) is not finite");
	w[7 + 4 * 12] = NAN;
	BAD(rs_tt_svd(w, 12, 6, 12, 3, rm, cm, NULL, -1, &err), RS_ENUMERIC, "not finite");
	CHECK(rs_tt_svd(w, 12, 6, 12, 3, rm, cm, NULL, -1, NULL) == NULL, "NULL error allowed");
	w[7 + 4 * 12] = 1.0;
	tt = rs_tt_svd(w, 12, 6, 12, 3, rm, cm, NULL, -1, &err);
	CHECK(tt != NULL, "valid call after the bad ones");
	if (tt != NULL) {
		CHECK(rs_tt_reconstruct(tt, out, 11, &err) == RS_EINVAL, "reconstruct ld < rows");
		CHECK_CONTAINS(err.msg, "leading dimension 11");
		CHECK(rs_tt_reconstruct(tt, out, 12, &err) == RS_OK && out[7 + 4 * 12] == 1.0 &&
		      fabs(out[0]) < 1e-15, "single spike reconstructed");
	}
	rs_tt_free(tt);
	rs_tt_free(NULL);
#undef BAD
	free(w);
}

int
main(void)
{
	shape s3 = {3, {4, 3, 5}, {2, 6, 3}};
	shape s4 = {4, {2, 3, 2, 4}, {3, 2, 4, 2}};
	shape s2 = {2, {6, 5}, {4, 7}};
	shape s5 = {5, {2, 1, 3, 2, 2}, {1, 3, 2, 2, 2}};
	shape s8 = {8, {2, 2, 2, 2, 1, 1, 2, 2}, {1, 1, 2, 2, 2, 2, 1, 2}};
	size_t r3[] = {1, 3, 5, 1}, r4[] = {1, 4, 7, 5, 1}, r2[] = {1, 9, 1};
	size_t r5[] = {1, 2, 4, 6, 3, 1}, r8[] = {1, 2, 3, 5, 4, 3, 2, 3, 1};

	test_seed(20261124);
	check_known_ranks(&s3, r3, 3);
	check_known_ranks(&s4, r4, 0);
	check_known_ranks(&s2, r2, 1);
	check_known_ranks(&s5, r5, 2);
	check_known_ranks(&s8, r8, 0);
	check_random_cases();
	check_caps();
	check_plain_svd(9, 14);
	check_plain_svd(13, 6);
	check_costs();
	check_zero();
	check_balanced();
	check_bad_input();
	return test_done("test-tt");
}
