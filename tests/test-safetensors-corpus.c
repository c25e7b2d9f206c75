/*
 * test-safetensors-corpus.c — broken safetensors files are refused cleanly.
 *
 * Weight files come from strangers, so the loader is the first thing an
 * attacker reaches.  Every check of the reference validation is violated
 * once by a hand-made image, and each refusal must return NULL with
 * RS_EFORMAT and a message naming the file, the tensor at fault and the
 * problem, with no raw control byte in it (names end up in terminals).
 * Then every truncation of a valid file and a few thousand deterministic
 * corruptions must either fail the same way or yield a model whose tensors
 * stay inside the buffer.  Images are parsed from exact-size heap copies so
 * that the address sanitizer sees any read past the end.  A few valid edge
 * cases (no tensors, zero elements, scalars, 9 dimensions) must still open.
 *
 * Headers are written with ' standing for " to keep them legible; a real '
 * inside a name is written \u0027.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

/* A header literal and its length (some hold NUL bytes). */
#define HDR(s) s, sizeof s - 1
/* A valid 4-byte tensor entry, for headers whose fault lies elsewhere. */
#define OK_F32 "{'dtype':'F32','shape':[1],'data_offsets':[0,4]}"

struct bad_case {
	const char *name;       /* file name stem, shown in the message */
	const char *header;     /* JSON with ' for " */
	size_t header_len;
	size_t data_len;        /* bytes after the header */
	const char *who;        /* the culprit as the message names it, or NULL */
	const char *problem;    /* a distinctive part of the message */
};

static void
put_le64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* 8-byte length, the header with ' turned into ", then data_len bytes. */
static unsigned char *
make_image(const char *header, size_t header_len, size_t data_len, size_t *len)
{
	unsigned char *out = rs_xmalloc(8 + header_len + data_len);
	size_t i;

	put_le64(out, header_len);
	for (i = 0; i < header_len; i++)
		out[8 + i] = header[i] == '\'' ? '"' : (unsigned char)header[i];
	for (i = 0; i < data_len; i++)
		out[8 + header_len + i] = (unsigned char)(i * 37 + 1);
	*len = 8 + header_len + data_len;
	return out;
}

static bool
has_control_byte(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void
reset_error(rs_error *err)
{
	err->code = RS_OK;
	strcpy(err->msg, "(no message)");
}

/*
 * Parses an exact-size copy of the image and expects a refusal naming the
 * file, `who` (unless NULL) and `problem`.
 */
static void
expect_failure(const char *path, const unsigned char *bytes, size_t len,
               const char *who, const char *problem)
{
	unsigned char *copy = rs_xmalloc(len);
	rs_error err;
	rs_model *m;

	if (len > 0)
		memcpy(copy, bytes, len);
	reset_error(&err);
	m = rs_safetensors_parse(path, copy, len, &err);
	CHECK(m == NULL, "%s: accepted, expected '%s'", path, problem);
	if (m != NULL) {
		rs_model_close(m);
		free(copy);
		return;
	}
	CHECK(err.code == RS_EFORMAT, "%s: code %s, expected RS_EFORMAT (%s)", path,
	      rs_status_name(err.code), err.msg);
	CHECK_CONTAINS(err.msg, path);
	if (who != NULL)
		CHECK_CONTAINS(err.msg, who);
	CHECK_CONTAINS(err.msg, problem);
	CHECK(!has_control_byte(err.msg), "%s: raw control byte in the message", path);
	free(copy);
}

static int ncases;

static void
run_cases(const struct bad_case *cases, size_t n)
{
	size_t i, len;

	for (i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];
		char *path = rs_xasprintf("corpus/%s.safetensors", c->name);
		unsigned char *bytes = make_image(c->header, c->header_len,
		                                  c->data_len, &len);

		expect_failure(path, bytes, len, c->who, c->problem);
		ncases++;
		free(bytes);
		free(path);
	}
}

/* The 8-byte length and the first header byte. */
static void
check_framing(void)
{
	static const char *const bad_starts[] = {
		" {}", "\n{}", "[{}]", "[]", "3", "'{}'", "\xef\xbb\xbf{}", "}{",
	};
	unsigned char *bytes, small[10] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
	size_t n, len;
	char *path, *problem;

	for (n = 0; n < 8; n++) {
		path = rs_xasprintf("corpus/short-%zu.safetensors", n);
		problem = rs_xasprintf("file is %zu bytes, too short for the 8-byte "
		                       "header length", n);
		expect_failure(path, small, n, NULL, problem);
		ncases++;
		free(problem);
		free(path);
	}

	bytes = make_image(HDR("{}"), 0, &len);
	put_le64(bytes, RS_SAFETENSORS_MAX_HEADER + 1ull);
	expect_failure("corpus/limit-plus-one.safetensors", bytes, len, NULL,
	               "header length 100000001 exceeds the limit of 100000000 bytes");
	put_le64(bytes, UINT64_MAX);
	expect_failure("corpus/length-max.safetensors", bytes, len, NULL,
	               "header length 18446744073709551615 exceeds the limit");
	put_le64(bytes, 1ull << 63);
	expect_failure("corpus/length-sign-bit.safetensors", bytes, len, NULL,
	               "header length 9223372036854775808 exceeds the limit");
	/* the limit itself is allowed, so this one fails on the file size */
	put_le64(bytes, RS_SAFETENSORS_MAX_HEADER);
	expect_failure("corpus/limit.safetensors", bytes, len, NULL,
	               "header length 100000000 runs past the end of the file "
	               "(10 bytes; truncated file?)");
	put_le64(bytes, 3);
	expect_failure("corpus/length-past-end.safetensors", bytes, len, NULL,
	               "header length 3 runs past the end of the file (10 bytes");
	put_le64(bytes, 0);
	expect_failure("corpus/length-zero.safetensors", bytes, len, NULL,
	               "header does not start with '{'");
	expect_failure("corpus/length-zero-alone.safetensors", bytes, 8, NULL,
	               "header does not start with '{'");
	free(bytes);
	ncases += 7;

	/* JSON that is not an object cannot start with '{', so these stop here */
	for (n = 0; n < sizeof bad_starts / sizeof bad_starts[0]; n++) {
		path = rs_xasprintf("corpus/bad-start-%zu.safetensors", n);
		bytes = make_image(bad_starts[n], strlen(bad_starts[n]), 0, &len);
		expect_failure(path, bytes, len, NULL, "header does not start with '{'");
		ncases++;
		free(bytes);
		free(path);
	}
}

/* The header must be valid UTF-8 JSON with no duplicate keys. */
static const struct bad_case json_cases[] = {
	{"json-syntax", HDR("{'w' " OK_F32 "}"),
	 4, NULL, "header is not valid JSON: ':' expected near '{' (line 1, column 6)"},
	{"json-truncated", HDR("{'w':" OK_F32),
	 4, NULL, "header is not valid JSON: '}' expected near end of file"},
	{"json-truncated-string", HDR("{'w':{'dtype':'F3"),
	 0, NULL, "header is not valid JSON: premature end of input"},
	{"json-trailing-comma", HDR("{'w':" OK_F32 ",}"),
	 4, NULL, "header is not valid JSON: string or '}' expected near '}'"},
	{"json-two-objects", HDR("{}{}"),
	 0, NULL, "header is not valid JSON: end of file expected near '{'"},
	{"json-bare-word", HDR("{w:1}"),
	 0, NULL, "header is not valid JSON: string or '}' expected near 'w'"},
	{"json-invalid-utf8", HDR("{'w\xff':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: unable to decode byte 0xff"},
	{"json-cut-utf8", HDR("{'w\xc3':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: unable to decode byte 0xc3"},
	{"json-overlong-utf8", HDR("{'w\xc0\xaf':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: unable to decode byte 0xc0"},
	{"json-utf8-surrogate", HDR("{'w\xed\xa0\x80':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: unable to decode byte 0xed"},
	{"json-lone-surrogate", HDR("{'w\\ud800':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: invalid Unicode '\\uD800'"},
	{"json-lone-low-surrogate", HDR("{'w\\udc00':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: invalid Unicode '\\uDC00'"},
	{"json-nul-escape-key", HDR("{'w\\u0000':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: NUL byte in object key not supported"},
	{"json-nul-escape-value",
	 HDR("{'w':{'dtype':'F32\\u0000','shape':[1],'data_offsets':[0,4]}}"),
	 4, NULL, "header is not valid JSON: \\u0000 is not allowed"},
	/* raw NUL bytes: jansson skips one that follows a number or literal */
	{"json-raw-nul-in-string", HDR("{'w\0x':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: NUL byte at byte 3 of the header"},
	{"json-raw-nul-after-number",
	 HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4\0]}}"),
	 4, NULL, "header is not valid JSON: NUL byte at byte 51 of the header"},
	{"json-raw-nul-after-null",
	 HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4],'x':null\0}}"),
	 4, NULL, "header is not valid JSON: NUL byte"},
	{"json-raw-nul-padding", HDR("{}\0\0\0\0\0\0"),
	 0, NULL, "header is not valid JSON: NUL byte at byte 2 of the header"},
	/* jansson quotes the input near an error: a control byte must be escaped */
	{"json-raw-escape", HDR("{\x1b[2J}"),
	 0, NULL, "header is not valid JSON: string or '}' expected near '\\x1b'"},
	{"json-raw-control-value", HDR("{'w':\x01}"),
	 0, NULL, "header is not valid JSON: invalid token near '\\x01'"},
	{"json-raw-del", HDR("{'w':1\x7f}"),
	 0, NULL, "header is not valid JSON: '}' expected near '\\x7f'"},
	{"json-raw-control-in-string", HDR("{'w\x01':" OK_F32 "}"),
	 4, NULL, "header is not valid JSON: control character 0x1"},
	{"json-duplicate-tensor", HDR("{'w':" OK_F32 ","
	                              "'w':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}"),
	 8, NULL, "header is not valid JSON: duplicate object key near '\"w\"'"},
	{"json-duplicate-metadata", HDR("{'__metadata__':{'a':'1'},'__metadata__':{'b':'2'}}"),
	 0, NULL, "header is not valid JSON: duplicate object key"},
	{"json-duplicate-metadata-key", HDR("{'__metadata__':{'a':'1','a':'2'}}"),
	 0, NULL, "header is not valid JSON: duplicate object key"},
	{"json-duplicate-field",
	 HDR("{'w':{'dtype':'F32','dtype':'F16','shape':[1],'data_offsets':[0,4]}}"),
	 4, NULL, "header is not valid JSON: duplicate object key"},
	/* jansson integers are int64: anything larger is refused while parsing */
	{"json-offset-past-int64",
	 HDR("{'w':{'dtype':'F32','shape':[1],"
	     "'data_offsets':[9223372036854775804,9223372036854775808]}}"),
	 4, NULL, "header is not valid JSON: too big integer near '9223372036854775808'"},
	{"json-offset-uint64-max",
	 HDR("{'w':{'dtype':'F32','shape':[1],"
	     "'data_offsets':[18446744073709551611,18446744073709551615]}}"),
	 4, NULL, "header is not valid JSON: too big integer near '18446744073709551611'"},
	{"json-dim-past-int64",
	 HDR("{'w':{'dtype':'F32','shape':[18446744073709551616],'data_offsets':[0,4]}}"),
	 4, NULL, "header is not valid JSON: too big integer"},
	{"json-real-overflow", HDR("{'w':{'dtype':'F32','shape':[1e400],'data_offsets':[0,4]}}"),
	 4, NULL, "header is not valid JSON: real number overflow"},
};

/* Each tensor entry: an object with a known dtype, a shape and two offsets. */
static const struct bad_case entry_cases[] = {
	{"entry-array", HDR("{'w':[0,4]}"),
	 4, "tensor 'w'", "entry must be an object with dtype, shape and data_offsets"},
	{"entry-string", HDR("{'w':'F32'}"),
	 4, "tensor 'w'", "entry must be an object"},
	{"entry-null", HDR("{'a':" OK_F32 ",'w':null}"),
	 4, "tensor 'w'", "entry must be an object"},
	{"missing-dtype", HDR("{'a':" OK_F32 ","
	                      "'b':{'shape':[1],'data_offsets':[4,8]}}"),
	 8, "tensor 'b'", "missing 'dtype'"},
	{"missing-shape", HDR("{'a':" OK_F32 ","
	                      "'b':{'dtype':'F32','data_offsets':[4,8]}}"),
	 8, "tensor 'b'", "missing 'shape'"},
	{"missing-data-offsets", HDR("{'a':" OK_F32 ","
	                             "'b':{'dtype':'F32','shape':[1]}}"),
	 8, "tensor 'b'", "missing 'data_offsets'"},
	{"missing-all", HDR("{'w':{}}"),
	 0, "tensor 'w'", "missing 'dtype'"},
	{"dtype-number", HDR("{'w':{'dtype':32,'shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "dtype must be a string"},
	{"dtype-null", HDR("{'w':{'dtype':null,'shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "dtype must be a string"},
	{"dtype-array", HDR("{'w':{'dtype':['F32'],'shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "dtype must be a string"},
	{"dtype-unknown", HDR("{'w':{'dtype':'F31','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "unknown dtype 'F31'"},
	{"dtype-lowercase", HDR("{'w':{'dtype':'f32','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "unknown dtype 'f32'"},
	{"dtype-empty", HDR("{'w':{'dtype':'','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "unknown dtype ''"},
	{"dtype-padded", HDR("{'w':{'dtype':'F32 ','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "unknown dtype 'F32 '"},
	{"dtype-control", HDR("{'w':{'dtype':'F\\u001b[0m32','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "unknown dtype 'F\\x1b[0m32'"},
	{"shape-string", HDR("{'w':{'dtype':'F32','shape':'[1]','data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape must be an array of non-negative integers"},
	{"shape-number", HDR("{'w':{'dtype':'F32','shape':1,'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape must be an array"},
	{"shape-object", HDR("{'w':{'dtype':'F32','shape':{'0':1},'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape must be an array"},
	{"shape-null", HDR("{'w':{'dtype':'F32','shape':null,'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape must be an array"},
	{"dim-negative", HDR("{'w':{'dtype':'F32','shape':[2,-1],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[1] must be a non-negative integer"},
	{"dim-int64-min",
	 HDR("{'w':{'dtype':'F32','shape':[-9223372036854775808],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-real", HDR("{'w':{'dtype':'F32','shape':[1.5],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-real-integral", HDR("{'w':{'dtype':'F32','shape':[1,1.0],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[1] must be a non-negative integer"},
	{"dim-exponent", HDR("{'w':{'dtype':'F32','shape':[1e0],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-string", HDR("{'w':{'dtype':'F32','shape':['3'],'data_offsets':[0,12]}}"),
	 12, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-null", HDR("{'w':{'dtype':'F32','shape':[null],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-bool", HDR("{'w':{'dtype':'F32','shape':[true],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"dim-nested", HDR("{'w':{'dtype':'F32','shape':[[1]],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "shape[0] must be a non-negative integer"},
	{"offsets-string", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':'0,4'}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers [begin, end]"},
	{"offsets-object",
	 HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':{'begin':0,'end':4}}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-empty", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-one", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[4]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-three", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4,8]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-negative-begin", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[-4,0]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-negative-end", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,-4]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-real", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,4.0]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-string-item", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[0,'4']}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-null-item", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[null,4]}}"),
	 4, "tensor 'w'", "data_offsets must be two non-negative integers"},
	{"offsets-reversed", HDR("{'w':{'dtype':'U8','shape':[0],'data_offsets':[8,4]}}"),
	 8, "tensor 'w'", "data_offsets end 4 is before begin 8"},
};

/* Sizes: elements x dtype bits, overflow checked, matching the offsets. */
static const struct bad_case size_cases[] = {
	{"count-overflow",
	 HDR("{'w':{'dtype':'F32','shape':[4294967296,4294967296],'data_offsets':[0,0]}}"),
	 0, "tensor 'w'", "element count overflows"},
	/* the reference folds with checked_mul too, so a later 0 does not help */
	{"count-overflow-then-zero", HDR("{'w':{'dtype':'F32','shape':[4294967296,4294967296,0],"
	                                 "'data_offsets':[0,0]}}"),
	 0, "tensor 'w'", "element count overflows"},
	{"count-overflow-int64", HDR("{'w':{'dtype':'U8','shape':[9223372036854775807,3],"
	                             "'data_offsets':[0,0]}}"),
	 0, "tensor 'w'", "element count overflows"},
	{"bytes-overflow-u8",
	 HDR("{'w':{'dtype':'U8','shape':[4611686018427387904],'data_offsets':[0,0]}}"),
	 0, "tensor 'w'", "byte size overflows"},
	{"bytes-overflow-f64",
	 HDR("{'w':{'dtype':'F64','shape':[16,18014398509481984],'data_offsets':[0,0]}}"),
	 0, "tensor 'w'", "byte size overflows"},
	{"f4-odd", HDR("{'w':{'dtype':'F4','shape':[3],'data_offsets':[0,2]}}"),
	 2, "tensor 'w'", "3 elements of 4-bit F4 do not fill whole bytes"},
	{"f6-partial", HDR("{'w':{'dtype':'F6_E2M3','shape':[1,2],'data_offsets':[0,2]}}"),
	 2, "tensor 'w'", "2 elements of 6-bit F6_E2M3 do not fill whole bytes"},
	{"span-short", HDR("{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,20]}}"),
	 20, "tensor 'w'", "data_offsets span 20 bytes but 6 elements of F32 need 24"},
	{"span-long", HDR("{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,28]}}"),
	 28, "tensor 'w'", "data_offsets span 28 bytes but 6 elements of F32 need 24"},
	{"span-zero-elements", HDR("{'w':{'dtype':'F32','shape':[0,5],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "data_offsets span 4 bytes but 0 elements of F32 need 0"},
	{"span-scalar", HDR("{'w':{'dtype':'F64','shape':[],'data_offsets':[0,4]}}"),
	 4, "tensor 'w'", "data_offsets span 4 bytes but 1 elements of F64 need 8"},
	{"span-empty", HDR("{'w':{'dtype':'BF16','shape':[3],'data_offsets':[6,6]}}"),
	 6, "tensor 'w'", "data_offsets span 0 bytes but 3 elements of BF16 need 6"},
};

/* The tensors, in offset order, must tile the data buffer exactly. */
static const struct bad_case tiling_cases[] = {
	{"gap-first", HDR("{'w':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}"),
	 8, "tensor 'w'", "gap of 4 bytes before its data (offset 4, previous tensor ends at 0)"},
	{"gap-middle", HDR("{'a':" OK_F32 ","
	                   "'b':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}}"),
	 12, "tensor 'b'", "gap of 4 bytes before its data (offset 8, previous tensor ends at 4)"},
	{"gap-listed-first", HDR("{'b':{'dtype':'F32','shape':[1],'data_offsets':[6,10]},"
	                         "'a':" OK_F32 "}"),
	 10, "tensor 'b'", "gap of 2 bytes"},
	{"gap-empty-tensor", HDR("{'a':" OK_F32 ","
	                         "'z':{'dtype':'U8','shape':[0],'data_offsets':[8,8]}}"),
	 4, "tensor 'z'", "gap of 4 bytes before its data (offset 8, previous tensor ends at 4)"},
	{"gap-near-int64-max", HDR("{'w':{'dtype':'F32','shape':[1],"
	                           "'data_offsets':[9223372036854775803,9223372036854775807]}}"),
	 4, "tensor 'w'", "gap of 9223372036854775803 bytes before its data"},
	{"overlap", HDR("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
	                "'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}"),
	 12, "tensor 'b'", "data overlaps the previous tensor (begins at 4, previous ends at 8)"},
	{"overlap-inside", HDR("{'a':{'dtype':'U8','shape':[8],'data_offsets':[0,8]},"
	                       "'b':{'dtype':'U8','shape':[2],'data_offsets':[2,4]}}"),
	 8, "tensor 'b'", "data overlaps the previous tensor (begins at 2, previous ends at 8)"},
	{"overlap-identical", HDR("{'twin.a':" OK_F32 ","
	                          "'twin.b':{'dtype':'I32','shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'twin.", "data overlaps the previous tensor (begins at 0, previous ends at 4)"},
	{"past-end", HDR("{'w':" OK_F32 "}"),
	 2, "tensor 'w'", "data ends at byte 4 of the data buffer but the file holds only 2 "
	                  "(truncated file?)"},
	{"past-end-no-data", HDR("{'w':" OK_F32 "}"),
	 0, "tensor 'w'", "data ends at byte 4 of the data buffer but the file holds only 0"},
	{"past-end-second", HDR("{'a':" OK_F32 ","
	                        "'b':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}"),
	 6, "tensor 'b'", "data ends at byte 8 of the data buffer but the file holds only 6"},
	{"trailing-bytes", HDR("{'w':" OK_F32 "}"),
	 6, NULL, "2 bytes after the last tensor's data are not covered by any tensor"},
	{"trailing-after-empty", HDR("{'w':{'dtype':'F32','shape':[0],'data_offsets':[0,0]}}"),
	 1, NULL, "1 bytes after the last tensor's data are not covered by any tensor"},
	{"trailing-no-tensors", HDR("{}"),
	 3, NULL, "3 bytes after the last tensor's data are not covered by any tensor"},
};

/* __metadata__ maps strings to strings. */
static const struct bad_case metadata_cases[] = {
	{"metadata-string", HDR("{'__metadata__':'pt'}"),
	 0, NULL, "__metadata__ must be an object of strings"},
	{"metadata-array", HDR("{'__metadata__':[['format','pt']]}"),
	 0, NULL, "__metadata__ must be an object of strings"},
	{"metadata-number", HDR("{'w':" OK_F32 ",'__metadata__':1}"),
	 4, NULL, "__metadata__ must be an object of strings"},
	{"metadata-value-number", HDR("{'__metadata__':{'format':'pt','epochs':3}}"),
	 0, "entry 'epochs'", "__metadata__ entry 'epochs' must be a string"},
	{"metadata-value-null", HDR("{'__metadata__':{'format':null}}"),
	 0, "entry 'format'", "must be a string"},
	{"metadata-value-object", HDR("{'__metadata__':{'config':{'layers':2}}}"),
	 0, "entry 'config'", "must be a string"},
	{"metadata-value-array", HDR("{'__metadata__':{'tags':['a','b']}}"),
	 0, "entry 'tags'", "must be a string"},
	{"metadata-value-bool", HDR("{'__metadata__':{'ok':true}}"),
	 0, "entry 'ok'", "must be a string"},
	{"metadata-key-control", HDR("{'__metadata__':{'k\\u0007\\u0027':1}}"),
	 0, "entry 'k\\x07\\''", "must be a string"},
};

/* A name with control characters and quotes is escaped, never raw. */
static const struct bad_case name_cases[] = {
	{"name-control", HDR("{'evil\\u001b[2J\\n\\u0027q\\\"\\\\':{'dtype':'F31','shape':[1],"
	                     "'data_offsets':[0,4]}}"),
	 4, "tensor 'evil\\x1b[2J\\x0a\\'q\"\\\\'", "unknown dtype 'F31'"},
	{"name-control-tiling",
	 HDR("{'a\\tb\\r':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}"),
	 8, "tensor 'a\\x09b\\x0d'", "gap of 4 bytes"},
	{"name-del", HDR("{'x\\u007f':{'shape':[1],'data_offsets':[0,4]}}"),
	 4, "tensor 'x\\x7f'", "missing 'dtype'"},
	{"name-unicode",
	 HDR("{'\xc3\xa9t\xc3\xa9\\u2028':{'dtype':'F32','shape':[-1],'data_offsets':[0,4]}}"),
	 4, "tensor '\xc3\xa9t\xc3\xa9\xe2\x80\xa8'", "shape[0] must be a non-negative integer"},
};

/* A name longer than the message can show is cut, and stays escaped. */
static void
check_long_name(void)
{
	char header[1200];
	unsigned char *bytes;
	size_t len, o = 0, i;

	o += (size_t)snprintf(header + o, sizeof header - o, "{'");
	for (i = 0; i < 300; i++)
		o += (size_t)snprintf(header + o, sizeof header - o, "%s",
		                      i % 50 == 49 ? "\\u0001" : "n");
	o += (size_t)snprintf(header + o, sizeof header - o,
	                      "':{'dtype':'F31','shape':[1],'data_offsets':[0,4]}}");
	bytes = make_image(header, o, 4, &len);
	expect_failure("corpus/name-long.safetensors", bytes, len,
	               "tensor 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\\x01nnnn",
	               "...': unknown dtype 'F31'");
	ncases++;
	free(bytes);
}

/* Valid corner cases that must open, with the right shapes and pointers. */
static rs_model *
open_image(const char *name, const char *header, size_t header_len,
           size_t data_len, unsigned char **bytes)
{
	rs_error err;
	rs_model *m;
	size_t len;

	*bytes = make_image(header, header_len, data_len, &len);
	reset_error(&err);
	m = rs_safetensors_parse(name, *bytes, len, &err);
	CHECK(m != NULL, "%s must open: %s", name, err.msg);
	ncases++;
	return m;
}

static void
check_valid_edges(void)
{
	static const char padded[] = "{'__metadata__':{'format':'pt'}}  \t\r\n   ";
	unsigned char *b;
	const rs_tensor *t;
	rs_model *m;

	m = open_image("no-tensors", HDR("{}"), 0, &b);
	if (m != NULL) {
		CHECK(m->ntensors == 0 && m->nmetadata == 0 && m->header_len == 2,
		      "no-tensors: %zu tensors", m->ntensors);
		rs_model_close(m);
	}
	free(b);

	m = open_image("padded", HDR(padded), 0, &b);
	if (m != NULL) {
		CHECK(m->ntensors == 0 && m->header_len == sizeof padded - 1,
		      "padded: header length %llu",
		      (unsigned long long)m->header_len);
		CHECK(m->nmetadata == 1 && strcmp(rs_model_metadata(m, "format"), "pt") == 0,
		      "padded: metadata");
		rs_model_close(m);
	}
	free(b);

	m = open_image("empty-metadata", HDR("{'__metadata__':{}}"), 0, &b);
	if (m != NULL) {
		CHECK(m->ntensors == 0 && m->nmetadata == 0, "empty-metadata");
		rs_model_close(m);
	}
	free(b);

	m = open_image("zero-elements",
	               HDR("{'empty':{'dtype':'F32','shape':[0,5],'data_offsets':[0,0]},"
	                   "'w':{'dtype':'U8','shape':[2],'data_offsets':[0,2]}}"), 2, &b);
	if (m != NULL) {
		t = rs_model_find(m, "empty");
		CHECK(t != NULL && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 &&
		      t->count == 0 && t->nbytes == 0, "zero-elements: empty tensor");
		t = rs_model_find(m, "w");
		CHECK(t != NULL && t->count == 2 && t->nbytes == 2 &&
		      t->data == b + 8 + m->header_len, "zero-elements: w follows");
		rs_model_close(m);
	}
	free(b);

	/* the product stays 0 without overflowing on the way */
	m = open_image("zero-elements-huge-dim",
	               HDR("{'w':{'dtype':'F64','shape':[9223372036854775807,0],"
	                   "'data_offsets':[0,0]}}"), 0, &b);
	if (m != NULL) {
		CHECK(m->ntensors == 1 && m->tensors[0].count == 0, "huge dim times zero");
		rs_model_close(m);
	}
	free(b);

	m = open_image("scalar", HDR("{'s':{'dtype':'F64','shape':[],'data_offsets':[0,8]}}"),
	               8, &b);
	if (m != NULL) {
		t = rs_model_find(m, "s");
		CHECK(t != NULL && t->ndim == 0 && t->shape == NULL && t->count == 1 &&
		      t->nbytes == 8 && t->data == b + 8 + m->header_len,
		      "scalar: 0-D tensor of one F64");
		rs_model_close(m);
	}
	free(b);

	m = open_image("nine-dims",
	               HDR("{'w':{'dtype':'U8','shape':[1,2,1,2,1,2,1,2,1],"
	                   "'data_offsets':[0,16]}}"), 16, &b);
	if (m != NULL) {
		t = &m->tensors[0];
		CHECK(t->ndim == 9 && t->shape[7] == 2 && t->shape[8] == 1 && t->count == 16 &&
		      t->nbytes == 16, "nine-dims: shape");
		rs_model_close(m);
	}
	free(b);

	/* any key order; fields the format does not define are ignored */
	m = open_image("out-of-order",
	               HDR("{'b':{'dtype':'U8','shape':[1],'data_offsets':[4,5],'extra':[1]},"
	                   "'a':{'data_offsets':[0,4],'shape':[1],'dtype':'F32'}}"), 5, &b);
	if (m != NULL) {
		CHECK(m->ntensors == 2 && strcmp(m->tensors[0].name, "a") == 0 &&
		      m->tensors[1].offset == m->tensors[0].offset + 4,
		      "out-of-order: tensors sorted by offset");
		rs_model_close(m);
	}
	free(b);

	/* sub-byte dtypes filling whole bytes, and empty tensors sharing an offset */
	m = open_image("packed",
	               HDR("{'q':{'dtype':'F4','shape':[4],'data_offsets':[0,2]},"
	                   "'z1':{'dtype':'U8','shape':[0],'data_offsets':[2,2]},"
	                   "'z2':{'dtype':'F4','shape':[0],'data_offsets':[2,2]},"
	                   "'r':{'dtype':'F6_E3M2','shape':[2,2],'data_offsets':[2,5]}}"), 5, &b);
	if (m != NULL) {
		t = rs_model_find(m, "r");
		CHECK(m->ntensors == 4 && t != NULL && t->nbytes == 3 && t->count == 4,
		      "packed: F6 tensor of 3 bytes");
		rs_model_close(m);
	}
	free(b);
}

/* Files through rs_model_open: the empty file (no mapping) and a tiny one. */
static void
check_files(const char *dir)
{
	char *path = rs_xasprintf("%s/empty.safetensors", dir);
	unsigned char *bytes;
	rs_error err;
	rs_model *m;
	size_t len;

	test_write_file(path, "", 0);
	reset_error(&err);
	m = rs_model_open(path, &err);
	CHECK(m == NULL && err.code == RS_EFORMAT, "empty file refused: %s", err.msg);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "looks like an empty file");
	rs_model_close(m);
	free(path);

	path = rs_xasprintf("%s/missing.safetensors", dir);
	reset_error(&err);
	m = rs_model_open(path, &err);
	CHECK(m == NULL && err.code == RS_EIO, "missing file: %s", err.msg);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "cannot open");
	rs_model_close(m);
	free(path);

	path = rs_xasprintf("%s/braces.safetensors", dir);
	bytes = make_image(HDR("{}      "), 0, &len);
	test_write_file(path, bytes, len);
	reset_error(&err);
	m = rs_model_open(path, &err);
	CHECK(m != NULL && m->ntensors == 0 && m->owns_map, "'{}' file opens: %s",
	      m ? "" : err.msg);
	rs_model_close(m);
	free(bytes);
	free(path);

	path = rs_xasprintf("%s/overlap.safetensors", dir);
	bytes = make_image(HDR("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
	                       "'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}"),
	                   12, &len);
	test_write_file(path, bytes, len);
	reset_error(&err);
	m = rs_model_open(path, &err);
	CHECK(m == NULL && err.code == RS_EFORMAT, "mapped overlap refused: %s", err.msg);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "tensor 'b': data overlaps");
	rs_model_close(m);
	free(bytes);
	free(path);
	ncases += 4;
}

/* Three tensors of different dtypes and metadata, from the builder. */
static unsigned char *
valid_image(size_t *len)
{
	static const size_t s23[2] = {2, 3}, s4[1] = {4}, s5[2] = {5, 2};
	static const double v[6] = {1.5, -2, 0.25, 8, 1e-3, 3};
	static const unsigned char bf16[8] = {0x80, 0x3f, 0, 0x40, 0x40, 0x40, 0x80, 0xc0};
	static const unsigned char f4[5] = {0x12, 0x34, 0x56, 0x78, 0x9a};
	test_st *st = test_st_new();
	unsigned char *bytes;

	test_st_metadata(st, "format", "pt");
	test_st_metadata(st, "source", "corpus");
	test_st_add_f32(st, "layers.0.weight", s23, 2, v);
	test_st_add(st, "layers.0.bias", "BF16", s4, 1, bf16, sizeof bf16);
	test_st_add(st, "codebook", "F4", s5, 2, f4, sizeof f4);
	bytes = test_st_bytes(st, len);
	test_st_free(st);
	return bytes;
}

/* Every proper prefix of a valid file is refused, in memory and mapped. */
static void
check_truncation(const char *dir)
{
	size_t len, cut, hend;
	unsigned char *bytes = valid_image(&len);
	rs_error err;
	rs_model *m;

	/* the image itself is fine */
	reset_error(&err);
	m = rs_safetensors_parse("whole.safetensors", bytes, len, &err);
	CHECK(m != NULL && m->ntensors == 3 && m->nmetadata == 2,
	      "the untruncated image opens: %s", m ? "" : err.msg);
	rs_model_close(m);
	hend = 8 + (size_t)bytes[0] + ((size_t)bytes[1] << 8);

	for (cut = 0; cut < len; cut++) {
		char *path = rs_xasprintf("cut/%zu.safetensors", cut);

		expect_failure(path, bytes, cut, NULL,
		               cut < 8 ? "too short for the 8-byte header length" :
		                         "truncated file?)");
		ncases++;
		free(path);
	}

	/* through the mapping: around the frame, the header's end and the data */
	for (cut = 0; cut < len; cut++) {
		char *path;

		if (!(cut <= 9 || (cut + 2 >= hend && cut <= hend + 2) ||
		      cut + 3 >= len || cut % 23 == 0))
			continue;
		path = rs_xasprintf("%s/cut-%zu.safetensors", dir, cut);
		test_write_file(path, bytes, cut);
		reset_error(&err);
		m = rs_model_open(path, &err);
		CHECK(m == NULL, "%s: truncated file accepted", path);
		rs_model_close(m);
		CHECK(err.code == RS_EFORMAT, "%s: code %s", path, rs_status_name(err.code));
		CHECK_CONTAINS(err.msg, path);
		CHECK_CONTAINS(err.msg, cut < 8 ? "too short" : "truncated file?)");
		ncases++;
		free(path);
	}
	free(bytes);
}

/* NULL when an accepted model is consistent and inside buf, else why not. */
static const char *
inconsistency(const rs_model *m, const unsigned char *buf, size_t len)
{
	uint64_t at = 8 + m->header_len;
	size_t i, j;

	if (m->header_len > len - 8)
		return "header length past the end";
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		size_t count = 1, bits;

		for (j = 0; j < t->ndim; j++)
			if (rs_mul_overflows(count, t->shape[j], &count))
				return "shape product overflows";
		if (count != t->count)
			return "count is not the shape product";
		if (rs_mul_overflows(count, rs_dtype_get(t->dtype)->bits, &bits) ||
		    bits % 8 != 0 || bits / 8 != t->nbytes)
			return "nbytes does not match count and dtype";
		if (t->offset != at)
			return "tensors do not tile the data";
		if (t->data != buf + t->offset || t->nbytes > len - t->offset)
			return "data outside the buffer";
		at += t->nbytes;
	}
	if (at != len)
		return "data not fully covered";
	for (i = 0; i < m->nmetadata; i++)
		if (m->metadata[i].key == NULL || m->metadata[i].value == NULL)
			return "metadata entry missing";
	return NULL;
}

static size_t
below(size_t n)
{
	return (size_t)(test_uniform() * (double)n);
}

/*
 * Deterministic corruptions: bytes replaced by JSON-significant or random
 * values, bits flipped, mostly within the frame and the header.
 */
static void
check_corruption(void)
{
	static const unsigned char special[] = {
		'{', '}', '[', ']', '"', ',', ':', '-', '0', '1', '9', '.', 'e', ' ',
		'\\', 0, 0x01, 0x1b, 0x7f, 0x80, 0xc3, 0xff,
	};
	size_t len, hend, v, accepted = 0, refused = 0;
	unsigned char *bytes = valid_image(&len), *copy = rs_xmalloc(len);

	hend = 8 + (size_t)bytes[0] + ((size_t)bytes[1] << 8);
	test_seed(20240611);
	for (v = 0; v < 4000; v++) {
		size_t flips = v % 2 == 0 ? 1 : 2 + below(7), k;
		char *path = rs_xasprintf("fuzz/%zu.safetensors", v);
		const char *why;
		rs_error err;
		rs_model *m;

		memcpy(copy, bytes, len);
		for (k = 0; k < flips; k++) {
			size_t at = test_uniform() < 0.8 ? below(hend) : below(len);
			double how = test_uniform();

			if (how < 0.4)
				copy[at] = special[below(sizeof special)];
			else if (how < 0.7)
				copy[at] ^= (unsigned char)(1u << below(8));
			else
				copy[at] = (unsigned char)below(256);
		}
		reset_error(&err);
		m = rs_safetensors_parse(path, copy, len, &err);
		if (m != NULL) {
			why = inconsistency(m, copy, len);
			CHECK(why == NULL, "%s: accepted but %s", path, why);
			accepted++;
			rs_model_close(m);
		} else {
			CHECK(err.code == RS_EFORMAT, "%s: code %s (%s)", path,
			      rs_status_name(err.code), err.msg);
			CHECK_CONTAINS(err.msg, path);
			CHECK(!has_control_byte(err.msg), "%s: raw control byte in '%s'",
			      path, err.msg);
			refused++;
		}
		free(path);
	}
	/* both outcomes must occur, or the corruption is not reaching the parser */
	CHECK(accepted > 100 && refused > 1000, "corruptions: %zu accepted, %zu refused",
	      accepted, refused);
	printf("test-safetensors-corpus: %zu corruptions, %zu accepted, %zu refused\n",
	       v, accepted, refused);
	free(copy);
	free(bytes);
}

int
main(void)
{
	char *dir = test_tmpdir();

	check_framing();
	run_cases(json_cases, sizeof json_cases / sizeof json_cases[0]);
	run_cases(entry_cases, sizeof entry_cases / sizeof entry_cases[0]);
	run_cases(size_cases, sizeof size_cases / sizeof size_cases[0]);
	run_cases(tiling_cases, sizeof tiling_cases / sizeof tiling_cases[0]);
	run_cases(metadata_cases, sizeof metadata_cases / sizeof metadata_cases[0]);
	run_cases(name_cases, sizeof name_cases / sizeof name_cases[0]);
	check_long_name();
	check_valid_edges();
	check_files(dir);
	check_truncation(dir);
	check_corruption();
	free(dir);
	printf("test-safetensors-corpus: %d cases\n", ncases);
	return test_done("test-safetensors-corpus");
}
