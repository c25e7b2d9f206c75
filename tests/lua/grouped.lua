-- grouped.lua — rankscope.grouped (channel-grouped SVD) through Lua, on the
-- api.safetensors model of api.lua.  The kernel itself is checked against
-- known per-group spectra in tests/test-grouped.c; here the binding must
-- agree with the plain spectrum at one group and with its own per-group
-- singular values (which add up to ||W||_F^2) at several.
local model = ...
local check = require "check"
local rs = require "rankscope"
local REL, ABS = 1e-9, 1e-12

for _, name in ipairs { "a", "b", "c", "conv" } do
	local l = model:layer(name)
	local m, n = l.rows, l.cols
	-- one group is the plain SVD: every figure equals the layer's own
	local g1 = rs.grouped(l, 1)
	check.eq(g1.groups, 1, name .. ": one group")
	check.eq(g1.k, math.min(m, n), name .. ": one group has k = min(m, n)")
	for j = 0, g1.k do
		check.near(g1.err_fro[j + 1], l:err_fro(j), REL, ABS, name .. ": g=1 err_fro at " .. j)
		check.near(g1.err_spec[j + 1], l:err_spec(j), REL, ABS, name .. ": g=1 err_spec at " .. j)
		check.eq(g1.params[j + 1], l:params(j), name .. ": g=1 params at " .. j)
	end
	-- every group count dividing the input side
	for g = 2, n do
		if n % g == 0 then
			local r = rs.grouped(l, g)
			local what = string.format("%s g=%d: ", name, g)
			check.eq(r.k, math.min(m, n // g), what .. "k = min(m, n/g)")
			check.eq(#r.sigmas, g, what .. "one spectrum per group")
			local total = 0
			for gi = 1, g do
				for i = 1, r.k do total = total + r.sigmas[gi][i] ^ 2 end
			end
			check.near(total, l:fro_norm() ^ 2, 1e-6, 0, what .. "group energies add up to ||W||_F^2")
			for j = 0, r.k do
				local tail, worst = 0, 0
				for gi = 1, g do
					for i = j + 1, r.k do tail = tail + r.sigmas[gi][i] ^ 2 end
					worst = math.max(worst, r.sigmas[gi][j + 1] or 0)
				end
				check.near(r.err_fro[j + 1], math.sqrt(tail / total), 1e-9, 1e-12,
					what .. "err_fro from the group spectra at " .. j)
				check.near(r.err_spec[j + 1], worst / l:spec_norm(), 1e-6, 1e-12,
					what .. "err_spec is the worst group's sigma_{j+1} at " .. j)
				check.eq(r.params[j + 1], j * (g * m + n), what .. "params j(g m + n) at " .. j)
			end
		end
	end
end

local a = model:layer("a")
check.raises(function() rs.grouped(a, 3) end,
	{ "layer 'a'", "cannot split 4 input columns into 3 equal groups" }, "a group count not dividing n")
check.raises(function() rs.grouped(a, 0) end, "the group count must be >= 1", "zero groups")
check.raises(function() rs.grouped(model, 2) end, "rankscope.layer expected", "not a layer")
check.done()
