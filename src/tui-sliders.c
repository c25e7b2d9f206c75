/*
 * tui-sliders.c — slider rows and the totals line.
 *
 * A slider is a row: a label, a track the mouse can click or drag, and the
 * figures the value implies.  The rank slider acts on the selected layer;
 * the global slider sets every layer at once by a keep ratio or an energy
 * threshold.  Further rows (sparsity, bits) slot into slider_rows[].
 */
#include "config.h"

#include <curses.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rankscope/util.h"
#include "tui.h"

#define LABEL_W 8

static const char *const global_names[TUI_GLOBAL_COUNT] = {
	[TUI_GLOBAL_OFF] = "off",
	[TUI_GLOBAL_KEEP] = "keep",
	[TUI_GLOBAL_ENERGY] = "energy",
};

const char *
tui_global_mode_name(tui_global_mode mode)
{
	return global_names[mode];
}

/*
 * Slider positions are fractions 0..1 of the track.  The energy threshold
 * moves on a log scale of what is discarded (1 - e, from 50 % down to
 * 0.001 %), where the interesting values are.
 */
#define ENERGY_LOSS_MAX 0.5
#define ENERGY_LOSS_MIN 1e-5

static double
global_to_position(tui_global_mode mode, double value)
{
	if (mode == TUI_GLOBAL_ENERGY)
		return log((1 - value) / ENERGY_LOSS_MAX) /
		       log(ENERGY_LOSS_MIN / ENERGY_LOSS_MAX);
	return value;
}

static double
position_to_global(tui_global_mode mode, double pos)
{
	if (mode == TUI_GLOBAL_ENERGY)
		return 1 - ENERGY_LOSS_MAX * exp(pos * log(ENERGY_LOSS_MIN / ENERGY_LOSS_MAX));
	return pos < 0.01 ? 0.01 : pos;
}

static void
draw_track(tui *t, int y, int x, int w, double pos, bool active)
{
	int knob = (int)lround(pos * (w - 1)), i;

	for (i = 0; i < w; i++) {
		const char *glyph;
		int attr;
		if (i == knob) {
			glyph = t->utf8 ? "\u25cf" : "O";
			attr = tui_attr(t, TUI_PAIR_MARK) | A_BOLD;
		} else if (i < knob) {
			glyph = t->utf8 ? "\u2501" : "=";
			attr = tui_attr(t, active ? TUI_PAIR_BAR : TUI_PAIR_DIM);
		} else {
			glyph = t->utf8 ? "\u2500" : "-";
			attr = tui_attr(t, TUI_PAIR_DIM);
		}
		attron(attr);
		mvaddstr(y, x + i, glyph);
		attroff(attr);
	}
}

/* Track geometry of a slider row: starts after the label, leaves room for
 * the figures on the right. */
static void
track_geometry(int cols, int *x, int *w)
{
	*x = LABEL_W;
	*w = cols - LABEL_W - 58;
	if (*w < 10)
		*w = cols - LABEL_W - 2 > 10 ? 10 : cols - LABEL_W - 2;
}

/* Starts a slider row: its label, and the track's place (kept in *rect for
 * the mouse). */
static void
slider_row(int y, int cols, const char *label, tui_rect *rect, int *x, int *w)
{
	track_geometry(cols, x, w);
	*rect = (tui_rect){y, *x, 1, *w};
	mvaddstr(y, 0, label);
}

/* The figures to the right of a slider's track, cut to the screen. */
static void
slider_info(int y, int x, int w, int cols, const char *info)
{
	mvprintw(y, x + w, "%.*s", cols - x - w > 0 ? cols - x - w : 0, info);
}

static void
draw_rank_slider(tui *t, int y, int cols)
{
	size_t layer = tui_selected_layer(t), k, rank;
	int x, w;
	char info[160], params[16], dense[16];
	rs_plan_figures f;
	const rs_layer *l;

	slider_row(y, cols, "rank", &t->rank_slider, &x, &w);
	if (layer == SIZE_MAX)
		return;
	l = &t->layers[layer];
	if (t->spectra[layer] == NULL) {
		mvprintw(y, x, "%.*s", cols - x, "(waiting for the spectrum)");
		return;
	}
	k = t->spectra[layer]->k;
	rank = tui_edit_current_rank(t, layer);
	{
		rs_method m = t->plan.entries[layer].method;
		if (m != RS_METHOD_DENSE && m != RS_METHOD_LOWRANK && m != RS_METHOD_LOWRANK_SPARSE &&
		    !rs_method_is_decomposition(m)) {
			draw_track(t, y, x, w, 1.0, false);
			slider_info(y, x, w, cols, " off (<-/-> for low rank)");
			return;
		}
		if (m == RS_METHOD_LOWRANK_SPARSE) {
			draw_track(t, y, x, w, k > 1 ? (double)(rank - 1) / (double)(k - 1) : 1.0, true);
			slider_info(y, x, w, cols, " rank of the low-rank part (L + S)");
			return;
		}
		if (rs_method_is_decomposition(m)) {
			const rs_plan_entry *e = &t->plan.entries[layer];
			rs_plan_figures_for(l, &t->analyses[layer], e, &f);
			draw_track(t, y, x, w, k > 1 ? (double)(rank - 1) / (double)(k - 1) : 1.0, true);
			if (!f.known)
				snprintf(info, sizeof info, " %zu %s: solving in the background", rank,
				         rs_method_name(m));
			else if (f.method == RS_METHOD_DENSE)
				snprintf(info, sizeof info, " %zu %s: not smaller, dense", rank,
				         rs_method_name(m));
			else
				snprintf(info, sizeof info, " %zu %s err_F %.4f err_2 <= %.4f params %s",
				         rank, rs_method_name(m), f.err_fro, f.err_spec,
				         (rs_format_count(params, sizeof params, (double)f.params), params));
			slider_info(y, x, w, cols, info);
			return;
		}
	}
	draw_track(t, y, x, w, k > 1 ? (double)(rank - 1) / (double)(k - 1) : 1.0, true);
	rs_plan_figures_for(l, &t->analyses[layer], &t->plan.entries[layer], &f);
	rs_format_count(params, sizeof params, (double)f.params);
	rs_format_count(dense, sizeof dense, (double)(l->rows * l->cols));
	if (f.method == RS_METHOD_LOWRANK && t->output_norm) {
		char out[16];
		/* the truncation the entry holds: a rank set in the weight norm
		 * (or loaded) may be the plain one */
		tui_format_out_err(out, sizeof out, &f);
		snprintf(info, sizeof info, " %zu/%zu err_out %s%s err_F %.4f params %s of %s",
		         rank, k, out, t->plan.entries[layer].whitened ? "" : " (plain)",
		         f.err_fro, params, dense);
	} else if (f.method == RS_METHOD_LOWRANK)
		snprintf(info, sizeof info, " %zu/%zu err_F %.4f err_2 %.4f params %s of %s",
		         rank, k, f.err_fro, f.err_spec, params, dense);
	else if (rank < k)
		snprintf(info, sizeof info, " %zu/%zu costs more than dense (break-even %zu): dense",
		         rank, k, rs_lowrank_breakeven(l->rows, l->cols));
	else
		snprintf(info, sizeof info, " %zu/%zu dense, exact", rank, k);
	slider_info(y, x, w, cols, info);
}

/* Sparsity of the selected layer: pruning, channel pruning, or the sparse
 * part of low rank + sparse. */
static void
draw_sparsity_slider(tui *t, int y, int cols)
{
	size_t layer = tui_selected_layer(t);
	const rs_plan_entry *e;
	bool active;
	int x, w;
	char info[160];
	rs_plan_figures f;

	slider_row(y, cols, "sparse", &t->sparsity_slider, &x, &w);
	if (layer == SIZE_MAX || t->analyses[layer].magnitudes == NULL)
		return;
	e = &t->plan.entries[layer];
	active = e->method == RS_METHOD_PRUNE || e->method == RS_METHOD_PRUNE_ROWS ||
	         e->method == RS_METHOD_PRUNE_COLS || rs_method_is_combination(e->method);
	draw_track(t, y, x, w, active ? e->sparsity : 0, active);
	rs_plan_figures_for(&t->layers[layer], &t->analyses[layer], e, &f);
	if (!active)
		snprintf(info, sizeof info, " off ([ ] prune, M method)");
	else if (!f.known)
		snprintf(info, sizeof info, " %.2f %s: solving in the background", e->sparsity,
		         rs_method_name(e->method));
	else if (f.method == RS_METHOD_DENSE)
		snprintf(info, sizeof info, " %.2f %s: not smaller than dense, kept dense",
		         e->sparsity, rs_method_name(e->method));
	else {
		rs_index_format fmt = RS_INDEX_BITMAP;
		rs_sparse_storage_bits(t->layers[layer].rows, t->layers[layer].cols, f.nonzeros,
		                       rs_layer_value_bits(&t->layers[layer]), &fmt);
		snprintf(info, sizeof info, " %.2f %s err_F %.4f, %zu kept%s%s", e->sparsity,
		         rs_method_name(f.method), f.err_fro, f.nonzeros,
		         f.method == RS_METHOD_PRUNE ? ", index " : "",
		         f.method == RS_METHOD_PRUNE ? rs_index_format_name(fmt) : "");
	}
	slider_info(y, x, w, cols, info);
}

/* Bits of the selected layer's quantiser, 1..8. */
static void
draw_bits_slider(tui *t, int y, int cols)
{
	size_t layer = tui_selected_layer(t);
	const rs_plan_entry *e;
	bool active;
	int x, w;
	char info[160];
	rs_plan_figures f;

	slider_row(y, cols, "bits", &t->bits_slider, &x, &w);
	if (layer == SIZE_MAX || t->analyses[layer].quant == NULL)
		return;
	e = &t->plan.entries[layer];
	active = rs_method_has_quant_part(e->method);
	draw_track(t, y, x, w, active ? (double)(e->bits - 1) / (RS_QUANT_CURVE_BITS - 1) : 1,
	           active);
	rs_plan_figures_for(&t->layers[layer], &t->analyses[layer], e, &f);
	if (!active)
		snprintf(info, sizeof info, " off (b B quantise, Q quantiser)");
	else if (e->method != RS_METHOD_QUANT)
		snprintf(info, sizeof info, " %u %s: the quantised part of %s",
		         rs_quantizer_bits(e->quantizer, e->bits), rs_quantizer_name(e->quantizer),
		         rs_method_name(e->method));
	else
		snprintf(info, sizeof info, " %u %s err_F %.4f, %.2f bits/weight%s",
		         rs_quantizer_bits(e->quantizer, e->bits), rs_quantizer_name(e->quantizer),
		         f.err_fro, (double)f.bits / (double)(t->layers[layer].rows *
		                                               t->layers[layer].cols),
		         f.method == RS_METHOD_DENSE ? " (not smaller: dense)" : "");
	slider_info(y, x, w, cols, info);
}

static void
draw_global_slider(tui *t, int y, int cols)
{
	int x, w;
	char info[64];

	slider_row(y, cols, "global", &t->global_slider, &x, &w);
	if (t->global_mode == TUI_GLOBAL_OFF) {
		draw_track(t, y, x, w, 0, false);
		snprintf(info, sizeof info, " off (m: keep ratio / energy threshold)");
	} else {
		draw_track(t, y, x, w, global_to_position(t->global_mode, t->global_value), true);
		if (t->global_mode == TUI_GLOBAL_KEEP)
			snprintf(info, sizeof info, " keep %.0f%% of each rank", 100 * t->global_value);
		else
			snprintf(info, sizeof info, " keep %.3f%% of each layer's %senergy",
			         100 * t->global_value, t->output_norm ? "output " : "");
	}
	slider_info(y, x, w, cols, info);
}

void
tui_sliders_draw(tui *t)
{
	draw_rank_slider(t, t->rank_slider.y, COLS);
	draw_sparsity_slider(t, t->sparsity_slider.y, COLS);
	draw_bits_slider(t, t->bits_slider.y, COLS);
	draw_global_slider(t, t->global_slider.y, COLS);
}

/*
 * The worst output error of the compressed layers, for the totals line in
 * the output norm: into buf, with its layer; "-" and the layer when a
 * compressed layer has none (no statistics, or a method without one).
 */
static void
worst_output(const tui *t, char *buf, size_t len)
{
	rs_plan_figures f, worst;
	size_t i, at = SIZE_MAX;
	char name[96], shown[16];

	worst.out_err = -1;
	for (i = 0; i < t->nlayers; i++) {
		rs_plan_figures_for(&t->layers[i], &t->analyses[i], &t->plan.entries[i], &f);
		if (!f.known || f.method == RS_METHOD_DENSE)
			continue;
		if (isnan(f.out_err)) {
			worst = f;
			at = i;
			break;
		}
		if (f.out_err > worst.out_err) {
			worst = f;
			at = i;
		}
	}
	if (at == SIZE_MAX) {
		snprintf(buf, len, "0.0000");
		return;
	}
	tui_format_out_err(shown, sizeof shown, &worst);
	snprintf(buf, len, "%s %s%s", shown, rs_printable(name, sizeof name, t->layers[at].name),
	         isnan(worst.out_err) ? " has none" : "");
}

void
tui_totals_draw(tui *t, int y, int w)
{
	rs_plan_totals tot;
	char before[16], after[16], fb[16], fa[16], sb[16], sa[16], worst[160], line[400];

	rs_plan_totals_compute(&t->plan, t->layers, t->analyses, &tot);
	rs_format_count(before, sizeof before, (double)tot.params_before);
	rs_format_count(after, sizeof after, (double)tot.params_after);
	rs_format_count(fb, sizeof fb, (double)tot.flops_before);
	rs_format_count(fa, sizeof fa, (double)tot.flops_after);
	rs_format_bytes(sb, sizeof sb, (tot.bits_before + 7) / 8);
	rs_format_bytes(sa, sizeof sa, (tot.bits_after + 7) / 8);
	/* [edited] first: on a narrow screen the end of the line is cut */
	if (t->output_norm) {
		/* the norm's name and its figure first, so a narrow screen keeps
		 * them; the flops and the network bound (a bound from err_2, a
		 * weight figure) give way */
		worst_output(t, worst, sizeof worst);
		snprintf(line, sizeof line,
		         "%sworst output error on the calibration inputs %s  params %s -> %s "
		         "(%.2fx)  size %s -> %s (%.2fx)%s",
		         tui_edit_dirty(t) ? "[edited] " : "", worst, before, after, tot.ratio, sb,
		         sa, tot.bits_ratio, tot.pending ? " (pending layers count dense)" : "");
	} else {
		snprintf(line, sizeof line,
		         "%sparams %s -> %s (%.2fx)  size %s -> %s (%.2fx)  flops %s -> %s  worst "
		         "err_2 %.4f%s%s  network bound %.4f%s",
		         tui_edit_dirty(t) ? "[edited] " : "",
		         before, after, tot.ratio, sb, sa, tot.bits_ratio, fb, fa,
		         tot.worst_err_spec, tot.worst_err_spec > 0 ? " " : "",
		         tot.worst_err_spec > 0 ? t->layers[tot.worst_layer].name : "",
		         tot.net_bound, tot.pending ? " (pending layers count dense)" : "");
	}
	attron(A_BOLD);
	mvprintw(y, 0, "%.*s", w, line);
	attroff(A_BOLD);
}

/* Whether cell (y, x) lies on a slider's track (one row high). */
static bool
on_track(const tui_rect *r, int y, int x)
{
	return y == r->y && x >= r->x && x < r->x + r->w;
}

bool
tui_sliders_mouse(tui *t, int y, int x, bool press)
{
	tui_drag which = TUI_DRAG_NONE;
	tui_rect r;
	double pos;

	if (press) {
		if (on_track(&t->rank_slider, y, x))
			which = TUI_DRAG_RANK;
		else if (on_track(&t->sparsity_slider, y, x))
			which = TUI_DRAG_SPARSITY;
		else if (on_track(&t->bits_slider, y, x))
			which = TUI_DRAG_BITS;
		else if (on_track(&t->global_slider, y, x))
			which = TUI_DRAG_GLOBAL;
		/* a press anywhere else ends a drag whose release never came
		 * here (it went to a menu or the help), so later motion cannot
		 * move a slider the pointer is not on */
		t->drag = which;
		if (which == TUI_DRAG_NONE)
			return false;
		tui_edit_begin(t);         /* one drag is one undo step */
	} else if (t->drag == TUI_DRAG_NONE) {
		return false;
	}
	r = t->drag == TUI_DRAG_RANK ? t->rank_slider :
	    t->drag == TUI_DRAG_SPARSITY ? t->sparsity_slider :
	    t->drag == TUI_DRAG_BITS ? t->bits_slider : t->global_slider;
	pos = (double)(x - r.x) / (double)(r.w > 1 ? r.w - 1 : 1);
	pos = pos < 0 ? 0 : pos > 1 ? 1 : pos;
	if (t->drag == TUI_DRAG_SPARSITY || t->drag == TUI_DRAG_BITS) {
		size_t layer = tui_selected_layer(t);
		if (layer != SIZE_MAX && t->analyses[layer].magnitudes != NULL) {
			if (t->drag == TUI_DRAG_SPARSITY)
				tui_edit_set_sparsity(t, layer, floor(pos * 100 + 0.5) / 100);
			else
				tui_edit_set_bits(t, layer,
				                  1 + (unsigned)lround(pos * (RS_QUANT_CURVE_BITS - 1)));
		}
	} else if (t->drag == TUI_DRAG_RANK) {
		size_t layer = tui_selected_layer(t);
		if (layer != SIZE_MAX && t->spectra[layer] != NULL) {
			size_t k = t->spectra[layer]->k;
			tui_edit_set_rank(t, layer, 1 + (size_t)lround(pos * (double)(k - 1)));
		}
	} else {
		if (t->global_mode == TUI_GLOBAL_OFF)
			t->global_mode = TUI_GLOBAL_KEEP;
		t->global_value = position_to_global(t->global_mode, pos);
		tui_edit_apply_global(t);
	}
	return true;
}
