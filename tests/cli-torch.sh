#!/bin/sh
# cli-torch.sh — PyTorch checkpoints (io-torch.c) through the binary.
# Checkpoints written by torch.save itself (tests/make-torch.py): a
# state_dict, the same with pickle protocol 4, a checkpoint dict with an
# optimizer, a wrapped state_dict and a copy zipped with deflate give the
# same layers, shapes and singular values as their safetensors twin, in
# the state_dict's order, with the int64 counter among the other tensors;
# the checkpoint's epoch is metadata and its optimizer is said to be
# skipped; a pickled module and a legacy (pre-zip) checkpoint are refused
# with their messages; a plan made on a checkpoint applies to it.  Broken
# checkpoints (hostile/, one fault each) each give one error line naming
# the file.  Without torch (or numpy) the test is skipped.  The fuzz
# corpus (tests/fuzz/corpus/torch) is replayed by tests/fuzz/replay.sh.
. "$TESTS_SRCDIR/lib.sh"

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

d=$scratch/torch
mkdir "$d"
find_python torch numpy
skip() { echo "skipped: $*"; }

if [ -z "$python" ]; then
	skip "no python3 with torch and numpy: the torch.save checkpoints"
	exit 0
fi

# same_layers A.json B.json WHAT: the same set of layers (by name), each
# with the same shape and sigma (1e-6 relative).
same_layers() {
	checks=$((checks + 1))
	"$python" - "$1" "$2" <<'EOF' || fail "$3: spectra differ"
import json, sys
a, b = ({l["name"]: l for l in json.load(open(p))["layers"]} for p in sys.argv[1:3])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for name, x in a.items():
    y = b[name]
    assert x["shape"] == y["shape"] and x["rows"] == y["rows"] and x["cols"] == y["cols"], name
    assert len(x["sigma"]) == len(y["sigma"]) > 0, name
    for s, t in zip(x["sigma"], y["sigma"]):
        assert abs(s - t) <= 1e-6 * max(abs(s), abs(t), 1e-300) + 1e-12 * x["sigma"][0], (name, s, t)
EOF
}

# info_checks INFO.json WHAT: format "torch", the int64 counter among the
# other tensors, layers in the order of order.txt (the state_dict's).
info_checks() {
	checks=$((checks + 1))
	"$python" - "$1" "$d/order.txt" <<'EOF' || fail "$2: info"
import json, sys
info = json.load(open(sys.argv[1]))
order = open(sys.argv[2]).read().split()
assert info["model"]["format"] == "torch", info["model"]["format"]
others = {o["name"]: o for o in info["other_tensors"]}
assert others["bn.num_batches_tracked"]["dtype"] == "I64", others
layers = [l["name"] for l in info["layers"]]
assert len(layers) == 11, layers
assert layers == [n for n in order if n in layers], (layers, order)
assert info["model"]["tensors"] == len(order), (info["model"]["tensors"], len(order))
EOF
}

# one_error FILE NEEDLE: refused with exit 1, one line on stderr naming
# the file and holding NEEDLE, nothing on stdout.
one_error() {
	run 1 "$RANKSCOPE" info "$1"
	contains "$err" "rankscope: $1: " "$(basename "$1"): the message names the file"
	contains "$err" "$2" "$(basename "$1")"
	equals "$(printf '%s\n' "$err" | wc -l | tr -d ' ')" 1 "$(basename "$1"): one line"
	equals "$out" "" "$(basename "$1"): no stdout"
}

run 0 "$python" "$TESTS_SRCDIR/make-torch.py" "$d"
run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/twin.safetensors"
printf '%s\n' "$out" >"$d/twin.json"
for m in model.pt model-p4.pt ckpt.pt wrapped.pt deflated.pt; do
	run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/$m"
	printf '%s\n' "$out" >"$d/$m.json"
	same_layers "$d/twin.json" "$d/$m.json" "$m against its safetensors twin"
	run 0 "$RANKSCOPE" info --format json "$d/$m"
	printf '%s\n' "$out" >"$d/$m.info.json"
	info_checks "$d/$m.info.json" "$m"
done

# what the checkpoint dicts say about themselves
meta() {
	"$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['model']['metadata'].get(sys.argv[2], '-'))" "$1" "$2"
}
equals "$(meta "$d/ckpt.pt.info.json" epoch)" 3 "ckpt.pt: the epoch is metadata"
equals "$(meta "$d/ckpt.pt.info.json" rankscope.state_dict)" model "ckpt.pt: the weights under 'model'"
contains "$(meta "$d/ckpt.pt.info.json" rankscope.skipped)" "optimizer (" "ckpt.pt: the optimizer was skipped"
contains "$(meta "$d/ckpt.pt.info.json" rankscope.skipped)" "optimizer state, not model weights" \
	"ckpt.pt: why the optimizer was skipped"
equals "$(meta "$d/wrapped.pt.info.json" rankscope.state_dict)" state_dict "wrapped.pt: under 'state_dict'"
equals "$(meta "$d/model.pt.info.json" rankscope.skipped)" - "model.pt: nothing skipped"
equals "$(meta "$d/model.pt.info.json" rankscope.archive_version)" 3 "model.pt: archive version"

# the table view names every layer, the tied names included
run 0 "$RANKSCOPE" info "$d/model.pt"
contains "$out" "11 layers" "model.pt: eleven layers"
contains "$out" "head.weight" "model.pt: a second name for one tensor"
contains "$out" "transposed  9x6" "model.pt: the transposed view in its own shape"

# refusals with their messages
one_error "$d/module.pt" "data.pkl refers to torch.nn.modules.container.Sequential: a pickled module, not a state_dict; rankscope opens state dicts (save model.state_dict())"
one_error "$d/legacy.pt" "not a weight file rankscope reads: looks like a legacy PyTorch checkpoint"
contains "$err" "torch.save(torch.load(F), F2)" "legacy.pt: how to convert it"

# a plan made on a checkpoint applies to it; the result opens
for m in model.pt deflated.pt; do
	run 0 "$RANKSCOPE" run uniform --param keep=0.5 "$d/$m" -o "$d/$m.plan.json"
	run 0 "$RANKSCOPE" apply "$d/$m.plan.json" "$d/$m" -o "$d/$m.out.safetensors"
	contains "$out" "wrote $d/$m.out.safetensors" "$m: apply wrote the model"
	run 0 "$RANKSCOPE" info --format json "$d/$m.out.safetensors"
	contains "$out" '"bn.num_batches_tracked"' "$m: apply keeps the non-layer tensors"
	contains "$out" '"format": "safetensors"' "$m: apply writes safetensors"
done
run 0 "$RANKSCOPE" show "$d/model.pt.plan.json" "$d/ckpt.pt"
contains "$out" "conv.weight" "a plan made on model.pt shows on ckpt.pt"

# ---- broken checkpoints -----------------------------------------------------
h=$d/hostile
tab=$(printf '\t')
while IFS="$tab" read -r f want; do
	one_error "$h/$f" "$want"
done <"$h/expected.txt"
check "every hostile case ran" [ "$(wc -l <"$h/expected.txt")" -ge 25 ]

finish
