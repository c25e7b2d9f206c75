#!/bin/sh
# tui-families.sh — pruning, quantisation and low rank + sparse in the
# workbench: the sparsity and bits keys, the quantiser and method menu, the
# figures shown equal to the Lua API's (the same O(1) queries), the pruning
# and quantisation views, and the background low rank + sparse solve.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

RANKSCOPE_LUA_DIR="$TESTS_SRCDIR/../lua"
export RANKSCOPE_LUA_DIR
mlp=$SAMPLES/digits-mlp.safetensors

# lua EXPR: the value of an expression over the sample, from the CLI.
lua() {
	printf 'local model, plan = ...\nprint(string.format("%%.4f", %s))\n' "$1" \
		>"$scratch/q.lua"
	"$RANKSCOPE" run "$scratch/q.lua" "$mlp" | head -1
}

tui_start 130 40 "$RANKSCOPE" "$mlp"
see "stats 3/3" "statistics computed"
keys Down

# ] prunes: 0.05 per step
keys ] ] ]
see "0.15 prune err_F" "three steps of sparsity"
contains "$(row fc2.weight)" "prune 0.15" "the table shows the choice"
contains "$(row fc2.weight)" "$(lua 'model:layer("fc2.weight"):prune_error(0.15)')" \
	"the error equals layer:prune_error(0.15)"
contains "$(screen)" "|w| hist" "the pruning view"
keys [
see "0.10 prune err_F" "[ lowers the sparsity"
keys u
see "undone" "the run of sparsity steps is one undo step"
contains "$(row fc2.weight)" "dense" "back to dense"

# b quantises (k-means by default, from 8 bits down), Q changes the quantiser
keys b
see "8 kmeans err_F" "b quantises"
keys b b b b
see "4 kmeans err_F" "four bits fewer"
contains "$(row fc2.weight)" "km4b" "the table shows k-means 4 bits"
contains "$(row fc2.weight)" "$(lua 'model:layer("fc2.weight"):quant_error("kmeans", 4)')" \
	"the error equals layer:quant_error"
contains "$(screen)" "relative error by bits" "the quantisation view"
keys Q
see "quantiser: binary" "Q cycles the quantiser"
contains "$(row fc2.weight)" "$(lua 'model:layer("fc2.weight"):quant_error("binary", 1)')" \
	"binary's error"
keys B
see "1 binary err_F" "binary has one width"

# the method menu: whole output channels
keys M
see "method for fc2.weight" "the method menu"
keys Down Down Down Enter
see "fc2.weight: prune-rows" "prune-rows chosen"
contains "$(row fc2.weight)" "rows 0.50" "half the output channels"
contains "$(row fc2.weight)" "$(lua 'model:layer("fc2.weight"):prune_rows_error(0.5)')" \
	"the error equals layer:prune_rows_error(0.5)"

# low rank + sparse: solved in the background, then shown
keys M
see "method for fc2.weight" "the menu again"
keys Down Down Down Enter
see "fc2.weight: lowrank+sparse" "lowrank+sparse chosen"
checks=$((checks + 1))
wait_for "low rank + sparse solved in" 600 || wait_for "beats the combination" 10 ||
	fail "the solve finishes: $(screen | tail -3)"
lacks "$(row fc2.weight)" "queued" "no longer queued"

keys q y
wait_exit
finish
