-- protect-edges: compress the inner layers by an energy rule, keep the
-- first and the last layers dense.
--
-- A common practice when factorising a network: the first layer reads the
-- raw input and the last one writes the outputs (the logits of a
-- classifier); both are usually small, so factorising them saves little,
-- and errors there are not damped or spread by the layers around them.
-- This strategy leaves them alone and compresses everything in between.
--
-- The rule, over the layers in file order (the order `rankscope info`
-- shows, after any --layer and --exclude filters):
--   * the first `first` layers and the last `last` layers stay dense;
--   * so does every layer whose name matches the Lua pattern `keep`
--     (string.find; empty: none), e.g. keep=norm or keep=^head%.;
--   * every other layer gets the smallest rank keeping a fraction `energy`
--     of its energy (sum of squared singular values), at least 1, and
--     stays dense where that rank does not pay (r (m + n) >= m n).
--
-- Example:
--   rankscope run --strategy-path samples/strategies protect-edges \
--       samples/digits-mlp.safetensors --param energy=0.9
return {
	name = "protect-edges",
	description = "energy rule for the inner layers; the first and last layers stay dense",
	params = {
		{ name = "energy", type = "number", default = 0.95, min = 0, max = 1,
		  help = "fraction of each inner layer's energy to keep" },
		{ name = "first", type = "integer", default = 1, min = 0,
		  help = "how many leading layers stay dense" },
		{ name = "last", type = "integer", default = 1, min = 0,
		  help = "how many trailing layers stay dense" },
		{ name = "keep", type = "string", default = "",
		  help = "Lua pattern: layers whose name matches it stay dense too (empty: none)" },
	},
	run = function(model, plan, params)
		local layers = model:layers()
		local n = #layers
		local protected, compressed = 0, 0
		for i, layer in ipairs(layers) do
			local edge = i <= params.first or i > n - params.last
			local named = params.keep ~= "" and layer.name:find(params.keep) ~= nil
			if edge or named then
				plan:set(layer, { method = "dense" })
				protected = protected + 1
			else
				local r = math.max(1, layer:rank_for_energy(params.energy))
				if r < layer.k and layer:pays(r) then
					plan:set(layer, { rank = r })
					compressed = compressed + 1
				else
					plan:set(layer, { method = "dense" })
				end
			end
		end
		local t = plan:totals()
		return string.format("protect-edges energy %g: %d layers protected, %d of %d "
			.. "factorised, params %d -> %d (%.2fx), worst err_F %.4f", params.energy,
			protected, compressed, n, t.params_before, t.params_after, t.ratio,
			t.worst_err_fro)
	end,
}
