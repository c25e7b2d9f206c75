#!/bin/sh
# tui-storm.sh — a seeded storm of keys on the workbench: every key of the
# key table (src/tui-keys.c, read at run time, so new bindings join the
# storm), Enter, Esc, arrows, digits, letters, Backspace, console lines,
# mouse presses, drags, releases and wheel turns, and terminal resizes down
# to 20x5 and back, on the MLP and CNN samples, and on the MLP with its
# calibration (mlp-calib: the output-norm view and whitened edits).  The program must never die:
# an exit must be a clean one (status 0, e.g. q then y), after which it is
# started again and the storm goes on; a sanitizer build must leave no
# report.  At the end each session must still quit when asked.
#
#   STORM_SEED    the storm (default 1); a failure prints the command that
#                 replays it
#   STORM_KEYS    keys per model (default 3000)
#   STORM_MODELS  which samples (default "mlp cnn mlp-calib")
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/tui-lib.sh"
tui_sandbox

seed=${STORM_SEED:-1}
nkeys=${STORM_KEYS:-3000}
models=${STORM_MODELS:-mlp cnn mlp-calib}
case "$seed$nkeys" in *[!0-9]*) echo "STORM_SEED and STORM_KEYS are whole numbers" >&2; exit 99 ;; esac


replay="STORM_SEED=$seed STORM_KEYS=$nkeys STORM_MODELS='$models' make check TESTS=tests/tui-storm.sh"

# ---- the key table, as tmux key names ----
grep -o "^	{{[^}]*}" "$TESTS_SRCDIR/../src/tui-keys.c" |
	grep -o "'[^']'\|CTRL('.')\|KEY_F([0-9]*)\|KEY_[A-Z0-9_]*" >"$scratch/table"
: >"$scratch/bound"
while read -r k; do
	case "$k" in
	"'"?"'") name=${k#"'"}; name=${name%"'"} ;;
	"CTRL('"?"')") name=${k#"CTRL('"}; name="C-${name%"')"}" ;;
	KEY_F\(*\)) name=${k#KEY_F(}; name="F${name%)}" ;;
	KEY_UP) name=Up ;; KEY_DOWN) name=Down ;; KEY_LEFT) name=Left ;; KEY_RIGHT) name=Right ;;
	KEY_PPAGE) name=PPage ;; KEY_NPAGE) name=NPage ;; KEY_HOME) name=Home ;; KEY_END) name=End ;;
	KEY_SLEFT) name=S-Left ;; KEY_SRIGHT) name=S-Right ;; KEY_BACKSPACE) name=BSpace ;;
	KEY_ENTER) name=Enter ;; KEY_DC) name=DC ;; KEY_IC) name=IC ;; KEY_BTAB) name=BTab ;;
	*) fail "the key table binds $k: tui-storm.sh needs its tmux name"; continue ;;
	esac
	# ; separates tmux commands: send it escaped
	[ "$name" = ";" ] && name='\;'
	echo "$name" >>"$scratch/bound"
done <"$scratch/table"
nbound=$(sort -u "$scratch/bound" | wc -l)
checks=$((checks + 1))
[ "$nbound" -ge 30 ] || fail "read $nbound bound keys from src/tui-keys.c"

# storm SEED KEYS MODEL_INDEX: the storm as lines, one tmux action each:
#   K key...    keys (tmux names)
#   T text      literal text (a console line)
#   M b x y     a mouse report (button, 0-based cell)
#   R cols rows a resize
# Most batches are keys drawn at random; some are phrases a user would
# type (a filter cleared or set, a rank, a walk through the strategy menu
# and its forms, a console line), so that the storm does not spend itself
# in a table filtered down to nothing.  A Park-Miller generator in awk, so
# a seed is the same storm with any awk.
storm() {
	awk -v seed="$1" -v total="$2" -v part="$3" -v bound="$scratch/bound" '
	function rnd(n) { x = (x * 16807) % 2147483647; return int(x / 2147483647 * n) }
	function pick(list,    a, n) { n = split(list, a, " "); return a[1 + rnd(n)] }
	function times(k, n,    out, i) { out = ""; for (i = 0; i < n; i++) out = out " " k; return out }
	function emit(line, n) { print "K" line; sent += n }
	function key(    c, k) {
		c = rnd(100)
		if (c < 50) {
			k = keys[rnd(nb)]
			# q quits a clean plan at once: a quarter of its share
			if (k == "q" && rnd(4) != 0) k = "Escape"
		} else if (c < 56) k = "Enter"
		else if (c < 62) k = "Escape"
		else if (c < 70) k = pick("Up Down Left Right")
		else if (c < 78) k = rnd(10)
		else if (c < 90) k = letters[1 + rnd(nl)]
		else if (c < 94) k = "BSpace"
		else if (c < 96) k = "y"
		else if (c < 98) k = "Space"
		else k = punct[1 + rnd(np)]
		return k
	}
	BEGIN {
		x = (seed * 7919 + part * 104729) % 2147483646 + 1
		for (i = 0; i < 5; i++) rnd(2)
		while ((getline k < bound) > 0) keys[nb++] = k
		nl = split("a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", letters, " ")
		np = split(". , : ( ) \" = * ? [ ] _ - + # ~ < > !", punct, " ")
		nlua = split("plan:set(model:layers()[1],3)|plan:set(model:layers()[2],{method=\"prune\",sparsity=0.5})|plan:set(model:layers()[3],{method=\"cp\",rank=2})|plan:set(model:layers()[1],{method=\"lowrank+sparse\",rank=2,sparsity=0.9})|plan:set(model:layers()[2],{method=\"quant\",quantizer=\"kmeans\",bits=3})|plan:set(model:layers()[#model],{method=\"tt\"})|plan:set(model:layers()[3],{method=\"grouped\",groups=2,rank=3})|plan:get(model:layers()[1]).rank|print(#model)|for _,l in ipairs(model:layers()) do plan:set(l,{method=\"dense\"}) end|error(\"storm\")|while true do end|plan:set(\"nope\",1)|print(string.rep(\"x\",300))", lua, "|")
		ns = split("20x5 30x8 40x10 50x14 60x16 80x24 100x30 110x36 130x40 130x48 150x50", size, " ")
		w = 130; h = 40
		sent = 0
		while (sent < total) {
			r = rnd(1000)
			if (r < 12) {
				# a resize, to anything from too small to large
				split(size[1 + rnd(ns)], d, "x"); w = d[1]; h = d[2]
				print "R", w, h
			} else if (r < 40) {
				b = rnd(10)
				b = b < 4 ? 0 : b < 6 ? 3 : b < 8 ? 32 : b < 9 ? 64 : 65
				# X10 reports carry a cell as one byte, 33 + x: keep it ASCII
				mx = rnd(w < 94 ? w : 94)
				my = rnd(h)
				print "M", b, mx, my
				sent++
			} else if (r < 50) {
				print "K :"
				print "T", lua[1 + rnd(nlua)]
				emit(" Enter", 3)
			} else if (r < 75) {
				# a filter: cleared, or set to part of a name
				f = pick("- - - - fc conv 1 2 weight fc* *2* ?on* [cf]* zzz")
				emit(" /" times("BSpace", 12 + rnd(20)) (f == "-" ? "" : " " f) " Enter", 30)
			} else if (r < 90) {
				emit(" r " (1 + rnd(70)) " Enter", 3)
			} else if (r < 150) {
				# the strategy menu: forms opened, left, edited, run
				line = " s"
				n = 1 + rnd(6)
				for (i = 0; i < n; i++) {
					line = line times(pick("j k Down Up"), rnd(12)) " Enter"
					c = rnd(6)
					if (c == 0) line = line " r"
					else if (c == 1) line = line times("k", 1 + rnd(4)) " Enter" times("BSpace", rnd(6)) " " rnd(100) " Enter"
					else if (c == 2) line = line " q"
					else line = line " Escape"
				}
				emit(line " Escape Escape", 20)
			} else if (r < 170) {
				# the method menu
				emit(" M" times(pick("j k Down Up"), rnd(14)) " " pick("Enter Enter Escape M q"), 5)
			} else {
				n = 1 + rnd(16)
				line = ""
				for (i = 0; i < n; i++) line = line " " key()
				emit(line, n)
			}
		}
		print "R", 130, 40
	}'
}

# stop WHY: the storm found something: say how to replay it, and end.
stop() {
	fail "$model, seed $seed: $1
last actions before it ($scratch/storm.$model, line $line_no):
$(sed -n "$((line_no > 12 ? line_no - 12 : 1)),${line_no}p" "$scratch/storm.$model")
screen:
$(screen)
$(sanitizer_reports)
replay: $replay"
	finish
	exit 1
}

# settle: wait (up to 10 s) until the program sleeps waiting for input
# three looks in a row, then its screen must show the title, or the help
# or method menu that can cover it on a short terminal, or say the
# terminal is too small.
settle() {
	n=0 idle=0
	while [ "$n" -lt 200 ] && [ "$idle" -lt 3 ]; do
		st=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)
		case "$st" in S) idle=$((idle + 1)) ;; *) idle=0 ;; esac
		[ -z "$st" ] && return 0   # exited: the caller looks at how
		sleep 0.05
		n=$((n + 1))
	done
	checks=$((checks + 1))
	n=0
	while [ "$n" -lt 50 ]; do
		case "$(screen)" in
		*" rankscope "* | *" rankscope keys"* | *"method for "* | *"terminal too small"*) return 0 ;;
		esac
		[ "$(pane_state)" = "0 " ] || return 0
		sleep 0.1
		n=$((n + 1))
	done
	stop "no title on screen"
}

# resize COLS LINES: the window resized and the program's terminal at that
# size (tui_resize in tui-lib.sh).
resize() {
	tui_resize "$1" "$2" "$pid" || stop "resize to $1x$2: the terminal stays $resize_stuck"
}

start() {
	# shellcheck disable=SC2086
	tui_start "$w" "$h" "$RANKSCOPE" $extra "$path"
	n=0
	while [ "$n" -lt 50 ]; do
		pid=$(tui_pid)
		[ "$pid" != "$(tmux -S "$sock" display-message -p '#{pane_pid}')" ] && break
		sleep 0.1
		n=$((n + 1))
	done
	starts=$((starts + 1))
}

# exited: the program has ended: a clean exit is restarted, anything else
# ends the storm.
exited() {
	checks=$((checks + 1))
	state=$(pane_state)
	[ "$state" = "1 0" ] || stop "the workbench exited: status ${state#1 }"
	clean_exits=$((clean_exits + 1))
	start
}

t0=$(date +%s)
part=0
for model in $models; do
	path=$SAMPLES/digits-$model.safetensors extra=
	case "$model" in
	*-calib)
		path=$SAMPLES/digits-${model%-calib}.safetensors
		extra="--calibration $SAMPLES/digits-${model%-calib}.calib.safetensors" ;;
	esac
	part=$((part + 1))
	storm "$seed" "$nkeys" "$part" >"$scratch/storm.$model"
	w=130 h=40 starts=0 clean_exits=0 line_no=0
	start
	while read -r kind a b c; do
		line_no=$((line_no + 1))
		case "$kind" in
		K)
			# split into keys, but not globbed (the keys include * ? [)
			set -f
			# shellcheck disable=SC2086
			tmux -S "$sock" send-keys -- $a $b $c 2>/dev/null
			set +f ;;
		T)
			tmux -S "$sock" send-keys -l -- "$a${b:+ $b}${c:+ $c}" 2>/dev/null ;;
		M)
			tmux -S "$sock" send-keys -l "$(printf '\033[M%b%b%b' \
				"\\$(printf %03o $((a + 32)))" "\\$(printf %03o $((b + 33)))" \
				"\\$(printf %03o $((c + 33)))")" 2>/dev/null ;;
		R)
			w=$a h=$b
			resize "$w" "$h" ;;
		esac
		# a moment for the program to take the keys and draw, so that
		# drawing meets the states in between too; now and then all the
		# way until it waits for input
		if [ -s "$status_file" ]; then
			exited
		elif [ $((line_no % 10)) -ne 0 ]; then
			sleep 0.02
		else
			settle
			[ -s "$status_file" ] && exited
		fi
	done <"$scratch/storm.$model"
	# the end: close whatever is open (Esc also stops a script), quit
	settle
	[ -s "$status_file" ] && exited
	for i in 1 2 3; do
		keys Escape
		sleep 0.7
	done
	[ -s "$status_file" ] && exited
	keys q
	sleep 0.5
	[ "$(pane_state)" = "0 " ] && keys y
	n=0
	while [ "$n" -lt 600 ] && [ "$(pane_state)" = "0 " ]; do
		sleep 0.1
		n=$((n + 1))
	done
	checks=$((checks + 1))
	[ "$(pane_state)" = "0 " ] && stop "the workbench does not quit at the end of the storm"
	line_no=$(wc -l <"$scratch/storm.$model")
	checks=$((checks + 1))
	[ "$(pane_state)" = "1 0" ] || stop "the workbench exited: status $(pane_state)"
	echo "$model: $nkeys keys, $starts starts, $clean_exits clean exits during the storm"
done

checks=$((checks + 1))
reports=$(sanitizer_reports)
[ -z "$reports" ] || { fail "sanitizer reports:
$reports
replay: $replay"; }
echo "seed $seed, $(($(date +%s) - t0)) s"
finish
