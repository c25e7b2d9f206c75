/*
 * tui-planfile.c — saving (w) and loading (L) plans from the workbench.
 * A save never replaces a file without asking, and writes atomically; a
 * load is one undo step and must match the model, layer by layer.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rankscope/calib.h"
#include "tui.h"

/* model.safetensors -> model.plan.json, in the current directory. */
static void
default_name(tui *t)
{
	const char *base = strrchr(t->path, '/'), *dot;

	base = base ? base + 1 : t->path;
	dot = strrchr(base, '.');
	snprintf(t->plan_path, sizeof t->plan_path, "%.*s.plan.json",
	         dot && dot != base ? (int)(dot - base) : (int)strlen(base), base);
}

void
tui_planfile_save_prompt(tui *t)
{
	if (t->finished < t->nlayers) {
		tui_message(t, true, "spectra still computing (%zu/%zu): a plan records "
		            "predicted errors, so save when they are done", t->finished, t->nlayers);
		return;
	}
	{
		/* Every solved method (the combinations and the decompositions)
		 * has no figures until its background solve ends, and a plan file
		 * writes an entry without figures as dense: saving now would
		 * record the layer as dense and mark the plan saved. */
		size_t i;
		for (i = 0; i < t->nlayers; i++)
			if (rs_method_is_solved(t->plan.entries[i].method) &&
			    isnan(t->plan.entries[i].solved_error)) {
				tui_message(t, true, "%s: the %s solve is still running: "
				            "save when it is done", t->layers[i].name,
				            rs_method_name(t->plan.entries[i].method));
				return;
			}
	}
	if (t->plan_path[0] == '\0')
		default_name(t);
	tui_start_prompt(t, TUI_PROMPT_SAVE, t->plan_path);
}

static void
save(tui *t)
{
	rs_error err;

	if (rs_plan_save(t->input, t->model, t->layers, t->nlayers, t->analyses, &t->plan,
	                 &t->origin, &err) != RS_OK) {
		tui_message(t, true, "%s", err.msg);
		return;
	}
	snprintf(t->plan_path, sizeof t->plan_path, "%s", t->input);
	rs_plan_free(&t->saved);
	rs_plan_copy(&t->saved, &t->plan);
	tui_message(t, false, "plan saved to %s", t->input);
}

static void
load(tui *t)
{
	rs_plan loaded;
	rs_plan_origin origin;
	rs_error err;

	if (rs_plan_load(t->input, t->model, t->layers, t->nlayers, &loaded, &origin,
	                 &err) != RS_OK) {
		tui_message(t, true, "%s", err.msg);
		return;
	}
	if (rs_plan_check_calibration(t->input, &origin, t->nlayers > 0 && t->analyses[0].calib ?
	                              t->analyses[0].calib->sha256 : NULL, &err) != RS_OK) {
		rs_plan_free(&loaded);
		rs_plan_origin_free(&origin);
		tui_message(t, true, "%s", err.msg);
		return;
	}
	tui_edit_begin(t);
	rs_plan_free(&t->plan);
	t->plan = loaded;
	rs_plan_free(&t->saved);
	rs_plan_copy(&t->saved, &t->plan);
	rs_plan_origin_free(&t->origin);
	t->origin = origin;
	t->global_mode = TUI_GLOBAL_OFF;
	snprintf(t->plan_path, sizeof t->plan_path, "%s", t->input);
	tui_table_refresh(t);
	tui_message(t, false, "plan loaded from %s", t->input);
}

void
tui_planfile_commit(tui *t, tui_prompt_kind kind)
{
	struct stat st;

	switch (kind) {
	case TUI_PROMPT_SAVE:
		if (t->input[0] == '\0')
			return;
		if (stat(t->input, &st) == 0) {
			/* keep the name in input and ask */
			t->prompt = TUI_PROMPT_OVERWRITE;
			return;
		}
		save(t);
		break;
	case TUI_PROMPT_OVERWRITE:
		save(t);
		break;
	case TUI_PROMPT_LOAD:
		if (t->input[0] != '\0')
			load(t);
		break;
	default:
		break;
	}
}
