-- float-rank.lua — plan:set takes a rank given as a float with an integral
-- value (2.0, as from k / 2), like every other rank and index argument of
-- the API (layer:sigma(2.0), layer:err_fro(2.0): luaL_checkinteger's rule).
local model, plan = ...
local check = require "check"

local c = model:layer("c")
local ok, err = pcall(function() return plan:set(c, 2.0) end)
check.ok(ok, "plan:set(c, 2.0): " .. tostring(err))
check.eq(ok and plan:get(c).rank, 2, "plan:set(c, 2.0) sets rank 2")
ok, err = pcall(function() return plan:set(c, { rank = 6 / 2 }) end)
check.ok(ok, "plan:set(c, {rank = 6 / 2}): " .. tostring(err))
check.eq(ok and plan:get(c).rank, 3, "plan:set(c, {rank = 3.0}) sets rank 3")
check.eq(c:err_fro(2.0), c:err_fro(2), "err_fro(2.0) is err_fro(2)")
check.raises(function() plan:set(c, 2.5) end, "bad argument #2 to 'set'",
	"plan:set(c, 2.5) is still refused")
check.done()
