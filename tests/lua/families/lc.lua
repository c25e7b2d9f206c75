-- lc.lua — the lc-combination strategy, called through its module's
-- run(model, plan, params), against a brute force over the options it
-- considers: ranks 1..break-even, pruning at p = 0.01..0.99, every
-- quantiser at 1..8 bits (each option's figures read through plan:set,
-- whose numbers tests/familycheck.py checks independently).  Checks that
-- the plan fits the budget, that no option of a layer has the choice's bits
-- and less error, and that no single layer can switch to another option and
-- lower the summed (weighted) squared error while staying within budget.
-- Run by tests/cli-families.sh as a plain script:
--
--   rankscope run -S tests/lua tests/lua/families/lc.lua MODEL \
--       --param budget=0.25 [--param weighted=false]
local model, plan, params = ...
local check = require "check"
local strategy = require "lc-combination"

local budget = tonumber(params.budget or "0.25")
local weighted = params.weighted ~= "false"
local QUANTIZERS = { "uniform-tensor", "uniform-channel", "kmeans", "binary", "ternary" }

-- Every option of a layer that the plan takes as asked (not dense).
local function options(layer)
	local opts = { { what = "dense", err2 = 0.0, bits = layer:storage() } }
	local function add(spec, what)
		local f = plan:set(layer, spec)
		if f.method ~= "dense" then
			opts[#opts + 1] = { what = what, err2 = f.err_fro ^ 2, bits = f.bits }
		end
	end
	for r = 1, layer:breakeven() do add({ rank = r }, "lowrank:" .. r) end
	for i = 1, 99 do add({ method = "prune", sparsity = i / 100 }, "prune:" .. i / 100) end
	for _, q in ipairs(QUANTIZERS) do
		for b = 1, 8 do add({ method = "quant", quantizer = q, bits = b }, "quant:" .. q .. ":" .. b) end
	end
	plan:set(layer, { method = "dense" })
	return opts
end

local function describe(f)
	if f.method == "lowrank" then return "lowrank:" .. f.rank end
	if f.method == "prune" then return "prune:" .. f.sparsity end
	if f.method == "quant" then return "quant:" .. f.quantizer .. ":" .. f.quant_bits end
	return f.method
end

local layers = model:layers()
local all, before = {}, 0
for i, layer in ipairs(layers) do
	all[i] = { layer = layer, opts = options(layer), w = weighted and layer:params() or 1 }
	before = before + layer:storage()
end
local limit = budget * before

plan:reset()
local ok, summary = pcall(strategy.run, model, plan, { budget = budget, weighted = weighted,
	combination = false })
check.ok(ok, "lc-combination runs: " .. tostring(summary))
print("summary: " .. tostring(summary))

local used, sum = 0, 0
for _, a in ipairs(all) do
	local f = plan:get(a.layer)
	a.chosen = { what = describe(f), err2 = f.err_fro ^ 2, bits = f.bits }
	check.ok(f.method ~= "lowrank+sparse", a.layer.name .. ": no combination unless asked")
	used = used + f.bits
	sum = sum + a.w * a.chosen.err2
	print(string.format("choice %s %s bits=%d err_fro=%.6g", a.layer.name, a.chosen.what,
		f.bits, f.err_fro))
end
check.ok(used <= limit, string.format("%d bits used within the budget %.17g", used, limit))
check.ok(summary == nil or tostring(summary):find(string.format("%d of %d bits", used, before),
	1, true) ~= nil, "the summary reports the bits used: " .. tostring(summary))

-- no option of a layer has the bits of its choice and less error
for _, a in ipairs(all) do
	local c = a.chosen
	for _, o in ipairs(a.opts) do
		if o.bits == c.bits then
			check.ok(a.w * (o.err2 - c.err2) >= -1e-12 * math.max(sum, 1e-300), string.format(
				"%s: %s has the bits of the choice %s and less error", a.layer.name, o.what, c.what))
		end
	end
end

-- no single switch lowers the summed error within the budget
for _, a in ipairs(all) do
	local c, better = a.chosen, nil
	for _, o in ipairs(a.opts) do
		if used - c.bits + o.bits <= limit and a.w * (c.err2 - o.err2) > 1e-12 * math.max(sum, 1e-300)
			and (better == nil or o.err2 < better.err2) then
			better = o
		end
	end
	check.ok(better == nil, string.format("%s: switching from %s to %s lowers the summed "
		.. "error (%.9g -> %.9g) and keeps %d bits within %.0f", a.layer.name, c.what,
		better and better.what or "-", sum, better and sum + a.w * (better.err2 - c.err2) or 0,
		better and used - c.bits + better.bits or 0, limit))
end
check.done()
