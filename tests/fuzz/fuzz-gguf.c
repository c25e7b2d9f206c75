/*
 * fuzz-gguf.c — bytes as a GGUF file (rs_gguf_parse: the header, every
 * metadata value and nested array, the tensor infos, alignment, overlaps).
 * A model that opens must be consistent: every tensor's count is its
 * shape's product, its bytes whole blocks (or elements) of its dtype, its
 * data inside the image at an offset the alignment allows; every layer
 * discovered loads (or is refused cleanly), and every tensor rankscope
 * decodes converts.  Refusals carry a status and no raw control byte.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define PATH "fuzz.gguf"
#define MAX_ELEMENTS (1u << 20)

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
	size_t i, j;

	FUZZ_ASSERT(strcmp(m->format, "gguf") == 0, m->format);
	FUZZ_ASSERT(m->header_len <= size, "header length");
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		const rs_dtype_info *d = rs_dtype_get(t->dtype);

		FUZZ_ASSERT(t->ndim >= 1 && t->ndim <= 4, t->name);
		for (j = 0; j < t->ndim; j++)
			FUZZ_ASSERT(t->shape[j] > 0, t->name);
		if (d->block)
			FUZZ_ASSERT(t->shape[t->ndim - 1] % d->block == 0, t->name);
		fuzz_check_tensor(t);
		FUZZ_ASSERT(t->data >= data + m->header_len && t->data <= data + size, t->name);
		FUZZ_ASSERT(t->nbytes <= size - (size_t)(t->data - data), t->name);
		FUZZ_ASSERT(t->offset == (uint64_t)(t->data - data), t->name);
		if (d->is_float && t->count <= MAX_ELEMENTS) {
			double *v = rs_xmalloc(t->count * sizeof *v);
			rs_dtype_to_double(t->dtype, t->data, t->count, v, 1);
			free(v);
		}
	}
	for (i = 0; i < m->nmetadata; i++)
		FUZZ_ASSERT(m->metadata[i].key[0] != '\0' && m->metadata[i].value != NULL,
		            "metadata entry");
	(void)rs_model_param_count(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m = rs_gguf_parse(PATH, data, size, &err);

	if (m == NULL) {
		fuzz_check_refusal(err.code, &err);
		FUZZ_ASSERT(err.code == RS_EFORMAT || err.code == RS_ENOMEM, err.msg);
		FUZZ_ASSERT(!fuzz_has_control_byte(err.msg, false), err.msg);
		FUZZ_ASSERT(strncmp(err.msg, PATH ": ", strlen(PATH) + 2) == 0, err.msg);
		return 0;
	}
	check_model(m, data, size);
	fuzz_load_layers(m, PATH);
	rs_model_close(m);
	return 0;
}
