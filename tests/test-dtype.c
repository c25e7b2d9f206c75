/* test-dtype.c — half, bfloat16 and float conversions against values
 * worked out by hand, including subnormals, infinities and NaN. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "rankscope/dtype.h"
#include "testlib.h"

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
	return test_done("test-dtype");
}
