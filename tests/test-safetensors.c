/*
 * test-safetensors.c — valid files in every dtype open with the right
 * tensors and metadata; see also test-safetensors-corpus.c for the broken
 * files.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

static void
check_valid_all_dtypes(void)
{
	static const char *const dtypes[] = {
		"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
		"BF16", "I32", "U32", "F32", "F64", "I64", "U64", "C64",
	};
	unsigned char data[64 * 8] = {0};
	size_t i, len, shape[2] = {4, 2};
	test_st *st = test_st_new();
	unsigned char *bytes;
	rs_error err;
	rs_model *m;

	test_st_metadata(st, "format", "pt");
	test_st_metadata(st, "test_accuracy", "0.9750");
	for (i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
		rs_dtype d;
		rs_dtype_parse(dtypes[i], &d);
		test_st_add(st, dtypes[i], dtypes[i], shape, 2, data,
		            8 * rs_dtype_get(d)->bits / 8);
	}
	/* 4-bit: 8 elements fill 4 bytes */
	test_st_add(st, "packed", "F4", shape, 2, data, 4);
	bytes = test_st_bytes(st, &len);
	m = rs_safetensors_parse("all.safetensors", bytes, len, &err);
	CHECK(m != NULL, "all dtypes open: %s", m ? "" : err.msg);
	if (m != NULL) {
		CHECK(m->ntensors == 18, "18 tensors, got %zu", m->ntensors);
		for (i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
			const rs_tensor *t = rs_model_find(m, dtypes[i]);
			CHECK(t != NULL && strcmp(rs_dtype_get(t->dtype)->name, dtypes[i]) == 0,
			      "tensor %s has its dtype", dtypes[i]);
			CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 4 && t->count == 8,
			      "tensor %s shape", dtypes[i]);
		}
		CHECK(strcmp(rs_model_metadata(m, "test_accuracy"), "0.9750") == 0, "metadata");
		CHECK(rs_model_metadata(m, "missing") == NULL, "absent metadata");
		/* tensors are in data order and point into the image */
		for (i = 0; i < m->ntensors; i++)
			CHECK(m->tensors[i].data >= bytes + 16 &&
			      m->tensors[i].data + m->tensors[i].nbytes <= bytes + len,
			      "tensor %zu inside the buffer", i);
		rs_model_close(m);
	}
	free(bytes);
	test_st_free(st);
}

static void
check_file_open(void)
{
	char *dir = test_tmpdir();
	char *path = rs_xasprintf("%s/w.safetensors", dir);
	double v[6] = {1, 2, 3, 4, 5, 6};
	size_t shape[2] = {2, 3}, len;
	test_st *st = test_st_new();
	unsigned char *bytes;
	rs_error err;
	rs_model *m;

	test_st_add_f32(st, "w", shape, 2, v);
	bytes = test_st_bytes(st, &len);
	test_write_file(path, bytes, len);
	m = rs_model_open(path, &err);
	CHECK(m != NULL && m->file_size == len && m->owns_map, "open by mmap");
	if (m != NULL) {
		float f;
		memcpy(&f, m->tensors[0].data + 4 * 5, 4);
		CHECK(f == 6.0f, "data readable through the map");
		rs_model_close(m);
	}
	CHECK(rs_model_open(dir, &err) == NULL, "a directory of no model is refused");
	CHECK_CONTAINS(err.msg, "a directory without model.safetensors.index.json");
	free(path);
	path = rs_xasprintf("%s/missing.safetensors", dir);
	CHECK(rs_model_open(path, &err) == NULL && err.code == RS_EIO, "missing file");
	CHECK_CONTAINS(err.msg, "missing.safetensors: cannot open");
	free(path);
	free(bytes);
	free(dir);
	test_st_free(st);
}

int
main(void)
{
	check_valid_all_dtypes();
	check_file_open();
	return test_done("test-safetensors");
}
