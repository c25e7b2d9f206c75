/*
 * tui-edit.c — every change the workbench makes to the plan goes through
 * here, so that each one can be undone.  The history keeps whole plan
 * copies: an entry is a few bytes per layer, and copies make undo trivially
 * right for global edits that touch every layer.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

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

void
tui_edit_set_rank(tui *t, size_t layer, size_t rank)
{
	size_t k = full_rank(t, layer);

	if (rank < 1)
		rank = 1;
	if (rank >= k)
		t->plan.entries[layer] = (rs_plan_entry){RS_METHOD_DENSE, 0};
	else
		t->plan.entries[layer] = (rs_plan_entry){RS_METHOD_LOWRANK, rank};
}

void
tui_edit_set_dense(tui *t, size_t layer)
{
	t->plan.entries[layer] = (rs_plan_entry){RS_METHOD_DENSE, 0};
}

size_t
tui_edit_current_rank(const tui *t, size_t layer)
{
	const rs_plan_entry *e = &t->plan.entries[layer];

	return e->method == RS_METHOD_LOWRANK ? e->rank : full_rank(t, layer);
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

void
tui_edit_apply_global(tui *t)
{
	size_t i;

	if (t->global_mode == TUI_GLOBAL_OFF)
		return;
	for (i = 0; i < t->nlayers; i++) {
		const rs_spectrum *s = t->spectra[i];
		rs_plan_entry e;

		if (s == NULL)
			continue;
		e = t->global_mode == TUI_GLOBAL_KEEP ?
		    rs_plan_entry_keep_ratio(s, t->global_value) :
		    rs_plan_entry_energy(s, t->global_value);
		tui_edit_set_rank(t, i, e.rank);
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
