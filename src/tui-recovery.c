/*
 * tui-recovery.c — what survives a crash of the workbench: the plan as of
 * the last edit, and a report saying where it died.
 *
 * While the workbench runs, the plan is written to a recovery file in the
 * state directory ($XDG_STATE_HOME/rankscope, or ~/.local/state/rankscope)
 * whenever it has changed and at most once a second, as the same JSON as
 * `w` writes, atomically (a crash during the write leaves the previous
 * copy) but without fsync: the copy has to outlive the process, not the
 * machine, and an fsync on the UI thread could stall a key for as long as
 * the disk takes.  A
 * clean exit removes it, since the user has then saved or chosen not to.
 *
 * The crash report is written from the fatal-signal handler, so it uses
 * only async-signal-safe calls (open, write, backtrace_symbols_fd) on text
 * prepared beforehand; backtrace() is called once at start so that its
 * library is loaded before any crash.
 */
#include "config.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rankscope/file.h"
#include "rankscope/planfile.h"
#include "tui.h"

/* Prepared at start; read by the signal handler. */
static char report_path[600];
static char report_header[4096];
static char crash_message[4096];
static volatile sig_atomic_t have_recovery_file;

static void
state_dir(char *out, size_t size)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (xdg && xdg[0] == '/')
		snprintf(out, size, "%s/rankscope", xdg);
	else if (home && home[0])
		snprintf(out, size, "%s/.local/state/rankscope", home);
	else
		snprintf(out, size, "/tmp/rankscope-%ld", (long)getuid());
}

void
tui_recovery_init(tui *t)
{
	char dir[512];
	void *frames[2];
	long pid = (long)getpid();

	state_dir(dir, sizeof dir);
	snprintf(t->recovery_path, sizeof t->recovery_path, "%s/recovery-%ld.plan.json",
	         dir, pid);
	snprintf(report_path, sizeof report_path, "%s/crash-%ld.txt", dir, pid);
	snprintf(report_header, sizeof report_header,
	         "rankscope %s crashed\nmodel: %s\nrecovered plan: %s\n"
	         "(open it with: rankscope --plan %s %s)\n\nbacktrace:\n",
	         PACKAGE_VERSION, t->path, t->recovery_path, t->recovery_path, t->path);
	snprintf(crash_message, sizeof crash_message,
	         "rankscope: crashed; the report is in %s\n"
	         "rankscope: the plan as of your last edit is in %s\n"
	         "rankscope: open it with: rankscope --plan %s %s\n",
	         report_path, t->recovery_path, t->recovery_path, t->path);
	t->recovery_dir_ok = rs_mkdir_p(dir, &(rs_error){0}) == RS_OK;
	rs_plan_init(&t->recovered, t->nlayers);
	t->recovery_time = 0;
	backtrace(frames, 2);
}

/* Whether the plan can be written now: `w` refuses while figures are
 * missing (spectra or a low rank + sparse solve pending), so does this. */
static bool
plan_complete(const tui *t)
{
	size_t i;

	if (t->finished < t->nlayers)
		return false;
	for (i = 0; i < t->nlayers; i++)
		if (t->plan.entries[i].method == RS_METHOD_LOWRANK_SPARSE &&
		    t->plan.entries[i].solved_error != t->plan.entries[i].solved_error)
			return false;
	return true;
}

/* An edit not yet in the recovery file (the loop must wake up for it). */
bool
tui_recovery_pending(const tui *t)
{
	return t->recovery_dir_ok && plan_complete(t) && !rs_plan_equal(&t->plan, &t->recovered);
}

void
tui_recovery_poll(tui *t)
{
	time_t now = time(NULL);
	rs_error err;
	rs_status st;
	char *text;

	if (now == t->recovery_time || !tui_recovery_pending(t))
		return;
	t->recovery_time = now;
	text = rs_plan_to_json(t->model, t->layers, t->nlayers, t->analyses, &t->plan,
	                       &t->origin, 2);
	st = rs_file_write_atomic(t->recovery_path, text, strlen(text), false, &err);
	free(text);
	if (st != RS_OK) {
		/* Said once; the workbench goes on without a recovery copy. */
		tui_message(t, true, "cannot keep a recovery copy of the plan: %s", err.msg);
		t->recovery_dir_ok = false;
		return;
	}
	have_recovery_file = 1;
	rs_plan_free(&t->recovered);
	rs_plan_copy(&t->recovered, &t->plan);
}

void
tui_recovery_finish(tui *t)
{
	if (have_recovery_file)
		unlink(t->recovery_path);
	have_recovery_file = 0;
	rs_plan_free(&t->recovered);
}

static void
put(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

/* Async-signal-safe: called from the fatal-signal handler after the
 * terminal has been restored. */
void
tui_recovery_crash_report(int sig)
{
	void *frames[64];
	int n, fd;
	const char *name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" :
	    sig == SIGABRT ? "SIGABRT" : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" :
	    "a fatal signal";

	if (report_path[0] == '\0')
		return;
	fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		put(fd, "signal: ");
		put(fd, name);
		put(fd, "\n");
		put(fd, report_header);
		n = backtrace(frames, 64);
		backtrace_symbols_fd(frames, n, fd);
		close(fd);
	}
	put(STDERR_FILENO, "rankscope: ");
	put(STDERR_FILENO, name);
	put(STDERR_FILENO, "\n");
	if (fd >= 0 && have_recovery_file) {
		put(STDERR_FILENO, crash_message);
	} else if (fd >= 0) {
		put(STDERR_FILENO, "rankscope: crashed; the report is in ");
		put(STDERR_FILENO, report_path);
		put(STDERR_FILENO, "\nrankscope: no recovery copy of the plan was written "
		    "(no edits, or spectra still computing)\n");
	}
}
