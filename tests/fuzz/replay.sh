#!/bin/sh
# replay.sh — every committed fuzz corpus through its target, built without
# libFuzzer (tests/fuzz/replay-TARGET: the target and replay.c), so that
# each build's make check, gcc and the sanitizer builds alike, runs every
# input a fuzzer kept or crashed on.  A target aborts on a broken invariant.
. "$TESTS_SRCDIR/lib.sh"

bin=$(dirname "$RANKSCOPE")/tests/fuzz
corpora=$TESTS_SRCDIR/fuzz/corpus
TMPDIR=$scratch
export TMPDIR

# every corpus directory is a target's (tests/fuzz/README); the readers
# listed here must have one
for need in safetensors plan cache lua-args npz sharded imatrix; do
	checks=$((checks + 1))
	[ -d "$corpora/$need" ] || fail "no corpus $corpora/$need"
done
for target in $(ls "$corpora"); do
	checks=$((checks + 1))
	if [ ! -x "$bin/replay-$target" ]; then
		fail "corpus $target has no replay-$target"
		continue
	fi
	n=$(ls "$corpora/$target" | wc -l)
	[ "$n" -gt 0 ] || fail "corpus $target is empty"
	"$bin/replay-$target" "$corpora/$target" >"$scratch/out" 2>"$scratch/err"
	status=$?
	[ "$status" -eq 0 ] || fail "replay-$target exit $status on $corpora/$target:
$(tail -n 30 "$scratch/err")"
	contains "$(cat "$scratch/out")" "$n inputs replayed" "replay-$target ran every input"
done
finish
