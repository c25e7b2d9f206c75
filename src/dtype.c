/*
 * dtype.c — the dtype table and conversion to double; see rankscope/dtype.h.
 *
 * GGUF's block types are dequantised the way ggml's reference
 * dequantize_row_* functions do it (ggml-quants.c), operation for
 * operation in float: the same products in the same order, so the result
 * equals ggml's to_float output exactly, and widening to double loses
 * nothing.  That is why nothing here is "simplified" to double arithmetic
 * (d * sc * q in double would round differently from ggml's (d * sc) * q
 * in float).  Contraction into fused multiply-adds would change roundings
 * too: -std=c11 keeps GCC from contracting, and the pragma below tells
 * clang.  The block layouts are ggml's (ggml-common.h), read byte by byte
 * so that no alignment or host byte order is assumed.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rankscope/dtype.h"

static const rs_dtype_info dtype_table[RS_DTYPE_COUNT] = {
	[RS_DTYPE_BOOL] = {"BOOL", 8, false, 0, 0, true},
	[RS_DTYPE_U8] = {"U8", 8, false, 0, 0, true},
	[RS_DTYPE_I8] = {"I8", 8, false, 0, 0, true},
	[RS_DTYPE_F8_E5M2] = {"F8_E5M2", 8, false, 0, 0, true},
	[RS_DTYPE_F8_E4M3] = {"F8_E4M3", 8, false, 0, 0, true},
	[RS_DTYPE_F8_E8M0] = {"F8_E8M0", 8, false, 0, 0, true},
	[RS_DTYPE_I16] = {"I16", 16, false, 0, 0, true},
	[RS_DTYPE_U16] = {"U16", 16, false, 0, 0, true},
	[RS_DTYPE_F16] = {"F16", 16, true, 0, 0, true},
	[RS_DTYPE_BF16] = {"BF16", 16, true, 0, 0, true},
	[RS_DTYPE_I32] = {"I32", 32, false, 0, 0, true},
	[RS_DTYPE_U32] = {"U32", 32, false, 0, 0, true},
	[RS_DTYPE_F32] = {"F32", 32, true, 0, 0, true},
	[RS_DTYPE_F64] = {"F64", 64, true, 0, 0, true},
	[RS_DTYPE_I64] = {"I64", 64, false, 0, 0, true},
	[RS_DTYPE_U64] = {"U64", 64, false, 0, 0, true},
	[RS_DTYPE_C64] = {"C64", 64, false, 0, 0, true},
	[RS_DTYPE_F4] = {"F4", 4, false, 0, 0, true},
	[RS_DTYPE_F6_E2M3] = {"F6_E2M3", 6, false, 0, 0, true},
	[RS_DTYPE_F6_E3M2] = {"F6_E3M2", 6, false, 0, 0, true},
	/* GGUF block types: elements per block, bytes per block */
	[RS_DTYPE_Q4_0] = {"Q4_0", 0, true, 32, 18, false},
	[RS_DTYPE_Q4_1] = {"Q4_1", 0, true, 32, 20, false},
	[RS_DTYPE_Q5_0] = {"Q5_0", 0, true, 32, 22, false},
	[RS_DTYPE_Q5_1] = {"Q5_1", 0, true, 32, 24, false},
	[RS_DTYPE_Q8_0] = {"Q8_0", 0, true, 32, 34, false},
	/* Q8_1 and Q8_K are ggml's intermediate types for dot products: ggml
	 * itself has no to_float for them, so neither is decoded here. */
	[RS_DTYPE_Q8_1] = {"Q8_1", 0, false, 32, 36, false},
	[RS_DTYPE_Q2_K] = {"Q2_K", 0, true, 256, 84, false},
	[RS_DTYPE_Q3_K] = {"Q3_K", 0, true, 256, 110, false},
	[RS_DTYPE_Q4_K] = {"Q4_K", 0, true, 256, 144, false},
	[RS_DTYPE_Q5_K] = {"Q5_K", 0, true, 256, 176, false},
	[RS_DTYPE_Q6_K] = {"Q6_K", 0, true, 256, 210, false},
	[RS_DTYPE_Q8_K] = {"Q8_K", 0, false, 256, 292, false},
	/* The i-quants decode through lookup grids that belong to ggml's code,
	 * not to the GGUF format: listed, sized, not decoded (not layers). */
	[RS_DTYPE_IQ2_XXS] = {"IQ2_XXS", 0, false, 256, 66, false},
	[RS_DTYPE_IQ2_XS] = {"IQ2_XS", 0, false, 256, 74, false},
	[RS_DTYPE_IQ3_XXS] = {"IQ3_XXS", 0, false, 256, 98, false},
	[RS_DTYPE_IQ1_S] = {"IQ1_S", 0, false, 256, 50, false},
	[RS_DTYPE_IQ4_NL] = {"IQ4_NL", 0, false, 32, 18, false},
	[RS_DTYPE_IQ3_S] = {"IQ3_S", 0, false, 256, 110, false},
	[RS_DTYPE_IQ2_S] = {"IQ2_S", 0, false, 256, 82, false},
	[RS_DTYPE_IQ4_XS] = {"IQ4_XS", 0, false, 256, 136, false},
	[RS_DTYPE_IQ1_M] = {"IQ1_M", 0, false, 256, 56, false},
	[RS_DTYPE_TQ1_0] = {"TQ1_0", 0, true, 256, 54, false},
	[RS_DTYPE_TQ2_0] = {"TQ2_0", 0, true, 256, 66, false},
	[RS_DTYPE_MXFP4] = {"MXFP4", 0, true, 32, 17, false},
	[RS_DTYPE_NVFP4] = {"NVFP4", 0, true, 64, 36, false},
	[RS_DTYPE_Q1_0] = {"Q1_0", 0, true, 128, 18, false},
	[RS_DTYPE_Q2_0] = {"Q2_0", 0, true, 64, 18, false},
};

const rs_dtype_info *
rs_dtype_get(rs_dtype dtype)
{
	return (unsigned)dtype < RS_DTYPE_COUNT ? &dtype_table[dtype] : NULL;
}

unsigned long long
rs_dtype_storage_bits(rs_dtype dtype, size_t count)
{
	const rs_dtype_info *d = rs_dtype_get(dtype);

	if (d->block)
		return (unsigned long long)(count / d->block) * d->block_bytes * 8;
	return (unsigned long long)count * d->bits;
}

size_t
rs_dtype_nbytes(rs_dtype dtype, size_t count)
{
	return (size_t)(rs_dtype_storage_bits(dtype, count) / 8);
}

bool
rs_dtype_parse(const char *name, rs_dtype *out)
{
	int i;

	for (i = 0; i < RS_DTYPE_COUNT; i++) {
		if (dtype_table[i].in_safetensors && strcmp(dtype_table[i].name, name) == 0) {
			*out = (rs_dtype)i;
			return true;
		}
	}
	return false;
}

double
rs_half_to_double(unsigned short bits)
{
	int sign = bits >> 15, exponent = (bits >> 10) & 0x1f;
	unsigned mantissa = bits & 0x3ff;
	double v;

	if (exponent == 0)                       /* zero or subnormal */
		v = ldexp((double)mantissa, -24);
	else if (exponent == 31)                 /* infinity or NaN */
		v = mantissa ? NAN : INFINITY;
	else
		v = ldexp((double)(mantissa | 0x400), exponent - 25);
	return sign ? -v : v;
}

double
rs_bfloat16_to_double(unsigned short bits)
{
	/* bfloat16 is the top half of an IEEE single. */
	uint32_t word = (uint32_t)bits << 16;
	float f;

	memcpy(&f, &word, sizeof f);
	return (double)f;
}

/* The nearest binary float with mb stored mantissa bits and eb exponent
 * bits to x, as its bits (sign included).  ldexp scales exactly and rint
 * rounds to nearest even in the default rounding mode, so the value is
 * rounded once. */
static uint32_t
round_to_small_float(double x, int mb, int eb)
{
	int bias = (1 << (eb - 1)) - 1, emin = 1 - bias, e;
	uint32_t sign = signbit(x) ? 1u << (mb + eb) : 0, inf = ((1u << eb) - 1) << mb;
	double a = fabs(x), q;

	if (isnan(x))
		return sign | inf | (1u << (mb - 1));
	if (isinf(x))
		return sign | inf;
	if (a < ldexp(1.0, emin)) {
		/* subnormal: a multiple of 2^(emin - mb); 2^mb is the smallest
		 * normal, whose bits are the same number */
		return sign | (uint32_t)rint(ldexp(a, mb - emin));
	}
	frexp(a, &e);
	e -= 1;                                  /* a in [2^e, 2^(e+1)) */
	q = rint(ldexp(a, mb - e));              /* in [2^mb, 2^(mb+1)] */
	if (q >= ldexp(1.0, mb + 1)) {
		q = ldexp(1.0, mb);
		e++;
	}
	if (e > bias)
		return sign | inf;
	return sign | ((uint32_t)(e + bias) << mb) | ((uint32_t)q - (1u << mb));
}

unsigned short
rs_double_to_half(double x)
{
	return (unsigned short)round_to_small_float(x, 10, 5);
}

unsigned short
rs_double_to_bfloat16(double x)
{
	return (unsigned short)round_to_small_float(x, 7, 8);
}

double
rs_dtype_round(rs_dtype dtype, double x)
{
	switch (dtype) {
	case RS_DTYPE_F16:
		return rs_half_to_double(rs_double_to_half(x));
	case RS_DTYPE_BF16:
		return rs_bfloat16_to_double(rs_double_to_bfloat16(x));
	case RS_DTYPE_F32:
		return (double)(float)x;
	default:
		return x;
	}
}

bool
rs_dtype_from_double(rs_dtype dtype, const double *src, size_t count, unsigned char *dst)
{
	size_t i;

	switch (dtype) {
	case RS_DTYPE_F64:
		for (i = 0; i < count; i++)
			memcpy(dst + 8 * i, &src[i], 8);   /* little-endian host (configure) */
		return true;
	case RS_DTYPE_F32:
		for (i = 0; i < count; i++) {
			float f = (float)src[i];
			memcpy(dst + 4 * i, &f, 4);
		}
		return true;
	case RS_DTYPE_F16:
	case RS_DTYPE_BF16:
		for (i = 0; i < count; i++) {
			unsigned short h = dtype == RS_DTYPE_F16 ? rs_double_to_half(src[i]) :
			                                           rs_double_to_bfloat16(src[i]);
			dst[2 * i] = (unsigned char)(h & 0xff);
			dst[2 * i + 1] = (unsigned char)(h >> 8);
		}
		return true;
	default:
		return false;
	}
}

/* ---- GGUF block types ------------------------------------------------------
 * One decoder per type: block bytes b in, the block's elements in y.  The
 * arithmetic mirrors ggml's dequantize_row_* operation by operation (see
 * the top of the file); comments give each block's layout. */

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define MAX_BLOCK 256

/* IEEE half to float, exactly (every half is a float). */
static float
h2f(const unsigned char *p)
{
	unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, w;
	float f;

	if (e == 0x1f)                                     /* inf; NaN made quiet */
		w = sign | 0x7f800000u | m << 13 | (m ? 0x00400000u : 0);
	else if (e != 0)
		w = sign | (e + 112) << 23 | m << 13;
	else if (m == 0)
		w = sign;
	else {
		/* subnormal: m * 2^-24, exact in float */
		f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	memcpy(&f, &w, sizeof f);
	return f;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Q4_0: d (half), 16 bytes of nibbles; element j low nibble, j+16 high. */
static void
dq_q4_0(const unsigned char *b, float *y)
{
	const float d = h2f(b);
	int j;

	for (j = 0; j < 16; j++) {
		y[j] = (float)((b[2 + j] & 0x0f) - 8) * d;
		y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
	}
}

/* Q4_1: d, m (halves), 16 bytes of nibbles: q * d + m. */
static void
dq_q4_1(const unsigned char *b, float *y)
{
	const float d = h2f(b), m = h2f(b + 2);
	int j;

	for (j = 0; j < 16; j++) {
		y[j] = (float)(b[4 + j] & 0x0f) * d + m;
		y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
	}
}

/* Q5_0: d, 32 high bits (qh, little-endian), 16 bytes of nibbles. */
static void
dq_q5_0(const unsigned char *b, float *y)
{
	const float d = h2f(b);
	const uint32_t qh = le32(b + 2);
	int j;

	for (j = 0; j < 16; j++) {
		int h0 = (int)((qh >> j) << 4 & 0x10), h1 = (int)(qh >> (j + 12) & 0x10);
		y[j] = (float)(((b[6 + j] & 0x0f) | h0) - 16) * d;
		y[j + 16] = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
	}
}

/* Q5_1: d, m, qh, nibbles: q * d + m. */
static void
dq_q5_1(const unsigned char *b, float *y)
{
	const float d = h2f(b), m = h2f(b + 2);
	const uint32_t qh = le32(b + 4);
	int j;

	for (j = 0; j < 16; j++) {
		int h0 = (int)((qh >> j) << 4 & 0x10), h1 = (int)(qh >> (j + 12) & 0x10);
		y[j] = (float)((b[8 + j] & 0x0f) | h0) * d + m;
		y[j + 16] = (float)((b[8 + j] >> 4) | h1) * d + m;
	}
}

/* Q8_0: d, 32 signed bytes. */
static void
dq_q8_0(const unsigned char *b, float *y)
{
	const float d = h2f(b);
	int j;

	for (j = 0; j < 32; j++)
		y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K: scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2-bit quants,
 * four planes per 32 bytes), d, dmin. */
static void
dq_q2_k(const unsigned char *b, float *y)
{
	const unsigned char *sc = b, *q = b + 16;
	const float d = h2f(b + 80), min = h2f(b + 82);
	int n, j, l, is = 0;

	for (n = 0; n < 256; n += 128, q += 32)
		for (j = 0; j < 8; j += 2) {
			int shift = j;      /* 0, 2, 4, 6 */
			float dl = d * (float)(sc[is] & 0x0f), ml = min * (float)(sc[is] >> 4);

			is++;
			for (l = 0; l < 16; l++)
				*y++ = dl * (float)((q[l] >> shift) & 3) - ml;
			dl = d * (float)(sc[is] & 0x0f);
			ml = min * (float)(sc[is] >> 4);
			is++;
			for (l = 0; l < 16; l++)
				*y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
		}
}

/* Q3_K: hmask[32] (the third bit, inverted), qs[64] (low 2 bits),
 * scales[12] (sixteen 6-bit scales), d. */
static void
dq_q3_k(const unsigned char *b, float *y)
{
	const unsigned char *hm = b, *q = b + 32, *s = b + 96;
	const float d_all = h2f(b + 108);
	int scales[16], i, n, j, l, is = 0;
	unsigned m = 1;

	/* scale i: its low 4 bits are nibble i of s[0..7] (low nibbles
	 * first), its high 2 bits the 2-bit field i of s[8..11] */
	for (i = 0; i < 16; i++) {
		int lo = i < 8 ? s[i] & 0x0f : s[i - 8] >> 4;
		int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
		scales[i] = (lo | hi << 4) - 32;
	}
	for (n = 0; n < 256; n += 128, q += 32)
		for (j = 0; j < 4; j++, m <<= 1) {
			int shift = 2 * j;
			float dl = d_all * (float)scales[is++];

			for (l = 0; l < 16; l++)
				*y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
			dl = d_all * (float)scales[is++];
			for (l = 0; l < 16; l++)
				*y++ = dl * (float)(((q[l + 16] >> shift) & 3) -
				                    ((hm[l + 16] & m) ? 0 : 4));
		}
}

/* Sub-block j of a Q4_K or Q5_K block: its 6-bit scale and min from the
 * block's 12 scale bytes q, times the block's d and dmin. */
static void
scale_min_k4(int j, const unsigned char *q, float d, float dmin, float *dl, float *ml)
{
	int sc, m;

	if (j < 4) {
		sc = q[j] & 63;
		m = q[j + 4] & 63;
	} else {
		sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
		m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
	*dl = d * (float)sc;
	*ml = dmin * (float)m;
}

/* Q4_K and Q5_K: d, dmin, scales[12], for Q5_K qh[32] (the fifth bits, NULL
 * for Q4_K), then qs[128]: 64 elements per 32 bytes (low nibbles, then
 * high). */
static void
dq_k4(const unsigned char *b, const unsigned char *qh, const unsigned char *q, float *y)
{
	const float d = h2f(b), min = h2f(b + 2);
	const unsigned char *sc = b + 4;
	unsigned u1 = 1, u2 = 2;
	int j, l, is = 0;

	for (j = 0; j < 256; j += 64, q += 32, is += 2, u1 <<= 2, u2 <<= 2) {
		float d1, m1, d2, m2;

		scale_min_k4(is, sc, d, min, &d1, &m1);
		scale_min_k4(is + 1, sc, d, min, &d2, &m2);
		for (l = 0; l < 32; l++)
			*y++ = d1 * (float)((q[l] & 0x0f) + (qh != NULL && qh[l] & u1 ? 16 : 0)) - m1;
		for (l = 0; l < 32; l++)
			*y++ = d2 * (float)((q[l] >> 4) + (qh != NULL && qh[l] & u2 ? 16 : 0)) - m2;
	}
}

static void
dq_q4_k(const unsigned char *b, float *y)
{
	dq_k4(b, NULL, b + 16, y);
}

static void
dq_q5_k(const unsigned char *b, float *y)
{
	dq_k4(b, b + 16, b + 48, y);
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (signed
 * bytes), d: element = (d * scale) * q, in that order. */
static void
dq_q6_k(const unsigned char *b, float *y)
{
	const unsigned char *ql = b, *qh = b + 128, *sc = b + 192;
	const float d = h2f(b + 208);
	int n, l;

	for (n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
		for (l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0 & 3) << 4)) - 32;
			int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2 & 3) << 4)) - 32;
			int q3 = ((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32;
			int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32;

			y[l] = d * (float)(int8_t)sc[is] * (float)q1;
			y[l + 32] = d * (float)(int8_t)sc[is + 2] * (float)q2;
			y[l + 64] = d * (float)(int8_t)sc[is + 4] * (float)q3;
			y[l + 96] = d * (float)(int8_t)sc[is + 6] * (float)q4;
		}
}

/* One trit of a TQ1_0 byte: the byte holds 5 (or 4) base-3 digits as a
 * fixed-point fraction; multiplying by 3^n brings digit n to the top. */
static float
tq1_trit(unsigned char q, unsigned pow3, float d)
{
	unsigned char v = (unsigned char)(q * pow3);
	int xi = (int)(((unsigned)v * 3) >> 8);

	return (float)(xi - 1) * d;
}

/* TQ1_0: qs[48] (five ternary digits a byte), qh[4] (four), d. */
static void
dq_tq1_0(const unsigned char *b, float *y)
{
	static const unsigned pow3[5] = {1, 3, 9, 27, 81};
	const unsigned char *qs = b, *qh = b + 48;
	const float d = h2f(b + 52);
	int n, m;

	for (n = 0; n < 5; n++)            /* bytes 0..31, 32 at a time */
		for (m = 0; m < 32; m++)
			*y++ = tq1_trit(qs[m], pow3[n], d);
	for (n = 0; n < 5; n++)            /* bytes 32..47, 16 at a time */
		for (m = 0; m < 16; m++)
			*y++ = tq1_trit(qs[32 + m], pow3[n], d);
	for (n = 0; n < 4; n++)
		for (m = 0; m < 4; m++)
			*y++ = tq1_trit(qh[m], pow3[n], d);
}

/* TQ2_0: qs[64] (2-bit codes 0..3 meaning -1..2), d. */
static void
dq_tq2_0(const unsigned char *b, float *y)
{
	const float d = h2f(b + 64);
	int j, l, m;

	for (j = 0; j < 64; j += 32)
		for (l = 0; l < 4; l++)
			for (m = 0; m < 32; m++)
				*y++ = (float)(((b[j + m] >> (2 * l)) & 3) - 1) * d;
}

/* E2M1 values doubled, as ggml stores them; the scales below carry the 1/2. */
static const int8_t fp4_levels[16] = {
	0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

/* An E8M0 scale halved: 2^(e - 128), subnormal for e < 2. */
static float
e8m0_half(unsigned char e)
{
	uint32_t w = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
	float f;

	memcpy(&f, &w, sizeof f);
	return f;
}

/* An unsigned E4M3 scale halved; 0x00 and 0x7f (NaN) are 0, as in ggml. */
static float
ue4m3_half(unsigned char x)
{
	int e = (x >> 3) & 0x0f, m = x & 7;
	float raw;

	if (x == 0 || x == 0x7f)
		return 0.0f;
	raw = e == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
	return raw * 0.5f;
}

/* MXFP4: e (E8M0), 16 bytes of E2M1 codes. */
static void
dq_mxfp4(const unsigned char *b, float *y)
{
	const float d = e8m0_half(b[0]);
	int j;

	for (j = 0; j < 16; j++) {
		y[j] = (float)fp4_levels[b[1 + j] & 0x0f] * d;
		y[j + 16] = (float)fp4_levels[b[1 + j] >> 4] * d;
	}
}

/* NVFP4: four UE4M3 scales (one per 16 elements), 32 bytes of codes. */
static void
dq_nvfp4(const unsigned char *b, float *y)
{
	int s, j;

	for (s = 0; s < 4; s++, y += 16) {
		const float d = ue4m3_half(b[s]);
		const unsigned char *q = b + 4 + 8 * s;

		for (j = 0; j < 8; j++) {
			y[j] = (float)fp4_levels[q[j] & 0x0f] * d;
			y[j + 8] = (float)fp4_levels[q[j] >> 4] * d;
		}
	}
}

/* Q1_0: d, 128 sign bits (set: +d). */
static void
dq_q1_0(const unsigned char *b, float *y)
{
	const float d = h2f(b), neg = -d;
	int j;

	for (j = 0; j < 128; j++)
		y[j] = (b[2 + j / 8] >> (j % 8)) & 1 ? d : neg;
}

/* Q2_0: d, 64 2-bit codes (0..3 meaning -1..2). */
static void
dq_q2_0(const unsigned char *b, float *y)
{
	const float d = h2f(b);
	int j;

	for (j = 0; j < 64; j++)
		y[j] = (float)(((b[2 + j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
}


typedef void (*block_decoder)(const unsigned char *b, float *y);

static block_decoder
decoder_of(rs_dtype dtype)
{
	switch (dtype) {
	case RS_DTYPE_Q4_0: return dq_q4_0;
	case RS_DTYPE_Q4_1: return dq_q4_1;
	case RS_DTYPE_Q5_0: return dq_q5_0;
	case RS_DTYPE_Q5_1: return dq_q5_1;
	case RS_DTYPE_Q8_0: return dq_q8_0;
	case RS_DTYPE_Q2_K: return dq_q2_k;
	case RS_DTYPE_Q3_K: return dq_q3_k;
	case RS_DTYPE_Q4_K: return dq_q4_k;
	case RS_DTYPE_Q5_K: return dq_q5_k;
	case RS_DTYPE_Q6_K: return dq_q6_k;
	case RS_DTYPE_TQ1_0: return dq_tq1_0;
	case RS_DTYPE_TQ2_0: return dq_tq2_0;
	case RS_DTYPE_MXFP4: return dq_mxfp4;
	case RS_DTYPE_NVFP4: return dq_nvfp4;
	case RS_DTYPE_Q1_0: return dq_q1_0;
	case RS_DTYPE_Q2_0: return dq_q2_0;
	default: return NULL;
	}
}

/* Whole blocks from a block start; a trailing partial block (a caller's
 * bug: readers refuse rows that are not whole blocks) becomes NaN. */
static void
blocks_to_double(const rs_dtype_info *info, block_decoder dq, const unsigned char *src,
                 size_t count, double *dst, size_t stride)
{
	float y[MAX_BLOCK];
	size_t nb = count / info->block, i, j, o = 0;

	for (i = 0; i < nb; i++, src += info->block_bytes)
		for (dq(src, y), j = 0; j < info->block; j++, o++)
			dst[o * stride] = y[j];
	for (; o < count; o++)
		dst[o * stride] = NAN;
}

void
rs_dtype_to_double(rs_dtype dtype, const unsigned char *src, size_t count,
                   double *dst, size_t stride)
{
	const rs_dtype_info *info = rs_dtype_get(dtype);
	block_decoder dq = decoder_of(dtype);
	size_t i;

	if (dq != NULL) {
		blocks_to_double(info, dq, src, count, dst, stride);
		return;
	}
	/* memcpy per element: tensor data in a mapped file has no alignment
	 * guarantee (the header length decides it). */
	switch (dtype) {
	case RS_DTYPE_F32:
		for (i = 0; i < count; i++) {
			float f;
			memcpy(&f, src + 4 * i, 4);
			dst[i * stride] = f;
		}
		break;
	case RS_DTYPE_F64:
		for (i = 0; i < count; i++)
			memcpy(&dst[i * stride], src + 8 * i, 8);
		break;
	case RS_DTYPE_F16:
		for (i = 0; i < count; i++) {
			unsigned short h;
			memcpy(&h, src + 2 * i, 2);
			dst[i * stride] = rs_half_to_double(h);
		}
		break;
	case RS_DTYPE_BF16:
		for (i = 0; i < count; i++) {
			unsigned short h;
			memcpy(&h, src + 2 * i, 2);
			dst[i * stride] = rs_bfloat16_to_double(h);
		}
		break;
	default:
		/* Callers check is_float first; reaching here is a bug. */
		for (i = 0; i < count; i++)
			dst[i * stride] = NAN;
		break;
	}
}
