-- lorita-rule.lua — the lorita strategy against its rule, computed here from
-- the layers' singular values: each composed layer (and, with
-- others = "threshold", every layer) keeps the sigma_i above threshold *
-- sigma_max (at least one), sigma_max its own or the largest over the
-- chosen layers; a rank that does not pay stays dense, as does every other
-- layer.  Run by tests/lua-strategies.sh on a model opened with --compose:
--
--   rankscope run -S tests/lua tests/lua/lorita-rule.lua MODEL --compose PATTERN
local model, plan = ...
local check = require "check"
local figures = require "figures"
local S = require "lorita"

local F = figures.of(model)
local composed = 0
for _, f in ipairs(F) do if f.kind == "composed" then composed = composed + 1 end end
check.ok(composed > 0, "the model has composed layers")

local function count_above(f, x)
	local r = 0
	for _, v in ipairs(f.s) do if v > x then r = r + 1 end end
	return math.max(r, 1)
end

local cases = 0
for _, tau in ipairs { 0, 0.001, 0.01, 0.05, 0.2, 0.9, 1 } do
	for _, rel in ipairs { "layer", "model" } do
		for _, others in ipairs { "dense", "threshold" } do
			local p = { threshold = tau, relative_to = rel, others = others }
			local what = string.format("lorita threshold=%g relative_to=%s others=%s", tau, rel, others)
			plan:reset()
			local ok, summary = pcall(S.run, model, plan, p)
			check.ok(ok, what .. ": runs (" .. tostring(summary) .. ")")
			local got = figures.read(plan, F)
			local chosen_max = 0
			for _, f in ipairs(F) do
				if f.kind == "composed" or others == "threshold" then
					chosen_max = math.max(chosen_max, f.s[1])
				end
			end
			local truncated = 0
			for i, f in ipairs(F) do
				local want, alt = figures.DENSE, figures.DENSE
				if f.kind == "composed" or others == "threshold" then
					local ref = rel == "model" and chosen_max or f.s[1]
					want = f.effective(count_above(f, tau * ref * (1 + 1e-12)))
					alt = f.effective(count_above(f, tau * ref * (1 - 1e-12)))
				end
				check.ok(got[i] == want or got[i] == alt, string.format("%s: %s got %s, expected %s",
					what, f.name, figures.show({ got[i] }), figures.show({ want })))
				if f.kind == "composed" and got[i] ~= figures.DENSE then truncated = truncated + 1 end
			end
			check.ok(ok and summary:find(string.format("%d of %d composed layers truncated",
				truncated, composed), 1, true), what .. ": summary " .. tostring(summary))
			cases = cases + 1
		end
	end
end
print(string.format("lorita: %d cases on %d composed of %d layers", cases, composed, #F))
plan:reset()
check.done()
