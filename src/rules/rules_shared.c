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
 * listed before the rules file runs, and once it has run (a file may add
 * helpers to string at its top level) they become the first records of
 * the snapshot of everything the rules can reach (rules_snapshot.c). When
 * a stage ends, those records alone are compared with their tables, and
 * one that differs gets the copy's contents back; a stage that called
 * math.randomseed() is followed by a new random seed. The comparison walks
 * a few hundred entries per stage, in C and without allocating.
 *
 * What a rules file keeps in its own tables and locals (a cache, a
 * counter in an upvalue, a module's table) is the author's state: a stage
 * leaves it alone. A session process puts all of it back between two
 * connections (rules_restore()); in the delivery worker and vsmtpctl it
 * lives as long as the process, across messages.
 */
#include <stdint.h>
#include <sys/random.h>

#include <lauxlib.h>
#include <lualib.h>

#include "log.h"
#include "rules_internal.h"

#define RULES_SHARED_KEY "vsmtpd.shared"     /* the shared tables, an array, until loaded */
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

/* rules_shared_keep - record everything the rules can reach, the shared
 * tables first (rules_snapshot.c); called once the rules file has run and
 * the globals are locked. 0, or -1 when out of memory. */
int rules_shared_keep(lua_State *L)
{
	int rc;

	lua_getfield(L, LUA_REGISTRYINDEX, RULES_SHARED_KEY);
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_SHARED_KEY);
	rc = rules_snapshot_take(L, -1);
	lua_pop(L, 1);
	return rc;
}

/* rules_shared_restore - after a stage: undo its changes to the shared
 * tables, and seed math.random afresh if the stage seeded it. */
void rules_shared_restore(struct rules *r)
{
	long changed = rules_snapshot_put_back(r->L, RULES_SNAPSHOT_SHARED);

	if (changed > 0)
		log_debug("rules: %ld shared table(s) changed by the stage, put back", changed);
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
