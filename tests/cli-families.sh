#!/bin/sh
# cli-families.sh — pruning, quantisation and low rank + sparse end to end
# through the real binary, against an independent numpy reader
# (tests/familycheck.py) and the Lua scripts in tests/lua/families:
#   1. every pruning and quantisation figure (errors, counts, storage, the
#      "pays" rules) recomputed from the raw weights, on the samples, on
#      make-model models (conv folds 0, 1 and 3) and on a float16 layer;
#   2. plans setting every method on different layers, applied: names,
#      dtypes, shapes, copied bytes, and each layer rebuilt from its parts
#      measuring what the plan predicted and `rankscope apply` printed;
#   3. low rank + sparse: a layer built as rank 4 + spikes is recovered, a
#      single part wins where it should (and the plan says so), errors never
#      rise between iterations;
#   4. global-prune (one threshold, checked on the applied file) and
#      lc-combination (budget, Lagrangian certificate, no single switch left
#      that lowers the error within budget), and their command-line output;
#   5. plan files with the new methods round trip byte for byte through
#      show -o, and malformed entries are refused with clear messages.
# The numpy checks (and the model only numpy writes) are skipped, only they,
# where no Python with numpy exists.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"

umask 022
# A sanitizer report must not hide behind an expected exit status of 1.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

. "$TESTS_SRCDIR/lua-lib.sh"
fam=$luatests/families
mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors
d=$scratch/families
mkdir "$d"

find_python numpy || echo "no python3 with numpy: familycheck.py checks skipped"

# pycheck WHAT SUBCOMMAND ARGS...: tests/familycheck.py through py_checks.
pycheck() {
	pcwhat=$1
	shift
	py_checks "$pcwhat" familycheck.py "$@"
}

# A model with known spectra, a conv kernel, a layer too small for most
# codebooks, and one wider than 65536 columns (32-bit CSR column indices).
mm=$scratch/mm.safetensors
"$MAKE_MODEL" "$mm" a=40x24@0.8 b=12x70@0.9 conv=8x6x3x3 tiny=4x3 wide=3x70000 ||
	fail "make-model mm"
combo=""
if [ -n "$python" ]; then
	combo=$scratch/combo.safetensors
	pycheck "make-combo" make-combo "$combo"
fi

# ---- 1. figures against their definitions ------------------------------------------

# figures LABEL [--fold N] MODEL: figures.lua's own checks, and its records
# recomputed by familycheck.py; the log is kept as figures-LABEL.log.
figures() {
	flabel=$1
	shift
	eval "fmodel=\${$#}"
	lua_run "figures.lua $*" "$RANKSCOPE" run -S "$luatests" -S "$fam" "$fam/figures.lua" "$@"
	cp "$scratch/lua-out" "$d/figures-$flabel.log"
	pycheck "figures $*" figures "$d/figures-$flabel.log" "$fmodel"
}
figures mlp "$mlp"
figures cnn "$cnn"
figures cnn-f1 --fold 1 "$cnn"
figures cnn-f3 --fold 3 "$cnn"
figures mm "$mm"
figures mm-f1 --fold 1 "$mm"
[ -z "$combo" ] || figures combo "$combo"

# where a representation is not smaller than the dense layer, it is not used
check "tiny 4x3: a 4-bit k-means codebook (560 bits) is not smaller than 384 dense bits" \
	grep -q '^fig tiny quant:kmeans:4 method=dense ' "$d/figures-mm-f1.log"
check "tiny 4x3: a 3-bit one (292 bits) is" \
	grep -q '^fig tiny quant:kmeans:3 method=quant ' "$d/figures-mm-f1.log"
check "conv1: pruning at sparsity 0 stays dense" \
	grep -q '^fig conv1.weight prune:0 method=dense ' "$d/figures-cnn.log"

# ---- 2 and 5. plans of every method: round trip, apply ---------------------------

# applied NAME FOLD MODEL METHODS [COMPOSE]: a plan from plan.lua (made
# with --compose COMPOSE when given; show and apply must then find the
# composed layers from the plan alone), round tripped through show -o,
# applied, checked by familycheck.py; $out is apply's.
applied() {
	aname=$1 afold=$2 amodel=$3 amethods=$4 acompose=${5:-}
	p=$d/$aname.json
	lua_run "plan.lua $aname" "$RANKSCOPE" run --fold "$afold" -S "$luatests" "$fam/plan.lua" \
		${acompose:+--compose} ${acompose:+"$acompose"} \
		"$amodel" --param methods="$amethods" -o "$p"
	check "$aname: run -o wrote the plan" test -s "$p"
	run 0 "$RANKSCOPE" show --fold "$afold" "$p" "$amodel" -o "$p.2"
	same "$p" "$p.2" "$aname: show -o round trip"
	run 0 "$RANKSCOPE" apply --fold "$afold" "$p" "$amodel" -o "$d/$aname.safetensors"
	printf '%s\n' "$out" >"$d/$aname.log"
	equals "$err" "" "$aname: apply prints nothing on stderr"
	equals "$(printf '%s\n' "$out" | head -1 | awk '{print $1, $2, $3, $4}')" \
		"layer method err_F pred" "$aname: apply's table header"
	gap=$(printf '%s\n' "$out" | sed -n 's/^wrote .*; largest |measured - predicted| \([^ ]*\) .*/\1/p')
	check "$aname: apply's largest gap '$gap' is below 1e-5" \
		awk -v g="$gap" 'BEGIN { exit !(g != "" && g + 0 <= 1e-5) }'
	for word in $amethods; do
		case $word in
		dense) ;;
		*) contains "$out" " ${word%%:*} " "$aname: apply reports a ${word%%:*} layer" ;;
		esac
	done
	run 0 "$RANKSCOPE" info --fold "$afold" "$d/$aname.safetensors"
	contains "$out" "model $d/$aname.safetensors: " "$aname: the output opens with info"
	pycheck "apply $aname" apply "$p" "$amodel" "$d/$aname.safetensors" "$d/$aname.log"
}

applied cnn-a 0 "$cnn" "prune:0.5 quant:uniform-channel:4 prune-cols:0.3 lowrank+sparse:16:0.9 quant:kmeans:3"
applied cnn-b 1 "$cnn" "quant:ternary:2 prune-rows:0.25 quant:uniform-channel:3 prune:0.7 lowrank:4"
applied cnn-c 0 "$cnn" "quant:binary:1 lowrank+sparse:4:0.95 prune-rows:0.4 quant:uniform-tensor:5 prune-cols:0.5"
applied cnn-d 1 "$cnn" "prune-cols:0.34 quant:kmeans:4 prune:0.6 quant:binary:3 quant:ternary:5"
applied mlp-a 0 "$mlp" "quant:kmeans:6 prune-cols:0.2 lowrank+sparse:1:0.5"
applied mlp-b 0 "$mlp" "prune-rows:0.5 quant:uniform-tensor:8 dense"
applied mm-a 1 "$mm" "prune:0.3 quant:uniform-channel:2 prune-rows:0.5 quant:uniform-tensor:3 prune:0.99"
# LoRITa's factors composed: each layer is the product W3 W2 W1; kept dense
# it keeps its factors, compressed its parts replace them
lorita=$SAMPLES/digits-lorita.safetensors
applied lorita-a 0 "$lorita" "prune:0.5 lowrank:4 dense" 'fc*.factors.#.weight'
applied lorita-b 0 "$lorita" "quant:kmeans:3 prune-rows:0.5 prune-cols:0.2" \
	'fc*.factors.#.weight'
contains "$(tr -d ' \n' <"$d/lorita-a.json")" '"compose":["fc*.factors.#.weight"]' \
	"the plan records its compose pattern"
contains "$(tr -d ' \n' <"$d/lorita-a.json")" \
	'"factors":["fc2.factors.0.weight","fc2.factors.1.weight","fc2.factors.2.weight"]' \
	"the plan lists a composed layer's factors, factor 0 first"
run 0 "$RANKSCOPE" info --format json --compose 'fc*.factors.#.weight' "$lorita"
contains "$(printf '%s' "$out" | tr -d ' \n')" \
	'"name":"fc1.factors.weight","dtype":"F32","shape":[512,64],"kind":"composed","fold":null,"factors":["fc1.factors.0.weight","fc1.factors.1.weight","fc1.factors.2.weight"],"rows":512,"cols":64,"params":40960,' \
	"info describes a composed layer, its params those of its factors (64x64 + 64x64 + 512x64)"
run 1 "$RANKSCOPE" info --compose 'fc*.factors.*.weight' "$lorita"
contains "$err" "$lorita: compose pattern 'fc*.factors.*.weight' needs exactly one '#'" \
	"a pattern without '#'"
run 1 "$RANKSCOPE" info --compose 'conv*.#.weight' "$lorita"
contains "$err" "$lorita: compose pattern 'conv*.#.weight' matches no tensor" "a pattern matching nothing"
run 1 "$RANKSCOPE" info --compose 'fc#.bias' "$lorita"
contains "$err" "$lorita: composed layer 'fc.bias' has no factor 0" "factors numbered from 0"
run 1 "$RANKSCOPE" show "$d/lorita-a.json" "$mlp"
contains "$err" "compose pattern 'fc*.factors.#.weight' matches no tensor" \
	"a composed plan on a model without the factors"
if [ -n "$combo" ]; then
	applied combo-a 0 "$combo" "prune:0.9 lowrank:6 prune:0.74667 lowrank+sparse:4:0.9934"
	applied combo-b 0 "$combo" "quant:uniform-channel:4 quant:ternary:2 prune-cols:0.5 prune-rows:0.5"
	# quantised + sparse and low rank + sparse + quantised: codes, codebook,
	# sparse values and factors, rebuilt by familycheck.py as their sum
	applied combo-c 0 "$combo" "quant+sparse:ternary:2:0.99 lowrank+sparse+quant:4:0.99:binary:1 quant+sparse:ternary:2:0.99 lowrank+sparse+quant:4:0.99:binary:1"
	line=$(grep '^spiky.weight ' "$d/combo-c.log")
	check "combo: rank 4 + spikes is rebuilt by L + S + Q to a tiny error: $line" \
		awk -v l="$line" 'BEGIN { split(l, f, " "); exit !(f[2] == "lowrank+sparse+quant" && f[3] + 0 < 1e-5 && f[4] + 0 < 1e-5) }'
	applied combo-d 0 "$combo" "quant+sparse:ternary:2:0.98 dense quant+sparse:ternary:2:0.95 quant+sparse:uniform-tensor:3:0.97"
	# the combination's figures are the solve's, and apply measures the same
	line=$(grep '^spiky.weight ' "$d/combo-a.log")
	check "combo: the rank 4 + spikes layer is rebuilt to a tiny error: $line" \
		awk -v l="$line" 'BEGIN { split(l, f, " "); exit !(f[2] == "lowrank+sparse" && f[3] + 0 < 1e-5 && f[4] + 0 < 1e-5) }'
fi

# a plan file written by hand: the binary quantiser's width is its own
sed 's/"quantizer": "kmeans"/"quantizer": "binary"/' "$d/cnn-a.json" >"$d/binary.json"
run 0 "$RANKSCOPE" show "$d/binary.json" "$cnn" -o "$d/binary-2.json"
run 0 "$RANKSCOPE" show "$d/binary-2.json" "$cnn" -o "$d/binary-3.json"
same "$d/binary-2.json" "$d/binary-3.json" "a hand-edited quantiser round trips"
contains "$(sed -n '/"name": "fc2.weight"/,/"predicted"/p' "$d/binary-2.json" | tr -d ' \n')" \
	'"bits":1,"quantizer":"binary",' "a binary quantiser is saved at its own width, 1 bit"

# ---- 5. malformed entries of the new methods --------------------------------------

# refuse WHAT PLAN LAYER NEEDLE: show and apply exit 1 with nothing on
# stdout, a message naming the plan file and the layer, and NEEDLE; apply
# writes nothing.
refuse() {
	rwhat=$1 rplan=$2 rlayer=$3 rneedle=$4
	run 1 "$RANKSCOPE" show "$rplan" "$cnn"
	equals "$out" "" "$rwhat: show prints nothing on stdout"
	contains "$err" "rankscope: $rplan: " "$rwhat: the message names the plan file"
	contains "$err" "('$rlayer')" "$rwhat: the message names the layer"
	contains "$err" "$rneedle" "$rwhat"
	run 1 "$RANKSCOPE" apply "$rplan" "$cnn" -o "$d/refused.safetensors"
	contains "$err" "$rneedle" "$rwhat (apply)"
	check "$rwhat: apply writes nothing" test ! -e "$d/refused.safetensors"
}

a=$d/cnn-a.json
bits_msg="bits must be an integer 1..8 for method 'quant'"
sp_msg="sparsity must be a number in [0, 1) for method 'prune'"
edit_entry "$a" "$d/bad.json" fc2.weight '"bits": 3,' '"bitz": 3,'
refuse "quant without bits" "$d/bad.json" fc2.weight "$bits_msg"
edit_entry "$a" "$d/bad.json" fc2.weight '"bits": 3,' '"bits": 9,'
refuse "quant at 9 bits" "$d/bad.json" fc2.weight "$bits_msg"
edit_entry "$a" "$d/bad.json" fc2.weight '"bits": 3,' '"bits": 0,'
refuse "quant at 0 bits" "$d/bad.json" fc2.weight "$bits_msg"
edit_entry "$a" "$d/bad.json" fc2.weight '"bits": 3,' '"bits": "3",'
refuse "quant with bits as text" "$d/bad.json" fc2.weight "$bits_msg"
edit_entry "$a" "$d/bad.json" fc2.weight '"quantizer": "kmeans",' '"quantizer": "lloyd",'
refuse "an unknown quantizer" "$d/bad.json" fc2.weight \
	"quantizer must be one of uniform-tensor, uniform-channel, kmeans, binary, ternary"
edit_entry "$a" "$d/bad.json" fc2.weight '"quantizer": "kmeans",' '"quantizer": null,'
refuse "quant without a quantizer" "$d/bad.json" fc2.weight "quantizer must be one of"
edit_entry "$a" "$d/bad.json" conv1.weight '"sparsity": 0.5,' '"sparsity": 1.0,'
refuse "prune at sparsity 1.0" "$d/bad.json" conv1.weight "$sp_msg"
edit_entry "$a" "$d/bad.json" conv1.weight '"sparsity": 0.5,' '"sparsity": -0.1,'
refuse "prune at sparsity -0.1" "$d/bad.json" conv1.weight "$sp_msg"
edit_entry "$a" "$d/bad.json" conv1.weight '"sparsity": 0.5,' '"sparsity": "0.5",'
refuse "prune with the sparsity as text" "$d/bad.json" conv1.weight "$sp_msg"
edit_entry "$a" "$d/bad.json" conv3.weight '"sparsity": 0.29999999999999999,' '"sparsity": 1,'
refuse "prune-cols at sparsity 1" "$d/bad.json" conv3.weight \
	"sparsity must be a number in [0, 1) for method 'prune-cols'"
edit_entry "$a" "$d/bad.json" fc1.weight '"rel_fro": ' '"rel_frob": '
refuse "lowrank+sparse without predicted.rel_fro" "$d/bad.json" fc1.weight \
	"predicted.rel_fro (the solve's error) must be a number in [0, 1]"
edit_entry "$a" "$d/bad.json" fc1.weight '"rel_fro": ' '"rel_fro": 1.5, "was": '
refuse "lowrank+sparse with predicted.rel_fro 1.5" "$d/bad.json" fc1.weight \
	"predicted.rel_fro (the solve's error) must be a number in [0, 1]"
edit_entry "$a" "$d/bad.json" fc1.weight '"rank": 16,' '"rank": null,'
refuse "lowrank+sparse without a rank" "$d/bad.json" fc1.weight "rank must be an integer"
edit_entry "$a" "$d/bad.json" fc2.weight '"method": "quant",' '"method": "quantise",'
refuse "an unknown method" "$d/bad.json" fc2.weight \
	"unknown method 'quantise' (known: dense, lowrank, prune, prune-rows, prune-cols, quant, lowrank+sparse, grouped, tucker2, cp, tt, quant+sparse, lowrank+sparse+quant)"

# ---- 3. low rank + sparse ------------------------------------------------------------

lua_run "combine.lua mlp" "$RANKSCOPE" run -S "$luatests" "$fam/combine.lua" "$mlp" \
	--param solves="fc3.weight:1:0.5 fc3.weight:3:0.9 fc3.weight:1:0.8 fc1.weight:1:0.95 fc1.weight:2:0.9"
lua_run "combine.lua cnn" "$RANKSCOPE" run -S "$luatests" "$fam/combine.lua" "$cnn" \
	--param solves="conv2.weight:4:0.95 conv3.weight:8:0.9 fc2.weight:2:0.5"
[ -z "$combo" ] || lua_run "combine.lua combo" "$RANKSCOPE" run -S "$luatests" \
	"$fam/combine.lua" "$combo" --param combo=yes --param solves="half.weight:2:0.8"

# ---- 4. strategies -------------------------------------------------------------------

# rows METHOD: how many rows of the plan table in $out have METHOD
# ("!dense": any other).
rows() {
	printf '%s\n' "$out" | awk -v m="$1" '/^layer /{ t = 1; next } /^total:/{ t = 0 }
		t && ($3 == m || (m == "!dense" && $3 != "dense")) { n++ } END { print n + 0 }'
}

# global_prune LABEL MODEL SPARSITY NLAYERS: run -o, the table, summary and
# totals agree; applied, the one threshold is checked by familycheck.py.
global_prune() {
	gwhat="global-prune $1 at $3"
	p=$d/gp-$1-$3.json
	run 0 "$RANKSCOPE" run global-prune "$2" --param sparsity="$3" -o "$p"
	pruned=$(rows prune)
	equals "$(rows dense)" "$(($4 - pruned))" "$gwhat: every layer pruned or dense"
	summary=$(printf '%s\n' "$out" | tail -1)
	contains "$summary" ", $pruned of $4 layers pruned, " "$gwhat: summary counts"
	contains "$summary" "(asked $(awk -v s="$3" 'BEGIN { printf "%.2f", 100 * s }')%)" \
		"$gwhat: summary target"
	contains "$(printf '%s\n' "$out" | grep '^total: ')" ", $pruned of $4 layers compressed" \
		"$gwhat: totals line"
	run 0 "$RANKSCOPE" apply "$p" "$2" -o "$p.safetensors"
	pycheck "$gwhat" global-prune "$p" "$2" "$p.safetensors" "$3"
}

gp=$scratch/gp.safetensors
"$MAKE_MODEL" "$gp" big=300x1024 mid=64x64@0.9 small=64x2 conv=16x8x3x3 || fail "make-model gp"
global_prune mlp "$mlp" 0.8 3
global_prune cnn "$cnn" 0.5 5
global_prune gp "$gp" 0.5 4
global_prune gp "$gp" 0.9 4
global_prune mm "$mm" 0.7 5
# where pruning does not pay, the layer stays dense
run 0 "$RANKSCOPE" run global-prune "$gp" --param sparsity=0.5
equals "$(printf '%s\n' "$out" | awk '$1 == "small" { print $3 }')" "dense" \
	"global-prune: the 64x2 layer of large weights stays dense at 50%"

# lc-combination: brute force on the sample MLP and a small model
lc=$scratch/lc.safetensors
"$MAKE_MODEL" "$lc" s1=20x12@0.7 s2=16x30@0.9 sconv=6x4x3x3 s4=8x40 || fail "make-model lc"
for budget in 0.1 0.25 0.5; do
	lua_run "lc.lua mlp $budget" "$RANKSCOPE" run -S "$luatests" "$fam/lc.lua" "$mlp" \
		--param budget=$budget
done
lua_run "lc.lua mlp 0.25 unweighted" "$RANKSCOPE" run -S "$luatests" "$fam/lc.lua" "$mlp" \
	--param budget=0.25 --param weighted=false
for budget in 0.1 0.3 0.6; do
	lua_run "lc.lua lc $budget" "$RANKSCOPE" run -S "$luatests" "$fam/lc.lua" "$lc" \
		--param budget=$budget
done
lua_run "lc.lua lc 0.3 unweighted" "$RANKSCOPE" run -S "$luatests" "$fam/lc.lua" "$lc" \
	--param budget=0.3 --param weighted=false

# lc_cli LABEL MODEL BUDGET COMBINATION NLAYERS: `rankscope run
# lc-combination` within budget; its summary, table and totals agree with
# the plan it writes, which round trips.
lc_cli() {
	lwhat="lc-combination $1 budget $3 combination $4"
	p=$d/lc-$1-$3-$4.json
	run 0 "$RANKSCOPE" run lc-combination "$2" --param budget="$3" --param combination="$4" -o "$p"
	summary=$(printf '%s\n' "$out" | tail -1)
	before=$(sed -n 's/^    "bits_before": \([0-9]*\),$/\1/p' "$p")
	after=$(sed -n 's/^    "bits_after": \([0-9]*\),$/\1/p' "$p")
	contains "$summary" "lc-combination: $after of $before bits (" \
		"$lwhat: the summary's bits are the plan's totals"
	check "$lwhat: $after of $before bits within the budget" \
		awk -v a="$after" -v b="$before" -v f="$3" 'BEGIN { exit !(a != "" && a + 0 <= f * b) }'
	totals=$(printf '%s\n' "$out" | grep '^total: ')
	contains "$totals" ", $(rows '!dense') of $5 layers compressed" "$lwhat: totals line"
	contains "$totals" "($(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2fx", b / a }'))" \
		"$lwhat: the storage ratio in the totals"
	run 0 "$RANKSCOPE" show "$p" "$2" -o "$p.2"
	same "$p" "$p.2" "$lwhat: show -o round trip"
}
lc_cli mlp "$mlp" 0.25 false 3
lc_cli cnn "$cnn" 0.1 false 5
lc_cli lc "$lc" 0.3 false 4
lc_cli lc "$lc" 0.3 true 4
run 1 "$RANKSCOPE" run lc-combination "$mlp" --param budget=0.001
contains "$err" "budget 0.001 is unreachable" "lc-combination: an unreachable budget"
equals "$out" "" "lc-combination: nothing printed for an unreachable budget"

finish
