/*
 * fuzz-npz.c — bytes as a NumPy file: an .npz archive (rs_npz_parse: libzip,
 * the central directory read for stored offsets, inflation with its size
 * checks) and, when it starts with the npy magic, a lone .npy
 * (rs_npy_parse).  A model that opens must be consistent: every tensor's
 * count is its shape's product, its bytes its count times its dtype's size,
 * a stored entry's data inside the image; every layer discovered loads
 * (or is refused cleanly).  Refusals carry a status and no raw control byte.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define PATH "fuzz.npz"

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
	size_t i;

	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];

		fuzz_check_tensor(t);
		if (t->data >= data && t->data < data + size)
			FUZZ_ASSERT(t->nbytes <= size - (size_t)(t->data - data), t->name);
	}
	(void)rs_model_param_count(m);
}

static void
one(rs_model *(*parse)(const char *, const unsigned char *, size_t, rs_error *),
    const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m = parse(PATH, data, size, &err);

	if (m == NULL) {
		fuzz_check_refusal(err.code, &err);
		FUZZ_ASSERT(err.code == RS_EFORMAT || err.code == RS_ENOMEM, err.msg);
		FUZZ_ASSERT(!fuzz_has_control_byte(err.msg, false), err.msg);
		return;
	}
	check_model(m, data, size);
	fuzz_load_layers(m, PATH);
	rs_model_close(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(rs_npz_parse, data, size);
	if (size >= 6 && memcmp(data, "\x93NUMPY", 6) == 0)
		one(rs_npy_parse, data, size);
	return 0;
}
