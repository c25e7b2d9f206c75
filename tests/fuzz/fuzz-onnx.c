/*
 * fuzz-onnx.c — bytes as an ONNX model (rs_onnx_parse: the wire-format
 * pre-pass that strips raw_data and bounds nesting, protobuf-c on the
 * stripped copy, tensors from initializers, Constant nodes and subgraphs,
 * typed-field conversion, external data, roles and order from the graph).
 * The model is "fuzz.onnx" in a scratch directory that holds weights.bin
 * (8 KiB) and sub/w.bin, so external data can resolve.  A model that
 * opens must be consistent: every tensor's count is its shape's product,
 * its bytes its count times its dtype's size, data in the image or an
 * external map lies inside it, names are unique, roles and layouts are in
 * range and a kernel's groups divide its first dimension; every byte is
 * touched at both ends and every layer discovered loads (or is refused
 * cleanly).  Refusals carry a status and no raw control byte.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzzlib.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"


static char *model_path;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch_dir();
	unsigned char block[8192];
	char *p;
	size_t i;

	(void)argc;
	(void)argv;
	/* small finite floats whatever the offset: 0x3c bytes are ~0.0115 */
	for (i = 0; i < sizeof block; i++)
		block[i] = (unsigned char)(i % 7 == 3 ? 0x3f : 0x3c);
	p = rs_xasprintf("%s/weights.bin", dir);
	fuzz_write_file(p, block, sizeof block);
	free(p);
	p = rs_xasprintf("%s/sub", dir);
	if (mkdir(p, 0700) != 0) {
		perror(p);
		abort();
	}
	free(p);
	p = rs_xasprintf("%s/sub/w.bin", dir);
	fuzz_write_file(p, block, 256);
	free(p);
	model_path = rs_xasprintf("%s/fuzz.onnx", dir);
	return 0;
}

static bool
inside(const unsigned char *p, size_t n, const unsigned char *base, size_t len)
{
	return base != NULL && p >= base && p <= base + len && n <= len - (size_t)(p - base);
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
check_model(const rs_model *m, const uint8_t *data, size_t size)
{
	const char **names = rs_xcalloc(m->ntensors + 1, sizeof *names);
	size_t i, j;

	FUZZ_ASSERT(m->network_order, "an ONNX model is in the graph's order");
	FUZZ_ASSERT(strcmp(m->format, "onnx") == 0, m->format);
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		bool mapped = false;

		names[i] = t->name;
		fuzz_check_tensor(t);
		FUZZ_ASSERT(t->data != NULL, t->name);
		FUZZ_ASSERT((unsigned)t->role <= RS_ROLE_OTHER, t->name);
		FUZZ_ASSERT((unsigned)t->layout <= RS_LAYOUT_IN_OUT, t->name);
		if (t->role == RS_ROLE_CONV && t->groups > 0)
			FUZZ_ASSERT(t->ndim > 0 && t->shape[0] % t->groups == 0, t->name);
		if (t->data >= data && t->data < data + size) {
			FUZZ_ASSERT(inside(t->data, t->nbytes, data, size), t->name);
			mapped = true;
		}
		for (j = 0; j < m->nmaps && !mapped; j++)
			if (t->data >= (const unsigned char *)m->maps[j].addr &&
			    t->data < (const unsigned char *)m->maps[j].addr + m->maps[j].len) {
				FUZZ_ASSERT(inside(t->data, t->nbytes, m->maps[j].addr,
				                   m->maps[j].len), t->name);
				mapped = true;
			}
	}
	qsort(names, m->ntensors, sizeof *names, compare_names);
	for (i = 1; i < m->ntensors; i++)
		FUZZ_ASSERT(strcmp(names[i - 1], names[i]) != 0, names[i]);
	free(names);
	for (i = 0; i < m->nmetadata; i++)
		FUZZ_ASSERT(m->metadata[i].key != NULL && m->metadata[i].value != NULL, "metadata");
	(void)rs_model_param_count(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m = rs_onnx_parse(model_path, data, size, &err);

	if (m == NULL) {
		fuzz_check_refusal(err.code, &err);
		/* RS_EIO: an external file that is missing or not a file */
		FUZZ_ASSERT(err.code == RS_EFORMAT || err.code == RS_ENOMEM ||
		            err.code == RS_EIO, err.msg);
		FUZZ_ASSERT(strncmp(err.msg, model_path, strlen(model_path)) == 0, err.msg);
		return 0;
	}
	check_model(m, data, size);
	fuzz_load_layers(m, model_path);
	rs_model_close(m);
	return 0;
}
