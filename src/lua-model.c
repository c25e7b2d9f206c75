/*
 * lua-model.c — the `rankscope` module: model, layer and plan as userdata.
 *
 * Userdata hold only an index into the host's arrays, never copies, so a
 * spectrum that arrives later is seen at once, and numeric work stays in C:
 * every method is one O(1) or O(log k) query.
 *
 * Conventions (as liolib): a type-checked accessor per type; misuse (wrong
 * types, out-of-range ranks) raises an error naming the argument; expected
 * failures (no such layer, spectrum still pending) return nil, message.
 * Indices and ranks are 1-based in Lua, as everywhere in Lua.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lua-internal.h"
#include "rankscope/apply.h"
#include "rankscope/combine.h"
#include "rankscope/grouped.h"
#include "rankscope/outcurve.h"
#include "rankscope/planrefine.h"
#include "rankscope/plansolve.h"
#include "rankscope/svd.h"
#include "rankscope/tt.h"
#include "rankscope/util.h"

#define MODEL_TYPE "rankscope.model"
#define LAYER_TYPE "rankscope.layer"
#define PLAN_TYPE "rankscope.plan"

typedef struct layer_ud {
	size_t index;   /* 0-based into host.layers */
} layer_ud;

/* ---- layers ---- */

size_t
rsl_check_layer(lua_State *L, int arg)
{
	return ((layer_ud *)luaL_checkudata(L, arg, LAYER_TYPE))->index;
}

static void
push_layer(lua_State *L, size_t index)
{
	layer_ud *u = lua_newuserdatauv(L, sizeof *u, 0);

	u->index = index;
	luaL_setmetatable(L, LAYER_TYPE);
}

/* The layer's spectrum, or a Lua error saying it is not ready. */
static const rs_spectrum *
need_spectrum(lua_State *L, size_t index)
{
	rs_script *s = rsl_script(L);
	const rs_spectrum *sp = s->host.analyses[index].spectrum;

	if (sp == NULL)
		luaL_error(L, "layer '%s': spectrum not computed yet",
		           s->host.layers[index].name);
	return sp;
}

/* A rank argument: an integer 0..k. */
static size_t
check_rank(lua_State *L, int arg, const rs_spectrum *sp)
{
	lua_Integer r = luaL_checkinteger(L, arg);

	luaL_argcheck(L, r >= 0 && (size_t)r <= sp->k, arg, "rank out of range 0..k");
	return (size_t)r;
}

static double
check_fraction(lua_State *L, int arg)
{
	lua_Number f = luaL_checknumber(L, arg);

	luaL_argcheck(L, f >= 0 && f <= 1, arg, "must be between 0 and 1");
	return f;
}

static int
layer_sigma(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_spectrum *sp = need_spectrum(L, i);
	lua_Integer n = luaL_checkinteger(L, 2);

	luaL_argcheck(L, n >= 1 && (size_t)n <= sp->k, 2, "index out of range 1..k");
	lua_pushnumber(L, sp->sigma[n - 1]);
	return 1;
}

static int
layer_sigmas(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1), j;
	const rs_spectrum *sp = need_spectrum(L, i);

	lua_createtable(L, (int)sp->k, 0);
	for (j = 0; j < sp->k; j++) {
		lua_pushnumber(L, sp->sigma[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
	return 1;
}

/* Methods f(layer, rank) -> number, from one spectrum query each. */
#define RANK_QUERY(lname, query) \
	static int lname(lua_State *L) { \
		size_t i = rsl_check_layer(L, 1); \
		const rs_spectrum *sp = need_spectrum(L, i); \
		lua_pushnumber(L, query(sp, check_rank(L, 2, sp))); \
		return 1; \
	}
RANK_QUERY(layer_err_fro, rs_spectrum_err_fro)
RANK_QUERY(layer_err_spec, rs_spectrum_err_spec)
RANK_QUERY(layer_energy, rs_spectrum_energy)

/* Costs do not need the spectrum: any rank >= 0. */
static size_t
check_cost_rank(lua_State *L, int arg)
{
	lua_Integer r = luaL_checkinteger(L, arg);

	luaL_argcheck(L, r >= 0, arg, "rank must be >= 0");
	return (size_t)r;
}

static int
layer_params(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];

	if (lua_isnoneornil(L, 2))
		lua_pushinteger(L, (lua_Integer)(l->rows * l->cols));
	else
		lua_pushinteger(L, (lua_Integer)rs_lowrank_params(l->rows, l->cols,
		                                                  check_cost_rank(L, 2)));
	return 1;
}

static int
layer_flops(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];

	if (lua_isnoneornil(L, 2))
		lua_pushinteger(L, (lua_Integer)(2 * l->rows * l->cols));
	else
		lua_pushinteger(L, (lua_Integer)rs_lowrank_flops(l->rows, l->cols,
		                                                 check_cost_rank(L, 2)));
	return 1;
}

static int
layer_pays(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];

	lua_pushboolean(L, rs_lowrank_pays(l->rows, l->cols, check_cost_rank(L, 2)));
	return 1;
}

static int
layer_breakeven(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];

	lua_pushinteger(L, (lua_Integer)rs_lowrank_breakeven(l->rows, l->cols));
	return 1;
}

static int
layer_rank_for_energy(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_spectrum *sp = need_spectrum(L, i);

	lua_pushinteger(L, (lua_Integer)rs_spectrum_rank_for_energy(sp, check_fraction(L, 2)));
	return 1;
}

/* Smallest rank whose error (by `query`, non-increasing in r) is <= eps. */
static double
curve_err_fro(const void *sp, size_t j)
{
	return rs_spectrum_err_fro(sp, j);
}

static double
curve_err_spec(const void *sp, size_t j)
{
	return rs_spectrum_err_spec(sp, j);
}

static int
layer_rank_for_err_fro(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_spectrum *sp = need_spectrum(L, i);

	lua_pushinteger(L, (lua_Integer)rs_smallest_within(sp->k, luaL_checknumber(L, 2),
	                                                   curve_err_fro, sp));
	return 1;
}

static int
layer_rank_for_err_spec(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_spectrum *sp = need_spectrum(L, i);

	lua_pushinteger(L, (lua_Integer)rs_smallest_within(sp->k, luaL_checknumber(L, 2),
	                                                   curve_err_spec, sp));
	return 1;
}

#define SPECTRUM_SCALAR(lname, query) \
	static int lname(lua_State *L) { \
		size_t i = rsl_check_layer(L, 1); \
		lua_pushnumber(L, query(need_spectrum(L, i))); \
		return 1; \
	}
SPECTRUM_SCALAR(layer_stable_rank, rs_spectrum_stable_rank)
SPECTRUM_SCALAR(layer_effective_rank, rs_spectrum_effective_rank)
SPECTRUM_SCALAR(layer_fro_norm, rs_spectrum_fro_norm)
SPECTRUM_SCALAR(layer_spec_norm, rs_spectrum_spec_norm)

/* The output-norm figures (whiten.h), or a Lua error saying there are none. */
static const rs_whiten *
need_whiten(lua_State *L, size_t index)
{
	rs_script *s = rsl_script(L);
	const rs_layer_analysis *a = &s->host.analyses[index];

	need_spectrum(L, index);
	if (a->whiten == NULL)
		luaL_error(L, "layer '%s': no calibration statistics (rankscope --calibration; "
		           "layer:calibrated() says which layers have them)",
		           s->host.layers[index].name);
	return a->whiten;
}

/* "full", "diag" or nil: which statistics the layer's output figures use. */
static int
layer_calibrated(lua_State *L)
{
	const rs_layer_analysis *a = &rsl_script(L)->host.analyses[rsl_check_layer(L, 1)];

	if (a->whiten == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, a->diagonal ? "diag" : "full");
	return 1;
}

#define WHITEN_QUERY(lname, query) \
	static int lname(lua_State *L) { \
		size_t i = rsl_check_layer(L, 1); \
		const rs_whiten *wh = need_whiten(L, i); \
		lua_pushnumber(L, query(wh, check_rank(L, 2, need_spectrum(L, i)))); \
		return 1; \
	}
WHITEN_QUERY(layer_out_err, rs_whiten_plain_out_err)
WHITEN_QUERY(layer_whitened_out_err, rs_whiten_out_err)
WHITEN_QUERY(layer_whitened_err_fro, rs_whiten_fro_err)

static int
layer_rank_for_out_err(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_whiten *wh = need_whiten(L, i);

	lua_pushinteger(L, (lua_Integer)rs_whiten_rank_for_out_err(wh, luaL_checknumber(L, 2)));
	return 1;
}

static int
layer_ready(lua_State *L)
{
	lua_pushboolean(L, rsl_script(L)->host.analyses[rsl_check_layer(L, 1)].spectrum != NULL);
	return 1;
}

/* Pruning and quantisation figures need the layer's statistics. */
static const rs_layer_analysis *
need_statistics(lua_State *L, size_t index)
{
	rs_script *s = rsl_script(L);
	const rs_layer_analysis *a = &s->host.analyses[index];

	need_spectrum(L, index);
	if (a->magnitudes == NULL || a->quant == NULL)
		luaL_error(L, "layer '%s': magnitude statistics were not computed",
		           s->host.layers[index].name);
	return a;
}

static int
layer_prune_error(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_layer_analysis *a = need_statistics(L, i);
	double p = check_fraction(L, 2);

	lua_pushnumber(L, rs_prune_error(a->magnitudes,
	                                 rs_prune_dropped(a->magnitudes->count, p)));
	return 1;
}

/* Fraction p of output (rows of W) or input (columns) channels. */
static int
channel_error(lua_State *L, bool outputs)
{
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1);
	const rs_layer_analysis *a = need_statistics(L, i);
	const rs_layer *l = &s->host.layers[i];
	double p = check_fraction(L, 2);
	size_t side = outputs ? l->rows : l->cols, dropped = (size_t)floor(p * (double)side);

	lua_pushnumber(L, outputs ? rs_analysis_prune_outputs_error(a, dropped) :
	                            rs_analysis_prune_inputs_error(a, dropped));
	return 1;
}

static int layer_prune_rows_error(lua_State *L) { return channel_error(L, true); }
static int layer_prune_cols_error(lua_State *L) { return channel_error(L, false); }

static int
layer_count_below(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_layer_analysis *a = need_statistics(L, i);

	lua_pushinteger(L, (lua_Integer)rs_prune_count_below(a->magnitudes,
	                                                     luaL_checknumber(L, 2)));
	return 1;
}

static rs_quantizer
check_quantizer(lua_State *L, int arg)
{
	rs_quantizer q;

	if (!rs_quantizer_parse(luaL_checkstring(L, arg), &q))
		luaL_argerror(L, arg, "unknown quantizer (uniform-tensor, uniform-channel, "
		              "kmeans, binary, ternary)");
	return q;
}

static unsigned
check_bits(lua_State *L, int arg)
{
	lua_Integer b = luaL_checkinteger(L, arg);

	luaL_argcheck(L, b >= 1 && b <= RS_QUANT_CURVE_BITS, arg, "bits must be 1..8");
	return (unsigned)b;
}

static int
layer_quant_error(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_layer_analysis *a = need_statistics(L, i);
	rs_quantizer q = check_quantizer(L, 2);

	lua_pushnumber(L, a->quant->err[q][check_bits(L, 3)]);
	return 1;
}

static int
layer_quant_storage(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_layer_analysis *a = need_statistics(L, i);
	rs_quantizer q = check_quantizer(L, 2);

	const rs_layer *l = &rsl_script(L)->host.layers[i];

	(void)a;   /* statistics are needed, as for quant_error */
	lua_pushinteger(L, (lua_Integer)rs_quant_storage_bits(l->rows, l->cols, q, check_bits(L, 3),
	                                                      rs_layer_value_bits(l), false));
	return 1;
}

/* Storage in bits: dense (no argument) or of a sparse layer keeping nnz. */
static int
layer_storage(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];
	lua_Integer nnz;

	if (lua_isnoneornil(L, 2)) {
		lua_pushinteger(L, (lua_Integer)rs_layer_dense_bits(l));
		return 1;
	}
	nnz = luaL_checkinteger(L, 2);
	luaL_argcheck(L, nnz >= 0 && (size_t)nnz <= l->rows * l->cols, 2,
	              "nonzeros out of range");
	lua_pushinteger(L, (lua_Integer)rs_sparse_storage_bits(l->rows, l->cols, (size_t)nnz,
	                                                       rs_layer_value_bits(l), NULL));
	return 1;
}

/* layer:allows(method): true, or false and why a runtime could not run it. */
static int
layer_allows(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1);
	const char *name = luaL_checkstring(L, 2), *why;
	rs_method m;

	if (!rs_method_parse(name, &m))
		return luaL_argerror(L, 2, lua_pushfstring(L, "unknown method '%s'", name));
	why = rs_layer_method_refusal(&s->host.layers[i], m);
	lua_pushboolean(L, why == NULL);
	if (why == NULL)
		return 1;
	lua_pushstring(L, why);
	return 2;
}

/* The output curves of pruning and quantisation (outcurve.h). */
static const rs_out_curves *
need_out(lua_State *L, size_t index)
{
	rs_script *s = rsl_script(L);
	const rs_layer_analysis *a = &s->host.analyses[index];

	need_whiten(L, index);
	need_statistics(L, index);
	if (a->out == NULL)
		luaL_error(L, "layer '%s': its output curves were not computed",
		           s->host.layers[index].name);
	return a->out;
}

/* layer:out_prune_error(p [, scored]): unstructured pruning of the fraction p. */
static int
layer_out_prune_error(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_out_curves *c = need_out(L, i);
	double p = check_fraction(L, 2);

	lua_pushnumber(L, rs_out_prune_error(c, rs_prune_dropped(c->count, p),
	                                     lua_toboolean(L, 3)));
	return 1;
}

/* layer:out_prune_fro_error(p): the weight error of the scored pruning. */
static int
layer_out_prune_fro_error(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_out_curves *c = need_out(L, i);

	lua_pushnumber(L, rs_out_scored_fro_error(c, rs_prune_dropped(c->count,
	                                                               check_fraction(L, 2))));
	return 1;
}

static int
out_channel_error(lua_State *L, bool outputs)
{
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1);
	const rs_out_curves *c = need_out(L, i);
	const rs_layer *l = &s->host.layers[i];
	double p = check_fraction(L, 2);
	size_t side = outputs ? l->rows : l->cols, dropped = (size_t)floor(p * (double)side);

	lua_pushnumber(L, outputs ? rs_out_rows_error(c, dropped) : rs_out_cols_error(c, dropped));
	return 1;
}
static int layer_out_prune_rows_error(lua_State *L) { return out_channel_error(L, true); }
static int layer_out_prune_cols_error(lua_State *L) { return out_channel_error(L, false); }

static int
layer_out_quant_error(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1);
	const rs_out_curves *c = need_out(L, i);
	rs_quantizer q = check_quantizer(L, 2);

	lua_pushnumber(L, rs_out_quant_error(c, q, check_bits(L, 3)));
	return 1;
}

static const luaL_Reg layer_methods[] = {
	{"prune_error", layer_prune_error},
	{"prune_rows_error", layer_prune_rows_error},
	{"prune_cols_error", layer_prune_cols_error},
	{"count_below", layer_count_below},
	{"quant_error", layer_quant_error},
	{"quant_storage", layer_quant_storage},
	{"storage", layer_storage},
	{"sigma", layer_sigma},
	{"sigmas", layer_sigmas},
	{"err_fro", layer_err_fro},
	{"err_spec", layer_err_spec},
	{"energy", layer_energy},
	{"params", layer_params},
	{"flops", layer_flops},
	{"pays", layer_pays},
	{"breakeven", layer_breakeven},
	{"rank_for_energy", layer_rank_for_energy},
	{"rank_for_err_fro", layer_rank_for_err_fro},
	{"rank_for_err_spec", layer_rank_for_err_spec},
	{"stable_rank", layer_stable_rank},
	{"effective_rank", layer_effective_rank},
	{"fro_norm", layer_fro_norm},
	{"spec_norm", layer_spec_norm},
	{"ready", layer_ready},
	{"calibrated", layer_calibrated},
	{"out_err", layer_out_err},
	{"whitened_out_err", layer_whitened_out_err},
	{"whitened_err_fro", layer_whitened_err_fro},
	{"rank_for_out_err", layer_rank_for_out_err},
	{"out_prune_error", layer_out_prune_error},
	{"out_prune_fro_error", layer_out_prune_fro_error},
	{"out_prune_rows_error", layer_out_prune_rows_error},
	{"out_prune_cols_error", layer_out_prune_cols_error},
	{"out_quant_error", layer_out_quant_error},
	{"allows", layer_allows},
	{NULL, NULL},
};

/* layer.field: data fields first, then methods. */
static int
layer_index(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1), d;
	const rs_layer *l = &s->host.layers[i];
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "name") == 0)
		lua_pushstring(L, l->name);
	else if (strcmp(key, "rows") == 0)
		lua_pushinteger(L, (lua_Integer)l->rows);
	else if (strcmp(key, "cols") == 0)
		lua_pushinteger(L, (lua_Integer)l->cols);
	else if (strcmp(key, "k") == 0)
		lua_pushinteger(L, (lua_Integer)(l->rows < l->cols ? l->rows : l->cols));
	else if (strcmp(key, "index") == 0)
		lua_pushinteger(L, (lua_Integer)i + 1);
	else if (strcmp(key, "kind") == 0)
		lua_pushstring(L, rs_layer_kind_name(l));
	else if (strcmp(key, "layout") == 0)
		lua_pushstring(L, l->kind == RS_LAYER_LINEAR || l->kind == RS_LAYER_EMBEDDING ?
		               rs_tensor_layout_name(l->tensor->layout) : "out,in");
	else if (strcmp(key, "groups") == 0)
		lua_pushinteger(L, (lua_Integer)(l->kind == RS_LAYER_CONV ? l->groups : 1));
	else if (strcmp(key, "fold") == 0) {
		if (l->fold == RS_FOLD_NONE)
			lua_pushnil(L);
		else
			lua_pushinteger(L, l->fold);
	} else if (strcmp(key, "dtype") == 0)
		lua_pushstring(L, rs_dtype_get(l->tensor->dtype)->name);
	else if (strcmp(key, "shape") == 0) {
		lua_createtable(L, (int)l->tensor->ndim, 0);
		for (d = 0; d < l->tensor->ndim; d++) {
			lua_pushinteger(L, (lua_Integer)l->tensor->shape[d]);
			lua_rawseti(L, -2, (lua_Integer)d + 1);
		}
	} else if (strcmp(key, "factors") == 0) {
		if (l->group == NULL) {
			lua_pushnil(L);
		} else {
			lua_createtable(L, (int)l->group->nfactors, 0);
			for (d = 0; d < l->group->nfactors; d++) {
				lua_pushstring(L, l->group->factors[d]->name);
				lua_rawseti(L, -2, (lua_Integer)d + 1);
			}
		}
	} else {
		luaL_getmetafield(L, 1, "methods");
		lua_getfield(L, -1, key);
	}
	return 1;
}

static int
layer_tostring(lua_State *L)
{
	const rs_layer *l = &rsl_script(L)->host.layers[rsl_check_layer(L, 1)];

	lua_pushfstring(L, "layer %s (%dx%d)", l->name, (int)l->rows, (int)l->cols);
	return 1;
}

static int
layer_eq(lua_State *L)
{
	lua_pushboolean(L, rsl_check_layer(L, 1) == rsl_check_layer(L, 2));
	return 1;
}

/* ---- model ---- */

static void
check_model(lua_State *L, int arg)
{
	luaL_checkudata(L, arg, MODEL_TYPE);
}

/* A layer given as userdata or by name; raises when unknown. */
static size_t
layer_arg(lua_State *L, int arg)
{
	rs_script *s = rsl_script(L);
	const char *name;
	size_t i;

	if (lua_type(L, arg) != LUA_TSTRING)
		return rsl_check_layer(L, arg);
	name = lua_tostring(L, arg);
	for (i = 0; i < s->host.nlayers; i++)
		if (strcmp(s->host.layers[i].name, name) == 0)
			return i;
	return (size_t)luaL_argerror(L, arg, lua_pushfstring(L, "no layer named '%s'", name));
}

static int
model_layers(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i, n = 0;
	bool filtered = false;
	rs_method allows = RS_METHOD_DENSE;

	check_model(L, 1);
	/* model:layers{allows = METHOD}: only the layers a runtime can run
	 * that method on (layer:allows) */
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		if (lua_getfield(L, 2, "allows") != LUA_TNIL) {
			const char *name = luaL_checkstring(L, -1);
			if (!rs_method_parse(name, &allows))
				return luaL_argerror(L, 2, lua_pushfstring(L, "unknown method '%s'",
				                                           name));
			filtered = true;
		}
		lua_pop(L, 1);
	}
	lua_createtable(L, (int)s->host.nlayers, 0);
	for (i = 0; i < s->host.nlayers; i++) {
		if (filtered && rs_layer_method_refusal(&s->host.layers[i], allows) != NULL)
			continue;
		push_layer(L, i);
		lua_rawseti(L, -2, (lua_Integer)++n);
	}
	return 1;
}

static int
model_layer(lua_State *L)
{
	rs_script *s = rsl_script(L);
	const char *name;
	size_t i;

	check_model(L, 1);
	name = luaL_checkstring(L, 2);
	for (i = 0; i < s->host.nlayers; i++)
		if (strcmp(s->host.layers[i].name, name) == 0) {
			push_layer(L, i);
			return 1;
		}
	lua_pushnil(L);
	lua_pushfstring(L, "no layer named '%s'", name);
	return 2;
}

static int
model_params(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i, total = 0;

	check_model(L, 1);
	for (i = 0; i < s->host.nlayers; i++)
		total += s->host.layers[i].rows * s->host.layers[i].cols;
	lua_pushinteger(L, (lua_Integer)total);
	return 1;
}

static int
model_metadata(lua_State *L)
{
	const rs_model *m = rsl_script(L)->host.model;
	const char *v;

	check_model(L, 1);
	v = rs_model_metadata(m, luaL_checkstring(L, 2));
	if (v == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, v);
	return 1;
}

/* Whether some layer has output-norm figures (--calibration). */
static int
model_calibrated(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i;
	bool any = false;

	check_model(L, 1);
	for (i = 0; i < s->host.nlayers && !any; i++)
		any = s->host.analyses[i].whiten != NULL;
	lua_pushboolean(L, any);
	return 1;
}

static const luaL_Reg model_methods[] = {
	{"calibrated", model_calibrated},
	{"layers", model_layers},
	{"layer", model_layer},
	{"params", model_params},
	{"metadata", model_metadata},
	{NULL, NULL},
};

static int
model_index(lua_State *L)
{
	rs_script *s = rsl_script(L);
	const char *key = luaL_checkstring(L, 2);

	check_model(L, 1);
	if (strcmp(key, "path") == 0)
		lua_pushstring(L, s->host.model->path);
	else if (strcmp(key, "nlayers") == 0)
		lua_pushinteger(L, (lua_Integer)s->host.nlayers);
	else {
		luaL_getmetafield(L, 1, "methods");
		lua_getfield(L, -1, key);
	}
	return 1;
}

static int
model_len(lua_State *L)
{
	check_model(L, 1);
	lua_pushinteger(L, (lua_Integer)rsl_script(L)->host.nlayers);
	return 1;
}

static int
model_tostring(lua_State *L)
{
	rs_script *s = rsl_script(L);

	check_model(L, 1);
	lua_pushfstring(L, "model %s (%d layers)", s->host.model->path,
	                (int)s->host.nlayers);
	return 1;
}

/* ---- plan ---- */

static void
check_plan(lua_State *L, int arg)
{
	luaL_checkudata(L, arg, PLAN_TYPE);
}

/* Pushes a list of n sizes. */
static void
push_sizes(lua_State *L, const size_t *v, size_t n)
{
	size_t j;

	lua_createtable(L, (int)n, 0);
	for (j = 0; j < n; j++) {
		lua_pushinteger(L, (lua_Integer)v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

/* A decomposition entry's own parameters and solved bounds, into the
 * figures table on top. */
static void
push_decomposition(lua_State *L, const rs_plan_entry *e)
{
	switch (e->method) {
	case RS_METHOD_GROUPED:
		lua_pushinteger(L, (lua_Integer)e->groups);
		lua_setfield(L, -2, "groups");
		if (e->fold != RS_FOLD_NONE) {
			lua_pushinteger(L, e->fold);
			lua_setfield(L, -2, "fold");
		}
		lua_pushnumber(L, e->solved_alds);
		lua_setfield(L, -2, "err_alds");
		break;
	case RS_METHOD_TUCKER2: {
		size_t r[2] = {e->rank, e->rank_in};
		push_sizes(L, r, 2);
		lua_setfield(L, -2, "ranks");
		lua_pushnumber(L, e->solved_fro_bound);
		lua_setfield(L, -2, "err_fro_bound");
		break;
	}
	case RS_METHOD_TT:
		push_sizes(L, e->tt_rows, e->tt_d);
		lua_setfield(L, -2, "rows");
		push_sizes(L, e->tt_cols, e->tt_d);
		lua_setfield(L, -2, "cols");
		push_sizes(L, e->tt_ranks, e->tt_d + 1);
		lua_setfield(L, -2, "ranks");
		lua_pushnumber(L, e->solved_fro_bound);
		lua_setfield(L, -2, "err_fro_bound");
		break;
	default:
		break;
	}
}

static void
push_figures(lua_State *L, size_t i)
{
	rs_script *s = rsl_script(L);
	const rs_plan_entry *e = &s->host.plan->entries[i];
	rs_plan_figures f;

	rs_plan_figures_for(&s->host.layers[i], &s->host.analyses[i], e, &f);
	lua_createtable(L, 0, 14);
	lua_pushstring(L, rs_method_name(f.method));
	lua_setfield(L, -2, "method");
	lua_pushinteger(L, (lua_Integer)f.rank);
	lua_setfield(L, -2, "rank");
	if (e->method == RS_METHOD_LOWRANK) {
		lua_pushinteger(L, (lua_Integer)e->rank);
		lua_setfield(L, -2, "requested_rank");
	}
	lua_pushboolean(L, f.known);
	lua_setfield(L, -2, "known");
	lua_pushnumber(L, f.err_fro);
	lua_setfield(L, -2, "err_fro");
	lua_pushnumber(L, f.err_spec);
	lua_setfield(L, -2, "err_spec");
	lua_pushnumber(L, f.energy);
	lua_setfield(L, -2, "energy");
	if (!isnan(f.out_err)) {
		lua_pushnumber(L, f.out_err);
		lua_setfield(L, -2, "out_err");
	}
	if (e->method == RS_METHOD_LOWRANK && e->whitened) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "whitened");
	}
	if (e->method == RS_METHOD_PRUNE && e->scored) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "scored");
	}
	if (e->refined) {
		lua_pushinteger(L, (lua_Integer)e->refined_sweeps);
		lua_setfield(L, -2, "refined_sweeps");
	}
	lua_pushinteger(L, (lua_Integer)f.params);
	lua_setfield(L, -2, "params");
	lua_pushinteger(L, (lua_Integer)f.flops);
	lua_setfield(L, -2, "flops");
	lua_pushinteger(L, (lua_Integer)f.nonzeros);
	lua_setfield(L, -2, "nonzeros");
	lua_pushinteger(L, (lua_Integer)f.bits);
	lua_setfield(L, -2, "bits");
	lua_pushboolean(L, f.spec_is_bound);
	lua_setfield(L, -2, "spec_is_bound");
	if (rs_method_has_quant_part(e->method)) {
		lua_pushstring(L, rs_quantizer_name(e->quantizer));
		lua_setfield(L, -2, "quantizer");
		lua_pushinteger(L, rs_quantizer_bits(e->quantizer, e->bits));
		lua_setfield(L, -2, "quant_bits");
	}
	if (e->method == RS_METHOD_PRUNE || e->method == RS_METHOD_PRUNE_ROWS ||
	    e->method == RS_METHOD_PRUNE_COLS || rs_method_is_combination(e->method)) {
		lua_pushnumber(L, e->sparsity);
		lua_setfield(L, -2, "sparsity");
	}
	push_decomposition(L, e);
}

/*
 * Runs the alternating low-rank + sparse solve for layer i at the entry's
 * rank and sparsity, and records its error in the entry.  When a single
 * part does better at the same storage (the kernel's fallback), the entry
 * becomes that part.  The script's interrupt flag stops the solve between
 * iterations.  Returns the result (errors freed by the caller).
 */
static void
solve_combination(lua_State *L, size_t i, rs_plan_entry *e, rs_combine_result *res)
{
	rs_script *s = rsl_script(L);
	const rs_layer *l = &s->host.layers[i];
	size_t m = l->rows, n = l->cols, count = m * n;
	rs_combine_spec spec;
	double *w = malloc(count * sizeof *w);
	rs_error err;
	rs_status st;

	rs_plan_entry_combine_spec(l, e, &spec);
	memset(res, 0, sizeof *res);
	if (w == NULL)
		luaL_error(L, "layer '%s': out of memory", l->name);
	st = rs_layer_load(l, w, m, s->host.model->path, &err);
	if (st == RS_OK)
		st = rs_combine(w, m, n, m, &spec, (const volatile int *)&s->stop, NULL, NULL,
		                NULL, NULL, res, &err);
	free(w);
	if (st == RS_ECANCELLED)
		luaL_error(L, "interrupted");   /* stays raised until the script ends */
	if (st != RS_OK)
		luaL_error(L, "layer '%s': %s", l->name, err.msg);
	rs_plan_entry_take_solve(l, e, res);
}

static void
rsl_solve_combination(lua_State *L, size_t i, rs_plan_entry *e)
{
	rs_combine_result res;

	solve_combination(L, i, e, &res);
	rs_combine_result_free(&res);
}

/* Reads an optional number field of the table at arg. */
static bool
opt_number(lua_State *L, int arg, const char *key, double *out)
{
	bool present = lua_getfield(L, arg, key) != LUA_TNIL;

	if (present) {
		luaL_argcheck(L, lua_isnumber(L, -1), arg,
		              lua_pushfstring(L, "%s must be a number", key));
		*out = lua_tonumber(L, -1);
	}
	lua_pop(L, 1);
	return present;
}

/*
 * rankscope.combine(layer, {rank = r, sparsity = p, quantizer = q, bits = b}):
 * runs the alternating projections for any mix of a rank-r part, a sparse
 * part keeping (1 - p) of the entries and a quantised part, and returns
 * {rel_error, iterations, errors = {...}, storage_bits, fallback,
 * fallback_rank, fallback_nonzeros}.  The plan is not changed.
 */
static int
module_combine(lua_State *L)
{
	static const char *const fallbacks[] = {"none", "lowrank", "sparse", "quant"};
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1), j, k;
	const rs_layer *l = &s->host.layers[i];
	size_t count = l->rows * l->cols;
	rs_combine_spec spec = {
		.value_bits = rs_layer_value_bits(l), .max_iterations = RS_COMBINE_DEFAULT_ITERATIONS,
		.tolerance = RS_COMBINE_DEFAULT_TOLERANCE,
	};
	rs_combine_result res;
	double v, *w;
	rs_error err;
	rs_status st;

	luaL_checktype(L, 2, LUA_TTABLE);
	k = l->rows < l->cols ? l->rows : l->cols;
	if (lua_getfield(L, 2, "rank") != LUA_TNIL) {
		int exact;
		lua_Integer r = lua_tointegerx(L, -1, &exact);
		luaL_argcheck(L, exact && r >= 0 && (size_t)r <= k, 2,
		              "rank must be an integer 0..k");
		spec.rank = (size_t)r;
	}
	lua_pop(L, 1);
	if (opt_number(L, 2, "sparsity", &v)) {
		luaL_argcheck(L, v >= 0 && v < 1, 2, "sparsity must be in [0, 1)");
		spec.nonzeros = count - rs_prune_dropped(count, v);
	}
	if (lua_getfield(L, 2, "quantizer") != LUA_TNIL) {
		spec.quantize = true;
		if (!rs_quantizer_parse(luaL_checkstring(L, -1), &spec.quantizer))
			return luaL_argerror(L, 2, "unknown quantizer (uniform-tensor, "
			                     "uniform-channel, kmeans, binary, ternary)");
		spec.bits = 4;
	}
	lua_pop(L, 1);
	if (opt_number(L, 2, "bits", &v)) {
		luaL_argcheck(L, v == floor(v) && v >= 1 && v <= 16, 2, "bits must be 1..16");
		spec.bits = (unsigned)v;
	}
	luaL_argcheck(L, spec.rank > 0 || spec.nonzeros > 0 || spec.quantize, 2,
	              "give at least one part: rank, sparsity or quantizer");
	w = malloc(count * sizeof *w);
	if (w == NULL)
		return luaL_error(L, "layer '%s': out of memory", l->name);
	memset(&res, 0, sizeof res);
	st = rs_layer_load(l, w, l->rows, s->host.model->path, &err);
	if (st == RS_OK)
		st = rs_combine(w, l->rows, l->cols, l->rows, &spec, (const volatile int *)&s->stop,
		                NULL, NULL, NULL, NULL, &res, &err);
	free(w);
	if (st == RS_ECANCELLED)
		return luaL_error(L, "interrupted");
	if (st != RS_OK)
		return luaL_error(L, "layer '%s': %s", l->name, err.msg);
	lua_createtable(L, 0, 8);
	lua_pushnumber(L, res.rel_error);
	lua_setfield(L, -2, "rel_error");
	lua_pushinteger(L, (lua_Integer)res.iterations);
	lua_setfield(L, -2, "iterations");
	lua_createtable(L, (int)res.iterations, 0);
	for (j = 0; j < res.iterations; j++) {
		lua_pushnumber(L, res.errors[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
	lua_setfield(L, -2, "errors");
	lua_pushinteger(L, (lua_Integer)res.storage_bits);
	lua_setfield(L, -2, "storage_bits");
	lua_pushstring(L, fallbacks[res.fallback]);
	lua_setfield(L, -2, "fallback");
	lua_pushinteger(L, (lua_Integer)res.fallback_rank);
	lua_setfield(L, -2, "fallback_rank");
	lua_pushinteger(L, (lua_Integer)res.fallback_nonzeros);
	lua_setfield(L, -2, "fallback_nonzeros");
	rs_combine_result_free(&res);
	return 1;
}


/* Pushes an array of f(g, j) for j = 0..k (rank j at index j + 1). */
static void
push_grouped_curve(lua_State *L, const rs_grouped *g, double (*f)(const rs_grouped *, size_t))
{
	size_t j;

	lua_createtable(L, (int)g->k + 1, 0);
	for (j = 0; j <= g->k; j++) {
		lua_pushnumber(L, f(g, j));
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

static double
grouped_params_number(const rs_grouped *g, size_t j)
{
	return (double)rs_grouped_params(g, j);
}

/*
 * rankscope.grouped(layer, groups [, {fold = f}]): the channel-grouped SVD
 * (ALDS) of the layer's matrix (a conv layer's under fold f, default its
 * own) split into `groups` blocks of its input side, computed now.
 * Returns {groups, k, rows, cols, sigmas = {per group, descending},
 * err_spec, err_fro, params}, the last three indexed by rank + 1 (rank 0
 * at index 1).  err_fro
 * is exact; err_spec is ALDS's measure, max over groups of the block's
 * spectral error relative to ||W||_2 (grouped.h says how it bounds the
 * true error).  Needs the layer's spectrum (for ||W||_2).
 */
static int
module_grouped(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i = rsl_check_layer(L, 1), gi, j;
	rs_layer folded = s->host.layers[i];
	const rs_layer *l = &folded;
	const rs_spectrum *sp = need_spectrum(L, i);
	lua_Integer groups = luaL_checkinteger(L, 2);
	double spec = sp->k > 0 ? sp->sigma[0] : 0.0, fold;
	rs_grouped *g = NULL;
	double *w;
	rs_error err;
	rs_status st;

	luaL_argcheck(L, groups >= 1, 2, "the group count must be >= 1");
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		if (opt_number(L, 3, "fold", &fold)) {
			luaL_argcheck(L, fold == floor(fold) && fold >= 0 && fold < RS_FOLD_COUNT, 3,
			              "fold must be a scheme 0..3");
			if (rs_layer_set_fold(&folded, (int)fold, &err) != RS_OK)
				return luaL_argerror(L, 3, lua_pushstring(L, err.msg));
		}
	}
	w = malloc(l->rows * l->cols * sizeof *w);
	if (w == NULL)
		return luaL_error(L, "layer '%s': out of memory", l->name);
	st = rs_layer_load(l, w, l->rows, s->host.model->path, &err);
	if (st == RS_OK && folded.fold != s->host.layers[i].fold) {
		/* errors relative to this fold's own ||W||_2 */
		st = rs_svd_spec_norm(w, l->rows, l->cols, l->rows, &spec, &err);
	}
	if (st == RS_OK)
		g = rs_grouped_new(w, l->rows, l->cols, l->rows, (size_t)groups, spec, &err);
	free(w);
	if (g == NULL)
		return luaL_error(L, "layer '%s': %s", l->name, err.msg);
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, (lua_Integer)l->rows);
	lua_setfield(L, -2, "rows");
	lua_pushinteger(L, (lua_Integer)l->cols);
	lua_setfield(L, -2, "cols");
	lua_pushinteger(L, (lua_Integer)g->groups);
	lua_setfield(L, -2, "groups");
	lua_pushinteger(L, (lua_Integer)g->k);
	lua_setfield(L, -2, "k");
	lua_createtable(L, (int)g->groups, 0);
	for (gi = 0; gi < g->groups; gi++) {
		lua_createtable(L, (int)g->k, 0);
		for (j = 0; j < g->k; j++) {
			lua_pushnumber(L, g->sigma[gi * g->k + j]);
			lua_rawseti(L, -2, (lua_Integer)j + 1);
		}
		lua_rawseti(L, -2, (lua_Integer)gi + 1);
	}
	lua_setfield(L, -2, "sigmas");
	push_grouped_curve(L, g, rs_grouped_err_spec);
	lua_setfield(L, -2, "err_spec");
	push_grouped_curve(L, g, rs_grouped_err_fro);
	lua_setfield(L, -2, "err_fro");
	push_grouped_curve(L, g, grouped_params_number);
	lua_setfield(L, -2, "params");
	rs_grouped_free(g);
	return 1;
}

/* Reads a list of 1..max positive integers from field key of the table
 * at arg into v; returns how many (0 when the field is absent). */
static size_t
opt_sizes(lua_State *L, int arg, const char *key, size_t *v, size_t max)
{
	size_t n = 0;
	lua_Integer j, len;

	if (lua_getfield(L, arg, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	luaL_argcheck(L, lua_istable(L, -1), arg, lua_pushfstring(L, "%s must be a list", key));
	len = luaL_len(L, -1);
	luaL_argcheck(L, len >= 1 && (size_t)len <= max, arg,
	              lua_pushfstring(L, "%s must list 1..%d numbers", key, (int)max));
	for (j = 1; j <= len; j++, n++) {
		int exact;
		lua_Integer x;
		lua_rawgeti(L, -1, j);
		x = lua_tointegerx(L, -1, &exact);
		luaL_argcheck(L, exact && x >= 0, arg,
		              lua_pushfstring(L, "%s must hold integers >= 0", key));
		v[n] = (size_t)x;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return n;
}

/*
 * The decomposition fields of a plan:set table: groups and fold (grouped),
 * ranks = {r_out, r_in} (tucker2), rows, cols and ranks (caps, d - 1 of
 * them) or d (tt, balanced modes).  Checked against the layer here, so a
 * bad value raises before anything is solved.
 */
static void
read_decomposition(lua_State *L, int arg, const rs_layer *l, rs_plan_entry *e)
{
	size_t v[RS_PLAN_TT_MAX_D + 1], n;
	double x;
	rs_error err;

	if (e->method == RS_METHOD_GROUPED) {
		if (opt_number(L, arg, "groups", &x)) {
			/* a count past 2^53 divides no layer, and converting a double
			 * beyond SIZE_MAX is undefined: refuse it before the cast */
			luaL_argcheck(L, x == floor(x) && x >= 2 && x <= 9007199254740992.0, arg,
			              "groups must be an integer >= 2");
			e->groups = (size_t)x;
		}
		if (opt_number(L, arg, "fold", &x)) {
			luaL_argcheck(L, x == floor(x) && x >= 0 && x < RS_FOLD_COUNT, arg,
			              "fold must be a scheme 0..3");
			e->fold = (int)x;
		}
	} else if (e->method == RS_METHOD_TUCKER2) {
		n = opt_sizes(L, arg, "ranks", v, 2);
		luaL_argcheck(L, n == 2, arg, "method 'tucker2' needs ranks = {r_out, r_in}");
		e->rank = v[0];
		e->rank_in = v[1];
	} else if (e->method == RS_METHOD_TT) {
		e->tt_d = opt_sizes(L, arg, "rows", e->tt_rows, RS_PLAN_TT_MAX_D);
		n = opt_sizes(L, arg, "cols", e->tt_cols, RS_PLAN_TT_MAX_D);
		if (e->tt_d == 0 && n == 0 && opt_number(L, arg, "d", &x)) {
			luaL_argcheck(L, x == floor(x) && x >= 2 && x <= RS_PLAN_TT_MAX_D, arg,
			              "d must be an integer 2..8");
			e->tt_d = n = (size_t)x;
			rs_tt_balanced_modes(l->rows, e->tt_d, e->tt_rows);
			rs_tt_balanced_modes(l->cols, e->tt_d, e->tt_cols);
		}
		luaL_argcheck(L, e->tt_d >= 2 && n == e->tt_d, arg, "method 'tt' needs rows "
		              "and cols (as many modes each, 2..8) or d");
		n = opt_sizes(L, arg, "ranks", v, RS_PLAN_TT_MAX_D);
		luaL_argcheck(L, n == 0 || n == e->tt_d - 1, arg,
		              "ranks must list d - 1 caps (0: none)");
		if (opt_number(L, arg, "eps", &x)) {
			luaL_argcheck(L, x >= 0 && isfinite(x), arg, "eps must be a number >= 0");
			e->tt_eps = x;
		}
		memset(e->tt_ranks, 0, sizeof e->tt_ranks);
		memcpy(e->tt_ranks + 1, v, n * sizeof *v);
	}
	if (rs_plan_entry_check(l, e, &err) != RS_OK)
		luaL_argerror(L, arg, lua_pushstring(L, err.msg));
}

/* Runs the decomposition of a GROUPED, TUCKER2, CP or TT entry now and
 * records its figures (plansolve.h). */
static void
solve_decomposition(lua_State *L, size_t i, rs_plan_entry *e)
{
	rs_script *s = rsl_script(L);
	const rs_spectrum *sp = need_spectrum(L, i);
	rs_error err;

	if (rs_plan_entry_solve(&s->host.layers[i], sp, e, s->host.model->path, &err) != RS_OK)
		luaL_error(L, "%s", err.msg);
}

/*
 * plan:set(layer, spec): spec is a rank (an integer), or a table
 * {method = ..., rank = r, sparsity = p, quantizer = q, bits = b}; method
 * defaults to "lowrank".  "lowrank+sparse" runs the alternating solve now
 * (interruptible) and records its error.
 */
static int
plan_set(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i, k;
	rs_plan_entry e = rs_plan_entry_dense();
	const char *method = "lowrank";
	lua_Integer rank = 0;
	double v;
	bool has_rank = false;

	check_plan(L, 1);
	i = layer_arg(L, 2);
	k = s->host.layers[i].rows < s->host.layers[i].cols ?
	    s->host.layers[i].rows : s->host.layers[i].cols;
	if (lua_type(L, 3) == LUA_TNUMBER) {
		rank = luaL_checkinteger(L, 3);   /* 2.0 is 2; 2.5 is an error */
		has_rank = true;
	} else {
		luaL_checktype(L, 3, LUA_TTABLE);
		if (lua_getfield(L, 3, "method") != LUA_TNIL)
			method = luaL_checkstring(L, -1);
		if (lua_getfield(L, 3, "rank") != LUA_TNIL) {
			int exact;
			rank = lua_tointegerx(L, -1, &exact);
			luaL_argcheck(L, exact, 3, "rank must be an integer");
			has_rank = true;
		}
		/* only the rank: `method` points into the string below it, which
		 * must stay on the stack while it is read, or a collection (an
		 * __index of spec below may run one) can free it */
		lua_pop(L, 1);
		if (opt_number(L, 3, "sparsity", &v)) {
			luaL_argcheck(L, v >= 0 && v < 1, 3, "sparsity must be in [0, 1)");
			e.sparsity = v;
		}
		if (lua_getfield(L, 3, "quantizer") != LUA_TNIL &&
		    !rs_quantizer_parse(luaL_checkstring(L, -1), &e.quantizer))
			return luaL_argerror(L, 3, lua_pushfstring(L, "unknown quantizer '%s' "
			    "(uniform-tensor, uniform-channel, kmeans, binary, ternary)",
			    lua_tostring(L, -1)));
		lua_pop(L, 1);
		if (opt_number(L, 3, "bits", &v)) {
			luaL_argcheck(L, v == floor(v) && v >= 1 && v <= RS_QUANT_CURVE_BITS, 3,
			              "bits must be an integer 1..8");
			e.bits = (unsigned)v;
		}
		lua_getfield(L, 3, "whitened");
		e.whitened = lua_toboolean(L, -1);
		lua_pop(L, 1);
		lua_getfield(L, 3, "scored");
		e.scored = lua_toboolean(L, -1);
		lua_pop(L, 1);
		lua_getfield(L, 3, "refined");
		e.refined = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (opt_number(L, 3, "sweeps", &v)) {
			luaL_argcheck(L, v == floor(v) && v >= 1 && v <= RS_REFINE_MAX_SWEEPS, 3,
			              "sweeps must be an integer 1..50");
			e.refined_sweeps = (size_t)v;
		}
	}
	if (!rs_method_parse(method, &e.method))
		return luaL_argerror(L, 3, lua_pushfstring(L, "unknown method '%s' (dense, "
		    "lowrank, prune, prune-rows, prune-cols, quant, lowrank+sparse, grouped, "
		    "tucker2, cp, tt, quant+sparse, lowrank+sparse+quant)", method));
	if (rs_layer_method_refusal(&s->host.layers[i], e.method) != NULL)
		return luaL_argerror(L, 3, lua_pushstring(L,
		    rs_layer_method_refusal(&s->host.layers[i], e.method)));
	switch (e.method) {
	case RS_METHOD_LOWRANK:
	case RS_METHOD_LOWRANK_SPARSE:
	case RS_METHOD_LOWRANK_SPARSE_QUANT:
		luaL_argcheck(L, has_rank && rank >= 1 && (size_t)rank <= k, 3,
		              lua_pushfstring(L, "rank must be 1..%d for layer '%s'", (int)k,
		                              s->host.layers[i].name));
		e.rank = (size_t)rank;
		if (e.method == RS_METHOD_LOWRANK && e.whitened)
			need_whiten(L, i);
		if (e.method == RS_METHOD_LOWRANK && e.rank == k)
			e = rs_plan_entry_dense();
		break;
	case RS_METHOD_QUANT:
	case RS_METHOD_QUANT_SPARSE:
		luaL_argcheck(L, e.bits >= 1, 3, lua_pushfstring(L, "method '%s' needs bits (1..8)",
		              method));
		break;
	case RS_METHOD_GROUPED:
	case RS_METHOD_CP:
		luaL_argcheck(L, has_rank && rank >= 1, 3, lua_pushfstring(L, "method '%s' "
		              "needs a rank >= 1", method));
		e.rank = (size_t)rank;
		break;
	default:
		break;
	}
	if (e.method == RS_METHOD_PRUNE && e.scored && s->host.analyses[i].out == NULL) {
		need_whiten(L, i);   /* says why when there are no statistics */
		return luaL_error(L, "layer '%s': its output curves were not computed (they need "
		                  "the statistics too)", s->host.layers[i].name);
	}
	if (e.method != RS_METHOD_PRUNE)
		e.scored = false;
	if (e.method != RS_METHOD_LOWRANK)
		e.whitened = false;
	if (lua_type(L, 3) == LUA_TTABLE)
		read_decomposition(L, 3, &s->host.layers[i], &e);
	if (e.method == RS_METHOD_LOWRANK_SPARSE_QUANT)
		luaL_argcheck(L, e.bits >= 1, 3, "method 'lowrank+sparse+quant' needs bits (1..8)");
	if (rs_method_is_combination(e.method))
		rsl_solve_combination(L, i, &e);
	else if (rs_method_is_decomposition(e.method))
		solve_decomposition(L, i, &e);
	if (rs_method_is_solved(e.method) && s->host.analyses[i].calib != NULL &&
	    s->host.analyses[i].whiten != NULL) {
		/* the output error of what apply would write: measured now */
		rs_apply_report rep;
		rs_error err;

		if (rs_apply_measure(s->host.model, &s->host.layers[i], &s->host.analyses[i], &e,
		                     &rep, &err) != RS_OK)
			return luaL_error(L, "%s", err.msg);
		e.solved_out = rep.measured_out;
	}
	if (e.refined) {
		rs_refine_result res;
		rs_error err;

		/* after the solve: a combination may have become a single part */
		if (!rs_method_refinable(e.method))
			return luaL_argerror(L, 3, "refined = true needs method " RS_REFINABLE_METHODS);
		if (e.refined_sweeps == 0)
			e.refined_sweeps = RS_REFINE_DEFAULT_SWEEPS;
		if (rs_plan_entry_refine(&s->host.layers[i], &s->host.analyses[i], &e,
		                         s->host.model->path, e.refined_sweeps, NULL, &res,
		                         &err) != RS_OK)
			return luaL_error(L, "%s", err.msg);
		e.refined_sweeps = res.sweeps;
		e.refined_out = res.out_err;
		e.refined_fro = res.fro_err;
	}
	s->host.plan->entries[i] = e;
	push_figures(L, i);
	return 1;
}

static int
plan_get(lua_State *L)
{
	check_plan(L, 1);
	push_figures(L, layer_arg(L, 2));
	return 1;
}

static int
plan_reset(lua_State *L)
{
	rs_script *s = rsl_script(L);
	size_t i;

	check_plan(L, 1);
	for (i = 0; i < s->host.nlayers; i++)
		s->host.plan->entries[i] = rs_plan_entry_dense();
	return 0;
}

static int
plan_totals(lua_State *L)
{
	rs_script *s = rsl_script(L);
	rs_plan_totals t;

	check_plan(L, 1);
	rs_plan_totals_compute(s->host.plan, s->host.layers, s->host.analyses, &t);
	lua_createtable(L, 0, 12);
#define FIELD_INT(name) lua_pushinteger(L, (lua_Integer)t.name); lua_setfield(L, -2, #name)
#define FIELD_NUM(name) lua_pushnumber(L, t.name); lua_setfield(L, -2, #name)
	FIELD_INT(layers);
	FIELD_INT(pending);
	FIELD_INT(compressed);
	FIELD_INT(params_before);
	FIELD_INT(params_after);
	FIELD_INT(flops_before);
	FIELD_INT(flops_after);
	FIELD_INT(bits_before);
	FIELD_INT(bits_after);
	FIELD_NUM(ratio);
	FIELD_NUM(bits_ratio);
	FIELD_NUM(worst_err_spec);
	FIELD_NUM(worst_err_fro);
	FIELD_NUM(net_bound);
	if (!isnan(t.worst_out_err)) {
		FIELD_NUM(worst_out_err);
	}
#undef FIELD_INT
#undef FIELD_NUM
	if (t.layers > 0) {
		lua_pushstring(L, s->host.layers[t.worst_layer].name);
		lua_setfield(L, -2, "worst_layer");
	}
	return 1;
}

static const luaL_Reg plan_methods[] = {
	{"set", plan_set},
	{"get", plan_get},
	{"reset", plan_reset},
	{"totals", plan_totals},
	{NULL, NULL},
};

static int
plan_tostring(lua_State *L)
{
	check_plan(L, 1);
	lua_pushfstring(L, "plan (%d layers)", (int)rsl_script(L)->host.nlayers);
	return 1;
}

/* ---- registration ---- */

static void
new_type(lua_State *L, const char *name, const luaL_Reg *methods,
         lua_CFunction index, lua_CFunction tostring)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "methods");
	if (index != NULL) {
		lua_pushcfunction(L, index);
	} else {
		lua_getfield(L, -1, "methods");
	}
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "locked");   /* getmetatable() cannot reach the internals */
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void
rsl_push_model(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, "rankscope.model.instance") == LUA_TNIL) {
		lua_pop(L, 1);
		lua_newuserdatauv(L, 1, 0);
		luaL_setmetatable(L, MODEL_TYPE);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, "rankscope.model.instance");
	}
}

void
rsl_push_plan(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, "rankscope.plan.instance") == LUA_TNIL) {
		lua_pop(L, 1);
		lua_newuserdatauv(L, 1, 0);
		luaL_setmetatable(L, PLAN_TYPE);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, "rankscope.plan.instance");
	}
}

static int
module_model(lua_State *L)
{
	rsl_push_model(L);
	return 1;
}

static int
module_plan(lua_State *L)
{
	rsl_push_plan(L);
	return 1;
}

int
rsl_open(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{"model", module_model},
		{"plan", module_plan},
		{"combine", module_combine},
		{"grouped", module_grouped},
		{NULL, NULL},
	};

	new_type(L, LAYER_TYPE, layer_methods, layer_index, layer_tostring);
	luaL_getmetatable(L, LAYER_TYPE);
	lua_pushcfunction(L, layer_eq);
	lua_setfield(L, -2, "__eq");
	lua_pop(L, 1);
	new_type(L, MODEL_TYPE, model_methods, model_index, model_tostring);
	luaL_getmetatable(L, MODEL_TYPE);
	lua_pushcfunction(L, model_len);
	lua_setfield(L, -2, "__len");
	lua_pop(L, 1);
	new_type(L, PLAN_TYPE, plan_methods, NULL, plan_tostring);

	luaL_newlib(L, functions);
	rsl_open_tensor(L);
	lua_pushliteral(L, PACKAGE_VERSION);
	lua_setfield(L, -2, "version");
	return 1;
}
