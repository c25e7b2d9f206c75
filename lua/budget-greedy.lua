-- budget-greedy: minimise the sum over layers of w * err_F(r)^2 (w = 1, or
-- the layer's dense size with weighted = true) under a params or FLOPs
-- budget, by marginal gain per unit of cost.
--
-- Raising a layer's rank from r to r + 1 gains w sigma_{r+1}^2 / ||W||_F^2
-- for m + n params (2 (m + n) FLOPs); the gains only fall as r grows, so
-- taking steps in order of gain per cost is the same as taking, in every
-- layer, all steps whose gain per cost is at least some lambda.  The
-- strategy bisects on lambda for the smallest one that fits the budget;
-- each layer also weighs going dense (no error, dense cost) against its best
-- rank at that lambda.  The result is optimal among all plans costing no
-- more than it does (it minimises error + lambda * cost).
local M = {
	name = "budget-greedy",
	description = "minimise the sum of squared Frobenius errors under a budget, by gain per cost",
	params = {
		{ name = "budget", type = "number", default = 0.5, min = 0, max = 1,
		  help = "fraction of the original params (or FLOPs) that may remain" },
		{ name = "metric", type = "choice", choices = { "params", "flops" },
		  default = "params", help = "what the budget counts" },
		{ name = "weighted", type = "boolean", default = false,
		  help = "weight each layer's squared error by its dense size" },
	},
}

local function unit_cost(layer, metric)
	return (metric == "flops" and 2 or 1) * (layer.rows + layer.cols)
end

local function dense_cost(layer, metric)
	return metric == "flops" and layer:flops() or layer:params()
end

function M.weight(layer, params)
	return params.weighted and layer:params() or 1
end

-- The objective of one layer at a rank (nil = dense).
function M.objective(layer, rank, params)
	if rank == nil then return 0 end
	return M.weight(layer, params) * layer:err_fro(rank) ^ 2
end

-- Best choice for a layer at multiplier lambda: rank or nil (dense).
function M.choose(layer, lambda, params)
	local w = M.weight(layer, params)
	local norm2 = layer:fro_norm() ^ 2
	local r = 1
	if norm2 > 0 and w > 0 then
		-- steps with w sigma^2 / norm2 >= lambda * unit, i.e. sigma above
		-- sqrt(lambda * unit * norm2 / w)
		local cut = math.sqrt(lambda * unit_cost(layer, params.metric) * norm2 / w)
		r = math.max(1, layer:rank_for_err_spec(cut / layer:spec_norm()))
	end
	local be = layer:breakeven()
	if not layer:pays(be) then be = be - 1 end
	if r > be then r = be end
	if r < 1 then return nil end
	local lowrank = M.objective(layer, r, params) + lambda * r * unit_cost(layer, params.metric)
	local dense = lambda * dense_cost(layer, params.metric)
	if dense < lowrank then return nil end
	return r
end

local function cost_of(layer, r, metric)
	if r == nil then return dense_cost(layer, metric) end
	return r * unit_cost(layer, metric)
end

function M.total(layers, lambda, params)
	local total = 0
	for _, layer in ipairs(layers) do
		total = total + cost_of(layer, M.choose(layer, lambda, params), params.metric)
	end
	return total
end

function M.run(model, plan, params)
	local layers = model:layers{ allows = "lowrank" }
	local before, minimum = 0, 0
	for _, layer in ipairs(layers) do
		before = before + dense_cost(layer, params.metric)
		minimum = minimum + (layer:pays(1) and unit_cost(layer, params.metric)
			or dense_cost(layer, params.metric))
	end
	local limit = params.budget * before
	if minimum > limit then
		error(string.format("budget %g is unreachable: even rank 1 everywhere keeps %d of "
			.. "%d %s", params.budget, minimum, before, params.metric), 0)
	end
	-- bracket lambda: large enough that the plan fits
	local lo, hi = 0, 1
	while M.total(layers, hi, params) > limit do lo, hi = hi, hi * 4 end
	for _ = 1, 200 do
		if hi - lo <= hi * 1e-15 then break end
		local mid = (lo + hi) / 2
		if M.total(layers, mid, params) <= limit then hi = mid else lo = mid end
	end
	local used, objective = 0, 0
	for _, layer in ipairs(layers) do
		local r = M.choose(layer, hi, params)
		if r then plan:set(layer, { rank = r }) else plan:set(layer, { method = "dense" }) end
		used = used + cost_of(layer, r, params.metric)
		objective = objective + M.objective(layer, r, params)
	end
	assert(used <= limit, "budget exceeded")
	return string.format("budget-greedy: sum of %ssquared err_F %.6g with %d of %d %s "
		.. "(%.2f%%, budget %.2f%%)", params.weighted and "weighted " or "", objective,
		used, before, params.metric, 100 * used / before, 100 * params.budget)
end

return M
