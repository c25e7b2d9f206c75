# lua-lib.sh — shared by the tests that run Lua through the binary.
# Sourced after lib.sh.

# Strategies come from the source tree and from nowhere else: no user
# configuration, no installed copy.
lua_dir=$(cd "$TESTS_SRCDIR/../lua" && pwd)
RANKSCOPE_LUA_DIR=$lua_dir
XDG_CONFIG_HOME=$scratch/config
export RANKSCOPE_LUA_DIR XDG_CONFIG_HOME
luatests=$TESTS_SRCDIR/lua

# lua_run WHAT CMD...: runs CMD, a `rankscope run` of a tests/lua script
# that ends with check.done(): each of its checks counts as one of ours,
# each "lua-fail:" line it printed is a failure, and it must exit 0 having
# finished its checks (or 1 because some failed).  Leaves $out and $err as
# run does; stdout is also kept in $scratch/lua-out.
lua_run() {
	what=$1
	shift
	"$@" >"$scratch/out" 2>"$scratch/err"
	status=$?
	cp "$scratch/out" "$scratch/lua-out"
	out=$(cat "$scratch/out")
	err=$(cat "$scratch/err")
	n=$(sed -n 's/^lua-checks: \([0-9]*\)$/\1/p' "$scratch/out")
	checks=$((checks + ${n:-0} + 1))
	grep '^lua-fail: ' "$scratch/out" >"$scratch/lua-fails"
	while IFS= read -r line; do
		fail "$what: ${line#lua-fail: }"
	done <"$scratch/lua-fails"
	if [ -z "$n" ] || { [ "$status" -ne 0 ] && [ ! -s "$scratch/lua-fails" ]; } ||
	   { [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; }; then
		fail "$what: exit $status without finishing its checks: $(head -c 2000 "$scratch/err")"
	fi
}
