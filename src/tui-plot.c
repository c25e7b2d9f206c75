/*
 * tui-plot.c — the selected layer's spectrum: singular values on a log
 * scale (kept ones bright, discarded ones dim), a marker row for the chosen
 * rank, the 90/99 % energy ranks and the break-even rank, and the
 * cumulative energy curve on a linear scale beneath, sharing the x axis.
 */
#include "config.h"

#include <curses.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "tui.h"

#define MARGIN 9   /* axis labels left of the plots */

/* Eighths of a cell, bottom-up. */
static const char *const blocks_utf8[9] = {
	" ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588",
};
static const char *const blocks_ascii[9] = {
	" ", " ", " ", ".", ".", ":", ":", "#", "#",
};

typedef struct plot_axis {
	size_t k;
	int width;        /* columns available */
	int cell;         /* columns per index when k <= width, else 0 */
} plot_axis;

static int
column_of(const plot_axis *a, size_t index)
{
	if (a->cell > 0)
		return (int)index * a->cell;
	return (int)((double)index * a->width / (double)a->k);
}

/* First index shown in a column (bucketed when k > width). */
static size_t
index_of(const plot_axis *a, int column)
{
	if (a->cell > 0)
		return (size_t)(column / a->cell);
	return (size_t)((double)column * (double)a->k / a->width);
}

/* Draws one column of height `fraction` (0..1) of `rows` rows. */
static void
draw_bar(tui *t, int bottom, int x, int rows, double fraction, int attr)
{
	const char *const *blocks = t->utf8 ? blocks_utf8 : blocks_ascii;
	long eighths = lround(fraction * rows * 8);
	int y;

	attron(attr);
	for (y = 0; y < rows; y++, eighths -= 8) {
		long e = eighths >= 8 ? 8 : eighths > 0 ? eighths : 0;
		if (e > 0)
			mvaddstr(bottom - y, x, blocks[e]);
	}
	attroff(attr);
}

static void
put_marker(tui *t, int y, int x, const char *utf8, const char *ascii, int attr)
{
	attron(attr);
	mvaddstr(y, x, t->utf8 ? utf8 : ascii);
	attroff(attr);
}

/*
 * Pruning: the exact error curve over sparsity 0..1 (unstructured, or the
 * layer's channel side), the chosen sparsity marked, and a histogram of
 * log10 |w| beneath (where the threshold falls).
 */
static void
draw_prune(tui *t, tui_rect r, size_t layer)
{
	const rs_layer_analysis *a = &t->analyses[layer];
	const rs_plan_entry *e = &t->plan.entries[layer];
	const rs_layer *l = &t->layers[layer];
	const rs_magnitudes *mg = a->magnitudes;
	int w = r.w - MARGIN, ch = (r.h - 4) * 3 / 5, hh = r.h - 4 - ch, c, y0 = r.y;
	size_t side = e->method == RS_METHOD_PRUNE_ROWS ? l->rows :
	              e->method == RS_METHOD_PRUNE_COLS ? l->cols : mg->count;
	size_t *hist = NULL, peak = 1, i;
	double lo, hi;
	char legend[160];

	mvprintw(y0, r.x, "%.*s %zux%zu  %s error", r.w - 30, l->name, l->rows, l->cols,
	         rs_method_name(e->method));
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + 1, r.x, "%8s", "err 1");
	mvprintw(y0 + ch, r.x, "%8s", "0");
	attroff(tui_attr(t, TUI_PAIR_DIM));
	for (c = 0; c < w; c++) {
		double p = (double)c / (double)(w > 1 ? w - 1 : 1), err;
		size_t d = (size_t)floor(p * (double)side);
		if (e->method == RS_METHOD_PRUNE_ROWS)
			err = rs_analysis_prune_outputs_error(a, d);
		else if (e->method == RS_METHOD_PRUNE_COLS)
			err = rs_analysis_prune_inputs_error(a, d);
		else
			err = rs_prune_error(mg, rs_prune_dropped(mg->count, p));
		draw_bar(t, y0 + ch, r.x + MARGIN + c, ch, err,
		         tui_attr(t, p <= e->sparsity ? TUI_PAIR_BAR : TUI_PAIR_DIM));
	}
	put_marker(t, y0 + ch + 1, r.x + MARGIN + (int)lround(e->sparsity * (w - 1)), "\u25b2",
	           "^", tui_attr(t, TUI_PAIR_MARK) | A_BOLD);
	/* |w| histogram on a log scale, the pruning threshold marked */
	hi = mg->count ? mg->sorted_abs[mg->count - 1] : 0;
	lo = hi;
	for (i = 0; i < mg->count; i++)
		if (mg->sorted_abs[i] > 0) {
			lo = mg->sorted_abs[i];
			break;
		}
	if (hi > 0 && hh > 1 && w > 0) {
		hist = calloc((size_t)w, sizeof *hist);
		for (i = 0; hist && i < mg->count; i++) {
			double v = mg->sorted_abs[i];
			int b = v <= lo ? 0 : hi == lo ? w - 1 :
			        (int)((log(v) - log(lo)) / (log(hi) - log(lo)) * (w - 1));
			hist[b < 0 ? 0 : b >= w ? w - 1 : b]++;
		}
		for (c = 0; hist && c < w; c++)
			if (hist[c] > peak)
				peak = hist[c];
		attron(tui_attr(t, TUI_PAIR_DIM));
		mvprintw(y0 + ch + 2, r.x, "%8s", "|w| hist");
		mvprintw(y0 + ch + 1 + hh, r.x, "%8.2g", lo);
		attroff(tui_attr(t, TUI_PAIR_DIM));
		for (c = 0; hist && c < w; c++)
			draw_bar(t, y0 + ch + 1 + hh, r.x + MARGIN + c, hh,
			         (double)hist[c] / (double)peak, tui_attr(t, TUI_PAIR_ENERGY));
		free(hist);
	}
	snprintf(legend, sizeof legend, "sparsity %.2f: err_F %.4f  (|w| from %.2g to %.2g)",
	         e->sparsity, e->method == RS_METHOD_PRUNE ?
	         rs_prune_error(mg, rs_prune_dropped(mg->count, e->sparsity)) :
	         e->method == RS_METHOD_PRUNE_ROWS ?
	         rs_analysis_prune_outputs_error(a, (size_t)floor(e->sparsity * l->rows)) :
	         rs_analysis_prune_inputs_error(a, (size_t)floor(e->sparsity * l->cols)), lo, hi);
	mvprintw(y0 + r.h - 1, r.x, "%.*s", r.w, legend);
}

/* Quantisation: error at 1..8 bits for every quantiser, as a table with
 * the current choice highlighted. */
static void
draw_quant(tui *t, tui_rect r, size_t layer)
{
	const rs_quant_curve *qc = t->analyses[layer].quant;
	const rs_plan_entry *e = &t->plan.entries[layer];
	const rs_layer *l = &t->layers[layer];
	int q, y = r.y;
	unsigned b;

	mvprintw(y++, r.x, "%.*s %zux%zu  relative error by bits", r.w - 30, l->name,
	         l->rows, l->cols);
	mvprintw(y++, r.x, "%-16s", "quantiser");
	for (b = 1; b <= RS_QUANT_CURVE_BITS && r.x + 16 + 7 * (int)b <= r.x + r.w; b++)
		mvprintw(y - 1, r.x + 16 + 7 * ((int)b - 1), "%6ub", b);
	for (q = 0; q < RS_QUANT_COUNT && y < r.y + r.h - 1; q++, y++) {
		mvprintw(y, r.x, "%-16s", rs_quantizer_name((rs_quantizer)q));
		for (b = 1; b <= RS_QUANT_CURVE_BITS && r.x + 16 + 7 * (int)b <= r.x + r.w; b++) {
			bool chosen = (rs_quantizer)q == e->quantizer && b == e->bits;
			bool fixed = q == RS_QUANT_BINARY || q == RS_QUANT_TERNARY;
			if (fixed && b > 1)
				break;
			if (chosen)
				attron(A_REVERSE | A_BOLD);
			mvprintw(y, r.x + 16 + 7 * ((int)b - 1), "%7.4f", qc->err[q][b]);
			if (chosen)
				attroff(A_REVERSE | A_BOLD);
		}
	}
	mvprintw(r.y + r.h - 1, r.x, "%.*s", r.w,
	         "b B change bits, Q changes the quantiser; binary is 1 bit, ternary 2");
}

/*
 * What the spectrum view plots: the weights' singular values and the
 * energy the plain truncation keeps, or in the output norm the singular
 * values of W L (whiten.h) and the output energy the whitened truncation
 * keeps, 1 - err_out^2, from its tabulated output tail.
 */
typedef struct plot_series {
	size_t k;
	const double *sigma;
	const rs_spectrum *s;
	const rs_whiten *wh;       /* the output norm's, or NULL */
} plot_series;

static double
series_energy(const plot_series *p, size_t rank)
{
	double e;

	if (p->wh == NULL)
		return rs_spectrum_energy(p->s, rank);
	e = rs_whiten_out_err(p->wh, rank);
	return 1 - e * e;
}

static size_t
series_rank_for_energy(const plot_series *p, double fraction)
{
	if (p->wh == NULL)
		return rs_spectrum_rank_for_energy(p->s, fraction);
	return rs_whiten_rank_for_out_err(p->wh, sqrt(1 - fraction));
}

void
tui_plot_draw(tui *t, tui_rect r)
{
	size_t layer = tui_selected_layer(t), rank, r90, r99, be, i;
	const rs_spectrum *s;
	const rs_layer *l;
	plot_axis axis;
	plot_series p;
	int sh, eh, c, y0 = r.y;
	double hi, lo;
	char legend[160];

	t->plot_rect = r;
	if (layer == SIZE_MAX || r.w < MARGIN + 10 || r.h < 8)
		return;
	l = &t->layers[layer];
	s = t->spectra[layer];
	mvprintw(y0, r.x, "%.*s %zux%zu", r.w - 14, l->name, l->rows, l->cols);
	if (s == NULL) {
		const char *failed = rs_engine_error(t->engine, layer);
		attron(failed ? tui_attr(t, TUI_PAIR_ERROR) : tui_attr(t, TUI_PAIR_DIM));
		mvprintw(y0 + 2, r.x, "%.*s", r.w, failed ? "spectrum failed (see the log line)" :
		         "spectrum pending: computing in the background");
		attroff(A_COLOR | A_BOLD | A_DIM);
		return;
	}
	if (s->k == 0)
		return;
	if (t->plan.entries[layer].method == RS_METHOD_GROUPED ||
	    t->plan.entries[layer].method == RS_METHOD_TUCKER2) {
		tui_decomp_draw(t, r, layer);
		return;
	}
	if (t->analyses[layer].magnitudes != NULL) {
		rs_method m = t->plan.entries[layer].method;
		if (m == RS_METHOD_PRUNE || m == RS_METHOD_PRUNE_ROWS || m == RS_METHOD_PRUNE_COLS) {
			draw_prune(t, r, layer);
			return;
		}
		if (m == RS_METHOD_QUANT && t->analyses[layer].quant != NULL) {
			draw_quant(t, r, layer);
			return;
		}
	}

	p.s = s;
	p.wh = t->output_norm ? t->analyses[layer].whiten : NULL;
	p.k = p.wh ? p.wh->k : s->k;
	p.sigma = p.wh ? p.wh->sigma : s->sigma;
	if (p.k == 0)
		return;
	if (t->output_norm) {
		/* after the name: which spectrum this is */
		snprintf(legend, sizeof legend, "%.*s %zux%zu  %s", r.w - 14, l->name, l->rows,
		         l->cols, p.wh ? "whitened (output norm)" : "weight spectrum");
		mvprintw(y0, r.x, "%-*.*s", r.w, r.w, legend);
	}
	axis.k = p.k;
	axis.width = r.w - MARGIN;
	axis.cell = p.k <= (size_t)axis.width ? axis.width / (int)p.k : 0;
	/* rows: title, sigma plot, marker row, energy plot, two legend rows */
	sh = (r.h - 4) * 3 / 5;
	eh = r.h - 4 - sh;
	hi = p.sigma[0];
	lo = hi;
	for (i = 0; i < p.k; i++)
		if (p.sigma[i] > 0 && p.sigma[i] < lo)
			lo = p.sigma[i];
	if (lo < hi * 1e-12)
		lo = hi * 1e-12;
	rank = tui_edit_current_rank(t, layer);

	/* singular values, log scale */
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + 1, r.x, "%8.3g", hi);
	mvprintw(y0 + sh, r.x, "%8.3g", lo);
	mvprintw(y0 + 1 + sh / 2, r.x, "%8s", p.wh ? "sigma WL" : "sigma");
	attroff(tui_attr(t, TUI_PAIR_DIM));
	for (c = 0; c < axis.width; c++) {
		size_t idx = index_of(&axis, c);
		double v, frac;
		if (idx >= p.k || (axis.cell > 0 && c % axis.cell == axis.cell - 1 && axis.cell > 1))
			continue;
		v = p.sigma[idx];
		frac = v <= 0 ? 0 : hi == lo ? 1 : (log(v) - log(lo)) / (log(hi) - log(lo));
		/* the smallest value still gets a sliver, so zero is distinguishable */
		if (v > 0 && frac < 1.0 / (8.0 * sh))
			frac = 1.0 / (8.0 * sh);
		draw_bar(t, y0 + sh, r.x + MARGIN + c, sh, frac,
		         tui_attr(t, idx < rank ? TUI_PAIR_BAR : TUI_PAIR_DIM));
	}

	/* markers: chosen rank last so it wins a shared column */
	r90 = series_rank_for_energy(&p, 0.90);
	r99 = series_rank_for_energy(&p, 0.99);
	be = rs_lowrank_breakeven(l->rows, l->cols);
	if (r90 > 0)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, r90 - 1), "9", "9",
		           tui_attr(t, TUI_PAIR_ENERGY));
	if (r99 > 0)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, r99 - 1), "#", "#",
		           tui_attr(t, TUI_PAIR_ENERGY));
	if (be > 0 && be <= p.k)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, be - 1), "B", "B",
		           tui_attr(t, TUI_PAIR_ERROR));
	put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, rank - 1), "\u25b2", "^",
	           tui_attr(t, TUI_PAIR_MARK) | A_BOLD);

	/* cumulative energy, linear scale */
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + sh + 2, r.x, "%8s", "100%");
	mvprintw(y0 + sh + 1 + eh, r.x, "%8s", p.wh ? "out enrg" : "energy");
	attroff(tui_attr(t, TUI_PAIR_DIM));
	for (c = 0; c < axis.width; c++) {
		size_t idx = index_of(&axis, c);
		if (idx >= p.k || (axis.cell > 1 && c % axis.cell == axis.cell - 1))
			continue;
		draw_bar(t, y0 + sh + 1 + eh, r.x + MARGIN + c, eh, series_energy(&p, idx + 1),
		         tui_attr(t, idx < rank ? TUI_PAIR_ENERGY : TUI_PAIR_DIM));
	}

	/* legend, two rows cut to the panel */
	if (t->output_norm && p.wh == NULL) {
		/* the output norm, but this layer has only weight figures: why */
		const char *why = tui_no_output_reason(t, layer);
		attron(tui_attr(t, TUI_PAIR_DIM));
		mvprintw(y0 + r.h - 2, r.x, "%.*s", r.w, why ? why : "");
		attroff(tui_attr(t, TUI_PAIR_DIM));
	} else {
		put_marker(t, y0 + r.h - 2, r.x, "\u25b2", "^", tui_attr(t, TUI_PAIR_MARK) | A_BOLD);
		snprintf(legend, sizeof legend, "rank %zu keeps %.2f%% of the %senergy", rank,
		         100.0 * series_energy(&p, rank), p.wh ? "output " : "");
		mvprintw(y0 + r.h - 2, r.x + 2, "%.*s", r.w - 2, legend);
	}
	snprintf(legend, sizeof legend, "9 90%%:%zu  # 99%%:%zu  B break-even:%zu", r90, r99, be);
	mvprintw(y0 + r.h - 1, r.x, "%.*s", r.w, legend);
}
