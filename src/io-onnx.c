/*
 * io-onnx.c — ONNX models: the weights of a ModelProto, and from its graph
 * what each weight is (role, layout, groups) and the order the network
 * uses them in.
 *
 * Parsing.  The message is parsed by the protobuf-c code generated from
 * onnx.proto (src/onnx.mk), but never on the file itself: protobuf-c copies
 * every bytes field, so a 1 GB model would be copied whole.  A pre-pass of
 * our own walks the wire format, guided by the generated descriptors (so it
 * sees exactly the fields protobuf-c will), and writes a stripped copy in
 * which every non-empty TensorProto.raw_data is replaced by a 4-byte ticket,
 * the index of the payload's (offset, length) in the file, with the
 * lengths of the enclosing messages re-encoded.  protobuf-c unpacks the
 * stripped copy (a few kilobytes for most models) and each tensor then
 * points into the map at its ticket's offset.  Every raw_data is replaced,
 * so a raw_data seen after unpacking is always one of our tickets.  The
 * pre-pass checks every length against the bytes left in its message and
 * bounds nesting at ONNX_MAX_DEPTH messages (subgraphs of subgraphs,
 * TypeProto in TypeProto), which also bounds protobuf-c's recursion.  It
 * runs three times over the structure only (count, measure, write), under
 * the SIGBUS guard and without allocating, so a file cut under the map is
 * an error.  header_sha256 is the digest of the stripped copy.
 *
 * Data.  Weights are graph initializers and Constant nodes' "value"
 * tensors (named by the node's output), in the main graph and in
 * subgraphs (If, Loop, Scan bodies).  raw_data is mapped in place;
 * values in the typed fields (float_data, int32_data carrying one 8- or
 * 16-bit value per element, ...) are converted into a buffer the model
 * owns, in the dtype's byte layout; external data (data_location
 * EXTERNAL) is mapped from files next to the model, each file once
 * (model->maps), refusing absolute paths and paths with "..".  STRING,
 * COMPLEX128 and other types are listed in the metadata as skipped.
 *
 * Roles.  Each weight takes its role from the first node, in graph order,
 * consuming it, seen through Identity, Cast, CastLike, DequantizeLinear
 * and a 2-D Transpose (which flips the layout): MatMul and Gemm make it
 * linear (in x out or out x in from the operand and transA/transB), Conv
 * and ConvTranspose a kernel with its group count, Gather input 0 an
 * embedding, anything else "other".  A later consumer that disagrees is
 * noted in the metadata.  Tensors are ordered by that first consumer
 * (subgraphs where their node stands); weights nothing consumes come last,
 * in the order the graph defines them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define NAME_SHOWN 160
/* protobuf's own default recursion limit */
#define ONNX_MAX_DEPTH 100
#define TICKET_LEN 4
#define NONE ((size_t)-1)

/* ---- the pre-pass: raw_data out, tickets in --------------------------------- */

typedef struct span {
	size_t off, len;
} span;

typedef enum strip_fault {
	STRIP_OK, STRIP_VARINT, STRIP_LENGTH, STRIP_FIXED, STRIP_WIRE, STRIP_FIELD,
	STRIP_DEPTH, STRIP_TICKETS, STRIP_CHANGED
} strip_fault;

/*
 * One pass over the image.  Counting: sublen, raws and out are NULL.
 * Measuring: sublen and raws are filled (the new length of every message
 * field, in pre-order; every payload).  Writing: out is filled, reading the
 * lengths measured.  Nothing here allocates (it runs under the guard).  A
 * file rewritten in place shows through the map, so a later pass may see
 * more than the first counted: the capacities are checked, not assumed.
 */
typedef struct strip {
	const unsigned char *in;
	size_t len;
	size_t nsub, nraw;
	size_t *sublen;
	span *raws;
	size_t subcap, rawcap;
	unsigned char *out;
	size_t outpos, outcap;
	strip_fault fault;
	size_t fault_at;
	unsigned fault_field, fault_wire;
	uint64_t fault_value;
	const char *fault_in;
} strip;

static size_t
strip_fail(strip *s, strip_fault f, size_t at, unsigned field, uint64_t value,
           const ProtobufCMessageDescriptor *d)
{
	if (s->fault == STRIP_OK) {
		s->fault = f;
		s->fault_at = at;
		s->fault_field = field;
		s->fault_value = value;
		s->fault_in = d->name;
	}
	return 0;
}

/* A varint of at most 10 bytes that ends before `end`. */
static bool
get_varint(const unsigned char *in, size_t *pos, size_t end, uint64_t *v)
{
	uint64_t x = 0;
	size_t p = *pos;
	unsigned shift;

	for (shift = 0; shift < 64; shift += 7) {
		unsigned char b;

		if (p >= end)
			return false;
		b = in[p++];
		if (shift == 63 && b > 1)
			return false;
		x |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*pos = p;
			*v = x;
			return true;
		}
	}
	return false;
}

static size_t
varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void
put_varint(strip *s, uint64_t v)
{
	if (s->outcap - s->outpos < varint_size(v)) {
		s->fault = STRIP_CHANGED;
		return;
	}
	while (v >= 0x80) {
		s->out[s->outpos++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	s->out[s->outpos++] = (unsigned char)v;
}

static void
put_bytes(strip *s, size_t from, size_t n)
{
	if (s->outcap - s->outpos < n) {
		s->fault = STRIP_CHANGED;
		return;
	}
	memcpy(s->out + s->outpos, s->in + from, n);
	s->outpos += n;
}

/* The message [pos, end) of type d: returns its length once stripped. */
static size_t
walk(strip *s, const ProtobufCMessageDescriptor *d, size_t pos, size_t end,
     unsigned depth)
{
	size_t newlen = 0;

	while (pos < end && s->fault == STRIP_OK) {
		size_t start = pos, taglen, n;
		uint64_t tag, v;
		unsigned field, wire;
		const ProtobufCFieldDescriptor *fd;

		if (!get_varint(s->in, &pos, end, &tag))
			return strip_fail(s, STRIP_VARINT, start, 0, 0, d);
		if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
			return strip_fail(s, STRIP_FIELD, start, 0, tag >> 3, d);
		field = (unsigned)(tag >> 3);
		wire = (unsigned)(tag & 7);
		taglen = pos - start;
		switch (wire) {
		case 0:
			if (!get_varint(s->in, &pos, end, &v))
				return strip_fail(s, STRIP_VARINT, start, field, 0, d);
			break;
		case 1:
		case 5:
			n = wire == 1 ? 8 : 4;
			if (end - pos < n)
				return strip_fail(s, STRIP_FIXED, start, field, n, d);
			pos += n;
			break;
		case 2:
			if (!get_varint(s->in, &pos, end, &v))
				return strip_fail(s, STRIP_VARINT, start, field, 0, d);
			if (v > end - pos)
				return strip_fail(s, STRIP_LENGTH, start, field, v, d);
			n = (size_t)v;
			if (d == &onnx__tensor_proto__descriptor && field == 9 && n > 0) {
				/* raw_data: a ticket instead of the payload */
				if (s->nraw >= UINT32_MAX)
					return strip_fail(s, STRIP_TICKETS, start, field, 0, d);
				if (s->raws != NULL && s->nraw >= s->rawcap)
					return strip_fail(s, STRIP_CHANGED, start, field, 0, d);
				if (s->raws != NULL)
					s->raws[s->nraw] = (span){pos, n};
				if (s->out != NULL) {
					uint32_t k = (uint32_t)s->nraw;
					put_bytes(s, start, taglen);
					put_varint(s, TICKET_LEN);
					if (s->fault != STRIP_OK || s->outcap - s->outpos < TICKET_LEN)
						return strip_fail(s, STRIP_CHANGED, start, field, 0, d);
					s->out[s->outpos++] = (unsigned char)k;
					s->out[s->outpos++] = (unsigned char)(k >> 8);
					s->out[s->outpos++] = (unsigned char)(k >> 16);
					s->out[s->outpos++] = (unsigned char)(k >> 24);
				}
				s->nraw++;
				newlen += taglen + 1 + TICKET_LEN;
				pos += n;
				continue;
			}
			fd = protobuf_c_message_descriptor_get_field(d, field);
			if (fd != NULL && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
				size_t idx = s->nsub++, sub;

				if (depth + 1 >= ONNX_MAX_DEPTH)
					return strip_fail(s, STRIP_DEPTH, start, field, 0, d);
				if (s->sublen != NULL && idx >= s->subcap)
					return strip_fail(s, STRIP_CHANGED, start, field, 0, d);
				if (s->out != NULL) {
					sub = s->sublen[idx];
					put_bytes(s, start, taglen);
					put_varint(s, sub);
					(void)walk(s, fd->descriptor, pos, pos + n, depth + 1);
				} else {
					sub = walk(s, fd->descriptor, pos, pos + n, depth + 1);
					if (s->sublen != NULL)
						s->sublen[idx] = sub;
				}
				newlen += taglen + varint_size(sub) + sub;
				pos += n;
				continue;
			}
			pos += n;
			break;
		default:
			s->fault_wire = wire;
			return strip_fail(s, STRIP_WIRE, start, field, wire, d);
		}
		if (s->out != NULL)
			put_bytes(s, start, pos - start);
		newlen += pos - start;
	}
	return newlen;
}

typedef struct strip_run {
	strip *s;
	size_t total;
} strip_run;

static void
strip_pass(void *arg)
{
	strip_run *r = arg;

	r->s->nsub = r->s->nraw = r->s->outpos = 0;
	r->total = walk(r->s, &onnx__model_proto__descriptor, 0, r->s->len, 0);
}

static rs_status
strip_error(const strip *s, const char *path, rs_error *err)
{
	const char *in = s->fault_in;
	unsigned long long v = (unsigned long long)s->fault_value;

	switch (s->fault) {
	case STRIP_VARINT:
		return rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: the varint "
		                    "at byte %zu (in %s) is cut short or longer than 10 bytes "
		                    "(truncated file?)", path, s->fault_at, in);
	case STRIP_LENGTH:
		return rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: field %u of "
		                    "%s at byte %zu declares %llu bytes, past the end of its "
		                    "message (truncated file?)", path, s->fault_field, in,
		                    s->fault_at, v);
	case STRIP_FIXED:
		return rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: field %u of "
		                    "%s at byte %zu: its %llu-byte value runs past the end of "
		                    "its message (truncated file?)", path, s->fault_field, in,
		                    s->fault_at, v);
	case STRIP_WIRE:
		return rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: field %u of "
		                    "%s at byte %zu has protobuf wire type %llu (groups and "
		                    "unknown wire types are not ONNX)", path, s->fault_field,
		                    in, s->fault_at, v);
	case STRIP_FIELD:
		return rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: field number "
		                    "%llu at byte %zu (in %s) is not a protobuf field number",
		                    path, v, s->fault_at, in);
	case STRIP_DEPTH:
		return rs_error_set(err, RS_EFORMAT, "%s: messages nested deeper than %d levels "
		                    "at byte %zu (field %u of %s): subgraphs or types nested "
		                    "this deep are refused", path, ONNX_MAX_DEPTH, s->fault_at,
		                    s->fault_field, in);
	case STRIP_TICKETS:
		return rs_error_set(err, RS_EFORMAT, "%s: more than %u raw_data fields", path,
		                    (unsigned)UINT32_MAX);
	case STRIP_CHANGED:
		return rs_error_set(err, RS_EIO, "%s: the file changed while it was being "
		                    "opened (rewritten in place); open it again", path);
	case STRIP_OK:
		break;
	}
	return RS_OK;
}

/*
 * The stripped copy of the image (malloc'd, *outlen bytes) and the
 * payload of every ticket (malloc'd, *nraws of them).
 */
static rs_status
strip_image(const char *path, const unsigned char *image, size_t len,
            unsigned char **out, size_t *outlen, span **raws, size_t *nraws,
            rs_error *err)
{
	strip s = {.in = image, .len = len};
	strip_run r = {&s, 0};
	rs_status st;

	*out = NULL;
	*raws = NULL;
	*nraws = 0;
	if ((st = rs_guard_run(image, len, strip_pass, &r, path, NULL, err)) != RS_OK)
		return st;
	if (s.fault != STRIP_OK)
		return strip_error(&s, path, err);
	s.subcap = s.nsub;
	s.rawcap = s.nraw;
	s.sublen = malloc((s.nsub ? s.nsub : 1) * sizeof *s.sublen);
	s.raws = malloc((s.nraw ? s.nraw : 1) * sizeof *s.raws);
	if (s.sublen == NULL || s.raws == NULL)
		goto nomem;
	if ((st = rs_guard_run(image, len, strip_pass, &r, path, NULL, err)) != RS_OK)
		goto fail;
	if (s.fault != STRIP_OK) {
		st = strip_error(&s, path, err);
		goto fail;
	}
	s.outcap = r.total;
	s.out = malloc(r.total ? r.total : 1);
	if (s.out == NULL)
		goto nomem;
	if ((st = rs_guard_run(image, len, strip_pass, &r, path, NULL, err)) != RS_OK)
		goto fail;
	if (s.fault == STRIP_OK && (s.outpos != s.outcap || s.nraw != s.rawcap))
		s.fault = STRIP_CHANGED;
	if (s.fault != STRIP_OK) {
		st = strip_error(&s, path, err);
		goto fail;
	}
	free(s.sublen);
	*out = s.out;
	*outlen = r.total;
	*raws = s.raws;
	*nraws = s.nraw;
	return RS_OK;
nomem:
	st = rs_error_set(err, RS_ENOMEM, "%s: out of memory for the model's structure "
	                  "(%zu bytes)", path, len);
fail:
	free(s.sublen);
	free(s.raws);
	free(s.out);
	return st;
}

/* ---- names ------------------------------------------------------------------- */

/* String keys to indices, open addressing; keys are borrowed. */
typedef struct name_map {
	const char **keys;
	size_t *vals;
	size_t cap, n;
	uint64_t basis;
} name_map;

/* FNV-1a from a basis of the map's own, then mixed (murmur's finaliser):
 * names come from the file, and names crafted to collide would make the
 * table quadratic. */
static size_t
hash_name(uint64_t basis, const char *s)
{
	uint64_t h;

	for (h = basis; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return (size_t)h;
}

static size_t
map_get(const name_map *mp, const char *key)
{
	size_t i;

	if (mp->cap == 0)
		return NONE;
	for (i = hash_name(mp->basis, key) & (mp->cap - 1); mp->keys[i] != NULL;
	     i = (i + 1) & (mp->cap - 1))
		if (strcmp(mp->keys[i], key) == 0)
			return mp->vals[i];
	return NONE;
}

/* Sets key to val; returns the value it had (NONE if none). */
static size_t
map_put(name_map *mp, const char *key, size_t val)
{
	size_t i, old;

	if (2 * (mp->n + 1) > mp->cap) {
		name_map bigger = {0};
		size_t k;

		bigger.cap = mp->cap ? 2 * mp->cap : 64;
		bigger.basis = mp->basis;
		if (mp->cap == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			bigger.basis = 1469598103934665603u ^ (uint64_t)(uintptr_t)mp ^
			               (uint64_t)ts.tv_nsec << 17;
		}
		bigger.keys = rs_xcalloc(bigger.cap, sizeof *bigger.keys);
		bigger.vals = rs_xcalloc(bigger.cap, sizeof *bigger.vals);
		for (k = 0; k < mp->cap; k++)
			if (mp->keys[k] != NULL)
				(void)map_put(&bigger, mp->keys[k], mp->vals[k]);
		free(mp->keys);
		free(mp->vals);
		*mp = bigger;
	}
	for (i = hash_name(mp->basis, key) & (mp->cap - 1); mp->keys[i] != NULL;
	     i = (i + 1) & (mp->cap - 1))
		if (strcmp(mp->keys[i], key) == 0) {
			old = mp->vals[i];
			mp->vals[i] = val;
			return old;
		}
	mp->keys[i] = key;
	mp->vals[i] = val;
	mp->n++;
	return NONE;
}

static void
map_free(name_map *mp)
{
	free(mp->keys);
	free(mp->vals);
	*mp = (name_map){0};
}

/* A copy of s for the metadata (JSON wants UTF-8): bytes of invalid
 * sequences become '?'. */
static char *
utf8_copy(const char *s)
{
	char *c = rs_xstrdup(s), one[5];
	size_t i = 0;

	while (c[i] != '\0') {
		unsigned char b = (unsigned char)c[i];
		size_t n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2, k;

		for (k = 0; k < n && c[i + k] != '\0'; k++)
			one[k] = c[i + k];
		one[k] = '\0';
		if (k < n || !rs_utf8_valid(one, n)) {
			c[i++] = '?';
			continue;
		}
		i += n;
	}
	return c;
}

/* ---- the model being built ------------------------------------------------------ */

typedef struct ext_file {
	char *location;              /* as the model names it */
	dev_t dev;
	ino_t ino;
	const unsigned char *map;    /* NULL for an empty file */
	size_t len;
} ext_file;

/* What the graph said about tensor i so far. */
typedef struct weight_use {
	size_t defined;              /* definition order */
	size_t step, input;          /* first consumer: node step and input slot */
	bool decided;
	char *decided_by;            /* "MatMul node 'fc'", for conflict notes */
	bool conflict;
} weight_use;

typedef struct undo {
	const char *key;
	size_t old;
} undo;

typedef struct onnx_build {
	rs_model *m;
	const char *path;
	const unsigned char *image;
	size_t len;
	const span *raws;
	size_t nraws;
	size_t cap, metacap;
	weight_use *use;
	name_map weights;            /* tensor name -> index */
	name_map aliases;            /* value name -> 2 * index + flipped */
	undo *undos;
	size_t nundos, undocap;
	ext_file *ext;
	size_t next;
	size_t step;
	rs_error *err;
} onnx_build;

static void
meta_add(onnx_build *b, const char *key, const char *value)
{
	rs_model *m = b->m;

	if (m->nmetadata == b->metacap) {
		b->metacap = b->metacap ? 2 * b->metacap : 16;
		m->metadata = rs_xreallocarray(m->metadata, b->metacap, sizeof *m->metadata);
	}
	m->metadata[m->nmetadata].key = utf8_copy(key);
	m->metadata[m->nmetadata].value = utf8_copy(value);
	m->nmetadata++;
}

static void
own_buffer(rs_model *m, void *buf)
{
	m->buffers = rs_xreallocarray(m->buffers, m->nbuffers + 1, sizeof *m->buffers);
	m->buffers[m->nbuffers++] = buf;
}

static bool
default_domain(const char *d)
{
	return d == NULL || d[0] == '\0' || strcmp(d, "ai.onnx") == 0;
}

/* "MatMul node 'fc1'" or "MatMul node #3" for an unnamed node. */
static char *
node_label(const Onnx__NodeProto *n, size_t step)
{
	char op[64], name[NAME_SHOWN];

	rs_printable(op, sizeof op, n->op_type ? n->op_type : "");
	if (n->name != NULL && n->name[0] != '\0')
		return rs_xasprintf("%s node '%s'", op, rs_printable(name, sizeof name, n->name));
	return rs_xasprintf("%s node #%zu", op, step);
}

static const char *
shape_text(char *buf, size_t len, const int64_t *dims, size_t n)
{
	size_t i, o = 0;

	o += (size_t)snprintf(buf, len, "[");
	for (i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "",
		                      (long long)dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
	return buf;
}

/* ---- element types ------------------------------------------------------------- */

typedef enum typed_field {
	FIELD_NONE, FIELD_FLOAT, FIELD_INT32, FIELD_INT64, FIELD_DOUBLE, FIELD_UINT64
} typed_field;

typedef struct onnx_type {
	int code;
	const char *name;
	bool read;                   /* a tensor rankscope reads */
	rs_dtype dtype;
	typed_field field;           /* where values go when not in raw_data */
	unsigned per_element;        /* values of that field per element */
} onnx_type;

static const onnx_type onnx_types[] = {
	{1, "FLOAT", true, RS_DTYPE_F32, FIELD_FLOAT, 1},
	{2, "UINT8", true, RS_DTYPE_U8, FIELD_INT32, 1},
	{3, "INT8", true, RS_DTYPE_I8, FIELD_INT32, 1},
	{4, "UINT16", true, RS_DTYPE_U16, FIELD_INT32, 1},
	{5, "INT16", true, RS_DTYPE_I16, FIELD_INT32, 1},
	{6, "INT32", true, RS_DTYPE_I32, FIELD_INT32, 1},
	{7, "INT64", true, RS_DTYPE_I64, FIELD_INT64, 1},
	{8, "STRING", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{9, "BOOL", true, RS_DTYPE_BOOL, FIELD_INT32, 1},
	{10, "FLOAT16", true, RS_DTYPE_F16, FIELD_INT32, 1},
	{11, "DOUBLE", true, RS_DTYPE_F64, FIELD_DOUBLE, 1},
	{12, "UINT32", true, RS_DTYPE_U32, FIELD_UINT64, 1},
	{13, "UINT64", true, RS_DTYPE_U64, FIELD_UINT64, 1},
	{14, "COMPLEX64", true, RS_DTYPE_C64, FIELD_FLOAT, 2},
	{15, "COMPLEX128", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{16, "BFLOAT16", true, RS_DTYPE_BF16, FIELD_INT32, 1},
	{17, "FLOAT8E4M3FN", true, RS_DTYPE_F8_E4M3, FIELD_INT32, 1},
	{18, "FLOAT8E4M3FNUZ", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{19, "FLOAT8E5M2", true, RS_DTYPE_F8_E5M2, FIELD_INT32, 1},
	{20, "FLOAT8E5M2FNUZ", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{21, "UINT4", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{22, "INT4", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
	{23, "FLOAT4E2M1", false, RS_DTYPE_COUNT, FIELD_NONE, 0},
};

static const onnx_type *
onnx_type_of(int code)
{
	size_t i;

	for (i = 0; i < sizeof onnx_types / sizeof onnx_types[0]; i++)
		if (onnx_types[i].code == code)
			return &onnx_types[i];
	return NULL;
}

static const char *const field_names[] = {
	[FIELD_NONE] = "none", [FIELD_FLOAT] = "float_data", [FIELD_INT32] = "int32_data",
	[FIELD_INT64] = "int64_data", [FIELD_DOUBLE] = "double_data",
	[FIELD_UINT64] = "uint64_data",
};

static size_t
field_count(const Onnx__TensorProto *tp, typed_field f)
{
	switch (f) {
	case FIELD_FLOAT: return tp->n_float_data;
	case FIELD_INT32: return tp->n_int32_data;
	case FIELD_INT64: return tp->n_int64_data;
	case FIELD_DOUBLE: return tp->n_double_data;
	case FIELD_UINT64: return tp->n_uint64_data;
	case FIELD_NONE: break;
	}
	return 0;
}

static const unsigned char empty_data[1];

/* Values in the typed field f, converted into a buffer of t's dtype. */
static rs_status
typed_data(onnx_build *b, const Onnx__TensorProto *tp, const onnx_type *ty,
           rs_tensor *t, const char *tn)
{
	size_t esize = rs_dtype_get(t->dtype)->bits / 8, want, have, i;
	typed_field f;
	unsigned char *buf;

	for (f = FIELD_FLOAT; f <= FIELD_UINT64; f++)
		if (f != ty->field && field_count(tp, f) > 0)
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': %s holds values "
			                    "but its data type is %s (whose values go in %s)",
			                    b->path, tn, field_names[f], ty->name,
			                    field_names[ty->field]);
	have = field_count(tp, ty->field);
	if (rs_mul_overflows(t->count, ty->per_element, &want) || have != want) {
		if (have == 0)
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': no data (%zu "
			                    "elements of %s, but no raw_data, %s or external data)",
			                    b->path, tn, t->count, ty->name, field_names[ty->field]);
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': %s holds %zu values "
		                    "but its shape needs %zu elements of %s", b->path, tn,
		                    field_names[ty->field], have, t->count, ty->name);
	}
	if (t->nbytes == 0) {
		t->data = empty_data;
		return RS_OK;
	}
	buf = malloc(t->nbytes);
	if (buf == NULL)
		return rs_error_set(b->err, RS_ENOMEM, "%s: tensor '%s': out of memory for "
		                    "its %zu bytes", b->path, tn, t->nbytes);
	switch (ty->field) {
	case FIELD_FLOAT:
		memcpy(buf, tp->float_data, t->nbytes);
		break;
	case FIELD_DOUBLE:
		memcpy(buf, tp->double_data, t->nbytes);
		break;
	case FIELD_INT64:
		memcpy(buf, tp->int64_data, t->nbytes);
		break;
	case FIELD_UINT64:
		for (i = 0; i < t->count; i++) {
			uint64_t v = tp->uint64_data[i];
			memcpy(buf + i * esize, &v, esize);   /* little-endian host: low bytes */
		}
		break;
	case FIELD_INT32:
		for (i = 0; i < t->count; i++) {
			uint32_t v = (uint32_t)tp->int32_data[i];
			memcpy(buf + i * esize, &v, esize);
		}
		break;
	case FIELD_NONE:
		break;
	}
	own_buffer(b->m, buf);
	t->data = buf;
	return RS_OK;
}

/* ---- external data ---------------------------------------------------------------- */

/* A decimal string of external_data ("offset", "length"). */
static bool
parse_size(const char *s, size_t *out)
{
	size_t v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || rs_mul_overflows(v, 10, &v) ||
		    v > SIZE_MAX - (size_t)(*s - '0'))
			return false;
		v += (size_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* The file `location` names, opened and mapped once per model. */
static rs_status
external_file(onnx_build *b, const char *location, const char *tn, ext_file **out)
{
	char shown[NAME_SHOWN], *full;
	const char *slash = strrchr(b->path, '/');
	struct stat st;
	void *map = NULL;
	size_t i;
	int fd;

	for (i = 0; i < b->next; i++)
		if (strcmp(b->ext[i].location, location) == 0) {
			*out = &b->ext[i];
			return RS_OK;
		}
	if (slash == NULL)
		full = rs_xasprintf("%s", location);
	else
		full = rs_xasprintf("%.*s/%s", (int)(slash - b->path), b->path, location);
	rs_printable(shown, sizeof shown, full);
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	free(full);
	if (fd < 0)
		return rs_error_set(b->err, RS_EIO, "%s: tensor '%s': external data file '%s': "
		                    "cannot open: %s", b->path, tn, shown, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return rs_error_set(b->err, RS_EIO, "%s: tensor '%s': external data file '%s' "
		                    "is not a regular file", b->path, tn, shown);
	}
	for (i = 0; i < b->next; i++)
		if (b->ext[i].dev == st.st_dev && b->ext[i].ino == st.st_ino)
			break;
	if (i == b->next) {
		if (st.st_size > 0) {
			map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (map == MAP_FAILED) {
				close(fd);
				return rs_error_set(b->err, RS_EIO, "%s: tensor '%s': external data "
				                    "file '%s': cannot map: %s", b->path, tn, shown,
				                    strerror(errno));
			}
			b->m->maps = rs_xreallocarray(b->m->maps, b->m->nmaps + 1,
			                              sizeof *b->m->maps);
			b->m->maps[b->m->nmaps++] = (rs_model_map){map, (size_t)st.st_size};
		}
		b->ext = rs_xreallocarray(b->ext, b->next + 1, sizeof *b->ext);
		b->ext[b->next++] = (ext_file){rs_xstrdup(location), st.st_dev, st.st_ino,
		                               map, (size_t)st.st_size};
		*out = &b->ext[b->next - 1];
	} else {
		/* the same file under another spelling: one map */
		ext_file same = b->ext[i];
		same.location = rs_xstrdup(location);
		b->ext = rs_xreallocarray(b->ext, b->next + 1, sizeof *b->ext);
		b->ext[b->next++] = same;
		*out = &b->ext[b->next - 1];
	}
	close(fd);
	return RS_OK;
}

/* True when a relative path has a ".." component. */
static bool
climbs(const char *p)
{
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		while (*p == '/')
			p++;
	}
	return false;
}

static rs_status
external_data(onnx_build *b, const Onnx__TensorProto *tp, rs_tensor *t, const char *tn)
{
	const char *location = NULL, *soff = NULL, *slen = NULL;
	char shown[NAME_SHOWN];
	size_t i, off = 0, len = 0;
	ext_file *f = NULL;
	rs_status st;

	if (tp->has_raw_data || tp->n_float_data || tp->n_int32_data || tp->n_int64_data ||
	    tp->n_double_data || tp->n_uint64_data)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': data_location is "
		                    "EXTERNAL but it also holds data of its own", b->path, tn);
	for (i = 0; i < tp->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = tp->external_data[i];

		if (e->key == NULL || e->value == NULL)
			continue;
		if (strcmp(e->key, "location") == 0)
			location = e->value;
		else if (strcmp(e->key, "offset") == 0)
			soff = e->value;
		else if (strcmp(e->key, "length") == 0)
			slen = e->value;
	}
	if (location == NULL || location[0] == '\0')
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data without "
		                    "a location", b->path, tn);
	rs_printable(shown, sizeof shown, location);
	if (location[0] == '/')
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data location "
		                    "'%s' is an absolute path (external data must lie in the "
		                    "model's directory)", b->path, tn, shown);
	if (climbs(location))
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data location "
		                    "'%s' leaves the model's directory ('..' is refused)",
		                    b->path, tn, shown);
	if (soff != NULL && !parse_size(soff, &off))
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data offset "
		                    "is not a byte count", b->path, tn);
	if (slen != NULL && !parse_size(slen, &len))
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data length "
		                    "is not a byte count", b->path, tn);
	if ((st = external_file(b, location, tn, &f)) != RS_OK)
		return st;
	if (off > f->len)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data offset "
		                    "%zu is past the end of '%s' (%zu bytes)", b->path, tn, off,
		                    shown, f->len);
	if (slen == NULL)
		len = f->len - off;      /* ONNX reads to the end of the file */
	else if (len > f->len - off)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data offset "
		                    "%zu + length %zu runs past the end of '%s' (%zu bytes)",
		                    b->path, tn, off, len, shown, f->len);
	if (len != t->nbytes)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external data holds "
		                    "%zu bytes but its shape needs %zu (%zu elements of %s)",
		                    b->path, tn, len, t->nbytes, t->count,
		                    rs_dtype_get(t->dtype)->name);
	t->offset = off;
	t->data = t->nbytes ? f->map + off : empty_data;
	return RS_OK;
}

/* ---- weights --------------------------------------------------------------------- */

static void
skip_note(onnx_build *b, const char *name, const char *why)
{
	char *key = rs_xasprintf("skipped.%s", name);

	meta_add(b, key, why);
	free(key);
}

/* tp as a tensor of the model, named `name` ("initializer" or "Constant
 * node 'N'" is `what`, for messages). */
static rs_status
add_tensor(onnx_build *b, const Onnx__TensorProto *tp, const char *name, const char *what)
{
	rs_model *m = b->m;
	const onnx_type *ty;
	char shown[NAME_SHOWN], dims[96];
	const char *tn;
	rs_tensor *t;
	size_t i, esize;

	if (name == NULL || name[0] == '\0')
		return rs_error_set(b->err, RS_EFORMAT, "%s: an %s has no name", b->path, what);
	tn = rs_printable(shown, sizeof shown, name);
	if (!rs_utf8_valid(name, strlen(name)))
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': its name is not valid "
		                    "UTF-8", b->path, tn);
	if (map_get(&b->weights, name) != NONE)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s' is defined twice (an "
		                    "initializer or Constant of that name already exists)",
		                    b->path, tn);
	if (!tp->has_data_type || tp->data_type == 0)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s' (%s) has no data_type",
		                    b->path, tn, what);
	ty = onnx_type_of(tp->data_type);
	if (ty == NULL || !ty->read) {
		char why[96];
		if (ty == NULL)
			snprintf(why, sizeof why, "data type %d, which rankscope does not know",
			         (int)tp->data_type);
		else
			snprintf(why, sizeof why, "%s tensor (not read)", ty->name);
		skip_note(b, name, why);
		return RS_OK;
	}
	if (tp->segment != NULL) {
		skip_note(b, name, "stored in segments (not read)");
		return RS_OK;
	}
	for (i = 0; i < tp->n_dims; i++)
		if (tp->dims[i] < 0)
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': dims %s: a "
			                    "negative dimension", b->path, tn,
			                    shape_text(dims, sizeof dims, tp->dims, tp->n_dims));

	if (m->ntensors == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		m->tensors = rs_xreallocarray(m->tensors, b->cap, sizeof *m->tensors);
		b->use = rs_xreallocarray(b->use, b->cap, sizeof *b->use);
	}
	t = &m->tensors[m->ntensors];
	memset(t, 0, sizeof *t);
	b->use[m->ntensors] = (weight_use){.defined = m->ntensors, .step = NONE};
	m->ntensors++;
	t->name = rs_xstrdup(name);
	t->dtype = ty->dtype;
	t->ndim = tp->n_dims;
	t->shape = t->ndim ? rs_xcalloc(t->ndim, sizeof *t->shape) : NULL;
	t->count = 1;
	for (i = 0; i < t->ndim; i++) {
		t->shape[i] = (size_t)tp->dims[i];
		if (rs_mul_overflows(t->count, t->shape[i], &t->count))
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': dims %s: the "
			                    "element count overflows", b->path, tn,
			                    shape_text(dims, sizeof dims, tp->dims, tp->n_dims));
	}
	esize = rs_dtype_get(t->dtype)->bits / 8;
	if (rs_mul_overflows(t->count, esize, &t->nbytes))
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': dims %s: the byte "
		                    "size overflows", b->path, tn,
		                    shape_text(dims, sizeof dims, tp->dims, tp->n_dims));
	(void)map_put(&b->weights, t->name, m->ntensors - 1);

	if (tp->has_data_location &&
	    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return external_data(b, tp, t, tn);
	if (tp->n_external_data > 0)
		return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': external_data entries "
		                    "but data_location is not EXTERNAL", b->path, tn);
	if (tp->has_raw_data) {
		const span *sp;
		uint32_t k;

		if (tp->raw_data.len == 0) {
			if (t->nbytes != 0)
				return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': raw_data "
				                    "holds 0 bytes but its shape %s needs %zu (%zu "
				                    "elements of %s)", b->path, tn,
				                    shape_text(dims, sizeof dims, tp->dims, tp->n_dims),
				                    t->nbytes, t->count, ty->name);
			t->data = empty_data;
			return RS_OK;
		}
		k = (uint32_t)rs_read_le(tp->raw_data.data, TICKET_LEN);
		if (tp->raw_data.len != TICKET_LEN || k >= b->nraws)
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': raw_data does not "
			                    "parse", b->path, tn);   /* every raw_data is a ticket */
		sp = &b->raws[k];
		if (sp->len != t->nbytes)
			return rs_error_set(b->err, RS_EFORMAT, "%s: tensor '%s': raw_data holds %zu "
			                    "bytes but its shape %s needs %zu (%zu elements of %s)",
			                    b->path, tn, sp->len,
			                    shape_text(dims, sizeof dims, tp->dims, tp->n_dims),
			                    t->nbytes, t->count, ty->name);
		t->offset = sp->off;
		t->data = b->image + sp->off;
		return RS_OK;
	}
	return typed_data(b, tp, ty, t, tn);
}

/* Initializers and Constant nodes of g and of its subgraphs, in order. */
static rs_status
collect_graph(onnx_build *b, const Onnx__GraphProto *g)
{
	size_t i, j, k;
	rs_status st;

	for (i = 0; i < g->n_initializer; i++)
		if ((st = add_tensor(b, g->initializer[i], g->initializer[i]->name,
		                     "initializer")) != RS_OK)
			return st;
	for (i = 0; i < g->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
		const char *name = sp->values != NULL ? sp->values->name : NULL;

		skip_note(b, name != NULL && name[0] != '\0' ? name : "(unnamed)",
		          "sparse_initializer (sparse tensors are not read)");
	}
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];

		if (n->op_type != NULL && strcmp(n->op_type, "Constant") == 0 &&
		    default_domain(n->domain)) {
			const char *out = n->n_output > 0 ? n->output[0] : NULL;

			for (j = 0; j < n->n_attribute; j++) {
				const Onnx__AttributeProto *a = n->attribute[j];

				if (a->name == NULL)
					continue;
				if (strcmp(a->name, "value") == 0 && a->t != NULL &&
				    (st = add_tensor(b, a->t, out, "output of a Constant node")) != RS_OK)
					return st;
				if (strcmp(a->name, "sparse_value") == 0 && out != NULL && out[0] != '\0')
					skip_note(b, out, "sparse Constant (sparse tensors are not read)");
			}
		}
		for (j = 0; j < n->n_attribute; j++) {
			const Onnx__AttributeProto *a = n->attribute[j];

			if (a->g != NULL && (st = collect_graph(b, a->g)) != RS_OK)
				return st;
			for (k = 0; k < a->n_graphs; k++)
				if ((st = collect_graph(b, a->graphs[k])) != RS_OK)
					return st;
		}
	}
	return RS_OK;
}

/* ---- roles --------------------------------------------------------------------------- */

static const Onnx__AttributeProto *
attribute(const Onnx__NodeProto *n, const char *name)
{
	size_t i;

	for (i = 0; i < n->n_attribute; i++)
		if (n->attribute[i]->name != NULL && strcmp(n->attribute[i]->name, name) == 0)
			return n->attribute[i];
	return NULL;
}

static int64_t
attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
	const Onnx__AttributeProto *a = attribute(n, name);

	return a != NULL && a->has_i ? a->i : dflt;
}

static bool
op_is(const Onnx__NodeProto *n, const char *op)
{
	return n->op_type != NULL && strcmp(n->op_type, op) == 0;
}

/*
 * Whether n passes input `slot` through to its output 0 unchanged but for
 * type or layout: *flip when it transposes a 2-D weight.
 */
static bool
passes_through(const Onnx__NodeProto *n, size_t slot, const rs_tensor *t, bool *flip)
{
	const Onnx__AttributeProto *perm;

	*flip = false;
	if (slot != 0 || n->n_output == 0 || !default_domain(n->domain))
		return false;
	if (op_is(n, "Identity") || op_is(n, "Cast") || op_is(n, "CastLike") ||
	    op_is(n, "DequantizeLinear"))
		return true;
	if (!op_is(n, "Transpose") || t->ndim != 2)
		return false;
	perm = attribute(n, "perm");
	if (perm == NULL || perm->n_ints == 0) {
		*flip = true;           /* no perm: the axes reversed */
		return true;
	}
	if (perm->n_ints == 2 && perm->ints[0] == 1 && perm->ints[1] == 0) {
		*flip = true;
		return true;
	}
	return perm->n_ints == 2 && perm->ints[0] == 0 && perm->ints[1] == 1;
}

typedef struct role {
	rs_tensor_role role;
	rs_tensor_layout layout;
	size_t groups;
} role;

static rs_tensor_layout
flipped(rs_tensor_layout l, bool flip)
{
	if (!flip)
		return l;
	return l == RS_LAYOUT_IN_OUT ? RS_LAYOUT_OUT_IN : RS_LAYOUT_IN_OUT;
}

/* A kernel's group count when it divides the channels it must; 0 else. */
static size_t
conv_groups(const Onnx__NodeProto *n, const rs_tensor *t)
{
	int64_t g = attr_int(n, "group", 1);

	if (g < 1 || t->ndim < 1 || (uint64_t)g > t->shape[0] || t->shape[0] % (uint64_t)g != 0)
		return 0;
	return (size_t)g;
}

/* What n does with the weight t arriving (flipped or not) at input `slot`. */
static role
role_of(const Onnx__NodeProto *n, size_t slot, const rs_tensor *t, bool flip)
{
	role r = {RS_ROLE_OTHER, RS_LAYOUT_OUT_IN, 0};
	bool two_d = t->ndim == 2;

	if (!default_domain(n->domain))
		return r;
	if ((op_is(n, "MatMul") || op_is(n, "MatMulInteger")) && two_d && slot <= 1) {
		r.role = RS_ROLE_LINEAR;
		r.layout = flipped(slot == 1 ? RS_LAYOUT_IN_OUT : RS_LAYOUT_OUT_IN, flip);
	} else if (op_is(n, "QLinearMatMul") && two_d && (slot == 0 || slot == 3)) {
		r.role = RS_ROLE_LINEAR;
		r.layout = flipped(slot == 3 ? RS_LAYOUT_IN_OUT : RS_LAYOUT_OUT_IN, flip);
	} else if (op_is(n, "Gemm") && two_d && slot <= 1) {
		bool trans = attr_int(n, slot == 1 ? "transB" : "transA", 0) != 0;

		r.role = RS_ROLE_LINEAR;
		/* B (k x n) is in x out unless transposed; A (m x k) is out x in */
		r.layout = slot == 1 ? (trans ? RS_LAYOUT_OUT_IN : RS_LAYOUT_IN_OUT) :
		                       (trans ? RS_LAYOUT_IN_OUT : RS_LAYOUT_OUT_IN);
		r.layout = flipped(r.layout, flip);
	} else if (((op_is(n, "Conv") || op_is(n, "ConvInteger")) && slot == 1) ||
	           (op_is(n, "QLinearConv") && slot == 3)) {
		r.role = RS_ROLE_CONV;
		r.groups = conv_groups(n, t);
	} else if (op_is(n, "ConvTranspose") && slot == 1) {
		/* (in, out / group, k...): the input channels come first */
		r.role = RS_ROLE_CONV;
		r.layout = RS_LAYOUT_IN_OUT;
		r.groups = conv_groups(n, t);
	} else if (op_is(n, "Gather") && slot == 0 && t->ndim >= 2 &&
	           attr_int(n, "axis", 0) == 0) {
		r.role = RS_ROLE_EMBEDDING;
		r.layout = flipped(RS_LAYOUT_OUT_IN, flip);
	}
	return r;
}

static const char *
role_text(char *buf, size_t len, role r)
{
	if (r.role == RS_ROLE_LINEAR)
		snprintf(buf, len, "linear %s", rs_tensor_layout_name(r.layout));
	else if (r.role == RS_ROLE_CONV && r.groups > 1)
		snprintf(buf, len, "conv %s, groups %zu", rs_tensor_layout_name(r.layout), r.groups);
	else if (r.role == RS_ROLE_CONV)
		snprintf(buf, len, "conv %s", rs_tensor_layout_name(r.layout));
	else
		snprintf(buf, len, "%s", rs_tensor_role_name(r.role));
	return buf;
}

static void
decide(onnx_build *b, size_t w, role r, const Onnx__NodeProto *n)
{
	rs_tensor *t = &b->m->tensors[w];
	weight_use *u = &b->use[w];
	role had = {t->role, t->layout, t->groups};
	char one[64], two[64], *key, *value, *label;

	if (!u->decided) {
		u->decided = true;
		u->decided_by = node_label(n, b->step);
		t->role = r.role;
		t->layout = r.layout;
		t->groups = r.groups;
		if (r.role == RS_ROLE_CONV && r.groups == 0 && attr_int(n, "group", 1) != 1) {
			key = rs_xasprintf("groups.%s", t->name);
			value = rs_xasprintf("%s: group %lld does not divide the kernel's first "
			                     "dimension (%zu); groups unknown", u->decided_by,
			                     (long long)attr_int(n, "group", 1),
			                     t->ndim ? t->shape[0] : 0);
			meta_add(b, key, value);
			free(key);
			free(value);
		}
		return;
	}
	if (u->conflict || (had.role == r.role && had.layout == r.layout && had.groups == r.groups))
		return;
	u->conflict = true;
	label = node_label(n, b->step);
	key = rs_xasprintf("role_conflict.%s", t->name);
	value = rs_xasprintf("%s from %s, %s from %s: the first in graph order decides",
	                     role_text(one, sizeof one, had), u->decided_by,
	                     role_text(two, sizeof two, r), label);
	meta_add(b, key, value);
	free(key);
	free(value);
	free(label);
}

static void
set_alias(onnx_build *b, const char *name, size_t value)
{
	if (b->nundos == b->undocap) {
		b->undocap = b->undocap ? 2 * b->undocap : 64;
		b->undos = rs_xreallocarray(b->undos, b->undocap, sizeof *b->undos);
	}
	b->undos[b->nundos].key = name;
	b->undos[b->nundos].old = map_put(&b->aliases, name, value);
	b->nundos++;
}

/* Names a subgraph gave are gone when it ends. */
static void
pop_aliases(onnx_build *b, size_t mark)
{
	while (b->nundos > mark) {
		b->nundos--;
		(void)map_put(&b->aliases, b->undos[b->nundos].key, b->undos[b->nundos].old);
	}
}

/* The weight value `name` is, if any: its index and whether it arrives
 * transposed. */
static size_t
resolve(const onnx_build *b, const char *name, bool *flip)
{
	size_t a = map_get(&b->aliases, name);

	if (a != NONE) {
		*flip = (a & 1) != 0;
		return a >> 1;
	}
	*flip = false;
	return map_get(&b->weights, name);
}

static void analyse_graph(onnx_build *b, const Onnx__GraphProto *g);

static void
analyse_node(onnx_build *b, const Onnx__NodeProto *n)
{
	size_t i, k, alias = NONE, mark;
	bool flip, more;

	b->step++;
	for (i = 0; i < n->n_input; i++) {
		const char *in = n->input[i];
		size_t w;

		if (in == NULL || in[0] == '\0' || (w = resolve(b, in, &flip)) == NONE)
			continue;
		if (b->use[w].step == NONE) {
			b->use[w].step = b->step;
			b->use[w].input = i;
		}
		if (passes_through(n, i, &b->m->tensors[w], &more)) {
			alias = 2 * w + (flip != more);
			continue;
		}
		decide(b, w, role_of(n, i, &b->m->tensors[w], flip), n);
	}
	for (i = 0; i < n->n_attribute; i++) {
		const Onnx__AttributeProto *a = n->attribute[i];

		if (a->g != NULL) {
			mark = b->nundos;
			analyse_graph(b, a->g);
			pop_aliases(b, mark);
		}
		for (k = 0; k < a->n_graphs; k++) {
			mark = b->nundos;
			analyse_graph(b, a->graphs[k]);
			pop_aliases(b, mark);
		}
	}
	/* outputs: a passed-through weight under its new name; any other
	 * output hides whatever that name meant before */
	for (i = 0; i < n->n_output; i++)
		if (n->output[i] != NULL && n->output[i][0] != '\0')
			set_alias(b, n->output[i], i == 0 ? alias : NONE);
}

static void
analyse_graph(onnx_build *b, const Onnx__GraphProto *g)
{
	size_t i;

	for (i = 0; i < g->n_node; i++)
		analyse_node(b, g->node[i]);
}

/* ---- order ---------------------------------------------------------------------------- */

typedef struct order_key {
	size_t step, input, defined, index;
} order_key;

static int
compare_order(const void *pa, const void *pb)
{
	const order_key *a = pa, *b = pb;

	if (a->step != b->step)
		return a->step < b->step ? -1 : 1;
	if (a->input != b->input)
		return a->input < b->input ? -1 : 1;
	return a->defined < b->defined ? -1 : a->defined > b->defined;
}

/* Tensors in the order of their first consumer; unused ones last. */
static void
order_tensors(onnx_build *b)
{
	rs_model *m = b->m;
	order_key *keys = rs_xcalloc(m->ntensors + 1, sizeof *keys);
	rs_tensor *sorted = rs_xcalloc(m->ntensors + 1, sizeof *sorted);
	size_t i;

	for (i = 0; i < m->ntensors; i++) {
		keys[i].step = b->use[i].step;
		keys[i].input = b->use[i].step == NONE ? 0 : b->use[i].input;
		keys[i].defined = b->use[i].defined;
		keys[i].index = i;
		/* consumed, but only by nodes passing it on to nothing */
		if (b->use[i].step != NONE && !b->use[i].decided)
			m->tensors[i].role = RS_ROLE_OTHER;
	}
	qsort(keys, m->ntensors, sizeof *keys, compare_order);
	for (i = 0; i < m->ntensors; i++)
		sorted[i] = m->tensors[keys[i].index];
	free(m->tensors);
	m->tensors = sorted;
	free(keys);
}

/* ---- the model -------------------------------------------------------------------------- */

static void
model_metadata(onnx_build *b, const Onnx__ModelProto *mp)
{
	char num[32], *list = NULL;
	size_t i;

	if (mp->has_ir_version) {
		snprintf(num, sizeof num, "%lld", (long long)mp->ir_version);
		meta_add(b, "ir_version", num);
	}
	if (mp->producer_name != NULL && mp->producer_name[0] != '\0')
		meta_add(b, "producer_name", mp->producer_name);
	if (mp->producer_version != NULL && mp->producer_version[0] != '\0')
		meta_add(b, "producer_version", mp->producer_version);
	for (i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
		const char *d = o->domain != NULL && o->domain[0] != '\0' ? o->domain : "ai.onnx";
		char *more = rs_xasprintf("%s%s%s %lld", list ? list : "", list ? ", " : "", d,
		                          (long long)(o->has_version ? o->version : 0));
		free(list);
		list = more;
	}
	if (list != NULL)
		meta_add(b, "opset_import", list);
	free(list);
	if (mp->graph->name != NULL && mp->graph->name[0] != '\0')
		meta_add(b, "graph_name", mp->graph->name);
	for (i = 0; i < mp->n_metadata_props; i++) {
		const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
		char *key;

		if (e->key == NULL)
			continue;
		key = rs_xasprintf("metadata_props.%s", e->key);
		meta_add(b, key, e->value != NULL ? e->value : "");
		free(key);
	}
}

typedef struct counting_allocator {
	bool failed;
} counting_allocator;

static void *
pb_alloc(void *data, size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		((counting_allocator *)data)->failed = true;
	return p;
}

static void
pb_free(void *data, void *p)
{
	(void)data;
	free(p);
}

static rs_model *
onnx_image(const char *path, const unsigned char *image, size_t len, rs_error *err)
{
	rs_model *m = rs_xcalloc(1, sizeof *m);
	onnx_build b = {0};
	counting_allocator ca = {false};
	ProtobufCAllocator alloc = {pb_alloc, pb_free, &ca};
	Onnx__ModelProto *mp = NULL;
	unsigned char *stripped = NULL;
	size_t stripped_len = 0, i;
	span *raws = NULL;
	rs_status st;

	m->path = rs_xstrdup(path);
	m->format = "onnx";
	m->map = image;
	m->map_len = len;
	m->file_size = len;
	m->network_order = true;
	b.m = m;
	b.path = path;
	b.image = image;
	b.len = len;
	b.err = err;

	if ((st = strip_image(path, image, len, &stripped, &stripped_len, &raws, &b.nraws,
	                      err)) != RS_OK)
		goto out;
	b.raws = raws;
	m->header_len = stripped_len;
	rs_sha256(stripped, stripped_len, m->header_sha256);
	mp = onnx__model_proto__unpack(&alloc, stripped_len, stripped);
	free(stripped);
	stripped = NULL;
	if (mp == NULL) {
		st = ca.failed ? rs_error_set(err, RS_ENOMEM, "%s: out of memory for the model's "
		                              "structure", path) :
		     rs_error_set(err, RS_EFORMAT, "%s: not a valid ONNX model: a field holds "
		                  "the wrong protobuf type for onnx.proto (the ModelProto does "
		                  "not parse)", path);
		goto out;
	}
	if (mp->graph == NULL) {
		st = rs_error_set(err, RS_EFORMAT, "%s: not an ONNX model with weights: the "
		                  "ModelProto has no graph", path);
		goto out;
	}
	model_metadata(&b, mp);
	if ((st = collect_graph(&b, mp->graph)) != RS_OK)
		goto out;
	analyse_graph(&b, mp->graph);
	order_tensors(&b);
out:
	if (mp != NULL)
		onnx__model_proto__free_unpacked(mp, &alloc);
	free(stripped);
	free(raws);
	for (i = 0; i < m->ntensors && b.use != NULL; i++)
		free(b.use[i].decided_by);
	free(b.use);
	map_free(&b.weights);
	map_free(&b.aliases);
	free(b.undos);
	for (i = 0; i < b.next; i++)
		free(b.ext[i].location);
	free(b.ext);
	if (st != RS_OK) {
		rs_model_close(m);
		return NULL;
	}
	return m;
}

rs_model *
rs_onnx_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	return onnx_image(path, len ? bytes : (const unsigned char *)"", len, err);
}

rs_model *
rs_onnx_open(const char *path, rs_error *err)
{
	rs_mapped_file f;

	if (!rs_file_map(path, &f, err))
		return NULL;
	return rs_file_map_adopt(path, &f, onnx_image(path, rs_file_map_bytes(&f), (size_t)f.size,
	                                         err), err);
}
