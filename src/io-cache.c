/*
 * io-cache.c — the spectrum cache; see rankscope/cache.h.
 *
 * Entry layout (little-endian):
 *   "RSSPEC\0\1" | key (32) | rows u64 | cols u64 | k u64 | k doubles |
 *   SHA-256 of everything before it (32)
 * Tables (NAME.table) are the same with "RSTABL\0\1" and n doubles.
 * Entries are written without fsync: a torn entry fails its checksum and is
 * recomputed, which is all a cache owes its user.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cache.h"
#include "rankscope/file.h"
#include "rankscope/util.h"

static const unsigned char entry_magic[8] = {'R', 'S', 'S', 'P', 'E', 'C', 0, 1};
/* tables of other per-layer results (the whitened truncation's) */
static const unsigned char table_magic[8] = {'R', 'S', 'T', 'A', 'B', 'L', 0, 1};

#define HEADER_LEN (8 + RS_SHA256_LEN + 3 * 8)

char *
rs_cache_default_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (xdg != NULL && xdg[0] == '/')
		return rs_xasprintf("%s/rankscope/spectra", xdg);
	if (home != NULL && home[0] != '\0')
		return rs_xasprintf("%s/.cache/rankscope/spectra", home);
	return NULL;
}

static void
hash_u64(rs_sha256_ctx *ctx, uint64_t v)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	rs_sha256_update(ctx, b, 8);
}

void
rs_cache_key_for(const rs_layer *layer, rs_svd_method method, rs_cache_key *key)
{
	const rs_tensor *t = layer->tensor;
	const char *dtype = rs_dtype_get(t->dtype)->name;
	const char *mname = rs_svd_method_name(method);
	rs_sha256_ctx ctx;
	size_t i;

	rs_sha256_init(&ctx);
	rs_sha256_update(&ctx, "rankscope-spectrum-1", 21);
	rs_sha256_update(&ctx, dtype, strlen(dtype) + 1);
	rs_sha256_update(&ctx, mname, strlen(mname) + 1);
	hash_u64(&ctx, t->ndim);
	for (i = 0; i < t->ndim; i++)
		hash_u64(&ctx, t->shape[i]);
	hash_u64(&ctx, (uint64_t)(int64_t)layer->fold);
	hash_u64(&ctx, layer->rows);
	hash_u64(&ctx, layer->cols);
	if (layer->group == NULL) {
		rs_sha256_update(&ctx, t->data, t->nbytes);
	} else {
		/* a composed layer is its factors: their order, dtypes, shapes, data */
		const rs_compose_group *g = layer->group;
		hash_u64(&ctx, g->nfactors);
		for (i = 0; i < g->nfactors; i++) {
			const char *fd = rs_dtype_get(g->factors[i]->dtype)->name;
			rs_sha256_update(&ctx, fd, strlen(fd) + 1);
			hash_u64(&ctx, g->factors[i]->shape[0]);
			hash_u64(&ctx, g->factors[i]->shape[1]);
			rs_sha256_update(&ctx, g->factors[i]->data, g->factors[i]->nbytes);
		}
	}
	rs_sha256_final(&ctx, key->digest);
}

static char *
entry_path(const char *dir, const rs_cache_key *key, const char *suffix)
{
	char hex[2 * RS_SHA256_LEN + 1];

	rs_sha256_hex(key->digest, hex);
	return rs_xasprintf("%s/%s.%s", dir, hex, suffix);
}

char *
rs_cache_entry_path(const char *dir, const rs_cache_key *key)
{
	return entry_path(dir, key, "spectrum");
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* One entry of n finite doubles for a rows x cols matrix: NULL when it is
 * absent, damaged, foreign or of another shape. */
static double *
load_entry(const char *path, const unsigned char magic[8], const rs_cache_key *key,
           size_t rows, size_t cols, size_t n)
{
	size_t expected = HEADER_LEN + 8 * n + RS_SHA256_LEN, len, i;
	unsigned char *buf = NULL, digest[RS_SHA256_LEN];
	double *v = NULL;

	if (rs_file_read_all(path, expected, &buf, &len, NULL) != RS_OK)
		goto out;
	if (len != expected || memcmp(buf, magic, 8) != 0 ||
	    memcmp(buf + 8, key->digest, RS_SHA256_LEN) != 0 ||
	    rs_read_le(buf + 8 + RS_SHA256_LEN, 8) != rows ||
	    rs_read_le(buf + 16 + RS_SHA256_LEN, 8) != cols ||
	    rs_read_le(buf + 24 + RS_SHA256_LEN, 8) != n)
		goto out;
	rs_sha256(buf, len - RS_SHA256_LEN, digest);
	if (memcmp(digest, buf + len - RS_SHA256_LEN, RS_SHA256_LEN) != 0)
		goto out;
	v = malloc((n ? n : 1) * sizeof *v);
	if (v == NULL)
		goto out;
	memcpy(v, buf + HEADER_LEN, 8 * n);
	for (i = 0; i < n; i++)
		if (!isfinite(v[i])) {
			free(v);
			v = NULL;
			goto out;
		}
out:
	free(buf);
	return v;
}

static rs_status
store_entry(const char *dir, const char *path, const unsigned char magic[8],
            const rs_cache_key *key, size_t rows, size_t cols, const double *v, size_t n,
            rs_error *err)
{
	size_t len = HEADER_LEN + 8 * n + RS_SHA256_LEN;
	unsigned char *buf;
	rs_status st;

	if (rs_mkdir_p(dir, err) != RS_OK)
		return RS_EIO;
	buf = malloc(len);
	if (buf == NULL)
		return rs_error_set(err, RS_ENOMEM, "out of memory for a cache entry");
	memcpy(buf, magic, 8);
	memcpy(buf + 8, key->digest, RS_SHA256_LEN);
	put_u64(buf + 8 + RS_SHA256_LEN, rows);
	put_u64(buf + 16 + RS_SHA256_LEN, cols);
	put_u64(buf + 24 + RS_SHA256_LEN, n);
	memcpy(buf + HEADER_LEN, v, 8 * n);
	rs_sha256(buf, len - RS_SHA256_LEN, buf + len - RS_SHA256_LEN);
	st = rs_file_write_atomic(path, buf, len, false, err);
	free(buf);
	return st;
}

bool
rs_cache_load(const char *dir, const rs_cache_key *key, size_t rows,
              size_t cols, double **sigma_out)
{
	size_t k = rows < cols ? rows : cols, i;
	char *path = rs_cache_entry_path(dir, key);
	double *sigma = load_entry(path, entry_magic, key, rows, cols, k);

	free(path);
	for (i = 0; sigma != NULL && i < k; i++)
		if (sigma[i] < 0 || (i > 0 && sigma[i] > sigma[i - 1])) {
			free(sigma);
			sigma = NULL;
		}
	if (sigma == NULL)
		return false;
	*sigma_out = sigma;
	return true;
}

rs_status
rs_cache_store(const char *dir, const rs_cache_key *key, size_t rows,
               size_t cols, const double *sigma, rs_error *err)
{
	char *path = rs_cache_entry_path(dir, key);
	rs_status st = store_entry(dir, path, entry_magic, key, rows, cols, sigma,
	                           rows < cols ? rows : cols, err);

	free(path);
	return st;
}

bool
rs_cache_load_table(const char *dir, const rs_cache_key *key, size_t rows, size_t cols,
                    size_t n, double **out)
{
	char *path = entry_path(dir, key, "table");

	*out = load_entry(path, table_magic, key, rows, cols, n);
	free(path);
	return *out != NULL;
}

rs_status
rs_cache_store_table(const char *dir, const rs_cache_key *key, size_t rows, size_t cols,
                     const double *v, size_t n, rs_error *err)
{
	char *path = entry_path(dir, key, "table");
	rs_status st = store_entry(dir, path, table_magic, key, rows, cols, v, n, err);

	free(path);
	return st;
}
