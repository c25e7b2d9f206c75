/*
 * cmd.h — the command-line front end: one descriptor per subcommand
 * (cmd-*.c), one table of options (cmd-options.c) from which parsing,
 * --help and the man page's option list are all derived.
 */
#ifndef RANKSCOPE_CMD_H
#define RANKSCOPE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "rankscope/engine.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"

/* Exit statuses. */
enum {
	CMD_EXIT_OK = 0,
	CMD_EXIT_FAILURE = 1,   /* the work failed: bad file, failed layer, I/O */
	CMD_EXIT_USAGE = 2      /* the command line was wrong */
};

/* Option identifiers; a command accepts a set of them (bit mask). */
typedef enum cmd_option_id {
	OPT_LAYER, OPT_EXCLUDE, OPT_FOLD, OPT_THREADS, OPT_METHOD, OPT_NO_CACHE,
	OPT_FORMAT, OPT_QUIET, OPT_PARAM, OPT_STRATEGY_PATH, OPT_OUTPUT, OPT_PLAN,
	OPT_COMPOSE, OPT_LUA_MEMORY, OPT_LAYOUT, OPT_KIND, OPT_SPLIT, OPT_CALIBRATION, OPT_DENSE, OPT_DTYPE, OPT_HELP,
	OPT_COUNT
} cmd_option_id;

#define OPT_BIT(id) (1u << (id))
#define OPT_ANALYSIS (OPT_BIT(OPT_LAYER) | OPT_BIT(OPT_EXCLUDE) | \
    OPT_BIT(OPT_FOLD) | OPT_BIT(OPT_THREADS) | OPT_BIT(OPT_METHOD) | \
    OPT_BIT(OPT_NO_CACHE) | OPT_BIT(OPT_QUIET) | OPT_BIT(OPT_COMPOSE) | \
    OPT_BIT(OPT_LAYOUT) | OPT_BIT(OPT_KIND) | OPT_BIT(OPT_SPLIT) | OPT_BIT(OPT_CALIBRATION) | \
    OPT_BIT(OPT_DTYPE) | OPT_BIT(OPT_HELP))

typedef struct cmd_option_info {
	const char *long_name;
	char short_name;          /* 0 when none */
	const char *metavar;      /* NULL for a flag */
	const char *help;
} cmd_option_info;

extern const cmd_option_info cmd_option_table[OPT_COUNT];

/* Parsed options; the lists are rs_xmalloc'd. */
typedef struct cmd_options {
	const char **include;
	size_t ninclude;
	const char **exclude;
	size_t nexclude;
	const char **compose;     /* --compose patterns */
	size_t ncompose;
	const char **layouts;     /* --layout PATTERN=in,out|out,in */
	size_t nlayouts;
	const char **kinds;       /* --kind PATTERN=KIND */
	size_t nkinds;
	const char **splits;      /* --split PATTERN=PART,... */
	size_t nsplits;
	int fold;
	int threads;
	rs_svd_method method;
	bool no_cache;
	bool quiet;
	const char *format;       /* NULL = the command's default */
	const char **params;      /* --param name=value */
	size_t nparams;
	const char **strategy_dirs;
	size_t nstrategy_dirs;
	size_t lua_memory;        /* --lua-memory in bytes; 0 = the runtime's default */
	const char *output;       /* -o FILE */
	const char *plan;         /* --plan FILE */
	const char *calibration;  /* --calibration FILE (calib.h) */
	bool statistics;          /* also build pruning/quantisation statistics */
	bool dense;               /* apply --dense */
	const char *value_dtype;  /* --dtype: F16, BF16 or F32; NULL = the model's */
	char **args;              /* positional arguments */
	int nargs;
} cmd_options;

typedef struct cmd_entry {
	const char *name;
	const char *usage;        /* positional arguments, e.g. "MODEL" */
	const char *summary;
	unsigned options;         /* OPT_BIT mask */
	const char *const *formats;  /* accepted --format values, first is default */
	int min_args, max_args;
	int (*run)(const struct cmd_entry *self, cmd_options *opts);
} cmd_entry;

extern const cmd_entry cmd_info_entry;
extern const cmd_entry cmd_spectra_entry;
extern const cmd_entry cmd_open_entry;
extern const cmd_entry cmd_run_entry;
extern const cmd_entry cmd_strategies_entry;
extern const cmd_entry cmd_show_entry;
extern const cmd_entry cmd_diff_entry;
extern const cmd_entry cmd_apply_entry;

/* Parses argv for `entry`; on error prints to stderr and returns false
 * with *exit_status set (0 after --help). */
bool cmd_parse(const cmd_entry *entry, int argc, char **argv,
               cmd_options *opts, int *exit_status);
void cmd_options_free(cmd_options *opts);
void cmd_print_help(const cmd_entry *entry, FILE *out);

/*
 * A model opened for analysis: its layers and the finished spectrum engine.
 * cmd_session_open prints its own errors (to stderr) and shows progress
 * while spectra are computed when stderr is a terminal.
 */
typedef struct cmd_session {
	rs_model *model;
	rs_compose_set *compose;
	rs_layer *layers;
	size_t nlayers;
	rs_engine *engine;
	char *cache_dir;
	struct rs_calib *calib;   /* --calibration, or NULL */
} cmd_session;

/* Loads the model and its layers (no spectra yet). */
bool cmd_session_load(cmd_session *s, const char *path, const cmd_options *opts);
/* The engine options the command line asks for (cache dir from s). */
rs_engine_options cmd_session_engine_options(const cmd_session *s,
                                             const cmd_options *opts);
/* cmd_session_load, then every spectrum, waiting with a progress line. */
bool cmd_session_open(cmd_session *s, const char *path, const cmd_options *opts);
/* Prints each failed layer's message to stderr; returns how many failed. */
size_t cmd_session_report_failures(cmd_session *s);
/* For commands that read a plan against a model (show, apply): opens the
 * session with statistics, fails if any layer lacks its spectrum, then
 * loads plan_path into *plan and *origin.  On failure prints why, leaves
 * the session closed and returns false. */
struct rs_plan_origin;
bool cmd_session_open_plan(cmd_session *s, const char *path, const char *plan_path,
                           cmd_options *opts, rs_plan *plan, struct rs_plan_origin *origin);
/* A plan made with calibration is used only with the same file: prints
 * why not and returns false otherwise. */
bool cmd_session_plan_calibration(const cmd_session *s, const char *plan_path,
                                  const struct rs_plan_origin *origin);
void cmd_session_close(cmd_session *s);

/* A Lua runtime over a session whose spectra are computed (cmd-run.c);
 * fills spectra[] from the engine.  Prints its own errors. */
struct rs_script;
struct rs_script *cmd_script_new(cmd_session *s, const cmd_options *opts,
                                 const rs_layer_analysis *analyses, rs_plan *plan);

/* Output helpers (cmd-output.c). */
/* The per-layer table of a plan and its totals line, for people. */
void cmd_print_plan(const rs_layer *layers, size_t nlayers,
                    const rs_layer_analysis *analyses, const rs_plan *plan);
/* The same as CSV, one row per layer. */
void cmd_print_plan_csv(const rs_layer *layers, size_t nlayers,
                        const rs_layer_analysis *analyses, const rs_plan *plan);
/* The analyses of a finished session (malloc'd array, contents borrowed). */
rs_layer_analysis *cmd_session_analyses(const cmd_session *s);
void cmd_csv_field(FILE *out, const char *text);
json_t *cmd_shape_json(const rs_tensor *t);
/* Sets "layout", "role" and "groups" (null when not known) of a tensor. */
void cmd_tensor_role_json(json_t *o, const rs_tensor *t);
/* Pretty-prints to stdout with 17 significant digits for reals. */
void cmd_json_print(json_t *root);

#endif
