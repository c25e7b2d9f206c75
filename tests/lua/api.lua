-- api.lua — the rankscope Lua API, method by method, on a model whose
-- spectra are known.  Run by tests/lua-api.sh as a plain script:
--
--   rankscope run --strategy-path tests/lua tests/lua/api.lua api.safetensors \
--       --param path=api.safetensors --param version=V [--param fold=3]
--
-- api.safetensors is written by make-model with
--   a=6x4@0.5 b=3x8@0.8 c=12x9@0.7 conv=8x3x3x3 bias=7 enc.0.weight=5x5@0.9
-- so a layer "NAME=MxN@d" has singular values d^(i-1), i = 1..min(M, N).
-- Every expected figure below is computed here from that decay, never from
-- rankscope's own answers.  The script leaves a known plan behind (a at
-- rank 2, c at rank 3, the rest dense), which the shell test checks in the
-- printed table.
local model, plan, params = ...
local check = require "check"

local fold = tonumber(params.fold or "0")
local known = {
	{ name = "a", rows = 6, cols = 4, decay = 0.5 },
	{ name = "b", rows = 3, cols = 8, decay = 0.8 },
	{ name = "c", rows = 12, cols = 9, decay = 0.7 },
	{ name = "conv", shape = { 8, 3, 3, 3 } },
	{ name = "enc.0.weight", rows = 5, cols = 5, decay = 0.9 },
}
-- The conv kernel's matrix under each fold scheme (f c kh kw = 8 3 3 3).
local conv_matrix = { [0] = { 8, 27 }, [1] = { 24, 9 }, [2] = { 24, 9 }, [3] = { 72, 3 } }
known[4].rows, known[4].cols = conv_matrix[fold][1], conv_matrix[fold][2]

-- float32 weights: singular values carry ~1e-7 relative error
local REL, ABS = 1e-6, 1e-7

-- ---- the expected figures of a known spectrum ----

local function spectrum(d, k)
	local s, total, l1 = {}, 0, 0
	for i = 1, k do
		s[i] = d ^ (i - 1)
		total = total + s[i] ^ 2
		l1 = l1 + s[i]
	end
	local tail = {}
	tail[k] = 0
	for r = k - 1, 0, -1 do tail[r] = tail[r + 1] + s[r + 1] ^ 2 end
	local entropy = 0
	for i = 1, k do
		local p = s[i] / l1
		entropy = entropy - p * math.log(p)
	end
	return {
		sigma = s, total = total, tail = tail,
		err_fro = function(r) return math.sqrt(tail[r] / total) end,
		err_spec = function(r) return r < k and s[r + 1] / s[1] or 0 end,
		energy = function(r) return 1 - tail[r] / total end,
		effective_rank = math.exp(entropy),
	}
end

-- ---- the model ----

check.eq(#model, 5, "#model counts layers (the 1-D bias is not one)")
check.eq(model.nlayers, 5, "model.nlayers")
check.eq(model.path, params.path, "model.path is the path given")
check.eq(tostring(model), "model " .. params.path .. " (5 layers)", "tostring(model)")
check.eq(model.nosuch, nil, "unknown model field is nil")
check.eq(getmetatable(model), "locked", "model metatable is locked")

local layers = model:layers()
check.eq(#layers, 5, "model:layers() length")
check.ok(layers ~= model:layers(), "model:layers() makes a new table each call")
local dense_total = 0
for i, want in ipairs(known) do
	check.eq(layers[i] and layers[i].name, want.name, "layers in file order: " .. i)
	dense_total = dense_total + want.rows * want.cols
end
check.eq(model:params(), dense_total, "model:params() is the sum of m n")
check.eq(math.type(model:params()), "integer", "model:params() is an integer")

local found, msg = model:layer("enc.0.weight")
check.eq(found and found.name, "enc.0.weight", "model:layer(name) finds a dotted name")
check.eq(msg, nil, "model:layer(name) returns one value when found")
check.eq(select("#", model:layer("enc.0.weight")), 1, "one result when found")
found, msg = model:layer("nosuch")
check.eq(found, nil, "model:layer of an unknown name is nil")
check.eq(msg, "no layer named 'nosuch'", "model:layer's message for an unknown name")
check.eq(select("#", model:layer("nosuch")), 2, "nil, message")
check.eq(model:layer("bias"), nil, "a 1-D tensor is not a layer")
check.eq(model:metadata("model"), nil, "metadata of a file without __metadata__")

local rs = require "rankscope"
check.ok(rawequal(rs.model(), model), "rankscope.model() is the model argument")
check.ok(rawequal(rs.plan(), plan), "rankscope.plan() is the plan argument")
check.ok(rawequal(_G.model, model) and rawequal(_G.plan, plan), "globals model and plan")
check.eq(rs.version, params.version, "rankscope.version is the program's version")
check.ok(rawequal(require "rankscope", rs), "require caches the module")

-- ---- layers ----

for i, want in ipairs(known) do
	local l = layers[i]
	local m, n = want.rows, want.cols
	local k = math.min(m, n)
	local tag = want.name .. ": "
	check.eq(l.rows, m, tag .. "rows")
	check.eq(l.cols, n, tag .. "cols")
	check.eq(l.k, k, tag .. "k = min(rows, cols)")
	check.eq(l.index, i, tag .. "index is 1-based file position")
	check.eq(l.dtype, "F32", tag .. "dtype")
	check.eq(tostring(l), string.format("layer %s (%dx%d)", want.name, m, n), tag .. "tostring")
	check.eq(l.nosuch, nil, tag .. "unknown field is nil")
	check.eq(l:ready(), true, tag .. "ready")
	check.ok(l == model:layer(want.name), tag .. "== the same layer fetched by name")
	check.ok(not rawequal(l, model:layer(want.name)), tag .. "each fetch is a new userdata")
	check.ok(l ~= layers[i % #layers + 1], tag .. "~= another layer")
	check.eq(getmetatable(l), "locked", tag .. "metatable is locked")
	local shape = l.shape
	if want.shape then
		check.eq(l.kind, "conv", tag .. "kind conv")
		check.eq(l.fold, fold, tag .. "fold is the --fold scheme")
		check.eq(table.concat(shape, "x"), table.concat(want.shape, "x"), tag .. "shape")
	else
		check.eq(l.kind, "linear", tag .. "kind linear")
		check.eq(l.fold, nil, tag .. "fold is nil for a linear layer")
		check.eq(table.concat(shape, "x"), m .. "x" .. n, tag .. "shape")
	end
	shape[1] = 999
	check.ok(l.shape[1] ~= 999, tag .. "shape is a copy")

	-- costs need no spectrum
	check.eq(l:params(), m * n, tag .. "params() = m n")
	check.eq(l:flops(), 2 * m * n, tag .. "flops() = 2 m n")
	check.eq(l:breakeven(), m * n // (m + n), tag .. "breakeven = floor(m n / (m + n))")
	for r = 0, k + 2 do
		check.eq(l:params(r), r * (m + n), tag .. "params(" .. r .. ")")
		check.eq(l:flops(r), 2 * r * (m + n), tag .. "flops(" .. r .. ")")
		check.eq(l:pays(r), r * (m + n) < m * n, tag .. "pays(" .. r .. ")")
	end
	check.eq(math.type(l:params(2)), "integer", tag .. "params(r) is an integer")

	-- the spectrum
	local sig = l:sigmas()
	check.eq(#sig, k, tag .. "#sigmas() = k")
	local descending, same = true, true
	for j = 1, k do
		if j > 1 and sig[j] > sig[j - 1] then descending = false end
		if sig[j] ~= l:sigma(j) then same = false end
	end
	check.ok(descending, tag .. "sigmas descending")
	check.ok(same, tag .. "sigmas()[i] == sigma(i)")
	check.ok(sig ~= l:sigmas(), tag .. "sigmas() makes a new table")

	if want.decay then
		local sp = spectrum(want.decay, k)
		for j = 1, k do
			check.near(l:sigma(j), sp.sigma[j], REL, ABS, tag .. "sigma(" .. j .. ") = d^(i-1)")
		end
		check.near(l:fro_norm(), math.sqrt(sp.total), REL, 0, tag .. "fro_norm")
		check.near(l:spec_norm(), 1, REL, 0, tag .. "spec_norm")
		check.near(l:stable_rank(), sp.total, 1e-5, 0, tag .. "stable_rank")
		check.near(l:effective_rank(), sp.effective_rank, 1e-5, 0, tag .. "effective_rank")
		for r = 0, k do
			check.near(l:err_fro(r), sp.err_fro(r), 1e-5, ABS, tag .. "err_fro(" .. r .. ")")
			check.near(l:err_spec(r), sp.err_spec(r), 1e-5, ABS, tag .. "err_spec(" .. r .. ")")
			check.near(l:energy(r), sp.energy(r), 1e-5, ABS, tag .. "energy(" .. r .. ")")
		end
		-- thresholds halfway between consecutive values: no ties
		for r = 0, k - 1 do
			local e = (sp.energy(r) + sp.energy(r + 1)) / 2
			check.eq(l:rank_for_energy(e), r + 1, tag .. "rank_for_energy(" .. e .. ")")
			local f = (sp.err_fro(r) + sp.err_fro(r + 1)) / 2
			check.eq(l:rank_for_err_fro(f), r + 1, tag .. "rank_for_err_fro(" .. f .. ")")
			local s = (sp.err_spec(r) + sp.err_spec(r + 1)) / 2
			check.eq(l:rank_for_err_spec(s), r + 1, tag .. "rank_for_err_spec(" .. s .. ")")
		end
	end
	-- exact ends, whatever the spectrum
	check.eq(l:err_fro(0), 1, tag .. "err_fro(0) = 1")
	check.eq(l:err_spec(0), 1, tag .. "err_spec(0) = 1")
	check.eq(l:energy(0), 0, tag .. "energy(0) = 0")
	check.eq(l:err_fro(k), 0, tag .. "err_fro(k) = 0")
	check.eq(l:err_spec(k), 0, tag .. "err_spec(k) = 0")
	check.eq(l:energy(k), 1, tag .. "energy(k) = 1")
	check.eq(l:rank_for_energy(0), 0, tag .. "rank_for_energy(0)")
	check.eq(l:rank_for_energy(1), k, tag .. "rank_for_energy(1)")
	check.eq(l:rank_for_err_fro(1), 0, tag .. "rank_for_err_fro(1)")
	check.eq(l:rank_for_err_fro(0), k, tag .. "rank_for_err_fro(0)")
	check.eq(l:rank_for_err_fro(-0.5), k, tag .. "rank_for_err_fro(< 0) = k")
	check.eq(l:rank_for_err_spec(1), 0, tag .. "rank_for_err_spec(1)")
	check.eq(l:rank_for_err_spec(0), k, tag .. "rank_for_err_spec(0)")
	check.eq(math.type(l:rank_for_energy(0.5)), "integer", tag .. "ranks are integers")
	-- figures from the layer's own values, for every layer (conv too)
	local total = 0
	for j = 1, k do total = total + sig[j] ^ 2 end
	check.near(l:fro_norm(), math.sqrt(total), 1e-12, 0, tag .. "fro_norm^2 = sum sigma^2")
	check.eq(l:spec_norm(), sig[1], tag .. "spec_norm = sigma(1)")
	check.near(l:stable_rank(), total / sig[1] ^ 2, 1e-12, 0, tag .. "stable_rank from sigmas")
	for r = 0, k do
		local tail = 0
		for j = r + 1, k do tail = tail + sig[j] ^ 2 end
		check.near(l:err_fro(r), math.sqrt(tail / total), 1e-9, 1e-15,
			tag .. "err_fro from sigmas, r = " .. r)
		check.near(l:energy(r), 1 - tail / total, 1e-9, 1e-15,
			tag .. "energy from sigmas, r = " .. r)
	end
	check.eq(l:sigma(2.0), l:sigma(2), tag .. "a float with an integral value is a rank")

	-- misuse raises errors naming the argument
	check.raises(function() l:sigma(0) end, { "bad argument #1 to 'sigma'", "out of range 1..k" },
		tag .. "sigma(0)")
	check.raises(function() l:sigma(k + 1) end, "bad argument #1 to 'sigma'", tag .. "sigma(k+1)")
	check.raises(function() l:sigma(1.5) end, { "bad argument #1 to 'sigma'", "integer" },
		tag .. "sigma(1.5)")
	check.raises(function() l:sigma() end, { "bad argument #1 to 'sigma'", "number expected" },
		tag .. "sigma()")
	check.raises(function() l:err_fro(-1) end, { "bad argument #1 to 'err_fro'",
		"rank out of range 0..k" }, tag .. "err_fro(-1)")
	check.raises(function() l:err_fro(k + 1) end, "bad argument #1 to 'err_fro'",
		tag .. "err_fro(k+1)")
	check.raises(function() l:err_spec(k + 1) end, "bad argument #1 to 'err_spec'",
		tag .. "err_spec(k+1)")
	check.raises(function() l:energy(-1) end, "bad argument #1 to 'energy'", tag .. "energy(-1)")
	check.raises(function() l:params(-1) end, { "bad argument #1 to 'params'", "rank must be >= 0" },
		tag .. "params(-1)")
	check.raises(function() l:flops(-1) end, "bad argument #1 to 'flops'", tag .. "flops(-1)")
	check.raises(function() l:pays(-1) end, "bad argument #1 to 'pays'", tag .. "pays(-1)")
	check.raises(function() l:pays() end, "bad argument #1 to 'pays'", tag .. "pays()")
	check.raises(function() l:rank_for_energy(2) end, { "bad argument #1 to 'rank_for_energy'",
		"between 0 and 1" }, tag .. "rank_for_energy(2)")
	check.raises(function() l:rank_for_energy(-0.1) end, "bad argument #1 to 'rank_for_energy'",
		tag .. "rank_for_energy(-0.1)")
	check.raises(function() l:rank_for_err_fro("x") end, "bad argument #1 to 'rank_for_err_fro'",
		tag .. "rank_for_err_fro('x')")
	check.raises(function() l:rank_for_err_spec() end, "bad argument #1 to 'rank_for_err_spec'",
		tag .. "rank_for_err_spec()")
	check.raises(function() l.sigma(model, 1) end, "rankscope.layer expected",
		tag .. "a method called on the model")
end

check.raises(function() model:layer() end, { "bad argument #1 to 'layer'", "string expected" },
	"model:layer()")
check.raises(function() model.layers(plan) end, "rankscope.model expected",
	"model.layers on the plan")
check.raises(function() plan.totals(model) end, "rankscope.plan expected",
	"plan.totals on the model")

-- ---- the plan ----

check.eq(tostring(plan), "plan (5 layers)", "tostring(plan)")
check.eq(getmetatable(plan), "locked", "plan metatable is locked")

-- The figures a plan entry must give, from the layer's values.
local function expect_figures(f, l, method, rank, requested, what)
	local m, n = l.rows, l.cols
	check.eq(f.method, method, what .. ": method")
	check.eq(f.rank, rank, what .. ": effective rank")
	check.eq(f.requested_rank, requested, what .. ": requested_rank")
	check.eq(f.known, true, what .. ": known")
	if method == "dense" then
		check.eq(f.err_fro, 0, what .. ": dense err_fro")
		check.eq(f.err_spec, 0, what .. ": dense err_spec")
		check.eq(f.energy, 1, what .. ": dense energy")
		check.eq(f.params, m * n, what .. ": dense params")
		check.eq(f.flops, 2 * m * n, what .. ": dense flops")
	else
		check.eq(f.err_fro, l:err_fro(rank), what .. ": err_fro")
		check.eq(f.err_spec, l:err_spec(rank), what .. ": err_spec")
		check.eq(f.energy, l:energy(rank), what .. ": energy")
		check.eq(f.params, rank * (m + n), what .. ": params r (m + n)")
		check.eq(f.flops, 2 * rank * (m + n), what .. ": flops 2 r (m + n)")
	end
end

local a, b, c, conv, enc = table.unpack(layers)
for _, l in ipairs(layers) do
	expect_figures(plan:get(l), l, "dense", l.k, nil, "fresh plan " .. l.name)
end
local t = plan:totals()
check.eq(t.layers, 5, "fresh totals: layers")
check.eq(t.pending, 0, "fresh totals: pending")
check.eq(t.compressed, 0, "fresh totals: compressed")
check.eq(t.params_before, dense_total, "fresh totals: params_before")
check.eq(t.params_after, dense_total, "fresh totals: params_after")
check.eq(t.flops_before, 2 * dense_total, "fresh totals: flops_before")
check.eq(t.flops_after, 2 * dense_total, "fresh totals: flops_after")
check.eq(t.ratio, 1, "fresh totals: ratio")
check.eq(t.worst_err_spec, 0, "fresh totals: worst_err_spec")
check.eq(t.worst_err_fro, 0, "fresh totals: worst_err_fro")
check.eq(t.net_bound, 0, "fresh totals: net_bound")
check.eq(t.worst_layer, "a", "fresh totals: worst_layer is the first layer")

-- set: a bare rank, {rank =}, {method = "lowrank", rank =}, by name
expect_figures(plan:set(a, 2), a, "lowrank", 2, 2, "set(a, 2)")
expect_figures(plan:get(a), a, "lowrank", 2, 2, "get(a) after set(a, 2)")
expect_figures(plan:get("a"), a, "lowrank", 2, 2, "get('a') by name")
expect_figures(plan:set("b", { rank = 1 }), b, "lowrank", 1, 1, "set('b', {rank = 1})")
expect_figures(plan:set(c, { method = "lowrank", rank = 3 }), c, "lowrank", 3, 3,
	"set(c, {method = 'lowrank', rank = 3})")
expect_figures(plan:set(conv, { rank = conv.k }), conv, "dense", conv.k, nil,
	"rank k is dense")
-- enc 5x5: breakeven 2; rank 3 costs 30 >= 25, so it does not pay: the
-- entry keeps the request, the figures are dense
expect_figures(plan:set(enc, 3), enc, "dense", 5, 3, "a rank that does not pay")
expect_figures(plan:set(enc, { method = "dense" }), enc, "dense", 5, nil, "{method = 'dense'}")
expect_figures(plan:set(enc, 2), enc, "lowrank", 2, 2, "set(enc, 2)")

-- totals of a = 2, b = 1, c = 3, conv dense, enc = 2, from the figures
local function expect_totals(what)
	local tt = plan:totals()
	local after, compressed, worst, worst_name, worst_fro, product = 0, 0, 0, layers[1].name, 0, 1
	for _, l in ipairs(layers) do
		local f = plan:get(l)
		after = after + f.params
		if f.method == "lowrank" then compressed = compressed + 1 end
		if f.err_spec > worst then worst, worst_name = f.err_spec, l.name end
		worst_fro = math.max(worst_fro, f.err_fro)
		product = product * (1 + f.err_spec)
	end
	check.eq(tt.layers, 5, what .. ": layers")
	check.eq(tt.pending, 0, what .. ": pending")
	check.eq(tt.compressed, compressed, what .. ": compressed")
	check.eq(tt.params_before, dense_total, what .. ": params_before")
	check.eq(tt.params_after, after, what .. ": params_after")
	check.eq(tt.flops_before, 2 * dense_total, what .. ": flops_before")
	check.eq(tt.flops_after, 2 * after, what .. ": flops_after")
	check.near(tt.ratio, dense_total / after, 1e-15, 0, what .. ": ratio")
	check.eq(tt.worst_err_spec, worst, what .. ": worst_err_spec")
	check.eq(tt.worst_layer, worst_name, what .. ": worst_layer")
	check.eq(tt.worst_err_fro, worst_fro, what .. ": worst_err_fro")
	check.near(tt.net_bound, product - 1, 1e-12, 0, what .. ": net_bound")
	return tt
end
t = expect_totals("after set")
check.eq(t.compressed, 4, "four layers compressed")
check.eq(t.params_after, 2 * 10 + 1 * 11 + 3 * 21 + conv.rows * conv.cols + 2 * 10,
	"params after, by hand")
-- err_spec: a 0.5^2, b 0.8, c 0.7^3, enc 0.9^2 = 0.81, the worst
check.eq(t.worst_layer, "enc.0.weight", "worst layer is enc.0.weight")
check.near(t.worst_err_spec, 0.81, 1e-5, 0, "worst err_spec = 0.9^2")
check.near(t.worst_err_fro, math.sqrt((0.8 ^ 2 + 0.8 ^ 4) / (1 + 0.8 ^ 2 + 0.8 ^ 4)), 1e-5, 0,
	"worst err_fro is b's at rank 1")

-- errors leave the entry alone
check.raises(function() plan:set(a, { rank = 0 }) end, { "bad argument #2 to 'set'",
	"rank must be 1..4 for layer 'a'" }, "set(a, {rank = 0})")
check.raises(function() plan:set(a, 5) end, "rank must be 1..4 for layer 'a'", "set(a, 5)")
check.raises(function() plan:set(a, {}) end, "rank must be 1..4", "set(a, {})")
check.raises(function() plan:set(a, { rank = 1.5 }) end, { "bad argument #2 to 'set'",
	"rank must be an integer" }, "set(a, {rank = 1.5})")
check.raises(function() plan:set(a, { method = "x" }) end, { "bad argument #2 to 'set'",
	"unknown method 'x'" }, "set(a, {method = 'x'})")
check.raises(function() plan:set("nosuch", 3) end, { "bad argument #1 to 'set'",
	"no layer named 'nosuch'" }, "set('nosuch', 3)")
check.raises(function() plan:set(a, "2") end, "bad argument #2 to 'set'", "set(a, '2')")
check.raises(function() plan:set(42, 2) end, { "bad argument #1 to 'set'",
	"rankscope.layer expected" }, "set(42, 2)")
check.raises(function() plan:get("nosuch") end, { "bad argument #1 to 'get'",
	"no layer named 'nosuch'" }, "get('nosuch')")
expect_figures(plan:get(a), a, "lowrank", 2, 2, "failed sets leave a as it was")

-- reset
check.eq(select("#", plan:reset()), 0, "reset returns nothing")
for _, l in ipairs(layers) do
	expect_figures(plan:get(l), l, "dense", l.k, nil, "after reset " .. l.name)
end
expect_totals("after reset")

-- the plan this script leaves for the CLI to print
plan:set(a, 2)
plan:set("c", { rank = 3 })
print(string.format("left: a=%d c=%d", plan:get(a).rank, plan:get(c).rank))
check.done()
