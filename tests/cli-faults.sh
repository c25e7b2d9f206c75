#!/bin/sh
# cli-faults.sh — the binary under faults.  A model truncated under its map
# (at once, by tests/faultfs.so, and at random moments by a racing
# truncate) is an error naming the file and the tensor, never a SIGBUS; a
# model rewritten in place never leaves a wrong cache entry.  Full disks
# (the shim part way through a write, a file size limit, a full device)
# and read-only directories (dropped capabilities when root, the shim's
# EROFS) fail plan saves and apply with a clear message, the old output
# intact and no temporary left, and only warn for the cache.  kill -9 at
# random points of run -o and apply leaves the old file or the complete new
# one, never a partial file under any name.  Two processes share one cache
# directory, and damaged entries are recomputed and rewritten.
#
# FAULTS_SEED=N repeats the random kill points and truncation times.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"
: "${FAULTFS:?FAULTFS must point at tests/faultfs.so (make check sets it)}"

umask 022
# A sanitizer report must not hide behind an expected exit status of 1;
# the shim is preloaded ahead of a sanitizer runtime, which it tolerates.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86:verify_asan_link_order=0"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87"
export ASAN_OPTIONS UBSAN_OPTIONS

seed=${FAULTS_SEED:-$(date +%s)}
echo "seed $seed (FAULTS_SEED=$seed repeats this run)"

mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors
d=$scratch/faults
mkdir "$d"
SHRANK="the file shrank while it was open (truncated or rewritten); reopen it"

# rnd I SCALE: a reproducible uniform number in [0, SCALE) for step I (the
# seed kept small: some awks take only 32 bits of it).
rnd() {
	awk -v s="$seed" -v i="$1" -v t="$2" 'BEGIN {
		srand((s % 1000003) * 1009 + i * 7919); rand(); rand(); printf "%.3f", rand() * t }'
}

# faulty VARS... -- CMD...: CMD with the shim preloaded and VARS set.
faulty() {
	fvars=""
	while [ "$1" != "--" ]; do fvars="$fvars $1"; shift; done
	shift
	# shellcheck disable=SC2086
	env LD_PRELOAD="$FAULTFS" $fvars "$@"
}

# no_temporaries DIR WHAT: no FILE.tmp-XXXXXX left in DIR.
no_temporaries() {
	checks=$((checks + 1))
	left=$(find "$1" -name '*.tmp-*' | head -3)
	[ -z "$left" ] || fail "$2: temporary files left behind: $left"
}

# not_signalled WHAT: the last run ended by exit, not by a signal.
not_signalled() {
	checks=$((checks + 1))
	[ "$status" -lt 128 ] || fail "$1: killed by signal $((status - 128)): $err"
}

# Spectra are compared bit for bit, and the last bits depend on the BLAS
# thread count: every run that computes them uses two threads.
mlp_csv=$("$RANKSCOPE" spectra --no-cache -q -j2 "$mlp")
cnn_csv=$("$RANKSCOPE" spectra --no-cache -q -j2 "$cnn")
# an old and a new version of a plan and of a compressed model
"$RANKSCOPE" run uniform --param keep=0.3 -q -j2 "$mlp" -o "$d/plan-old.json" >/dev/null
"$RANKSCOPE" run uniform --param keep=0.6 -q -j2 "$mlp" -o "$d/plan-new.json" >/dev/null
"$RANKSCOPE" apply "$d/plan-old.json" -q -j2 "$mlp" -o "$d/apply-old.safetensors" >/dev/null
"$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/apply-new.safetensors" >/dev/null

# Outputs are written as unnamed temporaries (O_TMPFILE) where the file
# system has them; elsewhere as named ones, which a kill -9 leaves behind
# part written.  Which one is in use shows when naming one fails.
mkdir "$d/probe-dir"
unnamed=yes
faulty FAULTFS_PATH="$d/probe-dir" FAULTFS_FAIL=link -- \
	"$RANKSCOPE" run uniform -q -j2 "$mlp" -o "$d/probe-dir/plan.json" >/dev/null 2>&1 && unnamed=no
[ $unnamed = yes ] || echo "no unnamed temporaries on this file system: checks that need them skipped"

# ---- 1. a model cut short under its map --------------------------------------
# The shim truncates the file once it is opened and mapped: the tensors
# then lie past its end, and each layer fails with the message.
cp "$mlp" "$d/cut.safetensors"
run 1 faulty FAULTFS_PATH="$d/cut.safetensors" FAULTFS_SHRINK=8192 -- \
	"$RANKSCOPE" info --no-cache "$d/cut.safetensors"
for layer in fc1.weight fc2.weight fc3.weight; do
	contains "$err" "$d/cut.safetensors: tensor '$layer': $SHRANK" "info on a truncated map"
done
lacks "$err" "Bus error" "no SIGBUS"
cp "$mlp" "$d/cut.safetensors"
run 1 faulty FAULTFS_PATH="$d/cut.safetensors" FAULTFS_SHRINK=100000 -- \
	"$RANKSCOPE" spectra "$d/cut.safetensors"
contains "$err" "$d/cut.safetensors: tensor 'fc2.weight': $SHRANK" "spectra on a truncated map"
cp "$mlp" "$d/cut.safetensors"
cp "$d/plan-old.json" "$d/old.json"
run 1 faulty FAULTFS_PATH="$d/cut.safetensors" FAULTFS_SHRINK=100000 -- \
	"$RANKSCOPE" run uniform "$d/cut.safetensors" -o "$d/old.json"
contains "$err" "$d/cut.safetensors: tensor 'fc2.weight': $SHRANK" "run on a truncated map"
same "$d/plan-old.json" "$d/old.json" "run on a truncated map: the old plan is intact"
# Cut inside the header's page: the zeros read there are not taken for a
# malformed header.
cp "$mlp" "$d/cut.safetensors"
run 1 faulty FAULTFS_PATH="$d/cut.safetensors" FAULTFS_SHRINK=5 FAULTFS_SHRINK_AT=mmap -- \
	"$RANKSCOPE" info "$d/cut.safetensors"
contains "$err" "$d/cut.safetensors: the file changed size while it was being opened (truncated or rewritten)" \
	"a header cut short as it is opened"
cp "$mlp" "$d/cut.safetensors"
cp "$d/apply-old.safetensors" "$d/old.safetensors"
run 1 faulty FAULTFS_PATH="$d/cut.safetensors" FAULTFS_SHRINK=100000 -- \
	"$RANKSCOPE" apply "$d/plan-new.json" "$d/cut.safetensors" -o "$d/old.safetensors"
contains "$err" "$d/cut.safetensors: tensor 'fc2.weight': $SHRANK" "apply on a truncated map"
same "$d/apply-old.safetensors" "$d/old.safetensors" "apply on a truncated map: the old output is intact"
no_temporaries "$d" "truncated maps"

# A real race: the file is truncated at a random moment while spectra are
# computed.  Whenever it lands, the outcome is a result or a clean error.
"$MAKE_MODEL" "$d/race-orig.safetensors" w=900x900 v=700x700 u=500x500 t=300x300 >/dev/null
t0=$(date +%s%N)
"$RANKSCOPE" info -q --no-cache -j2 "$d/race-orig.safetensors" >/dev/null
t1=$(date +%s%N)
span=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
i=0 outcomes=""
while [ $i -lt 8 ]; do
	cp "$d/race-orig.safetensors" "$d/race.safetensors"
	delay=$(rnd $i "$span")
	size=$(rnd $((i + 500)) 4000000 | awk '{ printf "%d", 4096 + $1 }')
	"$RANKSCOPE" info -q --no-cache -j2 "$d/race.safetensors" >"$d/race.out" 2>"$d/race.err" &
	pid=$!
	sleep "$delay"
	truncate -s "$size" "$d/race.safetensors"
	wait $pid
	status=$? err=$(cat "$d/race.err")
	not_signalled "info while truncated to $size after ${delay}s"
	checks=$((checks + 1))
	case $status in
	0) outcomes="$outcomes ok" ;;
	1) case $err in
	   *"truncated"*) outcomes="$outcomes error" ;;
	   *) fail "truncated to $size after ${delay}s: unclear message: $err" ;;
	   esac ;;
	*) fail "truncated to $size after ${delay}s: exit $status: $err" ;;
	esac
	i=$((i + 1))
done
echo "truncation races:$outcomes"

# Rewritten in place (same size, new bytes) while spectra are computed and
# cached: afterwards the cache serves each version its own spectra.
"$MAKE_MODEL" "$d/va.safetensors" w=400x300@0.98 v=300x200@0.97 >/dev/null
"$MAKE_MODEL" "$d/vb.safetensors" w=400x300@0.95 v=300x200@0.9 >/dev/null
va_csv=$("$RANKSCOPE" spectra --no-cache -q -j2 "$d/va.safetensors")
vb_csv=$("$RANKSCOPE" spectra --no-cache -q -j2 "$d/vb.safetensors")
rw_cache=$d/rewrite-cache
i=0
while [ $i -lt 4 ]; do
	cp "$d/va.safetensors" "$d/rw.safetensors"
	XDG_CACHE_HOME=$rw_cache "$RANKSCOPE" spectra -q -j2 "$d/rw.safetensors" >/dev/null 2>&1 &
	pid=$!
	sleep "$(rnd $((i + 100)) 0.1)"
	dd if="$d/vb.safetensors" of="$d/rw.safetensors" conv=notrunc bs=65536 status=none
	wait $pid
	status=$?
	not_signalled "spectra while rewritten in place"
	i=$((i + 1))
done
run 0 env XDG_CACHE_HOME="$rw_cache" "$RANKSCOPE" spectra -q -j2 "$d/vb.safetensors"
equals "$out" "$vb_csv" "after rewrites in place, the new version's cached spectra are its own"
run 0 env XDG_CACHE_HOME="$rw_cache" "$RANKSCOPE" spectra -q -j2 "$d/va.safetensors"
equals "$out" "$va_csv" "after rewrites in place, the old version's cached spectra are its own"

# ---- 2. full disks -------------------------------------------------------------
mkdir "$d/out"
cp "$d/plan-old.json" "$d/out/plan.json"
cp "$d/apply-old.safetensors" "$d/out/model.safetensors"

# save_fails WHAT MESSAGE VARS...: run -o and apply into $d/out with the
# shim's VARS fail with MESSAGE and leave the old files as they were.
save_fails() {
	swhat=$1 smsg=$2
	shift 2
	run 1 faulty FAULTFS_PATH="$d/out" "$@" -- \
		"$RANKSCOPE" run uniform --param keep=0.6 -q -j2 "$mlp" -o "$d/out/plan.json"
	contains "$err" "$d/out/plan.json: $smsg" "run -o, $swhat"
	equals "$out" "" "run -o, $swhat: no plan printed"
	same "$d/plan-old.json" "$d/out/plan.json" "run -o, $swhat: the old plan is intact"
	run 1 faulty FAULTFS_PATH="$d/out" "$@" -- \
		"$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/out/model.safetensors"
	contains "$err" "$d/out/model.safetensors: $smsg" "apply, $swhat"
	lacks "$out" "wrote " "apply, $swhat: no success claimed"
	same "$d/apply-old.safetensors" "$d/out/model.safetensors" "apply, $swhat: the old output is intact"
	no_temporaries "$d/out" "$swhat"
}
save_fails "disk full part way" "write failed: No space left on device (nothing was replaced)" \
	FAULTFS_FAIL=write FAULTFS_AFTER=1500
save_fails "disk full at once" "write failed: No space left on device" FAULTFS_FAIL=write
save_fails "quota at close" "write failed: Disk quota exceeded" FAULTFS_FAIL=close FAULTFS_ERRNO=EDQUOT
save_fails "fsync I/O error" "write failed: Input/output error" FAULTFS_FAIL=fsync FAULTFS_ERRNO=EIO
[ $unnamed = no ] ||
	save_fails "naming the temporary" "cannot replace: No space left on device" FAULTFS_FAIL=link
save_fails "the rename" "cannot replace: Input/output error" FAULTFS_FAIL=rename FAULTFS_ERRNO=EIO
save_fails "read-only file system" "cannot create a temporary file beside it: Read-only file system" \
	FAULTFS_FAIL=open FAULTFS_ERRNO=EROFS
# Short writes are not failures.
run 0 faulty FAULTFS_PATH="$d/out" FAULTFS_CHUNK=777 -- \
	"$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/out/model.safetensors"
same "$d/apply-new.safetensors" "$d/out/model.safetensors" "apply with short writes"
cp "$d/apply-old.safetensors" "$d/out/model.safetensors"

# The cache on a full or read-only disk: a warning, and the spectra.
for fault in "FAULTFS_FAIL=write" "FAULTFS_FAIL=write FAULTFS_AFTER=3000" \
             "FAULTFS_FAIL=mkdir FAULTFS_ERRNO=EROFS" "FAULTFS_FAIL=open,link FAULTFS_ERRNO=EROFS"; do
	rm -rf "$d/fullcache"
	# shellcheck disable=SC2086
	run 0 faulty FAULTFS_PATH="$d/fullcache" $fault -- \
		env XDG_CACHE_HOME="$d/fullcache" "$RANKSCOPE" spectra -q -j2 "$mlp"
	equals "$out" "$mlp_csv" "cache unwritable ($fault): the spectra are all there"
	contains "$err" "rankscope: warning: spectrum cache not written: $d/fullcache" \
		"cache unwritable ($fault): a warning naming it"
	contains "$err" "will be computed again next time" "cache unwritable ($fault): what it costs"
	[ -d "$d/fullcache" ] && no_temporaries "$d/fullcache" "cache unwritable ($fault)"
done

# Real limits: a file size limit (SIGXFSZ ignored: write(2) says EFBIG).
( ulimit -f 1 && trap '' XFSZ && exec head -c 8192 /dev/zero ) >"$d/probe" 2>/dev/null
if [ "$(wc -c <"$d/probe" | tr -d ' ')" -ge 8192 ]; then
	echo "ulimit -f does not limit writes here: file size limit checks skipped"
else
	( ulimit -f 2 && trap '' XFSZ &&
	  exec "$RANKSCOPE" run uniform --param keep=0.6 -q -j2 --no-cache "$mlp" -o "$d/out/plan.json" ) \
		>/dev/null 2>"$d/xfsz.err"
	status=$?
	equals "$status" 1 "run -o over the file size limit fails"
	contains "$(cat "$d/xfsz.err")" "$d/out/plan.json: write failed: File too large" "... saying why"
	same "$d/plan-old.json" "$d/out/plan.json" "... the old plan intact"
	( ulimit -f 64 && trap '' XFSZ &&
	  exec "$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/out/model.safetensors" ) \
		>/dev/null 2>"$d/xfsz.err"
	status=$?
	equals "$status" 1 "apply over the file size limit fails"
	contains "$(cat "$d/xfsz.err")" "$d/out/model.safetensors: write failed: File too large" "... saying why"
	same "$d/apply-old.safetensors" "$d/out/model.safetensors" "... the old output intact"
	no_temporaries "$d/out" "file size limit"
fi

# Outputs that are not regular files are written through, never renamed
# over: a FIFO stays a FIFO and gets the plan.
mkfifo "$d/out/fifo"
timeout 60 cat "$d/out/fifo" >"$d/fifo.got" &
reader=$!
run 0 "$RANKSCOPE" run uniform --param keep=0.6 -q -j2 "$mlp" -o "$d/out/fifo"
wait $reader
check "a FIFO output stays a FIFO" test -p "$d/out/fifo"
same "$d/plan-new.json" "$d/fifo.got" "the plan went through the FIFO"
# A full device (a private node when we may make one, else /dev/full
# itself when we are not root, who could otherwise replace it).
full=""
if mknod "$d/out/full" c 1 7 2>/dev/null && [ -c "$d/out/full" ]; then
	full=$d/out/full
elif [ "$(id -u)" != 0 ] && [ -c /dev/full ]; then
	full=/dev/full
else
	echo "no full device to write to: device-full checks skipped"
fi
if [ -n "$full" ]; then
	run 1 "$RANKSCOPE" run uniform -q -j2 "$mlp" -o "$full"
	contains "$err" "$full: write failed: No space left on device" "run -o onto a full device"
	run 1 "$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$full"
	contains "$err" "$full: write failed: No space left on device" "apply onto a full device"
	check "the device is still a device" test -c "$full"
fi
rm -f "$d/out/fifo" "$d/out/full"

# ---- 3. read-only directories ----------------------------------------------------
# Root ignores permission bits; without CAP_DAC_OVERRIDE it does not.
unpriv=""
if [ "$(id -u)" = 0 ]; then
	unpriv="setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search --"
	# shellcheck disable=SC2086
	$unpriv true 2>/dev/null || unpriv=none
fi
mkdir "$d/ro" "$d/rocache"
cp "$d/plan-old.json" "$d/ro/plan.json"
cp "$d/apply-old.safetensors" "$d/ro/model.safetensors"
chmod 555 "$d/ro" "$d/rocache"
# shellcheck disable=SC2086
if [ "$unpriv" = none ] || { [ -z "$unpriv" ] && ( : >"$d/ro/probe" ) 2>/dev/null; } ||
   { [ -n "$unpriv" ] && $unpriv sh -c ": >'$d/ro/probe'" 2>/dev/null; }; then
	rm -f "$d/ro/probe"
	echo "cannot drop the right to write everywhere: read-only directory checks skipped"
else
	# shellcheck disable=SC2086
	run 1 $unpriv "$RANKSCOPE" run uniform --param keep=0.6 -q -j2 "$mlp" -o "$d/ro/plan.json"
	contains "$err" "$d/ro/plan.json: cannot create a temporary file beside it: Permission denied" \
		"run -o into a read-only directory"
	same "$d/plan-old.json" "$d/ro/plan.json" "... the old plan intact"
	# shellcheck disable=SC2086
	run 1 $unpriv "$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/ro/model.safetensors"
	contains "$err" "$d/ro/model.safetensors: cannot create a temporary file beside it: Permission denied" \
		"apply into a read-only directory"
	same "$d/apply-old.safetensors" "$d/ro/model.safetensors" "... the old output intact"
	no_temporaries "$d/ro" "read-only directory"
	# shellcheck disable=SC2086
	run 0 $unpriv env XDG_CACHE_HOME="$d/rocache" "$RANKSCOPE" spectra -q -j2 "$cnn"
	equals "$out" "$cnn_csv" "a read-only cache: the spectra are all there"
	contains "$err" "warning: spectrum cache not written: $d/rocache/rankscope: cannot create directory: Permission denied" \
		"a read-only cache: a warning"
fi
chmod 755 "$d/ro" "$d/rocache"

# ---- 4. kill -9 at random points -------------------------------------------------
# The output sits on a slow disk (every write sleeps 3 ms and writes at
# most CHUNK bytes), so that the kills land inside the writes as well as
# before and after them: the delays spread over 1.4 times an uninterrupted
# run.  After each kill OUT is the old file or the complete new one (absent
# only if it was absent), and any temporary a kill left is complete: a
# partial file is never visible under any name.

# kill_loop WHAT N CHUNK OLD NEW VALIDATE CMD...: CMD writes $d/kill/out.
kill_loop() {
	kwhat=$1 kn=$2 kchunk=$3 kold=$4 knew=$5 kvalid=$6
	shift 6
	kout=$d/kill/out
	rm -rf "$d/kill"
	mkdir "$d/kill"
	t0=$(date +%s%N)
	faulty FAULTFS_PATH="$d/kill" FAULTFS_SLOW_US=3000 FAULTFS_CHUNK="$kchunk" -- \
		"$@" >/dev/null 2>&1
	t1=$(date +%s%N)
	span=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 * 1.4 }')
	same "$knew" "$kout" "$kwhat: the uninterrupted run writes the new file"
	nold=0 nnew=0 nabsent=0 nleft=0 k=0
	while [ $k -lt "$kn" ]; do
		if [ $((k % 4)) -eq 3 ]; then rm -f "$kout"; else cp "$kold" "$kout"; fi
		delay=$(rnd $((k + 1000 * ${#kwhat})) "$span")
		# a simple command: $! is the program itself, not a subshell
		env LD_PRELOAD="$FAULTFS" FAULTFS_PATH="$d/kill" FAULTFS_SLOW_US=3000 \
			FAULTFS_CHUNK="$kchunk" "$@" >/dev/null 2>&1 &
		pid=$!
		sleep "$delay"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		checks=$((checks + 1))
		if [ ! -e "$kout" ]; then
			[ $((k % 4)) -eq 3 ] || fail "$kwhat: killed after ${delay}s: the old file vanished"
			nabsent=$((nabsent + 1))
		elif cmp -s "$kout" "$knew"; then
			nnew=$((nnew + 1))
		elif cmp -s "$kout" "$kold" && [ $((k % 4)) -ne 3 ]; then
			nold=$((nold + 1))
		else
			fail "$kwhat: killed after ${delay}s: $(wc -c <"$kout") bytes that are neither the old nor the new file"
		fi
		if [ -e "$kout" ]; then
			checks=$((checks + 1))
			$kvalid "$kout" >/dev/null 2>&1 || fail "$kwhat: killed after ${delay}s: the output does not open"
		fi
		for tmp in "$kout".tmp-*; do
			[ -e "$tmp" ] || continue
			checks=$((checks + 1))
			[ $unnamed = no ] || cmp -s "$tmp" "$knew" ||
				fail "$kwhat: killed after ${delay}s: a partial temporary $tmp"
			nleft=$((nleft + 1))
			rm -f "$tmp"
		done
		k=$((k + 1))
	done
	echo "$kwhat: $kn kills in the first ${span}s: old $nold, new $nnew, absent $nabsent, complete temporaries $nleft"
}

valid_plan() {
	"$RANKSCOPE" show "$1" "$mlp"
}

valid_model() {
	"$RANKSCOPE" info -q --no-cache "$1"
}

kill_loop "run -o" 16 128 "$d/plan-old.json" "$d/plan-new.json" valid_plan \
	"$RANKSCOPE" run uniform --param keep=0.6 -q -j2 "$mlp" -o "$d/kill/out"
kill_loop "apply" 12 8192 "$d/apply-old.safetensors" "$d/apply-new.safetensors" valid_model \
	"$RANKSCOPE" apply "$d/plan-new.json" -q -j2 "$mlp" -o "$d/kill/out"
# the cache those runs shared (and were killed writing) is sound
run 0 "$RANKSCOPE" spectra -q -j2 "$mlp"
equals "$out" "$mlp_csv" "the cache after kill -9 serves the right spectra"
no_temporaries "$XDG_CACHE_HOME" "the cache after kill -9"

# ---- 5. one cache, two processes; damaged entries ------------------------------
shared=$d/shared
i=0
while [ $i -lt 6 ]; do
	# from empty, and with some entries gone
	if [ $((i % 2)) -eq 0 ]; then
		rm -rf "$shared"
	else
		find "$shared" -name '*.spectrum' | head -2 | xargs rm -f
	fi
	XDG_CACHE_HOME=$shared "$RANKSCOPE" spectra -q -j2 "$cnn" >"$d/a.out" 2>"$d/a.err" &
	pa=$!
	XDG_CACHE_HOME=$shared "$RANKSCOPE" spectra -q -j2 "$cnn" >"$d/b.out" 2>"$d/b.err" &
	pb=$!
	wait $pa
	sa=$?
	wait $pb
	sb=$?
	equals "$sa $sb" "0 0" "two processes on one cache (round $i) both succeed"
	equals "$(cat "$d/a.out")" "$cnn_csv" "round $i: the first has the right spectra"
	equals "$(cat "$d/b.out")" "$cnn_csv" "round $i: the second has the right spectra"
	equals "$(cat "$d/a.err" "$d/b.err")" "" "round $i: no warnings"
	i=$((i + 1))
done
run 0 env XDG_CACHE_HOME="$shared" "$RANKSCOPE" info -q -j2 "$cnn"
contains "$out" "spectra: 5 from cache" "the shared cache is complete and valid"
no_temporaries "$shared" "the shared cache"

# Damage every entry one way at a time: each is recomputed (nothing from
# the cache, the right spectra) and rewritten (all from the cache next).
entries=$(find "$shared" -name '*.spectrum')
for damage in flip truncate garbage empty; do
	for e in $entries; do
		case $damage in
		flip) printf '\377' | dd of="$e" bs=1 seek=60 conv=notrunc status=none ;;
		truncate) truncate -s 40 "$e" ;;
		garbage) head -c "$(wc -c <"$e")" /dev/urandom >"$e.new" && mv "$e.new" "$e" ;;
		empty) : >"$e" ;;
		esac
	done
	run 0 env XDG_CACHE_HOME="$shared" "$RANKSCOPE" info -q -j2 "$cnn"
	contains "$out" "spectra: 0 from cache" "entries damaged ($damage) are not served"
	run 0 env XDG_CACHE_HOME="$shared" "$RANKSCOPE" spectra -q -j2 "$cnn"
	equals "$out" "$cnn_csv" "entries damaged ($damage): recomputed right"
	run 0 env XDG_CACHE_HOME="$shared" "$RANKSCOPE" info -q -j2 "$cnn"
	contains "$out" "spectra: 5 from cache" "entries damaged ($damage) were rewritten"
done
# An entry that cannot be replaced (a directory in its place): a warning.
e=$(echo "$entries" | head -1)
rm -f "$e"
mkdir "$e"
run 0 env XDG_CACHE_HOME="$shared" "$RANKSCOPE" spectra -q -j2 "$cnn"
equals "$out" "$cnn_csv" "an entry that cannot be replaced: the spectra are right"
contains "$err" "warning: spectrum cache not written: $e: cannot replace" "... and a warning"
rmdir "$e"
no_temporaries "$shared" "damaged entries"

finish
