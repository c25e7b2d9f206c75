/*
 * tui.h — the interactive workbench (issue: "Explore").  Internal to the
 * tui-*.c files; only tui.c includes curses' lifecycle calls.
 *
 *   tui.c          curses set-up and restore, signals, the event loop, prompts
 *   tui-keys.c     the key table: bindings, actions, the generated help screen
 *   tui-table.c    the layer table: ordering, filtering, drawing, scrolling
 *   tui-plot.c     the spectrum view of the selected layer
 *   tui-sliders.c  slider rows (rank, global mode) and the totals line
 *   tui-edit.c     plan edits and their undo history
 *   tui-strategy.c the strategy menu, its parameter form, the Lua console
 *   tui-planfile.c saving and loading plans
 *   tui-solver.c   the background low-rank + sparse solve
 *
 * Views draw into rectangles of stdscr; one loop owns input and redraw.
 * Nothing numeric is computed here beyond calls into the core's O(1)
 * queries.
 */
#ifndef RANKSCOPE_TUI_H
#define RANKSCOPE_TUI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "rankscope/engine.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/combine.h"
#include "rankscope/plan.h"
#include "rankscope/planfile.h"
#include "rankscope/script.h"

typedef struct tui_rect {
	int y, x, h, w;
} tui_rect;

typedef enum tui_sort {
	TUI_SORT_FILE,          /* the network's order (model.h) */
	TUI_SORT_NAME,
	TUI_SORT_SIZE,          /* params, largest first */
	TUI_SORT_ERROR,         /* Frobenius error of the plan, largest first */
	TUI_SORT_COMPRESSIBLE,  /* rank for 99% energy / k, most compressible first */
	TUI_SORT_COUNT
} tui_sort;

typedef enum tui_global_mode {
	TUI_GLOBAL_OFF,
	TUI_GLOBAL_KEEP,        /* keep a fraction of every layer's rank */
	TUI_GLOBAL_ENERGY,      /* smallest rank keeping a fraction of energy */
	TUI_GLOBAL_COUNT
} tui_global_mode;

typedef enum tui_prompt_kind {
	TUI_PROMPT_NONE,
	TUI_PROMPT_FILTER,
	TUI_PROMPT_RANK,
	TUI_PROMPT_QUIT,
	TUI_PROMPT_LUA,          /* the : console */
	TUI_PROMPT_PARAM,        /* a value in the strategy form */
	TUI_PROMPT_SAVE,         /* file name to write the plan to */
	TUI_PROMPT_OVERWRITE,    /* that file exists: replace it? */
	TUI_PROMPT_LOAD          /* file name of a plan to load */
} tui_prompt_kind;

/* Which slider a mouse drag holds, if any. */
typedef enum tui_drag {
	TUI_DRAG_NONE,
	TUI_DRAG_RANK,
	TUI_DRAG_SPARSITY,
	TUI_DRAG_BITS,
	TUI_DRAG_GLOBAL
} tui_drag;

/* A decomposition's view (tui-decomp.c): per-group spectra of a grouped
 * SVD, the two mode spectra of Tucker-2. */
#define TUI_VIEW_SERIES 8
typedef struct tui_decomp_view {
	size_t layer;                  /* SIZE_MAX: none */
	rs_plan_entry entry;           /* what it was computed for */
	size_t nseries, total;         /* series shown, of total (groups) */
	double *series[TUI_VIEW_SERIES];
	size_t len[TUI_VIEW_SERIES];
	size_t mark[TUI_VIEW_SERIES];  /* values kept: indices below it */
	char label[TUI_VIEW_SERIES];
} tui_decomp_view;

/* The background solve of one layer's low rank + sparse or decomposition
 * entry (or the selected layer's decomposition view). */
typedef struct tui_solver {
	pthread_t thread;
	bool running;
	size_t layer;
	rs_plan_entry entry;           /* the spec being solved */
	volatile int cancel;
	pthread_mutex_t lock;          /* guards the fields below */
	size_t iteration;
	double error;                  /* after the last iteration */
	bool done;
	rs_status status;
	char message[RS_ERROR_MAX];
	rs_combine_result result;      /* of a combination's solve */
	bool view_only;                /* computing a view, no solve */
	rs_plan_entry solved;          /* a decomposition entry with its figures */
	double measured_out;           /* with calibration: the output error of the
	                                  solved entry's parts (rs_apply_measure), NaN
	                                  otherwise */
	tui_decomp_view view;          /* and its view */
} tui_solver;

#define TUI_UNDO_MAX 256

/* The prompt's input, the filter and the plan path are copied into one
 * another (the save and load prompts start from the plan path, the filter
 * prompt from the filter, a filter is what was typed), so they share one
 * size: a copy is never cut short.  PATH_MAX on Linux: no path the system
 * accepts is longer. */
#define TUI_TEXT_MAX 4096

typedef struct tui {
	/* what is open */
	const char *path;
	rs_model *model;
	rs_layer *layers;
	size_t nlayers;
	rs_engine *engine;
	const rs_spectrum **spectra;   /* snapshot of finished spectra, NULL = pending */
	rs_layer_analysis *analyses;   /* the same with statistics, for plan figures */
	size_t finished;               /* layers finished (done or failed) */
	size_t with_statistics;        /* layers whose statistics have arrived */

	/* the plan and its history */
	rs_plan plan;
	rs_plan saved;                 /* what "unsaved edits" is measured against */
	rs_plan undo[TUI_UNDO_MAX];
	size_t nundo;
	size_t nudge_layer;            /* layer of the last nudge, to coalesce undo */
	tui_global_mode global_mode;
	double global_value;           /* fraction in (0, 1] */

	/* The norm errors are shown and ranks chosen in (the n key): the
	 * weights' (Frobenius and spectral), or with calibration the layer
	 * output's on the calibration inputs (whiten.h), where a rank edit
	 * sets the whitened truncation, the optimum in that norm.  Which
	 * figures are shown is not part of the plan: no undo step. */
	bool calibrated;               /* opened with --calibration */
	bool output_norm;              /* output figures (only when calibrated) */
	bool calib_error_shown;        /* a layer's calibration error was said */

	/* the table */
	size_t *order;                 /* visible layers, in display order */
	size_t nvisible;
	size_t selected;               /* position in order */
	size_t top;                    /* first visible position */
	tui_sort sort;
	bool sort_reverse;
	char filter[TUI_TEXT_MAX];

	/* screen */
	bool utf8, colour;
	bool show_help;
	size_t help_top;               /* first binding shown when the help scrolls */
	tui_prompt_kind prompt;
	char input[TUI_TEXT_MAX];
	char message[256];
	bool message_is_error;
	tui_drag drag;
	tui_rect table_rect, plot_rect, rank_slider, sparsity_slider, bits_slider,
	         global_slider;
	bool quit;
	int wake_fd[2];                /* engine callbacks write here */

	/* strategies */
	rs_script *script;             /* NULL when Lua could not start */
	char **script_dirs;
	size_t nscript_dirs;
	rs_strategy_info *strategies;
	size_t nstrategies;
	int menu;                      /* 0 closed, 1 strategy list, 2 parameter form,
	                                  3 method list */
	size_t method_selected;
	size_t menu_selected;          /* strategy in the list */
	/* The parameter form belongs to the strategy it was opened for, not to
	 * the menu's cursor: it records that strategy and how many values it
	 * allocated, so freeing or drawing it never depends on what the menu
	 * shows now. */
	size_t form_strategy;          /* index into strategies of the open form */
	size_t form_nvalues;           /* entries allocated in form_values */
	size_t form_selected;          /* row in the form (form_nvalues = the run row) */
	char **form_values;            /* one per parameter of form_strategy */

	tui_solver solver;
	tui_decomp_view view;          /* of the selected layer's decomposition */

	/* plan files */
	rs_plan_origin origin;         /* what made the plan (the last strategy run) */
	char plan_path[TUI_TEXT_MAX];  /* last saved or loaded, the save prompt's default */

	/* crash recovery (tui-recovery.c) */
	char recovery_path[600];       /* the plan as of the last edit */
	rs_plan recovered;             /* what that file holds */
	time_t recovery_time;          /* when it was last written */
	bool recovery_dir_ok;          /* the state directory exists and takes writes */
} tui;

/* How the workbench starts. */
typedef struct tui_options {
	const char *const *strategy_dirs;
	size_t nstrategy_dirs;
	const rs_plan *plan;           /* start from this plan (NULL: all dense) */
	const rs_plan_origin *origin;
	const char *plan_path;
	size_t lua_memory;             /* the Lua state's limit (0: the default) */
} tui_options;

/* Colour pairs (tui.c sets them up; with no colour they map to attributes). */
enum {
	TUI_PAIR_TITLE = 1, TUI_PAIR_BAR, TUI_PAIR_MARK, TUI_PAIR_DIM,
	TUI_PAIR_ERROR, TUI_PAIR_ENERGY, TUI_PAIR_SELECTED
};
int tui_attr(const tui *t, int pair);

/* tui.c */
/* Runs the workbench on a loaded model until the user quits; starts and
 * frees the spectrum engine itself.  Returns the exit status. */
int tui_run(const char *path, rs_model *model, rs_layer *layers, size_t nlayers,
            const rs_engine_options *engine_options, const tui_options *options);
void tui_message(tui *t, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tui_start_prompt(tui *t, tui_prompt_kind kind, const char *initial);

/* tui-recovery.c */
void tui_recovery_init(tui *t);             /* paths; after t->path and the plan */
void tui_recovery_poll(tui *t);             /* writes the plan if it changed */
bool tui_recovery_pending(const tui *t);    /* an edit waits to be written */
void tui_recovery_finish(tui *t);           /* clean exit: removes the copy */
void tui_recovery_crash_report(int sig);    /* async-signal-safe */

/* tui-keys.c */
/* Runs the action bound to key; false when the key is unbound. */
bool tui_keys_dispatch(tui *t, int key);
void tui_keys_draw_help(tui *t, int lines, int cols);
/* Up (delta < 0) or Down in the help, kept within what there is to see. */
void tui_keys_help_scroll(tui *t, int delta);

/* tui-table.c */
void tui_table_refresh(tui *t);      /* re-sort and re-filter, keep selection */
void tui_table_draw(tui *t, tui_rect r);
void tui_table_move(tui *t, long delta);
void tui_table_move_to(tui *t, size_t position);
/* The error the table shows first and sorts by: err_F, or err_out in the
 * output norm (NaN where the layer has none). */
double tui_shown_error(const tui *t, const rs_plan_figures *f);
/* An output error as the workbench prints it: "-" when unknown (NaN), a
 * leading "~" when an estimate (diagonal statistics), 4 decimals. */
void tui_format_out_err(char *buf, size_t len, const rs_plan_figures *f);
/* Why a layer has no output figures in the output norm (its statistics
 * pending, absent from the file, or wrong for it), NULL when it has them
 * or there is no calibration. */
const char *tui_no_output_reason(const tui *t, size_t layer);
/* Selects the row shown at screen line y, if any; true when one was hit. */
bool tui_table_click(tui *t, int y);
/* The selected layer index, or (size_t)-1 when nothing is visible. */
size_t tui_selected_layer(const tui *t);
const char *tui_sort_name(tui_sort sort);

/* tui-plot.c */
void tui_plot_draw(tui *t, tui_rect r);

/* tui-sliders.c */
void tui_sliders_draw(tui *t);
void tui_totals_draw(tui *t, int y, int w);
/* Mouse on a slider row: sets the value at column x; true when handled. */
bool tui_sliders_mouse(tui *t, int y, int x, bool press);
const char *tui_global_mode_name(tui_global_mode mode);

/* tui-strategy.c */
void tui_strategy_init(tui *t, const char *const *extra_dirs, size_t nextra,
                       size_t lua_memory);
void tui_strategy_free(tui *t);
void tui_strategy_open_menu(tui *t);
void tui_strategy_draw(tui *t, int lines, int cols);
void tui_strategy_key(tui *t, int ch);         /* while the menu is open */
void tui_strategy_commit_param(tui *t);        /* TUI_PROMPT_PARAM entered */
const char *tui_strategy_form_param_name(const tui *t);   /* "" if none */
void tui_strategy_eval(tui *t, const char *code);

/* tui-planfile.c */
void tui_planfile_save_prompt(tui *t);
void tui_planfile_commit(tui *t, tui_prompt_kind kind);   /* SAVE/OVERWRITE/LOAD entered */

/* tui-decomp.c */
void tui_decomp_defaults(const tui *t, size_t layer, rs_method method, rs_plan_entry *e);
size_t tui_decomp_rank(const rs_plan_entry *e);
void tui_decomp_set_rank(tui *t, size_t layer, size_t rank);
void tui_decomp_cycle_groups(tui *t, int delta);
void tui_decomp_cycle_fold(tui *t);
rs_status tui_decomp_view_compute(const rs_layer *layer, const rs_plan_entry *e,
                                  const char *path, tui_decomp_view *v, rs_error *err);
void tui_decomp_view_free(tui_decomp_view *v);
void tui_decomp_draw(tui *t, tui_rect r, size_t layer);

/* tui-solver.c */
void tui_solver_init(tui *t);
/* Collects a finished solve and starts the next one that is needed. */
void tui_solver_poll(tui *t);
void tui_solver_stop(tui *t);

/* tui-edit.c */
void tui_edit_begin(tui *t);                  /* records an undo point */
bool tui_edit_begin_nudge(tui *t, size_t layer); /* one undo step per run of nudges */
void tui_edit_set_rank(tui *t, size_t layer, size_t rank);
void tui_edit_set_dense(tui *t, size_t layer);
void tui_edit_nudge_rank(tui *t, long delta); /* selected layer, coalesced */
void tui_edit_apply_global(tui *t);           /* (re)applies the global mode */
/* The global mode's rank for a layer with its spectrum (not OFF).  In the
 * output norm the energy threshold is of the output energy the whitened
 * truncation keeps, 1 - err_out^2 (the o90/o99 ranks of info), where the
 * layer has its output figures. */
size_t tui_edit_global_rank(const tui *t, size_t layer);
void tui_edit_undo(tui *t);
/* Forgets the last undo point when the plan has not changed since. */
void tui_edit_drop_unchanged(tui *t);
bool tui_edit_dirty(const tui *t);
/* The rank the selected layer's slider shows (k when dense). */
size_t tui_edit_current_rank(const tui *t, size_t layer);
/* Sparsity and bits sliders: switch the layer to pruning / quantisation
 * (or change the sparse part of a low rank + sparse entry). */
void tui_edit_set_sparsity(tui *t, size_t layer, double sparsity);
void tui_edit_set_bits(tui *t, size_t layer, unsigned bits);
void tui_edit_set_method(tui *t, size_t layer, rs_method method);
void tui_edit_nudge_sparsity(tui *t, double delta);
void tui_edit_nudge_bits(tui *t, int delta);
void tui_edit_cycle_quantizer(tui *t);
/* Method-menu and plot helpers. */
void tui_method_menu_draw(tui *t, int lines, int cols);
void tui_method_menu_key(tui *t, int ch);

#endif
