#!/bin/sh
# tui-plans.sh — plans in the workbench: --plan opens with a saved plan;
# w saves (never replacing a file without asking), e loads (a plan that
# does not fit is refused and changes nothing); a plan loaded and saved
# unchanged is byte-identical to the file it came from.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors
TUI_CWD=$scratch
"$RANKSCOPE" run budget-minimax --param budget=0.3 -o "$scratch/p.json" "$mlp" >/dev/null
"$RANKSCOPE" run uniform --param keep=0.2 -o "$scratch/cnn.json" "$cnn" >/dev/null
rank_of() {   # LAYER in the plan file P: its rank, or dense
	awk -v l="\"$2\"" '$0 ~ "\"name\": " l { on = 1 } on && /"rank"/ {
		gsub(/[ ,]/, ""); sub(/"rank":/, ""); print ($0 == "null" ? "dense" : $0); exit }' "$1"
}

# A plan that does not fit the model is refused before the screen changes.
run 1 "$RANKSCOPE" --plan "$scratch/cnn.json" "$mlp"
contains "$err" "cnn.json: layer 'conv1.weight' is not a layer of" "mismatching --plan refused"

tui_start 130 36 "$RANKSCOPE" --plan p.json "$mlp"
see "spectra 3/3" "spectra computed"
for layer in fc1.weight fc2.weight fc3.weight; do
	equals "$(row "$layer" | awk '{ print $3 }')" "$(rank_of "$scratch/p.json" "$layer")" \
		"$layer opens with the plan's choice"
done
lacks "$(screen)" "[edited]" "a freshly loaded plan is not an edit"

# Saving unchanged under a new name: the same bytes.
keys w
see "save plan to: p.json" "the save prompt offers the plan's name"
keys C-u
keys BSpace BSpace BSpace BSpace BSpace BSpace q . j s o n Enter
see "plan saved to q.json" "saved"
checks=$((checks + 1))
cmp -s "$scratch/p.json" "$scratch/q.json" || fail "load + save unchanged is byte-identical"

# Replacing a file asks first.
keys Down Right
see "[edited]" "an edit"
keys w Enter
see "q.json exists. Replace it? (y/N)" "asks before replacing"
keys n
see "not saved" "n keeps the file"
checks=$((checks + 1))
cmp -s "$scratch/p.json" "$scratch/q.json" || fail "the file is untouched after n"
keys w Enter y
see "plan saved to q.json" "y replaces"
checks=$((checks + 1))
cmp -s "$scratch/p.json" "$scratch/q.json" && fail "the file now holds the edit"
lacks "$(screen)" "[edited]" "saved: no unsaved edits"

# Loading: a plan for another model is refused and changes nothing.
before=$(row fc2.weight)
keys e C-u
keys BSpace BSpace BSpace BSpace BSpace BSpace c n n . j s o n Enter
see "cnn.json: layer 'conv1.weight' is not a layer of" "a mismatching plan is refused"
equals "$(row fc2.weight)" "$before" "the plan is unchanged"
keys e BSpace BSpace BSpace BSpace BSpace BSpace p . j s o n Enter
see "plan loaded from p.json" "loading a plan"
equals "$(row fc2.weight | awk '{ print $3 }')" "$(rank_of "$scratch/p.json" fc2.weight)" \
	"the loaded choice is shown"
keys u
see "undone" "a load is one undo step"

# Quitting asks only for edits since the last save or load.
keys q
see "Quit anyway?" "the undone load left edits"
keys y
wait_exit
finish
