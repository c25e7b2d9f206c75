/*
 * sha256.h — SHA-256 (FIPS 180-4), used to key the spectrum cache by tensor
 * content and to identify a model's header in plans.
 */
#ifndef RANKSCOPE_SHA256_H
#define RANKSCOPE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define RS_SHA256_LEN 32

typedef struct rs_sha256_ctx {
	uint32_t state[8];
	uint64_t length;      /* bytes hashed so far */
	uint8_t block[64];
	size_t fill;          /* bytes waiting in block */
} rs_sha256_ctx;

void rs_sha256_init(rs_sha256_ctx *ctx);
void rs_sha256_update(rs_sha256_ctx *ctx, const void *data, size_t len);
void rs_sha256_final(rs_sha256_ctx *ctx, uint8_t digest[RS_SHA256_LEN]);
/* One-shot convenience. */
void rs_sha256(const void *data, size_t len, uint8_t digest[RS_SHA256_LEN]);
/* Lower-case hex, hex must hold 2 * RS_SHA256_LEN + 1 bytes. */
void rs_sha256_hex(const uint8_t digest[RS_SHA256_LEN], char *hex);

#endif
