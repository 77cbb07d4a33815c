/*
 * rules_shared.c - what every rule shares, kept as the rules file left it:
 * a stage's changes to the shared tables are undone when the stage ends,
 * and math.random is seeded afresh.
 *
 * One Lua state serves many messages: every session runs several stages,
 * and the delivery worker runs postq and delivery for message after message.
 * The globals are locked against new names, but a rule can still assign to
 * a name that exists (string = ...), change a library table (string.upper
 * = ..., math.pi = 3), give one a metatable, or change the metatable all
 * strings share (getmetatable("").__index = ...); and math.randomseed(42)
 * makes every later draw predictable. Left alone, one message's rules would
 * change what the rules see for the next one.
 *
 * So the tables the sandbox sets up (the global table, every library
 * table in it, config, status, codes, dns, and the strings' metatable) are
 * recorded before the rules file runs, and their contents and metatables
 * copied once it has run (a file may add helpers to string at its top
 * level). When a stage ends, each is compared with its copy, and one that
 * differs gets the copy's contents back; a stage that called
 * math.randomseed() is followed by a new random seed. The comparison walks
 * a few hundred entries per stage, in C and without allocating.
 *
 * What a rules file keeps in its own tables and locals (a cache, a
 * counter in an upvalue, a module's table) is the author's state and
 * lives as long as the process: in the delivery worker, across messages.
 */
#include <stdint.h>
#include <sys/random.h>

#include <lauxlib.h>
#include <lualib.h>

#include "log.h"
#include "rules_internal.h"

#define RULES_SHARED_KEY "vsmtpd.shared"     /* the shared tables, an array */
#define RULES_COPIES_KEY "vsmtpd.shared_copy" /* {table, copy, count, metatable} each */
#define RULES_SEED_KEY "vsmtpd.randomseed"   /* the library's own math.randomseed */

/* lua_randomseed_noted - math.randomseed(...), noting that the stage seeded. */
static int lua_randomseed_noted(lua_State *L)
{
	rules_from_state(L)->reseed = 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* rules_shared_open - wrap math.randomseed and record the shared tables:
 * the global table, each table it holds, the strings' metatable. Called
 * once the sandbox is set up, before the rules file runs. */
void rules_shared_open(lua_State *L)
{
	lua_Integer n = 0;

	lua_getglobal(L, LUA_MATHLIBNAME);
	lua_getfield(L, -1, "randomseed");
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_SEED_KEY);
	lua_pushcclosure(L, lua_randomseed_noted, 1);
	lua_setfield(L, -2, "randomseed");
	lua_pop(L, 1);

	lua_newtable(L);
	lua_pushglobaltable(L);
	lua_rawseti(L, -2, ++n);
	lua_pushglobaltable(L);
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		if (lua_istable(L, -1) && !lua_rawequal(L, -1, -3)) {
			lua_pushvalue(L, -1);
			lua_rawseti(L, -5, ++n);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_pushliteral(L, "");
	if (lua_getmetatable(L, -1)) {
		lua_rawseti(L, -3, ++n);
	}
	lua_pop(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_SHARED_KEY);
}

/* rules_shared_count - the number of entries of the table at idx. */
static lua_Integer rules_shared_count(lua_State *L, int idx)
{
	lua_Integer n = 0;

	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		n++;
		lua_pop(L, 1);
	}
	return n;
}

/* rules_shared_copy_into - every entry of the table at from, set raw in to. */
static void rules_shared_copy_into(lua_State *L, int from, int to)
{
	lua_pushnil(L);
	while (lua_next(L, from) != 0) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, to);
	}
}

/* rules_shared_keep - copy each shared table as it is now: called once the
 * rules file has run and the globals are locked. */
void rules_shared_keep(lua_State *L)
{
	lua_Integer i, n;

	lua_getfield(L, LUA_REGISTRYINDEX, RULES_SHARED_KEY);
	n = (lua_Integer)lua_rawlen(L, -1);
	lua_createtable(L, (int)n, 0);
	for (i = 1; i <= n; i++) {
		lua_createtable(L, 4, 0);
		lua_rawgeti(L, -3, i);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, 1);
		lua_newtable(L);
		rules_shared_copy_into(L, lua_absindex(L, -2), lua_absindex(L, -1));
		lua_rawseti(L, -3, 2);
		lua_pushinteger(L, rules_shared_count(L, lua_absindex(L, -1)));
		lua_rawseti(L, -3, 3);
		if (!lua_getmetatable(L, -1))
			lua_pushboolean(L, 0);
		lua_rawseti(L, -3, 4);
		lua_pop(L, 1);
		lua_rawseti(L, -2, i);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_COPIES_KEY);
	lua_pop(L, 1);
}

/* rules_shared_differs - whether the table at t holds other than its copy at
 * copy (count entries), or has another metatable than the value at mt. */
static int rules_shared_differs(lua_State *L, int t, int copy, lua_Integer count, int mt)
{
	lua_Integer n = 0;

	if (lua_getmetatable(L, t)) {
		int same = lua_rawequal(L, -1, mt);

		lua_pop(L, 1);
		if (!same)
			return 1;
	} else if (lua_toboolean(L, mt)) {
		return 1;
	}
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		n++;
		lua_pushvalue(L, -2);
		if (lua_rawget(L, copy) == LUA_TNIL || !lua_rawequal(L, -1, -2)) {
			lua_pop(L, 3);
			return 1;
		}
		lua_pop(L, 2);
	}
	return n != count;
}

/* rules_shared_put_back - give the table at t its copy's entries and the
 * metatable at mt (false for none). */
static void rules_shared_put_back(lua_State *L, int t, int copy, int mt)
{
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, t); /* clearing a field during the traversal is allowed */
	}
	rules_shared_copy_into(L, copy, t);
	if (lua_toboolean(L, mt))
		lua_pushvalue(L, mt);
	else
		lua_pushnil(L);
	lua_setmetatable(L, t);
}

/* rules_shared_restore_all - lua_CFunction: put back every shared table that
 * a stage changed; returns how many were. */
static int rules_shared_restore_all(lua_State *L)
{
	lua_Integer i, n, changed = 0;

	if (lua_getfield(L, LUA_REGISTRYINDEX, RULES_COPIES_KEY) != LUA_TTABLE)
		return 0;
	n = (lua_Integer)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		int base = lua_gettop(L);

		lua_rawgeti(L, base, i);
		lua_rawgeti(L, base + 1, 1); /* the table, base + 2 */
		lua_rawgeti(L, base + 1, 2); /* its copy, base + 3 */
		lua_rawgeti(L, base + 1, 3); /* its count, base + 4 */
		lua_rawgeti(L, base + 1, 4); /* its metatable, base + 5 */
		if (rules_shared_differs(L, base + 2, base + 3, lua_tointeger(L, base + 4),
					 base + 5)) {
			rules_shared_put_back(L, base + 2, base + 3, base + 5);
			changed++;
		}
		lua_settop(L, base);
	}
	lua_pushinteger(L, changed);
	return 1;
}

/* rules_shared_restore - after a stage: undo its changes to the shared
 * tables, and seed math.random afresh if the stage seeded it. */
void rules_shared_restore(struct rules *r)
{
	lua_State *L = r->L;
	int top = lua_gettop(L);

	lua_pushcfunction(L, rules_shared_restore_all);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK)
		log_err("rules: cannot restore the shared tables: %s",
			lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)");
	else if (lua_tointeger(L, -1) > 0)
		log_debug("rules: %lld shared table(s) changed by the stage, put back",
			  (long long)lua_tointeger(L, -1));
	lua_settop(L, top);
	if (r->reseed) {
		r->reseed = 0;
		rules_reseed(r);
	}
}

/* rules_reseed - new seeds for math.random: every session is forked from
 * the same state and would otherwise draw the same numbers, and a stage
 * that seeded it must not make the next one's draws predictable. */
void rules_reseed(struct rules *r)
{
	uint64_t seed[2] = {0, 0};
	lua_State *L;
	int top;

	if (r == NULL || getrandom(seed, sizeof(seed), 0) != sizeof(seed))
		return;
	L = r->L;
	top = lua_gettop(L);
	if (lua_getfield(L, LUA_REGISTRYINDEX, RULES_SEED_KEY) == LUA_TFUNCTION) {
		lua_pushinteger(L, (lua_Integer)seed[0]);
		lua_pushinteger(L, (lua_Integer)seed[1]);
		if (lua_pcall(L, 2, 0, 0) != LUA_OK)
			log_warn("rules: cannot seed math.random: %s", lua_tostring(L, -1));
	}
	lua_settop(L, top);
}
