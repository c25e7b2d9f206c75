#!/bin/sh
# cli-onnx.sh — ONNX models through the binary.  Fixtures are written by
# onnx itself (tests/make-onnx.py): model.onnx and its external-data copy
# give the same layers, matrices (rows = outputs) and singular values as
# their safetensors twin (1e-6 relative); `info` shows each tensor's role,
# layout and groups as the graph says, the layers in graph order, the
# format and the model's metadata.  Hostile files (truncated, a length past
# the end, dims whose product overflows, raw_data shorter than its dims,
# external data outside the model's directory or missing, subgraphs nested
# too deep) are each refused with one message naming the file (and the
# tensor).  Skipped when no python3 imports onnx.
. "$TESTS_SRCDIR/lib.sh"

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

if ! find_python onnx numpy; then
	echo "skipped: no python3 with onnx and numpy (the writer of the fixtures)"
	exit 77
fi

d=$scratch/onnx
mkdir "$d"
run 0 "$python" "$TESTS_SRCDIR/make-onnx.py" "$d"

# same_layers TWIN.json ONNX.json WHAT: the same layer names, rows, cols and
# singular values (1e-6 relative), compared by name; order is checked below.
same_layers() {
	checks=$((checks + 1))
	"$python" - "$1" "$2" <<'EOF' >"$scratch/cmp" 2>&1 || fail "$3: $(cat "$scratch/cmp")"
import json, sys
a, b = ({l["name"]: l for l in json.load(open(p))["layers"]} for p in sys.argv[1:3])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
bad = []
for name, x in a.items():
    y = b[name]
    if (x["rows"], x["cols"]) != (y["rows"], y["cols"]):
        bad.append("%s: rows x cols %dx%d, twin %dx%d" % (name, y["rows"], y["cols"],
                                                       x["rows"], x["cols"]))
    assert len(x["sigma"]) == len(y["sigma"]) > 0, name
    for s, t in zip(x["sigma"], y["sigma"]):
        assert abs(s - t) <= 1e-6 * max(abs(s), abs(t), 1e-300) + 1e-12 * x["sigma"][0], \
            (name, s, t)
assert not bad, "; ".join(bad)
EOF
}

# roles INFO.json EXPECT_KEY WHAT: every tensor's role, layout and groups,
# the layers in graph order, "format": "onnx".
roles() {
	checks=$((checks + 1))
	"$python" - "$1" "$d/expect.json" "$2" <<'EOF' >"$scratch/cmp" 2>&1 || fail "$3: $(cat "$scratch/cmp")"
import json, sys
info = json.load(open(sys.argv[1]))
expect = json.load(open(sys.argv[2]))[sys.argv[3]]
assert info["model"]["format"] == "onnx", info["model"]["format"]
seen = {t["name"]: t for t in info["layers"] + info["other_tensors"]}
assert sorted(seen) == sorted(expect["tensors"]), (sorted(seen), sorted(expect["tensors"]))
bad = []
for name, want in expect["tensors"].items():
    if want is None:
        continue
    role, layout, groups = want
    t = seen[name]
    if [t["role"], t["layout"], t["groups"]] != [role, layout, groups]:
        bad.append("%s: %s, expected %s" % (name, [t["role"], t["layout"], t["groups"]],
                                           [role, layout, groups]))
assert not bad, "; ".join(bad)
layers = [l["name"] for l in info["layers"]]
want = [n for n in expect["order"] if n in layers]
assert layers == want, ("layer order", layers, want)
EOF
}

# ---- the model, its external-data copy and the twin ------------------------
run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/model.safetensors"
printf '%s\n' "$out" >"$d/twin.json"
for m in model.onnx ext/model.onnx; do
	run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/$m"
	printf '%s\n' "$out" >"$d/spectra.json"
	same_layers "$d/twin.json" "$d/spectra.json" "$m against its safetensors twin"
	run 0 "$RANKSCOPE" info --format json --no-cache "$d/$m"
	printf '%s\n' "$out" >"$d/info.json"
	roles "$d/info.json" model "$m: roles, layouts, groups and order"
	contains "$out" '"producer_name": "make-onnx.py"' "$m: producer in the metadata"
	contains "$out" '"opset_import": "ai.onnx 17"' "$m: opset in the metadata"
	contains "$out" '"graph_name": "fixture"' "$m: graph name in the metadata"
	contains "$out" '"metadata_props.purpose": "rankscope test"' "$m: metadata_props"
	contains "$out" '"ir_version": "' "$m: ir_version in the metadata"
done
run 0 "$RANKSCOPE" info "$d/model.onnx"
contains "$out" "16 tensors, 12 layers" "model.onnx: the add-only table and 1-D/int tensors are not layers"
run 0 "$RANKSCOPE" info --format json --no-cache "$d/roles.onnx"
printf '%s\n' "$out" >"$d/info.json"
roles "$d/info.json" roles "roles.onnx: roles, layouts, groups and order"
contains "$out" '"skipped.labels": "STRING tensor' "a STRING initializer is listed as skipped"
contains "$out" '"skipped.sparse.w": "sparse_initializer' "a sparse initializer is listed as skipped"
contains "$out" '"role_conflict.shared": "linear in,out from MatMul node '"'shared_mm'"', other from Add node '"'shared_add'"'' \
	"a weight used two ways: the conflict noted"

# a plan made on the ONNX model applies to it and writes a safetensors
# (the depthwise kernel left out: uniform factorises every layer)
run 0 "$RANKSCOPE" run uniform --param keep=0.5 -x dw.w "$d/model.onnx" -o "$d/plan.json"
run 0 "$RANKSCOPE" apply -x dw.w "$d/plan.json" "$d/model.onnx" -o "$d/applied.safetensors"
run 0 "$RANKSCOPE" info "$d/applied.safetensors"
contains "$out" "embed.tokens" "apply of an ONNX model writes its layers"

# ---- hostile files -----------------------------------------------------------
"$python" - "$d" <<'EOF'
import copy, os, sys
import onnx
from onnx import TensorProto, helper
d = sys.argv[1]
good = open(d + "/model.onnx", "rb").read()
open(d + "/cut.onnx", "wb").write(good[:len(good) // 2])

def write(name, graph):
    m = helper.make_model(graph, producer_name="hostile",
                          opset_imports=[helper.make_opsetid("", 17)])
    open(d + "/" + name, "wb").write(m.SerializeToString())

def one(t):
    return helper.make_graph([], "g", [], [], [t])

big = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40],
                  raw_data=b"\0" * 16)
write("overflow.onnx", one(big))
short = TensorProto(name="short", data_type=TensorProto.FLOAT, dims=[4, 4],
                    raw_data=b"\0" * 60)
write("short.onnx", one(short))

# a length varint past the end: ir_version 8, then the graph field (7)
# declaring 65535 bytes of which 2 follow
open(d + "/length.onnx", "wb").write(b"\x08\x08\x3a\xff\xff\x03\x0a\x00")

# external data pointing elsewhere, or nowhere
ext = onnx.load(d + "/ext/model.onnx", load_external_data=False)
for name, where in (("up", "../x"), ("abs", "/etc/passwd"), ("missing", "nope.bin")):
    m = copy.deepcopy(ext)
    t = next(t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    for e in t.external_data:
        if e.key == "location":
            e.value = where
    open(d + "/ext/" + name + ".onnx", "wb").write(m.SerializeToString())

# If inside If, 200 deep, encoded by hand (protobuf's own writers refuse
# to nest this deep): graph = node { op_type "If", attribute { name
# "then_branch", type GRAPH, g = graph } }
def field(num, payload):
    def varint(v):
        out = b""
        while v >= 0x80:
            out += bytes([v & 0x7f | 0x80]); v >>= 7
        return out + bytes([v])
    return varint(num << 3 | 2) + varint(len(payload)) + payload
g = b""
for _ in range(200):
    attr = field(1, b"then_branch") + b"\xa0\x01\x05" + field(6, g)
    g = field(1, field(4, b"If") + field(5, attr))
open(d + "/deep.onnx", "wb").write(b"\x08\x08" + field(7, g))
EOF

# refused FILE NEEDLE WHAT: exit 1, one line naming the file, and NEEDLE
refused() {
	run 1 "$RANKSCOPE" info "$1"
	contains "$err" "$1: " "$3: the file named"
	contains "$err" "$2" "$3"
	equals "$(printf '%s\n' "$err" | wc -l | tr -d ' ')" 1 "$3: one line"
	equals "$out" "" "$3: no stdout"
}
refused "$d/cut.onnx" "(truncated file?)" "a truncated model"
refused "$d/length.onnx" "field 7 of onnx.ModelProto at byte 2 declares 65535 bytes, past the end of its message" \
	"a length varint past the end"
refused "$d/overflow.onnx" "tensor 'big': dims [1099511627776, 1099511627776]: the element count overflows" \
	"a dims product that overflows"
refused "$d/short.onnx" "tensor 'short': raw_data holds 60 bytes but its shape [4, 4] needs 64" \
	"raw_data shorter than its dims"
refused "$d/ext/up.onnx" "external data location '../x' leaves the model's directory" "external '../x'"
refused "$d/ext/abs.onnx" "external data location '/etc/passwd' is an absolute path" "external '/etc/passwd'"
refused "$d/ext/missing.onnx" "external data file '$d/ext/nope.bin': cannot open: No such file" \
	"a missing external file"
contains "$err" "tensor '" "a missing external file: the tensor named"
refused "$d/deep.onnx" "messages nested deeper than 100 levels" "deeply nested subgraphs"

finish
