#!/bin/sh
# tui-terminal.sh — the workbench's terminal handling: mouse clicks and
# drags on sliders and rows, resizing down to a too-small terminal, the
# ASCII and monochrome fallbacks, a failing layer, staying responsive while
# a large spectrum is computed, and restoring the terminal on signals.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors

# mouse BUTTON X Y: an X10 mouse report (what the terminal sends), with
# 0-based cell coordinates; button 0 press, 3 release, 32 drag, 64/65 wheel.
mouse() {
	keys -l "$(printf '\033[M%b%b%b' "\\$(printf %03o $(($1 + 32)))" \
		"\\$(printf %03o $(($2 + 33)))" "\\$(printf %03o $(($3 + 33)))")"
}

# --- mouse, on a 130x36 screen: the rank slider is row 29, its track runs
# from column 8 over 64 cells, so column 8 + c sets rank 1 + c (k = 64).
tui_start 130 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "spectra computed"
# the statistics threads finished too: on a loaded machine the first click
# should not race the background work for the CPU
see "stats 3/3" "statistics computed"
mouse 0 30 29
mouse 3 30 29
see "23/64 err_F" "click on the rank slider sets rank 23"
mouse 0 20 29
see "13/64 err_F" "pressing on the rank slider moves it at once"
mouse 32 35 29
mouse 32 50 29
see "43/64 err_F" "dragging follows the pointer"
mouse 3 50 29
keys u
see "23/64 err_F" "a whole drag is one undo step"
mouse 0 10 4
mouse 3 10 4
see " fc3.weight 10x512" "clicking a row selects it"
mouse 64 10 4
see " fc2.weight 512x512" "wheel up selects the previous row"
keys q y
wait_exit

# --- resizing
tui_start 130 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "spectra computed"
# resize COLS LINES: resize, then give the program a moment to redraw (the
# old screen may satisfy a check that the new one should).
resize() {
	tmux -S "$sock" resize-window -x "$1" -y "$2"
	sleep 1
}
resize 80 30
see "sigma" "80x30 stacks the spectrum under the table"
see "rank " "80x30 still shows the rank slider"
resize 60 16
see "fc2.weight" "60x16 keeps the table"
lacks "$(screen)" "sigma" "60x16 has no room for the plot"
resize 40 10
see "terminal too small (40x10)" "40x10 says the terminal is too small"
resize 120 40
see "B break-even:56" "growing again brings everything back"
keys q
wait_exit

# --- on a 24-line terminal the help is taller than the screen: it scrolls
tui_start 80 24 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "80x24 start"
keys '?'
see "Up/Down scroll, any other key closes this help" "the help says it scrolls"
lacks "$(screen)" "quit (asks when there are plan edits)" "the last binding is below the fold"
keys Down Down Down Down Down Down Down Down Down Down Down Down Down Down
see "quit (asks when there are plan edits)" "scrolling reaches the last binding"
keys x
checks=$((checks + 1))
sleep 0.3
case "$(screen)" in *"rankscope keys"*) fail "another key closes the help" ;; esac
keys q
wait_exit

# --- ASCII fallback when the locale is not UTF-8; colours off with NO_COLOR
TUI_LC_ALL=C tui_start 120 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "spectra computed (C locale)"
see "<-/-> rank" "ASCII key hints"
lacks "$(screen)" "█" "no block characters in the C locale"
contains "$(screen)" "#" "ASCII bars"
keys q
wait_exit
tui_start 120 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "colour run"
contains "$(tmux -S "$sock" capture-pane -p -e)" "[36m" "colours used by default"
keys q
wait_exit
tui_start 120 36 env NO_COLOR=1 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "NO_COLOR run"
lacks "$(tmux -S "$sock" capture-pane -p -e)" "[36m" "NO_COLOR turns colours off"
keys q
wait_exit

# --- a layer that fails is shown as failed, with its message
make_nan_model "$scratch/nan.safetensors"
tui_start 120 30 "$RANKSCOPE" "$scratch/nan.safetensors"
see "spectra 2/2" "both layers finished"
see "layer 'bad': element (0, 1) of the 2x2 matrix is NaN" "failure in the log line"
contains "$(row bad)" "failed" "failed row"
keys q
wait_exit

# --- responsive while a 3000x3000 spectrum is computed (small layers are
# scheduled before it, so they are ready early)
"$MAKE_MODEL" "$scratch/big.safetensors" big.weight=3000x3000 small.weight=300x200
tui_start 120 36 "$RANKSCOPE" "$scratch/big.safetensors"
see "spectra 1/2" "the small layer is ready first"
keys Down '?'
checks=$((checks + 1))
wait_for "rankscope keys" 20 || fail "help opens within 2 s while the big layer computes"
case "$(screen)" in
*"spectra 1/2"*) ;;
*) echo "note: the big layer finished before the help check" ;;
esac
keys x
checks=$((checks + 1))
wait_for "spectra 2/2" 600 || fail "the big layer arrives within 60 s"
keys q
wait_exit

# --- signals restore the terminal and exit with 128 + signal
tui_start 100 30 "$RANKSCOPE" "$mlp" "2>$scratch/stderr"
see "spectra 3/3" "before SIGTERM"
kill -TERM "$(tui_pid)"
checks=$((checks + 1))
wait_exit || fail "SIGTERM ends the program"
equals "$(pane_state)" "1 143" "exit status 128 + SIGTERM"
contains "$(cat "$scratch/stderr")" "interrupted by signal 15" "message after restoring"
lacks "$(screen)" "err_F" "the workbench screen is gone (alternate screen left)"
tui_start 100 30 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "before Ctrl-C"
keys C-c
checks=$((checks + 1))
wait_exit || fail "Ctrl-C ends the program"
equals "$(pane_state)" "1 130" "exit status 128 + SIGINT"

finish
