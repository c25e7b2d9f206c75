/*
 * test-layer.c — layer discovery, name filters, the four conv folding
 * schemes element by element, dtype conversion on load, and the refusal
 * of non-finite weights.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

static rs_model *
parse(test_st *st, unsigned char **bytes)
{
	size_t len;
	rs_error err;
	rs_model *m;

	*bytes = test_st_bytes(st, &len);
	m = rs_safetensors_parse("mem.safetensors", *bytes, len, &err);
	CHECK(m != NULL, "parse: %s", m ? "" : err.msg);
	return m;
}

/* Row and column of kernel element (f, c, h, w) under each scheme, written
 * straight from DESIGN.md §4 rather than from the loader's code. */
static void
expected_position(int fold, const size_t s[4], size_t f, size_t c, size_t h,
                  size_t w, size_t *row, size_t *col)
{
	switch (fold) {
	case 0: *row = f; *col = c * s[2] * s[3] + h * s[3] + w; break;
	case 1: *row = f * s[2] + h; *col = c * s[3] + w; break;
	case 2: *row = f * s[3] + w; *col = c * s[2] + h; break;
	default: *row = f * s[2] * s[3] + h * s[3] + w; *col = c; break;
	}
}

static void
check_folds(void)
{
	size_t shape[4] = {3, 2, 4, 5}, count = 120, i, f, c, h, w;
	double *v = rs_xmalloc(count * sizeof *v);
	unsigned char *bytes;
	test_st *st = test_st_new();
	rs_model *m;
	rs_layer *layers;
	int fold;

	for (i = 0; i < count; i++)
		v[i] = (double)i + 0.25;
	test_st_add_f32(st, "conv.weight", shape, 4, v);
	m = parse(st, &bytes);
	for (fold = 0; fold < RS_FOLD_COUNT && m; fold++) {
		size_t n = rs_layers_discover(m, NULL, fold, NULL, &layers), rows, cols;
		double *a;
		rs_error err;

		CHECK(n == 1 && layers[0].kind == RS_LAYER_CONV && layers[0].fold == fold,
		      "conv discovered with fold %d", fold);
		rows = layers[0].rows;
		cols = layers[0].cols;
		CHECK(rows * cols == count, "fold %d keeps all elements", fold);
		{
			/* the spectrum load: W^T straight for fold 0, W gathered otherwise */
			double *sp = rs_xcalloc(count, sizeof *sp), *wm = rs_xcalloc(count, sizeof *wm);
			size_t lr, lc, x, y;
			rs_error e2;
			CHECK(rs_layer_load(&layers[0], wm, rows, "mem", &e2) == RS_OK, "load W");
			CHECK(rs_layer_load_for_spectrum(&layers[0], sp, &lr, &lc, "mem", &e2) == RS_OK,
			      "spectrum load");
			for (x = 0; x < rows; x++)
				for (y = 0; y < cols; y++)
					CHECK(fold == 0 ? lr == cols && sp[y + x * cols] == wm[x + y * rows] :
					      lr == rows && sp[x + y * rows] == wm[x + y * rows],
					      "fold %d spectrum load element (%zu, %zu)", fold, x, y);
			free(sp);
			free(wm);
		}
		a = rs_xcalloc(rows * cols, sizeof *a);
		CHECK(rs_layer_load(&layers[0], a, rows, "mem", &err) == RS_OK, "load");
		i = 0;
		for (f = 0; f < shape[0]; f++)
			for (c = 0; c < shape[1]; c++)
				for (h = 0; h < shape[2]; h++)
					for (w = 0; w < shape[3]; w++, i++) {
						size_t r, q;
						expected_position(fold, shape, f, c, h, w, &r, &q);
						CHECK(r < rows && q < cols && a[r + q * rows] == v[i],
						      "fold %d: element (%zu,%zu,%zu,%zu) at (%zu,%zu)",
						      fold, f, c, h, w, r, q);
					}
		free(a);
		/* the tensor load is the stored order whatever the fold; a NaN
		 * is reported where rs_layer_load reports it */
		a = rs_xcalloc(count, sizeof *a);
		CHECK(rs_layer_load_tensor(&layers[0], a, "mem", &err) == RS_OK, "tensor load");
		for (i = 0; i < count; i++)
			CHECK(a[i] == v[i], "fold %d: tensor load element %zu", fold, i);
		{
			unsigned char *data = (unsigned char *)layers[0].tensor->data;
			float nan = NAN, keep;
			size_t at = 77, r, q;
			char want[64];
			memcpy(&keep, data + at * 4, 4);
			memcpy(data + at * 4, &nan, 4);
			expected_position(fold, shape, at / 40, at / 20 % 2, at / 5 % 4, at % 5, &r, &q);
			snprintf(want, sizeof want, "element (%zu, %zu)", r, q);
			CHECK(rs_layer_load_tensor(&layers[0], a, "mem", &err) == RS_ENUMERIC,
			      "fold %d: NaN refused by the tensor load", fold);
			CHECK_CONTAINS(err.msg, want);
			CHECK(rs_layer_load(&layers[0], a, rows, "mem", &err) == RS_ENUMERIC,
			      "fold %d: NaN refused by the matrix load", fold);
			CHECK_CONTAINS(err.msg, want);
			memcpy(data + at * 4, &keep, 4);
		}
		free(a);
		free(layers);
	}
	{
		size_t rows, cols;
		rs_fold_shape(shape, 1, &rows, &cols);
		CHECK(rows == 12 && cols == 10, "fold 1 shape (f kh) x (c kw)");
		rs_fold_shape(shape, 2, &rows, &cols);
		CHECK(rows == 15 && cols == 8, "fold 2 shape (f kw) x (c kh)");
		rs_fold_shape(shape, 3, &rows, &cols);
		CHECK(rows == 60 && cols == 2, "fold 3 shape (f kh kw) x c");
	}
	rs_model_close(m);
	free(bytes);
	test_st_free(st);
	free(v);
}

static void
check_discovery_and_filters(void)
{
	size_t s2[2] = {4, 3}, s1[1] = {4}, s3[3] = {2, 2, 2}, s0[2] = {0, 5};
	double v[24] = {0};
	int64_t ints[12] = {0};
	const char *inc[] = {"enc*"}, *exc[] = {"*.v.*"};
	rs_layer_filter filter = {inc, 1, exc, 1};
	test_st *st = test_st_new();
	unsigned char *bytes;
	rs_layer *layers;
	rs_model *m;
	size_t n;

	test_st_add_f32(st, "enc.q.weight", s2, 2, v);
	test_st_add_f32(st, "enc.v.weight", s2, 2, v);
	test_st_add_f32(st, "enc.q.bias", s1, 1, v);
	test_st_add_f32(st, "dec.out.weight", s2, 2, v);
	test_st_add_f32(st, "conv1d.weight", s3, 3, v);
	test_st_add_f32(st, "empty.weight", s0, 2, v);
	test_st_add(st, "index", "I64", s2, 2, ints, sizeof(int64_t) * 12);
	m = parse(st, &bytes);
	if (m != NULL) {
		n = rs_layers_discover(m, NULL, 0, NULL, &layers);
		CHECK(n == 3, "three 2-D float layers, got %zu", n);
		free(layers);
		n = rs_layers_discover(m, &filter, 0, NULL, &layers);
		CHECK(n == 1 && strcmp(layers[0].name, "enc.q.weight") == 0,
		      "include enc*, exclude *.v.* keeps enc.q.weight only");
		free(layers);
		CHECK(strcmp(rs_layer_ineligible_reason(rs_model_find(m, "enc.q.bias")), "1-D") == 0,
		      "bias is 1-D");
		CHECK(strcmp(rs_layer_ineligible_reason(rs_model_find(m, "empty.weight")),
		             "empty") == 0, "empty matrix is not a layer");
		CHECK(rs_layer_ineligible_reason(rs_model_find(m, "index")) != NULL,
		      "integer tensor is not a layer");
		CHECK(rs_layer_ineligible_reason(rs_model_find(m, "conv1d.weight")) != NULL,
		      "3-D tensor is not a layer");
	}
	rs_model_close(m);
	free(bytes);
	test_st_free(st);
}

static void
check_dtypes_and_nonfinite(void)
{
	/* [[1, -2], [0.5, 3]] in F16, BF16, F64; a NaN in another. */
	uint16_t h[4] = {0x3c00, 0xc000, 0x3800, 0x4200};
	uint16_t b[4] = {0x3f80, 0xc000, 0x3f00, 0x4040};
	double d[4] = {1, -2, 0.5, 3}, a[4];
	float bad[4] = {1, NAN, 0, 0};
	size_t s2[2] = {2, 2}, n, i;
	test_st *st = test_st_new();
	unsigned char *bytes;
	rs_layer *layers;
	rs_model *m;
	rs_error err;

	test_st_add(st, "h", "F16", s2, 2, h, sizeof h);
	test_st_add(st, "b", "BF16", s2, 2, b, sizeof b);
	test_st_add(st, "d", "F64", s2, 2, d, sizeof d);
	test_st_add(st, "bad", "F32", s2, 2, bad, sizeof bad);
	m = parse(st, &bytes);
	if (m != NULL) {
		n = rs_layers_discover(m, NULL, 0, NULL, &layers);
		CHECK(n == 4, "four layers");
		for (i = 0; i < 3 && n == 4; i++) {
			CHECK(rs_layer_load(&layers[i], a, 2, "mem", &err) == RS_OK, "load");
			/* column-major: a = [1, 0.5, -2, 3] */
			CHECK(a[0] == 1 && a[1] == 0.5 && a[2] == -2 && a[3] == 3,
			      "layer %s converts exactly", layers[i].name);
		}
		if (n == 4) {
			size_t r, c;
			/* the spectrum load reads W^T straight for a linear layer */
			CHECK(rs_layer_load_for_spectrum(&layers[0], a, &r, &c, "mem", &err) == RS_OK,
			      "straight load");
			CHECK(r == 2 && c == 2 && a[0] == 1 && a[1] == -2 && a[2] == 0.5 && a[3] == 3,
			      "the straight load is W^T in column-major order");
			CHECK(rs_layer_load_for_spectrum(&layers[3], a, &r, &c, "mem.safetensors",
			                                 &err) == RS_ENUMERIC, "NaN refused (straight)");
			CHECK_CONTAINS(err.msg, "layer 'bad': element (0, 1)");
			CHECK(rs_layer_load(&layers[3], a, 2, "mem.safetensors", &err) == RS_ENUMERIC,
			      "NaN refused");
			CHECK_CONTAINS(err.msg, "mem.safetensors: layer 'bad': element (0, 1)");
			CHECK_CONTAINS(err.msg, "NaN");
		}
		free(layers);
	}
	rs_model_close(m);
	free(bytes);
	test_st_free(st);
}

int
main(void)
{
	check_folds();
	check_discovery_and_filters();
	check_dtypes_and_nonfinite();
	return test_done("test-layer");
}
