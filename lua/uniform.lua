-- uniform: the same keep-ratio for every layer.
--
-- With metric = "rank", each layer keeps round(keep * k) singular values
-- (at least 1).  With metric = "params", each layer gets the largest rank
-- whose factorisation costs at most keep times its dense parameters.
-- Layers where a factorisation does not pay stay dense.  With calibration
-- (error = "out") each rank is the whitened truncation (SVD-LLM), optimal
-- in the output norm at that rank.
local outnorm = require "outnorm"

return {
	name = "uniform",
	description = "keep the same fraction of every layer's rank (or parameters)",
	params = {
		{ name = "keep", type = "number", default = 0.5, min = 0, max = 1,
		  help = "fraction of each layer's full rank (or dense parameters) to keep" },
		{ name = "metric", type = "choice", choices = { "rank", "params" }, default = "rank",
		  help = "what the fraction applies to" },
		outnorm.param("the whitened truncation at the same ranks"),
	},
	run = function(model, plan, params)
		local compressed = 0
		local layers = model:layers{ allows = "lowrank" }
		local out = outnorm.resolve(model, layers, params, "weight") == "out"
		for _, layer in ipairs(layers) do
			local r
			if params.metric == "rank" then
				r = math.max(1, math.floor(params.keep * layer.k + 0.5))
			else
				-- r (m + n) <= keep m n
				r = math.floor(params.keep * layer:params() / (layer.rows + layer.cols))
			end
			if r >= 1 and r < layer.k and layer:pays(r) then
				plan:set(layer, { rank = math.min(r, layer.k), whitened = out })
				compressed = compressed + 1
			else
				plan:set(layer, { method = "dense" })
			end
		end
		local t = plan:totals()
		return string.format("uniform keep=%g (%s%s): %d of %d layers factorised, "
			.. "params %d -> %d (%.2fx)", params.keep, params.metric,
			out and ", whitened" or "", compressed, model.nlayers, t.params_before,
			t.params_after, t.ratio)
	end,
}
