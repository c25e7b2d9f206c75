-- energy: per layer, the smallest rank keeping a fraction of the energy
-- (sum of squared singular values), i.e. a relative Frobenius error of at
-- most sqrt(1 - energy).  Layers where that rank does not pay stay dense.
return {
	name = "energy",
	description = "smallest rank per layer keeping a fraction of its energy",
	params = {
		{ name = "energy", type = "number", default = 0.99, min = 0, max = 1,
		  help = "fraction of each layer's energy to keep" },
	},
	run = function(model, plan, params)
		local compressed = 0
		for _, layer in ipairs(model:layers{ allows = "lowrank" }) do
			local r = math.max(1, layer:rank_for_energy(params.energy))
			if r < layer.k and layer:pays(r) then
				plan:set(layer, { rank = r })
				compressed = compressed + 1
			else
				plan:set(layer, { method = "dense" })
			end
		end
		local t = plan:totals()
		return string.format("energy %g: %d of %d layers factorised, params %d -> %d "
			.. "(%.2fx), worst err_F %.4f", params.energy, compressed, model.nlayers,
			t.params_before, t.params_after, t.ratio, t.worst_err_fro)
	end,
}
