/*
 * test-engine.c — the worker pool: every layer's spectrum equals an
 * independent dgesdd of the same matrix whatever the thread count or
 * schedule (solo phase included); progress and callbacks add up; a
 * failing layer fails alone with its message; cancellation ends every
 * layer in a final state and frees cleanly.
 */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/engine.h"
#include "rankscope/model.h"
#include "rankscope/util.h"
#include "testlib.h"

static atomic_size_t callbacks;

static void
count_callback(void *userdata, size_t index)
{
	(void)userdata;
	(void)index;
	atomic_fetch_add(&callbacks, 1);
}

/* Adds a random m x n (or conv) float32 tensor. */
static void
add_random(test_st *st, const char *name, const size_t *shape, size_t ndim)
{
	size_t count = 1, i;
	double *v;

	for (i = 0; i < ndim; i++)
		count *= shape[i];
	v = rs_xmalloc(count * sizeof *v);
	for (i = 0; i < count; i++)
		v[i] = test_gaussian() / sqrt((double)shape[1]);
	test_st_add_f32(st, name, shape, ndim, v);
	free(v);
}

static rs_model *
build_model(unsigned char **bytes, bool with_nan, bool with_big)
{
	static const size_t shapes[][4] = {
		{64, 32}, {100, 100}, {30, 200}, {200, 30}, {8, 4, 3, 3}, {16, 8, 3, 3},
		{70, 65}, {128, 96}, {5, 5}, {96, 128},
	};
	size_t i, len;
	char name[32];
	test_st *st = test_st_new();
	rs_error err;
	rs_model *m;

	test_seed(42);
	for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		snprintf(name, sizeof name, "layer%zu.weight", i);
		add_random(st, name, shapes[i], shapes[i][2] ? 4 : 2);
	}
	if (with_big) {
		size_t big[2] = {400, 300};
		add_random(st, "big.weight", big, 2);
	}
	if (with_nan) {
		float bad[6] = {1, 2, 3, INFINITY, 5, 6};
		size_t s[2] = {2, 3};
		test_st_add(st, "broken.weight", "F32", s, 2, bad, sizeof bad);
	}
	*bytes = test_st_bytes(st, &len);
	test_st_free(st);
	m = rs_safetensors_parse("engine.safetensors", *bytes, len, &err);
	CHECK(m != NULL, "parse");
	return m;
}

static void
check_against_gesdd(rs_engine *e, const rs_layer *layers, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const rs_spectrum *sp = rs_engine_spectrum(e, i);
		size_t rows = layers[i].rows, cols = layers[i].cols, k = rows < cols ? rows : cols;
		double *a = rs_xmalloc(rows * cols * sizeof *a), *s = rs_xmalloc(k * sizeof *s);
		double u = 0, vt = 0;
		rs_error err;

		CHECK(sp != NULL, "layer %s done", layers[i].name);
		if (sp == NULL)
			goto next;
		CHECK(rs_layer_load(&layers[i], a, rows, "m", &err) == RS_OK, "load");
		LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)rows, (int)cols, a, (int)rows, s,
		               &u, 1, &vt, 1);
		for (j = 0; j < k; j++)
			CHECK(fabs(sp->sigma[j] - s[j]) <= 1e-10 * s[0],
			      "%s sigma_%zu %.17g vs dgesdd %.17g", layers[i].name, j + 1,
			      sp->sigma[j], s[j]);
	next:
		free(a);
		free(s);
	}
}

static void
run_full(int threads, bool with_big)
{
	unsigned char *bytes;
	rs_model *m = build_model(&bytes, false, with_big);
	rs_layer *layers;
	size_t n = rs_layers_discover(m, NULL, 0, NULL, &layers), done, total;
	rs_engine_options o = {.threads = threads, .on_layer_done = count_callback};
	rs_engine *e;

	atomic_store(&callbacks, 0);
	e = rs_engine_start(layers, n, "m", &o);
	rs_engine_wait(e);
	rs_engine_progress(e, &done, &total);
	CHECK(done == n && total == n, "progress %zu/%zu of %zu", done, total, n);
	CHECK(atomic_load(&callbacks) == n, "one callback per layer");
	check_against_gesdd(e, layers, n);
	rs_engine_free(e);
	free(layers);
	rs_model_close(m);
	free(bytes);
}

static void
run_with_failure(void)
{
	unsigned char *bytes;
	rs_model *m = build_model(&bytes, true, false);
	rs_layer *layers;
	size_t n = rs_layers_discover(m, NULL, 0, NULL, &layers), i, failed = 0;
	rs_engine_options o = {.threads = 2};
	rs_engine *e = rs_engine_start(layers, n, "engine.safetensors", &o);

	rs_engine_wait(e);
	for (i = 0; i < n; i++) {
		if (strcmp(layers[i].name, "broken.weight") == 0) {
			CHECK(rs_engine_state(e, i) == RS_JOB_FAILED, "broken layer fails");
			CHECK_CONTAINS(rs_engine_error(e, i), "engine.safetensors: layer 'broken.weight'");
			CHECK_CONTAINS(rs_engine_error(e, i), "infinite");
			failed++;
		} else {
			CHECK(rs_engine_state(e, i) == RS_JOB_DONE, "%s done", layers[i].name);
			CHECK(rs_engine_error(e, i) == NULL, "no error for a done layer");
		}
	}
	CHECK(failed == 1, "the broken layer was found");
	rs_engine_free(e);
	free(layers);
	rs_model_close(m);
	free(bytes);
}

/* Enough work (40 layers of 400x400, about half a second) that a cancel
 * sent right after the start finds layers not yet begun, even when the
 * test itself is descheduled on a busy machine. */
static rs_model *
build_busy_model(unsigned char **bytes)
{
	size_t shape[2] = {400, 400}, i, len;
	char name[32];
	test_st *st = test_st_new();
	rs_error err;
	rs_model *m;

	test_seed(7);
	for (i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "busy%zu.weight", i);
		add_random(st, name, shape, 2);
	}
	*bytes = test_st_bytes(st, &len);
	test_st_free(st);
	m = rs_safetensors_parse("busy.safetensors", *bytes, len, &err);
	CHECK(m != NULL, "parse");
	return m;
}

static void
run_cancelled(void)
{
	unsigned char *bytes;
	rs_model *m = build_busy_model(&bytes);
	rs_layer *layers;
	size_t n = rs_layers_discover(m, NULL, 0, NULL, &layers), i, cancelled = 0;
	rs_engine_options o = {.threads = 2};
	rs_engine *e = rs_engine_start(layers, n, "m", &o);

	rs_engine_cancel(e);
	rs_engine_wait(e);
	for (i = 0; i < n; i++) {
		rs_job_state s = rs_engine_state(e, i);
		CHECK(s == RS_JOB_DONE || s == RS_JOB_CANCELLED, "final state after cancel");
		cancelled += s == RS_JOB_CANCELLED;
		CHECK((s == RS_JOB_DONE) == (rs_engine_spectrum(e, i) != NULL),
		      "spectrum exactly when done");
	}
	CHECK(cancelled > 0, "cancel stopped some layers (%zu)", cancelled);
	rs_engine_free(e);
	/* Freeing a running engine cancels and joins it. */
	e = rs_engine_start(layers, n, "m", &o);
	rs_engine_free(e);
	free(layers);
	rs_model_close(m);
	free(bytes);
}

int
main(void)
{
	run_full(1, false);
	run_full(2, false);
	run_full(3, true);     /* the big layer is scheduled solo */
	run_full(2, true);
	run_with_failure();
	run_cancelled();
	return test_done("test-engine");
}
