-- check.lua — assertions for the Lua test scripts (tests/lua/*.lua).
--
-- Every check is counted; a failing one is recorded with the line that
-- made it and the script goes on, so one run reports every failure.
-- done() prints each failure on standard output as "lua-fail: FILE:LINE:
-- what" and then "lua-checks: N"; the shell tests count both.  When any
-- check failed it also raises an error, so that `rankscope run` exits 1.
local M = { count = 0, failures = {} }

-- "file:line:" of the test line that called a check.  Levels, from
-- error's point of view: pcall, where, record, the check, its caller
-- (no tail calls on the way, so that every level is a real frame).
local function where()
	local _, msg = pcall(error, "", 5)
	return msg
end

local function show(v)
	if type(v) == "string" then return string.format("%q", v) end
	if math.type(v) == "float" then return string.format("%.17g", v) end
	return tostring(v)
end

local function record(ok, what, detail)
	M.count = M.count + 1
	if not ok then
		M.failures[#M.failures + 1] = string.format("%s%s%s", where(), what,
			detail and (": " .. detail) or "")
	end
	return ok
end

function M.ok(cond, what)
	local ok = record(cond and true or false, what, nil)
	return ok
end

function M.eq(got, want, what)
	local ok = record(got == want, what, string.format("got %s, expected %s", show(got),
		show(want)))
	return ok
end

-- |got - want| <= rel |want| + abs
function M.near(got, want, rel, abs, what)
	local ok = type(got) == "number" and type(want) == "number" and
		math.abs(got - want) <= rel * math.abs(want) + abs
	ok = record(ok, what, string.format("got %s, expected %s (rel %g, abs %g)", show(got),
		show(want), rel, abs))
	return ok
end

-- fn must raise an error whose message contains every one of `needles`
-- (plain text).
function M.raises(fn, needles, what)
	local returned, msg = pcall(fn)
	local detail
	if returned then
		detail = "no error raised"
	else
		msg = tostring(msg)
		if type(needles) == "string" then needles = { needles } end
		for _, needle in ipairs(needles) do
			if not msg:find(needle, 1, true) then
				detail = string.format("error %q lacks %q", msg, needle)
				break
			end
		end
	end
	local ok = record(detail == nil, what, detail)
	return ok
end

function M.done()
	for _, failure in ipairs(M.failures) do
		print("lua-fail: " .. (failure:gsub("\n", " ")))
	end
	print(string.format("lua-checks: %d", M.count))
	if #M.failures > 0 then
		error(string.format("%d of %d Lua checks failed (lua-fail lines on stdout)",
			#M.failures, M.count), 0)
	end
end

return M
