/* la-refine-tt.c — NN-BCD refinement of a TT-matrix's cores on G; see
 * rankscope/refine.h (rs_refine_tt) for the block solve and tt.h for the
 * index conventions.
 *
 * For core k the columns of W are reordered so that j_k is the most
 * significant digit: c = j_k N + s, N = n / n_k, s = j_<k N_>k + j_>k.
 * Then B = blockdiag(Phi, ..., Phi) and both products the normal
 * equations need are plain dgemms on contiguous blocks. */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/refine.h"
#include "rankscope/util.h"

/* The contraction of cores lo .. hi-1 (hi > lo) as a row-major
 * (ranks[lo] prod M_l) x ranks[hi] matrix, mode pairs a_l = i_l n_l + j_l
 * with a_lo most significant; NULL when out of memory.  Only used with
 * ranks[lo] = 1 (the prefix) or read as ranks[lo] x (prod M_l ranks[hi])
 * (the suffix, ranks[hi] = 1). */
static double *
contract(const rs_tt *tt, size_t lo, size_t hi, size_t *size)
{
	size_t rows = tt->ranks[lo] * tt->row_modes[lo] * tt->col_modes[lo], l;
	double *a = malloc(rows * tt->ranks[lo + 1] * sizeof *a), *b;

	if (a == NULL)
		return NULL;
	memcpy(a, tt->cores[lo], rows * tt->ranks[lo + 1] * sizeof *a);
	for (l = lo + 1; l < hi; l++) {
		size_t width = tt->row_modes[l] * tt->col_modes[l] * tt->ranks[l + 1];

		b = malloc(rows * width * sizeof *b);
		if (b == NULL) {
			free(a);
			return NULL;
		}
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)width,
		            (int)tt->ranks[l], 1.0, a, (int)tt->ranks[l], tt->cores[l], (int)width,
		            0.0, b, (int)width);
		free(a);
		a = b;
		rows *= tt->row_modes[l] * tt->col_modes[l];
	}
	*size = rows;
	return a;
}

/* Offsets into a contraction over modes lo .. hi-1 (a_lo most
 * significant): element (i_part, j_part) is at ri[i_part] + cj[j_part],
 * where i_part and j_part are the digits of those modes read as numbers. */
static void
part_offsets(const rs_tt *tt, size_t lo, size_t hi, size_t *ri, size_t *cj)
{
	size_t mi = 1, nj = 1, l, x;

	for (l = lo; l < hi; l++) {
		mi *= tt->row_modes[l];
		nj *= tt->col_modes[l];
	}
	for (x = 0; x < mi; x++) {
		size_t rem = x, off = 0, stride = 1;
		for (l = hi; l > lo; l--) {
			off += (rem % tt->row_modes[l - 1]) * tt->col_modes[l - 1] * stride;
			rem /= tt->row_modes[l - 1];
			stride *= tt->row_modes[l - 1] * tt->col_modes[l - 1];
		}
		ri[x] = off;
	}
	for (x = 0; x < nj; x++) {
		size_t rem = x, off = 0, stride = 1;
		for (l = hi; l > lo; l--) {
			off += (rem % tt->col_modes[l - 1]) * stride;
			rem /= tt->col_modes[l - 1];
			stride *= tt->row_modes[l - 1] * tt->col_modes[l - 1];
		}
		cj[x] = off;
	}
}

typedef struct core_work {
	size_t mk, nk, rk, rk1, q, p, N, n_lo, n_hi, m_lo, m_hi;
	double *left, *right;       /* prefix (P_< x rk), suffix (rk1 x P_>) contractions */
	size_t *li, *lj, *ri, *rj;  /* their offsets (part_offsets) */
	size_t *perm;               /* permuted column c -> original j */
	double *gp, *wgt;           /* G permuted (n x n); (W G)^T permuted (n x m) */
	double *phi, *u, *h, *rhs;
} core_work;

static void
core_work_free(core_work *cw)
{
	free(cw->left);
	free(cw->right);
	free(cw->li);
	free(cw->lj);
	free(cw->ri);
	free(cw->rj);
	free(cw->perm);
	free(cw->gp);
	free(cw->wgt);
	free(cw->phi);
	free(cw->u);
	free(cw->h);
	free(cw->rhs);
}

/* One core's exact block solve; wg is W G (m x n column-major). */
static rs_status
solve_core(rs_tt *tt, size_t k, const double *g, const double *wg, rs_error *err)
{
	size_t m = tt->rows, n = tt->cols, c, c2, il, ih, ik, t, s, jk, a, b;
	core_work cw = {0};
	rs_status st = RS_OK;

	cw.mk = tt->row_modes[k];
	cw.nk = tt->col_modes[k];
	cw.rk = tt->ranks[k];
	cw.rk1 = tt->ranks[k + 1];
	cw.q = cw.rk * cw.rk1;
	cw.p = cw.q * cw.nk;
	cw.N = n / cw.nk;
	cw.n_lo = cw.n_hi = cw.m_lo = cw.m_hi = 1;
	for (t = 0; t < k; t++) {
		cw.n_lo *= tt->col_modes[t];
		cw.m_lo *= tt->row_modes[t];
	}
	for (t = k + 1; t < tt->d; t++) {
		cw.n_hi *= tt->col_modes[t];
		cw.m_hi *= tt->row_modes[t];
	}
	if (k > 0) {
		size_t rows;
		cw.left = contract(tt, 0, k, &rows);
	} else {
		cw.left = rs_xmalloc(sizeof *cw.left);
		cw.left[0] = 1.0;
	}
	if (k + 1 < tt->d) {
		size_t rows;
		cw.right = contract(tt, k + 1, tt->d, &rows);
	} else {
		cw.right = rs_xmalloc(sizeof *cw.right);
		cw.right[0] = 1.0;
	}
	cw.li = malloc(cw.m_lo * sizeof *cw.li);
	cw.lj = malloc(cw.n_lo * sizeof *cw.lj);
	cw.ri = malloc(cw.m_hi * sizeof *cw.ri);
	cw.rj = malloc(cw.n_hi * sizeof *cw.rj);
	cw.perm = malloc(n * sizeof *cw.perm);
	cw.gp = malloc(n * n * sizeof *cw.gp);
	cw.wgt = malloc(n * m * sizeof *cw.wgt);
	cw.phi = malloc(cw.q * cw.N * sizeof *cw.phi);
	cw.u = malloc(cw.q * cw.nk * n * sizeof *cw.u);
	cw.h = calloc(cw.p * cw.p, sizeof *cw.h);
	cw.rhs = calloc(cw.p * cw.mk, sizeof *cw.rhs);
	if (!cw.left || !cw.right || !cw.li || !cw.lj || !cw.ri || !cw.rj || !cw.perm ||
	    !cw.gp || !cw.wgt || !cw.phi || !cw.u || !cw.h || !cw.rhs) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory refining core %zu of a %zu x %zu "
		                  "TT-matrix", k + 1, m, n);
		goto done;
	}
	if (k > 0)
		part_offsets(tt, 0, k, cw.li, cw.lj);
	else
		cw.li[0] = cw.lj[0] = 0;
	if (k + 1 < tt->d)
		part_offsets(tt, k + 1, tt->d, cw.ri, cw.rj);
	else
		cw.ri[0] = cw.rj[0] = 0;
	for (c = 0; c < n; c++) {
		size_t jk_ = c / cw.N, sc = c % cw.N;
		size_t jlo = sc / cw.n_hi, jhi = sc % cw.n_hi;
		cw.perm[c] = (jlo * cw.nk + jk_) * cw.n_hi + jhi;
	}
	for (c2 = 0; c2 < n; c2++)
		for (c = 0; c < n; c++)
			cw.gp[c + c2 * n] = g[cw.perm[c] + cw.perm[c2] * n];
	for (t = 0; t < m; t++)
		for (c = 0; c < n; c++)
			cw.wgt[c + t * n] = wg[t + cw.perm[c] * m];
	for (il = 0; il < cw.m_lo; il++)
		for (ih = 0; ih < cw.m_hi; ih++) {
			/* Phi (q x N): t = a rk1 + b, s = j_<k n_hi + j_>k */
			for (s = 0; s < cw.N; s++) {
				const double *lrow = cw.left + (cw.li[il] + cw.lj[s / cw.n_hi]) * cw.rk;
				size_t rcol = cw.ri[ih] + cw.rj[s % cw.n_hi];
				for (a = 0; a < cw.rk; a++)
					for (b = 0; b < cw.rk1; b++)
						cw.phi[a * cw.rk1 + b + s * cw.q] = lrow[a] *
						    cw.right[b * (cw.m_hi * cw.n_hi) + rcol];
			}
			/* U = Phi Gp, Gp read as N x (n_k n) with ld N */
			cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)cw.q,
			            (int)(cw.nk * n), (int)cw.N, 1.0, cw.phi, (int)cw.q, cw.gp,
			            (int)cw.N, 0.0, cw.u, (int)cw.q);
			/* H[:, block jk] += U'[:, jk N ..] Phi^T, U' = U as p x n */
			for (jk = 0; jk < cw.nk; jk++)
				cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)cw.p, (int)cw.q,
				            (int)cw.N, 1.0, cw.u + jk * cw.N * cw.p, (int)cw.p, cw.phi,
				            (int)cw.q, 1.0, cw.h + jk * cw.q * cw.p, (int)cw.p);
			/* each slice's right-hand side: Phi Z, Z = (W G)_i as N x n_k */
			for (ik = 0; ik < cw.mk; ik++) {
				size_t i = (il * cw.mk + ik) * cw.m_hi + ih;
				cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)cw.q,
				            (int)cw.nk, (int)cw.N, 1.0, cw.phi, (int)cw.q,
				            cw.wgt + i * n, (int)cw.N, 1.0, cw.rhs + ik * cw.p,
				            (int)cw.q);
			}
		}
	if ((st = rs_refine_lstsq(cw.h, cw.p, cw.p, cw.rhs, cw.p, cw.mk, err)) != RS_OK)
		goto done;
	for (a = 0; a < cw.rk; a++)
		for (ik = 0; ik < cw.mk; ik++)
			for (jk = 0; jk < cw.nk; jk++)
				for (b = 0; b < cw.rk1; b++)
					tt->cores[k][((a * cw.mk + ik) * cw.nk + jk) * cw.rk1 + b] =
					    cw.rhs[a * cw.rk1 + b + jk * cw.q + ik * cw.p];
done:
	core_work_free(&cw);
	return st;
}

rs_status
rs_refine_tt(const double *w, size_t rows, size_t cols, const double *g, rs_tt *tt,
             size_t sweeps, rs_refine_result *res, rs_error *err)
{
	size_t m = rows, n = cols, k;
	double *wg = malloc(m * n * sizeof *wg), *wp = malloc(m * n * sizeof *wp);
	rs_status st = RS_OK;

	memset(res, 0, sizeof *res);
	if (sweeps > RS_REFINE_MAX_SWEEPS)
		sweeps = RS_REFINE_MAX_SWEEPS;
	if (tt->rows != m || tt->cols != n) {
		st = rs_error_set(err, RS_EINVAL, "a %zu x %zu TT-matrix cannot refine a %zu x %zu "
		                  "layer", tt->rows, tt->cols, m, n);
		goto done;
	}
	if (!wg || !wp) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory refining a %zu x %zu layer", m, n);
		goto done;
	}
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)n, 1.0, w,
	            (int)m, g, (int)n, 0.0, wg, (int)m);
	if ((st = rs_tt_reconstruct(tt, wp, m, err)) != RS_OK)
		goto done;
	rs_refine_measure(w, wp, m, n, g, &res->history[0], &res->fro_err);
	while (res->sweeps < sweeps) {
		double after;

		for (k = 0; k < tt->d; k++)
			if ((st = solve_core(tt, k, g, wg, err)) != RS_OK)
				goto done;
		if ((st = rs_tt_reconstruct(tt, wp, m, err)) != RS_OK)
			goto done;
		rs_refine_measure(w, wp, m, n, g, &after, &res->fro_err);
		if (rs_refine_record_sweep(res, after))
			break;
	}
	res->out_err = res->history[res->sweeps];
	tt->err = res->fro_err;   /* measured; tt->bound stays TT-SVD's */
done:
	free(wg);
	free(wp);
	return st;
}
