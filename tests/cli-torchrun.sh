#!/bin/sh
# cli-torchrun.sh — the compressed model run in PyTorch by
# src/python/rankscope_torch.py: a network saved by torch.save with every
# layer kind it replaces (tests/torchcheck.py's Zoo: strided, padded,
# dilated, non-square and grouped Conv2d, Conv1d, Linear in containers),
# compressed by every method at every fold, loaded by the package and run
# against the same network loaded from `apply --dense`; the samples' CNN
# and MLP give the same test accuracy through both.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy torch; then
	echo "skipped: no python3 with numpy and torch"
	exit 77
fi
d=$scratch/torchrun
mkdir "$d"
zoo=$d/zoo.pt
run 0 "$python" "$TESTS_SRCDIR/torchcheck.py" make "$zoo"

# zoo_plan NAME 'LAYER SPEC' ...: the strategy NAME.lua (lib.sh's plan_lua)
zoo_plan() {
	zname=$1
	shift
	plan_lua "$d/$zname.lua" "$zname" "$@"
}

# torch_case NAME EXPECT [OPTIONS]: NAME.lua planned, applied as parts and
# --dense, and compared by torchcheck.py
torch_case() {
	cname=$1 expect=$2
	shift 2
	plan_apply "$d/$cname" "$zoo" "$d/${cname%@*}.lua" "$@"
	py_checks "torch $cname" torchcheck.py compare "$d/$cname-parts.safetensors" \
		"$d/$cname-dense.safetensors" "$expect"
}

R=structured
zoo_plan lowrank \
	'stem.0.weight { rank = 3 }' 'blocks.a.weight { rank = 6 }' \
	'blocks.b.weight { rank = 4 }' 'c1d.weight { rank = 5 }' \
	'head.0.weight { rank = 8 }' 'head.2.weight { rank = 3 }'
for fold in 0 1 2 3; do
	# the grouped convolution has no factorisation of its own: rebuilt
	torch_case "lowrank@$fold" "stem.0=$R,blocks.a=$R,blocks.b=rebuilt,c1d=$R,head.0=$R,head.2=$R" \
		--fold "$fold"
done
zoo_plan decomp \
	'stem.0.weight { method = "tucker2", ranks = { 6, 2 } }' \
	'blocks.a.weight { method = "cp", rank = 12 }' \
	'c1d.weight { method = "tucker2", ranks = { 8, 6 } }' \
	'head.0.weight { method = "tt", d = 2, ranks = { 6 } }' \
	'head.2.weight { method = "grouped", rank = 2, groups = 4 }'
torch_case decomp "stem.0=$R,blocks.a=$R,c1d=$R,head.0=$R,head.2=$R"
zoo_plan decomp2 \
	'stem.0.weight { method = "cp", rank = 6 }' \
	'blocks.a.weight { method = "grouped", rank = 4, groups = 2 }' \
	'c1d.weight { method = "cp", rank = 8 }' \
	'head.0.weight { method = "tucker2", ranks = { 8, 16 } }' \
	'head.2.weight { method = "cp", rank = 3 }'
for fold in 0 1 2 3; do
	torch_case "decomp2@$fold" "stem.0=$R,blocks.a=$R,c1d=$R,head.0=$R,head.2=$R" --fold "$fold"
done
zoo_plan prune \
	'stem.0.weight { method = "prune", sparsity = 0.5 }' \
	'blocks.a.weight { method = "prune-rows", sparsity = 0.25 }' \
	'blocks.b.weight { method = "prune-cols", sparsity = 0.5 }' \
	'c1d.weight { method = "prune-rows", sparsity = 0.3 }' \
	'head.0.weight { method = "prune", sparsity = 0.97 }' \
	'head.2.weight { method = "prune-cols", sparsity = 0.4 }'
torch_case "prune@0" "stem.0=rebuilt,blocks.a=$R,blocks.b=rebuilt,c1d=$R,head.0=$R,head.2=$R" \
	--fold 0
zoo_plan cols \
	'blocks.a.weight { method = "prune-cols", sparsity = 0.5 }' \
	'c1d.weight { method = "prune-cols", sparsity = 0.25 }' \
	'head.0.weight { method = "prune-rows", sparsity = 0.5 }'
torch_case "cols@3" "blocks.a=$R,c1d=$R,head.0=$R" --fold 3
zoo_plan quant \
	'stem.0.weight { method = "quant", quantizer = "uniform-tensor", bits = 4 }' \
	'blocks.a.weight { method = "quant", quantizer = "uniform-channel", bits = 3 }' \
	'blocks.b.weight { method = "quant", quantizer = "kmeans", bits = 3 }' \
	'c1d.weight { method = "quant", quantizer = "binary", bits = 1 }' \
	'head.0.weight { method = "quant", quantizer = "ternary", bits = 2 }' \
	'head.2.weight { method = "quant", quantizer = "uniform-channel", bits = 2 }'
torch_case quant ""
zoo_plan combos \
	'stem.0.weight { method = "lowrank+sparse", rank = 2, sparsity = 0.9 }' \
	'blocks.a.weight { method = "quant+sparse", quantizer = "ternary", bits = 2, sparsity = 0.95 }' \
	'c1d.weight { method = "lowrank+sparse+quant", rank = 2, sparsity = 0.97, quantizer = "uniform-tensor", bits = 3 }' \
	'head.0.weight { method = "lowrank+sparse", rank = 4, sparsity = 0.99 }' \
	'head.2.weight { method = "lowrank+sparse+quant", rank = 1, sparsity = 0.9, quantizer = "binary", bits = 1 }'
# (a combination that falls back to one part is planned as that part)
for fold in 0 2; do
	torch_case "combos@$fold" "head.0=$R" --fold "$fold"
done
# a weight split by rows: its views side by side
zoo_plan split 'head.0.weight.a { rank = 4 }' 'head.0.weight.b { method = "prune", sparsity = 0.5 }'
torch_case split "" --split 'head.0.weight=a,b'

# a --dense file loads as a plain state_dict, nothing replaced; a network
# the file does not fit is named
run 0 "$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[3])
import rankscope_torch as rt, torchcheck as tc
print(len(rt.load(tc.Zoo(), sys.argv[2])), "replaced")' "$TESTS_SRCDIR/../src/python" \
	"$d/lowrank@0-dense.safetensors" "$TESTS_SRCDIR"
equals "$out" "0 replaced" "a --dense file: a plain state_dict"
run 1 "$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[3])
import rankscope_torch as rt
from torch import nn
try:
    rt.load(nn.Sequential(nn.Linear(2, 2)), sys.argv[2])
except rt.CompressedError as e:
    print(e, file=sys.stderr); sys.exit(1)' "$TESTS_SRCDIR/../src/python" \
	"$d/lowrank@0-parts.safetensors" "$TESTS_SRCDIR"
contains "$err" "the network has no module 'stem.0'" "another network: named"

# damaged files: refused, naming the file or tensor and the problem
mkdir "$d/hostile"
py_checks "hostile" torchcheck.py hostile "$d/lowrank@0-parts.safetensors" "$d/hostile"

# the samples: the same accuracy through the package as through --dense
if find_python numpy torch sklearn; then
	mlp=$SAMPLES/digits-mlp.safetensors
	cnn=$SAMPLES/digits-cnn.safetensors
	zoo_plan mlp 'fc1.weight { method = "tt", d = 2, ranks = { 8 } }' \
		'fc2.weight { method = "lowrank+sparse", rank = 16, sparsity = 0.99 }' \
		'fc3.weight { method = "quant", quantizer = "kmeans", bits = 3 }'
	zoo_plan cnn 'conv1.weight { method = "prune-rows", sparsity = 0.25 }' \
		'conv2.weight { method = "tucker2", ranks = { 8, 8 } }' \
		'conv3.weight { method = "cp", rank = 24 }' \
		'fc1.weight { method = "grouped", rank = 8, groups = 4 }' \
		'fc2.weight { method = "prune", sparsity = 0.7 }'
	for c in mlp cnn; do
		model=$mlp
		[ $c = cnn ] && model=$cnn
		plan_apply "$d/s-$c" "$model" "$d/$c.lua"
		py_checks "sample $c" torchcheck.py samples "$d/s-$c-parts.safetensors" \
			"$d/s-$c-dense.safetensors"
	done
fi

finish
