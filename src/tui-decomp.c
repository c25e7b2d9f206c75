/*
 * tui-decomp.c — the decompositions in the workbench (grouped SVD,
 * Tucker-2, CP, TT): their default parameters when picked from the method
 * menu, what the rank keys and the group and fold keys do to them, and
 * their view: the per-group spectra of a grouped SVD, the two mode spectra
 * of Tucker-2 (computed with the solve in the background, tui-solver.c).
 */
#include "config.h"

#include <curses.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/grouped.h"
#include "rankscope/tt.h"
#include "rankscope/tucker.h"
#include "tui.h"

/* The smallest group count >= 2 dividing n after (delta > 0) or before
 * (delta < 0) g; g itself when there is none. */
static size_t
next_groups(size_t n, size_t g, int delta)
{
	size_t h;

	if (delta > 0) {
		for (h = g + 1; h <= n; h++)
			if (n % h == 0)
				return h;
	} else {
		for (h = g - 1; h >= 2; h--)
			if (n % h == 0)
				return h;
	}
	return g;
}

/* Clamps an entry's ranks to what its layer allows and marks it unsolved. */
static void
clamp(const rs_layer *l, rs_plan_entry *e)
{
	size_t dims[4], m, n, k, i;

	rs_layer_kernel_dims(l, dims);
	rs_plan_entry_matrix(l, e, &m, &n);
	if (e->rank < 1)
		e->rank = 1;
	switch (e->method) {
	case RS_METHOD_GROUPED:
		k = m < n / e->groups ? m : n / e->groups;
		if (e->rank > k)
			e->rank = k;
		break;
	case RS_METHOD_TUCKER2:
		if (e->rank > dims[0])
			e->rank = dims[0];
		if (e->rank_in < 1)
			e->rank_in = 1;
		if (e->rank_in > dims[1])
			e->rank_in = dims[1];
		break;
	case RS_METHOD_TT:
		for (i = 1; i < e->tt_d; i++)
			if (e->tt_ranks[i] < 1)
				e->tt_ranks[i] = 1;
		break;
	default:
		break;
	}
	e->solved_error = NAN;     /* solved again in the background */
}

void
tui_decomp_defaults(const tui *t, size_t layer, rs_method method, rs_plan_entry *e)
{
	const rs_layer *l = &t->layers[layer];
	size_t dims[4], k = l->rows < l->cols ? l->rows : l->cols, i;

	rs_layer_kernel_dims(l, dims);
	*e = rs_plan_entry_dense();
	e->method = method;
	e->rank = k / 4 ? k / 4 : 1;
	switch (method) {
	case RS_METHOD_GROUPED:
		e->fold = l->kind == RS_LAYER_CONV ? l->fold : RS_FOLD_NONE;
		e->groups = next_groups(l->cols, 1, 1);
		break;
	case RS_METHOD_TUCKER2:
		e->rank = dims[0] / 4 ? dims[0] / 4 : 1;
		e->rank_in = dims[1] / 4 ? dims[1] / 4 : 1;
		break;
	case RS_METHOD_TT:
		/* three balanced modes each side, every TT-rank capped alike */
		e->tt_d = 3;
		rs_tt_balanced_modes(l->rows, e->tt_d, e->tt_rows);
		rs_tt_balanced_modes(l->cols, e->tt_d, e->tt_cols);
		for (i = 1; i < e->tt_d; i++)
			e->tt_ranks[i] = e->rank;
		e->tt_ranks[0] = e->tt_ranks[e->tt_d] = 1;
		break;
	default:
		break;
	}
	clamp(l, e);
}

size_t
tui_decomp_rank(const rs_plan_entry *e)
{
	size_t i, r = 0;

	if (e->method != RS_METHOD_TT)
		return e->rank;
	for (i = 1; i < e->tt_d; i++)
		if (e->tt_ranks[i] > r)
			r = e->tt_ranks[i];
	return r;
}

void
tui_decomp_set_rank(tui *t, size_t layer, size_t rank)
{
	rs_plan_entry *e = &t->plan.entries[layer];
	const rs_layer *l = &t->layers[layer];
	size_t i;

	if (e->method == RS_METHOD_TUCKER2) {
		/* the rank keys move r_out; r_in keeps its share of the inputs */
		double share = (double)e->rank_in / (double)(e->rank ? e->rank : 1);
		e->rank = rank;
		e->rank_in = (size_t)fmax(1.0, floor(share * (double)rank + 0.5));
	} else if (e->method == RS_METHOD_TT) {
		for (i = 1; i < e->tt_d; i++)
			e->tt_ranks[i] = rank;
	} else {
		e->rank = rank;
	}
	clamp(l, e);
}

void
tui_decomp_cycle_groups(tui *t, int delta)
{
	size_t layer = tui_selected_layer(t), g, m, n;
	rs_plan_entry *e;

	if (!tui_edit_begin_nudge(t, layer))
		return;
	e = &t->plan.entries[layer];
	if (e->method != RS_METHOD_GROUPED) {
		size_t rank = e->method == RS_METHOD_LOWRANK ? e->rank : 0;
		tui_decomp_defaults(t, layer, RS_METHOD_GROUPED, e);
		if (rank > 0)
			tui_decomp_set_rank(t, layer, rank);
	} else {
		rs_plan_entry_matrix(&t->layers[layer], e, &m, &n);
		g = next_groups(n, e->groups, delta);
		if (g == e->groups) {
			tui_message(t, false, "%zu groups: no %s group count divides %zu columns",
			            g, delta > 0 ? "larger" : "smaller", n);
			return;
		}
		e->groups = g;
		clamp(&t->layers[layer], e);
	}
	tui_message(t, false, "%s: grouped SVD, %zu groups", t->layers[layer].name, e->groups);
}

void
tui_decomp_cycle_fold(tui *t)
{
	size_t layer = tui_selected_layer(t), m, n;
	const rs_layer *l;
	rs_plan_entry *e;
	int f;

	if (layer == SIZE_MAX)
		return;
	l = &t->layers[layer];
	e = &t->plan.entries[layer];
	if (l->kind != RS_LAYER_CONV || e->method != RS_METHOD_GROUPED) {
		tui_message(t, false, "f changes the fold of a grouped SVD of a conv layer (c picks one)");
		return;
	}
	if (!tui_edit_begin_nudge(t, layer))
		return;
	/* the next fold under which the group count still divides the columns */
	for (f = 1; f <= RS_FOLD_COUNT; f++) {
		rs_plan_entry c = *e;
		c.fold = (e->fold + f) % RS_FOLD_COUNT;
		rs_plan_entry_matrix(l, &c, &m, &n);
		if (n % e->groups == 0) {
			e->fold = c.fold;
			break;
		}
	}
	rs_plan_entry_matrix(l, e, &m, &n);
	clamp(l, e);
	tui_message(t, false, "%s: grouped under fold %d (%zux%zu)", l->name, e->fold, m, n);
}

/* ---- the view ---- */

void
tui_decomp_view_free(tui_decomp_view *v)
{
	size_t i;

	for (i = 0; i < v->nseries; i++)
		free(v->series[i]);
	memset(v, 0, sizeof *v);
	v->layer = SIZE_MAX;
}

rs_status
tui_decomp_view_compute(const rs_layer *layer, const rs_plan_entry *e, const char *path,
                        tui_decomp_view *v, rs_error *err)
{
	size_t dims[4], i, count = layer->rows * layer->cols;
	double *w = malloc(count * sizeof *w);
	rs_layer folded = *layer;
	rs_status st = RS_OK;

	memset(v, 0, sizeof *v);
	v->entry = *e;
	if (w == NULL)
		return rs_error_set(err, RS_ENOMEM, "out of memory");
	if (e->method == RS_METHOD_GROUPED) {
		rs_grouped *g = NULL;
		if (layer->kind == RS_LAYER_CONV && e->fold != RS_FOLD_NONE)
			st = rs_layer_set_fold(&folded, e->fold, err);
		if (st == RS_OK)
			st = rs_layer_load(&folded, w, folded.rows, path, err);
		if (st == RS_OK) {
			g = rs_grouped_new(w, folded.rows, folded.cols, folded.rows, e->groups, 0, err);
			st = g ? RS_OK : err->code;
		}
		for (i = 0; g && i < g->groups && i < TUI_VIEW_SERIES; i++) {
			v->series[i] = malloc(g->k * sizeof **v->series);
			if (v->series[i] == NULL)
				break;
			memcpy(v->series[i], g->sigma + i * g->k, g->k * sizeof **v->series);
			v->len[i] = g->k;
			v->label[i] = (char)('1' + i);
			v->mark[i] = e->rank;
			v->nseries++;
		}
		v->total = g ? g->groups : 0;
		rs_grouped_free(g);
	} else if (e->method == RS_METHOD_TUCKER2) {
		rs_tucker_modes *m = NULL;
		rs_layer_kernel_dims(layer, dims);
		st = rs_layer_load_tensor(layer, w, path, err);
		if (st == RS_OK) {
			m = rs_tucker_modes_new(w, dims[0], dims[1], dims[2], dims[3], err);
			st = m ? RS_OK : err->code;
		}
		if (m != NULL) {
			v->series[0] = malloc(m->k_out * sizeof **v->series);
			v->series[1] = malloc(m->k_in * sizeof **v->series);
			if (v->series[0] && v->series[1]) {
				memcpy(v->series[0], m->sigma_out, m->k_out * sizeof **v->series);
				memcpy(v->series[1], m->sigma_in, m->k_in * sizeof **v->series);
				v->len[0] = m->k_out;
				v->len[1] = m->k_in;
				v->label[0] = 'o';
				v->label[1] = 'i';
				v->mark[0] = e->rank;
				v->mark[1] = e->rank_in;
				v->nseries = 2;
			}
			v->total = 2;
		}
		rs_tucker_modes_free(m);
	}
	free(w);
	return st;
}

/* The scatter of every series on one log scale: each value a dot of its
 * series' label, bold where it is kept (index below the series' mark). */
void
tui_decomp_draw(tui *t, tui_rect r, size_t layer)
{
	const tui_decomp_view *v = &t->view;
	const rs_plan_entry *e = &t->plan.entries[layer];
	const rs_layer *l = &t->layers[layer];
	size_t s, i, longest = 0;
	double hi = 0, lo = INFINITY;
	int ph = r.h - 4, pw = r.w - 9, y;

	char line[256];

	if (e->method == RS_METHOD_GROUPED && e->fold != RS_FOLD_NONE)
		snprintf(line, sizeof line, "%s: %zu groups, rank %zu each, fold %d", l->name,
		         e->groups, e->rank, e->fold);
	else if (e->method == RS_METHOD_GROUPED)
		snprintf(line, sizeof line, "%s: %zu groups, rank %zu each", l->name, e->groups,
		         e->rank);
	else
		snprintf(line, sizeof line, "%s: Tucker-2 ranks %zu out, %zu in", l->name, e->rank,
		         e->rank_in);
	mvprintw(r.y, r.x, "%.*s", r.w, line);
	if (v->layer != layer || !rs_plan_entry_equal(&v->entry, e) || v->nseries == 0) {
		attron(tui_attr(t, TUI_PAIR_DIM));
		mvprintw(r.y + 2, r.x, "%.*s", r.w, "spectra being computed in the background");
		attroff(A_COLOR | A_BOLD | A_DIM);
		return;
	}
	for (s = 0; s < v->nseries; s++) {
		if (v->len[s] > longest)
			longest = v->len[s];
		for (i = 0; i < v->len[s]; i++) {
			if (v->series[s][i] > hi)
				hi = v->series[s][i];
			if (v->series[s][i] > 0 && v->series[s][i] < lo)
				lo = v->series[s][i];
		}
	}
	if (ph < 3 || pw < 10 || hi <= 0 || longest == 0)
		return;
	if (lo < hi * 1e-12)
		lo = hi * 1e-12;
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(r.y + 1, r.x, "%8.3g", hi);
	mvprintw(r.y + ph, r.x, "%8.3g", lo);
	attroff(A_COLOR | A_BOLD | A_DIM);
	for (s = 0; s < v->nseries; s++)
		for (i = 0; i < v->len[s]; i++) {
			double x = v->series[s][i], frac;
			int col = (int)((double)i * pw / (double)longest), row;
			if (x <= 0)
				continue;
			frac = hi == lo ? 1 : (log(x) - log(lo)) / (log(hi) - log(lo));
			row = r.y + ph - (int)floor(frac * (ph - 1) + 0.5);
			attron(tui_attr(t, i < v->mark[s] ? TUI_PAIR_BAR : TUI_PAIR_DIM) |
			       (i < v->mark[s] ? A_BOLD : 0));
			mvaddch(row, r.x + 9 + col, (chtype)v->label[s]);
			attroff(A_COLOR | A_BOLD | A_DIM);
		}
	y = r.y + r.h - 2;
	if (e->method == RS_METHOD_GROUPED)
		snprintf(line, sizeof line, "1-%c: %s singular values (bright: kept)",
		         '0' + (int)v->nseries, v->total > v->nseries ? "the first groups'" :
		         "each group's");
	else
		snprintf(line, sizeof line, "o: output-mode, i: input-mode singular values "
		         "(bright: kept)");
	mvprintw(y, r.x, "%.*s", r.w, line);
	mvprintw(y + 1, r.x, "%.*s", r.w, e->method == RS_METHOD_GROUPED ?
	         "c C fewer / more groups, f fold, Left/Right rank per group" :
	         "Left/Right scale both ranks");
}
