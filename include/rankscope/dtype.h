/*
 * dtype.h — element types of tensor files and their conversion to double.
 *
 * The table covers every dtype the safetensors format defines, so any valid
 * file opens, and GGUF's block-quantised types (llama.cpp's ggml: Q4_0,
 * Q4_K, ...), which store a fixed number of elements in a fixed number of
 * bytes with their scales; only the types with `is_float` can become
 * layers.  Block types convert to double exactly as ggml dequantises them
 * (in float, then widened), so a layer read from a quantised GGUF is the
 * matrix llama.cpp computes with.
 */
#ifndef RANKSCOPE_DTYPE_H
#define RANKSCOPE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum rs_dtype {
	RS_DTYPE_BOOL, RS_DTYPE_U8, RS_DTYPE_I8, RS_DTYPE_F8_E5M2, RS_DTYPE_F8_E4M3,
	RS_DTYPE_F8_E8M0, RS_DTYPE_I16, RS_DTYPE_U16, RS_DTYPE_F16, RS_DTYPE_BF16,
	RS_DTYPE_I32, RS_DTYPE_U32, RS_DTYPE_F32, RS_DTYPE_F64, RS_DTYPE_I64,
	RS_DTYPE_U64, RS_DTYPE_C64, RS_DTYPE_F4, RS_DTYPE_F6_E2M3, RS_DTYPE_F6_E3M2,
	/* GGUF block types (never in safetensors); the numbers above must not
	 * move: spectrum caches hash them. */
	RS_DTYPE_Q4_0, RS_DTYPE_Q4_1, RS_DTYPE_Q5_0, RS_DTYPE_Q5_1, RS_DTYPE_Q8_0,
	RS_DTYPE_Q8_1, RS_DTYPE_Q2_K, RS_DTYPE_Q3_K, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K,
	RS_DTYPE_Q6_K, RS_DTYPE_Q8_K, RS_DTYPE_IQ2_XXS, RS_DTYPE_IQ2_XS,
	RS_DTYPE_IQ3_XXS, RS_DTYPE_IQ1_S, RS_DTYPE_IQ4_NL, RS_DTYPE_IQ3_S,
	RS_DTYPE_IQ2_S, RS_DTYPE_IQ4_XS, RS_DTYPE_IQ1_M, RS_DTYPE_TQ1_0,
	RS_DTYPE_TQ2_0, RS_DTYPE_MXFP4, RS_DTYPE_NVFP4, RS_DTYPE_Q1_0, RS_DTYPE_Q2_0,
	RS_DTYPE_COUNT
} rs_dtype;

typedef struct rs_dtype_info {
	const char *name;     /* as spelled in safetensors headers; block types as
	                         llama.cpp spells them ("Q4_K") */
	unsigned bits;        /* storage bits per element (block types: 0, see below) */
	bool is_float;        /* convertible to double by rs_dtype_to_double */
	/* Block-quantised types (GGUF's Q4_0, Q4_K, ...) store `block`
	 * elements in `block_bytes` bytes; elementwise types have block 0. */
	unsigned block;
	unsigned block_bytes;
	bool in_safetensors;  /* a dtype safetensors headers may name */
} rs_dtype_info;

const rs_dtype_info *rs_dtype_get(rs_dtype dtype);
/* Bits `count` elements occupy in storage (a whole number of blocks for a
 * block type: the caller has checked count is a multiple of the block). */
unsigned long long rs_dtype_storage_bits(rs_dtype dtype, size_t count);
/* Bytes of `count` elements starting at element 0 (or at a block start). */
size_t rs_dtype_nbytes(rs_dtype dtype, size_t count);

/* Looks a safetensors header spelling up; false when unknown. */
bool rs_dtype_parse(const char *name, rs_dtype *out);

/* IEEE half and bfloat16 to double (exact: every value is representable). */
double rs_half_to_double(unsigned short bits);
double rs_bfloat16_to_double(unsigned short bits);

/* The nearest half and bfloat16 to a double, ties to even (rounded once,
 * from the double: never through float), overflow to infinity, NaN kept
 * as a quiet NaN. */
unsigned short rs_double_to_half(double x);
unsigned short rs_double_to_bfloat16(double x);

/* x rounded to the nearest value of F16, BF16 or F32 (ties to even); x
 * itself for any other dtype.  Every such value is exact in a float. */
double rs_dtype_round(rs_dtype dtype, double x);

/* Writes `count` doubles as F64, F32, F16 or BF16 (little-endian, rounded
 * to nearest, ties to even); false, writing nothing, for any other dtype. */
bool rs_dtype_from_double(rs_dtype dtype, const double *src, size_t count,
                          unsigned char *dst);

/*
 * Converts `count` elements starting at `src` (little-endian, any alignment)
 * to double, writing dst[i * stride].  Only for dtypes with is_float.  For
 * a block type, src is at a block start and count a multiple of the block;
 * the values are ggml's dequantised floats (its reference to_float), bit
 * for bit.
 */
void rs_dtype_to_double(rs_dtype dtype, const unsigned char *src, size_t count,
                        double *dst, size_t stride);

#endif
