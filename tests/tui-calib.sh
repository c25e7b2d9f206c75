#!/bin/sh
# tui-calib.sh — the workbench in the output norm (the n key), in tmux, on
# the digits MLP with calibration statistics made by tests/calibcheck.py
# from its own forward pass: the figures shown (table, rank slider, totals,
# spectrum view) equal the curves of `rankscope spectra --format json -C`
# (which cli-calib.sh holds against numpy on the real inputs), rank edits
# set the whitened truncation in the output norm and the plain one in the
# weight norm, sorting follows the norm, the global energy threshold is of
# the output energy, estimates (diagonal statistics) and layers without
# statistics are marked, the key without calibration says why, and the
# toggle is walked through every menu and prompt and back.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy sklearn; then
	echo "skipped: no python3 with numpy and sklearn (the digits data)"
	exit 77
fi
. "$TESTS_SRCDIR/tui-lib.sh"
tui_sandbox


mlp=$SAMPLES/digits-mlp.safetensors
d=$scratch/calib
mkdir "$d"
run 0 "$python" "$TESTS_SRCDIR/calibcheck.py" write "$mlp" "$d/calib.safetensors"
run 0 "$python" "$TESTS_SRCDIR/calibcheck.py" write "$mlp" "$d/diag.safetensors" diag
# the same statistics without fc3's: a layer with weight figures only
run 0 "$python" -c 'import sys
sys.path.insert(0, sys.argv[1])
from checklib import SafeTensors, write_safetensors
st = SafeTensors(sys.argv[2])
write_safetensors(sys.argv[3], {n: st.array(n) for n in st.entries if not n.startswith("fc3.")})' \
	"$TESTS_SRCDIR" "$d/calib.safetensors" "$d/no-fc3.safetensors"
for c in calib diag; do
	run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/$c.safetensors" "$mlp"
	printf '%s\n' "$out" >"$d/$c.json"
done

# fig FILE LAYER CURVE RANK: a curve of the spectra JSON at a rank, with 4
# decimals as the workbench shows it (err_fro, err_spec at the layer's top
# level; out_err, whitened_out_err, whitened_err_fro under calibration)
fig() {
	"$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
l = [x for x in d["layers"] if x["name"] == sys.argv[2]][0]
c = l[sys.argv[3]] if sys.argv[3] in l else l["calibration"][sys.argv[3]]
print("%.4f" % c[int(sys.argv[4])])' "$d/$1.json" "$2" "$3" "$4"
}

# out_rank FILE LAYER FRACTION: the smallest rank whose whitened truncation
# keeps FRACTION of the output energy (whitened_out_err^2 <= 1 - FRACTION)
out_rank() {
	"$python" -c 'import json, math, sys
d = json.load(open(sys.argv[1]))
l = [x for x in d["layers"] if x["name"] == sys.argv[2]][0]
e = l["calibration"]["whitened_out_err"]
print(min(r for r in range(1, len(e)) if e[r] <= math.sqrt(1 - float(sys.argv[3])) + 1e-12))' \
		"$d/$1.json" "$2" "$3"
}

# checks the program still runs
alive() {
	checks=$((checks + 1))
	[ "$(pane_state)" = "0 " ] || fail "$1: the workbench exited ($(pane_state)):
$(screen)"
}

# ---- the output norm, figure by figure ----
tui_start 130 40 "$RANKSCOPE" --no-cache --calibration "$d/calib.safetensors" "$mlp"
see "stats 3/3" "statistics computed"
see "params — weight norm —" "the title names the norm (weight, the default)"
contains "$(screen)" " err_F   err_2 " "weight norm: the weight columns"

keys n
see "params — output norm —" "n: the title names the output norm"
see "err_out is the output error on the calibration inputs" "n: the message says what err_out is"
contains "$(screen)" " err_out   err_F " "output norm: the table's error columns"
contains "$(screen)" "worst output error on the calibration inputs" "output norm: the totals line"

# A typed rank sets the whitened truncation; its figures are the CLI's.
keys Down r 1 0 0 Enter
wo=$(fig calib fc2.weight whitened_out_err 100)
wf=$(fig calib fc2.weight whitened_err_fro 100)
see "100/512 err_out $wo err_F $wf params" "rank slider at 100: whitened err_out and err_F"
contains "$(row fc2.weight)" "100w  $wo  $wf" "fc2 at whitened rank 100: row equals the CLI"
contains "$(screen)" "worst output error on the calibration inputs $wo fc2.weight" \
	"totals: the worst output error and its layer"
contains "$(screen)" "fc2.weight 512x512  whitened (output norm)" "the view plots the whitened spectrum"
contains "$(screen)" "sigma WL" "the view labels the whitened singular values"
# the 90/99 % marks and the legend are of the output energy
o90=$(out_rank calib fc2.weight 0.90)
o99=$(out_rank calib fc2.weight 0.99)
contains "$(screen)" "9 90%:$o90  # 99%:$o99  B break-even:256" "the view's marks: output energy ranks"
kept=$("$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
e = [x for x in d["layers"] if x["name"] == "fc2.weight"][0]["calibration"]["whitened_out_err"][100]
print("%.2f" % (100 * (1 - e * e)))' "$d/calib.json")
contains "$(screen)" "rank 100 keeps $kept% of the output energy" "the legend: output energy kept"

keys Right
wo=$(fig calib fc2.weight whitened_out_err 101)
see "101/512 err_out $wo" "Right: rank 101 in the output norm"
contains "$(row fc2.weight)" "101w  $wo  $(fig calib fc2.weight whitened_err_fro 101)" \
	"fc2 at whitened rank 101 equals the CLI"

# Back to the weight norm: the same whitened entry, its weight figures.
keys n
see "params — weight norm —" "n again: the weight norm"
see "101/512 err_F $(fig calib fc2.weight whitened_err_fro 101)" \
	"weight norm: the whitened entry's err_F on the slider"
contains "$(row fc2.weight)" "101w  $(fig calib fc2.weight whitened_err_fro 101) " \
	"weight norm: the row shows the whitened entry's err_F"
contains "$(screen)" "worst err_2 " "weight norm: the totals line as without calibration"
# a rank set in the weight norm is the plain truncation, as without calibration
keys r 1 0 0 Enter
see "100/512 err_F $(fig calib fc2.weight err_fro 100) err_2 $(fig calib fc2.weight err_spec 100)" \
	"weight norm: rank 100 is the plain truncation"
contains "$(row fc2.weight)" "100  $(fig calib fc2.weight err_fro 100)  $(fig calib fc2.weight err_spec 100)" \
	"weight norm: fc2 at plain rank 100 equals the CLI"
# its output error is the plain truncation's, and the slider says so
keys n
see "100/512 err_out $(fig calib fc2.weight out_err 100) (plain) err_F $(fig calib fc2.weight err_fro 100)" \
	"output norm: the plain entry's output error, marked plain"
contains "$(row fc2.weight)" "100  $(fig calib fc2.weight out_err 100)  $(fig calib fc2.weight err_fro 100)" \
	"output norm: fc2's plain row"
keys u
see "101/512 err_out $(fig calib fc2.weight whitened_out_err 101)" "undo: the whitened rank 101 back"

# Sorting by error follows the norm: whitened fc1 at 40 and fc2 at 20,
# where the two norms order them differently.
keys Up r 4 0 Enter Down r 2 0 Enter
see "20/512 err_out $(fig calib fc2.weight whitened_out_err 20)" "fc2 at whitened 20"
by_out=$("$python" -c "print('fc1.weight' if $(fig calib fc1.weight whitened_out_err 40) > $(fig calib fc2.weight whitened_out_err 20) else 'fc2.weight')")
by_fro=$("$python" -c "print('fc1.weight' if $(fig calib fc1.weight whitened_err_fro 40) > $(fig calib fc2.weight whitened_err_fro 20) else 'fc2.weight')")
checks=$((checks + 1))
[ "$by_out" != "$by_fro" ] || fail "the ranks chosen should order the layers differently in the two norms"
keys o o o
see "sorted by error" "sort by error"
first=$(screen | grep -E '^[> ]fc[0-9]' | head -1 | cut -c2-11)
equals "$first" "$by_out" "output norm: the largest err_out first"
keys n
see "params — weight norm —" "n re-sorts"
sleep 0.2
first=$(screen | grep -E '^[> ]fc[0-9]' | head -1 | cut -c2-11)
equals "$first" "$by_fro" "weight norm: the largest err_F first"
keys n o
see "sorted by compressibility" "sort moved on"

# The global energy threshold in the output norm: each layer at the
# smallest whitened rank keeping 99 % of its output energy.
keys m m
see "keep 99.000% of each layer's output energy" "global energy mode in the output norm"
for l in fc1.weight fc2.weight fc3.weight; do
	r=$(out_rank calib $l 0.99)
	contains "$(row $l)" " ${r}w  $(fig calib $l whitened_out_err "$r")" \
		"$l at its 99% output-energy rank $r"
done
keys n
see "keep 99.000% of each layer's energy" "weight norm: the weight energy"
keys m u u u u u u u u
alive "global mode off, undone"
keys q y
checks=$((checks + 1))
wait_exit || fail "q y quits"
equals "$(pane_state)" "1 0" "exit status 0"

# ---- diagonal statistics: estimates, marked ~ ----
tui_start 130 40 "$RANKSCOPE" --no-cache --calibration "$d/diag.safetensors" "$mlp"
see "stats 3/3" "diag: statistics computed"
keys n Down r 1 0 0 Enter
wo=$(fig diag fc2.weight whitened_out_err 100)
see "100/512 err_out ~$wo" "diag: the slider marks the estimate"
contains "$(row fc2.weight)" "100w ~$wo  $(fig diag fc2.weight whitened_err_fro 100)" \
	"diag: the row marks the estimate"
keys q y
wait_exit

# ---- a layer without statistics: "-" and why ----
tui_start 130 40 "$RANKSCOPE" --no-cache --calibration "$d/no-fc3.safetensors" "$mlp"
see "stats 3/3" "no-fc3: statistics computed"
keys n End r 5 Enter
see "fc3.weight: no output figures (the calibration file has no statistics for it): the plain truncation" \
	"no-fc3: a rank edit says why it is plain"
contains "$(row fc3.weight)" "5       -  $(fig calib fc3.weight err_fro 5)" "no-fc3: err_out is -"
contains "$(screen)" "worst output error on the calibration inputs - fc3.weight has none" \
	"no-fc3: the totals name the layer without an output figure"
contains "$(screen)" "fc3.weight 10x512  weight spectrum" "no-fc3: the view shows the weight spectrum"
contains "$(screen)" "│ the calibration file has no statistics for it" "no-fc3: the view says why"
keys q y
wait_exit

# ---- without calibration the key says so ----
tui_start 130 40 "$RANKSCOPE" --no-cache "$mlp"
see "spectra 3/3" "no calibration: started"
keys n
see "only the weight norm: output errors need calibration statistics (start with --calibration FILE)" \
	"no calibration: n says why"
checks=$((checks + 1))
case "$(screen)" in *" norm —"*) fail "no calibration: the title names no norm" ;; esac
contains "$(screen)" " err_F   err_2 " "no calibration: still the weight columns"
keys q
wait_exit

# ---- a combination solved by the workbench gets its output error ----
tui_start 130 40 "$RANKSCOPE" --no-cache --calibration "$d/calib.safetensors" "$mlp"
see "stats 3/3" "solver: started"
keys Down M
see "method for fc2.weight" "solver: the method menu"
keys Down Down Down Down Down Down Enter
see "fc2.weight: lowrank+sparse" "solver: lowrank+sparse chosen"
checks=$((checks + 1))
wait_for_either "low rank + sparse solved in" "beats the combination" 600 ||
	fail "solver: the solve finishes: $(screen | tail -3)"
keys : 'string.format("out=%s", tostring(plan:get("fc2.weight").out_err ~= nil))' Enter
see "out=true" "solver: the solved entry carries its output error"
keys q y
wait_exit

# ---- the toggle walked through every menu and prompt ----
tui_start 130 40 "$RANKSCOPE" --no-cache --calibration "$d/calib.safetensors" "$mlp"
see "stats 3/3" "walk: started"
keys n
see "params — output norm —" "walk: output norm"
# the strategy menu: n there is the menu's key, not the toggle
keys s
see " strategies (Enter: parameters, Esc: close)" "walk: strategy menu in the output norm"
keys n Escape
alive "walk: n in the strategy menu"
see "params — output norm —" "walk: the menu leaves the norm as it was"
keys s Enter
see ": Enter edits a value" "walk: a strategy's form"
keys n Escape Escape
alive "walk: n in a form"
keys n
see "params — weight norm —" "walk: toggled after the menus"
keys n
see "params — output norm —" "walk: toggled back"
# the method menu: lowrank in the output norm is the whitened truncation
keys Down M j Enter
see "fc2.weight: lowrank" "walk: method menu picks lowrank"
wo=$(fig calib fc2.weight whitened_out_err 128)
see "128/512 err_out $wo" "walk: lowrank from the menu is whitened (k/4)"
contains "$(row fc2.weight)" "128w  $wo" "walk: the menu's lowrank row"
# saved, the entry is the whitened truncation, made on this calibration
keys w Enter
see "plan saved to digits-mlp.plan.json" "walk: plan saved"
run 0 "$RANKSCOPE" show --no-cache -C "$d/calib.safetensors" "$scratch/work/digits-mlp.plan.json" "$mlp"
contains "$out" "r=128 whitened" "walk: the saved plan holds the whitened rank"
run 1 "$RANKSCOPE" show --no-cache "$scratch/work/digits-mlp.plan.json" "$mlp"
contains "$err" "made in the output norm" "walk: the saved plan needs its calibration"
keys M n
alive "walk: n in the method menu"
keys Escape n
see "params — weight norm —" "walk: toggled after the method menu"
# help: the key is listed, and any key (n too) closes it
tmux -S "$sock" resize-window -x 130 -y 50
sleep 0.5
keys '?'
see "rankscope keys" "walk: help"
contains "$(screen)" "norm of the errors: weight or output (needs --calibration)" "walk: help lists n"
keys n
checks=$((checks + 1))
sleep 0.3
case "$(screen)" in *"rankscope keys"*) fail "walk: n closes the help" ;; esac
see "params — weight norm —" "walk: n closing the help does not toggle"
keys n
see "params — output norm —" "walk: toggled after the help"
# the filter prompt: n is text there
keys / n
see "filter (substring or glob, empty clears): n" "walk: n typed into the filter"
keys BSpace f c 2 Enter
see "filter 'fc2': 1 of 3 layers" "walk: filter in the output norm"
keys n
see "params — weight norm —" "walk: toggled while filtered"
keys / BSpace BSpace BSpace Enter
see "filter cleared" "walk: filter cleared"
# the rank prompt and the console: n is text, Esc leaves
keys r n Escape : n Escape
alive "walk: n in the rank prompt and the console"
keys n
see "params — output norm —" "walk: toggled after the prompts"
# resizes in the output norm, down to too small and back
tui_resize 60 20 && tui_resize 40 10 && tui_resize 130 40
see "params — output norm —" "walk: resized and back"
alive "walk: resizes"
keys q y
checks=$((checks + 1))
wait_exit || fail "walk: q y quits"
equals "$(pane_state)" "1 0" "walk: exit status 0"
reports=$(sanitizer_reports)
[ -z "$reports" ] || fail "sanitizer reports:
$reports"

finish
