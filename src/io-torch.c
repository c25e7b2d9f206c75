/*
 * io-torch.c — PyTorch checkpoints written by torch.save since 1.6 (.pt,
 * .pth, .bin): a zip holding ARCHIVE/data.pkl, the pickled object, and
 * ARCHIVE/data/KEY, the raw little-endian bytes of each storage the
 * pickle refers to (plus ARCHIVE/version and, since 2.1,
 * ARCHIVE/byteorder).
 *
 * The pickle.  A pickle is a program for a stack machine that may import
 * and call anything, so it is never run: a restricted unpickler written
 * for this format knows only the opcodes torch.save's pickler emits for
 * state dicts and checkpoint dicts (protocols 2 to 5), and resolves
 * globals against an allow-list (OrderedDict, the tensor and parameter
 * rebuild functions, the storage classes and the dtypes) without
 * importing or calling anything.  It builds a value tree: dicts in
 * insertion order, lists, tuples, numbers, strings, storages (the
 * persistent ids) and tensors (a _rebuild_tensor call's arguments).  Any
 * other opcode is refused naming it and its offset, any other global
 * naming it (a pickled nn.Module, a NumPy array, os.system).  The stack,
 * the marks, the memo, the objects made and every length are bounded,
 * and every length is checked against the bytes left.
 *
 * Which tensors.  A state_dict gives its names as they are.  A
 * checkpoint dict holding its weights under state_dict, model,
 * model_state_dict, module, net or ema (the first of these present) gives
 * that dict's tensors without the prefix; otherwise every tensor in the
 * tree is named by its key path joined with '.'.  Optimizer state is not
 * a model's weights and is skipped (the metadata entry rankscope.skipped
 * says what was left out); numbers and strings become metadata entries.
 * Tensors keep the pickle's order, the state_dict's insertion order.
 *
 * Tensor bytes.  torch.save stores its entries uncompressed and aligned,
 * so a C-contiguous tensor points into the map at its entry's data offset
 * (zipentry.h) plus its storage offset, after its view has been checked
 * to lie inside its storage and the storage inside its entry.  A deflated
 * entry (a checkpoint zipped again with compression) is inflated once
 * into a buffer the model owns, under the limits of model.h; a view that
 * is not C-contiguous (a transpose, an expand) is gathered into a C-order
 * buffer, so every consumer of rs_tensor reads C order.  Nothing else of
 * a tensor's bytes is touched at open.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "rankscope/guard.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "rankscope/zipentry.h"

#define NAME_SHOWN 160

/* Limits of the unpickler.  Real state dicts stay far inside them: a
 * tensor costs about twenty objects and a few memo entries, and pickle
 * batches SETITEMS and APPENDS by the thousand. */
#define PICKLE_MAX ((uint64_t)1 << 30)     /* bytes of data.pkl */
#define STACK_MAX ((size_t)1 << 16)        /* values on the stack */
#define MARKS_MAX 1024                      /* open MARKs */
#define MEMO_MAX ((size_t)1 << 24)         /* memo indices */
#define OBJECTS_MAX ((size_t)1 << 23)      /* values made */
#define ARENA_MAX ((size_t)1 << 30)        /* bytes they take */
#define STRING_MAX ((uint64_t)16 << 20)    /* bytes of one string */
#define GLOBAL_NAME_MAX 1024                /* bytes of a GLOBAL's module or name */
#define NDIM_MAX 64

/* Limits of the walk over the value tree. */
#define DEPTH_MAX 64                        /* nesting of containers */
#define VISITS_MAX ((size_t)1 << 22)       /* values visited (shared ones again) */
#define TENSORS_MAX ((size_t)1 << 20)
#define KEY_PATH_MAX 4096                   /* bytes of a tensor's name */
#define NAMES_MAX ((size_t)256 << 20)      /* bytes of all names */
#define METADATA_MAX 512
#define META_VALUE_MAX 1024

/* Gathering views copies their elements; an expanded view can have many
 * more elements than its storage, so the copies of one model are held to
 * GATHER_FACTOR times the file's size, and at least GATHER_MIN. */
#define GATHER_FACTOR 4
#define GATHER_MIN ((uint64_t)64 << 20)

/* ---- values ------------------------------------------------------------------ */

typedef enum vkind {
	V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT,
	V_GLOBAL, V_STORAGE, V_TENSOR
} vkind;

/* For messages: "calls a dict", "from an int". */
static const char *const kind_names[] = {
	"None", "a bool", "an int", "a float", "a str", "bytes", "a tuple", "a list", "a dict",
	"a class or function", "a storage", "a tensor",
};

typedef enum gkind { G_DICT, G_REBUILD, G_PARAM, G_STORAGE, G_DTYPE } gkind;

/* A global the unpickler accepts: what it stands for, never imported. */
typedef struct global_row {
	const char *module, *name;
	gkind kind;
	int version;                 /* G_REBUILD: _rebuild_tensor 1, _v2 2, _v3 3;
	                                G_PARAM: 1 when it carries a state */
	rs_dtype dtype;              /* G_STORAGE (typed) and G_DTYPE */
	bool untyped;                /* G_STORAGE: torch.UntypedStorage */
} global_row;

static const global_row allowed[] = {
	{"collections", "OrderedDict", G_DICT, 0, 0, false},
	{"torch._utils", "_rebuild_tensor", G_REBUILD, 1, 0, false},
	{"torch._utils", "_rebuild_tensor_v2", G_REBUILD, 2, 0, false},
	{"torch._utils", "_rebuild_tensor_v3", G_REBUILD, 3, 0, false},
	{"torch._utils", "_rebuild_parameter", G_PARAM, 0, 0, false},
	{"torch._utils", "_rebuild_parameter_with_state", G_PARAM, 1, 0, false},
	/* the storage classes of _rebuild_tensor_v2 (torch/storage.py's
	 * _dtype_to_storage_type_map, less complex128 and the quantized) */
	{"torch", "FloatStorage", G_STORAGE, 0, RS_DTYPE_F32, false},
	{"torch", "HalfStorage", G_STORAGE, 0, RS_DTYPE_F16, false},
	{"torch", "BFloat16Storage", G_STORAGE, 0, RS_DTYPE_BF16, false},
	{"torch", "DoubleStorage", G_STORAGE, 0, RS_DTYPE_F64, false},
	{"torch", "ByteStorage", G_STORAGE, 0, RS_DTYPE_U8, false},
	{"torch", "CharStorage", G_STORAGE, 0, RS_DTYPE_I8, false},
	{"torch", "ShortStorage", G_STORAGE, 0, RS_DTYPE_I16, false},
	{"torch", "IntStorage", G_STORAGE, 0, RS_DTYPE_I32, false},
	{"torch", "LongStorage", G_STORAGE, 0, RS_DTYPE_I64, false},
	{"torch", "BoolStorage", G_STORAGE, 0, RS_DTYPE_BOOL, false},
	{"torch", "ComplexFloatStorage", G_STORAGE, 0, RS_DTYPE_C64, false},
	/* torch 2.x saves the dtypes it added since (float8, uint16..64) as an
	 * UntypedStorage of bytes and passes the dtype to _rebuild_tensor_v3;
	 * a torch.dtype pickles as the global torch.NAME */
	{"torch", "UntypedStorage", G_STORAGE, 0, RS_DTYPE_U8, true},
	{"torch", "float32", G_DTYPE, 0, RS_DTYPE_F32, false},
	{"torch", "float16", G_DTYPE, 0, RS_DTYPE_F16, false},
	{"torch", "bfloat16", G_DTYPE, 0, RS_DTYPE_BF16, false},
	{"torch", "float64", G_DTYPE, 0, RS_DTYPE_F64, false},
	{"torch", "uint8", G_DTYPE, 0, RS_DTYPE_U8, false},
	{"torch", "int8", G_DTYPE, 0, RS_DTYPE_I8, false},
	{"torch", "int16", G_DTYPE, 0, RS_DTYPE_I16, false},
	{"torch", "int32", G_DTYPE, 0, RS_DTYPE_I32, false},
	{"torch", "int64", G_DTYPE, 0, RS_DTYPE_I64, false},
	{"torch", "bool", G_DTYPE, 0, RS_DTYPE_BOOL, false},
	{"torch", "complex64", G_DTYPE, 0, RS_DTYPE_C64, false},
	{"torch", "float8_e4m3fn", G_DTYPE, 0, RS_DTYPE_F8_E4M3, false},
	{"torch", "float8_e5m2", G_DTYPE, 0, RS_DTYPE_F8_E5M2, false},
	{"torch", "float8_e8m0fnu", G_DTYPE, 0, RS_DTYPE_F8_E8M0, false},
	{"torch", "uint16", G_DTYPE, 0, RS_DTYPE_U16, false},
	{"torch", "uint32", G_DTYPE, 0, RS_DTYPE_U32, false},
	{"torch", "uint64", G_DTYPE, 0, RS_DTYPE_U64, false},
};
#define NALLOWED (sizeof allowed / sizeof allowed[0])

typedef struct value value;

/* A storage the pickle refers to (its persistent id); resolved against
 * the archive when a tensor on it is placed. */
typedef struct storage_ref {
	const char *key;             /* NUL-terminated (arena) */
	const global_row *cls;
	uint64_t numel;              /* elements of cls's dtype; bytes when untyped */
	struct storage_slot *slot;   /* once resolved */
} storage_ref;

/* A _rebuild_tensor call: a view of a storage. */
typedef struct tensor_ref {
	storage_ref *storage;
	rs_dtype dtype;
	size_t ndim, count;
	size_t *shape, *stride;      /* ndim entries (arena) */
	uint64_t offset;             /* in elements */
	/* once placed; shared by every name the tensor gets */
	bool placed;
	const unsigned char *data;
	size_t nbytes;
	uint64_t file_offset;        /* of data in the file, when in place; else 0 */
} tensor_ref;

struct value {
	vkind kind;
	uint32_t big;                /* V_INT wider than 64 bits: its byte count */
	union {
		bool b;
		int64_t i;
		double f;
		struct { const char *s; size_t n; } str;   /* V_STR, V_BYTES: into data.pkl */
		struct { value **v; size_t n, cap; } seq;   /* dict: key, value, key, value, ... */
		const global_row *g;
		storage_ref *storage;
		tensor_ref *tensor;
	} u;
};

static value none_value = {V_NONE, 0, {0}};
static value true_value = {V_BOOL, 0, {.b = true}};
static value false_value = {V_BOOL, 0, {.b = false}};

/* ---- the unpickler -------------------------------------------------------------- */

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
} chunk;

#define CHUNK_BYTES ((size_t)64 << 10)

typedef struct unpickler {
	const char *path;
	const unsigned char *p;      /* data.pkl */
	size_t len, pos;
	value **stack;
	size_t sp, scap;
	size_t marks[MARKS_MAX];
	size_t nmarks;
	value **memo;
	size_t memo_cap, memo_count;
	chunk *chunks;
	size_t arena_bytes, nobjects;
	rs_error *err;
} unpickler;

#define PFAIL(u, ...) rs_error_set((u)->err, RS_EFORMAT, __VA_ARGS__)

static void
unpickler_free(unpickler *u)
{
	while (u->chunks != NULL) {
		chunk *next = u->chunks->next;
		free(u->chunks);
		u->chunks = next;
	}
	free(u->stack);
	free(u->memo);
}

/* n bytes from the arena, or NULL with the error set. */
static void *
arena_alloc(unpickler *u, size_t n)
{
	chunk *c = u->chunks;
	void *p;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;

		if (n > ARENA_MAX || u->arena_bytes > ARENA_MAX - cap) {
			PFAIL(u, "%s: data.pkl: unpickling it takes more than %zu MiB of objects",
			      u->path, ARENA_MAX >> 20);
			return NULL;
		}
		c = malloc(sizeof *c + cap);
		if (c == NULL) {
			rs_error_set(u->err, RS_ENOMEM, "%s: data.pkl: out of memory for its "
			             "objects", u->path);
			return NULL;
		}
		c->next = u->chunks;
		c->used = 0;
		c->cap = cap;
		u->chunks = c;
		u->arena_bytes += cap;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += n;
	return p;
}

static value *
new_value(unpickler *u, vkind kind, size_t at)
{
	value *v;

	if (u->nobjects >= OBJECTS_MAX) {
		PFAIL(u, "%s: data.pkl: more than %zu objects by byte %zu (the limit for a "
		      "checkpoint)", u->path, OBJECTS_MAX, at);
		return NULL;
	}
	v = arena_alloc(u, sizeof *v);
	if (v != NULL) {
		memset(v, 0, sizeof *v);
		v->kind = kind;
		u->nobjects++;
	}
	return v;
}

static rs_status
seq_push(unpickler *u, value *v, value *item)
{
	if (v->u.seq.n == v->u.seq.cap) {
		size_t cap = v->u.seq.cap ? 2 * v->u.seq.cap : 4;
		value **bigger = arena_alloc(u, cap * sizeof *bigger);

		if (bigger == NULL)
			return u->err->code;
		if (v->u.seq.n)
			memcpy(bigger, v->u.seq.v, v->u.seq.n * sizeof *bigger);
		v->u.seq.v = bigger;
		v->u.seq.cap = cap;
	}
	v->u.seq.v[v->u.seq.n++] = item;
	return RS_OK;
}

/* The names pickletools gives, for refusals. */
static const char *
opcode_name(unsigned op)
{
	static const struct { unsigned char op; const char *name; } names[] = {
		{'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
		{'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
		{'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"},
		{'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
		{'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"},
		{'c', "GLOBAL"}, {'d', "DICT"}, {'}', "EMPTY_DICT"}, {'e', "APPENDS"},
		{'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
		{'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"},
		{'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"},
		{'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"}, {0x81, "NEWOBJ"},
		{0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
		{0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"},
		{0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
		{0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
		{0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"},
		{0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
		{0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
		{0x98, "READONLY_BUFFER"},
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].op == op)
			return names[i].name;
	return NULL;
}

static rs_status
refuse_opcode(unpickler *u, unsigned op, size_t at)
{
	const char *name = opcode_name(op);

	if (name == NULL)
		return PFAIL(u, "%s: data.pkl: byte 0x%02x at offset %zu is not a pickle "
		             "opcode (damaged file?)", u->path, op, at);
	if (op >= 0x20 && op < 0x7f)
		return PFAIL(u, "%s: data.pkl: opcode %s ('%c') at byte %zu is not one "
		             "torch.save writes for tensors; rankscope reads only those, and "
		             "runs nothing", u->path, name, (char)op, at);
	return PFAIL(u, "%s: data.pkl: opcode %s (0x%02x) at byte %zu is not one "
	             "torch.save writes for tensors; rankscope reads only those, and runs "
	             "nothing", u->path, name, op, at);
}

/* The n argument bytes of the opcode at `at` are there. */
static rs_status
need(unpickler *u, size_t n, unsigned op, size_t at)
{
	if (u->len - u->pos < n)
		return PFAIL(u, "%s: data.pkl: truncated: opcode %s at byte %zu needs %zu "
		             "bytes, %zu remain", u->path, opcode_name(op), at, n,
		             u->len - u->pos);
	return RS_OK;
}

static size_t
stack_base(const unpickler *u)
{
	return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static rs_status
push(unpickler *u, value *v, size_t at)
{
	if (v == NULL)
		return u->err->code;
	if (u->sp == u->scap) {
		if (u->scap >= STACK_MAX)
			return PFAIL(u, "%s: data.pkl: more than %zu values on the pickle stack "
			             "at byte %zu (nesting too deep)", u->path, STACK_MAX, at);
		u->scap = u->scap ? 2 * u->scap : 256;
		u->stack = rs_xreallocarray(u->stack, u->scap, sizeof *u->stack);
	}
	u->stack[u->sp++] = v;
	return RS_OK;
}

static rs_status
pop(unpickler *u, unsigned op, size_t at, value **v)
{
	if (u->sp <= stack_base(u))
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu finds the stack empty",
		             u->path, opcode_name(op), at);
	*v = u->stack[--u->sp];
	return RS_OK;
}

/* The values above the last MARK, which is removed; valid until the next
 * push. */
static rs_status
pop_mark(unpickler *u, unsigned op, size_t at, value ***items, size_t *n)
{
	size_t mark;

	if (u->nmarks == 0)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu has no MARK before it",
		             u->path, opcode_name(op), at);
	mark = u->marks[--u->nmarks];
	*items = u->stack != NULL ? u->stack + mark : NULL;   /* NULL only when n is 0 */
	*n = u->sp - mark;
	u->sp = mark;
	return RS_OK;
}

/* The container the opcode at `at` adds to: the top of the stack. */
static rs_status
target(unpickler *u, unsigned op, size_t at, vkind kind, value **v)
{
	if (u->sp <= stack_base(u))
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu finds the stack empty",
		             u->path, opcode_name(op), at);
	*v = u->stack[u->sp - 1];
	if ((*v)->kind != kind)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu adds to %s, not %s",
		             u->path, opcode_name(op), at, kind_names[(*v)->kind],
		             kind_names[kind]);
	return RS_OK;
}

static value *
make_tuple(unpickler *u, value **items, size_t n, size_t at)
{
	value *t = new_value(u, V_TUPLE, at);

	if (t == NULL)
		return NULL;
	if (n > 0) {
		t->u.seq.v = arena_alloc(u, n * sizeof *items);
		if (t->u.seq.v == NULL)
			return NULL;
		memcpy(t->u.seq.v, items, n * sizeof *items);
	}
	t->u.seq.n = t->u.seq.cap = n;
	return t;
}

/* ---- memo ---- */

static rs_status
memo_put(unpickler *u, uint64_t idx, unsigned op, size_t at)
{
	if (u->sp <= stack_base(u))
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu finds the stack empty",
		             u->path, opcode_name(op), at);
	/* a pickler numbers its memo from 0, one entry per put, so no index
	 * reaches the pickle's length */
	if (idx >= MEMO_MAX || idx >= u->len)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu: memo index %llu is out "
		             "of range (a pickle of %zu bytes has fewer entries)", u->path,
		             opcode_name(op), at, (unsigned long long)idx, u->len);
	if (idx >= u->memo_cap) {
		size_t cap = u->memo_cap ? u->memo_cap : 64;
		value **bigger;

		while (cap <= idx)
			cap *= 2;
		if (cap > u->len)
			cap = u->len;
		bigger = realloc(u->memo, cap * sizeof *bigger);
		if (bigger == NULL)
			return rs_error_set(u->err, RS_ENOMEM, "%s: data.pkl: out of memory for "
			                    "its memo", u->path);
		memset(bigger + u->memo_cap, 0, (cap - u->memo_cap) * sizeof *bigger);
		u->memo = bigger;
		u->memo_cap = cap;
	}
	if (u->memo[idx] == NULL)
		u->memo_count++;
	u->memo[idx] = u->stack[u->sp - 1];
	return RS_OK;
}

static rs_status
memo_get(unpickler *u, uint64_t idx, unsigned op, size_t at)
{
	if (idx >= u->memo_cap || u->memo[idx] == NULL)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu reads memo entry %llu, "
		             "which was never stored", u->path, opcode_name(op), at,
		             (unsigned long long)idx);
	return push(u, u->memo[idx], at);
}

/* ---- scalars and strings ---- */

/* A string or bytes object of n bytes at the current position. */
static rs_status
take_string(unpickler *u, vkind kind, uint64_t n, unsigned op, size_t at)
{
	value *v;

	if (n > u->len - u->pos)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu declares %llu bytes, %zu "
		             "remain (truncated or damaged)", u->path, opcode_name(op), at,
		             (unsigned long long)n, u->len - u->pos);
	if (n > STRING_MAX)
		return PFAIL(u, "%s: data.pkl: opcode %s at byte %zu: a string of %llu bytes "
		             "(the limit is %llu)", u->path, opcode_name(op), at,
		             (unsigned long long)n, (unsigned long long)STRING_MAX);
	if (kind == V_STR && !rs_utf8_valid((const char *)u->p + u->pos, (size_t)n))
		return PFAIL(u, "%s: data.pkl: the string at byte %zu is not valid UTF-8",
		             u->path, at);
	if ((v = new_value(u, kind, at)) == NULL)
		return u->err->code;
	v->u.str.s = (const char *)u->p + u->pos;
	v->u.str.n = (size_t)n;
	u->pos += (size_t)n;
	return push(u, v, at);
}

static rs_status
push_int(unpickler *u, int64_t i, uint32_t big, size_t at)
{
	value *v = new_value(u, V_INT, at);

	if (v == NULL)
		return u->err->code;
	v->u.i = i;
	v->big = big;
	return push(u, v, at);
}

/* LONG1: n bytes of little-endian two's complement. */
static rs_status
take_long1(unpickler *u, size_t at)
{
	size_t n, k;
	uint64_t x = 0;
	rs_status st;

	if ((st = need(u, 1, 0x8a, at)) != RS_OK)
		return st;
	n = u->p[u->pos++];
	if ((st = need(u, n, 0x8a, at)) != RS_OK)
		return st;
	if (n > 8) {
		u->pos += n;
		return push_int(u, 0, (uint32_t)n, at);
	}
	for (k = 0; k < n; k++)
		x |= (uint64_t)u->p[u->pos + k] << (8 * k);
	if (n > 0 && n < 8 && (u->p[u->pos + n - 1] & 0x80))
		x |= ~(uint64_t)0 << (8 * n);
	u->pos += n;
	return push_int(u, (int64_t)x, 0, at);
}

static rs_status
take_float(unpickler *u, size_t at)
{
	uint64_t bits = 0;
	value *v;
	size_t k;
	rs_status st;

	if ((st = need(u, 8, 'G', at)) != RS_OK)
		return st;
	for (k = 0; k < 8; k++)       /* big-endian */
		bits = bits << 8 | u->p[u->pos + k];
	u->pos += 8;
	if ((v = new_value(u, V_FLOAT, at)) == NULL)
		return u->err->code;
	memcpy(&v->u.f, &bits, sizeof v->u.f);
	return push(u, v, at);
}

/* ---- globals ---- */

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Why a global that is not allowed is refused: what it most likely is. */
static const char *
global_refusal(const char *module, const char *name)
{
	static const char *const torch_dtypes[] = {
		"complex128", "complex32", "float8_e5m2fnuz", "float8_e4m3fnuz", "bits8",
		"bits16", "bits1x8", "bits2x4", "bits4x2", "qint8", "qint32", "quint8",
		"quint4x2", "quint2x4", "int1", "int2", "int3", "int4", "int5", "int6", "int7",
		"uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
		"float4_e2m1fn_x2",
	};
	size_t i;

	if (starts_with(module, "torch.nn.modules") || starts_with(module, "torch.nn.parallel") ||
	    strcmp(module, "torch.nn") == 0)
		return "a pickled module, not a state_dict";
	if (starts_with(module, "__torch__"))
		return "a TorchScript class (torch.jit), not a state_dict";
	if (starts_with(module, "torch.optim"))
		return "a pickled optimizer or scheduler object, not a state_dict";
	if (strcmp(module, "torch._utils") == 0 || strcmp(module, "torch._tensor") == 0) {
		if (strstr(name, "qtensor") != NULL)
			return "a quantized tensor, which rankscope does not read (save "
			       "tensor.dequantize())";
		if (strstr(name, "sparse") != NULL)
			return "a sparse tensor, which rankscope does not read (save "
			       "tensor.to_dense())";
		if (strstr(name, "meta") != NULL)
			return "a tensor on the meta device, which has no data";
		if (strstr(name, "from_type") != NULL || strstr(name, "subclass") != NULL)
			return "a tensor subclass or a tensor with Python attributes, which "
			       "rankscope does not read (save plain tensors)";
		return "a kind of tensor rankscope does not read";
	}
	if (strcmp(module, "torch") == 0) {
		if (strcmp(name, "ComplexDoubleStorage") == 0)
			return "a complex128 tensor, a dtype rankscope does not read";
		if (name[0] == 'Q' && strstr(name, "Storage") != NULL)
			return "a quantized tensor, which rankscope does not read (save "
			       "tensor.dequantize())";
		for (i = 0; i < sizeof torch_dtypes / sizeof torch_dtypes[0]; i++)
			if (strcmp(name, torch_dtypes[i]) == 0)
				return "a dtype rankscope does not read";
	}
	if (starts_with(module, "numpy"))
		return "a NumPy object, which rankscope does not unpickle (save tensors)";
	if (strcmp(module, "__main__") == 0)
		return "a class or function of the script that saved it (a pickled object, "
		       "not a state_dict)";
	if (strcmp(module, "builtins") == 0 || strcmp(module, "__builtin__") == 0 ||
	    strcmp(module, "os") == 0 || strcmp(module, "posix") == 0 ||
	    strcmp(module, "nt") == 0 || strcmp(module, "subprocess") == 0 ||
	    strcmp(module, "sys") == 0 || strcmp(module, "shutil") == 0 ||
	    strcmp(module, "runpy") == 0 || strcmp(module, "importlib") == 0)
		return "a Python callable, which a pickle names to run code when it is "
		       "loaded; rankscope never imports or runs anything from a file";
	return "not a tensor, a storage or an OrderedDict, and rankscope never imports or "
	       "runs anything from a file";
}

static rs_status
refuse_global(unpickler *u, const char *module, size_t mlen, const char *name,
              size_t nlen)
{
	char m[256], n[256], full[520], shown[NAME_SHOWN * 2];

	snprintf(m, sizeof m, "%.*s", (int)(mlen < 255 ? mlen : 255), module);
	snprintf(n, sizeof n, "%.*s", (int)(nlen < 255 ? nlen : 255), name);
	snprintf(full, sizeof full, "%s.%s", m, n);
	return PFAIL(u, "%s: data.pkl refers to %s: %s; rankscope opens state dicts (save "
	             "model.state_dict())", u->path, rs_printable(shown, sizeof shown, full),
	             global_refusal(m, n));
}

static rs_status
push_global(unpickler *u, const char *module, size_t mlen, const char *name, size_t nlen,
            size_t at)
{
	size_t i;
	value *v;

	for (i = 0; i < NALLOWED; i++)
		if (strlen(allowed[i].module) == mlen && strlen(allowed[i].name) == nlen &&
		    memcmp(allowed[i].module, module, mlen) == 0 &&
		    memcmp(allowed[i].name, name, nlen) == 0)
			break;
	if (i == NALLOWED)
		return refuse_global(u, module, mlen, name, nlen);
	if ((v = new_value(u, V_GLOBAL, at)) == NULL)
		return u->err->code;
	v->u.g = &allowed[i];
	return push(u, v, at);
}

/* GLOBAL: "module\nname\n". */
static rs_status
take_global(unpickler *u, size_t at)
{
	const char *line[2];
	size_t n[2], k;

	for (k = 0; k < 2; k++) {
		const unsigned char *nl;
		size_t left = u->len - u->pos;

		if (left > GLOBAL_NAME_MAX + 1)
			left = GLOBAL_NAME_MAX + 1;
		nl = memchr(u->p + u->pos, '\n', left);
		if (nl == NULL)
			return PFAIL(u, "%s: data.pkl: opcode GLOBAL at byte %zu: no end of line "
			             "within %d bytes (truncated or damaged)", u->path, at,
			             GLOBAL_NAME_MAX);
		line[k] = (const char *)u->p + u->pos;
		n[k] = (size_t)(nl - (u->p + u->pos));
		u->pos += n[k] + 1;
	}
	return push_global(u, line[0], n[0], line[1], n[1], at);
}

static rs_status
take_stack_global(unpickler *u, size_t at)
{
	value *name, *module;
	rs_status st;

	if ((st = pop(u, 0x93, at, &name)) != RS_OK || (st = pop(u, 0x93, at, &module)) != RS_OK)
		return st;
	if (name->kind != V_STR || module->kind != V_STR)
		return PFAIL(u, "%s: data.pkl: opcode STACK_GLOBAL at byte %zu takes two "
		             "strings, not %s and %s", u->path, at, kind_names[module->kind],
		             kind_names[name->kind]);
	return push_global(u, module->u.str.s, module->u.str.n, name->u.str.s, name->u.str.n,
	                   at);
}

/* ---- persistent ids and tensors ---- */

static bool
is_text(const value *v, const char *text)
{
	return (v->kind == V_STR || v->kind == V_BYTES) && v->u.str.n == strlen(text) &&
	       memcmp(v->u.str.s, text, v->u.str.n) == 0;
}

static bool
as_size(const value *v, uint64_t *out)
{
	if (v->kind != V_INT || v->big || v->u.i < 0 || (uint64_t)v->u.i > SIZE_MAX)
		return false;
	*out = (uint64_t)v->u.i;
	return true;
}

/*
 * BINPERSID: ('storage', StorageClass, key, location, numel), torch's
 * reference to ARCHIVE/data/KEY.
 */
static rs_status
take_persid(unpickler *u, size_t at)
{
	value *pid, *v, **f;
	storage_ref *s;
	uint64_t numel;
	rs_status st;
	char keybuf[24];
	const char *key;
	size_t keylen;

	if ((st = pop(u, 'Q', at, &pid)) != RS_OK)
		return st;
	if (pid->kind != V_TUPLE || pid->u.seq.n != 5 || !is_text(pid->u.seq.v[0], "storage"))
		return PFAIL(u, "%s: data.pkl: the persistent id at byte %zu is not torch's "
		             "('storage', type, key, location, size)", u->path, at);
	f = pid->u.seq.v;
	if (f[1]->kind != V_GLOBAL || f[1]->u.g->kind != G_STORAGE)
		return PFAIL(u, "%s: data.pkl: the storage reference at byte %zu names %s, "
		             "not a storage class", u->path, at, kind_names[f[1]->kind]);
	if (f[2]->kind == V_STR) {
		key = f[2]->u.str.s;
		keylen = f[2]->u.str.n;
	} else if (f[2]->kind == V_INT && !f[2]->big) {
		keylen = (size_t)snprintf(keybuf, sizeof keybuf, "%lld", (long long)f[2]->u.i);
		key = keybuf;
	} else {
		return PFAIL(u, "%s: data.pkl: the storage reference at byte %zu has %s for "
		             "its key", u->path, at, kind_names[f[2]->kind]);
	}
	if (keylen == 0 || keylen > 256 || memchr(key, '\0', keylen) != NULL)
		return PFAIL(u, "%s: data.pkl: the storage reference at byte %zu has a key of "
		             "%zu bytes%s", u->path, at, keylen,
		             keylen && keylen <= 256 ? " holding a NUL" : "");
	if (f[3]->kind != V_STR && f[3]->kind != V_BYTES)
		return PFAIL(u, "%s: data.pkl: the storage reference at byte %zu has %s for "
		             "its location", u->path, at, kind_names[f[3]->kind]);
	if (!as_size(f[4], &numel))
		return PFAIL(u, "%s: data.pkl: the storage reference at byte %zu has no "
		             "non-negative size", u->path, at);
	if ((s = arena_alloc(u, sizeof *s)) == NULL)
		return u->err->code;
	memset(s, 0, sizeof *s);
	if ((s->key = arena_alloc(u, keylen + 1)) == NULL)
		return u->err->code;
	memcpy((char *)s->key, key, keylen);
	((char *)s->key)[keylen] = '\0';
	s->cls = f[1]->u.g;
	s->numel = numel;
	if ((v = new_value(u, V_STORAGE, at)) == NULL)
		return u->err->code;
	v->u.storage = s;
	return push(u, v, at);
}

/* A tuple (or list) of sizes into arena memory. */
static rs_status
sizes(unpickler *u, const value *v, const char *what, size_t at, size_t **out, size_t *n)
{
	size_t k;

	if ((v->kind != V_TUPLE && v->kind != V_LIST) || v->u.seq.n > NDIM_MAX)
		return PFAIL(u, "%s: data.pkl: the tensor at byte %zu has %s for its %s, not "
		             "a tuple of at most %d sizes", u->path, at, kind_names[v->kind],
		             what, NDIM_MAX);
	*n = v->u.seq.n;
	*out = arena_alloc(u, (*n ? *n : 1) * sizeof **out);
	if (*out == NULL)
		return u->err->code;
	for (k = 0; k < *n; k++) {
		uint64_t x;

		if (!as_size(v->u.seq.v[k], &x))
			return PFAIL(u, "%s: data.pkl: the tensor at byte %zu: %s[%zu] is not a "
			             "non-negative integer", u->path, at, what, k);
		(*out)[k] = (size_t)x;
	}
	return RS_OK;
}

/*
 * _rebuild_tensor(storage, offset, size, stride)
 * _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
 * _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
 * The view's bounds are checked when the tensor is placed, with its name.
 */
static rs_status
rebuild_tensor(unpickler *u, const global_row *g, const value *args, size_t at)
{
	value **a = args->u.seq.v, *v;
	size_t n = args->u.seq.n, nstride, k;
	tensor_ref *t;
	uint64_t offset;
	rs_status st;
	bool ok;

	ok = g->version == 1 ? n == 4 : g->version == 2 ? n == 6 || n == 7 : n == 7 || n == 8;
	if (!ok)
		return PFAIL(u, "%s: data.pkl: %s at byte %zu called with %zu arguments",
		             u->path, g->name, at, n);
	if (a[0]->kind != V_STORAGE)
		return PFAIL(u, "%s: data.pkl: %s at byte %zu rebuilds a tensor from %s, not "
		             "a storage", u->path, g->name, at, kind_names[a[0]->kind]);
	if (g->version < 3 && a[0]->u.storage->cls->untyped)
		return PFAIL(u, "%s: data.pkl: %s at byte %zu rebuilds a tensor from an "
		             "untyped storage without a dtype", u->path, g->name, at);
	if (g->version == 3 && (a[6]->kind != V_GLOBAL || a[6]->u.g->kind != G_DTYPE))
		return PFAIL(u, "%s: data.pkl: %s at byte %zu has %s for its dtype", u->path,
		             g->name, at, kind_names[a[6]->kind]);
	if (g->version == 3 && !a[0]->u.storage->cls->untyped &&
	    a[0]->u.storage->cls->dtype != a[6]->u.g->dtype)
		return PFAIL(u, "%s: data.pkl: %s at byte %zu views a %s storage as %s",
		             u->path, g->name, at, a[0]->u.storage->cls->name, a[6]->u.g->name);
	if (g->version >= 2 && (a[4]->kind != V_BOOL ||
	                        (a[5]->kind != V_DICT && a[5]->kind != V_NONE)))
		return PFAIL(u, "%s: data.pkl: %s at byte %zu: requires_grad and hooks must be "
		             "a bool and a dict, not %s and %s", u->path, g->name, at,
		             kind_names[a[4]->kind], kind_names[a[5]->kind]);
	if ((g->version == 2 && n == 7) || (g->version == 3 && n == 8)) {
		const value *meta = a[n - 1];
		if (meta->kind != V_DICT && meta->kind != V_NONE)
			return PFAIL(u, "%s: data.pkl: %s at byte %zu has %s for its metadata",
			             u->path, g->name, at, kind_names[meta->kind]);
	}
	if (!as_size(a[1], &offset))
		return PFAIL(u, "%s: data.pkl: %s at byte %zu: the storage offset is not a "
		             "non-negative integer", u->path, g->name, at);
	if ((t = arena_alloc(u, sizeof *t)) == NULL)
		return u->err->code;
	memset(t, 0, sizeof *t);
	if ((st = sizes(u, a[2], "size", at, &t->shape, &t->ndim)) != RS_OK ||
	    (st = sizes(u, a[3], "stride", at, &t->stride, &nstride)) != RS_OK)
		return st;
	if (nstride != t->ndim)
		return PFAIL(u, "%s: data.pkl: the tensor at byte %zu has %zu sizes but %zu "
		             "strides", u->path, at, t->ndim, nstride);
	t->count = 1;
	for (k = 0; k < t->ndim; k++)
		if (rs_mul_overflows(t->count, t->shape[k], &t->count))
			return PFAIL(u, "%s: data.pkl: the tensor at byte %zu: the element count "
			             "of its size overflows", u->path, at);
	t->storage = a[0]->u.storage;
	t->dtype = g->version == 3 ? a[6]->u.g->dtype : t->storage->cls->dtype;
	t->offset = offset;
	if ((v = new_value(u, V_TENSOR, at)) == NULL)
		return u->err->code;
	v->u.tensor = t;
	return push(u, v, at);
}

static rs_status
take_reduce(unpickler *u, size_t at)
{
	value *args, *callable, *v;
	const global_row *g;
	rs_status st;

	if ((st = pop(u, 'R', at, &args)) != RS_OK || (st = pop(u, 'R', at, &callable)) != RS_OK)
		return st;
	if (callable->kind != V_GLOBAL)
		return PFAIL(u, "%s: data.pkl: REDUCE at byte %zu calls %s", u->path, at,
		             kind_names[callable->kind]);
	if (args->kind != V_TUPLE)
		return PFAIL(u, "%s: data.pkl: REDUCE at byte %zu passes %s, not a tuple of "
		             "arguments", u->path, at, kind_names[args->kind]);
	g = callable->u.g;
	switch (g->kind) {
	case G_DICT:
		if (args->u.seq.n != 0)
			return PFAIL(u, "%s: data.pkl: OrderedDict at byte %zu is called with "
			             "arguments (torch.save calls it with none)", u->path, at);
		return push(u, new_value(u, V_DICT, at), at);
	case G_REBUILD:
		return rebuild_tensor(u, g, args, at);
	case G_PARAM:
		/* (data, requires_grad, hooks[, state]): the tensor is the data */
		if (args->u.seq.n != 3u + (unsigned)g->version ||
		    args->u.seq.v[0]->kind != V_TENSOR)
			return PFAIL(u, "%s: data.pkl: %s at byte %zu is not given a tensor and "
			             "its flags", u->path, g->name, at);
		v = args->u.seq.v[0];
		return push(u, v, at);
	case G_STORAGE:
	case G_DTYPE:
		break;
	}
	return PFAIL(u, "%s: data.pkl: REDUCE at byte %zu calls %s.%s, which torch.save "
	             "never does", u->path, at, g->module, g->name);
}

/* BUILD sets an object's state: torch.save writes it only for an
 * OrderedDict's attributes (a state_dict's _metadata), which say nothing
 * about the tensors. */
static rs_status
take_build(unpickler *u, size_t at)
{
	value *state, *obj;
	rs_status st;

	if ((st = pop(u, 'b', at, &state)) != RS_OK)
		return st;
	if (u->sp <= stack_base(u))
		return PFAIL(u, "%s: data.pkl: opcode BUILD at byte %zu finds the stack empty",
		             u->path, at);
	obj = u->stack[u->sp - 1];
	if (obj->kind != V_DICT)
		return PFAIL(u, "%s: data.pkl: BUILD at byte %zu sets the state of %s "
		             "(torch.save does that only for an OrderedDict)", u->path, at,
		             kind_names[obj->kind]);
	return RS_OK;
}

static rs_status
take_newobj(unpickler *u, size_t at)
{
	value *args, *cls;
	rs_status st;

	if ((st = pop(u, 0x81, at, &args)) != RS_OK || (st = pop(u, 0x81, at, &cls)) != RS_OK)
		return st;
	if (cls->kind != V_GLOBAL || cls->u.g->kind != G_DICT || args->kind != V_TUPLE ||
	    args->u.seq.n != 0)
		return PFAIL(u, "%s: data.pkl: NEWOBJ at byte %zu creates %s%s (torch.save "
		             "writes NEWOBJ only for an OrderedDict, without arguments)", u->path,
		             at, cls->kind == V_GLOBAL ? cls->u.g->name : kind_names[cls->kind],
		             args->kind == V_TUPLE && args->u.seq.n == 0 ? "" : " with arguments");
	return push(u, new_value(u, V_DICT, at), at);
}

static rs_status
take_setitems(unpickler *u, unsigned op, size_t at)
{
	value **items, *d, *key, *val;
	size_t n, k;
	rs_status st;

	if (op == 's') {
		if ((st = pop(u, op, at, &val)) != RS_OK || (st = pop(u, op, at, &key)) != RS_OK ||
		    (st = target(u, op, at, V_DICT, &d)) != RS_OK)
			return st;
		if ((st = seq_push(u, d, key)) != RS_OK)
			return st;
		return seq_push(u, d, val);
	}
	if ((st = pop_mark(u, op, at, &items, &n)) != RS_OK)
		return st;
	if (n % 2 != 0)
		return PFAIL(u, "%s: data.pkl: SETITEMS at byte %zu has an odd number of "
		             "values (%zu)", u->path, at, n);
	if ((st = target(u, op, at, V_DICT, &d)) != RS_OK)
		return st;
	for (k = 0; k < n; k++)
		if ((st = seq_push(u, d, items[k])) != RS_OK)
			return st;
	return RS_OK;
}

static rs_status
take_appends(unpickler *u, unsigned op, size_t at)
{
	value **items, *l, *val;
	size_t n, k;
	rs_status st;

	if (op == 'a') {
		if ((st = pop(u, op, at, &val)) != RS_OK ||
		    (st = target(u, op, at, V_LIST, &l)) != RS_OK)
			return st;
		return seq_push(u, l, val);
	}
	if ((st = pop_mark(u, op, at, &items, &n)) != RS_OK ||
	    (st = target(u, op, at, V_LIST, &l)) != RS_OK)
		return st;
	for (k = 0; k < n; k++)
		if ((st = seq_push(u, l, items[k])) != RS_OK)
			return st;
	return RS_OK;
}

static rs_status
take_tuple(unpickler *u, unsigned op, size_t at)
{
	value *items[3], **marked;
	size_t n, k;
	rs_status st;

	if (op == 't') {
		if ((st = pop_mark(u, op, at, &marked, &n)) != RS_OK)
			return st;
		/* the items still sit in the stack's storage: copy before pushing */
		return push(u, make_tuple(u, marked, n, at), at);
	}
	n = op == ')' ? 0 : op - 0x85 + 1;
	for (k = n; k-- > 0;)
		if ((st = pop(u, op, at, &items[k])) != RS_OK)
			return st;
	return push(u, make_tuple(u, items, n, at), at);
}

/* Runs data.pkl to its STOP; the value it leaves in *result. */
static rs_status
unpickle(unpickler *u, value **result)
{
	rs_status st = RS_OK;

	while (st == RS_OK) {
		size_t at = u->pos;
		unsigned op;

		if (u->pos >= u->len)
			return PFAIL(u, "%s: data.pkl: ends at byte %zu without a STOP opcode "
			             "(truncated?)", u->path, u->len);
		op = u->p[u->pos++];
		switch (op) {
		case 0x80:   /* PROTO */
			if ((st = need(u, 1, op, at)) != RS_OK)
				break;
			if (u->p[u->pos] < 2 || u->p[u->pos] > 5)
				return PFAIL(u, "%s: data.pkl: pickle protocol %u (torch.save writes "
				             "2 unless told otherwise; rankscope reads 2 to 5)", u->path,
				             u->p[u->pos]);
			u->pos++;
			break;
		case 0x95:   /* FRAME: a length; the bytes follow in line */
			if ((st = need(u, 8, op, at)) != RS_OK)
				break;
			if (rs_read_le(u->p + u->pos, 8) > u->len - u->pos - 8)
				return PFAIL(u, "%s: data.pkl: the frame at byte %zu runs past the "
				             "end (truncated?)", u->path, at);
			u->pos += 8;
			break;
		case '.': {  /* STOP */
			value *v;
			if ((st = pop(u, op, at, &v)) != RS_OK)
				return st;
			if (u->pos != u->len)
				return PFAIL(u, "%s: data.pkl: %zu bytes after the STOP at byte %zu",
				             u->path, u->len - u->pos, at);
			*result = v;
			return RS_OK;
		}
		case '(':    /* MARK */
			if (u->nmarks == MARKS_MAX)
				return PFAIL(u, "%s: data.pkl: more than %d open MARKs at byte %zu "
				             "(nesting too deep)", u->path, MARKS_MAX, at);
			u->marks[u->nmarks++] = u->sp;
			break;
		case '}':
			st = push(u, new_value(u, V_DICT, at), at);
			break;
		case ']':
			st = push(u, new_value(u, V_LIST, at), at);
			break;
		case ')': case 't': case 0x85: case 0x86: case 0x87:
			st = take_tuple(u, op, at);
			break;
		case 'q':    /* BINPUT */
			if ((st = need(u, 1, op, at)) == RS_OK)
				st = memo_put(u, u->p[u->pos++], op, at);
			break;
		case 'r':    /* LONG_BINPUT */
			if ((st = need(u, 4, op, at)) == RS_OK) {
				uint64_t idx = rs_read_le(u->p + u->pos, 4);
				u->pos += 4;
				st = memo_put(u, idx, op, at);
			}
			break;
		case 0x94:   /* MEMOIZE */
			st = memo_put(u, u->memo_count, op, at);
			break;
		case 'h':    /* BINGET */
			if ((st = need(u, 1, op, at)) == RS_OK)
				st = memo_get(u, u->p[u->pos++], op, at);
			break;
		case 'j':    /* LONG_BINGET */
			if ((st = need(u, 4, op, at)) == RS_OK) {
				uint64_t idx = rs_read_le(u->p + u->pos, 4);
				u->pos += 4;
				st = memo_get(u, idx, op, at);
			}
			break;
		case 'J':    /* BININT: signed 32 bits */
			if ((st = need(u, 4, op, at)) == RS_OK) {
				int64_t x = (int32_t)(uint32_t)rs_read_le(u->p + u->pos, 4);
				u->pos += 4;
				st = push_int(u, x, 0, at);
			}
			break;
		case 'K':    /* BININT1 */
			if ((st = need(u, 1, op, at)) == RS_OK)
				st = push_int(u, u->p[u->pos++], 0, at);
			break;
		case 'M':    /* BININT2 */
			if ((st = need(u, 2, op, at)) == RS_OK) {
				int64_t x = (int64_t)rs_read_le(u->p + u->pos, 2);
				u->pos += 2;
				st = push_int(u, x, 0, at);
			}
			break;
		case 0x8a:   /* LONG1 */
			st = take_long1(u, at);
			break;
		case 'G':    /* BINFLOAT */
			st = take_float(u, at);
			break;
		case 'X': case 'B':   /* BINUNICODE, BINBYTES: 4-byte length */
			if ((st = need(u, 4, op, at)) == RS_OK) {
				uint64_t n = rs_read_le(u->p + u->pos, 4);
				u->pos += 4;
				st = take_string(u, op == 'X' ? V_STR : V_BYTES, n, op, at);
			}
			break;
		case 0x8c: case 'C':  /* SHORT_BINUNICODE, SHORT_BINBYTES */
			if ((st = need(u, 1, op, at)) == RS_OK) {
				uint64_t n = u->p[u->pos++];
				st = take_string(u, op == 0x8c ? V_STR : V_BYTES, n, op, at);
			}
			break;
		case 0x8d:   /* BINUNICODE8 */
			if ((st = need(u, 8, op, at)) == RS_OK) {
				uint64_t n = rs_read_le(u->p + u->pos, 8);
				u->pos += 8;
				st = take_string(u, V_STR, n, op, at);
			}
			break;
		case 'N':
			st = push(u, &none_value, at);
			break;
		case 0x88:
			st = push(u, &true_value, at);
			break;
		case 0x89:
			st = push(u, &false_value, at);
			break;
		case 's': case 'u':
			st = take_setitems(u, op, at);
			break;
		case 'a': case 'e':
			st = take_appends(u, op, at);
			break;
		case 'c':
			st = take_global(u, at);
			break;
		case 0x93:
			st = take_stack_global(u, at);
			break;
		case 'R':
			st = take_reduce(u, at);
			break;
		case 'Q':
			st = take_persid(u, at);
			break;
		case 'b':
			st = take_build(u, at);
			break;
		case 0x81:
			st = take_newobj(u, at);
			break;
		default:
			return refuse_opcode(u, op, at);
		}
	}
	return st;
}

/* ---- the model ----------------------------------------------------------------- */

/* A storage entry once found in the archive, shared by every reference
 * to its key. */
typedef struct storage_slot {
	const char *key;
	const global_row *cls;
	uint64_t numel;
	uint64_t nbytes;
	const unsigned char *bytes;  /* into the map, or a buffer of the model */
	uint64_t file_offset;        /* of bytes in the file when mapped; else 0 */
} storage_slot;

typedef struct namebuf {
	char *s;
	size_t len, cap;
} namebuf;

typedef struct builder {
	rs_model *m;
	zip_t *z;
	const char *path;
	char *archive;               /* "ARCHIVE", the folder holding data.pkl */
	rs_zip_central central;
	storage_slot **slots;        /* open addressing on the key */
	size_t nslots, slot_cap;
	uint64_t inflated, gathered, gather_max;
	size_t visits, tensor_cap, meta_cap, meta_dropped, name_bytes;
	size_t pickle_len;
	namebuf name;
	char *stem;                  /* the file's name, for a bare tensor */
	char *skipped;
	rs_error *err;
} builder;

#define BFAIL(b, ...) rs_error_set((b)->err, RS_EFORMAT, __VA_ARGS__)

static void
own_buffer(rs_model *m, void *buf)
{
	m->buffers = rs_xreallocarray(m->buffers, m->nbuffers + 1, sizeof *m->buffers);
	m->buffers[m->nbuffers++] = buf;
}

static bool
name_push(namebuf *nb, const char *part, size_t n)
{
	size_t need = nb->len + (nb->len ? 1 : 0) + n;

	if (need > KEY_PATH_MAX)
		return false;
	if (need + 1 > nb->cap) {
		nb->cap = need + 1 > 2 * nb->cap ? need + 1 : 2 * nb->cap;
		nb->s = rs_xrealloc(nb->s, nb->cap);
	}
	if (nb->len)
		nb->s[nb->len++] = '.';
	memcpy(nb->s + nb->len, part, n);
	nb->len += n;
	nb->s[nb->len] = '\0';
	return true;
}

static void
name_cut(namebuf *nb, size_t len)
{
	nb->len = len;
	if (nb->s != NULL)
		nb->s[len] = '\0';
}

static const char *
shown_name(const builder *b, char *buf, size_t len)
{
	return rs_printable(buf, len, b->name.len ? b->name.s : b->stem);
}

/* ---- storages ---- */

static uint64_t
key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull;

	while (*key)
		h = (h ^ (unsigned char)*key++) * 1099511628211ull;
	return h;
}

static storage_slot **
slot_find(builder *b, const char *key)
{
	size_t i = (size_t)key_hash(key) & (b->slot_cap - 1);

	while (b->slots[i] != NULL && strcmp(b->slots[i]->key, key) != 0)
		i = (i + 1) & (b->slot_cap - 1);
	return &b->slots[i];
}

static void
slot_add(builder *b, storage_slot *s)
{
	if (2 * (b->nslots + 1) > b->slot_cap) {
		storage_slot **old = b->slots;
		size_t oldcap = b->slot_cap, i;

		b->slot_cap = oldcap ? 2 * oldcap : 64;
		b->slots = rs_xcalloc(b->slot_cap, sizeof *b->slots);
		for (i = 0; i < oldcap; i++)
			if (old[i] != NULL)
				*slot_find(b, old[i]->key) = old[i];
		free(old);
	}
	*slot_find(b, s->key) = s;
	b->nslots++;
}

static rs_status
entry_stat(builder *b, zip_int64_t index, zip_stat_t *zs, const char *en)
{
	const unsigned needed = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
	                        ZIP_STAT_COMP_METHOD;

	if (zip_stat_index(b->z, (zip_uint64_t)index, ZIP_FL_ENC_RAW, zs) != 0 ||
	    (zs->valid & needed) != needed)
		return BFAIL(b, "%s: entry '%s': %s", b->path, en, zip_strerror(b->z));
	if ((zs->valid & ZIP_STAT_ENCRYPTION_METHOD) && zs->encryption_method != ZIP_EM_NONE)
		return BFAIL(b, "%s: entry '%s' is encrypted", b->path, en);
	return RS_OK;
}

/*
 * Finds ARCHIVE/data/KEY for a storage: its size must be what the
 * reference declares; its bytes are mapped when stored, read (inflated)
 * into a buffer of the model otherwise.
 */
static rs_status
storage_resolve(builder *b, storage_ref *ref, const char *tn)
{
	storage_slot *s;
	char *entry, shown[NAME_SHOWN], kshown[64];
	const char *en;
	zip_int64_t index;
	zip_stat_t zs;
	uint64_t declared, data_at = 0;
	size_t esize = ref->cls->untyped ? 1 : rs_dtype_get(ref->cls->dtype)->bits / 8;
	unsigned char *buf;
	rs_status st;

	if (ref->slot != NULL)
		return RS_OK;
	rs_printable(kshown, sizeof kshown, ref->key);
	if (b->slot_cap > 0 && (s = *slot_find(b, ref->key)) != NULL) {
		if (s->cls != ref->cls || s->numel != ref->numel)
			return BFAIL(b, "%s: tensor '%s': storage '%s' is declared again with "
			             "another type or size (%s of %llu, before %s of %llu)", b->path,
			             tn, kshown, ref->cls->name, (unsigned long long)ref->numel,
			             s->cls->name, (unsigned long long)s->numel);
		ref->slot = s;
		return RS_OK;
	}
	if (ref->numel > UINT64_MAX / esize)
		return BFAIL(b, "%s: tensor '%s': storage '%s' declares %llu elements, more "
		             "bytes than a file holds", b->path, tn, kshown,
		             (unsigned long long)ref->numel);
	declared = ref->numel * esize;
	entry = rs_xasprintf("%s/data/%s", b->archive, ref->key);
	en = rs_printable(shown, sizeof shown, entry);
	index = zip_name_locate(b->z, entry, ZIP_FL_ENC_RAW);
	free(entry);
	if (index < 0)
		return BFAIL(b, "%s: tensor '%s': its storage '%s' has no entry '%s' in the "
		             "archive", b->path, tn, kshown, en);
	if ((st = entry_stat(b, index, &zs, en)) != RS_OK)
		return st;
	if (zs.size != declared)
		return BFAIL(b, "%s: tensor '%s': storage '%s' declares %llu elements of %s "
		             "(%llu bytes) but its entry '%s' holds %llu bytes", b->path, tn,
		             kshown, (unsigned long long)ref->numel,
		             ref->cls->untyped ? "bytes" : rs_dtype_get(ref->cls->dtype)->name,
		             (unsigned long long)declared, en, (unsigned long long)zs.size);
	s = rs_xcalloc(1, sizeof *s);
	s->key = ref->key;
	s->cls = ref->cls;
	s->numel = ref->numel;
	s->nbytes = declared;
	if (zs.comp_method == ZIP_CM_STORE && b->m->map != NULL &&
	    (st = rs_zip_stored_offset(b->path, b->m->map, b->m->map_len, &b->central,
	                               (size_t)index, &zs, &data_at, b->err)) != RS_OK) {
		free(s);
		return st;
	}
	if (data_at != 0) {
		s->bytes = b->m->map + data_at;
		s->file_offset = data_at;
	} else {
		st = rs_zip_read_entry(b->z, (zip_uint64_t)index, &zs, b->m->file_size,
		                       &b->inflated, RS_NPZ_MAX_INFLATED, &buf, b->path, en, b->err);
		if (st != RS_OK) {
			free(s);
			return st;
		}
		own_buffer(b->m, buf);
		s->bytes = buf;
	}
	slot_add(b, s);
	ref->slot = s;
	return RS_OK;
}

/* ---- tensors ---- */

typedef struct gather_args {
	const unsigned char *src;
	unsigned char *dst;
	size_t esize, ndim, count;
	const size_t *shape, *stride;
	size_t *idx;
} gather_args;

/* dst (C order) from a strided view at src; loads and stores only. */
static void
gather(void *arg)
{
	gather_args *a = arg;
	size_t o, k, f = 0;

	for (o = 0; o < a->count; o++) {
		memcpy(a->dst + o * a->esize, a->src + f * a->esize, a->esize);
		for (k = a->ndim; k-- > 0;) {
			a->idx[k]++;
			f += a->stride[k];
			if (a->idx[k] < a->shape[k])
				break;
			f -= a->shape[k] * a->stride[k];
			a->idx[k] = 0;
		}
	}
}

/* "(4, 1)" of up to the first 8 entries, for messages. */
static void
format_dims(char *buf, size_t len, const size_t *v, size_t n)
{
	size_t k, o = 0;

	o += (size_t)snprintf(buf + o, len - o, "(");
	for (k = 0; k < n && k < 8 && o < len; k++)
		o += (size_t)snprintf(buf + o, len - o, "%s%zu", k ? ", " : "", v[k]);
	if (o < len)
		snprintf(buf + o, len - o, "%s)", n > 8 ? ", ..." : n == 1 ? "," : "");
}

/*
 * The tensor's bytes: its view checked against its storage, which is
 * resolved; a C-contiguous view points into the storage, any other is
 * gathered into a C-order buffer.
 */
static rs_status
place_tensor(builder *b, tensor_ref *t, const char *tn)
{
	storage_slot *s;
	size_t esize = rs_dtype_get(t->dtype)->bits / 8, k, expected = 1;
	uint64_t last = t->offset, end;
	bool contiguous = true;
	char dims[160], strides[160], kshown[64];
	rs_status st;

	if (t->placed)
		return RS_OK;
	if ((st = storage_resolve(b, t->storage, tn)) != RS_OK)
		return st;
	s = t->storage->slot;
	rs_printable(kshown, sizeof kshown, s->key);
	if (rs_mul_overflows(t->count, esize, &t->nbytes))
		return BFAIL(b, "%s: tensor '%s': its byte size overflows", b->path, tn);
	if (t->count > 0) {
		/* the furthest element: offset + sum (size - 1) * stride */
		for (k = 0; k < t->ndim; k++) {
			size_t step;
			if (rs_mul_overflows(t->shape[k] - 1, t->stride[k], &step) ||
			    last > UINT64_MAX - step) {
				last = UINT64_MAX;
				break;
			}
			last += step;
		}
		if (last == UINT64_MAX || last + 1 > s->nbytes / esize) {
			end = last == UINT64_MAX ? UINT64_MAX : last + 1;
			format_dims(dims, sizeof dims, t->shape, t->ndim);
			format_dims(strides, sizeof strides, t->stride, t->ndim);
			return BFAIL(b, "%s: tensor '%s': size %s with stride %s from offset %llu "
			             "reaches element %llu of storage '%s', which holds %llu of %s",
			             b->path, tn, dims, strides, (unsigned long long)t->offset,
			             (unsigned long long)end, kshown,
			             (unsigned long long)(s->nbytes / esize),
			             rs_dtype_get(t->dtype)->name);
		}
	}
	for (k = t->ndim; k-- > 0;) {
		if (t->shape[k] != 1 && t->stride[k] != expected)
			contiguous = false;
		expected *= t->shape[k];
	}
	if (t->count == 0) {
		t->data = s->bytes;
	} else if (contiguous) {
		t->data = s->bytes + t->offset * esize;
		t->file_offset = s->file_offset ? s->file_offset + t->offset * esize : 0;
	} else {
		gather_args a = {0};
		unsigned char *dst;

		if (b->gathered > b->gather_max || t->nbytes > b->gather_max - b->gathered)
			return BFAIL(b, "%s: tensor '%s': a strided view of %zu elements over a "
			             "storage of %llu; copying it in C order would take the model's "
			             "copies past %llu bytes (save tensor.contiguous())", b->path,
			             tn, t->count, (unsigned long long)(s->nbytes / esize),
			             (unsigned long long)b->gather_max);
		dst = malloc(t->nbytes);
		if (dst == NULL)
			return rs_error_set(b->err, RS_ENOMEM, "%s: tensor '%s': out of memory for "
			                    "its %zu bytes in C order", b->path, tn, t->nbytes);
		a.src = s->bytes + t->offset * esize;
		a.dst = dst;
		a.esize = esize;
		a.ndim = t->ndim;
		a.count = t->count;
		a.shape = t->shape;
		a.stride = t->stride;
		a.idx = rs_xcalloc(t->ndim, sizeof *a.idx);
		st = rs_guard_run(s->bytes, (size_t)s->nbytes, gather, &a, b->path, tn, b->err);
		free(a.idx);
		if (st != RS_OK) {
			free(dst);
			return st;
		}
		own_buffer(b->m, dst);
		b->gathered += t->nbytes;
		t->data = dst;
	}
	t->placed = true;
	return RS_OK;
}

static rs_status
add_tensor(builder *b, tensor_ref *t)
{
	rs_model *m = b->m;
	const char *name = b->name.len ? b->name.s : b->stem;
	char shown[NAME_SHOWN];
	rs_tensor *rt;
	rs_status st;

	/* a (key, tensor) pair takes at least four bytes of pickle; only
	 * containers shared many times over give more names than that */
	if (m->ntensors >= TENSORS_MAX || m->ntensors >= b->pickle_len / 4 + 16 ||
	    b->name_bytes > NAMES_MAX)
		return BFAIL(b, "%s: data.pkl: more tensor names than its %zu bytes can hold "
		             "(containers shared many times over)", b->path, b->pickle_len);
	b->name_bytes += strlen(name) + 1;
	if ((st = place_tensor(b, t, shown_name(b, shown, sizeof shown))) != RS_OK)
		return st;
	if (m->ntensors == b->tensor_cap) {
		b->tensor_cap = b->tensor_cap ? 2 * b->tensor_cap : 16;
		m->tensors = rs_xreallocarray(m->tensors, b->tensor_cap, sizeof *m->tensors);
	}
	rt = &m->tensors[m->ntensors++];
	memset(rt, 0, sizeof *rt);
	rt->name = rs_xstrdup(name);
	rt->dtype = t->dtype;
	rt->ndim = t->ndim;
	if (t->ndim > 0) {
		rt->shape = rs_xmalloc(t->ndim * sizeof *rt->shape);
		memcpy(rt->shape, t->shape, t->ndim * sizeof *rt->shape);
	}
	rt->count = t->count;
	rt->nbytes = t->nbytes;
	rt->data = t->data;
	rt->offset = t->file_offset;
	rt->layout = RS_LAYOUT_OUT_IN;
	rt->role = RS_ROLE_UNKNOWN;
	return RS_OK;
}

/* ---- metadata ---- */

/* A metadata entry; rankscope's own notes (note) are never dropped. */
static void
meta_add(builder *b, const char *key, const char *text, bool note)
{
	rs_model *m = b->m;

	if (!note && m->nmetadata >= METADATA_MAX) {
		b->meta_dropped++;
		return;
	}
	if (m->nmetadata == b->meta_cap) {
		b->meta_cap = b->meta_cap ? 2 * b->meta_cap : 16;
		m->metadata = rs_xreallocarray(m->metadata, b->meta_cap, sizeof *m->metadata);
	}
	m->metadata[m->nmetadata].key = rs_xstrdup(key);
	m->metadata[m->nmetadata].value = rs_xstrdup(text);
	m->nmetadata++;
}

/* Python's repr of a float: the shortest digits that read back the same. */
static void
format_float(char *buf, size_t len, double f)
{
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	if (strspn(buf, "-0123456789") == strlen(buf))
		snprintf(buf + strlen(buf), len - strlen(buf), ".0");
}

/* A scalar as the metadata value Python would print; a string cut at
 * META_VALUE_MAX bytes on a character boundary, or at a NUL. */
static void
format_scalar(const value *v, char *buf, size_t len)
{
	size_t n;

	switch (v->kind) {
	case V_NONE: snprintf(buf, len, "None"); break;
	case V_BOOL: snprintf(buf, len, "%s", v->u.b ? "True" : "False"); break;
	case V_INT:
		if (v->big)
			snprintf(buf, len, "(an integer of %u bytes)", v->big);
		else
			snprintf(buf, len, "%lld", (long long)v->u.i);
		break;
	case V_FLOAT: format_float(buf, len, v->u.f); break;
	case V_STR:
		n = v->u.str.n < len - 4 ? v->u.str.n : len - 4;
		if (n < v->u.str.n)
			while (n > 0 && ((unsigned char)v->u.str.s[n] & 0xc0) == 0x80)
				n--;
		memcpy(buf, v->u.str.s, n);
		strcpy(buf + n, n < v->u.str.n ? "..." : "");
		break;
	case V_BYTES: snprintf(buf, len, "(%zu bytes)", v->u.str.n); break;
	case V_GLOBAL: snprintf(buf, len, "%s.%s", v->u.g->module, v->u.g->name); break;
	default: snprintf(buf, len, "(%s)", kind_names[v->kind]); break;
	}
}

/* ---- the walk ---- */

static rs_status
visit(builder *b, size_t depth)
{
	if (++b->visits > VISITS_MAX)
		return BFAIL(b, "%s: data.pkl: more than %zu values reached from its top "
		             "(shared many times over)", b->path, VISITS_MAX);
	if (depth > DEPTH_MAX)
		return BFAIL(b, "%s: data.pkl: containers nested more than %d deep (or one "
		             "that holds itself)", b->path, DEPTH_MAX);
	return RS_OK;
}

/* A dict key or list index as a name component: str, int or bool. */
static bool
key_part(const value *k, char *tmp, size_t len, const char **s, size_t *n)
{
	switch (k->kind) {
	case V_STR:
		if (memchr(k->u.str.s, '\0', k->u.str.n) != NULL)
			return false;
		*s = k->u.str.s;
		*n = k->u.str.n;
		return true;
	case V_INT:
		if (k->big)
			return false;
		*n = (size_t)snprintf(tmp, len, "%lld", (long long)k->u.i);
		*s = tmp;
		return true;
	case V_BOOL:
		*s = k->u.b ? "True" : "False";
		*n = strlen(*s);
		return true;
	default:
		return false;
	}
}

static rs_status
count_tensors(builder *b, const value *v, size_t depth, size_t *count)
{
	size_t k;
	rs_status st;

	if ((st = visit(b, depth)) != RS_OK)
		return st;
	if (v->kind == V_TENSOR)
		(*count)++;
	if (v->kind == V_DICT || v->kind == V_LIST || v->kind == V_TUPLE)
		for (k = 0; k < v->u.seq.n; k++)
			if ((st = count_tensors(b, v->u.seq.v[k], depth + 1, count)) != RS_OK)
				return st;
	return RS_OK;
}

static rs_status walk(builder *b, const value *v, size_t depth);

/* Walks v under the name so far plus one component. */
static rs_status
walk_child(builder *b, const value *key, size_t index, const value *v, size_t depth)
{
	char tmp[32], shown[NAME_SHOWN];
	const char *part;
	size_t n, save = b->name.len, count = 0;
	rs_status st;

	if (key == NULL) {
		n = (size_t)snprintf(tmp, sizeof tmp, "%zu", index);
		part = tmp;
	} else if (!key_part(key, tmp, sizeof tmp, &part, &n)) {
		/* a key that cannot name anything: fine if nothing needs a name */
		if ((st = count_tensors(b, v, depth, &count)) != RS_OK)
			return st;
		if (count > 0)
			return BFAIL(b, "%s: data.pkl: %s%s%s holds tensors under %s key%s; tensor "
			             "names are made of str and int keys", b->path,
			             b->name.len ? "the dict at '" : "the top-level dict",
			             b->name.len ? shown_name(b, shown, sizeof shown) : "",
			             b->name.len ? "'" : "", kind_names[key->kind],
			             key->kind == V_STR ? " holding a NUL byte" : "");
		return RS_OK;
	}
	if (!name_push(&b->name, part, n))
		return BFAIL(b, "%s: data.pkl: a key path longer than %d bytes at '%s'",
		             b->path, KEY_PATH_MAX, shown_name(b, shown, sizeof shown));
	st = walk(b, v, depth);
	name_cut(&b->name, save);
	return st;
}

/* Every tensor under v, named by key path; scalars become metadata. */
static rs_status
walk(builder *b, const value *v, size_t depth)
{
	char text[META_VALUE_MAX + 8];
	size_t k;
	rs_status st;

	if ((st = visit(b, depth)) != RS_OK)
		return st;
	switch (v->kind) {
	case V_TENSOR:
		return add_tensor(b, v->u.tensor);
	case V_DICT:
		for (k = 0; k + 1 < v->u.seq.n; k += 2) {
			st = walk_child(b, v->u.seq.v[k], 0, v->u.seq.v[k + 1], depth + 1);
			if (st != RS_OK)
				return st;
		}
		return RS_OK;
	case V_LIST:
	case V_TUPLE:
		for (k = 0; k < v->u.seq.n; k++)
			if ((st = walk_child(b, NULL, k, v->u.seq.v[k], depth + 1)) != RS_OK)
				return st;
		return RS_OK;
	case V_STORAGE:
		return RS_OK;        /* a bare storage is no tensor */
	default:
		format_scalar(v, text, sizeof text);
		meta_add(b, b->name.len ? b->name.s : "value", text, false);
		return RS_OK;
	}
}

static void
note_skipped(builder *b, const value *key, size_t count, const char *why)
{
	char tmp[32], part[NAME_SHOWN];
	const char *s;
	size_t n;
	char *was = b->skipped;

	if (!key_part(key, tmp, sizeof tmp, &s, &n))
		s = "?", n = 1;
	snprintf(part, sizeof part, "%.*s", (int)(n < sizeof part - 1 ? n : sizeof part - 1), s);
	b->skipped = rs_xasprintf("%s%s%s (%zu tensor%s: %s)", was ? was : "", was ? "; " : "",
	                          part, count, count == 1 ? "" : "s", why);
	free(was);
}

static bool
key_is(const value *k, const char *const *names)
{
	for (; *names != NULL; names++)
		if (k->kind == V_STR && is_text(k, *names))
			return true;
	return false;
}

/*
 * The top of the pickle: a checkpoint dict with its weights under one of
 * the usual keys gives that dict alone; any other dict everything but its
 * optimizer state; anything else everything.
 */
static rs_status
walk_top(builder *b, const value *top)
{
	static const char *const weights[] = {
		"state_dict", "model", "model_state_dict", "module", "net", "ema", NULL,
	};
	static const char *const optimizer[] = {
		"optimizer", "optimizer_state_dict", "optimizer_states", NULL,
	};
	const value *chosen = NULL;
	const char *chosen_key = NULL;
	size_t chosen_at = 0, w, k, count;
	rs_status st;

	if (top->kind != V_DICT)
		return walk(b, top, 0);
	for (w = 0; weights[w] != NULL && chosen == NULL; w++)
		for (k = 0; k + 1 < top->u.seq.n && chosen == NULL; k += 2) {
			const char *one[2] = {weights[w], NULL};
			const value *v = top->u.seq.v[k + 1];

			count = 0;
			if (!key_is(top->u.seq.v[k], one) || v->kind != V_DICT)
				continue;
			if ((st = count_tensors(b, v, 1, &count)) != RS_OK)
				return st;
			if (count > 0)
				chosen = v, chosen_at = k, chosen_key = weights[w];
		}
	if (chosen != NULL) {
		if ((st = walk(b, chosen, 1)) != RS_OK)
			return st;
		meta_add(b, "rankscope.state_dict", chosen_key, true);
	}
	for (k = 0; k + 1 < top->u.seq.n; k += 2) {
		const value *key = top->u.seq.v[k], *v = top->u.seq.v[k + 1];

		if (chosen != NULL && k == chosen_at)
			continue;
		count = 0;
		if ((st = count_tensors(b, v, 1, &count)) != RS_OK)
			return st;
		if (count > 0 && key_is(key, optimizer)) {
			note_skipped(b, key, count, "optimizer state, not model weights");
			continue;
		}
		if (count > 0 && chosen != NULL) {
			char why[96];
			snprintf(why, sizeof why, "not the weights under '%s'", chosen_key);
			note_skipped(b, key, count, why);
			continue;
		}
		if ((st = walk_child(b, key, 0, v, 1)) != RS_OK)
			return st;
	}
	return RS_OK;
}

static int
compare_tensor_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static rs_status
check_unique_names(builder *b)
{
	rs_model *m = b->m;
	char **names = rs_xcalloc(m->ntensors ? m->ntensors : 1, sizeof *names);
	char shown[NAME_SHOWN];
	size_t i;
	rs_status st = RS_OK;

	for (i = 0; i < m->ntensors; i++)
		names[i] = m->tensors[i].name;
	qsort(names, m->ntensors, sizeof *names, compare_tensor_names);
	for (i = 1; i < m->ntensors && st == RS_OK; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			st = BFAIL(b, "%s: tensor '%s' appears twice (two key paths give the same "
			           "name)", b->path, rs_printable(shown, sizeof shown, names[i]));
	free(names);
	return st;
}

/* ---- the archive ---- */

static bool
ends_with(const char *s, size_t n, const char *tail)
{
	size_t t = strlen(tail);
	return n >= t && memcmp(s + n - t, tail, t) == 0;
}

/* ARCHIVE: the one top-level folder holding data.pkl. */
static rs_status
find_archive(builder *b)
{
	zip_int64_t n = zip_get_num_entries(b->z, 0), i;
	const char *deeper = NULL;
	char s1[NAME_SHOWN], s2[NAME_SHOWN];

	for (i = 0; i < n; i++) {
		const char *name = zip_get_name(b->z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		const char *slash;
		size_t len;

		if (name == NULL)
			continue;
		len = strlen(name);
		if (!ends_with(name, len, "/data.pkl") && strcmp(name, "data.pkl") != 0)
			continue;
		slash = strchr(name, '/');
		if (slash == NULL || slash == name || (size_t)(slash - name) != len - 9) {
			deeper = deeper ? deeper : name;
			continue;
		}
		if (b->archive != NULL) {
			char *first = rs_xasprintf("%s/data.pkl", b->archive);
			rs_status st = BFAIL(b, "%s: two checkpoints in one archive ('%s' and "
			                     "'%s'); torch.save writes one", b->path,
			                     rs_printable(s1, sizeof s1, first),
			                     rs_printable(s2, sizeof s2, name));
			free(first);
			return st;
		}
		b->archive = rs_xstrndup(name, len - 9);
	}
	if (b->archive == NULL)
		return BFAIL(b, "%s: no data.pkl in a top-level folder ('%s' is not what "
		             "torch.save writes: ARCHIVE/data.pkl)", b->path,
		             rs_printable(s1, sizeof s1, deeper ? deeper : "?"));
	return RS_OK;
}

static zip_int64_t
locate(builder *b, const char *member)
{
	char *name = rs_xasprintf("%s/%s", b->archive, member);
	zip_int64_t index = zip_name_locate(b->z, name, ZIP_FL_ENC_RAW);

	free(name);
	return index;
}

/* TorchScript (torch.jit.save) uses the same container with code in it. */
static rs_status
refuse_torchscript(builder *b)
{
	char *code = rs_xasprintf("%s/code/", b->archive);
	zip_int64_t n = zip_get_num_entries(b->z, 0), i;
	bool script = locate(b, "constants.pkl") >= 0;
	size_t clen = strlen(code);

	for (i = 0; i < n && !script; i++) {
		const char *name = zip_get_name(b->z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		script = name != NULL && strncmp(name, code, clen) == 0;
	}
	free(code);
	if (script)
		return BFAIL(b, "%s: a TorchScript archive (torch.jit.save: code and "
		             "constants.pkl beside data.pkl), not a checkpoint; rankscope opens "
		             "state dicts saved by torch.save (save model.state_dict())", b->path);
	return RS_OK;
}

/* A small text member (version, byteorder), whitespace trimmed; NULL in
 * *text when absent. */
static rs_status
small_member(builder *b, const char *member, char *text, size_t len, bool *present)
{
	zip_int64_t index = locate(b, member);
	char shown[NAME_SHOWN], *name = rs_xasprintf("%s/%s", b->archive, member);
	const char *en = rs_printable(shown, sizeof shown, name);
	zip_stat_t zs;
	uint64_t used = 0;
	unsigned char *buf;
	size_t n;
	rs_status st;

	free(name);
	*present = index >= 0;
	text[0] = '\0';
	if (index < 0)
		return RS_OK;
	if ((st = entry_stat(b, index, &zs, en)) != RS_OK)
		return st;
	if (zs.size >= len)
		return BFAIL(b, "%s: entry '%s' holds %llu bytes (torch.save writes a few)",
		             b->path, en, (unsigned long long)zs.size);
	if ((st = rs_zip_read_entry(b->z, (zip_uint64_t)index, &zs, b->m->file_size, &used, len,
	                            &buf, b->path, en, b->err)) != RS_OK)
		return st;
	n = (size_t)zs.size;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
		n--;
	memcpy(text, buf, n);
	text[n] = '\0';
	free(buf);
	if (memchr(text, '\0', n) != NULL || !rs_utf8_valid(text, n))
		return BFAIL(b, "%s: entry '%s' is not text", b->path, en);
	return RS_OK;
}

static rs_status
read_members(builder *b)
{
	char text[64], shown[64];
	bool present;
	rs_status st;

	if ((st = small_member(b, "byteorder", text, sizeof text, &present)) != RS_OK)
		return st;
	if (present && strcmp(text, "big") == 0)
		return BFAIL(b, "%s: a big-endian checkpoint (byteorder 'big'): rankscope reads "
		             "little-endian ones; load and save it again on a little-endian "
		             "machine", b->path);
	if (present && strcmp(text, "little") != 0)
		return BFAIL(b, "%s: byteorder '%s' is neither 'little' nor 'big'", b->path,
		             rs_printable(shown, sizeof shown, text));
	if ((st = small_member(b, "version", text, sizeof text, &present)) != RS_OK)
		return st;
	if (present) {
		if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
			return BFAIL(b, "%s: version '%s' is not a number", b->path,
			             rs_printable(shown, sizeof shown, text));
		meta_add(b, "rankscope.archive_version", text, true);
	}
	return RS_OK;
}

/* data.pkl, whole, into *out (the caller frees). */
static rs_status
read_pickle(builder *b, unsigned char **out, size_t *len)
{
	zip_int64_t index = locate(b, "data.pkl");
	char shown[NAME_SHOWN], *name = rs_xasprintf("%s/data.pkl", b->archive);
	const char *en = rs_printable(shown, sizeof shown, name);
	zip_stat_t zs;
	uint64_t used = 0;
	rs_status st;

	free(name);
	if (index < 0)
		return BFAIL(b, "%s: entry '%s' cannot be found", b->path, en);
	if ((st = entry_stat(b, index, &zs, en)) != RS_OK)
		return st;
	if (zs.size > PICKLE_MAX)
		return BFAIL(b, "%s: entry '%s' holds %llu bytes, more than the %llu a "
		             "checkpoint's pickle may have", b->path, en,
		             (unsigned long long)zs.size, (unsigned long long)PICKLE_MAX);
	if ((st = rs_zip_read_entry(b->z, (zip_uint64_t)index, &zs, b->m->file_size, &used,
	                            PICKLE_MAX, out, b->path, en, b->err)) != RS_OK)
		return st;
	*len = (size_t)zs.size;
	return RS_OK;
}

/* "dir/model.pt" -> "model": the name of a checkpoint that is one tensor. */
static char *
file_stem(const char *path)
{
	size_t n;
	const char *base = rs_path_stem(path, "", &n);
	const char *dot = memchr(base, '.', n);

	if (dot != NULL && dot > base)
		n = (size_t)(dot - base);
	return n ? rs_xstrndup(base, n) : rs_xstrdup("tensor");
}

static rs_status
torch_build(rs_model *m, zip_t *z, rs_error *err)
{
	builder b = {0};
	unpickler u = {0};
	unsigned char *pickle = NULL;
	value *top = NULL;
	size_t plen = 0, i;
	rs_error discarded;
	rs_status st;

	if (err == NULL)
		err = &discarded;   /* the unpickler reads back the status it set */
	b.m = m;
	b.z = z;
	b.path = m->path;
	b.err = err;
	b.stem = file_stem(m->path);
	b.gather_max = m->file_size > GATHER_MIN / GATHER_FACTOR ?
	               m->file_size * GATHER_FACTOR : GATHER_MIN;
	if ((st = find_archive(&b)) != RS_OK || (st = refuse_torchscript(&b)) != RS_OK ||
	    (st = read_members(&b)) != RS_OK || (st = read_pickle(&b, &pickle, &plen)) != RS_OK)
		goto out;
	m->header_len = plen;
	b.pickle_len = plen;
	rs_sha256(pickle, plen, m->header_sha256);
	u.path = m->path;
	u.p = pickle;
	u.len = plen;
	u.err = err;
	if ((st = unpickle(&u, &top)) != RS_OK)
		goto out;
	if (m->map != NULL &&
	    (st = rs_zip_central_read(m->path, m->map, m->map_len, &b.central, err)) != RS_OK)
		goto out;
	if (b.central.n != (size_t)zip_get_num_entries(z, 0))
		rs_zip_central_free(&b.central);   /* disagrees with libzip: read through it */
	if ((st = walk_top(&b, top)) != RS_OK || (st = check_unique_names(&b)) != RS_OK)
		goto out;
	if (m->ntensors == 0) {
		st = BFAIL(&b, "%s: data.pkl holds no tensors (%s%s%s)", m->path,
		           kind_names[top->kind], b.skipped ? "; skipped: " : "",
		           b.skipped ? b.skipped : "");
		goto out;
	}
	if (b.skipped != NULL)
		meta_add(&b, "rankscope.skipped", b.skipped, true);
	if (b.meta_dropped > 0) {
		char text[64];
		snprintf(text, sizeof text, "%zu entries past the first %d", b.meta_dropped,
		         METADATA_MAX);
		meta_add(&b, "rankscope.metadata_dropped", text, true);
	}
	m->network_order = true;
out:
	unpickler_free(&u);
	free(pickle);
	for (i = 0; i < b.slot_cap; i++)
		free(b.slots[i]);
	free(b.slots);
	rs_zip_central_free(&b.central);
	free(b.archive);
	free(b.name.s);
	free(b.stem);
	free(b.skipped);
	return st;
}

/* ---- entry points ----------------------------------------------------------------- */

static rs_model *
new_model(const char *path, const unsigned char *map, size_t len)
{
	rs_model *m = rs_xcalloc(1, sizeof *m);

	m->path = rs_xstrdup(path);
	m->format = "torch";
	m->map = map;
	m->map_len = len;
	m->file_size = len;
	return m;
}

rs_model *
rs_torch_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	return rs_zip_model_parse(new_model(path, bytes, len), bytes, len, torch_build, err);
}

/* libzip reads the archive with read(2) from its own descriptor, so a
 * file shrinking meanwhile is a read error there, never a fault; only
 * stored entries are read from the map, under the guard.  A size change
 * while opening is reported as such, not as whatever it broke. */
rs_model *
rs_torch_open(const char *path, rs_error *err)
{
	rs_mapped_file f;
	rs_model *m;

	if (!rs_file_map(path, &f, err))
		return NULL;
	m = new_model(path, f.map, (size_t)f.size);
	return rs_file_map_adopt(path, &f, rs_zip_model_open(m, f.fd, torch_build, err), err);
}
