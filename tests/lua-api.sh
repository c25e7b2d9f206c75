#!/bin/sh
# lua-api.sh — the Lua layer through `rankscope run` and `rankscope
# strategies`: every model, layer and plan method against known spectra
# (tests/lua/api.lua), error reports (file:line, traceback, exit 1, no plan
# printed), the sandbox (tests/lua/sandbox.lua), interruption by SIGINT,
# strategy parameters and their checks, and where strategies are found.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"

. "$TESTS_SRCDIR/lua-lib.sh"
user_dir=$XDG_CONFIG_HOME/rankscope/strategies

# script NAME: the Lua text on stdin becomes $scratch/NAME.lua.
script() {
	cat >"$scratch/$1.lua"
}

version=$("$RANKSCOPE" --version | sed -n 's/^rankscope \([^ ]*\).*/\1/p')
model=$scratch/api.safetensors
"$MAKE_MODEL" "$model" a=6x4@0.5 b=3x8@0.8 c=12x9@0.7 conv=8x3x3x3 bias=7 \
	enc.0.weight=5x5@0.9 || fail "make-model"

# ---- every method and field, against spectra known in advance ----------
lua_run "api.lua" "$RANKSCOPE" run --strategy-path "$luatests" "$luatests/api.lua" "$model" \
	--param path="$model" --param version="$version"
equals "$err" "" "api.lua: nothing on stderr"
contains "$out" "left: a=2 c=3" "api.lua prints through print()"
# the plan the script left is the one printed
line=$(printf '%s\n' "$out" | grep '^a ')
equals "$(printf '%s' "$line" | awk '{print $3, $4}')" "lowrank 2" "printed plan: a at rank 2"
line=$(printf '%s\n' "$out" | grep '^c ')
equals "$(printf '%s' "$line" | awk '{print $3, $4}')" "lowrank 3" "printed plan: c at rank 3"
line=$(printf '%s\n' "$out" | grep '^conv ')
equals "$(printf '%s' "$line" | awk '{print $2, $3}')" "8x27 dense" "printed plan: conv dense"
contains "$out" "2 of 5 layers compressed" "printed totals"
# print's output comes before the table
first=$(printf '%s\n' "$out" | head -1)
equals "$first" "left: a=2 c=3" "script output precedes the plan"

# conv layers under another fold scheme
for fold in 1 3; do
	lua_run "api.lua --fold $fold" "$RANKSCOPE" run --fold $fold --strategy-path "$luatests" \
		"$luatests/api.lua" "$model" --param path="$model" --param version="$version" \
		--param fold=$fold
done

# rankscope.grouped: the channel-grouped SVD agrees with the spectrum at one
# group and with its own group spectra at every group count
lua_run "grouped.lua" "$RANKSCOPE" run --strategy-path "$luatests" "$luatests/grouped.lua" "$model"

# rankscope.tucker_modes, rankscope.tucker, rankscope.tt, rankscope.cp: the
# bindings of the tensor decompositions against the layers' own spectra and
# the costs' formulas, on api.safetensors' layers plus a rank-1 and a
# composed layer, with the conv kernel under two fold schemes
tensor=$scratch/tensor.safetensors
"$MAKE_MODEL" "$tensor" a=6x4@0.5 b=3x8@0.8 c=12x9@0.7 conv=8x3x3x3 bias=7 \
	enc.0.weight=5x5@0.9 r1=5x3@0 f.factors.0.weight=4x6 f.factors.1.weight=5x4 ||
	fail "make-model tensor"
for fold in 0 3; do
	lua_run "tensor.lua --fold $fold" "$RANKSCOPE" run --fold $fold --compose 'f.factors.#.weight' \
		--strategy-path "$luatests" "$luatests/tensor.lua" "$tensor"
done

# Ranks given as floats with integral values (6 / 2) are ranks.
lua_run "float-rank.lua" "$RANKSCOPE" run --strategy-path "$luatests" \
	"$luatests/float-rank.lua" "$model"

# metadata, on a sample model
mlp=$SAMPLES/digits-mlp.safetensors
lua_run "metadata.lua" "$RANKSCOPE" run --strategy-path "$luatests" "$luatests/metadata.lua" \
	"$mlp" --param path="$mlp"

# ---- the man page documents every method, field and shipped strategy -------
man7=$(sed 's/\\-/-/g; s/\\(dq/"/g' "$TESTS_SRCDIR/../man/rankscope-lua.7")
model_c=$TESTS_SRCDIR/../src/lua-model.c
tensor_c=$TESTS_SRCDIR/../src/lua-tensor.c
for m in $(sed -n 's/^[[:space:]]*{"\([a-z_]*\)", \(layer\|model\|plan\)_[a-z_]*},$/\2:\1/p' "$model_c"); do
	contains "$man7" "$m(" "rankscope-lua(7) documents $m()"
done
for f in $(sed -n 's/^[[:space:]]*{"\([a-z_]*\)", module_[a-z_]*},$/\1/p' "$model_c" "$tensor_c"); do
	contains "$man7" "rankscope.$f(" "rankscope-lua(7) documents rankscope.$f()"
done
# entry FIELD: the man page has an entry (.B or .BR line) naming FIELD,
# possibly after model., layer. or rankscope. and among others.
entry() {
	checks=$((checks + 1))
	printf '%s\n' "$man7" |
		grep -Eq "^\.BR? ((model|layer|rankscope)\.)?([a-z_]+ \", \" )*$1( |\$)" ||
		fail "rankscope-lua(7) has no entry for $1"
}
# layer and model fields, figures and totals fields, the module's fields,
# the fields of the tensor decompositions' results
for f in $(sed -n 's/.*strcmp(key, "\([a-z_]*\)").*/\1/p; s/.*lua_setfield(L, -2, "\([a-z][a-z_]*\)").*/\1/p; s/^[[:space:]]*FIELD_[A-Z]*(\([a-z_]*\));$/\1/p; s/.*set_[a-z]*(L, "\([a-z_]*\)".*/\1/p' "$model_c" "$tensor_c" |
	grep -v '^methods$'); do
	entry "$f"
done
for file in "$lua_dir"/*.lua; do
	name=$(basename "$file" .lua)
	# a module the strategies require (no run function) is not a strategy
	grep -q 'run = function\|function M.run' "$file" || continue
	contains "$man7" "
.B $name
" "rankscope-lua(7) documents the strategy $name"
	for p in $(sed -n 's/^[[:space:]]*{ name = "\([a-z_]*\)", type.*/\1/p' "$file"); do
		contains "$man7" "
.B $p
" "rankscope-lua(7) documents $name's parameter $p"
	done
done

# ---- the sandbox ----------------------------------------------------------
mkdir -p "$scratch/helpers"
printf 'return { answer = 42 }\n' >"$scratch/helpers/helper.lua"
lua_run "sandbox.lua" env RANKSCOPE_TEST_VAR=sandbox "$RANKSCOPE" run \
	--strategy-path "$luatests" --strategy-path "$scratch/helpers" "$luatests/sandbox.lua" "$model"
tab=$(printf '\t')
contains "$out" "print:${tab}1${tab}2.5${tab}nil${tab}true${tab}layer a (6x4)" \
	"print: tab-separated, tostring of each value, on stdout"
contains "$out" "io.write: no newline7
" "io.write writes its arguments as they are"
equals "$err" "" "sandbox.lua: nothing on stderr"

# A module that is not on the search path is not found.
script needs-helper <<'EOF'
return require("helper").answer
EOF
run 1 "$RANKSCOPE" run "$scratch/needs-helper.lua" "$model"
contains "$err" "module 'helper' not found" "require without --strategy-path"
lacks "$err" "$scratch/helpers/helper.lua" "only the search path is searched"

# ---- errors ---------------------------------------------------------------
# (run from the scratch directory: Lua shortens a script's name to its last
# 59 characters in messages, which a deep source tree, a VPATH or distcheck
# build, would exceed)
errs=$scratch/errors
mkdir "$errs"
cp "$luatests/error-runtime.lua" "$luatests/error-syntax.lua" "$errs/"
run 1 "$RANKSCOPE" run "$errs/error-runtime.lua" "$model"
contains "$err" "rankscope: $errs/error-runtime.lua:9: attempt to index a nil value" \
	"runtime error: file, line and message"
contains "$err" "stack traceback:" "runtime error: traceback"
contains "$err" "error-runtime.lua:9: in " "traceback names the failing line"
contains "$err" "error-runtime.lua:13: in " "traceback names the caller"
contains "$err" "error-runtime.lua:16: in main chunk" "traceback reaches the main chunk"
equals "$out" "" "runtime error: no plan printed"

run 1 "$RANKSCOPE" run "$errs/error-syntax.lua" "$model"
contains "$err" "$errs/error-syntax.lua:3:" "syntax error: file and line"
contains "$err" "near '='" "syntax error: the token"
equals "$out" "" "syntax error: nothing on stdout"

script badarg <<'EOF'
local model = ...
local layer = model:layer("a")
print(layer:sigma(0))
EOF
run 1 "$RANKSCOPE" run "$scratch/badarg.lua" "$model"
contains "$err" "badarg.lua:3: bad argument #1 to 'sigma' (index out of range 1..k)" \
	"bad argument names the argument"
contains "$err" "in method 'sigma'" "traceback names the method"

script badset <<'EOF'
local model, plan = ...
plan:set("nosuch", 3)
EOF
run 1 "$RANKSCOPE" run "$scratch/badset.lua" "$model"
contains "$err" "badset.lua:2: bad argument #1 to 'set' (no layer named 'nosuch')" \
	"plan:set of an unknown layer"

script errobj <<'EOF'
error({ code = 1 })
EOF
run 1 "$RANKSCOPE" run "$scratch/errobj.lua" "$model"
contains "$err" "(error object is a table value)" "a non-string error object"
script errtostring <<'EOF'
error(setmetatable({}, { __tostring = function() return "custom failure" end }))
EOF
run 1 "$RANKSCOPE" run "$scratch/errtostring.lua" "$model"
contains "$err" "rankscope: custom failure" "an error object's __tostring"
script errlevel0 <<'EOF'
error("no position here", 0)
EOF
run 1 "$RANKSCOPE" run "$scratch/errlevel0.lua" "$model"
equals "$(printf '%s\n' "$err" | head -1)" "rankscope: no position here" "error(msg, 0)"

# A plain script that printed, changed the plan, then failed: what it
# printed stays, no plan is printed, exit 1.
script partial <<'EOF'
local model, plan = ...
plan:set("a", 1)
print("before the failure")
error("late failure")
EOF
run 1 "$RANKSCOPE" run "$scratch/partial.lua" "$model"
equals "$out" "before the failure" "a failed script prints no plan"
contains "$err" "partial.lua:4: late failure" "the failure is reported"

# A strategy that sets ranks, then fails.
mkdir -p "$scratch/failing"
cat >"$scratch/failing/halfway.lua" <<'EOF'
return {
	name = "halfway",
	description = "sets one rank, then fails",
	run = function(model, plan)
		plan:set(model:layers()[1], 1)
		error("gave up halfway")
	end,
}
EOF
run 1 "$RANKSCOPE" run --strategy-path "$scratch/failing" halfway "$model"
equals "$out" "" "a failed strategy prints nothing"
contains "$err" "halfway.lua:6: gave up halfway" "a failed strategy's message"
contains "$err" "stack traceback:" "a failed strategy's traceback"
run 1 "$RANKSCOPE" run -o "$scratch/halfway.plan.json" --strategy-path "$scratch/failing" \
	halfway "$model"
checks=$((checks + 1))
[ ! -e "$scratch/halfway.plan.json" ] || fail "a failed strategy saves no plan (-o)"

# Plain scripts may return anything but a table; a table is a strategy.
script returns-number <<'EOF'
local model, plan = ...
plan:set("b", 1)
return 5
EOF
run 0 "$RANKSCOPE" run "$scratch/returns-number.lua" "$model"
contains "$out" "1 of 5 layers compressed" "a script returning a number is a plain script"
script returns-table <<'EOF'
return { 1, 2, 3 }
EOF
run 1 "$RANKSCOPE" run "$scratch/returns-table.lua" "$model"
contains "$err" "returns-table.lua: strategy has no 'name' string" "a returned table is a strategy"

run 1 "$RANKSCOPE" run "$scratch/missing.lua" "$model"
contains "$err" "$scratch/missing.lua: no such script" "missing script"
equals "$out" "" "missing script: nothing on stdout"
run 1 "$RANKSCOPE" run nosuch "$model"
contains "$err" "no strategy named 'nosuch' (rankscope strategies lists them)" "unknown strategy"

# Plain scripts get --param values as strings, unchecked.
script echo-params <<'EOF'
local _, _, params = ...
print(params.alpha, math.type(params.alpha) or type(params.alpha), params.beta)
EOF
run 0 "$RANKSCOPE" run "$scratch/echo-params.lua" "$model" --param alpha=0.5 --param beta=x=y
contains "$out" "0.5${tab}string${tab}x=y" "plain script params are strings"

# ---- interruption -----------------------------------------------------------
# interrupt WHAT ARGS...: runs `rankscope run ARGS` in the background,
# sends SIGINT after a second, and expects exit 1 within 5 seconds with
# "interrupted" on stderr and no plan on stdout.  timeout(1) is a guard so
# that the test never hangs; it passes SIGINT on to the program.  A program
# killed by the signal (130) had not reached the script yet, on a loaded
# machine: that is tried again with a longer wait.
interrupt() {
	what=$1
	shift
	checks=$((checks + 4))
	for delay in 1 3 6; do
		timeout 20 "$RANKSCOPE" run "$@" >"$scratch/out" 2>"$scratch/err" &
		pid=$!
		sleep $delay
		start=$(date +%s)
		kill -INT $pid
		wait $pid
		status=$?
		elapsed=$(($(date +%s) - start))
		[ "$status" -eq 130 ] || break
	done
	[ "$status" -eq 1 ] || fail "$what: exit $status after SIGINT, expected 1 (124: still running after 20 s)"
	[ "$elapsed" -le 5 ] || fail "$what: took $elapsed s to stop"
	grep -q interrupted "$scratch/err" || fail "$what: no 'interrupted' in: $(head -c 300 "$scratch/err")"
	[ ! -s "$scratch/out" ] || fail "$what: printed: $(head -c 300 "$scratch/out")"
}

script spin <<'EOF'
while true do end
EOF
interrupt "an endless loop" "$scratch/spin.lua" "$model"

mkdir -p "$scratch/spinning"
cat >"$scratch/spinning/spinner.lua" <<'EOF'
return {
	name = "spinner",
	description = "sets a rank, then never ends",
	run = function(model, plan)
		plan:set(model:layers()[1], 1)
		local x = 0
		while true do x = x + 1 end
	end,
}
EOF
interrupt "an endless strategy" --strategy-path "$scratch/spinning" spinner "$model"

script spin-calls <<'EOF'
local model = ...
local layer = model:layers()[1]
while true do layer:err_fro(1) end
EOF
interrupt "an endless loop of API calls" "$scratch/spin-calls.lua" "$model"

script spin-coroutine <<'EOF'
while true do coroutine.wrap(function() while true do end end)() end
EOF
interrupt "an endless loop in a coroutine" "$scratch/spin-coroutine.lua" "$model"

# An interruption is not an error the script may catch: a loop that wraps
# its work in pcall must stop too.
script spin-pcall <<'EOF'
while true do pcall(function() while true do end end) end
EOF
interrupt "an endless loop under pcall" "$scratch/spin-pcall.lua" "$model"

# ---- strategy parameters ----------------------------------------------------
mkdir -p "$scratch/echo"
cat >"$scratch/echo/echo.lua" <<'EOF'
-- prints the parameters it was given, with their Lua types
return {
	name = "echo",
	description = "prints its parameters",
	params = {
		{ name = "x", type = "number", default = 0.5, min = 0, max = 1, help = "a fraction" },
		{ name = "n", type = "integer", default = 3, min = 1, max = 10, help = "a count" },
		{ name = "big", type = "integer", default = 7, help = "an unbounded count" },
		{ name = "flag", type = "boolean", default = false, help = "a switch" },
		{ name = "label", type = "string", default = "hello", help = "a word" },
		{ name = "mode", type = "choice", choices = { "fast", "medium", "slow" },
		  default = "medium", help = "a speed" },
		{ name = "opt", type = "number", help = "no default" },
	},
	run = function(model, plan, params)
		local keys = {}
		for k in pairs(params) do keys[#keys + 1] = k end
		table.sort(keys)
		for _, k in ipairs(keys) do
			print(k .. " " .. (math.type(params[k]) or type(params[k])) .. " " .. tostring(params[k]))
		end
		return "echo done"
	end,
}
EOF
# echo_run STATUS PARAM...: runs the echo strategy.
echo_run() {
	expected=$1
	shift
	run "$expected" "$RANKSCOPE" run --strategy-path "$scratch/echo" echo "$model" "$@"
}

echo_run 0
contains "$out" "x float 0.5" "default number"
contains "$out" "n integer 3" "default integer"
contains "$out" "big integer 7" "default integer without a range"
contains "$out" "flag boolean false" "default boolean"
contains "$out" "label string hello" "default string"
contains "$out" "mode string medium" "default choice"
lacks "$out" "opt " "a parameter without a default is nil"
equals "$(printf '%s\n' "$out" | tail -1)" "echo done" "run's string result follows the plan"
contains "$out" "total: params" "the plan is printed"

echo_run 0 --param x=0.25 --param n=10 --param flag=yes --param label="two words" \
	--param mode=slow --param opt=-3e2 --param big=-5
contains "$out" "x float 0.25" "number parameter"
contains "$out" "n integer 10" "integer parameter at its maximum"
contains "$out" "flag boolean true" "boolean yes"
contains "$out" "label string two words" "string parameter"
contains "$out" "mode string slow" "choice parameter"
contains "$out" "opt float -300.0" "number without default, exponent form"
contains "$out" "big integer -5" "negative integer"
echo_run 0 --param x=1 --param flag=1 --param n=1
contains "$out" "x float 1.0" "a number parameter is a float even when whole"
contains "$out" "flag boolean true" "boolean 1"
contains "$out" "n integer 1" "integer at its minimum"
echo_run 0 --param flag=no --param x=0
contains "$out" "flag boolean false" "boolean no"
contains "$out" "x float 0.0" "number at its minimum"
echo_run 0 --param flag=true --param flag=0
contains "$out" "flag boolean false" "the last of a repeated parameter wins"

# echo_fails ERROR PARAM...: a rejected --param: exit 1, the message, no
# output at all.
echo_fails() {
	message=$1
	shift
	echo_run 1 "$@"
	contains "$err" "$message" "rejected: $*"
	equals "$out" "" "nothing printed for: $*"
}
echo_fails "strategy 'echo': parameter 'x' takes a number, not 'abc'" --param x=abc
echo_fails "parameter 'x' takes a number, not '0.5kg'" --param x=0.5kg
echo_fails "parameter 'x' takes a number, not ''" --param x=
echo_fails "parameter 'x' takes a number, not 'nan'" --param x=nan
echo_fails "parameter 'x' takes a number, not 'inf'" --param x=inf
echo_fails "strategy 'echo': parameter 'x' = 1.5 is out of range 0..1" --param x=1.5
echo_fails "parameter 'x' = -0.1 is out of range 0..1" --param x=-0.1
echo_fails "strategy 'echo': parameter 'n' takes a whole number, not '2.5'" --param n=2.5
echo_fails "parameter 'n' = 11 is out of range 1..10" --param n=11
echo_fails "parameter 'n' = 0 is out of range 1..10" --param n=0
echo_fails "strategy 'echo': parameter 'flag' is a boolean (true or false), not 'maybe'" \
	--param flag=maybe
echo_fails "strategy 'echo': parameter 'mode' must be one of" --param mode=bogus
echo_fails "not 'bogus'" --param mode=bogus
echo_fails "strategy 'echo' has no parameter 'nosuch' (it has: x, n, big, flag, label, mode, opt)" \
	--param nosuch=1
echo_fails "strategy 'echo': parameter 'x' needs a value (name=value)" --param x
# Every valid choice is named when a choice is refused.
echo_run 1 --param mode=bogus
for choice in fast medium slow; do
	contains "$err" "$choice" "a refused choice lists '$choice'"
done
# A whole number too large for a Lua integer is refused, not wrapped.
echo_run 1 --param big=1e30
contains "$err" "'big'" "an integer parameter beyond Lua's integers is refused"
equals "$out" "" "nothing printed for big=1e30"

# The shipped strategies check their parameters the same way.
run 1 "$RANKSCOPE" run budget-minimax "$model" --param budget=abc
contains "$err" "strategy 'budget-minimax': parameter 'budget' takes a number, not 'abc'" \
	"shipped: not a number"
run 1 "$RANKSCOPE" run budget-greedy "$model" --param budget=2
contains "$err" "parameter 'budget' = 2 is out of range 0..1" "shipped: out of range"
run 1 "$RANKSCOPE" run budget-minimax "$model" --param metric=bogus
contains "$err" "parameter 'metric' must be one of params" "shipped: bad choice"
contains "$err" "flops" "shipped: bad choice names flops"
run 1 "$RANKSCOPE" run lc-rankselect "$model" --param relative=maybe
contains "$err" "parameter 'relative' is a boolean (true or false), not 'maybe'" \
	"shipped: bad boolean"
run 1 "$RANKSCOPE" run uniform "$model" --param ratio=0.5
contains "$err" "strategy 'uniform' has no parameter 'ratio' (it has: keep, metric, error)" \
	"shipped: unknown parameter lists the valid ones"
run 1 "$RANKSCOPE" run energy "$model" --param energy=1.01
contains "$err" "parameter 'energy' = 1.01 is out of range 0..1" "shipped: energy range"

# ---- rankscope strategies -----------------------------------------------------
run 0 "$RANKSCOPE" strategies
equals "$err" "" "strategies: nothing on stderr"
names=$(printf '%s\n' "$out" | grep -v '^searched:' | sed -n 's/^\([a-z-]*\): .*/\1/p' | tr '\n' ' ')
equals "$names" "alds budget-greedy budget-minimax energy global-prune lc-combination lc-rankselect lorita refine threshold tucker-search uniform " \
	"every shipped strategy, sorted by name"
for s in alds budget-greedy budget-minimax energy global-prune lc-combination lc-rankselect lorita threshold tucker-search uniform; do
	contains "$out" "
    from $lua_dir/$s.lua
" "strategies: $s comes from the shipped directory"
done
contains "$out" "budget-minimax: minimise the worst layer error under a params or FLOPs budget (ALDS)" \
	"strategies: name and description"
contains "$out" "
    budget (number, 0..1, default 0.5)
        fraction of the original params (or FLOPs) that may remain
" "strategies: a number parameter with range, default and help"
contains "$out" "    metric (choice: params|flops, default params)" "strategies: a choice parameter"
contains "$out" "    weighted (boolean, default false)" "strategies: a boolean parameter"
contains "$out" "    alpha (number, 0..inf, default 0.0001)" "strategies: an open range"
contains "$out" "    conv_threshold (number, -inf..1, default -1)" "strategies: no minimum"
equals "$(printf '%s\n' "$out" | tail -1)" "searched: $user_dir $lua_dir" "strategies: the search path"

run 0 "$RANKSCOPE" strategies --strategy-path "$scratch/echo"
contains "$out" "echo: prints its parameters
    from $scratch/echo/echo.lua
    x (number, 0..1, default 0.5)
        a fraction
    n (integer, 1..10, default 3)
        a count
    big (integer, default 7)
        an unbounded count
    flag (boolean, default false)
        a switch
    label (string, default hello)
        a word
    mode (choice: fast|medium|slow, default medium)
        a speed
    opt (number, default none)
        no default
" "strategies: a user strategy with every parameter type"
equals "$(printf '%s\n' "$out" | tail -1)" "searched: $scratch/echo $user_dir $lua_dir" \
	"strategies: --strategy-path comes first"

# A user strategy with a shipped one's file name replaces it.
mkdir -p "$scratch/override"
cat >"$scratch/override/uniform.lua" <<'EOF'
return {
	name = "uniform",
	description = "the user's own uniform",
	run = function(model, plan) print("user uniform ran") end,
}
EOF
run 0 "$RANKSCOPE" strategies --strategy-path "$scratch/override"
contains "$out" "uniform: the user's own uniform
    from $scratch/override/uniform.lua" "a user strategy overrides the shipped one"
lacks "$out" "$lua_dir/uniform.lua" "the overridden shipped strategy is not listed"
equals "$(printf '%s\n' "$out" | grep -c '^uniform:')" "1" "listed once"
run 0 "$RANKSCOPE" run --strategy-path "$scratch/override" uniform "$model"
contains "$out" "user uniform ran" "run uses the user's strategy"
contains "$out" "0 of 5 layers compressed" "the user's strategy made the plan"

# $XDG_CONFIG_HOME/rankscope/strategies, between --strategy-path and the
# shipped ones.
mkdir -p "$user_dir"
cat >"$user_dir/energy.lua" <<'EOF'
return { name = "energy", description = "from the config directory",
	run = function() print("config energy ran") end }
EOF
run 0 "$RANKSCOPE" strategies
contains "$out" "energy: from the config directory
    from $user_dir/energy.lua" "the config directory overrides the shipped directory"
run 0 "$RANKSCOPE" run energy "$model"
contains "$out" "config energy ran" "run finds the config directory's strategy"
mkdir -p "$scratch/cli-energy"
cat >"$scratch/cli-energy/energy.lua" <<'EOF'
return { name = "energy", description = "from --strategy-path",
	run = function() print("cli energy ran") end }
EOF
run 0 "$RANKSCOPE" run --strategy-path "$scratch/cli-energy" energy "$model"
contains "$out" "cli energy ran" "--strategy-path overrides the config directory"
rm -f "$user_dir/energy.lua"

# Without XDG_CONFIG_HOME (or with a relative one): ~/.config.
mkdir -p "$scratch/home/.config/rankscope/strategies"
cat >"$scratch/home/.config/rankscope/strategies/homemade.lua" <<'EOF'
return { name = "homemade", description = "from the home directory",
	run = function() print("homemade ran") end }
EOF
run 0 env -u XDG_CONFIG_HOME HOME="$scratch/home" "$RANKSCOPE" strategies
contains "$out" "homemade: from the home directory" "~/.config/rankscope/strategies"
equals "$(printf '%s\n' "$out" | tail -1)" \
	"searched: $scratch/home/.config/rankscope/strategies $lua_dir" "search path without XDG_CONFIG_HOME"
run 0 env XDG_CONFIG_HOME=relative/dir HOME="$scratch/home" "$RANKSCOPE" run homemade "$model"
contains "$out" "homemade ran" "a relative XDG_CONFIG_HOME is ignored"

# RANKSCOPE_LUA_DIR replaces the shipped directory.
mkdir -p "$scratch/shipped"
cat >"$scratch/shipped/only.lua" <<'EOF'
return { name = "only", description = "the only shipped one", run = function() end }
EOF
run 0 env RANKSCOPE_LUA_DIR="$scratch/shipped" "$RANKSCOPE" strategies
names=$(printf '%s\n' "$out" | grep -v '^searched:' | sed -n 's/^\([a-z-]*\): .*/\1/p' | tr '\n' ' ')
equals "$names" "only " "RANKSCOPE_LUA_DIR replaces the shipped strategies"
equals "$(printf '%s\n' "$out" | tail -1)" "searched: $user_dir $scratch/shipped" \
	"RANKSCOPE_LUA_DIR in the search path"
run 1 env RANKSCOPE_LUA_DIR="$scratch/shipped" "$RANKSCOPE" run uniform "$model"
contains "$err" "no strategy named 'uniform'" "nothing from the usual shipped directory"

# ---- broken strategies are reported by file name --------------------------------
# broken NAME ERROR: $scratch/broken-NAME/NAME.lua (from stdin) must make
# `strategies` exit 1 naming it (the good ones still listed); with broken,
# `run NAME` must exit 1 with the same message too.
broken_listed() {
	mkdir -p "$scratch/broken-$1"
	cat >"$scratch/broken-$1/$1.lua"
	run 1 "$RANKSCOPE" strategies --strategy-path "$scratch/broken-$1"
	contains "$err" "$scratch/broken-$1/$1.lua$2" "strategies reports broken $1"
	contains "$out" "uniform: keep the same fraction" "strategies still lists the others ($1)"
}
broken() {
	broken_listed "$1" "$2"
	run 1 "$RANKSCOPE" run --strategy-path "$scratch/broken-$1" "$1" "$model"
	contains "$err" "$scratch/broken-$1/$1.lua$2" "run reports broken $1"
	equals "$out" "" "run prints nothing for broken $1"
}
# A file that returns no table is no strategy (`strategies` says so), but
# `run` takes it for a plain script.
broken_listed number ": a strategy must return a table with name, description, params and run" <<'EOF'
return 5
EOF
run 0 "$RANKSCOPE" run --strategy-path "$scratch/broken-number" number "$model"
contains "$out" "total: params" "a file returning a number runs as a plain script"
broken norun ": strategy 'norun' has no 'run' function" <<'EOF'
return { name = "norun", description = "forgot run" }
EOF
broken noname ": strategy has no 'name' string" <<'EOF'
return { description = "forgot its name", run = function() end }
EOF
broken syntax ":2:" <<'EOF'
return {
	name = = "syntax",
}
EOF
broken throws ":1: thrown while loading" <<'EOF'
error("thrown while loading")
EOF
broken notype ": params[2] needs a name and a type" <<'EOF'
return { name = "notype", run = function() end,
	params = { { name = "a", type = "number" }, { name = "b" } } }
EOF
broken badtype ": param 'p' has an unknown type (number, integer, boolean, string or choice)" <<'EOF'
return { name = "badtype", run = function() end, params = { { name = "p", type = "float" } } }
EOF
broken nochoices ": choice param 'c' lists no choices" <<'EOF'
return { name = "nochoices", run = function() end, params = { { name = "c", type = "choice" } } }
EOF
broken paramsmap ": 'params' must be a list of tables" <<'EOF'
return { name = "paramsmap", run = function() end, params = "budget" }
EOF
# A params entry that is not a table, and a strategy table whose fields
# raise errors, are broken strategies too: reported, never a crash.
broken paramnumber "" <<'EOF'
return { name = "paramnumber", run = function() end, params = { 5 } }
EOF
# Strategy tables are read raw: fields that exist only through __index
# are not seen (and the metamethod never runs outside a protected call).
mkdir -p "$scratch/broken-trap"
cat >"$scratch/broken-trap/trap.lua" <<'EOF'
return setmetatable({}, { __index = function() error("trapped field") end })
EOF
run 0 "$RANKSCOPE" strategies --strategy-path "$scratch/broken-trap"
contains "$out" "uniform: keep the same fraction" "a table of no raw fields is a module, not listed"
lacks "$out" "trap:" "the trap is not listed"
run 1 "$RANKSCOPE" run --strategy-path "$scratch/broken-trap" trap "$model"
contains "$err" "$scratch/broken-trap/trap.lua: strategy has no 'name' string" "run reports the trap"
lacks "$err" "trapped field" "the trap's metamethod never ran"

finish
