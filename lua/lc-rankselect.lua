-- lc-rankselect: LC's rank selection.  Per layer, the rank minimising
--   alpha * cost(r) + discarded energy(r)
-- where cost is params r (m + n) (or FLOPs 2 r (m + n)) and the discarded
-- energy is sum_{i>r} sigma_i^2 (absolute, as LC; or relative to
-- ||W||_F^2 with relative = true).  Keeping the dense layer costs
-- alpha * m n with nothing discarded, and wins when that is smaller.
--
-- The discarded energy falls by sigma_{r+1}^2 per step while the cost rises
-- by a constant, so the minimum keeps exactly the sigma_i with
-- sigma_i^2 > alpha * step cost (times ||W||_F^2 when relative).
--
-- With calibration (error = "out") the discarded energy is the output's,
-- relative to ||W X^T||_F^2: whitened_out_err(r)^2 of the whitened
-- truncation (SVD-LLM), minimised over every rank that pays (alpha is then
-- a price in relative output energy, as with relative = true).
local outnorm = require "outnorm"

local M = {
	name = "lc-rankselect",
	description = "per layer, the rank minimising alpha * cost + discarded energy (LC)",
	params = {
		{ name = "alpha", type = "number", default = 1e-4, min = 0,
		  help = "price of one unit of cost in discarded energy" },
		{ name = "metric", type = "choice", choices = { "params", "flops" },
		  default = "params", help = "what cost counts" },
		{ name = "relative", type = "boolean", default = false,
		  help = "measure discarded energy relative to the layer's ||W||_F^2" },
		outnorm.param("the relative output energy of the whitened truncation"),
	},
}

local function step_cost(layer, metric)
	return (metric == "flops" and 2 or 1) * (layer.rows + layer.cols)
end

-- The objective of rank r (nil = dense) for a layer.
function M.objective(layer, r, params)
	local scale = params.relative and 1 or layer:fro_norm() ^ 2
	if r == nil then
		local dense = params.metric == "flops" and layer:flops() or layer:params()
		return params.alpha * dense
	end
	return params.alpha * r * step_cost(layer, params.metric) + scale * layer:err_fro(r) ^ 2
end

-- error = "out": the rank (nil = dense) minimising alpha cost(r) +
-- whitened_out_err(r)^2 over the ranks that pay, against dense.
local function choose_out(layer, params)
	local step = step_cost(layer, params.metric)
	local best, best_r = params.alpha * (params.metric == "flops" and layer:flops()
		or layer:params()), nil
	for r = 1, layer.k - 1 do
		if not layer:pays(r) then break end
		local f = params.alpha * r * step + layer:whitened_out_err(r) ^ 2
		if f < best then best, best_r = f, r end
	end
	return best_r
end

function M.choose(layer, params)
	if params.error == "out" then return choose_out(layer, params) end
	local scale = params.relative and layer:fro_norm() ^ 2 or 1
	local s1 = layer:spec_norm()
	local r = 1
	if s1 > 0 then
		local cut = math.sqrt(params.alpha * step_cost(layer, params.metric) * scale)
		r = math.max(1, layer:rank_for_err_spec(cut / s1))
	end
	if r >= layer.k or not layer:pays(r) then return nil end
	if M.objective(layer, nil, params) <= M.objective(layer, r, params) then return nil end
	return r
end

function M.run(model, plan, params)
	local compressed = 0
	local layers = model:layers{ allows = "lowrank" }
	local out = outnorm.resolve(model, layers, params, "weight") == "out"
	for _, layer in ipairs(layers) do
		local r = M.choose(layer, params)
		if r then
			plan:set(layer, { rank = r, whitened = out })
			compressed = compressed + 1
		else
			plan:set(layer, { method = "dense" })
		end
	end
	local t = plan:totals()
	return string.format("lc-rankselect alpha=%g%s: %d of %d layers factorised, params %d -> "
		.. "%d (%.2fx)", params.alpha, out and " (output energy)" or "", compressed, model.nlayers, t.params_before,
		t.params_after, t.ratio)
end

return M
