#!/bin/sh
# decompositions.sh — the table in samples/README: on the sample CNN and
# the LoRITa MLP, each decomposition strategy at a few budgets, applied,
# and evaluated by apply_plan.py.  One row per plan: the params ratio the
# plan predicts, its worst relative errors, and the test accuracy.
#
#   sh samples/decompositions.sh [RANKSCOPE]
#
# RANKSCOPE defaults to the rankscope on PATH.  Needs Debian's
# python3-torch, python3-sklearn and python3-numpy for apply_plan.py
# (rankscope itself never needs Python).
set -euf    # -f: the compose pattern is a word, never a file glob
rankscope=${1:-rankscope}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/rankscope-table-XXXXXX")
trap 'rm -rf "$work"' EXIT

# row MODEL LABEL STRATEGY [ARGS...]: one table row.
row() {
	model=$1 label=$2
	shift 2
	"$rankscope" run -q "$@" "$here/$model" -o "$work/plan.json" >"$work/run.out"
	"$rankscope" apply -q "$work/plan.json" "$here/$model" -o "$work/out.safetensors" \
		>"$work/apply.out"
	acc=$("$python" "$here/apply_plan.py" "$work/out.safetensors" | sed -n 's/^accuracy *//p')
	"$python" - "$work/plan.json" "$label" "$acc" <<'EOF'
import json, sys
plan = json.load(open(sys.argv[1]))
t = plan["totals"]
print(f"{sys.argv[2]:<34} {t['ratio']:6.2f}x  {t['max_rel_fro']:6.3f}  "
      f"{t['max_rel_spec']:6.3f}  {sys.argv[3]}")
EOF
}

header() {
	printf '%s\n%-34s %7s  %6s  %6s  %s\n' "$1" "plan" "params" "err_F" "err_2" "accuracy"
}

header "digits-cnn (test accuracy 0.9722 dense)"
for b in 0.5 0.3 0.2; do
	row digits-cnn.safetensors "svd budget-minimax $b" budget-minimax --param budget=$b
	row digits-cnn.safetensors "alds $b" alds --param budget=$b
	row digits-cnn.safetensors "tucker-search $b" tucker-search --param budget=$b
done
echo
header "digits-lorita, composed (test accuracy 0.9722 dense)"
compose="--compose fc*.factors.#.weight"
for b in 0.1 0.05 0.03; do
	# shellcheck disable=SC2086 # the pattern is passed as one word; no file matches it
	row digits-lorita.safetensors "svd budget-minimax $b" $compose budget-minimax --param budget=$b
	# shellcheck disable=SC2086
	row digits-lorita.safetensors "alds $b" $compose alds --param budget=$b
done
for t in 0.01 0.05 0.1; do
	# shellcheck disable=SC2086
	row digits-lorita.safetensors "lorita threshold $t" $compose lorita --param threshold=$t
done
