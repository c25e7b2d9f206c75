-- sandbox.lua — what a script can and cannot reach.  Run by
-- tests/lua-api.sh as a plain script with --strategy-path tests/lua and a
-- second --strategy-path holding helper.lua (a module the shell test
-- writes: it returns {answer = 42}).
local check = require "check"

-- removed outright
local removed = {
	{ "dofile", dofile }, { "loadfile", loadfile }, { "debug", debug },
	{ "os.execute", os.execute }, { "os.exit", os.exit }, { "os.remove", os.remove },
	{ "os.rename", os.rename }, { "os.tmpname", os.tmpname }, { "os.setlocale", os.setlocale },
	{ "io.open", io.open }, { "io.popen", io.popen }, { "io.read", io.read },
	{ "io.lines", io.lines }, { "io.input", io.input }, { "io.output", io.output },
	{ "io.stdout", io.stdout }, { "io.stderr", io.stderr },
	{ "package.loadlib", package.loadlib }, { "package.cpath", package.cpath },
	{ "string.dump", string.dump }, { "('').dump", ("").dump },
}
for _, r in ipairs(removed) do
	check.eq(r[2], nil, r[1] .. " is absent")
end

-- what is left of os and io
local os_left = {}
for name in pairs(os) do os_left[#os_left + 1] = name end
table.sort(os_left)
check.eq(table.concat(os_left, " "), "clock date difftime getenv time", "os keeps only clocks, dates, getenv")
local io_left = {}
for name in pairs(io) do io_left[#io_left + 1] = name end
check.eq(table.concat(io_left, " "), "write", "io keeps only write")
check.eq(type(os.clock()), "number", "os.clock works")
check.eq(type(os.time()), "number", "os.time works")
check.eq(type(os.date("%Y")), "string", "os.date works")
check.eq(os.getenv("RANKSCOPE_TEST_VAR"), "sandbox", "os.getenv works")

-- the standard libraries a strategy may use are all there
for _, lib in ipairs { "string", "table", "math", "utf8", "coroutine", "package" } do
	check.eq(type(_G[lib]), "table", lib .. " is available")
end
for _, fn in ipairs { "pairs", "ipairs", "pcall", "xpcall", "error", "assert", "select",
	"tostring", "tonumber", "type", "setmetatable", "getmetatable", "rawget", "rawset",
	"rawequal", "rawlen", "next", "load", "require", "print", "collectgarbage" } do
	check.eq(type(_G[fn]), "function", fn .. " is available")
end
check.eq(_VERSION, "Lua 5.4", "Lua 5.4")

-- require cannot bring the removed libraries back
local ok, os_again = pcall(require, "os")
check.ok(ok and rawequal(os_again, os), "require 'os' gives the cut-down os")
check.eq(ok and os_again.execute, nil, "require('os').execute is absent")
check.raises(function() require "io" end, "module 'io' not found", "require 'io' fails")
check.raises(function() require "debug" end, "module 'debug' not found", "require 'debug' fails")
check.raises(function() require "socket.core" end, "not found", "no C modules")
check.eq(#package.searchers, 2, "two searchers: preload and Lua text files")

-- require finds modules in the strategy directories, and caches them
local helper = require "helper"
check.eq(type(helper) == "table" and helper.answer, 42, "require finds helper.lua")
check.ok(rawequal(require "helper", helper), "require caches modules")
check.ok(package.path:find("/?.lua", 1, true) ~= nil, "package.path lists DIR/?.lua")

-- load: text only
local f, msg = load("return 6 * 7")
check.eq(f and f(), 42, "load compiles text")
f = load("return x", "chunk", "t", { x = 5 })
check.eq(f and f(), 5, "load with an environment")
local binary = "\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119\64"
for _, mode in ipairs { "b", "bt" } do
	f, msg = load(binary, "bin", mode)
	check.eq(f, nil, "load refuses a binary chunk (mode " .. mode .. ")")
	check.ok(type(msg) == "string" and msg:find("binary chunk", 1, true) ~= nil and
		msg:find("mode is 't'", 1, true) ~= nil, "load's message says text mode only: " .. tostring(msg))
end
f, msg = load(binary)
check.eq(f, nil, "load refuses a binary chunk (default mode)")
f, msg = load("return +")
check.eq(f, nil, "load of bad text returns nil")
check.ok(type(msg) == "string" and msg:find("unexpected symbol", 1, true) ~= nil,
	"load's syntax error message: " .. tostring(msg))

-- userdata internals stay out of reach
local model = ...
check.eq(getmetatable(model), "locked", "getmetatable(model)")
check.raises(function() setmetatable(model, {}) end, "table expected", "setmetatable on userdata")

-- print and io.write go to standard output; the shell test checks these
print("print:", 1, 2.5, nil, true, model:layers()[1])
io.write("io.write:", " no newline", 7)
io.write("\n")
check.done()
