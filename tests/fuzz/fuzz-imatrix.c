/*
 * fuzz-imatrix.c — bytes as llama.cpp's legacy importance matrix
 * (rs_imatrix_parse, io-imatrix.c), then as a calibration file
 * (rs_calib_open: rs_model_open first, the imatrix reader when that refuses
 * and the bytes start like one) against a small model whose layers have
 * llama.cpp's names: one linear layer and a stack of three experts split
 * into views, so calib.c's lookups of a layer's own row and of an expert's
 * row of a stack see fuzzed shapes, counts and values.
 *
 * A model that opens must be consistent: one F32 1-D tensor NAME.diag per
 * entry, inside the image, every value finite and >= 0, names unique.  A
 * calibration that loads must give a diagonal matrix of finite values >= 0
 * of the layer's width.  Refusals carry a status, name the file and hold
 * no raw control byte.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testlib.h"
#include "fuzzlib.h"
#include "rankscope/calib.h"
#include "rankscope/imatrix.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define PATH "fuzz.dat"

static rs_model *model;
static rs_layer *layers;
static size_t nlayers;
static char *calib_path;

/* The harness's own allocations, given back at exit (LeakSanitizer). */
static void
close_model(void)
{
	free(layers);
	rs_model_close(model);
	free(calib_path);
}

/* blk.0.ffn_up.weight (4, 8); blk.0.ffn_up_exps.weight (3, 4, 8), split
 * into blk.0.ffn_up_exps.weight.0 .. .2; blk.0.ffn_down.weight (8, 5). */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const size_t up[2] = {4, 8}, exps[3] = {3, 4, 8}, down[2] = {8, 5};
	double v[96];
	test_st *st = test_st_new();
	unsigned char *bytes;
	size_t len, i;
	char *path;
	rs_error err;

	(void)argc;
	(void)argv;
	for (i = 0; i < 96; i++)
		v[i] = (double)((i * 7) % 11) - 5.0;
	test_st_add_f32(st, "blk.0.ffn_up.weight", up, 2, v);
	test_st_add_f32(st, "blk.0.ffn_up_exps.weight", exps, 3, v);
	test_st_add_f32(st, "blk.0.ffn_down.weight", down, 2, v);
	bytes = test_st_bytes(st, &len);
	test_st_free(st);
	path = rs_xasprintf("%s/model.safetensors", fuzz_scratch_dir());
	fuzz_write_file(path, bytes, len);
	free(bytes);
	model = rs_model_open(path, &err);
	FUZZ_ASSERT(model != NULL, err.msg);
	free(path);
	nlayers = rs_layers_discover(model, NULL, 0, NULL, &layers);
	FUZZ_ASSERT(nlayers == 5, "the model's five layers");
	calib_path = rs_xasprintf("%s/" PATH, fuzz_scratch_dir());
	atexit(close_model);
	return 0;
}

static void
check_model(const rs_model *m, const uint8_t *data, size_t size)
{
	size_t i, j;

	FUZZ_ASSERT(strcmp(m->format, "imatrix") == 0, m->format);
	FUZZ_ASSERT(m->ntensors >= 1, "an imatrix has an entry");
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		size_t n = strlen(t->name);

		FUZZ_ASSERT(n > 5 && strcmp(t->name + n - 5, ".diag") == 0, t->name);
		FUZZ_ASSERT(t->dtype == RS_DTYPE_F32 && t->ndim == 1 && t->count >= 1, t->name);
		fuzz_check_tensor(t);
		FUZZ_ASSERT(t->data >= data && t->nbytes <= size - (size_t)(t->data - data), t->name);
		FUZZ_ASSERT(t->offset == (uint64_t)(t->data - data), t->name);
		for (j = 0; j < t->count; j++) {
			double d;

			rs_dtype_to_double(t->dtype, t->data + 4 * j, 1, &d, 1);
			FUZZ_ASSERT(isfinite(d) && d >= 0, t->name);
		}
		for (j = 0; j < i; j++)
			FUZZ_ASSERT(strcmp(m->tensors[j].name, t->name) != 0, t->name);
	}
	for (i = 0; i < m->nmetadata; i++)
		FUZZ_ASSERT(m->metadata[i].key[0] != '\0' && m->metadata[i].value != NULL,
		            "metadata entry");
}

static void
check_refusal(const rs_error *err, const char *prefix)
{
	fuzz_check_refusal(err->code, err);
	FUZZ_ASSERT(!fuzz_has_control_byte(err->msg, false), err->msg);
	FUZZ_ASSERT(strstr(err->msg, prefix) != NULL, err->msg);
}

/* The bytes as a calibration file, every layer's statistics loaded. */
static void
check_calibration(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_calib *c;
	size_t i, j, unmatched;

	fuzz_write_file(calib_path, data, size);
	c = rs_calib_open(calib_path, &err);
	if (c == NULL) {
		check_refusal(&err, calib_path);
		return;
	}
	for (i = 0; i < nlayers; i++) {
		const rs_layer *l = &layers[i];
		rs_calib_kind named = rs_calib_kind_for(c, l), kind;
		double *g, count;

		if (rs_calib_load(c, l, &kind, &g, &count, &err) != RS_OK) {
			FUZZ_ASSERT(g == NULL, l->name);
			check_refusal(&err, calib_path);
			continue;
		}
		FUZZ_ASSERT(kind == named, l->name);
		FUZZ_ASSERT((g == NULL) == (kind == RS_CALIB_NONE), l->name);
		FUZZ_ASSERT(isnan(count) || (isfinite(count) && count >= 0), l->name);
		for (j = 0; g != NULL && j < l->cols * l->cols; j++) {
			FUZZ_ASSERT(isfinite(g[j]), l->name);
			if (kind == RS_CALIB_DIAG)
				FUZZ_ASSERT(j % (l->cols + 1) == 0 ? g[j] >= 0 : g[j] == 0, l->name);
		}
		free(g);
	}
	(void)rs_calib_unmatched(c, layers, nlayers, &unmatched);
	FUZZ_ASSERT(unmatched <= c->file->ntensors, "unmatched count");
	rs_calib_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m = rs_imatrix_parse(PATH, data, size, &err);

	(void)rs_imatrix_sniff(data, size);
	if (m == NULL) {
		check_refusal(&err, PATH ": ");
		FUZZ_ASSERT(err.code == RS_EFORMAT, err.msg);
		FUZZ_ASSERT(strncmp(err.msg, PATH ": ", strlen(PATH) + 2) == 0, err.msg);
	} else {
		check_model(m, data, size);
		rs_model_close(m);
	}
	check_calibration(data, size);
	return 0;
}
