-- budget-minimax: ALDS's global step.  Find the smallest error level eps
-- such that, when every layer takes its smallest rank with error <= eps
-- (dense where that rank does not pay), the total cost fits the budget.
-- This minimises the worst layer's error under the budget.
--
-- The cost at eps is non-increasing in eps, so eps is found by bisection;
-- each step costs one O(log k) query per layer.  The plan always fits the
-- budget; when even rank 1 everywhere does not, the strategy fails.
--
-- With calibration (error = "out", the default when the model has it) the
-- error is each layer's relative output error on the calibration inputs,
-- and the ranks are those of the whitened truncation (SVD-LLM), optimal in
-- that norm; every layer must then have statistics.
local outnorm = require "outnorm"

local M = {
	name = "budget-minimax",
	description = "minimise the worst layer error under a params or FLOPs budget (ALDS)",
	params = {
		{ name = "budget", type = "number", default = 0.5, min = 0, max = 1,
		  help = "fraction of the original params (or FLOPs) that may remain" },
		{ name = "metric", type = "choice", choices = { "params", "flops" },
		  default = "params", help = "what the budget counts" },
		{ name = "error", type = "choice", choices = { "auto", "spec", "fro", "out" },
		  default = "auto", help = "relative spectral, Frobenius or output error "
		  .. "(auto: out with --calibration, else spec)" },
	},
}

local function cost(layer, rank, metric)
	if rank == nil then -- dense
		return metric == "flops" and layer:flops() or layer:params()
	end
	return metric == "flops" and layer:flops(rank) or layer:params(rank)
end

-- The error a layer has at a rank under the chosen measure.
function M.error(layer, r, err)
	if err == "out" then return layer:whitened_out_err(r) end
	return err == "fro" and layer:err_fro(r) or layer:err_spec(r)
end

-- The choice for one layer at error level eps: a rank, or nil for dense.
function M.choose(layer, eps, err)
	local r
	if err == "out" then
		r = layer:rank_for_out_err(eps)
	else
		r = err == "fro" and layer:rank_for_err_fro(eps) or layer:rank_for_err_spec(eps)
	end
	r = math.max(r, 1)
	if r < layer.k and layer:pays(r) then return r end
	return nil
end

function M.total(layers, eps, params)
	local total = 0
	for _, layer in ipairs(layers) do
		total = total + cost(layer, M.choose(layer, eps, params.error), params.metric)
	end
	return total
end

function M.run(model, plan, params)
	local layers = model:layers{ allows = "lowrank" }
	outnorm.resolve(model, layers, params, "spec")
	local before = 0
	for _, layer in ipairs(layers) do before = before + cost(layer, nil, params.metric) end
	local limit = params.budget * before
	if M.total(layers, 1, params) > limit then
		error(string.format("budget %g is unreachable: even rank 1 everywhere keeps %d of "
			.. "%d %s", params.budget, M.total(layers, 1, params), before, params.metric), 0)
	end
	local lo, hi = 0, 1 -- total(hi) fits, total(lo) may not
	if M.total(layers, 0, params) <= limit then hi = 0 end
	for _ = 1, 100 do
		if hi - lo <= 1e-15 then break end
		local mid = (lo + hi) / 2
		if M.total(layers, mid, params) <= limit then hi = mid else lo = mid end
	end
	local worst, used = 0, 0
	for _, layer in ipairs(layers) do
		local r = M.choose(layer, hi, params.error)
		if r then
			plan:set(layer, { rank = r, whitened = params.error == "out" })
			worst = math.max(worst, M.error(layer, r, params.error))
		else
			plan:set(layer, { method = "dense" })
		end
		used = used + cost(layer, r, params.metric)
	end
	assert(used <= limit, "budget exceeded")
	return string.format("budget-minimax: worst err_%s %.6g with %d of %d %s (%.2f%%, "
		.. "budget %.2f%%)", params.error, worst, used, before, params.metric,
		100 * used / before, 100 * params.budget)
end

return M
