#!/bin/sh
# lua-strategies.sh — the shipped strategies and the two example user
# strategies in samples/strategies.  tests/lua/strategies.lua and
# tests/lua/user-strategies.lua call each strategy's run() on models with
# known spectra and on the samples, and compare the plans with rules and
# optima found by brute force; this script also runs every strategy through
# the command line and checks its table, totals and budgets.
. "$TESTS_SRCDIR/lib.sh"
: "${MAKE_MODEL:?MAKE_MODEL must point at tests/make-model (make check sets it)}"

. "$TESTS_SRCDIR/lua-lib.sh"
examples=$SAMPLES/strategies

# signature: the plan table in $out as "RANK RANK d ..." (d: dense).
signature() {
	printf '%s\n' "$out" | awk '/^layer /{t=1; next} /^total:/{t=0} t{printf "%s%s", s, ($3 == "dense" ? "d" : $4); s=" "}'
}

# totals_line: the totals line in $out.
totals_line() {
	printf '%s\n' "$out" | grep '^total: '
}

# Models with known spectra: small enough to enumerate every plan (k <= 10,
# 480 plans), and larger, with a conv layer and a random one each.
small=$scratch/small.safetensors
large=$scratch/large.safetensors
"$MAKE_MODEL" "$small" s1=10x8@0.6 s2=6x9@0.85 s3=12x10@0.75 sconv=4x2x3x3 || fail "make-model small"
"$MAKE_MODEL" "$large" l1=64x32@0.9 l2=40x100@0.95 l3=50x50@0.8 lconv=16x8x3x3 \
	l5=20x30@0.97 l6=7x300 || fail "make-model large"
mlp=$SAMPLES/digits-mlp.safetensors
cnn=$SAMPLES/digits-cnn.safetensors

# ---- every strategy against brute force -------------------------------------------
lua_run "strategies.lua small" "$RANKSCOPE" run --strategy-path "$luatests" \
	"$luatests/strategies.lua" "$small" --param exhaustive=yes --param signatures=yes
small_out=$out
for m in large mlp cnn; do
	eval "file=\$$m"
	lua_run "strategies.lua $m" "$RANKSCOPE" run --strategy-path "$luatests" \
		"$luatests/strategies.lua" "$file" --param signatures=yes
	eval "${m}_out=\$out"
done

# ---- the command line makes the same plans ---------------------------------------
# For each "plan NAME[ PARAM]: SIGNATURE" line the Lua script printed (the
# plan made by calling the module's run()), `rankscope run` must print the
# same plan.
for m in small large mlp cnn; do
	eval "file=\$$m; lua_out=\$${m}_out"
	printf '%s\n' "$lua_out" | grep '^plan ' >"$scratch/plans"
	equals "$(wc -l <"$scratch/plans" | tr -d ' ')" "8" "$m: eight reference plans"
	while IFS= read -r line; do
		head=${line%%: *}
		want=${line#*: }
		set -- $head
		name=$2
		shift 2
		params=
		for p in "$@"; do params="$params --param $p"; done
		run 0 "$RANKSCOPE" run $name "$file" $params
		equals "$(signature)" "$want" "$m: rankscope run $name$params makes the plan run() made"
	done <"$scratch/plans"
done

# ---- the command line on the samples: tables, totals, summaries ------------------------
mlp_layers=3
cnn_layers=5
mlp_params=300032    # 512*64 + 512*512 + 10*512
cnn_params=155536    # 16*9 + 32*144 + 64*288 + 128*1024 + 10*128
for m in mlp cnn; do
	eval "file=\$$m; nlayers=\$${m}_layers; before=\$${m}_params"
	for s in uniform energy threshold lc-rankselect budget-minimax budget-greedy; do
		run 0 "$RANKSCOPE" run $s "$file"
		equals "$err" "" "$m $s: nothing on stderr"
		equals "$(printf '%s\n' "$out" | head -1 | awk '{print $1, $2, $3, $4}')" \
			"layer matrix method rank" "$m $s: the plan table's header"
		equals "$(printf '%s\n' "$out" | grep -c '^[a-z0-9]*\.weight ')" "$nlayers" \
			"$m $s: one row per layer"
		total=$(totals_line)
		contains "$total" "flops $((2 * before)) -> " "$m $s: flops before"
		contains "$total" " of $nlayers layers compressed" "$m $s: layers in the totals"
		# the totals count the rows that are not dense
		lowrank=$(printf '%s\n' "$out" | awk '$3 == "lowrank"' | wc -l | tr -d ' ')
		contains "$total" ", $lowrank of $nlayers layers compressed" "$m $s: factorised count"
		summary=$(printf '%s\n' "$out" | tail -1)
		case $s in
		budget-*) contains "$summary" "$s: " "$m $s: summary line" ;;
		*) contains "$summary" "${s%-rankselect}" "$m $s: summary line" ;;
		esac
	done
done

# Budgets: --param budget=0.3 is met, by params and by FLOPs.
for m in mlp cnn; do
	eval "file=\$$m; before=\$${m}_params"
	for s in budget-minimax budget-greedy; do
		for metric in params flops; do
			run 0 "$RANKSCOPE" run $s "$file" --param budget=0.3 --param metric=$metric
			summary=$(printf '%s\n' "$out" | tail -1)
			used=$(printf '%s\n' "$summary" | sed -n "s/.* with \([0-9]*\) of \([0-9]*\) $metric .*/\1/p")
			all=$(printf '%s\n' "$summary" | sed -n "s/.* with \([0-9]*\) of \([0-9]*\) $metric .*/\2/p")
			unit=1
			[ $metric = flops ] && unit=2
			equals "$all" "$((unit * before))" "$m $s $metric: the summary's total before"
			checks=$((checks + 1))
			[ -n "$used" ] && [ $((used * 10)) -le $((3 * unit * before)) ] ||
				fail "$m $s $metric: $used of $all is over the 30% budget"
			flops_after=$(totals_line | sed -n 's/.*flops [0-9]* -> \([0-9]*\),.*/\1/p')
			equals "$flops_after" "$((2 * used / unit))" "$m $s $metric: the totals agree with the summary"
		done
	done
	# weighted and error variants run too
	run 0 "$RANKSCOPE" run budget-greedy "$file" --param budget=0.3 --param weighted=true
	contains "$(printf '%s\n' "$out" | tail -1)" "sum of weighted squared err_F" "$m weighted greedy"
	run 0 "$RANKSCOPE" run budget-minimax "$file" --param budget=0.3 --param error=fro
	contains "$(printf '%s\n' "$out" | tail -1)" "worst err_fro" "$m minimax on err_fro"
	for s in budget-minimax budget-greedy; do
		run 1 "$RANKSCOPE" run $s "$file" --param budget=0.0001
		contains "$err" "budget 0.0001 is unreachable: even rank 1 everywhere keeps" \
			"$m $s: an unreachable budget"
		equals "$out" "" "$m $s: nothing printed for an unreachable budget"
	done
done

# A factorisation that does not pay is never chosen: every lowrank row of
# every plan above has r (m + n) < m n (the Lua checks cover all plans; here
# the command line's own rows, for keep=1 and the most generous settings).
for s in "uniform --param keep=1" "uniform --param keep=0.99 --param metric=params" \
	"energy --param energy=1" "threshold --param threshold=0" \
	"lc-rankselect --param alpha=0"; do
	for m in mlp cnn small large; do
		eval "file=\$$m"
		run 0 "$RANKSCOPE" run $s "$file"
		bad=$(printf '%s\n' "$out" | awk '$3 == "lowrank" { split($2, d, "x"); if ($4 * (d[1] + d[2]) >= d[1] * d[2]) print $1 }')
		equals "$bad" "" "$m $s: only factorisations that pay"
	done
done

# ---- the example user strategies ---------------------------------------------------
run 0 "$RANKSCOPE" strategies --strategy-path "$examples"
contains "$out" "network-bound: smallest ranks keeping prod(1 + err_spec) - 1 within a target
    from $examples/network-bound.lua" "strategies lists network-bound"
contains "$out" "protect-edges: energy rule for the inner layers; the first and last layers stay dense
    from $examples/protect-edges.lua" "strategies lists protect-edges"
contains "$out" "    target (number, 0..inf, default 0.5)" "network-bound's target"
contains "$out" "    conv_factor (number, 0..1, default 0.5)" "network-bound's conv_factor"
contains "$out" "    energy (number, 0..1, default 0.95)" "protect-edges' energy"
contains "$out" "    first (integer, 0..inf, default 1)" "protect-edges' first"
contains "$out" "    last (integer, 0..inf, default 1)" "protect-edges' last"
contains "$out" "    keep (string, default )" "protect-edges' keep"

for m in small large mlp cnn; do
	eval "file=\$$m"
	lua_run "user-strategies.lua $m" "$RANKSCOPE" run --strategy-path "$luatests" \
		--strategy-path "$examples" "$luatests/user-strategies.lua" "$file"
done

# protect-edges through the command line: first and last rows dense.
for m in mlp cnn; do
	eval "file=\$$m; nlayers=\$${m}_layers"
	run 0 "$RANKSCOPE" run --strategy-path "$examples" protect-edges "$file" --param energy=0.9
	rows=$(printf '%s\n' "$out" | grep '^[a-z0-9]*\.weight ')
	equals "$(printf '%s\n' "$rows" | head -1 | awk '{print $3}')" "dense" "$m protect-edges: first layer dense"
	equals "$(printf '%s\n' "$rows" | tail -1 | awk '{print $3}')" "dense" "$m protect-edges: last layer dense"
	equals "$(printf '%s\n' "$rows" | sed '1d;$d' | awk '$3 == "lowrank"' | wc -l | tr -d ' ')" \
		"$((nlayers - 2))" "$m protect-edges: the inner layers compressed at energy 0.9"
	contains "$(printf '%s\n' "$out" | tail -1)" "protect-edges energy 0.9: 2 layers protected" \
		"$m protect-edges: summary"
done
run 0 "$RANKSCOPE" run --strategy-path "$examples" protect-edges "$cnn" --param first=0 \
	--param last=0 --param keep='^conv' --param energy=0.9
equals "$(signature | cut -d' ' -f1-3)" "d d d" "protect-edges keep=^conv keeps the convs dense"
run 1 "$RANKSCOPE" run --strategy-path "$examples" protect-edges "$cnn" --param first=-1
contains "$err" "parameter 'first' = -1 is out of range" "protect-edges: first >= 0"

# network-bound through the command line: the totals' bound is within the target.
for m in mlp cnn; do
	eval "file=\$$m"
	for target in 0.1 0.5 1 3; do
		run 0 "$RANKSCOPE" run --strategy-path "$examples" network-bound "$file" --param target=$target
		bound=$(totals_line | sed -n 's/.*network bound \([0-9.]*\)$/\1/p')
		checks=$((checks + 1))
		awk -v b="$bound" -v t="$target" 'BEGIN { exit !(b != "" && b + 0 <= t + 0) }' ||
			fail "$m network-bound target=$target: network bound '$bound'"
		contains "$(printf '%s\n' "$out" | tail -1)" "network-bound $target: " "$m network-bound summary"
	done
done
run 1 "$RANKSCOPE" run --strategy-path "$examples" network-bound "$mlp" --param conv_factor=2
contains "$err" "parameter 'conv_factor' = 2 is out of range 0..1" "network-bound: conv_factor <= 1"

# ---- alds: the minimax allocation over group counts, folds and ranks ----------------
# sconv is low rank under fold 1 only, so the search has a fold to find.
aldsm=$scratch/alds.safetensors
"$MAKE_MODEL" "$aldsm" s1=10x8@0.6 s2=6x9@0.85 s3=12x10@0.75 sconv=4x2x3x3@0.3:1 ||
	fail "make-model alds"
lua_run "alds-brute.lua" "$RANKSCOPE" run --strategy-path "$luatests" "$luatests/alds-brute.lua" "$aldsm"
contains "$out" "alds-brute: 4 layers, " "alds-brute.lua ran"
for m in mlp cnn; do
	eval "file=\$$m; before=\$${m}_params"
	run 0 "$RANKSCOPE" run alds "$file" --param budget=0.3
	summary=$(printf '%s\n' "$out" | tail -1)
	used=$(printf '%s\n' "$summary" | sed -n 's/.*, \([0-9]*\) of \([0-9]*\) params (budget 0.3).*/\1/p')
	checks=$((checks + 1))
	[ -n "$used" ] && [ $((used * 10)) -le $((3 * before)) ] ||
		fail "$m alds: '$summary' is not within 30% of $before params"
	contains "$(totals_line)" "params " "$m alds: totals"
	equals "$(totals_line | sed -n 's/.*flops [0-9]* -> \([0-9]*\),.*/\1/p')" "$((2 * used))" \
		"$m alds: the totals' flops are twice the summary's params"
done
run 1 "$RANKSCOPE" run alds "$mlp" --param budget=0.001
contains "$err" "alds: budget 0.001 is unreachable" "alds: an unreachable budget"

# ---- tucker-search: data-free Tucker-2 ranks under a budget -------------------------
for b in 0.1 0.3 0.5; do
	lua_run "tucker-check.lua cnn $b" "$RANKSCOPE" run --strategy-path "$luatests" \
		"$luatests/tucker-check.lua" "$cnn" --param budget=$b
	contains "$out" "summary: tucker-search: " "tucker-check.lua cnn $b ran"
done
lua_run "tucker-check.lua large" "$RANKSCOPE" run --strategy-path "$luatests" \
	"$luatests/tucker-check.lua" "$large" --param budget=0.4
run 0 "$RANKSCOPE" run tucker-search "$cnn" --param budget=0.9 --param linear=dense
contains "$(printf '%s\n' "$out" | tail -1)" " tucker2" "tucker-search with linear layers dense"
equals "$(printf '%s\n' "$out" | awk '$1 ~ /^fc/ && $3 != "dense"')" "" \
	"tucker-search linear=dense leaves the linear layers dense"
run 1 "$RANKSCOPE" run tucker-search "$cnn" --param budget=0.0001
contains "$err" "tucker-search: budget 0.0001 is unreachable" "tucker-search: an unreachable budget"

# ---- lorita: composed layers, one threshold on sigma / sigma_max -----------------
lorita=$SAMPLES/digits-lorita.safetensors
lua_run "lorita-rule.lua" "$RANKSCOPE" run --strategy-path "$luatests" "$luatests/lorita-rule.lua" \
	--compose 'fc*.factors.#.weight' "$lorita"
contains "$out" "lorita: 28 cases on 3 composed of 3 layers" "lorita-rule.lua ran every case"
run 0 "$RANKSCOPE" run lorita --compose 'fc*.factors.#.weight' "$lorita" --param threshold=0.05
equals "$(signature)" "$(printf '%s\n' "$out" | awk '$3 == "lowrank"' | awk '{printf "%s%s", s, $4; s=" "}')" \
	"lorita: every composed layer truncated at 0.05"
contains "$(printf '%s\n' "$out" | tail -1)" \
	"lorita threshold 0.05 (relative to layer): 3 of 3 composed layers truncated" "lorita summary"
run 1 "$RANKSCOPE" run lorita "$lorita"
contains "$err" "lorita: the model has no composed layers; open it with --compose PATTERN" \
	"lorita without composed layers says what to do"

# The README's example, from the source tree.
run 0 sh -c "cd '$SAMPLES/..' && '$RANKSCOPE' run --strategy-path samples/strategies protect-edges samples/digits-mlp.safetensors"
contains "$out" "protect-edges energy 0.95: 2 layers protected, 1 of 3 factorised" "samples/README example"

finish
