-- error-runtime.lua — fails at run time on line 9, two calls deep, after
-- changing the plan; tests/lua-api.sh checks the message, the traceback,
-- the exit status and that no plan is printed.
local model, plan = ...
plan:set(model:layers()[1], 1)

local function inner(t)
	-- indexing nil: an error the script did not raise itself
	return t.missing.field
end

local function outer()
	return inner({}) + 1
end

outer()
