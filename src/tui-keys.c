/*
 * tui-keys.c — the key table.  Every binding is one row: the keys, how the
 * help screen names them, what they do.  Dispatch and the `?` screen are
 * both generated from it, so the help can never disagree with the keys.
 */
#include "config.h"

#include <curses.h>
#include <stdint.h>
#include <string.h>

#include "tui.h"

#define CTRL(c) ((c) & 0x1f)

typedef struct tui_binding {
	int keys[4];              /* 0-terminated */
	const char *names;        /* as shown in help */
	const char *help;
	void (*action)(tui *t);
} tui_binding;

static void key_up(tui *t) { tui_table_move(t, -1); }
static void key_down(tui *t) { tui_table_move(t, 1); }
static void key_page_up(tui *t) { tui_table_move(t, -(long)(t->table_rect.h > 2 ? t->table_rect.h - 2 : 1)); }
static void key_page_down(tui *t) { tui_table_move(t, t->table_rect.h > 2 ? t->table_rect.h - 2 : 1); }
static void key_first(tui *t) { tui_table_move_to(t, 0); }
static void key_last(tui *t) { tui_table_move_to(t, SIZE_MAX); }
static void key_rank_down(tui *t) { tui_edit_nudge_rank(t, -1); }
static void key_fewer_groups(tui *t) { tui_decomp_cycle_groups(t, -1); }
static void key_more_groups(tui *t) { tui_decomp_cycle_groups(t, 1); }
static void key_cycle_fold(tui *t) { tui_decomp_cycle_fold(t); }
static void key_rank_up(tui *t) { tui_edit_nudge_rank(t, 1); }

/* A coarse step: a twentieth of the full rank. */
static long
coarse_step(const tui *t)
{
	size_t layer = tui_selected_layer(t);
	const rs_spectrum *s = layer == SIZE_MAX ? NULL : t->spectra[layer];
	long step = s ? (long)(s->k / 20) : 1;

	return step < 1 ? 1 : step;
}

static void key_rank_down_more(tui *t) { tui_edit_nudge_rank(t, -coarse_step(t)); }
static void key_rank_up_more(tui *t) { tui_edit_nudge_rank(t, coarse_step(t)); }

static void
key_type_rank(tui *t)
{
	size_t layer = tui_selected_layer(t);

	if (layer == SIZE_MAX || t->spectra[layer] == NULL) {
		tui_message(t, false, "no spectrum to set a rank on yet");
		return;
	}
	tui_start_prompt(t, TUI_PROMPT_RANK, "");
}

static void
key_make_dense(tui *t)
{
	size_t layer = tui_selected_layer(t);

	if (layer == SIZE_MAX)
		return;
	tui_edit_begin(t);
	tui_edit_set_dense(t, layer);
}

static void
key_cycle_global(tui *t)
{
	tui_edit_begin(t);
	t->global_mode = (t->global_mode + 1) % TUI_GLOBAL_COUNT;
	t->global_value = t->global_mode == TUI_GLOBAL_ENERGY ? 0.99 : 0.5;
	tui_edit_apply_global(t);
	tui_message(t, false, "global mode: %s", tui_global_mode_name(t->global_mode));
}

static void
global_step(tui *t, int direction)
{
	double v = t->global_value;

	if (t->global_mode == TUI_GLOBAL_OFF) {
		tui_message(t, false, "global mode is off: press m to choose one");
		return;
	}
	tui_edit_begin(t);
	if (t->global_mode == TUI_GLOBAL_KEEP) {
		v += 0.05 * direction;
		v = v < 0.01 ? 0.01 : v > 1 ? 1 : v;
	} else {
		/* energy: scale what is discarded, 1 - e, by 1.5 */
		double loss = (1 - v) * (direction > 0 ? 1 / 1.5 : 1.5);
		v = 1 - (loss > 0.5 ? 0.5 : loss < 1e-5 ? 1e-5 : loss);
	}
	t->global_value = v;
	tui_edit_apply_global(t);
}

static void key_global_less(tui *t) { global_step(t, -1); }
static void key_global_more(tui *t) { global_step(t, 1); }

static void
key_cycle_sort(tui *t)
{
	t->sort = (t->sort + 1) % TUI_SORT_COUNT;
	tui_table_refresh(t);
	tui_message(t, false, "sorted by %s", tui_sort_name(t->sort));
}

static void
key_reverse_sort(tui *t)
{
	t->sort_reverse = !t->sort_reverse;
	tui_table_refresh(t);
	/* Said, so that the change is visible even when the order looks alike. */
	tui_message(t, false, "sorted by %s%s", tui_sort_name(t->sort),
	            t->sort_reverse ? ", reversed" : "");
}

/* Weight or output figures: what is shown, sorted by, and what a rank edit
 * optimises; the plan itself does not change. */
static void
key_norm(tui *t)
{
	if (!t->calibrated) {
		tui_message(t, false, "only the weight norm: output errors need calibration "
		            "statistics (start with --calibration FILE)");
		return;
	}
	t->output_norm = !t->output_norm;
	if (t->sort == TUI_SORT_ERROR)
		tui_table_refresh(t);
	if (t->output_norm)
		tui_message(t, false, "output norm: err_out is the output error on the "
		            "calibration inputs; ranks set the whitened truncation");
	else
		tui_message(t, false, "weight norm: err_F and err_2 of the weights; ranks set "
		            "the plain truncation");
}

static void key_filter(tui *t) { tui_start_prompt(t, TUI_PROMPT_FILTER, t->filter); }
static void key_undo(tui *t) { tui_edit_undo(t); }
static void key_sparser(tui *t) { tui_edit_nudge_sparsity(t, 0.05); }
static void key_denser(tui *t) { tui_edit_nudge_sparsity(t, -0.05); }
static void key_fewer_bits(tui *t) { tui_edit_nudge_bits(t, -1); }
static void key_more_bits(tui *t) { tui_edit_nudge_bits(t, 1); }
static void key_quantizer(tui *t) { tui_edit_cycle_quantizer(t); }
static void key_methods(tui *t) { t->menu = 3; }
static void key_strategies(tui *t) { tui_strategy_open_menu(t); }
static void key_save(tui *t) { tui_planfile_save_prompt(t); }
static void key_load(tui *t) { tui_start_prompt(t, TUI_PROMPT_LOAD, t->plan_path); }
static void key_console(tui *t) { tui_start_prompt(t, TUI_PROMPT_LUA, ""); }
static void key_help(tui *t) { t->show_help = true; t->help_top = 0; }
static void key_redraw(tui *t) { (void)t; clearok(curscr, TRUE); }

static void
key_quit(tui *t)
{
	if (tui_edit_dirty(t))
		tui_start_prompt(t, TUI_PROMPT_QUIT, "");
	else
		t->quit = true;
}

static const tui_binding bindings[] = {
	{{KEY_UP, 'k', 0}, "Up k", "previous layer", key_up},
	{{KEY_DOWN, 'j', 0}, "Down j", "next layer", key_down},
	{{KEY_PPAGE, CTRL('b'), 0}, "PgUp ^B", "page up", key_page_up},
	{{KEY_NPAGE, CTRL('f'), 0}, "PgDn ^F", "page down", key_page_down},
	{{KEY_HOME, 'g', 0}, "Home g", "first layer", key_first},
	{{KEY_END, 'G', 0}, "End G", "last layer", key_last},
	{{KEY_LEFT, 'h', 0}, "Left h", "rank - 1 for this layer", key_rank_down},
	{{KEY_RIGHT, 'l', 0}, "Right l", "rank + 1 for this layer", key_rank_up},
	{{KEY_SLEFT, 'H', 0}, "S-Left H", "rank - k/20", key_rank_down_more},
	{{KEY_SRIGHT, 'L', 0}, "S-Right L", "rank + k/20", key_rank_up_more},
	{{'r', 0}, "r", "type a rank for this layer", key_type_rank},
	{{']', 0}, "[ ]", "sparsity - / + 0.05 (prunes this layer)", key_sparser},
	{{'[', 0}, NULL, NULL, key_denser},
	{{'b', 0}, "b B", "bits - / + 1 (quantises this layer)", key_fewer_bits},
	{{'B', 0}, NULL, NULL, key_more_bits},
	{{'Q', 0}, "Q", "quantiser: uniform, per-channel, k-means, binary, ternary", key_quantizer},
	{{'M', 0}, "M", "method for this layer: a menu", key_methods},
	{{'c', 0}, "c C", "group count - / + (a grouped SVD of this layer)", key_fewer_groups},
	{{'C', 0}, NULL, NULL, key_more_groups},
	{{'f', 0}, "f", "fold scheme of this layer's grouped SVD (conv)", key_cycle_fold},
	{{'d', 0}, "d", "keep this layer dense", key_make_dense},
	{{'m', 0}, "m", "global mode: off, keep ratio, energy threshold", key_cycle_global},
	{{'-', '_', 0}, "- +", "lower / raise the global value", key_global_less},
	{{'+', '=', 0}, NULL, NULL, key_global_more},
	{{'n', 0}, "n", "norm of the errors: weight or output (needs --calibration)", key_norm},
	{{'o', 0}, "o", "sort: network order, name, size, error, compressibility", key_cycle_sort},
	{{'O', 0}, "O", "reverse the sort", key_reverse_sort},
	{{'/', 0}, "/", "filter layers by name (substring or glob)", key_filter},
	{{'u', 0}, "u", "undo the last plan edit", key_undo},
	{{'s', 0}, "s", "strategies: choose one, set its parameters, run it", key_strategies},
	{{':', 0}, ":", "Lua console (model, plan; Esc stops a script)", key_console},
	{{'w', 0}, "w", "save the plan (asks before replacing a file)", key_save},
	{{'e', 0}, "e", "load a plan from a file", key_load},
	{{'?', KEY_F(1), 0}, "? F1", "this help", key_help},
	{{CTRL('l'), 0}, "^L", "redraw the screen", key_redraw},
	{{'q', 0}, "q", "quit (asks when there are plan edits)", key_quit},
};

bool
tui_keys_dispatch(tui *t, int key)
{
	size_t i, j;

	for (i = 0; i < sizeof bindings / sizeof bindings[0]; i++)
		for (j = 0; bindings[i].keys[j] != 0; j++)
			if (bindings[i].keys[j] == key) {
				bindings[i].action(t);
				return true;
			}
	return false;
}

/* The help's geometry on a screen of `lines`: n bindings listed, the box
 * h rows high; returns the largest help_top (0 when everything fits). */
static size_t
help_geometry(int lines, int *n_out, int *h_out)
{
	int n = 0, h;
	size_t i;

	for (i = 0; i < sizeof bindings / sizeof bindings[0]; i++)
		n += bindings[i].names != NULL;
	h = n + 6;
	if (h > lines)
		h = lines;
	*n_out = n;
	*h_out = h;
	return n > h - 4 ? (size_t)(n - (h - 4)) : 0;
}

void
tui_keys_help_scroll(tui *t, int delta)
{
	int n, h;
	size_t last = help_geometry(LINES, &n, &h);

	/* saturating at both ends: a scroll key never closes the help, and
	 * presses past the end are not stored up for the way back */
	if (delta < 0)
		t->help_top = t->help_top > 0 ? t->help_top - 1 : 0;
	else if (t->help_top < last)
		t->help_top++;
	if (t->help_top > last)
		t->help_top = last;
}

void
tui_keys_draw_help(tui *t, int lines, int cols)
{
	int n, h, w = 74, y0, x0, y;
	size_t i, j, last = help_geometry(lines, &n, &h);

	if (w > cols)
		w = cols;
	y0 = (lines - h) / 2;
	x0 = (cols - w) / 2;
	for (y = 0; y < h; y++)
		mvprintw(y0 + y, x0, "%*s", w, "");
	/* a frame one cell outside the text */
	if (y0 > 0 && x0 > 0 && y0 + h < lines && x0 + w < cols) {
		mvhline(y0 - 1, x0 - 1, 0, w + 2);
		mvhline(y0 + h, x0 - 1, 0, w + 2);
		mvvline(y0, x0 - 1, 0, h);
		mvvline(y0, x0 + w, 0, h);
		mvaddch(y0 - 1, x0 - 1, ACS_ULCORNER);
		mvaddch(y0 - 1, x0 + w, ACS_URCORNER);
		mvaddch(y0 + h, x0 - 1, ACS_LLCORNER);
		mvaddch(y0 + h, x0 + w, ACS_LRCORNER);
	}
	attron(A_BOLD);
	mvprintw(y0, x0, "%.*s", w, " rankscope keys");
	attroff(A_BOLD);
	/* a short terminal shows a window of the list: the arrows scroll it */
	if (t->help_top > last)
		t->help_top = last;
	y = 2;
	for (i = 0, j = 0; i < sizeof bindings / sizeof bindings[0] && y < h - 2; i++) {
		if (bindings[i].names == NULL || j++ < t->help_top)
			continue;
		mvprintw(y0 + y++, x0, " %-10s %.*s", bindings[i].names, w - 13,
		         bindings[i].help);
	}
	mvprintw(y0 + h - 2, x0, "%.*s", w,
	         " mouse: click a row; click or drag a slider; wheel scrolls");
	attron(tui_attr(t, TUI_PAIR_DIM));
	mvprintw(y0 + h - 1, x0, "%.*s", w, n + 6 > lines ?
	         " Up/Down scroll, any other key closes this help" : " any key closes this help");
	attroff(tui_attr(t, TUI_PAIR_DIM));
}
