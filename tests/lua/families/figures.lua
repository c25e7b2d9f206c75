-- figures.lua — every pruning and quantisation figure of every layer, as
-- records for tests/familycheck.py (`familycheck.py figures LOG MODEL`),
-- which recomputes each one with numpy from the raw weights; and the
-- checks that need no numpy: plan:set's figures against the layer
-- methods, the storage formulas in integer arithmetic, the "pays" rules.
-- Run by tests/cli-families.sh as a plain script:
--
--   rankscope run -S tests/lua -S tests/lua/families \
--       tests/lua/families/figures.lua MODEL [--fold N]
--
-- Records (one a line, reals to 17 digits):
--   figlayer NAME ROWS COLS FOLD DTYPE_BITS  (FOLD "-" for a linear layer)
--   rec NAME prune_error P VALUE           and prune_rows_error, prune_cols_error
--   rec NAME count_below T VALUE
--   rec NAME storage NNZ VALUE             (NNZ "-": the dense layer)
--   rec NAME quant_error Q B VALUE         and quant_storage
--   fig NAME SPEC method=M bits=B nonzeros=Z err_fro=E err_spec=S bound=T|F params=P flops=F
--     SPEC: dense, prune:P, prune-rows:P, prune-cols:P, quant:Q:B, lowrank:R
local model, plan, params = ...
local check = require "check"

local QUANTIZERS = { "uniform-tensor", "uniform-channel", "kmeans", "binary", "ternary" }
local FRACTIONS = { 0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.99, 1 }
-- a compressed layer's values are stored in its own F16 or BF16, else F32
local function value_bits(layer)
	return (layer.dtype == "F16" or layer.dtype == "BF16") and 16 or 32
end

local function num(x)
	return string.format("%.17g", x)
end

-- Bits of a sparse layer keeping nnz of m x n: values plus the cheaper of
-- a bitmap and CSR (the bitmap on a tie).
local function sparse_bits(m, n, nnz, vbits)
	local csr = 32 * (m + 1) + nnz * (n <= 65536 and 16 or 32)
	return nnz * vbits + math.min(m * n, csr)
end

-- k-means' centres in the value dtype; the rules' numbers (grid, scale) F32
local function quant_bits(q, b, m, n, vbits)
	local count = m * n
	if q == "uniform-tensor" then return b * count + 64 end
	if q == "uniform-channel" then return b * count + 64 * m end
	if q == "kmeans" then return b * count + vbits * 2 ^ b // 1 end
	if q == "binary" then return count + 32 end
	return 2 * count + 32   -- ternary
end

local function fig(layer, spec, f)
	print(string.format("fig %s %s method=%s bits=%d nonzeros=%d err_fro=%s err_spec=%s "
		.. "bound=%s params=%d flops=%d", layer.name, spec, f.method, f.bits, f.nonzeros,
		num(f.err_fro), num(f.err_spec), f.spec_is_bound and "T" or "F", f.params, f.flops))
end

for _, layer in ipairs(model:layers()) do
	local m, n = layer.rows, layer.cols
	local count = m * n
	local dense = layer:storage()
	local dbits = dense // count
	local vbits = value_bits(layer)
	local fro, spec = layer:fro_norm(), layer:spec_norm()
	local name = layer.name
	print(string.format("figlayer %s %d %d %s %d", name, m, n,
		layer.fold == nil and "-" or tostring(layer.fold), dbits))
	check.eq(dense, count * dbits, name .. ": dense storage is a whole number of bits a value")

	-- the error queries
	for _, p in ipairs(FRACTIONS) do
		print(string.format("rec %s prune_error %s %s", name, num(p), num(layer:prune_error(p))))
		print(string.format("rec %s prune_rows_error %s %s", name, num(p),
			num(layer:prune_rows_error(p))))
		print(string.format("rec %s prune_cols_error %s %s", name, num(p),
			num(layer:prune_cols_error(p))))
	end
	check.eq(layer:prune_error(0), 0.0, name .. ": pruning nothing is exact")
	check.near(layer:prune_error(1), 1.0, 1e-12, 0, name .. ": pruning everything")
	check.near(layer:prune_rows_error(1), 1.0, 1e-12, 0, name .. ": dropping every row")
	check.near(layer:prune_cols_error(1), 1.0, 1e-12, 0, name .. ": dropping every column")
	local last = -1
	for _, p in ipairs(FRACTIONS) do
		local e = layer:prune_error(p)
		check.ok(e >= last, string.format("%s: prune_error non-decreasing at p=%g", name, p))
		last = e
	end
	local rms = fro / math.sqrt(count)
	for _, t in ipairs({ 0, rms * 0.05, rms * 0.5, rms, rms * 2, spec * 2 }) do
		print(string.format("rec %s count_below %s %d", name, num(t), layer:count_below(t)))
	end
	check.eq(layer:count_below(0), 0, name .. ": nothing is below 0")
	check.eq(layer:count_below(spec * 2), count, name .. ": everything is below 2 ||W||_2")
	for _, nnz in ipairs({ 0, 1, count // 7, count // 2, count - 1, count }) do
		local s = layer:storage(nnz)
		print(string.format("rec %s storage %d %d", name, nnz, s))
		check.eq(s, sparse_bits(m, n, nnz, vbits), string.format("%s: storage(%d)", name, nnz))
	end
	print(string.format("rec %s storage - %d", name, dense))
	check.raises(function() return layer:storage(count + 1) end, "nonzeros out of range",
		name .. ": storage beyond the layer's size")
	for _, q in ipairs(QUANTIZERS) do
		for b = 1, 8 do
			local e, s = layer:quant_error(q, b), layer:quant_storage(q, b)
			print(string.format("rec %s quant_error %s %d %s", name, q, b, num(e)))
			print(string.format("rec %s quant_storage %s %d %d", name, q, b, s))
			check.eq(s, quant_bits(q, b, m, n, vbits), string.format("%s: %s/%d storage", name, q, b))
		end
	end
	check.raises(function() return layer:quant_error("lloyd", 3) end, "unknown quantizer",
		name .. ": quant_error with an unknown quantiser")
	check.raises(function() return layer:quant_error("kmeans", 9) end, "bits must be 1..8",
		name .. ": quant_error at 9 bits")
	check.raises(function() return layer:prune_error(1.5) end, "between 0 and 1",
		name .. ": prune_error beyond 1")

	-- plan:set's figures: the method's own figures where it pays, else dense
	local function compressed(f, choice, err, bits, nonzeros, what)
		local pays = bits < dense
		check.eq(f.method, pays and choice.method or "dense", what .. ": pays iff "
			.. bits .. " < " .. dense .. " bits")
		if pays then
			check.eq(f.bits, bits, what .. ": bits")
			check.eq(f.nonzeros, nonzeros, what .. ": nonzeros")
			check.eq(f.err_fro, err, what .. ": err_fro is the layer query's")
			check.near(f.err_spec, err * fro / spec, 1e-12, 1e-15,
				what .. ": err_spec is the bound err_fro ||W||_F / ||W||_2")
			check.eq(f.spec_is_bound, true, what .. ": err_spec is a bound")
			check.near(f.energy, 1 - err * err, 1e-12, 1e-15, what .. ": energy")
		else
			check.eq(f.bits, dense, what .. ": dense bits")
			check.eq(f.err_fro, 0.0, what .. ": dense is exact")
			check.eq(f.spec_is_bound, false, what .. ": dense spectral error is exact")
		end
		fig(layer, choice.text, f)
	end
	for _, p in ipairs({ 0, 0.01, 0.02, 0.03, 0.05, 0.25, 0.5, 0.9, 0.99 }) do
		local f = plan:set(layer, { method = "prune", sparsity = p })
		local nnz = count - math.floor(p * count)
		compressed(f, { method = "prune", text = "prune:" .. num(p) }, layer:prune_error(p),
			sparse_bits(m, n, nnz, vbits), nnz, string.format("%s prune %g", name, p))
		if p == 0 then check.eq(f.method, "dense", name .. ": prune at sparsity 0 stays dense") end
		check.eq(f.sparsity, p, name .. ": figures carry the sparsity")
		for _, side in ipairs({ "rows", "cols" }) do
			local method = "prune-" .. side
			f = plan:set(layer, { method = method, sparsity = p })
			local s, other = side == "rows" and m or n, side == "rows" and n or m
			local kept = s - math.floor(p * s)
			local err = side == "rows" and layer:prune_rows_error(p) or layer:prune_cols_error(p)
			compressed(f, { method = method, text = method .. ":" .. num(p) }, err,
				kept * other * vbits + s, kept * other, string.format("%s %s %g", name, method, p))
		end
	end
	for _, q in ipairs(QUANTIZERS) do
		for b = 1, 8 do
			local f = plan:set(layer, { method = "quant", quantizer = q, bits = b })
			compressed(f, { method = "quant", text = "quant:" .. q .. ":" .. b },
				layer:quant_error(q, b), quant_bits(q, b, m, n, vbits), count,
				string.format("%s %s/%d", name, q, b))
			check.eq(f.quantizer, q, name .. ": figures carry the quantizer")
			check.eq(f.quant_bits, q == "binary" and 1 or q == "ternary" and 2 or b,
				name .. ": figures carry the quantiser's bits")
		end
	end
	for _, r in ipairs({ 1, layer:breakeven() }) do
		if r >= 1 then fig(layer, "lowrank:" .. r, plan:set(layer, r)) end
	end
	plan:set(layer, { method = "dense" })
	fig(layer, "dense", plan:get(layer))
	check.raises(function() plan:set(layer, { method = "quant", quantizer = "kmeans" }) end,
		"needs bits", name .. ": quant without bits")
	check.raises(function() plan:set(layer, { method = "quant", quantizer = "kmeans", bits = 9 }) end,
		"bits must be an integer 1..8", name .. ": quant at 9 bits")
	check.raises(function() plan:set(layer, { method = "quant", quantizer = "lloyd", bits = 2 }) end,
		"unknown quantizer 'lloyd'", name .. ": an unknown quantiser")
	check.raises(function() plan:set(layer, { method = "prune", sparsity = 1 }) end,
		"sparsity must be in [0, 1)", name .. ": sparsity 1")
	check.raises(function() plan:set(layer, { method = "prune", sparsity = -0.1 }) end,
		"sparsity must be in [0, 1)", name .. ": sparsity -0.1")
	check.raises(function() plan:set(layer, { method = "shrink" }) end,
		"unknown method 'shrink'", name .. ": an unknown method")
end
plan:reset()
check.done()
