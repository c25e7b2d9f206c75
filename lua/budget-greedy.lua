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
--
-- With calibration (error = "out", the default when the model has it) the
-- squared errors are the layers' output errors of the whitened truncation
-- (SVD-LLM); its gains sigma'_{r+1}^2 / tr(W G W^T) fall with r when G is
-- non-singular, and the ranks are found by bisection on them (with a
-- shifted G they fall all but within rounding of the shift).
local outnorm = require "outnorm"

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
		{ name = "error", type = "choice", choices = { "auto", "fro", "out" },
		  default = "auto", help = "relative Frobenius or output error "
		  .. "(auto: out with --calibration)" },
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
function M.error(layer, rank, params)
	if params.error == "out" then return layer:whitened_out_err(rank) end
	return layer:err_fro(rank)
end

function M.objective(layer, rank, params)
	if rank == nil then return 0 end
	return M.weight(layer, params) * M.error(layer, rank, params) ^ 2
end

-- The largest rank in 1..be whose step gain w (e(r-1)^2 - e(r)^2) is at
-- least `price` (gains fall with r), or 1.
local function rank_by_gain(layer, price, be, params)
	local w = M.weight(layer, params)
	local lo, hi = 1, be
	local function gain(r)
		return w * (M.error(layer, r - 1, params) ^ 2 - M.error(layer, r, params) ^ 2)
	end
	if be < 1 or gain(1) < price then return 1 end
	while lo < hi do
		local mid = (lo + hi + 1) // 2
		if gain(mid) >= price then lo = mid else hi = mid - 1 end
	end
	return lo
end

-- Best choice for a layer at multiplier lambda: rank or nil (dense).
function M.choose(layer, lambda, params)
	local w = M.weight(layer, params)
	local norm2 = layer:fro_norm() ^ 2
	local r = 1
	local be = layer:breakeven()
	if not layer:pays(be) then be = be - 1 end
	if params.error == "out" then
		r = rank_by_gain(layer, lambda * unit_cost(layer, params.metric), be, params)
	elseif norm2 > 0 and w > 0 then
		-- steps with w sigma^2 / norm2 >= lambda * unit, i.e. sigma above
		-- sqrt(lambda * unit * norm2 / w)
		local cut = math.sqrt(lambda * unit_cost(layer, params.metric) * norm2 / w)
		r = math.max(1, layer:rank_for_err_spec(cut / layer:spec_norm()))
	end
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
	outnorm.resolve(model, layers, params, "fro")
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
		if r then
			plan:set(layer, { rank = r, whitened = params.error == "out" })
		else
			plan:set(layer, { method = "dense" })
		end
		used = used + cost_of(layer, r, params.metric)
		objective = objective + M.objective(layer, r, params)
	end
	assert(used <= limit, "budget exceeded")
	return string.format("budget-greedy: sum of %ssquared err_%s %.6g with %d of %d %s "
		.. "(%.2f%%, budget %.2f%%)", params.weighted and "weighted " or "",
		params.error == "out" and "out" or "F", objective,
		used, before, params.metric, 100 * used / before, 100 * params.budget)
end

return M
