-- refine: NN-BCD's closed-form refinement of every low-rank, pruned,
-- quantised, low rank + sparse and TT layer of a plan against its dense
-- self on the calibration inputs (rankscope(1), CALIBRATION): alternating
-- least squares of the two factors, the kept values of a fixed sparsity
-- pattern, a quantiser's codes by error feedback (GPTQ, kept where they
-- win) and then its codebook, a TT-matrix's cores one at a time.  Each
-- block is solved exactly, so no layer's output error rises; apply writes
-- the refined parts.  Start from a plan:
--
--   rankscope run refine --plan plan.json -C calib.safetensors -o refined.json MODEL
local M = {
	name = "refine",
	description = "refine a plan's low-rank, pruned, quantised, L+S and TT layers on the calibration (NN-BCD)",
	params = {
		{ name = "sweeps", type = "integer", default = 10, min = 1, max = 50,
		  help = "alternating sweeps of a low-rank, L+S or TT layer at most" },
	},
}

function M.run(model, plan, params)
	if not model:calibrated() then
		error("refine needs calibration statistics (--calibration FILE)", 0)
	end
	local refined, before, after = 0, 0, 0
	for _, layer in ipairs(model:layers()) do
		local f = plan:get(layer)
		local spec
		if f.method == "lowrank" then
			spec = { rank = f.rank, whitened = f.whitened }
		elseif f.method == "prune" then
			spec = { method = "prune", sparsity = f.sparsity, scored = f.scored }
		elseif f.method == "quant" then
			spec = { method = "quant", quantizer = f.quantizer, bits = f.quant_bits }
		elseif f.method == "lowrank+sparse" then
			spec = { method = "lowrank+sparse", rank = f.rank, sparsity = f.sparsity }
		elseif f.method == "tt" then
			-- the ranks it reached, as caps: the same TT-SVD to start from
			local caps = {}
			for k = 2, #f.ranks - 1 do caps[#caps + 1] = f.ranks[k] end
			spec = { method = "tt", rows = f.rows, cols = f.cols, ranks = caps }
		end
		if spec and layer:calibrated() and f.out_err then
			before = math.max(before, f.out_err)
			spec.refined = true
			spec.sweeps = params.sweeps
			local g = plan:set(layer, spec)
			after = math.max(after, g.out_err)
			refined = refined + 1
		end
	end
	return string.format("refine: %d layers refined; worst layer output error %.6g -> %.6g",
		refined, before, after)
end

return M
