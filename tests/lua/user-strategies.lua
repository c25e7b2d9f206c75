-- user-strategies.lua — the example user strategies in samples/strategies
-- (protect-edges, network-bound) against the rules their comments state,
-- computed here from the layers' singular values (tests/lua/figures.lua).
-- Run by tests/lua-strategies.sh as a plain script with --strategy-path
-- tests/lua --strategy-path samples/strategies.
local model, plan = ...
local check = require "check"
local figures = require "figures"

local F = figures.of(model)
local DENSE = figures.DENSE

local function run(name, p)
	local S = require(name)
	local full = {}
	for _, d in ipairs(S.params) do full[d.name] = d.default end
	for k, v in pairs(p) do full[k] = v end
	plan:reset()
	local ok, result = pcall(S.run, model, plan, full)
	local keys = {}
	for k, v in pairs(p) do keys[#keys + 1] = k .. "=" .. tostring(v) end
	table.sort(keys)
	local what = name .. " " .. table.concat(keys, " ")
	check.ok(ok, what .. ": runs (" .. tostring(result) .. ")")
	check.eq(type(result), "string", what .. ": returns a summary")
	local choice, unpaid = figures.read(plan, F)
	check.ok(#unpaid == 0, what .. ": asks for ranks that do not pay: " .. table.concat(unpaid, ", "))
	return choice, result, what, full
end

local function same(what, got, want, alt)
	local bad = {}
	for i, f in ipairs(F) do
		if got[i] ~= want[i] and not (alt and got[i] == alt[i]) then
			bad[#bad + 1] = string.format("%s: got %s, expected %s", f.name,
				figures.show({ got[i] }), figures.show({ want[i] }))
		end
	end
	check.ok(#bad == 0, what .. ": " .. table.concat(bad, "; "))
end

-- ---- protect-edges ---------------------------------------------------------
local function energy_rank(f, e)
	local r = 0
	while f.energy(r) < e do r = r + 1 end
	return math.max(r, 1)
end
local cases = {
	{}, { energy = 0.9 }, { energy = 0.5 }, { energy = 0.99 },
	{ first = 0, last = 0, energy = 0.8 }, { first = 2, last = 0, energy = 0.8 },
	{ first = 0, last = 2, energy = 0.8 }, { first = 10, last = 10 },
	{ keep = "fc", first = 0, last = 0, energy = 0.8 },
	{ keep = "^conv[23]", energy = 0.8 }, { keep = "%.weight$", first = 0, last = 0 },
}
for _, p in ipairs(cases) do
	local got, result, what, full = run("protect-edges", p)
	local want, alt = {}, {}
	local protected = 0
	for i, f in ipairs(F) do
		local edge = i <= full.first or i > #F - full.last
		local named = full.keep ~= "" and f.name:find(full.keep) ~= nil
		if edge or named then
			want[i], alt[i] = DENSE, DENSE
			protected = protected + 1
		else
			want[i] = f.effective(energy_rank(f, full.energy - 1e-12))
			alt[i] = f.effective(energy_rank(f, math.min(full.energy + 1e-12, 1)))
		end
	end
	same(what, got, want, alt)
	check.ok(result:find(string.format("%d layers protected", protected), 1, true),
		what .. ": summary counts the protected layers: " .. result)
end
-- the default protects exactly the first and the last layer
local got = run("protect-edges", { energy = 0.5 })
check.eq(got[1], DENSE, "default: the first layer stays dense")
check.eq(got[#F], DENSE, "default: the last layer stays dense")

-- ---- network-bound ------------------------------------------------------------
for _, p in ipairs {
	{}, { target = 0 }, { target = 0.1 }, { target = 0.25 }, { target = 1 }, { target = 2 },
	{ target = 5 }, { target = 1, conv_factor = 1 }, { target = 1, conv_factor = 0 },
	{ target = 0.5, conv_factor = 0.25 },
} do
	local choice, result, what, full = run("network-bound", p)
	-- step 1: hopeless layers (even the largest paying rank is too coarse)
	local hopeful = {}
	for _, f in ipairs(F) do
		local factor = f.kind == "conv" and full.conv_factor or 1
		local largest = 0
		for r = 1, f.k - 1 do if f.pays(r) then largest = r end end
		if largest >= 1 and f.err_spec(largest) <= factor * full.target then
			hopeful[f.index] = factor
		end
	end
	local count = 0
	for _ in pairs(hopeful) do count = count + 1 end
	-- step 2: the even share
	local eps = count > 0 and (1 + full.target) ^ (1 / count) - 1 or 0
	-- step 3: smallest rank within the share, dense where it does not pay
	local want, alt = {}, {}
	for i, f in ipairs(F) do
		if hopeful[i] then
			local function smallest(limit)
				local r = 0
				while f.err_spec(r) > limit do r = r + 1 end
				return f.effective(math.max(r, 1))
			end
			want[i] = smallest(hopeful[i] * eps * (1 + 1e-12))
			alt[i] = smallest(hopeful[i] * eps * (1 - 1e-12))
		else
			want[i], alt[i] = DENSE, DENSE
		end
	end
	same(what, choice, want, alt)
	-- the promise: the plan's network bound is within the target
	local product = 1
	for i, f in ipairs(F) do product = product * (1 + f.err_spec(choice[i])) end
	check.ok(product - 1 <= full.target, string.format("%s: bound %.17g within %g", what,
		product - 1, full.target))
	local t = plan:totals()
	check.ok(t.net_bound <= full.target, string.format("%s: plan:totals().net_bound %.17g within %g",
		what, t.net_bound, full.target))
	check.ok(result:find(string.format("%d of %d layers share it", count, #F), 1, true),
		what .. ": summary counts the sharing layers: " .. result)
end

plan:reset()
check.done()
