/*
 * test-torch.c — the PyTorch reader (io-torch.c) on checkpoints built here
 * opcode by opcode, as torch.save's pickler writes them, in zips written by
 * libzip: tensors in order, views gathered element by element, slices and
 * shared storages in place, protocol 4's framing, torch 2's
 * _rebuild_tensor_v3 with the float8 and unsigned dtypes (which the torch
 * installed for cli-torch.sh cannot write), parameters; which dict a
 * checkpoint's tensors come from, names from key paths, metadata and what
 * was skipped; one refusal per rule of the unpickler and the archive
 * (opcodes, globals, persistent ids, views, entries, limits); truncation at
 * every offset and random corruption.  Every refusal is a clean RS_EFORMAT
 * naming the file (run under ASan by CI).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "rankscope/model.h"
#include "rankscope/sha256.h"
#include "rankscope/util.h"
#include "testlib.h"

static int ncases;
static char *dir;

/* ---- pickles ------------------------------------------------------------------ */

typedef struct pk {
	unsigned char *b;
	size_t n, cap;
	int proto;
} pk;

static void
put(pk *p, const void *s, size_t n)
{
	if (p->n + n > p->cap) {
		p->cap = (p->n + n) * 2 + 64;
		p->b = rs_xrealloc(p->b, p->cap);
	}
	memcpy(p->b + p->n, s, n);
	p->n += n;
}

static void
op(pk *p, unsigned char c)
{
	put(p, &c, 1);
}

static void
le(pk *p, uint64_t v, int n)
{
	int k;
	for (k = 0; k < n; k++)
		op(p, (unsigned char)(v >> (8 * k)));
}

static void
pk_begin(pk *p, int proto)
{
	*p = (pk){0};
	p->proto = proto;
	op(p, 0x80);
	op(p, (unsigned char)proto);
}

/* A str as the pickler writes it for the protocol. */
static void
pk_str(pk *p, const char *s)
{
	size_t n = strlen(s);

	if (p->proto >= 4 && n < 256) {
		op(p, 0x8c);
		op(p, (unsigned char)n);
	} else {
		op(p, 'X');
		le(p, n, 4);
	}
	put(p, s, n);
}

/* An int as the pickler writes it: BININT1, BININT2, BININT or LONG1. */
static void
pk_int(pk *p, long long v)
{
	if (v >= 0 && v < 256) {
		op(p, 'K');
		op(p, (unsigned char)v);
	} else if (v >= 0 && v < 65536) {
		op(p, 'M');
		le(p, (uint64_t)v, 2);
	} else if (v >= -2147483647LL - 1 && v <= 2147483647LL) {
		op(p, 'J');
		le(p, (uint64_t)v, 4);
	} else {
		op(p, 0x8a);
		op(p, 8);
		le(p, (uint64_t)v, 8);
	}
}

static void
pk_float(pk *p, double f)
{
	uint64_t bits;
	int k;

	memcpy(&bits, &f, 8);
	op(p, 'G');
	for (k = 7; k >= 0; k--)
		op(p, (unsigned char)(bits >> (8 * k)));
}

static void
pk_global(pk *p, const char *module, const char *name)
{
	if (p->proto >= 4) {
		pk_str(p, module);
		pk_str(p, name);
		op(p, 0x93);
		op(p, 0x94);   /* MEMOIZE, as the pickler does after each object */
		return;
	}
	op(p, 'c');
	put(p, module, strlen(module));
	op(p, '\n');
	put(p, name, strlen(name));
	op(p, '\n');
}

static void
pk_sizes(pk *p, const size_t *v, size_t n)
{
	size_t k;

	if (n == 0) {
		op(p, ')');
		return;
	}
	if (n > 3)
		op(p, '(');
	for (k = 0; k < n; k++)
		pk_int(p, (long long)v[k]);
	op(p, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
}

typedef struct view {
	const char *cls;             /* "FloatStorage", or "UntypedStorage" for v3 */
	const char *key;
	size_t numel, offset, ndim;
	size_t size[6], stride[6];
	const char *dtype;           /* v3: "float8_e4m3fn" ... */
	bool parameter;              /* wrapped in _rebuild_parameter */
} view;

/* A tensor as torch.save pickles it: _rebuild_tensor_v2 (or _v3) of a
 * persistent id ('storage', torch.CLS, KEY, 'cpu', NUMEL). */
static void
pk_tensor(pk *p, const view *v)
{
	if (v->parameter)
		pk_global(p, "torch._utils", "_rebuild_parameter");
	pk_global(p, "torch._utils", v->dtype ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
	op(p, '(');
	op(p, '(');
	pk_str(p, "storage");
	pk_global(p, "torch", v->cls);
	pk_str(p, v->key);
	pk_str(p, "cpu");
	pk_int(p, (long long)v->numel);
	op(p, 't');
	op(p, 'Q');
	pk_int(p, (long long)v->offset);
	pk_sizes(p, v->size, v->ndim);
	pk_sizes(p, v->stride, v->ndim);
	op(p, 0x89);
	pk_global(p, "collections", "OrderedDict");
	op(p, ')');
	op(p, 'R');
	if (v->dtype)
		pk_global(p, "torch", v->dtype);
	op(p, 't');
	op(p, 'R');
	if (v->parameter) {
		op(p, 0x88);
		pk_global(p, "collections", "OrderedDict");
		op(p, ')');
		op(p, 'R');
		op(p, 0x87);
		op(p, 'R');
	}
}

/* The start of an OrderedDict's items: GLOBAL, (), REDUCE, MARK. */
static void
pk_odict_begin(pk *p)
{
	pk_global(p, "collections", "OrderedDict");
	op(p, ')');
	op(p, 'R');
	op(p, '(');
}

/* SETITEMS, then the state_dict's _metadata as BUILD sets it. */
static void
pk_odict_end(pk *p)
{
	op(p, 'u');
	op(p, '}');
	pk_str(p, "_metadata");
	pk_global(p, "collections", "OrderedDict");
	op(p, ')');
	op(p, 'R');
	pk_str(p, "");
	op(p, '}');
	pk_str(p, "version");
	pk_int(p, 1);
	op(p, 's');
	op(p, 's');
	op(p, 's');
	op(p, 'b');
}

static void
pk_end(pk *p)
{
	op(p, '.');
}

/* ---- archives ------------------------------------------------------------------- */

typedef struct member {
	const char *name;            /* under the archive folder */
	const void *data;
	size_t len;
} member;

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long sz;

	if (f == NULL)
		abort();
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	rewind(f);
	b = rs_xmalloc((size_t)sz + 1);
	if (fread(b, 1, (size_t)sz, f) != (size_t)sz)
		abort();
	fclose(f);
	*len = (size_t)sz;
	return b;
}

/* A zip of ARCHIVE/data.pkl, the members and ARCHIVE/version, written by
 * libzip to dir/NAME; its bytes returned. */
static unsigned char *
torch_zip(const char *name, const char *archive, const pk *p, const member *ms, size_t n,
          bool deflate, size_t *len)
{
	char *path = rs_xasprintf("%s/%s", dir, name), *en;
	int zerr;
	zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
	zip_int64_t at;
	unsigned char *b;
	size_t i;

	if (z == NULL)
		abort();
	for (i = 0; i <= n + 1; i++) {
		const void *data = i == 0 ? p->b : i <= n ? ms[i - 1].data : "3\n";
		size_t dlen = i == 0 ? p->n : i <= n ? ms[i - 1].len : 2;
		zip_source_t *s = zip_source_buffer(z, data, dlen, 0);

		en = rs_xasprintf("%s/%s", archive, i == 0 ? "data.pkl" : i <= n ? ms[i - 1].name :
		                  "version");
		at = zip_file_add(z, en, s, ZIP_FL_ENC_RAW);
		free(en);
		if (at < 0)
			abort();
		zip_set_file_compression(z, (zip_uint64_t)at, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 9);
	}
	if (zip_close(z) != 0)
		abort();
	b = read_file(path, len);
	free(path);
	return b;
}

static rs_model *
parse(const unsigned char *b, size_t len, rs_error *err)
{
	return rs_torch_parse("t.pt", b, len, err);
}

static void
expect_failure(const char *what, const unsigned char *bytes, size_t len, const char *problem)
{
	unsigned char *copy = rs_xmalloc(len + 1);
	rs_error err = {0};
	rs_model *m;

	memcpy(copy, bytes, len);
	m = parse(copy, len, &err);
	CHECK(m == NULL, "%s: accepted", what);
	if (m == NULL) {
		CHECK(err.code == RS_EFORMAT, "%s: code %d (%s)", what, err.code, err.msg);
		CHECK(strncmp(err.msg, "t.pt: ", 6) == 0, "%s: names the file: %s", what, err.msg);
		CHECK(strchr(err.msg, '\n') == NULL, "%s: one line: %s", what, err.msg);
		if (problem)
			CHECK_CONTAINS(err.msg, problem);
	}
	rs_model_close(m);
	free(copy);
	ncases++;
}

/* A pickle alone in an archive with one storage "0" of 12 floats. */
static void
expect_pickle_failure(const char *what, const pk *p, const char *problem)
{
	float w[12] = {0};
	member ms[1] = {{"data/0", w, sizeof w}};
	size_t len;
	unsigned char *b = torch_zip("bad.pt", "arc", p, ms, 1, false, &len);

	expect_failure(what, b, len, problem);
	free(b);
}

static const rs_tensor *
find(const rs_model *m, const char *name)
{
	const rs_tensor *t = m ? rs_model_find(m, name) : NULL;
	CHECK(t != NULL, "tensor '%s' present", name);
	return t;
}

static float
f32_at(const rs_tensor *t, size_t i)
{
	float f;
	memcpy(&f, t->data + 4 * i, 4);
	return f;
}

/* ---- a state_dict ------------------------------------------------------------------ */

static float storage0[6] = {1, 2, 3, 4, 5, 6};
static float storage1[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static uint16_t storage2[4] = {0x3c00, 0x4000, 0x4200, 0x4400};   /* 1, 2, 3, 4 in half */
static int64_t storage3[1] = {7};

static const view sd_views[] = {
	{"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}, NULL, false},          /* a */
	{"FloatStorage", "1", 12, 0, 2, {3, 4}, {1, 3}, NULL, false},         /* b: transposed */
	{"FloatStorage", "1", 12, 4, 2, {2, 4}, {4, 1}, NULL, false},         /* c: slice */
	{"HalfStorage", "2", 4, 0, 2, {2, 2}, {2, 1}, NULL, false},           /* h */
	{"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}, NULL, true},           /* p: parameter */
	{"LongStorage", "3", 1, 0, 0, {0}, {0}, NULL, false},                 /* x: scalar */
	{"FloatStorage", "0", 6, 3, 2, {4, 3}, {0, 1}, NULL, false},          /* e: expanded */
};
static const char *const sd_names[] = {"a", "b", "c", "h", "p", "x", "e"};
#define NSD (sizeof sd_views / sizeof sd_views[0])

static void
state_dict_pickle(pk *p, int proto)
{
	size_t i;

	pk_begin(p, proto);
	if (proto >= 4) {
		op(p, 0x95);   /* FRAME: torch's pickles fit one */
		le(p, 0, 8);
	}
	pk_odict_begin(p);
	for (i = 0; i < NSD; i++) {
		pk_str(p, sd_names[i]);
		pk_tensor(p, &sd_views[i]);
	}
	pk_odict_end(p);
	pk_end(p);
	if (proto >= 4) {
		size_t frame = p->n - 11;
		for (i = 0; i < 8; i++)
			p->b[3 + i] = (unsigned char)(frame >> (8 * i));
	}
}

static const member sd_members[] = {
	{"data/0", storage0, sizeof storage0}, {"data/1", storage1, sizeof storage1},
	{"data/2", storage2, sizeof storage2}, {"data/3", storage3, sizeof storage3},
};

static unsigned char *
state_dict_zip(int proto, bool deflate, size_t *len)
{
	pk p;
	unsigned char *b;

	state_dict_pickle(&p, proto);
	b = torch_zip("sd.pt", "sd", &p, sd_members, 4, deflate, len);
	free(p.b);
	return b;
}

static void
check_state_dict_model(const rs_model *m, const unsigned char *img, size_t len, bool deflate,
                       const char *what)
{
	const rs_tensor *t;
	size_t i, r, c;

	CHECK(m->ntensors == NSD, "%s: %zu tensors", what, m->ntensors);
	for (i = 0; i < m->ntensors && i < NSD; i++)
		CHECK(strcmp(m->tensors[i].name, sd_names[i]) == 0, "%s: tensor %zu is '%s', not '%s'",
		      what, i, m->tensors[i].name, sd_names[i]);
	CHECK(m->network_order, "%s: network order", what);
	CHECK(strcmp(m->format, "torch") == 0, "%s: format", what);
	CHECK(rs_model_metadata(m, "rankscope.archive_version") != NULL &&
	      strcmp(rs_model_metadata(m, "rankscope.archive_version"), "3") == 0,
	      "%s: archive version", what);
	if ((t = find(m, "a")) != NULL) {
		CHECK(t->dtype == RS_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 &&
		      t->shape[1] == 3 && t->count == 6 && t->nbytes == 24, "%s: a's shape", what);
		CHECK(memcmp(t->data, storage0, 24) == 0, "%s: a's elements", what);
		CHECK((t->data >= img && t->data < img + len) == !deflate,
		      "%s: a in place when stored, inflated when deflated", what);
		if (!deflate)
			CHECK(t->offset == (uint64_t)(t->data - img), "%s: a's file offset", what);
	}
	if ((t = find(m, "b")) != NULL) {
		CHECK(t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 4, "%s: b's shape", what);
		for (r = 0; r < 3; r++)
			for (c = 0; c < 4; c++)
				CHECK(f32_at(t, r * 4 + c) == storage1[r + 3 * c],
				      "%s: b[%zu][%zu] gathered", what, r, c);
		CHECK(!(t->data >= img && t->data < img + len), "%s: b is a copy", what);
	}
	if ((t = find(m, "c")) != NULL) {
		CHECK(memcmp(t->data, storage1 + 4, 32) == 0, "%s: c from offset 4", what);
		CHECK((t->data >= img && t->data < img + len) == !deflate, "%s: c in place", what);
	}
	if ((t = find(m, "h")) != NULL)
		CHECK(t->dtype == RS_DTYPE_F16 && memcmp(t->data, storage2, 8) == 0, "%s: h", what);
	if ((t = find(m, "p")) != NULL)
		CHECK(t->data == find(m, "a")->data && t->count == 6,
		      "%s: a parameter on a's storage shares its bytes", what);
	if ((t = find(m, "x")) != NULL)
		CHECK(t->dtype == RS_DTYPE_I64 && t->ndim == 0 && t->shape == NULL && t->count == 1 &&
		      memcmp(t->data, storage3, 8) == 0, "%s: x, a 0-dim int64", what);
	if ((t = find(m, "e")) != NULL) {
		CHECK(t->count == 12, "%s: e's count", what);
		for (r = 0; r < 4; r++)
			for (c = 0; c < 3; c++)
				CHECK(f32_at(t, r * 3 + c) == storage0[3 + c], "%s: e[%zu][%zu] expanded",
				      what, r, c);
	}
}

static void
check_state_dict(void)
{
	int proto, deflate;

	for (proto = 2; proto <= 5; proto++)
		for (deflate = 0; deflate <= 1; deflate++) {
			size_t len;
			unsigned char *b = state_dict_zip(proto, deflate, &len);
			rs_error err = {0};
			rs_model *m = parse(b, len, &err);
			char what[64];
			pk p;

			snprintf(what, sizeof what, "protocol %d%s", proto, deflate ? " deflated" : "");
			CHECK(m != NULL, "%s opens: %s", what, err.msg);
			if (m != NULL) {
				uint8_t digest[RS_SHA256_LEN];
				check_state_dict_model(m, b, len, deflate, what);
				state_dict_pickle(&p, proto);
				rs_sha256(p.b, p.n, digest);
				CHECK(m->header_len == p.n && memcmp(digest, m->header_sha256,
				                                     sizeof digest) == 0,
				      "%s: header is data.pkl", what);
				free(p.b);
			}
			rs_model_close(m);
			free(b);
			ncases++;
		}
}

/* Through rs_model_open: recognised as torch, the file mapped. */
static void
check_open_file(void)
{
	size_t len;
	unsigned char *b = state_dict_zip(2, false, &len);
	char *path = rs_xasprintf("%s/sd.pt", dir);
	rs_error err = {0};
	rs_model *m;
	const rs_tensor *t;

	test_write_file(path, b, len);
	m = rs_model_open(path, &err);
	CHECK(m != NULL, "sd.pt opens through rs_model_open: %s", err.msg);
	if (m != NULL) {
		CHECK(m->owns_map && m->file_size == len, "the file is mapped");
		check_state_dict_model(m, m->map, m->map_len, false, "file");
		t = find(m, "a");
		CHECK(t != NULL && t->data >= m->map && t->data < m->map + m->map_len,
		      "file: a points into the map");
	}
	rs_model_close(m);
	free(path);
	free(b);
	ncases++;
}

/* torch 2.x: the new dtypes as an UntypedStorage of bytes and a dtype. */
static void
check_v3(void)
{
	static const struct { const char *dtype; rs_dtype want; size_t esize; } cases[] = {
		{"float8_e4m3fn", RS_DTYPE_F8_E4M3, 1}, {"float8_e5m2", RS_DTYPE_F8_E5M2, 1},
		{"float8_e8m0fnu", RS_DTYPE_F8_E8M0, 1}, {"uint16", RS_DTYPE_U16, 2},
		{"uint32", RS_DTYPE_U32, 4}, {"uint64", RS_DTYPE_U64, 8}, {"float32", RS_DTYPE_F32, 4},
		{"bfloat16", RS_DTYPE_BF16, 2},
	};
	unsigned char bytes[64];
	size_t i, k;

	for (k = 0; k < sizeof bytes; k++)
		bytes[k] = (unsigned char)(k * 7 + 1);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		view v = {"UntypedStorage", "0", 48, 2, 2, {2, 3}, {3, 1}, cases[i].dtype, false};
		member ms[1] = {{"data/0", bytes, 48}};
		pk p;
		size_t len;
		unsigned char *b;
		rs_error err = {0};
		rs_model *m;

		pk_begin(&p, 2);
		op(&p, '}');
		pk_str(&p, "w");
		pk_tensor(&p, &v);
		op(&p, 's');
		pk_end(&p);
		b = torch_zip("v3.pt", "archive", &p, ms, 1, false, &len);
		m = parse(b, len, &err);
		if (6 * cases[i].esize + 2 * cases[i].esize > 48) {
			CHECK(m == NULL && strstr(err.msg, "reaches element") != NULL,
			      "v3 %s: past its bytes refused: %s", cases[i].dtype, err.msg);
		} else {
			CHECK(m != NULL, "v3 %s opens: %s", cases[i].dtype, err.msg);
			if (m != NULL)
				CHECK(m->tensors[0].dtype == cases[i].want &&
				      m->tensors[0].nbytes == 6 * cases[i].esize &&
				      memcmp(m->tensors[0].data, bytes + 2 * cases[i].esize,
				             6 * cases[i].esize) == 0, "v3 %s: dtype and bytes",
				      cases[i].dtype);
		}
		rs_model_close(m);
		free(b);
		free(p.b);
		ncases++;
	}
}

/* ---- checkpoints ------------------------------------------------------------------- */

static const view w_view = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}, NULL, false};
static const view m_view = {"FloatStorage", "1", 12, 0, 2, {3, 4}, {4, 1}, NULL, false};

static rs_model *
open_pickle(const pk *p, rs_error *err)
{
	member ms[2] = {{"data/0", storage0, sizeof storage0}, {"data/1", storage1, sizeof storage1}};
	size_t len;
	unsigned char *b = torch_zip("ckpt.pt", "ckpt", p, ms, 2, false, &len);
	rs_model *m;

	m = parse(b, len, err);
	if (m == NULL) {
		free(b);
		return NULL;
	}
	/* the model borrows the image: hand it over, to be freed with it */
	m->buffers = rs_xreallocarray(m->buffers, m->nbuffers + 1, sizeof *m->buffers);
	m->buffers[m->nbuffers++] = b;
	return m;
}

static void
expect_meta(const rs_model *m, const char *key, const char *value)
{
	const char *got = m ? rs_model_metadata(m, key) : NULL;

	CHECK(got != NULL && (value == NULL || strcmp(got, value) == 0),
	      "metadata %s = '%s', not '%s'", key, got ? got : "(none)", value ? value : "*");
}

static void
expect_names(const rs_model *m, const char *const *names, size_t n, const char *what)
{
	size_t i;

	CHECK(m != NULL && m->ntensors == n, "%s: %zu tensors", what, m ? m->ntensors : 0);
	for (i = 0; m != NULL && i < n && i < m->ntensors; i++)
		CHECK(strcmp(m->tensors[i].name, names[i]) == 0, "%s: tensor %zu '%s', not '%s'",
		      what, i, m->tensors[i].name, names[i]);
}

static void
check_checkpoints(void)
{
	rs_error err = {0};
	rs_model *m;
	pk p;

	/* {"epoch": 3, "lr": 0.001, "name": "run", "flag": True, "none": None,
	 *  "big": 2**70, "model": {"w": W}, "optimizer": {"state": {0: {"m": M}}},
	 *  "ema": {"w": W}, "neg": -5, "cfg": {"depth": [1, 2]}} */
	pk_begin(&p, 2);
	op(&p, '}');
	op(&p, '(');
	pk_str(&p, "epoch"), pk_int(&p, 3);
	pk_str(&p, "lr"), pk_float(&p, 0.001);
	pk_str(&p, "name"), pk_str(&p, "run");
	pk_str(&p, "flag"), op(&p, 0x88);
	pk_str(&p, "none"), op(&p, 'N');
	pk_str(&p, "big"), op(&p, 0x8a), op(&p, 9), le(&p, 0, 8), op(&p, 0x40);
	pk_str(&p, "model"), op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &w_view), op(&p, 's');
	pk_str(&p, "optimizer"), op(&p, '}'), pk_str(&p, "state"), op(&p, '}'), pk_int(&p, 0),
		op(&p, '}'), pk_str(&p, "m"), pk_tensor(&p, &m_view), op(&p, 's'), op(&p, 's'),
		op(&p, 's');
	pk_str(&p, "ema"), op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &w_view), op(&p, 's');
	pk_str(&p, "neg"), pk_int(&p, -5);
	pk_str(&p, "cfg"), op(&p, '}'), pk_str(&p, "depth"), op(&p, ']'), op(&p, '('),
		pk_int(&p, 1), pk_int(&p, 2), op(&p, 'e'), op(&p, 's');
	op(&p, 'u');
	pk_end(&p);
	m = open_pickle(&p, &err);
	{
		static const char *const names[] = {"w"};
		expect_names(m, names, 1, "checkpoint with 'model'");
	}
	expect_meta(m, "epoch", "3");
	expect_meta(m, "lr", "0.001");
	expect_meta(m, "name", "run");
	expect_meta(m, "flag", "True");
	expect_meta(m, "none", "None");
	expect_meta(m, "big", "(an integer of 9 bytes)");
	expect_meta(m, "neg", "-5");
	expect_meta(m, "cfg.depth.0", "1");
	expect_meta(m, "cfg.depth.1", "2");
	expect_meta(m, "rankscope.state_dict", "model");
	expect_meta(m, "rankscope.skipped", "optimizer (1 tensor: optimizer state, not model "
	            "weights); ema (1 tensor: not the weights under 'model')");
	rs_model_close(m);
	free(p.b);
	ncases++;

	/* "state_dict" wins over "model"; a key holding no dict is passed over */
	pk_begin(&p, 2);
	op(&p, '}');
	op(&p, '(');
	pk_str(&p, "net"), pk_tensor(&p, &m_view);
	pk_str(&p, "model"), op(&p, '}'), pk_str(&p, "m"), pk_tensor(&p, &m_view), op(&p, 's');
	pk_str(&p, "state_dict"), op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &w_view), op(&p, 's');
	op(&p, 'u');
	pk_end(&p);
	m = open_pickle(&p, &err);
	{
		static const char *const names[] = {"w"};
		expect_names(m, names, 1, "state_dict before model");
	}
	expect_meta(m, "rankscope.state_dict", "state_dict");
	expect_meta(m, "rankscope.skipped", "net (1 tensor: not the weights under 'state_dict'); "
	            "model (1 tensor: not the weights under 'state_dict')");
	rs_model_close(m);
	free(p.b);
	ncases++;

	/* no weights key: every tensor by key path, list indices as numbers,
	 * int keys; the optimizer skipped all the same */
	pk_begin(&p, 2);
	op(&p, '}');
	op(&p, '(');
	pk_str(&p, "enc"), op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &w_view), op(&p, 's');
	pk_str(&p, "dec"), op(&p, ']'), op(&p, '('), pk_tensor(&p, &m_view), pk_tensor(&p, &w_view),
		op(&p, 0x85), op(&p, 'e');
	pk_int(&p, 7), pk_tensor(&p, &w_view);
	pk_str(&p, "optimizer_state_dict"), op(&p, '}'), pk_str(&p, "x"), pk_tensor(&p, &m_view),
		op(&p, 's');
	op(&p, 'u');
	pk_end(&p);
	m = open_pickle(&p, &err);
	{
		static const char *const names[] = {"enc.w", "dec.0", "dec.1.0", "7"};
		expect_names(m, names, 4, "key paths");
	}
	expect_meta(m, "rankscope.skipped", "optimizer_state_dict (1 tensor: optimizer state, not "
	            "model weights)");
	rs_model_close(m);
	free(p.b);
	ncases++;

	/* a bare tensor is named after the file */
	pk_begin(&p, 2);
	pk_tensor(&p, &w_view);
	pk_end(&p);
	m = open_pickle(&p, &err);
	{
		static const char *const names[] = {"t"};
		expect_names(m, names, 1, "a bare tensor");
	}
	rs_model_close(m);
	free(p.b);
	ncases++;

	/* protocol 2's NEWOBJ of an OrderedDict, BUILD with None, a key that
	 * names nothing holding no tensor, bytes and a dtype as metadata */
	pk_begin(&p, 2);
	pk_global(&p, "collections", "OrderedDict");
	op(&p, ')');
	op(&p, 0x81);
	op(&p, 'N');
	op(&p, 'b');
	op(&p, '(');
	pk_str(&p, "w"), pk_tensor(&p, &w_view);
	op(&p, 'N'), pk_int(&p, 1);
	pk_str(&p, "blob"), op(&p, 'C'), op(&p, 3), put(&p, "abc", 3);
	pk_str(&p, "dtype"), pk_global(&p, "torch", "float16");
	pk_str(&p, "long"), op(&p, 'X'), le(&p, 2000, 4);
	{
		char text[2000];
		memset(text, 'x', sizeof text);
		put(&p, text, sizeof text);
	}
	op(&p, 'u');
	pk_end(&p);
	m = open_pickle(&p, &err);
	CHECK(m != NULL, "NEWOBJ, BUILD None, odd keys: %s", err.msg);
	expect_meta(m, "blob", "(3 bytes)");
	expect_meta(m, "dtype", "torch.float16");
	if (m != NULL && rs_model_metadata(m, "long") != NULL) {
		const char *v = rs_model_metadata(m, "long");
		CHECK(strlen(v) < 1100 && strstr(v, "...") != NULL, "a long string is cut");
	}
	rs_model_close(m);
	free(p.b);
	ncases++;
}

/* ---- refusals ---------------------------------------------------------------------- */

/* A pickle "PROTO 2, BODY, STOP" as one case. */
static void
raw_case(const char *what, const char *body, size_t n, const char *problem)
{
	pk p;

	pk_begin(&p, 2);
	put(&p, body, n);
	pk_end(&p);
	expect_pickle_failure(what, &p, problem);
	free(p.b);
}

/* raw_case of a string literal, NULs included */
#define RAW(what, body, problem) raw_case((what), (body), sizeof(body) - 1, (problem))

static void
check_opcodes(void)
{
	static const struct { unsigned char op; const char *name; } refused[] = {
		{'I', "INT"}, {'L', "LONG"}, {'S', "STRING"}, {'T', "BINSTRING"},
		{'U', "SHORT_BINSTRING"}, {'V', "UNICODE"}, {'F', "FLOAT"}, {'d', "DICT"},
		{'l', "LIST"}, {'i', "INST"}, {'o', "OBJ"}, {'p', "PUT"}, {'g', "GET"},
		{'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'P', "PERSID"}, {0x82, "EXT1"},
		{0x83, "EXT2"}, {0x84, "EXT4"}, {0x8b, "LONG4"}, {0x8e, "BINBYTES8"},
		{0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
		{0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
	};
	size_t i;
	char want[64], body[2];

	for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		body[0] = '}';
		body[1] = (char)refused[i].op;
		snprintf(want, sizeof want, "opcode %s (", refused[i].name);
		raw_case(refused[i].name, body, 2, want);
	}
	RAW("not an opcode", "}\xff", "byte 0xff at offset 3 is not a pickle opcode");
	RAW("STOP on an empty stack", "", "STOP at byte 2 finds the stack empty");
	RAW("APPEND to a dict", "}K\x01" "a", "adds to a dict, not a list");
	RAW("SETITEM on a list", "]K\x01K\x02s", "adds to a list, not a dict");
	RAW("SETITEMS odd", "}(K\x01u", "odd number of values");
	RAW("SETITEMS without MARK", "}K\x01K\x02u", "has no MARK before it");
	RAW("APPEND beyond the mark", "](K\x01" "a", "finds the stack empty");
	RAW("BUILD on a list", "]}b", "sets the state of a list");
	RAW("REDUCE of a non-global", "})R", "calls a dict");
	RAW("REDUCE with a list", "ccollections\nOrderedDict\n]R", "passes a list");
	RAW("OrderedDict with arguments", "ccollections\nOrderedDict\nK\x01\x85R", "is called with arguments");
	RAW("NEWOBJ with arguments", "ccollections\nOrderedDict\nK\x01\x85\x81", "NEWOBJ at byte");
	RAW("storage class called", "ctorch\nFloatStorage\n)R", "calls torch.FloatStorage, which torch.save never does");
	RAW("memo put empty", "q\x00", "finds the stack empty");
	RAW("memo get unset", "}q\x00h\x01", "reads memo entry 1");
	RAW("long memo index", "}r\x00\x00\x01\x00", "memo index 65536 is out of range");
	RAW("invalid UTF-8", "X\x02\x00\x00\x00\xc3\x28", "not valid UTF-8");
	RAW("surrogate", "X\x03\x00\x00\x00\xed\xa0\x80", "not valid UTF-8");
	RAW("overlong", "X\x02\x00\x00\x00\xc0\x80", "not valid UTF-8");
	RAW("truncated BININT", "J\x01", "BININT at byte 2 needs 4 bytes");
	RAW("truncated LONG1", "\x8a\x05\x01", "LONG1 at byte 2 needs 5 bytes");
	RAW("GLOBAL without newline", "ctorch", "no end of line");
	RAW("STACK_GLOBAL of ints", "K\x01K\x02\x93", "takes two strings");
	RAW("huge frame", "\x95\xff\xff\xff\xff\x00\x00\x00\x00", "runs past the end");
	RAW("BINUNICODE8 huge", "\x8d\xff\xff\xff\xff\xff\xff\xff\xff", "declares");
	{
		/* deeper than the stack allows */
		char *deep = rs_xmalloc(70000);
		memset(deep, ']', 70000);
		raw_case("deep stack", deep, 70000, "values on the pickle stack");
		memset(deep, '(', 2000);
		raw_case("deep marks", deep, 2000, "open MARKs");
		free(deep);
	}
	ncases++;
}

static void
check_globals(void)
{
	static const struct { const char *module, *name, *why; } refused[] = {
		{"torch.nn.modules.linear", "Linear", "a pickled module, not a state_dict"},
		{"torch.nn.parallel.data_parallel", "DataParallel", "a pickled module"},
		{"__main__", "Net", "of the script that saved it"},
		{"__torch__.m", "M", "TorchScript"},
		{"torch.optim.adam", "Adam", "optimizer or scheduler object"},
		{"torch._utils", "_rebuild_qtensor", "quantized tensor"},
		{"torch._utils", "_rebuild_sparse_tensor", "sparse tensor"},
		{"torch._utils", "_rebuild_meta_tensor_no_storage", "meta device"},
		{"torch._tensor", "_rebuild_from_type_v2", "tensor subclass"},
		{"torch._utils", "_rebuild_device_tensor_from_numpy", "a kind of tensor"},
		{"torch", "ComplexDoubleStorage", "complex128"},
		{"torch", "QInt8Storage", "quantized tensor"},
		{"torch", "float8_e5m2fnuz", "a dtype rankscope does not read"},
		{"torch", "Size", "not a tensor, a storage or an OrderedDict"},
		{"numpy.core.multiarray", "_reconstruct", "a NumPy object"},
		{"os", "system", "a Python callable"},
		{"builtins", "eval", "a Python callable"},
		{"subprocess", "Popen", "a Python callable"},
		{"collections", "defaultdict", "not a tensor, a storage or an OrderedDict"},
	};
	size_t i;
	int proto;

	for (proto = 2; proto <= 4; proto += 2)
		for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
			pk p;
			char want[256];

			pk_begin(&p, proto);
			pk_global(&p, refused[i].module, refused[i].name);
			pk_end(&p);
			snprintf(want, sizeof want, "t.pt: data.pkl refers to %s.%s: ", refused[i].module,
			         refused[i].name);
			expect_pickle_failure(refused[i].name, &p, want);
			expect_pickle_failure(refused[i].name, &p, refused[i].why);
			free(p.b);
		}
	{
		/* a name with a control byte is escaped in the message */
		pk p;
		pk_begin(&p, 4);
		pk_str(&p, "os\x1b[2J");
		pk_str(&p, "system");
		op(&p, 0x93);
		pk_end(&p);
		expect_pickle_failure("escaped global", &p, "refers to os\\x1b[2J.system");
		free(p.b);
	}
}

/* One tensor "w" from `v` over storage "0" of 12 floats. */
static void
view_case(const char *what, const view *v, const char *problem)
{
	pk p;

	pk_begin(&p, 2);
	op(&p, '}');
	pk_str(&p, "w");
	pk_tensor(&p, v);
	op(&p, 's');
	pk_end(&p);
	expect_pickle_failure(what, &p, problem);
	free(p.b);
}

static void
check_views(void)
{
	view v;
	pk p;

	v = (view){"FloatStorage", "0", 12, 0, 2, {4, 4}, {4, 1}, NULL, false};
	view_case("past the storage", &v, "tensor 'w': size (4, 4) with stride (4, 1) from "
	          "offset 0 reaches element 16 of storage '0', which holds 12 of F32");
	v = (view){"FloatStorage", "0", 12, 9, 1, {4}, {1}, NULL, false};
	view_case("offset past the storage", &v, "reaches element 13");
	v = (view){"FloatStorage", "0", 12, 0, 2, {2, 2}, {SIZE_MAX / 2, 1}, NULL, false};
	view_case("stride overflow", &v, "reaches element");
	v = (view){"FloatStorage", "0", 20, 0, 1, {12}, {1}, NULL, false};
	view_case("numel lies", &v, "declares 20 elements of F32 (80 bytes) but its entry "
	          "'arc/data/0' holds 48 bytes");
	v = (view){"FloatStorage", "9", 12, 0, 1, {12}, {1}, NULL, false};
	view_case("no entry", &v, "its storage '9' has no entry 'arc/data/9'");
	v = (view){"FloatStorage", "0", 12, 0, 2, {1u << 20, 1u << 20}, {0, 0}, NULL, false};
	view_case("expanded past the copy limit", &v, "copying it in C order would take");
	v = (view){"FloatStorage", "0", 12, 0, 2, {SIZE_MAX / 2, 4}, {0, 0}, NULL, false};
	view_case("count overflow", &v, "element count of its size overflows");
	v = (view){"UntypedStorage", "0", 48, 0, 1, {12}, {1}, NULL, false};
	view_case("untyped without a dtype", &v, "untyped storage without a dtype");
	v = (view){"FloatStorage", "0", 12, 0, 1, {12}, {1}, "float16", false};
	view_case("v3 mismatching dtype", &v, "views a FloatStorage storage as float16");
	/* empty views need no bytes */
	{
		float w[12] = {0};
		member ms[1] = {{"data/0", w, sizeof w}};
		size_t len;
		unsigned char *b;
		rs_error err = {0};
		rs_model *m;

		v = (view){"FloatStorage", "0", 12, 40, 2, {0, 4}, {4, 1}, NULL, false};
		pk_begin(&p, 2);
		op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &v), op(&p, 's');
		pk_end(&p);
		b = torch_zip("empty.pt", "arc", &p, ms, 1, false, &len);
		m = parse(b, len, &err);
		CHECK(m != NULL && m->tensors[0].count == 0 && m->tensors[0].nbytes == 0,
		      "an empty view opens: %s", err.msg);
		rs_model_close(m);
		free(b);
		free(p.b);
		ncases++;
	}
	/* persistent ids that are not torch's */
	RAW("persid of an int", "K\x01Q", "is not torch's ('storage'");
	RAW("persid of another tag", "(X\x06\x00\x00\x00module))))tQ", "is not torch's");
	RAW("persid with a NUL in the key", "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x02\x00\x00\x00" "a\x00"
	         "X\x03\x00\x00\x00" "cpuK\x01tQ", "holding a NUL");
	RAW("persid with a negative size", "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
	         "X\x03\x00\x00\x00" "cpuJ\xff\xff\xff\xfftQ", "no non-negative size");
	RAW("persid naming a dtype", "(X\x07\x00\x00\x00storagectorch\nfloat32\nX\x01\x00\x00\x00" "0"
	         "X\x03\x00\x00\x00" "cpuK\x01tQ", "not a storage class");
	/* a second reference to one key with another type */
	{
		view a = {"FloatStorage", "0", 12, 0, 1, {12}, {1}, NULL, false};
		view b2 = {"DoubleStorage", "0", 6, 0, 1, {6}, {1}, NULL, false};
		pk_begin(&p, 2);
		op(&p, '}'), op(&p, '(');
		pk_str(&p, "a"), pk_tensor(&p, &a);
		pk_str(&p, "b"), pk_tensor(&p, &b2);
		op(&p, 'u');
		pk_end(&p);
		expect_pickle_failure("storage retyped", &p, "storage '0' is declared again");
		free(p.b);
	}
	/* two key paths giving one name */
	{
		view a = {"FloatStorage", "0", 12, 0, 1, {12}, {1}, NULL, false};
		pk_begin(&p, 2);
		op(&p, '}'), op(&p, '(');
		pk_str(&p, "a.b"), pk_tensor(&p, &a);
		pk_str(&p, "a"), op(&p, '}'), pk_str(&p, "b"), pk_tensor(&p, &a), op(&p, 's');
		op(&p, 'u');
		pk_end(&p);
		expect_pickle_failure("duplicate names", &p, "tensor 'a.b' appears twice");
		free(p.b);
	}
	/* a tuple key over a tensor */
	{
		view a = {"FloatStorage", "0", 12, 0, 1, {12}, {1}, NULL, false};
		pk_begin(&p, 2);
		op(&p, '}');
		pk_int(&p, 1), pk_int(&p, 2), op(&p, 0x86);
		pk_tensor(&p, &a);
		op(&p, 's');
		pk_end(&p);
		expect_pickle_failure("tuple key", &p, "holds tensors under a tuple key");
		free(p.b);
	}
	/* wrong argument counts and kinds */
	RAW("rebuild with 2 arguments", "ctorch._utils\n_rebuild_tensor_v2\nK\x01K\x02\x86R", "called with 2 arguments");
	RAW("rebuild from an int", "ctorch._utils\n_rebuild_tensor\n(K\x01K\x00))tR", "from an int, not a storage");
	RAW("parameter of an int", "ctorch._utils\n_rebuild_parameter\nK\x01\x89}\x87R", "is not given a tensor");
	RAW("no tensors", "}X\x01\x00\x00\x00" "aK\x01s", "holds no tensors (a dict)");
	RAW("no tensors, a list", "]", "holds no tensors (a list)");
	RAW("a TUPLE of nothing first", "(t", "holds no tensors (a tuple)");
	{
		/* 65 dimensions */
		view a = {"FloatStorage", "0", 12, 0, 0, {0}, {0}, NULL, false};
		size_t k;
		pk_begin(&p, 2);
		op(&p, '}'), pk_str(&p, "w");
		pk_global(&p, "torch._utils", "_rebuild_tensor_v2");
		op(&p, '('), op(&p, '('), pk_str(&p, "storage"), pk_global(&p, "torch", "FloatStorage");
		pk_str(&p, "0"), pk_str(&p, "cpu"), pk_int(&p, 12), op(&p, 't'), op(&p, 'Q');
		pk_int(&p, 0);
		for (k = 0; k < 2; k++) {
			size_t d;
			op(&p, '(');
			for (d = 0; d < 65; d++)
				pk_int(&p, 1);
			op(&p, 't');
		}
		op(&p, 0x89), op(&p, '}'), op(&p, 't'), op(&p, 'R'), op(&p, 's');
		pk_end(&p);
		expect_pickle_failure("65 dimensions", &p, "not a tuple of at most 64 sizes");
		free(p.b);
		(void)a;
	}
	{
		/* a size that is not an int */
		pk_begin(&p, 2);
		op(&p, '}'), pk_str(&p, "w");
		pk_global(&p, "torch._utils", "_rebuild_tensor_v2");
		op(&p, '('), op(&p, '('), pk_str(&p, "storage"), pk_global(&p, "torch", "FloatStorage");
		pk_str(&p, "0"), pk_str(&p, "cpu"), pk_int(&p, 12), op(&p, 't'), op(&p, 'Q');
		pk_int(&p, 0);
		pk_float(&p, 2.0), op(&p, 0x85);
		pk_int(&p, 1), op(&p, 0x85);
		op(&p, 0x89), op(&p, '}'), op(&p, 't'), op(&p, 'R'), op(&p, 's');
		pk_end(&p);
		expect_pickle_failure("a float size", &p, "size[0] is not a non-negative integer");
		free(p.b);
	}
}

/* Rules of the archive around data.pkl. */
static void
check_archive(void)
{
	float w[12] = {0};
	pk p;
	size_t len;
	unsigned char *b;

	pk_begin(&p, 2);
	op(&p, '}'), pk_str(&p, "w"), pk_tensor(&p, &(view){"FloatStorage", "0", 12, 0, 1, {12},
	                                                   {1}, NULL, false}), op(&p, 's');
	pk_end(&p);
	{
		member ms[2] = {{"data/0", w, sizeof w}, {"byteorder", "big", 3}};
		b = torch_zip("big.pt", "arc", &p, ms, 2, false, &len);
		expect_failure("big-endian", b, len, "a big-endian checkpoint (byteorder 'big')");
		free(b);
		ms[1].data = "little\n", ms[1].len = 7;
		b = torch_zip("little.pt", "arc", &p, ms, 2, false, &len);
		{
			rs_error err = {0};
			rs_model *m = parse(b, len, &err);
			CHECK(m != NULL, "byteorder little opens: %s", err.msg);
			rs_model_close(m);
		}
		free(b);
		ms[1].data = "middle", ms[1].len = 6;
		b = torch_zip("middle.pt", "arc", &p, ms, 2, false, &len);
		expect_failure("byteorder middle", b, len, "byteorder 'middle' is neither");
		free(b);
	}
	{
		member ms[2] = {{"data/0", w, sizeof w}, {"constants.pkl", "", 0}};
		b = torch_zip("script.pt", "arc", &p, ms, 2, false, &len);
		expect_failure("TorchScript", b, len, "a TorchScript archive");
		free(b);
	}
	{
		member ms[1] = {{"data/0", w, sizeof w}};
		b = torch_zip("deep.pt", "a/b", &p, ms, 1, false, &len);
		expect_failure("data.pkl two folders down", b, len, "no data.pkl in a top-level folder");
		free(b);
	}
	free(p.b);
	/* a version that is not a number */
	{
		char *path = rs_xasprintf("%s/ver.pt", dir);
		int zerr;
		zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
		pk q;

		pk_begin(&q, 2);
		pk_tensor(&q, &(view){"FloatStorage", "0", 12, 0, 1, {12}, {1}, NULL, false});
		pk_end(&q);
		zip_file_add(z, "v/data.pkl", zip_source_buffer(z, q.b, q.n, 0), 0);
		zip_file_add(z, "v/data/0", zip_source_buffer(z, w, sizeof w, 0), 0);
		zip_file_add(z, "v/version", zip_source_buffer(z, "three", 5, 0), 0);
		if (zip_close(z) != 0)
			abort();
		b = read_file(path, &len);
		expect_failure("version not a number", b, len, "version 'three' is not a number");
		free(b);
		free(q.b);
		free(path);
	}
	/* a deflated storage entry declaring a size deflate cannot reach */
	{
		size_t i;
		b = state_dict_zip(2, true, &len);
		for (i = 0; i + 46 <= len; i++)
			if (memcmp(b + i, "PK\1\2", 4) == 0 && memcmp(b + i + 46, "sd/data/1", 9) == 0) {
				uint32_t v = 4000000000u;
				size_t at = i + 24, lho = (size_t)rs_read_le(b + i + 42, 4);
				memcpy(b + at, &v, 4);
				memcpy(b + lho + 22, &v, 4);
			}
		expect_failure("zip bomb ratio", b, len, NULL);
		free(b);
	}
}

/* Every cut of a valid image, and random damage: refused or consistent. */
static void
check_damage(void)
{
	size_t len, cut, i, k;
	unsigned char *b = state_dict_zip(2, false, &len);
	rs_error err = {0};
	rs_model *m;

	for (cut = 0; cut < len; cut++)
		expect_failure("truncated", b, cut, NULL);
	test_seed(17);
	for (i = 0; i < 3000; i++) {
		unsigned char *c = rs_xmalloc(len);

		memcpy(c, b, len);
		for (k = 0; k < 3; k++)
			c[(size_t)(test_uniform() * (double)len)] ^= (unsigned char)(1 + test_uniform() * 255);
		m = parse(c, len, &err);
		if (m == NULL)
			CHECK(err.code == RS_EFORMAT || err.code == RS_ENOMEM, "damaged: code %d (%s)",
			      err.code, err.msg);
		else
			for (k = 0; k < m->ntensors; k++)
				CHECK(m->tensors[k].data != NULL || m->tensors[k].nbytes == 0, "data set");
		rs_model_close(m);
		free(c);
	}
	ncases += 3000;
	free(b);
}

int
main(void)
{
	dir = test_tmpdir();
	check_state_dict();
	check_open_file();
	check_v3();
	check_checkpoints();
	check_opcodes();
	check_globals();
	check_views();
	check_archive();
	check_damage();
	free(dir);
	printf("test-torch: %d cases\n", ncases);
	return test_done("test-torch");
}
