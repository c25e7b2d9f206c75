/*
 * fuzz-cache.c — bytes as a spectrum cache entry (io-cache.c).
 *
 * The input is written where the cache keeps the entry of a key and read
 * back by rs_cache_load three ways: for the key, shape and k the entry
 * itself claims (the lookup of a layer it would belong to), for another
 * shape (which must miss), and with its trailing checksum replaced by the
 * right one, so that the checks behind the checksum (lengths, finite,
 * descending singular values) see fuzzed values too.  A hit must give k
 * finite, non-negative, descending values, and storing them again must
 * write the same bytes.
 *
 * Shapes an entry claims are used up to 2^32 a side: a layer's sides are
 * bounded by its file, and nothing larger reaches the cache.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/cache.h"
#include "rankscope/file.h"
#include "rankscope/sha256.h"
#include "rankscope/util.h"

#define MAGIC_LEN 8
#define HEADER_LEN (MAGIC_LEN + RS_SHA256_LEN + 3 * 8)
#define MAX_SIDE ((uint64_t)1 << 32)

static char *dir, *store_dir;

static void
free_dirs(void)
{
	free(dir);
	free(store_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dir = rs_xasprintf("%s/spectra", fuzz_scratch_dir());
	store_dir = rs_xasprintf("%s/stored", fuzz_scratch_dir());
	if (rs_mkdir_p(dir, NULL) != RS_OK || rs_mkdir_p(store_dir, NULL) != RS_OK)
		abort();
	atexit(free_dirs);
	return 0;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Looks the entry up as (key, rows, cols); on a hit checks the values and
 * that storing them gives `bytes` again. */
static bool
lookup(const rs_cache_key *key, size_t rows, size_t cols, const uint8_t *bytes,
       size_t len)
{
	size_t k = rows < cols ? rows : cols, i, got_len;
	double *sigma = NULL;
	unsigned char *again;
	char *path;
	rs_error err;

	if (!rs_cache_load(dir, key, rows, cols, &sigma))
		return false;
	for (i = 0; i < k; i++) {
		FUZZ_ASSERT(isfinite(sigma[i]) && sigma[i] >= 0, "sigma finite, >= 0");
		FUZZ_ASSERT(i == 0 || sigma[i] <= sigma[i - 1], "sigma descending");
	}
	if (rs_cache_store(store_dir, key, rows, cols, sigma, &err) != RS_OK)
		fuzz_fail(__FILE__, __LINE__, "a hit can be stored again", err.msg);
	path = rs_cache_entry_path(store_dir, key);
	if (rs_file_read_all(path, len, &again, &got_len, &err) != RS_OK)
		fuzz_fail(__FILE__, __LINE__, "the stored entry reads back", err.msg);
	FUZZ_ASSERT(got_len == len && memcmp(again, bytes, len) == 0,
	            "a hit stored again gives the same bytes");
	free(again);
	free(path);
	free(sigma);
	return true;
}

static void
write_entry(const rs_cache_key *key, const uint8_t *bytes, size_t len)
{
	char *path = rs_cache_entry_path(dir, key);

	fuzz_write_file(path, bytes, len);
	free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_cache_key key;
	uint64_t rows = 1, cols = 1;
	uint8_t *fixed;
	bool capped = false;

	memset(&key, 0, sizeof key);
	if (size >= MAGIC_LEN + RS_SHA256_LEN)
		memcpy(key.digest, data + MAGIC_LEN, RS_SHA256_LEN);
	if (size >= HEADER_LEN) {
		rows = get_u64(data + MAGIC_LEN + RS_SHA256_LEN);
		cols = get_u64(data + MAGIC_LEN + RS_SHA256_LEN + 8);
	}
	if (rows > MAX_SIDE || cols > MAX_SIDE) {
		rows = rows > MAX_SIDE ? MAX_SIDE : rows;
		cols = cols > MAX_SIDE ? MAX_SIDE : cols;
		capped = true;
	}

	write_entry(&key, data, size);
	(void)lookup(&key, (size_t)rows, (size_t)cols, data, size);
	if (!capped) {
		/* another shape of the same key is a miss */
		double *other = NULL;
		bool hit = rs_cache_load(dir, &key, (size_t)rows + 1, (size_t)cols, &other);

		free(other);
		FUZZ_ASSERT(!hit, "another shape misses");
	}

	if (size >= RS_SHA256_LEN) {
		fixed = rs_xmalloc(size);
		memcpy(fixed, data, size);
		rs_sha256(fixed, size - RS_SHA256_LEN, fixed + size - RS_SHA256_LEN);
		write_entry(&key, fixed, size);
		(void)lookup(&key, (size_t)rows, (size_t)cols, fixed, size);
		free(fixed);
	}
	return 0;
}
