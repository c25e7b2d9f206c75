/* test-dtype.c — half, bfloat16 and float conversions against values
 * worked out by hand, including subnormals, infinities and NaN; the GGUF
 * block types' table entries and one hand-decoded block of each decoder
 * (tests/cli-gguf.sh compares every one with ggml itself, bit for bit). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "rankscope/dtype.h"
#include "testlib.h"

/* Decodes one block of `dtype` from b into y (256 at most). */
static void
decode(rs_dtype dtype, const unsigned char *b, double *y)
{
	rs_dtype_to_double(dtype, b, rs_dtype_get(dtype)->block, y, 1);
}

static void
check_block_table(void)
{
	rs_dtype d;

	CHECK(RS_DTYPE_F6_E3M2 == 19 && RS_DTYPE_Q4_0 == 20, "old numbers kept");
	CHECK(rs_dtype_get(RS_DTYPE_Q4_0)->block == 32 &&
	      rs_dtype_get(RS_DTYPE_Q4_0)->block_bytes == 18, "Q4_0 32/18");
	CHECK(rs_dtype_get(RS_DTYPE_Q8_0)->block_bytes == 34, "Q8_0 34 bytes");
	CHECK(rs_dtype_get(RS_DTYPE_Q4_K)->block == 256 &&
	      rs_dtype_get(RS_DTYPE_Q4_K)->block_bytes == 144, "Q4_K 256/144");
	CHECK(rs_dtype_get(RS_DTYPE_Q6_K)->block_bytes == 210, "Q6_K 210 bytes");
	CHECK(rs_dtype_get(RS_DTYPE_Q2_K)->block_bytes == 84 &&
	      rs_dtype_get(RS_DTYPE_Q3_K)->block_bytes == 110 &&
	      rs_dtype_get(RS_DTYPE_Q5_K)->block_bytes == 176, "K-quant sizes");
	CHECK(rs_dtype_nbytes(RS_DTYPE_Q4_K, 512) == 288, "two Q4_K blocks");
	CHECK(rs_dtype_storage_bits(RS_DTYPE_Q8_0, 64) == 2 * 34 * 8, "Q8_0 bits");
	CHECK(strcmp(rs_dtype_get(RS_DTYPE_Q4_K)->name, "Q4_K") == 0, "llama.cpp's name");
	CHECK(!rs_dtype_parse("Q4_0", &d) && !rs_dtype_parse("Q4_K", &d),
	      "block types are not safetensors dtypes");
	CHECK(rs_dtype_get(RS_DTYPE_Q4_K)->is_float && !rs_dtype_get(RS_DTYPE_IQ2_XXS)->is_float &&
	      !rs_dtype_get(RS_DTYPE_IQ4_NL)->is_float &&
	      !rs_dtype_get(RS_DTYPE_Q8_1)->is_float &&
	      !rs_dtype_get(RS_DTYPE_Q8_K)->is_float, "which block types decode");
	CHECK(rs_dtype_get(RS_DTYPE_Q4_K)->bits == 0, "block types have no bits per element");
}

static void
check_block_decoding(void)
{
	unsigned char b[300];
	double y[512];
	int j;

	/* Q4_0: d = 0.5; 0x1f: low nibble 15 -> (15 - 8) * 0.5, high 1 -> -3.5 */
	memset(b, 0, sizeof b);
	b[0] = 0x00, b[1] = 0x38;
	memset(b + 2, 0x1f, 16);
	decode(RS_DTYPE_Q4_0, b, y);
	CHECK(y[0] == 3.5 && y[15] == 3.5 && y[16] == -3.5 && y[31] == -3.5, "Q4_0");

	/* Q4_1: d = 1, m = -0.25: nibble 5 -> 4.75 */
	memset(b, 0, sizeof b);
	b[1] = 0x3c, b[2] = 0x00, b[3] = 0xb4;
	memset(b + 4, 0x05, 16);
	decode(RS_DTYPE_Q4_1, b, y);
	CHECK(y[0] == 4.75 && y[16] == -0.25, "Q4_1: %g %g", y[0], y[16]);

	/* Q5_0: d = 1, qh bit 0 and bit 16 set: elements 0 and 16 gain 16 */
	memset(b, 0, sizeof b);
	b[1] = 0x3c, b[2] = 0x01, b[4] = 0x01;
	decode(RS_DTYPE_Q5_0, b, y);
	CHECK(y[0] == 0 && y[1] == -16 && y[16] == 0 && y[17] == -16, "Q5_0: %g %g", y[0], y[1]);

	/* Q8_0: d = 2, q = -3 -> -6 */
	memset(b, 0, sizeof b);
	b[1] = 0x40;
	b[2] = 0xfd;
	decode(RS_DTYPE_Q8_0, b, y);
	CHECK(y[0] == -6 && y[1] == 0, "Q8_0");

	/* Q2_K: scales[0] = 0x21 (scale 1, min 2), d = 1, dmin = 0.5, q = 3:
	 * 1 * 3 - 2 * 0.5 = 2 */
	memset(b, 0, sizeof b);
	b[0] = 0x21;
	b[16] = 0x03;
	b[81] = 0x3c, b[83] = 0x38;
	decode(RS_DTYPE_Q2_K, b, y);
	CHECK(y[0] == 2 && y[1] == -1 && y[16] == 0, "Q2_K: %g %g %g", y[0], y[1], y[16]);

	/* Q3_K: all scales 0 -> -32, hmask clear -> q - 4 = -4: 128 everywhere */
	memset(b, 0, sizeof b);
	b[109] = 0x3c;
	decode(RS_DTYPE_Q3_K, b, y);
	CHECK(y[0] == 128 && y[255] == 128, "Q3_K: %g", y[0]);

	/* Q4_K: d = dmin = 1, scale 2 and min 1 for the first 32: 2 q - 1 */
	memset(b, 0, sizeof b);
	b[1] = 0x3c, b[3] = 0x3c;
	b[4] = 2, b[8] = 1;
	memset(b + 16, 0x37, 32);
	decode(RS_DTYPE_Q4_K, b, y);
	CHECK(y[0] == 13 && y[31] == 13 && y[32] == 0, "Q4_K: %g %g", y[0], y[32]);

	/* Q6_K: d = 0.25, scales[0] = 4: (ql | qh << 4) - 32 = 1 -> 1 */
	memset(b, 0, sizeof b);
	b[0] = 0x01;
	b[128] = 0x02;             /* qh bits 0-1 = 2: q = 1 | 32 = 33 */
	b[192] = 4;
	b[209] = 0x34;             /* 0.25 */
	decode(RS_DTYPE_Q6_K, b, y);
	CHECK(y[0] == 1 && y[1] == 0 * 0.25 * 4 - 32, "Q6_K: %g %g", y[0], y[1]);


	/* TQ2_0: 0xe4 holds codes 0, 1, 2, 3 (-1, 0, 1, 2), d = 1 */
	memset(b, 0, sizeof b);
	b[0] = 0xe4;
	b[65] = 0x3c;
	decode(RS_DTYPE_TQ2_0, b, y);
	CHECK(y[0] == -1 && y[32] == 0 && y[64] == 1 && y[96] == 2, "TQ2_0");

	/* TQ1_0: byte 0 is every digit 0 (-d); 243/3 = 81 -> first digit 1 */
	memset(b, 0, sizeof b);
	b[0] = 0x80;
	b[53] = 0x3c;
	decode(RS_DTYPE_TQ1_0, b, y);
	CHECK(y[0] == 0 && y[1] == -1 && y[255] == -1, "TQ1_0: %g %g", y[0], y[1]);

	/* MXFP4: e = 128 (scale 2^0 for the doubled levels), code 7 -> 12, 9 -> -1 */
	memset(b, 0, sizeof b);
	b[0] = 128;
	b[1] = 0x97;
	decode(RS_DTYPE_MXFP4, b, y);
	CHECK(y[0] == 12 && y[16] == -1, "MXFP4: %g %g", y[0], y[16]);

	/* NVFP4: scale byte 0x38 (1.0, halved), code 2 -> 1; 0x7f is zero */
	memset(b, 0, sizeof b);
	b[0] = 0x38, b[1] = 0x7f;
	b[4] = 0x02;
	b[12] = 0x02;
	decode(RS_DTYPE_NVFP4, b, y);
	CHECK(y[0] == 1 && y[16] == 0, "NVFP4: %g %g", y[0], y[16]);


	/* Q1_0: bit set +d, clear -d */
	memset(b, 0, sizeof b);
	b[1] = 0x3c;
	b[2] = 0x01;
	decode(RS_DTYPE_Q1_0, b, y);
	CHECK(y[0] == 1 && y[1] == -1, "Q1_0");

	/* strided, several blocks, a trailing partial block is NaN */
	memset(b, 0, sizeof b);
	b[1] = 0x3c, b[2] = 7, b[35] = 0x40, b[36] = 0xff;
	rs_dtype_to_double(RS_DTYPE_Q8_0, b, 64, y, 2);
	CHECK(y[0] == 7 && y[64] == -2 && y[2] == 0, "Q8_0 two blocks strided");
	rs_dtype_to_double(RS_DTYPE_Q8_0, b, 40, y, 1);
	for (j = 32; j < 40; j++)
		CHECK(isnan(y[j]), "partial block [%d] is NaN", j);
	/* a NaN scale gives NaN, an infinite one infinities (as in ggml) */
	b[0] = 0x00, b[1] = 0x7e;
	rs_dtype_to_double(RS_DTYPE_Q8_0, b, 32, y, 1);
	CHECK(isnan(y[0]), "NaN scale");
}

/*
 * Rounding a double to half or bfloat16, against the definition over every
 * bit pattern: each finite value maps to itself; the midpoint between two
 * neighbours goes to the one with an even last bit; anything a hair above
 * or below the midpoint to the nearer; beyond the largest finite value's
 * midpoint to infinity; signs kept, NaN stays NaN.
 */
static void
check_rounding(const char *what, double (*to_double)(unsigned short),
               unsigned short (*from_double)(double), unsigned short max_finite)
{
	unsigned h;
	size_t bad = 0;

	for (h = 0; h <= max_finite && bad < 5; h++) {
		double v = to_double((unsigned short)h), next, mid;
		unsigned short even;

		if (from_double(v) != h || from_double(-v) != (h | 0x8000)) {
			CHECK(0, "%s: %#x does not round to itself", what, h);
			bad++;
		}
		if (h == max_finite) {
			/* the midpoint to the next binade, which would be infinity */
			mid = v + (v - to_double((unsigned short)(h - 1))) / 2;
			CHECK(from_double(mid) == (max_finite + 1),
			      "%s: halfway past the largest is infinity", what);
			CHECK(from_double(nextafter(mid, 0)) == max_finite,
			      "%s: just under it stays finite", what);
			break;
		}
		next = to_double((unsigned short)(h + 1));
		mid = v + (next - v) / 2;   /* exact: both are short floats */
		even = (h & 1) ? (unsigned short)(h + 1) : (unsigned short)h;
		if (from_double(mid) != even ||
		    from_double(nextafter(mid, 0)) != h ||
		    from_double(nextafter(mid, INFINITY)) != h + 1) {
			CHECK(0, "%s: rounding between %#x and %#x", what, h, h + 1);
			bad++;
		}
	}
	CHECK(from_double(INFINITY) == max_finite + 1, "%s: infinity", what);
	CHECK(from_double(-INFINITY) == (0x8000 | (max_finite + 1)), "%s: -infinity", what);
	CHECK(isnan(to_double(from_double(NAN))), "%s: NaN", what);
	CHECK(from_double(-0.0) == 0x8000, "%s: -0", what);
	CHECK(from_double(1e-300) == 0 && from_double(-1e-300) == 0x8000,
	      "%s: underflow to signed zero", what);
}

static void
check_from_double(void)
{
	double v[5] = {1.0, -2.5, 65504.0, 3.0e38, 1.0 / 3.0};
	unsigned char out[40];
	float f;
	size_t i;

	check_rounding("half", rs_half_to_double, rs_double_to_half, 0x7bff);
	check_rounding("bfloat16", rs_bfloat16_to_double, rs_double_to_bfloat16, 0x7f7f);
	CHECK(rs_dtype_from_double(RS_DTYPE_F16, v, 5, out), "F16 written");
	for (i = 0; i < 5; i++)
		CHECK((out[2 * i] | out[2 * i + 1] << 8) == rs_double_to_half(v[i]),
		      "F16 element %zu little-endian", i);
	CHECK(rs_dtype_from_double(RS_DTYPE_BF16, v, 5, out), "BF16 written");
	CHECK((out[2] | out[3] << 8) == 0xc020, "BF16 -2.5");
	CHECK(rs_dtype_from_double(RS_DTYPE_F32, v, 5, out), "F32 written");
	memcpy(&f, out + 16, 4);
	CHECK(f == (float)(1.0 / 3.0), "F32 element 4");
	CHECK(rs_dtype_from_double(RS_DTYPE_F64, v, 5, out), "F64 written");
	CHECK(memcmp(out, v, 40) == 0, "F64 as it is");
	CHECK(!rs_dtype_from_double(RS_DTYPE_I32, v, 5, out), "I32 refused");
	CHECK(!rs_dtype_from_double(RS_DTYPE_Q4_0, v, 5, out), "block types refused");
}

int
main(void)
{
	rs_dtype d;
	unsigned char bytes[16];
	double out[4];
	float f[2] = {2.385f, -1e-30f};
	double g[2] = {3.141592653589793, -2.5e-300};

	/* IEEE half */
	CHECK(rs_half_to_double(0x3c00) == 1.0, "half 1.0");
	CHECK(rs_half_to_double(0xc000) == -2.0, "half -2.0");
	CHECK(rs_half_to_double(0x7bff) == 65504.0, "half max");
	CHECK(rs_half_to_double(0x0001) == ldexp(1.0, -24), "half smallest subnormal");
	CHECK(rs_half_to_double(0x03ff) == ldexp(1023.0, -24), "half largest subnormal");
	CHECK(rs_half_to_double(0x0400) == ldexp(1.0, -14), "half smallest normal");
	CHECK(rs_half_to_double(0x3555) == 0x1.554p-2, "half 0.33325");
	CHECK(isinf(rs_half_to_double(0x7c00)) && rs_half_to_double(0x7c00) > 0, "half +inf");
	CHECK(isnan(rs_half_to_double(0x7e00)), "half NaN");
	CHECK(signbit(rs_half_to_double(0x8000)), "half -0");

	/* bfloat16 */
	CHECK(rs_bfloat16_to_double(0x3f80) == 1.0, "bf16 1.0");
	CHECK(rs_bfloat16_to_double(0xc0a0) == -5.0, "bf16 -5");
	CHECK(rs_bfloat16_to_double(0x4049) == 3.140625, "bf16 3.140625");
	CHECK(isinf(rs_bfloat16_to_double(0xff80)), "bf16 -inf");

	/* strided, unaligned conversion */
	memcpy(bytes + 1, f, sizeof f);
	rs_dtype_to_double(RS_DTYPE_F32, bytes + 1, 2, out, 2);
	CHECK(out[0] == (double)2.385f && out[2] == (double)-1e-30f, "f32 strided");
	memcpy(bytes + 3, g, sizeof g > 13 ? 13 : sizeof g);
	rs_dtype_to_double(RS_DTYPE_F64, bytes + 3, 1, out, 1);
	CHECK(out[0] == g[0], "f64 exact from an unaligned address");

	/* names */
	CHECK(rs_dtype_parse("BF16", &d) && d == RS_DTYPE_BF16, "parse BF16");
	CHECK(rs_dtype_parse("F8_E4M3", &d) && rs_dtype_get(d)->bits == 8, "F8 bits");
	CHECK(rs_dtype_parse("F4", &d) && rs_dtype_get(d)->bits == 4, "F4 bits");
	CHECK(!rs_dtype_parse("f32", &d), "dtype names are case-sensitive");
	CHECK(!rs_dtype_parse("FLOAT", &d), "unknown dtype");
	CHECK(rs_dtype_get(RS_DTYPE_F16)->is_float && !rs_dtype_get(RS_DTYPE_I64)->is_float,
	      "float flags");
	check_block_table();
	check_block_decoding();
	check_from_double();
	return test_done("test-dtype");
}
