/*
 * test-cache.c — the spectrum cache: a second open is served from the
 * cache bit for bit; a changed tensor is never served a stale entry; a
 * corrupt or truncated entry is ignored and rebuilt; an unusable cache
 * directory only costs time.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/cache.h"
#include "rankscope/engine.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

typedef struct run_result {
	size_t hits;
	double sigma[30];
	bool done;
} run_result;

static run_result
analyse(const char *path, const char *cache_dir)
{
	run_result r = {0};
	rs_error err;
	rs_model *m = rs_model_open(path, &err);
	rs_layer *layers;
	rs_engine *e;
	rs_engine_options o = {.threads = 2, .cache_dir = cache_dir};
	size_t n;

	CHECK(m != NULL, "open %s", path);
	if (m == NULL)
		return r;
	n = rs_layers_discover(m, NULL, 0, NULL, &layers);
	e = rs_engine_start(layers, n, path, &o);
	rs_engine_wait(e);
	r.hits = rs_engine_cache_hits(e);
	r.done = rs_engine_state(e, 0) == RS_JOB_DONE;
	if (r.done)
		memcpy(r.sigma, rs_engine_spectrum(e, 0)->sigma, sizeof r.sigma);
	rs_engine_free(e);
	free(layers);
	rs_model_close(m);
	return r;
}

static void
write_model(const char *path, double scale)
{
	double s[30], *a, *row_major;
	size_t shape[2] = {50, 30}, i, j, len;
	test_st *st = test_st_new();
	unsigned char *bytes;

	for (i = 0; i < 30; i++)
		s[i] = scale * pow(0.8, (double)i);
	test_seed(7);
	a = test_matrix_with_spectrum(50, 30, s);
	row_major = rs_xmalloc(50 * 30 * sizeof *row_major);
	for (i = 0; i < 50; i++)
		for (j = 0; j < 30; j++)
			row_major[i * 30 + j] = a[i + j * 50];
	test_st_add_f32(st, "w", shape, 2, row_major);
	bytes = test_st_bytes(st, &len);
	test_write_file(path, bytes, len);
	free(bytes);
	free(row_major);
	free(a);
	test_st_free(st);
}

static void
damage(const char *entry, long offset, bool cut)
{
	FILE *f = fopen(entry, "r+b");
	int c;

	if (f == NULL)
		abort();
	if (cut) {
		fclose(f);
		if (truncate(entry, 40) != 0)
			abort();
		return;
	}
	fseek(f, offset, SEEK_SET);
	c = fgetc(f);
	fseek(f, offset, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
}

int
main(void)
{
	char *dir = test_tmpdir();
	char *model = rs_xasprintf("%s/m.safetensors", dir);
	char *cache = rs_xasprintf("%s/cache/rankscope/spectra", dir);
	run_result first, second, third;
	rs_cache_key key;
	char *entry;

	write_model(model, 2.385);
	first = analyse(model, cache);
	CHECK(first.done && first.hits == 0, "first open computes (hits %zu)", first.hits);
	second = analyse(model, cache);
	CHECK(second.done && second.hits == 1, "second open is served from the cache");
	CHECK(memcmp(first.sigma, second.sigma, sizeof first.sigma) == 0,
	      "cached spectrum is bit-identical");

	/* A changed tensor (same name, shape, file size) must not be served the
	 * old entry. */
	write_model(model, 3.0);
	third = analyse(model, cache);
	CHECK(third.done && third.hits == 0, "changed weights are recomputed");
	CHECK(fabs(third.sigma[0] - 3.0) < 1e-5, "new sigma_1 = %.9g", third.sigma[0]);

	/* Damage the entry in several ways: each is a miss, then rebuilt. */
	{
		rs_error err;
		rs_model *m = rs_model_open(model, &err);
		rs_layer *layers;
		size_t n = rs_layers_discover(m, NULL, 0, NULL, &layers);
		CHECK(n == 1, "one layer");
		rs_cache_key_for(&layers[0], RS_SVD_GESDD, &key);
		free(layers);
		rs_model_close(m);
	}
	entry = rs_cache_entry_path(cache, &key);
	{
		long offsets[] = {0, 9, 8 + 32 + 3, 8 + 32 + 24 + 5, 8 + 32 + 24 + 8 * 30 + 2};
		size_t i;
		for (i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
			damage(entry, offsets[i], false);
			third = analyse(model, cache);
			CHECK(third.done && third.hits == 0,
			      "entry damaged at byte %ld is ignored", offsets[i]);
			third = analyse(model, cache);
			CHECK(third.done && third.hits == 1,
			      "entry damaged at byte %ld was rebuilt", offsets[i]);
		}
	}
	damage(entry, 0, true);
	third = analyse(model, cache);
	CHECK(third.done && third.hits == 0, "truncated entry is ignored");

	/* A cache "directory" that is a file: spectra still computed. */
	{
		char *blocker = rs_xasprintf("%s/blocked", dir);
		char *inside = rs_xasprintf("%s/blocked/spectra", dir);
		test_write_file(blocker, "x", 1);
		third = analyse(model, inside);
		CHECK(third.done && third.hits == 0, "unusable cache dir still computes");
		free(blocker);
		free(inside);
	}
	free(entry);
	free(model);
	free(cache);
	free(dir);
	return test_done("test-cache");
}
