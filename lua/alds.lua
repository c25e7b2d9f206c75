-- alds: ALDS's allocation (Liebenwein et al.).  Minimises the worst
-- relative operator-norm error over the layers, eps, under a budget on
-- the parameters, choosing for every layer a channel-grouped SVD: a group
-- count g (1 is the plain SVD), for conv layers a fold scheme, and a rank.
--
-- A layer's options are every g from 1 to max_groups that divides the
-- input side of a fold's matrix, under every fold scheme (conv layers,
-- folds = "all") or the layer's own.  An option reaches eps at its
-- smallest rank j with err(j) <= eps, err being ALDS's measure
-- max_g sigma_{g,j+1} / ||W||_2 (exact for g = 1); where that rank does
-- not cost less than the dense layer the layer stays dense (error 0).
--
-- For a given eps every layer independently takes its cheapest option
-- (the local search over g and fold, done exhaustively), so the total
-- cost only falls as eps grows: a bisection over the finitely many values
-- eps can usefully take (every option's err(j)) finds the smallest eps
-- whose plan fits the budget.  Because the local search is exhaustive, the
-- paper's alternation between bisection and local search with random
-- restarts reaches nothing better: this is the global optimum over these
-- options.  Ties between options go to fewer parameters, then fewer
-- groups, then the layer's own fold.
local rs = require "rankscope"

local function divisors_upto(n, max)
	local out = {}
	for g = 1, math.min(n, max) do
		if n % g == 0 then out[#out + 1] = g end
	end
	return out
end

-- Every option of a layer: {g, fold, err = {...}, params = {...}, k}.
local function options(layer, params)
	local folds = { false }                 -- false: the layer's own fold
	if layer.kind == "conv" and params.folds == "all" then
		folds = {}
		for f = 0, 3 do folds[#folds + 1] = f end
	end
	local out = {}
	for _, f in ipairs(folds) do
		local first = rs.grouped(layer, 1, f and { fold = f } or nil)
		for _, g in ipairs(divisors_upto(first.cols, params.max_groups)) do
			local r = g == 1 and first or rs.grouped(layer, g, f and { fold = f } or nil)
			-- g = 1 under another fold than the layer's is not a plan choice
			-- (lowrank factorises the layer's own matrix)
			if g > 1 or not f or f == layer.fold then
				out[#out + 1] = { g = g, fold = f or layer.fold, err = r.err_spec,
					params = r.params, k = r.k, rows = r.rows, cols = r.cols }
			end
		end
	end
	return out
end

-- The cheapest way option o reaches eps: params and rank (nil: dense).
local function reach(o, eps, dense)
	for j = 1, o.k do
		if o.err[j + 1] <= eps then
			if o.params[j + 1] < dense then return o.params[j + 1], j end
			return dense, nil
		end
	end
	return dense, nil
end

-- Each layer's cheapest option at eps; the total parameters.
local function allocate(layers, opts, eps)
	local total, choice = 0, {}
	for i, layer in ipairs(layers) do
		local dense = layer.rows * layer.cols
		local best = { cost = dense }
		for _, o in ipairs(opts[i]) do
			local cost, j = reach(o, eps, dense)
			local better = j and (cost < best.cost or (cost == best.cost and best.option and
				(o.g < best.option.g or (o.g == best.option.g and o.fold == layer.fold
				and best.option.fold ~= layer.fold))))
			if better then best = { cost = cost, rank = j, option = o } end
		end
		choice[i] = best
		total = total + best.cost
	end
	return total, choice
end

return {
	name = "alds",
	description = "minimise the worst operator-norm error with grouped SVDs under a params budget (ALDS)",
	params = {
		{ name = "budget", type = "number", default = 0.5, min = 0, max = 1,
		  help = "fraction of the dense parameters that may remain" },
		{ name = "max_groups", type = "integer", default = 8, min = 1, max = 64,
		  help = "the largest group count tried" },
		{ name = "folds", type = "choice", choices = { "all", "layer" }, default = "all",
		  help = "conv layers: try every fold scheme, or only the layer's" },
	},
	run = function(model, plan, params)
		local layers = model:layers{ allows = "grouped" }
		local opts, dense_total, candidates = {}, 0, { 0 }
		for i, layer in ipairs(layers) do
			opts[i] = options(layer, params)
			dense_total = dense_total + layer.rows * layer.cols
			for _, o in ipairs(opts[i]) do
				for j = 1, o.k do candidates[#candidates + 1] = o.err[j + 1] end
			end
		end
		local budget = params.budget * dense_total
		table.sort(candidates)
		-- the largest useful eps keeps every layer at its cheapest reachable
		-- option; if even that does not fit, nothing does
		local total = allocate(layers, opts, candidates[#candidates])
		if total > budget then
			error(string.format("alds: budget %g is unreachable: even the largest error "
				.. "keeps %d of %d params", params.budget, total, dense_total), 0)
		end
		local lo, hi = 1, #candidates           -- candidates[hi] fits
		while lo < hi do
			local mid = (lo + hi) // 2
			if allocate(layers, opts, candidates[mid]) <= budget then hi = mid else lo = mid + 1 end
		end
		local eps = candidates[hi]
		local used, choice = allocate(layers, opts, eps)
		local grouped, worst = 0, 0
		for i, layer in ipairs(layers) do
			local c = choice[i]
			if c.option == nil then
				plan:set(layer, { method = "dense" })
			elseif c.option.g == 1 then
				plan:set(layer, { rank = c.rank })
				worst = math.max(worst, c.option.err[c.rank + 1])
			else
				local spec = { method = "grouped", rank = c.rank, groups = c.option.g }
				if layer.kind == "conv" then spec.fold = c.option.fold end
				plan:set(layer, spec)
				grouped = grouped + 1
				worst = math.max(worst, c.option.err[c.rank + 1])
			end
		end
		return string.format("alds: eps %.6g (worst ALDS error), %d of %d params "
			.. "(budget %g), %d of %d layers grouped", worst, used, dense_total,
			params.budget, grouped, #layers)
	end,
}
