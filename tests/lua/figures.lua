-- figures.lua — what the strategy tests compare against, computed here
-- from each layer's singular values (layer:sigmas()) and shape alone: no
-- error, energy or cost figure of rankscope's is used, and no strategy
-- code.  Also the plan as a list of choices, and two brute-force searches
-- over all plans.
local M = {}

-- A choice is a rank r >= 1, or M.DENSE.
M.DENSE = "dense"

-- Per layer: m, n, k, sigmas, tail sums (from the small end), and the
-- figures of the optimal rank-r truncation.
function M.of(model)
	local out = {}
	for i, layer in ipairs(model:layers()) do
		local s = layer:sigmas()
		local m, n, k = layer.rows, layer.cols, #s
		local tail = { [k] = 0 }
		for r = k - 1, 0, -1 do tail[r] = tail[r + 1] + s[r + 1] ^ 2 end
		local f = {
			layer = layer, index = i, name = layer.name, kind = layer.kind,
			m = m, n = n, k = k, s = s, tail = tail, total = tail[0],
		}
		function f.err_fro(r)
			if r == M.DENSE then return 0 end
			return f.total > 0 and math.sqrt(tail[r] / f.total) or 0
		end
		function f.err_spec(r)
			if r == M.DENSE or r >= k or s[1] == 0 then return 0 end
			return s[r + 1] / s[1]
		end
		function f.energy(r)
			if r == M.DENSE then return 1 end
			return f.total > 0 and 1 - tail[r] / f.total or 1
		end
		-- integer arithmetic: exact
		function f.pays(r) return r * (m + n) < m * n end
		function f.cost(r, metric)
			local c = r == M.DENSE and m * n or r * (m + n)
			return metric == "flops" and 2 * c or c
		end
		-- every choice that is not the same as another: dense, and the
		-- ranks 1..k-1 that pay
		f.choices = { M.DENSE }
		for r = 1, k - 1 do
			if f.pays(r) then f.choices[#f.choices + 1] = r end
		end
		-- a rank as the plan takes it: dense at k or where it does not pay
		function f.effective(r)
			if r >= 1 and r < k and f.pays(r) then return r end
			return M.DENSE
		end
		out[i] = f
	end
	return out
end

-- The plan's choices, read through plan:get; also whether any entry asks
-- for a rank that does not pay (which the plan then shows as dense).
function M.read(plan, figs)
	local choice, unpaid = {}, {}
	for i, f in ipairs(figs) do
		local g = plan:get(f.layer)
		choice[i] = g.method == "lowrank" and g.rank or M.DENSE
		if g.requested_rank ~= nil and g.method ~= "lowrank" then
			unpaid[#unpaid + 1] = f.name .. "@" .. g.requested_rank
		end
	end
	return choice, unpaid
end

function M.show(choice)
	local parts = {}
	for i, c in ipairs(choice) do parts[i] = c == M.DENSE and "d" or tostring(c) end
	return table.concat(parts, " ")
end

-- Total cost of a list of choices.
function M.cost(figs, choice, metric)
	local total = 0
	for i, f in ipairs(figs) do total = total + f.cost(choice[i], metric) end
	return total
end

-- Every plan (one choice per layer from f.choices), as a callback.
function M.enumerate(figs, fn)
	local choice = {}
	local function rec(i)
		if i > #figs then return fn(choice) end
		for _, c in ipairs(figs[i].choices) do
			choice[i] = c
			rec(i + 1)
		end
	end
	rec(1)
end

-- The exact trade-off of cost against an objective over all plans:
-- `value(f, c)` is a layer's objective at choice c and `combine` adds up
-- layers (sum, or max for a worst case; both non-decreasing).  Returns the
-- Pareto frontier as a list of {cost, obj}, ascending in cost and strictly
-- descending in obj.
function M.frontier(figs, metric, value, combine)
	local front = { { cost = 0, obj = 0 } }
	for _, f in ipairs(figs) do
		local all = {}
		for _, a in ipairs(front) do
			for _, c in ipairs(f.choices) do
				all[#all + 1] = { cost = a.cost + f.cost(c, metric), obj = combine(a.obj, value(f, c)) }
			end
		end
		table.sort(all, function(x, y)
			if x.cost ~= y.cost then return x.cost < y.cost end
			return x.obj < y.obj
		end)
		front = {}
		local best = math.huge
		for _, e in ipairs(all) do
			if e.obj < best then
				front[#front + 1] = e
				best = e.obj
			end
		end
	end
	return front
end

-- The smallest objective among plans costing at most `limit` (nil if none).
function M.best_within(front, limit)
	local best
	for _, e in ipairs(front) do
		if e.cost <= limit then best = e.obj else break end
	end
	return best
end

function M.sum(a, b) return a + b end
M.max = math.max

return M
