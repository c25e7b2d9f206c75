/*
 * test-npy.c — the NumPy readers (io-npy.c) and the format dispatch
 * (model-open.c): valid .npy v1/v2/v3 and Fortran order element by
 * element; one refusal per header rule; truncation at every offset; .npz
 * stored entries mapped in place and deflated ones inflated; lying sizes,
 * a zip bomb's ratio, truncated archives; every refusal a clean RS_EFORMAT
 * naming the file (run under ASan by CI).  Archives are written with
 * libzip, as any zip writer would.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

static int ncases;

/* An npy image: preamble of `version`, the dict text padded to 64 with a
 * newline (as numpy does), then data_len bytes of data. */
static unsigned char *
npy_image(int version, const char *dict, const void *data, size_t data_len, size_t *len)
{
	size_t pre = version == 1 ? 10 : 12, dl = strlen(dict), pad, hl;
	unsigned char *b;

	pad = 63 - (pre + dl) % 64;
	hl = dl + pad + 1;
	*len = pre + hl + data_len;
	b = rs_xmalloc(*len);
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (unsigned char)version;
	b[7] = 0;
	b[8] = (unsigned char)hl;
	b[9] = (unsigned char)(hl >> 8);
	if (version != 1)
		b[10] = b[11] = 0;
	memcpy(b + pre, dict, dl);
	memset(b + pre + dl, ' ', pad);
	b[pre + hl - 1] = '\n';
	if (data_len)
		memcpy(b + pre + hl, data, data_len);
	return b;
}

static void
expect_npy_failure(const char *what, const unsigned char *bytes, size_t len,
                   const char *problem)
{
	unsigned char *copy = rs_xmalloc(len + 1);
	rs_error err = {0};
	rs_model *m;

	memcpy(copy, bytes, len);
	m = rs_npy_parse("bad.npy", copy, len, &err);
	CHECK(m == NULL, "%s: accepted", what);
	if (m == NULL) {
		CHECK(err.code == RS_EFORMAT, "%s: code %d (%s)", what, err.code, err.msg);
		CHECK_CONTAINS(err.msg, "bad.npy");
		if (problem)
			CHECK_CONTAINS(err.msg, problem);
	}
	rs_model_close(m);
	free(copy);
	ncases++;
}

static void
check_valid_npy(void)
{
	float d[6] = {1, 2, 3, 4, 5, 6};
	unsigned char *b;
	rs_error err = {0};
	rs_model *m;
	size_t len, i;
	int v;

	for (v = 1; v <= 3; v++) {
		b = npy_image(v, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		              d, sizeof d, &len);
		m = rs_npy_parse("dir/w.npy", b, len, &err);
		CHECK(m != NULL, "v%d opens: %s", v, m ? "" : err.msg);
		if (m) {
			const rs_tensor *t = &m->tensors[0];
			CHECK(m->ntensors == 1 && strcmp(t->name, "w") == 0 &&
			      t->dtype == RS_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 &&
			      t->shape[1] == 3 && t->nbytes == 24, "v%d tensor", v);
			CHECK(t->data == b + len - 24, "v%d: data in place", v);
			CHECK(strcmp(m->format, "npy") == 0, "format name");
		}
		rs_model_close(m);
		free(b);
	}
	/* Fortran order: column-major bytes, read back row-major */
	{
		double f[6] = {1, 4, 2, 5, 3, 6};   /* [[1,2,3],[4,5,6]] by columns */
		b = npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
		              f, sizeof f, &len);
		m = rs_npy_parse("f.npy", b, len, &err);
		CHECK(m != NULL, "fortran opens: %s", m ? "" : err.msg);
		for (i = 0; m && i < 6; i++) {
			double x;
			memcpy(&x, m->tensors[0].data + 8 * i, 8);
			CHECK(x == (double)(i + 1), "fortran element %zu is %g", i, x);
		}
		rs_model_close(m);
		free(b);
	}
	/* 3-D Fortran order: element (i,j,k) at i + 2j + 6k */
	{
		float f[24], x;
		size_t a, c, e;
		for (i = 0; i < 24; i++)
			f[i] = (float)i;
		b = npy_image(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }",
		              f, sizeof f, &len);
		m = rs_npy_parse("f3.npy", b, len, &err);
		CHECK(m != NULL, "3-D fortran opens");
		for (a = 0; m && a < 2; a++)
			for (c = 0; c < 3; c++)
				for (e = 0; e < 4; e++) {
					memcpy(&x, m->tensors[0].data + 4 * (a * 12 + c * 4 + e), 4);
					CHECK(x == (float)(a + 2 * c + 6 * e), "3-D fortran (%zu,%zu,%zu)", a, c, e);
				}
		rs_model_close(m);
		free(b);
	}
	/* scalars, empty arrays, bool and ints as tensors */
	b = npy_image(1, "{'descr':'|b1','fortran_order':False,'shape':()}", "\1", 1, &len);
	m = rs_npy_parse("s.npy", b, len, &err);
	CHECK(m && m->tensors[0].ndim == 0 && m->tensors[0].dtype == RS_DTYPE_BOOL, "bool scalar");
	rs_model_close(m);
	free(b);
	b = npy_image(1, "{\"descr\": \"<i8\", \"fortran_order\": True, \"shape\": (0, 5)}", NULL, 0, &len);
	m = rs_npy_parse("e.npy", b, len, &err);
	CHECK(m && m->tensors[0].count == 0 && m->tensors[0].dtype == RS_DTYPE_I64, "empty i8");
	rs_model_close(m);
	free(b);
	ncases += 7;
}

static void
check_bad_headers(void)
{
	static const struct { const char *dict, *problem; } cases[] = {
		{"[1, 2]", "not a Python dict literal"},
		{"{'descr': '<f4', 'fortran_order': False}", "missing 'shape'"},
		{"{'descr': '<f4', 'shape': (4,)}", "missing 'fortran_order'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", "unexpected key 'x'"},
		{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", "given twice"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4)}", "one dimension is written"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': [4]}", "shape must be a tuple"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", "shape[0] must be"},
		{"{'descr': '<f4', 'fortran_order': 1, 'shape': (4,)}", "True or False"},
		{"{'descr': '<f3', 'fortran_order': False, 'shape': (4,)}", "unsupported dtype '<f3'"},
		{"{'descr': '>f4', 'fortran_order': False, 'shape': (4,)}", "big-endian dtype '>f4'"},
		{"{'descr': '<V2', 'fortran_order': False, 'shape': (8,)}", "numpy has no bfloat16"},
		{"{'descr': '|O8', 'fortran_order': False, 'shape': (2,)}", "Python objects"},
		{"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,)}", "structured"},
		{"{'descr': 7, 'fortran_order': False, 'shape': (4,)}", "descr must be a dtype string"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} junk", "bytes after the dict"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}", "does not fit"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
		 "element count of its shape overflows"},
		{"{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,)}",
		 "byte size of its shape overflows"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (5,)}", "need 20 bytes but only 16"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", "4 bytes after the array's 12"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'descr\\x': 1}", "expected a quoted key"},
	};
	unsigned char data[16] = {0}, *b;
	size_t i, len;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		b = npy_image(1, cases[i].dict, data, sizeof data, &len);
		expect_npy_failure(cases[i].dict, b, len, cases[i].problem);
		free(b);
	}
	b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", data, 16, &len);
	b[6] = 4;
	expect_npy_failure("version 4", b, len, "npy format version 4.0");
	b[6] = 1;
	b[20] = '\0';
	expect_npy_failure("NUL", b, len, "NUL byte");
	b[8] = 0xff, b[9] = 0xff;
	expect_npy_failure("header past the end", b, len, "runs past the end");
	b[6] = 2, b[8] = b[9] = b[10] = 0, b[11] = 0x7f;
	expect_npy_failure("huge v2 header", b, len, "exceeds the limit");
	b[0] = 'X';
	expect_npy_failure("magic", b, len, "no \\x93NUMPY magic");
	free(b);
}

static void
check_npy_truncation(void)
{
	float d[4] = {1, 2, 3, 4};
	size_t len, cut;
	unsigned char *b = npy_image(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
	                             d, sizeof d, &len);

	for (cut = 0; cut < len; cut++)
		expect_npy_failure("truncated npy", b, cut, NULL);
	free(b);
}

/* ---- npz ---------------------------------------------------------------------- */

/* An archive of the given npy images at path; deflate or store. */
static unsigned char *
write_npz(const char *path, const char *const *names, unsigned char **imgs,
          const size_t *lens, size_t n, bool deflate, size_t *len)
{
	int zerr;
	zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
	size_t i;
	FILE *f;
	unsigned char *bytes;
	long sz;

	if (z == NULL)
		abort();
	for (i = 0; i < n; i++) {
		zip_source_t *s = zip_source_buffer(z, imgs[i], lens[i], 0);
		zip_int64_t at = zip_file_add(z, names[i], s, 0);
		if (at < 0)
			abort();
		zip_set_file_compression(z, (zip_uint64_t)at, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 9);
	}
	if (zip_close(z) != 0)
		abort();
	f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	rewind(f);
	bytes = rs_xmalloc((size_t)sz);
	if (fread(bytes, 1, (size_t)sz, f) != (size_t)sz)
		abort();
	fclose(f);
	*len = (size_t)sz;
	return bytes;
}

static rs_model *
parse_npz(const unsigned char *b, size_t len, rs_error *err)
{
	return rs_npz_parse("t.npz", b, len, err);
}

static void
expect_npz_failure(const char *what, const unsigned char *bytes, size_t len,
                   const char *problem)
{
	unsigned char *copy = rs_xmalloc(len + 1);
	rs_error err = {0};
	rs_model *m;

	memcpy(copy, bytes, len);
	m = parse_npz(copy, len, &err);
	CHECK(m == NULL, "%s: accepted", what);
	if (m == NULL) {
		CHECK(err.code == RS_EFORMAT || err.code == RS_ENOMEM, "%s: code %d (%s)", what,
		      err.code, err.msg);
		CHECK_CONTAINS(err.msg, "t.npz");
		if (problem)
			CHECK_CONTAINS(err.msg, problem);
	}
	rs_model_close(m);
	free(copy);
	ncases++;
}

/* The first local header's and central entry's uncompressed-size fields. */
static void
patch_usize(unsigned char *b, size_t len, uint32_t v)
{
	size_t i;

	for (i = 0; i + 46 <= len; i++) {
		if (memcmp(b + i, "PK\3\4", 4) == 0 || memcmp(b + i, "PK\1\2", 4) == 0) {
			size_t at = i + (b[i + 2] == 3 ? 22 : 24);
			b[at] = (unsigned char)v, b[at + 1] = (unsigned char)(v >> 8);
			b[at + 2] = (unsigned char)(v >> 16), b[at + 3] = (unsigned char)(v >> 24);
		}
	}
}

static void
check_npz(const char *dir)
{
	float w[12];
	double fd[6] = {1, 4, 2, 5, 3, 6};
	unsigned char *imgs[3], *b;
	size_t lens[3], len, i, cut;
	const char *names[3] = {"w.npy", "f.npy", "z.npy"};
	char *path = rs_xasprintf("%s/a.npz", dir);
	float *zeros = calloc(1 << 20, sizeof(float));
	rs_error err = {0};
	rs_model *m;
	int deflate;

	for (i = 0; i < 12; i++)
		w[i] = (float)i * 0.5f;
	imgs[0] = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
	                    w, sizeof w, &lens[0]);
	imgs[1] = npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
	                    fd, sizeof fd, &lens[1]);
	/* 4 MiB of zeros: a legitimate ratio near deflate's best */
	imgs[2] = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576,), }",
	                    zeros, (size_t)4 << 20, &lens[2]);
	for (deflate = 0; deflate <= 1; deflate++) {
		b = write_npz(path, names, imgs, lens, 3, deflate, &len);
		m = parse_npz(b, len, &err);
		CHECK(m != NULL, "npz (deflate %d) opens: %s", deflate, m ? "" : err.msg);
		if (m) {
			const rs_tensor *t = &m->tensors[0];
			double x;
			CHECK(m->ntensors == 3 && strcmp(t->name, "w") == 0 &&
			      strcmp(m->tensors[1].name, "f") == 0 && strcmp(m->tensors[2].name, "z") == 0,
			      "names in archive order");
			CHECK(memcmp(t->data, w, sizeof w) == 0, "w's elements");
			CHECK((t->data >= b && t->data < b + len) == !deflate,
			      "stored entries mapped, deflated inflated (deflate %d)", deflate);
			for (i = 0; i < 6; i++) {
				memcpy(&x, m->tensors[1].data + 8 * i, 8);
				CHECK(x == (double)(i + 1), "npz fortran element %zu", i);
			}
			CHECK(strcmp(m->format, "npz") == 0, "npz format name");
		}
		rs_model_close(m);
		/* the same through rs_model_open on the file */
		m = rs_model_open(path, &err);
		CHECK(m != NULL && m->ntensors == 3 && m->owns_map, "npz file opens: %s",
		      m ? "" : err.msg);
		if (m != NULL)
			CHECK((rs_model_find(m, "w")->data >= m->map &&
			       rs_model_find(m, "w")->data < m->map + m->map_len) == !deflate,
			      "file: stored entries mapped, deflated inflated (deflate %d)", deflate);
		rs_model_close(m);
		ncases += 2;

		/* truncation: every cut of the small part, sampled in the zeros */
		for (cut = 0; cut < len; cut += cut < 4096 || len - cut < 4096 ? 1 : 997)
			expect_npz_failure("truncated npz", b, cut, NULL);
		free(b);
	}

	/* a deflated entry whose declared size lies (one npy, small) */
	b = write_npz(path, names, imgs, lens, 1, true, &len);
	patch_usize(b, len, (uint32_t)lens[0] + 4);
	expect_npz_failure("size lie", b, len, "4 bytes after the array's 48");
	patch_usize(b, len, (uint32_t)lens[0] - 4);
	expect_npz_failure("size lie (short)", b, len, "need 48 bytes but only 44");
	/* a declared ratio no deflate stream reaches */
	patch_usize(b, len, 4000000000u);
	expect_npz_failure("zip bomb ratio", b, len, "that deflate cannot reach");
	free(b);
	/* stored entry whose size lies: both headers agree on the lie */
	b = write_npz(path, names, imgs, lens, 1, false, &len);
	patch_usize(b, len, (uint32_t)lens[0] - 4);
	expect_npz_failure("stored size lie", b, len, NULL);
	free(b);
	/* a non-npy entry */
	{
		const char *other[1] = {"notes.txt"};
		b = write_npz(path, other, imgs, lens, 1, false, &len);
		expect_npz_failure("non-npy entry", b, len, "entry 'notes.txt' is not an npy array");
		free(b);
	}
	/* a bad npy inside */
	{
		unsigned char *bad = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }",
		                               w, sizeof w, &lens[0]);
		b = write_npz(path, names, &bad, lens, 1, true, &len);
		expect_npz_failure("lying shape inside", b, len, "tensor 'w': 12 bytes after");
		free(b);
		free(bad);
	}
	/* random corruption: refused or consistent, never a crash */
	b = write_npz(path, names, imgs, lens, 2, false, &len);
	test_seed(11);
	for (i = 0; i < 2000; i++) {
		unsigned char *c = rs_xmalloc(len);
		size_t k;
		memcpy(c, b, len);
		for (k = 0; k < 3; k++)
			c[(size_t)(test_uniform() * (double)len)] ^= (unsigned char)(1 + test_uniform() * 255);
		m = parse_npz(c, len, &err);
		if (m != NULL)
			for (k = 0; k < m->ntensors; k++)
				CHECK(m->tensors[k].data != NULL || m->tensors[k].nbytes == 0, "data set");
		rs_model_close(m);
		free(c);
	}
	ncases += 2000;
	free(b);
	for (i = 0; i < 3; i++)
		free(imgs[i]);
	free(zeros);
	free(path);
}

/* What rs_model_open says about files it does not read. */
static void
check_dispatch(const char *dir)
{
	static const struct { const char *name, *bytes; size_t len; const char *looks; } cases[] = {
		{"empty", "", 0, "an empty file"},
		{"gzip", "\x1f\x8b\x08\0\0\0\0\0\0\3", 10, "gzip"},
		{"hdf5", "\x89HDF\r\n\x1a\n\0\0\0\0\0\0\0\0", 16, "an HDF5 file"},
		{"pickle", "\x80\x04\x95\x10\0\0\0\0\0\0\0}", 12, "a Python pickle"},
		{"legacy", "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15,
		 "a legacy PyTorch checkpoint"},
		{"json", "{\"a\": 1}\n", 9, "JSON text"},
		{"text", "hello\n", 6, "text"},
		{"noise", "\xff\xff\xff\xff\xff\xff\xff\xff\x01", 9, "first bytes ff ff"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *path = rs_xasprintf("%s/%s.bin", dir, cases[i].name);
		rs_error err = {0};
		rs_model *m;

		test_write_file(path, cases[i].bytes, cases[i].len);
		m = rs_model_open(path, &err);
		CHECK(m == NULL && err.code == RS_EFORMAT, "%s refused", cases[i].name);
		CHECK_CONTAINS(err.msg, "not a weight file rankscope reads: looks like ");
		CHECK_CONTAINS(err.msg, cases[i].looks);
		CHECK_CONTAINS(err.msg, rs_model_formats());
		rs_model_close(m);
		free(path);
		ncases++;
	}
}

int
main(void)
{
	char *dir = test_tmpdir();

	check_valid_npy();
	check_bad_headers();
	check_npy_truncation();
	check_npz(dir);
	check_dispatch(dir);
	free(dir);
	printf("test-npy: %d cases\n", ncases);
	return test_done("test-npy");
}
