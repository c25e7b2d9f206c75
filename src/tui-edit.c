/*
 * tui-edit.c — every change the workbench makes to the plan goes through
 * here, so that each one can be undone.  The history keeps whole plan
 * copies: an entry is a few bytes per layer, and copies make undo trivially
 * right for global edits that touch every layer.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <curses.h>

#include "rankscope/util.h"
#include "tui.h"

static size_t
full_rank(const tui *t, size_t layer)
{
	const rs_layer *l = &t->layers[layer];

	return l->rows < l->cols ? l->rows : l->cols;
}

void
tui_edit_begin(tui *t)
{
	if (t->nundo == TUI_UNDO_MAX) {
		rs_plan_free(&t->undo[0]);
		memmove(&t->undo[0], &t->undo[1], (TUI_UNDO_MAX - 1) * sizeof t->undo[0]);
		t->nundo--;
	}
	rs_plan_copy(&t->undo[t->nundo++], &t->plan);
	t->nudge_layer = SIZE_MAX;
}

/*
 * The truncation a rank edit sets is the optimum in the norm shown: the
 * plain one (Eckart-Young) in the weights, the whitened one (SVD-LLM) in
 * the output norm.  A layer without its output figures gets the plain one
 * even then (a whitened entry would have no figures); *plain says so.
 */
static rs_plan_entry
lowrank_entry(const tui *t, size_t layer, size_t rank, bool *plain)
{
	rs_plan_entry e = rs_plan_entry_lowrank(rank);

	e.whitened = t->output_norm && t->analyses[layer].whiten != NULL;
	*plain = t->output_norm && !e.whitened;
	return e;
}

/* Sets the rank; true when, in the output norm, the layer had to take the
 * plain truncation. */
static bool
set_rank(tui *t, size_t layer, size_t rank)
{
	size_t k = full_rank(t, layer);
	bool plain = false;

	if (rank < 1)
		rank = 1;
	if (rank < k && rs_layer_method_refusal(&t->layers[layer], RS_METHOD_LOWRANK)) {
		tui_message(t, true, "%s", rs_layer_method_refusal(&t->layers[layer],
		            RS_METHOD_LOWRANK));
		return false;
	}
	if (rs_method_is_decomposition(t->plan.entries[layer].method)) {
		tui_decomp_set_rank(t, layer, rank);
		return false;
	}
	if (rs_method_has_lowrank_part(t->plan.entries[layer].method) && rank < k) {
		/* the rank of the low-rank part; solved again in the background */
		t->plan.entries[layer].rank = rank;
		t->plan.entries[layer].solved_error = NAN;
	} else if (rank >= k) {
		t->plan.entries[layer] = rs_plan_entry_dense();
	} else {
		t->plan.entries[layer] = lowrank_entry(t, layer, rank, &plain);
	}
	return plain;
}

void
tui_edit_set_rank(tui *t, size_t layer, size_t rank)
{
	char name[96];

	if (set_rank(t, layer, rank))
		tui_message(t, false, "%s: no output figures (%s): the plain truncation, "
		            "optimal in the weights", rs_printable(name, sizeof name,
		            t->layers[layer].name), tui_no_output_reason(t, layer));
}

void
tui_edit_set_dense(tui *t, size_t layer)
{
	t->plan.entries[layer] = rs_plan_entry_dense();
}

size_t
tui_edit_current_rank(const tui *t, size_t layer)
{
	const rs_plan_entry *e = &t->plan.entries[layer];

	if (rs_method_is_decomposition(e->method))
		return tui_decomp_rank(e);
	return e->method == RS_METHOD_LOWRANK || rs_method_has_lowrank_part(e->method) ?
	       e->rank : full_rank(t, layer);
}

void
tui_edit_nudge_rank(tui *t, long delta)
{
	size_t layer = tui_selected_layer(t), rank;
	long next;

	if (layer == SIZE_MAX)
		return;
	if (t->spectra[layer] == NULL) {
		tui_message(t, false, "%s: spectrum not computed yet", t->layers[layer].name);
		return;
	}
	/* A run of nudges on one layer is one undo step. */
	if (t->nudge_layer != layer) {
		tui_edit_begin(t);
		t->nudge_layer = layer;
	}
	rank = tui_edit_current_rank(t, layer);
	next = (long)rank + delta;
	tui_edit_set_rank(t, layer, next < 1 ? 1 : (size_t)next);
}

size_t
tui_edit_global_rank(const tui *t, size_t layer)
{
	const rs_spectrum *s = t->spectra[layer];
	const rs_whiten *wh = t->analyses[layer].whiten;
	size_t r;

	if (t->global_mode == TUI_GLOBAL_KEEP)
		return rs_plan_entry_keep_ratio(s, t->global_value).rank;
	if (t->output_norm && wh != NULL) {
		r = rs_whiten_rank_for_out_err(wh, sqrt(1 - t->global_value));
		return r < 1 ? 1 : r;
	}
	return rs_plan_entry_energy(s, t->global_value).rank;
}

void
tui_edit_apply_global(tui *t)
{
	size_t i;

	if (t->global_mode == TUI_GLOBAL_OFF)
		return;
	for (i = 0; i < t->nlayers; i++) {
		/* a layer no low rank can be run on keeps what it has */
		if (t->spectra[i] == NULL ||
		    rs_layer_method_refusal(&t->layers[i], RS_METHOD_LOWRANK))
			continue;
		/* quiet: a layer without output figures is said when edited alone */
		set_rank(t, i, tui_edit_global_rank(t, i));
	}
}

void
tui_edit_undo(tui *t)
{
	if (t->nundo == 0) {
		tui_message(t, false, "nothing to undo");
		return;
	}
	rs_plan_free(&t->plan);
	t->plan = t->undo[--t->nundo];
	t->nudge_layer = SIZE_MAX;
	tui_message(t, false, "undone (%zu more)", t->nundo);
}

bool
tui_edit_dirty(const tui *t)
{
	return !rs_plan_equal(&t->plan, &t->saved);
}

void
tui_edit_drop_unchanged(tui *t)
{
	if (t->nundo == 0)
		return;
	/* Drop the undo point if nothing changed, else keep it. */
	if (rs_plan_equal(&t->undo[t->nundo - 1], &t->plan)) {
		rs_plan_free(&t->undo[--t->nundo]);
		t->nudge_layer = SIZE_MAX;
	}
}

/* Starts a run of nudges of one kind on the selected layer (one undo step);
 * false when there is nothing to edit yet. */
bool
tui_edit_begin_nudge(tui *t, size_t layer)
{
	if (layer == SIZE_MAX)
		return false;
	if (t->analyses[layer].magnitudes == NULL) {
		tui_message(t, false, "%s: statistics not computed yet", t->layers[layer].name);
		return false;
	}
	if (t->nudge_layer != layer) {
		tui_edit_begin(t);
		t->nudge_layer = layer;
	}
	return true;
}

void
tui_edit_set_sparsity(tui *t, size_t layer, double sparsity)
{
	rs_plan_entry *e = &t->plan.entries[layer];

	if (sparsity < 0)
		sparsity = 0;
	if (sparsity > 0.99)
		sparsity = 0.99;
	if (rs_method_is_combination(e->method)) {
		e->sparsity = sparsity;
		e->solved_error = NAN;      /* solved again in the background */
		return;
	}
	if (e->method != RS_METHOD_PRUNE_ROWS && e->method != RS_METHOD_PRUNE_COLS) {
		*e = rs_plan_entry_dense();
		e->method = RS_METHOD_PRUNE;
	}
	e->sparsity = sparsity;
}

void
tui_edit_set_bits(tui *t, size_t layer, unsigned bits)
{
	rs_plan_entry *e = &t->plan.entries[layer];
	rs_quantizer q = e->method == RS_METHOD_QUANT ? e->quantizer : RS_QUANT_KMEANS;

	if (bits < 1)
		bits = 1;
	if (bits > RS_QUANT_CURVE_BITS)
		bits = RS_QUANT_CURVE_BITS;
	if (rs_method_is_combination(e->method) && rs_method_has_quant_part(e->method)) {
		e->bits = bits;
		e->solved_error = NAN;      /* solved again in the background */
		return;
	}
	*e = rs_plan_entry_dense();
	e->method = RS_METHOD_QUANT;
	e->quantizer = q;
	e->bits = bits;
}

void
tui_edit_set_method(tui *t, size_t layer, rs_method method)
{
	rs_plan_entry *e = &t->plan.entries[layer], old = *e;
	size_t k = full_rank(t, layer), rank = old.method == RS_METHOD_LOWRANK ||
	    old.method == RS_METHOD_LOWRANK_SPARSE ? old.rank : (k / 4 ? k / 4 : 1);
	double sparsity = old.method == RS_METHOD_DENSE || old.method == RS_METHOD_LOWRANK ||
	    old.method == RS_METHOD_QUANT ? 0.5 : old.sparsity;
	const char *refusal = rs_layer_method_refusal(&t->layers[layer], method);

	if (refusal != NULL) {
		tui_message(t, true, "%s", refusal);
		return;
	}
	if (rs_method_is_decomposition(method)) {
		tui_decomp_defaults(t, layer, method, e);
		if (old.method == RS_METHOD_LOWRANK && method != RS_METHOD_TUCKER2)
			tui_decomp_set_rank(t, layer, rank);
		return;
	}
	*e = rs_plan_entry_dense();
	e->method = method;
	switch (method) {
	case RS_METHOD_LOWRANK: {
		bool plain;
		*e = lowrank_entry(t, layer, rank, &plain);
		break;
	}
	case RS_METHOD_LOWRANK_SPARSE:
		e->rank = rank;
		e->sparsity = old.method == RS_METHOD_PRUNE ? old.sparsity : 0.95;
		break;
	case RS_METHOD_PRUNE: case RS_METHOD_PRUNE_ROWS: case RS_METHOD_PRUNE_COLS:
		e->sparsity = sparsity;
		break;
	case RS_METHOD_QUANT:
		e->quantizer = old.method == RS_METHOD_QUANT ? old.quantizer : RS_QUANT_KMEANS;
		e->bits = old.method == RS_METHOD_QUANT ? old.bits : 4;
		break;
	case RS_METHOD_QUANT_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		/* a coarse code plus a sparse correction (LC's "quantised + pruned") */
		e->rank = rank;
		e->sparsity = rs_method_is_combination(old.method) ? old.sparsity : 0.95;
		e->quantizer = rs_method_has_quant_part(old.method) ? old.quantizer : RS_QUANT_KMEANS;
		e->bits = rs_method_has_quant_part(old.method) ? old.bits : 2;
		break;
	default:
		break;
	}
}

void
tui_edit_nudge_sparsity(tui *t, double delta)
{
	size_t layer = tui_selected_layer(t);
	const rs_plan_entry *e;
	double p;

	if (!tui_edit_begin_nudge(t, layer))
		return;
	e = &t->plan.entries[layer];
	p = e->method == RS_METHOD_PRUNE || e->method == RS_METHOD_PRUNE_ROWS ||
	    e->method == RS_METHOD_PRUNE_COLS || rs_method_is_combination(e->method) ?
	    e->sparsity : 0;
	/* round to the step so that repeated nudges land on round numbers */
	tui_edit_set_sparsity(t, layer, floor((p + delta) / 0.01 + 0.5) * 0.01);
}

void
tui_edit_nudge_bits(tui *t, int delta)
{
	size_t layer = tui_selected_layer(t);
	const rs_plan_entry *e;
	int b;

	if (!tui_edit_begin_nudge(t, layer))
		return;
	e = &t->plan.entries[layer];
	b = rs_method_has_quant_part(e->method) ? (int)e->bits + delta : (delta < 0 ? 8 : 4);
	tui_edit_set_bits(t, layer, b < 1 ? 1 : (unsigned)b);
}

void
tui_edit_cycle_quantizer(tui *t)
{
	size_t layer = tui_selected_layer(t);
	rs_plan_entry *e;

	if (!tui_edit_begin_nudge(t, layer))
		return;
	e = &t->plan.entries[layer];
	if (!rs_method_has_quant_part(e->method)) {
		tui_edit_set_bits(t, layer, 4);
	} else {
		e->quantizer = (e->quantizer + 1) % RS_QUANT_COUNT;
		if (e->method != RS_METHOD_QUANT)
			e->solved_error = NAN;  /* solved again in the background */
	}
	tui_message(t, false, "quantiser: %s", rs_quantizer_name(e->quantizer));
}

/* ---- the method menu (M) ---- */

static const struct {
	rs_method method;
	const char *help;
} menu_methods[] = {
	{RS_METHOD_DENSE, "keep the layer as it is"},
	{RS_METHOD_LOWRANK, "rank-r factorisation (rank slider)"},
	{RS_METHOD_PRUNE, "drop the smallest weights (sparsity slider)"},
	{RS_METHOD_PRUNE_ROWS, "drop whole output channels by L2 norm"},
	{RS_METHOD_PRUNE_COLS, "drop whole input channels by L2 norm"},
	{RS_METHOD_QUANT, "quantise (bits slider, Q for the quantiser)"},
	{RS_METHOD_LOWRANK_SPARSE, "low rank + sparse, solved in the background"},
	{RS_METHOD_GROUPED, "grouped SVD (ALDS): c C groups, f fold, rank per group"},
	{RS_METHOD_TUCKER2, "Tucker-2 on output and input modes (rank keys)"},
	{RS_METHOD_CP, "CP decomposition by ALS (rank keys set R)"},
	{RS_METHOD_TT, "TT-matrix, 3 balanced modes (rank keys cap TT-ranks)"},
	{RS_METHOD_QUANT_SPARSE, "quantised + sparse correction, solved in the background"},
	{RS_METHOD_LOWRANK_SPARSE_QUANT, "low rank + sparse + quantised, in the background"},
};
#define NMENU (sizeof menu_methods / sizeof menu_methods[0])

void
tui_method_menu_draw(tui *t, int lines, int cols)
{
	int w = 64 < cols - 4 ? 64 : cols - 4, h = (int)NMENU + 3, y0, x0 = (cols - w) / 2, y;
	int name_w = 0, rows;
	size_t i, first, layer = tui_selected_layer(t);

	for (i = 0; i < NMENU; i++)
		if ((int)strlen(rs_method_name(menu_methods[i].method)) > name_w)
			name_w = (int)strlen(rs_method_name(menu_methods[i].method));
	/* A terminal shorter than the menu shows its title and a window of the
	 * list that follows the cursor, rather than a list cut off at the top
	 * and bottom that hides which layer it is for and how to leave. */
	if (h > lines)
		h = lines;
	y0 = (lines - h) / 2;
	rows = h - 3 > 1 ? h - 3 : 1;
	first = t->method_selected >= (size_t)rows ? t->method_selected - (size_t)rows + 1 : 0;
	for (y = 0; y < h; y++)
		mvprintw(y0 + y, x0, "%*s", w, "");
	attron(A_BOLD);
	mvprintw(y0, x0, " method for %.*s (Enter picks, Esc closes)", w - 32,
	         layer == SIZE_MAX ? "" : t->layers[layer].name);
	attroff(A_BOLD);
	for (i = first; i < NMENU && i < first + (size_t)rows; i++) {
		if (i == t->method_selected)
			attron(A_REVERSE);
		/* the names' column as wide as the longest, the help cut to the box */
		mvprintw(y0 + 2 + (int)(i - first), x0, " %-*s %-*.*s", name_w,
		         rs_method_name(menu_methods[i].method), w - name_w - 3, w - name_w - 3,
		         menu_methods[i].help);
		attroff(A_REVERSE);
	}
}

void
tui_method_menu_key(tui *t, int ch)
{
	size_t layer = tui_selected_layer(t);

	if (ch == 27 || ch == 'q' || ch == 'M') {
		t->menu = 0;
	} else if ((ch == KEY_UP || ch == 'k') && t->method_selected > 0) {
		t->method_selected--;
	} else if ((ch == KEY_DOWN || ch == 'j') && t->method_selected + 1 < NMENU) {
		t->method_selected++;
	} else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		t->menu = 0;
		if (layer == SIZE_MAX || t->analyses[layer].magnitudes == NULL) {
			tui_message(t, false, "the layer's analysis is not ready yet");
			return;
		}
		tui_edit_begin(t);
		tui_edit_set_method(t, layer, menu_methods[t->method_selected].method);
		tui_message(t, false, "%s: %s", t->layers[layer].name,
		            rs_method_name(menu_methods[t->method_selected].method));
	}
}
