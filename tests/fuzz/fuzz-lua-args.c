/*
 * fuzz-lua-args.c — bytes as calls into the `rankscope` Lua module, with
 * arguments of every Lua type: the Lua -> C argument conversion.
 *
 * The runtime is made once, as `rankscope run` makes one (rs_script_new
 * over the tiny model of fuzzlib.h, spectra and statistics computed at
 * start), and each input starts from the same state: a dense plan, empty
 * registers, a full collection behind it.  The bytes are read as:
 *
 *   input  := gc-mode call*
 *   call   := callee argc arg*        argc: low 3 bits = count; bit 3: the
 *                                     method's self is a fuzzed argument too
 *   arg    := tag payload             (see push_value)
 *
 * Callees are the module's functions, every method and metamethod of the
 * model, layer and plan userdata, and calls of what earlier calls returned
 * (the closures of rankscope.tucker_modes, say): each result goes into one
 * of eight registers that later arguments can name.  Arguments are nil,
 * booleans, integers and floats (boundary values or any 64-bit pattern),
 * strings (names the module knows, numeric strings, any bytes), tables of
 * such values (nested, with metatables whose __index or __len raise, loop,
 * collect garbage or return odd values), the userdata of the wrong type,
 * functions, coroutines and registers.
 *
 * A call runs under lua_pcall: a Lua error is an answer, not a finding.
 * What must not happen is a crash, a sanitizer report, or an abort; and
 * whatever the calls left in the plan must save as a plan file that reads
 * back (what `rankscope run -o` does).  The state has a memory cap and an
 * instruction cap per call, so fuzzed metamethod loops end.  Two kinds of
 * argument are clamped before the call, because they buy unbounded C time
 * rather than exercise conversion: CP ranks (the ALS costs rank^3 a sweep)
 * and iteration counts of the iterative kernels (a CP call without options
 * gets a few sweeps instead of its default 500); and a second CP solve in
 * one input is skipped.
 */
#include "config.h"

#include <float.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
#include <cblas.h>
#endif

#include "fuzzlib.h"
#include "../../src/lua-internal.h"
#include "rankscope/planfile.h"
#include "rankscope/util.h"

/* The state's Lua memory, and instructions per call (in hook periods). */
#define MEMORY_CAP (32u << 20)
#define HOOK_PERIOD 1000
#define HOOK_LIMIT 200
/* The clamps of the header comment (raise "fuzz: ..." when skipping). */
#define CP_RANK_CAP 4
#define ITERATIONS_CAP 50
#define CP_CALLS_CAP 1

#define MAX_CALLS 32
#define MAX_DEPTH 3
#define NREGS 8

static fuzz_session session;
static char *plan_path;
static bool verbose;    /* FUZZ_VERBOSE set: each call's outcome on stderr */

/* ---- the input ---- */

typedef struct reader {
	const uint8_t *p;
	size_t n;
} reader;

static reader in;

static unsigned
next(void)
{
	if (in.n == 0)
		return 0;
	in.n--;
	return *in.p++;
}

static uint64_t
next64(void)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | next();
	return v;
}

/* ---- values ---- */

static const lua_Integer integers[] = {
	0, 1, -1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 18, 36, 48, 64, 255, 256,
	65535, 65536, 2147483647, 2147483648LL, 4294967296LL, 4294967297LL,
	9007199254740992LL, 9007199254740993LL, 4611686018427387904LL,
	LUA_MAXINTEGER, LUA_MININTEGER, -2, -2147483648LL,
};

static double
special_float(unsigned i)
{
	static const double table[] = {
		0.0, -0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 0.25, 0.999999, 1e-300, 5e-324,
		DBL_MAX, -DBL_MAX, 3.0, 8.0, 9.0, 1e308, 0.1, 1.0 / 3.0, 4.5, 16.0,
		17.0, 65536.5, 9007199254740992.0, 9223372036854775808.0,
		-9223372036854775808.0, 18446744073709551616.0, 1e19, -1.0, -0.5,
	};
	size_t n = sizeof table / sizeof *table;

	if (i % (n + 3) < n)
		return table[i % (n + 3)];
	switch (i % (n + 3) - n) {
	case 0: return INFINITY;
	case 1: return -INFINITY;
	default: return i & 0x80 ? -NAN : NAN;
	}
}

static const char *const strings[] = {
	/* the model's layers and tensors, and one it does not have */
	"conv1.weight", "fc.weight", "head.weight", "lora.0.weight", "lora.1.weight",
	"lora.weight", "conv1.bias", "steps", "nope",
	/* methods, quantizers */
	"dense", "lowrank", "prune", "prune-rows", "prune-cols", "quant",
	"lowrank+sparse", "grouped", "tucker2", "cp", "tt", "quant+sparse",
	"lowrank+sparse+quant", "uniform-tensor", "uniform-channel", "kmeans",
	"binary", "ternary",
	/* fields of the tables the module reads and gives */
	"method", "rank", "sparsity", "quantizer", "bits", "groups", "fold", "ranks",
	"rows", "cols", "d", "eps", "iterations", "tol", "name", "k", "index", "kind",
	"dtype", "shape", "factors", "path", "nlayers", "format", "bound", "params",
	"flops", "err", "sigmas", "err_fro", "err_spec", "layers", "layer", "metadata",
	"set", "get", "reset", "totals", "sigma", "energy", "pays", "breakeven",
	"storage", "ready", "methods", "__index", "__gc", "__close", "__name",
	/* numbers as text */
	"", "0", "1", "2", "-1", "2.5", "0x10", "1e400", "nan", "inf", " 3 ", "1e2",
	"9223372036854775808", "9007199254740993", "0x7fffffffffffffff", "3.0",
};
#define NSTRINGS (sizeof strings / sizeof *strings)

/*
 * Metatables for argument tables, from Lua text loaded once per state:
 * __index or __len that raise, loop, collect garbage (so that a value C
 * took from the stack and popped may be freed), or give odd values.
 */
static const char *const metatables[] = {
	"return {__index = function() error('raised by __index') end}",
	"return {__index = function() while true do end end}",
	"return {__index = function() return 2^53 end}",
	"return {__index = function(t, k) collectgarbage() "
	"return string.rep(tostring(k), 9) end}",
	"return {__index = function() collectgarbage() end}",
	"return {__index = function() return {} end}",
	"return {__len = function() return 2^62 // 1 end}",
	"return {__len = function() return 2.5 end}",
	"return {__len = function() return -1 end}",
	"return {__index = function(t, k) return k end}",
	"return {__index = function() return -1 end}",
	"return {__index = function() return 0/0 end}",
	"return {__index = function() collectgarbage() return 'lowrank' end,"
	" __len = function() collectgarbage() return 2 end}",
	"return {__index = function() return coroutine.running() end}",
	"return {__index = function() error({}) end}",
	"return {__index = function() error(setmetatable({}, {__tostring = "
	"function() error('again') end})) end}",
};
#define NMETATABLES (sizeof metatables / sizeof *metatables)

/* Stack slots of a call's set-up (see run_input). */
enum { SLOT_REGS = 1, SLOT_LAYERS, SLOT_METATABLES, SLOT_MODULE };

static size_t nlayers_lua;

static void push_value(lua_State *L, int depth);

static void
push_table(lua_State *L, int depth, bool array)
{
	unsigned n = next() % 8, i;

	lua_createtable(L, 0, 0);
	for (i = 0; i < n; i++) {
		if (array) {
			push_value(L, depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
			continue;
		}
		push_value(L, depth + 1);
		/* nil and NaN cannot be keys */
		if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER &&
		    !lua_isinteger(L, -1) && isnan(lua_tonumber(L, -1)))) {
			lua_pop(L, 1);
			push_value(L, depth + 1);
			lua_pop(L, 1);
			continue;
		}
		push_value(L, depth + 1);
		lua_rawset(L, -3);
	}
}

/*
 * Pushes one argument:
 *   0 nil  1 false  2 true  3 an integer of the table  4 any integer
 *   5 a float of the table  6 any float  7 a string of the table
 *   8 any bytes (length, bytes)  9 a table {key = value}  10 a list
 *   11 a layer  12 the model  13 the plan  14 a register
 *   15 a table with a metatable  16 something else (see below)
 */
static void
push_value(lua_State *L, int depth)
{
	unsigned tag = next() % 17, b;
	uint64_t bits;
	double d;

	luaL_checkstack(L, 4, "fuzz arguments");
	if (depth > MAX_DEPTH && (tag == 9 || tag == 10 || tag == 15))
		tag = 0;
	switch (tag) {
	case 0: lua_pushnil(L); break;
	case 1: lua_pushboolean(L, 0); break;
	case 2: lua_pushboolean(L, 1); break;
	case 3:
		lua_pushinteger(L, integers[next() % (sizeof integers / sizeof *integers)]);
		break;
	case 4: lua_pushinteger(L, (lua_Integer)next64()); break;
	case 5: lua_pushnumber(L, special_float(next())); break;
	case 6:
		bits = next64();
		memcpy(&d, &bits, sizeof d);
		lua_pushnumber(L, d);
		break;
	case 7: lua_pushstring(L, strings[next() % NSTRINGS]); break;
	case 8: {
		char buf[256];
		unsigned len = next() % sizeof buf, i;
		for (i = 0; i < len; i++)
			buf[i] = (char)next();
		lua_pushlstring(L, buf, len);
		break;
	}
	case 9: push_table(L, depth, false); break;
	case 10: push_table(L, depth, true); break;
	case 11: lua_rawgeti(L, SLOT_LAYERS, (lua_Integer)(next() % nlayers_lua) + 1); break;
	case 12: rsl_push_model(L); break;
	case 13: rsl_push_plan(L); break;
	case 14: lua_rawgeti(L, SLOT_REGS, (lua_Integer)(next() % NREGS) + 1); break;
	case 15:
		push_table(L, depth, next() & 1);
		lua_rawgeti(L, SLOT_METATABLES, (lua_Integer)(next() % NMETATABLES) + 1);
		lua_setmetatable(L, -2);
		break;
	default:
		switch ((b = next()) % 8) {
		case 0: lua_newuserdatauv(L, 8, 0); break;      /* no metatable */
		case 1: lua_pushlightuserdata(L, &in); break;
		case 2: lua_getglobal(L, "print"); break;
		case 3: lua_getglobal(L, "tostring"); break;
		case 4: lua_newthread(L); break;
		case 5: lua_pushvalue(L, SLOT_MODULE); break;
		case 6: lua_pushvalue(L, SLOT_LAYERS); break;
		default: lua_pushinteger(L, (lua_Integer)(b >> 3) - 16); break;
		}
		break;
	}
}

/* ---- callees ---- */

typedef enum callee_kind {
	MODULE_FN,   /* rankscope.NAME(args) */
	MODEL_FN,    /* model:NAME(args), or a metamethod of the model */
	LAYER_FN,    /* layer:NAME(args), or a metamethod of a layer */
	PLAN_FN,     /* plan:NAME(args), or a metamethod of the plan */
	REGISTER_FN  /* a function a register holds, or a field of one */
} callee_kind;

typedef struct callee {
	callee_kind kind;
	const char *name;      /* a method, or a metamethod (__index ...) */
} callee;

static const callee callees[] = {
	{MODULE_FN, "model"}, {MODULE_FN, "plan"}, {MODULE_FN, "combine"},
	{MODULE_FN, "grouped"}, {MODULE_FN, "tucker_modes"}, {MODULE_FN, "tucker"},
	{MODULE_FN, "tt"}, {MODULE_FN, "cp"},
	{MODEL_FN, "layers"}, {MODEL_FN, "layer"}, {MODEL_FN, "params"},
	{MODEL_FN, "metadata"}, {MODEL_FN, "__index"}, {MODEL_FN, "__len"},
	{MODEL_FN, "__tostring"},
	{LAYER_FN, "prune_error"}, {LAYER_FN, "prune_rows_error"},
	{LAYER_FN, "prune_cols_error"}, {LAYER_FN, "count_below"},
	{LAYER_FN, "quant_error"}, {LAYER_FN, "quant_storage"}, {LAYER_FN, "storage"},
	{LAYER_FN, "sigma"}, {LAYER_FN, "sigmas"}, {LAYER_FN, "err_fro"},
	{LAYER_FN, "err_spec"}, {LAYER_FN, "energy"}, {LAYER_FN, "params"},
	{LAYER_FN, "flops"}, {LAYER_FN, "pays"}, {LAYER_FN, "breakeven"},
	{LAYER_FN, "rank_for_energy"}, {LAYER_FN, "rank_for_err_fro"},
	{LAYER_FN, "rank_for_err_spec"}, {LAYER_FN, "stable_rank"},
	{LAYER_FN, "effective_rank"}, {LAYER_FN, "fro_norm"}, {LAYER_FN, "spec_norm"},
	{LAYER_FN, "ready"}, {LAYER_FN, "__index"}, {LAYER_FN, "__tostring"},
	{LAYER_FN, "__eq"},
	{PLAN_FN, "set"}, {PLAN_FN, "get"}, {PLAN_FN, "reset"}, {PLAN_FN, "totals"},
	{PLAN_FN, "__tostring"},
	{PLAN_FN, "set"}, {PLAN_FN, "set"}, {PLAN_FN, "set"},   /* the richest one */
	{REGISTER_FN, NULL}, {REGISTER_FN, NULL},
};
#define NCALLEES (sizeof callees / sizeof *callees)

/* Pushes callee i's function (module, methods table or metatable field). */
static void
push_callee_function(lua_State *L, const callee *c)
{
	static const char *const types[] = {
		[MODEL_FN] = "rankscope.model", [LAYER_FN] = "rankscope.layer",
		[PLAN_FN] = "rankscope.plan",
	};

	if (c->kind == MODULE_FN) {
		lua_getfield(L, SLOT_MODULE, c->name);
	} else {
		luaL_getmetatable(L, types[c->kind]);
		if (strncmp(c->name, "__", 2) == 0) {
			lua_getfield(L, -1, c->name);
		} else {
			lua_getfield(L, -1, "methods");
			lua_getfield(L, -1, c->name);
			lua_remove(L, -2);
		}
		lua_remove(L, -2);
	}
	if (!lua_isfunction(L, -1))
		fuzz_fail(__FILE__, __LINE__, "the module has every callee", c->name);
}

/* ---- the caps ---- */

typedef struct capped_alloc {
	lua_Alloc f;
	void *ud;
	long long used;   /* since the cap was installed; may go below 0 */
} capped_alloc;

static void *
capped(void *ud, void *ptr, size_t osize, size_t nsize)
{
	capped_alloc *c = ud;
	long long old = ptr != NULL ? (long long)osize : 0, grow = (long long)nsize - old;
	void *p;

	if (nsize > 0 && grow > 0 && c->used + grow > (long long)MEMORY_CAP)
		return NULL;
	p = c->f(c->ud, ptr, osize, nsize);
	if (p != NULL || nsize == 0)
		c->used += grow;
	return p;
}

static int hook_counts;
static int cp_calls;    /* CP solves of this input */

static void
cap_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (++hook_counts > HOOK_LIMIT) {
		/* sticky, as the runtime's interrupt: a pcall inside cannot
		 * swallow it for long */
		lua_sethook(L, cap_hook, LUA_MASKCOUNT, 1);
		luaL_error(L, "instruction cap");
	}
}

/* An integer-valued argument above cap (as the callee would convert it,
 * numeric strings too) is replaced by cap. */
static void
clamp_integer(lua_State *L, int idx, lua_Integer cap)
{
	int exact;
	lua_Integer v;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TNUMBER && lua_type(L, idx) != LUA_TSTRING)
		return;
	v = lua_tointegerx(L, idx, &exact);
	if (exact && v > cap) {
		lua_pushinteger(L, cap);
		lua_replace(L, idx);
	}
}

/* The same for a raw field of a table argument. */
static void
clamp_field(lua_State *L, int idx, const char *key, lua_Integer cap)
{
	if (!lua_istable(L, idx))
		return;
	lua_pushstring(L, key);
	lua_rawget(L, idx);
	clamp_integer(L, -1, cap);
	lua_pushstring(L, key);
	lua_insert(L, -2);
	lua_rawset(L, idx);
}

/* The clamps of the header comment, on the arguments at base + 1..;
 * returns the argument count (a CP call without options gets some: its
 * default is 500 sweeps). */
static int
clamp_work(lua_State *L, const callee *c, int base, int nargs)
{
	int i;

	if (c->kind == MODULE_FN && strcmp(c->name, "cp") == 0) {
		/* the dearest call by far (a 2 MiB work array, many sweeps): once
		 * an input is enough to mix it with the others */
		if (++cp_calls > CP_CALLS_CAP)
			luaL_error(L, "fuzz: CP call skipped");
		if (nargs >= 2)
			clamp_integer(L, base + 2, CP_RANK_CAP);
		if (nargs == 2) {
			lua_createtable(L, 0, 1);
			lua_pushinteger(L, ITERATIONS_CAP);
			lua_setfield(L, -2, "iterations");
			nargs++;
		}
		if (nargs >= 3)
			clamp_field(L, base + 3, "iterations", ITERATIONS_CAP);
	} else if (c->kind == MODULE_FN && strcmp(c->name, "tucker") == 0) {
		if (nargs >= 4)
			clamp_field(L, base + 4, "iterations", ITERATIONS_CAP);
	} else if (c->kind == PLAN_FN && strcmp(c->name, "set") == 0) {
		for (i = 3; i <= nargs; i++)
			clamp_field(L, base + i, "rank", CP_RANK_CAP);
		/* a CP entry is solved at once, with the default 500 sweeps */
		if (nargs >= 3 && lua_istable(L, base + 3)) {
			lua_pushliteral(L, "method");
			lua_rawget(L, base + 3);
			if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "cp") == 0 &&
			    ++cp_calls > CP_CALLS_CAP)
				luaL_error(L, "fuzz: CP call skipped");
			lua_pop(L, 1);
		}
	}
	return nargs;
}

/* ---- one call ---- */

/*
 * Reads one call from the input and makes it (unprotected: run_call runs
 * under lua_pcall).  Its arguments are the slots, then the register its
 * first result goes to.
 */
static int
run_call(lua_State *L)
{
	const callee *c = &callees[next() % NCALLEES];
	unsigned argc = next(), n = argc & 7, i;
	int base, nargs = 0, reg = (int)lua_tointeger(L, -1);

	if (verbose)
		fprintf(stderr, "%s %s, %u arguments%s\n", c->kind == MODULE_FN ? "rankscope" :
		        c->kind == MODEL_FN ? "model" : c->kind == LAYER_FN ? "layer" :
		        c->kind == PLAN_FN ? "plan" : "register", c->name ? c->name : "",
		        n, argc & 8 ? " (self fuzzed)" : "");
	lua_pop(L, 1);
	base = lua_gettop(L);
	if (c->kind == REGISTER_FN) {
		lua_rawgeti(L, SLOT_REGS, (lua_Integer)(next() % NREGS) + 1);
		if (lua_istable(L, -1)) {
			lua_pushstring(L, strings[next() % NSTRINGS]);
			lua_rawget(L, -2);
			lua_remove(L, -2);
		}
	} else {
		push_callee_function(L, c);
	}
	/* the method's own object, unless fuzzed */
	if (!(argc & 8) && c->kind != MODULE_FN && c->kind != REGISTER_FN) {
		if (c->kind == MODEL_FN)
			rsl_push_model(L);
		else if (c->kind == PLAN_FN)
			rsl_push_plan(L);
		else
			lua_rawgeti(L, SLOT_LAYERS, (lua_Integer)(next() % nlayers_lua) + 1);
		nargs++;
	}
	for (i = 0; i < n; i++, nargs++)
		push_value(L, 0);
	nargs = clamp_work(L, c, base + 1, nargs);
	hook_counts = 0;
	lua_sethook(L, cap_hook, LUA_MASKCOUNT, HOOK_PERIOD);
	lua_call(L, nargs, 1);
	lua_rawseti(L, SLOT_REGS, reg + 1);
	return 0;
}

/* ---- set-up and the plan check ---- */

/* The runtime: made once (a fresh one per input would cost more than the
 * calls), and brought back to the same state before each input. */
static rs_script *script;
static rs_plan plan;
static capped_alloc cap;

static void
ignore_output(void *userdata, const char *text, size_t len)
{
	(void)userdata;
	(void)text;
	(void)len;
}

static void
free_runtime(void)
{
	rs_script_free(script);
	rs_plan_free(&plan);
	fuzz_session_close(&session);
	free(plan_path);
}

/* Pushes the slots: registers (replaced per input), layers, metatables and
 * the module. */
static void
push_slots(lua_State *L)
{
	size_t i;

	lua_settop(L, 0);
	lua_createtable(L, NREGS, 0);
	rsl_push_model(L);
	lua_getfield(L, -1, "layers");
	lua_insert(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		fuzz_fail(__FILE__, __LINE__, "model:layers()", lua_tostring(L, -1));
	nlayers_lua = lua_rawlen(L, SLOT_LAYERS);
	FUZZ_ASSERT(nlayers_lua == session.nlayers, "model:layers() lists every layer");
	lua_createtable(L, (int)NMETATABLES, 0);
	for (i = 0; i < NMETATABLES; i++) {
		if (luaL_loadbufferx(L, metatables[i], strlen(metatables[i]), "=fuzz", "t") !=
		    LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
			fuzz_fail(__FILE__, __LINE__, metatables[i], lua_tostring(L, -1));
		lua_rawseti(L, SLOT_METATABLES, (lua_Integer)i + 1);
	}
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, "rankscope");
	lua_remove(L, -2);
	FUZZ_ASSERT(lua_istable(L, SLOT_MODULE), "the rankscope module is loaded");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	rs_script_host host = {.output = ignore_output};
	size_t ndirs;
	char **dirs;
	rs_error err;

	(void)argc;
	(void)argv;
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
	openblas_set_num_threads(1);
#endif
	fuzz_session_open(&session, 0, true);
	plan_path = rs_xasprintf("%s/plan.json", fuzz_scratch_dir());
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	rs_plan_init(&plan, session.nlayers);
	/* as `rankscope run` makes it (cmd_script_new) */
	host.model = session.model;
	host.layers = session.layers;
	host.nlayers = session.nlayers;
	host.analyses = session.analyses;
	host.plan = &plan;
	dirs = rs_script_default_dirs(NULL, 0, &ndirs);
	script = rs_script_new(&host, (const char *const *)dirs, ndirs, &err);
	rs_script_free_dirs(dirs, ndirs);
	if (script == NULL)
		fuzz_fail(__FILE__, __LINE__, "a runtime on the tiny model", err.msg);
	cap.f = lua_getallocf(script->L, &cap.ud);
	lua_setallocf(script->L, capped, &cap);
	push_slots(script->L);
	atexit(free_runtime);
	return 0;
}

/* Whatever the calls left in the plan saves as a file that reads back. */
static void
check_plan(void)
{
	const fuzz_session *s = &session;
	char *json = rs_plan_to_json(s->model, s->layers, s->nlayers, s->analyses, &plan,
	                             NULL, 2);
	rs_plan loaded;
	rs_error err;

	fuzz_write_file(plan_path, json, strlen(json));
	if (rs_plan_load(plan_path, s->model, s->layers, s->nlayers, &loaded, NULL,
	                 &err) != RS_OK) {
		fprintf(stderr, "%s", json);
		fuzz_fail(__FILE__, __LINE__, "a plan a script made reads back", err.msg);
	}
	rs_plan_free(&loaded);
	free(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = script->L;
	unsigned gc, calls;
	bool dense;
	size_t i;

	in.p = data;
	in.n = size;
	/* the state every input starts from: a dense plan, empty registers
	 * (the last input's collected as it ended), the collector in the mode
	 * asked for */
	for (i = 0; i < plan.nlayers; i++)
		plan.entries[i] = rs_plan_entry_dense();
	lua_createtable(L, NREGS, 0);
	lua_replace(L, SLOT_REGS);
	cp_calls = 0;
	gc = next();
	if (gc % 4 == 1)
		lua_gc(L, LUA_GCINC, 0, 400, 0);      /* a collection at every step */
	else if (gc % 4 == 2)
		lua_gc(L, LUA_GCGEN, 20, 100);
	else
		lua_gc(L, LUA_GCINC, 200, 100, 13);   /* Lua's defaults */

	for (calls = 0; in.n > 0 && calls < MAX_CALLS; calls++) {
		int slot;
		/* run_call sees the slots at the same indices, then the register */
		lua_pushcfunction(L, run_call);
		for (slot = SLOT_REGS; slot <= SLOT_MODULE; slot++)
			lua_pushvalue(L, slot);
		lua_pushinteger(L, (lua_Integer)(calls % NREGS));
		if (lua_pcall(L, SLOT_MODULE + 1, 0, 0) != LUA_OK && verbose)   /* an answer */
			fprintf(stderr, "  call %u: %s\n", calls, lua_type(L, -1) == LUA_TSTRING ?
			        lua_tostring(L, -1) : luaL_typename(L, -1));
		else if (verbose)
			fprintf(stderr, "  call %u: ok\n", calls);
		lua_sethook(L, NULL, 0, 0);
		lua_settop(L, SLOT_MODULE);
	}
	dense = true;
	for (i = 0; i < plan.nlayers; i++) {
		rs_plan_figures f;
		rs_plan_figures_for(&session.layers[i], &session.analyses[i], &plan.entries[i],
		                    &f);
		dense = dense && plan.entries[i].method == RS_METHOD_DENSE;
	}
	if (!dense)   /* an all-dense plan reads back: not worth a file per input */
		check_plan();
	/* free what the input made, so that it ends with as many frees as
	 * mallocs: libFuzzer runs the (slow) leak check on inputs that do not */
	lua_pushnil(L);
	lua_replace(L, SLOT_REGS);
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}
