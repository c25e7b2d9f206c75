/*
 * test-onnx.c — the ONNX reader (io-onnx.c) on models encoded here, field
 * by field, by a protobuf writer of the test's own (the real writer,
 * onnx.save, is exercised by cli-onnx.sh): every dtype from raw_data and
 * from its typed field; raw_data mapped in place, not copied; the header
 * digest blind to payloads; external data (one map per file, the path
 * rules, lying offsets and lengths, a FIFO); the role, layout and groups
 * each op gives, through Identity, Cast, DequantizeLinear and Transpose,
 * names a subgraph gives not leaking out; the graph's order; one refusal
 * per rule; truncation at every offset and random corruption (no crash,
 * and a model that opens is consistent).  Run under ASan by CI.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

/* ---- a protobuf writer ---------------------------------------------------------- */

typedef struct pb {
	unsigned char *b;
	size_t n, cap;
} pb;

static void
pb_raw(pb *p, const void *d, size_t n)
{
	if (p->n + n > p->cap) {
		p->cap = (p->n + n) * 2 + 64;
		p->b = rs_xrealloc(p->b, p->cap);
	}
	if (n)
		memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void
pb_varint(pb *p, uint64_t v)
{
	unsigned char c;

	while (v >= 0x80) {
		c = (unsigned char)(v | 0x80);
		pb_raw(p, &c, 1);
		v >>= 7;
	}
	c = (unsigned char)v;
	pb_raw(p, &c, 1);
}

static void
pb_int(pb *p, unsigned field, uint64_t v)
{
	pb_varint(p, (uint64_t)field << 3);
	pb_varint(p, v);
}

static void
pb_bytes(pb *p, unsigned field, const void *d, size_t n)
{
	pb_varint(p, (uint64_t)field << 3 | 2);
	pb_varint(p, n);
	pb_raw(p, d, n);
}

static void
pb_str(pb *p, unsigned field, const char *s)
{
	pb_bytes(p, field, s, strlen(s));
}

/* sub as a length-delimited field of p; sub is consumed */
static void
pb_msg(pb *p, unsigned field, pb *sub)
{
	pb_bytes(p, field, sub->b, sub->n);
	free(sub->b);
	*sub = (pb){0};
}

/* ONNX field numbers */
enum {
	T_DIMS = 1, T_TYPE = 2, T_SEGMENT = 3, T_FLOAT = 4, T_INT32 = 5, T_INT64 = 7,
	T_NAME = 8, T_RAW = 9, T_DOUBLE = 10, T_UINT64 = 11, T_EXT = 13, T_LOCATION = 14,
	N_INPUT = 1, N_OUTPUT = 2, N_NAME = 3, N_OP = 4, N_ATTR = 5, N_DOMAIN = 7,
	A_NAME = 1, A_I = 3, A_T = 5, A_G = 6, A_INTS = 8, A_GRAPHS = 11, A_TYPE = 20,
	G_NODE = 1, G_NAME = 2, G_INIT = 5, G_SPARSE = 15,
	M_IR = 1, M_PRODUCER = 2, M_GRAPH = 7, M_OPSET = 8, M_PROPS = 14,
};

static pb
tensor(const char *name, int dtype, const int64_t *dims, size_t nd)
{
	pb t = {0};
	size_t i;

	for (i = 0; i < nd; i++)
		pb_int(&t, T_DIMS, (uint64_t)dims[i]);
	if (dtype >= 0)
		pb_int(&t, T_TYPE, (uint64_t)dtype);
	if (name != NULL)
		pb_str(&t, T_NAME, name);
	return t;
}

/* a FLOAT tensor in raw_data holding 0, 1, 2, ... */
static pb
f32_tensor(const char *name, int64_t r, int64_t c)
{
	int64_t dims[2] = {r, c};
	pb t = tensor(name, 1, dims, c ? 2 : 1);
	size_t n = (size_t)(r * (c ? c : 1)), i;
	float *v = rs_xcalloc(n + 1, sizeof *v);

	for (i = 0; i < n; i++)
		v[i] = (float)i;
	pb_bytes(&t, T_RAW, v, n * sizeof *v);
	free(v);
	return t;
}

static pb
attr_int(const char *name, int64_t v)
{
	pb a = {0};

	pb_str(&a, A_NAME, name);
	pb_int(&a, A_I, (uint64_t)v);
	pb_int(&a, A_TYPE, 2);
	return a;
}

static pb
attr_ints(const char *name, const int64_t *v, size_t n)
{
	pb a = {0};
	size_t i;

	pb_str(&a, A_NAME, name);
	for (i = 0; i < n; i++)
		pb_int(&a, A_INTS, (uint64_t)v[i]);
	pb_int(&a, A_TYPE, 7);
	return a;
}

static pb
attr_graph(const char *name, pb *g)
{
	pb a = {0};

	pb_str(&a, A_NAME, name);
	pb_msg(&a, A_G, g);
	pb_int(&a, A_TYPE, 5);
	return a;
}

static pb
attr_tensor(const char *name, pb *t)
{
	pb a = {0};

	pb_str(&a, A_NAME, name);
	pb_msg(&a, A_T, t);
	pb_int(&a, A_TYPE, 4);
	return a;
}

/* op(in...) -> out..., names "a,b" split on commas; attrs consumed */
static void
add_node(pb *g, const char *op, const char *name, const char *ins, const char *outs,
         pb *attrs, size_t nattrs)
{
	pb n = {0};
	const char *lists[2] = {ins, outs};
	size_t k, i;

	for (k = 0; k < 2; k++) {
		const char *s = lists[k];
		while (s != NULL && *s != '\0') {
			size_t len = strcspn(s, ",");
			pb_bytes(&n, k == 0 ? N_INPUT : N_OUTPUT, s, len);
			s += len + (s[len] == ',');
		}
	}
	if (name != NULL)
		pb_str(&n, N_NAME, name);
	pb_str(&n, N_OP, op);
	for (i = 0; i < nattrs; i++)
		pb_msg(&n, N_ATTR, &attrs[i]);
	pb_msg(g, G_NODE, &n);
}

static void
add_init(pb *g, pb *t)
{
	pb_msg(g, G_INIT, t);
}

/* ModelProto { ir_version 8, producer, graph, opset 17 } */
static pb
make_model(pb *g)
{
	pb m = {0}, op = {0};

	pb_int(&m, M_IR, 8);
	pb_str(&m, M_PRODUCER, "test-onnx");
	pb_str(g, G_NAME, "g");
	pb_msg(&m, M_GRAPH, g);
	pb_int(&op, 2, 17);
	pb_msg(&m, M_OPSET, &op);
	return m;
}

static rs_model *
parse(const char *path, const pb *m, rs_error *err)
{
	return rs_onnx_parse(path, m->b, m->n, err);
}

static const rs_tensor *
find(const rs_model *m, const char *name)
{
	const rs_tensor *t = m ? rs_model_find(m, name) : NULL;

	CHECK(t != NULL, "tensor '%s' present", name);
	return t;
}

static void
expect_refusal(const char *what, const pb *m, const char *path, const char *problem)
{
	rs_error err = {0};
	rs_model *model = parse(path, m, &err);

	CHECK(model == NULL, "%s: accepted", what);
	if (model == NULL) {
		CHECK(err.code == RS_EFORMAT || err.code == RS_EIO, "%s: code %d (%s)", what,
		      err.code, err.msg);
		CHECK_CONTAINS(err.msg, path);
		CHECK_CONTAINS(err.msg, problem);
	}
	rs_model_close(model);
}

/* A one-initializer model; t consumed. */
static pb
one_tensor_model(pb *t)
{
	pb g = {0};

	add_init(&g, t);
	return make_model(&g);
}

/* ---- dtypes ------------------------------------------------------------------- */

static void
check_dtypes(void)
{
	static const struct {
		int code;
		rs_dtype dtype;
		unsigned field;      /* typed field number */
	} types[] = {
		{1, RS_DTYPE_F32, T_FLOAT}, {2, RS_DTYPE_U8, T_INT32}, {3, RS_DTYPE_I8, T_INT32},
		{4, RS_DTYPE_U16, T_INT32}, {5, RS_DTYPE_I16, T_INT32}, {6, RS_DTYPE_I32, T_INT32},
		{7, RS_DTYPE_I64, T_INT64}, {9, RS_DTYPE_BOOL, T_INT32}, {10, RS_DTYPE_F16, T_INT32},
		{11, RS_DTYPE_F64, T_DOUBLE}, {12, RS_DTYPE_U32, T_UINT64},
		{13, RS_DTYPE_U64, T_UINT64}, {14, RS_DTYPE_C64, T_FLOAT},
		{16, RS_DTYPE_BF16, T_INT32}, {17, RS_DTYPE_F8_E4M3, T_INT32},
		{19, RS_DTYPE_F8_E5M2, T_INT32},
	};
	int64_t dims[2] = {2, 3};
	size_t i, k;

	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t esize = rs_dtype_get(types[i].dtype)->bits / 8, n = 6;
		unsigned char want[6 * 8];
		pb t, vals = {0}, m;
		rs_error err;
		rs_model *model;

		/* element k: bytes of the value k + 1 in the dtype's width (the
		 * same bit pattern the typed field carries) */
		memset(want, 0, sizeof want);
		for (k = 0; k < n; k++) {
			if (types[i].field == T_FLOAT) {
				float f[2] = {(float)(k + 1), -(float)(k + 1)};
				memcpy(want + k * esize, f, esize);
				pb_raw(&vals, f, esize);
			} else if (types[i].field == T_DOUBLE) {
				double x = (double)(k + 1);
				memcpy(want + k * esize, &x, 8);
				pb_raw(&vals, &x, 8);
			} else {
				uint64_t x = types[i].code == 9 ? k % 2 : k + 1 + (esize > 1 ? 0x100 : 0);
				memcpy(want + k * esize, &x, esize);
				pb_varint(&vals, x);
			}
		}
		/* typed field, packed */
		t = tensor("w", types[i].code, dims, 2);
		pb_bytes(&t, types[i].field, vals.b, vals.n);
		m = one_tensor_model(&t);
		model = parse("types.onnx", &m, &err);
		CHECK(model != NULL, "type %d from its typed field: %s", types[i].code,
		      model ? "" : err.msg);
		if (model) {
			const rs_tensor *w = &model->tensors[0];
			CHECK(w->dtype == types[i].dtype && w->count == 6 && w->nbytes == 6 * esize,
			      "type %d: dtype and size", types[i].code);
			CHECK(memcmp(w->data, want, 6 * esize) == 0, "type %d: typed values",
			      types[i].code);
			CHECK(w->data < m.b || w->data >= m.b + m.n, "type %d: converted, not "
			      "in the image", types[i].code);
		}
		rs_model_close(model);
		free(m.b);
		/* raw_data: mapped in place */
		t = tensor("w", types[i].code, dims, 2);
		pb_bytes(&t, T_RAW, want, 6 * esize);
		m = one_tensor_model(&t);
		model = parse("types.onnx", &m, &err);
		CHECK(model != NULL, "type %d from raw_data: %s", types[i].code,
		      model ? "" : err.msg);
		if (model) {
			const rs_tensor *w = &model->tensors[0];
			CHECK(w->data >= m.b && w->data + w->nbytes <= m.b + m.n &&
			      memcmp(w->data, want, 6 * esize) == 0 &&
			      w->offset == (uint64_t)(w->data - m.b), "type %d: raw_data in place",
			      types[i].code);
		}
		rs_model_close(model);
		free(m.b);
		free(vals.b);
	}
}

/* The types not read are skipped with a note; the model still opens. */
static void
check_skipped(void)
{
	int64_t dims[1] = {2};
	pb g = {0}, t, m, sp = {0}, vals;
	rs_error err;
	rs_model *model;

	t = tensor("labels", 8, dims, 1);
	pb_str(&t, 6, "a");
	pb_str(&t, 6, "b");
	add_init(&g, &t);
	t = tensor("z", 15, dims, 1);
	pb_bytes(&t, T_RAW, "0123456789abcdef0123456789abcdef", 32);
	add_init(&g, &t);
	t = tensor("future", 99, dims, 1);
	add_init(&g, &t);
	t = tensor("seg", 1, dims, 1);
	{
		pb s = {0};
		pb_int(&s, 1, 0);
		pb_int(&s, 2, 2);
		pb_msg(&t, T_SEGMENT, &s);
	}
	add_init(&g, &t);
	vals = f32_tensor("sparse", 2, 0);
	pb_msg(&sp, 1, &vals);
	pb_msg(&g, G_SPARSE, &sp);
	t = f32_tensor("kept", 2, 2);
	add_init(&g, &t);
	m = make_model(&g);
	model = parse("skip.onnx", &m, &err);
	CHECK(model != NULL, "skipped types: %s", model ? "" : err.msg);
	if (model) {
		CHECK(model->ntensors == 1 && strcmp(model->tensors[0].name, "kept") == 0,
		      "only the numeric tensor is a tensor");
		CHECK_CONTAINS(rs_model_metadata(model, "skipped.labels"), "STRING");
		CHECK_CONTAINS(rs_model_metadata(model, "skipped.z"), "COMPLEX128");
		CHECK_CONTAINS(rs_model_metadata(model, "skipped.future"), "data type 99");
		CHECK_CONTAINS(rs_model_metadata(model, "skipped.seg"), "segments");
		CHECK_CONTAINS(rs_model_metadata(model, "skipped.sparse"), "sparse_initializer");
		CHECK_CONTAINS(rs_model_metadata(model, "producer_name"), "test-onnx");
		CHECK_CONTAINS(rs_model_metadata(model, "opset_import"), "ai.onnx 17");
		CHECK_CONTAINS(rs_model_metadata(model, "ir_version"), "8");
		CHECK_CONTAINS(rs_model_metadata(model, "graph_name"), "g");
		CHECK(strcmp(model->format, "onnx") == 0 && model->network_order, "format");
	}
	rs_model_close(model);
	free(m.b);
}

/* ---- payloads and the header digest ------------------------------------------- */

static void
check_payloads(void)
{
	pb t, m1, m2, m3;
	rs_error err;
	rs_model *a, *b, *c;
	int64_t one = 1;
	float x = 7.5f;

	/* a raw_data exactly as long as a ticket is still its own bytes */
	t = tensor("w4", 1, &one, 1);
	pb_bytes(&t, T_RAW, &x, 4);
	m1 = one_tensor_model(&t);
	a = parse("p.onnx", &m1, &err);
	CHECK(a != NULL && a->tensors[0].nbytes == 4 && memcmp(a->tensors[0].data, &x, 4) == 0,
	      "a 4-byte raw_data: %s", a ? "" : err.msg);
	/* same structure, other payload: same header digest; other shape: not */
	t = f32_tensor("w", 3, 4);
	m2 = one_tensor_model(&t);
	m3 = (pb){0};
	pb_raw(&m3, m2.b, m2.n);
	m3.b[m3.n - 20] ^= 0x55;   /* inside the payload's floats */
	b = parse("p.onnx", &m2, &err);
	c = parse("p.onnx", &m3, &err);
	CHECK(b != NULL && c != NULL, "payload models open");
	if (b && c) {
		CHECK(memcmp(b->header_sha256, c->header_sha256, RS_SHA256_LEN) == 0,
		      "the header digest leaves payloads out");
		CHECK(b->header_len < m2.n - 40, "header_len %llu excludes the 48 payload bytes",
		      (unsigned long long)b->header_len);
		CHECK(memcmp(b->tensors[0].data, c->tensors[0].data, 48) != 0, "payloads differ");
	}
	if (a && b)
		CHECK(memcmp(a->header_sha256, b->header_sha256, RS_SHA256_LEN) != 0,
		      "different structures, different digests");
	rs_model_close(a);
	rs_model_close(b);
	rs_model_close(c);
	free(m1.b);
	free(m2.b);
	free(m3.b);
}

/* ---- external data --------------------------------------------------------------- */

static pb
external(const char *name, int64_t r, int64_t c, const char *loc, const char *off,
         const char *len)
{
	int64_t dims[2] = {r, c};
	pb t = tensor(name, 1, dims, 2), e;
	const char *keys[3] = {"location", "offset", "length"}, *vals[3] = {loc, off, len};
	size_t k;

	for (k = 0; k < 3; k++) {
		if (vals[k] == NULL)
			continue;
		e = (pb){0};
		pb_str(&e, 1, keys[k]);
		pb_str(&e, 2, vals[k]);
		pb_msg(&t, T_EXT, &e);
	}
	pb_int(&t, T_LOCATION, 1);
	return t;
}

static void
check_external(void)
{
	char *dir = test_tmpdir(), *path, *p;
	float w[64];
	pb g = {0}, t, m;
	rs_error err;
	rs_model *model;
	size_t i;

	for (i = 0; i < 64; i++)
		w[i] = (float)i;
	p = rs_xasprintf("%s/w.bin", dir);
	test_write_file(p, w, sizeof w);
	free(p);
	p = rs_xasprintf("%s/sub", dir);
	CHECK(mkdir(p, 0700) == 0, "mkdir sub");
	free(p);
	p = rs_xasprintf("%s/sub/tail.bin", dir);
	test_write_file(p, w, 24);
	free(p);
	p = rs_xasprintf("%s/fifo", dir);
	CHECK(mkfifo(p, 0600) == 0, "mkfifo");
	free(p);
	path = rs_xasprintf("%s/m.onnx", dir);

	t = external("a", 2, 4, "w.bin", "0", "32");
	add_init(&g, &t);
	t = external("b", 4, 4, "./w.bin", "64", "64");
	add_init(&g, &t);
	t = external("c", 2, 3, "sub/tail.bin", NULL, NULL);   /* to the end */
	add_init(&g, &t);
	t = external("d", 1, 8, "w.bin", "224", NULL);
	add_init(&g, &t);
	m = make_model(&g);
	model = parse(path, &m, &err);
	CHECK(model != NULL, "external data: %s", model ? "" : err.msg);
	if (model) {
		const rs_tensor *a = find(model, "a"), *b = find(model, "b"),
		                *c = find(model, "c"), *d = find(model, "d");
		float x;
		CHECK(model->nmaps == 2, "two files, two maps (w.bin under two spellings): %zu",
		      model->nmaps);
		if (a && b && c && d) {
			memcpy(&x, b->data, 4);
			CHECK(x == 16.0f && b->offset == 64, "b at offset 64");
			CHECK(b->data == a->data + 64, "a and b in one map");
			memcpy(&x, c->data + 20, 4);
			CHECK(x == 5.0f, "c: the whole tail file");
			memcpy(&x, d->data + 28, 4);
			CHECK(x == 63.0f, "d: to the end of w.bin");
		}
	}
	rs_model_close(model);
	free(m.b);

	{
		static const struct {
			const char *loc, *off, *len, *problem;
		} bad[] = {
			{"../w.bin", NULL, "32", "leaves the model's directory"},
			{"sub/../../w.bin", NULL, "32", "leaves the model's directory"},
			{"/etc/passwd", NULL, "32", "is an absolute path"},
			{"", NULL, "32", "external data without a location"},
			{"nope.bin", NULL, "32", "cannot open"},
			{"sub", NULL, "32", "is not a regular file"},
			{"fifo", NULL, "32", "is not a regular file"},
			{"w.bin", "250", "32", "offset 250 + length 32 runs past the end"},
			{"w.bin", "300", NULL, "offset 300 is past the end"},
			{"w.bin", "0", "28", "external data holds 28 bytes but its shape needs 32"},
			{"w.bin", "8", NULL, "external data holds 248 bytes but its shape needs 32"},
			{"w.bin", "0x10", "32", "offset is not a byte count"},
			{"w.bin", "0", "-32", "length is not a byte count"},
			{"w.bin", "0", "99999999999999999999999", "length is not a byte count"},
		};
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			pb g2 = {0};
			t = external("e", 2, 4, bad[i].loc, bad[i].off, bad[i].len);
			add_init(&g2, &t);
			m = make_model(&g2);
			expect_refusal(bad[i].problem, &m, path, bad[i].problem);
			free(m.b);
		}
	}
	/* EXTERNAL with data of its own; external_data without EXTERNAL */
	t = external("e", 1, 1, "w.bin", "0", "4");
	pb_bytes(&t, T_RAW, "abcd", 4);
	m = one_tensor_model(&t);
	expect_refusal("external + raw", &m, path, "also holds data of its own");
	free(m.b);
	{
		int64_t dims[1] = {1};
		pb e = {0};
		t = tensor("e", 1, dims, 1);
		pb_str(&e, 1, "location");
		pb_str(&e, 2, "w.bin");
		pb_msg(&t, T_EXT, &e);
		m = one_tensor_model(&t);
		expect_refusal("external_data, DEFAULT", &m, path, "data_location is not EXTERNAL");
		free(m.b);
	}
	free(path);
	free(dir);
}

/* ---- roles and order ------------------------------------------------------------------ */

typedef struct expect_role {
	const char *name;
	rs_tensor_role role;
	rs_tensor_layout layout;
	size_t groups;
} expect_role;

static void
check_roles(const rs_model *model, const expect_role *e, size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const rs_tensor *t = find(model, e[i].name);
		if (t == NULL)
			continue;
		CHECK(t->role == e[i].role && t->layout == e[i].layout && t->groups == e[i].groups,
		      "%s: %s is %s %s groups %zu, expected %s %s groups %zu", what, e[i].name,
		      rs_tensor_role_name(t->role), rs_tensor_layout_name(t->layout), t->groups,
		      rs_tensor_role_name(e[i].role), rs_tensor_layout_name(e[i].layout),
		      e[i].groups);
	}
}

static void
check_graph_roles(void)
{
	const rs_tensor_layout OI = RS_LAYOUT_OUT_IN, IO = RS_LAYOUT_IN_OUT;
	static const char *const order[] = {
		"mm.right", "mm.left", "gemm.b", "gemm.bt", "gemm.a", "gemm.at", "gemm.c",
		"conv", "conv.b", "dw", "bad.group", "convt", "emb", "gather.axis1", "tr.none",
		"tr.10", "tr.01", "tr.other", "chain", "deq", "deq.scale", "custom", "twice",
		"sub.w", "shadow", "outer", "unused.b", "unused.a",
	};
	const expect_role roles[] = {
		{"mm.right", RS_ROLE_LINEAR, IO, 0}, {"mm.left", RS_ROLE_LINEAR, OI, 0},
		{"gemm.b", RS_ROLE_LINEAR, IO, 0}, {"gemm.bt", RS_ROLE_LINEAR, OI, 0},
		{"gemm.a", RS_ROLE_LINEAR, OI, 0}, {"gemm.at", RS_ROLE_LINEAR, IO, 0},
		{"gemm.c", RS_ROLE_OTHER, OI, 0}, {"conv", RS_ROLE_CONV, OI, 1},
		{"conv.b", RS_ROLE_OTHER, OI, 0}, {"dw", RS_ROLE_CONV, OI, 4},
		{"bad.group", RS_ROLE_CONV, OI, 0}, {"convt", RS_ROLE_CONV, IO, 2},
		{"emb", RS_ROLE_EMBEDDING, OI, 0}, {"gather.axis1", RS_ROLE_OTHER, OI, 0},
		{"tr.none", RS_ROLE_LINEAR, OI, 0}, {"tr.10", RS_ROLE_LINEAR, OI, 0},
		{"tr.01", RS_ROLE_LINEAR, IO, 0}, {"tr.other", RS_ROLE_OTHER, OI, 0},
		{"chain", RS_ROLE_LINEAR, OI, 0}, {"deq", RS_ROLE_LINEAR, IO, 0},
		{"deq.scale", RS_ROLE_OTHER, OI, 0}, {"custom", RS_ROLE_OTHER, OI, 0},
		{"twice", RS_ROLE_LINEAR, IO, 0}, {"sub.w", RS_ROLE_LINEAR, IO, 0},
		{"outer", RS_ROLE_LINEAR, IO, 0}, {"shadow", RS_ROLE_OTHER, OI, 0},
	};
	int64_t perm10[2] = {1, 0}, perm01[2] = {0, 1}, perm3[2] = {1, 1};
	pb g = {0}, t, a[2], m, sub = {0}, sub2 = {0};
	rs_error err;
	rs_model *model;
	size_t i;

	/* definition order differs from use order on purpose */
	t = f32_tensor("unused.a", 2, 2), add_init(&g, &t);
	for (i = 0; i < sizeof order / sizeof order[0]; i++) {
		const char *n = order[i];
		if (strcmp(n, "unused.a") == 0 || strcmp(n, "sub.w") == 0)
			continue;
		if (strcmp(n, "conv") == 0 || strcmp(n, "dw") == 0 || strcmp(n, "convt") == 0 ||
		    strcmp(n, "bad.group") == 0) {
			int64_t dims[4] = {4, strcmp(n, "conv") == 0 ? 3 : 1, 3, 3};
			pb k = tensor(n, 1, dims, 4);
			float v[36 * 3] = {0};
			pb_bytes(&k, T_RAW, v, (size_t)(dims[0] * dims[1] * 9) * 4);
			add_init(&g, &k);
			continue;
		}
		t = f32_tensor(n, 4, 4);
		add_init(&g, &t);
	}
	add_node(&g, "MatMul", "mm_r", "X,mm.right", "y1", NULL, 0);
	add_node(&g, "MatMul", "mm_l", "mm.left,X", "y2", NULL, 0);
	add_node(&g, "Gemm", "gemm_b", "X,gemm.b", "y3", NULL, 0);
	a[0] = attr_int("transB", 1);
	add_node(&g, "Gemm", "gemm_bt", "X,gemm.bt", "y4", a, 1);
	add_node(&g, "Gemm", "gemm_a", "gemm.a,X", "y5", NULL, 0);
	a[0] = attr_int("transA", 1);
	add_node(&g, "Gemm", "gemm_at", "gemm.at,X,gemm.c", "y6", a, 1);
	add_node(&g, "Conv", "conv", "img,conv,conv.b", "c1", NULL, 0);
	a[0] = attr_int("group", 4);
	add_node(&g, "Conv", "dw", "c1,dw", "c2", a, 1);
	a[0] = attr_int("group", 3);
	add_node(&g, "Conv", NULL, "c2,bad.group", "c3", a, 1);
	a[0] = attr_int("group", 2);
	add_node(&g, "ConvTranspose", "convt", "c3,convt", "c4", a, 1);
	add_node(&g, "Gather", "emb", "emb,ids", "e", NULL, 0);
	a[0] = attr_int("axis", 1);
	add_node(&g, "Gather", "g1", "gather.axis1,ids", "e1", a, 1);
	add_node(&g, "Transpose", "t0", "tr.none", "tn", NULL, 0);
	add_node(&g, "MatMul", "t0mm", "X,tn", "z0", NULL, 0);
	a[0] = attr_ints("perm", perm10, 2);
	add_node(&g, "Transpose", "t1", "tr.10", "t10", a, 1);
	add_node(&g, "MatMul", "t1mm", "X,t10", "z1", NULL, 0);
	a[0] = attr_ints("perm", perm01, 2);
	add_node(&g, "Transpose", "t2", "tr.01", "t01", a, 1);
	add_node(&g, "MatMul", "t2mm", "X,t01", "z2", NULL, 0);
	a[0] = attr_ints("perm", perm3, 2);
	add_node(&g, "Transpose", "t3", "tr.other", "t11", a, 1);
	add_node(&g, "MatMul", "t3mm", "X,t11", "z3", NULL, 0);
	/* Identity, then Cast, then a transpose: one flip */
	add_node(&g, "Identity", NULL, "chain", "ch1", NULL, 0);
	add_node(&g, "Cast", NULL, "ch1", "ch2", NULL, 0);
	add_node(&g, "Transpose", NULL, "ch2", "ch3", NULL, 0);
	add_node(&g, "MatMul", "chmm", "X,ch3", "z4", NULL, 0);
	add_node(&g, "DequantizeLinear", "dq", "deq,deq.scale", "dqo", NULL, 0);
	add_node(&g, "MatMul", "dqmm", "X,dqo", "z5", NULL, 0);
	{
		pb n = {0};
		pb_str(&n, N_INPUT, "X");
		pb_str(&n, N_INPUT, "custom");
		pb_str(&n, N_OUTPUT, "z6");
		pb_str(&n, N_OP, "MatMul");
		pb_str(&n, N_DOMAIN, "com.example");
		pb_msg(&g, G_NODE, &n);
	}
	add_node(&g, "MatMul", "tw1", "X,twice", "z7", NULL, 0);
	add_node(&g, "Add", "tw2", "twice,X", "z8", NULL, 0);
	/* If: a branch with its own weight and an alias of an outer one; the
	 * other branch reuses the alias name for a non-weight */
	t = f32_tensor("sub.w", 4, 4);
	add_init(&sub, &t);
	add_node(&sub, "MatMul", "sub_mm", "X,sub.w", "s1", NULL, 0);
	add_node(&sub, "Identity", "sub_id", "shadow", "alias", NULL, 0);
	add_node(&sub, "Relu", "sub_relu", "alias", "s2", NULL, 0);
	add_node(&sub2, "Relu", "sub2_relu", "X", "alias", NULL, 0);
	add_node(&sub2, "MatMul", "sub2_mm", "X,alias", "s3", NULL, 0);
	add_node(&sub2, "MatMul", "sub2_outer", "X,outer", "s4", NULL, 0);
	a[0] = attr_graph("then_branch", &sub);
	a[1] = attr_graph("else_branch", &sub2);
	add_node(&g, "If", "branch", "cond", "yif", a, 2);
	add_node(&g, "Relu", NULL, "unused.b", "r", NULL, 0);   /* consumed: not unused */
	m = make_model(&g);

	model = parse("roles.onnx", &m, &err);
	CHECK(model != NULL, "roles: %s", model ? "" : err.msg);
	if (model) {
		check_roles(model, roles, sizeof roles / sizeof roles[0], "roles");
		CHECK(model->ntensors == sizeof order / sizeof order[0], "%zu tensors",
		      model->ntensors);
		for (i = 0; i < model->ntensors && i < sizeof order / sizeof order[0]; i++)
			CHECK(strcmp(model->tensors[i].name, order[i]) == 0,
			      "order %zu: %s, expected %s", i, model->tensors[i].name, order[i]);
		CHECK_CONTAINS(rs_model_metadata(model, "role_conflict.twice"),
		               "linear in,out from MatMul node 'tw1', other from Add node 'tw2'");
		CHECK_CONTAINS(rs_model_metadata(model, "groups.bad.group"), "group 3 does not "
		               "divide");
		CHECK(find(model, "unused.b")->role == RS_ROLE_OTHER, "Relu consumer: other");
		CHECK(find(model, "unused.a")->role == RS_ROLE_UNKNOWN, "no consumer: unknown");
	}
	rs_model_close(model);
	free(m.b);
}

/* Constant nodes: named by their output, in subgraphs too. */
static void
check_constants(void)
{
	pb g = {0}, body = {0}, t, a[1], m;
	rs_error err;
	rs_model *model;

	t = f32_tensor("ignored", 3, 2);
	a[0] = attr_tensor("value", &t);
	add_node(&g, "Constant", "k", "", "k.out", a, 1);
	add_node(&g, "MatMul", "kmm", "X,k.out", "y", NULL, 0);
	t = f32_tensor("ignored.too", 2, 2);
	a[0] = attr_tensor("value", &t);
	add_node(&body, "Constant", "bk", "", "body.k", a, 1);
	add_node(&body, "MatMul", "bmm", "X,body.k", "by", NULL, 0);
	a[0] = attr_graph("body", &body);
	add_node(&g, "Loop", "loop", "n,c", "lo", a, 1);
	m = make_model(&g);
	model = parse("const.onnx", &m, &err);
	CHECK(model != NULL, "constants: %s", model ? "" : err.msg);
	if (model) {
		CHECK(model->ntensors == 2 && strcmp(model->tensors[0].name, "k.out") == 0 &&
		      strcmp(model->tensors[1].name, "body.k") == 0, "Constant outputs name them");
		CHECK(model->tensors[0].role == RS_ROLE_LINEAR && model->tensors[1].role ==
		      RS_ROLE_LINEAR, "constants used by MatMul");
		CHECK(model->tensors[0].shape[0] == 3 && model->tensors[0].shape[1] == 2, "shape");
	}
	rs_model_close(model);
	free(m.b);
}

/* ---- refusals ------------------------------------------------------------------------ */

static void
check_refusals(void)
{
	int64_t dims[2] = {4, 4}, neg[2] = {-1, 4}, huge[3] = {1ll << 40, 1ll << 40, 1ll << 40};
	pb t, m, g;
	float v[16] = {0};
	size_t i;

	t = tensor("neg", 1, neg, 2);
	m = one_tensor_model(&t);
	expect_refusal("negative dim", &m, "r.onnx", "tensor 'neg': dims [-1, 4]: a negative");
	free(m.b);
	t = tensor("big", 1, huge, 3);
	pb_bytes(&t, T_RAW, v, 16);
	m = one_tensor_model(&t);
	expect_refusal("overflow", &m, "r.onnx", "tensor 'big': dims [1099511627776, "
	               "1099511627776, 1099511627776]: the element count overflows");
	free(m.b);
	{
		int64_t d8[1] = {(int64_t)(((uint64_t)1 << 62) + 1)};
		t = tensor("bytes", 11, d8, 1);
		m = one_tensor_model(&t);
		expect_refusal("byte overflow", &m, "r.onnx", "the byte size overflows");
		free(m.b);
	}
	t = tensor("short", 1, dims, 2);
	pb_bytes(&t, T_RAW, v, 60);
	m = one_tensor_model(&t);
	expect_refusal("short raw", &m, "r.onnx", "tensor 'short': raw_data holds 60 bytes "
	               "but its shape [4, 4] needs 64");
	free(m.b);
	t = tensor("empty", 1, dims, 2);
	pb_bytes(&t, T_RAW, v, 0);
	m = one_tensor_model(&t);
	expect_refusal("empty raw", &m, "r.onnx", "raw_data holds 0 bytes");
	free(m.b);
	t = tensor("typed", 1, dims, 2);
	pb_bytes(&t, T_FLOAT, v, 60);
	m = one_tensor_model(&t);
	expect_refusal("typed count", &m, "r.onnx", "float_data holds 15 values but its shape "
	               "needs 16 elements of FLOAT");
	free(m.b);
	t = tensor("wrong", 7, dims, 2);
	pb_bytes(&t, T_FLOAT, v, 64);
	m = one_tensor_model(&t);
	expect_refusal("wrong field", &m, "r.onnx", "float_data holds values but its data "
	               "type is INT64");
	free(m.b);
	t = tensor("nodata", 1, dims, 2);
	m = one_tensor_model(&t);
	expect_refusal("no data", &m, "r.onnx", "tensor 'nodata': no data");
	free(m.b);
	t = tensor("notype", -1, dims, 2);
	m = one_tensor_model(&t);
	expect_refusal("no type", &m, "r.onnx", "has no data_type");
	free(m.b);
	t = tensor(NULL, 1, dims, 2);
	m = one_tensor_model(&t);
	expect_refusal("no name", &m, "r.onnx", "an initializer has no name");
	free(m.b);
	t = tensor("bad\xff", 1, dims, 2);
	m = one_tensor_model(&t);
	expect_refusal("utf-8", &m, "r.onnx", "not valid UTF-8");
	free(m.b);
	g = (pb){0};
	t = f32_tensor("dup", 2, 2), add_init(&g, &t);
	t = f32_tensor("dup", 2, 2), add_init(&g, &t);
	m = make_model(&g);
	expect_refusal("duplicate", &m, "r.onnx", "tensor 'dup' is defined twice");
	free(m.b);
	m = (pb){0};
	pb_int(&m, M_IR, 8);
	expect_refusal("no graph", &m, "r.onnx", "has no graph");
	free(m.b);

	/* the wire format */
	{
		static const struct {
			const char *bytes;
			size_t len;
			const char *problem;
		} wire[] = {
			{"\x08\x08\x3a\xff\xff\x03\x0a\x00", 8, "field 7 of onnx.ModelProto at byte 2 "
			 "declares 65535 bytes, past the end of its message"},
			{"\x08\x08\x3a\x02\x0a\x05", 6, "field 1 of onnx.GraphProto at byte 4 declares 5"},
			{"\x08", 1, "the varint at byte 0 (in onnx.ModelProto) is cut short"},
			{"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "longer than 10 bytes"},
			{"\x08\x08\x0b", 3, "wire type 3"},
			{"\x08\x08\x07\x00", 4, "field number 0"},
			{"\x08\x08\x11\x00\x00", 5, "its 8-byte value runs past the end"},
			{"\x08\x08\x3a\x02\x10\x01", 6, "the wrong protobuf type"},   /* graph name as a varint */
			{"\x3d\x00\x00\x00\x00", 5, "the wrong protobuf type"},       /* graph as fixed32 */
		};
		for (i = 0; i < sizeof wire / sizeof wire[0]; i++) {
			m = (pb){0};
			pb_raw(&m, wire[i].bytes, wire[i].len);
			expect_refusal(wire[i].problem, &m, "w.onnx", wire[i].problem);
			free(m.b);
		}
	}
	/* nesting: 40 subgraphs deep is 120 messages */
	{
		pb inner = {0}, a1;
		size_t depth;
		for (depth = 0; depth < 40; depth++) {
			pb outer = {0};
			a1 = attr_graph("body", &inner);
			add_node(&outer, "Loop", NULL, "", "", &a1, 1);
			inner = outer;
		}
		m = make_model(&inner);
		expect_refusal("deep", &m, "deep.onnx", "messages nested deeper than 100 levels");
		free(m.b);
		inner = (pb){0};
		for (depth = 0; depth < 20; depth++) {
			pb outer = {0};
			a1 = attr_graph("body", &inner);
			add_node(&outer, "Loop", NULL, "", "", &a1, 1);
			if (depth == 19) {
				t = f32_tensor("deep.w", 2, 2);
				add_init(&outer, &t);
			}
			inner = outer;
		}
		m = make_model(&inner);
		{
			rs_error err;
			rs_model *model = parse("deep.onnx", &m, &err);
			CHECK(model != NULL && model->ntensors == 1, "20 subgraphs deep opens: %s",
			      model ? "" : err.msg);
			rs_model_close(model);
		}
		free(m.b);
	}
}

/* ---- robustness ------------------------------------------------------------------------ */

static void
check_consistent(const rs_model *model, const unsigned char *image, size_t len)
{
	size_t i, j;

	for (i = 0; i < model->ntensors; i++) {
		const rs_tensor *t = &model->tensors[i];
		size_t count = 1;
		for (j = 0; j < t->ndim; j++)
			count *= t->shape[j];
		CHECK(count == t->count && t->nbytes == count * (rs_dtype_get(t->dtype)->bits / 8),
		      "consistent sizes");
		if (t->data >= image && t->data < image + len)
			CHECK(t->nbytes <= len - (size_t)(t->data - image), "data inside the image");
	}
}

static void
check_truncation_and_noise(void)
{
	pb g = {0}, t, a[1], m, sub = {0};
	size_t cut, i, opened = 0;
	unsigned char *copy;
	rs_error err;
	rs_model *model;

	t = f32_tensor("w", 4, 3), add_init(&g, &t);
	add_node(&g, "MatMul", "mm", "X,w", "y", NULL, 0);
	t = f32_tensor("s", 2, 2), add_init(&sub, &t);
	add_node(&sub, "MatMul", "smm", "X,s", "z", NULL, 0);
	a[0] = attr_graph("then_branch", &sub);
	add_node(&g, "If", "if", "c", "o", a, 1);
	{
		int64_t dims[1] = {3};
		pb h = tensor("h", 10, dims, 1);
		pb_bytes(&h, T_INT32, "\x01\x02\x03", 3);
		add_init(&g, &h);
	}
	m = make_model(&g);
	for (cut = 0; cut <= m.n; cut++) {
		copy = rs_xmalloc(cut + 1);
		memcpy(copy, m.b, cut);
		model = rs_onnx_parse("cut.onnx", copy, cut, &err);
		if (model != NULL) {
			opened++;
			check_consistent(model, copy, cut);
		} else {
			CHECK(err.code == RS_EFORMAT && strstr(err.msg, "cut.onnx") != NULL,
			      "cut at %zu: %s", cut, err.msg);
		}
		rs_model_close(model);
		free(copy);
	}
	CHECK(opened >= 1, "the whole model opens");
	test_seed(4242);
	copy = rs_xmalloc(m.n);
	for (i = 0; i < 3000; i++) {
		size_t k, flips = 1 + (size_t)(test_uniform() * 4);
		memcpy(copy, m.b, m.n);
		for (k = 0; k < flips; k++)
			copy[(size_t)(test_uniform() * (double)m.n)] = (unsigned char)(test_uniform() * 256);
		model = rs_onnx_parse("noise.onnx", copy, m.n, &err);
		if (model != NULL)
			check_consistent(model, copy, m.n);
		else
			CHECK(err.msg[0] != '\0' && strstr(err.msg, "noise.onnx") != NULL,
			      "noise: a message naming the file");
		rs_model_close(model);
	}
	free(copy);
	free(m.b);
}

/* rs_model_open: the sniff sends a written model here; mapped, not copied. */
static void
check_open(void)
{
	char *dir = test_tmpdir(), *path = rs_xasprintf("%s/m.onnx", dir);
	pb t = f32_tensor("w", 3, 3), m = one_tensor_model(&t);
	rs_error err;
	rs_model *model;

	test_write_file(path, m.b, m.n);
	model = rs_model_open(path, &err);
	CHECK(model != NULL, "rs_model_open: %s", model ? "" : err.msg);
	if (model) {
		CHECK(strcmp(model->format, "onnx") == 0 && model->owns_map, "an onnx model, mapped");
		CHECK(model->tensors[0].data >= model->map &&
		      model->tensors[0].data < model->map + model->map_len, "data in the map");
	}
	rs_model_close(model);
	/* a file starting like one whose second field is no ModelProto field */
	test_write_file(path, "\x08\x08\xfa\x0f\x00junk", 9);
	model = rs_model_open(path, &err);
	CHECK(model == NULL && strstr(err.msg, "not a weight file") != NULL,
	      "not sniffed as ONNX: %s", model ? "opened" : err.msg);
	rs_model_close(model);
	free(m.b);
	free(path);
	free(dir);
}

int
main(void)
{
	check_dtypes();
	check_skipped();
	check_payloads();
	check_external();
	check_graph_roles();
	check_constants();
	check_refusals();
	check_truncation_and_noise();
	check_open();
	return test_done("test-onnx");
}
