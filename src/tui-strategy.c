/*
 * tui-strategy.c — running Lua from the workbench: the strategy menu (s),
 * its parameter form built from the strategy's declared params, and the
 * `:` console.  Scripts run on the UI thread; a count hook polls the
 * keyboard so Esc stops a runaway script.  Every run is one undo step, and
 * a failed or interrupted run leaves the plan as it was (the runtime
 * restores it).
 */
#include "config.h"

#include <curses.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/util.h"
#include "tui.h"

/* Script output: the last line shown in the message line. */
static void
script_output(void *userdata, const char *text, size_t len)
{
	tui *t = userdata;
	const char *end = text + len, *line = text, *p;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	for (p = text; p < end; p++)
		if (*p == '\n')
			line = p + 1;
	if (end > line)
		tui_message(t, false, "%.*s", (int)(end - line), line);
}

/* Esc stops a running script; other keys typed meanwhile are dropped. */
static bool
script_should_stop(void *userdata)
{
	int ch;

	(void)userdata;
	while ((ch = getch()) != ERR)
		if (ch == 27)
			return true;
	return false;
}

void
tui_strategy_init(tui *t, const char *const *extra, size_t nextra, size_t lua_memory)
{
	rs_script_host host = {
		.model = t->model, .layers = t->layers, .nlayers = t->nlayers,
		.analyses = t->analyses, .plan = &t->plan, .output = script_output,
		.should_stop = script_should_stop, .userdata = t,
		.memory_limit = lua_memory,
	};
	rs_error err;

	t->script_dirs = rs_script_default_dirs(extra, nextra, &t->nscript_dirs);
	t->script = rs_script_new(&host, (const char *const *)t->script_dirs,
	                          t->nscript_dirs, &err);
	if (t->script == NULL) {
		tui_message(t, true, "Lua: %s", err.msg);
		return;
	}
	if (rs_script_list(t->script, &t->strategies, &t->nstrategies, &err) != RS_OK)
		tui_message(t, true, "%s", err.msg);
}

static void
free_form(tui *t)
{
	size_t i;

	if (t->form_values == NULL)
		return;
	for (i = 0; i < t->form_nvalues; i++)
		free(t->form_values[i]);
	free(t->form_values);
	t->form_values = NULL;
	t->form_nvalues = 0;
}

/* The strategy whose form is open (NULL when none is). */
static const rs_strategy_info *
form_strategy(const tui *t)
{
	if (t->form_values == NULL || t->form_strategy >= t->nstrategies)
		return NULL;
	return &t->strategies[t->form_strategy];
}

const char *
tui_strategy_form_param_name(const tui *t)
{
	const rs_strategy_info *s = form_strategy(t);

	if (s == NULL || t->form_selected >= t->form_nvalues)
		return "";
	return s->params[t->form_selected].name;
}

void
tui_strategy_free(tui *t)
{
	free_form(t);
	rs_strategy_info_free(t->strategies, t->nstrategies);
	rs_script_free(t->script);
	rs_script_free_dirs(t->script_dirs, t->nscript_dirs);
	t->strategies = NULL;
	t->script = NULL;
}

void
tui_strategy_open_menu(tui *t)
{
	if (t->script == NULL || t->nstrategies == 0) {
		tui_message(t, true, "no strategies found");
		return;
	}
	t->menu = 1;
}

static void
open_form(tui *t)
{
	const rs_strategy_info *s;
	size_t i;

	if (t->menu_selected >= t->nstrategies)
		return;
	s = &t->strategies[t->menu_selected];
	free_form(t);
	t->form_values = rs_xcalloc(s->nparams ? s->nparams : 1, sizeof *t->form_values);
	for (i = 0; i < s->nparams; i++)
		t->form_values[i] = rs_xstrdup(s->params[i].default_text ?
		                               s->params[i].default_text : "");
	t->form_strategy = t->menu_selected;
	t->form_nvalues = s->nparams;
	t->form_selected = s->nparams;   /* start on "run" */
	t->menu = 2;
}

/* First line of a (possibly multi-line, traceback-carrying) message. */
static void
show_error(tui *t, const char *msg)
{
	const char *nl = strchr(msg, '\n');

	tui_message(t, true, "%.*s", nl ? (int)(nl - msg) : (int)strlen(msg), msg);
}

static void
run_selected(tui *t)
{
	const rs_strategy_info *s = form_strategy(t);
	char **params;
	char *summary = NULL;
	size_t i, n = 0;
	rs_error err;

	if (s == NULL)
		return;
	params = rs_xcalloc(s->nparams ? s->nparams : 1, sizeof *params);
	if (t->finished < t->nlayers) {
		tui_message(t, true, "spectra still computing (%zu/%zu): run the strategy "
		            "when they are done", t->finished, t->nlayers);
		free(params);
		return;
	}
	/* an empty value means the strategy's own default */
	for (i = 0, n = 0; i < s->nparams; i++)
		if (t->form_values[i][0] != '\0')
			params[n++] = rs_xasprintf("%s=%s", s->params[i].name, t->form_values[i]);
	tui_edit_begin(t);
	t->global_mode = TUI_GLOBAL_OFF;
	tui_message(t, false, "running %s (Esc stops it)...", s->name);
	refresh();
	if (rs_script_run(t->script, s->path, (const char *const *)params, n,
	                  &summary, &err) == RS_OK) {
		rs_plan_origin_free(&t->origin);
		rs_plan_origin_set(&t->origin, s->name, (const char *const *)params, n);
		tui_message(t, false, "%s", summary ? summary : "done");
		t->menu = 0;
		tui_table_refresh(t);
	} else {
		show_error(t, err.msg);
		tui_edit_drop_unchanged(t);
	}
	free(summary);
	for (i = 0; i < n; i++)
		free(params[i]);
	free(params);
}

void
tui_strategy_commit_param(tui *t)
{
	size_t i = t->form_selected;

	if (t->form_values == NULL || i >= t->form_nvalues)
		return;
	free(t->form_values[i]);
	t->form_values[i] = rs_xstrdup(t->input);
}

void
tui_strategy_key(tui *t, int ch)
{
	const rs_strategy_info *s;

	if (ch == 27 || ch == 'q') {
		if (t->menu == 2)
			t->menu = 1;
		else
			t->menu = 0;
		return;
	}
	if (t->menu == 1) {
		if (t->nstrategies == 0) {
			t->menu = 0;
			return;
		}
		if ((ch == KEY_UP || ch == 'k') && t->menu_selected > 0)
			t->menu_selected--;
		else if ((ch == KEY_DOWN || ch == 'j') && t->menu_selected + 1 < t->nstrategies)
			t->menu_selected++;
		else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER)
			open_form(t);
		return;
	}
	if ((s = form_strategy(t)) == NULL) {
		t->menu = t->nstrategies ? 1 : 0;
		return;
	}
	if ((ch == KEY_UP || ch == 'k') && t->form_selected > 0)
		t->form_selected--;
	else if ((ch == KEY_DOWN || ch == 'j') && t->form_selected < s->nparams)
		t->form_selected++;
	else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		if (t->form_selected == s->nparams)
			run_selected(t);
		else
			tui_start_prompt(t, TUI_PROMPT_PARAM, t->form_values[t->form_selected]);
	} else if (ch == 'r')
		run_selected(t);
}

static void
draw_box(int y0, int x0, int h, int w)
{
	int y;

	for (y = 0; y < h; y++)
		mvprintw(y0 + y, x0, "%*s", w, "");
	mvhline(y0 - 1, x0 - 1, 0, w + 2);
	mvhline(y0 + h, x0 - 1, 0, w + 2);
	mvvline(y0, x0 - 1, 0, h);
	mvvline(y0, x0 + w, 0, h);
	mvaddch(y0 - 1, x0 - 1, ACS_ULCORNER);
	mvaddch(y0 - 1, x0 + w, ACS_URCORNER);
	mvaddch(y0 + h, x0 - 1, ACS_LLCORNER);
	mvaddch(y0 + h, x0 + w, ACS_LRCORNER);
}

static const char *const type_names[] = {
	[RS_PARAM_NUMBER] = "number", [RS_PARAM_INTEGER] = "integer",
	[RS_PARAM_BOOLEAN] = "boolean", [RS_PARAM_STRING] = "string",
	[RS_PARAM_CHOICE] = "choice",
};

void
tui_strategy_draw(tui *t, int lines, int cols)
{
	int w = cols - 8 > 90 ? 90 : cols - 8, h, y0, x0 = (cols - w) / 2, y;
	size_t i;

	if (w < 30)
		return;
	if (t->menu == 1) {
		h = (int)t->nstrategies + 3;
		if (h > lines - 4)
			h = lines - 4;
		y0 = (lines - h) / 2;
		draw_box(y0, x0, h, w);
		attron(A_BOLD);
		mvprintw(y0, x0, " strategies (Enter: parameters, Esc: close)");
		attroff(A_BOLD);
		for (i = 0, y = 2; i < t->nstrategies && y < h; i++, y++) {
			if (i == t->menu_selected)
				attron(A_REVERSE);
			mvprintw(y0 + y, x0, " %-16.16s %-*.*s", t->strategies[i].name, w - 19, w - 19,
			         t->strategies[i].description ? t->strategies[i].description : "");
			attroff(A_REVERSE);
		}
		return;
	}
	{
		const rs_strategy_info *s = form_strategy(t);
		if (s == NULL)
			return;
		h = 2 * (int)s->nparams + 5;
		if (h > lines - 4)
			h = lines - 4;
		y0 = (lines - h) / 2;
		draw_box(y0, x0, h, w);
		attron(A_BOLD);
		mvprintw(y0, x0, " %s: Enter edits a value, r or [run] runs, Esc goes back",
		         s->name);
		attroff(A_BOLD);
		for (i = 0, y = 2; i < s->nparams && y + 1 < h; i++, y += 2) {
			const rs_strategy_param *p = &s->params[i];
			char range[64] = "";
			if (p->has_min || p->has_max)
				snprintf(range, sizeof range, ", %g..%g", p->has_min ? p->min : -1.0 / 0.0,
				         p->has_max ? p->max : 1.0 / 0.0);
			if (i == t->form_selected)
				attron(A_REVERSE);
			mvprintw(y0 + y, x0, " %-16.16s = %-20.20s (%s%s)", p->name, t->form_values[i],
			         type_names[p->type], range);
			attroff(A_REVERSE);
			attron(tui_attr(t, TUI_PAIR_DIM));
			mvprintw(y0 + y + 1, x0, "   %.*s", w - 4, p->help ? p->help : "");
			attroff(tui_attr(t, TUI_PAIR_DIM));
		}
		if (t->form_selected == s->nparams)
			attron(A_REVERSE);
		mvprintw(y0 + h - 2, x0, " [ run %s ]", s->name);
		attroff(A_REVERSE);
	}
}

void
tui_strategy_eval(tui *t, const char *code)
{
	rs_error err;

	if (t->script == NULL) {
		tui_message(t, true, "Lua is not available");
		return;
	}
	tui_edit_begin(t);
	t->message[0] = '\0';
	if (rs_script_eval(t->script, code, &err) != RS_OK) {
		show_error(t, err.msg);
		tui_edit_drop_unchanged(t);
	} else if (t->message[0] == '\0') {
		tui_message(t, false, "ok");
	}
	tui_table_refresh(t);
}
