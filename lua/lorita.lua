-- lorita: LoRITa's compression of layers trained as products of factors.
-- Each composed layer W = F_(N-1) ... F_0 (the model opened with
-- --compose, e.g. 'fc*.factors.#.weight') keeps the singular values of the
-- product with sigma_i > threshold * sigma_max: one threshold for every
-- layer, sigma_max each layer's own largest value (relative_to = "layer",
-- the default) or the largest over all of them (relative_to = "model").  The
-- truncated product replaces the factors; a layer whose rank would not pay
-- (r (m + n) >= m n) keeps its factors.  Layers that are not composed are
-- left dense unless others = "threshold", which applies the same rule.
local function is_composed(layer) return layer.kind == "composed" end

return {
	name = "lorita",
	description = "truncate composed (LoRITa) layers at one global sigma / sigma_max",
	params = {
		{ name = "threshold", type = "number", default = 0.01, min = 0, max = 1,
		  help = "keep singular values above threshold * sigma_max" },
		{ name = "relative_to", type = "choice", choices = { "layer", "model" },
		  default = "layer", help = "sigma_max of each layer, or over all the chosen layers" },
		{ name = "others", type = "choice", choices = { "dense", "threshold" },
		  default = "dense", help = "layers that are not composed: dense, or the same rule" },
	},
	run = function(model, plan, params)
		local layers = model:layers{ allows = "lowrank" }
		local chosen, global_max = {}, 0
		for _, layer in ipairs(layers) do
			if is_composed(layer) or params.others == "threshold" then
				chosen[#chosen + 1] = layer
				global_max = math.max(global_max, layer:spec_norm())
			end
		end
		local composed = 0
		for _, layer in ipairs(chosen) do
			if is_composed(layer) then composed = composed + 1 end
		end
		if composed == 0 then
			error("lorita: the model has no composed layers; open it with --compose "
				.. "PATTERN naming its factors, e.g. --compose 'fc*.factors.#.weight'", 0)
		end
		local truncated = 0
		for _, layer in ipairs(layers) do
			plan:set(layer, { method = "dense" })
		end
		for _, layer in ipairs(chosen) do
			local s1, r = layer:spec_norm(), 0
			if s1 > 0 then
				local cut = params.threshold
				if params.relative_to == "model" then cut = params.threshold * global_max / s1 end
				-- rank_for_err_spec(c): the number of sigma_i above c * sigma_1
				r = math.max(layer:rank_for_err_spec(cut), 1)
			end
			if s1 > 0 and r < layer.k and layer:pays(r) then
				plan:set(layer, { rank = r })
				truncated = truncated + 1
			end
		end
		local t = plan:totals()
		return string.format("lorita threshold %g (relative to %s): %d of %d composed layers "
			.. "truncated, params %d -> %d (%.2fx), worst err_2 %.4g",
			params.threshold, params.relative_to, truncated, composed, t.params_before,
			t.params_after, t.ratio, t.worst_err_spec)
	end,
}
