/*
 * la-combine.c — W ~ L + S (+ Q) by alternating projections; see
 * rankscope/combine.h.
 *
 * One iteration, parts left out of the spec skipped:
 *
 *   L <- SVD_r(W - S - Q)   the rank-r truncation of a thin dgesdd ('S')
 *                           of the residual: Eckart-Young, so exact.
 *                           Iteration 1 starts from S = 0, Q = 0, so its L
 *                           is the best rank-r approximation of W, and its
 *                           singular values are W's (kept for the low-rank
 *                           comparison below).
 *   S <- top_s(W - L - Q)   the s largest magnitudes, found by a
 *                           quickselect (three-way partition, pseudo-random
 *                           pivot from a fixed seed: O(mn) expected on any
 *                           input, many equal values included).  Elements
 *                           tied with the s-th largest magnitude are taken
 *                           in column-major order, so the set is
 *                           deterministic.
 *   Q <- rs_quantize(W - L - S)
 *                           A quantiser is not a projection: its grid
 *                           follows the values it is given, so Q(R) can be
 *                           farther from R than the previous Q is.  The new
 *                           Q is therefore kept only when
 *                           ||R - Q_new||_F <= ||R - Q_old||_F; otherwise
 *                           the old one stays (it is a quantised matrix of
 *                           the same quantiser and width, i.e. the same
 *                           storage).  Q starts at 0, which every quantiser
 *                           represents.
 *
 * L and S are exact minimisers of ||W - L - S - Q||_F over their own part
 * and Q never increases it, so the errors recorded after each iteration
 * are non-increasing (up to rounding, about 1e-16 relative).  The error is
 * measured directly on the explicit residual W - L - S - Q, relative to
 * ||W||_F.
 *
 * Stopping, after iteration i: cur == 0; or i >= 2 and
 * prev - cur <= tolerance * prev (a rise from rounding counts as "fell by
 * less"); or i == max_iterations.  A spec with a single part stops after
 * iteration 1: that part's input is W itself in every iteration, so the
 * second would repeat the first exactly.  `cancel` is read before every
 * iteration and once more before the single-part comparison.
 *
 * Storage (rs_combine_storage_bits):
 *   r (m + n) value_bits
 *   + rs_sparse_storage_bits(m, n, s, value_bits)          when s > 0
 *   + the quantiser's own rule from quant.h                  when quantised:
 *       b = rs_quantizer_bits(q, bits) bits per weight, plus
 *       uniform 64, per-channel 64 m, k-means 32 * 2^b, binary and
 *       ternary 32.
 * The quantised part's rule is computed here (it needs no matrix); it is
 * the formula rs_quantize reports as storage_bits, and the tests hold the
 * two against each other.
 *
 * Never worse than a single part.  With B = rs_combine_storage_bits of the
 * spec, three single-part approximations of W itself that fit in B are
 * evaluated exactly:
 *   low-rank   r' = min(min(m, n), floor(B / ((m + n) value_bits))); error
 *              sqrt(sum_{i > r'} sigma_i^2) / ||W||_F, the tail summed from
 *              the smallest value (sigma from iteration 1, or a values-only
 *              dgesdd of W when the spec has no low-rank part);
 *   pruned     s' = the largest nnz <= m n with
 *              rs_sparse_storage_bits(m, n, nnz, value_bits) <= B (a
 *              bisection: the storage grows with nnz); error from the
 *              dropped elements, selected as for S;
 *   quantised  only when the spec has a quantiser: that quantiser at the
 *              largest width b' <= 16 whose storage fits (binary and
 *              ternary have one width); error measured on rs_quantize's
 *              output.
 * (For binary and ternary the width is fixed, so b' is either theirs or
 * nothing.)  A candidate with nothing to keep (r' = 0, s' = 0, no b') is
 * skipped:
 * it would be the zero matrix, error 1, which the combination never
 * exceeds.  So is the candidate of the same kind as a single-part spec:
 * its budget buys exactly the spec (storage grows strictly with rank, nnz
 * and width), so it is the combination itself.  The candidate with the
 * smallest error replaces the combination when that error is strictly
 * smaller than the combination's final one (ties keep the combination,
 * then the earlier of low-rank, pruned, quantised); then approx holds it,
 * rel_error is its error, fallback says which, and fallback_rank (r') or
 * fallback_nonzeros (s') is set.  iterations and errors still describe the
 * combination's run, and storage_bits is B.
 *
 * W must be finite (RS_ENUMERIC names the first bad element).  An
 * all-zero W is exact at once: one iteration, error 0, approx 0.  approx
 * is written after W was last read, so it may be w itself when
 * ld == rows (in-place).
 *
 * Memory: the residual, L and Q as dense m x n doubles, one more m x n
 * buffer (selection and the quantiser's output), dgesdd's thin U and V^T,
 * and S as s (index, value) pairs.  Sized by the layer, so plain malloc
 * and RS_ENOMEM.
 */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/combine.h"
#include "rankscope/prune.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"

#define MAX_QUANT_BITS 16u

/* ---- storage ------------------------------------------------------------ */

/* The quantised part's codes and grid, centres or scale in the value dtype. */
static uint64_t
quant_storage_bits(size_t rows, size_t cols, const rs_combine_spec *spec, unsigned bits)
{
	return rs_quant_storage_bits(rows, cols, spec->quantizer, bits, spec->value_bits, false);
}

uint64_t
rs_combine_storage_bits(size_t rows, size_t cols, const rs_combine_spec *spec)
{
	uint64_t bits = (uint64_t)spec->rank * ((uint64_t)rows + cols) * spec->value_bits;

	if (spec->nonzeros > 0)
		bits += rs_sparse_storage_bits(rows, cols, spec->nonzeros, spec->value_bits, NULL);
	if (spec->quantize)
		bits += quant_storage_bits(rows, cols, spec, spec->bits);
	return bits;
}

/* ---- top-s selection ---------------------------------------------------- */

/* The k-th smallest (0-based) of a[0..n), n > k; a is reordered.
 * Three-way partitions keep runs of equal values (zeros in a residual)
 * linear. */
static double
kth_smallest(double *a, size_t n, size_t k)
{
	uint64_t state = 0x9e3779b97f4a7c15ull;
	size_t lo = 0, hi = n;

	while (hi - lo > 1) {
		size_t lt = lo, i = lo, gt = hi;
		double pivot, t;

		state ^= state >> 12;
		state ^= state << 25;
		state ^= state >> 27;
		pivot = a[lo + (size_t)((state * 0x2545f4914f6cdd1dull) % (hi - lo))];
		while (i < gt) {
			if (a[i] < pivot) {
				t = a[lt]; a[lt++] = a[i]; a[i++] = t;
			} else if (a[i] > pivot) {
				t = a[--gt]; a[gt] = a[i]; a[i] = t;
			} else {
				i++;
			}
		}
		if (k < lt)
			hi = lt;
		else if (k >= gt)
			lo = gt;
		else
			return pivot;
	}
	return a[lo];
}

/* Which elements the top-s selection keeps: every |x| > threshold, and
 * the first `ties` (column-major) with |x| == threshold. */
typedef struct cut {
	double threshold;
	size_t ties;
} cut;

/* The cut keeping the s largest magnitudes of the m x n matrix x
 * (leading dimension ld); mag is m n doubles of scratch. */
static cut
select_cut(const double *x, size_t m, size_t n, size_t ld, size_t s, double *mag)
{
	size_t count = m * n, above = 0, i, j;
	cut c;

	if (s == 0) {
		c.threshold = INFINITY;
		c.ties = 0;
		return c;
	}
	if (s >= count) {
		c.threshold = -1.0;
		c.ties = 0;
		return c;
	}
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			mag[i + j * m] = fabs(x[i + j * ld]);
	c.threshold = kth_smallest(mag, count, count - s);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			above += fabs(x[i + j * ld]) > c.threshold;
	c.ties = s - above;
	return c;
}

/* Whether the cut keeps an element of magnitude ax; call in column-major
 * order with *ties starting at c->ties. */
static bool
cut_keeps(const cut *c, double ax, size_t *ties)
{
	if (ax > c->threshold)
		return true;
	if (ax == c->threshold && *ties > 0) {
		(*ties)--;
		return true;
	}
	return false;
}

/* ---- the iteration -------------------------------------------------------- */

typedef struct combine {
	const double *w;
	size_t m, n, ld, count, k;
	const rs_combine_spec *spec;
	double norm2;           /* ||W||_F^2 */
	double *r;              /* residual; dgesdd's input */
	double *lmat;           /* L, m x n */
	double *q;              /* Q, m x n */
	double *scratch;        /* selection magnitudes, candidate Q */
	uint16_t *qcodes, *scodes;  /* Q's codes and the candidate's (column-major) */
	double *qbook, *sbook;      /* their codebooks (rs_quantize's layout) */
	double *u, *vt, *sigma; /* thin SVD: m x k, k x n, k */
	double *sigma_w;        /* W's singular values (k) */
	size_t *sidx;           /* S: ns (index, value) pairs, column-major index */
	double *sval;
	size_t ns;
} combine;

static rs_status
lapack_outcome(lapack_int info, const char *routine, rs_error *err)
{
	if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
		return rs_error_set(err, RS_ENOMEM, "out of memory for %s's workspace", routine);
	/* Any other info < 0 means we passed a bad argument: a bug. */
	if (info < 0)
		abort();
	if (info > 0)
		return rs_error_set(err, RS_ENUMERIC,
		    "%s did not converge (info %d)", routine, (int)info);
	return RS_OK;
}

/* out (ld m) = W - L - Q - S, each part left out when its pointer is NULL
 * (S when with_s is false). */
static void
residual(const combine *c, const double *lmat, const double *q, bool with_s, double *out)
{
	size_t i, j, t;

	for (j = 0; j < c->n; j++) {
		const double *wj = c->w + j * c->ld;
		double *oj = out + j * c->m;
		for (i = 0; i < c->m; i++)
			oj[i] = wj[i];
		if (lmat != NULL)
			for (i = 0; i < c->m; i++)
				oj[i] -= lmat[i + j * c->m];
		if (q != NULL)
			for (i = 0; i < c->m; i++)
				oj[i] -= q[i + j * c->m];
	}
	if (with_s)
		for (t = 0; t < c->ns; t++)
			out[c->sidx[t]] -= c->sval[t];
}

static double
sum_squares(const double *x, size_t count)
{
	double s = 0;
	size_t i;

	for (i = 0; i < count; i++)
		s += x[i] * x[i];
	return s;
}

static double
distance2(const double *x, const double *y, size_t count)
{
	double s = 0;
	size_t i;

	for (i = 0; i < count; i++) {
		double d = x[i] - y[i];
		s += d * d;
	}
	return s;
}

/* Thin SVD of c->r (destroyed) into sigma, u, vt, then out = the rank-r
 * truncation. */
static rs_status
truncate_svd(combine *c, size_t rank, double *out, rs_error *err)
{
	size_t i, t;
	rs_status st;

	for (i = 0; i < c->count; i++)
		if (!isfinite(c->r[i]))
			return rs_error_set(err, RS_ENUMERIC,
			    "the residual of a %zux%zu matrix is not finite", c->m, c->n);
	if ((st = rs_svd_vectors(c->r, c->m, c->n, c->m, c->sigma, c->u, c->vt, err)) != RS_OK)
		return st;
	for (t = 0; t < rank; t++)
		for (i = 0; i < c->m; i++)
			c->u[i + t * c->m] *= c->sigma[t];
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)c->m, (blasint)c->n,
	            (blasint)rank, 1.0, c->u, (blasint)c->m, c->vt, (blasint)c->k, 0.0,
	            out, (blasint)c->m);
	return RS_OK;
}

static rs_status
step_lowrank(combine *c, bool first, rs_error *err)
{
	rs_status st;

	residual(c, NULL, c->spec->quantize ? c->q : NULL, true, c->r);
	if ((st = truncate_svd(c, c->spec->rank, c->lmat, err)) != RS_OK) {
		rs_error_prefix(err, "combination, low-rank part: ");
		return st;
	}
	if (first)
		memcpy(c->sigma_w, c->sigma, c->k * sizeof *c->sigma);
	return RS_OK;
}

/* S <- top_s(W - L - Q); returns ||W - L - Q - S||_F^2. */
static double
step_sparse(combine *c)
{
	size_t i, ties, kept = 0;
	double e2 = 0;
	cut cu;

	residual(c, c->spec->rank ? c->lmat : NULL, c->spec->quantize ? c->q : NULL,
	         false, c->r);
	cu = select_cut(c->r, c->m, c->n, c->m, c->spec->nonzeros, c->scratch);
	ties = cu.ties;
	for (i = 0; i < c->count; i++) {
		double x = c->r[i];
		if (kept < c->spec->nonzeros && cut_keeps(&cu, fabs(x), &ties)) {
			c->sidx[kept] = i;
			c->sval[kept++] = x;
		} else {
			e2 += x * x;
		}
	}
	c->ns = kept;
	return e2;
}

/* Q <- quantise(W - L - S) unless that is farther than the old Q; returns
 * ||W - L - S - Q||_F^2. */
static rs_status
step_quant(combine *c, double *e2, rs_error *err)
{
	const rs_combine_spec *spec = c->spec;
	double e_new, e_old;
	rs_quant_result qr;
	rs_status st;

	residual(c, spec->rank ? c->lmat : NULL, NULL, true, c->r);
	st = rs_quantize(c->r, c->m, c->n, c->m, spec->quantizer, spec->bits, c->scratch,
	                 c->scodes, c->sbook, &qr, err);
	if (st != RS_OK) {
		rs_error_prefix(err, "combination, quantised part: ");
		return st;
	}
	e_new = distance2(c->r, c->scratch, c->count);
	e_old = distance2(c->r, c->q, c->count);
	if (e_new <= e_old) {
		/* the candidate becomes Q, its codes and codebook with it */
		double *t = c->q, *book = c->qbook;
		uint16_t *codes = c->qcodes;
		c->q = c->scratch;
		c->scratch = t;
		c->qcodes = c->scodes;
		c->scodes = codes;
		c->qbook = c->sbook;
		c->sbook = book;
		*e2 = e_new;
	} else {
		*e2 = e_old;
	}
	return RS_OK;
}

/* ---- validation ----------------------------------------------------------- */

static rs_status
validate(const double *w, size_t m, size_t n, size_t ld, const rs_combine_spec *spec,
         rs_error *err)
{
	size_t k = m < n ? m : n, count, i, j;

	if (w == NULL || spec == NULL)
		return rs_error_set(err, RS_EINVAL, "combination: no matrix or no spec");
	if (m == 0 || n == 0)
		return rs_error_set(err, RS_EINVAL, "combination: the matrix is empty (%zux%zu)",
		                    m, n);
	if (ld < m)
		return rs_error_set(err, RS_EINVAL,
		    "combination: leading dimension %zu is less than the %zu rows", ld, m);
	if (m > INT_MAX || n > INT_MAX || ld > INT_MAX || m > INT_MAX / k ||
	    n > INT_MAX / k || rs_mul_overflows(m, n, &count) ||
	    count > SIZE_MAX / sizeof(double))
		return rs_error_set(err, RS_EINVAL,
		    "combination: a %zux%zu matrix exceeds LAPACK's 32-bit index range", m, n);
	if (spec->rank == 0 && spec->nonzeros == 0 && !spec->quantize)
		return rs_error_set(err, RS_EINVAL,
		    "combination: no part to fit (rank 0, nonzeros 0 and no quantiser)");
	if (spec->rank > k)
		return rs_error_set(err, RS_EINVAL,
		    "combination: rank %zu exceeds min(rows, cols) = %zu of a %zux%zu matrix",
		    spec->rank, k, m, n);
	if (spec->nonzeros > count)
		return rs_error_set(err, RS_EINVAL,
		    "combination: %zu nonzeros exceed the %zu elements of a %zux%zu matrix",
		    spec->nonzeros, count, m, n);
	if (spec->value_bits < 1 || spec->value_bits > 64)
		return rs_error_set(err, RS_EINVAL,
		    "combination: value_bits %u is outside 1..64", spec->value_bits);
	if (spec->quantize) {
		if ((unsigned)spec->quantizer >= RS_QUANT_COUNT)
			return rs_error_set(err, RS_EINVAL,
			    "combination: unknown quantiser %d", (int)spec->quantizer);
		if (spec->quantizer != RS_QUANT_BINARY && spec->quantizer != RS_QUANT_TERNARY &&
		    (spec->bits < 1 || spec->bits > MAX_QUANT_BITS))
			return rs_error_set(err, RS_EINVAL,
			    "combination: %u bits for the %s quantiser is outside 1..%u",
			    spec->bits, rs_quantizer_name(spec->quantizer), MAX_QUANT_BITS);
	}
	if (spec->max_iterations < 1)
		return rs_error_set(err, RS_EINVAL,
		    "combination: max_iterations must be at least 1");
	if (!(spec->tolerance >= 0) || !isfinite(spec->tolerance))
		return rs_error_set(err, RS_EINVAL,
		    "combination: tolerance %g must be finite and not negative", spec->tolerance);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			if (!isfinite(w[i + j * ld]))
				return rs_error_set(err, RS_ENUMERIC,
				    "combination: element (%zu, %zu) of the %zux%zu matrix is not finite",
				    i, j, m, n);
	return RS_OK;
}

/* ---- the single parts ------------------------------------------------------ */

typedef struct candidates {
	rs_combine_fallback kind;
	double error;
	size_t rank;            /* r' */
	size_t nonzeros;        /* s' */
	unsigned bits;          /* b' */
	cut prune_cut;          /* W's top-s' cut */
} candidates;

static double *
alloc_doubles(size_t count)
{
	return malloc((count ? count : 1) * sizeof(double));
}

static rs_status
nomem(const combine *c, rs_error *err)
{
	return rs_error_set(err, RS_ENOMEM,
	    "out of memory for the combination of a %zux%zu matrix", c->m, c->n);
}

/* Evaluates the single parts that fit in `budget`; best->error starts at
 * the combination's error and only strictly smaller ones replace it. */
static rs_status
single_parts(combine *c, uint64_t budget, candidates *best, rs_error *err)
{
	const rs_combine_spec *spec = c->spec;
	int parts = (spec->rank > 0) + (spec->nonzeros > 0) + (spec->quantize ? 1 : 0);
	uint64_t per_rank = ((uint64_t)c->m + c->n) * spec->value_bits;
	size_t i, j;
	rs_status st;

	/* low-rank alone */
	if (!(parts == 1 && spec->rank > 0)) {
		uint64_t rr = budget / per_rank;
		size_t r = rr < c->k ? (size_t)rr : c->k;
		if (r > 0) {
			double tail = 0, e;
			if (spec->rank == 0) {
				lapack_int info;
				double dummy = 0;
				if (c->sigma_w == NULL && (c->sigma_w = alloc_doubles(c->k)) == NULL)
					return nomem(c, err);
				residual(c, NULL, NULL, false, c->r);
				info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)c->m,
				                      (lapack_int)c->n, c->r, (lapack_int)c->m,
				                      c->sigma_w, &dummy, 1, &dummy, 1);
				if ((st = lapack_outcome(info, "dgesdd", err)) != RS_OK) {
					rs_error_prefix(err, "combination, low-rank alone: ");
					return st;
				}
			}
			for (i = c->k; i > r; i--)
				tail += c->sigma_w[i - 1] * c->sigma_w[i - 1];
			e = sqrt(tail / c->norm2);
			if (e < best->error) {
				best->kind = RS_COMBINE_LOWRANK_ONLY;
				best->error = e;
				best->rank = r;
			}
		}
	}

	/* pruned alone */
	if (!(parts == 1 && spec->nonzeros > 0) &&
	    rs_sparse_storage_bits(c->m, c->n, 1, spec->value_bits, NULL) <= budget) {
		size_t lo = 1, hi = c->count, s, ties;
		double e2 = 0, e;
		cut cu;

		while (lo < hi) {          /* largest s in [lo, hi] that fits */
			size_t mid = hi - (hi - lo) / 2;
			if (rs_sparse_storage_bits(c->m, c->n, mid, spec->value_bits, NULL) <= budget)
				lo = mid;
			else
				hi = mid - 1;
		}
		s = lo;
		cu = select_cut(c->w, c->m, c->n, c->ld, s, c->scratch);
		ties = cu.ties;
		for (j = 0; j < c->n; j++)
			for (i = 0; i < c->m; i++) {
				double x = c->w[i + j * c->ld];
				if (!cut_keeps(&cu, fabs(x), &ties))
					e2 += x * x;
			}
		e = sqrt(e2 / c->norm2);
		if (e < best->error) {
			best->kind = RS_COMBINE_SPARSE_ONLY;
			best->error = e;
			best->nonzeros = s;
			best->prune_cut = cu;
		}
	}

	/* quantised alone, with the spec's quantiser */
	if (spec->quantize && parts > 1) {
		unsigned b;
		for (b = MAX_QUANT_BITS; b >= 1; b--)
			if (quant_storage_bits(c->m, c->n, spec, b) <= budget)
				break;
		if (b >= 1) {
			rs_quant_result qr;
			double e2 = 0, e;
			st = rs_quantize(c->w, c->m, c->n, c->ld, spec->quantizer, b, c->scratch,
			                 NULL, NULL, &qr, err);
			if (st != RS_OK) {
				rs_error_prefix(err, "combination, quantised alone at %u bits: ", b);
				return st;
			}
			for (j = 0; j < c->n; j++)
				for (i = 0; i < c->m; i++) {
					double d = c->w[i + j * c->ld] - c->scratch[i + j * c->m];
					e2 += d * d;
				}
			e = sqrt(e2 / c->norm2);
			if (e < best->error) {
				best->kind = RS_COMBINE_QUANT_ONLY;   /* Q_b'(W) stays in scratch */
				best->error = e;
				best->bits = b;
			}
		}
	}
	return RS_OK;
}

/* approx <- the winning single part.  Each element of W is read before
 * (or when) the same element of approx is written, so approx may be W. */
static rs_status
write_fallback(combine *c, const candidates *best, double *approx, rs_error *err)
{
	size_t i, j, ties;
	rs_status st;

	switch (best->kind) {
	case RS_COMBINE_LOWRANK_ONLY:
		if (best->rank == c->k) {       /* full rank: W itself */
			for (j = 0; j < c->n; j++)
				memmove(approx + j * c->m, c->w + j * c->ld, c->m * sizeof *approx);
			return RS_OK;
		}
		if (c->u == NULL) {
			c->u = alloc_doubles(c->m * c->k);
			c->vt = alloc_doubles(c->k * c->n);
			c->sigma = alloc_doubles(c->k);
			if (c->u == NULL || c->vt == NULL || c->sigma == NULL)
				return nomem(c, err);
		}
		residual(c, NULL, NULL, false, c->r);
		if ((st = truncate_svd(c, best->rank, approx, err)) != RS_OK)
			rs_error_prefix(err, "combination, low-rank alone: ");
		return st;
	case RS_COMBINE_SPARSE_ONLY:
		ties = best->prune_cut.ties;
		for (j = 0; j < c->n; j++)
			for (i = 0; i < c->m; i++) {
				double x = c->w[i + j * c->ld];
				approx[i + j * c->m] = cut_keeps(&best->prune_cut, fabs(x), &ties) ? x : 0.0;
			}
		return RS_OK;
	case RS_COMBINE_QUANT_ONLY:
		memcpy(approx, c->scratch, c->count * sizeof *approx);
		return RS_OK;
	default:
		return RS_OK;
	}
}

/* ---- entry points ----------------------------------------------------------- */

static bool
cancelled(const volatile int *cancel)
{
	return cancel != NULL && *cancel != 0;
}

static void
combine_free(combine *c)
{
	free(c->r);
	free(c->lmat);
	free(c->q);
	free(c->scratch);
	free(c->qcodes);
	free(c->scodes);
	free(c->qbook);
	free(c->sbook);
	free(c->u);
	free(c->vt);
	free(c->sigma);
	free(c->sigma_w);
	free(c->sidx);
	free(c->sval);
}

rs_status
rs_combine(const double *w, size_t rows, size_t cols, size_t ld,
           const rs_combine_spec *spec, const volatile int *cancel,
           void (*progress)(void *userdata, size_t iteration, double rel_error),
           void *userdata, double *approx, double *sparse, rs_combine_result *result,
           rs_error *err)
{
	return rs_combine_with_parts(w, rows, cols, ld, spec, cancel, progress, userdata,
	                             approx, sparse, NULL, result, err);
}

rs_status
rs_combine_with_parts(const double *w, size_t rows, size_t cols, size_t ld,
                      const rs_combine_spec *spec, const volatile int *cancel,
                      void (*progress)(void *userdata, size_t iteration, double rel_error),
                      void *userdata, double *approx, double *sparse,
                      rs_combine_parts *out, rs_combine_result *result, rs_error *err)
{
	rs_combine_result local;
	size_t cap = 0, it, i, j;
	double maxabs = 0;
	int parts;
	candidates best;
	combine c;
	rs_status st;

	if (result == NULL)
		result = &local;
	memset(result, 0, sizeof *result);
	memset(&c, 0, sizeof c);
	if ((st = validate(w, rows, cols, ld, spec, err)) != RS_OK)
		return st;
	c.w = w;
	c.m = rows;
	c.n = cols;
	c.ld = ld;
	c.count = rows * cols;
	c.k = rows < cols ? rows : cols;
	c.spec = spec;
	parts = (spec->rank > 0) + (spec->nonzeros > 0) + (spec->quantize ? 1 : 0);
	result->storage_bits = rs_combine_storage_bits(rows, cols, spec);

	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = w[i + j * ld];
			c.norm2 += x * x;
			if (fabs(x) > maxabs)
				maxabs = fabs(x);
		}
	if (maxabs > 0 && (c.norm2 == 0 || !isfinite(c.norm2)))
		return rs_error_set(err, RS_ENUMERIC,
		    "combination: ||W||_F^2 of the %zux%zu matrix is outside a double's range",
		    rows, cols);
	if (cancelled(cancel))
		return rs_error_set(err, RS_ECANCELLED,
		    "combination cancelled before its first iteration");
	if (sparse != NULL)
		for (j = 0; j < cols; j++)
			memset(sparse + j * rows, 0, rows * sizeof *sparse);
	if (maxabs == 0) {
		/* Every projection of a zero residual is zero: exact at once. */
		result->errors = rs_xmalloc(sizeof *result->errors);
		result->errors[0] = 0.0;
		result->iterations = 1;
		if (progress != NULL)
			progress(userdata, 1, 0.0);
		if (approx != NULL)
			memset(approx, 0, c.count * sizeof *approx);
		return RS_OK;
	}

	c.r = alloc_doubles(c.count);
	c.scratch = alloc_doubles(c.count);
	if (c.r == NULL || c.scratch == NULL)
		goto out_of_memory;
	if (spec->rank > 0) {
		c.lmat = alloc_doubles(c.count);
		c.u = alloc_doubles(c.m * c.k);
		c.vt = alloc_doubles(c.k * c.n);
		c.sigma = alloc_doubles(c.k);
		c.sigma_w = alloc_doubles(c.k);
		if (c.lmat == NULL || c.u == NULL || c.vt == NULL || c.sigma == NULL ||
		    c.sigma_w == NULL)
			goto out_of_memory;
	}
	if (spec->quantize) {
		/* codebooks: at most 2^16 levels, per channel m of them */
		size_t levels = (size_t)1 << rs_quantizer_bits(spec->quantizer, spec->bits);
		size_t nbook = spec->quantizer == RS_QUANT_UNIFORM_CHANNEL ? rows * levels : levels;
		if ((c.q = calloc(c.count, sizeof *c.q)) == NULL ||
		    (c.qcodes = calloc(c.count, sizeof *c.qcodes)) == NULL ||
		    (c.scodes = calloc(c.count, sizeof *c.scodes)) == NULL ||
		    (c.qbook = calloc(nbook, sizeof *c.qbook)) == NULL ||
		    (c.sbook = calloc(nbook, sizeof *c.sbook)) == NULL)
			goto out_of_memory;
	}
	if (spec->nonzeros > 0) {
		c.sidx = malloc(spec->nonzeros * sizeof *c.sidx);
		c.sval = alloc_doubles(spec->nonzeros);
		if (c.sidx == NULL || c.sval == NULL)
			goto out_of_memory;
	}

	for (it = 1; it <= spec->max_iterations; it++) {
		double e2 = 0, cur;

		if (it > 1 && cancelled(cancel)) {
			st = rs_error_set(err, RS_ECANCELLED,
			    "combination cancelled after %zu iterations", it - 1);
			goto fail;
		}
		if (spec->rank > 0 && (st = step_lowrank(&c, it == 1, err)) != RS_OK)
			goto fail;
		if (spec->nonzeros > 0)
			e2 = step_sparse(&c);
		if (spec->quantize && (st = step_quant(&c, &e2, err)) != RS_OK)
			goto fail;
		if (spec->nonzeros == 0 && !spec->quantize) {
			residual(&c, c.lmat, NULL, false, c.r);
			e2 = sum_squares(c.r, c.count);
		}
		cur = sqrt(e2 / c.norm2);
		if (it > cap) {
			cap = cap ? 2 * cap : 16;
			if (cap > spec->max_iterations)
				cap = spec->max_iterations;
			result->errors = rs_xreallocarray(result->errors, cap, sizeof *result->errors);
		}
		result->errors[it - 1] = cur;
		result->iterations = it;
		if (progress != NULL)
			progress(userdata, it, cur);
		if (cur == 0 || parts == 1)
			break;
		if (it >= 2) {
			double prev = result->errors[it - 2];
			if (prev - cur <= spec->tolerance * prev)
				break;
		}
	}
	if (cancelled(cancel)) {
		st = rs_error_set(err, RS_ECANCELLED,
		    "combination cancelled after %zu iterations", result->iterations);
		goto fail;
	}

	result->rel_error = result->errors[result->iterations - 1];
	memset(&best, 0, sizeof best);
	best.kind = RS_COMBINE_NONE;
	best.error = result->rel_error;
	if ((st = single_parts(&c, result->storage_bits, &best, err)) != RS_OK)
		goto fail;
	/* approx is written last: W is no longer read after this, so approx
	 * may be w itself (when ld == rows). */
	if (approx != NULL && best.kind != RS_COMBINE_NONE) {
		if ((st = write_fallback(&c, &best, approx, err)) != RS_OK)
			goto fail;
	} else if (approx != NULL) {
		if (spec->rank > 0)
			memcpy(approx, c.lmat, c.count * sizeof *approx);
		else
			memset(approx, 0, c.count * sizeof *approx);
		if (spec->quantize)
			for (i = 0; i < c.count; i++)
				approx[i] += c.q[i];
		for (i = 0; i < c.ns; i++)
			approx[c.sidx[i]] += c.sval[i];
	}
	if (sparse != NULL)
		for (i = 0; i < c.ns; i++)
			sparse[c.sidx[i]] = c.sval[i];
	if (out != NULL && best.kind == RS_COMBINE_NONE) {
		if (out->lowrank != NULL && spec->rank > 0)
			memcpy(out->lowrank, c.lmat, c.count * sizeof *out->lowrank);
		else if (out->lowrank != NULL)
			memset(out->lowrank, 0, c.count * sizeof *out->lowrank);
		if (spec->quantize && out->codes != NULL)
			memcpy(out->codes, c.qcodes, c.count * sizeof *out->codes);
		if (spec->quantize && out->codebook != NULL) {
			size_t levels = (size_t)1 << rs_quantizer_bits(spec->quantizer, spec->bits);
			memcpy(out->codebook, c.qbook, (spec->quantizer == RS_QUANT_UNIFORM_CHANNEL ?
			       rows * levels : levels) * sizeof *out->codebook);
		}
	}
	if (best.kind != RS_COMBINE_NONE) {
		result->fallback = best.kind;
		result->rel_error = best.error;
		if (best.kind == RS_COMBINE_LOWRANK_ONLY)
			result->fallback_rank = best.rank;
		else if (best.kind == RS_COMBINE_SPARSE_ONLY)
			result->fallback_nonzeros = best.nonzeros;
		else if (best.kind == RS_COMBINE_QUANT_ONLY)
			result->fallback_bits = best.bits;
	}
	combine_free(&c);
	if (result == &local)
		rs_combine_result_free(&local);
	return RS_OK;

out_of_memory:
	st = nomem(&c, err);
fail:
	combine_free(&c);
	rs_combine_result_free(result);
	memset(result, 0, sizeof *result);
	return st;
}

void
rs_combine_result_free(rs_combine_result *result)
{
	if (result == NULL)
		return;
	free(result->errors);
	result->errors = NULL;
}
