/*
 * fuzz-torch.c — bytes as a PyTorch checkpoint: libzip, the archive's
 * layout, the restricted unpickler of data.pkl (opcodes, memo, marks,
 * globals, persistent ids), the walk that names tensors, the views
 * checked against their storages, stored entries mapped, deflated ones
 * inflated, strided views gathered (io-torch.c), from memory
 * (rs_torch_parse) and, for anything that looks like a zip, from a file
 * (rs_torch_open, the path rs_model_open takes), which must agree.
 *
 * Mutations of a zip mostly break its CRCs, so an input that is not a
 * zip ("PK" first) is taken as data.pkl itself and put in an archive here
 * beside storages "0" to "3" (of 48, 12, 8 and 64 bytes, what the
 * seed-pkl-* seeds' tensors need): the fuzzer works on the pickle
 * directly.
 *
 * A model that opens must be consistent: every tensor's count is its
 * shape's product and its bytes its count times its dtype's size, data in
 * the image lies inside it, names are unique, every byte of every tensor
 * can be read (ASan catches a pointer past a buffer), and every layer
 * discovered loads or is refused cleanly.  Refusals carry a status, a
 * message naming the file and no raw control byte.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "fuzzlib.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define PATH "fuzz.pt"

static char *file_path;

static unsigned char storage_bytes[64];
static const size_t storage_sizes[4] = {48, 12, 8, 64};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	for (i = 0; i < sizeof storage_bytes; i++)
		storage_bytes[i] = (unsigned char)(i * 37 + 1);
	file_path = rs_xasprintf("%s/fuzz.pt", fuzz_scratch_dir());
	return 0;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
check_model(const rs_model *m, const uint8_t *data, size_t size)
{
	char **names = rs_xcalloc(m->ntensors + 1, sizeof *names);
	unsigned long sum = 0;
	size_t i, j;

	FUZZ_ASSERT(m->ntensors > 0, "a model without tensors opened");
	FUZZ_ASSERT(m->network_order, "tensors not in the pickle's order");
	FUZZ_ASSERT(strcmp(m->format, "torch") == 0, m->format);
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		size_t count = 1;

		names[i] = t->name;
		for (j = 0; j < t->ndim; j++)
			FUZZ_ASSERT(!rs_mul_overflows(count, t->shape[j], &count), t->name);
		FUZZ_ASSERT(count == t->count, t->name);
		FUZZ_ASSERT(t->nbytes == rs_dtype_nbytes(t->dtype, count), t->name);
		FUZZ_ASSERT(t->data != NULL || t->nbytes == 0, t->name);
		FUZZ_ASSERT((t->ndim == 0) == (t->shape == NULL), t->name);
		if (t->data >= data && t->data < data + size)
			FUZZ_ASSERT(t->nbytes <= size - (size_t)(t->data - data), t->name);
		for (j = 0; j < t->nbytes; j++)
			sum += t->data[j];
	}
	for (i = 0; i < m->nmetadata; i++)
		FUZZ_ASSERT(m->metadata[i].key != NULL && m->metadata[i].value != NULL,
		            "metadata entry");
	qsort(names, m->ntensors, sizeof *names, compare_names);
	for (i = 1; i < m->ntensors; i++)
		FUZZ_ASSERT(strcmp(names[i - 1], names[i]) != 0, names[i]);
	free(names);
	(void)rs_model_param_count(m);
	{
		volatile unsigned long sink = sum;
		(void)sink;
	}
}

static void
check_refusal(const rs_error *err, const char *path)
{
	fuzz_check_refusal(err->code, err);
	FUZZ_ASSERT(err->code == RS_EFORMAT || err->code == RS_ENOMEM, err->msg);
	FUZZ_ASSERT(!fuzz_has_control_byte(err->msg, false), err->msg);
	FUZZ_ASSERT(strncmp(err->msg, path, strlen(path)) == 0, err->msg);
}

/* The same archive from memory and from a file: the same tensors. */
static void
same_models(const rs_model *a, const rs_model *b)
{
	size_t i;

	FUZZ_ASSERT(a->ntensors == b->ntensors, "tensor count from memory and from a file");
	FUZZ_ASSERT(a->header_len == b->header_len, "data.pkl's length");
	FUZZ_ASSERT(memcmp(a->header_sha256, b->header_sha256, sizeof a->header_sha256) == 0,
	            "data.pkl's digest");
	for (i = 0; i < a->ntensors; i++) {
		const rs_tensor *x = &a->tensors[i], *y = &b->tensors[i];

		FUZZ_ASSERT(strcmp(x->name, y->name) == 0, x->name);
		FUZZ_ASSERT(x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes,
		            x->name);
		FUZZ_ASSERT(x->ndim == 0 || memcmp(x->shape, y->shape, x->ndim * sizeof *x->shape) == 0,
		            x->name);
		FUZZ_ASSERT(x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0, x->name);
	}
}

/* An archive of `pickle` as fuzz/data.pkl and the four storages, as
 * torch.save lays it out (stored entries); NULL if libzip will not. */
static unsigned char *
wrap_pickle(const uint8_t *pickle, size_t plen, size_t *len)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *z;
	zip_stat_t zs;
	unsigned char *out = NULL;
	char name[32];
	size_t i;

	zip_error_init(&ze);
	src = zip_source_buffer_create(NULL, 0, 0, &ze);
	if (src == NULL)
		abort();
	z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
	if (z == NULL)
		abort();
	zip_source_keep(src);
	zip_file_add(z, "fuzz/data.pkl", zip_source_buffer(z, plen ? pickle : (const uint8_t *)"",
	                                                   plen, 0), 0);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "fuzz/data/%zu", i);
		zip_file_add(z, name, zip_source_buffer(z, storage_bytes, storage_sizes[i], 0), 0);
	}
	zip_file_add(z, "fuzz/version", zip_source_buffer(z, "3\n", 2, 0), 0);
	for (i = 0; i < 6; i++)
		zip_set_file_compression(z, i, ZIP_CM_STORE, 0);
	if (zip_close(z) != 0)
		abort();
	if (zip_source_stat(src, &zs) == 0 && zip_source_open(src) == 0) {
		out = rs_xmalloc(zs.size ? zs.size : 1);
		if (zip_source_read(src, out, zs.size) != (zip_int64_t)zs.size) {
			free(out);
			out = NULL;
		}
		zip_source_close(src);
	}
	zip_source_free(src);
	zip_error_fini(&ze);
	*len = out ? zs.size : 0;
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m, *f;
	unsigned char *wrapped = NULL;

	if (size < 2 || memcmp(data, "PK", 2) != 0) {
		wrapped = wrap_pickle(data, size, &size);
		if (wrapped == NULL)
			return 0;
		data = wrapped;
	}
	m = rs_torch_parse(PATH, data, size, &err);
	if (m == NULL)
		check_refusal(&err, PATH);
	else {
		check_model(m, data, size);
		fuzz_load_layers(m, PATH);
	}
	if (wrapped == NULL) {
		fuzz_write_file(file_path, data, size);
		f = rs_torch_open(file_path, &err);
		if (f == NULL)
			check_refusal(&err, file_path);
		else
			check_model(f, f->map, f->map_len);
		if (m != NULL && f != NULL)
			same_models(m, f);
		rs_model_close(f);
	}
	rs_model_close(m);
	free(wrapped);
	return 0;
}
