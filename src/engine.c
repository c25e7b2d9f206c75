/*
 * engine.c — the spectrum engine's worker pool; see rankscope/engine.h.
 *
 * One coordinator thread runs the schedule so that rs_engine_start returns
 * at once: first every ordinary layer on `threads` workers with one BLAS
 * thread each (largest first, so the pool balances), then the "solo"
 * layers (each too big to share the machine well) one at a time with all
 * BLAS threads.  Ordinary layers go first so that a front end has most
 * layers live within moments, even when one huge layer takes minutes; the
 * total time is the same either way.  OpenBLAS's thread count is
 * process-wide, so it is only changed while no BLAS call is in flight:
 * between the two phases.
 */
#include "config.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/analysis.h"
#include "rankscope/calib.h"
#include "rankscope/sha256.h"
#include "rankscope/outcurve.h"
#include "rankscope/cache.h"
#include "rankscope/engine.h"
#include "rankscope/util.h"

struct rs_engine {
	const rs_layer *layers;
	size_t nlayers;
	char *path;
	char *cache_dir;
	rs_svd_method method;
	int threads;
	void (*on_layer_done)(void *, size_t);
	void *userdata;

	size_t *order;              /* layer indices, solo ones first */
	size_t nsolo;
	size_t next;                /* next position in order (under lock) */
	atomic_bool cancel;

	pthread_mutex_t lock;       /* guards everything below */
	pthread_cond_t finished_cond;
	rs_job_state *state;
	rs_spectrum **spectra;
	rs_magnitudes **magnitudes;
	rs_quant_curve **quant;
	bool statistics;
	const rs_calib *calib;      /* NULL: weight figures only */
	rs_whiten **whiten;
	rs_out_curves **out_curves;
	bool *diagonal;
	char **calib_errors;
	char **errors;
	rs_svd_method *used;
	size_t finished;
	size_t stats_pending;       /* DONE layers whose statistics or calibration
	                               figures are being built */
	size_t cache_hits;
	char *cache_warning;        /* the first failed cache write, if any */
	size_t cache_failures;

	pthread_t coordinator;
	bool has_coordinator;
};

static void
set_blas_threads(int n)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
	openblas_set_num_threads(n);
#else
	(void)n;
#endif
}

/* Publishes a layer's outcome.  The callback runs before the layer counts
 * as finished, so rs_engine_wait returns only after every callback. */
static void
finish_layer(rs_engine *e, size_t i, rs_job_state state, rs_spectrum *spectrum,
             char *error, bool from_cache)
{
	pthread_mutex_lock(&e->lock);
	if (state != RS_JOB_DONE) {
		/* statistics of a layer that did not finish are not published */
		rs_magnitudes_free(e->magnitudes[i]);
		free(e->quant[i]);
		e->magnitudes[i] = NULL;
		e->quant[i] = NULL;
	}
	e->state[i] = state;
	e->spectra[i] = spectrum;
	if (state == RS_JOB_DONE && (e->statistics || e->calib))
		e->stats_pending++;   /* before finished: wait must see it */
	e->errors[i] = error;
	if (from_cache)
		e->cache_hits++;
	pthread_mutex_unlock(&e->lock);
	if (e->on_layer_done)
		e->on_layer_done(e->userdata, i);
	pthread_mutex_lock(&e->lock);
	e->finished++;
	pthread_cond_broadcast(&e->finished_cond);
	pthread_mutex_unlock(&e->lock);
}

static void
fail_layer(rs_engine *e, size_t i, const rs_error *err)
{
	finish_layer(e, i, RS_JOB_FAILED, NULL, rs_xstrdup(err->msg), false);
}

/*
 * Magnitude statistics and quantisation curves, after the layer's spectrum
 * is published: the spectrum is what the workbench needs first, and the
 * statistics (a sort and forty quantiser runs) can cost more than an SVD of
 * a small layer.  The layer is loaded again the same way the spectrum was
 * (cheap: a straight conversion), so the statistics' element order is the
 * one apply reproduces.  Failure (memory) leaves them absent.
 */
/*
 * The truncations in the output norm (whiten.h) from the layer's
 * calibration statistics.  Unlike the statistics, a failure here is the
 * user's (a Gram matrix of the wrong size, not PSD ...): it is kept as the
 * layer's calibration error, which front ends report and stop on.
 */
/*
 * The whitened truncation's tables, from the cache when there is one: the
 * key is the SHA-256 of W and G as the doubles they are computed from, so
 * new weights or new statistics can never be served old tables.
 */
static rs_whiten *
cached_whiten(rs_engine *e, const rs_layer *layer, const double *w, const double *g,
              rs_error *err)
{
	size_t m = layer->rows, n = layer->cols, len = rs_whiten_packed_len(m, n);
	rs_cache_key key;
	rs_sha256_ctx ctx;
	rs_whiten *wh = NULL;
	double *v = NULL;

	if (e->cache_dir) {
		rs_sha256_init(&ctx);
		rs_sha256_update(&ctx, "rankscope-whiten-1", 19);
		rs_sha256_update(&ctx, &m, sizeof m);
		rs_sha256_update(&ctx, &n, sizeof n);
		rs_sha256_update(&ctx, w, m * n * sizeof *w);
		rs_sha256_update(&ctx, g, n * n * sizeof *g);
		rs_sha256_final(&ctx, key.digest);
		if (rs_cache_load_table(e->cache_dir, &key, m, n, len, &v)) {
			wh = rs_whiten_unpack(m, n, v);
			free(v);
			if (wh != NULL)
				return wh;
		}
	}
	wh = rs_whiten_new(w, m, n, m, g, n, err);
	if (wh != NULL && e->cache_dir && (v = malloc(len * sizeof *v)) != NULL) {
		rs_error ignored;

		rs_whiten_pack(wh, v);
		/* a table that cannot be written is computed again next time */
		(void)rs_cache_store_table(e->cache_dir, &key, m, n, v, len, &ignored);
		free(v);
	}
	return wh;
}

static void
build_calibration(rs_engine *e, size_t i, rs_whiten **out, bool *diagonal, char **error,
                  double **w_out, double **g_out)
{
	const rs_layer *layer = &e->layers[i];
	rs_calib_kind kind;
	double *g = NULL, *w = NULL, count;
	rs_error err;

	*out = NULL;
	*error = NULL;
	if (atomic_load(&e->cancel))
		return;
	if (rs_calib_load(e->calib, layer, &kind, &g, &count, &err) != RS_OK) {
		*error = rs_xstrdup(err.msg);
		return;
	}
	if (kind == RS_CALIB_NONE)
		return;
	*diagonal = kind == RS_CALIB_DIAG;
	w = malloc(layer->rows * layer->cols * sizeof *w);
	if (w == NULL) {
		rs_error_set(&err, RS_ENOMEM, "%s: layer '%s': out of memory", e->path,
		             layer->name);
	} else if (rs_layer_load(layer, w, layer->rows, e->path, &err) == RS_OK) {
		*out = cached_whiten(e, layer, w, g, &err);
		if (*out == NULL) {
			char name[96];

			rs_error_prefix(&err, "%s: layer '%s' against its calibration in %s: ",
			                e->path, rs_printable(name, sizeof name, layer->name),
			                e->calib->path);
		}
	}
	if (*out == NULL) {
		*error = rs_xstrdup(err.msg);
		free(w);
		free(g);
		return;
	}
	/* kept for the output curves of pruning and quantisation */
	*w_out = w;
	*g_out = g;
}

static void
build_statistics(rs_engine *e, size_t i)
{
	const rs_layer *layer = &e->layers[i];
	size_t rows = layer->rows, cols = layer->cols, lrows, lcols;
	double *a = NULL;
	rs_magnitudes *mags = NULL;
	rs_quant_curve *curve = NULL;
	rs_whiten *whiten = NULL;
	rs_out_curves *outc = NULL;
	bool diagonal = false;
	char *calib_error = NULL;
	double *w = NULL, *g = NULL;

	if (!e->statistics && !e->calib)
		return;
	if (e->calib)
		build_calibration(e, i, &whiten, &diagonal, &calib_error, &w, &g);
	if (e->statistics)
		a = malloc(rows * cols * sizeof *a);
	if (a != NULL && !atomic_load(&e->cancel) &&
	    rs_layer_load_for_spectrum(layer, a, &lrows, &lcols, e->path, NULL) == RS_OK) {
		mags = rs_magnitudes_new(a, lrows, lcols, lrows);
		curve = malloc(sizeof *curve);
		if (mags == NULL || curve == NULL ||
		    rs_quant_curve_build(a, lrows, lcols, lrows,
		                         rs_layer_loads_transposed(layer),
		                         curve, NULL) != RS_OK) {
			rs_magnitudes_free(mags);
			free(curve);
			mags = NULL;
			curve = NULL;
		}
	}
	free(a);
	/* pruning and quantisation in the output norm need both; a failure
	 * (memory) leaves them absent, as for the statistics */
	if (mags != NULL && w != NULL && !atomic_load(&e->cancel))
		outc = rs_out_curves_new(w, rows, cols, g, mags, rs_layer_loads_transposed(layer),
		                         NULL);
	free(w);
	free(g);
	pthread_mutex_lock(&e->lock);
	e->magnitudes[i] = mags;
	e->quant[i] = curve;
	e->whiten[i] = whiten;
	e->out_curves[i] = outc;
	e->diagonal[i] = diagonal;
	e->calib_errors[i] = calib_error;
	e->stats_pending--;
	pthread_cond_broadcast(&e->finished_cond);
	pthread_mutex_unlock(&e->lock);
	if (e->on_layer_done)
		e->on_layer_done(e->userdata, i);
}

/* Computes (or fetches from the cache) one layer's singular values. */
static void
run_layer(rs_engine *e, size_t i)
{
	const rs_layer *layer = &e->layers[i];
	size_t rows = layer->rows, cols = layer->cols, lrows, lcols;
	size_t k = rows < cols ? rows : cols;
	rs_svd_method method = e->method;
	rs_cache_key key;
	rs_layer_snapshot snap;
	rs_spectrum *spectrum;
	double *a = NULL, *sigma = NULL;
	rs_error err;

	if (atomic_load(&e->cancel)) {
		finish_layer(e, i, RS_JOB_CANCELLED, NULL, NULL, false);
		return;
	}
	if (method == RS_SVD_AUTO)
		method = rs_svd_choose(rows, cols, layer->tensor->dtype);
	pthread_mutex_lock(&e->lock);
	e->state[i] = RS_JOB_RUNNING;
	e->used[i] = method;
	pthread_mutex_unlock(&e->lock);

	memset(&snap, 0, sizeof snap);
	if (e->cache_dir) {
		/* The key and the decomposition come from one private copy of the
		 * bytes: read twice from the map, a file rewritten in between
		 * would file the new weights' spectrum under the old ones' key. */
		if (rs_layer_snapshot_take(layer, &snap, e->path, &err) != RS_OK)
			goto failed;
		layer = &snap.layer;
		rs_cache_key_for(layer, method, &key);
		if (rs_cache_load(e->cache_dir, &key, rows, cols, &sigma)) {
			spectrum = rs_spectrum_new(rows, cols, sigma);
			if (spectrum != NULL) {
				rs_layer_snapshot_free(&snap);
				finish_layer(e, i, RS_JOB_DONE, spectrum, NULL, true);
				build_statistics(e, i);
				return;
			}
			free(sigma);
			sigma = NULL;
		}
	}

	a = malloc(rows * cols * sizeof *a);
	sigma = malloc((k ? k : 1) * sizeof *sigma);
	if (a == NULL || sigma == NULL) {
		rs_error_set(&err, RS_ENOMEM,
		    "%s: layer '%s': out of memory for its %zux%zu working copy",
		    e->path, layer->name, rows, cols);
		goto failed;
	}
	/* W or W^T, whichever is a straight read: same singular values */
	if (rs_layer_load_for_spectrum(layer, a, &lrows, &lcols, e->path, &err) != RS_OK)
		goto failed;
	rs_layer_snapshot_free(&snap);
	layer = &e->layers[i];
	if (atomic_load(&e->cancel)) {
		free(a);
		free(sigma);
		finish_layer(e, i, RS_JOB_CANCELLED, NULL, NULL, false);
		return;
	}
	if (rs_svd_values(a, lrows, lcols, lrows, method, sigma, &err) != RS_OK) {
		rs_error_prefix(&err, "%s: layer '%s': ", e->path, layer->name);
		goto failed;
	}
	free(a);
	a = NULL;
	/* A cache that cannot be written (full, read-only) only costs time on
	 * the next open: the spectrum stands, and the front end warns once. */
	if (e->cache_dir &&
	    rs_cache_store(e->cache_dir, &key, rows, cols, sigma, &err) != RS_OK) {
		pthread_mutex_lock(&e->lock);
		if (e->cache_failures++ == 0)
			e->cache_warning = rs_xstrdup(err.msg);
		pthread_mutex_unlock(&e->lock);
	}
	spectrum = rs_spectrum_new(rows, cols, sigma);
	if (spectrum == NULL) {
		rs_error_set(&err, RS_ENOMEM, "%s: layer '%s': out of memory",
		             e->path, layer->name);
		goto failed;
	}
	finish_layer(e, i, RS_JOB_DONE, spectrum, NULL, false);
	build_statistics(e, i);
	return;
failed:
	rs_layer_snapshot_free(&snap);
	free(a);
	free(sigma);
	fail_layer(e, i, &err);
}

/* Takes the next queued layer of the parallel phase; false when none. */
static bool
next_job(rs_engine *e, size_t *index)
{
	bool ok = false;

	pthread_mutex_lock(&e->lock);
	if (e->next < e->nlayers) {
		*index = e->order[e->next++];
		ok = true;
	}
	pthread_mutex_unlock(&e->lock);
	return ok;
}

static void *
worker_main(void *arg)
{
	rs_engine *e = arg;
	size_t i;

	while (next_job(e, &i))
		run_layer(e, i);
	return NULL;
}

static void *
coordinator_main(void *arg)
{
	rs_engine *e = arg;
	pthread_t *workers;
	int started = 0, w;
	size_t i;
#ifdef HAVE_OPENBLAS_GET_NUM_THREADS
	/* OpenBLAS's thread count is process-wide: give back what we found. */
	int blas_threads = openblas_get_num_threads();
#endif

	/* Phase 1: ordinary layers, order[nsolo..], in parallel. */
	set_blas_threads(1);
	e->next = e->nsolo;
	workers = rs_xcalloc((size_t)e->threads, sizeof *workers);
	for (w = 1; w < e->threads; w++)
		if (pthread_create(&workers[w], NULL, worker_main, e) == 0)
			started++;
		else
			break;
	worker_main(e);
	for (w = 1; w <= started; w++)
		pthread_join(workers[w], NULL);
	free(workers);

	/* Phase 2: solo layers, order[0..nsolo), each with every thread. */
	set_blas_threads(e->threads);
	for (i = 0; i < e->nsolo; i++)
		run_layer(e, e->order[i]);
#ifdef HAVE_OPENBLAS_GET_NUM_THREADS
	set_blas_threads(blas_threads);
#endif
	return NULL;
}

struct scheduled {
	double cost;
	size_t layer;
};

static int
compare_cost_desc(const void *a, const void *b)
{
	const struct scheduled *x = a, *y = b;

	return x->cost < y->cost ? 1 : x->cost > y->cost ? -1 : 0;
}

/* Orders layers largest first and counts the solo ones (see top). */
static void
plan_schedule(rs_engine *e)
{
	struct scheduled *jobs = rs_xcalloc(e->nlayers, sizeof *jobs);
	double total = 0;
	size_t i;

	for (i = 0; i < e->nlayers; i++) {
		const rs_layer *l = &e->layers[i];
		rs_svd_method m = e->method != RS_SVD_AUTO ? e->method :
		    rs_svd_choose(l->rows, l->cols, l->tensor->dtype);
		jobs[i].cost = rs_svd_flops(l->rows, l->cols, m);
		jobs[i].layer = i;
		total += jobs[i].cost;
	}
	qsort(jobs, e->nlayers, sizeof *jobs, compare_cost_desc);
	e->nsolo = 0;
	for (i = 0; i < e->nlayers; i++) {
		e->order[i] = jobs[i].layer;
		if (e->threads > 1 && e->nsolo == i && jobs[i].cost > total / e->threads)
			e->nsolo++;
	}
	free(jobs);
}

rs_engine *
rs_engine_start(const rs_layer *layers, size_t nlayers, const char *path,
                const rs_engine_options *options)
{
	rs_engine *e = rs_xcalloc(1, sizeof *e);
	size_t i;

	e->layers = layers;
	e->nlayers = nlayers;
	e->path = rs_xstrdup(path);
	e->cache_dir = options->cache_dir ? rs_xstrdup(options->cache_dir) : NULL;
	e->method = options->method;
	e->threads = options->threads > 0 ? options->threads : rs_cpu_count();
	e->on_layer_done = options->on_layer_done;
	e->userdata = options->userdata;
	e->order = rs_xcalloc(nlayers, sizeof *e->order);
	e->state = rs_xcalloc(nlayers, sizeof *e->state);
	e->spectra = rs_xcalloc(nlayers, sizeof *e->spectra);
	e->magnitudes = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->magnitudes);
	e->quant = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->quant);
	e->statistics = options->statistics;
	e->calib = options->calib;
	e->whiten = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->whiten);
	e->out_curves = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->out_curves);
	e->diagonal = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->diagonal);
	e->calib_errors = rs_xcalloc(nlayers ? nlayers : 1, sizeof *e->calib_errors);
	e->errors = rs_xcalloc(nlayers, sizeof *e->errors);
	e->used = rs_xcalloc(nlayers, sizeof *e->used);
	for (i = 0; i < nlayers; i++)
		e->state[i] = RS_JOB_PENDING;
	atomic_init(&e->cancel, false);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->finished_cond, NULL);
	plan_schedule(e);
	e->has_coordinator = pthread_create(&e->coordinator, NULL,
	                                    coordinator_main, e) == 0;
	if (!e->has_coordinator)
		coordinator_main(e);   /* no thread to be had: do the work now */
	return e;
}

void
rs_engine_wait(rs_engine *e)
{
	pthread_mutex_lock(&e->lock);
	while (e->finished < e->nlayers || e->stats_pending > 0)
		pthread_cond_wait(&e->finished_cond, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

void
rs_engine_cancel(rs_engine *e)
{
	atomic_store(&e->cancel, true);
}

void
rs_engine_free(rs_engine *e)
{
	size_t i;

	if (e == NULL)
		return;
	rs_engine_cancel(e);
	rs_engine_wait(e);
	if (e->has_coordinator)
		pthread_join(e->coordinator, NULL);
	for (i = 0; i < e->nlayers; i++) {
		rs_spectrum_free(e->spectra[i]);
		rs_magnitudes_free(e->magnitudes[i]);
		free(e->quant[i]);
		free(e->errors[i]);
		rs_whiten_free(e->whiten[i]);
		rs_out_curves_free(e->out_curves[i]);
		free(e->calib_errors[i]);
	}
	free(e->magnitudes);
	free(e->quant);
	free(e->whiten);
	free(e->out_curves);
	free(e->diagonal);
	free(e->calib_errors);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->finished_cond);
	free(e->spectra);
	free(e->errors);
	free(e->state);
	free(e->used);
	free(e->order);
	free(e->cache_dir);
	free(e->cache_warning);
	free(e->path);
	free(e);
}

void
rs_engine_progress(rs_engine *e, size_t *finished, size_t *total)
{
	pthread_mutex_lock(&e->lock);
	*finished = e->finished;
	*total = e->nlayers;
	pthread_mutex_unlock(&e->lock);
}

rs_job_state
rs_engine_state(rs_engine *e, size_t i)
{
	rs_job_state s;

	pthread_mutex_lock(&e->lock);
	s = e->state[i];
	pthread_mutex_unlock(&e->lock);
	return s;
}

const rs_spectrum *
rs_engine_spectrum(rs_engine *e, size_t i)
{
	const rs_spectrum *s;

	pthread_mutex_lock(&e->lock);
	s = e->state[i] == RS_JOB_DONE ? e->spectra[i] : NULL;
	pthread_mutex_unlock(&e->lock);
	return s;
}

rs_layer_analysis
rs_engine_analysis(rs_engine *e, size_t i)
{
	rs_layer_analysis a;
	const rs_layer *l = &e->layers[i];

	pthread_mutex_lock(&e->lock);
	a.spectrum = e->state[i] == RS_JOB_DONE ? e->spectra[i] : NULL;
	a.magnitudes = a.spectrum ? e->magnitudes[i] : NULL;
	a.quant = a.spectrum ? e->quant[i] : NULL;
	a.whiten = a.spectrum ? e->whiten[i] : NULL;
	a.out = a.spectrum ? e->out_curves[i] : NULL;
	a.diagonal = a.spectrum && e->diagonal[i];
	a.calib = e->calib;
	pthread_mutex_unlock(&e->lock);
	/* rs_layer_load_for_spectrum reads W^T for these */
	a.transposed = rs_layer_loads_transposed(l);
	return a;
}

const char *
rs_engine_error(rs_engine *e, size_t i)
{
	const char *s;

	pthread_mutex_lock(&e->lock);
	s = e->state[i] == RS_JOB_FAILED ? e->errors[i] : NULL;
	pthread_mutex_unlock(&e->lock);
	return s;
}

const char *
rs_engine_calib_error(rs_engine *e, size_t i)
{
	const char *s;

	pthread_mutex_lock(&e->lock);
	s = e->calib_errors[i];
	pthread_mutex_unlock(&e->lock);
	return s;
}

rs_svd_method
rs_engine_method(rs_engine *e, size_t i)
{
	rs_svd_method m;

	pthread_mutex_lock(&e->lock);
	m = e->used[i];
	pthread_mutex_unlock(&e->lock);
	return m;
}

size_t
rs_engine_cache_hits(rs_engine *e)
{
	size_t n;

	pthread_mutex_lock(&e->lock);
	n = e->cache_hits;
	pthread_mutex_unlock(&e->lock);
	return n;
}

const char *
rs_engine_cache_warning(rs_engine *e, size_t *failures)
{
	const char *s;

	pthread_mutex_lock(&e->lock);
	s = e->cache_warning;
	if (failures != NULL)
		*failures = e->cache_failures;
	pthread_mutex_unlock(&e->lock);
	return s;
}
