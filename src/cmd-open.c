/*
 * cmd-open.c — `rankscope MODEL`: the interactive workbench when standard
 * input and output are a terminal; otherwise (a pipe, a script) the layer
 * table of `info`, so the command stays useful in both places.
 */
#include "config.h"

#include <unistd.h>

#include "cmd.h"
#include "tui.h"

static int
open_run(const cmd_entry *self, cmd_options *opts)
{
	cmd_session s;
	rs_engine_options eo;
	int status;

	(void)self;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		opts->format = "table";
		return cmd_info_entry.run(&cmd_info_entry, opts);
	}
	if (!cmd_session_load(&s, opts->args[0], opts))
		return CMD_EXIT_FAILURE;
	eo = cmd_session_engine_options(&s, opts);
	status = tui_run(opts->args[0], s.model, s.layers, s.nlayers, &eo,
	                 opts->strategy_dirs, opts->nstrategy_dirs);
	cmd_session_close(&s);
	return status;
}

const cmd_entry cmd_open_entry = {
	.name = "open",
	.usage = "MODEL",
	.summary = "Open a model in the interactive workbench (on a terminal), "
	           "else print its layer table.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_STRATEGY_PATH),
	.min_args = 1, .max_args = 1,
	.run = open_run,
};
