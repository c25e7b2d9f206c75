-- tensor.lua — the tensor decompositions through Lua: rankscope.tucker_modes,
-- rankscope.tucker, rankscope.tt and rankscope.cp.  The kernels are checked
-- on their own in tests/test-{tucker,tt,cp}.c; here the binding must pass
-- the right weights in the right layout and hand back what the kernels
-- promise, checked against figures computed independently: the layer's
-- own spectrum (Eckart-Young), the costs' formulas by hand.
--
-- lua-api.sh runs it on tensor.safetensors, the layers of api.safetensors
-- (api.lua) plus
--   r1=5x3@0                  a rank-1 matrix (singular values 1, 0, 0)
--   f.factors.{0,1}.weight    4x6 and 5x4, one composed 5x6 layer (--compose)
-- under fold 0 and fold 3 (the conv kernel is (8, 3, 3, 3) either way).
local model = ...
local check = require "check"
local rs = require "rankscope"

-- The weights are float32: spectra carry ~1e-7 relative error, and the
-- layer's spectrum may come from a Gram matrix (3e-12 sigma_1 absolute).
local REL, ABS = 1e-6, 1e-9

local function sum_sq(v, from)
	local s = 0
	for i = from or 1, #v do s = s + v[i] ^ 2 end
	return s
end

local function descending(v)
	for i = 2, #v do
		if v[i] > v[i - 1] then return false end
	end
	return true
end

local function product(v)
	local p = 1
	for _, x in ipairs(v) do p = p * x end
	return p
end

-- rank pairs 1, the middle and full on each side
local function ranks_of(n)
	local r = { 1 }
	if n >= 3 then r[#r + 1] = (n + 1) // 2 end
	if n >= 2 then r[#r + 1] = n end
	return r
end

for _, l in ipairs(model:layers()) do
	local name = l.name
	local sigma = l:sigmas()
	local fro = l:fro_norm()

	-- ---- tucker_modes: the two unfoldings' spectra ----
	local m = rs.tucker_modes(l)
	local f, c, kh, kw
	if l.kind == "conv" then
		f, c, kh, kw = 8, 3, 3, 3
	else
		f, c, kh, kw = l.rows, l.cols, 1, 1
	end
	local s = kh * kw
	check.eq(table.concat(m.shape, "x"), table.concat({ f, c, kh, kw }, "x"),
		name .. ": the kernel's shape, whatever the fold")
	check.eq(m.k_out, math.min(f, c * s), name .. ": k_out = min(f, c kh kw)")
	check.eq(m.k_in, math.min(c, f * s), name .. ": k_in = min(c, f kh kw)")
	check.eq(#m.sigma_out, m.k_out, name .. ": k_out values of sigma_out")
	check.eq(#m.sigma_in, m.k_in, name .. ": k_in values of sigma_in")
	check.ok(descending(m.sigma_out) and descending(m.sigma_in), name .. ": spectra descend")
	check.near(m.fro, fro, REL, 0, name .. ": fro is ||W||_F")
	check.near(sum_sq(m.sigma_out), fro ^ 2, REL, 0, name .. ": sigma_out carries ||W||_F^2")
	check.near(sum_sq(m.sigma_in), fro ^ 2, REL, 0, name .. ": sigma_in carries ||W||_F^2")
	check.eq(m.dense_params, f * c * kh * kw, name .. ": dense_params = f c kh kw")
	-- The layer's matrix is one of the unfoldings up to a permutation of
	-- its columns (same singular values): a matrix is both (its mode-1
	-- unfolding is W, its mode-2 one W^T), fold 0 is the mode-1 unfolding,
	-- fold 3 the transpose of the mode-2 one.
	local same = {}
	if l.kind ~= "conv" then
		same = { sigma_out = m.sigma_out, sigma_in = m.sigma_in }
	elseif l.fold == 0 then
		same = { sigma_out = m.sigma_out }
	elseif l.fold == 3 then
		same = { sigma_in = m.sigma_in }
	end
	for which, v in pairs(same) do
		check.eq(#v, #sigma, name .. ": " .. which .. " has the layer's k values")
		for i = 1, #sigma do
			check.near(v[i], sigma[i], REL, ABS, string.format("%s: %s[%d] is layer:sigma(%d)",
				name, which, i, i))
		end
	end
	-- bound and costs at every rank pair, from the spectra and by hand
	for ro = 0, f do
		for ri = 0, c do
			local want = math.sqrt(sum_sq(m.sigma_out, ro + 1) + sum_sq(m.sigma_in, ri + 1)) / m.fro
			local what = string.format("%s (%d, %d): ", name, ro, ri)
			check.near(m.bound(ro, ri), want, 1e-9, 1e-12, what .. "bound from the tails")
			local p = c * ri + ri * ro * kh * kw + ro * f
			check.eq(m.params(ro, ri), p, what .. "params c r_in + r_in r_out kh kw + r_out f")
			check.eq(m.flops(ro, ri), 2 * p, what .. "flops 2 params")
		end
	end
	check.eq(m.bound(f, c), 0.0, name .. ": no tail at full ranks")

	-- ---- tucker: measured errors under the bound ----
	for _, ro in ipairs(ranks_of(f)) do
		for _, ri in ipairs(ranks_of(c)) do
			local t = rs.tucker(l, ro, ri)
			local what = string.format("%s tucker(%d, %d): ", name, ro, ri)
			check.eq(t.r_out, ro, what .. "r_out")
			check.eq(t.r_in, ri, what .. "r_in")
			check.ok(t.err <= t.err_hosvd + 1e-12, what .. "HOOI never ends worse than HOSVD")
			check.ok(t.err_hosvd <= t.bound + 1e-12, what .. "HOSVD within its bound")
			check.ok(t.err >= 0, what .. "err >= 0")
			check.eq(t.bound, m.bound(ro, ri), what .. "bound is tucker_modes' bound")
			-- W_hat's unfoldings have ranks <= r_out and r_in: Eckart-Young
			-- on each is a lower bound
			check.ok(t.err >= math.sqrt(sum_sq(m.sigma_out, ro + 1)) / m.fro - 1e-9 and
				t.err >= math.sqrt(sum_sq(m.sigma_in, ri + 1)) / m.fro - 1e-9,
				what .. "no better than either unfolding's truncated SVD")
			check.ok(math.type(t.iterations) == "integer" and t.iterations >= 0 and
				t.iterations <= 50, what .. "iterations 0..50 (the default)")
			local p = c * ri + ri * ro * kh * kw + ro * f
			check.eq(t.params, p, what .. "params by hand")
			check.eq(t.flops, 2 * p, what .. "flops by hand")
			if l.kind ~= "conv" then
				-- a two-sided projection of a matrix has rank min(r_out, r_in):
				-- the HOSVD keeps the leading singular pairs, which is optimal
				local r = math.min(ro, ri)
				check.near(t.err_hosvd, l:err_fro(r), REL, ABS, what .. "HOSVD is Eckart-Young")
				check.near(t.err, l:err_fro(r), REL, ABS, what .. "HOOI is Eckart-Young")
			end
		end
	end
	if l.kind ~= "conv" then
		local t = rs.tucker(l, f, c)
		check.near(t.err, 0, 0, 1e-12, name .. ": full ranks reproduce the layer")
		check.eq(t.bound, 0.0, name .. ": full ranks, bound 0")
	end

	-- ---- tt: d = 2 with (m, 1) x (1, n) modes is the plain truncated SVD ----
	local rows, cols, k = l.rows, l.cols, l.k
	for r = 1, k do
		local tt = rs.tt(l, { rows = { rows, 1 }, cols = { 1, cols }, ranks = { r } })
		local what = string.format("%s tt d=2 rank %d: ", name, r)
		check.eq(tt.d, 2, what .. "d")
		check.eq(table.concat(tt.ranks, " "), "1 " .. r .. " 1", what .. "ranks 1 r 1")
		check.near(tt.err, l:err_fro(r), REL, ABS, what .. "err is layer:err_fro(r)")
		check.near(tt.bound, tt.err, 1e-9, 1e-12, what .. "bound equals err (TT-SVD)")
		check.eq(tt.params, l:params(r), what .. "params r (m + n)")
		check.eq(tt.flops, l:flops(r), what .. "flops 2 r (m + n)")
		check.eq(#tt.steps, 1, what .. "one step")
		check.eq(#tt.steps[1], k, what .. "the step's values: the layer's k")
		check.near(tt.steps[1][1], sigma[1], REL, ABS, what .. "the step's spectrum is the layer's")
		check.near(tt.steps[1][k], sigma[k], REL, ABS, what .. "... to its last value")
	end

	-- balanced modes and eps targets, d = 2 and 3
	for _, d in ipairs { 2, 3 } do
		for _, eps in ipairs { 0.5, 0.1, 0.01 } do
			local tt = rs.tt(l, { d = d, eps = eps })
			local what = string.format("%s tt d=%d eps=%g: ", name, d, eps)
			check.eq(tt.d, d, what .. "d")
			check.eq(#tt.rows, d, what .. "d row modes")
			check.eq(#tt.cols, d, what .. "d column modes")
			check.eq(product(tt.rows), rows, what .. "row modes multiply to m")
			check.eq(product(tt.cols), cols, what .. "column modes multiply to n")
			check.ok(tt.err <= eps + 1e-12, what .. "err <= eps")
			check.near(tt.bound, tt.err, 1e-9, 1e-12, what .. "bound equals err (TT-SVD)")
			check.eq(#tt.ranks, d + 1, what .. "d + 1 ranks")
			check.ok(tt.ranks[1] == 1 and tt.ranks[d + 1] == 1, what .. "r_0 = r_d = 1")
			-- costs by hand (tt.h), modes 1..d, ranks r_0..r_d at 1..d+1
			local p, fl = 0, 0
			for j = 1, d do
				p = p + tt.ranks[j] * tt.rows[j] * tt.cols[j] * tt.ranks[j + 1]
				local left, right = 1, 1
				for i = 1, j - 1 do left = left * tt.cols[i] end
				for i = j + 1, d do right = right * tt.rows[i] end
				fl = fl + 2 * left * tt.ranks[j] * tt.cols[j] * tt.rows[j] * tt.ranks[j + 1] * right
			end
			check.eq(tt.params, p, what .. "params by hand")
			check.eq(tt.flops, fl, what .. "flops by hand")
			-- the bound from the steps' spectra
			check.eq(#tt.steps, d - 1, what .. "d - 1 steps")
			local dropped, total = 0, sum_sq(tt.steps[1])
			for j = 1, d - 1 do
				check.ok(descending(tt.steps[j]), what .. "step " .. j .. " descends")
				dropped = dropped + sum_sq(tt.steps[j], tt.ranks[j + 1] + 1)
			end
			check.near(tt.bound, math.sqrt(dropped / total), 1e-9, 1e-12,
				what .. "bound from the steps' tails")
			-- eps is used, not merely met: each rank is the smallest whose
			-- dropped tail fits (eps ||W||_F)^2 / (d - 1) (at least 1)
			local budget = eps ^ 2 * total / (d - 1)
			for j = 1, d - 1 do
				local want = #tt.steps[j]
				while want > 1 and sum_sq(tt.steps[j], want) <= budget * (1 + 1e-12) do
					want = want - 1
				end
				check.eq(tt.ranks[j + 1], want, what .. "rank " .. j .. " is the smallest that fits")
			end
		end
	end
	local exact = rs.tt(l, { d = 3 })
	check.near(exact.err, 0, 0, 1e-12, name .. ": tt without eps or caps is exact")

	-- ---- cp: 4 modes for a conv kernel, 2 for a matrix ----
	local dims = l.kind == "conv" and { f, c, kh, kw } or { f, c }
	local dimsum = 0
	for _, x in ipairs(dims) do dimsum = dimsum + x end
	for _, R in ipairs { 1, 2, 3 } do
		local cp = rs.cp(l, R)
		local what = string.format("%s cp rank %d: ", name, R)
		check.eq(cp.rank, R, what .. "rank")
		check.eq(cp.params, R * dimsum, what .. "params R (sum of the modes)")
		check.eq(cp.flops, 2 * R * dimsum, what .. "flops 2 params")
		check.eq(type(cp.converged), "boolean", what .. "converged is a boolean")
		check.ok(math.type(cp.iterations) == "integer" and cp.iterations >= 1 and
			cp.iterations <= 500, what .. "iterations 1..500 (the default)")
		check.eq(#cp.history, cp.iterations, what .. "one history value per sweep")
		local rising = 0
		for j = 2, #cp.history do
			if cp.history[j] > cp.history[j - 1] * (1 + 1e-12) + 1e-15 then rising = rising + 1 end
		end
		check.eq(rising, 0, what .. "the history never rises")
		check.near(cp.err, cp.history[#cp.history], 0, 1e-12, what .. "err is the last sweep's")
		if not cp.converged then
			check.eq(cp.iterations, 500, what .. "not converged: ran out of sweeps")
		elseif cp.iterations >= 2 and cp.err >= 1e-13 then
			local e1, e2 = cp.history[#cp.history - 1], cp.history[#cp.history]
			check.ok(e1 - e2 <= 1e-8 * e1, what .. "converged: the last sweep fell by <= tol")
		end
		-- a rank-R CP is a matrix of rank <= R in any unfolding, the
		-- layer's matrix included; a matrix's best rank R is its SVD,
		-- which ALS reaches on distinct singular values
		local r = math.min(R, k)
		if l.kind == "conv" then
			check.ok(cp.err >= l:err_fro(r) - 1e-9, what .. "no better than the truncated SVD")
		else
			check.near(cp.err, l:err_fro(r), REL, ABS, what .. "a matrix's CP is its truncated SVD")
		end
	end
end

-- ---- specific figures ----
local a, conv = model:layer("a"), model:layer("conv")
-- HOOI does improve on the HOSVD of a conv kernel, and the options reach it
local t = rs.tucker(conv, 2, 2)
check.ok(t.err < t.err_hosvd - 1e-6 and t.iterations >= 2, "conv (2, 2): HOOI improves on HOSVD")
local t0 = rs.tucker(conv, 2, 2, { iterations = 0 })
check.eq(t0.iterations, 0, "iterations = 0: no sweep")
check.eq(t0.err, t0.err_hosvd, "iterations = 0: the HOSVD")
check.eq(t0.err_hosvd, t.err_hosvd, "the same start")
local t1 = rs.tucker(conv, 2, 2, { iterations = 1 })
check.eq(t1.iterations, 1, "iterations = 1: one sweep")
local loose = rs.tucker(conv, 2, 2, { tol = 0.9 })
check.eq(loose.iterations, 1, "tol = 0.9 stops after the first sweep")
check.eq(loose.err, t1.err, "... with the error of one sweep")

local full = rs.tucker(a, 6, 4)
check.near(full.err, 0, 0, 1e-12, "a at full ranks: err ~ 0")
check.eq(full.bound, 0.0, "a at full ranks: bound 0")

-- balanced modes: 6 = 3 2, 4 = 2 2
local b2 = rs.tt(a, { d = 2 })
check.eq(table.concat(b2.rows, " ") .. " / " .. table.concat(b2.cols, " "), "3 2 / 2 2",
	"d = 2: balanced modes of 6x4")
-- caps: 0 is no cap
local capped = rs.tt(a, { rows = { 3, 2 }, cols = { 2, 2 }, ranks = { 2 } })
check.eq(capped.ranks[2], 2, "a cap binds")
local uncapped = rs.tt(a, { rows = { 3, 2 }, cols = { 2, 2 }, ranks = { 0 } })
check.eq(uncapped.ranks[2], 4, "a cap of 0 is no cap (min(6, 4))")
check.near(uncapped.err, 0, 0, 1e-12, "... and exact")
local both = rs.tt(model:layer("c"), { d = 3, eps = 0.001, ranks = { 2, 2 } })
check.ok(both.ranks[2] <= 2 and both.ranks[3] <= 2, "eps and caps: the caps bind")
check.ok(both.err > 0.001, "... and the error exceeds eps then")

-- a rank-1 layer: Tucker at (1, 1) and TT at rank 1 reproduce it
local r1 = model:layer("r1")
check.near(rs.tucker(r1, 1, 1).err, 0, 0, 1e-6, "r1: Tucker (1, 1) is exact (float32)")
check.near(rs.tt(r1, { rows = { 5, 1 }, cols = { 1, 3 }, ranks = { 1 } }).err, 0, 0, 1e-6,
	"r1: TT rank 1 is exact (float32)")

-- CP: exact on a rank-1 layer; the options reach the kernel
local cp1 = rs.cp(r1, 1)
check.near(cp1.err, 0, 0, 1e-6, "r1: CP rank 1 is exact (float32)")
check.eq(cp1.converged, true, "r1: CP rank 1 converged")
local one = rs.cp(conv, 3, { iterations = 1 })
check.eq(one.iterations, 1, "cp iterations = 1: one sweep")
check.eq(one.converged, false, "cp iterations = 1: stopped by the count, not converged")
check.eq(#one.history, 1, "cp iterations = 1: one history value")
local long = rs.cp(conv, 2)
local early = rs.cp(conv, 2, { tol = 0.5 })
check.ok(early.converged and early.iterations == 2 and early.iterations < long.iterations,
	"cp tol = 0.5 stops at the second sweep")
check.eq(early.history[1], long.history[1], "cp: the same first sweep whatever tol")

-- ---- errors ----
local nilv, msg = rs.tt(a, { rows = { 2, 2 }, cols = { 2, 2 } })
check.eq(nilv, nil, "row modes not multiplying to m: nil")
check.ok(type(msg) == "string" and msg:find("layer 'a'", 1, true) and
	msg:find("multiply to 4, not the 6 rows", 1, true), "... and a message naming the layer: " ..
	tostring(msg))
nilv, msg = rs.tt(a, { rows = { 3, 2 }, cols = { 3, 2 } })
check.ok(nilv == nil and msg:find("layer 'a'", 1, true) and msg:find("6", 1, true),
	"column modes not multiplying to n: nil, message: " .. tostring(msg))

check.raises(function() rs.tucker_modes(model) end, "rankscope.layer expected", "tucker_modes: not a layer")
check.raises(function() rs.tucker(42, 1, 1) end, "rankscope.layer expected", "tucker: not a layer")
check.raises(function() rs.tt("a", { d = 2 }) end, "rankscope.layer expected", "tt: not a layer")
check.raises(function() rs.tucker(a, 0, 1) end, "r_out must be 1..6", "tucker: r_out 0")
check.raises(function() rs.tucker(a, 7, 1) end, "r_out must be 1..6", "tucker: r_out > f")
check.raises(function() rs.tucker(a, 1, 5) end, "r_in must be 1..4", "tucker: r_in > c")
check.raises(function() rs.tucker(conv, 1, 4) end, "r_in must be 1..3", "tucker: conv r_in > c")
check.raises(function() rs.tucker(a, 1.5, 1) end, "number has no integer representation",
	"tucker: a fractional rank")
check.raises(function() rs.tucker(a, 1, 1, { iterations = -1 }) end,
	"iterations must be an integer 0..", "tucker: negative iterations")
check.raises(function() rs.tucker(a, 1, 1, { tol = -1 }) end, "tol must be a finite number >= 0",
	"tucker: negative tol")
check.raises(function() rs.tucker(a, 1, 1, { tol = 0 / 0 }) end, "tol must be a finite number >= 0",
	"tucker: NaN tol")
check.raises(function() rs.tucker(a, 1, 1, 5) end, "table expected", "tucker: options not a table")
local ma = rs.tucker_modes(a)
check.raises(function() ma.bound(7, 0) end, "r_out must be 0..6", "bound: r_out > f")
check.raises(function() ma.bound(0, -1) end, "r_in must be 0..4", "bound: r_in < 0")
check.raises(function() ma.params(-1, 0) end, "r_out must be >= 0", "params: r_out < 0")
check.raises(function() ma.flops(0, "x") end, "number expected", "flops: r_in not a number")
check.raises(function() rs.tt(a, 5) end, "table expected", "tt: options not a table")
check.raises(function() rs.tt(a, {}) end, "give the modes (rows and cols) or their number d",
	"tt: neither modes nor d")
check.raises(function() rs.tt(a, { rows = { 3, 2 } }) end,
	"rows and cols must list as many modes", "tt: rows without cols")
check.raises(function() rs.tt(a, { rows = { 3, 2 }, cols = { 2, 2 }, d = 3 }) end,
	"d must be the number of modes listed", "tt: d disagrees with the modes")
check.raises(function() rs.tt(a, { d = 1 }) end, "d must be an integer 2..8", "tt: d = 1")
check.raises(function() rs.tt(a, { d = 9 }) end, "d must be an integer 2..8", "tt: d = 9")
check.raises(function() rs.tt(a, { rows = { 6 }, cols = { 4 } }) end, "rows must list 2..8 values",
	"tt: one mode")
check.raises(function() rs.tt(a, { rows = { 6, 0 }, cols = { 4, 1 } }) end,
	"rows[2] must be an integer >= 1", "tt: a mode of 0")
check.raises(function() rs.tt(a, { rows = { 6, 1 }, cols = "4" }) end,
	"cols must be a list of integers", "tt: cols not a list")
check.raises(function() rs.tt(a, { d = 2, eps = -0.1 }) end, "eps must be a finite number >= 0",
	"tt: negative eps")
check.raises(function() rs.tt(a, { d = 2, ranks = { 1, 2 } }) end,
	"ranks must list d - 1 = 1 caps, not 2", "tt: too many caps")
check.raises(function() rs.tt(a, { d = 3, ranks = { 1, -1 } }) end,
	"ranks[2] must be an integer >= 0", "tt: a negative cap")
check.raises(function() rs.cp(model, 1) end, "rankscope.layer expected", "cp: not a layer")
check.raises(function() rs.cp(a, 0) end, "rank must be >= 1", "cp: rank 0")
check.raises(function() rs.cp(a) end, "number expected", "cp: no rank")
check.raises(function() rs.cp(a, 1, { iterations = 0 }) end, "iterations must be an integer 1..",
	"cp: iterations 0")
check.raises(function() rs.cp(a, 1, { tol = -1e-3 }) end, "tol must be a finite number >= 0",
	"cp: negative tol")
check.raises(function() rs.cp(a, 1, { tol = 1 / 0 }) end, "tol must be a finite number >= 0",
	"cp: infinite tol")
check.done()
