/* dtype.c — see rankscope/dtype.h. */
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

void
rs_dtype_to_double(rs_dtype dtype, const unsigned char *src, size_t count,
                   double *dst, size_t stride)
{
	size_t i;

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
