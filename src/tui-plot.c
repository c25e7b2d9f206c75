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

void
tui_plot_draw(tui *t, tui_rect r)
{
	size_t layer = tui_selected_layer(t), rank, r90, r99, be, i;
	const rs_spectrum *s;
	const rs_layer *l;
	plot_axis axis;
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

	axis.k = s->k;
	axis.width = r.w - MARGIN;
	axis.cell = s->k <= (size_t)axis.width ? axis.width / (int)s->k : 0;
	/* rows: title, sigma plot, marker row, energy plot, two legend rows */
	sh = (r.h - 4) * 3 / 5;
	eh = r.h - 4 - sh;
	hi = s->sigma[0];
	lo = hi;
	for (i = 0; i < s->k; i++)
		if (s->sigma[i] > 0 && s->sigma[i] < lo)
			lo = s->sigma[i];
	if (lo < hi * 1e-12)
		lo = hi * 1e-12;
	rank = tui_edit_current_rank(t, layer);

	/* singular values, log scale */
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + 1, r.x, "%8.3g", hi);
	mvprintw(y0 + sh, r.x, "%8.3g", lo);
	mvprintw(y0 + 1 + sh / 2, r.x, "%8s", "sigma");
	attroff(tui_attr(t, TUI_PAIR_DIM));
	for (c = 0; c < axis.width; c++) {
		size_t idx = index_of(&axis, c);
		double v, frac;
		if (idx >= s->k || (axis.cell > 0 && c % axis.cell == axis.cell - 1 && axis.cell > 1))
			continue;
		v = s->sigma[idx];
		frac = v <= 0 ? 0 : hi == lo ? 1 : (log(v) - log(lo)) / (log(hi) - log(lo));
		/* the smallest value still gets a sliver, so zero is distinguishable */
		if (v > 0 && frac < 1.0 / (8.0 * sh))
			frac = 1.0 / (8.0 * sh);
		draw_bar(t, y0 + sh, r.x + MARGIN + c, sh, frac,
		         tui_attr(t, idx < rank ? TUI_PAIR_BAR : TUI_PAIR_DIM));
	}

	/* markers: chosen rank last so it wins a shared column */
	r90 = rs_spectrum_rank_for_energy(s, 0.90);
	r99 = rs_spectrum_rank_for_energy(s, 0.99);
	be = rs_lowrank_breakeven(l->rows, l->cols);
	if (r90 > 0)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, r90 - 1), "9", "9",
		           tui_attr(t, TUI_PAIR_ENERGY));
	if (r99 > 0)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, r99 - 1), "#", "#",
		           tui_attr(t, TUI_PAIR_ENERGY));
	if (be > 0 && be <= s->k)
		put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, be - 1), "B", "B",
		           tui_attr(t, TUI_PAIR_ERROR));
	put_marker(t, y0 + sh + 1, r.x + MARGIN + column_of(&axis, rank - 1), "\u25b2", "^",
	           tui_attr(t, TUI_PAIR_MARK) | A_BOLD);

	/* cumulative energy, linear scale */
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + sh + 2, r.x, "%8s", "100%");
	mvprintw(y0 + sh + 1 + eh, r.x, "%8s", "energy");
	attroff(tui_attr(t, TUI_PAIR_DIM));
	for (c = 0; c < axis.width; c++) {
		size_t idx = index_of(&axis, c);
		if (idx >= s->k || (axis.cell > 1 && c % axis.cell == axis.cell - 1))
			continue;
		draw_bar(t, y0 + sh + 1 + eh, r.x + MARGIN + c, eh,
		         rs_spectrum_energy(s, idx + 1),
		         tui_attr(t, idx < rank ? TUI_PAIR_ENERGY : TUI_PAIR_DIM));
	}

	/* legend, two rows cut to the panel */
	put_marker(t, y0 + r.h - 2, r.x, "\u25b2", "^", tui_attr(t, TUI_PAIR_MARK) | A_BOLD);
	snprintf(legend, sizeof legend, "rank %zu keeps %.2f%% of the energy", rank,
	         100.0 * rs_spectrum_energy(s, rank));
	mvprintw(y0 + r.h - 2, r.x + 2, "%.*s", r.w - 2, legend);
	snprintf(legend, sizeof legend, "9 90%%:%zu  # 99%%:%zu  B break-even:%zu", r90, r99, be);
	mvprintw(y0 + r.h - 1, r.x, "%.*s", r.w, legend);
}
