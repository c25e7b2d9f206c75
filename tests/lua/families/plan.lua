-- plan.lua — a plan with a chosen method on each layer, for the apply and
-- plan-file tests of tests/cli-families.sh.  Run as a plain script:
--
--   rankscope run -S tests/lua tests/lua/families/plan.lua MODEL \
--       --param methods="prune:0.5 quant:kmeans:3 dense ..." -o PLAN
--
-- methods lists one choice per layer, in the model's layer order:
--   dense | lowrank:R | prune:P | prune-rows:P | prune-cols:P | quant:Q:B |
--   lowrank+sparse:R:P
-- Each choice must be one that pays (the figures show it, not dense):
-- otherwise the plan would test less than it says.
local model, plan, params = ...
local check = require "check"

local choices = {}
for word in (params.methods or ""):gmatch("%S+") do choices[#choices + 1] = word end
local layers = model:layers()
check.eq(#choices, #layers, "one choice per layer")

for i, layer in ipairs(layers) do
	local word = choices[i] or "dense"
	local parts = {}
	for p in word:gmatch("[^:]+") do parts[#parts + 1] = p end
	local method, spec = parts[1], nil
	if method == "dense" then
		spec = { method = "dense" }
	elseif method == "lowrank" then
		spec = { method = method, rank = math.tointeger(tonumber(parts[2])) }
	elseif method == "lowrank+sparse" then
		spec = { method = method, rank = math.tointeger(tonumber(parts[2])),
			sparsity = tonumber(parts[3]) }
	elseif method == "quant" then
		spec = { method = method, quantizer = parts[2], bits = tonumber(parts[3]) }
	else
		spec = { method = method, sparsity = tonumber(parts[2]) }
	end
	local f = plan:set(layer, spec)
	check.eq(f.method, method, string.format("%s: %s is what the plan holds", layer.name, word))
	check.eq(f.known, true, layer.name .. ": figures known")
	print(string.format("chosen %s %s err_fro=%.17g bits=%d", layer.name, f.method,
		f.err_fro, f.bits))
end
check.done()
