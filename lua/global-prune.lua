-- global-prune: one magnitude threshold for the whole model.  Every weight
-- with |w| below the threshold is dropped, whichever layer it is in, so
-- layers with many small weights lose more.  The threshold is the one that
-- drops the requested fraction of all the weights of the chosen layers
-- (found by bisection on the threshold, one O(log N) count per layer).
-- A layer whose pruned form would not be smaller than dense (values plus
-- index) stays dense; the summary reports the sparsity actually reached.
-- With calibration (error = "out") each layer keeps that sparsity but drops
-- the weights of least output score |w_ij|^2 G_jj instead of least |w_ij|
-- (the scored mask: exact for diagonal G, greedy with full G).
local outnorm = require "outnorm"

return {
	name = "global-prune",
	description = "one magnitude threshold across all layers (global unstructured pruning)",
	params = {
		{ name = "sparsity", type = "number", default = 0.8, min = 0, max = 0.99,
		  help = "fraction of all layer weights to drop" },
		outnorm.param("the same sparsities with the output-scored masks"),
	},
	run = function(model, plan, params)
		local layers = model:layers()
		local out = outnorm.resolve(model, layers, params, "weight") == "out"
		local total, hi = 0, 0
		for _, layer in ipairs(layers) do
			total = total + layer:params()
			-- every |w| is at most ||W||_2 (a column's norm is at most it)
			hi = math.max(hi, layer:spec_norm())
		end
		local target = math.floor(params.sparsity * total)
		local function dropped(t)
			local n = 0
			for _, layer in ipairs(layers) do n = n + layer:count_below(t) end
			return n
		end
		-- smallest threshold dropping at least the target
		local lo = 0
		hi = hi * 2 + 1e-300
		for _ = 1, 200 do
			local mid = (lo + hi) / 2
			if mid == lo or mid == hi then break end
			if dropped(mid) >= target then hi = mid else lo = mid end
		end
		local removed, pruned = 0, 0
		for _, layer in ipairs(layers) do
			-- half an element over, so floor(p N) gives back the same count
			local n = layer:count_below(hi)
			local p = n == 0 and 0 or (n + 0.5) / layer:params()
			local f = plan:set(layer, { method = "prune", sparsity = math.min(p, 0.999999),
				scored = out })
			if f.method == "prune" then
				removed = removed + (layer:params() - f.nonzeros)
				pruned = pruned + 1
			end
		end
		local t = plan:totals()
		return string.format("global-prune: threshold %.4g, %d of %d layers pruned%s, "
			.. "%.2f%% of the weights dropped (asked %.2f%%), size %.2fx smaller, worst "
			.. "err_F %.4f%s", hi, pruned, model.nlayers, out and " (scored masks)" or "",
			100 * removed / total, 100 * params.sparsity, t.bits_ratio, t.worst_err_fro,
			out and string.format(", worst err_out %.4f", t.worst_out_err) or "")
	end,
}
