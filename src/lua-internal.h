/*
 * lua-internal.h — shared by lua-runtime.c (the state, the sandbox, calls
 * into Lua) and lua-model.c (the `rankscope` module's userdata).
 */
#ifndef RANKSCOPE_LUA_INTERNAL_H
#define RANKSCOPE_LUA_INTERNAL_H

#include <lua.h>
#include <signal.h>

#include "rankscope/script.h"

struct rs_script {
	lua_State *L;
	rs_script_host host;
	char **dirs;
	size_t ndirs;
	volatile sig_atomic_t stop;  /* set by rs_script_interrupt */
	size_t mem_used;             /* bytes the state holds now */
	size_t mem_limit;            /* and may hold at most */
	bool mem_refused;            /* an allocation was refused since the last call */
	char running[160];           /* what runs, for messages: "strategy NAME" */
	char warning[RS_ERROR_MAX];  /* a warning being assembled from its pieces */
	size_t warning_len;
};

/* The runtime a state belongs to (kept in the state's extra space). */
rs_script *rsl_script(lua_State *L);

/* The index into host.layers of the layer userdata at arg (raises a
 * type error otherwise). */
size_t rsl_check_layer(lua_State *L, int arg);

/* luaopen_rankscope: the module table (lua-model.c). */
int rsl_open(lua_State *L);
/* The tensor decompositions (lua-tensor.c). */
void rsl_open_tensor(lua_State *L);  /* adds tucker_modes, tucker, tt, cp to the table on top */
/* Pushes the model and plan userdata (one of each per state). */
void rsl_push_model(lua_State *L);
void rsl_push_plan(lua_State *L);

#endif
