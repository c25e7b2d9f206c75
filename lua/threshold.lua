-- threshold: LoRITa's selection.  One threshold tau on sigma / sigma_max:
-- every layer keeps the singular values with sigma_i > tau * sigma_max,
-- where sigma_max is the layer's own largest value (relative_to = "layer")
-- or the largest over all layers (relative_to = "model").  Conv and linear
-- layers may have thresholds of their own.  Layers where the resulting rank
-- does not pay stay dense.  With calibration (error = "out") the ranks are
-- the same (LoRITa's rule reads the weights' spectra) and each is the
-- whitened truncation (SVD-LLM), optimal in the output norm at that rank.
local outnorm = require "outnorm"

return {
	name = "threshold",
	description = "global threshold on sigma / sigma_max (LoRITa)",
	params = {
		{ name = "threshold", type = "number", default = 0.05, min = 0, max = 1,
		  help = "keep singular values above threshold * sigma_max" },
		{ name = "conv_threshold", type = "number", default = -1, max = 1,
		  help = "threshold for conv layers (negative: use threshold)" },
		{ name = "linear_threshold", type = "number", default = -1, max = 1,
		  help = "threshold for linear layers (negative: use threshold)" },
		{ name = "relative_to", type = "choice", choices = { "layer", "model" },
		  default = "layer", help = "sigma_max of each layer, or of the whole model" },
		outnorm.param("the whitened truncation at the same ranks"),
	},
	run = function(model, plan, params)
		local layers = model:layers{ allows = "lowrank" }
		local out = outnorm.resolve(model, layers, params, "weight") == "out"
		local global_max = 0
		for _, layer in ipairs(layers) do
			global_max = math.max(global_max, layer:spec_norm())
		end
		local compressed = 0
		for _, layer in ipairs(layers) do
			local tau = params.threshold
			local own = layer.kind == "conv" and params.conv_threshold
				or params.linear_threshold
			if own >= 0 then tau = own end
			local s1 = layer:spec_norm()
			local r = 0
			if s1 > 0 then
				local cut = tau
				if params.relative_to == "model" then cut = tau * global_max / s1 end
				-- rank_for_err_spec(c) counts the sigma_i above c * sigma_1
				r = layer:rank_for_err_spec(cut)
			end
			r = math.max(r, 1)
			if r < layer.k and layer:pays(r) then
				plan:set(layer, { rank = r, whitened = out })
				compressed = compressed + 1
			else
				plan:set(layer, { method = "dense" })
			end
		end
		local t = plan:totals()
		return string.format("threshold %g (relative to %s%s): %d of %d layers factorised, "
			.. "params %d -> %d (%.2fx)", params.threshold, params.relative_to,
			out and ", whitened" or "",
			compressed, model.nlayers, t.params_before, t.params_after, t.ratio)
	end,
}
