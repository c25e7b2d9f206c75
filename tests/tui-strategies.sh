#!/bin/sh
# tui-strategies.sh — Lua from the workbench: the strategy menu and its
# parameter form give the same plan as `rankscope run`; the console reads
# and edits the plan, reports errors with their location and leaves the
# plan untouched on failure; Esc stops a runaway script; undo takes a whole
# strategy run back.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors

tui_start 130 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "spectra computed"

keys s
see "strategies (Enter: parameters, Esc: close)" "menu opens"
for name in alds budget-greedy budget-minimax energy lc-rankselect threshold uniform; do
	contains "$(screen)" " $name " "menu lists $name"
done
# sorted by name: alds, budget-greedy, budget-minimax, ...
keys Down Down Enter
see "budget-minimax: Enter edits a value" "the form of budget-minimax"
contains "$(screen)" "budget           = 0.5" "default budget shown"
keys Up Up Up Enter BSpace BSpace BSpace 0 . 3 Enter
see "budget           = 0.3" "budget edited"
keys r
see "budget-minimax: worst err_spec" "the run's summary in the message line"

# The same plan as the command line's.
"$RANKSCOPE" run budget-minimax --param budget=0.3 "$mlp" >"$scratch/cli.txt"
for layer in fc1.weight fc2.weight fc3.weight; do
	cli_rank=$(awk -v l="$layer" '$1 == l { print ($3 == "dense" ? "dense" : $4) }' "$scratch/cli.txt")
	tui_rank=$(row "$layer" | awk '{ print $3 }')
	equals "$tui_rank" "$cli_rank" "$layer: workbench and CLI agree"
done

# Undo takes the whole run back.
keys u
see "undone" "undo after a strategy"
contains "$(row fc2.weight)" "dense" "fc2 dense again"

# The console.
keys : 'plan:set("fc2.weight", 40).rank' Enter
see "40" "console prints a result"
contains "$(row fc2.weight)" " 40 " "the console's edit shows in the table"
keys : 'plan:set("fc2.weight", 9999)' Enter
see "console:1: bad argument #2 to 'set'" "console error with its location"
contains "$(row fc2.weight)" " 40 " "a failed line leaves the plan as it was"
keys : 'plan:set("fc1.weight", 8); error("boom")' Enter
see "console:1: boom" "runtime error reported"
contains "$(row fc1.weight)" "dense" "edits of a failed line are rolled back"
keys : 'while true do end' Enter
sleep 1
keys Escape
see "console:1: interrupted" "Esc stops a runaway script"
keys : 'plan:get("fc2.weight").rank' Enter
see "40" "the workbench still answers after an interrupt"

# A strategy failing in the workbench: unreachable budget.
keys s
see "strategies (Enter" "menu again"
keys Up Enter
see "budget-greedy: Enter edits" "budget-greedy form"
keys Up Up Up Up Enter BSpace BSpace BSpace 0 . 0 0 0 1 Enter r
see "is unreachable" "the strategy's error in the message line"
contains "$(row fc2.weight)" " 40 " "a failed strategy leaves the plan as it was"
keys Escape Escape

# Out of memory in the console: a message, the plan as it was, and the
# workbench goes on (tui_start below runs with a small --lua-memory).
keys q y
wait_exit
tui_start 130 36 "$RANKSCOPE" --lua-memory 16M "$mlp"
see "spectra 3/3" "spectra computed (16 MiB for Lua)"
keys : 'plan:set("fc2.weight", 12); local t = {} for i = 1, math.huge do t[i] = {i} end' Enter
see "out of memory in the console: the Lua state reached its limit of 16 MiB" \
	"running out of memory in the console"
contains "$(row fc2.weight)" "dense" "the failed line's edit is rolled back"
keys : 'plan:set("fc2.weight", 12).rank' Enter
see "12" "the console works again after running out of memory"
keys q y
wait_exit
finish
