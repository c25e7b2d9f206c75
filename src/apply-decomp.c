/*
 * apply-decomp.c — the parts `apply` writes for the decompositions
 * (grouped SVD, Tucker-2, CP, TT-matrix); see rankscope-plan(5).
 *
 * Each decomposition is computed again with the kernel the plan's solve
 * used (deterministic), written as float32, and rebuilt from exactly the
 * float32 values, so the error apply measures is the one a user loads.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply-internal.h"
#include "rankscope/cp.h"
#include "rankscope/planrefine.h"
#include "rankscope/plansolve.h"
#include "rankscope/tt.h"
#include "rankscope/tucker.h"
#include "rankscope/util.h"

static void
set_shape(apply_part_shape *p, const char *suffix, size_t ndim, size_t d0, size_t d1,
          size_t d2, size_t d3)
{
	snprintf(p->suffix, sizeof p->suffix, "%s", suffix);
	p->ndim = ndim;
	p->shape[0] = d0;
	p->shape[1] = d1;
	p->shape[2] = d2;
	p->shape[3] = d3;
}

size_t
apply_decomposition_shapes(const rs_layer *l, const rs_plan_entry *e,
                           apply_part_shape *parts)
{
	bool conv = l->kind == RS_LAYER_CONV;
	const size_t *s = l->kshape;
	size_t f = conv ? s[0] : l->rows, c = conv ? s[1] : l->cols;
	size_t kh = conv ? s[2] : 1, kw = conv ? s[3] : 1, m, n, k;
	char suffix[24];

	switch (e->method) {
	case RS_METHOD_GROUPED:
		rs_plan_entry_matrix(l, e, &m, &n);
		set_shape(&parts[0], "grouped.A", 3, e->groups, e->rank, n / e->groups, 0);
		set_shape(&parts[1], "grouped.B", 3, e->groups, m, e->rank, 0);
		return 2;
	case RS_METHOD_TUCKER2:
		if (conv) {
			set_shape(&parts[0], "tucker.first", 4, e->rank_in, c, 1, 1);
			set_shape(&parts[1], "tucker.core", 4, e->rank, e->rank_in, kh, kw);
			set_shape(&parts[2], "tucker.last", 4, f, e->rank, 1, 1);
		} else {
			set_shape(&parts[0], "tucker.first", 2, e->rank_in, c, 0, 0);
			set_shape(&parts[1], "tucker.core", 2, e->rank, e->rank_in, 0, 0);
			set_shape(&parts[2], "tucker.last", 2, f, e->rank, 0, 0);
		}
		return 3;
	case RS_METHOD_CP:
		if (conv) {
			set_shape(&parts[0], "cp.first", 4, e->rank, c, 1, 1);
			set_shape(&parts[1], "cp.vertical", 4, e->rank, 1, kh, 1);
			set_shape(&parts[2], "cp.horizontal", 4, e->rank, 1, 1, kw);
			set_shape(&parts[3], "cp.last", 4, f, e->rank, 1, 1);
			return 4;
		}
		set_shape(&parts[0], "cp.first", 2, e->rank, c, 0, 0);
		set_shape(&parts[1], "cp.last", 2, f, e->rank, 0, 0);
		return 2;
	case RS_METHOD_TT:
		for (k = 0; k < e->tt_d; k++) {
			snprintf(suffix, sizeof suffix, "tt.%zu", k);
			set_shape(&parts[k], suffix, 4, e->tt_ranks[k], e->tt_rows[k], e->tt_cols[k],
			          e->tt_ranks[k + 1]);
		}
		return e->tt_d;
	default:
		return 0;
	}
}

/* n doubles rounded to the layer's value dtype vd (plan.h), held as floats
 * (what is written), and those values back as doubles in place (what is
 * rebuilt from). */
static float *
to_float(double *v, size_t n, rs_dtype vd)
{
	float *out = rs_xmalloc(n * sizeof *out + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		out[i] = (float)rs_dtype_round(vd, v[i]);
		v[i] = (double)out[i];
	}
	return out;
}

/* A row-major tensor rebuilt from the parts, as the layer's matrix. */
static void
tensor_to_matrix(const rs_layer *l, const double *t, double *approx)
{
	size_t i, j;

	for (j = 0; j < l->cols; j++)
		for (i = 0; i < l->rows; i++)
			approx[i + j * l->rows] = t[rs_layer_kernel_index(l, i, j)];
}

static rs_status
grouped_parts(const rs_model *model, const rs_plan_entry *e, void **data, rs_layer *view,
              double *w, double *approx, rs_error *err)
{
	size_t m = view->rows, n = view->cols, nb = n / e->groups, gi;
	double *x = malloc(m * nb * sizeof *x);
	rs_layer block = *view;
	rs_status st = RS_OK;

	if (x == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
		                    view->name);
	data[0] = rs_xmalloc(e->groups * e->rank * nb * sizeof(float) + 1);
	data[1] = rs_xmalloc(e->groups * m * e->rank * sizeof(float) + 1);
	memset(approx, 0, m * n * sizeof *approx);
	block.cols = nb;
	for (gi = 0; gi < e->groups && st == RS_OK; gi++) {
		/* block g: columns g nb .. (g + 1) nb - 1, approximated on its own */
		memcpy(x, w + gi * nb * m, m * nb * sizeof *x);
		st = apply_factorise(model, &block, x, e->rank,
		                     (float *)data[0] + gi * e->rank * nb,
		                     (float *)data[1] + gi * m * e->rank, approx + gi * nb * m, err);
	}
	free(x);
	return st;
}

static rs_status
tucker_parts(const rs_plan_entry *e, rs_dtype vd, const size_t dims[4],
             const double *t_in, void **data, double *rebuilt, rs_error *err)
{
	rs_tucker *t = rs_tucker_hooi(t_in, dims[0], dims[1], dims[2], dims[3], e->rank,
	                              e->rank_in, RS_TUCKER_DEFAULT_ITERATIONS,
	                              RS_TUCKER_DEFAULT_TOLERANCE, err);
	size_t i, j, c = dims[1], f = dims[0];
	double *first;
	float *out;

	if (t == NULL)
		return err->code;
	/* first: U_in^T (r_in x c); last: U_out (f x r_out); both row-major */
	first = rs_xmalloc(e->rank_in * c * sizeof *first);
	for (j = 0; j < e->rank_in; j++)
		for (i = 0; i < c; i++)
			first[j * c + i] = t->u_in[i + j * c];
	data[0] = to_float(first, e->rank_in * c, vd);
	for (j = 0; j < e->rank_in; j++)
		for (i = 0; i < c; i++)
			t->u_in[i + j * c] = first[j * c + i];
	free(first);
	data[1] = to_float(t->core, e->rank * e->rank_in * dims[2] * dims[3], vd);
	out = rs_xmalloc(f * e->rank * sizeof *out + 1);
	for (i = 0; i < f; i++)
		for (j = 0; j < e->rank; j++) {
			out[i * e->rank + j] = (float)rs_dtype_round(vd, t->u_out[i + j * f]);
			t->u_out[i + j * f] = (double)out[i * e->rank + j];
		}
	data[2] = out;
	rs_tucker_reconstruct(t, rebuilt);
	rs_tucker_free(t);
	return RS_OK;
}

static rs_status
cp_parts(const rs_plan_entry *e, rs_dtype vd, size_t nmodes, const size_t dims[4],
         const double *t_in, void **data, double *rebuilt, rs_error *err)
{
	rs_cp *cp = rs_cp_als(t_in, nmodes, dims, e->rank, RS_CP_DEFAULT_ITERATIONS,
	                      RS_CP_DEFAULT_TOLERANCE, err);
	size_t R = e->rank, i, r, k, part = 0;

	if (cp == NULL)
		return err->code;
	/* lambda goes into the last conv (mode 0, the outputs) */
	for (r = 0; r < R; r++) {
		for (i = 0; i < dims[0]; i++)
			cp->factors[0][i + r * dims[0]] *= cp->lambda[r];
		cp->lambda[r] = 1.0;
	}
	/* modes 1.. in order (inputs, then kh, kw), each R x dims[k] row-major */
	for (k = 1; k < nmodes; k++) {
		double *rows = rs_xmalloc(R * dims[k] * sizeof *rows);
		for (r = 0; r < R; r++)
			for (i = 0; i < dims[k]; i++)
				rows[r * dims[k] + i] = cp->factors[k][i + r * dims[k]];
		data[part++] = to_float(rows, R * dims[k], vd);
		for (r = 0; r < R; r++)
			for (i = 0; i < dims[k]; i++)
				cp->factors[k][i + r * dims[k]] = rows[r * dims[k] + i];
		free(rows);
	}
	{
		/* last: f x R row-major */
		float *last = rs_xmalloc(dims[0] * R * sizeof *last + 1);
		for (i = 0; i < dims[0]; i++)
			for (r = 0; r < R; r++) {
				last[i * R + r] = (float)rs_dtype_round(vd, cp->factors[0][i + r * dims[0]]);
				cp->factors[0][i + r * dims[0]] = (double)last[i * R + r];
			}
		data[part] = last;
	}
	rs_cp_reconstruct(cp, rebuilt);
	rs_cp_free(cp);
	return RS_OK;
}

/* The cores as the plan made them: TT-SVD, or its refinement on the
 * calibration statistics when the entry is refined (planrefine.h). */
static rs_status
tt_parts(const rs_model *model, const rs_layer *l, const rs_layer_analysis *a,
         const rs_plan_entry *e, const double *w, void **data, double *approx, rs_error *err)
{
	size_t k;
	rs_refined_parts rp = {0};
	rs_tt *tt;
	rs_status st = RS_OK;

	if (e->refined) {
		if ((st = rs_plan_entry_refine(l, a, e, model->path, e->refined_sweeps, &rp, NULL,
		                               err)) != RS_OK)
			return st;
		tt = rp.tt;
		rp.tt = NULL;
		rs_refined_parts_free(&rp);
	} else if ((tt = rs_plan_entry_tt(e, w, l->rows, l->cols, err)) == NULL) {
		rs_error_prefix(err, "%s: layer '%s': ", model->path, l->name);
		return err->code;
	}
	for (k = 0; k < e->tt_d; k++)
		data[k] = to_float(tt->cores[k], tt->ranks[k] * tt->row_modes[k] *
		                   tt->col_modes[k] * tt->ranks[k + 1], rs_layer_value_dtype(l));
	if ((st = rs_tt_reconstruct(tt, approx, l->rows, err)) != RS_OK)
		rs_error_prefix(err, "%s: layer '%s': ", model->path, l->name);
	rs_tt_free(tt);
	return st;
}

rs_status
apply_decomposition(const rs_model *model, const rs_layer *l, const rs_layer_analysis *a,
                    const rs_plan_entry *e, void **data, rs_layer *view, double *w,
                    double *approx, rs_error *err)
{
	size_t dims[4], nmodes, count = l->rows * l->cols;
	double *t = NULL, *rebuilt = NULL;
	rs_error local;
	rs_status st;

	if (err == NULL)
		err = &local;   /* the kernels' codes are read back from it */
	*view = *l;
	if (e->method == RS_METHOD_GROUPED) {
		if (l->kind == RS_LAYER_CONV &&
		    (st = rs_layer_set_fold(view, e->fold, err)) != RS_OK)
			return st;
		if ((st = rs_layer_load(view, w, view->rows, model->path, err)) != RS_OK)
			return st;
		return grouped_parts(model, e, data, view, w, approx, err);
	}
	if ((st = rs_layer_load(l, w, l->rows, model->path, err)) != RS_OK)
		return st;
	if (e->method == RS_METHOD_TT)
		st = tt_parts(model, l, a, e, w, data, approx, err);
	else {
		nmodes = rs_layer_kernel_dims(l, dims);
		t = malloc(count * sizeof *t);
		rebuilt = malloc(count * sizeof *rebuilt);
		if (t == NULL || rebuilt == NULL)
			st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory",
			                  model->path, l->name);
		else
			st = rs_layer_load_tensor(l, t, model->path, err);
		if (st == RS_OK) {
			st = e->method == RS_METHOD_TUCKER2 ?
			    tucker_parts(e, rs_layer_value_dtype(l), dims, t, data, rebuilt, err) :
			    cp_parts(e, rs_layer_value_dtype(l), nmodes, dims, t, data, rebuilt, err);
			/* the kernels' messages do not name the layer */
			if (st != RS_OK)
				rs_error_prefix(err, "%s: layer '%s': ", model->path, l->name);
		}
		if (st == RS_OK)
			tensor_to_matrix(l, rebuilt, approx);
	}
	free(t);
	free(rebuilt);
	return st;
}
