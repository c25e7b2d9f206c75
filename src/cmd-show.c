/*
 * cmd-show.c — `rankscope show PLAN MODEL`: a saved plan checked against
 * the model and printed as a table, CSV (for spreadsheets and plotting) or
 * JSON (the plan re-derived from the model's spectra).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/planfile.h"

static int
show_run(const cmd_entry *self, cmd_options *opts)
{
	const char *plan_path = opts->args[0], *path = opts->args[1];
	rs_layer_analysis *analyses;
	rs_plan_origin origin;
	cmd_session s;
	rs_plan plan;
	rs_error err;
	int status = CMD_EXIT_OK;

	(void)self;
	if (!cmd_session_open_plan(&s, path, plan_path, opts, &plan, &origin))
		return CMD_EXIT_FAILURE;
	analyses = cmd_session_analyses(&s);
	if (strcmp(opts->format, "csv") == 0) {
		cmd_print_plan_csv(s.layers, s.nlayers, analyses, &plan);
	} else if (strcmp(opts->format, "json") == 0) {
		char *json = rs_plan_to_json(s.model, s.layers, s.nlayers, analyses, &plan,
		                             &origin, 2);
		fputs(json, stdout);
		free(json);
	} else {
		cmd_print_plan(s.layers, s.nlayers, analyses, &plan);
	}
	if (opts->output != NULL &&
	    rs_plan_save(opts->output, s.model, s.layers, s.nlayers, analyses, &plan,
	                 &origin, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		status = CMD_EXIT_FAILURE;
	}
	free(analyses);
	rs_plan_origin_free(&origin);
	rs_plan_free(&plan);
	cmd_session_close(&s);
	return status;
}

static const char *const show_formats[] = {"table", "csv", "json", NULL};

const cmd_entry cmd_show_entry = {
	.name = "show",
	.usage = "PLAN MODEL",
	.summary = "Check a saved plan against its model and print it (table, csv or json); "
	           "-o re-saves it.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_FORMAT) | OPT_BIT(OPT_OUTPUT),
	.formats = show_formats,
	.min_args = 2, .max_args = 2,
	.run = show_run,
};
