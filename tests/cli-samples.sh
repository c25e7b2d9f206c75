#!/bin/sh
# cli-samples.sh — info and spectra on the bundled sample models: the
# layers found, the table, CSV and JSON shapes, layer filters, fold schemes,
# and the spectrum cache serving a second open.
. "$TESTS_SRCDIR/lib.sh"

mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors
lorita=$SAMPLES/digits-lorita.safetensors

run 0 "$RANKSCOPE" info "$mlp"
contains "$out" "3 layers" "mlp has 3 layers"
for l in "fc1.weight 512x64" "fc2.weight 512x512" "fc3.weight 10x512"; do
	contains "$out" "$l" "mlp layer $l"
done
contains "$out" "total: 300k params in 3 layers (model: 301k params in 6 tensors)" "mlp totals"
equals "$err" "" "stderr quiet when not a terminal"

# Break-even ranks: floor(m n / (m + n)).
line=$(printf '%s\n' "$out" | grep '^fc1.weight')
equals "$(printf '%s' "$line" | awk '{print $NF}')" "56" "fc1 break-even 32768/576"

# The second open is served from the cache.
contains "$out" "spectra: 0 from cache" "first open computes"
run 0 "$RANKSCOPE" info "$mlp"
contains "$out" "spectra: 3 from cache" "second open uses the cache"
equals "$(ls "$XDG_CACHE_HOME/rankscope/spectra" | wc -l)" "3" "three cache entries"
run 0 "$RANKSCOPE" info --no-cache "$mlp"
contains "$out" "spectra: 0 from cache" "--no-cache computes"

# CSV and JSON tables.
run 0 "$RANKSCOPE" info --format csv "$cnn"
equals "$(printf '%s\n' "$out" | wc -l)" "6" "cnn csv: header + 5 layers"
contains "$out" "layer,shape,fold,rows,cols,params,fro_norm" "csv header"
contains "$out" "conv2.weight,32x16x3x3,0,32,144,4608," "conv2 csv row"
run 0 "$RANKSCOPE" info --format json "$cnn"
contains "$out" '"header_sha256"' "json model digest"
contains "$out" '"not_a_layer": "1-D"' "json lists biases as non-layers"
contains "$out" '"test_accuracy"' "json carries metadata"

# Fold schemes change the matrix shape of conv kernels only.
run 0 "$RANKSCOPE" info --fold 3 "$cnn"
contains "$out" "conv2.weight 32x16x3x3         3 288x16" "fold 3 conv2"
contains "$out" "fc1.weight   128x1024          - 128x1024" "linear layers unfolded"
run 0 "$RANKSCOPE" info --fold 1 --layer 'conv3*' "$cnn"
contains "$out" "64x32x3x3         1 192x96" "fold 1 conv3"
lacks "$out" "conv2" "--layer filters"

# Spectra: one CSV row per singular value.
run 0 "$RANKSCOPE" spectra "$mlp"
equals "$(printf '%s\n' "$out" | wc -l)" "587" "64 + 512 + 10 rows + header"
equals "$(printf '%s\n' "$out" | head -1)" "layer,rank,sigma,energy,err_fro,err_spec,params,flops" "spectra csv header"
last=$(printf '%s\n' "$out" | grep '^fc1.weight,64,')
contains "$last" ",1,0,0,36864,73728" "full rank: energy 1, no error, 64*576 params"
run 0 "$RANKSCOPE" spectra --layer 'fc2*' --exclude '*bias' "$mlp"
equals "$(printf '%s\n' "$out" | wc -l)" "513" "fc2 only"
run 0 "$RANKSCOPE" spectra --format json --layer 'fc3.weight' "$mlp"
contains "$out" '"err_fro"' "json curves"
contains "$out" '"breakeven_rank": 9' "json break-even"

# Forced methods agree on the layer table.
run 0 "$RANKSCOPE" info --no-cache --method gesdd --format csv "$lorita"
gesdd=$out
run 0 "$RANKSCOPE" info --no-cache --method gram --format csv "$lorita"
equals "$(printf '%s\n' "$gesdd" | cut -d, -f1-6,11-14)" \
       "$(printf '%s\n' "$out" | cut -d, -f1-6,11-14)" "gram and gesdd give the same ranks"
run 0 "$RANKSCOPE" "$lorita"
contains "$out" "fc2.factors.1.weight" "opening a model shows its layers"

finish
