/*
 * script.h — the embedded Lua 5.4 runtime (lua-runtime.c) and the
 * `rankscope` module it offers scripts (lua-model.c).
 *
 * One rs_script owns one lua_State.  Scripts see the host's model, layers,
 * spectra and plan through userdata; they never get a copy of a matrix.
 * The state is a sandbox: no debug library, no C modules, no bytecode
 * (every chunk is loaded in text mode), os and io cut down to clocks, dates,
 * getenv and writing to the host's output.
 *
 * Every call into Lua is protected and carries a traceback; a failing or
 * interrupted strategy leaves the plan exactly as it was before it ran.
 */
#ifndef RANKSCOPE_SCRIPT_H
#define RANKSCOPE_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/analysis.h"
#include "rankscope/error.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"
#include "rankscope/spectrum.h"

/* What the runtime works on; everything borrowed from the host. */
typedef struct rs_script_host {
	const rs_model *model;
	const rs_layer *layers;
	size_t nlayers;
	/* analyses[i].spectrum is NULL while layer i is pending; scripts asking
	 * for it get an error saying so.  The array may change between calls. */
	const rs_layer_analysis *analyses;
	rs_plan *plan;
	/* Where print() and io.write() go (a line at a time for print). */
	void (*output)(void *userdata, const char *text, size_t len);
	/* Polled every few thousand Lua instructions; returning true stops
	 * the script ("interrupted").  May be NULL. */
	bool (*should_stop)(void *userdata);
	void *userdata;
	/* The most bytes the Lua state may hold (0: RS_SCRIPT_DEFAULT_MEMORY).
	 * A script going past it fails with "out of memory in strategy NAME"
	 * and leaves the plan as it was; the host is not affected. */
	size_t memory_limit;
} rs_script_host;

#define RS_SCRIPT_DEFAULT_MEMORY ((size_t)512 << 20)

typedef struct rs_script rs_script;

/* A typed strategy parameter, as declared in the module's `params`. */
typedef enum rs_param_type {
	RS_PARAM_NUMBER, RS_PARAM_INTEGER, RS_PARAM_BOOLEAN, RS_PARAM_STRING,
	RS_PARAM_CHOICE
} rs_param_type;

typedef struct rs_strategy_param {
	char *name;
	rs_param_type type;
	char *help;
	char *default_text;       /* the default, as text */
	bool has_min, has_max;
	double min, max;
	char **choices;           /* RS_PARAM_CHOICE */
	size_t nchoices;
} rs_strategy_param;

typedef struct rs_strategy_info {
	char *name;
	char *description;
	char *path;               /* the file it came from */
	rs_strategy_param *params;
	size_t nparams;
} rs_strategy_info;

/*
 * Creates the runtime.  `dirs` are searched in order for strategies
 * (NAME.lua) and for modules scripts require; rs_script_default_dirs gives
 * the usual list.
 */
rs_script *rs_script_new(const rs_script_host *host, const char *const *dirs,
                         size_t ndirs, rs_error *err);
void rs_script_free(rs_script *s);

/*
 * The default search path, highest priority first: each `extra` directory
 * (--strategy-path), $XDG_CONFIG_HOME/rankscope/strategies (or
 * ~/.config/rankscope/strategies), then the shipped strategies.  The
 * returned array and strings are malloc'd; free with rs_script_free_dirs.
 */
char **rs_script_default_dirs(const char *const *extra, size_t nextra, size_t *n);
void rs_script_free_dirs(char **dirs, size_t n);

/* Every strategy found in the directories (first one of a name wins),
 * sorted by name.  Files that fail to load are reported in err (the first
 * one) but do not stop the listing. */
rs_status rs_script_list(rs_script *s, rs_strategy_info **out, size_t *n,
                         rs_error *err);
void rs_strategy_info_free(rs_strategy_info *infos, size_t n);

/*
 * Runs a strategy: `what` is a strategy name or a path to a .lua file.
 * params are "name=value" strings, checked against the strategy's
 * declared params (type, range, choices; unknown names are an error).
 * A file that does not return a strategy table is run as a plain script
 * with (model, plan, params) as its arguments.  *summary (may be NULL)
 * receives what run() returned, if it returned a string (malloc'd).
 */
rs_status rs_script_run(rs_script *s, const char *what, const char *const *params,
                        size_t nparams, char **summary, rs_error *err);

/* Runs a chunk of Lua text (the console), with globals `model` and `plan`.
 * Results are printed through host->output. */
rs_status rs_script_eval(rs_script *s, const char *code, rs_error *err);

/* Makes the running script stop at its next instruction count check.
 * Async-signal-safe: a SIGINT handler may call it. */
void rs_script_interrupt(rs_script *s);

#endif
