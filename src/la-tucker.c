/*
 * la-tucker.c — Tucker-2 of convolution kernels (HOSVD, HOOI); see
 * rankscope/tucker.h.
 *
 * With s = kh kw, the row-major kernel read as column-major memory is
 * what the products need without copying:
 *   - the whole of w is the (c s) x f matrix whose column o is output
 *     channel o: the transpose of the mode-1 unfolding, so
 *     W x_1 U_out^T is one gemm, w (c s x f) times U_out (f x r_out),
 *     giving (c s) x r_out, i.e. a row-major (r_out, c, s) tensor;
 *   - w + o c s is the s x c matrix (leading dimension s) of output
 *     channel o, so W x_2 U_in^T is f gemms of s x c times U_in (c x
 *     r_in), each giving s x r_in, i.e. a row-major (f, r_in, s) tensor.
 * Every intermediate tensor is kept row-major with s innermost, so the
 * same two readings apply to it.  The unfoldings handed to dgesdd are
 * explicit column-major copies (dgesdd destroys its input anyway).
 *
 * Errors are measured on an explicit W_hat (see tucker.h for why).
 */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/svd.h"
#include "rankscope/tucker.h"
#include "rankscope/util.h"

/* ---- arguments -------------------------------------------------------------- */

/* dgesdd indexes its input, vectors and workspace (about 4 k^2 + 7 k +
 * max(m, n) with vectors) in 32-bit integers; 8 k max(m, n) <= INT_MAX
 * covers all of them. */
static int
lapack_fits(size_t m, size_t n)
{
	size_t k = m < n ? m : n;

	return m <= INT_MAX / 8 / k && n <= INT_MAX / 8 / k;
}

/*
 * The shape of a kernel: sizes >= 1, f c kh kw representable as a count
 * of doubles, both unfoldings within LAPACK's range.  *s and *n receive
 * kh kw and f c kh kw.
 */
static rs_status
check_shape(const double *w, size_t f, size_t c, size_t kh, size_t kw, size_t *s,
            size_t *n, rs_error *err)
{
	size_t cs, fs;

	if (w == NULL)
		return rs_error_set(err, RS_EINVAL, "Tucker-2: no kernel given");
	if (f == 0 || c == 0 || kh == 0 || kw == 0)
		return rs_error_set(err, RS_EINVAL,
		    "Tucker-2: the %zux%zux%zux%zu kernel is empty (every size must be >= 1)",
		    f, c, kh, kw);
	if (rs_mul_overflows(kh, kw, s) || rs_mul_overflows(c, *s, &cs) ||
	    rs_mul_overflows(f, cs, n) || rs_mul_overflows(f, *s, &fs) ||
	    *n > SIZE_MAX / sizeof(double))
		return rs_error_set(err, RS_EINVAL,
		    "Tucker-2: the %zux%zux%zux%zu kernel has too many elements to index",
		    f, c, kh, kw);
	if (!lapack_fits(f, cs) || !lapack_fits(c, fs))
		return rs_error_set(err, RS_EINVAL,
		    "Tucker-2: the unfoldings of the %zux%zux%zux%zu kernel (%zux%zu and "
		    "%zux%zu) exceed LAPACK's 32-bit index range", f, c, kh, kw, f, cs, c, fs);
	return RS_OK;
}

/* Every element finite; the first that is not is named as (o, i, y, x). */
static rs_status
check_finite(const double *w, size_t f, size_t c, size_t kh, size_t kw, rs_error *err)
{
	size_t s = kh * kw, n = f * c * s, i;

	for (i = 0; i < n; i++)
		if (!isfinite(w[i]))
			return rs_error_set(err, RS_ENUMERIC,
			    "Tucker-2: element (%zu, %zu, %zu, %zu) of the %zux%zux%zux%zu "
			    "kernel is not finite", i / (c * s), i / s % c, i % s / kw, i % kw,
			    f, c, kh, kw);
	return RS_OK;
}

/* ---- unfoldings ------------------------------------------------------------- */

/* x row-major (m, q) -> a column-major m x q: the mode-1 unfolding of a
 * row-major tensor whose first index has m values. */
static void
unfold1(const double *x, size_t m, size_t q, double *a)
{
	size_t o, p;

	for (o = 0; o < m; o++)
		for (p = 0; p < q; p++)
			a[o + m * p] = x[o * q + p];
}

/* x row-major (m, c, s) -> a column-major c x (m s), row i, column
 * (o s + p): the mode-2 unfolding. */
static void
unfold2(const double *x, size_t m, size_t c, size_t s, double *a)
{
	size_t o, i, p;

	for (o = 0; o < m; o++)
		for (i = 0; i < c; i++)
			for (p = 0; p < s; p++)
				a[i + c * (o * s + p)] = x[(o * c + i) * s + p];
}

/* ---- singular vectors ------------------------------------------------------- */

/* Each column of the m x r u gets its largest-magnitude component (the
 * first on a tie) positive: singular vectors are defined up to sign, and
 * which sign LAPACK returns is not something to expose. */
static void
fix_signs(double *u, size_t m, size_t r)
{
	size_t i, j;

	for (j = 0; j < r; j++) {
		double *col = u + j * m;
		size_t best = 0;
		for (i = 1; i < m; i++)
			if (fabs(col[i]) > fabs(col[best]))
				best = i;
		if (col[best] < 0)
			for (i = 0; i < m; i++)
				col[i] = -col[i];
	}
}

/*
 * Columns keep..r-1 of u (m x r, r <= m) become an orthonormal basis of
 * part of the complement of columns 0..keep-1 (orthonormal): the QR of
 * those keep columns as Householder reflectors H_1 ... H_keep, whose
 * product's further columns are orthogonal to its first keep, which span
 * the same space as u's.
 */
static rs_status
complete_basis(double *u, size_t m, size_t keep, size_t r, rs_error *err)
{
	/* zeroed: LAPACKE_dorgqr checks all r columns for NaN before it
	 * overwrites the last r - keep, and uninitialised ones can hold one
	 * (seen as an intermittent abort at r_out > c kh kw, from Lua) */
	double *q = calloc(m * r, sizeof *q), *tau = malloc(keep * sizeof *tau);
	lapack_int info;

	if (q == NULL || tau == NULL) {
		free(q);
		free(tau);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory completing a %zux%zu orthonormal basis", m, r);
	}
	memcpy(q, u, m * keep * sizeof *q);
	info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)keep, q,
	                      (lapack_int)m, tau);
	if (info == 0)
		info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)r,
		                      (lapack_int)keep, q, (lapack_int)m, tau);
	/* Neither iterates: any failure is a bad argument, i.e. a bug. */
	if (info != 0)
		abort();
	memcpy(u + m * keep, q + m * keep, m * (r - keep) * sizeof *q);
	free(q);
	free(tau);
	return RS_OK;
}

/*
 * The leading r (<= m) left singular vectors of the m x n column-major a
 * (destroyed) into u (m x r, leading dimension m), completed by
 * complete_basis beyond min(m, n), signs fixed.
 */
static rs_status
leading_left(double *a, size_t m, size_t n, size_t r, double *u, rs_error *err)
{
	size_t k = m < n ? m : n, keep = r < k ? r : k;
	double *sigma = malloc(k * sizeof *sigma), *uu = malloc(m * k * sizeof *uu);
	double *vt = malloc(k * n * sizeof *vt);
	rs_status st;

	if (sigma == NULL || uu == NULL || vt == NULL) {
		st = rs_error_set(err, RS_ENOMEM,
		    "out of memory for the singular vectors of a %zux%zu unfolding", m, n);
		goto out;
	}
	st = rs_svd_vectors(a, m, n, m, sigma, uu, vt, err);
	if (st != RS_OK)
		goto out;
	memcpy(u, uu, m * keep * sizeof *u);
	if (r > keep && (st = complete_basis(u, m, keep, r, err)) != RS_OK)
		goto out;
	fix_signs(u, m, r);
out:
	free(sigma);
	free(uu);
	free(vt);
	return st;
}

/* ---- mode spectra ----------------------------------------------------------- */

static double
sum_squares(const double *x, size_t n)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += x[i] * x[i];
	return sum;
}

/* tail[r] = sum_{i > r} sigma_i^2, summed from the smallest value so every
 * tail keeps its relative accuracy. */
static void
tails(const double *sigma, size_t k, double *tail)
{
	size_t i;

	tail[k] = 0.0;
	for (i = k; i > 0; i--)
		tail[i - 1] = tail[i] + sigma[i - 1] * sigma[i - 1];
}

rs_tucker_modes *
rs_tucker_modes_new(const double *w, size_t f, size_t c, size_t kh, size_t kw,
                    rs_error *err)
{
	rs_tucker_modes *m;
	size_t s, n;
	double *a = NULL;

	if (check_shape(w, f, c, kh, kw, &s, &n, err) != RS_OK ||
	    check_finite(w, f, c, kh, kw, err) != RS_OK)
		return NULL;
	m = rs_xcalloc(1, sizeof *m);
	m->f = f;
	m->c = c;
	m->kh = kh;
	m->kw = kw;
	m->k_out = f < c * s ? f : c * s;
	m->k_in = c < f * s ? c : f * s;
	m->sigma_out = malloc(m->k_out * sizeof *m->sigma_out);
	m->sigma_in = malloc(m->k_in * sizeof *m->sigma_in);
	m->tail_out = malloc((m->k_out + 1) * sizeof *m->tail_out);
	m->tail_in = malloc((m->k_in + 1) * sizeof *m->tail_in);
	a = malloc(n * sizeof *a);
	if (m->sigma_out == NULL || m->sigma_in == NULL || m->tail_out == NULL ||
	    m->tail_in == NULL || a == NULL) {
		rs_error_set(err, RS_ENOMEM, "Tucker-2: out of memory for the spectra of a "
		             "%zux%zux%zux%zu kernel", f, c, kh, kw);
		goto fail;
	}
	unfold1(w, f, c * s, a);
	if (rs_svd_values(a, f, c * s, f, RS_SVD_GESDD, m->sigma_out, err) != RS_OK) {
		rs_error_prefix(err, "Tucker-2, mode-1 unfolding (%zux%zu): ", f, c * s);
		goto fail;
	}
	unfold2(w, f, c, s, a);
	if (rs_svd_values(a, c, f * s, c, RS_SVD_GESDD, m->sigma_in, err) != RS_OK) {
		rs_error_prefix(err, "Tucker-2, mode-2 unfolding (%zux%zu): ", c, f * s);
		goto fail;
	}
	tails(m->sigma_out, m->k_out, m->tail_out);
	tails(m->sigma_in, m->k_in, m->tail_in);
	m->fro2 = sum_squares(w, n);
	free(a);
	return m;
fail:
	free(a);
	rs_tucker_modes_free(m);
	return NULL;
}

void
rs_tucker_modes_free(rs_tucker_modes *m)
{
	if (m == NULL)
		return;
	free(m->sigma_out);
	free(m->sigma_in);
	free(m->tail_out);
	free(m->tail_in);
	free(m);
}

double
rs_tucker_bound(const rs_tucker_modes *m, size_t r_out, size_t r_in)
{
	if (r_out > m->k_out)
		r_out = m->k_out;
	if (r_in > m->k_in)
		r_in = m->k_in;
	if (!(m->fro2 > 0))
		return 0.0;
	return sqrt((m->tail_out[r_out] + m->tail_in[r_in]) / m->fro2);
}

/* ---- costs ------------------------------------------------------------------ */

/* a b, or SIZE_MAX on overflow (SIZE_MAX absorbs further products). */
static size_t
sat_mul(size_t a, size_t b)
{
	size_t p;

	return rs_mul_overflows(a, b, &p) ? SIZE_MAX : p;
}

static size_t
sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t
rs_tucker_params(size_t f, size_t c, size_t kh, size_t kw, size_t r_out, size_t r_in)
{
	size_t first = sat_mul(c, r_in);
	size_t core = sat_mul(sat_mul(sat_mul(r_in, r_out), kh), kw);
	size_t last = sat_mul(r_out, f);

	return sat_add(sat_add(first, core), last);
}

size_t
rs_tucker_flops(size_t f, size_t c, size_t kh, size_t kw, size_t r_out, size_t r_in)
{
	return sat_mul(2, rs_tucker_params(f, c, kh, kw, r_out, r_in));
}

/* ---- HOSVD and HOOI --------------------------------------------------------- */

/* z = W x_1 U_out^T, row-major (r_out, c, s): (c s x f) times (f x r_out). */
static void
mode1_product(const double *w, size_t f, size_t cs, const double *u_out, size_t r_out,
              double *z)
{
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)cs,
	            (blasint)r_out, (blasint)f, 1.0, w, (blasint)cs, u_out, (blasint)f,
	            0.0, z, (blasint)cs);
}

/* y = X x_2 U^T for x row-major (m, c, s), U c x r: y row-major (m, r, s),
 * one (s x c) (c x r) product per leading index.  Gives W x_2 U_in^T
 * (m = f) and, applied to z, the core (m = r_out). */
static void
mode2_product(const double *x, size_t m, size_t c, size_t s, const double *u, size_t r,
              double *y)
{
	size_t o;

	for (o = 0; o < m; o++)
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)s,
		            (blasint)r, (blasint)c, 1.0, x + o * c * s, (blasint)s, u,
		            (blasint)c, 0.0, y + o * r * s, (blasint)s);
}

/*
 * out = G x_1 U_out x_2 U_in, one output channel at a time: P_o = sum_j
 * U_out[o, j] G_j (an s x r_in matrix, in scratch), then channel o's
 * s x c block = P_o U_in^T.
 */
static void
reconstruct_into(const rs_tucker *t, double *out, double *scratch)
{
	size_t s = t->kh * t->kw, o;

	for (o = 0; o < t->f; o++) {
		cblas_dgemv(CblasColMajor, CblasNoTrans, (blasint)(s * t->r_in),
		            (blasint)t->r_out, 1.0, t->core, (blasint)(s * t->r_in),
		            t->u_out + o, (blasint)t->f, 0.0, scratch, 1);
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (blasint)s,
		            (blasint)t->c, (blasint)t->r_in, 1.0, scratch, (blasint)s,
		            t->u_in, (blasint)t->c, 0.0, out + o * t->c * s, (blasint)s);
	}
}

void
rs_tucker_reconstruct(const rs_tucker *t, double *out)
{
	double *scratch = rs_xmalloc(t->r_in * t->kh * t->kw * sizeof *scratch);

	reconstruct_into(t, out, scratch);
	free(scratch);
}

/* Working buffers of one decomposition. */
typedef struct work {
	double *a;          /* an unfolding for dgesdd: up to f c s */
	double *y;          /* W x_2 U_in^T, (f, r_in, s) */
	double *z;          /* W x_1 U_out^T, (r_out, c, s) */
	double *what;       /* W_hat, f c s */
	double *scratch;    /* reconstruct_into's, r_in s */
	double *prev;       /* the previous sweep's u_out, u_in, core */
} work;

/* The core from z = W x_1 U_out^T and t->u_in, then the measured error. */
static double
finish(rs_tucker *t, const double *w, size_t n, double fro2, work *wk)
{
	size_t s = t->kh * t->kw, i;
	double diff2 = 0;

	mode2_product(wk->z, t->r_out, t->c, s, t->u_in, t->r_in, t->core);
	if (!(fro2 > 0))
		return 0.0;
	reconstruct_into(t, wk->what, wk->scratch);
	for (i = 0; i < n; i++)
		diff2 += (w[i] - wk->what[i]) * (w[i] - wk->what[i]);
	return sqrt(diff2 / fro2);
}

static rs_status
hosvd(rs_tucker *t, const double *w, work *wk, rs_error *err)
{
	size_t s = t->kh * t->kw, f = t->f, c = t->c;
	rs_status st;

	unfold1(w, f, c * s, wk->a);
	if ((st = leading_left(wk->a, f, c * s, t->r_out, t->u_out, err)) != RS_OK) {
		rs_error_prefix(err, "mode-1 unfolding (%zux%zu): ", f, c * s);
		return st;
	}
	unfold2(w, f, c, s, wk->a);
	if ((st = leading_left(wk->a, c, f * s, t->r_in, t->u_in, err)) != RS_OK) {
		rs_error_prefix(err, "mode-2 unfolding (%zux%zu): ", c, f * s);
		return st;
	}
	mode1_product(w, f, c * s, t->u_out, t->r_out, wk->z);
	return RS_OK;
}

/* One sweep: U_out from W x_2 U_in^T, then U_in from W x_1 U_out^T; leaves
 * z = W x_1 U_out^T for finish. */
static rs_status
sweep(rs_tucker *t, const double *w, work *wk, rs_error *err)
{
	size_t s = t->kh * t->kw, f = t->f, c = t->c;
	rs_status st;

	mode2_product(w, f, c, s, t->u_in, t->r_in, wk->y);
	unfold1(wk->y, f, t->r_in * s, wk->a);
	st = leading_left(wk->a, f, t->r_in * s, t->r_out, t->u_out, err);
	if (st != RS_OK) {
		rs_error_prefix(err, "HOOI, mode-1 unfolding (%zux%zu): ", f, t->r_in * s);
		return st;
	}
	mode1_product(w, f, c * s, t->u_out, t->r_out, wk->z);
	unfold2(wk->z, t->r_out, c, s, wk->a);
	st = leading_left(wk->a, c, t->r_out * s, t->r_in, t->u_in, err);
	if (st != RS_OK) {
		rs_error_prefix(err, "HOOI, mode-2 unfolding (%zux%zu): ", c, t->r_out * s);
		return st;
	}
	return RS_OK;
}

/* Copies the factors and core to (save) or from (!save) wk->prev. */
static void
keep_state(rs_tucker *t, work *wk, int save)
{
	size_t nu = t->f * t->r_out, ni = t->c * t->r_in;
	size_t ng = t->r_out * t->r_in * t->kh * t->kw;
	double *p = wk->prev;

	if (save) {
		memcpy(p, t->u_out, nu * sizeof *p);
		memcpy(p + nu, t->u_in, ni * sizeof *p);
		memcpy(p + nu + ni, t->core, ng * sizeof *p);
	} else {
		memcpy(t->u_out, p, nu * sizeof *p);
		memcpy(t->u_in, p + nu, ni * sizeof *p);
		memcpy(t->core, p + nu + ni, ng * sizeof *p);
	}
}

rs_tucker *
rs_tucker_hooi(const double *w, size_t f, size_t c, size_t kh, size_t kw, size_t r_out,
               size_t r_in, int max_iter, double tol, rs_error *err)
{
	rs_tucker *t;
	work wk;
	size_t s, n, nu, ni, ng;
	double fro2, e;
	int i;

	if (check_shape(w, f, c, kh, kw, &s, &n, err) != RS_OK)
		return NULL;
	if (r_out < 1 || r_out > f) {
		rs_error_set(err, RS_EINVAL,
		    "Tucker-2 of a %zux%zux%zux%zu kernel: output rank %zu is outside 1..%zu "
		    "(the output channels)", f, c, kh, kw, r_out, f);
		return NULL;
	}
	if (r_in < 1 || r_in > c) {
		rs_error_set(err, RS_EINVAL,
		    "Tucker-2 of a %zux%zux%zux%zu kernel: input rank %zu is outside 1..%zu "
		    "(the input channels)", f, c, kh, kw, r_in, c);
		return NULL;
	}
	/* The factors are at most f x f and c x c (when the kernel is
	 * narrow), which the shape check alone does not keep in range. */
	if (r_out > INT_MAX / f || r_in > INT_MAX / c) {
		rs_error_set(err, RS_EINVAL,
		    "Tucker-2 of a %zux%zux%zux%zu kernel: factors of %zux%zu and %zux%zu "
		    "exceed LAPACK's 32-bit index range", f, c, kh, kw, f, r_out, c, r_in);
		return NULL;
	}
	if (max_iter < 0) {
		rs_error_set(err, RS_EINVAL,
		    "Tucker-2: max_iter %d must not be negative", max_iter);
		return NULL;
	}
	if (!isfinite(tol) || tol < 0) {
		rs_error_set(err, RS_EINVAL,
		    "Tucker-2: tolerance %g must be finite and not negative", tol);
		return NULL;
	}
	if (check_finite(w, f, c, kh, kw, err) != RS_OK)
		return NULL;

	/* r_out <= f and r_in <= c: y, z and the core have at most n
	 * elements, the factors are in int range (above), so no product
	 * below overflows. */
	nu = f * r_out;
	ni = c * r_in;
	ng = r_out * r_in * s;
	t = rs_xcalloc(1, sizeof *t);
	t->f = f;
	t->c = c;
	t->kh = kh;
	t->kw = kw;
	t->r_out = r_out;
	t->r_in = r_in;
	t->u_out = malloc(nu * sizeof *t->u_out);
	t->u_in = malloc(ni * sizeof *t->u_in);
	t->core = malloc(ng * sizeof *t->core);
	wk.a = malloc(n * sizeof *wk.a);
	wk.y = malloc(f * r_in * s * sizeof *wk.y);
	wk.z = malloc(r_out * c * s * sizeof *wk.z);
	wk.what = malloc(n * sizeof *wk.what);
	wk.scratch = malloc(r_in * s * sizeof *wk.scratch);
	wk.prev = malloc((nu + ni + ng) * sizeof *wk.prev);
	if (t->u_out == NULL || t->u_in == NULL || t->core == NULL || wk.a == NULL ||
	    wk.y == NULL || wk.z == NULL || wk.what == NULL || wk.scratch == NULL ||
	    wk.prev == NULL) {
		rs_error_set(err, RS_ENOMEM, "out of memory");
		goto fail;
	}

	fro2 = sum_squares(w, n);
	if (hosvd(t, w, &wk, err) != RS_OK)
		goto fail;
	e = t->err_hosvd = t->err = finish(t, w, n, fro2, &wk);
	for (i = 1; i <= max_iter && e > 0; i++) {
		double e_new;
		keep_state(t, &wk, 1);
		if (sweep(t, w, &wk, err) != RS_OK)
			goto fail;
		e_new = finish(t, w, n, fro2, &wk);
		t->iterations = i;
		if (e_new > e) {
			/* rounding: the sweep cannot do worse in exact arithmetic */
			keep_state(t, &wk, 0);
			break;
		}
		t->err = e_new;
		if (e - e_new <= tol * e || e_new == 0)
			break;
		e = e_new;
	}
	free(wk.a);
	free(wk.y);
	free(wk.z);
	free(wk.what);
	free(wk.scratch);
	free(wk.prev);
	return t;
fail:
	rs_error_prefix(err, "Tucker-2 (%zu, %zu) of a %zux%zux%zux%zu kernel: ",
	                r_out, r_in, f, c, kh, kw);
	free(wk.a);
	free(wk.y);
	free(wk.z);
	free(wk.what);
	free(wk.scratch);
	free(wk.prev);
	rs_tucker_free(t);
	return NULL;
}

void
rs_tucker_free(rs_tucker *t)
{
	if (t == NULL)
		return;
	free(t->u_out);
	free(t->u_in);
	free(t->core);
	free(t);
}
