#!/bin/sh
# cli-dense.sh — what apply writes: every method's parts in the bytes
# the plan costs (the model's own F16/BF16 or F32), and `apply --dense`: every compressed layer written back as
# one tensor of its own name, shape and dtype, checked by
# tests/densecheck.py against the parts apply writes without --dense
# (rebuilt by samples/apply_plan.py) and against the model: every method,
# F32, F16 and BF16 models (copies made by torch), a model stored in,out,
# split views joined back into their tensor, the test accuracy of the
# samples equal through both files; a composed layer refused.
. "$TESTS_SRCDIR/lib.sh"

if ! find_python numpy torch; then
	echo "skipped: no python3 with numpy and torch"
	exit 77
fi
d=$scratch/dense
mkdir "$d"
mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors

plan_lua "$d/mlp-all.lua" all \
	'fc1.weight { method = "tt", d = 2, ranks = { 8 } }' \
	'fc2.weight { method = "lowrank+sparse", rank = 16, sparsity = 0.99 }' \
	'fc3.weight { method = "quant", quantizer = "kmeans", bits = 3 }'
plan_lua "$d/mlp-simple.lua" simple \
	'fc1.weight { method = "prune", sparsity = 0.7 }' \
	'fc2.weight { method = "quant", quantizer = "uniform-channel", bits = 4 }' \
	'fc3.weight { rank = 4 }'
plan_lua "$d/mlp-inout.lua" inout \
	'fc1.weight { rank = 8 }' \
	'fc2.weight { method = "prune", sparsity = 0.5 }' \
	'fc3.weight { method = "prune-cols", sparsity = 0.25 }'
plan_lua "$d/cnn.lua" cnn \
	'conv2.weight { method = "tucker2", ranks = { 8, 8 } }' \
	'conv3.weight { method = "cp", rank = 24 }' \
	'fc1.weight { method = "grouped", rank = 8, groups = 4 }' \
	'fc2.weight { method = "prune-rows", sparsity = 0.3 }'
plan_lua "$d/split.lua" split \
	'fc1.weight.a { rank = 8 }' \
	'fc2.weight { method = "prune", sparsity = 0.5 }'

# one_case NAME MODEL LUA [OPTIONS...]: plan, apply both ways, check
one_case() {
	name=$1 model=$2 lua=$3
	shift 3
	plan_apply "$d/$name" "$model" "$lua" "$@"
	printf '%s\n' "$out" >"$d/$name-apply.txt"
	contains "$out" "dense layers in their own dtype" "$name: apply --dense says so"
	py_checks "$name" densecheck.py check "$model" "$d/$name-parts.safetensors" \
		"$d/$name-dense.safetensors" "$d/$name.json" "$d/$name-apply.txt"
}

one_case mlp-all "$mlp" "$d/mlp-all.lua"
one_case mlp-simple "$mlp" "$d/mlp-simple.lua"
one_case cnn "$cnn" "$d/cnn.lua"
one_case split "$mlp" "$d/split.lua" --split 'fc1.weight=a,b'
for kind in f16 bf16; do
	run 0 "$python" "$TESTS_SRCDIR/densecheck.py" write "$kind" "$mlp" "$d/mlp-$kind.safetensors"
	one_case "mlp-$kind" "$d/mlp-$kind.safetensors" "$d/mlp-simple.lua"
done
run 0 "$python" "$TESTS_SRCDIR/densecheck.py" write in-out "$mlp" "$d/mlp-inout.safetensors"
one_case mlp-inout "$d/mlp-inout.safetensors" "$d/mlp-inout.lua" --layout '*.weight=in,out'

# every method writes the bytes the plan costs (up to the byte each bit
# stream is rounded to), in the model's own 16-bit dtype where it has one:
# bitmap and CSR indices, channel bitmaps, every quantiser's codes with its
# grid, scale or centres, the combinations, the decompositions, refined
# codebooks spelt out; apply's 'bytes' line agrees
# (prune 0.7 of fc1 takes a bitmap, 0.99 of fc2 CSR)
plan_lua "$d/b-sparse.lua" sparse \
	'fc1.weight { method = "prune", sparsity = 0.7 }' \
	'fc2.weight { method = "prune", sparsity = 0.99 }' \
	'fc3.weight { method = "quant", quantizer = "uniform-tensor", bits = 4 }'
plan_lua "$d/b-channels.lua" channels \
	'fc1.weight { method = "prune-rows", sparsity = 0.3 }' \
	'fc2.weight { method = "prune-cols", sparsity = 0.5 }' \
	'fc3.weight { method = "quant", quantizer = "uniform-channel", bits = 3 }'
plan_lua "$d/b-quant.lua" quant \
	'fc1.weight { method = "quant", quantizer = "kmeans", bits = 3 }' \
	'fc2.weight { method = "quant", quantizer = "binary", bits = 1 }' \
	'fc3.weight { method = "quant", quantizer = "ternary", bits = 2 }'
plan_lua "$d/b-combos.lua" combos \
	'fc1.weight { method = "lowrank+sparse", rank = 8, sparsity = 0.95 }' \
	'fc2.weight { method = "quant+sparse", quantizer = "ternary", bits = 2, sparsity = 0.99 }' \
	'fc3.weight { method = "lowrank+sparse+quant", rank = 2, sparsity = 0.99, quantizer = "uniform-tensor", bits = 3 }'
plan_lua "$d/b-fact.lua" fact \
	'fc1.weight { rank = 8 }' \
	'fc2.weight { method = "tt", d = 2, ranks = { 16 } }' \
	'fc3.weight { method = "grouped", rank = 2, groups = 4 }'
plan_lua "$d/b-refined.lua" refined \
	'fc1.weight { method = "quant", quantizer = "uniform-channel", bits = 3, refined = true }' \
	'fc2.weight { method = "prune", sparsity = 0.99, refined = true }' \
	'fc3.weight { method = "quant", quantizer = "binary", bits = 1, refined = true }'
# bytes_case NAME MODEL LUA [OPTIONS]: planned, applied, checked
bytes_case() {
	name=$1 model=$2 lua=$3
	shift 3
	run 0 "$RANKSCOPE" run -q --no-cache "$@" -o "$d/$name.json" "$lua" "$model"
	run 0 "$RANKSCOPE" apply -q --no-cache "$@" -o "$d/$name.safetensors" "$d/$name.json" "$model"
	printf '%s\n' "$out" >"$d/$name-apply.txt"
	py_checks "bytes $name" densecheck.py bytes "$model" "$d/$name.safetensors" \
		"$d/$name.json" "$d/$name-apply.txt"
}
for kind in f32 f16 bf16; do
	model=$mlp
	[ $kind = f32 ] || model=$d/mlp-$kind.safetensors
	for plan in sparse channels quant combos fact; do
		bytes_case "$plan-$kind" "$model" "$d/b-$plan.lua"
	done
done
bytes_case refined "$mlp" "$d/b-refined.lua" -C "$SAMPLES/digits-mlp.calib.safetensors"
# --dtype: the values in the chosen dtype whatever the model's, costed so,
# recorded in the plan; apply reports what the cast adds
for dt in f16 bf16; do
	for plan in sparse combos fact; do
		bytes_case "$plan-as-$dt" "$mlp" "$d/b-$plan.lua" --dtype "$dt"
	done
done
bytes_case "quant-bf16-as-f32" "$d/mlp-bf16.safetensors" "$d/b-quant.lua" --dtype f32
contains "$(cat "$d/fact-as-f16.json")" '"value_dtype": "F16"' "--dtype: recorded in the plan"
cast=$(awk '$1 == "fc1.weight" { print $NF }' "$d/fact-as-bf16-apply.txt")
check "--dtype bf16: the cast adds to err_F ($cast)" \
	awk -v c="$cast" 'BEGIN { exit !(c + 0 > 1e-6 && c + 0 < 1e-2) }'
run 1 "$RANKSCOPE" apply -q --no-cache --dtype f32 -o "$d/x.safetensors" "$d/fact-as-f16.json" "$mlp"
contains "$err" "the plan costs its values as F16; --dtype F32 would change its figures" \
	"--dtype against the plan's: refused"
[ ! -e "$d/x.safetensors" ] || fail "a refused apply wrote its output"
run 2 "$RANKSCOPE" run -q --dtype fp8 uniform "$mlp"
contains "$err" "--dtype takes f16, bf16 or f32, not 'fp8'" "--dtype: an unknown type"
bytes_case cnn-bytes "$cnn" "$d/cnn.lua"

# the samples' accuracy is the same through the dense file and the parts
if find_python numpy torch sklearn; then
	for c in mlp-all cnn; do
		run 0 "$python" "$SAMPLES/apply_plan.py" "$d/$c-parts.safetensors"
		parts=$(printf '%s\n' "$out" | grep '^accuracy')
		run 0 "$python" "$SAMPLES/apply_plan.py" "$d/$c-dense.safetensors"
		equals "$(printf '%s\n' "$out" | grep '^accuracy')" "$parts" \
			"$c: accuracy through --dense = through the parts"
	done
fi

# a composed layer has no tensor of its own to be written as
lorita=$SAMPLES/digits-lorita.safetensors
run 0 "$RANKSCOPE" run uniform -q --no-cache --compose 'fc*.factors.#.weight' -p keep=0.3 \
	-o "$d/lorita.json" "$lorita"
run 1 "$RANKSCOPE" apply -q --no-cache --dense --compose 'fc*.factors.#.weight' \
	-o "$d/lorita.safetensors" "$d/lorita.json" "$lorita"
contains "$err" "composed of" "composed layer: refused"
[ ! -e "$d/lorita.safetensors" ] || fail "a refused --dense wrote its output"

finish
