/*
 * engine.h — the spectrum engine: computes every layer's spectrum on a
 * worker pool, in the background, with progress and cancellation.
 *
 * Scheduling (why, in HACKING.md): layers are ordered by estimated cost,
 * largest first, and run concurrently, one layer per worker with one BLAS
 * thread each.  A layer that alone costs more than 1/threads of all the
 * work ("solo") runs afterwards, by itself, with every BLAS thread.  Each job
 * converts one layer into a private double buffer (with a cache, from a
 * private copy of its bytes that the cache key is hashed from too:
 * rs_layer_snapshot_take), so peak memory is the mapped pages plus the
 * working sets of the layers in flight.  A model truncated while open
 * fails the layers it cuts, naming the tensor (guard.h).
 *
 * Thread safety: after rs_engine_start returns, the front end may call the
 * query functions from its own thread at any time; a spectrum, once a
 * layer's state is RS_JOB_DONE, is immutable until rs_engine_free.
 */
#ifndef RANKSCOPE_ENGINE_H
#define RANKSCOPE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/spectrum.h"
#include "rankscope/svd.h"

struct rs_calib;

typedef enum rs_job_state {
	RS_JOB_PENDING,
	RS_JOB_RUNNING,
	RS_JOB_DONE,
	RS_JOB_FAILED,
	RS_JOB_CANCELLED
} rs_job_state;

typedef struct rs_engine rs_engine;

typedef struct rs_engine_options {
	int threads;                /* workers; 0 = number of CPUs */
	rs_svd_method method;       /* AUTO chooses per layer */
	const char *cache_dir;      /* NULL = no cache */
	/* Also build each layer's magnitude statistics and quantisation curves
	 * (what pruning and quantisation figures are read from), after its
	 * spectrum is published: the callback runs again when they arrive, and
	 * rs_engine_wait waits for them too.  They are not cached. */
	bool statistics;
	/* Calibration statistics (calib.h), or NULL: each layer that has them
	 * gets its truncations in the output norm (whiten.h) after its
	 * spectrum, in the same step as the statistics; not cached.  A
	 * layer whose statistics are wrong keeps its spectrum and reports
	 * the problem through rs_engine_calib_error. */
	const struct rs_calib *calib;
	/* Called from a worker thread after each layer finishes (any final
	 * state).  Must be quick and thread-safe; may be NULL. */
	void (*on_layer_done)(void *userdata, size_t layer_index);
	void *userdata;
} rs_engine_options;

/*
 * Starts computing spectra of layers[0..nlayers) of `path`'s model.  The
 * engine borrows `layers` (and the model behind them) until rs_engine_free.
 */
rs_engine *rs_engine_start(const rs_layer *layers, size_t nlayers,
                           const char *path, const rs_engine_options *options);

/* Blocks until every layer is finished, failed or cancelled. */
void rs_engine_wait(rs_engine *engine);
/* Asks the workers to stop; layers not started end CANCELLED.  A LAPACK
 * call in progress finishes first (it cannot be interrupted). */
void rs_engine_cancel(rs_engine *engine);
/* Cancels, joins the workers, frees every spectrum. */
void rs_engine_free(rs_engine *engine);

void rs_engine_progress(rs_engine *engine, size_t *finished, size_t *total);
rs_job_state rs_engine_state(rs_engine *engine, size_t layer_index);
/* The spectrum once the state is DONE, else NULL. */
const rs_spectrum *rs_engine_spectrum(rs_engine *engine, size_t layer_index);
/* The layer's analysis: spectrum (NULL until DONE), statistics (NULL
 * unless requested and DONE), orientation. */
rs_layer_analysis rs_engine_analysis(rs_engine *engine, size_t layer_index);
/* The failure message once the state is FAILED, else NULL. */
const char *rs_engine_error(rs_engine *engine, size_t layer_index);
/* Why a layer's calibration figures could not be made (its statistics
 * are wrong for it), else NULL; final once rs_engine_wait returned. */
const char *rs_engine_calib_error(rs_engine *engine, size_t layer_index);
/* Method actually used for a layer (meaningful once DONE). */
rs_svd_method rs_engine_method(rs_engine *engine, size_t layer_index);
/* How many finished layers came from the cache. */
size_t rs_engine_cache_hits(rs_engine *engine);
/* The first failure to write a cache entry (a full or read-only disk),
 * NULL if none; *failures (may be NULL) counts them.  A failed write only
 * means the spectrum is computed again next time: the layer is DONE. */
const char *rs_engine_cache_warning(rs_engine *engine, size_t *failures);

#endif
