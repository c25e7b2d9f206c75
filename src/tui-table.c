/*
 * tui-table.c — the layer table: which layers are visible (filter), in
 * what order (sort), which is selected, and how rows look.
 */
#include "config.h"

#include <curses.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "tui.h"

static const char *const sort_names[TUI_SORT_COUNT] = {
	[TUI_SORT_FILE] = "file order",
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

/* The sort key of a layer; pending layers sort after all others. */
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
		rs_plan_figures_for(l, s, &t->plan.entries[i], &f);
		*known = f.known;
		return -f.err_fro;
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

/* Widths of the fixed columns after the name. */
#define COLS_FIXED " %11s %6s %7s %7s %7s %6s"
#define COLS_WIDTH (12 + 7 + 8 + 8 + 8 + 7)

static void
draw_row(tui *t, int y, int x, int name_w, size_t i, bool selected)
{
	const rs_layer *l = &t->layers[i];
	const rs_spectrum *s = t->spectra[i];
	char matrix[24], rank[16], ef[16], e2[16], params[16], ratio[16];
	rs_plan_figures f;
	const char *failed = rs_engine_error(t->engine, i);
	int attr = selected ? tui_attr(t, TUI_PAIR_SELECTED) : 0;

	snprintf(matrix, sizeof matrix, "%zux%zu", l->rows, l->cols);
	rs_plan_figures_for(l, s, &t->plan.entries[i], &f);
	rs_format_count(params, sizeof params, (double)f.params);
	if (s == NULL) {
		snprintf(rank, sizeof rank, "%s", failed ? "failed" : "...");
		snprintf(ef, sizeof ef, "%s", failed ? "" : "pending");
		e2[0] = ratio[0] = '\0';
	} else {
		if (f.method == RS_METHOD_LOWRANK)
			snprintf(rank, sizeof rank, "%zu", f.rank);
		else
			snprintf(rank, sizeof rank, "dense");
		snprintf(ef, sizeof ef, "%.4f", f.err_fro);
		snprintf(e2, sizeof e2, "%.4f", f.err_spec);
		snprintf(ratio, sizeof ratio, "%.2fx",
		         (double)(l->rows * l->cols) / (double)f.params);
	}
	attron(attr);
	mvprintw(y, x, "%c%-*.*s" COLS_FIXED, selected ? '>' : ' ', name_w, name_w,
	         l->name, matrix, rank, ef, e2, params, ratio);
	attroff(attr);
	if (failed && !selected)
		mvchgat(y, x + name_w + 14, 6, 0, TUI_PAIR_ERROR, NULL);
}

void
tui_table_draw(tui *t, tui_rect r)
{
	int name_w = r.w - 1 - COLS_WIDTH, rows = r.h - 1, y;
	size_t p;

	t->table_rect = r;
	if (name_w < 8)
		name_w = 8;
	attron(A_BOLD);
	mvprintw(r.y, r.x, " %-*.*s" COLS_FIXED, name_w, name_w, "layer", "matrix",
	         "rank", "err_F", "err_2", "params", "ratio");
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
		draw_row(t, r.y + 1 + y, r.x, name_w, t->order[p], p == t->selected);
}
