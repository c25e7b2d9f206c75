#!/bin/sh
# tui-crash.sh — when the workbench dies anyway: the terminal is restored,
# a report names where it died, and the plan as of the last edit is kept
# in the state directory and opens again with --plan.  A clean quit leaves
# no recovery copy behind.  (The crash is a SIGSEGV sent from outside: the
# handler cannot tell it from a real fault.)
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors
state=$scratch/state
mkdir -p "$state"

# An edit, a second for it to reach the recovery file, then the crash.
tui_start 110 32 env XDG_STATE_HOME="$state" "$RANKSCOPE" "$mlp" "2>$scratch/stderr"
see "spectra 3/3" "spectra computed"
keys Down r 3 Enter
sleep 0.3
pid=$(tui_pid)
n=0
while [ ! -f "$state/rankscope/recovery-$pid.plan.json" ] && [ $n -lt 50 ]; do
	sleep 0.1
	n=$((n + 1))
done
check "the plan is kept in the state directory after an edit" \
	[ -f "$state/rankscope/recovery-$pid.plan.json" ]
kill -SEGV "$pid"
checks=$((checks + 1))
wait_exit || fail "the crash ends the program"
code=$(pane_state)
case "$code" in
"1 139" | "1 1") ;;   # the default action, or a sanitizer's report
*) fail "exit after SIGSEGV: '$code'" ;;
esac
stderr=$(cat "$scratch/stderr")
contains "$stderr" "rankscope: SIGSEGV" "the signal is named"
contains "$stderr" "the report is in $state/rankscope/crash-$pid.txt" "where the report is"
contains "$stderr" "the plan as of your last edit is in $state/rankscope/recovery-$pid.plan.json" \
	"where the plan is"
contains "$stderr" "rankscope --plan $state/rankscope/recovery-$pid.plan.json $mlp" \
	"how to open it"
lacks "$(screen)" "err_F" "the workbench screen is gone (terminal restored)"
report=$(cat "$state/rankscope/crash-$pid.txt" 2>/dev/null)
contains "$report" "signal: SIGSEGV" "the report names the signal"
contains "$report" "model: $mlp" "and the model"
contains "$report" "backtrace:" "and has a backtrace"
contains "$report" "rankscope" "whose frames name the program"

# The recovered plan is the edited one: rank 3 on the second layer.
run 0 "$RANKSCOPE" show "$state/rankscope/recovery-$pid.plan.json" "$mlp"
contains "$out" "fc2.weight" "the recovered plan opens"
equals "$(printf '%s\n' "$out" | awk '$1 == "fc2.weight" { print $3, $4 }')" "lowrank 3" \
	"it holds the last edit"
tui_start 110 32 env XDG_STATE_HOME="$state" "$RANKSCOPE" \
	--plan "$state/rankscope/recovery-$pid.plan.json" "$mlp"
see "spectra 3/3" "the workbench opens the recovered plan"
contains "$(row fc2.weight)" " 3 " "with the edit in the table"

# A clean quit removes its own recovery copy (and only its own).
pid2=$(tui_pid)
keys Down r 5 Enter
n=0
while [ ! -f "$state/rankscope/recovery-$pid2.plan.json" ] && [ $n -lt 50 ]; do
	sleep 0.1
	n=$((n + 1))
done
check "the second session keeps its copy" [ -f "$state/rankscope/recovery-$pid2.plan.json" ]
keys q y
wait_exit
equals "$(pane_state)" "1 0" "a clean quit"
check "a clean quit removes its recovery copy" [ ! -e "$state/rankscope/recovery-$pid2.plan.json" ]
check "the crashed session's copy stays" [ -f "$state/rankscope/recovery-$pid.plan.json" ]

# A state directory that cannot be made: the workbench works, without a copy.
: >"$scratch/notadir"
tui_start 110 32 env XDG_STATE_HOME="$scratch/notadir" "$RANKSCOPE" "$mlp"
see "spectra 3/3" "a state directory that cannot be made"
keys Down r 5 Enter
see "fc2.weight" "the workbench goes on"
keys q y
wait_exit
equals "$(pane_state)" "1 0" "and quits cleanly"

finish
