#!/bin/sh
# tui-families.sh — pruning, quantisation and low rank + sparse in the
# workbench: the sparsity and bits keys, the quantiser and method menu, the
# figures shown equal to the Lua API's (the same O(1) queries), the pruning
# and quantisation views, the background low rank + sparse solve, and the
# decompositions (grouped SVD with its group and fold keys, Tucker-2, CP),
# solved in the background with their views.
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
wait_for_either "low rank + sparse solved in" "beats the combination" 600 ||
	fail "the solve finishes: $(screen | tail -3)"
lacks "$(row fc2.weight)" "queued" "no longer queued"

keys q y
wait_exit

# ---- the decompositions: grouped SVD, Tucker-2, CP on a conv layer ----------------
cnn=$SAMPLES/digits-cnn.safetensors
# clua SPEC: conv3's err_fro under plan:set(SPEC), from the CLI (the same solve)
clua() {
	printf 'local model, plan = ...
print(string.format("%%.4f", plan:set(model:layer("conv3.weight"), %s).err_fro))
' \
		"$1" >"$scratch/q.lua"
	"$RANKSCOPE" run "$scratch/q.lua" "$cnn" | head -1
}
tui_start 130 40 "$RANKSCOPE" "$cnn"
see "stats 5/5" "cnn statistics computed"
keys Down Down
keys M
see "method for conv3.weight" "the method menu on conv3"
keys Down Down Down Down Down Down Down Enter
see "grouped solved" "the grouped SVD is solved in the background"
contains "$(row conv3.weight)" "g2 r16" "two groups at rank 16 (k/4)"
contains "$(row conv3.weight)" "$(clua '{method = "grouped", groups = 2, rank = 16, fold = 0}')" \
	"the error equals plan:set's grouped solve"
see "1-2: each group's singular values" "the per-group spectra view"
keys C
see "g3 r16" "C: the next group count dividing 288"
keys f
see "3 groups, rank 16 each, fold 1" "f: the next fold whose columns 3 groups divide; the view follows"
see "1-3: each group's singular values" "the three groups' spectra, once solved"
contains "$(row conv3.weight)" "$(clua '{method = "grouped", groups = 3, rank = 16, fold = 1}')" \
	"the error equals plan:set's at fold 1"
keys M
keys Down Enter
see "tucker2 solved" "Tucker-2 solved in the background"
contains "$(row conv3.weight)" "tk 16,8" "Tucker-2 starts at f/4, c/4"
contains "$(row conv3.weight)" "$(clua '{method = "tucker2", ranks = {16, 8}}')" \
	"the error equals plan:set's HOOI"
see "o: output-mode, i: input-mode" "the mode spectra view"
keys Left
see "tk 15,8" "the rank key moves r_out, r_in keeps its share"
keys M
keys Down Enter
see "cp solved" "CP solved in the background"
contains "$(row conv3.weight)" "cp 16" "CP at rank 16"
keys u
see "tk 15,8" "undo goes back to the Tucker-2 entry"
# a quantised part plus a sparse correction, solved in the background
keys M
see "quant+sparse" "the menu lists quant+sparse"
keys Down Down Enter
checks=$((checks + 1))
wait_for_either "quant+sparse solved in" "quantisation alone beats" 300 ||
	fail "the quant+sparse solve finishes: $(screen | tail -3)"
case "$(row conv3.weight)" in
*"Q2+S 0.95"* | *km*) checks=$((checks + 1)) ;;
*) fail "conv3 shows quant+sparse (or the quantiser it fell back to): $(row conv3.weight)" ;;
esac
keys q y
wait_exit
finish
