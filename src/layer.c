/* layer.c — layer discovery, folding and loading; see rankscope/layer.h. */
#include "config.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/guard.h"
#include "rankscope/layer.h"
#include "rankscope/plan.h"
#include "rankscope/util.h"

bool
rs_layer_filter_match(const rs_layer_filter *filter, const char *name)
{
	size_t i;
	bool included;

	if (filter == NULL)
		return true;
	included = filter->ninclude == 0;
	for (i = 0; i < filter->ninclude && !included; i++)
		included = fnmatch(filter->include[i], name, 0) == 0;
	for (i = 0; i < filter->nexclude && included; i++)
		included = fnmatch(filter->exclude[i], name, 0) != 0;
	return included;
}

const char *
rs_layer_ineligible_reason(const rs_tensor *t)
{
	if (!rs_dtype_get(t->dtype)->is_float)
		return rs_dtype_get(t->dtype)->block ?
		       "a block type rankscope does not decode (Q8_1, Q8_K, the i-quants)" :
		       "not a floating-point dtype";
	if (t->ndim == 0)
		return "scalar";
	if (t->ndim == 1)
		return "1-D";
	if (t->ndim > 4)
		return "more than 4-D";
	if (t->count == 0)
		return "empty";
	if (t->role == RS_ROLE_OTHER)
		return "not a weight (the graph uses it otherwise)";
	if (t->ndim == 3 && t->role != RS_ROLE_CONV)
		return "3-D, not a Conv1d kernel (a stack of experts is split into its "
		       "experts when its name says expert or exps)";
	if (t->ndim == 4 && t->role != RS_ROLE_CONV && t->role != RS_ROLE_UNKNOWN)
		return "4-D, not a convolution kernel";
	return NULL;
}

void
rs_fold_shape(const size_t shape[4], int fold, size_t *rows, size_t *cols)
{
	size_t f = shape[0], c = shape[1], kh = shape[2], kw = shape[3];

	switch (fold) {
	case 1: *rows = f * kh; *cols = c * kw; break;
	case 2: *rows = f * kw; *cols = c * kh; break;
	case 3: *rows = f * kh * kw; *cols = c; break;
	default: *rows = f; *cols = c * kh * kw; break;
	}
}

rs_status
rs_layer_set_fold(rs_layer *layer, int fold, rs_error *err)
{
	if (layer->kind != RS_LAYER_CONV)
		return fold == RS_FOLD_NONE ? RS_OK :
		    rs_error_set(err, RS_EINVAL,
		        "layer '%s' is not a convolution kernel: it has no fold scheme",
		        layer->name);
	if (fold < 0 || fold >= RS_FOLD_COUNT)
		return rs_error_set(err, RS_EINVAL,
		    "layer '%s': fold scheme %d out of range 0..%d", layer->name,
		    fold, RS_FOLD_COUNT - 1);
	layer->fold = fold;
	rs_fold_shape(layer->kshape, fold, &layer->rows, &layer->cols);
	return RS_OK;
}

size_t
rs_layers_discover(const rs_model *model, const rs_layer_filter *filter,
                   int fold, const rs_compose_set *compose, rs_layer **out)
{
	rs_layer *layers = rs_xcalloc(model->ntensors + 1, sizeof *layers);
	size_t i, n = 0;

	for (i = 0; i < model->ntensors; i++) {
		const rs_tensor *t = &model->tensors[i];
		const rs_compose_group *g = rs_compose_group_of(compose, t);
		rs_layer *l = &layers[n];

		if (g != NULL) {
			size_t k;
			bool first = true;
			/* the group stands where its earliest factor stands */
			for (k = 0; k < g->nfactors; k++)
				first = first && g->factors[k] >= t;
			if (!first || !rs_layer_filter_match(filter, g->name))
				continue;
			l->tensor = &g->product;
			l->name = g->name;
			l->kind = RS_LAYER_COMPOSED;
			l->fold = RS_FOLD_NONE;
			l->rows = g->product_shape[0];
			l->cols = g->product_shape[1];
			l->group = g;
			n++;
			continue;
		}
		if (rs_layer_ineligible_reason(t) != NULL ||
		    !rs_layer_filter_match(filter, t->name))
			continue;
		l->tensor = t;
		l->name = t->name;
		if (t->ndim == 2) {
			l->kind = t->role == RS_ROLE_EMBEDDING ? RS_LAYER_EMBEDDING :
			          RS_LAYER_LINEAR;
			l->fold = RS_FOLD_NONE;
			l->transposed = t->layout == RS_LAYOUT_IN_OUT;
			l->rows = t->shape[l->transposed ? 1 : 0];
			l->cols = t->shape[l->transposed ? 0 : 1];
		} else {
			l->kind = RS_LAYER_CONV;
			l->fold = fold >= 0 && fold < RS_FOLD_COUNT ? fold : 0;
			/* ConvTranspose stores (in, out / groups, kh, kw) */
			l->kernel_in_out = t->layout == RS_LAYOUT_IN_OUT;
			l->kshape[0] = t->shape[l->kernel_in_out ? 1 : 0];
			l->kshape[1] = t->shape[l->kernel_in_out ? 0 : 1];
			l->kshape[2] = t->shape[2];
			l->kshape[3] = t->ndim == 4 ? t->shape[3] : 1;
			l->groups = t->groups ? t->groups : 1;
			rs_fold_shape(l->kshape, l->fold, &l->rows, &l->cols);
		}
		n++;
	}
	*out = layers;
	return n;
}

/* The kernel element (f, c, h, w) at (row, col) of a conv layer's matrix. */
static void
fold_decode(const rs_layer *layer, size_t row, size_t col, size_t *f, size_t *c,
            size_t *h, size_t *w)
{
	const size_t *s = layer->kshape;

	switch (layer->fold) {
	case 1: *f = row / s[2]; *h = row % s[2]; *c = col / s[3]; *w = col % s[3]; break;
	case 2: *f = row / s[3]; *w = row % s[3]; *c = col / s[2]; *h = col % s[2]; break;
	case 3: *f = row / (s[2] * s[3]); *h = row / s[3] % s[2]; *w = row % s[3]; *c = col;
		break;
	default: *f = row; *c = col / (s[2] * s[3]); *h = col / s[3] % s[2]; *w = col % s[3];
		break;
	}
}

/* Where kernel element (f, c, h, w) is stored: (f, c, kh, kw) row-major, or
 * (c, f, kh, kw) for a transposed convolution's kernel. */
static size_t
kernel_storage(const rs_layer *layer, size_t f, size_t c, size_t h, size_t w)
{
	const size_t *s = layer->kshape;

	return layer->kernel_in_out ? ((c * s[0] + f) * s[2] + h) * s[3] + w :
	                              ((f * s[1] + c) * s[2] + h) * s[3] + w;
}

size_t
rs_layer_tensor_index(const rs_layer *layer, size_t row, size_t col)
{
	size_t f, c, h, w;

	if (layer->transposed)
		return col * layer->rows + row;   /* stored in x out */
	if (layer->kind != RS_LAYER_CONV)
		return row * layer->cols + col;   /* row-major as stored */
	fold_decode(layer, row, col, &f, &c, &h, &w);
	return kernel_storage(layer, f, c, h, w);
}

size_t
rs_layer_kernel_index(const rs_layer *layer, size_t row, size_t col)
{
	const size_t *s = layer->kshape;
	size_t f, c, h, w;

	if (layer->transposed)
		return row * layer->cols + col;
	if (!layer->kernel_in_out)
		return rs_layer_tensor_index(layer, row, col);
	fold_decode(layer, row, col, &f, &c, &h, &w);
	return ((f * s[1] + c) * s[2] + h) * s[3] + w;
}

size_t
rs_layer_params(const rs_layer *layer)
{
	if (layer->group != NULL)
		return rs_compose_stored_count(layer->group);
	return layer->rows * layer->cols;
}

const char *
rs_layer_kind_name(const rs_layer *layer)
{
	switch (layer->kind) {
	case RS_LAYER_CONV: return "conv";
	case RS_LAYER_COMPOSED: return "composed";
	case RS_LAYER_EMBEDDING: return "embedding";
	default: return "linear";
	}
}

/*
 * A depthwise or grouped convolution runs as one kernel per group; a
 * factorisation across the whole folded matrix mixes the groups into parts
 * no runtime executes as a convolution, and removing input channels breaks
 * the grouping.  What stays executable changes values, not the kernel's
 * shape: pruning single weights, quantising, and both together.
 */
const char *
rs_layer_method_refusal(const rs_layer *layer, int method)
{
	static _Thread_local char why[192];

	if (layer->kind != RS_LAYER_CONV || layer->groups <= 1)
		return NULL;
	switch (method) {
	case RS_METHOD_DENSE:
	case RS_METHOD_PRUNE:
	case RS_METHOD_PRUNE_ROWS:
	case RS_METHOD_QUANT:
	case RS_METHOD_QUANT_SPARSE:
		return NULL;
	default:
		break;
	}
	snprintf(why, sizeof why, "layer '%s' is a %s convolution (%zu groups): method %s "
	         "gives parts no runtime runs as one; it takes dense, prune, prune-rows, "
	         "quant and quant+sparse", layer->name,
	         layer->groups == layer->kshape[0] && layer->kshape[1] == 1 ? "depthwise" :
	         "grouped", layer->groups, rs_method_name((rs_method)method));
	return why;
}

size_t
rs_layer_kernel_dims(const rs_layer *layer, size_t dims[4])
{
	if (layer->kind == RS_LAYER_CONV) {
		/* a Conv1d kernel is the (f, c, k, 1) kernel of a Conv2d */
		memcpy(dims, layer->kshape, 4 * sizeof *dims);
		return 4;
	}
	dims[0] = layer->rows;
	dims[1] = layer->cols;
	dims[2] = dims[3] = 1;
	return 2;
}

bool
rs_layer_loads_transposed(const rs_layer *layer)
{
	if (layer->kind == RS_LAYER_LINEAR || layer->kind == RS_LAYER_EMBEDDING)
		return !layer->transposed;   /* in x out read straight is W itself */
	return layer->kind == RS_LAYER_CONV && layer->fold == 0 && !layer->kernel_in_out;
}

const rs_layer *
rs_layer_of_tensor(const rs_layer *layers, size_t nlayers, const rs_tensor *tensor)
{
	size_t i, k;

	for (i = 0; i < nlayers; i++) {
		if (layers[i].tensor == tensor)
			return &layers[i];
		for (k = 0; layers[i].group && k < layers[i].group->nfactors; k++)
			if (layers[i].group->factors[k] == tensor)
				return &layers[i];
	}
	return NULL;
}

/*
 * Where the run of kw consecutive kernel elements (fi, ci, hi, 0..kw-1)
 * lands in the folded matrix: its first (row, col) and the step between
 * successive elements (ld for a step along a row, 1 for a step down a
 * column).
 */
static void
conv_run_target(const size_t shape[4], int fold, size_t fi, size_t ci,
                size_t hi, size_t ld, size_t *start, size_t *step)
{
	size_t kh = shape[2], kw = shape[3], row, col;

	switch (fold) {
	case 1:
		row = fi * kh + hi; col = ci * kw;
		*step = ld;
		break;
	case 2:
		row = fi * kw; col = ci * kh + hi;
		*step = 1;
		break;
	case 3:
		row = (fi * kh + hi) * kw; col = ci;
		*step = 1;
		break;
	default:
		row = fi; col = (ci * kh + hi) * kw;
		*step = ld;
		break;
	}
	*start = row + col * ld;
}

/*
 * The conversions from the tensor's bytes, each run under a SIGBUS guard
 * (guard.h): the bytes are a map of a file that may shrink while it is
 * open.  They only read the map and write dst, so a fault may cut them
 * short anywhere.
 */
typedef struct convert_args {
	const rs_layer *layer;
	double *dst;
	size_t ld;
} convert_args;

/* Every element in storage order into dst[0..count). */
static void
convert_straight(void *arg)
{
	const convert_args *c = arg;
	const rs_tensor *t = c->layer->tensor;

	rs_dtype_to_double(t->dtype, t->data, c->layer->rows * c->layer->cols, c->dst, 1);
}

/* A linear layer: row i of the row-major tensor is row i of W. */
static void
convert_rows(void *arg)
{
	const convert_args *c = arg;
	const rs_layer *layer = c->layer;
	const rs_tensor *t = layer->tensor;
	size_t rowbytes = rs_dtype_nbytes(t->dtype, layer->cols), i;

	for (i = 0; i < layer->rows; i++)
		rs_dtype_to_double(t->dtype, t->data + i * rowbytes,
		                   layer->cols, c->dst + i, c->ld);
}

/* A linear layer stored in x out: row j of the tensor is column j of W. */
static void
convert_cols(void *arg)
{
	const convert_args *c = arg;
	const rs_layer *layer = c->layer;
	const rs_tensor *t = layer->tensor;
	size_t rowbytes = rs_dtype_nbytes(t->dtype, layer->rows), j;

	for (j = 0; j < layer->cols; j++)
		rs_dtype_to_double(t->dtype, t->data + j * rowbytes, layer->rows,
		                   c->dst + j * c->ld, 1);
}

/* Each run of kw kernel elements (from `src`, doubles in storage order) to
 * where the fold puts it. */
static void
fold_runs(const rs_layer *layer, const double *src, double *dst, size_t ld)
{
	const size_t *s = layer->kshape;
	size_t a, b, hi, at = 0, k;
	bool swap = layer->kernel_in_out;

	/* storage order: (f, c) pairs, or (c, f) for a transposed kernel */
	for (a = 0; a < s[swap ? 1 : 0]; a++)
		for (b = 0; b < s[swap ? 0 : 1]; b++)
			for (hi = 0; hi < s[2]; hi++, at += s[3]) {
				size_t start, step;
				conv_run_target(s, layer->fold, swap ? b : a, swap ? a : b, hi, ld,
				                &start, &step);
				for (k = 0; k < s[3]; k++)
					dst[start + k * step] = src[at + k];
			}
}

/* A kernel: each run of kw elements to where its fold puts it. */
static void
convert_folded(void *arg)
{
	const convert_args *c = arg;
	const rs_tensor *t = c->layer->tensor;
	const size_t *s = c->layer->kshape;
	size_t esize = rs_dtype_get(t->dtype)->bits / 8, a, b, hi, src = 0;
	bool swap = c->layer->kernel_in_out;

	for (a = 0; a < s[swap ? 1 : 0]; a++)
		for (b = 0; b < s[swap ? 0 : 1]; b++)
			for (hi = 0; hi < s[2]; hi++, src += s[3]) {
				size_t start, step;
				conv_run_target(s, c->layer->fold, swap ? b : a, swap ? a : b, hi,
				                c->ld, &start, &step);
				rs_dtype_to_double(t->dtype, t->data + src * esize,
				                   s[3], c->dst + start, step);
			}
}

static rs_status
convert_guarded(const rs_layer *layer, rs_guard_fn fn, double *dst, size_t ld,
                const char *path, rs_error *err)
{
	convert_args c = {layer, dst, ld};

	return rs_guard_run(layer->tensor->data, layer->tensor->nbytes, fn, &c, path,
	                    layer->tensor->name, err);
}

static rs_status
nonfinite_error(const rs_layer *layer, double value, size_t i, size_t j,
                const char *path, rs_error *err)
{
	return rs_error_set(err, RS_ENUMERIC,
	    "%s: layer '%s': element (%zu, %zu) of the %zux%zu matrix is %s; spectra "
	    "need finite weights", path, layer->name, i, j, layer->rows, layer->cols,
	    isnan(value) ? "NaN" : "infinite");
}

rs_status
rs_layer_load_for_spectrum(const rs_layer *layer, double *dst, size_t *rows,
                           size_t *cols, const char *path, rs_error *err)
{
	size_t count = layer->rows * layer->cols, idx;
	rs_status st;

	if (!rs_layer_loads_transposed(layer)) {
		*rows = layer->rows;
		*cols = layer->cols;
		return rs_layer_load(layer, dst, layer->rows, path, err);
	}
	/* Row-major W read straight is column-major W^T. */
	if ((st = convert_guarded(layer, convert_straight, dst, 1, path, err)) != RS_OK)
		return st;
	for (idx = 0; idx < count; idx++)
		if (!isfinite(dst[idx]))
			return nonfinite_error(layer, dst[idx], idx / layer->cols,
			                       idx % layer->cols, path, err);
	*rows = layer->cols;
	*cols = layer->rows;
	return RS_OK;
}

rs_status
rs_layer_load(const rs_layer *layer, double *dst, size_t ld, const char *path,
              rs_error *err)
{
	size_t i, j;
	rs_status st;

	if (layer->kind == RS_LAYER_COMPOSED)
		return rs_compose_product(layer->group, dst, ld, path, err);
	if (layer->kind == RS_LAYER_CONV && rs_dtype_get(layer->tensor->dtype)->block) {
		/* a block-quantised kernel decodes only in whole blocks: all of
		 * it first, then the runs to their places */
		size_t count = layer->rows * layer->cols;
		double *all = malloc((count ? count : 1) * sizeof *all);

		if (all == NULL)
			return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory",
			                    path, layer->name);
		st = convert_guarded(layer, convert_straight, all, 1, path, err);
		if (st == RS_OK)
			fold_runs(layer, all, dst, ld);
		free(all);
	} else if (layer->kind == RS_LAYER_CONV)
		st = convert_guarded(layer, convert_folded, dst, ld, path, err);
	else
		st = convert_guarded(layer, layer->transposed ? convert_cols : convert_rows,
		                     dst, ld, path, err);
	if (st != RS_OK)
		return st;
	for (j = 0; j < layer->cols; j++)
		for (i = 0; i < layer->rows; i++)
			if (!isfinite(dst[i + j * ld]))
				return nonfinite_error(layer, dst[i + j * ld], i, j, path, err);
	return RS_OK;
}

/* The (row, col) in the layer's matrix of the tensor's element i (the
 * inverse of rs_layer_tensor_index), for messages in the loaders' terms. */
static void
matrix_position(const rs_layer *layer, size_t i, size_t *row, size_t *col)
{
	const size_t *s = layer->kshape;
	size_t f, c, h, w;

	if (layer->transposed) {
		*row = i % layer->rows;
		*col = i / layer->rows;
		return;
	}
	if (layer->kind != RS_LAYER_CONV) {
		*row = i / layer->cols;
		*col = i % layer->cols;
		return;
	}
	w = i % s[3];
	h = i / s[3] % s[2];
	if (layer->kernel_in_out) {
		f = i / (s[3] * s[2]) % s[0];
		c = i / (s[3] * s[2] * s[0]);
	} else {
		c = i / (s[3] * s[2]) % s[1];
		f = i / (s[3] * s[2] * s[1]);
	}
	switch (layer->fold) {
	case 0: *row = f; *col = (c * s[2] + h) * s[3] + w; break;
	case 1: *row = f * s[2] + h; *col = c * s[3] + w; break;
	case 2: *row = f * s[3] + w; *col = c * s[2] + h; break;
	default: *row = (f * s[2] + h) * s[3] + w; *col = c; break;
	}
}

rs_status
rs_layer_load_tensor(const rs_layer *layer, double *dst, const char *path,
                     rs_error *err)
{
	size_t count = layer->rows * layer->cols, i, j;
	double *w;
	rs_status st;

	if (layer->transposed || layer->kernel_in_out) {
		/* not stored in the order the decompositions take: W (or the
		 * kernel as (f, c, kh, kw)) from the layer's matrix */
		w = malloc((count ? count : 1) * sizeof *w);
		if (w == NULL)
			return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory",
			                    path, layer->name);
		st = rs_layer_load(layer, w, layer->rows, path, err);
		for (i = 0; st == RS_OK && i < layer->rows; i++)
			for (j = 0; j < layer->cols; j++)
				dst[rs_layer_kernel_index(layer, i, j)] = w[i + j * layer->rows];
		free(w);
		return st;
	}
	if (layer->group == NULL) {
		/* a straight conversion of the stored bytes */
		if ((st = convert_guarded(layer, convert_straight, dst, 1, path, err)) != RS_OK)
			return st;
		for (i = 0; i < count; i++)
			if (!isfinite(dst[i])) {
				size_t r, c;
				matrix_position(layer, i, &r, &c);
				return nonfinite_error(layer, dst[i], r, c, path, err);
			}
		return RS_OK;
	}
	w = malloc(count * sizeof *w);
	if (w == NULL)
		return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", path,
		                    layer->name);
	st = rs_compose_product(layer->group, w, layer->rows, path, err);
	for (i = 0; st == RS_OK && i < layer->rows; i++)
		for (j = 0; j < layer->cols; j++)
			dst[i * layer->cols + j] = w[i + j * layer->rows];
	free(w);
	return st;
}

rs_status
rs_layer_snapshot_take(const rs_layer *layer, rs_layer_snapshot *snap,
                       const char *path, rs_error *err)
{
	const rs_compose_group *g = layer->group;
	size_t n = g ? g->nfactors : 1, total = 0, k, at = 0;
	rs_status st = RS_OK;

	memset(snap, 0, sizeof *snap);
	for (k = 0; k < n; k++)
		total += g ? g->factors[k]->nbytes : layer->tensor->nbytes;
	snap->bytes = malloc(total ? total : 1);
	if (snap->bytes == NULL)
		return rs_error_set(err, RS_ENOMEM,
		    "%s: layer '%s': out of memory for a copy of its %zu bytes", path,
		    layer->name, total);
	snap->layer = *layer;
	if (g == NULL) {
		snap->tensor = *layer->tensor;
		snap->tensor.data = snap->bytes;
		snap->layer.tensor = &snap->tensor;
		return rs_guard_copy(snap->bytes, layer->tensor->data, layer->tensor->nbytes,
		                     path, layer->tensor->name, err);
	}
	snap->factors = rs_xcalloc(n, sizeof *snap->factors);
	snap->factor_list = rs_xcalloc(n, sizeof *snap->factor_list);
	snap->group = *g;
	snap->group.factors = snap->factor_list;
	snap->layer.group = &snap->group;
	snap->layer.tensor = &snap->group.product;
	for (k = 0; k < n && st == RS_OK; k++) {
		const rs_tensor *f = g->factors[k];
		snap->factors[k] = *f;
		snap->factors[k].data = snap->bytes + at;
		snap->factor_list[k] = &snap->factors[k];
		st = rs_guard_copy(snap->bytes + at, f->data, f->nbytes, path, f->name, err);
		at += f->nbytes;
	}
	return st;
}

void
rs_layer_snapshot_free(rs_layer_snapshot *snap)
{
	free(snap->bytes);
	free(snap->factors);
	free(snap->factor_list);
	memset(snap, 0, sizeof *snap);
}
