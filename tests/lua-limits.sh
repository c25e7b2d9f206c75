#!/bin/sh
# lua-limits.sh — what a misbehaving strategy cannot do to its host: go past
# the Lua memory limit (a runaway table, string.rep, a huge concat), fail
# inside __close or an error object's __tostring, or install a finalizer
# (__gc runs with hooks off, where nothing could stop a loop in it, so the
# sandbox refuses it).  Each ends in a clear message, the plan as it was
# (a failed run prints none), and the process alive; the workbench goes on
# after an out-of-memory console line.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"
. "$TESTS_SRCDIR/lua-lib.sh"

model=$scratch/limits.safetensors
"$MAKE_MODEL" "$model" a=6x4@0.5 b=12x9@0.7 || fail "make-model"

script() {
	cat >"$scratch/$1.lua"
}

# ---- the memory limit ------------------------------------------------------
script table <<'EOF2'
plan:set("a", 1)
local t = {}
for i = 1, math.huge do t[i] = { i } end
EOF2
run 1 "$RANKSCOPE" run --lua-memory 32M "$scratch/table.lua" "$model"
contains "$err" "out of memory in strategy table: the Lua state reached its limit of 32 MiB" \
	"a runaway table is stopped at the limit"
equals "$out" "" "no plan is printed after running out of memory"

script rep <<'EOF2'
local s = string.rep("x", 200 * 1024 * 1024)
EOF2
run 1 "$RANKSCOPE" run --lua-memory 64M "$scratch/rep.lua" "$model"
contains "$err" "out of memory in strategy rep" "string.rep past the limit"

script concat <<'EOF2'
local s = "x"
while true do s = s .. s end
EOF2
run 1 "$RANKSCOPE" run --lua-memory 16M "$scratch/concat.lua" "$model"
contains "$err" "out of memory in strategy concat: the Lua state reached its limit of 16 MiB" \
	"doubling a string past the limit"

# Caught inside the script, the memory error is the script's to handle; the
# state works again once the garbage is gone.
script caught <<'EOF2'
local ok, e = pcall(function() local t = {} for i = 1, math.huge do t[i] = i end end)
print("caught:", ok, e)
collectgarbage()
plan:set("b", 2)
EOF2
run 0 "$RANKSCOPE" run --lua-memory 16M "$scratch/caught.lua" "$model"
contains "$out" "caught:	false	not enough memory" "pcall sees Lua's memory error"
contains "$out" "lowrank" "and the script goes on to edit the plan"

# The default limit lets ordinary strategies run (they share one state).
run 0 "$RANKSCOPE" run budget-minimax --param budget=0.5 "$model"
contains "$out" "total:" "a shipped strategy under the default limit"

# A strategy of the shipped set under a tight but sufficient limit.
run 0 "$RANKSCOPE" run --lua-memory 4M uniform --param keep=0.5 "$model"

# Bad values of the option.
for bad in 0 -5 1K 12Q abc 0.5M; do
	run 2 "$RANKSCOPE" run --lua-memory "$bad" uniform "$model"
	contains "$err" "--lua-memory takes a size of at least 1M" "--lua-memory $bad refused"
done
for good in 2 64M 1G 1.5G 64MiB; do
	run 0 "$RANKSCOPE" strategies --lua-memory "$good"
done

# ---- errors where Lua cannot raise them ------------------------------------
script gc <<'EOF2'
plan:set("a", 2)
setmetatable({}, { __gc = function() error("finalizer failed") end })
EOF2
run 1 "$RANKSCOPE" run "$scratch/gc.lua" "$model"
contains "$err" "gc.lua:2: setmetatable: __gc is not available to strategies" \
	"a finalizer is refused where it is set"
equals "$out" "" "and the run is rolled back"

# Finalizers of the host's own userdata cannot be replaced: their
# metatables are protected.
script hostgc <<'EOF2'
local mt = getmetatable(plan)
print("metatable:", type(mt))
EOF2
run 0 "$RANKSCOPE" run "$scratch/hostgc.lua" "$model"
lacks "$out" "metatable:	table" "the plan's metatable is not handed out"

# setmetatable keeps its other rules.
script setmt <<'EOF2'
local t = setmetatable({}, { __index = function() return 7 end })
print("index:", t.x)
local p = setmetatable({}, { __metatable = "locked" })
print("locked:", pcall(setmetatable, p, {}))
print("bad:", pcall(setmetatable, {}, 5))
print("nil:", getmetatable(setmetatable(t, nil)))
EOF2
run 0 "$RANKSCOPE" run "$scratch/setmt.lua" "$model"
contains "$out" "index:	7" "an __index metatable still works"
contains "$out" "locked:	false	cannot change a protected metatable" "protected metatables"
contains "$out" "bad:	false" "a metatable must be a table or nil"
contains "$out" "nil:	nil" "setmetatable(t, nil) clears it"

# warn() reaches the output, with control messages left out.
script warn <<'EOF2'
warn("@on")
warn("two ", "pieces")
EOF2
run 0 "$RANKSCOPE" run "$scratch/warn.lua" "$model"
contains "$out" "warning: two pieces" "warn() is shown as one warning line"
lacks "$out" "@on" "control messages are not shown"

script close <<'EOF2'
plan:set("a", 2)
do
	local x <close> = setmetatable({}, { __close = function() error("close failed") end })
end
EOF2
run 1 "$RANKSCOPE" run "$scratch/close.lua" "$model"
contains "$err" "close.lua:3: close failed" "an error in __close is the script's error"
equals "$out" "" "and the run is rolled back"

script tostring <<'EOF2'
plan:set("a", 2)
error(setmetatable({}, { __tostring = function() error("tostring failed") end }))
EOF2
run 1 "$RANKSCOPE" run "$scratch/tostring.lua" "$model"
contains "$err" "(error object is a table value)" "a failing __tostring of the error object"
lacks "$err" "error in error handling" "is not an error in the error handler"

script tostring2 <<'EOF2'
error(setmetatable({}, { __tostring = function() return "a readable error" end }))
EOF2
run 1 "$RANKSCOPE" run "$scratch/tostring2.lua" "$model"
contains "$err" "a readable error" "a working __tostring gives the message"

script tostring3 <<'EOF2'
print(setmetatable({}, { __tostring = function() error("print failed") end }))
EOF2
run 1 "$RANKSCOPE" run "$scratch/tostring3.lua" "$model"
contains "$err" "print failed" "__tostring failing inside print is the script's error"

# A looping __close is stopped like any loop (SIGINT interrupts it).
script loopclose <<'EOF2'
do
	local x <close> = setmetatable({}, { __close = function() while true do end end })
end
EOF2
"$RANKSCOPE" run "$scratch/loopclose.lua" "$model" >"$scratch/out" 2>"$scratch/err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
equals "$?" "1" "a looping __close ends on SIGINT with exit 1"
contains "$(cat "$scratch/err")" "interrupted" "and says it was interrupted"

finish
