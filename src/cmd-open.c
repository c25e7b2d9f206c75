/*
 * cmd-open.c — `rankscope MODEL`: what opening a model shows.  Until the
 * interactive workbench lands this prints the layer table of `info`.
 */
#include "config.h"

#include "cmd.h"

static int
open_run(const cmd_entry *self, cmd_options *opts)
{
	(void)self;
	opts->format = "table";
	return cmd_info_entry.run(&cmd_info_entry, opts);
}

const cmd_entry cmd_open_entry = {
	.name = "open",
	.usage = "MODEL",
	.summary = "Open a model: for now, print its layer table (as 'info').",
	.options = OPT_ANALYSIS,
	.min_args = 1, .max_args = 1,
	.run = open_run,
};
