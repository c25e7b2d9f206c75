-- combine.lua — low rank + sparse: rankscope.combine's iterations, the
-- figures plan:set records from the solve, and the fallback to a single
-- part.  For each --param solves entry NAME:R:P (rank R, sparsity P):
-- errors never increase from one iteration to the next; the storage is
-- r (m + n) v bits plus the sparse part's (v = 16 for an F16 or BF16
-- layer, else 32); plan:set gives the solve's error, or, when a single
-- part at the same storage does better, that part (method "lowrank" at
-- r' = floor(B / ((m + n) v)), or "prune" keeping the
-- largest s' whose storage fits B), computed here from the layer's shape.
-- On the model `familycheck.py make-combo` writes (--param combo=yes) it
-- also checks that an exactly rank 4 + spikes layer is recovered to a tiny
-- error, that scattered nonzeros fall back to pruning and an exactly
-- rank 6 layer to low rank, and leaves a plan for apply to check.
-- Run by tests/cli-families.sh as a plain script:
--
--   rankscope run -S tests/lua tests/lua/families/combine.lua MODEL \
--       [--param solves="fc3.weight:1:0.5 ..."] [--param combo=yes]
local model, plan, params = ...
local check = require "check"
local rankscope = require "rankscope"

-- a compressed layer's values are stored in its own F16 or BF16, else F32
local function value_bits(layer)
	return (layer.dtype == "F16" or layer.dtype == "BF16") and 16 or 32
end

local function sparse_bits(m, n, nnz, vb)
	local csr = 32 * (m + 1) + nnz * (n <= 65536 and 16 or 32)
	return nnz * vb + math.min(m * n, csr)
end

local function kept(count, p)
	return count - math.floor(p * count)
end

-- The solve's figures, checked; returns the result and plan:set's figures
-- (the entry is left in the plan).
local function solve(layer, r, p)
	local m, n = layer.rows, layer.cols
	local count, what = m * n, string.format("%s r=%d p=%s", layer.name, r, p)
	local nnz = kept(count, p)
	local vb = value_bits(layer)
	local budget = r * (m + n) * vb + (nnz > 0 and sparse_bits(m, n, nnz, vb) or 0)
	local res = rankscope.combine(layer, { rank = r, sparsity = p })
	check.eq(res.storage_bits, budget, what .. ": storage r (m + n) v + the sparse part's")
	check.eq(res.iterations, #res.errors, what .. ": one error per iteration")
	check.ok(res.iterations >= 1 and res.iterations <= 50, what .. ": 1..50 iterations")
	for i = 2, #res.errors do
		check.ok(res.errors[i] <= res.errors[i - 1] * (1 + 1e-12) + 1e-15, string.format(
			"%s: error non-increasing at iteration %d (%.17g after %.17g)", what, i,
			res.errors[i], res.errors[i - 1]))
	end
	if res.fallback == "none" then
		check.eq(res.rel_error, res.errors[#res.errors], what .. ": the error is the last iteration's")
	else
		check.ok(res.rel_error < res.errors[#res.errors], what .. ": a fallback is strictly better")
	end
	local f = plan:set(layer, { method = "lowrank+sparse", rank = r, sparsity = p })
	print(string.format("solve %s: fallback %s, error %.6g after %d iterations; plan: %s "
		.. "rank %d nonzeros %d bits %d error %.6g", what, res.fallback, res.rel_error,
		res.iterations, f.method, f.rank, f.nonzeros, f.bits, f.err_fro))
	local dense = layer:storage()
	if res.fallback == "none" then
		local pays = budget < dense
		check.eq(f.method, pays and "lowrank+sparse" or "dense", what .. ": the combination, where it pays")
		if pays then
			check.eq(f.err_fro, res.rel_error, what .. ": err_fro is the solve's error")
			check.eq(f.bits, budget, what .. ": bits")
			check.eq(f.rank, r, what .. ": rank")
			check.eq(f.nonzeros, nnz, what .. ": nonzeros")
			check.eq(f.params, r * (m + n) + nnz, what .. ": params")
			check.eq(f.flops, 2 * r * (m + n) + 2 * nnz, what .. ": flops")
			check.eq(f.spec_is_bound, true, what .. ": the spectral error is a bound")
			check.near(f.err_spec, f.err_fro * layer:fro_norm() / layer:spec_norm(), 1e-12, 1e-15,
				what .. ": err_spec is err_fro ||W||_F / ||W||_2")
			check.eq(f.sparsity, p, what .. ": the figures carry the sparsity")
		end
	elseif res.fallback == "lowrank" then
		local rr = math.min(layer.k, budget // ((m + n) * vb))
		check.eq(res.fallback_rank, rr, what .. ": the fallback rank r' = floor(B / ((m + n) v))")
		check.eq(f.method, rr * (m + n) < m * n and rr < layer.k and "lowrank" or "dense",
			what .. ": plan:get reports the low-rank part")
		if f.method == "lowrank" then
			check.eq(f.rank, rr, what .. ": at r'")
			check.near(f.err_fro, res.rel_error, 1e-9, 1e-15, what .. ": with the fallback's error")
			check.ok(f.bits <= budget, what .. ": within the combination's storage")
		end
	elseif res.fallback == "sparse" then
		local s = 1
		while s < count and sparse_bits(m, n, s + 1, vb) <= budget do s = s + 1 end
		check.eq(res.fallback_nonzeros, s, what .. ": s' is the largest nonzeros fitting B")
		check.eq(f.method, sparse_bits(m, n, s, vb) < dense and "prune" or "dense",
			what .. ": plan:get reports the pruned part")
		if f.method == "prune" then
			check.eq(f.nonzeros, s, what .. ": keeping s' = " .. s)
			check.ok(f.bits <= budget, string.format("%s: within the combination's storage "
				.. "(%d bits, B = %d)", what, f.bits, budget))
			check.near(f.err_fro, res.rel_error, 1e-9, 1e-15, what .. ": with the fallback's error")
		end
	else
		check.ok(false, what .. ": fallback " .. tostring(res.fallback))
	end
	return res, f
end

for word in (params.solves or ""):gmatch("%S+") do
	local name, r, p = word:match("^(.-):(%d+):([%d.]+)$")
	local layer = model:layer(name)
	if check.ok(layer ~= nil, "layer " .. tostring(name)) then
		solve(layer, math.tointeger(tonumber(r)), tonumber(p))
		plan:set(layer, { method = "dense" })
	end
end

if params.combo == "yes" then
	local spiky = model:layer("spiky.weight")
	local count = spiky.rows * spiky.cols
	-- exactly rank 4 plus 20 spikes: keep 20
	local p = 0.9934
	check.eq(kept(count, p), 20, "spiky: the sparse part keeps 20")
	local res, f = solve(spiky, 4, p)
	check.eq(res.fallback, "none", "spiky: the combination itself")
	check.ok(res.rel_error < 1e-6, string.format("spiky: rank 4 + 20 spikes recovered "
		.. "(error %.3g)", res.rel_error))
	check.ok(res.errors[1] > 1e-3, "spiky: the first iteration is not yet there")
	check.eq(f.method, "lowrank+sparse", "spiky: the plan holds the combination")
	-- the same rank alone, or the same nonzeros alone, is far off
	check.ok(spiky:err_fro(4) > 0.05 and spiky:prune_error(p) > 0.5,
		"spiky: neither part alone comes close")

	-- 700 scattered nonzeros: rank 1 + 650 stores as much as 760 nonzeros
	-- alone, which are exact
	local scatter = model:layer("scatter.weight")
	check.eq(kept(count, 0.78335), 650, "scatter: the sparse part keeps 650")
	res, f = solve(scatter, 1, 0.78335)
	check.eq(res.fallback, "sparse", "scatter: pruning alone wins")
	check.eq(f.method, "prune", "scatter: plan:get says prune")
	check.eq(f.err_fro, 0.0, "scatter: exactly")
	check.eq(f.nonzeros, 760, "scatter: keeping the 760 nonzeros that fit")

	-- exactly rank 6: rank 5 + 40 stores as much as rank 6 alone
	local rank6 = model:layer("rank6.weight")
	res, f = solve(rank6, 5, 0.98667)
	check.eq(res.fallback, "lowrank", "rank6: low rank alone wins")
	check.eq(f.method, "lowrank", "rank6: plan:get says lowrank")
	check.eq(f.rank, 6, "rank6: at rank 6")
	check.ok(f.err_fro < 1e-6, "rank6: to float32 rounding")

	-- the plan left for apply: these three, and the float16 layer pruned
	solve(spiky, 4, p)
	solve(scatter, 1, 0.78335)
	solve(rank6, 5, 0.98667)
	local half = model:layer("half.weight")
	-- 1140 values at 16 bits and a 1200-bit bitmap: 19440 >= 19200 dense
	check.eq(plan:set(half, { method = "prune", sparsity = 0.05 }).method, "dense",
		"half: 1140 of 1200 float16 values and their index are no smaller")
	check.eq(plan:set(half, { method = "prune", sparsity = 0.9 }).method, "prune",
		"half: 120 of 1200 are")
end
check.done()
