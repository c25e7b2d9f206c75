-- tucker-search: data-free rank selection for Tucker-2 (and optionally CP)
-- under a parameter budget, on the error/cost curves alone (seed 004's
-- setting: no training data, no forward passes).
--
-- Options of a conv layer: dense (error 0); Tucker-2 at every rank pair
-- (r_out, r_in) that costs less than the dense kernel, scored by the HOSVD
-- bound sqrt(tail_out + tail_in) / ||W||_F (a guarantee that the HOOI
-- solve, which runs for the chosen pair, only improves on); with cp = true
-- also CP at ranks 1, 2, 4, 8, ... below the dense cost, scored by the
-- error ALS measures (no bound is known for CP).  A linear layer's options
-- are dense and every rank that pays (Tucker-2 of a matrix is a low-rank
-- factorisation; its error is exact), unless linear = "dense".
-- Options dominated by a cheaper one with no more error are dropped.
-- Every layer then takes the option minimising w err^2 + lambda params
-- (w: the layer's dense size when weighted, else 1), lambda bisected to fit
-- the budget and leftover parameters spent greedily (lua/tradeoff.lua).
local rs = require "rankscope"
local tradeoff = require "tradeoff"

-- The options below the dense cost, cheapest first, with no dominated one.
local function frontier(opts)
	table.sort(opts, function(a, b)
		if a.params ~= b.params then return a.params < b.params end
		return a.err2 < b.err2
	end)
	local out, best = {}, math.huge
	for _, o in ipairs(opts) do
		if o.err2 < best then out[#out + 1] = o; best = o.err2 end
	end
	return out
end

local function conv_options(layer, params)
	local m = rs.tucker_modes(layer)
	local f, c = m.shape[1], m.shape[2]
	local dense = m.dense_params
	local opts = { { spec = { method = "dense" }, err2 = 0, params = dense } }
	for ro = 1, f do
		for ri = 1, c do
			local p = m.params(ro, ri)
			if p < dense then
				opts[#opts + 1] = { spec = { method = "tucker2", ranks = { ro, ri } },
					err2 = m.bound(ro, ri) ^ 2, params = p, bound = m.bound(ro, ri) }
			end
		end
	end
	if params.cp then
		local r = 1
		while true do
			local result = rs.cp(layer, r)
			if result == nil or result.params >= dense then break end
			opts[#opts + 1] = { spec = { method = "cp", rank = r }, err2 = result.err ^ 2,
				params = result.params }
			r = r * 2
		end
	end
	return frontier(opts)
end

local function linear_options(layer)
	local opts = { { spec = { method = "dense" }, err2 = 0, params = layer.rows * layer.cols } }
	for r = 1, layer:breakeven() do
		opts[#opts + 1] = { spec = { rank = r }, err2 = layer:err_fro(r) ^ 2,
			params = layer:params(r) }
	end
	return frontier(opts)
end

return {
	name = "tucker-search",
	description = "data-free Tucker-2 (and CP) rank search under a params budget",
	params = {
		{ name = "budget", type = "number", default = 0.5, min = 0, max = 1,
		  help = "fraction of the dense parameters that may remain" },
		{ name = "weighted", type = "boolean", default = true,
		  help = "weight each layer's squared error by its size" },
		{ name = "cp", type = "boolean", default = false,
		  help = "also try CP at ranks 1, 2, 4, ... (runs ALS for each, slower)" },
		{ name = "linear", type = "choice", choices = { "lowrank", "dense" },
		  default = "lowrank", help = "linear layers: low rank, or left dense" },
	},
	run = function(model, plan, params)
		local layers = model:layers{ allows = "tucker2" }
		local all, before = {}, 0
		for i, layer in ipairs(layers) do
			local opts
			if layer.kind == "conv" then
				opts = conv_options(layer, params)
			elseif params.linear == "lowrank" then
				opts = linear_options(layer)
			else
				opts = { { spec = { method = "dense" }, err2 = 0, params = layer.rows * layer.cols } }
			end
			all[i] = { opts = opts, w = params.weighted and layer.rows * layer.cols or 1 }
			before = before + layer.rows * layer.cols
		end
		local chosen, used = tradeoff.solve(all, params.budget * before, "params")
		if chosen == nil then
			error(string.format("tucker-search: budget %g is unreachable: the cheapest "
				.. "options need %d of %d params", params.budget, used, before), 0)
		end
		local counts, bound2, err2 = {}, 0, 0
		used = 0
		for i, layer in ipairs(layers) do
			local f = plan:set(layer, chosen[i].spec)
			used = used + f.params
			counts[f.method] = (counts[f.method] or 0) + 1
			bound2 = bound2 + all[i].w * chosen[i].err2
			err2 = err2 + all[i].w * f.err_fro ^ 2
		end
		local parts = {}
		for method, n in pairs(counts) do parts[#parts + 1] = n .. " " .. method end
		table.sort(parts)
		return string.format("tucker-search: %d of %d params (budget %g), %s; summed %serr^2 "
			.. "%.6g chosen on the curves, %.6g solved", used, before, params.budget,
			table.concat(parts, ", "), params.weighted and "weighted " or "", bound2, err2)
	end,
}
