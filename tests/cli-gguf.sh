#!/bin/sh
# cli-gguf.sh — GGUF files written by llama.cpp's own ggml library
# (tests/gguf-check.py through $GGML_BASE_LIB, the prebuilt ggml of the npm
# package @node-llama-cpp/linux-x64): every type rankscope decodes gives,
# value for value, what ggml's to_float gives (quantised weights and
# random block bytes with NaN and infinite scales), and so do the layers
# rs_layer_load gives (tests/test-gguf --dump); each quantised file's
# spectra equal numpy's SVD of ggml's dequantised matrices, and the F32
# file's equal those of its safetensors twin (1e-6 relative); info shows the
# metadata; a type rankscope lists but does not decode is no layer; apply
# writes F32 for the block-typed tensors it copies through; hostile files
# (tests/test-gguf --write-corpus) are refused with one line naming the
# file.  Without $GGML_BASE_LIB or numpy the ggml part is skipped.
. "$TESTS_SRCDIR/lib.sh"

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

bindir=$(dirname "$RANKSCOPE")
testgguf=$bindir/tests/test-gguf
d=$scratch/gguf
mkdir "$d"
skip() { echo "skipped: $*"; }

# ---- hostile files through the binary: one line naming the file ------------
mkdir "$d/hostile"
run 0 "$testgguf" --write-corpus "$d/hostile"
n=0
for f in "$d"/hostile/hostile-*; do
	n=$((n + 1))
	run 1 "$RANKSCOPE" info "$f"
	contains "$err" "$f: " "$(basename "$f"): names the file"
	equals "$(printf '%s\n' "$err" | wc -l)" 1 "$(basename "$f"): one line"
	equals "$out" "" "$(basename "$f"): no stdout"
done
check "hostile files written ($n)" [ "$n" -ge 30 ]
run 1 "$RANKSCOPE" info "$d/hostile/hostile-version-1"
contains "$err" "GGUF version 1 is too old" "version 1"
run 1 "$RANKSCOPE" info "$d/hostile/hostile-overlapping-tensors"
contains "$err" "tensors 'w' and 'norm': their data overlap" "overlap names the pair"
for f in "$d"/hostile/valid-*; do
	run 0 "$RANKSCOPE" info "$f"
	contains "$out" "2 layers" "$(basename "$f") opens"
done

# ---- files written by ggml ----------------------------------------------------
find_python numpy
if [ -z "${GGML_BASE_LIB:-}" ] || [ ! -f "$GGML_BASE_LIB" ]; then
	skip "no llama.cpp ggml library (GGML_BASE_LIB=${GGML_BASE_LIB:-unset}; bootstrap installs @node-llama-cpp/linux-x64)"
	finish
	exit $?
fi
if [ -z "$python" ]; then
	skip "no Python with numpy for the ggml writer"
	finish
	exit $?
fi

run 0 "$python" "$TESTS_SRCDIR/gguf-check.py" write "$GGML_BASE_LIB" "$d"
for t in $(cat "$d/types.txt"); do
	for f in "$t" "raw-$t"; do
		[ -f "$d/$f.gguf" ] || continue
		mkdir "$d/dump-$f"
		run 0 "$testgguf" --dump "$d/$f.gguf" "$d/dump-$f"
	done
	run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/$t.gguf"
	printf '%s\n' "$out" >"$d/$t.spectra.json"
done
py_checks "ggml's values" gguf-check.py compare "$GGML_BASE_LIB" "$d"

# the F32 network and its safetensors twin
checks=$((checks + 1))
run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/F32-twin.safetensors"
printf '%s\n' "$out" >"$d/twin.json"
"$python" - "$d/twin.json" "$d/F32.spectra.json" <<'EOF' || fail "F32 GGUF: spectra differ from the safetensors twin's"
import json, sys
# the same layers; safetensors lists them by name, GGUF in the file's order
a, b = (sorted(json.load(open(p))["layers"], key=lambda l: l["name"]) for p in sys.argv[1:3])
assert [l["name"] for l in a] == [l["name"] for l in b], ([l["name"] for l in a], [l["name"] for l in b])
for x, y in zip(a, b):
    assert x["shape"] == y["shape"] and x["rows"] == y["rows"] and x["cols"] == y["cols"], x["name"]
    assert len(x["sigma"]) == len(y["sigma"]) > 0, x["name"]
    for s, t in zip(x["sigma"], y["sigma"]):
        assert abs(s - t) <= 1e-6 * max(abs(s), abs(t), 1e-300) + 1e-12 * x["sigma"][0], (x["name"], s, t)
EOF

# info: layers, dtypes, metadata
run 0 "$RANKSCOPE" info "$d/Q4_K.gguf"
contains "$out" "3 layers" "Q4_K: three layers"
contains "$out" "blk.0.ffn_down.weight 48x512" "ne [512, 48] is 48 x 512"
run 0 "$RANKSCOPE" info --format json "$d/Q4_K.gguf"
contains "$out" '"format": "gguf"' "format"
contains "$out" '"general.architecture": "llama"' "general.architecture"
contains "$out" '"general.name": "rankscope test network"' "general.name"
contains "$out" '"general.file_type": "12"' "general.file_type"
contains "$out" '"tokenizer.ggml.tokens": "[array of 5 strings]"' "arrays summarised"
contains "$out" '"gguf.version": "3"' "version"
contains "$out" '"dtype": "Q4_K"' "dtype named as llama.cpp does"
contains "$out" '"output_norm.weight"' "the norm is listed"
run 0 "$RANKSCOPE" info --format json "$d/q8_1.gguf"
contains "$out" '"Q8_1"' "a Q8_1 tensor is listed"
contains "$out" '"not_a_layer"' "a Q8_1 tensor is no layer, with a reason"
run 0 "$RANKSCOPE" info "$d/q8_1.gguf"
contains "$out" "1 layers" "the Q8_1 tensor is no layer"

# ggml's writer with general.alignment = 64: rankscope opens it exactly
# when ggml's own reader does (this ggml pads the header to its default
# alignment regardless, so the data is not where the key says)
"$python" - "$GGML_BASE_LIB" "$d/align64.gguf" >"$d/align64.ggml" 2>/dev/null <<'EOF'
import ctypes, sys
L = ctypes.CDLL(sys.argv[1])
class P(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.POINTER(ctypes.c_void_p))]
L.gguf_init_from_file.restype = ctypes.c_void_p
L.gguf_init_from_file.argtypes = [ctypes.c_char_p, P]
ctx = ctypes.c_void_p()
print("loads" if L.gguf_init_from_file(sys.argv[2].encode(), P(False, ctypes.pointer(ctx))) else "refuses")
EOF
if [ "$(cat "$d/align64.ggml")" = loads ]; then
	run 0 "$RANKSCOPE" info "$d/align64.gguf"
else
	run 1 "$RANKSCOPE" info "$d/align64.gguf"
	contains "$err" "$d/align64.gguf: tensor 'blk.0.attn_q.weight'" "alignment 64: refused as ggml does"
fi

# apply: dense layers and the norm of a Q4_K file are written as F32 (the
# values ggml decodes); the result opens and has the same spectra
run 0 "$RANKSCOPE" run uniform --param keep=0.5 "$d/Q8_0.gguf" -o "$d/q8.plan.json"
run 0 "$RANKSCOPE" apply "$d/q8.plan.json" "$d/Q8_0.gguf" -o "$d/q8-applied.safetensors"
run 0 "$RANKSCOPE" info --format json "$d/q8-applied.safetensors"
lacks "$out" '"Q8_0"' "applied: no block type in safetensors"
run 0 "$RANKSCOPE" run uniform --param keep=1 "$d/Q4_K.gguf" -o "$d/q4.plan.json"
run 0 "$RANKSCOPE" apply "$d/q4.plan.json" "$d/Q4_K.gguf" -o "$d/q4-applied.safetensors"
checks=$((checks + 1))
"$python" - "$d/q4-applied.safetensors" "$d/ref/Q4_K" <<'EOF' || fail "apply: the copied-through tensors are not ggml's values as F32"
import json, os, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
seen = 0
for name, e in h.items():
    if name == "__metadata__":
        continue
    ref = os.path.join(sys.argv[2], name + ".npy")
    if not os.path.exists(ref):
        continue
    assert e["dtype"] == "F32", (name, e["dtype"])
    a, b = e["data_offsets"]
    got = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(e["shape"])
    want = np.load(ref)
    assert got.shape == want.shape and np.array_equal(got.view("<u4"), want.view("<u4")), name
    seen += 1
assert seen >= 1, seen
EOF
# a type rankscope cannot decode cannot be copied through as F32 either
run 0 "$RANKSCOPE" run uniform --param keep=0.5 "$d/q8_1.gguf" -o "$d/q81.plan.json"
run 1 "$RANKSCOPE" apply "$d/q81.plan.json" "$d/q8_1.gguf" -o "$d/q81-applied.safetensors"
contains "$err" "tensor 'blk.0.attn_q.weight': its type Q8_1 has no float values" "apply: Q8_1 refused"
check "apply: nothing written for Q8_1" [ ! -e "$d/q81-applied.safetensors" ]

finish
