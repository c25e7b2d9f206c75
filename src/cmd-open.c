/*
 * cmd-open.c — `rankscope MODEL`: the interactive workbench when standard
 * input and output are a terminal; otherwise (a pipe, a script) the layer
 * table of `info`, so the command stays useful in both places.
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "cmd.h"
#include "tui.h"

static int
open_run(const cmd_entry *self, cmd_options *opts)
{
	cmd_session s;
	rs_engine_options eo;
	tui_options to = {
		.strategy_dirs = opts->strategy_dirs, .nstrategy_dirs = opts->nstrategy_dirs,
		.plan_path = opts->plan, .lua_memory = opts->lua_memory,
	};
	rs_plan plan;
	rs_plan_origin origin;
	rs_error err;
	int status;

	(void)self;
	opts->format = "table";
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		/* not a terminal: the plan's table, or the layer table */
		if (opts->plan != NULL) {
			char *args[2] = {(char *)opts->plan, opts->args[0]};
			opts->args = args;
			opts->nargs = 2;
			return cmd_show_entry.run(&cmd_show_entry, opts);
		}
		return cmd_info_entry.run(&cmd_info_entry, opts);
	}
	if (!cmd_session_load(&s, opts->args[0], opts))
		return CMD_EXIT_FAILURE;
	if (opts->plan != NULL) {
		/* a plan that does not fit is refused before the screen changes */
		if (rs_plan_load(opts->plan, s.model, s.layers, s.nlayers, &plan, &origin,
		                 &err) != RS_OK) {
			fprintf(stderr, "rankscope: %s\n", err.msg);
			cmd_session_close(&s);
			return CMD_EXIT_FAILURE;
		}
		if (!cmd_session_plan_calibration(&s, opts->plan, &origin)) {
			rs_plan_free(&plan);
			rs_plan_origin_free(&origin);
			cmd_session_close(&s);
			return CMD_EXIT_FAILURE;
		}
		to.plan = &plan;
		to.origin = &origin;
	}
	eo = cmd_session_engine_options(&s, opts);
	status = tui_run(opts->args[0], s.model, s.layers, s.nlayers, &eo, &to);
	if (opts->plan != NULL) {
		rs_plan_free(&plan);
		rs_plan_origin_free(&origin);
	}
	cmd_session_close(&s);
	return status;
}

const cmd_entry cmd_open_entry = {
	.name = "open",
	.usage = "MODEL",
	.summary = "Open a model in the interactive workbench (on a terminal), "
	           "else print its layer table.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_STRATEGY_PATH) | OPT_BIT(OPT_LUA_MEMORY) | OPT_BIT(OPT_PLAN),
	.min_args = 1, .max_args = 1,
	.run = open_run,
};
