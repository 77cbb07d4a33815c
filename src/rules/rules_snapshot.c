/*
 * rules_snapshot.c - everything the rules can reach, recorded as the rules
 * file left it when it was loaded, and put back: the shared tables after
 * every stage, the whole of it between two connections of one session
 * process.
 *
 * A session process may serve many connections in turn with the one Lua
 * state it inherited from the master, and nothing of one connection may be
 * seen by the next: a counter in a local of the rules file, a field of a
 * file-level table, a module's table, a metatable set by a rule. So once
 * the file has run, the object graph is walked from the registry (which
 * holds the globals, the loaded libraries and modules, the metatables of
 * the engine's classes, the stages' rule arrays and through them every rule
 * function): breadth first, each object once, a table of seen objects on
 * the stack. Every object reached gets a record in one flat array, the
 * snapshot, kept in the registry under RULES_SNAPSHOT_KEY:
 *
 *   table     t, copy, count, metatable   a raw copy of its entries
 *   function  f, n, upvalue 1 .. n        Lua and C closures with upvalues
 *   userdata  u, metatable, n, value 1 .. n   its user values
 *
 * Strings, numbers, booleans and light userdata are values. The walk does
 * not go on through a userdata's user values: no rule can reach them (the
 * sandbox has no debug library, so no debug.getuservalue, and no
 * debug.getregistry either: the snapshot and its copies are out of reach
 * too), and no class of the engine changes them once built; a list object
 * keeps its entries there, so a list of a million domains costs one record,
 * not a million. Nor through threads: the sandbox has no coroutine library,
 * the only thread is the main one (registry[1]), whose stack is the C
 * side's between calls. Putting back compares each record with its object
 * and changes only what differs: a table gets back the entries that
 * changed and the ones removed, and loses the ones added (a table created
 * during the connection then becomes unreachable and is collected); a
 * closure its upvalues, a userdata its metatable and user values. Shared
 * upvalues come back through any of their closures. A value computed at
 * load (os.time() at the top level, a table built by a loop) is the copy's,
 * never computed again.
 *
 * The tables the sandbox sets up (rules_shared.c: the globals, the
 * libraries, the strings' metatable) are the walk's first records, so the
 * restore after each stage is the same loop over a prefix of the snapshot
 * (RULES_SNAPSHOT_SHARED); between two connections rules_restore() runs it
 * over all of it, and seeds math.random afresh, as a forked process would
 * be. The delivery worker and vsmtpctl do only the former: there, what the
 * file keeps in its own tables lives as long as the process.
 *
 * The registry is a table like the others, so it is put back too: what C
 * code stored in it during a connection, and the free list of luaL_ref(),
 * go back to their state at load. Hence the contract of rules_restore():
 * no reference taken with luaL_ref() after the load may be held across it
 * (none is today: the only references are the stages' arrays, taken at
 * load), and it is called between rule calls, never from one. The DNS state
 * (rules_dns.c) is a userdata made at load, so it is kept; its channel
 * lives in C memory, created lazily by the first lookup and kept, as the
 * resolver's sockets are the process's, not the rules'.
 *
 * Cost: a restore reads every entry of every reachable table, in C and
 * without allocating, so it grows with what the rules file builds in Lua
 * tables at load. Measured on a shared 2-CPU x86-64 host with Debian's
 * Lua 5.4.4 (the same in Debug and Release builds: the time is spent in
 * the Lua library), as the median of 300 restores each after one offline
 * transaction through every stage (test_restore_cost in
 * tests/unit/test_rules_restore.c, timed with CLOCK_MONOTONIC around
 * rules_restore()): rules/main.lua 15 us, bench/rules/ten.lua 16 us, a
 * file with a 100,000-entry table 4.5 to 5 ms with string keys and 1.7 ms
 * as an array, a 100,000-entry domain_list 15 us; with no rule run since
 * the last restore, under 1 us. Big lists belong in list objects, which
 * cost one record. The snapshot holds a copy of every reachable table:
 * about as much memory again as the file's tables.
 *
 * Garbage: what a connection created becomes unreachable at the restore.
 * Lua's incremental collector, paced by allocation, bounds the heap, but
 * only at about twice what is live. A full collection costs about a
 * quarter of a restore (3.5 us for main.lua's 60 KB heap, 1.4 ms for an
 * 11 MB one), wasted after a connection that left little garbage; so one
 * runs after a restore only once the heap has grown by RULES_RESTORE_SLACK
 * since the last, which bounds it to the loaded size plus that much.
 */
#include <stdint.h>

#include <lauxlib.h>

#include "log.h"
#include "rules_internal.h"

#define RULES_SNAPSHOT_KEY "vsmtpd.snapshot" /* the records, and "n", "shared" */
#define RULES_RESTORE_SLACK ((size_t)1 << 20) /* garbage a restore lets be */

/* The walk: where its tables are on the stack, how far it has come. */
struct rules_walk {
	int seen;        /* object -> true */
	int queue;       /* objects to visit, in the order reached */
	int snap;        /* the records */
	lua_Integer head, tail; /* queue[head + 1 .. tail] wait */
	lua_Integer slots;      /* slots of snap used */
};

typedef void (*rules_snapshot_visit_fn)(lua_State *L, struct rules_walk *w, int idx);
typedef lua_Integer (*rules_snapshot_fix_fn)(lua_State *L, int snap, lua_Integer slot,
					     lua_Integer *changed);

/* rules_snapshot_note - queue the value at idx for a visit, unless it was
 * reached before or is no object the walk records. */
static void rules_snapshot_note(lua_State *L, struct rules_walk *w, int idx);

/* rules_snapshot_put - append the value at the top to the records, popping it. */
static void rules_snapshot_put(lua_State *L, struct rules_walk *w)
{
	lua_rawseti(L, w->snap, ++w->slots);
}

/* rules_snapshot_visit_table - record the table at idx: its copy, its entry
 * count, its metatable; queue its keys, values and metatable. */
static void rules_snapshot_visit_table(lua_State *L, struct rules_walk *w, int idx)
{
	lua_Integer count = 0;
	int copy;

	lua_pushvalue(L, idx);
	rules_snapshot_put(L, w);
	lua_newtable(L);
	copy = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		count++;
		rules_snapshot_note(L, w, lua_absindex(L, -2));
		rules_snapshot_note(L, w, lua_absindex(L, -1));
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, copy);
	}
	rules_snapshot_put(L, w);
	lua_pushinteger(L, count);
	rules_snapshot_put(L, w);
	if (!lua_getmetatable(L, idx))
		lua_pushnil(L);
	rules_snapshot_note(L, w, lua_absindex(L, -1));
	rules_snapshot_put(L, w);
}

/* rules_snapshot_visit_function - record the upvalues of the closure at idx
 * (none for a plain C function: no record) and queue them. */
static void rules_snapshot_visit_function(lua_State *L, struct rules_walk *w, int idx)
{
	int i, n = 0;

	while (lua_getupvalue(L, idx, n + 1) != NULL) {
		lua_pop(L, 1);
		n++;
	}
	if (n == 0)
		return;
	lua_pushvalue(L, idx);
	rules_snapshot_put(L, w);
	lua_pushinteger(L, n);
	rules_snapshot_put(L, w);
	for (i = 1; i <= n; i++) {
		lua_getupvalue(L, idx, i);
		rules_snapshot_note(L, w, lua_absindex(L, -1));
		rules_snapshot_put(L, w);
	}
}

/* rules_snapshot_visit_userdata - record the metatable and the user values
 * of the userdata at idx; queue the metatable only (see the top). */
static void rules_snapshot_visit_userdata(lua_State *L, struct rules_walk *w, int idx)
{
	int i, n = 0;

	lua_pushvalue(L, idx);
	rules_snapshot_put(L, w);
	if (!lua_getmetatable(L, idx))
		lua_pushnil(L);
	rules_snapshot_note(L, w, lua_absindex(L, -1));
	rules_snapshot_put(L, w);
	while (lua_getiuservalue(L, idx, n + 1) != LUA_TNONE) {
		lua_pop(L, 1);
		n++;
	}
	lua_pop(L, 1);
	lua_pushinteger(L, n);
	rules_snapshot_put(L, w);
	for (i = 1; i <= n; i++) {
		lua_getiuservalue(L, idx, i);
		rules_snapshot_put(L, w);
	}
}

/* What the walk records of each type; NULL: a value, or not walked (threads). */
static const rules_snapshot_visit_fn rules_snapshot_visitors[LUA_NUMTYPES] = {
	[LUA_TTABLE] = rules_snapshot_visit_table,
	[LUA_TFUNCTION] = rules_snapshot_visit_function,
	[LUA_TUSERDATA] = rules_snapshot_visit_userdata,
};

/* rules_snapshot_note - see the declaration above. */
static void rules_snapshot_note(lua_State *L, struct rules_walk *w, int idx)
{
	int type = lua_type(L, idx);

	if (type < 0 || type >= LUA_NUMTYPES || rules_snapshot_visitors[type] == NULL)
		return;
	lua_pushvalue(L, idx);
	if (lua_rawget(L, w->seen) != LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, idx);
	lua_pushboolean(L, 1);
	lua_rawset(L, w->seen);
	lua_pushvalue(L, idx);
	lua_rawseti(L, w->queue, ++w->tail);
}

/* rules_snapshot_walk - visit the queue's objects up to position last
 * (those it leads to are queued after them). */
static void rules_snapshot_walk(lua_State *L, struct rules_walk *w, lua_Integer last)
{
	while (w->head < last) {
		int type;

		lua_rawgeti(L, w->queue, ++w->head);
		type = lua_type(L, -1);
		rules_snapshot_visitors[type](L, w, lua_gettop(L));
		lua_settop(L, w->snap);
	}
}

/* rules_snapshot_take_all - lua_CFunction: the shared tables' array at 1;
 * walk from them, then from the registry, and keep the records. */
static int rules_snapshot_take_all(lua_State *L)
{
	struct rules_walk w = {0};
	lua_Integer i, n;

	lua_settop(L, 1);
	lua_newtable(L);
	w.seen = lua_gettop(L);
	lua_newtable(L);
	w.queue = lua_gettop(L);
	lua_newtable(L);
	w.snap = lua_gettop(L);
	/* The records are in the registry before the walk copies it, and are
	 * never walked themselves. */
	lua_pushvalue(L, w.snap);
	lua_pushboolean(L, 1);
	lua_rawset(L, w.seen);
	lua_pushvalue(L, w.snap);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_SNAPSHOT_KEY);
	n = lua_istable(L, 1) ? (lua_Integer)lua_rawlen(L, 1) : 0;
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		rules_snapshot_note(L, &w, lua_gettop(L));
		lua_pop(L, 1);
	}
	/* The shared tables' records come first, and only theirs: what they
	 * lead to is queued after them. */
	rules_snapshot_walk(L, &w, w.tail);
	lua_pushinteger(L, w.slots);
	lua_setfield(L, w.snap, "shared");
	lua_pushvalue(L, LUA_REGISTRYINDEX);
	rules_snapshot_note(L, &w, lua_gettop(L));
	lua_pop(L, 1);
	while (w.head < w.tail)
		rules_snapshot_walk(L, &w, w.tail);
	lua_pushinteger(L, w.slots);
	lua_setfield(L, w.snap, "n");
	return 0;
}

/* rules_snapshot_take - record everything the rules can reach (see the top),
 * the shared tables at idx (an array) first. 0, or -1 when out of memory. */
int rules_snapshot_take(lua_State *L, int idx)
{
	int top = lua_gettop(L), rc;

	idx = lua_absindex(L, idx);
	lua_pushcfunction(L, rules_snapshot_take_all);
	lua_pushvalue(L, idx);
	rc = lua_pcall(L, 1, 0, 0);
	lua_settop(L, top);
	return rc == LUA_OK ? 0 : -1;
}

/* rules_snapshot_fix_metatable - give the object at obj the metatable at mt
 * (nil: none) if it has another; 1 when it had. */
static int rules_snapshot_fix_metatable(lua_State *L, int obj, int mt)
{
	int same;

	if (!lua_getmetatable(L, obj))
		lua_pushnil(L);
	same = lua_rawequal(L, -1, mt);
	lua_pop(L, 1);
	if (same)
		return 0;
	lua_pushvalue(L, mt);
	lua_setmetatable(L, obj);
	return 1;
}

/* rules_snapshot_fix_table - put back the table record at slot: entries
 * that differ from the copy's take its value (nil for one it lacks), and
 * when fewer of the copy's keys were found than it holds, the missing ones
 * come back. Returns the slots the record takes. */
static lua_Integer rules_snapshot_fix_table(lua_State *L, int snap, lua_Integer slot,
					    lua_Integer *changed)
{
	int t = lua_gettop(L) + 1, copy = t + 1, mt = t + 3, differs;
	lua_Integer found = 0;

	lua_rawgeti(L, snap, slot);
	lua_rawgeti(L, snap, slot + 1);
	lua_rawgeti(L, snap, slot + 2);
	lua_rawgeti(L, snap, slot + 3);
	differs = rules_snapshot_fix_metatable(L, t, mt);
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		lua_pushvalue(L, -2);
		if (lua_rawget(L, copy) != LUA_TNIL)
			found++;
		if (!lua_rawequal(L, -1, -2)) {
			/* Changing or clearing a field during the traversal is allowed. */
			lua_pushvalue(L, -3);
			lua_insert(L, -2);
			lua_rawset(L, t);
			differs = 1;
			lua_pop(L, 1);
		} else {
			lua_pop(L, 2);
		}
	}
	if (found < lua_tointeger(L, t + 2)) {
		differs = 1;
		lua_pushnil(L);
		while (lua_next(L, copy) != 0) {
			lua_pushvalue(L, -2);
			if (lua_rawget(L, t) == LUA_TNIL) {
				lua_pushvalue(L, -3);
				lua_pushvalue(L, -3);
				lua_rawset(L, t);
			}
			lua_pop(L, 2);
		}
	}
	*changed += differs;
	lua_settop(L, t - 1);
	return 4;
}

/* Reading and writing a numbered value of an object: an upvalue of a
 * closure, a user value of a userdata. */
typedef void (*rules_snapshot_value_fn)(lua_State *L, int obj, int i);

/* rules_snapshot_get_upvalue - push upvalue i of the closure at obj. */
static void rules_snapshot_get_upvalue(lua_State *L, int obj, int i)
{
	lua_getupvalue(L, obj, i);
}

/* rules_snapshot_set_upvalue - pop the top into upvalue i of the closure at obj. */
static void rules_snapshot_set_upvalue(lua_State *L, int obj, int i)
{
	lua_setupvalue(L, obj, i);
}

/* rules_snapshot_get_uservalue - push user value i of the userdata at obj. */
static void rules_snapshot_get_uservalue(lua_State *L, int obj, int i)
{
	lua_getiuservalue(L, obj, i);
}

/* rules_snapshot_set_uservalue - pop the top into user value i of the userdata at obj. */
static void rules_snapshot_set_uservalue(lua_State *L, int obj, int i)
{
	lua_setiuservalue(L, obj, i);
}

/* rules_snapshot_fix_values - values 1 .. n of the object at obj (read and
 * written with get and set) that differ from the records from slot on take
 * the recorded ones; 1 when any did. */
static int rules_snapshot_fix_values(lua_State *L, int obj, int snap, lua_Integer slot, int n,
				     rules_snapshot_value_fn get, rules_snapshot_value_fn set)
{
	int i, differs = 0;

	for (i = 1; i <= n; i++) {
		get(L, obj, i);
		lua_rawgeti(L, snap, slot + i - 1);
		if (!lua_rawequal(L, -1, -2)) {
			set(L, obj, i);
			differs = 1;
		} else {
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	return differs;
}

/* rules_snapshot_fix_function - put back the closure record at slot: each
 * upvalue that differs. Returns the slots the record takes. */
static lua_Integer rules_snapshot_fix_function(lua_State *L, int snap, lua_Integer slot,
					       lua_Integer *changed)
{
	int f = lua_gettop(L) + 1, n;

	lua_rawgeti(L, snap, slot);
	lua_rawgeti(L, snap, slot + 1);
	n = (int)lua_tointeger(L, -1);
	*changed += rules_snapshot_fix_values(L, f, snap, slot + 2, n, rules_snapshot_get_upvalue,
					      rules_snapshot_set_upvalue);
	lua_settop(L, f - 1);
	return 2 + n;
}

/* rules_snapshot_fix_userdata - put back the userdata record at slot: its
 * metatable and each user value that differs. Returns the slots it takes. */
static lua_Integer rules_snapshot_fix_userdata(lua_State *L, int snap, lua_Integer slot,
					       lua_Integer *changed)
{
	int u = lua_gettop(L) + 1, n, differs;

	lua_rawgeti(L, snap, slot);
	lua_rawgeti(L, snap, slot + 1);
	differs = rules_snapshot_fix_metatable(L, u, u + 1);
	lua_rawgeti(L, snap, slot + 2);
	n = (int)lua_tointeger(L, -1);
	differs |= rules_snapshot_fix_values(L, u, snap, slot + 3, n, rules_snapshot_get_uservalue,
					     rules_snapshot_set_uservalue);
	*changed += differs;
	lua_settop(L, u - 1);
	return 3 + n;
}

/* How a record is put back, by the type of its object (its first slot). */
static const rules_snapshot_fix_fn rules_snapshot_fixers[LUA_NUMTYPES] = {
	[LUA_TTABLE] = rules_snapshot_fix_table,
	[LUA_TFUNCTION] = rules_snapshot_fix_function,
	[LUA_TUSERDATA] = rules_snapshot_fix_userdata,
};

/* rules_snapshot_put_back_all - lua_CFunction: put back the records of the
 * scope at 1 ("shared" or "n"); returns how many objects had changed. */
static int rules_snapshot_put_back_all(lua_State *L)
{
	lua_Integer slot = 1, end, changed = 0;
	int snap;

	if (lua_getfield(L, LUA_REGISTRYINDEX, RULES_SNAPSHOT_KEY) != LUA_TTABLE)
		return 0;
	snap = lua_gettop(L);
	lua_getfield(L, snap, lua_tostring(L, 1));
	end = lua_tointeger(L, -1);
	lua_pop(L, 1);
	while (slot <= end) {
		int type = lua_rawgeti(L, snap, slot);

		lua_pop(L, 1);
		slot += rules_snapshot_fixers[type](L, snap, slot, &changed);
	}
	lua_pushinteger(L, changed);
	return 1;
}

/* rules_snapshot_put_back - put back the shared tables (scope
 * RULES_SNAPSHOT_SHARED) or everything (RULES_SNAPSHOT_ALL) as loaded.
 * Returns how many objects had changed, or -1 when out of memory (logged). */
long rules_snapshot_put_back(lua_State *L, enum rules_snapshot_scope scope)
{
	static const char *const scope_field[] = {
		[RULES_SNAPSHOT_SHARED] = "shared",
		[RULES_SNAPSHOT_ALL] = "n",
	};
	int top = lua_gettop(L);
	long changed = -1;

	lua_pushcfunction(L, rules_snapshot_put_back_all);
	lua_pushstring(L, scope_field[scope]);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		log_err("rules: cannot put back the rules' state as loaded: %s",
			lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)");
	else
		changed = (long)lua_tointeger(L, -1);
	lua_settop(L, top);
	return changed;
}

/* rules_restore - see rules.h. */
int rules_restore(struct rules *r)
{
	long changed;

	if (r == NULL || !r->ran)
		return 0;
	if ((changed = rules_snapshot_put_back(r->L, RULES_SNAPSHOT_ALL)) < 0)
		return -1;
	r->ran = 0;
	if (changed > 0)
		log_debug("rules: %ld object(s) changed by the connection, put back", changed);
	if (r->mem.used > r->mem_collected + RULES_RESTORE_SLACK) {
		lua_gc(r->L, LUA_GCCOLLECT);
		r->mem_collected = r->mem.used;
	}
	rules_reseed(r);
	return 0;
}
