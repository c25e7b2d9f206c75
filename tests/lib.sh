# lib.sh — shared by the shell tests: a private scratch directory and
# cache, and checks that count failures.  Sourced, not run.
set -u
: "${RANKSCOPE:?RANKSCOPE must point at the binary (make check sets it)}"
: "${SAMPLES:?SAMPLES must point at samples/}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rankscope-cli-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
XDG_CACHE_HOME=$scratch/cache
export XDG_CACHE_HOME
failures=0
checks=0

fail() {
	failures=$((failures + 1))
	echo "FAIL: $*" >&2
}

# run EXPECTED_STATUS CMD... : runs CMD, keeping stdout in $out and stderr
# in $err, and checks its exit status.
run() {
	expected=$1
	shift
	checks=$((checks + 1))
	"$@" >"$scratch/out" 2>"$scratch/err"
	status=$?
	out=$(cat "$scratch/out")
	err=$(cat "$scratch/err")
	[ "$status" -eq "$expected" ] ||
		fail "exit $status, expected $expected: $*
stdout: $(head -c 600 "$scratch/out")
stderr: $(head -c 600 "$scratch/err")"
}

# contains HAYSTACK NEEDLE WHAT
contains() {
	checks=$((checks + 1))
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: expected '$2' in: $(printf '%s' "$1" | head -c 300)" ;;
	esac
}

lacks() {
	checks=$((checks + 1))
	case "$1" in
	*"$2"*) fail "$3: did not expect '$2' in: $(printf '%s' "$1" | head -c 600)" ;;
	esac
}

equals() {
	checks=$((checks + 1))
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# same FILE_A FILE_B WHAT: byte-identical files.
same() {
	checks=$((checks + 1))
	cmp -s "$1" "$2" || fail "$3: $1 and $2 differ: $(diff "$1" "$2" 2>&1 | head -6)"
}

# check WHAT CONDITION...: the shell condition holds.
check() {
	cwhat=$1
	shift
	checks=$((checks + 1))
	"$@" || fail "$cwhat"
}

# edit_entry SRC DST LAYER OLD NEW: a plan file SRC with the first OLD after
# LAYER's "name" line replaced by NEW, into DST.
edit_entry() {
	awk -v name="\"name\": \"$3\"," -v old="$4" -v new="$5" '
		index($0, name) { on = 1 }
		on && !done && (i = index($0, old)) {
			$0 = substr($0, 1, i - 1) new substr($0, i + length(old)); done = 1
		}
		{ print }
		END { if (!done) exit 1 }' "$1" >"$2" || fail "edit_entry: '$4' not in $3's entry of $1"
}

# find_python MODULE...: $python is the first of $PYTHON3, /usr/bin/python3
# and python3 that imports every MODULE; empty, and status 1, when none does
# (the caller says what it skips).
find_python() {
	python=""
	fpimport=$(printf '%s, ' "$@")
	for p in ${PYTHON3:-} /usr/bin/python3 python3; do
		if "$p" -c "import ${fpimport%, }" 2>/dev/null; then
			python=$p
			return 0
		fi
	done
	return 1
}

# py_checks WHAT SCRIPT ARGS...: runs the independent checker
# tests/SCRIPT with $python (nothing when $python is empty: the caller
# said why).  Its checks count as ours, each FAIL line it prints is one of
# our failures, and it must finish with "NAME: N checks, F failed".
py_checks() {
	pywhat=$1 pyscript=$2
	shift 2
	[ -n "$python" ] || return 0
	"$python" "$TESTS_SRCDIR/$pyscript" "$@" >"$scratch/py-out" 2>"$scratch/py-err"
	pystatus=$?
	summary=$(sed -n 's/^[a-z-]*: \([0-9]*\) checks, \([0-9]*\) failed$/\1 \2/p' "$scratch/py-out")
	checks=$((checks + ${summary%% *} + 1))
	grep '^FAIL: ' "$scratch/py-err" | head -40 >"$scratch/py-fails"
	while IFS= read -r line; do
		fail "$pywhat: ${line#FAIL: }"
	done <"$scratch/py-fails"
	if [ -z "$summary" ] || { [ "$pystatus" -ne 0 ] && [ "${summary##* }" = 0 ]; }; then
		fail "$pywhat: $pyscript $1 exit $pystatus: $(head -c 1500 "$scratch/py-err")"
	fi
}

# make_nan_model FILE: layer "good" = [[1, 0], [0, 2]] and layer "bad" =
# [[1, NaN], [0, 0]], float32, written byte by byte.
make_nan_model() {
	header='{"good":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"bad":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}'
	while [ $((${#header} % 8)) -ne 0 ]; do header="$header "; done
	{
		printf "\\$(printf %03o ${#header})\0\0\0\0\0\0\0"
		printf '%s' "$header"
		printf '\0\0\200\77\0\0\0\0\0\0\0\0\0\0\0\100'
		printf '\0\0\200\77\0\0\300\177\0\0\0\0\0\0\0\0'
	} >"$1"
}

# plan_lua FILE NAME 'LAYER SPEC'...: writes to FILE a strategy NAME that
# sets each LAYER to SPEC (a plan:set table, as Lua text).
plan_lua() {
	plfile=$1 plname=$2
	shift 2
	{
		printf 'return { name = "%s", run = function(model, plan)\n' "$plname"
		for pair in "$@"; do
			printf '\tplan:set(model:layer("%s"), %s)\n' "${pair%% *}" "${pair#* }"
		done
		printf '\treturn "%s" end }\n' "$plname"
	} >"$plfile"
}

# plan_apply PREFIX MODEL LUA [OPTIONS...]: PREFIX.json planned by LUA,
# applied as parts (PREFIX-parts.safetensors) and --dense
# (PREFIX-dense.safetensors); $out is the --dense apply's output.
plan_apply() {
	papre=$1 pamodel=$2 palua=$3
	shift 3
	run 0 "$RANKSCOPE" run -q --no-cache "$@" -o "$papre.json" "$palua" "$pamodel"
	run 0 "$RANKSCOPE" apply -q --no-cache "$@" -o "$papre-parts.safetensors" \
		"$papre.json" "$pamodel"
	run 0 "$RANKSCOPE" apply -q --no-cache --dense "$@" -o "$papre-dense.safetensors" \
		"$papre.json" "$pamodel"
}

finish() {
	echo "$(basename "$0"): $checks checks, $failures failed"
	[ "$failures" -eq 0 ]
}
