/* plan-refine.c — a plan entry's refinement on its layer; see
 * rankscope/planrefine.h. */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/calib.h"
#include "rankscope/outcurve.h"
#include "rankscope/planrefine.h"
#include "rankscope/util.h"
#include "rankscope/whiten.h"

bool
rs_method_refinable(rs_method method)
{
	return method == RS_METHOD_LOWRANK || method == RS_METHOD_PRUNE ||
	       method == RS_METHOD_QUANT;
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
	memset(p, 0, sizeof *p);
}

/* The plain rank-r truncation's factors: b = U_r S_r, a = V_r^T. */
static rs_status
plain_factors(const double *w, size_t m, size_t n, size_t r, double *b, double *a,
              rs_error *err)
{
	size_t k = m < n ? m : n, i, j, t;
	double *c = malloc(m * n * sizeof *c), *s = malloc(k * sizeof *s);
	double *u = malloc(m * k * sizeof *u), *vt = malloc(k * n * sizeof *vt);
	rs_status st = RS_OK;

	if (!c || !s || !u || !vt) {
		st = rs_error_set(err, RS_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(c, w, m * n * sizeof *c);
	if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)m, (lapack_int)n, c, (lapack_int)m,
	                   s, u, (lapack_int)m, vt, (lapack_int)k) != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "dgesdd did not converge");
		goto done;
	}
	for (t = 0; t < r; t++) {
		for (i = 0; i < m; i++)
			b[i + t * m] = u[i + t * m] * s[t];
		for (j = 0; j < n; j++)
			a[t + j * r] = vt[t + j * k];
	}
done:
	free(c);
	free(s);
	free(u);
	free(vt);
	return st;
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
		                    "(lowrank, prune and quant can)", name, rs_method_name(e->method));
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
