-- lc-combination: under a storage budget in bits, choose for every layer
-- the representation that spends bits where they buy the most error:
-- dense, a rank-r factorisation, magnitude pruning, quantisation (every
-- quantiser at 1..8 bits), or (with combination = true) low rank + sparse.
--
-- Each layer's options are (squared relative Frobenius error, bits) pairs,
-- optionally weighted by the layer's size.  For a multiplier lambda every
-- layer takes the option minimising error^2 + lambda * bits; the total bits
-- fall as lambda rises, so lambda is bisected until the plan fits the
-- budget.  This is the LC-style "error per bit" trade-off.  Because the
-- options are discrete, that plan can leave bits unspent: they are then
-- spent greedily, always on the switch that lowers the summed error most
-- per extra bit, until no switch that lowers it fits.  The plan never
-- exceeds the budget.
local M = {
	name = "lc-combination",
	description = "best of low rank / pruning / quantisation per layer under a storage budget",
	params = {
		{ name = "budget", type = "number", default = 0.25, min = 0, max = 1,
		  help = "fraction of the dense storage (bits) that may remain" },
		{ name = "weighted", type = "boolean", default = true,
		  help = "weight each layer's squared error by its size" },
		{ name = "combination", type = "boolean", default = false,
		  help = "also try low rank + sparse (solves, slower)" },
	},
}

local quantizers = { "uniform-tensor", "uniform-channel", "kmeans", "binary", "ternary" }

-- Every option of a layer: { spec = plan:set spec, err2 = ..., bits = ... }
function M.options(layer, plan, params)
	local opts = { { spec = { method = "dense" }, err2 = 0, bits = layer:storage() } }
	local function add(spec)
		local f = plan:set(layer, spec)
		if f.method ~= "dense" then
			opts[#opts + 1] = { spec = spec, err2 = f.err_fro ^ 2, bits = f.bits }
		end
	end
	for r = 1, layer:breakeven() do add({ rank = r }) end
	for i = 1, 99 do add({ method = "prune", sparsity = i / 100 }) end
	for _, q in ipairs(quantizers) do
		for b = 1, (q == "binary" or q == "ternary") and 1 or 8 do
			add({ method = "quant", quantizer = q, bits = b })
		end
	end
	if params.combination then
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

function M.choose(opts, w, lambda)
	local best, value = nil, math.huge
	for _, o in ipairs(opts) do
		local v = w * o.err2 + lambda * o.bits
		if v < value or (v == value and o.bits < best.bits) then best, value = o, v end
	end
	return best
end

function M.run(model, plan, params)
	local layers = model:layers()
	local all, before, minimum = {}, 0, 0
	for i, layer in ipairs(layers) do
		local opts = M.options(layer, plan, params)
		local w = params.weighted and layer:params() or 1
		local cheapest = math.huge
		for _, o in ipairs(opts) do cheapest = math.min(cheapest, o.bits) end
		all[i] = { opts = opts, w = w }
		before = before + layer:storage()
		minimum = minimum + cheapest
	end
	local limit = params.budget * before
	if minimum > limit then
		error(string.format("budget %g is unreachable: the smallest representation of "
			.. "every layer needs %d of %d bits", params.budget, minimum, before), 0)
	end
	local function total(lambda)
		local n = 0
		for _, a in ipairs(all) do n = n + M.choose(a.opts, a.w, lambda).bits end
		return n
	end
	local lo, hi = 0, 1e-12
	while total(hi) > limit do lo, hi = hi, hi * 4 end
	for _ = 1, 200 do
		if hi - lo <= hi * 1e-12 then break end
		local mid = (lo + hi) / 2
		if total(mid) <= limit then hi = mid else lo = mid end
	end
	local chosen, used = {}, 0
	for i, a in ipairs(all) do
		chosen[i] = M.choose(a.opts, a.w, hi)
		used = used + chosen[i].bits
	end
	-- The multiplier's plan may leave bits unspent (options are discrete):
	-- spend them, one switch at a time, on the switch that lowers the
	-- summed error most per extra bit, until no switch that helps fits.
	while true do
		local best, best_i, best_rate = nil, nil, 0
		for i, a in ipairs(all) do
			local c = chosen[i]
			for _, o in ipairs(a.opts) do
				local extra, gain = o.bits - c.bits, a.w * (c.err2 - o.err2)
				if gain > 0 and used + extra <= limit then
					local rate = extra > 0 and gain / extra or math.huge
					if rate > best_rate then best, best_i, best_rate = o, i, rate end
				end
			end
		end
		if best == nil then break end
		used = used + best.bits - chosen[best_i].bits
		chosen[best_i] = best
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
	return string.format("lc-combination: %d of %d bits (%.2f%%, budget %.2f%%), %s; worst "
		.. "err_F %.4f", used, before, 100 * used / before, 100 * params.budget,
		table.concat(parts, ", "), t.worst_err_fro)
end

return M
