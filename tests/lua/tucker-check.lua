-- tucker-check.lua — the tucker-search strategy against the options it
-- considers, rebuilt here from their definitions: Tucker-2 at every rank
-- pair of a conv layer below the dense cost, scored by the HOSVD bound
-- sqrt(tail_out + tail_in) / ||W||_F computed here from the mode spectra
-- of rankscope.tucker_modes, and every paying rank of a linear layer.
-- Checks that the plan fits the budget, that each conv layer's solved
-- (HOOI) error is at most its bound, and that no single layer can switch
-- to another option and lower the summed weighted squared error within
-- the budget.  Run by tests/lua-strategies.sh:
--
--   rankscope run -S tests/lua tests/lua/tucker-check.lua MODEL --param budget=B
local model, plan, params = ...
local check = require "check"
local rs = require "rankscope"
local S = require "tucker-search"

local budget = tonumber(params.budget or "0.5")

local function tail(sigma, r)
	local t = 0
	for i = #sigma, r + 1, -1 do t = t + sigma[i] ^ 2 end
	return t
end

local layers = model:layers()
local all, before = {}, 0
for i, l in ipairs(layers) do
	local dense = l.rows * l.cols
	local opts = { { what = "dense", err2 = 0, params = dense } }
	if l.kind == "conv" then
		local m = rs.tucker_modes(l)
		local f, c, kh, kw = m.shape[1], m.shape[2], m.shape[3], m.shape[4]
		local fro2 = m.fro ^ 2
		for ro = 1, f do
			for ri = 1, c do
				local p = c * ri + ri * ro * kh * kw + ro * f
				if p < dense then
					local bound2 = (tail(m.sigma_out, ro) + tail(m.sigma_in, ri)) / fro2
					opts[#opts + 1] = { what = "tucker2:" .. ro .. "," .. ri, err2 = bound2,
						params = p }
				end
			end
		end
	else
		for r = 1, l.k - 1 do
			if r * (l.rows + l.cols) < dense then
				opts[#opts + 1] = { what = "lowrank:" .. r, err2 = l:err_fro(r) ^ 2,
					params = r * (l.rows + l.cols) }
			end
		end
	end
	all[i] = { layer = l, opts = opts, w = dense }
	before = before + dense
end
local limit = budget * before

plan:reset()
local ok, summary = pcall(S.run, model, plan, { budget = budget, weighted = true, cp = false,
	linear = "lowrank" })
check.ok(ok, "tucker-search runs: " .. tostring(summary))
local used, chosen = 0, {}
for i, a in ipairs(all) do
	local f = plan:get(a.layer)
	local what = f.method == "tucker2" and ("tucker2:" .. f.ranks[1] .. "," .. f.ranks[2])
		or f.method == "lowrank" and ("lowrank:" .. f.rank) or f.method
	local match
	for _, o in ipairs(a.opts) do if o.what == what then match = o end end
	check.ok(match ~= nil, a.layer.name .. ": the choice " .. what .. " is one of the options")
	chosen[i] = match or a.opts[1]
	used = used + f.params
	check.eq(f.params, chosen[i].params, a.layer.name .. ": params of " .. what)
	if f.method == "tucker2" then
		check.ok(f.err_fro <= math.sqrt(chosen[i].err2) + 1e-12, string.format(
			"%s: HOOI's error %.17g within the bound %.17g", a.layer.name, f.err_fro,
			math.sqrt(chosen[i].err2)))
		check.near(f.err_fro_bound, math.sqrt(chosen[i].err2), 1e-9, 1e-12,
			a.layer.name .. ": the recorded bound is the HOSVD bound")
	end
end
check.ok(used <= limit, string.format("%d params within the budget %g", used, limit))
-- no single switch lowers the summed error within the budget
for i, a in ipairs(all) do
	for _, o in ipairs(a.opts) do
		local gain = a.w * (chosen[i].err2 - o.err2)
		local fits = used - chosen[i].params + o.params <= limit
		check.ok(not (fits and gain > 1e-9 * a.w), string.format(
			"%s: switching to %s (%d params) would lower the error by %.6g within budget",
			a.layer.name, o.what, o.params, gain))
	end
end
check.ok(ok and summary:find(string.format("%d of %d params", used, before), 1, true),
	"summary: " .. tostring(summary))
print("summary: " .. tostring(summary))
plan:reset()
check.done()
