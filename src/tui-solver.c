/*
 * tui-solver.c — low rank + sparse entries are solved by alternating
 * projections, which takes a full SVD per iteration: too slow for a
 * keypress; the decompositions (grouped SVD, Tucker-2, CP, TT) take SVDs
 * or sweeps of their own.  One background thread solves one layer at a
 * time; the table shows the layer as "solving" with the iteration and
 * error so far, and the entry gets its figures when the solve ends.  A
 * low rank + sparse solve whose entry has changed meanwhile is cancelled
 * and its result dropped (a decomposition's solve cannot be interrupted:
 * it runs out and its result is dropped).  With nothing to solve, the same
 * thread computes the selected layer's decomposition view (tui-decomp.c).
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/combine.h"
#include "rankscope/plansolve.h"
#include "rankscope/apply.h"
#include "tui.h"

static void
on_iteration(void *userdata, size_t iteration, double rel_error)
{
	tui *t = userdata;
	ssize_t n;

	pthread_mutex_lock(&t->solver.lock);
	t->solver.iteration = iteration;
	t->solver.error = rel_error;
	pthread_mutex_unlock(&t->solver.lock);
	n = write(t->wake_fd[1], "s", 1);   /* redraw */
	(void)n;
}

/* With calibration, the output error of what apply would write for the
 * solved entry (in the solver thread: it solves again), else NaN. */
static double
measure_out(tui *t, size_t layer, const rs_plan_entry *solved)
{
	rs_layer_analysis a = rs_engine_analysis(t->engine, layer);
	rs_apply_report rep;
	rs_error err;

	if (a.calib == NULL || a.whiten == NULL || !rs_method_is_solved(solved->method))
		return NAN;
	if (rs_apply_measure(t->model, &t->layers[layer], &a, solved, &rep, &err) != RS_OK)
		return NAN;
	return rep.measured_out;
}

static void *
solve_main(void *arg)
{
	tui *t = arg;
	tui_solver *sv = &t->solver;
	const rs_layer *l = &t->layers[sv->layer];
	size_t m = l->rows, n = l->cols, count = m * n;
	rs_combine_spec spec;
	rs_combine_result res;
	double *w = malloc(count * sizeof *w);
	rs_error err;
	rs_status st;
	ssize_t wr;

	memset(&res, 0, sizeof res);
	rs_plan_entry_combine_spec(l, &sv->entry, &spec);
	if (sv->view_only || rs_method_is_decomposition(sv->entry.method)) {
		/* a decomposition: its solve (unless only the view is wanted),
		 * then its view */
		rs_plan_entry solved = sv->entry;
		tui_decomp_view view;
		free(w);
		st = sv->view_only ? RS_OK :
		    rs_plan_entry_solve(l, t->spectra[sv->layer], &solved, t->path, &err);
		if (st == RS_OK && (solved.method == RS_METHOD_GROUPED ||
		                    solved.method == RS_METHOD_TUCKER2))
			st = tui_decomp_view_compute(l, &solved, t->path, &view, &err);
		else
			memset(&view, 0, sizeof view);
		if (st == RS_OK && !sv->view_only)
			solved.solved_out = measure_out(t, sv->layer, &solved);
		view.layer = sv->layer;
		pthread_mutex_lock(&sv->lock);
		sv->status = st;
		if (st != RS_OK)
			snprintf(sv->message, sizeof sv->message, "%s", err.msg);
		sv->solved = solved;
		sv->view = view;
		sv->done = true;
		pthread_mutex_unlock(&sv->lock);
		wr = write(t->wake_fd[1], "s", 1);
		(void)wr;
		return NULL;
	}
	if (w == NULL)
		st = rs_error_set(&err, RS_ENOMEM, "out of memory for layer '%s'", l->name);
	else
		st = rs_layer_load(l, w, m, t->path, &err);
	if (st == RS_OK)
		st = rs_combine(w, m, n, m, &spec, &sv->cancel, on_iteration, t, NULL, NULL,
		                &res, &err);
	free(w);
	sv->measured_out = NAN;
	if (st == RS_OK) {
		rs_plan_entry taken = sv->entry;

		rs_plan_entry_take_solve(l, &taken, &res);
		sv->measured_out = measure_out(t, sv->layer, &taken);
	}
	pthread_mutex_lock(&sv->lock);
	sv->status = st;
	if (st != RS_OK)
		snprintf(sv->message, sizeof sv->message, "%s", err.msg);
	sv->result = res;            /* its errors array is freed by collect */
	memset(&res, 0, sizeof res);
	sv->done = true;
	pthread_mutex_unlock(&sv->lock);
	rs_combine_result_free(&res);
	wr = write(t->wake_fd[1], "s", 1);
	(void)wr;
	return NULL;
}

void
tui_solver_init(tui *t)
{
	memset(&t->solver, 0, sizeof t->solver);
	pthread_mutex_init(&t->solver.lock, NULL);
	memset(&t->view, 0, sizeof t->view);
	t->view.layer = SIZE_MAX;
}

static bool
same_spec(const rs_plan_entry *a, const rs_plan_entry *b)
{
	return rs_method_is_solved(a->method) && rs_plan_entry_equal(a, b);
}

/* Takes a finished decomposition solve (or view) into the plan and view. */
static void
collect_decomposition(tui *t)
{
	tui_solver *sv = &t->solver;
	rs_plan_entry *e = &t->plan.entries[sv->layer];
	const rs_layer *l = &t->layers[sv->layer];

	if (!sv->view_only && same_spec(e, &sv->entry)) {
		if (sv->status != RS_OK) {
			tui_message(t, true, "%s: %s: %s", l->name, rs_method_name(e->method),
			            sv->message);
			*e = rs_plan_entry_dense();
		} else {
			*e = sv->solved;
			tui_message(t, false, "%s: %s solved, err_F %.4f", l->name,
			            rs_method_name(e->method), e->solved_error);
			/* the solve's result is not an edit of its own */
			if (t->nundo > 0 && same_spec(&t->undo[t->nundo - 1].entries[sv->layer],
			                              &sv->entry))
				t->undo[t->nundo - 1].entries[sv->layer] = *e;
		}
	}
	if (sv->view.nseries > 0) {
		tui_decomp_view_free(&t->view);
		t->view = sv->view;
	} else {
		tui_decomp_view_free(&sv->view);
	}
	memset(&sv->view, 0, sizeof sv->view);
}

/* Takes a finished solve's result into the plan (when still wanted). */
static void
collect(tui *t)
{
	tui_solver *sv = &t->solver;
	rs_plan_entry *e = &t->plan.entries[sv->layer];
	const rs_layer *l = &t->layers[sv->layer];

	pthread_join(sv->thread, NULL);
	sv->running = false;
	if (sv->view_only || rs_method_is_decomposition(sv->entry.method)) {
		collect_decomposition(t);
		return;
	}
	if (!same_spec(e, &sv->entry) || sv->status == RS_ECANCELLED) {
		rs_combine_result_free(&sv->result);
		return;   /* the entry changed while it was being solved */
	}
	if (sv->status != RS_OK) {
		tui_message(t, true, "%s: %s: %s", l->name, rs_method_name(sv->entry.method),
		            sv->message);
		*e = rs_plan_entry_dense();
		rs_combine_result_free(&sv->result);
		return;
	}
	/* The kernel never returns a combination worse than a single part at
	 * the same storage: when a part wins, the entry becomes that part. */
	rs_plan_entry_take_solve(l, e, &sv->result);
	if (rs_method_is_solved(e->method))
		e->solved_out = sv->measured_out;
	if (e->method == sv->entry.method)
		tui_message(t, false, "%s: %s solved in %zu iterations, err_F %.4f", l->name,
		            sv->entry.method == RS_METHOD_LOWRANK_SPARSE ? "low rank + sparse" :
		            rs_method_name(sv->entry.method), sv->iteration, e->solved_error);
	else
		tui_message(t, false, "%s: %s alone beats the combination at its storage: using it",
		            l->name, e->method == RS_METHOD_LOWRANK ? "low rank" :
		            e->method == RS_METHOD_PRUNE ? "pruning" : "quantisation");
	rs_combine_result_free(&sv->result);
	/* the solve's result is not an edit of its own */
	if (t->nundo > 0) {
		rs_plan_entry *u = &t->undo[t->nundo - 1].entries[sv->layer];
		if (same_spec(u, &sv->entry))
			*u = *e;
	}
}

void
tui_solver_poll(tui *t)
{
	tui_solver *sv = &t->solver;
	size_t i;

	if (sv->running) {
		bool done;
		pthread_mutex_lock(&sv->lock);
		done = sv->done;
		pthread_mutex_unlock(&sv->lock);
		if (done)
			collect(t);
		else if (!same_spec(&t->plan.entries[sv->layer], &sv->entry))
			sv->cancel = 1;   /* checked between iterations */
		if (sv->running)
			return;
	}
	for (i = 0; i <= t->nlayers; i++) {
		const rs_plan_entry *e;
		bool view_only = i == t->nlayers;
		if (view_only) {
			/* nothing to solve: the selected layer's view, if it lacks one */
			i = tui_selected_layer(t);
			if (i == SIZE_MAX)
				return;
			e = &t->plan.entries[i];
			if ((e->method != RS_METHOD_GROUPED && e->method != RS_METHOD_TUCKER2) ||
			    isnan(e->solved_error) ||
			    (t->view.layer == i && rs_plan_entry_equal(&t->view.entry, e)))
				return;
		} else {
			e = &t->plan.entries[i];
			if (!rs_method_is_solved(e->method) || !isnan(e->solved_error) ||
			    t->spectra[i] == NULL)
				continue;
		}
		sv->layer = i;
		sv->entry = *e;
		sv->view_only = view_only;
		sv->cancel = 0;
		sv->done = false;
		sv->iteration = 0;
		sv->error = NAN;
		if (pthread_create(&sv->thread, NULL, solve_main, t) != 0) {
			tui_message(t, true, "cannot start a solver thread");
			if (!view_only)
				t->plan.entries[i] = rs_plan_entry_dense();
			return;
		}
		sv->running = true;
		return;
	}
}

void
tui_solver_stop(tui *t)
{
	if (t->solver.running) {
		t->solver.cancel = 1;
		pthread_join(t->solver.thread, NULL);
		t->solver.running = false;
		rs_combine_result_free(&t->solver.result);
		tui_decomp_view_free(&t->solver.view);
	}
	pthread_mutex_destroy(&t->solver.lock);
	tui_decomp_view_free(&t->view);
}
