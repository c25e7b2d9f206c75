#!/bin/sh
# calibration.sh — the calibration table in samples/README: on the sample
# MLP and CNN, each budget strategy in the output norm (with the shipped
# calibration files, made by calibrate.py on the 1437 training images)
# against the same strategy in the weight norm at the same budget, applied
# and evaluated on the 360 test images by apply_plan.py.
#
#   sh samples/calibration.sh [RANKSCOPE]
#
# RANKSCOPE defaults to the rankscope on PATH.  Needs Debian's
# python3-torch, python3-sklearn and python3-numpy for apply_plan.py.
set -eu
rankscope=${1:-rankscope}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/rankscope-calib-XXXXXX")
trap 'rm -rf "$work"' EXIT

# row NET STRATEGY BUDGET ERROR: one table row (params or bits kept, the
# worst layer output error the plan predicts, test accuracy).
row() {
	net=$1 strategy=$2 budget=$3 error=$4
	model=$here/digits-$net.safetensors calib=$here/digits-$net.calib.safetensors
	"$rankscope" run -q --no-cache -C "$calib" "$strategy" -p budget="$budget" \
		-p error="$error" -o "$work/plan.json" "$model" >/dev/null
	"$rankscope" apply -q --no-cache -C "$calib" "$work/plan.json" "$model" \
		-o "$work/out.safetensors" >/dev/null
	acc=$("$python" "$here/apply_plan.py" "$work/out.safetensors" | sed -n 's/^accuracy *//p')
	"$python" - "$work/plan.json" "$net $strategy $budget" "$error" "$acc" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(f"    {sys.argv[2]:<28} {sys.argv[3]:<5} {t['ratio']:7.2f}x {t['bits_ratio']:7.2f}x "
      f"{t['max_out_err']:8.3f}  {sys.argv[4]}")
PY
}

echo "    plan                         error  params    bits  err_out  accuracy"
for net in mlp cnn; do
	for budget in 0.1 0.05 0.03; do
		row "$net" budget-minimax "$budget" out
		row "$net" budget-minimax "$budget" spec
	done
	for budget in 0.05 0.03 0.02; do
		row "$net" lc-combination "$budget" out
		row "$net" lc-combination "$budget" fro
	done
done
