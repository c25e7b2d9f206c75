/*
 * apply.c — writes the compressed model a plan describes; see
 * rankscope/apply.h and rankscope-plan(5) for the naming and layout.
 *
 * Every compressed layer is rebuilt from exactly what is written (float32
 * values, codes and codebooks) and compared with the original weights, so
 * the measured errors are those a user will load.
 */
#include "config.h"

#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply-internal.h"
#include "rankscope/apply.h"
#include "rankscope/calib.h"
#include "rankscope/outcurve.h"
#include "rankscope/planrefine.h"
#include "rankscope/whiten.h"
#include "rankscope/combine.h"
#include "rankscope/file.h"
#include "rankscope/guard.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"

#define MAX_PARTS APPLY_MAX_PARTS

/* One output tensor: copied from the input, or part of a compressed layer. */
typedef struct out_tensor {
	char *name;
	const rs_tensor *source;     /* copied through when non-NULL */
	const rs_tensor *tensor;     /* --dense: the layer's tensor rebuilt */
	size_t layer;                /* else: a part of this layer ... */
	int part;                    /* ... this one (0 = first) */
	rs_dtype dtype;
	size_t shape[4], ndim;
	size_t nbytes;
	/* --dense: the views of one whole written back as it (join_views) */
	const rs_tensor_whole *whole;  /* the first view: the header's entry */
	size_t span;                   /* ... and the bytes of all its views */
	bool segment;                  /* a later view: data only */
	bool from_float;               /* data are floats, written as dtype (F16, BF16) */
	uint64_t plan_bits;            /* part 0: the layer's storage_bits (rs_apply_sizes) */
} out_tensor;

/* The parts of one compressed layer, computed together. */
typedef struct layer_parts {
	void *data[MAX_PARTS];
	size_t nbytes[MAX_PARTS];
	rs_apply_report report;
} layer_parts;

static void
parts_free(layer_parts *p)
{
	int i;

	for (i = 0; i < MAX_PARTS; i++)
		free(p->data[i]);
	memset(p, 0, sizeof *p);
}

/* Adds an output tensor of a layer's part. */
static void
add_part(out_tensor *outs, size_t *n, const char *tensor, const char *suffix,
         size_t layer, int part, rs_dtype dtype, size_t d0, size_t d1)
{
	out_tensor *o = &outs[(*n)++];

	memset(o, 0, sizeof *o);
	o->name = rs_xasprintf("%s.%s", tensor, suffix);
	o->layer = layer;
	o->part = part;
	o->dtype = dtype;
	o->shape[0] = d0;
	o->shape[1] = d1;
	o->ndim = d1 ? 2 : 1;
	o->nbytes = (d1 ? d0 * d1 : d0) * rs_dtype_get(dtype)->bits / 8;
	/* values are computed as floats holding the dtype's values exactly */
	o->from_float = dtype == RS_DTYPE_F16 || dtype == RS_DTYPE_BF16;
}

/* Bytes of count codes of `width` bits packed (write_codes), or of a
 * bitmap of count bits (width 1). */
static size_t
packed_code_bytes(size_t count, unsigned width)
{
	return (count * width + 7) / 8;
}

/* The index a sparse part of nnz values is stored with: the cheaper one,
 * as the plan costs it (rs_sparse_storage_bits). */
static rs_index_format
sparse_format(const rs_layer *l, size_t nnz)
{
	rs_index_format format;

	rs_sparse_storage_bits(l->rows, l->cols, nnz, rs_layer_value_bits(l), &format);
	return format;
}

/* CSR's column indices: 16 bits while they fit, as the plan costs them. */
static rs_dtype
csr_col_dtype(const rs_layer *l)
{
	return l->cols <= 65536 ? RS_DTYPE_U16 : RS_DTYPE_U32;
}

/* A sparse part of nnz values as parts `part`.. of layer i: the values,
 * then a bitmap of their positions or CSR over the matrix.  Returns the
 * number of parts (2 or 3). */
static int
add_sparse_parts(out_tensor *outs, size_t *n, const char *name, size_t i, int part,
                 const rs_layer *l, size_t nnz)
{
	add_part(outs, n, name, "sparse.values", i, part, rs_layer_value_dtype(l), nnz, 0);
	if (sparse_format(l, nnz) == RS_INDEX_BITMAP) {
		add_part(outs, n, name, "sparse.bitmap", i, part + 1, RS_DTYPE_U8,
		         packed_code_bytes(l->rows * l->cols, 1), 0);
		return 2;
	}
	add_part(outs, n, name, "sparse.row_ptr", i, part + 1, RS_DTYPE_U32, l->rows + 1, 0);
	add_part(outs, n, name, "sparse.col", i, part + 2, csr_col_dtype(l), nnz, 0);
	return 3;
}

/* A quantised part's two tensors, the codes and what gives the levels
 * (rs_quant_storage_bits), as parts `part` and `part` + 1 of layer i. */
static void
add_quant_parts(out_tensor *outs, size_t *n, const char *name, size_t i, int part,
                const rs_layer *l, const rs_plan_entry *e, bool full)
{
	unsigned width = rs_quantizer_bits(e->quantizer, e->bits), levels = 1u << width;
	bool channel = e->quantizer == RS_QUANT_UNIFORM_CHANNEL;

	/* the codes packed at their width (write_codes) */
	add_part(outs, n, name, "quant.codes", i, part, RS_DTYPE_U8,
	         packed_code_bytes(l->rows * l->cols, width), 0);
	if (rs_quant_spells_levels(e->quantizer, full))
		add_part(outs, n, name, "quant.codebook", i, part + 1, rs_layer_value_dtype(l),
		         channel ? l->rows : levels, channel ? levels : 0);
	else if (e->quantizer == RS_QUANT_UNIFORM_TENSOR || channel)
		add_part(outs, n, name, "quant.grid", i, part + 1, RS_DTYPE_F32,
		         channel ? l->rows : 2, channel ? 2 : 0);
	else
		add_part(outs, n, name, "quant.scale", i, part + 1, RS_DTYPE_F32, 1, 0);
}

/*
 * A tensor copied through keeps its dtype, except a GGUF block type
 * (Q4_K ...): safetensors has none, so it is written as F32, the values
 * ggml dequantises it to (dtype.h), which float32 holds exactly.
 */
static rs_dtype
source_dtype(const rs_tensor *t)
{
	return rs_dtype_get(t->dtype)->block ? RS_DTYPE_F32 : t->dtype;
}

static size_t
source_nbytes(const rs_tensor *t)
{
	return rs_dtype_get(t->dtype)->block ? t->count * sizeof(float) : t->nbytes;
}

/* The dtype a dense reconstruction is written in: the tensor's own where
 * it is F16, BF16, F32 or F64, else F32 (block and 8-bit float types). */
static rs_dtype
dense_dtype(const rs_tensor *t)
{
	switch (t->dtype) {
	case RS_DTYPE_F16: case RS_DTYPE_BF16: case RS_DTYPE_F32: case RS_DTYPE_F64:
		return t->dtype;
	default:
		return RS_DTYPE_F32;
	}
}

/* The output tensors of one input tensor under the plan: with dense, a
 * compressed layer is one tensor of its own name, shape and dtype. */
static void
plan_outputs(const rs_tensor *t, const rs_layer *layers, size_t nlayers,
             const rs_layer_analysis *analyses, const rs_plan *plan, bool dense,
             out_tensor *outs, size_t *n)
{
	size_t i = 0, k, first;
	rs_plan_figures f;
	const rs_layer *l = rs_layer_of_tensor(layers, nlayers, t);
	const char *name;
	rs_dtype vd;

	if (l != NULL) {
		i = (size_t)(l - layers);
		rs_plan_figures_for(l, &analyses[i], &plan->entries[i], &f);
	}
	if (l == NULL || f.method == RS_METHOD_DENSE) {
		/* a composed layer kept as it is keeps its factors */
		out_tensor *o = &outs[(*n)++];
		memset(o, 0, sizeof *o);
		o->name = rs_xstrdup(t->name);
		o->source = t;
		o->dtype = source_dtype(t);
		o->nbytes = source_nbytes(t);
		return;
	}
	if (l->group != NULL) {
		/* a compressed composed layer's parts replace all its factors and
		 * stand where the first of them stood */
		for (k = 0; k < l->group->nfactors; k++)
			if (l->group->factors[k] < t)
				return;
	}
	name = l->name;
	vd = rs_layer_value_dtype(l);
	first = *n;
	if (dense) {
		out_tensor *o = &outs[*n];
		add_part(outs, n, name, "", i, 0, dense_dtype(t), 1, 1);
		free(o->name);
		o->name = rs_xstrdup(t->name);
		o->tensor = t;
		o->ndim = t->ndim;
		for (k = 0; k < t->ndim; k++)
			o->shape[k] = t->shape[k];
		o->nbytes = rs_dtype_nbytes(o->dtype, t->count);
		o->from_float = false;   /* densify writes the bytes */
		return;
	}
	switch (f.method) {
	case RS_METHOD_LOWRANK:
		add_part(outs, n, name, "lowrank.A", i, 0, vd, f.rank, l->cols);
		add_part(outs, n, name, "lowrank.B", i, 1, vd, l->rows, f.rank);
		break;
	case RS_METHOD_PRUNE:
		add_sparse_parts(outs, n, name, i, 0, l, f.nonzeros);
		break;
	case RS_METHOD_PRUNE_ROWS:
		add_part(outs, n, name, "channels.values", i, 0, vd,
		         f.nonzeros / l->cols, l->cols);
		add_part(outs, n, name, "channels.bitmap", i, 1, RS_DTYPE_U8,
		         packed_code_bytes(l->rows, 1), 0);
		break;
	case RS_METHOD_PRUNE_COLS:
		add_part(outs, n, name, "channels.values", i, 0, vd,
		         l->rows, f.nonzeros / l->rows);
		add_part(outs, n, name, "channels.bitmap", i, 1, RS_DTYPE_U8,
		         packed_code_bytes(l->cols, 1), 0);
		break;
	case RS_METHOD_QUANT:
		add_quant_parts(outs, n, name, i, 0, l, &plan->entries[i], plan->entries[i].refined);
		break;
	case RS_METHOD_GROUPED:
	case RS_METHOD_TUCKER2:
	case RS_METHOD_CP:
	case RS_METHOD_TT: {
		apply_part_shape shapes[APPLY_MAX_PARTS];
		size_t np = apply_decomposition_shapes(l, &plan->entries[i], shapes), p;
		for (p = 0; p < np; p++) {
			out_tensor *o = &outs[*n];
			add_part(outs, n, name, shapes[p].suffix, i, (int)p, vd, 1, 1);
			memcpy(o->shape, shapes[p].shape, sizeof o->shape);
			o->ndim = shapes[p].ndim;
			o->nbytes = rs_dtype_get(vd)->bits / 8;
			for (k = 0; k < o->ndim; k++)
				o->nbytes *= o->shape[k];
		}
		break;
	}
	case RS_METHOD_LOWRANK_SPARSE:
	case RS_METHOD_QUANT_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT: {
		const rs_plan_entry *e = &plan->entries[i];
		int part = 0;
		if (rs_method_has_lowrank_part(f.method)) {
			add_part(outs, n, name, "lowrank.A", i, part++, vd, f.rank, l->cols);
			add_part(outs, n, name, "lowrank.B", i, part++, vd, l->rows, f.rank);
		}
		part += add_sparse_parts(outs, n, name, i, part, l, f.nonzeros);
		if (rs_method_has_quant_part(f.method))
			add_quant_parts(outs, n, name, i, part, l, e, false);
		break;
	}
	default:
		break;
	}
	if (*n > first)
		outs[first].plan_bits = f.bits;
}

/*
 * --dense: views (split parts, stacked experts) are rows of one tensor of
 * the file, so written back to back they are that tensor again; its first
 * view carries the header entry (the whole's name and shape, all the
 * views' bytes) and the others only their data.  Views written in
 * different dtypes (a tensor of an 8-bit float type: copied views keep
 * it, rebuilt ones are F32) cannot be joined, and are refused.
 */
static rs_status
join_views(const rs_model *model, out_tensor *outs, size_t nouts, rs_error *err)
{
	size_t i = 0, k;

	while (i < nouts) {
		const rs_tensor *t = outs[i].source;
		char shown[160];

		if (t == NULL)
			t = outs[i].tensor;
		if (t == NULL || t->whole == NULL) {
			i++;
			continue;
		}
		outs[i].whole = t->whole;
		outs[i].span = outs[i].nbytes;
		for (k = i + 1; k < nouts; k++) {
			const rs_tensor *u = outs[k].source ? outs[k].source : outs[k].tensor;
			if (u == NULL || u->whole != t->whole)
				break;
			if (outs[k].dtype != outs[i].dtype)
				return rs_error_set(err, RS_EINVAL, "%s: tensor '%s': --dense would write "
				                    "its views in two dtypes (%s, %s); apply it without "
				                    "--dense", model->path,
				                    rs_printable(shown, sizeof shown, t->whole->name),
				                    rs_dtype_get(outs[i].dtype)->name,
				                    rs_dtype_get(outs[k].dtype)->name);
			outs[k].segment = true;
			outs[i].span += outs[k].nbytes;
		}
		i = k;
	}
	return RS_OK;
}

static char *
build_header(const rs_model *model, const out_tensor *outs, size_t nouts,
             const char *plan_json, bool dense, size_t *len)
{
	json_t *root = json_object(), *meta = json_object();
	size_t i, offset = 0, hlen, padded;
	char *text, *out;

	for (i = 0; i < model->nmetadata; i++)
		json_object_set_new(meta, model->metadata[i].key,
		                    json_string(model->metadata[i].value));
	if (plan_json != NULL)
		json_object_set_new(meta, "rankscope_plan", json_string(plan_json));
	json_object_set_new(meta, "rankscope_version", json_string(PACKAGE_VERSION));
	if (dense)   /* the layers are whole tensors: nothing to rebuild */
		json_object_set_new(meta, "rankscope_dense", json_string("true"));
	json_object_set_new(root, "__metadata__", meta);
	for (i = 0; i < nouts; i++) {
		json_t *o, *shape, *offs;
		const size_t *dims = outs[i].source ? outs[i].source->shape : outs[i].shape;
		size_t d, ndim = outs[i].source ? outs[i].source->ndim : outs[i].ndim;
		size_t nbytes = outs[i].nbytes;
		rs_dtype dtype = outs[i].dtype;
		const char *name = outs[i].name;

		if (outs[i].segment)
			continue;   /* its bytes are in the entry of its whole */
		if (outs[i].whole != NULL) {
			dims = outs[i].whole->shape;
			ndim = outs[i].whole->ndim;
			nbytes = outs[i].span;
			name = outs[i].whole->name;
		}
		o = json_object();
		shape = json_array();
		offs = json_array();

		json_object_set_new(o, "dtype", json_string(rs_dtype_get(dtype)->name));
		for (d = 0; d < ndim; d++)
			json_array_append_new(shape, json_integer((json_int_t)dims[d]));
		json_object_set_new(o, "shape", shape);
		json_array_append_new(offs, json_integer((json_int_t)offset));
		json_array_append_new(offs, json_integer((json_int_t)(offset + nbytes)));
		json_object_set_new(o, "data_offsets", offs);
		json_object_set_new(root, name, o);
		offset += nbytes;
	}
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		abort();
	/* pad with spaces so the data starts 8-byte aligned */
	hlen = strlen(text);
	padded = (hlen + 7) / 8 * 8;
	out = rs_xmalloc(8 + padded);
	for (i = 0; i < 8; i++)
		out[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
	memcpy(out + 8, text, hlen);
	memset(out + 8 + hlen, ' ', padded - hlen);
	free(text);
	*len = 8 + padded;
	return out;
}

/* Relative errors of approx against w (both column-major m x n, ld m):
 * Frobenius directly, spectral from an SVD of the difference. */
static rs_status
measure(const rs_model *model, const rs_layer *l, const double *w, double *approx,
        rs_apply_report *rep, rs_error *err)
{
	size_t m = l->rows, n = l->cols, k = m < n ? m : n, i;
	double fro_w = 0, fro_d = 0, dummy = 0, *sw = malloc(k * sizeof *sw);
	double *wc = malloc(m * n * sizeof *wc), *sd = malloc(k * sizeof *sd);
	lapack_int info = 0;
	rs_status st = RS_OK;

	if (!sw || !wc || !sd) {
		st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
		                  l->name);
		goto out;
	}
	for (i = 0; i < m * n; i++) {
		fro_w += w[i] * w[i];
		approx[i] = w[i] - approx[i];
		fro_d += approx[i] * approx[i];
		wc[i] = w[i];
	}
	rep->measured_fro = fro_w > 0 ? sqrt(fro_d / fro_w) : 0;
	info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)n, wc,
	                      (lapack_int)m, sw, &dummy, 1, &dummy, 1);
	if (info == 0)
		info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)n, approx,
		                      (lapack_int)m, sd, &dummy, 1, &dummy, 1);
	if (info != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "%s: layer '%s': dgesdd did not converge "
		                  "(info %d)", model->path, l->name, (int)info);
		goto out;
	}
	rep->measured_spec = sw[0] > 0 ? sd[0] / sw[0] : 0;
out:
	free(sw);
	free(wc);
	free(sd);
	return st;
}

/* A rank-r factorisation of the m x n matrix x (destroyed): B = U_r
 * sqrt(S_r) into b (m x r, row-major), A = sqrt(S_r) V_r^T into a (r x n,
 * row-major); approx (may alias nothing) += B A from the float32 values. */
/* approx (column-major m x n) += B A from the float32 factors as written:
 * b m x r, a r x n, both row-major. */
static void
add_float_product(const float *b, const float *a, size_t m, size_t n, size_t r,
                  double *approx)
{
	size_t i, j, t;

	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			double v = 0;
			for (t = 0; t < r; t++)
				v += (double)b[i * r + t] * (double)a[t * n + j];
			approx[i + j * m] += v;
		}
}

rs_status
apply_factorise(const rs_model *model, const rs_layer *l, double *x, size_t r, float *a,
                float *b, double *approx, rs_error *err)
{
	size_t m = l->rows, n = l->cols, k = m < n ? m : n, i, j, t;
	rs_dtype vd = rs_layer_value_dtype(l);
	double *u = malloc(m * k * sizeof *u), *vt = malloc(k * n * sizeof *vt);
	double *s = malloc(k * sizeof *s);
	rs_status st = RS_OK;

	if (!u || !vt || !s) {
		st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
		                  l->name);
		goto out;
	}
	if ((st = rs_svd_vectors(x, m, n, m, s, u, vt, err)) != RS_OK) {
		rs_error_prefix(err, "%s: layer '%s': ", model->path, l->name);
		goto out;
	}
	for (i = 0; i < m; i++)
		for (t = 0; t < r; t++)
			b[i * r + t] = (float)rs_dtype_round(vd, u[i + t * m] * sqrt(s[t]));
	for (t = 0; t < r; t++)
		for (j = 0; j < n; j++)
			a[t * n + j] = (float)rs_dtype_round(vd, sqrt(s[t]) * vt[t + j * k]);
	add_float_product(b, a, m, n, r, approx);
out:
	free(u);
	free(vt);
	free(s);
	return st;
}

/* Sets bit k of a little-endian bit stream (bit t of byte y is bit 8 y + t). */
static void
set_bit(uint8_t *stream, size_t k)
{
	stream[k / 8] |= (uint8_t)(1u << (k % 8));
}

/*
 * A sparse part as written (rankscope-plan(5), Pruning): the entries of s
 * (column-major m x n) that `keep` marks, nnz of them, as data[0] the
 * values in the value dtype and, in the format sparse_format chose,
 * either data[1] a bitmap of their positions in the tensor (values in
 * ascending position) or data[1] CSR row pointers and data[2] column
 * indices over the matrix (values row by row).  approx += the values as
 * written.  Returns the number of parts (2 or 3).
 */
static int
write_sparse(const rs_layer *l, const double *s, const unsigned char *keep, size_t nnz,
             void **data, double *approx)
{
	size_t m = l->rows, n = l->cols, i, j, k = 0;
	rs_dtype vd = rs_layer_value_dtype(l);
	float *values = data[0] = rs_xmalloc(nnz * sizeof(float) + 1);

	if (sparse_format(l, nnz) == RS_INDEX_BITMAP) {
		/* a pass over tensor positions: the element of each, if kept */
		size_t count = m * n, *element = rs_xmalloc(count * sizeof *element + 1);
		uint8_t *bitmap = data[1] = rs_xcalloc(packed_code_bytes(count, 1) + 1, 1);
		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++)
				element[rs_layer_tensor_index(l, i, j)] = i + j * m;
		for (i = 0; i < count && k < nnz; i++) {
			size_t e = element[i];
			if (!keep[e])
				continue;
			set_bit(bitmap, i);
			values[k] = (float)rs_dtype_round(vd, s[e]);
			approx[e] += (double)values[k++];
		}
		free(element);
		return 2;
	} else {
		uint32_t *row_ptr = data[1] = rs_xmalloc((m + 1) * sizeof *row_ptr);
		bool narrow = csr_col_dtype(l) == RS_DTYPE_U16;
		void *col = data[2] = rs_xmalloc(nnz * (narrow ? 2 : 4) + 1);
		for (i = 0; i < m; i++) {
			row_ptr[i] = (uint32_t)k;
			for (j = 0; j < n && k < nnz; j++) {
				size_t e = i + j * m;
				if (!keep[e])
					continue;
				if (narrow)
					((uint16_t *)col)[k] = (uint16_t)j;
				else
					((uint32_t *)col)[k] = (uint32_t)j;
				values[k] = (float)rs_dtype_round(vd, s[e]);
				approx[e] += (double)values[k++];
			}
		}
		row_ptr[m] = (uint32_t)k;
		return 3;
	}
}

/*
 * A quantised part as written: data[0] the codes in the tensor's order,
 * packed at their width (code k in bits k w .. k w + w - 1 of the
 * little-endian bit stream), data[1] what gives the levels
 * (add_quant_parts): the levels of book in the value dtype when they are
 * spelt out (`full`, or k-means), else the quantiser's rule in F32 taken
 * from them: offset book[0] and step (book[L-1] - book[0]) / (L - 1) per
 * grid, or the scale alpha.  approx += the level of every code as the
 * reader rebuilds it (rankscope-plan(5), Quantisation).
 */
static void
write_codes(const rs_layer *l, rs_quantizer q, unsigned bits, bool full, const uint16_t *codes,
            const double *book, void **data, double *approx)
{
	size_t m = l->rows, n = l->cols, count = m * n, i, j, r;
	unsigned width = rs_quantizer_bits(q, bits), levels = 1u << width, c;
	bool channel = q == RS_QUANT_UNIFORM_CHANNEL;
	size_t grids = channel ? m : 1, nbook = grids * levels;
	double *level = rs_xmalloc(nbook * sizeof *level);
	uint8_t *packed = data[0] = rs_xcalloc(packed_code_bytes(count, width) + 1, 1);

	if (rs_quant_spells_levels(q, full)) {
		float *out = data[1] = rs_xmalloc(nbook * sizeof(float));
		for (i = 0; i < nbook; i++) {
			out[i] = (float)rs_dtype_round(rs_layer_value_dtype(l), book[i]);
			level[i] = out[i];
		}
	} else if (q == RS_QUANT_UNIFORM_TENSOR || channel) {
		float *grid = data[1] = rs_xmalloc(2 * grids * sizeof(float));
		for (r = 0; r < grids; r++) {
			const double *b = book + r * levels;
			grid[2 * r] = (float)b[0];
			grid[2 * r + 1] = (float)((b[levels - 1] - b[0]) / (levels - 1));
			for (c = 0; c < levels; c++)
				level[r * levels + c] = (double)grid[2 * r] + c * (double)grid[2 * r + 1];
		}
	} else {
		/* binary (-alpha, alpha), ternary (-alpha, 0, alpha) */
		float *scale = data[1] = rs_xmalloc(sizeof(float));
		scale[0] = (float)book[q == RS_QUANT_BINARY ? 1 : 2];
		for (c = 0; c < levels; c++)
			level[c] = 0;
		level[0] = -(double)scale[0];
		level[q == RS_QUANT_BINARY ? 1 : 2] = scale[0];
	}
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			size_t e = i + j * m, bit = rs_layer_tensor_index(l, i, j) * width, b;
			uint16_t code = codes[e];
			for (b = 0; b < width; b++)
				if (code >> b & 1)
					set_bit(packed, bit + b);
			approx[e] += level[(channel ? i * levels : 0) + code];
		}
	free(level);
}

/* Computes the parts of one compressed layer and what they measure. */
/* The whitened truncation's factors (whiten.h) as B (m x r) and A (r x n),
 * row-major float32; approx += B A. */
static rs_status
whitened_factorise(const rs_model *model, const rs_layer *l, const double *w,
                   const double *g, size_t r, float *a, float *b, double *approx,
                   rs_error *err)
{
	size_t m = l->rows, n = l->cols, i, j, t;
	rs_dtype vd = rs_layer_value_dtype(l);
	double *left = malloc(m * r * sizeof *left), *right = malloc(r * n * sizeof *right);
	rs_status st;

	if (!left || !right) {
		free(left);
		free(right);
		return rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
		                    l->name);
	}
	st = rs_whiten_factors(w, m, n, m, g, n, r, left, right, err);
	if (st == RS_OK) {
		for (i = 0; i < m; i++)
			for (t = 0; t < r; t++)
				b[i * r + t] = (float)rs_dtype_round(vd, left[i + t * m]);
		for (t = 0; t < r; t++)
			for (j = 0; j < n; j++)
				a[t * n + j] = (float)rs_dtype_round(vd, right[t + j * r]);
		add_float_product(b, a, m, n, r, approx);
	} else {
		rs_error_prefix(err, "%s: layer '%s': ", model->path, l->name);
	}
	free(left);
	free(right);
	return st;
}

/* The refined factors as lowrank.A (data[0], r x n) and lowrank.B (data[1],
 * m x r), row-major, in vd's values (held as floats); approx += B A as
 * written. */
static void
write_factors(const rs_refined_parts *rp, rs_dtype vd, size_t m, size_t n, size_t r,
              void **data, double *approx)
{
	float *fa = data[0] = rs_xmalloc(r * n * sizeof(float) + 1);
	float *fb = data[1] = rs_xmalloc(m * r * sizeof(float) + 1);
	size_t i, j, t;

	for (i = 0; i < m; i++)
		for (t = 0; t < r; t++)
			fb[i * r + t] = (float)rs_dtype_round(vd, rp->b[i + t * m]);
	for (t = 0; t < r; t++)
		for (j = 0; j < n; j++)
			fa[t * n + j] = (float)rs_dtype_round(vd, rp->a[t + j * r]);
	add_float_product(fb, fa, m, n, r, approx);
}

/* A refined entry's parts (planrefine.h), refined again as the plan did
 * (deterministic, the recorded sweeps at most), written as the unrefined
 * method's parts are. */
static rs_status
refined_parts(const rs_model *model, const rs_layer *l, const rs_plan_entry *e,
              const rs_plan_figures *f, const rs_layer_analysis *a, layer_parts *p,
              double *approx, rs_error *err)
{
	size_t m = l->rows, n = l->cols, r = f->rank;
	rs_refined_parts rp;
	rs_status st;

	st = rs_plan_entry_refine(l, a, e, model->path, e->refined_sweeps, &rp, NULL, err);
	if (st != RS_OK)
		return st;
	switch (f->method) {
	case RS_METHOD_LOWRANK:
		write_factors(&rp, rs_layer_value_dtype(l), m, n, r, p->data, approx);
		break;
	case RS_METHOD_PRUNE:
		write_sparse(l, rp.wp, rp.keep, f->nonzeros, p->data, approx);
		break;
	case RS_METHOD_QUANT:
		write_codes(l, e->quantizer, e->bits, true, rp.codes, rp.book, p->data, approx);
		break;
	case RS_METHOD_LOWRANK_SPARSE: {
		/* file order: lowrank.A, lowrank.B, sparse.values, sparse.indices */
		write_factors(&rp, rs_layer_value_dtype(l), m, n, r, p->data, approx);
		write_sparse(l, rp.wp, rp.keep, f->nonzeros, p->data + 2, approx);
		break;
	}
	default:
		break;
	}
	rs_refined_parts_free(&rp);
	return RS_OK;
}

/*
 * apply --dense: the parts give way to the matrix they make, written as
 * the layer's tensor (l: the view measured, whose fold maps the matrix to
 * the tensor) in dense_dtype; approx becomes the values as written, so
 * the errors measured next include the cast.
 */
static void
densify(const rs_layer *l, double *approx, layer_parts *p)
{
	const rs_tensor *t = l->tensor;
	rs_dtype dt = dense_dtype(t);
	size_t m = l->rows, n = l->cols, count = m * n, i, j, k;
	double *v = rs_xmalloc(count * sizeof *v + 1);
	unsigned char *out = rs_xmalloc(rs_dtype_nbytes(dt, count) + 1);

	for (k = 0; k < MAX_PARTS; k++) {
		free(p->data[k]);
		p->data[k] = NULL;
	}
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			v[rs_layer_tensor_index(l, i, j)] = approx[i + j * m];
	if (!rs_dtype_from_double(dt, v, count, out))
		abort();   /* dense_dtype gives only the four it writes */
	rs_dtype_to_double(dt, out, count, v, 1);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			approx[i + j * m] = v[rs_layer_tensor_index(l, i, j)];
	p->data[0] = out;
	free(v);
}

static rs_status
compute_parts(const rs_model *model, const rs_layer *l, const rs_plan_entry *e,
              const rs_plan_figures *f, const rs_layer_analysis *a, bool dense,
              layer_parts *p, rs_error *err)
{
	const rs_calib *calib = a->calib;
	double *gram = NULL;
	size_t m = l->rows, n = l->cols, count = m * n, i, j;
	double *w = malloc(count * sizeof *w), *x = malloc(count * sizeof *x);
	double *approx = calloc(count ? count : 1, sizeof *approx);
	unsigned char *keep = NULL;
	rs_status st = RS_OK;
	/* rs_layer_load_for_spectrum gives W^T for these (as the engine) */
	bool transposed = rs_layer_loads_transposed(l);

	memset(p, 0, sizeof *p);
	p->report.measured_out = NAN;
	if (!w || !x || !approx) {
		st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
		                  l->name);
		goto out;
	}
	if (calib != NULL) {
		rs_calib_kind kind;
		double count_seen;

		if ((st = rs_calib_load(calib, l, &kind, &gram, &count_seen, err)) != RS_OK)
			goto out;
	}
	if (rs_method_is_decomposition(f->method)) {
		/* the decompositions: parts, and the matrix measured (a grouped
		 * SVD's own fold) */
		rs_layer view;
		st = apply_decomposition(model, l, a, e, p->data, &view, w, approx, err);
		if (st == RS_OK && dense)
			densify(&view, approx, p);
		/* G's columns are the layer's own (fold 0 for a kernel): only a
		 * view in the same fold is measured on it */
		if (st == RS_OK && gram != NULL && view.fold == l->fold) {
			for (i = 0; i < count; i++)
				x[i] = w[i] - approx[i];
			p->report.measured_out = rs_gram_relative_error(w, x, m, n, gram, n);
		}
		if (st == RS_OK)
			st = measure(model, &view, w, approx, &p->report, err);
		goto out;
	}
	if ((st = rs_layer_load(l, w, m, model->path, err)) != RS_OK)
		goto out;
	if (f->method == RS_METHOD_LOWRANK && e->whitened && gram == NULL) {
		st = rs_error_set(err, RS_EINVAL, "%s: layer '%s': a whitened truncation needs "
		                  "the layer's calibration statistics (--calibration)", model->path,
		                  l->name);
		goto out;
	}
	memcpy(x, w, count * sizeof *w);
	if (e->refined && f->method == e->method) {
		st = refined_parts(model, l, e, f, a, p, approx, err);
		goto measured;
	}
	switch (f->method) {
	case RS_METHOD_LOWRANK:
		p->data[0] = rs_xmalloc(f->rank * n * sizeof(float) + 1);
		p->data[1] = rs_xmalloc(m * f->rank * sizeof(float) + 1);
		if (e->whitened)
			st = whitened_factorise(model, l, w, gram, f->rank, p->data[0], p->data[1],
			                        approx, err);
		else
			st = apply_factorise(model, l, x, f->rank, p->data[0], p->data[1], approx,
			                     err);
		break;
	case RS_METHOD_PRUNE: {
		/* the same statistics, from the same load, as the figures */
		size_t lr, lc;
		rs_magnitudes *mags;
		if (e->scored) {
			/* the output-aware mask, already in W's order */
			if (a->out == NULL) {
				st = rs_error_set(err, RS_EINVAL, "%s: layer '%s': a scored pruning needs "
				                  "the layer's calibration statistics (--calibration)",
				                  model->path, l->name);
				break;
			}
			keep = rs_xmalloc(count ? count : 1);
			rs_out_scored_mask(a->out, count - f->nonzeros, keep);
			write_sparse(l, w, keep, f->nonzeros, p->data, approx);
			break;
		}
		if ((st = rs_layer_load_for_spectrum(l, x, &lr, &lc, model->path, err)) != RS_OK)
			break;
		mags = rs_magnitudes_new(x, lr, lc, lr);
		keep = malloc(count ? count : 1);
		if (mags == NULL || keep == NULL) {
			rs_magnitudes_free(mags);
			st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory",
			                  model->path, l->name);
			break;
		}
		rs_prune_mask(mags, count - f->nonzeros, keep);
		rs_magnitudes_free(mags);
		/* the mask is in the loaded buffer's order: map it to W's */
		if (transposed) {
			unsigned char *wkeep = malloc(count ? count : 1);
			if (wkeep == NULL) {
				st = rs_error_set(err, RS_ENOMEM, "%s: out of memory", model->path);
				break;
			}
			for (i = 0; i < m; i++)
				for (j = 0; j < n; j++)
					wkeep[i + j * m] = keep[j + i * n];
			free(keep);
			keep = wkeep;
		}
		write_sparse(l, w, keep, f->nonzeros, p->data, approx);
		break;
	}
	case RS_METHOD_PRUNE_ROWS:
	case RS_METHOD_PRUNE_COLS: {
		/* the channels the figures drop: from the same statistics */
		bool rows = f->method == RS_METHOD_PRUNE_ROWS;
		size_t side = rows ? m : n, other = rows ? n : m, kept = f->nonzeros / other;
		size_t lr, lc, c, t = 0;
		const uint32_t *order;
		rs_magnitudes *mags;
		float *values;
		uint8_t *bitmap;
		if ((st = rs_layer_load_for_spectrum(l, x, &lr, &lc, model->path, err)) != RS_OK)
			break;
		mags = rs_magnitudes_new(x, lr, lc, lr);
		if (mags == NULL) {
			st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory",
			                  model->path, l->name);
			break;
		}
		/* W's rows are the loaded matrix's columns when it is W^T */
		order = rows != transposed ? mags->row_order : mags->col_order;
		keep = rs_xcalloc(side, 1);
		for (c = side - kept; c < side; c++)
			keep[order[c]] = 1;
		rs_magnitudes_free(mags);
		values = p->data[0] = rs_xmalloc(kept * other * sizeof(float) + 1);
		/* the kept channels as a bitmap of the side (bit c: channel c) */
		bitmap = p->data[1] = rs_xcalloc(packed_code_bytes(side, 1) + 1, 1);
		for (c = 0; c < side; c++) {
			if (!keep[c])
				continue;
			set_bit(bitmap, c);
			for (i = 0; i < other; i++) {
				size_t e2 = rows ? c + i * m : i + c * m;
				/* kept rows (kept x cols) or kept columns (rows x kept),
				 * row-major */
				float v = (float)rs_dtype_round(rs_layer_value_dtype(l), w[e2]);
				if (rows)
					values[t * other + i] = v;
				else
					values[i * kept + t] = v;
				approx[e2] = (double)v;
			}
			t++;
		}
		break;
	}
	case RS_METHOD_QUANT: {
		unsigned levels = 1u << rs_quantizer_bits(e->quantizer, e->bits);
		size_t nbook = e->quantizer == RS_QUANT_UNIFORM_CHANNEL ? m * levels : levels;
		uint16_t *codes = rs_xmalloc(count * sizeof *codes + 1);
		double *book = rs_xcalloc(nbook, sizeof *book);
		rs_quant_result qr;
		st = rs_quantize(w, m, n, m, e->quantizer, e->bits, NULL, codes, book, &qr, err);
		if (st == RS_OK)
			write_codes(l, e->quantizer, e->bits, false, codes, book, p->data, approx);
		free(codes);
		free(book);
		break;
	}
	case RS_METHOD_LOWRANK_SPARSE:
	case RS_METHOD_QUANT_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT: {
		/* parts in file order: [lowrank.A, lowrank.B,] sparse.values,
		 * sparse.indices[, quant.codes, quant.codebook] */
		rs_combine_spec spec;
		unsigned levels = 1u << rs_quantizer_bits(e->quantizer, e->bits);
		size_t nbook = e->quantizer == RS_QUANT_UNIFORM_CHANNEL ? m * levels : levels;
		int part = 0;
		double *sparse = calloc(count ? count : 1, sizeof *sparse);
		rs_combine_parts cp = {
			.lowrank = x,
			.codes = calloc(count ? count : 1, sizeof *cp.codes),
			.codebook = calloc(nbook, sizeof *cp.codebook),
		};
		rs_combine_result cr;

		rs_plan_entry_combine_spec(l, e, &spec);
		memset(&cr, 0, sizeof cr);
		if (sparse == NULL || cp.codes == NULL || cp.codebook == NULL)
			st = rs_error_set(err, RS_ENOMEM, "%s: out of memory", model->path);
		if (st == RS_OK)
			st = rs_combine_with_parts(w, m, n, m, &spec, NULL, NULL, NULL, NULL, sparse,
			                           &cp, &cr, err);
		if (st == RS_OK && cr.fallback != RS_COMBINE_NONE)
			st = rs_error_set(err, RS_EINVAL, "%s: layer '%s': the combination falls "
			                  "back to a single part; plan that part instead", model->path,
			                  l->name);
		if (st == RS_OK && spec.rank > 0) {
			/* x = L, of rank r: its factors */
			p->data[part] = rs_xmalloc(e->rank * n * sizeof(float) + 1);
			p->data[part + 1] = rs_xmalloc(m * e->rank * sizeof(float) + 1);
			st = apply_factorise(model, l, x, e->rank, p->data[part], p->data[part + 1],
			                     approx, err);
			part += 2;
		}
		if (st == RS_OK) {
			size_t nnz = 0;
			keep = rs_xcalloc(count ? count : 1, 1);
			for (i = 0; i < count; i++) {
				keep[i] = sparse[i] != 0;
				nnz += keep[i];
			}
			/* S may have fewer nonzeros than budgeted (exact zeros): pad
			 * with explicit zeros at the first unused positions */
			for (i = 0; nnz < f->nonzeros && i < count; i++)
				if (!keep[i]) {
					keep[i] = 1;
					nnz++;
				}
			part += write_sparse(l, sparse, keep, f->nonzeros, p->data + part, approx);
		}
		if (st == RS_OK && spec.quantize)
			write_codes(l, e->quantizer, e->bits, false, cp.codes, cp.codebook,
			            p->data + part, approx);
		free(sparse);
		free(cp.codes);
		free(cp.codebook);
		rs_combine_result_free(&cr);
		break;
	}
	default:
		break;
	}
measured:
	if (st == RS_OK && dense)
		densify(l, approx, p);
	/* the output error of W - W' on the calibration, before measure
	 * (whose SVDs destroy approx); x is free once the parts are made */
	if (st == RS_OK && gram != NULL) {
		for (i = 0; i < count; i++)
			x[i] = w[i] - approx[i];
		p->report.measured_out = rs_gram_relative_error(w, x, m, n, gram, n);
	}
	if (st == RS_OK)
		st = measure(model, l, w, approx, &p->report, err);
out:
	free(gram);
	free(keep);
	free(w);
	free(x);
	free(approx);
	return st;
}

rs_status
rs_apply_measure(const rs_model *model, const rs_layer *layer, const rs_layer_analysis *a,
                 const rs_plan_entry *entry, rs_apply_report *report, rs_error *err)
{
	layer_parts parts;
	rs_plan_figures fig;
	rs_status st;

	rs_plan_figures_for(layer, a, entry, &fig);
	memset(report, 0, sizeof *report);
	report->measured_out = NAN;
	report->predicted_out = fig.out_err;
	if (fig.method == RS_METHOD_DENSE) {
		report->measured_out = a->calib ? 0 : NAN;
		return RS_OK;
	}
	st = compute_parts(model, layer, entry, &fig, a, false, &parts, err);
	if (st == RS_OK)
		*report = parts.report;
	report->layer = layer;
	report->method = fig.method;
	parts_free(&parts);
	return st;
}

/* A run of whole blocks decoded to doubles (under the guard: loads and
 * stores only). */
typedef struct decode_args {
	rs_dtype dtype;
	const unsigned char *src;
	size_t count;
	double *dst;
} decode_args;

static void
decode_run(void *arg)
{
	const decode_args *a = arg;

	rs_dtype_to_double(a->dtype, a->src, a->count, a->dst, 1);
}

/* Elements decoded at a time: a multiple of every block size (32..256). */
#define DECODE_RUN 8192

/* A block-typed tensor written as F32: decoded run by run into buf. */
static rs_status
copy_decoded(rs_file_out *out, const rs_model *model, const rs_tensor *t,
             unsigned char *buf, size_t buflen, rs_error *err)
{
	double *v;
	size_t done, n, i;
	rs_status st = RS_OK;

	if (!rs_dtype_get(t->dtype)->is_float) {
		char shown[160];
		return rs_error_set(err, RS_EFORMAT, "%s: tensor '%s': its type %s has no "
		                    "float values rankscope can write to safetensors",
		                    model->path, rs_printable(shown, sizeof shown, t->name),
		                    rs_dtype_get(t->dtype)->name);
	}
	(void)buflen;   /* DECODE_RUN floats fit: 32 KiB of 1 MiB */
	v = rs_xmalloc(DECODE_RUN * sizeof *v);
	for (done = 0; done < t->count && st == RS_OK; done += n) {
		decode_args a;

		n = t->count - done < DECODE_RUN ? t->count - done : DECODE_RUN;
		a.dtype = t->dtype;
		a.src = t->data + rs_dtype_nbytes(t->dtype, done);
		a.count = n;
		a.dst = v;
		st = rs_guard_run(a.src, rs_dtype_nbytes(t->dtype, n), decode_run, &a,
		                  model->path, t->name, err);
		for (i = 0; i < n && st == RS_OK; i++) {
			float f = (float)v[i];
			memcpy(buf + 4 * i, &f, 4);
		}
		if (st == RS_OK)
			st = rs_file_out_write(out, buf, 4 * n, err);
	}
	free(v);
	return st;
}

/*
 * Copies a tensor of the input through a private buffer: the input is a
 * map, and a file shrunk under it must be an error naming the tensor, not
 * a SIGBUS (guard.h).  Copying in pieces keeps the buffer small.
 */
static rs_status
copy_tensor(rs_file_out *out, const rs_model *model, const rs_tensor *t,
            unsigned char *buf, size_t buflen, rs_error *err)
{
	size_t done, n;
	rs_status st = RS_OK;

	if (rs_dtype_get(t->dtype)->block)
		return copy_decoded(out, model, t, buf, buflen, err);
	for (done = 0; done < t->nbytes && st == RS_OK; done += n) {
		n = t->nbytes - done < buflen ? t->nbytes - done : buflen;
		st = rs_guard_copy(buf, t->data + done, n, model->path, t->name, err);
		if (st == RS_OK)
			st = rs_file_out_write(out, buf, n, err);
	}
	return st;
}

/* One part's data: as computed, or a float part in its 16-bit dtype (its
 * values are that dtype's already, so the conversion is exact). */
static rs_status
write_part(rs_file_out *out, const out_tensor *o, const void *data, rs_error *err)
{
	size_t count = o->nbytes / 2, i;
	const float *f = data;
	double *v;
	unsigned char *bytes;
	rs_status st;

	if (!o->from_float)
		return rs_file_out_write(out, data, o->nbytes, err);
	v = rs_xmalloc(count * sizeof *v + 1);
	bytes = rs_xmalloc(o->nbytes + 1);
	for (i = 0; i < count; i++)
		v[i] = (double)f[i];
	rs_dtype_from_double(o->dtype, v, count, bytes);
	st = rs_file_out_write(out, bytes, o->nbytes, err);
	free(v);
	free(bytes);
	return st;
}

#define COPY_BUFFER (1u << 20)

rs_status
rs_apply(const rs_model *model, const rs_layer *layers, size_t nlayers,
         const rs_layer_analysis *analyses, const rs_plan *plan,
         const char *plan_json, const char *out_path, bool dense,
         rs_apply_progress progress, void *userdata, rs_apply_sizes *sizes, rs_error *err)
{
	rs_apply_sizes written = {0};
	out_tensor *outs = rs_xcalloc(MAX_PARTS * model->ntensors + 1, sizeof *outs);
	size_t nouts = 0, i, hlen;
	char *header = NULL;
	unsigned char *buf = rs_xmalloc(COPY_BUFFER);
	layer_parts parts;
	rs_file_out out;
	rs_status st = RS_OK;

	memset(&parts, 0, sizeof parts);
	for (i = 0; dense && i < nlayers; i++) {
		rs_plan_figures fig;

		rs_plan_figures_for(&layers[i], &analyses[i], &plan->entries[i], &fig);
		if (layers[i].group != NULL && fig.method != RS_METHOD_DENSE) {
			char shown[160];
			st = rs_error_set(err, RS_EINVAL, "%s: layer '%s' is composed of %zu factors: "
			                  "--dense has no tensor to write its product as; apply it "
			                  "without --dense (or plan it dense)", model->path,
			                  rs_printable(shown, sizeof shown, layers[i].name),
			                  layers[i].group->nfactors);
			goto done;
		}
	}
	for (i = 0; i < model->ntensors; i++)
		plan_outputs(&model->tensors[i], layers, nlayers, analyses, plan, dense, outs,
		             &nouts);
	if (dense && (st = join_views(model, outs, nouts, err)) != RS_OK)
		goto done;
	header = build_header(model, outs, nouts, plan_json, dense, &hlen);
	written.header = hlen;
	for (i = 0; i < nouts; i++) {
		if (outs[i].source != NULL) {
			written.other += outs[i].nbytes;
			continue;
		}
		written.layers += outs[i].nbytes;
		written.plan_bits += outs[i].plan_bits;
	}

	/* written beside out_path and renamed over it when complete (file.h) */
	if ((st = rs_file_out_open(&out, out_path, err)) != RS_OK)
		goto done;
	st = rs_file_out_write(&out, header, hlen, err);
	for (i = 0; i < nouts && st == RS_OK; i++) {
		const out_tensor *o = &outs[i];

		if (o->source) {
			st = copy_tensor(&out, model, o->source, buf, COPY_BUFFER, err);
			continue;
		}
		if (o->part == 0) {
			const rs_layer *l = &layers[o->layer];
			rs_plan_figures fig;

			parts_free(&parts);
			rs_plan_figures_for(l, &analyses[o->layer], &plan->entries[o->layer], &fig);
			st = compute_parts(model, l, &plan->entries[o->layer], &fig,
			                   &analyses[o->layer], dense, &parts, err);
			if (st != RS_OK)
				break;
			parts.report.layer = l;
			parts.report.method = fig.method;
			parts.report.rank = fig.rank;
			parts.report.predicted_fro = fig.err_fro;
			parts.report.predicted_spec = fig.err_spec;
			parts.report.spec_is_bound = fig.spec_is_bound;
			parts.report.predicted_out = fig.out_err;
			if (progress)
				progress(userdata, &parts.report);
		}
		st = write_part(&out, o, parts.data[o->part], err);
	}
	if (st == RS_OK)
		st = rs_file_out_commit(&out, true, err);
	else
		rs_file_out_abort(&out);
	if (st == RS_OK && sizes != NULL)
		*sizes = written;
done:
	parts_free(&parts);
	for (i = 0; i < nouts; i++)
		free(outs[i].name);
	free(outs);
	free(header);
	free(buf);
	return st;
}
