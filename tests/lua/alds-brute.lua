-- alds-brute.lua — the alds strategy against brute force: on a small model
-- every assignment of (fold, group count, rank or dense) to every layer is
-- enumerated, and the smallest worst error over the assignments within
-- the budget must be the worst error of the plan alds makes, which must
-- fit the budget.  The options are enumerated here from their definition
-- (group counts up to max_groups dividing a fold's input side, g = 1 only
-- under the layer's own fold, a rank only where it costs less than dense).
-- Run by tests/lua-strategies.sh:
--
--   rankscope run -S tests/lua tests/lua/alds-brute.lua MODEL
local model, plan = ...
local check = require "check"
local rs = require "rankscope"
local S = require "alds"

local MAX_GROUPS = 8
local layers = model:layers()

-- every choice of a layer: {err, params, describe}
local choices, dense_total = {}, 0
for i, l in ipairs(layers) do
	local dense = l.rows * l.cols
	dense_total = dense_total + dense
	local list = { { err = 0, params = dense, what = "dense" } }
	local folds = l.kind == "conv" and { 0, 1, 2, 3 } or { false }
	for _, f in ipairs(folds) do
		local one = rs.grouped(l, 1, f and { fold = f } or nil)
		for g = 1, MAX_GROUPS do
			if one.cols % g == 0 and (g > 1 or not f or f == l.fold) then
				local r = rs.grouped(l, g, f and { fold = f } or nil)
				for j = 1, r.k do
					if r.params[j + 1] < dense then
						list[#list + 1] = { err = r.err_spec[j + 1], params = r.params[j + 1],
							what = string.format("g=%d f=%s r=%d", g, tostring(f), j) }
					end
				end
			end
		end
	end
	choices[i] = list
end

-- the smallest worst error within `limit` params, by enumeration
local function brute(limit)
	local best = math.huge
	local function walk(i, cost, worst)
		if cost > limit or worst >= best then return end
		if i > #layers then best = worst; return end
		for _, c in ipairs(choices[i]) do
			walk(i + 1, cost + c.params, math.max(worst, c.err))
		end
	end
	walk(1, 0, 0)
	return best
end

local grouped_seen, other_fold_seen = 0, 0
local total_choices = 1
for _, list in ipairs(choices) do total_choices = total_choices * #list end
for _, budget in ipairs { 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1 } do
	local want = brute(budget * dense_total)
	plan:reset()
	local ok, summary = pcall(S.run, model, plan, { budget = budget, max_groups = MAX_GROUPS,
		folds = "all" })
	local what = string.format("alds budget %g", budget)
	if want == math.huge then
		check.ok(not ok and tostring(summary):find("is unreachable", 1, true),
			what .. ": unreachable, and says so: " .. tostring(summary))
	else
		check.ok(ok, what .. ": runs (" .. tostring(summary) .. ")")
		local worst, used = 0, 0
		for _, l in ipairs(layers) do
			local f = plan:get(l)
			local e = f.method == "grouped" and f.err_alds or f.method == "lowrank" and f.err_spec or 0
			check.ok(f.method == "dense" or f.method == "grouped" or f.method == "lowrank",
				what .. ": " .. l.name .. " is dense, lowrank or grouped")
			worst = math.max(worst, e)
			used = used + f.params
			if f.method == "grouped" then grouped_seen = grouped_seen + 1 end
			if f.method == "grouped" and f.fold and f.fold ~= l.fold then
				other_fold_seen = other_fold_seen + 1
			end
		end
		check.near(worst, want, 1e-12, 0, what .. ": the worst error is the brute-force optimum")
		check.ok(used <= budget * dense_total, string.format("%s: %d params within %g",
			what, used, budget * dense_total))
		check.ok(ok and summary:find(string.format("%d of %d params", used, dense_total), 1, true),
			what .. ": summary " .. tostring(summary))
	end
end
-- the model must make the search matter, or the test proves little
check.ok(grouped_seen > 0, "some budget chooses a grouped SVD")
check.ok(other_fold_seen > 0, "some budget groups a kernel under another fold than its own")
print(string.format("alds-brute: %d layers, %d assignments enumerated per budget; %d grouped "
	.. "choices, %d under another fold", #layers, total_choices, grouped_seen, other_fold_seen))
plan:reset()
check.done()
