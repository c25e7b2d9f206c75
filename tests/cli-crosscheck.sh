#!/bin/sh
# cli-crosscheck.sh — rankscope's spectra and figures against numpy's
# LAPACK on every sample model and every fold scheme (tests/crosscheck.py).
# Skipped (77) only where no Python with numpy exists.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy; then
	echo "no python3 with numpy: skipped"
	exit 77
fi

for model in digits-mlp digits-lorita; do
	run 0 "$python" "$TESTS_SRCDIR/crosscheck.py" "$RANKSCOPE" "$SAMPLES/$model.safetensors" 0
	contains "$out" "0 failed" "$model: $err"
done
# LoRITa's factors composed: each layer is the product W3 W2 W1
run 0 "$python" "$TESTS_SRCDIR/crosscheck.py" "$RANKSCOPE" "$SAMPLES/digits-lorita.safetensors" 0 \
	'fc*.factors.#.weight'
contains "$out" "0 failed" "lorita composed: $err"
contains "$out" "checks" "lorita composed: $err"
for fold in 0 1 2 3; do
	run 0 "$python" "$TESTS_SRCDIR/crosscheck.py" "$RANKSCOPE" "$SAMPLES/digits-cnn.safetensors" $fold
	contains "$out" "0 failed" "cnn fold $fold: $err"
done
finish
