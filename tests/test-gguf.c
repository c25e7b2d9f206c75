/*
 * test-gguf.c — the GGUF reader (io-gguf.c).
 *
 * Without arguments: images built here byte by byte (the hostile cases
 * need bytes no writer produces; the valid files of llama.cpp's own
 * writer are tests/gguf-check.py's): a valid v2/v3 image read back field
 * by field (C-order shapes, offsets, network order, metadata as printed,
 * header length and digest, a non-default alignment), then one refusal
 * per validation rule, each a one-line RS_EFORMAT naming the file and the
 * key or tensor; every prefix of a valid image refused; random corruption
 * refused or opened cleanly (CI runs this under ASan).
 *
 *   test-gguf --dump FILE DIR      opens FILE with rs_model_open and writes,
 *                                  for every tensor rankscope decodes,
 *                                  DIR/NAME.values (all elements, storage
 *                                  order, float64) and, for each layer,
 *                                  DIR/NAME.layer (rs_layer_load, row-major
 *                                  float64), for gguf-check.py to compare
 *                                  with ggml's own dequantisation
 *   test-gguf --write-corpus DIR   the hostile images as fuzz seeds
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/sha256.h"
#include "rankscope/util.h"
#include "testlib.h"

#define PATH "bad.gguf"

static int ncases;
static const char *corpus_dir;   /* --write-corpus: hostile images go here too */

/* ---- an image builder ------------------------------------------------------ */

typedef struct img {
	unsigned char *b;
	size_t n, cap;
} img;

static void
put(img *g, const void *p, size_t n)
{
	if (g->n + n > g->cap) {
		g->cap = (g->n + n) * 2 + 64;
		g->b = rs_xrealloc(g->b, g->cap);
	}
	memcpy(g->b + g->n, p, n);
	g->n += n;
}

static void
put_le(img *g, uint64_t v, int bytes)
{
	unsigned char t[8];
	int i;

	for (i = 0; i < bytes; i++)
		t[i] = (unsigned char)(v >> (8 * i));
	put(g, t, (size_t)bytes);
}

static void put_u32(img *g, uint32_t v) { put_le(g, v, 4); }
static void put_u64(img *g, uint64_t v) { put_le(g, v, 8); }

static void
put_str(img *g, const char *s)
{
	put_u64(g, strlen(s));
	put(g, s, strlen(s));
}

static void
pad_to(img *g, size_t align)
{
	while (g->n % align)
		put(g, "", 1);
}

static void
set_le(img *g, size_t at, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++)
		g->b[at + i] = (unsigned char)(v >> (8 * i));
}

/*
 * The valid image every hostile case mutates.  Where its fields are: */
typedef struct layout {
	size_t version, tensor_count, kv_count;
	size_t key0_len;          /* general.architecture's key length */
	size_t tokens_count;      /* the string array's count */
	size_t numbers_type, numbers_count;   /* the uint32 array */
	size_t align_type, align_value;
	size_t t0_name_len, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_offset;
	size_t t1_offset, t2_offset, t2_ne0;
	size_t infos_end, data;   /* end of the tensor infos; data section start */
} layout;

/*
 * version 3 (or v), four metadata entries, three tensors:
 *   w     F32  ne [4, 3]   (C order 3 x 4)   at 0
 *   norm  F32  ne [4]                         at 64
 *   q     Q8_0 ne [32, 2]  (2 x 32)           at 96
 * alignment `align` (written as general.alignment unless it is 0: then
 * the default 32).  Data: w = 0..11, norm = 1..4, q = d 1.0, qs -16..15
 * then d 0.5, qs 0..31.
 */
static img
valid_image(uint32_t v, uint32_t align, layout *L)
{
	img g = {0};
	layout l;
	uint32_t a = align ? align : 32;
	size_t i;
	float f;

	memset(&l, 0, sizeof l);
	put(&g, "GGUF", 4);
	l.version = g.n;
	put_u32(&g, v);
	l.tensor_count = g.n;
	put_u64(&g, 3);
	l.kv_count = g.n;
	put_u64(&g, align ? 4 : 3);
	l.key0_len = g.n;
	put_str(&g, "general.architecture");
	put_u32(&g, 8);
	put_str(&g, "llama");
	put_str(&g, "tokenizer.ggml.tokens");
	put_u32(&g, 9);
	put_u32(&g, 8);
	l.tokens_count = g.n;
	put_u64(&g, 3);
	put_str(&g, "<s>");
	put_str(&g, "a");
	put_str(&g, "b");
	put_str(&g, "test.numbers");
	put_u32(&g, 9);
	l.numbers_type = g.n;
	put_u32(&g, 4);
	l.numbers_count = g.n;
	put_u64(&g, 4);
	for (i = 0; i < 4; i++)
		put_u32(&g, (uint32_t)i);
	if (align) {
		put_str(&g, "general.alignment");
		l.align_type = g.n;
		put_u32(&g, 4);
		l.align_value = g.n;
		put_u32(&g, align);
	}
	/* tensor infos */
	l.t0_name_len = g.n;
	put_str(&g, "w");
	l.t0_ndims = g.n;
	put_u32(&g, 2);
	l.t0_ne0 = g.n;
	put_u64(&g, 4);
	l.t0_ne1 = g.n;
	put_u64(&g, 3);
	l.t0_type = g.n;
	put_u32(&g, 0);
	l.t0_offset = g.n;
	put_u64(&g, 0);
	put_str(&g, "norm");
	put_u32(&g, 1);
	put_u64(&g, 4);
	put_u32(&g, 0);
	l.t1_offset = g.n;
	put_u64(&g, a > 64 ? a : 64);
	put_str(&g, "q");
	put_u32(&g, 2);
	l.t2_ne0 = g.n;
	put_u64(&g, 32);
	put_u64(&g, 2);
	put_u32(&g, 8);
	l.t2_offset = g.n;
	put_u64(&g, a > 64 ? 2 * a : 96);
	l.infos_end = g.n;
	pad_to(&g, a);
	l.data = g.n;
	for (i = 0; i < 12; i++) {
		f = (float)i;
		put(&g, &f, 4);
	}
	while (g.n < l.data + (a > 64 ? a : 64))
		put(&g, "", 1);
	for (i = 0; i < 4; i++) {
		f = (float)(i + 1);
		put(&g, &f, 4);
	}
	while (g.n < l.data + (a > 64 ? 2 * a : 96))
		put(&g, "", 1);
	put_le(&g, 0x3c00, 2);              /* d = 1.0 */
	for (i = 0; i < 32; i++) {
		unsigned char q = (unsigned char)(int8_t)((int)i - 16);
		put(&g, &q, 1);
	}
	put_le(&g, 0x3800, 2);              /* d = 0.5 */
	for (i = 0; i < 32; i++) {
		unsigned char q = (unsigned char)i;
		put(&g, &q, 1);
	}
	if (L)
		*L = l;
	return g;
}

/* ---- expectations ---------------------------------------------------------- */

static void
save_seed(const char *kind, const char *what, const unsigned char *b, size_t n)
{
	char *path, name[96];
	size_t i;

	if (corpus_dir == NULL)
		return;
	snprintf(name, sizeof name, "%s", what);
	for (i = 0; name[i]; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
			name[i] = '-';
	path = rs_xasprintf("%s/%s-%s", corpus_dir, kind, name);
	test_write_file(path, b, n);
	free(path);
}

/* Refused: RS_EFORMAT, one line, naming the file and `problem`. */
static void
expect_failure(const char *what, const unsigned char *bytes, size_t len,
               const char *problem, const char *problem2)
{
	unsigned char *copy = rs_xmalloc(len + 1);
	rs_error err = {0};
	rs_model *m;

	memcpy(copy, bytes, len);
	m = rs_gguf_parse(PATH, copy, len, &err);
	CHECK(m == NULL, "%s: accepted", what);
	if (m == NULL) {
		CHECK(err.code == RS_EFORMAT, "%s: code %d (%s)", what, err.code, err.msg);
		CHECK(strncmp(err.msg, PATH ": ", strlen(PATH) + 2) == 0, "%s: '%s' does not "
		      "start with the file", what, err.msg);
		CHECK(strchr(err.msg, '\n') == NULL, "%s: not one line: %s", what, err.msg);
		if (problem)
			CHECK_CONTAINS(err.msg, problem);
		if (problem2)
			CHECK_CONTAINS(err.msg, problem2);
	}
	rs_model_close(m);
	free(copy);
	save_seed("hostile", what, bytes, len);
	ncases++;
}

/* A copy of the valid image with `bytes` bytes at field offset `at` set to v. */
static void
expect_patched(const char *what, size_t at, uint64_t v, int bytes, const img *base,
               const char *problem, const char *problem2)
{
	img g = {0};

	put(&g, base->b, base->n);
	set_le(&g, at, v, bytes);
	expect_failure(what, g.b, g.n, problem, problem2);
	free(g.b);
}

/* ---- the valid image read back ------------------------------------------------ */

static void
check_valid(void)
{
	layout l;
	img g = valid_image(3, 0, &l);
	rs_error err = {0};
	rs_model *m = rs_gguf_parse("ok.gguf", g.b, g.n, &err);
	uint8_t digest[RS_SHA256_LEN];
	double v[64];
	size_t i;

	CHECK(m != NULL, "valid image: %s", err.msg);
	if (m == NULL)
		return;
	CHECK(strcmp(m->format, "gguf") == 0 && m->network_order, "format, order");
	CHECK(m->ntensors == 3, "3 tensors");
	CHECK(strcmp(m->tensors[0].name, "w") == 0 && strcmp(m->tensors[1].name, "norm") == 0 &&
	      strcmp(m->tensors[2].name, "q") == 0, "file order kept");
	CHECK(m->tensors[0].ndim == 2 && m->tensors[0].shape[0] == 3 &&
	      m->tensors[0].shape[1] == 4, "ne [4, 3] is 3 x 4");
	CHECK(m->tensors[0].dtype == RS_DTYPE_F32 && m->tensors[0].nbytes == 48, "w bytes");
	CHECK(m->tensors[1].ndim == 1 && m->tensors[1].shape[0] == 4, "norm 1-D");
	CHECK(m->tensors[2].dtype == RS_DTYPE_Q8_0 && m->tensors[2].nbytes == 68 &&
	      m->tensors[2].count == 64, "q: 2 blocks of Q8_0");
	CHECK(m->tensors[0].offset == l.data && m->tensors[1].offset == l.data + 64 &&
	      m->tensors[2].offset == l.data + 96, "absolute offsets");
	CHECK(m->tensors[2].data == g.b + l.data + 96, "data points into the image");
	CHECK(m->header_len == l.data, "header length %llu, data at %zu",
	      (unsigned long long)m->header_len, l.data);
	rs_sha256(g.b, l.data, digest);
	CHECK(memcmp(digest, m->header_sha256, sizeof digest) == 0, "header digest");
	CHECK(strcmp(rs_model_metadata(m, "general.architecture"), "llama") == 0, "string kv");
	CHECK(strcmp(rs_model_metadata(m, "tokenizer.ggml.tokens"), "[array of 3 strings]") == 0,
	      "string array summarised: %s", rs_model_metadata(m, "tokenizer.ggml.tokens"));
	CHECK(strcmp(rs_model_metadata(m, "test.numbers"), "[array of 4 uint32]") == 0,
	      "number array summarised");
	CHECK(strcmp(rs_model_metadata(m, "gguf.version"), "3") == 0, "version shown");
	rs_dtype_to_double(m->tensors[2].dtype, m->tensors[2].data, 64, v, 1);
	for (i = 0; i < 32; i++) {
		CHECK(v[i] == (double)i - 16, "q row 0 [%zu] = %g", i, v[i]);
		CHECK(v[32 + i] == 0.5 * (double)i, "q row 1 [%zu] = %g", i, v[32 + i]);
	}
	rs_model_close(m);
	free(g.b);

	/* v2 and a non-default alignment */
	g = valid_image(2, 128, &l);
	m = rs_gguf_parse("ok.gguf", g.b, g.n, &err);
	CHECK(m != NULL, "v2, alignment 128: %s", m ? "" : err.msg);
	if (m != NULL) {
		CHECK(l.data % 128 == 0 && m->header_len == l.data, "data at a multiple of 128");
		CHECK(m->tensors[2].offset == l.data + 256, "offsets from the data section");
		CHECK(strcmp(rs_model_metadata(m, "general.alignment"), "128") == 0, "alignment kv");
		CHECK(strcmp(rs_model_metadata(m, "gguf.version"), "2") == 0, "v2");
	}
	rs_model_close(m);
	free(g.b);
}

/* Every scalar type's printed value; no tensors (a metadata-only file). */
static void
check_metadata_values(void)
{
	img g = {0};
	rs_error err = {0};
	rs_model *m;
	float f = 0.1f;
	double d = -2.5e-300;
	static const struct { const char *key; uint32_t type; uint64_t raw; int bytes;
	                      const char *shown; } kv[] = {
		{"t.u8", 0, 200, 1, "200"}, {"t.i8", 1, 0xff, 1, "-1"},
		{"t.u16", 2, 65535, 2, "65535"}, {"t.i16", 3, 0x8000, 2, "-32768"},
		{"t.u32", 4, 4000000000u, 4, "4000000000"}, {"t.i32", 5, 0xfffffffe, 4, "-2"},
		{"t.bool", 7, 1, 1, "true"}, {"t.u64", 10, 18446744073709551615ull, 8,
		 "18446744073709551615"}, {"t.i64", 11, 0x8000000000000000ull, 8,
		 "-9223372036854775808"},
	};
	size_t i;
	uint32_t w;
	uint64_t dw;

	put(&g, "GGUF", 4);
	put_u32(&g, 3);
	put_u64(&g, 0);
	put_u64(&g, sizeof kv / sizeof kv[0] + 5);
	for (i = 0; i < sizeof kv / sizeof kv[0]; i++) {
		put_str(&g, kv[i].key);
		put_u32(&g, kv[i].type);
		put_le(&g, kv[i].raw, kv[i].bytes);
	}
	memcpy(&w, &f, 4);
	put_str(&g, "t.f32");
	put_u32(&g, 6);
	put_u32(&g, w);
	memcpy(&dw, &d, 8);
	put_str(&g, "t.f64");
	put_u32(&g, 12);
	put_u64(&g, dw);
	put_str(&g, "t.binary");
	put_u32(&g, 8);
	put_u64(&g, 3);
	put(&g, "a\xff" "b", 3);
	put_str(&g, "t.empty");
	put_u32(&g, 9);
	put_u32(&g, 9);          /* array of arrays */
	put_u64(&g, 2);
	put_u32(&g, 0);
	put_u64(&g, 0);
	put_u32(&g, 8);
	put_u64(&g, 1);
	put_str(&g, "x");
	put_str(&g, "t.utf8");
	put_u32(&g, 8);
	put_str(&g, "\xc3\xa9t\xc3\xa9");
	m = rs_gguf_parse("meta.gguf", g.b, g.n, &err);
	CHECK(m != NULL, "metadata-only file: %s", m ? "" : err.msg);
	if (m != NULL) {
		CHECK(m->ntensors == 0, "no tensors");
		for (i = 0; i < sizeof kv / sizeof kv[0]; i++) {
			const char *s = rs_model_metadata(m, kv[i].key);
			CHECK(s && strcmp(s, kv[i].shown) == 0, "%s: '%s' not '%s'", kv[i].key,
			      s ? s : "(none)", kv[i].shown);
		}
		CHECK(strcmp(rs_model_metadata(m, "t.f32"), "0.100000001") == 0, "f32 shown");
		CHECK(strcmp(rs_model_metadata(m, "t.f64"), "-2.5e-300") == 0,
		      "f64 shown: %s", rs_model_metadata(m, "t.f64"));
		CHECK(strcmp(rs_model_metadata(m, "t.binary"), "[string of 3 bytes]") == 0,
		      "a string that is not UTF-8 is summarised");
		CHECK(strcmp(rs_model_metadata(m, "t.empty"), "[array of 2 arrays]") == 0,
		      "nested arrays: %s", rs_model_metadata(m, "t.empty"));
		CHECK(strcmp(rs_model_metadata(m, "t.utf8"), "\xc3\xa9t\xc3\xa9") == 0, "UTF-8");
		CHECK(m->header_len == g.n, "header is the whole file when no padding follows");
	}
	rs_model_close(m);
	free(g.b);
}

/* ---- one refusal per rule ------------------------------------------------------ */

static void
check_hostile(void)
{
	layout l;
	img g = valid_image(3, 0, &l);
	img a = valid_image(3, 64, NULL);
	layout la;
	size_t i;

	free(a.b);
	a = valid_image(3, 64, &la);
	expect_patched("bad magic", 0, 0x46554746, 4, &g, "no \"GGUF\" magic", NULL);
	expect_failure("empty file", g.b, 0, "no \"GGUF\" magic", NULL);
	expect_failure("magic only", g.b, 4, "the version", "truncated");
	expect_patched("version 1", l.version, 1, 4, &g, "version 1 is too old", NULL);
	expect_patched("version 4", l.version, 4, 4, &g, "GGUF version 4", "2 and 3");
	expect_patched("version 0", l.version, 0, 4, &g, "GGUF version 0", NULL);
	expect_patched("big-endian", l.version, 0x03000000, 4, &g, "big-endian", NULL);
	expect_patched("tensor_count 2^60", l.tensor_count, 1ull << 60, 8, &g,
	               "tensor_count 1152921504606846976", "cannot fit");
	expect_patched("kv_count 2^60", l.kv_count, 1ull << 60, 8, &g, "kv_count", "cannot fit");
	expect_patched("kv_count one too many", l.kv_count, 4, 8, &g, NULL, NULL);
	expect_patched("tensor_count one too many", l.tensor_count, 4, 8, &g,
	               "tensor info 3", NULL);
	expect_patched("key length past the end", l.key0_len, 1ull << 62, 8, &g,
	               "metadata entry 0", "claims 4611686018427387904 bytes");
	expect_patched("empty key", l.key0_len, 0, 8, &g, "metadata entry 0", "empty key");
	expect_patched("string array of 2^62", l.tokens_count, 1ull << 62, 8, &g,
	               "metadata key 'tokenizer.ggml.tokens'", "array of 4611686018427387904");
	expect_patched("uint32 array of 2^62", l.numbers_count, 1ull << 62, 8, &g,
	               "metadata key 'test.numbers'", "cannot fit");
	expect_patched("uint32 array of 2^64-1", l.numbers_count, UINT64_MAX, 8, &g,
	               "metadata key 'test.numbers'", "cannot fit");
	expect_patched("array of unknown type", l.numbers_type, 13, 4, &g,
	               "metadata key 'test.numbers'", "unknown value type 13");
	expect_patched("unknown value type", l.numbers_type - 4, 77, 4, &g,
	               "metadata key 'test.numbers'", "unknown value type 77");
	expect_patched("alignment not uint32", la.align_type, 10, 4, &a,
	               "metadata key 'general.alignment'", "must be a uint32");
	expect_patched("alignment 48", la.align_value, 48, 4, &a,
	               "metadata key 'general.alignment'", "48 is not a power of two");
	expect_patched("alignment 0", la.align_value, 0, 4, &a, "general.alignment",
	               "not a power of two");
	expect_patched("misaligned offset", l.t0_offset, 4, 8, &g, "tensor 'w'",
	               "not a multiple of the alignment 32");
	expect_patched("overlapping tensors", l.t1_offset, 32, 8, &g, "tensors 'w' and 'norm'",
	               "overlap");
	expect_patched("n_dims 5", l.t0_ndims, 5, 4, &g, "tensor 'w'", "n_dims 5");
	expect_patched("n_dims 0", l.t0_ndims, 0, 4, &g, "tensor 'w'", "n_dims 0");
	expect_patched("ne 0", l.t0_ne1, 0, 8, &g, "tensor 'w'", "ne[1] is 0");
	expect_patched("ne overflowing", l.t0_ne0, 1ull << 62, 8, &g, "tensor 'w'", "overflows");
	expect_patched("unknown type", l.t0_type, 99, 4, &g, "tensor 'w'", "unknown ggml type 99");
	expect_patched("retired type", l.t0_type, 4, 4, &g, "tensor 'w'", "Q4_2");
	expect_patched("repacked type", l.t0_type, 31, 4, &g, "tensor 'w'", "Q4_0_4_4");
	expect_patched("partial block", l.t2_ne0, 48, 8, &g, "tensor 'q'",
	               "not a whole number of Q8_0 blocks");
	expect_patched("offset past the end", l.t2_offset, 1ull << 40, 8, &g, "tensor 'q'",
	               "past the end");
	expect_patched("offset wrapping", l.t2_offset, UINT64_MAX - 31, 8, &g, "tensor 'q'",
	               NULL);
	expect_patched("duplicate tensor", l.t0_name_len + 8, 'q', 1, &g, "tensor 'q'",
	               "appears twice");
	expect_patched("tensor name NUL", l.t0_name_len + 8, 0, 1, &g, "tensor info 0",
	               "NUL");
	expect_patched("tensor name not UTF-8", l.t0_name_len + 8, 0xc3, 1, &g,
	               "tensor info 0", "UTF-8");
	expect_patched("empty tensor name", l.t0_name_len, 0, 8, &g, "tensor info 0",
	               "empty tensor name");
	expect_patched("key with a control byte", l.key0_len + 8, '\n', 1, &g,
	               "metadata entry 0", "byte 0x0a");

	{
		img d = {0};
		put(&d, "GGUF", 4);
		put_u32(&d, 3);
		put_u64(&d, 0);
		put_u64(&d, 2);
		put_str(&d, "a.key");
		put_u32(&d, 4);
		put_u32(&d, 1);
		put_str(&d, "a.key");
		put_u32(&d, 4);
		put_u32(&d, 2);
		expect_failure("duplicate key", d.b, d.n, "metadata key 'a.key'", "appears twice");
		free(d.b);
	}
	{
		/* arrays nested past the limit */
		img d = {0};
		put(&d, "GGUF", 4);
		put_u32(&d, 3);
		put_u64(&d, 0);
		put_u64(&d, 1);
		put_str(&d, "deep");
		put_u32(&d, 9);
		for (i = 0; i < 12; i++) {
			put_u32(&d, 9);
			put_u64(&d, 1);
		}
		put_u32(&d, 0);
		put_u64(&d, 0);
		expect_failure("nested arrays", d.b, d.n, "metadata key 'deep'", "nested");
		free(d.b);
	}
	{
		/* the data section past the end: the file stops after the infos */
		expect_failure("no data section", g.b, l.infos_end, "tensor 'w'", "past the end");
	}
	free(g.b);
	free(a.b);
}

/* Every prefix of a valid image is refused (the last tensor ends the
 * file), cleanly. */
static void
check_truncation(void)
{
	img g = valid_image(3, 0, NULL);
	size_t n;
	int bad = 0;

	for (n = 0; n < g.n; n++) {
		unsigned char *copy = rs_xmalloc(n + 1);
		rs_error err = {0};
		rs_model *m;

		memcpy(copy, g.b, n);
		m = rs_gguf_parse(PATH, copy, n, &err);
		if (m != NULL || err.code != RS_EFORMAT || strncmp(err.msg, PATH ": ", 10) != 0 ||
		    strchr(err.msg, '\n') != NULL) {
			if (bad++ < 5)
				CHECK(false, "prefix %zu: %s", n, m ? "accepted" : err.msg);
		}
		rs_model_close(m);
		free(copy);
	}
	CHECK(bad == 0, "%d prefixes misjudged", bad);
	ncases += (int)g.n;
	free(g.b);
}

/* Random corruption: opens, or is refused in one line; never worse. */
static void
check_corruption(void)
{
	img g = valid_image(3, 0, NULL);
	unsigned char *copy = rs_xmalloc(g.n);
	int round, opened = 0;

	test_seed(77);
	for (round = 0; round < 3000; round++) {
		rs_error err = {0};
		rs_model *m;
		int k, flips = 1 + (int)(test_uniform() * 4);

		memcpy(copy, g.b, g.n);
		for (k = 0; k < flips; k++)
			copy[(size_t)(test_uniform() * (double)g.n)] = (unsigned char)(test_uniform() * 256);
		m = rs_gguf_parse(PATH, copy, g.n, &err);
		if (m == NULL) {
			test_checks++;
			if (err.code != RS_EFORMAT || strchr(err.msg, '\n') != NULL)
				CHECK(false, "round %d: %d %s", round, err.code, err.msg);
		} else {
			size_t i;
			opened++;
			for (i = 0; i < m->ntensors; i++)
				CHECK(m->tensors[i].data >= copy && m->tensors[i].nbytes <=
				      g.n - (size_t)(m->tensors[i].data - copy), "round %d: tensor "
				      "inside the image", round);
		}
		rs_model_close(m);
	}
	CHECK(opened > 0, "some corruptions leave a valid file (%d)", opened);
	free(copy);
	free(g.b);
}

/* rs_model_open on a file: the dispatch reaches this reader, which maps. */
static void
check_file(void)
{
	char *dir = test_tmpdir(), *path = rs_xasprintf("%s/model.gguf", dir);
	img g = valid_image(3, 0, NULL);
	rs_error err = {0};
	rs_model *m;
	rs_layer *layers = NULL;
	size_t n;
	double w[12];

	test_write_file(path, g.b, g.n);
	m = rs_model_open(path, &err);
	CHECK(m != NULL, "open: %s", m ? "" : err.msg);
	if (m != NULL) {
		CHECK(m->owns_map && strcmp(m->format, "gguf") == 0, "mapped");
		n = rs_layers_discover(m, NULL, 0, NULL, &layers);
		CHECK(n == 2, "w and q are layers, norm is not (%zu)", n);
		if (n == 2) {
			CHECK(rs_layer_load(&layers[0], w, 3, path, &err) == RS_OK, "load w");
			CHECK(w[0] == 0 && w[3] == 1 && w[1] == 4 && w[11] == 11,
			      "w column-major: %g %g %g", w[0], w[3], w[1]);
		}
		free(layers);
	}
	rs_model_close(m);
	g.b[g.n - 1] = 0;
	test_write_file(path, g.b, g.n - 1);
	m = rs_model_open(path, &err);
	CHECK(m == NULL && err.code == RS_EFORMAT, "truncated file refused");
	if (m == NULL) {
		CHECK_CONTAINS(err.msg, path);
		CHECK_CONTAINS(err.msg, "tensor 'q'");
	}
	rs_model_close(m);
	free(g.b);
	free(path);
	free(dir);
}

/* ---- --dump -------------------------------------------------------------------- */

static int
write_doubles(const char *path, const double *v, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok = f != NULL && fwrite(v, sizeof *v, n, f) == n;

	if (f != NULL && fclose(f) != 0)
		ok = 0;
	return ok;
}

static int
dump(const char *file, const char *dir)
{
	rs_error err = {0};
	rs_model *m = rs_model_open(file, &err);
	rs_layer *layers = NULL;
	size_t nl, i, r, c;
	int status = 0;

	if (m == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		double *v;
		char *p;

		if (!rs_dtype_get(t->dtype)->is_float)
			continue;
		v = rs_xmalloc(t->count * sizeof *v);
		rs_dtype_to_double(t->dtype, t->data, t->count, v, 1);
		p = rs_xasprintf("%s/%s.values", dir, t->name);
		if (!write_doubles(p, v, t->count))
			status = 1, fprintf(stderr, "cannot write %s\n", p);
		free(p);
		free(v);
	}
	nl = rs_layers_discover(m, NULL, 0, NULL, &layers);
	for (i = 0; i < nl; i++) {
		const rs_layer *l = &layers[i];
		double *w = rs_xmalloc(l->rows * l->cols * sizeof *w);
		double *rm = rs_xmalloc(l->rows * l->cols * sizeof *rm);
		char *p;

		if (rs_layer_load(l, w, l->rows, file, &err) != RS_OK) {
			printf("%s: %s\n", l->name, err.msg);
		} else {
			for (r = 0; r < l->rows; r++)
				for (c = 0; c < l->cols; c++)
					rm[r * l->cols + c] = w[r + c * l->rows];
			p = rs_xasprintf("%s/%s.layer", dir, l->name);
			if (!write_doubles(p, rm, l->rows * l->cols))
				status = 1, fprintf(stderr, "cannot write %s\n", p);
			free(p);
		}
		free(w);
		free(rm);
	}
	free(layers);
	rs_model_close(m);
	return status;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		corpus_dir = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: test-gguf [--dump FILE DIR | --write-corpus DIR]\n");
		return 2;
	}
	check_valid();
	check_metadata_values();
	check_hostile();
	if (corpus_dir == NULL) {
		check_truncation();
		check_corruption();
		check_file();
	} else {
		img g = valid_image(3, 0, NULL);
		save_seed("valid", "v3", g.b, g.n);
		free(g.b);
		g = valid_image(2, 128, NULL);
		save_seed("valid", "v2-align128", g.b, g.n);
		free(g.b);
	}
	printf("test-gguf: %d cases\n", ncases);
	return test_done("test-gguf");
}
