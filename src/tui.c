/*
 * tui.c — the workbench's lifecycle and event loop.  The only file that
 * starts and ends curses.
 *
 * One loop owns everything: it polls the terminal and a wake-up pipe
 * (written by engine callbacks as spectra finish, and by signal handlers),
 * takes newly finished spectra, handles keys and mouse, and redraws the
 * whole screen from state (curses sends only what changed).  Spectra are
 * computed on the engine's threads; every figure shown is an O(1) query, so
 * a keypress never waits for numeric work.
 *
 * The terminal is restored on every way out: quit, SIGINT/SIGTERM/SIGHUP
 * (a clean exit through the loop), and fatal signals (raw escape sequences
 * and the saved termios from the handler, a crash report and where the
 * plan was kept (tui-recovery.c), then whatever handled the signal before
 * us: the default action, or a sanitizer's report).
 */
#include "config.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "rankscope/util.h"
#include "tui.h"

/* Mouse button-event tracking (press, drag, release), which terminfo does
 * not always enable by itself. */
#define MOUSE_ON "\033[?1002h"
#define MOUSE_OFF "\033[?1002l"

static volatile sig_atomic_t stop_signal;
static int wake_write_fd = -1;
static struct termios saved_termios;
static bool have_saved_termios;

/* The signals that end the process at once, and who handled them before
 * the workbench (restored by the handler, so a sanitizer still reports). */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction previous_fatal[NFATAL];

static void
wake(void)
{
	if (wake_write_fd >= 0) {
		ssize_t n = write(wake_write_fd, "w", 1);
		(void)n;   /* a full pipe already means "wake up" */
	}
}

static void
on_engine_layer(void *userdata, size_t index)
{
	(void)userdata;
	(void)index;
	wake();
}

static void
on_stop_signal(int sig)
{
	stop_signal = sig;
	wake();
}

/*
 * Async-signal-safe: write(2), tcsetattr(3), sigaction, raise and the
 * report's open/write.  The previous disposition comes back before the
 * signal is raised again, so it reaches whoever had it (the default
 * action dumps core; ASan prints its report).  A fault raised by an
 * instruction is also simply raised again when the handler returns.
 */
static void
on_fatal_signal(int sig)
{
	static const char reset[] = MOUSE_OFF "\033[?1049l\033[?25h\033[0m\r\n";
	ssize_t n = write(STDOUT_FILENO, reset, sizeof reset - 1);
	size_t i;

	(void)n;
	if (have_saved_termios)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
	tui_recovery_crash_report(sig);
	for (i = 0; i < NFATAL; i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &previous_fatal[i], NULL);
	raise(sig);
}

/*
 * A resize: curses' own SIGWINCH handler (installed by newterm) notes it,
 * and the next getch reports KEY_RESIZE.  But the signal may go to any of
 * the process's threads, or come just before the loop sleeps in poll with
 * no timeout, and then the screen would stay at the old size until the
 * next key press.  So the handler is chained with a wake-up.
 */
static struct sigaction previous_winch;

static void
on_winch(int sig, siginfo_t *info, void *context)
{
	int saved_errno = errno;

	if (previous_winch.sa_flags & SA_SIGINFO)
		previous_winch.sa_sigaction(sig, info, context);
	else if (previous_winch.sa_handler != SIG_DFL && previous_winch.sa_handler != SIG_IGN)
		previous_winch.sa_handler(sig);
	wake();
	errno = saved_errno;
}

static void
install_signals(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_fatal_signal;
	for (i = 0; i < NFATAL; i++)
		sigaction(fatal_signals[i], &sa, &previous_fatal[i]);
	sa.sa_sigaction = on_winch;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGWINCH, &sa, &previous_winch);
}

static void
restore_signals(void)
{
	int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	size_t i;

	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
	for (i = 0; i < NFATAL; i++)
		sigaction(fatal_signals[i], &previous_fatal[i], NULL);
	sigaction(SIGWINCH, &previous_winch, NULL);
}

int
tui_attr(const tui *t, int pair)
{
	if (pair == TUI_PAIR_SELECTED)
		return A_REVERSE;
	if (t->colour)
		return COLOR_PAIR(pair) | (pair == TUI_PAIR_MARK ? A_BOLD : 0);
	switch (pair) {
	case TUI_PAIR_TITLE: return A_REVERSE;
	case TUI_PAIR_BAR: case TUI_PAIR_MARK: case TUI_PAIR_ERROR: return A_BOLD;
	case TUI_PAIR_DIM: return A_DIM;
	default: return A_NORMAL;
	}
}

void
tui_message(tui *t, bool error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->message, sizeof t->message, fmt, ap);
	va_end(ap);
	t->message_is_error = error;
}

void
tui_start_prompt(tui *t, tui_prompt_kind kind, const char *initial)
{
	t->prompt = kind;
	snprintf(t->input, sizeof t->input, "%s", initial);
}

/* A layer's calibration statistics that are wrong for it leave it with
 * weight figures only: said once, as an error (the commands stop on it). */
static void
show_calib_error(tui *t, size_t i)
{
	const char *why;

	if (t->calibrated && !t->calib_error_shown &&
	    (why = rs_engine_calib_error(t->engine, i)) != NULL) {
		tui_message(t, true, "%s", why);
		t->calib_error_shown = true;
	}
}

/* Takes spectra that finished since the last look. */
static void
sync_spectra(tui *t)
{
	size_t i, finished = 0, stats = 0;
	bool arrived = false;

	for (i = 0; i < t->nlayers; i++) {
		rs_job_state s;
		if (t->spectra[i] != NULL) {
			/* statistics (and the output figures) come after the spectrum */
			if (t->analyses[i].magnitudes == NULL) {
				bool had = t->analyses[i].whiten != NULL;
				t->analyses[i] = rs_engine_analysis(t->engine, i);
				/* in the output norm a global mode sets the whitened
				 * truncation, which needs them: set the layer again */
				if (!had && t->analyses[i].whiten != NULL && t->output_norm &&
				    t->global_mode != TUI_GLOBAL_OFF)
					tui_edit_set_rank(t, i, tui_edit_global_rank(t, i));
				show_calib_error(t, i);
			}
			stats += t->analyses[i].magnitudes != NULL;
			finished++;
			continue;
		}
		s = rs_engine_state(t->engine, i);
		if (s == RS_JOB_DONE) {
			t->analyses[i] = rs_engine_analysis(t->engine, i);
			t->spectra[i] = t->analyses[i].spectrum;
			arrived = true;
			/* a global mode in force covers layers as they arrive */
			if (t->global_mode != TUI_GLOBAL_OFF)
				tui_edit_set_rank(t, i, tui_edit_global_rank(t, i));
			show_calib_error(t, i);
		}
		if (s == RS_JOB_FAILED || s == RS_JOB_CANCELLED) {
			finished++;
			stats++;   /* nothing more will come for this layer */
		}
		if (s == RS_JOB_DONE)
			finished++;
		if (s == RS_JOB_FAILED && i != SIZE_MAX && t->message[0] == '\0')
			tui_message(t, true, "%s", rs_engine_error(t->engine, i));
	}
	t->finished = finished;
	t->with_statistics = stats;
	if (arrived && t->sort != TUI_SORT_FILE && t->sort != TUI_SORT_NAME)
		tui_table_refresh(t);
	/* a cache that cannot be written costs only time: said once, and not
	 * as an error */
	{
		static bool cache_warned;
		const char *why;
		if (!cache_warned && finished == t->nlayers && t->message[0] == '\0' &&
		    (why = rs_engine_cache_warning(t->engine, NULL)) != NULL) {
			tui_message(t, false, "warning: spectrum cache not written: %s", why);
			cache_warned = true;
		}
	}
}

static void
draw_title(tui *t)
{
	static const char spinner[] = "|/-\\";
	static unsigned tick;
	char params[16], norm[32], values[32] = "", line[512];
	const char *dash = t->utf8 ? "\u2014" : "-";
	size_t total = 0, i;

	for (i = 0; i < t->nlayers; i++)
		total += t->layers[i].rows * t->layers[i].cols;
	rs_format_count(params, sizeof params, (double)total);
	/* with calibration, the norm the figures are in (n switches); the
	 * path last: it is the part a narrow terminal can best lose */
	snprintf(norm, sizeof norm, " %s %s norm", dash, t->output_norm ? "output" : "weight");
	/* --dtype: every size shown is costed in it */
	if (t->nlayers > 0 && t->layers[0].value_dtype_chosen)
		snprintf(values, sizeof values, " %s values %s", dash,
		         rs_dtype_get(t->layers[0].value_dtype)->name);
	snprintf(line, sizeof line, " rankscope %c spectra %zu/%zu stats %zu/%zu %s %zu layers "
	         "%s %s params%s%s %s %s",
	         t->finished < t->nlayers || t->with_statistics < t->nlayers ?
	         spinner[tick++ % 4] : ' ', t->finished, t->nlayers, t->with_statistics,
	         t->nlayers, dash, t->nlayers, dash, params, t->calibrated ? norm : "", values,
	         dash, t->path);
	attron(tui_attr(t, TUI_PAIR_TITLE));
	mvprintw(0, 0, "%-*.*s", COLS, COLS, line);
	attroff(tui_attr(t, TUI_PAIR_TITLE));
}

static void
draw_message_line(tui *t, int y)
{
	size_t layer = tui_selected_layer(t);

	switch (t->prompt) {
	case TUI_PROMPT_FILTER:
		mvprintw(y, 0, "filter (substring or glob, empty clears): %s", t->input);
		break;
	case TUI_PROMPT_RANK:
		mvprintw(y, 0, "rank for %s (1..%zu): %s", t->layers[layer].name,
		         t->spectra[layer] ? t->spectra[layer]->k : 0, t->input);
		break;
	case TUI_PROMPT_QUIT:
		mvprintw(y, 0, "The plan has edits that are not saved. Quit anyway? (y/N) ");
		break;
	case TUI_PROMPT_LUA:
		mvprintw(y, 0, "lua> %s", t->input);
		break;
	case TUI_PROMPT_SAVE:
		mvprintw(y, 0, "save plan to: %s", t->input);
		break;
	case TUI_PROMPT_OVERWRITE:
		mvprintw(y, 0, "%s exists. Replace it? (y/N) ", t->input);
		break;
	case TUI_PROMPT_LOAD:
		mvprintw(y, 0, "load plan from: %s", t->input);
		break;
	case TUI_PROMPT_PARAM:
		mvprintw(y, 0, "%s = %s", tui_strategy_form_param_name(t), t->input);
		break;
	default:
		if (t->message_is_error)
			attron(tui_attr(t, TUI_PAIR_ERROR));
		mvprintw(y, 0, "%.*s", COLS, t->message);
		attroff(tui_attr(t, TUI_PAIR_ERROR));
		break;
	}
}

static void
draw(tui *t)
{
	int main_h = LINES - 8, table_w, plot_w;
	static const char hints[] =
	    " \u2190/\u2192 rank  [ ] sparse  b B bits  M method  m global  s strategy  : lua  / filter  u undo  w save  ? help  q quit";
	static const char hints_ascii[] =
	    " <-/-> rank  [ ] sparse  b B bits  M method  m global  s strategy  : lua  / filter  u undo  w save  ? help  q quit";

	erase();
	if (LINES < 14 || COLS < 50) {
		/* nothing is shown, so nothing may be clicked: the mouse finds
		 * the table and sliders where they were last drawn */
		t->table_rect = t->plot_rect = t->rank_slider = t->sparsity_slider =
		    t->bits_slider = t->global_slider = (tui_rect){0, 0, 0, 0};
		mvprintw(0, 0, "terminal too small (%dx%d): need at least 50x14", COLS, LINES);
		refresh();
		return;
	}
	draw_title(t);
	if (COLS >= 110) {
		plot_w = COLS * 2 / 5;
		table_w = COLS - plot_w - 1;
		tui_table_draw(t, (tui_rect){1, 0, main_h, table_w});
		mvvline(1, table_w, t->utf8 ? 0 : '|', main_h);
		tui_plot_draw(t, (tui_rect){1, table_w + 2, main_h, plot_w - 2});
	} else if (main_h >= 20) {
		int table_h = main_h * 2 / 5;
		tui_table_draw(t, (tui_rect){1, 0, table_h, COLS});
		mvhline(1 + table_h, 0, t->utf8 ? 0 : '-', COLS);
		tui_plot_draw(t, (tui_rect){2 + table_h, 1, main_h - table_h - 1, COLS - 2});
	} else {
		tui_table_draw(t, (tui_rect){1, 0, main_h, COLS});
		t->plot_rect = (tui_rect){0, 0, 0, 0};
	}
	t->rank_slider.y = LINES - 7;
	t->sparsity_slider.y = LINES - 6;
	t->bits_slider.y = LINES - 5;
	t->global_slider.y = LINES - 4;
	tui_sliders_draw(t);
	tui_totals_draw(t, LINES - 3, COLS);
	draw_message_line(t, LINES - 2);
	attron(tui_attr(t, TUI_PAIR_TITLE));
	mvprintw(LINES - 1, 0, "%-*s", COLS, "");
	mvaddnstr(LINES - 1, 0, t->utf8 ? hints : hints_ascii, -1);
	attroff(tui_attr(t, TUI_PAIR_TITLE));
	if (t->menu == 3)
		tui_method_menu_draw(t, LINES, COLS);
	else if (t->menu)
		tui_strategy_draw(t, LINES, COLS);
	if (t->show_help)
		tui_keys_draw_help(t, LINES, COLS);
	curs_set(t->prompt != TUI_PROMPT_NONE && t->prompt != TUI_PROMPT_QUIT &&
	         t->prompt != TUI_PROMPT_OVERWRITE ? 1 : 0);
	refresh();
}

static void
commit_prompt(tui *t)
{
	size_t layer = tui_selected_layer(t);
	tui_prompt_kind kind = t->prompt;
	char *end;
	unsigned long v;

	switch (kind) {
	case TUI_PROMPT_FILTER:
		snprintf(t->filter, sizeof t->filter, "%s", t->input);
		tui_table_refresh(t);
		if (t->filter[0])
			tui_message(t, false, "filter '%s': %zu of %zu layers", t->filter,
			            t->nvisible, t->nlayers);
		else
			tui_message(t, false, "filter cleared");
		break;
	case TUI_PROMPT_RANK:
		v = strtoul(t->input, &end, 10);
		if (layer == SIZE_MAX || t->spectra[layer] == NULL)
			break;
		if (end == t->input || *end != '\0' || v < 1 || v > t->spectra[layer]->k) {
			tui_message(t, true, "rank must be a whole number from 1 to %zu, not '%s'",
			            t->spectra[layer]->k, t->input);
			break;
		}
		tui_edit_begin(t);
		tui_edit_set_rank(t, layer, v);
		break;
	case TUI_PROMPT_LUA:
		t->prompt = TUI_PROMPT_NONE;   /* the script may print a message */
		if (t->input[0] != '\0')
			tui_strategy_eval(t, t->input);
		break;
	case TUI_PROMPT_PARAM:
		tui_strategy_commit_param(t);
		break;
	case TUI_PROMPT_SAVE:
	case TUI_PROMPT_LOAD:
		t->prompt = TUI_PROMPT_NONE;
		tui_planfile_commit(t, kind);
		return;   /* a save may ask to overwrite: a new prompt */
	default:
		break;
	}
	t->prompt = TUI_PROMPT_NONE;
}

static void
prompt_key(tui *t, int ch)
{
	size_t len = strlen(t->input);

	if (t->prompt == TUI_PROMPT_QUIT) {
		t->quit = ch == 'y' || ch == 'Y';
		t->prompt = TUI_PROMPT_NONE;
		return;
	}
	if (t->prompt == TUI_PROMPT_OVERWRITE) {
		t->prompt = TUI_PROMPT_NONE;
		if (ch == 'y' || ch == 'Y')
			tui_planfile_commit(t, TUI_PROMPT_OVERWRITE);
		else
			tui_message(t, false, "not saved");
		return;
	}
	if (ch == '\n' || ch == '\r' || ch == KEY_ENTER)
		commit_prompt(t);
	else if (ch == 27)
		t->prompt = TUI_PROMPT_NONE;
	else if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && len > 0)
		t->input[len - 1] = '\0';
	else if (ch >= 32 && ch < 127 && len + 1 < sizeof t->input) {
		t->input[len] = (char)ch;
		t->input[len + 1] = '\0';
	}
}

static void
mouse_event(tui *t)
{
	MEVENT ev;

	if (getmouse(&ev) != OK)
		return;
	if (ev.bstate & BUTTON1_PRESSED) {
		if (!tui_sliders_mouse(t, ev.y, ev.x, true))
			tui_table_click(t, ev.y);
	} else if (ev.bstate & BUTTON1_RELEASED) {
		tui_sliders_mouse(t, ev.y, ev.x, false);
		t->drag = TUI_DRAG_NONE;
	} else if (ev.bstate & REPORT_MOUSE_POSITION) {
		tui_sliders_mouse(t, ev.y, ev.x, false);
	} else if (ev.bstate & BUTTON4_PRESSED) {
		tui_table_move(t, -1);
	} else if (ev.bstate & BUTTON5_PRESSED) {
		tui_table_move(t, 1);
	}
}

static void
handle_key(tui *t, int ch)
{
	if (ch == KEY_RESIZE)
		return;
	if (t->show_help) {
		/* the arrows scroll a help taller than the screen (at either end
		 * they do nothing: Up at the top is not "any other key"); other
		 * keys close */
		if (ch == KEY_DOWN || ch == 'j' || ch == KEY_UP || ch == 'k')
			tui_keys_help_scroll(t, ch == KEY_DOWN || ch == 'j' ? 1 : -1);
		else
			t->show_help = false;
		return;
	}
	if (t->prompt != TUI_PROMPT_NONE) {
		prompt_key(t, ch);
		return;
	}
	if (t->menu == 3) {
		tui_method_menu_key(t, ch);
		return;
	}
	if (t->menu) {
		tui_strategy_key(t, ch);
		return;
	}
	if (ch == KEY_MOUSE) {
		mouse_event(t);
		return;
	}
	if (ch == 27) {
		t->message[0] = '\0';
		return;
	}
	t->message[0] = '\0';
	if (!tui_keys_dispatch(t, ch))
		tui_message(t, false, "key not bound (? lists the keys)");
}

static bool
start_curses(tui *t, rs_error *err)
{
	const char *codeset = nl_langinfo(CODESET);
	SCREEN *screen;

	if (tcgetattr(STDIN_FILENO, &saved_termios) == 0)
		have_saved_termios = true;
	/* newterm, unlike initscr, returns NULL instead of exiting. */
	screen = newterm(NULL, stdout, stdin);
	if (screen == NULL) {
		rs_error_set(err, RS_EIO, "cannot use the terminal (TERM=%s)",
		             getenv("TERM") ? getenv("TERM") : "unset");
		return false;
	}
	/* Esc should feel immediate; ESCDELAY in the environment (ms) still
	 * wins, for slow links where escape sequences arrive in pieces. */
	if (getenv("ESCDELAY") == NULL)
		set_escdelay(25);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	mousemask(BUTTON1_PRESSED | BUTTON1_RELEASED | BUTTON4_PRESSED |
	          BUTTON5_PRESSED | REPORT_MOUSE_POSITION, NULL);
	mouseinterval(0);
	fputs(MOUSE_ON, stdout);
	fflush(stdout);
	t->utf8 = codeset != NULL && strcmp(codeset, "UTF-8") == 0 &&
	          getenv("RANKSCOPE_ASCII") == NULL;
	t->colour = has_colors() && getenv("NO_COLOR") == NULL;
	if (t->colour) {
		start_color();
		use_default_colors();
		init_pair(TUI_PAIR_TITLE, COLOR_BLACK, COLOR_CYAN);
		init_pair(TUI_PAIR_BAR, COLOR_GREEN, -1);
		init_pair(TUI_PAIR_MARK, COLOR_YELLOW, -1);
		init_pair(TUI_PAIR_DIM, COLOR_BLUE, -1);
		init_pair(TUI_PAIR_ERROR, COLOR_RED, -1);
		init_pair(TUI_PAIR_ENERGY, COLOR_CYAN, -1);
	}
	return true;
}

static void
end_curses(void)
{
	fputs(MOUSE_OFF, stdout);
	fflush(stdout);
	endwin();
}

static void
tui_free(tui *t)
{
	size_t i;

	tui_strategy_free(t);
	tui_solver_stop(t);
	rs_engine_free(t->engine);
	for (i = 0; i < t->nundo; i++)
		rs_plan_free(&t->undo[i]);
	rs_plan_free(&t->plan);
	rs_plan_free(&t->saved);
	rs_plan_origin_free(&t->origin);
	free(t->spectra);
	free(t->analyses);
	free(t->order);
	if (t->wake_fd[0] >= 0) {
		close(t->wake_fd[0]);
		close(t->wake_fd[1]);
	}
	wake_write_fd = -1;
}

int
tui_run(const char *path, rs_model *model, rs_layer *layers, size_t nlayers,
        const rs_engine_options *engine_options, const tui_options *options)
{
	tui t;
	rs_engine_options eo = *engine_options;
	rs_error err;
	int status = 0;

	memset(&t, 0, sizeof t);
	t.path = path;
	t.model = model;
	t.layers = layers;
	t.nlayers = nlayers;
	t.nudge_layer = SIZE_MAX;
	t.global_value = 0.5;
	t.calibrated = engine_options->calib != NULL;
	tui_solver_init(&t);
	t.spectra = rs_xcalloc(nlayers ? nlayers : 1, sizeof *t.spectra);
	t.analyses = rs_xcalloc(nlayers ? nlayers : 1, sizeof *t.analyses);
	t.order = rs_xcalloc(nlayers ? nlayers : 1, sizeof *t.order);
	if (options->plan != NULL) {
		rs_plan_copy(&t.plan, options->plan);
		rs_plan_copy(&t.saved, options->plan);
		snprintf(t.plan_path, sizeof t.plan_path, "%s", options->plan_path);
		if (options->origin != NULL)
			rs_plan_origin_copy(&t.origin, options->origin);
	} else {
		rs_plan_init(&t.plan, nlayers);
		rs_plan_init(&t.saved, nlayers);
	}
	if (pipe(t.wake_fd) != 0) {
		fprintf(stderr, "rankscope: cannot create a pipe\n");
		t.wake_fd[0] = t.wake_fd[1] = -1;
		tui_free(&t);
		return 1;
	}
	fcntl(t.wake_fd[0], F_SETFL, O_NONBLOCK);
	fcntl(t.wake_fd[1], F_SETFL, O_NONBLOCK);
	wake_write_fd = t.wake_fd[1];
	tui_table_refresh(&t);

	if (!start_curses(&t, &err)) {
		fprintf(stderr, "rankscope: %s\n", err.msg);
		tui_free(&t);
		return 1;
	}
	tui_recovery_init(&t);
	install_signals();
	tui_strategy_init(&t, options->strategy_dirs, options->nstrategy_dirs,
	                  options->lua_memory);
	eo.on_layer_done = on_engine_layer;
	eo.statistics = true;
	eo.userdata = &t;
	t.engine = rs_engine_start(layers, nlayers, path, &eo);

	while (!t.quit && !stop_signal) {
		struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {t.wake_fd[0], POLLIN, 0}};
		char drain[64];
		int ch;

		sync_spectra(&t);
		tui_solver_poll(&t);
		tui_recovery_poll(&t);
		draw(&t);
		/* Wake at least every 200 ms while spectra are running, for the
		 * spinner; sleep until input otherwise. */
		if (poll(fds, 2, t.finished < t.nlayers || t.with_statistics < t.nlayers ||
		         t.solver.running || tui_recovery_pending(&t) ? 200 : -1) < 0 &&
		    errno != EINTR)
			break;
		while (read(t.wake_fd[0], drain, sizeof drain) > 0)
			;
		while (!t.quit && (ch = getch()) != ERR)
			handle_key(&t, ch);
	}
	end_curses();
	restore_signals();
	/* A LAPACK call cannot be interrupted: say why exiting may take a
	 * moment rather than look hung. */
	sync_spectra(&t);
	if (t.finished < t.nlayers)
		fprintf(stderr, "rankscope: waiting for the spectrum in progress to finish\n");
	if (stop_signal) {
		fprintf(stderr, "rankscope: interrupted by signal %d\n", (int)stop_signal);
		status = 128 + stop_signal;
		stop_signal = 0;
	}
	tui_recovery_finish(&t);
	tui_free(&t);
	return status;
}
