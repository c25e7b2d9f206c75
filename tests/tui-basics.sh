#!/bin/sh
# tui-basics.sh — the workbench as a person uses it, in a real terminal
# (tmux): open a sample, move the rank slider and compare the shown errors
# with what `rankscope spectra` reports for that rank, undo, global mode,
# filter, sort, help, and quitting with and without unsaved edits.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors

# expected_row LAYER RANK: "err_F err_2" from the CLI, 4 decimals as shown.
expected() {
	"$RANKSCOPE" spectra --layer "$1" "$mlp" |
		awk -F, -v r="$2" '$2 == r { printf "%.4f  %.4f", $5, $6 }'
}

tui_start 130 36 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "spectra computed"
see "fc1.weight" "table shows layers"

# Type a rank for fc2 and compare with the CLI.
keys Down r 1 0 0 Enter
see "100/512 err_F" "rank slider shows 100/512"
contains "$(row fc2.weight)" "100  $(expected fc2.weight 100)" "fc2 at rank 100 matches the CLI"
keys Right
see "101/512" "Right moves the slider"
contains "$(row fc2.weight)" "101  $(expected fc2.weight 101)" "fc2 at rank 101 matches the CLI"
keys Left Left Left
see "98/512" "Left x3"
contains "$(row fc2.weight)" "98  $(expected fc2.weight 98)" "fc2 at rank 98 matches the CLI"
contains "$(screen)" "[edited]" "the totals line marks edits"

# Undo: the run of nudges is one step, then the typed rank.
keys u
see "100/512" "undo the nudges"
keys u
see "512/512 dense" "undo the typed rank"
contains "$(row fc2.weight)" "dense" "fc2 dense again"

# A rank that costs more than the dense layer keeps it dense.
keys Up r 6 0 Enter
see "costs more than dense (break-even 56)" "rank 60 on 512x64 does not pay"
contains "$(row fc1.weight)" "dense" "fc1 stays dense at rank 60"
keys r 5 6 Enter
see "56/64 err_F" "rank 56 set"
contains "$(row fc1.weight)" "56  $(expected fc1.weight 56)" "break-even rank 56 pays"

# Bad input in the rank prompt is refused with a message.
keys r 9 9 9 Enter
see "rank must be a whole number from 1 to 64, not '999'" "rank out of range"

# Global mode: keep 50 % of every rank.
keys m
see "keep 50% of each rank" "global keep mode"
contains "$(row fc1.weight)" "32  $(expected fc1.weight 32)" "fc1 at 32 = 50% of 64"
contains "$(row fc3.weight)" "5  $(expected fc3.weight 5)" "fc3 at 5 = 50% of 10"
keys + +
see "keep 60% of each rank" "global value raised"
keys m
see "keep 99.000% of each layer's energy" "global energy mode"
# fc2 needs rank 349 for 99 %: past its break-even 256, so it stays dense.
contains "$(row fc2.weight)" "dense" "fc2 at 99% energy stays dense"
# Six steps down discard 1.5^6 times as much: keep 88.609375 %.
keys - - - - - -
see "keep 88.609% of each layer's energy" "energy threshold lowered"
r=$("$RANKSCOPE" spectra --layer fc2.weight "$mlp" |
	awk -F, 'NR > 1 && $4 >= 0.88609375 { print $2; exit }')
contains "$(row fc2.weight)" " $r  $(expected fc2.weight "$r")" "fc2 at its 88.6% energy rank $r"

# Filter and sort.
keys / f c 3 Enter
see "filter 'fc3': 1 of 3 layers" "filter message"
equals "$(row fc2.weight)" "" "fc2 filtered out"
keys / BSpace BSpace BSpace Enter
see "filter cleared" "filter cleared"
keys o o
see "sorted by size" "sort by size"
first=$(screen | grep -E '^[> ]fc[0-9]' | head -1 | cut -c2-11)
equals "$first" "fc2.weight" "largest layer first"
keys O
see "sorted by size, reversed" "reverse message"
first=$(screen | grep -E '^[> ]fc[0-9]' | head -1 | cut -c2-11)
equals "$first" "fc3.weight" "reversed: smallest first"

# Help, generated from the key table (a tall screen, so that the box does
# not overlap the slider rows).
tmux -S "$sock" resize-window -x 130 -y 50
sleep 1
keys '?'
see "rankscope keys" "help screen"
contains "$(screen)" "type a rank for this layer" "help lists r"
# The man page lists every binding the help screen shows.
man=$(sed 's/\\-/-/g' "$TESTS_SRCDIR/../man/rankscope.1")
# The box is 74 columns wide, centred: key names at columns 29-39 and
# descriptions from column 41 (the table left of it is ASCII, so bytes
# are columns there).
screen | awk '/rankscope keys/ { on = 1; next } /mouse: click/ { on = 0 } on' |
	cut -c29-101 | awk 'substr($0, 2, 10) ~ /[^ ]/ && substr($0, 13) ~ /[a-z]/ {
	d = substr($0, 13); sub(/ +$/, "", d); print d }' >"$scratch/help-lines"
checks=$((checks + 1))
[ "$(wc -l <"$scratch/help-lines")" -ge 20 ] || fail "read the help lines: $(cat "$scratch/help-lines")"
while read -r line; do
	contains "$man" "$line" "man page documents the key for '$line'"
done <"$scratch/help-lines"
keys x
checks=$((checks + 1))
sleep 0.3
case "$(screen)" in *"rankscope keys"*) fail "any key closes the help" ;; esac

# Quit asks because of the edits; n stays, y leaves with status 0.
keys q
see "Quit anyway? (y/N)" "quit asks"
keys n
sleep 0.3
equals "$(pane_state)" "0 " "still running after n"
keys q y
checks=$((checks + 1))
wait_exit || fail "q y quits"
equals "$(pane_state)" "1 0" "exit status 0"

# Without edits, q quits at once.
tui_start 100 30 "$RANKSCOPE" "$mlp"
see "spectra 3/3" "second start"
keys q
checks=$((checks + 1))
wait_exit || fail "q quits without asking when nothing was edited"

# --dtype: the title says it, and sizes are costed in it: fc3 (10x512) at
# rank 5 is 5 (10 + 512) values of 2 bytes
tui_start 130 36 "$RANKSCOPE" --dtype f16 "$mlp"
see "values F16" "--dtype in the title"
keys : 'plan:set(model:layer("fc3.weight"), 5)' Enter
see "5.1 KiB" "fc3 at rank 5 in F16"
keys q y
checks=$((checks + 1))
wait_exit || fail "q y quits after --dtype"

finish
