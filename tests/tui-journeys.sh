#!/bin/sh
# tui-journeys.sh — the workbench walked from every menu into every other:
# each strategy's form after another's (after Esc, after a failed and after
# a successful run), the parameter prompt, the method menu with every
# method, the console, save, load and overwrite prompts, help, filter and
# rank prompts, each left by Esc and by Enter, resizes with a menu open,
# and the undo history run past its limit and undone past its start.  After
# every step the program must still run and its screen must still show the
# title, the table and what the step opened.  A step that crashes the
# program ends the test with the screen and any sanitizer report.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"
tui_sandbox


# name, parameter count and last parameter of every strategy, in the
# menu's order (by name)
"$RANKSCOPE" strategies | awk '
	/^    from / { split(prev, a, ":"); name = a[1]; names[++n] = name; np[name] = 0; next }
	/^    [^ ]+ \(/ && n { np[name]++; last[name] = $1 }
	{ prev = $0 }
	END { for (i = 1; i <= n; i++) print names[i], np[names[i]], last[names[i]] }' |
	LC_ALL=C sort >"$scratch/strategies"
nstrategies=$(wc -l <"$scratch/strategies")
[ "$nstrategies" -ge 10 ] || { fail "rankscope strategies lists $nstrategies"; finish; exit; }

# died WHAT: the program is gone: report everything and stop here.
died() {
	fail "$1: the workbench exited ($(pane_state)); screen:
$(screen)
$(sanitizer_reports)"
	finish
	exit 1
}

# alive WHAT: the program still runs.
alive() {
	checks=$((checks + 1))
	[ "$(pane_state)" = "0 " ] || died "$1"
}

# sane WHAT: the title, the hint line, the table header and every layer
# in $visible (the layers the filter lets through) are on screen.
sane() {
	scr=$(screen)
	checks=$((checks + 1))
	case "$scr" in
	*" rankscope "*"? help"*) ;;
	*) fail "$1: no title or hint line:
$scr" ;;
	esac
	checks=$((checks + 1))
	printf '%s\n' "$scr" | grep -q '^ layer ' || fail "$1: no table header:
$scr"
	for l in $visible; do
		checks=$((checks + 1))
		printf '%s\n' "$scr" | grep -q "^[> ]$l " || fail "$1: layer $l not in the table:
$scr"
	done
}

# poll TEXT [AND_TEXT]: until TEXT (and AND_TEXT) are on screen, looking
# every 20 ms for up to 5 s (most steps take a few ms: tui-lib's wait_for
# looks every 100 ms, which would make this walk of thousands of steps
# slow).
poll() {
	n=0
	while [ "$n" -lt 250 ]; do
		scr=$(screen)
		case "$scr" in *"$1"*) case "$scr" in *"${2:-}"*) return 0 ;; esac ;; esac
		sleep 0.02
		n=$((n + 1))
	done
	return 1
}

# gone TEXT WHAT: TEXT leaves the screen (within 5 s).
gone() {
	n=0
	checks=$((checks + 1))
	while [ "$n" -lt 250 ]; do
		case "$(screen)" in *"$1"*) ;; *) return 0 ;; esac
		sleep 0.02
		n=$((n + 1))
	done
	fail "$2: '$1' still on screen:
$(screen)"
}

# step WHAT TEXT: after the keys just sent, TEXT shows, the program runs
# and the screen is sane.
step() {
	checks=$((checks + 1))
	poll "$2" || { alive "$1"; fail "$1: '$2' not on screen:
$(screen)"; }
	alive "$1"
	sane "$1"
}

# closed WHAT TEXT: TEXT went away; the program runs, the screen is sane.
closed() {
	gone "$2" "$1"
	alive "$1"
	sane "$1"
}

# resize COLS LINES: the window resized and the program's terminal at that
# size (tui_resize in tui-lib.sh).
resize() {
	tui_resize "$1" "$2" || { fail "resize to $1x$2: the terminal stays $resize_stuck"; return 1; }
}

MENU=" strategies (Enter: parameters, Esc: close)"
METHODS="(Enter picks, Esc closes)"
HELP="rankscope keys"

# to_strategy I: the menu's cursor on strategy I (0-based), from anywhere
to_strategy() {
	keys $(i=0; while [ "$i" -lt "$nstrategies" ]; do printf 'k '; i=$((i + 1)); done)
	[ "$1" -gt 0 ] && keys $(i=0; while [ "$i" -lt "$1" ]; do printf 'j '; i=$((i + 1)); done)
}

# strategy_index NAME
strategy_index() {
	awk -v s="$1" '$1 == s { print NR - 1 }' "$scratch/strategies"
}

# open_form NAME: from the closed menus, s and NAME's form
open_form() {
	keys s
	step "s for $1" "$MENU"
	to_strategy "$(strategy_index "$1")"
	keys Enter
	step "$1's form" "$1: Enter edits a value"
}

# to_method I: the method menu's cursor on method I
to_method() {
	keys k k k k k k k k k k k k k k k k
	[ "$1" -gt 0 ] && keys $(i=0; while [ "$i" -lt "$1" ]; do printf 'j '; i=$((i + 1)); done)
}

# select_layer NAME: NAME selected (file order, no filter)
select_layer() {
	keys g
	p=0
	for l in $all; do
		[ "$l" = "$1" ] && break
		p=$((p + 1))
	done
	[ "$p" -gt 0 ] && keys $(i=0; while [ "$i" -lt "$p" ]; do printf 'j '; i=$((i + 1)); done)
	see "$1 $(matrix_of "$1")" "select $1"
}

# matrix_of LAYER: its matrix (MxN) from rankscope info
matrix_of() {
	awk -v l="$1" '$1 == l { print $4 }' "$scratch/info.$base"
}

# message_line: the line above the hints, where results and errors go
message_line() {
	screen | sed -n "$(($(screen | wc -l) - 1))p"
}

# walk MODEL FIRST SECOND LAYERS...: the whole journey on one model with
# LAYERS in file order; FIRST and SECOND are two of them, SECOND right
# after FIRST.
walk() {
	model=$1 first=$2 second=$3
	shift 3
	all="$*"
	visible=$all
	base=$(basename "$model" .safetensors)
	"$RANKSCOPE" info "$model" >"$scratch/info.$base"
	rm -f "$scratch/work/$base.plan.json"
	# Esc is a key of its own here hundreds of times, and this walk sends
	# no mouse reports (which a loaded machine may deliver in pieces, the
	# reason for tui-lib's 500 ms): a short ESCDELAY keeps it quick
	tui_start 130 48 env ESCDELAY=100 "$RANKSCOPE" "$model"
	checks=$((checks + 1))
	wait_for "stats $#/$#" 900 || fail "$base: statistics computed: $(screen | head -3)"
	alive "$base: open"
	sane "$base: open"

	# ---- every form after every other, each closed by Esc ----
	keys s
	step "$base: s" "$MENU"
	while read -r name np last; do
		contains "$(screen)" " $name " "$base: the menu lists $name"
	done <"$scratch/strategies"
	i=0
	while read -r name np last; do
		to_strategy "$i"
		keys Enter
		step "$base: form of $name" "$name: Enter edits a value"
		keys Escape
		step "$base: Esc from $name's form" "$MENU"
		gone "$name: Enter edits a value" "$base: Esc closes $name's form"
		i=$((i + 1))
	done <"$scratch/strategies"
	# and backwards, so that every form also follows a longer one
	i=$((nstrategies - 1))
	while [ "$i" -ge 0 ]; do
		name=$(sed -n "$((i + 1))p" "$scratch/strategies" | cut -d' ' -f1)
		to_strategy "$i"
		keys Enter
		step "$base: form of $name (backwards)" "$name: Enter edits a value"
		keys Escape
		step "$base: Esc from $name's form (backwards)" "$MENU"
		i=$((i - 1))
	done
	# exactly the path that crashed: energy, Esc, tucker-search, Enter
	to_strategy "$(strategy_index energy)"
	keys Enter
	step "$base: energy's form" "energy: Enter edits a value"
	keys Escape
	step "$base: Esc to the menu" "$MENU"
	to_strategy "$(strategy_index tucker-search)"
	keys Enter
	step "$base: tucker-search's form after energy's" "tucker-search: Enter edits a value"
	contains "$(screen)" " budget " "$base: tucker-search's own parameters"
	keys Escape
	step "$base: back to the menu" "$MENU"
	keys Escape
	closed "$base: Esc closes the menu" "$MENU"

	# ---- the parameter prompt of every form: Esc, then Enter ----
	while read -r name np last; do
		[ "$np" -gt 0 ] || continue
		open_form "$name"
		keys k Enter
		step "$base: $name's prompt for $last" "$last ="
		keys Escape
		gone "$last =" "$base: Esc leaves $name's prompt"
		step "$base: the form after Esc in the prompt" "$name: Enter edits a value"
		keys Enter
		step "$base: $name's prompt again" "$last ="
		keys Enter
		gone "$last =" "$base: Enter leaves $name's prompt"
		step "$base: the form after Enter in the prompt" "$name: Enter edits a value"
		# a value of the wrong type: the form keeps it, a run would refuse it
		keys Enter BSpace BSpace BSpace BSpace BSpace BSpace BSpace BSpace x y z Enter
		step "$base: $name takes xyz" "xyz"
		keys Escape Escape
		closed "$base: out of $name's form" "$name: Enter edits a value"
	done <"$scratch/strategies"

	# ---- run every strategy from its form (default values); each either
	# succeeds (the menu closes) or fails (the form stays, the message
	# line says why); then another strategy's form ----
	while read -r name np last; do
		open_form "$name"
		keys r
		checks=$((checks + 1))
		n=0
		while [ "$n" -lt 600 ]; do
			scr=$(screen)
			case "$scr" in *"$name: Enter edits a value"*) ;; *) break ;; esac
			[ -n "$(message_line | tr -d ' ')" ] && break
			sleep 0.1
			n=$((n + 1))
		done
		[ "$n" -lt 600 ] || fail "$base: $name's run ends: $(screen)"
		alive "$base: running $name"
		sane "$base: after running $name"
		case "$(screen)" in
		*"$name: Enter edits a value"*)
			keys Escape Escape
			closed "$base: out of $name's failed run" "$MENU" ;;
		esac
		other=$(awk -v s="$name" '$1 != s { print $1; exit }' "$scratch/strategies")
		[ "$name" = energy ] && other=tucker-search
		open_form "$other"
		keys Escape
		step "$base: $other's form, Esc" "$MENU"
		keys Escape
		closed "$base: menu closed after $other" "$MENU"
	done <"$scratch/strategies"
	# after a successful run of energy, tucker-search's form
	open_form energy
	keys r
	closed "$base: energy ran" "energy: Enter edits a value"
	open_form tucker-search
	keys Escape Escape
	closed "$base: tucker-search after a run of energy" "$MENU"
	# a failing run (an unreachable budget) leaves the form open
	open_form budget-greedy
	keys k k k k Enter BSpace BSpace BSpace BSpace 0 . 0 0 0 0 1 Enter r
	step "$base: an unreachable budget" "is unreachable"
	contains "$(screen)" "budget-greedy: Enter edits a value" "$base: the form stays after a failed run"
	keys Escape
	step "$base: the menu after a failed run" "$MENU"
	to_strategy "$(strategy_index tucker-search)"
	keys Enter
	step "$base: tucker-search after a failed run" "tucker-search: Enter edits a value"
	keys q
	step "$base: q goes back to the menu" "$MENU"
	keys q
	closed "$base: q closes the menu" "$MENU"

	# ---- the method menu: every method on two layers ----
	select_layer "$first"
	for layer in "$first" "$second"; do
		m=0
		while [ "$m" -lt 13 ]; do
			keys M
			step "$base: M on $layer ($m)" "method for $layer"
			to_method "$m"
			keys Enter
			closed "$base: method $m on $layer" "$METHODS"
			m=$((m + 1))
		done
		keys M
		step "$base: M on $layer" "method for $layer"
		to_method 0
		keys Enter
		closed "$base: $layer dense again" "$METHODS"
		keys j
	done
	# a save while a background solve has not given the layer its figures
	# would write it dense: refused (the keys arrive together, so the save
	# comes before the solve can have ended)
	select_layer "$second"
	keys M $(i=0; while [ "$i" -lt 16 ]; do printf 'k '; i=$((i + 1)); done) \
		$(i=0; while [ "$i" -lt 11 ]; do printf 'j '; i=$((i + 1)); done) Enter w
	step "$base: no save during a solve" "$second: the quant+sparse solve is still running"
	lacks "$(screen)" "save plan to:" "$base: no save prompt during a solve"
	keys M
	step "$base: M after the refused save" "method for $second"
	to_method 0
	keys Enter
	closed "$base: $second dense again" "$METHODS"
	select_layer "$first"
	# method menu -> strategy menu -> form -> console -> method menu -> ...
	keys M
	step "$base: M" "method for $first"
	keys M
	closed "$base: M closes it" "$METHODS"
	keys M
	step "$base: M again" "method for $first"
	keys Escape
	closed "$base: Esc" "$METHODS"
	keys s
	step "$base: s after M" "$MENU"
	keys Enter
	step "$base: a form after M" "Enter edits a value"
	keys Escape Escape
	closed "$base: the menus closed" "$MENU"
	keys :
	step "$base: : after the menus" "lua>"
	keys Escape
	closed "$base: Esc leaves the console" "lua>"
	keys : 'plan:set(model:layers()[1], 2); print("layers=" .. #model)' Enter
	step "$base: a console line" "layers=$#"
	keys : Enter
	closed "$base: an empty console line" "lua>"
	keys : 'error("x")' Enter
	step "$base: a failing console line" 'console:1: x'
	keys M
	step "$base: M after the console" "method for $first"
	keys Escape s
	step "$base: s after M after the console" "$MENU"
	keys Escape

	# ---- save, overwrite and load prompts, by Esc and by Enter ----
	keys w
	step "$base: w" "save plan to: $base.plan.json"
	keys Escape
	closed "$base: Esc leaves the save prompt" "save plan to:"
	check "$base: nothing saved on Esc" test ! -e "$scratch/work/$base.plan.json"
	keys w Enter
	step "$base: w Enter saves" "plan saved to $base.plan.json"
	check "$base: the plan was written in the scratch directory" \
		test -s "$scratch/work/$base.plan.json"
	keys w Enter
	step "$base: w Enter again asks" "$base.plan.json exists. Replace it? (y/N)"
	keys Escape
	step "$base: Esc keeps the file" "not saved"
	keys w Enter
	step "$base: asks again" "exists. Replace it? (y/N)"
	keys Enter
	step "$base: Enter keeps the file" "not saved"
	keys w Enter y
	step "$base: y replaces" "plan saved to $base.plan.json"
	keys w $(i=0; while [ "$i" -lt 30 ]; do printf 'BSpace '; i=$((i + 1)); done) Enter
	closed "$base: an empty name saves nothing" "save plan to:"
	keys w $(i=0; while [ "$i" -lt 10 ]; do printf 'BSpace '; i=$((i + 1)); done) 'x/y/z.json' Enter
	step "$base: a save into a missing directory" "x/y/z"
	keys e
	step "$base: e" "load plan from: $base.plan.json"
	keys Escape
	closed "$base: Esc leaves the load prompt" "load plan from:"
	keys e Enter
	step "$base: e Enter loads" "plan loaded from $base.plan.json"
	keys e $(i=0; while [ "$i" -lt 10 ]; do printf 'BSpace '; i=$((i + 1)); done) 'missing' Enter
	step "$base: a missing plan is refused" "missing"
	keys e $(i=0; while [ "$i" -lt 30 ]; do printf 'BSpace '; i=$((i + 1)); done) Enter
	closed "$base: an empty name loads nothing" "load plan from:"
	# a name longer than the prompt holds
	keys w $(i=0; while [ "$i" -lt 150 ]; do printf 'a '; i=$((i + 1)); done)
	step "$base: a long name typed" "save plan to: $base.plan.jsonaaaa"
	keys Escape
	closed "$base: Esc after a long name" "save plan to:"

	# ---- help: Esc, Enter, scrolling past both ends ----
	keys '?'
	step "$base: ?" "$HELP"
	keys Escape
	closed "$base: Esc closes the help" "$HELP"
	keys '?' $(i=0; while [ "$i" -lt 50 ]; do printf 'Down '; i=$((i + 1)); done)
	step "$base: help scrolled past its end" "$HELP"
	keys $(i=0; while [ "$i" -lt 60 ]; do printf 'Up '; i=$((i + 1)); done)
	step "$base: help scrolled back past its start" "$HELP"
	keys Enter
	closed "$base: Enter closes the help" "$HELP"
	keys F1
	step "$base: F1" "$HELP"
	keys s
	closed "$base: s closes the help" "$HELP"
	lacks "$(screen)" "$MENU" "$base: the key that closes the help does nothing else"

	# ---- filter and rank prompts ----
	keys /
	step "$base: /" "filter (substring or glob, empty clears):"
	keys "$second" Escape
	closed "$base: Esc leaves the filter as it was" "filter (substring"
	keys / "$second" Enter
	visible=$second
	step "$base: a filter" "filter '$second': 1 of $# layers"
	equals "$(row "$first")" "" "$base: the filter hides $first"
	keys r
	step "$base: r on the filtered table" "rank for $second (1.."
	keys Escape
	closed "$base: Esc leaves the rank prompt" "rank for"
	keys r 2 Enter
	gone "rank for" "$base: Enter leaves the rank prompt"
	step "$base: rank 2" "$second"
	contains "$(row "$second")" " 2 " "$base: the rank prompt sets rank 2"
	keys r Enter
	step "$base: an empty rank" "rank must be a whole number"
	keys r 9 9 9 9 9 9 Enter
	step "$base: a rank too large" "rank must be a whole number"
	keys / $(i=0; while [ "$i" -lt 15 ]; do printf 'BSpace '; i=$((i + 1)); done) zzz Enter
	visible=
	step "$base: a filter matching nothing" "no layer matches 'zzz'"
	# every key that acts on the selected layer, with none selected
	keys r h l H L ] [ b B Q c C f d Down Up PageDown PageUp Home End g G m - + o O u m m
	keys M Enter
	step "$base: keys with no layer" "no layer matches 'zzz'"
	keys M
	step "$base: M with no layer" "$METHODS"
	keys Escape s
	step "$base: s with no layer" "$MENU"
	keys Escape : 'plan:get(model:layers()[1]).method' Enter
	step "$base: the console with no layer" "no layer matches 'zzz'"
	keys /
	step "$base: the filter prompt keeps the filter" "empty clears): zzz"
	keys BSpace BSpace BSpace Enter
	visible=$all
	step "$base: the filter cleared" "filter cleared"
	keys / '*[' Enter
	visible=
	step "$base: a bad glob" "no layer matches"
	keys / BSpace BSpace Enter
	visible=$all
	step "$base: cleared again" "filter cleared"
	keys / "$(printf '%0130d' 0)" Enter
	visible=
	step "$base: a filter longer than its buffer" "no layer matches"
	keys / $(i=0; while [ "$i" -lt 130 ]; do printf 'BSpace '; i=$((i + 1)); done) Enter
	visible=$all
	step "$base: cleared after a long filter" "filter cleared"
	# a filter, a sort and a resize with the selection at the end
	keys G / "$second" Enter o o o O
	visible=$second
	step "$base: sorted while filtered" "$second"
	resize 60 16
	checks=$((checks + 1))
	poll "$second" " rankscope " || fail "$base: 60x16 while filtered: $(screen)"
	alive "$base: 60x16 while filtered"
	resize 130 48
	step "$base: back to 130x48" "$second"
	keys / $(i=0; while [ "$i" -lt 15 ]; do printf 'BSpace '; i=$((i + 1)); done) Enter
	visible=$all
	step "$base: all layers again" "filter cleared"
	# five o and two O in all: network order again
	keys o
	step "$base: network order again" "sorted by network order"

	# ---- resizes with each overlay open ----
	for overlay in s M '?' : w /; do
		case "$overlay" in
		s) keys s Enter; shows="Enter edits a value" ;;
		M) keys M; shows="method for" ;;
		'?') keys '?'; shows=$HELP ;;
		:) keys :; shows="lua>" ;;
		w) keys w; shows="save plan to:" ;;
		/) keys /; shows="filter (substring" ;;
		esac
		step "$base: $overlay open" "$shows"
		for size in "60 16" "40 10" "20 5" "80 24" "130 48"; do
			sw=${size% *} sh=${size#* }
			resize "$sw" "$sh"
			checks=$((checks + 1))
			if [ "$sw" -lt 50 ] || [ "$sh" -lt 14 ]; then
				poll "too small" "${sw}x$sh)"
			elif [ "$overlay" = M ] || [ "$overlay" = '?' ]; then
				# on a short screen these two cover the title
				poll "$shows"
			else
				poll "$shows" " rankscope "
			fi || fail "$base: $overlay open at $size: $(screen)"
			alive "$base: $overlay open at $size"
		done
		keys Escape Escape
		gone "$shows" "$base: Esc closes $overlay after the resizes"
		gone "$MENU" "$base: Esc closes the menus after the resizes"
		sane "$base: after resizing with $overlay open"
	done

	# ---- the undo history past its limit: 300 edits, then 266 undos.
	# Each h is an edit of its own (the selection moves in between).
	keys : 'for _, l in ipairs(model:layers()) do plan:set(l, {method = "dense"}) end; print("all dense")' Enter
	step "$base: all dense" "all dense"
	select_layer "$first"
	keys $(i=0; while [ "$i" -lt 150 ]; do printf 'h j h k '; i=$((i + 1)); done)
	keys u
	step "$base: the history holds $TUI_UNDO_MAX" "undone ($((TUI_UNDO_MAX - 1)) more)"
	keys $(i=0; while [ "$i" -lt $((TUI_UNDO_MAX - 1)) ]; do printf 'u '; i=$((i + 1)); done)
	step "$base: undone to the oldest point kept" "undone (0 more)"
	keys u u u u u u u u u u
	step "$base: undo past the start" "nothing to undo"
	# the oldest point kept is the plan after 300 - TUI_UNDO_MAX edits,
	# half of them on each layer
	half=$(((300 - TUI_UNDO_MAX) / 2))
	for l in "$first" "$second"; do
		mx=$(matrix_of "$l")
		k=$((${mx%x*} < ${mx#*x} ? ${mx%x*} : ${mx#*x}))
		select_layer "$l"
		see " $((k - half))/$k " "$base: $l after undoing all that is kept"
	done
	keys l
	step "$base: an edit after undoing everything" "$second"
	keys u
	step "$base: and its undo" "undone (0 more)"

	# ---- quit: asked, refused by Esc and by Enter, then y ----
	keys q
	step "$base: q with edits asks" "Quit anyway? (y/N)"
	keys Escape
	closed "$base: Esc refuses" "Quit anyway?"
	keys q Enter
	closed "$base: Enter refuses" "Quit anyway?"
	keys q y
	checks=$((checks + 1))
	wait_exit || fail "$base: q y quits"
	equals "$(pane_state)" "1 0" "$base: a clean exit"
}

TUI_UNDO_MAX=$(sed -n 's/^#define TUI_UNDO_MAX \([0-9]*\).*/\1/p' "$TESTS_SRCDIR/../src/tui.h")
walk "$SAMPLES/digits-mlp.safetensors" fc1.weight fc2.weight fc1.weight fc2.weight fc3.weight
walk "$SAMPLES/digits-cnn.safetensors" conv3.weight fc1.weight \
	conv1.weight conv2.weight conv3.weight fc1.weight fc2.weight

checks=$((checks + 1))
reports=$(sanitizer_reports)
[ -z "$reports" ] || fail "sanitizer reports:
$reports"
finish
