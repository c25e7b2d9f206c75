/*
 * cmd-run.c — `rankscope run STRATEGY MODEL`: compute every spectrum, run
 * a Lua strategy (a shipped or user one by name, or a .lua file) on a
 * fresh plan, and print the resulting per-layer table and totals.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "rankscope/planfile.h"
#include "rankscope/script.h"
#include "rankscope/util.h"

static rs_script *running;

static void
on_interrupt(int sig)
{
	(void)sig;
	if (running != NULL)
		rs_script_interrupt(running);
}

static void
to_stdout(void *userdata, const char *text, size_t len)
{
	(void)userdata;
	fwrite(text, 1, len, stdout);
}

/* Sets up a runtime on a session whose analyses are all computed. */
rs_script *
cmd_script_new(cmd_session *s, const cmd_options *opts,
               const rs_layer_analysis *analyses, rs_plan *plan)
{
	rs_script_host host = {
		.model = s->model, .layers = s->layers, .nlayers = s->nlayers,
		.analyses = analyses, .plan = plan, .output = to_stdout,
		.memory_limit = opts->lua_memory,
	};
	size_t ndirs;
	char **dirs = rs_script_default_dirs(opts->strategy_dirs, opts->nstrategy_dirs, &ndirs);
	rs_script *script;
	rs_error err;

	script = rs_script_new(&host, (const char *const *)dirs, ndirs, &err);
	rs_script_free_dirs(dirs, ndirs);
	if (script == NULL)
		fprintf(stderr, "rankscope: %s\n", err.msg);
	return script;
}

static int
run_run(const cmd_entry *self, cmd_options *opts)
{
	const char *what = opts->args[0], *path = opts->args[1];
	rs_layer_analysis *analyses;
	struct sigaction sa, old;
	rs_script *script;
	char *summary = NULL;
	cmd_session s;
	rs_plan plan;
	rs_error err;
	rs_status st;

	(void)self;
	opts->statistics = true;
	if (!cmd_session_open(&s, path, opts))
		return CMD_EXIT_FAILURE;
	if (cmd_session_report_failures(&s) > 0) {
		fprintf(stderr, "rankscope: %s: cannot run a strategy while layers lack "
		        "spectra (leave them out with --exclude)\n", path);
		cmd_session_close(&s);
		return CMD_EXIT_FAILURE;
	}
	analyses = cmd_session_analyses(&s);
	if (opts->plan != NULL) {
		rs_plan_origin from;
		bool fits;

		if (rs_plan_load(opts->plan, s.model, s.layers, s.nlayers, &plan, &from, &err) != RS_OK) {
			fprintf(stderr, "rankscope: %s\n", err.msg);
			free(analyses);
			cmd_session_close(&s);
			return CMD_EXIT_FAILURE;
		}
		fits = cmd_session_plan_calibration(&s, opts->plan, &from);
		rs_plan_origin_free(&from);
		if (!fits) {
			rs_plan_free(&plan);
			free(analyses);
			cmd_session_close(&s);
			return CMD_EXIT_FAILURE;
		}
	} else {
		rs_plan_init(&plan, s.nlayers);
	}
	script = cmd_script_new(&s, opts, analyses, &plan);
	if (script == NULL) {
		st = RS_EINVAL;
		goto out;
	}
	/* Ctrl-C stops the script (and only the script). */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	running = script;
	sigaction(SIGINT, &sa, &old);
	st = rs_script_run(script, what, opts->params, opts->nparams, &summary, &err);
	sigaction(SIGINT, &old, NULL);
	running = NULL;
	fflush(stdout);
	if (st != RS_OK) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
	} else {
		rs_plan_origin origin;
		rs_plan_origin_set(&origin, what, opts->params, opts->nparams);
		if (opts->output != NULL &&
		    (st = rs_plan_save(opts->output, s.model, s.layers, s.nlayers, analyses,
		                       &plan, &origin, &err)) != RS_OK)
			fprintf(stderr, "rankscope: %s\n", err.msg);
		if (st == RS_OK && strcmp(opts->format, "json") == 0) {
			char *json = rs_plan_to_json(s.model, s.layers, s.nlayers, analyses, &plan,
			                             &origin, 2);
			fputs(json, stdout);
			free(json);
		} else if (st == RS_OK && strcmp(opts->format, "csv") == 0) {
			cmd_print_plan_csv(s.layers, s.nlayers, analyses, &plan);
		} else if (st == RS_OK) {
			cmd_print_plan(s.layers, s.nlayers, analyses, &plan);
		}
		/* the summary is for people: on stderr when stdout is data */
		if (st == RS_OK && summary)
			fprintf(strcmp(opts->format, "table") == 0 ? stdout : stderr, "%s\n", summary);
		rs_plan_origin_free(&origin);
	}
	free(summary);
	rs_script_free(script);
out:
	rs_plan_free(&plan);
	free(analyses);
	cmd_session_close(&s);
	return st == RS_OK ? CMD_EXIT_OK : CMD_EXIT_FAILURE;
}

static const char *const run_formats[] = {"table", "csv", "json", NULL};

const cmd_entry cmd_run_entry = {
	.name = "run",
	.usage = "STRATEGY MODEL",
	.summary = "Run a compression strategy (a name from 'rankscope strategies', or a "
	           ".lua file) and print the plan it makes.",
	.options = OPT_ANALYSIS | OPT_BIT(OPT_PARAM) | OPT_BIT(OPT_STRATEGY_PATH) | OPT_BIT(OPT_LUA_MEMORY) |
	           OPT_BIT(OPT_OUTPUT) | OPT_BIT(OPT_PLAN) | OPT_BIT(OPT_FORMAT),
	.formats = run_formats,
	.min_args = 2, .max_args = 2,
	.run = run_run,
};
