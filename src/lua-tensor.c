/*
 * lua-tensor.c — the tensor decompositions in the `rankscope` module:
 * rankscope.tucker_modes and rankscope.tucker (Tucker-2, tucker.h),
 * rankscope.tt (TT-SVD, tt.h), rankscope.cp (CP-ALS, cp.h).
 *
 * Unlike the spectrum queries of lua-model.c these compute now, from the
 * layer's weights: a call loads the layer and runs the kernel, which is
 * not interruptible (the script stops after it returns).
 *
 * Conventions (as lua-model.c): wrong argument types or ranges raise an
 * error naming the argument; a kernel's refusal of a value that depends on
 * the layer (modes whose product is not its side, a CP rank too large for
 * BLAS) and its failures (non-finite weights, no convergence, no memory)
 * return nil and a message naming the layer.
 *
 * Memory.  Any Lua call may raise (a memory error at least), and a raise
 * longjmps past C cleanup.  So every C allocation lives in a "box", a
 * userdata whose __gc frees it: a raise leaves the box to the collector,
 * and the normal path empties the boxes as soon as it is done with them.
 * The arguments are all checked before the first allocation.
 */
#include "config.h"

#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lua-internal.h"
#include "rankscope/cp.h"
#include "rankscope/layer.h"
#include "rankscope/tt.h"
#include "rankscope/tucker.h"

#define BOX_TYPE "rankscope.box"

/* ---- boxes: C allocations owned by the collector until released ---- */

typedef struct box {
	void *p;
	void (*release)(void *);
} box;

static void
box_empty(box *b)
{
	if (b->p != NULL) {
		b->release(b->p);
		b->p = NULL;
	}
}

static int
box_gc(lua_State *L)
{
	box_empty(luaL_checkudata(L, 1, BOX_TYPE));
	return 0;
}

/* Pushes an empty box that will release its pointer with `release`. */
static box *
push_box(lua_State *L, void (*release)(void *))
{
	box *b = lua_newuserdatauv(L, sizeof *b, 0);

	b->p = NULL;
	b->release = release;
	luaL_setmetatable(L, BOX_TYPE);
	return b;
}

static void release_free(void *p) { free(p); }
static void release_tucker_modes(void *p) { rs_tucker_modes_free(p); }
static void release_tucker(void *p) { rs_tucker_free(p); }
static void release_tt(void *p) { rs_tt_free(p); }
static void release_cp(void *p) { rs_cp_free(p); }

/* ---- shared helpers ---- */

static const rs_layer *
layer_at(lua_State *L, size_t i)
{
	return &rsl_script(L)->host.layers[i];
}

/*
 * Pushes a box holding the layer's weights as doubles: in the tensor's
 * row-major order (`tensor`, rs_layer_load_tensor) or as the folded
 * matrix, column-major with ld = rows (rs_layer_load).  Returns the
 * weights, or NULL with err set (the box stays on the stack, empty).
 */
static double *
push_weights(lua_State *L, const rs_layer *l, bool tensor, rs_error *err)
{
	box *b = push_box(L, release_free);
	const char *path = rsl_script(L)->host.model->path;
	size_t count = l->rows * l->cols;
	rs_status st;

	b->p = malloc(count * sizeof(double));
	if (b->p == NULL) {
		rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory for %zu weights",
		             path, l->name, count);
		return NULL;
	}
	st = tensor ? rs_layer_load_tensor(l, b->p, path, err) :
	              rs_layer_load(l, b->p, l->rows, path, err);
	if (st != RS_OK) {
		box_empty(b);
		return NULL;
	}
	return b->p;
}

/* nil, message: the load's message names the layer already, a kernel's
 * does not. */
static int
push_failure(lua_State *L, const rs_layer *l, const rs_error *err, bool from_kernel)
{
	lua_pushnil(L);
	if (from_kernel)
		lua_pushfstring(L, "layer '%s': %s", l->name, err->msg);
	else
		lua_pushstring(L, err->msg);
	return 2;
}

/* A count as an integer, or as a float past LUA_MAXINTEGER (the kernels'
 * costs saturate at SIZE_MAX rather than wrap). */
static void
push_count(lua_State *L, size_t v)
{
	if (v <= (size_t)LUA_MAXINTEGER)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, (lua_Number)v);
}

static void
set_number(lua_State *L, const char *key, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, key);
}

static void
set_count(lua_State *L, const char *key, size_t v)
{
	push_count(L, v);
	lua_setfield(L, -2, key);
}

static void
push_numbers(lua_State *L, const double *v, size_t n)
{
	size_t j;

	lua_createtable(L, n < INT_MAX ? (int)n : 0, 0);
	for (j = 0; j < n; j++) {
		lua_pushnumber(L, v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

static void
push_counts(lua_State *L, const size_t *v, size_t n)
{
	size_t j;

	lua_createtable(L, (int)n, 0);
	for (j = 0; j < n; j++) {
		push_count(L, v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

/* An integer argument in lo..hi; `what` names it in the message. */
static size_t
check_range(lua_State *L, int arg, const char *what, lua_Integer lo, lua_Integer hi)
{
	lua_Integer v = luaL_checkinteger(L, arg);

	if (v < lo || v > hi)
		luaL_argerror(L, arg, hi == LUA_MAXINTEGER ?
		              lua_pushfstring(L, "%s must be >= %I", what, lo) :
		              lua_pushfstring(L, "%s must be %I..%I", what, lo, hi));
	return (size_t)v;
}

/* A size as an upper bound of a Lua integer range. */
static lua_Integer
limit(size_t v)
{
	return v <= (size_t)LUA_MAXINTEGER ? (lua_Integer)v : LUA_MAXINTEGER;
}

/* Field `key` of the options table at arg: an integer in lo..hi. */
static bool
opt_integer(lua_State *L, int arg, const char *key, lua_Integer lo, lua_Integer hi,
            lua_Integer *out)
{
	bool present = lua_getfield(L, arg, key) != LUA_TNIL;

	if (present) {
		int exact;
		lua_Integer v = lua_tointegerx(L, -1, &exact);
		if (!exact || v < lo || v > hi)
			luaL_argerror(L, arg, lua_pushfstring(L, "%s must be an integer %I..%I",
			                                      key, lo, hi));
		*out = v;
	}
	lua_pop(L, 1);
	return present;
}

/* Field `key` of the options table at arg: a finite number >= 0. */
static bool
opt_nonnegative(lua_State *L, int arg, const char *key, double *out)
{
	bool present = lua_getfield(L, arg, key) != LUA_TNIL;

	if (present) {
		double v = lua_tonumber(L, -1);
		if (!lua_isnumber(L, -1) || !isfinite(v) || v < 0)
			luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a finite number >= 0",
			                                      key));
		*out = v;
	}
	lua_pop(L, 1);
	return present;
}

/* The optional {iterations = N, tol = x} of an iterative kernel at arg;
 * N >= min_iter. */
static void
check_iteration_options(lua_State *L, int arg, int min_iter, int *iterations, double *tol)
{
	lua_Integer n;

	if (lua_isnoneornil(L, arg))
		return;
	luaL_checktype(L, arg, LUA_TTABLE);
	if (opt_integer(L, arg, "iterations", min_iter, INT_MAX, &n))
		*iterations = (int)n;
	opt_nonnegative(L, arg, "tol", tol);
}

/* ---- Tucker-2 ---- */

/* Upvalue 1 of the tucker_modes closures: the box of the rs_tucker_modes. */
static const rs_tucker_modes *
closure_modes(lua_State *L)
{
	return ((box *)lua_touserdata(L, lua_upvalueindex(1)))->p;
}

/* bound(r_out, r_in): rs_tucker_bound, ranks 0..f and 0..c. */
static int
modes_bound(lua_State *L)
{
	const rs_tucker_modes *m = closure_modes(L);
	size_t r_out = check_range(L, 1, "r_out", 0, limit(m->f));
	size_t r_in = check_range(L, 2, "r_in", 0, limit(m->c));

	lua_pushnumber(L, rs_tucker_bound(m, r_out, r_in));
	return 1;
}

/* params(r_out, r_in), flops(r_out, r_in): any ranks >= 0, as layer:params. */
static int
modes_cost(lua_State *L, size_t (*cost)(size_t, size_t, size_t, size_t, size_t, size_t))
{
	const rs_tucker_modes *m = closure_modes(L);
	size_t r_out = check_range(L, 1, "r_out", 0, LUA_MAXINTEGER);
	size_t r_in = check_range(L, 2, "r_in", 0, LUA_MAXINTEGER);

	push_count(L, cost(m->f, m->c, m->kh, m->kw, r_out, r_in));
	return 1;
}

static int modes_params(lua_State *L) { return modes_cost(L, rs_tucker_params); }
static int modes_flops(lua_State *L) { return modes_cost(L, rs_tucker_flops); }

/*
 * rankscope.tucker_modes(layer): the singular values of the kernel's two
 * unfoldings, with closures for the HOSVD bound and the costs at any rank
 * pair.  {shape, k_out, k_in, sigma_out, sigma_in, fro, dense_params,
 * bound, params, flops}.
 */
static int
module_tucker_modes(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1), shape[4];
	const rs_layer *l = layer_at(L, i);
	const double *w;
	rs_tucker_modes *m;
	box *mbox;
	rs_error err;

	rs_layer_kernel_dims(l, shape);
	w = push_weights(L, l, true, &err);
	if (w == NULL)
		return push_failure(L, l, &err, false);
	mbox = push_box(L, release_tucker_modes);
	mbox->p = m = rs_tucker_modes_new(w, shape[0], shape[1], shape[2], shape[3], &err);
	box_empty(lua_touserdata(L, -2));
	if (m == NULL)
		return push_failure(L, l, &err, true);
	lua_createtable(L, 0, 10);
	push_counts(L, shape, 4);
	lua_setfield(L, -2, "shape");
	set_count(L, "k_out", m->k_out);
	set_count(L, "k_in", m->k_in);
	push_numbers(L, m->sigma_out, m->k_out);
	lua_setfield(L, -2, "sigma_out");
	push_numbers(L, m->sigma_in, m->k_in);
	lua_setfield(L, -2, "sigma_in");
	set_number(L, "fro", sqrt(m->fro2));
	set_count(L, "dense_params", l->rows * l->cols);
	/* the closures share the box: it lives as long as any of them */
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, modes_bound, 1);
	lua_setfield(L, -2, "bound");
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, modes_params, 1);
	lua_setfield(L, -2, "params");
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, modes_flops, 1);
	lua_setfield(L, -2, "flops");
	return 1;
}

/*
 * rankscope.tucker(layer, r_out, r_in [, {iterations = N, tol = x}]):
 * truncated HOSVD and HOOI at (r_out, r_in).  {r_out, r_in, err,
 * err_hosvd, bound, iterations, params, flops}.
 */
static int
module_tucker(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1), shape[4], r_out, r_in;
	const rs_layer *l = layer_at(L, i);
	int iterations = RS_TUCKER_DEFAULT_ITERATIONS;
	double tol = RS_TUCKER_DEFAULT_TOLERANCE, bound;
	const double *w;
	rs_tucker_modes *m;
	rs_tucker *t;
	box *wbox, *mbox, *tbox;
	rs_error err;

	rs_layer_kernel_dims(l, shape);
	r_out = check_range(L, 2, "r_out", 1, limit(shape[0]));
	r_in = check_range(L, 3, "r_in", 1, limit(shape[1]));
	check_iteration_options(L, 4, 0, &iterations, &tol);
	w = push_weights(L, l, true, &err);
	if (w == NULL)
		return push_failure(L, l, &err, false);
	wbox = lua_touserdata(L, -1);
	mbox = push_box(L, release_tucker_modes);
	mbox->p = m = rs_tucker_modes_new(w, shape[0], shape[1], shape[2], shape[3], &err);
	if (m == NULL) {
		box_empty(wbox);
		return push_failure(L, l, &err, true);
	}
	bound = rs_tucker_bound(m, r_out, r_in);
	box_empty(mbox);
	tbox = push_box(L, release_tucker);
	tbox->p = t = rs_tucker_hooi(w, shape[0], shape[1], shape[2], shape[3], r_out, r_in,
	                             iterations, tol, &err);
	box_empty(wbox);
	if (t == NULL)
		return push_failure(L, l, &err, true);
	lua_createtable(L, 0, 8);
	set_count(L, "r_out", r_out);
	set_count(L, "r_in", r_in);
	set_number(L, "err", t->err);
	set_number(L, "err_hosvd", t->err_hosvd);
	set_number(L, "bound", bound);
	lua_pushinteger(L, t->iterations);
	lua_setfield(L, -2, "iterations");
	set_count(L, "params", rs_tucker_params(shape[0], shape[1], shape[2], shape[3],
	                                        r_out, r_in));
	set_count(L, "flops", rs_tucker_flops(shape[0], shape[1], shape[2], shape[3],
	                                      r_out, r_in));
	box_empty(tbox);
	return 1;
}

/* ---- TT-SVD ---- */

/*
 * Field `key` of the options table at arg: a list of 2..RS_TT_MAX_D
 * integers >= lo, into v.  Returns the count, 0 when the field is absent.
 * `want`, when not 0, is the count required.
 */
static size_t
opt_list(lua_State *L, int arg, const char *key, lua_Integer lo, size_t want,
         size_t *v)
{
	size_t n = 0, j;

	if (lua_getfield(L, arg, key) != LUA_TNIL) {
		if (!lua_istable(L, -1))
			luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a list of integers",
			                                      key));
		n = lua_rawlen(L, -1);
		if (want != 0 && n != want)
			luaL_argerror(L, arg, lua_pushfstring(L, "%s must list d - 1 = %d caps, "
			                                      "not %d", key, (int)want, (int)n));
		if (want == 0 && (n < 2 || n > RS_TT_MAX_D))
			luaL_argerror(L, arg, lua_pushfstring(L, "%s must list 2..%d values, not %d",
			                                      key, RS_TT_MAX_D, (int)n));
		for (j = 0; j < n; j++) {
			int exact;
			lua_Integer x;
			lua_rawgeti(L, -1, (lua_Integer)j + 1);
			x = lua_tointegerx(L, -1, &exact);
			if (!exact || x < lo)
				luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d] must be an integer "
				                                      ">= %I", key, (int)j + 1, lo));
			v[j] = (size_t)x;
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	return n;
}

/*
 * rankscope.tt(layer, {rows = {m_1..m_d}, cols = {n_1..n_d} | d = D,
 * eps = x, ranks = {caps}}): TT-SVD of the layer's (folded) matrix.
 * {d, rows, cols, ranks, bound, err, params, flops, steps}.
 */
static int
module_tt(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1), d = 0, nrows, ncols, k;
	const rs_layer *l = layer_at(L, i);
	size_t row_modes[RS_TT_MAX_D], col_modes[RS_TT_MAX_D], caps[RS_TT_MAX_D];
	lua_Integer dd;
	double eps = -1;
	bool has_caps;
	const double *w;
	rs_tt *tt;
	box *wbox, *tbox;
	rs_error err;

	luaL_checktype(L, 2, LUA_TTABLE);
	nrows = opt_list(L, 2, "rows", 1, 0, row_modes);
	ncols = opt_list(L, 2, "cols", 1, 0, col_modes);
	if (opt_integer(L, 2, "d", 2, RS_TT_MAX_D, &dd))
		d = (size_t)dd;
	if (nrows != 0 || ncols != 0) {
		luaL_argcheck(L, nrows == ncols, 2, "rows and cols must list as many modes");
		luaL_argcheck(L, d == 0 || d == nrows, 2, "d must be the number of modes listed");
		d = nrows;
	} else if (d != 0) {
		/* the balanced default; n >= 1 and d in range cannot fail */
		rs_tt_balanced_modes(l->rows, d, row_modes);
		rs_tt_balanced_modes(l->cols, d, col_modes);
	} else {
		return luaL_argerror(L, 2, "give the modes (rows and cols) or their number d");
	}
	opt_nonnegative(L, 2, "eps", &eps);
	/* a cap of 0 means no cap at that step, as in tt.h */
	has_caps = opt_list(L, 2, "ranks", 0, d - 1, caps) != 0;
	w = push_weights(L, l, false, &err);
	if (w == NULL)
		return push_failure(L, l, &err, false);
	wbox = lua_touserdata(L, -1);
	tbox = push_box(L, release_tt);
	tbox->p = tt = rs_tt_svd(w, l->rows, l->cols, l->rows, d, row_modes, col_modes,
	                         has_caps ? caps : NULL, eps, &err);
	box_empty(wbox);
	if (tt == NULL)
		return push_failure(L, l, &err, true);
	lua_createtable(L, 0, 9);
	set_count(L, "d", tt->d);
	push_counts(L, tt->row_modes, tt->d);
	lua_setfield(L, -2, "rows");
	push_counts(L, tt->col_modes, tt->d);
	lua_setfield(L, -2, "cols");
	push_counts(L, tt->ranks, tt->d + 1);
	lua_setfield(L, -2, "ranks");
	set_number(L, "bound", tt->bound);
	set_number(L, "err", tt->err);
	set_count(L, "params", tt->params);
	set_count(L, "flops", tt->flops);
	lua_createtable(L, (int)tt->d - 1, 0);
	for (k = 0; k + 1 < tt->d; k++) {
		push_numbers(L, tt->step_sigma[k], tt->step_k[k]);
		lua_rawseti(L, -2, (lua_Integer)k + 1);
	}
	lua_setfield(L, -2, "steps");
	box_empty(tbox);
	return 1;
}

/* ---- CP ---- */

/*
 * rankscope.cp(layer, rank [, {iterations = N, tol = x}]): CP-ALS of the
 * layer as a tensor, its 4 modes (f, c, kh, kw) for a conv layer, its 2
 * (rows, cols) otherwise.  {rank, err, iterations, converged, history,
 * params, flops}.
 */
static int
module_cp(lua_State *L)
{
	size_t i = rsl_check_layer(L, 1), shape[4], nmodes, rank;
	const rs_layer *l = layer_at(L, i);
	int iterations = RS_CP_DEFAULT_ITERATIONS;
	double tol = RS_CP_DEFAULT_TOLERANCE;
	const double *w;
	rs_cp *cp;
	box *wbox, *cbox;
	rs_error err;

	nmodes = rs_layer_kernel_dims(l, shape);
	rank = check_range(L, 2, "rank", 1, LUA_MAXINTEGER);
	check_iteration_options(L, 3, 1, &iterations, &tol);
	w = push_weights(L, l, true, &err);
	if (w == NULL)
		return push_failure(L, l, &err, false);
	wbox = lua_touserdata(L, -1);
	cbox = push_box(L, release_cp);
	cbox->p = cp = rs_cp_als(w, nmodes, shape, rank, iterations, tol, &err);
	box_empty(wbox);
	if (cp == NULL)
		return push_failure(L, l, &err, true);
	lua_createtable(L, 0, 7);
	set_count(L, "rank", cp->rank);
	set_number(L, "err", cp->err);
	lua_pushinteger(L, cp->iterations);
	lua_setfield(L, -2, "iterations");
	lua_pushboolean(L, cp->converged);
	lua_setfield(L, -2, "converged");
	push_numbers(L, cp->history, (size_t)cp->iterations);
	lua_setfield(L, -2, "history");
	set_count(L, "params", rs_cp_params(nmodes, shape, rank));
	set_count(L, "flops", rs_cp_flops(nmodes, shape, rank));
	box_empty(cbox);
	return 1;
}

/* ---- registration ---- */

void
rsl_open_tensor(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{"tucker_modes", module_tucker_modes},
		{"tucker", module_tucker},
		{"tt", module_tt},
		{"cp", module_cp},
		{NULL, NULL},
	};

	luaL_newmetatable(L, BOX_TYPE);
	lua_pushcfunction(L, box_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_setfuncs(L, functions, 0);
}
