/*
 * fuzz-safetensors.c — bytes as a safetensors file, through layer loading.
 *
 * The image is validated from memory (rs_safetensors_parse: the same code
 * rs_model_open runs on the mapping), then, if it opens, its tensors must
 * lie inside the input, and every layer found under each of the four fold
 * schemes is loaded into doubles by all three loaders.  A refusal must be
 * an RS_EFORMAT with a printable message.
 *
 * A file whose __metadata__ has a "compose" entry is also opened with that
 * entry as a compose pattern (as --compose would give it), so that the
 * grouping of factor tensors and their product see fuzzed shapes and
 * dtypes too.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/compose.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define PATH "fuzz.safetensors"

/* Composed products are not bounded by the file: cap what a layer may
 * cost the harness (real callers report RS_ENOMEM instead). */
#define MAX_LAYER_ELEMENTS (1u << 20)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void
check_model(const rs_model *m, const uint8_t *data, size_t size)
{
	size_t i, j, total = 0;

	FUZZ_ASSERT(m->header_len + 8 <= size, "header inside the file");
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		size_t count = 1;

		FUZZ_ASSERT(t->offset >= 8 + m->header_len, t->name);
		FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset, t->name);
		FUZZ_ASSERT(t->nbytes == 0 || t->data == data + t->offset, t->name);
		FUZZ_ASSERT(i == 0 || t->offset >= m->tensors[i - 1].offset +
		            m->tensors[i - 1].nbytes, "tensors in file order, disjoint");
		for (j = 0; j < t->ndim; j++)
			count *= t->shape[j];
		FUZZ_ASSERT(count == t->count, t->name);
		FUZZ_ASSERT(rs_model_find(m, t->name) != NULL, t->name);
		total += t->nbytes;
	}
	FUZZ_ASSERT(8 + m->header_len + total == size, "tensors tile the data");
	for (i = 0; i < m->nmetadata; i++)
		FUZZ_ASSERT(rs_model_metadata(m, m->metadata[i].key) != NULL,
		            m->metadata[i].key);
	(void)rs_model_param_count(m);
}

/* Loads one layer by the three loaders and checks they agree. */
static void
load_layer(const rs_layer *l)
{
	size_t count = l->rows * l->cols, i, j, rows, cols;
	double *a, *b, *c;
	rs_error err;
	rs_status sa, sb, sc;

	FUZZ_ASSERT(l->rows > 0 && l->cols > 0, l->name);
	if (l->group == NULL)
		FUZZ_ASSERT(count == l->tensor->count, l->name);
	if (count > MAX_LAYER_ELEMENTS)
		return;
	a = rs_xmalloc(count * sizeof *a);
	b = rs_xmalloc(count * sizeof *b);
	c = rs_xmalloc(count * sizeof *c);
	sa = rs_layer_load(l, a, l->rows, PATH, &err);
	if (sa != RS_OK)
		fuzz_check_refusal(sa, &err);
	sb = rs_layer_load_for_spectrum(l, b, &rows, &cols, PATH, &err);
	if (sb != RS_OK)
		fuzz_check_refusal(sb, &err);
	sc = rs_layer_load_tensor(l, c, PATH, &err);
	if (sc != RS_OK)
		fuzz_check_refusal(sc, &err);
	FUZZ_ASSERT(sa == sb && sb == sc, "the loaders agree on refusing");
	if (sa == RS_OK) {
		bool t = rs_layer_loads_transposed(l);

		FUZZ_ASSERT(t ? rows == l->cols && cols == l->rows :
		                rows == l->rows && cols == l->cols, l->name);
		for (j = 0; j < l->cols; j++)
			for (i = 0; i < l->rows; i++) {
				double w = a[i + j * l->rows];
				FUZZ_ASSERT(isfinite(w), l->name);
				FUZZ_ASSERT(w == (t ? b[j + i * l->cols] : b[i + j * l->rows]),
				            l->name);
				if (l->group == NULL) {
					size_t k = rs_layer_tensor_index(l, i, j);
					FUZZ_ASSERT(k < count && c[k] == w, l->name);
				} else {
					FUZZ_ASSERT(c[i * l->cols + j] == w, l->name);
				}
			}
	}
	free(a);
	free(b);
	free(c);
}

static void
discover_and_load(const rs_model *m, const rs_compose_set *compose)
{
	int fold;

	for (fold = 0; fold < RS_FOLD_COUNT; fold++) {
		rs_layer *layers;
		size_t n = rs_layers_discover(m, NULL, fold, compose, &layers), i;

		for (i = 0; i < n; i++) {
			size_t dims[4];

			FUZZ_ASSERT(rs_layer_of_tensor(layers, n, layers[i].group ?
			            layers[i].group->factors[0] : layers[i].tensor) == &layers[i],
			            layers[i].name);
			(void)rs_layer_kernel_dims(&layers[i], dims);
			(void)rs_layer_params(&layers[i]);
			/* the conv kernel is loaded once per fold anyway */
			if (layers[i].kind == RS_LAYER_CONV || fold == 0)
				load_layer(&layers[i]);
		}
		free(layers);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *pattern;
	rs_model *m;
	rs_error err;

	m = rs_safetensors_parse(PATH, data, size, &err);
	if (m == NULL) {
		fuzz_check_refusal(err.code, &err);
		FUZZ_ASSERT(err.code == RS_EFORMAT, err.msg);
		/* the reader escapes names itself: not even a newline */
		FUZZ_ASSERT(!fuzz_has_control_byte(err.msg, false), err.msg);
		return 0;
	}
	check_model(m, data, size);
	discover_and_load(m, NULL);
	pattern = rs_model_metadata(m, "compose");
	if (pattern != NULL) {
		rs_compose_set *set = rs_compose_new(m, &pattern, 1, &err);
		if (set != NULL) {
			discover_and_load(m, set);
			rs_compose_free(set);
		} else if (!fuzz_has_control_byte(pattern, false)) {
			/* the pattern is the user's; names from the file are escaped */
			fuzz_check_refusal(err.code, &err);
		}
	}
	rs_model_close(m);
	return 0;
}
