# tui-lib.sh — drives the real binary inside a private tmux server and
# reads the screen back.  Sourced after lib.sh; skips (77) without tmux.
command -v tmux >/dev/null 2>&1 || { echo "tmux not installed: skipped"; exit 77; }

printf 'set -g remain-on-exit on\nset -g history-limit 0\n' >"$scratch/tmux.conf"
nsession=0
sock=$scratch/tmux.0
trap 'for s in "$scratch"/tmux.[0-9]*; do tmux -S "$s" kill-server 2>/dev/null; done; rm -rf "$scratch"' EXIT

# tui_sandbox: the sessions' surroundings for the long walks: the bundled
# strategies only (no user's), saves in $scratch/work, and a sanitizer
# build reporting into files under $scratch/san (a clean run leaves none)
# with errors aborting rather than scrolling past in the pane.  A plain
# build ignores the sanitizer options.
tui_sandbox() {
	RANKSCOPE_LUA_DIR="$TESTS_SRCDIR/../lua"
	XDG_CONFIG_HOME=$scratch/config
	mkdir -p "$scratch/work" "$scratch/san"
	TUI_CWD=$scratch/work
	ASAN_OPTIONS=log_path=$scratch/san/asan:detect_leaks=1:abort_on_error=0
	UBSAN_OPTIONS=log_path=$scratch/san/ubsan:print_stacktrace=1:halt_on_error=1
	export RANKSCOPE_LUA_DIR XDG_CONFIG_HOME ASAN_OPTIONS UBSAN_OPTIONS
}

# sanitizer_reports: the head of every report written so far (none: empty).
sanitizer_reports() {
	for f in "$scratch"/san/*; do
		[ -f "$f" ] && { echo "--- $f"; head -80 "$f"; }
	done
}

# tui_start COLS LINES CMD... : a fresh server (its own socket, so a server
# still shutting down cannot interfere) running CMD in a UTF-8 locale.
# CMD runs as the child of a shell, as from a user's prompt; the shell
# records its exit status in $status_file and ignores SIGINT itself, so a
# Ctrl-C reaches only the program (which installs its own handler).  (Run
# directly as the session leader, a sanitizer build's exit-time leak check
# is killed by the terminal's hangup, hiding the real status.)  ESCDELAY is
# long so that a loaded machine delivering a mouse report in pieces does
# not turn its leading ESC into an Esc key press.
tui_start() {
	w=$1 h=$2
	shift 2
	tmux -S "$sock" kill-server 2>/dev/null
	nsession=$((nsession + 1))
	sock=$scratch/tmux.$nsession
	status_file=$scratch/status.$nsession
	tmux -S "$sock" -f "$scratch/tmux.conf" new-session -d -x "$w" -y "$h" \
		-c "${TUI_CWD:-$PWD}" \
		"trap '' INT; env ESCDELAY=500 LANG=C.UTF-8 LC_ALL=${TUI_LC_ALL:-C.UTF-8} XDG_CACHE_HOME=$XDG_CACHE_HOME $*; echo \$? >$status_file"
}

screen() {
	tmux -S "$sock" capture-pane -p
}

keys() {
	tmux -S "$sock" send-keys "$@"
}

# wait_for TEXT [TENTHS]: until TEXT is on screen (default 10 s).
wait_for() {
	n=0
	while [ "$n" -lt "${2:-100}" ]; do
		case "$(screen)" in *"$1"*) return 0 ;; esac
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}

# wait_for_either A B [TENTHS]: until A or B is on screen (default 10 s),
# whichever comes first: an outcome with two wordings is not waited for
# twice.
wait_for_either() {
	n=0
	while [ "$n" -lt "${3:-100}" ]; do
		case "$(screen)" in *"$1"* | *"$2"*) return 0 ;; esac
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}

# see TEXT WHAT: a check that TEXT appears (waiting up to 5 s).
see() {
	checks=$((checks + 1))
	wait_for "$1" 50 || fail "$2: '$1' not on screen:
$(screen)"
}

# row NAME: the table row of a layer (the first screen line starting with
# it, after the selection marker).
row() {
	screen | grep -E "^[> ]$1 " | head -1
}

# tui_pid: the program's pid (the pane's process, or its child when tmux
# ran the command through a shell).
tui_pid() {
	pane=$(tmux -S "$sock" display-message -p '#{pane_pid}')
	for stat in /proc/[0-9]*/stat; do
		read -r pid comm state ppid rest <"$stat" 2>/dev/null || continue
		[ "$ppid" = "$pane" ] && { echo "$pid"; return; }
	done
	echo "$pane"
}

# pane_state: "0 " while running, "1 STATUS" once the program has exited.
pane_state() {
	if [ -s "$status_file" ]; then echo "1 $(cat "$status_file")"; else echo "0 "; fi
}

wait_exit() {
	n=0
	while [ "$n" -lt 100 ]; do
		case "$(pane_state)" in "1 "[0-9]*) return 0 ;; esac
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}

# tui_resize COLS LINES [PID]: the window resized, and the program's
# terminal at that size.  tmux 3.3 can leave the pty at an earlier size when
# resizes follow one another quickly (its pane says the new size, the
# program never hears of it), so a resize that has not arrived is sent
# again by way of another size.  Returns 1 (with the size it stays at in
# $resize_stuck) when the terminal never gets there; a program that has
# exited has no terminal to wait for (0).
tui_resize() {
	rpid=${3:-$(tui_pid)}
	tmux -S "$sock" resize-window -x "$1" -y "$2" 2>/dev/null
	rtty=$(readlink "/proc/$rpid/fd/0" 2>/dev/null) || return 0
	n=0
	while [ "$(stty -F "$rtty" size 2>/dev/null)" != "$2 $1" ]; do
		[ -e "/proc/$rpid" ] && [ ! -s "$status_file" ] || return 0
		n=$((n + 1))
		if [ "$n" -gt 150 ]; then
			resize_stuck=$(stty -F "$rtty" size 2>/dev/null)
			return 1
		fi
		if [ $((n % 25)) -eq 0 ]; then
			tmux -S "$sock" resize-window -x "$(($1 + 1))" -y "$2"
			sleep 0.05
			tmux -S "$sock" resize-window -x "$1" -y "$2"
		fi
		sleep 0.02
	done
}
