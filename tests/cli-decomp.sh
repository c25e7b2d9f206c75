#!/bin/sh
# cli-decomp.sh — the decompositions (grouped, tucker2, cp, tt) end to end
# through the real binary, against an independent numpy reader
# (tests/familycheck.py apply) and the Lua scripts in tests/lua/families:
#   1. plans made by plan.lua with every method, on the sample CNN (at
#      --fold 0 and 1, with grouped entries of other folds than the
#      session's), the sample MLP, the LoRITa sample's composed layers and
#      make-model models: each round trips through show -o byte for byte,
#      validates against the JSON Schema, is applied, and every layer is
#      rebuilt from its parts as rankscope-plan(5) lays them out, measuring
#      what the plan predicted and what apply printed;
#   2. plan entries that cannot be right are refused by show and apply,
#      naming the plan file, the layer and the problem, with no output;
#   3. plan:set misuse from Lua raises (decomp.lua).
# The numpy checks are skipped, only they, where no Python with numpy
# exists, and the schema checks where jsonschema is missing.
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
lorita=$SAMPLES/digits-lorita.safetensors
schema=$TESTS_SRCDIR/../man/rankscope-plan.schema.json
d=$scratch/decomp
mkdir "$d"

schema_ok=""
if ! find_python numpy; then
	echo "no python3 with numpy: familycheck.py checks skipped"
elif "$python" -c 'import jsonschema' 2>/dev/null; then
	schema_ok=yes
else
	echo "no jsonschema for $python: schema checks skipped"
fi

# ---- 1. plans of every decomposition: round trip, schema, apply -----------------

# applied NAME FOLD MODEL METHODS [COMPOSE]: a plan from plan.lua (made
# with --compose COMPOSE when given; show and apply then find the composed
# layers from the plan alone), round tripped through show -o, checked
# against the schema, applied, and checked by familycheck.py.
applied() {
	aname=$1 afold=$2 amodel=$3 amethods=$4 acompose=${5:-}
	p=$d/$aname.json
	lua_run "plan.lua $aname" "$RANKSCOPE" run --fold "$afold" -S "$luatests" "$fam/plan.lua" \
		${acompose:+--compose} ${acompose:+"$acompose"} \
		"$amodel" --param methods="$amethods" -o "$p"
	check "$aname: run -o wrote the plan" test -s "$p"
	run 0 "$RANKSCOPE" show --fold "$afold" "$p" "$amodel" -o "$p.2"
	same "$p" "$p.2" "$aname: show -o round trip"
	[ -z "$schema_ok" ] || py_checks "$aname against the schema" plancheck.py schema "$p" "$schema"
	run 0 "$RANKSCOPE" apply --fold "$afold" "$p" "$amodel" -o "$d/$aname.safetensors"
	printf '%s\n' "$out" >"$d/$aname.log"
	equals "$err" "" "$aname: apply prints nothing on stderr"
	gap=$(printf '%s\n' "$out" | sed -n 's/^wrote .*; largest |measured - predicted| \([^ ]*\) .*/\1/p')
	check "$aname: apply's largest gap '$gap' is below 1e-5" \
		awk -v g="$gap" 'BEGIN { exit !(g != "" && g + 0 < 1e-5) }'
	for word in $amethods; do
		case $word in
		dense) ;;
		*) contains "$out" " ${word%%:*} " "$aname: apply reports a ${word%%:*} layer" ;;
		esac
	done
	py_checks "apply $aname" familycheck.py apply "$p" "$amodel" "$d/$aname.safetensors" \
		"$d/$aname.log"
}

# the sample CNN: conv1 16x1x3x3, conv2 32x16x3x3, conv3 64x32x3x3,
# fc1 128x1024, fc2 10x128; grouped entries at folds 1, 0 and 3 in
# sessions of other folds
applied cnn-a 0 "$cnn" "tt:2:4 grouped:4:4:1 tucker2:16:8 cp:6 grouped:2:4"
applied cnn-b 1 "$cnn" "cp:4 grouped:4:4:0 tt:3:8,8 tucker2:32:64 tt:2:3"
applied cnn-c 0 "$cnn" "tucker2:4:1 cp:8 grouped:2:4:3 tt:3:8,0 tucker2:5:6"
# the sample MLP: fc1 512x64, fc2 512x512, fc3 10x512
applied mlp-a 0 "$mlp" "grouped:8:4 tt:3:16,16 cp:4"
applied mlp-b 0 "$mlp" "cp:8 grouped:16:8 tt:2:4"
# LoRITa's factors composed: the decompositions of each product
applied lorita-a 0 "$lorita" "tucker2:16:16 tt:2:8 cp:4" 'fc*.factors.#.weight'
applied lorita-b 0 "$lorita" "grouped:4:2 cp:8 grouped:2:8" 'fc*.factors.#.weight'
# a make-model model, the decompositions mixed with a low-rank layer; the
# kernel at folds 1, 0 and 3
mm=$scratch/mm.safetensors
"$MAKE_MODEL" "$mm" a=40x24@0.8 b=12x70@0.9 conv=8x6x3x3 e=30x36 f=20x48 ||
	fail "make-model mm"
applied mm-a 1 "$mm" "grouped:2:3 tucker2:4:4 tt:2:4 cp:3 lowrank:4"
applied mm-b 0 "$mm" "tt:2:2 cp:2 grouped:2:3:2 grouped:3:4 tucker2:6:10"
applied mm-c 3 "$mm" "cp:1 tucker2:8:1 grouped:1:2:0 tt:3:0,2 tt:3:3,3"

# the plan records the grouped fold and matrix, not the session's
contains "$(sed -n '/"name": "conv2.weight"/,/"method"/p' "$d/cnn-a.json" | tr -d ' \n')" \
	'"matrix":[96,48],"fold":1,"method":"grouped"' "cnn-a: conv2 grouped under its own fold 1"
contains "$(grep '^conv2.weight ' "$d/cnn-a.log")" "grouped" "cnn-a: apply's line for conv2"

# ---- 2. entries that cannot be right ------------------------------------------------

# refuse WHAT LAYER NEEDLE: $d/bad.json, for $rmodel opened with --fold
# $rfold, is refused by show and apply (exit 1, nothing on stdout from
# show), with a message naming the plan file, the layer, and NEEDLE; apply
# writes nothing.
refuse() {
	rwhat=$1 rlayer=$2 rneedle=$3 rplan=$d/bad.json
	run 1 "$RANKSCOPE" show --fold "$rfold" "$rplan" "$rmodel"
	equals "$out" "" "$rwhat: show prints nothing on stdout"
	contains "$err" "rankscope: $rplan: " "$rwhat: the message names the plan file"
	contains "$err" "('$rlayer')" "$rwhat: the message names the layer"
	contains "$err" "$rneedle" "$rwhat"
	rm -f "$d/refused.safetensors"    # one failure must not hide the next
	run 1 "$RANKSCOPE" apply --fold "$rfold" "$rplan" "$rmodel" -o "$d/refused.safetensors"
	contains "$err" "$rneedle" "$rwhat (apply)"
	check "$rwhat: apply writes nothing" test ! -e "$d/refused.safetensors"
	check "$rwhat: apply leaves no temporary file" \
		test -z "$(find "$d" -name 'refused.safetensors.tmp-*')"
}

# bad LAYER OLD NEW WHAT NEEDLE: $a with one edit in LAYER's entry, refused.
bad() {
	edit_entry "$a" "$d/bad.json" "$1" "$2" "$3"
	refuse "$4" "$1" "$5"
}

recorded="(recorded from the decomposition) must be a number >= 0"
# cnn-a at fold 0: conv1 tt {rows [4, 4], cols [3, 3], ranks [1, 4, 1]},
# conv2 grouped r 4 g 4 at fold 1 (96x48), conv3 tucker2 [16, 8], fc1 cp 6,
# fc2 grouped r 2 g 4
a=$d/cnn-a.json rmodel=$cnn rfold=0
bad conv2.weight '"groups": 4,' '"groups": 5,' "grouped: 5 groups do not divide 48 columns" \
	"5 groups must be at least 2 and divide its 48 input columns"
bad fc2.weight '"groups": 4,' '"groups": 3,' "grouped: 3 groups do not divide 128 columns" \
	"3 groups must be at least 2 and divide its 128 input columns"
bad conv2.weight '"groups": 4,' '"groups": 1,' "grouped: one group" \
	"1 groups must be at least 2"
bad conv2.weight '"rank": 4,' '"rank": null,' "grouped without a rank" \
	"method 'grouped' needs an integer rank and groups"
bad conv2.weight '"rank": 4,' '"rank": 13,' "grouped: rank above n/g" \
	"rank 13 per group out of range 1..12"
bad conv2.weight '"fold": 1,' '"fold": 4,' "grouped: fold 4" \
	"a grouped SVD of a kernel needs fold 0..3"
bad conv2.weight '"matrix": [' '"matrix": [32, 144], "was": [' \
	"grouped: the matrix is the grouped fold's" "the plan's matrix is 32x144 but the layer is 96x48"
bad fc2.weight '"fold": null,' '"fold": 1,' "grouped: a fold on a linear layer" \
	"the layer is a linear layer (its fold must be null)"
bad conv2.weight '"rel_spec_alds": ' '"rel_spec_aldz": ' "grouped without rel_spec_alds" \
	"predicted.rel_spec_alds $recorded"
bad conv2.weight '"rel_spec_alds": ' '"rel_spec_alds": -0.1, "was": ' \
	"grouped: a negative rel_spec_alds" "predicted.rel_spec_alds $recorded"
bad fc2.weight '"rel_spec": ' '"rel_spec": -1e-9, "was": ' "grouped: a negative rel_spec" \
	"predicted.rel_spec $recorded"
bad conv3.weight '"ranks": [' '"rankz": [' "tucker2 without ranks" \
	"method 'tucker2' needs ranks [r_out, r_in]"
bad conv3.weight '"ranks": [' '"ranks": [16], "was": [' "tucker2 with one rank" \
	"method 'tucker2' needs ranks [r_out, r_in]"
bad conv3.weight '"ranks": [' '"ranks": [65, 8], "was": [' "tucker2: r_out above f" \
	"Tucker-2 ranks 65, 8 out of range 1..64 (outputs), 1..32 (inputs)"
bad conv3.weight '"ranks": [' '"ranks": [16, 33], "was": [' "tucker2: r_in above c" \
	"Tucker-2 ranks 16, 33 out of range"
bad conv3.weight '"ranks": [' '"ranks": [16, 0], "was": [' "tucker2: r_in 0" \
	"Tucker-2 ranks 16, 0 out of range"
bad conv3.weight '"rel_fro_bound": ' '"rel_fro_boundz": ' "tucker2 without rel_fro_bound" \
	"predicted.rel_fro_bound $recorded"
bad conv3.weight '"rel_fro_bound": ' '"rel_fro_bound": -0.001, "was": ' \
	"tucker2: a negative rel_fro_bound" "predicted.rel_fro_bound $recorded"
bad conv3.weight '"groups": 1,' '"groups": 2,' "tucker2 with 2 groups" \
	"groups other than 1 belong to method 'grouped'"
bad fc1.weight '"rank": 6,' '"rank": null,' "cp without a rank" "method 'cp' needs an integer rank"
bad fc1.weight '"rank": 6,' '"rank": 0,' "cp at rank 0" "CP rank 0 out of range"
bad fc1.weight '"rel_fro": ' '"rel_fro": -0.25, "was": ' "cp: a negative rel_fro" \
	"predicted.rel_fro $recorded"
bad fc1.weight '"rel_fro": ' '"rel_fro": "0.7", "was": ' "cp: rel_fro as text" \
	"predicted.rel_fro $recorded"
bad conv1.weight '"rows": [' '"rows": [4, 5], "was": [' "tt: row modes multiply to 20" \
	"TT row modes must multiply to 16 and column modes to 9"
bad conv1.weight '"cols": [' '"cols": [3, 1], "was": [' "tt: column modes multiply to 3" \
	"TT row modes must multiply to 16 and column modes to 9"
bad conv1.weight '"cols": [' '"cols": [9], "was": [' "tt: one column mode" \
	"method 'tt' needs tt {rows, cols: d >= 2 modes each; ranks: d + 1 values}"
bad conv1.weight '"tt": {' '"ttz": {' "tt without tt" "method 'tt' needs tt {rows, cols"
bad conv1.weight '"ranks": [' '"ranks": [2, 4, 1], "was": [' "tt: ranks starting with 2" \
	"TT ranks must be >= 1 and start and end with 1"
bad conv1.weight '"ranks": [' '"ranks": [1, 4, 2], "was": [' "tt: ranks ending with 2" \
	"TT ranks must be >= 1 and start and end with 1"
bad conv1.weight '"ranks": [' '"ranks": [1, 0, 1], "was": [' "tt: a rank 0" \
	"TT ranks must be >= 1 and start and end with 1"
bad conv1.weight '"rel_fro_bound": ' '"rel_fro_boundz": ' "tt without rel_fro_bound" \
	"predicted.rel_fro_bound $recorded"
bad conv1.weight '"rel_fro_bound": ' '"rel_fro_bound": -1.0, "was": ' \
	"tt: a negative rel_fro_bound" "predicted.rel_fro_bound $recorded"
# ranks the TT-SVD cannot reach: r_1 <= min(m_1 n_1, m_2 n_2) = 12 here
bad conv1.weight '"ranks": [' '"ranks": [1, 13, 1], "was": [' "tt: r_1 above 12" \
	"TT rank r_1 = 13 is more than the TT-SVD can reach (12)"
# 9 modes: both lists edited
edit_entry "$a" "$d/bad1.json" conv1.weight '"rows": [' '"rows": [2, 2, 2, 2, 1, 1, 1, 1, 1], "was": ['
edit_entry "$d/bad1.json" "$d/bad.json" conv1.weight '"cols": [' '"cols": [3, 3, 1, 1, 1, 1, 1, 1, 1], "was2": ['
refuse "tt: 9 modes" conv1.weight "method 'tt' needs tt {rows, cols"

# cnn-c's fc1 is tt {rows [8, 4, 4], cols [16, 8, 8], ranks [1, 8, 32, 1]}:
# r_2 <= m_3 n_3 = 32, and at 33 the plan would still pay
a=$d/cnn-c.json rmodel=$cnn rfold=0
contains "$(sed -n '/"name": "fc1.weight"/,/"sparsity"/p' "$a" | tr -d ' \n')" \
	'"tt":{"rows":[8,4,4],"cols":[16,8,8],"ranks":[1,8,32,1]}' "cnn-c: fc1's TT modes and ranks"
bad fc1.weight '"ranks": [' '"ranks": [1, 8, 33, 1], "was": [' "tt: r_2 above 32" \
	"TT rank r_2 = 33 is more than the TT-SVD can reach (32)"

# groups other than 1 on a low-rank entry (mm-a at fold 1: f is lowrank 4)
a=$d/mm-a.json rmodel=$mm rfold=1
bad f '"groups": 1,' '"groups": 2,' "lowrank with 2 groups" \
	"groups other than 1 belong to method 'grouped'"
bad e '"groups": 1,' '"groups": 3,' "cp with 3 groups" \
	"groups other than 1 belong to method 'grouped'"

# ---- 3. plan:set misuse from Lua -------------------------------------------------------

lua_run "decomp.lua" "$RANKSCOPE" run -S "$luatests" "$fam/decomp.lua" "$cnn"

finish
