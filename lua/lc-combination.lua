-- lc-combination: under a storage budget in bits, choose for every layer
-- the representation that spends bits where they buy the most error:
-- dense, a rank-r factorisation, magnitude pruning, quantisation (every
-- quantiser at 1..8 bits), or (with combination = true) low rank + sparse.
--
-- Each layer's options are (squared relative Frobenius error, bits) pairs,
-- optionally weighted by the layer's size.  For a multiplier lambda every
-- layer takes the option minimising error^2 + lambda * bits; the total bits
-- fall as lambda rises, so lambda is bisected until the plan fits the
-- budget, and leftover bits are spent greedily (lua/tradeoff.lua).  This
-- is the LC-style "error per bit" trade-off.  The plan never exceeds the
-- budget.
--
-- With calibration (error = "out", the default when the model has it) the
-- errors are the layers' output errors on the calibration inputs, and the
-- options include the whitened truncations and the output-aware (scored)
-- pruning masks; low rank + sparse, whose output error is not predicted,
-- is then left out.
local outnorm = require "outnorm"
local tradeoff = require "tradeoff"

local M = {
	name = "lc-combination",
	description = "best of low rank / pruning / quantisation per layer under a storage budget",
	params = {
		{ name = "budget", type = "number", default = 0.25, min = 0, max = 1,
		  help = "fraction of the dense storage (bits) that may remain" },
		{ name = "weighted", type = "boolean", default = true,
		  help = "weight each layer's squared error by its size" },
		{ name = "combination", type = "boolean", default = false,
		  help = "also try low rank + sparse (solves, slower; weight norm only)" },
		{ name = "error", type = "choice", choices = { "auto", "fro", "out" },
		  default = "auto", help = "relative Frobenius or output error "
		  .. "(auto: out with --calibration)" },
	},
}

local quantizers = { "uniform-tensor", "uniform-channel", "kmeans", "binary", "ternary" }

-- Every option of a layer: { spec = plan:set spec, err2 = ..., bits = ... }
function M.options(layer, plan, params)
	local opts = { { spec = { method = "dense" }, err2 = 0, bits = layer:storage() } }
	local out = params.error == "out"
	local function add(spec)
		if not layer:allows(spec.method or "lowrank") then return end
		local f = plan:set(layer, spec)
		if f.method ~= "dense" then
			local e = out and f.out_err or f.err_fro
			opts[#opts + 1] = { spec = spec, err2 = e ^ 2, bits = f.bits }
		end
	end
	for r = 1, layer:breakeven() do add({ rank = r, whitened = out }) end
	for i = 1, 99 do
		add({ method = "prune", sparsity = i / 100 })
		if out then add({ method = "prune", sparsity = i / 100, scored = true }) end
	end
	for _, q in ipairs(quantizers) do
		for b = 1, (q == "binary" or q == "ternary") and 1 or 8 do
			add({ method = "quant", quantizer = q, bits = b })
		end
	end
	if params.combination and not out then
		for _, frac in ipairs({ 8, 4 }) do
			local r = math.max(1, layer.k // frac)
			for _, p in ipairs({ 0.99, 0.95 }) do
				add({ method = "lowrank+sparse", rank = r, sparsity = p })
			end
		end
	end
	plan:set(layer, { method = "dense" })
	return opts
end

function M.run(model, plan, params)
	local layers = model:layers()
	outnorm.resolve(model, layers, params, "fro")
	local all, before = {}, 0
	for i, layer in ipairs(layers) do
		all[i] = { opts = M.options(layer, plan, params),
			w = params.weighted and layer:params() or 1 }
		before = before + layer:storage()
	end
	local limit = params.budget * before
	local chosen, used = tradeoff.solve(all, limit, "bits")
	if chosen == nil then
		error(string.format("budget %g is unreachable: the smallest representation of "
			.. "every layer needs %d of %d bits", params.budget, used, before), 0)
	end
	local counts = {}
	used = 0
	for i, layer in ipairs(layers) do
		local f = plan:set(layer, chosen[i].spec)
		used = used + f.bits
		counts[f.method] = (counts[f.method] or 0) + 1
	end
	assert(used <= limit, "budget exceeded")
	local parts = {}
	for method, n in pairs(counts) do parts[#parts + 1] = n .. " " .. method end
	table.sort(parts)
	local t = plan:totals()
	local worst = params.error == "out"
		and string.format("err_out %.4f", t.worst_out_err or 0 / 0)
		or string.format("err_F %.4f", t.worst_err_fro)
	return string.format("lc-combination: %d of %d bits (%.2f%%, budget %.2f%%), %s; worst "
		.. "%s", used, before, 100 * used / before, 100 * params.budget,
		table.concat(parts, ", "), worst)
end

return M
