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
contains "$out" "out meas" "apply: output error columns"
py_checks "applied" calibcheck.py applied "$mlp" "$d/plan.json" "$d/applied.safetensors"
run 0 "$RANKSCOPE" show --no-cache -C "$d/mlp.safetensors" "$d/plan.json" "$mlp"
contains "$out" "worst layer output error" "show: the output total"
run 1 "$RANKSCOPE" show --no-cache "$d/plan.json" "$mlp"
contains "$err" "made in the output norm" "show without the calibration: refused"
run 0 cc write "$mlp" "$d/diag.safetensors" diag
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

# the table: which norm, and the output columns
run 0 "$RANKSCOPE" info --no-cache -C "$d/mlp.safetensors" "$SAMPLES/digits-mlp.safetensors"
contains "$out" "o99" "table: output-rank column"
contains "$out" "out@r99" "table: output error at r99"
contains "$out" "calibration $d/mlp.safetensors" "table names the calibration file"
run 0 "$RANKSCOPE" spectra --no-cache -C "$d/mlp.safetensors" "$SAMPLES/digits-mlp.safetensors"
contains "$out" "whitened_out_err" "csv: whitened columns"

# diagonal statistics: marked as an estimate
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
