-- network-bound: the smallest ranks that keep the network bound within a
-- target.
--
-- rankscope's totals line shows the "network bound" of a plan,
--   prod over layers of (1 + err_spec) - 1,
-- which bounds the relative change of the output of a feed-forward chain
-- with 1-Lipschitz activations (ReLU, tanh) when every layer is replaced by
-- its truncation.  The shipped strategies fix a per-layer error or a size
-- budget; this one starts from the end-to-end bound you can accept and
-- shares it out between the layers:
--
--   1. A layer is hopeless when even its largest rank that pays
--      (r (m + n) < m n) has an err_spec above the whole target (above
--      conv_factor * target for a conv layer): it can never be factorised
--      within the bound, so it stays dense and gets no share.
--   2. The other L layers share the bound evenly: each gets eps with
--      (1 + eps)^L = 1 + target, i.e. eps = (1 + target)^(1/L) - 1.
--      Convolution layers get conv_factor * eps: a kernel is applied at
--      every position of its input, so its error reaches every output.
--   3. Each of them takes the smallest rank r (at least 1) with
--      err_spec(r) <= its share, and stays dense where that rank does not
--      pay.
--
-- Every factorised layer has 1 + err_spec <= 1 + eps, so the plan's network
-- bound is never above `target`.
--
-- Example:
--   rankscope run --strategy-path samples/strategies network-bound \
--       samples/digits-cnn.safetensors --param target=1
local M = {
	name = "network-bound",
	description = "smallest ranks keeping prod(1 + err_spec) - 1 within a target",
	params = {
		{ name = "target", type = "number", default = 0.5, min = 0,
		  help = "largest network bound allowed (0.5: the output moves by at most 50%)" },
		{ name = "conv_factor", type = "number", default = 0.5, min = 0, max = 1,
		  help = "a conv layer's share, as a fraction of a linear layer's" },
	},
}

-- The largest rank whose factorisation pays, or 0 when none does.
function M.largest_paying_rank(layer)
	local r = layer:breakeven()
	if r >= 1 and not layer:pays(r) then r = r - 1 end
	return r
end

-- What a layer's share is scaled by.
function M.factor(layer, params)
	return layer.kind == "conv" and params.conv_factor or 1
end

function M.hopeless(layer, params)
	local r = M.largest_paying_rank(layer)
	return r < 1 or layer:err_spec(r) > M.factor(layer, params) * params.target
end

-- A layer's choice at share eps: a rank, or nil for dense.
function M.choose(layer, eps, params)
	local r = math.max(1, layer:rank_for_err_spec(M.factor(layer, params) * eps))
	if r < layer.k and layer:pays(r) then return r end
	return nil
end

function M.run(model, plan, params)
	local layers = model:layers()
	local hopeful = {}
	for _, layer in ipairs(layers) do
		if not M.hopeless(layer, params) then hopeful[#hopeful + 1] = layer end
	end
	local eps = 0
	if #hopeful > 0 then eps = (1 + params.target) ^ (1 / #hopeful) - 1 end
	for _, layer in ipairs(layers) do
		plan:set(layer, { method = "dense" })
	end
	for _, layer in ipairs(hopeful) do
		local r = M.choose(layer, eps, params)
		if r then plan:set(layer, { rank = r }) end
	end
	local t = plan:totals()
	return string.format("network-bound %g: %d of %d layers share it (%.4g each), %d "
		.. "factorised, params %d -> %d (%.2fx), network bound %.4f", params.target,
		#hopeful, #layers, eps, t.compressed, t.params_before, t.params_after, t.ratio,
		t.net_bound)
end

return M
