/*
 * cmd-strategies.c — `rankscope strategies`: every strategy found, where it
 * comes from, and its parameters with types, defaults, ranges and help.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "rankscope/script.h"

static const char *const type_names[] = {
	[RS_PARAM_NUMBER] = "number", [RS_PARAM_INTEGER] = "integer",
	[RS_PARAM_BOOLEAN] = "boolean", [RS_PARAM_STRING] = "string",
	[RS_PARAM_CHOICE] = "choice",
};

static void
print_param(const rs_strategy_param *p)
{
	size_t c;

	printf("    %s (%s", p->name, type_names[p->type]);
	if (p->has_min || p->has_max)
		printf(", %g..%g", p->has_min ? p->min : -1.0 / 0.0, p->has_max ? p->max : 1.0 / 0.0);
	for (c = 0; c < p->nchoices; c++)
		printf("%s%s", c ? "|" : ": ", p->choices[c]);
	printf(", default %s)\n", p->default_text ? p->default_text : "none");
	if (p->help)
		printf("        %s\n", p->help);
}

static int
strategies_run(const cmd_entry *self, cmd_options *opts)
{
	rs_model empty = {.path = (char *)"(none)"};
	rs_plan plan = {0};
	rs_script_host host = {.model = &empty, .plan = &plan,
	                       .memory_limit = opts->lua_memory};
	rs_strategy_info *infos;
	size_t ndirs, n, i, j;
	char **dirs = rs_script_default_dirs(opts->strategy_dirs, opts->nstrategy_dirs, &ndirs);
	rs_script *script;
	rs_error err;
	int status = CMD_EXIT_OK;

	(void)self;
	script = rs_script_new(&host, (const char *const *)dirs, ndirs, &err);
	if (script == NULL) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		rs_script_free_dirs(dirs, ndirs);
		return CMD_EXIT_FAILURE;
	}
	if (rs_script_list(script, &infos, &n, &err) != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		status = CMD_EXIT_FAILURE;
	}
	for (i = 0; i < n; i++) {
		printf("%s: %s\n    from %s\n", infos[i].name,
		       infos[i].description ? infos[i].description : "", infos[i].path);
		for (j = 0; j < infos[i].nparams; j++)
			print_param(&infos[i].params[j]);
	}
	printf("searched:");
	for (i = 0; i < ndirs; i++)
		printf(" %s", dirs[i]);
	printf("\n");
	rs_strategy_info_free(infos, n);
	rs_script_free(script);
	rs_script_free_dirs(dirs, ndirs);
	return status;
}

const cmd_entry cmd_strategies_entry = {
	.name = "strategies",
	.usage = "",
	.summary = "List the compression strategies found, with their parameters.",
	.options = OPT_BIT(OPT_STRATEGY_PATH) | OPT_BIT(OPT_LUA_MEMORY) | OPT_BIT(OPT_HELP),
	.min_args = 0, .max_args = 0,
	.run = strategies_run,
};
