/*
 * lua-runtime.c — the Lua state, its sandbox, and every call into Lua.
 *
 * Calls follow lua.c: set-up and script both run under lua_pcall with a
 * message handler that appends a traceback; an interrupt only sets a count
 * hook (safe from a signal handler), and the hook raises the error.  A
 * count hook also polls the host, so the workbench can stop a runaway
 * script on Esc while it runs on the UI thread.
 *
 * The state allocates through a counting allocator with a cap, so a
 * runaway table or string.rep ends in "out of memory in strategy NAME"
 * instead of taking the host's memory.  Errors the host cannot see as
 * warnings (warn()) reach the host's output rather than vanishing.  Lua
 * runs finalizers with hooks off, where nothing could stop a looping one,
 * so the sandbox's setmetatable refuses __gc.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lua-internal.h"
#include "rankscope/util.h"

/* Instructions between two looks at the host's stop request. */
#define HOOK_COUNT 10000

rs_script *
rsl_script(lua_State *L)
{
	return *(rs_script **)lua_getextraspace(L);
}

/* ---- memory ---- */

/*
 * lua_Alloc with a cap.  For a new block Lua passes the object's type in
 * osize, not a size, so the old size counts only when ptr is not NULL.
 * Refusing (returning NULL) makes Lua collect garbage and try once more,
 * then raise a memory error; shrinking never fails.
 */
static void *
capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	rs_script *s = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		s->mem_used -= old;
		return NULL;
	}
	if (nsize > old && nsize - old > s->mem_limit - s->mem_used) {
		s->mem_refused = true;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (p == NULL) {
		s->mem_refused = true;
		return NULL;
	}
	s->mem_used = s->mem_used - old + nsize;
	return p;
}

/* ---- output ---- */

static void
emit(rs_script *s, const char *text, size_t len)
{
	if (s->host.output)
		s->host.output(s->host.userdata, text, len);
}

static int
lua_print(lua_State *L)
{
	rs_script *s = rsl_script(L);
	int n = lua_gettop(L), i;
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_addchar(&b, '\n');
	luaL_pushresult(&b);
	emit(s, lua_tostring(L, -1), lua_rawlen(L, -1));
	return 0;
}

static int
io_write(lua_State *L)
{
	rs_script *s = rsl_script(L);
	int n = lua_gettop(L), i;

	for (i = 1; i <= n; i++) {
		size_t len;
		const char *text = luaL_checklstring(L, i, &len);
		emit(s, text, len);
	}
	return 0;
}

/*
 * Lua's warnings (warn(), and errors in finalizers of the host's own
 * userdata, which Lua cannot raise) arrive in pieces; a whole one goes to the host's output as a
 * "warning:" line.  Control messages ("@on", "@off") are not shown: the
 * host always shows warnings.
 */
static void
on_warning(void *ud, const char *msg, int tocont)
{
	rs_script *s = ud;
	size_t len = strlen(msg), room = sizeof s->warning - 1 - s->warning_len;
	char line[RS_ERROR_MAX + 16];
	int n;

	if (s->warning_len == 0 && !tocont && msg[0] == '@')
		return;
	if (len > room)
		len = room;
	memcpy(s->warning + s->warning_len, msg, len);
	s->warning_len += len;
	s->warning[s->warning_len] = '\0';
	if (tocont)
		return;
	n = snprintf(line, sizeof line, "warning: %s\n", s->warning);
	emit(s, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	s->warning_len = 0;
}

/* ---- the sandbox ---- */

/* load() in text mode only: no precompiled chunks. */
static int
safe_load(lua_State *L)
{
	size_t len;
	const char *chunk = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, chunk);
	int env = !lua_isnone(L, 4);

	if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env) {
		lua_pushvalue(L, 4);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
	}
	return 1;
}

/*
 * setmetatable without finalizers.  Lua runs __gc with hooks switched off,
 * so a finalizer that loops could be stopped neither by Esc nor by the
 * instruction-count hook, and would hang the workbench (at the latest when
 * the state closes).  Strategies hold no resources a finalizer could
 * release, so a metatable with __gc is refused.  (Setting __gc on a
 * metatable afterwards does not make an object finalizable in Lua 5.4,
 * and the host's own metatables are protected.)
 */
static int
safe_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc is not available to strategies "
			                  "(a finalizer runs where Esc cannot stop it)");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* require's file searcher, in text mode, over package.path. */
static int
text_searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1), *path;

	lua_getglobal(L, "package");
	lua_getfield(L, -1, "path");
	path = lua_tostring(L, -1);
	lua_getfield(L, -2, "searchpath");
	lua_pushstring(L, name);
	lua_pushstring(L, path ? path : "");
	lua_call(L, 2, 2);
	if (lua_isnil(L, -2))
		return 1;   /* the message from searchpath */
	path = lua_tostring(L, -2);
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		return luaL_error(L, "error loading module '%s' from '%s':\n\t%s", name, path,
		                  lua_tostring(L, -1));
	lua_pushstring(L, path);
	return 2;
}

static void
remove_fields(lua_State *L, const char *table, const char *const *fields)
{
	lua_getglobal(L, table);
	for (; *fields; fields++) {
		lua_pushnil(L);
		lua_setfield(L, -2, *fields);
	}
	lua_pop(L, 1);
}

static int
open_sandbox(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{LUA_GNAME, luaopen_base}, {LUA_LOADLIBNAME, luaopen_package},
		{LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
		{LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
		{LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os},
		{NULL, NULL},
	};
	static const char *const base_removed[] = {"dofile", "loadfile", NULL};
	static const char *const os_removed[] = {
		"execute", "exit", "remove", "rename", "tmpname", "setlocale", NULL,
	};
	static const char *const package_removed[] = {"loadlib", "cpath", NULL};
	static const char *const string_removed[] = {"dump", NULL};
	rs_script *s = rsl_script(L);
	const luaL_Reg *lib;
	luaL_Buffer path;
	size_t i;

	for (lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	remove_fields(L, LUA_GNAME, base_removed);
	remove_fields(L, LUA_OSLIBNAME, os_removed);
	remove_fields(L, LUA_LOADLIBNAME, package_removed);
	remove_fields(L, LUA_STRLIBNAME, string_removed);
	lua_register(L, "load", safe_load);
	lua_register(L, "print", lua_print);
	lua_register(L, "setmetatable", safe_setmetatable);
	/* io: writing to the host's output, nothing else */
	lua_newtable(L);
	lua_pushcfunction(L, io_write);
	lua_setfield(L, -2, "write");
	lua_setglobal(L, "io");

	/* require: preload (the rankscope module) and text files from the
	 * strategy directories; no C modules */
	lua_getglobal(L, LUA_LOADLIBNAME);
	luaL_buffinit(L, &path);
	for (i = 0; i < s->ndirs; i++) {
		if (i > 0)
			luaL_addchar(&path, ';');
		luaL_addstring(&path, s->dirs[i]);
		luaL_addstring(&path, "/?.lua");
	}
	luaL_pushresult(&path);
	lua_setfield(L, -2, "path");
	lua_getfield(L, -1, "searchers");
	lua_rawgeti(L, -1, 1);                 /* keep the preload searcher */
	lua_createtable(L, 2, 0);
	lua_insert(L, -2);
	lua_rawseti(L, -2, 1);
	lua_pushcfunction(L, text_searcher);
	lua_rawseti(L, -2, 2);
	lua_setfield(L, -3, "searchers");
	lua_pop(L, 1);
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, rsl_open);
	lua_setfield(L, -2, "rankscope");
	lua_pop(L, 2);

	/* load the module now: it registers the userdata types */
	luaL_requiref(L, "rankscope", rsl_open, 0);
	lua_pop(L, 1);
	/* the console's globals */
	rsl_push_model(L);
	lua_setglobal(L, "model");
	rsl_push_plan(L);
	lua_setglobal(L, "plan");
	return 0;
}

/* ---- protected calls ---- */

static int
message_handler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL) {
		/* The error object's own __tostring may fail or return anything:
		 * call it protected, so that a broken one still gives a message
		 * (and not "error in error handling"). */
		if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
			lua_pushvalue(L, 1);
			if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
				return 1;
			lua_pop(L, 1);
		}
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Raises "FILE:LINE: interrupted" at the Lua code that was running (a
 * hook runs without a call frame of its own, so that is level 0). */
static int
raise_interrupted(lua_State *L)
{
	luaL_where(L, 0);
	lua_pushliteral(L, "interrupted");
	lua_concat(L, 2);
	return lua_error(L);
}

/*
 * An interrupt is sticky: the hook stays and raises again at every count,
 * so a script that catches the error with pcall() is stopped all the same.
 * Only the top-level call (run, eval, list) clears it when it returns.
 */
static void
stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	raise_interrupted(L);
}

static void
poll_hook(lua_State *L, lua_Debug *ar)
{
	rs_script *s = rsl_script(L);

	(void)ar;
	if (s->stop || (s->host.should_stop && s->host.should_stop(s->host.userdata))) {
		s->stop = 1;
		lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
		raise_interrupted(L);
	}
}

void
rs_script_interrupt(rs_script *s)
{
	/* As lua.c: only set a hook from a signal handler. */
	s->stop = 1;
	lua_sethook(s->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Calls the function below nargs arguments; on error fills err with the
 * message and traceback and leaves nothing on the stack. */
static rs_status
pcall(rs_script *s, int nargs, int nresults, rs_error *err)
{
	lua_State *L = s->L;
	int base = lua_gettop(L) - nargs, status;

	lua_pushcfunction(L, message_handler);
	lua_insert(L, base);
	/* A pending interrupt (s->stop) is kept: it may have arrived between
	 * two calls of one run. */
	lua_sethook(L, s->stop ? stop_hook : poll_hook,
	            s->stop ? LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT : LUA_MASKCOUNT,
	            s->stop ? 1 : HOOK_COUNT);
	s->mem_refused = false;
	status = lua_pcall(L, nargs, nresults, base);
	lua_sethook(L, NULL, 0, 0);
	lua_remove(L, base);
	if (status == LUA_OK)
		return RS_OK;
	if (status == LUA_ERRMEM || (s->mem_refused && status == LUA_ERRERR)) {
		/* Lua raises a memory error without calling the message handler,
		 * so the message is ours; the garbage is collected now, so the
		 * state is usable again at once. */
		lua_pop(L, 1);
		lua_gc(L, LUA_GCCOLLECT);
		return rs_error_set(err, RS_ENOMEM, "out of memory in %s: the Lua state "
		                    "reached its limit of %zu MiB (--lua-memory sets it)",
		                    s->running[0] ? s->running : "Lua", s->mem_limit >> 20);
	}
	rs_error_set(err, RS_EINVAL, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) :
	             "error without a message");
	lua_pop(L, 1);
	return RS_EINVAL;
}

rs_script *
rs_script_new(const rs_script_host *host, const char *const *dirs, size_t ndirs,
              rs_error *err)
{
	rs_script *s = rs_xcalloc(1, sizeof *s);
	size_t i;

	s->host = *host;
	s->dirs = rs_xcalloc(ndirs ? ndirs : 1, sizeof *s->dirs);
	for (i = 0; i < ndirs; i++)
		s->dirs[i] = rs_xstrdup(dirs[i]);
	s->ndirs = ndirs;
	s->mem_limit = host->memory_limit ? host->memory_limit : RS_SCRIPT_DEFAULT_MEMORY;
	snprintf(s->running, sizeof s->running, "the sandbox's set-up");
	s->L = lua_newstate(capped_alloc, s);
	if (s->L != NULL)
		lua_setwarnf(s->L, on_warning, s);
	if (s->L == NULL) {
		rs_error_set(err, RS_ENOMEM, "cannot create a Lua state");
		rs_script_free(s);
		return NULL;
	}
	*(rs_script **)lua_getextraspace(s->L) = s;
	lua_pushcfunction(s->L, open_sandbox);
	if (pcall(s, 0, 0, err) != RS_OK) {
		rs_script_free(s);
		return NULL;
	}
	return s;
}

void
rs_script_free(rs_script *s)
{
	size_t i;

	if (s == NULL)
		return;
	if (s->L)
		lua_close(s->L);
	for (i = 0; i < s->ndirs; i++)
		free(s->dirs[i]);
	free(s->dirs);
	free(s);
}

char **
rs_script_default_dirs(const char *const *extra, size_t nextra, size_t *n)
{
	char **dirs = rs_xcalloc(nextra + 3, sizeof *dirs);
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	const char *shipped = getenv("RANKSCOPE_LUA_DIR");
	struct stat st;
	size_t k = 0, i;

	for (i = 0; i < nextra; i++)
		dirs[k++] = rs_xstrdup(extra[i]);
	if (xdg != NULL && xdg[0] == '/')
		dirs[k++] = rs_xasprintf("%s/rankscope/strategies", xdg);
	else if (home != NULL && home[0] != '\0')
		dirs[k++] = rs_xasprintf("%s/.config/rankscope/strategies", home);
	/* Installed strategies, or the source tree's when running uninstalled. */
	if (shipped == NULL || shipped[0] == '\0')
		shipped = stat(RS_LUA_DATADIR, &st) == 0 ? RS_LUA_DATADIR : RS_LUA_SRCDIR;
	dirs[k++] = rs_xstrdup(shipped);
	*n = k;
	return dirs;
}

void
rs_script_free_dirs(char **dirs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

/* ---- strategies ---- */

/* Loads a .lua file in text mode and calls it; leaves its first result. */
static rs_status
load_file(rs_script *s, const char *path, int nargs, rs_error *err)
{
	if (luaL_loadfilex(s->L, path, "t") != LUA_OK) {
		rs_error_set(err, RS_EINVAL, "%s", lua_tostring(s->L, -1));
		lua_pop(s->L, 1 + nargs);
		return RS_EINVAL;
	}
	lua_insert(s->L, -1 - nargs);
	return pcall(s, nargs, 1, err);
}

static const char *const param_type_names[] = {
	[RS_PARAM_NUMBER] = "number", [RS_PARAM_INTEGER] = "integer",
	[RS_PARAM_BOOLEAN] = "boolean", [RS_PARAM_STRING] = "string",
	[RS_PARAM_CHOICE] = "choice",
};

/*
 * Strategy tables come from user code: read them raw, so that no
 * metamethod (which could raise an error outside any protected call, or
 * loop) runs while we inspect them.
 */
static int
raw_field(lua_State *L, int table, const char *key)
{
	table = lua_absindex(L, table);
	if (!lua_istable(L, table)) {
		lua_pushnil(L);
		return LUA_TNIL;
	}
	lua_pushstring(L, key);
	return lua_rawget(L, table);
}

/* A value shown as text without calling __tostring. */
static char *
plain_text(lua_State *L, int idx)
{
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return rs_xasprintf("%lld", (long long)lua_tointeger(L, idx));
		return rs_xasprintf("%.14g", (double)lua_tonumber(L, idx));
	case LUA_TSTRING:
		return rs_xstrdup(lua_tostring(L, idx));
	case LUA_TBOOLEAN:
		return rs_xstrdup(lua_toboolean(L, idx) ? "true" : "false");
	default:
		return rs_xasprintf("(a %s)", luaL_typename(L, idx));
	}
}

static char *
opt_string_field(lua_State *L, int table, const char *key)
{
	char *v = NULL;

	if (raw_field(L, table, key) == LUA_TSTRING)
		v = rs_xstrdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return v;
}

/* Reads a strategy table at the top of the stack into info; checks its
 * shape so that a broken strategy is reported by name, not at run time. */
static rs_status
read_info(rs_script *s, const char *path, rs_strategy_info *info, rs_error *err)
{
	lua_State *L = s->L;
	int t = lua_gettop(L);
	size_t i, n;

	memset(info, 0, sizeof *info);
	info->path = rs_xstrdup(path);
	if (!lua_istable(L, t))
		return rs_error_set(err, RS_EINVAL, "%s: a strategy must return a table "
		                    "with name, description, params and run", path);
	info->name = opt_string_field(L, t, "name");
	info->description = opt_string_field(L, t, "description");
	if (info->name == NULL)
		return rs_error_set(err, RS_EINVAL, "%s: strategy has no 'name' string", path);
	if (raw_field(L, t, "run") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		return rs_error_set(err, RS_EINVAL, "%s: strategy '%s' has no 'run' function",
		                    path, info->name);
	}
	lua_pop(L, 1);
	if (raw_field(L, t, "params") == LUA_TNIL) {
		lua_pop(L, 1);
		return RS_OK;
	}
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return rs_error_set(err, RS_EINVAL, "%s: 'params' must be a list of tables", path);
	}
	n = lua_rawlen(L, -1);
	info->params = rs_xcalloc(n ? n : 1, sizeof *info->params);
	for (i = 0; i < n; i++) {
		rs_strategy_param *p = &info->params[info->nparams];
		int pt, k;
		char *type;

		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		pt = lua_gettop(L);
		if (!lua_istable(L, pt)) {
			lua_pop(L, 2);
			return rs_error_set(err, RS_EINVAL, "%s: params[%zu] must be a table "
			                    "{name = ..., type = ..., ...}", path, i + 1);
		}
		p->name = opt_string_field(L, pt, "name");
		type = opt_string_field(L, pt, "type");
		p->help = opt_string_field(L, pt, "help");
		info->nparams++;
		if (p->name == NULL || type == NULL) {
			free(type);
			lua_pop(L, 2);
			return rs_error_set(err, RS_EINVAL, "%s: params[%zu] needs a name and a type",
			                    path, i + 1);
		}
		for (k = 0; k <= RS_PARAM_CHOICE; k++)
			if (strcmp(type, param_type_names[k]) == 0)
				break;
		free(type);
		if (k > RS_PARAM_CHOICE) {
			lua_pop(L, 2);
			return rs_error_set(err, RS_EINVAL, "%s: param '%s' has an unknown type "
			                    "(number, integer, boolean, string or choice)", path, p->name);
		}
		p->type = (rs_param_type)k;
		if (raw_field(L, pt, "min") == LUA_TNUMBER) {
			p->has_min = true;
			p->min = lua_tonumber(L, -1);
		}
		if (raw_field(L, pt, "max") == LUA_TNUMBER) {
			p->has_max = true;
			p->max = lua_tonumber(L, -1);
		}
		lua_pop(L, 2);
		if (raw_field(L, pt, "default") != LUA_TNIL)
			p->default_text = plain_text(L, -1);
		lua_pop(L, 1);
		if (raw_field(L, pt, "choices") == LUA_TTABLE) {
			size_t c, nc = lua_rawlen(L, -1);
			p->choices = rs_xcalloc(nc ? nc : 1, sizeof *p->choices);
			for (c = 0; c < nc; c++) {
				lua_rawgeti(L, -1, (lua_Integer)c + 1);
				if (lua_type(L, -1) == LUA_TSTRING)
					p->choices[p->nchoices++] = rs_xstrdup(lua_tostring(L, -1));
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 2);
		if (p->type == RS_PARAM_CHOICE && p->nchoices == 0)
			return rs_error_set(err, RS_EINVAL, "%s: choice param '%s' lists no choices",
			                    path, p->name);
	}
	lua_pop(L, 1);
	return RS_OK;
}

static void
info_clear(rs_strategy_info *info)
{
	size_t j, c;

	for (j = 0; j < info->nparams; j++) {
		rs_strategy_param *p = &info->params[j];
		free(p->name);
		free(p->help);
		free(p->default_text);
		for (c = 0; c < p->nchoices; c++)
			free(p->choices[c]);
		free(p->choices);
	}
	free(info->params);
	free(info->name);
	free(info->description);
	free(info->path);
	memset(info, 0, sizeof *info);
}

void
rs_strategy_info_free(rs_strategy_info *infos, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		info_clear(&infos[i]);
	free(infos);
}

static int
compare_infos(const void *a, const void *b)
{
	return strcmp(((const rs_strategy_info *)a)->name, ((const rs_strategy_info *)b)->name);
}

static bool
has_name(const rs_strategy_info *infos, size_t n, const char *file_stem)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *slash = strrchr(infos[i].path, '/');
		const char *stem = slash ? slash + 1 : infos[i].path;
		size_t len = strlen(file_stem);
		if (strncmp(stem, file_stem, len) == 0 && strcmp(stem + len, ".lua") == 0)
			return true;
	}
	return false;
}

/* Whether the value on top is meant as a strategy: anything but a table
 * with neither run nor name, which is a module strategies require. */
static bool
looks_like_strategy(lua_State *L)
{
	bool yes;

	if (!lua_istable(L, -1))
		return true;   /* reported as a broken strategy */
	yes = raw_field(L, -1, "run") != LUA_TNIL;
	lua_pop(L, 1);
	if (raw_field(L, -1, "name") != LUA_TNIL)
		yes = true;
	lua_pop(L, 1);
	return yes;
}

rs_status
rs_script_list(rs_script *s, rs_strategy_info **out, size_t *n, rs_error *err)
{
	rs_strategy_info *infos = NULL;
	size_t count = 0, d;
	rs_error first;
	bool failed = false;

	s->stop = 0;
	for (d = 0; d < s->ndirs; d++) {
		DIR *dir = opendir(s->dirs[d]);
		struct dirent *ent;

		if (dir == NULL)
			continue;
		while ((ent = readdir(dir)) != NULL) {
			size_t len = strlen(ent->d_name);
			char *path, *stem;
			rs_error e;

			if (len < 5 || strcmp(ent->d_name + len - 4, ".lua") != 0 ||
			    ent->d_name[0] == '.')
				continue;
			stem = rs_xstrndup(ent->d_name, len - 4);
			if (has_name(infos, count, stem)) {    /* an earlier dir wins */
				free(stem);
				continue;
			}
			free(stem);
			path = rs_xasprintf("%s/%s", s->dirs[d], ent->d_name);
			snprintf(s->running, sizeof s->running, "strategy file %s", path);
			infos = rs_xreallocarray(infos, count + 1, sizeof *infos);
			if (load_file(s, path, 0, &e) == RS_OK && !looks_like_strategy(s->L)) {
				/* a module strategies require, not a strategy: skip it */
				lua_settop(s->L, 0);
				free(path);
				continue;
			}
			if (lua_gettop(s->L) > 0) {
				if (read_info(s, path, &infos[count], &e) == RS_OK) {
					count++;
					lua_pop(s->L, 1);
					free(path);
					continue;
				}
				lua_settop(s->L, 0);
				info_clear(&infos[count]);
			}
			if (!failed) {
				first = e;
				failed = true;
			}
			free(path);
		}
		closedir(dir);
	}
	s->stop = 0;
	qsort(infos, count, sizeof *infos, compare_infos);
	*out = infos;
	*n = count;
	if (failed && err)
		*err = first;
	return failed ? RS_EINVAL : RS_OK;
}

/* The file a strategy name or path stands for (malloc'd), or NULL. */
static char *
resolve(rs_script *s, const char *what)
{
	size_t len = strlen(what), d;
	struct stat st;

	if (strchr(what, '/') != NULL || (len > 4 && strcmp(what + len - 4, ".lua") == 0))
		return stat(what, &st) == 0 ? rs_xstrdup(what) : NULL;
	for (d = 0; d < s->ndirs; d++) {
		char *path = rs_xasprintf("%s/%s.lua", s->dirs[d], what);
		if (stat(path, &st) == 0)
			return path;
		free(path);
	}
	return NULL;
}

/* Converts one "name=value" for a declared parameter and pushes it. */
static rs_status
push_param_value(lua_State *L, const rs_strategy_info *info,
                 const rs_strategy_param *p, const char *value, rs_error *err)
{
	char *end;
	double v = 0;
	size_t c;

	switch (p->type) {
	case RS_PARAM_STRING:
		lua_pushstring(L, value);
		return RS_OK;
	case RS_PARAM_BOOLEAN:
		if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
			lua_pushboolean(L, 1);
		else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
			lua_pushboolean(L, 0);
		else
			return rs_error_set(err, RS_EINVAL, "strategy '%s': parameter '%s' is a "
			                    "boolean (true or false), not '%s'", info->name, p->name, value);
		return RS_OK;
	case RS_PARAM_CHOICE:
		for (c = 0; c < p->nchoices; c++)
			if (strcmp(p->choices[c], value) == 0) {
				lua_pushstring(L, value);
				return RS_OK;
			}
		{
			char list[512] = "";
			size_t o = 0;
			for (c = 0; c < p->nchoices && o < sizeof list; c++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s",
				                      c ? ", " : "", p->choices[c]);
			return rs_error_set(err, RS_EINVAL, "strategy '%s': parameter '%s' must be "
			                    "one of %s, not '%s'", info->name, p->name, list, value);
		}
	default:
		break;
	}
	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end != '\0' || errno != 0 || !isfinite(v) ||
	    (p->type == RS_PARAM_INTEGER && v != floor(v)))
		return rs_error_set(err, RS_EINVAL, "strategy '%s': parameter '%s' takes %s, "
		                    "not '%s'", info->name, p->name,
		                    p->type == RS_PARAM_INTEGER ? "a whole number" : "a number", value);
	if ((p->has_min && v < p->min) || (p->has_max && v > p->max))
		return rs_error_set(err, RS_EINVAL, "strategy '%s': parameter '%s' = %s is out "
		                    "of range %g..%g", info->name, p->name, value,
		                    p->has_min ? p->min : -HUGE_VAL, p->has_max ? p->max : HUGE_VAL);
	/* beyond 2^53 a double no longer holds every integer: refuse rather
	 * than convert out of range */
	if (p->type == RS_PARAM_INTEGER && fabs(v) > 9007199254740992.0)
		return rs_error_set(err, RS_EINVAL, "strategy '%s': parameter '%s' = %s is too "
		                    "large for an integer", info->name, p->name, value);
	if (p->type == RS_PARAM_INTEGER)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, v);
	return RS_OK;
}

/* Pushes the params table for a strategy at stack index t: defaults from
 * its declaration, overridden by "name=value" strings. */
static rs_status
push_params(lua_State *L, int t, const rs_strategy_info *info,
            const char *const *params, size_t nparams, rs_error *err)
{
	size_t i, j;

	lua_newtable(L);
	raw_field(L, t, "params");
	for (j = 0; j < info->nparams; j++) {
		lua_rawgeti(L, -1, (lua_Integer)j + 1);
		raw_field(L, -1, "default");
		lua_setfield(L, -4, info->params[j].name);   /* a fresh plain table */
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	for (i = 0; i < nparams; i++) {
		const char *eq = strchr(params[i], '=');
		char *name = rs_xstrndup(params[i], eq ? (size_t)(eq - params[i]) : strlen(params[i]));
		const rs_strategy_param *p = NULL;

		for (j = 0; j < info->nparams; j++)
			if (strcmp(info->params[j].name, name) == 0)
				p = &info->params[j];
		if (eq == NULL || p == NULL) {
			char names[256] = "";
			size_t o = 0;
			for (j = 0; j < info->nparams && o < sizeof names - 1; j++)
				o += (size_t)snprintf(names + o, sizeof names - o, "%s%s",
				                      j ? ", " : "", info->params[j].name);
			rs_error_set(err, RS_EINVAL, eq == NULL ?
			    "strategy '%s': parameter '%s' needs a value (name=value)" :
			    "strategy '%s' has no parameter '%s' (it has: %s)", info->name, name,
			    info->nparams ? names : "none");
			free(name);
			lua_pop(L, 1);
			return RS_EINVAL;
		}
		free(name);
		if (push_param_value(L, info, p, eq + 1, err) != RS_OK) {
			lua_pop(L, 1);
			return RS_EINVAL;
		}
		lua_setfield(L, -2, p->name);
	}
	return RS_OK;
}

/* "strategy NAME" for messages: the file's name without its directory
 * and .lua, which is how users name a strategy. */
static void
set_running_strategy(rs_script *s, const char *path)
{
	size_t len;
	const char *base = rs_path_stem(path, ".lua", &len);

	snprintf(s->running, sizeof s->running, "strategy %.*s", (int)len, base);
}

rs_status
rs_script_run(rs_script *s, const char *what, const char *const *params,
              size_t nparams, char **summary, rs_error *err)
{
	lua_State *L = s->L;
	char *path = resolve(s, what);
	rs_plan before;
	rs_strategy_info info;
	rs_status st;
	size_t i;
	int t;

	if (summary)
		*summary = NULL;
	if (path == NULL)
		return rs_error_set(err, RS_EINVAL, strchr(what, '/') || strstr(what, ".lua") ?
		    "%s: no such script" : "no strategy named '%s' (rankscope strategies "
		    "lists them)", what);
	set_running_strategy(s, path);
	rs_plan_copy(&before, s->host.plan);
	lua_settop(L, 0);
	s->stop = 0;

	/* The chunk gets (model, plan, params): a plain script uses them
	 * directly; a strategy module returns its table. */
	rsl_push_model(L);
	rsl_push_plan(L);
	lua_newtable(L);
	for (i = 0; i < nparams; i++) {
		const char *eq = strchr(params[i], '=');
		if (eq == NULL)
			continue;
		lua_pushlstring(L, params[i], (size_t)(eq - params[i]));
		lua_pushstring(L, eq + 1);
		lua_settable(L, -3);
	}
	st = load_file(s, path, 3, err);
	if (st == RS_OK && lua_istable(L, -1)) {
		t = lua_gettop(L);
		st = read_info(s, path, &info, err);
		if (st == RS_OK)
			st = push_params(L, t, &info, params, nparams, err);
		if (st == RS_OK) {
			raw_field(L, t, "run");
			rsl_push_model(L);
			rsl_push_plan(L);
			lua_pushvalue(L, t + 1);
			st = pcall(s, 3, 1, err);
			if (st == RS_OK && summary && lua_type(L, -1) == LUA_TSTRING)
				*summary = rs_xstrdup(lua_tostring(L, -1));
		}
		info_clear(&info);
	}
	lua_settop(L, 0);
	s->stop = 0;
	lua_sethook(L, NULL, 0, 0);
	if (st != RS_OK) {
		/* A failed or interrupted strategy leaves the plan as it was. */
		memcpy(s->host.plan->entries, before.entries,
		       before.nlayers * sizeof *before.entries);
	}
	rs_plan_free(&before);
	free(path);
	return st;
}

rs_status
rs_script_eval(rs_script *s, const char *code, rs_error *err)
{
	lua_State *L = s->L;
	char *ret = rs_xasprintf("return %s", code);
	rs_plan before;
	rs_status st;
	int n;

	lua_settop(L, 0);
	/* As the standalone interpreter: try it as an expression first. */
	if (luaL_loadbufferx(L, ret, strlen(ret), "=console", "t") != LUA_OK) {
		lua_pop(L, 1);
		if (luaL_loadbufferx(L, code, strlen(code), "=console", "t") != LUA_OK) {
			rs_error_set(err, RS_EINVAL, "%s", lua_tostring(L, -1));
			lua_settop(L, 0);
			free(ret);
			return RS_EINVAL;
		}
	}
	free(ret);
	snprintf(s->running, sizeof s->running, "the console");
	rs_plan_copy(&before, s->host.plan);
	s->stop = 0;
	st = pcall(s, 0, LUA_MULTRET, err);
	n = lua_gettop(L);
	if (st == RS_OK && n > 0) {
		lua_getglobal(L, "print");
		lua_insert(L, 1);
		st = pcall(s, n, 0, err);
	}
	lua_settop(L, 0);
	s->stop = 0;
	lua_sethook(L, NULL, 0, 0);
	if (st != RS_OK)
		memcpy(s->host.plan->entries, before.entries,
		       before.nlayers * sizeof *before.entries);
	rs_plan_free(&before);
	return st;
}
