#!/bin/sh
# cli-basics.sh — command line behaviour: help, version, usage errors with
# exit status 2, bad files with a message naming the file and exit 1, and
# nothing on stdout when a command fails.
. "$TESTS_SRCDIR/lib.sh"

run 0 "$RANKSCOPE" --version
contains "$out" "rankscope 0.1.0" "--version"
run 0 "$RANKSCOPE" --help
contains "$out" "info" "--help lists info"
contains "$out" "spectra" "--help lists spectra"
run 2 "$RANKSCOPE"
contains "$err" "Usage:" "no arguments prints usage"

for cmd in info spectra; do
	run 0 "$RANKSCOPE" $cmd --help
	for opt in --layer --exclude --fold --threads --method --no-cache --format --quiet; do
		contains "$out" "$opt" "$cmd --help lists $opt"
	done
done
run 0 "$RANKSCOPE" spectra --help
contains "$out" "csv (default)" "spectra formats"

# The man page documents every command and every option --help shows.
man=$(sed 's/\\-/-/g' "$TESTS_SRCDIR/../man/rankscope.1")
run 0 "$RANKSCOPE" --help
for cmd in $(printf '%s\n' "$out" | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
	checks=$((checks + 1))
	printf '%s\n' "$man" | grep -Eq "^\.BI? $cmd( |\$)" || fail "man page documents $cmd"
done
for cmd in info spectra run strategies show diff apply; do
	run 0 "$RANKSCOPE" $cmd --help
	for opt in $(printf '%s\n' "$out" | grep -o -- '--[a-z-]*'); do
		contains "$man" "$opt" "man page documents $opt"
	done
done

model=$SAMPLES/digits-mlp.safetensors
run 2 "$RANKSCOPE" info --bogus "$model"
contains "$err" "unknown option '--bogus'" "unknown option"
run 2 "$RANKSCOPE" info --fold 7 "$model"
contains "$err" "--fold takes a scheme number 0..3, not '7'" "bad fold"
run 2 "$RANKSCOPE" info --threads 0 "$model"
contains "$err" "--threads" "bad thread count"
run 2 "$RANKSCOPE" info --method svd "$model"
contains "$err" "--method takes auto, gesdd or gram" "bad method"
run 2 "$RANKSCOPE" spectra --format table "$model"
contains "$err" "unknown --format 'table'" "spectra has no table format"
run 2 "$RANKSCOPE" info
contains "$err" "missing MODEL" "missing model"
run 2 "$RANKSCOPE" info "$model" extra
contains "$err" "unexpected argument 'extra'" "extra argument"
run 2 "$RANKSCOPE" info --layer
contains "$err" "needs a value" "option without its value"

# Bad files: exit 1, the file named, stdout empty.
missing=$scratch/missing.safetensors
run 1 "$RANKSCOPE" info "$missing"
contains "$err" "$missing: cannot open" "missing file"
equals "$out" "" "no stdout on failure"

printf 'not a model at all' >"$scratch/garbage.safetensors"
run 1 "$RANKSCOPE" info "$scratch/garbage.safetensors"
contains "$err" "garbage.safetensors: not a weight file rankscope reads: looks like text" "garbage file"
equals "$out" "" "no stdout for garbage"

head -c 100000 "$model" >"$scratch/truncated.safetensors"
run 1 "$RANKSCOPE" spectra "$scratch/truncated.safetensors"
contains "$err" "truncated.safetensors: tensor '" "truncated file names a tensor"
contains "$err" "truncated file?" "truncated file says so"
equals "$out" "" "no stdout for a truncated file"

run 1 "$RANKSCOPE" info "$scratch"
contains "$err" "a directory without model.safetensors.index.json" "directory"

run 1 "$RANKSCOPE" spectra --layer 'nomatch*' "$model"
contains "$err" "no layer matches --layer 'nomatch*'" "filter matching nothing"

# A NaN in one layer: the others are still reported, the bad one is named,
# and the exit status says something failed.
make_nan_model "$scratch/nan.safetensors"
run 1 "$RANKSCOPE" info "$scratch/nan.safetensors"
contains "$err" "nan.safetensors: layer 'bad': element (0, 1)" "NaN layer named"
contains "$out" "good" "the good layer is still reported"
contains "$out" "failed" "the bad layer's row says failed"

finish
