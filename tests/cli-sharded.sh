#!/bin/sh
# cli-sharded.sh — a Hugging Face sharded checkpoint opens as one model:
# its directory, its model.safetensors.index.json, and a
# pytorch_model.bin.index.json over torch.save shards give the layers,
# shapes and singular values of the same weights in one safetensors file; a
# shard opened alone says it is one shard of N; an index that lies (a shard
# outside its directory, a missing shard, a tensor not where the map says,
# a tensor the map does not list) is refused naming the tensor and shard.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy; then
	echo "skipped: no python3 with numpy"
	exit 77
fi
d=$scratch/sharded
mkdir -p "$d/st" "$d/pt" "$d/bad"
"$python" - "$d" "$TESTS_SRCDIR" <<'PY' || fail "making the shards"
import json, os, sys
import numpy as np
d, tests = sys.argv[1], sys.argv[2]
sys.path.insert(0, tests)
from checklib import write_safetensors
rng = np.random.default_rng(5)
w = {f"model.layers.{i}.mlp.weight": rng.standard_normal((16, 12)).astype("<f4")
     for i in range(11)}
w["model.embed_tokens.weight"] = rng.standard_normal((40, 12)).astype("<f4")
w["model.norm.weight"] = rng.standard_normal(12).astype("<f4")
names = list(w)
write_safetensors(f"{d}/whole.safetensors", [(n, "F32", w[n]) for n in names])
# three shards, the index with sorted keys as save_pretrained writes it
shards = [names[0::3], names[1::3], names[2::3]]
wmap = {}
for k, part in enumerate(shards):
    f = f"model-{k + 1:05d}-of-00003.safetensors"
    write_safetensors(f"{d}/st/{f}", [(n, "F32", w[n]) for n in part])
    wmap.update({n: f for n in part})
index = {"metadata": {"total_size": sum(a.nbytes for a in w.values())}, "weight_map": wmap}
json.dump(index, open(f"{d}/st/model.safetensors.index.json", "w"), indent=2, sort_keys=True)
# the hostile variants of the index
def bad(name, edit):
    i = json.loads(json.dumps(index))
    edit(i)
    os.makedirs(f"{d}/bad/{name}", exist_ok=True)
    for f in set(wmap.values()):
        os.symlink(f"{d}/st/{f}", f"{d}/bad/{name}/{f}")
    json.dump(i, open(f"{d}/bad/{name}/model.safetensors.index.json", "w"))
bad("escape", lambda i: i["weight_map"].update({names[0]: "../whole.safetensors"}))
bad("missing", lambda i: i["weight_map"].update({names[0]: "model-00009-of-00009.safetensors"}))
bad("moved", lambda i: i["weight_map"].update({names[0]: "model-00002-of-00003.safetensors"}))
bad("unlisted", lambda i: i["weight_map"].pop(names[0]))
bad("empty", lambda i: i.update({"weight_map": {}}))
try:
    import torch
except ImportError:
    sys.exit(0)
wmap = {}
for k, part in enumerate(shards):
    f = f"pytorch_model-{k + 1:05d}-of-00003.bin"
    torch.save({n: torch.from_numpy(w[n]) for n in part}, f"{d}/pt/{f}")
    wmap.update({n: f for n in part})
json.dump({"metadata": {}, "weight_map": wmap},
          open(f"{d}/pt/pytorch_model.bin.index.json", "w"), indent=2, sort_keys=True)
PY

# same_spectra A B WHAT: the same layers in the same order, shapes and sigma
same_spectra() {
	checks=$((checks + 1))
	"$python" - "$1" "$2" <<'PY' || fail "$3: spectra differ"
import json, sys
a, b = (json.load(open(p))["layers"] for p in sys.argv[1:3])
assert [l["name"] for l in a] == [l["name"] for l in b], ([l["name"] for l in a], [l["name"] for l in b])
for x, y in zip(a, b):
    assert [x["rows"], x["cols"]] == [y["rows"], y["cols"]], x["name"]
    for s, t in zip(x["sigma"], y["sigma"]):
        assert abs(s - t) <= 1e-6 * max(abs(s), abs(t)), (x["name"], s, t)
PY
}
spectra() {   # spectra OUT MODEL...
	o=$1; shift
	run 0 "$RANKSCOPE" spectra --format json --no-cache "$@"
	printf '%s\n' "$out" >"$o"
}

spectra "$d/whole.json" "$d/whole.safetensors"
spectra "$d/dir.json" "$d/st"
same_spectra "$d/whole.json" "$d/dir.json" "the directory"
spectra "$d/index.json" "$d/st/model.safetensors.index.json"
same_spectra "$d/whole.json" "$d/index.json" "the index"
run 0 "$RANKSCOPE" info --format json --no-cache "$d/st"
printf '%s\n' "$out" | "$python" -c '
import json, sys
i = json.load(sys.stdin)
names = [l["name"] for l in i["layers"]]
assert i["model"]["format"] == "sharded", i["model"]
assert names.index("model.layers.9.mlp.weight") < names.index("model.layers.10.mlp.weight"), names
assert [t["name"] for t in i["other_tensors"]] == ["model.norm.weight"], i["other_tensors"]
' || fail "info of the directory: format, natural order, the norm listed"
if [ -f "$d/pt/pytorch_model.bin.index.json" ]; then
	spectra "$d/pt.json" "$d/pt"
	same_spectra "$d/whole.json" "$d/pt.json" "torch.save shards"
else
	echo "skipped: no python3-torch: the pytorch_model.bin shards"
fi

# one shard alone: its tensors, and a warning saying what it is
run 0 "$RANKSCOPE" info --no-cache "$d/st/model-00002-of-00003.safetensors"
contains "$err" "is shard 2 of 3 of a sharded checkpoint" "a lone shard says so"

refused() {   # refused DIR TEXT WHAT
	run 1 "$RANKSCOPE" info --no-cache "$d/bad/$1"
	contains "$err" "$2" "$3"
	equals "$out" "" "$3: no stdout"
}
refused escape "its shard must be a file name in the index's directory" "a shard outside the directory"
refused missing "of 4: " "a missing shard"
refused missing "model-00009-of-00009.safetensors: cannot open" "a missing shard: which and why"
refused moved "is not in its shard model-00002-of-00003.safetensors" "a tensor not where the map says"
refused unlisted "holds tensor 'model.layers.0.mlp.weight', which the index does not list" \
	"a tensor the map does not list"
refused empty "needs a non-empty \"weight_map\"" "an empty map"
mkdir "$d/nothing"
run 1 "$RANKSCOPE" info "$d/nothing"
contains "$err" "a directory without model.safetensors.index.json" "an empty directory"

finish
