-- decomp.lua — plan:set misuse with the decompositions (grouped, tucker2,
-- cp, tt), on the sample CNN opened with --fold 0, for tests/cli-decomp.sh:
-- every bad choice raises, with a message naming the layer where
-- rankscope-lua(7) says so (a solve that fails), and leaves the layer's
-- entry as it was.  Then a few good choices, read back with plan:get.
local model, plan = ...
local check = require "check"

local conv2 = model:layer("conv2.weight")      -- 32x16x3x3, 32 x 144 at fold 0
local fc2 = model:layer("fc2.weight")          -- 10 x 128
check.eq(conv2.rows, 32, "conv2 is 32 x 144 (fold 0)")
check.eq(conv2.cols, 144, "conv2 is 32 x 144 (fold 0)")

-- a known entry to come back to after every failure
plan:set(conv2, { method = "cp", rank = 3 })
plan:set(fc2, { method = "lowrank", rank = 2 })

-- raises LAYER SPEC NEEDLES WHAT: plan:set raises with every needle, and
-- the entry keeps its method
local function raises(layer, spec, needles, what)
	local before = plan:get(layer)
	check.raises(function() plan:set(layer, spec) end, needles, what)
	local after = plan:get(layer)
	check.ok(after.method == before.method and after.rank == before.rank and
		after.err_fro == before.err_fro, what .. ": the entry is left as it was")
end

local L = "layer 'conv2.weight'"
-- grouped
raises(conv2, { method = "grouped", rank = 4, groups = 5 },
	{ L, "5 groups", "divide", "144" }, "grouped: 5 groups do not divide 144 columns")
raises(conv2, { method = "grouped", rank = 13, groups = 4, fold = 1 },
	{ L, "rank 13 per group", "1..12" }, "grouped: fold 1 (96 x 48) is what is grouped")
raises(conv2, { method = "grouped", rank = 4, groups = 7, fold = 1 },
	{ L, "7 groups", "48" }, "grouped: fold 1 has 48 columns")
raises(conv2, { method = "grouped", rank = 37, groups = 4 },
	{ L, "rank 37 per group", "1..32" }, "grouped: rank above min(m, n/g)")
raises(conv2, { method = "grouped", rank = 0, groups = 4 }, "rank",
	"grouped: rank 0")
raises(conv2, { method = "grouped", groups = 4 }, "rank", "grouped without a rank")
raises(conv2, { method = "grouped", rank = 4 }, "groups", "grouped without groups")
raises(conv2, { method = "grouped", rank = 4, groups = 1 }, "groups",
	"grouped: one group is lowrank")
raises(conv2, { method = "grouped", rank = 4, groups = 4, fold = 4 }, "fold",
	"grouped: fold 4")
raises(conv2, { method = "grouped", rank = 2.5, groups = 4 }, "rank", "grouped: rank 2.5")
raises(fc2, { method = "grouped", rank = 2, groups = 4, fold = 0 },
	{ "fc2.weight", "fold" }, "grouped: a fold on a linear layer")
-- tucker2
raises(conv2, { method = "tucker2" }, "ranks", "tucker2 without ranks")
raises(conv2, { method = "tucker2", ranks = { 4 } }, "ranks", "tucker2 with one rank")
raises(conv2, { method = "tucker2", ranks = { 33, 4 } }, { L, "33, 4", "1..32", "1..16" },
	"tucker2: r_out above f")
raises(conv2, { method = "tucker2", ranks = { 4, 17 } }, { L, "4, 17", "1..16" },
	"tucker2: r_in above c")
raises(conv2, { method = "tucker2", ranks = { 0, 4 } }, { L, "0, 4" }, "tucker2: r_out 0")
raises(fc2, { method = "tucker2", ranks = { 11, 4 } }, { "fc2.weight", "1..10", "1..128" },
	"tucker2: a linear layer is m x n x 1 x 1")
-- cp
raises(conv2, { method = "cp" }, "rank", "cp without a rank")
raises(conv2, { method = "cp", rank = 0 }, "rank", "cp: rank 0")
-- tt
raises(conv2, { method = "tt" }, "d", "tt without modes or d")
raises(conv2, { method = "tt", d = 1 }, "d", "tt: d = 1")
raises(conv2, { method = "tt", d = 9 }, "d", "tt: d = 9")
raises(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 13 } },
	{ L, "multiply", "32", "144" }, "tt: column modes multiply to 156")
raises(conv2, { method = "tt", rows = { 4, 4 }, cols = { 12, 12 } },
	{ L, "multiply", "32", "144" }, "tt: row modes multiply to 16")
raises(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 12, 1 } }, "modes",
	"tt: as many row as column modes")
raises(conv2, { method = "tt", d = 2, ranks = { 1, 2 } }, "ranks", "tt: d - 1 caps")
raises(conv2, { method = "tt", d = 2, ranks = { -1 } }, "ranks", "tt: a negative cap")

-- good choices, read back
local g = plan:set(conv2, { method = "grouped", rank = 3, groups = 4, fold = 1 })
check.eq(g.method, "grouped", "grouped at fold 1 in a fold-0 session")
check.eq(plan:get(conv2).fold, 1, "plan:get: the grouped fold")
check.eq(plan:get(conv2).groups, 4, "plan:get: the groups")
check.ok(g.err_alds > 0 and g.err_alds <= g.err_spec, "ALDS's measure below the bound")
check.near(g.err_spec, math.min(2 * g.err_alds, g.err_spec), 0, 1e-15,
	"the bound is at most sqrt(g) times ALDS's measure")
check.eq(g.params, 3 * (4 * 96 + 48), "grouped params r (g m + n) at fold 1")
local t = plan:set(conv2, { method = "tucker2", ranks = { 8, 4 } })
check.eq(t.params, 16 * 4 + 4 * 8 * 9 + 8 * 32, "tucker2 params c r_in + r_in r_out kh kw + r_out f")
check.ok(t.err_fro <= t.err_fro_bound + 1e-12, "tucker2 within the HOSVD bound")
local c = plan:set(conv2, { method = "cp", rank = 5 })
check.eq(c.params, 5 * (32 + 16 + 3 + 3), "cp params R (f + c + kh + kw)")
local tt = plan:set(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 12 }, ranks = { 6 } })
check.ok(tt.ranks[1] == 1 and tt.ranks[2] == 6 and tt.ranks[3] == 1, "tt ranks {1, 6, 1}")
check.eq(tt.params, 4 * 12 * 6 + 6 * 8 * 12, "tt params")
check.near(tt.err_fro, tt.err_fro_bound, 1e-9, 1e-12, "TT-SVD's error is Oseledets' bound")
local u = plan:set(conv2, { method = "tt", d = 2 })
check.ok(u.rows[1] * u.rows[2] == 32 and u.cols[1] * u.cols[2] == 144, "balanced modes")
check.ok(u.method == "dense" or u.err_fro < 1e-6, "uncapped TT-SVD is exact (or does not pay)")
-- an error target: each rank the smallest that keeps the error within eps
for _, eps in ipairs { 0.3, 0.5, 0.8 } do
	local e = plan:set(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 12 }, eps = eps })
	local r = e.ranks[2]
	local what = string.format("tt eps %g", eps)
	check.ok(e.known and e.err_fro <= eps + 1e-12, what .. ": error within eps (" .. e.err_fro .. ")")
	if r > 1 then
		local below = plan:set(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 12 },
			ranks = { r - 1 } })
		check.ok(below.err_fro > eps, what .. ": one rank less is not within eps")
	end
	local capped = plan:set(conv2, { method = "tt", rows = { 4, 8 }, cols = { 12, 12 },
		eps = eps, ranks = { 2 } })
	check.ok(capped.ranks[2] <= 2, what .. ": the cap still binds")
end
raises(conv2, { method = "tt", d = 2, eps = -1 }, "eps", "tt: a negative eps")
check.done()
