-- plan.lua — a plan with a chosen method on each layer, for the apply and
-- plan-file tests of tests/cli-families.sh and tests/cli-decomp.sh.  Run
-- as a plain script:
--
--   rankscope run -S tests/lua tests/lua/families/plan.lua MODEL \
--       --param methods="prune:0.5 quant:kmeans:3 dense ..." -o PLAN
--
-- methods lists one choice per layer, in the model's layer order:
--   dense | lowrank:R | prune:P | prune-rows:P | prune-cols:P | quant:Q:B |
--   lowrank+sparse:R:P | quant+sparse:Q:B:P | lowrank+sparse+quant:R:P:Q:B |
--   grouped:R:G[:F]   rank R in each of G groups, grouped under fold F
--                     (a conv layer; default the layer's own)
--   tucker2:RO:RI     Tucker-2 at ranks {RO, RI}
--   cp:R              CP of rank R
--   tt:D[:C1,C2,...]  TT-matrix of D balanced modes, ranks capped at
--                     C1 .. C(D-1) (0: no cap; default none)
-- Each choice must be one that pays (the figures show it, not dense):
-- otherwise the plan would test less than it says.
local model, plan, params = ...
local check = require "check"

local choices = {}
for word in (params.methods or ""):gmatch("%S+") do choices[#choices + 1] = word end
local layers = model:layers()
check.eq(#choices, #layers, "one choice per layer")

local function int(s) return math.tointeger(tonumber(s)) end

for i, layer in ipairs(layers) do
	local word = choices[i] or "dense"
	local parts = {}
	for p in word:gmatch("[^:]+") do parts[#parts + 1] = p end
	local method, spec = parts[1], nil
	if method == "dense" then
		spec = { method = "dense" }
	elseif method == "lowrank" then
		spec = { method = method, rank = int(parts[2]) }
	elseif method == "lowrank+sparse" then
		spec = { method = method, rank = int(parts[2]), sparsity = tonumber(parts[3]) }
	elseif method == "quant" then
		spec = { method = method, quantizer = parts[2], bits = tonumber(parts[3]) }
	elseif method == "quant+sparse" then
		spec = { method = method, quantizer = parts[2], bits = tonumber(parts[3]),
			sparsity = tonumber(parts[4]) }
	elseif method == "lowrank+sparse+quant" then
		spec = { method = method, rank = int(parts[2]), sparsity = tonumber(parts[3]),
			quantizer = parts[4], bits = tonumber(parts[5]) }
	elseif method == "grouped" then
		spec = { method = method, rank = int(parts[2]), groups = int(parts[3]),
			fold = parts[4] and int(parts[4]) or nil }
	elseif method == "tucker2" then
		spec = { method = method, ranks = { int(parts[2]), int(parts[3]) } }
	elseif method == "cp" then
		spec = { method = method, rank = int(parts[2]) }
	elseif method == "tt" then
		spec = { method = method, d = int(parts[2]) }
		if parts[3] then
			spec.ranks = {}
			for cap in parts[3]:gmatch("[^,]+") do spec.ranks[#spec.ranks + 1] = int(cap) end
		end
	else
		spec = { method = method, sparsity = tonumber(parts[2]) }
	end
	local f = plan:set(layer, spec)
	check.eq(f.method, method, string.format("%s: %s is what the plan holds", layer.name, word))
	check.eq(f.known, true, layer.name .. ": figures known")
	if method == "grouped" then
		check.eq(f.groups, spec.groups, layer.name .. ": the groups asked for")
		check.eq(f.rank, spec.rank, layer.name .. ": the rank per group asked for")
		if spec.fold then check.eq(f.fold, spec.fold, layer.name .. ": the fold asked for") end
		check.ok(f.spec_is_bound and f.err_alds <= f.err_spec + 1e-12,
			layer.name .. ": ALDS's measure is below the spectral bound")
	elseif method == "tucker2" then
		check.ok(f.ranks[1] == spec.ranks[1] and f.ranks[2] == spec.ranks[2],
			layer.name .. ": the ranks asked for")
		check.ok(f.err_fro <= f.err_fro_bound + 1e-9, layer.name .. ": HOOI within the HOSVD bound")
	elseif method == "tt" then
		check.eq(#f.rows, spec.d, layer.name .. ": d row modes")
		check.eq(#f.ranks, spec.d + 1, layer.name .. ": d + 1 ranks")
		for k, cap in ipairs(spec.ranks or {}) do
			check.ok(cap == 0 or f.ranks[k + 1] <= cap,
				string.format("%s: TT-rank %d within its cap %d", layer.name, k, cap))
		end
	end
	print(string.format("chosen %s %s err_fro=%.17g bits=%d", layer.name, f.method,
		f.err_fro, f.bits))
end
check.done()
