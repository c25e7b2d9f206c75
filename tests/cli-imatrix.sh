#!/bin/sh
# cli-imatrix.sh — llama.cpp importance matrices as calibration files
# (--calibration): the GGUF imatrix written by ggml's own gguf_* functions
# and the legacy imatrix.dat written from its definition
# (tests/imatrixcheck.py), on a network with llama.cpp's names and a stack
# of experts; `info` and `spectra` figures against numpy's for the
# diagonal each file gives; hostile files of both kinds, and a small .dat
# cut after every byte.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy; then
	echo "skipped: no python3 with numpy"
	exit 77
fi
if [ ! -f "${GGML_BASE_LIB:-}" ]; then
	echo "skipped: no ggml library (GGML_BASE_LIB; ./bootstrap installs it)"
	exit 77
fi
d=$scratch/imatrix
mkdir "$d"
ic() { "$python" "$TESTS_SRCDIR/imatrixcheck.py" "$@"; }
model=$d/model.safetensors

run 0 ic write "$GGML_BASE_LIB" "$d"
for kind in gguf dat; do
	cal=$d/imatrix.$kind
	run 0 "$RANKSCOPE" info --format json --no-cache -C "$cal" "$model"
	printf '%s\n' "$out" >"$d/$kind-info.json"
	lacks "$err" "belong" "$kind: every statistics tensor belongs to a layer"
	run 0 "$RANKSCOPE" spectra --format json --no-cache -C "$cal" "$model"
	printf '%s\n' "$out" >"$d/$kind-spectra.json"
	py_checks "$kind" imatrixcheck.py check "$kind" "$GGML_BASE_LIB" "$d" \
		"$d/$kind-info.json" "$d/$kind-spectra.json"
	run 0 "$RANKSCOPE" info --no-cache -C "$cal" "$model"
	contains "$out" "diagonal statistics, an estimate" "$kind: marked as an estimate"
	contains "$out" "calibration $cal" "$kind: the table names the file"
done
# the same file under another name: recognised by its content
cp "$d/imatrix.dat" "$d/renamed.safetensors"
run 0 "$RANKSCOPE" info --format json --no-cache -C "$d/renamed.safetensors" "$model"
contains "$out" '"statistics": "diag"' "a renamed .dat is still read as one"
# a plan made in the output norm (the embedding, which takes no
# statistics, left out) records the imatrix's digest
run 0 "$RANKSCOPE" run budget-minimax -q --no-cache -x 'token_embd*' -p budget=0.5 \
	-C "$d/imatrix.dat" -o "$d/plan.json" "$model"
contains "$out" "whitened" "plan: whitened truncations on the imatrix"
contains "$(cat "$d/plan.json")" '"sha256"' "plan: the imatrix's digest"
run 1 "$RANKSCOPE" show --no-cache -x 'token_embd*' -C "$d/imatrix.gguf" "$d/plan.json" \
	"$model"
contains "$err" "not on this one" "plan: refused with the other imatrix"

# hostile files: a message naming the file and what is wrong
run 0 ic hostile "$GGML_BASE_LIB" "$d"
refused() {
	run 1 "$RANKSCOPE" info --no-cache -C "$d/$1" "$model"
	contains "$err" "$d/$1" "$1: names the file"
	contains "$err" "$2" "$1: says why"
	lacks "$err" "$(printf '\033')" "$1: no raw escape byte"
}
refused huge-entries.dat "entry count 2147483647 cannot fit in the file's"
refused lying-name.dat "entry 1 of 1: the name takes 4000 bytes but the file has only"
refused lying-nval.dat "('blk.0.attn_q.weight'): 1000 values take 4000 bytes"
refused huge-nval.dat "2147483647 values take"
refused negative-nval.dat "value count -5"
refused zero-ncall.dat "call count 0"
refused negative-value.dat "value 2 is -1: an importance"
refused nan-value.dat "value 1 is nan"
refused inf-value.dat "value 0 is inf"
refused nul-in-name.dat "the name has a NUL byte at offset 3"
refused duplicate.dat "two entries are named 'blk.0.attn_q.weight' (entries 1 and 2)"
refused trailing-bytes.dat "3 bytes after the last entry"
refused after-dataset.dat "3 bytes after the dataset name"
refused lying-dataset.dat "the dataset name takes 99 bytes but the file has only 3 left"
refused wrong-nval.dat "tensor 'blk.0.attn_q.weight.diag': layer 'blk.0.attn_q.weight' has 4 inputs, so its diagonal has 4 values, not shape (5)"
refused no-match.dat "no statistics for any of the"
refused two-experts.dat "has rows for 2 experts of the stack 'blk.0.ffn_up_exps.weight', none for layer 'blk.0.ffn_up_exps.weight.2' (expert 2)"
refused ragged-experts.dat "has 16 inputs, so the stack's statistics are rows of 16 values"
refused gguf-wrong-width.gguf "tensor 'blk.0.attn_q.weight.in_sum2': layer 'blk.0.attn_q.weight' has 4 inputs"
refused gguf-counts.gguf "tensor 'blk.0.ffn_up_exps.weight.counts': 2 counts for the statistics of 3 experts"
refused gguf-negative-count.gguf "count -1 is not a count"
refused gguf-nan.gguf "tensor 'blk.0.attn_q.weight.in_sum2': value 0 is nan"
refused gguf-negative.gguf "value 2 is -2: a sum of squares"
for f in extra.dat escape-name.dat gguf-extra.gguf; do
	run 0 "$RANKSCOPE" info --no-cache -C "$d/$f" "$model"
	contains "$err" "1 tensor belongs to no layer" "$f: warned"
	lacks "$err" "$(printf '\033')" "$f: no raw escape byte"
done
contains "$err" "e.g. 'blk.7.stray.weight.in_sum2'" "gguf-extra: the stray tensor named"
run 0 "$RANKSCOPE" info --no-cache -C "$d/escape-name.dat" "$model"
contains "$err" "blk.9.\\x1b[31mred.diag" "escape-name: the name escaped"

# a small .dat cut after every byte: refused with a message (or, cut right
# after the last entry, read as the first writers' files were), no crash
while read -r n want; do
	run "$want" "$RANKSCOPE" info --no-cache -C "$d/trunc/$n.dat" "$model"
	[ "$want" -eq 0 ] && continue
	contains "$err" "$d/trunc/$n.dat" "cut after $n bytes: names the file"
	case "$err" in
	*"calibration file: "*) ;;
	*) fail "cut after $n bytes: says it is the calibration file: $err" ;;
	esac
done <"$d/trunc/list"
finish
