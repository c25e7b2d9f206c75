/* la-cp.c — CP decomposition by alternating least squares; see
 * rankscope/cp.h.
 *
 * For mode k the row-major tensor is a P x d x Q array (P = the product
 * of the sizes before k, d = dims[k], Q = the product after): element
 * (p, i, q) is at (p d + i) Q + q.  The Khatri-Rao product of the modes
 * before k is P x R with row p = the row-major multi-index of those
 * modes, likewise Q x R for the modes after, so the MTTKRP is
 *   M(i, r) = sum_{p,q} X(p, i, q) KL(p, r) KR(q, r).
 *
 * One mode, the root s, is the larger of the first and the last (so P or
 * Q is 1 and X is a plain matrix between s and the other modes).
 * Its MTTKRP is one dgemm against the Khatri-Rao product of all other
 * modes, which is never formed whole: it is built CHUNK_CELLS / R rows at
 * a time and each block's dgemm accumulates.  The other modes share one
 * more dgemm (a dimension tree of depth one): Y = X x_s A_s^T, the
 * tensor contracted with the root factor, an R-column matrix over the
 * other modes' multi-index, and each of their MTTKRPs is then a small
 * per-column contraction of Y.  Y depends only on A_s, so with s = 0 it is
 * formed after A_0 is updated, with s = N-1 at the start of the sweep
 * (from the previous A_{N-1}), and the sweep order stays 0 .. N-1.  So a
 * sweep is three big dgemms (root MTTKRP, Y, reconstruction) whatever N.
 *
 * The reconstruction is split at the root as well: W_hat seen as a
 * column-major matrix with the other modes' (row-major) multi-index along
 * one side is (KR diag(lambda)) A_s^T, one block of Khatri-Rao rows at a
 * time.  Rows are generated with an odometer over the multi-index, so
 * there is no division per element.
 */
#include "config.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cp.h"
#include "rankscope/util.h"

/* Khatri-Rao cells per block (2 MiB of doubles). */
#define CHUNK_CELLS ((size_t)1 << 18)
/* Seed of the generator for initial columns beyond a mode's size. */
#define INIT_SEED 0x43502d414c53ull

typedef struct work {
	size_t nmodes, dims[RS_CP_MAX_MODES], rank, total, dmax;
	size_t root;        /* 0 or nmodes - 1, the larger */
	size_t other;       /* total / dims[root] */
	double *x;          /* W / ||W||_F, row-major */
	double *xhat;       /* the model, row-major; the unfolding during init */
	double *yk;         /* Y = X x_root A_root^T, other x R */
	double *side[2];    /* Khatri-Rao products within Y, before / after a mode */
	double *m;          /* MTTKRP, d x R column-major; permutation scratch */
	double *rhs;        /* R x d: M^T, then the new factor transposed */
	double *y;          /* R x d, pseudo-inverse scratch */
	double *gram[RS_CP_MAX_MODES]; /* A_k^T A_k, R x R, both triangles */
	double *v, *fac, *z; /* R x R: V, its Cholesky factor, eigenvectors */
	double *eig;        /* max(R, dmax) eigenvalues */
	double *g;          /* dmax x dmax, the mode Gram of the initialisation */
	double *chunk;      /* chunk_rows x R: a block of Khatri-Rao rows */
	size_t chunk_rows;
} work;

static size_t
span(const size_t *dims, size_t from, size_t to)
{
	size_t n = 1, k;

	for (k = from; k < to; k++)
		n *= dims[k];
	return n;
}

static void
format_dims(char *buf, size_t len, size_t nmodes, const size_t *dims)
{
	size_t k, o = 0;

	buf[0] = '\0';
	for (k = 0; k < nmodes && o < len; k++)
		o += (size_t)snprintf(buf + o, len - o, "%s%zu", k ? "x" : "", dims[k]);
}

/* splitmix64: a private, fixed-seed source for the extra initial columns. */
static uint64_t
next_u64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double
next_gaussian(uint64_t *state)
{
	/* u in (0, 1] so the log is finite. */
	double u = (double)((next_u64(state) >> 11) + 1) * 0x1.0p-53;
	double v = (double)(next_u64(state) >> 11) * 0x1.0p-53;

	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/*
 * Rows [p0, p0 + c) of the Khatri-Rao product of modes [from, to), row p
 * for the row-major multi-index p of those modes, each column r times
 * lambda[r] when lambda is not NULL: c x R column-major into out.  With
 * no modes (from == to) the product is the single row of ones.
 *
 * An odometer walks the multi-index; pre[k] holds the product of the
 * entries of modes before k, recomputed only from the digit that
 * changed, and the last mode's run is one contiguous loop: about one
 * multiplication per entry.
 */
static void
khatri_rao_rows(size_t R, const size_t *dims, double *const *f, size_t from,
                size_t to, const double *lambda, size_t p0, size_t c, double *out)
{
	size_t start[RS_CP_MAX_MODES], idx[RS_CP_MAX_MODES], rest = p0, last, k, r, j, i;
	double pre[RS_CP_MAX_MODES + 1];

	for (k = to; k-- > from;) {
		start[k] = rest % dims[k];
		rest /= dims[k];
	}
	for (r = 0; r < R; r++) {
		double *col = out + r * c, base = lambda ? lambda[r] : 1.0;
		if (from == to) {
			for (j = 0; j < c; j++)
				col[j] = base;
			continue;
		}
		last = to - 1;
		for (k = from; k < to; k++)
			idx[k] = start[k];
		pre[from] = base;
		for (k = from; k < last; k++)
			pre[k + 1] = pre[k] * f[k][idx[k] + r * dims[k]];
		for (j = 0; j < c;) {
			const double *a = f[last] + r * dims[last];
			size_t run = dims[last] - idx[last];
			if (run > c - j)
				run = c - j;
			for (i = 0; i < run; i++)
				col[j + i] = pre[last] * a[idx[last] + i];
			j += run;
			/* Carry into the earlier digits, then refresh their products. */
			idx[last] = 0;
			k = last;
			while (k > from) {
				k--;
				if (++idx[k] < dims[k])
					break;
				idx[k] = 0;
			}
			for (; k < last; k++)
				pre[k + 1] = pre[k] * f[k][idx[k] + r * dims[k]];
		}
	}
}

/*
 * MTTKRP of the root into wk->m (d x R), directly from X against the
 * Khatri-Rao product of all other modes, summed over blocks of its rows.
 */
static void
mttkrp_root(work *wk, double *const *f)
{
	size_t N = wk->nmodes, R = wk->rank, s = wk->root, d = wk->dims[s];
	size_t K = wk->other, rows = wk->chunk_rows, from = s == 0 ? 1 : 0;
	size_t to = s == 0 ? N : N - 1, b0, c;

	for (b0 = 0; b0 < K; b0 += c) {
		c = K - b0 < rows ? K - b0 : rows;
		khatri_rao_rows(R, wk->dims, f, from, to, NULL, b0, c, wk->chunk);
		if (s == 0)
			/* X is the column-major K x d matrix: M = X^T KR. */
			cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (blasint)d,
			            (blasint)R, (blasint)c, 1.0, wk->x + b0, (blasint)K,
			            wk->chunk, (blasint)c, b0 ? 1.0 : 0.0, wk->m, (blasint)d);
		else
			/* X is the column-major d x K matrix: M = X KL. */
			cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)d,
			            (blasint)R, (blasint)c, 1.0, wk->x + b0 * d, (blasint)d,
			            wk->chunk, (blasint)c, b0 ? 1.0 : 0.0, wk->m, (blasint)d);
	}
}

/* wk->yk = X x_root A_root^T: the tensor contracted with the root factor. */
static void
form_y(work *wk, double *const *f)
{
	size_t s = wk->root, d = wk->dims[s], K = wk->other, R = wk->rank;

	if (s == 0)
		/* X is the column-major K x d matrix; Y = X A_0. */
		cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)K,
		            (blasint)R, (blasint)d, 1.0, wk->x, (blasint)K, f[0],
		            (blasint)d, 0.0, wk->yk, (blasint)K);
	else
		/* X is the column-major d x K matrix; Y = X^T A_{N-1}. */
		cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (blasint)K,
		            (blasint)R, (blasint)d, 1.0, wk->x, (blasint)d, f[s],
		            (blasint)d, 0.0, wk->yk, (blasint)K);
}

/*
 * MTTKRP of a mode n other than the root from Y: column r of Y is the
 * tensor over the other modes, a P x d x Q array around n, contracted
 * with the Khatri-Rao products of the modes before and after n in it.
 */
static void
mttkrp_from_y(work *wk, double *const *f, size_t n)
{
	size_t lo = wk->root == 0 ? 1 : 0, hi = wk->root == 0 ? wk->nmodes : wk->nmodes - 1;
	size_t R = wk->rank, d = wk->dims[n], K = wk->other;
	size_t P = span(wk->dims, lo, n), Q = span(wk->dims, n + 1, hi), r, p, i, q;

	khatri_rao_rows(R, wk->dims, f, lo, n, NULL, 0, P, wk->side[0]);
	khatri_rao_rows(R, wk->dims, f, n + 1, hi, NULL, 0, Q, wk->side[1]);
	for (r = 0; r < R; r++) {
		const double *y = wk->yk + r * K, *kl = wk->side[0] + r * P;
		const double *kr = wk->side[1] + r * Q;
		double *m = wk->m + r * d;
		for (i = 0; i < d; i++)
			m[i] = 0.0;
		for (p = 0; p < P; p++)
			for (i = 0; i < d; i++) {
				const double *row = y + (p * d + i) * Q;
				double s = 0.0;
				for (q = 0; q < Q; q++)
					s += row[q] * kr[q];
				m[i] += kl[p] * s;
			}
	}
}

/* g = A^T A for the d x R factor a, both triangles filled. */
static void
gram(const double *a, size_t d, size_t R, double *g)
{
	size_t i, j;

	cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (blasint)R, (blasint)d, 1.0,
	            a, (blasint)d, 0.0, g, (blasint)R);
	for (j = 0; j < R; j++)
		for (i = j + 1; i < R; i++)
			g[i + j * R] = g[j + i * R];
}

/*
 * Solves V X = rhs (R x d) in place, V = wk->v symmetric positive
 * semi-definite.  Cholesky when it is well enough conditioned, else the
 * eigen-decomposition pseudo-inverse (the minimum-norm least-squares
 * solution): see cp.h.
 */
static rs_status
solve_normal(work *wk, size_t d, rs_error *err)
{
	size_t R = wk->rank, i, j;
	lapack_int info;
	double anorm, rcond = 0.0, cut;

	memcpy(wk->fac, wk->v, R * R * sizeof *wk->fac);
	anorm = LAPACKE_dlansy(LAPACK_COL_MAJOR, '1', 'U', (lapack_int)R, wk->fac,
	                       (lapack_int)R);
	info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)R, wk->fac, (lapack_int)R);
	/* info < 0 means we passed a bad argument: a bug, not a user error. */
	if (info < 0)
		abort();
	if (info == 0) {
		if (LAPACKE_dpocon(LAPACK_COL_MAJOR, 'U', (lapack_int)R, wk->fac,
		                   (lapack_int)R, anorm, &rcond) < 0)
			abort();
		if (rcond >= RS_CP_RCOND_MIN) {
			if (LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'U', (lapack_int)R, (lapack_int)d,
			                   wk->fac, (lapack_int)R, wk->rhs, (lapack_int)R) != 0)
				abort();
			return RS_OK;
		}
	}
	memcpy(wk->z, wk->v, R * R * sizeof *wk->z);
	info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)R, wk->z,
	                      (lapack_int)R, wk->eig);
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC,
		    "dsyevd did not converge on the %zux%zu normal equations (info %d)",
		    R, R, (int)info);
	/* Eigenvalues ascend; those at rounding level of the largest are 0. */
	cut = wk->eig[R - 1] * (double)R * DBL_EPSILON;
	cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (blasint)R, (blasint)d,
	            (blasint)R, 1.0, wk->z, (blasint)R, wk->rhs, (blasint)R, 0.0, wk->y,
	            (blasint)R);
	for (j = 0; j < R; j++) {
		double s = wk->eig[j] > cut && wk->eig[j] > 0 ? 1.0 / wk->eig[j] : 0.0;
		for (i = 0; i < d; i++)
			wk->y[j + i * R] *= s;
	}
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)R, (blasint)d,
	            (blasint)R, 1.0, wk->z, (blasint)R, wk->y, (blasint)R, 0.0, wk->rhs,
	            (blasint)R);
	return RS_OK;
}

/*
 * Writes the model to out (row-major), split at mode s, the larger of the
 * first and the last: the other modes' Khatri-Rao product (times lambda)
 * is built chunk_rows rows at a time into scratch (chunk_rows x R).
 */
static void
reconstruct(size_t N, const size_t *dims, size_t R, double *const *f,
            const double *lambda, double *out, double *scratch, size_t chunk_rows)
{
	size_t s = dims[0] >= dims[N - 1] ? 0 : N - 1, d = dims[s];
	size_t from = s == 0 ? 1 : 0, to = s == 0 ? N : N - 1;
	size_t K = span(dims, from, to), b0, c;

	for (b0 = 0; b0 < K; b0 += c) {
		c = K - b0 < chunk_rows ? K - b0 : chunk_rows;
		khatri_rao_rows(R, dims, f, from, to, lambda, b0, c, scratch);
		if (s == 0)
			/* W_hat is the column-major K x d matrix KR A_0^T. */
			cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (blasint)c,
			            (blasint)d, (blasint)R, 1.0, scratch, (blasint)c, f[0],
			            (blasint)d, 0.0, out + b0, (blasint)K);
		else
			/* W_hat is the column-major d x K matrix A_{N-1} KL^T. */
			cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (blasint)d,
			            (blasint)c, (blasint)R, 1.0, f[N - 1], (blasint)d, scratch,
			            (blasint)c, 0.0, out + b0 * d, (blasint)d);
	}
}

static size_t
chunk_rows_for(size_t rank)
{
	size_t rows = CHUNK_CELLS / rank;

	return rows ? rows : 1;
}

void
rs_cp_reconstruct(const rs_cp *cp, double *out)
{
	size_t rows = chunk_rows_for(cp->rank);
	double *scratch = rs_xreallocarray(NULL, rows * cp->rank, sizeof *scratch);

	reconstruct(cp->nmodes, cp->dims, cp->rank, cp->factors, cp->lambda, out,
	            scratch, rows);
	free(scratch);
}

/*
 * HOSVD initialisation of factor k: the leading eigenvectors of the mode-k
 * Gram matrix, then generator columns when R > dims[k].
 */
static rs_status
init_factor(work *wk, size_t k, double *a, uint64_t *rng, rs_error *err)
{
	size_t N = wk->nmodes, R = wk->rank, d = wk->dims[k];
	size_t P = span(wk->dims, 0, k), Q = span(wk->dims, k + 1, N);
	size_t p, q, i, r, lead = R < d ? R : d;
	double *u = wk->xhat;
	lapack_int info;

	/* The unfolding X_(k), d x (P Q) column-major. */
	for (p = 0; p < P; p++)
		for (i = 0; i < d; i++)
			for (q = 0; q < Q; q++)
				u[i + d * (p * Q + q)] = wk->x[(p * d + i) * Q + q];
	cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (blasint)d, (blasint)(P * Q),
	            1.0, u, (blasint)d, 0.0, wk->g, (blasint)d);
	info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)d, wk->g,
	                      (lapack_int)d, wk->eig);
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC,
		    "dsyevd did not converge on the mode-%zu Gram matrix (info %d)",
		    k, (int)info);
	/* Ascending eigenvalues: column r takes eigenvector d - 1 - r. */
	for (r = 0; r < lead; r++)
		memcpy(a + r * d, wk->g + (d - 1 - r) * d, d * sizeof *a);
	for (r = lead; r < R; r++) {
		double norm = 0.0;
		for (i = 0; i < d; i++) {
			a[i + r * d] = next_gaussian(rng);
			norm += a[i + r * d] * a[i + r * d];
		}
		norm = sqrt(norm);
		/* A Gaussian vector is 0 with probability 0; e_0 just in case. */
		for (i = 0; i < d; i++)
			a[i + r * d] = norm > 0 ? a[i + r * d] / norm : (i == 0);
	}
	return RS_OK;
}

/* ||x - xhat||_F for the scaled tensor, i.e. the relative error. */
static double
scaled_error(const work *wk)
{
	double s = 0.0;
	size_t i;

	for (i = 0; i < wk->total; i++) {
		double e = wk->x[i] - wk->xhat[i];
		s += e * e;
	}
	return sqrt(s);
}

/*
 * Factor n from the solved rhs: columns normalised into lambda.  A zero
 * column keeps its previous (unit) vector with weight 0.
 */
static rs_status
take_factor(work *wk, size_t n, double *a, double *lambda, int sweep, rs_error *err)
{
	size_t R = wk->rank, d = wk->dims[n], i, r;

	for (r = 0; r < R; r++) {
		double norm = cblas_dnrm2((blasint)d, wk->rhs + r, (blasint)R);
		if (!isfinite(norm))
			return rs_error_set(err, RS_ENUMERIC,
			    "sweep %d, mode %zu: component %zu is not finite", sweep, n, r);
		lambda[r] = norm;
		if (norm > 0)
			for (i = 0; i < d; i++)
				a[i + r * d] = wk->rhs[r + i * R] / norm;
	}
	return RS_OK;
}

typedef struct ranked {
	double lambda;
	size_t index;
} ranked;

static int
by_weight(const void *pa, const void *pb)
{
	const ranked *a = pa, *b = pb;

	if (a->lambda != b->lambda)
		return a->lambda > b->lambda ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Signs as in cp.h, then components sorted by weight (ties: ALS order). */
static void
canonicalise(work *wk, rs_cp *cp)
{
	size_t N = cp->nmodes, R = cp->rank, last = N - 1, k, r, i, best;
	ranked *order = rs_xreallocarray(NULL, R, sizeof *order);

	for (k = 0; k < last; k++)
		for (r = 0; r < R; r++) {
			double *col = cp->factors[k] + r * cp->dims[k];
			best = 0;
			for (i = 1; i < cp->dims[k]; i++)
				if (fabs(col[i]) > fabs(col[best]))
					best = i;
			if (col[best] < 0) {
				double *other = cp->factors[last] + r * cp->dims[last];
				for (i = 0; i < cp->dims[k]; i++)
					col[i] = -col[i];
				for (i = 0; i < cp->dims[last]; i++)
					other[i] = -other[i];
			}
		}
	for (r = 0; r < R; r++) {
		order[r].lambda = cp->lambda[r];
		order[r].index = r;
	}
	qsort(order, R, sizeof *order, by_weight);
	for (k = 0; k < N; k++) {
		size_t d = cp->dims[k];
		for (r = 0; r < R; r++)
			memcpy(wk->m + r * d, cp->factors[k] + order[r].index * d, d * sizeof *wk->m);
		memcpy(cp->factors[k], wk->m, d * R * sizeof *wk->m);
	}
	for (r = 0; r < R; r++)
		cp->lambda[r] = order[r].lambda;
	free(order);
}

static void
work_free(work *wk)
{
	size_t k;

	free(wk->x);
	free(wk->xhat);
	free(wk->yk);
	free(wk->side[0]);
	free(wk->side[1]);
	free(wk->m);
	free(wk->rhs);
	free(wk->y);
	for (k = 0; k < RS_CP_MAX_MODES; k++)
		free(wk->gram[k]);
	free(wk->v);
	free(wk->fac);
	free(wk->z);
	free(wk->eig);
	free(wk->g);
	free(wk->chunk);
}

/* a * b * c doubles in bytes into *out; false on overflow. */
static bool
doubles(size_t a, size_t b, size_t c, size_t *out)
{
	size_t n;

	return !rs_mul_overflows(a, b, &n) && !rs_mul_overflows(n, c, &n) &&
	       !rs_mul_overflows(n, sizeof(double), out);
}

/*
 * Checks the arguments and sizes everything; allocation failures are
 * reported by the caller.  Sizes in bytes go to bytes[]: x and xhat, Y,
 * the Khatri-Rao products within Y, m/rhs/y, R x R, eig, g, chunk.
 */
enum { B_TENSOR, B_Y, B_SIDE, B_DR, B_RR, B_EIG, B_G, B_CHUNK, B_COUNT };

static rs_status
check_args(size_t nmodes, const size_t *dims, size_t rank, int max_iter, double tol,
           size_t *total, size_t *bytes, rs_error *err)
{
	char shape[128];
	size_t k, n = 1, dmax = 0, smax = 0, root, lo, hi;

	if (nmodes < 2 || nmodes > RS_CP_MAX_MODES)
		return rs_error_set(err, RS_EINVAL,
		    "a CP decomposition needs a tensor of 2 to %d modes, not %zu",
		    RS_CP_MAX_MODES, nmodes);
	format_dims(shape, sizeof shape, nmodes, dims);
	for (k = 0; k < nmodes; k++)
		if (dims[k] == 0)
			return rs_error_set(err, RS_EINVAL,
			    "mode %zu of the %s tensor has size 0", k, shape);
	if (rank == 0)
		return rs_error_set(err, RS_EINVAL,
		    "CP rank 0 for the %s tensor: the rank must be >= 1", shape);
	if (max_iter < 1)
		return rs_error_set(err, RS_EINVAL,
		    "max_iter %d for the CP of the %s tensor: at least 1 sweep is needed",
		    max_iter, shape);
	if (!(tol >= 0) || !isfinite(tol))
		return rs_error_set(err, RS_EINVAL,
		    "CP tolerance %g must be finite and >= 0", tol);
	for (k = 0; k < nmodes; k++)
		if (rs_mul_overflows(n, dims[k], &n))
			return rs_error_set(err, RS_EINVAL,
			    "the %s tensor has more elements than size_t can count", shape);
	if (n > INT_MAX)
		return rs_error_set(err, RS_EINVAL,
		    "the %s tensor has %zu elements, beyond BLAS's 32-bit index range",
		    shape, n);
	if (rank > INT_MAX)
		return rs_error_set(err, RS_EINVAL,
		    "CP rank %zu is beyond BLAS's 32-bit index range", rank);
	root = dims[0] >= dims[nmodes - 1] ? 0 : nmodes - 1;
	lo = root == 0 ? 1 : 0;
	hi = root == 0 ? nmodes : nmodes - 1;
	for (k = 0; k < nmodes; k++) {
		if (dims[k] > dmax)
			dmax = dims[k];
		if (k >= lo && k < hi) {
			size_t P = span(dims, lo, k), Q = span(dims, k + 1, hi);
			if (P > smax)
				smax = P;
			if (Q > smax)
				smax = Q;
		}
	}
	if (!doubles(n, 1, 1, &bytes[B_TENSOR]) ||
	    !doubles(n / dims[root], rank, 1, &bytes[B_Y]) ||
	    !doubles(smax, rank, 1, &bytes[B_SIDE]) ||
	    !doubles(dmax, rank, 1, &bytes[B_DR]) ||
	    !doubles(rank, rank, 1, &bytes[B_RR]) ||
	    !doubles(rank > dmax ? rank : dmax, 1, 1, &bytes[B_EIG]) ||
	    !doubles(dmax, dmax, 1, &bytes[B_G]) ||
	    !doubles(chunk_rows_for(rank), rank, 1, &bytes[B_CHUNK]))
		return rs_error_set(err, RS_EINVAL,
		    "CP rank %zu of the %s tensor: the work arrays' sizes overflow",
		    rank, shape);
	*total = n;
	return RS_OK;
}

/* The first non-finite element, by multi-index; RS_OK when there is none. */
static rs_status
check_finite(const double *w, size_t nmodes, const size_t *dims, size_t total,
             rs_error *err)
{
	char where[128], shape[128];
	size_t e, k, o = 0, idx[RS_CP_MAX_MODES];

	for (e = 0; e < total; e++)
		if (!isfinite(w[e]))
			break;
	if (e == total)
		return RS_OK;
	for (k = nmodes, o = e; k-- > 0;) {
		idx[k] = o % dims[k];
		o /= dims[k];
	}
	o = 0;
	for (k = 0; k < nmodes && o < sizeof where; k++)
		o += (size_t)snprintf(where + o, sizeof where - o, "%s%zu", k ? ", " : "",
		                      idx[k]);
	format_dims(shape, sizeof shape, nmodes, dims);
	return rs_error_set(err, RS_ENUMERIC,
	    "element (%s) of the %s tensor is not finite", where, shape);
}

rs_cp *
rs_cp_als(const double *w, size_t nmodes, const size_t *dims, size_t rank,
          int max_iter, double tol, rs_error *err)
{
	work wk;
	rs_cp *cp = NULL;
	size_t bytes[B_COUNT], total = 0, N = nmodes, R = rank, k, i, cap = 0;
	double amax = 0.0, sum = 0.0, nrm, prev = 0.0;
	uint64_t rng = INIT_SEED;
	int sweep;

	memset(&wk, 0, sizeof wk);
	if (check_args(nmodes, dims, rank, max_iter, tol, &total, bytes, err) != RS_OK ||
	    check_finite(w, nmodes, dims, total, err) != RS_OK)
		return NULL;

	cp = rs_xcalloc(1, sizeof *cp);
	cp->nmodes = N;
	cp->rank = R;
	memcpy(cp->dims, dims, N * sizeof *dims);
	wk.nmodes = N;
	wk.rank = R;
	wk.total = total;
	memcpy(wk.dims, dims, N * sizeof *dims);
	for (k = 0; k < N; k++)
		if (dims[k] > wk.dmax)
			wk.dmax = dims[k];
	wk.chunk_rows = chunk_rows_for(R);
	wk.root = dims[0] >= dims[N - 1] ? 0 : N - 1;
	wk.other = total / dims[wk.root];

	for (k = 0; k < N; k++) {
		cp->factors[k] = malloc(dims[k] * R * sizeof(double));
		wk.gram[k] = malloc(bytes[B_RR]);
		if (cp->factors[k] == NULL || wk.gram[k] == NULL)
			goto nomem;
	}
	cp->lambda = malloc(R * sizeof(double));
	wk.x = malloc(bytes[B_TENSOR]);
	wk.xhat = malloc(bytes[B_TENSOR]);
	wk.yk = malloc(bytes[B_Y]);
	wk.side[0] = malloc(bytes[B_SIDE]);
	wk.side[1] = malloc(bytes[B_SIDE]);
	wk.m = malloc(bytes[B_DR]);
	wk.rhs = malloc(bytes[B_DR]);
	wk.y = malloc(bytes[B_DR]);
	wk.v = malloc(bytes[B_RR]);
	wk.fac = malloc(bytes[B_RR]);
	wk.z = malloc(bytes[B_RR]);
	wk.eig = malloc(bytes[B_EIG]);
	wk.g = malloc(bytes[B_G]);
	wk.chunk = malloc(bytes[B_CHUNK]);
	if (cp->lambda == NULL || wk.x == NULL || wk.xhat == NULL ||
	    wk.yk == NULL || wk.side[0] == NULL ||
	    wk.side[1] == NULL || wk.m == NULL || wk.rhs == NULL ||
	    wk.y == NULL || wk.v == NULL || wk.fac == NULL || wk.z == NULL ||
	    wk.eig == NULL || wk.g == NULL || wk.chunk == NULL)
		goto nomem;

	/* ||W||_F without overflow: scaled by the largest magnitude. */
	for (i = 0; i < total; i++)
		if (fabs(w[i]) > amax)
			amax = fabs(w[i]);
	if (amax > 0)
		for (i = 0; i < total; i++)
			sum += (w[i] / amax) * (w[i] / amax);
	nrm = amax * sqrt(sum);
	if (!isfinite(nrm)) {
		rs_error_set(err, RS_ENUMERIC, "the tensor's Frobenius norm overflows");
		goto fail;
	}
	for (i = 0; i < total; i++)
		wk.x[i] = nrm > 0 ? w[i] / nrm : 0.0;

	for (k = 0; k < N; k++) {
		if (init_factor(&wk, k, cp->factors[k], &rng, err) != RS_OK)
			goto fail;
		gram(cp->factors[k], dims[k], R, wk.gram[k]);
	}
	for (i = 0; i < R; i++)
		cp->lambda[i] = 0.0;
	cp->history = rs_xmalloc(sizeof *cp->history);
	if (nrm == 0) {
		cp->converged = 1;
		goto done;
	}

	for (sweep = 1; sweep <= max_iter; sweep++) {
		double e;
		size_t n, j;

		for (n = 0; n < N; n++) {
			if (n == wk.root) {
				mttkrp_root(&wk, cp->factors);
			} else {
				/* Y from the root's current factor, once per sweep. */
				if (n == (wk.root == 0 ? 1 : 0))
					form_y(&wk, cp->factors);
				mttkrp_from_y(&wk, cp->factors, n);
			}
			for (i = 0; i < R * R; i++)
				wk.v[i] = 1.0;
			for (k = 0; k < N; k++)
				if (k != n)
					for (i = 0; i < R * R; i++)
						wk.v[i] *= wk.gram[k][i];
			for (j = 0; j < R; j++)
				for (i = 0; i < dims[n]; i++)
					wk.rhs[j + i * R] = wk.m[i + j * dims[n]];
			if (solve_normal(&wk, dims[n], err) != RS_OK ||
			    take_factor(&wk, n, cp->factors[n], cp->lambda, sweep, err) != RS_OK) {
				rs_error_prefix(err, "CP-ALS of rank %zu: ", R);
				goto fail;
			}
			gram(cp->factors[n], dims[n], R, wk.gram[n]);
		}
		reconstruct(N, dims, R, cp->factors, cp->lambda, wk.xhat, wk.chunk,
		            wk.chunk_rows);
		e = scaled_error(&wk);
		if (!isfinite(e)) {
			rs_error_set(err, RS_ENUMERIC,
			    "CP-ALS of rank %zu: the error after sweep %d is not finite",
			    R, sweep);
			goto fail;
		}
		if ((size_t)sweep > cap) {
			cap = cap ? 2 * cap : 16;
			if (cap > (size_t)max_iter)
				cap = (size_t)max_iter;
			cp->history = rs_xreallocarray(cp->history, cap, sizeof *cp->history);
		}
		cp->history[sweep - 1] = e;
		cp->iterations = sweep;
		if (e < RS_CP_TINY_ERR || (sweep >= 2 && prev - e <= tol * prev)) {
			cp->converged = 1;
			break;
		}
		prev = e;
	}

done:
	canonicalise(&wk, cp);
	for (i = 0; i < R; i++)
		cp->lambda[i] *= nrm;
	cp->err = 0.0;
	if (nrm > 0) {
		/* Measured on what is returned, against the caller's tensor. */
		double s = 0.0;
		rs_cp_reconstruct(cp, wk.xhat);
		for (i = 0; i < total; i++) {
			double e = (w[i] - wk.xhat[i]) / nrm;
			s += e * e;
		}
		cp->err = sqrt(s);
	}
	work_free(&wk);
	return cp;

nomem:
	{
		char shape[128];
		format_dims(shape, sizeof shape, N, dims);
		rs_error_set(err, RS_ENOMEM,
		    "out of memory for the rank-%zu CP of the %s tensor", R, shape);
	}
fail:
	work_free(&wk);
	rs_cp_free(cp);
	return NULL;
}

void
rs_cp_free(rs_cp *cp)
{
	size_t k;

	if (cp == NULL)
		return;
	for (k = 0; k < RS_CP_MAX_MODES; k++)
		free(cp->factors[k]);
	free(cp->lambda);
	free(cp->history);
	free(cp);
}

/* R (dims[0] + ... ), SIZE_MAX on overflow, 0 for a bad mode count. */
static size_t
cost(size_t nmodes, const size_t *dims, size_t rank, size_t scale)
{
	size_t sum = 0, out, k;

	if (nmodes < 2 || nmodes > RS_CP_MAX_MODES)
		return 0;
	for (k = 0; k < nmodes; k++) {
		if (dims[k] > SIZE_MAX - sum)
			return SIZE_MAX;
		sum += dims[k];
	}
	if (rs_mul_overflows(rank, sum, &out) || rs_mul_overflows(out, scale, &out))
		return SIZE_MAX;
	return out;
}

size_t
rs_cp_params(size_t nmodes, const size_t *dims, size_t rank)
{
	return cost(nmodes, dims, rank, 1);
}

size_t
rs_cp_flops(size_t nmodes, const size_t *dims, size_t rank)
{
	return cost(nmodes, dims, rank, 2);
}
