#!/bin/sh
# cli-formats.sh — which files open: NumPy .npy/.npz written by numpy itself
# (tests/make-npz.py) give the same layers, shapes and singular values as
# their safetensors twin (Fortran order and float16 included); a plan made
# on an .npz applies to it and writes a safetensors that opens; every file
# rankscope does not read is refused with "not a weight file rankscope
# reads: looks like ..." and the list of formats it reads.  A case whose
# writer (numpy, onnx, torch, h5py) is missing is skipped with a message;
# without numpy the npz part is skipped, not the whole test.
. "$TESTS_SRCDIR/lib.sh"

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

d=$scratch/formats
mkdir "$d"
find_python numpy
has() { [ -n "$python" ] && "$python" -c "import $1" 2>/dev/null; }
skip() { echo "skipped: $*"; }

# same_spectra A.json B.json WHAT: the same layers, shapes, sigma (1e-6 rel).
same_spectra() {
	checks=$((checks + 1))
	"$python" - "$1" "$2" <<'EOF' || fail "$3: spectra differ"
import json, sys
a, b = (json.load(open(p))["layers"] for p in sys.argv[1:3])
assert [l["name"] for l in a] == [l["name"] for l in b], ([l["name"] for l in a], [l["name"] for l in b])
for x, y in zip(a, b):
    assert x["shape"] == y["shape"] and x["rows"] == y["rows"] and x["cols"] == y["cols"], x["name"]
    assert len(x["sigma"]) == len(y["sigma"]) > 0, x["name"]
    for s, t in zip(x["sigma"], y["sigma"]):
        assert abs(s - t) <= 1e-6 * max(abs(s), abs(t), 1e-300) + 1e-12 * x["sigma"][0], (x["name"], s, t)
EOF
}

# looks_like FILE WHAT: refused, naming the file, what it looks like and
# the formats read.
looks_like() {
	run 1 "$RANKSCOPE" info "$1"
	contains "$err" "$1: not a weight file rankscope reads: looks like $2" "$2"
	contains "$err" "rankscope reads safetensors, NumPy .npy, NumPy .npz" "$2: formats listed"
	equals "$out" "" "$2: no stdout"
}

# ---- npy / npz against the safetensors twin ---------------------------------
if [ -n "$python" ]; then
	run 0 "$python" "$TESTS_SRCDIR/make-npz.py" "$d"
	run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/model.safetensors"
	printf '%s\n' "$out" >"$d/twin.json"
	for m in model.npz model-z.npz; do
		run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/$m"
		printf '%s\n' "$out" >"$d/$m.json"
		same_spectra "$d/twin.json" "$d/$m.json" "$m"
		run 0 "$RANKSCOPE" info --format json "$d/$m"
		contains "$out" '"step"' "$m: the int64 tensor is listed"
	done
	run 0 "$RANKSCOPE" info "$d/model.npz"
	contains "$out" "4 layers" "npz: four layers"
	contains "$out" "fort  " "npz: the Fortran-order layer"
	for n in dense fort half conv; do
		run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/npy/$n.npy"
		printf '%s\n' "$out" >"$d/$n.json"
		"$python" -c "
import json, sys
t = json.load(open('$d/twin.json')); t['layers'] = [l for l in t['layers'] if l['name'] == '$n']
json.dump(t, open('$d/$n-twin.json', 'w'))"
		same_spectra "$d/$n-twin.json" "$d/$n.json" "$n.npy"
	done
	run 0 "$RANKSCOPE" info "$d/v2.npy"
	contains "$out" "v2 " "format 2.0 npy opens"
	run 0 "$RANKSCOPE" info "$d/npy/step.npy"
	contains "$out" "0 layers" "an int64 npy is a tensor, not a layer"

	# a plan made on the npz applies to it; the result opens
	for m in model.npz model-z.npz; do
		run 0 "$RANKSCOPE" run uniform --param keep=0.5 "$d/$m" -o "$d/$m.plan.json"
		run 0 "$RANKSCOPE" apply "$d/$m.plan.json" "$d/$m" -o "$d/$m.out.safetensors"
		run 0 "$RANKSCOPE" info --format json "$d/$m.out.safetensors"
		contains "$out" '"step"' "$m: apply keeps the non-layer tensor"
	done
	run 0 "$RANKSCOPE" show "$d/model.npz.plan.json" "$d/model-z.npz"
	contains "$out" "dense" "a plan made on model.npz shows on model-z.npz"

	# the CLI messages of broken npy / npz files
	"$python" - "$d" <<'EOF'
import io, sys, zipfile, numpy as np
d = sys.argv[1]
buf = io.BytesIO(); np.save(buf, np.zeros((4, 4), "<f4")); good = buf.getvalue()
open(d + "/cut.npy", "wb").write(good[:-5])
open(d + "/bool.npy", "wb").write(good.replace(b"'<f4'", b"'|b1'").replace(b"(4, 4)", b"(4,16)"))
open(d + "/big.npy", "wb").write(good.replace(b"'<f4'", b"'>f4'"))
open(d + "/obj.npy", "wb").write(good.replace(b"'<f4'", b"'|O8'"))
open(d + "/shape.npy", "wb").write(good.replace(b"(4, 4)", b"(4, 5)"))
with zipfile.ZipFile(d + "/junk.npz", "w") as z:
    z.writestr("w.npy", good); z.writestr("notes.txt", "hi")
with zipfile.ZipFile(d + "/zip64.npz", "w") as z:
    with z.open("w.npy", "w", force_zip64=True) as f: f.write(good)
EOF
	run 0 "$RANKSCOPE" info "$d/zip64.npz"
	contains "$out" "1 layers" "a zip64 npz opens"
	run 1 "$RANKSCOPE" info "$d/cut.npy"
	contains "$err" "cut.npy: tensor 'cut': 16 elements of '<f4' need 64 bytes but only 59" "truncated npy"
	run 0 "$RANKSCOPE" info "$d/bool.npy"
	contains "$out" "0 layers" "a bool npy is a tensor, not a layer"
	run 1 "$RANKSCOPE" info "$d/big.npy"
	contains "$err" "tensor 'big': big-endian dtype '>f4' is not read" "big-endian npy"
	run 1 "$RANKSCOPE" info "$d/obj.npy"
	contains "$err" "tensor 'obj': dtype '|O8' is an array of Python objects" "object npy"
	run 1 "$RANKSCOPE" info "$d/shape.npy"
	contains "$err" "tensor 'shape': 20 elements of '<f4' need 80 bytes but only 64" "lying shape"
	looks_like "$d/junk.npz" "a zip archive that is not an .npz"
else
	skip "no python3 with numpy: the npy/npz comparisons"
fi

# ---- files rankscope does not read ------------------------------------------
: >"$d/empty.bin"
looks_like "$d/empty.bin" "an empty file"
printf 'hello, weights\n' >"$d/notes.txt"
looks_like "$d/notes.txt" "text"
printf '{"a": [1, 2]}\n' >"$d/conf.safetensors"
looks_like "$d/conf.safetensors" "JSON text"
gzip -c "$d/notes.txt" >"$d/notes.gz"
looks_like "$d/notes.gz" "a gzip-compressed file"
if [ -n "$python" ]; then
	"$python" - "$d" <<'EOF'
import pickle, sys, tarfile, zipfile
d = sys.argv[1]
with zipfile.ZipFile(d + "/plain.zip", "w") as z: z.writestr("readme.txt", "x")
pickle.dump({"w": [1.0, 2.0]}, open(d + "/obj.pkl", "wb"), protocol=4)
with tarfile.open(d + "/a.tar", "w") as t: t.add(d + "/notes.txt", arcname="notes.txt")
EOF
	looks_like "$d/plain.zip" "a zip archive that is not an .npz"
	looks_like "$d/obj.pkl" "a Python pickle"
	looks_like "$d/a.tar" "a tar archive"
else
	skip "no python3: zip, pickle and tar cases"
fi
# torch.save before 1.6 wrote a bare pickle: refused, naming the conversion
# (the zip format's reader has its own test, cli-torch.sh)
if has torch; then
	"$python" -c "import torch
torch.save({'w': torch.zeros(2, 2)}, '$d/old.pt', _use_new_zipfile_serialization=False)"
	looks_like "$d/old.pt" "a legacy PyTorch checkpoint (torch.save before 1.6"
	contains "$err" "torch.save(torch.load(F), F2)" "legacy: the conversion named"
else
	skip "no python3-torch: the legacy torch.save case"
fi
if has h5py; then
	"$python" -c "import h5py; h5py.File('$d/w.h5', 'w').create_dataset('w', data=[1.0])"
	looks_like "$d/w.h5" "an HDF5 file"
else
	skip "no python3-h5py: the HDF5 case"
fi
# unknown binary whose first bytes are no sane safetensors length
printf '\377\377\377\377\377\377\377\377\001\002' >"$d/noise.bin"
looks_like "$d/noise.bin" "data rankscope does not know (first bytes ff ff"

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
