-- energy: per layer, the smallest rank keeping a fraction of the energy
-- (sum of squared singular values), i.e. a relative Frobenius error of at
-- most sqrt(1 - energy).  Layers where that rank does not pay stay dense.
-- With calibration (error = "out") the energy is the output's,
-- ||W_r X^T||^2 of ||W X^T||^2 kept by the whitened truncation: the
-- smallest rank whose output error is at most sqrt(1 - energy).
local outnorm = require "outnorm"

return {
	name = "energy",
	description = "smallest rank per layer keeping a fraction of its energy",
	params = {
		{ name = "energy", type = "number", default = 0.99, min = 0, max = 1,
		  help = "fraction of each layer's energy to keep" },
		outnorm.param("the output energy of the whitened truncation"),
	},
	run = function(model, plan, params)
		local compressed = 0
		local layers = model:layers{ allows = "lowrank" }
		local out = outnorm.resolve(model, layers, params, "weight") == "out"
		for _, layer in ipairs(layers) do
			local r
			if out then
				r = math.max(1, layer:rank_for_out_err(math.sqrt(1 - params.energy)))
			else
				r = math.max(1, layer:rank_for_energy(params.energy))
			end
			if r < layer.k and layer:pays(r) then
				plan:set(layer, { rank = r, whitened = out })
				compressed = compressed + 1
			else
				plan:set(layer, { method = "dense" })
			end
		end
		local t = plan:totals()
		if out then
			return string.format("energy %g of the output: %d of %d layers factorised, "
				.. "params %d -> %d (%.2fx), worst err_out %.4f", params.energy, compressed,
				model.nlayers, t.params_before, t.params_after, t.ratio, t.worst_out_err)
		end
		return string.format("energy %g: %d of %d layers factorised, params %d -> %d "
			.. "(%.2fx), worst err_F %.4f", params.energy, compressed, model.nlayers,
			t.params_before, t.params_after, t.ratio, t.worst_err_fro)
	end,
}
