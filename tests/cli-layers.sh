#!/bin/sh
# cli-layers.sh — layers as their runtime sees them: natural order of
# numbered names, embeddings, Conv1d kernels, depthwise kernels (and the
# methods they refuse), stacked experts left out, and --layout / --kind for
# what no file tells.  Singular values and shapes are checked against
# numpy's SVD of the matrix each layer is defined to be (tests/layercheck.py).
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy; then
	echo "skipped: no python3 with numpy"
	exit 77
fi
d=$scratch/layers
mkdir "$d"
lc() { "$python" "$TESTS_SRCDIR/layercheck.py" "$@"; }

run 0 lc make "$d"
run 0 "$RANKSCOPE" info --format json --no-cache "$d/net.safetensors"
printf '%s\n' "$out" >"$d/info.json"
run 0 lc order "$d/info.json"
run 0 "$RANKSCOPE" spectra --format json --no-cache "$d/net.safetensors"
printf '%s\n' "$out" >"$d/spectra.json"
run 0 lc spectra "$d" "$d/spectra.json"

# in x out: read as stored, the rows are wrong; --layout puts them right,
# and the singular values are W's either way
run 0 "$RANKSCOPE" spectra --format json --no-cache --layout 'fc.*=in,out' \
	"$d/twin-in-out.safetensors"
printf '%s\n' "$out" >"$d/in-out.json"
run 0 lc spectra "$d" "$d/in-out.json"
run 0 "$RANKSCOPE" info --format json --no-cache --layout 'fc.*=in,out' \
	"$d/twin-in-out.safetensors"
printf '%s\n' "$out" | "$python" -c '
import json, sys
l = json.load(sys.stdin)["layers"][0]
assert l["layout"] == "in,out" and [l["rows"], l["cols"]] == [9, 12], l
' || fail "--layout: in,out recorded in info, rows and cols W's"
run 0 "$RANKSCOPE" info --no-cache "$d/twin-in-out.safetensors"
contains "$out" "12x9" "without --layout: the stored 12x9"
run 1 "$RANKSCOPE" info --layout 'nothing*=in,out' "$d/twin-in-out.safetensors"
contains "$err" "--layout 'nothing*' matches no tensor" "a rule matching nothing"
run 1 "$RANKSCOPE" info --layout 'fc.weight=sideways' "$d/twin-in-out.safetensors"
contains "$err" "not 'sideways'" "a bad layout named"
run 1 "$RANKSCOPE" info --kind 'stem.weight=depthwise' --kind 'x*=conv' "$d/net.safetensors"
contains "$err" "--kind 'x*' matches no tensor" "stem may be depthwise; the x* rule matches nothing"
run 1 "$RANKSCOPE" info --kind 'block.0.pw.weight=depthwise' "$d/net.safetensors"
contains "$err" "'block.0.pw.weight', whose kernel has 8 input channels per group" \
	"depthwise needs one input channel"
run 1 "$RANKSCOPE" info --kind 'block.0.pw.weight=groups:3' "$d/net.safetensors"
contains "$err" "16 output channels 3 groups do not divide" "groups must divide"
run 0 "$RANKSCOPE" info --format json --no-cache --kind 'block.0.pw.weight=groups:4' \
	--kind 'model.embed_tokens.weight=linear' "$d/net.safetensors"
printf '%s\n' "$out" | "$python" -c '
import json, sys
l = {x["name"]: x for x in json.load(sys.stdin)["layers"]}
assert l["block.0.pw.weight"]["groups"] == 4, l["block.0.pw.weight"]
assert l["model.embed_tokens.weight"]["kind"] == "linear"
' || fail "--kind groups:4 and linear taken"

# a plan records how its layers were read: show and apply read the model
# the same way without being told again, and the command line overrides it
run 0 "$RANKSCOPE" run uniform --no-cache --param keep=0.5 --layout 'fc.*=in,out' \
	"$d/twin-in-out.safetensors" -o "$d/t.plan.json"
contains "$(cat "$d/t.plan.json")" '"layout": "in,out"' "the plan records the layout"
run 0 "$RANKSCOPE" show --no-cache "$d/t.plan.json" "$d/twin-in-out.safetensors"
contains "$out" "9x12" "show reads the layer as the plan did"
run 1 "$RANKSCOPE" show --no-cache --layout 'fc.*=out,in' "$d/t.plan.json" \
	"$d/twin-in-out.safetensors"
contains "$err" "matrix is 9x12 but the layer is 12x9" "the command line overrides the plan"
run 0 "$RANKSCOPE" apply --no-cache "$d/t.plan.json" "$d/twin-in-out.safetensors" \
	-o "$d/t.out.safetensors"
"$python" - "$d" "$TESTS_SRCDIR" <<'PY' || fail "apply of an in,out layer: B A is W's truncation"
import sys, numpy as np
d, tests = sys.argv[1:3]
sys.path.insert(0, tests)
from checklib import SafeTensors
src, out = SafeTensors(d + "/twin-in-out.safetensors"), SafeTensors(d + "/t.out.safetensors")
W = src.values("fc.weight").astype(np.float64).T          # stored in x out
A = out.values("fc.weight.lowrank.A").astype(np.float64)
B = out.values("fc.weight.lowrank.B").astype(np.float64)
u, s, vt = np.linalg.svd(W)
r = A.shape[0]
best = (u[:, :r] * s[:r]) @ vt[:r]
assert B.shape == (W.shape[0], r) and A.shape == (r, W.shape[1]), (A.shape, B.shape)
assert np.allclose(B @ A, best, atol=1e-5 * s[0]), abs(B @ A - best).max()
PY

# a fused qkv weight split into its parts by rows; the plan remembers
run 0 "$RANKSCOPE" spectra --format json --no-cache --split 'attn.qkv.*=q:12,k:9,v:12' \
	"$d/fused.safetensors"
printf '%s\n' "$out" >"$d/fused.json"
run 0 lc spectra "$d" "$d/fused.json"
contains "$(cat "$d/fused.json")" '"attn.qkv.weight.k"' "the parts are layers"
run 1 "$RANKSCOPE" info --split 'attn.qkv.*=q,kv' "$d/fused.safetensors"
contains "$err" "'attn.qkv.weight' has 33 rows, which its 2 parts do not divide evenly" \
	"equal parts must divide"
run 1 "$RANKSCOPE" info --split 'attn.qkv.*=q:12,k:9,v:11' "$d/fused.safetensors"
contains "$err" "do not add up to" "rows must add up"
run 1 "$RANKSCOPE" info --split 'attn.qkv.*=q' "$d/fused.safetensors"
contains "$err" "give two or more parts" "one part is no split"
run 0 "$RANKSCOPE" run uniform --no-cache --split 'attn.qkv.*=q:12,k:9,v:12' \
	"$d/fused.safetensors" -o "$d/fused.plan.json"
contains "$(cat "$d/fused.plan.json")" '"attn.qkv.*=q:12,k:9,v:12"' "the plan records the rule"
run 0 "$RANKSCOPE" show --no-cache "$d/fused.plan.json" "$d/fused.safetensors"
contains "$out" "attn.qkv.weight.v" "show splits the model as the plan did"
run 0 "$RANKSCOPE" apply --no-cache "$d/fused.plan.json" "$d/fused.safetensors" \
	-o "$d/fused.out.safetensors"
run 0 "$RANKSCOPE" info --no-cache "$d/fused.out.safetensors"
contains "$out" "attn.qkv.weight.q" "apply writes the parts"

# a depthwise kernel takes only what keeps its shape; Lua sees why
cat >"$d/dw.lua" <<'LUA'
return {
	name = "dw",
	description = "methods on a depthwise kernel",
	run = function(model, plan, params)
		for _, layer in ipairs(model:layers()) do
			if layer.name == "block.1.dw.weight" then
				assert(layer.groups == 16, "groups " .. tostring(layer.groups))
				local ok, why = layer:allows("lowrank")
				assert(not ok and why:find("depthwise convolution %(16 groups%)"), why)
				assert(layer:allows("prune") and layer:allows("quant"))
				local fine, err = pcall(plan.set, plan, layer, { rank = 2 })
				assert(not fine and tostring(err):find("depthwise"), tostring(err))
				plan:set(layer, { method = "prune", sparsity = 0.5 })
			elseif layer.name == "model.embed_tokens.weight" then
				assert(layer.kind == "embedding")
				local f = plan:set(layer, { rank = 2 })
				assert(f.flops == 2 * 2 * layer.cols, "embedding flops " .. f.flops)
				f = plan:set(layer, { method = "prune", sparsity = 0.5 })
				assert(f.flops == 0, "a pruned lookup costs no flops: " .. f.flops)
				f = plan:set(layer, { method = "dense" })
				assert(f.flops == 0, "a dense lookup costs no flops: " .. f.flops)
			end
		end
		for _, layer in ipairs(model:layers{ allows = "lowrank" }) do
			assert(layer.name ~= "block.1.dw.weight", "allows filters the depthwise kernel")
		end
		assert(#model:layers{ allows = "lowrank" } == #model:layers() - 1)
		print("dw: ok")
	end,
}
LUA
run 0 "$RANKSCOPE" run --no-cache "$d/dw.lua" "$d/net.safetensors"
contains "$out" "dw: ok" "depthwise and embedding rules from Lua"
# every shipped strategy runs on a model with a depthwise kernel and leaves
# it what it can run (lorita needs composed layers, which this model has not)
for st in uniform energy threshold budget-minimax budget-greedy lc-rankselect \
	lc-combination alds tucker-search global-prune; do
	run 0 "$RANKSCOPE" run --no-cache "$st" "$d/net.safetensors" -o "$d/$st.json"
	"$python" -c '
import json, sys
l = {x["name"]: x for x in json.load(open(sys.argv[1]))["layers"]}
m = l["block.1.dw.weight"]["method"]
assert m in ("dense", "prune", "prune-rows", "quant", "quant+sparse"), m
' "$d/$st.json" || fail "$st: the depthwise kernel got a method it cannot run"
done

finish
