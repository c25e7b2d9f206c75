/*
 * io-gguf.c — GGUF v2 and v3, the files of llama.cpp (ggml).
 *
 * A GGUF file is, little-endian throughout:
 *
 *   "GGUF", version (u32), tensor_count (u64), kv_count (u64)
 *   kv_count entries:   key (string), type (u32), value
 *   tensor_count infos: name (string), n_dims (u32), ne[n_dims] (u64),
 *                       type (u32, a ggml type), offset (u64)
 *   padding to general.alignment (32 unless the metadata says otherwise)
 *   the data section: each tensor at its offset from the section's start
 *
 * where a string is a u64 length and that many bytes (no NUL), and a value
 * is one of 13 types: integers of 8..64 bits, float32/64, bool, string, or
 * an array (element type u32, count u64, elements).  Version 1 had 32-bit
 * counts and lengths; it is refused as too old.  v2 and v3 share the
 * layout (v3 added big-endian files, recognised here by their swapped
 * version and refused).
 *
 * ne[0] is the contiguous dimension, so the C-order shape is ne[] reversed:
 * a linear weight with ne = [in, out] is out x in, the layout safetensors
 * uses.  Rows of a block type (Q4_K: 256 elements in 144 bytes) are whole
 * blocks, so a row is addressable and rs_dtype_to_double decodes it.
 *
 * Nothing in the file is trusted: every count and length is checked
 * against the bytes that remain before anything is allocated for it (a
 * claimed count grows arrays only as entries are actually read), the key
 * and tensor name sets are checked for duplicates by sorting, and the
 * tensors' byte ranges for overlaps the same way, so no input costs more
 * than O(n log n) in its size.  The header is read through a private copy
 * that grows as the parser reaches further (copied under the SIGBUS guard,
 * since its end is only known once it is parsed); tensor bytes are never
 * read at open.
 *
 * Every metadata entry becomes a model metadata entry: numbers and
 * strings printed, arrays summarised ("[array of 32000 strings]"), plus
 * "gguf.version".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define NAME_MAX_LEN 65535          /* keys and tensor names (the spec's limit) */
#define VALUE_SHOWN_MAX 65536       /* longer strings are summarised */
#define ARRAY_DEPTH_MAX 8           /* arrays of arrays of ... */
#define NAME_SHOWN 160
#define COPY_MIN 65536

/* Sizes of the smallest possible entries, to bound claimed counts. */
#define MIN_KV_BYTES 13             /* key length, type, a 1-byte value */
#define MIN_TENSOR_BYTES 32         /* name length, n_dims, ne[0], type, offset */

enum gguf_type {
	GT_UINT8, GT_INT8, GT_UINT16, GT_INT16, GT_UINT32, GT_INT32, GT_FLOAT32,
	GT_BOOL, GT_STRING, GT_ARRAY, GT_UINT64, GT_INT64, GT_FLOAT64, GT_COUNT
};

static const char *const gguf_type_names[GT_COUNT] = {
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
	"string", "array", "uint64", "int64", "float64",
};

/* Bytes of a fixed-size value; 0 for string and array. */
static const unsigned gguf_type_size[GT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/*
 * ggml's types by number (ggml.h's enum ggml_type), with what rankscope
 * calls them.  Numbers ggml has retired (4, 5: Q4_2, Q4_3; 31..33 and
 * 36..38: the repacked layouts, never written to files) are refused by
 * name.
 */
typedef struct ggml_type_row {
	const char *name;            /* NULL: not a type */
	rs_dtype dtype;
	const char *retired;         /* why a retired number is refused */
} ggml_type_row;

static const ggml_type_row ggml_types[] = {
	[0] = {"F32", RS_DTYPE_F32, NULL},
	[1] = {"F16", RS_DTYPE_F16, NULL},
	[2] = {"Q4_0", RS_DTYPE_Q4_0, NULL},
	[3] = {"Q4_1", RS_DTYPE_Q4_1, NULL},
	[4] = {NULL, RS_DTYPE_COUNT, "Q4_2, removed from ggml in 2023"},
	[5] = {NULL, RS_DTYPE_COUNT, "Q4_3, removed from ggml in 2023"},
	[6] = {"Q5_0", RS_DTYPE_Q5_0, NULL},
	[7] = {"Q5_1", RS_DTYPE_Q5_1, NULL},
	[8] = {"Q8_0", RS_DTYPE_Q8_0, NULL},
	[9] = {"Q8_1", RS_DTYPE_Q8_1, NULL},
	[10] = {"Q2_K", RS_DTYPE_Q2_K, NULL},
	[11] = {"Q3_K", RS_DTYPE_Q3_K, NULL},
	[12] = {"Q4_K", RS_DTYPE_Q4_K, NULL},
	[13] = {"Q5_K", RS_DTYPE_Q5_K, NULL},
	[14] = {"Q6_K", RS_DTYPE_Q6_K, NULL},
	[15] = {"Q8_K", RS_DTYPE_Q8_K, NULL},
	[16] = {"IQ2_XXS", RS_DTYPE_IQ2_XXS, NULL},
	[17] = {"IQ2_XS", RS_DTYPE_IQ2_XS, NULL},
	[18] = {"IQ3_XXS", RS_DTYPE_IQ3_XXS, NULL},
	[19] = {"IQ1_S", RS_DTYPE_IQ1_S, NULL},
	[20] = {"IQ4_NL", RS_DTYPE_IQ4_NL, NULL},
	[21] = {"IQ3_S", RS_DTYPE_IQ3_S, NULL},
	[22] = {"IQ2_S", RS_DTYPE_IQ2_S, NULL},
	[23] = {"IQ4_XS", RS_DTYPE_IQ4_XS, NULL},
	[24] = {"I8", RS_DTYPE_I8, NULL},
	[25] = {"I16", RS_DTYPE_I16, NULL},
	[26] = {"I32", RS_DTYPE_I32, NULL},
	[27] = {"I64", RS_DTYPE_I64, NULL},
	[28] = {"F64", RS_DTYPE_F64, NULL},
	[29] = {"IQ1_M", RS_DTYPE_IQ1_M, NULL},
	[30] = {"BF16", RS_DTYPE_BF16, NULL},
	[31] = {NULL, RS_DTYPE_COUNT, "Q4_0_4_4, a repacked layout ggml no longer "
	        "reads from files (requantise to Q4_0)"},
	[32] = {NULL, RS_DTYPE_COUNT, "Q4_0_4_8, a repacked layout ggml no longer "
	        "reads from files (requantise to Q4_0)"},
	[33] = {NULL, RS_DTYPE_COUNT, "Q4_0_8_8, a repacked layout ggml no longer "
	        "reads from files (requantise to Q4_0)"},
	[34] = {"TQ1_0", RS_DTYPE_TQ1_0, NULL},
	[35] = {"TQ2_0", RS_DTYPE_TQ2_0, NULL},
	[36] = {NULL, RS_DTYPE_COUNT, "IQ4_NL_4_4, a repacked layout ggml no longer "
	        "reads from files (requantise to IQ4_NL)"},
	[37] = {NULL, RS_DTYPE_COUNT, "IQ4_NL_4_8, a repacked layout ggml no longer "
	        "reads from files (requantise to IQ4_NL)"},
	[38] = {NULL, RS_DTYPE_COUNT, "IQ4_NL_8_8, a repacked layout ggml no longer "
	        "reads from files (requantise to IQ4_NL)"},
	[39] = {"MXFP4", RS_DTYPE_MXFP4, NULL},
	[40] = {"NVFP4", RS_DTYPE_NVFP4, NULL},
	[41] = {"Q1_0", RS_DTYPE_Q1_0, NULL},
	[42] = {"Q2_0", RS_DTYPE_Q2_0, NULL},
};
#define NGGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

/* ---- reading the header ------------------------------------------------------ */

/*
 * The parser's view of the image: bytes [0, len) of which [0, have) are
 * copied into `copy`, and the position reached.  `ctx` names what is
 * being read, for messages ("tensor 'blk.0.attn_q.weight'").
 */
typedef struct reader {
	const char *path;
	const unsigned char *map;
	size_t len;
	unsigned char *copy;
	size_t have;
	size_t pos;
	char ctx[NAME_SHOWN + 48];
	rs_error *err;
} reader;

static void
set_ctx(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_ctx(reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->ctx, sizeof r->ctx, fmt, ap);
	va_end(ap);
}

static rs_status
fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "PATH: CTX: message" */
static rs_status
fail(reader *r, const char *fmt, ...)
{
	char msg[RS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return rs_error_set(r->err, RS_EFORMAT, "%s: %s: %s", r->path, r->ctx, msg);
}

/* Makes [0, end) of the image available in r->copy. */
static rs_status
reach(reader *r, size_t end)
{
	size_t want = end;
	unsigned char *bigger;

	if (end <= r->have)
		return RS_OK;
	if (want < 2 * r->have)
		want = 2 * r->have;
	if (want < COPY_MIN)
		want = COPY_MIN;
	if (want > r->len)
		want = r->len;
	bigger = realloc(r->copy, want);
	if (bigger == NULL)
		return rs_error_set(r->err, RS_ENOMEM, "%s: out of memory for its %zu-byte "
		                    "header", r->path, want);
	r->copy = bigger;
	if (rs_guard_copy(r->copy + r->have, r->map + r->have, want - r->have, r->path,
	                  NULL, r->err) != RS_OK)
		return RS_EIO;
	r->have = want;
	return RS_OK;
}

/* n more bytes of `what` at the position: their offset in r->copy. */
static rs_status
take(reader *r, uint64_t n, const char *what, size_t *at)
{
	if (n > r->len - r->pos)
		return fail(r, "%s (%llu bytes at offset %zu) runs past the end of the "
		            "file's %zu bytes (truncated?)", what, (unsigned long long)n,
		            r->pos, r->len);
	if (reach(r, r->pos + (size_t)n) != RS_OK)
		return r->err->code;
	*at = r->pos;
	r->pos += (size_t)n;
	return RS_OK;
}

static rs_status
take_u32(reader *r, const char *what, uint32_t *v)
{
	size_t at = 0;
	rs_status st = take(r, 4, what, &at);

	if (st == RS_OK)
		*v = (uint32_t)rs_read_le(r->copy + at, 4);
	return st;
}

static rs_status
take_u64(reader *r, const char *what, uint64_t *v)
{
	size_t at = 0;
	rs_status st = take(r, 8, what, &at);

	if (st == RS_OK)
		*v = rs_read_le(r->copy + at, 8);
	return st;
}

/* A string's length and bytes; *at and *n locate them in r->copy (valid
 * until the next take). */
static rs_status
take_string(reader *r, const char *what, size_t *at, size_t *n)
{
	char lw[64];
	uint64_t len;
	rs_status st;

	snprintf(lw, sizeof lw, "the length of %s", what);
	if ((st = take_u64(r, lw, &len)) != RS_OK)
		return st;
	if (len > r->len - r->pos)
		return fail(r, "%s claims %llu bytes, more than the %zu left in the file",
		            what, (unsigned long long)len, r->len - r->pos);
	*n = (size_t)len;
	return take(r, len, what, at);
}

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool
is_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return false;
		if (n - i <= need)
			return false;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += need + 1;
	}
	return true;
}

/* ---- the model being built ------------------------------------------------------ */

typedef struct builder {
	reader r;
	rs_model *m;
	size_t tensor_cap, meta_cap;
	uint32_t alignment;
	uint64_t *rel_offset;        /* each tensor's offset in the data section */
} builder;

static void
add_metadata(builder *b, char *key, char *value)
{
	rs_model *m = b->m;

	if (m->nmetadata == b->meta_cap) {
		b->meta_cap = b->meta_cap ? 2 * b->meta_cap : 16;
		m->metadata = rs_xreallocarray(m->metadata, b->meta_cap, sizeof *m->metadata);
	}
	m->metadata[m->nmetadata].key = key;
	m->metadata[m->nmetadata].value = value;
	m->nmetadata++;
}

static const char *
type_name(uint32_t t)
{
	return t < GT_COUNT ? gguf_type_names[t] : "unknown";
}

/*
 * Skips one value of type `type` (the position is at it), checking every
 * nested length; an array's element type and count go to *etype, *count
 * for the summary.  depth counts enclosing arrays.
 */
static rs_status
skip_value(reader *r, uint32_t type, int depth, uint32_t *etype, uint64_t *count)
{
	size_t at, n;
	uint64_t k, cnt;
	uint32_t et;
	rs_status st;

	if (type >= GT_COUNT)
		return fail(r, "unknown value type %u (GGUF defines 0..%d)", type, GT_COUNT - 1);
	if (type == GT_STRING)
		return take_string(r, "the string value", &at, &n);
	if (type != GT_ARRAY)
		return take(r, gguf_type_size[type], "the value", &at);
	if (depth >= ARRAY_DEPTH_MAX)
		return fail(r, "arrays nested more than %d deep", ARRAY_DEPTH_MAX);
	if ((st = take_u32(r, "the array's element type", &et)) != RS_OK ||
	    (st = take_u64(r, "the array's element count", &cnt)) != RS_OK)
		return st;
	if (et >= GT_COUNT)
		return fail(r, "array of unknown value type %u (GGUF defines 0..%d)", et,
		            GT_COUNT - 1);
	if (etype != NULL) {
		*etype = et;
		*count = cnt;
	}
	if (et != GT_STRING && et != GT_ARRAY) {
		uint64_t left = r->len - r->pos;

		/* cnt * size <= left, without overflow */
		if (cnt > left / gguf_type_size[et])
			return fail(r, "array of %llu %s elements cannot fit in the %llu bytes "
			            "left in the file", (unsigned long long)cnt,
			            gguf_type_names[et], (unsigned long long)left);
		return take(r, cnt * gguf_type_size[et], "the array's elements", &at);
	}
	/* each string takes at least its 8-byte length, each array 12 bytes */
	if (cnt > (r->len - r->pos) / (et == GT_STRING ? 8 : 12))
		return fail(r, "array of %llu %ss cannot fit in the %zu bytes left in the "
		            "file", (unsigned long long)cnt, gguf_type_names[et],
		            r->len - r->pos);
	for (k = 0; k < cnt; k++)
		if ((st = skip_value(r, et, depth + 1, NULL, NULL)) != RS_OK)
			return st;
	return RS_OK;
}

/* The printed value of the fixed-size value at copy[at]. */
static char *
print_scalar(const unsigned char *p, uint32_t type)
{
	uint64_t u = rs_read_le(p, (int)gguf_type_size[type]);
	float f;
	double d;
	uint32_t w;

	switch (type) {
	case GT_UINT8: case GT_UINT16: case GT_UINT32: case GT_UINT64:
		return rs_xasprintf("%llu", (unsigned long long)u);
	case GT_INT8: return rs_xasprintf("%d", (int)(int8_t)u);
	case GT_INT16: return rs_xasprintf("%d", (int)(int16_t)u);
	case GT_INT32: return rs_xasprintf("%ld", (long)(int32_t)u);
	case GT_INT64: return rs_xasprintf("%lld", (long long)(int64_t)u);
	case GT_BOOL: return rs_xstrdup(u ? "true" : "false");
	case GT_FLOAT32:
		w = (uint32_t)u;
		memcpy(&f, &w, sizeof f);
		return rs_xasprintf("%.9g", (double)f);
	default:
		memcpy(&d, &u, sizeof d);
		return rs_xasprintf("%.17g", d);
	}
}

/* One metadata entry: key, type, value. */
static rs_status
read_kv(builder *b, uint64_t index)
{
	reader *r = &b->r;
	size_t at, n, i, vat;
	uint32_t type, etype = 0;
	uint64_t count = 0;
	char *key, *value, shown[NAME_SHOWN];
	rs_status st;

	set_ctx(r, "metadata entry %llu", (unsigned long long)index);
	if ((st = take_string(r, "its key", &at, &n)) != RS_OK)
		return st;
	if (n == 0)
		return fail(r, "empty key");
	if (n > NAME_MAX_LEN)
		return fail(r, "key of %zu bytes (GGUF keys are at most %u)", n, NAME_MAX_LEN);
	for (i = 0; i < n; i++)
		if (r->copy[at + i] < 0x20 || r->copy[at + i] > 0x7e)
			return fail(r, "key holds byte 0x%02x (GGUF keys are printable ASCII)",
			            r->copy[at + i]);
	key = rs_xstrndup((const char *)r->copy + at, n);
	set_ctx(r, "metadata key '%s'", rs_printable(shown, sizeof shown, key));
	if ((st = take_u32(r, "its value type", &type)) != RS_OK) {
		free(key);
		return st;
	}
	vat = r->pos;
	if ((st = skip_value(r, type, 0, &etype, &count)) != RS_OK) {
		free(key);
		return st;
	}
	switch (type) {
	case GT_STRING:
		n = (size_t)rs_read_le(r->copy + vat, 8);
		if (n > VALUE_SHOWN_MAX || memchr(r->copy + vat + 8, '\0', n) != NULL ||
		    !is_utf8(r->copy + vat + 8, n))
			value = rs_xasprintf("[string of %zu bytes]", n);
		else
			value = rs_xstrndup((const char *)r->copy + vat + 8, n);
		break;
	case GT_ARRAY:
		value = rs_xasprintf("[array of %llu %s%s]", (unsigned long long)count,
		                     type_name(etype),
		                     count != 1 && (etype == GT_STRING || etype == GT_ARRAY) ?
		                     "s" : "");
		break;
	default:
		value = print_scalar(r->copy + vat, type);
		break;
	}
	if (strcmp(key, "general.alignment") == 0) {
		uint64_t a;

		if (type != GT_UINT32) {
			free(key);
			free(value);
			return fail(r, "must be a uint32, not a %s", type_name(type));
		}
		a = rs_read_le(r->copy + vat, 4);
		if (a == 0 || (a & (a - 1)) != 0) {
			free(key);
			free(value);
			return fail(r, "%llu is not a power of two", (unsigned long long)a);
		}
		b->alignment = (uint32_t)a;
	}
	add_metadata(b, key, value);
	return RS_OK;
}

/* One tensor info: name, n_dims, ne[], type, offset. */
static rs_status
read_tensor_info(builder *b, uint64_t index)
{
	reader *r = &b->r;
	rs_model *m = b->m;
	rs_tensor *t;
	const rs_dtype_info *info;
	uint64_t ne[GGUF_MAX_DIMS], offset;
	uint32_t ndims, type, k;
	size_t at, n, count = 1, rows, nbytes;
	char shown[NAME_SHOWN];
	rs_status st;

	set_ctx(r, "tensor info %llu", (unsigned long long)index);
	if ((st = take_string(r, "its name", &at, &n)) != RS_OK)
		return st;
	if (n == 0)
		return fail(r, "empty tensor name");
	if (n > NAME_MAX_LEN)
		return fail(r, "tensor name of %zu bytes (at most %u)", n, NAME_MAX_LEN);
	if (memchr(r->copy + at, '\0', n) != NULL)
		return fail(r, "tensor name holds a NUL byte");
	if (!is_utf8(r->copy + at, n))
		return fail(r, "tensor name is not valid UTF-8");
	if (m->ntensors == b->tensor_cap) {
		b->tensor_cap = b->tensor_cap ? 2 * b->tensor_cap : 16;
		m->tensors = rs_xreallocarray(m->tensors, b->tensor_cap, sizeof *m->tensors);
		b->rel_offset = rs_xreallocarray(b->rel_offset, b->tensor_cap,
		                                 sizeof *b->rel_offset);
	}
	t = &m->tensors[m->ntensors++];
	memset(t, 0, sizeof *t);
	t->name = rs_xstrndup((const char *)r->copy + at, n);
	set_ctx(r, "tensor '%s'", rs_printable(shown, sizeof shown, t->name));
	if ((st = take_u32(r, "its n_dims", &ndims)) != RS_OK)
		return st;
	if (ndims < 1 || ndims > GGUF_MAX_DIMS)
		return fail(r, "n_dims %u is outside 1..%d", ndims, GGUF_MAX_DIMS);
	for (k = 0; k < ndims; k++) {
		char what[32];

		snprintf(what, sizeof what, "ne[%u]", k);
		if ((st = take_u64(r, what, &ne[k])) != RS_OK)
			return st;
		if (ne[k] == 0)
			return fail(r, "ne[%u] is 0 (every dimension is at least 1)", k);
		if (ne[k] > SIZE_MAX || rs_mul_overflows(count, (size_t)ne[k], &count) ||
		    count > (size_t)INT64_MAX)
			return fail(r, "element count overflows at ne[%u] = %llu", k,
			            (unsigned long long)ne[k]);
	}
	if ((st = take_u32(r, "its type", &type)) != RS_OK)
		return st;
	if (type >= NGGML_TYPES || ggml_types[type].name == NULL)
		return type < NGGML_TYPES ?
		    fail(r, "ggml type %u is %s", type, ggml_types[type].retired) :
		    fail(r, "unknown ggml type %u (rankscope knows 0..%zu)", type,
		         NGGML_TYPES - 1);
	t->dtype = ggml_types[type].dtype;
	info = rs_dtype_get(t->dtype);
	if (info->block && ne[0] % info->block != 0)
		return fail(r, "rows of %llu elements are not a whole number of %s blocks "
		            "(%u elements each)", (unsigned long long)ne[0], info->name,
		            info->block);
	if ((st = take_u64(r, "its data offset", &offset)) != RS_OK)
		return st;
	if (offset % b->alignment != 0)
		return fail(r, "data offset %llu is not a multiple of the alignment %u",
		            (unsigned long long)offset, b->alignment);
	/* bytes: whole blocks per row, times rows (or count x element size) */
	rows = count / (size_t)ne[0];
	if (info->block) {
		if (rs_mul_overflows((size_t)ne[0] / info->block, info->block_bytes, &nbytes) ||
		    rs_mul_overflows(nbytes, rows, &nbytes))
			return fail(r, "byte size overflows");
	} else if (rs_mul_overflows(count, info->bits / 8, &nbytes)) {
		return fail(r, "byte size overflows");
	}
	t->ndim = ndims;
	t->shape = rs_xcalloc(ndims, sizeof *t->shape);
	for (k = 0; k < ndims; k++)
		t->shape[k] = (size_t)ne[ndims - 1 - k];
	t->count = count;
	t->nbytes = nbytes;
	t->layout = RS_LAYOUT_OUT_IN;
	b->rel_offset[m->ntensors - 1] = offset;
	return RS_OK;
}

/* ---- whole-file checks --------------------------------------------------------- */

/* Sort records: a name (or an offset) and the entry it belongs to. */
typedef struct sort_rec {
	const char *name;
	uint64_t offset;
	size_t index;
} sort_rec;

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const sort_rec *)a)->name, ((const sort_rec *)b)->name);
}

static int
by_offset(const void *a, const void *b)
{
	uint64_t x = ((const sort_rec *)a)->offset, y = ((const sort_rec *)b)->offset;

	return x < y ? -1 : x > y;
}

/* No key twice (the file's own: entry 0 is gguf.version, ours), no tensor
 * name twice, no two tensors sharing bytes (once placed: every range is
 * inside the file): O(n log n) by sorting. */
static rs_status
check_unique(builder *b)
{
	rs_model *m = b->m;
	reader *r = &b->r;
	char s1[NAME_SHOWN], s2[NAME_SHOWN];
	size_t n = m->nmetadata > m->ntensors ? m->nmetadata : m->ntensors, i, k;
	sort_rec *rec = rs_xmalloc((n ? n : 1) * sizeof *rec);
	rs_status st = RS_OK;

	for (i = 1, k = 0; i < m->nmetadata; i++, k++)
		rec[k].name = m->metadata[i].key, rec[k].index = i;
	qsort(rec, k, sizeof *rec, by_name);
	for (i = 1; i < k && st == RS_OK; i++)
		if (strcmp(rec[i - 1].name, rec[i].name) == 0) {
			set_ctx(r, "metadata key '%s'", rs_printable(s1, sizeof s1, rec[i].name));
			st = fail(r, "appears twice");
		}
	for (i = 0; i < m->ntensors; i++) {
		rec[i].name = m->tensors[i].name;
		rec[i].offset = b->rel_offset[i];
		rec[i].index = i;
	}
	qsort(rec, m->ntensors, sizeof *rec, by_name);
	for (i = 1; i < m->ntensors && st == RS_OK; i++)
		if (strcmp(rec[i - 1].name, rec[i].name) == 0) {
			set_ctx(r, "tensor '%s'", rs_printable(s1, sizeof s1, rec[i].name));
			st = fail(r, "name appears twice");
		}
	qsort(rec, m->ntensors, sizeof *rec, by_offset);
	for (i = 1; i < m->ntensors && st == RS_OK; i++) {
		const rs_tensor *p = &m->tensors[rec[i - 1].index], *q = &m->tensors[rec[i].index];
		uint64_t pe = rec[i - 1].offset + p->nbytes;

		/* placed: every range lies inside the file, so nothing wraps */
		if (pe > rec[i].offset) {
			set_ctx(r, "tensors '%s' and '%s'", rs_printable(s1, sizeof s1, p->name),
			        rs_printable(s2, sizeof s2, q->name));
			st = fail(r, "their data overlap ([%llu, %llu) and [%llu, %llu) of the "
			          "data section)", (unsigned long long)rec[i - 1].offset,
			          (unsigned long long)pe, (unsigned long long)rec[i].offset,
			          (unsigned long long)(rec[i].offset + q->nbytes));
		}
	}
	free(rec);
	return st;
}

/* The data section starts at `ds`: every tensor inside the file. */
static rs_status
place_tensors(builder *b, size_t ds)
{
	rs_model *m = b->m;
	reader *r = &b->r;
	char shown[NAME_SHOWN];
	size_t i, avail = ds <= r->len ? r->len - ds : 0;

	for (i = 0; i < m->ntensors; i++) {
		rs_tensor *t = &m->tensors[i];
		uint64_t off = b->rel_offset[i];

		set_ctx(r, "tensor '%s'", rs_printable(shown, sizeof shown, t->name));
		if (ds > r->len)
			return fail(r, "the data section would start at byte %zu, past the end "
			            "of the file's %zu bytes (truncated?)", ds, r->len);
		if (off > avail || t->nbytes > avail - off)
			return fail(r, "its %zu bytes at offset %llu of the data section run "
			            "past the end of the file (the section holds %zu bytes; "
			            "truncated?)", t->nbytes, (unsigned long long)off, avail);
		t->offset = ds + off;
		t->data = r->map + ds + off;
	}
	return RS_OK;
}

/* ---- the parse --------------------------------------------------------------- */

static rs_status
parse(builder *b)
{
	reader *r = &b->r;
	size_t at, ds, hl;
	uint32_t version;
	uint64_t ntensors, nkv, i;
	rs_status st;

	set_ctx(r, "GGUF header");
	if ((st = take(r, r->len < 4 ? r->len : 4, "the magic", &at)) != RS_OK)
		return st;
	if (r->len < 4 || memcmp(r->copy, "GGUF", 4) != 0)
		return fail(r, "no \"GGUF\" magic%s", r->len < 4 ? " (the file is shorter "
		            "than 4 bytes)" : "");
	if ((st = take_u32(r, "the version", &version)) != RS_OK)
		return st;
	if ((version & 0xffff) == 0 && version != 0 && (version >> 24 == 2 || version >> 24 == 3))
		return fail(r, "a big-endian GGUF (version %u byte-swapped); rankscope reads "
		            "little-endian GGUF, as llama.cpp writes on every common machine",
		            version >> 24);
	if (version == 1)
		return fail(r, "GGUF version 1 is too old (it has 32-bit counts); rankscope "
		            "reads versions 2 and 3: convert it with a current llama.cpp");
	if (version != 2 && version != 3)
		return fail(r, "GGUF version %u (rankscope reads versions 2 and 3)", version);
	if ((st = take_u64(r, "the tensor count", &ntensors)) != RS_OK ||
	    (st = take_u64(r, "the metadata count", &nkv)) != RS_OK)
		return st;
	if (ntensors > (r->len - r->pos) / MIN_TENSOR_BYTES)
		return fail(r, "tensor_count %llu cannot fit in the file's %zu bytes (each "
		            "tensor info takes at least %d)", (unsigned long long)ntensors,
		            r->len, MIN_TENSOR_BYTES);
	if (nkv > (r->len - r->pos) / MIN_KV_BYTES)
		return fail(r, "kv_count %llu cannot fit in the file's %zu bytes (each entry "
		            "takes at least %d)", (unsigned long long)nkv, r->len, MIN_KV_BYTES);
	add_metadata(b, rs_xstrdup("gguf.version"), rs_xasprintf("%u", version));
	for (i = 0; i < nkv; i++)
		if ((st = read_kv(b, i)) != RS_OK)
			return st;
	for (i = 0; i < ntensors; i++)
		if ((st = read_tensor_info(b, i)) != RS_OK)
			return st;
	/* the data section starts at the next multiple of the alignment */
	ds = r->pos + (b->alignment - r->pos % b->alignment) % b->alignment;
	if ((st = place_tensors(b, ds)) != RS_OK || (st = check_unique(b)) != RS_OK)
		return st;
	/* the header: everything before the data section (the padding too,
	 * as far as the file has it) */
	hl = ds < r->len ? ds : r->len;
	if ((st = reach(r, hl)) != RS_OK)
		return st;
	b->m->header_len = hl;
	rs_sha256(r->copy, hl, b->m->header_sha256);
	return RS_OK;
}

rs_model *
rs_gguf_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	builder b;
	rs_model *m = rs_xcalloc(1, sizeof *m);
	rs_status st;

	memset(&b, 0, sizeof b);
	m->path = rs_xstrdup(path);
	m->format = "gguf";
	m->map = bytes;
	m->map_len = len;
	m->file_size = len;
	m->network_order = true;   /* tensor infos come in the writer's order */
	b.m = m;
	b.alignment = GGUF_DEFAULT_ALIGNMENT;
	b.r.path = path;
	b.r.map = bytes;
	b.r.len = len;
	b.r.err = err;
	st = parse(&b);
	free(b.r.copy);
	free(b.rel_offset);
	if (st != RS_OK) {
		rs_model_close(m);
		return NULL;
	}
	return m;
}

rs_model *
rs_gguf_open(const char *path, rs_error *err)
{
	rs_mapped_file f;

	if (!rs_file_map(path, &f, err))
		return NULL;
	return rs_file_map_adopt(path, &f, rs_gguf_parse(path, rs_file_map_bytes(&f), (size_t)f.size,
	                                         err), err);
}
