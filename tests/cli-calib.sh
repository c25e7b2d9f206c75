#!/bin/sh
# cli-calib.sh — calibration: output-error figures and the whitened
# truncation of `info` and `spectra --calibration`, checked by
# tests/calibcheck.py against numpy on the real inputs X of each layer of
# the digits MLP and CNN (a forward pass of its own); samples/calibrate.py's
# Gram matrices against the same X; hostile calibration files.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy sklearn; then
	echo "skipped: no python3 with numpy and sklearn (the digits data)"
	exit 77
fi
d=$scratch/calib
mkdir "$d"
cc() { "$python" "$TESTS_SRCDIR/calibcheck.py" "$@"; }

for m in mlp cnn; do
	model=$SAMPLES/digits-$m.safetensors
	run 0 cc write "$model" "$d/$m.safetensors"
	run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/$m.safetensors" "$model"
	printf '%s\n' "$out" >"$d/$m-spectra.json"
	py_checks "$m spectra" calibcheck.py spectra "$model" "$d/$m-spectra.json"
	run 0 "$RANKSCOPE" info --format json --no-cache --calibration "$d/$m.safetensors" "$model"
	printf '%s\n' "$out" >"$d/$m-info.json"
	py_checks "$m info" calibcheck.py info "$model" "$d/$m-info.json" "$d/$m-spectra.json"
	contains "$out" '"sha256"' "$m info: the calibration file's digest"
	# the input vectors themselves: the same figures, G summed by rankscope
	run 0 cc write "$model" "$d/$m-inputs.safetensors" inputs
	run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/$m-inputs.safetensors" "$model"
	printf '%s\n' "$out" >"$d/$m-inputs-spectra.json"
	py_checks "$m spectra from inputs" calibcheck.py spectra "$model" "$d/$m-inputs-spectra.json"

	# the shipped helper: its Gram matrices are X^T X of the same inputs
	if "$python" -c 'import torch' 2>/dev/null; then
		run 0 "$python" "$SAMPLES/calibrate.py" --digits "$m" "$d/$m-torch.safetensors"
		py_checks "$m calibrate.py" calibcheck.py gram "$model" "$d/$m-torch.safetensors"
		run 0 "$python" "$SAMPLES/calibrate.py" --digits "$m" --diag "$d/$m-diag.safetensors"
		py_checks "$m calibrate.py --diag" calibcheck.py gram "$model" "$d/$m-diag.safetensors"
	else
		echo "skipped: samples/calibrate.py (no torch)"
	fi
done

# a strategy in the output norm: whitened ranks, the plan records the
# calibration, apply writes parts whose output error numpy measures on X
mlp=$SAMPLES/digits-mlp.safetensors
run 0 cc write "$mlp" "$d/diag.safetensors" diag
run 0 "$RANKSCOPE" run budget-minimax -q --no-cache -p budget=0.3 -C "$d/mlp.safetensors" \
	-o "$d/plan.json" "$mlp"
contains "$out" "worst err_out" "run: optimises the output error with calibration"
contains "$out" "r=54 whitened" "run: whitened ranks in the table"
contains "$(cat "$d/plan.json")" '"whitened": true' "plan: whitened entries"
contains "$(cat "$d/plan.json")" '"sha256"' "plan: the calibration's digest"
if "$python" -c 'import jsonschema' 2>/dev/null; then
	run 0 "$python" -c 'import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$d/plan.json" "$TESTS_SRCDIR/../man/rankscope-plan.schema.json"
fi
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp.safetensors" -o "$d/applied.safetensors" \
	"$d/plan.json" "$mlp"
printf '%s\n' "$out" >"$d/apply-out.txt"
contains "$out" "out meas" "apply: output error columns"
py_checks "applied" calibcheck.py applied "$mlp" "$d/plan.json" "$d/applied.safetensors"
# planned and measured on the samples themselves: the same plan, the same
# predicted and measured output errors as on their Gram matrices
run 0 "$RANKSCOPE" run budget-minimax -q --no-cache -p budget=0.3 \
	-C "$d/mlp-inputs.safetensors" -o "$d/plan-inputs.json" "$mlp"
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp-inputs.safetensors" \
	-o "$d/applied-inputs.safetensors" "$d/plan-inputs.json" "$mlp"
equals "$(printf '%s\n' "$out" | awk '$1 != "wrote" && $1 != "bytes"')" \
	"$(awk '$1 != "wrote" && $1 != "bytes"' "$d/apply-out.txt")" \
	"apply on the input vectors: what it predicts and measures on their Gram matrices"
run 0 "$RANKSCOPE" show --no-cache -C "$d/mlp.safetensors" "$d/plan.json" "$mlp"
contains "$out" "worst layer output error" "show: the output total"
run 1 "$RANKSCOPE" show --no-cache "$d/plan.json" "$mlp"
contains "$err" "made in the output norm" "show without the calibration: refused"
run 1 "$RANKSCOPE" apply --no-cache -C "$d/diag.safetensors" -o "$d/x.safetensors" \
	"$d/plan.json" "$mlp"
contains "$err" "not on this one" "apply with another calibration: refused"
[ ! -e "$d/x.safetensors" ] || fail "a refused apply wrote its output"
run 1 "$RANKSCOPE" run budget-minimax -q --no-cache -p error=out "$mlp"
contains "$err" "no calibration statistics" "error=out without calibration: refused"
# the weight-norm plan on the same budget, measured in the output norm
run 0 "$RANKSCOPE" run budget-minimax -q --no-cache -p budget=0.3 -p error=spec \
	-C "$d/mlp.safetensors" "$mlp"
contains "$out" "r=50" "error=spec: the weight-norm ranks"
lacks "$out" "whitened" "error=spec: plain truncations"

# pruning and quantisation in the output norm: a plan of every such method
# (the scored mask among them), applied, each layer rebuilt by
# samples/apply_plan.py and measured on X against the plan's prediction
cat >"$d/mixed.lua" <<'EOF'
return {
	name = "mixed",
	run = function(model, plan)
		local fc1, fc2, fc3 = model:layer("fc1.weight"), model:layer("fc2.weight"),
			model:layer("fc3.weight")
		plan:set(fc1, { method = "prune", sparsity = 0.6, scored = true })
		plan:set(fc2, { method = "quant", quantizer = "kmeans", bits = 3 })
		plan:set(fc3, { method = "prune-cols", sparsity = 0.25 })
		local a = fc1:out_prune_error(0.6, true)
		local b = fc1:out_prune_error(0.6)
		return string.format("scored %.6f magnitude %.6f", a, b)
	end,
}
EOF
run 0 "$RANKSCOPE" run -q --no-cache -C "$d/mlp.safetensors" -o "$d/mixed.json" "$d/mixed.lua" "$mlp"
contains "$out" "p=0.60 scored" "mixed: the scored mask in the table"
contains "$(cat "$d/mixed.json")" '"scored": true' "mixed: plan records the scored mask"
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp.safetensors" -o "$d/mixed.safetensors" \
	"$d/mixed.json" "$mlp"
if "$python" -c 'import torch' 2>/dev/null; then
	py_checks "mixed rebuilt" calibcheck.py rebuilt "$mlp" "$d/mixed.json" "$d/mixed.safetensors"
fi
# with diagonal statistics the scored mask is the optimum of its size
run 0 "$RANKSCOPE" run -q --no-cache -C "$d/diag.safetensors" "$d/mixed.lua" "$mlp"
printf '%s\n' "$out" | awk '/^scored/ { exit !($2 <= $4 + 1e-12) }' ||
	fail "diagonal G: the scored mask worse than magnitude: $out"

# NN-BCD refinement: a weight-norm plan of every refinable method, refined
# on the calibration (run refine --plan); no layer's output error rises,
# apply writes the refined parts, measured on X
cat >"$d/plain.lua" <<'EOF'
return {
	name = "plain",
	run = function(model, plan)
		plan:set(model:layer("fc1.weight"), { rank = 12 })
		plan:set(model:layer("fc2.weight"), { method = "prune", sparsity = 0.8 })
		plan:set(model:layer("fc3.weight"), { method = "quant", quantizer = "uniform-channel",
			bits = 2 })
		return "plain"
	end,
}
EOF
run 0 "$RANKSCOPE" run -q --no-cache -C "$d/mlp.safetensors" -o "$d/plain.json" "$d/plain.lua" "$mlp"
run 0 "$RANKSCOPE" run refine -q --no-cache -C "$d/mlp.safetensors" --plan "$d/plain.json" \
	-o "$d/refined.json" "$mlp"
contains "$out" "3 layers refined" "refine: every layer"
contains "$out" "r=12 refined" "refine: the table says so"
run 0 "$python" - "$d/plain.json" "$d/refined.json" <<'EOF'
import json, sys
a, b = (json.load(open(p))["layers"] for p in sys.argv[1:3])
for x, y in zip(a, b):
    assert y["refined"]["sweeps"] >= 1, y
    assert y["predicted"]["out_err"] <= x["predicted"]["out_err"] + 1e-12, (x, y)
    assert y["method"] == x["method"], (x, y)
EOF
if "$python" -c 'import jsonschema' 2>/dev/null; then
	run 0 "$python" -c 'import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' \
		"$d/refined.json" "$TESTS_SRCDIR/../man/rankscope-plan.schema.json"
fi
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp.safetensors" -o "$d/refined.safetensors" \
	"$d/refined.json" "$mlp"
if "$python" -c 'import torch' 2>/dev/null; then
	py_checks "refined rebuilt" calibcheck.py rebuilt "$mlp" "$d/refined.json" \
		"$d/refined.safetensors"
fi
run 0 "$RANKSCOPE" show --no-cache -C "$d/mlp.safetensors" "$d/refined.json" "$mlp"
contains "$out" "p=0.80 refined" "show: the refined entry read back"
run 1 "$RANKSCOPE" run refine -q --no-cache --plan "$d/plain.json" "$mlp"
contains "$err" "made in the output norm" "refine without the plan's calibration: refused"
run 0 "$RANKSCOPE" run -q --no-cache -o "$d/nocal.json" "$d/plain.lua" "$mlp"
run 1 "$RANKSCOPE" run refine -q --no-cache --plan "$d/nocal.json" "$mlp"
contains "$err" "needs calibration statistics" "refine without calibration: refused"

# the whitened tables are cached (keyed by W and G); a damaged table is
# recomputed, never served
run 0 "$RANKSCOPE" spectra --format json -C "$d/mlp.safetensors" "$mlp"
first=$out
ntables=$(find "$XDG_CACHE_HOME" -name '*.table' | wc -l)
equals "$ntables" 3 "cache: one whitened table per layer"
run 0 "$RANKSCOPE" spectra --format json -C "$d/mlp.safetensors" "$mlp"
equals "$out" "$first" "cache: a hit gives the same figures"
for t in $(find "$XDG_CACHE_HOME" -name '*.table'); do
	printf 'XXXXXXXX' | dd of="$t" bs=1 seek=200 conv=notrunc 2>/dev/null
done
run 0 "$RANKSCOPE" spectra --format json -C "$d/mlp.safetensors" "$mlp"
equals "$out" "$first" "cache: damaged tables are recomputed"
run 0 "$RANKSCOPE" spectra --format json -C "$d/diag.safetensors" "$mlp"
[ "$out" != "$first" ] || fail "cache: other statistics served the same tables"

# the solved methods: their output error measured on the parts at plan:set,
# equal to apply's measurement and to numpy's on X
cat >"$d/solved.lua" <<'EOF'
return {
	name = "solved",
	run = function(model, plan)
		local a = plan:set(model:layer("fc1.weight"),
			{ method = "lowrank+sparse", rank = 4, sparsity = 0.99 })
		local b = plan:set(model:layer("fc2.weight"), { method = "tt", d = 2, ranks = { 16 } })
		assert(a.out_err and b.out_err, "solved methods carry out_err")
		return "solved"
	end,
}
EOF
run 0 "$RANKSCOPE" run -q --no-cache -C "$d/mlp.safetensors" -o "$d/solved.json" "$d/solved.lua" "$mlp"
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp.safetensors" -o "$d/solved.safetensors" \
	"$d/solved.json" "$mlp"
contains "$out" "largest |measured - predicted|" "solved: applied"
if "$python" -c 'import torch' 2>/dev/null; then
	py_checks "solved rebuilt" calibcheck.py rebuilt "$mlp" "$d/solved.json" "$d/solved.safetensors"
fi
# low rank + sparse refined (both blocks alternating), the TT core by core
run 0 "$RANKSCOPE" run refine -q --no-cache -C "$d/mlp.safetensors" --plan "$d/solved.json" \
	-o "$d/solved-refined.json" "$mlp"
contains "$out" "2 layers refined" "refine: the combination and the TT refined"
contains "$(cat "$d/solved-refined.json")" '"method": "lowrank+sparse"' "refine: still low rank + sparse"
contains "$(cat "$d/solved-refined.json")" '"method": "tt"' "refine: still a TT"
run 0 "$RANKSCOPE" apply --no-cache -C "$d/mlp.safetensors" -o "$d/solved-refined.safetensors" \
	"$d/solved-refined.json" "$mlp"
if "$python" -c 'import torch' 2>/dev/null; then
	py_checks "refined L+S rebuilt" calibcheck.py rebuilt "$mlp" "$d/solved-refined.json" \
		"$d/solved-refined.safetensors"
fi
run 0 "$python" - "$d/solved.json" "$d/solved-refined.json" <<'EOF'
import json, sys
plans = [json.load(open(p))["layers"] for p in sys.argv[1:3]]
for a, b in zip(*plans):
    if a["method"] == "dense":
        continue
    assert b["refined"]["sweeps"] >= 1, b
    assert b["predicted"]["out_err"] < a["predicted"]["out_err"], (a, b)
EOF

# the weight-norm rules in the output norm: the same rule read in the
# output (energy of the output, LC's objective on the whitened curve) or
# the same choices made output-aware (whitened truncations, scored masks),
# against the rule in the weight norm
run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/mlp.safetensors" "$mlp"
printf '%s\n' "$out" >"$d/rule-spectra.json"
for rule in energy:energy:0.9 uniform:keep:0.2 threshold:threshold:0.1 \
	lc-rankselect:alpha:1e-4 global-prune:sparsity:0.8; do
	s=${rule%%:*} p=${rule#*:} v=${p#*:} p=${p%%:*}
	for e in out weight; do
		run 0 "$RANKSCOPE" run "$s" -q --no-cache -p "$p=$v" -p error=$e \
			-C "$d/mlp.safetensors" -o "$d/rule-$e.json" "$mlp"
	done
	py_checks "$s in the output norm" calibcheck.py rule "$d/rule-spectra.json" "$s" "$v" \
		"$d/rule-out.json" "$d/rule-weight.json"
done
run 0 "$RANKSCOPE" run energy -q --no-cache -C "$d/mlp.safetensors" "$mlp"
contains "$out" "of the output" "energy: auto is the output norm with calibration"
run 0 "$RANKSCOPE" run energy -q --no-cache "$mlp"
contains "$out" "worst err_F" "energy: auto is the weight norm without"
run 1 "$RANKSCOPE" run uniform -q --no-cache -p error=out "$mlp"
contains "$err" "has no calibration statistics" "uniform error=out without calibration: refused"

# budget-greedy in the output norm: optimal among the plans costing no more
# (every combination of whitened ranks enumerated from the spectra)
run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/mlp.safetensors" "$mlp"
printf '%s\n' "$out" >"$d/greedy-spectra.json"
for b in 0.05 0.2; do
	run 0 "$RANKSCOPE" run budget-greedy -q --no-cache -p budget=$b -C "$d/mlp.safetensors" \
		-o "$d/greedy.json" "$mlp"
	contains "$out" "squared err_out" "greedy $b: in the output norm"
	py_checks "greedy $b" calibcheck.py greedy "$d/greedy-spectra.json" "$d/greedy.json"
done

# the table: which norm, and the output columns
run 0 "$RANKSCOPE" info --no-cache -C "$d/mlp.safetensors" "$SAMPLES/digits-mlp.safetensors"
contains "$out" "o99" "table: output-rank column"
contains "$out" "out@r99" "table: output error at r99"
contains "$out" "calibration $d/mlp.safetensors" "table names the calibration file"
run 0 "$RANKSCOPE" spectra --no-cache -C "$d/mlp.safetensors" "$SAMPLES/digits-mlp.safetensors"
contains "$out" "whitened_out_err" "csv: whitened columns"

# diagonal statistics: marked as an estimate; out_err in their norm
run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/diag.safetensors" "$mlp"
printf '%s\n' "$out" >"$d/diag-spectra.json"
py_checks "diag spectra" calibcheck.py diagspectra "$mlp" "$d/diag-spectra.json" diag
# ASVD's mean |x|: the diagonal N mean|x_j|^2
run 0 cc write "$mlp" "$d/meanabs.safetensors" meanabs
run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$d/meanabs.safetensors" "$mlp"
printf '%s\n' "$out" >"$d/meanabs-spectra.json"
py_checks "mean_abs spectra" calibcheck.py diagspectra "$mlp" "$d/meanabs-spectra.json" meanabs
run 0 "$RANKSCOPE" info --no-cache -C "$d/diag.safetensors" "$SAMPLES/digits-mlp.safetensors"
contains "$out" "~" "diag: estimate marked"
contains "$out" "diagonal statistics, an estimate" "diag: legend"

# hostile calibration files: a message naming the file, the tensor, the problem
run 0 cc hostile "$SAMPLES/digits-mlp.safetensors" "$d"
expect_refusal() {
	run 1 "$RANKSCOPE" info --no-cache -C "$d/$1.safetensors" "$mlp"
	contains "$err" "$d/$1.safetensors" "$1: names the file"
	contains "$err" "$2" "$1: says why"
	[ "$1" = no-match ] || contains "$err" "tensor 'fc1." "$1: names the tensor"
}
expect_refusal wrong-size "has 64 inputs, so its Gram matrix is 64 x 64"
expect_refusal vector-gram "64 x 64, not of shape 64"
expect_refusal not-symmetric "not symmetric"
expect_refusal not-psd "not positive semi-definite"
expect_refusal nan "must be finite"
expect_refusal negative-diag "is -1: a sum of squares"
expect_refusal bad-count "a count is one number"
expect_refusal negative-count "is not a count"
expect_refusal integer-gram "not a number type"
expect_refusal inputs-width "its input vectors are (samples, 64)"
expect_refusal inputs-nan "sample 1, input 6 is nan: inputs must be finite"
expect_refusal no-match "no statistics for any of the 3 layers"
run 0 "$RANKSCOPE" info --no-cache -C "$d/extra.safetensors" "$mlp"
contains "$err" "1 tensor belongs to no layer, e.g. 'decoder.gram'" "extra: warned"
head -c 100 "$d/mlp.safetensors" >"$d/truncated.safetensors"
run 1 "$RANKSCOPE" info --no-cache -C "$d/truncated.safetensors" "$mlp"
contains "$err" "calibration file: " "truncated: says it is the calibration file"
run 1 "$RANKSCOPE" info --no-cache -C "$d/absent.safetensors" "$mlp"
contains "$err" "absent.safetensors" "absent: named"
# a conv layer read under another fold has no unfolded-patch columns
run 1 "$RANKSCOPE" info --no-cache --fold 1 -C "$d/cnn.safetensors" "$SAMPLES/digits-cnn.safetensors"
contains "$err" "need fold scheme 0" "fold 1: refused"

finish
