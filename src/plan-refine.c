/* plan-refine.c — a plan entry's refinement on its layer; see
 * rankscope/planrefine.h. */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/calib.h"
#include "rankscope/combine.h"
#include "rankscope/outcurve.h"
#include "rankscope/planrefine.h"
#include "rankscope/plansolve.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"
#include "rankscope/whiten.h"

bool
rs_method_refinable(rs_method method)
{
	return method == RS_METHOD_LOWRANK || method == RS_METHOD_PRUNE ||
	       method == RS_METHOD_QUANT || method == RS_METHOD_LOWRANK_SPARSE ||
	       method == RS_METHOD_TT;
}

void
rs_refined_parts_free(rs_refined_parts *p)
{
	free(p->b);
	free(p->a);
	free(p->wp);
	free(p->book);
	free(p->keep);
	free(p->codes);
	rs_tt_free(p->tt);
	memset(p, 0, sizeof *p);
}

/* The plain rank-r truncation's factors: b = U_r S_r, a = V_r^T. */
static rs_status
plain_factors(const double *w, size_t m, size_t n, size_t r, double *b, double *a,
              rs_error *err)
{
	size_t k = m < n ? m : n;
	double *c = malloc(m * n * sizeof *c), *s = malloc(k * sizeof *s);
	double *u = malloc(m * k * sizeof *u), *vt = malloc(k * n * sizeof *vt);
	rs_status st = RS_OK;

	if (!c || !s || !u || !vt) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(c, w, m * n * sizeof *c);
	if ((st = rs_svd_vectors(c, m, n, m, s, u, vt, err)) == RS_OK)
		rs_svd_factors(u, s, vt, m, n, k, r, b, a);
done:
	free(c);
	free(s);
	free(u);
	free(vt);
	return st;
}

/* ba = B A (m x n). */
static void
lowrank_product(const rs_refined_parts *p, size_t m, size_t n, size_t rank, double *ba)
{
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)rank, 1.0,
	            p->b, (int)m, p->a, (int)rank, 0.0, ba, (int)m);
}

/* The output error of B A + S against W, ba = B A given (fro_err recorded
 * in p->result); t is m x n scratch. */
static void
lowrank_sparse_error(const double *w, const double *g, rs_refined_parts *p, size_t m,
                     size_t n, const double *ba, double *t, double *out_err)
{
	size_t i;

	for (i = 0; i < m * n; i++)
		t[i] = ba[i] + p->wp[i];
	rs_refine_measure(w, t, m, n, g, out_err, &p->result.fro_err);
}

/*
 * Low rank + sparse: the combination's solve, then alternating blocks on
 * the same objective, each an exact minimiser: the factors with S fixed
 * (one sweep of the low-rank refinement on W - S) and the sparse values on
 * their support with L fixed (the sparse refinement of W - B A).
 */
static rs_status
refine_lowrank_sparse(const rs_layer *layer, const rs_plan_entry *e, const double *w,
                      const double *g, size_t sweeps, rs_refined_parts *p, rs_error *err)
{
	size_t m = layer->rows, n = layer->cols, count = m * n, i, nnz = 0;
	double out_err;
	rs_combine_spec spec;
	rs_combine_result cr;
	rs_combine_parts cp = {0};
	double *t = malloc(count * sizeof *t), *ba = malloc(count * sizeof *ba);
	double *lr = calloc(count + 1, sizeof *lr);
	rs_refine_result step;
	rs_status st;

	rs_plan_entry_combine_spec(layer, e, &spec);
	memset(&cr, 0, sizeof cr);
	p->wp = calloc(count + 1, sizeof *p->wp);   /* S */
	p->keep = rs_xcalloc(count + 1, 1);
	p->b = rs_xmalloc(m * e->rank * sizeof *p->b);
	p->a = rs_xmalloc(e->rank * n * sizeof *p->a);
	cp.lowrank = lr;
	if (!t || !ba || !lr || !p->wp) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory");
		goto done;
	}
	st = rs_combine_with_parts(w, m, n, m, &spec, NULL, NULL, NULL, NULL, p->wp, &cp, &cr, err);
	rs_combine_result_free(&cr);
	if (st == RS_OK && cr.fallback != RS_COMBINE_NONE)
		st = rs_error_set(err, RS_EINVAL, "the combination falls back to a single part; "
		                  "refine that part instead");
	if (st != RS_OK)
		goto done;
	for (i = 0; i < count; i++) {
		p->keep[i] = p->wp[i] != 0;
		nnz += p->keep[i];
	}
	/* an S with exact zeros keeps its budgeted support (as apply pads it) */
	for (i = 0; nnz < spec.nonzeros && i < count; i++)
		if (!p->keep[i]) {
			p->keep[i] = 1;
			nnz++;
		}
	if ((st = plain_factors(lr, m, n, e->rank, p->b, p->a, err)) != RS_OK)
		goto done;
	memset(&p->result, 0, sizeof p->result);
	lowrank_product(p, m, n, e->rank, ba);
	lowrank_sparse_error(w, g, p, m, n, ba, t, &out_err);
	p->result.history[0] = p->result.out_err = out_err;
	while (p->result.sweeps < sweeps) {
		/* the factors with S fixed, then S on its support with B A fixed */
		for (i = 0; i < count; i++)
			t[i] = w[i] - p->wp[i];
		if ((st = rs_refine_lowrank(t, m, n, g, e->rank, p->b, p->a, 1, &step, err)) != RS_OK)
			goto done;
		lowrank_product(p, m, n, e->rank, ba);
		for (i = 0; i < count; i++)
			t[i] = w[i] - ba[i];
		if ((st = rs_refine_sparse(t, m, n, g, p->keep, p->wp, &step, err)) != RS_OK)
			goto done;
		/* B A is unchanged by the sparse step */
		lowrank_sparse_error(w, g, p, m, n, ba, t, &out_err);
		/* the stopping rule every refinement shares */
		if (rs_refine_record_sweep(&p->result, out_err))
			break;
	}
done:
	free(t);
	free(ba);
	free(lr);
	return st;
}

/* TT: the plan's TT-SVD (the ranks it reached as caps), then the cores. */
static rs_status
refine_tt(const rs_plan_entry *e, const double *w, size_t m, size_t n, const double *g,
          size_t sweeps, rs_refined_parts *p, rs_error *err)
{
	rs_error local;

	if (err == NULL)
		err = &local;   /* the kernel's code is read back from it */
	if ((p->tt = rs_plan_entry_tt(e, w, m, n, err)) == NULL)
		return err->code;
	return rs_refine_tt(w, m, n, g, p->tt, sweeps, &p->result, err);
}

/* The weight figures' magnitude mask in W's order. */
static void
magnitude_mask(const rs_layer_analysis *a, size_t m, size_t n, size_t dropped,
               unsigned char *keep)
{
	unsigned char *buf = rs_xmalloc(m * n + 1);
	size_t i, j;

	rs_prune_mask(a->magnitudes, dropped, buf);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			keep[i + j * m] = a->transposed ? buf[j + i * n] : buf[i + j * m];
	free(buf);
}

rs_status
rs_plan_entry_refine(const rs_layer *layer, const rs_layer_analysis *a, const rs_plan_entry *e,
                     const char *path, size_t sweeps, rs_refined_parts *parts,
                     rs_refine_result *result, rs_error *err)
{
	size_t m = layer->rows, n = layer->cols, count = m * n;
	rs_refined_parts local;
	rs_calib_kind kind;
	double *w = NULL, *g = NULL, nvec;
	rs_status st;
	char name[96];

	rs_printable(name, sizeof name, layer->name);
	if (parts == NULL)
		parts = &local;
	memset(parts, 0, sizeof *parts);
	if (!rs_method_refinable(e->method))
		return rs_error_set(err, RS_EINVAL, "layer '%s': method %s cannot be refined "
		                    "(" RS_REFINABLE_METHODS " can)", name, rs_method_name(e->method));
	if (a->calib == NULL)
		return rs_error_set(err, RS_EINVAL, "layer '%s': refinement needs calibration "
		                    "statistics (--calibration)", name);
	if ((e->method == RS_METHOD_PRUNE || e->method == RS_METHOD_QUANT) && a->magnitudes == NULL)
		return rs_error_set(err, RS_EINVAL, "layer '%s': its statistics are not computed",
		                    name);
	st = rs_calib_load(a->calib, layer, &kind, &g, &nvec, err);
	if (st == RS_OK && g == NULL)
		st = rs_error_set(err, RS_EINVAL, "layer '%s': %s has no statistics for it", name,
		                  a->calib->path);
	if (st != RS_OK)
		goto done;
	w = malloc(count * sizeof *w);
	if (w == NULL) {
		st = rs_error_set(err, RS_ENOMEM, "layer '%s': out of memory", name);
		goto done;
	}
	if ((st = rs_layer_load(layer, w, m, path, err)) != RS_OK)
		goto done;
	switch (e->method) {
	case RS_METHOD_LOWRANK:
		parts->b = rs_xmalloc(m * e->rank * sizeof *parts->b);
		parts->a = rs_xmalloc(e->rank * n * sizeof *parts->a);
		if (e->whitened) {
			/* left = U'S' (m x r), right = V'^T L^-1 (r x n): b and a */
			st = rs_whiten_factors(w, m, n, m, g, n, e->rank, parts->b, parts->a, err);
		} else {
			st = plain_factors(w, m, n, e->rank, parts->b, parts->a, err);
		}
		if (st == RS_OK)
			st = rs_refine_lowrank(w, m, n, g, e->rank, parts->b, parts->a, sweeps,
			                       &parts->result, err);
		break;
	case RS_METHOD_PRUNE: {
		size_t dropped = rs_prune_dropped(count, e->sparsity);

		parts->keep = rs_xmalloc(count + 1);
		parts->wp = rs_xmalloc(count * sizeof *parts->wp + 1);
		if (e->scored && a->out != NULL)
			rs_out_scored_mask(a->out, dropped, parts->keep);
		else if (e->scored)
			st = rs_error_set(err, RS_EINVAL, "layer '%s': its output curves are not "
			                  "computed", name);
		else
			magnitude_mask(a, m, n, dropped, parts->keep);
		if (st == RS_OK)
			st = rs_refine_sparse(w, m, n, g, parts->keep, parts->wp, &parts->result, err);
		break;
	}
	case RS_METHOD_QUANT: {
		rs_quant_result qr;
		bool per_row = e->quantizer == RS_QUANT_UNIFORM_CHANNEL;

		parts->levels = (size_t)1 << rs_quantizer_bits(e->quantizer, e->bits);
		parts->codes = rs_xmalloc(count * sizeof *parts->codes + 1);
		parts->book = rs_xcalloc(per_row ? m * parts->levels : parts->levels,
		                         sizeof *parts->book);
		parts->wp = rs_xmalloc(count * sizeof *parts->wp + 1);
		st = rs_quantize(w, m, n, m, e->quantizer, e->bits, NULL, parts->codes, parts->book,
		                 &qr, err);
		if (st == RS_OK)
			st = rs_refine_codebook(w, m, n, g, parts->codes, parts->levels, per_row, true,
			                        parts->book, parts->wp, &parts->result, err);
		break;
	}
	case RS_METHOD_LOWRANK_SPARSE:
		st = refine_lowrank_sparse(layer, e, w, g, sweeps, parts, err);
		break;
	case RS_METHOD_TT:
		st = refine_tt(e, w, m, n, g, sweeps, parts, err);
		break;
	default:
		break;
	}
	if (st != RS_OK)
		rs_error_prefix(err, "%s: layer '%s': refining: ", path, name);
	else if (result)
		*result = parts->result;
done:
	free(w);
	free(g);
	if (parts == &local || st != RS_OK)
		rs_refined_parts_free(parts);
	return st;
}
