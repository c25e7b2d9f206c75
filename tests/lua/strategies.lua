-- strategies.lua — each shipped strategy, called through its module's
-- run(model, plan, params), against a rule or an optimum computed here by
-- brute force (tests/lua/figures.lua) from the layers' singular values.
-- Run by tests/lua-strategies.sh as a plain script:
--
--   rankscope run --strategy-path tests/lua tests/lua/strategies.lua MODEL \
--       [--param exhaustive=yes] [--param signatures=yes]
--
-- exhaustive=yes also enumerates every plan (small models only) to check
-- the frontier search the budget checks rely on; signatures=yes prints the
-- plan each strategy makes with its default parameters ("plan NAME: 3 d
-- 12", d for dense), which the shell test compares with `rankscope run
-- NAME MODEL`.
local model, plan, params = ...
local check = require "check"
local figures = require "figures"

local F = figures.of(model)
local DENSE = figures.DENSE
local show = figures.show

-- Runs a shipped strategy with its declared defaults overridden by `p`.
local function run(name, p)
	local S = require(name)
	local full = {}
	for _, d in ipairs(S.params or {}) do full[d.name] = d.default end
	for k, v in pairs(p) do full[k] = v end
	plan:reset()
	local ok, result = pcall(S.run, model, plan, full)
	local choice, unpaid = figures.read(plan, F)
	return ok, result, choice, unpaid
end

local function describe(name, p)
	local keys = {}
	for k in pairs(p) do keys[#keys + 1] = k end
	table.sort(keys)
	for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(p[k]) end
	return name .. " " .. table.concat(keys, " ")
end

-- got must equal want (or alt, where a threshold falls within rounding of
-- a value), layer by layer.
local function same(what, got, want, alt)
	local bad = {}
	for i, f in ipairs(F) do
		if got[i] ~= want[i] and not (alt and got[i] == alt[i]) then
			bad[#bad + 1] = string.format("%s: got %s, expected %s", f.name,
				show({ got[i] }), show({ want[i] }))
		end
	end
	check.ok(#bad == 0, what .. ": " .. table.concat(bad, "; "))
end

-- Runs, and checks what every strategy must do: succeed, return a
-- summary, and never ask for a rank that does not pay.
local function run_ok(name, p)
	local what = describe(name, p)
	local ok, result, choice, unpaid = run(name, p)
	check.ok(ok, what .. ": runs (" .. tostring(result) .. ")")
	check.eq(type(result), "string", what .. ": returns a summary")
	check.ok(#unpaid == 0, what .. ": asks for ranks that do not pay: " .. table.concat(unpaid, ", "))
	return choice, result, what
end

-- ---- uniform: round(keep k) ranks, or the largest rank costing at most
-- keep m n; dense where that does not pay ------------------------------------
for _, metric in ipairs { "rank", "params" } do
	for _, keep in ipairs { 0, 0.05, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 1 } do
		local got, _, what = run_ok("uniform", { keep = keep, metric = metric })
		local want, alt = {}, {}
		for i, f in ipairs(F) do
			if metric == "rank" then
				-- the nearest whole number to keep k (halves up), at least 1
				local r = 0
				for c = 1, f.k do
					if math.abs(c - keep * f.k) <= math.abs(r - keep * f.k) then r = c end
				end
				want[i] = f.effective(math.max(r, 1))
				alt[i] = want[i]
			else
				-- the largest r with r (m + n) <= keep m n (within rounding)
				local function largest(slack)
					local r = 0
					while (r + 1) * (f.m + f.n) <= keep * f.m * f.n * slack do r = r + 1 end
					return r >= 1 and f.effective(r) or DENSE
				end
				want[i], alt[i] = largest(1 + 1e-12), largest(1 - 1e-12)
			end
		end
		same(what, got, want, alt)
	end
end

-- ---- energy: smallest rank keeping the fraction (at least 1) -------------
local function energy_rank(f, e)
	local r = 0
	while f.energy(r) < e do r = r + 1 end
	return math.max(r, 1)
end
for _, e in ipairs { 0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1 } do
	local got, result, what = run_ok("energy", { energy = e })
	local want, alt = {}, {}
	for i, f in ipairs(F) do
		want[i] = f.effective(energy_rank(f, e - 1e-12))
		alt[i] = f.effective(energy_rank(f, math.min(e + 1e-12, 1)))
	end
	same(what, got, want, alt)
	local factorised = 0
	for _, c in ipairs(got) do if c ~= DENSE then factorised = factorised + 1 end end
	check.ok(result:find(string.format(": %d of %d layers factorised", factorised, #F), 1, true),
		what .. ": summary counts the factorised layers: " .. result)
end

-- ---- threshold: count of sigma_i > tau sigma_max (at least 1) ----------------
local global_max = 0
for _, f in ipairs(F) do global_max = math.max(global_max, f.s[1]) end
local function count_above(f, x)
	local r = 0
	for _, v in ipairs(f.s) do if v > x then r = r + 1 end end
	return math.max(r, 1)
end
local threshold_cases = {}
for _, tau in ipairs { 0, 0.01, 0.05, 0.2, 0.5, 0.9, 1 } do
	for _, rel in ipairs { "layer", "model" } do
		threshold_cases[#threshold_cases + 1] = { threshold = tau, relative_to = rel }
	end
end
threshold_cases[#threshold_cases + 1] = { threshold = 0.1, conv_threshold = 0.4 }
threshold_cases[#threshold_cases + 1] = { threshold = 0.1, linear_threshold = 0.02 }
threshold_cases[#threshold_cases + 1] = { threshold = 0.3, conv_threshold = 0.05,
	linear_threshold = 0.6, relative_to = "model" }
-- 0 is a threshold of its own (keep every nonzero value), not "unset"
threshold_cases[#threshold_cases + 1] = { threshold = 0.9, conv_threshold = 0 }
threshold_cases[#threshold_cases + 1] = { threshold = 0.9, linear_threshold = 0 }
for _, p in ipairs(threshold_cases) do
	local got, _, what = run_ok("threshold", p)
	local want, alt = {}, {}
	for i, f in ipairs(F) do
		local tau = p.threshold
		local own = f.kind == "conv" and p.conv_threshold or f.kind == "linear" and p.linear_threshold
		if own and own >= 0 then tau = own end
		local ref = p.relative_to == "model" and global_max or f.s[1]
		want[i] = f.effective(count_above(f, tau * ref * (1 + 1e-12)))
		alt[i] = f.effective(count_above(f, tau * ref * (1 - 1e-12)))
	end
	same(what, got, want, alt)
end

-- ---- lc-rankselect: per layer, argmin of alpha cost + discarded energy
-- over dense and every paying rank ----------------------------------------------
for _, metric in ipairs { "params", "flops" } do
	for _, relative in ipairs { false, true } do
		for _, alpha in ipairs { 0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1 } do
			local got, _, what = run_ok("lc-rankselect",
				{ alpha = alpha, metric = metric, relative = relative })
			local bad = {}
			for i, f in ipairs(F) do
				local function objective(c)
					local discarded = c == DENSE and 0 or f.tail[c]
					if relative then discarded = discarded / f.total end
					return alpha * f.cost(c, metric) + discarded
				end
				local best, best_choice = math.huge, nil
				for _, c in ipairs(f.choices) do
					if objective(c) < best then best, best_choice = objective(c), c end
				end
				local tol = 1e-12 * math.max(best, alpha * f.cost(DENSE, metric), 1e-300)
				if objective(got[i]) > best + tol then
					bad[#bad + 1] = string.format("%s: got %s (objective %.17g), best %s (%.17g)",
						f.name, show({ got[i] }), objective(got[i]), show({ best_choice }), best)
				end
			end
			check.ok(#bad == 0, what .. ": per-layer argmin: " .. table.concat(bad, "; "))
		end
	end
end

-- ---- budgets -----------------------------------------------------------------------
-- The cheapest plan there is: rank 1 wherever it pays, else dense.
local function minimum(metric)
	local total = 0
	for _, f in ipairs(F) do total = total + f.cost(f.effective(1), metric) end
	return total
end
local function before(metric)
	local total = 0
	for _, f in ipairs(F) do total = total + f.cost(DENSE, metric) end
	return total
end

local budgets = { 0.0001, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1 }

-- budget-minimax: the smallest achievable worst error within the budget
for _, metric in ipairs { "params", "flops" } do
	for _, err in ipairs { "spec", "fro" } do
		local function value(f, c) return err == "spec" and f.err_spec(c) or f.err_fro(c) end
		local front = figures.frontier(F, metric, value, figures.max)
		-- the same optimum another way: over the sorted union of every
		-- layer's error values, the first level whose cheapest plan (each
		-- layer its cheapest choice with error <= level) fits
		local levels = { 0 }
		for _, f in ipairs(F) do
			for _, c in ipairs(f.choices) do levels[#levels + 1] = value(f, c) end
		end
		table.sort(levels)
		local function by_levels(limit)
			for _, level in ipairs(levels) do
				local total = 0
				for _, f in ipairs(F) do
					local cheapest = math.huge
					for _, c in ipairs(f.choices) do
						if value(f, c) <= level then cheapest = math.min(cheapest, f.cost(c, metric)) end
					end
					total = total + cheapest
				end
				if total <= limit then return level end
			end
		end
		for _, b in ipairs(budgets) do
			local limit = b * before(metric)
			check.eq(figures.best_within(front, limit), by_levels(limit),
				"frontier = levels, worst err_" .. err .. " at budget " .. b)
		end
		if params.exhaustive == "yes" then
			-- the frontier search against every plan
			for _, b in ipairs(budgets) do
				local limit = b * before(metric)
				local best
				figures.enumerate(F, function(choice)
					if figures.cost(F, choice, metric) <= limit then
						local worst = 0
						for i, f in ipairs(F) do worst = math.max(worst, value(f, choice[i])) end
						if best == nil or worst < best then best = worst end
					end
				end)
				check.eq(figures.best_within(front, limit), best,
					"frontier = enumeration, worst err_" .. err .. " at budget " .. b)
			end
		end
		for _, b in ipairs(budgets) do
			local p = { budget = b, metric = metric, error = err }
			local limit = b * before(metric)
			if minimum(metric) > limit then
				local ok, result = run("budget-minimax", p)
				check.ok(not ok and tostring(result):find("budget " .. b .. " is unreachable", 1, true),
					describe("budget-minimax", p) .. ": unreachable: " .. tostring(result))
			else
				local got, result, what = run_ok("budget-minimax", p)
				local used = figures.cost(F, got, metric)
				check.ok(used <= limit, string.format("%s: uses %d of %g", what, used, limit))
				local worst = 0
				for i, f in ipairs(F) do worst = math.max(worst, value(f, got[i])) end
				local best = figures.best_within(front, limit)
				check.near(worst, best, 1e-12, 0, what .. ": worst error is the smallest achievable")
				local shown = tonumber(result:match("worst err_%a+ (%S+) with"))
				check.near(shown, best, 1e-5, 0, what .. ": summary's worst error: " .. result)
				check.ok(result:find(string.format("with %d of %d %s", used, before(metric), metric),
					1, true), what .. ": summary's cost: " .. result)
			end
		end
	end
end

-- budget-greedy: within the budget, and no plan costing at most what it
-- uses has a smaller sum of (weighted) squared Frobenius errors
for _, metric in ipairs { "params", "flops" } do
	for _, weighted in ipairs { false, true } do
		local function value(f, c)
			return (weighted and f.m * f.n or 1) * f.err_fro(c) ^ 2
		end
		local front = figures.frontier(F, metric, value, figures.sum)
		if params.exhaustive == "yes" then
			for _, b in ipairs(budgets) do
				local limit = b * before(metric)
				local best
				figures.enumerate(F, function(choice)
					if figures.cost(F, choice, metric) <= limit then
						local sum = 0
						for i, f in ipairs(F) do sum = sum + value(f, choice[i]) end
						if best == nil or sum < best then best = sum end
					end
				end)
				local what = "frontier = enumeration, sum of squared err_F at budget " .. b
				if best == nil then
					check.eq(figures.best_within(front, limit), nil, what)
				else
					check.near(figures.best_within(front, limit), best, 1e-12, 0, what)
				end
			end
		end
		for _, b in ipairs(budgets) do
			local p = { budget = b, metric = metric, weighted = weighted }
			local limit = b * before(metric)
			if minimum(metric) > limit then
				local ok, result = run("budget-greedy", p)
				check.ok(not ok and tostring(result):find("budget " .. b .. " is unreachable", 1, true),
					describe("budget-greedy", p) .. ": unreachable: " .. tostring(result))
			else
				local got, result, what = run_ok("budget-greedy", p)
				local used = figures.cost(F, got, metric)
				check.ok(used <= limit, string.format("%s: uses %d of %g", what, used, limit))
				local objective = 0
				for i, f in ipairs(F) do objective = objective + value(f, got[i]) end
				local best = figures.best_within(front, used)
				check.near(objective, best, 1e-12, 1e-12,
					what .. ": optimal among plans costing at most " .. used)
				check.ok(result:find(string.format("with %d of %d %s", used, before(metric), metric),
					1, true), what .. ": summary's cost: " .. result)
			end
		end
	end
end

-- ---- the default plans, for the shell test to compare with the CLI's ------------
if params.signatures == "yes" then
	for _, name in ipairs { "uniform", "energy", "threshold", "lc-rankselect",
		"budget-minimax", "budget-greedy" } do
		local ok, result, choice = run(name, {})
		check.ok(ok, name .. " with its defaults: " .. tostring(result))
		print(string.format("plan %s: %s", name, show(choice)))
	end
	local _, _, choice = run("budget-minimax", { budget = 0.3 })
	print("plan budget-minimax budget=0.3: " .. show(choice))
	_, _, choice = run("budget-greedy", { budget = 0.3 })
	print("plan budget-greedy budget=0.3: " .. show(choice))
end

plan:reset()
check.done()
