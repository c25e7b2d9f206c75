-- tradeoff: the error-per-cost allocation shared by strategies that pick
-- one option per layer under a budget (lc-combination, tucker-search).
-- Not a strategy itself (it has no run).
--
-- Every layer has options {err2 = squared error, [cost] = ...} and a
-- weight w.  For a multiplier lambda each layer takes the option
-- minimising w err2 + lambda cost (the cheaper on a tie); the total cost
-- falls as lambda rises, so lambda is raised from 1e-12 by factors of 4
-- until the plan fits, then bisected (at most 200 steps, to a relative
-- width of 1e-12).  The options are discrete, so that plan can leave
-- budget unspent: it is then spent one switch at a time, always on the
-- switch of one layer to another option that lowers the summed weighted
-- error most per extra unit of cost, until no switch that lowers it fits.
local M = {}

function M.choose(opts, w, lambda, cost)
	local best, value = nil, math.huge
	for _, o in ipairs(opts) do
		local v = w * o.err2 + lambda * o[cost]
		if v < value or (v == value and o[cost] < best[cost]) then best, value = o, v end
	end
	return best
end

-- layers: list of {opts = {...}, w = weight}; limit: the budget in units
-- of o[cost].  Returns the chosen option of every layer and the cost used,
-- or nil when even the cheapest options do not fit.
function M.solve(layers, limit, cost)
	local minimum = 0
	for _, a in ipairs(layers) do
		local cheapest = math.huge
		for _, o in ipairs(a.opts) do cheapest = math.min(cheapest, o[cost]) end
		minimum = minimum + cheapest
	end
	if minimum > limit then return nil, minimum end
	local function total(lambda)
		local n = 0
		for _, a in ipairs(layers) do n = n + M.choose(a.opts, a.w, lambda, cost)[cost] end
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
	for i, a in ipairs(layers) do
		chosen[i] = M.choose(a.opts, a.w, hi, cost)
		used = used + chosen[i][cost]
	end
	while true do
		local best, best_i, best_rate = nil, nil, 0
		for i, a in ipairs(layers) do
			local c = chosen[i]
			for _, o in ipairs(a.opts) do
				local extra, gain = o[cost] - c[cost], a.w * (c.err2 - o.err2)
				if gain > 0 and used + extra <= limit then
					local rate = extra > 0 and gain / extra or math.huge
					if rate > best_rate then best, best_i, best_rate = o, i, rate end
				end
			end
		end
		if best == nil then break end
		used = used + best[cost] - chosen[best_i][cost]
		chosen[best_i] = best
	end
	return chosen, used
end

return M
