/* test-sha256.c — FIPS 180-4 example vectors, and incremental hashing
 * across block boundaries agreeing with one-shot hashing. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "rankscope/sha256.h"
#include "rankscope/util.h"
#include "testlib.h"

static void
check_vector(const char *msg, size_t repeat, const char *expected)
{
	rs_sha256_ctx ctx;
	uint8_t d[RS_SHA256_LEN];
	char hex[2 * RS_SHA256_LEN + 1];
	size_t i;

	rs_sha256_init(&ctx);
	for (i = 0; i < repeat; i++)
		rs_sha256_update(&ctx, msg, strlen(msg));
	rs_sha256_final(&ctx, d);
	rs_sha256_hex(d, hex);
	CHECK(strcmp(hex, expected) == 0, "sha256(%.20s x%zu) = %s, want %s", msg,
	      repeat, hex, expected);
}

int
main(void)
{
	unsigned char buf[1000];
	uint8_t one[RS_SHA256_LEN], parts[RS_SHA256_LEN];
	size_t i, split;

	check_vector("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_vector("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
	             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check_vector("a", 1000000,
	             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	for (i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	rs_sha256(buf, sizeof buf, one);
	for (split = 0; split <= 130; split++) {
		rs_sha256_ctx ctx;
		rs_sha256_init(&ctx);
		rs_sha256_update(&ctx, buf, split);
		rs_sha256_update(&ctx, buf + split, sizeof buf - split);
		rs_sha256_final(&ctx, parts);
		CHECK(memcmp(one, parts, sizeof one) == 0, "split at %zu differs", split);
	}
	return test_done("test-sha256");
}
