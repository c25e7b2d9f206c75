/*
 * tui-table.c — the layer table: which layers are visible (filter), in
 * what order (sort), which is selected, and how rows look.
 */
#include "config.h"

#include <curses.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "tui.h"

static const char *const sort_names[TUI_SORT_COUNT] = {
	[TUI_SORT_FILE] = "network order",
	[TUI_SORT_NAME] = "name",
	[TUI_SORT_SIZE] = "size",
	[TUI_SORT_ERROR] = "error",
	[TUI_SORT_COMPRESSIBLE] = "compressibility",
};

const char *
tui_sort_name(tui_sort sort)
{
	return sort_names[sort];
}

size_t
tui_selected_layer(const tui *t)
{
	return t->nvisible ? t->order[t->selected] : SIZE_MAX;
}

static bool
filter_match(const char *filter, const char *name)
{
	if (filter[0] == '\0')
		return true;
	/* A pattern with wildcards is a glob; anything else a substring. */
	if (strpbrk(filter, "*?[") != NULL)
		return fnmatch(filter, name, 0) == 0;
	return strstr(name, filter) != NULL;
}

double
tui_shown_error(const tui *t, const rs_plan_figures *f)
{
	return t->output_norm ? f->out_err : f->err_fro;
}

void
tui_format_out_err(char *buf, size_t len, const rs_plan_figures *f)
{
	if (isnan(f->out_err))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s%.4f", f->out_is_estimate ? "~" : "", f->out_err);
}

const char *
tui_no_output_reason(const tui *t, size_t layer)
{
	const char *why;

	if (!t->calibrated || t->analyses[layer].whiten != NULL)
		return NULL;
	if ((why = rs_engine_calib_error(t->engine, layer)) != NULL)
		return why;
	/* the output figures arrive with the statistics, after the spectrum */
	if (t->analyses[layer].magnitudes == NULL && rs_engine_error(t->engine, layer) == NULL)
		return "its calibration statistics are not computed yet";
	return "the calibration file has no statistics for it";
}

/* The sort key of a layer; pending layers sort after all others (in the
 * output norm, so do layers without an output figure). */
static double
sort_key(const tui *t, size_t i, bool *known)
{
	const rs_layer *l = &t->layers[i];
	const rs_spectrum *s = t->spectra[i];
	rs_plan_figures f;

	*known = true;
	switch (t->sort) {
	case TUI_SORT_SIZE:
		return -(double)(l->rows * l->cols);
	case TUI_SORT_ERROR:
		rs_plan_figures_for(l, &t->analyses[i], &t->plan.entries[i], &f);
		*known = f.known && !isnan(tui_shown_error(t, &f));
		return *known ? -tui_shown_error(t, &f) : 0;
	case TUI_SORT_COMPRESSIBLE:
		*known = s != NULL && s->k > 0;
		return *known ? (double)rs_spectrum_rank_for_energy(s, 0.99) / (double)s->k : 0;
	default:
		return (double)i;
	}
}

static int
compare_rows(const void *a, const void *b, void *arg)
{
	const tui *t = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	bool kx, ky;
	double vx, vy;
	int c;

	if (t->sort == TUI_SORT_NAME) {
		c = strcmp(t->layers[x].name, t->layers[y].name);
	} else {
		vx = sort_key(t, x, &kx);
		vy = sort_key(t, y, &ky);
		if (kx != ky)
			return kx ? -1 : 1;       /* pending last, whatever the direction */
		c = vx < vy ? -1 : vx > vy ? 1 : 0;
	}
	if (c == 0)
		c = x < y ? -1 : x > y;
	return t->sort_reverse ? -c : c;
}

void
tui_table_refresh(tui *t)
{
	size_t keep = tui_selected_layer(t), i;

	t->nvisible = 0;
	for (i = 0; i < t->nlayers; i++)
		if (filter_match(t->filter, t->layers[i].name))
			t->order[t->nvisible++] = i;
	qsort_r(t->order, t->nvisible, sizeof *t->order, compare_rows, t);
	t->selected = 0;
	for (i = 0; i < t->nvisible; i++)
		if (t->order[i] == keep)
			t->selected = i;
}

void
tui_table_move_to(tui *t, size_t position)
{
	if (t->nvisible == 0)
		return;
	t->selected = position >= t->nvisible ? t->nvisible - 1 : position;
	t->nudge_layer = SIZE_MAX;
}

void
tui_table_move(tui *t, long delta)
{
	long next = (long)t->selected + delta;

	tui_table_move_to(t, next < 0 ? 0 : (size_t)next);
}

bool
tui_table_click(tui *t, int y)
{
	tui_rect r = t->table_rect;
	long row = y - (r.y + 1);

	if (row < 0 || row >= r.h - 1 || t->top + (size_t)row >= t->nvisible)
		return false;
	tui_table_move_to(t, t->top + (size_t)row);
	return true;
}

/*
 * The columns after the name, in the order they are dropped from the right
 * when the terminal is narrow; the name keeps at least NAME_MIN cells.
 */
enum { COL_MATRIX, COL_RANK, COL_ERR_F, COL_ERR_2, COL_PARAMS, COL_RATIO, NCOLS };
/* In the output norm the two error columns show err_out and err_F: the
 * error of the norm in use comes first in both. */
static const struct { const char *title; int width; } columns[NCOLS] = {
	{"matrix", 11}, {"choice", 12}, {"err_F", 7}, {"err_2", 7}, {"size", 9}, {"ratio", 6},
};
#define NAME_MIN 12

/* How many columns fit in w cells, and the name width that leaves. */
static int
fit_columns(int w, int *name_w)
{
	int n = NCOLS, used;

	for (;;) {
		int i;
		used = 1;                          /* selection marker */
		for (i = 0; i < n; i++)
			used += 1 + columns[i].width;
		if (w - used >= NAME_MIN || n == 1)
			break;
		n--;
	}
	*name_w = w - used > NAME_MIN ? w - used : NAME_MIN;
	return n;
}

static void
print_cells(int y, int x, int name_w, int ncols, char marker, const char *name,
            char cells[NCOLS][24])
{
	int i, cx = x + 1 + name_w;

	mvprintw(y, x, "%c%-*.*s", marker, name_w, name_w, name);
	for (i = 0; i < ncols; i++) {
		mvprintw(y, cx, " %*.*s", columns[i].width, columns[i].width, cells[i]);
		cx += 1 + columns[i].width;
	}
}

static void
draw_row(tui *t, int y, int x, int name_w, int ncols, size_t i, bool selected)
{
	const rs_layer *l = &t->layers[i];
	const rs_spectrum *s = t->spectra[i];
	char cells[NCOLS][24];
	rs_plan_figures f;
	const char *failed = rs_engine_error(t->engine, i);
	int attr = selected ? tui_attr(t, TUI_PAIR_SELECTED) :
	           failed ? tui_attr(t, TUI_PAIR_ERROR) : 0;

	const rs_plan_entry *e = &t->plan.entries[i];

	memset(cells, 0, sizeof cells);
	snprintf(cells[COL_MATRIX], 24, "%zux%zu", l->rows, l->cols);
	rs_plan_figures_for(l, &t->analyses[i], e, &f);
	rs_format_bytes(cells[COL_PARAMS], 24, (f.bits + 7) / 8);
	if (s == NULL) {
		snprintf(cells[COL_RANK], 24, "%s", failed ? "failed" : "...");
		snprintf(cells[COL_ERR_F], 24, "%s", failed ? "" : "pending");
	} else if (rs_method_is_solved(e->method) && !f.known) {
		if (e->method == RS_METHOD_LOWRANK_SPARSE)
			snprintf(cells[COL_RANK], 24, "L+S r=%zu", e->rank);
		else if (e->method == RS_METHOD_QUANT_SPARSE)
			snprintf(cells[COL_RANK], 24, "Q+S ...");
		else if (e->method == RS_METHOD_LOWRANK_SPARSE_QUANT)
			snprintf(cells[COL_RANK], 24, "LSQ r=%zu", e->rank);
		else
			snprintf(cells[COL_RANK], 24, "%s ...", rs_method_name(e->method));
		if (t->solver.running && t->solver.layer == i)
			snprintf(cells[COL_ERR_F], 24, "it %zu", t->solver.iteration);
		else
			snprintf(cells[COL_ERR_F], 24, "queued");
	} else {
		/* a bare number is a rank (w: the whitened truncation); other
		 * methods say what they are */
		if (f.method == RS_METHOD_LOWRANK)
			snprintf(cells[COL_RANK], 24, "%zu%s", f.rank, e->whitened ? "w" : "");
		else if (f.method == RS_METHOD_DENSE)
			snprintf(cells[COL_RANK], 24, "dense");
		else if (f.method == RS_METHOD_LOWRANK_SPARSE)
			snprintf(cells[COL_RANK], 24, "L+S %zu/%.2f", f.rank, e->sparsity);
		else if (f.method == RS_METHOD_QUANT_SPARSE)
			snprintf(cells[COL_RANK], 24, "Q%u+S %.2f", rs_quantizer_bits(e->quantizer,
			         e->bits), e->sparsity);
		else if (f.method == RS_METHOD_LOWRANK_SPARSE_QUANT)
			snprintf(cells[COL_RANK], 24, "LSQ %zu/%.2f", f.rank, e->sparsity);
		else if (f.method == RS_METHOD_GROUPED)
			snprintf(cells[COL_RANK], 24, "g%zu r%zu", e->groups, e->rank);
		else if (f.method == RS_METHOD_TUCKER2)
			snprintf(cells[COL_RANK], 24, "tk %zu,%zu", e->rank, e->rank_in);
		else if (f.method == RS_METHOD_CP)
			snprintf(cells[COL_RANK], 24, "cp %zu", e->rank);
		else if (f.method == RS_METHOD_TT)
			snprintf(cells[COL_RANK], 24, "tt %zu", tui_decomp_rank(e));
		else if (f.method == RS_METHOD_QUANT)
			snprintf(cells[COL_RANK], 24, "%s%ub", e->quantizer == RS_QUANT_KMEANS ? "km" :
			         e->quantizer == RS_QUANT_UNIFORM_TENSOR ? "ut" :
			         e->quantizer == RS_QUANT_UNIFORM_CHANNEL ? "uc" :
			         e->quantizer == RS_QUANT_BINARY ? "bin" : "ter",
			         rs_quantizer_bits(e->quantizer, e->bits));
		else
			snprintf(cells[COL_RANK], 24, "%s %.2f", f.method == RS_METHOD_PRUNE ? "prune" :
			         f.method == RS_METHOD_PRUNE_ROWS ? "rows" : "cols", e->sparsity);
		if (t->output_norm) {
			tui_format_out_err(cells[COL_ERR_F], 24, &f);
			snprintf(cells[COL_ERR_2], 24, "%.4f", f.err_fro);
		} else {
			snprintf(cells[COL_ERR_F], 24, "%.4f", f.err_fro);
			/* '<' marks a spectral error that is only a bound */
			snprintf(cells[COL_ERR_2], 24, "%s%.4f", f.spec_is_bound ? "<" : "",
			         f.err_spec);
		}
		snprintf(cells[COL_RATIO], 24, "%.2fx",
		         (double)rs_layer_dense_bits(l) / (double)f.bits);
	}
	attron(attr);
	print_cells(y, x, name_w, ncols, selected ? '>' : ' ', l->name, cells);
	attroff(attr);
}

void
tui_table_draw(tui *t, tui_rect r)
{
	int name_w, ncols = fit_columns(r.w, &name_w), rows = r.h - 1, y, c;
	char titles[NCOLS][24];
	size_t p;

	t->table_rect = r;
	for (c = 0; c < NCOLS; c++)
		snprintf(titles[c], sizeof titles[c], "%s", columns[c].title);
	if (t->output_norm) {
		snprintf(titles[COL_ERR_F], sizeof titles[COL_ERR_F], "err_out");
		snprintf(titles[COL_ERR_2], sizeof titles[COL_ERR_2], "err_F");
	}
	attron(A_BOLD);
	print_cells(r.y, r.x, name_w, ncols, ' ', "layer", titles);
	attroff(A_BOLD);
	if (t->nvisible == 0) {
		mvprintw(r.y + 1, r.x + 1, "no layer matches '%s'", t->filter);
		return;
	}
	/* keep the selection in view */
	if (t->selected < t->top)
		t->top = t->selected;
	if (rows > 0 && t->selected >= t->top + (size_t)rows)
		t->top = t->selected - (size_t)rows + 1;
	if (t->top + (size_t)rows > t->nvisible)
		t->top = t->nvisible > (size_t)rows ? t->nvisible - (size_t)rows : 0;
	for (y = 0, p = t->top; y < rows && p < t->nvisible; y++, p++)
		draw_row(t, r.y + 1 + y, r.x, name_w, ncols, t->order[p], p == t->selected);
}
