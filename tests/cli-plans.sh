#!/bin/sh
# cli-plans.sh — plan files and compressed models through the real binary:
# run -o writes plans that the JSON Schema accepts and whose figures an
# independent numpy reader confirms (tests/plancheck.py); show -o round
# trips byte for byte; the csv, json and table forms agree; diff; every
# malformed or mismatched plan is refused with a clear message and nothing
# on stdout; apply writes the documented safetensors layout (checked by
# plancheck.py) and replaces its output atomically; failed saves leave the
# old file intact and no temporary behind.  The numpy checks are skipped
# (only they) where no Python with numpy and jsonschema exists.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"

umask 022
# A sanitizer report must not hide behind an expected exit status of 1.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors
schema=$TESTS_SRCDIR/../man/rankscope-plan.schema.json
d=$scratch/plans
mkdir "$d"

find_python numpy jsonschema ||
	echo "no python3 with numpy and jsonschema: plancheck.py checks skipped"

# pycheck WHAT SUBCOMMAND ARGS...: plancheck.py finds no fault.
pycheck() {
	pywhat=$1
	shift
	[ -n "$python" ] || return 0
	run 0 "$python" "$TESTS_SRCDIR/plancheck.py" "$@"
	contains "$out" " 0 failed" "$pywhat: $err"
}

# pyfault WHAT SUBCOMMAND ARGS...: plancheck.py finds a fault.
pyfault() {
	pywhat=$1
	shift
	[ -n "$python" ] || return 0
	run 1 "$python" "$TESTS_SRCDIR/plancheck.py" "$@"
	contains "$err" "FAIL:" "$pywhat"
}

# no_temporaries DIR WHAT: no FILE.tmp-XXXXXX left in DIR.
no_temporaries() {
	checks=$((checks + 1))
	left=$(find "$1" -name '*.tmp-*' | head -3)
	[ -z "$left" ] || fail "$2: temporary files left behind: $left"
}

# mode FILE: its permission string, e.g. -rw-r--r--
mode() {
	ls -l "$1" | cut -c1-10
}

# edit SRC DST OLD NEW: copy SRC with the first occurrence of OLD replaced.
edit() {
	awk -v old="$3" -v new="$4" '
		!done && (i = index($0, old)) {
			$0 = substr($0, 1, i - 1) new substr($0, i + length(old)); done = 1
		}
		{ print }
		END { if (!done) exit 1 }' "$1" >"$2" || fail "edit: '$3' not in $1"
}

# field PLAN LAYER KEY: KEY's value in LAYER's entry of a saved plan.
field() {
	awk -v name="\"name\": \"$2\"," -v key="\"$3\": " '
		index($0, name) { on = 1 }
		on && (i = index($0, key)) {
			v = substr($0, i + length(key)); sub(/,$/, "", v); print v; exit
		}' "$1"
}

# total PLAN KEY: a member of the plan's totals.
total() {
	sed -n "s/^    \"$2\": \\(.*\\)[,]*\$/\\1/p" "$1" | sed 's/,$//'
}

# refuse WHAT PLAN LAYER NEEDLE CMD...: CMD exits 1, prints nothing on
# stdout, and its message names the plan file, LAYER (unless empty) and
# contains NEEDLE.
refuse() {
	rwhat=$1 rplan=$2 rlayer=$3 rneedle=$4
	shift 4
	run 1 "$@"
	equals "$out" "" "$rwhat: nothing on stdout"
	contains "$err" "rankscope: $rplan: " "$rwhat: the message names the plan file"
	[ -z "$rlayer" ] || contains "$err" "'$rlayer'" "$rwhat: the message names the layer"
	contains "$err" "$rneedle" "$rwhat"
}

# ---- writing: run -o ---------------------------------------------------------

run 0 "$RANKSCOPE" run uniform --param keep=0.3 "$mlp" -o "$d/mlp.json"
contains "$out" "3 of 3 layers compressed" "run prints the plan table"
plan=$(cat "$d/mlp.json")
equals "$(sed -n '1,3p' "$d/mlp.json")" '{
  "format": "rankscope-plan",
  "version": 1,' "format and version lead the file"
contains "$plan" "\"path\": \"$mlp\"," "model.path is the path as given"
contains "$plan" "\"size\": $(wc -c <"$mlp" | tr -d ' ')," "model.size is the file size"
contains "$plan" '"tool": "rankscope ' "created_by.tool"
contains "$plan" '"strategy": "uniform",' "created_by.strategy"
contains "$plan" '"keep": "0.3"' "parameters are kept as text"
contains "$plan" '"sparsity": 0.0,' "sparsity is written as a real"
equals "$(grep -c '"name": ' "$d/mlp.json")" "3" "one entry per layer"
equals "$(grep '"name": ' "$d/mlp.json" | tr -d ' ,"' | tr '\n' ' ')" \
       "name:fc1.weight name:fc2.weight name:fc3.weight " "layers in file order"
equals "$(field "$d/mlp.json" fc1.weight rank)" "19" "fc1 rank round(0.3 * 64)"
equals "$(field "$d/mlp.json" fc2.weight fold)" "null" "linear layers have fold null"
equals "$(total "$d/mlp.json" params_before)" "300032" "totals.params_before"
equals "$(tail -c 2 "$d/mlp.json" | od -An -c | tr -d ' ')" '}\n' "the file ends with a newline"
equals "$(mode "$d/mlp.json")" "-rw-r--r--" "a saved plan gets 0666 less the umask"
pycheck "mlp plan against the schema" schema "$d/mlp.json" "$schema"
pycheck "mlp plan figures" predict "$d/mlp.json" "$mlp"

run 0 "$RANKSCOPE" run budget-minimax --param budget=0.50 --param error=spec "$mlp" -o "$d/minimax.json"
contains "$(cat "$d/minimax.json")" '"budget": "0.50"' "0.50 stays 0.50"
contains "$(cat "$d/minimax.json")" '"error": "spec"' "choice parameters kept"
equals "$(field "$d/minimax.json" fc1.weight method)" '"dense"' "dense layer method"
equals "$(field "$d/minimax.json" fc1.weight rank)" "null" "dense layer rank null"
pycheck "minimax plan against the schema" schema "$d/minimax.json" "$schema"
pycheck "minimax plan figures" predict "$d/minimax.json" "$mlp"

# Deterministic: the same plan from the same spectra is the same bytes.
# (Spectra computed with another --threads may differ in the last bit:
# OpenBLAS's thread count changes the rounding of the large layers.)
run 0 "$RANKSCOPE" run uniform --param keep=0.3 "$mlp" -o "$d/mlp-again.json"
same "$d/mlp.json" "$d/mlp-again.json" "run -o twice"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --no-cache "$mlp" -o "$d/mlp-again.json"
same "$d/mlp.json" "$d/mlp-again.json" "run -o without the cache"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --no-cache --threads 1 "$mlp" -o "$d/mlp-t1.json"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --no-cache --threads 1 "$mlp" -o "$d/mlp-t1b.json"
same "$d/mlp-t1.json" "$d/mlp-t1b.json" "run -o twice, one thread, no cache"
run 0 "$RANKSCOPE" show --no-cache --threads 1 "$d/mlp-t1.json" "$mlp" -o "$d/mlp-t1-rt.json"
same "$d/mlp-t1.json" "$d/mlp-t1-rt.json" "show -o round trip, one thread, no cache"
# -o replaces an existing plan.
run 0 "$RANKSCOPE" run uniform --param keep=0.5 "$mlp" -o "$d/mlp-again.json"
equals "$(field "$d/mlp-again.json" fc1.weight rank)" "32" "-o replaces the old plan"
no_temporaries "$d" "run -o"

# The example in rankscope-plan(5) is what rankscope writes (reals to 12
# digits: the last ones depend on the BLAS thread count; any version).
norm_plan() {
	sed 's/"tool": "rankscope [^"]*"/"tool": "rankscope VERSION"/' "$1" | awk '{
		if ((i = index($0, "\": ")) &&
		    substr($0, i + 3) ~ /^-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?,?$/) {
			v = substr($0, i + 3); c = ""
			if (v ~ /,$/) { c = ","; sub(/,$/, "", v) }
			$0 = substr($0, 1, i + 2) sprintf("%.12g", v + 0) c
		}
		print
	}'
}
rel=$(basename "$SAMPLES")/digits-mlp.safetensors
sed -n '/^\.SH EXAMPLE/,/^\.fi/p' "$TESTS_SRCDIR/../man/rankscope-plan.5" | sed -n '/^{$/,/^}$/p' |
	sed -e 's/\\-/-/g' -e "s|\"samples/digits-mlp.safetensors\"|\"$rel\"|" >"$d/man-example.json"
run 0 sh -c 'cd "$1/.." && exec "$2" run budget-minimax --param budget=0.5 "$3" -o "$4"' \
	sh "$SAMPLES" "$RANKSCOPE" "$rel" "$d/example.json"
equals "$(norm_plan "$d/man-example.json")" "$(norm_plan "$d/example.json")" \
       "rankscope-plan(5)'s example is what run -o writes"
pycheck "the man page's example against the schema" schema "$d/man-example.json" "$schema"

# ---- round trips: show -o ----------------------------------------------------

run 0 "$RANKSCOPE" show "$d/mlp.json" "$mlp" -o "$d/mlp-rt.json"
same "$d/mlp.json" "$d/mlp-rt.json" "show -o round trip"
for s in uniform budget-minimax budget-greedy energy threshold lc-rankselect; do
	run 0 "$RANKSCOPE" run "$s" "$mlp" -o "$d/rt-$s.json"
	run 0 "$RANKSCOPE" show "$d/rt-$s.json" "$mlp" -o "$d/rt-$s-2.json"
	same "$d/rt-$s.json" "$d/rt-$s-2.json" "show -o round trip of a $s plan"
	pycheck "$s plan against the schema" schema "$d/rt-$s.json" "$schema"
	pycheck "$s plan figures" predict "$d/rt-$s.json" "$mlp"
done
for fold in 1 3; do
	for s in uniform budget-minimax; do
		p=$d/cnn-$s-f$fold.json
		run 0 "$RANKSCOPE" run "$s" --fold $fold "$cnn" -o "$p"
		equals "$(field "$p" conv2.weight fold)" "$fold" "cnn $s: fold $fold recorded"
		equals "$(field "$p" fc1.weight fold)" "null" "cnn $s: linear fold null"
		run 0 "$RANKSCOPE" show --fold $fold "$p" "$cnn" -o "$p.2"
		same "$p" "$p.2" "show -o round trip of a cnn $s plan, fold $fold"
		pycheck "cnn $s fold $fold against the schema" schema "$p" "$schema"
		pycheck "cnn $s fold $fold figures" predict "$p" "$cnn"
	done
done
equals "$(sed -n '/"name": "conv2.weight"/,/"fold"/p' "$d/cnn-uniform-f1.json" | tr -d ' \n')" \
       '"name":"conv2.weight","shape":[32,16,3,3],"matrix":[96,48],"fold":1,' \
       "conv2 under fold 1: shape, matrix (f kh) x (c kw), fold"
equals "$(sed -n '/"name": "conv2.weight"/,/"fold"/p' "$d/cnn-uniform-f3.json" | tr -d ' \n')" \
       '"name":"conv2.weight","shape":[32,16,3,3],"matrix":[288,16],"fold":3,' \
       "conv2 under fold 3: matrix (f kh kw) x c"

# A plan no strategy made (strategy null) round trips too; parameters
# given as JSON numbers are read as their text.
edit "$d/mlp.json" "$d/hand.json" '"strategy": "uniform"' '"strategy": null'
run 0 "$RANKSCOPE" show "$d/hand.json" "$mlp" -o "$d/hand-rt.json"
same "$d/hand.json" "$d/hand-rt.json" "show -o round trip with strategy null"
pycheck "strategy null against the schema" schema "$d/hand.json" "$schema"
edit "$d/mlp.json" "$d/number.json" '"keep": "0.3"' '"keep": 0.25'
run 0 "$RANKSCOPE" show "$d/number.json" "$mlp" -o "$d/number-rt.json"
contains "$(cat "$d/number-rt.json")" '"keep": "0.25"' "a numeric parameter is saved as its text"

# Predicted figures and totals are recomputed, never trusted.
edit "$d/mlp.json" "$d/t1.json" "\"rel_fro\": $(field "$d/mlp.json" fc2.weight rel_fro)" '"rel_fro": 0.5'
edit "$d/t1.json" "$d/t2.json" '"params_after": 170206' '"params_after": 1'
edit "$d/t2.json" "$d/t3.json" '"bits": 32' '"bits": 8'
edit "$d/t3.json" "$d/tampered.json" '"header_sha256": "' '"header_sha256": "00'
pyfault "plancheck notices tampered figures" predict "$d/tampered.json" "$mlp"
run 0 "$RANKSCOPE" show "$d/tampered.json" "$mlp" -o "$d/untampered.json"
same "$d/mlp.json" "$d/untampered.json" "show -o recomputes predicted, totals, bits, model"

# ---- formats: table, csv, json ------------------------------------------------

# csv_matches_table CSV TABLE WHAT: one CSV row per table row, same values.
csv_matches_table() {
	checks=$((checks + 1))
	why=$(awk -F, -v table="$2" '
		BEGIN {
			while ((getline line < table) > 0) {
				n = split(line, f, " ")
				if (f[1] == "total:") break
				if (f[1] == "layer") continue
				# matrix method rank err_F err_2 ratio ("<=" before a bound
				# err_2; the size is a number and a unit)
				b = f[6] == "<=" ? 1 : 0
				t[f[1]] = f[2] " " f[3] " " f[4] " " f[5] " " f[6 + b] " " f[10 + b]; nt++
			}
		}
		NR > 1 {
			rank = $6 == "" ? ($2 < $3 ? $2 : $3) : $6
			want = sprintf("%sx%s %s %s %.4f %.4f %.2fx", $2, $3, $5, rank, $10, $11, $19 / $17)
			if (t[$1] != want) { print $1 ": csv " want ", table " t[$1]; bad = 1 }
			rows++
		}
		END { if (rows != nt) print rows " csv rows, " nt " table rows"; exit bad || rows != nt }' "$1")
	[ -z "$why" ] || fail "$3: $why"
}

header="layer,rows,cols,fold,method,rank,sparsity,quantizer,bits,err_fro,err_spec,err_spec_is_bound,energy,params,nonzeros,flops,storage_bits,params_dense,storage_bits_dense"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --fold 1 "$cnn"
cp "$scratch/out" "$d/cnn-table.txt"
contains "$out" "uniform keep=0.3" "table format: summary on stdout"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --fold 1 --format csv "$cnn" -o "$d/cnn-f1.json"
cp "$scratch/out" "$d/cnn-run.csv"
equals "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" "6" "run csv: header + 5 layers"
equals "$(printf '%s\n' "$out" | head -1)" "$header" "run csv header"
contains "$out" "conv2.weight,96,48,1,lowrank,14," "run csv conv2 row"
contains "$out" "fc1.weight,128,1024,,lowrank,38," "run csv: linear layers have no fold"
contains "$err" "uniform keep=0.3" "csv format: the summary goes to stderr"
csv_matches_table "$d/cnn-run.csv" "$d/cnn-table.txt" "run csv vs table"
pycheck "run csv vs the saved plan" csv "$d/cnn-f1.json" "$d/cnn-run.csv"
run 0 "$RANKSCOPE" show --fold 1 --format csv "$d/cnn-f1.json" "$cnn"
cp "$scratch/out" "$d/cnn-show.csv"
same "$d/cnn-run.csv" "$d/cnn-show.csv" "show csv = run csv"
run 0 "$RANKSCOPE" show --fold 1 "$d/cnn-f1.json" "$cnn"
cp "$scratch/out" "$d/cnn-show.txt"
csv_matches_table "$d/cnn-show.csv" "$d/cnn-show.txt" "show csv vs show table"
run 0 "$RANKSCOPE" show --format csv "$d/minimax.json" "$mlp"
cp "$scratch/out" "$d/minimax.csv"
contains "$out" "fc1.weight,512,64,,dense,,,,,0,0,0,1,32768,32768,65536,1048576,32768,1048576" "csv dense row"
run 0 "$RANKSCOPE" show "$d/minimax.json" "$mlp"
cp "$scratch/out" "$d/minimax.txt"
csv_matches_table "$d/minimax.csv" "$d/minimax.txt" "csv vs table with dense layers"
pycheck "show csv vs the plan" csv "$d/minimax.json" "$d/minimax.csv"

run 0 "$RANKSCOPE" run uniform --param keep=0.3 --format json "$mlp" -o "$d/mlp-json.json"
same "$scratch/out" "$d/mlp-json.json" "run --format json prints the saved file"
same "$d/mlp.json" "$d/mlp-json.json" "json format and table format save the same plan"
contains "$err" "uniform keep=0.3" "json format: the summary goes to stderr"
run 0 "$RANKSCOPE" show --format json "$d/mlp.json" "$mlp"
same "$scratch/out" "$d/mlp.json" "show --format json prints the plan file"

# rankscope --plan P MODEL, not on a terminal: the plan table.
run 0 "$RANKSCOPE" show "$d/mlp.json" "$mlp"
show_table=$out
contains "$(printf '%s' "$show_table" | tr -s ' ')" "fc2.weight 512x512 lowrank 154" "show table row"
run 0 "$RANKSCOPE" --plan "$d/mlp.json" "$mlp"
equals "$out" "$show_table" "rankscope --plan P MODEL prints the plan table"
run 0 "$RANKSCOPE" --fold 1 --plan "$d/cnn-f1.json" "$cnn"
equals "$out" "$(cat "$d/cnn-show.txt")" "rankscope --fold 1 --plan P CNN"

# ---- known spectra (make-model) ------------------------------------------------

# s_i = DECAY^(i-1): rank r has err_2 = DECAY^r; k4 is a random kernel.
known=$d/known.safetensors
"$MAKE_MODEL" "$known" lin=40x30@0.5 sq=40x40@0.9 wide=24x64@0.8 k4=8x6x3x3
run 0 "$RANKSCOPE" run uniform --param keep=0.25 --format csv "$known" -o "$d/known.json"
# expect_spec LAYER RANK WANT
expect_spec() {
	checks=$((checks + 1))
	printf '%s\n' "$out" | awk -F, -v l="$1" -v r="$2" -v w="$3" '
		$1 == l { found = 1; if ($6 != r || ($8 - w) > 1e-6 || (w - $8) > 1e-6) exit 1 }
		END { exit !found }' || fail "known spectrum: $1 rank $2 err_2 $3: $(printf '%s\n' "$out" | grep "^$1,")"
}
expect_spec lin 8 0.00390625
expect_spec sq 10 0.3486784401
expect_spec wide 6 0.262144
contains "$out" "k4,8,54,0,lowrank,2," "k4 under fold 0: 8 x 54, rank 2"
pycheck "known plan against the schema" schema "$d/known.json" "$schema"
pycheck "known plan figures" predict "$d/known.json" "$known"
run 0 "$RANKSCOPE" show "$d/known.json" "$known" -o "$d/known-rt.json"
same "$d/known.json" "$d/known-rt.json" "show -o round trip on a make-model model"
for fold in 2 3; do
	run 0 "$RANKSCOPE" run uniform --param keep=0.25 --fold $fold "$known" -o "$d/known-f$fold.json"
	pycheck "known plan fold $fold figures" predict "$d/known-f$fold.json" "$known"
done

# Break-even: 40x40 at rank 20 costs 20 * 80 = 1600 = m n, so it does not pay.
edit "$d/known.json" "$d/sq19.json" '"rank": 10' '"rank": 19'
run 0 "$RANKSCOPE" show --format csv "$d/sq19.json" "$known"
contains "$out" "sq,40,40,,lowrank,19," "rank 19 of 40x40 pays"
edit "$d/known.json" "$d/sq20.json" '"rank": 10' '"rank": 20'
refuse "rank at m n / (m + n)" "$d/sq20.json" sq "rank 20 costs at least as much as the dense layer" \
	"$RANKSCOPE" show "$d/sq20.json" "$known"

# ---- refused plans -----------------------------------------------------------

bad=$d/bad.json
# Mismatched models and options.
refuse "an mlp plan on the cnn" "$d/mlp.json" fc1.weight "matrix is 512x64 but the layer is 128x1024" \
	"$RANKSCOPE" show "$d/mlp.json" "$cnn"
refuse "a cnn plan on the mlp" "$d/cnn-f1.json" conv1.weight "is not a layer of $mlp" \
	"$RANKSCOPE" show "$d/cnn-f1.json" "$mlp"
refuse "a fold 1 plan opened with fold 0" "$d/cnn-f1.json" conv1.weight "fold differs in the plan, but the layer is opened with fold 0 (use --fold)" \
	"$RANKSCOPE" show "$d/cnn-f1.json" "$cnn"
refuse "a fold 1 plan opened with fold 2 (same matrix)" "$d/cnn-f1.json" conv1.weight "fold differs" \
	"$RANKSCOPE" show --fold 2 "$d/cnn-f1.json" "$cnn"
refuse "a layer the model, as opened, lacks" "$d/mlp.json" fc3.weight "is not a layer of" \
	"$RANKSCOPE" show --exclude fc3.weight "$d/mlp.json" "$mlp"
edit "$d/mlp.json" "$bad" '"fold": null' '"fold": 0'
refuse "a fold for a linear layer" "$bad" fc1.weight "fold" "$RANKSCOPE" show "$bad" "$mlp"
lacks "$err" "fold -1" "a linear layer has no fold scheme to name"

# Layers missing, extra, duplicated.
awk '/^    \{$/ && !n++ { skip = 1 } !skip { print } skip && /^    \},$/ { skip = 0 }' \
	"$d/mlp.json" >"$bad"
refuse "a layer missing" "$bad" fc1.weight "has no entry in the plan" "$RANKSCOPE" show "$bad" "$mlp"
awk '/^    \{$/ && !n++ { grab = 1 } grab { first = first $0 "\n" }
     { print } grab && /^    \},$/ { grab = 0; printf "%s", first }' "$d/mlp.json" >"$d/twice.json"
refuse "a layer twice" "$d/twice.json" fc1.weight "appears twice" "$RANKSCOPE" show "$d/twice.json" "$mlp"
edit "$d/twice.json" "$bad" '"name": "fc1.weight"' '"name": "fc0.weight"'
refuse "an extra layer" "$bad" fc0.weight "is not a layer of $mlp" "$RANKSCOPE" show "$bad" "$mlp"

# Wrong matrix, shape; bad ranks and methods.
awk '/"matrix"/ && !m { m = 1; print; next } m == 1 { sub(/512/, "256"); m = 2 } { print }' \
	"$d/mlp.json" >"$bad"
refuse "a wrong matrix" "$bad" fc1.weight "matrix is 256x64 but the layer is 512x64" "$RANKSCOPE" show "$bad" "$mlp"
awk '/"shape"/ && !m { m = 1; print; next } m == 1 { sub(/512/, "513"); m = 2 } { print }' \
	"$d/mlp.json" >"$bad"
refuse "a wrong shape" "$bad" fc1.weight "shape differs" "$RANKSCOPE" show "$bad" "$mlp"
for r in 0 -3 64 57 99999999999; do
	edit "$d/mlp.json" "$bad" '"rank": 19' "\"rank\": $r"
	case $r in 57) why="break-even 56" ;; *) why="rank $r out of range 1..63" ;; esac
	refuse "rank $r of fc1 (k 64)" "$bad" fc1.weight "$why" "$RANKSCOPE" show "$bad" "$mlp"
done
edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": 56'
run 0 "$RANKSCOPE" show --format csv "$bad" "$mlp"
contains "$out" "fc1.weight,512,64,,lowrank,56," "rank 56 (break-even) is accepted"
edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": "19"'
refuse "rank a string" "$bad" fc1.weight "rank must be an integer, not a string" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": 19.0'
refuse "rank a real" "$bad" fc1.weight "rank must be an integer" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": null'
refuse "lowrank without a rank" "$bad" fc1.weight "rank must be an integer" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"method": "lowrank"' '"method": "sparse"'
refuse "method sparse" "$bad" fc1.weight "unknown method 'sparse'" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"method": "lowrank"' '"method": 1'
refuse "method a number" "$bad" fc1.weight "method must be a string" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"groups": 1' '"groups": 2'
refuse "groups 2" "$bad" fc1.weight "groups" "$RANKSCOPE" show "$bad" "$mlp"
# Pruning at sparsity 0 stores more than the dense layer: read, and kept dense.
edit "$d/mlp.json" "$bad" '"method": "lowrank"' '"method": "prune"'
run 0 "$RANKSCOPE" show --format csv "$bad" "$mlp"
contains "$out" "fc1.weight,512,64,,dense," "prune at sparsity 0 stays dense"

# Not a plan.
size=$(wc -c <"$d/mlp.json" | tr -d ' ')
for cut in 1 40 333 $((size / 2)) $((size - 2)); do
	head -c $cut "$d/mlp.json" >"$bad"
	refuse "truncated after $cut bytes" "$bad" "" "not valid JSON" "$RANKSCOPE" show "$bad" "$mlp"
done
printf 'rank 19 for fc1\n' >"$bad"
refuse "not JSON" "$bad" "" "not valid JSON" "$RANKSCOPE" show "$bad" "$mlp"
: >"$bad"
refuse "an empty file" "$bad" "" "not valid JSON" "$RANKSCOPE" show "$bad" "$mlp"
printf '[]\n' >"$bad"
refuse "an array" "$bad" "" "not a rankscope plan" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"format": "rankscope-plan"' '"format": "rankscope-plans"'
refuse "format wrong" "$bad" "" "not a rankscope plan" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"version": 1' '"version": 2'
refuse "version 2" "$bad" "" "plan version 2 is not one this rankscope reads" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"version": 1' '"version": "1"'
refuse "version a string" "$bad" "" "\"version\" must be an integer" "$RANKSCOPE" show "$bad" "$mlp"
printf '{"format": "rankscope-plan", "version": 1, "layers": {"fc1.weight": 19}}\n' >"$bad"
refuse "layers not an array" "$bad" "" "\"layers\" must be an array" "$RANKSCOPE" show "$bad" "$mlp"
printf '{"format": "rankscope-plan", "version": 1}\n' >"$bad"
refuse "layers missing" "$bad" "" "\"layers\" must be an array" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"version": 1,' '"version": 1, "version": 1,'
refuse "a member twice" "$bad" "" "not valid JSON" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"keep": "0.3"' '"keep": {"value": "0.3"}'
refuse "created_by.params nested" "$bad" "" "created_by.params.keep must be a string" "$RANKSCOPE" show "$bad" "$mlp"
edit "$d/mlp.json" "$bad" '"strategy": "uniform"' '"strategy": 7'
refuse "created_by.strategy a number" "$bad" "" "created_by.strategy" "$RANKSCOPE" show "$bad" "$mlp"
refuse "a plan that does not exist" "$d/none.json" "" "cannot open" "$RANKSCOPE" show "$d/none.json" "$mlp"
refuse "a directory as the plan" "$d" "" "not a regular file" "$RANKSCOPE" show "$d" "$mlp"

# Every command that reads a plan with a model refuses the same way.
edit "$d/mlp.json" "$bad" '"rank": 154' '"rank": 300'
for cmd in "show" "apply -o $d/refused.safetensors" "run uniform --plan" "--plan"; do
	set -- $cmd
	case $1 in
	--plan) refuse "rankscope --plan" "$bad" fc2.weight "break-even 256" "$RANKSCOPE" --plan "$bad" "$mlp" ;;
	run) refuse "run --plan" "$bad" fc2.weight "break-even 256" "$RANKSCOPE" run uniform --plan "$bad" "$mlp" ;;
	*) refuse "$1" "$bad" fc2.weight "break-even 256" "$RANKSCOPE" "$@" "$bad" "$mlp" ;;
	esac
done
checks=$((checks + 1))
[ ! -e "$d/refused.safetensors" ] || fail "apply of a refused plan wrote its output"

# The schema rejects what the reader rejects, and more.
if [ -n "$python" ]; then
	edit "$d/mlp.json" "$bad" '"method": "lowrank"' '"method": "sparse"'
	pyfault "schema: method sparse" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": "19"'
	pyfault "schema: rank a string" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": 0'
	pyfault "schema: rank 0" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"rank": 19' '"rank": null'
	pyfault "schema: lowrank with rank null" schema "$bad" "$schema"
	edit "$d/minimax.json" "$bad" '"rank": null' '"rank": 5'
	pyfault "schema: dense with a rank" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"version": 1' '"version": 2'
	pyfault "schema: version 2" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"keep": "0.3"' '"keep": 0.3'
	pyfault "schema: a parameter as a number" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"fold": null' '"fold": 4'
	pyfault "schema: fold 4" schema "$bad" "$schema"
	edit "$d/mlp.json" "$bad" '"groups": 1,' '"groups": 1, "extra": true,'
	pyfault "schema: an unknown member" schema "$bad" "$schema"
	awk '/"totals"/ { exit } { print }' "$d/mlp.json" | sed '$s/,$//' >"$bad"
	echo '}' >>"$bad"
	pyfault "schema: totals missing" schema "$bad" "$schema"
fi

# ---- diff ----------------------------------------------------------------------

# B: fc1 dense, fc2 at rank 100, fc3 unchanged; figures recomputed by show -o.
edit "$d/mlp.json" "$d/b1.json" '"method": "lowrank"' '"method": "dense"'
edit "$d/b1.json" "$d/b2.json" '"rank": 154' '"rank": 100'
run 0 "$RANKSCOPE" show "$d/b2.json" "$mlp" -o "$d/b.json"
run 0 "$RANKSCOPE" diff "$d/mlp.json" "$d/b.json"
contains "$out" "2 of 3 layers differ" "diff counts the changed layers"
lacks "$out" "fc3.weight" "an unchanged layer has no row"
lacks "$out" "note:" "same model, no note"
row=$(printf '%s\n' "$out" | grep '^fc2.weight')
fro_a=$(printf '%.4f' "$(field "$d/mlp.json" fc2.weight rel_fro)")
fro_b=$(printf '%.4f' "$(field "$d/b.json" fc2.weight rel_fro)")
spec_a=$(printf '%.4f' "$(field "$d/mlp.json" fc2.weight rel_spec)")
spec_b=$(printf '%.4f' "$(field "$d/b.json" fc2.weight rel_spec)")
equals "$(printf '%s\n' "$row" | awk '{print $2, $3, $4, $5, $6, $7, $8, $9, $10}')" \
       "lowrank 154 lowrank 100 $fro_a $fro_b $spec_a $spec_b -55296" "diff row for fc2"
equals "$(printf '%s\n' "$out" | grep '^fc1.weight' | awk '{print $2, $3, $4, $6, $8, $9}')" \
       "lowrank 19 dense 0.0000 0.0000 +21824" "diff row for fc1 (lowrank -> dense)"
after_a=$(total "$d/mlp.json" params_after)
after_b=$(total "$d/b.json" params_after)
contains "$out" "params after: A $after_a, B $after_b (-33472)" "diff totals"
contains "$out" "worst err_2 A $(printf '%.4f' "$(total "$d/mlp.json" max_rel_spec)"), B $(printf '%.4f' "$(total "$d/b.json" max_rel_spec)")" "diff worst errors"
run 0 "$RANKSCOPE" diff "$d/mlp.json" "$d/mlp.json"
equals "$(printf '%s\n' "$out" | sed -n 2p)" "0 of 3 layers differ" "a plan against itself"
equals "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" "3" "no rows for a plan against itself"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --layer fc1.weight "$mlp" -o "$d/one.json"
run 0 "$RANKSCOPE" diff "$d/one.json" "$d/mlp.json"
contains "$out" "fc2.weight  only in B" "diff: a layer only in B"
contains "$out" "2 of 3 layers differ" "diff counts the layers of both plans"
run 0 "$RANKSCOPE" diff "$d/mlp.json" "$d/one.json"
contains "$out" "fc3.weight  only in A" "diff: a layer only in A"
contains "$out" "2 of 3 layers differ" "diff counts layers only in A"
run 0 "$RANKSCOPE" diff "$d/mlp.json" "$d/cnn-f1.json"
contains "$out" "note: the plans were made for different models" "diff notes different models"
edit "$d/mlp.json" "$bad" '"version": 1' '"version": 2'
refuse "diff of a version 2 plan" "$bad" "" "version" "$RANKSCOPE" diff "$d/mlp.json" "$bad"
head -c 100 "$d/mlp.json" >"$bad"
refuse "diff of a truncated plan" "$bad" "" "not valid JSON" "$RANKSCOPE" diff "$bad" "$d/mlp.json"
# counts beyond what a double holds exactly (or any long long) are refused,
# not converted (that conversion is undefined behaviour)
edit "$d/mlp.json" "$bad" '"params_before": ' '"params_before": 5e268, "was": '
refuse "diff: params_before 5e268" "$bad" "" "totals.params_before must be a whole number from 0 to 2^53, not 5e+268" \
	"$RANKSCOPE" diff "$bad" "$d/mlp.json"
edit "$d/mlp.json" "$bad" '"params_after": ' '"params_after": -1, "was": '
refuse "diff: params_after -1" "$bad" "" "totals.params_after must be a whole number" \
	"$RANKSCOPE" diff "$d/mlp.json" "$bad"
edit_entry "$d/mlp.json" "$bad" fc1.weight '"params": ' '"params": 2.5, "was": '
refuse "diff: a layer's params 2.5" "$bad" "" "layers[0].predicted.params must be a whole number from 0 to 2^53, not 2.5" \
	"$RANKSCOPE" diff "$bad" "$d/mlp.json"

# ---- apply ---------------------------------------------------------------------

# apply_ok PLAN MODEL OUT WHAT [OPTIONS...]: apply succeeds; its printed
# predicted and measured columns agree, rows are the plan's factorised
# layers with the plan's ranks and predictions; plancheck.py confirms OUT.
apply_ok() {
	ap=$1 am=$2 ao=$3 aw=$4
	shift 4
	run 0 "$RANKSCOPE" apply "$@" "$ap" "$am" -o "$ao"
	cp "$scratch/out" "$d/apply.txt"
	equals "$(head -1 "$d/apply.txt" | tr -s ' ')" "layer method err_F pred err_F meas err_2 pred err_2 meas cast" \
	       "$aw: apply header"
	contains "$out" "wrote $ao; largest |measured - predicted|" "$aw: apply summary"
	checks=$((checks + 1))
	why=$(awk 'NR > 1 && $1 != "wrote" && $1 != "bytes" {
			d1 = $3 - $4; d2 = $5 - $6
			if (d1 > 2e-6 || -d1 > 2e-6 || d2 > 2e-6 || -d2 > 2e-6) print $0
		}
		$1 == "wrote" { g = $7; if (g + 0 > 1e-5) print "largest gap " g }' "$d/apply.txt")
	[ -z "$why" ] || fail "$aw: predicted and measured differ: $why"
	run 0 "$RANKSCOPE" show "$@" --format csv "$ap" "$am"
	equals "$(awk -F, '$5 == "lowrank" { printf "%s %s %.6f %.6f\n", $1, $5, $10, $11 }' "$scratch/out")" \
	       "$(awk 'NR > 1 && $1 != "wrote" && $1 != "bytes" { print $1, $2, $3, $5 }' "$d/apply.txt")" \
	       "$aw: one apply row per factorised layer, with the plan's rank and predictions"
	pycheck "$aw" apply "$ap" "$am" "$ao"
	no_temporaries "$(dirname "$ao")" "$aw"
}

apply_ok "$d/mlp.json" "$mlp" "$d/mlp.safetensors" "apply mlp"
run 0 "$RANKSCOPE" info "$d/mlp.safetensors"
contains "$out" "fc1.weight.lowrank.A 19x64" "the output opens: fc1's A"
contains "$out" "fc1.weight.lowrank.B 512x19" "the output opens: fc1's B"
contains "$out" "6 layers" "three layers become six factors"
equals "$(mode "$d/mlp.safetensors")" "-rw-r--r--" "an applied model gets 0666 less the umask, as plans do"
apply_ok "$d/minimax.json" "$mlp" "$d/minimax.safetensors" "apply a plan with dense layers"
run 0 "$RANKSCOPE" run uniform --param keep=0.3 "$cnn" -o "$d/cnn-f0.json"
apply_ok "$d/cnn-f0.json" "$cnn" "$d/cnn-f0.safetensors" "apply cnn fold 0"
apply_ok "$d/cnn-f1.json" "$cnn" "$d/cnn-f1.safetensors" "apply cnn fold 1" --fold 1
run 0 "$RANKSCOPE" info "$d/cnn-f1.safetensors"
contains "$out" "conv2.weight.lowrank.A 14x48" "cnn fold 1: conv2's A is r x (c kw)"
contains "$out" "conv2.weight.lowrank.B 96x14" "cnn fold 1: conv2's B is (f kh) x r"
apply_ok "$d/known-f2.json" "$known" "$d/known-f2.safetensors" "apply fold 2" --fold 2
apply_ok "$d/known-f3.json" "$known" "$d/known-f3.safetensors" "apply fold 3" --fold 3
run 0 "$RANKSCOPE" run uniform --param keep=0.3 --exclude fc2.weight "$mlp" -o "$d/nofc2.json"
apply_ok "$d/nofc2.json" "$mlp" "$d/nofc2.safetensors" "apply with a layer left out" --exclude fc2.weight
# plancheck.py can tell a wrong output.
pyfault "an output checked against another plan" apply "$d/minimax.json" "$mlp" "$d/mlp.safetensors"
pyfault "an output checked against another fold" apply "$d/cnn-f0.json" "$cnn" "$d/cnn-f1.safetensors"

run 2 "$RANKSCOPE" apply "$d/mlp.json" "$mlp"
contains "$err" "-o OUT.safetensors is required" "apply without -o"
equals "$out" "" "apply without -o: nothing on stdout"
run 1 "$RANKSCOPE" apply "$d/mlp.json" "$mlp" -o "$d/no/such/dir/out.safetensors"
contains "$err" "$d/no/such/dir/out.safetensors: cannot create a temporary file" "apply into a missing directory"
checks=$((checks + 1))
[ ! -e "$d/no" ] || fail "apply into a missing directory created something"

# Over an existing file: replaced whole; a failed apply leaves it intact.
cp "$d/minimax.safetensors" "$d/target.safetensors"
apply_ok "$d/mlp.json" "$mlp" "$d/target.safetensors" "apply over an existing file"
same "$d/mlp.safetensors" "$d/target.safetensors" "the old file is replaced by the new output"
cp "$d/target.safetensors" "$d/target.before"
mkdir "$d/isdir.safetensors"
run 1 "$RANKSCOPE" apply "$d/minimax.json" "$mlp" -o "$d/isdir.safetensors"
contains "$err" "$d/isdir.safetensors: cannot replace" "apply onto a directory"
checks=$((checks + 1))
[ -d "$d/isdir.safetensors" ] && [ -z "$(ls "$d/isdir.safetensors")" ] ||
	fail "apply onto a directory changed it"
no_temporaries "$d" "a failed apply"
run 1 "$RANKSCOPE" show "$d/mlp.json" "$mlp" -o "$d/isdir.safetensors"
contains "$err" "$d/isdir.safetensors: cannot replace" "show -o onto a directory"
checks=$((checks + 1))
[ -d "$d/isdir.safetensors" ] || fail "show -o onto a directory replaced it"
run 1 "$RANKSCOPE" run uniform "$mlp" -o "$d/isdir.safetensors"
contains "$err" "$d/isdir.safetensors: cannot replace" "run -o onto a directory"
equals "$out" "" "a failed run -o prints no plan"
no_temporaries "$d" "failed saves"

# A directory nobody may write into (only meaningful when not root).
mkdir "$d/ro"
cp "$d/mlp.json" "$d/ro/plan.json"
cp "$d/target.safetensors" "$d/ro/model.safetensors"
chmod 555 "$d/ro"
if ( : >"$d/ro/probe" ) 2>/dev/null; then
	rm -f "$d/ro/probe"
	echo "directory permissions do not bind (root): read-only checks skipped"
else
	run 1 "$RANKSCOPE" run uniform --param keep=0.5 "$mlp" -o "$d/ro/plan.json"
	contains "$err" "cannot create a temporary file" "run -o into a read-only directory"
	same "$d/mlp.json" "$d/ro/plan.json" "the old plan is intact"
	run 1 "$RANKSCOPE" apply "$d/minimax.json" "$mlp" -o "$d/ro/model.safetensors"
	same "$d/target.before" "$d/ro/model.safetensors" "the old output is intact"
	no_temporaries "$d/ro" "read-only directory"
fi
chmod 755 "$d/ro"

# Interrupted writes: a file size limit makes the write itself fail
# (SIGXFSZ ignored, so write(2) returns EFBIG).
( ulimit -f 1 && trap '' XFSZ && exec head -c 8192 /dev/zero ) >"$d/probe" 2>/dev/null
if [ "$(wc -c <"$d/probe" | tr -d ' ')" -ge 8192 ]; then
	echo "ulimit -f does not limit writes here: interrupted-write checks skipped"
else
	cp "$d/cnn-f1.json" "$d/victim.json"
	( ulimit -f 1 && trap '' XFSZ &&
	  exec "$RANKSCOPE" show "$d/mlp.json" "$mlp" -o "$d/victim.json" ) >/dev/null 2>"$d/xfsz.err"
	status=$?
	equals "$status" "1" "a plan save that hits the size limit fails"
	contains "$(cat "$d/xfsz.err")" "$d/victim.json: write failed: File too large" "the message says why"
	same "$d/cnn-f1.json" "$d/victim.json" "an interrupted plan save leaves the old file intact"
	( ulimit -f 1 && trap '' XFSZ &&
	  exec "$RANKSCOPE" run uniform "$mlp" -o "$d/victim.json" ) >/dev/null 2>"$d/xfsz.err"
	equals "$?" "1" "run -o that hits the size limit fails"
	same "$d/cnn-f1.json" "$d/victim.json" "an interrupted run -o leaves the old file intact"
	( ulimit -f 100 && trap '' XFSZ &&
	  exec "$RANKSCOPE" apply "$d/minimax.json" "$mlp" -o "$d/target.safetensors" ) >/dev/null 2>"$d/xfsz.err"
	equals "$?" "1" "an apply that hits the size limit fails"
	contains "$(cat "$d/xfsz.err")" "write failed" "the apply message says why"
	same "$d/target.before" "$d/target.safetensors" "an interrupted apply leaves the old output intact"
	no_temporaries "$d" "interrupted writes"
fi

finish
